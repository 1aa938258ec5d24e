/* reader: the thread that reads the fanotify group (onaccess.h).
 *
 * Why a thread: the supervisor itself opens files — a path a client asks
 * it to scan, /etc/passwd for a user lookup, a library loaded late — and
 * with /etc or /usr watched, such an open blocks in the kernel until the
 * group answers. If the only reader were the event loop, which is the
 * very thread blocked in open(), it would wait on itself forever. So this
 * thread reads every event, answers at once those of the service itself
 * and of excluded processes (procfs reads only: no lock, no logging, no
 * NSS), and hands the rest to the event loop through a bounded queue and
 * an eventfd. A full queue is answered here by the fail policy. Nothing
 * else runs in this thread, and nothing in it allocates memory once it
 * runs: the supervisor forks helpers that do not exec (the store's commit
 * helper, zygotes), and a child must never find an allocator lock held by
 * this thread, which does not exist in the child. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/fanotify.h>
#include <unistd.h>

#include "common/util.h"
#include "fanotify/onaccess_int.h"

#define READ_BUF (64 * 1024)
#define PERM	 (FAN_OPEN_PERM | FAN_OPEN_EXEC_PERM)

static void add(uint64_t *c)
{
	__atomic_fetch_add(c, 1, __ATOMIC_RELAXED);
}

bool oa_respond(int fan, int fd, bool allow)
{
	struct fanotify_response resp = {.fd = fd, .response = allow ? FAN_ALLOW : FAN_DENY};
	ssize_t w;

	do
		w = write(fan, &resp, sizeof(resp));
	while (w < 0 && errno == EINTR);
	return w == (ssize_t)sizeof(resp);
}

/* Answer (a permission event) and close: the event is over. */
static void settle(struct onaccess *oa, int fd, uint64_t mask, bool allow)
{
	if (mask & PERM) {
		if (!oa_respond(oa->fan, fd, allow))
			add(&oa->t.answer_errors);
		add(allow ? &oa->t.allowed : &oa->t.denied);
	}
	close(fd);
}

/* Whether pid is the service or excluded: from /proc/<pid>/status. */
static bool excluded(struct onaccess *oa, pid_t pid, uid_t *uid)
{
	char path[64], buf[2048], *p;
	long ppid = -1;
	ssize_t n;
	int fd;

	*uid = (uid_t)-1;
	if (pid == oa->self)
		return true; /* any thread of the supervisor */
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	if ((p = strstr(buf, "\nPPid:")))
		ppid = strtol(p + 6, NULL, 10);
	if ((p = strstr(buf, "\nUid:")))
		*uid = (uid_t)strtoul(p + 5, NULL, 10);
	if (ppid == oa->self)
		return true; /* the service's children: zygotes, validator, updater, ... */
	for (size_t i = 0; i < oa->nxuids; i++)
		if (oa->xuids[i] == *uid)
			return true;
	if (oa->cfg->oa_exclude_process.n) {
		char exe[PATH_MAX];

		snprintf(path, sizeof(path), "/proc/%d/exe", (int)pid);
		n = readlink(path, exe, sizeof(exe) - 1);
		if (n > 0) {
			exe[n] = '\0';
			for (size_t i = 0; i < oa->cfg->oa_exclude_process.n; i++)
				if (!strcmp(exe, oa->cfg->oa_exclude_process.items[i]))
					return true;
		}
	}
	return false;
}

static void count(struct onaccess *oa, uint64_t mask)
{
	if (mask & FAN_OPEN_PERM)
		add(&oa->t.open_perm);
	if (mask & FAN_OPEN_EXEC_PERM)
		add(&oa->t.open_exec_perm);
	if (mask & FAN_OPEN)
		add(&oa->t.open);
	if (mask & FAN_OPEN_EXEC)
		add(&oa->t.open_exec);
	if (mask & FAN_CLOSE_WRITE)
		add(&oa->t.close_write);
}

/* Queue one event for the event loop; false when the queue is full. */
static bool push(struct onaccess *oa, const struct oa_raw *r)
{
	bool ok;

	pthread_mutex_lock(&oa->qmu);
	ok = oa->qlen < oa->max_inflight;
	if (ok) {
		oa->q[(oa->qhead + oa->qlen) % OA_MAX_INFLIGHT] = *r;
		oa->qlen++;
	}
	pthread_mutex_unlock(&oa->qmu);
	return ok;
}

static void one(struct onaccess *oa, const struct fanotify_event_metadata *md, bool *queued)
{
	struct oa_raw r = {.fd = md->fd, .mask = md->mask, .pid = md->pid};

	if (md->mask & FAN_Q_OVERFLOW) {
		add(&oa->t.overflows);
		__atomic_store_n(&oa->overflowed, true, __ATOMIC_RELAXED);
	}
	if (md->fd < 0)
		return;
	if (md->vers != FANOTIFY_METADATA_VERSION) {
		settle(oa, md->fd, md->mask, true);
		return;
	}
	count(oa, md->mask);
	if (excluded(oa, md->pid, &r.uid)) {
		add(&oa->t.excluded);
		settle(oa, md->fd, md->mask, true);
		return;
	}
	if (!push(oa, &r)) {
		add(&oa->t.overloaded);
		settle(oa, md->fd, md->mask, !oa->deny_on_failure);
		return;
	}
	*queued = true;
}

/* Bytes to read: the kernel makes a descriptor for each event as it copies
 * it out, so no more events than the queue has room for (at least
 * OA_READ_MIN: those a full queue answers at once). Each event is one
 * fanotify_event_metadata: the group reports no extra information. */
static size_t read_size(struct onaccess *oa)
{
	size_t room;

	pthread_mutex_lock(&oa->qmu);
	room = oa->qlen < oa->max_inflight ? oa->max_inflight - oa->qlen : 0;
	pthread_mutex_unlock(&oa->qmu);
	room = SE_MAX(room, (size_t)OA_READ_MIN);
	return SE_MIN(room * FAN_EVENT_METADATA_LEN, (size_t)READ_BUF);
}

static void *reader(void *arg)
{
	struct onaccess *oa = arg;
	static char buf[READ_BUF] __attribute__((aligned(8)));
	uint64_t up = 1;

	/* running: oa_reader_start may return (see there) */
	if (write(oa->wake_efd, &up, sizeof(up)) < 0) {
		/* cannot fail for a fresh eventfd */
	}

	for (;;) {
		struct pollfd p[2] = {{.fd = oa->fan, .events = POLLIN},
				      {.fd = oa->stop_efd, .events = POLLIN}};
		bool queued = false;
		ssize_t n;

		if (poll(p, 2, -1) < 0 && errno != EINTR)
			break;
		if (p[1].revents)
			break;
		n = read(oa->fan, buf, read_size(oa));
		if (n <= 0)
			continue;
		for (const struct fanotify_event_metadata *md = (const void *)buf;
		     FAN_EVENT_OK(md, n); md = FAN_EVENT_NEXT(md, n))
			one(oa, md, &queued);
		if (queued) {
			uint64_t one_ = 1;

			if (write(oa->wake_efd, &one_, sizeof(one_)) < 0) {
				/* the counter is at its maximum: the loop is awake anyway */
			}
		}
	}
	return NULL;
}

int oa_reader_start(struct onaccess *oa)
{
	struct pollfd p;
	uint64_t v;
	int r;

	oa->stop_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	oa->wake_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (oa->stop_efd < 0 || oa->wake_efd < 0)
		return -errno;
	oa->qhead = oa->qlen = 0;
	r = pthread_create(&oa->thread, NULL, reader, oa);
	if (r)
		return -r;
	oa->thread_running = true;
	/* Wait until the thread runs its own code: its start-up allocates
	 * (the C library's, a sanitizer's), and a child forked meanwhile
	 * without exec (the store's commit helper) could find an allocator
	 * lock held by a thread that does not exist in it, and hang. After
	 * that the reader allocates nothing. */
	p = (struct pollfd){.fd = oa->wake_efd, .events = POLLIN};
	while (poll(&p, 1, -1) < 0 && errno == EINTR)
		;
	if (read(oa->wake_efd, &v, sizeof(v)) < 0) {
		/* the loop's handler reads it otherwise: nothing lost */
	}
	return 0;
}

void oa_reader_stop(struct onaccess *oa)
{
	struct oa_raw r;

	if (oa->thread_running) {
		uint64_t one_ = 1;

		if (write(oa->stop_efd, &one_, sizeof(one_)) < 0) {
			/* cannot fail for a fresh eventfd */
		}
		pthread_join(oa->thread, NULL);
		oa->thread_running = false;
	}
	/* what the loop never took: the group's close lets the openers go */
	while (oa_reader_take(oa, &r, 1))
		close(r.fd);
	util_close(&oa->stop_efd);
	util_close(&oa->wake_efd);
}

size_t oa_reader_take(struct onaccess *oa, struct oa_raw *out, size_t max)
{
	size_t n = 0;

	pthread_mutex_lock(&oa->qmu);
	while (n < max && oa->qlen) {
		out[n++] = oa->q[oa->qhead];
		oa->qhead = (oa->qhead + 1) % OA_MAX_INFLIGHT;
		oa->qlen--;
	}
	pthread_mutex_unlock(&oa->qmu);
	return n;
}
