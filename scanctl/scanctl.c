/* scanctl: the command-line client of scanengined.
 *
 * Speaks the same clamd protocol as every other client, plus the admin
 * extensions (STATUS). Exit status: 0 ok/clean, 1 something found or a
 * scan failed (said in the output), 2 usage error or cannot connect. */
#include "common/config.h"
#include "common/util.h"
#include "scanctl/scanctl.h"
#include "scanengine/version.h"
#include "scanengine/walk.h"

#include <errno.h>
#include <getopt.h>
#include <json-c/json.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define SESSION_WINDOW 32 /* requests in flight in one IDSESSION */
#define REPLY_MAX      (PATH_MAX + 1024)

struct tally {
	unsigned long files, infected, errors;
	struct json_object *results; /* --json: array of per-file results */
};

const char *prog = "scanctl";

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: scanctl [--socket PATH | --config-file FILE] [--json] COMMAND [ARGS]\n"
		"\n"
		"Commands:\n"
		"  scan [--fdpass|--stream] [--multiscan] PATH...\n"
		"                 scan files or directories; by default the service opens\n"
		"                 the paths itself; --fdpass hands it descriptors opened\n"
		"                 here (files only this user can read), --stream sends the\n"
		"                 contents; --multiscan scans a directory on all workers\n"
		"  status         definitions, workers, queue, counters, active faults,\n"
		"                 poisoned files (root or AdminGroup)\n"
		"  faults [--history] [--reset-poison]\n"
		"                 active faults with reason and remediation; --history: the\n"
		"                 recent fault and service events; --reset-poison: scan\n"
		"                 files that crashed the scanner again (root or AdminGroup)\n"
		"  ping           check that the service answers\n"
		"  version        libclamav and definitions version\n"
		"  reload         reload the definitions (root or AdminGroup)\n"
		"  update         check the mirrors now and install newer definitions;\n"
		"                 per database: old -> new version, bytes, incremental\n"
		"                 or whole, validation, time (root or AdminGroup)\n"
		"  defs verify|install|list|history|rollback|build ...\n"
		"                 the definitions: validate, install, roll back, build\n"
		"                 your own (scanctl defs --help)\n"
		"  shutdown       stop the service (root or AdminGroup)\n"
		"\n"
		"Options:\n"
		"  -s, --socket PATH       the service's LocalSocket\n"
		"  -c, --config-file FILE  take LocalSocket from FILE (default %s)\n"
		"  -j, --json              machine-readable output\n"
		"  -h, --help              this help;  -V, --version  scanctl's version\n"
		"\n"
		"Exit status: 0 clean/ok, 1 infected or failed (stated), 2 usage error or the\n"
		"service cannot be reached.\n",
		CONFIG_DEFAULT_PATH);
}

void sc_die(int status, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));

void sc_die(int status, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(status);
}

int sc_try_connect(const struct opts *o)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd, r;

	if (strlen(o->socket) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	util_strlcpy(sa.sun_path, o->socket, sizeof(sa.sun_path));
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	return fd;
}

int sc_connect(const struct opts *o)
{
	int fd = sc_try_connect(o);

	if (fd == -ENAMETOOLONG)
		sc_die(EXIT_USAGE, "socket path too long: %s", o->socket);
	if (fd < 0)
		sc_die(EXIT_USAGE,
		       "cannot connect to scanengined at %s: %s (is the service running?)",
		       o->socket, strerror(-fd));
	return fd;
}

void sc_print_json(struct json_object *o)
{
	printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY));
	json_object_put(o);
}

static void send_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			sc_die(EXIT_USAGE, "lost the connection to scanengined: %s",
			       strerror(errno));
		}
		p += n;
		len -= (size_t)n;
	}
}

static void send_cmd(int fd, const char *cmd)
{
	send_all(fd, cmd, strlen(cmd) + 1); /* z-framing: the NUL ends it */
}

/* Buffered reader of NUL-terminated replies. */
struct reader {
	int fd;
	char buf[REPLY_MAX * 2];
	size_t len;
};

/* Next reply into out (NUL-terminated). Returns 1, or 0 at EOF. */
static int read_reply(struct reader *r, char *out, size_t outlen)
{
	for (;;) {
		char *nul = memchr(r->buf, '\0', r->len);
		ssize_t n;

		if (nul) {
			size_t l = (size_t)(nul - r->buf) + 1;

			util_strlcpy(out, r->buf, outlen);
			memmove(r->buf, r->buf + l, r->len - l);
			r->len -= l;
			return 1;
		}
		if (r->len == sizeof(r->buf))
			sc_die(EXIT_USAGE, "reply from scanengined too long");
		n = recv(r->fd, r->buf + r->len, sizeof(r->buf) - r->len, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			sc_die(EXIT_USAGE, "lost the connection to scanengined: %s",
			       strerror(errno));
		if (n == 0) {
			if (r->len)
				sc_die(EXIT_USAGE, "truncated reply from scanengined");
			return 0;
		}
		r->len += (size_t)n;
	}
}

/* One command, one reply (z-framing). Returns the reply in out. */
void sc_command(const struct opts *o, const char *cmd, char *out, size_t outlen)
{
	struct reader r = {.fd = sc_connect(o)};

	send_cmd(r.fd, cmd);
	if (!read_reply(&r, out, outlen))
		sc_die(EXIT_USAGE, "scanengined closed the connection without answering %s",
		       cmd + 1);
	close(r.fd);
}

#define REQUEST_MAX (64u << 20) /* a JSON reply larger than this is refused */

char *sc_request(const struct opts *o, const char *cmd)
{
	int fd = sc_connect(o);
	size_t len = 0, cap = 65536;
	char *buf = malloc(cap), *nul;

	if (!buf)
		sc_die(EXIT_USAGE, "out of memory");
	send_cmd(fd, cmd);
	for (;;) {
		ssize_t n;

		if (len + 1 == cap) {
			char *bigger = cap < REQUEST_MAX ? realloc(buf, cap * 2) : NULL;

			if (!bigger)
				sc_die(EXIT_USAGE, "reply from scanengined too long");
			buf = bigger;
			cap *= 2;
		}
		n = recv(fd, buf + len, cap - 1 - len, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			sc_die(EXIT_USAGE, "lost the connection to scanengined: %s",
			       strerror(errno));
		if (n == 0)
			break;
		len += (size_t)n;
		if (memchr(buf + len - (size_t)n, '\0', (size_t)n))
			break;
	}
	close(fd);
	buf[len] = '\0';
	nul = memchr(buf, '\0', len + 1);
	if (!len || (size_t)(nul - buf) == len)
		sc_die(EXIT_USAGE,
		       len ? "truncated reply from scanengined"
			   : "scanengined closed the connection without answering %s",
		       cmd + 1);
	return buf;
}

static int ends_with(const char *s, const char *suffix)
{
	size_t a = strlen(s), b = strlen(suffix);

	return a >= b && !strcmp(s + a - b, suffix);
}

/* Record and print one result line "<path>: <text>". */
static void result(const struct opts *o, struct tally *t, const char *path, const char *text)
{
	struct json_object *jr;
	bool found = ends_with(text, " FOUND"), err = ends_with(text, " ERROR");

	t->files += !ends_with(text, "Excluded") && !strstr(text, "Excluded (");
	if (found)
		t->infected++;
	if (err)
		t->errors++;
	if (!o->json) {
		if (found || err || !strcmp(text, "OK") || strstr(text, "Excluded"))
			printf("%s: %s\n", path, text);
		return;
	}
	jr = json_object_new_object();
	json_object_object_add(jr, "path", json_object_new_string(path));
	if (found) {
		json_object_object_add(jr, "result", json_object_new_string("FOUND"));
		json_object_object_add(jr, "signature",
				       json_object_new_string_len(text, (int)strlen(text) - 6));
	} else if (err) {
		json_object_object_add(jr, "result", json_object_new_string("ERROR"));
		json_object_object_add(jr, "message",
				       json_object_new_string_len(text, (int)strlen(text) - 6));
	} else {
		json_object_object_add(jr, "result", json_object_new_string(text));
	}
	json_object_array_add(t->results, jr);
}

/* Split "<path>: <text>". A path may itself contain ": ", so take the
 * first separator after which a known verdict shape follows. */
static void parse_line(char *line, const char **path, const char **text)
{
	char *sep = NULL;

	for (char *p = strstr(line, ": "); p; p = strstr(p + 1, ": ")) {
		const char *rest = p + 2;

		if (!strcmp(rest, "OK") || ends_with(rest, " FOUND") || ends_with(rest, " ERROR") ||
		    !strncmp(rest, "Excluded", 8)) {
			sep = p;
			break;
		}
	}
	if (!sep) {
		*path = "";
		*text = line;
		return;
	}
	*sep = '\0';
	*path = line;
	*text = sep + 2;
}

/* Scan by path: the service opens the files (CONTSCAN or MULTISCAN). */
static void scan_by_path(const struct opts *o, struct tally *t, const char *abs)
{
	char cmd[PATH_MAX + 32], line[REPLY_MAX];
	struct reader r = {.fd = sc_connect(o)};
	unsigned long before_inf = t->infected, before_err = t->errors;
	bool any = false;

	snprintf(cmd, sizeof(cmd), "z%s %s", o->multiscan ? "MULTISCAN" : "CONTSCAN", abs);
	send_cmd(r.fd, cmd);
	while (read_reply(&r, line, sizeof(line))) {
		const char *path, *text;

		parse_line(line, &path, &text);
		any = true;
		if (!strcmp(text, "OK")) {
			t->files++;
			continue; /* printed once per argument below */
		}
		result(o, t, path, text);
	}
	close(r.fd);
	if (!any)
		sc_die(EXIT_USAGE, "scanengined closed the connection without answering");
	if (t->infected == before_inf && t->errors == before_err)
		result(o, t, abs, "OK"), t->files--;
}

/* Descriptor passing or streaming: walk here, one IDSESSION per argument,
 * a window of requests in flight, replies matched by their id. */
struct pending {
	unsigned int id;
	char *path;
};

static void send_fildes(int sock, int fd)
{
	/* clamd takes the descriptor from the byte after the command */
	struct iovec iov = {.iov_base = (void *)"", .iov_len = 1};
	ssize_t n;

	send_cmd(sock, "zFILDES");
	n = util_sendmsg_fd(sock, &iov, 1, fd, 0);
	if (n < 0)
		sc_die(EXIT_USAGE, "lost the connection to scanengined: %s", strerror((int)-n));
}

static void send_stream(int sock, int fd, const char *path)
{
	char buf[65536 + 4];
	ssize_t n;

	send_cmd(sock, "zINSTREAM");
	while ((n = read(fd, buf + 4, sizeof(buf) - 4)) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			fprintf(stderr, "%s: %s: read: %s\n", prog, path, strerror(errno));
			break;
		}
		buf[0] = (char)((uint32_t)n >> 24);
		buf[1] = (char)((uint32_t)n >> 16);
		buf[2] = (char)((uint32_t)n >> 8);
		buf[3] = (char)n;
		send_all(sock, buf, (size_t)n + 4);
	}
	send_all(sock, "\0\0\0\0", 4);
}

static void session_reply(const struct opts *o, struct tally *t, struct pending *pend,
			  unsigned int *npend, char *line)
{
	char *colon = strchr(line, ':');
	const char *path, *text;
	unsigned long id;

	if (!colon || colon[1] != ' ')
		sc_die(EXIT_USAGE, "unexpected reply from scanengined: %s", line);
	id = strtoul(line, NULL, 10);
	for (unsigned int i = 0; i < *npend; i++) {
		if (pend[i].id != id)
			continue;
		parse_line(colon + 2, &path, &text);
		/* clean files are summed up as "<argument>: OK", as clamdscan */
		if (!strcmp(text, "OK"))
			t->files++;
		else
			result(o, t, pend[i].path, text);
		free(pend[i].path);
		pend[i] = pend[--*npend];
		return;
	}
	/* e.g. a session-level error without a request of ours */
	result(o, t, "scanengined", colon + 2);
}

static void scan_by_session(const struct opts *o, struct tally *t, const char *abs)
{
	struct walk_opts wo = {0};
	struct walk *w = walk_new(abs, &wo);
	struct reader r = {.fd = sc_connect(o)};
	struct pending pend[SESSION_WINDOW];
	unsigned int npend = 0, id = 0;
	unsigned long before_inf = t->infected, before_err = t->errors;
	char line[REPLY_MAX];
	struct walk_entry e;

	if (!w)
		sc_die(EXIT_USAGE, "out of memory");
	send_cmd(r.fd, "zIDSESSION");
	for (;;) {
		if (walk_next(w, &e) < 0)
			sc_die(EXIT_USAGE, "out of memory");
		if (e.kind == WALK_DONE)
			break;
		if (e.kind == WALK_ERROR) {
			char msg[300];

			snprintf(msg, sizeof(msg), "%s. ERROR", strerror(e.err));
			result(o, t, e.path, msg);
			continue;
		}
		if (e.kind != WALK_FILE)
			continue;
		while (npend == SESSION_WINDOW) {
			if (!read_reply(&r, line, sizeof(line)))
				sc_die(EXIT_USAGE, "scanengined closed the session early");
			session_reply(o, t, pend, &npend, line);
		}
		if (o->mode == MODE_FDPASS)
			send_fildes(r.fd, e.fd);
		else
			send_stream(r.fd, e.fd, e.path);
		close(e.fd);
		pend[npend].id = ++id;
		pend[npend].path = strdup(e.path);
		npend++;
	}
	send_cmd(r.fd, "zEND");
	while (npend && read_reply(&r, line, sizeof(line)))
		session_reply(o, t, pend, &npend, line);
	if (npend)
		sc_die(EXIT_USAGE, "scanengined closed the session before answering every file");
	close(r.fd);
	walk_free(w);
	if (t->infected == before_inf && t->errors == before_err) {
		result(o, t, abs, "OK");
		t->files--;
	}
}

static int cmd_scan(struct opts *o, int argc, char **argv)
{
	static const struct option lopts[] = {
		{"fdpass", no_argument, NULL, 'f'},
		{"stream", no_argument, NULL, 's'},
		{"multiscan", no_argument, NULL, 'm'},
		{0},
	};
	struct tally t = {0};
	struct timespec t0, t1;
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "fsm", lopts, NULL)) != -1) {
		if (c == 'f')
			o->mode = MODE_FDPASS;
		else if (c == 's')
			o->mode = MODE_STREAM;
		else if (c == 'm')
			o->multiscan = true;
		else
			return EXIT_USAGE;
	}
	if (optind >= argc)
		sc_die(EXIT_USAGE, "scan: which paths? (scanctl scan PATH...)");
	if (o->json)
		t.results = json_object_new_array();
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int i = optind; i < argc; i++) {
		char abs[PATH_MAX];
		struct stat st;

		if (argv[i][0] == '/') {
			util_strlcpy(abs, argv[i], sizeof(abs));
		} else {
			char cwd[PATH_MAX];

			if (!getcwd(cwd, sizeof(cwd)))
				sc_die(EXIT_USAGE, "getcwd: %s", strerror(errno));
			if (snprintf(abs, sizeof(abs), "%s/%s", cwd, argv[i]) >= (int)sizeof(abs))
				sc_die(EXIT_USAGE, "%s: path too long", argv[i]);
		}
		if (lstat(abs, &st) < 0) {
			char msg[300];

			snprintf(msg, sizeof(msg), "Can't access file: %s. ERROR", strerror(errno));
			result(o, &t, abs, msg);
			continue;
		}
		if (o->mode == MODE_PATH)
			scan_by_path(o, &t, abs);
		else
			scan_by_session(o, &t, abs);
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;

	if (o->json) {
		struct json_object *out = json_object_new_object();

		json_object_object_add(out, "results", t.results);
		json_object_object_add(out, "scanned_files",
				       json_object_new_int64((int64_t)t.files));
		json_object_object_add(out, "infected_files",
				       json_object_new_int64((int64_t)t.infected));
		json_object_object_add(out, "errors", json_object_new_int64((int64_t)t.errors));
		json_object_object_add(out, "seconds", json_object_new_double(secs));
		printf("%s\n", json_object_to_json_string_ext(out, JSON_C_TO_STRING_PRETTY));
		json_object_put(out);
	} else {
		printf("\n----------- SCAN SUMMARY -----------\n");
		printf("Infected files: %lu\n", t.infected);
		if (t.errors)
			printf("Total errors: %lu\n", t.errors);
		printf("Time: %.3f sec\n", secs);
	}
	return (t.infected || t.errors) ? EXIT_FOUND : 0;
}

void sc_print_kv(const char *k, const char *fmt, ...)
{
	va_list ap;

	printf("%-22s ", k);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}

const char *sc_jstr(struct json_object *o, const char *k)
{
	struct json_object *v;

	/* a JSON null reads as "-" too */
	return json_object_object_get_ex(o, k, &v) && v ? json_object_get_string(v) : "-";
}

long long sc_jint(struct json_object *o, const char *k)
{
	struct json_object *v;

	return json_object_object_get_ex(o, k, &v) ? json_object_get_int64(v) : 0;
}

static int cmd_status(const struct opts *o)
{
	char *reply = sc_request(o, "zSTATUS");
	struct json_object *st, *defs = NULL;
	long long up;

	if (ends_with(reply, " ERROR"))
		sc_die(EXIT_FOUND, "%s", reply);
	st = json_tokener_parse(reply);
	if (!st)
		sc_die(EXIT_FOUND, "unexpected STATUS reply: %.200s", reply);
	free(reply);
	if (o->json) {
		printf("%s\n", json_object_to_json_string_ext(st, JSON_C_TO_STRING_PRETTY));
		json_object_put(st);
		return 0;
	}
	json_object_object_get_ex(st, "definitions", &defs);
	up = sc_jint(st, "uptime_seconds");
	sc_print_kv("service", "scanengined %s, pid %lld, up %lldd %02lld:%02lld:%02lld",
		    sc_jstr(st, "version"), sc_jint(st, "pid"), up / 86400, up / 3600 % 24,
		    up / 60 % 60, up % 60);
	sc_print_kv("socket", "%s", sc_jstr(st, "socket"));
	if (defs && json_object_get_boolean(json_object_object_get(defs, "loaded"))) {
		sc_print_kv("definitions", "%lld signatures, version %lld, loaded in %lld ms",
			    sc_jint(defs, "signatures"), sc_jint(defs, "database_version"),
			    sc_jint(defs, "load_ms"));
		sc_print_kv("engine", "libclamav %s, %lld KiB resident", sc_jstr(defs, "libclamav"),
			    sc_jint(defs, "engine_rss_kib"));
	} else {
		sc_print_kv("definitions", "NOT LOADED");
	}
	sc_print_kv("database directory", "%s", sc_jstr(st, "database_directory"));
	sc_print_kv("scan user", "%s%s", sc_jstr(st, "scan_user"),
		    json_object_get_boolean(json_object_object_get(st, "scan_user_missing"))
			    ? " (MISSING: scanning as root)"
			    : "");
	sc_print_kv("workers", "%lld alive of %lld (%lld busy), queue %lld",
		    sc_jint(st, "workers_alive"), sc_jint(st, "workers_configured"),
		    sc_jint(st, "workers_busy"), sc_jint(st, "queue"));
	sc_print_kv("scans", "%lld total: %lld clean, %lld found, %lld errors", sc_jint(st, "jobs"),
		    sc_jint(st, "clean"), sc_jint(st, "found"), sc_jint(st, "errors"));
	sc_print_kv("worker crashes", "%lld (%lld over MaxScanTime), %lld respawns, %lld retries",
		    sc_jint(st, "worker_crashes"), sc_jint(st, "worker_timeouts"),
		    sc_jint(st, "worker_respawns"), sc_jint(st, "retries"));
	sc_print_kv("reloads", "%lld (engine loads %lld, failures %lld)", sc_jint(st, "reloads"),
		    sc_jint(st, "engine_loads"), sc_jint(st, "engine_load_failures"));
	if (strcmp(sc_jstr(st, "last_load_error"), "-"))
		sc_print_kv("last load error", "%s", sc_jstr(st, "last_load_error"));
	sc_print_kv("connections", "%lld", sc_jint(st, "connections"));
	{
		struct json_object *oa = NULL, *ev = NULL;

		if (json_object_object_get_ex(st, "onaccess", &oa) &&
		    json_object_get_boolean(json_object_object_get(oa, "enabled"))) {
			json_object_object_get_ex(oa, "events", &ev);
			sc_print_kv(
				"on-access", "%s, %s, fail policy %s%s%s",
				json_object_get_boolean(json_object_object_get(oa, "running"))
					? "running"
					: "NOT RUNNING",
				json_object_get_boolean(json_object_object_get(oa, "prevention"))
					? "prevention"
					: "notify only",
				sc_jstr(oa, "fail_policy"),
				strcmp(sc_jstr(oa, "failure"), "-") ? ": " : "",
				strcmp(sc_jstr(oa, "failure"), "-") ? sc_jstr(oa, "failure") : "");
			sc_print_kv(
				"on-access events",
				"%lld opens, %lld execs, %lld writes; %lld allowed, %lld denied, "
				"%lld timed out",
				sc_jint(ev, "open_perm") + sc_jint(ev, "open"),
				sc_jint(ev, "open_exec_perm") + sc_jint(ev, "open_exec"),
				sc_jint(ev, "close_write"), sc_jint(oa, "allowed"),
				sc_jint(oa, "denied"), sc_jint(oa, "timed_out"));
			sc_print_kv(
				"on-access cache",
				"%lld scans, %lld hits in user space, %lld marks in the kernel; "
				"queue %lld, max latency %lld us",
				sc_jint(oa, "scans"), sc_jint(oa, "cache_hits"),
				sc_jint(oa, "marks_placed"), sc_jint(oa, "in_flight"),
				sc_jint(oa, "max_latency_us"));
		}
	}
	{
		struct json_object *up_ = NULL;

		if (json_object_object_get_ex(st, "update", &up_) &&
		    json_object_get_boolean(json_object_object_get(up_, "enabled"))) {
			sc_print_kv("last update", "%s: %s%s%s", sc_jstr(up_, "last_attempt"),
				    sc_jstr(up_, "last_result"),
				    strcmp(sc_jstr(up_, "last_reason"), "-") ? ": " : "",
				    strcmp(sc_jstr(up_, "last_reason"), "-")
					    ? sc_jstr(up_, "last_reason")
					    : "");
			sc_print_kv("next update check", "%s", sc_jstr(up_, "next_check"));
		} else {
			sc_print_kv("updates", "off (no DatabaseMirror or PrivateMirror)");
		}
	}
	{
		struct json_object *fa = NULL, *po = NULL;
		char ids[128] = "";
		size_t n = 0;

		if (json_object_object_get_ex(st, "faults", &fa))
			for (size_t i = 0; i < json_object_array_length(fa) && n < sizeof(ids); i++)
				n += (size_t)snprintf(
					ids + n, sizeof(ids) - n, "%s%d", i ? ", " : "",
					json_object_get_int(json_object_array_get_idx(fa, i)));
		sc_print_kv("active faults", "%s", n ? ids : "none");
		if (json_object_object_get_ex(st, "poisoned", &po) &&
		    json_object_array_length(po)) {
			for (size_t i = 0; i < json_object_array_length(po); i++) {
				struct json_object *e = json_object_array_get_idx(po, i);

				sc_print_kv(i ? "" : "poisoned files", "%s (%lld crashes)",
					    sc_jstr(e, "path"), sc_jint(e, "crashes"));
			}
		}
	}
	json_object_put(st);
	return 0;
}

/* One database of an update report, as a line. */
static void print_update_db(struct json_object *d)
{
	const char *res = sc_jstr(d, "result"), *name = sc_jstr(d, "name");
	double secs = (double)sc_jint(d, "ms") / 1000.0;

	if (!strcmp(res, "updated"))
		printf("%s: %lld -> %lld, %s (%lld cdiff%s), %lld bytes from %s, validation %s, "
		       "%.2f s\n",
		       name, sc_jint(d, "old_version"), sc_jint(d, "new_version"),
		       json_object_get_boolean(json_object_object_get(d, "incremental"))
			       ? "incremental"
			       : "whole file",
		       sc_jint(d, "cdiffs"), sc_jint(d, "cdiffs") == 1 ? "" : "s",
		       sc_jint(d, "bytes"), sc_jstr(d, "mirror"), sc_jstr(d, "validation"), secs);
	else if (!strcmp(res, "up to date"))
		printf("%s: up to date (version %lld), %lld bytes from %s, %.2f s\n", name,
		       sc_jint(d, "old_version"), sc_jint(d, "bytes"), sc_jstr(d, "mirror"), secs);
	else if (!strcmp(res, "skipped"))
		printf("%s: skipped: %s\n", name, sc_jstr(d, "reason"));
	else
		printf("%s: %s (%s): %s; next try in %lld s\n", name, res, sc_jstr(d, "failure"),
		       sc_jstr(d, "reason"), sc_jint(d, "retry_in_s"));
}

static int cmd_update(const struct opts *o)
{
	char *reply = sc_request(o, "zUPDATE");
	struct json_object *r, *dbs = NULL;
	const char *res;
	int rc;

	if (ends_with(reply, " ERROR"))
		sc_die(EXIT_FOUND, "%s", reply);
	r = json_tokener_parse(reply);
	if (!r || !json_object_is_type(r, json_type_object))
		sc_die(EXIT_FOUND, "unexpected UPDATE reply: %.200s", reply);
	free(reply);
	res = sc_jstr(r, "result");
	rc = !strcmp(res, "updated") || !strcmp(res, "up to date") ? 0 : EXIT_FOUND;
	if (o->json) {
		printf("%s\n", json_object_to_json_string_ext(r, JSON_C_TO_STRING_PRETTY));
	} else {
		if (json_object_object_get_ex(r, "databases", &dbs))
			for (size_t i = 0; i < json_object_array_length(dbs); i++)
				print_update_db(json_object_array_get_idx(dbs, i));
		printf("update: %s, definitions generation %lld, next check %s\n", res,
		       sc_jint(r, "generation"), sc_jstr(r, "next_check"));
	}
	json_object_put(r);
	return rc;
}

static void print_time(const char *k, long long epoch)
{
	char buf[64];
	time_t t = (time_t)epoch;
	struct tm tm;

	localtime_r(&t, &tm);
	strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M:%S %Z", &tm);
	sc_print_kv(k, "%s", buf);
}

static int cmd_faults(const struct opts *o, int argc, char **argv)
{
	static const struct option lopts[] = {
		{"history", no_argument, NULL, 'H'},
		{"reset-poison", no_argument, NULL, 'R'},
		{0},
	};
	bool history = false, reset = false;
	char *reply;
	struct json_object *arr;
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "HR", lopts, NULL)) != -1) {
		if (c == 'H')
			history = true;
		else if (c == 'R')
			reset = true;
		else
			return EXIT_USAGE;
	}
	if (optind < argc)
		sc_die(EXIT_USAGE, "faults: unexpected argument '%s'", argv[optind]);
	if (reset) {
		reply = sc_request(o, "zRESETPOISON");
		if (ends_with(reply, " ERROR"))
			sc_die(EXIT_FOUND, "%s", reply);
		printf(o->json ? "{ \"reply\": \"%s\" }\n" : "%s\n", reply);
		free(reply);
		return 0;
	}
	reply = sc_request(o, history ? "zFAULTHISTORY" : "zFAULTS");
	if (ends_with(reply, " ERROR"))
		sc_die(EXIT_FOUND, "%s", reply);
	arr = json_tokener_parse(reply);
	if (!arr || !json_object_is_type(arr, json_type_array))
		sc_die(EXIT_FOUND, "unexpected reply: %.200s", reply);
	free(reply);
	if (o->json) {
		printf("%s\n", json_object_to_json_string_ext(arr, JSON_C_TO_STRING_PRETTY));
	} else if (history) {
		for (size_t i = 0; i < json_object_array_length(arr); i++) {
			struct json_object *e = json_object_array_get_idx(arr, i);

			printf("%s  %-20s %s%s%s%s\n", sc_jstr(e, "time_text"), sc_jstr(e, "event"),
			       sc_jint(e, "id") ? "fault " : "",
			       sc_jint(e, "id") ? sc_jstr(e, "id") : "",
			       sc_jint(e, "id") ? ": " : "",
			       strcmp(sc_jstr(e, "reason"), "-") ? sc_jstr(e, "reason")
								 : sc_jstr(e, "message"));
		}
	} else if (!json_object_array_length(arr)) {
		printf("no active faults\n");
	} else {
		for (size_t i = 0; i < json_object_array_length(arr); i++) {
			struct json_object *f = json_object_array_get_idx(arr, i);

			printf("%sfault %lld: %s (%s)\n", i ? "\n" : "", sc_jint(f, "id"),
			       sc_jstr(f, "name"), sc_jstr(f, "severity"));
			print_time("  since", sc_jint(f, "since"));
			sc_print_kv("  reason", "%s", sc_jstr(f, "reason"));
			sc_print_kv("  remediation", "%s", sc_jstr(f, "remediation"));
		}
	}
	json_object_put(arr);
	return 0;
}

static int cmd_simple(const struct opts *o, const char *cmd, const char *expect)
{
	char reply[4096];

	sc_command(o, cmd, reply, sizeof(reply));
	if (o->json) {
		struct json_object *out = json_object_new_object();

		json_object_object_add(out, "reply", json_object_new_string(reply));
		json_object_object_add(out, "ok",
				       json_object_new_boolean(
					       !expect || !strncmp(reply, expect, strlen(expect))));
		printf("%s\n", json_object_to_json_string_ext(out, JSON_C_TO_STRING_PRETTY));
		json_object_put(out);
	} else {
		printf("%s\n", reply);
	}
	return (!expect || !strncmp(reply, expect, strlen(expect))) ? 0 : EXIT_FOUND;
}

static int cmd_shutdown(const struct opts *o)
{
	struct reader r = {.fd = sc_connect(o)};
	char reply[1024];

	send_cmd(r.fd, "zSHUTDOWN");
	/* The service answers a refusal; on success it just closes. */
	if (read_reply(&r, reply, sizeof(reply))) {
		fprintf(stderr, "%s: %s\n", prog, reply);
		return EXIT_FOUND;
	}
	close(r.fd);
	if (!o->json)
		printf("scanengined is shutting down\n");
	else
		printf("{ \"ok\": true }\n");
	return 0;
}

static int run_status(struct opts *o, int argc, char **argv)
{
	(void)argc;
	(void)argv;
	return cmd_status(o);
}

static int run_ping(struct opts *o, int argc, char **argv)
{
	(void)argc;
	(void)argv;
	return cmd_simple(o, "zPING", "PONG");
}

static int run_version(struct opts *o, int argc, char **argv)
{
	(void)argc;
	(void)argv;
	return cmd_simple(o, "zVERSION", NULL);
}

static int run_reload(struct opts *o, int argc, char **argv)
{
	(void)argc;
	(void)argv;
	return cmd_simple(o, "zRELOAD", "RELOADING");
}

static int run_shutdown(struct opts *o, int argc, char **argv)
{
	(void)argc;
	(void)argv;
	return cmd_shutdown(o);
}

static int run_update(struct opts *o, int argc, char **argv)
{
	(void)argc;
	(void)argv;
	return cmd_update(o);
}

static int run_faults(struct opts *o, int argc, char **argv)
{
	return cmd_faults(o, argc, argv);
}

static int run_defs(struct opts *o, int argc, char **argv)
{
	return scanctl_defs(o, argc, argv);
}

static const struct command {
	const char *name;
	int (*fn)(struct opts *o, int argc, char **argv);
	bool args; /* takes arguments */
} commands[] = {
	{"scan", cmd_scan, true},      {"faults", run_faults, true},
	{"defs", run_defs, true},      {"status", run_status, false},
	{"ping", run_ping, false},     {"version", run_version, false},
	{"reload", run_reload, false}, {"shutdown", run_shutdown, false},
	{"update", run_update, false},
};

int main(int argc, char **argv)
{
	static const struct option lopts[] = {
		{"socket", required_argument, NULL, 's'},
		{"config-file", required_argument, NULL, 'c'},
		{"json", no_argument, NULL, 'j'},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{0},
	};
	struct opts o = {0};
	const char *config = NULL;
	struct config cfg = {0};
	char err[CONFIG_ERR_MAX];
	struct stat st;
	const char *cmd;
	int c, ret;

	/* '+': options after the command belong to the command */
	while ((c = getopt_long(argc, argv, "+s:c:jhV", lopts, NULL)) != -1) {
		switch (c) {
		case 's':
			o.socket = optarg;
			break;
		case 'c':
			config = optarg;
			break;
		case 'j':
			o.json = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("scanctl %s\n", SCANENGINE_VERSION);
			return 0;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if (!config && !o.socket && stat(CONFIG_DEFAULT_PATH, &st) == 0)
		config = CONFIG_DEFAULT_PATH;
	if (config_load(&cfg, config, err) < 0)
		sc_die(EXIT_USAGE, "%s", err);
	if (!o.socket)
		o.socket = cfg.local_socket;
	o.cfg = &cfg;
	cmd = argv[optind];
	argc -= optind;
	argv += optind;
	/* a trailing --json after the command is accepted too */
	for (int i = 1; i < argc; i++)
		if (!strcmp(argv[i], "--json")) {
			o.json = true;
			memmove(&argv[i], &argv[i + 1], (size_t)(argc - i) * sizeof(char *));
			argc--;
			i--;
		}
	ret = -1;
	for (size_t i = 0; i < SE_ARRAY_SIZE(commands); i++) {
		if (strcmp(cmd, commands[i].name))
			continue;
		if (!commands[i].args && argc > 1)
			sc_die(EXIT_USAGE, "%s takes no arguments", cmd);
		ret = commands[i].fn(&o, argc, argv);
		break;
	}
	if (ret < 0) {
		fprintf(stderr, "%s: unknown command '%s'\n", prog, cmd);
		usage(stderr);
		ret = EXIT_USAGE;
	}
	config_free(&cfg);
	return ret;
}
