/* crashlog: the arithmetic behind fault 6 (frequent scan service
 * restarts): a sliding window of crash times, the respawn back-off while
 * crashing, and the stable period after which the fault clears.
 *
 * Pure logic on CLOCK_MONOTONIC milliseconds passed in by the caller, so
 * the unit tests drive time themselves. A "now" earlier than the last
 * recorded crash (a clock that went backwards, or a caller mixing clocks)
 * is treated as equal to the last crash, never as a huge interval. */
#ifndef SE_SCANENGINE_CRASHLOG_H
#define SE_SCANENGINE_CRASHLOG_H

#include <stdbool.h>
#include <stdint.h>

#define CRASHLOG_MAX 64 /* crashes remembered; more in one window saturate */

struct crashlog {
	uint64_t window_ms;	      /* CrashLoopWindow */
	unsigned int threshold;	      /* CrashLoopThreshold */
	uint64_t times[CRASHLOG_MAX]; /* ring of crash times, oldest first from head */
	unsigned int head, n;
	uint64_t last_ms; /* last crash; meaningful only when total > 0 */
	uint64_t total;	  /* all crashes ever recorded */
};

/* crashlog_init: empty log; threshold crashes within window_ms make a
 * crash loop (threshold 0 is taken as 1, above CRASHLOG_MAX as
 * CRASHLOG_MAX since the count saturates there; window_ms 0 as 1). */
void crashlog_init(struct crashlog *c, unsigned int threshold, uint64_t window_ms);

/* crashlog_add: record a crash at now_ms. Returns the number of crashes in
 * the window (now_ms - window_ms, now_ms], this one included. */
unsigned int crashlog_add(struct crashlog *c, uint64_t now_ms);

/* crashlog_count: crashes in the window ending at now_ms. */
unsigned int crashlog_count(const struct crashlog *c, uint64_t now_ms);

/* crashlog_looping: crashlog_count(now_ms) >= threshold. */
bool crashlog_looping(const struct crashlog *c, uint64_t now_ms);

/* crashlog_stable: true when there has been no crash for at least
 * stable_ms before now_ms, i.e. now_ms - last >= stable_ms (also when
 * there never was one). */
bool crashlog_stable(const struct crashlog *c, uint64_t now_ms, uint64_t stable_ms);

/* crashlog_backoff_ms: how long to wait before the next respawn: base_ms
 * when no crash is in the window, else base_ms * 2^(n-1) for n crashes in
 * the window, at most max_ms (and never below base_ms; overflow-safe). */
uint64_t crashlog_backoff_ms(const struct crashlog *c, uint64_t now_ms, uint64_t base_ms,
			     uint64_t max_ms);

#endif
