/* ipc: the one message framing used between every pair of scanengine
 * processes (supervisor, zygote, workers, and later validator/updater).
 *
 * Messages travel over SOCK_SEQPACKET socketpairs, so one sendmsg is one
 * message: a fixed header, a payload of at most IPC_MAX_PAYLOAD bytes, and at
 * most one file descriptor (SCM_RIGHTS). The receiver checks that the length
 * in the header is exactly what arrived, and dispatches through a table that
 * states, per type, the allowed payload length and whether an fd must, may or
 * must not come with it. */
#ifndef SE_COMMON_IPC_H
#define SE_COMMON_IPC_H

#include <stddef.h>
#include <stdint.h>

#define IPC_MAX_PAYLOAD (32 * 1024)

struct ipc_hdr {
	uint32_t type;
	uint32_t len; /* payload bytes following the header */
	uint64_t id;  /* request id, echoed in replies */
};

struct ipc_msg {
	struct ipc_hdr hdr;
	int fd; /* received descriptor or -1; owned by whoever takes it */
	/* +1: always NUL-terminated; aligned so fixed payload structs can be
	 * read in place */
	unsigned char payload[IPC_MAX_PAYLOAD + 1] __attribute__((aligned(8)));
};

enum ipc_fd_rule {
	IPC_FD_NONE = 0, /* a descriptor with this type is a protocol error */
	IPC_FD_REQUIRED,
	IPC_FD_OPTIONAL,
};

#define IPC_F_STRING 0x1 /* payload is one NUL-terminated string, no inner NUL */

struct ipc_handler {
	uint32_t type;
	uint32_t min_len, max_len;
	enum ipc_fd_rule fd_rule;
	unsigned int flags;
	/* Returns 0 or -errno. May take m->fd (set it to -1); ipc_dispatch
	 * closes a descriptor the handler left. */
	int (*fn)(void *ctx, struct ipc_msg *m);
};

/* ipc_pair: create a SOCK_SEQPACKET socketpair with CLOEXEC set on both ends.
 * Returns 0 or -errno. */
int ipc_pair(int sv[2]);

/* ipc_send: send one message with an optional fd (-1 for none). Works on
 * blocking and non-blocking sockets (-EAGAIN when full); never raises
 * SIGPIPE. The fd stays owned by the caller. Returns 0 or -errno. */
int ipc_send(int sock, uint32_t type, uint64_t id, const void *payload, size_t len, int fd);

/* ipc_recv: receive one message into m. Returns 1 with a message, 0 on EOF,
 * -EAGAIN when nothing is pending on a non-blocking socket, -EPROTO for a
 * malformed message (truncated, length mismatch, more than one fd: every fd
 * that came with it is closed), or another -errno. */
int ipc_recv(int sock, struct ipc_msg *m);

/* ipc_dispatch: find m's type in tbl[n], check its length and fd rules, and
 * call the handler with ctx. Returns the handler's result, or -EPROTO when
 * the type is unknown or the checks fail. Closes any fd left in m. */
int ipc_dispatch(const struct ipc_handler *tbl, size_t n, void *ctx, struct ipc_msg *m);

#endif
