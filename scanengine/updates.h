/* updates: the supervisor's side of definition updates (DESIGN.md section
 * 3; updater/cycle.h is the updater's side).
 *
 * A cycle starts when `scanctl update` asks (UPDATE) or when the schedule
 * says (Checks per day, with jitter; earlier after a failure, when the
 * back-off of a mirror ends). It forks the updater: it closes every
 * descriptor but its IPC socket and the log, drops to the scan account,
 * may change files only beneath <StateDirectory>/update/cycle (Landlock),
 * and dies with the supervisor. It fetches and reports per database over
 * the IPC framing. What it fetched goes through the definitions pipeline
 * (loader_import: the same validation stages as every other set, with
 * authenticity required); what passes is activated and loaded without a
 * gap in scanning. An updater that crashes, or runs past
 * UPDATER_TIMEOUT_S, is killed and its cycle reported as failed; it
 * cannot touch the active definitions, which only the supervisor's
 * pipeline changes.
 *
 * A version that made the engine fail to load before (fault 7, bad
 * definitions: quarantined with stage "load") is not activated again when
 * a mirror offers it; the event "update_skipped" says so.
 *
 * Back-off per mirror (updater/policy.h): a scheduled cycle skips mirrors
 * in back-off; `scanctl update` tries them anyway, except during a 429 or
 * 403 cool-down, which it reports. Events: "definitions_updated",
 * "update_failed", "update_skipped". */
#ifndef SE_SCANENGINE_UPDATES_H
#define SE_SCANENGINE_UPDATES_H

#include "common/config.h"
#include "sandbox/sandbox.h"

struct json_object;
struct loader;
struct pool;
struct faults;
struct updates;

#define UPDATER_TIMEOUT_S 1800 /* an updater running longer is killed */

/* updates_new: the update manager. cfg, id, loader, pool and faults (may
 * be NULL) must outlive it. Returns it, or NULL with err[512] when the
 * mirror configuration is invalid (the service then refuses to start, as
 * for any bad configuration value). With no mirror configured it exists
 * but never runs a cycle; UPDATE then answers why. */
struct updates *updates_new(const struct config *cfg, const struct sandbox_identity *id,
			    struct loader *loader, struct pool *pool, struct faults *faults,
			    char *err);

/* updates_free: kill a running updater; waiters are told the cycle was
 * cancelled (done(ctx, NULL)). NULL ok. */
void updates_free(struct updates *u);

/* updates_run_now: run a cycle now (UPDATE), or join the one running;
 * done(ctx, json) is called once with the cycle's report (a JSON text,
 * see README "scanctl update"), NULL if the service stops first. Returns
 * 0, or -ENOENT when no mirror is configured (done is not called). */
int updates_run_now(struct updates *u, void (*done)(void *ctx, const char *json), void *ctx);

/* updates_tick: the schedule, the updater's messages and exit, the
 * validation's outcome. Call every ~100 ms. */
void updates_tick(struct updates *u);

/* updates_status: add "update" (last attempt, result, next check,
 * mirrors' back-off) to o. */
void updates_status(const struct updates *u, struct json_object *o);

#endif
