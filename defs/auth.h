/* auth: the "authenticity" stage of definitions validation (DESIGN.md
 * section 4, stage 3). For one definitions file it decides how the file is
 * authenticated, or refuses it with a one-line reason.
 *
 * Methods, tried in this order:
 *
 *   sign      A ClamAV 1.5 ".sign" file (defs/cvd.h section 4) exists for
 *             the file: by default "<file>.sign" next to it, or the path the
 *             caller names (a mirror serves "daily-27500.cvd.sign" for
 *             daily.cvd). Its applicable entry must hold a detached PKCS#7 /
 *             CMS SignedData over every byte of the file that OpenSSL
 *             verifies against the CA certificates of CertsDirectory (every
 *             *.crt and *.pem there; the intermediates come from the
 *             signature), for any purpose (`openssl cms -verify -purpose
 *             any`: Talos' certificates are code signing certificates), no
 *             CRLs (as ClamAV 1.5: NOCRL). Exactly one signer; digest SHA-256
 *             or stronger. A .sign that exists but does not verify refuses
 *             the file, whatever else would have authenticated it: one of the
 *             two was tampered with, or the .sign is another file's.
 *
 *             Entry selection (the f-level rule). ClamAV 1.5 verifies the
 *             first line, in file order, whose [min, max] range contains
 *             its own cl_retflevel(), and fails the file when that one does
 *             not verify. Published .sign files say "230::" (230 = ClamAV
 *             1.5.0, the first release that reads .sign files), while the
 *             libclamav linked here (1.4) reports 216: by its own level no
 *             entry would apply. But the verifier here is not libclamav
 *             1.4: it is this module, which implements what ClamAV 1.5.0
 *             implements. So the level selected with is
 *             max(policy flevel, AUTH_SIGN_FLEVEL): 230 with libclamav 1.4,
 *             the engine's own level once it is 1.5 or newer (an entry
 *             reserved for newer verifiers is then what that libclamav
 *             would pick too). First applicable entry only, as ClamAV; no
 *             applicable entry refuses the file. (ClamAV 1.5 moves on to
 *             the next applicable line when it cannot even find the signer
 *             certificate of a line; here any failure of the selected line
 *             refuses the file.)
 *
 *             Verification time: the signature's signingTime attribute when
 *             present, else the current time; see verify_time() in auth.c
 *             for the rule, its reasons and its risk. The test root CA
 *             expires 2027-03-26; the test .sign files say 2025-03-29, so
 *             they keep verifying after it.
 *
 *   legacy    No .sign, and the file is an official container whose Talos
 *             signature libclamav's cl_cvdverify() accepts. What libclamav
 *             1.4 checks (libclamav/cvd.c cli_cvdload with chkonly, verified
 *             here against the real test files):
 *               .cvd  header field 5 = MD5 of the payload (bytes 512..EOF),
 *                     header field 6 = RSA-1024 signature of that MD5 by
 *                     Talos (cli_versig); then the .info member's DSIG
 *                     (RSA-2048 PSS over SHA-256, cli_versig2), the .info's
 *                     version/sigs/flevel/stime equal to the header's, and
 *                     every signature member listed in .info with its size
 *                     and SHA-256. The MD5 + RSA over it covers every byte
 *                     after the header; the .info DSIG covers every loaded
 *                     member.
 *               .cld  no header MD5 or signature (freshclam writes "X"):
 *                     only the .info DSIG, the header/.info match and the
 *                     member hashes. That still authenticates every byte
 *                     libclamav loads (members by SHA-256 under Talos'
 *                     RSA-2048 key; the header numbers equal the signed
 *                     .info line), so a .cld is accepted as legacy.
 *               .cud  header signature skipped and .info read unsigned
 *                     (CL_DB_UNSIGNED): cl_cvdverify() returns CL_SUCCESS
 *                     for any well-formed .cud. It proves nothing about
 *                     origin, so it is never called for a .cud: a .cud is
 *                     "unsigned".
 *               The type comes from the path's suffix (.cld, .cud; anything
 *               else is checked as a .cvd). And for a .cvd or .cld,
 *               cl_cvdverify() also opens the sibling .cld/.cvd in the same
 *               directory and returns CL_SUCCESS *without checking any
 *               signature of the file* when the sibling verifies and has a
 *               newer version (or the same, for a .cvd). A corrupt .cld
 *               next to a newer valid .cvd "verifies" (reproduced with
 *               libclamav 1.4.6). So cl_cvdverify() is given a path in a
 *               private directory (mkdtemp, 0700) holding only a symbolic
 *               link "auth.cvd" or "auth.cld" to /proc/self/fd/N, N being the
 *               descriptor this call opened: no sibling can exist, the type
 *               is the one decided here, and libclamav reads the very file
 *               the .sign lookup and the caller's checks saw, even if the
 *               path is replaced meanwhile. Without /proc the link points
 *               to the file's absolute path, checked to still be the same
 *               inode before and after.
 *             A .cvd or .cld whose legacy signature fails is refused; it is
 *             never accepted as unsigned.
 *
 *   unsigned  A .cud or a plain signature file (.hdb, .ndb, .ldb, ...: see
 *             unpack_known_type) without a .sign, when the policy allows
 *             unsigned definitions (AllowUnsignedDefinitions yes).
 *
 * RequireSignFile yes: anything without a valid .sign is refused, even a
 * .cvd whose legacy signature is valid and even when unsigned definitions
 * are allowed.
 *
 * A .cdiff is authenticated by its .sign only: its trailing legacy
 * signature is checked by whatever applies it, not here.
 *
 * The module reads files and CertsDirectory, calls libclamav
 * (cl_cvdverify: cl_init must have been called, see engine_global_init)
 * and OpenSSL; no global state; thread-safe as far as libclamav is. It
 * clears the OpenSSL error queue it used. libclamav's own messages about a
 * failed cl_cvdverify() go to its message callback (stderr by default);
 * the reason returned here is self-contained. */
#ifndef SE_DEFS_AUTH_H
#define SE_DEFS_AUTH_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#define AUTH_ERR_LEN	 256 /* size of err[] */
#define AUTH_SIGNER_MAX	 256 /* size of auth_result.signer */
#define AUTH_SIGN_FLEVEL 230 /* ClamAV 1.5.0: the first release that reads .sign files */
/* A signingTime up to this far ahead of our clock is clock skew between the
 * signer and this host, not a signature from the future (libclamav itself
 * tolerates a daily.cvd built up to an hour "in the future"). */
#define AUTH_CLOCK_SKEW	   3600
#define AUTH_CERT_FILE_MAX (1024u * 1024) /* one *.crt / *.pem of CertsDirectory */

enum auth_method {
	AUTH_NONE = 0, /* refused */
	AUTH_LEGACY,   /* cl_cvdverify(): Talos' header / .info signatures */
	AUTH_SIGN,     /* ClamAV 1.5 .sign file chained to CertsDirectory */
	AUTH_UNSIGNED, /* not authenticated; allowed by the policy */
};

struct auth_policy {
	const char *certs_dir; /* CertsDirectory; NULL: no .sign can verify */
	bool allow_unsigned;   /* AllowUnsignedDefinitions */
	bool require_sign;     /* RequireSignFile */
	unsigned int flevel;   /* cl_retflevel() of the linked libclamav */
	const char *tmp_dir;   /* parent of the private directory of the legacy
				* check; NULL: $TMPDIR, else /tmp */
	/* Check only the legacy signature of a .cvd/.cld (for a caller that
	 * wants to know whether the container's own Talos signature holds):
	 * no .sign is looked at, require_sign and allow_unsigned do not
	 * apply, certs_dir is not needed; any other kind of file is
	 * -EINVAL. */
	bool legacy_only;
};

struct auth_result {
	enum auth_method method;
	/* AUTH_SIGN: the signer certificate's subject, one line, OpenSSL's
	 * XN_FLAG_ONELINE form ("C = US, ..., CN = ClamAV TEST CVD Signing
	 * Cert"), control and non-ASCII bytes escaped; else "". */
	char signer[AUTH_SIGNER_MAX];
	/* AUTH_SIGN: the time the certificate chain was checked at (the
	 * signingTime or, without one, the time of the check); AUTH_LEGACY:
	 * the time of the check (the legacy check has no notion of time);
	 * else 0. */
	time_t verified_at;
	time_t signing_time;	  /* AUTH_SIGN: the signingTime attribute, or 0 */
	unsigned int sign_line;	  /* AUTH_SIGN: line of the .sign entry used */
	unsigned int sign_flevel; /* AUTH_SIGN: the f-level it was selected with */
};

/* auth_check: authenticate the definitions file at path under pol.
 * sign_path: its .sign file, or NULL to use path + ".sign" when that exists
 * (a named sign_path must exist). res (may be NULL) is zeroed, then filled
 * on success. Returns 0, or -errno with a one-line reason in
 * err[AUTH_ERR_LEN] (may be NULL) starting "authenticity: ", e.g.
 * "authenticity: test-1.cvd.sign does not verify: certificate chain: unable
 * to get local issuer certificate":
 *   -EBADMSG  a signature is there but malformed or does not verify (the
 *             .sign, or a .cvd/.cld's legacy signature), or the .sign has no
 *             entry for the f-level
 *   -EPERM    the policy refuses: unsigned and AllowUnsignedDefinitions off,
 *             no .sign and RequireSignFile on, a .cdiff without .sign
 *   -ENOKEY   a .sign is there but CertsDirectory is unset, unreadable, has
 *             no certificate or a file that is not PEM certificates
 *   -EINVAL   bad arguments, or the name is not a definitions file
 *   -ENOENT, -EACCES, -EISDIR, -EIO, ...  the file or the named .sign
 *             cannot be read;  -ENOMEM */
int auth_check(const char *path, const char *sign_path, const struct auth_policy *pol,
	       struct auth_result *res, char *err);

/* auth_method_name: "sign", "legacy", "unsigned", or "none"; never NULL. */
const char *auth_method_name(enum auth_method m);

#endif
