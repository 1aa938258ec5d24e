/* test_crashlog: unit tests of scanengine/crashlog.c (cmocka). Pure
 * arithmetic: every case drives the clock itself. */
#include "scanengine/crashlog.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdint.h>

#define WINDOW 60000u /* ms */
#define BASE   100u
#define MAXB   30000u
#define T0     1000000u /* an arbitrary monotonic start, well above WINDOW */

static void init_empty(void **state)
{
	struct crashlog c;

	(void)state;
	crashlog_init(&c, 3, WINDOW);
	assert_int_equal(crashlog_count(&c, T0), 0);
	assert_false(crashlog_looping(&c, T0));
	assert_int_equal(c.total, 0);
	assert_int_equal(crashlog_backoff_ms(&c, T0, BASE, MAXB), BASE);
}

/* (now - window, now]: a crash exactly window_ms old is out, one ms
 * younger is in. */
static void window_boundary(void **state)
{
	struct crashlog c;

	(void)state;
	crashlog_init(&c, 3, WINDOW);
	assert_int_equal(crashlog_add(&c, T0), 1);
	assert_int_equal(crashlog_count(&c, T0), 1);
	assert_int_equal(crashlog_count(&c, T0 + WINDOW - 1), 1);
	assert_int_equal(crashlog_count(&c, T0 + WINDOW), 0);
	assert_int_equal(crashlog_count(&c, T0 + WINDOW + 1), 0);
	/* a new crash exactly window_ms later does not count the old one */
	assert_int_equal(crashlog_add(&c, T0 + WINDOW), 1);
	assert_int_equal(c.total, 2);
}

/* now smaller than the window (early after boot) must not wrap */
static void window_early_clock(void **state)
{
	struct crashlog c;

	(void)state;
	crashlog_init(&c, 2, WINDOW);
	assert_int_equal(crashlog_add(&c, 0), 1);
	assert_int_equal(crashlog_add(&c, 5), 2);
	assert_true(crashlog_looping(&c, 5));
	assert_int_equal(crashlog_count(&c, WINDOW - 1), 2);
	assert_int_equal(crashlog_count(&c, WINDOW), 1);
	assert_int_equal(crashlog_count(&c, WINDOW + 5), 0);
}

static void threshold(void **state)
{
	struct crashlog c;

	(void)state;
	crashlog_init(&c, 3, WINDOW);
	crashlog_add(&c, T0);
	assert_false(crashlog_looping(&c, T0));
	crashlog_add(&c, T0 + 10);
	assert_false(crashlog_looping(&c, T0 + 10));
	assert_int_equal(crashlog_add(&c, T0 + 20), 3);
	assert_true(crashlog_looping(&c, T0 + 20));
	/* three crashes spread wider than the window are no loop */
	crashlog_init(&c, 3, WINDOW);
	crashlog_add(&c, T0);
	crashlog_add(&c, T0 + WINDOW / 2);
	assert_int_equal(crashlog_add(&c, T0 + WINDOW), 2);
	assert_false(crashlog_looping(&c, T0 + WINDOW));
}

/* threshold 0 is 1; above CRASHLOG_MAX it is CRASHLOG_MAX, else
 * unreachable; window 0 still holds the crash just recorded */
static void init_clamps(void **state)
{
	struct crashlog c;

	(void)state;
	crashlog_init(&c, 0, WINDOW);
	assert_int_equal(c.threshold, 1);
	assert_false(crashlog_looping(&c, T0));
	crashlog_add(&c, T0);
	assert_true(crashlog_looping(&c, T0));

	crashlog_init(&c, 1000, WINDOW);
	assert_int_equal(c.threshold, CRASHLOG_MAX);
	for (unsigned int i = 0; i < 200; i++)
		crashlog_add(&c, T0 + i);
	assert_true(crashlog_looping(&c, T0 + 200));

	crashlog_init(&c, 1, 0);
	assert_int_equal(crashlog_add(&c, T0), 1);
	assert_true(crashlog_looping(&c, T0));
	assert_int_equal(crashlog_count(&c, T0 + 1), 0);
}

/* the count falls as the crashes age out, one at a time */
static void decay(void **state)
{
	struct crashlog c;

	(void)state;
	crashlog_init(&c, 3, WINDOW);
	crashlog_add(&c, T0);
	crashlog_add(&c, T0 + 1000);
	crashlog_add(&c, T0 + 2000);
	assert_true(crashlog_looping(&c, T0 + 2000));
	assert_int_equal(crashlog_count(&c, T0 + WINDOW - 1), 3);
	assert_int_equal(crashlog_count(&c, T0 + WINDOW), 2);
	assert_false(crashlog_looping(&c, T0 + WINDOW));
	assert_int_equal(crashlog_count(&c, T0 + WINDOW + 1000), 1);
	assert_int_equal(crashlog_count(&c, T0 + WINDOW + 2000), 0);
	/* after the window emptied, a crash starts from 1 again */
	assert_int_equal(crashlog_add(&c, T0 + 10 * WINDOW), 1);
	assert_int_equal(c.total, 4);
}

/* 100, 200, 400, ... capped at 30000; back to base once the window is
 * empty */
static void backoff_schedule(void **state)
{
	static const uint64_t want[] = {100,  200,   400,   800,   1600,  3200,
					6400, 12800, 25600, 30000, 30000, 30000};
	struct crashlog c;
	uint64_t t = T0;
	size_t i;

	(void)state;
	crashlog_init(&c, 5, WINDOW);
	assert_int_equal(crashlog_backoff_ms(&c, t, BASE, MAXB), BASE);
	for (i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		crashlog_add(&c, t);
		assert_int_equal(crashlog_backoff_ms(&c, t, BASE, MAXB), want[i]);
		t += 100;
	}
	/* the oldest crashes age out first and the back-off comes down with
	 * them: at T0 + WINDOW + 250 the crashes from T0 + 300 on remain */
	assert_int_equal(crashlog_count(&c, T0 + WINDOW + 250), 9);
	assert_int_equal(crashlog_backoff_ms(&c, T0 + WINDOW + 250, BASE, MAXB), 25600);
	assert_int_equal(crashlog_backoff_ms(&c, T0 + WINDOW + 1050, BASE, MAXB), BASE);
	/* the window empties: base again */
	assert_int_equal(crashlog_count(&c, t - 100 + WINDOW), 0);
	assert_int_equal(crashlog_backoff_ms(&c, t - 100 + WINDOW, BASE, MAXB), BASE);
	assert_int_equal(crashlog_backoff_ms(&c, t + 10 * WINDOW, BASE, MAXB), BASE);
	/* and a fresh crash starts the schedule over */
	crashlog_add(&c, t + 10 * WINDOW);
	assert_int_equal(crashlog_backoff_ms(&c, t + 10 * WINDOW, BASE, MAXB), BASE);
	crashlog_add(&c, t + 10 * WINDOW + 1);
	assert_int_equal(crashlog_backoff_ms(&c, t + 10 * WINDOW + 1, BASE, MAXB), 200);
}

/* 2^(n-1) for n up to CRASHLOG_MAX overflows uint64_t for most bases */
static void backoff_overflow(void **state)
{
	struct crashlog c;
	unsigned int i;

	(void)state;
	crashlog_init(&c, 3, WINDOW);
	for (i = 0; i < CRASHLOG_MAX; i++)
		crashlog_add(&c, T0);
	assert_int_equal(crashlog_count(&c, T0), CRASHLOG_MAX);
	assert_int_equal(crashlog_backoff_ms(&c, T0, BASE, MAXB), MAXB);
	assert_int_equal(crashlog_backoff_ms(&c, T0, 1, UINT64_MAX), UINT64_C(1) << 63);
	assert_int_equal(crashlog_backoff_ms(&c, T0, 3, UINT64_MAX), UINT64_MAX);
	assert_int_equal(crashlog_backoff_ms(&c, T0, UINT64_MAX, UINT64_MAX), UINT64_MAX);

	/* two crashes: a base just above half of UINT64_MAX would wrap */
	crashlog_init(&c, 3, WINDOW);
	crashlog_add(&c, T0);
	crashlog_add(&c, T0);
	assert_int_equal(crashlog_backoff_ms(&c, T0, UINT64_MAX / 2 + 1, UINT64_MAX), UINT64_MAX);
	assert_int_equal(crashlog_backoff_ms(&c, T0, UINT64_MAX / 2, UINT64_MAX), UINT64_MAX - 1);
	/* a max below the base: never faster than the base */
	assert_int_equal(crashlog_backoff_ms(&c, T0, 500, 100), 500);
	/* base 0: no back-off at all */
	assert_int_equal(crashlog_backoff_ms(&c, T0, 0, MAXB), 0);
}

/* a "now" earlier than the last crash is the last crash */
static void clock_backwards(void **state)
{
	struct crashlog c;

	(void)state;
	crashlog_init(&c, 3, WINDOW);
	crashlog_add(&c, T0 + 5000);
	assert_int_equal(crashlog_count(&c, T0), 1);
	assert_int_equal(crashlog_count(&c, 0), 1);
	assert_false(crashlog_stable(&c, T0, 1));
	assert_false(crashlog_stable(&c, 0, 1));
	assert_true(crashlog_stable(&c, 0, 0));
	/* recorded at the last crash's time, and the window still ends there */
	assert_int_equal(crashlog_add(&c, T0), 2);
	assert_int_equal(c.last_ms, T0 + 5000);
	assert_int_equal(crashlog_add(&c, 0), 3);
	assert_true(crashlog_looping(&c, 0));
	assert_int_equal(crashlog_count(&c, T0 + 5000 + WINDOW - 1), 3);
	assert_int_equal(crashlog_count(&c, T0 + 5000 + WINDOW), 0);
	assert_int_equal(crashlog_backoff_ms(&c, 0, BASE, MAXB), 400);
}

/* more crashes in one window than the ring holds: "at least CRASHLOG_MAX",
 * and the ring keeps the newest in order across many wraps */
static void saturation(void **state)
{
	struct crashlog c;
	unsigned int i, n = 3 * CRASHLOG_MAX + 7;

	(void)state;
	crashlog_init(&c, 10, WINDOW);
	for (i = 0; i < n; i++)
		assert_int_equal(crashlog_add(&c, T0 + i),
				 i + 1 < CRASHLOG_MAX ? i + 1 : CRASHLOG_MAX);
	assert_int_equal(c.total, n);
	assert_int_equal(crashlog_count(&c, T0 + n - 1), CRASHLOG_MAX);
	assert_true(crashlog_looping(&c, T0 + n - 1));
	/* the ring holds the newest CRASHLOG_MAX: they age out one by one,
	 * the oldest of them at T0 + n - CRASHLOG_MAX */
	assert_int_equal(crashlog_count(&c, T0 + n - CRASHLOG_MAX + WINDOW - 1), CRASHLOG_MAX);
	assert_int_equal(crashlog_count(&c, T0 + n - CRASHLOG_MAX + WINDOW), CRASHLOG_MAX - 1);
	assert_int_equal(crashlog_count(&c, T0 + n - 2 + WINDOW), 1);
	assert_int_equal(crashlog_count(&c, T0 + n - 1 + WINDOW), 0);
	/* after aging out, counting restarts cleanly */
	assert_int_equal(crashlog_add(&c, T0 + n - 1 + WINDOW), 1);
	assert_int_equal(crashlog_add(&c, T0 + n + WINDOW), 2);
}

/* a crash rate that keeps the window partly full never saturates falsely:
 * old entries are dropped before the ring is considered full */
static void no_false_saturation(void **state)
{
	struct crashlog c;
	unsigned int i;

	(void)state;
	crashlog_init(&c, 10, 1000);
	for (i = 0; i < 10 * CRASHLOG_MAX; i++)
		assert_int_equal(crashlog_add(&c, T0 + (uint64_t)i * 100), i < 10 ? i + 1 : 10);
	assert_int_equal(c.n, 10);
}

static void stable(void **state)
{
	struct crashlog c;

	(void)state;
	crashlog_init(&c, 3, WINDOW);
	/* before any crash, at any time, even at 0 */
	assert_true(crashlog_stable(&c, 0, 600000));
	assert_true(crashlog_stable(&c, T0, 600000));
	/* a crash at monotonic 0 is still a crash */
	crashlog_add(&c, 0);
	assert_false(crashlog_stable(&c, 0, 600000));
	assert_false(crashlog_stable(&c, 599999, 600000));
	assert_true(crashlog_stable(&c, 600000, 600000));

	crashlog_init(&c, 3, WINDOW);
	crashlog_add(&c, T0);
	assert_false(crashlog_stable(&c, T0, 600000));
	assert_false(crashlog_stable(&c, T0 + 599999, 600000));
	/* exactly stable_ms without a crash is stable */
	assert_true(crashlog_stable(&c, T0 + 600000, 600000));
	assert_true(crashlog_stable(&c, T0 + 600001, 600000));
	/* a new crash restarts the period */
	crashlog_add(&c, T0 + 600001);
	assert_false(crashlog_stable(&c, T0 + 600001 + 599999, 600000));
	assert_true(crashlog_stable(&c, T0 + 600001 + 600000, 600000));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(init_empty),	       cmocka_unit_test(window_boundary),
		cmocka_unit_test(window_early_clock),  cmocka_unit_test(threshold),
		cmocka_unit_test(init_clamps),	       cmocka_unit_test(decay),
		cmocka_unit_test(backoff_schedule),    cmocka_unit_test(backoff_overflow),
		cmocka_unit_test(clock_backwards),     cmocka_unit_test(saturation),
		cmocka_unit_test(no_false_saturation), cmocka_unit_test(stable),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
