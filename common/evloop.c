/* evloop: the supervisor's single-threaded event loop (epoll). */
#include "common/evloop.h"
#include "common/util.h"

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#define EV_BATCH 64

struct evloop {
	int epfd;
	/* Events fetched by the current epoll_wait; a handler removed while
	 * they are dispatched is blanked here so it is not called after its
	 * owner freed it. */
	struct epoll_event batch[EV_BATCH];
	int nbatch;
};

struct evloop *evloop_new(void)
{
	struct evloop *ev = calloc(1, sizeof(*ev));

	if (!ev)
		return NULL;
	ev->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (ev->epfd < 0) {
		int e = errno;

		free(ev);
		errno = e;
		return NULL;
	}
	return ev;
}

void evloop_free(struct evloop *ev)
{
	if (!ev)
		return;
	util_close(&ev->epfd);
	free(ev);
}

int evloop_add(struct evloop *ev, struct ev_handler *h, uint32_t events)
{
	struct epoll_event e = {.events = events, .data.ptr = h};

	if (epoll_ctl(ev->epfd, EPOLL_CTL_ADD, h->fd, &e) < 0)
		return -errno;
	h->events = events ? events : EPOLLHUP;
	return 0;
}

int evloop_mod(struct evloop *ev, struct ev_handler *h, uint32_t events)
{
	struct epoll_event e = {.events = events, .data.ptr = h};

	if (!h->events)
		return evloop_add(ev, h, events);
	if (h->events == events)
		return 0;
	if (epoll_ctl(ev->epfd, EPOLL_CTL_MOD, h->fd, &e) < 0)
		return -errno;
	h->events = events ? events : EPOLLHUP;
	return 0;
}

void evloop_del(struct evloop *ev, struct ev_handler *h)
{
	if (h->events && h->fd >= 0)
		epoll_ctl(ev->epfd, EPOLL_CTL_DEL, h->fd, NULL);
	h->events = 0;
	for (int i = 0; i < ev->nbatch; i++)
		if (ev->batch[i].data.ptr == h)
			ev->batch[i].data.ptr = NULL;
}

int evloop_run_once(struct evloop *ev, int timeout_ms)
{
	int n, called = 0;

	n = epoll_wait(ev->epfd, ev->batch, EV_BATCH, timeout_ms);
	if (n < 0)
		return errno == EINTR ? 0 : -errno;
	ev->nbatch = n;
	for (int i = 0; i < n; i++) {
		struct ev_handler *h = ev->batch[i].data.ptr;

		if (!h)
			continue;
		h->cb(h, ev->batch[i].events);
		called++;
	}
	ev->nbatch = 0;
	return called;
}
