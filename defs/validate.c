/* validate: the staged validation of definitions (see validate.h). */
#include "defs/validate.h"
#include "defs/validate_int.h"
#include "common/digest.h"
#include "common/jsonutil.h"
#include "common/util.h"
#include "defs/auth.h"
#include "defs/cvd.h"
#include "defs/unpack.h"
#include "scanengine/engine.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <limits.h>
#include <magic.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#define SET_DIR		  "set"
#define UNPACK_DIR	  "unpack"
#define TMP_DIR		  "tmp"
#define MAX_FILES	  256
#define MAX_CONTAINER	  (4ull << 30)
#define STAGE_NOTHING_NEW 1 /* format: skip_unchanged found nothing new */

static const char *const stage_names[VS_NSTAGES] = {
	"format", "integrity", "authenticity", "compatibility", "unpack", "test load", "canary",
};

const char *validate_stage_name(enum validate_stage s)
{
	return (unsigned int)s < VS_NSTAGES ? stage_names[s] : "none";
}

int validate_stage_parse(const char *name)
{
	for (int i = 0; i < VS_NSTAGES; i++) {
		const char *n = stage_names[i];
		size_t j;

		/* "test load", "test-load" and "test_load" are the same */
		for (j = 0; n[j] && name[j]; j++)
			if (n[j] != name[j] && !(n[j] == ' ' && (name[j] == '-' || name[j] == '_')))
				break;
		if (!n[j] && !name[j])
			return i;
	}
	return -EINVAL;
}

/* ---- messages ---- */

/* A stage failure: the reason (one line), and what it is about. */
int vctx_fail(struct vctx *c, const char *offending, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->why, sizeof(c->why), fmt, ap);
	va_end(ap);
	for (char *p = c->why; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	if (offending)
		util_strlcpy(c->res->offending, offending, sizeof(c->res->offending));
	return -EBADMSG;
}

/* An internal failure (not the definitions' fault). */
int vctx_internal(struct vctx *c, int r, const char *what)
{
	snprintf(c->why, sizeof(c->why), "internal error: %.300s: %s", what, strerror(-r));
	return r;
}

/* Append to the pass summary of the running stage. */
void vctx_note(struct vctx *c, const char *fmt, ...)
{
	size_t len = strlen(c->note);
	va_list ap;

	if (len + 3 >= sizeof(c->note))
		return;
	if (len)
		len += (size_t)snprintf(c->note + len, sizeof(c->note) - len, "; ");
	va_start(ap, fmt);
	vsnprintf(c->note + len, sizeof(c->note) - len, fmt, ap);
	va_end(ap);
}

void vctx_progress(struct vctx *c, const char *fmt, ...)
{
	char line[VALIDATE_REASON_MAX + 64];
	va_list ap;

	if (!c->pol->progress)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	c->pol->progress(c->pol->progress_arg, line);
}

/* ---- names ---- */

static bool is_sign_name(const char *name)
{
	size_t n = strlen(name);

	return n > 5 && strcmp(name + n - 5, ".sign") == 0;
}

int validate_db_name(const char *path, char *out, size_t len)
{
	const char *base = strrchr(path, '/');
	const char *dot;
	size_t n;

	base = base ? base + 1 : path;
	dot = strrchr(base, '.');
	if (!*base || base[0] == '.' || !dot || !dot[1] || strlen(base) >= 256)
		return -EINVAL;
	for (const char *p = base; *p; p++)
		if (!isalnum((unsigned char)*p) && !strchr("._-", *p))
			return -EINVAL;
	if (cvd_type_from_name(base) == CVD_TYPE_UNKNOWN) {
		if (!unpack_known_type(base) || strcasecmp(dot, ".info") == 0)
			return -EINVAL;
		n = strlen(base); /* a plain file is its own database */
	} else {
		const char *dash = NULL;

		n = (size_t)(dot - base);
		for (const char *p = base; p < dot; p++)
			if (*p == '-')
				dash = p;
		if (dash && dash + 1 < dot) {
			const char *p = dash + 1;

			while (p < dot && isdigit((unsigned char)*p))
				p++;
			if (p == dot)
				n = (size_t)(dash - base);
		}
	}
	if (n == 0 || n >= len)
		return -EINVAL;
	memcpy(out, base, n);
	out[n] = '\0';
	return 0;
}

/* ---- libmagic ---- */

/* What libmagic says buf is, one line ("HTML document, ASCII text"). */
static void describe(struct vctx *c, const void *buf, size_t len, char *out, size_t outlen)
{
	const char *d = NULL;

	if (!c->magic) {
		c->magic = magic_open(MAGIC_NONE);
		if (c->magic && magic_load(c->magic, NULL) != 0) {
			magic_close(c->magic);
			c->magic = NULL;
		}
	}
	if (c->magic)
		d = magic_buffer(c->magic, buf, len);
	util_strlcpy(out, d ? d : "data of unknown type", outlen);
}

/* Kinds of content no signature file ever is. */
static bool foreign_content(const char *desc)
{
	static const char *const kinds[] = {"HTML",	   "XML",	  "gzip",
					    "Zip archive", "tar archive", "PDF document",
					    "image data",  "ELF"};

	for (size_t i = 0; i < SE_ARRAY_SIZE(kinds); i++)
		if (strstr(desc, kinds[i]))
			return true;
	return false;
}

/* ---- the set directory ---- */

static int copy_into_set(struct vctx *c, const char *src, const char *name, int *fdout)
{
	int in, out, r;

	in = open(src, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (in < 0)
		return -errno;
	out = openat(c->setfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (out < 0) {
		r = -errno;
		close(in);
		return r;
	}
	r = util_copy_fd(in, out, NULL);
	if (!r && fchmod(out, 0644) < 0)
		r = -errno;
	close(in);
	close(out);
	if (!r && fdout) {
		*fdout = openat(c->setfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
		if (*fdout < 0)
			r = -errno;
	}
	return r;
}

/* Record a .sign file of the set with its SHA-256 (taken now, before
 * anything that runs as the scan account could touch it). */
static int add_sign(struct vctx *c, const char *name)
{
	unsigned char md[DIGEST_SHA256_LEN];
	struct validate_file *v;
	int fd, r;

	fd = openat(c->setfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	r = digest_sha256_fd(fd, 0, md, NULL);
	close(fd);
	if (r)
		return r;
	v = realloc(c->signs, (c->nsigns + 1) * sizeof(*v));
	if (!v)
		return -ENOMEM;
	c->signs = v;
	v = &c->signs[c->nsigns++];
	util_strlcpy(v->name, name, sizeof(v->name));
	digest_hex(md, sizeof(md), v->sha256);
	return 0;
}

/* A file of the active set that the new files do not replace: linked
 * (generations are immutable) or else copied. */
static int carry_file(struct vctx *c, int activefd, const char *name)
{
	char src[PATH_MAX * 2];

	if (linkat(activefd, name, c->setfd, name, 0) == 0)
		return 0;
	if (errno == EEXIST)
		return -EEXIST;
	snprintf(src, sizeof(src), "%s/%s", c->activedir, name);
	return copy_into_set(c, src, name, NULL);
}

static bool is_dropped(const struct vctx *c, const char *db)
{
	for (size_t i = 0; i < c->pol->ndrop; i++)
		if (strcmp(c->pol->drop[i], db) == 0)
			return true;
	return false;
}

static bool is_replaced(const struct vctx *c, const char *db)
{
	for (size_t i = 0; i < c->nf; i++)
		if (c->f[i].is_new && strcmp(c->f[i].db, db) == 0)
			return true;
	return is_dropped(c, db);
}

static struct vfile *add_vfile(struct vctx *c)
{
	struct vfile *v;

	if (c->nf >= MAX_FILES)
		return NULL;
	v = realloc(c->f, (c->nf + 1) * sizeof(*v));
	if (!v)
		return NULL;
	c->f = v;
	v = &c->f[c->nf++];
	memset(v, 0, sizeof(*v));
	v->fd = -1;
	return v;
}

/* Bring over the active generation's databases that are not replaced.
 * Their .sign files come along; manifest and unknown files do not. */
static int carry_active(struct vctx *c)
{
	struct dirent **names = NULL;
	int afd, n, r = 0;

	if (!c->activedir)
		return 0;
	afd = open(c->activedir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (afd < 0)
		return -errno;
	n = scandirat(afd, ".", &names, NULL, alphasort);
	if (n < 0) {
		r = -errno;
		close(afd);
		return r;
	}
	for (int i = 0; i < n; i++) {
		const char *name = names[i]->d_name;
		char db[128], plain[256];
		struct vfile *v;

		if (r || name[0] == '.')
			goto next;
		util_strlcpy(plain, name, sizeof(plain));
		if (is_sign_name(plain))
			plain[strlen(plain) - 5] = '\0';
		if (validate_db_name(plain, db, sizeof(db)))
			goto next;
		if (is_replaced(c, db)) {
			c->ndropped += !is_sign_name(name) && is_dropped(c, db);
			goto next;
		}
		if (is_sign_name(name)) {
			r = carry_file(c, afd, name);
			if (!r)
				r = add_sign(c, name);
			goto next;
		}
		v = add_vfile(c);
		if (!v) {
			r = -ENOMEM;
			goto next;
		}
		c->ncarried++;
		snprintf(v->src, sizeof(v->src), "%.2000s/%.200s", c->activedir, name);
		util_strlcpy(v->base, name, sizeof(v->base));
		util_strlcpy(v->db, db, sizeof(v->db));
		util_strlcpy(v->setname, name, sizeof(v->setname));
		v->type = cvd_type_from_name(name);
		r = carry_file(c, afd, name);
		if (!r) {
			v->fd = openat(c->setfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
			r = v->fd < 0 ? -errno : 0;
		}
	next:
		free(names[i]);
	}
	free(names);
	close(afd);
	return r;
}

/* ---- stage 1: format ---- */

static const char *type_name(enum cvd_type t)
{
	switch (t) {
	case CVD_TYPE_CVD:
		return "CVD";
	case CVD_TYPE_CLD:
		return "CLD";
	case CVD_TYPE_CUD:
		return "CUD";
	default:
		return "signature file";
	}
}

static int format_container(struct vctx *c, struct vfile *v)
{
	char hdr[CVD_HEADER_LEN + 8], desc[256], err[CVD_ERR_LEN];
	ssize_t got;

	got = pread(v->fd, hdr, CVD_HEADER_LEN + 8, 0);
	if (got < 0)
		return vctx_internal(c, -errno, v->base);
	if (cvd_parse_header(hdr, (size_t)got, &v->hdr, err)) {
		describe(c, hdr, (size_t)got, desc, sizeof(desc));
		if (strncmp(hdr, CVD_MAGIC ":", sizeof(CVD_MAGIC)) != 0)
			return vctx_fail(c, v->base, "%s: %s, not a %s container", v->base, desc,
					 type_name(v->type));
		return vctx_fail(c, v->base, "%s: bad %s header: %s", v->base, type_name(v->type),
				 err);
	}
	if (cvd_header_check_type(&v->hdr, v->type, err))
		return vctx_fail(c, v->base, "%s: %s", v->base, err);
	if ((uint64_t)v->st.st_size < CVD_HEADER_LEN + CVD_PAYLOAD_MIN)
		return vctx_fail(c, v->base, "%s: %lld bytes: no payload after the header", v->base,
				 (long long)v->st.st_size);
	if ((uint64_t)v->st.st_size > MAX_CONTAINER)
		return vctx_fail(c, v->base, "%s: %lld bytes, more than a container may have",
				 v->base, (long long)v->st.st_size);
	/* The payload: gzip, or a plain tar starting with COPYING (.cld). */
	got = pread(v->fd, hdr, 8, CVD_HEADER_LEN);
	if (got < CVD_PAYLOAD_MIN)
		return vctx_fail(c, v->base, "%s: payload truncated", v->base);
	if (!((unsigned char)hdr[0] == 0x1f && (unsigned char)hdr[1] == 0x8b) &&
	    memcmp(hdr, "COPYING", 7) != 0) {
		char head[512];

		got = pread(v->fd, head, sizeof(head), CVD_HEADER_LEN);
		describe(c, head, got > 0 ? (size_t)got : 0, desc, sizeof(desc));
		return vctx_fail(c, v->base, "%s: the payload is %s, not a gzip tar", v->base,
				 desc);
	}
	vctx_note(c, "%s: %s version %u, %u signatures, f-level %u", v->base, type_name(v->type),
		  v->hdr.version, v->hdr.sigs, v->hdr.flevel);
	return 0;
}

static int format_plain(struct vctx *c, struct vfile *v)
{
	char head[4096], desc[256];
	ssize_t got;

	if ((uint64_t)v->st.st_size > UNPACK_DEFAULT_MAX_MEMBER)
		return vctx_fail(c, v->base, "%s: %lld bytes, more than a signature file may have",
				 v->base, (long long)v->st.st_size);
	got = pread(v->fd, head, sizeof(head), 0);
	if (got < 0)
		return vctx_internal(c, -errno, v->base);
	describe(c, head, (size_t)got, desc, sizeof(desc));
	if (got > 0 && foreign_content(desc))
		return vctx_fail(c, v->base, "%s: %s, not a signature file", v->base, desc);
	vctx_note(c, "%s: signature file, %lld bytes", v->base, (long long)v->st.st_size);
	return 0;
}

/* Pair each .sign argument with the file it names; the rest get their
 * sibling "<file>.sign" when there is one. */
static int pair_signs(struct vctx *c, const char *const *files, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const char *b = strrchr(files[i], '/');
		bool found = false;

		b = b ? b + 1 : files[i];
		if (!is_sign_name(b))
			continue;
		for (size_t j = 0; j < c->nf; j++) {
			size_t len = strlen(c->f[j].base);

			if (strncmp(b, c->f[j].base, len) == 0 && strcmp(b + len, ".sign") == 0) {
				util_strlcpy(c->f[j].sign_src, files[i], sizeof(c->f[j].sign_src));
				found = true;
			}
		}
		if (!found)
			return vctx_fail(c, b, "%s: no file %.*s was given to go with it", b,
					 (int)(strlen(b) - 5), b);
	}
	for (size_t j = 0; j < c->nf; j++) {
		char sib[PATH_MAX + 8];

		snprintf(sib, sizeof(sib), "%s.sign", c->f[j].src);
		if (!c->f[j].sign_src[0] && access(sib, F_OK) == 0)
			util_strlcpy(c->f[j].sign_src, sib, sizeof(c->f[j].sign_src));
	}
	return 0;
}

/* Whether the file at path has the same content as the active set's file
 * of database db. */
static bool same_as_active(const struct vctx *c, const char *path, const char *db)
{
	unsigned char a[DIGEST_SHA256_LEN], b[DIGEST_SHA256_LEN];
	struct dirent *de;
	bool same = false;
	DIR *d;

	if (!c->activedir || !(d = opendir(c->activedir)))
		return false;
	while (!same && (de = readdir(d))) {
		char name[128], apath[PATH_MAX * 2];
		int fa, fb;

		if (de->d_name[0] == '.' || is_sign_name(de->d_name) ||
		    validate_db_name(de->d_name, name, sizeof(name)) || strcmp(name, db) != 0)
			continue;
		snprintf(apath, sizeof(apath), "%s/%s", c->activedir, de->d_name);
		fa = open(apath, O_RDONLY | O_CLOEXEC);
		fb = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
		if (fa >= 0 && fb >= 0 && !digest_sha256_fd(fa, 0, a, NULL) &&
		    !digest_sha256_fd(fb, 0, b, NULL))
			same = memcmp(a, b, sizeof(a)) == 0;
		if (fa >= 0)
			close(fa);
		if (fb >= 0)
			close(fb);
	}
	closedir(d);
	return same;
}

/* skip_unchanged: a file identical to the active set's copy of its
 * database is no new file: the active copy is carried over instead. */
static int drop_unchanged(struct vctx *c)
{
	size_t kept = 0;

	for (size_t i = 0; i < c->nf; i++) {
		if (same_as_active(c, c->f[i].src, c->f[i].db))
			continue;
		c->f[kept++] = c->f[i];
	}
	c->nf = kept;
	return 0;
}

/* The new files: names, kinds, sizes, content; then copied into the set
 * (what is checked from here on is the copy, and the copy is what a
 * generation is made of), then the active set's other databases. */
static int stage_format(struct vctx *c)
{
	const char *const *files = c->files;
	size_t n = c->nfiles;
	int r;

	for (size_t i = 0; i < n; i++) {
		const char *b = strrchr(files[i], '/');
		struct vfile *v;
		char ext[32];

		b = b ? b + 1 : files[i];
		if (is_sign_name(b))
			continue;
		if (strlen(b) > 6 && strcmp(b + strlen(b) - 6, ".cdiff") == 0)
			return vctx_fail(
				c, b,
				"%s: a .cdiff is a patch, not a definitions set: install the "
				"patched .cvd or .cld",
				b);
		v = add_vfile(c);
		if (!v)
			return vctx_internal(c, -ENOMEM, "files");
		util_strlcpy(v->src, files[i], sizeof(v->src));
		util_strlcpy(v->base, b, sizeof(v->base));
		v->is_new = true;
		if (validate_db_name(b, v->db, sizeof(v->db)))
			return vctx_fail(c, b,
					 "%s: not a definitions file name (.cvd, .cld, .cud or a "
					 "signature file such as .hdb, .ndb, .ldb, .yar)",
					 b);
		v->type = cvd_type_from_name(b);
		for (size_t j = 0; j + 1 < c->nf; j++)
			if (strcmp(c->f[j].db, v->db) == 0)
				return vctx_fail(c, b, "%s and %s are both database %s",
						 c->f[j].base, b, v->db);
		util_strlcpy(ext, strrchr(b, '.'), sizeof(ext));
		for (char *p = ext; *p; p++)
			*p = (char)tolower((unsigned char)*p);
		snprintf(v->setname, sizeof(v->setname), "%s%s",
			 v->type == CVD_TYPE_UNKNOWN ? "" : v->db,
			 v->type == CVD_TYPE_UNKNOWN ? b : ext);
	}
	if (c->nf == 0)
		return vctx_fail(c, NULL, "no definitions file given");
	r = pair_signs(c, files, n);
	if (r)
		return r;
	if (c->pol->skip_unchanged) {
		r = drop_unchanged(c);
		if (r)
			return vctx_internal(c, r, "comparing with the active set");
	}
	for (size_t i = 0; i < c->nf; i++) {
		struct vfile *v = &c->f[i];
		struct stat st;

		if (stat(v->src, &st) < 0)
			return vctx_fail(c, v->base, "%s: %s", v->src, strerror(errno));
		if (!S_ISREG(st.st_mode))
			return vctx_fail(c, v->base, "%s: not a regular file", v->src);
		r = copy_into_set(c, v->src, v->setname, &v->fd);
		if (r == -EACCES || r == -ENOENT || r == -EISDIR)
			return vctx_fail(c, v->base, "%s: %s", v->src, strerror(-r));
		if (r)
			return vctx_internal(c, r, v->src);
		if (fstat(v->fd, &v->st) < 0)
			return vctx_internal(c, -errno, v->setname);
		if (v->sign_src[0]) {
			char sname[300];

			snprintf(sname, sizeof(sname), "%s.sign", v->setname);
			r = copy_into_set(c, v->sign_src, sname, NULL);
			if (r)
				return vctx_fail(c, v->base, "%s: %s", v->sign_src, strerror(-r));
			r = add_sign(c, sname);
			if (r)
				return vctx_internal(c, r, sname);
		}
		r = v->type == CVD_TYPE_UNKNOWN ? format_plain(c, v) : format_container(c, v);
		if (r)
			return r;
	}
	r = carry_active(c);
	if (r)
		return vctx_internal(c, r, "carrying over the active set");
	if (c->pol->skip_unchanged && c->nf == c->ncarried && !c->ndropped) {
		vctx_note(c, "every file is the same as in the active set");
		return STAGE_NOTHING_NEW;
	}
	return 0;
}

/* ---- stage 2: integrity ---- */

static void limits_of(const struct vctx *c, struct unpack_limits *lim)
{
	unpack_limits_default(lim);
	if (c->pol->cfg && c->pol->cfg->max_def_entries)
		lim->max_entries = c->pol->cfg->max_def_entries;
}

static int integrity_container(struct vctx *c, struct vfile *v)
{
	struct cvd_payload p;
	struct unpack_limits lim;
	char err[CVD_ERR_LEN > UNPACK_ERR_LEN ? CVD_ERR_LEN : UNPACK_ERR_LEN], want[140];
	char *info = NULL;
	size_t len;
	int r;

	r = cvd_payload_md5_fd(v->fd, &v->hdr, &p, err);
	if (r == -EBADMSG)
		return vctx_fail(c, v->base, "%s: %s", v->base, err);
	if (r)
		return vctx_internal(c, r, v->base);
	if (v->hdr.has_md5 && cvd_check_md5(&v->hdr, &p, err))
		return vctx_fail(c, v->base, "%s: %s", v->base, err);
	/* The .info is named after the database: a renamed container would
	 * otherwise replace a database it is not. */
	limits_of(c, &lim);
	snprintf(want, sizeof(want), "%s.info", v->db);
	r = unpack_peek(v->fd, CVD_HEADER_LEN, want, &lim, &info, &len, err);
	if (r == -ENOMEM)
		return vctx_internal(c, r, v->base);
	if (r == -ENOENT)
		return vctx_fail(c, v->base, "%s: holds no %s: not database %s (renamed?)", v->base,
				 want, v->db);
	if (r)
		return vctx_fail(c, v->base, "%s: reading %s: %s", v->base, want, err);
	r = cvd_parse_info(info, len, v->type, &v->info, err);
	free(info);
	if (r)
		return vctx_fail(c, v->base, "%s: .info: %s", v->base, err);
	v->has_info = true;
	if (cvd_info_matches_header(&v->info, &v->hdr, err))
		return vctx_fail(c, v->base, "%s: header and .info differ: %s", v->base, err);
	if (strcmp(v->info.hdr.time, v->hdr.time) != 0 ||
	    strcmp(v->info.hdr.builder, v->hdr.builder) != 0)
		return vctx_fail(c, v->base, "%s: header and .info differ in build time or builder",
				 v->base);
	if (v->hdr.has_dsig) {
		/* The header's signature field seals the header: a damaged one
		 * is a damaged file, whoever made it. */
		struct auth_policy ap = {
			.legacy_only = true, .flevel = engine_flevel(), .tmp_dir = c->tmpdir};
		char aerr[AUTH_ERR_LEN];
		char path[PATH_MAX * 2];

		snprintf(path, sizeof(path), "%s/%s", c->setdir, v->setname);
		if (auth_check(path, NULL, &ap, NULL, aerr))
			return vctx_fail(c, v->base,
					 "%s: the header signature does not match the payload MD5 "
					 "(damaged, or not made by ClamAV): %s",
					 v->base, aerr);
	}
	vctx_note(c, "%s: %s, header = .info line 1", v->base,
		  v->hdr.has_md5 ? "payload MD5 matches" : "no header MD5 (.cld)");
	return 0;
}

static int file_sha256(int fd, char hex[65])
{
	unsigned char md[DIGEST_SHA256_LEN];
	int r = digest_sha256_fd(fd, 0, md, NULL);

	if (!r)
		digest_hex(md, sizeof(md), hex);
	return r;
}

static int stage_integrity(struct vctx *c)
{
	int r;

	for (size_t i = 0; i < c->nf; i++) {
		struct vfile *v = &c->f[i];

		r = file_sha256(v->fd, v->sha256);
		if (r)
			return vctx_internal(c, r, v->setname);
		if (!v->is_new)
			continue;
		if (v->type != CVD_TYPE_UNKNOWN) {
			r = integrity_container(c, v);
			if (r)
				return r;
		} else {
			vctx_note(c, "%s: plain file, nothing to check it against", v->base);
		}
	}
	return 0;
}

/* ---- stage 3: authenticity ---- */

/* Files an administrator put in DatabaseDirectory are trusted where they
 * are, if nobody but root could have put them there. */
static int local_trust(struct vctx *c, struct vfile *v)
{
	struct stat st;

	if (lstat(v->src, &st) < 0)
		return vctx_fail(c, v->base, "%s: %s", v->src, strerror(errno));
	if (st.st_uid != 0 && st.st_uid != geteuid())
		return vctx_fail(c, v->base,
				 "%s: owned by uid %u, not trusted as local definitions", v->src,
				 (unsigned int)st.st_uid);
	if (st.st_mode & (S_IWGRP | S_IWOTH))
		return vctx_fail(
			c, v->base,
			"%s: writable by group or others, not trusted as local definitions",
			v->src);
	v->auth_name = "local";
	vctx_note(c, "%s: local (DatabaseDirectory)", v->base);
	return 0;
}

static const char *common_name(const char *subject)
{
	const char *cn = strstr(subject, "CN = ");

	return cn ? cn + 5 : subject;
}

static int stage_authenticity(struct vctx *c)
{
	const struct config *cfg = c->pol->cfg;
	struct auth_policy ap = {
		.certs_dir = cfg->certs_dir,
		.allow_unsigned = cfg->allow_unsigned,
		.require_sign = cfg->require_sign,
		.flevel = engine_flevel(),
		.tmp_dir = c->tmpdir,
	};
	char path[PATH_MAX * 2], err[AUTH_ERR_LEN];
	int r;

	for (size_t i = 0; i < c->nf; i++) {
		struct vfile *v = &c->f[i];

		if (!v->is_new) {
			v->auth_name = "carried";
			continue;
		}
		snprintf(path, sizeof(path), "%s/%s", c->setdir, v->setname);
		r = auth_check(path, NULL, &ap, &v->auth, err);
		if (r == -EPERM && c->pol->local && !cfg->require_sign && !v->sign_src[0] &&
		    (v->type == CVD_TYPE_CUD || v->type == CVD_TYPE_UNKNOWN)) {
			r = local_trust(c, v);
			if (r)
				return r;
			continue;
		}
		if (r == -ENOMEM)
			return vctx_internal(c, r, v->base);
		if (r)
			return vctx_fail(c, v->base, "%s: %s", v->base,
					 strncmp(err, "authenticity: ", 14) ? err : err + 14);
		v->auth_name = auth_method_name(v->auth.method);
		if (v->auth.method == AUTH_SIGN)
			vctx_note(c, "%s: sign (%s)", v->base, common_name(v->auth.signer));
		else
			vctx_note(c, "%s: %s", v->base, v->auth_name);
	}
	return 0;
}

/* ---- stage 4: compatibility ---- */

/* The version of database db in the active set (0: none there). */
static uint32_t active_version(const struct vctx *c, const char *db)
{
	struct dirent *de;
	uint32_t version = 0;
	DIR *d;

	if (!c->activedir || !(d = opendir(c->activedir)))
		return 0;
	while ((de = readdir(d))) {
		char name[128], hdr[CVD_HEADER_LEN], path[PATH_MAX * 2], err[CVD_ERR_LEN];
		struct cvd_header h;
		int fd;

		if (cvd_type_from_name(de->d_name) == CVD_TYPE_UNKNOWN ||
		    validate_db_name(de->d_name, name, sizeof(name)) || strcmp(name, db) != 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", c->activedir, de->d_name);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		if (pread(fd, hdr, sizeof(hdr), 0) == (ssize_t)sizeof(hdr) &&
		    !cvd_parse_header(hdr, sizeof(hdr), &h, err) && h.version > version)
			version = h.version;
		close(fd);
	}
	closedir(d);
	return version;
}

static int stage_compatibility(struct vctx *c)
{
	uint32_t fl = engine_flevel(), active;

	for (size_t i = 0; i < c->nf; i++) {
		struct vfile *v = &c->f[i];

		if (!v->is_new)
			continue;
		if (v->type == CVD_TYPE_UNKNOWN) {
			vctx_note(c, "%s: plain file, no version", v->base);
			continue;
		}
		if (v->hdr.flevel > fl)
			return vctx_fail(
				c, v->base,
				"%s: needs functionality level %u, the linked libclamav %s has %u",
				v->base, v->hdr.flevel, engine_version(), fl);
		active = active_version(c, v->db);
		if (active && v->hdr.version < active && !c->pol->rollback)
			return vctx_fail(c, v->base,
					 "%s: version %u is older than the active %s version %u: a "
					 "downgrade (scanctl defs rollback goes back explicitly)",
					 v->base, v->hdr.version, v->db, active);
		if (active && v->hdr.version == active && !c->pol->rollback)
			return vctx_fail(c, v->base, "%s: version %u of %s is already active",
					 v->base, v->hdr.version, v->db);
		if (active)
			vctx_note(c, "%s: f-level %u <= %u, version %u after %u", v->base,
				  v->hdr.flevel, fl, v->hdr.version, active);
		else
			vctx_note(c, "%s: f-level %u <= %u, version %u (new database)", v->base,
				  v->hdr.flevel, fl, v->hdr.version);
	}
	return 0;
}

/* ---- stage 5: unpack ---- */

/* Every member against the .info: listed, same size, same SHA-256; and
 * nothing unlisted but COPYING and the .info itself. */
static int check_members(struct vctx *c, struct vfile *v, int dfd)
{
	struct dirent *de;
	DIR *d;
	int r = 0;

	for (size_t i = 0; i < v->info.n_entries; i++) {
		const struct cvd_info_entry *e = &v->info.entries[i];
		unsigned char md[DIGEST_SHA256_LEN];
		uint64_t size = 0;
		int fd = openat(dfd, e->name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);

		if (fd < 0)
			return vctx_fail(c, v->base, "%s: member %s listed in %s.info is missing",
					 v->base, e->name, v->db);
		r = digest_sha256_fd(fd, 0, md, &size);
		close(fd);
		if (r)
			return vctx_internal(c, r, e->name);
		if (size != e->size)
			return vctx_fail(c, v->base,
					 "%s: member %s has %llu bytes, %s.info says %u", v->base,
					 e->name, (unsigned long long)size, v->db, e->size);
		if (memcmp(md, e->sha256, sizeof(md)) != 0)
			return vctx_fail(c, v->base, "%s: member %s: SHA-256 differs from %s.info",
					 v->base, e->name, v->db);
	}
	d = fdopendir(dup(dfd));
	if (!d)
		return vctx_internal(c, -errno, v->base);
	while ((de = readdir(d))) {
		size_t n = strlen(de->d_name);

		if (de->d_name[0] == '.' || strcmp(de->d_name, "COPYING") == 0 ||
		    (n > 5 && strcmp(de->d_name + n - 5, ".info") == 0))
			continue;
		if (!cvd_info_find(&v->info, de->d_name)) {
			r = vctx_fail(c, v->base, "%s: member %s is not listed in %s.info", v->base,
				      de->d_name, v->db);
			break;
		}
	}
	closedir(d);
	return r;
}

static bool info_lists(const char *name, void *arg)
{
	return cvd_info_find(arg, name) != NULL;
}

static int stage_unpack(struct vctx *c)
{
	struct unpack_limits lim;
	struct unpack_result ur;
	char err[UNPACK_ERR_LEN], off[300];
	int dfd, r;

	limits_of(c, &lim);
	for (size_t i = 0; i < c->nf; i++) {
		struct vfile *v = &c->f[i];

		if (!v->is_new || v->type == CVD_TYPE_UNKNOWN)
			continue;
		/* a member the .info does not list is refused as it comes, so a
		 * flood of them costs nothing */
		lim.listed = v->has_info ? info_lists : NULL;
		lim.listed_arg = &v->info;
		if (v->has_info && v->info.n_entries > lim.max_entries)
			return vctx_fail(
				c, v->base,
				"%s: %s.info lists %zu members, more than MaxDefinitionEntries "
				"(%u)",
				v->base, v->db, v->info.n_entries, lim.max_entries);
		if (mkdirat(c->unpackfd, v->db, 0755) < 0)
			return vctx_internal(c, -errno, v->db);
		dfd = openat(c->unpackfd, v->db, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (dfd < 0)
			return vctx_internal(c, -errno, v->db);
		r = unpack_fd(v->fd, CVD_HEADER_LEN, dfd, &lim, &ur, err);
		if (r == -ENOMEM || r == -ENOSPC || r == -EIO) {
			close(dfd);
			return vctx_internal(c, r, v->base);
		}
		if (r) {
			close(dfd);
			snprintf(off, sizeof(off), "%.200s%s%.90s", v->base,
				 ur.offending[0] ? ": " : "", ur.offending);
			return vctx_fail(c, off, "%s: %s", v->base, err);
		}
		r = v->has_info ? check_members(c, v, dfd) : 0;
		close(dfd);
		if (r)
			return r;
		vctx_note(c, "%s: %u members, %llu bytes, as %s.info lists them", v->base,
			  ur.entries, (unsigned long long)ur.total_bytes, v->db);
	}
	if (!c->note[0])
		vctx_note(c, "nothing to unpack (plain files)");
	return 0;
}

/* ---- the pipeline ---- */

static int (*const stage_fn[VS_NSTAGES])(struct vctx *c) = {
	[VS_FORMAT] = stage_format,
	[VS_INTEGRITY] = stage_integrity,
	[VS_AUTHENTICITY] = stage_authenticity,
	[VS_COMPATIBILITY] = stage_compatibility,
	[VS_UNPACK] = stage_unpack,
	[VS_TEST_LOAD] = validate_stage_test_load,
	[VS_CANARY] = validate_stage_canary,
};

/* The work directory: set/ (the candidate), unpack/, tmp/ (the test
 * load's scratch, the scan account's). */
static int prepare_dir(struct vctx *c, const char *dir)
{
	const struct sandbox_identity *id = c->pol->id;
	int r;

	if (!realpath(dir, c->dir))
		return vctx_internal(c, -errno, dir);
	c->dirfd = open(c->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (c->dirfd < 0)
		return vctx_internal(c, -errno, c->dir);
	/* The test load reads the set as the scan account. */
	if (fchmod(c->dirfd, 0755) < 0)
		return vctx_internal(c, -errno, c->dir);
	snprintf(c->setdir, sizeof(c->setdir), "%s/" SET_DIR, c->dir);
	snprintf(c->tmpdir, sizeof(c->tmpdir), "%s/" TMP_DIR, c->dir);
	if (mkdirat(c->dirfd, SET_DIR, 0755) < 0 || mkdirat(c->dirfd, UNPACK_DIR, 0755) < 0 ||
	    mkdirat(c->dirfd, TMP_DIR, 0700) < 0)
		return vctx_internal(c, -errno, "creating the work directories");
	if (geteuid() == 0 && id && id->valid && chown(c->tmpdir, id->uid, id->gid) < 0)
		return vctx_internal(c, -errno, c->tmpdir);
	c->setfd = openat(c->dirfd, SET_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	c->unpackfd = openat(c->dirfd, UNPACK_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	r = c->setfd < 0 || c->unpackfd < 0 ? -errno : 0;
	return r ? vctx_internal(c, r, c->dir) : 0;
}

static int fill_dbs(struct vctx *c)
{
	struct validate_result *res = c->res;

	res->dbs = calloc(c->nf ? c->nf : 1, sizeof(*res->dbs));
	res->files = calloc(c->nf + c->nsigns + 1, sizeof(*res->files));
	if (!res->dbs || !res->files)
		return -ENOMEM;
	for (size_t i = 0; i < c->nf; i++) {
		if (!c->f[i].sha256[0]) /* not hashed: validation stopped before */
			continue;
		util_strlcpy(res->files[res->nfiles].name, c->f[i].setname,
			     sizeof(res->files[0].name));
		util_strlcpy(res->files[res->nfiles++].sha256, c->f[i].sha256,
			     sizeof(res->files[0].sha256));
	}
	for (size_t i = 0; i < c->nsigns; i++)
		res->files[res->nfiles++] = c->signs[i];
	for (size_t i = 0; i < c->nf; i++) {
		struct vfile *v = &c->f[i];
		struct validate_db *d = &res->dbs[res->ndbs++];
		char hdr[CVD_HEADER_LEN], err[CVD_ERR_LEN];

		/* carried containers: their header, for the record */
		if (!v->is_new && v->type != CVD_TYPE_UNKNOWN && v->fd >= 0 &&
		    pread(v->fd, hdr, sizeof(hdr), 0) == (ssize_t)sizeof(hdr))
			(void)cvd_parse_header(hdr, sizeof(hdr), &v->hdr, err);
		util_strlcpy(d->name, v->db, sizeof(d->name));
		util_strlcpy(d->file, v->setname, sizeof(d->file));
		d->container = v->type != CVD_TYPE_UNKNOWN;
		d->is_new = v->is_new;
		d->version = v->hdr.version;
		d->sigs = d->container ? v->hdr.sigs : v->loaded;
		d->flevel = v->hdr.flevel;
		d->stime = v->hdr.stime;
		util_strlcpy(d->build_time, v->hdr.time, sizeof(d->build_time));
		util_strlcpy(d->sha256, v->sha256, sizeof(d->sha256));
		util_strlcpy(d->auth, v->auth_name ? v->auth_name : "", sizeof(d->auth));
		util_strlcpy(d->signer, v->auth.signer, sizeof(d->signer));
		d->loaded = v->loaded;
		d->load_ms = v->load_ms;
		d->engine_kib = v->load_kib;
	}
	return 0;
}

int validate_candidate(const char *const *files, size_t nfiles, const char *activedir,
		       const char *dir, const struct validate_policy *pol,
		       struct validate_result *res)
{
	struct vctx c = {.pol = pol,
			 .res = res,
			 .activedir = activedir,
			 .files = files,
			 .nfiles = nfiles,
			 .dirfd = -1,
			 .setfd = -1,
			 .unpackfd = -1};
	int r = 0;

	memset(res, 0, sizeof(*res));
	res->failed = VS_NSTAGES;
	if (!pol || !pol->cfg || !dir || (nfiles && !files)) {
		snprintf(res->stages[0].reason, sizeof(res->stages[0].reason), "invalid arguments");
		return -EINVAL;
	}
	r = prepare_dir(&c, dir);
	for (int s = 0; !r && s < VS_NSTAGES; s++) {
		struct validate_stage_report *rep = &res->stages[s];
		uint64_t t0 = util_now_ms();

		c.why[0] = c.note[0] = '\0';
		vctx_progress(&c, "%s ...", stage_names[s]);
		r = stage_fn[s](&c);
		if (r == STAGE_NOTHING_NEW) {
			rep->status = VST_PASS;
			rep->ms = util_now_ms() - t0;
			util_strlcpy(rep->reason, c.note, sizeof(rep->reason));
			res->unchanged = true;
			r = 0;
			break;
		}
		/* the canary's time was measured inside the child */
		if (s != VS_CANARY)
			rep->ms = util_now_ms() - t0;
		if (s == VS_TEST_LOAD && rep->ms >= res->stages[VS_CANARY].ms)
			rep->ms -= res->stages[VS_CANARY].ms;
		if (!r) {
			rep->status = VST_PASS;
			util_strlcpy(rep->reason, c.note, sizeof(rep->reason));
		} else if (r == -EBADMSG && (pol->force & (1u << s))) {
			rep->status = VST_FORCED;
			snprintf(rep->reason, sizeof(rep->reason), "forced past: %.490s", c.why);
			r = 0;
		} else {
			rep->status = VST_FAIL;
			util_strlcpy(rep->reason, c.why, sizeof(rep->reason));
			res->failed = (enum validate_stage)s;
		}
		vctx_progress(&c, "%s: %s (%llu ms)%s%s", stage_names[s],
			      rep->status == VST_PASS	  ? "pass"
			      : rep->status == VST_FORCED ? "FORCED"
							  : "FAIL",
			      (unsigned long long)rep->ms, rep->reason[0] ? ": " : "", rep->reason);
	}
	if (r && res->failed == VS_NSTAGES) /* before any stage: the work directory */
		util_strlcpy(res->stages[0].reason, c.why, sizeof(res->stages[0].reason));
	if (fill_dbs(&c) && !r)
		r = -ENOMEM;
	for (size_t i = 0; i < c.nf; i++) {
		util_close(&c.f[i].fd);
		cvd_info_free(&c.f[i].info);
	}
	free(c.f);
	free(c.signs);
	json_object_put(c.child);
	if (c.magic)
		magic_close(c.magic);
	util_close(&c.setfd);
	util_close(&c.unpackfd);
	util_close(&c.dirfd);
	return r;
}

void validate_result_free(struct validate_result *res)
{
	if (!res)
		return;
	free(res->dbs);
	res->dbs = NULL;
	res->ndbs = 0;
	free(res->files);
	res->files = NULL;
	res->nfiles = 0;
}

static const char *status_name(enum validate_status s)
{
	static const char *const names[] = {"not run", "pass", "fail", "forced"};

	return (unsigned int)s < SE_ARRAY_SIZE(names) ? names[s] : "?";
}

const char *validate_status_name(enum validate_status s)
{
	return status_name(s);
}

struct json_object *validate_db_json(const struct validate_db *d)
{
	struct json_object *o = json_object_new_object();
	int r = o ? 0 : -ENOMEM;

	r = r ?: jsonutil_add(o, "name", json_object_new_string(d->name));
	r = r ?: jsonutil_add(o, "file", json_object_new_string(d->file));
	if (d->container) {
		r = r ?: jsonutil_add(o, "version", json_object_new_int64(d->version));
		r = r ?: jsonutil_add(o, "signatures", json_object_new_int64(d->sigs));
		r = r ?: jsonutil_add(o, "flevel", json_object_new_int64(d->flevel));
		r = r ?: jsonutil_add(o, "build_time", json_object_new_string(d->build_time));
		r = r ?: jsonutil_add(o, "build_stime", json_object_new_int64(d->stime));
	} else {
		r = r ?: jsonutil_add(o, "signatures", json_object_new_int64(d->loaded));
	}
	r = r ?: jsonutil_add(o, "loaded_signatures", json_object_new_int64(d->loaded));
	r = r ?: jsonutil_add(o, "test_load_ms", json_object_new_int64(d->load_ms));
	r = r ?: jsonutil_add(o, "engine_kib", json_object_new_int64((int64_t)d->engine_kib));
	r = r ?: jsonutil_add(o, "sha256", json_object_new_string(d->sha256));
	r = r ?: jsonutil_add(o, "authentication", json_object_new_string(d->auth));
	if (d->signer[0])
		r = r ?: jsonutil_add(o, "signer", json_object_new_string(d->signer));
	r = r ?: jsonutil_add(o, "new", json_object_new_boolean(d->is_new));
	if (r) {
		json_object_put(o);
		return NULL;
	}
	return o;
}

struct json_object *validate_result_json(const struct validate_result *res)
{
	struct json_object *o = json_object_new_object();
	struct json_object *st = json_object_new_array(), *dbs = json_object_new_array();
	int r = o && st && dbs ? 0 : -ENOMEM;

	for (int s = 0; !r && s < VS_NSTAGES; s++) {
		const struct validate_stage_report *rep = &res->stages[s];
		struct json_object *x = json_object_new_object();

		r = x ? 0 : -ENOMEM;
		r = r ?: jsonutil_add(x, "stage", json_object_new_string(stage_names[s]));
		r = r
			    ?: jsonutil_add(x, "status",
					    json_object_new_string(status_name(rep->status)));
		r = r ?: jsonutil_add(x, "reason", json_object_new_string(rep->reason));
		r = r ?: jsonutil_add(x, "ms", json_object_new_int64((int64_t)rep->ms));
		if (!r && json_object_array_add(st, x))
			r = -ENOMEM;
		if (r)
			json_object_put(x);
	}
	for (size_t i = 0; !r && i < res->ndbs; i++) {
		struct json_object *d = validate_db_json(&res->dbs[i]);

		r = d ? 0 : -ENOMEM;
		if (!r && json_object_array_add(dbs, d)) {
			json_object_put(d);
			r = -ENOMEM;
		}
	}
	if (!r) {
		r = jsonutil_add(o, "stages", st); /* owns st in every case */
		st = NULL;
	}
	if (!r) {
		r = jsonutil_add(o, "databases", dbs);
		dbs = NULL;
	}
	r = r
		    ?: jsonutil_add(o, "passed",
				    json_object_new_boolean(res->failed == VS_NSTAGES &&
							    res->stages[VS_CANARY].status !=
								    VST_NOT_RUN));
	if (!r && res->failed != VS_NSTAGES) {
		r = jsonutil_add(o, "failed", json_object_new_string(stage_names[res->failed]));
		r = r
			    ?: jsonutil_add(
				       o, "reason",
				       json_object_new_string(res->stages[res->failed].reason));
		if (res->offending[0])
			r = r
				    ?: jsonutil_add(o, "offending",
						    json_object_new_string(res->offending));
	}
	if (!r) {
		struct json_object *files = json_object_new_object();

		for (size_t i = 0; files && i < res->nfiles; i++)
			if (jsonutil_add(files, res->files[i].name,
					 json_object_new_string(res->files[i].sha256))) {
				json_object_put(files);
				files = NULL;
			}
		r = jsonutil_add(o, "set_files", files);
	}
	if (res->unchanged)
		r = r ?: jsonutil_add(o, "unchanged", json_object_new_boolean(true));
	r = r ?: jsonutil_add(o, "loaded_signatures", json_object_new_int64(res->loaded_sigs));
	r = r ?: jsonutil_add(o, "engine_kib", json_object_new_int64((int64_t)res->engine_kib));
	if (r) {
		json_object_put(st);
		json_object_put(dbs);
		json_object_put(o);
		return NULL;
	}
	return o;
}
