/* test_poison: unit tests of scanengine/poison.c (cmocka), on real files,
 * copies and memfds in a private directory. */
#include "scanengine/poison.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include <json-c/json.h>
#include <openssl/evp.h>

#define CONTENT "this file crashes the scanner\n"
#define ABC_SHA "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
#define NIL_SHA "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

struct fx {
	char dir[64];
	char a[96];	 /* CONTENT */
	char copy[96];	 /* CONTENT, another inode */
	char other[96];	 /* same size as CONTENT, other bytes */
	char longer[96]; /* CONTENT plus one byte */
};

static void write_file(const char *path, const void *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	assert_int_equal(close(fd), 0);
}

static int setup(void **state)
{
	struct fx *fx = calloc(1, sizeof(*fx));
	char other[] = CONTENT;

	if (!fx)
		return -1;
	snprintf(fx->dir, sizeof(fx->dir), "/tmp/test_poison.XXXXXX");
	if (!mkdtemp(fx->dir)) {
		free(fx);
		return -1;
	}
	snprintf(fx->a, sizeof(fx->a), "%s/a", fx->dir);
	snprintf(fx->copy, sizeof(fx->copy), "%s/copy", fx->dir);
	snprintf(fx->other, sizeof(fx->other), "%s/other", fx->dir);
	snprintf(fx->longer, sizeof(fx->longer), "%s/longer", fx->dir);
	write_file(fx->a, CONTENT, strlen(CONTENT));
	write_file(fx->copy, CONTENT, strlen(CONTENT));
	other[0] = 'T';
	write_file(fx->other, other, strlen(other));
	write_file(fx->longer, CONTENT "!", strlen(CONTENT) + 1);
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fx *fx = *state;
	char large[128];

	/* sha256_large's file too, should that case have failed midway */
	snprintf(large, sizeof(large), "%s/large", fx->dir);
	unlink(large);
	unlink(fx->a);
	unlink(fx->copy);
	unlink(fx->other);
	unlink(fx->longer);
	rmdir(fx->dir);
	free(fx);
	return 0;
}

/* identity of path, and its SHA-256 when with_sha */
static void file_of(const char *path, bool with_sha, struct poison_file *f)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	poison_file_from_stat(f, &st);
	assert_false(f->have_sha256);
	if (with_sha) {
		assert_int_equal(poison_sha256_fd(fd, 0, f->sha256), 0);
		f->have_sha256 = true;
	}
	close(fd);
}

/* a synthetic identity: tests of matching need no files */
static struct poison_file fake(ino_t ino, off_t size)
{
	struct poison_file f;

	memset(&f, 0, sizeof(f));
	f.dev = 0x801;
	f.ino = ino;
	f.size = size;
	f.mtime.tv_sec = 1700000000;
	f.mtime.tv_nsec = 123456789;
	return f;
}

static void hex(const unsigned char *md, char *out)
{
	for (int i = 0; i < POISON_SHA256_LEN; i++)
		sprintf(out + 2 * i, "%02x", md[i]);
}

static struct json_object *jget(struct json_object *o, const char *key)
{
	struct json_object *v = NULL;

	if (!json_object_object_get_ex(o, key, &v))
		fail_msg("no \"%s\" in %s", key, json_object_to_json_string(o));
	return v;
}

static void new_args(void **state)
{
	struct poison *p;

	(void)state;
	errno = 0;
	assert_null(poison_new(2, 0));
	assert_int_equal(errno, EINVAL);
	/* threshold 0 is 1: the first crash poisons */
	p = poison_new(0, 4);
	assert_non_null(p);
	{
		struct poison_file f = fake(1, 10);

		assert_int_equal(poison_record_crash(p, &f, "/x", SIGSEGV, 1), 1);
		assert_int_equal(poison_check(p, &f), POISON_YES);
	}
	poison_free(p);
	poison_free(NULL);
}

static void identity_match(void **state)
{
	struct fx *fx = *state;
	struct poison_file f, g;
	struct poison *p = poison_new(2, 16);

	assert_non_null(p);
	file_of(fx->a, false, &f);
	assert_int_equal(poison_check(p, &f), POISON_NO);
	assert_int_equal(poison_record_crash(p, &f, fx->a, SIGSEGV, 100), 0);
	/* recorded but not yet poisoned */
	assert_int_equal(poison_check(p, &f), POISON_NO);
	assert_int_equal(poison_count(p), 0);
	assert_int_equal(poison_record_crash(p, &f, fx->a, SIGSEGV, 200), 1);
	assert_int_equal(poison_count(p), 1);
	/* the same file stat'ed again, with or without its hash */
	file_of(fx->a, false, &g);
	assert_int_equal(poison_check(p, &g), POISON_YES);
	file_of(fx->a, true, &g);
	assert_int_equal(poison_check(p, &g), POISON_YES);
	/* a copy has another inode and no hash is known: not recognised */
	file_of(fx->copy, false, &g);
	assert_int_equal(poison_check(p, &g), POISON_NO);
	poison_free(p);
}

/* record_crash returns 1 exactly once: on the threshold-th crash */
static void threshold_once(void **state)
{
	struct poison_file f = fake(7, 1000);
	struct poison *p = poison_new(3, 16);
	int i;

	(void)state;
	assert_non_null(p);
	assert_int_equal(poison_record_crash(p, &f, "/f", SIGSEGV, 1), 0);
	assert_int_equal(poison_record_crash(p, &f, "/f", SIGSEGV, 2), 0);
	assert_int_equal(poison_record_crash(p, &f, "/f", SIGSEGV, 3), 1);
	for (i = 0; i < 5; i++)
		assert_int_equal(poison_record_crash(p, &f, "/f", SIGSEGV, 4 + i), 0);
	assert_int_equal(poison_count(p), 1);
	poison_free(p);
}

/* a copy and a memfd with the same bytes: NEED_SHA on fstat data, YES
 * once hashed; same size other bytes: NO once hashed; other size: NO */
static void content_match(void **state)
{
	struct fx *fx = *state;
	struct poison_file f, g;
	struct poison *p = poison_new(1, 16);
	struct stat st;
	int mfd;

	assert_non_null(p);
	file_of(fx->a, true, &f);
	assert_int_equal(poison_record_crash(p, &f, fx->a, SIGSEGV, 1), 1);

	file_of(fx->copy, false, &g);
	assert_int_equal(poison_check(p, &g), POISON_NEED_SHA);
	file_of(fx->copy, true, &g);
	assert_int_equal(poison_check(p, &g), POISON_YES);

	mfd = memfd_create("poison-test", MFD_CLOEXEC);
	assert_true(mfd >= 0);
	assert_int_equal(write(mfd, CONTENT, strlen(CONTENT)), (ssize_t)strlen(CONTENT));
	assert_int_equal(fstat(mfd, &st), 0);
	poison_file_from_stat(&g, &st);
	assert_int_equal(poison_check(p, &g), POISON_NEED_SHA);
	assert_int_equal(poison_sha256_fd(mfd, 0, g.sha256), 0);
	g.have_sha256 = true;
	assert_int_equal(poison_check(p, &g), POISON_YES);
	close(mfd);

	file_of(fx->other, false, &g);
	assert_int_equal(poison_check(p, &g), POISON_NEED_SHA);
	file_of(fx->other, true, &g);
	assert_int_equal(poison_check(p, &g), POISON_NO);

	file_of(fx->longer, false, &g);
	assert_int_equal(poison_check(p, &g), POISON_NO);
	file_of(fx->longer, true, &g);
	assert_int_equal(poison_check(p, &g), POISON_NO);
	poison_free(p);
}

/* A crash of the copy counts for the original (content match), and a
 * hash learned on an identity match lets copies be recognised. */
static void content_counts_together(void **state)
{
	struct fx *fx = *state;
	struct poison_file a, a_sha, copy;
	struct poison *p = poison_new(2, 16);

	assert_non_null(p);
	file_of(fx->a, false, &a);
	file_of(fx->a, true, &a_sha);
	file_of(fx->copy, true, &copy);
	assert_int_equal(poison_record_crash(p, &a, fx->a, SIGSEGV, 1), 0);
	/* same identity: the entry learns the hash */
	assert_int_equal(poison_record_crash(p, &a_sha, fx->a, SIGBUS, 2), 1);
	assert_int_equal(poison_check(p, &copy), POISON_YES);
	poison_free(p);

	p = poison_new(2, 16);
	assert_non_null(p);
	assert_int_equal(poison_record_crash(p, &a_sha, fx->a, SIGSEGV, 1), 0);
	assert_int_equal(poison_record_crash(p, &copy, fx->copy, SIGSEGV, 2), 1);
	assert_int_equal(poison_count(p), 1);
	poison_free(p);
}

/* Two entries that turn out to be one file are merged: their crashes add
 * up, and the merged entry is poisoned once. */
static void merge(void **state)
{
	struct poison_file i1 = fake(1, 500), i2 = fake(2, 500), both;
	struct poison *p = poison_new(3, 16);
	struct json_object *j;

	(void)state;
	assert_non_null(p);
	memset(i2.sha256, 0xab, sizeof(i2.sha256));
	i2.have_sha256 = true;
	assert_int_equal(poison_record_crash(p, &i1, "/one", SIGSEGV, 10), 0);
	assert_int_equal(poison_record_crash(p, &i2, "/two", SIGABRT, 20), 0);
	/* identity of i1, content of i2 */
	both = i1;
	both.have_sha256 = true;
	memcpy(both.sha256, i2.sha256, sizeof(both.sha256));
	assert_int_equal(poison_record_crash(p, &both, "/one", SIGBUS, 30), 1);
	assert_int_equal(poison_count(p), 1);
	assert_int_equal(poison_check(p, &i1), POISON_YES);
	assert_int_equal(poison_check(p, &i2), POISON_YES);
	j = poison_json(p);
	assert_non_null(j);
	assert_int_equal(json_object_array_length(j), 1);
	assert_int_equal(json_object_get_int(jget(json_object_array_get_idx(j, 0), "crashes")), 3);
	assert_int_equal(json_object_array_length(jget(json_object_array_get_idx(j, 0), "signals")),
			 3);
	assert_int_equal(json_object_get_int64(jget(json_object_array_get_idx(j, 0), "first")), 10);
	assert_int_equal(json_object_get_int64(jget(json_object_array_get_idx(j, 0), "last")), 30);
	json_object_put(j);
	assert_int_equal(poison_reset(p), 1);

	/* two entries below the threshold whose sum jumps past it: still
	 * reported, once */
	assert_int_equal(poison_record_crash(p, &i1, "/one", SIGSEGV, 40), 0);
	assert_int_equal(poison_record_crash(p, &i1, "/one", SIGSEGV, 41), 0);
	assert_int_equal(poison_record_crash(p, &i2, "/two", SIGSEGV, 42), 0);
	assert_int_equal(poison_record_crash(p, &i2, "/two", SIGSEGV, 43), 0);
	assert_int_equal(poison_count(p), 0);
	assert_int_equal(poison_record_crash(p, &both, "/one", SIGSEGV, 44), 1);
	assert_int_equal(poison_record_crash(p, &both, "/one", SIGSEGV, 45), 0);
	assert_int_equal(poison_count(p), 1);
	poison_free(p);
}

/* Two rewrites of one inode (same identity, two hashes) are two entries,
 * and a crash without a hash, which matches both by identity, does not
 * merge them: it counts for the first. */
static void no_merge_of_conflicting(void **state)
{
	struct poison_file s1 = fake(9, 90), s2, nosha;
	struct poison *p = poison_new(2, 16);
	struct json_object *j;

	(void)state;
	assert_non_null(p);
	s1.have_sha256 = true;
	memset(s1.sha256, 0x11, sizeof(s1.sha256));
	s2 = s1;
	memset(s2.sha256, 0x22, sizeof(s2.sha256));
	nosha = s1;
	nosha.have_sha256 = false;
	assert_int_equal(poison_record_crash(p, &s1, "/r", SIGSEGV, 1), 0);
	assert_int_equal(poison_record_crash(p, &s2, "/r", SIGSEGV, 2), 0);
	assert_int_equal(poison_record_crash(p, &nosha, "/r", SIGSEGV, 3), 1);
	j = poison_json(p);
	assert_non_null(j);
	assert_int_equal(json_object_array_length(j), 1);
	assert_int_equal(json_object_get_int(jget(json_object_array_get_idx(j, 0), "crashes")), 2);
	json_object_put(j);
	assert_int_equal(poison_check(p, &s2), POISON_NO);
	/* the second rewrite kept its own crash */
	assert_int_equal(poison_record_crash(p, &s2, "/r", SIGSEGV, 4), 1);
	assert_int_equal(poison_count(p), 2);
	poison_free(p);
}

/* mtime differs only in nanoseconds: another identity */
static void mtime_nsec(void **state)
{
	struct poison_file f = fake(3, 4096), g;
	struct poison *p = poison_new(1, 16);

	(void)state;
	assert_non_null(p);
	assert_int_equal(poison_record_crash(p, &f, "/m", SIGSEGV, 1), 1);
	assert_int_equal(poison_check(p, &f), POISON_YES);
	g = f;
	g.mtime.tv_nsec++;
	assert_int_equal(poison_check(p, &g), POISON_NO);
	g = f;
	g.mtime.tv_sec++;
	assert_int_equal(poison_check(p, &g), POISON_NO);
	g = f;
	g.dev++;
	assert_int_equal(poison_check(p, &g), POISON_NO);
	g = f;
	g.ino++;
	assert_int_equal(poison_check(p, &g), POISON_NO);
	g = f;
	g.size++;
	assert_int_equal(poison_check(p, &g), POISON_NO);
	poison_free(p);

	/* with a hash on the entry, the same size asks for the hash instead */
	p = poison_new(1, 16);
	assert_non_null(p);
	f.have_sha256 = true;
	memset(f.sha256, 0x5a, sizeof(f.sha256));
	assert_int_equal(poison_record_crash(p, &f, "/m", SIGSEGV, 1), 1);
	g = f;
	g.have_sha256 = false;
	g.mtime.tv_nsec++;
	assert_int_equal(poison_check(p, &g), POISON_NEED_SHA);
	g.have_sha256 = true;
	assert_int_equal(poison_check(p, &g), POISON_YES);
	g.sha256[31] ^= 1;
	assert_int_equal(poison_check(p, &g), POISON_NO);
	poison_free(p);
}

/* the same identity with another hash: rewritten in place, not the file
 * that crashed */
static void identity_other_content(void **state)
{
	struct poison_file f = fake(4, 64), g;
	struct poison *p = poison_new(1, 16);

	(void)state;
	assert_non_null(p);
	f.have_sha256 = true;
	memset(f.sha256, 1, sizeof(f.sha256));
	assert_int_equal(poison_record_crash(p, &f, "/r", SIGSEGV, 1), 1);
	g = f;
	g.sha256[0] = 2;
	assert_int_equal(poison_check(p, &g), POISON_NO);
	g.have_sha256 = false;
	assert_int_equal(poison_check(p, &g), POISON_YES);
	/* and it is tracked as a file of its own */
	g.have_sha256 = true;
	assert_int_equal(poison_record_crash(p, &g, "/r", SIGSEGV, 2), 1);
	assert_int_equal(poison_count(p), 2);
	poison_free(p);
}

/* NEED_SHA only when hashing can help: an entry without a hash can only
 * be matched by identity */
static void need_sha_only_with_hash(void **state)
{
	struct poison_file f = fake(5, 77), g = fake(6, 77);
	struct poison *p = poison_new(1, 16);

	(void)state;
	assert_non_null(p);
	assert_int_equal(poison_record_crash(p, &f, "/n", SIGSEGV, 1), 1);
	assert_int_equal(poison_check(p, &g), POISON_NO);
	/* nor for an entry that is not poisoned yet */
	poison_free(p);
	p = poison_new(2, 16);
	assert_non_null(p);
	f.have_sha256 = true;
	assert_int_equal(poison_record_crash(p, &f, "/n", SIGSEGV, 1), 0);
	assert_int_equal(poison_check(p, &g), POISON_NO);
	poison_free(p);
}

/* several crashes with different paths and signals; poison_json */
static void paths_and_signals(void **state)
{
	struct fx *fx = *state;
	struct poison_file f, s = fake(99, 5);
	struct poison *p = poison_new(3, 16);
	struct json_object *j, *e, *sigs;
	char want[2 * POISON_SHA256_LEN + 1];

	assert_non_null(p);
	file_of(fx->a, true, &f);
	assert_int_equal(poison_record_crash(p, &f, "/first/name", SIGSEGV, 1000), 0);
	assert_int_equal(poison_record_crash(p, &f, NULL, SIGABRT, 2000), 0);
	assert_int_equal(poison_record_crash(p, &f, fx->a, SIGKILL, 3000), 1);
	assert_int_equal(poison_record_crash(p, &f, fx->a, SIGSYS, 4000), 0);
	/* not poisoned: not listed */
	assert_int_equal(poison_record_crash(p, &s, NULL, SIGSEGV, 4500), 0);

	j = poison_json(p);
	assert_non_null(j);
	assert_true(json_object_is_type(j, json_type_array));
	assert_int_equal(json_object_array_length(j), 1);
	e = json_object_array_get_idx(j, 0);
	assert_string_equal(json_object_get_string(jget(e, "path")), fx->a);
	assert_int_equal(json_object_get_uint64(jget(e, "dev")), (uint64_t)f.dev);
	assert_int_equal(json_object_get_uint64(jget(e, "ino")), (uint64_t)f.ino);
	assert_int_equal(json_object_get_int64(jget(e, "size")), strlen(CONTENT));
	assert_int_equal(json_object_get_int64(jget(e, "mtime")), f.mtime.tv_sec);
	assert_int_equal(json_object_get_int64(jget(e, "mtime_nsec")), f.mtime.tv_nsec);
	hex(f.sha256, want);
	assert_string_equal(json_object_get_string(jget(e, "sha256")), want);
	assert_int_equal(json_object_get_int(jget(e, "crashes")), 4);
	sigs = jget(e, "signals");
	assert_int_equal(json_object_array_length(sigs), 4);
	assert_int_equal(json_object_get_int(json_object_array_get_idx(sigs, 0)), SIGSEGV);
	assert_int_equal(json_object_get_int(json_object_array_get_idx(sigs, 1)), SIGABRT);
	assert_int_equal(json_object_get_int(json_object_array_get_idx(sigs, 2)), SIGKILL);
	assert_int_equal(json_object_get_int(json_object_array_get_idx(sigs, 3)), SIGSYS);
	assert_int_equal(json_object_get_int64(jget(e, "first")), 1000);
	assert_int_equal(json_object_get_int64(jget(e, "last")), 4000);
	json_object_put(j);

	/* a stream (no path) without a hash: nulls */
	poison_record_crash(p, &s, NULL, SIGSEGV, 5000);
	poison_record_crash(p, &s, NULL, SIGSEGV, 6000);
	j = poison_json(p);
	assert_non_null(j);
	assert_int_equal(json_object_array_length(j), 2);
	e = json_object_array_get_idx(j, 1);
	assert_true(json_object_is_type(jget(e, "path"), json_type_null));
	assert_true(json_object_is_type(jget(e, "sha256"), json_type_null));
	assert_int_equal(json_object_get_int64(jget(e, "first")), 4500);
	json_object_put(j);
	poison_free(p);
}

/* more crashes than signals kept: the count goes on, the list stops */
static void many_signals(void **state)
{
	struct poison_file f = fake(8, 8);
	struct poison *p = poison_new(1, 4);
	struct json_object *j, *e;
	int i;

	(void)state;
	assert_non_null(p);
	for (i = 0; i < 40; i++)
		poison_record_crash(p, &f, "/many", SIGSEGV, (uint64_t)i);
	j = poison_json(p);
	assert_non_null(j);
	e = json_object_array_get_idx(j, 0);
	assert_int_equal(json_object_get_int(jget(e, "crashes")), 40);
	assert_int_equal(json_object_array_length(jget(e, "signals")), 16);
	json_object_put(j);
	poison_free(p);
}

static void reset(void **state)
{
	struct poison_file a = fake(1, 10), b = fake(2, 20), c = fake(3, 30);
	struct poison *p = poison_new(2, 16);
	struct json_object *j;

	(void)state;
	assert_non_null(p);
	assert_int_equal(poison_reset(p), 0);
	poison_record_crash(p, &a, "/a", SIGSEGV, 1);
	poison_record_crash(p, &a, "/a", SIGSEGV, 2);
	poison_record_crash(p, &b, "/b", SIGSEGV, 3);
	poison_record_crash(p, &b, "/b", SIGSEGV, 4);
	poison_record_crash(p, &c, "/c", SIGSEGV, 5); /* one crash: not poisoned */
	assert_int_equal(poison_count(p), 2);
	assert_int_equal(poison_reset(p), 2);
	assert_int_equal(poison_count(p), 0);
	assert_int_equal(poison_check(p, &a), POISON_NO);
	assert_int_equal(poison_check(p, &b), POISON_NO);
	j = poison_json(p);
	assert_non_null(j);
	assert_int_equal(json_object_array_length(j), 0);
	json_object_put(j);
	/* everything was forgotten, the unpoisoned crash too */
	assert_int_equal(poison_record_crash(p, &c, "/c", SIGSEGV, 6), 0);
	assert_int_equal(poison_record_crash(p, &c, "/c", SIGSEGV, 7), 1);
	assert_int_equal(poison_reset(p), 1);
	poison_free(p);
}

/* full table: the least recently crashed non-poisoned entry goes first,
 * then the least recently crashed poisoned one */
static void eviction(void **state)
{
	struct poison_file a = fake(1, 1), b = fake(2, 2), c = fake(3, 3), d = fake(4, 4),
			   e = fake(5, 5);
	struct poison *p = poison_new(2, 3);

	(void)state;
	assert_non_null(p);
	assert_int_equal(poison_record_crash(p, &a, "/a", SIGSEGV, 1), 0);
	assert_int_equal(poison_record_crash(p, &a, "/a", SIGSEGV, 2), 1);
	assert_int_equal(poison_record_crash(p, &b, "/b", SIGSEGV, 3), 0);
	assert_int_equal(poison_record_crash(p, &c, "/c", SIGSEGV, 4), 0);
	/* full: d evicts b, the oldest non-poisoned, not a (poisoned, older) */
	assert_int_equal(poison_record_crash(p, &d, "/d", SIGSEGV, 5), 0);
	assert_int_equal(poison_check(p, &a), POISON_YES);
	/* c survived: its second crash poisons it */
	assert_int_equal(poison_record_crash(p, &c, "/c", SIGSEGV, 6), 1);
	/* b was forgotten: this is its first crash again; evicts d */
	assert_int_equal(poison_record_crash(p, &b, "/b", SIGSEGV, 7), 0);
	assert_int_equal(poison_record_crash(p, &b, "/b", SIGSEGV, 8), 1);
	assert_int_equal(poison_count(p), 3);
	/* all poisoned: e evicts a, the least recently crashed poisoned */
	assert_int_equal(poison_record_crash(p, &e, "/e", SIGSEGV, 9), 0);
	assert_int_equal(poison_check(p, &a), POISON_NO);
	assert_int_equal(poison_check(p, &b), POISON_YES);
	assert_int_equal(poison_check(p, &c), POISON_YES);
	assert_int_equal(poison_count(p), 2);
	/* e (not poisoned, the newest) goes before c and b; d was evicted
	 * before, so it takes two crashes again */
	assert_int_equal(poison_record_crash(p, &d, "/d", SIGSEGV, 10), 0);
	assert_int_equal(poison_record_crash(p, &d, "/d", SIGSEGV, 11), 1);
	assert_int_equal(poison_check(p, &b), POISON_YES);
	assert_int_equal(poison_check(p, &c), POISON_YES);
	assert_int_equal(poison_check(p, &d), POISON_YES);
	/* e was evicted (else this second crash would poison it); c, the
	 * least recently crashed poisoned entry, makes room */
	assert_int_equal(poison_record_crash(p, &e, "/e", SIGSEGV, 12), 0);
	assert_int_equal(poison_check(p, &c), POISON_NO);
	assert_int_equal(poison_check(p, &b), POISON_YES);
	poison_free(p);
}

/* "oldest" is the least recently crashed: a new crash refreshes an entry */
static void eviction_refresh(void **state)
{
	struct poison_file x = fake(1, 1), y = fake(2, 2), z = fake(3, 3);
	struct poison *p = poison_new(3, 2);

	(void)state;
	assert_non_null(p);
	assert_int_equal(poison_record_crash(p, &x, "/x", SIGSEGV, 1), 0);
	assert_int_equal(poison_record_crash(p, &y, "/y", SIGSEGV, 2), 0);
	assert_int_equal(poison_record_crash(p, &x, "/x", SIGSEGV, 3), 0);
	/* evicts y, not x */
	assert_int_equal(poison_record_crash(p, &z, "/z", SIGSEGV, 4), 0);
	assert_int_equal(poison_record_crash(p, &x, "/x", SIGSEGV, 5), 1);
	poison_free(p);
}

/* a table bigger than the first allocation grows and keeps every entry */
static void grow(void **state)
{
	struct poison *p = poison_new(1, 100);
	struct poison_file f;
	int i;

	(void)state;
	assert_non_null(p);
	for (i = 0; i < 100; i++) {
		f = fake((ino_t)i + 1, 10);
		assert_int_equal(poison_record_crash(p, &f, "/g", SIGSEGV, (uint64_t)i), 1);
	}
	assert_int_equal(poison_count(p), 100);
	for (i = 0; i < 100; i++) {
		f = fake((ino_t)i + 1, 10);
		assert_int_equal(poison_check(p, &f), POISON_YES);
	}
	f = fake(1000, 10);
	assert_int_equal(poison_record_crash(p, &f, "/g", SIGSEGV, 100), 1);
	assert_int_equal(poison_count(p), 100);
	f = fake(1, 10);
	assert_int_equal(poison_check(p, &f), POISON_NO);
	poison_free(p);
}

static void sha_of_text(const char *text, char *out)
{
	unsigned char md[POISON_SHA256_LEN];
	int fd = memfd_create("sha", MFD_CLOEXEC);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	assert_int_equal(poison_sha256_fd(fd, 0, md), 0);
	close(fd);
	hex(md, out);
}

static void sha256_vectors(void **state)
{
	char got[2 * POISON_SHA256_LEN + 1];

	(void)state;
	sha_of_text("abc", got);
	assert_string_equal(got, ABC_SHA);
	sha_of_text("", got);
	assert_string_equal(got, NIL_SHA);
}

/* several 64 KiB blocks and a partial one, against a one-shot digest */
static void sha256_large(void **state)
{
	struct fx *fx = *state;
	size_t len = 3 * 65536 + 17, i;
	unsigned char *buf = malloc(len), md[POISON_SHA256_LEN], want[EVP_MAX_MD_SIZE];
	unsigned int wlen = 0;
	char path[128];
	int fd;

	assert_non_null(buf);
	for (i = 0; i < len; i++)
		buf[i] = (unsigned char)(i * 131 + (i >> 8));
	snprintf(path, sizeof(path), "%s/large", fx->dir);
	write_file(path, buf, len);
	assert_int_equal(EVP_Digest(buf, len, want, &wlen, EVP_sha256(), NULL), 1);
	assert_int_equal(wlen, POISON_SHA256_LEN);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(poison_sha256_fd(fd, 0, md), 0);
	assert_memory_equal(md, want, POISON_SHA256_LEN);
	/* exactly at the limit is fine, one byte under is not */
	assert_int_equal(poison_sha256_fd(fd, len, md), 0);
	assert_memory_equal(md, want, POISON_SHA256_LEN);
	assert_int_equal(poison_sha256_fd(fd, len - 1, md), -EFBIG);
	close(fd);
	unlink(path);
	free(buf);
}

static void sha256_efbig(void **state)
{
	struct fx *fx = *state;
	unsigned char md[POISON_SHA256_LEN];
	int fd = open(fx->a, O_RDONLY | O_CLOEXEC);

	assert_true(fd >= 0);
	assert_int_equal(poison_sha256_fd(fd, strlen(CONTENT) - 1, md), -EFBIG);
	assert_int_equal(poison_sha256_fd(fd, strlen(CONTENT), md), 0);
	assert_int_equal(poison_sha256_fd(fd, 1, md), -EFBIG);
	close(fd);

	/* st_size says 0 but there is more: the limit holds while reading */
	fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(poison_sha256_fd(fd, 10, md), -EFBIG);
	assert_int_equal(poison_sha256_fd(fd, 0, md), 0);
	close(fd);
}

static void sha256_offset_kept(void **state)
{
	struct fx *fx = *state;
	unsigned char md[POISON_SHA256_LEN], md2[POISON_SHA256_LEN];
	char b[3];
	int fd = open(fx->a, O_RDONLY | O_CLOEXEC);

	assert_true(fd >= 0);
	assert_int_equal(read(fd, b, sizeof(b)), 3);
	assert_int_equal(poison_sha256_fd(fd, 0, md), 0);
	assert_int_equal(lseek(fd, 0, SEEK_CUR), 3);
	/* and it hashed the whole file, not from the offset on */
	assert_int_equal(lseek(fd, 0, SEEK_END), (off_t)strlen(CONTENT));
	assert_int_equal(poison_sha256_fd(fd, 0, md2), 0);
	assert_memory_equal(md, md2, sizeof(md));
	assert_int_equal(lseek(fd, 0, SEEK_CUR), (off_t)strlen(CONTENT));
	close(fd);
}

/* errors come back as -errno and leave out alone */
static void sha256_errors(void **state)
{
	struct fx *fx = *state;
	unsigned char md[POISON_SHA256_LEN], zero[POISON_SHA256_LEN] = {0};
	int fd, pfd[2];

	memset(md, 0, sizeof(md));
	fd = open(fx->a, O_WRONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(poison_sha256_fd(fd, 0, md), -EBADF);
	close(fd);
	assert_int_equal(poison_sha256_fd(-1, 0, md), -EBADF);

	fd = open(fx->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(poison_sha256_fd(fd, 0, md), -EISDIR);
	close(fd);

	assert_int_equal(pipe2(pfd, O_CLOEXEC), 0);
	assert_int_equal(write(pfd[1], "abc", 3), 3);
	assert_int_equal(poison_sha256_fd(pfd[0], 0, md), -ESPIPE);
	close(pfd[0]);
	close(pfd[1]);
	assert_memory_equal(md, zero, sizeof(md));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(new_args),
		cmocka_unit_test_setup_teardown(identity_match, setup, teardown),
		cmocka_unit_test(threshold_once),
		cmocka_unit_test_setup_teardown(content_match, setup, teardown),
		cmocka_unit_test_setup_teardown(content_counts_together, setup, teardown),
		cmocka_unit_test(merge),
		cmocka_unit_test(no_merge_of_conflicting),
		cmocka_unit_test(mtime_nsec),
		cmocka_unit_test(identity_other_content),
		cmocka_unit_test(need_sha_only_with_hash),
		cmocka_unit_test_setup_teardown(paths_and_signals, setup, teardown),
		cmocka_unit_test(many_signals),
		cmocka_unit_test(reset),
		cmocka_unit_test(eviction),
		cmocka_unit_test(eviction_refresh),
		cmocka_unit_test(grow),
		cmocka_unit_test(sha256_vectors),
		cmocka_unit_test_setup_teardown(sha256_large, setup, teardown),
		cmocka_unit_test_setup_teardown(sha256_efbig, setup, teardown),
		cmocka_unit_test_setup_teardown(sha256_offset_kept, setup, teardown),
		cmocka_unit_test_setup_teardown(sha256_errors, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
