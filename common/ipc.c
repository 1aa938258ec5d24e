/* ipc: one message framing for every process pair (see ipc.h). */
#include "common/ipc.h"
#include "common/util.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

/* Room for a few descriptors so a peer sending too many is detected (and
 * its extras closed) rather than silently truncated. */
#define IPC_MAX_RX_FDS 4

int ipc_pair(int sv[2])
{
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return -errno;
	return 0;
}

int ipc_send(int sock, uint32_t type, uint64_t id, const void *payload, size_t len, int fd)
{
	struct ipc_hdr hdr = {.type = type, .len = (uint32_t)len, .id = id};
	struct iovec iov[2] = {
		{.iov_base = &hdr, .iov_len = sizeof(hdr)},
		{.iov_base = (void *)payload, .iov_len = len},
	};
	ssize_t n;

	if (len > IPC_MAX_PAYLOAD)
		return -EMSGSIZE;
	n = util_sendmsg_fd(sock, iov, len ? 2 : 1, fd, 0);
	if (n < 0)
		return (int)n;
	if ((size_t)n != sizeof(hdr) + len)
		return -EPROTO; /* cannot happen on SOCK_SEQPACKET */
	return 0;
}

int ipc_recv(int sock, struct ipc_msg *m)
{
	struct iovec iov[2] = {
		{.iov_base = &m->hdr, .iov_len = sizeof(m->hdr)},
		{.iov_base = m->payload, .iov_len = IPC_MAX_PAYLOAD},
	};
	union {
		char buf[CMSG_SPACE(sizeof(int) * IPC_MAX_RX_FDS)];
		struct cmsghdr align;
	} cm;
	struct msghdr mh = {
		.msg_iov = iov,
		.msg_iovlen = 2,
		.msg_control = cm.buf,
		.msg_controllen = sizeof(cm.buf),
	};
	int nfds = 0, bad = 0;
	ssize_t n;

	m->fd = -1;
	do
		n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == EWOULDBLOCK ? -EAGAIN : -errno;

	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) {
			bad = 1;
			continue;
		}
		size_t cnt = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);

		for (size_t i = 0; i < cnt; i++) {
			int fd;

			memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
			if (nfds++ == 0)
				m->fd = fd;
			else
				close(fd);
		}
	}
	if (n == 0 && nfds == 0)
		return 0;
	if (bad || nfds > 1 || (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) ||
	    (size_t)n < sizeof(m->hdr) || m->hdr.len > IPC_MAX_PAYLOAD ||
	    (size_t)n != sizeof(m->hdr) + m->hdr.len) {
		util_close(&m->fd);
		return -EPROTO;
	}
	m->payload[m->hdr.len] = '\0';
	return 1;
}

static int check_string(const struct ipc_msg *m)
{
	if (m->hdr.len == 0 || m->payload[m->hdr.len - 1] != '\0')
		return -EPROTO;
	if (memchr(m->payload, '\0', m->hdr.len - 1))
		return -EPROTO;
	return 0;
}

int ipc_dispatch(const struct ipc_handler *tbl, size_t n, void *ctx, struct ipc_msg *m)
{
	const struct ipc_handler *h = NULL;
	int ret = -EPROTO;

	for (size_t i = 0; i < n; i++) {
		if (tbl[i].type == m->hdr.type) {
			h = &tbl[i];
			break;
		}
	}
	if (!h)
		goto out;
	if (m->hdr.len < h->min_len || m->hdr.len > h->max_len)
		goto out;
	if ((h->fd_rule == IPC_FD_NONE && m->fd >= 0) ||
	    (h->fd_rule == IPC_FD_REQUIRED && m->fd < 0))
		goto out;
	if ((h->flags & IPC_F_STRING) && check_string(m))
		goto out;
	ret = h->fn(ctx, m);
out:
	util_close(&m->fd);
	return ret;
}
