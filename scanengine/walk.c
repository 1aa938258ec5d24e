/* walk: incremental, race-safe walk of a scan path (see walk.h). */
#include "scanengine/walk.h"
#include "common/util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define WALK_MAX_DEPTH	 256
#define WALK_PATH_MAX	 (PATH_MAX * 2)
#define TOP_NOT_FOLLOWED (-100000) /* not an errno */

struct frame {
	DIR *dir;
	size_t pathlen; /* length of this directory's path in w->path */
	dev_t dev;
	ino_t ino;
};

struct walk {
	struct walk_opts opts;
	char path[WALK_PATH_MAX];
	struct frame stack[WALK_MAX_DEPTH];
	int depth;
	dev_t root_dev;
	bool is_dir;
	/* The top path's own entry, returned by the first walk_next. */
	bool have_top;
	struct walk_entry top;
};

bool walk_excluded(const struct walk_opts *opts, const char *path)
{
	char slashed[WALK_PATH_MAX + 2];
	bool have_slashed = false;

	for (size_t i = 0; i < opts->nexcludes; i++) {
		const char *p = path;

		if (opts->excludes[i].trailing_slash) {
			if (!have_slashed) {
				snprintf(slashed, sizeof(slashed), "%s/", path);
				have_slashed = true;
			}
			p = slashed;
		}
		if (regexec(&opts->excludes[i].re, p, 0, NULL, 0) == 0)
			return true;
	}
	return false;
}

int walk_exclude_compile(const char *pattern, struct walk_exclude *ex, char *err, size_t errlen)
{
	size_t len = strlen(pattern);
	int r = regcomp(&ex->re, pattern, REG_EXTENDED | REG_NOSUB);

	if (r) {
		regerror(r, &ex->re, err, errlen);
		regfree(&ex->re);
		return -EINVAL;
	}
	ex->trailing_slash = len && pattern[len - 1] == '/';
	return 0;
}

static void set_top(struct walk *w, enum walk_kind kind, int fd, int err)
{
	w->have_top = true;
	w->top.kind = kind;
	w->top.fd = fd;
	w->top.err = err;
	w->top.path = w->path;
}

/* Files are opened non-blocking so a FIFO cannot stall the supervisor;
 * scanning then reads with a blocking descriptor. */
static int open_regular(int dirfd, const char *name, bool nofollow, int *err)
{
	int fl = O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC | (nofollow ? O_NOFOLLOW : 0);
	int fd = openat(dirfd, name, fl);
	struct stat st;

	if (fd < 0) {
		*err = errno;
		return -1;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		*err = S_ISREG(st.st_mode) ? errno : EINVAL;
		close(fd);
		return -1;
	}
	util_set_nonblock(fd, false);
	return fd;
}

static bool on_stack(const struct walk *w, dev_t dev, ino_t ino)
{
	for (int i = 0; i < w->depth; i++)
		if (w->stack[i].dev == dev && w->stack[i].ino == ino)
			return true;
	return false;
}

/* Push directory fd (taken over) whose path is w->path[0..pathlen). */
static int push_dir(struct walk *w, int fd, size_t pathlen, const struct stat *st)
{
	DIR *d;

	if (w->depth >= WALK_MAX_DEPTH) {
		close(fd);
		return -ELOOP;
	}
	d = fdopendir(fd);
	if (!d) {
		int e = errno;

		close(fd);
		return -e;
	}
	w->stack[w->depth].dir = d;
	w->stack[w->depth].pathlen = pathlen;
	w->stack[w->depth].dev = st->st_dev;
	w->stack[w->depth].ino = st->st_ino;
	w->depth++;
	return 0;
}

/* Open the top path. Its leading components resolve as usual (a loop or a
 * missing directory there is an error); its last component is looked at
 * without following it, and a symlink there is followed only as the
 * Follow*Symlinks rules allow, judged on what was actually opened, so that
 * swapping the link between the check and the open gains nothing.
 * Returns the fd, TOP_NOT_FOLLOWED for a link the rules do not follow, or
 * -errno. */
static int open_top(struct walk *w, struct stat *st)
{
	int fl = O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC;
	char *slash = strrchr(w->path, '/');
	const char *base;
	int dfd, fd, ret;
	bool link;

	if (!slash || !slash[1]) {
		/* "/" itself (a relative name: the caller refuses those) */
		fd = open(w->path, fl);
		if (fd < 0)
			return -errno;
		if (fstat(fd, st) < 0) {
			ret = -errno;
			close(fd);
			return ret;
		}
		return fd;
	}
	base = slash + 1;
	*slash = '\0';
	dfd = open(slash == w->path ? "/" : w->path, O_PATH | O_DIRECTORY | O_CLOEXEC);
	*slash = '/';
	if (dfd < 0)
		return -errno;
	if (fstatat(dfd, base, st, AT_SYMLINK_NOFOLLOW) < 0) {
		ret = -errno;
		goto out;
	}
	link = S_ISLNK(st->st_mode);
	if (link && fstatat(dfd, base, st, 0) < 0) {
		ret = -errno; /* dangling, or a loop: an error, not a choice */
		goto out;
	}
	fd = openat(dfd, base, fl | (link ? 0 : O_NOFOLLOW));
	if (fd < 0) {
		ret = -errno;
		goto out;
	}
	if (fstat(fd, st) < 0) {
		ret = -errno;
		close(fd);
		goto out;
	}
	if (link &&
	    !(S_ISDIR(st->st_mode) ? w->opts.follow_dir_symlinks : w->opts.follow_file_symlinks)) {
		close(fd);
		ret = TOP_NOT_FOLLOWED;
		goto out;
	}
	ret = fd;
out:
	close(dfd);
	return ret;
}

struct walk *walk_new(const char *path, const struct walk_opts *opts)
{
	struct walk *w = calloc(1, sizeof(*w));
	size_t len;
	struct stat st;
	int fd;

	if (!w)
		return NULL;
	w->opts = *opts;
	len = util_strlcpy(w->path, path, sizeof(w->path));
	if (len >= PATH_MAX) {
		set_top(w, WALK_ERROR, -1, ENAMETOOLONG);
		return w;
	}
	while (len > 1 && w->path[len - 1] == '/')
		w->path[--len] = '\0';
	if (walk_excluded(opts, w->path)) {
		set_top(w, WALK_EXCLUDED, -1, 0);
		return w;
	}
	fd = open_top(w, &st);
	if (fd == TOP_NOT_FOLLOWED) {
		set_top(w, WALK_EXCLUDED, -1, ELOOP);
		return w;
	}
	if (fd < 0) {
		set_top(w, WALK_ERROR, -1, -fd);
		return w;
	}
	w->root_dev = st.st_dev;
	if (S_ISDIR(st.st_mode)) {
		int r = push_dir(w, fd, len, &st);

		w->is_dir = true;
		if (r < 0)
			set_top(w, WALK_ERROR, -1, -r);
		return w;
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		set_top(w, WALK_ERROR, -1, EINVAL);
		return w;
	}
	util_set_nonblock(fd, false);
	set_top(w, WALK_FILE, fd, 0);
	return w;
}

bool walk_is_dir(const struct walk *w)
{
	return w->is_dir;
}

static void pop(struct walk *w)
{
	w->depth--;
	closedir(w->stack[w->depth].dir);
	w->stack[w->depth].dir = NULL;
}

int walk_next(struct walk *w, struct walk_entry *e)
{
	memset(e, 0, sizeof(*e));
	e->fd = -1;
	if (w->have_top) {
		w->have_top = false;
		*e = w->top;
		w->top.fd = -1;
		return 0;
	}
	while (w->depth > 0) {
		struct frame *f = &w->stack[w->depth - 1];
		int dfd = dirfd(f->dir);
		struct dirent *de;
		struct stat st;
		size_t nlen;
		unsigned char type;
		bool follow = false;
		int fd, err = 0;

		errno = 0;
		de = readdir(f->dir);
		if (!de) {
			if (errno) {
				w->path[f->pathlen] = '\0';
				e->kind = WALK_ERROR;
				e->err = errno;
				e->path = w->path;
				pop(w);
				return 0;
			}
			pop(w);
			continue;
		}
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		nlen = strlen(de->d_name);
		if (f->pathlen + 1 + nlen >= PATH_MAX) {
			e->kind = WALK_ERROR;
			e->err = ENAMETOOLONG;
			memcpy(w->path + f->pathlen, "/", 2);
			e->path = w->path;
			return 0;
		}
		/* "/" as the top directory: do not double the slash. */
		size_t base = (f->pathlen == 1 && w->path[0] == '/') ? 0 : f->pathlen;

		w->path[base] = '/';
		memcpy(w->path + base + 1, de->d_name, nlen + 1);
		e->path = w->path;
		if (walk_excluded(&w->opts, w->path)) {
			e->kind = WALK_EXCLUDED;
			return 0;
		}

		type = de->d_type;
		if (type == DT_UNKNOWN || type == DT_LNK) {
			if (fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
				continue; /* vanished */
			if (S_ISLNK(st.st_mode)) {
				if (fstatat(dfd, de->d_name, &st, 0) < 0)
					continue; /* dangling */
				follow = true;
			}
			type = S_ISDIR(st.st_mode)   ? DT_DIR
			       : S_ISREG(st.st_mode) ? DT_REG
						     : DT_UNKNOWN;
		}
		if (type == DT_DIR) {
			if (follow && !w->opts.follow_dir_symlinks)
				continue;
			fd = openat(dfd, de->d_name,
				    O_RDONLY | O_DIRECTORY | O_CLOEXEC | (follow ? 0 : O_NOFOLLOW));
			if (fd < 0) {
				e->kind = WALK_ERROR;
				e->err = errno;
				return 0;
			}
			if (fstat(fd, &st) < 0 || on_stack(w, st.st_dev, st.st_ino)) {
				close(fd);
				continue;
			}
			if (!w->opts.cross_filesystems && st.st_dev != w->root_dev) {
				close(fd);
				e->kind = WALK_EXCLUDED;
				e->err = EXDEV;
				return 0;
			}
			err = push_dir(w, fd, base + 1 + nlen, &st);
			if (err < 0) {
				e->kind = WALK_ERROR;
				e->err = -err;
				return 0;
			}
			continue;
		}
		if (type != DT_REG)
			continue; /* FIFOs, sockets, devices are not scanned */
		if (follow && !w->opts.follow_file_symlinks)
			continue;
		fd = open_regular(dfd, de->d_name, !follow, &err);
		if (fd < 0) {
			if (err == ENOENT)
				continue; /* vanished since readdir */
			e->kind = WALK_ERROR;
			e->err = err;
			return 0;
		}
		e->kind = WALK_FILE;
		e->fd = fd;
		return 0;
	}
	e->kind = WALK_DONE;
	return 0;
}

void walk_free(struct walk *w)
{
	if (!w)
		return;
	while (w->depth > 0)
		pop(w);
	if (w->have_top)
		util_close(&w->top.fd);
	free(w);
}
