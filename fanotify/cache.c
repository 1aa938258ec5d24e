/* cache: the user-space side of the on-access verdict cache (onaccess.h).
 *
 * A clean verdict is kept for a file identity: device, inode, size,
 * modification and change times (a write, a truncate, a chmod or a
 * utimensat moves one of them), under the definitions generation it was
 * scanned with, for at most OA_CACHE_TTL_S. A fixed table, indexed by a
 * hash of device and inode; a newer entry takes the slot of an older one
 * (a miss only costs a scan). The kernel side is an ignore mark per clean
 * inode (onaccess.c); this table answers the events that still come: for
 * a file whose mark could not be placed (open for writing at the time) or
 * was evicted with its inode. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fanotify/onaccess_int.h"

static size_t slot(const struct oa_cache *c, dev_t dev, ino_t ino)
{
	uint64_t h = (uint64_t)dev * 0x9e3779b97f4a7c15ULL ^ (uint64_t)ino * 0xc2b2ae3d27d4eb4fULL;

	h ^= h >> 31;
	return (size_t)(h % c->cap);
}

static bool same(const struct oa_cache_entry *e, const struct stat *st)
{
	return e->dev == st->st_dev && e->ino == st->st_ino && e->size == st->st_size &&
	       e->mtime_ns == st->st_mtim.tv_sec * 1000000000LL + st->st_mtim.tv_nsec &&
	       e->ctime_ns == st->st_ctim.tv_sec * 1000000000LL + st->st_ctim.tv_nsec;
}

int oa_cache_init(struct oa_cache *c, size_t cap)
{
	c->v = calloc(cap, sizeof(*c->v));
	c->cap = c->v ? cap : 0;
	c->gen = 1;
	return c->v ? 0 : -ENOMEM;
}

void oa_cache_free(struct oa_cache *c)
{
	free(c->v);
	c->v = NULL;
	c->cap = 0;
}

bool oa_cache_hit(const struct oa_cache *c, const struct stat *st, uint64_t now_ms)
{
	const struct oa_cache_entry *e;

	if (!c->cap)
		return false;
	e = &c->v[slot(c, st->st_dev, st->st_ino)];
	return e->gen == c->gen && e->expires_ms > now_ms && same(e, st);
}

void oa_cache_put(struct oa_cache *c, const struct stat *st, uint64_t now_ms)
{
	struct oa_cache_entry *e;

	if (!c->cap)
		return;
	e = &c->v[slot(c, st->st_dev, st->st_ino)];
	*e = (struct oa_cache_entry){
		.dev = st->st_dev,
		.ino = st->st_ino,
		.size = st->st_size,
		.mtime_ns = st->st_mtim.tv_sec * 1000000000LL + st->st_mtim.tv_nsec,
		.ctime_ns = st->st_ctim.tv_sec * 1000000000LL + st->st_ctim.tv_nsec,
		.gen = c->gen,
		.expires_ms = now_ms + OA_CACHE_TTL_S * 1000ULL,
	};
}

void oa_cache_invalidate(struct oa_cache *c)
{
	c->gen++; /* every entry is of an older generation now */
}
