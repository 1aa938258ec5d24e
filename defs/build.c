/* build: the definitions builder (see build.h for the format and rules). */
#include "defs/build.h"

#include "common/config.h"
#include "common/digest.h"
#include "common/util.h"
#include "defs/cvd.h"
#include "defs/unpack.h"
#include "scanengine/engine.h"
#include "scanengine/msgs.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/pkcs7.h>
#include <openssl/x509.h>

#define PEM_MAX	 (1024u * 1024) /* a certificate chain or key file */
#define SHOW_MAX 160		/* bytes of a path quoted in a message */

struct member {
	const char *path; /* as given */
	const char *name; /* its base name: the tar member name */
	unsigned char *data;
	size_t len;
	unsigned char sha256[CVD_SHA256_LEN];
	int rank;     /* load order class, see member_rank() */
	size_t index; /* position in o->files, for a stable order */
};

struct signer {
	X509 *cert;
	EVP_PKEY *key;
	STACK_OF(X509) * chain; /* more certificates to include */
};

/* A growing buffer; the container is assembled in it. */
struct sink {
	unsigned char *p;
	size_t len, cap;
};

struct build {
	const struct build_opts *o;
	struct member *m; /* o->nfiles, in container order after collect() */
	size_t n;
	const char *builder;
	char *copying; /* content of COPYING */
	uint32_t stime;
	char *err;
};

__attribute__((format(printf, 2, 3))) static void set_err(char *err, const char *fmt, ...)
{
	va_list ap;

	if (!err)
		return;
	va_start(ap, fmt);
	vsnprintf(err, BUILD_ERR_LEN, fmt, ap);
	va_end(ap);
}

/* snprintf for paths: -ENAMETOOLONG (with err) instead of a cut path. */
__attribute__((format(printf, 4, 5))) static int pathf(char *err, char *buf, size_t len,
						       const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, len, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= len) {
		set_err(err, "path too long: %.200s...", buf);
		return -ENAMETOOLONG;
	}
	return 0;
}

/* s cut to SHOW_MAX bytes, bytes outside printable ASCII as '?': paths come
 * from the command line and end up on a terminal. */
static const char *show(const char *s, char buf[SHOW_MAX + 4])
{
	size_t i = 0;

	for (; s && s[i] && i < SHOW_MAX; i++) {
		unsigned char c = (unsigned char)s[i];

		buf[i] = (c < 0x20 || c > 0x7e) ? '?' : (char)c;
	}
	if (s && s[i]) {
		memcpy(buf + i, "...", 3);
		i += 3;
	}
	buf[i] = '\0';
	return buf;
}

/* The reason OpenSSL gave for the last failure; clears its error queue so
 * that nothing stale is reported by a later caller. */
static const char *ssl_reason(void)
{
	unsigned long e = ERR_peek_last_error();
	const char *r = e ? ERR_reason_error_string(e) : NULL;

	ERR_clear_error();
	return r ? r : "unknown reason";
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), k = strlen(suffix);

	return n > k && !strcasecmp(s + n - k, suffix);
}

/* 1..max bytes of [A-Za-z0-9._-] not starting with '.': the member names
 * defs/unpack.c accepts (and so a database name, which names <name>.info). */
static bool valid_name(const char *s, size_t max)
{
	size_t n = strlen(s);

	if (n == 0 || n > max || s[0] == '.')
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-'))
			return false;
	}
	return true;
}

/* Header field 7 as cvd_parse_header takes it back. */
static bool valid_builder(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > CVD_BUILDER_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (s[i] <= ' ' || s[i] > '~' || s[i] == ':')
			return false;
	return true;
}

/* Load order class: libclamav applies dconf (.cfg) and ignore entries
 * (.ign, .ign2) only to what it loads after them, and file type magic
 * (.ftm) before the signatures that use the types; sigtool --build packs
 * them in this order too. */
static int member_rank(const char *name)
{
	static const struct {
		const char *ext;
		int rank;
	} first[] = {{".cfg", 0}, {".ign", 1}, {".ign2", 1}, {".ftm", 2}};

	for (size_t i = 0; i < SE_ARRAY_SIZE(first); i++)
		if (ends_with(name, first[i].ext))
			return first[i].rank;
	return 3;
}

static int member_cmp(const void *a, const void *b)
{
	const struct member *x = a, *y = b;

	if (x->rank != y->rank)
		return x->rank < y->rank ? -1 : 1;
	return x->index < y->index ? -1 : x->index > y->index;
}

/* Read the regular file at path (at most max bytes) into a malloc'd buffer.
 * what names the option or file in messages. */
static int read_file(const char *path, uint64_t max, unsigned char **out, size_t *outlen,
		     const char *what, char *err)
{
	char q[SHOW_MAX + 4];
	unsigned char *buf = NULL;
	struct stat st;
	ssize_t n;
	int fd, rc;

	/* O_NONBLOCK: opening a FIFO must not hang; it is refused below. */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		rc = -errno;
		set_err(err, "%s '%s': %s", what, show(path, q), strerror(errno));
		return rc;
	}
	if (fstat(fd, &st) < 0) {
		rc = -errno;
		set_err(err, "%s '%s': %s", what, show(path, q), strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = -EINVAL;
		set_err(err, "%s '%s': not a regular file", what, show(path, q));
		goto out;
	}
	if ((uint64_t)st.st_size > max) {
		rc = -EFBIG;
		set_err(err, "%s '%s': %lld bytes, more than the %llu allowed", what, show(path, q),
			(long long)st.st_size, (unsigned long long)max);
		goto out;
	}
	/* One byte more than the size: a file still growing is noticed. */
	buf = malloc((size_t)st.st_size + 1);
	if (!buf) {
		rc = -ENOMEM;
		set_err(err, "%s '%s': out of memory", what, show(path, q));
		goto out;
	}
	n = util_read_all(fd, buf, (size_t)st.st_size + 1);
	if (n < 0) {
		rc = (int)n;
		set_err(err, "%s '%s': %s", what, show(path, q), strerror((int)-n));
		goto out;
	}
	if (n != st.st_size) {
		rc = -EIO;
		set_err(err, "%s '%s': changed while it was read", what, show(path, q));
		goto out;
	}
	*out = buf;
	*outlen = (size_t)n;
	buf = NULL;
	rc = 0;
out:
	free(buf);
	close(fd);
	return rc;
}

static int check_opts(const struct build_opts *o, char *err)
{
	char q[SHOW_MAX + 4];
	const char *base;

	if (!o->name || !valid_name(o->name, BUILD_NAME_MAX)) {
		set_err(err,
			"database name '%s': must be 1-%d characters of A-Z a-z 0-9 . _ - "
			"(no '/') and not start with '.'",
			show(o->name ? o->name : "", q), BUILD_NAME_MAX);
		return -EINVAL;
	}
	if (o->version == 0) {
		set_err(err, "version: must be at least 1");
		return -EINVAL;
	}
	if (!o->files || o->nfiles == 0) {
		set_err(err, "no signature files given");
		return -EINVAL;
	}
	if (o->nfiles > BUILD_MAX_FILES) {
		set_err(err, "%zu signature files: at most %d fit a container", o->nfiles,
			BUILD_MAX_FILES);
		return -EINVAL;
	}
	if (!o->out || !*o->out) {
		set_err(err, "no output file given");
		return -EINVAL;
	}
	base = strrchr(o->out, '/');
	base = base ? base + 1 : o->out;
	/* libclamav decides by the extension that a container is unsigned;
	 * named .cvd it would look for a Talos signature and refuse it. */
	if (cvd_type_from_name(base) != CVD_TYPE_CUD || strlen(base) <= 4) {
		set_err(err, "output '%s': the name must end in .cud (an unsigned container)",
			show(o->out, q));
		return -EINVAL;
	}
	if (strlen(o->out) + sizeof(".sign") > PATH_MAX - 16) {
		set_err(err, "output '%s': path too long", show(o->out, q));
		return -ENAMETOOLONG;
	}
	if (o->builder && !valid_builder(o->builder)) {
		set_err(err,
			"builder '%s': must be 1-%d printable characters without blanks or ':'",
			show(o->builder, q), CVD_BUILDER_MAX);
		return -EINVAL;
	}
	if (!o->sign_cert != !o->sign_key) {
		set_err(err, "signing needs both a certificate and its private key");
		return -EINVAL;
	}
	if (o->chain && !o->sign_cert) {
		set_err(err,
			"a chain certificate is only used when signing (no certificate given)");
		return -EINVAL;
	}
	if (o->stime < 0 || (uint64_t)o->stime > UINT32_MAX) {
		set_err(err, "build time %lld: out of range", (long long)o->stime);
		return -EINVAL;
	}
	return 0;
}

/* Check every input against the rules of build.h, read it and hash it, then
 * put the members in container order. */
static int collect(struct build *b)
{
	const struct build_opts *o = b->o;
	char q[SHOW_MAX + 4], q2[SHOW_MAX + 4];
	uint64_t total = 0;
	int rc;

	b->m = calloc(o->nfiles, sizeof(*b->m));
	if (!b->m) {
		set_err(b->err, "out of memory");
		return -ENOMEM;
	}
	for (size_t i = 0; i < o->nfiles; i++) {
		struct member *m = &b->m[i];
		const char *path = o->files[i], *name;

		if (!path || !*path) {
			set_err(b->err, "signature file %zu: empty path", i + 1);
			return -EINVAL;
		}
		name = strrchr(path, '/');
		name = name ? name + 1 : path;
		/* Checked before reading: a refused name is the likelier
		 * mistake and the clearer message. */
		if (!valid_name(name, BUILD_MEMBER_MAX)) {
			set_err(b->err,
				"signature file '%s': the name must be 1-%d characters of "
				"A-Z a-z 0-9 . _ - and not start with '.'",
				show(path, q), BUILD_MEMBER_MAX);
			return -EINVAL;
		}
		if (!strcasecmp(name, "COPYING") || ends_with(name, ".info")) {
			set_err(b->err, "signature file '%s': %s is written by the builder itself",
				show(path, q), ends_with(name, ".info") ? "the .info" : "COPYING");
			return -EINVAL;
		}
		/* Types libclamav lists, but 1.4 does not load from inside
		 * a container: it reads YARA and OpenIOC files by path, so it
		 * finds a YARA member empty (and ignores it) and crashes on
		 * an OpenIOC member (seen with 1.4.6). */
		if (ends_with(name, ".yar") || ends_with(name, ".yara") ||
		    ends_with(name, ".ioc")) {
			set_err(b->err,
				"signature file '%s': libclamav does not load %s files from a "
				"container; install it as a plain file instead",
				show(path, q), ends_with(name, ".ioc") ? "OpenIOC" : "YARA");
			return -EINVAL;
		}
		if (!unpack_known_type(name)) {
			set_err(b->err,
				"signature file '%s': not a database type libclamav loads "
				"(.hdb .hsb .mdb .msb .ndb .ldb .cdb .fp .sfp .ign2 .wdb .pdb .ftm ...)",
				show(path, q));
			return -EINVAL;
		}
		for (size_t j = 0; j < i; j++) {
			/* Case-blind: libclamav matches extensions without
			 * regard to case, and such members could not be
			 * unpacked side by side on every file system. */
			if (!strcasecmp(b->m[j].name, name)) {
				set_err(b->err,
					"signature files '%s' and '%s': both would be the member "
					"'%s'; names must be unique",
					show(b->m[j].path, q), show(path, q2), name);
				return -EINVAL;
			}
		}
		m->path = path;
		m->name = name;
		m->rank = member_rank(name);
		m->index = i;
		rc = read_file(path, UNPACK_DEFAULT_MAX_MEMBER, &m->data, &m->len, "signature file",
			       b->err);
		if (rc < 0)
			return rc;
		/* libclamav refuses empty database files ("Empty database
		 * file"); said here, the message is clearer. */
		if (m->len == 0) {
			set_err(b->err, "signature file '%s': empty", show(path, q));
			return -EINVAL;
		}
		total += m->len;
		if (total > UNPACK_DEFAULT_MAX_TOTAL) {
			set_err(b->err, "signature files: more than %llu bytes together",
				(unsigned long long)UNPACK_DEFAULT_MAX_TOTAL);
			return -EFBIG;
		}
		if (!EVP_Digest(m->data, m->len, m->sha256, NULL, EVP_sha256(), NULL)) {
			set_err(b->err, "SHA-256 of '%s': %s", show(path, q), ssl_reason());
			return -EIO;
		}
		b->n++;
	}
	qsort(b->m, b->n, sizeof(*b->m), member_cmp);
	return 0;
}

/* PEM certificates of the file at path: all of them pushed on *sk
 * (created when NULL). At least one must be there. */
static int read_certs(const char *path, const char *what, X509 **first, STACK_OF(X509) * *sk,
		      char *err)
{
	char q[SHOW_MAX + 4];
	unsigned char *pem = NULL;
	unsigned int count = 0;
	size_t len;
	BIO *bio = NULL;
	X509 *x;
	int rc;

	rc = read_file(path, PEM_MAX, &pem, &len, what, err);
	if (rc < 0)
		return rc;
	rc = -ENOMEM;
	bio = BIO_new_mem_buf(pem, (int)len);
	if (!bio || (!*sk && !(*sk = sk_X509_new_null()))) {
		set_err(err, "out of memory");
		goto out;
	}
	while ((x = PEM_read_bio_X509(bio, NULL, NULL, NULL))) {
		if (first && !*first) {
			*first = x;
		} else if (!sk_X509_push(*sk, x)) {
			X509_free(x);
			set_err(err, "out of memory");
			goto out;
		}
		count++;
	}
	/* The loop ends at the first block that is not a certificate; after
	 * at least one, "no more PEM data" is that end, not an error. */
	if (!count) {
		set_err(err, "%s '%s': no PEM certificate (%s)", what, show(path, q), ssl_reason());
		rc = -EINVAL;
		goto out;
	}
	ERR_clear_error();
	rc = 0;
out:
	BIO_free(bio);
	free(pem);
	return rc;
}

/* No passphrase prompt: OpenSSL's default callback would read the terminal
 * from inside a library call. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)u;
	return -1;
}

static void signer_free(struct signer *s)
{
	X509_free(s->cert);
	EVP_PKEY_free(s->key);
	sk_X509_pop_free(s->chain, X509_free);
	memset(s, 0, sizeof(*s));
}

/* Read certificate, chain and key, and refuse what would only give an
 * unverifiable .sign: a key of another certificate, a certificate not
 * valid at the build time. */
static int load_signer(const struct build *b, struct signer *s)
{
	const struct build_opts *o = b->o;
	char q[SHOW_MAX + 4], q2[SHOW_MAX + 4];
	unsigned char *pem = NULL;
	time_t t = (time_t)b->stime;
	BIO *bio = NULL;
	size_t len;
	int rc;

	rc = read_certs(o->sign_cert, "signing certificate", &s->cert, &s->chain, b->err);
	if (rc < 0)
		return rc;
	if (o->chain) {
		rc = read_certs(o->chain, "chain certificate", NULL, &s->chain, b->err);
		if (rc < 0)
			return rc;
	}
	rc = read_file(o->sign_key, PEM_MAX, &pem, &len, "signing key", b->err);
	if (rc < 0)
		return rc;
	bio = BIO_new_mem_buf(pem, (int)len);
	if (!bio) {
		set_err(b->err, "out of memory");
		rc = -ENOMEM;
		goto out;
	}
	s->key = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL);
	if (!s->key) {
		set_err(b->err,
			"signing key '%s': not a PEM private key, or an encrypted one "
			"(not supported) (%s)",
			show(o->sign_key, q), ssl_reason());
		rc = -EINVAL;
		goto out;
	}
	if (X509_check_private_key(s->cert, s->key) != 1) {
		ERR_clear_error();
		set_err(b->err, "signing key '%s' does not belong to the certificate '%s'",
			show(o->sign_key, q), show(o->sign_cert, q2));
		rc = -EINVAL;
		goto out;
	}
	/* X509_cmp_time: -1 earlier than or equal to t, 1 later, 0 error. */
	if (X509_cmp_time(X509_get0_notBefore(s->cert), &t) != -1 ||
	    X509_cmp_time(X509_get0_notAfter(s->cert), &t) != 1) {
		ERR_clear_error();
		set_err(b->err,
			"signing certificate '%s': not valid at the build time %lld (see its "
			"notBefore/notAfter)",
			show(o->sign_cert, q), (long long)t);
		rc = -EINVAL;
		goto out;
	}
	rc = 0;
out:
	BIO_free(bio);
	free(pem);
	return rc;
}

/* Append n bytes to s. Returns 0 or -ENOMEM. */
static int sink_append(struct sink *s, const void *buf, size_t n)
{
	if (n > s->cap - s->len) {
		size_t cap = s->cap ? s->cap : 64 * 1024;
		unsigned char *p;

		while (cap - s->len < n) {
			if (cap > SIZE_MAX / 2)
				return -ENOMEM;
			cap *= 2;
		}
		p = realloc(s->p, cap);
		if (!p)
			return -ENOMEM;
		s->p = p;
		s->cap = cap;
	}
	memcpy(s->p + s->len, buf, n);
	s->len += n;
	return 0;
}

/* libarchive's write callback: the compressed payload goes to the sink. */
static la_ssize_t sink_write(struct archive *a, void *ctx, const void *buf, size_t n)
{
	if (sink_append(ctx, buf, n) < 0) {
		archive_set_error(a, ENOMEM, "out of memory");
		return -1;
	}
	return (la_ssize_t)n;
}

/* One tar member with the fixed metadata of build.h. */
static int add_member(struct archive *a, const char *name, const void *data, size_t len, char *err)
{
	struct archive_entry *e = archive_entry_new();
	size_t off = 0;
	int rc = -EIO;

	if (!e) {
		set_err(err, "out of memory");
		return -ENOMEM;
	}
	archive_entry_set_pathname(e, name);
	archive_entry_set_filetype(e, AE_IFREG);
	archive_entry_set_perm(e, 0644);
	archive_entry_set_size(e, (la_int64_t)len);
	archive_entry_set_mtime(e, 0, 0);
	archive_entry_set_uid(e, 0);
	archive_entry_set_gid(e, 0);
	if (archive_write_header(a, e) != ARCHIVE_OK)
		goto fail;
	while (off < len) {
		la_ssize_t w = archive_write_data(a, (const char *)data + off,
						  SE_MIN(len - off, (size_t)1 << 20));

		if (w <= 0)
			goto fail;
		off += (size_t)w;
	}
	archive_entry_free(e);
	return 0;
fail:
	if (archive_errno(a) == ENOMEM)
		rc = -ENOMEM;
	set_err(err, "writing member %s: %s", name, archive_error_string(a));
	archive_entry_free(e);
	return rc;
}

/* The gzip'd tar of COPYING, info and the members, appended to c. */
static int write_payload(const struct build *b, const char *info_name, const char *info,
			 size_t info_len, struct sink *c)
{
	struct archive *a = archive_write_new();
	int rc = -EIO;

	if (!a) {
		set_err(b->err, "out of memory");
		return -ENOMEM;
	}
	/* v7: the header layout of real CVDs, which libclamav reads (name,
	 * size, typeflag NUL) and defs/unpack accepts; gzip level 9 as
	 * sigtool; no timestamp in the gzip header and no padding to a
	 * 10 KiB block, so equal input gives equal bytes. */
	if (archive_write_set_format_v7tar(a) != ARCHIVE_OK ||
	    archive_write_add_filter_gzip(a) != ARCHIVE_OK ||
	    archive_write_set_filter_option(a, "gzip", "compression-level", "9") != ARCHIVE_OK ||
	    archive_write_set_filter_option(a, "gzip", "timestamp", NULL) != ARCHIVE_OK ||
	    archive_write_set_bytes_in_last_block(a, 1) != ARCHIVE_OK ||
	    archive_write_open2(a, c, NULL, sink_write, NULL, NULL) != ARCHIVE_OK) {
		set_err(b->err, "cannot set up the tar writer: %s", archive_error_string(a));
		goto out;
	}
	rc = add_member(a, "COPYING", b->copying, strlen(b->copying), b->err);
	if (!rc)
		rc = add_member(a, info_name, info, info_len, b->err);
	for (size_t i = 0; !rc && i < b->n; i++)
		rc = add_member(a, b->m[i].name, b->m[i].data, b->m[i].len, b->err);
	if (rc)
		goto out;
	if (archive_write_close(a) != ARCHIVE_OK) {
		rc = archive_errno(a) == ENOMEM ? -ENOMEM : -EIO;
		set_err(b->err, "finishing the payload: %s", archive_error_string(a));
		goto out;
	}
	rc = 0;
out:
	archive_write_free(a);
	return rc;
}

static void format_time(uint32_t stime, char out[CVD_TIME_MAX + 1])
{
	static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
					   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
	time_t t = (time_t)stime;
	struct tm tm;

	/* sigtool's "%d %b %Y %H-%M %z", written by hand in UTC: the same
	 * in every locale and time zone. */
	gmtime_r(&t, &tm);
	snprintf(out, CVD_TIME_MAX + 1, "%02d %s %d %02d-%02d +0000", tm.tm_mday,
		 months[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min);
}

/* The whole container (header and payload) with header field 3 = sigs into
 * c (emptied first); md5 gets the payload MD5. */
static int make_container(const struct build *b, uint32_t sigs, uint32_t flevel, struct sink *c,
			  unsigned char md5[CVD_MD5_LEN])
{
	char cerr[CVD_ERR_LEN], info_name[CVD_INFO_NAME_MAX + 1], blank[CVD_HEADER_LEN];
	struct cvd_info_entry *ent;
	struct cvd_header h = {0};
	struct cvd_info info = {0};
	char *text = NULL;
	size_t text_len;
	int rc;

	format_time(b->stime, h.time);
	h.version = b->o->version;
	h.sigs = sigs;
	h.flevel = flevel;
	h.stime = b->stime;
	util_strlcpy(h.builder, b->builder, sizeof(h.builder));
	snprintf(info_name, sizeof(info_name), "%s.info", b->o->name);

	ent = calloc(b->n, sizeof(*ent));
	if (!ent) {
		set_err(b->err, "out of memory");
		return -ENOMEM;
	}
	for (size_t i = 0; i < b->n; i++) {
		util_strlcpy(ent[i].name, b->m[i].name, sizeof(ent[i].name));
		ent[i].size = (uint32_t)b->m[i].len; /* <= UNPACK_DEFAULT_MAX_MEMBER */
		memcpy(ent[i].sha256, b->m[i].sha256, CVD_SHA256_LEN);
	}
	/* Line 1 is the header with md5 and dsig "X", as sigtool writes it
	 * before the payload (and so its MD5) exists. */
	info.hdr = h;
	info.entries = ent;
	info.n_entries = b->n;
	rc = cvd_format_info(&info, &text, &text_len, cerr);
	if (rc < 0) {
		set_err(b->err, "cannot write %s: %s", info_name, cerr);
		goto out;
	}

	/* The header is written over the first 512 bytes at the end. */
	c->len = 0;
	memset(blank, ' ', sizeof(blank));
	rc = sink_append(c, blank, sizeof(blank));
	if (rc < 0) {
		set_err(b->err, "out of memory");
		goto out;
	}
	rc = write_payload(b, info_name, text, text_len, c);
	if (rc < 0)
		goto out;
	if (!EVP_Digest(c->p + CVD_HEADER_LEN, c->len - CVD_HEADER_LEN, md5, NULL, EVP_md5(),
			NULL)) {
		set_err(b->err, "MD5 of the payload: %s (OpenSSL in FIPS mode?)", ssl_reason());
		rc = -ENOTSUP;
		goto out;
	}
	h.has_md5 = true;
	memcpy(h.md5, md5, CVD_MD5_LEN);
	rc = cvd_format_header(&h, (char *)c->p, cerr);
	if (rc < 0)
		set_err(b->err, "%s", cerr);
out:
	free(text);
	free(ent);
	return rc;
}

/* Create path (which must not exist) with p[0..n), mode 0644 whatever the
 * umask (definitions are not secret and the scan user reads them), and
 * fsync it when it is to be published. */
static int write_new(const char *path, const void *p, size_t n, bool sync, char *err)
{
	char q[SHOW_MAX + 4];
	int fd, rc;

	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (fd < 0) {
		rc = -errno;
		set_err(err, "cannot create '%s': %s", show(path, q), strerror(errno));
		return rc;
	}
	rc = fchmod(fd, 0644) < 0 ? -errno : 0;
	if (!rc)
		rc = util_write_all(fd, p, n);
	if (!rc && sync && fsync(fd) < 0)
		rc = -errno;
	if (close(fd) < 0 && !rc)
		rc = -errno;
	if (rc)
		set_err(err, "cannot write '%s': %s", show(path, q), strerror(-rc));
	return rc;
}

/* What the test-load child reports. */
struct load_report {
	int rc;
	unsigned int sigs, flevel;
	char why[BUILD_ERR_LEN];
};

/* In the child: load dir through the engine module. */
static void load_child(const char *dir, const char *tmp, struct load_report *r)
{
	char eerr[512];
	struct msg_engine_info info;
	struct config cfg;
	struct engine *e;

	r->rc = config_defaults(&cfg);
	if (r->rc < 0) {
		snprintf(r->why, sizeof(r->why), "out of memory");
		return;
	}
	/* Everything libclamav can load counts, as with sigtool's options
	 * (CL_DB_STDOPT | CL_DB_PUA): bytecode, phishing and PUA signatures
	 * too, whatever a daemon's configuration later enables. */
	cfg.bytecode = true;
	cfg.detect_pua = true;
	cfg.phishing_signatures = true;
	cfg.phishing_scan_urls = true;
	r->rc = engine_global_init(eerr);
	if (r->rc < 0) {
		snprintf(r->why, sizeof(r->why), "%s", eerr);
		goto out;
	}
	e = engine_load(&cfg, dir, tmp, &info, eerr);
	if (!e) {
		r->rc = errno ? -errno : -EIO;
		/* The container was just written: ENOENT is "nothing loaded". */
		if (r->rc == -ENOENT)
			r->rc = -ENODATA;
		snprintf(r->why, sizeof(r->why), "%s", eerr);
		goto out;
	}
	r->sigs = info.sigs;
	r->flevel = info.flevel;
	engine_free(e);
	r->rc = 0;
out:
	config_free(&cfg);
}

/* Load the container c, written as <work>/<sub>/<name>.cud, with libclamav
 * in a child process: a signature file that crashes libclamav (it has such
 * bugs) must not take the builder down with it, nor leave libclamav's
 * global state in the caller. Returns the child's result (why set on
 * failure), or -EIO when it died. */
static int test_load(const struct build *b, const char *work, const char *sub, const struct sink *c,
		     struct load_report *r)
{
	char dir[PATH_MAX], tmp[PATH_MAX], path[PATH_MAX];
	int p[2], st = 0, rc;
	ssize_t n;
	pid_t pid;

	memset(r, 0, sizeof(*r));
	if ((rc = pathf(b->err, dir, sizeof(dir), "%s/%s", work, sub)) < 0 ||
	    (rc = pathf(b->err, tmp, sizeof(tmp), "%s/%s.tmp", work, sub)) < 0 ||
	    (rc = pathf(b->err, path, sizeof(path), "%s/%s.cud", dir, b->o->name)) < 0)
		return rc;
	if (mkdir(dir, 0700) < 0 || mkdir(tmp, 0700) < 0) {
		rc = -errno;
		set_err(b->err, "cannot create a directory in '%s': %s", work, strerror(errno));
		return rc;
	}
	rc = write_new(path, c->p, c->len, false, b->err);
	if (rc < 0)
		return rc;
	if (pipe2(p, O_CLOEXEC) < 0) {
		rc = -errno;
		set_err(b->err, "pipe: %s", strerror(errno));
		return rc;
	}
	pid = fork();
	if (pid < 0) {
		rc = -errno;
		set_err(b->err, "fork: %s", strerror(errno));
		close(p[0]);
		close(p[1]);
		return rc;
	}
	if (pid == 0) {
		close(p[0]);
		load_child(dir, tmp, r);
		_exit(util_write_all(p[1], r, sizeof(*r)) < 0);
	}
	close(p[1]);
	n = util_read_all(p[0], r, sizeof(*r));
	close(p[0]);
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	if (n != (ssize_t)sizeof(*r)) {
		memset(r, 0, sizeof(*r));
		r->rc = -EIO;
		if (WIFSIGNALED(st))
			snprintf(r->why, sizeof(r->why), "libclamav crashed (%s)",
				 strsignal(WTERMSIG(st)));
		else
			snprintf(r->why, sizeof(r->why), "the test load ended without a result");
	}
	/* One line for err: engine messages may end in libclamav's '\n'. */
	r->why[sizeof(r->why) - 1] = '\0';
	for (char *q = r->why; *q; q++)
		if ((unsigned char)*q < 0x20)
			*q = ' ';
	for (size_t i = strlen(r->why); i > 0 && r->why[i - 1] == ' '; i--)
		r->why[i - 1] = '\0';
	return r->rc;
}

/* The class of an engine_load message ("Malformed database"): what follows
 * "cannot load definitions from <dir>: " up to the next ": ". The rest
 * names our temporary files, not the user's. */
static const char *load_class(const char *why, char *buf, size_t len)
{
	static const char prefix[] = "cannot load definitions from ";
	const char *p, *end;

	if (strncmp(why, prefix, sizeof(prefix) - 1) || !(p = strstr(why, ": ")))
		return why;
	p += 2;
	end = strstr(p, ": ");
	snprintf(buf, len, "%.*s", end ? (int)(end - p) : (int)strlen(p), p);
	return buf;
}

/* Header field 3, as sigtool takes it: what libclamav loads from the
 * container c (built with a count of 0; libclamav checks only that .info
 * and header agree). Also gives the linked libclamav's f-level. When
 * libclamav refuses the set, each file is loaded alone to name the one it
 * refuses. */
static int count_sigs(const struct build *b, const char *work, const struct sink *c,
		      unsigned int *sigs, unsigned int *flevel)
{
	char q[SHOW_MAX + 4], cls[128], sub[32];
	struct load_report r;
	struct sink one = {0};
	unsigned char md5[CVD_MD5_LEN];
	int rc;

	rc = test_load(b, work, "load", c, &r);
	if (!rc) {
		*sigs = r.sigs;
		*flevel = r.flevel;
		return 0;
	}
	if (!r.why[0])
		return rc; /* not the load: test_load said why */
	if (rc == -ENODATA) {
		set_err(b->err, "libclamav loads no signature from these files");
		return rc;
	}
	if (rc != -EINVAL && rc != -EIO) {
		set_err(b->err, "cannot test-load the signature files: %s", r.why);
		return rc;
	}
	set_err(b->err, "libclamav refuses the signature files: %s",
		load_class(r.why, cls, sizeof(cls)));
	for (size_t i = 0; i < b->n; i++) {
		struct build alone = *b;
		struct load_report r1;
		int rc1;

		alone.m = &b->m[i];
		alone.n = 1;
		alone.err = NULL;
		snprintf(sub, sizeof(sub), "one-%zu", i);
		if (make_container(&alone, 0, 0, &one, md5) < 0)
			break;
		rc1 = test_load(&alone, work, sub, &one, &r1);
		if (rc1 == -EINVAL || (rc1 == -EIO && r1.why[0])) {
			set_err(b->err,
				"libclamav refuses signature file '%s': %s (libclamav's logged "
				"messages give the line)",
				show(b->m[i].path, q), load_class(r1.why, cls, sizeof(cls)));
			break;
		}
	}
	free(one.p);
	return rc;
}

/* The .sign file over c: one entry from the container's f-level on. */
static int make_sign(const struct build *b, const struct signer *s, const struct sink *c,
		     uint32_t flevel, char **text, size_t *text_len)
{
	struct cvd_sign_entry ent = {0};
	struct cvd_sign sign = {&ent, 1};
	unsigned char *der = NULL;
	char cerr[CVD_ERR_LEN];
	PKCS7 *p7 = NULL;
	BIO *in = NULL;
	int rc = -EIO, n;

	if (c->len > INT_MAX) {
		set_err(b->err, "container too large to sign");
		return -EFBIG;
	}
	/* Detached, binary (no MIME canonicalisation), SHA-256, signer and
	 * chain certificates included: what ClamAV 1.5 verifies with
	 * PKCS7_verify(DETACHED | BINARY) and what `openssl cms -sign -binary
	 * -md sha256 -certfile` makes. */
	in = BIO_new_mem_buf(c->p, (int)c->len);
	p7 = PKCS7_sign(NULL, NULL, NULL, NULL, PKCS7_PARTIAL | PKCS7_DETACHED | PKCS7_BINARY);
	if (!in || !p7 || !PKCS7_sign_add_signer(p7, s->cert, s->key, EVP_sha256(), 0))
		goto ssl_fail;
	for (int i = 0; i < sk_X509_num(s->chain); i++)
		if (!PKCS7_add_certificate(p7, sk_X509_value(s->chain, i)))
			goto ssl_fail;
	if (PKCS7_final(p7, in, PKCS7_DETACHED | PKCS7_BINARY) != 1)
		goto ssl_fail;
	n = i2d_PKCS7(p7, &der);
	if (n <= 0)
		goto ssl_fail;
	ent.min_flevel = flevel;
	ent.der = der;
	ent.der_len = (size_t)n;
	rc = cvd_format_sign(&sign, text, text_len, cerr);
	if (rc < 0)
		set_err(b->err, "cannot write the .sign file: %s", cerr);
	goto out;
ssl_fail:
	set_err(b->err, "cannot sign the container: %s", ssl_reason());
out:
	OPENSSL_free(der);
	PKCS7_free(p7);
	BIO_free(in);
	return rc;
}

static int default_notice(struct build *b)
{
	int n;

	n = asprintf(&b->copying,
		     "ClamAV signature database \"%s\", version %u, built by %s\n"
		     "with scanengine (scanctl defs build).\n"
		     "\n"
		     "The signature files in this container are %s's own. They are\n"
		     "not part of the official ClamAV databases, and libclamav reports\n"
		     "their detections with the suffix \".UNOFFICIAL\".\n",
		     b->o->name, b->o->version, b->builder, b->builder);
	if (n < 0) {
		b->copying = NULL;
		set_err(b->err, "out of memory");
		return -ENOMEM;
	}
	return 0;
}

/* The directory part of path ("." for none). */
static void dir_of(const char *path, char *dir, size_t len)
{
	const char *slash = strrchr(path, '/');

	if (!slash)
		snprintf(dir, len, ".");
	else if (slash == path)
		snprintf(dir, len, "/");
	else
		snprintf(dir, len, "%.*s", (int)(slash - path), path);
}

int build_cud(const struct build_opts *o, struct build_result *res, char *err)
{
	char work[PATH_MAX] = "", dir[PATH_MAX], tmp_out[PATH_MAX], tmp_sign[PATH_MAX];
	char sign_path[PATH_MAX], q[SHOW_MAX + 4];
	struct build b = {.o = o, .err = err};
	struct signer signer = {0};
	struct sink c = {0};
	unsigned char md5[CVD_MD5_LEN];
	unsigned int sigs = 0, flevel = 0;
	char *sign_text = NULL;
	size_t sign_len = 0;
	const char *base;
	int rc, dirfd = -1;

	if (err)
		err[0] = '\0';
	if (!o) {
		set_err(err, "invalid arguments");
		return -EINVAL;
	}
	rc = check_opts(o, err);
	if (rc < 0)
		return rc;
	b.builder = o->builder ? o->builder : BUILD_DEFAULT_BUILDER;
	b.stime = (uint32_t)(o->stime ? o->stime : time(NULL));
	if (o->notice) {
		b.copying = strdup(o->notice);
		if (!b.copying) {
			set_err(err, "out of memory");
			return -ENOMEM;
		}
	} else if ((rc = default_notice(&b)) < 0) {
		return rc;
	}
	rc = collect(&b);
	if (rc < 0)
		goto out;
	/* Before the slow part: a wrong key should not cost a test load. */
	if (o->sign_cert) {
		rc = load_signer(&b, &signer);
		if (rc < 0)
			goto out;
	}

	base = strrchr(o->out, '/');
	base = base ? base + 1 : o->out;
	dir_of(o->out, dir, sizeof(dir));
	/* Private, in OUT's directory: the renames below stay within one
	 * file system, and nothing half-written ever has OUT's name. */
	if ((rc = pathf(err, sign_path, sizeof(sign_path), "%s.sign", o->out)) < 0 ||
	    (rc = pathf(err, work, sizeof(work), "%s/.%s.XXXXXX", dir, base)) < 0 ||
	    (rc = pathf(err, tmp_out, sizeof(tmp_out), "%s/%s", work, base)) < 0 ||
	    (rc = pathf(err, tmp_sign, sizeof(tmp_sign), "%s/%s.sign", work, base)) < 0) {
		work[0] = '\0';
		goto out;
	}
	if (!mkdtemp(work)) {
		rc = -errno;
		set_err(err, "cannot create a work directory next to '%s': %s", show(o->out, q),
			strerror(errno));
		work[0] = '\0';
		goto out;
	}
	/* Same length as the template, so they fit as checked above. */
	pathf(err, tmp_out, sizeof(tmp_out), "%s/%s", work, base);
	pathf(err, tmp_sign, sizeof(tmp_sign), "%s/%s.sign", work, base);

	/* Pass 1: count what libclamav loads. Pass 2: the real thing. */
	rc = make_container(&b, 0, o->flevel, &c, md5);
	if (rc < 0)
		goto out;
	rc = count_sigs(&b, work, &c, &sigs, &flevel);
	if (rc < 0)
		goto out;
	if (o->flevel)
		flevel = o->flevel;
	rc = make_container(&b, sigs, flevel, &c, md5);
	if (rc < 0)
		goto out;
	rc = write_new(tmp_out, c.p, c.len, true, err);
	if (rc < 0)
		goto out;
	if (o->sign_cert) {
		rc = make_sign(&b, &signer, &c, flevel, &sign_text, &sign_len);
		if (rc < 0)
			goto out;
		rc = write_new(tmp_sign, sign_text, sign_len, true, err);
		if (rc < 0)
			goto out;
	}
	dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0) {
		rc = -errno;
		set_err(err, "cannot open directory '%s': %s", show(dir, q), strerror(errno));
		goto out;
	}

	/* ---- transaction point: OUT, then OUT.sign, then the directory.
	 * A failure on the .sign step takes the new OUT back out, so that no
	 * container is left beside a .sign that does not match it. ---- */
	if (rename(tmp_out, o->out) < 0) {
		rc = -errno;
		set_err(err, "cannot rename the container to '%s': %s", show(o->out, q),
			strerror(errno));
		goto out;
	}
	if (o->sign_cert ? rename(tmp_sign, sign_path) < 0
			 : (unlink(sign_path) < 0 && errno != ENOENT)) {
		rc = -errno;
		set_err(err, "cannot %s '%s': %s", o->sign_cert ? "create" : "remove the stale",
			show(sign_path, q), strerror(errno));
		unlink(o->out);
		goto out;
	}
	if (fsync(dirfd) < 0) {
		rc = -errno;
		set_err(err, "'%s' written, but its directory cannot be synced: %s",
			show(o->out, q), strerror(errno));
		goto out;
	}
	if (res) {
		memset(res, 0, sizeof(*res));
		res->sigs = sigs;
		res->members = (unsigned int)b.n;
		res->flevel = flevel;
		res->stime = b.stime;
		res->bytes = c.len;
		digest_hex(md5, CVD_MD5_LEN, res->md5);
		res->has_sign = o->sign_cert != NULL;
	}
	rc = 0;
out:
	util_close(&dirfd);
	if (work[0])
		util_rm_rf(work);
	free(sign_text);
	free(c.p);
	signer_free(&signer);
	for (size_t i = 0; b.m && i < o->nfiles; i++)
		free(b.m[i].data);
	free(b.m);
	free(b.copying);
	return rc;
}
