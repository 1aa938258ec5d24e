/* unpack: the "safe unpack" stage of definitions validation (see unpack.h).
 *
 * libarchive only parses; every file is created here with openat() relative
 * to the staging directory, from a name that passed check_name(). Input is
 * fed to libarchive through our own read callback in small blocks, so that
 * the bytes of compressed input consumed are known at every point and a
 * decompression bomb is noticed after at most one block's expansion; the
 * callback also enforces the time budget while waiting for input. */
#include "defs/unpack.h"

#include "common/util.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

/* Compressed input is handed to libarchive this much at a time. Small, so
 * that the compressed-bytes count the ratio rule divides by runs at most
 * one block ahead of what was actually decompressed (a block of zeros at
 * level 9 expands to 8 MiB); large enough that a 200 MiB main.cvd costs
 * only some 25,000 reads. */
#define READ_BLOCK (8 * 1024)

/* The payload as libarchive's read callback sees it. */
struct source {
	int fd;
	bool seekable;	    /* read with pread at pos (fd's offset untouched) */
	off_t pos;	    /* next pread offset */
	uint64_t consumed;  /* payload bytes handed to libarchive */
	uint64_t deadline;  /* util_now_us() value of the time budget's end */
	uint64_t budget_ms; /* for messages */
	int rc;		    /* -errno of a failed read or of the budget, or 0 */
	char why[128];	    /* what rc is about */
	char buf[READ_BLOCK];
};

/* The names this call created, NUL-separated, for the duplicate check and
 * for removal on failure. */
struct names {
	char *buf;
	size_t len, cap;
};

struct ctx {
	const struct unpack_limits *lim;
	struct unpack_result *res;
	char *err;
	int dirfd;
	struct source *src;
	struct archive *a;
	struct names made;
};

/* Extensions libclamav's cli_load() dispatches on (CLI_DBEXT in
 * libclamav/readdb.h, minus the containers .cvd .cld .cud) plus .info,
 * which cli_tgzload() reads first to verify the other members. */
static const char *const known_ext[] = {
	".info",				   /* container index: names, sizes, SHA-256 */
	".db",	 ".hdb",  ".hdu", ".hsb",  ".hsu", /* legacy; MD5/SHA hashes of files */
	".mdb",	 ".mdu",  ".msb", ".msu",  ".imp", /* hashes of PE sections, imports */
	".fp",	 ".sfp",  ".ign", ".ign2",	   /* allow lists, ignored signatures */
	".ndb",	 ".ndu",  ".sdb", ".ldb",  ".ldu", /* body and logical signatures */
	".idb",	 ".cdb",  ".crb", ".cat",	   /* icons, containers, certificates */
	".cbc",	 ".ftm",  ".cfg",		   /* bytecode, file types, dconf */
	".pdb",	 ".gdb",  ".wdb",		   /* phishing */
	".zmd",	 ".rmd",  ".ioc", ".pwdb",	   /* archive metadata, OpenIOC, passwords */
	".yar",	 ".yara",			   /* YARA rules */
};

void unpack_limits_default(struct unpack_limits *lim)
{
	lim->max_entries = UNPACK_DEFAULT_MAX_ENTRIES;
	lim->max_total_bytes = UNPACK_DEFAULT_MAX_TOTAL;
	lim->max_member_bytes = UNPACK_DEFAULT_MAX_MEMBER;
	lim->max_ratio = UNPACK_DEFAULT_MAX_RATIO;
	lim->ratio_min_bytes = UNPACK_DEFAULT_RATIO_MIN;
	lim->time_budget_ms = UNPACK_DEFAULT_TIME_BUDGET;
	lim->listed = NULL;
	lim->listed_arg = NULL;
}

/* COPYING and the index are in every container, listed or not. */
static bool always_expected(const char *name)
{
	size_t n = strlen(name);

	return !strcmp(name, "COPYING") || (n > 5 && !strcmp(name + n - 5, ".info"));
}

bool unpack_known_type(const char *name)
{
	size_t len;

	if (!name)
		return false;
	/* cli_tgzload() skips it; every official container carries it. */
	if (!strcmp(name, "COPYING"))
		return true;
	len = strlen(name);
	for (size_t i = 0; i < SE_ARRAY_SIZE(known_ext); i++) {
		size_t el = strlen(known_ext[i]);

		/* Like libclamav's cli_strbcasestr(): a case-blind suffix;
		 * and a name needs something before its extension. */
		if (len > el && !strcasecmp(name + len - el, known_ext[i]))
			return true;
	}
	return false;
}

/* A printable copy of an untrusted name for messages: at most
 * UNPACK_NAME_MAX bytes, bytes outside printable ASCII and quotes as '?'. */
static void printable(char *dst, size_t n, const char *src)
{
	size_t i = 0;

	for (; src && src[i] && i + 1 < n && i < UNPACK_NAME_MAX; i++) {
		unsigned char c = (unsigned char)src[i];

		dst[i] = (c < 0x20 || c > 0x7e || c == '\'') ? '?' : (char)c;
	}
	if (n)
		dst[i] = '\0';
}

/* Record a refusal: err gets "member 'NAME': REASON" (or just REASON when
 * name is NULL), res->offending the name. Returns rc. */
__attribute__((format(printf, 4, 5))) static int refuse(struct ctx *c, int rc, const char *name,
							const char *fmt, ...)
{
	char why[140]; /* with "member '%.100s': " the line fits UNPACK_ERR_LEN */
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	if (name)
		printable(c->res->offending, sizeof(c->res->offending), name);
	if (!c->err)
		return rc;
	if (name)
		snprintf(c->err, UNPACK_ERR_LEN, "member '%.100s': %s", c->res->offending, why);
	else
		snprintf(c->err, UNPACK_ERR_LEN, "%s", why);
	return rc;
}

/* A libarchive call failed: a read or budget failure of our callback takes
 * precedence over libarchive's own message (which then only repeats it);
 * otherwise the payload is corrupt or not a tar. */
static int archive_failed(struct ctx *c, const char *name, const char *what)
{
	const char *msg = archive_error_string(c->a);

	if (c->src->rc)
		return refuse(c, c->src->rc, name, "%s", c->src->why);
	if (archive_errno(c->a) == ENOMEM)
		return refuse(c, -ENOMEM, name, "%s: out of memory", what);
	return refuse(c, -EBADMSG, name, "%s: %s", what, msg ? msg : "corrupt or truncated");
}

/* Read one block into s->buf within the time budget. Returns the bytes
 * read (0: end of input) or -errno with s->why set. */
static ssize_t source_fill(struct source *s, size_t want)
{
	for (;;) {
		uint64_t now = util_now_us();
		ssize_t n;

		if (now >= s->deadline) {
			snprintf(s->why, sizeof(s->why), "time budget of %llu ms exceeded",
				 (unsigned long long)s->budget_ms);
			return -ETIMEDOUT;
		}
		if (s->seekable) {
			n = pread(s->fd, s->buf, want, s->pos);
		} else {
			/* A pipe may stall: wait only as long as the budget
			 * allows, then say so (a plain read would block). */
			struct pollfd p = {.fd = s->fd, .events = POLLIN};
			/* Rounded up: waking before the deadline would
			 * only loop. */
			uint64_t left = (s->deadline - now + 999) / 1000;
			int r = poll(&p, 1, left > INT_MAX ? INT_MAX : (int)left);

			if (r < 0 && errno != EINTR) {
				snprintf(s->why, sizeof(s->why), "poll: %s", strerror(errno));
				return -errno;
			}
			if (r <= 0)
				continue;
			n = read(s->fd, s->buf, want);
		}
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			snprintf(s->why, sizeof(s->why), "read: %s", strerror(errno));
			return -errno;
		}
		s->pos += n;
		return n;
	}
}

/* libarchive's read callback. */
static la_ssize_t source_read(struct archive *a, void *arg, const void **buf)
{
	struct source *s = arg;
	ssize_t n = source_fill(s, sizeof(s->buf));

	*buf = s->buf;
	if (n < 0) {
		s->rc = (int)n;
		archive_set_error(a, (int)-n, "%s", s->why);
		return ARCHIVE_FATAL;
	}
	s->consumed += (uint64_t)n;
	return n;
}

/* Position the source at offset: pread starts there; a pipe has its first
 * offset bytes read and dropped. Returns 0 or -errno (-ENODATA: the input
 * ends before offset). */
static int source_open(struct source *s, int fd, off_t offset, uint64_t budget_ms)
{
	s->fd = fd;
	s->budget_ms = budget_ms;
	/* Microseconds, so that the budget is never cut short by rounding;
	 * a budget of over 30 years is no budget (and would overflow). */
	s->deadline = budget_ms > 1000000000000ull ? UINT64_MAX : util_now_us() + budget_ms * 1000;
	s->seekable = lseek(fd, 0, SEEK_CUR) >= 0;
	s->pos = s->seekable ? offset : 0;
	while (!s->seekable && s->pos < offset) {
		uint64_t want = SE_MIN((uint64_t)(offset - s->pos), (uint64_t)sizeof(s->buf));
		ssize_t n = source_fill(s, (size_t)want);

		if (n < 0)
			return (int)n;
		if (n == 0) {
			snprintf(s->why, sizeof(s->why), "input ends before offset %lld",
				 (long long)offset);
			return -ENODATA;
		}
	}
	return 0;
}

static bool names_has(const struct names *n, const char *name)
{
	for (size_t off = 0; off < n->len; off += strlen(n->buf + off) + 1)
		if (!strcmp(n->buf + off, name))
			return true;
	return false;
}

static int names_add(struct names *n, const char *name)
{
	size_t len = strlen(name) + 1;

	if (n->len + len > n->cap) {
		size_t cap = n->cap ? n->cap : 4096;
		char *p;

		while (cap < n->len + len)
			cap *= 2;
		p = realloc(n->buf, cap);

		if (!p)
			return -ENOMEM;
		n->buf = p;
		n->cap = cap;
	}
	memcpy(n->buf + n->len, name, len);
	n->len += len;
	return 0;
}

/* Remove every file this call created (failure path). */
static void names_unlink(const struct names *n, int dirfd)
{
	for (size_t off = 0; off < n->len; off += strlen(n->buf + off) + 1)
		unlinkat(dirfd, n->buf + off, 0);
}

/* What is wrong with an entry's kind, or NULL for a plain regular file.
 * Hard links first: libarchive reports them as regular files. */
static const char *check_kind(struct archive_entry *e)
{
	if (archive_entry_hardlink(e))
		return "hard link";
	switch (archive_entry_filetype(e)) {
	case AE_IFREG:
		break;
	case AE_IFLNK:
		return "symbolic link";
	case AE_IFDIR:
		return "directory";
	case AE_IFCHR:
		return "character device";
	case AE_IFBLK:
		return "block device";
	case AE_IFIFO:
		return "FIFO";
	case AE_IFSOCK:
		return "socket";
	default:
		return "not a regular file";
	}
	if (archive_entry_sparse_count(e) > 0)
		return "sparse file";
	return NULL;
}

/* What is wrong with a member name, or NULL. The order makes the reason
 * name the most serious problem ("/etc/x" is an absolute path before it is
 * a name with a directory). */
static const char *check_name(const char *name)
{
	size_t len = strlen(name);
	const char *p;

	if (!len)
		return "empty name";
	if (name[0] == '/')
		return "absolute path";
	for (p = name; p; p = strchr(p, '/')) {
		p += *p == '/';
		if (p[0] == '.' && p[1] == '.' && (p[2] == '/' || p[2] == '\0'))
			return "'..' component";
	}
	/* Definitions containers are flat (libclamav refuses any '/'), so
	 * there is no "a/b" or even "./b" to accept. */
	if (strchr(name, '/'))
		return "directory component (containers are flat)";
	if (name[0] == '.')
		return "name starts with '.'";
	if (len > UNPACK_NAME_MAX)
		return "name longer than 100 bytes";
	for (p = name; *p; p++) {
		char ch = *p;

		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == '-'))
			return "character outside [A-Za-z0-9._-] in name";
	}
	return NULL;
}

/* Whether out bytes from in compressed bytes is more than max_ratio fold. */
static bool over_ratio(const struct unpack_limits *lim, uint64_t out, uint64_t in)
{
	if (out < lim->ratio_min_bytes)
		return false;
	return out / (in ? in : 1) > lim->max_ratio;
}

/* The first header tells the payload's encoding. libarchive falls back to
 * reading plain data when no filter recognises it and would stack filters
 * for gzip inside gzip; accept what cli_tgzload() reads: one gzip layer, or
 * a plain tar starting with COPYING. */
static int check_encoding(struct ctx *c, const char *name)
{
	int n = archive_filter_count(c->a);

	if (n == 2 && archive_filter_code(c->a, 0) == ARCHIVE_FILTER_GZIP) {
		c->res->gzip = true;
		return 0;
	}
	if (n == 1 && archive_filter_code(c->a, 0) == ARCHIVE_FILTER_NONE) {
		if (name && !strcmp(name, "COPYING"))
			return 0;
		return refuse(
			c, -EBADMSG, NULL,
			"payload is not gzip-compressed (a plain tar must start with COPYING)");
	}
	return refuse(c, -EBADMSG, NULL, "payload compressed more than once (%d filters)", n - 1);
}

/* Everything about one entry that its header tells, before anything is
 * created for it. */
static int check_entry(struct ctx *c, struct archive_entry *e, const char *name)
{
	const struct unpack_limits *lim = c->lim;
	const char *why;
	int64_t size;
	int fmt = archive_format(c->a);

	if (util_now_us() >= c->src->deadline)
		return refuse(c, -ETIMEDOUT, name, "time budget of %llu ms exceeded",
			      (unsigned long long)lim->time_budget_ms);
	if (!name)
		return refuse(c, -EPERM, "?", "name not readable");
	if (fmt != ARCHIVE_FORMAT_TAR && fmt != ARCHIVE_FORMAT_TAR_USTAR &&
	    fmt != ARCHIVE_FORMAT_TAR_GNUTAR)
		return refuse(c, -EPERM, name,
			      "%s headers (libclamav reads plain tar headers only)",
			      archive_format_name(c->a) ? archive_format_name(c->a) : "extended");
	if ((why = check_kind(e)))
		return refuse(c, -EPERM, name, "%s", why);
	if ((why = check_name(name)))
		return refuse(c, -EPERM, name, "%s", why);
	if (!unpack_known_type(name))
		return refuse(c, -EPERM, name, "not a signature database type libclamav loads");
	if (lim->listed && !always_expected(name) && !lim->listed(name, lim->listed_arg))
		return refuse(c, -EPERM, name, "not listed in the .info");
	if (c->res->entries >= lim->max_entries)
		return refuse(c, -E2BIG, name, "more than %u members", lim->max_entries);
	size = archive_entry_size_is_set(e) ? archive_entry_size(e) : -1;
	if (size < 0)
		return refuse(c, -EBADMSG, name, "no size in header");
	/* Declared sizes fail early; the bytes actually written are counted
	 * again while extracting. */
	if ((uint64_t)size > lim->max_member_bytes)
		return refuse(c, -EFBIG, name,
			      "%lld bytes, more than the %llu allowed for a member",
			      (long long)size, (unsigned long long)lim->max_member_bytes);
	if ((uint64_t)size > lim->max_total_bytes - c->res->total_bytes)
		return refuse(c, -EFBIG, name, "total size over %llu bytes",
			      (unsigned long long)lim->max_total_bytes);
	return 0;
}

/* Create name in the staging directory and copy the entry's data into it,
 * watching the size, ratio and time rules after every block. */
static int extract(struct ctx *c, const char *name)
{
	const struct unpack_limits *lim = c->lim;
	struct unpack_result *res = c->res;
	/* The member's share of the compressed input is counted from what
	 * was read when its header was: up to one block read ahead of its
	 * start may already be in, so it is credited to the member (without
	 * it, a member that begins in a block read earlier would seem to
	 * come from nothing). */
	uint64_t in0 = c->src->consumed;
	uint64_t out = 0;
	int fd, rc;

	fd = openat(c->dirfd, name, O_CREAT | O_EXCL | O_NOFOLLOW | O_WRONLY | O_CLOEXEC, 0644);
	if (fd < 0) {
		rc = -errno;
		if (rc == -EEXIST && names_has(&c->made, name))
			return refuse(c, -EPERM, name, "duplicate member");
		if (rc == -EEXIST)
			return refuse(c, rc, name, "exists already in the target directory");
		return refuse(c, rc, name, "create: %s", strerror(-rc));
	}
	rc = names_add(&c->made, name);
	if (rc) {
		/* Not on the list, so the failure path would not remove it. */
		unlinkat(c->dirfd, name, 0);
		rc = refuse(c, rc, name, "out of memory");
		goto out_close;
	}
	res->entries++;
	/* The mode is part of the contract (the scan user reads these), not
	 * left to the caller's umask. */
	if (fchmod(fd, 0644) < 0) {
		rc = refuse(c, -errno, name, "chmod: %s", strerror(errno));
		goto out_close;
	}
	for (;;) {
		const void *buf;
		size_t len;
		la_int64_t off;
		int r = archive_read_data_block(c->a, &buf, &len, &off);

		if (r == ARCHIVE_EOF)
			break;
		if (r != ARCHIVE_OK) {
			rc = archive_failed(c, name, "reading data");
			goto out_close;
		}
		/* A hole would be a sparse entry that slipped through. */
		if (off < 0 || (uint64_t)off != out) {
			rc = refuse(c, -EPERM, name, "data with holes (sparse file)");
			goto out_close;
		}
		if (len > lim->max_member_bytes - out) {
			rc = refuse(c, -EFBIG, name, "more than %llu bytes",
				    (unsigned long long)lim->max_member_bytes);
			goto out_close;
		}
		if (len > lim->max_total_bytes - res->total_bytes) {
			rc = refuse(c, -EFBIG, name, "total size over %llu bytes",
				    (unsigned long long)lim->max_total_bytes);
			goto out_close;
		}
		rc = util_write_all(fd, buf, len);
		if (rc) {
			rc = refuse(c, rc, name, "write: %s", strerror(-rc));
			goto out_close;
		}
		out += len;
		res->total_bytes += len;
		if (over_ratio(lim, out, c->src->consumed - in0 + READ_BLOCK) ||
		    over_ratio(lim, res->total_bytes, c->src->consumed)) {
			rc = refuse(c, -EFBIG, name,
				    "expands more than %u-fold (%llu bytes from %llu compressed): "
				    "a decompression bomb",
				    lim->max_ratio, (unsigned long long)res->total_bytes,
				    (unsigned long long)c->src->consumed);
			goto out_close;
		}
		if (util_now_us() >= c->src->deadline) {
			rc = refuse(c, -ETIMEDOUT, name, "time budget of %llu ms exceeded",
				    (unsigned long long)lim->time_budget_ms);
			goto out_close;
		}
	}
	rc = 0;
out_close:
	if (close(fd) < 0 && !rc)
		rc = refuse(c, -errno, name, "close: %s", strerror(errno));
	return rc;
}

static bool limits_valid(const struct unpack_limits *lim)
{
	return lim && lim->max_entries && lim->max_total_bytes && lim->max_member_bytes &&
	       lim->max_ratio && lim->ratio_min_bytes && lim->time_budget_ms;
}

/* The reader of c over fd's payload at offset: the source under the time
 * budget, libarchive with the built-in gzip decoder and the tar reader
 * only (ARCHIVE_WARN from the gzip support means libarchive lacks zlib and
 * would run an external gzip program, which has no place in a
 * validator); the caller opens it (archive_read_open2 with source_read).
 * Returns 0 or the refusal's rc; the caller frees c.src and c.a either
 * way. */
static int reader_new(struct ctx *c, int fd, off_t offset)
{
	int rc;

	c->src = calloc(1, sizeof(*c->src));
	c->a = archive_read_new();
	if (!c->src || !c->a)
		return refuse(c, -ENOMEM, NULL, "out of memory");
	rc = source_open(c->src, fd, offset, c->lim->time_budget_ms);
	if (rc)
		return refuse(c, rc, NULL, "%s", c->src->why);
	if (archive_read_support_filter_gzip(c->a) != ARCHIVE_OK ||
	    archive_read_support_format_tar(c->a) != ARCHIVE_OK)
		return refuse(c, -ENOTSUP, NULL, "libarchive lacks built-in gzip or tar support");
	return 0;
}

int unpack_fd(int fd, off_t offset, int dirfd, const struct unpack_limits *lim,
	      struct unpack_result *res, char *err)
{
	struct unpack_result local;
	struct ctx c = {.lim = lim, .res = res ? res : &local, .err = err, .dirfd = dirfd};
	struct stat st;
	int rc;

	memset(c.res, 0, sizeof(*c.res));
	if (err)
		err[0] = '\0';
	if (fd < 0 || offset < 0 || dirfd < 0 || !limits_valid(lim))
		return refuse(&c, -EINVAL, NULL, "invalid arguments");
	if (fstat(dirfd, &st) < 0)
		return refuse(&c, -errno, NULL, "target directory: %s", strerror(errno));
	if (!S_ISDIR(st.st_mode))
		return refuse(&c, -ENOTDIR, NULL, "target is not a directory");

	rc = reader_new(&c, fd, offset);
	if (!rc && archive_read_open2(c.a, c.src, NULL, source_read, NULL, NULL) != ARCHIVE_OK) {
		if (!c.src->rc && c.src->consumed == 0)
			rc = refuse(&c, -ENODATA, NULL, "payload is empty");
		else
			rc = archive_failed(&c, NULL, "not a gzip tar");
	}
	if (rc)
		goto out;
	for (;;) {
		struct archive_entry *e;
		const char *name;
		int r = archive_read_next_header(c.a, &e);

		if (r == ARCHIVE_EOF)
			break;
		/* ARCHIVE_WARN too: a header libarchive had to repair or
		 * guess at is one libclamav may read differently. */
		if (r != ARCHIVE_OK) {
			rc = archive_failed(&c, NULL, "reading header");
			goto err_unlink;
		}
		name = archive_entry_pathname(e);
		if (c.res->entries == 0 && (rc = check_encoding(&c, name)))
			goto err_unlink;
		rc = check_entry(&c, e, name);
		if (rc)
			goto err_unlink;
		rc = extract(&c, name);
		if (rc)
			goto err_unlink;
	}
	if (c.res->entries == 0) {
		rc = refuse(&c, -ENODATA, NULL, "payload holds no members");
		goto out;
	}
	rc = 0;
	goto out;

err_unlink:
	names_unlink(&c.made, dirfd);
out:
	if (c.src)
		c.res->compressed_bytes = c.src->consumed;
	archive_read_free(c.a);
	free(c.src);
	free(c.made.buf);
	return rc;
}

/* Read the current member's data into *buf (grown as needed) or, with buf
 * NULL, only count it; at most max bytes. */
static int peek_data(struct ctx *c, const char *name, uint64_t max, char **buf, size_t *len)
{
	for (;;) {
		const void *blk;
		size_t n;
		la_int64_t off;
		int r = archive_read_data_block(c->a, &blk, &n, &off);

		if (r == ARCHIVE_EOF)
			return 0;
		if (r != ARCHIVE_OK)
			return archive_failed(c, name, "reading data");
		if (n > max - c->res->total_bytes)
			return refuse(c, -EFBIG, name,
				      "more than %llu bytes before the wanted member",
				      (unsigned long long)max);
		c->res->total_bytes += n;
		if (buf) {
			char *p = realloc(*buf, *len + n + 1);

			if (!p)
				return refuse(c, -ENOMEM, name, "out of memory");
			memcpy(p + *len, blk, n);
			*len += n;
			p[*len] = '\0';
			*buf = p;
		}
		if (util_now_us() >= c->src->deadline)
			return refuse(c, -ETIMEDOUT, name, "time budget of %llu ms exceeded",
				      (unsigned long long)c->lim->time_budget_ms);
	}
}

static bool has_suffix(const char *name, const char *suffix)
{
	size_t n = strlen(name), m = strlen(suffix);

	return n >= m && strcmp(name + n - m, suffix) == 0;
}

int unpack_peek(int fd, off_t offset, const char *suffix, const struct unpack_limits *lim,
		char **out, size_t *outlen, char *err)
{
	struct unpack_result local;
	struct ctx c = {.lim = lim, .res = &local, .err = err, .dirfd = -1};
	uint64_t max;
	int rc;

	memset(&local, 0, sizeof(local));
	*out = NULL;
	*outlen = 0;
	if (err)
		err[0] = '\0';
	if (fd < 0 || offset < 0 || !suffix || !limits_valid(lim))
		return refuse(&c, -EINVAL, NULL, "invalid arguments");
	max = lim->max_total_bytes < UNPACK_PEEK_MAX_BYTES ? lim->max_total_bytes
							   : UNPACK_PEEK_MAX_BYTES;
	rc = reader_new(&c, fd, offset);
	if (!rc && archive_read_open2(c.a, c.src, NULL, source_read, NULL, NULL) != ARCHIVE_OK)
		rc = archive_failed(&c, NULL, "not a gzip tar");
	if (rc)
		goto out;
	for (unsigned int i = 0;; i++) {
		struct archive_entry *e;
		const char *name;
		int r;

		if (i >= UNPACK_PEEK_MEMBERS) {
			rc = refuse(&c, -ENOENT, NULL, "no member *%s among the first %u", suffix,
				    UNPACK_PEEK_MEMBERS);
			goto out;
		}
		r = archive_read_next_header(c.a, &e);
		if (r == ARCHIVE_EOF) {
			rc = refuse(&c, -ENOENT, NULL, "no member *%s", suffix);
			goto out;
		}
		if (r != ARCHIVE_OK) {
			rc = archive_failed(&c, NULL, "reading header");
			goto out;
		}
		name = archive_entry_pathname(e);
		if (!name || check_name(name)) {
			rc = refuse(&c, -EPERM, name ? name : "?", "%s",
				    name ? check_name(name) : "name not readable");
			goto out;
		}
		if (check_kind(e)) {
			rc = refuse(&c, -EPERM, name, "%s", check_kind(e));
			goto out;
		}
		if (has_suffix(name, suffix)) {
			rc = peek_data(&c, name, max, out, outlen);
			if (!rc && !*out)
				*out = strdup("");
			if (!rc && !*out)
				rc = refuse(&c, -ENOMEM, name, "out of memory");
			goto out;
		}
		rc = peek_data(&c, name, max, NULL, NULL);
		if (rc)
			goto out;
	}
out:
	if (rc) {
		free(*out);
		*out = NULL;
		*outlen = 0;
	}
	archive_read_free(c.a);
	free(c.src);
	return rc;
}
