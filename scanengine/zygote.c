/* zygote: the engine process of one definitions generation. */
#include "scanengine/zygote.h"
#include "common/ipc.h"
#include "common/log.h"
#include "common/util.h"
#include "scanengine/engine.h"
#include "scanengine/msgs.h"
#include "scanengine/worker.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

struct zygote_ctx {
	const struct config *cfg;
	struct engine *engine;
	int sock;
};

static int log_sock = -1;

static void log_to_supervisor(enum log_level lvl, const char *line)
{
	struct msg_log m = {.level = (uint32_t)lvl};
	size_t len = util_strlcpy(m.text, line, sizeof(m.text));

	if (len >= sizeof(m.text))
		len = sizeof(m.text) - 1;
	ipc_send(log_sock, MSG_ZY_LOG, 0, &m, offsetof(struct msg_log, text) + len + 1, -1);
}

static uint64_t vm_rss_kb(void)
{
	FILE *f = fopen("/proc/self/status", "re");
	char line[256];
	unsigned long long kb = 0;

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %llu kB", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

/* Fork a worker through an intermediate process that exits at once, so the
 * worker is re-parented to the supervisor (child subreaper). The
 * intermediate reports the worker's pid itself. */
static int on_spawn(void *vctx, struct ipc_msg *m)
{
	struct zygote_ctx *z = vctx;
	struct msg_spawned sp = {.pid = -1};
	pid_t mid, w;
	int status;

	mid = fork();
	if (mid < 0) {
		log_error("zygote: cannot fork a worker: %s", strerror(errno));
		return ipc_send(z->sock, MSG_ZY_SPAWNED, m->hdr.id, &sp, sizeof(sp), -1);
	}
	if (mid == 0) {
		w = fork();
		if (w == 0) {
			int wsock = m->fd;

			close(z->sock);
			log_sock = wsock;
			worker_main(z->engine, z->cfg, wsock);
		}
		sp.pid = w;
		if (w < 0)
			log_error("zygote: cannot fork a worker: %s", strerror(errno));
		ipc_send(z->sock, MSG_ZY_SPAWNED, m->hdr.id, &sp, sizeof(sp), -1);
		_exit(w < 0);
	}
	util_close(&m->fd);
	while (waitpid(mid, &status, 0) < 0 && errno == EINTR)
		;
	return 0;
}

static const struct ipc_handler zygote_handlers[] = {
	{MSG_ZY_SPAWN, 0, 0, IPC_FD_REQUIRED, 0, on_spawn},
};

static enum load_failure classify(int eno)
{
	switch (eno) {
	case ENOMEM:
		return LOAD_FAIL_MEMORY;
	case EINVAL:
		return LOAD_FAIL_DEFS;
	default:
		return LOAD_FAIL_OTHER;
	}
}

void zygote_main(const struct config *cfg, const struct sandbox_identity *id, const char *dbdir,
		 int sock)
{
	struct zygote_ctx z = {.cfg = cfg, .sock = sock};
	struct msg_engine_info info;
	struct msg_load_failed lf = {.cls = LOAD_FAIL_OTHER};
	static struct ipc_msg msg;
	char err[512];
	int r;

	prctl(PR_SET_NAME, "scanengine-zyg", 0, 0, 0);
	/* Die with the supervisor rather than linger as an orphan engine. */
	prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
	if (getppid() == 1)
		_exit(1);
	log_sock = sock;
	log_set_sink(log_to_supervisor);

	r = sandbox_drop_privileges(id);
	if (r < 0) {
		lf.eno = -r;
		snprintf(err, sizeof(err), "cannot drop privileges to %s: %s",
			 id && id->valid ? id->name : "(none)", strerror(-r));
		goto fail;
	}
	if (engine_global_init(err) < 0)
		goto fail;
	z.engine = engine_load(cfg, dbdir, cfg->temp_dir, &info, err);
	if (!z.engine) {
		lf.eno = errno;
		lf.cls = classify(errno);
		goto fail;
	}
	/* a set whose signatures match a line of plain text matches everything */
	if (engine_warm_up(z.engine) < 0) {
		snprintf(err, sizeof(err),
			 "definitions from %s fail a test scan of a harmless text",
			 cfg->database_dir);
		goto fail;
	}
	info.rss_kb = vm_rss_kb();
	if (ipc_send(sock, MSG_ZY_READY, 0, &info, sizeof(info), -1) < 0)
		_exit(1);

	for (;;) {
		r = ipc_recv(sock, &msg);
		if (r == 0)
			_exit(0);
		if (r < 0)
			fatal(1, "zygote: bad message from supervisor: %s", strerror(-r));
		r = ipc_dispatch(zygote_handlers, SE_ARRAY_SIZE(zygote_handlers), &z, &msg);
		if (r < 0)
			fatal(1, "zygote: cannot handle message 0x%x: %s", msg.hdr.type,
			      strerror(-r));
	}

fail:
	util_strlcpy(lf.text, err, sizeof(lf.text));
	ipc_send(sock, MSG_ZY_FAILED, 0, &lf, sizeof(lf), -1);
	_exit(1);
}
