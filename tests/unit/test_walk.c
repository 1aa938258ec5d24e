/* test_walk: unit tests of scanengine/walk.c (cmocka).
 *
 * Each case builds a small tree under /dev/shm (or /tmp)/test_walk.XXXXXX: "top" is the
 * tree walked, "out" lies outside it (symlink targets). Every regular file
 * holds its own path relative to the fixture directory, so an entry's
 * descriptor proves which file was really opened. A walk is collected as
 * sorted lines:
 *
 *   F <path> = <content read from the fd>     WALK_FILE
 *   E <path> <ERRNO>                          WALK_ERROR
 *   X <path> <ERRNO or 0>                     WALK_EXCLUDED
 *
 * (paths relative to the fixture directory). Cases that need another
 * identity, a mount namespace or a chroot run in a forked child that never
 * calls cmocka: it writes the collected text to a pipe and _exit()s.
 *
 * Tests named bug_* fail against the current code on purpose: each one
 * documents a defect (comment above it) and passes once it is fixed. */
#include "scanengine/walk.h"
#include "common/util.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

#define NOBODY_ID    65534
#define MAX_LINES    256
#define LINE_MAX_LEN 512

struct fx {
	char dir[64];  /* fixture root */
	char top[128]; /* dir/top: what is walked */
	char out[128]; /* dir/out: outside the walked tree */
};

/* Remove a tree with no depth or path-length limit (util_rm_rf has one). */
static void rm_tree_at(int dfd, const char *name)
{
	int fd;
	DIR *d;
	struct dirent *de;

	if (unlinkat(dfd, name, 0) == 0 || errno == ENOENT)
		return;
	fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return;
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return;
	}
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			rm_tree_at(dirfd(d), de->d_name);
	closedir(d);
	unlinkat(dfd, name, AT_REMOVEDIR);
}

static int setup(void **state)
{
	struct fx *fx = calloc(1, sizeof(*fx));

	if (!fx)
		return -1;
	/* tmpfs when there is one: deep trees are slow to remove on a busy
	 * journaling filesystem */
	snprintf(fx->dir, sizeof(fx->dir), "%s/test_walk.XXXXXX",
		 access("/dev/shm", W_OK | X_OK) == 0 ? "/dev/shm" : "/tmp");
	if (!mkdtemp(fx->dir) || chmod(fx->dir, 0755) < 0) {
		free(fx);
		return -1;
	}
	snprintf(fx->top, sizeof(fx->top), "%s/top", fx->dir);
	snprintf(fx->out, sizeof(fx->out), "%s/out", fx->dir);
	if (mkdir(fx->top, 0755) < 0 || mkdir(fx->out, 0755) < 0)
		return -1;
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fx *fx = *state;

	rm_tree_at(AT_FDCWD, fx->dir);
	free(fx);
	return 0;
}

/* ---- building trees (paths relative to fx->dir) ---- */

static void fpath(const struct fx *fx, const char *rel, char *out, size_t n)
{
	snprintf(out, n, "%s/%s", fx->dir, rel);
}

static void mk_file(const struct fx *fx, const char *rel)
{
	char p[PATH_MAX];
	int fd;

	fpath(fx, rel, p, sizeof(p));
	fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, rel, strlen(rel)), (ssize_t)strlen(rel));
	close(fd);
}

static void mk_dir(const struct fx *fx, const char *rel)
{
	char p[PATH_MAX];

	fpath(fx, rel, p, sizeof(p));
	assert_int_equal(mkdir(p, 0755), 0);
}

/* target as given (relative or absolute; "@x" means fx->dir/x) */
static void mk_link(const struct fx *fx, const char *target, const char *rel)
{
	char p[PATH_MAX], t[PATH_MAX];

	fpath(fx, rel, p, sizeof(p));
	if (target[0] == '@')
		fpath(fx, target + 1, t, sizeof(t));
	else
		util_strlcpy(t, target, sizeof(t));
	assert_int_equal(symlink(t, p), 0);
}

static void mk_fifo(const struct fx *fx, const char *rel)
{
	char p[PATH_MAX];

	fpath(fx, rel, p, sizeof(p));
	assert_int_equal(mkfifo(p, 0644), 0);
}

static int mk_socket(const struct fx *fx, const char *rel)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	fpath(fx, rel, sa.sun_path, sizeof(sa.sun_path));
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return fd;
}

static int count_fds(void)
{
	int n = 0;

	for (int fd = 0; fd < 1024; fd++)
		n += fcntl(fd, F_GETFD) != -1;
	return n;
}

/* ---- collecting a walk ---- */

static const char *errname(int e)
{
	const char *n = e ? strerrorname_np(e) : "0";

	return n ? n : "?";
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static const char *rel_of(const struct fx *fx, const char *path)
{
	size_t n = strlen(fx->dir);

	if (!strncmp(path, fx->dir, n) && path[n] == '/')
		return path + n + 1;
	return path;
}

/* Check a WALK_FILE descriptor (regular, read-only, blocking, close-on-exec)
 * and read what it holds. Returns false when anything is off. No cmocka
 * here: also used in children. */
static bool read_entry_fd(int fd, char *content, size_t n)
{
	struct stat st;
	int fl = fcntl(fd, F_GETFL), fdfl = fcntl(fd, F_GETFD);
	ssize_t r;

	content[0] = '\0';
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || fl < 0 || fdfl < 0)
		return false;
	if ((fl & O_ACCMODE) != O_RDONLY || (fl & O_NONBLOCK) || !(fdfl & FD_CLOEXEC))
		return false;
	r = pread(fd, content, n - 1, 0);
	if (r < 0)
		return false;
	content[r] = '\0';
	return true;
}

/* Walk path with o; write the sorted entry lines, '\n'-separated, to out.
 * Anomalies (walk_new failing, bad descriptors, a descriptor leak, not
 * staying done) appear as lines starting with '!'. */
static void collect(const struct fx *fx, const char *path, const struct walk_opts *o, char *out,
		    size_t outlen)
{
	static char lines[MAX_LINES][LINE_MAX_LEN];
	char *sorted[MAX_LINES];
	int n = 0, fds0 = count_fds();
	struct walk *w = walk_new(path, o);
	struct walk_entry e;
	size_t used = 0;

	out[0] = '\0';
	if (!w) {
		snprintf(out, outlen, "!walk_new: %s", errname(errno));
		return;
	}
	for (;;) {
		int r = walk_next(w, &e);
		char content[256];

		if (r < 0) {
			snprintf(lines[n++], LINE_MAX_LEN, "!walk_next %s", errname(-r));
			break;
		}
		if (e.kind == WALK_DONE)
			break;
		if (n == MAX_LINES - 4) {
			snprintf(lines[n++], LINE_MAX_LEN, "!too many entries");
			if (e.kind == WALK_FILE)
				close(e.fd);
			break;
		}
		switch (e.kind) {
		case WALK_FILE:
			if (!read_entry_fd(e.fd, content, sizeof(content)))
				snprintf(lines[n++], LINE_MAX_LEN, "!bad fd for %s",
					 rel_of(fx, e.path));
			snprintf(lines[n++], LINE_MAX_LEN, "F %s = %s", rel_of(fx, e.path),
				 content);
			close(e.fd);
			break;
		case WALK_ERROR:
			snprintf(lines[n++], LINE_MAX_LEN, "E %s %s", rel_of(fx, e.path),
				 errname(e.err));
			if (e.fd != -1)
				snprintf(lines[n++], LINE_MAX_LEN, "!fd %d with an error", e.fd);
			break;
		case WALK_EXCLUDED:
			snprintf(lines[n++], LINE_MAX_LEN, "X %s %s", rel_of(fx, e.path),
				 errname(e.err));
			if (e.fd != -1)
				snprintf(lines[n++], LINE_MAX_LEN, "!fd %d with an exclusion",
					 e.fd);
			break;
		default:
			snprintf(lines[n++], LINE_MAX_LEN, "!kind %d", (int)e.kind);
			break;
		}
		if (n >= MAX_LINES - 4)
			break;
	}
	/* done stays done */
	if (walk_next(w, &e) != 0 || e.kind != WALK_DONE)
		snprintf(lines[n++], LINE_MAX_LEN, "!not done again");
	walk_free(w);
	if (count_fds() != fds0)
		snprintf(lines[n++], LINE_MAX_LEN, "!fd leak: %d -> %d", fds0, count_fds());
	for (int i = 0; i < n; i++)
		sorted[i] = lines[i];
	qsort(sorted, (size_t)n, sizeof(sorted[0]), cmp_str);
	for (int i = 0; i < n; i++)
		used += (size_t)snprintf(out + used, used < outlen ? outlen - used : 0, "%s%s",
					 i ? "\n" : "", sorted[i]);
}

/* want: lines in any order */
static void expect_walk(const struct fx *fx, const char *path, const struct walk_opts *o,
			const char *const *want, size_t nwant)
{
	static char got[64 * 1024], exp[64 * 1024];
	const char *sorted[MAX_LINES];
	size_t used = 0;

	assert_true(nwant < MAX_LINES);
	for (size_t i = 0; i < nwant; i++)
		sorted[i] = want[i];
	qsort(sorted, nwant, sizeof(sorted[0]), cmp_str);
	exp[0] = '\0';
	for (size_t i = 0; i < nwant; i++)
		used += (size_t)snprintf(exp + used, sizeof(exp) - used, "%s%s", i ? "\n" : "",
					 sorted[i]);
	collect(fx, path, o, got, sizeof(got));
	assert_string_equal(got, exp);
}

#define EXPECT(fx, path, o, ...)                                                                   \
	do {                                                                                       \
		const char *const want_[] = {__VA_ARGS__};                                         \
		expect_walk(fx, path, o, want_, SE_ARRAY_SIZE(want_));                             \
	} while (0)

/* Run fn in a child; its output comes back in out. "SKIP: ..." skips. */
typedef void (*child_fn)(const struct fx *fx, char *out, size_t outlen);

static void run_child(const struct fx *fx, child_fn fn, char *out, size_t outlen)
{
	int p[2], status;
	pid_t pid;
	size_t have = 0;
	ssize_t r;

	assert_int_equal(pipe(p), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		static char buf[64 * 1024];

		close(p[0]);
		fn(fx, buf, sizeof(buf));
		_exit(util_write_all(p[1], buf, strlen(buf)) == 0 ? 0 : 1);
	}
	close(p[1]);
	while (have < outlen - 1 && (r = read(p[0], out + have, outlen - 1 - have)) > 0)
		have += (size_t)r;
	out[have] = '\0';
	close(p[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	if (!strncmp(out, "SKIP: ", 6))
		skip();
}

static const struct walk_opts no_follow = {0};

/* ---- basic walking ---- */

static void test_basic_tree(void **state)
{
	struct fx *fx = *state;
	struct walk *w;

	mk_file(fx, "top/a");
	mk_file(fx, "top/.hidden");
	mk_dir(fx, "top/sub");
	mk_file(fx, "top/sub/b");
	mk_dir(fx, "top/sub/deeper");
	mk_file(fx, "top/sub/deeper/c");
	mk_dir(fx, "top/empty");
	mk_file(fx, "top/empty2");
	EXPECT(fx, fx->top, &no_follow, "F top/a = top/a", "F top/.hidden = top/.hidden",
	       "F top/sub/b = top/sub/b", "F top/sub/deeper/c = top/sub/deeper/c",
	       "F top/empty2 = top/empty2");

	w = walk_new(fx->top, &no_follow);
	assert_non_null(w);
	assert_true(walk_is_dir(w));
	walk_free(w);
	walk_free(NULL);
}

static void test_empty_dir(void **state)
{
	struct fx *fx = *state;
	char got[256];

	collect(fx, fx->top, &no_follow, got, sizeof(got));
	assert_string_equal(got, "");
}

static void test_top_file(void **state)
{
	struct fx *fx = *state;
	char p[PATH_MAX];
	struct walk *w;

	mk_file(fx, "top/a");
	fpath(fx, "top/a", p, sizeof(p));
	EXPECT(fx, p, &no_follow, "F top/a = top/a");
	w = walk_new(p, &no_follow);
	assert_non_null(w);
	assert_false(walk_is_dir(w));
	walk_free(w); /* top entry never fetched: its fd is closed (collect checks leaks) */

	/* an empty file is still a file */
	fpath(fx, "out/empty", p, sizeof(p));
	close(open(p, O_WRONLY | O_CREAT | O_CLOEXEC, 0644));
	EXPECT(fx, p, &no_follow, "F out/empty = ");
}

/* walk_free releases every descriptor: mid-walk (the directory stack) and
 * with the top file's entry never fetched. */
static void test_walk_free_no_leak(void **state)
{
	struct fx *fx = *state;
	int fds0;
	struct walk *w;
	struct walk_entry e;
	char p[PATH_MAX];

	mk_dir(fx, "top/s1");
	mk_dir(fx, "top/s1/s2");
	mk_file(fx, "top/s1/s2/f");
	mk_file(fx, "top/s1/g");
	fds0 = count_fds();
	w = walk_new(fx->top, &no_follow);
	assert_non_null(w);
	assert_int_equal(walk_next(w, &e), 0);
	assert_int_equal(e.kind, WALK_FILE);
	close(e.fd);
	walk_free(w); /* mid-walk: every directory descriptor released */
	assert_int_equal(count_fds(), fds0);

	fpath(fx, "top/s1/g", p, sizeof(p));
	w = walk_new(p, &no_follow);
	assert_non_null(w);
	assert_int_equal(count_fds(), fds0 + 1);
	walk_free(w);
	assert_int_equal(count_fds(), fds0);
}

static void test_trailing_slashes(void **state)
{
	struct fx *fx = *state;
	char p[PATH_MAX];

	mk_dir(fx, "top/sub");
	mk_file(fx, "top/sub/b");
	snprintf(p, sizeof(p), "%s///", fx->top);
	EXPECT(fx, p, &no_follow, "F top/sub/b = top/sub/b");
	/* a file named with a trailing slash: the slash is dropped */
	snprintf(p, sizeof(p), "%s/sub/b/", fx->top);
	EXPECT(fx, p, &no_follow, "F top/sub/b = top/sub/b");
}

static void test_missing(void **state)
{
	struct fx *fx = *state;
	char p[PATH_MAX];

	fpath(fx, "top/none", p, sizeof(p));
	EXPECT(fx, p, &no_follow, "E top/none ENOENT");
	fpath(fx, "top/none/deeper", p, sizeof(p));
	EXPECT(fx, p, &no_follow, "E top/none/deeper ENOENT");
	mk_file(fx, "top/file");
	fpath(fx, "top/file/x", p, sizeof(p));
	EXPECT(fx, p, &no_follow, "E top/file/x ENOTDIR");
}

static void test_top_path_too_long(void **state)
{
	struct fx *fx = *state;
	char *p = malloc(PATH_MAX + 100);
	struct walk *w;
	struct walk_entry e;

	assert_non_null(p);
	memset(p, 'a', PATH_MAX + 99);
	p[0] = '/';
	p[PATH_MAX + 99] = '\0';
	(void)fx;
	w = walk_new(p, &no_follow);
	assert_non_null(w);
	assert_int_equal(walk_next(w, &e), 0);
	assert_int_equal(e.kind, WALK_ERROR);
	assert_int_equal(e.err, ENAMETOOLONG);
	assert_int_equal(e.fd, -1);
	assert_int_equal(walk_next(w, &e), 0);
	assert_int_equal(e.kind, WALK_DONE);
	walk_free(w);
	free(p);
}

/* FIFOs and sockets are skipped inside a walk (and a FIFO never blocks it);
 * given as the top path they are reported. */
static void test_special_files(void **state)
{
	struct fx *fx = *state;
	char p[PATH_MAX];
	int s;

	mk_file(fx, "top/a");
	mk_fifo(fx, "top/fifo");
	s = mk_socket(fx, "top/sock");
	mk_link(fx, "fifo", "top/fifolink");
	EXPECT(fx, fx->top, &no_follow, "F top/a = top/a");
	{
		const struct walk_opts all = {.follow_dir_symlinks = true,
					      .follow_file_symlinks = true};

		EXPECT(fx, fx->top, &all, "F top/a = top/a");
	}
	fpath(fx, "top/fifo", p, sizeof(p));
	EXPECT(fx, p, &no_follow, "E top/fifo EINVAL");
	fpath(fx, "top/sock", p, sizeof(p));
	EXPECT(fx, p, &no_follow, "E top/sock ENXIO"); /* open() of a socket */
	EXPECT(fx, "/dev/null", &no_follow, "E /dev/null EINVAL");
	close(s);
}

/* ---- symlinks ---- */

/* Top-level symlinks obey Follow*Symlinks; refused ones are EXCLUDED/ELOOP. */
static void test_top_symlinks(void **state)
{
	struct fx *fx = *state;
	const struct walk_opts f_file = {.follow_file_symlinks = true};
	const struct walk_opts f_dir = {.follow_dir_symlinks = true};
	const struct walk_opts f_both = {.follow_dir_symlinks = true, .follow_file_symlinks = true};
	char lf[PATH_MAX], ld[PATH_MAX], dang[PATH_MAX];

	mk_file(fx, "top/a");
	mk_link(fx, "@top/a", "out/lfile");
	mk_link(fx, "../top", "out/ldir");
	mk_link(fx, "@top/missing", "out/dang");
	fpath(fx, "out/lfile", lf, sizeof(lf));
	fpath(fx, "out/ldir", ld, sizeof(ld));
	fpath(fx, "out/dang", dang, sizeof(dang));

	EXPECT(fx, lf, &no_follow, "X out/lfile ELOOP");
	EXPECT(fx, ld, &no_follow, "X out/ldir ELOOP");
	EXPECT(fx, lf, &f_file, "F out/lfile = top/a");
	EXPECT(fx, ld, &f_file, "X out/ldir ELOOP");
	EXPECT(fx, lf, &f_dir, "X out/lfile ELOOP");
	EXPECT(fx, ld, &f_dir, "F out/ldir/a = top/a"); /* named under the link */
	EXPECT(fx, lf, &f_both, "F out/lfile = top/a");
	EXPECT(fx, ld, &f_both, "F out/ldir/a = top/a");
	/* a trailing slash does not make the last component a directory walk */
	{
		char p[PATH_MAX + 2];

		snprintf(p, sizeof(p), "%s/", ld);
		EXPECT(fx, p, &no_follow, "X out/ldir ELOOP");
	}

	/* dangling: an error whatever the options */
	EXPECT(fx, dang, &no_follow, "E out/dang ENOENT");
	EXPECT(fx, dang, &f_both, "E out/dang ENOENT");

	{
		struct walk *w = walk_new(ld, &f_dir);

		assert_non_null(w);
		assert_true(walk_is_dir(w));
		walk_free(w);
	}
}

/* Symlinks in the leading components are resolved whatever the options. */
static void test_leading_symlink(void **state)
{
	struct fx *fx = *state;
	char p[PATH_MAX];

	mk_dir(fx, "top/sub");
	mk_file(fx, "top/sub/b");
	mk_link(fx, "@top", "out/alias");
	fpath(fx, "out/alias/sub", p, sizeof(p));
	EXPECT(fx, p, &no_follow, "F out/alias/sub/b = top/sub/b");
	fpath(fx, "out/alias/sub/b", p, sizeof(p));
	EXPECT(fx, p, &no_follow, "F out/alias/sub/b = top/sub/b");
}

/* Nested symlinks: followed only as configured, silently skipped otherwise
 * (as are dangling ones and links to special files). */
static void test_nested_symlinks(void **state)
{
	struct fx *fx = *state;
	const struct walk_opts f_file = {.follow_file_symlinks = true};
	const struct walk_opts f_dir = {.follow_dir_symlinks = true};
	const struct walk_opts f_both = {.follow_dir_symlinks = true, .follow_file_symlinks = true};

	mk_file(fx, "top/a");
	mk_file(fx, "out/secret");
	mk_dir(fx, "out/sdir");
	mk_file(fx, "out/sdir/s2");
	mk_fifo(fx, "out/fifo");
	mk_link(fx, "../out/secret", "top/lf");	   /* relative */
	mk_link(fx, "@out/sdir", "top/ld");	   /* absolute */
	mk_link(fx, "../out/nothing", "top/dang"); /* dangling */
	mk_link(fx, "../out/fifo", "top/lfifo");
	mk_dir(fx, "top/n");
	mk_link(fx, "../../out/secret", "top/n/lf2");

	EXPECT(fx, fx->top, &no_follow, "F top/a = top/a");
	EXPECT(fx, fx->top, &f_file, "F top/a = top/a", "F top/lf = out/secret",
	       "F top/n/lf2 = out/secret");
	EXPECT(fx, fx->top, &f_dir, "F top/a = top/a", "F top/ld/s2 = out/sdir/s2");
	EXPECT(fx, fx->top, &f_both, "F top/a = top/a", "F top/lf = out/secret",
	       "F top/n/lf2 = out/secret", "F top/ld/s2 = out/sdir/s2");
}

/* Loops through directory symlinks terminate and visit each real file of
 * the walked paths once: a link to an ancestor is skipped, a self-link is
 * skipped, two directories linking to each other are entered once each. */
static void test_symlink_loops(void **state)
{
	struct fx *fx = *state;
	const struct walk_opts f_both = {.follow_dir_symlinks = true, .follow_file_symlinks = true};

	mk_dir(fx, "top/a");
	mk_file(fx, "top/a/f");
	mk_dir(fx, "top/b");
	mk_file(fx, "top/b/g");
	mk_link(fx, "../b", "top/a/l");
	mk_link(fx, "../a", "top/b/l");
	mk_dir(fx, "top/sub");
	mk_link(fx, "..", "top/sub/up");
	mk_link(fx, "@top", "top/sub/abs_up");
	mk_link(fx, "self", "top/self");

	EXPECT(fx, fx->top, &f_both, "F top/a/f = top/a/f", "F top/a/l/g = top/b/g",
	       "F top/b/g = top/b/g", "F top/b/l/f = top/a/f");
	EXPECT(fx, fx->top, &no_follow, "F top/a/f = top/a/f", "F top/b/g = top/b/g");
}

/* Regression (scanengine/walk.c, open_top + walk_new): a top path that cannot be
 * resolved because of a symlink loop is reported as WALK_EXCLUDED/ELOOP,
 * which control.c prints as "Excluded (symbolic link not followed)". That
 * meaning is documented only for a link the Follow*Symlinks rules refuse.
 * Input: top path "<dir>/out/loop" with loop -> loop and both Follow*
 * options on; expected WALK_ERROR with err ELOOP; it once returned WALK_EXCLUDED with
 * err ELOOP. (open_top returns stat()'s -ELOOP, and walk_new maps every
 * -ELOOP to an exclusion.) */
static void test_top_symlink_loop_is_error(void **state)
{
	struct fx *fx = *state;
	const struct walk_opts f_both = {.follow_dir_symlinks = true, .follow_file_symlinks = true};
	char p[PATH_MAX];

	mk_link(fx, "loop", "out/loop");
	fpath(fx, "out/loop", p, sizeof(p));
	EXPECT(fx, p, &f_both, "E out/loop ELOOP");
}

/* Regression (same cause): a loop in a *leading* component, which the header says
 * is "resolved as usual", also comes out as WALK_EXCLUDED/ELOOP ("symbolic
 * link not followed") with the options off. Input "<dir>/out/loop/x" with
 * loop -> loop; expected WALK_ERROR/ELOOP; it once returned WALK_EXCLUDED/ELOOP. */
static void test_leading_symlink_loop_is_error(void **state)
{
	struct fx *fx = *state;
	char p[PATH_MAX];

	mk_link(fx, "loop", "out/loop");
	fpath(fx, "out/loop/x", p, sizeof(p));
	EXPECT(fx, p, &no_follow, "E out/loop/x ELOOP");
}

/* ---- race safety ---- */

/* The walk decides from readdir's d_type, then opens. A regular file swapped
 * for a symlink in between must not be followed: O_NOFOLLOW makes it an
 * error instead of opening the link's target. */
static void test_race_file_swapped_for_symlink(void **state)
{
	struct fx *fx = *state;
	struct walk *w;
	struct walk_entry e;
	const char *other;
	char tmp[PATH_MAX], dst[PATH_MAX], secret[PATH_MAX];

	mk_file(fx, "top/f1");
	mk_file(fx, "top/f2");
	mk_file(fx, "out/secret");
	w = walk_new(fx->top, &no_follow);
	assert_non_null(w);
	assert_int_equal(walk_next(w, &e), 0); /* the directory has been read */
	assert_int_equal(e.kind, WALK_FILE);
	close(e.fd);
	other = strcmp(rel_of(fx, e.path), "top/f1") ? "top/f1" : "top/f2";

	/* atomically replace the other file by a symlink to out/secret */
	fpath(fx, "tmplink", tmp, sizeof(tmp));
	fpath(fx, "out/secret", secret, sizeof(secret));
	assert_int_equal(symlink(secret, tmp), 0);
	fpath(fx, other, dst, sizeof(dst));
	assert_int_equal(rename(tmp, dst), 0);

	assert_int_equal(walk_next(w, &e), 0);
	if (e.kind == WALK_FILE) {
		char c[64];

		read_entry_fd(e.fd, c, sizeof(c));
		close(e.fd);
		fail_msg("followed the swapped-in symlink %s: read \"%s\"", e.path, c);
	}
	assert_int_equal(e.kind, WALK_ERROR);
	assert_int_equal(e.err, ELOOP);
	assert_string_equal(rel_of(fx, e.path), other);
	assert_int_equal(walk_next(w, &e), 0);
	assert_int_equal(e.kind, WALK_DONE);
	walk_free(w);
}

/* Same for a directory swapped for a symlink to a directory outside. */
static void test_race_dir_swapped_for_symlink(void **state)
{
	struct fx *fx = *state;
	struct walk *w;
	struct walk_entry e;
	char first[PATH_MAX], other[16], src[PATH_MAX], dst[PATH_MAX], tmp[PATH_MAX];

	mk_dir(fx, "top/d1");
	mk_file(fx, "top/d1/f");
	mk_dir(fx, "top/d2");
	mk_file(fx, "top/d2/f");
	mk_dir(fx, "out/sdir");
	mk_file(fx, "out/sdir/secret");
	w = walk_new(fx->top, &no_follow);
	assert_non_null(w);
	assert_int_equal(walk_next(w, &e), 0);
	assert_int_equal(e.kind, WALK_FILE);
	close(e.fd);
	util_strlcpy(first, rel_of(fx, e.path), sizeof(first));
	util_strlcpy(other, strncmp(first, "top/d1/", 7) ? "top/d1" : "top/d2", sizeof(other));

	/* move the other directory away and put a symlink in its place */
	fpath(fx, other, dst, sizeof(dst));
	fpath(fx, "moved", src, sizeof(src));
	assert_int_equal(rename(dst, src), 0);
	fpath(fx, "tmplink", tmp, sizeof(tmp));
	fpath(fx, "out/sdir", src, sizeof(src));
	assert_int_equal(symlink(src, tmp), 0);
	assert_int_equal(rename(tmp, dst), 0);

	for (;;) {
		assert_int_equal(walk_next(w, &e), 0);
		if (e.kind == WALK_DONE)
			break;
		if (e.kind == WALK_FILE) {
			char c[64];

			read_entry_fd(e.fd, c, sizeof(c));
			close(e.fd);
			fail_msg("entered the swapped-in symlink: %s = \"%s\"", e.path, c);
		}
		assert_int_equal(e.kind, WALK_ERROR);
		assert_string_equal(rel_of(fx, e.path), other);
		/* O_NOFOLLOW|O_DIRECTORY on a symlink: ENOTDIR on Linux */
		assert_true(e.err == ENOTDIR || e.err == ELOOP);
	}
	walk_free(w);
}

/* ---- ExcludePath ---- */

static void compile(struct walk_exclude *ex, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void compile(struct walk_exclude *ex, const char *fmt, ...)
{
	char pat[512], err[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(pat, sizeof(pat), fmt, ap);
	va_end(ap);
	if (walk_exclude_compile(pat, ex, err, sizeof(err)) != 0)
		fail_msg("cannot compile %s: %s", pat, err);
}

static void test_exclude_compile(void **state)
{
	struct walk_exclude ex;
	char err[256];

	(void)state;
	assert_int_equal(walk_exclude_compile("^/proc/", &ex, err, sizeof(err)), 0);
	assert_true(ex.trailing_slash);
	regfree(&ex.re);
	assert_int_equal(walk_exclude_compile("\\.log$", &ex, err, sizeof(err)), 0);
	assert_false(ex.trailing_slash);
	regfree(&ex.re);
	/* extended syntax */
	assert_int_equal(walk_exclude_compile("^/(a|b)+/x{2}$", &ex, err, sizeof(err)), 0);
	regfree(&ex.re);

	err[0] = '\0';
	assert_int_equal(walk_exclude_compile("(", &ex, err, sizeof(err)), -EINVAL);
	assert_true(strlen(err) > 0);
	err[0] = '\0';
	assert_int_equal(walk_exclude_compile("[a-", &ex, err, sizeof(err)), -EINVAL);
	assert_true(strlen(err) > 0);
	/* a small err buffer is still terminated */
	memset(err, 'x', sizeof(err));
	assert_int_equal(walk_exclude_compile("(", &ex, err, 4), -EINVAL);
	assert_true(memchr(err, '\0', 4) != NULL);
}

static void test_excluded_fn(void **state)
{
	struct walk_exclude ex[3];
	struct walk_opts o = {.excludes = ex, .nexcludes = 0};

	(void)state;
	assert_false(walk_excluded(&o, "/anything"));
	compile(&ex[0], "%s", "^/proc/");
	compile(&ex[1], "%s", "\\.tmp$");
	compile(&ex[2], "%s", "cache");
	o.nexcludes = 3;
	assert_true(walk_excluded(&o, "/proc")); /* trailing-slash rule */
	assert_true(walk_excluded(&o, "/proc/1/maps"));
	assert_false(walk_excluded(&o, "/procfs"));
	assert_false(walk_excluded(&o, "/x/proc"));
	assert_true(walk_excluded(&o, "/home/u/a.tmp"));
	assert_false(walk_excluded(&o, "/home/u/a.tmpx"));
	assert_true(walk_excluded(&o, "/var/cache/x")); /* unanchored search */
	assert_true(walk_excluded(&o, "/xcachey"));
	assert_false(walk_excluded(&o, "/home/u/doc"));
	/* only the first n are used */
	o.nexcludes = 1;
	assert_false(walk_excluded(&o, "/var/cache/x"));
	for (int i = 0; i < 3; i++)
		regfree(&ex[i].re);
}

static void test_exclude_walk(void **state)
{
	struct fx *fx = *state;
	struct walk_exclude ex[4];
	struct walk_opts o = {.excludes = ex, .nexcludes = 4};

	mk_dir(fx, "top/skipdir");
	mk_file(fx, "top/skipdir/inside");
	mk_dir(fx, "top/skipdir/deeper");
	mk_file(fx, "top/skipdir/deeper/x");
	mk_file(fx, "top/skipdirx"); /* not the directory: not excluded */
	mk_file(fx, "top/a.log");
	mk_dir(fx, "top/sub");
	mk_file(fx, "top/sub/b.log");
	mk_file(fx, "top/sub/keep");
	mk_file(fx, "top/sub/keepme"); /* "$" anchors the other pattern */
	mk_file(fx, "top/sub/c");
	mk_dir(fx, "top/nosl");
	mk_file(fx, "top/nosl/in");

	compile(&ex[0], "^%s/top/skipdir/", fx->dir); /* trailing slash: the dir itself */
	compile(&ex[1], "%s", "\\.log$");
	compile(&ex[2], "^%s/top/sub/keep$", fx->dir);
	compile(&ex[3], "^%s/top/nosl$", fx->dir); /* a directory without the slash */
	EXPECT(fx, fx->top, &o, "X top/skipdir 0", "F top/skipdirx = top/skipdirx", "X top/a.log 0",
	       "X top/sub/b.log 0", "X top/sub/keep 0", "F top/sub/keepme = top/sub/keepme",
	       "F top/sub/c = top/sub/c", "X top/nosl 0");

	/* the top path itself, with and without the trailing slash given */
	{
		char p[PATH_MAX];

		fpath(fx, "top/skipdir", p, sizeof(p));
		EXPECT(fx, p, &o, "X top/skipdir 0");
		snprintf(p, sizeof(p), "%s/top/skipdir/", fx->dir);
		EXPECT(fx, p, &o, "X top/skipdir 0");
		fpath(fx, "top/a.log", p, sizeof(p));
		EXPECT(fx, p, &o, "X top/a.log 0");
		/* below an excluded directory (clamd: the regex still matches) */
		fpath(fx, "top/skipdir/inside", p, sizeof(p));
		EXPECT(fx, p, &o, "X top/skipdir/inside 0");
	}
	for (int i = 0; i < 4; i++)
		regfree(&ex[i].re);
}

/* The trailing-slash rule applies to every path, files too (clamd's
 * match_regex appends the separator whatever the path is). */
static void test_exclude_trailing_slash_file(void **state)
{
	struct fx *fx = *state;
	struct walk_exclude ex;
	struct walk_opts o = {.excludes = &ex, .nexcludes = 1};

	mk_file(fx, "top/f");
	mk_file(fx, "top/g");
	compile(&ex, "%s", "/f/");
	EXPECT(fx, fx->top, &o, "X top/f 0", "F top/g = top/g");
	regfree(&ex.re);
}

/* ---- filesystems ---- */

/* A symlink to a directory on another filesystem, followed: EXCLUDED/EXDEV
 * without CrossFilesystems. (With it, /proc would be walked: not tried.) */
static void test_cross_fs_symlink(void **state)
{
	struct fx *fx = *state;
	const struct walk_opts f_dir = {.follow_dir_symlinks = true};
	struct stat a, b;

	assert_int_equal(stat("/proc/self", &a), 0);
	assert_int_equal(stat(fx->top, &b), 0);
	if (a.st_dev == b.st_dev)
		skip();
	mk_file(fx, "top/a");
	mk_link(fx, "/proc/self", "top/proc");
	EXPECT(fx, fx->top, &f_dir, "F top/a = top/a", "X top/proc EXDEV");
	EXPECT(fx, fx->top, &no_follow, "F top/a = top/a");
}

/* A real mount point inside the tree: a tmpfs mounted in a private mount
 * namespace of a child (gone when it exits). */
static void child_cross_fs(const struct fx *fx, char *out, size_t outlen)
{
	const struct walk_opts off = {0}, on = {.cross_filesystems = true};
	char mnt[PATH_MAX], f[PATH_MAX], a[8192], b[8192];
	int fd;

	if (unshare(CLONE_NEWNS) < 0) {
		snprintf(out, outlen, "SKIP: unshare(CLONE_NEWNS): %s", strerror(errno));
		return;
	}
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) {
		snprintf(out, outlen, "SKIP: make / private: %s", strerror(errno));
		return;
	}
	fpath(fx, "top/mnt", mnt, sizeof(mnt));
	if (mount("tmpfs", mnt, "tmpfs", 0, "size=1m") < 0) {
		snprintf(out, outlen, "SKIP: mount tmpfs: %s", strerror(errno));
		return;
	}
	fpath(fx, "top/mnt/inner", f, sizeof(f));
	fd = open(f, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0 || write(fd, "top/mnt/inner", 13) != 13) {
		snprintf(out, outlen, "!cannot write %s", f);
		return;
	}
	close(fd);
	collect(fx, fx->top, &off, a, sizeof(a));
	collect(fx, fx->top, &on, b, sizeof(b));
	snprintf(out, outlen, "%s\n--\n%s", a, b);
}

static void test_cross_fs_mount(void **state)
{
	struct fx *fx = *state;
	char got[16384];

	mk_file(fx, "top/a");
	mk_dir(fx, "top/mnt");
	run_child(fx, child_cross_fs, got, sizeof(got));
	assert_string_equal(got, "F top/a = top/a\nX top/mnt EXDEV\n--\n"
				 "F top/a = top/a\nF top/mnt/inner = top/mnt/inner");
}

/* ---- permissions (as nobody in a child: root reads everything) ---- */

static void child_unreadable(const struct fx *fx, char *out, size_t outlen)
{
	char a[8192], b[8192], p[PATH_MAX];

	if (getuid() == 0 && (setresgid(NOBODY_ID, NOBODY_ID, NOBODY_ID) < 0 ||
			      setresuid(NOBODY_ID, NOBODY_ID, NOBODY_ID) < 0)) {
		snprintf(out, outlen, "SKIP: cannot become nobody: %s", strerror(errno));
		return;
	}
	collect(fx, fx->top, &no_follow, a, sizeof(a));
	fpath(fx, "top/locked", p, sizeof(p));
	collect(fx, p, &no_follow, b, sizeof(b));
	snprintf(out, outlen, "%s\n--\n%s", a, b);
}

static void test_unreadable(void **state)
{
	struct fx *fx = *state;
	char got[16384], p[PATH_MAX];

	mk_dir(fx, "top/locked");
	mk_file(fx, "top/locked/f");
	mk_dir(fx, "top/ok");
	mk_file(fx, "top/ok/f");
	mk_file(fx, "top/secret");
	fpath(fx, "top/locked", p, sizeof(p));
	assert_int_equal(chmod(p, 0), 0);
	fpath(fx, "top/secret", p, sizeof(p));
	assert_int_equal(chmod(p, 0), 0);
	run_child(fx, child_unreadable, got, sizeof(got));
	assert_string_equal(got, "E top/locked EACCES\nE top/secret EACCES\nF top/ok/f = top/ok/f"
				 "\n--\nE top/locked EACCES");
}

/* ---- depth and length limits ---- */

/* A chain of depth directories named name under top, with a file "f" at
 * every level listed in files[] (level 0 = top). */
static void make_chain(const char *top, const char *name, int depth, const int *files,
		       size_t nfiles)
{
	int fd = open(top, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	assert_true(fd >= 0);
	for (int lvl = 0;; lvl++) {
		int nfd;

		for (size_t i = 0; i < nfiles; i++) {
			if (files[i] == lvl) {
				char text[16];
				int f = openat(fd, "f", O_WRONLY | O_CREAT | O_CLOEXEC, 0644);

				assert_true(f >= 0);
				snprintf(text, sizeof(text), "level %d", lvl);
				assert_int_equal(write(f, text, strlen(text)),
						 (ssize_t)strlen(text));
				close(f);
			}
		}
		if (lvl == depth)
			break;
		assert_int_equal(mkdirat(fd, name, 0755), 0);
		nfd = openat(fd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		assert_true(nfd >= 0);
		close(fd);
		fd = nfd;
	}
	close(fd);
}

/* Deeper than the walk's stack (256 frames): the directory that does not
 * fit is one WALK_ERROR/ELOOP, everything above it is walked, nothing below. */
static void test_deep_tree(void **state)
{
	struct fx *fx = *state;
	static const int files[] = {0, 10, 255, 256, 257, 300};
	struct walk *w;
	struct walk_entry e;
	int nfile = 0, nerr = 0, fds0 = count_fds();
	bool seen[301] = {false};

	make_chain(fx->top, "d", 300, files, SE_ARRAY_SIZE(files));
	w = walk_new(fx->top, &no_follow);
	assert_non_null(w);
	for (;;) {
		assert_int_equal(walk_next(w, &e), 0);
		if (e.kind == WALK_DONE)
			break;
		if (e.kind == WALK_FILE) {
			char c[32];
			int lvl;

			assert_true(read_entry_fd(e.fd, c, sizeof(c)));
			close(e.fd);
			assert_int_equal(sscanf(c, "level %d", &lvl), 1);
			/* the path has one "/d" per level */
			assert_int_equal(strlen(e.path), strlen(fx->top) + 2 * (size_t)lvl + 2);
			assert_true(lvl >= 0 && lvl <= 300);
			seen[lvl] = true;
			nfile++;
		} else {
			assert_int_equal(e.kind, WALK_ERROR);
			assert_int_equal(e.err, ELOOP);
			assert_int_equal(strlen(e.path), strlen(fx->top) + 2 * 256);
			nerr++;
		}
	}
	walk_free(w);
	assert_int_equal(count_fds(), fds0);
	assert_int_equal(nerr, 1);
	assert_int_equal(nfile, 3);
	assert_true(seen[0] && seen[10] && seen[255]);
}

/* Paths longer than PATH_MAX: the entry that would exceed it is an
 * ENAMETOOLONG error and the walk goes on with the rest. */
static void test_path_too_long_inside(void **state)
{
	struct fx *fx = *state;
	char name[201];
	static const int files[] = {0, 5, 19, 20, 21};
	struct walk *w;
	struct walk_entry e;
	int nfile = 0, nerr = 0, want_files = 0, maxframe = 0;
	size_t toplen = strlen(fx->top);
	char errpath[PATH_MAX + 8];

	memset(name, 'n', 200);
	name[200] = '\0';
	make_chain(fx->top, name, 21, files, SE_ARRAY_SIZE(files));
	/* frame k is top + k * "/<name>"; level k+1 fits while its path does */
	while (maxframe < 21 && toplen + 201 * (size_t)(maxframe + 1) < PATH_MAX)
		maxframe++;
	assert_true(maxframe < 21); /* the chain really goes past PATH_MAX */
	for (size_t i = 0; i < SE_ARRAY_SIZE(files); i++)
		want_files += files[i] <= maxframe;
	/* the error names the directory holding the entry, with a slash */
	util_strlcpy(errpath, fx->top, sizeof(errpath));
	for (int k = 0; k < maxframe; k++) {
		strcat(errpath, "/");
		strcat(errpath, name);
	}
	strcat(errpath, "/");

	w = walk_new(fx->top, &no_follow);
	assert_non_null(w);
	for (;;) {
		assert_int_equal(walk_next(w, &e), 0);
		if (e.kind == WALK_DONE)
			break;
		if (e.kind == WALK_FILE) {
			close(e.fd);
			assert_true(strlen(e.path) < PATH_MAX);
			nfile++;
		} else {
			assert_int_equal(e.kind, WALK_ERROR);
			assert_int_equal(e.err, ENAMETOOLONG);
			assert_string_equal(e.path, errpath);
			nerr++;
		}
	}
	walk_free(w);
	assert_int_equal(nfile, want_files);
	assert_int_equal(nerr, 1);
}

/* ---- "/" as the top path: walked inside a chroot of the tree ---- */

static void child_root(const struct fx *fx, char *out, size_t outlen)
{
	char a[8192], b[8192];

	if (chroot(fx->top) < 0 || chdir("/") < 0) {
		snprintf(out, outlen, "SKIP: chroot: %s", strerror(errno));
		return;
	}
	collect(fx, "/", &no_follow, a, sizeof(a));
	collect(fx, "//", &no_follow, b, sizeof(b));
	snprintf(out, outlen, "%s\n--\n%s", a, b);
}

static void test_root_path(void **state)
{
	struct fx *fx = *state;
	char got[16384];
	const char *one = "F /a = top/a\nF /sub/b = top/sub/b\nF /sub/deeper/c = top/sub/deeper/c";
	char want[16384];

	mk_file(fx, "top/a");
	mk_dir(fx, "top/sub");
	mk_file(fx, "top/sub/b");
	mk_dir(fx, "top/sub/deeper");
	mk_file(fx, "top/sub/deeper/c");
	run_child(fx, child_root, got, sizeof(got));
	snprintf(want, sizeof(want), "%s\n--\n%s", one, one);
	assert_string_equal(got, want);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_basic_tree),
		T(test_empty_dir),
		T(test_top_file),
		T(test_walk_free_no_leak),
		T(test_trailing_slashes),
		T(test_missing),
		T(test_top_path_too_long),
		T(test_special_files),
		T(test_top_symlinks),
		T(test_leading_symlink),
		T(test_nested_symlinks),
		T(test_symlink_loops),
		T(test_top_symlink_loop_is_error),
		T(test_leading_symlink_loop_is_error),
		T(test_race_file_swapped_for_symlink),
		T(test_race_dir_swapped_for_symlink),
		T(test_exclude_compile),
		T(test_excluded_fn),
		T(test_exclude_walk),
		T(test_exclude_trailing_slash_file),
		T(test_cross_fs_symlink),
		T(test_cross_fs_mount),
		T(test_unreadable),
		T(test_deep_tree),
		T(test_path_too_long_inside),
		T(test_root_path),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
