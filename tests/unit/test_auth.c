/* test_auth: unit tests of defs/auth.c (cmocka).
 *
 * The real files are the genuine Talos-signed test definitions and .sign
 * files of the shared testdata/clamav directory ($SCANENGINE_TESTDATA, else
 * found from the working directory or this binary); tests that need them
 * skip without them. Nothing here depends on the wall clock staying before
 * the test root's expiry (2027-03-26): the real .sign files are checked at
 * their signingTime (2025), signatures made here with the test key carry a
 * fixed signingTime inside the test certificates' validity, and the time
 * rule itself is tested with a CA generated at run time around "now". */
#include "defs/auth.h"

#include "common/util.h"
#include "defs/cvd.h"
#include "tests/unit/cvd_fixture.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <clamav.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/bio.h>
#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define DAY	     86400
#define T_2025_03_26 1742947200 /* the test root's notBefore day (00:00 UTC) */
#define T_2025_04_30 1745971200
#define T_2025_06_01 1748736000	  /* inside every test certificate's validity */
#define NO_ATTRS     ((time_t)-1) /* cms_sign: no signed attributes at all */
#define TEST_SIGNER  "C = US, ST = MD, O = Cisco, OU = Talos, CN = ClamAV TEST CVD Signing Cert"

/* ---- helpers ---- */

/* A fresh private directory for one test; rm_dir removes it. */
static void make_dir(char *out, size_t n)
{
	snprintf(out, n, "/tmp/test_auth.XXXXXX");
	assert_non_null(mkdtemp(out));
}

static void rm_dir(const char *dir)
{
	assert_int_equal(util_rm_rf(dir), 0);
}

static void data_path(char *out, size_t n, const char *name)
{
	snprintf(out, n, "%s/%s", testdata, name);
}

static void write_file(const char *path, const void *data, size_t len)
{
	FILE *f = fopen(path, "wb");

	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

/* Copy testdata file name to dir/as. */
static void copy_data(const char *name, const char *dir, const char *as)
{
	char src[700], dst[700];
	size_t len;
	char *buf;

	data_path(src, sizeof(src), name);
	snprintf(dst, sizeof(dst), "%s/%s", dir, as);
	buf = read_all(src, &len);
	write_file(dst, buf, len);
	free(buf);
}

/* dir/certs holding copies of the named testdata certificates; the path is
 * written to out. */
static void certs_dir(const char *dir, char *out, size_t n, const char *cert1, const char *cert2)
{
	snprintf(out, n, "%s/certs", dir);
	assert_int_equal(mkdir(out, 0700), 0);
	if (cert1)
		copy_data(cert1, out, cert1);
	if (cert2)
		copy_data(cert2, out, cert2);
}

/* Open descriptors of this process: every path of auth_check() must close
 * what it opened. */
static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;

	if (!d)
		return -1;
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

static struct auth_policy policy(const char *certs)
{
	struct auth_policy p = {.certs_dir = certs, .flevel = cl_retflevel()};

	return p;
}

/* A refusal: rc as expected, method none, one line "authenticity: ..."
 * containing what. */
static void assert_refused(int rc, int want, const struct auth_result *res, const char *err,
			   const char *what)
{
	if (rc != want || !strstr(err, what))
		fail_msg("rc %d (want %d), err '%s' (want '%s')", rc, want, err, what);
	assert_int_equal(res->method, AUTH_NONE);
	assert_int_equal(strncmp(err, "authenticity: ", 14), 0);
	assert_null(strchr(err, '\n'));
	assert_true(strlen(err) < AUTH_ERR_LEN);
}

static void assert_ok(int rc, const char *err, const struct auth_result *res, enum auth_method want)
{
	if (rc)
		fail_msg("rc %d: %s", rc, err);
	assert_int_equal(res->method, want);
}

/* Write a .sign at path with the given entries: ranges and DERs. */
struct entry {
	uint32_t min, max;
	bool has_max;
	const unsigned char *der;
	size_t der_len;
};

static void write_sign(const char *path, const struct entry *es, size_t n)
{
	struct cvd_sign_entry e[4] = {0};
	struct cvd_sign s = {e, n};
	char err[CVD_ERR_LEN], *out;
	size_t len;

	assert_true(n <= 4);
	for (size_t i = 0; i < n; i++) {
		e[i].min_flevel = es[i].min;
		e[i].max_flevel = es[i].max;
		e[i].has_max = es[i].has_max;
		e[i].der = (unsigned char *)es[i].der;
		e[i].der_len = es[i].der_len;
	}
	if (cvd_format_sign(&s, &out, &len, err))
		fail_msg("cvd_format_sign: %s", err);
	write_file(path, out, len);
	free(out);
}

static X509 *load_cert(const char *name)
{
	char path[700];
	FILE *f;
	X509 *x;

	data_path(path, sizeof(path), name);
	f = fopen(path, "r");
	assert_non_null(f);
	x = PEM_read_X509(f, NULL, NULL, NULL);
	assert_non_null(x);
	fclose(f);
	return x;
}

static EVP_PKEY *load_test_key(void)
{
	char path[700];
	EVP_PKEY *k;
	FILE *f;

	data_path(path, sizeof(path), "signing-test.key");
	f = fopen(path, "r");
	assert_non_null(f);
	k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	assert_non_null(k);
	fclose(f);
	return k;
}

/* DER of a detached CMS SignedData over data by cert/key with the extra
 * certificates chain, digest md, signingTime st (NO_ATTRS: no signed
 * attributes, hence no signingTime), signed nsigners times. OPENSSL_free
 * the result. */
static unsigned char *cms_sign(X509 *cert, EVP_PKEY *key, STACK_OF(X509) * chain, const void *data,
			       size_t len, const EVP_MD *md, time_t st, int nsigners,
			       size_t *der_len)
{
	unsigned int flags = CMS_DETACHED | CMS_BINARY | CMS_PARTIAL;
	BIO *in = BIO_new_mem_buf(data, (int)len);
	CMS_ContentInfo *cms;
	unsigned char *der = NULL;
	int n;

	assert_non_null(in);
	cms = CMS_sign(NULL, NULL, chain, NULL, flags);
	assert_non_null(cms);
	for (int i = 0; i < nsigners; i++) {
		/* the second time, the certificate is in already */
		unsigned int f = flags | (st == NO_ATTRS ? CMS_NOATTR : 0) | (i ? CMS_NOCERTS : 0);
		CMS_SignerInfo *si = CMS_add1_signer(cms, cert, key, md, f);

		assert_non_null(si);
		if (st != NO_ATTRS) {
			/* CMS_final() adds the current time only when there
			 * is no signingTime yet. */
			ASN1_TIME *t = ASN1_TIME_set(NULL, st);

			assert_non_null(t);
			assert_int_equal(CMS_signed_add1_attr_by_NID(si, NID_pkcs9_signingTime,
								     ASN1_STRING_type(t), t, -1),
					 1);
			ASN1_TIME_free(t);
		}
	}
	assert_int_equal(CMS_final(cms, in, NULL, flags), 1);
	n = i2d_CMS_ContentInfo(cms, &der);
	assert_true(n > 0);
	*der_len = (size_t)n;
	CMS_ContentInfo_free(cms);
	BIO_free(in);
	return der;
}

/* Sign data with the real test signing key (intermediate included),
 * signingTime fixed inside the test certificates' validity. */
static unsigned char *test_key_sign(const void *data, size_t len, size_t *der_len)
{
	EVP_PKEY *key = load_test_key();
	X509 *cert = load_cert("signing-test.crt");
	STACK_OF(X509) *chain = sk_X509_new_null();
	unsigned char *der;

	assert_non_null(chain);
	assert_true(sk_X509_push(chain, load_cert("intermediate-test.crt")) > 0);
	der = cms_sign(cert, key, chain, data, len, EVP_sha256(), T_2025_06_01, 1, der_len);
	sk_X509_pop_free(chain, X509_free);
	X509_free(cert);
	EVP_PKEY_free(key);
	return der;
}

static void add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509_EXTENSION *ext;

	X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	assert_non_null(ext);
	assert_int_equal(X509_add_ext(x, ext, -1), 1);
	X509_EXTENSION_free(ext);
}

/* A certificate for key named cn, valid [nb, na], issued by issuer/ikey
 * (NULL: self-signed): a CA, or a code signing leaf (no S/MIME purpose, so
 * only "any purpose" verification accepts it). */
static X509 *make_cert(const char *cn, EVP_PKEY *key, X509 *issuer, EVP_PKEY *ikey, time_t nb,
		       time_t na, bool ca, long serial)
{
	X509 *x = X509_new();
	X509_NAME *name;

	assert_non_null(x);
	assert_int_equal(X509_set_version(x, 2), 1);
	assert_int_equal(ASN1_INTEGER_set(X509_get_serialNumber(x), serial), 1);
	assert_non_null(ASN1_TIME_set(X509_getm_notBefore(x), nb));
	assert_non_null(ASN1_TIME_set(X509_getm_notAfter(x), na));
	name = X509_get_subject_name(x);
	assert_int_equal(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
						    (const unsigned char *)cn, -1, -1, 0),
			 1);
	assert_int_equal(X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name), 1);
	assert_int_equal(X509_set_pubkey(x, key), 1);
	add_ext(x, issuer ? issuer : x, NID_basic_constraints,
		ca ? "critical,CA:TRUE" : "critical,CA:FALSE");
	add_ext(x, issuer ? issuer : x, NID_key_usage,
		ca ? "critical,keyCertSign,cRLSign" : "critical,digitalSignature");
	if (!ca)
		add_ext(x, issuer, NID_ext_key_usage, "critical,codeSigning");
	assert_true(X509_sign(x, issuer ? ikey : key, EVP_sha256()) > 0);
	return x;
}

static void write_cert_pem(const char *path, X509 *x)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_int_equal(PEM_write_X509(f, x), 1);
	assert_int_equal(fclose(f), 0);
}

/* ---- the real test definitions ---- */

static const char *const real_signed[] = {
	"test-1.cvd",	"test-2.cvd",	"test-3.cvd",	"test-4.cvd",
	"test-5.cvd",	"test-6.cvd",	"test-2.cdiff", "test-3.cdiff",
	"test-4.cdiff", "test-5.cdiff", "test-6.cdiff",
};

/* Every real file with its .sign, CertsDirectory = the test root: signed,
 * by the test signing certificate, checked at its signingTime (2025), so
 * regardless of today's date. */
static void test_real_sign_test_root(void **state)
{
	const unsigned int levels[] = {0, 216, 230, 231, 100000};
	char dir[64], certs[128], path[700], err[AUTH_ERR_LEN];
	struct auth_result res;

	(void)state;
	NEED_TESTDATA();
	make_dir(dir, sizeof(dir));
	certs_dir(dir, certs, sizeof(certs), "clamav-test-root.crt", NULL);
	for (size_t i = 0; i < SE_ARRAY_SIZE(real_signed); i++) {
		for (size_t l = 0; l < SE_ARRAY_SIZE(levels); l++) {
			struct auth_policy pol = policy(certs);

			pol.flevel = levels[l];
			pol.require_sign = l % 2;
			data_path(path, sizeof(path), real_signed[i]);
			assert_ok(auth_check(path, NULL, &pol, &res, err), err, &res, AUTH_SIGN);
			assert_string_equal(res.signer, TEST_SIGNER);
			assert_int_equal(res.sign_line, 2);
			assert_int_equal(res.sign_flevel, levels[l] > 230 ? levels[l] : 230);
			assert_true(res.signing_time >= T_2025_03_26);
			assert_true(res.signing_time < T_2025_04_30);
			assert_int_equal(res.verified_at, res.signing_time);
			assert_string_equal(err, "");
		}
	}
	/* res may be NULL */
	data_path(path, sizeof(path), "test-1.cvd");
	{
		struct auth_policy pol = policy(certs);

		assert_int_equal(auth_check(path, NULL, &pol, NULL, err), 0);
	}
	rm_dir(dir);
}

/* The same with the production root only: the chain does not lead there,
 * and a .sign that does not verify refuses even a valid legacy CVD. */
static void test_real_sign_production_root(void **state)
{
	char dir[64], certs[128], path[700], err[AUTH_ERR_LEN];
	struct auth_result res;

	(void)state;
	NEED_TESTDATA();
	make_dir(dir, sizeof(dir));
	certs_dir(dir, certs, sizeof(certs), "clamav-root.crt", NULL);
	for (size_t i = 0; i < SE_ARRAY_SIZE(real_signed); i++) {
		for (int req = 0; req < 2; req++) {
			struct auth_policy pol = policy(certs);

			pol.require_sign = req;
			pol.allow_unsigned = !req;
			data_path(path, sizeof(path), real_signed[i]);
			assert_refused(auth_check(path, NULL, &pol, &res, err), -EBADMSG, &res, err,
				       ".sign does not verify: certificate chain: unable to get "
				       "local issuer certificate");
		}
	}
	/* the test CVD itself is fine: without the .sign it is legacy */
	copy_data("test-1.cvd", dir, "test-1.cvd");
	snprintf(path, sizeof(path), "%s/test-1.cvd", dir);
	{
		struct auth_policy pol = policy(certs);

		assert_ok(auth_check(path, NULL, &pol, &res, err), err, &res, AUTH_LEGACY);
	}
	rm_dir(dir);
}

/* No .sign: the Talos header signature (cl_cvdverify) authenticates an
 * official CVD, unless RequireSignFile. */
static void test_legacy(void **state)
{
	static const char *const cvds[] = {"test-1.cvd", "test-2.cvd", "test-3.cvd",
					   "test-4.cvd", "test-5.cvd", "test-6.cvd"};
	char dir[64], path[700], err[AUTH_ERR_LEN];
	struct auth_policy pol = policy(NULL);
	struct auth_result res;
	time_t before = time(NULL);

	(void)state;
	NEED_TESTDATA();
	make_dir(dir, sizeof(dir));
	for (size_t i = 0; i < SE_ARRAY_SIZE(cvds); i++) {
		copy_data(cvds[i], dir, cvds[i]);
		snprintf(path, sizeof(path), "%s/%s", dir, cvds[i]);
		pol.require_sign = false;
		assert_ok(auth_check(path, NULL, &pol, &res, err), err, &res, AUTH_LEGACY);
		assert_string_equal(res.signer, "");
		assert_true(res.verified_at >= before && res.verified_at <= time(NULL));
		assert_int_equal(res.signing_time, 0);
		pol.require_sign = true;
		assert_refused(auth_check(path, NULL, &pol, &res, err), -EPERM, &res, err,
			       "has no .sign file and RequireSignFile is on");
	}
	/* bytecode.cvd has no .sign in testdata: checked in place */
	data_path(path, sizeof(path), "bytecode.cvd.sign");
	assert_int_equal(access(path, F_OK), -1);
	data_path(path, sizeof(path), "bytecode.cvd");
	pol.require_sign = false;
	assert_ok(auth_check(path, NULL, &pol, &res, err), err, &res, AUTH_LEGACY);
	/* upper-case extension: libclamav compares it without case too */
	copy_data("bytecode.cvd", dir, "BYTECODE.CVD");
	snprintf(path, sizeof(path), "%s/BYTECODE.CVD", dir);
	assert_ok(auth_check(path, NULL, &pol, &res, err), err, &res, AUTH_LEGACY);
	/* the private directory of the check is gone again */
	{
		char tmp[128], probe[256];

		snprintf(tmp, sizeof(tmp), "%s/tmp", dir);
		assert_int_equal(mkdir(tmp, 0700), 0);
		pol.tmp_dir = tmp;
		assert_ok(auth_check(path, NULL, &pol, &res, err), err, &res, AUTH_LEGACY);
		assert_int_equal(rmdir(tmp), 0); /* empty */
		/* unusable tmp_dir: said */
		snprintf(probe, sizeof(probe), "%s/missing", dir);
		pol.tmp_dir = probe;
		assert_refused(auth_check(path, NULL, &pol, &res, err), -ENOENT, &res, err,
			       "cannot create a private directory in");
	}
	rm_dir(dir);
}

/* A .sign of another file refuses, also when the file's legacy signature is
 * valid; a named .sign (the mirror's "<db>-<version>.cvd.sign") is used
 * instead of "<file>.sign". */
static void test_sign_of_another_file(void **state)
{
	char dir[64], certs[128], path[700], sign[700], err[AUTH_ERR_LEN];
	struct auth_result res;
	struct auth_policy pol;

	(void)state;
	NEED_TESTDATA();
	make_dir(dir, sizeof(dir));
	certs_dir(dir, certs, sizeof(certs), "clamav-test-root.crt", NULL);
	pol = policy(certs);
	copy_data("test-1.cvd", dir, "test-1.cvd");
	copy_data("test-2.cvd.sign", dir, "test-1.cvd.sign");
	snprintf(path, sizeof(path), "%s/test-1.cvd", dir);
	assert_refused(auth_check(path, NULL, &pol, &res, err), -EBADMSG, &res, err,
		       "test-1.cvd.sign does not verify: signature does not match test-1.cvd");

	/* named .sign: the other file's is refused, the right one accepted
	 * even though "<file>.sign" next to it is wrong */
	data_path(sign, sizeof(sign), "test-2.cvd.sign");
	assert_refused(auth_check(path, sign, &pol, &res, err), -EBADMSG, &res, err,
		       "test-2.cvd.sign does not verify: signature does not match test-1.cvd");
	data_path(sign, sizeof(sign), "test-1.cvd.sign");
	assert_ok(auth_check(path, sign, &pol, &res, err), err, &res, AUTH_SIGN);
	/* a .cdiff's .sign for the .cvd of the same version */
	data_path(sign, sizeof(sign), "test-2.cdiff.sign");
	data_path(path, sizeof(path), "test-2.cvd");
	assert_refused(auth_check(path, sign, &pol, &res, err), -EBADMSG, &res, err,
		       "signature does not match test-2.cvd");
	/* a named .sign must exist */
	snprintf(sign, sizeof(sign), "%s/none.sign", dir);
	assert_refused(auth_check(path, sign, &pol, &res, err), -ENOENT, &res, err,
		       "cannot open none.sign");
	rm_dir(dir);
}

static void flip(const char *path, long off)
{
	FILE *f = fopen(path, "r+b");
	int ch;

	assert_non_null(f);
	assert_int_equal(fseek(f, off, SEEK_SET), 0);
	ch = fgetc(f);
	assert_true(ch != EOF);
	assert_int_equal(fseek(f, off, SEEK_SET), 0);
	assert_true(fputc(ch ^ 1, f) != EOF);
	assert_int_equal(fclose(f), 0);
}

/* One flipped byte: the legacy signature fails (and AllowUnsigned does
 * not rescue an official CVD), the .sign fails too. */
static void test_flipped_byte(void **state)
{
	char dir[64], certs[128], path[700], sign[700], err[AUTH_ERR_LEN];
	struct auth_result res;
	struct auth_policy pol;

	(void)state;
	NEED_TESTDATA();
	make_dir(dir, sizeof(dir));
	certs_dir(dir, certs, sizeof(certs), "clamav-test-root.crt", NULL);
	pol = policy(certs);
	pol.allow_unsigned = true;
	snprintf(path, sizeof(path), "%s/test-3.cvd", dir);
	snprintf(sign, sizeof(sign), "%s/test-3.cvd.sign", dir);

	/* in the payload, at the start and at the very end */
	for (int i = 0; i < 2; i++) {
		size_t len;
		char *buf;

		copy_data("test-3.cvd", dir, "test-3.cvd");
		buf = read_all(path, &len);
		free(buf);
		flip(path, i ? (long)len - 1 : 600);
		assert_refused(auth_check(path, NULL, &pol, &res, err), -EBADMSG, &res, err,
			       "test-3.cvd: legacy signature does not verify: header MD5 or "
			       "digital signature does not match");
		copy_data("test-3.cvd.sign", dir, "test-3.cvd.sign");
		assert_refused(auth_check(path, NULL, &pol, &res, err), -EBADMSG, &res, err,
			       "test-3.cvd.sign does not verify: signature does not match");
		assert_int_equal(unlink(sign), 0);
	}

	/* In the header's builder name: not covered by the legacy signature
	 * (it signs the payload's MD5; libclamav compares only version,
	 * sigs, f-level and time with the signed .info), but by the .sign,
	 * which signs every byte. */
	{
		struct cvd_header h;
		char hdr[CVD_HEADER_LEN], cerr[CVD_ERR_LEN];
		size_t len;
		char *buf;

		copy_data("test-3.cvd", dir, "test-3.cvd");
		buf = read_all(path, &len);
		assert_int_equal(cvd_parse_header(buf, len, &h, cerr), 0);
		h.builder[0] ^= 1;
		assert_int_equal(cvd_format_header(&h, hdr, cerr), 0);
		memcpy(buf, hdr, sizeof(hdr));
		write_file(path, buf, len);
		free(buf);
		assert_ok(auth_check(path, NULL, &pol, &res, err), err, &res, AUTH_LEGACY);
		copy_data("test-3.cvd.sign", dir, "test-3.cvd.sign");
		assert_refused(auth_check(path, NULL, &pol, &res, err), -EBADMSG, &res, err,
			       "signature does not match test-3.cvd");
	}

	/* a .cvd without any signature is not "unsigned" either */
	{
		struct cvd_header h;
		char hdr[CVD_HEADER_LEN], cerr[CVD_ERR_LEN];
		size_t len;
		char *buf;

		assert_int_equal(unlink(sign), 0);
		copy_data("test-3.cvd", dir, "test-3.cvd");
		buf = read_all(path, &len);
		assert_int_equal(cvd_parse_header(buf, len, &h, cerr), 0);
		h.has_dsig = false;
		assert_int_equal(cvd_format_header(&h, hdr, cerr), 0);
		memcpy(buf, hdr, sizeof(hdr));
		write_file(path, buf, len);
		free(buf);
		assert_refused(auth_check(path, NULL, &pol, &res, err), -EBADMSG, &res, err,
			       "legacy signature does not verify");
	}
	rm_dir(dir);
}

/* Write dir/name: a .cld made from testdata cvd as freshclam writes one
 * (header MD5 and signature "X"; the payload and its signed .info kept). */
static void make_cld(const char *cvd, const char *dir, const char *name)
{
	char src[700], dst[700], hdr[CVD_HEADER_LEN], cerr[CVD_ERR_LEN];
	struct cvd_header h;
	size_t len;
	char *buf;

	data_path(src, sizeof(src), cvd);
	buf = read_all(src, &len);
	assert_int_equal(cvd_parse_header(buf, len, &h, cerr), 0);
	h.has_md5 = false;
	h.has_dsig = false;
	assert_int_equal(cvd_format_header(&h, hdr, cerr), 0);
	memcpy(buf, hdr, sizeof(hdr));
	snprintf(dst, sizeof(dst), "%s/%s", dir, name);
	write_file(dst, buf, len);
	free(buf);
}

/* .cld: legacy by its signed .info. And the sibling trap of cl_cvdverify()
 * (a newer valid .cvd next to it makes libclamav skip the .cld's checks)
 * does not apply here. */
static void test_cld(void **state)
{
	char dir[64], path[700], err[AUTH_ERR_LEN];
	struct auth_policy pol = policy(NULL);
	struct auth_result res;

	(void)state;
	NEED_TESTDATA();
	make_dir(dir, sizeof(dir));
	make_cld("test-1.cvd", dir, "test.cld");
	snprintf(path, sizeof(path), "%s/test.cld", dir);
	assert_ok(auth_check(path, NULL, &pol, &res, err), err, &res, AUTH_LEGACY);
	pol.allow_unsigned = true;
	pol.require_sign = true;
	assert_refused(auth_check(path, NULL, &pol, &res, err), -EPERM, &res, err,
		       "RequireSignFile");
	pol.require_sign = false;

	/* corrupt payload, newer valid test.cvd beside it */
	flip(path, 700);
	copy_data("test-3.cvd", dir, "test.cvd");
	if (cl_cvdverify(path) == CL_SUCCESS)
		print_message("(libclamav's cl_cvdverify() on the path itself accepts it)\n");
	assert_refused(auth_check(path, NULL, &pol, &res, err), -EBADMSG, &res, err,
		       "test.cld: legacy signature does not verify");
	/* what libclamav said is in the reason, in its words */
	assert_non_null(strstr(err, "(libclamav: "));
	/* and the newer .cvd is unaffected by the bad .cld beside it */
	snprintf(path, sizeof(path), "%s/test.cvd", dir);
	assert_ok(auth_check(path, NULL, &pol, &res, err), err, &res, AUTH_LEGACY);
	rm_dir(dir);
}

/* legacy_only: the container's own signature, whatever .sign is there and
 * whatever the policy says. */
static void test_legacy_only(void **state)
{
	char dir[64], path[700], err[AUTH_ERR_LEN];
	struct auth_policy pol = {.legacy_only = true, .require_sign = true};
	struct auth_result res;

	(void)state;
	NEED_TESTDATA();
	make_dir(dir, sizeof(dir));
	/* next to its .sign, with no CertsDirectory */
	data_path(path, sizeof(path), "test-2.cvd");
	assert_ok(auth_check(path, NULL, &pol, &res, err), err, &res, AUTH_LEGACY);
	/* a wrong .sign does not matter either */
	copy_data("test-2.cvd", dir, "test-2.cvd");
	copy_data("test-3.cvd.sign", dir, "test-2.cvd.sign");
	snprintf(path, sizeof(path), "%s/test-2.cvd", dir);
	assert_ok(auth_check(path, NULL, &pol, &res, err), err, &res, AUTH_LEGACY);
	flip(path, 600);
	assert_refused(auth_check(path, NULL, &pol, &res, err), -EBADMSG, &res, err,
		       "legacy signature does not verify");
	make_cld("test-4.cvd", dir, "test.cld");
	snprintf(path, sizeof(path), "%s/test.cld", dir);
	assert_ok(auth_check(path, NULL, &pol, &res, err), err, &res, AUTH_LEGACY);
	copy_data("clamav.hdb", dir, "clamav.hdb");
	snprintf(path, sizeof(path), "%s/clamav.hdb", dir);
	pol.allow_unsigned = true;
	assert_refused(auth_check(path, NULL, &pol, &res, err), -EINVAL, &res, err,
		       "clamav.hdb has no legacy signature");
	rm_dir(dir);
}

/* .cud and plain signature files: unsigned only when allowed and no .sign
 * is required; a .cdiff never without its .sign. */
static void test_unsigned(void **state)
{
	static const char *const names[] = {"local.cud", "clamav.hdb", "x.ndb", "y.LDB", "z.ign2"};
	char dir[64], path[700], err[AUTH_ERR_LEN];
	struct auth_policy pol = policy(NULL);
	struct auth_result res;

	(void)state;
	NEED_TESTDATA();
	make_dir(dir, sizeof(dir));
	for (size_t i = 0; i < SE_ARRAY_SIZE(names); i++) {
		/* authenticity does not look inside: the format and
		 * integrity stages do */
		copy_data("clamav.hdb", dir, names[i]);
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		pol.allow_unsigned = false;
		pol.require_sign = false;
		assert_refused(auth_check(path, NULL, &pol, &res, err), -EPERM, &res, err,
			       "is unsigned and AllowUnsignedDefinitions is off");
		pol.allow_unsigned = true;
		assert_ok(auth_check(path, NULL, &pol, &res, err), err, &res, AUTH_UNSIGNED);
		assert_int_equal(res.verified_at, 0);
		pol.require_sign = true;
		assert_refused(auth_check(path, NULL, &pol, &res, err), -EPERM, &res, err,
			       "RequireSignFile is on");
	}
	/* a real .cud made by sigtool would carry no DSIG; cl_cvdverify()
	 * accepts any well-formed one, which is why a .cud is never legacy:
	 * the test CVD renamed .cud is still only "unsigned" */
	copy_data("test-1.cvd", dir, "test.cud");
	snprintf(path, sizeof(path), "%s/test.cud", dir);
	pol.require_sign = false;
	assert_ok(auth_check(path, NULL, &pol, &res, err), err, &res, AUTH_UNSIGNED);

	copy_data("test-2.cdiff", dir, "test-2.cdiff");
	snprintf(path, sizeof(path), "%s/test-2.cdiff", dir);
	assert_refused(auth_check(path, NULL, &pol, &res, err), -EPERM, &res, err,
		       "a .cdiff is accepted only with one");
	rm_dir(dir);
}

/* A .sign made at test time with the openssl command line, as the brief
 * and testdata/README.md describe, over a file of our own. */
static void test_sign_with_openssl_cli(void **state)
{
	char dir[64], certs[128], path[700], der_path[700], cmd[4096], err[AUTH_ERR_LEN];
	char signer[700], key[700], inter[700];
	struct auth_result res;
	struct auth_policy pol;
	size_t der_len;
	char *der;
	int st;

	(void)state;
	NEED_TESTDATA();
	if (system("openssl version >/dev/null 2>&1") != 0) {
		print_message("skipped: no openssl command\n");
		skip();
	}
	make_dir(dir, sizeof(dir));
	certs_dir(dir, certs, sizeof(certs), "clamav-test-root.crt", NULL);
	copy_data("clamav.hdb", dir, "own.hdb");
	snprintf(path, sizeof(path), "%s/own.hdb", dir);
	snprintf(der_path, sizeof(der_path), "%s/own.der", dir);
	data_path(signer, sizeof(signer), "signing-test.crt");
	data_path(key, sizeof(key), "signing-test.key");
	data_path(inter, sizeof(inter), "intermediate-test.crt");
	snprintf(cmd, sizeof(cmd),
		 "openssl cms -sign -binary -outform DER -in '%s' -signer '%s' -inkey '%s' "
		 "-certfile '%s' -md sha256 -out '%s'",
		 path, signer, key, inter, der_path);
	st = system(cmd);
	assert_int_equal(st, 0);
	der = read_all(der_path, &der_len);
	{
		struct entry e = {230, 0, false, (unsigned char *)der, der_len};
		char sign[720];

		snprintf(sign, sizeof(sign), "%s.sign", path);
		write_sign(sign, &e, 1);
	}
	free(der);

	/* The CLI stamps the current time as signingTime: past 2027-03-26
	 * the test root has expired at any such time, and the refusal is
	 * the expected outcome. */
	pol = policy(certs);
	pol.require_sign = true;
	st = auth_check(path, NULL, &pol, &res, err);
	if (time(NULL) < 1805932800) { /* 2027-03-26 */
		assert_ok(st, err, &res, AUTH_SIGN);
		assert_string_equal(res.signer, TEST_SIGNER);
		assert_true(res.signing_time > time(NULL) - DAY);
		assert_int_equal(res.verified_at, res.signing_time);
	} else {
		assert_refused(st, -EBADMSG, &res, err, "certificate has expired");
	}
	/* the file changed after signing */
	{
		FILE *f = fopen(path, "ab");

		assert_non_null(f);
		fputs("0123456789abcdef0123456789abcdef:1:Extra\n", f);
		fclose(f);
	}
	assert_refused(auth_check(path, NULL, &pol, &res, err), -EBADMSG, &res, err,
		       "own.hdb.sign does not verify: signature does not match own.hdb");
	rm_dir(dir);
}

/* Which entry of a .sign is used: the first whose range holds
 * max(flevel, 230); only that one; none is a refusal. */
static void test_entry_selection(void **state)
{
	static const char content[] = "44d88612fea8a8f36de82e1278abb02f:68:Eicar-Test\n";
	static const char other[] = "something else\n";
	char dir[64], certs[128], path[700], sign[720], err[AUTH_ERR_LEN];
	unsigned char *good, *bad;
	size_t good_len, bad_len;
	struct auth_result res;
	struct auth_policy pol;

	(void)state;
	NEED_TESTDATA();
	make_dir(dir, sizeof(dir));
	certs_dir(dir, certs, sizeof(certs), "clamav-test-root.crt", NULL);
	pol = policy(certs);
	snprintf(path, sizeof(path), "%s/own.hdb", dir);
	snprintf(sign, sizeof(sign), "%s.sign", path);
	write_file(path, content, sizeof(content) - 1);
	good = test_key_sign(content, sizeof(content) - 1, &good_len);
	bad = test_key_sign(other, sizeof(other) - 1, &bad_len);

	{ /* a signature as made by sigtool 1.5: selected at 230 */
		struct entry e[] = {{230, 0, false, good, good_len}};

		write_sign(sign, e, 1);
		pol.flevel = 216;
		assert_ok(auth_check(path, NULL, &pol, &res, err), err, &res, AUTH_SIGN);
		assert_int_equal(res.sign_flevel, 230);
		assert_int_equal(res.signing_time, T_2025_06_01);
		assert_int_equal(res.verified_at, T_2025_06_01);
		assert_string_equal(res.signer, TEST_SIGNER);
	}
	{ /* only for older engines: nothing applies */
		struct entry e[] = {{0, 229, true, good, good_len}};

		write_sign(sign, e, 1);
		assert_refused(auth_check(path, NULL, &pol, &res, err), -EBADMSG, &res, err,
			       "own.hdb.sign has no signature for f-level 230");
	}
	{ /* first applicable one is used, later lines ignored */
		struct entry e[] = {{0, 229, true, bad, bad_len},
				    {230, 0, false, good, good_len},
				    {230, 0, false, bad, bad_len}};

		write_sign(sign, e, 3);
		assert_ok(auth_check(path, NULL, &pol, &res, err), err, &res, AUTH_SIGN);
		assert_int_equal(res.sign_line, 3);
	}
	{ /* the first applicable does not verify: refused, no second try */
		struct entry e[] = {{230, 0, false, bad, bad_len}, {230, 0, false, good, good_len}};

		write_sign(sign, e, 2);
		assert_refused(auth_check(path, NULL, &pol, &res, err), -EBADMSG, &res, err,
			       "signature does not match own.hdb");
	}
	{ /* a newer engine's level is used when higher */
		struct entry e[] = {{200, 300, true, good, good_len},
				    {301, 0, false, bad, bad_len}};

		write_sign(sign, e, 2);
		pol.flevel = 300;
		assert_ok(auth_check(path, NULL, &pol, &res, err), err, &res, AUTH_SIGN);
		assert_int_equal(res.sign_flevel, 300);
		assert_int_equal(res.sign_line, 2);
		pol.flevel = 301;
		assert_refused(auth_check(path, NULL, &pol, &res, err), -EBADMSG, &res, err,
			       "signature does not match own.hdb");
	}
	OPENSSL_free(good);
	OPENSSL_free(bad);
	rm_dir(dir);
}

/* The time rule with a CA made now: the root expired yesterday, the
 * signature says it was made ten days ago, inside every validity. */
static void test_time_rule(void **state)
{
	static const char content[] = "ClamAV-Test-Signature:0:*:41424344\n";
	const time_t now = time(NULL);
	const int fds = count_fds();
	char dir[64], certs[128], path[700], sign[720], err[AUTH_ERR_LEN];
	EVP_PKEY *root_key = EVP_EC_gen("P-256"), *leaf_key = EVP_EC_gen("P-256");
	X509 *root, *leaf;
	struct auth_result res;
	struct auth_policy pol;
	struct {
		time_t st;
		const EVP_MD *md;
		int signers;
		int rc;
		const char *why;
	} cases[] = {
		{now - 10 * DAY, NULL, 1, 0, NULL},
		{now - 20 * DAY + 60, NULL, 1, 0, NULL}, /* just after the leaf's notBefore */
		{now - DAY - 60, NULL, 1, 0, NULL},	 /* just before the root's notAfter */
		{now + DAY, NULL, 1, -EBADMSG, "is in the future"},
		{now - 25 * DAY, NULL, 1, -EBADMSG, "is before the signer certificate's notBefore"},
		{now - DAY / 2, NULL, 1, -EBADMSG, "certificate chain: certificate has expired"},
		/* within the clock skew: checked then, and the root is past */
		{now + 60, NULL, 1, -EBADMSG, "certificate chain: certificate has expired"},
		/* no signingTime: now, and the root has expired */
		{NO_ATTRS, NULL, 1, -EBADMSG, "certificate chain: certificate has expired"},
		{now - 10 * DAY, NULL, 2, -EBADMSG, "2 signers, exactly one is accepted"},
		{now - 10 * DAY, NULL, 1, 0, NULL}, /* md replaced below */
		{now - 10 * DAY, NULL, 1, -EBADMSG, "digest SHA1 is too weak"},
	};

	(void)state;
	assert_non_null(root_key);
	assert_non_null(leaf_key);
	cases[9].md = EVP_sha512();
	cases[10].md = EVP_sha1();
	root = make_cert("scanengine test root", root_key, NULL, NULL, now - 30 * DAY, now - DAY,
			 true, 1);
	leaf = make_cert("scanengine test leaf", leaf_key, root, root_key, now - 20 * DAY,
			 now + 365 * DAY, false, 2);
	make_dir(dir, sizeof(dir));
	snprintf(certs, sizeof(certs), "%s/certs", dir);
	assert_int_equal(mkdir(certs, 0700), 0);
	snprintf(path, sizeof(path), "%s/root.pem", certs);
	write_cert_pem(path, root);
	pol = policy(certs);
	snprintf(path, sizeof(path), "%s/own.ldb", dir);
	snprintf(sign, sizeof(sign), "%s.sign", path);
	write_file(path, content, sizeof(content) - 1);

	for (size_t i = 0; i < SE_ARRAY_SIZE(cases); i++) {
		const EVP_MD *md = cases[i].md ? cases[i].md : EVP_sha256();
		size_t der_len;
		unsigned char *der = cms_sign(leaf, leaf_key, NULL, content, sizeof(content) - 1,
					      md, cases[i].st, cases[i].signers, &der_len);
		struct entry e = {230, 0, false, der, der_len};
		int rc;

		write_sign(sign, &e, 1);
		rc = auth_check(path, NULL, &pol, &res, err);
		if (!cases[i].why) {
			if (rc)
				fail_msg("case %zu: %s", i, err);
			assert_int_equal(res.method, AUTH_SIGN);
			assert_int_equal(res.signing_time, cases[i].st);
			assert_int_equal(res.verified_at, cases[i].st);
			assert_string_equal(res.signer, "CN = scanengine test leaf");
		} else {
			if (rc != cases[i].rc || !strstr(err, cases[i].why))
				fail_msg("case %zu: rc %d, '%s'", i, rc, err);
			assert_refused(rc, cases[i].rc, &res, err, cases[i].why);
		}
		OPENSSL_free(der);
	}

	/* The same signatures under a chain valid now: without signingTime
	 * it is checked at the current time. */
	{
		X509 *root2 = make_cert("scanengine test root 2", root_key, NULL, NULL,
					now - 30 * DAY, now + 30 * DAY, true, 3);
		X509 *leaf2 = make_cert("scanengine test leaf 2", leaf_key, root2, root_key,
					now - 20 * DAY, now + 30 * DAY, false, 4);
		size_t der_len;
		unsigned char *der = cms_sign(leaf2, leaf_key, NULL, content, sizeof(content) - 1,
					      EVP_sha256(), NO_ATTRS, 1, &der_len);
		struct entry e = {230, 0, false, der, der_len};
		time_t before = time(NULL);

		snprintf(path, sizeof(path), "%s/root2.crt", certs);
		write_cert_pem(path, root2);
		snprintf(path, sizeof(path), "%s/own.ldb", dir);
		write_sign(sign, &e, 1);
		assert_ok(auth_check(path, NULL, &pol, &res, err), err, &res, AUTH_SIGN);
		assert_int_equal(res.signing_time, 0);
		assert_true(res.verified_at >= before && res.verified_at <= time(NULL));
		assert_string_equal(res.signer, "CN = scanengine test leaf 2");
		OPENSSL_free(der);

		/* a leaf whose CA is not in CertsDirectory */
		unlink(sign);
		{
			EVP_PKEY *k = EVP_EC_gen("P-256");
			X509 *stranger = make_cert("stranger", k, NULL, NULL, now - DAY, now + DAY,
						   false, 5);

			der = cms_sign(stranger, k, NULL, content, sizeof(content) - 1,
				       EVP_sha256(), now - 60, 1, &der_len);
			e.der = der;
			e.der_len = der_len;
			write_sign(sign, &e, 1);
			assert_refused(auth_check(path, NULL, &pol, &res, err), -EBADMSG, &res, err,
				       "certificate chain: self-signed certificate");
			OPENSSL_free(der);
			X509_free(stranger);
			EVP_PKEY_free(k);
		}
		X509_free(leaf2);
		X509_free(root2);
	}
	X509_free(leaf);
	X509_free(root);
	EVP_PKEY_free(leaf_key);
	EVP_PKEY_free(root_key);
	assert_int_equal(count_fds(), fds);
	rm_dir(dir);
}

/* CertsDirectory: unset, missing, empty, broken files refuse (-ENOKEY);
 * only *.crt and *.pem regular files (or links to them) count. */
static void test_certs_dir(void **state)
{
	char dir[64], certs[128], path[700], p2[700], err[AUTH_ERR_LEN];
	struct auth_result res;
	struct auth_policy pol;

	int fds = count_fds();

	(void)state;
	NEED_TESTDATA();
	data_path(path, sizeof(path), "test-1.cvd");
	make_dir(dir, sizeof(dir));

	pol = policy(NULL);
	assert_refused(auth_check(path, NULL, &pol, &res, err), -ENOKEY, &res, err,
		       "cannot verify test-1.cvd.sign: no CertsDirectory is configured");
	snprintf(certs, sizeof(certs), "%s/none", dir);
	pol = policy(certs);
	assert_refused(auth_check(path, NULL, &pol, &res, err), -ENOKEY, &res, err,
		       "No such file or directory");

	certs_dir(dir, certs, sizeof(certs), NULL, NULL);
	pol = policy(certs);
	assert_refused(auth_check(path, NULL, &pol, &res, err), -ENOKEY, &res, err,
		       "holds no *.crt or *.pem certificate");
	/* other names and non-files are not read */
	snprintf(p2, sizeof(p2), "%s/README", certs);
	write_file(p2, "not a cert", 10);
	snprintf(p2, sizeof(p2), "%s/dir.pem", certs);
	assert_int_equal(mkdir(p2, 0700), 0);
	copy_data("clamav-test-root.crt", certs, "root.CRT"); /* extension as ClamAV: exact */
	assert_refused(auth_check(path, NULL, &pol, &res, err), -ENOKEY, &res, err,
		       "holds no *.crt or *.pem certificate");
	/* a symbolic link to the root, next to the production root */
	snprintf(p2, sizeof(p2), "%s/root.pem", certs);
	{
		char rel[700], target[PATH_MAX];

		data_path(rel, sizeof(rel), "clamav-test-root.crt");
		assert_non_null(realpath(rel, target));
		assert_int_equal(symlink(target, p2), 0);
	}
	copy_data("clamav-root.crt", certs, "clamav-root.crt");
	assert_ok(auth_check(path, NULL, &pol, &res, err), err, &res, AUTH_SIGN);
	/* the same root twice (a .crt and a .pem) */
	copy_data("clamav-test-root.crt", certs, "again.crt");
	assert_ok(auth_check(path, NULL, &pol, &res, err), err, &res, AUTH_SIGN);
	/* several certificates in one file */
	{
		size_t l1, l2;
		char a[700], b[700], *x1, *x2, *both;

		data_path(a, sizeof(a), "clamav-root.crt");
		data_path(b, sizeof(b), "clamav-test-root.crt");
		x1 = read_all(a, &l1);
		x2 = read_all(b, &l2);
		both = malloc(l1 + l2);
		assert_non_null(both);
		memcpy(both, x1, l1);
		memcpy(both + l1, x2, l2);
		assert_int_equal(unlink(p2), 0);
		snprintf(a, sizeof(a), "%s/again.crt", certs);
		assert_int_equal(unlink(a), 0);
		snprintf(a, sizeof(a), "%s/clamav-root.crt", certs);
		write_file(a, both, l1 + l2);
		assert_ok(auth_check(path, NULL, &pol, &res, err), err, &res, AUTH_SIGN);

		/* a broken certificate after a good one */
		memcpy(both + l1 + 100, "!!!!", 4);
		write_file(a, both, l1 + l2);
		assert_refused(auth_check(path, NULL, &pol, &res, err), -ENOKEY, &res, err,
			       "clamav-root.crt: a certificate does not parse");
		/* a file without any certificate */
		write_file(a, "# nothing\n", 10);
		assert_refused(auth_check(path, NULL, &pol, &res, err), -ENOKEY, &res, err,
			       "clamav-root.crt: no PEM certificate in it");
		free(both);
		free(x1);
		free(x2);
	}
	/* without a .sign the directory is not needed */
	copy_data("test-1.cvd", dir, "test-1.cvd");
	snprintf(path, sizeof(path), "%s/test-1.cvd", dir);
	assert_ok(auth_check(path, NULL, &pol, &res, err), err, &res, AUTH_LEGACY);
	assert_int_equal(count_fds(), fds);
	rm_dir(dir);
}

/* .sign files that do not parse refuse with the parser's reason. */
static void test_malformed_sign(void **state)
{
	static const char *const bodies[] = {
		"",
		"garbage\n",
		"#clamsign-1.0\n",
		"#clamsign-1.0\n230::pkcs7-pem:AAAA\n",
		"#clamsign-2.0\n230::pkcs7-pem:AAAA\n",
	};
	char dir[64], certs[128], path[700], sign[720], err[AUTH_ERR_LEN];
	struct auth_result res;
	struct auth_policy pol;

	(void)state;
	NEED_TESTDATA();
	make_dir(dir, sizeof(dir));
	certs_dir(dir, certs, sizeof(certs), "clamav-test-root.crt", NULL);
	pol = policy(certs);
	copy_data("test-1.cvd", dir, "test-1.cvd");
	snprintf(path, sizeof(path), "%s/test-1.cvd", dir);
	snprintf(sign, sizeof(sign), "%s.sign", path);
	for (size_t i = 0; i < SE_ARRAY_SIZE(bodies); i++) {
		write_file(sign, bodies[i], strlen(bodies[i]));
		assert_refused(auth_check(path, NULL, &pol, &res, err), -EBADMSG, &res, err,
			       "test-1.cvd.sign: ");
	}
	/* over the size limit */
	{
		char *big = malloc(CVD_SIGN_MAX_SIZE + 2);

		assert_non_null(big);
		memset(big, '#', CVD_SIGN_MAX_SIZE + 1);
		write_file(sign, big, CVD_SIGN_MAX_SIZE + 1);
		free(big);
		assert_refused(auth_check(path, NULL, &pol, &res, err), -EBADMSG, &res, err,
			       "test-1.cvd.sign is larger than");
	}
	/* not a regular file: refused, not "no .sign" */
	assert_int_equal(unlink(sign), 0);
	assert_int_equal(mkdir(sign, 0700), 0);
	assert_refused(auth_check(path, NULL, &pol, &res, err), -EISDIR, &res, err,
		       "cannot open test-1.cvd.sign");
	rm_dir(dir);
}

static void test_bad_arguments(void **state)
{
	char dir[64], path[700], err[AUTH_ERR_LEN];
	struct auth_policy pol = policy(NULL);
	struct auth_result res;
	int fds = count_fds();

	(void)state;
	make_dir(dir, sizeof(dir));
	pol.allow_unsigned = true;
	assert_refused(auth_check(NULL, NULL, &pol, &res, err), -EINVAL, &res, err, "no file");
	assert_refused(auth_check("x.cvd", NULL, NULL, &res, err), -EINVAL, &res, err, "no file");
	assert_refused(auth_check("", NULL, &pol, &res, err), -EINVAL, &res, err, "no file");
	assert_refused(auth_check("x.cvd", "", &pol, &res, err), -EINVAL, &res, err, "no file");
	assert_int_equal(auth_check(NULL, NULL, &pol, NULL, NULL), -EINVAL);

	/* names that are not definitions files */
	{
		static const char *const bad[] = {"notes.txt", "main.info", "COPYING",
						  "x.sign",    "hdb",	    "dir/"};

		for (size_t i = 0; i < SE_ARRAY_SIZE(bad); i++) {
			snprintf(path, sizeof(path), "%s/%s", dir, bad[i]);
			assert_refused(auth_check(path, NULL, &pol, &res, err), -EINVAL, &res, err,
				       "is not a definitions file");
		}
	}
	/* missing, a directory, a FIFO (must not hang), unreadable bytes in
	 * the name */
	snprintf(path, sizeof(path), "%s/missing.cvd", dir);
	assert_refused(auth_check(path, NULL, &pol, &res, err), -ENOENT, &res, err,
		       "cannot open missing.cvd: No such file or directory");
	snprintf(path, sizeof(path), "%s/d.hdb", dir);
	assert_int_equal(mkdir(path, 0700), 0);
	assert_refused(auth_check(path, NULL, &pol, &res, err), -EISDIR, &res, err,
		       "cannot open d.hdb");
	snprintf(path, sizeof(path), "%s/f.hdb", dir);
	assert_int_equal(mkfifo(path, 0600), 0);
	assert_refused(auth_check(path, NULL, &pol, &res, err), -EINVAL, &res, err,
		       "cannot open f.hdb");
	snprintf(path, sizeof(path), "%s/a\tb.hdb", dir);
	write_file(path, "x", 1);
	pol.allow_unsigned = false;
	assert_refused(auth_check(path, NULL, &pol, &res, err), -EPERM, &res, err,
		       "a?b.hdb is unsigned");
	/* res and err may be NULL */
	pol.allow_unsigned = true;
	assert_int_equal(auth_check(path, NULL, &pol, NULL, NULL), 0);

	assert_string_equal(auth_method_name(AUTH_SIGN), "sign");
	assert_string_equal(auth_method_name(AUTH_LEGACY), "legacy");
	assert_string_equal(auth_method_name(AUTH_UNSIGNED), "unsigned");
	assert_string_equal(auth_method_name(AUTH_NONE), "none");
	assert_string_equal(auth_method_name((enum auth_method)42), "none");
	assert_int_equal(count_fds(), fds);
	rm_dir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_real_sign_test_root),
		cmocka_unit_test(test_real_sign_production_root),
		cmocka_unit_test(test_legacy),
		cmocka_unit_test(test_sign_of_another_file),
		cmocka_unit_test(test_flipped_byte),
		cmocka_unit_test(test_cld),
		cmocka_unit_test(test_legacy_only),
		cmocka_unit_test(test_unsigned),
		cmocka_unit_test(test_sign_with_openssl_cli),
		cmocka_unit_test(test_entry_selection),
		cmocka_unit_test(test_time_rule),
		cmocka_unit_test(test_certs_dir),
		cmocka_unit_test(test_malformed_sign),
		cmocka_unit_test(test_bad_arguments),
	};

	return cmocka_run_group_tests(tests, group_setup, NULL);
}
