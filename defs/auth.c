/* auth: the authenticity stage of definitions validation (see auth.h).
 *
 * One call opens the file once; the .sign verification reads that
 * descriptor and the legacy check makes libclamav read it too (through
 * /proc/self/fd), so every method judges the same bytes. */
#include "defs/auth.h"

#include "common/util.h"
#include "defs/cvd.h"
#include "defs/unpack.h"

#include <clamav.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/bio.h>
#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define NAME_SHOWN 96 /* bytes of a file name quoted in a reason */

enum kind {
	KIND_CVD,   /* official container: .sign or legacy */
	KIND_CLD,   /* freshclam's local container: .sign or legacy (.info DSIG) */
	KIND_CUD,   /* unsigned container: .sign or unsigned */
	KIND_CDIFF, /* incremental update: .sign only */
	KIND_PLAIN, /* a bare signature file (.hdb, .ndb, ...): .sign or unsigned */
};

/* The state of one auth_check() call. */
struct check {
	const char *path;
	const struct auth_policy *pol;
	enum kind kind;
	int fd;				/* the file, O_RDONLY */
	int sign_fd;			/* its .sign, or -1 */
	char name[NAME_SHOWN + 1];	/* printable base name of path */
	char sign_name[NAME_SHOWN + 6]; /* printable base name of the .sign */
	char *err;
};

const char *auth_method_name(enum auth_method m)
{
	switch (m) {
	case AUTH_LEGACY:
		return "legacy";
	case AUTH_SIGN:
		return "sign";
	case AUTH_UNSIGNED:
		return "unsigned";
	case AUTH_NONE:
		break;
	}
	return "none";
}

/* Write "authenticity: <reason>" into err (when not NULL). Returns rc. */
__attribute__((format(printf, 3, 4))) static int refuse(char *err, int rc, const char *fmt, ...)
{
	static const char prefix[] = "authenticity: ";
	va_list ap;

	if (!err)
		return rc;
	memcpy(err, prefix, sizeof(prefix));
	va_start(ap, fmt);
	vsnprintf(err + sizeof(prefix) - 1, AUTH_ERR_LEN - (sizeof(prefix) - 1), fmt, ap);
	va_end(ap);
	return rc;
}

/* A printable copy of the last component of path for messages: at most
 * NAME_SHOWN bytes, bytes outside printable ASCII as '?'. */
static void shown_name(char *dst, size_t n, const char *path)
{
	const char *base = strrchr(path, '/');
	size_t i = 0;

	base = base ? base + 1 : path;
	for (; base[i] && i + 1 < n && i < NAME_SHOWN; i++) {
		unsigned char ch = (unsigned char)base[i];

		dst[i] = (ch < 0x20 || ch > 0x7e) ? '?' : (char)ch;
	}
	dst[i] = '\0';
}

static bool has_suffix(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);

	return n > m && !strcasecmp(s + n - m, suffix);
}

/* Like has_suffix, but exact: ClamAV 1.5 picks certificate files by
 * extension "crt" or "pem" compared as they are. */
static bool has_ext(const char *s, const char *ext)
{
	size_t n = strlen(s), m = strlen(ext);

	return n > m && !strcmp(s + n - m, ext);
}

/* What kind of definitions file path names, by its suffix (as libclamav
 * and freshclam decide). -EINVAL for anything else: .info and COPYING are
 * container members, not files libclamav loads on their own. */
static int classify(const char *path, enum kind *kind)
{
	const char *base = strrchr(path, '/');

	base = base ? base + 1 : path;
	switch (cvd_type_from_name(base)) {
	case CVD_TYPE_CVD:
		*kind = KIND_CVD;
		return 0;
	case CVD_TYPE_CLD:
		*kind = KIND_CLD;
		return 0;
	case CVD_TYPE_CUD:
		*kind = KIND_CUD;
		return 0;
	case CVD_TYPE_UNKNOWN:
		break;
	}
	if (has_suffix(base, ".cdiff")) {
		*kind = KIND_CDIFF;
		return 0;
	}
	if (unpack_known_type(base) && strcmp(base, "COPYING") && !has_suffix(base, ".info")) {
		*kind = KIND_PLAIN;
		return 0;
	}
	return -EINVAL;
}

/* Open a regular file for reading. O_NONBLOCK: a FIFO planted under the
 * name must not hang the caller (it is refused as not regular). Returns 0
 * with *fd, or -errno. */
static int open_regular_at(int dirfd, const char *path, int *fd)
{
	struct stat st;
	int f = openat(dirfd, path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	int rc = 0;

	if (f < 0)
		return -errno;
	if (fstat(f, &st) < 0)
		rc = -errno;
	else if (S_ISDIR(st.st_mode))
		rc = -EISDIR;
	else if (!S_ISREG(st.st_mode))
		rc = -EINVAL;
	if (rc) {
		util_close(&f);
		return rc;
	}
	*fd = f;
	return 0;
}

/* Read all of a small file (at most max bytes) from offset 0, NUL-terminated
 * (not counted in *len). Returns 0, -EFBIG when larger, -ENOMEM or the read
 * error. The caller frees *out. */
static int read_small(int fd, size_t max, char **out, size_t *len)
{
	char *buf = malloc(max + 1);
	ssize_t n;

	*out = NULL;
	if (!buf)
		return -ENOMEM;
	if (lseek(fd, 0, SEEK_SET) < 0) {
		n = -errno;
		goto err_free;
	}
	/* Asking for one byte more than allowed tells "exactly max" from
	 * "larger", even for a file that grows while it is read. */
	n = util_read_all(fd, buf, max + 1);
	if (n < 0)
		goto err_free;
	if ((size_t)n > max) {
		n = -EFBIG;
		goto err_free;
	}
	buf[n] = '\0';
	*out = buf;
	*len = (size_t)n;
	return 0;
err_free:
	free(buf);
	return (int)n;
}

/* ---- the .sign method ---- */

/* Add every certificate of every *.crt and *.pem regular file of dir to
 * store (ClamAV 1.5's choice of files, extensions compared as it does, case
 * and all; symbolic links followed, as Debian's certificate directories
 * use them). A file that is not a sequence of PEM certificates fails the
 * whole directory: a half-read trust configuration should be noticed, not
 * silently narrowed. Returns 0, -ENOKEY with why, or -ENOMEM. */
static int load_certs(const char *dir, X509_STORE *store, char *why, size_t whylen)
{
	unsigned int total = 0;
	struct dirent *de;
	char *buf = NULL;
	BIO *bio = NULL;
	int rc = 0;
	DIR *d;

	if (!dir || !*dir) {
		snprintf(why, whylen, "no CertsDirectory is configured");
		return -ENOKEY;
	}
	d = opendir(dir);
	if (!d) {
		snprintf(why, whylen, "CertsDirectory %.100s: %s", dir, strerror(errno));
		return -ENOKEY;
	}
	while ((errno = 0, de = readdir(d))) {
		char shown[NAME_SHOWN + 1];
		unsigned int in_file = 0;
		unsigned long e;
		size_t len;
		X509 *x;
		int fd = -1;

		if (!has_ext(de->d_name, ".crt") && !has_ext(de->d_name, ".pem"))
			continue;
		shown_name(shown, sizeof(shown), de->d_name);
		rc = open_regular_at(dirfd(d), de->d_name, &fd);
		if (rc == -EISDIR || rc == -EINVAL || rc == -ENOENT) {
			/* not a file (a directory named x.pem, a socket) or
			 * removed meanwhile: not a certificate file */
			rc = 0;
			continue;
		}
		if (!rc) {
			rc = read_small(fd, AUTH_CERT_FILE_MAX, &buf, &len);
			util_close(&fd);
		}
		if (rc == -ENOMEM)
			goto out;
		if (rc) {
			snprintf(why, whylen, "CertsDirectory %.100s: %.64s: %s", dir, shown,
				 rc == -EFBIG ? "larger than 1 MiB" : strerror(-rc));
			rc = -ENOKEY;
			goto out;
		}
		bio = BIO_new_mem_buf(buf, (int)len);
		if (!bio) {
			rc = -ENOMEM;
			goto out;
		}
		ERR_clear_error();
		while ((x = PEM_read_bio_X509(bio, NULL, NULL, NULL))) {
			int ok = X509_STORE_add_cert(store, x);

			X509_free(x);
			if (!ok) {
				rc = -ENOMEM;
				goto out;
			}
			in_file++;
		}
		/* The loop ends at the first block that is not a certificate:
		 * normal at the end of the file ("no start line"), anything
		 * else is a broken certificate. */
		e = ERR_peek_last_error();
		if (!in_file || ERR_GET_LIB(e) != ERR_LIB_PEM ||
		    ERR_GET_REASON(e) != PEM_R_NO_START_LINE) {
			snprintf(why, whylen, "CertsDirectory %.100s: %.64s: %s", dir, shown,
				 in_file ? "a certificate does not parse"
					 : "no PEM certificate in it");
			rc = -ENOKEY;
			goto out;
		}
		ERR_clear_error();
		total += in_file;
		BIO_free(bio);
		bio = NULL;
		free(buf);
		buf = NULL;
	}
	if (errno) {
		snprintf(why, whylen, "CertsDirectory %.100s: %s", dir, strerror(errno));
		rc = -ENOKEY;
	} else if (!total) {
		snprintf(why, whylen, "CertsDirectory %.100s holds no *.crt or *.pem certificate",
			 dir);
		rc = -ENOKEY;
	}
out:
	ERR_clear_error();
	BIO_free(bio);
	free(buf);
	closedir(d);
	return rc;
}

static void format_time(time_t t, char *out, size_t n)
{
	struct tm tm;

	if (!gmtime_r(&t, &tm) || !strftime(out, n, "%Y-%m-%d %H:%M:%S UTC", &tm))
		snprintf(out, n, "%lld", (long long)t);
}

/* The signingTime signed attribute of si (RFC 5652 section 11.3). Returns 0
 * with *has and *t, or -EBADMSG with why when it is there but not exactly
 * one valid UTCTime/GeneralizedTime. */
static int signing_time(CMS_SignerInfo *si, bool *has, time_t *t, char *why, size_t whylen)
{
	int idx = CMS_signed_get_attr_by_NID(si, NID_pkcs9_signingTime, -1);
	const ASN1_TIME *at = NULL;
	X509_ATTRIBUTE *a;
	ASN1_TYPE *v;
	struct tm tm;

	*has = false;
	*t = 0;
	if (idx < 0)
		return 0;
	/* Two of them would leave the verification time to whichever one
	 * is read: refuse the ambiguity. */
	if (CMS_signed_get_attr_by_NID(si, NID_pkcs9_signingTime, idx) >= 0) {
		snprintf(why, whylen, "signingTime attribute appears twice");
		return -EBADMSG;
	}
	a = CMS_signed_get_attr(si, idx);
	if (!a || X509_ATTRIBUTE_count(a) != 1) {
		snprintf(why, whylen, "signingTime attribute must have exactly one value");
		return -EBADMSG;
	}
	v = X509_ATTRIBUTE_get0_type(a, 0);
	if (v && ASN1_TYPE_get(v) == V_ASN1_UTCTIME)
		at = v->value.utctime;
	else if (v && ASN1_TYPE_get(v) == V_ASN1_GENERALIZEDTIME)
		at = v->value.generalizedtime;
	if (!at || !ASN1_TIME_to_tm(at, &tm)) {
		snprintf(why, whylen, "signingTime attribute is not a valid time");
		return -EBADMSG;
	}
	*t = timegm(&tm);
	*has = true;
	return 0;
}

/* Why the last CMS_verify() failed, from OpenSSL's error queue (emptied):
 * a certificate chain error names the X509 verification error, a digest or
 * signature mismatch says so, anything else gives OpenSSL's reason. */
static void cms_failure(char *out, size_t n, const char *content_name)
{
	unsigned long e, first = 0;
	bool mismatch = false;
	const char *data;
	int flags;

	out[0] = '\0';
	while ((e = ERR_get_error_all(NULL, NULL, NULL, &data, &flags))) {
		if (!first)
			first = e;
		if (ERR_GET_LIB(e) != ERR_LIB_CMS)
			continue;
		switch (ERR_GET_REASON(e)) {
		case CMS_R_CERTIFICATE_VERIFY_ERROR:
			/* OpenSSL puts X509_verify_cert_error_string() in the
			 * error data as "Verify error:<reason>". */
			if (data && (flags & ERR_TXT_STRING)) {
				const char *p = strchr(data, ':');

				p = p ? p + 1 : data;
				while (*p == ' ')
					p++;
				snprintf(out, n, "certificate chain: %s", p);
			} else {
				snprintf(out, n, "certificate chain does not verify");
			}
			break;
		case CMS_R_VERIFICATION_FAILURE:
		case CMS_R_CONTENT_VERIFY_ERROR:
			mismatch = true;
			break;
		default:
			break;
		}
	}
	if (out[0])
		return;
	if (mismatch) {
		snprintf(out, n, "signature does not match %s", content_name);
		return;
	}
	if (first) {
		const char *r = ERR_reason_error_string(first);

		snprintf(out, n, "%s", r ? r : "OpenSSL error");
		return;
	}
	snprintf(out, n, "verification failed");
}

/* Digests accepted in a .sign: SHA-2 and SHA-3 of 256 bits and more. A
 * SHA-1 or MD5 digest would make the file only as hard to forge as a
 * collision is to find; OpenSSL itself would verify both. */
static bool strong_digest(int nid)
{
	switch (nid) {
	case NID_sha256:
	case NID_sha384:
	case NID_sha512:
	case NID_sha3_256:
	case NID_sha3_384:
	case NID_sha3_512:
		return true;
	default:
		return false;
	}
}

/* verify_time: the time the certificate chain of a .sign is checked at.
 *
 * A code signature is judged at the moment it was made: the signer's
 * certificate and its CA chain must have been valid when the file was
 * signed. The signer states that moment in the signingTime attribute,
 * which is a *signed* attribute (covered by the signature: only the key
 * holder can set it). This is the usual rule for code signatures that
 * carry no trusted timestamp, and it is what keeps a published file
 * verifiable after a CA in its chain expires: the test root expires
 * 2027-03-26, production roots roll over too, and a definitions file
 * signed while everything was valid stays as authentic as it was. Checking
 * at the wall clock instead would make every kept generation and every
 * rollback fail on the day a root expires, and would make a host with a
 * wrong clock refuse good updates.
 *
 * Sanity bounds on the claim: not in the future (beyond AUTH_CLOCK_SKEW
 * for clocks that differ a little): a signature cannot have been made
 * after now; not before the signer certificate's notBefore: the key could
 * not have been certified then (the chain check at that time would fail
 * as well, less clearly). Without signingTime (a signature made with
 * CMS_NOATTR), the current time is the only time there is.
 *
 * Risk: the time is the signer's claim, not a third party's (an RFC 3161
 * timestamp would be). Whoever obtains a signing key, even long after its
 * certificate expired, can back-date a signature into the validity window,
 * and since no CRL is consulted (as in ClamAV 1.5: NOCRL) the expiry of a
 * compromised certificate does not end its power to sign. What does is
 * removing its CA from CertsDirectory. */
static int verify_time(X509 *signer, bool has_st, time_t st, time_t now, time_t *at, char *why,
		       size_t whylen)
{
	char ts[40], nb[40] = "?";
	struct tm tm;
	int c;

	if (!has_st) {
		*at = now;
		return 0;
	}
	if (st > now + AUTH_CLOCK_SKEW) {
		format_time(st, ts, sizeof(ts));
		snprintf(why, whylen, "signingTime %s is in the future", ts);
		return -EBADMSG;
	}
	c = ASN1_TIME_cmp_time_t(X509_get0_notBefore(signer), st);
	if (c == -2) {
		snprintf(why, whylen, "signer certificate has a malformed notBefore");
		return -EBADMSG;
	}
	if (c > 0) {
		format_time(st, ts, sizeof(ts));
		if (ASN1_TIME_to_tm(X509_get0_notBefore(signer), &tm))
			format_time(timegm(&tm), nb, sizeof(nb));
		snprintf(why, whylen,
			 "signingTime %s is before the signer certificate's notBefore %s", ts, nb);
		return -EBADMSG;
	}
	*at = st;
	return 0;
}

/* The subject of x, one line, for auth_result.signer. */
static void subject_line(X509 *x, char *out, size_t n)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *p;
	long len;

	out[0] = '\0';
	if (!b)
		return;
	if (X509_NAME_print_ex(b, X509_get_subject_name(x), 0, XN_FLAG_ONELINE) >= 0) {
		len = BIO_get_mem_data(b, &p);
		if (len > 0)
			snprintf(out, n, "%.*s", (int)len, p);
	}
	BIO_free(b);
}

/* The sign method: parse the .sign, select its entry, verify it against
 * CertsDirectory over the bytes of c->fd. Fills res on success. */
static int verify_sign(struct check *c, struct auth_result *res)
{
	unsigned int level = SE_MAX(c->pol->flevel, (unsigned int)AUTH_SIGN_FLEVEL);
	const struct cvd_sign_entry *e;
	struct cvd_sign s = {0};
	CMS_ContentInfo *cms = NULL;
	X509_STORE *store = NULL;
	BIO *content = NULL;
	X509 *signer = NULL;
	X509_ALGOR *dig = NULL;
	const ASN1_OBJECT *dig_obj;
	STACK_OF(CMS_SignerInfo) * sis;
	CMS_SignerInfo *si;
	const unsigned char *p;
	char why[CVD_ERR_LEN];
	time_t st, at, now;
	char *buf = NULL;
	bool has_st;
	size_t len;
	int rc;

	ERR_clear_error();
	rc = read_small(c->sign_fd, CVD_SIGN_MAX_SIZE, &buf, &len);
	if (rc == -EFBIG)
		rc = refuse(c->err, -EBADMSG, "%s is larger than %u bytes", c->sign_name,
			    CVD_SIGN_MAX_SIZE);
	else if (rc)
		rc = refuse(c->err, rc, "cannot read %s: %s", c->sign_name, strerror(-rc));
	if (rc)
		goto out;
	rc = cvd_parse_sign(buf, len, &s, why);
	if (rc) {
		rc = refuse(c->err, rc, "%s: %s", c->sign_name, why);
		goto out;
	}
	e = cvd_sign_select(&s, level);
	if (!e) {
		rc = refuse(c->err, -EBADMSG, "%s has no signature for f-level %u", c->sign_name,
			    level);
		goto out;
	}

	p = e->der;
	cms = d2i_CMS_ContentInfo(NULL, &p, (long)e->der_len);
	if (!cms) {
		rc = refuse(c->err, -EBADMSG, "%s line %u: not a CMS structure", c->sign_name,
			    e->line);
		goto out;
	}
	/* cvd_parse_sign checked SignedData and detached already; this is
	 * what the verification below relies on, so it is said here too. */
	if (OBJ_obj2nid(CMS_get0_type(cms)) != NID_pkcs7_signed || CMS_is_detached(cms) != 1) {
		rc = refuse(c->err, -EBADMSG, "%s line %u: not a detached SignedData", c->sign_name,
			    e->line);
		goto out;
	}
	/* One signer: a file is signed by its publisher, and one signer has
	 * one signingTime, which the time rule needs. */
	sis = CMS_get0_SignerInfos(cms);
	if (!sis || sk_CMS_SignerInfo_num(sis) != 1) {
		rc = refuse(c->err, -EBADMSG, "%s line %u: %d signers, exactly one is accepted",
			    c->sign_name, e->line, sis ? sk_CMS_SignerInfo_num(sis) : 0);
		goto out;
	}
	si = sk_CMS_SignerInfo_value(sis, 0);
	CMS_SignerInfo_get0_algs(si, NULL, NULL, &dig, NULL);
	X509_ALGOR_get0(&dig_obj, NULL, NULL, dig);
	if (!strong_digest(OBJ_obj2nid(dig_obj))) {
		rc = refuse(c->err, -EBADMSG,
			    "%s line %u: digest %s is too weak (SHA-256 or stronger required)",
			    c->sign_name, e->line, OBJ_nid2sn(OBJ_obj2nid(dig_obj)));
		goto out;
	}
	rc = signing_time(si, &has_st, &st, why, sizeof(why));
	if (rc) {
		rc = refuse(c->err, rc, "%s does not verify: %s", c->sign_name, why);
		goto out;
	}
	/* Find the signer certificate among those the signature carries, to
	 * bound the signingTime by its notBefore before the chain check. */
	if (CMS_set1_signers_certs(cms, NULL, 0) < 1) {
		ERR_clear_error();
		rc = refuse(c->err, -EBADMSG,
			    "%s does not verify: the signer certificate is not in the signature",
			    c->sign_name);
		goto out;
	}
	CMS_SignerInfo_get0_algs(si, NULL, &signer, NULL, NULL);
	now = time(NULL);
	rc = verify_time(signer, has_st, st, now, &at, why, sizeof(why));
	if (rc) {
		rc = refuse(c->err, rc, "%s does not verify: %s", c->sign_name, why);
		goto out;
	}

	store = X509_STORE_new();
	if (!store) {
		rc = refuse(c->err, -ENOMEM, "out of memory");
		goto out;
	}
	rc = load_certs(c->pol->certs_dir, store, why, sizeof(why));
	if (rc) {
		rc = refuse(c->err, rc, "cannot verify %s: %s", c->sign_name, why);
		goto out;
	}
	/* set_time also sets X509_V_FLAG_USE_CHECK_TIME. Purpose "any" (as
	 * `openssl cms -verify -purpose any`): CMS_verify() would otherwise
	 * default to S/MIME signing, which a code signing certificate need
	 * not allow; it only fills in a purpose the store has not set. */
	X509_VERIFY_PARAM_set_time(X509_STORE_get0_param(store), at);
	if (!X509_VERIFY_PARAM_set_purpose(X509_STORE_get0_param(store), X509_PURPOSE_ANY)) {
		rc = refuse(c->err, -ENOMEM, "out of memory");
		goto out;
	}

	if (lseek(c->fd, 0, SEEK_SET) < 0) {
		rc = refuse(c->err, -errno, "cannot read %s: %s", c->name, strerror(errno));
		goto out;
	}
	content = BIO_new_fd(c->fd, BIO_NOCLOSE);
	if (!content) {
		rc = refuse(c->err, -ENOMEM, "out of memory");
		goto out;
	}
	ERR_clear_error();
	/* BINARY: the file is hashed as it is, no MIME line-end
	 * canonicalisation; NOCRL: as ClamAV 1.5, CRLs in the structure are
	 * not consulted. */
	if (CMS_verify(cms, NULL, store, content, NULL, CMS_BINARY | CMS_NOCRL) != 1) {
		cms_failure(why, sizeof(why), c->name);
		rc = refuse(c->err, -EBADMSG, "%s does not verify: %s", c->sign_name, why);
		goto out;
	}
	res->method = AUTH_SIGN;
	subject_line(signer, res->signer, sizeof(res->signer));
	res->verified_at = at;
	res->signing_time = has_st ? st : 0;
	res->sign_line = e->line;
	res->sign_flevel = level;
	rc = 0;
out:
	ERR_clear_error();
	BIO_free(content);
	X509_STORE_free(store);
	CMS_ContentInfo_free(cms);
	cvd_sign_free(&s);
	free(buf);
	return rc;
}

/* ---- the legacy method ---- */

static bool same_file(const struct stat *a, const struct stat *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino;
}

/* Whether path still names the file open as fd (st: its fstat). */
static bool path_is(const char *path, const struct stat *st)
{
	struct stat now;

	return stat(path, &now) == 0 && same_file(&now, st);
}

/* libclamav's verdict as a reason and -errno. */
static int legacy_failed(struct check *c, cl_error_t rc)
{
	const char *what;

	switch (rc) {
	case CL_EMEM:
		return refuse(c->err, -ENOMEM, "%s: out of memory in libclamav", c->name);
	case CL_EVERIFY:
		what = "header MD5 or digital signature does not match";
		break;
	case CL_EMALFDB:
		what = ".info signature, member hashes or container do not verify";
		break;
	case CL_ECVD:
		what = "not a CVD header";
		break;
	default:
		what = "not verified";
		break;
	}
	return refuse(c->err, -EBADMSG, "%s: legacy signature does not verify: %s (libclamav: %s)",
		      c->name, what, cl_strerror(rc));
}

/* The legacy method: cl_cvdverify() on a private path that leads to c->fd
 * (see auth.h: no sibling, our type, the same bytes). */
static int verify_legacy(struct check *c, struct auth_result *res)
{
	const char *tmp = c->pol->tmp_dir;
	char dir[PATH_MAX], link[PATH_MAX + 16], target[PATH_MAX];
	bool via_proc, made_dir = false, made_link = false;
	struct stat st;
	cl_error_t crc;
	int rc = 0;

	if (fstat(c->fd, &st) < 0)
		return refuse(c->err, -errno, "cannot stat %s: %s", c->name, strerror(errno));
	snprintf(target, sizeof(target), "/proc/self/fd/%d", c->fd);
	via_proc = path_is(target, &st);
	if (!via_proc) {
		/* No /proc: the absolute path, and check that it still is
		 * our file on both sides of the call. */
		if (!realpath(c->path, target) || !path_is(target, &st))
			return refuse(c->err, -EAGAIN, "%s was replaced while being checked",
				      c->name);
	}
	if (!tmp || !*tmp)
		tmp = getenv("TMPDIR");
	if (!tmp || !*tmp)
		tmp = "/tmp";
	if ((size_t)snprintf(dir, sizeof(dir), "%s/scanengine-auth.XXXXXX", tmp) >= sizeof(dir))
		return refuse(c->err, -ENAMETOOLONG, "temporary directory name too long");
	if (!mkdtemp(dir)) {
		rc = -errno;
		return refuse(c->err, rc, "cannot create a private directory in %.100s: %s", tmp,
			      strerror(-rc));
	}
	made_dir = true;
	snprintf(link, sizeof(link), "%s/auth.%s", dir, c->kind == KIND_CLD ? "cld" : "cvd");
	if (symlink(target, link) < 0) {
		rc = -errno;
		rc = refuse(c->err, rc, "cannot link in %.100s: %s", dir, strerror(-rc));
		goto out;
	}
	made_link = true;

	crc = cl_cvdverify(link);
	if (!via_proc && !path_is(target, &st)) {
		rc = refuse(c->err, -EAGAIN, "%s was replaced while being checked", c->name);
		goto out;
	}
	if (crc != CL_SUCCESS) {
		rc = legacy_failed(c, crc);
		goto out;
	}
	res->method = AUTH_LEGACY;
	res->verified_at = time(NULL);
out:
	if (made_link)
		unlink(link);
	if (made_dir)
		rmdir(dir);
	return rc;
}

/* ---- the stage ---- */

/* Open the .sign: the named one (must exist), or path + ".sign" if it
 * exists. Returns 0 with c->sign_fd (-1: none) or -errno with a reason. */
static int open_sign(struct check *c, const char *sign_path)
{
	char implied[PATH_MAX];
	int rc;

	if (sign_path) {
		shown_name(c->sign_name, sizeof(c->sign_name), sign_path);
		rc = open_regular_at(AT_FDCWD, sign_path, &c->sign_fd);
		if (rc)
			return refuse(c->err, rc, "cannot open %s: %s", c->sign_name,
				      strerror(-rc));
		return 0;
	}
	snprintf(c->sign_name, sizeof(c->sign_name), "%s.sign", c->name);
	if ((size_t)snprintf(implied, sizeof(implied), "%s.sign", c->path) >= sizeof(implied))
		return refuse(c->err, -ENAMETOOLONG, "%s: path too long", c->name);
	rc = open_regular_at(AT_FDCWD, implied, &c->sign_fd);
	if (rc == -ENOENT)
		return 0;
	if (rc)
		return refuse(c->err, rc, "cannot open %s: %s", c->sign_name, strerror(-rc));
	return 0;
}

int auth_check(const char *path, const char *sign_path, const struct auth_policy *pol,
	       struct auth_result *res, char *err)
{
	struct check c = {.path = path, .pol = pol, .fd = -1, .sign_fd = -1, .err = err};
	struct auth_result scratch;
	int rc;

	if (!res)
		res = &scratch;
	memset(res, 0, sizeof(*res));
	if (err)
		err[0] = '\0';
	if (!path || !*path || !pol || (sign_path && !*sign_path))
		return refuse(err, -EINVAL, "no file or no policy given");
	shown_name(c.name, sizeof(c.name), path);
	if (classify(path, &c.kind))
		return refuse(err, -EINVAL,
			      "%s is not a definitions file (.cvd .cld .cud .cdiff or a signature "
			      "file)",
			      c.name);

	rc = open_regular_at(AT_FDCWD, path, &c.fd);
	if (rc) {
		rc = refuse(err, rc, "cannot open %s: %s", c.name, strerror(-rc));
		goto out;
	}
	if (pol->legacy_only) {
		if (c.kind == KIND_CVD || c.kind == KIND_CLD)
			rc = verify_legacy(&c, res);
		else
			rc = refuse(err, -EINVAL, "%s has no legacy signature (not a .cvd or .cld)",
				    c.name);
		goto out;
	}
	rc = open_sign(&c, sign_path);
	if (rc)
		goto out;

	/* A .sign that is there decides alone: valid, the file is signed;
	 * invalid, the file is refused even if its legacy signature is good
	 * (one of the two was tampered with, or it is another file's). */
	if (c.sign_fd >= 0) {
		rc = verify_sign(&c, res);
		goto out;
	}
	if (pol->require_sign) {
		rc = refuse(err, -EPERM, "%s has no .sign file and RequireSignFile is on", c.name);
		goto out;
	}
	switch (c.kind) {
	case KIND_CVD:
	case KIND_CLD:
		/* Official containers are never "unsigned": a failed
		 * legacy signature is a forgery or a corruption. */
		rc = verify_legacy(&c, res);
		break;
	case KIND_CDIFF:
		rc = refuse(err, -EPERM,
			    "%s has no .sign file (a .cdiff is accepted only with one)", c.name);
		break;
	case KIND_CUD:
	case KIND_PLAIN:
		if (!pol->allow_unsigned) {
			rc = refuse(err, -EPERM,
				    "%s is unsigned and AllowUnsignedDefinitions is off", c.name);
			break;
		}
		res->method = AUTH_UNSIGNED;
		rc = 0;
		break;
	}
out:
	if (rc)
		memset(res, 0, sizeof(*res));
	util_close(&c.sign_fd);
	util_close(&c.fd);
	return rc;
}
