/* policy: the arithmetic of definition updates (see policy.h). */
#include "updater/policy.h"
#include "common/util.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

/* ---- versions ---- */

enum upd_verdict upd_compare(uint32_t local, uint32_t remote)
{
	if (remote == local)
		return UPD_UP_TO_DATE;
	return remote > local ? UPD_NEWER : UPD_STALE;
}

const char *upd_verdict_name(enum upd_verdict v)
{
	static const char *const names[] = {
		[UPD_UP_TO_DATE] = "up to date",
		[UPD_NEWER] = "newer",
		[UPD_STALE] = "stale mirror",
	};

	return (unsigned int)v < SE_ARRAY_SIZE(names) ? names[v] : "?";
}

int upd_plan(uint32_t local, uint32_t remote, bool mirror_has_cdiffs, unsigned int max_cdiffs,
	     struct upd_plan *out)
{
	memset(out, 0, sizeof(*out));
	if (upd_compare(local, remote) != UPD_NEWER)
		return -EINVAL;
	if (!max_cdiffs)
		max_cdiffs = UPD_MAX_CDIFFS;
	out->from = local;
	out->to = remote;
	out->incremental = local > 0 && mirror_has_cdiffs && remote - local <= max_cdiffs;
	out->ncdiffs = out->incremental ? remote - local : 0;
	return 0;
}

/* ---- mirrors ---- */

static void set_err(char *err, const char *what, const char *why)
{
	if (err)
		snprintf(err, 256, "mirror '%.120s': %s", what, why);
}

/* The mirror value v as a URL without a trailing '/', or a reason. */
static const char *normalise(const char *v, char *url, size_t len)
{
	static const char *const schemes[] = {"http://", "https://", "file://"};
	const char *rest = NULL, *host;
	size_t n;

	if (!*v)
		return "empty";
	for (const char *p = v; *p; p++)
		if (isspace((unsigned char)*p) || iscntrl((unsigned char)*p))
			return "contains white space or control characters";
	if (strpbrk(v, "?#"))
		return "a query or fragment is not a mirror";
	for (size_t i = 0; i < SE_ARRAY_SIZE(schemes); i++)
		if (!strncmp(v, schemes[i], strlen(schemes[i])))
			rest = v + strlen(schemes[i]);
	if (!rest && strstr(v, "://"))
		return "scheme not supported (http://, https://, file:// or a host name)";
	n = (size_t)snprintf(url, len, "%s%s", rest ? "" : "https://", v);
	if (n >= len)
		return "too long";
	host = strstr(url, "://") + 3;
	while (url + n > host && url[n - 1] == '/')
		url[--n] = '\0';
	if (!strncmp(url, "file://", 7)) {
		/* file:///dir: an absolute path, no host */
		if (host[0] != '/' || !host[1])
			return "file:// needs an absolute directory (file:///srv/mirror)";
	} else if (!*host || *host == '/' || *host == ':') {
		return "no host";
	}
	return NULL;
}

static int add_list(struct upd_mirrors *out, const char *const *vals, bool private_mirror,
		    char *err)
{
	char url[UPD_URL_MAX];
	const char *why;

	for (size_t i = 0; vals && vals[i]; i++) {
		bool dup = false;

		why = normalise(vals[i], url, sizeof(url));
		if (why) {
			set_err(err, vals[i], why);
			return -EINVAL;
		}
		for (size_t j = 0; j < out->n && !dup; j++)
			dup = !strcmp(out->v[j].url, url);
		if (dup)
			continue;
		if (out->n == UPD_MAX_MIRRORS) {
			set_err(err, vals[i], "too many mirrors (at most 16)");
			return -E2BIG;
		}
		util_strlcpy(out->v[out->n].url, url, sizeof(out->v[out->n].url));
		out->v[out->n].private_mirror = private_mirror;
		out->n++;
	}
	return 0;
}

int upd_mirrors_build(const char *const *private_mirrors, const char *const *database_mirrors,
		      struct upd_mirrors *out, char *err)
{
	int r;

	memset(out, 0, sizeof(*out));
	r = add_list(out, private_mirrors, true, err);
	r = r ?: add_list(out, database_mirrors, false, err);
	if (r)
		return r;
	if (!out->n) {
		if (err)
			snprintf(err, 256,
				 "no mirror configured (DatabaseMirror or PrivateMirror)");
		return -ENOENT;
	}
	return 0;
}

/* ---- randomness ---- */

uint64_t upd_rand(uint64_t *seed)
{
	uint64_t z = (*seed += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* A value uniform in [0, n] (n small: the bias of % is negligible). */
static uint64_t rand_upto(uint64_t *seed, uint64_t n)
{
	return upd_rand(seed) % (n + 1);
}

/* ---- scheduling ---- */

uint64_t upd_next_check_ms(uint64_t now_ms, unsigned int checks, uint64_t *seed)
{
	uint64_t interval, quarter;

	if (!checks)
		return 0;
	interval = 86400000ull / checks;
	quarter = interval / 4;
	return now_ms + interval - quarter + rand_upto(seed, 2 * quarter);
}

/* ---- failures and back-off ---- */

uint64_t upd_backoff_fail(struct upd_backoff *b, enum upd_failure kind, uint64_t now_ms,
			  uint64_t retry_after_s, uint64_t *seed)
{
	uint64_t wait;

	b->failures++;
	b->last = kind;
	switch (kind) {
	case UPD_FAIL_RATE_LIMIT:
		wait = retry_after_s ? retry_after_s : UPD_RATE_LIMIT_S;
		if (wait > UPD_RETRY_AFTER_MAX)
			wait = UPD_RETRY_AFTER_MAX;
		break;
	case UPD_FAIL_FORBIDDEN:
		wait = UPD_FORBIDDEN_S;
		break;
	case UPD_FAIL_STALE:
		wait = UPD_BACKOFF_BASE_S;
		break;
	default: {
		unsigned int shift = b->failures - 1 < 16 ? b->failures - 1 : 16;

		wait = (uint64_t)UPD_BACKOFF_BASE_S << shift;
		if (wait > UPD_BACKOFF_MAX_S)
			wait = UPD_BACKOFF_MAX_S;
		wait += rand_upto(seed, wait / 10);
		break;
	}
	}
	b->not_before_ms = now_ms + wait * 1000;
	return wait;
}

void upd_backoff_ok(struct upd_backoff *b)
{
	memset(b, 0, sizeof(*b));
}

bool upd_backoff_ready(const struct upd_backoff *b, uint64_t now_ms)
{
	return now_ms >= b->not_before_ms;
}

const char *upd_failure_name(enum upd_failure f)
{
	static const char *const names[] = {
		[UPD_FAIL_NETWORK] = "network",
		[UPD_FAIL_BAD_DATA] = "bad data",
		[UPD_FAIL_STALE] = "stale mirror",
		[UPD_FAIL_RATE_LIMIT] = "rate limited (429)",
		[UPD_FAIL_FORBIDDEN] = "forbidden (403)",
	};

	return (unsigned int)f < SE_ARRAY_SIZE(names) ? names[f] : "?";
}
