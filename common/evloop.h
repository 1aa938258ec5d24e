/* evloop: the supervisor's single-threaded event loop (epoll).
 *
 * Every watched descriptor is an ev_handler embedded in its owner's struct;
 * the callback finds the owner with container_of. Time-based work (per-scan
 * deadlines, respawn throttling, idle timeouts) runs from one periodic tick,
 * so no timer objects need to be tracked. */
#ifndef SE_COMMON_EVLOOP_H
#define SE_COMMON_EVLOOP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/epoll.h>

#define container_of(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

struct ev_handler {
	int fd;
	uint32_t events; /* currently registered EPOLL* mask; 0: not registered */
	void (*cb)(struct ev_handler *h, uint32_t revents);
};

struct evloop;

/* evloop_new: create a loop. Returns it or NULL with errno. Free with
 * evloop_free. */
struct evloop *evloop_new(void);

/* evloop_free: close the epoll descriptor and free the loop (NULL ok). The
 * handlers' descriptors stay open: they belong to their owners. */
void evloop_free(struct evloop *ev);

/* evloop_add: watch h->fd for events with h->cb. Returns 0 or -errno. */
int evloop_add(struct evloop *ev, struct ev_handler *h, uint32_t events);

/* evloop_mod: change the watched events (no-op when unchanged). Returns 0 or
 * -errno. */
int evloop_mod(struct evloop *ev, struct ev_handler *h, uint32_t events);

/* evloop_del: stop watching h (no-op when not watched). Call before closing
 * h->fd. Also drops events for h already fetched in this iteration. */
void evloop_del(struct evloop *ev, struct ev_handler *h);

/* evloop_run_once: wait up to timeout_ms for events and dispatch them.
 * Returns the number of handlers called or -errno. */
int evloop_run_once(struct evloop *ev, int timeout_ms);

#endif
