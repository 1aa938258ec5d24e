/* test_util: unit tests of common/util.c (cmocka).
 *
 * Cases that change process-wide state (closing descriptors, dropping to
 * nobody) run in a forked child that never calls cmocka: it prints what went
 * wrong to stderr and _exit()s non-zero; the parent checks the status.
 *
 * Tests named test_* fail against the current code on purpose: each one
 * documents a defect (see the comment above it) and must pass once the
 * defect is fixed. */
#include "common/util.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>

#define NOBODY_ID 65534

struct fx {
	char dir[64]; /* private tree under /tmp, removed afterwards */
};

static int rm_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

/* Independent of util_rm_rf (which is under test here). */
static void rm_tree(const char *path)
{
	nftw(path, rm_cb, 32, FTW_DEPTH | FTW_PHYS);
}

static int setup(void **state)
{
	struct fx *fx = calloc(1, sizeof(*fx));

	if (!fx)
		return -1;
	/* tmpfs when there is one: deep trees are slow to remove on a busy
	 * journaling filesystem */
	snprintf(fx->dir, sizeof(fx->dir), "%s/test_util.XXXXXX",
		 access("/dev/shm", W_OK | X_OK) == 0 ? "/dev/shm" : "/tmp");
	if (!mkdtemp(fx->dir) || chmod(fx->dir, 0755) < 0) {
		free(fx);
		return -1;
	}
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fx *fx = *state;

	rm_tree(fx->dir);
	free(fx);
	return 0;
}

static bool fd_open(int fd)
{
	return fcntl(fd, F_GETFD) != -1;
}

static void write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
}

static bool exists(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0;
}

/* Wait for pid and require a clean exit with status 0. */
static void wait_ok(pid_t pid)
{
	int status;

	assert_true(pid > 0);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

#define CHILD_CHECK(cond)                                                                          \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "child check failed at line %d: %s\n", __LINE__, #cond);   \
			_exit(1);                                                                  \
		}                                                                                  \
	} while (0)

/* ---- util_close ---- */

static void test_close(void **state)
{
	int p[2], fd;

	(void)state;
	assert_int_equal(pipe(p), 0);
	fd = p[0];
	errno = 1234;
	util_close(&p[0]);
	assert_int_equal(errno, 1234); /* errno kept */
	assert_int_equal(p[0], -1);
	assert_false(fd_open(fd));
	errno = 1234;

	/* -1 and NULL are no-ops and keep errno */
	util_close(&p[0]);
	util_close(NULL);
	assert_int_equal(p[0], -1);
	assert_int_equal(errno, 1234);
	assert_true(fd_open(p[1]));
	util_close(&p[1]);
	assert_int_equal(p[1], -1);
}

/* ---- clocks ---- */

static void test_now(void **state)
{
	uint64_t us0, ms0, us1, ms1;
	struct timespec ts;

	(void)state;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	us0 = util_now_us();
	ms0 = util_now_ms();
	/* same clock as CLOCK_MONOTONIC, same scale */
	assert_true(us0 >= (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u);
	assert_true(ms0 >= us0 / 1000u && ms0 <= us0 / 1000u + 1000u);
	usleep(30000);
	us1 = util_now_us();
	ms1 = util_now_ms();
	assert_true(us1 - us0 >= 30000u && us1 - us0 < 2000000u);
	assert_true(ms1 - ms0 >= 29u && ms1 - ms0 < 2000u);
}

/* ---- util_strlcpy ---- */

static void test_strlcpy(void **state)
{
	char buf[8];

	(void)state;
	memset(buf, 'x', sizeof(buf));
	assert_int_equal(util_strlcpy(buf, "abc", sizeof(buf)), 3);
	assert_string_equal(buf, "abc");

	/* exactly fits: 7 chars + NUL */
	assert_int_equal(util_strlcpy(buf, "1234567", sizeof(buf)), 7);
	assert_string_equal(buf, "1234567");

	/* truncated, still terminated, returns the source length */
	memset(buf, 'x', sizeof(buf));
	assert_int_equal(util_strlcpy(buf, "123456789abc", sizeof(buf)), 12);
	assert_string_equal(buf, "1234567");

	/* n == 1: only the terminator */
	memset(buf, 'x', sizeof(buf));
	assert_int_equal(util_strlcpy(buf, "abc", 1), 3);
	assert_int_equal(buf[0], '\0');
	assert_int_equal(buf[1], 'x');

	/* n == 0: dst untouched */
	memset(buf, 'x', sizeof(buf));
	assert_int_equal(util_strlcpy(buf, "abc", 0), 3);
	assert_int_equal(buf[0], 'x');

	/* empty source */
	assert_int_equal(util_strlcpy(buf, "", sizeof(buf)), 0);
	assert_string_equal(buf, "");
}

/* ---- descriptor flags ---- */

static void test_set_nonblock(void **state)
{
	int p[2];

	(void)state;
	assert_int_equal(pipe(p), 0);
	assert_int_equal(fcntl(p[0], F_GETFL) & O_NONBLOCK, 0);
	assert_int_equal(util_set_nonblock(p[0], true), 0);
	assert_int_equal(fcntl(p[0], F_GETFL) & O_NONBLOCK, O_NONBLOCK);
	/* the other flags stay (O_RDONLY pipe end) */
	assert_int_equal(fcntl(p[0], F_GETFL) & O_ACCMODE, O_RDONLY);
	/* really non-blocking now */
	{
		char c;

		assert_int_equal(read(p[0], &c, 1), -1);
		assert_int_equal(errno, EAGAIN);
	}
	assert_int_equal(util_set_nonblock(p[0], true), 0); /* idempotent */
	assert_int_equal(util_set_nonblock(p[0], false), 0);
	assert_int_equal(fcntl(p[0], F_GETFL) & O_NONBLOCK, 0);
	close(p[0]);
	close(p[1]);
	assert_int_equal(util_set_nonblock(p[0], true), -EBADF);
	assert_int_equal(util_set_nonblock(-1, false), -EBADF);
}

static void test_set_cloexec(void **state)
{
	int p[2];

	(void)state;
	assert_int_equal(pipe(p), 0);
	assert_int_equal(fcntl(p[0], F_GETFD) & FD_CLOEXEC, 0);
	assert_int_equal(util_set_cloexec(p[0]), 0);
	assert_int_equal(fcntl(p[0], F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
	assert_int_equal(util_set_cloexec(p[0]), 0);
	assert_int_equal(fcntl(p[0], F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
	assert_int_equal(fcntl(p[1], F_GETFD) & FD_CLOEXEC, 0); /* only that fd */
	close(p[0]);
	close(p[1]);
	assert_int_equal(util_set_cloexec(p[0]), -EBADF);
}

/* ---- util_write_all ---- */

static void test_write_all_large(void **state)
{
	const size_t len = 1024 * 1024; /* much more than a pipe holds: short writes */
	unsigned char *buf = malloc(len), *got = malloc(len);
	size_t have = 0;
	int p[2];
	pid_t pid;

	(void)state;
	assert_non_null(buf);
	assert_non_null(got);
	for (size_t i = 0; i < len; i++)
		buf[i] = (unsigned char)(i * 7 + i / 251);
	assert_int_equal(pipe(p), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(p[0]);
		_exit(util_write_all(p[1], buf, len) == 0 ? 0 : 1);
	}
	close(p[1]);
	for (;;) {
		ssize_t n = read(p[0], got + have, len - have);

		assert_true(n >= 0);
		if (n == 0)
			break;
		have += (size_t)n;
		assert_true(have <= len);
	}
	close(p[0]);
	wait_ok(pid);
	assert_int_equal(have, len);
	assert_memory_equal(got, buf, len);
	free(buf);
	free(got);
}

static void test_write_all_errors(void **state)
{
	int p[2];
	void (*old)(int);

	(void)state;
	assert_int_equal(util_write_all(-1, "x", 1), -EBADF);
	assert_int_equal(util_write_all(-1, "x", 0), 0); /* nothing to write */

	assert_int_equal(pipe(p), 0);
	close(p[0]);
	old = signal(SIGPIPE, SIG_IGN);
	assert_int_equal(util_write_all(p[1], "abc", 3), -EPIPE);
	signal(SIGPIPE, old);
	close(p[1]);

	/* non-blocking and full: the error is returned, not spun on */
	assert_int_equal(pipe(p), 0);
	assert_int_equal(util_set_nonblock(p[1], true), 0);
	{
		static char big[256 * 1024];

		assert_int_equal(util_write_all(p[1], big, sizeof(big)), -EAGAIN);
	}
	close(p[0]);
	close(p[1]);
}

/* ---- util_close_fds_except ---- */

/* In a child: fds 3..59 open (plus 200 and 1000); keep some; check that the
 * kept ones (and 0-2) survive and every other one is closed. */
static void test_close_fds_except(void **state)
{
	pid_t pid;

	(void)state;
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int base = open("/dev/null", O_RDONLY);
		/* unsorted, duplicates, < 3 and negative entries are allowed */
		const int keep[] = {20, 5, 2, -1, 20, 1000, 7, 6};
		bool want[1024 + 1] = {false};

		CHILD_CHECK(base >= 0);
		for (int fd = 3; fd < 60; fd++)
			if (fd != base)
				CHILD_CHECK(dup2(base, fd) == fd);
		CHILD_CHECK(dup2(base, 200) == 200);
		CHILD_CHECK(dup2(base, 1000) == 1000);
		CHILD_CHECK(util_close_fds_except(keep, SE_ARRAY_SIZE(keep)) == 0);
		want[0] = want[1] = want[2] = true;
		want[5] = want[6] = want[7] = want[20] = want[1000] = true;
		for (int fd = 0; fd <= 1024; fd++) {
			if (fd_open(fd) != want[fd]) {
				fprintf(stderr, "fd %d: open=%d, want %d\n", fd, fd_open(fd),
					want[fd]);
				_exit(1);
			}
		}
		_exit(0);
	}
	wait_ok(pid);
}

static void test_close_fds_except_none(void **state)
{
	pid_t pid;

	(void)state;
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		for (int i = 0; i < 10; i++)
			CHILD_CHECK(open("/dev/null", O_RDONLY) >= 3);
		CHILD_CHECK(dup2(0, 3) == 3);
		CHILD_CHECK(util_close_fds_except(NULL, 0) == 0);
		for (int fd = 0; fd < 3; fd++)
			CHILD_CHECK(fd_open(fd));
		for (int fd = 3; fd <= 1024; fd++)
			CHILD_CHECK(!fd_open(fd));
		_exit(0);
	}
	wait_ok(pid);
}

static void test_close_fds_except_too_many(void **state)
{
	int keep[65];
	int fd;

	(void)state;
	for (size_t i = 0; i < SE_ARRAY_SIZE(keep); i++)
		keep[i] = 3 + (int)i;
	fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 3);
	/* refused before anything is closed (safe to call in the runner) */
	assert_int_equal(util_close_fds_except(keep, SE_ARRAY_SIZE(keep)), -E2BIG);
	assert_true(fd_open(fd));
	close(fd);
}

/* ---- util_parse_u64 ---- */

static void test_parse_u64(void **state)
{
	uint64_t v;

	(void)state;
	assert_int_equal(util_parse_u64("0", &v), 0);
	assert_true(v == 0);
	assert_int_equal(util_parse_u64("42", &v), 0);
	assert_true(v == 42);
	assert_int_equal(util_parse_u64("007", &v), 0); /* decimal, not octal */
	assert_true(v == 7);
	assert_int_equal(util_parse_u64("18446744073709551615", &v), 0);
	assert_true(v == UINT64_MAX);
	assert_int_equal(util_parse_u64("4294967296", &v), 0);
	assert_true(v == 4294967296ull);
}

static void test_parse_u64_errors(void **state)
{
	static const char *const inval[] = {
		"", "-1", "+1", "-0", "12a", "1 ", "0x10", "1.5", "1e3", "abc", "12\n",
	};
	uint64_t v = 77;

	(void)state;
	for (size_t i = 0; i < SE_ARRAY_SIZE(inval); i++) {
		v = 77;
		if (util_parse_u64(inval[i], &v) != -EINVAL)
			fail_msg("util_parse_u64(\"%s\") did not return -EINVAL", inval[i]);
		assert_true(v == 77); /* untouched on error */
	}
	assert_int_equal(util_parse_u64(NULL, &v), -EINVAL);
	assert_int_equal(util_parse_u64("18446744073709551616", &v), -ERANGE);
	assert_int_equal(util_parse_u64("99999999999999999999999", &v), -ERANGE);
	assert_true(v == 77);
}

/* Regression (common/util.c, util_parse_u64): the sign check looks only at s[0],
 * but strtoull skips leading white space and then accepts a sign. So
 * " -1" is accepted as 18446744073709551615 (strtoull negates) and " 5" as
 * 5, although the contract is "a decimal unsigned integer, the whole string".
 * Expected -EINVAL for each; it once returned 0. Reaches notify_watchdog_usec:
 * WATCHDOG_USEC=" -1" gives a watchdog interval of UINT64_MAX. */
static void test_parse_u64_leading_space_and_sign(void **state)
{
	static const char *const inval[] = {" -1", "\t-5", " 5", " +5", "\n1"};
	uint64_t v;

	(void)state;
	for (size_t i = 0; i < SE_ARRAY_SIZE(inval); i++) {
		v = 77;
		int r = util_parse_u64(inval[i], &v);

		if (r != -EINVAL)
			fail_msg("util_parse_u64(\"%s\") returned %d with %llu, want -EINVAL",
				 inval[i], r, (unsigned long long)v);
	}
}

/* ---- util_mkdir_p ---- */

static void test_mkdir_p(void **state)
{
	struct fx *fx = *state;
	char path[256], p2[256];
	struct stat st;
	mode_t old = umask(0);

	snprintf(path, sizeof(path), "%s/a/b/c", fx->dir);
	assert_int_equal(util_mkdir_p(path, 0750), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0750);
	snprintf(p2, sizeof(p2), "%s/a", fx->dir);
	assert_int_equal(stat(p2, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0750); /* parents get mode too */

	/* existing: fine, and modes of existing directories are left alone */
	assert_int_equal(util_mkdir_p(path, 0700), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0750);
	assert_int_equal(stat(fx->dir, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0755);

	/* trailing and doubled slashes */
	snprintf(path, sizeof(path), "%s/x//y/", fx->dir);
	assert_int_equal(util_mkdir_p(path, 0755), 0);
	snprintf(p2, sizeof(p2), "%s/x/y", fx->dir);
	assert_int_equal(stat(p2, &st), 0);
	assert_true(S_ISDIR(st.st_mode));

	/* a relative path works from the cwd too */
	{
		char cwd[PATH_MAX];

		assert_non_null(getcwd(cwd, sizeof(cwd)));
		assert_int_equal(chdir(fx->dir), 0);
		assert_int_equal(util_mkdir_p("rel/one", 0755), 0);
		assert_int_equal(chdir(cwd), 0);
		snprintf(p2, sizeof(p2), "%s/rel/one", fx->dir);
		assert_int_equal(stat(p2, &st), 0);
	}
	umask(old);
}

static void test_mkdir_p_errors(void **state)
{
	struct fx *fx = *state;
	char path[256], file[256];
	char *longp;

	snprintf(file, sizeof(file), "%s/file", fx->dir);
	write_file(file, "x");
	/* a file in the middle */
	snprintf(path, sizeof(path), "%s/file/sub", fx->dir);
	assert_int_equal(util_mkdir_p(path, 0755), -ENOTDIR);

	/* too long for PATH_MAX */
	longp = malloc(PATH_MAX + 10);
	assert_non_null(longp);
	memset(longp, 'a', PATH_MAX + 9);
	longp[0] = '/';
	longp[PATH_MAX + 9] = '\0';
	assert_int_equal(util_mkdir_p(longp, 0755), -ENAMETOOLONG);
	free(longp);

	/* a parent we may not write: run as nobody (needs root to switch) */
	if (geteuid() == 0) {
		pid_t pid;

		snprintf(path, sizeof(path), "%s/rootonly", fx->dir);
		assert_int_equal(mkdir(path, 0755), 0);
		snprintf(path, sizeof(path), "%s/rootonly/a/b", fx->dir);
		pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			CHILD_CHECK(setresgid(NOBODY_ID, NOBODY_ID, NOBODY_ID) == 0);
			CHILD_CHECK(setresuid(NOBODY_ID, NOBODY_ID, NOBODY_ID) == 0);
			CHILD_CHECK(util_mkdir_p(path, 0755) == -EACCES);
			_exit(0);
		}
		wait_ok(pid);
	}
}

/* Regression (common/util.c, util_mkdir_p): mkdir() failing with EEXIST is taken as
 * success for the last component too, without checking that what exists is
 * a directory. util_mkdir_p("<dir>/file") on an existing regular file
 * returns 0; expected -EEXIST (or -ENOTDIR). The supervisor relies on it for
 * StateDirectory/TemporaryDirectory, so a file there is reported as created
 * and the failure surfaces later with a less precise message. */
static void test_mkdir_p_existing_file(void **state)
{
	struct fx *fx = *state;
	char file[256];
	int r;

	snprintf(file, sizeof(file), "%s/plainfile", fx->dir);
	write_file(file, "x");
	r = util_mkdir_p(file, 0755);
	if (r != -EEXIST && r != -ENOTDIR)
		fail_msg("util_mkdir_p(<regular file>) returned %d, want -EEXIST/-ENOTDIR", r);
}

/* ---- util_rm_rf ---- */

static void test_rm_rf_tree(void **state)
{
	struct fx *fx = *state;
	char top[256], p[320];

	snprintf(top, sizeof(top), "%s/tree", fx->dir);
	assert_int_equal(util_mkdir_p(top, 0755), 0);
	snprintf(p, sizeof(p), "%s/a/b/c", top);
	assert_int_equal(util_mkdir_p(p, 0755), 0);
	snprintf(p, sizeof(p), "%s/a/b/c/f", top);
	write_file(p, "1");
	snprintf(p, sizeof(p), "%s/a/f", top);
	write_file(p, "2");
	snprintf(p, sizeof(p), "%s/.hidden", top);
	write_file(p, "3");
	snprintf(p, sizeof(p), "%s/fifo", top);
	assert_int_equal(mkfifo(p, 0600), 0);
	snprintf(p, sizeof(p), "%s/a/dangling", top);
	assert_int_equal(symlink("/nonexistent/x", p), 0);
	/* mode 0: only root can list it (what the daemon runs as) */
	if (geteuid() == 0) {
		snprintf(p, sizeof(p), "%s/a/locked", top);
		assert_int_equal(mkdir(p, 0), 0);
	}

	assert_int_equal(util_rm_rf(top), 0);
	assert_false(exists(top));
	assert_true(exists(fx->dir));

	/* missing is not an error */
	assert_int_equal(util_rm_rf(top), 0);
	snprintf(p, sizeof(p), "%s/no/such/dir", fx->dir);
	assert_int_equal(util_rm_rf(p), 0);

	/* a plain file */
	snprintf(p, sizeof(p), "%s/plain", fx->dir);
	write_file(p, "x");
	assert_int_equal(util_rm_rf(p), 0);
	assert_false(exists(p));
}

/* Symlinks inside the tree (to a directory and to a file outside it) and a
 * top-level symlink are removed as links; their targets stay. */
static void test_rm_rf_no_follow(void **state)
{
	struct fx *fx = *state;
	char top[256], out[256], p[320], t[320];

	snprintf(out, sizeof(out), "%s/outside", fx->dir);
	assert_int_equal(mkdir(out, 0755), 0);
	snprintf(p, sizeof(p), "%s/keep", out);
	write_file(p, "precious");
	snprintf(p, sizeof(p), "%s/sub", out);
	assert_int_equal(mkdir(p, 0755), 0);
	snprintf(p, sizeof(p), "%s/sub/keep2", out);
	write_file(p, "precious");

	snprintf(top, sizeof(top), "%s/tree", fx->dir);
	assert_int_equal(mkdir(top, 0755), 0);
	snprintf(p, sizeof(p), "%s/dirlink", top);
	assert_int_equal(symlink(out, p), 0);
	snprintf(p, sizeof(p), "%s/filelink", top);
	snprintf(t, sizeof(t), "%s/keep", out);
	assert_int_equal(symlink(t, p), 0);
	snprintf(p, sizeof(p), "%s/rel", top);
	assert_int_equal(symlink("../outside/sub", p), 0);

	assert_int_equal(util_rm_rf(top), 0);
	assert_false(exists(top));
	snprintf(p, sizeof(p), "%s/keep", out);
	assert_true(exists(p));
	snprintf(p, sizeof(p), "%s/sub/keep2", out);
	assert_true(exists(p));

	/* top-level symlink to a directory: only the link goes */
	snprintf(p, sizeof(p), "%s/toplink", fx->dir);
	assert_int_equal(symlink(out, p), 0);
	assert_int_equal(util_rm_rf(p), 0);
	assert_false(exists(p));
	snprintf(p, sizeof(p), "%s/sub/keep2", out);
	assert_true(exists(p));
	snprintf(p, sizeof(p), "%s/keep", out);
	assert_true(exists(p));
}

/* Errors are reported (first -errno) and what could not be removed stays. */
static void test_rm_rf_error(void **state)
{
	struct fx *fx = *state;
	char top[256], p[320];
	pid_t pid;

	if (geteuid() != 0)
		skip(); /* needs root to own the tree and switch to nobody */
	snprintf(top, sizeof(top), "%s/rootowned", fx->dir);
	assert_int_equal(mkdir(top, 0755), 0);
	snprintf(p, sizeof(p), "%s/f", top);
	write_file(p, "x");
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		CHILD_CHECK(setresgid(NOBODY_ID, NOBODY_ID, NOBODY_ID) == 0);
		CHILD_CHECK(setresuid(NOBODY_ID, NOBODY_ID, NOBODY_ID) == 0);
		CHILD_CHECK(util_rm_rf(top) == -EACCES);
		_exit(0);
	}
	wait_ok(pid);
	assert_true(exists(p));
}

/* Build a chain of depth nested directories "d" under top, with a file at
 * the bottom. */
static void make_deep(const char *top, int depth)
{
	int fd = open(top, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	assert_true(fd >= 0);
	for (int i = 0; i < depth; i++) {
		int nfd;

		assert_int_equal(mkdirat(fd, "d", 0755), 0);
		nfd = openat(fd, "d", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		assert_true(nfd >= 0);
		close(fd);
		fd = nfd;
	}
	{
		int f = openat(fd, "bottom", O_WRONLY | O_CREAT | O_CLOEXEC, 0644);

		assert_true(f >= 0);
		close(f);
	}
	close(fd);
}

static void test_rm_rf_deep_64(void **state)
{
	struct fx *fx = *state;
	char top[256];

	snprintf(top, sizeof(top), "%s/deep", fx->dir);
	assert_int_equal(mkdir(top, 0755), 0);
	make_deep(top, 60);
	assert_int_equal(util_rm_rf(top), 0);
	assert_false(exists(top));
}

/* Regression (common/util.c, rm_rf_at): recursion stops with -ELOOP at depth 65,
 * a limit the header does not state ("remove a directory tree"). A tree of
 * 100 nested directories is left in place (only the files above the limit
 * go) and util_rm_rf returns -ELOOP; expected 0 and the tree gone. A worker's
 * scratch directory (pool.c) or a previous run's (supervisor.c) holding such
 * a tree is never cleaned up. */
static void test_rm_rf_deep_tree(void **state)
{
	struct fx *fx = *state;
	char top[256];
	int r;

	snprintf(top, sizeof(top), "%s/deeper", fx->dir);
	assert_int_equal(mkdir(top, 0755), 0);
	make_deep(top, 100);
	r = util_rm_rf(top);
	if (r != 0 || exists(top))
		fail_msg("util_rm_rf(100-level tree) returned %d, tree %s", r,
			 exists(top) ? "still there" : "gone");
}

/* util_copy_fd copies a whole file in-kernel between files, falls back to
 * read/write where copy_file_range refuses (a pipe), and reports errors. */
static void test_copy_fd(void **state)
{
	size_t len = 300 * 1024 + 17;
	unsigned char *src = malloc(len), *back = malloc(len);
	uint64_t copied = 0;
	int in, out, p[2];

	(void)state;
	assert_non_null(src);
	assert_non_null(back);
	for (size_t i = 0; i < len; i++)
		src[i] = (unsigned char)(i * 7 + (i >> 9));
	in = memfd_create("in", MFD_CLOEXEC);
	out = memfd_create("out", MFD_CLOEXEC);
	assert_true(in >= 0 && out >= 0);
	assert_int_equal(util_write_all(in, src, len), 0);
	assert_int_equal(lseek(in, 0, SEEK_SET), 0);
	assert_int_equal(util_copy_fd(in, out, &copied), 0);
	assert_int_equal(copied, len);
	assert_int_equal(pread(out, back, len, 0), (ssize_t)len);
	assert_memory_equal(src, back, len);

	/* From a pipe: the read/write fallback. */
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	assert_int_equal(util_write_all(p[1], src, 4096), 0);
	close(p[1]);
	assert_int_equal(ftruncate(out, 0), 0);
	assert_int_equal(lseek(out, 0, SEEK_SET), 0);
	assert_int_equal(util_copy_fd(p[0], out, &copied), 0);
	assert_int_equal(copied, 4096);
	assert_int_equal(pread(out, back, 4096, 0), 4096);
	assert_memory_equal(src, back, 4096);
	close(p[0]);

	/* An fd not open for writing: the error comes back. */
	assert_int_equal(lseek(in, 0, SEEK_SET), 0);
	p[0] = open("/dev/null", O_RDONLY | O_CLOEXEC);
	assert_true(p[0] >= 0);
	assert_int_equal(util_copy_fd(in, p[0], NULL), -EBADF);
	close(p[0]);
	assert_int_equal(util_copy_fd(-1, out, &copied), -EBADF);
	assert_int_equal(copied, 0);
	close(in);
	close(out);
	free(src);
	free(back);
}

/* util_crash_point: the n-th point, or the named one, kills the process
 * with SIGKILL; without the variable nothing happens. */
static int crash_child(const char *env, unsigned int calls)
{
	int status;
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		if (env)
			setenv("SCANENGINE_CRASH_POINT", env, 1);
		for (unsigned int i = 0; i < calls; i++)
			util_crash_point(i == 2 ? "third" : "other");
		_exit(util_crash_points() == calls ? 0 : 1);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	return status;
}

static void test_crash_point(void **state)
{
	int st;

	(void)state;
	st = crash_child(NULL, 5);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	st = crash_child("2", 5);
	assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
	st = crash_child("6", 5);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	st = crash_child("third", 5);
	assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
	st = crash_child("third", 2);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_close),
		cmocka_unit_test(test_now),
		cmocka_unit_test(test_strlcpy),
		cmocka_unit_test(test_set_nonblock),
		cmocka_unit_test(test_set_cloexec),
		cmocka_unit_test(test_write_all_large),
		cmocka_unit_test(test_write_all_errors),
		cmocka_unit_test(test_copy_fd),
		cmocka_unit_test(test_crash_point),
		cmocka_unit_test(test_close_fds_except),
		cmocka_unit_test(test_close_fds_except_none),
		cmocka_unit_test(test_close_fds_except_too_many),
		cmocka_unit_test(test_parse_u64),
		cmocka_unit_test(test_parse_u64_errors),
		cmocka_unit_test(test_parse_u64_leading_space_and_sign),
		T(test_mkdir_p),
		T(test_mkdir_p_errors),
		T(test_mkdir_p_existing_file),
		T(test_rm_rf_tree),
		T(test_rm_rf_no_follow),
		T(test_rm_rf_error),
		T(test_rm_rf_deep_64),
		T(test_rm_rf_deep_tree),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
