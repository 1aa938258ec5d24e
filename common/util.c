/* util: small helpers shared by every scanengine process. */
#include "common/util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>
#include <linux/close_range.h>
#include <sys/syscall.h>

void util_close(int *fd)
{
	int saved = errno;

	if (fd && *fd >= 0) {
		close(*fd);
		*fd = -1;
	}
	errno = saved;
}

uint64_t util_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

uint64_t util_now_ms(void)
{
	return util_now_us() / 1000u;
}

size_t util_strlcpy(char *dst, const char *src, size_t n)
{
	size_t len = strlen(src);

	if (n) {
		size_t c = len < n - 1 ? len : n - 1;

		memcpy(dst, src, c);
		dst[c] = '\0';
	}
	return len;
}

int util_set_nonblock(int fd, bool on)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0)
		return -errno;
	fl = on ? (fl | O_NONBLOCK) : (fl & ~O_NONBLOCK);
	if (fcntl(fd, F_SETFL, fl) < 0)
		return -errno;
	return 0;
}

int util_set_cloexec(int fd)
{
	int fl = fcntl(fd, F_GETFD);

	if (fl < 0 || fcntl(fd, F_SETFD, fl | FD_CLOEXEC) < 0)
		return -errno;
	return 0;
}

int util_write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len) {
		ssize_t n = write(fd, p, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int util_copy_fd(int in, int out, uint64_t *copied)
{
	bool kernel_copy = true;
	char *buf = NULL;
	uint64_t total = 0;
	ssize_t n;
	int ret = 0;

	for (;;) {
		if (kernel_copy) {
			n = copy_file_range(in, NULL, out, NULL, 1u << 30, 0);
			if (n < 0 && (errno == EXDEV || errno == EINVAL || errno == ENOSYS ||
				      errno == EOPNOTSUPP)) {
				kernel_copy = false;
				buf = malloc(128 * 1024);
				if (!buf) {
					ret = -ENOMEM;
					goto out;
				}
				continue;
			}
		} else {
			n = read(in, buf, 128 * 1024);
			if (n > 0) {
				ret = util_write_all(out, buf, (size_t)n);
				if (ret)
					goto out;
			}
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			ret = -errno;
			goto out;
		}
		if (n == 0)
			break;
		total += (uint64_t)n;
	}
out:
	free(buf);
	if (copied)
		*copied = total;
	return ret;
}

ssize_t util_read_all(int fd, void *buf, size_t len)
{
	char *p = buf;
	size_t got = 0;

	while (got < len) {
		ssize_t n = read(fd, p + got, len - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			break;
		got += (size_t)n;
	}
	return (ssize_t)got;
}

ssize_t util_sendmsg_fd(int sock, const struct iovec *iov, int iovcnt, int fd, int flags)
{
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} cm;
	struct msghdr mh = {.msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)iovcnt};
	ssize_t n;

	if (fd >= 0) {
		struct cmsghdr *c;

		memset(&cm, 0, sizeof(cm));
		mh.msg_control = cm.buf;
		mh.msg_controllen = sizeof(cm.buf);
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &fd, sizeof(int));
	}
	do
		n = sendmsg(sock, &mh, MSG_NOSIGNAL | flags);
	while (n < 0 && errno == EINTR);
	return n < 0 ? -errno : n;
}

static int cmp_int(const void *a, const void *b)
{
	int x = *(const int *)a, y = *(const int *)b;

	return (x > y) - (x < y);
}

void util_reset_signals(void)
{
	sigset_t none;

	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	for (int s = 1; s < NSIG; s++)
		if (s != SIGKILL && s != SIGSTOP)
			signal(s, SIG_DFL);
	signal(SIGPIPE, SIG_IGN);
}

int util_close_fds_except(const int *keep, size_t nkeep)
{
	int sorted[64];
	unsigned int from = 3;
	size_t n = 0;

	if (nkeep > SE_ARRAY_SIZE(sorted))
		return -E2BIG;
	for (size_t i = 0; i < nkeep; i++)
		if (keep[i] >= 3)
			sorted[n++] = keep[i];
	qsort(sorted, n, sizeof(sorted[0]), cmp_int);
	for (size_t i = 0; i < n; i++) {
		unsigned int k = (unsigned int)sorted[i];

		if (k > from && syscall(SYS_close_range, from, k - 1, 0) < 0)
			return -errno;
		from = k + 1;
	}
	if (syscall(SYS_close_range, from, ~0U, 0) < 0)
		return -errno;
	return 0;
}

int util_parse_u64(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;

	/* strtoull would skip blanks and take a sign: only digits are a
	 * decimal unsigned integer */
	if (!s || *s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno == ERANGE)
		return -ERANGE;
	if (*end)
		return -EINVAL;
	*out = v;
	return 0;
}

/* mkdir, where an existing directory (not any existing file) is fine. */
static int mkdir_one(const char *path, mode_t mode)
{
	struct stat st;

	if (mkdir(path, mode) == 0)
		return 0;
	if (errno != EEXIST)
		return -errno;
	if (stat(path, &st) < 0)
		return -errno;
	return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
}

int util_mkdir_p(const char *path, mode_t mode)
{
	char buf[PATH_MAX];
	size_t len = util_strlcpy(buf, path, sizeof(buf));
	int r;

	if (len >= sizeof(buf))
		return -ENAMETOOLONG;
	if (!len)
		return -ENOENT;
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		r = mkdir_one(buf, mode);
		if (r < 0)
			return r;
		*p = '/';
	}
	return mkdir_one(buf, mode);
}

static int rm_rf_at(int parent, const char *name, int depth)
{
	int fd, ret = 0;
	DIR *d;
	struct dirent *de;

	if (unlinkat(parent, name, 0) == 0 || errno == ENOENT)
		return 0;
	if (errno != EISDIR && errno != EPERM)
		return -errno;
	/* Each level holds a directory descriptor; scratch trees are as deep
	 * as archive nesting (MaxRecursion), far below this. */
	if (depth > 1024)
		return -ELOOP;
	fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	d = fdopendir(fd);
	if (!d) {
		ret = -errno;
		close(fd);
		return ret;
	}
	while ((de = readdir(d))) {
		int r;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		r = rm_rf_at(dirfd(d), de->d_name, depth + 1);
		if (r && !ret)
			ret = r;
	}
	closedir(d);
	if (unlinkat(parent, name, AT_REMOVEDIR) < 0 && errno != ENOENT && !ret)
		ret = -errno;
	return ret;
}

int util_rm_rf(const char *path)
{
	return rm_rf_at(AT_FDCWD, path, 0);
}

static unsigned int crash_count;

void util_crash_point(const char *name)
{
	static int mode = -1; /* -1 unread, 0 off, 1 by number, 2 by name */
	static uint64_t at;
	static const char *at_name;
	const char *env;

	crash_count++;
	if (mode < 0) {
		env = getenv("SCANENGINE_CRASH_POINT");
		mode = 0;
		if (env && *env) {
			at_name = env;
			mode = util_parse_u64(env, &at) == 0 ? 1 : 2;
		}
	}
	if ((mode == 1 && crash_count == at) || (mode == 2 && name && !strcmp(name, at_name))) {
		if (getenv("SCANENGINE_CRASH_POINT_LOG"))
			dprintf(2, "crash point %u (%s): SIGKILL\n", crash_count,
				name ? name : "?");
		raise(SIGKILL);
	}
	if (mode && getenv("SCANENGINE_CRASH_POINT_LOG"))
		dprintf(2, "crash point %u: %s\n", crash_count, name ? name : "?");
}

unsigned int util_crash_points(void)
{
	return crash_count;
}
