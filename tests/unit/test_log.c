/* test_log: unit tests of common/log.c (cmocka).
 *
 * The logger is per process: every case configures it with log_open and
 * the teardown closes it. Standard error is captured by pointing fd 2 at a
 * file for the duration of a case. */
#include "common/log.h"
#include "common/util.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/wait.h>

struct fx {
	char dir[64];
	char path[128];
	char errpath[128];
	int saved_stderr;
};

static int setup(void **state)
{
	struct fx *fx = calloc(1, sizeof(*fx));

	if (!fx)
		return -1;
	snprintf(fx->dir, sizeof(fx->dir), "/tmp/test_log.XXXXXX");
	if (!mkdtemp(fx->dir)) {
		free(fx);
		return -1;
	}
	snprintf(fx->path, sizeof(fx->path), "%s/scanengined.log", fx->dir);
	snprintf(fx->errpath, sizeof(fx->errpath), "%s/stderr", fx->dir);
	fx->saved_stderr = -1;
	*state = fx;
	return 0;
}

static void stderr_restore(struct fx *fx)
{
	if (fx->saved_stderr >= 0) {
		dup2(fx->saved_stderr, STDERR_FILENO);
		util_close(&fx->saved_stderr);
	}
}

static int teardown(void **state)
{
	struct fx *fx = *state;

	log_set_sink(NULL);
	log_close();
	stderr_restore(fx);
	util_rm_rf(fx->dir);
	free(fx);
	return 0;
}

/* Point fd 2 at fx->errpath (truncated). */
static void stderr_capture(struct fx *fx)
{
	int fd = open(fx->errpath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	assert_true(fd >= 0);
	fx->saved_stderr = dup(STDERR_FILENO);
	assert_true(fx->saved_stderr >= 0);
	assert_int_equal(dup2(fd, STDERR_FILENO), STDERR_FILENO);
	close(fd);
}

/* Whole content of path in a static buffer ("" when missing). */
static const char *slurp(const char *path)
{
	static char buf[256 * 1024];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	size_t have = 0;
	ssize_t n;

	buf[0] = '\0';
	if (fd < 0)
		return buf;
	while (have < sizeof(buf) - 1 && (n = read(fd, buf + have, sizeof(buf) - 1 - have)) > 0)
		have += (size_t)n;
	close(fd);
	buf[have] = '\0';
	return buf;
}

static void open_file_log(struct fx *fx, bool verbose, bool timestamps)
{
	struct log_options o = {
		.ident = "testd",
		.file = fx->path,
		.to_stderr = false,
		.verbose = verbose,
		.timestamps = timestamps,
	};

	assert_int_equal(log_open(&o), 0);
}

/* "ident[pid]: LEVEL: text\n" */
static void expect_line(char *out, size_t n, const char *level, const char *text)
{
	snprintf(out, n, "testd[%d]: %s: %s\n", (int)getpid(), level, text);
}

static void test_file_format(void **state)
{
	struct fx *fx = *state;
	char want[1024], l[256];

	open_file_log(fx, true, false);
	assert_true(log_file_fd() >= 0);
	log_error("disk %s", "full");
	log_warn("w %d", 1);
	log_info("i %u", 2u);
	log_debug("d %x", 255);
	log_msg(LOG_LVL_INFO, "%s", "via log_msg");
	log_emit(LOG_LVL_WARN, "raw %s %d no formatting");

	want[0] = '\0';
	expect_line(l, sizeof(l), "ERROR", "disk full");
	strcat(want, l);
	expect_line(l, sizeof(l), "WARNING", "w 1");
	strcat(want, l);
	expect_line(l, sizeof(l), "INFO", "i 2");
	strcat(want, l);
	expect_line(l, sizeof(l), "DEBUG", "d ff");
	strcat(want, l);
	expect_line(l, sizeof(l), "INFO", "via log_msg");
	strcat(want, l);
	expect_line(l, sizeof(l), "WARNING", "raw %s %d no formatting");
	strcat(want, l);
	assert_string_equal(slurp(fx->path), want);
}

static void test_file_open_flags(void **state)
{
	struct fx *fx = *state;
	struct stat st;
	mode_t old;
	int fd, fl;

	/* existing content is appended to */
	fd = open(fx->path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "old line\n", 9), 9);
	close(fd);
	open_file_log(fx, false, false);
	fd = log_file_fd();
	assert_true(fd >= 0);
	fl = fcntl(fd, F_GETFL);
	assert_int_equal(fl & O_APPEND, O_APPEND);
	assert_int_equal(fl & O_ACCMODE, O_WRONLY);
	assert_int_equal(fcntl(fd, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
	log_info("new");
	assert_true(strncmp(slurp(fx->path), "old line\ntestd[", 15) == 0);
	log_close();
	assert_int_equal(log_file_fd(), -1);
	assert_int_equal(fcntl(fd, F_GETFD), -1); /* really closed */

	/* a new file is created 0640 */
	unlink(fx->path);
	old = umask(0);
	open_file_log(fx, false, false);
	umask(old);
	assert_int_equal(stat(fx->path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0640);
}

static void test_verbose_filter(void **state)
{
	struct fx *fx = *state;
	char want[256];

	open_file_log(fx, false, false);
	log_debug("hidden %d", 1);
	log_emit(LOG_LVL_DEBUG, "hidden too");
	log_info("shown");
	expect_line(want, sizeof(want), "INFO", "shown");
	assert_string_equal(slurp(fx->path), want);

	/* reconfigured verbose: debug lines appear */
	unlink(fx->path);
	open_file_log(fx, true, false);
	log_debug("now %s", "visible");
	expect_line(want, sizeof(want), "DEBUG", "now visible");
	assert_string_equal(slurp(fx->path), want);
}

static void test_timestamps(void **state)
{
	struct fx *fx = *state;
	regex_t re;
	char pat[256];

	open_file_log(fx, false, true);
	log_info("stamped");
	snprintf(pat, sizeof(pat),
		 "^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3} "
		 "testd\\[%d\\]: INFO: stamped\n$",
		 (int)getpid());
	assert_int_equal(regcomp(&re, pat, REG_EXTENDED | REG_NOSUB), 0);
	if (regexec(&re, slurp(fx->path), 0, NULL, 0) != 0)
		fail_msg("line \"%s\" does not match %s", slurp(fx->path), pat);
	regfree(&re);
}

static void test_stderr(void **state)
{
	struct fx *fx = *state;
	struct log_options o = {.ident = "testd", .to_stderr = true};
	char want[512], l[256];

	stderr_capture(fx);
	assert_int_equal(log_open(&o), 0);
	assert_int_equal(log_file_fd(), -1);
	log_warn("to stderr");
	stderr_restore(fx);
	expect_line(want, sizeof(want), "WARNING", "to stderr");
	assert_string_equal(slurp(fx->errpath), want);

	/* both file and stderr get the same line */
	stderr_capture(fx);
	o.file = fx->path;
	assert_int_equal(log_open(&o), 0);
	log_error("both");
	stderr_restore(fx);
	expect_line(l, sizeof(l), "ERROR", "both");
	assert_string_equal(slurp(fx->errpath), l);
	assert_string_equal(slurp(fx->path), l);

	/* neither: nothing anywhere (and no crash) */
	stderr_capture(fx);
	o.file = NULL;
	o.to_stderr = false;
	assert_int_equal(log_open(&o), 0);
	log_error("nowhere");
	stderr_restore(fx);
	assert_string_equal(slurp(fx->errpath), "");
	assert_string_equal(slurp(fx->path), l); /* the old file no longer written */
}

/* A file that cannot be opened: -errno, and stderr is still configured. */
static void test_open_failure(void **state)
{
	struct fx *fx = *state;
	struct log_options o = {.ident = "testd", .to_stderr = true};
	char bad[256], want[256];

	snprintf(bad, sizeof(bad), "%s/missing/dir/log", fx->dir);
	o.file = bad;
	stderr_capture(fx);
	assert_int_equal(log_open(&o), -ENOENT);
	assert_int_equal(log_file_fd(), -1);
	log_info("still here");
	stderr_restore(fx);
	expect_line(want, sizeof(want), "INFO", "still here");
	assert_string_equal(slurp(fx->errpath), want);
	/* reopen retries the configured path */
	assert_int_equal(log_reopen(), -ENOENT);
}

static enum log_level sink_lvl[8];
static char sink_text[8][256];
static int nsink;

static void sink(enum log_level lvl, const char *text)
{
	if (nsink < 8) {
		sink_lvl[nsink] = lvl;
		util_strlcpy(sink_text[nsink], text, sizeof(sink_text[0]));
	}
	nsink++;
}

static void test_sink(void **state)
{
	struct fx *fx = *state;
	char want[256];

	nsink = 0;
	open_file_log(fx, false, false);
	log_set_sink(sink);
	log_error("to the sink %d", 5);
	log_emit(LOG_LVL_WARN, "emitted");
	log_debug("filtered before the sink");
	assert_int_equal(nsink, 2);
	assert_int_equal(sink_lvl[0], LOG_LVL_ERROR);
	assert_string_equal(sink_text[0], "to the sink 5"); /* unformatted: no prefix */
	assert_int_equal(sink_lvl[1], LOG_LVL_WARN);
	assert_string_equal(sink_text[1], "emitted");
	assert_string_equal(slurp(fx->path), ""); /* instead of, not in addition */

	/* verbose: debug reaches the sink */
	open_file_log(fx, true, false);
	log_debug("dbg");
	assert_int_equal(nsink, 3);
	assert_int_equal(sink_lvl[2], LOG_LVL_DEBUG);
	assert_string_equal(sink_text[2], "dbg");

	/* NULL restores the configured outputs */
	log_set_sink(NULL);
	log_info("back");
	assert_int_equal(nsink, 3);
	expect_line(want, sizeof(want), "INFO", "back");
	assert_string_equal(slurp(fx->path), want);
}

/* logrotate: rename, log, reopen, log. */
static void test_reopen_after_rename(void **state)
{
	struct fx *fx = *state;
	char rotated[160], l1[256], l2[256], l3[256], both[512];

	open_file_log(fx, false, false);
	log_info("one");
	snprintf(rotated, sizeof(rotated), "%s.1", fx->path);
	assert_int_equal(rename(fx->path, rotated), 0);
	log_info("two"); /* still the old (renamed) file */
	assert_int_equal(log_reopen(), 0);
	log_info("three");
	expect_line(l1, sizeof(l1), "INFO", "one");
	expect_line(l2, sizeof(l2), "INFO", "two");
	expect_line(l3, sizeof(l3), "INFO", "three");
	snprintf(both, sizeof(both), "%s%s", l1, l2);
	assert_string_equal(slurp(rotated), both);
	assert_string_equal(slurp(fx->path), l3);
	assert_true(log_file_fd() >= 0);

	/* reopen failing (the path is now a directory) keeps the old
	 * descriptor, and lines still reach the old file */
	{
		int fd = log_file_fd();
		char want[1024];

		assert_int_equal(rename(fx->path, rotated), 0);
		assert_int_equal(mkdir(fx->path, 0755), 0);
		assert_int_equal(log_reopen(), -EISDIR);
		assert_int_equal(log_file_fd(), fd);
		log_info("four");
		expect_line(l1, sizeof(l1), "INFO", "four");
		snprintf(want, sizeof(want), "%s%s", l3, l1);
		assert_string_equal(slurp(rotated), want);
		assert_int_equal(rmdir(fx->path), 0);
	}

	/* without a file configured, reopen is a no-op */
	log_close();
	assert_int_equal(log_reopen(), 0);
	assert_int_equal(log_file_fd(), -1);
}

static void test_truncation(void **state)
{
	struct fx *fx = *state;
	char *big = malloc(5001);
	const char *got;
	size_t len;

	assert_non_null(big);
	memset(big, 'a', 5000);
	big[5000] = '\0';
	open_file_log(fx, false, false);

	/* formatted: the text is cut at 2047 bytes, the line stays one line */
	log_info("%s", big);
	got = slurp(fx->path);
	len = strlen(got);
	assert_int_equal(got[len - 1], '\n');
	assert_ptr_equal(strchr(got, '\n'), got + len - 1);
	{
		char prefix[64];
		int n = snprintf(prefix, sizeof(prefix), "testd[%d]: INFO: ", (int)getpid());

		assert_int_equal(len, (size_t)n + 2047 + 1);
	}

	/* emitted: the whole line is capped and still ends in a newline */
	unlink(fx->path);
	assert_int_equal(log_reopen(), 0);
	log_emit(LOG_LVL_INFO, big);
	got = slurp(fx->path);
	len = strlen(got);
	assert_int_equal(len, 2048 + 128 - 1);
	assert_int_equal(got[len - 1], '\n');
	assert_ptr_equal(strchr(got, '\n'), got + len - 1);
	free(big);
}

static void test_errno_preserved(void **state)
{
	struct fx *fx = *state;

	open_file_log(fx, true, false);
	errno = EXDEV;
	log_info("x");
	assert_int_equal(errno, EXDEV);
	errno = ENOSPC;
	log_debug("y");
	assert_int_equal(errno, ENOSPC);
}

static void test_ident(void **state)
{
	struct fx *fx = *state;
	struct log_options o = {.file = fx->path};
	char want[256];

	/* NULL: the default */
	assert_int_equal(log_open(&o), 0);
	log_info("a");
	snprintf(want, sizeof(want), "scanengine[%d]: INFO: a\n", (int)getpid());
	assert_string_equal(slurp(fx->path), want);

	/* long: cut to 31 bytes */
	unlink(fx->path);
	o.ident = "0123456789012345678901234567890123456789";
	assert_int_equal(log_open(&o), 0);
	log_info("b");
	snprintf(want, sizeof(want), "0123456789012345678901234567890[%d]: INFO: b\n",
		 (int)getpid());
	assert_string_equal(slurp(fx->path), want);
}

/* fatal: one ERROR line, then _exit(status) (checked in a child). */
static void test_fatal(void **state)
{
	struct fx *fx = *state;
	pid_t pid;
	int status;
	char want[256];

	open_file_log(fx, false, false);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		fatal(7, "cannot %s", "continue");
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 7);
	snprintf(want, sizeof(want), "testd[%d]: ERROR: cannot continue\n", (int)pid);
	assert_string_equal(slurp(fx->path), want);
}

/* Lines of processes sharing the file (children keep log_file_fd across
 * fork) are never interleaved: one write per line on O_APPEND. */
static void test_concurrent_lines(void **state)
{
	struct fx *fx = *state;
	enum { KIDS = 4, LINES = 200 };
	pid_t pids[KIDS];
	const char *got;
	int count = 0;

	open_file_log(fx, false, false);
	for (int k = 0; k < KIDS; k++) {
		pids[k] = fork();
		assert_true(pids[k] >= 0);
		if (pids[k] == 0) {
			for (int i = 0; i < LINES; i++)
				log_info("kid %d line %03d %s", k, i,
					 "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
			_exit(0);
		}
	}
	for (int k = 0; k < KIDS; k++)
		assert_int_equal(waitpid(pids[k], NULL, 0), pids[k]);
	/* every line well-formed */
	got = slurp(fx->path);
	for (const char *p = got; *p;) {
		const char *nl = strchr(p, '\n');
		int pid, k, i;
		char tail[64];

		assert_non_null(nl);
		assert_int_equal(
			sscanf(p, "testd[%d]: INFO: kid %d line %d %63s", &pid, &k, &i, tail), 4);
		assert_int_equal(strlen(tail), 40);
		assert_true(k >= 0 && k < KIDS && i >= 0 && i < LINES);
		assert_ptr_equal(p + strcspn(p, "\n"), nl);
		count++;
		p = nl + 1;
	}
	assert_int_equal(count, KIDS * LINES);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_file_format),
		T(test_file_open_flags),
		T(test_verbose_filter),
		T(test_timestamps),
		T(test_stderr),
		T(test_open_failure),
		T(test_sink),
		T(test_reopen_after_rename),
		T(test_truncation),
		T(test_errno_preserved),
		T(test_ident),
		T(test_fatal),
		T(test_concurrent_lines),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
