/* supervisor: the root process of scanengined (see supervisor.h). */
#include "scanengine/supervisor.h"
#include "common/evloop.h"
#include "common/log.h"
#include "common/notify.h"
#include "common/util.h"
#include "sandbox/memlimit.h"
#include "sandbox/sandbox.h"
#include "scanengine/control.h"
#include "scanengine/faults.h"
#include "scanengine/health.h"
#include "scanengine/loader.h"
#include "scanengine/updates.h"
#include "fanotify/onaccess.h"
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
	struct faults *faults;
	struct loader *loader;
	struct updates *updates;
	struct onaccess *oa;
	struct memlimit *mem;
	bool engine_user_valid; /* the identity the running engine was started with */
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
	uint64_t last_tick_ms, last_health_ms, last_watchdog_ms, watchdog_usec;
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
	/* Workers write scratch files here as the scan user (or, degraded, as
	 * root without capabilities), nobody else. */
	if (chown(cfg->temp_dir, s->id.valid ? s->id.uid : 0, s->id.valid ? s->id.gid : 0) < 0)
		return start_fail(s, "TemporaryDirectory %s: cannot give it to %s: %s",
				  cfg->temp_dir, s->id.valid ? s->id.name : "root",
				  strerror(errno));
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

/* Mark the service started: the socket accepts, the waiting parent and
 * systemd are told. With an engine up, or in a degraded state that the
 * faults describe (fault 7: no engine could be brought up). */
static void service_started(struct supervisor *s, const char *warning)
{
	char line[600];

	if (s->started)
		return;
	s->started = true;
	control_start(s->ctl);
	if (warning) {
		snprintf(line, sizeof(line), "OK %.590s", warning);
		report_start(s, line);
		log_error("scanengined %s started DEGRADED on %s: %s", SCANENGINE_VERSION,
			  s->cfg->local_socket, warning);
	} else {
		report_start(s, "OK");
	}
}

/* TemporaryDirectory belongs to the account the next engine runs as: the
 * scan account (it may have been recreated with another uid), or root when
 * it is gone (a degraded root engine has no capabilities, so it could not
 * write into the scan account's 0700 directory). */
static void prepare_tempdir(struct supervisor *s)
{
	uid_t uid = s->id.valid ? s->id.uid : 0;
	gid_t gid = s->id.valid ? s->id.gid : 0;
	struct stat st;

	if (util_mkdir_p(s->cfg->temp_dir, 0700) < 0 || stat(s->cfg->temp_dir, &st) < 0)
		return;
	if ((st.st_uid != uid || st.st_gid != gid) && chown(s->cfg->temp_dir, uid, gid) < 0)
		log_error("TemporaryDirectory %s: cannot give it to uid %u: %s", s->cfg->temp_dir,
			  (unsigned int)uid, strerror(errno));
}

static void reload(struct supervisor *s, const char *why)
{
	s->engine_user_valid = s->id.valid;
	prepare_tempdir(s);
	loader_reload(s->loader, why);
}

static void on_engine_ready(void *arg, const struct msg_engine_info *info)
{
	struct supervisor *s = arg;
	char st[256];

	loader_engine_ready(s->loader, info);
	oa_definitions_changed(s->oa);
	snprintf(st, sizeof(st), "READY=1\nSTATUS=%u signatures, database version %u", info->sigs,
		 info->db_version);
	if (!s->started) {
		service_started(s, NULL);
		log_info("scanengined %s ready on %s (libclamav %s, %u workers)",
			 SCANENGINE_VERSION, s->cfg->local_socket, info->version,
			 s->cfg->max_threads);
	} else {
		s->reloads++;
	}
	notify_send(st);
}

static void on_engine_failed(void *arg, enum load_failure cls, const char *why, const char *dir)
{
	struct supervisor *s = arg;

	loader_engine_failed(s->loader, cls, why, dir);
	/* Up without an engine: clients are told why (fault 7) instead of
	 * finding no socket; a rollback or retry may still bring one. */
	if (!s->started && !pool_loading(s->pool)) {
		char warning[600];

		snprintf(warning, sizeof(warning), "fault 7 (scan service failed to start): %s",
			 why);
		service_started(s, warning);
		notify_send("READY=1\nSTATUS=fault 7: no engine");
	}
}

/* RELOAD re-reads MemoryLimit, so an operator can lift or raise it for the
 * next load attempt; other settings need a restart. */
static void reread_memory_limit(struct supervisor *s)
{
	struct config fresh = {0};
	char err[CONFIG_ERR_MAX], merr[256];

	if (!s->cfg->path || config_load(&fresh, s->cfg->path, err) < 0)
		return;
	if (fresh.memory_limit != s->cfg->memory_limit) {
		log_info("MemoryLimit changed from %llu to %llu bytes",
			 (unsigned long long)s->cfg->memory_limit,
			 (unsigned long long)fresh.memory_limit);
		s->cfg->memory_limit = fresh.memory_limit;
		if (s->mem) {
			/* lifted: effectively unlimited for what is running */
			memlimit_set(s->mem,
				     fresh.memory_limit ? fresh.memory_limit : (1ULL << 62));
		} else if (fresh.memory_limit) {
			char name[64];

			snprintf(name, sizeof(name), "scanengine-%d", (int)getpid());
			s->mem = memlimit_new(fresh.memory_limit, name, -1, merr);
			if (!s->mem)
				log_error("MemoryLimit: %s", merr);
			pool_set_memlimit(s->pool, s->mem);
			loader_set_memlimit(s->loader, s->mem);
		}
	}
	config_free(&fresh);
}

static void hook_reload(void *arg)
{
	struct supervisor *s = arg;

	reread_memory_limit(s);
	health_check(s->cfg, &s->id, s->faults);
	oa_reload(s->oa);
	reload(s, "RELOAD requested");
}

static struct json_object *hook_faults(void *arg, bool history)
{
	struct supervisor *s = arg;

	return history ? faults_history_json(s->faults, 200) : faults_active_json(s->faults);
}

static void hook_stats_lines(void *arg, char *buf, size_t len)
{
	struct supervisor *s = arg;

	oa_stats_text(s->oa, buf, len);
}

static int hook_update(void *arg, void (*done)(void *ctx, const char *report), void *ctx)
{
	struct supervisor *s = arg;

	return s->updates ? updates_run_now(s->updates, done, ctx) : -ENOENT;
}

static size_t hook_reset_poison(void *arg)
{
	struct supervisor *s = arg;
	size_t n = pool_reset_poison(s->pool);
	struct json_object *d = json_object_new_object();

	json_object_object_add(d, "files", json_object_new_int64((int64_t)n));
	faults_event(s->faults, "poison_lifted", "operator reset (scanctl faults --reset-poison)",
		     d);
	log_info("poisoned files reset by the operator: %zu", n);
	return n;
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
	{
		int ids[16];
		size_t n = faults_active_ids(s->faults, ids, SE_ARRAY_SIZE(ids));
		struct json_object *fa = json_object_new_array();

		for (size_t i = 0; i < n; i++)
			json_object_array_add(fa, json_object_new_int(ids[i]));
		json_object_object_add(o, "faults", fa);
	}
	if (s->mem) {
		json_object_object_add(o, "memory_limit_bytes",
				       json_object_new_int64((int64_t)memlimit_bytes(s->mem)));
		json_object_object_add(o, "memory_used_bytes",
				       json_object_new_int64((int64_t)memlimit_usage(s->mem)));
		json_object_object_add(
			o, "memory_limit_mechanism",
			json_object_new_string(memlimit_kind_name(memlimit_kind(s->mem))));
		json_object_object_add(o, "memory_cgroup",
				       json_object_new_string(memlimit_path(s->mem)));
	}
	loader_status(s->loader, o);
	if (s->updates)
		updates_status(s->updates, o);
	if (s->oa)
		oa_status(s->oa, o);
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
			reload(s, "SIGUSR2");
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
	loader_tick(s->loader);
	updates_tick(s->updates);
	oa_tick(s->oa);
	/* Nothing to load at all (the only definitions were refused): up,
	 * degraded, saying why (fault 7). */
	if (!s->started && !pool_loading(s->pool) && !loader_busy(s->loader) &&
	    loader_start_failure(s->loader)) {
		char warning[700];

		snprintf(warning, sizeof(warning), "fault 7 (scan service failed to start): %.600s",
			 loader_start_failure(s->loader));
		service_started(s, warning);
		notify_send("READY=1\nSTATUS=fault 7: no engine");
	}
	if (now - s->last_health_ms >= s->cfg->health_check_interval * 1000ULL) {
		s->last_health_ms = now;
		health_check(s->cfg, &s->id, s->faults);
		/* the engine runs as the account that existed when it started */
		if (s->id.valid != s->engine_user_valid)
			reload(s, s->id.valid ? "scan user is back" : "scan user is gone");
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

	s->engine_user_valid = s->id.valid;
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
	struct control_hooks ch = {.arg = &s,
				   .reload = hook_reload,
				   .shutdown = hook_shutdown,
				   .status = hook_status,
				   .faults = hook_faults,
				   .reset_poison = hook_reset_poison,
				   .update = hook_update,
				   .stats_lines = hook_stats_lines};
	struct faults_options fo = {0};
	char state_file[4200];
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
	snprintf(state_file, sizeof(state_file), "%s/faults.json", cfg->state_dir);
	fo.state_file = state_file;
	fo.event_log = cfg->fault_event_log;
	fo.to_syslog = cfg->log_syslog;
	s.faults = faults_open(&fo, err);
	if (!s.faults) {
		start_fail(&s, "faults: %s", err);
		goto out;
	}
	if (err[0])
		log_warn("faults: %s", err);
	if (cfg->memory_limit) {
		char name[64];

		snprintf(name, sizeof(name), "scanengine-%d", (int)getpid());
		s.mem = memlimit_new(cfg->memory_limit, name, -1, err);
		if (!s.mem) {
			start_fail(&s, "MemoryLimit: %s", err);
			goto out;
		}
		log_info("MemoryLimit %llu bytes for the engine processes (%s)",
			 (unsigned long long)cfg->memory_limit,
			 memlimit_kind_name(memlimit_kind(s.mem)));
	}
	s.pool = pool_new(cfg, &s.id, s.ev, &ph);
	s.ctl = s.pool ? control_new(cfg, s.ev, s.pool, s.admin_gid, &ch) : NULL;
	if (!s.ctl) {
		start_fail(&s, "out of memory");
		goto out;
	}
	pool_set_faults(s.pool, s.faults);
	pool_set_memlimit(s.pool, s.mem);
	r = control_listen(s.ctl, err);
	if (r < 0) {
		start_fail(&s, "%s", err);
		goto out;
	}
	s.loader = loader_new(cfg, &s.id, s.pool, s.faults, err);
	if (!s.loader) {
		start_fail(&s, "%s", err);
		goto out;
	}
	loader_set_memlimit(s.loader, s.mem);
	s.updates = updates_new(cfg, &s.id, s.loader, s.pool, s.faults, err);
	if (!s.updates) {
		start_fail(&s, "%s", err);
		goto out;
	}
	health_check(cfg, &s.id, s.faults);
	s.engine_user_valid = s.id.valid;
	s.last_health_ms = util_now_ms();
	s.watchdog_usec = notify_watchdog_usec();
	r = loader_start(s.loader, err);
	if (r < 0) {
		start_fail(&s, "%s", err);
		goto out;
	}
	s.oa = oa_new(cfg, &s.id, s.ev, s.pool, s.faults, err);
	if (!s.oa) {
		start_fail(&s, "%s", err);
		goto out;
	}
	oa_start(s.oa); /* a failure is fault 8, not a reason to stop */

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
	/* first, before waiting on anything: no opener may wait on a
	 * service that is going away */
	oa_close(s.oa);
	if (s.pool)
		pool_shutdown(s.pool);
	oa_free(s.oa);
	updates_free(s.updates);
	if (s.ctl)
		control_close(s.ctl);
	control_free(s.ctl);
	loader_free(s.loader);
	pool_free(s.pool);
	memlimit_free(s.mem);
	faults_close(s.faults);
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
