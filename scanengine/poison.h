/* poison: files that crash the scanner.
 *
 * The supervisor records the file in flight at each worker crash. A file
 * implicated in PoisonThreshold crashes is poisoned: while the same
 * definitions are loaded it is no longer fed to the scanner, and its
 * requests are answered "Scanner.Crashed ERROR" at once.
 *
 * A file is recognised by its identity (device, inode, size, mtime) or by
 * its content (size and SHA-256), so a stream or a copy of a poisoned file
 * is recognised too. Checking a request costs one comparison per entry on
 * fstat data; the SHA-256 of the request's file is only needed when its
 * size equals a poisoned entry's (poison_check says so). */
#ifndef SE_SCANENGINE_POISON_H
#define SE_SCANENGINE_POISON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

struct json_object;

#define POISON_SHA256_LEN 32

struct poison_file {
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime;
	bool have_sha256;
	unsigned char sha256[POISON_SHA256_LEN];
};

enum poison_verdict {
	POISON_NO = 0,	 /* not poisoned */
	POISON_YES,	 /* poisoned: do not scan */
	POISON_NEED_SHA, /* size matches a poisoned entry: check again with the SHA-256 */
};

struct poison;

/* poison_new: an empty table; threshold crashes poison a file (0 taken as
 * 1); at most max_entries files are tracked (the oldest non-poisoned entry
 * makes room first, then the oldest poisoned one; "oldest": least recently
 * recorded in a crash). Returns it, or NULL with errno (EINVAL when
 * max_entries is 0, ENOMEM). Free with poison_free. */
struct poison *poison_new(unsigned int threshold, size_t max_entries);

/* poison_free: NULL ok. */
void poison_free(struct poison *p);

/* poison_file_from_stat: fill f's identity from st (no SHA-256 yet). */
void poison_file_from_stat(struct poison_file *f, const struct stat *st);

/* poison_record_crash: file f (path for the operator, NULL for a stream;
 * signal sig that killed the worker; now_ms monotonic) was being scanned
 * when a worker crashed. Entries match by identity or by content (size +
 * SHA-256, when both sides have it); a same identity with two different
 * SHA-256 is not a match (the file was rewritten in place). Entries that
 * turn out to be one file are merged. Give f a SHA-256 when possible:
 * copies are only recognised by content. path is copied. Returns 1 when
 * this crash made the file poisoned, 0 when it was recorded (or already
 * poisoned), -ENOMEM (table unchanged). */
int poison_record_crash(struct poison *p, const struct poison_file *f, const char *path, int sig,
			uint64_t now_ms);

/* poison_check: whether a request's file f is poisoned (same matching as
 * poison_record_crash). POISON_NEED_SHA when f has no SHA-256 and only its
 * size matches a poisoned entry that has one: hash f and check again. */
enum poison_verdict poison_check(const struct poison *p, const struct poison_file *f);

/* poison_count: number of poisoned files. */
size_t poison_count(const struct poison *p);

/* poison_reset: forget everything (new definitions, or an operator's
 * reset). Returns how many poisoned files were lifted. */
size_t poison_reset(struct poison *p);

/* poison_json: a new JSON array of the poisoned files: {path (or null),
 * dev, ino, size, mtime (s), mtime_nsec, sha256 (lowercase hex or null),
 * crashes, signals: [..] (the first 16), first, last (monotonic ms)}.
 * Returns it (caller puts it) or NULL with errno ENOMEM. */
struct json_object *poison_json(const struct poison *p);

/* poison_sha256_fd: SHA-256 of the whole file behind fd (pread, so the
 * offset is untouched), at most max_bytes (0: no limit; larger files give
 * -EFBIG). Blocks for as long as reading the file takes. out is written
 * only on success. Returns 0 or -errno (-ESPIPE for a pipe or socket). */
int poison_sha256_fd(int fd, uint64_t max_bytes, unsigned char out[POISON_SHA256_LEN]);

#endif
