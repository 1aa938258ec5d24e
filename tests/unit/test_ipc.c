/* test_ipc: unit tests of common/ipc.c (cmocka).
 *
 * Real SOCK_SEQPACKET pairs throughout. Malformed messages are written with
 * raw sendmsg() so the receiver sees exactly what a misbehaving peer would
 * send; after each one the test checks that no descriptor leaked into the
 * receiving process (fcntl(F_GETFD) over the descriptor table) and that the
 * next well-formed message is still received intact. */
#include "common/ipc.h"
#include "common/util.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>

#define FD_SCAN_MAX 1024

struct fx {
	int sv[2];
	struct ipc_msg *m; /* large (32 KiB payload): on the heap */
};

static int setup(void **state)
{
	struct fx *fx = calloc(1, sizeof(*fx));

	if (!fx)
		return -1;
	fx->m = calloc(1, sizeof(*fx->m));
	if (!fx->m || ipc_pair(fx->sv) < 0) {
		free(fx->m);
		free(fx);
		return -1;
	}
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fx *fx = *state;

	util_close(&fx->sv[0]);
	util_close(&fx->sv[1]);
	free(fx->m);
	free(fx);
	return 0;
}

static bool fd_open(int fd)
{
	return fcntl(fd, F_GETFD) != -1;
}

/* Snapshot of which descriptors are open. */
struct fdset {
	bool open[FD_SCAN_MAX];
};

static void fdset_take(struct fdset *s)
{
	for (int fd = 0; fd < FD_SCAN_MAX; fd++)
		s->open[fd] = fd_open(fd);
}

/* Fail naming the first descriptor that differs from the snapshot. */
static void fdset_same(const struct fdset *s)
{
	for (int fd = 0; fd < FD_SCAN_MAX; fd++)
		if (fd_open(fd) != s->open[fd])
			fail_msg("fd %d is %s now, was %s", fd, fd_open(fd) ? "open" : "closed",
				 s->open[fd] ? "open" : "closed");
}

/* Send bytes as one record with nfds descriptors attached. */
static ssize_t raw_send(int sock, const void *buf, size_t len, const int *fds, size_t nfds)
{
	struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
	union {
		char buf[CMSG_SPACE(sizeof(int) * 16)];
		struct cmsghdr align;
	} cm;
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};

	assert_true(nfds <= 16);
	if (nfds) {
		struct cmsghdr *c;

		memset(&cm, 0, sizeof(cm));
		mh.msg_control = cm.buf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
	}
	return sendmsg(sock, &mh, MSG_NOSIGNAL);
}

/* After a rejected message, the channel still carries a good one. */
static void expect_next_good(struct fx *fx)
{
	assert_int_equal(ipc_send(fx->sv[0], 77, 99, "ok", 3, -1), 0);
	assert_int_equal(ipc_recv(fx->sv[1], fx->m), 1);
	assert_int_equal(fx->m->hdr.type, 77);
	assert_true(fx->m->hdr.id == 99);
	assert_int_equal(fx->m->hdr.len, 3);
	assert_string_equal((char *)fx->m->payload, "ok");
	assert_int_equal(fx->m->fd, -1);
}

/* ---- ipc_pair ---- */

static void test_pair(void **state)
{
	struct fx *fx = *state;

	for (int i = 0; i < 2; i++) {
		int type = 0, domain = 0;
		socklen_t sl = sizeof(type);

		assert_int_equal(getsockopt(fx->sv[i], SOL_SOCKET, SO_TYPE, &type, &sl), 0);
		assert_int_equal(type, SOCK_SEQPACKET);
		sl = sizeof(domain);
		assert_int_equal(getsockopt(fx->sv[i], SOL_SOCKET, SO_DOMAIN, &domain, &sl), 0);
		assert_int_equal(domain, AF_UNIX);
		assert_int_equal(fcntl(fx->sv[i], F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
		/* blocking by default */
		assert_int_equal(fcntl(fx->sv[i], F_GETFL) & O_NONBLOCK, 0);
	}
}

/* ---- ipc_send / ipc_recv, well-formed ---- */

static void test_roundtrip(void **state)
{
	struct fx *fx = *state;
	const char payload[] = "hello\0world"; /* inner NUL is fine on the wire */

	assert_int_equal(ipc_send(fx->sv[0], 0xdeadbeef, 0x1122334455667788ull, payload,
				  sizeof(payload), -1),
			 0);
	memset(fx->m, 0xaa, sizeof(*fx->m));
	assert_int_equal(ipc_recv(fx->sv[1], fx->m), 1);
	assert_int_equal(fx->m->hdr.type, 0xdeadbeef);
	assert_true(fx->m->hdr.id == 0x1122334455667788ull);
	assert_int_equal(fx->m->hdr.len, sizeof(payload));
	assert_memory_equal(fx->m->payload, payload, sizeof(payload));
	assert_int_equal(fx->m->payload[sizeof(payload)], '\0'); /* terminated */
	assert_int_equal(fx->m->fd, -1);

	/* the other direction */
	assert_int_equal(ipc_send(fx->sv[1], 1, 2, "x", 1, -1), 0);
	assert_int_equal(ipc_recv(fx->sv[0], fx->m), 1);
	assert_int_equal(fx->m->hdr.type, 1);
	assert_int_equal(fx->m->hdr.len, 1);
	assert_string_equal((char *)fx->m->payload, "x");
}

/* Bytes on the wire: one record, header (type, len, id) then the payload. */
static void test_wire_format(void **state)
{
	struct fx *fx = *state;
	unsigned char buf[256];
	struct ipc_hdr h;
	ssize_t n;

	assert_int_equal(sizeof(struct ipc_hdr), 16);
	assert_int_equal(ipc_send(fx->sv[0], 0x0102, 0xa0b0c0d0e0f00010ull, "abcde", 5, -1), 0);
	n = recv(fx->sv[1], buf, sizeof(buf), 0);
	assert_int_equal(n, 16 + 5);
	memcpy(&h, buf, sizeof(h));
	assert_int_equal(h.type, 0x0102);
	assert_int_equal(h.len, 5);
	assert_true(h.id == 0xa0b0c0d0e0f00010ull);
	assert_memory_equal(buf + 16, "abcde", 5);

	/* no payload: exactly the header */
	assert_int_equal(ipc_send(fx->sv[0], 9, 0, NULL, 0, -1), 0);
	n = recv(fx->sv[1], buf, sizeof(buf), 0);
	assert_int_equal(n, 16);
	memcpy(&h, buf, sizeof(h));
	assert_int_equal(h.type, 9);
	assert_int_equal(h.len, 0);
	assert_true(h.id == 0);
}

static void test_empty_payload(void **state)
{
	struct fx *fx = *state;

	assert_int_equal(ipc_send(fx->sv[0], 5, 6, NULL, 0, -1), 0);
	memset(fx->m, 0xaa, sizeof(*fx->m));
	assert_int_equal(ipc_recv(fx->sv[1], fx->m), 1);
	assert_int_equal(fx->m->hdr.type, 5);
	assert_true(fx->m->hdr.id == 6);
	assert_int_equal(fx->m->hdr.len, 0);
	assert_int_equal(fx->m->payload[0], '\0');
	assert_int_equal(fx->m->fd, -1);
}

static void test_max_payload(void **state)
{
	struct fx *fx = *state;
	unsigned char *big = malloc(IPC_MAX_PAYLOAD + 1);

	assert_non_null(big);
	for (size_t i = 0; i <= IPC_MAX_PAYLOAD; i++)
		big[i] = (unsigned char)(i % 253 + 1);
	assert_int_equal(ipc_send(fx->sv[0], 3, 4, big, IPC_MAX_PAYLOAD, -1), 0);
	assert_int_equal(ipc_recv(fx->sv[1], fx->m), 1);
	assert_int_equal(fx->m->hdr.len, IPC_MAX_PAYLOAD);
	assert_memory_equal(fx->m->payload, big, IPC_MAX_PAYLOAD);
	assert_int_equal(fx->m->payload[IPC_MAX_PAYLOAD], '\0');

	/* one byte more is refused by the sender and nothing goes out */
	assert_int_equal(ipc_send(fx->sv[0], 3, 4, big, IPC_MAX_PAYLOAD + 1, -1), -EMSGSIZE);
	assert_int_equal(util_set_nonblock(fx->sv[1], true), 0);
	assert_int_equal(ipc_recv(fx->sv[1], fx->m), -EAGAIN);
	free(big);
}

/* The descriptor really crosses: the receiver writes into the pipe it got
 * and the bytes come out of the sender's read end. */
static void test_fd_passing(void **state)
{
	struct fx *fx = *state;
	int p[2];
	char buf[16];
	struct stat a, b;

	assert_int_equal(pipe(p), 0);
	assert_int_equal(ipc_send(fx->sv[0], 10, 11, "fd", 3, p[1]), 0);
	/* still ours after sending */
	assert_true(fd_open(p[1]));
	assert_int_equal(ipc_recv(fx->sv[1], fx->m), 1);
	assert_int_equal(fx->m->hdr.type, 10);
	assert_string_equal((char *)fx->m->payload, "fd");
	assert_true(fx->m->fd >= 0);
	assert_int_not_equal(fx->m->fd, p[1]);
	/* same open file, received close-on-exec */
	assert_int_equal(fstat(fx->m->fd, &a), 0);
	assert_int_equal(fstat(p[1], &b), 0);
	assert_true(a.st_ino == b.st_ino && a.st_dev == b.st_dev);
	assert_int_equal(fcntl(fx->m->fd, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
	close(p[1]);
	assert_int_equal(write(fx->m->fd, "through", 7), 7);
	close(fx->m->fd);
	assert_int_equal(read(p[0], buf, sizeof(buf)), 7);
	assert_memory_equal(buf, "through", 7);
	assert_int_equal(read(p[0], buf, sizeof(buf)), 0); /* no other writer left */
	close(p[0]);

	/* fd without payload */
	assert_int_equal(pipe(p), 0);
	assert_int_equal(ipc_send(fx->sv[0], 12, 0, NULL, 0, p[0]), 0);
	assert_int_equal(ipc_recv(fx->sv[1], fx->m), 1);
	assert_int_equal(fx->m->hdr.len, 0);
	assert_true(fx->m->fd >= 0);
	assert_int_equal(write(p[1], "z", 1), 1);
	assert_int_equal(read(fx->m->fd, buf, 1), 1);
	assert_int_equal(buf[0], 'z');
	close(fx->m->fd);
	close(p[0]);
	close(p[1]);
}

static void test_send_bad_fd(void **state)
{
	struct fx *fx = *state;
	int p[2];

	assert_int_equal(pipe(p), 0);
	close(p[0]);
	close(p[1]);
	assert_int_equal(ipc_send(fx->sv[0], 1, 1, "x", 1, p[0]), -EBADF);
	assert_int_equal(ipc_send(-1, 1, 1, "x", 1, -1), -EBADF);
	assert_int_equal(util_set_nonblock(fx->sv[1], true), 0);
	assert_int_equal(ipc_recv(fx->sv[1], fx->m), -EAGAIN);
}

static void test_nonblocking(void **state)
{
	struct fx *fx = *state;
	static unsigned char chunk[4096];
	int r, sent = 0;

	assert_int_equal(util_set_nonblock(fx->sv[0], true), 0);
	assert_int_equal(util_set_nonblock(fx->sv[1], true), 0);
	assert_int_equal(ipc_recv(fx->sv[1], fx->m), -EAGAIN);
	assert_int_equal(fx->m->fd, -1);

	/* fill the socket until the sender gets -EAGAIN */
	for (;;) {
		r = ipc_send(fx->sv[0], 1, (uint64_t)sent, chunk, sizeof(chunk), -1);
		if (r != 0)
			break;
		sent++;
		assert_true(sent < 100000);
	}
	assert_int_equal(r, -EAGAIN);
	assert_true(sent > 0);
	/* everything sent arrives, in order */
	for (int i = 0; i < sent; i++) {
		assert_int_equal(ipc_recv(fx->sv[1], fx->m), 1);
		assert_true(fx->m->hdr.id == (uint64_t)i);
		assert_int_equal(fx->m->hdr.len, sizeof(chunk));
	}
	assert_int_equal(ipc_recv(fx->sv[1], fx->m), -EAGAIN);
}

static void test_eof_and_epipe(void **state)
{
	struct fx *fx = *state;
	void (*old)(int) = signal(SIGPIPE, SIG_DFL); /* a SIGPIPE would kill us */

	/* a message queued before the close is still delivered, then EOF */
	assert_int_equal(ipc_send(fx->sv[0], 1, 1, "last", 5, -1), 0);
	util_close(&fx->sv[0]);
	assert_int_equal(ipc_recv(fx->sv[1], fx->m), 1);
	assert_string_equal((char *)fx->m->payload, "last");
	assert_int_equal(ipc_recv(fx->sv[1], fx->m), 0);
	assert_int_equal(fx->m->fd, -1);
	assert_int_equal(ipc_recv(fx->sv[1], fx->m), 0);

	/* sending to a closed peer: -EPIPE, no signal */
	assert_int_equal(ipc_send(fx->sv[1], 1, 1, "x", 1, -1), -EPIPE);
	signal(SIGPIPE, old);
}

/* ---- ipc_recv, malformed ---- */

/* Shorter than a header. */
static void test_recv_short(void **state)
{
	struct fx *fx = *state;
	struct fdset before;
	int p[2];

	assert_int_equal(raw_send(fx->sv[0], "abcd", 4, NULL, 0), 4);
	assert_int_equal(ipc_recv(fx->sv[1], fx->m), -EPROTO);
	assert_int_equal(fx->m->fd, -1);

	/* with a descriptor attached: rejected and the descriptor closed */
	assert_int_equal(pipe(p), 0);
	fdset_take(&before);
	assert_int_equal(raw_send(fx->sv[0], "abcd", 4, &p[0], 1), 4);
	assert_int_equal(ipc_recv(fx->sv[1], fx->m), -EPROTO);
	assert_int_equal(fx->m->fd, -1);
	fdset_same(&before);
	close(p[0]);
	close(p[1]);
	expect_next_good(fx);
}

/* Header length larger / smaller than what arrived. */
static void test_recv_len_mismatch(void **state)
{
	struct fx *fx = *state;
	unsigned char buf[64];
	struct ipc_hdr h = {.type = 1, .id = 2};
	struct fdset before;
	int p[2];

	assert_int_equal(pipe(p), 0);
	fdset_take(&before);

	/* claims 10, carries 5 (truncated message) */
	h.len = 10;
	memcpy(buf, &h, sizeof(h));
	memcpy(buf + sizeof(h), "12345", 5);
	assert_int_equal(raw_send(fx->sv[0], buf, sizeof(h) + 5, &p[1], 1), (ssize_t)sizeof(h) + 5);
	assert_int_equal(ipc_recv(fx->sv[1], fx->m), -EPROTO);
	assert_int_equal(fx->m->fd, -1);
	fdset_same(&before);

	/* claims 2, carries 5 */
	h.len = 2;
	memcpy(buf, &h, sizeof(h));
	assert_int_equal(raw_send(fx->sv[0], buf, sizeof(h) + 5, &p[1], 1), (ssize_t)sizeof(h) + 5);
	assert_int_equal(ipc_recv(fx->sv[1], fx->m), -EPROTO);
	fdset_same(&before);

	/* claims more than the maximum */
	h.len = IPC_MAX_PAYLOAD + 1;
	memcpy(buf, &h, sizeof(h));
	assert_int_equal(raw_send(fx->sv[0], buf, sizeof(h) + 5, &p[1], 1), (ssize_t)sizeof(h) + 5);
	assert_int_equal(ipc_recv(fx->sv[1], fx->m), -EPROTO);
	fdset_same(&before);

	/* claims 0xffffffff with no payload */
	h.len = 0xffffffffu;
	memcpy(buf, &h, sizeof(h));
	assert_int_equal(raw_send(fx->sv[0], buf, sizeof(h), NULL, 0), (ssize_t)sizeof(h));
	assert_int_equal(ipc_recv(fx->sv[1], fx->m), -EPROTO);

	close(p[0]);
	close(p[1]);
	expect_next_good(fx);
}

/* Larger than header + IPC_MAX_PAYLOAD, with a consistent header: the
 * receiver's buffer truncates it (MSG_TRUNC), the descriptor is closed. */
static void test_recv_oversized(void **state)
{
	struct fx *fx = *state;
	size_t len = sizeof(struct ipc_hdr) + IPC_MAX_PAYLOAD + 1;
	unsigned char *buf = calloc(1, len);
	struct ipc_hdr h = {.type = 1, .len = IPC_MAX_PAYLOAD + 1, .id = 3};
	struct fdset before;
	int p[2];

	assert_non_null(buf);
	memcpy(buf, &h, sizeof(h));
	assert_int_equal(pipe(p), 0);
	fdset_take(&before);
	assert_int_equal(raw_send(fx->sv[0], buf, len, &p[0], 1), (ssize_t)len);
	assert_int_equal(ipc_recv(fx->sv[1], fx->m), -EPROTO);
	assert_int_equal(fx->m->fd, -1);
	fdset_same(&before);

	/* much larger */
	free(buf);
	len = 100000;
	buf = calloc(1, len);
	assert_non_null(buf);
	h.len = (uint32_t)(len - sizeof(h));
	memcpy(buf, &h, sizeof(h));
	assert_int_equal(raw_send(fx->sv[0], buf, len, NULL, 0), (ssize_t)len);
	assert_int_equal(ipc_recv(fx->sv[1], fx->m), -EPROTO);
	free(buf);
	close(p[0]);
	close(p[1]);
	expect_next_good(fx);
}

static void send_hdr_with_fds(struct fx *fx, const int *fds, size_t nfds)
{
	unsigned char buf[sizeof(struct ipc_hdr) + 2];
	struct ipc_hdr h = {.type = 4, .len = 2, .id = 5};

	memcpy(buf, &h, sizeof(h));
	memcpy(buf + sizeof(h), "a", 2);
	assert_int_equal(raw_send(fx->sv[0], buf, sizeof(buf), fds, nfds), (ssize_t)sizeof(buf));
}

/* Two descriptors (fits the receive buffer) and ten (does not: MSG_CTRUNC):
 * -EPROTO and every one that arrived is closed. */
static void test_recv_too_many_fds(void **state)
{
	struct fx *fx = *state;
	struct fdset before;
	int p[2], fds[10];

	assert_int_equal(pipe(p), 0);
	fdset_take(&before);
	fds[0] = p[0];
	fds[1] = p[1];
	send_hdr_with_fds(fx, fds, 2);
	assert_int_equal(ipc_recv(fx->sv[1], fx->m), -EPROTO);
	assert_int_equal(fx->m->fd, -1);
	fdset_same(&before);

	for (int i = 0; i < 10; i++)
		fds[i] = p[i % 2];
	send_hdr_with_fds(fx, fds, 10);
	assert_int_equal(ipc_recv(fx->sv[1], fx->m), -EPROTO);
	assert_int_equal(fx->m->fd, -1);
	fdset_same(&before);

	/* four: exactly the receive buffer's room, still more than one */
	send_hdr_with_fds(fx, fds, 4);
	assert_int_equal(ipc_recv(fx->sv[1], fx->m), -EPROTO);
	fdset_same(&before);

	/* the peer of the pipe sees no extra writer left open anywhere */
	close(p[1]);
	{
		char c;

		assert_int_equal(read(p[0], &c, 1), 0);
	}
	close(p[0]);
	expect_next_good(fx);
}

/* A zero-length record carrying a descriptor is not EOF: -EPROTO, closed. */
static void test_recv_empty_record_with_fd(void **state)
{
	struct fx *fx = *state;
	struct fdset before;
	int p[2];

	assert_int_equal(pipe(p), 0);
	fdset_take(&before);
	assert_int_equal(raw_send(fx->sv[0], "", 0, &p[0], 1), 0);
	assert_int_equal(ipc_recv(fx->sv[1], fx->m), -EPROTO);
	assert_int_equal(fx->m->fd, -1);
	fdset_same(&before);
	close(p[0]);
	close(p[1]);
	expect_next_good(fx);
}

/* Control data that is not SCM_RIGHTS (credentials, once the receiver asks
 * for them) makes the message malformed; its descriptor is closed. */
static void test_recv_foreign_cmsg(void **state)
{
	struct fx *fx = *state;
	struct fdset before;
	int on = 1, p[2];

	assert_int_equal(setsockopt(fx->sv[1], SOL_SOCKET, SO_PASSCRED, &on, sizeof(on)), 0);
	assert_int_equal(pipe(p), 0);
	fdset_take(&before);
	assert_int_equal(ipc_send(fx->sv[0], 1, 2, "x", 2, p[0]), 0);
	assert_int_equal(ipc_recv(fx->sv[1], fx->m), -EPROTO);
	assert_int_equal(fx->m->fd, -1);
	fdset_same(&before);
	close(p[0]);
	close(p[1]);
}

/* ---- ipc_dispatch ---- */

struct calls {
	int n;
	uint32_t type;
	int fd_seen;
	bool take_fd;
	int taken;
	int ret;
};

static int h_record(void *ctx, struct ipc_msg *m)
{
	struct calls *c = ctx;

	c->n++;
	c->type = m->hdr.type;
	c->fd_seen = m->fd;
	if (c->take_fd) {
		c->taken = m->fd;
		m->fd = -1;
	}
	return c->ret;
}

static const struct ipc_handler table[] = {
	{.type = 1, .min_len = 0, .max_len = 0, .fd_rule = IPC_FD_NONE, .fn = h_record},
	{.type = 2, .min_len = 4, .max_len = 8, .fd_rule = IPC_FD_NONE, .fn = h_record},
	{.type = 3, .min_len = 0, .max_len = 16, .fd_rule = IPC_FD_REQUIRED, .fn = h_record},
	{.type = 4, .min_len = 0, .max_len = 16, .fd_rule = IPC_FD_OPTIONAL, .fn = h_record},
	{.type = 5,
	 .min_len = 1,
	 .max_len = 64,
	 .fd_rule = IPC_FD_NONE,
	 .flags = IPC_F_STRING,
	 .fn = h_record},
	{.type = 6, .min_len = 0, .max_len = 0, .fd_rule = IPC_FD_NONE, .fn = h_record},
};

static void set_msg(struct ipc_msg *m, uint32_t type, const void *p, uint32_t len, int fd)
{
	m->hdr.type = type;
	m->hdr.len = len;
	m->hdr.id = 1;
	m->fd = fd;
	memcpy(m->payload, p, len);
	m->payload[len] = '\0';
}

static int new_fd(void)
{
	int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);

	assert_true(fd >= 0);
	return fd;
}

static int dispatch(struct ipc_msg *m, struct calls *c)
{
	return ipc_dispatch(table, SE_ARRAY_SIZE(table), c, m);
}

static void test_dispatch_type(void **state)
{
	struct fx *fx = *state;
	struct calls c = {.ret = 0};
	int fd;

	set_msg(fx->m, 1, "", 0, -1);
	assert_int_equal(dispatch(fx->m, &c), 0);
	assert_int_equal(c.n, 1);
	assert_int_equal(c.type, 1);

	/* unknown type: -EPROTO, no handler, descriptor closed */
	fd = new_fd();
	set_msg(fx->m, 99, "", 0, fd);
	assert_int_equal(dispatch(fx->m, &c), -EPROTO);
	assert_int_equal(c.n, 1);
	assert_false(fd_open(fd));
	assert_int_equal(fx->m->fd, -1);

	/* empty table */
	set_msg(fx->m, 1, "", 0, -1);
	assert_int_equal(ipc_dispatch(table, 0, &c, fx->m), -EPROTO);
	assert_int_equal(c.n, 1);

	/* the handler's result is returned as is, and ctx is passed */
	c.ret = -ENOSPC;
	set_msg(fx->m, 6, "", 0, -1);
	assert_int_equal(dispatch(fx->m, &c), -ENOSPC);
	assert_int_equal(c.n, 2);
	assert_int_equal(c.type, 6);
	c.ret = 7;
	assert_int_equal(dispatch(fx->m, &c), 7);
}

static void test_dispatch_len(void **state)
{
	struct fx *fx = *state;
	struct calls c = {0};
	static const struct {
		uint32_t type, len;
		int want;
	} cases[] = {
		{1, 0, 0}, {1, 1, -EPROTO}, {2, 3, -EPROTO}, {2, 4, 0},	 {2, 6, 0},
		{2, 8, 0}, {2, 9, -EPROTO}, {2, 0, -EPROTO}, {4, 16, 0}, {4, 17, -EPROTO},
	};

	for (size_t i = 0; i < SE_ARRAY_SIZE(cases); i++) {
		int n0 = c.n, fd = new_fd(), r;

		set_msg(fx->m, cases[i].type, "0123456789abcdefgh", cases[i].len, -1);
		/* type 4 takes an optional descriptor: give one to see it closed */
		if (cases[i].type == 4)
			fx->m->fd = fd;
		r = dispatch(fx->m, &c);
		if (r != cases[i].want)
			fail_msg("type %u len %u: got %d want %d", cases[i].type, cases[i].len, r,
				 cases[i].want);
		assert_int_equal(c.n, n0 + (cases[i].want == 0));
		assert_int_equal(fx->m->fd, -1);
		if (cases[i].type == 4)
			assert_false(fd_open(fd));
		else
			close(fd);
	}
}

static void test_dispatch_fd_rules(void **state)
{
	struct fx *fx = *state;
	struct calls c = {0};
	int fd;

	/* NONE with a descriptor: refused, closed */
	fd = new_fd();
	set_msg(fx->m, 1, "", 0, fd);
	assert_int_equal(dispatch(fx->m, &c), -EPROTO);
	assert_int_equal(c.n, 0);
	assert_false(fd_open(fd));

	/* REQUIRED without: refused */
	set_msg(fx->m, 3, "", 0, -1);
	assert_int_equal(dispatch(fx->m, &c), -EPROTO);
	assert_int_equal(c.n, 0);

	/* REQUIRED with: handler sees it; left to dispatch, which closes it */
	fd = new_fd();
	set_msg(fx->m, 3, "", 0, fd);
	assert_int_equal(dispatch(fx->m, &c), 0);
	assert_int_equal(c.n, 1);
	assert_int_equal(c.fd_seen, fd);
	assert_false(fd_open(fd));
	assert_int_equal(fx->m->fd, -1);

	/* REQUIRED, handler takes it: stays open */
	fd = new_fd();
	c.take_fd = true;
	set_msg(fx->m, 3, "", 0, fd);
	assert_int_equal(dispatch(fx->m, &c), 0);
	assert_int_equal(c.taken, fd);
	assert_true(fd_open(fd));
	close(fd);
	c.take_fd = false;

	/* a handler failing still gets its descriptor closed */
	fd = new_fd();
	c.ret = -EIO;
	set_msg(fx->m, 3, "", 0, fd);
	assert_int_equal(dispatch(fx->m, &c), -EIO);
	assert_false(fd_open(fd));
	c.ret = 0;

	/* OPTIONAL: with and without */
	c.n = 0;
	set_msg(fx->m, 4, "", 0, -1);
	assert_int_equal(dispatch(fx->m, &c), 0);
	assert_int_equal(c.fd_seen, -1);
	fd = new_fd();
	set_msg(fx->m, 4, "", 0, fd);
	assert_int_equal(dispatch(fx->m, &c), 0);
	assert_int_equal(c.fd_seen, fd);
	assert_int_equal(c.n, 2);
	assert_false(fd_open(fd));
}

static void test_dispatch_string(void **state)
{
	struct fx *fx = *state;
	struct calls c = {0};
	int fd;

	set_msg(fx->m, 5, "abc", 4, -1); /* with its NUL */
	assert_int_equal(dispatch(fx->m, &c), 0);
	assert_int_equal(c.n, 1);

	set_msg(fx->m, 5, "", 1, -1); /* the empty string */
	assert_int_equal(dispatch(fx->m, &c), 0);
	assert_int_equal(c.n, 2);

	set_msg(fx->m, 5, "abc", 3, -1); /* not NUL-terminated */
	assert_int_equal(dispatch(fx->m, &c), -EPROTO);
	set_msg(fx->m, 5, "a\0bc", 5, -1); /* inner NUL */
	assert_int_equal(dispatch(fx->m, &c), -EPROTO);
	set_msg(fx->m, 5, "\0\0", 2, -1);
	assert_int_equal(dispatch(fx->m, &c), -EPROTO);
	assert_int_equal(c.n, 2);

	/* a string message with a stray descriptor: closed */
	fd = new_fd();
	set_msg(fx->m, 5, "abc", 4, fd);
	assert_int_equal(dispatch(fx->m, &c), -EPROTO);
	assert_false(fd_open(fd));
	assert_int_equal(c.n, 2);
}

/* The first matching table entry wins. */
static int h_other(void *ctx, struct ipc_msg *m)
{
	(void)m;
	(*(int *)ctx) += 100;
	return 0;
}

static int h_first(void *ctx, struct ipc_msg *m)
{
	(void)m;
	(*(int *)ctx) += 1;
	return 0;
}

static void test_dispatch_first_match(void **state)
{
	struct fx *fx = *state;
	const struct ipc_handler t[] = {
		{.type = 8, .min_len = 0, .max_len = 4, .fn = h_first},
		{.type = 8, .min_len = 0, .max_len = 4, .fn = h_other},
	};
	int n = 0;

	set_msg(fx->m, 8, "ab", 2, -1);
	assert_int_equal(ipc_dispatch(t, SE_ARRAY_SIZE(t), &n, fx->m), 0);
	assert_int_equal(n, 1);
}

/* End to end: received, then dispatched; a truncated string is refused. */
static void test_recv_then_dispatch(void **state)
{
	struct fx *fx = *state;
	struct calls c = {.take_fd = true};
	int p[2];
	char b;

	assert_int_equal(pipe(p), 0);
	assert_int_equal(ipc_send(fx->sv[0], 3, 42, "pipe", 5, p[1]), 0);
	close(p[1]);
	assert_int_equal(ipc_recv(fx->sv[1], fx->m), 1);
	assert_int_equal(dispatch(fx->m, &c), 0);
	assert_int_equal(c.n, 1);
	assert_true(c.taken >= 0);
	assert_int_equal(write(c.taken, "!", 1), 1);
	close(c.taken);
	assert_int_equal(read(p[0], &b, 1), 1);
	assert_int_equal(b, '!');
	close(p[0]);

	assert_int_equal(ipc_send(fx->sv[0], 5, 1, "abc", 3, -1), 0);
	assert_int_equal(ipc_recv(fx->sv[1], fx->m), 1);
	/* recv terminates the payload, but the string rule checks the wire */
	assert_int_equal(dispatch(fx->m, &c), -EPROTO);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_pair),
		T(test_roundtrip),
		T(test_wire_format),
		T(test_empty_payload),
		T(test_max_payload),
		T(test_fd_passing),
		T(test_send_bad_fd),
		T(test_nonblocking),
		T(test_eof_and_epipe),
		T(test_recv_short),
		T(test_recv_len_mismatch),
		T(test_recv_oversized),
		T(test_recv_too_many_fds),
		T(test_recv_empty_record_with_fd),
		T(test_recv_foreign_cmsg),
		T(test_dispatch_type),
		T(test_dispatch_len),
		T(test_dispatch_fd_rules),
		T(test_dispatch_string),
		T(test_dispatch_first_match),
		T(test_recv_then_dispatch),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
