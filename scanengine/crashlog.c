/* crashlog: sliding window of worker crash times, respawn back-off and
 * stable period (fault 6). See crashlog.h.
 *
 * The ring holds crash times in non-decreasing order: crashlog_add clamps
 * a "now" earlier than the last crash to the last crash, so the oldest
 * entries are always at head and the newest at head + n - 1. */
#include "scanengine/crashlog.h"

#include <string.h>

/* index of the i-th oldest entry */
static unsigned int slot(const struct crashlog *c, unsigned int i)
{
	return (c->head + i) % CRASHLOG_MAX;
}

/* A clock that went backwards must not make the last crash look like it
 * happened in the future (or, with unsigned arithmetic, aeons ago). */
static uint64_t clamp_now(const struct crashlog *c, uint64_t now_ms)
{
	if (c->total && now_ms < c->last_ms)
		return c->last_ms;
	return now_ms;
}

/* t lies in (now - window, now]; written as a difference so that a "now"
 * smaller than the window (early after boot, or in tests) cannot wrap. */
static bool in_window(const struct crashlog *c, uint64_t t, uint64_t now_ms)
{
	return t <= now_ms && now_ms - t < c->window_ms;
}

void crashlog_init(struct crashlog *c, unsigned int threshold, uint64_t window_ms)
{
	memset(c, 0, sizeof(*c));
	/* A threshold above the ring size could never be reached because the
	 * count saturates at CRASHLOG_MAX: take it as CRASHLOG_MAX so a crash
	 * loop is still detected. */
	if (threshold == 0)
		threshold = 1;
	if (threshold > CRASHLOG_MAX)
		threshold = CRASHLOG_MAX;
	c->threshold = threshold;
	/* An empty window would not even hold the crash just recorded. */
	c->window_ms = window_ms ? window_ms : 1;
}

unsigned int crashlog_add(struct crashlog *c, uint64_t now_ms)
{
	now_ms = clamp_now(c, now_ms);

	/* Drop what fell out of the window, so the ring only saturates when
	 * more than CRASHLOG_MAX crashes really happened within one window. */
	while (c->n && !in_window(c, c->times[c->head], now_ms)) {
		c->head = slot(c, 1);
		c->n--;
	}
	if (c->n == CRASHLOG_MAX) {
		/* Saturated: forget the oldest. The count stays at
		 * CRASHLOG_MAX, which still means "at least that many". */
		c->times[c->head] = now_ms;
		c->head = slot(c, 1);
	} else {
		c->times[slot(c, c->n)] = now_ms;
		c->n++;
	}
	c->last_ms = now_ms;
	c->total++;
	return crashlog_count(c, now_ms);
}

unsigned int crashlog_count(const struct crashlog *c, uint64_t now_ms)
{
	unsigned int k = 0;

	now_ms = clamp_now(c, now_ms);
	/* newest first: the first one out of the window ends the search */
	while (k < c->n && in_window(c, c->times[slot(c, c->n - 1 - k)], now_ms))
		k++;
	return k;
}

bool crashlog_looping(const struct crashlog *c, uint64_t now_ms)
{
	return crashlog_count(c, now_ms) >= c->threshold;
}

bool crashlog_stable(const struct crashlog *c, uint64_t now_ms, uint64_t stable_ms)
{
	/* total, not last_ms, says whether there was a crash: a crash at
	 * monotonic time 0 is possible in tests. */
	if (!c->total)
		return true;
	return clamp_now(c, now_ms) - c->last_ms >= stable_ms;
}

uint64_t crashlog_backoff_ms(const struct crashlog *c, uint64_t now_ms, uint64_t base_ms,
			     uint64_t max_ms)
{
	unsigned int n = crashlog_count(c, now_ms);
	unsigned int shift;
	uint64_t v;

	if (n == 0)
		return base_ms;
	shift = n - 1;
	/* base_ms << shift would lose bits: the true value exceeds any
	 * uint64_t, hence max_ms. */
	if (shift >= 64 || base_ms > (UINT64_MAX >> shift))
		v = max_ms;
	else
		v = base_ms << shift;
	if (v > max_ms)
		v = max_ms;
	/* a max below base (misconfiguration) must not make respawns faster
	 * than the base rate */
	if (v < base_ms)
		v = base_ms;
	return v;
}
