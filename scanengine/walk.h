/* walk: incremental, race-safe walk of a path given to SCAN/CONTSCAN/
 * MULTISCAN/ALLMATCHSCAN, with clamd's rules (FollowDirectorySymlinks,
 * FollowFileSymlinks, CrossFilesystems, ExcludePath).
 *
 * Files are opened relative to their parent directory's descriptor with
 * O_NOFOLLOW (symlinks are followed only where the configuration says so),
 * so a path swapped for a symlink during the walk cannot redirect the
 * root-privileged open. The walk yields one entry per call so the
 * supervisor's event loop never blocks on a large tree. */
#ifndef SE_SCANENGINE_WALK_H
#define SE_SCANENGINE_WALK_H

#include <regex.h>
#include <stdbool.h>
#include <stddef.h>

/* One ExcludePath: a POSIX extended regex searched (unanchored) in the
 * full path; a pattern ending in '/' is tested against "<path>/" so that
 * "^/proc/" also excludes the directory /proc itself (clamd's rule). */
struct walk_exclude {
	regex_t re;
	bool trailing_slash;
};

struct walk_opts {
	bool follow_dir_symlinks;
	bool follow_file_symlinks;
	bool cross_filesystems;
	const struct walk_exclude *excludes;
	size_t nexcludes;
};

enum walk_kind {
	WALK_DONE = 0, /* nothing more */
	WALK_FILE,     /* fd: a regular file opened O_RDONLY; path: its name */
	WALK_ERROR,    /* path could not be read; err: errno */
	WALK_EXCLUDED, /* path skipped; err: 0 ExcludePath, EXDEV other filesystem,
			  ELOOP a top-level symlink the Follow*Symlinks rules do not follow */
};

struct walk_entry {
	enum walk_kind kind;
	int fd;		  /* WALK_FILE: caller owns and closes it */
	const char *path; /* valid until the next walk_next */
	int err;
};

struct walk;

/* walk_new: start walking path (absolute; trailing slashes are dropped).
 * Symlinks in the leading components are resolved as usual; a symlink as
 * the last component is followed only as Follow*Symlinks allow. Returns the
 * walk or NULL with errno. */
struct walk *walk_new(const char *path, const struct walk_opts *opts);

/* walk_next: produce the next entry. Returns 0 with *e filled (WALK_DONE at
 * the end), or -errno on an internal failure (ENOMEM). */
int walk_next(struct walk *w, struct walk_entry *e);

/* walk_is_dir: true when the top path is a directory (clamd answers
 * "<dir>: OK" for a clean directory). */
bool walk_is_dir(const struct walk *w);

/* walk_free: close everything (NULL ok). */
void walk_free(struct walk *w);

/* walk_excluded: true when path matches one of opts' ExcludePath regexes. */
bool walk_excluded(const struct walk_opts *opts, const char *path);

/* walk_exclude_compile: compile an ExcludePath pattern into ex. Returns 0,
 * or -EINVAL with regerror's text in err[errlen]. Free with regfree(&ex->re). */
int walk_exclude_compile(const char *pattern, struct walk_exclude *ex, char *err, size_t errlen);

#endif
