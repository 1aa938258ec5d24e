/* store: the definitions store of DESIGN.md section 4 (see store.h); its
 * quarantine is in store_quarantine.c, its history in store_history.c. */
#include "defs/store.h"
#include "defs/store_int.h"
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

#define EXPECTED_FILES "expected_files" /* the import's meta member checked, not kept */
#define DIR_MODE       0755
#define ERR_LEN	       256
#define JSON_FILE_MAX  (4u << 20) /* manifests and reasons are ours and small */
#define STAMP_LEN      16	  /* YYYYmmddTHHMMSSZ */

void store_set_err(char *err, const char *fmt, ...)
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

void store_gen_name(unsigned int gen, char *buf)
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

/* Whether name is exactly a generation's name, as store_gen_name() prints it
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
	store_gen_name(*gen, canon);
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
void store_sanitise_name(const char *in, const char *dflt, size_t max, char *out)
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

bool store_is_fingerprint(const char *s)
{
	size_t i;

	for (i = 0; s[i]; i++)
		if (!strchr("0123456789abcdefABCDEF", s[i]))
			return false;
	return i == DEFS_FINGERPRINT_LEN;
}

/* UTC time as "YYYY-mm-ddTHH:MM:SSZ", or compact "YYYYmmddTHHMMSSZ" (for
 * file names). */
void store_utc_time(time_t t, bool compact, char *buf, size_t len)
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
int store_lock(const struct defs_store *s)
{
	while (flock(s->rootfd, LOCK_EX) < 0)
		if (errno != EINTR)
			return -errno;
	return 0;
}

void store_unlock(const struct defs_store *s)
{
	int saved = errno;

	flock(s->rootfd, LOCK_UN);
	errno = saved;
}

int store_fsync_fd(int fd)
{
	return fsync(fd) < 0 ? -errno : 0;
}

int store_fsync_at(int dirfd, const char *path)
{
	int fd = openat(dirfd, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int r;

	if (fd < 0)
		return -errno;
	r = store_fsync_fd(fd);
	util_close(&fd);
	return r;
}

/* opendir() of path relative to dirfd, on a descriptor of its own. */
DIR *store_open_dir_at(int dirfd, const char *path)
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

bool store_is_dir_at(int dirfd, const char *name)
{
	struct stat st;

	return fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode);
}

/* rename that never replaces: rename(2) would silently replace an empty
 * directory. Falls back to check-then-rename (safe under the store lock) on
 * file systems without RENAME_NOREPLACE. */
int store_rename_noreplace(int olddir, const char *oldname, int newdir, const char *newname)
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
		r = store_fsync_fd(fd);
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
int store_write_json_atomic(int dirfd, const char *name, struct json_object *obj)
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
	return store_fsync_fd(dirfd);
}

/* Reads dirfd/path as a JSON object (at most JSON_FILE_MAX bytes) into
 * *out (caller puts it). Returns 0, -errno, or -EBADMSG when it is no JSON
 * object. */
int store_read_json_at(int dirfd, const char *path, struct json_object **out)
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
int store_jadd_str(struct json_object *obj, const char *key, const char *str)
{
	if (!str)
		return json_object_object_add(obj, key, NULL) < 0 ? -ENOMEM : 0;
	return jsonutil_add(obj, key, json_object_new_string(str));
}

/* Like jadd; an unknown count becomes JSON null. */
static int jadd_count(struct json_object *obj, const char *key, bool known, uint64_t n)
{
	if (!known)
		return store_jadd_str(obj, key, NULL);
	return jsonutil_add(obj, key, json_object_new_int64((int64_t)n));
}

int store_jappend(struct json_object *arr, struct json_object *v)
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
int store_read_fingerprint_in(int dirfd, const char *dir, const char *name, char *hex)
{
	char path[NAME_MAX * 2 + 2];
	struct json_object *m;
	const char *fp;
	int r;

	if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, name) >= sizeof(path))
		return -ENAMETOOLONG;
	r = store_read_json_at(dirfd, path, &m);
	if (r)
		return r;
	fp = json_str(m, "fingerprint");
	if (fp && store_is_fingerprint(fp))
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
	d = store_open_dir_at(s->rootfd, ".");
	if (!d)
		return -errno;
	while ((errno = 0, de = readdir(d))) {
		if (!is_gen_name(de->d_name, &gen) || !store_is_dir_at(s->rootfd, de->d_name))
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

	d = store_open_dir_at(s->rootfd, sub ? sub : ".");
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

	if (strncmp(name, WORK_PREFIX, strlen(WORK_PREFIX)) || !store_is_dir_at(stagingfd, name))
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

	d = store_open_dir_at(s->rootfd, STAGING_DIR);
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
	d = store_open_dir_at(s->rootfd, ".");
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
		store_set_err(err, "definitions store: %s",
			      keep < 2 ? "keep must be at least 2" : "no path");
		errno = EINVAL;
		return NULL;
	}
	s = calloc(1, sizeof(*s));
	if (!s) {
		store_set_err(err, "definitions store: out of memory");
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
		store_set_err(err, "cannot create definitions store %s: %s", root, strerror(-r));
		goto err_free;
	}
	/* absolute: the paths handed out (current, quarantine) and the
	 * removals must not depend on the working directory */
	if (!realpath(root, s->root)) {
		r = -errno;
		store_set_err(err, "cannot resolve definitions store %s: %s", root, strerror(-r));
		goto err_free;
	}
	if ((size_t)snprintf(s->current, sizeof(s->current), "%s/%s", s->root, CURRENT_LINK) >=
	    sizeof(s->current)) {
		r = -ENAMETOOLONG;
		store_set_err(err, "definitions store %s: path too long", root);
		goto err_free;
	}
	s->rootfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (s->rootfd < 0) {
		r = -errno;
		store_set_err(err, "cannot open definitions store %s: %s", root, strerror(-r));
		goto err_free;
	}
	/* Every use of the store writes (imports, activation, cleanup): say so
	 * now rather than at the first update. */
	if (faccessat(s->rootfd, ".", W_OK | X_OK, AT_EACCESS) < 0) {
		r = -errno;
		store_set_err(err, "definitions store %s is not writable: %s", root, strerror(-r));
		goto err_close;
	}
	r = make_dir_at(s->rootfd, STAGING_DIR);
	if (!r)
		r = make_dir_at(s->rootfd, QUARANTINE_DIR);
	if (r) {
		store_set_err(err, "cannot create the directories of definitions store %s: %s",
			      root, strerror(-r));
		goto err_close;
	}
	r = store_lock(s);
	if (r) {
		store_set_err(err, "cannot lock definitions store %s: %s", root, strerror(-r));
		goto err_close;
	}
	r = clean_leftovers(s);
	if (!r)
		r = store_fsync_fd(s->rootfd);
	store_unlock(s);
	if (r) {
		store_set_err(err, "cannot clean staging of definitions store %s: %s", root,
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

int defs_store_fd(const struct defs_store *s)
{
	return s->rootfd;
}

void defs_store_close(struct defs_store *s)
{
	if (!s)
		return;
	util_close(&s->rootfd);
	free(s);
}

/* ---- import ---- */

void store_src_list_free(struct src_list *l)
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
int store_read_source(int srcfd, struct src_list *l, char *err)
{
	struct dirent *de;
	DIR *d;
	int r = 0;

	d = store_open_dir_at(srcfd, ".");
	if (!d) {
		r = -errno;
		store_set_err(err, "cannot read the source directory: %s", strerror(-r));
		return r;
	}
	while ((errno = 0, de = readdir(d))) {
		struct src_entry *e;
		const char *skip;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		skip = classify(srcfd, de->d_name, &r);
		if (r) {
			store_set_err(err, "cannot stat %s: %s", de->d_name, strerror(-r));
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
		store_set_err(err, "cannot read the source directory: %s", strerror(-r));
		goto out_close;
	}
	if (l->n)
		qsort(l->v, l->n, sizeof(*l->v), cmp_src_name);
	goto out_close;

err_nomem:
	r = -ENOMEM;
	store_set_err(err, "out of memory");
out_close:
	closedir(d);
	return r;
}

/* SHA-256 of fd's content (from offset 0) as hex, and its size. */
int store_sha256_fd(int fd, char *hex, uint64_t *size)
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
		store_set_err(err, "cannot open %s: %s", e->name, strerror(-r));
		return r;
	}
	if (fstat(in, &before) < 0) {
		r = -errno;
		store_set_err(err, "cannot stat %s: %s", e->name, strerror(-r));
		goto out_close_in;
	}
	if (!S_ISREG(before.st_mode)) {
		r = -EAGAIN;
		store_set_err(err, "%s changed while being imported", e->name);
		goto out_close_in;
	}
	out = openat(stagefd, e->name, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
		     FILE_MODE);
	if (out < 0 || fchmod(out, FILE_MODE) < 0) {
		r = -errno;
		store_set_err(err, "cannot create the copy of %s: %s", e->name, strerror(-r));
		goto out_close;
	}
	r = util_copy_fd(in, out, &copied);
	if (r) {
		store_set_err(err, "cannot copy %s: %s", e->name, strerror(-r));
		goto out_close;
	}
	/* A copy torn by a concurrent writer would be imported as a set
	 * nobody published: refuse it; the caller may retry. */
	if (fstat(in, &after) < 0 || after.st_size != before.st_size ||
	    after.st_mtim.tv_sec != before.st_mtim.tv_sec ||
	    after.st_mtim.tv_nsec != before.st_mtim.tv_nsec || copied != (uint64_t)after.st_size) {
		r = -EAGAIN;
		store_set_err(err, "%s changed while being copied", e->name);
		goto out_close;
	}
	r = store_fsync_fd(out);
	if (!r)
		r = store_sha256_fd(out, e->sha256, &e->size);
	if (r) {
		store_set_err(err, "cannot write the copy of %s: %s", e->name, strerror(-r));
		goto out_close;
	}
	if (close(out) < 0) {
		out = -1;
		r = -errno;
		store_set_err(err, "cannot write the copy of %s: %s", e->name, strerror(-r));
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
int store_fingerprint_of(const struct src_list *l, char *hex)
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
	store_utc_time(time(NULL), false, created, sizeof(created));
	if (jsonutil_add(m, "manifest_version", json_object_new_int(DEFS_MANIFEST_VERSION)) ||
	    jsonutil_add(m, "generation", json_object_new_int64(gen)) ||
	    store_jadd_str(m, "created", created) || store_jadd_str(m, "source", source) ||
	    jsonutil_add(m, "files", files = json_object_new_array()) ||
	    jsonutil_add(m, "skipped", skipped = json_object_new_array()) ||
	    store_jadd_str(m, "fingerprint", fingerprint))
		goto err_put;
	for (size_t i = 0; i < l->n; i++) {
		const struct src_entry *e = &l->v[i];
		struct json_object *o = json_object_new_object();

		if (store_jappend(e->skip ? skipped : files, o) ||
		    store_jadd_str(o, "name", e->name))
			goto err_put;
		if (e->skip ? store_jadd_str(o, "reason", e->skip)
			    : jsonutil_add(o, "size", json_object_new_int64((int64_t)e->size)) ||
				      store_jadd_str(o, "sha256", e->sha256))
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
		store_set_err(err, "import metadata is not a JSON object");
		return -EINVAL;
	}
	json_object_object_foreach(meta, key, val)
	{
		for (size_t i = 0; i < SE_ARRAY_SIZE(manifest_keys); i++) {
			if (!strcmp(key, manifest_keys[i])) {
				store_set_err(err,
					      "import metadata member \"%s\" is a manifest member",
					      key);
				return -EINVAL;
			}
		}
	}
	if (!json_object_object_get_ex(meta, EXPECTED_FILES, &ef))
		return 0;
	if (!json_object_is_type(ef, json_type_object)) {
		store_set_err(err, "%s is not a JSON object", EXPECTED_FILES);
		return -EINVAL;
	}
	json_object_object_foreach(ef, name, sha)
	{
		if (!json_object_is_type(sha, json_type_string) ||
		    !store_is_fingerprint(json_object_get_string(sha))) {
			store_set_err(err, "%s: the SHA-256 of %s is not 64 hex digits",
				      EXPECTED_FILES, name);
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
			store_set_err(err, "file %s was not validated", e->name);
			return -EBADMSG;
		}
		if (strcasecmp(json_object_get_string(sha), e->sha256)) {
			store_set_err(err, "file %s changed since it was validated", e->name);
			return -EBADMSG;
		}
	}
	json_object_object_foreach(expected, name, val)
	{
		const struct src_entry *e =
			l->n ? bsearch(name, l->v, l->n, sizeof(*l->v), cmp_src_key) : NULL;

		if (!e || e->skip) {
			store_set_err(err, "file %s is missing", name);
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
		store_set_err(err, "cannot open %s: %s", srcdir, strerror(-r));
		goto out_free;
	}
	r = store_read_source(srcfd, &l, err);
	if (r)
		goto out_free;
	if (!l.nfiles) {
		r = -ENOENT;
		store_set_err(err, "%s holds no regular files to import", srcdir);
		goto out_free;
	}
	source = realpath(srcdir, NULL);
	r = store_lock(s);
	if (r) {
		store_set_err(err, "cannot lock the definitions store: %s", strerror(-r));
		goto out_free;
	}
	r = next_gen(s, &n);
	if (r) {
		store_set_err(err, "cannot number the new generation: %s", strerror(-r));
		goto out_unlock;
	}
	store_gen_name(n, name);
	snprintf(stage, sizeof(stage), "%s/%s.tmp-%ld", STAGING_DIR, name, (long)getpid());
	rm_rf_in(s, stage); /* a leftover of a crashed run with our pid */
	r = make_dir_at(s->rootfd, stage);
	if (!r) {
		stagefd = openat(s->rootfd, stage, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		r = stagefd < 0 ? -errno : 0;
	}
	if (r) {
		store_set_err(err, "cannot create %s: %s", stage, strerror(-r));
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
	r = store_fingerprint_of(&l, fp);
	if (!r) {
		m = manifest_new(n, source ? source : srcdir, &l, fp, meta);
		r = m ? write_json_new(stagefd, MANIFEST_NAME, m) : -ENOMEM;
	}
	if (!r) {
		util_crash_point("store.import_dir.manifest");
		r = store_fsync_fd(stagefd);
	}
	if (r) {
		store_set_err(err, "cannot write the manifest: %s", strerror(-r));
		goto err_remove_stage;
	}
	util_crash_point("store.import_dir.synced");
	/* Transaction point: the complete, fsynced generation appears under
	 * its name in one rename; a crash before it leaves only staging
	 * leftovers, which the next open removes. */
	r = store_rename_noreplace(s->rootfd, stage, s->rootfd, name);
	if (r) {
		store_set_err(err, "cannot publish %s: %s", name, strerror(-r));
		goto err_remove_stage;
	}
	util_crash_point("store.import_dir.renamed");
	r = store_fsync_fd(s->rootfd);
	if (r) {
		/* not known to be durable: take it back rather than report a
		 * failure while a generation is visible */
		store_set_err(err, "cannot publish %s: %s", name, strerror(-r));
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
	store_src_list_free(&l);
	util_close(&srcfd);
	return r;
}

struct json_object *defs_store_manifest(const struct defs_store *s, unsigned int gen)
{
	char path[NAME_LEN * 2];
	struct json_object *m;
	int r;

	snprintf(path, sizeof(path), "gen-%06u", gen);
	if (!gen || !store_is_dir_at(s->rootfd, path)) {
		errno = ENOENT;
		return NULL;
	}
	snprintf(path, sizeof(path), "gen-%06u/%s", gen, MANIFEST_NAME);
	r = store_read_json_at(s->rootfd, path, &m);
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

	store_gen_name(gen, name);
	snprintf(tmp, sizeof(tmp), "%s%ld", CURRENT_TMP, (long)getpid());
	r = store_lock(s);
	if (r)
		return r;
	if (!gen || !store_is_dir_at(s->rootfd, name)) {
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
	r = store_fsync_fd(s->rootfd);
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
	if (!is_gen_name(target, &gen) || !store_is_dir_at(s->rootfd, target))
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

	store_gen_name(gen, name);
	if (!gen || !store_is_dir_at(s->rootfd, name))
		return -ENOENT;
	return store_read_fingerprint_in(s->rootfd, name, MANIFEST_NAME, hex);
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
		store_gen_name(gens[i], name);
		snprintf(trash, sizeof(trash), "%s/%s.del-%ld", STAGING_DIR, name, (long)getpid());
		rm_rf_in(s, trash); /* a leftover of a crashed run with our pid */
		util_crash_point("store.prune.moving");
		/* Transaction point: the generation disappears as a whole;
		 * a crash while deleting it below leaves staging leftovers,
		 * not a half-deleted generation that could be activated. */
		r = store_rename_noreplace(s->rootfd, name, s->rootfd, trash);
		if (r)
			break;
		util_crash_point("store.prune.moved");
		gens[nmoved++] = gens[i];
	}
	if (nmoved) {
		int r2 = store_fsync_fd(s->rootfd);

		if (!r)
			r = r2;
	}
	for (size_t i = 0; i < nmoved; i++) {
		int r2;

		store_gen_name(gens[i], name);
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
	store_read_json_at(s->rootfd, path, &m);
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
	    store_jadd_str(o, "created", m ? json_str(m, "created") : NULL) ||
	    jadd_count(o, "files", files != NULL, nfiles) ||
	    jadd_count(o, "bytes", files != NULL, bytes) ||
	    store_jadd_str(o, "fingerprint", m ? json_str(m, "fingerprint") : NULL) ||
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
		if (store_jappend(arr, list_entry(s, gens[i], cur))) {
			json_object_put(arr);
			arr = NULL;
		}
	}
	free(gens);
	if (!arr)
		errno = ENOMEM;
	return arr;
}
