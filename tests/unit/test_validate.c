/* test_validate: unit tests of defs/validate.c (cmocka): each stage's
 * decisions, against the real Talos-signed test definitions of the shared
 * testdata directory and against containers made here (a correct .cud:
 * gzip'd tar of COPYING, <db>.info, members; header with the payload MD5),
 * altered one way at a time. The test load and canary run for real: a
 * forked validator process with the real libclamav. */
#include "defs/validate.h"
#include "common/config.h"
#include "common/util.h"
#include "defs/cvd.h"
#include "sandbox/sandbox.h"
#include "tests/unit/testdata.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <json-c/json.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

struct fx {
	char base[64];	  /* private tree */
	char in[128];	  /* input files */
	char work[128];	  /* the work directory */
	char active[128]; /* an active generation, when a case needs one */
	struct config cfg;
	struct sandbox_identity id;
	struct validate_policy pol;
	struct validate_result res;
	int rc;
};

static const char *testdata(void)
{
	const char *d = testdata_dir();

	if (!d)
		fail_msg("shared testdata/clamav not found (set SCANENGINE_TESTDATA)");
	return d;
}

static int rm_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

static void write_file(const char *path, const void *data, size_t len, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);

	assert_true(fd >= 0);
	assert_int_equal(util_write_all(fd, data, len), 0);
	assert_int_equal(fchmod(fd, mode), 0);
	close(fd);
}

static char *read_file(const char *path, size_t *len)
{
	struct stat st;
	char *buf;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	buf = malloc((size_t)st.st_size + 1);
	assert_non_null(buf);
	assert_int_equal(util_read_all(fd, buf, (size_t)st.st_size), st.st_size);
	close(fd);
	*len = (size_t)st.st_size;
	return buf;
}

/* Copy a real test file into the input directory (alone: no .sign). */
static void real(struct fx *fx, const char *name, char *out, size_t outlen)
{
	char src[PATH_MAX];
	size_t len;
	char *buf;

	snprintf(src, sizeof(src), "%s/%s", testdata(), name);
	buf = read_file(src, &len);
	snprintf(out, outlen, "%s/%s", fx->in, name);
	write_file(out, buf, len, 0644);
	free(buf);
}

/* ---- containers made here ---- */

struct member {
	const char *name;
	const char *data;
	int kind; /* 0 file, 1 symlink to data */
};

struct cud {
	const char *db;
	uint32_t version, flevel, sigs;
	const struct member *m;
	size_t n;
	bool bad_sha;  /* the .info lists a wrong SHA-256 for the first member */
	bool unlisted; /* the last member is left out of the .info */
};

static void sha256(const char *data, size_t len, unsigned char out[32])
{
	unsigned int n = 32;

	assert_int_equal(EVP_Digest(data, len, out, &n, EVP_sha256(), NULL), 1);
}

static void add_entry(struct archive *a, const char *name, const char *data, int kind)
{
	struct archive_entry *e = archive_entry_new();

	archive_entry_set_pathname(e, name);
	archive_entry_set_mode(e, 0644);
	if (kind == 1) {
		archive_entry_set_filetype(e, AE_IFLNK);
		archive_entry_set_symlink(e, data);
		archive_entry_set_size(e, 0);
	} else {
		archive_entry_set_filetype(e, AE_IFREG);
		archive_entry_set_size(e, (la_int64_t)strlen(data));
	}
	assert_int_equal(archive_write_header(a, e), ARCHIVE_OK);
	if (kind == 0)
		assert_int_equal(archive_write_data(a, data, strlen(data)),
				 (la_ssize_t)strlen(data));
	archive_entry_free(e);
}

/* Write c as <in>/<file>; out gets the path. */
static void make_cud(struct fx *fx, const struct cud *c, const char *file, char *out, size_t outlen)
{
	struct cvd_header h = {
		.version = c->version, .sigs = c->sigs, .flevel = c->flevel, .stime = 1700000000};
	struct cvd_info info = {0};
	char hdr[CVD_HEADER_LEN], err[CVD_ERR_LEN], iname[140], *itext = NULL;
	size_t ilen = 0, used = 0, plen;
	unsigned char *payload = malloc(1 << 20);
	unsigned int mdlen = 16;
	struct archive *a;

	assert_non_null(payload);
	util_strlcpy(h.time, "14 Nov 2023 22-13 +0000", sizeof(h.time));
	util_strlcpy(h.builder, "unit", sizeof(h.builder));
	info.hdr = h;
	info.entries = calloc(c->n + 1, sizeof(*info.entries));
	assert_non_null(info.entries);
	for (size_t i = 0; i < c->n; i++) {
		/* links, names the .info cannot hold, the member left out */
		if (c->m[i].kind || strchr(c->m[i].name, '/') || (c->unlisted && i + 1 == c->n))
			continue;
		struct cvd_info_entry *e = &info.entries[info.n_entries++];

		util_strlcpy(e->name, c->m[i].name, sizeof(e->name));
		e->size = (uint32_t)strlen(c->m[i].data);
		sha256(c->m[i].data, strlen(c->m[i].data), e->sha256);
		if (c->bad_sha && i == 0)
			e->sha256[0] ^= 1;
	}
	if (info.n_entries == 0) { /* an .info needs one entry */
		struct cvd_info_entry *e = &info.entries[info.n_entries++];

		util_strlcpy(e->name, "none.hdb", sizeof(e->name));
	}
	assert_int_equal(cvd_format_info(&info, &itext, &ilen, err), 0);
	a = archive_write_new();
	assert_int_equal(archive_write_set_format_ustar(a), ARCHIVE_OK);
	assert_int_equal(archive_write_add_filter_gzip(a), ARCHIVE_OK);
	assert_int_equal(archive_write_open_memory(a, payload, 1 << 20, &used), ARCHIVE_OK);
	add_entry(a, "COPYING", "made by test_validate\n", 0);
	snprintf(iname, sizeof(iname), "%s.info", c->db);
	add_entry(a, iname, itext, 0);
	for (size_t i = 0; i < c->n; i++)
		add_entry(a, c->m[i].name, c->m[i].data, c->m[i].kind);
	assert_int_equal(archive_write_close(a), ARCHIVE_OK);
	archive_write_free(a);
	plen = used;
	h.has_md5 = true;
	assert_int_equal(EVP_Digest(payload, plen, h.md5, &mdlen, EVP_md5(), NULL), 1);
	assert_int_equal(cvd_format_header(&h, hdr, err), 0);
	snprintf(out, outlen, "%s/%s", fx->in, file);
	{
		int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

		assert_true(fd >= 0);
		assert_int_equal(util_write_all(fd, hdr, sizeof(hdr)), 0);
		assert_int_equal(util_write_all(fd, payload, plen), 0);
		close(fd);
	}
	free(itext);
	free(info.entries);
	free(payload);
}

#define EICAR_NDB                                                                                  \
	"Eicar-Test-Signature:0:0:"                                                                \
	"58354f2150254041505b345c505a58353428505e2937434329377d2445494341522d5354414e444152442d41" \
	"4e544956495255532d544553542d46494c452124482b482a\n"

/* A good .cud: one EICAR body signature. */
static void good_cud(struct fx *fx, const char *file, uint32_t version, char *out, size_t len)
{
	static const struct member m[] = {{"org.ndb", EICAR_NDB, 0}};
	const struct cud c = {"org", version, 81, 1, m, 1};

	make_cud(fx, &c, file, out, len);
}

/* ---- running ---- */

static void run(struct fx *fx, const char *const *files, size_t n, const char *active)
{
	validate_result_free(&fx->res);
	util_rm_rf(fx->work);
	assert_int_equal(mkdir(fx->work, 0700), 0);
	fx->rc = validate_candidate(files, n, active, fx->work, &fx->pol, &fx->res);
}

static void run1(struct fx *fx, const char *file)
{
	run(fx, &file, 1, NULL);
}

static void assert_pass(const struct fx *fx)
{
	if (fx->rc) {
		int s = fx->res.failed;

		fail_msg("rc %d, stage %s: %s", fx->rc, validate_stage_name(fx->res.failed),
			 s < VS_NSTAGES ? fx->res.stages[s].reason : fx->res.stages[0].reason);
	}
	for (int s = 0; s < VS_NSTAGES; s++)
		assert_int_equal(fx->res.stages[s].status, VST_PASS);
	assert_int_equal(fx->res.failed, VS_NSTAGES);
}

/* Refused at stage s with a reason containing needle; no later stage ran. */
static void assert_refused(const struct fx *fx, enum validate_stage s, const char *needle)
{
	const char *why = fx->res.stages[s].reason;

	if (fx->rc != -EBADMSG || fx->res.failed != s)
		fail_msg("expected a refusal at %s, got rc %d at %s: %s", validate_stage_name(s),
			 fx->rc, validate_stage_name(fx->res.failed),
			 fx->res.failed < VS_NSTAGES ? fx->res.stages[fx->res.failed].reason : "");
	assert_int_equal(fx->res.stages[s].status, VST_FAIL);
	if (!strstr(why, needle))
		fail_msg("reason \"%s\" lacks \"%s\"", why, needle);
	for (int t = 0; t < (int)s; t++)
		assert_int_equal(fx->res.stages[t].status, VST_PASS);
	for (int t = s + 1; t < VS_NSTAGES; t++)
		assert_int_equal(fx->res.stages[t].status, VST_NOT_RUN);
}

static int setup(void **state)
{
	struct fx *fx = calloc(1, sizeof(*fx));

	assert_non_null(fx);
	snprintf(fx->base, sizeof(fx->base), "/tmp/test_validate.XXXXXX");
	assert_non_null(mkdtemp(fx->base));
	assert_int_equal(chmod(fx->base, 0755), 0);
	snprintf(fx->in, sizeof(fx->in), "%s/in", fx->base);
	snprintf(fx->work, sizeof(fx->work), "%s/work", fx->base);
	snprintf(fx->active, sizeof(fx->active), "%s/active", fx->base);
	assert_int_equal(mkdir(fx->in, 0755), 0);
	assert_int_equal(mkdir(fx->active, 0755), 0);
	assert_int_equal(config_defaults(&fx->cfg), 0);
	fx->cfg.allow_unsigned = true;
	fx->cfg.validator_timeout = 60;
	free(fx->cfg.certs_dir);
	fx->cfg.certs_dir = strdup(testdata());
	if (sandbox_lookup_user("scanengine", &fx->id))
		fx->id.valid = false;
	fx->pol.cfg = &fx->cfg;
	fx->pol.id = &fx->id;
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fx *fx = *state;

	validate_result_free(&fx->res);
	config_free(&fx->cfg);
	nftw(fx->base, rm_cb, 32, FTW_DEPTH | FTW_PHYS);
	free(fx);
	return 0;
}

/* ---- names ---- */

static void test_db_name(void **state)
{
	static const struct {
		const char *path, *db;
	} ok[] = {
		{"test-3.cvd", "test"},	    {"/x/daily.cld", "daily"}, {"dir/test-10.cud", "test"},
		{"a-b.cvd", "a-b"},	    {"x-1-2.cvd", "x-1"},      {"local.hdb", "local.hdb"},
		{"org-2.ndb", "org-2.ndb"}, {"main.CVD", "main"},      {"rules.yar", "rules.yar"},
	};
	static const char *const bad[] = {".hidden.cvd", "notes.txt", "test.info", "noext",
					  "-3.cvd",	 "a b.hdb",   "",	   "x/"};
	char db[128];

	(void)state;
	for (size_t i = 0; i < SE_ARRAY_SIZE(ok); i++) {
		assert_int_equal(validate_db_name(ok[i].path, db, sizeof(db)), 0);
		assert_string_equal(db, ok[i].db);
	}
	for (size_t i = 0; i < SE_ARRAY_SIZE(bad); i++)
		if (validate_db_name(bad[i], db, sizeof(db)) != -EINVAL)
			fail_msg("\"%s\" accepted as %s", bad[i], db);
	assert_int_equal(validate_db_name("test-3.cvd", db, 4), -EINVAL);
}

static void test_stage_names(void **state)
{
	(void)state;
	for (int s = 0; s < VS_NSTAGES; s++)
		assert_int_equal(validate_stage_parse(validate_stage_name(s)), s);
	assert_int_equal(validate_stage_parse("test-load"), VS_TEST_LOAD);
	assert_int_equal(validate_stage_parse("test_load"), VS_TEST_LOAD);
	assert_int_equal(validate_stage_parse("activate"), -EINVAL);
	assert_int_equal(validate_stage_parse(""), -EINVAL);
	assert_string_equal(validate_stage_name(VS_NSTAGES), "none");
}

/* ---- the whole pipeline ---- */

/* A real official CVD passes every stage, and the record says what it is. */
static void test_real_cvd(void **state)
{
	struct fx *fx = *state;
	char path[PATH_MAX], set[PATH_MAX];
	struct json_object *j, *v;

	real(fx, "test-6.cvd", path, sizeof(path));
	run1(fx, path);
	assert_pass(fx);
	assert_int_equal(fx->res.ndbs, 1);
	assert_string_equal(fx->res.dbs[0].name, "test");
	assert_string_equal(fx->res.dbs[0].file, "test.cvd");
	assert_int_equal(fx->res.dbs[0].version, 6);
	assert_int_equal(fx->res.dbs[0].sigs, 14);
	assert_int_equal(fx->res.dbs[0].loaded, 14);
	assert_string_equal(fx->res.dbs[0].auth, "legacy");
	assert_int_equal(strlen(fx->res.dbs[0].sha256), 64);
	assert_int_equal(fx->res.loaded_sigs, 14);
	assert_true(fx->res.engine_kib > 1000);
	snprintf(set, sizeof(set), "%s/set/test.cvd", fx->work);
	assert_int_equal(access(set, R_OK), 0);
	j = validate_result_json(&fx->res);
	assert_non_null(j);
	assert_true(json_object_object_get_ex(j, "passed", &v) && json_object_get_boolean(v));
	assert_true(json_object_object_get_ex(j, "stages", &v));
	assert_int_equal(json_object_array_length(v), VS_NSTAGES);
	json_object_put(j);
}

/* New files replace their database in the active set; the rest is carried
 * over, .sign files included. */
static void test_carry_over(void **state)
{
	struct fx *fx = *state;
	char path[PATH_MAX], p[PATH_MAX + 32];
	bool seen_hdb = false;

	snprintf(p, sizeof(p), "%s/local.hdb", fx->active);
	write_file(p, "44d88612fea8a8f36de82e1278abb02f:68:Eicar-Test-Signature\n", 57, 0644);
	snprintf(p, sizeof(p), "%s/org.cud", fx->active);
	good_cud(fx, "org-1.cud", 1, path, sizeof(path));
	assert_int_equal(rename(path, p), 0);
	snprintf(p, sizeof(p), "%s/manifest.json", fx->active);
	write_file(p, "{}", 2, 0644);
	good_cud(fx, "org-2.cud", 2, path, sizeof(path));
	run(fx, (const char *const[]){path}, 1, fx->active);
	assert_pass(fx);
	assert_int_equal(fx->res.ndbs, 2);
	for (size_t i = 0; i < fx->res.ndbs; i++) {
		const struct validate_db *d = &fx->res.dbs[i];

		if (strcmp(d->name, "local.hdb") == 0) {
			seen_hdb = true;
			assert_false(d->is_new);
			assert_string_equal(d->auth, "carried");
		} else {
			assert_string_equal(d->name, "org");
			assert_true(d->is_new);
			assert_int_equal(d->version, 2);
		}
	}
	assert_true(seen_hdb);
	snprintf(p, sizeof(p), "%s/set/manifest.json", fx->work);
	assert_int_equal(access(p, F_OK), -1);

	/* drop: a database the caller says is gone */
	fx->pol.drop = (const char *const[]){"local.hdb"};
	fx->pol.ndrop = 1;
	run(fx, (const char *const[]){path}, 1, fx->active);
	assert_pass(fx);
	assert_int_equal(fx->res.ndbs, 1);
}

/* ---- 1 format ---- */

static void test_format_html(void **state)
{
	struct fx *fx = *state;
	static const char html[] = "<!DOCTYPE html>\n<html><head><title>404 Not Found</title>"
				   "</head><body><h1>Not Found</h1></body></html>\n";
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/daily.cvd", fx->in);
	write_file(path, html, sizeof(html) - 1, 0644);
	run1(fx, path);
	assert_refused(fx, VS_FORMAT, "HTML");
	assert_string_equal(fx->res.offending, "daily.cvd");
	/* the same page as a plain signature file */
	snprintf(path, sizeof(path), "%s/local.hdb", fx->in);
	write_file(path, html, sizeof(html) - 1, 0644);
	run1(fx, path);
	assert_refused(fx, VS_FORMAT, "HTML document");
}

static void test_format_names(void **state)
{
	struct fx *fx = *state;
	char a[PATH_MAX], b[PATH_MAX], p[PATH_MAX];

	snprintf(p, sizeof(p), "%s/notes.txt", fx->in);
	write_file(p, "x\n", 2, 0644);
	run1(fx, p);
	assert_refused(fx, VS_FORMAT, "not a definitions file name");

	real(fx, "test-2.cdiff", p, sizeof(p));
	run1(fx, p);
	assert_refused(fx, VS_FORMAT, "patch");

	real(fx, "test-5.cvd", a, sizeof(a));
	real(fx, "test-6.cvd", b, sizeof(b));
	run(fx, (const char *const[]){a, b}, 2, NULL);
	assert_refused(fx, VS_FORMAT, "both database test");

	snprintf(p, sizeof(p), "%s/missing.cvd", fx->in);
	run1(fx, p);
	assert_refused(fx, VS_FORMAT, "No such file");

	snprintf(p, sizeof(p), "%s/test-6.cvd.sign", fx->in);
	write_file(p, "#clamsign-1.0\n", 14, 0644);
	run(fx, (const char *const[]){a, p}, 2, NULL);
	assert_refused(fx, VS_FORMAT, "no file test-6.cvd was given");

	run(fx, NULL, 0, NULL);
	assert_refused(fx, VS_FORMAT, "no definitions file given");
}

static void test_format_truncated(void **state)
{
	struct fx *fx = *state;
	char path[PATH_MAX], cut[PATH_MAX];
	size_t len;
	char *buf;

	real(fx, "test-6.cvd", path, sizeof(path));
	buf = read_file(path, &len);
	snprintf(cut, sizeof(cut), "%s/t/test.cvd", fx->in);
	mkdir(fx->in, 0755);
	{
		char d[PATH_MAX];

		snprintf(d, sizeof(d), "%s/t", fx->in);
		assert_int_equal(mkdir(d, 0755), 0);
	}
	write_file(cut, buf, 300, 0644);
	run1(fx, cut);
	assert_refused(fx, VS_FORMAT, "test.cvd");
	write_file(cut, buf, 512, 0644);
	run1(fx, cut);
	assert_refused(fx, VS_FORMAT, "no payload");
	/* a payload that is neither gzip nor tar */
	memcpy(buf + 512, "PK\x03\x04", 4);
	write_file(cut, buf, len, 0644);
	run1(fx, cut);
	assert_refused(fx, VS_FORMAT, "not a gzip tar");
	free(buf);
}

/* ---- 2 integrity ---- */

/* One flipped byte anywhere: refused at format or integrity. */
static void test_integrity_flipped(void **state)
{
	struct fx *fx = *state;
	char path[PATH_MAX], bad[PATH_MAX + 16], d[PATH_MAX];
	size_t len, offs[16], n = 0;
	char *buf;

	real(fx, "test-6.cvd", path, sizeof(path));
	buf = read_file(path, &len);
	/* header fields: time, version, sigs, md5, dsig, builder, stime,
	 * padding; then the payload's start, middle and end */
	offs[n++] = 12;
	offs[n++] = 35;
	offs[n++] = 37;
	offs[n++] = 45;
	offs[n++] = 100;
	offs[n++] = 200;
	offs[n++] = 270;
	offs[n++] = 300;
	offs[n++] = 511;
	offs[n++] = 512;
	offs[n++] = 600;
	offs[n++] = len / 2;
	offs[n++] = len - 1;
	snprintf(d, sizeof(d), "%s/f", fx->in);
	assert_int_equal(mkdir(d, 0755), 0);
	snprintf(bad, sizeof(bad), "%s/test.cvd", d);
	for (size_t i = 0; i < n; i++) {
		buf[offs[i]] ^= 0x01;
		write_file(bad, buf, len, 0644);
		buf[offs[i]] ^= 0x01;
		run1(fx, bad);
		if (fx->rc != -EBADMSG ||
		    (fx->res.failed != VS_FORMAT && fx->res.failed != VS_INTEGRITY))
			fail_msg("byte %zu flipped: rc %d at %s: %s", offs[i], fx->rc,
				 validate_stage_name(fx->res.failed),
				 fx->res.failed < VS_NSTAGES ? fx->res.stages[fx->res.failed].reason
							     : "passed");
	}
	free(buf);
}

/* A container renamed to another database is refused. */
static void test_integrity_renamed(void **state)
{
	struct fx *fx = *state;
	char path[PATH_MAX], p[PATH_MAX];

	real(fx, "bytecode.cvd", path, sizeof(path));
	snprintf(p, sizeof(p), "%s/test.cvd", fx->in);
	assert_int_equal(rename(path, p), 0);
	run1(fx, p);
	assert_refused(fx, VS_INTEGRITY, "holds no test.info");
}

/* ---- 3 authenticity ---- */

static void test_authenticity(void **state)
{
	struct fx *fx = *state;
	char path[PATH_MAX], sign[PATH_MAX], src[PATH_MAX];
	size_t len;
	char *buf;

	good_cud(fx, "org-1.cud", 1, path, sizeof(path));
	run1(fx, path);
	assert_pass(fx);
	assert_string_equal(fx->res.dbs[0].auth, "unsigned");

	fx->cfg.allow_unsigned = false;
	run1(fx, path);
	assert_refused(fx, VS_AUTHENTICITY, "org-1.cud");

	/* DatabaseDirectory's own files: trusted where they are */
	fx->pol.local = true;
	run1(fx, path);
	assert_pass(fx);
	assert_string_equal(fx->res.dbs[0].auth, "local");
	assert_int_equal(chmod(path, 0666), 0);
	run1(fx, path);
	assert_refused(fx, VS_AUTHENTICITY, "writable by group or others");
	assert_int_equal(chmod(path, 0644), 0);
	fx->pol.local = false;

	/* .sign: the real one verifies; another file's does not */
	real(fx, "test-3.cvd", path, sizeof(path));
	snprintf(src, sizeof(src), "%s/test-3.cvd.sign", testdata());
	buf = read_file(src, &len);
	snprintf(sign, sizeof(sign), "%s/test-3.cvd.sign", fx->in);
	write_file(sign, buf, len, 0644);
	free(buf);
	run1(fx, path);
	assert_pass(fx);
	assert_string_equal(fx->res.dbs[0].auth, "sign");
	assert_non_null(strstr(fx->res.dbs[0].signer, "ClamAV TEST CVD Signing Cert"));

	snprintf(src, sizeof(src), "%s/test-2.cvd.sign", testdata());
	buf = read_file(src, &len);
	write_file(sign, buf, len, 0644);
	free(buf);
	run1(fx, path);
	assert_refused(fx, VS_AUTHENTICITY, "does not verify");

	/* RequireSignFile: a valid legacy signature is not enough */
	unlink(sign);
	run1(fx, path);
	assert_pass(fx);
	assert_string_equal(fx->res.dbs[0].auth, "legacy");
	fx->cfg.require_sign = true;
	run1(fx, path);
	assert_refused(fx, VS_AUTHENTICITY, "test-3.cvd");
}

/* ---- 4 compatibility ---- */

static void test_compatibility(void **state)
{
	struct fx *fx = *state;
	static const struct member m[] = {{"org.ndb", EICAR_NDB, 0}};
	const struct cud future = {"org", 1, 999, 1, m, 1};
	char path[PATH_MAX], a[PATH_MAX + 32], p3[PATH_MAX], p6[PATH_MAX];

	make_cud(fx, &future, "org-1.cud", path, sizeof(path));
	run1(fx, path);
	assert_refused(fx, VS_COMPATIBILITY, "needs functionality level 999");

	real(fx, "test-6.cvd", p6, sizeof(p6));
	snprintf(a, sizeof(a), "%s/test.cvd", fx->active);
	assert_int_equal(link(p6, a), 0);
	real(fx, "test-3.cvd", p3, sizeof(p3));
	run(fx, (const char *const[]){p3}, 1, fx->active);
	assert_refused(fx, VS_COMPATIBILITY, "older than the active test version 6");
	run(fx, (const char *const[]){p6}, 1, fx->active);
	assert_refused(fx, VS_COMPATIBILITY, "already active");
	fx->pol.rollback = true;
	run(fx, (const char *const[]){p3}, 1, fx->active);
	assert_pass(fx);
}

/* ---- 5 unpack ---- */

static void test_unpack(void **state)
{
	struct fx *fx = *state;
	static const struct member up[] = {{"org.ndb", EICAR_NDB, 0}, {"../x.ndb", "y\n", 0}};
	static const struct member ln[] = {{"org.ndb", EICAR_NDB, 0}, {"l.ndb", "/etc/passwd", 1}};
	static const struct member ok2[] = {{"org.ndb", EICAR_NDB, 0},
					    {"more.hdb",
					     "44d88612fea8a8f36de82e1278abb02f:68:Eicar-Test-"
					     "Signature\n",
					     0}};
	struct cud c = {"org", 1, 81, 2, up, 2};
	char path[PATH_MAX], p[PATH_MAX];

	make_cud(fx, &c, "org-1.cud", path, sizeof(path));
	run1(fx, path);
	assert_refused(fx, VS_UNPACK, "../x.ndb");
	assert_non_null(strstr(fx->res.offending, "../x.ndb"));
	snprintf(p, sizeof(p), "%s/x.ndb", fx->work);
	assert_int_equal(access(p, F_OK), -1);

	c.m = ln;
	make_cud(fx, &c, "org-1.cud", path, sizeof(path));
	run1(fx, path);
	assert_refused(fx, VS_UNPACK, "l.ndb");

	c.m = ok2;
	c.bad_sha = true;
	make_cud(fx, &c, "org-1.cud", path, sizeof(path));
	run1(fx, path);
	assert_refused(fx, VS_UNPACK, "SHA-256 differs from org.info");

	c.bad_sha = false;
	c.unlisted = true;
	make_cud(fx, &c, "org-1.cud", path, sizeof(path));
	run1(fx, path);
	/* refused as it comes, before it is written */
	assert_refused(fx, VS_UNPACK, "member 'more.hdb': not listed in the .info");

	c.unlisted = false;
	fx->cfg.max_def_entries = 1;
	make_cud(fx, &c, "org-1.cud", path, sizeof(path));
	run1(fx, path);
	assert_refused(fx, VS_UNPACK,
		       "org.info lists 2 members, more than MaxDefinitionEntries (1)");
}

/* ---- 6 test load ---- */

static void test_test_load(void **state)
{
	struct fx *fx = *state;
	static const struct member bad[] = {{"org.ndb", EICAR_NDB "Broken:0:0:zz\n", 0}};
	static const struct member good[] = {{"org.ndb", EICAR_NDB, 0}};
	struct cud c = {"org", 1, 81, 2, bad, 1};
	char path[PATH_MAX];

	make_cud(fx, &c, "org-1.cud", path, sizeof(path));
	run1(fx, path);
	assert_refused(fx, VS_TEST_LOAD, "org.cud");

	/* a header promising more than loads */
	c.m = good;
	c.sigs = 100;
	make_cud(fx, &c, "org-1.cud", path, sizeof(path));
	run1(fx, path);
	assert_refused(fx, VS_TEST_LOAD, "1 signatures loaded, its header says 100");
}

/* ---- 7 canary ---- */

static void test_canary(void **state)
{
	struct fx *fx = *state;
	static const struct member elf[] = {{"org.ndb", EICAR_NDB "Org.Any.ELF:0:0:7f454c46\n", 0}};
	static const struct member none[] = {
		{"org.hdb", "0123456789abcdef0123456789abcdef:5:Nothing\n", 0}};
	struct cud c = {"org", 1, 81, 2, elf, 1};
	char path[PATH_MAX], cdir[PATH_MAX], p[PATH_MAX + 16];

	make_cud(fx, &c, "org-1.cud", path, sizeof(path));
	run1(fx, path);
	assert_refused(fx, VS_CANARY, "(system file) detected as Org.Any.ELF");
	assert_non_null(strstr(fx->res.offending, "system file"));

	/* forced: the failure is recorded, the set passes */
	fx->pol.force = 1u << VS_CANARY;
	run1(fx, path);
	assert_int_equal(fx->rc, 0);
	assert_int_equal(fx->res.stages[VS_CANARY].status, VST_FORCED);
	assert_non_null(strstr(fx->res.stages[VS_CANARY].reason, "forced past"));
	fx->pol.force = 0;

	/* a set that does not detect EICAR */
	c.m = none;
	c.sigs = 1;
	make_cud(fx, &c, "org-1.cud", path, sizeof(path));
	run1(fx, path);
	assert_refused(fx, VS_CANARY, "canary EICAR not detected");

	/* CanaryDirectory: each of its files must be detected */
	snprintf(cdir, sizeof(cdir), "%s/canaries", fx->base);
	assert_int_equal(mkdir(cdir, 0755), 0);
	snprintf(p, sizeof(p), "%s/sample.bin", cdir);
	write_file(p, "an organisation's own sample\n", 29, 0644);
	free(fx->cfg.canary_dir);
	fx->cfg.canary_dir = strdup(cdir);
	good_cud(fx, "org-1.cud", 1, path, sizeof(path));
	run1(fx, path);
	assert_refused(fx, VS_CANARY, "sample.bin not detected");

	/* CleanCorpusDirectory: none of its files may be */
	free(fx->cfg.canary_dir);
	fx->cfg.canary_dir = NULL;
	free(fx->cfg.clean_corpus_dir);
	fx->cfg.clean_corpus_dir = strdup(cdir);
	run1(fx, path);
	assert_pass(fx);
	write_file(p, "X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*", 68,
		   0644);
	run1(fx, path);
	assert_refused(fx, VS_CANARY, "sample.bin detected as Eicar-Test-Signature");

	/* an unreadable configured directory is an error, not a pass */
	free(fx->cfg.clean_corpus_dir);
	fx->cfg.clean_corpus_dir = strdup("/nonexistent/clean");
	run1(fx, path);
	assert_int_equal(fx->rc, -ENOENT);
	assert_non_null(strstr(fx->res.stages[VS_TEST_LOAD].reason, "/nonexistent/clean"));
}

/* skip_unchanged (DatabaseDirectory imports): files identical to the
 * active set's are carried, not new; nothing new and nothing dropped stops
 * after format with unchanged. */
static void test_skip_unchanged(void **state)
{
	struct fx *fx = *state;
	char cud[PATH_MAX], hdb[PATH_MAX], a[PATH_MAX + 32];
	static const char sig[] = "44d88612fea8a8f36de82e1278abb02f:68:Eicar-Test-Signature\n";
	const char *files[2];

	good_cud(fx, "org.cud", 1, cud, sizeof(cud));
	snprintf(a, sizeof(a), "%s/org.cud", fx->active);
	assert_int_equal(link(cud, a), 0);
	snprintf(hdb, sizeof(hdb), "%s/local.hdb", fx->in);
	write_file(hdb, sig, sizeof(sig) - 1, 0644);
	snprintf(a, sizeof(a), "%s/local.hdb", fx->active);
	write_file(a, sig, sizeof(sig) - 1, 0644);
	files[0] = cud;
	files[1] = hdb;
	fx->pol.skip_unchanged = true;
	fx->pol.local = true;
	run(fx, files, 2, fx->active);
	assert_int_equal(fx->rc, 0);
	assert_true(fx->res.unchanged);
	assert_int_equal(fx->res.stages[VS_FORMAT].status, VST_PASS);
	assert_int_equal(fx->res.stages[VS_INTEGRITY].status, VST_NOT_RUN);

	/* one file changed: only it is new */
	write_file(hdb, "0123456789abcdef0123456789abcdef:5:Other\n", 41, 0644);
	run(fx, files, 2, fx->active);
	assert_pass(fx);
	assert_false(fx->res.unchanged);
	for (size_t i = 0; i < fx->res.ndbs; i++)
		assert_int_equal(fx->res.dbs[i].is_new,
				 strcmp(fx->res.dbs[i].name, "local.hdb") == 0);

	/* nothing changed, but a database is gone: not unchanged */
	write_file(hdb, sig, sizeof(sig) - 1, 0644);
	fx->pol.drop = (const char *const[]){"gone.ndb"};
	fx->pol.ndrop = 1;
	snprintf(a, sizeof(a), "%s/gone.ndb", fx->active);
	write_file(a, "Gone:0:*:41424344\n", 18, 0644);
	run(fx, files, 2, fx->active);
	assert_pass(fx);
	assert_false(fx->res.unchanged);
	assert_int_equal(fx->res.ndbs, 2);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_db_name),
		cmocka_unit_test(test_stage_names),
		T(test_real_cvd),
		T(test_carry_over),
		T(test_skip_unchanged),
		T(test_format_html),
		T(test_format_names),
		T(test_format_truncated),
		T(test_integrity_flipped),
		T(test_integrity_renamed),
		T(test_authenticity),
		T(test_compatibility),
		T(test_unpack),
		T(test_test_load),
		T(test_canary),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
