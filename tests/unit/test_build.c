/* test_build: unit tests of defs/build.c (cmocka).
 *
 * Each test gets a private tree /tmp/test_build.XXXXXX with the inputs in
 * in/ (signature files and the files to scan, made here: a hashed sample,
 * the EICAR test file, a clean file, a file for the logical signature) and
 * the output in out/. What is built is checked with the project's own
 * parsers (defs/cvd.h, defs/unpack.h), with libarchive, and with the real
 * thing: Debian's clamscan and sigtool run on it, libclamav loads it in
 * this process (cl_load + cl_engine_compile, signature count compared with
 * what build_cud reported), and `openssl cms -verify` checks the .sign
 * against the ClamAV test root in the shared testdata/clamav directory
 * (tests/unit/testdata.h) at a pinned time, so the test does not depend on the wall
 * clock staying inside the certificates' validity.
 *
 * After every refusal there must be no output, no .sign and no work
 * directory left, and an existing output must be untouched. */
#include "defs/build.h"
#include "tests/unit/testdata.h"

#include "common/util.h"
#include "defs/cvd.h"
#include "defs/unpack.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <archive.h>
#include <archive_entry.h>
#include <clamav.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pkcs7.h>
#include <openssl/x509.h>

/* 2023-11-14 22:13:20 UTC */
#define STIME	   1700000000
#define STIME_TEXT "14 Nov 2023 22-13 +0000"
/* 2026-01-01 00:00:00 UTC: inside the validity of the test root
 * (2025-03-26 .. 2027-03-26) and of the signing certificate. */
#define SIGN_TIME 1767225600

#define EICAR_NDB                                                                                  \
	"Eicar-Test-Signature:0:0:58354f2150254041505b345c505a58353428505e29374343293"             \
	"77d2445494341522d5354414e444152442d414e544956495255532d544553542d46494c452124"            \
	"482b482a\n"
#define LDB "Org.Test.Ldb;Engine:51-255,Target:0;0&1;68656c6c6f;776f726c64\n"

struct fx {
	char base[64];
	char in[96];
	char outdir[96];
	char out[160]; /* <outdir>/acme.cud */
	char sign[176];
	char hdb[160], ndb[160], ldb[160];
	char eicar[160], sample[160], clean[160], hw[160];
	const char *files[8];
	struct build_opts o;
	struct build_result res;
	char err[BUILD_ERR_LEN];
};

/* ---- helpers ---- */

static const char *testdata(void)
{
	const char *d = testdata_dir();

	if (!d)
		fail_msg("shared testdata/clamav not found (set SCANENGINE_TESTDATA)");
	return d;
}

__attribute__((format(printf, 3, 4))) static void fmt(char *buf, size_t len, const char *f, ...)
{
	va_list ap;
	int n;

	va_start(ap, f);
	n = vsnprintf(buf, len, f, ap);
	va_end(ap);
	assert_true(n >= 0 && (size_t)n < len);
}

static void write_path(const char *path, const void *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	assert_true(fd >= 0);
	assert_int_equal(util_write_all(fd, data, len), 0);
	close(fd);
}

static void write_str(const char *path, const char *s)
{
	write_path(path, s, strlen(s));
}

static char *read_path(const char *path, size_t *len)
{
	struct stat st;
	char *buf;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	buf = malloc((size_t)st.st_size + 1);
	assert_non_null(buf);
	assert_int_equal(util_read_all(fd, buf, (size_t)st.st_size), st.st_size);
	buf[st.st_size] = '\0';
	close(fd);
	*len = (size_t)st.st_size;
	return buf;
}

static bool exists(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0;
}

static void sha256_of(const void *p, size_t n, unsigned char md[32])
{
	assert_int_equal(EVP_Digest(p, n, md, NULL, EVP_sha256(), NULL), 1);
}

static void hex(const unsigned char *p, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", p[i]);
}

/* Run a shell command; its output (stdout and stderr) into *out (may be
 * NULL), its exit status returned. */
static int run(const char *cmd, char **out)
{
	char full[4096], *buf;
	size_t cap = 4096, n = 0, r;
	FILE *f;
	int st;

	fmt(full, sizeof(full), "%s 2>&1", cmd);
	f = popen(full, "r");
	assert_non_null(f);
	buf = malloc(cap);
	assert_non_null(buf);
	while ((r = fread(buf + n, 1, cap - n - 1, f)) > 0) {
		n += r;
		if (n + 1 == cap) {
			cap *= 2;
			buf = realloc(buf, cap);
			assert_non_null(buf);
		}
	}
	buf[n] = '\0';
	st = pclose(f);
	assert_true(st != -1 && WIFEXITED(st));
	if (out)
		*out = buf;
	else
		free(buf);
	return WEXITSTATUS(st);
}

static bool have_tool(const char *name)
{
	char cmd[256];

	fmt(cmd, sizeof(cmd), "command -v %s >/dev/null", name);
	return run(cmd, NULL) == 0;
}

/* Names in dir but . and .., sorted, joined by ' '. */
static void list_dir(const char *dir, char *out, size_t len)
{
	struct dirent **ents;
	int n = scandir(dir, &ents, NULL, alphasort);

	assert_true(n >= 0);
	out[0] = '\0';
	for (int i = 0; i < n; i++) {
		if (strcmp(ents[i]->d_name, ".") && strcmp(ents[i]->d_name, "..")) {
			if (out[0])
				strncat(out, " ", len - strlen(out) - 1);
			strncat(out, ents[i]->d_name, len - strlen(out) - 1);
		}
		free(ents[i]);
	}
	free(ents);
}

/* ---- fixture ---- */

static int setup(void **state)
{
	static const char sample[] = "scanengine build test: hashed sample\n";
	static const char eicar[] =
		"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*";
	struct fx *fx = calloc(1, sizeof(*fx));
	unsigned char md[32];
	char h[65], line[256];

	assert_non_null(fx);
	strcpy(fx->base, "/tmp/test_build.XXXXXX");
	assert_non_null(mkdtemp(fx->base));
	fmt(fx->in, sizeof(fx->in), "%s/in", fx->base);
	fmt(fx->outdir, sizeof(fx->outdir), "%s/out", fx->base);
	assert_int_equal(mkdir(fx->in, 0755), 0);
	assert_int_equal(mkdir(fx->outdir, 0755), 0);
	fmt(fx->out, sizeof(fx->out), "%s/acme.cud", fx->outdir);
	fmt(fx->sign, sizeof(fx->sign), "%s.sign", fx->out);

	fmt(fx->sample, sizeof(fx->sample), "%s/sample.bin", fx->in);
	fmt(fx->eicar, sizeof(fx->eicar), "%s/eicar.com", fx->in);
	fmt(fx->clean, sizeof(fx->clean), "%s/clean.txt", fx->in);
	fmt(fx->hw, sizeof(fx->hw), "%s/hw.txt", fx->in);
	write_str(fx->sample, sample);
	write_str(fx->eicar, eicar);
	write_str(fx->clean, "nothing to see here\n");
	write_str(fx->hw, "hello there, world\n");

	fmt(fx->hdb, sizeof(fx->hdb), "%s/org.hdb", fx->in);
	fmt(fx->ndb, sizeof(fx->ndb), "%s/org.ndb", fx->in);
	fmt(fx->ldb, sizeof(fx->ldb), "%s/org.ldb", fx->in);
	sha256_of(sample, strlen(sample), md);
	hex(md, 32, h);
	fmt(line, sizeof(line), "%s:%zu:Org.Test.Hash\n", h, strlen(sample));
	write_str(fx->hdb, line);
	write_str(fx->ndb, EICAR_NDB);
	write_str(fx->ldb, LDB);

	fx->files[0] = fx->hdb;
	fx->files[1] = fx->ndb;
	fx->files[2] = fx->ldb;
	fx->o.name = "acme";
	fx->o.version = 7;
	fx->o.files = fx->files;
	fx->o.nfiles = 3;
	fx->o.out = fx->out;
	fx->o.builder = "tester";
	fx->o.stime = STIME;
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fx *fx = *state;

	util_rm_rf(fx->base);
	free(fx);
	return 0;
}

static int build(struct fx *fx)
{
	memset(&fx->res, 0, sizeof(fx->res));
	fx->err[0] = '\0';
	return build_cud(&fx->o, &fx->res, fx->err);
}

static void build_ok(struct fx *fx)
{
	int rc = build(fx);

	if (rc != 0)
		fail_msg("build_cud: %d %s", rc, fx->err);
}

static void path_in(const struct fx *fx, char *buf, size_t len, const char *name)
{
	fmt(buf, len, "%s/%s", fx->in, name);
}

/* ---- checks of a built container ---- */

/* The member names of the payload in tar order, and the raw (decompressed)
 * tar for the header bytes. */
static void tar_members(const char *path, char names[8][128], size_t *n)
{
	struct archive *a = archive_read_new();
	struct archive_entry *e;
	size_t len;
	char *buf = read_path(path, &len);

	assert_non_null(a);
	archive_read_support_filter_gzip(a);
	archive_read_support_format_tar(a);
	assert_int_equal(archive_read_open_memory(a, buf + 512, len - 512), ARCHIVE_OK);
	*n = 0;
	while (archive_read_next_header(a, &e) == ARCHIVE_OK) {
		assert_true(*n < 8);
		snprintf(names[(*n)++], 128, "%s", archive_entry_pathname(e));
		/* real CVDs: v7 headers, uid/gid 0, mtime 0 (mode 0644 here) */
		assert_int_equal(archive_format(a), ARCHIVE_FORMAT_TAR);
		assert_int_equal(archive_entry_uid(e), 0);
		assert_int_equal(archive_entry_gid(e), 0);
		assert_int_equal(archive_entry_mtime(e), 0);
		assert_int_equal(archive_entry_perm(e), 0644);
		assert_int_equal(archive_entry_filetype(e), AE_IFREG);
		assert_null(archive_entry_uname(e));
	}
	archive_read_free(a);

	/* The first header block as libclamav reads it: no ustar magic,
	 * typeflag NUL like sigtool's. */
	a = archive_read_new();
	archive_read_support_filter_gzip(a);
	archive_read_support_format_raw(a);
	assert_int_equal(archive_read_open_memory(a, buf + 512, len - 512), ARCHIVE_OK);
	assert_int_equal(archive_read_next_header(a, &e), ARCHIVE_OK);
	{
		char block[512];

		assert_int_equal(archive_read_data(a, block, sizeof(block)), 512);
		assert_string_equal(block, "COPYING");
		assert_int_equal(block[156], '\0');
		assert_int_equal(memcmp(block + 257, "\0\0\0\0\0", 5), 0);
	}
	archive_read_free(a);
	free(buf);
}

/* Header, MD5, .info and members of fx->out against the inputs (the first
 * nfiles of fx->files, expected in the order given by order[]). */
static void check_container(struct fx *fx, const size_t *order, size_t nfiles)
{
	char cerr[CVD_ERR_LEN], uerr[UNPACK_ERR_LEN], stage[128], p[256], md5[33];
	char names[8][128];
	struct unpack_limits lim;
	struct unpack_result ur;
	struct cvd_header h;
	struct cvd_payload pl;
	struct cvd_info info;
	size_t len, ilen, n;
	char *data, *itext;
	int fd, dirfd;

	data = read_path(fx->out, &len);
	assert_int_equal(len, fx->res.bytes);
	if (cvd_payload_md5(data, len, &h, &pl, cerr))
		fail_msg("cvd_payload_md5: %s", cerr);
	assert_int_equal(pl.kind, CVD_PAYLOAD_GZIP);
	assert_int_equal(cvd_check_md5(&h, &pl, cerr), 0);
	assert_int_equal(cvd_header_check_type(&h, CVD_TYPE_CUD, cerr), 0);
	hex(pl.md5, 16, md5);
	assert_string_equal(md5, fx->res.md5);
	if (fx->o.stime == STIME)
		assert_string_equal(h.time, STIME_TEXT);
	assert_int_equal(h.version, fx->o.version);
	assert_int_equal(h.sigs, fx->res.sigs);
	assert_int_equal(h.flevel, fx->o.flevel ? fx->o.flevel : cl_retflevel());
	assert_int_equal(h.flevel, fx->res.flevel);
	assert_false(h.has_dsig);
	assert_string_equal(h.builder, fx->o.builder ? fx->o.builder : BUILD_DEFAULT_BUILDER);
	assert_int_equal(h.stime, fx->res.stime);
	free(data);

	/* Our own unpack stage accepts it. */
	fmt(stage, sizeof(stage), "%s/stage", fx->base);
	util_rm_rf(stage);
	assert_int_equal(mkdir(stage, 0700), 0);
	dirfd = open(stage, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	fd = open(fx->out, O_RDONLY | O_CLOEXEC);
	assert_true(dirfd >= 0 && fd >= 0);
	unpack_limits_default(&lim);
	if (unpack_fd(fd, 512, dirfd, &lim, &ur, uerr))
		fail_msg("unpack_fd: %s", uerr);
	assert_int_equal(ur.entries, nfiles + 2);
	assert_true(ur.gzip);
	close(fd);
	close(dirfd);

	/* The .info: header line equal to the container's, one line per
	 * signature file with its size and SHA-256, in container order. */
	fmt(p, sizeof(p), "%s/acme.info", stage);
	itext = read_path(p, &ilen);
	if (cvd_parse_info(itext, ilen, CVD_TYPE_CUD, &info, cerr))
		fail_msg("cvd_parse_info: %s", cerr);
	assert_int_equal(cvd_info_matches_header(&info, &h, cerr), 0);
	assert_false(info.has_dsig);
	assert_false(info.hdr.has_md5);
	assert_int_equal(info.n_entries, nfiles);
	for (size_t i = 0; i < nfiles; i++) {
		const char *src = fx->files[order[i]];
		const char *base = strrchr(src, '/') + 1;
		unsigned char md[32];
		size_t slen, ulen;
		char *sdata = read_path(src, &slen), *udata;

		assert_string_equal(info.entries[i].name, base);
		assert_int_equal(info.entries[i].size, slen);
		sha256_of(sdata, slen, md);
		assert_memory_equal(info.entries[i].sha256, md, 32);
		fmt(p, sizeof(p), "%s/%s", stage, base);
		udata = read_path(p, &ulen);
		assert_int_equal(ulen, slen);
		assert_memory_equal(udata, sdata, slen);
		free(udata);
		free(sdata);
	}
	cvd_info_free(&info);
	free(itext);

	/* COPYING names the database, the builder and the tool. */
	fmt(p, sizeof(p), "%s/COPYING", stage);
	itext = read_path(p, &ilen);
	if (!fx->o.notice) {
		assert_non_null(strstr(itext, "\"acme\""));
		assert_non_null(strstr(itext, "scanctl defs build"));
	} else {
		assert_string_equal(itext, fx->o.notice);
	}
	free(itext);

	tar_members(fx->out, names, &n);
	assert_int_equal(n, nfiles + 2);
	assert_string_equal(names[0], "COPYING");
	assert_string_equal(names[1], "acme.info");
	for (size_t i = 0; i < nfiles; i++)
		assert_string_equal(names[i + 2], strrchr(fx->files[order[i]], '/') + 1);
	util_rm_rf(stage);
}

/* libclamav in this process: loads the container, counts what build_cud
 * reported, compiles, and finds name in path (NULL: clean). */
static void check_libclamav(const struct fx *fx, const char *path, const char *name)
{
	struct cl_scan_options so = {0};
	struct cl_engine *e = cl_engine_new();
	const char *virname = NULL;
	unsigned int sigs = 0;
	cl_error_t rc;

	assert_non_null(e);
	assert_int_equal(cl_load(fx->out, e, &sigs, CL_DB_STDOPT | CL_DB_PUA), CL_SUCCESS);
	assert_int_equal(sigs, fx->res.sigs);
	assert_int_equal(cl_engine_compile(e), CL_SUCCESS);
	rc = cl_scanfile(path, &virname, NULL, e, &so);
	if (name) {
		assert_int_equal(rc, CL_VIRUS);
		assert_string_equal(virname, name);
	} else {
		assert_int_equal(rc, CL_CLEAN);
	}
	cl_engine_free(e);
}

/* ---- tests ---- */

static void test_build_hdb_ndb_ldb(void **state)
{
	static const size_t order[] = {0, 1, 2};
	struct fx *fx = *state;
	char cmd[1024], listing[256], *out;

	build_ok(fx);
	assert_int_equal(fx->res.sigs, 3);
	assert_int_equal(fx->res.members, 3);
	assert_int_equal(fx->res.flevel, cl_retflevel());
	assert_int_equal(fx->res.stime, STIME);
	assert_false(fx->res.has_sign);
	check_container(fx, order, 3);

	/* Nothing else next to it: no .sign, no work directory. */
	list_dir(fx->outdir, listing, sizeof(listing));
	assert_string_equal(listing, "acme.cud");
	{
		struct stat st;

		assert_int_equal(stat(fx->out, &st), 0);
		assert_int_equal(st.st_mode & 07777, 0644);
	}

	check_libclamav(fx, fx->eicar, "Eicar-Test-Signature.UNOFFICIAL");
	check_libclamav(fx, fx->sample, "Org.Test.Hash.UNOFFICIAL");
	check_libclamav(fx, fx->hw, "Org.Test.Ldb.UNOFFICIAL");
	check_libclamav(fx, fx->clean, NULL);

	/* Debian's clamscan: signatures from a .cud are unofficial, so their
	 * names get ".UNOFFICIAL" appended. */
	if (!have_tool("clamscan"))
		skip();
	fmt(cmd, sizeof(cmd), "clamscan --no-summary -d %s %s %s %s %s", fx->out, fx->eicar,
	    fx->sample, fx->hw, fx->clean);
	assert_int_equal(run(cmd, &out), 1);
	fmt(cmd, sizeof(cmd), "%s: Eicar-Test-Signature.UNOFFICIAL FOUND\n", fx->eicar);
	assert_non_null(strstr(out, cmd));
	fmt(cmd, sizeof(cmd), "%s: Org.Test.Hash.UNOFFICIAL FOUND\n", fx->sample);
	assert_non_null(strstr(out, cmd));
	fmt(cmd, sizeof(cmd), "%s: Org.Test.Ldb.UNOFFICIAL FOUND\n", fx->hw);
	assert_non_null(strstr(out, cmd));
	fmt(cmd, sizeof(cmd), "%s: OK\n", fx->clean);
	assert_non_null(strstr(out, cmd));
	assert_null(strstr(out, "ERROR"));
	free(out);
	fmt(cmd, sizeof(cmd), "clamscan --no-summary -d %s %s", fx->out, fx->clean);
	assert_int_equal(run(cmd, NULL), 0);

	/* sigtool --info accepts it. */
	fmt(cmd, sizeof(cmd), "sigtool --info %s", fx->out);
	assert_int_equal(run(cmd, &out), 0);
	assert_non_null(strstr(out, "Version: 7\n"));
	assert_non_null(strstr(out, "Signatures: 3\n"));
	assert_non_null(strstr(out, "Builder: tester\n"));
	free(out);
}

/* The count is libclamav's, not a line count: comments, signatures outside
 * the engine's f-level range and .ign2 entries do not count, an .fp's
 * hashes do. */
static void test_count_like_libclamav(void **state)
{
	static const size_t order[] = {3, 0, 1, 2};
	struct fx *fx = *state;
	char ndb[160], ldb[160], fp[160], ign[160], *out, cmd[1024];
	size_t len;
	unsigned char md[32];
	char h[65], line[256], *clean;

	path_in(fx, ndb, sizeof(ndb), "old.ndb");
	path_in(fx, ldb, sizeof(ldb), "mixed.ldb");
	path_in(fx, fp, sizeof(fp), "allow.fp");
	path_in(fx, ign, sizeof(ign), "skip.ign2");
	write_str(ndb, "# comment lines do not count\n"
		       "Old.Sig:0:*:4142434445464748:0:38\n"
		       "New.Sig:0:*:4142434445464748\n");
	write_str(ldb, "Org.Old.Ldb;Engine:51-60,Target:0;0;41424344\n" LDB);
	clean = read_path(fx->clean, &len);
	sha256_of(clean, len, md);
	hex(md, 32, h);
	fmt(line, sizeof(line), "%s:%zu:Clean.File\n", h, len);
	write_str(fp, line);
	write_str(ign, "Some.Other.Signature\n");
	free(clean);
	fx->files[0] = ndb;
	fx->files[1] = ldb;
	fx->files[2] = fp;
	fx->files[3] = ign; /* given last, packed first */
	fx->o.nfiles = 4;
	build_ok(fx);
	assert_int_equal(fx->res.sigs, 1 + 1 + 1);
	check_container(fx, order, 4);
	check_libclamav(fx, fx->hw, "Org.Test.Ldb.UNOFFICIAL");

	if (!have_tool("sigtool"))
		skip();
	fmt(cmd, sizeof(cmd), "sigtool --info %s", fx->out);
	assert_int_equal(run(cmd, &out), 0);
	assert_non_null(strstr(out, "Signatures: 3\n"));
	free(out);
}

/* .ign2 entries are packed before the signatures they silence (libclamav
 * applies them only to what it loads afterwards), whatever the order of
 * the arguments. */
static void test_ignore_list_first(void **state)
{
	static const size_t order[] = {2, 0, 1};
	struct fx *fx = *state;
	char ign[160], cmd[1024], *out;

	path_in(fx, ign, sizeof(ign), "skip.ign2");
	write_str(ign, "Eicar-Test-Signature\n");
	fx->files[0] = fx->hdb;
	fx->files[1] = fx->ndb;
	fx->files[2] = ign;
	build_ok(fx);
	assert_int_equal(fx->res.sigs, 1); /* the EICAR signature is ignored */
	check_container(fx, order, 3);
	check_libclamav(fx, fx->eicar, NULL);
	check_libclamav(fx, fx->sample, "Org.Test.Hash.UNOFFICIAL");

	if (!have_tool("clamscan"))
		skip();
	fmt(cmd, sizeof(cmd), "clamscan --no-summary -d %s %s", fx->out, fx->eicar);
	assert_int_equal(run(cmd, &out), 0);
	free(out);
}

/* Equal input, equal bytes (fixed mtime, no gzip timestamp, UTC time
 * text); another build time gives another container. */
static void test_deterministic(void **state)
{
	struct fx *fx = *state;
	char out2[192], *a, *b;
	size_t alen, blen;

	build_ok(fx);
	a = read_path(fx->out, &alen);
	fmt(out2, sizeof(out2), "%s/other.cud", fx->outdir);
	fx->o.out = out2;
	build_ok(fx);
	b = read_path(out2, &blen);
	assert_int_equal(alen, blen);
	assert_memory_equal(a, b, alen);
	free(b);

	fx->o.stime = STIME + 60;
	build_ok(fx);
	b = read_path(out2, &blen);
	assert_true(alen != blen || memcmp(a, b, alen));
	free(b);
	free(a);
}

/* Defaults: builder, f-level, build time now; a notice of one's own; an
 * explicit f-level; an output in the current directory. */
static void test_options(void **state)
{
	static const size_t order[] = {0, 1, 2};
	struct fx *fx = *state;
	char cwd[PATH_MAX], listing[256], *data;
	struct cvd_header h;
	char cerr[CVD_ERR_LEN];
	time_t before = time(NULL);
	size_t len;

	fx->o.builder = NULL;
	fx->o.stime = 0;
	build_ok(fx);
	assert_true(fx->res.stime >= before && fx->res.stime <= time(NULL));
	assert_int_equal(fx->res.flevel, cl_retflevel());
	data = read_path(fx->out, &len);
	assert_int_equal(cvd_parse_header(data, len, &h, cerr), 0);
	assert_string_equal(h.builder, BUILD_DEFAULT_BUILDER);
	free(data);

	fx->o.builder = "Acme_Security-Team";
	fx->o.stime = STIME;
	fx->o.flevel = 90;
	fx->o.notice = "Acme Inc. internal signatures. Not for redistribution.\n";
	build_ok(fx);
	assert_int_equal(fx->res.flevel, 90);
	check_container(fx, order, 3);
	check_libclamav(fx, fx->eicar, "Eicar-Test-Signature.UNOFFICIAL");

	/* OUT without a directory part: work directory in ".". */
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	assert_int_equal(chdir(fx->outdir), 0);
	fx->o.out = "here.cud";
	build_ok(fx);
	assert_int_equal(chdir(cwd), 0);
	list_dir(fx->outdir, listing, sizeof(listing));
	assert_string_equal(listing, "acme.cud here.cud");
}

static void verify_sign(const struct fx *fx, const char *content, int want)
{
	char cmd[2048], der_path[192];
	struct cvd_sign s;
	char cerr[CVD_ERR_LEN];
	size_t len;
	char *text = read_path(fx->sign, &len);

	if (cvd_parse_sign(text, len, &s, cerr))
		fail_msg("cvd_parse_sign: %s", cerr);
	fmt(der_path, sizeof(der_path), "%s/sign.der", fx->base);
	write_path(der_path, s.entries[0].der, s.entries[0].der_len);
	fmt(cmd, sizeof(cmd),
	    "openssl cms -verify -binary -inform DER -in %s -content %s -CAfile "
	    "%s/clamav-test-root.crt -purpose any -attime %d -out /dev/null",
	    der_path, content, testdata(), SIGN_TIME);
	if (want == 0) {
		char *out;
		int rc = run(cmd, &out);

		if (rc != 0)
			fail_msg("%s: %s", cmd, out);
		free(out);
	} else {
		assert_int_not_equal(run(cmd, NULL), 0);
	}
	cvd_sign_free(&s);
	free(text);
}

static void test_signed(void **state)
{
	static const size_t order[] = {0, 1, 2};
	struct fx *fx = *state;
	char crt[256], key[256], chain[256], cerr[CVD_ERR_LEN], copy[192], listing[256];
	const unsigned char *p;
	struct cvd_sign s;
	size_t len;
	char *text, *data;
	PKCS7 *p7;

	fmt(crt, sizeof(crt), "%s/signing-test.crt", testdata());
	fmt(key, sizeof(key), "%s/signing-test.key", testdata());
	fmt(chain, sizeof(chain), "%s/intermediate-test.crt", testdata());
	if (!exists(crt) || !have_tool("openssl"))
		skip();
	fx->o.sign_cert = crt;
	fx->o.sign_key = key;
	fx->o.chain = chain;
	fx->o.stime = SIGN_TIME;
	build_ok(fx);
	assert_true(fx->res.has_sign);
	list_dir(fx->outdir, listing, sizeof(listing));
	assert_string_equal(listing, "acme.cud acme.cud.sign");

	/* One entry, applying from the container's f-level on (so to this
	 * libclamav and to ClamAV 1.5), a detached SignedData with SHA-256,
	 * the signer and the intermediate. */
	text = read_path(fx->sign, &len);
	assert_int_equal(memcmp(text, "#clamsign-1.0\n", 14), 0);
	if (cvd_parse_sign(text, len, &s, cerr))
		fail_msg("cvd_parse_sign: %s", cerr);
	assert_int_equal(s.n_entries, 1);
	assert_int_equal(s.entries[0].min_flevel, fx->res.flevel);
	assert_false(s.entries[0].has_max);
	assert_non_null(cvd_sign_select(&s, cl_retflevel()));
	assert_non_null(cvd_sign_select(&s, 230));
	p = s.entries[0].der;
	p7 = d2i_PKCS7(NULL, &p, (long)s.entries[0].der_len);
	assert_non_null(p7);
	assert_true(PKCS7_type_is_signed(p7));
	assert_true(PKCS7_get_detached(p7));
	assert_int_equal(sk_X509_num(p7->d.sign->cert), 2);
	assert_int_equal(sk_PKCS7_SIGNER_INFO_num(p7->d.sign->signer_info), 1);
	assert_int_equal(OBJ_obj2nid(sk_PKCS7_SIGNER_INFO_value(p7->d.sign->signer_info, 0)
					     ->digest_alg->algorithm),
			 NID_sha256);
	PKCS7_free(p7);
	cvd_sign_free(&s);
	free(text);

	verify_sign(fx, fx->out, 0);
	/* ... and over exactly OUT: one byte changed and it fails. */
	data = read_path(fx->out, &len);
	data[len - 1] ^= 1;
	fmt(copy, sizeof(copy), "%s/tampered.cud", fx->base);
	write_path(copy, data, len);
	free(data);
	verify_sign(fx, copy, 1);

	check_container(fx, order, 3);
	check_libclamav(fx, fx->eicar, "Eicar-Test-Signature.UNOFFICIAL");

	/* Rebuilt unsigned: the old .sign would not match, so it goes. */
	fx->o.sign_cert = fx->o.sign_key = fx->o.chain = NULL;
	build_ok(fx);
	assert_false(fx->res.has_sign);
	assert_false(exists(fx->sign));

	/* The chain may also follow the signer in the certificate file. */
	{
		char both[192], *c1, *c2;
		size_t l1, l2;

		fmt(both, sizeof(both), "%s/both.crt", fx->base);
		c1 = read_path(crt, &l1);
		c2 = read_path(chain, &l2);
		write_path(both, c1, l1);
		{
			int fd = open(both, O_WRONLY | O_APPEND);

			assert_true(fd >= 0);
			assert_int_equal(util_write_all(fd, c2, l2), 0);
			close(fd);
		}
		free(c1);
		free(c2);
		fx->o.sign_cert = both;
		fx->o.sign_key = key;
		build_ok(fx);
		verify_sign(fx, fx->out, 0);
	}
}

/* ---- refusals ---- */

enum bad_case {
	BAD_UNKNOWN_TYPE,
	BAD_DUPLICATE,
	BAD_DUPLICATE_CASE,
	BAD_MISSING,
	BAD_DIRECTORY,
	BAD_COPYING,
	BAD_INFO,
	BAD_MEMBER_NAME,
	BAD_EMPTY,
	BAD_YARA,
	BAD_IOC,
	BAD_VERSION_0,
	BAD_NAME_SLASH,
	BAD_NAME_EMPTY,
	BAD_OUT_NOT_CUD,
	BAD_OUT_DIR_MISSING,
	BAD_BUILDER,
	BAD_NO_FILES,
	BAD_MALFORMED_DB,
	BAD_NO_SIGNATURES,
	BAD_KEY_GARBAGE,
	BAD_KEY_MISSING,
	BAD_KEY_MISMATCH,
	BAD_CERT_WITHOUT_KEY,
	BAD_CHAIN_UNSIGNED,
	BAD_CERT_NOT_VALID,
	BAD_CERT_GARBAGE,
	BAD_COUNT,
};

struct bad {
	enum bad_case c;
	int rc;
	const char *in_err; /* must appear in the message */
	bool needs_testdata;
};

static const struct bad bads[] = {
	{BAD_UNKNOWN_TYPE, -EINVAL, "notes.txt': not a database type"},
	{BAD_DUPLICATE, -EINVAL, "'org.hdb'; names must be unique"},
	{BAD_DUPLICATE_CASE, -EINVAL, "'ORG.hdb'; names must be unique"},
	{BAD_MISSING, -ENOENT, "missing.hdb': No such file"},
	{BAD_DIRECTORY, -EINVAL, "dir.hdb': not a regular file"},
	{BAD_COPYING, -EINVAL, "COPYING is written by the builder"},
	{BAD_INFO, -EINVAL, "the .info is written by the builder"},
	{BAD_MEMBER_NAME, -EINVAL, "name must be 1-99 characters"},
	{BAD_EMPTY, -EINVAL, "empty.fp': empty"},
	{BAD_YARA, -EINVAL, "rules.yara': libclamav does not load YARA files from a container"},
	{BAD_IOC, -EINVAL, "x.ioc': libclamav does not load OpenIOC files"},
	{BAD_VERSION_0, -EINVAL, "version: must be at least 1"},
	{BAD_NAME_SLASH, -EINVAL, "database name 'acme/x'"},
	{BAD_NAME_EMPTY, -EINVAL, "database name ''"},
	{BAD_OUT_NOT_CUD, -EINVAL, "must end in .cud"},
	{BAD_OUT_DIR_MISSING, -ENOENT, "cannot create a work directory"},
	{BAD_BUILDER, -EINVAL, "builder 'a:b'"},
	{BAD_NO_FILES, -EINVAL, "no signature files"},
	{BAD_MALFORMED_DB, -EINVAL, "broken.hdb': Malformed database"},
	{BAD_NO_SIGNATURES, -ENODATA, "libclamav loads no signature"},
	{BAD_KEY_GARBAGE, -EINVAL, "not a PEM private key", true},
	{BAD_KEY_MISSING, -ENOENT, "signing key '", true},
	{BAD_KEY_MISMATCH, -EINVAL, "does not belong to the certificate", true},
	{BAD_CERT_WITHOUT_KEY, -EINVAL, "both a certificate and its private key", true},
	{BAD_CHAIN_UNSIGNED, -EINVAL, "only used when signing", true},
	{BAD_CERT_NOT_VALID, -EINVAL, "not valid at the build time", true},
	{BAD_CERT_GARBAGE, -EINVAL, "no PEM certificate", true},
};

/* Set up fx->o for case c; paths go to bufs. */
static void make_bad(struct fx *fx, enum bad_case c, char bufs[4][256])
{
	fmt(bufs[2], 256, "%s/signing-test.crt", testdata());
	fmt(bufs[3], 256, "%s/signing-test.key", testdata());
	switch (c) {
	case BAD_UNKNOWN_TYPE:
		path_in(fx, bufs[0], 256, "notes.txt");
		write_str(bufs[0], "x\n");
		fx->files[1] = bufs[0];
		break;
	case BAD_DUPLICATE:
	case BAD_DUPLICATE_CASE:
		path_in(fx, bufs[0], 256, "sub");
		mkdir(bufs[0], 0755);
		path_in(fx, bufs[0], 256, c == BAD_DUPLICATE ? "sub/org.hdb" : "sub/ORG.hdb");
		write_str(bufs[0], "");
		fx->files[2] = bufs[0];
		break;
	case BAD_MISSING:
		path_in(fx, bufs[0], 256, "missing.hdb");
		fx->files[0] = bufs[0];
		break;
	case BAD_DIRECTORY:
		path_in(fx, bufs[0], 256, "dir.hdb");
		mkdir(bufs[0], 0755);
		fx->files[0] = bufs[0];
		break;
	case BAD_COPYING:
		path_in(fx, bufs[0], 256, "COPYING");
		write_str(bufs[0], "x\n");
		fx->files[1] = bufs[0];
		break;
	case BAD_INFO:
		path_in(fx, bufs[0], 256, "other.info");
		write_str(bufs[0], "x\n");
		fx->files[1] = bufs[0];
		break;
	case BAD_MEMBER_NAME:
		path_in(fx, bufs[0], 256, "bad name.hdb");
		write_str(bufs[0], "x\n");
		fx->files[1] = bufs[0];
		break;
	case BAD_EMPTY:
		path_in(fx, bufs[0], 256, "empty.fp");
		write_str(bufs[0], "");
		fx->files[1] = bufs[0];
		break;
	case BAD_YARA:
		path_in(fx, bufs[0], 256, "rules.yara");
		write_str(bufs[0], "rule r { strings: $a = \"x\" condition: $a }\n");
		fx->files[1] = bufs[0];
		break;
	case BAD_IOC:
		path_in(fx, bufs[0], 256, "x.ioc");
		write_str(bufs[0], "<ioc/>\n");
		fx->files[1] = bufs[0];
		break;
	case BAD_VERSION_0:
		fx->o.version = 0;
		break;
	case BAD_NAME_SLASH:
		fx->o.name = "acme/x";
		break;
	case BAD_NAME_EMPTY:
		fx->o.name = "";
		break;
	case BAD_OUT_NOT_CUD:
		fmt(bufs[0], 256, "%s/acme.cvd", fx->outdir);
		fx->o.out = bufs[0];
		break;
	case BAD_OUT_DIR_MISSING:
		fmt(bufs[0], 256, "%s/nowhere/acme.cud", fx->outdir);
		fx->o.out = bufs[0];
		break;
	case BAD_BUILDER:
		fx->o.builder = "a:b";
		break;
	case BAD_NO_FILES:
		fx->o.nfiles = 0;
		break;
	case BAD_MALFORMED_DB:
		path_in(fx, bufs[0], 256, "broken.hdb");
		write_str(bufs[0], "this is not a hash signature\n");
		fx->files[1] = bufs[0];
		break;
	case BAD_NO_SIGNATURES:
		path_in(fx, bufs[0], 256, "only.ign2");
		write_str(bufs[0], "Eicar-Test-Signature\n");
		fx->files[0] = bufs[0];
		fx->o.nfiles = 1;
		break;
	case BAD_KEY_GARBAGE:
		path_in(fx, bufs[0], 256, "garbage.key");
		write_str(bufs[0], "-----BEGIN PRIVATE KEY-----\nnot base64\n"
				   "-----END PRIVATE KEY-----\n");
		fx->o.sign_cert = bufs[2];
		fx->o.sign_key = bufs[0];
		fx->o.stime = SIGN_TIME;
		break;
	case BAD_KEY_MISSING:
		path_in(fx, bufs[0], 256, "missing.key");
		fx->o.sign_cert = bufs[2];
		fx->o.sign_key = bufs[0];
		fx->o.stime = SIGN_TIME;
		break;
	case BAD_KEY_MISMATCH:
		/* the intermediate's certificate with the signer's key */
		fmt(bufs[0], 256, "%s/intermediate-test.crt", testdata());
		fx->o.sign_cert = bufs[0];
		fx->o.sign_key = bufs[3];
		fx->o.stime = SIGN_TIME;
		break;
	case BAD_CERT_WITHOUT_KEY:
		fx->o.sign_cert = bufs[2];
		break;
	case BAD_CHAIN_UNSIGNED:
		fx->o.chain = bufs[2];
		break;
	case BAD_CERT_NOT_VALID:
		/* before the signing certificate's notBefore (2025-03-26) */
		fx->o.sign_cert = bufs[2];
		fx->o.sign_key = bufs[3];
		fx->o.stime = STIME;
		break;
	case BAD_CERT_GARBAGE:
		path_in(fx, bufs[0], 256, "garbage.crt");
		write_str(bufs[0], "not a certificate\n");
		fx->o.sign_cert = bufs[0];
		fx->o.sign_key = bufs[3];
		fx->o.stime = SIGN_TIME;
		break;
	case BAD_COUNT:
		break;
	}
}

static void test_refusals(void **state)
{
	struct fx *fx = *state;
	const struct build_opts good = fx->o;
	const char *files[3] = {fx->files[0], fx->files[1], fx->files[2]};

	assert_true(SE_ARRAY_SIZE(bads) == BAD_COUNT);
	for (size_t i = 0; i < SE_ARRAY_SIZE(bads); i++) {
		const struct bad *b = &bads[i];

		/* Once without an output, once over an existing one. */
		for (int pre = 0; pre < 2; pre++) {
			char bufs[4][256], listing[512], want[256];
			const char *content;
			int rc;

			if (b->needs_testdata && !exists(testdata()))
				continue;
			util_rm_rf(fx->outdir);
			assert_int_equal(mkdir(fx->outdir, 0755), 0);
			fx->o = good;
			memcpy(fx->files, files, sizeof(files));
			make_bad(fx, b->c, bufs);
			if (pre) {
				write_str(fx->out, "previous container\n");
				write_str(fx->sign, "previous sign\n");
			}
			rc = build(fx);
			if (rc != b->rc || !strstr(fx->err, b->in_err))
				fail_msg("case %zu: rc %d (want %d), err \"%s\" (want \"%s\")", i,
					 rc, b->rc, fx->err, b->in_err);
			/* one line */
			assert_null(strchr(fx->err, '\n'));
			list_dir(fx->outdir, listing, sizeof(listing));
			fmt(want, sizeof(want), "%s", pre ? "acme.cud acme.cud.sign" : "");
			if (strcmp(listing, want))
				fail_msg("case %zu: left \"%s\"", i, listing);
			if (pre) {
				size_t len;
				char *data = read_path(fx->out, &len);

				content = "previous container\n";
				assert_string_equal(data, content);
				free(data);
			}
		}
	}
	assert_int_equal(build_cud(NULL, NULL, NULL), -EINVAL);
	fx->o = good;
	assert_int_equal(build_cud(&fx->o, NULL, NULL), 0); /* res and err may be NULL */
}

/* Inputs at the limits: a member name of 99 bytes (100 refused), a
 * database name of 94 bytes (95 refused). */
static void test_limits(void **state)
{
	struct fx *fx = *state;
	char longname[256], dbname[96];
	int n;

	n = snprintf(longname, sizeof(longname), "%s/", fx->in);
	memset(longname + n, 'a', 95);
	strcpy(longname + n + 95, ".ndb");
	write_str(longname, "Long.Name.Sig:0:*:41424344454647484950\n");
	memset(dbname, 'd', 94);
	dbname[94] = '\0';
	fx->files[1] = longname;
	fx->o.name = dbname;
	fx->o.nfiles = 2;
	build_ok(fx);
	assert_int_equal(fx->res.sigs, 2);
	check_libclamav(fx, fx->sample, "Org.Test.Hash.UNOFFICIAL");

	dbname[94] = 'd';
	dbname[95] = '\0';
	assert_int_equal(build(fx), -EINVAL);
	assert_non_null(strstr(fx->err, "database name"));

	dbname[94] = '\0';
	longname[n + 95] = 'a';
	strcpy(longname + n + 96, ".ndb");
	write_str(longname, "Long.Name.Sig:0:*:41424344454647484950\n");
	assert_int_equal(build(fx), -EINVAL);
	assert_non_null(strstr(fx->err, "the name must be 1-99 characters"));
}

/* LeakSanitizer (ASan build): libclamav 1.4.6 leaks OpenSSL hash contexts
 * on every cl_load of a .cud, sigtool's own included; check_libclamav()
 * loads in this process, so those are suppressed. Ours are not (the
 * builder's test loads run in children that _exit). The slow unwinder is
 * needed to see libclamav on those stacks: libcrypto has no frame
 * pointers. Both functions are read only by the sanitizer runtime. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
	return "leak:libclamav.so\n";
}

const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
	return "fast_unwind_on_malloc=0";
}

static int group_setup(void **state)
{
	(void)state;
	return cl_init(CL_INIT_DEFAULT) == CL_SUCCESS ? 0 : -1;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_build_hdb_ndb_ldb, setup, teardown),
		cmocka_unit_test_setup_teardown(test_count_like_libclamav, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ignore_list_first, setup, teardown),
		cmocka_unit_test_setup_teardown(test_deterministic, setup, teardown),
		cmocka_unit_test_setup_teardown(test_options, setup, teardown),
		cmocka_unit_test_setup_teardown(test_signed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refusals, setup, teardown),
		cmocka_unit_test_setup_teardown(test_limits, setup, teardown),
	};

	return cmocka_run_group_tests(tests, group_setup, NULL);
}
