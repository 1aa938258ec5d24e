/* fetch: see fetch.h. */
#include "updater/fetch.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/util.h"
#include "defs/cvd.h"
#include "scanengine/version.h"

#define RETRY_PAUSE_S 1

struct sink {
	int fd;
	unsigned int receive_timeout_s; /* 0: none */
	uint64_t last_progress_ms;	/* when the last byte came */
	bool stalled;
	uint64_t got;	/* this try */
	uint64_t limit; /* stop after this many (head_only), 0: none */
	uint64_t max;	/* refuse past this many, 0: none */
	bool too_big;
	int werr; /* -errno of a failed write */
};

static size_t on_data(char *p, size_t size, size_t n, void *arg)
{
	struct sink *k = arg;
	size_t len = size * n, take = len;

	if (k->limit && k->got + take > k->limit)
		take = (size_t)(k->limit - k->got);
	if (k->max && k->got + take > k->max) {
		k->too_big = true;
		return 0;
	}
	if (take) {
		int r = util_write_all(k->fd, p, take);

		if (r < 0) {
			k->werr = r;
			return 0;
		}
	}
	k->got += take;
	k->last_progress_ms = util_now_ms();
	/* a server that ignored the Range header: enough is enough */
	return take < len ? 0 : len;
}

/* err = "<url>: <prefix><what>"; returns r. */
/* libcurl calls this about once a second: ReceiveTimeout is "no byte for
 * that long", from the request on (connecting has ConnectTimeout). */
static int on_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
		       curl_off_t ulnow)
{
	struct sink *k = arg;

	(void)dltotal;
	(void)dlnow;
	(void)ultotal;
	(void)ulnow;
	if (k->receive_timeout_s &&
	    util_now_ms() - k->last_progress_ms > k->receive_timeout_s * 1000ULL) {
		k->stalled = true;
		return 1;
	}
	return 0;
}

static int fail2(char *err, int r, const char *url, const char *prefix, const char *what)
{
	if (err)
		snprintf(err, FETCH_ERR_LEN, "%.300s: %s%.180s", url, prefix, what);
	return r;
}

static int fail(char *err, int r, const char *url, const char *what)
{
	return fail2(err, r, url, "", what);
}

/* file:// */
static int fetch_file(const char *url, int outfd, bool head_only, uint64_t max_bytes,
		      struct fetch_result *r, char *err)
{
	const char *path = url + strlen("file://");
	char buf[65536];
	int fd, ret = 0;

	r->attempts = 1;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		ret = -errno;
		r->status = ret == -ENOENT ? 404 : 0;
		r->kind = ret == -ENOENT ? UPD_FAIL_BAD_DATA : UPD_FAIL_NETWORK;
		return fail(err, ret == -ENOENT ? -ENOENT : -EIO, url, strerror(-ret));
	}
	for (;;) {
		size_t want = sizeof(buf);
		ssize_t n;

		if (head_only)
			want = (size_t)SE_MIN((uint64_t)want, CVD_HEADER_LEN - r->bytes);
		if (!want)
			break;
		n = read(fd, buf, want);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			ret = fail2(err, -EIO, url, "read: ", strerror(errno));
			r->kind = UPD_FAIL_NETWORK;
			goto out;
		}
		if (!n)
			break;
		if (max_bytes && r->bytes + (uint64_t)n > max_bytes) {
			ret = fail(err, -EFBIG, url, "larger than the limit for a database");
			r->kind = UPD_FAIL_BAD_DATA;
			goto out;
		}
		ret = util_write_all(outfd, buf, (size_t)n);
		if (ret < 0) {
			fail2(err, ret, url, "cannot store it: ", strerror(-ret));
			r->kind = UPD_FAIL_NETWORK;
			goto out;
		}
		r->bytes += (uint64_t)n;
	}
	r->status = head_only ? 206 : 200;
out:
	close(fd);
	return ret;
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

static void curl_init(void)
{
	curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* One try over HTTP(S). Returns 0, errno (positive: a network failure
 * worth another try) or -errno (final), with err and r set. */
static int http_try(CURL *c, const char *url, struct sink *k, struct fetch_result *r, char *err)
{
	char cerr[CURL_ERROR_SIZE] = "";
	curl_off_t ra = 0;
	CURLcode cc;
	long st = 0;

	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, cerr);
	cc = curl_easy_perform(c);
	r->bytes += k->got;
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &st);
	r->status = st;
	if (k->werr)
		return fail2(err, k->werr, url, "cannot store it: ", strerror(-k->werr));
	if (k->too_big) {
		r->kind = UPD_FAIL_BAD_DATA;
		return fail(err, -EFBIG, url, "larger than the limit for a database");
	}
	/* cut off on purpose after the header (head_only) */
	if (cc == CURLE_WRITE_ERROR && k->limit && k->got == k->limit)
		cc = CURLE_OK;
	if (cc != CURLE_OK) {
		const char *why = cerr[0] ? cerr : curl_easy_strerror(cc);

		r->kind = UPD_FAIL_NETWORK;
		if (k->stalled) {
			char what[64];

			snprintf(what, sizeof(what), "nothing received for %u s (ReceiveTimeout)",
				 k->receive_timeout_s);
			fail2(err, 0, url, "timed out: ", what);
			return ETIMEDOUT;
		}
		if (cc == CURLE_OPERATION_TIMEDOUT) {
			fail2(err, 0, url, "timed out: ", why);
			return ETIMEDOUT;
		}
		if (cc == CURLE_COULDNT_CONNECT || cc == CURLE_COULDNT_RESOLVE_HOST ||
		    cc == CURLE_COULDNT_RESOLVE_PROXY) {
			fail2(err, 0, url, "cannot connect: ", why);
			return ECONNREFUSED;
		}
		fail2(err, 0, url, "transfer failed: ", why);
		return EIO;
	}
	if (st == 200 || st == 206)
		return 0;
	if (curl_easy_getinfo(c, CURLINFO_RETRY_AFTER, &ra) == CURLE_OK && ra > 0)
		r->retry_after_s = (uint64_t)ra;
	if (st == 404 || st == 410) {
		r->kind = UPD_FAIL_BAD_DATA;
		return fail(err, -ENOENT, url, st == 404 ? "not found (404)" : "gone (410)");
	}
	if (st == 429) {
		r->kind = UPD_FAIL_RATE_LIMIT;
		return fail(err, -EBUSY, url, "rate limited (429)");
	}
	if (st == 407) {
		r->kind = UPD_FAIL_NETWORK;
		return fail(err, -EACCES, url,
			    "proxy authentication required (407): check HTTPProxyUsername and "
			    "HTTPProxyPassword");
	}
	if (st == 403) {
		r->kind = UPD_FAIL_FORBIDDEN;
		return fail(err, -EACCES, url, "forbidden (403)");
	}
	if (st >= 500) {
		char what[40];

		snprintf(what, sizeof(what), "server error %d", (int)st);
		r->kind = UPD_FAIL_NETWORK;
		fail(err, 0, url, what);
		return EIO;
	}
	{
		char what[48];

		snprintf(what, sizeof(what), "unexpected HTTP status %ld", st);
		r->kind = UPD_FAIL_BAD_DATA;
		return fail(err, -EPROTO, url, what);
	}
}

static void http_setup(CURL *c, const struct fetch_opts *o, const char *url, bool head_only,
		       struct sink *k)
{
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
	curl_easy_setopt(c, CURLOPT_MAXREDIRS, 5L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_USERAGENT, "scanengine/" SCANENGINE_VERSION);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, (long)o->connect_timeout_s);
	k->receive_timeout_s = o->receive_timeout_s;
	curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(c, CURLOPT_XFERINFODATA, k);
	curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
	if (o->proxy_server) {
		curl_easy_setopt(c, CURLOPT_PROXY, o->proxy_server);
		if (o->proxy_port)
			curl_easy_setopt(c, CURLOPT_PROXYPORT, (long)o->proxy_port);
		if (o->proxy_username)
			curl_easy_setopt(c, CURLOPT_PROXYUSERNAME, o->proxy_username);
		if (o->proxy_password)
			curl_easy_setopt(c, CURLOPT_PROXYPASSWORD, o->proxy_password);
	}
	if (head_only)
		curl_easy_setopt(c, CURLOPT_RANGE, "0-511");
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, k);
}

int fetch_url(const struct fetch_opts *o, const char *url, int outfd, bool head_only,
	      uint64_t max_bytes, struct fetch_result *r, char *err)
{
	struct sink k = {.fd = outfd, .limit = head_only ? CVD_HEADER_LEN : 0, .max = max_bytes};
	CURL *c;
	int ret = -EIO;

	memset(r, 0, sizeof(*r));
	if (err)
		err[0] = '\0';
	if (!strncmp(url, "file://", 7))
		return fetch_file(url, outfd, head_only, max_bytes, r, err);
	if (strncmp(url, "http://", 7) && strncmp(url, "https://", 8)) {
		r->kind = UPD_FAIL_BAD_DATA;
		return fail(err, -EINVAL, url, "not an http, https or file URL");
	}
	pthread_once(&curl_once, curl_init);
	c = curl_init_rc == CURLE_OK ? curl_easy_init() : NULL;
	if (!c) {
		r->kind = UPD_FAIL_NETWORK;
		return fail(err, -ENOMEM, url, "cannot set up libcurl");
	}
	http_setup(c, o, url, head_only, &k);
	for (unsigned int i = 0; i < SE_MAX(o->max_attempts, 1u); i++) {
		if (i) {
			sleep(RETRY_PAUSE_S);
			if (ftruncate(outfd, 0) < 0 || lseek(outfd, 0, SEEK_SET) < 0) {
				ret = fail2(err, -errno, url, "cannot store it: ", strerror(errno));
				break;
			}
		}
		k.got = 0;
		k.stalled = false;
		k.last_progress_ms = util_now_ms();
		r->attempts++;
		ret = http_try(c, url, &k, r, err);
		if (ret <= 0)
			break;
	}
	if (ret > 0)
		ret = -ret; /* out of tries: the last one's reason */
	curl_easy_cleanup(c);
	return ret;
}
