/* pool: the supervisor's side of the engine processes.
 *
 * A *generation* is one loaded definitions set: a zygote process and up to
 * MaxThreads workers forked from it. New jobs go to the active generation;
 * on reload a new generation loads while the old one keeps scanning, then
 * takes over, and the old one drains and is retired.
 *
 * Every submitted job is answered exactly once through its done callback:
 * with the worker's verdict, or with an error after the worker died twice on
 * it, or when the service shuts down. Workers are children of the supervisor
 * (it is a subreaper), so pool_reap() sees every death and its cause. */
#ifndef SE_SCANENGINE_POOL_H
#define SE_SCANENGINE_POOL_H

#include <stdbool.h>
#include <stdint.h>

#include "common/config.h"
#include "common/evloop.h"
#include "sandbox/sandbox.h"
#include "scanengine/msgs.h"

struct json_object;
struct job;

struct job_result {
	enum msg_verdict verdict;
	unsigned int nnames;
	const char *names[MSG_RESULT_MAX_NAMES];
	const char *error; /* VERDICT_ERROR: what went wrong */
	uint64_t scan_us;
};

/* A scan job. The owner allocates and keeps it alive until done() has been
 * called; the pool owns fd from submission and closes it after done(). */
struct job {
	int fd;
	uint32_t flags;	   /* MSG_SCAN_* */
	const char *label; /* path or "stream", for logs; owner's memory */
	void (*done)(struct job *j, const struct job_result *r);
	void *owner;

	/* pool-private */
	uint64_t id;
	unsigned int attempts;
	uint64_t submit_ms, start_ms;
	struct job *next, *prev;
	struct worker *worker;
};

struct pool_hooks {
	void *arg;
	/* An engine generation became active (at start-up and after reload). */
	void (*engine_ready)(void *arg, const struct msg_engine_info *info);
	/* Loading a generation from dir failed (cls: why, for fault 7); the
	 * previous one (if any) stays. */
	void (*engine_failed)(void *arg, enum load_failure cls, const char *why, const char *dir);
};

struct pool;

/* pool_new: create the pool (no processes yet). cfg, id and ev must outlive
 * it. Returns the pool or NULL with errno. */
struct pool *pool_new(const struct config *cfg, const struct sandbox_identity *id,
		      struct evloop *ev, const struct pool_hooks *hooks);

/* pool_free: free a pool after pool_shutdown (NULL ok). */
void pool_free(struct pool *p);

/* pool_load: start loading a new generation from the definitions in dir.
 * exclusive: first retire the active engine and wait until it is gone (one
 * engine in memory at a time, for hosts where two do not fit); jobs queue
 * meanwhile. Otherwise the active engine serves until the new one is up.
 * The hooks report the outcome. Returns 0, or -EBUSY when a load is already
 * in progress, or -errno when the zygote cannot be started. */
int pool_load(struct pool *p, const char *dir, bool exclusive);

/* pool_loading: whether a load is in progress. */
bool pool_loading(const struct pool *p);

struct faults;
struct memlimit;

/* pool_set_faults: report fault 6 (crash loop) and poisoned files to f
 * (NULL: nowhere). Also clears fault 6 after FaultClearStableSeconds. */
void pool_set_faults(struct pool *p, struct faults *f);

/* pool_set_memlimit: engines started from now on run under m (NULL: none);
 * its OOM counter tells an OOM kill from other deaths. */
void pool_set_memlimit(struct pool *p, struct memlimit *m);

/* pool_set_unavailable: the error jobs get while no engine is up (e.g.
 * naming fault 7); "" or NULL for the default. */
void pool_set_unavailable(struct pool *p, const char *why);

/* pool_reset_poison: forget the poisoned files. Returns how many. */
size_t pool_reset_poison(struct pool *p);

/* pool_submit: queue job j for scanning. Always ends in exactly one call of
 * j->done (possibly before pool_submit returns, e.g. when no engine is up). */
void pool_submit(struct pool *p, struct job *j);

/* pool_cancel: the owner no longer wants j's answer. A queued job is removed
 * and done() is called with an error at once; a running job finishes and
 * done() is called as usual. */
void pool_cancel(struct pool *p, struct job *j);

/* pool_queued: number of jobs waiting for a worker. */
unsigned int pool_queued(const struct pool *p);

/* pool_tick: enforce deadlines (MaxScanTime, spawn and load timeouts) and
 * respawn workers whose throttle interval has passed. Call about every
 * 100 ms. */
void pool_tick(struct pool *p);

/* pool_reap: collect every exited child (call on SIGCHLD). */
void pool_reap(struct pool *p);

/* pool_claim_death: pool_reap reaps every child of the process; a child
 * that is none of the pool's (the definitions validator) is kept on a
 * short list, from which its owner takes its status here. Returns whether
 * pid had died. */
bool pool_claim_death(struct pool *p, pid_t pid, int *status);

/* pool_shutdown: answer every queued and running job with an error, stop
 * all engine processes and wait for them. */
void pool_shutdown(struct pool *p);

/* pool_ready: true when an engine generation is active. */
bool pool_ready(const struct pool *p);

/* pool_engine_info: the active generation's engine info, or NULL. */
const struct msg_engine_info *pool_engine_info(const struct pool *p);

/* pool_status: add the pool's state and counters to JSON object o. */
void pool_status(const struct pool *p, struct json_object *o);

/* pool_stats_text: clamd STATS-style THREADS/QUEUE lines into buf. */
void pool_stats_text(const struct pool *p, char *buf, size_t len);

#endif
