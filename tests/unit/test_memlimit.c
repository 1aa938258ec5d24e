/* test_memlimit: unit tests of sandbox/memlimit (cmocka).
 *
 * Each mechanism this host has is forced in turn (cgroup v2, cgroup v1,
 * RLIMIT_AS); a case whose mechanism is missing here skips with the reason.
 * The cgroup cases need root. Processes that enter a limit are forked
 * children that never call cmocka: they report by exit status (or die of
 * SIGKILL from the OOM killer) and _exit(), which keeps LeakSanitizer out
 * of them. Every cgroup a case makes is recorded in its fixture, and the
 * teardown kills what is left in it and removes it, also after a failure.
 *
 * ASan: RLIMIT_AS cases skip (its shadow memory needs terabytes of address
 * space, and memlimit_enter does not apply RLIMIT_AS there). The cgroup
 * OOM case runs as is: the ASan allocator maps large chunks with mmap and
 * the memset touches them, so the child is OOM-killed just the same. */
#include "sandbox/memlimit.h"
#include "common/util.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define TEST_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) ||                         \
	__has_feature(memory_sanitizer)
#define TEST_SANITIZER 1
#endif
#endif
#ifndef TEST_SANITIZER
#define TEST_SANITIZER 0
#endif

#define MIB		(1024ULL * 1024ULL)
#define CHILD_TIMEOUT_S 120 /* a child stuck under its limit dies of SIGALRM */
#define FX_SLOTS	2
#define FX_CHILDREN	2

/* Exit codes of the touching child. */
#define CHILD_OK	 0
#define CHILD_ENTER_FAIL 2
#define CHILD_ENOMEM	 3
#define CHILD_OTHER_FAIL 4
#define CHILD_BAD_RLIMIT 5

static const int kind_v2 = MEMLIMIT_CGROUP2;
static const int kind_v1 = MEMLIMIT_CGROUP1;
static const int kind_rl = MEMLIMIT_RLIMIT;

struct fixture {
	int kind;		      /* forced kind, from the case's initial state */
	char name[64];		      /* unique cgroup name for this case */
	struct memlimit *m[FX_SLOTS]; /* freed by the teardown unless NULL */
	char dir[FX_SLOTS][PATH_MAX]; /* their cgroups, removed by the teardown */
	pid_t child[FX_CHILDREN];     /* children still to kill and reap */
};

static int fx_setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));
	struct timespec ts;

	if (!fx)
		return -1;
	fx->kind = *state ? *(const int *)*state : -1;
	/* pid and time: unique across cases and across concurrent runs */
	clock_gettime(CLOCK_MONOTONIC, &ts);
	snprintf(fx->name, sizeof(fx->name), "se-test-%d-%lld%09ld", (int)getpid(),
		 (long long)ts.tv_sec, ts.tv_nsec);
	*state = fx;
	return 0;
}

/* Kill and reap a child of ours, if any. */
static void reap(pid_t *pid)
{
	if (*pid > 0) {
		kill(*pid, SIGKILL);
		waitpid(*pid, NULL, 0);
	}
	*pid = 0;
}

/* SIGKILL every process still in the cgroup dir (ours, as only this test
 * puts processes there). */
static void empty_cgroup(const char *dir)
{
	char path[PATH_MAX];
	FILE *fp;
	int pid;

	snprintf(path, sizeof(path), "%s/cgroup.procs", dir);
	fp = fopen(path, "re");
	if (!fp)
		return;
	while (fscanf(fp, "%d", &pid) == 1)
		if (pid > 0)
			kill(pid, SIGKILL);
	fclose(fp);
}

static int fx_teardown(void **state)
{
	struct fixture *fx = *state;

	for (int i = 0; i < FX_CHILDREN; i++)
		reap(&fx->child[i]);
	for (int i = 0; i < FX_SLOTS; i++) {
		if (fx->dir[i][0])
			empty_cgroup(fx->dir[i]);
		memlimit_free(fx->m[i]);
		if (!fx->dir[i][0])
			continue;
		/* a killed process leaves its cgroup when it has exited */
		for (int tries = 0; tries < 100; tries++) {
			if (rmdir(fx->dir[i]) == 0 || errno == ENOENT)
				break;
			empty_cgroup(fx->dir[i]);
			usleep(10000);
		}
		if (access(fx->dir[i], F_OK) == 0)
			fprintf(stderr, "test_memlimit: could not remove %s\n", fx->dir[i]);
	}
	free(fx);
	return 0;
}

/* Make the limit in slot i with the fixture's kind, or skip the case when
 * this host does not have that mechanism. */
static struct memlimit *fx_new(struct fixture *fx, int i, uint64_t bytes)
{
	char err[256] = "";
	struct memlimit *m;

	if (fx->kind == MEMLIMIT_RLIMIT && TEST_SANITIZER) {
		print_message("skipped: RLIMIT_AS cannot be tested in a sanitizer build\n");
		skip();
	}
	if (fx->kind != MEMLIMIT_RLIMIT && geteuid() != 0) {
		print_message("skipped: memory cgroups need root\n");
		skip();
	}
	m = memlimit_new(bytes, fx->name, fx->kind, err);
	if (!m && errno == EOPNOTSUPP) {
		print_message("skipped: %s unavailable here: %s\n", memlimit_kind_name(fx->kind),
			      err);
		skip();
	}
	if (!m)
		fail_msg("memlimit_new(%s): %s (%s)", memlimit_kind_name(fx->kind), err,
			 strerror(errno));
	fx->m[i] = m;
	util_strlcpy(fx->dir[i], memlimit_path(m), sizeof(fx->dir[i]));
	assert_int_equal(memlimit_kind(m), fx->kind);
	return m;
}

static bool is_dir(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static uint64_t page_floor(uint64_t v)
{
	uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);

	return v / page * page;
}

static uint64_t file_u64(const char *dir, const char *file)
{
	char path[PATH_MAX];
	unsigned long long v = ~0ULL;
	FILE *fp;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	fp = fopen(path, "re");
	if (!fp)
		return ~0ULL;
	if (fscanf(fp, "%llu", &v) != 1)
		v = ~0ULL;
	fclose(fp);
	return v;
}

/* VmSize of this process in bytes (0 if unknown). */
static uint64_t vm_size(void)
{
	char line[256];
	unsigned long long kb = 0;
	FILE *fp = fopen("/proc/self/status", "re");

	if (!fp)
		return 0;
	while (fgets(line, sizeof(line), fp))
		if (sscanf(line, "VmSize: %llu kB", &kb) == 1)
			break;
	fclose(fp);
	return kb * 1024;
}

/* In a child: touch mib MiB, 1 MiB at a time, as a scanned file that
 * unpacks into memory would. Exits CHILD_ENOMEM when an allocation fails. */
static void touch_mib(unsigned int mib)
{
	for (unsigned int i = 0; i < mib; i++) {
		char *p = malloc(MIB);

		if (!p)
			_exit(errno == ENOMEM ? CHILD_ENOMEM : CHILD_OTHER_FAIL);
		memset(p, (int)(i + 1), MIB);
		/* the compiler may not drop an allocation nobody reads */
		__asm__ volatile("" : : "r"(p) : "memory");
	}
}

/* Fork a child that enters m and touches mib MiB, then exits, or, when
 * ready_fd is given, reports 'r' on it and waits until it is killed.
 * Returns its pid. */
static pid_t spawn_toucher(const struct memlimit *m, unsigned int mib, int ready_fd, int close_fd)
{
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid > 0)
		return pid;
	alarm(CHILD_TIMEOUT_S);
	if (close_fd >= 0)
		close(close_fd);
	if (memlimit_enter(m) < 0)
		_exit(CHILD_ENTER_FAIL);
	if (memlimit_kind(m) == MEMLIMIT_RLIMIT) {
		struct rlimit rl;

		if (getrlimit(RLIMIT_AS, &rl) < 0 || rl.rlim_cur != memlimit_bytes(m) ||
		    rl.rlim_max != memlimit_bytes(m))
			_exit(CHILD_BAD_RLIMIT);
	}
	touch_mib(mib);
	if (ready_fd >= 0) {
		if (write(ready_fd, "r", 1) != 1)
			_exit(CHILD_OTHER_FAIL);
		for (;;)
			pause();
	}
	_exit(CHILD_OK);
}

static int wait_child(pid_t *pid)
{
	int status = 0;

	assert_int_equal(waitpid(*pid, &status, 0), *pid);
	*pid = 0;
	return status;
}

static void assert_exit_code(int status, int code)
{
	if (WIFSIGNALED(status))
		fail_msg("child killed by signal %d (%s), expected exit %d", WTERMSIG(status),
			 strsignal(WTERMSIG(status)), code);
	if (WEXITSTATUS(status) != code)
		fail_msg("child exited with %d, expected %d", WEXITSTATUS(status), code);
}

/* ---- every mechanism -------------------------------------------------- */

/* Over the limit: the cgroup kinds kill the child (SIGKILL, counted as an
 * OOM kill); RLIMIT_AS makes its allocation fail with ENOMEM. */
static void test_over_limit(void **state)
{
	struct fixture *fx = *state;
	struct memlimit *m = fx_new(fx, 0, 64 * MIB);
	uint64_t kills, hits, host_kills;
	int status;

	kills = memlimit_oom_kills(m);
	hits = memlimit_limit_hits(m);
	host_kills = memlimit_host_oom_kills();
	fx->child[0] = spawn_toucher(m, 200, -1, -1);
	status = wait_child(&fx->child[0]);
	if (fx->kind == MEMLIMIT_RLIMIT) {
		assert_exit_code(status, CHILD_ENOMEM);
		assert_int_equal(memlimit_oom_kills(m), 0);
		assert_int_equal(memlimit_usage(m), 0);
		return;
	}
	if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL)
		fail_msg("child not killed by SIGKILL: status 0x%x", (unsigned int)status);
	print_message("%s: oom_kill %llu -> %llu, limit hits %llu -> %llu\n",
		      memlimit_kind_name(fx->kind), (unsigned long long)kills,
		      (unsigned long long)memlimit_oom_kills(m), (unsigned long long)hits,
		      (unsigned long long)memlimit_limit_hits(m));
	assert_true(memlimit_oom_kills(m) >= kills + 1);
	/* the host's count has it too (the validator tells OOM kills so) */
	assert_true(memlimit_host_oom_kills() >= host_kills + 1);
	/* v1 may not count it (see memlimit_limit_hits) */
	if (fx->kind == MEMLIMIT_CGROUP2)
		assert_true(memlimit_limit_hits(m) > hits);
	else
		assert_true(memlimit_limit_hits(m) >= hits);
}

/* Raising the limit lets a child use more than the old one; the value
 * reads back. In RLIMIT_AS mode the limit is on address space, so it is
 * raised above what this process has mapped already. */
static void test_raise(void **state)
{
	struct fixture *fx = *state;
	struct memlimit *m = fx_new(fx, 0, 64 * MIB);
	uint64_t raised = 256 * MIB;

	if (fx->kind == MEMLIMIT_RLIMIT)
		raised = page_floor(vm_size() + 512 * MIB);
	assert_int_equal(memlimit_set(m, raised), 0);
	assert_int_equal(memlimit_bytes(m), raised);
	fx->child[0] = spawn_toucher(m, 100, -1, -1);
	assert_exit_code(wait_child(&fx->child[0]), CHILD_OK);
	if (fx->kind != MEMLIMIT_RLIMIT)
		assert_int_equal(memlimit_oom_kills(m), 0);

	/* and down again (v1: the other order of limit and memsw) */
	assert_int_equal(memlimit_set(m, 64 * MIB), 0);
	assert_int_equal(memlimit_bytes(m), 64 * MIB);
	if (fx->kind == MEMLIMIT_CGROUP1 && fx->dir[0][0] &&
	    file_u64(fx->dir[0], "memory.memsw.limit_in_bytes") != ~0ULL)
		assert_int_equal(file_u64(fx->dir[0], "memory.memsw.limit_in_bytes"), 64 * MIB);
	assert_int_equal(memlimit_set(m, 0), -EINVAL);
}

/* In a sanitizer build RLIMIT_AS mode enters without limiting (see
 * memlimit_enter); elsewhere the other cases cover it. */
static void test_rlimit_sanitizer_noop(void **state)
{
	struct fixture *fx = *state;
	struct memlimit *m;
	struct rlimit before;
	pid_t pid;
	int status = 0;

	if (!TEST_SANITIZER) {
		print_message("skipped: only meaningful in a sanitizer build\n");
		skip();
	}
	m = memlimit_new(64 * MIB, NULL, MEMLIMIT_RLIMIT, NULL);
	assert_non_null(m);
	fx->m[0] = m;
	assert_int_equal(getrlimit(RLIMIT_AS, &before), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct rlimit after;

		alarm(CHILD_TIMEOUT_S);
		if (memlimit_enter(m) < 0)
			_exit(CHILD_ENTER_FAIL);
		if (getrlimit(RLIMIT_AS, &after) < 0 || after.rlim_cur != before.rlim_cur ||
		    after.rlim_max != before.rlim_max)
			_exit(CHILD_BAD_RLIMIT);
		touch_mib(8);
		_exit(CHILD_OK);
	}
	fx->child[0] = pid;
	status = wait_child(&fx->child[0]);
	assert_exit_code(status, CHILD_OK);
}

/* ---- cgroup kinds ----------------------------------------------------- */

/* What was set reads back, rounded down to pages, and the knobs that keep
 * swap out and the OOM killer on are set. */
static void test_cg_readback(void **state)
{
	struct fixture *fx = *state;
	uint64_t odd = 64 * MIB + 123;
	struct memlimit *m = fx_new(fx, 0, odd);
	const char *dir = fx->dir[0];

	assert_true(is_dir(dir));
	assert_int_equal(memlimit_bytes(m), page_floor(odd));
	assert_int_equal(memlimit_set(m, 96 * MIB + 1), 0);
	assert_int_equal(memlimit_bytes(m), page_floor(96 * MIB + 1));
	if (fx->kind == MEMLIMIT_CGROUP1) {
		assert_int_equal(file_u64(dir, "memory.swappiness"), 0);
		if (file_u64(dir, "memory.memsw.limit_in_bytes") != ~0ULL)
			assert_int_equal(file_u64(dir, "memory.memsw.limit_in_bytes"),
					 memlimit_bytes(m));
	} else {
		if (file_u64(dir, "memory.swap.max") != ~0ULL)
			assert_int_equal(file_u64(dir, "memory.swap.max"), 0);
		if (file_u64(dir, "memory.oom.group") != ~0ULL)
			assert_int_equal(file_u64(dir, "memory.oom.group"), 0);
	}
	print_message("%s at %s\n", memlimit_kind_name(fx->kind), dir);
}

/* A child inside holding memory shows in the usage. */
static void test_cg_usage(void **state)
{
	struct fixture *fx = *state;
	struct memlimit *m = fx_new(fx, 0, 128 * MIB);
	uint64_t usage;
	int p[2];
	char c = 0;

	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	fx->child[0] = spawn_toucher(m, 32, p[1], p[0]);
	close(p[1]);
	assert_int_equal(read(p[0], &c, 1), 1);
	close(p[0]);
	assert_int_equal(c, 'r');
	usage = memlimit_usage(m);
	print_message("usage with 32 MiB touched: %llu bytes\n", (unsigned long long)usage);
	assert_true(usage > 0);
	assert_true(usage >= 32 * MIB);
	assert_true(usage <= memlimit_bytes(m));
	reap(&fx->child[0]);
}

/* Free removes the cgroup directory. */
static void test_cg_free_removes(void **state)
{
	struct fixture *fx = *state;
	struct memlimit *m = fx_new(fx, 0, 64 * MIB);

	assert_true(is_dir(fx->dir[0]));
	memlimit_free(m);
	fx->m[0] = NULL;
	assert_false(is_dir(fx->dir[0]));
	assert_int_equal(errno, ENOENT);
}

/* A cgroup left behind empty (a crashed earlier instance with the same
 * name) is reused; one with a process in it is refused, and free leaves it
 * in place rather than moving the process out. */
static void test_cg_reuse(void **state)
{
	struct fixture *fx = *state;
	struct memlimit *m = fx_new(fx, 0, 64 * MIB);
	char err[256] = "";
	int p[2];
	char c = 0;

	/* leftover: the directory alone */
	memlimit_free(m);
	fx->m[0] = NULL;
	assert_false(is_dir(fx->dir[0]));
	assert_int_equal(mkdir(fx->dir[0], 0755), 0);
	m = fx_new(fx, 0, 80 * MIB);
	assert_int_equal(memlimit_bytes(m), 80 * MIB);

	/* with a process in it */
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	fx->child[0] = spawn_toucher(m, 1, p[1], p[0]);
	close(p[1]);
	assert_int_equal(read(p[0], &c, 1), 1);
	close(p[0]);
	assert_null(memlimit_new(64 * MIB, fx->name, fx->kind, err));
	assert_int_equal(errno, EBUSY);
	print_message("refused as expected: %s\n", err);
	memlimit_free(m); /* logs the warning */
	fx->m[0] = NULL;
	assert_true(is_dir(fx->dir[0]));
	reap(&fx->child[0]);
	/* now empty: it is reused once more */
	m = fx_new(fx, 0, 64 * MIB);
	assert_string_equal(memlimit_path(m), fx->dir[0]);
}

/* ---- kind-independent ------------------------------------------------- */

static void test_auto(void **state)
{
	struct fixture *fx = *state;
	char err[256] = "";
	struct memlimit *m;

	m = memlimit_new(64 * MIB, fx->name, -1, err);
	if (!m)
		fail_msg("memlimit_new: %s", err);
	fx->m[0] = m;
	util_strlcpy(fx->dir[0], memlimit_path(m), sizeof(fx->dir[0]));
	print_message("picked %s %s\n", memlimit_kind_name(memlimit_kind(m)), memlimit_path(m));
	if (memlimit_kind(m) == MEMLIMIT_RLIMIT) {
		assert_string_equal(memlimit_path(m), "");
		assert_int_equal(memlimit_bytes(m), 64 * MIB);
	} else {
		assert_true(is_dir(memlimit_path(m)));
		assert_non_null(strstr(memlimit_path(m), fx->name));
	}
}

static void test_invalid(void **state)
{
	struct fixture *fx = *state;
	const char *bad[] = {"", ".", "..", ".hidden", "a/b", "../x", "a b", "x\n"};
	char err[256];

	err[0] = '\0';
	assert_null(memlimit_new(0, fx->name, -1, err));
	assert_int_equal(errno, EINVAL);
	assert_true(err[0] != '\0');
	assert_null(memlimit_new(64 * MIB, fx->name, 3, err));
	assert_int_equal(errno, EINVAL);
	assert_null(memlimit_new(64 * MIB, NULL, MEMLIMIT_CGROUP1, NULL));
	assert_int_equal(errno, EINVAL);
	for (size_t i = 0; i < SE_ARRAY_SIZE(bad); i++) {
		assert_null(memlimit_new(64 * MIB, bad[i], -1, err));
		assert_int_equal(errno, EINVAL);
	}
	assert_int_equal(memlimit_enter(NULL), -EINVAL);
	assert_int_equal(memlimit_set(NULL, MIB), -EINVAL);
	memlimit_free(NULL);
}

static void test_names_and_available(void **state)
{
	uint64_t avail = memlimit_available();

	(void)state;
	assert_string_equal(memlimit_kind_name(MEMLIMIT_CGROUP2), "cgroup v2");
	assert_string_equal(memlimit_kind_name(MEMLIMIT_CGROUP1), "cgroup v1");
	assert_string_equal(memlimit_kind_name(MEMLIMIT_RLIMIT), "RLIMIT_AS");
	print_message("MemAvailable %llu MiB\n", (unsigned long long)(avail / MIB));
	assert_true(avail > 0);
	assert_true(avail <= (uint64_t)sysconf(_SC_PHYS_PAGES) * (uint64_t)sysconf(_SC_PAGESIZE));
}

/* A case forced to one kind: the name says which. */
#define KIND_TEST(fn, tag, kind)                                                                   \
	{                                                                                          \
		.name = #fn "_" tag, .test_func = fn, .setup_func = fx_setup,                      \
		.teardown_func = fx_teardown, .initial_state = (void *)&(kind),                    \
	}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names_and_available),
		cmocka_unit_test_setup_teardown(test_invalid, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_auto, fx_setup, fx_teardown),
		KIND_TEST(test_over_limit, "v2", kind_v2),
		KIND_TEST(test_over_limit, "v1", kind_v1),
		KIND_TEST(test_over_limit, "rlimit", kind_rl),
		KIND_TEST(test_raise, "v2", kind_v2),
		KIND_TEST(test_raise, "v1", kind_v1),
		KIND_TEST(test_raise, "rlimit", kind_rl),
		KIND_TEST(test_rlimit_sanitizer_noop, "asan", kind_rl),
		KIND_TEST(test_cg_readback, "v2", kind_v2),
		KIND_TEST(test_cg_readback, "v1", kind_v1),
		KIND_TEST(test_cg_usage, "v2", kind_v2),
		KIND_TEST(test_cg_usage, "v1", kind_v1),
		KIND_TEST(test_cg_free_removes, "v2", kind_v2),
		KIND_TEST(test_cg_free_removes, "v1", kind_v1),
		KIND_TEST(test_cg_reuse, "v2", kind_v2),
		KIND_TEST(test_cg_reuse, "v1", kind_v1),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
