/* supervisor: the root process of scanengined (see supervisor.h). */
#include "scanengine/supervisor.h"
#include "common/evloop.h"
#include "common/log.h"
#include "common/notify.h"
#include "common/util.h"
#include "sandbox/sandbox.h"
#include "scanengine/control.h"
#include "scanengine/pool.h"
#include "scanengine/version.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <json-c/json.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define TICK_MS 100

struct supervisor {
	struct config *cfg;
	struct sandbox_identity id;
	gid_t admin_gid;
	struct evloop *ev;
	struct pool *pool;
	struct control *ctl;
	int sigfd;
	struct ev_handler sigev;
	int pidfd;
	int ready_fd;

	bool started; /* first engine is up and the socket accepts */
	bool stopping;
	int exit_status;
	char start_error[512];

	time_t start_time;
	uint64_t start_ms;
	uint64_t last_tick_ms, last_selfcheck_ms, last_watchdog_ms, watchdog_usec;
	uint64_t defs_fingerprint; /* of the set being loaded or loaded */
	unsigned int reloads;
};

/* ---- start-up checks ---------------------------------------------------- */

static int start_fail(struct supervisor *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int start_fail(struct supervisor *s, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(s->start_error, sizeof(s->start_error), fmt, ap);
	va_end(ap);
	return -1;
}

/* A cheap fingerprint of the definitions directory (names, sizes, mtimes)
 * for SelfCheck: a change means someone installed new files. */
static uint64_t defs_fingerprint(const char *dir)
{
	uint64_t h = 1469598103934665603ULL;
	DIR *d = opendir(dir);
	struct dirent *de;

	if (!d)
		return 0;
	while ((de = readdir(d))) {
		struct stat st;

		if (de->d_name[0] == '.' || fstatat(dirfd(d), de->d_name, &st, 0) < 0)
			continue;
		/* order-independent: sum the per-file hashes */
		uint64_t fh = 1099511628211ULL;

		for (const char *c = de->d_name; *c; c++)
			fh = (fh ^ (unsigned char)*c) * 1099511628211ULL;
		fh ^= (uint64_t)st.st_size * 31 + (uint64_t)st.st_mtim.tv_sec * 1000003 +
		      (uint64_t)st.st_mtim.tv_nsec;
		h += fh * 2654435761ULL;
	}
	closedir(d);
	return h;
}

static int check_dirs(struct supervisor *s)
{
	struct config *cfg = s->cfg;
	struct stat st;
	DIR *d;
	struct dirent *de;
	int r;

	if (stat(cfg->database_dir, &st) < 0)
		return start_fail(s, "DatabaseDirectory %s: %s", cfg->database_dir,
				  strerror(errno));
	if (!S_ISDIR(st.st_mode))
		return start_fail(s, "DatabaseDirectory %s: not a directory", cfg->database_dir);
	r = util_mkdir_p(cfg->state_dir, 0755);
	if (r < 0)
		return start_fail(s, "StateDirectory %s: %s", cfg->state_dir, strerror(-r));
	r = util_mkdir_p(cfg->temp_dir, 0700);
	if (r < 0)
		return start_fail(s, "TemporaryDirectory %s: %s", cfg->temp_dir, strerror(-r));
	/* Workers write scratch files here as the scan user, nobody else. */
	if (s->id.valid && chown(cfg->temp_dir, s->id.uid, s->id.gid) < 0)
		return start_fail(s, "TemporaryDirectory %s: cannot give it to %s: %s",
				  cfg->temp_dir, s->id.name, strerror(errno));
	if (chmod(cfg->temp_dir, 0700) < 0)
		return start_fail(s, "TemporaryDirectory %s: %s", cfg->temp_dir, strerror(errno));
	/* Scratch directories of workers of a previous run. */
	d = opendir(cfg->temp_dir);
	if (d) {
		while ((de = readdir(d))) {
			char path[4200];

			if (strncmp(de->d_name, "worker-", 7))
				continue;
			snprintf(path, sizeof(path), "%s/%s", cfg->temp_dir, de->d_name);
			util_rm_rf(path);
		}
		closedir(d);
	}
	return 0;
}

static int lock_pidfile(struct supervisor *s)
{
	const char *path = s->cfg->pid_file;
	char buf[32];
	char dir[4096];
	char *slash;
	int fd, n;

	util_strlcpy(dir, path, sizeof(dir));
	slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		*slash = '\0';
		util_mkdir_p(dir, 0755);
	}
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0)
		return start_fail(s, "PidFile %s: %s", path, strerror(errno));
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		int e = errno;

		n = (int)pread(fd, buf, sizeof(buf) - 1, 0);
		buf[n > 0 ? n : 0] = '\0';
		buf[strcspn(buf, "\n")] = '\0';
		close(fd);
		if (e == EWOULDBLOCK)
			return start_fail(
				s,
				"another scanengined (pid %s) is already running with PidFile %s",
				buf[0] ? buf : "?", path);
		return start_fail(s, "PidFile %s: cannot lock: %s", path, strerror(e));
	}
	n = snprintf(buf, sizeof(buf), "%d\n", (int)getpid());
	if (ftruncate(fd, 0) < 0 || pwrite(fd, buf, (size_t)n, 0) != n) {
		close(fd);
		return start_fail(s, "PidFile %s: cannot write: %s", path, strerror(errno));
	}
	s->pidfd = fd;
	return 0;
}

static void unlock_pidfile(struct supervisor *s)
{
	if (s->pidfd < 0)
		return;
	unlink(s->cfg->pid_file);
	util_close(&s->pidfd);
}

static void report_start(struct supervisor *s, const char *msg)
{
	char line[600];
	int n;

	if (s->ready_fd < 0)
		return;
	n = snprintf(line, sizeof(line), "%s\n", msg);
	util_write_all(s->ready_fd, line, (size_t)SE_MIN(n, (int)sizeof(line) - 1));
	util_close(&s->ready_fd);
}

/* ---- pool and control hooks ---------------------------------------------- */

static void begin_load(struct supervisor *s, const char *why)
{
	int r;

	s->defs_fingerprint = defs_fingerprint(s->cfg->database_dir);
	r = pool_load(s->pool);
	if (r == -EBUSY)
		log_info("%s: a definitions load is already in progress", why);
	else if (r < 0)
		log_error("%s: cannot start the engine: %s", why, strerror(-r));
	else
		log_info("%s: loading definitions", why);
}

static void on_engine_ready(void *arg, const struct msg_engine_info *info)
{
	struct supervisor *s = arg;
	char st[256];

	snprintf(st, sizeof(st), "READY=1\nSTATUS=%u signatures, database version %u", info->sigs,
		 info->db_version);
	if (!s->started) {
		s->started = true;
		control_start(s->ctl);
		report_start(s, "OK");
		log_info("scanengined %s ready on %s (libclamav %s, %u workers)",
			 SCANENGINE_VERSION, s->cfg->local_socket, info->version,
			 s->cfg->max_threads);
	} else {
		s->reloads++;
	}
	notify_send(st);
}

static void on_engine_failed(void *arg, const char *why)
{
	struct supervisor *s = arg;

	if (!s->started && !s->stopping) {
		start_fail(s, "%s", why);
		s->stopping = true;
		s->exit_status = 1;
	}
}

static void hook_reload(void *arg)
{
	begin_load(arg, "RELOAD requested");
}

static void hook_shutdown(void *arg)
{
	struct supervisor *s = arg;

	log_info("SHUTDOWN requested");
	s->stopping = true;
}

static void hook_status(void *arg, struct json_object *o)
{
	struct supervisor *s = arg;
	const struct msg_engine_info *info = pool_engine_info(s->pool);
	struct json_object *eng = json_object_new_object();

	json_object_object_add(o, "service", json_object_new_string("scanengined"));
	json_object_object_add(o, "version", json_object_new_string(SCANENGINE_VERSION));
	json_object_object_add(o, "pid", json_object_new_int((int)getpid()));
	json_object_object_add(
		o, "uptime_seconds",
		json_object_new_int64((int64_t)((util_now_ms() - s->start_ms) / 1000)));
	json_object_object_add(o, "started_at", json_object_new_int64((int64_t)s->start_time));
	json_object_object_add(o, "config_file",
			       s->cfg->path ? json_object_new_string(s->cfg->path) : NULL);
	json_object_object_add(o, "socket", json_object_new_string(s->cfg->local_socket));
	json_object_object_add(o, "state_directory", json_object_new_string(s->cfg->state_dir));
	json_object_object_add(o, "database_directory",
			       json_object_new_string(s->cfg->database_dir));
	json_object_object_add(o, "scan_user", json_object_new_string(s->cfg->user));
	json_object_object_add(o, "scan_user_missing", json_object_new_boolean(!s->id.valid));
	json_object_object_add(o, "reloads", json_object_new_int((int)s->reloads));
	json_object_object_add(o, "connections",
			       json_object_new_int((int)control_connections(s->ctl)));
	if (info) {
		json_object_object_add(eng, "loaded", json_object_new_boolean(1));
		json_object_object_add(eng, "signatures", json_object_new_int64(info->sigs));
		json_object_object_add(eng, "database_version",
				       json_object_new_int64(info->db_version));
		json_object_object_add(eng, "database_time", json_object_new_int64(info->db_time));
		json_object_object_add(eng, "load_ms", json_object_new_int64(info->load_ms));
		json_object_object_add(eng, "engine_rss_kib",
				       json_object_new_int64((int64_t)info->rss_kb));
		json_object_object_add(eng, "libclamav", json_object_new_string(info->version));
		json_object_object_add(eng, "flevel", json_object_new_int((int)info->flevel));
	} else {
		json_object_object_add(eng, "loaded", json_object_new_boolean(0));
	}
	json_object_object_add(o, "definitions", eng);
	pool_status(s->pool, o);
}

/* ---- signals and timers -------------------------------------------------- */

static void signal_event(struct ev_handler *h, uint32_t revents)
{
	struct supervisor *s = container_of(h, struct supervisor, sigev);
	struct signalfd_siginfo si;

	(void)revents;
	while (read(s->sigfd, &si, sizeof(si)) == sizeof(si)) {
		switch (si.ssi_signo) {
		case SIGCHLD:
			pool_reap(s->pool);
			break;
		case SIGTERM:
		case SIGINT:
			log_info("signal %d: shutting down", (int)si.ssi_signo);
			s->stopping = true;
			break;
		case SIGHUP:
			if (log_reopen() < 0)
				log_error("cannot reopen LogFile %s", s->cfg->log_file);
			else
				log_info("SIGHUP: log file reopened");
			break;
		case SIGUSR2:
			begin_load(s, "SIGUSR2");
			break;
		default:
			break;
		}
	}
}

static int setup_signals(struct supervisor *s)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGUSR2);
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
		return -errno;
	signal(SIGPIPE, SIG_IGN);
	s->sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (s->sigfd < 0)
		return -errno;
	s->sigev.fd = s->sigfd;
	s->sigev.cb = signal_event;
	return evloop_add(s->ev, &s->sigev, EPOLLIN);
}

static void tick(struct supervisor *s)
{
	uint64_t now = util_now_ms();

	if (now - s->last_tick_ms < TICK_MS)
		return;
	s->last_tick_ms = now;
	/* SIGCHLD may have been coalesced with one already handled. */
	pool_reap(s->pool);
	pool_tick(s->pool);
	control_tick(s->ctl);
	if (s->watchdog_usec && (now - s->last_watchdog_ms) * 1000 >= s->watchdog_usec / 2) {
		s->last_watchdog_ms = now;
		notify_send("WATCHDOG=1");
	}
	if (s->started && s->cfg->self_check &&
	    now - s->last_selfcheck_ms >= s->cfg->self_check * 1000ULL) {
		s->last_selfcheck_ms = now;
		if (defs_fingerprint(s->cfg->database_dir) != s->defs_fingerprint)
			begin_load(s, "SelfCheck: definitions changed");
	}
}

/* ---- run ---------------------------------------------------------------- */

static void raise_nofile(void)
{
	struct rlimit rl;

	/* Many idle clients and per-scan descriptors; the hard limit is the
	 * administrator's decision. */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

static int resolve_identities(struct supervisor *s)
{
	int r = sandbox_lookup_user(s->cfg->user, &s->id);

	if (r == -ENOENT)
		log_warn("scan user '%s' does not exist: the engine and scan workers run as ROOT "
			 "(degraded). Create the account (make install does: useradd --system "
			 "--user-group --no-create-home --shell /usr/sbin/nologin %s) and restart",
			 s->cfg->user, s->cfg->user);
	else if (r < 0)
		return start_fail(s, "User %s: %s", s->cfg->user, strerror(-r));
	s->admin_gid = (gid_t)-1;
	if (s->cfg->admin_group) {
		struct group *gr = getgrnam(s->cfg->admin_group);

		if (!gr)
			return start_fail(s, "AdminGroup %s: no such group", s->cfg->admin_group);
		s->admin_gid = gr->gr_gid;
	}
	return 0;
}

int supervisor_run(struct config *cfg, int ready_fd)
{
	struct supervisor s = {.cfg = cfg, .sigfd = -1, .pidfd = -1, .ready_fd = ready_fd};
	struct pool_hooks ph = {
		.arg = &s, .engine_ready = on_engine_ready, .engine_failed = on_engine_failed};
	struct control_hooks ch = {
		.arg = &s, .reload = hook_reload, .shutdown = hook_shutdown, .status = hook_status};
	char err[512];
	int r;

	s.start_ms = util_now_ms();
	s.start_time = time(NULL);
	raise_nofile();
	if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0) {
		start_fail(&s, "cannot become a child subreaper: %s", strerror(errno));
		goto out;
	}
	if (resolve_identities(&s) < 0 || check_dirs(&s) < 0 || lock_pidfile(&s) < 0)
		goto out;
	s.ev = evloop_new();
	if (!s.ev || setup_signals(&s) < 0) {
		start_fail(&s, "cannot set up the event loop: %s", strerror(errno));
		goto out;
	}
	s.pool = pool_new(cfg, &s.id, s.ev, &ph);
	s.ctl = s.pool ? control_new(cfg, s.ev, s.pool, s.admin_gid, &ch) : NULL;
	if (!s.ctl) {
		start_fail(&s, "out of memory");
		goto out;
	}
	r = control_listen(s.ctl, err);
	if (r < 0) {
		start_fail(&s, "%s", err);
		goto out;
	}
	s.watchdog_usec = notify_watchdog_usec();
	begin_load(&s, "start-up");
	s.last_selfcheck_ms = util_now_ms();

	while (!s.stopping) {
		r = evloop_run_once(s.ev, TICK_MS);
		if (r < 0) {
			log_error("event loop: %s", strerror(-r));
			break;
		}
		control_flush(s.ctl);
		tick(&s);
	}
	if (s.started) {
		notify_send("STOPPING=1");
		log_info("scanengined stopping");
	}

out:
	if (s.start_error[0]) {
		log_error("%s", s.start_error);
		s.exit_status = 1;
	}
	if (s.pool)
		pool_shutdown(s.pool);
	if (s.ctl)
		control_close(s.ctl);
	control_free(s.ctl);
	pool_free(s.pool);
	if (s.sigfd >= 0) {
		evloop_del(s.ev, &s.sigev);
		util_close(&s.sigfd);
	}
	evloop_free(s.ev);
	unlock_pidfile(&s);
	/* Only now, with nothing left behind, may the waiting parent exit. */
	if (s.start_error[0] && s.ready_fd >= 0) {
		char line[600];

		snprintf(line, sizeof(line), "ERR %s", s.start_error);
		report_start(&s, line);
	}
	util_close(&s.ready_fd);
	if (s.started && !s.exit_status)
		log_info("scanengined stopped");
	return s.exit_status;
}
