/* marks: the fanotify marks of the on-access scanner (onaccess.h).
 *
 * OnAccessMountPath: a mount mark on each. OnAccessIncludePath: a mark on
 * every directory of the tree (FAN_EVENT_ON_CHILD: the files in it), and an
 * inotify watch on each for new directories, which get their marks (and
 * watches) as they appear: a directory mark covers only its own entries.
 * (Files written into a new directory before its mark is placed, a few
 * milliseconds at most, are not seen.)
 * An include path that is the root of a mount, with no OnAccessExcludePath
 * inside it, is one mount mark instead (and each mount below it one more):
 * the same files, new directories covered from the start, and cheaper for
 * every open: a directory mark makes the kernel visit the parent on each
 * open and close of a file in it (a cached open+close costs +0.6 us here,
 * against +0.26 us with a mount mark).
 * Subtrees under OnAccessExcludePath are not marked. Mounts of procfs, NFS
 * and FUSE are not marked (procfs refuses permission marks, NFS changes on
 * the server make no event, FUSE can deadlock against its own daemon): a
 * mount path on one is skipped with a warning, a tree does not descend
 * into one. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fanotify.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "fanotify/onaccess_int.h"

#define MAX_DEPTH 64

#define PROC_SUPER_MAGIC 0x9fa0
#define NFS_SUPER_MAGIC	 0x6969
#define FUSE_SUPER_MAGIC 0x65735546
#define SMB2_MAGIC	 0xfe534d42
#define CIFS_MAGIC	 0xff534d42
#define SYSFS_MAGIC	 0x62656572
#define CGROUP_MAGIC	 0x27e0eb
#define CGROUP2_MAGIC	 0x63677270
#define DEVPTS_MAGIC	 0x1cd1

static const char *unmarkable_fs(const char *path)
{
	struct statfs sf;

	if (statfs(path, &sf) < 0)
		return NULL;
	switch ((unsigned long)sf.f_type) {
	case PROC_SUPER_MAGIC:
		return "procfs";
	case NFS_SUPER_MAGIC:
		return "NFS";
	case FUSE_SUPER_MAGIC:
		return "FUSE";
	case SMB2_MAGIC:
	case CIFS_MAGIC:
		return "SMB/CIFS";
	case SYSFS_MAGIC:
		return "sysfs";
	case CGROUP_MAGIC:
	case CGROUP2_MAGIC:
		return "cgroupfs";
	case DEVPTS_MAGIC:
		return "devpts";
	default:
		return NULL;
	}
}

bool oa_path_excluded(const struct onaccess *oa, const char *path)
{
	for (size_t i = 0; i < oa->cfg->oa_exclude_path.n; i++) {
		const char *x = oa->cfg->oa_exclude_path.items[i];
		size_t l = strlen(x);

		while (l > 1 && x[l - 1] == '/')
			l--;
		if (!strncmp(path, x, l) && (path[l] == '/' || path[l] == '\0'))
			return true;
	}
	return false;
}

static int remember_dir(struct onaccess *oa, int wd, const char *path)
{
	for (size_t i = 0; i < oa->ndirs; i++) {
		if (oa->dirs[i].wd != wd)
			continue;
		/* watched again (it was moved): its new name */
		free(oa->dirs[i].path);
		oa->dirs[i].path = strdup(path);
		return oa->dirs[i].path ? 0 : -ENOMEM;
	}
	if (oa->ndirs == oa->dirs_cap) {
		size_t cap = oa->dirs_cap ? oa->dirs_cap * 2 : 64;
		struct oa_dir *d = realloc(oa->dirs, cap * sizeof(*d));

		if (!d)
			return -ENOMEM;
		oa->dirs = d;
		oa->dirs_cap = cap;
	}
	oa->dirs[oa->ndirs].wd = wd;
	oa->dirs[oa->ndirs].path = strdup(path);
	if (!oa->dirs[oa->ndirs].path)
		return -ENOMEM;
	oa->ndirs++;
	return 0;
}

/* Mark directory path and everything below it. A directory that vanished
 * meanwhile is no error; one that cannot be marked is. */
static int mark_tree(struct onaccess *oa, const char *path, int depth, char *err)
{
	struct dirent *de;
	DIR *d;
	int wd, r = 0;

	if (depth > MAX_DEPTH || oa_path_excluded(oa, path))
		return 0;
	if (fanotify_mark(oa->fan, FAN_MARK_ADD | FAN_MARK_ONLYDIR, oa->mask | FAN_EVENT_ON_CHILD,
			  AT_FDCWD, path) < 0) {
		r = -errno;
		if (r == -ENOENT && depth)
			return 0;
		snprintf(err, 512, "OnAccessIncludePath %.400s: fanotify_mark: %s", path,
			 strerror(-r));
		return r;
	}
	wd = inotify_add_watch(oa->ino, path,
			       IN_CREATE | IN_MOVED_TO | IN_ONLYDIR | IN_DONT_FOLLOW);
	if (wd < 0) {
		r = -errno;
		snprintf(err, 512, "OnAccessIncludePath %.400s: inotify_add_watch: %s", path,
			 strerror(-r));
		return r;
	}
	r = remember_dir(oa, wd, path);
	if (r) {
		snprintf(err, 512, "out of memory");
		return r;
	}
	d = opendir(path);
	if (!d)
		return 0;
	while (!r && (de = readdir(d))) {
		char sub[PATH_MAX];
		struct stat st;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..") ||
		    (de->d_type != DT_DIR && de->d_type != DT_UNKNOWN))
			continue;
		if ((size_t)snprintf(sub, sizeof(sub), "%s/%s", strcmp(path, "/") ? path : "",
				     de->d_name) >= sizeof(sub))
			continue;
		if (lstat(sub, &st) < 0 || !S_ISDIR(st.st_mode) || unmarkable_fs(sub))
			continue;
		r = mark_tree(oa, sub, depth + 1, err);
	}
	closedir(d);
	return r;
}

/* Whether path is the root directory of a mount. */
static bool mount_root(const char *path)
{
	struct statx sx;

	if (statx(AT_FDCWD, path, AT_NO_AUTOMOUNT, STATX_TYPE, &sx) < 0)
		return false;
	return (sx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT) &&
	       (sx.stx_attributes & STATX_ATTR_MOUNT_ROOT);
}

/* Whether under lies strictly below dir (both without trailing '/'). */
static bool below(const char *under, const char *dir)
{
	size_t l = strlen(dir);

	while (l > 1 && dir[l - 1] == '/')
		l--;
	if (l == 1 && dir[0] == '/')
		return under[0] == '/' && under[1] != '\0';
	return !strncmp(under, dir, l) && under[l] == '/' && under[l + 1] != '\0';
}

/* Whether the tree of include path inc is watched by mount marks: it is
 * the root of a mount and no OnAccessExcludePath lies inside it (a mount
 * mark would see the excluded tree's opens too). */
static bool by_mount_marks(const struct onaccess *oa, const char *inc)
{
	if (!mount_root(inc))
		return false;
	for (size_t i = 0; i < oa->cfg->oa_exclude_path.n; i++)
		if (below(oa->cfg->oa_exclude_path.items[i], inc))
			return false;
	return true;
}

/* Whether mount point mp is the include path inc (real path real) or in
 * its tree. */
static bool in_tree(const char *mp, const char *real)
{
	return !strcmp(mp, real) || below(mp, real);
}

static int cmp_int(const void *a, const void *b)
{
	int x = *(const int *)a, y = *(const int *)b;

	return (x > y) - (x < y);
}

static void free_mounts(struct oa_mount *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i].path);
	free(v);
}

/* /proc/self/mountinfo's mount point field, \ooo escapes undone, in place. */
static char *unescape(char *s)
{
	char *o = s;

	for (char *i = s; *i; o++) {
		if (i[0] == '\\' && i[1] >= '0' && i[1] <= '3' && i[2] >= '0' && i[2] <= '7' &&
		    i[3] >= '0' && i[3] <= '7') {
			*o = (char)((i[1] - '0') * 64 + (i[2] - '0') * 8 + (i[3] - '0'));
			i += 4;
		} else {
			*o = *i++;
		}
	}
	*o = '\0';
	return s;
}

/* The mount table: *out[*n] (ID and mount point), in its order (a parent
 * before what is mounted on it). Returns 0 or -errno. */
static int read_mounts(struct oa_mount **out, size_t *n)
{
	struct oa_mount *v = NULL;
	size_t cap = 0, len = 0;
	char *line = NULL;
	int r = 0;
	FILE *f = fopen("/proc/self/mountinfo", "re");

	if (!f)
		return -errno;
	while (getline(&line, &len, f) > 0) {
		char *save = NULL, *id = strtok_r(line, " ", &save), *field = id;

		/* ID, parent ID, major:minor, root, then the mount point */
		for (int i = 0; field && i < 4; i++)
			field = strtok_r(NULL, " ", &save);
		if (!field)
			continue;
		if (*n == cap) {
			struct oa_mount *m = realloc(v, (cap = cap ? cap * 2 : 64) * sizeof(*m));

			if (!m) {
				r = -ENOMEM;
				break;
			}
			v = m;
		}
		v[*n].id = atoi(id);
		v[*n].path = strdup(unescape(field));
		if (!v[*n].path) {
			r = -ENOMEM;
			break;
		}
		(*n)++;
	}
	free(line);
	fclose(f);
	if (r) {
		free_mounts(v, *n);
		*n = 0;
		return r;
	}
	*out = v;
	return 0;
}

/* Remember the mount table's IDs (oa->mnt_ids): what oa_marks_on_mounts
 * compares the next table with. */
static void note_table(struct onaccess *oa, const struct oa_mount *v, size_t n)
{
	int *ids = malloc((n ? n : 1) * sizeof(*ids));

	if (!ids)
		return; /* the next change looks at every mount again: harmless */
	for (size_t i = 0; i < n; i++)
		ids[i] = v[i].id;
	qsort(ids, n, sizeof(*ids), cmp_int);
	free(oa->mnt_ids);
	oa->mnt_ids = ids;
	oa->nmnt_ids = n;
}

static bool seen_before(const struct onaccess *oa, int id)
{
	return oa->mnt_ids && bsearch(&id, oa->mnt_ids, oa->nmnt_ids, sizeof(id), cmp_int);
}

static int remember_mount(struct onaccess *oa, const char *path, int id)
{
	for (size_t i = 0; i < oa->nmounts; i++)
		if (oa->mounts[i].id == id)
			return 0; /* marked again: already counted */
	if (oa->nmounts == oa->mounts_cap) {
		size_t cap = oa->mounts_cap ? oa->mounts_cap * 2 : 8;
		struct oa_mount *m = realloc(oa->mounts, cap * sizeof(*m));

		if (!m)
			return -ENOMEM;
		oa->mounts = m;
		oa->mounts_cap = cap;
	}
	oa->mounts[oa->nmounts].path = strdup(path);
	if (!oa->mounts[oa->nmounts].path)
		return -ENOMEM;
	oa->mounts[oa->nmounts].id = id;
	oa->nmounts++;
	return 0;
}

/* A mount mark on path, for the tree of include path root. A mount that
 * vanished meanwhile (below the root) is no error. */
static int mark_mount(struct onaccess *oa, const char *path, const char *root, char *err)
{
	struct statx sx;
	int r;

	if (fanotify_mark(oa->fan, FAN_MARK_ADD | FAN_MARK_MOUNT, oa->mask, AT_FDCWD, path) < 0) {
		r = -errno;
		if (r == -ENOENT && path != root)
			return 0;
		snprintf(err, 512, "OnAccessIncludePath %.200s: fanotify_mark of mount %.200s: %s",
			 root, path, strerror(-r));
		return r;
	}
	if (statx(AT_FDCWD, path, AT_NO_AUTOMOUNT, STATX_MNT_ID, &sx) < 0 ||
	    !(sx.stx_mask & STATX_MNT_ID))
		sx.stx_mnt_id = 0;
	r = remember_mount(oa, path, (int)sx.stx_mnt_id);
	if (r)
		snprintf(err, 512, "out of memory");
	return r;
}

/* New mount mp in the tree of include path inc: a mount mark when the
 * tree is watched by mount marks, else directory marks all through it. */
static int mark_new_mount(struct onaccess *oa, const char *mp, const char *inc, char *err)
{
	int r;

	if (oa_path_excluded(oa, mp) || unmarkable_fs(mp)) {
		log_info("on-access: new mount %s: not watched (%s)", mp,
			 unmarkable_fs(mp) ?: "OnAccessExcludePath");
		return 0;
	}
	if (by_mount_marks(oa, inc)) {
		r = mark_mount(oa, mp, inc, err);
		if (!r)
			oa_ignores_add_root(oa, mp);
	} else {
		r = mark_tree(oa, mp, 1, err);
	}
	if (!r)
		log_info("on-access: new mount %s watched (OnAccessIncludePath %s)", mp, inc);
	return r;
}

/* The tree of include path root, a mount root: a mount mark on it and on
 * each mount below it in the mount table v[n] that is not excluded and
 * can be marked. */
static int mark_mount_tree(struct onaccess *oa, const char *root, const struct oa_mount *v,
			   size_t n, char *err)
{
	char real[PATH_MAX];
	int r = mark_mount(oa, root, root, err);

	if (r)
		return r;
	if (!realpath(root, real))
		return 0; /* the root is watched; mounts below it cannot be found */
	for (size_t i = 0; !r && i < n; i++) {
		const char *fs;

		if (!below(v[i].path, real) || oa_path_excluded(oa, v[i].path))
			continue;
		fs = unmarkable_fs(v[i].path);
		if (fs) {
			log_info("on-access: %s is on %s: not watched", v[i].path, fs);
			continue;
		}
		r = mark_mount(oa, v[i].path, root, err);
	}
	return r;
}

void oa_marks_on_mounts(struct ev_handler *h, uint32_t revents)
{
	struct onaccess *oa = container_of(h, struct onaccess, mi_ev);
	const struct config *cfg = oa->cfg;
	struct oa_mount *v = NULL;
	size_t n = 0, kept = 0;

	(void)revents;
	if (read_mounts(&v, &n) < 0) {
		log_warn("on-access: the mount table changed and cannot be read: new mounts in "
			 "the include trees are not watched");
		return;
	}
	for (size_t i = 0; i < n; i++) {
		if (seen_before(oa, v[i].id))
			continue;
		for (size_t j = 0; j < cfg->oa_include_path.n; j++) {
			const char *inc = cfg->oa_include_path.items[j];
			char real[PATH_MAX], err[512];

			if (!realpath(inc, real) || !in_tree(v[i].path, real))
				continue;
			if (mark_new_mount(oa, v[i].path, inc, err))
				log_warn("on-access: new mount not watched: %s", err);
			break;
		}
	}
	/* mounts gone: no longer counted (their marks went with them) */
	note_table(oa, v, n);
	for (size_t i = 0; i < oa->nmounts; i++) {
		if (seen_before(oa, oa->mounts[i].id)) {
			oa->mounts[kept++] = oa->mounts[i];
			continue;
		}
		log_warn("on-access: %s was unmounted: not watched until it is mounted again",
			 oa->mounts[i].path);
		free(oa->mounts[i].path);
	}
	oa->nmounts = kept;
	free_mounts(v, n);
}

int oa_marks_add(struct onaccess *oa, char *err)
{
	const struct config *cfg = oa->cfg;
	struct oa_mount *v = NULL;
	size_t n = 0;
	int r = 0;

	for (size_t i = 0; i < cfg->oa_mount_path.n; i++) {
		const char *p = cfg->oa_mount_path.items[i], *fs = unmarkable_fs(p);

		if (fs) {
			log_warn("OnAccessMountPath %s is on %s: not watched", p, fs);
			continue;
		}
		if (fanotify_mark(oa->fan, FAN_MARK_ADD | FAN_MARK_MOUNT, oa->mask, AT_FDCWD, p) <
		    0) {
			r = -errno;
			snprintf(err, 512, "OnAccessMountPath %.400s: fanotify_mark: %s%s", p,
				 strerror(-r),
				 r == -EINVAL ? " (kernel without permission events?)" : "");
			return r;
		}
	}
	/* the mount table once: the mounts below include paths now, and what
	 * oa_marks_on_mounts compares later tables with (unreadable: no
	 * mounts below, every mount new at the next change) */
	if (cfg->oa_include_path.n && read_mounts(&v, &n) == 0)
		note_table(oa, v, n);
	for (size_t i = 0; !r && i < cfg->oa_include_path.n; i++) {
		const char *p = cfg->oa_include_path.items[i], *fs;
		struct stat st;

		if (stat(p, &st) < 0) {
			r = -errno;
			snprintf(err, 512, "OnAccessIncludePath %.400s: %s", p, strerror(-r));
			break;
		}
		if (!S_ISDIR(st.st_mode)) {
			snprintf(err, 512, "OnAccessIncludePath %.400s: not a directory", p);
			r = -ENOTDIR;
			break;
		}
		fs = unmarkable_fs(p);
		if (fs) {
			log_warn("OnAccessIncludePath %s is on %s: not watched", p, fs);
			continue;
		}
		r = by_mount_marks(oa, p) ? mark_mount_tree(oa, p, v, n, err)
					  : mark_tree(oa, p, 0, err);
	}
	free_mounts(v, n);
	return r;
}

void oa_marks_drop(struct onaccess *oa)
{
	for (size_t i = 0; i < oa->ndirs; i++)
		free(oa->dirs[i].path);
	oa->ndirs = 0;
	for (size_t i = 0; i < oa->nmounts; i++)
		free(oa->mounts[i].path);
	oa->nmounts = 0;
	free(oa->mnt_ids);
	oa->mnt_ids = NULL;
	oa->nmnt_ids = 0;
}

static const char *dir_of(const struct onaccess *oa, int wd)
{
	for (size_t i = 0; i < oa->ndirs; i++)
		if (oa->dirs[i].wd == wd)
			return oa->dirs[i].path;
	return NULL;
}

void oa_marks_on_inotify(struct ev_handler *h, uint32_t revents)
{
	struct onaccess *oa = container_of(h, struct onaccess, ino_ev);
	char buf[16384] __attribute__((aligned(__alignof__(struct inotify_event))));

	(void)revents;
	for (;;) {
		ssize_t n = read(oa->ino, buf, sizeof(buf));

		if (n <= 0)
			break;
		for (char *p = buf; p < buf + n;) {
			const struct inotify_event *ie = (const void *)p;
			const char *parent = dir_of(oa, ie->wd);
			char sub[PATH_MAX], err[512];
			struct stat st;

			p += sizeof(*ie) + ie->len;
			if (!(ie->mask & IN_ISDIR) || !ie->len || !parent)
				continue;
			if ((size_t)snprintf(sub, sizeof(sub), "%s/%s",
					     strcmp(parent, "/") ? parent : "",
					     ie->name) >= sizeof(sub) ||
			    lstat(sub, &st) < 0 || !S_ISDIR(st.st_mode) || unmarkable_fs(sub))
				continue;
			if (mark_tree(oa, sub, 1, err))
				log_warn("on-access: new directory not watched: %s", err);
		}
	}
}
