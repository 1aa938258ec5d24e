/* store_fixture: what the unit tests of the definitions store
 * (test_store.c, test_store_quarantine.c) share: a private tree per test
 * under /tmp (a real, journaling file system: the fsyncs and renames are
 * the ones production sees) holding the store and a source directory, a
 * second source directory on /dev/shm when there is one, and helpers. Every
 * function is static inline: a test program that does not use one still
 * builds with -Wunused-function. */
#ifndef SE_TESTS_UNIT_STORE_FIXTURE_H
#define SE_TESTS_UNIT_STORE_FIXTURE_H

#include "defs/store.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <json-c/json.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#define NOBODY_ID 65534

struct fx {
	char base[64];	   /* private tree under /tmp */
	char shm[64];	   /* private tree on /dev/shm, or "" */
	char root[128];	   /* the store: <base>/defs */
	char src[128];	   /* a source directory on the store's file system */
	char src_shm[128]; /* a source directory on another file system (or = src) */
	char err[256];
	struct defs_store *s;
};

/* ---- helpers ---- */

static inline int rm_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

/* Independent of util_rm_rf (the store uses it). */
static inline void rm_tree(const char *path)
{
	nftw(path, rm_cb, 32, FTW_DEPTH | FTW_PHYS);
}

/* snprintf into an array that must not truncate. */
#define FMT(buf, ...) assert_true((size_t)snprintf(buf, sizeof(buf), __VA_ARGS__) < sizeof(buf))

static inline void join(char *buf, size_t len, const char *a, const char *b)
{
	assert_true((size_t)snprintf(buf, len, "%s/%s", a, b) < len);
}

static inline void write_file(const char *dir, const char *name, const void *data, size_t len)
{
	char path[PATH_MAX];
	int fd;

	join(path, sizeof(path), dir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	close(fd);
}

static inline void write_text(const char *dir, const char *name, const char *text)
{
	write_file(dir, name, text, strlen(text));
}

/* The content of path (malloc'd) and its length. */
static inline char *read_all(const char *path, size_t *len)
{
	struct stat st;
	char *buf;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	buf = malloc((size_t)st.st_size + 1);
	assert_non_null(buf);
	assert_int_equal(read(fd, buf, (size_t)st.st_size), st.st_size);
	buf[st.st_size] = '\0';
	close(fd);
	*len = (size_t)st.st_size;
	return buf;
}

static inline bool exists(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0;
}

static inline bool exists_in(const char *dir, const char *name)
{
	char path[PATH_MAX];

	join(path, sizeof(path), dir, name);
	return exists(path);
}

/* Entries of dir (but . and ..). */
static inline int count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;

	assert_non_null(d);
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

static inline void sha256_hex(const void *data, size_t len, char *hex)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;

	assert_int_equal(EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL), 1);
	assert_int_equal(mdlen, 32);
	for (unsigned int i = 0; i < mdlen; i++)
		sprintf(hex + 2 * i, "%02x", md[i]);
}

static inline struct json_object *load_json(const char *dir, const char *name)
{
	char path[PATH_MAX];
	struct json_object *o;

	join(path, sizeof(path), dir, name);
	o = json_object_from_file(path);
	assert_non_null(o);
	return o;
}

static inline struct json_object *member(struct json_object *o, const char *key)
{
	struct json_object *v = NULL;

	if (!json_object_object_get_ex(o, key, &v))
		fail_msg("no member %s", key);
	return v;
}

static inline const char *member_str(struct json_object *o, const char *key)
{
	struct json_object *v = member(o, key);

	assert_true(json_object_is_type(v, json_type_string));
	return json_object_get_string(v);
}

static inline int64_t member_int(struct json_object *o, const char *key)
{
	struct json_object *v = member(o, key);

	assert_true(json_object_is_type(v, json_type_int));
	return json_object_get_int64(v);
}

static inline void gen_dir(const struct fx *fx, unsigned int gen, char *buf, size_t len)
{
	assert_int_equal(defs_store_gen_path(fx->s, gen, buf, len), 0);
}

static inline unsigned int import_ok(struct fx *fx, const char *src)
{
	unsigned int gen = 0;
	int r = defs_store_import_dir(fx->s, src, NULL, &gen, fx->err);

	if (r)
		fail_msg("import of %s: %d (%s)", src, r, fx->err);
	assert_true(gen > 0);
	return gen;
}

/* A new source directory <base>/<name> holding one file whose content
 * depends on tag: distinct tags give distinct sets. */
static inline void make_src(const struct fx *fx, const char *name, const char *tag, char *dir,
			    size_t len)
{
	join(dir, len, fx->base, name);
	assert_int_equal(mkdir(dir, 0755), 0);
	write_text(dir, "main.cvd", tag);
}

static inline bool staging_empty(const struct fx *fx)
{
	char path[PATH_MAX];

	join(path, sizeof(path), fx->root, "staging");
	return count_entries(path) == 0;
}

static inline void wait_ok(pid_t pid)
{
	int status;

	assert_true(pid > 0);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

#define CHILD_CHECK(cond)                                                                          \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "child check failed at line %d: %s\n", __LINE__, #cond);   \
			_exit(1);                                                                  \
		}                                                                                  \
	} while (0)

static inline int setup(void **state)
{
	struct fx *fx = calloc(1, sizeof(*fx));

	if (!fx)
		return -1;
	snprintf(fx->base, sizeof(fx->base), "/tmp/test_store.XXXXXX");
	/* 0755: the cases run as nobody must reach into it */
	if (!mkdtemp(fx->base) || chmod(fx->base, 0755) < 0)
		goto err;
	snprintf(fx->root, sizeof(fx->root), "%s/defs", fx->base);
	snprintf(fx->src, sizeof(fx->src), "%s/src", fx->base);
	if (mkdir(fx->src, 0755) < 0)
		goto err;
	if (access("/dev/shm", W_OK | X_OK) == 0) {
		snprintf(fx->shm, sizeof(fx->shm), "/dev/shm/test_store.XXXXXX");
		if (!mkdtemp(fx->shm))
			goto err;
		snprintf(fx->src_shm, sizeof(fx->src_shm), "%s/src", fx->shm);
		if (mkdir(fx->src_shm, 0755) < 0)
			goto err;
	} else {
		snprintf(fx->src_shm, sizeof(fx->src_shm), "%s", fx->src);
	}
	fx->s = defs_store_open(fx->root, 2, fx->err);
	if (!fx->s)
		goto err;
	*state = fx;
	return 0;
err:
	fprintf(stderr, "setup: %s (%s)\n", strerror(errno), fx->err);
	free(fx);
	return -1;
}

static inline int teardown(void **state)
{
	struct fx *fx = *state;

	defs_store_close(fx->s);
	rm_tree(fx->base);
	if (fx->shm[0])
		rm_tree(fx->shm);
	free(fx);
	return 0;
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

#endif
