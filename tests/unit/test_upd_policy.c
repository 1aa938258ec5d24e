/* test_upd_policy: unit tests of updater/policy.c (cmocka): version
 * comparison, the update plan, mirror list handling, the check schedule
 * and the back-off, with seeded randomness. */
#include "updater/policy.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define DAY_MS 86400000ull

/* ---- versions ---- */

static void test_compare(void **state)
{
	(void)state;
	assert_int_equal(upd_compare(27000, 27000), UPD_UP_TO_DATE);
	assert_int_equal(upd_compare(27000, 27001), UPD_NEWER);
	assert_int_equal(upd_compare(27001, 27000), UPD_STALE);
	assert_int_equal(upd_compare(0, 1), UPD_NEWER); /* no database yet */
	assert_int_equal(upd_compare(1, 0), UPD_STALE);
	assert_int_equal(upd_compare(0, UINT32_MAX), UPD_NEWER);
	assert_int_equal(upd_compare(UINT32_MAX, UINT32_MAX - 1), UPD_STALE);
	assert_string_equal(upd_verdict_name(UPD_STALE), "stale mirror");
	assert_string_equal(upd_verdict_name((enum upd_verdict)99), "?");
}

static void test_plan(void **state)
{
	struct upd_plan p;

	(void)state;
	/* test-1 -> test-6 with cdiffs: five patches */
	assert_int_equal(upd_plan(1, 6, true, 0, &p), 0);
	assert_true(p.incremental);
	assert_int_equal(p.from, 1);
	assert_int_equal(p.to, 6);
	assert_int_equal(p.ncdiffs, 5);
	/* no cdiffs on the mirror: whole */
	assert_int_equal(upd_plan(1, 6, false, 0, &p), 0);
	assert_false(p.incremental);
	assert_int_equal(p.ncdiffs, 0);
	/* no database on the host: whole, whatever the mirror offers */
	assert_int_equal(upd_plan(0, 6, true, 0, &p), 0);
	assert_false(p.incremental);
	/* too far behind: whole; exactly at the bound: patches */
	assert_int_equal(upd_plan(100, 100 + UPD_MAX_CDIFFS + 1, true, 0, &p), 0);
	assert_false(p.incremental);
	assert_int_equal(upd_plan(100, 100 + UPD_MAX_CDIFFS, true, 0, &p), 0);
	assert_true(p.incremental);
	assert_int_equal(p.ncdiffs, UPD_MAX_CDIFFS);
	assert_int_equal(upd_plan(100, 103, true, 2, &p), 0);
	assert_false(p.incremental);
	/* nothing to do, or a downgrade: no plan */
	assert_int_equal(upd_plan(6, 6, true, 0, &p), -EINVAL);
	assert_int_equal(upd_plan(6, 3, true, 0, &p), -EINVAL);
	assert_false(p.incremental);
}

/* ---- mirrors ---- */

static void test_mirrors_order(void **state)
{
	const char *const priv[] = {"http://127.0.0.1:8080/clamav/", "file:///srv/mirror", NULL};
	const char *const db[] = {"database.clamav.net", "https://mirror.example.org",
				  "http://127.0.0.1:8080/clamav", NULL};
	struct upd_mirrors m;
	char err[256] = "";

	(void)state;
	assert_int_equal(upd_mirrors_build(priv, db, &m, err), 0);
	/* private first, in order; a bare host is https; trailing '/' gone; the
	 * repeated mirror listed once */
	assert_int_equal(m.n, 4);
	assert_string_equal(m.v[0].url, "http://127.0.0.1:8080/clamav");
	assert_true(m.v[0].private_mirror);
	assert_string_equal(m.v[1].url, "file:///srv/mirror");
	assert_true(m.v[1].private_mirror);
	assert_string_equal(m.v[2].url, "https://database.clamav.net");
	assert_false(m.v[2].private_mirror);
	assert_string_equal(m.v[3].url, "https://mirror.example.org");

	assert_int_equal(upd_mirrors_build(NULL, db, &m, err), 0);
	assert_int_equal(m.n, 3);
	assert_string_equal(m.v[0].url, "https://database.clamav.net");
}

static void test_mirrors_refused(void **state)
{
	static const struct {
		const char *value;
		int rc;
		const char *why;
	} bad[] = {
		{"ftp://mirror.example.org", -EINVAL, "scheme not supported"},
		{"", -EINVAL, "empty"},
		{"https://", -EINVAL, "no host"},
		{"http://:8080/x", -EINVAL, "no host"},
		{"https://host/db?x=1", -EINVAL, "query or fragment"},
		{"https://host/db#top", -EINVAL, "query or fragment"},
		{"https://ho st", -EINVAL, "white space"},
		{"file://relative/dir", -EINVAL, "absolute directory"},
		{"file:///", -EINVAL, "absolute directory"},
	};
	struct upd_mirrors m;
	char err[256];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *const one[] = {bad[i].value, NULL};

		err[0] = '\0';
		assert_int_equal(upd_mirrors_build(NULL, one, &m, err), bad[i].rc);
		if (!strstr(err, bad[i].why) || !strstr(err, "mirror '"))
			fail_msg("%s: %s", bad[i].value, err);
	}
	assert_int_equal(upd_mirrors_build(NULL, NULL, &m, err), -ENOENT);
	assert_non_null(strstr(err, "no mirror configured"));
}

static void test_mirrors_too_many(void **state)
{
	char urls[UPD_MAX_MIRRORS + 1][64];
	const char *list[UPD_MAX_MIRRORS + 2];
	struct upd_mirrors m;
	char err[256];

	(void)state;
	for (size_t i = 0; i <= UPD_MAX_MIRRORS; i++) {
		snprintf(urls[i], sizeof(urls[i]), "mirror%zu.example.org", i);
		list[i] = urls[i];
	}
	list[UPD_MAX_MIRRORS] = NULL;
	assert_int_equal(upd_mirrors_build(NULL, list, &m, err), 0);
	assert_int_equal(m.n, UPD_MAX_MIRRORS);
	list[UPD_MAX_MIRRORS] = urls[UPD_MAX_MIRRORS];
	list[UPD_MAX_MIRRORS + 1] = NULL;
	assert_int_equal(upd_mirrors_build(NULL, list, &m, err), -E2BIG);
	assert_non_null(strstr(err, "too many mirrors"));
}

/* ---- randomness and the schedule ---- */

static void test_rand_seeded(void **state)
{
	uint64_t a = 42, b = 42, c = 43;
	uint64_t x = upd_rand(&a);

	(void)state;
	assert_true(x == upd_rand(&b)); /* same seed, same sequence */
	assert_true(x != upd_rand(&c));
	assert_true(upd_rand(&a) != x); /* and it moves on */
}

static void test_next_check(void **state)
{
	uint64_t seed = 7, now = 1000000, lo = UINT64_MAX, hi = 0;
	const uint64_t interval = DAY_MS / 24, quarter = interval / 4;

	(void)state;
	assert_int_equal(upd_next_check_ms(now, 0, &seed), 0);
	for (int i = 0; i < 2000; i++) {
		uint64_t t = upd_next_check_ms(now, 24, &seed);

		assert_true(t >= now + interval - quarter);
		assert_true(t <= now + interval + quarter);
		lo = t < lo ? t : lo;
		hi = t > hi ? t : hi;
	}
	/* the jitter really spreads a fleet: most of the half-hour window */
	assert_true(hi - lo > quarter * 3 / 2);
	/* Checks 1: about a day */
	seed = 7;
	assert_true(upd_next_check_ms(now, 1, &seed) >= now + DAY_MS * 3 / 4);
	/* reproducible with the same seed */
	{
		uint64_t s1 = 99, s2 = 99;

		assert_true(upd_next_check_ms(now, 12, &s1) == upd_next_check_ms(now, 12, &s2));
	}
}

/* ---- back-off ---- */

static void test_backoff_network(void **state)
{
	struct upd_backoff b = {0};
	uint64_t seed = 1, now = 5000, prev = 0;

	(void)state;
	assert_true(upd_backoff_ready(&b, now));
	for (unsigned int i = 0; i < 12; i++) {
		uint64_t base = (uint64_t)UPD_BACKOFF_BASE_S << (i < 16 ? i : 16);
		uint64_t w;

		if (base > UPD_BACKOFF_MAX_S)
			base = UPD_BACKOFF_MAX_S;
		w = upd_backoff_fail(&b, UPD_FAIL_NETWORK, now, 0, &seed);
		/* exponential, capped, jitter of at most a tenth on top */
		assert_true(w >= base);
		assert_true(w <= base + base / 10);
		assert_true(w >= prev || base == UPD_BACKOFF_MAX_S);
		assert_int_equal(b.failures, i + 1);
		assert_false(upd_backoff_ready(&b, now + w * 1000 - 1));
		assert_true(upd_backoff_ready(&b, now + w * 1000));
		prev = w;
	}
	assert_true(prev <= UPD_BACKOFF_MAX_S + UPD_BACKOFF_MAX_S / 10);
	upd_backoff_ok(&b);
	assert_int_equal(b.failures, 0);
	assert_true(upd_backoff_ready(&b, now));
	/* after a success it starts from the base again */
	assert_true(upd_backoff_fail(&b, UPD_FAIL_BAD_DATA, now, 0, &seed) <=
		    UPD_BACKOFF_BASE_S + UPD_BACKOFF_BASE_S / 10);
}

static void test_backoff_rate_limit_and_forbidden(void **state)
{
	struct upd_backoff b = {0};
	uint64_t seed = 3;

	(void)state;
	/* 429 with Retry-After: as told; without: an hour; bounded by a day */
	assert_int_equal(upd_backoff_fail(&b, UPD_FAIL_RATE_LIMIT, 0, 900, &seed), 900);
	assert_int_equal(upd_backoff_fail(&b, UPD_FAIL_RATE_LIMIT, 0, 0, &seed), UPD_RATE_LIMIT_S);
	assert_int_equal(upd_backoff_fail(&b, UPD_FAIL_RATE_LIMIT, 0, 7 * 86400, &seed),
			 UPD_RETRY_AFTER_MAX);
	assert_int_equal(b.last, UPD_FAIL_RATE_LIMIT);
	/* 403: a day, however few failures */
	upd_backoff_ok(&b);
	assert_int_equal(upd_backoff_fail(&b, UPD_FAIL_FORBIDDEN, 1000, 0, &seed), UPD_FORBIDDEN_S);
	assert_false(upd_backoff_ready(&b, 1000 + UPD_FORBIDDEN_S * 1000ull - 1));
	/* a stale mirror: the base interval, without growing */
	upd_backoff_ok(&b);
	for (int i = 0; i < 5; i++)
		assert_int_equal(upd_backoff_fail(&b, UPD_FAIL_STALE, 0, 0, &seed),
				 UPD_BACKOFF_BASE_S);
	assert_string_equal(upd_failure_name(UPD_FAIL_RATE_LIMIT), "rate limited (429)");
}

/* The same seed gives the same back-off: a test can pin the jitter. */
static void test_backoff_seeded(void **state)
{
	struct upd_backoff a = {0}, b = {0};
	uint64_t sa = 11, sb = 11;

	(void)state;
	for (int i = 0; i < 6; i++)
		assert_true(upd_backoff_fail(&a, UPD_FAIL_NETWORK, 0, 0, &sa) ==
			    upd_backoff_fail(&b, UPD_FAIL_NETWORK, 0, 0, &sb));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_compare),
		cmocka_unit_test(test_plan),
		cmocka_unit_test(test_mirrors_order),
		cmocka_unit_test(test_mirrors_refused),
		cmocka_unit_test(test_mirrors_too_many),
		cmocka_unit_test(test_rand_seeded),
		cmocka_unit_test(test_next_check),
		cmocka_unit_test(test_backoff_network),
		cmocka_unit_test(test_backoff_rate_limit_and_forbidden),
		cmocka_unit_test(test_backoff_seeded),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
