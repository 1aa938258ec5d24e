/* test_cvd_sign: unit tests of the .sign parser and writer of defs/cvd.c
 * (cmocka). The real .sign files are those of the shared testdata/clamav
 * directory (see cvd_fixture.h; tests that need them skip without them),
 * verified with OpenSSL against the test root CA at a pinned time (the CA
 * expires in 2027); others are signed at test time with a throwaway key.
 * The header, payload and .info are tested in test_cvd.c. */
#include "defs/cvd.h"
#include "tests/unit/cvd_fixture.h"

#include <errno.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/pkcs7.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <time.h>

#define VERIFY_TIME 1767225600 /* 2026-01-01: inside every test certificate's validity */
#define TEST_FLEVEL 230	       /* what the test .sign files say */

static const char *const sign_files[] = {
	"test-1.cvd.sign",   "test-2.cvd.sign",	  "test-3.cvd.sign",   "test-4.cvd.sign",
	"test-5.cvd.sign",   "test-6.cvd.sign",	  "test-2.cdiff.sign", "test-3.cdiff.sign",
	"test-4.cdiff.sign", "test-5.cdiff.sign", "test-6.cdiff.sign",
};

/* ---- .sign ---- */

/* An EC key and a self-signed certificate, to make PKCS#7 at test time. */
static void make_signer(EVP_PKEY **key, X509 **cert)
{
	X509_NAME *name;

	*key = EVP_EC_gen("P-256");
	assert_non_null(*key);
	*cert = X509_new();
	assert_non_null(*cert);
	assert_int_equal(X509_set_version(*cert, 2), 1);
	assert_int_equal(ASN1_INTEGER_set(X509_get_serialNumber(*cert), 1), 1);
	assert_non_null(X509_gmtime_adj(X509_getm_notBefore(*cert), 0));
	assert_non_null(X509_gmtime_adj(X509_getm_notAfter(*cert), 3600));
	name = X509_get_subject_name(*cert);
	assert_int_equal(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
						    (const unsigned char *)"test_cvd", -1, -1, 0),
			 1);
	assert_int_equal(X509_set_issuer_name(*cert, name), 1);
	assert_int_equal(X509_set_pubkey(*cert, *key), 1);
	assert_true(X509_sign(*cert, *key, EVP_sha256()) > 0);
}

static unsigned char *sign_der(EVP_PKEY *key, X509 *cert, const void *data, size_t len, int flags,
			       size_t *der_len)
{
	BIO *in = BIO_new_mem_buf(data, (int)len);
	PKCS7 *p7;
	unsigned char *der = NULL;
	int n;

	assert_non_null(in);
	p7 = PKCS7_sign(cert, key, NULL, in, flags);
	assert_non_null(p7);
	n = i2d_PKCS7(p7, &der);
	assert_true(n > 0);
	*der_len = (size_t)n;
	PKCS7_free(p7);
	BIO_free(in);
	return der;
}

static X509 *load_cert(const char *name)
{
	char path[700];
	FILE *f;
	X509 *x;

	snprintf(path, sizeof(path), "%s/%s", testdata, name);
	f = fopen(path, "r");
	assert_non_null(f);
	x = PEM_read_X509(f, NULL, NULL, NULL);
	assert_non_null(x);
	fclose(f);
	return x;
}

/* verify: the PKCS#7 signs content, chained to the test root, at a pinned
 * time, as ClamAV 1.5 checks it (BINARY | NOCRL, any purpose). */
static bool verify(const unsigned char *der, size_t der_len, const void *content, size_t len)
{
	const unsigned char *p = der;
	X509_STORE *store = X509_STORE_new();
	PKCS7 *p7 = d2i_PKCS7(NULL, &p, (long)der_len);
	BIO *in = BIO_new_mem_buf(content, (int)len);
	X509 *root;
	bool ok;

	assert_non_null(store);
	assert_non_null(p7);
	assert_non_null(in);
	root = load_cert("clamav-test-root.crt");
	assert_int_equal(X509_STORE_add_cert(store, root), 1);
	X509_free(root); /* the store holds its own reference */
	assert_int_equal(X509_STORE_set_purpose(store, X509_PURPOSE_ANY), 1);
	X509_VERIFY_PARAM_set_time(X509_STORE_get0_param(store), VERIFY_TIME);
	ok = PKCS7_verify(p7, NULL, store, in, NULL, PKCS7_BINARY | PKCS7_NOCRL) == 1;
	ERR_clear_error();
	BIO_free(in);
	PKCS7_free(p7);
	X509_STORE_free(store);
	return ok;
}

static void test_real_sign(void **state)
{
	(void)state;
	NEED_TESTDATA();
	for (size_t i = 0; i < ARRAY_SIZE(sign_files); i++) {
		char err[CVD_ERR_LEN], signed_name[64];
		struct cvd_sign s;
		const struct cvd_sign_entry *e;
		const unsigned char *p;
		size_t len, clen, outlen;
		char *buf = read_data(sign_files[i], &len);
		char *content, *out;
		PKCS7 *p7;

		if (cvd_parse_sign(buf, len, &s, err))
			fail_msg("%s: %s", sign_files[i], err);
		assert_int_equal(s.n_entries, 1);
		e = &s.entries[0];
		assert_int_equal(e->line, 2);
		assert_int_equal(e->min_flevel, TEST_FLEVEL);
		assert_false(e->has_max);
		/* a real PKCS#7 SignedData, detached, as OpenSSL sees it */
		p = e->der;
		p7 = d2i_PKCS7(NULL, &p, (long)e->der_len);
		assert_non_null(p7);
		assert_ptr_equal(p, e->der + e->der_len);
		assert_true(PKCS7_type_is_signed(p7));
		assert_int_equal(PKCS7_get_detached(p7), 1);
		PKCS7_free(p7);

		/* f-level ranges */
		assert_ptr_equal(cvd_sign_select(&s, TEST_FLEVEL), e);
		assert_ptr_equal(cvd_sign_select(&s, UINT32_MAX), e);
		assert_null(cvd_sign_select(&s, TEST_FLEVEL - 1));
		assert_null(cvd_sign_select(&s, 216)); /* libclamav 1.4.6's level */

		/* it signs the whole file it is named for */
		snprintf(signed_name, sizeof(signed_name), "%.*s", (int)(strlen(sign_files[i]) - 5),
			 sign_files[i]);
		content = read_data(signed_name, &clen);
		assert_true(verify(e->der, e->der_len, content, clen));
		content[clen - 1] ^= 1;
		assert_false(verify(e->der, e->der_len, content, clen));
		free(content);

		/* written back byte for byte */
		assert_int_equal(cvd_format_sign(&s, &out, &outlen, err), 0);
		assert_int_equal(outlen, len);
		assert_memory_equal(out, buf, len);
		free(out);

		/* cut at every length: refused, except the missing final LF */
		for (size_t n = 0; n < len; n++) {
			struct cvd_sign cs;
			char *cut = malloc(n ? n : 1);
			int r;

			assert_non_null(cut);
			memcpy(cut, buf, n);
			r = cvd_parse_sign(cut, n, &cs, err);
			if (n == len - 1) {
				assert_int_equal(r, 0);
				cvd_sign_free(&cs);
			} else {
				assert_int_equal(r, -EBADMSG);
				assert_null(cs.entries);
			}
			free(cut);
		}
		cvd_sign_free(&s);
		cvd_sign_free(&s);
		free(buf);
	}
}

/* The builder's flow with the test signing key: sign a container, write
 * the .sign, read it back, verify. */
static void test_sign_build_with_test_key(void **state)
{
	char path[700], err[CVD_ERR_LEN];
	struct cvd_sign s = {0}, back;
	struct cvd_sign_entry e = {0};
	STACK_OF(X509) * chain;
	EVP_PKEY *key;
	X509 *cert;
	FILE *f;
	BIO *in;
	PKCS7 *p7;
	unsigned char *der = NULL;
	size_t len, outlen;
	char *cvd, *out;
	int n;

	(void)state;
	NEED_TESTDATA();
	snprintf(path, sizeof(path), "%s/signing-test.key", testdata);
	f = fopen(path, "r");
	assert_non_null(f);
	key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	assert_non_null(key);
	fclose(f);
	cert = load_cert("signing-test.crt");
	chain = sk_X509_new_null();
	assert_non_null(chain);
	assert_true(sk_X509_push(chain, load_cert("intermediate-test.crt")) > 0);

	cvd = read_data("test-6.cvd", &len);
	in = BIO_new_mem_buf(cvd, (int)len);
	p7 = PKCS7_sign(cert, key, chain, in, PKCS7_DETACHED | PKCS7_BINARY);
	assert_non_null(p7);
	n = i2d_PKCS7(p7, &der);
	assert_true(n > 0);

	e.min_flevel = 216;
	e.max_flevel = 229;
	e.has_max = true;
	e.der = der;
	e.der_len = (size_t)n;
	s.entries = &e;
	s.n_entries = 1;
	assert_int_equal(cvd_format_sign(&s, &out, &outlen, err), 0);
	assert_int_equal(memcmp(out, "#clamsign-1.0\n216:229:pkcs7-pem:MII", 35), 0);
	assert_int_equal(out[outlen - 1], '\n');
	assert_int_equal(cvd_parse_sign(out, outlen, &back, err), 0);
	assert_non_null(cvd_sign_select(&back, 216));
	assert_null(cvd_sign_select(&back, 230));
	assert_true(verify(back.entries[0].der, back.entries[0].der_len, cvd, len));
	cvd_sign_free(&back);
	free(out);

	OPENSSL_free(der);
	PKCS7_free(p7);
	BIO_free(in);
	sk_X509_pop_free(chain, X509_free);
	X509_free(cert);
	EVP_PKEY_free(key);
	free(cvd);
}

static void test_sign_roundtrip(void **state)
{
	static const char data[] = "a definitions container";
	struct cvd_sign_entry e[3] = {0};
	struct cvd_sign s = {e, 3}, back;
	char err[CVD_ERR_LEN];
	EVP_PKEY *key;
	X509 *cert;
	size_t len;
	char *out;

	(void)state;
	make_signer(&key, &cert);
	for (int i = 0; i < 3; i++)
		e[i].der = sign_der(key, cert, data, sizeof(data) - (size_t)i,
				    PKCS7_DETACHED | PKCS7_BINARY, &e[i].der_len);
	e[0].min_flevel = 0;
	e[0].max_flevel = 99;
	e[0].has_max = true;
	e[1].min_flevel = 100;
	e[1].max_flevel = 100;
	e[1].has_max = true;
	e[2].min_flevel = 100;

	assert_int_equal(cvd_format_sign(&s, &out, &len, err), 0);
	assert_int_equal(strlen(out), len);
	assert_int_equal(cvd_parse_sign(out, len, &back, err), 0);
	assert_int_equal(back.n_entries, 3);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(back.entries[i].min_flevel, e[i].min_flevel);
		assert_int_equal(back.entries[i].has_max, e[i].has_max);
		if (e[i].has_max)
			assert_int_equal(back.entries[i].max_flevel, e[i].max_flevel);
		assert_int_equal(back.entries[i].der_len, e[i].der_len);
		assert_memory_equal(back.entries[i].der, e[i].der, e[i].der_len);
		assert_int_equal(back.entries[i].line, i + 2);
	}
	assert_ptr_equal(cvd_sign_select(&back, 0), &back.entries[0]);
	assert_ptr_equal(cvd_sign_select(&back, 99), &back.entries[0]);
	assert_ptr_equal(cvd_sign_select(&back, 100), &back.entries[1]);
	assert_ptr_equal(cvd_sign_select(&back, 101), &back.entries[2]);
	assert_true(cvd_sign_entry_applies(&back.entries[2], 100));
	assert_false(cvd_sign_entry_applies(&back.entries[1], 101));
	assert_false(cvd_sign_entry_applies(NULL, 1));
	assert_null(cvd_sign_select(NULL, 1));
	cvd_sign_free(&back);

	/* comments, blank lines, CRLF, blanks around a line, no final LF: as
	 * ClamAV reads them */
	{
		char *t = malloc(len + 200);
		char *second = strchr(out, '\n') + 1;
		char *third = strchr(second, '\n') + 1;
		size_t o;

		assert_non_null(t);
		o = (size_t)sprintf(t, "#clamsign-1.0\r\n# a comment\n\n  %.*s\r\n\t\n%s",
				    (int)(third - second - 1), second, third);
		t[o - 1] = ' '; /* trailing blank instead of the final LF */
		assert_int_equal(cvd_parse_sign(t, o, &back, err), 0);
		assert_int_equal(back.n_entries, 3);
		assert_int_equal(back.entries[0].line, 4);
		assert_memory_equal(back.entries[0].der, e[0].der, e[0].der_len);
		cvd_sign_free(&back);
		free(t);
	}
	free(out);

	/* refused by the writer */
	e[1].max_flevel = 99;
	assert_int_equal(cvd_format_sign(&s, &out, &len, err), -EINVAL);
	assert_non_null(strstr(err, "entry 1: max_flevel 99 is below min_flevel 100"));
	e[1].max_flevel = 100;
	e[1].der_len--;
	assert_int_equal(cvd_format_sign(&s, &out, &len, err), -EINVAL);
	assert_non_null(strstr(err, "entry 1"));
	e[1].der_len++;
	s.n_entries = 0;
	assert_int_equal(cvd_format_sign(&s, &out, &len, err), -EINVAL);
	assert_null(out);
	{
		size_t attached_len;
		unsigned char *attached =
			sign_der(key, cert, data, sizeof(data), PKCS7_BINARY, &attached_len);
		struct cvd_sign_entry a = {
			.min_flevel = 1, .der = attached, .der_len = attached_len};
		struct cvd_sign one = {&a, 1};

		assert_int_equal(cvd_format_sign(&one, &out, &len, err), -EINVAL);
		assert_non_null(strstr(err, "detached"));
		OPENSSL_free(attached);
	}
	for (int i = 0; i < 3; i++)
		OPENSSL_free(e[i].der);
	X509_free(cert);
	EVP_PKEY_free(key);
}

static void expect_sign_err(const char *text, size_t len, const char *want)
{
	struct cvd_sign s;
	char err[CVD_ERR_LEN] = "";
	char *copy = malloc(len ? len : 1);

	assert_non_null(copy);
	memcpy(copy, text, len);
	assert_int_equal(cvd_parse_sign(copy, len, &s, err), -EBADMSG);
	if (!strstr(err, want))
		fail_msg("error '%s' does not contain '%s'", err, want);
	assert_null(s.entries);
	free(copy);
}

static void test_sign_malformed(void **state)
{
	char *t, b64[8192];
	unsigned char *der, *buf;
	size_t der_len;
	EVP_PKEY *key;
	X509 *cert;
	int n;

	(void)state;
	make_signer(&key, &cert);
	der = sign_der(key, cert, "x", 1, PKCS7_DETACHED | PKCS7_BINARY, &der_len);
	assert_true(der_len < 3000);
	n = EVP_EncodeBlock((unsigned char *)b64, der, (int)der_len);
	assert_true(n > 0);
	t = malloc(20000);
	assert_non_null(t);

#define SIGN(...)                                                                                  \
	do {                                                                                       \
		snprintf(t, 20000, __VA_ARGS__);                                                   \
	} while (0)

	SIGN("#clamsign-1.0\n230::pkcs7-pem:%s\n", b64);
	{
		struct cvd_sign s;
		char err[CVD_ERR_LEN];

		assert_int_equal(cvd_parse_sign(t, strlen(t), &s, err), 0);
		cvd_sign_free(&s);
	}
	/* prefix */
	SIGN("#clamsign-2.0\n230::pkcs7-pem:%s\n", b64);
	expect_sign_err(t, strlen(t), "sign line 1: version '2.0' is not 1.0");
	SIGN("clamsign-1.0\n230::pkcs7-pem:%s\n", b64);
	expect_sign_err(t, strlen(t), "sign line 1: 'clamsign-1.0' is not #clamsign-1.0");
	SIGN("230::pkcs7-pem:%s\n", b64);
	expect_sign_err(t, strlen(t), "is not #clamsign-1.0 (not a ClamAV .sign file)");
	SIGN("#clamsign-1.0 \n230::pkcs7-pem:%s\n", b64);
	expect_sign_err(t, strlen(t), "sign line 1");
	expect_sign_err("", 0, "sign: empty");
	expect_sign_err("#clamsign-1.0\n", 14, "sign: no signature lines");
	expect_sign_err("#clamsign-1.0\n# only a comment\n\n", 32, "sign: no signature lines");
	expect_sign_err("#clamsign-1.0\n\0\n", 16, "sign: byte 15 is NUL");
	expect_sign_err("\x89PNG\r\n\x1a\n", 8, "sign line 1");

	/* fields */
	SIGN("#clamsign-1.0\n230:pkcs7-pem:%s\n", b64);
	expect_sign_err(t, strlen(t), "sign line 2: 3 fields, expected 4");
	SIGN("#clamsign-1.0\n230::pkcs7-pem:%s:x\n", b64);
	expect_sign_err(t, strlen(t), "sign line 2: 5 fields");
	SIGN("#clamsign-1.0\nx230::pkcs7-pem:%s\n", b64);
	expect_sign_err(t, strlen(t), "sign line 2 field 0 (min_flevel): 'x230' is not a number");
	SIGN("#clamsign-1.0\n:230:pkcs7-pem:%s\n", b64);
	expect_sign_err(t, strlen(t), "field 0 (min_flevel): '' is empty");
	SIGN("#clamsign-1.0\n4294967296::pkcs7-pem:%s\n", b64);
	expect_sign_err(t, strlen(t), "field 0 (min_flevel): '4294967296' is out of range");
	SIGN("#clamsign-1.0\n230:229:pkcs7-pem:%s\n", b64);
	expect_sign_err(t, strlen(t), "field 1 (max_flevel): '229' is below min_flevel");
	SIGN("#clamsign-1.0\n230:y:pkcs7-pem:%s\n", b64);
	expect_sign_err(t, strlen(t), "field 1 (max_flevel): 'y' is not a number");
	SIGN("#clamsign-1.0\n230::pkcs7-der:%s\n", b64);
	expect_sign_err(t, strlen(t), "field 2 (format): 'pkcs7-der' is not pkcs7-pem");
	SIGN("#clamsign-1.0\n230::PKCS7-PEM:%s\n", b64);
	expect_sign_err(t, strlen(t), "field 2 (format)");

	/* base64 */
	expect_sign_err("#clamsign-1.0\n230::pkcs7-pem:\n", 30, "field 3 (signature): '' is empty");
	SIGN("#clamsign-1.0\n230::pkcs7-pem:%.*s\n", n - 1, b64);
	expect_sign_err(t, strlen(t), "is not a whole number of base64 quads");
	SIGN("#clamsign-1.0\n230::pkcs7-pem:*%s\n", b64 + 1);
	expect_sign_err(t, strlen(t), "field 3 (signature): character 1 ('*') is not base64");
	SIGN("#clamsign-1.0\n230::pkcs7-pem:%.8s=%s\n", b64, b64 + 9);
	expect_sign_err(t, strlen(t), "character 9 ('=') is not base64");
	SIGN("#clamsign-1.0\n230::pkcs7-pem:%.*s====\n", n - 4, b64);
	expect_sign_err(t, strlen(t), "is not base64");
	SIGN("#clamsign-1.0\n230::pkcs7-pem:%s\n", "aGVsbG8gd29ybGQ="); /* "hello world" */
	expect_sign_err(t, strlen(t), "11 bytes of DER is not a DER PKCS#7");
	/* a complete PKCS#7 followed by more */
	buf = malloc(der_len + 3);
	assert_non_null(buf);
	memcpy(buf, der, der_len);
	memcpy(buf + der_len, "\x05\x00\x00", 3);
	n = EVP_EncodeBlock((unsigned char *)b64, buf, (int)der_len + 3);
	SIGN("#clamsign-1.0\n230::pkcs7-pem:%s\n", b64);
	expect_sign_err(t, strlen(t), "has bytes after the PKCS#7");
	/* cut short */
	n = EVP_EncodeBlock((unsigned char *)b64, der, (int)der_len - 3);
	SIGN("#clamsign-1.0\n230::pkcs7-pem:%s\n", b64);
	expect_sign_err(t, strlen(t), "is not a DER PKCS#7");
	free(buf);
	/* a signature that carries its content */
	{
		size_t alen;
		unsigned char *attached = sign_der(key, cert, "x", 1, PKCS7_BINARY, &alen);

		n = EVP_EncodeBlock((unsigned char *)b64, attached, (int)alen);
		SIGN("#clamsign-1.0\n230::pkcs7-pem:%s\n", b64);
		expect_sign_err(t, strlen(t), "carries the signed content");
		OPENSSL_free(attached);
	}
	/* limits */
	n = EVP_EncodeBlock((unsigned char *)b64, der, (int)der_len);
	{
		char *big = malloc(CVD_SIGN_MAX_SIZE + 2);
		size_t o;

		assert_non_null(big);
		o = (size_t)sprintf(big, "#clamsign-1.0\n");
		for (int i = 0; i <= CVD_SIGN_MAX_ENTRIES; i++)
			o += (size_t)sprintf(big + o, "%d::pkcs7-pem:%s\n", i, b64);
		expect_sign_err(big, o, "sign line 18: more than 16 signature lines");
		memset(big, '#', CVD_SIGN_MAX_SIZE + 1);
		expect_sign_err(big, CVD_SIGN_MAX_SIZE + 1, "more than the 1048576 allowed");
		o = (size_t)sprintf(big, "#clamsign-1.0\n1::pkcs7-pem:");
		memset(big + o, 'A', 90000);
		o += 90000;
		expect_sign_err(big, o, "sign line 2: 90013 characters");
		free(big);
	}
	free(t);
	OPENSSL_free(der);
	X509_free(cert);
	EVP_PKEY_free(key);
#undef SIGN
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_real_sign),
		cmocka_unit_test(test_sign_build_with_test_key),
		cmocka_unit_test(test_sign_roundtrip),
		cmocka_unit_test(test_sign_malformed),
	};

	return cmocka_run_group_tests(tests, group_setup, NULL);
}
