/* sandbox: privilege drop and confinement of scanengine's child processes.
 *
 * Layers, applied in this order by sandbox_enter_worker():
 *   1. rlimits (no core dumps, few descriptors, bounded address space and
 *      file size, no new processes),
 *   2. Landlock: the only paths a worker may open, create or remove are
 *      beneath its private scratch directory (libclamav writes temporary
 *      files while unpacking archives); everything else fails with EACCES,
 *   3. PR_SET_NO_NEW_PRIVS and a default-deny seccomp filter (libseccomp):
 *      only the system calls that scanning a descriptor needs are allowed;
 *      execve/execveat, ptrace, process_vm_* kill the process; socket
 *      creation and everything else not listed fail with EPERM. */
#ifndef SE_SANDBOX_SANDBOX_H
#define SE_SANDBOX_SANDBOX_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

struct sandbox_identity {
	bool valid; /* false: the account is missing; stay root (degraded) */
	uid_t uid;
	gid_t gid;
	char name[64];
};

struct sandbox_worker_policy {
	const char *scratch_dir; /* the one directory tree a worker may use */
	uint64_t mem_limit;	 /* RLIMIT_AS bytes on top of current VM size; 0: none */
	uint64_t max_file_size;	 /* RLIMIT_FSIZE for scratch files; 0: none */
};

/* sandbox_lookup_user: resolve an account name (NSS; call at start-up,
 * never in a hot path). Returns 0 with id filled, -ENOENT when the user or
 * its primary group does not exist (id->valid is false then), other -errno. */
int sandbox_lookup_user(const char *name, struct sandbox_identity *id);

/* sandbox_drop_privileges: if running as root and id->valid, switch to the
 * account for good (setgroups to its primary group only, setresgid,
 * setresuid) and check that root cannot be regained; then clear every
 * capability set and the bounding set of what remains, set
 * PR_SET_NO_NEW_PRIVS and make the process non-dumpable. If id is NULL or
 * not valid the process keeps its uid (degraded mode) but still gets no new
 * privileges, and its capabilities are cleared all the same (uid 0 without
 * capabilities cannot override file permissions). Returns 0 or -errno;
 * -EINVAL if the account has uid or gid 0, -EPERM if root could be regained. */
int sandbox_drop_privileges(const struct sandbox_identity *id);

/* sandbox_enter_worker: confine the calling process as a scan worker (see
 * the layers above). Call after sandbox_drop_privileges and after every
 * descriptor the worker needs is open. Irreversible. Returns 0 or -errno;
 * on error the caller must exit. A kernel without Landlock is not an error
 * (logged once); seccomp is mandatory. -EBUSY: the process has more than one
 * thread (the others would stay unconfined). Loads the time zone (tzset)
 * first, as /etc/localtime is out of reach afterwards. Callers setting
 * max_file_size should ignore SIGXFSZ so oversized writes fail with EFBIG. */
int sandbox_enter_worker(const struct sandbox_worker_policy *p);

/* sandbox_confine_writes: for a process that needs the network and reads
 * what it likes but may change files only beneath dir (the updater): set
 * PR_SET_NO_NEW_PRIVS, then a Landlock domain that denies every
 * filesystem change (write, truncate, create, remove, rename) outside dir
 * and, on ABI >= 6, signals and abstract sockets outside the domain.
 * Irreversible; a kernel without Landlock is not an error (logged once).
 * Returns 0 or -errno. */
int sandbox_confine_writes(const char *dir);

/* sandbox_landlock_abi: Landlock ABI version of the running kernel, or 0
 * when unavailable. */
int sandbox_landlock_abi(void);

#endif
