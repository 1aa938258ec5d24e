/* pool: the supervisor's side of the engine processes (see pool.h). */
#include "scanengine/pool.h"
#include "common/ipc.h"
#include "common/log.h"
#include "common/util.h"
#include "sandbox/memlimit.h"
#include "scanengine/crashlog.h"
#include "scanengine/faults.h"
#include "scanengine/poison.h"
#include "scanengine/zygote.h"

#include <errno.h>
#include <json-c/json.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* A job is tried on at most this many workers: the first death may be bad
 * luck (a worker killed from outside), the second says the file kills it. */
#define JOB_MAX_ATTEMPTS 2
#define SPAWN_TIMEOUT_MS 30000
#define UNKNOWN_DEATHS	 16
#define RECENT_CRASHES	 8	      /* kept for fault 6's detail */
#define POISON_MAX	 1024	      /* files tracked for poisoning */
#define POISON_HASH_MAX	 (1ULL << 30) /* larger files are matched by identity only */

enum gen_state {
	GEN_LOADING,
	GEN_ACTIVE,
	GEN_DRAINING,
	GEN_DEAD,
};

static const char *const gen_state_names[] = {
	[GEN_LOADING] = "loading",
	[GEN_ACTIVE] = "active",
	[GEN_DRAINING] = "draining",
	[GEN_DEAD] = "dead",
};

enum worker_state {
	WK_EMPTY,    /* no process; waiting for its (throttled) spawn */
	WK_SPAWNING, /* asked the zygote; waiting for its pid and READY */
	WK_IDLE,
	WK_BUSY,
	WK_DYING, /* killed or retired; waiting to reap it */
};

static const char *const worker_state_names[] = {
	[WK_EMPTY] = "empty", [WK_SPAWNING] = "spawning", [WK_IDLE] = "idle",
	[WK_BUSY] = "busy",   [WK_DYING] = "dying",
};

struct generation;

struct worker {
	struct generation *gen;
	unsigned int slot;
	enum worker_state state;
	pid_t pid;	/* 0 until the zygote reported it */
	bool ready;	/* the worker said READY (sandbox entered) */
	bool retiring;	/* we asked it to exit: its death is no crash */
	bool timed_out; /* we killed it for MaxScanTime */
	int sock;
	struct ev_handler ev;
	struct job *job;
	uint64_t spawn_ms;
	uint64_t prev_death_ms; /* when the slot's previous process died */
	pid_t prev_pid;
};

struct generation {
	struct pool *pool;
	unsigned int id;
	char *dir;	     /* definitions it loads */
	uint64_t oom_before; /* OOM kills in the memory cgroup when it started */
	enum gen_state state;
	pid_t zpid;
	int zsock;
	struct ev_handler zev;
	bool zygote_exited;
	struct msg_engine_info info;
	uint64_t start_ms;
	unsigned int nworkers;
	struct worker *workers;
	struct generation *next;
};

struct pool {
	const struct config *cfg;
	const struct sandbox_identity *id;
	struct evloop *ev;
	struct pool_hooks hooks;
	struct faults *faults; /* may be NULL (tests, fuzzers) */
	struct memlimit *mem;  /* may be NULL: no MemoryLimit */
	char unavailable[256]; /* why jobs fail while no engine is up */

	/* fault 6: crashes of workers and engines */
	struct crashlog crashes;
	struct {
		uint64_t ms;
		char how[64];
		char file[256];
	} recent[RECENT_CRASHES];
	unsigned int nrecent;
	struct poison *poison;
	uint64_t created_ms;

	/* one engine at a time: the next load waits for the old engine to be
	 * gone; jobs queue meanwhile */
	char *pending_dir;
	bool switching;

	struct generation *gens; /* newest first */
	struct generation *active;
	unsigned int next_gen;

	struct job *qhead, *qtail;
	unsigned int queued;
	uint64_t next_job_id;
	uint64_t last_respawn_ms;
	bool shutting_down;

	struct {
		pid_t pid;
		int status;
	} unknown[UNKNOWN_DEATHS];
	unsigned int nunknown;

	struct {
		uint64_t jobs, clean, found, errors, crashes, timeouts, retries, respawns;
		uint64_t engine_loads, load_failures, poison_refused;
	} st;
	char last_load_error[512];
};

static void worker_kill(struct worker *w, const char *why);
static void pool_dispatch(struct pool *p);
static void fail_queued(struct pool *p, const char *why);
static void start_pending(struct pool *p);

/* ---- job queue ------------------------------------------------------- */

static void queue_push(struct pool *p, struct job *j, bool front)
{
	j->prev = j->next = NULL;
	if (!p->qhead) {
		p->qhead = p->qtail = j;
	} else if (front) {
		j->next = p->qhead;
		p->qhead->prev = j;
		p->qhead = j;
	} else {
		j->prev = p->qtail;
		p->qtail->next = j;
		p->qtail = j;
	}
	p->queued++;
}

static void queue_remove(struct pool *p, struct job *j)
{
	if (j->prev)
		j->prev->next = j->next;
	else
		p->qhead = j->next;
	if (j->next)
		j->next->prev = j->prev;
	else
		p->qtail = j->prev;
	j->prev = j->next = NULL;
	p->queued--;
}

static void job_finish(struct pool *p, struct job *j, const struct job_result *r)
{
	int fd = j->fd;

	switch (r->verdict) {
	case VERDICT_CLEAN:
		p->st.clean++;
		break;
	case VERDICT_VIRUS:
		p->st.found++;
		break;
	default:
		p->st.errors++;
		break;
	}
	j->worker = NULL;
	j->done(j, r); /* may free j */
	if (fd >= 0)
		close(fd);
}

static void job_fail(struct pool *p, struct job *j, const char *why)
{
	struct job_result r = {.verdict = VERDICT_ERROR, .error = why};

	job_finish(p, j, &r);
}

/* ---- generations and zygotes ------------------------------------------ */

static struct worker *find_worker(struct pool *p, pid_t pid)
{
	for (struct generation *g = p->gens; g; g = g->next)
		for (unsigned int i = 0; i < g->nworkers; i++)
			if (g->workers[i].pid == pid && g->workers[i].state != WK_EMPTY)
				return &g->workers[i];
	return NULL;
}

static void zygote_close(struct generation *g)
{
	if (g->zsock >= 0) {
		evloop_del(g->pool->ev, &g->zev);
		util_close(&g->zsock);
	}
}

static bool gen_has_workers(const struct generation *g)
{
	for (unsigned int i = 0; i < g->nworkers; i++)
		if (g->workers[i].state != WK_EMPTY)
			return true;
	return false;
}

/* Free generations that have nothing left running. */
static void gens_collect(struct pool *p)
{
	struct generation **pp = &p->gens;

	while (*pp) {
		struct generation *g = *pp;

		if ((g->state == GEN_DEAD || g->state == GEN_DRAINING) && g->zygote_exited &&
		    !gen_has_workers(g)) {
			if (g->state == GEN_DRAINING)
				log_info("engine %u retired", g->id);
			zygote_close(g);
			*pp = g->next;
			free(g->workers);
			free(g->dir);
			free(g);
			continue;
		}
		pp = &g->next;
	}
	start_pending(p);
}

/* Workers make their scratch directories under TemporaryDirectory as the
 * scan user; if someone removed it, bring it back rather than let every
 * new worker fail. */
static void ensure_tempdir(struct pool *p)
{
	struct stat st;

	if (stat(p->cfg->temp_dir, &st) == 0)
		return;
	log_warn("TemporaryDirectory %s disappeared; recreating it", p->cfg->temp_dir);
	if (util_mkdir_p(p->cfg->temp_dir, 0700) < 0 ||
	    (p->id && p->id->valid && chown(p->cfg->temp_dir, p->id->uid, p->id->gid) < 0))
		log_error("cannot recreate TemporaryDirectory %s: %s", p->cfg->temp_dir,
			  strerror(errno));
}

static void worker_spawn(struct worker *w)
{
	struct generation *g = w->gen;
	struct pool *p = g->pool;
	int sv[2], r;

	if (g->zsock < 0 || g->zygote_exited)
		return;
	ensure_tempdir(p);
	r = ipc_pair(sv);
	if (r < 0) {
		log_error("cannot create a worker socket: %s", strerror(-r));
		return;
	}
	r = ipc_send(g->zsock, MSG_ZY_SPAWN, w->slot, NULL, 0, sv[1]);
	close(sv[1]);
	if (r < 0) {
		log_error("cannot ask the engine for a worker: %s", strerror(-r));
		close(sv[0]);
		return;
	}
	util_set_nonblock(sv[0], true);
	w->sock = sv[0];
	w->ev.fd = sv[0];
	w->state = WK_SPAWNING;
	w->pid = 0;
	w->ready = w->retiring = w->timed_out = false;
	w->spawn_ms = util_now_ms();
	if (w->prev_death_ms) {
		p->last_respawn_ms = w->spawn_ms;
		p->st.respawns++;
	}
	evloop_add(p->ev, &w->ev, EPOLLIN);
}

/* Retire generation g: idle workers exit now (EOF on their socket), busy
 * ones after their job; the zygote exits on EOF too. */
static bool gen_spawning(const struct generation *g)
{
	for (unsigned int i = 0; i < g->nworkers; i++)
		if (g->workers[i].state == WK_SPAWNING ||
		    (g->workers[i].state == WK_DYING && g->workers[i].pid <= 0))
			return true;
	return false;
}

/* A draining generation lets its zygote go (EOF: it exits) once the zygote
 * has told us the pid of every worker it forked: a worker whose pid we never
 * learn could never be reaped as ours, and its generation never retired. */
static void gen_release_zygote(struct generation *g)
{
	if (g->state == GEN_DRAINING && g->zsock >= 0 && !gen_spawning(g))
		zygote_close(g);
}

static void gen_retire(struct generation *g)
{
	g->state = GEN_DRAINING;
	for (unsigned int i = 0; i < g->nworkers; i++) {
		struct worker *w = &g->workers[i];

		/* a spawning worker is killed once it is ready (worker_ready) */
		if (w->state == WK_IDLE)
			worker_kill(w, NULL);
	}
	gen_release_zygote(g);
}

static void gen_activate(struct generation *g)
{
	struct pool *p = g->pool;
	struct generation *old = p->active;

	g->state = GEN_ACTIVE;
	p->active = g;
	p->switching = false;
	p->st.engine_loads++;
	p->last_load_error[0] = '\0';
	log_info("definitions loaded: %u signatures, version %u, in %u ms (engine pid %d, %llu "
		 "KiB); engine %u active",
		 g->info.sigs, g->info.db_version, g->info.load_ms, (int)g->zpid,
		 (unsigned long long)g->info.rss_kb, g->id);
	if (old) {
		size_t lifted = p->poison ? poison_reset(p->poison) : 0;

		/* poisoned files get another chance with other definitions */
		if (lifted && p->faults) {
			struct json_object *d = json_object_new_object();

			json_object_object_add(d, "files", json_object_new_int64((int64_t)lifted));
			faults_event(p->faults, "poison_lifted", "new definitions loaded", d);
		}
		gen_retire(old);
	}
	for (unsigned int i = 0; i < g->nworkers; i++)
		worker_spawn(&g->workers[i]);
	if (p->hooks.engine_ready)
		p->hooks.engine_ready(p->hooks.arg, &g->info);
}

static void gen_failed(struct generation *g, enum load_failure cls, const char *why)
{
	struct pool *p = g->pool;

	if (g->state != GEN_LOADING)
		return;
	g->state = GEN_DEAD;
	p->st.load_failures++;
	util_strlcpy(p->last_load_error, why, sizeof(p->last_load_error));
	zygote_close(g);
	if (g->zpid > 0 && !g->zygote_exited)
		kill(g->zpid, SIGKILL);
	log_error("definitions not loaded: %s%s", why,
		  p->active ? "; the previous definitions stay active" : "");
	if (p->hooks.engine_failed)
		p->hooks.engine_failed(p->hooks.arg, cls, why, g->dir);
	/* jobs that waited for an engine that will not come */
	if (!p->active && !pool_loading(p)) {
		p->switching = false;
		fail_queued(p, p->unavailable[0] ? p->unavailable : "No definitions loaded");
	}
}

static int on_zy_ready(void *ctx, struct ipc_msg *m)
{
	struct generation *g = ctx;

	if (g->state != GEN_LOADING)
		return -EPROTO;
	memcpy(&g->info, m->payload, sizeof(g->info));
	g->info.version[sizeof(g->info.version) - 1] = '\0';
	gen_activate(g);
	return 0;
}

static int on_zy_failed(void *ctx, struct ipc_msg *m)
{
	struct msg_load_failed lf;

	memcpy(&lf, m->payload, sizeof(lf));
	lf.text[sizeof(lf.text) - 1] = '\0';
	if (lf.cls != LOAD_FAIL_DEFS && lf.cls != LOAD_FAIL_MEMORY)
		lf.cls = LOAD_FAIL_OTHER;
	gen_failed(ctx, (enum load_failure)lf.cls, lf.text);
	return 0;
}

static void worker_death(struct worker *w, int status);
static void worker_ready(struct worker *w);

static int on_zy_spawned(void *ctx, struct ipc_msg *m)
{
	struct generation *g = ctx;
	struct pool *p = g->pool;
	struct msg_spawned sp;
	struct worker *w;

	memcpy(&sp, m->payload, sizeof(sp));
	if (m->hdr.id >= g->nworkers)
		return -EPROTO;
	w = &g->workers[m->hdr.id];
	if (w->state != WK_SPAWNING && w->state != WK_DYING)
		return 0; /* a retired slot: the worker exits on EOF */
	if (sp.pid <= 0) {
		/* no process was made: the slot is simply free again */
		log_error("engine could not fork worker %u", w->slot);
		worker_kill(w, NULL);
		w->state = WK_EMPTY;
		goto out;
	}
	w->pid = sp.pid;
	/* The worker may already have died and been reaped as unknown. */
	for (unsigned int i = 0; i < p->nunknown; i++) {
		if (p->unknown[i].pid == sp.pid) {
			int st = p->unknown[i].status;

			p->unknown[i] = p->unknown[--p->nunknown];
			worker_death(w, st);
			goto out;
		}
	}
	if (w->state == WK_DYING)
		kill(w->pid, SIGKILL);
	else
		worker_ready(w);
out:
	gen_release_zygote(g);
	return 0;
}

static int on_child_log(const char *who, struct ipc_msg *m)
{
	struct msg_log *lm = (struct msg_log *)(void *)m->payload;
	lm->text[sizeof(lm->text) - 1] = '\0';
	m->payload[m->hdr.len - 1] = '\0';
	if (lm->level > LOG_LVL_DEBUG)
		lm->level = LOG_LVL_DEBUG;
	log_msg((enum log_level)lm->level, "%s: %s", who, lm->text);
	return 0;
}

static int on_zy_log(void *ctx, struct ipc_msg *m)
{
	(void)ctx;
	return on_child_log("engine", m);
}

static const struct ipc_handler zygote_handlers[] = {
	{MSG_ZY_READY, sizeof(struct msg_engine_info), sizeof(struct msg_engine_info), IPC_FD_NONE,
	 0, on_zy_ready},
	{MSG_ZY_FAILED, sizeof(struct msg_load_failed), sizeof(struct msg_load_failed), IPC_FD_NONE,
	 0, on_zy_failed},
	{MSG_ZY_SPAWNED, sizeof(struct msg_spawned), sizeof(struct msg_spawned), IPC_FD_NONE, 0,
	 on_zy_spawned},
	{MSG_ZY_LOG, offsetof(struct msg_log, text) + 1, sizeof(struct msg_log), IPC_FD_NONE, 0,
	 on_zy_log},
};

static void zygote_event(struct ev_handler *h, uint32_t revents)
{
	struct generation *g = container_of(h, struct generation, zev);
	static struct ipc_msg msg;

	(void)revents;
	for (;;) {
		int r = ipc_recv(g->zsock, &msg);

		if (r == -EAGAIN)
			return;
		if (r <= 0) {
			/* EOF or garbage: the zygote is gone or broken. Its
			 * exit status arrives through pool_reap. */
			if (r < 0)
				log_error("engine process %d sent a malformed message",
					  (int)g->zpid);
			zygote_close(g);
			if (!g->zygote_exited)
				kill(g->zpid, SIGKILL);
			return;
		}
		if (ipc_dispatch(zygote_handlers, SE_ARRAY_SIZE(zygote_handlers), g, &msg) < 0) {
			log_error("engine process %d sent an unexpected message 0x%x", (int)g->zpid,
				  msg.hdr.type);
			zygote_close(g);
			kill(g->zpid, SIGKILL);
			return;
		}
		if (g->zsock < 0)
			return;
	}
}

static void worker_event(struct ev_handler *h, uint32_t revents);

static int gen_start(struct pool *p, const char *dir)
{
	struct generation *g;
	int sv[2], r;
	pid_t pid;

	g = calloc(1, sizeof(*g));
	if (!g)
		return -ENOMEM;
	g->nworkers = p->cfg->max_threads;
	g->workers = calloc(g->nworkers, sizeof(*g->workers));
	if (!g->workers) {
		free(g);
		return -ENOMEM;
	}
	g->dir = strdup(dir);
	if (!g->dir) {
		free(g->workers);
		free(g);
		return -ENOMEM;
	}
	g->pool = p;
	g->id = ++p->next_gen;
	g->zsock = -1;
	g->oom_before = p->mem ? memlimit_oom_kills(p->mem) : 0;
	for (unsigned int i = 0; i < g->nworkers; i++) {
		struct worker *w = &g->workers[i];

		w->gen = g;
		w->slot = i;
		w->sock = -1;
		w->ev.fd = -1;
		w->ev.cb = worker_event;
	}
	r = ipc_pair(sv);
	if (r < 0)
		goto err_free;
	pid = fork();
	if (pid < 0) {
		r = -errno;
		close(sv[0]);
		close(sv[1]);
		goto err_free;
	}
	if (pid == 0) {
		int keep[] = {sv[1]};

		/* The supervisor blocks signals for its signalfd and ignores
		 * SIGPIPE; the engine starts from defaults. */
		util_reset_signals();
		log_close();
		util_close_fds_except(keep, 1);
		/* the engine and its workers, not the supervisor, live under
		 * MemoryLimit; joined while still root */
		if (p->mem && memlimit_enter(p->mem) < 0)
			_exit(1);
		zygote_main(p->cfg, p->id, g->dir, sv[1]);
	}
	close(sv[1]);
	util_set_nonblock(sv[0], true);
	g->zpid = pid;
	g->zsock = sv[0];
	g->zev.fd = sv[0];
	g->zev.cb = zygote_event;
	g->start_ms = util_now_ms();
	g->state = GEN_LOADING;
	g->next = p->gens;
	p->gens = g;
	evloop_add(p->ev, &g->zev, EPOLLIN);
	log_info("loading definitions from %s (engine %u, pid %d)", g->dir, g->id, (int)pid);
	return 0;

err_free:
	free(g->workers);
	free(g->dir);
	free(g);
	return r;
}

static void fail_queued(struct pool *p, const char *why)
{
	while (p->qhead) {
		struct job *j = p->qhead;

		queue_remove(p, j);
		job_fail(p, j, why);
	}
}

/* A load waiting for the previous engine to be gone starts once nothing of
 * it is left (its zygote and workers hold the engine's memory). */
static void start_pending(struct pool *p)
{
	char *dir = p->pending_dir;
	int r;

	if (!dir)
		return;
	for (struct generation *g = p->gens; g; g = g->next)
		if (!g->zygote_exited || gen_has_workers(g))
			return;
	p->pending_dir = NULL;
	r = gen_start(p, dir);
	if (r < 0) {
		log_error("cannot start the engine for %s: %s", dir, strerror(-r));
		p->switching = false;
		fail_queued(p, p->unavailable[0] ? p->unavailable : "No definitions loaded");
	}
	free(dir);
}

int pool_load(struct pool *p, const char *dir, bool exclusive)
{
	struct generation *old = p->active;

	if (pool_loading(p))
		return -EBUSY;
	if (!exclusive || !old)
		return gen_start(p, dir);
	p->pending_dir = strdup(dir);
	if (!p->pending_dir)
		return -ENOMEM;
	/* Jobs arriving now wait in the queue (MaxQueue bounds it) instead of
	 * failing: an engine is on its way. */
	p->switching = true;
	p->active = NULL;
	log_info("retiring engine %u before loading %s (one engine at a time)", old->id, dir);
	gen_retire(old);
	start_pending(p);
	return 0;
}

/* ---- workers ----------------------------------------------------------- */

static void worker_kill(struct worker *w, const char *why)
{
	if (w->state == WK_EMPTY || w->state == WK_DYING)
		return;
	if (!why)
		w->retiring = true;
	else
		log_warn("killing worker %d: %s", (int)w->pid, why);
	evloop_del(w->gen->pool->ev, &w->ev);
	util_close(&w->sock); /* EOF tells a healthy worker to exit */
	if (why && w->pid > 0)
		kill(w->pid, SIGKILL);
	w->state = WK_DYING;
}

static void describe_status(int status, char *buf, size_t len)
{
	if (WIFSIGNALED(status))
		snprintf(buf, len, "killed by signal %d (%s)", WTERMSIG(status),
			 strsignal(WTERMSIG(status)));
	else if (WIFEXITED(status))
		snprintf(buf, len, "exited with status %d", WEXITSTATUS(status));
	else
		snprintf(buf, len, "ended (status 0x%x)", status);
}

static int status_signal(int status)
{
	return WIFSIGNALED(status) ? WTERMSIG(status) : 0;
}

/* A worker or engine death nobody asked for: count it towards fault 6,
 * and blame the file in flight (poison). */
static void note_crash(struct pool *p, const char *how, int sig, struct job *j)
{
	uint64_t now = util_now_ms();
	unsigned int n = crashlog_add(&p->crashes, now);
	unsigned int slot = p->nrecent++ % RECENT_CRASHES;

	p->recent[slot].ms = now;
	util_strlcpy(p->recent[slot].how, how, sizeof(p->recent[slot].how));
	util_strlcpy(p->recent[slot].file, j && j->label ? j->label : "",
		     sizeof(p->recent[slot].file));
	if (j && p->poison && j->fd >= 0) {
		struct poison_file pf;
		struct stat st;

		if (fstat(j->fd, &st) == 0) {
			poison_file_from_stat(&pf, &st);
			/* content, so that a copy or a stream of it is known too */
			pf.have_sha256 = poison_sha256_fd(j->fd, POISON_HASH_MAX, pf.sha256) == 0;
			if (poison_record_crash(p->poison, &pf, j->label ? j->label : "?", sig,
						now) == 1) {
				log_error(
					"%s crashed the scanner %u times: no longer scanned with these "
					"definitions (Scanner.Crashed)",
					j->label ? j->label : "?", p->cfg->poison_threshold);
				if (p->faults) {
					struct json_object *d = json_object_new_object();

					json_object_object_add(
						d, "path",
						json_object_new_string(j->label ? j->label : ""));
					json_object_object_add(
						d, "size",
						json_object_new_int64((int64_t)st.st_size));
					json_object_object_add(
						d, "crashes",
						json_object_new_int((int)p->cfg->poison_threshold));
					json_object_object_add(d, "signal",
							       json_object_new_int(sig));
					faults_event(
						p->faults, "poisoned",
						"file crashes the scanner; requests for it are answered "
						"Scanner.Crashed",
						d);
				}
			}
		}
	}
	if (p->faults && crashlog_looping(&p->crashes, now)) {
		struct json_object *d = json_object_new_object();
		struct json_object *sigs = json_object_new_array();
		struct json_object *files = json_object_new_array();
		unsigned int have = SE_MIN(p->nrecent, RECENT_CRASHES);
		char reason[160];

		for (unsigned int i = 0; i < have; i++) {
			unsigned int k = (p->nrecent - have + i) % RECENT_CRASHES;

			if (now - p->recent[k].ms >= p->crashes.window_ms)
				continue;
			json_object_array_add(sigs, json_object_new_string(p->recent[k].how));
			if (p->recent[k].file[0])
				json_object_array_add(files,
						      json_object_new_string(p->recent[k].file));
		}
		json_object_object_add(d, "crashes", json_object_new_int((int)n));
		json_object_object_add(d, "window_seconds",
				       json_object_new_int((int)p->cfg->crash_loop_window));
		json_object_object_add(d, "deaths", sigs);
		json_object_object_add(d, "files_in_flight", files);
		json_object_object_add(d, "respawn_backoff_ms",
				       json_object_new_int64((int64_t)crashlog_backoff_ms(
					       &p->crashes, now, p->cfg->respawn_interval,
					       p->cfg->crash_backoff_max * 1000ULL)));
		snprintf(reason, sizeof(reason), "%u scanner crashes within %u s", n,
			 p->cfg->crash_loop_window);
		faults_raise(p->faults, FAULT_RESTARTS, reason, d);
	}
}

static void worker_death(struct worker *w, int status)
{
	struct generation *g = w->gen;
	struct pool *p = g->pool;
	struct job *j = w->job;
	/* the worker's own report that the failure was not the file's */
	bool tempfail = WIFEXITED(status) && WEXITSTATUS(status) == WORKER_EXIT_TEMPFAIL;
	bool crash = (!w->retiring || w->timed_out || j) && !tempfail;
	char how[96], path[4200];

	describe_status(status, how, sizeof(how));
	if (w->sock >= 0) {
		evloop_del(p->ev, &w->ev);
		util_close(&w->sock);
	}
	snprintf(path, sizeof(path), "%s/worker-%d", p->cfg->temp_dir, (int)w->pid);
	util_rm_rf(path);

	if (crash && !p->shutting_down) {
		p->st.crashes++;
		if (w->timed_out)
			p->st.timeouts++;
		log_warn("worker %d %s%s%s%s", (int)w->pid,
			 w->timed_out ? "exceeded MaxScanTime, " : "", how,
			 j ? " while scanning " : "", j ? (j->label ? j->label : "?") : "");
		note_crash(p, w->timed_out ? "MaxScanTime exceeded" : how, status_signal(status),
			   j);
	} else if (tempfail) {
		log_warn("worker %d could not go on (%s); replacing it", (int)w->pid, how);
	} else {
		log_debug("worker %d %s", (int)w->pid, how);
	}
	w->job = NULL;
	w->prev_pid = w->pid;
	w->prev_death_ms = util_now_ms();
	w->state = WK_EMPTY;
	w->pid = 0;
	gen_release_zygote(g);

	if (j) {
		j->worker = NULL;
		if (tempfail)
			j->attempts--;
		if (p->shutting_down) {
			job_fail(p, j, "Service shutting down");
		} else if (j->attempts < JOB_MAX_ATTEMPTS) {
			p->st.retries++;
			log_info("retrying %s on a fresh worker", j->label ? j->label : "job");
			queue_push(p, j, true);
		} else {
			/* the detail is in the log; clients get the name
			 * poisoned requests get too */
			job_fail(p, j,
				 w->timed_out
					 ? "Scan time limit exceeded: scanner timed out on each of "
					   "2 attempts"
					 : "Scanner.Crashed");
		}
	}
	pool_dispatch(p);
}

static int on_wk_ready(void *ctx, struct ipc_msg *m)
{
	struct worker *w = ctx;

	(void)m;
	if (w->state != WK_SPAWNING || w->ready)
		return -EPROTO;
	w->ready = true;
	worker_ready(w);
	return 0;
}

/* A worker accepts work once it said READY and the zygote told us its
 * pid (the two arrive on different sockets, in either order): a worker
 * we could not kill must never hold a job. */
static void worker_ready(struct worker *w)
{
	struct pool *p = w->gen->pool;

	if (w->state != WK_SPAWNING || !w->ready || w->pid <= 0)
		return;
	w->state = WK_IDLE;
	if (w->prev_death_ms)
		log_info("worker slot %u: replacement %d accepting work %llu ms after worker %d "
			 "died (forked from the loaded engine, no definitions reload)",
			 w->slot, (int)w->pid,
			 (unsigned long long)(util_now_ms() - w->prev_death_ms), (int)w->prev_pid);
	else
		log_debug("worker %d ready", (int)w->pid);
	if (w->gen != p->active) {
		worker_kill(w, NULL);
		gen_release_zygote(w->gen);
	}
	pool_dispatch(p);
}

static int on_wk_result(void *ctx, struct ipc_msg *m)
{
	struct worker *w = ctx;
	struct pool *p = w->gen->pool;
	struct msg_result hdr;
	struct job_result r = {0};
	const char *text = (const char *)m->payload + sizeof(hdr);
	const char *end = (const char *)m->payload + m->hdr.len;
	struct job *j = w->job;

	if (w->state != WK_BUSY || !j || m->hdr.id != j->id)
		return -EPROTO;
	memcpy(&hdr, m->payload, sizeof(hdr));
	r.verdict = (enum msg_verdict)hdr.verdict;
	r.scan_us = hdr.scan_us;
	switch (hdr.verdict) {
	case VERDICT_CLEAN:
		if (text != end)
			return -EPROTO;
		break;
	case VERDICT_VIRUS:
		if (hdr.nnames == 0 || hdr.nnames > MSG_RESULT_MAX_NAMES)
			return -EPROTO;
		for (unsigned int i = 0; i < hdr.nnames; i++) {
			const char *nul = memchr(text, '\0', (size_t)(end - text));

			if (!nul || nul == text)
				return -EPROTO;
			r.names[i] = text;
			text = nul + 1;
		}
		if (text != end)
			return -EPROTO;
		r.nnames = hdr.nnames;
		break;
	case VERDICT_ERROR:
		if (text == end || end[-1] != '\0' || memchr(text, '\0', (size_t)(end - text) - 1))
			return -EPROTO;
		r.error = text;
		break;
	default:
		return -EPROTO;
	}
	w->job = NULL;
	w->state = WK_IDLE;
	job_finish(p, j, &r);
	if (w->gen != p->active)
		worker_kill(w, NULL);
	pool_dispatch(p);
	return 0;
}

static int on_wk_log(void *ctx, struct ipc_msg *m)
{
	(void)ctx;
	return on_child_log("worker", m);
}

static const struct ipc_handler worker_handlers[] = {
	{MSG_WK_READY, sizeof(struct msg_spawned), sizeof(struct msg_spawned), IPC_FD_NONE, 0,
	 on_wk_ready},
	{MSG_WK_RESULT, sizeof(struct msg_result), IPC_MAX_PAYLOAD, IPC_FD_NONE, 0, on_wk_result},
	{MSG_WK_LOG, offsetof(struct msg_log, text) + 1, sizeof(struct msg_log), IPC_FD_NONE, 0,
	 on_wk_log},
};

static void worker_event(struct ev_handler *h, uint32_t revents)
{
	struct worker *w = container_of(h, struct worker, ev);
	static struct ipc_msg msg;

	(void)revents;
	while (w->sock >= 0) {
		int r = ipc_recv(w->sock, &msg);

		if (r == -EAGAIN)
			return;
		if (r == 0) {
			/* Usually it just died: its exit status, which says
			 * whether that was a crash, comes through pool_reap.
			 * Unless we retired it, this is no retirement. */
			bool retiring = w->retiring;

			worker_kill(w, w->state == WK_BUSY ? "closed its socket mid-scan" : NULL);
			w->retiring = retiring;
			if (w->pid > 0)
				kill(w->pid, SIGKILL);
			return;
		}
		if (r < 0 ||
		    ipc_dispatch(worker_handlers, SE_ARRAY_SIZE(worker_handlers), w, &msg) < 0) {
			worker_kill(w, "protocol violation");
			return;
		}
	}
}

static struct worker *idle_worker(struct generation *g)
{
	for (unsigned int i = 0; i < g->nworkers; i++)
		if (g->workers[i].state == WK_IDLE)
			return &g->workers[i];
	return NULL;
}

static void pool_dispatch(struct pool *p)
{
	struct generation *g = p->active;
	struct worker *w;

	while (g && p->qhead && (w = idle_worker(g))) {
		struct job *j = p->qhead;
		struct msg_scan req = {.flags = j->flags};
		int r;

		queue_remove(p, j);
		j->attempts++;
		j->start_ms = util_now_ms();
		r = ipc_send(w->sock, MSG_WK_SCAN, j->id, &req, sizeof(req), j->fd);
		if (r < 0) {
			j->attempts--;
			queue_push(p, j, true);
			worker_kill(w, "cannot send it a job");
			continue;
		}
		w->job = j;
		j->worker = w;
		w->state = WK_BUSY;
	}
}

/* ---- public ------------------------------------------------------------ */

struct pool *pool_new(const struct config *cfg, const struct sandbox_identity *id,
		      struct evloop *ev, const struct pool_hooks *hooks)
{
	struct pool *p = calloc(1, sizeof(*p));

	if (!p)
		return NULL;
	p->cfg = cfg;
	p->id = id;
	p->ev = ev;
	if (hooks)
		p->hooks = *hooks;
	p->created_ms = util_now_ms();
	crashlog_init(&p->crashes, cfg->crash_loop_threshold, cfg->crash_loop_window * 1000ULL);
	p->poison = poison_new(cfg->poison_threshold, POISON_MAX);
	if (!p->poison) {
		free(p);
		return NULL;
	}
	return p;
}

void pool_set_faults(struct pool *p, struct faults *f)
{
	p->faults = f;
}

void pool_set_memlimit(struct pool *p, struct memlimit *m)
{
	p->mem = m;
}

void pool_set_unavailable(struct pool *p, const char *why)
{
	util_strlcpy(p->unavailable, why ? why : "", sizeof(p->unavailable));
}

size_t pool_reset_poison(struct pool *p)
{
	return poison_reset(p->poison);
}

bool pool_loading(const struct pool *p)
{
	if (p->pending_dir)
		return true;
	for (const struct generation *g = p->gens; g; g = g->next)
		if (g->state == GEN_LOADING)
			return true;
	return false;
}

void pool_free(struct pool *p)
{
	if (!p)
		return;
	while (p->gens) {
		struct generation *g = p->gens;

		p->gens = g->next;
		zygote_close(g);
		for (unsigned int i = 0; i < g->nworkers; i++)
			if (g->workers[i].sock >= 0) {
				evloop_del(p->ev, &g->workers[i].ev);
				util_close(&g->workers[i].sock);
			}
		free(g->workers);
		free(g->dir);
		free(g);
	}
	poison_free(p->poison);
	free(p->pending_dir);
	free(p);
}

/* Costs an fstat per job; the content is hashed only when the size equals
 * that of a poisoned file. */
static bool is_poisoned(struct pool *p, struct job *j)
{
	struct poison_file pf;
	struct stat st;
	enum poison_verdict v;

	if (!p->poison || !poison_count(p->poison) || fstat(j->fd, &st) < 0)
		return false;
	poison_file_from_stat(&pf, &st);
	v = poison_check(p->poison, &pf);
	if (v == POISON_NEED_SHA && poison_sha256_fd(j->fd, POISON_HASH_MAX, pf.sha256) == 0) {
		pf.have_sha256 = true;
		v = poison_check(p->poison, &pf);
	}
	return v == POISON_YES;
}

void pool_submit(struct pool *p, struct job *j)
{
	j->id = ++p->next_job_id;
	j->attempts = 0;
	j->worker = NULL;
	j->submit_ms = util_now_ms();
	p->st.jobs++;
	if (p->shutting_down) {
		job_fail(p, j, "Service shutting down");
		return;
	}
	if (!p->active && !p->switching) {
		job_fail(p, j, p->unavailable[0] ? p->unavailable : "No definitions loaded");
		return;
	}
	if (is_poisoned(p, j)) {
		p->st.poison_refused++;
		log_info("%s: not scanned: it crashed the scanner before (Scanner.Crashed)",
			 j->label ? j->label : "?");
		job_fail(p, j, "Scanner.Crashed");
		return;
	}
	queue_push(p, j, false);
	pool_dispatch(p);
}

void pool_cancel(struct pool *p, struct job *j)
{
	if (j->worker)
		return;
	queue_remove(p, j);
	job_fail(p, j, "Cancelled");
}

unsigned int pool_queued(const struct pool *p)
{
	return p->queued;
}

bool pool_ready(const struct pool *p)
{
	return p->active != NULL;
}

const struct msg_engine_info *pool_engine_info(const struct pool *p)
{
	return p->active ? &p->active->info : NULL;
}

void pool_tick(struct pool *p)
{
	uint64_t now = util_now_ms();
	/* a slot is refilled WorkerRespawnInterval after its worker died,
	 * twice that per further crash in the window (respawns at least that
	 * far apart overall) */
	uint64_t interval = crashlog_backoff_ms(&p->crashes, now, p->cfg->respawn_interval,
						p->cfg->crash_backoff_max * 1000ULL);

	/* A fault carried over a restart needs a stable period of this run
	 * too: the crashes before the restart are not in the log. */
	if (p->faults && faults_is_active(p->faults, FAULT_RESTARTS) &&
	    now - p->created_ms >= p->cfg->fault_clear_stable * 1000ULL &&
	    crashlog_stable(&p->crashes, now, p->cfg->fault_clear_stable * 1000ULL)) {
		char reason[96];

		snprintf(reason, sizeof(reason), "no scanner crash for %u s",
			 p->cfg->fault_clear_stable);
		faults_clear(p->faults, FAULT_RESTARTS, reason);
	}

	for (struct generation *g = p->gens; g; g = g->next) {
		if (g->state == GEN_LOADING && now - g->start_ms > p->cfg->load_timeout * 1000ULL) {
			char why[128];

			snprintf(why, sizeof(why),
				 "loading took longer than DatabaseLoadTimeout (%u s)",
				 p->cfg->load_timeout);
			gen_failed(g, LOAD_FAIL_OTHER, why);
		}
		for (unsigned int i = 0; i < g->nworkers; i++) {
			struct worker *w = &g->workers[i];

			if (w->state == WK_BUSY && p->cfg->max_scan_time &&
			    now - w->job->start_ms > p->cfg->max_scan_time) {
				w->timed_out = true;
				worker_kill(w, "scan exceeded MaxScanTime");
			} else if (w->state == WK_SPAWNING &&
				   now - w->spawn_ms > SPAWN_TIMEOUT_MS) {
				worker_kill(w, "did not start in time");
			} else if (w->state == WK_EMPTY && g == p->active && !p->shutting_down &&
				   now - w->prev_death_ms >= interval &&
				   now - p->last_respawn_ms >= p->cfg->respawn_interval) {
				worker_spawn(w);
			}
		}
	}
}

/* The zygote of g died. While loading, say why as precisely as the
 * evidence allows: the OOM killer (its counter in our memory cgroup went
 * up), a crash on the definitions, or something else. */
static void engine_death(struct generation *g, int status)
{
	struct pool *p = g->pool;
	char how[96], why[320];
	int sig = status_signal(status);

	describe_status(status, how, sizeof(how));
	if (p->shutting_down || g->state == GEN_DRAINING || g->state == GEN_DEAD)
		return;
	note_crash(p, how, sig, NULL);
	if (g->state == GEN_LOADING) {
		uint64_t ooms = p->mem ? memlimit_oom_kills(p->mem) : 0;

		if (sig == SIGKILL && ooms > g->oom_before) {
			snprintf(why, sizeof(why),
				 "engine process killed by the OOM killer while loading %s "
				 "(MemoryLimit %llu bytes)",
				 g->dir, (unsigned long long)memlimit_bytes(p->mem));
			gen_failed(g, LOAD_FAIL_MEMORY, why);
		} else if (sig && sig != SIGKILL && sig != SIGTERM) {
			snprintf(why, sizeof(why), "engine process %s while loading %s", how,
				 g->dir);
			gen_failed(g, LOAD_FAIL_DEFS, why);
		} else {
			snprintf(why, sizeof(why), "engine process %s while loading %s", how,
				 g->dir);
			gen_failed(g, LOAD_FAIL_OTHER, why);
		}
		return;
	}
	/* Active: its workers keep scanning; a new engine brings a zygote to
	 * fork replacements from. */
	log_error("engine process %d %s; reloading", (int)g->zpid, how);
	zygote_close(g);
	pool_load(p, g->dir, false);
}

void pool_reap(struct pool *p)
{
	int status;
	pid_t pid;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		struct worker *w = find_worker(p, pid);
		struct generation *g;

		if (w) {
			worker_death(w, status);
			continue;
		}
		for (g = p->gens; g; g = g->next)
			if (g->zpid == pid)
				break;
		if (g) {
			g->zygote_exited = true;
			engine_death(g, status);
			continue;
		}
		if (p->nunknown < UNKNOWN_DEATHS) {
			p->unknown[p->nunknown].pid = pid;
			p->unknown[p->nunknown].status = status;
			p->nunknown++;
		}
	}
	gens_collect(p);
}

bool pool_claim_death(struct pool *p, pid_t pid, int *status)
{
	for (unsigned int i = 0; i < p->nunknown; i++) {
		if (p->unknown[i].pid != pid)
			continue;
		*status = p->unknown[i].status;
		p->unknown[i] = p->unknown[--p->nunknown];
		return true;
	}
	return false;
}

void pool_shutdown(struct pool *p)
{
	uint64_t deadline;

	p->shutting_down = true;
	while (p->qhead) {
		struct job *j = p->qhead;

		queue_remove(p, j);
		job_fail(p, j, "Service shutting down");
	}
	p->active = NULL;
	for (struct generation *g = p->gens; g; g = g->next) {
		g->state = GEN_DEAD;
		zygote_close(g);
		if (g->zpid > 0 && !g->zygote_exited)
			kill(g->zpid, SIGKILL);
		for (unsigned int i = 0; i < g->nworkers; i++) {
			struct worker *w = &g->workers[i];

			if (w->state == WK_EMPTY)
				continue;
			worker_kill(w, NULL);
			if (w->pid > 0)
				kill(w->pid, SIGKILL);
		}
	}
	/* Reap everything (jobs of dying workers are answered in
	 * worker_death); give up waiting after a few seconds. */
	deadline = util_now_ms() + 5000;
	while (p->gens && util_now_ms() < deadline) {
		pool_reap(p);
		if (p->gens)
			usleep(10000);
	}
}

void pool_status(const struct pool *p, struct json_object *o)
{
	struct json_object *gens = json_object_new_array();
	unsigned int alive = 0, busy = 0, idle = 0;

	for (const struct generation *g = p->gens; g; g = g->next) {
		struct json_object *jg = json_object_new_object();
		struct json_object *ws = json_object_new_array();
		struct json_object *wd = json_object_new_array();

		json_object_object_add(jg, "engine", json_object_new_int((int)g->id));
		json_object_object_add(jg, "definitions", json_object_new_string(g->dir));
		json_object_object_add(jg, "state",
				       json_object_new_string(gen_state_names[g->state]));
		json_object_object_add(jg, "engine_pid",
				       json_object_new_int(g->zygote_exited ? 0 : g->zpid));
		for (unsigned int i = 0; i < g->nworkers; i++) {
			const struct worker *w = &g->workers[i];

			if (w->state != WK_EMPTY) {
				struct json_object *jw = json_object_new_object();

				json_object_object_add(jw, "slot",
						       json_object_new_int((int)w->slot));
				json_object_object_add(jw, "pid", json_object_new_int(w->pid));
				json_object_object_add(
					jw, "state",
					json_object_new_string(worker_state_names[w->state]));
				if (w->job) {
					json_object_object_add(
						jw, "scanning",
						json_object_new_string(w->job->label ? w->job->label
										     : ""));
					json_object_object_add(
						jw, "attempt",
						json_object_new_int((int)w->job->attempts));
					json_object_object_add(
						jw, "scan_ms",
						json_object_new_int64((int64_t)(util_now_ms() -
										w->job->start_ms)));
				}
				json_object_array_add(wd, jw);
			}
			if (w->state == WK_IDLE || w->state == WK_BUSY) {
				json_object_array_add(ws, json_object_new_int(w->pid));
				if (g == p->active) {
					alive++;
					busy += w->state == WK_BUSY;
					idle += w->state == WK_IDLE;
				}
			}
		}
		json_object_object_add(jg, "worker_pids", ws);
		json_object_object_add(jg, "workers", wd);
		json_object_array_add(gens, jg);
	}
	json_object_object_add(o, "engines", gens);
	json_object_object_add(o, "workers_configured",
			       json_object_new_int((int)p->cfg->max_threads));
	json_object_object_add(o, "workers_alive", json_object_new_int((int)alive));
	json_object_object_add(o, "workers_busy", json_object_new_int((int)busy));
	json_object_object_add(o, "workers_idle", json_object_new_int((int)idle));
	json_object_object_add(o, "queue", json_object_new_int((int)p->queued));
	json_object_object_add(o, "jobs", json_object_new_int64((int64_t)p->st.jobs));
	json_object_object_add(o, "clean", json_object_new_int64((int64_t)p->st.clean));
	json_object_object_add(o, "found", json_object_new_int64((int64_t)p->st.found));
	json_object_object_add(o, "errors", json_object_new_int64((int64_t)p->st.errors));
	json_object_object_add(o, "worker_crashes", json_object_new_int64((int64_t)p->st.crashes));
	json_object_object_add(o, "worker_timeouts",
			       json_object_new_int64((int64_t)p->st.timeouts));
	json_object_object_add(o, "retries", json_object_new_int64((int64_t)p->st.retries));
	json_object_object_add(o, "worker_respawns",
			       json_object_new_int64((int64_t)p->st.respawns));
	json_object_object_add(o, "engine_loads",
			       json_object_new_int64((int64_t)p->st.engine_loads));
	json_object_object_add(o, "engine_load_failures",
			       json_object_new_int64((int64_t)p->st.load_failures));
	json_object_object_add(o, "poison_refused",
			       json_object_new_int64((int64_t)p->st.poison_refused));
	json_object_object_add(o, "poisoned", poison_json(p->poison));
	json_object_object_add(
		o, "crashes_in_window",
		json_object_new_int((int)crashlog_count(&p->crashes, util_now_ms())));
	json_object_object_add(o, "respawn_backoff_ms",
			       json_object_new_int64((int64_t)crashlog_backoff_ms(
				       &p->crashes, util_now_ms(), p->cfg->respawn_interval,
				       p->cfg->crash_backoff_max * 1000ULL)));
	if (p->last_load_error[0])
		json_object_object_add(o, "last_load_error",
				       json_object_new_string(p->last_load_error));
}

void pool_stats_text(const struct pool *p, char *buf, size_t len)
{
	unsigned int live = 0, idle = 0;
	const struct generation *g = p->active;

	if (g)
		for (unsigned int i = 0; i < g->nworkers; i++) {
			live += g->workers[i].state == WK_BUSY;
			idle += g->workers[i].state == WK_IDLE;
		}
	snprintf(buf, len, "THREADS: live %u  idle %u max %u idle-timeout %u\nQUEUE: %u items\n",
		 live + idle, idle, p->cfg->max_threads, p->cfg->idle_timeout, p->queued);
}
