/* onaccess_int: what onaccess.c (events, answers) and marks.c (the marks
 * and the watch for new directories) share. Not for other modules. */
#ifndef SE_FANOTIFY_ONACCESS_INT_H
#define SE_FANOTIFY_ONACCESS_INT_H

#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "common/evloop.h"
#include "fanotify/onaccess.h"
#include "scanengine/pool.h"

struct oa_event {
	struct onaccess *oa;
	int fd;		/* the event's descriptor: ours until answered and scanned */
	pid_t pid;	/* the opener */
	uid_t uid;	/* its real uid, (uid_t)-1 when unknown */
	uint64_t mask;	/* FAN_* */
	bool perm;	/* a permission event: it must be answered */
	bool answered;	/* (permission events) the answer is written */
	bool scanning;	/* job is in the pool */
	uint64_t t0_us; /* read */
	uint64_t deadline_ms;
	struct stat st; /* the file when the event was read */
	struct job job; /* its scan; fd a duplicate of the event descriptor */
	struct oa_event *next, *prev;
	/* several opens of the same file wait on one scan: the first (the
	 * leader) scans, the others follow it and are freed with it */
	struct oa_event *leader;
	struct oa_event *followers; /* (leader) linked by fnext */
	struct oa_event *fnext;
};

struct oa_cache_entry {
	dev_t dev;
	ino_t ino;
	off_t size;
	int64_t mtime_ns, ctime_ns;
	uint64_t gen; /* the cache generation it was put under */
	uint64_t expires_ms;
};

struct oa_cache {
	struct oa_cache_entry *v;
	size_t cap;
	uint64_t gen; /* bumped when the definitions change */
};

/* An event the reader thread hands to the event loop. */
struct oa_raw {
	int fd;
	uint64_t mask;
	pid_t pid;
	uid_t uid;
};

/* Counters the reader thread keeps (atomically). */
struct oa_tcounters {
	uint64_t open_perm, open_exec_perm, open, open_exec, close_write;
	uint64_t excluded, allowed, denied, overflows, overloaded, answer_errors;
};

/* One directory watched for new subdirectories (OnAccessIncludePath). */
struct oa_dir {
	int wd;
	char *path;
};

/* A mount: its mount point and ID (as in /proc/self/mountinfo). */
struct oa_mount {
	char *path;
	int id;
};

#define OA_PROCS     512 /* processes counted for fault 18 */
#define OA_MAX_ROOTS 64	 /* watched roots kept open for removing ignore marks */

struct oa_handle;

struct oa_proc {
	pid_t pid;
	uint32_t count;
};

struct oa_counters {
	uint64_t open_perm, open_exec_perm, open, open_exec, close_write;
	uint64_t allowed, denied, timed_out, too_large, excluded, overflows;
	uint64_t scan_errors, overloaded, detections, answer_errors;
	uint64_t scans, cache_hits, marks_placed, marks_refused, joined, cache_flushes;
	uint64_t max_latency_us;
};

struct onaccess {
	const struct config *cfg;
	const struct sandbox_identity *id;
	struct evloop *ev;
	struct pool *pool;
	struct faults *faults;
	pid_t self;
	bool enabled, running, deny_on_failure;
	bool inject_dup_failure;   /* test hook, see onaccess.h */
	uint64_t mask;		   /* what the marks ask for */
	unsigned int max_inflight; /* events queued, and in flight, at most each */
	int fan;		   /* the group, -1 */
	/* the reader thread (reader.c) and its queue to the event loop */
	pthread_t thread;
	bool thread_running;
	int stop_efd, wake_efd;
	struct ev_handler wake_ev;
	pthread_mutex_t qmu;
	struct oa_raw q[OA_MAX_INFLIGHT];
	size_t qhead, qlen;
	struct oa_tcounters t;
	int ino; /* inotify for new directories, -1 */
	struct ev_handler ino_ev;
	struct oa_dir *dirs;
	size_t ndirs, dirs_cap;
	struct oa_mount *mounts; /* mount marks of include trees (marks.c) */
	size_t nmounts, mounts_cap;
	int *mnt_ids; /* the mount table as last seen: its IDs, sorted */
	size_t nmnt_ids;
	int mi_fd; /* /proc/self/mountinfo, polled for new mounts; -1 */
	struct ev_handler mi_ev;
	uid_t *xuids; /* excluded uids: resolved names and numbers */
	size_t nxuids;
	uint64_t retry_at_ms;	 /* 0: no retry pending */
	char failure[512];	 /* why monitoring is not running */
	struct oa_event *events; /* in flight */
	unsigned int inflight;
	struct oa_counters n;
	struct oa_cache cache;
	/* overload (fault 18, overload.c) */
	bool overload;
	bool overflowed; /* set by the reader thread (atomic) */
	uint64_t above_since_ms, below_since_ms, window_start_ms;
	uint64_t last_bypass_ms; /* the overload policy answered an event */
	struct oa_proc procs[OA_PROCS];
	uint64_t flush_at_ms;	    /* the next flush of the ignore marks (the TTL) */
	uint64_t marks_since_flush; /* ignore marks placed since */
	/* those marks by file handle (ignores.c), and the watched roots
	 * whose mounts open them (by path: no descriptor pins a mount) */
	struct oa_handle *kept;
	size_t nkept, kept_cap;
	bool ignores_lost; /* a mark that only a flush can remove */
	struct {
		char *path;
		int mount_id;
	} roots[OA_MAX_ROOTS];
	size_t nroots;
};

/* ---- ignores.c ---- */

/* oa_ignores_init: the watched roots (include and mount paths, the mounts
 * marked below include paths) by mount ID. */
void oa_ignores_init(struct onaccess *oa);
/* oa_ignores_add_root: one more root (a mount marked later). */
void oa_ignores_add_root(struct onaccess *oa, const char *path);
/* oa_ignores_note: an ignore mark was placed on fd's inode. */
void oa_ignores_note(struct onaccess *oa, int fd);
/* oa_ignores_remove_all: remove every noted ignore mark one by one (mask:
 * the ignore mask); *removed counts those there were. Returns 0, or
 * -EAGAIN when some mark can only be removed by a flush. Forgets them
 * all either way. */
int oa_ignores_remove_all(struct onaccess *oa, uint64_t mask, size_t *removed);
/* oa_ignores_free: forget the marks and the roots. */
void oa_ignores_free(struct onaccess *oa);

/* ---- reader.c ---- */

/* oa_respond: write the answer for the permission event of descriptor fd
 * to the group fan (the one write that releases the opener; the
 * descriptor stays open). Returns whether it was written whole. Both
 * threads answer through it. */
bool oa_respond(int fan, int fd, bool allow);

/* oa_reader_start: the reader thread over oa->fan. Returns 0 or -errno. */
int oa_reader_start(struct onaccess *oa);
/* oa_reader_stop: stop and join it; events still queued are closed (the
 * group's close answers them). Call before closing the group. */
void oa_reader_stop(struct onaccess *oa);
/* oa_reader_take: up to max queued events, oldest first. */
size_t oa_reader_take(struct onaccess *oa, struct oa_raw *out, size_t max);

/* ---- overload.c ---- */

/* oa_overload_note: an event of pid entered the queue. */
void oa_overload_note(struct onaccess *oa, pid_t pid);
/* oa_overloaded: fault 18 is raised: the overload policy applies. */
bool oa_overloaded(const struct onaccess *oa);
/* oa_overload_tick: raise or clear fault 18 (see overload.c). */
void oa_overload_tick(struct onaccess *oa, uint64_t now);

/* ---- cache.c ---- */

int oa_cache_init(struct oa_cache *c, size_t cap);
void oa_cache_free(struct oa_cache *c);
/* oa_cache_hit: whether st (the file now) was found clean with the current
 * definitions, less than OA_CACHE_TTL_S ago. */
bool oa_cache_hit(const struct oa_cache *c, const struct stat *st, uint64_t now_ms);
/* oa_cache_put: st was found clean now. */
void oa_cache_put(struct oa_cache *c, const struct stat *st, uint64_t now_ms);
/* oa_cache_invalidate: forget every verdict (new definitions). */
void oa_cache_invalidate(struct oa_cache *c);

/* ---- marks.c ---- */

/* oa_marks_add: mark every OnAccessMountPath mount and OnAccessIncludePath
 * tree (a mount root: by mount marks) and watch the trees of directory
 * marks for new directories. Returns 0 or -errno with
 * err[512] naming the path and the errno (for fault 8). */
int oa_marks_add(struct onaccess *oa, char *err);

/* oa_path_excluded: whether path is in an OnAccessExcludePath tree. */
bool oa_path_excluded(const struct onaccess *oa, const char *path);

/* oa_marks_drop: forget the watched directories and mounts (the
 * descriptors are closed by the caller). */
void oa_marks_drop(struct onaccess *oa);

/* oa_marks_on_inotify: the inotify descriptor is readable: mark new
 * directories. */
void oa_marks_on_inotify(struct ev_handler *h, uint32_t revents);

/* oa_marks_on_mounts: the mount table changed (/proc/self/mountinfo
 * polled): mark the new mounts in include trees; forget those gone. */
void oa_marks_on_mounts(struct ev_handler *h, uint32_t revents);

#endif
