/* fetch: one file from a definitions mirror into a descriptor, with the
 * freshclam.conf transport settings: http:// and https:// through libcurl
 * (ConnectTimeout, ReceiveTimeout as "no progress for that long",
 * MaxAttempts tries for transient failures, the HTTPProxy* keys), and
 * file:// read directly. It reports what the updater's policy needs and
 * libfreshclam does not give: the HTTP status, the bytes that came, the
 * mirror's Retry-After, and the kind of failure (updater/policy.h).
 *
 * No global state beyond libcurl's (curl_global_init once per process,
 * done on the first call). */
#ifndef SE_UPDATER_FETCH_H
#define SE_UPDATER_FETCH_H

#include <stdbool.h>
#include <stdint.h>

#include "updater/policy.h"

#define FETCH_ERR_LEN 512

struct fetch_opts {
	unsigned int connect_timeout_s; /* ConnectTimeout (>= 1) */
	unsigned int receive_timeout_s; /* ReceiveTimeout: no byte for this long; 0: none */
	unsigned int max_attempts;	/* MaxAttempts (>= 1): tries on network failures */
	const char *proxy_server;	/* HTTPProxyServer, or NULL */
	unsigned int proxy_port;	/* HTTPProxyPort; 0: the scheme's */
	const char *proxy_username;	/* HTTPProxyUsername, or NULL */
	const char *proxy_password;	/* HTTPProxyPassword, or NULL */
};

struct fetch_result {
	long status;		/* last HTTP status (file://: 200, 206 or 404; 0: none) */
	uint64_t bytes;		/* body bytes received, all tries together */
	uint64_t retry_after_s; /* the mirror's Retry-After (429, 503), or 0 */
	unsigned int attempts;	/* tries made */
	enum upd_failure kind;	/* on failure: what policy should make of it */
};

/* fetch_url: GET url into outfd (a regular file opened for writing,
 * truncated again before each retry). head_only: only the first
 * CVD_HEADER_LEN (512) bytes, asked for with a Range request (a server
 * that ignores the range is cut off after them). max_bytes bounds the
 * body (0: no bound). Returns 0 with the body in outfd, or -errno with a
 * one-line reason naming the url in err[FETCH_ERR_LEN] and r->kind set:
 *   -ENOENT     404 or 410, or no such file:// file (kind bad data: the
 *               mirror lacks what it should have)
 *   -EBUSY      429 (rate limited; r->retry_after_s)
 *   -EACCES     403 (forbidden); or 407 from the proxy (network: a
 *               configuration problem, not the mirror's)
 *   -ETIMEDOUT  no connection or no progress within the timeouts (network)
 *   -ECONNREFUSED, -EHOSTUNREACH, -EIO  the mirror cannot be reached or
 *               the transfer broke off (network); a 5xx is -EIO too
 *   -EPROTO     another unexpected status (bad data)
 *   -EFBIG      the body is larger than max_bytes (bad data)
 *   -EINVAL     not an http, https or file URL
 * Network failures are tried again up to max_attempts times (1 s apart);
 * a status is final. */
int fetch_url(const struct fetch_opts *o, const char *url, int outfd, bool head_only,
	      uint64_t max_bytes, struct fetch_result *r, char *err);

#endif
