/* sandbox: privilege drop and confinement of scanengine's child processes.
 *
 * The system call allowlist below was measured, not guessed: strace -f of
 * libclamav 1.4.6 scanning every clamav-testfiles sample (zip, 7z, cab,
 * OLE2, PDF, mail, PE packers, InstallShield, ...) with all parsers, all
 * heuristics, all-match, force-to-disk and bytecode signatures loaded, as a
 * plain and as an AddressSanitizer build. */
#include "sandbox/sandbox.h"
#include "common/log.h"
#include "common/util.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <seccomp.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <linux/capability.h>
#include <linux/landlock.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>

/* Sanitizer runtimes reserve terabytes of shadow address space: an
 * RLIMIT_AS derived from VmSize would be meaningless there. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SANDBOX_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) ||                         \
	__has_feature(memory_sanitizer)
#define SANDBOX_SANITIZER 1
#endif
#endif
#ifndef SANDBOX_SANITIZER
#define SANDBOX_SANITIZER 0
#endif

/* Descriptors a worker may hold at once: its socket, stdio, the file being
 * scanned and the temporary files of nested unpacking (depth is bounded by
 * MaxRecursion). Descriptors already open above the limit keep working. */
#define SANDBOX_WORKER_NOFILE 64

/* Landlock: the system headers of the build host may predate the running
 * kernel (Debian 12 ships ABI 2 headers), so the newer constants are
 * defined here; which ones are used is decided at run time from the ABI. */
#ifndef __NR_landlock_create_ruleset
#define __NR_landlock_create_ruleset 444
#endif
#ifndef __NR_landlock_add_rule
#define __NR_landlock_add_rule 445
#endif
#ifndef __NR_landlock_restrict_self
#define __NR_landlock_restrict_self 446
#endif
#ifndef LANDLOCK_CREATE_RULESET_VERSION
#define LANDLOCK_CREATE_RULESET_VERSION (1U << 0)
#endif
#ifndef LANDLOCK_ACCESS_FS_REFER
#define LANDLOCK_ACCESS_FS_REFER (1ULL << 13) /* ABI 2 */
#endif
#ifndef LANDLOCK_ACCESS_FS_TRUNCATE
#define LANDLOCK_ACCESS_FS_TRUNCATE (1ULL << 14) /* ABI 3 */
#endif
#ifndef LANDLOCK_ACCESS_FS_IOCTL_DEV
#define LANDLOCK_ACCESS_FS_IOCTL_DEV (1ULL << 15) /* ABI 5 */
#endif
#ifndef LANDLOCK_ACCESS_NET_BIND_TCP
#define LANDLOCK_ACCESS_NET_BIND_TCP (1ULL << 0) /* ABI 4 */
#endif
#ifndef LANDLOCK_ACCESS_NET_CONNECT_TCP
#define LANDLOCK_ACCESS_NET_CONNECT_TCP (1ULL << 1) /* ABI 4 */
#endif
#ifndef LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET
#define LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET (1ULL << 0) /* ABI 6 */
#endif
#ifndef LANDLOCK_SCOPE_SIGNAL
#define LANDLOCK_SCOPE_SIGNAL (1ULL << 1) /* ABI 6 */
#endif

#define LL_FS_ABI1                                                                                 \
	(LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_WRITE_FILE |                              \
	 LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_READ_DIR |                              \
	 LANDLOCK_ACCESS_FS_REMOVE_DIR | LANDLOCK_ACCESS_FS_REMOVE_FILE |                          \
	 LANDLOCK_ACCESS_FS_MAKE_CHAR | LANDLOCK_ACCESS_FS_MAKE_DIR |                              \
	 LANDLOCK_ACCESS_FS_MAKE_REG | LANDLOCK_ACCESS_FS_MAKE_SOCK |                              \
	 LANDLOCK_ACCESS_FS_MAKE_FIFO | LANDLOCK_ACCESS_FS_MAKE_BLOCK |                            \
	 LANDLOCK_ACCESS_FS_MAKE_SYM)

/* Rights never granted, not even in the scratch directory: nothing there
 * is run, and device nodes are neither made nor driven. */
#define LL_FS_NEVER                                                                                \
	(LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_MAKE_CHAR |                               \
	 LANDLOCK_ACCESS_FS_MAKE_BLOCK | LANDLOCK_ACCESS_FS_IOCTL_DEV)

/* struct landlock_ruleset_attr as of ABI 6; older kernels get a prefix of
 * it (the size passed tells the kernel which fields we know). */
struct ll_ruleset_attr {
	uint64_t handled_access_fs;
	uint64_t handled_access_net; /* ABI 4 */
	uint64_t scoped;	     /* ABI 6 */
};

/* The one mutable global: warn about a kernel without Landlock once per
 * process, not once per call. */
static bool landlock_warned;

/* Upper bound for the NSS buffer: a group with thousands of members needs
 * a few hundred KiB, anything beyond is a broken backend. */
#define NSS_BUF_MAX (16u << 20)

/* Map a get*_r result to 0 or -errno. "Not found" is 0 without an entry
 * or, depending on the NSS backend, one of these errors (getpwnam_r(3)). */
static int nss_status(int r, bool found)
{
	if ((r == 0 && !found) || r == ENOENT || r == ESRCH || r == EBADF || r == EPERM)
		return -ENOENT;
	return -r;
}

/* Double the NSS buffer after ERANGE. */
static int nss_grow(char **buf, size_t *len)
{
	char *nb;

	if (*len >= NSS_BUF_MAX)
		return -ERANGE;
	nb = realloc(*buf, *len * 2);
	if (!nb)
		return -ENOMEM;
	*buf = nb;
	*len *= 2;
	return 0;
}

int sandbox_lookup_user(const char *name, struct sandbox_identity *id)
{
	struct passwd pw, *pwr = NULL;
	struct group gr, *grr = NULL;
	size_t len = 16384;
	char *buf;
	int r;

	memset(id, 0, sizeof(*id));
	if (!name || !*name)
		return -EINVAL;
	if (strlen(name) >= sizeof(id->name))
		return -ENAMETOOLONG;
	buf = malloc(len);
	if (!buf)
		return -ENOMEM;
	while ((r = getpwnam_r(name, &pw, buf, len, &pwr)) == ERANGE) {
		r = nss_grow(&buf, &len);
		if (r < 0)
			goto out_free;
	}
	r = nss_status(r, pwr != NULL);
	if (r < 0)
		goto out_free;
	/* Reuses buf: only the numeric fields of pw are used from here on. */
	while ((r = getgrgid_r(pw.pw_gid, &gr, buf, len, &grr)) == ERANGE) {
		r = nss_grow(&buf, &len);
		if (r < 0)
			goto out_free;
	}
	r = nss_status(r, grr != NULL);
	if (r < 0)
		goto out_free;
	id->uid = pw.pw_uid;
	id->gid = pw.pw_gid;
	util_strlcpy(id->name, name, sizeof(id->name));
	id->valid = true;
out_free:
	free(buf);
	return r;
}

static int caps_get(struct __user_cap_data_struct data[2])
{
	struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3};

	memset(data, 0, 2 * sizeof(*data));
	if (syscall(SYS_capget, &hdr, data) < 0)
		return -errno;
	return 0;
}

static bool caps_has(const struct __user_cap_data_struct data[2], unsigned int cap, bool effective)
{
	uint32_t word = effective ? data[cap / 32].effective : data[cap / 32].permitted;

	return word & (1u << (cap % 32));
}

/* Empty the bounding set, so that no later execve (were one possible) can
 * hand capabilities back. Needs CAP_SETPCAP, i.e. must run before the uid
 * switch. A process without CAP_SETPCAP and without any permitted
 * capability cannot shrink it, but then it cannot gain anything either once
 * no_new_privs is set, which the caller does next. */
static int caps_drop_bounding(void)
{
	struct __user_cap_data_struct data[2];
	bool can_drop;
	int r;

	r = caps_get(data);
	if (r < 0)
		return r;
	can_drop = caps_has(data, CAP_SETPCAP, true);
	for (unsigned long cap = 0;; cap++) {
		int set = prctl(PR_CAPBSET_READ, cap, 0, 0, 0);

		if (set < 0) {
			if (errno == EINVAL)
				break; /* past the kernel's last capability */
			return -errno;
		}
		if (!set)
			continue;
		if (!can_drop) {
			if (data[0].permitted || data[1].permitted)
				return -EPERM;
			return 0;
		}
		if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0)
			return -errno;
	}
	return 0;
}

/* Clear the effective, permitted and inheritable sets (dropping is always
 * allowed) and verify they are empty. */
static int caps_clear(void)
{
	struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3};
	struct __user_cap_data_struct data[2];
	int r;

	memset(data, 0, sizeof(data));
	if (syscall(SYS_capset, &hdr, data) < 0)
		return -errno;
	r = caps_get(data);
	if (r < 0)
		return r;
	for (size_t i = 0; i < SE_ARRAY_SIZE(data); i++)
		if (data[i].effective || data[i].permitted || data[i].inheritable)
			return -EPERM;
	return 0;
}

/* Switch to the account for good and check it sticks. */
static int switch_user(const struct sandbox_identity *id)
{
	uid_t ru, eu, su;
	gid_t rg, eg, sg;

	/* Root in the account's identity is no drop at all. */
	if (id->uid == 0 || id->gid == 0)
		return -EINVAL;
	/* Without this a uid change could keep the permitted set. */
	if (prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) < 0)
		return -errno;
	if (setgroups(1, &id->gid) < 0)
		return -errno;
	if (setresgid(id->gid, id->gid, id->gid) < 0)
		return -errno;
	if (setresuid(id->uid, id->uid, id->uid) < 0)
		return -errno;
	if (getresuid(&ru, &eu, &su) < 0 || getresgid(&rg, &eg, &sg) < 0)
		return -errno;
	if (ru != id->uid || eu != id->uid || su != id->uid || rg != id->gid || eg != id->gid ||
	    sg != id->gid)
		return -EPERM;
	/* The point of it all: root must not be regainable. */
	if (setuid(0) == 0 || setgid(0) == 0)
		return -EPERM;
	return 0;
}

/* No privileges from execve ever again; no core dumps holding scanned data
 * and no ptrace by other processes of the same uid. */
static int no_new_privs(void)
{
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return -errno;
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
		return -errno;
	return 0;
}

int sandbox_drop_privileges(const struct sandbox_identity *id)
{
	bool do_switch = id && id->valid && geteuid() == 0;
	int r;

	/* Bounding set first: it needs the CAP_SETPCAP the switch loses. */
	r = caps_drop_bounding();
	if (r < 0)
		return r;
	/* Ambient capabilities survive execve of unprivileged programs. EINVAL:
	 * a kernel before 4.3 has none. */
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
		return -errno;
	if (do_switch) {
		r = switch_user(id);
		if (r < 0)
			return r;
	}
	/* Also in degraded mode: uid 0 without capabilities cannot override
	 * permissions, and no execve can give them back (bounding set empty,
	 * no_new_privs). */
	r = caps_clear();
	if (r < 0)
		return r;
	return no_new_privs();
}

int sandbox_landlock_abi(void)
{
	long abi = syscall(__NR_landlock_create_ruleset, NULL, 0, LANDLOCK_CREATE_RULESET_VERSION);

	return abi < 0 ? 0 : (int)abi;
}

/* Every filesystem right the running ABI knows: handled means denied
 * unless a rule grants it. Rights of an ABI newer than this file are not
 * handled (best effort, as the kernel documentation prescribes). */
static uint64_t landlock_fs_rights(int abi)
{
	uint64_t fs = LL_FS_ABI1;

	if (abi >= 2)
		fs |= LANDLOCK_ACCESS_FS_REFER;
	if (abi >= 3)
		fs |= LANDLOCK_ACCESS_FS_TRUNCATE;
	if (abi >= 5)
		fs |= LANDLOCK_ACCESS_FS_IOCTL_DEV;
	return fs;
}

/* The rights that change the filesystem: what sandbox_confine_writes
 * denies outside its directory (reading and executing stay allowed). */
#define LL_FS_WRITES                                                                               \
	(LANDLOCK_ACCESS_FS_WRITE_FILE | LANDLOCK_ACCESS_FS_REMOVE_DIR |                           \
	 LANDLOCK_ACCESS_FS_REMOVE_FILE | LANDLOCK_ACCESS_FS_MAKE_CHAR |                           \
	 LANDLOCK_ACCESS_FS_MAKE_DIR | LANDLOCK_ACCESS_FS_MAKE_REG |                               \
	 LANDLOCK_ACCESS_FS_MAKE_SOCK | LANDLOCK_ACCESS_FS_MAKE_FIFO |                             \
	 LANDLOCK_ACCESS_FS_MAKE_BLOCK | LANDLOCK_ACCESS_FS_MAKE_SYM | LANDLOCK_ACCESS_FS_REFER |  \
	 LANDLOCK_ACCESS_FS_TRUNCATE)

/* Landlock layer: all filesystem access (writes_only: every change to the
 * filesystem) is denied except beneath scratch_dir; without writes_only,
 * on ABI >= 4 TCP bind/connect are denied too; on ABI >= 6 abstract UNIX
 * sockets and signals outside the domain are. Already open descriptors
 * (the IPC socket, stdio, scanned files) are unaffected. */
static int landlock_confine(const char *scratch_dir, bool writes_only)
{
	struct ll_ruleset_attr ra = {0};
	struct landlock_path_beneath_attr pb = {0};
	size_t size = offsetof(struct ll_ruleset_attr, handled_access_net);
	int abi, rfd, dfd, r = 0;

	abi = (int)syscall(__NR_landlock_create_ruleset, NULL, 0, LANDLOCK_CREATE_RULESET_VERSION);
	if (abi < 0) {
		if (errno != ENOSYS && errno != EOPNOTSUPP)
			return -errno;
		if (!landlock_warned)
			log_warn("sandbox: kernel without Landlock (%s): workers are confined "
				 "by seccomp and rlimits only, not to their scratch directory",
				 errno == ENOSYS ? "not built" : "disabled at boot");
		landlock_warned = true;
		return 0;
	}
	ra.handled_access_fs = landlock_fs_rights(abi);
	if (writes_only)
		ra.handled_access_fs &= LL_FS_WRITES;
	if (abi >= 4 && !writes_only) {
		/* No rule follows: no TCP port may be bound or connected. */
		ra.handled_access_net =
			LANDLOCK_ACCESS_NET_BIND_TCP | LANDLOCK_ACCESS_NET_CONNECT_TCP;
		size = offsetof(struct ll_ruleset_attr, scoped);
	}
	if (abi >= 6) {
		/* Neither connect to abstract sockets of, nor signal, processes
		 * outside this sandbox (the supervisor, other workers). */
		ra.scoped = LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET | LANDLOCK_SCOPE_SIGNAL;
		size = sizeof(ra);
	}
	rfd = (int)syscall(__NR_landlock_create_ruleset, &ra, size, 0);
	if (rfd < 0)
		return -errno;
	dfd = open(scratch_dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0) {
		r = -errno;
		goto out_close_ruleset;
	}
	pb.allowed_access = ra.handled_access_fs & ~LL_FS_NEVER;
	pb.parent_fd = dfd;
	if (syscall(__NR_landlock_add_rule, rfd, LANDLOCK_RULE_PATH_BENEATH, &pb, 0) < 0) {
		r = -errno;
		goto out_close_dir;
	}
	/* Needs no_new_privs (or CAP_SYS_ADMIN): the caller set it. */
	if (syscall(__NR_landlock_restrict_self, rfd, 0) < 0)
		r = -errno;
out_close_dir:
	util_close(&dfd);
out_close_ruleset:
	util_close(&rfd);
	return r;
}

/* Lower both limits (never raise: an already lower hard limit stays). */
static int limit_set(int resource, rlim_t value)
{
	struct rlimit rl;

	if (getrlimit(resource, &rl) < 0)
		return -errno;
	if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < value)
		value = rl.rlim_max;
	rl.rlim_cur = value;
	rl.rlim_max = value;
	if (setrlimit(resource, &rl) < 0)
		return -errno;
	return 0;
}

/* VmSize (bytes) and thread count from /proc/self/status. */
static int proc_status(uint64_t *vm_bytes, unsigned long *threads)
{
	char buf[8192], *p;
	ssize_t n;
	size_t len = 0;
	int fd, r = 0;

	fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = util_read_all(fd, buf, sizeof(buf) - 1);
	if (n < 0) {
		r = (int)n;
		goto out_close;
	}
	len = (size_t)n;
	buf[len] = '\0';
	p = strstr(buf, "\nVmSize:");
	*vm_bytes = p ? strtoull(p + 8, NULL, 10) * 1024u : 0;
	p = strstr(buf, "\nThreads:");
	*threads = p ? strtoul(p + 9, NULL, 10) : 0;
	if (!*threads)
		r = -EPROTO;
out_close:
	util_close(&fd);
	return r;
}

static int limits_apply(const struct sandbox_worker_policy *p, uint64_t vm_bytes)
{
	int r;

	r = limit_set(RLIMIT_CORE, 0);
	if (r < 0)
		return r;
	r = limit_set(RLIMIT_NOFILE, SANDBOX_WORKER_NOFILE);
	if (r < 0)
		return r;
	/* Per uid, but enforced only on fork/clone by a process carrying this
	 * limit: the zygote (same uid) can still fork workers. Not enforced for
	 * root; seccomp denies clone anyway. */
	r = limit_set(RLIMIT_NPROC, 0);
	if (r < 0)
		return r;
	if (p->max_file_size) {
		/* Writes past it fail with EFBIG once SIGXFSZ is ignored. */
		r = limit_set(RLIMIT_FSIZE, p->max_file_size);
		if (r < 0)
			return r;
	}
	if (p->mem_limit && !SANDBOX_SANITIZER) {
		uint64_t as = vm_bytes + p->mem_limit;

		/* On overflow no limit is the only honest value. */
		if (as < vm_bytes || as >= (uint64_t)RLIM_INFINITY)
			as = (uint64_t)RLIM_INFINITY;
		r = limit_set(RLIMIT_AS, (rlim_t)as);
		if (r < 0)
			return r;
	}
	return 0;
}

/* Always allowed (no argument filter), with why a scan worker needs each.
 * Paths are confined by Landlock, descriptors are the ones the worker was
 * given or created in its scratch directory. */
static const int seccomp_allow[] = {
	/* reading and writing descriptors in hand */
	SCMP_SYS(read),	     /* scanned file, scratch files, the IPC socket */
	SCMP_SYS(write),     /* unpacked members into scratch files, stderr */
	SCMP_SYS(writev),    /* glibc's fatal messages (fortify, stack protector, malloc) */
	SCMP_SYS(pread64),   /* libclamav's fmap reads the scanned fd by offset */
	SCMP_SYS(pwrite64),  /* positioned writes into scratch files */
	SCMP_SYS(lseek),     /* libclamav rewinds descriptors around every parser */
	SCMP_SYS(ftruncate), /* resizing scratch files */
	SCMP_SYS(close),     /* received and temporary descriptors */
	SCMP_SYS(dup),	     /* libclamav fdopen()s duplicates for some parsers */
	SCMP_SYS(dup2),	     /* same, imported by libclamav */
	/* metadata: size and type of the scanned file and of scratch entries */
	SCMP_SYS(newfstatat), /* glibc's fstat/stat/lstat */
	SCMP_SYS(fstat),      /* Rust std (libclamav's Rust parsers) fallback */
	SCMP_SYS(statx),      /* Rust std's metadata() */
	/* the scratch directory (Landlock keeps these inside it) */
	SCMP_SYS(openat),     /* creating and reopening temporary files by path */
	SCMP_SYS(getdents64), /* listing scratch dirs; without it the ARJ sample scan never ends */
	SCMP_SYS(mkdir),      /* per-scan and per-parser temporary directories */
	SCMP_SYS(unlink),     /* removing temporary files */
	SCMP_SYS(unlinkat),   /* same, Rust std's remove_dir_all */
	SCMP_SYS(rmdir),      /* removing temporary directories */
	/* IPC with the supervisor over the inherited socket */
	SCMP_SYS(recvmsg),  /* jobs, with the file descriptor (SCM_RIGHTS) */
	SCMP_SYS(sendmsg),  /* verdicts and log lines */
	SCMP_SYS(recvfrom), /* recv() */
	SCMP_SYS(sendto),   /* send() */
	/* memory (mmap and mprotect are argument-filtered below) */
	SCMP_SYS(brk),	   /* malloc */
	SCMP_SYS(munmap),  /* malloc, fmap of the scanned file */
	SCMP_SYS(mremap),  /* realloc of large blocks */
	SCMP_SYS(madvise), /* free() trimming; ASan: MADV_DONTDUMP/NOHUGEPAGE on shadow */
	/* time, randomness, synchronisation */
	SCMP_SYS(clock_gettime), /* CLOCK_PROCESS_CPUTIME_ID (clock()) for MaxScanTime */
	SCMP_SYS(gettimeofday),	 /* vDSO fallback where the clocksource has no vDSO */
	SCMP_SYS(time),		 /* same */
	SCMP_SYS(getrandom),	 /* OpenSSL and glibc random state */
	SCMP_SYS(futex),	 /* pthread_once in OpenSSL's lazy init; glibc aborts without */
	SCMP_SYS(sched_yield),	 /* spin-lock back-off */
	/* signals and exit */
	SCMP_SYS(rt_sigaction),	   /* ASan/UBSan and the worker install handlers */
	SCMP_SYS(rt_sigprocmask),  /* raise()/abort() block signals around the kill */
	SCMP_SYS(rt_sigreturn),	   /* returning from any signal handler */
	SCMP_SYS(sigaltstack),	   /* ASan/UBSan query their alternate signal stack */
	SCMP_SYS(restart_syscall), /* kernel restart of an interrupted call */
	SCMP_SYS(exit),		   /* thread exit; glibc's _exit() fallback */
	SCMP_SYS(exit_group),	   /* _exit() */
	SCMP_SYS(getpid),	   /* raise() and log lines */
	SCMP_SYS(gettid),	   /* raise() */
};

/* Deliberately absent (EPERM), although libclamav imports them:
 *  - chmod: cli_rmdirs() chmods each temporary directory to 0700 before
 *    emptying it, which is redundant (it created them 0700) and ignored on
 *    failure (measured: identical verdicts, nothing left behind). Landlock
 *    does not cover chmod, so allowing it would let a degraded (root,
 *    capability-less) worker chmod any root-owned file.
 *  - readlink, access, uname, rename, getuid, getcwd: not reached while
 *    scanning a descriptor. ASan's readlink(/proc/self/exe) only costs
 *    symbol names in its reports.
 *  - clone, clone3, fork, vfork: a worker neither forks nor starts threads.
 *  - socket, socketpair, connect, bind, ...: it talks only over the socket
 *    it inherited. */

/* Killed on sight: no scan needs them, an exploit would. */
static const int seccomp_kill[] = {
	SCMP_SYS(execve),	     /* run anything */
	SCMP_SYS(execveat),	     /* same */
	SCMP_SYS(ptrace),	     /* inspect/control other processes */
	SCMP_SYS(process_vm_readv),  /* read another process's memory */
	SCMP_SYS(process_vm_writev), /* write another process's memory */
	SCMP_SYS(pidfd_getfd),	     /* steal another process's descriptors */
	SCMP_SYS(kexec_load),	     /* replace the kernel */
	SCMP_SYS(kexec_file_load),
	SCMP_SYS(init_module), /* load kernel code */
	SCMP_SYS(finit_module),
	SCMP_SYS(delete_module),
	SCMP_SYS(bpf),		   /* kernel attack surface */
	SCMP_SYS(perf_event_open), /* kernel attack surface, side channels */
	SCMP_SYS(userfaultfd),	   /* classic race-widening exploit primitive */
	SCMP_SYS(io_uring_setup),  /* io_uring operations bypass seccomp */
	SCMP_SYS(io_uring_enter),
	SCMP_SYS(io_uring_register),
	SCMP_SYS(keyctl), /* kernel keyrings */
	SCMP_SYS(add_key),
	SCMP_SYS(request_key),
	SCMP_SYS(unshare), /* new namespaces */
	SCMP_SYS(setns),
	SCMP_SYS(mount),
	SCMP_SYS(umount2),
	SCMP_SYS(pivot_root),
	SCMP_SYS(chroot),
	SCMP_SYS(open_by_handle_at), /* opens files by handle, bypassing paths */
};

/* fcntl commands libclamav and stdio use; the others (leases, owners,
 * signals, notifications, pipe sizes) stay denied. */
static const int seccomp_fcntl_cmds[] = {
	F_GETFD, F_SETFD, F_GETFL, F_SETFL, F_DUPFD, F_DUPFD_CLOEXEC,
};

/* Seccomp layer: default-deny (EPERM). */
static int seccomp_confine(void)
{
	const scmp_datum_t self = (scmp_datum_t)getpid();
	scmp_filter_ctx ctx;
	int r;

	ctx = seccomp_init(SCMP_ACT_ERRNO(EPERM));
	if (!ctx)
		return -ENOMEM;
	/* Only native x86_64 calls are filtered by the rules below: i386 (int
	 * 0x80) and x32 calls would bypass them, so a foreign ABI kills. */
	r = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
	if (r < 0)
		goto out_release;
	for (size_t i = 0; i < SE_ARRAY_SIZE(seccomp_allow); i++) {
		r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, seccomp_allow[i], 0);
		if (r < 0)
			goto out_release;
	}
	for (size_t i = 0; i < SE_ARRAY_SIZE(seccomp_kill); i++) {
		r = seccomp_rule_add(ctx, SCMP_ACT_KILL_PROCESS, seccomp_kill[i], 0);
		if (r < 0)
			goto out_release;
	}
	/* No executable memory: libclamav's bytecode runs in its interpreter
	 * (Debian builds without the LLVM JIT), and code mapped after the
	 * sandbox is entered (a dlopen'ed gconv module) is exactly what must
	 * not happen. EPERM, not kill: dlopen then fails cleanly. */
	r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(mmap), 1,
			     SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));
	if (r < 0)
		goto out_release;
	r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(mprotect), 1,
			     SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));
	if (r < 0)
		goto out_release;
	for (size_t i = 0; i < SE_ARRAY_SIZE(seccomp_fcntl_cmds); i++) {
		r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(fcntl), 1,
				     SCMP_A1(SCMP_CMP_EQ, (scmp_datum_t)seccomp_fcntl_cmds[i]));
		if (r < 0)
			goto out_release;
	}
	/* abort()/raise() signal the calling thread; no other process. */
	r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(tgkill), 1, SCMP_A0(SCMP_CMP_EQ, self));
	if (r < 0)
		goto out_release;
	/* glibc's getrlimit() is prlimit64(0, res, NULL, old): reading own
	 * limits only, so even a degraded root worker cannot raise them. */
	r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(prlimit64), 2, SCMP_A0(SCMP_CMP_EQ, 0),
			     SCMP_A2(SCMP_CMP_EQ, 0));
	if (r < 0)
		goto out_release;
	/* clone/fork/vfork get the default EPERM; clone3 gets ENOSYS, which
	 * glibc takes as "use clone" (then EPERM) instead of failing oddly. */
	r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
	if (r < 0)
		goto out_release;
	/* Also sets no_new_privs (SCMP_FLTATR_CTL_NNP defaults to on). */
	r = seccomp_load(ctx);
out_release:
	seccomp_release(ctx);
	return r < 0 ? r : 0;
}

int sandbox_enter_worker(const struct sandbox_worker_policy *p)
{
	unsigned long threads;
	uint64_t vm_bytes;
	int r;

	if (!p || !p->scratch_dir || !*p->scratch_dir)
		return -EINVAL;
	/* Landlock and seccomp bind the calling thread only: a second thread
	 * would run unconfined. */
	r = proc_status(&vm_bytes, &threads);
	if (r < 0)
		return r;
	if (threads != 1)
		return -EBUSY;
	/* libclamav formats dates with localtime(): load the zone now, since
	 * /etc/localtime cannot be opened afterwards (glibc then only
	 * stat()s it, which Landlock does not cover). */
	tzset();

	r = limits_apply(p, vm_bytes);
	if (r < 0)
		return r;
	/* Required by landlock_restrict_self and seccomp for an unprivileged
	 * caller; idempotent if sandbox_drop_privileges ran. */
	r = no_new_privs();
	if (r < 0)
		return r;
	r = landlock_confine(p->scratch_dir, false);
	if (r < 0)
		return r;
	return seccomp_confine();
}

int sandbox_confine_writes(const char *dir)
{
	int r = no_new_privs();

	return r ? r : landlock_confine(dir, true);
}
