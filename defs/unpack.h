/* unpack: the "safe unpack" stage of definitions validation (DESIGN.md
 * section 4, stage 5).
 *
 * A ClamAV container (.cvd, .cld, .cud) is a 512-byte text header followed
 * by a tar payload: gzip-compressed, or, for a .cld that freshclam wrote
 * without CompressLocalDatabase, a plain tar whose first member is COPYING
 * (libclamav tells the two apart the same way). unpack_fd() extracts that
 * payload into a private staging directory with libarchive's read side and
 * accepts only what libclamav's own loader reads as a flat set of signature
 * files; it refuses anything that could land outside the directory or
 * exhaust disk, memory or time:
 *
 *   payload   a tar, gzip-compressed once, or plain starting with COPYING;
 *             not corrupt or truncated (libarchive does not check the gzip
 *             CRC-32: the container's MD5, stage 2, covers that)   -EBADMSG
 *   headers   plain tar headers (v7, ustar, GNU): no pax extended headers,
 *             since libclamav reads only the 512-byte header blocks and would
 *             see another name or size than a pax header gives       -EPERM
 *   kind      regular files only: no symbolic or hard links, devices, FIFOs,
 *             sockets, directories, sparse files                   -EPERM
 *   name      1..100 bytes of [A-Za-z0-9._-], not starting with '.', and no
 *             '/' at all: no absolute path, no "..", no directory component
 *             (real containers are flat; libclamav refuses any '/')   -EPERM
 *   type      unpack_known_type() (the reason names the member)    -EPERM
 *   unique    no name twice                                        -EPERM
 *   count     at most max_entries members                          -E2BIG
 *   size      a member's declared size and the bytes written for it at most
 *             max_member_bytes; all members at most max_total_bytes  -EFBIG
 *   ratio     bytes written / compressed bytes read, for the member and for
 *             the payload so far, at most max_ratio once ratio_min_bytes were
 *             written: checked while decompressing, so a bomb stops after a
 *             few MiB                                              -EFBIG
 *   time      the whole call, including waiting for input on a pipe, within
 *             time_budget_ms                                       -ETIMEDOUT
 *
 * Files are created with openat(dirfd, name, O_CREAT | O_EXCL | O_NOFOLLOW)
 * and never by a path string, so even a missed check cannot write outside
 * dirfd or through a link, and an existing file is never overwritten
 * (-EEXIST). Created files are regular, mode 0644 whatever the archive or
 * the umask say, and not fsynced: the staging copy is for validation, and
 * what publishes a set makes it durable (defs_store_import_dir copies and
 * fsyncs). */
#ifndef SE_DEFS_UNPACK_H
#define SE_DEFS_UNPACK_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#define UNPACK_NAME_MAX 100 /* the tar header's name field, as libclamav reads it */
#define UNPACK_ERR_LEN	256 /* size of err[] */

/* Defaults (unpack_limits_default). Real containers: main.cvd and daily.cvd
 * hold a few dozen members of at most a few hundred MiB that compress 2-5
 * fold; deflate cannot exceed about 1030 fold (zeros at level 9) and only
 * reaches 229 fold at level 1, so a limit of 1000 would miss most bombs. */
#define UNPACK_DEFAULT_MAX_ENTRIES 10000u
#define UNPACK_DEFAULT_MAX_TOTAL   (2ull << 30)
#define UNPACK_DEFAULT_MAX_MEMBER  (1ull << 30)
#define UNPACK_DEFAULT_MAX_RATIO   100u
#define UNPACK_DEFAULT_RATIO_MIN   (1ull << 20)
#define UNPACK_DEFAULT_TIME_BUDGET 60000u

struct unpack_limits {
	unsigned int max_entries;  /* MaxDefinitionEntries */
	uint64_t max_total_bytes;  /* all members, uncompressed */
	uint64_t max_member_bytes; /* one member, uncompressed */
	unsigned int max_ratio;	   /* uncompressed/compressed above this: a bomb */
	uint64_t ratio_min_bytes;  /* the ratio rule applies from this many bytes */
	uint64_t time_budget_ms;   /* give up after this long */
	/* Optional (NULL: any name): whether a member other than COPYING and
	 * a .info is expected (listed in the container's .info); one that is
	 * not is refused before anything is created for it. */
	bool (*listed)(const char *name, void *arg);
	void *listed_arg;
};

struct unpack_result {
	unsigned int entries;	   /* members extracted (on failure: met so far) */
	uint64_t total_bytes;	   /* bytes written (on failure: before removal) */
	uint64_t compressed_bytes; /* payload bytes read from fd */
	bool gzip;		   /* gzip payload (false: plain tar) */
	char offending[256];	   /* the member a refusal is about, or "" */
};

/* unpack_limits_default: fill lim with the UNPACK_DEFAULT_* values (and
 * no listed filter). */
void unpack_limits_default(struct unpack_limits *lim);

/* unpack_fd: extract the tar payload read from fd, starting at offset (512
 * for a container; fd may be a pipe, whose offset bytes are then read and
 * dropped; a seekable fd is read with pread and its offset left alone) into
 * the directory dirfd (opened O_DIRECTORY by the caller: a private staging
 * directory, expected empty), under the rules above. lim: every field
 * non-zero. res (may be NULL) is filled on success and failure. Returns 0,
 * or -errno with a one-line reason in err[UNPACK_ERR_LEN] (may be NULL)
 * naming the member and the rule it broke: the codes above, -ENODATA for a
 * payload without members, -EINVAL for bad arguments, -ENOTDIR, or the
 * -errno of a failed read or write. On failure every file this call created
 * is removed again (files that were there before are left as they were).
 * Never writes outside dirfd. */
int unpack_fd(int fd, off_t offset, int dirfd, const struct unpack_limits *lim,
	      struct unpack_result *res, char *err);

/* unpack_peek: read one member into memory without writing anything: the
 * first whose name ends in suffix (".info"), which must be among the first
 * UNPACK_PEEK_MEMBERS members, with at most UNPACK_PEEK_MAX_BYTES (or
 * lim->max_total_bytes if lower) decompressed up to its end, within the
 * time budget; names and kinds of the members passed are checked as
 * unpack_fd does. For the integrity stage, which compares the header with
 * the .info before anything is unpacked (sigtool puts the .info second,
 * after COPYING). *out gets a NUL-terminated malloc'd copy, *outlen its
 * length. Returns 0 or -errno with a reason in err[UNPACK_ERR_LEN]: -ENOENT
 * no such member, -EFBIG over the byte bound, -EPERM, -EBADMSG, -ETIMEDOUT
 * as unpack_fd. */
#define UNPACK_PEEK_MEMBERS   4
#define UNPACK_PEEK_MAX_BYTES (4ull << 20)
int unpack_peek(int fd, off_t offset, const char *suffix, const struct unpack_limits *lim,
		char **out, size_t *outlen, char *err);

/* unpack_known_type: whether name (a bare file name) is a member libclamav
 * reads from a container: a signature database by its extension, compared
 * without regard to case as libclamav does (the CLI_DBEXT list of
 * libclamav/readdb.h: .db .hdb .hdu .hsb .hsu .mdb .mdu .msb .msu .imp .fp
 * .sfp .ign .ign2 .ndb .ndu .sdb .ldb .ldu .idb .cdb .crb .cat .cbc .ftm .cfg
 * .pdb .gdb .wdb .zmd .rmd .ioc .pwdb .yar .yara), the container's .info, or
 * COPYING (which libclamav skips). Nested containers (.cvd .cld .cud) are
 * not: libclamav does not read a container from inside another (it would
 * open the member's name as a path of its own). */
bool unpack_known_type(const char *name);

#endif
