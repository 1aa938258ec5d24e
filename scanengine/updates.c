/* updates: see updates.h. */
#include "scanengine/updates.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/ipc.h"
#include "common/log.h"
#include "common/util.h"
#include "scanengine/faults.h"
#include "scanengine/loader.h"
#include "scanengine/pool.h"
#include "updater/cycle.h"
#include "updater/policy.h"

#define MAX_WAITERS 64

static const char *const default_names[] = {"main", "daily", "bytecode", NULL};

enum ustate {
	U_IDLE,
	U_FETCHING,	/* the updater runs */
	U_WAIT_INSTALL, /* its files wait for the pipeline to be free */
	U_INSTALLING,	/* the pipeline validates them */
};

struct waiter {
	void (*done)(void *ctx, const char *json);
	void *ctx;
};

struct updates {
	const struct config *cfg;
	const struct sandbox_identity *id;
	struct loader *loader;
	struct pool *pool;
	struct faults *faults;
	const char *const *names;
	struct upd_mirrors mirrors;
	struct upd_backoff backoff[UPD_MAX_MIRRORS];
	struct upd_backoff cycle_backoff; /* failures of the updater itself */
	uint64_t seed;
	uint64_t next_check_ms; /* 0: none scheduled */
	time_t next_check_wall; /* the same on the wall clock, fixed when set */
	char base[PATH_MAX], work[PATH_MAX + 8];

	/* the running cycle */
	enum ustate state;
	bool manual;
	pid_t pid;
	int sock;
	bool got_done;
	uint64_t started_ms, deadline_ms;
	time_t started;
	struct json_object *dbs; /* the databases' reports */
	bool touched[UPD_MAX_MIRRORS];
	struct waiter waiters[MAX_WAITERS];
	size_t nwaiters;

	/* for STATUS */
	struct json_object *last;
};

static void iso_time(time_t t, char *buf, size_t len)
{
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* A wall-clock time for a point of the monotonic clock. */
static struct json_object *when_json(uint64_t mono_ms)
{
	uint64_t now = util_now_ms();
	char buf[32];

	if (!mono_ms)
		return NULL;
	iso_time(time(NULL) + (time_t)((mono_ms > now ? mono_ms - now : 0) / 1000), buf,
		 sizeof(buf));
	return json_object_new_string(buf);
}

/* The next check at monotonic ms (0: none); its wall-clock time is taken
 * once here, so that every report of it names the same second. */
static void set_next(struct updates *u, uint64_t ms)
{
	uint64_t now = util_now_ms();

	u->next_check_ms = ms;
	u->next_check_wall = ms ? time(NULL) + (time_t)((ms > now ? ms - now : 0) / 1000) : 0;
}

static struct json_object *next_check_json(const struct updates *u)
{
	char buf[32];

	if (!u->next_check_ms)
		return NULL;
	iso_time(u->next_check_wall, buf, sizeof(buf));
	return json_object_new_string(buf);
}

static void schedule(struct updates *u)
{
	set_next(u, upd_next_check_ms(util_now_ms(), u->cfg->checks, &u->seed));
}

struct updates *updates_new(const struct config *cfg, const struct sandbox_identity *id,
			    struct loader *loader, struct pool *pool, struct faults *faults,
			    char *err)
{
	struct updates *u = calloc(1, sizeof(*u));
	char e[256];
	int r;

	if (!u) {
		snprintf(err, 512, "out of memory");
		return NULL;
	}
	*u = (struct updates){.cfg = cfg,
			      .id = id,
			      .loader = loader,
			      .pool = pool,
			      .faults = faults,
			      .sock = -1,
			      .names = default_names};
	if (cfg->database_name.n)
		u->names = (const char *const *)cfg->database_name.items;
	r = upd_mirrors_build((const char *const *)cfg->private_mirror.items,
			      (const char *const *)cfg->database_mirror.items, &u->mirrors, e);
	if (r && r != -ENOENT) {
		snprintf(err, 512, "update mirrors: %s", e);
		free(u);
		return NULL;
	}
	if (getrandom(&u->seed, sizeof(u->seed), GRND_NONBLOCK) != sizeof(u->seed))
		u->seed = util_now_us() ^ (uint64_t)getpid();
	snprintf(u->base, sizeof(u->base), "%s/update", cfg->state_dir);
	snprintf(u->work, sizeof(u->work), "%s/cycle", u->base);
	if (u->mirrors.n)
		schedule(u);
	return u;
}

/* ---- the updater process ---------------------------------------------- */

/* Per mirror: whether this cycle leaves it alone, and why. */
static void skips(const struct updates *u, bool *skip, enum upd_failure *kind, char **reason)
{
	uint64_t now = util_now_ms();

	for (size_t m = 0; m < u->mirrors.n; m++) {
		const struct upd_backoff *b = &u->backoff[m];
		bool cooldown = b->last == UPD_FAIL_RATE_LIMIT || b->last == UPD_FAIL_FORBIDDEN;
		char when[32];
		time_t t;

		skip[m] = b->failures && !upd_backoff_ready(b, now) && (cooldown || !u->manual);
		kind[m] = b->last;
		reason[m] = NULL;
		if (!skip[m])
			continue;
		t = time(NULL) + (time_t)((b->not_before_ms - now) / 1000);
		iso_time(t, when, sizeof(when));
		if (asprintf(&reason[m], "%s: %s until %s (after %s)", u->mirrors.v[m].url,
			     cooldown ? "cool-down" : "back-off", when,
			     upd_failure_name(b->last)) < 0)
			reason[m] = NULL;
	}
}

static void updater_main(struct updates *u, int sock)
{
	bool skip[UPD_MAX_MIRRORS];
	enum upd_failure kind[UPD_MAX_MIRRORS];
	char *reason[UPD_MAX_MIRRORS];
	int keep[] = {sock, log_file_fd()}, r;
	struct upd_cycle_req req = {
		.names = u->names,
		.mirrors = &u->mirrors,
		.skip = skip,
		.skip_kind = kind,
		.skip_reason = (const char *const *)reason,
		.active_dir = loader_active_dir(u->loader),
		.work_dir = u->work,
		.fetch =
			{
				.connect_timeout_s = u->cfg->connect_timeout,
				.receive_timeout_s = u->cfg->receive_timeout,
				.max_attempts = u->cfg->max_attempts,
				.proxy_server = u->cfg->proxy_server,
				.proxy_port = u->cfg->proxy_port,
				.proxy_username = u->cfg->proxy_username,
				.proxy_password = u->cfg->proxy_password,
			},
		.scripted_updates = u->cfg->scripted_updates,
		.certs_dir = u->cfg->certs_dir,
		.require_sign = u->cfg->require_sign,
		.tmp_dir = u->work,
	};

	util_reset_signals();
	log_before_close_fds();
	if (util_close_fds_except(keep, keep[1] >= 0 ? 2 : 1) < 0)
		_exit(71);
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	prctl(PR_SET_NAME, "se-updater");
	r = sandbox_drop_privileges(u->id->valid ? u->id : NULL);
	if (!r)
		r = sandbox_confine_writes(u->work);
	if (r) {
		log_error("updater: cannot confine itself: %s", strerror(-r));
		_exit(72);
	}
	skips(u, skip, kind, reason);
	_exit(upd_cycle_run(&req, sock) ? 70 : 0);
}

static int spawn(struct updates *u, char *err)
{
	uid_t uid = u->id->valid ? u->id->uid : 0;
	gid_t gid = u->id->valid ? u->id->gid : 0;
	int sv[2], r;

	util_rm_rf(u->work);
	/* base: root's, 0711 so that the updater reaches its own work
	 * directory in it and nothing else */
	if (util_mkdir_p(u->base, 0711) < 0 || chmod(u->base, 0711) < 0 ||
	    mkdir(u->work, 0700) < 0 || chown(u->work, uid, gid) < 0) {
		snprintf(err, 512, "%.400s: %s", u->work, strerror(errno));
		return -errno;
	}
	r = ipc_pair(sv);
	if (r) {
		snprintf(err, 512, "socketpair: %s", strerror(-r));
		return r;
	}
	fflush(NULL);
	u->pid = fork();
	if (u->pid < 0) {
		r = -errno;
		u->pid = 0;
		close(sv[0]);
		close(sv[1]);
		snprintf(err, 512, "fork: %s", strerror(-r));
		return r;
	}
	if (u->pid == 0) {
		close(sv[0]);
		updater_main(u, sv[1]);
	}
	close(sv[1]);
	u->sock = sv[0];
	util_set_nonblock(u->sock, true);
	return 0;
}

/* ---- reports ------------------------------------------------------------ */

static const char *jstr(struct json_object *o, const char *key)
{
	struct json_object *v;

	return json_object_object_get_ex(o, key, &v) ? json_object_get_string(v) : NULL;
}

static int64_t jint(struct json_object *o, const char *key)
{
	struct json_object *v;

	return json_object_object_get_ex(o, key, &v) ? json_object_get_int64(v) : 0;
}

static void set_str(struct json_object *o, const char *key, const char *val)
{
	json_object_object_add(o, key, val ? json_object_new_string(val) : NULL);
}

static enum upd_failure failure_kind(const char *name)
{
	static const enum upd_failure all[] = {UPD_FAIL_NETWORK, UPD_FAIL_BAD_DATA, UPD_FAIL_STALE,
					       UPD_FAIL_RATE_LIMIT, UPD_FAIL_FORBIDDEN};

	for (size_t i = 0; name && i < SE_ARRAY_SIZE(all); i++)
		if (!strcmp(upd_failure_name(all[i]), name))
			return all[i];
	return UPD_FAIL_NETWORK;
}

/* The first outcome of a mirror in this cycle sets its back-off. */
static void mirror_outcome(struct updates *u, int m, bool ok, enum upd_failure kind,
			   uint64_t retry_after)
{
	if (m < 0 || (size_t)m >= u->mirrors.n || u->touched[m])
		return;
	u->touched[m] = true;
	if (ok)
		upd_backoff_ok(&u->backoff[m]);
	else
		upd_backoff_fail(&u->backoff[m], kind, util_now_ms(), retry_after, &u->seed);
}

static void take_db_report(struct updates *u, const char *text)
{
	struct json_object *o = json_tokener_parse(text), *att;

	if (!o || !json_object_is_type(o, json_type_object)) {
		log_warn("updater: unreadable report dropped");
		json_object_put(o);
		return;
	}
	if (json_object_object_get_ex(o, "attempts", &att))
		for (size_t i = 0; i < json_object_array_length(att); i++) {
			struct json_object *a = json_object_array_get_idx(att, i);
			const char *res = jstr(a, "result");

			if (!res || !strcmp(res, "skipped"))
				continue;
			mirror_outcome(u, (int)jint(a, "index"), !strcmp(res, "ok"),
				       failure_kind(jstr(a, "failure")),
				       (uint64_t)jint(a, "retry_after_s"));
		}
	json_object_array_add(u->dbs, o);
}

static int mirror_index(const struct updates *u, const char *url)
{
	for (size_t m = 0; url && m < u->mirrors.n; m++)
		if (!strcmp(u->mirrors.v[m].url, url))
			return (int)m;
	return -1;
}

/* The seconds until the next cycle may help: a mirror may be asked again
 * and the updater's own back-off is over; 0: now. */
static uint64_t retry_in_s(const struct updates *u)
{
	uint64_t now = util_now_ms(), best = UINT64_MAX, own = u->cycle_backoff.not_before_ms;

	for (size_t m = 0; m < u->mirrors.n; m++) {
		uint64_t nb = u->backoff[m].not_before_ms;

		best = SE_MIN(best, nb > now ? nb - now : 0);
	}
	if (best == UINT64_MAX)
		best = 0;
	best = SE_MAX(best, own > now ? own - now : 0);
	return (best + 999) / 1000;
}

static void db_failed(struct json_object *d, const char *failure, const char *reason)
{
	set_str(d, "result", "failed");
	set_str(d, "failure", failure);
	set_str(d, "reason", reason);
}

/* ---- the end of a cycle ------------------------------------------------- */

static void finish(struct updates *u)
{
	struct json_object *rep = json_object_new_object(), *ev;
	size_t n = json_object_array_length(u->dbs), updated = 0, failed = 0;
	const char *result;
	char when[32], msg[1024] = "";
	size_t ml = 0;

	for (size_t i = 0; i < n; i++) {
		struct json_object *d = json_object_array_get_idx(u->dbs, i);
		const char *res = jstr(d, "result");
		const char *name = jstr(d, "name");

		json_object_object_del(d, "file");
		json_object_object_del(d, "sign");
		if (!json_object_object_get_ex(d, "validation", NULL))
			json_object_object_add(d, "validation", NULL); /* not reached */
		if (!json_object_object_get_ex(d, "new_version", NULL))
			json_object_object_add(d, "new_version",
					       json_object_new_int64(jint(d, "old_version")));
		if (!strcmp(res, "updated")) {
			updated++;
			ml += (size_t)snprintf(msg + ml, sizeof(msg) - SE_MIN(ml, sizeof(msg)),
					       "%s%s %lld -> %lld", ml ? ", " : "", name,
					       (long long)jint(d, "old_version"),
					       (long long)jint(d, "new_version"));
		} else if (strcmp(res, "up to date") != 0) {
			failed++;
			/* a skipped version is never taken: no retry to announce */
			if (!strcmp(res, "failed"))
				json_object_object_add(
					d, "retry_in_s",
					json_object_new_int64((int64_t)retry_in_s(u)));
			ml += (size_t)snprintf(msg + ml, sizeof(msg) - SE_MIN(ml, sizeof(msg)),
					       "%s%s: %s", ml ? "; " : "", name,
					       jstr(d, "reason") ?: res);
		}
		ml = SE_MIN(ml, sizeof(msg) - 1);
	}
	result = failed ? (updated ? "partial" : "failed") : (updated ? "updated" : "up to date");
	iso_time(u->started, when, sizeof(when));
	set_next(u, 0);
	if (u->cfg->checks)
		schedule(u);
	if (failed && u->cfg->checks) {
		/* a failed database is asked again when a mirror may be, not a
		 * whole Checks interval later */
		uint64_t again = util_now_ms() + SE_MAX(retry_in_s(u), 1) * 1000;

		if (!u->next_check_ms || again < u->next_check_ms)
			set_next(u, again);
	}
	json_object_object_add(rep, "result", json_object_new_string(result));
	json_object_object_add(rep, "started", json_object_new_string(when));
	json_object_object_add(rep, "ms",
			       json_object_new_int64((int64_t)(util_now_ms() - u->started_ms)));
	json_object_object_add(rep, "manual", json_object_new_boolean(u->manual));
	json_object_object_add(rep, "databases", json_object_get(u->dbs));
	json_object_object_add(rep, "next_check", next_check_json(u));
	{
		struct json_object *st = json_object_new_object();

		loader_status(u->loader, st);
		json_object_object_add(
			rep, "generation",
			json_object_get(json_object_object_get(st, "definitions_generation")));
		json_object_put(st);
	}
	if (updated || failed) {
		ev = json_object_new_object();
		json_object_object_add(ev, "databases", json_object_get(u->dbs));
		if (u->faults)
			faults_event(u->faults, failed ? "update_failed" : "definitions_updated",
				     msg, ev);
		else
			json_object_put(ev);
	}
	log_msg(failed ? LOG_LVL_WARN : LOG_LVL_INFO, "update %s%s%s", result, msg[0] ? ": " : "",
		msg);
	{
		const char *text = json_object_to_json_string_ext(rep, JSON_C_TO_STRING_PLAIN);

		for (size_t i = 0; i < u->nwaiters; i++)
			u->waiters[i].done(u->waiters[i].ctx, text);
	}
	u->nwaiters = 0;
	json_object_put(u->last);
	u->last = rep;
	json_object_put(u->dbs);
	u->dbs = NULL;
	util_rm_rf(u->work);
	u->state = U_IDLE;
}

/* The validation of what the updater fetched is over. */
static void installed(void *arg, int r, const struct install_outcome *out)
{
	struct updates *u = arg;

	if (r == -EAGAIN) {
		/* a set was installed meanwhile: validate again over it */
		u->state = U_WAIT_INSTALL;
		return;
	}
	for (size_t i = 0; i < json_object_array_length(u->dbs); i++) {
		struct json_object *d = json_object_array_get_idx(u->dbs, i);
		char why[INSTALL_ERR_LEN + 32];

		if (strcmp(jstr(d, "result"), "fetched") != 0)
			continue;
		if (r == 0 && out->gen) {
			set_str(d, "result", "updated");
			set_str(d, "validation", "passed");
			json_object_object_add(d, "new_version",
					       json_object_new_int64(jint(d, "mirror_version")));
			continue;
		}
		snprintf(why, sizeof(why), "%s: %s", r == -EBADMSG ? "refused" : "not judged",
			 r == 0 ? "nothing new" : out->reason);
		set_str(d, "validation", why);
		db_failed(d, upd_failure_name(UPD_FAIL_BAD_DATA), why);
		if (r == -EBADMSG) {
			int m = mirror_index(u, jstr(d, "mirror"));

			/* the mirror served what the pipeline refused */
			if (m >= 0) {
				u->touched[m] = false;
				mirror_outcome(u, m, false, UPD_FAIL_BAD_DATA, 0);
			}
		}
	}
	finish(u);
}

/* Hand what was fetched to the pipeline (or finish when nothing was). */
static void start_install(struct updates *u)
{
	const char *files[2 * 64];
	size_t nfiles = 0;
	char err[512];
	int r;

	for (size_t i = 0; i < json_object_array_length(u->dbs); i++) {
		struct json_object *d = json_object_array_get_idx(u->dbs, i);
		const char *file = jstr(d, "file"), *name = jstr(d, "name");
		uint32_t ver = (uint32_t)jint(d, "mirror_version");
		char qpath[PATH_MAX], msg[PATH_MAX + 256];
		struct stat st;

		if (strcmp(jstr(d, "result"), "fetched") != 0 || !file)
			continue;
		/* written by a process that is gone now; take only regular
		 * files, never a link it may have left */
		if (lstat(file, &st) < 0 || !S_ISREG(st.st_mode)) {
			db_failed(d, upd_failure_name(UPD_FAIL_BAD_DATA),
				  "the updater left no regular file");
			continue;
		}
		if (loader_failed_before(u->loader, name, ver, qpath, sizeof(qpath))) {
			snprintf(msg, sizeof(msg),
				 "%s version %u made the engine fail to load before (fault 7, "
				 "quarantined in %s); not activated again",
				 name, ver, qpath);
			set_str(d, "result", "skipped");
			set_str(d, "reason", msg);
			set_str(d, "failure", upd_failure_name(UPD_FAIL_BAD_DATA));
			if (u->faults)
				faults_event(u->faults, "update_skipped", msg, NULL);
			log_warn("update: %s", msg);
			continue;
		}
		if (nfiles < SE_ARRAY_SIZE(files))
			files[nfiles++] = file;
	}
	if (!nfiles) {
		finish(u);
		return;
	}
	r = loader_import(u->loader, files, nfiles, "update", installed, u, err);
	if (r == -EBUSY) {
		u->state = U_WAIT_INSTALL;
		return;
	}
	if (r) {
		for (size_t i = 0; i < json_object_array_length(u->dbs); i++) {
			struct json_object *d = json_object_array_get_idx(u->dbs, i);

			if (!strcmp(jstr(d, "result"), "fetched"))
				db_failed(d, upd_failure_name(UPD_FAIL_BAD_DATA), err);
		}
		finish(u);
		return;
	}
	u->state = U_INSTALLING;
}

/* The updater failed (why): the databases it did not report on failed
 * with it, and the next cycle backs off. */
static void updater_failed(struct updates *u, const char *why)
{
	for (size_t i = 0; u->names[i]; i++) {
		bool seen = false;

		for (size_t j = 0; j < json_object_array_length(u->dbs); j++)
			seen |= !strcmp(jstr(json_object_array_get_idx(u->dbs, j), "name"),
					u->names[i]);
		if (!seen) {
			struct json_object *d = json_object_new_object();

			set_str(d, "name", u->names[i]);
			json_object_object_add(d, "old_version", json_object_new_int(0));
			db_failed(d, "updater", why);
			json_object_array_add(u->dbs, d);
		}
	}
	log_error("update: %s", why);
	upd_backoff_fail(&u->cycle_backoff, UPD_FAIL_NETWORK, util_now_ms(), 0, &u->seed);
}

/* The updater is gone (status st, or -1: killed for its time). */
static void updater_gone(struct updates *u, int st)
{
	char why[256] = "";

	util_close(&u->sock);
	u->pid = 0;
	if (st == -1)
		snprintf(why, sizeof(why), "the updater ran longer than %d s and was killed",
			 UPDATER_TIMEOUT_S);
	else if (WIFSIGNALED(st))
		snprintf(why, sizeof(why), "the updater was killed by signal %d (%s)", WTERMSIG(st),
			 strsignal(WTERMSIG(st)));
	else if (!u->got_done)
		snprintf(why, sizeof(why), "the updater exited with status %d before reporting",
			 WEXITSTATUS(st));
	if (why[0]) {
		updater_failed(u, why);
	} else {
		upd_backoff_ok(&u->cycle_backoff);
	}
	start_install(u);
}

static void drain(struct updates *u)
{
	struct ipc_msg *m = malloc(sizeof(*m));

	while (m && u->sock >= 0) {
		int r = ipc_recv(u->sock, m);

		if (r <= 0)
			break;
		if (m->fd >= 0)
			util_close(&m->fd);
		if (m->hdr.type == UPD_MSG_DB && m->hdr.len)
			take_db_report(u, (const char *)m->payload);
		else if (m->hdr.type == UPD_MSG_DONE)
			u->got_done = true;
	}
	free(m);
}

static int start_cycle(struct updates *u, bool manual)
{
	char err[512];
	int r;

	u->manual = manual;
	u->got_done = false;
	u->dbs = json_object_new_array();
	memset(u->touched, 0, sizeof(u->touched));
	u->started = time(NULL);
	u->started_ms = util_now_ms();
	u->deadline_ms = u->started_ms + UPDATER_TIMEOUT_S * 1000ULL;
	r = spawn(u, err);
	if (r) {
		char why[600];

		snprintf(why, sizeof(why), "cannot start the updater: %s", err);
		updater_failed(u, why);
		finish(u);
		return r;
	}
	u->state = U_FETCHING;
	log_info("update check %s (updater pid %d)", manual ? "requested" : "scheduled",
		 (int)u->pid);
	return 0;
}

int updates_run_now(struct updates *u, void (*done)(void *ctx, const char *json), void *ctx)
{
	if (!u->mirrors.n)
		return -ENOENT;
	if (u->nwaiters >= MAX_WAITERS)
		return -EBUSY;
	u->waiters[u->nwaiters++] = (struct waiter){done, ctx};
	if (u->state == U_IDLE)
		start_cycle(u, true);
	return 0;
}

void updates_tick(struct updates *u)
{
	uint64_t now = util_now_ms();

	if (!u)
		return;
	if (u->state == U_IDLE && u->next_check_ms && now >= u->next_check_ms) {
		start_cycle(u, false);
		return;
	}
	if (u->state == U_WAIT_INSTALL) {
		if (!loader_busy(u->loader))
			start_install(u);
		return;
	}
	if (u->state != U_FETCHING)
		return;
	drain(u);
	{
		int st = 0;
		pid_t p = 0;

		if (pool_claim_death(u->pool, u->pid, &st) ||
		    (p = waitpid(u->pid, &st, WNOHANG)) == u->pid || (p < 0 && errno == ECHILD)) {
			drain(u);
			updater_gone(u, p < 0 ? 0 : st);
		} else if (now >= u->deadline_ms) {
			kill(u->pid, SIGKILL);
			while (waitpid(u->pid, &st, 0) < 0 && errno == EINTR)
				;
			updater_gone(u, -1);
		}
	}
}

void updates_free(struct updates *u)
{
	if (!u)
		return;
	if (u->pid > 0) {
		int st;

		kill(u->pid, SIGKILL);
		while (waitpid(u->pid, &st, 0) < 0 && errno == EINTR)
			;
	}
	util_close(&u->sock);
	for (size_t i = 0; i < u->nwaiters; i++)
		u->waiters[i].done(u->waiters[i].ctx, NULL);
	json_object_put(u->dbs);
	json_object_put(u->last);
	free(u);
}

void updates_status(const struct updates *u, struct json_object *o)
{
	struct json_object *s = json_object_new_object(), *ms = json_object_new_array();

	json_object_object_add(s, "enabled", json_object_new_boolean(u->mirrors.n > 0));
	json_object_object_add(s, "running", json_object_new_boolean(u->state != U_IDLE));
	set_str(s, "last_attempt", u->last ? jstr(u->last, "started") : NULL);
	set_str(s, "last_result", u->last ? jstr(u->last, "result") : NULL);
	{
		const char *reason = NULL;
		struct json_object *dbs;

		if (u->last && json_object_object_get_ex(u->last, "databases", &dbs))
			for (size_t i = 0; !reason && i < json_object_array_length(dbs); i++)
				reason = jstr(json_object_array_get_idx(dbs, i), "reason");
		set_str(s, "last_reason", reason);
	}
	json_object_object_add(s, "next_check", next_check_json(u));
	for (size_t m = 0; m < u->mirrors.n; m++) {
		struct json_object *j = json_object_new_object();
		const struct upd_backoff *b = &u->backoff[m];

		set_str(j, "url", u->mirrors.v[m].url);
		json_object_object_add(j, "failures", json_object_new_int((int)b->failures));
		set_str(j, "last_failure", b->failures ? upd_failure_name(b->last) : NULL);
		json_object_object_add(j, "not_before",
				       b->failures && b->not_before_ms > util_now_ms()
					       ? when_json(b->not_before_ms)
					       : NULL);
		json_object_array_add(ms, j);
	}
	json_object_object_add(s, "mirrors", ms);
	json_object_object_add(o, "update", s);
}
