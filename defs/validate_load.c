/* validate_load: stages 6 and 7 of the validation (see validate.h): the
 * test load and the canary, in one child process. */
#include "defs/validate_int.h"
#include "common/util.h"
#include "defs/canary.h"
#include "sandbox/memlimit.h"
#include "sandbox/sandbox.h"
#include "scanengine/engine.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/resource.h>
#include <sys/wait.h>

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif
#ifndef UNDER_ASAN
#define UNDER_ASAN 0
#endif

#define CHILD_MAX_OUT (1u << 20) /* the test load's report */

/* ---- stages 6 and 7: test load and canary, in one child process ---- */

/* libclamav loads daily first (its .ign2 and .fp apply to what follows),
 * then the rest in name order. */
static int load_order(const void *a, const void *b)
{
	const struct vfile *x = *(const struct vfile *const *)a;
	const struct vfile *y = *(const struct vfile *const *)b;
	int dx = strcmp(x->db, "daily") == 0, dy = strcmp(y->db, "daily") == 0;

	if (dx != dy)
		return dy - dx;
	return strcmp(x->setname, y->setname);
}

struct child_progress {
	int fd;
	uint64_t last_ms, last_done;
	const char *last_phase;
};

/* At most four lines a second, and each (phase, count) once. */
static void child_progress_cb(void *arg, const char *phase, uint64_t done, uint64_t total)
{
	struct child_progress *p = arg;
	uint64_t now = util_now_ms();

	if (p->last_phase == phase && p->last_done == done)
		return;
	if (now - p->last_ms < 250 && done != total && p->last_phase == phase)
		return;
	p->last_ms = now;
	p->last_done = done;
	p->last_phase = phase;
	if (total)
		dprintf(p->fd, "P %s %llu/%llu\n", phase, (unsigned long long)done,
			(unsigned long long)total);
}

static void child_send(int fd, char tag, struct json_object *o)
{
	const char *s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);

	dprintf(fd, "%c %s\n", tag, s ? s : "{}");
}

/* VmHWM from /proc/self/status, read through fd (opened before the
 * confinement); 0 if unknown. */
static uint64_t vm_hwm_kib(int fd)
{
	char buf[4096], *p;
	unsigned long long kib = 0;
	ssize_t n = fd >= 0 ? pread(fd, buf, sizeof(buf) - 1, 0) : -1;

	if (n <= 0)
		return 0;
	buf[n] = '\0';
	p = strstr(buf, "\nVmHWM:");
	if (!p || sscanf(p + 1, "VmHWM: %llu kB", &kib) != 1)
		return 0;
	return kib;
}

/* The test load: never returns. Reports "L {...}" after loading and
 * "C {...}" after the canary scans on wfd. */
static void __attribute__((noreturn))
child_main(struct vctx *c, const struct canary_set *samples, int wfd)
{
	const struct config *cfg = c->pol->cfg;
	struct child_progress prog = {.fd = wfd};
	struct vfile **order = calloc(c->nf, sizeof(*order));
	const char **paths = calloc(c->nf, sizeof(*paths));
	char(*pbuf)[PATH_MAX + 300] = calloc(c->nf, sizeof(*pbuf));
	struct engine_file_load *per = calloc(c->nf, sizeof(*per));
	struct json_object *o = json_object_new_object(), *a, *ms, *kib;
	struct msg_engine_info info;
	struct sandbox_worker_policy sp = {.scratch_dir = c->dir};
	char err[512];
	struct engine *e;
	uint64_t t0;
	int status_fd, rc;

	if (!order || !paths || !pbuf || !per || !o)
		_exit(70);
	if (!UNDER_ASAN && cfg->validator_memory_limit) {
		struct rlimit rl = {cfg->validator_memory_limit, cfg->validator_memory_limit};

		setrlimit(RLIMIT_AS, &rl);
	}
	if (geteuid() == 0 && c->pol->id && c->pol->id->valid &&
	    sandbox_drop_privileges(c->pol->id) < 0) {
		dprintf(wfd, "E cannot switch to the scan account %s\n", c->pol->id->name);
		_exit(70);
	}
	if (engine_global_init(err)) {
		dprintf(wfd, "E %s\n", err);
		_exit(70);
	}
	/* Confined as a scan worker: libclamav parses untrusted definitions
	 * here, and may touch nothing but the work directory (the set, its
	 * scratch space) and the descriptors in hand. */
	status_fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
	rc = engine_keep_statm();
	rc = rc ?: sandbox_enter_worker(&sp);
	if (rc < 0) {
		dprintf(wfd, "E cannot confine the test load: %s\n", strerror(-rc));
		_exit(70);
	}
	for (size_t i = 0; i < c->nf; i++)
		order[i] = &c->f[i];
	qsort(order, c->nf, sizeof(*order), load_order);
	for (size_t i = 0; i < c->nf; i++) {
		snprintf(pbuf[i], sizeof(pbuf[i]), "%s/%s", c->setdir, order[i]->setname);
		paths[i] = pbuf[i];
	}
	engine_set_progress(child_progress_cb, &prog);
	t0 = util_now_ms();
	e = engine_load_files(cfg, paths, c->nf, ENGINE_LOAD_ALL_SIGS, per, c->tmpdir, &info, err);
	engine_set_progress(NULL, NULL);
	if (!e) {
		json_object_object_add(o, "error", json_object_new_string(err));
		json_object_object_add(o, "errno", json_object_new_int(errno));
		child_send(wfd, 'L', o);
		_exit(0);
	}
	json_object_object_add(o, "ms", json_object_new_int64((int64_t)(util_now_ms() - t0)));
	json_object_object_add(o, "total", json_object_new_int64(info.sigs));
	json_object_object_add(o, "hwm_kib", json_object_new_int64((int64_t)vm_hwm_kib(status_fd)));
	a = json_object_new_object();
	ms = json_object_new_object();
	kib = json_object_new_object();
	for (size_t i = 0; i < c->nf; i++) {
		json_object_object_add(a, order[i]->setname, json_object_new_int64(per[i].sigs));
		json_object_object_add(ms, order[i]->setname, json_object_new_int64(per[i].ms));
		json_object_object_add(kib, order[i]->setname,
				       json_object_new_int64((int64_t)per[i].rss_kib));
	}
	json_object_object_add(o, "sigs", a);
	json_object_object_add(o, "file_ms", ms);
	json_object_object_add(o, "file_kib", kib);
	child_send(wfd, 'L', o);
	json_object_put(o);

	o = json_object_new_object();
	a = json_object_new_array();
	t0 = util_now_ms();
	for (size_t i = 0; i < samples->n; i++) {
		const struct canary_sample *s = &samples->v[i];
		struct engine_result r;
		struct json_object *m;

		if (engine_scan(e, s->fd, false, &r) < 0 || r.verdict == VERDICT_ERROR)
			continue;
		if ((r.verdict == VERDICT_VIRUS) == s->must_detect)
			continue;
		m = json_object_new_object();
		json_object_object_add(m, "sample", json_object_new_string(s->label));
		json_object_object_add(m, "detect", json_object_new_boolean(s->must_detect));
		if (r.nnames)
			json_object_object_add(m, "name", json_object_new_string(r.names[0]));
		json_object_array_add(a, m);
	}
	json_object_object_add(o, "ms", json_object_new_int64((int64_t)(util_now_ms() - t0)));
	json_object_object_add(o, "checked", json_object_new_int64((int64_t)samples->n));
	json_object_object_add(o, "wrong", a);
	child_send(wfd, 'C', o);
	_exit(0);
}

struct child_run {
	struct json_object *load, *canary;
	uint64_t load_done_ms, canary_ms;
	char error[400];
	int status;
	uint64_t maxrss_kib;
	uint64_t oom_kills; /* the host's, when the child started */
	bool timed_out;
	bool oom_killed; /* SIGKILLed by nobody here while the OOM killer killed */
};

/* One line from the child. */
static void child_line(struct vctx *c, struct child_run *run, char *line, uint64_t t0)
{
	if (line[0] == 'P' && line[1] == ' ') {
		vctx_progress(c, "test load: %s", line + 2);
	} else if (line[0] == 'E' && line[1] == ' ') {
		util_strlcpy(run->error, line + 2, sizeof(run->error));
	} else if (line[0] == 'L' && line[1] == ' ' && !run->load) {
		run->load = json_tokener_parse(line + 2);
		run->load_done_ms = util_now_ms() - t0;
	} else if (line[0] == 'C' && line[1] == ' ' && !run->canary) {
		run->canary = json_tokener_parse(line + 2);
		run->canary_ms = util_now_ms() - t0 - run->load_done_ms;
	}
}

static int run_child(struct vctx *c, const struct canary_set *samples, struct child_run *run)
{
	uint64_t t0 = util_now_ms(), deadline;
	char *buf = NULL;
	size_t len = 0;
	struct rusage ru;
	int p[2], r = 0;
	pid_t pid;

	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	fflush(NULL);
	run->oom_kills = memlimit_host_oom_kills();
	pid = fork();
	if (pid < 0) {
		r = -errno;
		close(p[0]);
		close(p[1]);
		return r;
	}
	if (pid == 0) {
		close(p[0]);
		child_main(c, samples, p[1]);
	}
	close(p[1]);
	deadline = t0 + (uint64_t)c->pol->cfg->validator_timeout * 1000u;
	buf = malloc(CHILD_MAX_OUT + 1);
	if (!buf) {
		kill(pid, SIGKILL);
		r = -ENOMEM;
	}
	while (!r) {
		struct pollfd pfd = {.fd = p[0], .events = POLLIN};
		uint64_t now = util_now_ms();
		ssize_t n;
		char *nl;

		if (now >= deadline) {
			run->timed_out = true;
			kill(pid, SIGKILL);
			break;
		}
		n = poll(&pfd, 1, (int)SE_MIN(deadline - now, (uint64_t)1000));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			continue;
		n = read(p[0], buf + len, CHILD_MAX_OUT - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
		buf[len] = '\0';
		while ((nl = strchr(buf, '\n'))) {
			*nl = '\0';
			child_line(c, run, buf, t0);
			len -= (size_t)(nl + 1 - buf);
			memmove(buf, nl + 1, len + 1);
		}
		if (len == CHILD_MAX_OUT) {
			kill(pid, SIGKILL);
			break;
		}
	}
	close(p[0]);
	free(buf);
	while (wait4(pid, &run->status, 0, &ru) < 0)
		if (errno != EINTR) {
			memset(&ru, 0, sizeof(ru));
			break;
		}
	run->maxrss_kib = (uint64_t)ru.ru_maxrss;
	run->oom_killed = !run->timed_out && WIFSIGNALED(run->status) &&
			  WTERMSIG(run->status) == SIGKILL &&
			  memlimit_host_oom_kills() > run->oom_kills;
	return r;
}

static uint64_t jint(struct json_object *o, const char *key)
{
	struct json_object *v;

	return json_object_object_get_ex(o, key, &v) ? (uint64_t)json_object_get_int64(v) : 0;
}

static const char *jstr(struct json_object *o, const char *key)
{
	struct json_object *v;

	return json_object_object_get_ex(o, key, &v) ? json_object_get_string(v) : NULL;
}

static int load_failure_why(struct vctx *c, const struct child_run *run);

/* Drop "<set directory>/" from libclamav's messages: the set is named by
 * its files (the work directory is gone by the time anyone reads it). */
static void strip_setdir(const struct vctx *c, char *msg)
{
	char prefix[PATH_MAX + 16];
	size_t n;
	char *p;

	n = (size_t)snprintf(prefix, sizeof(prefix), "%s/", c->setdir);
	while ((p = strstr(msg, prefix)))
		memmove(p, p + n, strlen(p + n) + 1);
}

static int load_failure(struct vctx *c, const struct child_run *run)
{
	int r = load_failure_why(c, run);

	strip_setdir(c, c->why);
	return r;
}

static int load_failure_why(struct vctx *c, const struct child_run *run)
{
	const struct config *cfg = c->pol->cfg;
	const char *err = run->load ? jstr(run->load, "error") : NULL;

	if (run->timed_out)
		return vctx_fail(c, NULL, "no result within %u s (ValidatorTimeout)",
				 cfg->validator_timeout);
	/* Not the set's fault: it is not judged (nor quarantined), and can
	 * be tried again when there is memory. */
	if (run->oom_killed) {
		snprintf(c->why, sizeof(c->why),
			 "insufficient memory: the test load was killed by the OOM killer "
			 "(%llu MiB in use when it died); the set was not judged",
			 (unsigned long long)(run->maxrss_kib >> 10));
		return -ENOMEM;
	}
	if (run->error[0])
		return vctx_fail(c, NULL, "%s", run->error);
	if (err && jint(run->load, "errno") == ENOMEM)
		return vctx_fail(c, NULL, "out of memory under ValidatorMemoryLimit %llu MiB: %s",
				 (unsigned long long)(cfg->validator_memory_limit >> 20), err);
	if (err)
		return vctx_fail(c, NULL, "%s", err);
	if (WIFSIGNALED(run->status))
		return vctx_fail(c, NULL,
				 "the validator process died of signal %d (%s) while loading",
				 WTERMSIG(run->status), strsignal(WTERMSIG(run->status)));
	return vctx_fail(c, NULL, "the validator process exited with status %d without a result",
			 WIFEXITED(run->status) ? WEXITSTATUS(run->status) : -1);
}

int validate_stage_test_load(struct vctx *c)
{
	struct canary_set samples;
	struct child_run run = {0};
	struct json_object *sigs;
	char err[CANARY_ERR_LEN];
	uint64_t total;
	int r;

	/* Opened here, with the caller's rights; the child reads them through
	 * the descriptors after dropping privileges. */
	r = canary_open(c->pol->cfg->canary_dir, c->pol->cfg->clean_corpus_dir, &samples, err);
	if (r) {
		snprintf(c->why, sizeof(c->why), "internal error: %.400s", err);
		return r;
	}
	r = run_child(c, &samples, &run);
	canary_close(&samples);
	c->res->engine_kib = run.maxrss_kib;
	c->child = run.canary;
	if (r) {
		json_object_put(run.load);
		return vctx_internal(c, r, "validator process");
	}
	if (!run.load || jstr(run.load, "error")) {
		r = load_failure(c, &run);
		json_object_put(run.load);
		return r;
	}
	total = jint(run.load, "total");
	c->res->loaded_sigs = (uint32_t)total;
	if (run.load && json_object_object_get_ex(run.load, "sigs", &sigs)) {
		for (size_t i = 0; i < c->nf; i++)
			c->f[i].loaded = (uint32_t)jint(sigs, c->f[i].setname);
	}
	if (run.load && json_object_object_get_ex(run.load, "file_ms", &sigs)) {
		for (size_t i = 0; i < c->nf; i++)
			c->f[i].load_ms = (uint32_t)jint(sigs, c->f[i].setname);
	}
	if (run.load && json_object_object_get_ex(run.load, "file_kib", &sigs)) {
		for (size_t i = 0; i < c->nf; i++)
			c->f[i].load_kib = jint(sigs, c->f[i].setname);
	}
	json_object_put(run.load);
	c->res->stages[VS_CANARY].ms = run.canary_ms;
	for (size_t i = 0; i < c->nf; i++) {
		struct vfile *v = &c->f[i];

		if (v->type == CVD_TYPE_UNKNOWN || !v->is_new)
			continue;
		if (v->loaded < v->hdr.sigs)
			return vctx_fail(c, v->base, "%s: %u signatures loaded, its header says %u",
					 v->base, v->loaded, v->hdr.sigs);
	}
	vctx_note(c, "%llu signatures from %zu files loaded and compiled in %llu ms, peak %llu MiB",
		  (unsigned long long)total, c->nf, (unsigned long long)run.load_done_ms,
		  (unsigned long long)(run.maxrss_kib >> 10));
	return 0;
}

int validate_stage_canary(struct vctx *c)
{
	struct json_object *wrong;
	size_t n;

	if (!c->child)
		return vctx_fail(c, NULL, "no engine to scan with: the test load did not complete");
	if (!json_object_object_get_ex(c->child, "wrong", &wrong))
		return vctx_fail(c, NULL, "the validator process sent no canary results");
	n = json_object_array_length(wrong);
	for (size_t i = 0; i < n; i++) {
		struct json_object *m = json_object_array_get_idx(wrong, i);
		const char *sample = jstr(m, "sample"), *name = jstr(m, "name");
		struct json_object *d;
		bool detect =
			json_object_object_get_ex(m, "detect", &d) && json_object_get_boolean(d);

		if (detect)
			return vctx_fail(
				c, sample,
				"canary %s not detected: the set misses what every set must "
				"detect",
				sample);
		return vctx_fail(c, sample,
				 "clean %s detected as %s: a signature that matches everyday files",
				 sample, name ? name : "?");
	}
	vctx_note(c, "%llu samples: canaries detected, clean files clean",
		  (unsigned long long)jint(c->child, "checked"));
	return 0;
}
