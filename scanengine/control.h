/* control: the control socket, speaking clamd's protocol plus scanengine's
 * admin extensions.
 *
 * Each connection carries one command, or an IDSESSION of many; commands are
 * framed as clamd does ("zCMD\0", "nCMD\n", or unprefixed "CMD\n") and
 * answered in the same framing. Scan commands become pool jobs; every job
 * is answered exactly once, and a client that has gone away simply gets no
 * bytes. Admin commands (RELOAD, SHUTDOWN, the extensions) are checked
 * against the peer's credentials (SO_PEERCRED). */
#ifndef SE_SCANENGINE_CONTROL_H
#define SE_SCANENGINE_CONTROL_H

#include <stdbool.h>
#include <sys/types.h>

#include "common/config.h"
#include "common/evloop.h"
#include "scanengine/pool.h"

struct json_object;

struct control_hooks {
	void *arg;
	void (*reload)(void *arg);   /* RELOAD */
	void (*shutdown)(void *arg); /* SHUTDOWN */
	/* Fill the admin STATUS reply (service-level fields). */
	void (*status)(void *arg, struct json_object *o);
	/* FAULTS / FAULTHISTORY: a new JSON array (active faults, or recent
	 * events). */
	struct json_object *(*faults)(void *arg, bool history);
	/* RESETPOISON: forget the poisoned files; returns how many. */
	size_t (*reset_poison)(void *arg);
	/* UPDATE: run an update cycle (or join the running one); done(ctx,
	 * report) once it is over (report NULL: the service stops first).
	 * Returns 0, or -errno and done is not called (-ENOENT: no mirror). */
	int (*update)(void *arg, void (*done)(void *ctx, const char *report), void *ctx);
	/* STATS: lines of the service's own to add (on-access), "" if none. */
	void (*stats_lines)(void *arg, char *buf, size_t len);
};

struct control;

/* control_new: create the control server. cfg, ev and pool must outlive
 * it. admin_gid is the AdminGroup's gid or (gid_t)-1. Returns it or NULL
 * with errno. */
struct control *control_new(const struct config *cfg, struct evloop *ev, struct pool *pool,
			    gid_t admin_gid, const struct control_hooks *hooks);

/* control_listen: create, bind and listen on LocalSocket (refusing a path
 * that another process is listening on, replacing a stale one when
 * FixStaleSocket is set), set its mode and group. Connections are not
 * accepted before control_start. Returns 0 or -errno with a one-line
 * reason in err[512]. */
int control_listen(struct control *c, char *err);

/* control_start: start accepting connections. */
void control_start(struct control *c);

/* control_tick: enforce CommandReadTimeout, ReadTimeout and the reply
 * stall limit. Call about every 100 ms. */
void control_tick(struct control *c);

/* control_flush: write what the iteration's events produced, resume
 * connections waiting for queue room and close finished ones. Call after
 * every event-loop iteration (replies are batched per iteration). */
void control_flush(struct control *c);

/* control_connections: number of open client connections. */
unsigned int control_connections(const struct control *c);

/* control_close: stop listening, remove the socket file we created, and
 * close every connection (their pending jobs' answers are dropped). */
void control_close(struct control *c);

/* control_free: free after control_close (NULL ok). */
void control_free(struct control *c);

#endif
