/* test_cvd: unit tests of defs/cvd.c (cmocka): the CVD/CLD/CUD header,
 * the payload and .info; the .sign parser and writer are tested in
 * test_cvd_sign.c, the shared set-up is in cvd_fixture.h.
 *
 * The real files are the genuine Talos-signed test definitions of the
 * shared testdata/clamav directory ($SCANENGINE_TESTDATA, else found from
 * the working directory or this binary); tests that need them skip without
 * them. Expected header values were read with `sigtool --info` (ClamAV
 * 1.4.6) and are cross-checked against libclamav's own parser
 * (cl_cvdhead); .info files are unpacked with libclamav's cl_cvdunpack. */
#include "defs/cvd.h"
#include "tests/unit/cvd_fixture.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <openssl/evp.h>
#include <sys/stat.h>

struct real_cvd {
	const char *file;
	const char *db; /* the .info inside is <db>.info */
	uint32_t version, sigs, flevel, stime;
	const char *time, *builder, *md5;
	size_t n_entries, size;
};

/* sigtool --info / --unpack of each file (ClamAV 1.4.6). */
static const struct real_cvd reals[] = {
	{"test-1.cvd", "test", 1, 0, 81, 1624388302, "22 Jun 2021 14-58 -0400", "micasnyd",
	 "a4ab60ae1c1c4e8f787459102dcfd90b", 2, 8394},
	{"test-2.cvd", "test", 2, 0, 81, 1624395301, "22 Jun 2021 16-55 -0400", "micasnyd",
	 "57ce21d16edad79ec53a16f03c96b680", 2, 8387},
	{"test-3.cvd", "test", 3, 11, 81, 1624408809, "22 Jun 2021 20-40 -0400", "raynman",
	 "75c84c7f1a2d37d9c2a37b2bc9b3a670", 18, 9483},
	{"test-4.cvd", "test", 4, 12, 81, 1624411776, "22 Jun 2021 21-29 -0400", "micasnyd",
	 "2c645dd81c87e46091e0cc136ae0b217", 18, 9653},
	{"test-5.cvd", "test", 5, 13, 81, 1624411902, "22 Jun 2021 21-31 -0400", "micasnyd",
	 "4e5effe6a32ca5a4aa15a1384daae354", 18, 9818},
	{"test-6.cvd", "test", 6, 14, 81, 1624412045, "22 Jun 2021 21-34 -0400", "micasnyd",
	 "3e249e00076b0b15bb54ced37be880c7", 18, 9952},
	{"bytecode.cvd", "bytecode", 19, 3, 51, 1273845430, "14 May 2010 09-57 -0400", "nervous",
	 "f341ae79c7e73561b89d4e0b8f6a79c0", 4, 60449},
};

/* ---- helpers ---- */

static void hex(const unsigned char *b, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", b[i]);
}

static int rm_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

/* A valid header text from fields (nf of them), space-padded to 512. */
static void make_header(char out[CVD_HEADER_LEN], const char *const *f, size_t nf)
{
	size_t o = 0;

	memset(out, ' ', CVD_HEADER_LEN);
	for (size_t i = 0; i < nf; i++) {
		size_t n = strlen(f[i]);

		if (i) {
			assert_true(o < CVD_HEADER_LEN);
			out[o++] = ':';
		}
		assert_true(o + n <= CVD_HEADER_LEN);
		memcpy(out + o, f[i], n);
		o += n;
	}
}

static const char *const good_fields[9] = {
	"ClamAV-VDB",
	"22 Jun 2021 14-58 -0400",
	"1",
	"0",
	"81",
	"a4ab60ae1c1c4e8f787459102dcfd90b",
	"ttQeKzTSL5iF5/IWsA8weveL64WDVkhgfbm/ABaW3xAWalVKcAp65Q/cWmhkhKFfHSLIXNfCzTLbhfTeISKp"
	"fWAheL7NZk+t6nQ8NEFBBst6CQcoFTwwyVLwwTSN38VYLW/vZFYphnkBcCotyo++NYU5VQ9JUA6dFQXxaU00b6c",
	"micasnyd",
	"1624388302",
};

static void expect_header_err(const char *hdr, size_t len, const char *want)
{
	struct cvd_header h;
	char err[CVD_ERR_LEN] = "";

	assert_int_equal(cvd_parse_header(hdr, len, &h, err), -EBADMSG);
	if (!strstr(err, want))
		fail_msg("error '%s' does not contain '%s'", err, want);
	/* nothing half-parsed is left behind */
	assert_int_equal(h.version, 0);
	assert_false(h.has_md5);
}

static bool headers_equal(const struct cvd_header *a, const struct cvd_header *b)
{
	return !strcmp(a->time, b->time) && a->version == b->version && a->sigs == b->sigs &&
	       a->flevel == b->flevel && a->has_md5 == b->has_md5 &&
	       (!a->has_md5 || !memcmp(a->md5, b->md5, CVD_MD5_LEN)) &&
	       a->has_dsig == b->has_dsig && (!a->has_dsig || !strcmp(a->dsig, b->dsig)) &&
	       !strcmp(a->builder, b->builder) && a->stime == b->stime;
}

static void sha256(const void *p, size_t n, unsigned char out[32])
{
	unsigned int len = 0;

	assert_int_equal(EVP_Digest(p, n, out, &len, EVP_sha256(), NULL), 1);
	assert_int_equal(len, 32);
}

/* ---- header: real files ---- */

static void test_real_headers(void **state)
{
	(void)state;
	NEED_TESTDATA();
	for (size_t i = 0; i < ARRAY_SIZE(reals); i++) {
		const struct real_cvd *r = &reals[i];
		char path[700], md5[33], err[CVD_ERR_LEN], out[CVD_HEADER_LEN];
		struct cvd_header h;
		struct cl_cvd *cl;
		size_t len;
		char *buf = read_data(r->file, &len);

		assert_int_equal(len, r->size);
		if (cvd_parse_header(buf, len, &h, err))
			fail_msg("%s: %s", r->file, err);
		assert_int_equal(h.version, r->version);
		assert_int_equal(h.sigs, r->sigs);
		assert_int_equal(h.flevel, r->flevel);
		assert_int_equal(h.stime, r->stime);
		assert_string_equal(h.time, r->time);
		assert_string_equal(h.builder, r->builder);
		assert_true(h.has_md5);
		hex(h.md5, CVD_MD5_LEN, md5);
		assert_string_equal(md5, r->md5);
		assert_true(h.has_dsig);
		assert_int_equal(strlen(h.dsig), CVD_DSIG_MAX);
		assert_int_equal(cvd_header_check_type(&h, CVD_TYPE_CVD, err), 0);

		/* libclamav's own parser reads the same */
		snprintf(path, sizeof(path), "%s/%s", testdata, r->file);
		cl = cl_cvdhead(path);
		assert_non_null(cl);
		assert_int_equal(cl->version, h.version);
		assert_int_equal(cl->sigs, h.sigs);
		assert_int_equal(cl->fl, h.flevel);
		assert_int_equal(cl->stime, h.stime);
		assert_string_equal(cl->time, h.time);
		assert_string_equal(cl->builder, h.builder);
		assert_string_equal(cl->md5, md5);
		assert_string_equal(cl->dsig, h.dsig);
		cl_cvdfree(cl);

		/* and what we write is byte for byte what sigtool wrote */
		assert_int_equal(cvd_format_header(&h, out, err), 0);
		assert_memory_equal(out, buf, CVD_HEADER_LEN);
		free(buf);
	}
}

static void test_real_payload_md5(void **state)
{
	(void)state;
	NEED_TESTDATA();
	for (size_t i = 0; i < ARRAY_SIZE(reals); i++) {
		struct cvd_header h, hfd;
		struct cvd_payload p, pfd;
		char path[700], err[CVD_ERR_LEN];
		size_t len;
		char *buf = read_data(reals[i].file, &len);
		int fd;

		assert_int_equal(cvd_payload_md5(buf, len, &h, &p, err), 0);
		assert_int_equal(p.offset, CVD_HEADER_LEN);
		assert_int_equal(p.length, len - CVD_HEADER_LEN);
		assert_int_equal(p.kind, CVD_PAYLOAD_GZIP);
		assert_int_equal(cvd_check_md5(&h, &p, err), 0);

		snprintf(path, sizeof(path), "%s/%s", testdata, reals[i].file);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		assert_true(fd >= 0);
		assert_int_equal(lseek(fd, 100, SEEK_SET), 100);
		assert_int_equal(cvd_payload_md5_fd(fd, &hfd, &pfd, err), 0);
		assert_int_equal(lseek(fd, 0, SEEK_CUR), 100); /* pread only */
		close(fd);
		assert_true(headers_equal(&h, &hfd));
		assert_memory_equal(&p, &pfd, sizeof(p));

		/* one flipped payload bit is caught */
		buf[len / 2] ^= 1;
		assert_int_equal(cvd_payload_md5(buf, len, &h, &p, err), 0);
		assert_int_equal(cvd_check_md5(&h, &p, err), -EBADMSG);
		assert_non_null(strstr(err, "differs from header field 5"));
		free(buf);
	}
}

/* Every prefix of a real container: a header error while the header is
 * incomplete, then a payload error or an MD5 mismatch, never a crash. */
static void test_real_truncated(void **state)
{
	struct cvd_header h;
	struct cvd_payload p;
	char err[CVD_ERR_LEN];
	size_t len;
	char *buf;

	(void)state;
	NEED_TESTDATA();
	buf = read_data("test-1.cvd", &len);
	for (size_t n = 0; n < len; n++) {
		char *cut = malloc(n ? n : 1); /* exact size: ASan sees any overread */

		assert_non_null(cut);
		memcpy(cut, buf, n);
		if (n < CVD_HEADER_LEN) {
			assert_int_equal(cvd_parse_header(cut, n, &h, err), -EBADMSG);
			assert_non_null(strstr(err, "truncated"));
		}
		if (n < CVD_HEADER_LEN + CVD_PAYLOAD_MIN) {
			assert_int_equal(cvd_payload_md5(cut, n, &h, &p, err), -EBADMSG);
		} else {
			assert_int_equal(cvd_payload_md5(cut, n, &h, &p, err), 0);
			assert_int_equal(cvd_check_md5(&h, &p, err), -EBADMSG);
		}
		free(cut);
	}
	free(buf);
}

/* ---- header: synthetic ---- */

static void test_header_roundtrip(void **state)
{
	struct cvd_header h = {0}, back;
	char out[CVD_HEADER_LEN], text[CVD_HEADER_LEN + 1], err[CVD_ERR_LEN];
	struct cl_cvd *cl;

	(void)state;
	snprintf(h.time, sizeof(h.time), "%s", "27 Nov 2025 04-28 +0000");
	h.version = 4294967295u;
	h.sigs = 12345;
	h.flevel = 216;
	h.has_md5 = true;
	for (int i = 0; i < CVD_MD5_LEN; i++)
		h.md5[i] = (unsigned char)(i * 17);
	h.has_dsig = true;
	memset(h.dsig, 'Z', CVD_DSIG_MAX);
	memcpy(h.dsig, "+/09az", 6);
	memset(h.builder, 'b', CVD_BUILDER_MAX);
	h.stime = 1764217680;

	assert_int_equal(cvd_format_header(&h, out, err), 0);
	assert_int_equal(out[CVD_HEADER_LEN - 1], ' ');
	assert_int_equal(cvd_parse_header(out, sizeof(out), &back, err), 0);
	assert_true(headers_equal(&h, &back));

	/* libclamav reads what we write */
	memcpy(text, out, CVD_HEADER_LEN);
	text[CVD_HEADER_LEN] = '\0';
	cl = cl_cvdparse(text);
	assert_non_null(cl);
	assert_int_equal(cl->version, h.version);
	assert_int_equal(cl->sigs, h.sigs);
	assert_int_equal(cl->fl, h.flevel);
	assert_string_equal(cl->builder, h.builder);
	assert_string_equal(cl->dsig, h.dsig);
	cl_cvdfree(cl);

	/* a .cld header: MD5 and signature X */
	h.has_md5 = false;
	h.has_dsig = false;
	h.version = 0;
	assert_int_equal(cvd_format_header(&h, out, err), 0);
	assert_non_null(memmem(out, CVD_HEADER_LEN, ":0:12345:216:X:X:bbbb", 21));
	assert_int_equal(cvd_parse_header(out, sizeof(out), &back, err), 0);
	assert_true(headers_equal(&h, &back));
	assert_int_equal(cvd_header_check_type(&back, CVD_TYPE_CLD, err), 0);
	assert_int_equal(cvd_header_check_type(&back, CVD_TYPE_CVD, err), -EBADMSG);
	assert_int_equal(cvd_header_check_type(&back, CVD_TYPE_CUD, err), -EBADMSG);
	assert_int_equal(cvd_header_check_type(&back, CVD_TYPE_UNKNOWN, err), -EINVAL);
	h.has_md5 = true;
	assert_int_equal(cvd_header_check_type(&h, CVD_TYPE_CUD, err), 0);
	assert_int_equal(cvd_header_check_type(&h, CVD_TYPE_CVD, err), -EBADMSG);
	assert_non_null(strstr(err, "field 6"));

	/* every field at its longest: 324 characters, well inside 512 */
	memset(h.time, 'T', CVD_TIME_MAX);
	h.version = h.sigs = h.flevel = h.stime = 4294967295u;
	h.has_md5 = h.has_dsig = true;
	assert_int_equal(cvd_format_header(&h, out, err), 0);
	assert_int_equal(out[323], '5');
	assert_int_equal(out[324], ' ');
	assert_int_equal(cvd_parse_header(out, sizeof(out), &back, err), 0);
	assert_true(headers_equal(&h, &back));
}

static void test_header_format_refuses(void **state)
{
	struct cvd_header h = {0};
	char out[CVD_HEADER_LEN], err[CVD_ERR_LEN];

	(void)state;
	snprintf(h.time, sizeof(h.time), "x");
	snprintf(h.builder, sizeof(h.builder), "me");
	assert_int_equal(cvd_format_header(&h, out, err), 0);

	snprintf(h.builder, sizeof(h.builder), "a b");
	assert_int_equal(cvd_format_header(&h, out, err), -EINVAL);
	assert_non_null(strstr(err, "field 7 (builder)"));
	snprintf(h.builder, sizeof(h.builder), "a:b");
	assert_int_equal(cvd_format_header(&h, out, err), -EINVAL);
	snprintf(h.builder, sizeof(h.builder), "%s", "");
	assert_int_equal(cvd_format_header(&h, out, err), -EINVAL);
	snprintf(h.builder, sizeof(h.builder), "me");

	snprintf(h.time, sizeof(h.time), "12:30");
	assert_int_equal(cvd_format_header(&h, out, err), -EINVAL);
	snprintf(h.time, sizeof(h.time), "x");

	h.has_dsig = true;
	snprintf(h.dsig, sizeof(h.dsig), "abc=");
	assert_int_equal(cvd_format_header(&h, out, err), -EINVAL);
	assert_non_null(strstr(err, "field 6 (digital signature)"));
	snprintf(h.dsig, sizeof(h.dsig), "Y");
	assert_int_equal(cvd_format_header(&h, out, err), -EINVAL);
	h.has_dsig = false;

	memset(h.time, 'x', sizeof(h.time)); /* not NUL-terminated */
	assert_int_equal(cvd_format_header(&h, out, err), -EINVAL);
	assert_int_equal(cvd_format_header(NULL, out, err), -EINVAL);
}

struct bad_field {
	size_t field;
	const char *value;
	const char *want;
};

static void test_header_every_field_wrong(void **state)
{
	static const struct bad_field bad[] = {
		{0, "ClamAV-VDX", "header field 0 (magic): 'ClamAV-VDX' is not ClamAV-VDB"},
		{0, "clamav-vdb", "field 0 (magic)"},
		{1, "", "header field 1 (build time): '' is empty"},
		{1, "0123456789012345678901234567890123", "field 1 (build time)"},
		{1, " 22 Jun 2021", "field 1 (build time)"},
		{1, "22 Jun\t2021", "not printable"},
		{2, "x1", "header field 2 (version): 'x1' is not a number"},
		{2, "-1", "field 2 (version): '-1' is not a number"},
		{2, "+1", "field 2 (version)"},
		{2, " 1", "field 2 (version)"},
		{2, "01", "field 2 (version): '01' has a leading zero"},
		{2, "4294967296", "field 2 (version): '4294967296' is out of range"},
		{2, "99999999999999999999999", "field 2 (version)"},
		{2, "", "field 2 (version): '' is empty"},
		{3, "1e3", "header field 3 (signature count): '1e3' is not a number"},
		{3, "18446744073709551617", "field 3 (signature count)"},
		{4, "x99", "header field 4 (functionality level): 'x99' is not a number"},
		{4, "0x51", "field 4 (functionality level)"},
		{5, "a4ab60ae1c1c4e8f787459102dcfd90", "header field 5 (MD5 of the payload)"},
		{5, "a4ab60ae1c1c4e8f787459102dcfd90b0", "field 5"},
		{5, "A4AB60AE1C1C4E8F787459102DCFD90B", "upper-case"},
		{5, "g4ab60ae1c1c4e8f787459102dcfd90b", "field 5 (MD5 of the payload)"},
		{5, "x", "field 5"},
		{6, "abc=def", "header field 6 (digital signature): character 4 ('=')"},
		{6, "Y", "field 6 (digital signature)"},
		{6, "ab-c", "field 6"},
		{7, "", "header field 7 (builder): '' is empty"},
		{7, "mica snyd", "field 7 (builder): 'mica snyd' contains a blank"},
		{7, "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", "field 7 (builder)"},
		{8, "", "header field 8 (creation time in seconds): '' is empty"},
		{8, "1624388302x",
		 "field 8 (creation time in seconds): '1624388302x' is not a number"},
		{8, "1624388302    junk", "field 8"},
		{8, "4294967296",
		 "field 8 (creation time in seconds): '4294967296' is out of range"},
		{8, "-5", "field 8"},
	};
	char hdr[CVD_HEADER_LEN];

	(void)state;
	make_header(hdr, good_fields, 9);
	{
		struct cvd_header h;
		char err[CVD_ERR_LEN];

		assert_int_equal(cvd_parse_header(hdr, sizeof(hdr), &h, err), 0);
	}
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		const char *f[9];

		memcpy(f, good_fields, sizeof(f));
		f[bad[i].field] = bad[i].value;
		make_header(hdr, f, 9);
		expect_header_err(hdr, sizeof(hdr), bad[i].want);
	}
	{
		char dsig[CVD_DSIG_MAX + 2];
		const char *f[9];

		memcpy(f, good_fields, sizeof(f));
		memset(dsig, 'a', CVD_DSIG_MAX + 1);
		dsig[CVD_DSIG_MAX + 1] = '\0';
		f[6] = dsig;
		make_header(hdr, f, 9);
		expect_header_err(hdr, sizeof(hdr),
				  "header field 6 (digital signature): 172 characters is too long");
		dsig[CVD_DSIG_MAX] = '\0'; /* 171: the longest there is */
		make_header(hdr, f, 9);
		{
			struct cvd_header h;
			char err[CVD_ERR_LEN];

			assert_int_equal(cvd_parse_header(hdr, sizeof(hdr), &h, err), 0);
		}
	}
}

static void test_header_structure(void **state)
{
	char hdr[CVD_HEADER_LEN + 16];
	const char *f[10];

	(void)state;
	memcpy(f, good_fields, sizeof(good_fields));

	/* missing fields: old 8-field headers (no stime) and shorter */
	for (size_t nf = 1; nf < 9; nf++) {
		char want[64];

		make_header(hdr, f, nf);
		snprintf(want, sizeof(want), "header: %zu fields, expected 9", nf);
		expect_header_err(hdr, CVD_HEADER_LEN, want);
	}
	/* an extra field */
	f[9] = "extra";
	make_header(hdr, f, 10);
	expect_header_err(hdr, CVD_HEADER_LEN, "header: 10 fields, expected 9");
	/* an empty field (cli_strtok would silently merge it) */
	memcpy(f, good_fields, sizeof(good_fields));
	f[3] = "";
	make_header(hdr, f, 9);
	expect_header_err(hdr, CVD_HEADER_LEN, "field 3 (signature count): '' is empty");

	/* padding: NUL refused wherever it is */
	memcpy(f, good_fields, sizeof(good_fields));
	make_header(hdr, f, 9);
	hdr[CVD_HEADER_LEN - 1] = '\0';
	expect_header_err(hdr, CVD_HEADER_LEN, "header byte 512 is NUL");
	make_header(hdr, f, 9);
	memset(hdr + 300, '\0', CVD_HEADER_LEN - 300);
	expect_header_err(hdr, CVD_HEADER_LEN, "header byte 301 is NUL");
	/* white space padding libclamav trims is fine */
	make_header(hdr, f, 9);
	hdr[400] = '\n';
	hdr[401] = '\t';
	hdr[CVD_HEADER_LEN - 1] = '\r';
	{
		struct cvd_header h;
		char err[CVD_ERR_LEN];

		assert_int_equal(cvd_parse_header(hdr, CVD_HEADER_LEN, &h, err), 0);
		assert_int_equal(h.stime, 1624388302);
		/* bytes after the first 512 are not the header's business */
		memset(hdr + CVD_HEADER_LEN, 'J', 16);
		assert_int_equal(cvd_parse_header(hdr, sizeof(hdr), &h, err), 0);
	}
	/* garbage in the padding */
	make_header(hdr, f, 9);
	hdr[450] = 'J';
	expect_header_err(hdr, CVD_HEADER_LEN, "field 8 (creation time in seconds)");
	make_header(hdr, f, 9);
	hdr[450] = (char)0xff;
	expect_header_err(hdr, CVD_HEADER_LEN, "header byte 451: 0xff");
	/* a newline inside the text */
	make_header(hdr, f, 9);
	hdr[20] = '\n';
	expect_header_err(hdr, CVD_HEADER_LEN, "header byte 21: 0x0a");

	/* not a header at all */
	memset(hdr, ' ', CVD_HEADER_LEN);
	expect_header_err(hdr, CVD_HEADER_LEN, "field 0 (magic)");
	memset(hdr, 0, CVD_HEADER_LEN);
	expect_header_err(hdr, CVD_HEADER_LEN, "header byte 1 is NUL");
	memset(hdr, 'A', CVD_HEADER_LEN);
	expect_header_err(hdr, CVD_HEADER_LEN, "field 0 (magic)");
}

/* The text cut at every length and padded: an error, or (cut inside the
 * last number) a valid header with another stime. */
static void test_header_text_cut(void **state)
{
	char hdr[CVD_HEADER_LEN], full[CVD_HEADER_LEN];
	size_t textlen = 0;

	(void)state;
	make_header(full, good_fields, 9);
	for (size_t i = 0; i < 9; i++)
		textlen += strlen(good_fields[i]) + (i > 0);
	for (size_t k = 0; k < textlen; k++) {
		struct cvd_header h;
		char err[CVD_ERR_LEN] = "";

		memset(hdr, ' ', sizeof(hdr));
		memcpy(hdr, full, k);
		if (cvd_parse_header(hdr, sizeof(hdr), &h, err) == 0) {
			assert_true(k > textlen - strlen(good_fields[8]));
			assert_int_not_equal(h.stime, 1624388302);
		} else {
			assert_true(err[0]);
		}
	}
	for (size_t n = 0; n < CVD_HEADER_LEN; n++) {
		char *cut = malloc(n ? n : 1);

		assert_non_null(cut);
		memcpy(cut, full, n);
		expect_header_err(cut, n, "header: truncated");
		free(cut);
	}
}

static void test_type_from_name(void **state)
{
	(void)state;
	assert_int_equal(cvd_type_from_name("main.cvd"), CVD_TYPE_CVD);
	assert_int_equal(cvd_type_from_name("/x/daily.CLD"), CVD_TYPE_CLD);
	assert_int_equal(cvd_type_from_name("local.cud"), CVD_TYPE_CUD);
	assert_int_equal(cvd_type_from_name("test-1.cvd.sign"), CVD_TYPE_UNKNOWN);
	assert_int_equal(cvd_type_from_name("cvd"), CVD_TYPE_UNKNOWN);
	assert_int_equal(cvd_type_from_name(".cvd"), CVD_TYPE_CVD);
	assert_int_equal(cvd_type_from_name(NULL), CVD_TYPE_UNKNOWN);
}

/* ---- payload ---- */

static void test_payload_kinds(void **state)
{
	char buf[CVD_HEADER_LEN + 32], err[CVD_ERR_LEN];
	struct cvd_header h;
	struct cvd_payload p;
	int pfd[2];

	(void)state;
	make_header(buf, good_fields, 9);
	memcpy(buf + CVD_HEADER_LEN, "COPYING\0\0\0", 10);
	assert_int_equal(cvd_payload_md5(buf, CVD_HEADER_LEN + 10, &h, &p, err), 0);
	assert_int_equal(p.kind, CVD_PAYLOAD_TAR);
	assert_int_equal(p.length, 10);

	memcpy(buf + CVD_HEADER_LEN, "\x1f\x8b\x08\x00\x00\x00\x00", 7);
	assert_int_equal(cvd_payload_md5(buf, CVD_HEADER_LEN + 7, &h, &p, err), 0);
	assert_int_equal(p.kind, CVD_PAYLOAD_GZIP);

	memcpy(buf + CVD_HEADER_LEN, "PK\x03\x04xxxx", 8);
	assert_int_equal(cvd_payload_md5(buf, CVD_HEADER_LEN + 8, &h, &p, err), -EBADMSG);
	assert_non_null(strstr(err, "neither gzip"));
	assert_int_equal(h.version, 0); /* nothing returned on failure */

	assert_int_equal(cvd_payload_md5(buf, CVD_HEADER_LEN + 6, &h, &p, err), -EBADMSG);
	assert_non_null(strstr(err, "6 bytes"));
	assert_int_equal(cvd_payload_md5(buf, CVD_HEADER_LEN, &h, &p, err), -EBADMSG);

	/* header without MD5 */
	{
		const char *f[9];

		memcpy(f, good_fields, sizeof(f));
		f[5] = "X";
		make_header(buf, f, 9);
		memcpy(buf + CVD_HEADER_LEN, "COPYING", 7);
		assert_int_equal(cvd_payload_md5(buf, CVD_HEADER_LEN + 7, &h, &p, err), 0);
		assert_int_equal(cvd_check_md5(&h, &p, err), -ENOENT);
	}

	/* fd: a pipe cannot be pread, a short file is truncated */
	assert_int_equal(pipe(pfd), 0);
	assert_int_equal(cvd_payload_md5_fd(pfd[0], &h, &p, err), -ESPIPE);
	assert_non_null(strstr(err, "cannot read"));
	close(pfd[0]);
	close(pfd[1]);
	{
		char path[] = "/tmp/test_cvd-XXXXXX";
		int fd = mkstemp(path);

		assert_true(fd >= 0);
		unlink(path);
		assert_int_equal(write(fd, buf, 100), 100);
		assert_int_equal(cvd_payload_md5_fd(fd, &h, &p, err), -EBADMSG);
		assert_non_null(strstr(err, "truncated: 100 of 512"));
		assert_int_equal(pwrite(fd, buf, CVD_HEADER_LEN, 0), CVD_HEADER_LEN);
		assert_int_equal(cvd_payload_md5_fd(fd, &h, &p, err), -EBADMSG);
		assert_non_null(strstr(err, "0 bytes"));
		assert_int_equal(pwrite(fd, "COPYING", 7, CVD_HEADER_LEN), 7);
		assert_int_equal(cvd_payload_md5_fd(fd, &h, &p, err), 0);
		assert_int_equal(p.kind, CVD_PAYLOAD_TAR);
		assert_int_equal(p.length, 7);
		close(fd);
	}
	assert_int_equal(cvd_payload_md5_fd(-1, &h, &p, err), -EINVAL);
}

/* ---- .info ---- */

static void test_real_info(void **state)
{
	(void)state;
	NEED_TESTDATA();
	for (size_t i = 0; i < ARRAY_SIZE(reals); i++) {
		const struct real_cvd *r = &reals[i];
		char dir[] = "/tmp/test_cvd-XXXXXX", path[700], err[CVD_ERR_LEN];
		struct cvd_header h;
		struct cvd_info info;
		struct dirent *de;
		size_t len, cvdlen, outlen;
		char *buf, *cvd, *out;
		DIR *d;

		assert_non_null(mkdtemp(dir));
		snprintf(path, sizeof(path), "%s/%s", testdata, r->file);
		assert_int_equal(cl_cvdunpack(path, dir, true), CL_SUCCESS);
		snprintf(path, sizeof(path), "%s/%s.info", dir, r->db);
		buf = read_all(path, &len);
		cvd = read_data(r->file, &cvdlen);
		assert_int_equal(cvd_parse_header(cvd, cvdlen, &h, err), 0);

		if (cvd_parse_info(buf, len, CVD_TYPE_CVD, &info, err))
			fail_msg("%s: %s", r->file, err);
		assert_int_equal(info.n_entries, r->n_entries);
		assert_int_equal(cvd_info_matches_header(&info, &h, err), 0);
		assert_false(info.hdr.has_md5);
		assert_false(info.hdr.has_dsig);
		assert_string_equal(info.hdr.builder, r->builder);
		assert_true(info.has_dsig);
		assert_in_range(strlen(info.dsig), 340, CVD_INFO_DSIG_MAX); /* real: 341, 342 */
		assert_memory_equal(buf + info.signed_len, "DSIG:", 5);
		assert_int_equal(buf[info.signed_len - 1], '\n');

		/* every listed member is there, with that size and SHA-256 */
		for (size_t j = 0; j < info.n_entries; j++) {
			const struct cvd_info_entry *e = &info.entries[j];
			unsigned char md[32];
			size_t mlen;
			char *m;

			snprintf(path, sizeof(path), "%s/%s", dir, e->name);
			m = read_all(path, &mlen);
			assert_int_equal(mlen, e->size);
			sha256(m, mlen, md);
			assert_memory_equal(md, e->sha256, 32);
			assert_ptr_equal(cvd_info_find(&info, e->name), e);
			free(m);
		}
		/* and every member is listed, but COPYING and the .info itself */
		d = opendir(dir);
		assert_non_null(d);
		while ((de = readdir(d))) {
			if (de->d_name[0] == '.' || !strcmp(de->d_name, "COPYING") ||
			    strstr(de->d_name, ".info"))
				continue;
			if (!cvd_info_find(&info, de->d_name))
				fail_msg("%s: member %s not in the .info", r->file, de->d_name);
		}
		closedir(d);
		assert_null(cvd_info_find(&info, "COPYING"));

		/* written back byte for byte */
		assert_int_equal(cvd_format_info(&info, &out, &outlen, err), 0);
		assert_int_equal(outlen, len);
		assert_memory_equal(out, buf, len);
		free(out);

		/* a .cud's .info may not carry DSIG; an unknown kind takes it */
		cvd_info_free(&info);
		assert_int_equal(cvd_parse_info(buf, len, CVD_TYPE_CUD, &info, err), -EBADMSG);
		assert_non_null(strstr(err, "DSIG in the .info of a .cud"));
		assert_null(info.entries);
		assert_int_equal(cvd_parse_info(buf, len, CVD_TYPE_UNKNOWN, &info, err), 0);
		cvd_info_free(&info);
		assert_int_equal(cvd_parse_info(buf, len, CVD_TYPE_CLD, &info, err), 0);

		/* cut at every length: always refused (no final LF, or no DSIG) */
		for (size_t n = 0; n < len; n++) {
			struct cvd_info cut_info;
			char *cut = malloc(n ? n : 1);

			assert_non_null(cut);
			memcpy(cut, buf, n);
			assert_int_equal(cvd_parse_info(cut, n, CVD_TYPE_CVD, &cut_info, err),
					 -EBADMSG);
			free(cut);
		}

		cvd_info_free(&info);
		cvd_info_free(&info); /* twice is fine */
		free(buf);
		free(cvd);
		nftw(dir, rm_cb, 8, FTW_DEPTH | FTW_PHYS);
	}
}

static const char good_info[] =
	"ClamAV-VDB:22 Jun 2021 14-58 -0400:1:0:81:X:X:micasnyd:1624388302\n"
	"test.ndb:240:244a20e9da37de181ede6db64f85c97916381d91f65e1b39e4f9300cb0726be9\n"
	"test.ldb:44:0748b843a1cea3242d70531083b84f877d8de398cfefe65509b5d3bb1e3bcb57\n"
	"DSIG:TFd9RBeu6wZwfMrWGsGH9WOSs1j+3s+PD2fVTLwR8Qgv2QVF25EXnIfH4cKmKRDoqDCLE0P6Kk3KRROkvaS\n";

static void expect_info_err(const char *text, size_t len, enum cvd_type type, const char *want)
{
	struct cvd_info info;
	char err[CVD_ERR_LEN] = "";
	char *copy = malloc(len ? len : 1); /* exact size for ASan */

	assert_non_null(copy);
	memcpy(copy, text, len);
	assert_int_equal(cvd_parse_info(copy, len, type, &info, err), -EBADMSG);
	if (!strstr(err, want))
		fail_msg("error '%s' does not contain '%s'", err, want);
	assert_null(info.entries);
	free(copy);
}

/* good_info with line (1-based) replaced by repl (NULL: removed) */
static char *info_with_line(size_t line, const char *repl)
{
	char *out = malloc(sizeof(good_info) + 200000);
	const char *p = good_info;
	size_t o = 0, l = 1;

	assert_non_null(out);
	while (*p) {
		const char *nl = strchr(p, '\n');
		size_t n = (size_t)(nl - p) + 1;

		if (l == line) {
			if (repl)
				o += (size_t)sprintf(out + o, "%s", repl);
		} else {
			memcpy(out + o, p, n);
			o += n;
		}
		p += n;
		l++;
	}
	out[o] = '\0';
	return out;
}

static void test_info_malformed(void **state)
{
	static const struct {
		size_t line;
		const char *repl;
		const char *want;
	} bad[] = {
		{2,
		 "test.ndb:240:244a20e9da37de181ede6db64f85c97916381d91f65e1b39e4f9300cb0726be\n",
		 "info line 2 field 2 (sha256): '244a20e9da37de181ede6db64f85c979...' is not 64 hex "
		 "digits"},
		{2,
		 "test.ndb:240:z44a20e9da37de181ede6db64f85c97916381d91f65e1b39e4f9300cb0726be9\n",
		 "info line 2 field 2 (sha256)"},
		{2,
		 "test.ndb:2x0:244a20e9da37de181ede6db64f85c97916381d91f65e1b39e4f9300cb0726be9\n",
		 "info line 2 field 1 (size): '2x0' is not a number"},
		{2,
		 "test.ndb:4294967296:244a20e9da37de181ede6db64f85c97916381d91f65e1b39e4f9300cb0726be9\n",
		 "info line 2 field 1 (size)"},
		{2, "test.ndb:240\n", "info line 2: 2 fields, expected 3"},
		{2,
		 "test.ndb:240:244a20e9da37de181ede6db64f85c97916381d91f65e1b39e4f9300cb0726be9:x\n",
		 "info line 2: 4 fields"},
		{2, ":240:244a20e9da37de181ede6db64f85c97916381d91f65e1b39e4f9300cb0726be9\n",
		 "info line 2 field 0 (name): '' is empty"},
		{2,
		 "../x.ndb:240:244a20e9da37de181ede6db64f85c97916381d91f65e1b39e4f9300cb0726be9\n",
		 "field 0 (name)"},
		{2, "..:240:244a20e9da37de181ede6db64f85c97916381d91f65e1b39e4f9300cb0726be9\n",
		 "field 0 (name)"},
		{2, "a b:240:244a20e9da37de181ede6db64f85c97916381d91f65e1b39e4f9300cb0726be9\n",
		 "field 0 (name)"},
		{2,
		 "test.ldb:240:244a20e9da37de181ede6db64f85c97916381d91f65e1b39e4f9300cb0726be9\n",
		 "info line 3 field 0 (name): 'test.ldb' is listed twice (also on line 2)"},
		{2, "\n", "info line 2: empty"},
		{2,
		 "test.ndb:240:244a20e9da37de181ede6db64f85c97916381d91f65e1b39e4f9300cb0726be9\r\n",
		 "info line 2: carriage return at column 78"},
		{2,
		 "t\x01st.ndb:1:244a20e9da37de181ede6db64f85c97916381d91f65e1b39e4f9300cb0726be9\n",
		 "info line 2: byte 0x01 at column 2"},
		{2, "ClamAV-VDB:22 Jun 2021 14-58 -0400:1:0:81:X:X:micasnyd:1624388302\n",
		 "info line 2: a second header line"},
		{2, "DSIG:abc\n", "info line 2: DSIG is not the last line"},
		{1, "test.ndb:1:244a20e9da37de181ede6db64f85c97916381d91f65e1b39e4f9300cb0726be9\n",
		 "info line 1: 'test.ndb:1:244a20e9da37de181ede6...' is not the header line"},
		{1, "ClamAV-VDB:22 Jun 2021 14-58 -0400:x1:0:81:X:X:micasnyd:1624388302\n",
		 "info line 1 field 2 (version): 'x1' is not a number"},
		{1, "ClamAV-VDB:22 Jun 2021 14-58 -0400:1:0:81:X:X:micasnyd\n",
		 "info line 1: 8 fields, expected 9"},
		{4, NULL, "info: no DSIG line"},
		{4, "DSIG:a=b\n", "info line 4 (DSIG): character 2 ('=')"},
		{4, "DSIG:\n", "info line 4 (DSIG): 0 characters"},
	};
	char line[CVD_INFO_LINE_MAX + 64];
	const char *lit;
	char *t;

	(void)state;
	{
		struct cvd_info info;
		char err[CVD_ERR_LEN];

		assert_int_equal(
			cvd_parse_info(good_info, strlen(good_info), CVD_TYPE_CVD, &info, err), 0);
		assert_int_equal(info.n_entries, 2);
		assert_int_equal(info.entries[1].size, 44);
		cvd_info_free(&info);
	}
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		t = info_with_line(bad[i].line, bad[i].repl);
		expect_info_err(t, strlen(t), CVD_TYPE_CVD, bad[i].want);
		free(t);
	}

	/* an overlong line */
	memset(line, 'a', CVD_INFO_LINE_MAX + 1);
	strcpy(line + CVD_INFO_LINE_MAX + 1, "\n");
	t = info_with_line(2, line);
	expect_info_err(t, strlen(t), CVD_TYPE_CVD, "info line 2: 1025 characters, more than 1024");
	free(t);

	/* too many entries: 1025 distinct lines */
	{
		size_t o = 0;

		t = malloc(CVD_INFO_MAX_SIZE);
		assert_non_null(t);
		o += (size_t)sprintf(
			t, "%s", "ClamAV-VDB:22 Jun 2021 14-58 -0400:1:0:81:X:X:m:1624388302\n");
		for (int i = 0; i <= CVD_INFO_MAX_ENTRIES; i++)
			o += (size_t)sprintf(t + o, "%d:1:%064d\n", i, 0);
		expect_info_err(t, o, CVD_TYPE_UNKNOWN,
				"info line 1026: more than 1024 member lines");
		free(t);
	}
	/* too big */
	t = calloc(1, CVD_INFO_MAX_SIZE + 1);
	assert_non_null(t);
	memset(t, '\n', CVD_INFO_MAX_SIZE + 1);
	expect_info_err(t, CVD_INFO_MAX_SIZE + 1, CVD_TYPE_CVD, "more than the 262144 allowed");
	free(t);

	/* structure */
	expect_info_err("", 0, CVD_TYPE_CVD, "info: empty");
	expect_info_err(good_info, strlen(good_info) - 1, CVD_TYPE_CVD,
			"info line 4: no newline at the end");
	lit = "ClamAV-VDB:22 Jun 2021 14-58 -0400:1:0:81:X:X:m:1\n";
	expect_info_err(lit, strlen(lit), CVD_TYPE_CUD, "info: no member lines");
	lit = "ClamAV-VDB:a:1:0:81:X:X:m:1\nDSIG:abc\n";
	expect_info_err(lit, strlen(lit), CVD_TYPE_CVD, "info: no member lines");
	expect_info_err("ClamAV-VDB:a:1:0:81:X:X:m:1\nx:1:2\0:3\n", 37, CVD_TYPE_UNKNOWN,
			"info line 2: byte 0x00 at column 6");
	/* a .info header line may carry a header signature (libclamav ignores it) */
	{
		char hdr[700];

		memset(line, 'a', 520);
		line[520] = '\0';
		snprintf(hdr, sizeof(hdr), "ClamAV-VDB:t:1:0:81:X:%.*s:m:1\nx:1:%064d\n", 171, line,
			 0);
		{
			struct cvd_info info;
			char err[CVD_ERR_LEN];

			assert_int_equal(
				cvd_parse_info(hdr, strlen(hdr), CVD_TYPE_UNKNOWN, &info, err), 0);
			assert_true(info.hdr.has_dsig);
			cvd_info_free(&info);
		}
	}
	/* the unsigned container's .info */
	{
		struct cvd_info info;
		char err[CVD_ERR_LEN];

		t = info_with_line(4, NULL);
		assert_int_equal(cvd_parse_info(t, strlen(t), CVD_TYPE_CUD, &info, err), 0);
		assert_false(info.has_dsig);
		assert_int_equal(info.signed_len, 0);
		cvd_info_free(&info);
		free(t);
	}
}

static void test_info_roundtrip(void **state)
{
	struct cvd_info info = {0}, back;
	struct cvd_info_entry e[3];
	char err[CVD_ERR_LEN];
	size_t len, len2;
	char *out, *out2;

	(void)state;
	memset(e, 0, sizeof(e)); /* padding too: compared with memcmp below */
	snprintf(info.hdr.time, sizeof(info.hdr.time), "27 Nov 2025 04-28 +0000");
	info.hdr.version = 7;
	info.hdr.sigs = 3;
	info.hdr.flevel = 216;
	snprintf(info.hdr.builder, sizeof(info.hdr.builder), "scanengine");
	info.hdr.stime = 1764217680;
	snprintf(e[0].name, sizeof(e[0].name), "local.hdb");
	e[0].size = 4294967295u;
	memset(e[0].sha256, 0xab, 32);
	snprintf(e[1].name, sizeof(e[1].name), "local.ldb");
	snprintf(e[2].name, sizeof(e[2].name), "%.100s",
		 "0123456789012345678901234567890123456789012345678901234567890123456789"
		 "012345678901234567890123456789");
	e[2].sha256[31] = 1;
	info.entries = e;
	info.n_entries = 3;

	/* the builder's flow: unsigned text, sign its SHA-256, add DSIG */
	assert_int_equal(cvd_format_info(&info, &out, &len, err), 0);
	assert_int_equal(strlen(out), len);
	assert_int_equal(cvd_parse_info(out, len, CVD_TYPE_CUD, &back, err), 0);
	assert_int_equal(back.n_entries, 3);
	assert_int_equal(back.entries[0].size, 4294967295u);
	assert_memory_equal(back.entries, e, sizeof(e));
	assert_int_equal(cvd_info_matches_header(&back, &info.hdr, err), 0);
	cvd_info_free(&back);

	info.has_dsig = true;
	memset(info.dsig, 'Q', CVD_INFO_DSIG_MAX);
	assert_int_equal(cvd_format_info(&info, &out2, &len2, err), 0);
	assert_memory_equal(out, out2, len); /* the signed part is the unsigned text */
	assert_int_equal(cvd_parse_info(out2, len2, CVD_TYPE_CVD, &back, err), 0);
	assert_int_equal(back.signed_len, len);
	assert_string_equal(back.dsig, info.dsig);
	cvd_info_free(&back);
	free(out);
	free(out2);

	/* refused: what would not read back */
	info.dsig[5] = '=';
	assert_int_equal(cvd_format_info(&info, &out, &len, err), -EINVAL);
	assert_non_null(strstr(err, "cannot write .info: info line 5 (DSIG)"));
	assert_null(out);
	info.has_dsig = false;
	snprintf(e[1].name, sizeof(e[1].name), "local.hdb");
	assert_int_equal(cvd_format_info(&info, &out, &len, err), -EINVAL);
	assert_non_null(strstr(err, "listed twice"));
	snprintf(e[1].name, sizeof(e[1].name), "sub/x.ldb");
	assert_int_equal(cvd_format_info(&info, &out, &len, err), -EINVAL);
	snprintf(e[1].name, sizeof(e[1].name), "x\nDSIG:abc");
	assert_int_equal(cvd_format_info(&info, &out, &len, err), -EINVAL);
	snprintf(e[1].name, sizeof(e[1].name), "local.ldb");
	memset(e[1].name, 'n', sizeof(e[1].name)); /* not NUL-terminated */
	assert_int_equal(cvd_format_info(&info, &out, &len, err), -EINVAL);
	snprintf(e[1].name, sizeof(e[1].name), "local.ldb");
	info.hdr.has_dsig = true;
	memset(info.hdr.dsig, 'a', sizeof(info.hdr.dsig) - 1);
	assert_int_equal(cvd_format_info(&info, &out, &len, err), 0); /* 171-digit field 6 fits */
	free(out);
	info.hdr.has_dsig = false;
	info.n_entries = 0;
	assert_int_equal(cvd_format_info(&info, &out, &len, err), -EINVAL);
}

static void test_info_matches_header(void **state)
{
	struct cvd_info info;
	struct cvd_header h;
	char err[CVD_ERR_LEN];

	(void)state;
	assert_int_equal(cvd_parse_info(good_info, strlen(good_info), CVD_TYPE_CVD, &info, err), 0);
	h = info.hdr;
	assert_int_equal(cvd_info_matches_header(&info, &h, err), 0);
	h.version = 2;
	assert_int_equal(cvd_info_matches_header(&info, &h, err), -EBADMSG);
	assert_string_equal(err, "info line 1 field 2 (version) is 1, the container header's is 2 "
				 "(libclamav: corrupted CVD header)");
	h = info.hdr;
	h.sigs = 9;
	assert_int_equal(cvd_info_matches_header(&info, &h, err), -EBADMSG);
	assert_non_null(strstr(err, "field 3"));
	h = info.hdr;
	h.flevel = 9;
	assert_int_equal(cvd_info_matches_header(&info, &h, err), -EBADMSG);
	assert_non_null(strstr(err, "field 4"));
	h = info.hdr;
	h.stime = 9;
	assert_int_equal(cvd_info_matches_header(&info, &h, err), -EBADMSG);
	assert_non_null(strstr(err, "field 8"));
	h = info.hdr;
	snprintf(h.builder, sizeof(h.builder), "other"); /* libclamav does not compare it */
	assert_int_equal(cvd_info_matches_header(&info, &h, err), 0);
	cvd_info_free(&info);
}

static void test_bad_arguments(void **state)
{
	struct cvd_header h;
	struct cvd_info info;
	struct cvd_sign s;
	struct cvd_payload p;
	char err[CVD_ERR_LEN];
	char *out;
	size_t len;

	(void)state;
	assert_int_equal(cvd_parse_header(NULL, 1, &h, err), -EINVAL);
	assert_int_equal(cvd_parse_header("x", 1, NULL, err), -EINVAL);
	assert_int_equal(cvd_parse_info(NULL, 1, CVD_TYPE_CVD, &info, err), -EINVAL);
	assert_int_equal(cvd_parse_info("x\n", 2, (enum cvd_type)9, &info, err), -EINVAL);
	assert_int_equal(cvd_parse_sign(NULL, 1, &s, err), -EINVAL);
	assert_int_equal(cvd_payload_md5(NULL, 1, &h, &p, err), -EINVAL);
	assert_int_equal(cvd_check_md5(NULL, &p, err), -EINVAL);
	assert_int_equal(cvd_format_info(NULL, &out, &len, err), -EINVAL);
	assert_int_equal(cvd_format_sign(NULL, &out, &len, err), -EINVAL);
	assert_int_equal(cvd_info_matches_header(NULL, &h, err), -EINVAL);
	assert_null(cvd_info_find(NULL, "x"));
	/* err may be NULL */
	assert_int_equal(cvd_parse_header("x", 1, &h, NULL), -EBADMSG);
	cvd_info_free(NULL);
	cvd_sign_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_real_headers),
		cmocka_unit_test(test_real_payload_md5),
		cmocka_unit_test(test_real_truncated),
		cmocka_unit_test(test_header_roundtrip),
		cmocka_unit_test(test_header_format_refuses),
		cmocka_unit_test(test_header_every_field_wrong),
		cmocka_unit_test(test_header_structure),
		cmocka_unit_test(test_header_text_cut),
		cmocka_unit_test(test_type_from_name),
		cmocka_unit_test(test_payload_kinds),
		cmocka_unit_test(test_real_info),
		cmocka_unit_test(test_info_malformed),
		cmocka_unit_test(test_info_roundtrip),
		cmocka_unit_test(test_info_matches_header),
		cmocka_unit_test(test_bad_arguments),
	};

	return cmocka_run_group_tests(tests, group_setup, NULL);
}
