/* store_quarantine: the quarantine and the work directories of the
 * definitions store (see store.h). */
#include "defs/store.h"
#include "defs/store_int.h"
#include "common/log.h"
#include "common/jsonutil.h"
#include "common/util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#define WORK_MODE	 0700
#define TAG_MAX		 32   /* sanitised work directory tags */
#define LABEL_MAX	 64   /* sanitised quarantine labels */
#define QUARANTINE_TRIES 1000 /* name suffixes .1, .2, ... on a clash */
#define WORK_TRIES	 1000 /* work directory numbers tried on a clash */

/* Moves from (relative to the root) to quarantine/<stamp>-<base>, or
 * <stamp>-<base>.N when that exists, in one rename that never replaces;
 * the new path (relative to the root) into qrel[qlen]. */
static int move_to_quarantine(const struct defs_store *s, const char *from, const char *stamp,
			      const char *base, char *qrel, size_t qlen)
{
	int r = -EEXIST;

	for (unsigned int i = 0; i < QUARANTINE_TRIES && r == -EEXIST; i++) {
		int n = i ? snprintf(qrel, qlen, "%s/%s-%s.%u", QUARANTINE_DIR, stamp, base, i)
			  : snprintf(qrel, qlen, "%s/%s-%s", QUARANTINE_DIR, stamp, base);

		if ((size_t)n >= qlen)
			return -ENAMETOOLONG;
		r = store_rename_noreplace(s->rootfd, from, s->rootfd, qrel);
	}
	return r;
}

/* reason.json's content; gen 0 (a work directory) is null. */
static struct json_object *reason_new(unsigned int gen, time_t now, const char *stage,
				      const char *reason, const char *fingerprint, bool was_current,
				      struct json_object **detail)
{
	struct json_object *o = json_object_new_object(), *off = NULL;
	char when[32];

	if (!o)
		return NULL;
	store_utc_time(now, false, when, sizeof(when));
	/* the offending member (or line), where the validator named one */
	if (*detail && json_object_is_type(*detail, json_type_object))
		json_object_object_get_ex(*detail, "offending", &off);
	/* *detail moves into o only on success: the caller puts it otherwise */
	if ((gen ? jsonutil_add(o, "generation", json_object_new_int64(gen))
		 : store_jadd_str(o, "generation", NULL)) ||
	    store_jadd_str(o, "time", when) || store_jadd_str(o, "stage", stage) ||
	    store_jadd_str(o, "reason", reason) ||
	    store_jadd_str(o, "offending", off ? json_object_get_string(off) : NULL) ||
	    store_jadd_str(o, "fingerprint", fingerprint) ||
	    jsonutil_add(o, "was_current", json_object_new_boolean(was_current)) ||
	    json_object_object_add(o, "detail", *detail) < 0) {
		json_object_put(o);
		return NULL;
	}
	*detail = NULL;
	return o;
}

int defs_store_quarantine(struct defs_store *s, unsigned int gen, const char *stage,
			  const char *reason, struct json_object *detail, char *qpath, size_t qlen)
{
	char name[NAME_LEN], stamp[32], qrel[NAME_LEN * 3];
	char fp[DEFS_FINGERPRINT_LEN + 1];
	struct json_object *rj = NULL;
	bool have_fp, was_current;
	int qfd = -1, r;
	time_t now = time(NULL);

	if (qpath && qlen)
		qpath[0] = '\0';
	store_gen_name(gen, name);
	r = store_lock(s);
	if (r)
		goto out_put_detail;
	if (!gen || !store_is_dir_at(s->rootfd, name)) {
		r = -ENOENT;
		goto out_unlock;
	}
	/* a set with a broken manifest is quarantined all the same */
	have_fp = store_read_fingerprint_in(s->rootfd, name, MANIFEST_NAME, fp) == 0;
	was_current = defs_store_current(s) == gen;
	store_utc_time(now, true, stamp, sizeof(stamp));
	/* Transaction point: the generation leaves the set of activatable
	 * ones as a whole (one rename). */
	r = move_to_quarantine(s, name, stamp, name, qrel, sizeof(qrel));
	if (r)
		goto out_unlock;
	util_crash_point("store.quarantine.moved");
	if (qpath && qlen)
		snprintf(qpath, qlen, "%s/%s", s->root, qrel);
	r = store_fsync_fd(s->rootfd);
	if (!r)
		r = store_fsync_at(s->rootfd, QUARANTINE_DIR);
	if (r)
		goto out_unlock;
	qfd = openat(s->rootfd, qrel, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (qfd < 0) {
		r = -errno;
		goto out_unlock;
	}
	rj = reason_new(gen, now, stage, reason, have_fp ? fp : NULL, was_current, &detail);
	r = rj ? store_write_json_atomic(qfd, REASON_NAME, rj) : -ENOMEM;
	if (!r)
		util_crash_point("store.quarantine.reason");
	util_close(&qfd);
out_unlock:
	store_unlock(s);
out_put_detail:
	json_object_put(detail);
	json_object_put(rj);
	return r;
}

/* The fingerprint (as defs_store_import_dir's) of the files that
 * dirfd/sub would import into hex; -ENOENT when sub is no directory or
 * holds no such file. */
static int dir_fingerprint(int dirfd, const char *sub, char *hex)
{
	struct src_list l = {0};
	struct stat st;
	int fd, in, r;

	fd = openat(dirfd, sub, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOTDIR || errno == ELOOP ? -ENOENT : -errno;
	r = store_read_source(fd, &l, NULL);
	if (!r && !l.nfiles)
		r = -ENOENT;
	for (size_t i = 0; !r && i < l.n; i++) {
		struct src_entry *e = &l.v[i];

		if (e->skip)
			continue;
		in = openat(fd, e->name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
		if (in < 0) {
			r = -errno;
			break;
		}
		if (fstat(in, &st) < 0)
			r = -errno;
		else if (!S_ISREG(st.st_mode))
			r = -EAGAIN; /* swapped since it was listed */
		else
			r = store_sha256_fd(in, e->sha256, &e->size);
		util_close(&in);
	}
	if (!r)
		r = store_fingerprint_of(&l, hex);
	store_src_list_free(&l);
	util_close(&fd);
	return r;
}

int defs_store_make_work(struct defs_store *s, const char *tag, uid_t uid, gid_t gid, char *path,
			 size_t len, char *err)
{
	static unsigned int seq; /* this process's work directories */
	char t[TAG_MAX + 1], rel[NAME_LEN * 2];
	unsigned int i;
	int fd = -1, r;

	if (!path || !len) {
		store_set_err(err, "no room for the work directory's path");
		return -EINVAL;
	}
	path[0] = '\0';
	store_sanitise_name(tag, "work", TAG_MAX, t);
	r = store_lock(s);
	if (r) {
		store_set_err(err, "cannot lock the definitions store: %s", strerror(-r));
		return r;
	}
	/* a name taken is an earlier process's that had our pid */
	for (i = 0; i < WORK_TRIES; i++) {
		unsigned int n = __atomic_add_fetch(&seq, 1, __ATOMIC_RELAXED);

		snprintf(rel, sizeof(rel), "%s/%s%ld-%u-%s", STAGING_DIR, WORK_PREFIX,
			 (long)getpid(), n, t);
		if ((size_t)snprintf(path, len, "%s/%s", s->root, rel) >= len) {
			r = -ENAMETOOLONG;
			store_set_err(err, "the path of a work directory in %s is too long",
				      s->root);
			goto out_unlock;
		}
		if (mkdirat(s->rootfd, rel, WORK_MODE) == 0)
			break;
		if (errno != EEXIST) {
			r = -errno;
			store_set_err(err, "cannot create %s: %s", path, strerror(-r));
			goto out_unlock;
		}
	}
	if (i == WORK_TRIES) {
		r = -EEXIST;
		store_set_err(err, "cannot create a work directory in %s/%s", s->root, STAGING_DIR);
		goto out_unlock;
	}
	/* fchmod: whatever the umask, only its owner may look inside */
	fd = openat(s->rootfd, rel, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 || fchmod(fd, WORK_MODE) < 0 || (uid != (uid_t)-1 && fchown(fd, uid, gid) < 0)) {
		r = -errno;
		store_set_err(err, "cannot set up %s: %s", path, strerror(-r));
		goto err_remove;
	}
	goto out_unlock;

err_remove:
	unlinkat(s->rootfd, rel, AT_REMOVEDIR);
	path[0] = '\0';
out_unlock:
	util_close(&fd);
	if (r)
		path[0] = '\0';
	store_unlock(s);
	return r;
}

int defs_store_quarantine_dir(struct defs_store *s, const char *path, const char *label,
			      const char *stage, const char *reason, struct json_object *detail,
			      char *qpath, size_t qlen)
{
	char real[PATH_MAX], staging[PATH_MAX + sizeof(STAGING_DIR) + 1], lab[LABEL_MAX + 1];
	char stamp[32];
	char from[NAME_MAX + sizeof(STAGING_DIR) + 1], qrel[NAME_LEN * 3];
	char fp[DEFS_FINGERPRINT_LEN + 1];
	struct json_object *rj = NULL;
	const char *base;
	bool have_fp;
	int qfd = -1, r;
	time_t now = time(NULL);

	if (qpath && qlen)
		qpath[0] = '\0';
	if (!path) {
		r = -EINVAL;
		goto out_put_detail;
	}
	store_sanitise_name(label, "work", LABEL_MAX, lab);
	/* "<time>-gen-N" is a quarantined generation's name (next_gen) */
	if (!strncmp(lab, "gen-", 4))
		lab[3] = '_';
	r = store_lock(s);
	if (r)
		goto out_put_detail;
	if (!realpath(path, real)) {
		r = -errno;
		goto out_unlock;
	}
	/* s->root is resolved already, and staging/ is no symlink */
	snprintf(staging, sizeof(staging), "%s/%s", s->root, STAGING_DIR);
	base = strrchr(real, '/');
	if (!base || (size_t)(base - real) != strlen(staging) ||
	    strncmp(real, staging, (size_t)(base - real)) ||
	    (size_t)snprintf(from, sizeof(from), "%s/%s", STAGING_DIR, base + 1) >= sizeof(from) ||
	    !store_is_dir_at(s->rootfd, from)) {
		r = -EINVAL;
		goto out_unlock;
	}
	store_utc_time(now, true, stamp, sizeof(stamp));
	/* Transaction point: the candidate leaves staging (where open would
	 * remove it) for the quarantine as a whole (one rename). */
	r = move_to_quarantine(s, from, stamp, lab, qrel, sizeof(qrel));
	if (r)
		goto out_unlock;
	util_crash_point("store.quarantine_dir.moved");
	if (qpath && qlen)
		snprintf(qpath, qlen, "%s/%s", s->root, qrel);
	r = store_fsync_at(s->rootfd, STAGING_DIR);
	if (!r)
		r = store_fsync_at(s->rootfd, QUARANTINE_DIR);
	if (r)
		goto out_unlock;
	qfd = openat(s->rootfd, qrel, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (qfd < 0) {
		r = -errno;
		goto out_unlock;
	}
	/* the less-privileged process that filled it (its owner) keeps no
	 * way into the evidence nor to the record written next */
	if (geteuid() == 0 && fchown(qfd, 0, 0) < 0)
		log_warn("definitions store: cannot give %s/%s to root: %s", s->root, qrel,
			 strerror(errno));
	have_fp = dir_fingerprint(qfd, WORK_SET, fp) == 0;
	rj = reason_new(0, now, stage, reason, have_fp ? fp : NULL, false, &detail);
	r = rj ? store_write_json_atomic(qfd, REASON_NAME, rj) : -ENOMEM;
	if (!r)
		util_crash_point("store.quarantine_dir.reason");
	util_close(&qfd);
out_unlock:
	store_unlock(s);
out_put_detail:
	json_object_put(detail);
	json_object_put(rj);
	return r;
}

/* The fingerprint of quarantine entry name (in qdirfd) into hex: from its
 * reason.json; lacking a usable one (a crash right after the move did not
 * let us write it), from its manifest (a generation's) or the files of its
 * set/ (a work directory's). */
static int quarantined_fingerprint(int qdirfd, const char *name, char *hex)
{
	char set[NAME_MAX + sizeof(WORK_SET) + 1];
	int r;

	if (store_read_fingerprint_in(qdirfd, name, REASON_NAME, hex) == 0)
		return 0;
	r = store_read_fingerprint_in(qdirfd, name, MANIFEST_NAME, hex);
	if (r != -ENOENT)
		return r;
	if ((size_t)snprintf(set, sizeof(set), "%s/%s", name, WORK_SET) >= sizeof(set))
		return -ENAMETOOLONG;
	return dir_fingerprint(qdirfd, set, hex);
}

bool defs_store_find_quarantined(const struct defs_store *s, const char *fingerprint, char *qpath,
				 size_t qlen)
{
	char best[NAME_MAX + 1] = "", fp[DEFS_FINGERPRINT_LEN + 1];
	struct dirent *de;
	DIR *d;

	if (!fingerprint || !store_is_fingerprint(fingerprint))
		return false;
	d = store_open_dir_at(s->rootfd, QUARANTINE_DIR);
	if (!d)
		return false;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		if (quarantined_fingerprint(dirfd(d), de->d_name, fp))
			continue;
		/* of several, the latest: names start with the time */
		if (!strcasecmp(fp, fingerprint) && strcmp(de->d_name, best) > 0)
			util_strlcpy(best, de->d_name, sizeof(best));
	}
	closedir(d);
	if (!best[0])
		return false;
	if (qpath && qlen)
		snprintf(qpath, qlen, "%s/%s/%s", s->root, QUARANTINE_DIR, best);
	return true;
}

/* Whether the quarantined generation name (in qdirfd) was set aside when
 * its engine failed to load ("load") and its manifest lists database db at
 * version. */
static bool failed_with(int qdirfd, const char *name, const char *db, uint32_t version)
{
	char path[NAME_MAX + 32];
	struct json_object *rj = NULL, *m = NULL, *v, *dbs;
	bool hit = false;

	snprintf(path, sizeof(path), "%s/%s", name, REASON_NAME);
	if (store_read_json_at(qdirfd, path, &rj) || !json_object_object_get_ex(rj, "stage", &v) ||
	    strcmp(json_object_get_string(v), "load") != 0)
		goto out;
	snprintf(path, sizeof(path), "%s/%s", name, MANIFEST_NAME);
	if (store_read_json_at(qdirfd, path, &m) ||
	    !json_object_object_get_ex(m, "databases", &dbs))
		goto out;
	for (size_t i = 0; !hit && i < json_object_array_length(dbs); i++) {
		struct json_object *d = json_object_array_get_idx(dbs, i), *n, *ver;

		hit = json_object_object_get_ex(d, "name", &n) &&
		      json_object_object_get_ex(d, "version", &ver) &&
		      !strcmp(json_object_get_string(n), db) &&
		      (uint32_t)json_object_get_int64(ver) == version;
	}
out:
	json_object_put(rj);
	json_object_put(m);
	return hit;
}

bool defs_store_find_failed_db(const struct defs_store *s, const char *db, uint32_t version,
			       char *qpath, size_t qlen)
{
	char best[NAME_MAX + 1] = "";
	struct dirent *de;
	DIR *d = store_open_dir_at(s->rootfd, QUARANTINE_DIR);

	if (!d)
		return false;
	while ((de = readdir(d)))
		if (de->d_name[0] != '.' && strcmp(de->d_name, best) > 0 &&
		    failed_with(dirfd(d), de->d_name, db, version))
			util_strlcpy(best, de->d_name, sizeof(best));
	closedir(d);
	if (best[0] && qpath && qlen)
		snprintf(qpath, qlen, "%s/%s/%s", s->root, QUARANTINE_DIR, best);
	return best[0] != '\0';
}
