/* memlimit: a memory limit for the engine processes, and the evidence of an
 * out-of-memory death (fault 7).
 *
 * Where the cgroup is made: under the supervisor's own cgroup when the
 * kernel lets us (a delegated systemd service, a container), so the engine
 * stays inside whatever limit the service itself runs under; else under the
 * root of the hierarchy. On cgroup v2 the memory controller must also be
 * enabled in the parent's cgroup.subtree_control, which the kernel refuses
 * (EBUSY) for a non-root cgroup that has processes of its own: that is the
 * usual case for a service's cgroup, and the root is then the fallback. */
#include "sandbox/memlimit.h"
#include "common/log.h"
#include "common/util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/resource.h>
#include <sys/stat.h>

/* Sanitizer runtimes reserve terabytes of shadow address space, so no
 * RLIMIT_AS of a realistic size lets them allocate anything at all. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define MEMLIMIT_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) ||                         \
	__has_feature(memory_sanitizer)
#define MEMLIMIT_SANITIZER 1
#endif
#endif
#ifndef MEMLIMIT_SANITIZER
#define MEMLIMIT_SANITIZER 0
#endif

#define MEMLIMIT_ERR_LEN 256 /* size of the caller's err buffer */
#define MEMLIMIT_MOUNTS	 4   /* cgroup mounts considered per kind */
#define MEMLIMIT_MNT_LEN 1024

struct memlimit {
	enum memlimit_kind kind;
	uint64_t bytes;	      /* as last set; what RLIMIT_AS mode applies */
	char dir[PATH_MAX];   /* the cgroup directory; "" in RLIMIT_AS mode */
	char procs[PATH_MAX]; /* dir/cgroup.procs, built beforehand because
			       * memlimit_enter runs between fork and exec */
};

/* A cgroup hierarchy as mounted: where, and which cgroup is its root. */
struct cg_mount {
	char mnt[MEMLIMIT_MNT_LEN];
	char root[MEMLIMIT_MNT_LEN];
};

static int seterr(char *err, int r, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Format a reason into err (may be NULL) and return r, for one-line
 * error returns. */
static int seterr(char *err, int r, const char *fmt, ...)
{
	va_list ap;

	if (err) {
		va_start(ap, fmt);
		vsnprintf(err, MEMLIMIT_ERR_LEN, fmt, ap);
		va_end(ap);
	}
	return r;
}

static int path_join(char *out, size_t len, const char *dir, const char *file)
{
	int n = snprintf(out, len, "%s/%s", dir, file);

	if (n < 0 || (size_t)n >= len)
		return -ENAMETOOLONG;
	return 0;
}

/* Read a (small) control file into buf, NUL-terminated. Returns the length
 * or -errno. */
static ssize_t read_text(const char *dir, const char *file, char *buf, size_t len)
{
	char path[PATH_MAX];
	ssize_t n;
	int fd, r;

	r = path_join(path, sizeof(path), dir, file);
	if (r < 0)
		return r;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = util_read_all(fd, buf, len - 1);
	close(fd);
	buf[n > 0 ? n : 0] = '\0';
	return n;
}

/* Write text to a control file in one write(2): cgroup files take one
 * value per write, and report a refused value as the write's error. */
static int write_text(const char *dir, const char *file, const char *text)
{
	char path[PATH_MAX];
	size_t len = strlen(text);
	ssize_t n;
	int fd, r;

	r = path_join(path, sizeof(path), dir, file);
	if (r < 0)
		return r;
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = write(fd, text, len);
	r = n < 0 ? -errno : (size_t)n == len ? 0 : -EIO;
	close(fd);
	return r;
}

static int write_u64(const char *dir, const char *file, uint64_t v)
{
	char num[24];

	snprintf(num, sizeof(num), "%llu", (unsigned long long)v);
	return write_text(dir, file, num);
}

static bool has_file(const char *dir, const char *file)
{
	char path[PATH_MAX];

	return path_join(path, sizeof(path), dir, file) == 0 && access(path, F_OK) == 0;
}

/* A file holding one number; v2's "max" (no limit) reads as UINT64_MAX. */
static int read_u64(const char *dir, const char *file, uint64_t *out)
{
	char buf[64];
	ssize_t n = read_text(dir, file, buf, sizeof(buf));

	if (n < 0)
		return (int)n;
	buf[strcspn(buf, "\n")] = '\0';
	if (strcmp(buf, "max") == 0) {
		*out = UINT64_MAX;
		return 0;
	}
	return util_parse_u64(buf, out);
}

/* A "key value" line of a flat keyed file (memory.events,
 * memory.oom_control, /proc/meminfo with sep ':'). */
static int read_keyed(const char *dir, const char *file, const char *key, uint64_t *out)
{
	/* /proc/vmstat is about 4 KiB already */
	char buf[16384], *line, *save = NULL;
	size_t klen = strlen(key);
	ssize_t n = read_text(dir, file, buf, sizeof(buf));

	if (n < 0)
		return (int)n;
	for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *v = line + klen;

		if (strncmp(line, key, klen) != 0 || (*v != ' ' && *v != ':' && *v != '\t'))
			continue;
		while (*v == ' ' || *v == ':' || *v == '\t')
			v++;
		v[strcspn(v, " \t")] = '\0';
		return util_parse_u64(v, out);
	}
	return -ENOENT;
}

/* Is word an element of list, whose elements are separated by any of seps
 * (cgroup.controllers: blanks; mount options: commas)? */
static bool word_in(const char *list, const char *word, const char *seps)
{
	size_t wlen = strlen(word);

	while (*list) {
		size_t n = strcspn(list, seps);

		if (n == wlen && strncmp(list, word, wlen) == 0)
			return true;
		list += n;
		list += strspn(list, seps);
	}
	return false;
}

/* Does the file list "memory" (cgroup.controllers, cgroup.subtree_control)? */
static bool lists_memory(const char *dir, const char *file)
{
	char buf[512];

	return read_text(dir, file, buf, sizeof(buf)) >= 0 && word_in(buf, "memory", " \n");
}

/* mountinfo escapes blanks and backslashes in paths as \ooo. */
static void unescape_octal(char *s)
{
	char *d = s;

	while (*s) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' &&
		    s[3] >= '0' && s[3] <= '7') {
			*d++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
			s += 4;
		} else {
			*d++ = *s++;
		}
	}
	*d = '\0';
}

/* The mounts of the memory hierarchy, from /proc/self/mountinfo: cgroup2
 * mounts whose root lists "memory" in cgroup.controllers (a hybrid host
 * has a cgroup2 mount without it), or cgroup v1 mounts with the "memory"
 * super option. Returns how many were stored in out[max], or -errno. */
static int find_mounts(bool v2, struct cg_mount *out, int max)
{
	char *line = NULL, *f[64];
	size_t cap = 0;
	FILE *fp;
	int n = 0;

	fp = fopen("/proc/self/mountinfo", "re");
	if (!fp)
		return -errno;
	while (n < max && getline(&line, &cap, fp) > 0) {
		char *save = NULL, *tok;
		int nf = 0, dash = -1;

		/* id parent dev root mountpoint options [optional...] - type
		 * source superoptions */
		for (tok = strtok_r(line, " \n", &save); tok && nf < (int)SE_ARRAY_SIZE(f);
		     tok = strtok_r(NULL, " \n", &save)) {
			if (dash < 0 && nf >= 6 && strcmp(tok, "-") == 0)
				dash = nf;
			f[nf++] = tok;
		}
		if (dash < 0 || nf < dash + 4)
			continue;
		if (strcmp(f[dash + 1], v2 ? "cgroup2" : "cgroup") != 0)
			continue;
		if (!v2 && !word_in(f[dash + 3], "memory", ","))
			continue;
		unescape_octal(f[3]);
		unescape_octal(f[4]);
		if (strlen(f[3]) >= MEMLIMIT_MNT_LEN || strlen(f[4]) >= MEMLIMIT_MNT_LEN)
			continue;
		if (v2 && !lists_memory(f[4], "cgroup.controllers"))
			continue;
		util_strlcpy(out[n].mnt, f[4], sizeof(out[n].mnt));
		util_strlcpy(out[n].root, f[3], sizeof(out[n].root));
		n++;
	}
	free(line);
	fclose(fp);
	return n;
}

/* Our own cgroup in the memory hierarchy, from /proc/self/cgroup
 * ("0::/path" on v2, "N:...,memory,...:/path" on v1). Returns 0 or
 * -ENOENT. */
static int own_cgroup(bool v2, char *out, size_t len)
{
	char *line = NULL;
	size_t cap = 0;
	FILE *fp;
	int r = -ENOENT;

	fp = fopen("/proc/self/cgroup", "re");
	if (!fp)
		return -errno;
	while (getline(&line, &cap, fp) > 0) {
		char *ctl = strchr(line, ':'), *path;

		if (!ctl || !(path = strchr(ctl + 1, ':')))
			continue;
		*path++ = '\0';
		ctl++;
		path[strcspn(path, "\n")] = '\0';
		if (v2 ? (strncmp(line, "0:", 2) != 0 || *ctl) : !word_in(ctl, "memory", ","))
			continue;
		if (*path != '/' || util_strlcpy(out, path, len) >= len)
			continue;
		r = 0;
		break;
	}
	free(line);
	fclose(fp);
	return r;
}

/* The directories where our cgroup may be made under mount mt, best
 * first: our own cgroup (when it is visible through this mount), then the
 * mount's root. Returns how many (1 or 2). */
static int parent_dirs(const struct cg_mount *mt, bool v2, char out[2][PATH_MAX])
{
	char own[PATH_MAX];
	size_t rlen = strlen(mt->root);
	const char *rel;
	int n = 0;

	if (own_cgroup(v2, own, sizeof(own)) == 0) {
		rel = own;
		if (strcmp(mt->root, "/") != 0) {
			/* a mount of a subtree that may not contain us */
			if (strncmp(own, mt->root, rlen) != 0 || (own[rlen] != '/' && own[rlen]))
				rel = NULL;
			else
				rel = own + rlen;
		}
		if (rel && *rel && strcmp(rel, "/") != 0) {
			int k = snprintf(out[n], PATH_MAX, "%s%s", mt->mnt, rel);

			if (k > 0 && k < PATH_MAX)
				n++;
		}
	}
	util_strlcpy(out[n++], mt->mnt, PATH_MAX);
	return n;
}

/* Make (or reuse) parent/name as m's cgroup. Returns 0, or -errno with
 * err; *next is set when another parent may still work (the kernel did not
 * allow this one). */
static int cg_make_in(struct memlimit *m, bool v2, const char *parent, const char *name, bool *next,
		      char *err)
{
	char procs[64];
	ssize_t n;
	int r;

	*next = true;
	if (v2 && !lists_memory(parent, "cgroup.controllers"))
		return seterr(err, -EOPNOTSUPP, "memory controller not available in %s", parent);
	/* Enabling it affects every child of parent, and stays: other
	 * children may rely on it once it is on, so free does not undo it. */
	if (v2 && !lists_memory(parent, "cgroup.subtree_control")) {
		r = write_text(parent, "cgroup.subtree_control", "+memory");
		if (r < 0)
			return seterr(err, r, "cannot enable the memory controller in %s: %s",
				      parent, strerror(-r));
	}
	r = path_join(m->dir, sizeof(m->dir), parent, name);
	if (r == 0)
		r = path_join(m->procs, sizeof(m->procs), m->dir, "cgroup.procs");
	if (r < 0) {
		*next = false;
		return seterr(err, r, "cgroup path too long under %s", parent);
	}
	if (mkdir(m->dir, 0755) == 0) {
		*next = false;
		return 0;
	}
	r = -errno;
	if (r != -EEXIST) {
		*next = r == -EACCES || r == -EPERM || r == -EROFS || r == -ENOENT;
		return seterr(err, r, "cannot create %s: %s", m->dir, strerror(-r));
	}
	/* Left over by an earlier instance (same name: same pid). Reused only
	 * when empty: processes in it belong to someone else's limit. */
	*next = false;
	n = read_text(m->dir, "cgroup.procs", procs, sizeof(procs));
	if (n < 0)
		return seterr(err, (int)n, "%s exists but is not a cgroup: %s", m->dir,
			      strerror((int)-n));
	if (n > 0)
		return seterr(err, -EBUSY, "%s exists and still has processes", m->dir);
	return 0;
}

/* v1 refuses memory.limit_in_bytes above memory.memsw.limit_in_bytes, and
 * memsw below the limit (EINVAL), so the order of the two writes follows
 * the direction of the change. memsw equal to the limit leaves no room for
 * swap: the limit is real memory. */
static int v1_set_limit(const struct memlimit *m, uint64_t bytes)
{
	uint64_t memsw;
	int r;

	if (!has_file(m->dir, "memory.memsw.limit_in_bytes"))
		return write_u64(m->dir, "memory.limit_in_bytes", bytes);
	r = read_u64(m->dir, "memory.memsw.limit_in_bytes", &memsw);
	if (r < 0)
		return r;
	if (bytes > memsw) {
		r = write_u64(m->dir, "memory.memsw.limit_in_bytes", bytes);
		if (r == 0)
			r = write_u64(m->dir, "memory.limit_in_bytes", bytes);
		return r;
	}
	r = write_u64(m->dir, "memory.limit_in_bytes", bytes);
	if (r == 0)
		r = write_u64(m->dir, "memory.memsw.limit_in_bytes", bytes);
	return r;
}

static int v1_configure(const struct memlimit *m, uint64_t bytes, char *err)
{
	int r;

	/* Both are inherited from the parent in v1: an OOM killer disabled
	 * there would leave an engine over its limit hanging rather than
	 * killed (and reported), and swapping would hide the shortage. */
	r = write_text(m->dir, "memory.oom_control", "0");
	if (r < 0)
		return seterr(err, r, "%s/memory.oom_control: %s", m->dir, strerror(-r));
	r = write_text(m->dir, "memory.swappiness", "0");
	if (r < 0)
		return seterr(err, r, "%s/memory.swappiness: %s", m->dir, strerror(-r));
	r = v1_set_limit(m, bytes);
	if (r < 0)
		return seterr(err, r, "cannot set the limit in %s: %s", m->dir, strerror(-r));
	return 0;
}

static int v2_configure(const struct memlimit *m, uint64_t bytes, char *err)
{
	int r;

	r = write_u64(m->dir, "memory.max", bytes);
	if (r < 0)
		return seterr(err, r, "%s/memory.max: %s", m->dir, strerror(-r));
	/* Without swap.max 0 the engine would swap out past memory.max
	 * instead of failing, and the limit would not be a limit. Missing
	 * when the kernel does no swap accounting. */
	if (has_file(m->dir, "memory.swap.max")) {
		r = write_text(m->dir, "memory.swap.max", "0");
		if (r < 0)
			return seterr(err, r, "%s/memory.swap.max: %s", m->dir, strerror(-r));
	}
	/* One worker over the limit is killed alone; the zygote and the
	 * other workers keep scanning. */
	if (has_file(m->dir, "memory.oom.group")) {
		r = write_text(m->dir, "memory.oom.group", "0");
		if (r < 0)
			return seterr(err, r, "%s/memory.oom.group: %s", m->dir, strerror(-r));
	}
	return 0;
}

/* Set m up as a cgroup of its kind. Returns 0 or -errno with err;
 * -EOPNOTSUPP: no such hierarchy with the memory controller. */
static int cg_setup(struct memlimit *m, uint64_t bytes, const char *name, char *err)
{
	bool v2 = m->kind == MEMLIMIT_CGROUP2, next = true;
	struct cg_mount mounts[MEMLIMIT_MOUNTS];
	char parents[2][PATH_MAX];
	int n, r = -EOPNOTSUPP;

	n = find_mounts(v2, mounts, MEMLIMIT_MOUNTS);
	if (n < 0)
		return seterr(err, n, "/proc/self/mountinfo: %s", strerror(-n));
	if (n == 0)
		return seterr(err, -EOPNOTSUPP, "%s",
			      v2 ? "no cgroup2 mount with the memory controller"
				 : "no cgroup v1 memory hierarchy mounted");
	for (int i = 0; i < n && next; i++) {
		int np = parent_dirs(&mounts[i], v2, parents);

		for (int j = 0; j < np && next; j++) {
			r = cg_make_in(m, v2, parents[j], name, &next, err);
			if (r == 0)
				goto configure;
		}
	}
	m->dir[0] = '\0';
	return r;
configure:
	r = v2 ? v2_configure(m, bytes, err) : v1_configure(m, bytes, err);
	if (r < 0) {
		/* empty (made or found so), so nothing but our directory goes */
		rmdir(m->dir);
		m->dir[0] = '\0';
	}
	return r;
}

/* A cgroup directory name: one path component, and no dot files, which
 * are not cgroups anywhere. */
static bool valid_name(const char *name)
{
	size_t len;

	if (!name || name[0] == '\0' || name[0] == '.')
		return false;
	len = strlen(name);
	if (len > NAME_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = name[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_' || c == '.' || c == '@'))
			return false;
	}
	return true;
}

struct memlimit *memlimit_new(uint64_t bytes, const char *name, int force_kind, char *err)
{
	static const enum memlimit_kind order[] = {MEMLIMIT_CGROUP2, MEMLIMIT_CGROUP1};
	char why[2][MEMLIMIT_ERR_LEN] = {"", ""};
	struct memlimit *m;
	int r = 0;

	if (err)
		err[0] = '\0';
	if (bytes == 0 || force_kind > MEMLIMIT_RLIMIT) {
		r = seterr(err, -EINVAL, "invalid memory limit %llu or kind %d",
			   (unsigned long long)bytes, force_kind);
		goto err;
	}
	if (force_kind != MEMLIMIT_RLIMIT && !valid_name(name)) {
		r = seterr(err, -EINVAL, "invalid cgroup name \"%s\"", name ? name : "(null)");
		goto err;
	}
	m = calloc(1, sizeof(*m));
	if (!m) {
		r = seterr(err, -ENOMEM, "out of memory");
		goto err;
	}
	m->bytes = bytes;
	if (force_kind == MEMLIMIT_CGROUP2 || force_kind == MEMLIMIT_CGROUP1) {
		m->kind = (enum memlimit_kind)force_kind;
		r = cg_setup(m, bytes, name, err);
		if (r < 0)
			goto err_free;
		return m;
	}
	if (force_kind < 0) {
		for (size_t i = 0; i < SE_ARRAY_SIZE(order); i++) {
			m->kind = order[i];
			if (cg_setup(m, bytes, name, why[i]) == 0)
				return m;
		}
		/* no cgroup: a weaker limit (address space, not memory), and
		 * the OOM evidence is gone; say why */
		log_warn("memory limit: falling back to RLIMIT_AS (cgroup v2: %s; cgroup v1: %s)",
			 why[0], why[1]);
	}
	m->kind = MEMLIMIT_RLIMIT;
	if (MEMLIMIT_SANITIZER)
		log_warn("memory limit: RLIMIT_AS is not applied in a sanitizer build");
	return m;
err_free:
	free(m);
err:
	errno = -r;
	return NULL;
}

void memlimit_free(struct memlimit *m)
{
	if (!m)
		return;
	/* rmdir succeeds only on an empty cgroup; a process still in it is
	 * not ours to move or kill here, so the directory stays. */
	if (m->dir[0] && rmdir(m->dir) < 0 && errno != ENOENT) {
		int r = -errno;

		log_warn("memory limit: cannot remove %s: %s (%d)%s", m->dir, strerror(-r), r,
			 r == -EBUSY ? ", processes remain in it; left in place" : "");
	}
	free(m);
}

/* Decimal pid into buf without stdio: runs between fork and exec. */
static size_t fmt_pid(char *buf, size_t len, pid_t pid)
{
	char tmp[24];
	size_t n = 0, i = 0;
	unsigned long v = (unsigned long)pid;

	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v && n < sizeof(tmp));
	while (n && i < len - 1)
		buf[i++] = tmp[--n];
	buf[i] = '\0';
	return i;
}

int memlimit_enter(const struct memlimit *m)
{
	struct rlimit rl;
	char pid[24];
	size_t len;
	ssize_t n;
	int fd, r;

	if (!m)
		return -EINVAL;
	if (m->kind == MEMLIMIT_RLIMIT) {
		if (MEMLIMIT_SANITIZER)
			return 0;
		if (getrlimit(RLIMIT_AS, &rl) < 0)
			return -errno;
		/* Soft and hard: the engine may not lift it again. Never
		 * above a hard limit already there (raising it needs
		 * CAP_SYS_RESOURCE); sandbox.c clamps the same way. */
		if (rl.rlim_max == RLIM_INFINITY || (uint64_t)rl.rlim_max > m->bytes)
			rl.rlim_max = (rlim_t)m->bytes;
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_AS, &rl) < 0)
			return -errno;
		return 0;
	}
	len = fmt_pid(pid, sizeof(pid), getpid());
	fd = open(m->procs, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = write(fd, pid, len);
	r = n < 0 ? -errno : (size_t)n == len ? 0 : -EIO;
	close(fd);
	return r;
}

int memlimit_set(struct memlimit *m, uint64_t bytes)
{
	int r;

	if (!m || bytes == 0)
		return -EINVAL;
	switch (m->kind) {
	case MEMLIMIT_CGROUP2:
		r = write_u64(m->dir, "memory.max", bytes);
		break;
	case MEMLIMIT_CGROUP1:
		r = v1_set_limit(m, bytes);
		break;
	case MEMLIMIT_RLIMIT:
	default:
		/* a process's RLIMIT_AS cannot be raised from outside
		 * without CAP_SYS_RESOURCE and a pid: processes entered
		 * from now on get the new value */
		r = 0;
		break;
	}
	if (r == 0)
		m->bytes = bytes;
	return r;
}

uint64_t memlimit_bytes(const struct memlimit *m)
{
	uint64_t v = 0;

	if (!m)
		return 0;
	switch (m->kind) {
	case MEMLIMIT_CGROUP2:
		if (read_u64(m->dir, "memory.max", &v) < 0)
			v = 0;
		return v;
	case MEMLIMIT_CGROUP1:
		if (read_u64(m->dir, "memory.limit_in_bytes", &v) < 0)
			v = 0;
		return v;
	case MEMLIMIT_RLIMIT:
	default:
		return m->bytes;
	}
}

uint64_t memlimit_usage(const struct memlimit *m)
{
	const char *file;
	uint64_t v = 0;

	if (!m || m->kind == MEMLIMIT_RLIMIT)
		return 0;
	file = m->kind == MEMLIMIT_CGROUP2 ? "memory.current" : "memory.usage_in_bytes";
	if (read_u64(m->dir, file, &v) < 0)
		return 0;
	return v;
}

uint64_t memlimit_oom_kills(const struct memlimit *m)
{
	const char *file;
	uint64_t v = 0;

	if (!m || m->kind == MEMLIMIT_RLIMIT)
		return 0;
	/* v1 has the oom_kill line since Linux 4.13; before, 0 */
	file = m->kind == MEMLIMIT_CGROUP2 ? "memory.events" : "memory.oom_control";
	if (read_keyed(m->dir, file, "oom_kill", &v) < 0)
		return 0;
	return v;
}

uint64_t memlimit_limit_hits(const struct memlimit *m)
{
	uint64_t v = 0, memsw = 0;
	int r;

	if (!m || m->kind == MEMLIMIT_RLIMIT)
		return 0;
	if (m->kind == MEMLIMIT_CGROUP2) {
		r = read_keyed(m->dir, "memory.events", "max", &v);
		return r < 0 ? 0 : v;
	}
	/* A v1 charge is tried against memsw first and against memory only
	 * if memsw took it, so the two counts are of different refusals. With
	 * memsw equal to the limit memsw refuses first, and Linux >= 6.16
	 * does not count that (memsw.failcnt stays 0). */
	r = read_u64(m->dir, "memory.failcnt", &v);
	if (r < 0)
		return 0;
	if (read_u64(m->dir, "memory.memsw.failcnt", &memsw) == 0 && v + memsw >= v)
		v += memsw;
	return v;
}

const char *memlimit_path(const struct memlimit *m)
{
	return m ? m->dir : "";
}

enum memlimit_kind memlimit_kind(const struct memlimit *m)
{
	return m->kind;
}

const char *memlimit_kind_name(enum memlimit_kind k)
{
	switch (k) {
	case MEMLIMIT_CGROUP2:
		return "cgroup v2";
	case MEMLIMIT_CGROUP1:
		return "cgroup v1";
	case MEMLIMIT_RLIMIT:
		return "RLIMIT_AS";
	}
	return "unknown";
}

uint64_t memlimit_host_oom_kills(void)
{
	uint64_t v = 0;

	return read_keyed("/proc", "vmstat", "oom_kill", &v) < 0 ? 0 : v;
}

uint64_t memlimit_available(void)
{
	uint64_t kb = 0;

	if (read_keyed("/proc", "meminfo", "MemAvailable", &kb) < 0 || kb > UINT64_MAX / 1024)
		return 0;
	return kb * 1024;
}
