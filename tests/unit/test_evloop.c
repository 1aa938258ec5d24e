/* test_evloop: unit tests of common/evloop.c (cmocka), on real pipes and
 * socketpairs. */
#include "common/evloop.h"
#include "common/util.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/time.h>

/* A watched descriptor as an owner would embed it. */
struct owner {
	int tag;
	struct ev_handler ev;
	int calls;
	uint32_t last;
	/* what to do from the callback */
	struct evloop *loop;
	struct owner *victim; /* evloop_del this one */
	bool del_self;
	bool drain;
};

static struct owner *called_order[8];
static int ncalled;

static void owner_cb(struct ev_handler *h, uint32_t revents)
{
	struct owner *o = container_of(h, struct owner, ev);

	o->calls++;
	o->last = revents;
	if (ncalled < (int)SE_ARRAY_SIZE(called_order))
		called_order[ncalled++] = o;
	if (o->drain) {
		char buf[64];

		while (read(h->fd, buf, sizeof(buf)) > 0)
			;
	}
	if (o->victim && o->victim->calls == 0)
		evloop_del(o->loop, &o->victim->ev);
	if (o->del_self)
		evloop_del(o->loop, h);
}

struct fx {
	struct evloop *ev;
	int p[2];
	int s[2];
};

static int setup(void **state)
{
	struct fx *fx = calloc(1, sizeof(*fx));

	if (!fx)
		return -1;
	fx->ev = evloop_new();
	if (!fx->ev || pipe2(fx->p, O_CLOEXEC | O_NONBLOCK) < 0 ||
	    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, fx->s) < 0)
		return -1;
	ncalled = 0;
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fx *fx = *state;

	evloop_free(fx->ev);
	for (int i = 0; i < 2; i++) {
		util_close(&fx->p[i]);
		util_close(&fx->s[i]);
	}
	free(fx);
	return 0;
}

static void init_owner(struct owner *o, struct fx *fx, int fd, int tag)
{
	memset(o, 0, sizeof(*o));
	o->tag = tag;
	o->ev.fd = fd;
	o->ev.cb = owner_cb;
	o->loop = fx->ev;
}

static void test_new_free(void **state)
{
	struct evloop *ev = evloop_new();
	int before = 0, after = 0;

	(void)state;
	assert_non_null(ev);
	evloop_free(ev);
	evloop_free(NULL);
	/* the epoll descriptor is released */
	for (int fd = 0; fd < 1024; fd++)
		before += fcntl(fd, F_GETFD) != -1;
	ev = evloop_new();
	assert_non_null(ev);
	evloop_free(ev);
	for (int fd = 0; fd < 1024; fd++)
		after += fcntl(fd, F_GETFD) != -1;
	assert_int_equal(before, after);
}

static void test_add_dispatch(void **state)
{
	struct fx *fx = *state;
	struct owner o;

	init_owner(&o, fx, fx->p[0], 1);
	assert_int_equal(evloop_add(fx->ev, &o.ev, EPOLLIN), 0);
	assert_int_equal(o.ev.events, EPOLLIN);
	/* nothing ready */
	assert_int_equal(evloop_run_once(fx->ev, 0), 0);
	assert_int_equal(o.calls, 0);

	assert_int_equal(write(fx->p[1], "x", 1), 1);
	assert_int_equal(evloop_run_once(fx->ev, 1000), 1);
	assert_int_equal(o.calls, 1);
	assert_int_equal(o.last, EPOLLIN);
	assert_ptr_equal(called_order[0], &o); /* container_of found the owner */

	/* level-triggered: still readable, called again */
	assert_int_equal(evloop_run_once(fx->ev, 0), 1);
	assert_int_equal(o.calls, 2);

	o.drain = true;
	assert_int_equal(evloop_run_once(fx->ev, 0), 1);
	assert_int_equal(evloop_run_once(fx->ev, 0), 0);
	assert_int_equal(o.calls, 3);
	evloop_del(fx->ev, &o.ev);
}

static void test_add_errors(void **state)
{
	struct fx *fx = *state;
	struct owner o, o2, bad;
	int closed[2];

	init_owner(&o, fx, fx->p[0], 1);
	assert_int_equal(evloop_add(fx->ev, &o.ev, EPOLLIN), 0);
	/* the same descriptor twice */
	init_owner(&o2, fx, fx->p[0], 2);
	assert_int_equal(evloop_add(fx->ev, &o2.ev, EPOLLIN), -EEXIST);
	assert_int_equal(o2.ev.events, 0);

	assert_int_equal(pipe(closed), 0);
	close(closed[0]);
	close(closed[1]);
	init_owner(&bad, fx, closed[0], 3);
	assert_int_equal(evloop_add(fx->ev, &bad.ev, EPOLLIN), -EBADF);
	assert_int_equal(bad.ev.events, 0);
	/* a regular file cannot be polled */
	{
		int f = open("/etc/passwd", O_RDONLY | O_CLOEXEC);

		assert_true(f >= 0);
		init_owner(&bad, fx, f, 4);
		assert_int_equal(evloop_add(fx->ev, &bad.ev, EPOLLIN), -EPERM);
		close(f);
	}
	evloop_del(fx->ev, &o.ev);
}

/* events 0: registered for hang-ups only (which epoll always reports). */
static void test_add_zero_events_hup(void **state)
{
	struct fx *fx = *state;
	struct owner o;

	init_owner(&o, fx, fx->s[0], 1);
	assert_int_equal(evloop_add(fx->ev, &o.ev, 0), 0);
	assert_int_equal(o.ev.events, EPOLLHUP); /* non-zero: "registered" */
	assert_int_equal(write(fx->s[1], "data", 4), 4);
	assert_int_equal(evloop_run_once(fx->ev, 0), 0); /* EPOLLIN not asked for */
	util_close(&fx->s[1]);
	assert_int_equal(evloop_run_once(fx->ev, 1000), 1);
	assert_true(o.last & EPOLLHUP);
	assert_false(o.last & EPOLLIN);
	evloop_del(fx->ev, &o.ev);
}

static void test_mod(void **state)
{
	struct fx *fx = *state;
	struct owner o;

	init_owner(&o, fx, fx->s[0], 1);
	/* mod of an unregistered handler adds it */
	assert_int_equal(evloop_mod(fx->ev, &o.ev, EPOLLIN), 0);
	assert_int_equal(o.ev.events, EPOLLIN);
	assert_int_equal(evloop_run_once(fx->ev, 0), 0); /* nothing to read */

	/* writable is always true on an empty socket */
	assert_int_equal(evloop_mod(fx->ev, &o.ev, EPOLLIN | EPOLLOUT), 0);
	assert_int_equal(o.ev.events, EPOLLIN | EPOLLOUT);
	assert_int_equal(evloop_run_once(fx->ev, 0), 1);
	assert_int_equal(o.last, EPOLLOUT);

	/* unchanged: no-op, still works */
	assert_int_equal(evloop_mod(fx->ev, &o.ev, EPOLLIN | EPOLLOUT), 0);
	assert_int_equal(evloop_run_once(fx->ev, 0), 1);

	/* back to EPOLLIN only: no more EPOLLOUT wake-ups */
	assert_int_equal(evloop_mod(fx->ev, &o.ev, EPOLLIN), 0);
	assert_int_equal(evloop_run_once(fx->ev, 0), 0);
	assert_int_equal(write(fx->s[1], "a", 1), 1);
	assert_int_equal(evloop_run_once(fx->ev, 0), 1);
	assert_int_equal(o.last, EPOLLIN);

	/* 0: nothing but hang-ups */
	assert_int_equal(evloop_mod(fx->ev, &o.ev, 0), 0);
	assert_true(o.ev.events != 0);
	assert_int_equal(evloop_run_once(fx->ev, 0), 0);
	assert_int_equal(evloop_mod(fx->ev, &o.ev, EPOLLIN), 0);
	assert_int_equal(evloop_run_once(fx->ev, 0), 1);
	evloop_del(fx->ev, &o.ev);

	/* mod after its descriptor was closed and reused is refused */
	{
		struct owner b;
		int p[2];

		assert_int_equal(pipe(p), 0);
		init_owner(&b, fx, p[0], 2);
		assert_int_equal(evloop_add(fx->ev, &b.ev, EPOLLIN), 0);
		close(p[0]);
		close(p[1]);
		assert_int_equal(evloop_mod(fx->ev, &b.ev, EPOLLIN | EPOLLOUT), -EBADF);
	}
}

static void test_del(void **state)
{
	struct fx *fx = *state;
	struct owner o, never;

	init_owner(&o, fx, fx->p[0], 1);
	assert_int_equal(evloop_add(fx->ev, &o.ev, EPOLLIN), 0);
	assert_int_equal(write(fx->p[1], "x", 1), 1);
	evloop_del(fx->ev, &o.ev);
	assert_int_equal(o.ev.events, 0);
	assert_int_equal(evloop_run_once(fx->ev, 0), 0);
	assert_int_equal(o.calls, 0);
	/* twice, and a never-added handler: no-ops */
	evloop_del(fx->ev, &o.ev);
	init_owner(&never, fx, fx->s[0], 2);
	evloop_del(fx->ev, &never.ev);
	never.ev.fd = -1;
	evloop_del(fx->ev, &never.ev);
	/* re-adding after del works (the kernel registration is really gone) */
	assert_int_equal(evloop_add(fx->ev, &o.ev, EPOLLIN), 0);
	assert_int_equal(evloop_run_once(fx->ev, 0), 1);
	assert_int_equal(o.calls, 1);
	evloop_del(fx->ev, &o.ev);
}

/* A handler deleted by another one in the same batch is not called. Both
 * are ready; whichever runs first deletes the other. */
static void test_del_during_dispatch(void **state)
{
	struct fx *fx = *state;
	struct owner a, b;

	init_owner(&a, fx, fx->p[0], 1);
	init_owner(&b, fx, fx->s[0], 2);
	a.victim = &b;
	b.victim = &a;
	assert_int_equal(evloop_add(fx->ev, &a.ev, EPOLLIN), 0);
	assert_int_equal(evloop_add(fx->ev, &b.ev, EPOLLIN), 0);
	assert_int_equal(write(fx->p[1], "x", 1), 1);
	assert_int_equal(write(fx->s[1], "x", 1), 1);
	assert_int_equal(evloop_run_once(fx->ev, 1000), 1);
	assert_int_equal(a.calls + b.calls, 1);
	assert_int_equal(ncalled, 1);
	{
		struct owner *first = called_order[0], *second = first == &a ? &b : &a;

		assert_int_equal(second->ev.events, 0);
		/* and it stays unregistered */
		assert_int_equal(evloop_run_once(fx->ev, 0), 1);
		assert_int_equal(second->calls, 0);
		assert_int_equal(first->calls, 2);
		evloop_del(fx->ev, &first->ev);
	}
}

/* The deleted handler's memory is freed by its owner right away (the use
 * case in the header): under ASan, a call through it would be reported. */
struct heap_owner {
	struct ev_handler ev;
	struct evloop *loop;
	struct heap_owner *other;
	int calls;
};

static struct heap_owner *heap_ran;

static void heap_cb(struct ev_handler *h, uint32_t revents)
{
	struct heap_owner *o = container_of(h, struct heap_owner, ev);

	(void)revents;
	o->calls++;
	heap_ran = o;
	if (o->other) {
		evloop_del(o->loop, &o->other->ev);
		free(o->other);
		o->other = NULL;
	}
}

static void test_del_and_free_during_dispatch(void **state)
{
	struct fx *fx = *state;
	struct heap_owner *a = calloc(1, sizeof(*a)), *b = calloc(1, sizeof(*b));

	assert_non_null(a);
	assert_non_null(b);
	a->ev.fd = fx->p[0];
	b->ev.fd = fx->s[0];
	a->ev.cb = b->ev.cb = heap_cb;
	a->loop = b->loop = fx->ev;
	a->other = b;
	b->other = a;
	heap_ran = NULL;
	assert_int_equal(evloop_add(fx->ev, &a->ev, EPOLLIN), 0);
	assert_int_equal(evloop_add(fx->ev, &b->ev, EPOLLIN), 0);
	assert_int_equal(write(fx->p[1], "x", 1), 1);
	assert_int_equal(write(fx->s[1], "x", 1), 1);
	assert_int_equal(evloop_run_once(fx->ev, 1000), 1);
	assert_non_null(heap_ran);
	assert_int_equal(heap_ran->calls, 1);
	/* only the survivor is still watched */
	assert_int_equal(evloop_run_once(fx->ev, 0), 1);
	assert_int_equal(heap_ran->calls, 2);
	evloop_del(fx->ev, &heap_ran->ev);
	free(heap_ran);
}

/* A handler deleting itself is fine, and the others of the batch run. */
static void test_del_self(void **state)
{
	struct fx *fx = *state;
	struct owner a, b;

	init_owner(&a, fx, fx->p[0], 1);
	init_owner(&b, fx, fx->s[0], 2);
	a.del_self = true;
	b.del_self = true;
	assert_int_equal(evloop_add(fx->ev, &a.ev, EPOLLIN), 0);
	assert_int_equal(evloop_add(fx->ev, &b.ev, EPOLLIN), 0);
	assert_int_equal(write(fx->p[1], "x", 1), 1);
	assert_int_equal(write(fx->s[1], "x", 1), 1);
	assert_int_equal(evloop_run_once(fx->ev, 1000), 2);
	assert_int_equal(a.calls, 1);
	assert_int_equal(b.calls, 1);
	assert_int_equal(evloop_run_once(fx->ev, 0), 0);
}

/* A deletion outside dispatch must not blank a later batch. */
static void test_del_between_runs(void **state)
{
	struct fx *fx = *state;
	struct owner a, b;

	init_owner(&a, fx, fx->p[0], 1);
	init_owner(&b, fx, fx->s[0], 2);
	assert_int_equal(evloop_add(fx->ev, &a.ev, EPOLLIN), 0);
	assert_int_equal(evloop_add(fx->ev, &b.ev, EPOLLIN), 0);
	assert_int_equal(write(fx->p[1], "x", 1), 1);
	assert_int_equal(evloop_run_once(fx->ev, 1000), 1);
	evloop_del(fx->ev, &b.ev);
	assert_int_equal(evloop_add(fx->ev, &b.ev, EPOLLIN), 0);
	assert_int_equal(write(fx->s[1], "x", 1), 1);
	assert_int_equal(evloop_run_once(fx->ev, 1000), 2);
	assert_int_equal(a.calls, 2);
	assert_int_equal(b.calls, 1);
	evloop_del(fx->ev, &a.ev);
	evloop_del(fx->ev, &b.ev);
}

/* More ready handlers than one batch holds: all are served over calls. */
static void test_many(void **state)
{
	struct fx *fx = *state;
	enum { N = 150 };
	struct owner *o = calloc(N, sizeof(*o));
	int(*p)[2] = calloc(N, sizeof(*p));
	int total = 0, r;

	assert_non_null(o);
	assert_non_null(p);
	for (int i = 0; i < N; i++) {
		assert_int_equal(pipe2(p[i], O_CLOEXEC | O_NONBLOCK), 0);
		init_owner(&o[i], fx, p[i][0], i);
		o[i].drain = true; /* each fires once */
		assert_int_equal(evloop_add(fx->ev, &o[i].ev, EPOLLIN), 0);
		assert_int_equal(write(p[i][1], "x", 1), 1);
	}
	while ((r = evloop_run_once(fx->ev, 0)) > 0)
		total += r;
	assert_int_equal(r, 0);
	assert_int_equal(total, N);
	for (int i = 0; i < N; i++) {
		assert_int_equal(o[i].calls, 1);
		evloop_del(fx->ev, &o[i].ev);
		close(p[i][0]);
		close(p[i][1]);
	}
	free(o);
	free(p);
}

static void test_timeout(void **state)
{
	struct fx *fx = *state;
	uint64_t t0 = util_now_ms();

	assert_int_equal(evloop_run_once(fx->ev, 60), 0);
	assert_true(util_now_ms() - t0 >= 55);
	assert_true(util_now_ms() - t0 < 2000);
}

static void on_alarm(int sig)
{
	(void)sig;
}

/* A signal interrupting the wait is not an error: 0 handlers. */
static void test_eintr(void **state)
{
	struct fx *fx = *state;
	struct sigaction sa = {.sa_handler = on_alarm}, old;
	struct itimerval it = {.it_value = {.tv_usec = 20000}};
	uint64_t t0 = util_now_ms();

	assert_int_equal(sigaction(SIGALRM, &sa, &old), 0); /* no SA_RESTART */
	assert_int_equal(setitimer(ITIMER_REAL, &it, NULL), 0);
	assert_int_equal(evloop_run_once(fx->ev, 3000), 0);
	assert_true(util_now_ms() - t0 < 2500);
	sigaction(SIGALRM, &old, NULL);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_new_free),
		T(test_add_dispatch),
		T(test_add_errors),
		T(test_add_zero_events_hup),
		T(test_mod),
		T(test_del),
		T(test_del_during_dispatch),
		T(test_del_and_free_during_dispatch),
		T(test_del_self),
		T(test_del_between_runs),
		T(test_many),
		T(test_timeout),
		T(test_eintr),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
