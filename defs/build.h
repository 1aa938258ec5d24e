/* build: the definitions builder behind "scanctl defs build": packs an
 * organisation's own signature files into a ClamAV .cud container that
 * libclamav loads and that passes this project's own validation stages
 * (DESIGN.md section 4), optionally with a ClamAV-1.5-style .sign file.
 *
 * What it writes (container layout in defs/cvd.h, established from sigtool
 * --build --unsigned, libclamav 1.4.6 cli_cvdload/cli_tgzload and 1.5
 * cvd.c):
 *
 *   OUT       512-byte header
 *               ClamAV-VDB:<time>:<version>:<sigs>:<flevel>:<md5>:X:<builder>:<stime>
 *             <time> is stime in UTC ("14 Nov 2023 22-13 +0000"), so the
 *             same input gives the same bytes on every machine; X = no
 *             digital signature (a .cud is unsigned); md5 = MD5 of the
 *             payload. Then the payload: a gzip'd (level 9, no timestamp)
 *             v7 tar, the header layout of real CVDs (name, mode 0644,
 *             uid/gid 0, size, mtime 0, typeflag NUL; no ustar magic, no
 *             owner names, no pax headers), of
 *               COPYING        opts->notice or a short notice naming the
 *                              database, the builder and the tool
 *               <name>.info    header line (md5 and dsig "X", as sigtool
 *                              writes it), then "<member>:<size>:<sha256>"
 *                              per signature file, no DSIG line (.cud)
 *               the signature files, under their base names: .cfg first,
 *                              then .ign/.ign2, then .ftm, then the rest in
 *                              the order given (sigtool's order: libclamav
 *                              applies an ignore entry only to signatures
 *                              loaded after it)
 *   OUT.sign  with signing options only: "#clamsign-1.0" and one line
 *             "<flevel>::pkcs7-pem:<base64 DER>", the DER a detached PKCS#7
 *             SignedData over all bytes of OUT (SHA-256, signer certificate
 *             and the chain certificates included), as `openssl cms -sign
 *             -binary -md sha256 -certfile CHAIN` or sigtool --sign make it.
 *             min_flevel is the container's f-level, so that readers at that
 *             level and above (this daemon with libclamav 1.4.6, ClamAV 1.5)
 *             select it. Without signing options an OUT.sign left from an
 *             earlier build is removed: it would no longer match OUT.
 *
 * Signature count (header field 3): what libclamav itself loads from the
 * finished container, as sigtool --build takes cl_load's count and not a
 * line count: comment lines and signatures outside the engine's f-level
 * range do not count, an .ign2 or .pwdb counts nothing, an .fp counts. To
 * get it, the container is built once with count 0 and loaded by the
 * engine module (engine_load: cl_load with CL_DB_STDOPT | CL_DB_PUA, as
 * sigtool, then cl_engine_compile) in a child process, so that a libclamav
 * crash does not take the caller down and libclamav's global state stays
 * out of it; then it is built again with the count. That load also refuses
 * what libclamav cannot parse (each file is then loaded alone to name the
 * culprit) and a set from which it loads no signature at all, so a broken
 * set fails here and not in the daemon's test load.
 *
 * Inputs are refused with a message naming the file when: the base name is
 * not 1-99 bytes of [A-Za-z0-9._-] not starting with '.' (the names
 * defs/unpack.c accepts, less one byte: libarchive's v7 writer wants a NUL
 * in the 100-byte name field), its type is not one libclamav loads
 * (unpack_known_type), it is .yar/.yara/.ioc (libclamav 1.4 reads those
 * only as plain files: from a container it skips YARA as empty and crashes
 * on OpenIOC), it is COPYING or a .info (both are written here), two files
 * share a base name (compared without regard to case), it is empty (which
 * libclamav refuses), not a regular file, or larger than
 * UNPACK_DEFAULT_MAX_MEMBER (all together: UNPACK_DEFAULT_MAX_TOTAL).
 *
 * Not done: sigtool 1.5 refuses a payload whose MD5 starts with "00" (a
 * verification bug of ClamAV 1.1-1.4 with the legacy RSA header signature);
 * a .cud has no such signature and libclamav 1.4.6 does not check a .cud's
 * MD5 at all, so such a container is written as it is.
 *
 * Publication: everything, including the signature, is made in a private
 * directory next to OUT (".<OUT base name>.XXXXXX", removed afterwards);
 * then OUT and OUT.sign are renamed into place, in that order, and the
 * directory is fsynced. A failure before that leaves OUT and OUT.sign as
 * they were; a failure to rename (or remove the stale) OUT.sign after OUT
 * was replaced removes the new OUT again, so that no container is left
 * beside a .sign that does not match it.
 *
 * Uses the engine module (in the child), OpenSSL and libarchive; no global
 * state. libclamav's messages go to the process logger (common/log.h). */
#ifndef SE_DEFS_BUILD_H
#define SE_DEFS_BUILD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define BUILD_ERR_LEN	      512
#define BUILD_MAX_FILES	      1000 /* signature files; cvd_parse_info takes 1024 entries */
#define BUILD_MEMBER_MAX      99   /* libarchive's v7 writer keeps a NUL in the name field */
#define BUILD_NAME_MAX	      94   /* "<name>.info" is a member name too */
#define BUILD_DEFAULT_BUILDER "scanctl"

struct build_opts {
	const char *name;	  /* database name: "<name>.info"; 1-94 bytes of
				   * [A-Za-z0-9._-], not starting with '.' */
	unsigned int version;	  /* header field 2, >= 1 */
	const char *const *files; /* the signature files (paths), nfiles of them */
	size_t nfiles;		  /* 1 .. BUILD_MAX_FILES */
	const char *out;	  /* container to write; must end in ".cud" */
	const char *sign_cert;	  /* PEM: signer certificate first, more certs may
				   * follow (added as chain); NULL: no .sign */
	const char *sign_key;	  /* PEM private key of sign_cert, not encrypted;
				   * given exactly when sign_cert is */
	const char *chain;	  /* PEM: intermediate certificate(s) to include, or
				   * NULL; only with sign_cert */
	const char *builder;	  /* header field 7: 1-32 printable characters, no
				   * blank or ':'; NULL: BUILD_DEFAULT_BUILDER */
	const char *notice;	  /* content of COPYING; NULL: a default notice */
	unsigned int flevel;	  /* header field 4; 0: cl_retflevel() */
	time_t stime;		  /* build time, 1 .. UINT32_MAX; 0: now. The signer
				   * certificate must be valid at this time. */
};

struct build_result {
	unsigned int sigs;    /* header field 3: signatures libclamav loads */
	unsigned int members; /* signature files packed */
	unsigned int flevel;  /* header field 4 */
	uint32_t stime;	      /* header field 8 */
	uint64_t bytes;	      /* size of OUT */
	char md5[33];	      /* header field 5: payload MD5, lower-case hex */
	bool has_sign;	      /* OUT.sign written */
};

/* build_cud: build the container described above from o and publish it at
 * o->out (and o->out + ".sign" with signing options). res (may be NULL) is
 * filled on success. Returns 0 or -errno with one line in
 * err[BUILD_ERR_LEN] (may be NULL) naming the file or option and the
 * problem:
 *   -EINVAL   bad options (version 0, bad name or builder, OUT not .cud,
 *             signing options incomplete), an input refused by the rules
 *             above, a certificate or key that cannot be parsed, a key that
 *             does not match the certificate, a certificate not valid at
 *             stime, or signature files libclamav refuses
 *   -ENODATA  libclamav loads no signature from the files
 *   -EIO      libclamav crashed loading them (also: libarchive or OpenSSL
 *             failed)
 *   -EFBIG    an input over the size limits
 *   -ENOTSUP  MD5 unavailable (OpenSSL in FIPS mode)
 *   -ENOMEM, or the -errno of a file that cannot be opened or read
 *             (-ENOENT, -EACCES, ...) or of creating, writing or renaming
 *             the output. */
int build_cud(const struct build_opts *o, struct build_result *res, char *err);

#endif
