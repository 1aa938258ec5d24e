/* cvd: parsers and writers of ClamAV's definition container formats —
 * the 512-byte CVD header, the .info member listing inside the container
 * and the ClamAV 1.5 external ".sign" signature file — plus the payload MD5
 * of the integrity stage (DESIGN.md section 4, stages 1-3).
 *
 * Pure: no file system access (except reading the fd it is given), no
 * global state, no logging. Every input is bounded (CVD_*_MAX below);
 * malformed or truncated input is refused with a one-line reason, never
 * read past its length. Signature *verification* is not done here: this
 * module says exactly which bytes are signed, by what, so that the
 * authenticity stage and the definitions builder can do it.
 *
 * What follows was established from libclamav 1.4.6 (the one linked here),
 * ClamAV 1.5 (libclamav/cvd.c, readdb.c cli_loadinfo, dsig.c,
 * libclamav_rust/src/cvd.rs + codesign.rs, clamav-signature-util
 * digital_sig.rs), sigtool (build, writeinfo), freshclam (buildcld), and by
 * inspecting the genuine files in testdata/clamav/ (sigtool --info,
 * --unpack, --build --unsigned).
 *
 * ==== 1. Container (.cvd, .cld, .cud) ====
 *
 *   offset 0    512-byte header (text, section 2)
 *   offset 512  payload to end of file: a tar archive, gzip-compressed
 *               (.cvd, .cud: always; .cld: only with freshclam's
 *               CompressLocalDatabase) or plain (.cld by default).
 *               libclamav tells them apart by the first 7 payload bytes:
 *               "COPYING" = plain tar, anything else = gzip. The payload
 *               must therefore have at least 7 bytes.
 *
 *   Tar members: top level only (a '/' in a name is refused), type '0' or
 *   NUL only (directories and anything else refused), names up to 100
 *   bytes. First member is COPYING (not listed in .info), then
 *   <db>.info, then the signature files (<db>.ndb, .ldb, .hdb, ... or for
 *   bytecode: NNNNNN.cbc and last.hdb). Real CVDs carry mode 0, uid/gid 0,
 *   mtime 0.
 *
 *   .cvd  built and signed by Talos (sigtool --build --server): header MD5
 *         and header digital signature present.
 *   .cud  sigtool --build --unsigned: header MD5 present, digital signature
 *         "X", .info without a DSIG line. libclamav loads it with
 *         CL_DB_UNSIGNED and checks no signature at all.
 *   .cld  freshclam's local copy after applying .cdiff patches: header =
 *         the .info's first line (MD5 and signature both "X") padded with
 *         spaces to 512 bytes; the .info inside keeps its DSIG line.
 *         libclamav checks neither header MD5 nor signature of a .cld, only
 *         the .info DSIG.
 *
 * ==== 2. Header (first 512 bytes) ====
 *
 *   ClamAV-VDB:<time>:<version>:<sigs>:<flevel>:<md5>:<dsig>:<builder>:<stime>
 *   then padding with spaces to exactly 512 bytes (no NUL, no newline).
 *
 *   Fields are numbered from 0 as libclamav's cli_strtok counts them, and
 *   error messages use these numbers:
 *     0 magic        "ClamAV-VDB"
 *     1 build time   strftime "%d %b %Y %H-%M %z" in the C locale, e.g.
 *                    "22 Jun 2021 14-58 -0400" (':' is not allowed, hence
 *                    "14-58"); at most 31 characters (sigtool's buffer).
 *                    Informational only; not parsed by libclamav.
 *     2 version      decimal, u32
 *     3 sigs         decimal, u32: signatures libclamav loads from it
 *     4 flevel       decimal, u32: minimum functionality level
 *     5 md5          32 lower-case hex digits = MD5 of the payload (bytes
 *                    512..EOF, i.e. of the .tar.gz as stored), or "X"
 *     6 dsig         "X" or the legacy header signature: RSA over the 16
 *                    raw MD5 bytes with Talos' 1024-bit CVD key (textbook
 *                    RSA, no padding: dsig^e mod n == MD5 as a big-endian
 *                    integer), written as a little-endian base-64 number
 *                    (least significant 6 bits first) in libclamav's own
 *                    digit alphabet "a-z A-Z 0-9 + /" (value 0 = 'a': NOT
 *                    RFC 4648 base64). At most 171 digits (1024/6); real
 *                    files have exactly 171. libclamav: cli_versig().
 *     7 builder      sigtool's SIGNDUSER: 1-32 non-blank characters
 *     8 stime        build time in seconds since the epoch, decimal, u32
 *
 *   What libclamav accepts, and what this parser accepts:
 *   - 1.4 (cl_cvdparse) splits with cli_strtok, which merges consecutive
 *     ':' (an empty field vanishes and shifts the rest), reads numbers with
 *     atoi (accepts " 12", "12abc", overflow), ignores fields after 8,
 *     stops at the first NUL, and accepts 8 fields (stime 0: "old format").
 *     Checked with sigtool 1.4.6 on altered copies of test-1.cvd: NUL
 *     padding, a 10th field and garbage after stime still verify; an
 *     upper-case MD5 does not; 8 fields fail later, against the .info.
 *   - 1.5 (cvd.rs) splits the 512 bytes on every ':', parses numbers as
 *     u32 and field 8 after trimming trailing white space: extra fields,
 *     garbage or NUL padding after stime, or a missing field 8 are refused.
 *     A field 5 that is not 32 characters means "no MD5"; a field 6 of at
 *     most one character means "no signature".
 *   - Here: exactly 9 non-empty fields; fields 2, 3, 4, 8 plain decimal
 *     without sign, blanks or leading zeros, <= 4294967295; field 5 "X" or
 *     32 lower-case hex digits (libclamav compares it as a string against
 *     the lower-case MD5 it computes); field 6 "X" or 2-171 digits of the
 *     alphabet above; header text printable ASCII; padding after field 8
 *     only white space (' ', '\t', '\r', '\n': both versions trim it),
 *     never NUL. sigtool and freshclam always produce such headers.
 *
 * ==== 3. .info (member <db>.info inside the payload) ====
 *
 *   Text, lines ending in LF:
 *     line 1   the header fields again, md5 and dsig written as "X" (sigtool
 *              writes .info before the tarball exists):
 *              ClamAV-VDB:22 Jun 2021 14-58 -0400:1:0:81:X:X:micasnyd:1624388302
 *     then     one line per signature file member:
 *              <name>:<size>:<sha256>
 *              name = tar member name; size = decimal byte count;
 *              sha256 = 64 hex digits (sigtool writes lower case,
 *              libclamav also takes upper). Order: sigtool's order, not
 *              sorted. COPYING and the .info itself are not listed.
 *     last     (.cvd, .cld) DSIG:<sig>
 *              sig = RSA-2048 signature (Talos' .info key, a PSS-style
 *              encoding: MGF1-SHA256, 32-byte salt, trailer 0xbc) of
 *              SHA-256(every byte of the .info before "DSIG:", i.e. the
 *              header line and all member lines with their LFs), written
 *              in the same little-endian digit alphabet as the header
 *              dsig; at most 342 digits (2048/6), real ones have 341 or 342.
 *              libclamav: cli_loadinfo() + cli_versig2().
 *              (.cud) no DSIG line: libclamav loads .cud .info files with
 *              CL_DB_UNSIGNED, where a DSIG line is read as a malformed
 *              member line and refused.
 *   libclamav then requires: version, sigs, flevel and stime of line 1 equal
 *   to the container header's ("Corrupted CVD header" otherwise), every
 *   signature-file member of the tar to be listed, and its size and SHA-256
 *   to match. It stops reading at the DSIG line.
 *   Here additionally: header line first and only once, at least one
 *   member, no empty lines, no CR or other control bytes, every line
 *   (DSIG included) LF-terminated, DSIG last, member names unique, 1-100
 *   printable characters without '/', '\\', ':' or blanks and not "." or
 *   "..", sizes u32.
 *
 * ==== 4. .sign (ClamAV 1.5 external signature, "<db>-<version>.cvd.sign",
 *      also "<db>-<version>.cdiff.sign") ====
 *
 *   #clamsign-1.0
 *   <min_flevel>:[<max_flevel>]:pkcs7-pem:<base64 DER>
 *   ...
 *
 *   Line 1 exactly "#clamsign-1.0". Every further non-empty line not
 *   starting with '#' is one signature: min_flevel decimal (required),
 *   max_flevel decimal or empty (no upper bound), format "pkcs7-pem", then
 *   the body of a PEM "PKCS7" block on one line: standard RFC 4648 base64
 *   with '=' padding of the DER of a PKCS#7 SignedData, *detached*, over
 *   the whole signed file (all bytes of the .cvd or .cdiff, header
 *   included). Real files: one line "230::pkcs7-pem:MIIP...", SHA-256
 *   digest, signer "ClamAV TEST CVD Signing Cert" (or the production chain
 *   to "Cisco Software Identity Root CA"), intermediate included in the
 *   PKCS#7's certificates. ClamAV 1.5 verifies with PKCS7_verify(DETACHED |
 *   BINARY | NOCRL) against the *.crt / *.pem of its certs directory,
 *   using the first line (file order) whose [min, max] contains
 *   cl_retflevel(): if that signature does not verify, the file fails (the
 *   next line is tried only when the signers cannot even be read). A line
 *   it cannot parse (unknown format, bad base64, not PKCS#7) fails the
 *   whole file, wherever it is. Lines are trimmed; blank and
 *   '#' lines are skipped (sigtool --append leaves a blank line between
 *   entries). Note that the test files say 230 (ClamAV 1.5's level) while
 *   libclamav 1.4.6 reports 216: which f-level to select with is the
 *   caller's decision.
 *   Here additionally: exactly 4 fields, min <= max, the DER must be one
 *   complete detached PKCS#7 SignedData with nothing after it, at most
 *   CVD_SIGN_MAX_ENTRIES lines; CRLF line ends are accepted as ClamAV does.
 *
 * ==== 5. .cdiff (not parsed here) ====
 *   A gzip-compressed update script followed by ":<dsig>" (the header
 *   signature scheme over the script's MD5). Its .sign is a section 4 file
 *   over the whole .cdiff.
 *
 * Errors: every function returns 0 or -errno: -EBADMSG for anything wrong
 * with the data (malformed, truncated, over a limit, mismatch), -EINVAL for
 * bad arguments (including a struct that cannot be written), -ENOMEM,
 * -ENOTSUP if OpenSSL refuses MD5 (FIPS mode), or the read error. err
 * (char[CVD_ERR_LEN], may be NULL) then gets one line naming the part and
 * the problem, e.g. "header field 4 (functionality level): 'x99' is not a
 * number". Bytes of the input quoted in messages are escaped and cut.
 */
#ifndef SE_DEFS_CVD_H
#define SE_DEFS_CVD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CVD_ERR_LEN	     256
#define CVD_HEADER_LEN	     512
#define CVD_MAGIC	     "ClamAV-VDB"
#define CVD_TIME_MAX	     31 /* sigtool's strftime buffer is 32 */
#define CVD_BUILDER_MAX	     32 /* sigtool reads it with %32s */
#define CVD_MD5_LEN	     16
#define CVD_SHA256_LEN	     32
#define CVD_DSIG_MAX	     171	   /* digits of a 1024-bit number, 6 bits each */
#define CVD_INFO_DSIG_MAX    342	   /* digits of a 2048-bit number */
#define CVD_INFO_MAX_SIZE    (256u * 1024) /* real: 0.5-2 KiB; daily ~ 5 KiB */
#define CVD_INFO_MAX_ENTRIES 1024
#define CVD_INFO_LINE_MAX    1024 /* longest legitimate: header <= 511, DSIG 347 */
#define CVD_INFO_NAME_MAX    100  /* tar name field */
#define CVD_SIGN_MAX_SIZE    (1024u * 1024)
#define CVD_SIGN_MAX_ENTRIES 16
#define CVD_SIGN_DER_MAX     (64u * 1024) /* real: 3853 bytes */
#define CVD_PAYLOAD_MIN	     7		  /* libclamav reads "COPYING" or not */
#define CVD_SIGN_MAGIC	     "#clamsign-1.0"
#define CVD_SIGN_FORMAT	     "pkcs7-pem"

/* Container kind, from the file name's extension (as libclamav decides). */
enum cvd_type {
	CVD_TYPE_UNKNOWN = 0,
	CVD_TYPE_CVD,
	CVD_TYPE_CLD,
	CVD_TYPE_CUD,
};

struct cvd_header {
	char time[CVD_TIME_MAX + 1]; /* field 1, e.g. "22 Jun 2021 14-58 -0400" */
	uint32_t version;	     /* field 2 */
	uint32_t sigs;		     /* field 3 */
	uint32_t flevel;	     /* field 4 */
	bool has_md5;		     /* field 5 is not "X" */
	unsigned char md5[CVD_MD5_LEN];
	bool has_dsig;			   /* field 6 is not "X" */
	char dsig[CVD_DSIG_MAX + 1];	   /* field 6's digits */
	char builder[CVD_BUILDER_MAX + 1]; /* field 7 */
	uint32_t stime;			   /* field 8 */
};

/* cvd_type_from_name: CVD_TYPE_CVD/CLD/CUD when name ends in .cvd/.cld/.cud
 * (any case), else CVD_TYPE_UNKNOWN. */
enum cvd_type cvd_type_from_name(const char *name);

/* cvd_parse_header: parse the first CVD_HEADER_LEN bytes of buf (len may be
 * larger: a whole file can be passed) into *h (zeroed first). Section 2
 * rules. len < CVD_HEADER_LEN: -EBADMSG "truncated". Returns 0 or -errno
 * with err. */
int cvd_parse_header(const void *buf, size_t len, struct cvd_header *h, char *err);

/* cvd_format_header: write h as exactly CVD_HEADER_LEN bytes, space-padded,
 * not NUL-terminated, as sigtool does; the result parses back to *h.
 * -EINVAL (with err) when a field would not parse (bad time or builder
 * text, dsig longer than CVD_DSIG_MAX, ...) or the text exceeds 512. */
int cvd_format_header(const struct cvd_header *h, char out[CVD_HEADER_LEN], char *err);

/* cvd_header_check_type: what each container kind must carry (section 1):
 * .cvd MD5 and signature; .cud MD5 and no signature; .cld anything;
 * CVD_TYPE_UNKNOWN: -EINVAL. Returns 0 or -EBADMSG with err. */
int cvd_header_check_type(const struct cvd_header *h, enum cvd_type type, char *err);

/* ---- payload ---- */

enum cvd_payload_kind {
	CVD_PAYLOAD_GZIP = 1, /* starts with 1f 8b */
	CVD_PAYLOAD_TAR,      /* starts with "COPYING" */
};

struct cvd_payload {
	uint64_t offset; /* always CVD_HEADER_LEN */
	uint64_t length; /* bytes from offset to the end */
	enum cvd_payload_kind kind;
	unsigned char md5[CVD_MD5_LEN]; /* MD5 of those bytes */
};

/* cvd_payload_md5: buf/len is a whole container in memory. Parses the
 * header into *h, describes the payload in *p and computes its MD5.
 * -EBADMSG when the header is bad, the payload is shorter than
 * CVD_PAYLOAD_MIN or is neither gzip nor a tar starting with COPYING. Does
 * not compare the MD5 (see cvd_check_md5). */
int cvd_payload_md5(const void *buf, size_t len, struct cvd_header *h, struct cvd_payload *p,
		    char *err);

/* cvd_payload_md5_fd: the same for an open container: reads with pread
 * from offset 0 to EOF in 64 KiB blocks (the fd's offset is not moved).
 * Returns 0, -EBADMSG, or the read error (-EIO ...). */
int cvd_payload_md5_fd(int fd, struct cvd_header *h, struct cvd_payload *p, char *err);

/* cvd_check_md5: 0 when the header's field 5 equals p->md5; -EBADMSG when
 * it differs; -ENOENT when the header has no MD5 ("X"). err says which. */
int cvd_check_md5(const struct cvd_header *h, const struct cvd_payload *p, char *err);

/* ---- .info ---- */

struct cvd_info_entry {
	char name[CVD_INFO_NAME_MAX + 1];
	uint32_t size;
	unsigned char sha256[CVD_SHA256_LEN];
};

struct cvd_info {
	struct cvd_header hdr;		/* line 1 (md5, dsig normally absent: "X") */
	struct cvd_info_entry *entries; /* n_entries, in file order */
	size_t n_entries;
	bool has_dsig;
	char dsig[CVD_INFO_DSIG_MAX + 1]; /* the DSIG line's digits */
	size_t signed_len;		  /* parse: bytes of the input the DSIG covers (all
					   * before "DSIG:"); 0 without DSIG */
};

/* cvd_parse_info: parse a .info (section 3) into *out (zeroed first; on
 * failure it holds nothing to free). type: CVD_TYPE_CVD or CLD require the
 * DSIG line, CUD forbids it, UNKNOWN takes either (see has_dsig). One
 * allocation (entries); free with cvd_info_free. Returns 0 or -errno with
 * err. */
int cvd_parse_info(const char *buf, size_t len, enum cvd_type type, struct cvd_info *out,
		   char *err);

/* cvd_info_free: free what cvd_parse_info allocated and zero *info. NULL
 * and zeroed structs are fine. */
void cvd_info_free(struct cvd_info *info);

/* cvd_info_find: the entry named name, or NULL. */
const struct cvd_info_entry *cvd_info_find(const struct cvd_info *info, const char *name);

/* cvd_info_matches_header: libclamav's check of a .info against its
 * container: version, sigs, flevel and stime equal. Returns 0 or -EBADMSG
 * with err naming the first field that differs. */
int cvd_info_matches_header(const struct cvd_info *info, const struct cvd_header *h, char *err);

/* cvd_format_info: write info as a .info: header line (info->hdr, its md5
 * and dsig as "X" unless has_md5/has_dsig), the entries, then
 * "DSIG:<info->dsig>" when info->has_dsig. A builder formats without DSIG,
 * signs SHA-256 of the result, sets dsig/has_dsig and formats again (the
 * bytes before "DSIG:" are the same). *out is malloc'ed, NUL-terminated,
 * *outlen excludes the NUL; the caller frees it. -EINVAL when a field or
 * entry would not parse back (names, duplicates, counts). */
int cvd_format_info(const struct cvd_info *info, char **out, size_t *outlen, char *err);

/* ---- .sign ---- */

struct cvd_sign_entry {
	uint32_t min_flevel;
	uint32_t max_flevel; /* meaningful when has_max */
	bool has_max;	     /* false: "min::" (no upper bound) */
	unsigned char *der;  /* PKCS#7 SignedData, detached */
	size_t der_len;
	unsigned int line; /* parse: line number in the file, from 1 */
};

struct cvd_sign {
	struct cvd_sign_entry *entries; /* file order */
	size_t n_entries;
};

/* cvd_parse_sign: parse a .sign file (section 4) into *out (zeroed first;
 * on failure it holds nothing to free). Every DER is checked to be one
 * complete detached PKCS#7 SignedData (no signature check). Entries and DER
 * share one allocation; free with cvd_sign_free. Returns 0 or -errno with
 * err. */
int cvd_parse_sign(const char *buf, size_t len, struct cvd_sign *out, char *err);

/* cvd_sign_free: free what cvd_parse_sign allocated and zero *s (only for
 * parsed structs). NULL and zeroed structs are fine. */
void cvd_sign_free(struct cvd_sign *s);

/* cvd_sign_entry_applies: min_flevel <= flevel <= max_flevel (no upper
 * bound without has_max). */
bool cvd_sign_entry_applies(const struct cvd_sign_entry *e, uint32_t flevel);

/* cvd_sign_select: the first entry applying to flevel, or NULL: the one
 * ClamAV 1.5 verifies with (section 4). */
const struct cvd_sign_entry *cvd_sign_select(const struct cvd_sign *s, uint32_t flevel);

/* cvd_format_sign: write s as a .sign file: "#clamsign-1.0" then one line
 * per entry, LF line ends, as sigtool 1.5 does. Builder: fill one entry
 * with the DER of `openssl cms -sign -binary -outform DER ...` (or
 * PKCS7_sign DETACHED|BINARY) and its f-level range. *out is malloc'ed,
 * NUL-terminated, *outlen excludes the NUL; the caller frees it. -EINVAL
 * when an entry would not parse back (no entries, bad range, DER not a
 * detached PKCS#7 SignedData, DER over CVD_SIGN_DER_MAX). */
int cvd_format_sign(const struct cvd_sign *s, char **out, size_t *outlen, char *err);

#endif
