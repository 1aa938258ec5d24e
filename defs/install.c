/* install: the definitions install transaction (see install.h). */
#include "defs/install.h"
#include "common/jsonutil.h"
#include "common/log.h"
#include "common/util.h"
#include "defs/store.h"
#include "defs/validate.h"
#include "sandbox/memlimit.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/wait.h>

#define RESULT_NAME "result.json"
#define INPUT_DIR   "in"
#define MAX_INPUTS  256

static struct json_object *read_result(const struct install_job *job);

/* ---- the validator process ---- */

/* Make this process the OOM killer's first choice (oom_score_adj 1000);
 * best effort, children inherit it. */
static void prefer_oom_kill(void)
{
	int fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);

	if (fd < 0)
		return;
	if (write(fd, "1000", 4) != 4)
		dprintf(2, "validator: cannot raise oom_score_adj: %s\n", strerror(errno));
	close(fd);
}

static void progress_to_fd(void *arg, const char *line)
{
	int fd = *(const int *)arg;

	dprintf(fd, "%s\n", line);
}

/* Write the result where the parent reads it: a temporary file renamed
 * into place, so a validator killed while writing leaves no result. */
static int write_result(const char *work, struct json_object *j)
{
	char tmp[PATH_MAX + 32], path[PATH_MAX + 32];

	snprintf(tmp, sizeof(tmp), "%s/.%s.tmp", work, RESULT_NAME);
	snprintf(path, sizeof(path), "%s/%s", work, RESULT_NAME);
	if (json_object_to_file_ext(tmp, j, JSON_C_TO_STRING_PLAIN) < 0)
		return -EIO;
	return rename(tmp, path) < 0 ? -errno : 0;
}

static void __attribute__((noreturn))
validator_main(const struct install_req *req, const char *const *files, size_t nfiles,
	       const char *activedir, const char *work)
{
	struct validate_policy pol = {
		.cfg = req->cfg,
		.id = req->id,
		.force = req->force,
		.rollback = req->rollback,
		.local = req->local,
		.drop = req->drop,
		.ndrop = req->ndrop,
		.skip_unchanged = req->skip_unchanged,
	};
	struct validate_result res;
	struct json_object *j;
	int rc, fd = req->progress_fd;

	/* Nothing of the parent's but the progress pipe: a client connection
	 * of the service held open here would not see its EOF until the
	 * validation ends, and a sandbox holds no descriptor it was not
	 * given. */
	util_reset_signals();
	log_close();
	if (util_close_fds_except(&fd, fd >= 0 ? 1 : 0) < 0)
		_exit(71);
	if (fd >= 0) {
		pol.progress = progress_to_fd;
		pol.progress_arg = &fd;
	}
	/* The test load holds a second engine beside the running one: if
	 * memory runs out meanwhile, the OOM killer is to take the validator
	 * (the set is then refused), never the engine that scans. */
	prefer_oom_kill();
	/* The definitions are parsed here and nowhere with more rights. */
	if (geteuid() == 0 && req->id && req->id->valid && sandbox_drop_privileges(req->id) < 0)
		_exit(71);
	rc = validate_candidate(files, nfiles, activedir, work, &pol, &res);
	j = validate_result_json(&res);
	validate_result_free(&res);
	if (!j || jsonutil_add(j, "rc", json_object_new_int(rc)) || write_result(work, j))
		_exit(70);
	json_object_put(j);
	_exit(0);
}

/* Copy src into dir under its base name; *dst gets the copy's path (may
 * be NULL). -EEXIST when dir has that name already. */
static int copy_one(const char *src, const char *dir, char **dst, char *err)
{
	const char *base = strrchr(src, '/');
	char path[PATH_MAX * 2];
	int in, o, r;

	base = base ? base + 1 : src;
	snprintf(path, sizeof(path), "%s/%s", dir, base);
	in = open(src, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (in < 0) {
		r = -errno;
		snprintf(err, INSTALL_ERR_LEN, "cannot read %.400s: %s", src, strerror(-r));
		return r;
	}
	o = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (o < 0) {
		r = -errno;
		close(in);
		if (r == -EEXIST)
			snprintf(err, INSTALL_ERR_LEN, "two files named %.200s given", base);
		else
			snprintf(err, INSTALL_ERR_LEN, "cannot create %.400s: %s", path,
				 strerror(-r));
		return r;
	}
	r = util_copy_fd(in, o, NULL);
	if (!r && fchmod(o, 0644) < 0)
		r = -errno;
	close(in);
	close(o);
	if (r)
		snprintf(err, INSTALL_ERR_LEN, "cannot copy %.400s: %s", src, strerror(-r));
	else if (dst && !(*dst = strdup(path)))
		r = -ENOMEM;
	return r;
}

/* Copy each input into <work>/in/, and the .sign beside each one that has
 * one, with the caller's rights: the validator reads copies it can read
 * and nobody can change. */
static int copy_inputs(const struct install_req *req, const char *work, char ***out, size_t *nout,
		       uid_t uid, gid_t gid, char *err)
{
	char dir[PATH_MAX + 8], **v;
	size_t n = 0;
	int r = 0;

	*out = NULL;
	*nout = 0;
	if (req->nfiles > MAX_INPUTS) {
		snprintf(err, INSTALL_ERR_LEN, "at most %d files at once", MAX_INPUTS);
		return -E2BIG;
	}
	v = calloc(req->nfiles + 1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	snprintf(dir, sizeof(dir), "%s/%s", work, INPUT_DIR);
	if (mkdir(dir, 0755) < 0) {
		r = -errno;
		snprintf(err, INSTALL_ERR_LEN, "cannot create %.400s: %s", dir, strerror(-r));
	}
	for (size_t i = 0; i < req->nfiles && !r; i++) {
		r = copy_one(req->files[i], dir, &v[n], err);
		n += !r;
	}
	for (size_t i = 0; i < req->nfiles && !r; i++) {
		char sib[PATH_MAX + 8];

		snprintf(sib, sizeof(sib), "%s.sign", req->files[i]);
		if (access(sib, F_OK) == 0) {
			r = copy_one(sib, dir, NULL, err);
			if (r == -EEXIST) /* given explicitly too */
				r = 0;
		}
	}
	/* the validator (the scan account) reads them */
	if (!r && uid != (uid_t)-1 && chown(dir, uid, gid) < 0)
		r = -errno;
	if (r) {
		for (size_t i = 0; i < n; i++)
			free(v[i]);
		free(v);
		return r;
	}
	*out = v;
	*nout = n;
	return 0;
}

/* In work: copy the inputs when asked, create v/, fork the validator over
 * activedir (NULL: none). */
static int spawn(const struct install_req *req, const char *activedir, const char *work, pid_t *pid,
		 char *err)
{
	const struct sandbox_identity *id = req->id;
	bool drop = geteuid() == 0 && id && id->valid;
	uid_t uid = drop ? id->uid : (uid_t)-1;
	gid_t gid = drop ? id->gid : (gid_t)-1;
	const char *const *files = req->files;
	size_t nfiles = req->nfiles, ncopies = 0;
	char vdir[PATH_MAX + 8], **copies = NULL;
	int r;

	*pid = 0;
	if (req->copy_inputs) {
		r = copy_inputs(req, work, &copies, &ncopies, uid, gid, err);
		if (r)
			return r;
		files = (const char *const *)copies;
		nfiles = ncopies;
	}
	/* validate_candidate wants an empty directory of its own */
	snprintf(vdir, sizeof(vdir), "%s/v", work);
	if (mkdir(vdir, 0755) < 0 || (drop && chown(vdir, uid, gid) < 0)) {
		r = -errno;
		snprintf(err, INSTALL_ERR_LEN, "cannot create %.400s: %s", vdir, strerror(-r));
		goto out;
	}
	fflush(NULL);
	*pid = fork();
	if (*pid < 0) {
		r = -errno;
		*pid = 0;
		snprintf(err, INSTALL_ERR_LEN, "cannot start the validator: %s", strerror(-r));
		goto out;
	}
	if (*pid == 0)
		validator_main(req, files, nfiles, activedir, vdir);
	r = 0;
out:
	for (size_t i = 0; i < ncopies; i++)
		free(copies[i]);
	free(copies);
	return r;
}

int install_start(struct defs_store *s, const struct install_req *req, struct install_job *job,
		  char *err)
{
	const struct sandbox_identity *id = req->id;
	bool drop = geteuid() == 0 && id && id->valid;
	char active[PATH_MAX];
	int r;

	memset(job, 0, sizeof(*job));
	job->base_gen = defs_store_current(s);
	if (job->base_gen && defs_store_gen_path(s, job->base_gen, active, sizeof(active)) < 0)
		job->base_gen = 0;
	r = defs_store_make_work(s, req->origin ? req->origin : "install",
				 drop ? id->uid : (uid_t)-1, drop ? id->gid : (gid_t)-1, job->work,
				 sizeof(job->work), err);
	if (r)
		return r;
	job->oom_kills = memlimit_host_oom_kills();
	r = spawn(req, job->base_gen ? active : NULL, job->work, &job->pid, err);
	if (r) {
		util_rm_rf(job->work);
		job->work[0] = '\0';
	}
	return r;
}

int install_verify(const struct install_req *req, const char *activedir, const char *tmpdir,
		   struct json_object **result, char *err)
{
	const struct sandbox_identity *id = req->id;
	bool drop = geteuid() == 0 && id && id->valid;
	struct install_job job = {0};
	struct install_req copy;
	struct json_object *v;
	int r;

	*result = NULL;
	snprintf(job.work, sizeof(job.work), "%s/scanengine-verify.XXXXXX",
		 tmpdir && *tmpdir ? tmpdir : "/tmp");
	if (!mkdtemp(job.work)) {
		r = -errno;
		snprintf(err, INSTALL_ERR_LEN, "cannot create a work directory in %.400s: %s",
			 tmpdir, strerror(-r));
		return r;
	}
	if (drop && chown(job.work, id->uid, id->gid) < 0) {
		r = -errno;
		snprintf(err, INSTALL_ERR_LEN, "cannot hand %.400s to %s: %s", job.work, id->name,
			 strerror(-r));
		goto out;
	}
	copy = *req;
	copy.copy_inputs = true;
	r = spawn(&copy, activedir, job.work, &job.pid, err);
	if (!r)
		r = install_wait(&job, true);
	if (r)
		goto out;
	*result = read_result(&job);
	if (!*result) {
		r = -EIO;
		if (WIFSIGNALED(job.status))
			snprintf(err, INSTALL_ERR_LEN,
				 "the validator process died of signal %d (%s)",
				 WTERMSIG(job.status), strsignal(WTERMSIG(job.status)));
		else
			snprintf(err, INSTALL_ERR_LEN,
				 "the validator process exited with status %d without a report",
				 WIFEXITED(job.status) ? WEXITSTATUS(job.status) : -1);
		goto out;
	}
	r = json_object_object_get_ex(*result, "rc", &v) ? json_object_get_int(v) : -EIO;
	if (r && r != -EBADMSG)
		snprintf(err, INSTALL_ERR_LEN, "validation could not run: %s",
			 json_object_object_get_ex(*result, "reason", &v)
				 ? json_object_get_string(v)
				 : strerror(-r));
out:
	util_rm_rf(job.work);
	return r;
}

int install_wait(struct install_job *job, bool block)
{
	pid_t p;

	if (!job->pid)
		return 0;
	for (;;) {
		p = waitpid(job->pid, &job->status, block ? 0 : WNOHANG);
		if (p < 0 && errno == EINTR)
			continue;
		if (p < 0)
			return -errno;
		if (p == 0)
			return 1;
		job->pid = 0;
		return 0;
	}
}

void install_abort(struct install_job *job)
{
	if (job->pid) {
		kill(job->pid, SIGKILL);
		install_wait(job, true);
	}
	if (job->work[0])
		util_rm_rf(job->work);
	job->work[0] = '\0';
}

/* ---- finishing ---- */

static const char *jstr(struct json_object *o, const char *key)
{
	struct json_object *v;

	return o && json_object_object_get_ex(o, key, &v) ? json_object_get_string(v) : NULL;
}

/* The entry of the active manifest for file name, or NULL. */
static struct json_object *active_entry(struct json_object *manifest, const char *file)
{
	struct json_object *dbs;

	if (!manifest || !json_object_object_get_ex(manifest, "databases", &dbs) ||
	    !json_object_is_type(dbs, json_type_array))
		return NULL;
	for (size_t i = 0; i < json_object_array_length(dbs); i++) {
		struct json_object *d = json_object_array_get_idx(dbs, i);
		const char *f = jstr(d, "file");

		if (f && !strcmp(f, file))
			return d;
	}
	return NULL;
}

/* The manifest's "databases": the validator's entries; a database carried
 * over keeps what the active manifest said of it (how it was authenticated,
 * where it came from, when). */
static struct json_object *databases_of(struct json_object *result, struct json_object *active,
					const char *origin, const char *when)
{
	struct json_object *in, *out = json_object_new_array();

	if (!out || !json_object_object_get_ex(result, "databases", &in))
		return out;
	for (size_t i = 0; i < json_object_array_length(in); i++) {
		struct json_object *d = json_object_array_get_idx(in, i), *nw, *prev, *copy = NULL;
		bool is_new =
			json_object_object_get_ex(d, "new", &nw) && json_object_get_boolean(nw);

		prev = is_new ? NULL : active_entry(active, jstr(d, "file") ? jstr(d, "file") : "");
		if (json_object_deep_copy(prev ? prev : d, &copy, NULL) < 0)
			break;
		if (is_new) {
			json_object_object_del(copy, "new");
			jsonutil_add(copy, "origin", json_object_new_string(origin));
			jsonutil_add(copy, "installed", json_object_new_string(when));
		} else if (!prev) {
			/* a set from before manifests described databases */
			json_object_object_del(copy, "new");
			jsonutil_add(copy, "origin", json_object_new_string("DatabaseDirectory"));
		}
		json_object_array_add(out, copy);
	}
	return out;
}

/* {file: sha256} of every file the validator checked, for the store to
 * compare the copies with. */
static struct json_object *expected_files(struct json_object *result)
{
	struct json_object *files, *copy = NULL;

	if (!json_object_object_get_ex(result, "set_files", &files) ||
	    json_object_deep_copy(files, &copy, NULL) < 0)
		return NULL;
	return copy;
}

static struct json_object *manifest_meta(struct json_object *result, struct json_object *active,
					 const struct install_req *req)
{
	struct json_object *m = json_object_new_object(), *v, *forced, *stages, *timings = NULL;
	char when[32];
	time_t now = time(NULL);
	struct tm tm;
	int r = m ? 0 : -ENOMEM;

	gmtime_r(&now, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	r = r ?: jsonutil_add(m, "origin", json_object_new_string(req->origin));
	r = r ?: jsonutil_add(m, "databases", databases_of(result, active, req->origin, when));
	forced = json_object_new_array();
	if (json_object_object_get_ex(result, "stages", &stages))
		for (size_t i = 0; forced && i < json_object_array_length(stages); i++) {
			struct json_object *st = json_object_array_get_idx(stages, i);
			const char *status = jstr(st, "status");

			if (status && !strcmp(status, "forced"))
				json_object_array_add(forced,
						      json_object_new_string(jstr(st, "stage")));
		}
	r = r ?: jsonutil_add(m, "forced", forced);
	/* each stage's result, reason and duration (deep_copy wants a NULL
	 * destination) */
	if (!r && json_object_object_get_ex(result, "stages", &v)) {
		r = json_object_deep_copy(v, &timings, NULL) == 0 ? 0 : -ENOMEM;
		r = r ?: jsonutil_add(m, "validation", timings);
	}
	if (!r && json_object_object_get_ex(result, "engine_kib", &v))
		r = jsonutil_add(m, "engine_kib", json_object_new_int64(json_object_get_int64(v)));
	if (!r && req->actor)
		r = jsonutil_add(m, "installed_by", json_object_new_string(req->actor));
	r = r ?: jsonutil_add(m, "expected_files", expected_files(result));
	if (r) {
		json_object_put(m);
		return NULL;
	}
	return m;
}

/* A history entry's detail: what came in, forced stages, who did it. */
static struct json_object *history_detail(struct json_object *result, const struct install_req *req,
					  const char *qpath)
{
	struct json_object *d = json_object_new_object(), *dbs, *files = json_object_new_array();
	const char *s;

	if (!d || !files) {
		json_object_put(d);
		json_object_put(files);
		return NULL;
	}
	if (result && json_object_object_get_ex(result, "databases", &dbs))
		for (size_t i = 0; i < json_object_array_length(dbs); i++) {
			struct json_object *db = json_object_array_get_idx(dbs, i), *nw, *ver;
			char line[300];

			if (!json_object_object_get_ex(db, "new", &nw) ||
			    !json_object_get_boolean(nw))
				continue;
			if (json_object_object_get_ex(db, "version", &ver))
				snprintf(line, sizeof(line), "%s version %d", jstr(db, "file"),
					 json_object_get_int(ver));
			else
				snprintf(line, sizeof(line), "%s", jstr(db, "file"));
			json_object_array_add(files, json_object_new_string(line));
		}
	jsonutil_add(d, "databases", files);
	jsonutil_add(d, "origin", json_object_new_string(req->origin ? req->origin : "?"));
	if (req->actor)
		jsonutil_add(d, "actor", json_object_new_string(req->actor));
	if (req->force)
		jsonutil_add(d, "force", json_object_new_int((int)req->force));
	if ((s = jstr(result, "failed")))
		jsonutil_add(d, "stage", json_object_new_string(s));
	if ((s = jstr(result, "reason")))
		jsonutil_add(d, "reason", json_object_new_string(s));
	if (qpath)
		jsonutil_add(d, "quarantine", json_object_new_string(qpath));
	return d;
}

static struct json_object *read_result(const struct install_job *job)
{
	char path[PATH_MAX + 32];

	snprintf(path, sizeof(path), "%s/v/%s", job->work, RESULT_NAME);
	return json_object_from_file(path);
}

/* Quarantine the work directory with the reason. */
static int reject(struct defs_store *s, struct install_job *job, const struct install_req *req,
		  struct json_object *result, const char *stage, struct install_outcome *out)
{
	struct json_object *detail = NULL, *off;
	char label[80];
	int r;

	if (result && json_object_deep_copy(result, &detail, NULL) < 0)
		detail = NULL;
	snprintf(label, sizeof(label), "%s", req->origin ? req->origin : "install");
	util_crash_point("install.reject");
	r = defs_store_quarantine_dir(s, job->work, label, stage, out->reason, detail, out->qpath,
				      sizeof(out->qpath));
	if (r) {
		log_error("cannot quarantine the refused definitions in %s: %s", job->work,
			  strerror(-r));
		util_rm_rf(job->work);
	} else if (result && json_object_object_get_ex(result, "offending", &off)) {
		log_warn("refused definitions quarantined in %s (%s)", out->qpath,
			 json_object_get_string(off));
	}
	job->work[0] = '\0';
	defs_store_history_add(s, "refused", 0, history_detail(result, req, out->qpath));
	return -EBADMSG;
}

int install_finish(struct defs_store *s, struct install_job *job, const struct install_req *req,
		   struct install_outcome *out)
{
	struct json_object *result, *v, *meta, *active = NULL;
	char setdir[PATH_MAX + 8], err[256];
	unsigned int gen = 0;
	int rc, r;

	memset(out, 0, sizeof(*out));
	result = read_result(job);
	out->result = result;
	if (!result) {
		/* no report: the validator died (a crash on hostile input, the
		 * OOM killer) or could not start */
		if (WIFSIGNALED(job->status) && WTERMSIG(job->status) == SIGKILL &&
		    memlimit_host_oom_kills() > job->oom_kills) {
			/* not the set's fault: not judged, not quarantined */
			snprintf(out->reason, sizeof(out->reason),
				 "insufficient memory: the validator was killed by the OOM "
				 "killer; the set was not judged");
			r = -ENOMEM;
			goto err_remove;
		}
		if (WIFSIGNALED(job->status)) {
			snprintf(out->reason, sizeof(out->reason),
				 "the validator process died of signal %d (%s)",
				 WTERMSIG(job->status), strsignal(WTERMSIG(job->status)));
			return reject(s, job, req, NULL, "validator", out);
		}
		snprintf(out->reason, sizeof(out->reason),
			 "the validator process exited with status %d without a report",
			 WIFEXITED(job->status) ? WEXITSTATUS(job->status) : -1);
		r = -EIO;
		goto err_remove;
	}
	rc = json_object_object_get_ex(result, "rc", &v) ? json_object_get_int(v) : -EIO;
	if (rc == -EBADMSG) {
		snprintf(out->reason, sizeof(out->reason), "%s: %s",
			 jstr(result, "failed") ? jstr(result, "failed") : "?",
			 jstr(result, "reason") ? jstr(result, "reason") : "?");
		return reject(s, job, req, result, jstr(result, "failed"), out);
	}
	if (rc) {
		struct json_object *st = NULL, *first;

		/* an internal failure: the reason of the stage that stopped */
		json_object_object_get_ex(result, "stages", &st);
		first = st ? json_object_array_get_idx(st, 0) : NULL;
		snprintf(out->reason, sizeof(out->reason), "validation could not run: %s",
			 jstr(result, "reason")	 ? jstr(result, "reason")
			 : jstr(first, "reason") ? jstr(first, "reason")
						 : strerror(-rc));
		r = rc;
		goto err_remove;
	}
	if (json_object_object_get_ex(result, "unchanged", &v) && json_object_get_boolean(v)) {
		out->unchanged = true;
		snprintf(out->reason, sizeof(out->reason), "nothing new");
		util_rm_rf(job->work);
		job->work[0] = '\0';
		return 0;
	}
	/* Passed. Built over the generation that is still current? */
	if (defs_store_current(s) != job->base_gen) {
		snprintf(out->reason, sizeof(out->reason),
			 "the active definitions changed (generation %u to %u) while the new set "
			 "was validated; run it again",
			 job->base_gen, defs_store_current(s));
		r = -EAGAIN;
		goto err_remove;
	}
	if (job->base_gen)
		active = defs_store_manifest(s, job->base_gen);
	meta = manifest_meta(result, active, req);
	json_object_put(active);
	if (!meta) {
		r = -ENOMEM;
		snprintf(out->reason, sizeof(out->reason), "out of memory");
		goto err_remove;
	}
	snprintf(setdir, sizeof(setdir), "%s/v/set", job->work);
	util_crash_point("install.import");
	r = defs_store_import_dir(s, setdir, meta, &gen, err);
	if (r == -EBADMSG) {
		/* not what was validated: someone changed the files */
		snprintf(out->reason, sizeof(out->reason), "import: %s", err);
		return reject(s, job, req, result, "import", out);
	}
	if (r) {
		snprintf(out->reason, sizeof(out->reason), "cannot import the set: %s", err);
		goto err_remove;
	}
	util_crash_point("install.activate");
	r = defs_store_activate(s, gen);
	if (r) {
		snprintf(out->reason, sizeof(out->reason), "cannot activate generation %u: %s", gen,
			 strerror(-r));
		goto err_remove;
	}
	out->gen = gen;
	util_crash_point("install.activated");
	defs_store_history_add(s, "installed", gen, history_detail(result, req, NULL));
	if (defs_store_prune(s) < 0)
		log_warn("cannot prune old definitions generations");
	util_rm_rf(job->work);
	job->work[0] = '\0';
	return 0;

err_remove:
	util_rm_rf(job->work);
	job->work[0] = '\0';
	return r;
}

/* The committer's report: install_finish's return value and outcome. */
struct commit_msg {
	int32_t rc;
	uint32_t gen;
	uint8_t unchanged;
	char qpath[PATH_MAX];
	char reason[INSTALL_ERR_LEN];
};

int install_finish_start(struct defs_store *s, struct install_job *job,
			 const struct install_req *req, struct install_commit *c)
{
	int pfd[2], r;

	c->pid = 0;
	c->fd = -1;
	if (pipe2(pfd, O_CLOEXEC) < 0)
		return -errno;
	fflush(NULL);
	c->pid = fork();
	if (c->pid < 0) {
		r = -errno;
		c->pid = 0;
		close(pfd[0]);
		close(pfd[1]);
		return r;
	}
	if (c->pid == 0) {
		int keep[] = {pfd[1], defs_store_fd(s), log_file_fd()};
		struct install_outcome out;
		struct commit_msg m;

		util_reset_signals();
		log_before_close_fds();
		if (util_close_fds_except(keep, keep[2] >= 0 ? 3 : 2) < 0)
			_exit(71);
		memset(&m, 0, sizeof(m));
		m.rc = install_finish(s, job, req, &out);
		m.gen = out.gen;
		m.unchanged = out.unchanged;
		util_strlcpy(m.qpath, out.qpath, sizeof(m.qpath));
		util_strlcpy(m.reason, out.reason, sizeof(m.reason));
		_exit(util_write_all(pfd[1], &m, sizeof(m)) ? 70 : 0);
	}
	close(pfd[1]);
	c->fd = pfd[0];
	return 0;
}

int install_finish_collect(struct install_commit *c, struct install_job *job, int status,
			   struct install_outcome *out)
{
	struct commit_msg m;
	ssize_t n = c->fd >= 0 ? util_read_all(c->fd, &m, sizeof(m)) : -EBADF;
	struct stat st;

	memset(out, 0, sizeof(*out));
	util_close(&c->fd);
	c->pid = 0;
	/* the committer removes it; if it died first, nothing else will */
	if (job->work[0] && stat(job->work, &st) == 0)
		util_rm_rf(job->work);
	job->work[0] = '\0';
	if (n != (ssize_t)sizeof(m)) {
		if (WIFSIGNALED(status))
			snprintf(out->reason, sizeof(out->reason),
				 "the process committing the definitions died of signal %d (%s)",
				 WTERMSIG(status), strsignal(WTERMSIG(status)));
		else
			snprintf(out->reason, sizeof(out->reason),
				 "the process committing the definitions exited with status %d "
				 "without a report",
				 WIFEXITED(status) ? WEXITSTATUS(status) : -1);
		return -EIO;
	}
	m.qpath[sizeof(m.qpath) - 1] = '\0';
	m.reason[sizeof(m.reason) - 1] = '\0';
	out->gen = m.gen;
	out->unchanged = m.unchanged;
	util_strlcpy(out->qpath, m.qpath, sizeof(out->qpath));
	util_strlcpy(out->reason, m.reason, sizeof(out->reason));
	return m.rc;
}

int install_run(struct defs_store *s, const struct install_req *req, struct install_outcome *out)
{
	struct install_job job;
	int r;

	memset(out, 0, sizeof(*out));
	r = install_start(s, req, &job, out->reason);
	if (r)
		return r;
	r = install_wait(&job, true);
	if (r < 0) {
		snprintf(out->reason, sizeof(out->reason), "cannot wait for the validator: %s",
			 strerror(-r));
		install_abort(&job);
		return r;
	}
	return install_finish(s, &job, req, out);
}
