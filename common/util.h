/* util: small helpers shared by every scanengine process. */
#ifndef SE_COMMON_UTIL_H
#define SE_COMMON_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define SE_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define SE_MIN(a, b)	 ((a) < (b) ? (a) : (b))
#define SE_MAX(a, b)	 ((a) > (b) ? (a) : (b))

/* util_close: close fd if it is >= 0 and set it to -1; keeps errno. */
void util_close(int *fd);

/* util_now_ms: CLOCK_MONOTONIC in milliseconds. */
uint64_t util_now_ms(void);

/* util_now_us: CLOCK_MONOTONIC in microseconds. */
uint64_t util_now_us(void);

/* util_strlcpy: copy src into dst of size n, always NUL-terminated.
 * Returns strlen(src); truncation happened if the result is >= n. */
size_t util_strlcpy(char *dst, const char *src, size_t n);

/* util_set_nonblock: set or clear O_NONBLOCK. Returns 0 or -errno. */
int util_set_nonblock(int fd, bool on);

/* util_set_cloexec: set FD_CLOEXEC. Returns 0 or -errno. */
int util_set_cloexec(int fd);

/* util_write_all: write len bytes (blocking fd), retrying on EINTR and short
 * writes. Returns 0 or -errno. */
int util_write_all(int fd, const void *buf, size_t len);

struct iovec;

/* util_sendmsg_fd: sendmsg() of iov[iovcnt] with fd attached (SCM_RIGHTS)
 * when fd >= 0; extra send flags in flags. Retries on EINTR and never
 * raises SIGPIPE. The fd stays the caller's. Returns the bytes sent or
 * -errno. */
ssize_t util_sendmsg_fd(int sock, const struct iovec *iov, int iovcnt, int fd, int flags);

/* util_copy_fd: copy in to out from their current offsets to in's end:
 * copy_file_range (in-kernel, reflinks where the file system can), else
 * read/write (another file system, an old kernel). *copied (may be NULL)
 * gets the bytes copied. Returns 0 or -errno. */
int util_copy_fd(int in, int out, uint64_t *copied);

/* util_read_all: read from fd until EOF or len bytes, retrying on EINTR and
 * short reads. Returns the bytes read or -errno. */
ssize_t util_read_all(int fd, void *buf, size_t len);

/* util_close_fds_except: close every descriptor >= 3 that is not in keep[]
 * (used in a child right after fork). Returns 0 or -errno. */
int util_close_fds_except(const int *keep, size_t nkeep);

/* util_reset_signals: in a child right after fork, undo what the
 * supervisor set for its signalfd: an empty signal mask and default
 * dispositions, SIGPIPE ignored. */
void util_reset_signals(void);

/* util_parse_u64: parse a decimal unsigned integer, the whole string.
 * Returns 0 or -EINVAL / -ERANGE. */
int util_parse_u64(const char *s, uint64_t *out);

/* util_mkdir_p: create a directory and its parents with mode (existing
 * directories are left as they are; an existing non-directory is -ENOTDIR).
 * Returns 0 or -errno. */
int util_mkdir_p(const char *path, mode_t mode);

/* util_rm_rf: remove a directory tree (up to 1024 levels deep) without
 * following symlinks. Missing is not an error. Returns 0 or the first -errno
 * met. */
int util_rm_rf(const char *path);

/* util_crash_point: fault injection for the crash-safety tests. Every call
 * counts one point passed (in this process); when the environment names
 * this point, as SCANENGINE_CRASH_POINT=<n> (the n-th call, from 1) or
 * SCANENGINE_CRASH_POINT=<name> (the first call with that name), the
 * process kills itself with SIGKILL there, as a power cut or the OOM
 * killer would. Without the variable it only counts. name: the labelled
 * step, e.g. "store.activate.renamed". */
void util_crash_point(const char *name);

/* util_crash_points: how many points this process has passed (for tests
 * that enumerate them). */
unsigned int util_crash_points(void);

#endif
