/* fuzz_ipc: arbitrary datagrams on an ipc socket, through the receiving
 * side's checks and a dispatch table with every rule (length bounds, fd
 * rules, strings). Nothing may crash, and no descriptor may leak. */
#include "common/ipc.h"
#include "common/util.h"

#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int handler(void *ctx, struct ipc_msg *m)
{
	unsigned int *sum = ctx;

	/* touch every payload byte the checks admitted */
	for (uint32_t i = 0; i < m->hdr.len; i++)
		*sum += m->payload[i];
	return 0;
}

static const struct ipc_handler table[] = {
	{1, 0, 0, IPC_FD_NONE, 0, handler},
	{2, 8, 8, IPC_FD_REQUIRED, 0, handler},
	{3, 1, 256, IPC_FD_OPTIONAL, IPC_F_STRING, handler},
	{4, 16, IPC_MAX_PAYLOAD, IPC_FD_NONE, 0, handler},
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct ipc_msg msg;
	static unsigned int sum;
	int sv[2], extra = -1;

	if (ipc_pair(sv) < 0)
		abort();
	/* first byte: attach a descriptor or not */
	if (size && (data[0] & 1))
		extra = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (size) {
		data++;
		size--;
	}
	if (size > sizeof(struct ipc_hdr) + IPC_MAX_PAYLOAD + 64)
		size = sizeof(struct ipc_hdr) + IPC_MAX_PAYLOAD + 64;
	{
		struct iovec iov = {.iov_base = (void *)data, .iov_len = size};

		util_sendmsg_fd(sv[1], &iov, 1, extra, MSG_DONTWAIT);
	}
	util_close(&extra);
	close(sv[1]);
	util_set_nonblock(sv[0], true);
	for (;;) {
		int r = ipc_recv(sv[0], &msg);

		if (r <= 0)
			break;
		ipc_dispatch(table, SE_ARRAY_SIZE(table), &sum, &msg);
		if (msg.fd >= 0)
			abort(); /* dispatch must not leave a descriptor behind */
	}
	close(sv[0]);
	return 0;
}
