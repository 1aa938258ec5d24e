/* test_sandbox: unit tests of sandbox/ (cmocka).
 *
 * Every confinement is irreversible, so each case runs it in a forked child
 * and the test runner itself stays unconfined. Children never call cmocka:
 * they write a report over a pipe (or the IPC socket) and _exit(); the
 * parent checks the report and the exit status or signal. _exit() also
 * keeps LeakSanitizer, which needs ptrace and clone, away from confined
 * processes in the ASan build. */
#include "sandbox/sandbox.h"
#include "common/util.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <clamav.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
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

#define TESTFILES_DIR "/usr/share/clamav-testfiles"
#define EICAR_NDB                                                                                  \
	"Eicar-Test-Signature:0:0:"                                                                \
	"58354f2150254041505b345c505a58353428505e2937434329377d2445494341522d5354414e444152442d41" \
	"4e544956495255532d544553542d46494c452124482b482a\n"
#define EICAR "X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"

#define MIB (1024u * 1024u)
#ifndef CHILD_TIMEOUT_S
#define CHILD_TIMEOUT_S 300 /* seconds; generous for the ASan build */
#endif

struct fixture {
	char dir[64];			/* private tree under /tmp, removed afterwards */
	char scratch[128];		/* dir/scratch: a confined child's scratch dir */
	struct sandbox_identity nobody; /* valid when running as root and nobody exists */
	int abi;			/* Landlock ABI of this kernel */
};

static int fx_setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));

	if (!fx)
		return -1;
	util_strlcpy(fx->dir, "/tmp/test_sandbox.XXXXXX", sizeof(fx->dir));
	if (!mkdtemp(fx->dir))
		goto err_free;
	/* Traversable by nobody, who must reach the scratch directory. */
	if (chmod(fx->dir, 0755) < 0)
		goto err_rm;
	snprintf(fx->scratch, sizeof(fx->scratch), "%s/scratch", fx->dir);
	if (mkdir(fx->scratch, 0700) < 0)
		goto err_rm;
	if (geteuid() == 0 && sandbox_lookup_user("nobody", &fx->nobody) == 0 &&
	    chown(fx->scratch, fx->nobody.uid, fx->nobody.gid) < 0)
		goto err_rm;
	fx->abi = sandbox_landlock_abi();
	*state = fx;
	return 0;
err_rm:
	util_rm_rf(fx->dir);
err_free:
	free(fx);
	return -1;
}

static int fx_teardown(void **state)
{
	struct fixture *fx = *state;

	util_rm_rf(fx->dir);
	free(fx);
	return 0;
}

static size_t read_full(int fd, void *buf, size_t len)
{
	size_t got = 0;

	while (got < len) {
		ssize_t n = read(fd, (char *)buf + got, len - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	return got;
}

static int write_file(const char *path, const char *text, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	int r;

	if (fd < 0)
		return -errno;
	r = util_write_all(fd, text, strlen(text));
	util_close(&fd);
	return r;
}

typedef void (*child_fn)(const struct fixture *fx, const void *arg, int report_fd);

/* Run fn in a forked child and collect what it writes to report_fd (at
 * most len bytes, *got of them). Returns the child's wait status. */
static int run_child(child_fn fn, const struct fixture *fx, const void *arg, void *report,
		     size_t len, size_t *got)
{
	int p[2], status = 0;
	size_t n;
	pid_t pid;

	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(p[0]);
		/* Armed before any confinement, fires through it. */
		alarm(CHILD_TIMEOUT_S);
		fn(fx, arg, p[1]);
		_exit(0);
	}
	close(p[1]);
	n = read_full(p[0], report, len);
	close(p[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	if (got)
		*got = n;
	return status;
}

static void assert_exited_ok(int status)
{
	if (WIFSIGNALED(status))
		fail_msg("child killed by signal %d (%s)", WTERMSIG(status),
			 strsignal(WTERMSIG(status)));
	if (WEXITSTATUS(status) != 0)
		fail_msg("child exited with status %d", WEXITSTATUS(status));
}

/* Hex field of /proc/self/status, e.g. "CapEff:"; ~0 when missing. */
static unsigned long long status_field(const char *key)
{
	char buf[8192], *p;
	unsigned long long v = ~0ULL;
	size_t n;
	int fd;

	fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return v;
	n = read_full(fd, buf, sizeof(buf) - 1);
	close(fd);
	buf[n] = '\0';
	p = strstr(buf, key);
	if (p)
		v = strtoull(p + strlen(key), NULL, 16);
	return v;
}

/* ---- (d) sandbox_lookup_user ---------------------------------------- */

static void test_lookup_missing_user(void **state)
{
	struct sandbox_identity id;

	(void)state;
	memset(&id, 0xa5, sizeof(id));
	assert_int_equal(sandbox_lookup_user("scanengine-no-such-user", &id), -ENOENT);
	assert_false(id.valid);
	assert_int_equal(sandbox_lookup_user("", &id), -EINVAL);
	assert_false(id.valid);
	assert_int_equal(sandbox_lookup_user("an-account-name-that-is-longer-than-the-sixty-three-"
					     "bytes-the-struct-holds",
					     &id),
			 -ENAMETOOLONG);
	assert_false(id.valid);
}

static void test_lookup_root(void **state)
{
	struct sandbox_identity id;

	(void)state;
	assert_int_equal(sandbox_lookup_user("root", &id), 0);
	assert_true(id.valid);
	assert_int_equal(id.uid, 0);
	assert_int_equal(id.gid, 0);
	assert_string_equal(id.name, "root");
}

/* ---- (c) sandbox_drop_privileges ------------------------------------ */

struct priv_report {
	int drop;
	uid_t uid, euid;
	gid_t gid, egid;
	int ngroups;
	gid_t group0;
	int setuid0, setuid0_errno;
	unsigned long long cap_eff, cap_prm, cap_inh, cap_bnd, cap_amb, nnp;
	int dumpable;
	int read_foreign; /* errno of reading a 0600 file of another user */
};

struct priv_arg {
	const struct sandbox_identity *id;
	const char *foreign_file;
};

static void priv_child(const struct fixture *fx, const void *varg, int report_fd)
{
	const struct priv_arg *a = varg;
	struct priv_report rep = {0};
	gid_t groups[16];
	int fd;

	(void)fx;
	rep.drop = sandbox_drop_privileges(a->id);
	rep.uid = getuid();
	rep.euid = geteuid();
	rep.gid = getgid();
	rep.egid = getegid();
	rep.ngroups = getgroups(16, groups);
	rep.group0 = rep.ngroups > 0 ? groups[0] : (gid_t)-1;
	rep.setuid0 = setuid(0);
	rep.setuid0_errno = errno;
	rep.cap_eff = status_field("CapEff:");
	rep.cap_prm = status_field("CapPrm:");
	rep.cap_inh = status_field("CapInh:");
	rep.cap_bnd = status_field("CapBnd:");
	rep.cap_amb = status_field("CapAmb:");
	rep.nnp = status_field("NoNewPrivs:");
	rep.dumpable = prctl(PR_GET_DUMPABLE, 0, 0, 0, 0);
	if (a->foreign_file) {
		fd = open(a->foreign_file, O_RDONLY | O_CLOEXEC);
		rep.read_foreign = fd < 0 ? errno : 0;
		util_close(&fd);
	}
	util_write_all(report_fd, &rep, sizeof(rep));
}

static void assert_caps_gone(const struct priv_report *rep)
{
	assert_int_equal(rep->drop, 0);
	assert_int_equal(rep->cap_eff, 0);
	assert_int_equal(rep->cap_prm, 0);
	assert_int_equal(rep->cap_inh, 0);
	/* Only a process holding CAP_SETPCAP (root here) can shrink it. */
	if (geteuid() == 0)
		assert_int_equal(rep->cap_bnd, 0);
	assert_int_equal(rep->cap_amb, 0);
	assert_int_equal(rep->nnp, 1);
	assert_int_equal(rep->dumpable, 0);
}

static void test_drop_to_nobody(void **state)
{
	struct fixture *fx = *state;
	struct priv_arg a = {.id = &fx->nobody};
	struct priv_report rep;
	size_t got;
	int status;

	if (geteuid() != 0 || !fx->nobody.valid) {
		print_message("skipped: needs root and a 'nobody' account\n");
		skip();
	}
	status = run_child(priv_child, fx, &a, &rep, sizeof(rep), &got);
	assert_exited_ok(status);
	assert_int_equal(got, sizeof(rep));
	assert_caps_gone(&rep);
	assert_int_equal(rep.uid, fx->nobody.uid);
	assert_int_equal(rep.euid, fx->nobody.uid);
	assert_int_equal(rep.gid, fx->nobody.gid);
	assert_int_equal(rep.egid, fx->nobody.gid);
	assert_int_equal(rep.ngroups, 1);
	assert_int_equal(rep.group0, fx->nobody.gid);
	assert_int_equal(rep.setuid0, -1);
	assert_int_equal(rep.setuid0_errno, EPERM);
}

/* Degraded mode (no scan account): the uid stays, the power of root goes. */
static void test_drop_degraded(void **state)
{
	struct fixture *fx = *state;
	struct priv_arg a = {.id = NULL};
	struct priv_report rep;
	char foreign[128];
	size_t got;
	int status;

	snprintf(foreign, sizeof(foreign), "%s/foreign", fx->dir);
	assert_int_equal(write_file(foreign, "secret\n", 0600), 0);
	if (geteuid() == 0 && fx->nobody.valid) {
		assert_int_equal(chown(foreign, fx->nobody.uid, fx->nobody.gid), 0);
		a.foreign_file = foreign;
	}
	status = run_child(priv_child, fx, &a, &rep, sizeof(rep), &got);
	assert_exited_ok(status);
	assert_int_equal(got, sizeof(rep));
	assert_caps_gone(&rep);
	assert_int_equal(rep.uid, getuid());
	assert_int_equal(rep.euid, geteuid());
	if (a.foreign_file) /* root without CAP_DAC_OVERRIDE */
		assert_int_equal(rep.read_foreign, EACCES);
}

/* ---- (a) sandbox_enter_worker: what a confined worker can and cannot do */

struct confine_arg {
	bool drop;  /* sandbox_drop_privileges(nobody) first, as the zygote does */
	int sock;   /* pre-existing socketpair end */
	pid_t ppid; /* the test runner */
	char in_text[32];
};

struct confine_report {
	int drop, enter;
	/* errno values, 0 when the call succeeded */
	int passwd, openat_outside, testfile, tmp_create, tmp_mkdir, dotdot_create;
	int scratch_io; /* 0, or the line in scratch_io() that failed */
	int chmod_0700, chmod_0777, fcntl_getfl, fcntl_setown;
	int mmap_anon_exec, mmap_file_exec, mprotect_exec, mmap_file_read;
	int sock_unix, sock_inet, sock_pair;
	int fork, thread, kill_parent, raise, raised;
	int setrlimit, efbig, big_alloc;
	rlim_t nofile, core, nproc, fsize, as;
	int ipc; /* 0, or the line in confine_ipc() that failed */
};

static int errno_of_open(int dirfd, const char *path, int flags)
{
	int fd = openat(dirfd, path, flags | O_CLOEXEC, 0600);

	if (fd < 0)
		return errno;
	close(fd);
	return 0;
}

static int errno_of_socket(int domain, int type)
{
	int fd = socket(domain, type | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return errno;
	close(fd);
	return 0;
}

/* Create, write, read back, list, unlink a file and a subdirectory in the
 * scratch directory, the way libclamav uses it. */
static int scratch_io(const char *scratch)
{
	char dir[256], file[300], buf[16];
	struct dirent *de;
	bool listed = false;
	DIR *d;
	int fd;

	snprintf(dir, sizeof(dir), "%s/sub", scratch);
	snprintf(file, sizeof(file), "%s/member.tmp", dir);
	if (mkdir(dir, 0700) < 0)
		return __LINE__;
	fd = open(file, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return __LINE__;
	if (write(fd, "unpacked", 8) != 8 || lseek(fd, 0, SEEK_SET) != 0 ||
	    read(fd, buf, sizeof(buf)) != 8 || memcmp(buf, "unpacked", 8) != 0 ||
	    ftruncate(fd, 4) < 0) {
		close(fd);
		return __LINE__;
	}
	close(fd);
	fd = open(file, O_RDONLY | O_CLOEXEC); /* reopened by path */
	if (fd < 0)
		return __LINE__;
	if (pread(fd, buf, sizeof(buf), 0) != 4) {
		close(fd);
		return __LINE__;
	}
	close(fd);
	d = opendir(dir);
	if (!d)
		return __LINE__;
	while ((de = readdir(d)))
		if (!strcmp(de->d_name, "member.tmp"))
			listed = true;
	closedir(d);
	if (!listed)
		return __LINE__;
	if (unlink(file) < 0)
		return __LINE__;
	if (rmdir(dir) < 0)
		return __LINE__;
	return 0;
}

/* The pre-existing socketpair still carries messages and descriptors:
 * receive the parent's file, send one back. */
static int confine_ipc(const struct confine_arg *a, const char *scratch)
{
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} cm;
	char msg[16], path[256], data[32];
	struct iovec iov = {.iov_base = msg, .iov_len = sizeof(msg)};
	struct msghdr mh = {.msg_iov = &iov,
			    .msg_iovlen = 1,
			    .msg_control = cm.buf,
			    .msg_controllen = sizeof(cm.buf)};
	struct cmsghdr *c;
	ssize_t n;
	int fd;

	n = recvmsg(a->sock, &mh, MSG_CMSG_CLOEXEC);
	if (n != 4 || memcmp(msg, "ping", 4) != 0)
		return __LINE__;
	c = CMSG_FIRSTHDR(&mh);
	if (!c || c->cmsg_type != SCM_RIGHTS)
		return __LINE__;
	memcpy(&fd, CMSG_DATA(c), sizeof(fd));
	n = pread(fd, data, sizeof(data), 0);
	close(fd);
	if (n != (ssize_t)strlen(a->in_text) || memcmp(data, a->in_text, (size_t)n) != 0)
		return __LINE__;

	snprintf(path, sizeof(path), "%s/reply", scratch);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || write(fd, "from-child", 10) != 10)
		return __LINE__;
	memset(&cm, 0, sizeof(cm));
	iov.iov_base = (void *)"pong";
	iov.iov_len = 4;
	mh.msg_control = cm.buf;
	mh.msg_controllen = sizeof(cm.buf);
	c = CMSG_FIRSTHDR(&mh);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &fd, sizeof(fd));
	n = sendmsg(a->sock, &mh, MSG_NOSIGNAL);
	close(fd);
	if (n != 4)
		return __LINE__;
	return 0;
}

static void *thread_main(void *arg)
{
	return arg;
}

static volatile sig_atomic_t usr1_seen;

static void on_usr1(int sig)
{
	(void)sig;
	usr1_seen = 1;
}

static void confine_child(const struct fixture *fx, const void *varg, int report_fd)
{
	const struct confine_arg *a = varg;
	struct sandbox_worker_policy pol = {
		.scratch_dir = fx->scratch, .mem_limit = 256 * MIB, .max_file_size = 1 * MIB};
	struct confine_report rep = {0};
	struct sigaction sa = {.sa_handler = on_usr1};
	char path[256];
	struct rlimit rl;
	pthread_t t;
	void *m;
	int etc, fd;
	pid_t pid;

	/* A directory descriptor opened before confinement must not become a
	 * way around it. */
	etc = open("/etc", O_PATH | O_DIRECTORY | O_CLOEXEC);
	signal(SIGXFSZ, SIG_IGN); /* as the worker does: EFBIG instead of death */
	sigaction(SIGUSR1, &sa, NULL);
	if (a->drop)
		rep.drop = sandbox_drop_privileges(&fx->nobody);
	rep.enter = sandbox_enter_worker(&pol);
	if (rep.drop || rep.enter)
		goto out;

	rep.passwd = errno_of_open(AT_FDCWD, "/etc/passwd", O_RDONLY);
	rep.openat_outside = errno_of_open(etc, "passwd", O_RDONLY);
	rep.testfile = errno_of_open(AT_FDCWD, TESTFILES_DIR "/clam.exe", O_RDONLY);
	snprintf(path, sizeof(path), "/tmp/test_sandbox_escape.%d", (int)getpid());
	rep.tmp_create = errno_of_open(AT_FDCWD, path, O_WRONLY | O_CREAT | O_EXCL);
	rep.tmp_mkdir = mkdir(path, 0700) < 0 ? errno : 0;
	snprintf(path, sizeof(path), "%s/../escape", fx->scratch);
	rep.dotdot_create = errno_of_open(AT_FDCWD, path, O_WRONLY | O_CREAT | O_EXCL);
	rep.scratch_io = scratch_io(fx->scratch);

	snprintf(path, sizeof(path), "%s/file", fx->scratch);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		rep.scratch_io = __LINE__;
		goto out;
	}
	rep.chmod_0700 = chmod(fx->scratch, 0700) < 0 ? errno : 0;
	rep.chmod_0777 = chmod(path, 0777) < 0 ? errno : 0;
	rep.fcntl_getfl = fcntl(fd, F_GETFL) < 0 ? errno : 0;
	rep.fcntl_setown = fcntl(fd, F_SETOWN, getpid()) < 0 ? errno : 0;
	rep.efbig = pwrite(fd, "x", 1, 1 * MIB) < 0 ? errno : 0;
	if (pwrite(fd, "data", 4, 0) != 4)
		rep.scratch_io = __LINE__;
	m = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, fd, 0);
	rep.mmap_file_read = m == MAP_FAILED ? errno : 0;
	if (m != MAP_FAILED) {
		rep.mprotect_exec = mprotect(m, 4096, PROT_READ | PROT_EXEC) < 0 ? errno : 0;
		munmap(m, 4096);
	}
	m = mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE, fd, 0);
	rep.mmap_file_exec = m == MAP_FAILED ? errno : 0;
	m = mmap(NULL, 4096, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1,
		 0);
	rep.mmap_anon_exec = m == MAP_FAILED ? errno : 0;
	close(fd);

	rep.sock_unix = errno_of_socket(AF_UNIX, SOCK_STREAM);
	rep.sock_inet = errno_of_socket(AF_INET, SOCK_STREAM);
	{
		int sv[2];

		rep.sock_pair = socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv) < 0 ? errno : 0;
	}
	pid = fork();
	if (pid == 0)
		_exit(0);
	rep.fork = pid < 0 ? errno : 0;
	rep.thread = pthread_create(&t, NULL, thread_main, NULL);
	rep.kill_parent = kill(a->ppid, 0) < 0 ? errno : 0;
	rep.raise = raise(SIGUSR1) != 0 ? errno : 0;
	rep.raised = usr1_seen;

	rl.rlim_cur = rl.rlim_max = 0;
	rep.setrlimit = setrlimit(RLIMIT_CORE, &rl) < 0 ? errno : 0;
	getrlimit(RLIMIT_NOFILE, &rl);
	rep.nofile = rl.rlim_max;
	getrlimit(RLIMIT_CORE, &rl);
	rep.core = rl.rlim_max;
	getrlimit(RLIMIT_NPROC, &rl);
	rep.nproc = rl.rlim_max;
	getrlimit(RLIMIT_FSIZE, &rl);
	rep.fsize = rl.rlim_max;
	getrlimit(RLIMIT_AS, &rl);
	rep.as = rl.rlim_max;
	m = mmap(NULL, 1024 * MIB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	rep.big_alloc = m == MAP_FAILED ? errno : 0;

	rep.ipc = confine_ipc(a, fx->scratch);
out:
	util_write_all(report_fd, &rep, sizeof(rep));
}

static void send_fd(int sock, const char *text, int fd)
{
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} cm;
	struct iovec iov = {.iov_base = (void *)text, .iov_len = strlen(text)};
	struct msghdr mh = {.msg_iov = &iov,
			    .msg_iovlen = 1,
			    .msg_control = cm.buf,
			    .msg_controllen = sizeof(cm.buf)};
	struct cmsghdr *c;

	memset(&cm, 0, sizeof(cm));
	c = CMSG_FIRSTHDR(&mh);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &fd, sizeof(fd));
	assert_int_equal(sendmsg(sock, &mh, MSG_NOSIGNAL), (ssize_t)strlen(text));
}

/* Receive a message with one descriptor; returns the descriptor. */
static int recv_fd(int sock, char *msg, size_t len)
{
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} cm;
	struct iovec iov = {.iov_base = msg, .iov_len = len - 1};
	struct msghdr mh = {.msg_iov = &iov,
			    .msg_iovlen = 1,
			    .msg_control = cm.buf,
			    .msg_controllen = sizeof(cm.buf)};
	struct cmsghdr *c;
	ssize_t n;
	int fd = -1;

	n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
	assert_true(n >= 0);
	msg[n] = '\0';
	c = CMSG_FIRSTHDR(&mh);
	if (c && c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
		memcpy(&fd, CMSG_DATA(c), sizeof(fd));
	return fd;
}

static void check_confined(struct fixture *fx, bool drop)
{
	struct confine_arg a = {.drop = drop, .ppid = getpid(), .in_text = "from-parent"};
	struct confine_report rep;
	char path[128], msg[16], data[16];
	int sv[2], fd, status;
	size_t got;
	ssize_t n;

	/* The parent's message is queued before the child even exists: the
	 * child receives it (and its descriptor) only once confined. */
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
	a.sock = sv[1];
	snprintf(path, sizeof(path), "%s/parent.txt", fx->dir);
	assert_int_equal(write_file(path, a.in_text, 0644), 0);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	send_fd(sv[0], "ping", fd);
	close(fd);

	status = run_child(confine_child, fx, &a, &rep, sizeof(rep), &got);
	close(sv[1]);
	assert_exited_ok(status);
	assert_int_equal(got, sizeof(rep));
	assert_int_equal(rep.drop, 0);
	assert_int_equal(rep.enter, 0);

	/* Landlock: nothing outside the scratch directory. */
	if (fx->abi > 0) {
		assert_int_equal(rep.passwd, EACCES);
		assert_int_equal(rep.openat_outside, EACCES);
		assert_int_equal(rep.testfile, EACCES);
		assert_int_equal(rep.tmp_create, EACCES);
		assert_int_equal(rep.tmp_mkdir, EACCES);
		assert_int_equal(rep.dotdot_create, EACCES);
	} else {
		print_message("Landlock unavailable: filesystem confinement not checked\n");
	}
	assert_int_equal(rep.scratch_io, 0);
	/* chmod is not needed and Landlock does not cover it. */
	assert_int_equal(rep.chmod_0700, EPERM);
	assert_int_equal(rep.chmod_0777, EPERM);
	assert_int_equal(rep.fcntl_getfl, 0);
	assert_int_equal(rep.fcntl_setown, EPERM);
	assert_int_equal(rep.efbig, EFBIG);
	/* seccomp: no executable memory, sockets, processes, threads */
	assert_int_equal(rep.mmap_file_read, 0);
	assert_int_equal(rep.mprotect_exec, EPERM);
	assert_int_equal(rep.mmap_file_exec, EPERM);
	assert_int_equal(rep.mmap_anon_exec, EPERM);
	assert_int_equal(rep.sock_unix, EPERM);
	assert_int_equal(rep.sock_inet, EPERM);
	assert_int_equal(rep.sock_pair, EPERM);
	assert_int_equal(rep.fork, EPERM);
	assert_int_not_equal(rep.thread, 0);
	assert_int_equal(rep.kill_parent, EPERM);
	assert_int_equal(rep.raise, 0);
	assert_int_equal(rep.raised, 1);
	/* rlimits, and they cannot be changed any more */
	assert_int_equal(rep.setrlimit, EPERM);
	assert_int_equal(rep.nofile, 64);
	assert_int_equal(rep.core, 0);
	assert_int_equal(rep.nproc, 0);
	assert_int_equal(rep.fsize, 1 * MIB);
	if (TEST_SANITIZER) {
		assert_true(rep.as == RLIM_INFINITY);
	} else {
		assert_true(rep.as != RLIM_INFINITY);
		assert_int_equal(rep.big_alloc, ENOMEM);
	}
	/* IPC on the pre-existing socketpair, both directions */
	assert_int_equal(rep.ipc, 0);
	fd = recv_fd(sv[0], msg, sizeof(msg));
	assert_string_equal(msg, "pong");
	assert_true(fd >= 0);
	n = pread(fd, data, sizeof(data), 0);
	close(fd);
	assert_int_equal(n, 10);
	assert_memory_equal(data, "from-child", 10);
	close(sv[0]);
}

static void test_confined_as_root(void **state)
{
	/* Without the uid drop (degraded mode, or a non-root test run):
	 * Landlock and seccomp must hold on their own, even for root. */
	check_confined(*state, false);
}

static void test_confined_as_nobody(void **state)
{
	struct fixture *fx = *state;

	if (geteuid() != 0 || !fx->nobody.valid) {
		print_message("skipped: needs root and a 'nobody' account\n");
		skip();
	}
	check_confined(fx, true);
}

/* ---- (a) system calls that kill ------------------------------------ */

enum killer {
	K_EXECVE,
	K_EXECVEAT,
	K_PTRACE,
	K_PROCESS_VM_READV,
	K_X32,
	K_I386,
};

static long i386_getpid(void)
{
#if defined(__x86_64__)
	long ret;

	/* int 0x80 enters the kernel's i386 ABI: getpid is 20 there. */
	__asm__ volatile("int $0x80" : "=a"(ret) : "a"(20L) : "memory");
	return ret;
#else
	return -ENOSYS;
#endif
}

static void killer_child(const struct fixture *fx, const void *varg, int report_fd)
{
	const enum killer *k = varg;
	struct sandbox_worker_policy pol = {.scratch_dir = fx->scratch};
	char *const argv[] = {(char *)"true", NULL};
	char *const envp[] = {NULL};
	char buf[8];
	struct iovec local = {.iov_base = buf, .iov_len = sizeof(buf)};
	struct iovec remote = {.iov_base = buf, .iov_len = sizeof(buf)};
	long r = 0;

	if (sandbox_enter_worker(&pol) < 0)
		_exit(3);
	util_write_all(report_fd, "E", 1); /* confined; what follows must kill */
	switch (*k) {
	case K_EXECVE:
		r = execve("/bin/true", argv, envp);
		break;
	case K_EXECVEAT:
		r = syscall(SYS_execveat, AT_FDCWD, "/bin/true", argv, envp, 0);
		break;
	case K_PTRACE:
		r = ptrace(PTRACE_TRACEME, 0, NULL, NULL);
		break;
	case K_PROCESS_VM_READV:
		r = process_vm_readv(getpid(), &local, 1, &remote, 1, 0);
		break;
	case K_X32:
		/* the x32 ABI: same kernel, syscall number | __X32_SYSCALL_BIT */
		r = syscall(0x40000000L | SYS_getpid);
		break;
	case K_I386:
		r = i386_getpid();
		break;
	}
	(void)r;
	util_write_all(report_fd, "R", 1);
	_exit(0);
}

static void i386_probe_child(const struct fixture *fx, const void *varg, int report_fd)
{
	char ok;

	(void)fx;
	(void)varg;
	ok = i386_getpid() == (long)getpid() ? 'Y' : 'N';
	util_write_all(report_fd, &ok, 1);
}

static void check_killed(struct fixture *fx, enum killer k, const char *what)
{
	char rep[2] = {0};
	size_t got;
	int status;

	status = run_child(killer_child, fx, &k, rep, sizeof(rep), &got);
	if (got < 1 || rep[0] != 'E')
		fail_msg("%s: the child did not get as far as the sandbox", what);
	if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGSYS)
		fail_msg("%s: expected death by SIGSYS, got %s %d", what,
			 WIFSIGNALED(status) ? "signal" : "exit status",
			 WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
}

static void test_forbidden_calls_kill(void **state)
{
	struct fixture *fx = *state;
	char ok = 0;
	int status;

	check_killed(fx, K_EXECVE, "execve");
	check_killed(fx, K_EXECVEAT, "execveat");
	check_killed(fx, K_PTRACE, "ptrace(PTRACE_TRACEME)");
	check_killed(fx, K_PROCESS_VM_READV, "process_vm_readv");
#if defined(__x86_64__)
	check_killed(fx, K_X32, "x32 syscall");
	/* Only meaningful where the kernel runs i386 code at all. */
	status = run_child(i386_probe_child, fx, NULL, &ok, 1, NULL);
	if (WIFEXITED(status) && ok == 'Y')
		check_killed(fx, K_I386, "i386 int 0x80");
	else
		print_message("i386 emulation disabled: int 0x80 case not checked\n");
#else
	(void)ok;
	(void)status;
#endif
}

/* ---- sandbox_enter_worker refusals ---------------------------------- */

struct refusal_report {
	int null_policy, missing_dir, threaded;
};

static void *idle_thread(void *arg)
{
	pause();
	return arg;
}

static void refusal_child(const struct fixture *fx, const void *varg, int report_fd)
{
	struct sandbox_worker_policy pol = {.scratch_dir = fx->scratch};
	struct sandbox_worker_policy missing = {.scratch_dir = "/nonexistent/scratch"};
	struct refusal_report rep = {0};
	pthread_t t;

	(void)varg;
	rep.null_policy = sandbox_enter_worker(NULL);
	if (sandbox_landlock_abi() > 0)
		rep.missing_dir = sandbox_enter_worker(&missing);
	/* A second thread would stay unconfined: refused. */
	if (pthread_create(&t, NULL, idle_thread, NULL) == 0)
		rep.threaded = sandbox_enter_worker(&pol);
	util_write_all(report_fd, &rep, sizeof(rep));
	_exit(0);
}

static void test_enter_refusals(void **state)
{
	struct fixture *fx = *state;
	struct refusal_report rep;
	size_t got;
	int status;

	status = run_child(refusal_child, fx, NULL, &rep, sizeof(rep), &got);
	assert_exited_ok(status);
	assert_int_equal(got, sizeof(rep));
	assert_int_equal(rep.null_policy, -EINVAL);
	assert_int_equal(rep.threaded, -EBUSY);
	if (fx->abi > 0)
		assert_int_equal(rep.missing_dir, -ENOENT);
}

/* ---- (b) libclamav scanning every sample inside the sandbox -------- */

struct scan_reply {
	uint32_t idx;
	int32_t rc; /* cl_error_t; -1: the sandbox could not be entered */
	char virname[128];
};

struct scan_arg {
	const char *db_dir;
	const char *scratch;
	bool sandboxed;
	int sock;
};

static void scan_child(const struct fixture *fx, const struct scan_arg *a)
{
	struct sandbox_worker_policy pol = {
		.scratch_dir = a->scratch, .mem_limit = 1024ull * MIB, .max_file_size = 64 * MIB};
	struct scan_reply rep = {0};
	struct cl_engine *eng;
	unsigned int sigs = 0;

	alarm(CHILD_TIMEOUT_S);
	signal(SIGXFSZ, SIG_IGN);
	if (cl_init(CL_INIT_DEFAULT) != CL_SUCCESS)
		_exit(20);
	eng = cl_engine_new();
	if (!eng)
		_exit(21);
	/* TMPDIR before compile: every temporary file goes to the scratch dir. */
	if (cl_engine_set_str(eng, CL_ENGINE_TMPDIR, a->scratch) != CL_SUCCESS)
		_exit(22);
	if (cl_load(a->db_dir, eng, &sigs, CL_DB_STDOPT) != CL_SUCCESS || sigs < 2)
		_exit(23);
	if (cl_engine_compile(eng) != CL_SUCCESS)
		_exit(24);
	if (a->sandboxed) {
		/* As a worker: the scan account (when there is one), then the
		 * sandbox, the engine already in memory. */
		if ((fx->nobody.valid && sandbox_drop_privileges(&fx->nobody) < 0) ||
		    sandbox_enter_worker(&pol) < 0)
			rep.rc = -1;
	}
	if (send(a->sock, &rep, sizeof(rep), MSG_NOSIGNAL) != sizeof(rep) || rep.rc < 0)
		_exit(25);

	for (;;) {
		union {
			char buf[CMSG_SPACE(sizeof(int))];
			struct cmsghdr align;
		} cm;
		uint32_t idx;
		struct iovec iov = {.iov_base = &idx, .iov_len = sizeof(idx)};
		struct msghdr mh = {.msg_iov = &iov,
				    .msg_iovlen = 1,
				    .msg_control = cm.buf,
				    .msg_controllen = sizeof(cm.buf)};
		struct cl_scan_options opts = {0};
		const char *virname = NULL;
		unsigned long scanned = 0;
		struct cmsghdr *c;
		ssize_t n;
		int fd;

		n = recvmsg(a->sock, &mh, MSG_CMSG_CLOEXEC);
		if (n == 0)
			break; /* the parent is done */
		c = CMSG_FIRSTHDR(&mh);
		if (n != sizeof(idx) || !c || c->cmsg_type != SCM_RIGHTS)
			_exit(26);
		memcpy(&fd, CMSG_DATA(c), sizeof(fd));
		/* Every parser, and all matches: as much unpacking as possible. */
		opts.parse = ~0u;
		opts.general = CL_SCAN_GENERAL_HEURISTICS | CL_SCAN_GENERAL_ALLMATCHES;
		memset(&rep, 0, sizeof(rep));
		rep.idx = idx;
		rep.rc = cl_scandesc_callback(fd, NULL, &virname, &scanned, eng, &opts, NULL);
		if (rep.rc == CL_VIRUS && virname)
			util_strlcpy(rep.virname, virname, sizeof(rep.virname));
		close(fd);
		if (send(a->sock, &rep, sizeof(rep), MSG_NOSIGNAL) != sizeof(rep))
			_exit(27);
	}
	_exit(0);
}

/* Scan paths[] in one child (sandboxed or not); verdicts into out[]. */
static void scan_all(const struct fixture *fx, const struct scan_arg *proto, char **paths, size_t n,
		     struct scan_reply *out)
{
	struct scan_arg a = *proto;
	struct scan_reply rep;
	int sv[2], status;
	pid_t pid;

	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
	a.sock = sv[1];
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(sv[0]);
		scan_child(fx, &a);
	}
	close(sv[1]);
	if (recv(sv[0], &rep, sizeof(rep), 0) != sizeof(rep) || rep.rc != 0) {
		waitpid(pid, &status, 0);
		fail_msg("%s scanner did not start (wait status 0x%x)",
			 a.sandboxed ? "sandboxed" : "plain", status);
	}
	for (size_t i = 0; i < n; i++) {
		uint32_t idx = (uint32_t)i;
		union {
			char buf[CMSG_SPACE(sizeof(int))];
			struct cmsghdr align;
		} cm;
		struct iovec iov = {.iov_base = &idx, .iov_len = sizeof(idx)};
		struct msghdr mh = {.msg_iov = &iov,
				    .msg_iovlen = 1,
				    .msg_control = cm.buf,
				    .msg_controllen = sizeof(cm.buf)};
		struct cmsghdr *c;
		int fd = open(paths[i], O_RDONLY | O_CLOEXEC);

		assert_true(fd >= 0);
		memset(&cm, 0, sizeof(cm));
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &fd, sizeof(fd));
		assert_int_equal(sendmsg(sv[0], &mh, MSG_NOSIGNAL), sizeof(idx));
		close(fd);
		if (recv(sv[0], &out[i], sizeof(out[i]), 0) != sizeof(out[i]) || out[i].idx != i) {
			waitpid(pid, &status, 0);
			fail_msg("%s scanner died on %s (wait status 0x%x%s)",
				 a.sandboxed ? "sandboxed" : "plain", paths[i], status,
				 WIFSIGNALED(status) && WTERMSIG(status) == SIGSYS
					 ? ": SIGSYS, a system call is missing from the allowlist"
					 : "");
		}
	}
	close(sv[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_exited_ok(status);
}

static int regular_file(const struct dirent *de)
{
	return de->d_type == DT_REG || de->d_type == DT_UNKNOWN;
}

/* The real ClamAV test signatures: $SCANENGINE_TESTDATA, else the shared
 * test data next to the repository (found from the working directory or
 * from this binary, <repo>/<build dir>/tests/test_sandbox). */
static bool find_hdb(char *path, size_t len)
{
	char exe[512], beside[600] = "";
	const char *dirs[] = {getenv("SCANENGINE_TESTDATA"), "../shared/testdata/clamav", beside};
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);

	if (n > 0) {
		exe[n] = '\0';
		*strrchr(exe, '/') = '\0';
		snprintf(beside, sizeof(beside), "%s/../../../shared/testdata/clamav", exe);
	}
	for (size_t i = 0; i < SE_ARRAY_SIZE(dirs); i++) {
		if (!dirs[i] || !*dirs[i])
			continue;
		snprintf(path, len, "%s/clamav.hdb", dirs[i]);
		if (access(path, R_OK) == 0)
			return true;
	}
	return false;
}

static int copy_file(const char *from, const char *to)
{
	char buf[65536];
	int in, out, r = 0;
	ssize_t n;

	in = open(from, O_RDONLY | O_CLOEXEC);
	if (in < 0)
		return -errno;
	out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (out < 0) {
		r = -errno;
		goto out_close_in;
	}
	while ((n = read(in, buf, sizeof(buf))) > 0) {
		r = util_write_all(out, buf, (size_t)n);
		if (r < 0)
			break;
	}
	if (n < 0)
		r = -errno;
	util_close(&out);
out_close_in:
	util_close(&in);
	return r;
}

/* sandbox_confine_writes (the updater): writes beneath the directory
 * only; reading elsewhere and the network stay. Report: one int per
 * probe, 0 or the errno. */
static void child_confine_writes(const struct fixture *fx, const void *arg, int report_fd)
{
	char inside[192], outside[192];
	int res[5], fd;

	(void)arg;
	snprintf(inside, sizeof(inside), "%s/new", fx->scratch);
	snprintf(outside, sizeof(outside), "%s/outside", fx->dir);
	if (sandbox_confine_writes(fx->scratch))
		_exit(3);
	fd = open(inside, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	res[0] = fd < 0 ? errno : 0;
	if (fd >= 0)
		close(fd);
	fd = open(outside, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	res[1] = fd < 0 ? errno : 0;
	if (fd >= 0)
		close(fd);
	res[2] = mkdir(outside, 0700) < 0 ? errno : 0;
	fd = open("/etc/passwd", O_RDONLY | O_CLOEXEC);
	res[3] = fd < 0 ? errno : 0;
	if (fd >= 0)
		close(fd);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	res[4] = fd < 0 ? errno : 0;
	if (fd >= 0)
		close(fd);
	if (write(report_fd, res, sizeof(res)) != (ssize_t)sizeof(res))
		_exit(4);
}

static void test_confine_writes(void **state)
{
	struct fixture *fx = *state;
	int res[5];
	size_t got;

	assert_exited_ok(run_child(child_confine_writes, fx, NULL, res, sizeof(res), &got));
	assert_int_equal(got, sizeof(res));
	assert_int_equal(res[0], 0);
	if (fx->abi) {
		assert_int_equal(res[1], EACCES);
		assert_int_equal(res[2], EACCES);
	}
	assert_int_equal(res[3], 0);
	assert_int_equal(res[4], 0);
}

static void test_clamav_scan_in_sandbox(void **state)
{
	struct fixture *fx = *state;
	char hdb[512], db[128], tmp[256], plain_scratch[128], eicar[128];
	struct scan_arg arg = {0};
	struct scan_reply *plain, *boxed;
	struct dirent **ents = NULL, *de;
	char **paths;
	size_t n = 0, infected = 0;
	int nents;
	DIR *d;

	nents = scandir(TESTFILES_DIR, &ents, regular_file, alphasort);
	if (nents <= 0) {
		print_message("skipped: no samples in " TESTFILES_DIR
			      " (apt-get install clamav-testfiles)\n");
		skip();
	}
	if (!find_hdb(hdb, sizeof(hdb))) {
		for (int i = 0; i < nents; i++)
			free(ents[i]);
		free(ents);
		print_message("skipped: clamav.hdb not found (set SCANENGINE_TESTDATA to "
			      "the shared testdata/clamav directory)\n");
		skip();
	}

	snprintf(db, sizeof(db), "%s/db", fx->dir);
	assert_int_equal(mkdir(db, 0755), 0);
	snprintf(tmp, sizeof(tmp), "%s/clamav.hdb", db);
	assert_int_equal(copy_file(hdb, tmp), 0);
	snprintf(tmp, sizeof(tmp), "%s/eicar.ndb", db);
	assert_int_equal(write_file(tmp, EICAR_NDB, 0644), 0);
	snprintf(plain_scratch, sizeof(plain_scratch), "%s/plain-scratch", fx->dir);
	assert_int_equal(mkdir(plain_scratch, 0700), 0);
	snprintf(eicar, sizeof(eicar), "%s/eicar.com", fx->dir);
	assert_int_equal(write_file(eicar, EICAR, 0644), 0);

	paths = calloc((size_t)nents + 1, sizeof(*paths));
	assert_non_null(paths);
	for (int i = 0; i < nents; i++) {
		assert_true(asprintf(&paths[n++], TESTFILES_DIR "/%s", ents[i]->d_name) > 0);
		free(ents[i]);
	}
	free(ents);
	paths[n++] = strdup(eicar);
	plain = calloc(n, sizeof(*plain));
	boxed = calloc(n, sizeof(*boxed));
	assert_non_null(plain);
	assert_non_null(boxed);

	arg.db_dir = db;
	arg.scratch = plain_scratch;
	arg.sandboxed = false;
	scan_all(fx, &arg, paths, n, plain);
	arg.scratch = fx->scratch;
	arg.sandboxed = true;
	scan_all(fx, &arg, paths, n, boxed);

	for (size_t i = 0; i < n; i++) {
		if (plain[i].rc != boxed[i].rc || strcmp(plain[i].virname, boxed[i].virname) != 0)
			fail_msg("%s: unconfined verdict %d %s, sandboxed %d %s", paths[i],
				 plain[i].rc, plain[i].virname, boxed[i].rc, boxed[i].virname);
		if (boxed[i].rc == CL_VIRUS)
			infected++;
	}
	print_message("%zu of %zu samples detected, identical verdicts in and out of the "
		      "sandbox\n",
		      infected, n);
	assert_true(infected > 30);
	assert_int_equal(boxed[n - 1].rc, CL_VIRUS); /* EICAR, through the .ndb */
	assert_non_null(strstr(boxed[n - 1].virname, "Eicar-Test-Signature"));

	/* libclamav removed its temporary files from inside the sandbox. */
	d = opendir(fx->scratch);
	assert_non_null(d);
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			fail_msg("left behind in the scratch directory: %s", de->d_name);
	closedir(d);

	for (size_t i = 0; i < n; i++)
		free(paths[i]);
	free(paths);
	free(plain);
	free(boxed);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lookup_missing_user),
		cmocka_unit_test(test_lookup_root),
		cmocka_unit_test_setup_teardown(test_drop_to_nobody, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_drop_degraded, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_confined_as_root, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_confined_as_nobody, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_forbidden_calls_kill, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_enter_refusals, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_confine_writes, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_clamav_scan_in_sandbox, fx_setup, fx_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
