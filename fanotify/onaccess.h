/* onaccess: on-access scanning with fanotify, in the supervisor's event
 * loop (DESIGN.md section 7 lists the kernel's rules it follows).
 *
 * One fanotify group (FAN_CLASS_CONTENT, FAN_UNLIMITED_QUEUE) marks the
 * OnAccessMountPath mounts and the OnAccessIncludePath directory trees
 * (every directory, and the ones created later: an inotify watch on each
 * adds the marks for a new directory and what is already in it). With
 * OnAccessPrevention the marks ask for FAN_OPEN_PERM and
 * FAN_OPEN_EXEC_PERM: the opener waits for the answer; otherwise for
 * FAN_OPEN and FAN_OPEN_EXEC, reported after the fact. FAN_CLOSE_WRITE
 * always: a file just written is scanned (notify only).
 *
 * Every permission event is answered exactly once. Its event descriptor
 * belongs to one struct oa_event from the read until the answer is
 * written: nothing closes it before (the kernel matches answers by
 * descriptor number, and a number closed early is reused by the next
 * event). The answer comes before anything that could block (the event
 * log, syslog, path and executable names):
 *   - allowed at once: the service's own processes (the supervisor, its
 *     children, the scan user), excluded users (OnAccessExcludeUname,
 *     OnAccessExcludeUID, OnAccessExcludeRootUID), excluded trees
 *     (OnAccessExcludePath), what is not a regular file, files larger
 *     than OnAccessMaxFileSize (counted as too large);
 *   - otherwise scanned by a worker through a duplicate of the event
 *     descriptor: allowed if clean, denied if infected (prevention);
 *   - by OnAccessFailPolicy when no verdict comes within
 *     OnAccessPermTimeout (counted as timed out), when the scanner
 *     cannot scan it (no engine, the worker died on it), or when more
 *     events are in flight than OA_MAX_INFLIGHT, or than RLIMIT_NOFILE
 *     leaves room for (descriptors are bounded: the kernel denies an open
 *     whose event descriptor it cannot create).
 *
 * Detections are events in the event log ("onaccess_detection": path,
 * signature, action denied/notified, pid, uid, executable, definitions
 * version) and syslog lines. When fanotify cannot be set up (no kernel
 * support, no CAP_SYS_ADMIN, a path that cannot be marked) fault 8 is
 * raised with the errno and the path, on-demand scanning goes on, and the
 * set-up is retried every OA_RETRY_S and on RELOAD; fault 8 clears once
 * monitoring runs.
 *
 * Test hook: SCANENGINE_FAULT_INJECT=onaccess.dup makes the duplicate of
 * every event descriptor fail as if descriptors had run out, so that the
 * tests can show such an event still gets exactly one answer (by the fail
 * policy) and no other opener is released by it. */
#ifndef SE_FANOTIFY_ONACCESS_H
#define SE_FANOTIFY_ONACCESS_H

#include <stdbool.h>

#include "common/config.h"
#include "common/evloop.h"
#include "sandbox/sandbox.h"

struct json_object;
struct pool;
struct faults;
struct onaccess;

#define OA_RETRY_S	60    /* set-up retried this often while fault 8 is raised */
#define OA_CACHE_TTL_S	600   /* a clean verdict is trusted this long at most */
#define OA_CACHE_SIZE	65536 /* verdicts kept in user space */
#define OA_MAX_INFLIGHT 2048  /* permission events waiting for a verdict, at most */
#define OA_READ_MIN	16    /* events read at once even when the queue is full */
#define OA_FD_RESERVE	256   /* descriptors kept for all but on-access events */

/* oa_check_config: the on-access settings that the configuration parser
 * cannot check alone: OnAccessFailPolicy is allow or deny, OnAccessExcludeUID
 * values are numbers, paths are absolute. Returns 0 or -EINVAL with one
 * line in err[256]. */
int oa_check_config(const struct config *cfg, char *err);

/* oa_new: the on-access scanner (not started). cfg, id (the scan user),
 * ev, pool and faults (may be NULL) must outlive it. User names of
 * OnAccessExcludeUname are resolved here, never in the event path (an
 * unknown one is logged and skipped). Returns NULL with err[256] only on
 * a configuration error or out of memory. */
struct onaccess *oa_new(const struct config *cfg, const struct sandbox_identity *id,
			struct evloop *ev, struct pool *pool, struct faults *faults, char *err);

/* oa_enabled: whether a mount or include path is configured. */
bool oa_enabled(const struct onaccess *oa);

/* oa_start: set up fanotify and the marks. A failure raises fault 8 (and
 * oa_tick retries); success clears it. Returns 0 or the -errno of the
 * failure. Nothing to do (and 0) when not enabled. */
int oa_start(struct onaccess *oa);

/* oa_definitions_changed: an engine with other definitions is up: every
 * clean verdict is forgotten (the kernel's ignore marks too). */
void oa_definitions_changed(struct onaccess *oa);

/* oa_reload: RELOAD: a set-up that failed (fault 8) is tried again now. */
void oa_reload(struct onaccess *oa);

/* oa_tick: answer events past their deadline by the fail policy, retry a
 * failed set-up. Call every ~100 ms. */
void oa_tick(struct onaccess *oa);

/* oa_status: add "onaccess" (state and counters) to o. */
void oa_status(const struct onaccess *oa, struct json_object *o);

/* oa_stats_text: for clamd's STATS reply, when on-access is enabled, one
 * line "ONACCESS: running|failed events N allowed N denied N timed_out N
 * cache_hits N in_flight N max_latency_us N\n\n" into buf (else ""). */
void oa_stats_text(const struct onaccess *oa, char *buf, size_t len);

/* oa_close: stop monitoring: the fanotify group is closed first (the
 * kernel then allows whatever is still pending, so no opener waits on a
 * service that is going away), then the inotify watches. Scans in flight
 * finish through the pool as usual. Call before pool_shutdown. */
void oa_close(struct onaccess *oa);

/* oa_free: after oa_close and pool_shutdown (every scan answered). NULL ok. */
void oa_free(struct onaccess *oa);

#endif
