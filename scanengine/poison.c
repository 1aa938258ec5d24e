/* poison: the table of files implicated in worker crashes. See poison.h.
 *
 * A handful of entries at most (bounded by max_entries), so a plain array
 * scanned linearly: cheaper than any index at this size, and the order of
 * entries stays the order in which files were first seen. */
#include "scanengine/poison.h"
#include "common/digest.h"
#include "common/jsonutil.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#define POISON_SIGNALS_MAX 16 /* signals remembered per file; crashes counts all */

struct poison_entry {
	struct poison_file f;
	char *path; /* at the latest crash that named one; NULL: none (a stream) */
	unsigned int crashes;
	unsigned int nsig;
	int signals[POISON_SIGNALS_MAX];
	uint64_t first_ms, last_ms;
	uint64_t tick; /* table-wide crash counter at the latest crash: eviction age */
	bool poisoned;
};

struct poison {
	unsigned int threshold;
	size_t max_entries;
	struct poison_entry *e;
	size_t n, cap;
	/* Counts crashes; gives the eviction order without trusting the
	 * caller's clock to be monotonic. */
	uint64_t tick;
};

struct poison *poison_new(unsigned int threshold, size_t max_entries)
{
	struct poison *p;

	/* a table that can hold nothing is a caller bug, not a policy */
	if (max_entries == 0) {
		errno = EINVAL;
		return NULL;
	}
	p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	p->threshold = threshold ? threshold : 1;
	p->max_entries = max_entries;
	return p;
}

static void entry_clear(struct poison_entry *e)
{
	free(e->path);
	e->path = NULL;
}

void poison_free(struct poison *p)
{
	if (!p)
		return;
	poison_reset(p);
	free(p->e);
	free(p);
}

void poison_file_from_stat(struct poison_file *f, const struct stat *st)
{
	memset(f, 0, sizeof(*f));
	f->dev = st->st_dev;
	f->ino = st->st_ino;
	f->size = st->st_size;
	f->mtime = st->st_mtim;
}

static bool same_identity(const struct poison_file *a, const struct poison_file *b)
{
	return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
	       a->mtime.tv_sec == b->mtime.tv_sec && a->mtime.tv_nsec == b->mtime.tv_nsec;
}

static bool both_sha(const struct poison_file *a, const struct poison_file *b)
{
	return a->have_sha256 && b->have_sha256;
}

static bool same_content(const struct poison_file *a, const struct poison_file *b)
{
	return both_sha(a, b) && a->size == b->size &&
	       memcmp(a->sha256, b->sha256, POISON_SHA256_LEN) == 0;
}

/* Identity or content. Two different hashes override a same identity: the
 * file was rewritten without its size or mtime changing (in-place rsync
 * --times, utimensat), so it is not the file that crashed the scanner. */
static bool file_matches(const struct poison_file *a, const struct poison_file *b)
{
	if (same_identity(a, b))
		return !both_sha(a, b) || same_content(a, b);
	return same_content(a, b);
}

static void entry_remove(struct poison *p, size_t i)
{
	entry_clear(&p->e[i]);
	memmove(&p->e[i], &p->e[i + 1], (p->n - i - 1) * sizeof(p->e[0]));
	p->n--;
}

/* Fold src into dst: one file that was first seen under two identities
 * (say a path and, before its hash was known, a copy of it). */
static void entry_merge(struct poison_entry *dst, struct poison_entry *src)
{
	unsigned int i;

	dst->crashes += src->crashes;
	for (i = 0; i < src->nsig && dst->nsig < POISON_SIGNALS_MAX; i++)
		dst->signals[dst->nsig++] = src->signals[i];
	if (src->first_ms < dst->first_ms)
		dst->first_ms = src->first_ms;
	if (src->last_ms > dst->last_ms)
		dst->last_ms = src->last_ms;
	if (src->tick > dst->tick)
		dst->tick = src->tick;
	dst->poisoned = dst->poisoned || src->poisoned;
	if (!dst->f.have_sha256 && src->f.have_sha256) {
		dst->f.have_sha256 = true;
		memcpy(dst->f.sha256, src->f.sha256, POISON_SHA256_LEN);
	}
	if (!dst->path) {
		dst->path = src->path;
		src->path = NULL;
	}
}

/* Make room for one more entry: grow the array up to max_entries, then
 * evict the least recently crashed non-poisoned entry, and only when every
 * entry is poisoned the least recently crashed poisoned one. */
static int make_room(struct poison *p)
{
	struct poison_entry *ne;
	size_t i, victim = SIZE_MAX, cap;

	if (p->n < p->cap)
		return 0;
	if (p->cap < p->max_entries) {
		cap = p->cap ? p->cap * 2 : 8;
		if (cap > p->max_entries || cap < p->cap)
			cap = p->max_entries;
		ne = reallocarray(p->e, cap, sizeof(*ne));
		if (!ne)
			return -ENOMEM;
		p->e = ne;
		p->cap = cap;
		return 0;
	}
	for (i = 0; i < p->n; i++) {
		if (p->e[i].poisoned)
			continue;
		if (victim == SIZE_MAX || p->e[i].tick < p->e[victim].tick)
			victim = i;
	}
	if (victim == SIZE_MAX) {
		for (i = 0; i < p->n; i++) {
			if (victim == SIZE_MAX || p->e[i].tick < p->e[victim].tick)
				victim = i;
		}
	}
	entry_remove(p, victim);
	return 0;
}

int poison_record_crash(struct poison *p, const struct poison_file *f, const char *path, int sig,
			uint64_t now_ms)
{
	struct poison_entry *e = NULL;
	char *npath = NULL;
	bool was_poisoned = false;
	size_t i;
	int ret;

	/* Allocate first: on -ENOMEM the table is unchanged. */
	if (path) {
		npath = strdup(path);
		if (!npath)
			return -ENOMEM;
	}

	/* Every entry this file matches is the same file: fold them into the
	 * first so its crashes are counted together. Not one whose hash
	 * differs from the first's, though: a crash without a hash can match
	 * two rewrites of one inode by identity, and they stay apart. */
	for (i = 0; i < p->n; i++) {
		if (!file_matches(&p->e[i].f, f))
			continue;
		if (!e) {
			e = &p->e[i];
			was_poisoned = e->poisoned;
			continue;
		}
		if (both_sha(&e->f, &p->e[i].f) && !same_content(&e->f, &p->e[i].f))
			continue;
		was_poisoned = was_poisoned || p->e[i].poisoned;
		entry_merge(e, &p->e[i]);
		entry_remove(p, i--); /* after e: e stays valid */
	}

	if (!e) {
		ret = make_room(p);
		if (ret < 0)
			goto err_free_path;
		e = &p->e[p->n++];
		memset(e, 0, sizeof(*e));
		e->f = *f;
		e->first_ms = now_ms;
	} else if (!e->f.have_sha256 && f->have_sha256) {
		/* an identity match: learn the hash so copies match too */
		e->f.have_sha256 = true;
		memcpy(e->f.sha256, f->sha256, POISON_SHA256_LEN);
	}

	if (npath) {
		free(e->path);
		e->path = npath;
	}
	e->crashes++;
	if (e->nsig < POISON_SIGNALS_MAX)
		e->signals[e->nsig++] = sig;
	if (now_ms < e->first_ms)
		e->first_ms = now_ms;
	if (now_ms > e->last_ms)
		e->last_ms = now_ms;
	e->tick = ++p->tick;

	if (was_poisoned || e->crashes < p->threshold)
		return 0;
	e->poisoned = true;
	return 1;

err_free_path:
	free(npath);
	return ret;
}

enum poison_verdict poison_check(const struct poison *p, const struct poison_file *f)
{
	enum poison_verdict v = POISON_NO;
	size_t i;

	for (i = 0; i < p->n; i++) {
		const struct poison_entry *e = &p->e[i];

		if (!e->poisoned)
			continue;
		if (file_matches(&e->f, f))
			return POISON_YES;
		/* Only worth hashing the request when the entry has a hash to
		 * compare it with; a copy of a file whose hash was never
		 * learned cannot be recognised anyway. */
		if (!f->have_sha256 && e->f.have_sha256 && e->f.size == f->size)
			v = POISON_NEED_SHA;
	}
	return v;
}

size_t poison_count(const struct poison *p)
{
	size_t i, k = 0;

	for (i = 0; i < p->n; i++)
		k += p->e[i].poisoned;
	return k;
}

size_t poison_reset(struct poison *p)
{
	size_t k = poison_count(p), i;

	for (i = 0; i < p->n; i++)
		entry_clear(&p->e[i]);
	p->n = 0;
	return k;
}

/* key: null (json-c stores a NULL value as a JSON null) */
static int jadd_null(struct json_object *o, const char *key)
{
	return json_object_object_add(o, key, NULL) < 0 ? -ENOMEM : 0;
}

static struct json_object *entry_json(const struct poison_entry *e)
{
	static const char hex[] = "0123456789abcdef";
	char sha[2 * POISON_SHA256_LEN + 1];
	struct json_object *o, *sigs;
	unsigned int i;
	int err = 0;

	o = json_object_new_object();
	if (!o)
		return NULL;
	sigs = json_object_new_array();
	if (!sigs)
		goto err_put;
	for (i = 0; i < e->nsig; i++) {
		struct json_object *s = json_object_new_int(e->signals[i]);

		if (!s || json_object_array_add(sigs, s) < 0) {
			json_object_put(s);
			json_object_put(sigs);
			goto err_put;
		}
	}
	if (e->f.have_sha256) {
		for (i = 0; i < POISON_SHA256_LEN; i++) {
			sha[2 * i] = hex[e->f.sha256[i] >> 4];
			sha[2 * i + 1] = hex[e->f.sha256[i] & 0xf];
		}
		sha[2 * POISON_SHA256_LEN] = '\0';
	}

	/* err collects failures; every jadd still owns (adds or puts) its
	 * value, so nothing leaks on the way to err_put */
	if (e->path)
		err |= jsonutil_add(o, "path", json_object_new_string(e->path));
	else
		err |= jadd_null(o, "path");
	err |= jsonutil_add(o, "dev", json_object_new_uint64((uint64_t)e->f.dev));
	err |= jsonutil_add(o, "ino", json_object_new_uint64((uint64_t)e->f.ino));
	err |= jsonutil_add(o, "size", json_object_new_int64((int64_t)e->f.size));
	err |= jsonutil_add(o, "mtime", json_object_new_int64((int64_t)e->f.mtime.tv_sec));
	err |= jsonutil_add(o, "mtime_nsec", json_object_new_int64((int64_t)e->f.mtime.tv_nsec));
	if (e->f.have_sha256)
		err |= jsonutil_add(o, "sha256", json_object_new_string(sha));
	else
		err |= jadd_null(o, "sha256");
	err |= jsonutil_add(o, "crashes", json_object_new_uint64(e->crashes));
	err |= jsonutil_add(o, "signals", sigs);
	err |= jsonutil_add(o, "first", json_object_new_uint64(e->first_ms));
	err |= jsonutil_add(o, "last", json_object_new_uint64(e->last_ms));
	if (err)
		goto err_put;
	return o;

err_put:
	json_object_put(o);
	errno = ENOMEM;
	return NULL;
}

struct json_object *poison_json(const struct poison *p)
{
	struct json_object *a, *o;
	size_t i;

	a = json_object_new_array();
	if (!a)
		return NULL;
	for (i = 0; i < p->n; i++) {
		if (!p->e[i].poisoned)
			continue;
		o = entry_json(&p->e[i]);
		if (!o || json_object_array_add(a, o) < 0) {
			json_object_put(o);
			goto err_put;
		}
	}
	return a;

err_put:
	json_object_put(a);
	errno = ENOMEM;
	return NULL;
}

int poison_sha256_fd(int fd, uint64_t max_bytes, unsigned char out[POISON_SHA256_LEN])
{
	return digest_sha256_fd(fd, max_bytes, out, NULL);
}
