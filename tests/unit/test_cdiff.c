/* test_cdiff: unit tests of updater/cdiff.c (cmocka).
 *
 * Good input: the genuine test-2 ... test-6.cdiff of the shared
 * testdata/clamav, applied to test-1.cvd unpacked with defs/unpack, must
 * give test-6.cvd's members byte for byte; the .cld written from that must
 * verify with libclamav (cl_cvdverify, cl_load) and authenticate as
 * "legacy" with defs/auth. Bad input: the real files corrupted, and
 * scripts made here (gzip'd with zlib, behind a header and a dummy
 * signature). Each test works in a private tree /tmp/test_cdiff.XXXXXX:
 * "db" is the directory patched (the dirfd), "ref" a reference unpack;
 * after a refusal "db" must equal "ref", hold no temporary file, and
 * nothing may have appeared beside it. */
#include "updater/cdiff.h"

#include "common/util.h"
#include "defs/auth.h"
#include "defs/cvd.h"
#include "defs/unpack.h"
#include "tests/unit/cvd_fixture.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <clamav.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define DUMMY_DSIG "abcdefghijABCDEFGHIJ0123456789+/"

struct fx {
	char base[64];	 /* private tree */
	char db[128];	 /* <base>/db: the directory patched */
	char ref[128];	 /* <base>/ref: what db must look like */
	char cdiff[128]; /* <base>/x.cdiff: made by make_cdiff */
	int dirfd;	 /* db */
	struct cdiff_stats st;
	char err[CDIFF_ERR_LEN];
};

/* ---- helpers ---- */

static void path_in(char *out, size_t n, const char *dir, const char *name)
{
	assert_true((size_t)snprintf(out, n, "%s/%s", dir, name) < n);
}

static void write_at(int dirfd, const char *name, const void *data, size_t len)
{
	int fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	assert_true(fd >= 0);
	assert_int_equal(util_write_all(fd, data, len), 0);
	close(fd);
}

static void write_path(const char *path, const void *data, size_t len)
{
	write_at(AT_FDCWD, path, data, len);
}

/* Content of dirfd/name, NUL-terminated, or NULL when missing. */
static char *read_at(int dirfd, const char *name)
{
	int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	struct stat st;
	ssize_t n;
	char *buf;

	if (fd < 0 && errno == ENOENT)
		return NULL;
	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	buf = malloc((size_t)st.st_size + 1);
	assert_non_null(buf);
	n = util_read_all(fd, buf, (size_t)st.st_size);
	assert_int_equal(n, st.st_size);
	buf[n] = '\0';
	close(fd);
	return buf;
}

static void assert_content(int dirfd, const char *name, const char *want)
{
	char *got = read_at(dirfd, name);

	if (!want && got)
		fail_msg("%s exists: '%s'", name, got);
	if (want && !got)
		fail_msg("%s is missing", name);
	if (want && strcmp(got, want))
		fail_msg("%s is '%s', want '%s'", name, got, want);
	free(got);
}

static void unpack_cvd(const char *cvd, const char *dir)
{
	char path[700], uerr[UNPACK_ERR_LEN];
	struct unpack_limits lim;
	int fd, dirfd;

	unpack_limits_default(&lim);
	path_in(path, sizeof(path), testdata, cvd);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(dirfd >= 0);
	if (unpack_fd(fd, CVD_HEADER_LEN, dirfd, &lim, NULL, uerr))
		fail_msg("unpack %s: %s", cvd, uerr);
	close(dirfd);
	close(fd);
}

/* db emptied and filled with cvd's members again. */
static void reset_db(struct fx *fx, const char *cvd)
{
	close(fx->dirfd);
	assert_int_equal(util_rm_rf(fx->db), 0);
	assert_int_equal(mkdir(fx->db, 0700), 0);
	fx->dirfd = open(fx->db, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(fx->dirfd >= 0);
	unpack_cvd(cvd, fx->db);
}

static int no_dots(const struct dirent *d)
{
	return strcmp(d->d_name, ".") && strcmp(d->d_name, "..");
}

/* Same file names, same bytes. */
static void assert_dirs_equal(const char *a, const char *b)
{
	struct dirent **la, **lb;
	int na = scandir(a, &la, no_dots, alphasort), nb = scandir(b, &lb, no_dots, alphasort);
	int da = open(a, O_RDONLY | O_DIRECTORY), db = open(b, O_RDONLY | O_DIRECTORY);

	assert_true(na >= 0 && nb >= 0 && da >= 0 && db >= 0);
	for (int i = 0; i < na || i < nb; i++) {
		const char *x = i < na ? la[i]->d_name : "(none)",
			   *y = i < nb ? lb[i]->d_name : "(none)";
		char *ca, *cb;

		if (strcmp(x, y))
			fail_msg("%s has %s where %s has %s", a, x, b, y);
		ca = read_at(da, x);
		cb = read_at(db, y);
		assert_non_null(ca);
		assert_non_null(cb);
		if (strcmp(ca, cb))
			fail_msg("%s differs between %s and %s", x, a, b);
		free(ca);
		free(cb);
	}
	for (int i = 0; i < na; i++)
		free(la[i]);
	for (int i = 0; i < nb; i++)
		free(lb[i]);
	free(la);
	free(lb);
	close(da);
	close(db);
}

static int count_entries(const char *dir)
{
	struct dirent **l;
	int n = scandir(dir, &l, no_dots, alphasort);

	assert_true(n >= 0);
	for (int i = 0; i < n; i++) {
		/* a temporary file of cdiff.c left behind */
		if (l[i]->d_name[0] == '.')
			fail_msg("%s/%s left behind", dir, l[i]->d_name);
		free(l[i]);
	}
	free(l);
	return n;
}

/* A .cdiff at path: header (script length + delta), the gzip'd script,
 * ':' and a dummy signature. */
static void make_cdiff_len(const char *path, uint32_t version, const char *script, size_t slen,
			   long delta)
{
	uLongf gzcap = compressBound((uLong)slen) + 64;
	unsigned char *out = malloc(gzcap + 128);
	z_stream z;
	int n;

	assert_non_null(out);
	n = snprintf((char *)out, 128, "ClamAV-Diff:%u:%ld:", version, (long)slen + delta);
	memset(&z, 0, sizeof(z));
	assert_int_equal(deflateInit2(&z, 9, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY),
			 Z_OK);
	z.next_in = (Bytef *)(uintptr_t)script;
	z.avail_in = (uInt)slen;
	z.next_out = out + n;
	z.avail_out = (uInt)gzcap;
	assert_int_equal(deflate(&z, Z_FINISH), Z_STREAM_END);
	n += (int)z.total_out;
	deflateEnd(&z);
	out[n++] = ':';
	memcpy(out + n, DUMMY_DSIG, strlen(DUMMY_DSIG));
	n += (int)strlen(DUMMY_DSIG);
	write_path(path, out, (size_t)n);
	free(out);
}

static int apply_path(struct fx *fx, const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC), rc;

	assert_true(fd >= 0);
	fx->err[0] = '\0';
	rc = cdiff_apply(fd, fx->dirfd, "test", &fx->st, fx->err);
	close(fd);
	assert_true(strlen(fx->err) < CDIFF_ERR_LEN);
	assert_null(strchr(fx->err, '\n'));
	return rc;
}

static int apply_data(struct fx *fx, const char *name)
{
	char path[700];

	path_in(path, sizeof(path), testdata, name);
	return apply_path(fx, path);
}

static int apply_script(struct fx *fx, const char *script)
{
	int rc;

	make_cdiff_len(fx->cdiff, 7, script, strlen(script), 0);
	rc = apply_path(fx, fx->cdiff);
	assert_int_equal(unlink(fx->cdiff), 0);
	return rc;
}

/* Apply raw .cdiff bytes. */
static int apply_bytes(struct fx *fx, const void *data, size_t len)
{
	int rc;

	write_path(fx->cdiff, data, len);
	rc = apply_path(fx, fx->cdiff);
	assert_int_equal(unlink(fx->cdiff), 0);
	return rc;
}

static void assert_refused(const struct fx *fx, int rc, int want, const char *what)
{
	if (rc != want || !strstr(fx->err, what))
		fail_msg("rc %d (want %d), err '%s' (want '%s')", rc, want, fx->err, what);
}

/* db patched from test-1 to test-6 by the real cdiffs. */
static void chain(struct fx *fx)
{
	char name[32];

	unpack_cvd("test-1.cvd", fx->db);
	for (uint32_t v = 2; v <= 6; v++) {
		snprintf(name, sizeof(name), "test-%u.cdiff", v);
		if (apply_data(fx, name))
			fail_msg("%s: %s", name, fx->err);
		assert_int_equal(fx->st.version, v);
		assert_true(fx->st.commands > 0);
	}
}

static unsigned int load_sigs(const char *path)
{
	struct cl_engine *e = cl_engine_new();
	unsigned int sigs = 0;

	assert_non_null(e);
	assert_int_equal(cl_load(path, e, &sigs, CL_DB_STDOPT | CL_DB_PUA), CL_SUCCESS);
	cl_engine_free(e);
	return sigs;
}

static int setup(void **state)
{
	struct fx *fx = calloc(1, sizeof(*fx));

	if (!fx)
		return -1;
	snprintf(fx->base, sizeof(fx->base), "/tmp/test_cdiff.XXXXXX");
	if (!mkdtemp(fx->base))
		return -1;
	snprintf(fx->db, sizeof(fx->db), "%s/db", fx->base);
	snprintf(fx->ref, sizeof(fx->ref), "%s/ref", fx->base);
	snprintf(fx->cdiff, sizeof(fx->cdiff), "%s/x.cdiff", fx->base);
	if (mkdir(fx->db, 0700) || mkdir(fx->ref, 0700))
		return -1;
	fx->dirfd = open(fx->db, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	*state = fx;
	return fx->dirfd < 0 ? -1 : 0;
}

static int teardown(void **state)
{
	struct fx *fx = *state;

	close(fx->dirfd);
	util_rm_rf(fx->base);
	free(fx);
	return 0;
}

/* ---- tests ---- */

/* test-1 + test-2 ... test-6.cdiff = test-6, every member byte for byte. */
static void test_chain(void **state)
{
	struct fx *fx = *state;
	char path[700], err[CDIFF_ERR_LEN];
	uint32_t v;

	NEED_TESTDATA();
	for (uint32_t i = 2; i <= 6; i++) {
		snprintf(path, sizeof(path), "%s/test-%u.cdiff", testdata, i);
		int fd = open(path, O_RDONLY | O_CLOEXEC);

		assert_true(fd >= 0);
		assert_int_equal(cdiff_read_header(fd, &v, err), 0);
		assert_int_equal(v, i);
		assert_int_equal(lseek(fd, 0, SEEK_CUR), 0);
		close(fd);
	}
	chain(fx);
	unpack_cvd("test-6.cvd", fx->ref);
	assert_dirs_equal(fx->db, fx->ref);
	assert_int_equal(count_entries(fx->db), 20); /* COPYING, .info, 18 members */
	assert_int_equal(count_entries(fx->base), 2);
}

/* The .cld of the result: header as test-6.cvd's, libclamav accepts it,
 * auth says legacy, and it unpacks to the same members. */
static void test_cld(void **state)
{
	struct fx *fx = *state;
	char out[700], path[700], aerr[AUTH_ERR_LEN], cerr[CVD_ERR_LEN];
	struct auth_policy pol = {.flevel = cl_retflevel()};
	struct cvd_header h, h6, hf;
	struct auth_result res;
	size_t len, len6;
	char *buf, *cvd6;
	int fd;

	NEED_TESTDATA();
	chain(fx);
	snprintf(out, sizeof(out), "%s/out", fx->base);
	assert_int_equal(mkdir(out, 0700), 0);
	path_in(path, sizeof(path), out, "test.cld");
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	if (cld_write(fx->dirfd, "test", fd, &h, fx->err))
		fail_msg("cld_write: %s", fx->err);
	assert_int_equal(close(fd), 0); /* still ours: libarchive did not close it */

	buf = read_all(path, &len);
	assert_int_equal(cvd_parse_header(buf, len, &hf, cerr), 0);
	assert_memory_equal(buf + CVD_HEADER_LEN, "COPYING", 7); /* plain tar */
	cvd6 = read_data("test-6.cvd", &len6);
	assert_int_equal(cvd_parse_header(cvd6, len6, &h6, cerr), 0);
	assert_int_equal(hf.version, 6);
	assert_int_equal(hf.sigs, 14);
	assert_int_equal(h.version, 6);
	assert_int_equal(h.sigs, h6.sigs);
	assert_int_equal(hf.flevel, h6.flevel);
	assert_int_equal(hf.stime, h6.stime);
	assert_string_equal(hf.time, h6.time);
	assert_string_equal(hf.builder, h6.builder);
	assert_false(hf.has_md5);
	assert_false(hf.has_dsig);
	free(cvd6);
	free(buf);

	/* no test.cvd sibling in out/ */
	assert_int_equal(cl_cvdverify(path), CL_SUCCESS);
	path_in(out, sizeof(out), testdata, "test-6.cvd");
	assert_int_equal(load_sigs(path), load_sigs(out));
	assert_int_equal(load_sigs(path), 14);
	if (auth_check(path, NULL, &pol, &res, aerr))
		fail_msg("auth_check: %s", aerr);
	assert_int_equal(res.method, AUTH_LEGACY);

	/* what a .cld unpacks to: the members it was written from */
	{
		struct unpack_limits lim;
		char uerr[UNPACK_ERR_LEN];
		struct unpack_result ur;
		int cfd = open(path, O_RDONLY | O_CLOEXEC);
		int rfd = open(fx->ref, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

		unpack_limits_default(&lim);
		assert_true(cfd >= 0 && rfd >= 0);
		if (unpack_fd(cfd, CVD_HEADER_LEN, rfd, &lim, &ur, uerr))
			fail_msg("unpack .cld: %s", uerr);
		assert_false(ur.gzip);
		close(cfd);
		close(rfd);
		assert_dirs_equal(fx->db, fx->ref);
	}

	/* without COPYING the payload is gzip'd, which libclamav reads too */
	assert_int_equal(unlinkat(fx->dirfd, "COPYING", 0), 0);
	assert_int_equal(unlink(path), 0);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	if (cld_write(fx->dirfd, "test", fd, NULL, fx->err))
		fail_msg("cld_write: %s", fx->err);
	close(fd);
	buf = read_all(path, &len);
	assert_memory_equal(buf + CVD_HEADER_LEN, "\x1f\x8b", 2);
	free(buf);
	assert_int_equal(cl_cvdverify(path), CL_SUCCESS);
	assert_int_equal(load_sigs(path), 14);
}

static int cld_to(struct fx *fx, const char *name)
{
	char path[700];
	int fd, rc;

	path_in(path, sizeof(path), fx->base, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	fx->err[0] = '\0';
	rc = cld_write(fx->dirfd, "test", fd, NULL, fx->err);
	close(fd);
	assert_null(strchr(fx->err, '\n'));
	return rc;
}

/* What cld_write refuses: what the validator would. */
static void test_cld_refusals(void **state)
{
	struct fx *fx = *state;
	char *ndb, path[700];

	NEED_TESTDATA();
	unpack_cvd("test-2.cvd", fx->db);
	assert_int_equal(cld_to(fx, "ok.cld"), 0);
	/* a file the .info does not list */
	write_at(fx->dirfd, "test.hdb", "x\n", 2);
	assert_refused(fx, cld_to(fx, "a.cld"), -EBADMSG, "test.hdb: not listed in test.info");
	assert_int_equal(unlinkat(fx->dirfd, "test.hdb", 0), 0);
	assert_int_equal(mkdirat(fx->dirfd, "test.ndu", 0700), 0);
	assert_refused(fx, cld_to(fx, "a.cld"), -EBADMSG, "test.ndu");
	assert_int_equal(unlinkat(fx->dirfd, "test.ndu", AT_REMOVEDIR), 0);
	/* a listed member changed: written as it is, libclamav refuses it */
	ndb = read_at(fx->dirfd, "test.ndb");
	assert_non_null(ndb);
	ndb[0] ^= 1;
	write_at(fx->dirfd, "test.ndb", ndb, strlen(ndb));
	free(ndb);
	assert_int_equal(cld_to(fx, "a.cld"), 0);
	path_in(path, sizeof(path), fx->base, "a.cld");
	assert_int_not_equal(cl_cvdverify(path), CL_SUCCESS);
	assert_int_equal(unlink(path), 0);
	/* a listed member missing, or not a regular file */
	assert_int_equal(unlinkat(fx->dirfd, "test.ndb", 0), 0);
	assert_int_equal(symlinkat("test.ldb", fx->dirfd, "test.ndb"), 0);
	assert_refused(fx, cld_to(fx, "a.cld"), -EBADMSG, "test.ndb: not a regular file");
	assert_int_equal(unlinkat(fx->dirfd, "test.ndb", 0), 0);
	assert_refused(fx, cld_to(fx, "a.cld"), -ENOENT,
		       "test.ndb, listed in test.info, is missing");
	/* no .info, or one that is not a .cld's (no DSIG) */
	write_at(fx->dirfd, "test.info", "ClamAV-VDB:x\n", 13);
	assert_refused(fx, cld_to(fx, "a.cld"), -EBADMSG, "test.info: ");
	assert_int_equal(unlinkat(fx->dirfd, "test.info", 0), 0);
	assert_refused(fx, cld_to(fx, "a.cld"), -ENOENT, "test.info");
	assert_int_equal(cld_write(fx->dirfd, "../x", 1, NULL, fx->err), -EINVAL);
	assert_int_equal(cld_write(-1, "test", 1, NULL, fx->err), -EINVAL);
}

/* A real cdiff on the wrong base, and twice. */
static void test_wrong_base(void **state)
{
	struct fx *fx = *state;

	NEED_TESTDATA();
	unpack_cvd("test-1.cvd", fx->db);
	unpack_cvd("test-1.cvd", fx->ref);
	assert_refused(fx, apply_data(fx, "test-3.cdiff"), -EBADMSG,
		       "cdiff line 5: XCHG: line 4 of test.info does not start with "
		       "'DSIG:SIpZwpONrJh'");
	assert_dirs_equal(fx->db, fx->ref);
	assert_int_equal(apply_data(fx, "test-2.cdiff"), 0);
	assert_refused(fx, apply_data(fx, "test-2.cdiff"), -EBADMSG, "XCHG: line 4 of test.info");
	assert_int_equal(count_entries(fx->db), 4);
	assert_int_equal(count_entries(fx->base), 2);
}

/* The file around the script: header, gzip data, signature. */
static void test_corrupt_file(void **state)
{
	struct fx *fx = *state;
	static const struct {
		const char *hdr;
		int rc;
		const char *what;
	} headers[] = {
		{"ClamAV-Dif:2:479:", -EBADMSG, "does not start with 'ClamAV-Diff:'"},
		{"ClamAV-Diff:x:479:", -EBADMSG, "the version is not"},
		{"ClamAV-Diff:2:479;", -EBADMSG, "the script length is not"},
		{"ClamAV-Diff:0:479:", -EBADMSG, "version 0"},
		{"ClamAV-Diff:02:479:", -EBADMSG, "the version is not"},
		{"ClamAV-Diff:-2:479:", -EBADMSG, "the version is not"},
		{"ClamAV-Diff:2:4294967296:", -EBADMSG, "the script length is not"},
		{"ClamAV-Diff:2:480:", -EBADMSG, "the script has 479 bytes, the header says 480"},
		{"ClamAV-Diff:2:478:", -EBADMSG, "the script has 479 bytes, the header says 478"},
		{"ClamAV-Diff:2:400:", -EBADMSG, "longer than the 400 bytes the header says"},
		{"ClamAV-Diff:2:67108865:", -EFBIG, "more than"},
	};
	char *data, *bad, err[CDIFF_ERR_LEN];
	size_t len, colon, hlen = strlen("ClamAV-Diff:2:479:");
	uint32_t v;
	int fd;

	NEED_TESTDATA();
	unpack_cvd("test-1.cvd", fx->db);
	unpack_cvd("test-1.cvd", fx->ref);
	data = read_data("test-2.cdiff", &len);
	bad = malloc(len + 64);
	assert_non_null(bad);
	assert_memory_equal(data, "ClamAV-Diff:2:479:", hlen);
	colon = (size_t)((const char *)memrchr(data, ':', len) - data);
	assert_int_equal(len - colon - 1, 341); /* the signature */

	for (size_t i = 0; i < ARRAY_SIZE(headers); i++) {
		size_t hl = strlen(headers[i].hdr);

		memcpy(bad, headers[i].hdr, hl);
		memcpy(bad + hl, data + hlen, len - hlen);
		assert_refused(fx, apply_bytes(fx, bad, hl + len - hlen), headers[i].rc,
			       headers[i].what);
		write_path(fx->cdiff, bad, hl + len - hlen);
		fd = open(fx->cdiff, O_RDONLY | O_CLOEXEC);
		assert_true(fd >= 0);
		/* the header alone: only the first 7 are malformed */
		assert_int_equal(cdiff_read_header(fd, &v, err) == 0, i >= 7);
		close(fd);
	}
	/* a flipped byte in the deflate data, in the CRC-32 */
	memcpy(bad, data, len);
	bad[hlen + 100] ^= 0x10;
	assert_refused(fx, apply_bytes(fx, bad, len), -EBADMSG, "cdiff: bad gzip data");
	memcpy(bad, data, len);
	bad[colon - 6] ^= 0x01;
	assert_refused(fx, apply_bytes(fx, bad, len), -EBADMSG,
		       "cdiff: bad gzip data: incorrect data check");
	/* truncated: in the signature (still looks like one: accepted, the
	 * .info DSIG decides later), before it, in the gzip data, in the
	 * header, empty */
	assert_int_equal(apply_bytes(fx, data, len - 100), 0);
	reset_db(fx, "test-1.cvd");
	assert_refused(fx, apply_bytes(fx, data, colon + 1), -EBADMSG, "no ':<signature>'");
	assert_refused(fx, apply_bytes(fx, data, colon), -EBADMSG, "cdiff: ");
	assert_refused(fx, apply_bytes(fx, data, colon - 100), -EBADMSG, "cdiff: ");
	memcpy(bad, data, colon - 100);
	memcpy(bad + colon - 100, data + colon, len - colon);
	assert_refused(fx, apply_bytes(fx, bad, len - 100), -EBADMSG, "cdiff: gzip data truncated");
	assert_refused(fx, apply_bytes(fx, data, hlen + 2), -EBADMSG, "cdiff: ");
	assert_refused(fx, apply_bytes(fx, data, 10), -EBADMSG, "ClamAV-Diff:");
	assert_refused(fx, apply_bytes(fx, data, 0), -EBADMSG, "ClamAV-Diff:");
	/* bytes between the gzip data and the ':', a bad signature byte */
	{
		memcpy(bad, data, colon);
		memcpy(bad + colon, "AB", 2);
		memcpy(bad + colon + 2, data + colon, len - colon);
		assert_refused(fx, apply_bytes(fx, bad, len + 2), -EBADMSG,
			       "2 bytes between the gzip data and the signature");
		memcpy(bad, data, len);
		bad[len - 1] = '!';
		assert_refused(fx, apply_bytes(fx, bad, len), -EBADMSG,
			       "byte 0x21 in the signature");
		memcpy(bad, data, len);
		bad[len] = '\n';
		assert_refused(fx, apply_bytes(fx, bad, len + 1), -EBADMSG, "byte 0x0a");
	}
	assert_dirs_equal(fx->db, fx->ref);
	assert_int_equal(count_entries(fx->base), 2);
	/* nothing but a regular file */
	fd = open(fx->db, O_RDONLY | O_DIRECTORY);
	assert_int_equal(cdiff_apply(fd, fx->dirfd, "test", NULL, fx->err), -EINVAL);
	assert_int_equal(cdiff_apply(fd, fx->dirfd, "../test", NULL, fx->err), -EINVAL);
	close(fd);
	free(bad);
	free(data);
}

/* Scripts refused: each leaves db as it was and nothing beside it. */
static void test_script_refusals(void **state)
{
	struct fx *fx = *state;
	static const struct {
		const char *script;
		int rc;
		const char *what;
	} cases[] = {
		{"OPEN ../x\nADD a\nCLOSE\n", -EPERM, "cdiff line 1: OPEN: '../x' is not a plain"},
		{"OPEN /etc/x\nADD a\nCLOSE\n", -EPERM, "'/etc/x' is not a plain"},
		{"OPEN test.hdb/../../x\nADD a\nCLOSE\n", -EPERM, "is not a plain"},
		{"OPEN other.hdb\nADD a\nCLOSE\n", -EPERM,
		 "'other.hdb' is not a file of database test"},
		{"OPEN testx.hdb\nADD a\nCLOSE\n", -EPERM, "not a file of database test"},
		{"OPEN test.sh\nADD a\nCLOSE\n", -EPERM, "'test.sh' is not a database file type"},
		{"OPEN .test.hdb\nADD a\nCLOSE\n", -EPERM, "is not a plain"},
		{"OPEN test hdb\nADD a\nCLOSE\n", -EPERM, "is not a plain"},
		{"OPEN\n", -EPERM, "OPEN: '' is not a plain"},
		{"UNLINK ../../etc/passwd\n", -EPERM, "UNLINK: '../../etc/passwd'"},
		{"UNLINK COPYING/x\n", -EPERM, "UNLINK: 'COPYING/x'"},
		{"MOVE test.ndb ../y 1 a 1 a\n", -EPERM, "MOVE: '../y'"},
		{"MOVE /tmp/z test.ndb 1 a 1 a\n", -EPERM, "MOVE: '/tmp/z'"},
		{"OPEN test.ndb\nDEL 99 x\nCLOSE\n", -EBADMSG,
		 "cdiff line 2: DEL: line 99 is past the end of test.ndb (2 lines)"},
		{"OPEN test.ndb\nXCHG 1 nomatch new line\nCLOSE\n", -EBADMSG,
		 "cdiff line 2: XCHG: line 1 of test.ndb does not start with 'nomatch'"},
		{"OPEN test.ndb\nADD x\nDEL 2 Zz\nCLOSE\n", -EBADMSG,
		 "cdiff line 3: DEL: line 2 of test.ndb does not start with 'Zz'"},
		{"ADD x\n", -EBADMSG, "cdiff line 1: ADD: no file open"},
		{"DEL 1 x\n", -EBADMSG, "DEL: no file open"},
		{"XCHG 1 x y\n", -EBADMSG, "XCHG: no file open"},
		{"CLOSE\n", -EBADMSG, "cdiff line 1: CLOSE: no file open"},
		{"# c\n\nFOO bar\n", -EBADMSG, "cdiff line 3: unknown command 'FOO'"},
		{"open test.ndb\n", -EBADMSG, "unknown command 'open'"},
		{" OPEN test.ndb\n", -EBADMSG, "unknown command ''"},
		{"OPEN test.ndb\nADD x\n", -EBADMSG,
		 "cdiff line 1: OPEN: test.ndb is never closed"},
		{"OPEN test.ndb\nOPEN test.ldb\n", -EBADMSG,
		 "cdiff line 2: OPEN: test.ndb is still open (OPEN at cdiff line 1)"},
		{"OPEN test.ndb\nMOVE test.ndb test.ldb 1 a 1 a\n", -EBADMSG,
		 "MOVE: test.ndb is still"},
		{"OPEN test.ndb\nUNLINK test.ldb\n", -EBADMSG, "UNLINK: test.ndb is still open"},
		{"OPEN test.ndb\nADD\nCLOSE\n", -EBADMSG, "ADD: nothing to add"},
		{"OPEN test.ndb\nDEL x y\nCLOSE\n", -EBADMSG, "DEL: 'x' is not a line number"},
		{"OPEN test.ndb\nDEL 0 y\nCLOSE\n", -EBADMSG, "DEL: '0' is not a line number"},
		{"OPEN test.ndb\nDEL -1 y\nCLOSE\n", -EBADMSG, "'-1' is not a line number"},
		{"OPEN test.ndb\nDEL 4294967296 y\nCLOSE\n", -EBADMSG, "is not a line number"},
		{"OPEN test.ndb\nDEL 1\nCLOSE\n", -EBADMSG, "DEL: no prefix"},
		{"OPEN test.ndb\nXCHG 1 W\nCLOSE\n", -EBADMSG, "XCHG: expected XCHG"},
		{"OPEN test.ndb\nXCHG 1 W \nCLOSE\n", -EBADMSG, "XCHG: expected XCHG"},
		{"OPEN test.ndb\nXCHG 2 W x\nDEL 2 W\nCLOSE\n", -EBADMSG,
		 "cdiff line 3: DEL: line 2 of test.ndb is edited twice (also at cdiff line 2)"},
		{"OPEN test.ndb\nADD x\nCLOSE now\n", -EBADMSG, "CLOSE: unexpected argument"},
		{"OPEN test.hdb\nDEL 1 x\nCLOSE\n", -EBADMSG, "DEL: test.hdb does not exist"},
		{"UNLINK test.hdb\n", -EBADMSG, "UNLINK: test.hdb does not exist"},
		{"MOVE test.ndb test.ldb 1 x\n", -EBADMSG, "MOVE: expected MOVE"},
		{"MOVE test.ndb test.ldb 1 W 1 W extra\n", -EBADMSG, "MOVE: expected MOVE"},
		{"MOVE test.ndb test.ndb 1 W 1 W\n", -EBADMSG, "test.ndb moved to itself"},
		{"MOVE test.ndb test.ldb 2 W 1 W\n", -EBADMSG, "end line 1 before start line 2"},
		{"MOVE test.hdb test.ldb 1 W 1 W\n", -EBADMSG, "MOVE: test.hdb does not exist"},
		{"MOVE test.ndb test.ldb 1 # 9 W\n", -EBADMSG,
		 "line 9 is past the end of test.ndb"},
		{"MOVE test.ndb test.ldb 1 # 2 Zz\n", -EBADMSG,
		 "line 2 of test.ndb does not start"},
		{"MOVE test.ndb test.ldb 1 Zz 2 W\n", -EBADMSG,
		 "line 1 of test.ndb does not start"},
		{"MOVE test.ndb test.ldb 1 # 1 Zz\n", -EBADMSG,
		 "line 1 of test.ndb does not start with 'Zz'"},
	};
	char *big;

	NEED_TESTDATA();
	unpack_cvd("test-1.cvd", fx->ref);
	unpack_cvd("test-1.cvd", fx->db);
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		int rc = apply_script(fx, cases[i].script);

		if (rc != cases[i].rc || !strstr(fx->err, cases[i].what))
			fail_msg("case %zu: rc %d (want %d), err '%s' (want '%s')", i, rc,
				 cases[i].rc, fx->err, cases[i].what);
		assert_dirs_equal(fx->db, fx->ref);
		assert_int_equal(count_entries(fx->base), 2);
	}
	/* a NUL byte; a line over the limit */
	make_cdiff_len(fx->cdiff, 7, "OPEN test.ndb\nADD a\0b\nCLOSE\n", 27, 0);
	assert_refused(fx, apply_path(fx, fx->cdiff), -EBADMSG, "cdiff line 2: NUL byte");
	big = malloc(CDIFF_LINE_MAX + 64);
	assert_non_null(big);
	memcpy(big, "OPEN test.ndb\nADD ", 18);
	memset(big + 18, 'A', CDIFF_LINE_MAX);
	memcpy(big + 18 + CDIFF_LINE_MAX, "\nCLOSE\n", 8);
	assert_refused(fx, apply_script(fx, big), -EFBIG, "cdiff line 2: longer than");
	free(big);
	assert_dirs_equal(fx->db, fx->ref);
	assert_int_equal(count_entries(fx->base), 2);
}

/* DEL, XCHG, ADD, MOVE, UNLINK on files made here. */
static void test_edit_commands(void **state)
{
	struct fx *fx = *state;
	static const char script[] = "# a comment\n"
				     "#LSIZE 100000\n"
				     "\n"
				     "OPEN test.hdb\r\n"
				     "XCHG 3 a3 A3 new\n"
				     "DEL 2 a2\n"
				     "ADD a5\n"
				     "DEL 1 a1\n"
				     "CLOSE\n"
				     "MOVE test.hdb test.ndb 1 A3 2 a4\n"
				     "UNLINK test.ldb\n"
				     "OPEN test.fp\n"
				     "ADD f1\n"
				     "ADD f  2 \n"
				     "CLOSE\n"
				     "MOVE test.hdb test.sfp 1 a5 1 a5\n"
				     "OPEN test.cfg\n"
				     "CLOSE\n"
				     "OPEN test.info\n"
				     "XCHG 1 Clam ClamAV-VDB:new\n"
				     "CLOSE";

	write_at(fx->dirfd, "test.hdb", "a1\na2\na3\na4\n", 12);
	write_at(fx->dirfd, "test.ndb", "n1\n", 3);
	write_at(fx->dirfd, "test.ldb", "l1\n", 3);
	write_at(fx->dirfd, "test.info", "ClamAV-VDB:old\nx\ny", 18);
	if (apply_script(fx, script))
		fail_msg("%s", fx->err);
	/* DEL and XCHG by the line numbers of the file at OPEN, ADD after */
	assert_content(fx->dirfd, "test.hdb", "");
	assert_content(fx->dirfd, "test.ndb", "n1\nA3 new\na4\n");
	assert_content(fx->dirfd, "test.ldb", NULL);
	assert_content(fx->dirfd, "test.fp", "f1\nf  2 \n");
	assert_content(fx->dirfd, "test.sfp", "a5\n");
	assert_content(fx->dirfd, "test.cfg", NULL);			/* no edits: not created */
	assert_content(fx->dirfd, "test.info", "ClamAV-VDB:new\nx\ny"); /* no LF added */
	assert_int_equal(fx->st.version, 7);
	assert_int_equal(fx->st.script_bytes, sizeof(script) - 1);
	assert_int_equal(fx->st.commands, 18);
	assert_int_equal(fx->st.lines_added, 3);
	assert_int_equal(fx->st.lines_deleted, 2);
	assert_int_equal(fx->st.lines_exchanged, 2);
	assert_int_equal(fx->st.lines_moved, 3);
	assert_int_equal(fx->st.files_unlinked, 1);
	assert_int_equal(fx->st.files_written, 7);
	{
		struct stat st;

		assert_int_equal(fstatat(fx->dirfd, "test.fp", &st, 0), 0);
		assert_int_equal(st.st_mode & 07777, 0644);
	}
	/* a failing MOVE changes neither file */
	assert_refused(fx, apply_script(fx, "MOVE test.ndb test.sfp 2 A3 3 zz\n"), -EBADMSG,
		       "line 3 of test.ndb does not start with 'zz'");
	assert_content(fx->dirfd, "test.ndb", "n1\nA3 new\na4\n");
	assert_content(fx->dirfd, "test.sfp", "a5\n");
	/* the whole file; a last line without LF; COPYING is the database's */
	assert_int_equal(apply_script(fx, "MOVE test.ndb test.sfp 1 n1 3 a4\n"
					  "OPEN test.info\nDEL 3 y\nDEL 1 Cl\nCLOSE\n"
					  "OPEN COPYING\nADD GPL\nCLOSE\nUNLINK test.hdb\n"),
			 0);
	assert_content(fx->dirfd, "test.ndb", "");
	assert_content(fx->dirfd, "test.sfp", "a5\nn1\nA3 new\na4\n");
	assert_content(fx->dirfd, "test.info", "x\n");
	assert_content(fx->dirfd, "COPYING", "GPL\n");
	assert_content(fx->dirfd, "test.hdb", NULL);
	assert_int_equal(count_entries(fx->db), 5);
	assert_int_equal(count_entries(fx->base), 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_chain, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cld, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cld_refusals, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wrong_base, setup, teardown),
		cmocka_unit_test_setup_teardown(test_corrupt_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_script_refusals, setup, teardown),
		cmocka_unit_test_setup_teardown(test_edit_commands, setup, teardown),
	};

	return cmocka_run_group_tests(tests, group_setup, NULL);
}
