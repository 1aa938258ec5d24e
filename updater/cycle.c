/* cycle: see cycle.h. Runs in the updater process only. */
#include "updater/cycle.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/ipc.h"
#include "common/log.h"
#include "common/util.h"
#include "scanengine/engine.h"
#include "defs/auth.h"
#include "defs/cvd.h"
#include "defs/unpack.h"
#include "updater/cdiff.h"

#define REASON_LEN 700

/* One database's cycle. */
struct dbrun {
	const struct upd_cycle_req *req;
	const char *name;
	uint32_t local; /* the host's version, 0: none */
	char local_path[PATH_MAX];
	uint64_t bytes;
	struct json_object *attempts;
	/* the outcome */
	const char *result; /* "fetched", "up to date", "failed" */
	uint32_t remote;    /* the mirror's version, 0: none known */
	int mirror;	    /* index of the mirror used, -1 */
	bool incremental;
	unsigned int cdiffs;
	unsigned int cdiff_signed; /* patches whose .sign verified */
	char file[PATH_MAX], sign[PATH_MAX];
	enum upd_failure failure;
	char reason[REASON_LEN];
};

/* The active database file of this name (.cld before .cvd, as libclamav
 * prefers the newer of the two and freshclam keeps one) and its version. */
static void find_local(struct dbrun *d)
{
	static const char *const ext[] = {".cld", ".cvd"};

	if (!d->req->active_dir)
		return;
	for (size_t i = 0; i < SE_ARRAY_SIZE(ext); i++) {
		char buf[CVD_HEADER_LEN];
		struct cvd_header h;
		int fd;

		snprintf(d->local_path, sizeof(d->local_path), "%s/%s%s", d->req->active_dir,
			 d->name, ext[i]);
		fd = open(d->local_path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		if (util_read_all(fd, buf, sizeof(buf)) == (ssize_t)sizeof(buf) &&
		    cvd_parse_header(buf, sizeof(buf), &h, NULL) == 0)
			d->local = h.version;
		close(fd);
		if (d->local)
			return;
	}
	d->local_path[0] = '\0';
}

static void attempt(struct dbrun *d, size_t m, const char *result, const struct fetch_result *fr,
		    enum upd_failure kind, const char *reason)
{
	struct json_object *a = json_object_new_object();

	json_object_object_add(a, "mirror", json_object_new_string(d->req->mirrors->v[m].url));
	json_object_object_add(a, "index", json_object_new_int((int)m));
	json_object_object_add(a, "result", json_object_new_string(result));
	if (strcmp(result, "ok") != 0) {
		json_object_object_add(a, "failure",
				       json_object_new_string(upd_failure_name(kind)));
		json_object_object_add(a, "reason", json_object_new_string(reason));
		json_object_object_add(a, "retry_after_s",
				       json_object_new_int64(fr ? (int64_t)fr->retry_after_s : 0));
		d->failure = kind;
		snprintf(d->reason, sizeof(d->reason), "%s", reason);
	}
	json_object_array_add(d->attempts, a);
}

/* Fetch base/leaf into the work directory as file. Returns 0 or -errno
 * with err (fr filled). */
static int get(struct dbrun *d, size_t m, const char *leaf, const char *file, bool head_only,
	       struct fetch_result *fr, char *err)
{
	char url[UPD_URL_MAX + 128];
	int fd, r;

	snprintf(url, sizeof(url), "%s/%s", d->req->mirrors->v[m].url, leaf);
	fd = open(file, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		memset(fr, 0, sizeof(*fr));
		fr->kind = UPD_FAIL_NETWORK;
		snprintf(err, FETCH_ERR_LEN, "%s: %s", file, strerror(errno));
		return -errno;
	}
	r = fetch_url(&d->req->fetch, url, fd, head_only, UPD_MAX_DB_BYTES, fr, err);
	d->bytes += fr->bytes;
	close(fd);
	return r;
}

static int read_header(const char *file, struct cvd_header *h, char *err, size_t errlen)
{
	char buf[CVD_HEADER_LEN], e[CVD_ERR_LEN];
	int fd = open(file, O_RDONLY | O_CLOEXEC);
	ssize_t n;
	int r;

	if (fd < 0) {
		snprintf(err, errlen, "%s", strerror(errno));
		return -errno;
	}
	n = util_read_all(fd, buf, sizeof(buf));
	close(fd);
	r = cvd_parse_header(buf, n > 0 ? (size_t)n : 0, h, e);
	if (r)
		snprintf(err, errlen, "not a CVD header (%s)", e);
	return r;
}

/* The .sign of the patch in file (leaf on the mirror), when the mirror
 * has one: fetched and checked. Returns 0 (verified, or none and none is
 * required), -ENOENT with err (none, and RequireSignFile: try the whole
 * file), or -ECONNABORTED after recording the mirror's failure (a .sign
 * that does not verify: bad data; or the fetch failed). */
static int patch_sign(struct dbrun *d, size_t m, const char *leaf, const char *file, char *err,
		      size_t errlen)
{
	struct auth_policy pol = {
		.certs_dir = d->req->certs_dir,
		.require_sign = true,
		.flevel = engine_flevel(),
		.tmp_dir = d->req->tmp_dir,
	};
	char sleaf[160], sfile[PATH_MAX + 8], e[FETCH_ERR_LEN], ae[AUTH_ERR_LEN];
	struct fetch_result fr;
	int r;

	snprintf(sleaf, sizeof(sleaf), "%s.sign", leaf);
	snprintf(sfile, sizeof(sfile), "%s.sign", file);
	r = get(d, m, sleaf, sfile, false, &fr, e);
	if (r == -ENOENT) {
		unlink(sfile);
		if (!d->req->require_sign)
			return 0;
		snprintf(err, errlen, "%s has no .sign and RequireSignFile is on", leaf);
		return -ENOENT;
	}
	if (r) {
		attempt(d, m, "failed", &fr, fr.kind, e);
		return -ECONNABORTED;
	}
	r = auth_check(file, sfile, &pol, NULL, ae);
	unlink(sfile);
	if (r) {
		char why[REASON_LEN];

		snprintf(why, sizeof(why), "%.300s/%.100s: %.250s", d->req->mirrors->v[m].url, leaf,
			 ae);
		attempt(d, m, "failed", NULL, UPD_FAIL_BAD_DATA, why);
		return -ECONNABORTED;
	}
	d->cdiff_signed++;
	return 0;
}

/* Apply the patches local+1 .. remote to a copy of the active database and
 * write <work>/<db>.cld. Returns 0, -ENOENT when the mirror lacks a patch
 * (fall back to the whole file), another -errno with err for a failure
 * that makes the whole file the better try too (a patch that does not
 * apply), or -ECONNABORTED after a network/status failure that rules this
 * mirror out (attempt recorded). */
static int incremental(struct dbrun *d, size_t m, char *err, size_t errlen)
{
	char dir[PATH_MAX], file[PATH_MAX], e[FETCH_ERR_LEN];
	struct unpack_limits lim;
	struct fetch_result fr;
	struct cvd_header h;
	int dfd = -1, fd = -1, r;

	snprintf(dir, sizeof(dir), "%s/%s.patched", d->req->work_dir, d->name);
	util_rm_rf(dir);
	if (mkdir(dir, 0700) < 0 || (dfd = open(dir, O_DIRECTORY | O_RDONLY | O_CLOEXEC)) < 0) {
		snprintf(err, errlen, "%.300s: %s", dir, strerror(errno));
		return -errno;
	}
	for (uint32_t v = d->local + 1; v <= d->remote; v++) {
		char leaf[128];

		snprintf(leaf, sizeof(leaf), "%s-%u.cdiff", d->name, v);
		snprintf(file, sizeof(file), "%s/%s", d->req->work_dir, leaf);
		r = get(d, m, leaf, file, false, &fr, e);
		if (r == -ENOENT) {
			snprintf(err, errlen, "%s", e);
			goto out;
		}
		if (r) {
			attempt(d, m, "failed", &fr, fr.kind, e);
			r = -ECONNABORTED;
			goto out;
		}
		r = patch_sign(d, m, leaf, file, err, errlen);
		if (r)
			goto out;
	}
	fd = open(d->local_path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		r = -errno;
		snprintf(err, errlen, "%.300s: %s", d->local_path, strerror(errno));
		goto out;
	}
	unpack_limits_default(&lim);
	r = unpack_fd(fd, CVD_HEADER_LEN, dfd, &lim, NULL, e);
	util_close(&fd);
	if (r) {
		snprintf(err, errlen, "unpacking the active %.64s: %.400s", d->name, e);
		goto out;
	}
	for (uint32_t v = d->local + 1; v <= d->remote; v++) {
		char ce[CDIFF_ERR_LEN];

		snprintf(file, sizeof(file), "%s/%s-%u.cdiff", d->req->work_dir, d->name, v);
		fd = open(file, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			snprintf(ce, sizeof(ce), "%s", strerror(errno));
		r = fd < 0 ? -errno : cdiff_apply(fd, dfd, d->name, NULL, ce);
		util_close(&fd);
		if (r) {
			snprintf(err, errlen, "%.64s-%u.cdiff does not apply: %.400s", d->name, v,
				 ce);
			goto out;
		}
		d->cdiffs++;
	}
	snprintf(d->file, sizeof(d->file), "%s/%s.cld", d->req->work_dir, d->name);
	fd = open(d->file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0) {
		r = -errno;
		snprintf(err, errlen, "%.300s: %s", d->file, strerror(errno));
		goto out;
	}
	{
		char ce[CDIFF_ERR_LEN];

		r = cld_write(dfd, d->name, fd, &h, ce);
		if (r)
			snprintf(err, errlen, "building %.64s.cld: %.400s", d->name, ce);
	}
	if (!r && h.version != d->remote) {
		snprintf(err, errlen, "the patches give version %u, the mirror announced %u",
			 h.version, d->remote);
		r = -EBADMSG;
	}
	if (!r)
		d->incremental = true;
out:
	util_close(&fd);
	util_close(&dfd);
	util_rm_rf(dir);
	if (r) {
		d->cdiffs = 0;
		d->cdiff_signed = 0;
	}
	return r;
}

/* The whole <db>.cvd and its .sign. Returns 0 or -errno (attempt recorded). */
static int whole(struct dbrun *d, size_t m)
{
	char leaf[128], e[FETCH_ERR_LEN], why[REASON_LEN], sign[PATH_MAX + 8];
	struct fetch_result fr;
	struct cvd_header h;
	int r;

	snprintf(leaf, sizeof(leaf), "%s.cvd", d->name);
	snprintf(d->file, sizeof(d->file), "%s/%s", d->req->work_dir, leaf);
	r = get(d, m, leaf, d->file, false, &fr, e);
	if (r) {
		attempt(d, m, "failed", &fr, fr.kind, e);
		return r;
	}
	r = read_header(d->file, &h, e, sizeof(e));
	if (r) {
		snprintf(why, sizeof(why), "%s/%s: %s", d->req->mirrors->v[m].url, leaf, e);
		attempt(d, m, "failed", NULL, UPD_FAIL_BAD_DATA, why);
		return r;
	}
	if (h.version != d->remote) {
		snprintf(why, sizeof(why),
			 "%s/%s: mirror out of sync: it announced version %u and served %u",
			 d->req->mirrors->v[m].url, leaf, d->remote, h.version);
		attempt(d, m, "failed", NULL,
			h.version < d->remote ? UPD_FAIL_STALE : UPD_FAIL_BAD_DATA, why);
		return -EBADMSG;
	}
	snprintf(leaf, sizeof(leaf), "%s-%u.cvd.sign", d->name, d->remote);
	snprintf(sign, sizeof(sign), "%s.sign", d->file);
	r = get(d, m, leaf, sign, false, &fr, e);
	if (r == 0)
		util_strlcpy(d->sign, sign, sizeof(d->sign));
	else if (r == -ENOENT)
		unlink(sign); /* no .sign on this mirror: the container's own signature */
	else {
		attempt(d, m, "failed", &fr, fr.kind, e);
		return r;
	}
	return 0;
}

/* Ask mirror m. Returns 1 when this database is done (fetched or up to
 * date), 0 to go on with the next mirror. */
static int try_mirror(struct dbrun *d, size_t m)
{
	char leaf[128], file[PATH_MAX], e[FETCH_ERR_LEN], why[REASON_LEN];
	struct fetch_result fr;
	struct cvd_header h;
	enum upd_verdict v;
	int r;

	snprintf(leaf, sizeof(leaf), "%s.cvd", d->name);
	snprintf(file, sizeof(file), "%s/%s.head", d->req->work_dir, d->name);
	r = get(d, m, leaf, file, true, &fr, e);
	if (r) {
		attempt(d, m, "failed", &fr, fr.kind, e);
		return 0;
	}
	r = read_header(file, &h, e, sizeof(e));
	unlink(file);
	if (r) {
		snprintf(why, sizeof(why), "%s/%s: %s", d->req->mirrors->v[m].url, leaf, e);
		attempt(d, m, "failed", NULL, UPD_FAIL_BAD_DATA, why);
		return 0;
	}
	d->remote = h.version;
	d->mirror = (int)m;
	v = upd_compare(d->local, h.version);
	if (v == UPD_UP_TO_DATE) {
		attempt(d, m, "ok", NULL, 0, NULL);
		d->result = "up to date";
		return 1;
	}
	if (v == UPD_STALE) {
		snprintf(why, sizeof(why),
			 "%s is stale: it has %s version %u, this host has %u (never a downgrade)",
			 d->req->mirrors->v[m].url, d->name, h.version, d->local);
		attempt(d, m, "failed", NULL, UPD_FAIL_STALE, why);
		return 0;
	}
	if (d->local && d->local_path[0] && d->req->scripted_updates &&
	    h.version - d->local <= UPD_MAX_CDIFFS) {
		r = incremental(d, m, e, sizeof(e));
		if (r == -ECONNABORTED)
			return 0;
		if (r == 0) {
			attempt(d, m, "ok", NULL, 0, NULL);
			d->result = "fetched";
			return 1;
		}
		log_info("update: %s: %s; fetching the whole %s.cvd", d->name, e, d->name);
	}
	if (whole(d, m))
		return 0;
	attempt(d, m, "ok", NULL, 0, NULL);
	d->result = "fetched";
	return 1;
}

static struct json_object *db_json(const struct dbrun *d, uint64_t ms)
{
	struct json_object *o = json_object_new_object();
	bool failed = !strcmp(d->result, "failed");

	json_object_object_add(o, "name", json_object_new_string(d->name));
	json_object_object_add(o, "result", json_object_new_string(d->result));
	json_object_object_add(o, "old_version", json_object_new_int64(d->local));
	json_object_object_add(o, "mirror_version",
			       d->remote ? json_object_new_int64(d->remote) : NULL);
	json_object_object_add(o, "mirror",
			       d->mirror >= 0 && !failed
				       ? json_object_new_string(d->req->mirrors->v[d->mirror].url)
				       : NULL);
	json_object_object_add(o, "incremental", json_object_new_boolean(d->incremental));
	json_object_object_add(o, "cdiffs", json_object_new_int((int)d->cdiffs));
	json_object_object_add(o, "cdiff_signatures", json_object_new_int((int)d->cdiff_signed));
	json_object_object_add(o, "bytes", json_object_new_int64((int64_t)d->bytes));
	json_object_object_add(o, "ms", json_object_new_int64((int64_t)ms));
	if (!strcmp(d->result, "fetched")) {
		json_object_object_add(o, "file", json_object_new_string(d->file));
		json_object_object_add(o, "sign",
				       d->sign[0] ? json_object_new_string(d->sign) : NULL);
	}
	if (failed) {
		json_object_object_add(o, "failure",
				       json_object_new_string(upd_failure_name(d->failure)));
		json_object_object_add(o, "reason", json_object_new_string(d->reason));
	}
	json_object_object_add(o, "attempts", json_object_get(d->attempts));
	return o;
}

static int run_db(const struct upd_cycle_req *req, const char *name, int sock)
{
	struct dbrun d = {.req = req, .name = name, .mirror = -1, .result = "failed"};
	uint64_t t0 = util_now_ms();
	struct json_object *o;
	const char *text;
	int r;

	d.attempts = json_object_new_array();
	find_local(&d);
	snprintf(d.reason, sizeof(d.reason), "no mirror could be asked");
	for (size_t m = 0; m < req->mirrors->n; m++) {
		if (req->skip && req->skip[m]) {
			attempt(&d, m, "skipped", NULL, req->skip_kind[m], req->skip_reason[m]);
			continue;
		}
		if (try_mirror(&d, m))
			break;
	}
	o = db_json(&d, util_now_ms() - t0);
	text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
	r = ipc_send(sock, UPD_MSG_DB, 0, text, strlen(text) + 1, -1);
	json_object_put(o);
	json_object_put(d.attempts);
	return r;
}

int upd_cycle_run(const struct upd_cycle_req *req, int sock)
{
	for (size_t i = 0; req->names[i]; i++) {
		int r = run_db(req, req->names[i], sock);

		if (r)
			return r;
	}
	return ipc_send(sock, UPD_MSG_DONE, 0, "", 1, -1);
}
