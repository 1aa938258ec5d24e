/* policy: the arithmetic of definition updates, free of I/O so that it can
 * be tested on its own: what a mirror's version means against the host's,
 * how to get from one to the other (incrementally by .cdiff, or whole),
 * the mirror list in failover order, when to check next (Checks per day,
 * with jitter so that a fleet does not stampede its mirror), and how long
 * to keep away from a mirror that failed (back-off; freshclam's cool-down
 * after 429 and 403).
 *
 * Randomness comes from a caller-held seed (upd_rand), so a test fixes it
 * and the daemon seeds it once from getrandom(2). */
#ifndef SE_UPDATER_POLICY_H
#define SE_UPDATER_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- versions ---- */

enum upd_verdict {
	UPD_UP_TO_DATE, /* the mirror has what the host has */
	UPD_NEWER,	/* the mirror has a newer version: fetch it */
	UPD_STALE,	/* the mirror has an older one: never a downgrade */
};

/* upd_compare: what the mirror's version remote means for a host at local
 * (0: the host has no such database; anything is newer then). */
enum upd_verdict upd_compare(uint32_t local, uint32_t remote);

/* upd_verdict_name: "up to date", "newer", "stale mirror". */
const char *upd_verdict_name(enum upd_verdict v);

#define UPD_MAX_CDIFFS 50 /* more patches than this: fetch the whole file */

struct upd_plan {
	bool incremental; /* by .cdiff patches local+1 .. remote */
	uint32_t from, to;
	unsigned int ncdiffs; /* to - from when incremental */
};

/* upd_plan: how to bring a host at local to remote (> local): by cdiffs
 * when the host has the database (local > 0), the mirror offers cdiffs
 * and there are at most max_cdiffs (0: UPD_MAX_CDIFFS) of them; whole
 * otherwise. Returns 0, or -EINVAL when remote is not newer. */
int upd_plan(uint32_t local, uint32_t remote, bool mirror_has_cdiffs, unsigned int max_cdiffs,
	     struct upd_plan *out);

/* ---- mirrors ---- */

#define UPD_MAX_MIRRORS 16 /* policy.c's message says 16 too */
#define UPD_URL_MAX	512

struct upd_mirror {
	char url[UPD_URL_MAX]; /* "https://host[:port][/path]" or "file:///dir", no '/' at the end
				*/
	bool private_mirror;   /* from PrivateMirror */
};

struct upd_mirrors {
	struct upd_mirror v[UPD_MAX_MIRRORS];
	size_t n;
};

/* upd_mirrors_build: the failover order from the configuration's
 * PrivateMirror and DatabaseMirror values (each NULL-terminated, may be
 * NULL): private mirrors first, in the order given, then the database
 * mirrors, as freshclam does (a PrivateMirror makes the DatabaseMirror
 * lines a fallback). A bare host ("database.clamav.net") means https://;
 * http://, https:// and file:// are taken; a repeated mirror is listed
 * once. Returns 0, -ENOENT when both lists are empty, -EINVAL for a value
 * that is no mirror (other scheme, empty host, a query or fragment,
 * whitespace, too long), -E2BIG past UPD_MAX_MIRRORS; err[256] (may be
 * NULL) names the value and what is wrong with it. */
int upd_mirrors_build(const char *const *private_mirrors, const char *const *database_mirrors,
		      struct upd_mirrors *out, char *err);

/* ---- randomness ---- */

/* upd_rand: the next pseudo-random 64-bit value of *seed (splitmix64; a
 * zero seed is fine). For jitter only, never for anything secret. */
uint64_t upd_rand(uint64_t *seed);

/* ---- scheduling ---- */

/* upd_next_check_ms: when the next scheduled check is due, given Checks
 * per day (1..50): now + 86400/checks seconds, moved by a random jitter of
 * up to a quarter of that interval either way, so that hosts started
 * together spread out. checks 0 means no scheduled checks: returns 0. */
uint64_t upd_next_check_ms(uint64_t now_ms, unsigned int checks, uint64_t *seed);

/* ---- failures and back-off ---- */

enum upd_failure {
	UPD_FAIL_NETWORK,    /* down, timed out, cut off, 5xx */
	UPD_FAIL_BAD_DATA,   /* what came was refused (truncated, tampered, bad set) */
	UPD_FAIL_STALE,	     /* the mirror is behind the host or its own advertisement */
	UPD_FAIL_RATE_LIMIT, /* HTTP 429 */
	UPD_FAIL_FORBIDDEN,  /* HTTP 403: the CDN blocked this host */
};

#define UPD_BACKOFF_BASE_S  60u		  /* the first retry after a failure */
#define UPD_BACKOFF_MAX_S   (4u * 3600u)  /* the longest ordinary back-off */
#define UPD_RATE_LIMIT_S    3600u	  /* 429 without Retry-After */
#define UPD_RETRY_AFTER_MAX (24u * 3600u) /* a Retry-After is honoured up to this */
#define UPD_FORBIDDEN_S	    (24u * 3600u) /* 403: freshclam's day-long cool-down */

/* The state of one mirror: consecutive failures and when it may be tried
 * again. */
struct upd_backoff {
	unsigned int failures;
	uint64_t not_before_ms; /* 0: now */
	enum upd_failure last;
};

/* upd_backoff_fail: record a failure of kind at now_ms and set when the
 * mirror may be tried again: network and data failures back off
 * exponentially from UPD_BACKOFF_BASE_S (doubling per consecutive
 * failure, at most UPD_BACKOFF_MAX_S, plus up to 10 % random jitter); a
 * stale mirror is tried again at the base interval (it catches up); 429
 * waits retry_after_s if the mirror gave one (bounded by
 * UPD_RETRY_AFTER_MAX), else UPD_RATE_LIMIT_S; 403 waits
 * UPD_FORBIDDEN_S. Returns the wait in seconds. */
uint64_t upd_backoff_fail(struct upd_backoff *b, enum upd_failure kind, uint64_t now_ms,
			  uint64_t retry_after_s, uint64_t *seed);

/* upd_backoff_ok: a success: the mirror is in good standing again. */
void upd_backoff_ok(struct upd_backoff *b);

/* upd_backoff_ready: whether the mirror may be tried at now_ms. */
bool upd_backoff_ready(const struct upd_backoff *b, uint64_t now_ms);

/* upd_failure_name: "network", "bad data", "stale mirror", "rate limited
 * (429)", "forbidden (403)". */
const char *upd_failure_name(enum upd_failure f);

#endif
