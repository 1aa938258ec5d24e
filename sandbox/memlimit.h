/* memlimit: a memory limit for the engine processes (zygote and workers,
 * not the supervisor), and the evidence needed to tell an out-of-memory
 * failure from any other (fault 7).
 *
 * A memory cgroup when one can be made: cgroup v2 where the memory
 * controller is enabled in the unified hierarchy, else the v1 memory
 * controller (e.g. /sys/fs/cgroup/memory). The cgroup is made under the
 * caller's own cgroup of that hierarchy when the kernel allows it (so it
 * stays within the service's own limit), else under the hierarchy's root.
 * Swap is kept out of it (v2 memory.swap.max 0; v1 memsw limit equal to
 * the limit, swappiness 0), so the limit is one of real memory. Otherwise
 * RLIMIT_AS, inherited by the engine processes, as a fallback (allocation
 * then fails with ENOMEM instead of the OOM killer stepping in). */
#ifndef SE_SANDBOX_MEMLIMIT_H
#define SE_SANDBOX_MEMLIMIT_H

#include <stdint.h>

enum memlimit_kind {
	MEMLIMIT_CGROUP2,
	MEMLIMIT_CGROUP1,
	MEMLIMIT_RLIMIT,
};

struct memlimit;

/* memlimit_new: set up a limit of bytes (> 0) in a cgroup named name (one
 * path component, e.g. "scanengine-<pid>"; created under the memory
 * hierarchy; an existing empty one is reused, one with processes in it is
 * -EBUSY). force_kind < 0 picks the best available, falling back to
 * RLIMIT_AS with a warning logged; tests may force a kind, which fails with
 * EOPNOTSUPP when that hierarchy has no memory controller here (name may
 * be NULL when forcing MEMLIMIT_RLIMIT). Returns it or NULL with errno and
 * a reason in err[256] (err may be NULL). Free with memlimit_free. */
struct memlimit *memlimit_new(uint64_t bytes, const char *name, int force_kind, char *err);

/* memlimit_free: remove the cgroup if it is empty, free (NULL ok). A cgroup
 * that still has processes is left in place (nothing is moved or killed)
 * and a warning is logged. */
void memlimit_free(struct memlimit *m);

/* memlimit_enter: put the calling process under the limit: join the cgroup,
 * or set RLIMIT_AS (soft and hard, never above a hard limit already in
 * place; not applied in sanitizer builds, whose shadow memory no
 * realistic RLIMIT_AS allows). Called in the engine child right after
 * fork, while it still may; async-signal-safe, logs nothing. Returns 0 or
 * -errno. */
int memlimit_enter(const struct memlimit *m);

/* memlimit_set: change the limit (e.g. raised by the operator). In
 * RLIMIT_AS mode only processes entering from now on get the new value.
 * Returns 0 or -errno (v1/v2: -EBUSY when lowering below what cannot be
 * reclaimed). */
int memlimit_set(struct memlimit *m, uint64_t bytes);

/* memlimit_bytes: the limit in force (read back from the cgroup, which
 * rounds down to whole pages), 0 when it cannot be read. */
uint64_t memlimit_bytes(const struct memlimit *m);

/* memlimit_usage: current memory use of the cgroup's processes in bytes, 0
 * when unknown (rlimit mode). */
uint64_t memlimit_usage(const struct memlimit *m);

/* memlimit_oom_kills: how many processes the OOM killer has killed in the
 * cgroup so far (v2 memory.events oom_kill, v1 memory.oom_control oom_kill,
 * Linux >= 4.13); 0 in rlimit mode. Compare before and after a death. */
uint64_t memlimit_oom_kills(const struct memlimit *m);

/* memlimit_host_oom_kills: how many processes the OOM killer has killed on
 * this host so far, in any cgroup (/proc/vmstat oom_kill, Linux >= 4.13; 0
 * when unknown). Compare before and after a SIGKILL nobody here sent. */
uint64_t memlimit_host_oom_kills(void);

/* memlimit_limit_hits: how often a charge reached the limit (v2
 * memory.events max; v1 memory.failcnt + memory.memsw.failcnt); 0 in
 * rlimit mode. Extra evidence of memory pressure, but weak on v1: Linux
 * >= 6.16 does not count memsw refusals, which are the ones happening when
 * the memsw limit equals the limit, so it may stay 0 there. */
uint64_t memlimit_limit_hits(const struct memlimit *m);

/* memlimit_path: the cgroup directory ("" in rlimit mode), for status
 * output and tests; owned by m. */
const char *memlimit_path(const struct memlimit *m);

/* memlimit_kind: which mechanism is in use. */
enum memlimit_kind memlimit_kind(const struct memlimit *m);

/* memlimit_kind_name: "cgroup v2", "cgroup v1", "RLIMIT_AS". */
const char *memlimit_kind_name(enum memlimit_kind k);

/* memlimit_available: the host's MemAvailable (/proc/meminfo) in bytes, 0
 * when unknown. */
uint64_t memlimit_available(void);

#endif
