/* worker: a sandboxed scan process forked from the zygote. */
#include "scanengine/worker.h"
#include "common/ipc.h"
#include "common/log.h"
#include "common/util.h"
#include "sandbox/sandbox.h"
#include "scanengine/msgs.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

struct worker_ctx {
	struct engine *engine;
	int sock;
	int scratch_fd; /* O_PATH: tells whether the scratch directory still exists */
};

/* The log sink needs the socket; it is a callback without context. */
static int log_sock = -1;

static void log_to_supervisor(enum log_level lvl, const char *line)
{
	struct msg_log m = {.level = (uint32_t)lvl};
	size_t len = util_strlcpy(m.text, line, sizeof(m.text));

	if (len >= sizeof(m.text))
		len = sizeof(m.text) - 1;
	ipc_send(log_sock, MSG_WK_LOG, 0, &m, offsetof(struct msg_log, text) + len + 1, -1);
}

static int on_scan(void *vctx, struct ipc_msg *m)
{
	struct worker_ctx *w = vctx;
	const struct msg_scan *req = (const void *)m->payload;
	struct engine_result res;
	unsigned char out[sizeof(struct msg_result) + MSG_RESULT_MAX_NAMES * 128 + 256];
	struct msg_result *hdr = (struct msg_result *)out;
	size_t len = sizeof(*hdr);
	uint64_t t0 = util_now_us();
	struct stat st;
	int r;

	/* Without its scratch directory (removed behind our back; Landlock
	 * lets us create nothing else) this worker cannot scan archives:
	 * leave unanswered, so the job is retried on a fresh worker. */
	if (fstat(w->scratch_fd, &st) == 0 && st.st_nlink == 0)
		fatal(WORKER_EXIT_TEMPFAIL,
		      "worker: scratch directory removed; exiting to be replaced");
	engine_scan(w->engine, m->fd, req->flags & MSG_SCAN_ALLMATCH, &res);
	util_close(&m->fd); /* before answering: the job is over */

	memset(hdr, 0, sizeof(*hdr));
	hdr->verdict = res.verdict;
	hdr->scanned_bytes = res.scanned_bytes;
	hdr->scan_us = util_now_us() - t0;
	if (res.verdict == VERDICT_VIRUS) {
		hdr->nnames = res.nnames;
		for (unsigned int i = 0; i < res.nnames; i++) {
			size_t l = strlen(res.names[i]) + 1;

			memcpy(out + len, res.names[i], l);
			len += l;
		}
	} else if (res.verdict == VERDICT_ERROR) {
		size_t l = strlen(res.error) + 1;

		memcpy(out + len, res.error, l);
		len += l;
	}
	r = ipc_send(w->sock, MSG_WK_RESULT, m->hdr.id, out, len, -1);
	if (fstat(w->scratch_fd, &st) == 0 && st.st_nlink == 0)
		fatal(WORKER_EXIT_TEMPFAIL,
		      "worker: scratch directory removed; exiting to be replaced");
	return r;
}

static const struct ipc_handler worker_handlers[] = {
	{MSG_WK_SCAN, sizeof(struct msg_scan), sizeof(struct msg_scan), IPC_FD_REQUIRED, 0,
	 on_scan},
};

void worker_main(struct engine *e, const struct config *cfg, int sock)
{
	struct worker_ctx w = {.engine = e, .sock = sock, .scratch_fd = -1};
	struct sandbox_worker_policy pol = {0};
	struct msg_spawned ready = {.pid = (int32_t)getpid()};
	static struct ipc_msg msg;
	char scratch[4096];
	int r;

	prctl(PR_SET_NAME, "scanengine-wrk", 0, 0, 0);
	/* A scratch file over RLIMIT_FSIZE must fail the write, not kill us. */
	signal(SIGXFSZ, SIG_IGN);
	log_sock = sock;
	log_set_sink(log_to_supervisor);

	snprintf(scratch, sizeof(scratch), "%s/worker-%d", cfg->temp_dir, (int)getpid());
	if (mkdir(scratch, 0700) < 0 && errno != EEXIST)
		fatal(1, "worker: cannot create scratch directory %s: %s", scratch,
		      strerror(errno));
	w.scratch_fd = open(scratch, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (w.scratch_fd < 0 || engine_set_tmpdir(e, scratch) < 0)
		fatal(1, "worker: cannot use scratch directory %s", scratch);
	pol.scratch_dir = scratch;
	pol.mem_limit = cfg->worker_memory_limit;
	/* Unpacked members are bounded by MaxFileSize; leave headroom. */
	pol.max_file_size = cfg->max_file_size ? cfg->max_file_size + (1u << 20) : 0;
	r = sandbox_enter_worker(&pol);
	if (r < 0)
		fatal(1, "worker: cannot enter the sandbox: %s", strerror(-r));

	if (ipc_send(sock, MSG_WK_READY, 0, &ready, sizeof(ready), -1) < 0)
		_exit(1);
	for (;;) {
		r = ipc_recv(sock, &msg);
		if (r == 0)
			_exit(0); /* retired, or the supervisor is gone */
		if (r < 0)
			fatal(1, "worker: bad message from supervisor: %s", strerror(-r));
		r = ipc_dispatch(worker_handlers, SE_ARRAY_SIZE(worker_handlers), &w, &msg);
		if (r < 0)
			fatal(1, "worker: cannot handle message 0x%x: %s", msg.hdr.type,
			      strerror(-r));
	}
}
