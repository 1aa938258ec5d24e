/* onaccess: see onaccess.h. The events and their answers; the marks are
 * in marks.c. */
#include "fanotify/onaccess.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fanotify.h>
#include <sys/inotify.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "fanotify/onaccess_int.h"
#include "scanengine/faults.h"

/* ---- configuration -------------------------------------------------------- */

static int parse_uid(const char *s, uid_t *out)
{
	uint64_t v;

	if (util_parse_u64(s, &v) || v >= (uid_t)-1)
		return -EINVAL;
	*out = (uid_t)v;
	return 0;
}

int oa_check_config(const struct config *cfg, char *err)
{
	const struct config_list *paths[] = {&cfg->oa_mount_path, &cfg->oa_include_path,
					     &cfg->oa_exclude_path, &cfg->oa_exclude_process};
	uid_t uid;

	if (strcmp(cfg->oa_fail_policy, "allow") && strcmp(cfg->oa_fail_policy, "deny")) {
		snprintf(err, 256, "OnAccessFailPolicy: '%.100s' is not allow or deny",
			 cfg->oa_fail_policy);
		return -EINVAL;
	}
	if (strcmp(cfg->oa_quarantine_action, "copy") &&
	    strcmp(cfg->oa_quarantine_action, "move")) {
		snprintf(err, 256, "OnAccessQuarantineAction: '%.100s' is not copy or move",
			 cfg->oa_quarantine_action);
		return -EINVAL;
	}
	if (cfg->oa_queue_low >= cfg->oa_queue_high) {
		snprintf(err, 256, "OnAccessQueueLow (%u) must be below OnAccessQueueHigh (%u)",
			 cfg->oa_queue_low, cfg->oa_queue_high);
		return -EINVAL;
	}
	for (size_t i = 0; i < cfg->oa_exclude_uid.n; i++)
		if (parse_uid(cfg->oa_exclude_uid.items[i], &uid)) {
			snprintf(err, 256, "OnAccessExcludeUID: '%.100s' is not a user ID",
				 cfg->oa_exclude_uid.items[i]);
			return -EINVAL;
		}
	for (size_t k = 0; k < SE_ARRAY_SIZE(paths); k++)
		for (size_t i = 0; i < paths[k]->n; i++)
			if (paths[k]->items[i][0] != '/') {
				snprintf(err, 256, "on-access path '%.100s' is not absolute",
					 paths[k]->items[i]);
				return -EINVAL;
			}
	return 0;
}

static int add_xuid(struct onaccess *oa, uid_t uid)
{
	uid_t *n = realloc(oa->xuids, (oa->nxuids + 1) * sizeof(*n));

	if (!n)
		return -ENOMEM;
	oa->xuids = n;
	oa->xuids[oa->nxuids++] = uid;
	return 0;
}

struct onaccess *oa_new(const struct config *cfg, const struct sandbox_identity *id,
			struct evloop *ev, struct pool *pool, struct faults *faults, char *err)
{
	struct onaccess *oa;
	int r = oa_check_config(cfg, err);

	if (r)
		return NULL;
	oa = calloc(1, sizeof(*oa));
	if (!oa) {
		snprintf(err, 256, "out of memory");
		return NULL;
	}
	*oa = (struct onaccess){.stop_efd = -1,
				.wake_efd = -1,
				.cfg = cfg,
				.id = id,
				.ev = ev,
				.pool = pool,
				.faults = faults,
				.fan = -1,
				.ino = -1,
				.mi_fd = -1,
				.self = getpid()};
	pthread_mutex_init(&oa->qmu, NULL);
	oa->enabled = cfg->oa_mount_path.n || cfg->oa_include_path.n;
	oa->inject_dup_failure = getenv("SCANENGINE_FAULT_INJECT") &&
				 !strcmp(getenv("SCANENGINE_FAULT_INJECT"), "onaccess.dup");
	oa->deny_on_failure = !strcmp(cfg->oa_fail_policy, "deny");
	oa->mask = FAN_CLOSE_WRITE | (cfg->oa_prevention ? FAN_OPEN_PERM | FAN_OPEN_EXEC_PERM
							 : FAN_OPEN | FAN_OPEN_EXEC);
	/* the scan user's processes are the service's own: always excluded */
	if (id->valid)
		r = add_xuid(oa, id->uid);
	if (!r && cfg->oa_exclude_root)
		r = add_xuid(oa, 0);
	for (size_t i = 0; !r && i < cfg->oa_exclude_uid.n; i++) {
		uid_t u = 0;

		parse_uid(cfg->oa_exclude_uid.items[i], &u);
		r = add_xuid(oa, u);
	}
	/* names now: no NSS lookup may happen while an opener waits */
	for (size_t i = 0; !r && i < cfg->oa_exclude_uname.n; i++) {
		struct passwd *pw = getpwnam(cfg->oa_exclude_uname.items[i]);

		if (pw)
			r = add_xuid(oa, pw->pw_uid);
		else
			log_warn("OnAccessExcludeUname: no user '%s'; not excluded",
				 cfg->oa_exclude_uname.items[i]);
	}
	if (!r)
		r = oa_cache_init(&oa->cache, OA_CACHE_SIZE);
	if (r) {
		snprintf(err, 256, "out of memory");
		oa_free(oa);
		return NULL;
	}
	return oa;
}

bool oa_enabled(const struct onaccess *oa)
{
	return oa && oa->enabled;
}

/* ---- answers ----------------------------------------------------------------- */

static void unlink_event(struct onaccess *oa, struct oa_event *e)
{
	if (e->prev)
		e->prev->next = e->next;
	else
		oa->events = e->next;
	if (e->next)
		e->next->prev = e->prev;
	e->next = e->prev = NULL;
	oa->inflight--;
}

/* Write the answer for a permission event (the one write that releases
 * the opener). Never closes the descriptor: that waits for the scan. */
static void answer(struct onaccess *oa, struct oa_event *e, bool allow)
{
	uint64_t lat;

	if (!e->perm || e->answered)
		return;
	e->answered = true;
	if (oa->fan >= 0 && !oa_respond(oa->fan, e->fd, allow))
		oa->n.answer_errors++;
	if (allow)
		oa->n.allowed++;
	else
		oa->n.denied++;
	lat = util_now_us() - e->t0_us;
	if (lat > oa->n.max_latency_us)
		oa->n.max_latency_us = lat;
}

/* An event is over when it is answered (if it must be) and its scan is
 * back: only then is its descriptor closed. */
static void maybe_free(struct onaccess *oa, struct oa_event *e)
{
	if ((e->perm && !e->answered) || e->scanning || e->leader)
		return;
	unlink_event(oa, e);
	util_close(&e->fd);
	free(e);
}

/* OnAccessQuarantineDirectory: a copy of the infected file, read through
 * the descriptor the event gave (what was scanned, whatever the path
 * names now), mode 0600; "move" then removes the original if its path
 * still names that very file. Returns the copy's path in qpath (or ""). */
static void quarantine(struct onaccess *oa, struct oa_event *e, const char *path, char *qpath,
		       size_t qlen)
{
	const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
	char buf[65536];
	struct stat now;
	off_t off = 0;
	int out, r = 0;

	qpath[0] = '\0';
	if (!oa->cfg->oa_quarantine_dir)
		return;
	if (util_mkdir_p(oa->cfg->oa_quarantine_dir, 0700) < 0) {
		log_error("on-access: quarantine %s: %s", oa->cfg->oa_quarantine_dir,
			  strerror(errno));
		return;
	}
	snprintf(qpath, qlen, "%s/%llu-%.200s", oa->cfg->oa_quarantine_dir,
		 (unsigned long long)util_now_us(), base);
	out = open(qpath, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	for (ssize_t n = 1; out >= 0 && !r && n > 0; off += n) {
		n = pread(e->fd, buf, sizeof(buf), off);
		r = n < 0 ? -errno : (n ? util_write_all(out, buf, (size_t)n) : 0);
	}
	if (out < 0 || r || fsync(out) < 0) {
		log_error("on-access: cannot quarantine %s in %s: %s", path, qpath,
			  strerror(out < 0 ? errno
				   : -r	   ? -r
					   : errno));
		if (out >= 0)
			unlink(qpath);
		util_close(&out);
		qpath[0] = '\0';
		return;
	}
	close(out);
	if (strcmp(oa->cfg->oa_quarantine_action, "move"))
		return;
	if (lstat(path, &now) == 0 && now.st_dev == e->st.st_dev && now.st_ino == e->st.st_ino &&
	    unlink(path) == 0)
		return;
	log_error("on-access: %s was copied to %s but not removed: %s", path, qpath,
		  errno ? strerror(errno) : "it is another file now");
}

/* After the answer: the detection, named and logged (these may block). */
static void report_detection(struct onaccess *oa, struct oa_event *e, const char *sig,
			     const char *action, const char *exe)
{
	char link[64], path[PATH_MAX] = "?", msg[PATH_MAX * 3 + 256];
	char qpath[PATH_MAX], uid[16] = "?";
	struct json_object *d = json_object_new_object();
	const struct msg_engine_info *info = pool_engine_info(oa->pool);
	ssize_t n;

	snprintf(link, sizeof(link), "/proc/self/fd/%d", e->fd);
	n = readlink(link, path, sizeof(path) - 1);
	path[n > 0 ? n : 1] = '\0';
	oa->n.detections++;
	quarantine(oa, e, path, qpath, sizeof(qpath));
	if (e->uid != (uid_t)-1)
		snprintf(uid, sizeof(uid), "%u", (unsigned int)e->uid);
	snprintf(msg, sizeof(msg), "%s: %s FOUND (%s; pid %d, uid %s, %s)%s%s", path, sig, action,
		 (int)e->pid, uid, exe,
		 qpath[0] ? (strcmp(oa->cfg->oa_quarantine_action, "move") ? "; copied to "
									   : "; moved to ")
			  : "",
		 qpath);
	log_warn("on-access: %s", msg);
	json_object_object_add(d, "path", json_object_new_string(path));
	json_object_object_add(d, "signature", json_object_new_string(sig));
	json_object_object_add(d, "action", json_object_new_string(action));
	json_object_object_add(d, "pid", json_object_new_int(e->pid));
	/* a writer gone before its close-write was read: unknown */
	json_object_object_add(d, "uid",
			       e->uid != (uid_t)-1 ? json_object_new_int64(e->uid) : NULL);
	json_object_object_add(d, "exe", json_object_new_string(exe));
	if (qpath[0])
		json_object_object_add(d, "quarantine", json_object_new_string(qpath));
	json_object_object_add(d, "definitions_version",
			       json_object_new_int64(info ? info->db_version : 0));
	if (oa->faults)
		faults_event(oa->faults, "onaccess_detection", msg, d);
	else
		json_object_put(d);
}

static bool same_file(const struct stat *a, const struct stat *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
	       a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
	       a->st_ctim.tv_sec == b->st_ctim.tv_sec && a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

/* The events an ignore mark silences: the opens (never close-write). */
static uint64_t ignore_mask(const struct onaccess *oa)
{
	return oa->mask & (FAN_OPEN_PERM | FAN_OPEN_EXEC_PERM | FAN_OPEN | FAN_OPEN_EXEC);
}

/* A clean file: an ignore mark on its inode (the next open of it costs no
 * round trip; a write or truncate removes the mark) and the verdict in
 * the user-space table. The kernel accepts a mark on an inode open for
 * writing and installs nothing; and the file may have changed while it was
 * scanned: if it is not what was scanned any more, the mark goes again
 * and nothing is cached. */
static void remember_clean(struct onaccess *oa, struct oa_event *e)
{
	struct stat now;

	if (oa->fan < 0 || (e->mask & FAN_CLOSE_WRITE))
		return;
	if (fanotify_mark(oa->fan, FAN_MARK_ADD | FAN_MARK_IGNORE | FAN_MARK_EVICTABLE,
			  ignore_mask(oa), e->fd, NULL) < 0) {
		oa->n.marks_refused++;
		return;
	}
	if (fstat(e->fd, &now) < 0 || !same_file(&now, &e->st)) {
		fanotify_mark(oa->fan, FAN_MARK_REMOVE | FAN_MARK_IGNORE, ignore_mask(oa), e->fd,
			      NULL);
		oa->n.marks_refused++;
		return;
	}
	oa->n.marks_placed++;
	oa->marks_since_flush++;
	oa_ignores_note(oa, e->fd);
	oa_cache_put(&oa->cache, &e->st, util_now_ms());
}

/* The executable of pid ("?" once it is gone): read while a blocked opener
 * still waits for its answer (procfs, in memory), as it exits right after. */
static void exe_of(pid_t pid, char *exe, size_t len)
{
	char link[64];
	ssize_t n;

	snprintf(link, sizeof(link), "/proc/%d/exe", (int)pid);
	n = readlink(link, exe, len - 1);
	if (n <= 0)
		n = snprintf(exe, len, "?");
	exe[n] = '\0';
}

/* One verdict for e (the leader or a follower). */
static void verdict(struct onaccess *oa, struct oa_event *e, const struct job_result *r)
{
	bool late = e->answered;

	if (r->verdict == VERDICT_VIRUS) {
		bool deny = e->perm && !late && oa->cfg->oa_prevention;
		char exe[PATH_MAX];

		exe_of(e->pid, exe, sizeof(exe));
		answer(oa, e, !deny);
		report_detection(oa, e, r->nnames ? r->names[0] : "?",
				 deny ? "denied" : (late ? "allowed (timed out)" : "notified"),
				 exe);
	} else if (r->verdict == VERDICT_CLEAN) {
		answer(oa, e, true);
	} else {
		if (!late)
			oa->n.scan_errors++;
		answer(oa, e, !oa->deny_on_failure);
	}
}

static void scan_done(struct job *j, const struct job_result *r)
{
	struct oa_event *e = container_of(j, struct oa_event, job);
	struct onaccess *oa = e->oa;

	e->scanning = false;
	verdict(oa, e, r);
	if (r->verdict == VERDICT_CLEAN)
		remember_clean(oa, e);
	/* the other openers of the same file: the same verdict */
	while (e->followers) {
		struct oa_event *f = e->followers;

		e->followers = f->fnext;
		verdict(oa, f, r);
		f->leader = NULL;
		maybe_free(oa, f);
	}
	maybe_free(oa, e);
}

/* ---- events --------------------------------------------------------------- */

static bool in_excluded_tree(struct onaccess *oa, int fd)
{
	char link[64], path[PATH_MAX];
	ssize_t n;

	if (!oa->cfg->oa_exclude_path.n)
		return false;
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	n = readlink(link, path, sizeof(path) - 1);
	if (n <= 0)
		return false;
	path[n] = '\0';
	return oa_path_excluded(oa, path);
}

/* Settle at once an event that is not scanned: the answer (allow, or the
 * fail policy), then its descriptor. */
static void settle(struct onaccess *oa, int fd, bool perm, bool allow)
{
	struct oa_event tmp = {.fd = fd, .perm = perm, .t0_us = util_now_us()};

	answer(oa, &tmp, allow);
	close(fd);
}

/* A scan of the same file (as it is now) already under way, that e can
 * wait on instead of a scan of its own. */
static struct oa_event *leader_for(struct onaccess *oa, const struct oa_event *e)
{
	for (struct oa_event *l = oa->events; l; l = l->next)
		if (l != e && l->scanning && !l->leader && !(l->mask & FAN_CLOSE_WRITE) &&
		    same_file(&l->st, &e->st))
			return l;
	return NULL;
}

/* An event the reader thread did not settle itself. */
static void take(struct onaccess *oa, const struct oa_raw *md)
{
	bool perm = md->mask & (FAN_OPEN_PERM | FAN_OPEN_EXEC_PERM);
	struct oa_event *e;
	struct stat st;
	uid_t uid = md->uid;

	if (in_excluded_tree(oa, md->fd)) {
		oa->n.excluded++;
		settle(oa, md->fd, perm, true);
		return;
	}
	if (fstat(md->fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		settle(oa, md->fd, perm, true);
		return;
	}
	if ((uint64_t)st.st_size > oa->cfg->oa_max_file_size) {
		oa->n.too_large++;
		settle(oa, md->fd, perm, true);
		return;
	}
	if (!(md->mask & FAN_CLOSE_WRITE) && oa_cache_hit(&oa->cache, &st, util_now_ms())) {
		oa->n.cache_hits++;
		settle(oa, md->fd, perm, true);
		return;
	}
	oa_overload_note(oa, md->pid);
	if (perm && oa_overloaded(oa) && !(md->mask & FAN_OPEN_EXEC_PERM)) {
		oa->n.overloaded++;
		oa->last_bypass_ms = util_now_ms();
		settle(oa, md->fd, perm, !oa->deny_on_failure);
		return;
	}
	e = oa->inflight < oa->max_inflight ? calloc(1, sizeof(*e)) : NULL;
	if (!e) {
		oa->n.overloaded++;
		settle(oa, md->fd, perm, !oa->deny_on_failure);
		return;
	}
	*e = (struct oa_event){.oa = oa,
			       .fd = md->fd,
			       .pid = md->pid,
			       .uid = uid,
			       .mask = md->mask,
			       .perm = perm,
			       .t0_us = util_now_us(),
			       .st = st};
	e->deadline_ms = util_now_ms() + oa->cfg->oa_perm_timeout * 1000ULL;
	e->next = oa->events;
	if (oa->events)
		oa->events->prev = e;
	oa->events = e;
	oa->inflight++;
	if (!(md->mask & FAN_CLOSE_WRITE)) {
		struct oa_event *l = leader_for(oa, e);

		if (l) {
			e->leader = l;
			e->fnext = l->followers;
			l->followers = e;
			oa->n.joined++;
			return;
		}
	}
	e->job.fd = oa->inject_dup_failure ? -1 : fcntl(e->fd, F_DUPFD_CLOEXEC, 3);
	if (e->job.fd < 0) {
		oa->n.scan_errors++;
		answer(oa, e, !oa->deny_on_failure);
		maybe_free(oa, e);
		return;
	}
	e->job.label = "on-access";
	e->job.done = scan_done;
	e->job.owner = oa;
	e->scanning = true;
	oa->n.scans++;
	pool_submit(oa->pool, &e->job); /* may call scan_done at once */
}

/* The reader thread queued events. */
static void on_wake(struct ev_handler *h, uint32_t revents)
{
	struct onaccess *oa = container_of(h, struct onaccess, wake_ev);
	struct oa_raw batch[64];
	uint64_t v;
	size_t n;

	(void)revents;
	if (read(oa->wake_efd, &v, sizeof(v)) < 0) {
		/* nothing to clear: the queue says what there is */
	}
	while ((n = oa_reader_take(oa, batch, SE_ARRAY_SIZE(batch))))
		for (size_t i = 0; i < n; i++)
			take(oa, &batch[i]);
}

/* ---- set-up and the rest ------------------------------------------------ */

static void stop_monitoring(struct onaccess *oa)
{
	if (oa->wake_efd >= 0)
		evloop_del(oa->ev, &oa->wake_ev);
	oa_reader_stop(oa);
	util_close(&oa->fan); /* the kernel allows what is pending */
	if (oa->ino >= 0) {
		evloop_del(oa->ev, &oa->ino_ev);
		util_close(&oa->ino);
	}
	if (oa->mi_fd >= 0) {
		evloop_del(oa->ev, &oa->mi_ev);
		util_close(&oa->mi_fd);
	}
	oa_marks_drop(oa);
	oa_ignores_free(oa);
	oa->running = false;
	/* answers can no longer be written: the kernel has let them go */
	for (struct oa_event *e = oa->events; e; e = e->next)
		e->answered = true;
}

static int fail8(struct onaccess *oa, int r, const char *why)
{
	struct json_object *d = json_object_new_object();

	snprintf(oa->failure, sizeof(oa->failure), "%s", why);
	json_object_object_add(d, "errno", json_object_new_string(strerrorname_np(-r) ?: "?"));
	log_error("on-access scanning is not running: %s (retry in %d s)", why, OA_RETRY_S);
	if (oa->faults)
		faults_raise(oa->faults, FAULT_MONITOR_FAILED, why, d);
	else
		json_object_put(d);
	stop_monitoring(oa);
	oa->retry_at_ms = util_now_ms() + OA_RETRY_S * 1000ULL;
	return r;
}

/* Events in flight, at most (queued, and in the event loop, each): an
 * event holds a descriptor in the reader's queue, or one in the event loop
 * and the duplicate its scan reads, and a read makes up to OA_READ_MIN more
 * than the queue has room for. They stay within RLIMIT_NOFILE less
 * OA_FD_RESERVE for clients, workers and definitions: the kernel denies an
 * open whose event descriptor it cannot make, and says nothing. */
static unsigned int inflight_cap(unsigned long long *limit)
{
	struct rlimit rl;
	rlim_t room;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY)
		return OA_MAX_INFLIGHT;
	*limit = rl.rlim_cur;
	room = rl.rlim_cur > OA_FD_RESERVE + OA_READ_MIN
		       ? (rl.rlim_cur - OA_FD_RESERVE - OA_READ_MIN) / 3
		       : 0;
	return (unsigned int)SE_MAX(SE_MIN(room, (rlim_t)OA_MAX_INFLIGHT), (rlim_t)OA_READ_MIN);
}

int oa_start(struct onaccess *oa)
{
	unsigned long long nofile = 0;
	char err[512];
	int r;

	if (!oa_enabled(oa))
		return 0;
	oa->retry_at_ms = 0;
	oa->max_inflight = inflight_cap(&nofile);
	if (oa->max_inflight < OA_MAX_INFLIGHT)
		log_warn("on-access: at most %u events in flight (RLIMIT_NOFILE %llu): more are "
			 "answered by the fail policy at once; raise the limit (LimitNOFILE=) for "
			 "more",
			 oa->max_inflight, nofile);
	oa->fan = fanotify_init(FAN_CLASS_CONTENT | FAN_CLOEXEC | FAN_NONBLOCK |
					FAN_UNLIMITED_QUEUE | FAN_UNLIMITED_MARKS,
				O_RDONLY | O_LARGEFILE | O_CLOEXEC);
	if (oa->fan < 0) {
		r = -errno;
		snprintf(err, sizeof(err), "fanotify_init: %s%s", strerror(-r),
			 r == -EPERM	? " (CAP_SYS_ADMIN is needed)"
			 : r == -ENOSYS ? " (kernel without fanotify)"
					: "");
		return fail8(oa, r, err);
	}
	oa->ino = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (oa->ino < 0) {
		r = -errno;
		snprintf(err, sizeof(err), "inotify_init1: %s", strerror(-r));
		return fail8(oa, r, err);
	}
	r = oa_marks_add(oa, err);
	if (r)
		return fail8(oa, r, err);
	oa_ignores_init(oa);
	r = oa_reader_start(oa);
	if (r) {
		snprintf(err, sizeof(err), "the reader thread: %s", strerror(-r));
		return fail8(oa, r, err);
	}
	oa->wake_ev = (struct ev_handler){.fd = oa->wake_efd, .cb = on_wake};
	oa->ino_ev = (struct ev_handler){.fd = oa->ino, .cb = oa_marks_on_inotify};
	r = evloop_add(oa->ev, &oa->wake_ev, EPOLLIN);
	if (!r)
		r = evloop_add(oa->ev, &oa->ino_ev, EPOLLIN);
	if (!r && oa->cfg->oa_include_path.n) {
		/* new mounts in the include trees: the table polls EPOLLPRI
		 * when it changes (it is always readable) */
		oa->mi_fd = open("/proc/self/mountinfo", O_RDONLY | O_CLOEXEC);
		if (oa->mi_fd < 0) {
			log_warn("on-access: /proc/self/mountinfo: %s: new mounts in the include "
				 "trees are not watched",
				 strerror(errno));
		} else {
			oa->mi_ev = (struct ev_handler){.fd = oa->mi_fd, .cb = oa_marks_on_mounts};
			r = evloop_add(oa->ev, &oa->mi_ev, EPOLLPRI);
		}
	}
	if (r) {
		snprintf(err, sizeof(err), "epoll: %s", strerror(-r));
		return fail8(oa, r, err);
	}
	oa->running = true;
	oa->failure[0] = '\0';
	oa->flush_at_ms = util_now_ms() + OA_CACHE_TTL_S * 1000ULL;
	if (oa->faults)
		faults_clear(oa->faults, FAULT_MONITOR_FAILED, "on-access monitoring is running");
	log_info("on-access scanning running (%s, fail policy %s, %zu directories and %zu mounts "
		 "of include paths watched)",
		 oa->cfg->oa_prevention ? "prevention" : "notify only", oa->cfg->oa_fail_policy,
		 oa->ndirs, oa->nmounts);
	return 0;
}

/* Forget every clean verdict: the user-space table by generation, the
 * kernel's ignore marks one by one by file handle (ignores.c); only when
 * that cannot reach them all, by a flush of the group's inode marks, which
 * takes the directory marks too: they are placed again at once (opens in
 * the trees between the two go unscanned). Mount marks stay. */
static void flush_verdicts(struct onaccess *oa, const char *why)
{
	char err[512];
	size_t removed;
	uint64_t t0 = util_now_us();

	oa_cache_invalidate(&oa->cache);
	oa->flush_at_ms = util_now_ms() + OA_CACHE_TTL_S * 1000ULL;
	if (oa->fan < 0 || !oa->marks_since_flush)
		return;
	oa->marks_since_flush = 0;
	oa->n.cache_flushes++;
	if (oa_ignores_remove_all(oa, ignore_mask(oa), &removed) == 0) {
		log_info("on-access: clean verdicts forgotten (%s): %zu ignore marks removed in "
			 "%llu us",
			 why, removed, (unsigned long long)(util_now_us() - t0));
		return;
	}
	/* a mark only a flush can reach: all inode marks go, the trees' are
	 * placed again */
	if (fanotify_mark(oa->fan, FAN_MARK_FLUSH, 0, AT_FDCWD, NULL) < 0) {
		int r = -errno;

		snprintf(err, sizeof(err), "flushing the ignore marks: %s", strerror(-r));
		fail8(oa, r, err);
		return;
	}
	if (oa_marks_add(oa, err) < 0) {
		fail8(oa, -EIO, err);
		return;
	}
	log_info("on-access: clean verdicts forgotten (%s); marks renewed in %llu us", why,
		 (unsigned long long)(util_now_us() - t0));
}

void oa_definitions_changed(struct onaccess *oa)
{
	if (oa && oa->enabled)
		flush_verdicts(oa, "new definitions");
}

void oa_reload(struct onaccess *oa)
{
	if (oa && oa->enabled && !oa->running)
		oa_start(oa);
}

void oa_tick(struct onaccess *oa)
{
	uint64_t now = util_now_ms();

	if (!oa)
		return;
	if (oa->retry_at_ms && now >= oa->retry_at_ms)
		oa_start(oa);
	if (oa->running && now >= oa->flush_at_ms)
		flush_verdicts(oa, "their time is up");
	if (oa->running)
		oa_overload_tick(oa, now);
	for (struct oa_event *e = oa->events, *next; e; e = next) {
		next = e->next;
		if (e->perm && !e->answered && now >= e->deadline_ms) {
			oa->n.timed_out++;
			answer(oa, e, !oa->deny_on_failure);
			/* its scan (or its leader's) goes on: a verdict is still
			 * worth reporting, and it frees the event */
		}
	}
}

void oa_status(const struct onaccess *oa, struct json_object *o)
{
	struct json_object *s = json_object_new_object(), *ev = json_object_new_object();
	struct oa_counters sum = oa->n;
	const struct oa_counters *n = &sum;
	const struct oa_tcounters *t = &oa->t;
	static const struct {
		const char *name;
		size_t off;
	} counters[] = {
		{"allowed", offsetof(struct oa_counters, allowed)},
		{"denied", offsetof(struct oa_counters, denied)},
		{"timed_out", offsetof(struct oa_counters, timed_out)},
		{"too_large", offsetof(struct oa_counters, too_large)},
		{"excluded", offsetof(struct oa_counters, excluded)},
		{"overflows", offsetof(struct oa_counters, overflows)},
		{"scan_errors", offsetof(struct oa_counters, scan_errors)},
		{"overloaded", offsetof(struct oa_counters, overloaded)},
		{"detections", offsetof(struct oa_counters, detections)},
		{"answer_errors", offsetof(struct oa_counters, answer_errors)},
		{"max_latency_us", offsetof(struct oa_counters, max_latency_us)},
		{"scans", offsetof(struct oa_counters, scans)},
		{"cache_hits", offsetof(struct oa_counters, cache_hits)},
		{"marks_placed", offsetof(struct oa_counters, marks_placed)},
		{"marks_refused", offsetof(struct oa_counters, marks_refused)},
		{"joined", offsetof(struct oa_counters, joined)},
		{"cache_flushes", offsetof(struct oa_counters, cache_flushes)},
	};

	/* what the reader thread settled itself */
	sum.open_perm += __atomic_load_n(&t->open_perm, __ATOMIC_RELAXED);
	sum.open_exec_perm += __atomic_load_n(&t->open_exec_perm, __ATOMIC_RELAXED);
	sum.open += __atomic_load_n(&t->open, __ATOMIC_RELAXED);
	sum.open_exec += __atomic_load_n(&t->open_exec, __ATOMIC_RELAXED);
	sum.close_write += __atomic_load_n(&t->close_write, __ATOMIC_RELAXED);
	sum.excluded += __atomic_load_n(&t->excluded, __ATOMIC_RELAXED);
	sum.allowed += __atomic_load_n(&t->allowed, __ATOMIC_RELAXED);
	sum.denied += __atomic_load_n(&t->denied, __ATOMIC_RELAXED);
	sum.overflows += __atomic_load_n(&t->overflows, __ATOMIC_RELAXED);
	sum.overloaded += __atomic_load_n(&t->overloaded, __ATOMIC_RELAXED);
	sum.answer_errors += __atomic_load_n(&t->answer_errors, __ATOMIC_RELAXED);
	json_object_object_add(s, "enabled", json_object_new_boolean(oa->enabled));
	json_object_object_add(s, "running", json_object_new_boolean(oa->running));
	json_object_object_add(s, "prevention", json_object_new_boolean(oa->cfg->oa_prevention));
	json_object_object_add(s, "fail_policy", json_object_new_string(oa->cfg->oa_fail_policy));
	if (oa->failure[0])
		json_object_object_add(s, "failure", json_object_new_string(oa->failure));
	json_object_object_add(ev, "open_perm", json_object_new_int64((int64_t)n->open_perm));
	json_object_object_add(ev, "open_exec_perm",
			       json_object_new_int64((int64_t)n->open_exec_perm));
	json_object_object_add(ev, "open", json_object_new_int64((int64_t)n->open));
	json_object_object_add(ev, "open_exec", json_object_new_int64((int64_t)n->open_exec));
	json_object_object_add(ev, "close_write", json_object_new_int64((int64_t)n->close_write));
	json_object_object_add(s, "events", ev);
	for (size_t i = 0; i < SE_ARRAY_SIZE(counters); i++)
		json_object_object_add(
			s, counters[i].name,
			json_object_new_int64(*(const int64_t *)(const void *)((const char *)n +
									       counters[i].off)));
	json_object_object_add(
		s, "in_flight",
		json_object_new_int(
			(int)(oa->inflight + __atomic_load_n(&oa->qlen, __ATOMIC_RELAXED))));
	json_object_object_add(s, "overload", json_object_new_boolean(oa->overload));
	json_object_object_add(s, "max_in_flight", json_object_new_int((int)oa->max_inflight));
	json_object_object_add(s, "watched_directories", json_object_new_int64((int64_t)oa->ndirs));
	json_object_object_add(s, "watched_mounts", json_object_new_int64((int64_t)oa->nmounts));
	json_object_object_add(o, "onaccess", s);
}

void oa_stats_text(const struct onaccess *oa, char *buf, size_t len)
{
	struct json_object *o = json_object_new_object(), *s, *ev;
	int64_t events = 0;

	buf[0] = '\0';
	if (!oa_enabled(oa))
		goto out;
	oa_status(oa, o);
	s = json_object_object_get(o, "onaccess");
	ev = json_object_object_get(s, "events");
	json_object_object_foreach(ev, k, v)
	{
		(void)k;
		events += json_object_get_int64(v);
	}
#define F(name) (long long)json_object_get_int64(json_object_object_get(s, name))
	snprintf(buf, len,
		 "ONACCESS: %s events %lld allowed %lld denied %lld timed_out %lld cache_hits %lld "
		 "in_flight %lld max_latency_us %lld\n\n",
		 oa->running ? "running" : "failed", (long long)events, F("allowed"), F("denied"),
		 F("timed_out"), F("cache_hits"), F("in_flight"), F("max_latency_us"));
#undef F
out:
	json_object_put(o);
}

void oa_close(struct onaccess *oa)
{
	if (oa)
		stop_monitoring(oa);
}

void oa_free(struct onaccess *oa)
{
	if (!oa)
		return;
	stop_monitoring(oa);
	/* what the pool still held was answered by pool_shutdown; anything
	 * left never reached it */
	while (oa->events) {
		struct oa_event *e = oa->events;

		unlink_event(oa, e);
		util_close(&e->fd);
		free(e);
	}
	oa_cache_free(&oa->cache);
	pthread_mutex_destroy(&oa->qmu);
	free(oa->dirs);
	free(oa->mounts);
	free(oa->xuids);
	free(oa);
}
