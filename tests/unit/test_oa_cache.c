/* test_oa_cache: unit tests of fanotify/cache.c (cmocka): the user-space
 * verdict cache keyed by file identity, its generations and its TTL. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <string.h>
#include <sys/stat.h>

#include "fanotify/onaccess_int.h"

static struct stat file(dev_t dev, ino_t ino, off_t size, time_t mtime, time_t ctime)
{
	struct stat st;

	memset(&st, 0, sizeof(st));
	st.st_dev = dev;
	st.st_ino = ino;
	st.st_size = size;
	st.st_mtim.tv_sec = mtime;
	st.st_ctim.tv_sec = ctime;
	return st;
}

static void test_identity(void **state)
{
	struct oa_cache c;
	struct stat a = file(8, 100, 10, 1000, 1000), changed;

	(void)state;
	assert_int_equal(oa_cache_init(&c, 1024), 0);
	assert_false(oa_cache_hit(&c, &a, 5));
	oa_cache_put(&c, &a, 5);
	assert_true(oa_cache_hit(&c, &a, 6));
	/* any change of the identity is a miss */
	changed = a;
	changed.st_size++;
	assert_false(oa_cache_hit(&c, &changed, 6));
	changed = a;
	changed.st_mtim.tv_nsec = 1;
	assert_false(oa_cache_hit(&c, &changed, 6));
	changed = a;
	changed.st_ctim.tv_sec++; /* chmod, utimensat */
	assert_false(oa_cache_hit(&c, &changed, 6));
	changed = a;
	changed.st_dev = 9;
	assert_false(oa_cache_hit(&c, &changed, 6));
	oa_cache_free(&c);
}

static void test_generations_and_ttl(void **state)
{
	struct oa_cache c;
	struct stat a = file(8, 100, 10, 1000, 1000);

	(void)state;
	assert_int_equal(oa_cache_init(&c, 1024), 0);
	oa_cache_put(&c, &a, 1000);
	assert_true(oa_cache_hit(&c, &a, 1000 + OA_CACHE_TTL_S * 1000ULL - 1));
	assert_false(oa_cache_hit(&c, &a, 1000 + OA_CACHE_TTL_S * 1000ULL));
	oa_cache_put(&c, &a, 2000);
	oa_cache_invalidate(&c); /* new definitions */
	assert_false(oa_cache_hit(&c, &a, 2001));
	oa_cache_put(&c, &a, 2002);
	assert_true(oa_cache_hit(&c, &a, 2003));
	oa_cache_free(&c);
	/* a cache that could not be allocated never hits */
	memset(&c, 0, sizeof(c));
	oa_cache_put(&c, &a, 1);
	assert_false(oa_cache_hit(&c, &a, 2));
}

static void test_collisions_replace(void **state)
{
	struct oa_cache c;
	unsigned int hits = 0;

	(void)state;
	assert_int_equal(oa_cache_init(&c, 16), 0);
	for (ino_t i = 1; i <= 1000; i++) {
		struct stat s = file(8, i, 1, 1, 1);

		oa_cache_put(&c, &s, 10);
	}
	for (ino_t i = 1; i <= 1000; i++) {
		struct stat s = file(8, i, 1, 1, 1);

		hits += oa_cache_hit(&c, &s, 11);
	}
	/* at most one per slot, and the last put of a slot is kept */
	assert_true(hits >= 1 && hits <= 16);
	{
		struct stat last = file(8, 1000, 1, 1, 1);

		assert_true(oa_cache_hit(&c, &last, 11));
	}
	oa_cache_free(&c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_identity),
		cmocka_unit_test(test_generations_and_ttl),
		cmocka_unit_test(test_collisions_replace),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
