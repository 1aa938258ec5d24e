/* test_faults: unit tests of scanengine/faults.c (cmocka).
 *
 * Every case works in its own directory (on tmpfs when there is one: the
 * state file is fsynced at every change). The clock hook has no context
 * argument, so the fake wall clock is a variable of this file: each case
 * sets it before it opens a manager.
 *
 * Children (the concurrency cases) never call cmocka: they report on stderr
 * and _exit() non-zero; the parent checks the status. */
#include "scanengine/faults.h"
#include "common/util.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/wait.h>

static time_t fake_now;

static time_t fake_clock(void)
{
	return fake_now;
}

struct fx {
	char dir[64];
	char state[128];
	char log[128];
	struct faults_options opt;
};

static int setup(void **state)
{
	struct fx *fx = calloc(1, sizeof(*fx));

	if (!fx)
		return -1;
	snprintf(fx->dir, sizeof(fx->dir), "%s/test_faults.XXXXXX",
		 access("/dev/shm", W_OK | X_OK) == 0 ? "/dev/shm" : "/tmp");
	if (!mkdtemp(fx->dir)) {
		free(fx);
		return -1;
	}
	snprintf(fx->state, sizeof(fx->state), "%s/faults.json", fx->dir);
	snprintf(fx->log, sizeof(fx->log), "%s/events.log", fx->dir);
	fx->opt.state_file = fx->state;
	fx->opt.event_log = fx->log;
	fx->opt.clock = fake_clock;
	fake_now = 1000;
	umask(022);
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fx *fx = *state;

	util_rm_rf(fx->dir);
	free(fx);
	return 0;
}

static struct faults *open_ok(struct fx *fx)
{
	char err[256] = "junk";
	struct faults *f = faults_open(&fx->opt, err);

	assert_non_null(f);
	assert_string_equal(err, "");
	return f;
}

static char *slurp(const char *path, size_t *len)
{
	struct stat st;
	char *buf;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return NULL;
	assert_int_equal(fstat(fd, &st), 0);
	buf = malloc((size_t)st.st_size + 1);
	assert_non_null(buf);
	assert_int_equal(read(fd, buf, (size_t)st.st_size), st.st_size);
	buf[st.st_size] = '\0';
	close(fd);
	if (len)
		*len = (size_t)st.st_size;
	return buf;
}

static void append_raw(const char *path, const char *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);

	assert_true(fd >= 0);
	assert_int_equal(util_write_all(fd, data, len), 0);
	close(fd);
}

static void write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	assert_true(fd >= 0);
	assert_int_equal(util_write_all(fd, text, strlen(text)), 0);
	close(fd);
}

/* The event log as an array of objects. Every line must be a complete JSON
 * object and the file must end with a newline. */
static struct json_object *log_lines(const char *path)
{
	struct json_object *arr = json_object_new_array();
	size_t len;
	char *buf = slurp(path, &len), *p, *nl;

	assert_non_null(arr);
	if (!buf)
		return arr;
	assert_true(len == 0 || buf[len - 1] == '\n');
	for (p = buf; (nl = strchr(p, '\n')); p = nl + 1) {
		struct json_object *o;

		*nl = '\0';
		o = json_tokener_parse(p);
		if (!o || !json_object_is_type(o, json_type_object))
			fail_msg("event log line is not a JSON object: %.200s", p);
		json_object_array_add(arr, o);
	}
	free(buf);
	return arr;
}

static size_t log_count(const char *path)
{
	struct json_object *arr = log_lines(path);
	size_t n = json_object_array_length(arr);

	json_object_put(arr);
	return n;
}

static struct json_object *field(struct json_object *o, const char *key)
{
	struct json_object *v = NULL;

	if (!json_object_object_get_ex(o, key, &v))
		fail_msg("no field \"%s\" in %s", key, json_object_to_json_string(o));
	return v;
}

static int64_t int_field(struct json_object *o, const char *key)
{
	struct json_object *v = field(o, key);

	assert_true(json_object_is_type(v, json_type_int));
	return json_object_get_int64(v);
}

static const char *str_field(struct json_object *o, const char *key)
{
	struct json_object *v = field(o, key);

	assert_true(json_object_is_type(v, json_type_string));
	return json_object_get_string(v);
}

/* o has exactly the keys keys[n] */
static void assert_keys(struct json_object *o, const char *const *keys, size_t n)
{
	assert_true(json_object_is_type(o, json_type_object));
	for (size_t i = 0; i < n; i++)
		field(o, keys[i]);
	assert_int_equal(json_object_object_length(o), n);
}

static struct json_object *parse(const char *text)
{
	struct json_object *o = json_tokener_parse(text);

	assert_non_null(o);
	return o;
}

static void assert_json_eq(struct json_object *a, const char *text)
{
	struct json_object *b = parse(text);

	if (!json_object_equal(a, b))
		fail_msg("%s != %s", json_object_to_json_string(a), text);
	json_object_put(b);
}

static const char *const raise_keys[] = {"time", "time_text", "event",	"id",
					 "name", "severity",  "reason", "detail"};
static const char *const clear_keys[] = {"time",   "time_text", "event",
					 "id",	   "name",	"severity",
					 "reason", "detail",	"active_seconds"};

/* ---- raise, clear ---- */

static void test_raise(void **state)
{
	struct fx *fx = *state;
	struct faults *f = open_ok(fx);
	struct json_object *lines, *ev;
	int ids[8];

	assert_false(faults_is_active(f, FAULT_RESTARTS));
	assert_int_equal(faults_active_ids(f, ids, 8), 0);
	fake_now = 1700000000;
	assert_int_equal(faults_raise(f, FAULT_RESTARTS, "3 worker crashes in 60 s",
				      parse("{\"crashes\":3,\"files\":[\"/srv/a.pdf\"]}")),
			 1);
	assert_true(faults_is_active(f, FAULT_RESTARTS));
	assert_int_equal(faults_active_ids(f, ids, 8), 1);
	assert_int_equal(ids[0], 6);

	lines = log_lines(fx->log);
	assert_int_equal(json_object_array_length(lines), 1);
	ev = json_object_array_get_idx(lines, 0);
	assert_keys(ev, raise_keys, SE_ARRAY_SIZE(raise_keys));
	assert_int_equal(int_field(ev, "time"), 1700000000);
	assert_string_equal(str_field(ev, "time_text"), "2023-11-14T22:13:20Z");
	assert_string_equal(str_field(ev, "event"), "raise");
	assert_int_equal(int_field(ev, "id"), 6);
	assert_string_equal(str_field(ev, "name"), "frequent scan service restarts");
	assert_string_equal(str_field(ev, "severity"), "critical");
	assert_string_equal(str_field(ev, "reason"), "3 worker crashes in 60 s");
	assert_json_eq(field(ev, "detail"), "{\"crashes\":3,\"files\":[\"/srv/a.pdf\"]}");
	json_object_put(lines);

	/* paths are written as they are, not as "\/srv\/a.pdf" */
	{
		char *text = slurp(fx->log, NULL);

		assert_non_null(strstr(text, "\"/srv/a.pdf\""));
		free(text);
	}
	faults_close(f);
}

static void test_raise_again_updates(void **state)
{
	struct fx *fx = *state;
	struct faults *f = open_ok(fx);
	struct json_object *act, *e;

	assert_int_equal(faults_raise(f, FAULT_OVERLOADED, "queue above high-water mark",
				      parse("{\"top\":[\"rsync\"]}")),
			 1);
	fake_now = 1100;
	assert_int_equal(faults_raise(f, FAULT_OVERLOADED, "kernel queue overflowed",
				      parse("{\"top\":[\"tar\",\"rsync\"]}")),
			 0);
	assert_int_equal(log_count(fx->log), 1);
	act = faults_active_json(f);
	assert_int_equal(json_object_array_length(act), 1);
	e = json_object_array_get_idx(act, 0);
	assert_int_equal(int_field(e, "since"), 1000);
	assert_string_equal(str_field(e, "reason"), "kernel queue overflowed");
	assert_json_eq(field(e, "detail"), "{\"top\":[\"tar\",\"rsync\"]}");
	json_object_put(act);
	/* NULL detail on an update: {} */
	assert_int_equal(faults_raise(f, FAULT_OVERLOADED, "again", NULL), 0);
	act = faults_active_json(f);
	assert_json_eq(field(json_object_array_get_idx(act, 0), "detail"), "{}");
	json_object_put(act);
	assert_int_equal(log_count(fx->log), 1);
	faults_close(f);

	/* the update reached the state file too */
	f = open_ok(fx);
	act = faults_active_json(f);
	assert_string_equal(str_field(json_object_array_get_idx(act, 0), "reason"), "again");
	assert_int_equal(int_field(json_object_array_get_idx(act, 0), "since"), 1000);
	json_object_put(act);
	faults_close(f);
}

static void test_clear(void **state)
{
	struct fx *fx = *state;
	struct faults *f = open_ok(fx);
	struct json_object *lines, *ev;

	assert_int_equal(faults_raise(f, FAULT_START_FAILED, "definitions failed to load",
				      parse("{\"file\":\"daily.cld\"}")),
			 1);
	fake_now = 1042;
	assert_int_equal(faults_clear(f, FAULT_START_FAILED, "engine started"), 1);
	assert_false(faults_is_active(f, FAULT_START_FAILED));
	lines = log_lines(fx->log);
	assert_int_equal(json_object_array_length(lines), 2);
	ev = json_object_array_get_idx(lines, 1);
	assert_keys(ev, clear_keys, SE_ARRAY_SIZE(clear_keys));
	assert_int_equal(int_field(ev, "time"), 1042);
	assert_string_equal(str_field(ev, "time_text"), "1970-01-01T00:17:22Z");
	assert_string_equal(str_field(ev, "event"), "clear");
	assert_int_equal(int_field(ev, "id"), 7);
	assert_string_equal(str_field(ev, "name"), "scan service failed to start");
	assert_string_equal(str_field(ev, "severity"), "critical");
	assert_string_equal(str_field(ev, "reason"), "engine started");
	assert_json_eq(field(ev, "detail"), "{}");
	assert_int_equal(int_field(ev, "active_seconds"), 42);
	json_object_put(lines);

	/* clearing again: not active, no event */
	assert_int_equal(faults_clear(f, FAULT_START_FAILED, "engine started"), 0);
	assert_int_equal(log_count(fx->log), 2);
	faults_close(f);
}

static void test_clear_inactive(void **state)
{
	struct fx *fx = *state;
	struct faults *f = open_ok(fx);

	assert_int_equal(faults_clear(f, FAULT_MONITOR_FAILED, "monitoring is running"), 0);
	assert_int_equal(faults_clear(f, FAULT_KERNEL_SUPPORT, NULL), 0);
	assert_int_equal(log_count(fx->log), 0);
	faults_close(f);
}

static void test_unknown_id(void **state)
{
	struct fx *fx = *state;
	struct faults *f = open_ok(fx);
	static const int bad[] = {0, -1, 1, 9, 12, 17, 19, 1000};

	for (size_t i = 0; i < SE_ARRAY_SIZE(bad); i++) {
		/* the detail is taken over even then (ASan checks the leak) */
		assert_int_equal(faults_raise(f, bad[i], "x", parse("{\"a\":1}")), -EINVAL);
		assert_int_equal(faults_clear(f, bad[i], "x"), -EINVAL);
		assert_false(faults_is_active(f, bad[i]));
		assert_null(faults_name(bad[i]));
		assert_null(faults_remediation(bad[i]));
	}
	assert_int_equal(log_count(fx->log), 0);
	faults_close(f);
}

static void test_same_second(void **state)
{
	struct fx *fx = *state;
	struct faults *f = open_ok(fx);
	struct json_object *lines, *ev;

	assert_int_equal(faults_raise(f, FAULT_RESTARTS, "crash loop", NULL), 1);
	assert_int_equal(faults_clear(f, FAULT_RESTARTS, "stable"), 1);
	assert_int_equal(faults_raise(f, FAULT_RESTARTS, "crash loop again", NULL), 1);
	lines = log_lines(fx->log);
	assert_int_equal(json_object_array_length(lines), 3);
	ev = json_object_array_get_idx(lines, 1);
	assert_string_equal(str_field(ev, "event"), "clear");
	assert_int_equal(int_field(ev, "active_seconds"), 0);
	assert_int_equal(int_field(ev, "time"), 1000);
	assert_string_equal(str_field(json_object_array_get_idx(lines, 2), "event"), "raise");
	json_object_put(lines);
	assert_true(faults_is_active(f, FAULT_RESTARTS));
	faults_close(f);
}

static void test_clock_backwards(void **state)
{
	struct fx *fx = *state;
	struct faults *f = open_ok(fx);
	struct json_object *lines;

	assert_int_equal(faults_raise(f, FAULT_KERNEL_SUPPORT, "no BTF", NULL), 1);
	fake_now = 900; /* the wall clock was stepped back */
	assert_int_equal(faults_clear(f, FAULT_KERNEL_SUPPORT, "sensor running"), 1);
	lines = log_lines(fx->log);
	assert_int_equal(int_field(json_object_array_get_idx(lines, 1), "active_seconds"), 0);
	json_object_put(lines);
	faults_close(f);
}

static void test_reason_one_line(void **state)
{
	struct fx *fx = *state;
	struct faults *f = open_ok(fx);
	struct json_object *act;
	char longr[3000];

	assert_int_equal(
		faults_raise(f, FAULT_USER_UNAVAILABLE, "no user\nfault 7 raised: x\r", NULL), 1);
	act = faults_active_json(f);
	assert_string_equal(str_field(json_object_array_get_idx(act, 0), "reason"),
			    "no user fault 7 raised: x ");
	json_object_put(act);

	/* long reasons are cut, never inside a UTF-8 sequence */
	memset(longr, 'a', sizeof(longr));
	for (size_t i = 1001; i + 2 < sizeof(longr); i += 2) {
		longr[i] = (char)0xc3;
		longr[i + 1] = (char)0xa9; /* é */
	}
	longr[sizeof(longr) - 1] = '\0';
	assert_int_equal(faults_raise(f, FAULT_USER_UNAVAILABLE, longr, NULL), 0);
	act = faults_active_json(f);
	{
		const char *r = str_field(json_object_array_get_idx(act, 0), "reason");
		size_t n = strlen(r);

		assert_true(n <= 1024 && n >= 1020);
		assert_memory_equal(r, longr, n);
		assert_int_not_equal((unsigned char)r[n - 1], 0xc3);
	}
	json_object_put(act);
	faults_close(f);
}

static void test_detail_bounded(void **state)
{
	struct fx *fx = *state;
	struct faults *f = open_ok(fx);
	struct json_object *big = json_object_new_object(), *act, *d;
	char *pad = malloc(100000);

	assert_non_null(pad);
	memset(pad, 'x', 99999);
	pad[99999] = '\0';
	json_object_object_add(big, "pad", json_object_new_string(pad));
	free(pad);
	assert_int_equal(faults_raise(f, FAULT_OVERLOADED, "busy", big), 1);
	act = faults_active_json(f);
	d = field(json_object_array_get_idx(act, 0), "detail");
	assert_true(json_object_get_boolean(field(d, "truncated")));
	assert_true(int_field(d, "bytes") > 99999);
	json_object_put(act);

	/* nested deeper than the readers of the state file and log accept */
	big = json_object_new_object();
	for (int i = 0; i < 40; i++) {
		struct json_object *o = json_object_new_object();

		json_object_object_add(o, "n", big);
		big = o;
	}
	assert_int_equal(faults_raise(f, FAULT_OVERLOADED, "busy", big), 0);
	faults_close(f);
	f = open_ok(fx);
	act = faults_active_json(f);
	d = field(json_object_array_get_idx(act, 0), "detail");
	assert_true(json_object_get_boolean(field(d, "truncated")));
	json_object_put(act);
	faults_close(f);
}

/* ---- persistence ---- */

static void test_persistence(void **state)
{
	struct fx *fx = *state;
	struct faults *f = open_ok(fx);
	struct json_object *act, *e, *lines;
	int ids[8];

	assert_int_equal(faults_raise(f, FAULT_USER_UNAVAILABLE, "user scanengine missing",
				      parse("{\"user\":\"scanengine\"}")),
			 1);
	fake_now = 1010;
	assert_int_equal(faults_raise(f, FAULT_OVERLOADED, "queue full", NULL), 1);
	fake_now = 1020;
	assert_int_equal(faults_raise(f, FAULT_MONITOR_FAILED, "EPERM", NULL), 1);
	assert_int_equal(faults_clear(f, FAULT_MONITOR_FAILED, "running"), 1);
	faults_close(f);

	fake_now = 5000;
	f = open_ok(fx);
	assert_int_equal(faults_active_ids(f, ids, 8), 2);
	assert_int_equal(ids[0], 5);
	assert_int_equal(ids[1], 18);
	/* max smaller than the count: still the count, only max written */
	ids[1] = -1;
	assert_int_equal(faults_active_ids(f, ids, 1), 2);
	assert_int_equal(ids[1], -1);
	act = faults_active_json(f);
	assert_int_equal(json_object_array_length(act), 2);
	e = json_object_array_get_idx(act, 0);
	assert_int_equal(int_field(e, "since"), 1000);
	assert_string_equal(str_field(e, "reason"), "user scanengine missing");
	assert_json_eq(field(e, "detail"), "{\"user\":\"scanengine\"}");
	assert_int_equal(int_field(json_object_array_get_idx(act, 1), "since"), 1010);
	json_object_put(act);
	/* reopening writes no event */
	assert_int_equal(log_count(fx->log), 4);

	assert_int_equal(faults_clear(f, FAULT_USER_UNAVAILABLE, "user back"), 1);
	lines = log_lines(fx->log);
	assert_int_equal(int_field(json_object_array_get_idx(lines, 4), "active_seconds"), 4000);
	json_object_put(lines);
	faults_close(f);

	f = open_ok(fx);
	assert_int_equal(faults_active_ids(f, ids, 8), 1);
	assert_int_equal(ids[0], 18);
	faults_close(f);
}

static void test_state_file_format(void **state)
{
	struct fx *fx = *state;
	struct faults *f = open_ok(fx);
	struct json_object *doc, *arr, *e;
	char *text;
	struct stat st;

	/* no change yet: nothing written */
	assert_int_equal(access(fx->state, F_OK), -1);
	assert_int_equal(faults_raise(f, FAULT_RESTARTS, "crash loop", parse("{\"n\":4}")), 1);
	text = slurp(fx->state, NULL);
	assert_non_null(text);
	doc = parse(text);
	free(text);
	assert_int_equal(int_field(doc, "version"), 1);
	arr = field(doc, "active");
	assert_int_equal(json_object_array_length(arr), 1);
	e = json_object_array_get_idx(arr, 0);
	{
		static const char *const keys[] = {"id", "since", "reason", "detail"};

		assert_keys(e, keys, SE_ARRAY_SIZE(keys));
	}
	assert_int_equal(int_field(e, "id"), 6);
	assert_int_equal(int_field(e, "since"), 1000);
	assert_string_equal(str_field(e, "reason"), "crash loop");
	assert_json_eq(field(e, "detail"), "{\"n\":4}");
	json_object_put(doc);
	assert_int_equal(stat(fx->state, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0640);

	assert_int_equal(faults_clear(f, FAULT_RESTARTS, "stable"), 1);
	text = slurp(fx->state, NULL);
	doc = parse(text);
	free(text);
	assert_json_eq(doc, "{\"version\":1,\"active\":[]}");
	json_object_put(doc);
	faults_close(f);
}

/* Only the state file and the log in the directory: no temporary file is
 * left behind, and one left by a crash is removed at open. */
static void test_no_temp_files(void **state)
{
	struct fx *fx = *state;
	struct faults *f;
	char stale[192];
	struct dirent *de;
	DIR *d;
	int n = 0;

	snprintf(stale, sizeof(stale), "%s.tmp.Ab12Cd", fx->state);
	write_file(stale, "{\"version\":1,\"act");
	f = open_ok(fx);
	for (int i = 0; i < 20; i++) {
		assert_int_equal(faults_raise(f, FAULT_RESTARTS, "crash", NULL), i ? 0 : 1);
		assert_int_equal(faults_raise(f, FAULT_START_FAILED, "bad defs", NULL), 1);
		assert_int_equal(faults_clear(f, FAULT_START_FAILED, "started"), 1);
	}
	faults_close(f);
	d = opendir(fx->dir);
	assert_non_null(d);
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (strcmp(de->d_name, "faults.json") && strcmp(de->d_name, "events.log"))
			fail_msg("unexpected file %s", de->d_name);
		n++;
	}
	closedir(d);
	assert_int_equal(n, 2);
}

/* A reader polling the state file while it changes all the time always
 * finds a complete document (of varying size, so an in-place rewrite would
 * show). */
static void test_state_never_half_written(void **state)
{
	struct fx *fx = *state;
	struct faults *f = open_ok(fx);
	int status;
	pid_t pid;

	assert_int_equal(faults_raise(f, FAULT_RESTARTS, "start", NULL), 1);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct timespec t0, t;
		long reads = 0;

		clock_gettime(CLOCK_MONOTONIC, &t0);
		do {
			char buf[65536];
			ssize_t len;
			struct json_object *o;
			int fd = open(fx->state, O_RDONLY | O_CLOEXEC);

			if (fd < 0) {
				fprintf(stderr, "state file missing: %s\n", strerror(errno));
				_exit(1);
			}
			len = read(fd, buf, sizeof(buf) - 1);
			close(fd);
			if (len < 0)
				_exit(1);
			buf[len] = '\0';
			o = json_tokener_parse(buf);
			if (!o) {
				fprintf(stderr, "half-written state file: %s\n", buf);
				_exit(1);
			}
			json_object_put(o);
			reads++;
			clock_gettime(CLOCK_MONOTONIC, &t);
		} while ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 < 700);
		_exit(reads > 10 ? 0 : 2);
	}
	for (int i = 0; i < 300; i++) {
		struct json_object *d = json_object_new_object();
		char pad[2048];
		size_t n = (size_t)(i * 37) % (sizeof(pad) - 1);

		memset(pad, 'p', n);
		pad[n] = '\0';
		json_object_object_add(d, "pad", json_object_new_string(pad));
		assert_int_equal(faults_raise(f, FAULT_RESTARTS, "crash", d), 0);
		if (i % 2)
			assert_int_equal(faults_raise(f, FAULT_OVERLOADED, "busy", NULL), 1);
		else
			faults_clear(f, FAULT_OVERLOADED, "calm");
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	faults_close(f);
}

static void test_missing_state(void **state)
{
	struct fx *fx = *state;
	struct faults *f = open_ok(fx);
	struct json_object *act = faults_active_json(f);

	assert_int_equal(json_object_array_length(act), 0);
	json_object_put(act);
	assert_int_equal(log_count(fx->log), 0);
	faults_close(f);
}

/* A corrupt or unreadable state file: the service starts with no active
 * faults, err says why, a "state_reset" event tells the operator, and the
 * old file is kept aside. */
static void test_corrupt_state(void **state)
{
	struct fx *fx = *state;
	static const char *const bad[] = {
		"{\"version\":1,\"active\":[{\"id\":6,\"since\":10",
		"",
		"garbage",
		"{\"version\":1,\"active\":[]} trailing",
		"[]",
		"{\"active\":[]}",
		"{\"version\":2,\"active\":[]}",
		"{\"version\":1}",
		"{\"version\":1,\"active\":{}}",
		"{\"version\":1,\"active\":[{\"id\":\"6\",\"since\":10,\"reason\":\"x\"}]}",
		"{\"version\":1,\"active\":[{\"id\":6,\"reason\":\"x\"}]}",
		"{\"version\":1,\"active\":[{\"id\":6,\"since\":10,\"reason\":3}]}",
		"{\"version\":1,\"active\":[7]}",
		"{\"version\":1,\"active\":[{\"id\":6,\"since\":1,\"reason\":\"x\"},"
		"{\"id\":6,\"since\":2,\"reason\":\"y\"}]}",
		NULL, /* a directory where the file should be */
	};
	char aside[192];

	snprintf(aside, sizeof(aside), "%s.corrupt", fx->state);
	for (size_t i = 0; i < SE_ARRAY_SIZE(bad); i++) {
		char err[256] = "";
		struct faults *f;
		struct json_object *lines, *ev, *act;

		unlink(fx->log);
		unlink(aside);
		rmdir(aside);
		if (bad[i])
			write_file(fx->state, bad[i]);
		else
			assert_int_equal(mkdir(fx->state, 0755), 0);
		f = faults_open(&fx->opt, err);
		assert_non_null(f);
		if (!strstr(err, "fault state") || !strstr(err, fx->state))
			fail_msg("case %zu: err '%s'", i, err);
		act = faults_active_json(f);
		assert_int_equal(json_object_array_length(act), 0);
		json_object_put(act);
		lines = log_lines(fx->log);
		assert_int_equal(json_object_array_length(lines), 1);
		ev = json_object_array_get_idx(lines, 0);
		assert_string_equal(str_field(ev, "event"), "state_reset");
		assert_string_equal(str_field(ev, "message"), err);
		assert_string_equal(str_field(ev, "state_file"), fx->state);
		assert_string_equal(str_field(ev, "kept_as"), aside);
		str_field(ev, "error");
		assert_int_equal(int_field(ev, "time"), 1000);
		json_object_put(lines);
		/* kept aside, and the next change writes a good file */
		assert_int_equal(access(aside, F_OK), 0);
		assert_int_equal(access(fx->state, F_OK), -1);
		assert_int_equal(faults_raise(f, FAULT_RESTARTS, "crash", NULL), 1);
		faults_close(f);
		f = open_ok(fx);
		assert_true(faults_is_active(f, FAULT_RESTARTS));
		faults_close(f);
		unlink(fx->state);
	}
}

/* Ids this version does not know (from a newer one) are dropped, not a
 * reason to reset the others. */
static void test_state_unknown_id(void **state)
{
	struct fx *fx = *state;
	struct faults *f;
	int ids[8];

	write_file(fx->state, "{\"version\":1,\"active\":["
			      "{\"id\":42,\"since\":5,\"reason\":\"future\",\"detail\":{}},"
			      "{\"id\":11,\"since\":7,\"reason\":\"no BTF\"}]}");
	f = open_ok(fx);
	assert_int_equal(faults_active_ids(f, ids, 8), 1);
	assert_int_equal(ids[0], 11);
	assert_int_equal(log_count(fx->log), 0);
	faults_close(f);
}

/* A state file that cannot be written: the call says so, the fault is
 * active in memory and the event is written all the same. */
static void test_persist_failure(void **state)
{
	struct fx *fx = *state;
	char path[192];
	struct faults *f;

	snprintf(path, sizeof(path), "%s/missing/faults.json", fx->dir);
	fx->opt.state_file = path;
	f = open_ok(fx);
	assert_int_equal(faults_raise(f, FAULT_START_FAILED, "out of memory", NULL), -ENOENT);
	assert_true(faults_is_active(f, FAULT_START_FAILED));
	assert_int_equal(log_count(fx->log), 1);
	assert_int_equal(faults_clear(f, FAULT_START_FAILED, "started"), -ENOENT);
	assert_false(faults_is_active(f, FAULT_START_FAILED));
	assert_int_equal(log_count(fx->log), 2);
	faults_close(f);
}

/* ---- event log ---- */

static void test_event_log_file(void **state)
{
	struct fx *fx = *state;
	struct faults *f = open_ok(fx);
	struct stat st;
	char rotated[192];
	bool found = false;

	/* created at open, 0640, and the descriptor is not inherited */
	assert_int_equal(stat(fx->log, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0640);
	assert_int_equal(st.st_size, 0);
	for (int fd = 3; fd < 64; fd++) {
		struct stat fst;

		if (fstat(fd, &fst) == 0 && fst.st_ino == st.st_ino && fst.st_dev == st.st_dev) {
			assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
			assert_true(fcntl(fd, F_GETFL) & O_APPEND);
			found = true;
		}
	}
	assert_true(found);
	/* appends to what is there */
	append_raw(fx->log, "{\"event\":\"older\"}\n", 18);
	assert_int_equal(faults_raise(f, FAULT_RESTARTS, "crash", NULL), 1);
	assert_int_equal(log_count(fx->log), 2);

	/* rotated away (logrotate without copytruncate): a new file */
	snprintf(rotated, sizeof(rotated), "%s.1", fx->log);
	assert_int_equal(rename(fx->log, rotated), 0);
	assert_int_equal(faults_clear(f, FAULT_RESTARTS, "stable"), 1);
	assert_int_equal(log_count(rotated), 2);
	assert_int_equal(log_count(fx->log), 1);
	faults_close(f);
}

static void test_open_bad_event_log(void **state)
{
	struct fx *fx = *state;
	char path[192], err[256] = "";
	struct faults *f;

	snprintf(path, sizeof(path), "%s/nodir/events.log", fx->dir);
	fx->opt.event_log = path;
	errno = 0;
	f = faults_open(&fx->opt, err);
	assert_null(f);
	assert_int_equal(errno, ENOENT);
	assert_non_null(strstr(err, "event log"));
	assert_non_null(strstr(err, path));
}

static void test_null_event_log(void **state)
{
	struct fx *fx = *state;
	struct faults *f;
	struct json_object *h;

	fx->opt.event_log = NULL;
	fx->opt.to_syslog = true; /* exercised; openlog is the caller's */
	f = open_ok(fx);
	assert_int_equal(faults_raise(f, FAULT_RESTARTS, "crash", parse("{\"a\":1}")), 1);
	assert_int_equal(faults_raise(f, FAULT_RESTARTS, "crash", NULL), 0);
	assert_int_equal(faults_event(f, "poisoned_file", "x", parse("{\"b\":2}")), 0);
	assert_int_equal(faults_clear(f, FAULT_RESTARTS, "stable"), 1);
	assert_int_equal(faults_raise(f, FAULT_KERNEL_SUPPORT, "no BTF", NULL), 1);
	h = faults_history_json(f, 10);
	assert_non_null(h);
	assert_int_equal(json_object_array_length(h), 0);
	json_object_put(h);
	faults_close(f);
	assert_int_equal(access(fx->log, F_OK), -1);
	/* the state file still works */
	f = open_ok(fx);
	assert_true(faults_is_active(f, FAULT_KERNEL_SUPPORT));
	assert_false(faults_is_active(f, FAULT_RESTARTS));
	faults_close(f);
}

static void test_no_state_file(void **state)
{
	struct fx *fx = *state;
	struct faults *f;

	fx->opt.state_file = NULL;
	f = open_ok(fx);
	assert_int_equal(faults_raise(f, FAULT_RESTARTS, "crash", NULL), 1);
	assert_int_equal(faults_clear(f, FAULT_RESTARTS, "stable"), 1);
	assert_int_equal(log_count(fx->log), 2);
	faults_close(f);
	faults_close(NULL);
}

static void test_event_detail_merged(void **state)
{
	struct fx *fx = *state;
	struct faults *f = open_ok(fx);
	struct json_object *lines, *ev;

	fake_now = 2000;
	assert_int_equal(faults_event(f, "poisoned_file", "/srv/x.pdf crashed the scanner 3 times",
				      parse("{\"path\":\"/srv/x.pdf\",\"crashes\":3,"
					    "\"time\":5,\"event\":\"raise\",\"message\":\"m\"}")),
			 0);
	assert_int_equal(faults_event(f, "defs_quarantined", "daily.cld rejected", NULL), 0);
	assert_int_equal(faults_event(f, "odd", "array detail", parse("[1,2]")), 0);
	/* a null member (an on-access writer gone: uid unknown) is kept */
	assert_int_equal(
		faults_event(f, "onaccess_detection", "x", parse("{\"uid\":null,\"pid\":7}")), 0);
	lines = log_lines(fx->log);
	assert_int_equal(json_object_array_length(lines), 4);
	ev = json_object_array_get_idx(lines, 3);
	assert_true(json_object_object_get_ex(ev, "uid", &ev));
	assert_null(ev);
	assert_int_equal(int_field(json_object_array_get_idx(lines, 3), "pid"), 7);

	ev = json_object_array_get_idx(lines, 0);
	{
		static const char *const keys[] = {"time",    "time_text", "event",
						   "message", "path",	   "crashes"};

		assert_keys(ev, keys, SE_ARRAY_SIZE(keys));
	}
	/* the common fields are not overridden by the detail */
	assert_int_equal(int_field(ev, "time"), 2000);
	assert_string_equal(str_field(ev, "time_text"), "1970-01-01T00:33:20Z");
	assert_string_equal(str_field(ev, "event"), "poisoned_file");
	assert_string_equal(str_field(ev, "message"), "/srv/x.pdf crashed the scanner 3 times");
	assert_string_equal(str_field(ev, "path"), "/srv/x.pdf");
	assert_int_equal(int_field(ev, "crashes"), 3);

	ev = json_object_array_get_idx(lines, 1);
	{
		static const char *const keys[] = {"time", "time_text", "event", "message"};

		assert_keys(ev, keys, SE_ARRAY_SIZE(keys));
	}
	assert_string_equal(str_field(ev, "event"), "defs_quarantined");
	assert_json_eq(field(json_object_array_get_idx(lines, 2), "detail"), "[1,2]");
	json_object_put(lines);

	/* fault transitions are not plain events; types are identifiers */
	assert_int_equal(faults_event(f, "raise", "x", parse("{}")), -EINVAL);
	assert_int_equal(faults_event(f, "clear", "x", NULL), -EINVAL);
	assert_int_equal(faults_event(f, "", "x", NULL), -EINVAL);
	assert_int_equal(faults_event(f, NULL, "x", NULL), -EINVAL);
	assert_int_equal(faults_event(f, "two words", "x", NULL), -EINVAL);
	assert_int_equal(faults_event(f, "line\nbreak", "x", NULL), -EINVAL);
	assert_int_equal(log_count(fx->log), 4);
	faults_close(f);
}

/* ---- queries ---- */

static void test_active_json(void **state)
{
	struct fx *fx = *state;
	struct faults *f = open_ok(fx);
	struct json_object *act, *e, *again;
	static const char *const keys[] = {"id",	 "name",   "severity", "since",
					   "since_text", "reason", "detail",   "remediation"};

	fake_now = 1700000000;
	assert_int_equal(faults_raise(f, FAULT_START_FAILED, "insufficient memory",
				      parse("{\"needed\":1073741824,\"available\":536870912}")),
			 1);
	fake_now++;
	assert_int_equal(faults_raise(f, FAULT_USER_UNAVAILABLE, "group scanengine missing", NULL),
			 1);
	act = faults_active_json(f);
	assert_int_equal(json_object_array_length(act), 2);
	/* ascending by id */
	assert_int_equal(int_field(json_object_array_get_idx(act, 0), "id"), 5);
	e = json_object_array_get_idx(act, 1);
	assert_keys(e, keys, SE_ARRAY_SIZE(keys));
	assert_int_equal(int_field(e, "id"), 7);
	assert_string_equal(str_field(e, "name"), "scan service failed to start");
	assert_string_equal(str_field(e, "severity"), "critical");
	assert_int_equal(int_field(e, "since"), 1700000000);
	assert_string_equal(str_field(e, "since_text"), "2023-11-14T22:13:20Z");
	assert_string_equal(str_field(e, "reason"), "insufficient memory");
	assert_json_eq(field(e, "detail"), "{\"needed\":1073741824,\"available\":536870912}");
	assert_string_equal(str_field(e, "remediation"), faults_remediation(7));

	/* the caller's copy is its own */
	json_object_object_add(field(e, "detail"), "scribble", json_object_new_int(1));
	json_object_put(act);
	again = faults_active_json(f);
	assert_json_eq(field(json_object_array_get_idx(again, 1), "detail"),
		       "{\"needed\":1073741824,\"available\":536870912}");
	json_object_put(again);
	faults_close(f);
}

static void test_table(void **state)
{
	struct fx *fx = *state;
	static const struct {
		int id;
		const char *name, *severity, *hint;
	} want[] = {
		{5, "scan service user unavailable", "major", "useradd --system"},
		{6, "frequent scan service restarts", "critical", "scanctl status"},
		{7, "scan service failed to start", "critical", "defs/quarantine"},
		{8, "real-time file system monitor failed to start", "major", "CAP_SYS_ADMIN"},
		{11, "kernel-level support missing", "minor", "BTF"},
		{18, "event monitoring overloaded", "major", "OnAccessExcludeProcess"},
	};
	struct faults *f = open_ok(fx);
	struct json_object *act;

	for (size_t i = 0; i < SE_ARRAY_SIZE(want); i++) {
		assert_string_equal(faults_name(want[i].id), want[i].name);
		assert_non_null(faults_remediation(want[i].id));
		if (!strstr(faults_remediation(want[i].id), want[i].hint))
			fail_msg("remediation of %d does not mention %s", want[i].id, want[i].hint);
		assert_int_equal(faults_raise(f, want[i].id, "test", NULL), 1);
	}
	act = faults_active_json(f);
	assert_int_equal(json_object_array_length(act), SE_ARRAY_SIZE(want));
	for (size_t i = 0; i < SE_ARRAY_SIZE(want); i++) {
		struct json_object *e = json_object_array_get_idx(act, i);

		assert_int_equal(int_field(e, "id"), want[i].id);
		assert_string_equal(str_field(e, "name"), want[i].name);
		assert_string_equal(str_field(e, "severity"), want[i].severity);
	}
	json_object_put(act);
	faults_close(f);
}

/* ---- history ---- */

static void test_history(void **state)
{
	struct fx *fx = *state;
	struct faults *f = open_ok(fx);
	struct json_object *h, *lines;

	for (int i = 0; i < 10; i++) {
		fake_now = 1000 + i;
		if (i % 2 == 0)
			assert_int_equal(faults_raise(f, FAULT_RESTARTS, "crash", NULL), 1);
		else
			assert_int_equal(faults_clear(f, FAULT_RESTARTS, "stable"), 1);
	}
	h = faults_history_json(f, 4);
	assert_int_equal(json_object_array_length(h), 4);
	for (int i = 0; i < 4; i++) {
		struct json_object *ev = json_object_array_get_idx(h, (size_t)i);

		assert_int_equal(int_field(ev, "time"), 1006 + i);
		assert_string_equal(str_field(ev, "event"), i % 2 ? "clear" : "raise");
	}
	/* each as written */
	lines = log_lines(fx->log);
	assert_true(json_object_equal(json_object_array_get_idx(h, 3),
				      json_object_array_get_idx(lines, 9)));
	json_object_put(lines);
	json_object_put(h);

	h = faults_history_json(f, 100);
	assert_int_equal(json_object_array_length(h), 10);
	assert_int_equal(int_field(json_object_array_get_idx(h, 0), "time"), 1000);
	json_object_put(h);
	h = faults_history_json(f, 0);
	assert_int_equal(json_object_array_length(h), 0);
	json_object_put(h);

	/* a missing log is no history */
	unlink(fx->log);
	h = faults_history_json(f, 5);
	assert_non_null(h);
	assert_int_equal(json_object_array_length(h), 0);
	json_object_put(h);
	faults_close(f);
}

/* A log of several MB with lines spanning read chunks, damaged lines, a
 * line longer than the reader keeps, and a last line still being written:
 * the last N events come back complete, oldest first. */
static void test_history_big_log(void **state)
{
	struct fx *fx = *state;
	struct faults *f = open_ok(fx);
	struct json_object *h;
	size_t big = 400 * 1024, plen = 9973;
	char *pad = malloc(big + 1);
	char *line = malloc(big + 64);

	assert_non_null(pad);
	assert_non_null(line);
	/* ~4 MB of 10 KB events: most cross a 64 KB chunk boundary somewhere */
	memset(pad, 'p', plen);
	pad[plen] = '\0';
	for (int i = 0; i < 400; i++) {
		struct json_object *d = json_object_new_object();

		fake_now = 10000 + i;
		json_object_object_add(d, "seq", json_object_new_int(i));
		json_object_object_add(d, "pad", json_object_new_string(pad));
		assert_int_equal(faults_event(f, "filler", "padding", d), 0);
	}
	/* a valid but over-long line, and a damaged one, between the events */
	memset(pad, 'q', big);
	pad[big] = '\0';
	snprintf(line, big + 64, "{\"event\":\"huge\",\"pad\":\"%s\"}\n", pad);
	append_raw(fx->log, line, strlen(line));
	append_raw(fx->log, "{\"event\":\"cut", 13);
	append_raw(fx->log, "\n\n", 2);
	for (int i = 0; i < 3; i++) {
		struct json_object *d = json_object_new_object();

		fake_now = 20000 + i;
		json_object_object_add(d, "seq", json_object_new_int(1000 + i));
		json_object_object_add(d, "pad", json_object_new_string(pad + big - 30000));
		assert_int_equal(faults_event(f, "last", "recent", d), 0);
		append_raw(fx->log, "not json\n", 9);
	}
	/* a writer in the middle of its line */
	append_raw(fx->log, "{\"event\":\"partial\",", 19);

	h = faults_history_json(f, 5);
	assert_non_null(h);
	assert_int_equal(json_object_array_length(h), 5);
	assert_int_equal(int_field(json_object_array_get_idx(h, 0), "seq"), 398);
	assert_int_equal(int_field(json_object_array_get_idx(h, 1), "seq"), 399);
	for (int i = 0; i < 3; i++) {
		struct json_object *ev = json_object_array_get_idx(h, 2 + (size_t)i);

		assert_string_equal(str_field(ev, "event"), "last");
		assert_int_equal(int_field(ev, "seq"), 1000 + i);
		assert_int_equal(int_field(ev, "time"), 20000 + i);
		assert_int_equal(strlen(str_field(ev, "pad")), 30000);
	}
	assert_int_equal(strlen(str_field(json_object_array_get_idx(h, 0), "pad")), plen);
	json_object_put(h);

	/* deep: all 400 filler events, in order */
	h = faults_history_json(f, 100000);
	assert_int_equal(json_object_array_length(h), 403);
	for (int i = 0; i < 400; i++)
		assert_int_equal(int_field(json_object_array_get_idx(h, (size_t)i), "seq"), i);
	json_object_put(h);
	free(pad);
	free(line);
	faults_close(f);
}

/* ---- concurrency ---- */

#define WRITERS	    6
#define WRITER_REPS 150

/* Several processes, each with its own manager (and state file) on one
 * event log, raising and clearing with lines well above PIPE_BUF: every
 * line comes out whole. */
static void test_concurrent_appenders(void **state)
{
	struct fx *fx = *state;
	static const int ids[WRITERS] = {5, 6, 7, 8, 11, 18};
	pid_t pids[WRITERS];
	int per_id[19] = {0};
	struct json_object *lines;
	size_t n;

	for (int w = 0; w < WRITERS; w++) {
		pids[w] = fork();
		assert_true(pids[w] >= 0);
		if (pids[w] == 0) {
			char st[192], errbuf[256];
			struct faults_options o = fx->opt;
			struct faults *f;
			char *pad = malloc(20000);

			snprintf(st, sizeof(st), "%s/state-%d.json", fx->dir, w);
			o.state_file = st;
			f = faults_open(&o, errbuf);
			if (!f || !pad)
				_exit(1);
			memset(pad, 'a' + w, 19999);
			pad[19999] = '\0';
			for (int i = 0; i < WRITER_REPS; i++) {
				struct json_object *d = json_object_new_object();

				json_object_object_add(d, "writer", json_object_new_int(w));
				json_object_object_add(d, "pad", json_object_new_string(pad));
				if (faults_raise(f, ids[w], "load", d) != 1 ||
				    faults_clear(f, ids[w], "calm") != 1)
					_exit(1);
			}
			faults_close(f);
			free(pad);
			_exit(0);
		}
	}
	for (int w = 0; w < WRITERS; w++) {
		int status;

		assert_int_equal(waitpid(pids[w], &status, 0), pids[w]);
		assert_true(WIFEXITED(status));
		assert_int_equal(WEXITSTATUS(status), 0);
	}
	lines = log_lines(fx->log); /* fails on any line that is not whole */
	n = json_object_array_length(lines);
	assert_int_equal(n, WRITERS * WRITER_REPS * 2);
	for (size_t i = 0; i < n; i++) {
		struct json_object *ev = json_object_array_get_idx(lines, i);
		int id = (int)int_field(ev, "id");

		assert_true(id > 0 && id < 19);
		per_id[id]++;
		if (!strcmp(str_field(ev, "event"), "raise")) {
			struct json_object *d = field(ev, "detail");
			int w = (int)int_field(d, "writer");
			const char *p = str_field(d, "pad");

			assert_int_equal(ids[w], id);
			assert_int_equal(strlen(p), 19999);
			assert_int_equal(strspn(p, (char[]){(char)('a' + w), '\0'}), 19999);
		}
	}
	for (int w = 0; w < WRITERS; w++)
		assert_int_equal(per_id[ids[w]], WRITER_REPS * 2);
	json_object_put(lines);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_raise, setup, teardown),
		cmocka_unit_test_setup_teardown(test_raise_again_updates, setup, teardown),
		cmocka_unit_test_setup_teardown(test_clear, setup, teardown),
		cmocka_unit_test_setup_teardown(test_clear_inactive, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unknown_id, setup, teardown),
		cmocka_unit_test_setup_teardown(test_same_second, setup, teardown),
		cmocka_unit_test_setup_teardown(test_clock_backwards, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reason_one_line, setup, teardown),
		cmocka_unit_test_setup_teardown(test_detail_bounded, setup, teardown),
		cmocka_unit_test_setup_teardown(test_persistence, setup, teardown),
		cmocka_unit_test_setup_teardown(test_state_file_format, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_temp_files, setup, teardown),
		cmocka_unit_test_setup_teardown(test_state_never_half_written, setup, teardown),
		cmocka_unit_test_setup_teardown(test_missing_state, setup, teardown),
		cmocka_unit_test_setup_teardown(test_corrupt_state, setup, teardown),
		cmocka_unit_test_setup_teardown(test_state_unknown_id, setup, teardown),
		cmocka_unit_test_setup_teardown(test_persist_failure, setup, teardown),
		cmocka_unit_test_setup_teardown(test_event_log_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_open_bad_event_log, setup, teardown),
		cmocka_unit_test_setup_teardown(test_null_event_log, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_state_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_event_detail_merged, setup, teardown),
		cmocka_unit_test_setup_teardown(test_active_json, setup, teardown),
		cmocka_unit_test_setup_teardown(test_table, setup, teardown),
		cmocka_unit_test_setup_teardown(test_history, setup, teardown),
		cmocka_unit_test_setup_teardown(test_history_big_log, setup, teardown),
		cmocka_unit_test_setup_teardown(test_concurrent_appenders, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
