/* cdiff: apply ClamAV's incremental definition patches (.cdiff) to an
 * unpacked database, and write the result as a .cld container.
 *
 * ==== .cdiff format ====
 *
 *   ClamAV-Diff:<version>:<script length>:<gzip data>:<dsig>
 *
 *   version        the database version the patch produces (N for the
 *                  patch N-1 -> N), decimal
 *   script length  bytes of the script once decompressed (NOT the gzip
 *                  length: test-2.cdiff says 479 for 405 bytes of gzip);
 *                  libclamav reads exactly that many script bytes
 *   gzip data      one gzip member, from right after the header to the
 *                  last ':' of the file
 *   dsig           RSA-2048 signature of SHA-256(all bytes before the last
 *                  ':') in libclamav's digit alphabet (defs/cvd.h). Its
 *                  structure is checked here (1..CDIFF_DSIG_MAX characters
 *                  of a-z A-Z 0-9 + /), not the signature: what the patches
 *                  produce is authenticated afterwards by the .info DSIG
 *                  (and the .cdiff itself by its .sign, defs/auth.h).
 *
 *   The script is lines of "<COMMAND> <args>"; arguments are separated by
 *   one space, the last one may hold spaces ("rest of the line"). Empty
 *   lines and lines starting with '#' (ClamAV's "#LSIZE n" buffer hint)
 *   are skipped; trailing CR is dropped.
 *
 *     OPEN <db>        start editing file <db> (need not exist yet)
 *     ADD <line>       append <line> to it (at CLOSE, after DEL/XCHG)
 *     DEL <n> <prefix> delete line n, which must start with <prefix>
 *     XCHG <n> <old> <new line>
 *                      replace line n, which must start with the single
 *                      word <old>, by <new line>
 *     CLOSE            apply the open file's edits: DEL and XCHG refer to
 *                      the line numbers of the file as it was at OPEN (in
 *                      any order; each line at most once); then the ADD
 *                      lines are appended, each with LF (to the bytes as
 *                      they are: a last line without LF is continued, as
 *                      libclamav does)
 *     MOVE <src> <dst> <start> <sprefix> <end> <eprefix>
 *                      (no file open) move lines start..end (inclusive) of
 *                      src to the end of dst (created if missing); line
 *                      start must begin with <sprefix>, line end with
 *                      <eprefix>
 *     UNLINK <db>      (no file open) remove file <db>, which must exist
 *
 *   Semantics as libclamav's shared/cdiff.c (ClamAV 0.9x-0.104) and
 *   libclamav_rust/src/cdiff.rs (0.105+), with stricter checks: a
 *   duplicate line number, an extra argument, a line number out of range
 *   or a missing file are refused instead of being left to chance.
 *
 * ==== Safety ====
 *
 *   File names (OPEN, MOVE, UNLINK) must be member names defs/unpack.c
 *   accepts (1..100 bytes of [A-Za-z0-9._-], not starting with '.': no '/',
 *   no ".."), of a type libclamav loads (unpack_known_type), and belong to
 *   the database: "COPYING" or "<dbname>.<ext>". Anything else is -EPERM.
 *   Every file is opened with openat(dirfd, O_NOFOLLOW): nothing outside
 *   dirfd is read or written. CLOSE and MOVE edit a file in memory (at
 *   most UNPACK_DEFAULT_MAX_MEMBER bytes, -EFBIG), write the result to a
 *   temporary file in dirfd (".cdiff-*", a name no member can have) and
 *   rename it over the original: a failure leaves every file whole (as
 *   before the command or as after it) and no temporary file behind.
 *   A failed cdiff_apply may still have applied earlier commands of the
 *   script: the caller discards the directory.
 *
 * Errors: 0 or -errno; err (char[CDIFF_ERR_LEN], may be NULL) gets one line
 * naming the script line and command, e.g. "cdiff line 4: XCHG 4: line 4
 * of test.info does not start with 'DSIG:SIpZwpONrJh'". */
#ifndef SE_UPDATER_CDIFF_H
#define SE_UPDATER_CDIFF_H

#include <stdint.h>

#include "defs/cvd.h"

#define CDIFF_ERR_LEN	 512
#define CDIFF_MAGIC	 "ClamAV-Diff:"
#define CDIFF_SCRIPT_MAX (64u << 20) /* decompressed script; and the .cdiff itself */
#define CDIFF_LINE_MAX	 (10u << 20) /* one script line; libclamav's #LSIZE maximum */
#define CDIFF_DSIG_MAX	 350	     /* libclamav reads the last 350 bytes for it */

struct cdiff_stats {
	uint32_t version;	      /* header: the version the patch produces */
	uint32_t script_bytes;	      /* decompressed script */
	unsigned int commands;	      /* commands executed */
	unsigned int files_written;   /* CLOSEs that changed a file, MOVE counts 2 */
	unsigned int files_unlinked;  /* UNLINK */
	unsigned int lines_added;     /* ADD */
	unsigned int lines_deleted;   /* DEL */
	unsigned int lines_exchanged; /* XCHG */
	unsigned int lines_moved;     /* MOVE */
};

/* cdiff_read_header: read the "ClamAV-Diff:<version>:<length>:" header of
 * the .cdiff open at fd (pread from offset 0; the fd's offset does not
 * move) and store the version the patch produces in *version (>= 1).
 * Nothing else of the file is checked. Returns 0, -EBADMSG (malformed or
 * truncated header) or the read error, with err. */
int cdiff_read_header(int fd, uint32_t *version, char *err);

/* cdiff_apply: apply the .cdiff open at cdiff_fd (a regular file of at
 * most CDIFF_SCRIPT_MAX bytes, read from offset 0: its offset moves) to the
 * unpacked database in the directory dirfd (files named as the container's
 * tar members: COPYING, <dbname>.info, <dbname>.hdb, ...). dbname: the
 * database name, e.g. "daily". The whole file is checked (header, gzip
 * data with CRC, script length, trailing ":<dsig>") and decompressed
 * before the first command runs. The caller checks afterwards that the
 * result is the version it expects (line 1 of <dbname>.info) and
 * authentic (cld_write, then the validator). st (may be NULL) is zeroed,
 * then filled as far as the script got. Returns 0 or -errno with err:
 *   -EBADMSG  malformed file or script, bad gzip, unknown command, a
 *             command out of place (ADD without OPEN, ...), a line number
 *             out of range, a prefix that does not match, a missing file:
 *             the patch does not fit this database
 *   -EPERM    a file name refused by the rules above
 *   -EFBIG    the file, script or a script line over its limit
 *   -EINVAL   bad arguments;  -ENOMEM;  or the -errno of a read or write */
int cdiff_apply(int cdiff_fd, int dirfd, const char *dbname, struct cdiff_stats *st, char *err);

/* cld_write: write the unpacked database in dirfd as a .cld to outfd (from
 * its current offset; not fsynced: the caller publishes it), as freshclam
 * does: a header that is the first line of <dbname>.info padded with
 * spaces to CVD_HEADER_LEN bytes (MD5 and signature "X"), then an
 * uncompressed v7 tar (mode 0644, uid/gid 0, mtime 0) of COPYING,
 * <dbname>.info and every member the .info lists, in its order. Without a
 * COPYING the tar is gzip-compressed instead, since libclamav reads a
 * payload not starting with "COPYING" as gzip. Checked first: the .info
 * parses as a .cld's (DSIG line required), its first line as a header,
 * every listed member is a regular file, and dirfd holds nothing else.
 * Sizes and SHA-256 are not compared with the .info here: libclamav and
 * the validator do, with the .info's signature. hdr_out (may be NULL)
 * gets the header written. Returns 0 or -errno with err
 * (char[CDIFF_ERR_LEN]):
 *   -ENOENT   <dbname>.info or a member it lists is missing
 *   -EBADMSG  a malformed .info or header line, a file in dirfd the .info
 *             does not list, or a member that is not a regular file
 *   -EINVAL   bad arguments;  -ENOMEM;  -EIO (libarchive);  or the -errno
 *             of a read or write */
int cld_write(int dirfd, const char *dbname, int outfd, struct cvd_header *hdr_out, char *err);

#endif
