/* store: the definitions store of DESIGN.md section 4 (see store.h). */
#include "defs/store.h"
#include "common/log.h"
#include "common/digest.h"
#include "common/jsonutil.h"
#include "common/util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>
#include <openssl/evp.h>

#define STAGING_DIR	 "staging"
#define QUARANTINE_DIR	 "quarantine"
#define CURRENT_LINK	 "current"
#define CURRENT_TMP	 "current.tmp-"
#define MANIFEST_NAME	 "manifest.json"
#define REASON_NAME	 "reason.json"
#define HISTORY_NAME	 "history.jsonl"
#define HISTORY_TMP	 "history.jsonl.tmp-"
#define WORK_PREFIX	 "work-"
#define WORK_SET	 "set"		  /* a work directory's candidate set */
#define EXPECTED_FILES	 "expected_files" /* the import's meta member checked, not kept */
#define WORK_MODE	 0700
#define TAG_MAX		 32 /* sanitised work directory tags */
#define LABEL_MAX	 64 /* sanitised quarantine labels */
#define DIR_MODE	 0755
#define FILE_MODE	 0644
#define ERR_LEN		 256
#define NAME_LEN	 64	    /* "gen-NNNNNN", temporary and quarantine names */
#define JSON_FILE_MAX	 (4u << 20) /* manifests and reasons are ours and small */
#define QUARANTINE_TRIES 1000	    /* name suffixes .1, .2, ... on a clash */
#define WORK_TRIES	 1000	    /* work directory numbers tried on a clash */
#define STAMP_LEN	 16	    /* YYYYmmddTHHMMSSZ */

struct defs_store {
	int rootfd;
	unsigned int keep;
	char root[PATH_MAX];
	char current[PATH_MAX];
};

/* One entry of the source directory: a file to import (skip == NULL) or
 * what is reported in the manifest's "skipped". */
struct src_entry {
	char *name;
	const char *skip;
	uint64_t size;
	char sha256[DEFS_FINGERPRINT_LEN + 1];
};

struct src_list {
	struct src_entry *v;
	size_t n, cap;
	size_t nfiles;
};

static void set_err(char *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void set_err(char *err, const char *fmt, ...)
{
	int saved = errno;
	va_list ap;

	if (!err)
		return;
	va_start(ap, fmt);
	vsnprintf(err, ERR_LEN, fmt, ap);
	va_end(ap);
	errno = saved;
}

/* ---- names ---- */

static void gen_name(unsigned int gen, char *buf)
{
	snprintf(buf, NAME_LEN, "gen-%06u", gen);
}

/* Parses the digits of a generation number (at least 6, as gen-%06u prints
 * them; 0 is no generation) at p. Returns a pointer past them or NULL. */
static const char *parse_gen_digits(const char *p, unsigned int *gen)
{
	unsigned long v = 0;
	size_t n = 0;

	for (; *p >= '0' && *p <= '9'; p++, n++) {
		v = v * 10 + (unsigned long)(*p - '0');
		if (v > UINT_MAX)
			return NULL;
	}
	if (n < 6 || v == 0)
		return NULL;
	*gen = (unsigned int)v;
	return p;
}

/* Whether name is exactly a generation's name, as gen_name() prints it
 * (so that "gen-0000001" and "gen-000001" cannot both be generation 1). */
static bool is_gen_name(const char *name, unsigned int *gen)
{
	char canon[NAME_LEN];
	const char *end;

	if (strncmp(name, "gen-", 4))
		return false;
	end = parse_gen_digits(name + 4, gen);
	if (!end || *end)
		return false;
	gen_name(*gen, canon);
	return !strcmp(canon, name);
}

/* The generation number a staging ("gen-N.tmp-PID", "gen-N.del-PID") or
 * quarantine ("<time>-gen-N", "<time>-gen-N.K") entry carries. Work
 * directories ("work-PID-SEQ-TAG") and quarantined ones ("<time>-LABEL",
 * where LABEL never starts with "gen-") carry none, whatever their tag or
 * label holds. */
static bool gen_in_name(const char *name, bool quarantine, unsigned int *gen)
{
	const char *p = name;
	const char *end;

	if (quarantine) {
		if (strlen(name) <= STAMP_LEN || name[STAMP_LEN - 1] != 'Z' ||
		    name[STAMP_LEN] != '-')
			return false;
		p = name + STAMP_LEN + 1;
	}
	if (strncmp(p, "gen-", 4))
		return false;
	end = parse_gen_digits(p + 4, gen);
	return end && (*end == '\0' || *end == '.');
}

/* Copies in (NULL or "": dflt) into out[max + 1], characters other than
 * [A-Za-z0-9._-] replaced by '_', cut at max: a tag or label that can
 * neither leave its directory nor hide in a listing. */
static void sanitise_name(const char *in, const char *dflt, size_t max, char *out)
{
	size_t i;

	if (!in || !*in)
		in = dflt;
	for (i = 0; in[i] && i < max; i++) {
		char c = in[i];
		bool keep = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
			    (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';

		out[i] = keep ? c : '_';
	}
	out[i] = '\0';
}

static bool is_fingerprint(const char *s)
{
	size_t i;

	for (i = 0; s[i]; i++)
		if (!strchr("0123456789abcdefABCDEF", s[i]))
			return false;
	return i == DEFS_FINGERPRINT_LEN;
}

/* UTC time as "YYYY-mm-ddTHH:MM:SSZ", or compact "YYYYmmddTHHMMSSZ" (for
 * file names). */
static void utc_time(time_t t, bool compact, char *buf, size_t len)
{
	struct tm tm;
	size_t n = 0;

	if (gmtime_r(&t, &tm))
		n = strftime(buf, len, compact ? "%Y%m%dT%H%M%SZ" : "%Y-%m-%dT%H:%M:%SZ", &tm);
	if (!n)
		util_strlcpy(buf, "unknown", len);
}

/* ---- file system helpers ---- */

/* Serialises the store's writers (this process's other handles and other
 * processes, e.g. the CLI beside the service): numbering, staging cleanup
 * and the renames assume no one else changes the store meanwhile. Readers
 * need no lock: every change they can see is one rename. */
static int store_lock(const struct defs_store *s)
{
	while (flock(s->rootfd, LOCK_EX) < 0)
		if (errno != EINTR)
			return -errno;
	return 0;
}

static void store_unlock(const struct defs_store *s)
{
	int saved = errno;

	flock(s->rootfd, LOCK_UN);
	errno = saved;
}

static int fsync_fd(int fd)
{
	return fsync(fd) < 0 ? -errno : 0;
}

static int fsync_at(int dirfd, const char *path)
{
	int fd = openat(dirfd, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int r;

	if (fd < 0)
		return -errno;
	r = fsync_fd(fd);
	util_close(&fd);
	return r;
}

/* opendir() of path relative to dirfd, on a descriptor of its own. */
static DIR *open_dir_at(int dirfd, const char *path)
{
	int fd = openat(dirfd, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d;

	if (fd < 0)
		return NULL;
	d = fdopendir(fd);
	if (!d)
		util_close(&fd);
	return d;
}

/* mkdir with DIR_MODE whatever the umask; an existing directory is fine. */
static int make_dir_at(int dirfd, const char *name)
{
	struct stat st;

	if (mkdirat(dirfd, name, DIR_MODE) == 0)
		return fchmodat(dirfd, name, DIR_MODE, 0) < 0 ? -errno : 0;
	if (errno != EEXIST)
		return -errno;
	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
}

static bool is_dir_at(int dirfd, const char *name)
{
	struct stat st;

	return fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode);
}

/* rename that never replaces: rename(2) would silently replace an empty
 * directory. Falls back to check-then-rename (safe under the store lock) on
 * file systems without RENAME_NOREPLACE. */
static int rename_noreplace(int olddir, const char *oldname, int newdir, const char *newname)
{
	struct stat st;

	if (renameat2(olddir, oldname, newdir, newname, RENAME_NOREPLACE) == 0)
		return 0;
	if (errno != EINVAL && errno != ENOSYS)
		return -errno;
	if (fstatat(newdir, newname, &st, AT_SYMLINK_NOFOLLOW) == 0)
		return -EEXIST;
	return renameat(olddir, oldname, newdir, newname) < 0 ? -errno : 0;
}

/* util_rm_rf of dir/name (path relative to the store root). */
static int rm_rf_in(const struct defs_store *s, const char *rel)
{
	char path[PATH_MAX];

	if ((size_t)snprintf(path, sizeof(path), "%s/%s", s->root, rel) >= sizeof(path))
		return -ENAMETOOLONG;
	return util_rm_rf(path);
}

/* Creates name in dirfd (it must not exist) holding obj as JSON, mode
 * FILE_MODE, fsynced. Removes it again on failure. */
static int write_json_new(int dirfd, const char *name, struct json_object *obj)
{
	size_t len;
	const char *text;
	int fd, r;

	text = json_object_to_json_string_length(
		obj, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
	if (!text)
		return -ENOMEM;
	fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, FILE_MODE);
	if (fd < 0)
		return -errno;
	/* fchmod: the umask must not make it unreadable to the scan user */
	if (fchmod(fd, FILE_MODE) < 0) {
		r = -errno;
		goto err_unlink;
	}
	r = util_write_all(fd, text, len);
	if (!r)
		r = util_write_all(fd, "\n", 1);
	if (!r)
		r = fsync_fd(fd);
	if (r)
		goto err_unlink;
	if (close(fd) < 0) {
		fd = -1;
		r = -errno;
		goto err_unlink;
	}
	return 0;

err_unlink:
	util_close(&fd);
	unlinkat(dirfd, name, 0);
	return r;
}

/* Replaces dirfd/name by obj atomically: temporary file, fsync, rename,
 * directory fsync. */
static int write_json_atomic(int dirfd, const char *name, struct json_object *obj)
{
	char tmp[NAME_MAX + 1];
	int r;

	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp-%ld", name, (long)getpid()) >= sizeof(tmp))
		return -ENAMETOOLONG;
	unlinkat(dirfd, tmp, 0); /* a leftover of a crashed run with our pid */
	r = write_json_new(dirfd, tmp, obj);
	if (r)
		return r;
	if (renameat(dirfd, tmp, dirfd, name) < 0) {
		r = -errno;
		unlinkat(dirfd, tmp, 0);
		return r;
	}
	return fsync_fd(dirfd);
}

/* Reads dirfd/path as a JSON object (at most JSON_FILE_MAX bytes) into
 * *out (caller puts it). Returns 0, -errno, or -EBADMSG when it is no JSON
 * object. */
static int read_json_at(int dirfd, const char *path, struct json_object **out)
{
	struct stat st;
	char *buf = NULL;
	ssize_t got;
	int fd, r = 0;

	*out = NULL;
	fd = openat(dirfd, path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		r = -errno;
		goto out_close;
	}
	if (!S_ISREG(st.st_mode)) {
		r = -EBADMSG;
		goto out_close;
	}
	if ((uint64_t)st.st_size > JSON_FILE_MAX) {
		r = -EFBIG;
		goto out_close;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (!buf) {
		r = -ENOMEM;
		goto out_close;
	}
	got = util_read_all(fd, buf, (size_t)st.st_size);
	if (got < 0) {
		r = (int)got;
		goto out_free;
	}
	buf[got] = '\0';
	*out = json_tokener_parse(buf);
	if (!*out || !json_object_is_type(*out, json_type_object)) {
		json_object_put(*out);
		*out = NULL;
		r = -EBADMSG;
	}
out_free:
	free(buf);
out_close:
	util_close(&fd);
	return r;
}

/* The string member key of obj, or NULL. */
static const char *json_str(struct json_object *obj, const char *key)
{
	struct json_object *v;

	if (!json_object_object_get_ex(obj, key, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

/* Like jadd; a NULL string becomes JSON null. */
static int jadd_str(struct json_object *obj, const char *key, const char *str)
{
	if (!str)
		return json_object_object_add(obj, key, NULL) < 0 ? -ENOMEM : 0;
	return jsonutil_add(obj, key, json_object_new_string(str));
}

/* Like jadd; an unknown count becomes JSON null. */
static int jadd_count(struct json_object *obj, const char *key, bool known, uint64_t n)
{
	if (!known)
		return jadd_str(obj, key, NULL);
	return jsonutil_add(obj, key, json_object_new_int64((int64_t)n));
}

static int jappend(struct json_object *arr, struct json_object *v)
{
	if (!v)
		return -ENOMEM;
	if (json_object_array_add(arr, v) < 0) {
		json_object_put(v);
		return -ENOMEM;
	}
	return 0;
}

/* The fingerprint recorded in dirfd/dir's manifest (or, with name, another
 * JSON file there) into hex. */
static int read_fingerprint_in(int dirfd, const char *dir, const char *name, char *hex)
{
	char path[NAME_MAX * 2 + 2];
	struct json_object *m;
	const char *fp;
	int r;

	if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, name) >= sizeof(path))
		return -ENAMETOOLONG;
	r = read_json_at(dirfd, path, &m);
	if (r)
		return r;
	fp = json_str(m, "fingerprint");
	if (fp && is_fingerprint(fp))
		util_strlcpy(hex, fp, DEFS_FINGERPRINT_LEN + 1);
	else
		r = -EBADMSG;
	json_object_put(m);
	return r;
}

/* ---- generations ---- */

static int cmp_gen_desc(const void *a, const void *b)
{
	unsigned int x = *(const unsigned int *)a, y = *(const unsigned int *)b;

	return x < y ? 1 : x > y ? -1 : 0;
}

/* The published generations (directories named gen-NNNNNN), newest first,
 * into *out (caller frees) and *n. */
static int scan_gens(const struct defs_store *s, unsigned int **out, size_t *n)
{
	unsigned int *v = NULL, gen;
	size_t cap = 0;
	struct dirent *de;
	DIR *d;
	int r = 0;

	*out = NULL;
	*n = 0;
	d = open_dir_at(s->rootfd, ".");
	if (!d)
		return -errno;
	while ((errno = 0, de = readdir(d))) {
		if (!is_gen_name(de->d_name, &gen) || !is_dir_at(s->rootfd, de->d_name))
			continue;
		if (*n == cap) {
			unsigned int *nv;

			cap = cap ? cap * 2 : 16;
			nv = reallocarray(v, cap, sizeof(*v));
			if (!nv) {
				r = -ENOMEM;
				goto err_free;
			}
			v = nv;
		}
		v[(*n)++] = gen;
	}
	if (errno) {
		r = -errno;
		goto err_free;
	}
	closedir(d);
	if (*n)
		qsort(v, *n, sizeof(*v), cmp_gen_desc);
	*out = v;
	return 0;

err_free:
	closedir(d);
	free(v);
	*n = 0;
	return r;
}

/* The highest generation number in sub (NULL: the root) of the store. */
static int max_gen_in(const struct defs_store *s, const char *sub, unsigned int *max)
{
	struct dirent *de;
	unsigned int gen;
	bool found;
	DIR *d;

	d = open_dir_at(s->rootfd, sub ? sub : ".");
	if (!d)
		return errno == ENOENT ? 0 : -errno;
	while ((errno = 0, de = readdir(d))) {
		if (!sub)
			found = is_gen_name(de->d_name, &gen);
		else
			found = gen_in_name(de->d_name, !strcmp(sub, QUARANTINE_DIR), &gen);
		if (found && gen > *max)
			*max = gen;
	}
	if (errno) {
		int r = -errno;

		closedir(d);
		return r;
	}
	closedir(d);
	return 0;
}

/* The number for a new generation: one more than any the store has ever
 * shown, quarantined ones included, so that a number in a log or a
 * reason.json names one set only. Called under the store lock. */
static int next_gen(const struct defs_store *s, unsigned int *gen)
{
	static const char *const subs[] = {NULL, STAGING_DIR, QUARANTINE_DIR};
	unsigned int max = 0;
	char target[NAME_LEN];
	ssize_t n;
	int r;

	for (size_t i = 0; i < SE_ARRAY_SIZE(subs); i++) {
		r = max_gen_in(s, subs[i], &max);
		if (r)
			return r;
	}
	/* current may still name a generation that was quarantined and whose
	 * quarantine was cleaned up since */
	n = readlinkat(s->rootfd, CURRENT_LINK, target, sizeof(target) - 1);
	if (n > 0) {
		unsigned int cur;

		target[n] = '\0';
		if (is_gen_name(target, &cur) && cur > max)
			max = cur;
	}
	if (max == UINT_MAX)
		return -EOVERFLOW;
	*gen = max + 1;
	return 0;
}

/* ---- open / close ---- */

/* Whether staging/name is the work directory ("work-PID-...") of a live
 * process other than this one. */
static bool is_live_work(int stagingfd, const char *name)
{
	const char *p = name + strlen(WORK_PREFIX);
	unsigned long pid = 0;

	if (strncmp(name, WORK_PREFIX, strlen(WORK_PREFIX)) || !is_dir_at(stagingfd, name))
		return false;
	for (; *p >= '0' && *p <= '9'; p++) {
		pid = pid * 10 + (unsigned long)(*p - '0');
		if (pid > INT_MAX)
			return false;
	}
	/* ours are removed too: the caller opens its store before making
	 * work directories, so they are an earlier process's, that had our
	 * pid */
	if (*p != '-' || pid == 0 || (pid_t)pid == getpid())
		return false;
	/* EPERM: alive, another user's (a CLI run as the scan user) */
	return kill((pid_t)pid, 0) == 0 || errno == EPERM;
}

/* Removes everything in staging/ but the work directories of other live
 * processes (a CLI validating while the service restarts keeps its work),
 * and the root's current.tmp-* links and history temporaries: what a
 * writer that died left behind. Called under the store lock, so no live
 * writer owns any of it. */
static int clean_leftovers(const struct defs_store *s)
{
	char rel[PATH_MAX];
	struct dirent *de;
	int r = 0, r2;
	DIR *d;

	d = open_dir_at(s->rootfd, STAGING_DIR);
	if (!d)
		return -errno;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (is_live_work(dirfd(d), de->d_name))
			continue;
		snprintf(rel, sizeof(rel), "%s/%s", STAGING_DIR, de->d_name);
		r2 = rm_rf_in(s, rel);
		if (r2 && !r)
			r = r2;
	}
	closedir(d);
	d = open_dir_at(s->rootfd, ".");
	if (!d)
		return r ? r : -errno;
	while ((de = readdir(d))) {
		if (strncmp(de->d_name, CURRENT_TMP, strlen(CURRENT_TMP)) &&
		    strncmp(de->d_name, HISTORY_TMP, strlen(HISTORY_TMP)))
			continue;
		if (unlinkat(s->rootfd, de->d_name, 0) < 0 && errno != ENOENT && !r)
			r = -errno;
	}
	closedir(d);
	return r;
}

struct defs_store *defs_store_open(const char *root, unsigned int keep, char *err)
{
	struct defs_store *s;
	struct stat st;
	bool created;
	int r;

	if (!root || !*root || keep < 2) {
		set_err(err, "definitions store: %s",
			keep < 2 ? "keep must be at least 2" : "no path");
		errno = EINVAL;
		return NULL;
	}
	s = calloc(1, sizeof(*s));
	if (!s) {
		set_err(err, "definitions store: out of memory");
		errno = ENOMEM;
		return NULL;
	}
	s->rootfd = -1;
	s->keep = keep;
	created = stat(root, &st) < 0 && errno == ENOENT;
	r = util_mkdir_p(root, DIR_MODE);
	/* the umask must not hide the store from the scan user */
	if (!r && created && chmod(root, DIR_MODE) < 0)
		r = -errno;
	if (r) {
		set_err(err, "cannot create definitions store %s: %s", root, strerror(-r));
		goto err_free;
	}
	/* absolute: the paths handed out (current, quarantine) and the
	 * removals must not depend on the working directory */
	if (!realpath(root, s->root)) {
		r = -errno;
		set_err(err, "cannot resolve definitions store %s: %s", root, strerror(-r));
		goto err_free;
	}
	if ((size_t)snprintf(s->current, sizeof(s->current), "%s/%s", s->root, CURRENT_LINK) >=
	    sizeof(s->current)) {
		r = -ENAMETOOLONG;
		set_err(err, "definitions store %s: path too long", root);
		goto err_free;
	}
	s->rootfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (s->rootfd < 0) {
		r = -errno;
		set_err(err, "cannot open definitions store %s: %s", root, strerror(-r));
		goto err_free;
	}
	/* Every use of the store writes (imports, activation, cleanup): say so
	 * now rather than at the first update. */
	if (faccessat(s->rootfd, ".", W_OK | X_OK, AT_EACCESS) < 0) {
		r = -errno;
		set_err(err, "definitions store %s is not writable: %s", root, strerror(-r));
		goto err_close;
	}
	r = make_dir_at(s->rootfd, STAGING_DIR);
	if (!r)
		r = make_dir_at(s->rootfd, QUARANTINE_DIR);
	if (r) {
		set_err(err, "cannot create the directories of definitions store %s: %s", root,
			strerror(-r));
		goto err_close;
	}
	r = store_lock(s);
	if (r) {
		set_err(err, "cannot lock definitions store %s: %s", root, strerror(-r));
		goto err_close;
	}
	r = clean_leftovers(s);
	if (!r)
		r = fsync_fd(s->rootfd);
	store_unlock(s);
	if (r) {
		set_err(err, "cannot clean staging of definitions store %s: %s", root,
			strerror(-r));
		goto err_close;
	}
	return s;

err_close:
	util_close(&s->rootfd);
err_free:
	free(s);
	errno = -r;
	return NULL;
}

void defs_store_close(struct defs_store *s)
{
	if (!s)
		return;
	util_close(&s->rootfd);
	free(s);
}

/* ---- import ---- */

static void src_list_free(struct src_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i].name);
	free(l->v);
	memset(l, 0, sizeof(*l));
}

static int cmp_src_name(const void *a, const void *b)
{
	/* strcmp compares as unsigned char: byte order, as LC_ALL=C sorts */
	return strcmp(((const struct src_entry *)a)->name, ((const struct src_entry *)b)->name);
}

/* Why srcfd/name is not imported, NULL if it is, or an error in *r. */
static const char *classify(int srcfd, const char *name, int *r)
{
	struct stat st;

	*r = 0;
	if (name[0] == '.')
		return "dot file";
	if (!strcmp(name, MANIFEST_NAME))
		return "reserved name";
	/* sha256sum escapes these, so the fingerprint's text would differ
	 * from its output; no signature file is named so */
	if (strpbrk(name, "\\\n"))
		return "name with a backslash or newline";
	if (fstatat(srcfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		/* not a skip: a set missing an unreadable file must not be
		 * imported as if complete */
		*r = -errno;
		return NULL;
	}
	if (S_ISLNK(st.st_mode))
		return "symbolic link";
	if (S_ISDIR(st.st_mode))
		return "directory";
	if (!S_ISREG(st.st_mode))
		return "not a regular file";
	return NULL;
}

/* Lists srcfd into l, sorted by name. */
static int read_source(int srcfd, struct src_list *l, char *err)
{
	struct dirent *de;
	DIR *d;
	int r = 0;

	d = open_dir_at(srcfd, ".");
	if (!d) {
		r = -errno;
		set_err(err, "cannot read the source directory: %s", strerror(-r));
		return r;
	}
	while ((errno = 0, de = readdir(d))) {
		struct src_entry *e;
		const char *skip;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		skip = classify(srcfd, de->d_name, &r);
		if (r) {
			set_err(err, "cannot stat %s: %s", de->d_name, strerror(-r));
			goto out_close;
		}
		if (l->n == l->cap) {
			size_t cap = l->cap ? l->cap * 2 : 16;
			struct src_entry *nv = reallocarray(l->v, cap, sizeof(*nv));

			if (!nv)
				goto err_nomem;
			l->v = nv;
			l->cap = cap;
		}
		e = &l->v[l->n];
		memset(e, 0, sizeof(*e));
		e->name = strdup(de->d_name);
		if (!e->name)
			goto err_nomem;
		e->skip = skip;
		l->n++;
		if (!skip)
			l->nfiles++;
	}
	if (errno) {
		r = -errno;
		set_err(err, "cannot read the source directory: %s", strerror(-r));
		goto out_close;
	}
	if (l->n)
		qsort(l->v, l->n, sizeof(*l->v), cmp_src_name);
	goto out_close;

err_nomem:
	r = -ENOMEM;
	set_err(err, "out of memory");
out_close:
	closedir(d);
	return r;
}

/* SHA-256 of fd's content (from offset 0) as hex, and its size. */
static int sha256_fd(int fd, char *hex, uint64_t *size)
{
	unsigned char md[DIGEST_SHA256_LEN];
	int r = digest_sha256_fd(fd, 0, md, size);

	if (r == 0)
		digest_hex(md, sizeof(md), hex);
	return r;
}

/* Copies srcfd/e->name into stagefd, fsyncs it and fills e's size and
 * SHA-256 from the copy: the manifest describes the bytes the generation
 * holds, whatever happens to the source afterwards. */
static int import_file(int srcfd, int stagefd, struct src_entry *e, char *err)
{
	struct stat before, after;
	uint64_t copied;
	int in, out = -1, r;

	/* O_NOFOLLOW | O_NONBLOCK: the entry may have been swapped for a
	 * symlink or a FIFO since it was classified */
	in = openat(srcfd, e->name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (in < 0) {
		r = -errno;
		set_err(err, "cannot open %s: %s", e->name, strerror(-r));
		return r;
	}
	if (fstat(in, &before) < 0) {
		r = -errno;
		set_err(err, "cannot stat %s: %s", e->name, strerror(-r));
		goto out_close_in;
	}
	if (!S_ISREG(before.st_mode)) {
		r = -EAGAIN;
		set_err(err, "%s changed while being imported", e->name);
		goto out_close_in;
	}
	out = openat(stagefd, e->name, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
		     FILE_MODE);
	if (out < 0 || fchmod(out, FILE_MODE) < 0) {
		r = -errno;
		set_err(err, "cannot create the copy of %s: %s", e->name, strerror(-r));
		goto out_close;
	}
	r = util_copy_fd(in, out, &copied);
	if (r) {
		set_err(err, "cannot copy %s: %s", e->name, strerror(-r));
		goto out_close;
	}
	/* A copy torn by a concurrent writer would be imported as a set
	 * nobody published: refuse it; the caller may retry. */
	if (fstat(in, &after) < 0 || after.st_size != before.st_size ||
	    after.st_mtim.tv_sec != before.st_mtim.tv_sec ||
	    after.st_mtim.tv_nsec != before.st_mtim.tv_nsec || copied != (uint64_t)after.st_size) {
		r = -EAGAIN;
		set_err(err, "%s changed while being copied", e->name);
		goto out_close;
	}
	r = fsync_fd(out);
	if (!r)
		r = sha256_fd(out, e->sha256, &e->size);
	if (r) {
		set_err(err, "cannot write the copy of %s: %s", e->name, strerror(-r));
		goto out_close;
	}
	if (close(out) < 0) {
		out = -1;
		r = -errno;
		set_err(err, "cannot write the copy of %s: %s", e->name, strerror(-r));
	}
	out = -1;
out_close:
	util_close(&out);
out_close_in:
	util_close(&in);
	return r;
}

/* The fingerprint (see store.h): SHA-256 over "<sha256>  <name>\n" of each
 * file in name order. */
static int fingerprint_of(const struct src_list *l, char *hex)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	EVP_MD_CTX *ctx;
	int r = -EIO;

	ctx = EVP_MD_CTX_new();
	if (!ctx)
		return -ENOMEM;
	if (!EVP_DigestInit_ex(ctx, EVP_sha256(), NULL))
		goto out_free;
	for (size_t i = 0; i < l->n; i++) {
		const struct src_entry *e = &l->v[i];

		if (e->skip)
			continue;
		if (!EVP_DigestUpdate(ctx, e->sha256, strlen(e->sha256)) ||
		    !EVP_DigestUpdate(ctx, "  ", 2) ||
		    !EVP_DigestUpdate(ctx, e->name, strlen(e->name)) ||
		    !EVP_DigestUpdate(ctx, "\n", 1))
			goto out_free;
	}
	if (!EVP_DigestFinal_ex(ctx, md, &mdlen) || mdlen != DEFS_FINGERPRINT_LEN / 2)
		goto out_free;
	digest_hex(md, mdlen, hex);
	r = 0;
out_free:
	EVP_MD_CTX_free(ctx);
	return r;
}

static struct json_object *manifest_new(unsigned int gen, const char *source,
					const struct src_list *l, const char *fingerprint,
					struct json_object *meta)
{
	struct json_object *m, *files = NULL, *skipped = NULL;
	char created[32];

	m = json_object_new_object();
	if (!m)
		return NULL;
	utc_time(time(NULL), false, created, sizeof(created));
	if (jsonutil_add(m, "manifest_version", json_object_new_int(DEFS_MANIFEST_VERSION)) ||
	    jsonutil_add(m, "generation", json_object_new_int64(gen)) ||
	    jadd_str(m, "created", created) || jadd_str(m, "source", source) ||
	    jsonutil_add(m, "files", files = json_object_new_array()) ||
	    jsonutil_add(m, "skipped", skipped = json_object_new_array()) ||
	    jadd_str(m, "fingerprint", fingerprint))
		goto err_put;
	for (size_t i = 0; i < l->n; i++) {
		const struct src_entry *e = &l->v[i];
		struct json_object *o = json_object_new_object();

		if (jappend(e->skip ? skipped : files, o) || jadd_str(o, "name", e->name))
			goto err_put;
		if (e->skip ? jadd_str(o, "reason", e->skip)
			    : jsonutil_add(o, "size", json_object_new_int64((int64_t)e->size)) ||
				      jadd_str(o, "sha256", e->sha256))
			goto err_put;
	}
	/* after the standard members, which check_meta kept it from naming */
	if (meta) {
		json_object_object_foreach(meta, key, val)
		{
			if (strcmp(key, EXPECTED_FILES) &&
			    json_object_object_add(m, key, json_object_get(val)) < 0) {
				json_object_put(val);
				goto err_put;
			}
		}
	}
	return m;

err_put:
	json_object_put(m);
	return NULL;
}

/* The members manifest_new writes itself: meta may not name them. */
static const char *const manifest_keys[] = {
	"manifest_version", "generation", "created", "source", "files", "skipped", "fingerprint",
};

/* Checks the import's meta (NULL ok); its expected_files, if any, goes to
 * *expected (still meta's). */
static int check_meta(struct json_object *meta, struct json_object **expected, char *err)
{
	struct json_object *ef;

	*expected = NULL;
	if (!meta)
		return 0;
	if (!json_object_is_type(meta, json_type_object)) {
		set_err(err, "import metadata is not a JSON object");
		return -EINVAL;
	}
	json_object_object_foreach(meta, key, val)
	{
		for (size_t i = 0; i < SE_ARRAY_SIZE(manifest_keys); i++) {
			if (!strcmp(key, manifest_keys[i])) {
				set_err(err, "import metadata member \"%s\" is a manifest member",
					key);
				return -EINVAL;
			}
		}
	}
	if (!json_object_object_get_ex(meta, EXPECTED_FILES, &ef))
		return 0;
	if (!json_object_is_type(ef, json_type_object)) {
		set_err(err, "%s is not a JSON object", EXPECTED_FILES);
		return -EINVAL;
	}
	json_object_object_foreach(ef, name, sha)
	{
		if (!json_object_is_type(sha, json_type_string) ||
		    !is_fingerprint(json_object_get_string(sha))) {
			set_err(err, "%s: the SHA-256 of %s is not 64 hex digits", EXPECTED_FILES,
				name);
			return -EINVAL;
		}
	}
	*expected = ef;
	return 0;
}

static int cmp_src_key(const void *key, const void *e)
{
	return strcmp(key, ((const struct src_entry *)e)->name);
}

/* Whether the files imported (l, hashed from the copies) are exactly
 * expected's names with expected's SHA-256: what the less-privileged
 * validator saw is what gets published, or nothing. */
static int check_expected(const struct src_list *l, struct json_object *expected, char *err)
{
	struct json_object *sha;

	for (size_t i = 0; i < l->n; i++) {
		const struct src_entry *e = &l->v[i];

		if (e->skip)
			continue;
		if (!json_object_object_get_ex(expected, e->name, &sha)) {
			set_err(err, "file %s was not validated", e->name);
			return -EBADMSG;
		}
		if (strcasecmp(json_object_get_string(sha), e->sha256)) {
			set_err(err, "file %s changed since it was validated", e->name);
			return -EBADMSG;
		}
	}
	json_object_object_foreach(expected, name, val)
	{
		const struct src_entry *e =
			l->n ? bsearch(name, l->v, l->n, sizeof(*l->v), cmp_src_key) : NULL;

		if (!e || e->skip) {
			set_err(err, "file %s is missing", name);
			return -EBADMSG;
		}
	}
	return 0;
}

int defs_store_import_dir(struct defs_store *s, const char *srcdir, struct json_object *meta,
			  unsigned int *gen, char *err)
{
	char stage[NAME_LEN * 2], name[NAME_LEN], fp[DEFS_FINGERPRINT_LEN + 1];
	struct src_list l = {0};
	struct json_object *m = NULL, *expected;
	char *source = NULL;
	int srcfd = -1, stagefd = -1, r;
	unsigned int n;

	r = check_meta(meta, &expected, err);
	if (r)
		goto out_free;
	srcfd = open(srcdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (srcfd < 0) {
		r = -errno;
		set_err(err, "cannot open %s: %s", srcdir, strerror(-r));
		goto out_free;
	}
	r = read_source(srcfd, &l, err);
	if (r)
		goto out_free;
	if (!l.nfiles) {
		r = -ENOENT;
		set_err(err, "%s holds no regular files to import", srcdir);
		goto out_free;
	}
	source = realpath(srcdir, NULL);
	r = store_lock(s);
	if (r) {
		set_err(err, "cannot lock the definitions store: %s", strerror(-r));
		goto out_free;
	}
	r = next_gen(s, &n);
	if (r) {
		set_err(err, "cannot number the new generation: %s", strerror(-r));
		goto out_unlock;
	}
	gen_name(n, name);
	snprintf(stage, sizeof(stage), "%s/%s.tmp-%ld", STAGING_DIR, name, (long)getpid());
	rm_rf_in(s, stage); /* a leftover of a crashed run with our pid */
	r = make_dir_at(s->rootfd, stage);
	if (!r) {
		stagefd = openat(s->rootfd, stage, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		r = stagefd < 0 ? -errno : 0;
	}
	if (r) {
		set_err(err, "cannot create %s: %s", stage, strerror(-r));
		goto err_remove_stage;
	}
	util_crash_point("store.import_dir.staged");
	for (size_t i = 0; i < l.n; i++) {
		if (l.v[i].skip)
			continue;
		r = import_file(srcfd, stagefd, &l.v[i], err);
		if (r)
			goto err_remove_stage;
		util_crash_point("store.import_dir.copied");
	}
	if (expected) {
		r = check_expected(&l, expected, err);
		if (r)
			goto err_remove_stage;
	}
	r = fingerprint_of(&l, fp);
	if (!r) {
		m = manifest_new(n, source ? source : srcdir, &l, fp, meta);
		r = m ? write_json_new(stagefd, MANIFEST_NAME, m) : -ENOMEM;
	}
	if (!r) {
		util_crash_point("store.import_dir.manifest");
		r = fsync_fd(stagefd);
	}
	if (r) {
		set_err(err, "cannot write the manifest: %s", strerror(-r));
		goto err_remove_stage;
	}
	util_crash_point("store.import_dir.synced");
	/* Transaction point: the complete, fsynced generation appears under
	 * its name in one rename; a crash before it leaves only staging
	 * leftovers, which the next open removes. */
	r = rename_noreplace(s->rootfd, stage, s->rootfd, name);
	if (r) {
		set_err(err, "cannot publish %s: %s", name, strerror(-r));
		goto err_remove_stage;
	}
	util_crash_point("store.import_dir.renamed");
	r = fsync_fd(s->rootfd);
	if (r) {
		/* not known to be durable: take it back rather than report a
		 * failure while a generation is visible */
		set_err(err, "cannot publish %s: %s", name, strerror(-r));
		if (renameat(s->rootfd, name, s->rootfd, stage) < 0)
			goto out_unlock;
		goto err_remove_stage;
	}
	util_crash_point("store.import_dir.published");
	*gen = n;
	goto out_unlock;

err_remove_stage:
	util_close(&stagefd);
	rm_rf_in(s, stage);
out_unlock:
	store_unlock(s);
out_free:
	util_close(&stagefd);
	json_object_put(m);
	json_object_put(meta);
	free(source);
	src_list_free(&l);
	util_close(&srcfd);
	return r;
}

struct json_object *defs_store_manifest(const struct defs_store *s, unsigned int gen)
{
	char path[NAME_LEN * 2];
	struct json_object *m;
	int r;

	snprintf(path, sizeof(path), "gen-%06u", gen);
	if (!gen || !is_dir_at(s->rootfd, path)) {
		errno = ENOENT;
		return NULL;
	}
	snprintf(path, sizeof(path), "gen-%06u/%s", gen, MANIFEST_NAME);
	r = read_json_at(s->rootfd, path, &m);
	if (r) {
		/* the generation exists: whatever keeps its manifest from
		 * being read makes it unreadable */
		errno = r == -ENOMEM ? ENOMEM : EBADMSG;
		return NULL;
	}
	return m;
}

/* ---- current ---- */

int defs_store_activate(struct defs_store *s, unsigned int gen)
{
	char name[NAME_LEN], tmp[NAME_LEN];
	int r;

	gen_name(gen, name);
	snprintf(tmp, sizeof(tmp), "%s%ld", CURRENT_TMP, (long)getpid());
	r = store_lock(s);
	if (r)
		return r;
	if (!gen || !is_dir_at(s->rootfd, name)) {
		r = -ENOENT;
		goto out_unlock;
	}
	unlinkat(s->rootfd, tmp, 0); /* a leftover of a crashed run with our pid */
	util_crash_point("store.activate.linking");
	/* relative target: the store stays valid when moved or seen from a
	 * mount namespace where it has another path */
	if (symlinkat(name, s->rootfd, tmp) < 0) {
		r = -errno;
		goto out_unlock;
	}
	util_crash_point("store.activate.linked");
	/* Transaction point: readers of current see the old or the new
	 * generation, never no link at all. */
	if (renameat(s->rootfd, tmp, s->rootfd, CURRENT_LINK) < 0) {
		r = -errno;
		unlinkat(s->rootfd, tmp, 0);
		goto out_unlock;
	}
	util_crash_point("store.activate.renamed");
	r = fsync_fd(s->rootfd);
	if (!r)
		util_crash_point("store.activate.synced");
out_unlock:
	store_unlock(s);
	return r;
}

unsigned int defs_store_current(const struct defs_store *s)
{
	char target[NAME_LEN];
	unsigned int gen;
	ssize_t n;

	n = readlinkat(s->rootfd, CURRENT_LINK, target, sizeof(target) - 1);
	if (n <= 0)
		return 0;
	target[n] = '\0';
	if (!is_gen_name(target, &gen) || !is_dir_at(s->rootfd, target))
		return 0;
	return gen;
}

const char *defs_store_current_path(const struct defs_store *s)
{
	return s->current;
}

int defs_store_gen_path(const struct defs_store *s, unsigned int gen, char *buf, size_t len)
{
	if ((size_t)snprintf(buf, len, "%s/gen-%06u", s->root, gen) >= len)
		return -ENAMETOOLONG;
	return 0;
}

unsigned int defs_store_previous(const struct defs_store *s, unsigned int gen)
{
	unsigned int *gens, prev = 0;
	size_t n;

	if (scan_gens(s, &gens, &n))
		return 0;
	for (size_t i = 0; i < n; i++) {
		if (gens[i] < gen) {
			prev = gens[i]; /* newest first */
			break;
		}
	}
	free(gens);
	return prev;
}

int defs_store_fingerprint(const struct defs_store *s, unsigned int gen, char *hex)
{
	char name[NAME_LEN];

	gen_name(gen, name);
	if (!gen || !is_dir_at(s->rootfd, name))
		return -ENOENT;
	return read_fingerprint_in(s->rootfd, name, MANIFEST_NAME, hex);
}

/* ---- quarantine ---- */

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
		r = rename_noreplace(s->rootfd, from, s->rootfd, qrel);
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
	utc_time(now, false, when, sizeof(when));
	/* the offending member (or line), where the validator named one */
	if (*detail && json_object_is_type(*detail, json_type_object))
		json_object_object_get_ex(*detail, "offending", &off);
	/* *detail moves into o only on success: the caller puts it otherwise */
	if ((gen ? jsonutil_add(o, "generation", json_object_new_int64(gen))
		 : jadd_str(o, "generation", NULL)) ||
	    jadd_str(o, "time", when) || jadd_str(o, "stage", stage) ||
	    jadd_str(o, "reason", reason) ||
	    jadd_str(o, "offending", off ? json_object_get_string(off) : NULL) ||
	    jadd_str(o, "fingerprint", fingerprint) ||
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
	gen_name(gen, name);
	r = store_lock(s);
	if (r)
		goto out_put_detail;
	if (!gen || !is_dir_at(s->rootfd, name)) {
		r = -ENOENT;
		goto out_unlock;
	}
	/* a set with a broken manifest is quarantined all the same */
	have_fp = read_fingerprint_in(s->rootfd, name, MANIFEST_NAME, fp) == 0;
	was_current = defs_store_current(s) == gen;
	utc_time(now, true, stamp, sizeof(stamp));
	/* Transaction point: the generation leaves the set of activatable
	 * ones as a whole (one rename). */
	r = move_to_quarantine(s, name, stamp, name, qrel, sizeof(qrel));
	if (r)
		goto out_unlock;
	util_crash_point("store.quarantine.moved");
	if (qpath && qlen)
		snprintf(qpath, qlen, "%s/%s", s->root, qrel);
	r = fsync_fd(s->rootfd);
	if (!r)
		r = fsync_at(s->rootfd, QUARANTINE_DIR);
	if (r)
		goto out_unlock;
	qfd = openat(s->rootfd, qrel, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (qfd < 0) {
		r = -errno;
		goto out_unlock;
	}
	rj = reason_new(gen, now, stage, reason, have_fp ? fp : NULL, was_current, &detail);
	r = rj ? write_json_atomic(qfd, REASON_NAME, rj) : -ENOMEM;
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
	r = read_source(fd, &l, NULL);
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
			r = sha256_fd(in, e->sha256, &e->size);
		util_close(&in);
	}
	if (!r)
		r = fingerprint_of(&l, hex);
	src_list_free(&l);
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
		set_err(err, "no room for the work directory's path");
		return -EINVAL;
	}
	path[0] = '\0';
	sanitise_name(tag, "work", TAG_MAX, t);
	r = store_lock(s);
	if (r) {
		set_err(err, "cannot lock the definitions store: %s", strerror(-r));
		return r;
	}
	/* a name taken is an earlier process's that had our pid */
	for (i = 0; i < WORK_TRIES; i++) {
		unsigned int n = __atomic_add_fetch(&seq, 1, __ATOMIC_RELAXED);

		snprintf(rel, sizeof(rel), "%s/%s%ld-%u-%s", STAGING_DIR, WORK_PREFIX,
			 (long)getpid(), n, t);
		if ((size_t)snprintf(path, len, "%s/%s", s->root, rel) >= len) {
			r = -ENAMETOOLONG;
			set_err(err, "the path of a work directory in %s is too long", s->root);
			goto out_unlock;
		}
		if (mkdirat(s->rootfd, rel, WORK_MODE) == 0)
			break;
		if (errno != EEXIST) {
			r = -errno;
			set_err(err, "cannot create %s: %s", path, strerror(-r));
			goto out_unlock;
		}
	}
	if (i == WORK_TRIES) {
		r = -EEXIST;
		set_err(err, "cannot create a work directory in %s/%s", s->root, STAGING_DIR);
		goto out_unlock;
	}
	/* fchmod: whatever the umask, only its owner may look inside */
	fd = openat(s->rootfd, rel, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 || fchmod(fd, WORK_MODE) < 0 || (uid != (uid_t)-1 && fchown(fd, uid, gid) < 0)) {
		r = -errno;
		set_err(err, "cannot set up %s: %s", path, strerror(-r));
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
	sanitise_name(label, "work", LABEL_MAX, lab);
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
	    !is_dir_at(s->rootfd, from)) {
		r = -EINVAL;
		goto out_unlock;
	}
	utc_time(now, true, stamp, sizeof(stamp));
	/* Transaction point: the candidate leaves staging (where open would
	 * remove it) for the quarantine as a whole (one rename). */
	r = move_to_quarantine(s, from, stamp, lab, qrel, sizeof(qrel));
	if (r)
		goto out_unlock;
	util_crash_point("store.quarantine_dir.moved");
	if (qpath && qlen)
		snprintf(qpath, qlen, "%s/%s", s->root, qrel);
	r = fsync_at(s->rootfd, STAGING_DIR);
	if (!r)
		r = fsync_at(s->rootfd, QUARANTINE_DIR);
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
	r = rj ? write_json_atomic(qfd, REASON_NAME, rj) : -ENOMEM;
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

	if (read_fingerprint_in(qdirfd, name, REASON_NAME, hex) == 0)
		return 0;
	r = read_fingerprint_in(qdirfd, name, MANIFEST_NAME, hex);
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

	if (!fingerprint || !is_fingerprint(fingerprint))
		return false;
	d = open_dir_at(s->rootfd, QUARANTINE_DIR);
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

/* ---- prune, list ---- */

int defs_store_prune(struct defs_store *s)
{
	char name[NAME_LEN], trash[NAME_LEN * 2];
	unsigned int *gens = NULL, cur;
	size_t n, nmoved = 0;
	int r;

	r = store_lock(s);
	if (r)
		return r;
	r = scan_gens(s, &gens, &n);
	if (r)
		goto out_unlock;
	cur = defs_store_current(s);
	/* gens is newest first; entries moved are compacted to its front */
	for (size_t i = 0; i < n; i++) {
		if (i < s->keep || gens[i] == cur)
			continue;
		gen_name(gens[i], name);
		snprintf(trash, sizeof(trash), "%s/%s.del-%ld", STAGING_DIR, name, (long)getpid());
		rm_rf_in(s, trash); /* a leftover of a crashed run with our pid */
		util_crash_point("store.prune.moving");
		/* Transaction point: the generation disappears as a whole;
		 * a crash while deleting it below leaves staging leftovers,
		 * not a half-deleted generation that could be activated. */
		r = rename_noreplace(s->rootfd, name, s->rootfd, trash);
		if (r)
			break;
		util_crash_point("store.prune.moved");
		gens[nmoved++] = gens[i];
	}
	if (nmoved) {
		int r2 = fsync_fd(s->rootfd);

		if (!r)
			r = r2;
	}
	for (size_t i = 0; i < nmoved; i++) {
		int r2;

		gen_name(gens[i], name);
		snprintf(trash, sizeof(trash), "%s/%s.del-%ld", STAGING_DIR, name, (long)getpid());
		/* the generation is gone already; the next open retries */
		r2 = rm_rf_in(s, trash);
		if (r2)
			log_warn("definitions store: cannot remove %s/%s yet: %s", s->root, trash,
				 strerror(-r2));
		else
			util_crash_point("store.prune.removed");
	}
	if (!r)
		r = (int)nmoved;
out_unlock:
	store_unlock(s);
	free(gens);
	return r;
}

/* The manifest's members that a listing carries over, when of that type
 * (json_type_double: any number). */
static const struct {
	const char *key;
	json_type type;
} list_extras[] = {
	{"databases", json_type_array},
	{"origin", json_type_string},
	{"engine_kib", json_type_double},
	{"forced", json_type_array},
};

/* Adds copies of m's list_extras members to o. */
static int copy_extras(struct json_object *o, struct json_object *m)
{
	for (size_t i = 0; i < SE_ARRAY_SIZE(list_extras); i++) {
		struct json_object *v, *copy = NULL;
		json_type t;

		if (!json_object_object_get_ex(m, list_extras[i].key, &v))
			continue;
		t = json_object_get_type(v);
		if (t != list_extras[i].type &&
		    !(list_extras[i].type == json_type_double && t == json_type_int))
			continue;
		if (json_object_deep_copy(v, &copy, NULL) < 0)
			return -ENOMEM;
		if (jsonutil_add(o, list_extras[i].key, copy))
			return -ENOMEM;
	}
	return 0;
}

/* One entry of defs_store_list_json. */
static struct json_object *list_entry(const struct defs_store *s, unsigned int gen,
				      unsigned int cur)
{
	struct json_object *o, *m = NULL, *files = NULL;
	char path[NAME_LEN * 2];
	uint64_t bytes = 0;
	size_t nfiles = 0;
	bool r;

	o = json_object_new_object();
	if (!o)
		return NULL;
	snprintf(path, sizeof(path), "gen-%06u/%s", gen, MANIFEST_NAME);
	/* an unreadable manifest leaves its fields null: the listing is what
	 * an operator reads to find out what is wrong */
	read_json_at(s->rootfd, path, &m);
	if (m && json_object_object_get_ex(m, "files", &files) &&
	    json_object_is_type(files, json_type_array)) {
		nfiles = json_object_array_length(files);
		for (size_t i = 0; i < nfiles; i++) {
			struct json_object *f = json_object_array_get_idx(files, i), *sz;

			if (json_object_object_get_ex(f, "size", &sz))
				bytes += (uint64_t)json_object_get_int64(sz);
		}
	} else {
		files = NULL;
	}
	r = jsonutil_add(o, "generation", json_object_new_int64(gen)) ||
	    jsonutil_add(o, "current", json_object_new_boolean(gen == cur)) ||
	    jadd_str(o, "created", m ? json_str(m, "created") : NULL) ||
	    jadd_count(o, "files", files != NULL, nfiles) ||
	    jadd_count(o, "bytes", files != NULL, bytes) ||
	    jadd_str(o, "fingerprint", m ? json_str(m, "fingerprint") : NULL) ||
	    (m && copy_extras(o, m));
	json_object_put(m);
	if (r) {
		json_object_put(o);
		o = NULL;
	}
	return o;
}

struct json_object *defs_store_list_json(const struct defs_store *s)
{
	struct json_object *arr;
	unsigned int *gens, cur;
	size_t n;
	int r;

	r = scan_gens(s, &gens, &n);
	if (r) {
		errno = -r;
		return NULL;
	}
	cur = defs_store_current(s);
	arr = json_object_new_array();
	for (size_t i = 0; arr && i < n; i++) {
		if (jappend(arr, list_entry(s, gens[i], cur))) {
			json_object_put(arr);
			arr = NULL;
		}
	}
	free(gens);
	if (!arr)
		errno = ENOMEM;
	return arr;
}

/* ---- history ---- */

/* The history entry for an event into *out: a JSON object that prints on
 * one line (json-c escapes control characters in strings). It holds
 * references to detail's members; detail stays the caller's. */
static int history_entry(const char *event, unsigned int gen, struct json_object *detail,
			 struct json_object **out)
{
	static const char *const own[] = {"time", "event", "generation"};
	struct json_object *o;
	char when[32];

	*out = NULL;
	if (detail) {
		json_object_object_foreach(detail, key, val)
		{
			for (size_t i = 0; i < SE_ARRAY_SIZE(own); i++)
				if (!strcmp(key, own[i]))
					return -EINVAL;
		}
	}
	o = json_object_new_object();
	if (!o)
		return -ENOMEM;
	utc_time(time(NULL), false, when, sizeof(when));
	if (jadd_str(o, "time", when) || jadd_str(o, "event", event) ||
	    (gen ? jsonutil_add(o, "generation", json_object_new_int64(gen))
		 : jadd_str(o, "generation", NULL)))
		goto err_put;
	if (detail) {
		json_object_object_foreach(detail, key, val)
		{
			if (json_object_object_add(o, key, json_object_get(val)) < 0) {
				json_object_put(val);
				goto err_put;
			}
		}
	}
	*out = o;
	return 0;

err_put:
	json_object_put(o);
	return -ENOMEM;
}

/* Copies [from, to) of in to out. */
static int copy_range(int in, int out, off_t from, off_t to, char *buf, size_t len)
{
	while (from < to) {
		ssize_t n = pread(in, buf, SE_MIN(len, (size_t)(to - from)), from);
		int r;

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO; /* shrunk under the lock */
		r = util_write_all(out, buf, (size_t)n);
		if (r)
			return r;
		from += n;
	}
	return 0;
}

/* Replaces the history (fd, size bytes) by its newest half of lines: a
 * temporary file, fsynced, renamed over it. Called under the store lock,
 * which every appender takes, so no line is appended to the old file
 * meanwhile. */
static int history_halve(const struct defs_store *s, int fd, off_t size)
{
	enum { CHUNK = 64 * 1024 };
	char tmp[NAME_LEN], *buf;
	off_t off, start = 0, end = 0;
	size_t lines = 0, skip, seen = 0;
	int out = -1, r = 0;

	buf = malloc(CHUNK);
	if (!buf)
		return -ENOMEM;
	/* count the complete lines; a torn last one is dropped */
	for (off = 0; off < size;) {
		ssize_t n = pread(fd, buf, SE_MIN((off_t)CHUNK, size - off), off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			r = n < 0 ? -errno : -EIO;
			goto out_free;
		}
		for (ssize_t i = 0; i < n; i++) {
			if (buf[i] == '\n') {
				lines++;
				end = off + i + 1;
			}
		}
		off += n;
	}
	/* where the newest half starts: after the skip-th newline */
	skip = lines - lines / 2;
	for (off = 0; seen < skip && off < end;) {
		ssize_t n = pread(fd, buf, SE_MIN((off_t)CHUNK, end - off), off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			r = n < 0 ? -errno : -EIO;
			goto out_free;
		}
		for (ssize_t i = 0; i < n && seen < skip; i++) {
			if (buf[i] == '\n' && ++seen == skip)
				start = off + i + 1;
		}
		off += n;
	}
	snprintf(tmp, sizeof(tmp), "%s%ld", HISTORY_TMP, (long)getpid());
	unlinkat(s->rootfd, tmp, 0); /* a leftover of a crashed run with our pid */
	out = openat(s->rootfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
		     FILE_MODE);
	if (out < 0) {
		r = -errno;
		goto out_free;
	}
	if (fchmod(out, FILE_MODE) < 0)
		r = -errno;
	if (!r)
		r = copy_range(fd, out, start, end, buf, CHUNK);
	if (!r)
		r = fsync_fd(out);
	if (r)
		goto err_unlink;
	if (close(out) < 0) {
		out = -1;
		r = -errno;
		goto err_unlink;
	}
	out = -1;
	/* Transaction point: readers see the whole old history or the
	 * halved one; a crash before leaves a temporary that open removes. */
	if (renameat(s->rootfd, tmp, s->rootfd, HISTORY_NAME) < 0) {
		r = -errno;
		goto err_unlink;
	}
	util_crash_point("store.history_add.halved");
	r = fsync_fd(s->rootfd);
	goto out_free;

err_unlink:
	util_close(&out);
	unlinkat(s->rootfd, tmp, 0);
out_free:
	free(buf);
	return r;
}

/* Opens the history for appending (and reading its end), creating it;
 * *created says whether it was. */
static int history_open(const struct defs_store *s, bool *created)
{
	const int flags = O_RDWR | O_APPEND | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC;
	struct stat st;
	int fd, r = 0;

	*created = false;
	fd = openat(s->rootfd, HISTORY_NAME, flags);
	if (fd < 0 && errno == ENOENT) {
		fd = openat(s->rootfd, HISTORY_NAME, flags | O_CREAT | O_EXCL, FILE_MODE);
		/* fchmod: readable by the scan user whatever the umask */
		if (fd >= 0 && fchmod(fd, FILE_MODE) < 0)
			util_close(&fd);
		*created = fd >= 0;
	}
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0)
		r = -errno;
	else if (!S_ISREG(st.st_mode))
		r = -EBADMSG;
	if (r)
		util_close(&fd);
	return r ? r : fd;
}

int defs_store_history_add(struct defs_store *s, const char *event, unsigned int gen,
			   struct json_object *detail)
{
	struct json_object *o = NULL;
	const char *text;
	char *line = NULL, last = '\n';
	size_t tlen, len;
	struct stat st;
	bool created;
	ssize_t n;
	int fd = -1, r;

	if (!event || !*event || (detail && !json_object_is_type(detail, json_type_object))) {
		r = -EINVAL;
		goto out_put;
	}
	r = history_entry(event, gen, detail, &o);
	if (r)
		goto out_put;
	text = json_object_to_json_string_length(
		o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &tlen);
	line = text ? malloc(tlen + 2) : NULL;
	if (!line) {
		r = -ENOMEM;
		goto out_put;
	}
	r = store_lock(s);
	if (r)
		goto out_put;
	fd = history_open(s, &created);
	if (fd < 0) {
		r = fd;
		goto out_unlock;
	}
	if (fstat(fd, &st) < 0) {
		r = -errno;
		goto out_unlock;
	}
	if (st.st_size > (off_t)DEFS_HISTORY_MAX) {
		/* a history too long is better than an event lost */
		r = history_halve(s, fd, st.st_size);
		if (r)
			log_warn("definitions store: cannot shorten %s/%s: %s", s->root,
				 HISTORY_NAME, strerror(-r));
		/* again: the file may have been replaced even on an error */
		util_close(&fd);
		fd = history_open(s, &created);
		if (fd < 0) {
			r = fd;
			goto out_unlock;
		}
		if (fstat(fd, &st) < 0) {
			r = -errno;
			goto out_unlock;
		}
	}
	/* a line torn by a crash is ended, so that only it is lost and not
	 * the one appended now too */
	if (st.st_size > 0 && pread(fd, &last, 1, st.st_size - 1) != 1)
		last = '\n';
	len = 0;
	if (last != '\n')
		line[len++] = '\n';
	memcpy(line + len, text, tlen);
	len += tlen;
	line[len++] = '\n';
	util_crash_point("store.history_add.writing");
	/* one write(2) in append mode: concurrent readers see whole lines
	 * or a torn last one, which they skip */
	n = write(fd, line, len);
	if (n < 0) {
		r = -errno;
		goto out_unlock;
	}
	if ((size_t)n != len) {
		r = -EIO; /* the next append ends the torn line */
		goto out_unlock;
	}
	util_crash_point("store.history_add.written");
	r = fdatasync(fd) < 0 ? -errno : 0;
	if (!r && created)
		r = fsync_fd(s->rootfd);
out_unlock:
	util_close(&fd);
	store_unlock(s);
out_put:
	free(line);
	json_object_put(o);
	json_object_put(detail);
	return r;
}

/* Line (len bytes, no newline) as a JSON object, or NULL: the whole line
 * must be one object. */
static struct json_object *parse_line(const char *line, size_t len)
{
	struct json_tokener *tok;
	struct json_object *o;

	if (!len || len > INT_MAX)
		return NULL;
	tok = json_tokener_new();
	if (!tok)
		return NULL;
	o = json_tokener_parse_ex(tok, line, (int)len);
	if (o &&
	    (json_tokener_get_error(tok) != json_tokener_success ||
	     json_tokener_get_parse_end(tok) != len || !json_object_is_type(o, json_type_object))) {
		json_object_put(o);
		o = NULL;
	}
	json_tokener_free(tok);
	return o;
}

struct json_object *defs_store_history_json(const struct defs_store *s, size_t max)
{
	struct json_object *arr = NULL;
	char *line = NULL;
	size_t cap = 0, count;
	struct stat st;
	ssize_t n;
	FILE *f;
	int fd, r = 0;

	fd = openat(s->rootfd, HISTORY_NAME, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		if (errno != ENOENT)
			return NULL;
		arr = json_object_new_array();
		if (!arr)
			errno = ENOMEM;
		return arr;
	}
	if (fstat(fd, &st) < 0)
		r = -errno;
	else if (!S_ISREG(st.st_mode))
		r = -EBADMSG;
	f = r ? NULL : fdopen(fd, "r");
	if (!f) {
		r = r ? r : -errno;
		util_close(&fd);
		errno = -r;
		return NULL;
	}
	arr = json_object_new_array();
	if (!arr) {
		r = -ENOMEM;
		goto out_close;
	}
	/* a line that is no JSON object (torn by a crash, or appended to
	 * meanwhile) is skipped */
	while ((n = getline(&line, &cap, f)) > 0) {
		struct json_object *o;

		if (line[n - 1] != '\n')
			continue; /* being written */
		o = parse_line(line, (size_t)n - 1);
		if (o && jappend(arr, o)) {
			r = -ENOMEM;
			goto out_close;
		}
	}
	if (ferror(f)) {
		r = errno ? -errno : -EIO;
		goto out_close;
	}
	count = json_object_array_length(arr);
	if (max && count > max && json_object_array_del_idx(arr, 0, count - max) < 0)
		r = -ENOMEM;
out_close:
	free(line);
	fclose(f);
	if (r) {
		json_object_put(arr);
		arr = NULL;
		errno = -r;
	}
	return arr;
}
