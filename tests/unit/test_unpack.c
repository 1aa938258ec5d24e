/* test_unpack: unit tests of defs/unpack.c (cmocka).
 *
 * Each test gets a private tree /tmp/test_unpack.XXXXXX holding the
 * staging directory ("stage", the dirfd given to unpack_fd) and the
 * container being unpacked. Good input: the real signed test-N.cvd and
 * bytecode.cvd of the shared testdata/clamav (tests/unit/testdata.h), compared
 * member by member with what GNU tar extracts from them. Bad input is built
 * here with libarchive's write side, behind a fake 512-byte header like a
 * real container's, either into a file or, for the streams too big to
 * build in advance (a 10 GB member, 100,000 members, a stalling sender),
 * by a forked child into a pipe that is read as it is written; the child
 * never calls cmocka and dies of SIGPIPE once the reader gives up.
 *
 * After every refusal the staging directory must be empty and nothing may
 * exist next to it or under /tmp with the unique names the escape attempts
 * aimed at. */
#include "defs/unpack.h"
#include "tests/unit/testdata.h"

#include "common/util.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#define GiB (1ull << 30)
#define MiB (1ull << 20)

struct fx {
	char base[64];	 /* private tree under /tmp */
	char stage[128]; /* <base>/stage: the staging directory */
	char tok[64];	 /* unique file name the escape attempts aim at */
	int dirfd;	 /* stage, O_DIRECTORY */
	struct unpack_limits lim;
	struct unpack_result res;
	char err[UNPACK_ERR_LEN];
	uint64_t elapsed_ms; /* of the last run() */
};

/* ---- helpers ---- */

static const char *testdata(void)
{
	const char *d = testdata_dir();

	if (!d)
		fail_msg("shared testdata/clamav not found (set SCANENGINE_TESTDATA)");
	return d;
}

static void join(char *buf, size_t len, const char *a, const char *b)
{
	assert_true((size_t)snprintf(buf, len, "%s/%s", a, b) < len);
}

/* A shell command line into buf; fails the test if it does not fit. */
__attribute__((format(printf, 3, 4))) static void cmdf(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, len, fmt, ap);
	va_end(ap);
	assert_true(n >= 0 && (size_t)n < len);
}

static int rm_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

static bool exists(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0;
}

/* Entries of dir (but . and ..). */
static int count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;

	assert_non_null(d);
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

/* The content of fd from offset 0 (malloc'd) and its length. */
static char *read_fd(int fd, size_t *len)
{
	size_t cap = 4096, n = 0;
	char *buf = malloc(cap);
	ssize_t r;

	assert_non_null(buf);
	while ((r = read(fd, buf + n, cap - n)) > 0) {
		n += (size_t)r;
		if (n == cap) {
			cap *= 2;
			buf = realloc(buf, cap);
			assert_non_null(buf);
		}
	}
	assert_true(r == 0);
	*len = n;
	return buf;
}

static char *read_cmd(const char *cmd, size_t *len)
{
	FILE *f = popen(cmd, "r");
	char *buf;

	assert_non_null(f);
	buf = read_fd(fileno(f), len);
	assert_int_equal(pclose(f), 0);
	return buf;
}

static void write_path(const char *path, const void *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(util_write_all(fd, data, len), 0);
	close(fd);
}

/* A container-like 512-byte header in front of every payload built here. */
static void fake_header(char hdr[512])
{
	memset(hdr, ' ', 512);
	memcpy(hdr, "ClamAV-VDB:fake", 15);
}

/* Deterministic incompressible bytes. */
static void fill_random(char *buf, size_t len, uint64_t seed)
{
	uint64_t x = seed * 2654435761u + 88172645463325252ull;

	for (size_t i = 0; i < len; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		buf[i] = (char)(x >> 24);
	}
}

/* ---- archives built with libarchive's write side ---- */

enum kind { K_FILE, K_RANDOM, K_ZEROS, K_SYMLINK, K_HARDLINK, K_CHR, K_FIFO, K_DIR };

struct spec {
	enum kind kind;
	const char *name;
	const char *data;      /* K_FILE */
	uint64_t size;	       /* K_RANDOM, K_ZEROS */
	const char *link;      /* K_SYMLINK, K_HARDLINK */
	unsigned int mtime_ns; /* non-zero: forces a pax header in pax format */
};

struct build {
	int format; /* ARCHIVE_FORMAT_TAR_USTAR (0 = that), _GNUTAR, _PAX_INTERCHANGE */
	bool plain; /* no gzip */
	const struct spec *specs;
	size_t n;
	unsigned int many;     /* then this many empty members fNNNNNN.hdb */
	unsigned int stall_ms; /* pipe only: then wait this long before the end */
};

static int add_data(struct archive *w, const struct spec *s)
{
	static const char zeros[64 * 1024];
	char chunk[64 * 1024];
	uint64_t left = s->size;

	if (s->kind == K_FILE)
		return archive_write_data(w, s->data, strlen(s->data)) < 0 ? -1 : 0;
	for (uint64_t i = 0; left; i++) {
		size_t n = (size_t)SE_MIN(left, (uint64_t)sizeof(chunk));

		if (s->kind == K_RANDOM)
			fill_random(chunk, n, i + 1);
		/* Fails once the reader is gone (the pipe child then stops). */
		if (archive_write_data(w, s->kind == K_ZEROS ? zeros : chunk, n) < 0)
			return -1;
		left -= n;
	}
	return 0;
}

static int add_member(struct archive *w, const struct spec *s)
{
	struct archive_entry *e = archive_entry_new();
	int rc = -1;

	archive_entry_set_pathname(e, s->name);
	archive_entry_set_mode(e, 0644);
	archive_entry_set_mtime(e, 1624388302, s->mtime_ns);
	switch (s->kind) {
	case K_FILE:
		archive_entry_set_filetype(e, AE_IFREG);
		archive_entry_set_size(e, (la_int64_t)strlen(s->data));
		break;
	case K_RANDOM:
	case K_ZEROS:
		archive_entry_set_filetype(e, AE_IFREG);
		archive_entry_set_size(e, (la_int64_t)s->size);
		break;
	case K_SYMLINK:
		archive_entry_set_filetype(e, AE_IFLNK);
		archive_entry_set_symlink(e, s->link);
		break;
	case K_HARDLINK:
		archive_entry_set_filetype(e, AE_IFREG);
		archive_entry_set_hardlink(e, s->link);
		archive_entry_set_size(e, 0);
		break;
	case K_CHR:
		archive_entry_set_filetype(e, AE_IFCHR);
		archive_entry_set_rdev(e, makedev(1, 3));
		break;
	case K_FIFO:
		archive_entry_set_filetype(e, AE_IFIFO);
		break;
	case K_DIR:
		archive_entry_set_filetype(e, AE_IFDIR);
		archive_entry_set_mode(e, AE_IFDIR | 0755);
		break;
	}
	if (archive_write_header(w, e) != ARCHIVE_OK)
		goto out;
	if ((s->kind == K_FILE || s->kind == K_RANDOM || s->kind == K_ZEROS) && add_data(w, s))
		goto out;
	rc = 0;
out:
	archive_entry_free(e);
	return rc;
}

static struct archive *writer_new(const struct build *b)
{
	struct archive *w = archive_write_new();

	if (!w || archive_write_set_format(w, b->format ? b->format : ARCHIVE_FORMAT_TAR_USTAR))
		return NULL;
	if (b->plain) {
		archive_write_add_filter_none(w);
	} else if (archive_write_add_filter_gzip(w) ||
		   archive_write_set_filter_option(w, "gzip", "compression-level", "9")) {
		return NULL;
	}
	return w;
}

/* Write the members of b. Returns 0 or -1 (the pipe child ignores it). */
static int write_members(struct archive *w, const struct build *b)
{
	for (size_t i = 0; i < b->n; i++)
		if (add_member(w, &b->specs[i]))
			return -1;
	for (unsigned int i = 0; i < b->many; i++) {
		char name[32];
		struct spec s = {K_FILE, name, ""};

		snprintf(name, sizeof(name), "f%06u.hdb", i);
		if (add_member(w, &s))
			return -1;
	}
	return 0;
}

/* b as a container file <base>/built.cvd; returns it open for reading. */
static int make_file(const struct fx *fx, const struct build *b)
{
	char path[PATH_MAX], hdr[512];
	struct archive *w;
	int fd;

	join(path, sizeof(path), fx->base, "built.cvd");
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	fake_header(hdr);
	assert_int_equal(util_write_all(fd, hdr, sizeof(hdr)), 0);
	w = writer_new(b);
	assert_non_null(w);
	assert_int_equal(archive_write_open_fd(w, fd), ARCHIVE_OK);
	if (write_members(w, b))
		fail_msg("building the archive: %s", archive_error_string(w));
	assert_int_equal(archive_write_close(w), ARCHIVE_OK);
	archive_write_free(w);
	close(fd);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	return fd;
}

/* b written by a child into a pipe as it is read; returns the read end. */
static int make_pipe(const struct build *b, pid_t *pid)
{
	int p[2];

	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	*pid = fork();
	assert_true(*pid >= 0);
	if (*pid == 0) {
		char hdr[512];
		struct archive *w;

		signal(SIGPIPE, SIG_DFL);
		close(p[0]);
		fake_header(hdr);
		if (util_write_all(p[1], hdr, sizeof(hdr)))
			_exit(1);
		w = writer_new(b);
		if (!w || archive_write_open_fd(w, p[1]) != ARCHIVE_OK)
			_exit(1);
		write_members(w, b);
		if (b->stall_ms)
			usleep(b->stall_ms * 1000u);
		archive_write_close(w);
		_exit(0);
	}
	close(p[1]);
	return p[0];
}

/* The file at path copied by a child into a pipe. */
static int pipe_file(const char *path, pid_t *pid)
{
	int p[2];

	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	*pid = fork();
	assert_true(*pid >= 0);
	if (*pid == 0) {
		char buf[4096];
		ssize_t n;
		int fd = open(path, O_RDONLY);

		signal(SIGPIPE, SIG_DFL);
		close(p[0]);
		while (fd >= 0 && (n = read(fd, buf, sizeof(buf))) > 0)
			if (util_write_all(p[1], buf, (size_t)n))
				_exit(1);
		_exit(0);
	}
	close(p[1]);
	return p[0];
}

static void reap(pid_t pid)
{
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

/* ---- running and checking ---- */

static int run(struct fx *fx, int fd, off_t offset)
{
	uint64_t t0 = util_now_us();
	int rc = unpack_fd(fd, offset, fx->dirfd, &fx->lim, &fx->res, fx->err);

	fx->elapsed_ms = (util_now_us() - t0) / 1000u;
	return rc;
}

/* Nothing escaped: no file named tok next to the staging directory or in
 * /tmp, and the private tree holds only stage and the built container. */
static void assert_nothing_outside(const struct fx *fx)
{
	char path[PATH_MAX];
	DIR *d = opendir(fx->base);
	struct dirent *de;

	join(path, sizeof(path), fx->base, fx->tok);
	assert_false(exists(path));
	join(path, sizeof(path), "/tmp", fx->tok);
	assert_false(exists(path));
	assert_non_null(d);
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..") &&
		    strcmp(de->d_name, "stage") && strcmp(de->d_name, "built.cvd") &&
		    strcmp(de->d_name, "input.cvd"))
			fail_msg("unexpected %s/%s", fx->base, de->d_name);
	closedir(d);
}

/* rc is want, err mentions needle, the staging directory is empty and
 * nothing escaped. */
static void assert_refused(const struct fx *fx, int rc, int want, const char *needle)
{
	if (rc != want)
		fail_msg("expected %d (%s), got %d: %s", want, strerror(-want), rc, fx->err);
	if (!strstr(fx->err, needle))
		fail_msg("expected \"%s\" in \"%s\"", needle, fx->err);
	assert_int_equal(count_entries(fx->stage), 0);
	assert_nothing_outside(fx);
}

/* Build b into a file, unpack it, expect a refusal. */
static void refuse_file(struct fx *fx, const struct build *b, int want, const char *needle)
{
	int fd = make_file(fx, b);
	int rc = run(fx, fd, 512);

	close(fd);
	assert_refused(fx, rc, want, needle);
}

static void refuse_specs(struct fx *fx, const struct spec *specs, size_t n, int want,
			 const char *needle)
{
	struct build b = {.specs = specs, .n = n};

	refuse_file(fx, &b, want, needle);
}

/* ---- fixture ---- */

static int setup(void **state)
{
	struct fx *fx = calloc(1, sizeof(*fx));

	assert_non_null(fx);
	strcpy(fx->base, "/tmp/test_unpack.XXXXXX");
	assert_non_null(mkdtemp(fx->base));
	join(fx->stage, sizeof(fx->stage), fx->base, "stage");
	assert_int_equal(mkdir(fx->stage, 0700), 0);
	fx->dirfd = open(fx->stage, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(fx->dirfd >= 0);
	/* Unique per test: the XXXXXX of base. */
	snprintf(fx->tok, sizeof(fx->tok), "unpack-escape-%s.hdb", fx->base + 17);
	unpack_limits_default(&fx->lim);
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fx *fx = *state;
	char path[PATH_MAX];

	join(path, sizeof(path), "/tmp", fx->tok);
	unlink(path);
	close(fx->dirfd);
	nftw(fx->base, rm_cb, 32, FTW_DEPTH | FTW_PHYS);
	free(fx);
	return 0;
}

/* ---- real containers ---- */

static const char *const names_test12[] = {"COPYING", "test.info", "test.ndb", "test.ldb", NULL};
static const char *const names_test36[] = {
	"COPYING",  "test.info", "test.cfg", "test.hdb", "test.hdu", "test.hsb", "test.hsu",
	"test.mdb", "test.mdu",	 "test.msb", "test.msu", "test.ndb", "test.ndu", "test.ldb",
	"test.ldu", "test.idb",	 "test.fp",  "test.sfp", "test.crb", "test.cdb", NULL};
static const char *const names_bytecode[] = {
	"COPYING", "bytecode.info", "767944.cbc", "782872.cbc", "767942.cbc", "last.hdb", NULL};

/* The staging directory holds exactly names, each a regular 0644 file
 * equal to what `tail -c +513 cvd | tar -xzO NAME` prints. Returns the
 * total size. */
static uint64_t assert_matches_tar(const struct fx *fx, const char *cvd, const char *const *names)
{
	uint64_t total = 0;
	int n = 0;

	for (; names[n]; n++) {
		char cmd[PATH_MAX + 128];
		size_t want_len, got_len;
		char *want, *got;
		struct stat st;
		int fd = openat(fx->dirfd, names[n], O_RDONLY | O_NOFOLLOW | O_CLOEXEC);

		if (fd < 0)
			fail_msg("%s: %s missing", cvd, names[n]);
		assert_int_equal(fstat(fd, &st), 0);
		assert_true(S_ISREG(st.st_mode));
		assert_int_equal(st.st_mode & 07777, 0644);
		got = read_fd(fd, &got_len);
		close(fd);
		cmdf(cmd, sizeof(cmd), "tail -c +513 '%s' | tar -xzOf - '%s'", cvd, names[n]);
		want = read_cmd(cmd, &want_len);
		if (got_len != want_len || memcmp(got, want, got_len))
			fail_msg("%s: %s differs from tar's (%zu vs %zu bytes)", cvd, names[n],
				 got_len, want_len);
		total += got_len;
		free(got);
		free(want);
	}
	assert_int_equal(count_entries(fx->stage), n);
	return total;
}

static void unpack_real(struct fx *fx, const char *file, const char *const *names)
{
	char cvd[PATH_MAX], cmd[PATH_MAX + 64], *list;
	size_t len;
	uint64_t total;
	unsigned int n = 0;
	int fd, rc;

	join(cvd, sizeof(cvd), testdata(), file);
	fd = open(cvd, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		fail_msg("%s: %s", cvd, strerror(errno));
	rc = run(fx, fd, 512);
	if (rc)
		fail_msg("%s: %d %s", file, rc, fx->err);
	/* The fd's offset is left alone (pread). */
	assert_int_equal(lseek(fd, 0, SEEK_CUR), 0);
	close(fd);
	total = assert_matches_tar(fx, cvd, names);
	/* And the names are all GNU tar lists. */
	cmdf(cmd, sizeof(cmd), "tail -c +513 '%s' | tar -tzf - | wc -l", cvd);
	list = read_cmd(cmd, &len);
	while (names[n])
		n++;
	assert_int_equal(strtoul(list, NULL, 10), n);
	free(list);
	assert_int_equal(fx->res.entries, n);
	assert_int_equal(fx->res.total_bytes, total);
	assert_true(fx->res.gzip);
	assert_int_equal(fx->err[0], '\0');
	assert_int_equal(fx->res.offending[0], '\0');
	print_message("    %-13s %2u members %7llu bytes from %6llu in %llu ms\n", file, n,
		      (unsigned long long)total, (unsigned long long)fx->res.compressed_bytes,
		      (unsigned long long)fx->elapsed_ms);
}

static void test_real_cvds(void **state)
{
	struct fx *fx = *state;
	static const struct {
		const char *file;
		const char *const *names;
	} cvds[] = {
		{"test-1.cvd", names_test12},	  {"test-2.cvd", names_test12},
		{"test-3.cvd", names_test36},	  {"test-4.cvd", names_test36},
		{"test-5.cvd", names_test36},	  {"test-6.cvd", names_test36},
		{"bytecode.cvd", names_bytecode},
	};

	for (size_t i = 0; i < SE_ARRAY_SIZE(cvds); i++) {
		unpack_real(fx, cvds[i].file, cvds[i].names);
		/* Empty the staging directory for the next one. */
		for (size_t j = 0; cvds[i].names[j]; j++)
			assert_int_equal(unlinkat(fx->dirfd, cvds[i].names[j], 0), 0);
	}
}

/* A real container streamed through a pipe: the 512 header bytes are read
 * and dropped, nothing needs seeking. */
static void test_real_cvd_pipe(void **state)
{
	struct fx *fx = *state;
	char cvd[PATH_MAX];
	pid_t pid;
	int fd, rc;

	join(cvd, sizeof(cvd), testdata(), "test-3.cvd");
	fd = pipe_file(cvd, &pid);
	rc = run(fx, fd, 512);
	close(fd);
	reap(pid);
	if (rc)
		fail_msg("%d %s", rc, fx->err);
	assert_matches_tar(fx, cvd, names_test36);
}

/* A .cld as freshclam writes it by default: the payload a plain tar
 * starting with COPYING. */
static void test_plain_tar_cld(void **state)
{
	struct fx *fx = *state;
	char cvd[PATH_MAX], cld[PATH_MAX], cmd[3 * PATH_MAX];
	int fd, rc;

	join(cvd, sizeof(cvd), testdata(), "test-3.cvd");
	join(cld, sizeof(cld), fx->base, "input.cvd");
	cmdf(cmd, sizeof(cmd), "(head -c 512 '%s'; tail -c +513 '%s' | gzip -dc) > '%s'", cvd, cvd,
	     cld);
	assert_int_equal(system(cmd), 0);
	fd = open(cld, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	rc = run(fx, fd, 512);
	close(fd);
	if (rc)
		fail_msg("%d %s", rc, fx->err);
	assert_false(fx->res.gzip);
	assert_matches_tar(fx, cvd, names_test36);
}

/* ---- what the payload is ---- */

static void test_plain_tar_without_copying(void **state)
{
	struct fx *fx = *state;
	const struct spec s[] = {{K_FILE, "test.hdb", "x\n"}, {K_FILE, "COPYING", "c\n"}};
	struct build b = {.specs = s, .n = 2, .plain = true};

	refuse_file(fx, &b, -EBADMSG, "not gzip-compressed");
}

static void test_double_gzip(void **state)
{
	struct fx *fx = *state;
	char cvd[PATH_MAX], in[PATH_MAX], cmd[3 * PATH_MAX];
	int fd;

	join(cvd, sizeof(cvd), testdata(), "test-1.cvd");
	join(in, sizeof(in), fx->base, "input.cvd");
	cmdf(cmd, sizeof(cmd), "(head -c 512 '%s'; tail -c +513 '%s' | gzip -c) > '%s'", cvd, cvd,
	     in);
	assert_int_equal(system(cmd), 0);
	fd = open(in, O_RDONLY | O_CLOEXEC);
	assert_refused(fx, run(fx, fd, 512), -EBADMSG, "compressed more than once");
	close(fd);
}

/* The real test-3.cvd cut short at many points: refused, and whatever was
 * extracted before the cut is removed. */
static void test_truncated_gzip(void **state)
{
	struct fx *fx = *state;
	char cvd[PATH_MAX], in[PATH_MAX];
	size_t len, cuts = 0;
	char *data;
	int fd;

	join(cvd, sizeof(cvd), testdata(), "test-3.cvd");
	fd = open(cvd, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	data = read_fd(fd, &len);
	close(fd);
	join(in, sizeof(in), fx->base, "input.cvd");
	/* Every 64 bytes up to the end of the deflate data (the last 8
	 * bytes are the gzip trailer: see test_truncated_trailer). */
	for (size_t cut = 512 + 1; cut < len - 8; cut += 64, cuts++) {
		int rc;

		write_path(in, data, cut);
		fd = open(in, O_RDONLY | O_CLOEXEC);
		rc = run(fx, fd, 512);
		close(fd);
		if (rc != -EBADMSG)
			fail_msg("cut at %zu: %d %s", cut, rc, fx->err);
		assert_int_equal(count_entries(fx->stage), 0);
	}
	print_message("    %zu cut points refused, e.g.: %s\n", cuts, fx->err);
	free(data);
}

/* A payload cut inside the gzip trailer (CRC-32, length), where the tar
 * itself may be complete: refused as well. */
static void test_truncated_trailer(void **state)
{
	struct fx *fx = *state;
	static const char *const files[] = {"test-1.cvd", "bytecode.cvd"};
	char cvd[PATH_MAX], in[PATH_MAX];

	join(in, sizeof(in), fx->base, "input.cvd");
	for (size_t i = 0; i < SE_ARRAY_SIZE(files); i++) {
		size_t len;
		char *data;
		int fd;

		join(cvd, sizeof(cvd), testdata(), files[i]);
		fd = open(cvd, O_RDONLY | O_CLOEXEC);
		assert_true(fd >= 0);
		data = read_fd(fd, &len);
		close(fd);
		for (size_t cut = 1; cut <= 8; cut++) {
			write_path(in, data, len - cut);
			fd = open(in, O_RDONLY | O_CLOEXEC);
			assert_refused(fx, run(fx, fd, 512), -EBADMSG, "corrupt or truncated");
			close(fd);
		}
		free(data);
	}
}

static void test_garbage(void **state)
{
	struct fx *fx = *state;
	char in[PATH_MAX], buf[512 + 4096];
	int fd;

	join(in, sizeof(in), fx->base, "input.cvd");
	fake_header(buf);
	fill_random(buf + 512, 4096, 7);
	write_path(in, buf, sizeof(buf));
	fd = open(in, O_RDONLY | O_CLOEXEC);
	assert_refused(fx, run(fx, fd, 512), -EBADMSG, "not a gzip tar");
	close(fd);
	/* Gzip magic, then garbage: a corrupt deflate stream. */
	memcpy(buf + 512, "\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03", 10);
	write_path(in, buf, sizeof(buf));
	fd = open(in, O_RDONLY | O_CLOEXEC);
	assert_refused(fx, run(fx, fd, 512), -EBADMSG, "");
	close(fd);
}

static void test_empty(void **state)
{
	struct fx *fx = *state;
	struct build b = {0};
	char in[PATH_MAX], hdr[512];
	int fd;

	/* A gzip tar without members. */
	refuse_file(fx, &b, -ENODATA, "no members");
	/* No payload at all after the header. */
	join(in, sizeof(in), fx->base, "input.cvd");
	fake_header(hdr);
	write_path(in, hdr, sizeof(hdr));
	fd = open(in, O_RDONLY | O_CLOEXEC);
	assert_refused(fx, run(fx, fd, 512), -ENODATA, "empty");
	close(fd);
}

/* ---- names ---- */

static void test_escaping_names(void **state)
{
	struct fx *fx = *state;
	char up[128], abs[128], updown[128];
	const struct {
		const char *name;
		const char *why;
	} cases[] = {
		{up, "'..' component"},
		{abs, "absolute path"},
		{updown, "'..' component"},
		{"..", "'..' component"},
		{"./test.hdb", "directory component"},
		{"sub/test.hdb", "directory component"},
		{"test.hdb/", "directory"},
	};

	snprintf(up, sizeof(up), "../%s", fx->tok);
	snprintf(abs, sizeof(abs), "/tmp/%s", fx->tok);
	snprintf(updown, sizeof(updown), "a/../../%s", fx->tok);
	for (size_t i = 0; i < SE_ARRAY_SIZE(cases); i++) {
		/* Good members first: the refusal must remove them. */
		const struct spec s[] = {
			{K_FILE, "COPYING", "c\n"},
			{K_FILE, "test.hdb", "44d88612fea8a8f36de82e1278abb02f:68:Eicar-Test\n"},
			{K_FILE, cases[i].name, "x\n"},
		};

		refuse_specs(fx, s, 3, -EPERM, cases[i].why);
		print_message("    %s\n", fx->err);
	}
}

static void test_bad_names(void **state)
{
	struct fx *fx = *state;
	char longname[128];
	const struct {
		const char *name;
		const char *why;
	} cases[] = {
		{".hidden.hdb", "starts with '.'"},
		{"bad name.hdb", "character outside"},
		{"bad\\name.hdb", "character outside"},
		{"bad\nname.hdb", "character outside"},
		{"evil.sh", "not a signature database type"},
		{"main.cvd", "not a signature database type"},
		{"hdb", "not a signature database type"},
	};

	for (size_t i = 0; i < SE_ARRAY_SIZE(cases); i++) {
		const struct spec s[] = {{K_FILE, "COPYING", "c\n"},
					 {K_FILE, cases[i].name, "x\n"}};

		refuse_specs(fx, s, 2, -EPERM, cases[i].why);
	}
	/* The reason names the member. */
	{
		const struct spec s[] = {{K_FILE, "COPYING", "c\n"}, {K_FILE, "evil.sh", "x\n"}};

		refuse_specs(fx, s, 2, -EPERM, "member 'evil.sh'");
		assert_string_equal(fx->res.offending, "evil.sh");
	}
	/* Longer than the tar name field libclamav reads (GNU long name). */
	memset(longname, 'a', 120);
	strcpy(longname + 120, ".hdb");
	{
		const struct spec s[] = {{K_FILE, longname, "x\n"}};
		struct build b = {.specs = s, .n = 1, .format = ARCHIVE_FORMAT_TAR_GNUTAR};

		refuse_file(fx, &b, -EPERM, "longer than 100");
	}
}

static void test_duplicates(void **state)
{
	struct fx *fx = *state;
	const struct spec s[] = {
		{K_FILE, "COPYING", "c\n"},
		{K_FILE, "test.hdb", "first\n"},
		{K_FILE, "test.ndb", "x\n"},
		{K_FILE, "test.hdb", "second\n"},
	};

	refuse_specs(fx, s, 4, -EPERM, "member 'test.hdb': duplicate");
}

static void test_pax_headers(void **state)
{
	struct fx *fx = *state;
	/* Sub-second mtimes make the pax writer emit an extended header. */
	const struct spec s[] = {{K_FILE, "test.hdb", "x\n", 0, NULL, 5}};
	struct build b = {.specs = s, .n = 1, .format = ARCHIVE_FORMAT_TAR_PAX_INTERCHANGE};

	refuse_file(fx, &b, -EPERM, "libclamav reads plain tar headers only");
}

/* ---- kinds ---- */

static void test_kinds(void **state)
{
	struct fx *fx = *state;
	char target[128];
	const struct {
		struct spec s;
		const char *why;
	} cases[] = {
		{{K_SYMLINK, "link.hdb", NULL, 0, target}, "symbolic link"},
		{{K_HARDLINK, "hard.hdb", NULL, 0, "COPYING"}, "hard link"},
		{{K_HARDLINK, "passwd.hdb", NULL, 0, "/etc/passwd"}, "hard link"},
		{{K_CHR, "null.hdb"}, "character device"},
		{{K_FIFO, "fifo.hdb"}, "FIFO"},
		{{K_DIR, "dir.hdb"}, "directory"},
	};

	snprintf(target, sizeof(target), "/tmp/%s", fx->tok);
	for (size_t i = 0; i < SE_ARRAY_SIZE(cases); i++) {
		/* A regular member of the same name after the link: were the
		 * link made, this would write through it. */
		const struct spec s[] = {
			{K_FILE, "COPYING", "c\n"},
			cases[i].s,
			{K_FILE, cases[i].s.name, "through the link\n"},
		};

		refuse_specs(fx, s, 3, -EPERM, cases[i].why);
	}
}

/* ---- limits ---- */

static void test_many_entries(void **state)
{
	struct fx *fx = *state;
	struct build b = {.many = 100000};
	pid_t pid;
	int fd = make_pipe(&b, &pid);
	int rc = run(fx, fd, 512);

	close(fd);
	reap(pid);
	assert_refused(fx, rc, -E2BIG, "more than 10000 members");
	assert_string_equal(fx->res.offending, "f010000.hdb");
	print_message("    100000 members: refused after %u in %llu ms\n", fx->res.entries,
		      (unsigned long long)fx->elapsed_ms);
	/* The time is that of creating and removing 10,000 files (0.5 s on
	 * an idle ext4 here, several times that while a fanotify listener
	 * watches the file system): only a guard against reading on. */
	assert_true(fx->elapsed_ms < 30000);
}

static bool only_test_hdb(const char *name, void *arg)
{
	(*(unsigned int *)arg)++;
	return !strcmp(name, "test.hdb");
}

/* With a listed filter, COPYING and the .info pass unasked, a listed member
 * is extracted, and the first unlisted one is refused before it exists. */
static void test_unlisted(void **state)
{
	struct fx *fx = *state;
	unsigned int asked = 0;
	const struct spec s[] = {
		{K_FILE, "COPYING", "c\n"},   {K_FILE, "test.info", "i\n"},
		{K_FILE, "test.hdb", "x\n"},  {K_FILE, "evil.ndb", "y\n"},
		{K_FILE, "later.hdb", "z\n"},
	};

	fx->lim.listed = only_test_hdb;
	fx->lim.listed_arg = &asked;
	refuse_specs(fx, s, SE_ARRAY_SIZE(s), -EPERM, "member 'evil.ndb': not listed in the .info");
	assert_string_equal(fx->res.offending, "evil.ndb");
	assert_int_equal(asked, 2); /* test.hdb, evil.ndb; never later.hdb */
	assert_int_equal(faccessat(fx->dirfd, "evil.ndb", F_OK, 0), -1);
}

/* A 10 GB member of zeros, declared as such: refused from its header. */
static void test_bomb_declared(void **state)
{
	struct fx *fx = *state;
	const struct spec s[] = {{K_FILE, "COPYING", "c\n"},
				 {K_ZEROS, "bomb.hdb", NULL, 10000000000ull}};
	struct build b = {.specs = s, .n = 2, .format = ARCHIVE_FORMAT_TAR_GNUTAR};
	pid_t pid;
	int fd = make_pipe(&b, &pid);
	int rc = run(fx, fd, 512);

	close(fd);
	reap(pid);
	assert_refused(fx, rc, -EFBIG, "member 'bomb.hdb': 10000000000 bytes, more than");
	assert_true(fx->res.total_bytes < 1 * MiB);
	assert_true(fx->elapsed_ms < 1000);
	print_message("    declared 10 GB: %llu ms, %llu bytes written\n",
		      (unsigned long long)fx->elapsed_ms, (unsigned long long)fx->res.total_bytes);
}

/* The same bomb with size limits above 10 GB: only the ratio rule, applied
 * while decompressing, can stop it. */
static void bomb_ratio(struct fx *fx, unsigned int ratio, uint64_t max_written)
{
	const struct spec s[] = {{K_FILE, "COPYING", "c\n"},
				 {K_ZEROS, "bomb.hdb", NULL, 10000000000ull}};
	struct build b = {.specs = s, .n = 2, .format = ARCHIVE_FORMAT_TAR_GNUTAR};
	pid_t pid;
	int fd, rc;

	fx->lim.max_member_bytes = 64 * GiB;
	fx->lim.max_total_bytes = 64 * GiB;
	fx->lim.max_ratio = ratio;
	fd = make_pipe(&b, &pid);
	rc = run(fx, fd, 512);
	close(fd);
	reap(pid);
	assert_refused(fx, rc, -EFBIG, "decompression bomb");
	assert_string_equal(fx->res.offending, "bomb.hdb");
	print_message("    ratio %4u: %llu ms, %llu bytes written from %llu compressed\n", ratio,
		      (unsigned long long)fx->elapsed_ms, (unsigned long long)fx->res.total_bytes,
		      (unsigned long long)fx->res.compressed_bytes);
	assert_true(fx->elapsed_ms < 1000);
	assert_true(fx->res.total_bytes < max_written);
}

static void test_bomb_ratio_default(void **state)
{
	bomb_ratio(*state, UNPACK_DEFAULT_MAX_RATIO, 4 * MiB);
}

static void test_bomb_ratio_1000(void **state)
{
	bomb_ratio(*state, 1000, 64 * MiB);
}

static void test_member_limit(void **state)
{
	struct fx *fx = *state;
	const struct spec s[] = {{K_FILE, "COPYING", "c\n"},
				 {K_RANDOM, "big.ndb", NULL, 600 * 1024}};

	fx->lim.max_member_bytes = 512 * 1024;
	refuse_specs(fx, s, 2, -EFBIG, "member 'big.ndb': 614400 bytes, more than the 524288");
}

static void test_total_limit(void **state)
{
	struct fx *fx = *state;
	const struct spec s[] = {
		{K_FILE, "COPYING", "c\n"},
		{K_RANDOM, "a.ndb", NULL, 600 * 1024},
		{K_RANDOM, "b.ndb", NULL, 600 * 1024},
	};

	fx->lim.max_total_bytes = 1 * MiB;
	refuse_specs(fx, s, 3, -EFBIG, "member 'b.ndb': total size over 1048576");
}

/* A sender that stalls after the first member: the budget covers waiting
 * for input too. */
static void test_time_budget(void **state)
{
	struct fx *fx = *state;
	const struct spec s[] = {{K_FILE, "COPYING", "c\n"}, {K_RANDOM, "a.ndb", NULL, 256 * 1024}};
	struct build b = {.specs = s, .n = 2, .stall_ms = 5000};
	pid_t pid;
	int fd, rc;

	fx->lim.time_budget_ms = 300;
	fd = make_pipe(&b, &pid);
	rc = run(fx, fd, 512);
	close(fd);
	reap(pid);
	assert_refused(fx, rc, -ETIMEDOUT, "time budget of 300 ms exceeded");
	print_message("    budget 300 ms: gave up after %llu ms, %u members had been extracted\n",
		      (unsigned long long)fx->elapsed_ms, fx->res.entries);
	assert_true(fx->elapsed_ms >= 300 && fx->elapsed_ms < 1500);
}

/* ---- the target directory ---- */

/* A file already there is not overwritten (O_EXCL), and what was
 * extracted before meeting it is removed. */
static void test_existing_file(void **state)
{
	struct fx *fx = *state;
	char cvd[PATH_MAX], path[PATH_MAX];
	size_t len;
	char *data;
	int fd, rc;

	join(path, sizeof(path), fx->stage, "test.ndb");
	write_path(path, "precious\n", 9);
	join(cvd, sizeof(cvd), testdata(), "test-1.cvd");
	fd = open(cvd, O_RDONLY | O_CLOEXEC);
	rc = run(fx, fd, 512);
	close(fd);
	assert_int_equal(rc, -EEXIST);
	assert_non_null(strstr(fx->err, "member 'test.ndb': exists already"));
	assert_int_equal(count_entries(fx->stage), 1);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	data = read_fd(fd, &len);
	close(fd);
	assert_int_equal(len, 9);
	assert_memory_equal(data, "precious\n", 9);
	free(data);
}

/* A symbolic link planted in the staging directory under a member's name
 * is neither followed nor replaced. */
static void test_planted_symlink(void **state)
{
	struct fx *fx = *state;
	char cvd[PATH_MAX], link[PATH_MAX], target[PATH_MAX], got[PATH_MAX];
	ssize_t n;
	int fd, rc;

	join(target, sizeof(target), "/tmp", fx->tok);
	join(link, sizeof(link), fx->stage, "test.ndb");
	assert_int_equal(symlink(target, link), 0);
	join(cvd, sizeof(cvd), testdata(), "test-1.cvd");
	fd = open(cvd, O_RDONLY | O_CLOEXEC);
	rc = run(fx, fd, 512);
	close(fd);
	assert_int_equal(rc, -EEXIST);
	assert_false(exists(target));
	n = readlink(link, got, sizeof(got) - 1);
	assert_true(n > 0);
	got[n] = '\0';
	assert_string_equal(got, target);
	assert_int_equal(count_entries(fx->stage), 1);
}

static void test_bad_arguments(void **state)
{
	struct fx *fx = *state;
	struct unpack_limits lim = fx->lim;
	char cvd[PATH_MAX];
	int fd, filefd;

	join(cvd, sizeof(cvd), testdata(), "test-1.cvd");
	fd = open(cvd, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(unpack_fd(fd, 512, fx->dirfd, NULL, NULL, NULL), -EINVAL);
	assert_int_equal(unpack_fd(-1, 512, fx->dirfd, &lim, NULL, fx->err), -EINVAL);
	assert_int_equal(unpack_fd(fd, -1, fx->dirfd, &lim, NULL, fx->err), -EINVAL);
	lim.max_ratio = 0;
	assert_int_equal(unpack_fd(fd, 512, fx->dirfd, &lim, NULL, fx->err), -EINVAL);
	/* The target must be a directory. */
	filefd = dup(fd);
	assert_int_equal(unpack_fd(fd, 512, filefd, &fx->lim, NULL, fx->err), -ENOTDIR);
	close(filefd);
	/* Offset past the end: nothing to read. */
	assert_int_equal(unpack_fd(fd, 1 << 20, fx->dirfd, &fx->lim, &fx->res, fx->err), -ENODATA);
	/* res and err may be NULL. */
	assert_int_equal(unpack_fd(fd, 512, fx->dirfd, &fx->lim, NULL, NULL), 0);
	assert_int_equal(count_entries(fx->stage), 4);
	close(fd);
}

static void test_known_type(void **state)
{
	static const char *const yes[] = {
		"COPYING", "main.info", "daily.cld.info", "x.db",	"x.hdb",   "x.hdu",
		"x.hsb",   "x.hsu",	"x.mdb",	  "x.mdu",	"x.msb",   "x.msu",
		"x.imp",   "x.fp",	"x.sfp",	  "x.ign",	"x.ign2",  "x.ndb",
		"x.ndu",   "x.sdb",	"x.ldb",	  "x.ldu",	"x.idb",   "x.cdb",
		"x.crb",   "x.cat",	"x.cbc",	  "x.ftm",	"x.cfg",   "x.pdb",
		"x.gdb",   "x.wdb",	"x.zmd",	  "x.rmd",	"x.ioc",   "x.pwdb",
		"x.yar",   "x.yara",	"DAILY.HDB",	  "767944.cbc", "a.b.ldb",
	};
	static const char *const no[] = {
		"",	"hdb",	  ".hdb",     "x.cvd",	 "x.cld",   "x.cud",   "x.sign",
		"x.sh", "x.hdb~", "x.hdb.sh", "copying", "LICENSE", "x.info2", "xhdb",
	};

	(void)state;
	for (size_t i = 0; i < SE_ARRAY_SIZE(yes); i++)
		if (!unpack_known_type(yes[i]))
			fail_msg("%s should be known", yes[i]);
	for (size_t i = 0; i < SE_ARRAY_SIZE(no); i++)
		if (unpack_known_type(no[i]))
			fail_msg("%s should not be known", no[i]);
	assert_false(unpack_known_type(NULL));
}

/* unpack_peek: the .info of a real container, read without writing; a
 * member that is not among the first few, a bomb before it, a link before
 * it and an absent member are refused. */
static void test_peek(void **state)
{
	struct fx *fx = *state;
	char path[PATH_MAX], *out = NULL;
	size_t len = 0;
	int fd, rc;

	join(path, sizeof(path), testdata(), "test-3.cvd");
	fd = open(path, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	rc = unpack_peek(fd, 512, ".info", &fx->lim, &out, &len, fx->err);
	close(fd);
	if (rc)
		fail_msg("unpack_peek: %s", fx->err);
	assert_int_equal(strncmp(out, "ClamAV-VDB:22 Jun 2021 20-40 -0400:3:11:81:X:X:", 46), 0);
	assert_int_equal(len, strlen(out));
	assert_non_null(strstr(out, "\ntest.ndb:240:"));
	free(out);
	assert_int_equal(count_entries(fx->stage), 0);

	{
		const struct spec s[] = {{K_FILE, "COPYING", "c\n"},
					 {K_FILE, "a.hdb", "x\n"},
					 {K_FILE, "b.hdb", "x\n"},
					 {K_FILE, "c.hdb", "x\n"},
					 {K_FILE, "t.info", "late\n"}};
		struct build b = {.specs = s, .n = 5};

		fd = make_file(fx, &b);
		rc = unpack_peek(fd, 512, ".info", &fx->lim, &out, &len, fx->err);
		assert_int_equal(rc, -ENOENT);
		assert_non_null(strstr(fx->err, "among the first 4"));
		assert_null(out);
		rc = unpack_peek(fd, 512, ".ldb", &fx->lim, &out, &len, fx->err);
		assert_int_equal(rc, -ENOENT);
		rc = unpack_peek(fd, 512, "b.hdb", &fx->lim, &out, &len, fx->err);
		assert_int_equal(rc, 0);
		assert_string_equal(out, "x\n");
		free(out);
		close(fd);
	}
	{
		const struct spec s[] = {{K_ZEROS, "COPYING", NULL, 10000000000ull},
					 {K_FILE, "t.info", "x\n"}};
		struct build b = {.specs = s, .n = 2, .format = ARCHIVE_FORMAT_TAR_GNUTAR};
		pid_t pid;
		uint64_t t0 = util_now_us();

		fd = make_pipe(&b, &pid);
		rc = unpack_peek(fd, 512, ".info", &fx->lim, &out, &len, fx->err);
		close(fd);
		reap(pid);
		assert_int_equal(rc, -EFBIG);
		assert_non_null(strstr(fx->err, "COPYING"));
		assert_true(util_now_us() - t0 < 1000000);
	}
	{
		const struct spec s[] = {{K_SYMLINK, "COPYING", NULL, 0, "/etc/passwd"},
					 {K_FILE, "t.info", "x\n"}};
		struct build b = {.specs = s, .n = 2};

		fd = make_file(fx, &b);
		rc = unpack_peek(fd, 512, ".info", &fx->lim, &out, &len, fx->err);
		close(fd);
		assert_int_equal(rc, -EPERM);
	}
	assert_int_equal(count_entries(fx->stage), 0);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_real_cvds),
		T(test_real_cvd_pipe),
		T(test_plain_tar_cld),
		T(test_plain_tar_without_copying),
		T(test_double_gzip),
		T(test_truncated_gzip),
		T(test_truncated_trailer),
		T(test_garbage),
		T(test_empty),
		T(test_escaping_names),
		T(test_bad_names),
		T(test_duplicates),
		T(test_pax_headers),
		T(test_kinds),
		T(test_many_entries),
		T(test_unlisted),
		T(test_bomb_declared),
		T(test_bomb_ratio_default),
		T(test_bomb_ratio_1000),
		T(test_member_limit),
		T(test_total_limit),
		T(test_time_budget),
		T(test_existing_file),
		T(test_planted_symlink),
		T(test_bad_arguments),
		T(test_known_type),
		T(test_peek),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
