/* cdiff: apply .cdiff patches and write a .cld (see cdiff.h). */
#include "updater/cdiff.h"

#include "common/util.h"
#include "defs/unpack.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define HEADER_MAX 64			     /* "ClamAV-Diff:" and two u32 with their ':' take 34 */
#define SHOW_MAX   64			     /* bytes of script text quoted in a message */
#define DBNAME_MAX 94			     /* "<name>.info" must fit a 100-byte member name */
#define FILE_MAX   UNPACK_DEFAULT_MAX_MEMBER /* a database file edited in memory */

struct buf {
	char *p; /* NUL-terminated when loaded */
	size_t len, cap;
};

/* One command on the open file: ADD (old NULL), DEL (repl NULL), XCHG. */
struct edit {
	uint32_t lineno;    /* DEL, XCHG: of the file as it was at OPEN */
	const char *old;    /* prefix the line must start with */
	const char *repl;   /* the new line */
	unsigned int sline; /* script line of the command */
};

struct ctx {
	int dirfd;
	const char *db;
	size_t dblen;
	struct cdiff_stats *st;
	char *err;
	unsigned int sline; /* script line being run (0: not in the script) */
	const char *cmd;    /* its command, for messages */
	const char *open;   /* the OPEN file, or NULL */
	unsigned int open_sline;
	struct edit *ed; /* commands on the open file, in script order */
	size_t ned, ced;
	unsigned int tmpseq;
};

__attribute__((format(printf, 2, 3))) static void set_err(char *err, const char *fmt, ...)
{
	va_list ap;

	if (!err)
		return;
	va_start(ap, fmt);
	vsnprintf(err, CDIFF_ERR_LEN, fmt, ap);
	va_end(ap);
}

/* err = "cdiff line N: CMD: <message>"; returns rc. */
__attribute__((format(printf, 3, 4))) static int fail(struct ctx *c, int rc, const char *fmt, ...)
{
	char msg[CDIFF_ERR_LEN];
	va_list ap;

	if (!c->err)
		return rc;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (c->sline)
		set_err(c->err, "cdiff line %u: %s%s%s", c->sline, c->cmd ? c->cmd : "",
			c->cmd ? ": " : "", msg);
	else
		set_err(c->err, "%s", msg);
	return rc;
}

/* s cut to SHOW_MAX bytes, bytes outside printable ASCII and quotes as
 * '?': script text is untrusted and ends up in logs. */
static const char *show(const char *s, char buf[SHOW_MAX + 4])
{
	size_t i = 0;

	for (; s[i] && i < SHOW_MAX; i++)
		buf[i] = (s[i] < 0x20 || s[i] > 0x7e || s[i] == '\'') ? '?' : s[i];
	strcpy(buf + i, s[i] ? "..." : "");
	return buf;
}

/* 1..max bytes of [A-Za-z0-9._-] not starting with '.': what defs/unpack.c
 * accepts as a member name (so no '/', no ".."). */
static bool name_ok(const char *s, size_t max)
{
	size_t n = strlen(s);

	if (n == 0 || n > max || s[0] == '.')
		return false;
	return strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == n;
}

/* A file name of a command: a member of this database, see cdiff.h. */
static int check_name(struct ctx *c, const char *name)
{
	char q[SHOW_MAX + 4];

	if (!name_ok(name, UNPACK_NAME_MAX))
		return fail(c, -EPERM, "'%s' is not a plain file name of the database directory",
			    show(name, q));
	if (strcmp(name, "COPYING") && (strncmp(name, c->db, c->dblen) || name[c->dblen] != '.'))
		return fail(c, -EPERM, "'%s' is not a file of database %s", show(name, q), c->db);
	if (!unpack_known_type(name))
		return fail(c, -EPERM, "'%s' is not a database file type libclamav loads",
			    show(name, q));
	return 0;
}

/* Append n bytes of s, and a LF if lf. Returns 0 or -ENOMEM. */
static int buf_put(struct buf *b, const char *s, size_t n, bool lf)
{
	if (n + 2 > b->cap - b->len) {
		size_t cap = b->cap ? b->cap : 4096;
		char *p;

		while (n + 2 > cap - b->len)
			cap *= 2;
		p = realloc(b->p, cap);
		if (!p)
			return -ENOMEM;
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	if (lf)
		b->p[b->len++] = '\n';
	b->p[b->len] = '\0';
	return 0;
}

/* The whole regular file fd, from offset 0, into b (emptied first).
 * Returns 0, -EINVAL (not a regular file), -EFBIG (over max), -EIO (it
 * changed meanwhile), -ENOMEM or the read error. */
static int read_fd(int fd, size_t max, struct buf *b)
{
	struct stat st;
	ssize_t n;

	b->len = 0;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode))
		return -EINVAL;
	if ((uint64_t)st.st_size > max)
		return -EFBIG;
	/* one byte more than the size: a file still growing is noticed */
	free(b->p);
	b->cap = (size_t)st.st_size + 2;
	b->p = malloc(b->cap);
	if (!b->p)
		return -ENOMEM;
	n = lseek(fd, 0, SEEK_SET) < 0 ? -errno : util_read_all(fd, b->p, (size_t)st.st_size + 1);
	if (n < 0)
		return (int)n;
	b->len = (size_t)n;
	b->p[n] = '\0';
	return n == st.st_size ? 0 : -EIO;
}

/* Member name of dirfd into b. Returns 0, 1 when it does not exist, or
 * -errno with err. */
static int load(struct ctx *c, const char *name, struct buf *b)
{
	int fd = openat(c->dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC), rc;

	b->len = 0;
	if (fd < 0 && errno == ENOENT)
		return 1;
	rc = fd < 0 ? -errno : read_fd(fd, FILE_MAX, b);
	if (fd >= 0)
		close(fd);
	if (rc == -EINVAL)
		return fail(c, -EBADMSG, "%s is not a regular file", name);
	if (rc)
		return fail(c, rc, "reading %s: %s", name, strerror(-rc));
	return 0;
}

/* Replace member name of dirfd by b, atomically: a temporary file, never a
 * member name, renamed over it. */
static int save(struct ctx *c, const char *name, const struct buf *b)
{
	char tmp[48];
	int fd, rc;

	do {
		snprintf(tmp, sizeof(tmp), ".cdiff-%ld-%u", (long)getpid(), c->tmpseq++);
		fd = openat(c->dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
			    0644);
	} while (fd < 0 && errno == EEXIST && c->tmpseq % 100);
	if (fd < 0)
		return fail(c, -errno, "creating a temporary file: %s", strerror(errno));
	rc = fchmod(fd, 0644) < 0 ? -errno : util_write_all(fd, b->p, b->len);
	if (close(fd) < 0 && !rc)
		rc = -errno;
	if (!rc && renameat(c->dirfd, tmp, c->dirfd, name) < 0)
		rc = -errno;
	if (rc) {
		unlinkat(c->dirfd, tmp, 0);
		return fail(c, rc, "writing %s: %s", name, strerror(-rc));
	}
	c->st->files_written++;
	return 0;
}

static bool starts(const char *line, const char *prefix)
{
	return !strncmp(line, prefix, strlen(prefix));
}

/* The next line of b from *off, with its LF if it has one. */
static bool next_line(const struct buf *b, size_t *off, const char **line, size_t *len)
{
	const char *nl;

	if (*off >= b->len)
		return false;
	*line = b->p + *off;
	nl = memchr(*line, '\n', b->len - *off);
	*len = nl ? (size_t)(nl - *line) + 1 : b->len - *off;
	*off += *len;
	return true;
}

/* "ClamAV-Diff:<version>:<script length>:" at the start of p. */
static int parse_header(const unsigned char *p, size_t len, uint32_t *version, uint32_t *slen,
			size_t *hlen, char *err)
{
	static const char *const what[2] = {"version", "script length"};
	size_t i = strlen(CDIFF_MAGIC);
	uint64_t v[2];

	if (len < i || memcmp(p, CDIFF_MAGIC, i)) {
		set_err(err, "not a .cdiff: it does not start with '" CDIFF_MAGIC "'");
		return -EBADMSG;
	}
	for (int f = 0; f < 2; f++) {
		size_t start = i;

		for (v[f] = 0; i < len && i - start < 10 && p[i] >= '0' && p[i] <= '9'; i++)
			v[f] = v[f] * 10 + (uint64_t)(p[i] - '0');
		if (i == start || i >= len || p[i] != ':' || v[f] > UINT32_MAX ||
		    (p[start] == '0' && i - start > 1)) {
			set_err(err, "cdiff header: the %s is not a decimal number followed by ':'",
				what[f]);
			return -EBADMSG;
		}
		i++;
	}
	if (v[0] == 0) {
		set_err(err, "cdiff header: version 0");
		return -EBADMSG;
	}
	*version = (uint32_t)v[0];
	*slen = (uint32_t)v[1];
	*hlen = i;
	return 0;
}

int cdiff_read_header(int fd, uint32_t *version, char *err)
{
	unsigned char buf[HEADER_MAX];
	uint32_t slen;
	size_t hlen;
	ssize_t n;

	if (fd < 0 || !version) {
		set_err(err, "cdiff_read_header: bad arguments");
		return -EINVAL;
	}
	do {
		n = pread(fd, buf, sizeof(buf), 0);
	} while (n < 0 && errno == EINTR);
	if (n < 0) {
		set_err(err, "reading the cdiff: %s", strerror(errno));
		return -errno;
	}
	return parse_header(buf, (size_t)n, version, &slen, &hlen, err);
}

/* The trailing ":<dsig>": *gzend is the offset of that ':'. Like libclamav,
 * the signature is what follows the last ':' in the last bytes. */
static int split_dsig(const unsigned char *p, size_t len, size_t hlen, size_t *gzend, char *err)
{
	size_t lo = len > hlen + CDIFF_DSIG_MAX + 1 ? len - CDIFF_DSIG_MAX - 1 : hlen;
	size_t i = len, k;

	while (i > lo && p[i - 1] != ':')
		i--;
	if (i == lo || i == len) {
		set_err(err, "cdiff: no ':<signature>' of 1-%d characters at the end (truncated?)",
			CDIFF_DSIG_MAX);
		return -EBADMSG;
	}
	k = i + strspn((const char *)p + i, "abcdefghijklmnopqrstuvwxyz"
					    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+/");
	if (k < len) {
		set_err(err, "cdiff: byte 0x%02x in the signature after the last ':'", p[k]);
		return -EBADMSG;
	}
	*gzend = i - 1;
	return 0;
}

/* Inflate the gzip member gz into out (slen + 2 bytes): exactly slen bytes,
 * and the member must end exactly at gzlen. */
static int inflate_script(const unsigned char *gz, size_t gzlen, char *out, uint32_t slen,
			  char *err)
{
	z_stream z;
	int zr, rc = -EBADMSG;

	memset(&z, 0, sizeof(z));
	if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK) {
		set_err(err, "cdiff: cannot set up zlib");
		return -ENOMEM;
	}
	z.next_in = (Bytef *)(uintptr_t)gz;
	z.avail_in = (uInt)gzlen;
	z.next_out = (Bytef *)out;
	z.avail_out = slen + 1;
	zr = inflate(&z, Z_FINISH);
	if (zr == Z_STREAM_END && z.total_out != slen)
		set_err(err, "cdiff: the script has %lu bytes, the header says %u", z.total_out,
			slen);
	else if (zr == Z_STREAM_END && z.avail_in)
		set_err(err, "cdiff: %u bytes between the gzip data and the signature", z.avail_in);
	else if (zr == Z_STREAM_END)
		rc = 0;
	else if (zr == Z_BUF_ERROR && z.avail_out == 0)
		set_err(err, "cdiff: the script is longer than the %u bytes the header says", slen);
	else if (zr == Z_BUF_ERROR)
		set_err(err, "cdiff: gzip data truncated");
	else if (zr == Z_MEM_ERROR)
		rc = -ENOMEM;
	else
		set_err(err, "cdiff: bad gzip data: %s", z.msg ? z.msg : "corrupt");
	if (rc == -ENOMEM)
		set_err(err, "cdiff: out of memory");
	inflateEnd(&z);
	return rc;
}

/* Split the first word off *args (NUL-terminated in place); *args moves
 * past the space, or becomes NULL after the last word. */
static char *next_word(char **args)
{
	char *w = *args, *sp = w ? strchr(w, ' ') : NULL;

	*args = sp ? sp + 1 : NULL;
	if (sp)
		*sp = '\0';
	return w;
}

static int lineno(struct ctx *c, const char *s, uint32_t *out)
{
	char q[SHOW_MAX + 4];
	uint64_t v;

	if (!s || util_parse_u64(s, &v) < 0 || v == 0 || v > UINT32_MAX)
		return fail(c, -EBADMSG, "'%s' is not a line number", show(s ? s : "", q));
	*out = (uint32_t)v;
	return 0;
}

static int not_closed(struct ctx *c)
{
	return fail(c, -EBADMSG, "%s is still open (OPEN at cdiff line %u)", c->open,
		    c->open_sline);
}

static int cmd_open(struct ctx *c, char *args)
{
	int rc = c->open ? not_closed(c) : check_name(c, args ? args : "");

	c->open = rc ? c->open : args;
	c->open_sline = rc ? c->open_sline : c->sline;
	return rc;
}

/* ADD, DEL and XCHG: recorded, applied at CLOSE. */
static int push_edit(struct ctx *c, uint32_t n, const char *old, const char *repl)
{
	if (c->ned == c->ced) {
		size_t cap = c->ced ? 2 * c->ced : 64;
		struct edit *p = realloc(c->ed, cap * sizeof(*p));

		if (!p)
			return fail(c, -ENOMEM, "out of memory");
		c->ed = p;
		c->ced = cap;
	}
	c->ed[c->ned++] = (struct edit){.lineno = n, .old = old, .repl = repl, .sline = c->sline};
	return 0;
}

static int cmd_add(struct ctx *c, char *args)
{
	if (!c->open)
		return fail(c, -EBADMSG, "no file open");
	if (!args || !*args)
		return fail(c, -EBADMSG, "nothing to add");
	return push_edit(c, 0, NULL, args);
}

static int cmd_del(struct ctx *c, char *args)
{
	uint32_t n;
	int rc;

	if (!c->open)
		return fail(c, -EBADMSG, "no file open");
	rc = lineno(c, next_word(&args), &n);
	if (rc)
		return rc;
	if (!args || !*args)
		return fail(c, -EBADMSG, "no prefix of the line to delete");
	return push_edit(c, n, args, NULL);
}

static int cmd_xchg(struct ctx *c, char *args)
{
	const char *old;
	uint32_t n;
	int rc;

	if (!c->open)
		return fail(c, -EBADMSG, "no file open");
	rc = lineno(c, next_word(&args), &n);
	if (rc)
		return rc;
	old = next_word(&args);
	if (!old || !*old || !args || !*args)
		return fail(c, -EBADMSG, "expected XCHG <line> <old prefix> <new line>");
	return push_edit(c, n, old, args);
}

/* DEL and XCHG by line, then ADD in script order. */
static int edit_cmp(const void *a, const void *b)
{
	const struct edit *x = a, *y = b;
	uint64_t kx = x->old ? x->lineno : UINT64_MAX, ky = y->old ? y->lineno : UINT64_MAX;

	if (kx != ky)
		return kx < ky ? -1 : 1;
	return x->sline < y->sline ? -1 : x->sline > y->sline;
}

/* A failure of edit e, reported at its own script line. */
static const struct edit *at(struct ctx *c, const struct edit *e)
{
	c->sline = e->sline;
	c->cmd = e->repl ? "XCHG" : "DEL";
	return e;
}

static int cmd_close(struct ctx *c, char *args)
{
	struct buf in = {0}, out = {0};
	struct edit *ed = c->ed;
	char q[SHOW_MAX + 4];
	const char *line;
	size_t off = 0, len, k = 0;
	uint32_t no = 0;
	int rc;

	if (args && *args)
		return fail(c, -EBADMSG, "unexpected argument");
	if (!c->open)
		return fail(c, -EBADMSG, "no file open");
	if (c->ned == 0)
		goto done; /* as libclamav: the file is not even created */
	qsort(ed, c->ned, sizeof(*ed), edit_cmp);
	for (size_t i = 1; i < c->ned; i++)
		if (ed[i].old && ed[i].lineno == ed[i - 1].lineno)
			return fail(c, -EBADMSG,
				    "line %u of %s is edited twice (also at cdiff line %u)",
				    at(c, &ed[i])->lineno, c->open, ed[i - 1].sline);
	rc = load(c, c->open, &in);
	if (rc == 1 && ed[0].old) {
		at(c, &ed[0]);
		rc = fail(c, -EBADMSG, "%s does not exist", c->open);
	}
	if (rc < 0)
		goto out;
	while (next_line(&in, &off, &line, &len)) {
		const struct edit *e = NULL;

		no++;
		if (k < c->ned && ed[k].old && ed[k].lineno == no)
			e = &ed[k++];
		if (e && !starts(line, e->old)) {
			rc = fail(c, -EBADMSG, "line %u of %s does not start with '%s'", no,
				  c->open, show(at(c, e)->old, q));
			goto out;
		}
		rc = !e	       ? buf_put(&out, line, len, false)
		     : e->repl ? buf_put(&out, e->repl, strlen(e->repl), true)
			       : 0;
		if (rc)
			goto err_nomem;
		c->st->lines_exchanged += e && e->repl;
		c->st->lines_deleted += e && !e->repl;
	}
	if (k < c->ned && ed[k].old) {
		rc = fail(c, -EBADMSG, "line %u is past the end of %s (%u lines)",
			  at(c, &ed[k])->lineno, c->open, no);
		goto out;
	}
	for (; k < c->ned; k++, c->st->lines_added++)
		if (buf_put(&out, ed[k].repl, strlen(ed[k].repl), true))
			goto err_nomem;
	rc = save(c, c->open, &out); /* the file is replaced whole */
	if (rc)
		goto out;
done:
	c->open = NULL;
	c->ned = 0;
	rc = 0;
out:
	free(in.p);
	free(out.p);
	return rc;
err_nomem:
	rc = fail(c, -ENOMEM, "out of memory");
	goto out;
}

static int cmd_move(struct ctx *c, char *args)
{
	struct buf src = {0}, dst = {0}, rest = {0};
	char q[SHOW_MAX + 4];
	const char *w[6], *line;
	uint32_t a, b, no = 0;
	size_t off = 0, len;
	int rc = 0;

	if (c->open)
		return not_closed(c);
	for (int i = 0; i < 6; i++) {
		w[i] = next_word(&args);
		if (!w[i] || !*w[i] || (i == 5 && args))
			return fail(c, -EBADMSG,
				    "expected MOVE <src> <dst> <start> <start prefix> "
				    "<end> <end prefix>");
	}
	if ((rc = check_name(c, w[0])) || (rc = check_name(c, w[1])) ||
	    (rc = lineno(c, w[2], &a)) || (rc = lineno(c, w[4], &b)))
		return rc;
	if (!strcmp(w[0], w[1]))
		return fail(c, -EBADMSG, "%s moved to itself", w[0]);
	if (b < a)
		return fail(c, -EBADMSG, "end line %u before start line %u", b, a);
	rc = load(c, w[0], &src);
	if (rc == 1)
		rc = fail(c, -EBADMSG, "%s does not exist", w[0]);
	if (!rc && (rc = load(c, w[1], &dst)) == 1)
		rc = 0; /* dst is created */
	while (!rc && next_line(&src, &off, &line, &len)) {
		const char *bad = NULL;

		/* a == b: both prefixes apply to that line, as in libclamav */
		if (++no == a && !starts(line, w[3]))
			bad = w[3];
		else if (no == b && !starts(line, w[5]))
			bad = w[5];
		if (bad) {
			rc = fail(c, -EBADMSG, "line %u of %s does not start with '%s'", no, w[0],
				  show(bad, q));
		} else if (buf_put(no >= a && no <= b ? &dst : &rest, line, len, false)) {
			rc = fail(c, -ENOMEM, "out of memory");
		}
	}
	if (!rc && no < b)
		rc = fail(c, -EBADMSG, "line %u is past the end of %s (%u lines)", b, w[0], no);
	/* dst first: a failure in between leaves the lines in both files,
	 * all whole; the caller discards the directory. */
	if (!rc && !(rc = save(c, w[1], &dst)))
		rc = save(c, w[0], &rest);
	if (!rc)
		c->st->lines_moved += b - a + 1;
	free(src.p);
	free(dst.p);
	free(rest.p);
	return rc;
}

static int cmd_unlink(struct ctx *c, char *args)
{
	int rc = c->open ? not_closed(c) : check_name(c, args ? args : "");

	if (rc)
		return rc;
	if (unlinkat(c->dirfd, args, 0) < 0) {
		if (errno == ENOENT)
			return fail(c, -EBADMSG, "%s does not exist", args);
		return fail(c, -errno, "%s: %s", args, strerror(errno));
	}
	c->st->files_unlinked++;
	return 0;
}

static const struct {
	const char *name;
	int (*run)(struct ctx *c, char *args);
} commands[] = {
	{"OPEN", cmd_open},   {"ADD", cmd_add},	  {"DEL", cmd_del},	  {"XCHG", cmd_xchg},
	{"CLOSE", cmd_close}, {"MOVE", cmd_move}, {"UNLINK", cmd_unlink},
};

/* Run the script s[0..len) (s[len] is writable); lines are cut in place. */
static int run_script(struct ctx *c, char *s, size_t len)
{
	char q[SHOW_MAX + 4], *p = s, *end = s + len;

	while (p < end) {
		char *nl = memchr(p, '\n', (size_t)(end - p)), *e = nl ? nl : end, *args = p, *w;
		size_t i;
		int rc;

		c->sline++;
		c->cmd = NULL;
		if ((size_t)(e - p) > CDIFF_LINE_MAX)
			return fail(c, -EFBIG, "longer than %u bytes", CDIFF_LINE_MAX);
		if (memchr(p, '\0', (size_t)(e - p)))
			return fail(c, -EBADMSG, "NUL byte in the script");
		for (*e = '\0'; e > p && e[-1] == '\r';)
			*--e = '\0';
		p = nl ? nl + 1 : end;
		if (!*args || *args == '#') /* "#LSIZE n": libclamav's buffer size */
			continue;
		w = next_word(&args);
		for (i = 0; i < SE_ARRAY_SIZE(commands) && strcmp(w, commands[i].name); i++)
			;
		if (i == SE_ARRAY_SIZE(commands))
			return fail(c, -EBADMSG, "unknown command '%s'", show(w, q));
		c->cmd = commands[i].name;
		rc = commands[i].run(c, args);
		if (rc)
			return rc;
		c->st->commands++;
	}
	if (!c->open)
		return 0;
	c->sline = c->open_sline;
	c->cmd = "OPEN";
	return fail(c, -EBADMSG, "%s is never closed", c->open);
}

int cdiff_apply(int cdiff_fd, int dirfd, const char *dbname, struct cdiff_stats *st, char *err)
{
	struct cdiff_stats dummy;
	struct ctx c = {.dirfd = dirfd, .db = dbname, .err = err, .st = st ? st : &dummy};
	struct buf f = {0};
	char *script = NULL;
	size_t hlen = 0, gzend = 0;
	uint32_t slen = 0;
	int rc;

	memset(c.st, 0, sizeof(*c.st));
	if (cdiff_fd < 0 || dirfd < 0 || !dbname || !name_ok(dbname, DBNAME_MAX)) {
		set_err(err, "cdiff_apply: bad arguments");
		return -EINVAL;
	}
	c.dblen = strlen(dbname);
	rc = read_fd(cdiff_fd, CDIFF_SCRIPT_MAX, &f);
	if (rc) {
		set_err(err, "reading the cdiff: %s",
			rc == -EINVAL ? "not a regular file" : strerror(-rc));
		goto out;
	}
	rc = parse_header((unsigned char *)f.p, f.len, &c.st->version, &slen, &hlen, err);
	if (!rc)
		rc = split_dsig((unsigned char *)f.p, f.len, hlen, &gzend, err);
	if (!rc && slen > CDIFF_SCRIPT_MAX) {
		set_err(err, "cdiff: a script of %u bytes, more than the %u allowed", slen,
			CDIFF_SCRIPT_MAX);
		rc = -EFBIG;
	}
	if (!rc && !(script = malloc((size_t)slen + 2))) {
		set_err(err, "cdiff: out of memory");
		rc = -ENOMEM;
	}
	if (!rc)
		rc = inflate_script((unsigned char *)f.p + hlen, gzend - hlen, script, slen, err);
	if (rc)
		goto out;
	c.st->script_bytes = slen;
	rc = run_script(&c, script, slen);
out:
	free(c.ed);
	free(script);
	free(f.p);
	return rc;
}

/* ---- .cld ---- */

/* Open member name of dirfd for reading: a regular file. Returns the fd,
 * or -ENOENT (missing), -EBADMSG (not a regular file), -errno, with err. */
static int open_member(int dirfd, const char *name, struct stat *st, char *err)
{
	int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC), rc;

	rc = fd < 0 || fstat(fd, st) < 0 ? -errno : S_ISREG(st->st_mode) ? fd : -EBADMSG;
	if (rc < 0) {
		set_err(err, "%s: %s", name, rc == -EBADMSG ? "not a regular file" : strerror(-rc));
		if (fd >= 0)
			close(fd);
	}
	return rc;
}

static int tar_err(struct archive *a, const char *name, char *err)
{
	set_err(err, "writing member %s: %s", name, archive_error_string(a));
	return archive_errno(a) == ENOMEM ? -ENOMEM : -EIO;
}

/* One tar member, mode 0644, uid/gid 0, mtime 0, read from member name. */
static int tar_add(struct archive *a, int dirfd, const char *name, char *err)
{
	struct archive_entry *e = archive_entry_new();
	char buf[64 * 1024];
	struct stat st;
	int fd = open_member(dirfd, name, &st, err), rc = fd;
	ssize_t n = 0;

	if (fd < 0 || !e)
		goto out;
	archive_entry_set_pathname(e, name);
	archive_entry_set_filetype(e, AE_IFREG);
	archive_entry_set_perm(e, 0644);
	archive_entry_set_size(e, (la_int64_t)st.st_size);
	archive_entry_set_mtime(e, 0, 0);
	archive_entry_set_uid(e, 0);
	archive_entry_set_gid(e, 0);
	rc = archive_write_header(a, e) == ARCHIVE_OK ? 0 : tar_err(a, name, err);
	for (off_t left = st.st_size; !rc && left > 0; left -= n) {
		n = util_read_all(fd, buf, (size_t)SE_MIN(left, (off_t)sizeof(buf)));
		if (n <= 0) {
			rc = n < 0 ? (int)n : -EIO;
			set_err(err, "reading %s: %s", name, n ? strerror(-rc) : "it shrank");
		} else if (archive_write_data(a, buf, (size_t)n) != n) {
			rc = tar_err(a, name, err);
		}
	}
out:
	if (!e)
		set_err(err, "out of memory");
	archive_entry_free(e);
	if (fd >= 0)
		close(fd);
	return e ? rc : -ENOMEM;
}

/* Nothing in dirfd but COPYING, the .info and the members it lists; every
 * listed member there. */
static int check_dir(int dirfd, const struct cvd_info *info, const char *info_name, bool *copying,
		     char *err)
{
	int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC), rc = 0;
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *de;
	struct stat st;

	if (!d) {
		rc = -errno;
		set_err(err, "reading the database directory: %s", strerror(errno));
		if (fd >= 0)
			close(fd);
		return rc;
	}
	while (!rc && (errno = 0, de = readdir(d))) {
		const char *n = de->d_name;

		if (!strcmp(n, ".") || !strcmp(n, ".."))
			continue;
		*copying |= !strcmp(n, "COPYING");
		if (strcmp(n, "COPYING") && strcmp(n, info_name) && !cvd_info_find(info, n)) {
			set_err(err, "%s: not listed in %s", n, info_name);
			rc = -EBADMSG;
		}
	}
	if (!rc && errno) {
		rc = -errno;
		set_err(err, "reading the database directory: %s", strerror(errno));
	}
	closedir(d);
	for (size_t i = 0; !rc && i < info->n_entries; i++) {
		const char *n = info->entries[i].name;

		if (!strcmp(n, "COPYING") || !strcmp(n, info_name)) {
			set_err(err, "%s lists %s as a signature file", info_name, n);
			rc = -EBADMSG;
		} else if (fstatat(dirfd, n, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			rc = -errno;
			set_err(err, "%s, listed in %s, %s", n, info_name,
				rc == -ENOENT ? "is missing" : strerror(-rc));
		} else if (!S_ISREG(st.st_mode)) {
			set_err(err, "%s: not a regular file", n);
			rc = -EBADMSG;
		}
	}
	return rc;
}

int cld_write(int dirfd, const char *dbname, int outfd, struct cvd_header *hdr_out, char *err)
{
	char info_name[UNPACK_NAME_MAX + 1], hdr[CVD_HEADER_LEN], cerr[CVD_ERR_LEN];
	struct cvd_info info = {0};
	struct archive *a = NULL;
	struct buf ib = {0};
	struct cvd_header h;
	bool copying = false;
	struct stat st;
	size_t l1;
	int fd, rc;

	if (dirfd < 0 || outfd < 0 || !dbname || !name_ok(dbname, DBNAME_MAX)) {
		set_err(err, "cld_write: bad arguments");
		return -EINVAL;
	}
	snprintf(info_name, sizeof(info_name), "%s.info", dbname);
	fd = open_member(dirfd, info_name, &st, err);
	if (fd < 0)
		return fd;
	rc = read_fd(fd, CVD_INFO_MAX_SIZE, &ib);
	close(fd);
	if (rc) {
		set_err(err, "reading %s: %s", info_name, strerror(-rc));
		goto out;
	}
	rc = cvd_parse_info(ib.p, ib.len, CVD_TYPE_CLD, &info, cerr);
	if (rc) {
		set_err(err, "%s: %s", info_name, cerr);
		goto out;
	}
	/* freshclam's header: the .info's first line, space-padded */
	l1 = strcspn(ib.p, "\n");
	memset(hdr, ' ', sizeof(hdr));
	memcpy(hdr, ib.p, SE_MIN(l1, sizeof(hdr)));
	rc = l1 > sizeof(hdr) ? -EBADMSG : cvd_parse_header(hdr, sizeof(hdr), &h, cerr);
	if (rc) {
		set_err(err, "%s line 1 as a .cld header: %s", info_name,
			l1 > sizeof(hdr) ? "longer than 512 bytes" : cerr);
		goto out;
	}
	rc = check_dir(dirfd, &info, info_name, &copying, err);
	if (rc)
		goto out;
	rc = util_write_all(outfd, hdr, sizeof(hdr));
	if (rc) {
		set_err(err, "writing the .cld: %s", strerror(-rc));
		goto out;
	}
	/* v7 as build.c and real containers, no padding to a 10 KiB block;
	 * uncompressed as freshclam's default .cld, which libclamav tells by
	 * "COPYING" in front: without COPYING it must be gzip'd. */
	a = archive_write_new();
	if (!a || archive_write_set_format_v7tar(a) != ARCHIVE_OK ||
	    (!copying &&
	     (archive_write_add_filter_gzip(a) != ARCHIVE_OK ||
	      archive_write_set_filter_option(a, "gzip", "timestamp", NULL) != ARCHIVE_OK)) ||
	    archive_write_set_bytes_in_last_block(a, 1) != ARCHIVE_OK ||
	    archive_write_open_fd(a, outfd) != ARCHIVE_OK) {
		rc = a ? -EIO : -ENOMEM;
		set_err(err, "cannot set up the tar writer: %s",
			a ? archive_error_string(a) : "out of memory");
		goto out;
	}
	rc = copying ? tar_add(a, dirfd, "COPYING", err) : 0;
	if (!rc)
		rc = tar_add(a, dirfd, info_name, err);
	for (size_t i = 0; !rc && i < info.n_entries; i++)
		rc = tar_add(a, dirfd, info.entries[i].name, err);
	if (!rc && archive_write_close(a) != ARCHIVE_OK) {
		rc = -EIO;
		set_err(err, "finishing the .cld: %s", archive_error_string(a));
	}
	if (!rc && hdr_out)
		*hdr_out = h;
out:
	if (a)
		archive_write_free(a);
	cvd_info_free(&info);
	free(ib.p);
	return rc;
}
