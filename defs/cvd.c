/* cvd: ClamAV definition container formats (see cvd.h for the formats). */
#include "defs/cvd.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pkcs7.h>

#define N_FIELDS       9
#define FIELD_MD5      5
#define FIELD_DSIG     6
#define MAGIC_PREFIX   CVD_MAGIC ":"
#define DSIG_PREFIX    "DSIG:"
#define INFO_FIELDS    3
#define SIGN_FIELDS    4
#define U32_DIGITS     10
#define SHOW_MAX       32		  /* input bytes quoted in a message */
#define SHOW_LEN       (SHOW_MAX * 4 + 4) /* each may become \xNN, plus "..." */
#define READ_BLOCK     (64u * 1024)
#define INFO_HDR_MAX   (CVD_HEADER_LEN - 1) /* freshclam: the line and its LF fit in 512 */
#define INFO_ENTRY_MAX (CVD_INFO_NAME_MAX + 1 + U32_DIGITS + 1 + 2 * CVD_SHA256_LEN + 1)
#define B64_LEN(n)     (4 * (((n) + 2) / 3))
#define SIGN_LINE_MAX  (B64_LEN(CVD_SIGN_DER_MAX) + 2 * U32_DIGITS + 16)

static const char *const header_fields[N_FIELDS] = {
	"magic",
	"build time",
	"version",
	"signature count",
	"functionality level",
	"MD5 of the payload",
	"digital signature",
	"builder",
	"creation time in seconds",
};

static const char *const info_fields[INFO_FIELDS] = {"name", "size", "sha256"};

static const char *const sign_fields[SIGN_FIELDS] = {"min_flevel", "max_flevel", "format",
						     "signature"};

struct span {
	const char *p;
	size_t n;
};

static void set_err(char *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void set_err(char *err, const char *fmt, ...)
{
	va_list ap;

	if (!err)
		return;
	va_start(ap, fmt);
	vsnprintf(err, CVD_ERR_LEN, fmt, ap);
	va_end(ap);
}

/* show: p[0..n) fit to quote in a one-line message: printable ASCII as is,
 * anything else (and the quote and backslash) as \xNN, cut after SHOW_MAX
 * bytes. buf: SHOW_LEN bytes. */
static const char *show(const char *p, size_t n, char *buf)
{
	size_t i, o = 0;

	for (i = 0; i < n && i < SHOW_MAX; i++) {
		unsigned char c = (unsigned char)p[i];

		if (c >= 0x20 && c < 0x7f && c != '\'' && c != '\\')
			buf[o++] = (char)c;
		else
			o += (size_t)snprintf(buf + o, SHOW_LEN - o, "\\x%02x", c);
	}
	if (n > SHOW_MAX) {
		memcpy(buf + o, "...", 3);
		o += 3;
	}
	buf[o] = '\0';
	return buf;
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static int hex_val(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static void hex_encode(const unsigned char *b, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < n; i++) {
		out[2 * i] = digits[b[i] >> 4];
		out[2 * i + 1] = digits[b[i] & 0xf];
	}
	out[2 * n] = '\0';
}

/* is_b64: a character of RFC 4648 base64 (.sign) and equally of
 * libclamav's digit alphabet for RSA numbers (dsig.c): the same 64
 * characters, though there 'a' is 0 and 'A' is 26. Only membership matters
 * here: nothing in this module decodes a dsig. */
static bool is_b64(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c) || c == '+' ||
	       c == '/';
}

/* parse_u32: plain decimal (no sign, blank or leading zero: "07" would not
 * be written back the same), at most UINT32_MAX. NULL or the reason. */
static const char *parse_u32(const char *p, size_t n, uint32_t *out)
{
	uint64_t v = 0;
	size_t i;

	if (n == 0)
		return "is empty";
	for (i = 0; i < n; i++)
		if (!is_digit(p[i]))
			return "is not a number";
	if (n > 1 && p[0] == '0')
		return "has a leading zero";
	if (n > U32_DIGITS)
		return "is out of range (more than 4294967295)";
	for (i = 0; i < n; i++)
		v = v * 10 + (uint64_t)(p[i] - '0');
	if (v > UINT32_MAX)
		return "is out of range (more than 4294967295)";
	*out = (uint32_t)v;
	return NULL;
}

/* check_dsig: n digits of the signature alphabet, 2..max (one character is
 * what libclamav 1.5 takes for "no signature"). NULL or the reason, with
 * the offending position in *pos. */
static const char *check_dsig(const char *p, size_t n, size_t max, size_t *pos)
{
	size_t i;

	*pos = 0;
	if (n < 2)
		return "is too short to be a signature";
	if (n > max)
		return "is longer than a signature of that key can be";
	for (i = 0; i < n; i++) {
		if (!is_b64(p[i])) {
			*pos = i + 1;
			return "is outside libclamav's signature alphabet [a-zA-Z0-9+/]";
		}
	}
	return NULL;
}

/* split: cut p[0..n) at every sep into at most max spans; returns the
 * number of fields there are (which may exceed max). */
static size_t split(const char *p, size_t n, char sep, struct span *f, size_t max)
{
	size_t i, nf = 0, start = 0;

	for (i = 0; i <= n; i++) {
		if (i < n && p[i] != sep)
			continue;
		if (nf < max) {
			f[nf].p = p + start;
			f[nf].n = i - start;
		}
		nf++;
		start = i + 1;
	}
	return nf;
}

/* ---- header fields (the CVD header and line 1 of a .info) ---- */

static bool header_equal(const struct cvd_header *a, const struct cvd_header *b)
{
	if (strcmp(a->time, b->time) || a->version != b->version || a->sigs != b->sigs ||
	    a->flevel != b->flevel || strcmp(a->builder, b->builder) || a->stime != b->stime)
		return false;
	if (a->has_md5 != b->has_md5 || (a->has_md5 && memcmp(a->md5, b->md5, CVD_MD5_LEN)))
		return false;
	if (a->has_dsig != b->has_dsig || (a->has_dsig && strcmp(a->dsig, b->dsig)))
		return false;
	return true;
}

/* field_err: "<what> field <i> (<name>): '<value>' <reason>". */
static int field_err(char *err, const char *what, size_t i, const struct span *f,
		     const char *reason)
{
	char q[SHOW_LEN];

	set_err(err, "%s field %zu (%s): '%s' %s", what, i, header_fields[i], show(f->p, f->n, q),
		reason);
	return -EBADMSG;
}

/* text_field: 1..max printable characters; blanks only inside (build time)
 * or nowhere (builder). */
static const char *check_text(const char *p, size_t n, size_t max, bool blanks)
{
	size_t i;

	if (n > max)
		return "is too long";
	for (i = 0; i < n; i++) {
		if ((unsigned char)p[i] < 0x20 || (unsigned char)p[i] > 0x7e)
			return "has a character that is not printable ASCII";
		if (p[i] == ' ' && (!blanks || i == 0 || i == n - 1))
			return blanks ? "starts or ends with a blank" : "contains a blank";
	}
	return NULL;
}

/* parse_fields: the 9 ':'-separated fields of a header text t[0..n), which
 * holds only printable ASCII. what names it in messages ("header", "info
 * line 1"). */
static int parse_fields(const char *t, size_t n, const char *what, struct cvd_header *h, char *err)
{
	struct span f[N_FIELDS];
	const char *why;
	size_t nf, i, pos;

	memset(h, 0, sizeof(*h));
	nf = split(t, n, ':', f, N_FIELDS);
	if (f[0].n != strlen(CVD_MAGIC) || memcmp(f[0].p, CVD_MAGIC, f[0].n))
		return field_err(err, what, 0, &f[0], "is not " CVD_MAGIC);
	if (nf < N_FIELDS) {
		set_err(err, "%s: %zu fields, expected %d (field %zu, %s, is missing)", what, nf,
			N_FIELDS, nf, header_fields[nf]);
		return -EBADMSG;
	}
	if (nf > N_FIELDS) {
		set_err(err, "%s: %zu fields, expected %d (something follows field 8, %s)", what,
			nf, N_FIELDS, header_fields[N_FIELDS - 1]);
		return -EBADMSG;
	}
	for (i = 1; i < N_FIELDS; i++)
		if (f[i].n == 0)
			return field_err(err, what, i, &f[i], "is empty");

	if ((why = check_text(f[1].p, f[1].n, CVD_TIME_MAX, true)))
		return field_err(err, what, 1, &f[1], why);
	memcpy(h->time, f[1].p, f[1].n);

	if ((why = parse_u32(f[2].p, f[2].n, &h->version)))
		return field_err(err, what, 2, &f[2], why);
	if ((why = parse_u32(f[3].p, f[3].n, &h->sigs)))
		return field_err(err, what, 3, &f[3], why);
	if ((why = parse_u32(f[4].p, f[4].n, &h->flevel)))
		return field_err(err, what, 4, &f[4], why);

	if (f[FIELD_MD5].n == 1 && f[FIELD_MD5].p[0] == 'X') {
		h->has_md5 = false;
	} else if (f[FIELD_MD5].n != 2 * CVD_MD5_LEN) {
		return field_err(err, what, FIELD_MD5, &f[FIELD_MD5],
				 "is neither X nor 32 hex digits");
	} else {
		for (i = 0; i < 2 * CVD_MD5_LEN; i++) {
			char c = f[FIELD_MD5].p[i];

			if (c >= 'A' && c <= 'F')
				return field_err(err, what, FIELD_MD5, &f[FIELD_MD5],
						 "has upper-case hex digits (libclamav compares it "
						 "with the lower-case MD5 it computes)");
			if (hex_val(c) < 0)
				return field_err(err, what, FIELD_MD5, &f[FIELD_MD5], "is not hex");
		}
		for (i = 0; i < CVD_MD5_LEN; i++)
			h->md5[i] = (unsigned char)(hex_val(f[FIELD_MD5].p[2 * i]) << 4 |
						    hex_val(f[FIELD_MD5].p[2 * i + 1]));
		h->has_md5 = true;
	}

	if (f[FIELD_DSIG].n == 1 && f[FIELD_DSIG].p[0] == 'X') {
		h->has_dsig = false;
	} else if ((why = check_dsig(f[FIELD_DSIG].p, f[FIELD_DSIG].n, CVD_DSIG_MAX, &pos))) {
		char q[SHOW_LEN];

		if (pos)
			set_err(err, "%s field %d (%s): character %zu ('%s') %s", what, FIELD_DSIG,
				header_fields[FIELD_DSIG], pos,
				show(f[FIELD_DSIG].p + pos - 1, 1, q), why);
		else
			set_err(err, "%s field %d (%s): %zu characters %s (X or 2-%d digits)", what,
				FIELD_DSIG, header_fields[FIELD_DSIG], f[FIELD_DSIG].n,
				f[FIELD_DSIG].n < 2 ? "is too short" : "is too long", CVD_DSIG_MAX);
		return -EBADMSG;
	} else {
		memcpy(h->dsig, f[FIELD_DSIG].p, f[FIELD_DSIG].n);
		h->has_dsig = true;
	}

	if ((why = check_text(f[7].p, f[7].n, CVD_BUILDER_MAX, false)))
		return field_err(err, what, 7, &f[7], why);
	memcpy(h->builder, f[7].p, f[7].n);

	if ((why = parse_u32(f[8].p, f[8].n, &h->stime)))
		return field_err(err, what, 8, &f[8], why);
	return 0;
}

/* format_fields: h as header text into buf[size], NUL-terminated; checked
 * by parsing it back, so that whatever is written is read the same.
 * Returns the length or -EINVAL with err. */
static int format_fields(const struct cvd_header *h, char *buf, size_t size, const char *what,
			 char *err)
{
	char md5[2 * CVD_MD5_LEN + 1];
	struct cvd_header back;
	int n;

	if (!memchr(h->time, '\0', sizeof(h->time)) ||
	    !memchr(h->builder, '\0', sizeof(h->builder)) ||
	    (h->has_dsig && !memchr(h->dsig, '\0', sizeof(h->dsig)))) {
		set_err(err, "%s: a text field is not NUL-terminated", what);
		return -EINVAL;
	}
	if (h->has_md5)
		hex_encode(h->md5, CVD_MD5_LEN, md5);
	n = snprintf(buf, size, "%s:%s:%u:%u:%u:%s:%s:%s:%u", CVD_MAGIC, h->time, h->version,
		     h->sigs, h->flevel, h->has_md5 ? md5 : "X", h->has_dsig ? h->dsig : "X",
		     h->builder, h->stime);
	if (n < 0 || (size_t)n >= size) {
		set_err(err, "%s: the text would be longer than %zu characters", what, size - 1);
		return -EINVAL;
	}
	if (parse_fields(buf, (size_t)n, what, &back, err))
		return -EINVAL;
	if (!header_equal(h, &back)) {
		set_err(err, "%s: the fields would not read back the same", what);
		return -EINVAL;
	}
	return n;
}

enum cvd_type cvd_type_from_name(const char *name)
{
	size_t n = name ? strlen(name) : 0;

	if (n < 4)
		return CVD_TYPE_UNKNOWN;
	if (!strcasecmp(name + n - 4, ".cvd"))
		return CVD_TYPE_CVD;
	if (!strcasecmp(name + n - 4, ".cld"))
		return CVD_TYPE_CLD;
	if (!strcasecmp(name + n - 4, ".cud"))
		return CVD_TYPE_CUD;
	return CVD_TYPE_UNKNOWN;
}

static bool is_pad(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

int cvd_parse_header(const void *buf, size_t len, struct cvd_header *h, char *err)
{
	const char *b = buf;
	const char *nul;
	struct cvd_header tmp;
	size_t n, i;
	int r;

	if (!h || (!buf && len)) {
		set_err(err, "header: invalid arguments");
		return -EINVAL;
	}
	memset(h, 0, sizeof(*h));
	if (len < CVD_HEADER_LEN) {
		set_err(err, "header: truncated: %zu of %d bytes", len, CVD_HEADER_LEN);
		return -EBADMSG;
	}
	/* libclamav 1.4 would end the header at a NUL, 1.5 refuses it; sigtool
	 * and freshclam never write one. */
	if ((nul = memchr(b, '\0', CVD_HEADER_LEN))) {
		set_err(err, "header byte %zu is NUL (headers are padded with spaces)",
			(size_t)(nul - b) + 1);
		return -EBADMSG;
	}
	for (n = CVD_HEADER_LEN; n > 0 && is_pad(b[n - 1]); n--)
		;
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)b[i];

		if (c < 0x20 || c > 0x7e) {
			set_err(err,
				"header byte %zu: 0x%02x inside the header text is not printable "
				"ASCII",
				i + 1, c);
			return -EBADMSG;
		}
	}
	r = parse_fields(b, n, "header", &tmp, err);
	if (r)
		return r;
	*h = tmp;
	return 0;
}

int cvd_format_header(const struct cvd_header *h, char out[CVD_HEADER_LEN], char *err)
{
	char text[CVD_HEADER_LEN + 1];
	int n;

	if (!h || !out) {
		set_err(err, "cannot write header: invalid arguments");
		return -EINVAL;
	}
	n = format_fields(h, text, sizeof(text), "cannot write header", err);
	if (n < 0)
		return n;
	memcpy(out, text, (size_t)n);
	memset(out + n, ' ', CVD_HEADER_LEN - (size_t)n);
	return 0;
}

int cvd_header_check_type(const struct cvd_header *h, enum cvd_type type, char *err)
{
	if (!h) {
		set_err(err, "header: invalid arguments");
		return -EINVAL;
	}
	switch (type) {
	case CVD_TYPE_CVD:
		if (!h->has_md5) {
			set_err(err, "header field 5 (%s) is X: a .cvd must carry it",
				header_fields[FIELD_MD5]);
			return -EBADMSG;
		}
		if (!h->has_dsig) {
			set_err(err, "header field 6 (%s) is X: a .cvd must be signed",
				header_fields[FIELD_DSIG]);
			return -EBADMSG;
		}
		return 0;
	case CVD_TYPE_CUD:
		if (!h->has_md5) {
			set_err(err, "header field 5 (%s) is X: sigtool writes it into a .cud",
				header_fields[FIELD_MD5]);
			return -EBADMSG;
		}
		if (h->has_dsig) {
			set_err(err, "header field 6 (%s) is set in a .cud, which is unsigned (X)",
				header_fields[FIELD_DSIG]);
			return -EBADMSG;
		}
		return 0;
	case CVD_TYPE_CLD:
		/* freshclam writes X:X; libclamav checks neither in a .cld. */
		return 0;
	case CVD_TYPE_UNKNOWN:
	default:
		set_err(err, "header: unknown container type");
		return -EINVAL;
	}
}

/* ---- payload ---- */

static int payload_kind(const unsigned char *p, size_t n, enum cvd_payload_kind *kind, char *err)
{
	if (n < CVD_PAYLOAD_MIN) {
		set_err(err,
			"payload: %zu bytes, fewer than the %d libclamav reads first (truncated?)",
			n, CVD_PAYLOAD_MIN);
		return -EBADMSG;
	}
	if (!memcmp(p, "COPYING", CVD_PAYLOAD_MIN)) {
		*kind = CVD_PAYLOAD_TAR;
		return 0;
	}
	if (p[0] == 0x1f && p[1] == 0x8b) {
		*kind = CVD_PAYLOAD_GZIP;
		return 0;
	}
	set_err(err,
		"payload: starts with %02x %02x, neither gzip (1f 8b) nor a tar whose first "
		"member is COPYING",
		p[0], p[1]);
	return -EBADMSG;
}

static int md5_start(EVP_MD_CTX **ctx, char *err)
{
	*ctx = EVP_MD_CTX_new();
	if (!*ctx) {
		set_err(err, "payload: out of memory");
		return -ENOMEM;
	}
	if (!EVP_DigestInit_ex(*ctx, EVP_md5(), NULL)) {
		ERR_clear_error();
		EVP_MD_CTX_free(*ctx);
		*ctx = NULL;
		set_err(err, "payload: OpenSSL refuses MD5 (FIPS mode?)");
		return -ENOTSUP;
	}
	return 0;
}

static int md5_update(EVP_MD_CTX *ctx, const void *p, size_t n, char *err)
{
	if (!EVP_DigestUpdate(ctx, p, n)) {
		ERR_clear_error();
		set_err(err, "payload: MD5 failed");
		return -EIO;
	}
	return 0;
}

static int md5_finish(EVP_MD_CTX *ctx, unsigned char md5[CVD_MD5_LEN], char *err)
{
	unsigned int n = 0;

	if (!EVP_DigestFinal_ex(ctx, md5, &n) || n != CVD_MD5_LEN) {
		ERR_clear_error();
		set_err(err, "payload: MD5 failed");
		return -EIO;
	}
	return 0;
}

int cvd_payload_md5(const void *buf, size_t len, struct cvd_header *h, struct cvd_payload *p,
		    char *err)
{
	const unsigned char *b = buf;
	struct cvd_payload tmp = {0};
	EVP_MD_CTX *ctx = NULL;
	int r;

	if (!h || !p || (!buf && len)) {
		set_err(err, "payload: invalid arguments");
		return -EINVAL;
	}
	memset(p, 0, sizeof(*p));
	r = cvd_parse_header(buf, len, h, err);
	if (r)
		return r;
	tmp.offset = CVD_HEADER_LEN;
	tmp.length = len - CVD_HEADER_LEN;
	r = payload_kind(b + CVD_HEADER_LEN, len - CVD_HEADER_LEN, &tmp.kind, err);
	if (r)
		goto out;
	r = md5_start(&ctx, err);
	if (r)
		goto out;
	r = md5_update(ctx, b + CVD_HEADER_LEN, len - CVD_HEADER_LEN, err);
	if (!r)
		r = md5_finish(ctx, tmp.md5, err);
	if (!r)
		*p = tmp;
out:
	EVP_MD_CTX_free(ctx);
	if (r)
		memset(h, 0, sizeof(*h));
	return r;
}

/* pread_full: up to n bytes at off, fewer only at EOF. */
static ssize_t pread_full(int fd, void *buf, size_t n, uint64_t off)
{
	size_t got = 0;

	while (got < n) {
		ssize_t r = pread(fd, (char *)buf + got, n - got, (off_t)(off + got));

		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (r == 0)
			break;
		got += (size_t)r;
	}
	return (ssize_t)got;
}

int cvd_payload_md5_fd(int fd, struct cvd_header *h, struct cvd_payload *p, char *err)
{
	struct cvd_payload tmp = {0};
	EVP_MD_CTX *ctx = NULL;
	unsigned char *blk = NULL;
	uint64_t off = CVD_HEADER_LEN;
	ssize_t n;
	int r;

	if (fd < 0 || !h || !p) {
		set_err(err, "payload: invalid arguments");
		return -EINVAL;
	}
	memset(h, 0, sizeof(*h));
	memset(p, 0, sizeof(*p));
	blk = malloc(READ_BLOCK);
	if (!blk) {
		set_err(err, "payload: out of memory");
		return -ENOMEM;
	}
	n = pread_full(fd, blk, CVD_HEADER_LEN, 0);
	if (n < 0) {
		r = (int)n;
		set_err(err, "header: cannot read: %s", strerror(-r));
		goto out;
	}
	r = cvd_parse_header(blk, (size_t)n, h, err);
	if (r)
		goto out;
	r = md5_start(&ctx, err);
	if (r)
		goto out;
	tmp.offset = CVD_HEADER_LEN;
	for (;;) {
		n = pread_full(fd, blk, READ_BLOCK, off);
		if (n < 0) {
			r = (int)n;
			set_err(err, "payload: cannot read at offset %llu: %s",
				(unsigned long long)off, strerror(-r));
			goto out;
		}
		/* The kind is told by the first bytes; a first read shorter than
		 * that is EOF (pread_full reads on until the block is full). */
		if (off == CVD_HEADER_LEN) {
			r = payload_kind(blk, (size_t)n, &tmp.kind, err);
			if (r)
				goto out;
		}
		if (n == 0)
			break;
		r = md5_update(ctx, blk, (size_t)n, err);
		if (r)
			goto out;
		off += (uint64_t)n;
	}
	tmp.length = off - CVD_HEADER_LEN;
	r = md5_finish(ctx, tmp.md5, err);
	if (!r)
		*p = tmp;
out:
	EVP_MD_CTX_free(ctx);
	free(blk);
	if (r)
		memset(h, 0, sizeof(*h));
	return r;
}

int cvd_check_md5(const struct cvd_header *h, const struct cvd_payload *p, char *err)
{
	char want[2 * CVD_MD5_LEN + 1], got[2 * CVD_MD5_LEN + 1];

	if (!h || !p) {
		set_err(err, "payload: invalid arguments");
		return -EINVAL;
	}
	if (!h->has_md5) {
		set_err(err, "header field 5 (%s) is X: nothing to check the payload against",
			header_fields[FIELD_MD5]);
		return -ENOENT;
	}
	if (memcmp(h->md5, p->md5, CVD_MD5_LEN)) {
		hex_encode(h->md5, CVD_MD5_LEN, want);
		hex_encode(p->md5, CVD_MD5_LEN, got);
		set_err(err, "payload MD5 %s differs from header field 5 (%s) %s", got,
			header_fields[FIELD_MD5], want);
		return -EBADMSG;
	}
	return 0;
}

/* ---- .info ---- */

static int info_field_err(char *err, size_t line, size_t i, const struct span *f,
			  const char *reason)
{
	char q[SHOW_LEN];

	set_err(err, "info line %zu field %zu (%s): '%s' %s", line, i, info_fields[i],
		show(f->p, f->n, q), reason);
	return -EBADMSG;
}

/* check_name: a member name libclamav and a safe unpacker both take. */
static const char *check_name(const char *p, size_t n)
{
	size_t i;

	if (n == 0)
		return "is empty";
	if (n > CVD_INFO_NAME_MAX)
		return "is longer than the 100 bytes of a tar name";
	if ((n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
		return "is not a file name";
	for (i = 0; i < n; i++) {
		if ((unsigned char)p[i] <= 0x20 || (unsigned char)p[i] > 0x7e)
			return "has a blank or a character that is not printable ASCII";
		if (p[i] == '/' || p[i] == '\\' || p[i] == ':')
			return "has a path separator or ':'";
	}
	return NULL;
}

static int parse_entry(const char *l, size_t n, size_t line, struct cvd_info_entry *e, char *err)
{
	struct span f[INFO_FIELDS];
	const char *why;
	size_t nf, i;

	memset(e, 0, sizeof(*e));
	nf = split(l, n, ':', f, INFO_FIELDS);
	if (nf != INFO_FIELDS) {
		set_err(err, "info line %zu: %zu fields, expected %d (name:size:sha256)", line, nf,
			INFO_FIELDS);
		return -EBADMSG;
	}
	if ((why = check_name(f[0].p, f[0].n)))
		return info_field_err(err, line, 0, &f[0], why);
	memcpy(e->name, f[0].p, f[0].n);
	if ((why = parse_u32(f[1].p, f[1].n, &e->size)))
		return info_field_err(err, line, 1, &f[1], why);
	if (f[2].n != 2 * CVD_SHA256_LEN)
		return info_field_err(err, line, 2, &f[2], "is not 64 hex digits");
	for (i = 0; i < CVD_SHA256_LEN; i++) {
		int hi = hex_val(f[2].p[2 * i]), lo = hex_val(f[2].p[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return info_field_err(err, line, 2, &f[2], "is not hex");
		e->sha256[i] = (unsigned char)(hi << 4 | lo);
	}
	return 0;
}

int cvd_parse_info(const char *buf, size_t len, enum cvd_type type, struct cvd_info *out, char *err)
{
	struct cvd_info info = {0};
	char q[SHOW_LEN];
	size_t nlines = 0, cap, off = 0, line = 0, i, j;
	int r = -EBADMSG;

	if (!out || (!buf && len) || (unsigned int)type > CVD_TYPE_CUD) {
		set_err(err, "info: invalid arguments");
		return -EINVAL;
	}
	memset(out, 0, sizeof(*out));
	if (len == 0) {
		set_err(err, "info: empty");
		return -EBADMSG;
	}
	if (len > CVD_INFO_MAX_SIZE) {
		set_err(err, "info: %zu bytes, more than the %u allowed", len, CVD_INFO_MAX_SIZE);
		return -EBADMSG;
	}
	for (i = 0; i < len; i++)
		nlines += buf[i] == '\n';
	if (buf[len - 1] != '\n') {
		set_err(err, "info line %zu: no newline at the end (truncated?)", nlines + 1);
		return -EBADMSG;
	}
	/* Sized once, by the lines there are: every line after the header is at
	 * most one entry. */
	cap = nlines - 1 < CVD_INFO_MAX_ENTRIES ? nlines - 1 : CVD_INFO_MAX_ENTRIES;
	if (cap) {
		info.entries = calloc(cap, sizeof(*info.entries));
		if (!info.entries) {
			set_err(err, "info: out of memory");
			return -ENOMEM;
		}
	}

	while (off < len) {
		const char *l = buf + off;
		const char *nl = memchr(l, '\n', len - off);
		size_t n = (size_t)(nl - l);

		line++;
		off += n + 1;
		if (n > CVD_INFO_LINE_MAX) {
			set_err(err, "info line %zu: %zu characters, more than %d", line, n,
				CVD_INFO_LINE_MAX);
			goto err_free;
		}
		for (i = 0; i < n; i++) {
			unsigned char c = (unsigned char)l[i];

			if (c == '\r') {
				set_err(err,
					"info line %zu: carriage return at column %zu (lines end "
					"in LF alone)",
					line, i + 1);
				goto err_free;
			}
			if (c < 0x20 || c > 0x7e) {
				set_err(err,
					"info line %zu: byte 0x%02x at column %zu is not "
					"printable ASCII",
					line, c, i + 1);
				goto err_free;
			}
		}
		if (line == 1) {
			if (n < strlen(MAGIC_PREFIX) ||
			    memcmp(l, MAGIC_PREFIX, strlen(MAGIC_PREFIX))) {
				set_err(err,
					"info line 1: '%s' is not the header line (" MAGIC_PREFIX
					"...)",
					show(l, n, q));
				goto err_free;
			}
			if (n > INFO_HDR_MAX) {
				set_err(err,
					"info line 1: %zu characters, more than the %d a .cld "
					"header can take",
					n, INFO_HDR_MAX);
				goto err_free;
			}
			if (parse_fields(l, n, "info line 1", &info.hdr, err))
				goto err_free;
			continue;
		}
		if (n == 0) {
			set_err(err, "info line %zu: empty", line);
			goto err_free;
		}
		if (n >= strlen(DSIG_PREFIX) && !memcmp(l, DSIG_PREFIX, strlen(DSIG_PREFIX))) {
			const char *d = l + strlen(DSIG_PREFIX);
			size_t dn = n - strlen(DSIG_PREFIX), pos;
			const char *why;

			if (type == CVD_TYPE_CUD) {
				set_err(err,
					"info line %zu: DSIG in the .info of a .cud (unsigned: "
					"libclamav reads it as a malformed member line)",
					line);
				goto err_free;
			}
			if (off != len) {
				set_err(err,
					"info line %zu: DSIG is not the last line (libclamav "
					"ignores what follows it)",
					line);
				goto err_free;
			}
			if ((why = check_dsig(d, dn, CVD_INFO_DSIG_MAX, &pos))) {
				if (pos)
					set_err(err,
						"info line %zu (DSIG): character %zu ('%s') %s",
						line, pos, show(d + pos - 1, 1, q), why);
				else
					set_err(err,
						"info line %zu (DSIG): %zu characters %s (2-%d "
						"digits)",
						line, dn, why, CVD_INFO_DSIG_MAX);
				goto err_free;
			}
			memcpy(info.dsig, d, dn);
			info.has_dsig = true;
			info.signed_len = (size_t)(l - buf);
			continue;
		}
		if (n >= strlen(MAGIC_PREFIX) && !memcmp(l, MAGIC_PREFIX, strlen(MAGIC_PREFIX))) {
			set_err(err, "info line %zu: a second header line", line);
			goto err_free;
		}
		if (info.n_entries == CVD_INFO_MAX_ENTRIES) {
			set_err(err, "info line %zu: more than %d member lines", line,
				CVD_INFO_MAX_ENTRIES);
			goto err_free;
		}
		if (parse_entry(l, n, line, &info.entries[info.n_entries], err))
			goto err_free;
		for (j = 0; j < info.n_entries; j++) {
			if (!strcmp(info.entries[j].name, info.entries[info.n_entries].name)) {
				/* entries are consecutive lines from line 2 */
				set_err(err,
					"info line %zu field 0 (name): '%s' is listed twice (also "
					"on line %zu)",
					line, info.entries[j].name, j + 2);
				goto err_free;
			}
		}
		info.n_entries++;
	}
	if (!info.n_entries) {
		set_err(err, "info: no member lines (name:size:sha256)");
		goto err_free;
	}
	if ((type == CVD_TYPE_CVD || type == CVD_TYPE_CLD) && !info.has_dsig) {
		set_err(err, "info: no DSIG line (the .info of a signed container ends with "
			     "DSIG:<signature>)");
		goto err_free;
	}
	*out = info;
	return 0;

err_free:
	free(info.entries);
	return r;
}

void cvd_info_free(struct cvd_info *info)
{
	if (!info)
		return;
	free(info->entries);
	memset(info, 0, sizeof(*info));
}

const struct cvd_info_entry *cvd_info_find(const struct cvd_info *info, const char *name)
{
	size_t i;

	if (!info || !name)
		return NULL;
	for (i = 0; i < info->n_entries; i++)
		if (!strcmp(info->entries[i].name, name))
			return &info->entries[i];
	return NULL;
}

int cvd_info_matches_header(const struct cvd_info *info, const struct cvd_header *h, char *err)
{
	static const int idx[] = {2, 3, 4, 8};
	uint32_t a[4], b[4];
	size_t i;

	if (!info || !h) {
		set_err(err, "info: invalid arguments");
		return -EINVAL;
	}
	a[0] = info->hdr.version, a[1] = info->hdr.sigs, a[2] = info->hdr.flevel,
	a[3] = info->hdr.stime;
	b[0] = h->version, b[1] = h->sigs, b[2] = h->flevel, b[3] = h->stime;
	for (i = 0; i < 4; i++) {
		if (a[i] != b[i]) {
			set_err(err,
				"info line 1 field %d (%s) is %u, the container header's is %u "
				"(libclamav: corrupted CVD header)",
				idx[i], header_fields[idx[i]], a[i], b[i]);
			return -EBADMSG;
		}
	}
	return 0;
}

static bool info_equal(const struct cvd_info *a, const struct cvd_info *b)
{
	size_t i;

	if (!header_equal(&a->hdr, &b->hdr) || a->n_entries != b->n_entries ||
	    a->has_dsig != b->has_dsig || (a->has_dsig && strcmp(a->dsig, b->dsig)))
		return false;
	for (i = 0; i < a->n_entries; i++)
		if (strcmp(a->entries[i].name, b->entries[i].name) ||
		    a->entries[i].size != b->entries[i].size ||
		    memcmp(a->entries[i].sha256, b->entries[i].sha256, CVD_SHA256_LEN))
			return false;
	return true;
}

int cvd_format_info(const struct cvd_info *info, char **out, size_t *outlen, char *err)
{
	struct cvd_info back = {0};
	char tmp[CVD_ERR_LEN];
	char *s = NULL;
	size_t size, o, i;
	int n, r = -EINVAL;

	if (!info || !out || !outlen || (info->n_entries && !info->entries)) {
		set_err(err, "cannot write .info: invalid arguments");
		return -EINVAL;
	}
	*out = NULL;
	*outlen = 0;
	if (info->n_entries == 0 || info->n_entries > CVD_INFO_MAX_ENTRIES) {
		set_err(err, "cannot write .info: %zu entries (1-%d)", info->n_entries,
			CVD_INFO_MAX_ENTRIES);
		return -EINVAL;
	}
	if (info->has_dsig && !memchr(info->dsig, '\0', sizeof(info->dsig))) {
		set_err(err, "cannot write .info: DSIG is not NUL-terminated");
		return -EINVAL;
	}
	for (i = 0; i < info->n_entries; i++) {
		if (!memchr(info->entries[i].name, '\0', sizeof(info->entries[i].name))) {
			set_err(err, "cannot write .info: entry %zu: name is not NUL-terminated",
				i);
			return -EINVAL;
		}
	}
	size = INFO_HDR_MAX + 1 + info->n_entries * INFO_ENTRY_MAX +
	       (info->has_dsig ? strlen(DSIG_PREFIX) + CVD_INFO_DSIG_MAX + 1 : 0) + 1;
	s = malloc(size);
	if (!s) {
		set_err(err, "cannot write .info: out of memory");
		return -ENOMEM;
	}
	n = format_fields(&info->hdr, s, INFO_HDR_MAX + 1, "cannot write .info line 1", err);
	if (n < 0)
		goto err_free;
	o = (size_t)n;
	s[o++] = '\n';
	for (i = 0; i < info->n_entries; i++) {
		const struct cvd_info_entry *e = &info->entries[i];

		n = snprintf(s + o, size - o, "%s:%u:", e->name, e->size);
		if (n < 0 || (size_t)n >= size - o) {
			set_err(err, "cannot write .info: entry %zu does not fit", i);
			goto err_free;
		}
		o += (size_t)n;
		hex_encode(e->sha256, CVD_SHA256_LEN, s + o);
		o += 2 * CVD_SHA256_LEN;
		s[o++] = '\n';
	}
	if (info->has_dsig) {
		n = snprintf(s + o, size - o, DSIG_PREFIX "%s\n", info->dsig);
		if (n < 0 || (size_t)n >= size - o) {
			set_err(err, "cannot write .info: DSIG is longer than %d digits",
				CVD_INFO_DSIG_MAX);
			goto err_free;
		}
		o += (size_t)n;
	}
	s[o] = '\0';
	/* Whatever is written must read back the same (names, duplicates, the
	 * DSIG alphabet are checked there, once). */
	r = cvd_parse_info(s, o, CVD_TYPE_UNKNOWN, &back, tmp);
	if (r) {
		set_err(err, "cannot write .info: %s", tmp);
		r = -EINVAL;
		goto err_free;
	}
	if (!info_equal(info, &back)) {
		set_err(err, "cannot write .info: it would not read back the same");
		r = -EINVAL;
		goto err_free;
	}
	cvd_info_free(&back);
	*out = s;
	*outlen = o;
	return 0;

err_free:
	cvd_info_free(&back);
	free(s);
	return r;
}

/* ---- .sign ---- */

/* check_pkcs7: der is one complete PKCS#7 SignedData without content (a
 * detached signature), nothing after it. NULL or the reason. */
static const char *check_pkcs7(const unsigned char *der, size_t len)
{
	const unsigned char *p = der;
	const char *why = NULL;
	PKCS7 *p7;

	if (len == 0 || len > CVD_SIGN_DER_MAX)
		return "has no DER or too much";
	p7 = d2i_PKCS7(NULL, &p, (long)len);
	if (!p7) {
		ERR_clear_error();
		return "is not a DER PKCS#7";
	}
	if (p != der + len)
		why = "has bytes after the PKCS#7";
	else if (!PKCS7_type_is_signed(p7))
		why = "is a PKCS#7 but not SignedData";
	else if (!p7->d.sign || !p7->d.sign->contents)
		why = "is a PKCS#7 SignedData without its content info";
	else if (p7->d.sign->contents->d.ptr)
		why = "carries the signed content (a .sign signature is detached)";
	PKCS7_free(p7);
	return why;
}

static int sign_field_err(char *err, unsigned int line, size_t i, const struct span *f,
			  const char *reason)
{
	char q[SHOW_LEN];

	set_err(err, "sign line %u field %zu (%s): '%s' %s", line, i, sign_fields[i],
		show(f->p, f->n, q), reason);
	return -EBADMSG;
}

/* b64_decode: RFC 4648 with '=' padding, into out (room for n / 4 * 3). */
static int b64_decode(const char *p, size_t n, unsigned int line, unsigned char *out,
		      size_t *outlen, char *err)
{
	struct span f = {p, n};
	char q[SHOW_LEN];
	size_t pad = 0, i;
	int r;

	if (n == 0)
		return sign_field_err(err, line, 3, &f, "is empty");
	if (n % 4)
		return sign_field_err(err, line, 3, &f,
				      "is not a whole number of base64 quads (truncated?)");
	if (p[n - 1] == '=')
		pad = p[n - 2] == '=' ? 2 : 1;
	for (i = 0; i < n - pad; i++) {
		if (!is_b64(p[i])) {
			set_err(err,
				"sign line %u field 3 (signature): character %zu ('%s') is not "
				"base64",
				line, i + 1, show(p + i, 1, q));
			return -EBADMSG;
		}
	}
	if (n / 4 * 3 - pad > CVD_SIGN_DER_MAX) {
		set_err(err, "sign line %u field 3 (signature): %zu bytes of DER, more than %u",
			line, n / 4 * 3 - pad, CVD_SIGN_DER_MAX);
		return -EBADMSG;
	}
	/* EVP_DecodeBlock counts the padding as zero bytes. */
	r = EVP_DecodeBlock(out, (const unsigned char *)p, (int)n);
	if (r < 0 || (size_t)r != n / 4 * 3) {
		ERR_clear_error();
		return sign_field_err(err, line, 3, &f, "is not valid base64");
	}
	*outlen = (size_t)r - pad;
	return 0;
}

static int parse_sign_line(const char *l, size_t n, unsigned int line, struct cvd_sign_entry *e,
			   unsigned char *der, char *err)
{
	struct span f[SIGN_FIELDS];
	const char *why;
	size_t nf;
	int r;

	nf = split(l, n, ':', f, SIGN_FIELDS);
	if (nf != SIGN_FIELDS) {
		set_err(err,
			"sign line %u: %zu fields, expected %d "
			"(min_flevel:max_flevel:" CVD_SIGN_FORMAT ":base64)",
			line, nf, SIGN_FIELDS);
		return -EBADMSG;
	}
	if ((why = parse_u32(f[0].p, f[0].n, &e->min_flevel)))
		return sign_field_err(err, line, 0, &f[0], why);
	if (f[1].n) {
		if ((why = parse_u32(f[1].p, f[1].n, &e->max_flevel)))
			return sign_field_err(err, line, 1, &f[1], why);
		if (e->max_flevel < e->min_flevel)
			return sign_field_err(err, line, 1, &f[1],
					      "is below min_flevel (the line could never apply)");
		e->has_max = true;
	}
	if (f[2].n != strlen(CVD_SIGN_FORMAT) || memcmp(f[2].p, CVD_SIGN_FORMAT, f[2].n))
		return sign_field_err(err, line, 2, &f[2],
				      "is not " CVD_SIGN_FORMAT " (ClamAV refuses the whole file)");
	r = b64_decode(f[3].p, f[3].n, line, der, &e->der_len, err);
	if (r)
		return r;
	if ((why = check_pkcs7(der, e->der_len))) {
		set_err(err, "sign line %u field 3 (signature): %zu bytes of DER %s", line,
			e->der_len, why);
		return -EBADMSG;
	}
	e->der = der;
	e->line = line;
	return 0;
}

static bool is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

int cvd_parse_sign(const char *buf, size_t len, struct cvd_sign *out, char *err)
{
	struct span lines[CVD_SIGN_MAX_ENTRIES];
	unsigned int lnos[CVD_SIGN_MAX_ENTRIES];
	const char *nul, *nl;
	unsigned char *arena;
	void *block = NULL;
	char q[SHOW_LEN];
	size_t off, n, count = 0, b64 = 0, i;
	unsigned int line = 1;
	int r;

	if (!out || (!buf && len)) {
		set_err(err, "sign: invalid arguments");
		return -EINVAL;
	}
	memset(out, 0, sizeof(*out));
	if (len == 0) {
		set_err(err, "sign: empty");
		return -EBADMSG;
	}
	if (len > CVD_SIGN_MAX_SIZE) {
		set_err(err, "sign: %zu bytes, more than the %u allowed", len, CVD_SIGN_MAX_SIZE);
		return -EBADMSG;
	}
	if ((nul = memchr(buf, '\0', len))) {
		set_err(err, "sign: byte %zu is NUL", (size_t)(nul - buf) + 1);
		return -EBADMSG;
	}

	nl = memchr(buf, '\n', len);
	n = nl ? (size_t)(nl - buf) : len;
	off = nl ? n + 1 : len;
	if (n && buf[n - 1] == '\r')
		n--;
	if (n != strlen(CVD_SIGN_MAGIC) || memcmp(buf, CVD_SIGN_MAGIC, n)) {
		if (n > strlen("#clamsign-") && !memcmp(buf, "#clamsign-", strlen("#clamsign-")))
			set_err(err, "sign line 1: version '%s' is not 1.0",
				show(buf + strlen("#clamsign-"), n - strlen("#clamsign-"), q));
		else
			set_err(err,
				"sign line 1: '%s' is not " CVD_SIGN_MAGIC
				" (not a ClamAV .sign file)",
				show(buf, n, q));
		return -EBADMSG;
	}

	/* First pass: where the signature lines are, so that entries and all
	 * DER fit one allocation. */
	while (off < len) {
		const char *l = buf + off;

		line++;
		nl = memchr(l, '\n', len - off);
		n = nl ? (size_t)(nl - l) : len - off;
		off += nl ? n + 1 : n;
		while (n && is_blank(l[n - 1]))
			n--;
		while (n && is_blank(l[0]))
			l++, n--;
		if (n == 0 || l[0] == '#')
			continue;
		if (n > SIGN_LINE_MAX) {
			set_err(err, "sign line %u: %zu characters, more than %lu", line, n,
				(unsigned long)SIGN_LINE_MAX);
			return -EBADMSG;
		}
		if (count == CVD_SIGN_MAX_ENTRIES) {
			set_err(err, "sign line %u: more than %d signature lines", line,
				CVD_SIGN_MAX_ENTRIES);
			return -EBADMSG;
		}
		lines[count].p = l;
		lines[count].n = n;
		lnos[count] = line;
		b64 += n / 4 * 3 + 3;
		count++;
	}
	if (!count) {
		set_err(err, "sign: no signature lines");
		return -EBADMSG;
	}

	block = calloc(1, count * sizeof(struct cvd_sign_entry) + b64);
	if (!block) {
		set_err(err, "sign: out of memory");
		return -ENOMEM;
	}
	arena = (unsigned char *)block + count * sizeof(struct cvd_sign_entry);
	for (i = 0; i < count; i++) {
		struct cvd_sign_entry *e = (struct cvd_sign_entry *)block + i;

		r = parse_sign_line(lines[i].p, lines[i].n, lnos[i], e, arena, err);
		if (r)
			goto err_free;
		arena += lines[i].n / 4 * 3 + 3;
	}
	out->entries = block;
	out->n_entries = count;
	return 0;

err_free:
	free(block);
	return r;
}

void cvd_sign_free(struct cvd_sign *s)
{
	if (!s)
		return;
	free(s->entries); /* the DER live in the same block */
	memset(s, 0, sizeof(*s));
}

bool cvd_sign_entry_applies(const struct cvd_sign_entry *e, uint32_t flevel)
{
	return e && flevel >= e->min_flevel && (!e->has_max || flevel <= e->max_flevel);
}

const struct cvd_sign_entry *cvd_sign_select(const struct cvd_sign *s, uint32_t flevel)
{
	size_t i;

	if (!s)
		return NULL;
	for (i = 0; i < s->n_entries; i++)
		if (cvd_sign_entry_applies(&s->entries[i], flevel))
			return &s->entries[i];
	return NULL;
}

int cvd_format_sign(const struct cvd_sign *s, char **out, size_t *outlen, char *err)
{
	const char *why;
	char *buf;
	size_t size, o, i;
	int n;

	if (!s || !out || !outlen || (s->n_entries && !s->entries)) {
		set_err(err, "cannot write .sign: invalid arguments");
		return -EINVAL;
	}
	*out = NULL;
	*outlen = 0;
	if (s->n_entries == 0 || s->n_entries > CVD_SIGN_MAX_ENTRIES) {
		set_err(err, "cannot write .sign: %zu entries (1-%d)", s->n_entries,
			CVD_SIGN_MAX_ENTRIES);
		return -EINVAL;
	}
	size = strlen(CVD_SIGN_MAGIC) + 2;
	for (i = 0; i < s->n_entries; i++) {
		const struct cvd_sign_entry *e = &s->entries[i];

		if (!e->der || (why = check_pkcs7(e->der, e->der_len))) {
			set_err(err, "cannot write .sign: entry %zu: %zu bytes of DER %s", i,
				e->der_len, e->der ? why : "missing");
			return -EINVAL;
		}
		if (e->has_max && e->max_flevel < e->min_flevel) {
			set_err(err,
				"cannot write .sign: entry %zu: max_flevel %u is below "
				"min_flevel %u",
				i, e->max_flevel, e->min_flevel);
			return -EINVAL;
		}
		size += 2 * U32_DIGITS + strlen(CVD_SIGN_FORMAT) + 4 + B64_LEN(e->der_len) + 1;
	}
	buf = malloc(size);
	if (!buf) {
		set_err(err, "cannot write .sign: out of memory");
		return -ENOMEM;
	}
	o = (size_t)snprintf(buf, size, "%s\n", CVD_SIGN_MAGIC);
	for (i = 0; i < s->n_entries; i++) {
		const struct cvd_sign_entry *e = &s->entries[i];

		if (e->has_max)
			n = snprintf(buf + o, size - o, "%u:%u:" CVD_SIGN_FORMAT ":", e->min_flevel,
				     e->max_flevel);
		else
			n = snprintf(buf + o, size - o, "%u::" CVD_SIGN_FORMAT ":", e->min_flevel);
		o += (size_t)n;
		/* One line, no PEM armour or line breaks: what sigtool 1.5 writes
		 * (EVP_EncodeBlock adds a NUL, replaced by the LF). */
		o += (size_t)EVP_EncodeBlock((unsigned char *)buf + o, e->der, (int)e->der_len);
		buf[o++] = '\n';
	}
	buf[o] = '\0';
	*out = buf;
	*outlen = o;
	return 0;
}
