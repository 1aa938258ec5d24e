/* faults: the fault model of DESIGN.md section 2 (see faults.h). */
#include "scanengine/faults.h"
#include "common/jsonutil.h"
#include "common/util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#define FAULTS_ERR_LEN	     256
#define FAULTS_STATE_VERSION 1
/* The state holds at most one entry per fault with a bounded detail, so
 * anything bigger is not ours. */
#define FAULTS_STATE_MAX (1024 * 1024)
/* Reasons are one line for a person; details are bounded so that an event
 * line stays small enough for the history reader and for syslog readers. */
#define FAULTS_REASON_MAX 1024
#define FAULTS_DETAIL_MAX (32 * 1024)
#define FAULTS_TYPE_MAX	  64
/* A detail sits 2 levels down in the state file; json-c parses 32 levels. */
#define FAULTS_DETAIL_DEPTH 16
/* History: lines longer than this are not ours (or are damaged): skipped
 * without being held in memory. */
#define FAULTS_LINE_MAX (256 * 1024)
#define FAULTS_CHUNK	(64 * 1024)
/* Paths in details are common: "/" escaped as "\/" only makes them harder
 * to read and grep. */
#define FAULTS_JSON_LINE  (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)
#define FAULTS_JSON_STATE (JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE)

struct fault_def {
	int id;
	const char *name;     /* DESIGN.md section 2 */
	const char *severity; /* "critical", "major", "minor" */
	int prio;	      /* syslog priority of the raise line */
	const char *remediation;
};

/* Severity says how much protection is lost while the fault is active:
 * critical - files are not scanned, or scanned only best-effort (6, 7);
 * major - protection is reduced or degraded but scanning works (5: scans run
 * as root; 8: on-demand only; 18: the overload policy applies);
 * minor - an optional sensor is missing (11). */
static const struct fault_def fault_defs[] = {
	{
		FAULT_USER_UNAVAILABLE,
		"scan service user unavailable",
		"major",
		LOG_ERR,
		"The dedicated scan account (User, default scanengine) or its group is missing, "
		"or an install or state directory has lost its expected owner or mode; the detail "
		"says which. Until this is fixed, files are scanned as root. Recreate the account "
		"with 'make install' (scripts/create-user.sh), or by hand: 'groupadd --system "
		"scanengine; useradd --system --gid scanengine --no-create-home --home-dir "
		"/nonexistent --shell /usr/sbin/nologin scanengine'. Restore the directory named in "
		"the detail to the owner and mode it expects, for install and state directories "
		"(StateDirectory, default /var/lib/scanengine) 'chown root:root DIR; chmod 0755 DIR'. "
		"The fault clears once the account and the modes are right again.",
	},
	{
		FAULT_RESTARTS,
		"frequent scan service restarts",
		"critical",
		LOG_CRIT,
		"The scan workers crashed repeatedly: a file may be crashing the scanner. Scanning "
		"goes on best-effort with a restart back-off. The detail lists the file(s) in flight "
		"at each crash; 'scanctl status' lists the poisoned files that are no longer fed to "
		"the scanner (their scans answer 'Scanner.Crashed ERROR'). Keep a copy of those "
		"files for analysis without opening them, check the system journal for the signal "
		"that killed the workers, update the definitions ('scanctl update') and libclamav "
		"(your distribution's package), and report a crash that still reproduces to the "
		"libclamav developers with the file. The fault clears after a stable period without "
		"crashes (default 10 minutes).",
	},
	{
		FAULT_START_FAILED,
		"scan service failed to start",
		"critical",
		LOG_CRIT,
		"The scan engine could not be started; the reason says why. Bad definitions: the set "
		"that failed to load was quarantined under <StateDirectory>/defs/quarantine/ (its "
		"reason.json says why) and the previous good set restored; check the update source "
		"(mirror) before the next update, 'scanctl defs' shows the generations. Insufficient "
		"memory: the detail gives the memory needed and the memory available; raise "
		"MemoryLimit or add memory (or stop what uses it), then 'scanctl reload'. Any other "
		"reason names the file or permission at fault (e.g. DatabaseDirectory not readable "
		"by User): fix it, then 'scanctl reload'. The fault clears when the engine starts.",
	},
	{
		FAULT_MONITOR_FAILED,
		"real-time file system monitor failed to start",
		"major",
		LOG_ERR,
		"On-access scanning is enabled but fanotify could not be set up, so files are not "
		"scanned when opened; on-demand scans still work. The reason says which step failed. "
		"The service needs CAP_SYS_ADMIN (run it as root; under systemd do not drop "
		"CAP_SYS_ADMIN from CapabilityBoundingSet) and a kernel with fanotify permission "
		"events (CONFIG_FANOTIFY, CONFIG_FANOTIFY_ACCESS_PERMISSIONS; exec events need Linux "
		"5.0 or later). Check that every OnAccess path of the configuration "
		"(OnAccessIncludePath, OnAccessMountPath) exists and is not on procfs, NFS or FUSE. "
		"Then restart the service. The fault clears when monitoring is running.",
	},
	{
		FAULT_KERNEL_SUPPORT,
		"kernel-level support missing",
		"minor",
		LOG_WARNING,
		"An eBPF sensor is enabled but could not be loaded; the service runs without it. It "
		"needs a kernel with BPF and BTF (CONFIG_BPF_SYSCALL, CONFIG_DEBUG_INFO_BTF: "
		"/sys/kernel/btf/vmlinux must exist), CAP_BPF and CAP_PERFMON (or CAP_SYS_ADMIN), and "
		"no kernel lockdown that forbids BPF ('dmesg' shows verifier and lockdown messages). "
		"Boot a kernel with BTF, or disable the sensor in the configuration. The fault clears "
		"when the sensor runs.",
	},
	{
		FAULT_OVERLOADED,
		"event monitoring overloaded",
		"major",
		LOG_ERR,
		"File events arrive faster than they are scanned: the event queue stayed above its "
		"high-water mark, or the kernel queue overflowed. The overload policy applies "
		"meanwhile. The detail lists the processes generating most events: exclude busy "
		"trusted ones (backup agents, build tools, databases) with OnAccessExcludeProcess, "
		"exclude paths that need no scanning, or add scan workers (MaxThreads). The fault "
		"clears when the load stays under the low-water mark for a while.",
	},
};

#define NFAULTS SE_ARRAY_SIZE(fault_defs)

struct fault_state {
	bool active;
	time_t since;
	char *reason;		    /* NULL when inactive */
	struct json_object *detail; /* NULL when inactive */
};

struct faults {
	char *state_file; /* NULL: the active set is not persisted */
	char *event_log;  /* NULL: no event log */
	int log_fd;
	bool to_syslog;
	time_t (*clock)(void);
	struct fault_state st[NFAULTS]; /* parallel to fault_defs */
};

static int def_index(int id)
{
	for (size_t i = 0; i < NFAULTS; i++)
		if (fault_defs[i].id == id)
			return (int)i;
	return -1;
}

static time_t now(const struct faults *f)
{
	return f->clock ? f->clock() : time(NULL);
}

/* iso_time: "2024-05-01T12:00:00Z" (UTC, so lines from hosts in different
 * zones sort and compare as text). */
static void iso_time(time_t t, char *buf, size_t len)
{
	struct tm tm;

	if (!gmtime_r(&t, &tm) || !strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm))
		util_strlcpy(buf, "", len);
}

/* one_line: a copy of s (NULL: "") as a single line of at most
 * FAULTS_REASON_MAX bytes: control characters become spaces, so a reason
 * cannot forge a second syslog line, and a cut never splits a UTF-8
 * sequence. Returns NULL on ENOMEM. */
static char *one_line(const char *s)
{
	size_t len = s ? strnlen(s, FAULTS_REASON_MAX + 1) : 0;
	char *d;

	if (len > FAULTS_REASON_MAX) {
		len = FAULTS_REASON_MAX;
		while (len > 0 && ((unsigned char)s[len] & 0xc0) == 0x80)
			len--;
	}
	d = malloc(len + 1);
	if (!d)
		return NULL;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		d[i] = c < 0x20 || c == 0x7f ? ' ' : (char)c;
	}
	d[len] = '\0';
	return d;
}

/* too_deep: whether o nests deeper than depth levels. */
static bool too_deep(struct json_object *o, int depth)
{
	if (depth < 0)
		return true;
	if (json_object_is_type(o, json_type_object)) {
		json_object_object_foreach(o, key, val)
		{
			(void)key;
			if (too_deep(val, depth - 1))
				return true;
		}
	} else if (json_object_is_type(o, json_type_array)) {
		for (size_t i = 0; i < json_object_array_length(o); i++)
			if (too_deep(json_object_array_get_idx(o, i), depth - 1))
				return true;
	}
	return false;
}

/* detail_bound: the detail to keep for detail (taken over): {} for NULL, a
 * short note in place of one that would make event lines unreasonably
 * long, or nest deeper than json-c's parser accepts when the state file and
 * the history are read back. Returns NULL on ENOMEM. */
static struct json_object *detail_bound(struct json_object *detail)
{
	struct json_object *note;
	size_t len;

	if (!detail)
		return json_object_new_object();
	len = strlen(json_object_to_json_string_ext(detail, FAULTS_JSON_LINE));
	if (len <= FAULTS_DETAIL_MAX && !too_deep(detail, FAULTS_DETAIL_DEPTH))
		return detail;
	json_object_put(detail);
	note = json_object_new_object();
	if (!note)
		return NULL;
	if (jsonutil_add(note, "truncated", json_object_new_boolean(true)) < 0 ||
	    jsonutil_add(note, "bytes", json_object_new_int64((int64_t)len)) < 0) {
		json_object_put(note);
		return NULL;
	}
	return note;
}

/* log_follow: make log_fd the file the event log path names now. The log
 * may have been rotated (renamed or removed) since it was opened; following
 * the path is what logrotate expects of a program that has no reopen
 * command. Events are rare: two stats each cost nothing. Returns 0 or
 * -errno (an old descriptor is kept, better than losing the event). */
static int log_follow(struct faults *f)
{
	struct stat a, b;
	int fd;

	if (f->log_fd >= 0 && stat(f->event_log, &a) == 0 && fstat(f->log_fd, &b) == 0 &&
	    a.st_dev == b.st_dev && a.st_ino == b.st_ino)
		return 0;
	fd = open(f->event_log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0640);
	if (fd < 0)
		return f->log_fd >= 0 ? 0 : -errno;
	util_close(&f->log_fd);
	f->log_fd = fd;
	return 0;
}

/* log_append: append one event as one line. Returns 0 or -errno. */
static int log_append(struct faults *f, struct json_object *ev)
{
	const char *s;
	size_t len;
	char *line;
	ssize_t n;
	int r;

	if (!f->event_log)
		return 0;
	r = log_follow(f);
	if (r < 0)
		return r;
	s = json_object_to_json_string_ext(ev, FAULTS_JSON_LINE);
	if (!s)
		return -ENOMEM;
	len = strlen(s);
	line = malloc(len + 1);
	if (!line)
		return -ENOMEM;
	memcpy(line, s, len);
	line[len++] = '\n';
	/* One write(2) of the whole line on an O_APPEND descriptor: the kernel
	 * puts it at the end of the file in one piece, so the lines of other
	 * writers (other processes on the same log) never interleave with it. */
	do
		n = write(f->log_fd, line, len);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		r = -errno;
	else if ((size_t)n < len)
		/* Only on a full disk or a file size limit. Finish the line so
		 * the next one starts on its own; the history reader skips it
		 * if it was cut. */
		r = util_write_all(f->log_fd, line + n, len - (size_t)n);
	free(line);
	return r;
}

/* event_new: {time, time_text, event: type}, the fields every event line
 * starts with. Returns NULL on ENOMEM. */
static struct json_object *event_new(time_t t, const char *type)
{
	struct json_object *ev = json_object_new_object();
	char text[32];

	if (!ev)
		return NULL;
	iso_time(t, text, sizeof(text));
	if (jsonutil_add(ev, "time", json_object_new_int64((int64_t)t)) < 0 ||
	    jsonutil_add(ev, "time_text", json_object_new_string(text)) < 0 ||
	    jsonutil_add(ev, "event", json_object_new_string(type)) < 0) {
		json_object_put(ev);
		return NULL;
	}
	return ev;
}

/* emit_transition: the event line and syslog line of a raise or clear of
 * fault_defs[i]. detail is borrowed. active_seconds < 0: a raise. Returns
 * 0 or -errno (event log); syslog is best effort. */
static int emit_transition(struct faults *f, size_t i, time_t t, const char *reason,
			   struct json_object *detail, int64_t active_seconds)
{
	const struct fault_def *d = &fault_defs[i];
	bool is_raise = active_seconds < 0;
	struct json_object *ev;
	int r;

	if (f->to_syslog) {
		if (is_raise)
			syslog(d->prio, "fault %d (%s) raised: %s", d->id, d->name, reason);
		else
			syslog(LOG_NOTICE, "fault %d (%s) cleared: %s", d->id, d->name, reason);
	}
	if (!f->event_log)
		return 0;
	ev = event_new(t, is_raise ? "raise" : "clear");
	if (!ev)
		return -ENOMEM;
	r = jsonutil_add(ev, "id", json_object_new_int(d->id));
	if (!r)
		r = jsonutil_add(ev, "name", json_object_new_string(d->name));
	if (!r)
		r = jsonutil_add(ev, "severity", json_object_new_string(d->severity));
	if (!r)
		r = jsonutil_add(ev, "reason", json_object_new_string(reason));
	if (!r)
		r = jsonutil_add(ev, "detail",
				 detail ? json_object_get(detail) : json_object_new_object());
	if (!r && !is_raise)
		r = jsonutil_add(ev, "active_seconds", json_object_new_int64(active_seconds));
	if (!r)
		r = log_append(f, ev);
	json_object_put(ev);
	return r;
}

/* state_json: the persisted form of the active set. Returns NULL on
 * ENOMEM. */
static struct json_object *state_json(const struct faults *f)
{
	struct json_object *doc = json_object_new_object();
	struct json_object *arr = json_object_new_array();

	if (!doc || !arr ||
	    jsonutil_add(doc, "version", json_object_new_int(FAULTS_STATE_VERSION)) < 0)
		goto err_put;
	if (json_object_object_add(doc, "active", arr) < 0)
		goto err_put;
	for (size_t i = 0; i < NFAULTS; i++) {
		const struct fault_state *s = &f->st[i];
		struct json_object *e;

		if (!s->active)
			continue;
		e = json_object_new_object();
		if (!e || json_object_array_add(arr, e) < 0) {
			json_object_put(e);
			goto err_put_doc;
		}
		if (jsonutil_add(e, "id", json_object_new_int(fault_defs[i].id)) < 0 ||
		    jsonutil_add(e, "since", json_object_new_int64((int64_t)s->since)) < 0 ||
		    jsonutil_add(e, "reason", json_object_new_string(s->reason)) < 0 ||
		    jsonutil_add(e, "detail", json_object_get(s->detail)) < 0)
			goto err_put_doc;
	}
	return doc;

err_put:
	json_object_put(arr); /* not yet owned by doc */
err_put_doc:
	json_object_put(doc);
	return NULL;
}

/* dir_of: the directory part of path ("." when it has none). Returns a new
 * string or NULL on ENOMEM. */
static char *dir_of(const char *path)
{
	const char *slash = strrchr(path, '/');

	if (!slash)
		return strdup(".");
	if (slash == path)
		return strdup("/");
	return strndup(path, (size_t)(slash - path));
}

/* fsync_dir: make the directory entries of path's directory durable (the
 * rename). Returns 0 or -errno; filesystems that cannot sync a directory
 * (EINVAL) count as done. */
static int fsync_dir(const char *path)
{
	char *dir = dir_of(path);
	int fd, r = 0;

	if (!dir)
		return -ENOMEM;
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		r = -errno;
	else if (fsync(fd) < 0 && errno != EINVAL)
		r = -errno;
	util_close(&fd);
	free(dir);
	return r;
}

/* write_atomic: replace path by data, so that a reader (or the service after
 * a crash or power loss) finds either the old file or the new one in full,
 * never a half-written one. Returns 0 or -errno. */
static int write_atomic(const char *path, const char *data, size_t len)
{
	char *tmp;
	int fd, r;

	/* Same directory, so the rename below cannot cross filesystems. */
	if (asprintf(&tmp, "%s.tmp.XXXXXX", path) < 0)
		return -ENOMEM;
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0) {
		r = -errno;
		goto out_free;
	}
	if (fchmod(fd, 0640) < 0) {
		r = -errno;
		goto err_unlink;
	}
	r = util_write_all(fd, data, len);
	if (r < 0)
		goto err_unlink;
	if (fsync(fd) < 0) {
		r = -errno;
		goto err_unlink;
	}
	if (close(fd) < 0) {
		fd = -1;
		r = -errno;
		goto err_unlink;
	}
	fd = -1;
	/* Transaction point: before this rename the old set is in force, after
	 * it the new one; the data is already on disk. */
	if (rename(tmp, path) < 0) {
		r = -errno;
		goto err_unlink;
	}
	/* The rename itself is durable only once the directory is synced. */
	r = fsync_dir(path);
	goto out_free;

err_unlink:
	util_close(&fd);
	unlink(tmp);
out_free:
	free(tmp);
	return r;
}

/* persist: write the active set to the state file. Returns 0 or -errno. */
static int persist(const struct faults *f)
{
	struct json_object *doc;
	const char *s;
	size_t len;
	char *text;
	int r;

	if (!f->state_file)
		return 0;
	doc = state_json(f);
	if (!doc)
		return -ENOMEM;
	s = json_object_to_json_string_ext(doc, FAULTS_JSON_STATE);
	if (!s) {
		json_object_put(doc);
		return -ENOMEM;
	}
	len = strlen(s);
	text = malloc(len + 1);
	if (!text) {
		json_object_put(doc);
		return -ENOMEM;
	}
	memcpy(text, s, len);
	text[len++] = '\n';
	json_object_put(doc);
	r = write_atomic(f->state_file, text, len);
	free(text);
	return r;
}

/* remove_stale_temps: unlink "<state file>.tmp.*" left by a crash between
 * creating a temporary state file and renaming it (the state file has one
 * owner, so any such file is dead). Best effort. */
static void remove_stale_temps(const char *state_file)
{
	const char *base = strrchr(state_file, '/');
	char *dir = dir_of(state_file);
	char prefix[256];
	struct dirent *de;
	size_t plen;
	DIR *d;
	int n;

	base = base ? base + 1 : state_file;
	n = snprintf(prefix, sizeof(prefix), "%s.tmp.", base);
	if (!dir || n < 0 || (size_t)n >= sizeof(prefix))
		goto out_free;
	plen = (size_t)n;
	d = opendir(dir);
	if (!d)
		goto out_free;
	while ((de = readdir(d)))
		if (!strncmp(de->d_name, prefix, plen))
			unlinkat(dirfd(d), de->d_name, 0);
	closedir(d);
out_free:
	free(dir);
}

/* read_small: the whole of path, NUL-terminated, into *out (*len bytes),
 * at most max bytes. Returns 0, -errno, or -EFBIG when larger. */
static int read_small(const char *path, size_t max, char **out, size_t *len)
{
	struct stat st;
	char *buf = NULL;
	size_t have = 0;
	ssize_t n;
	int fd, r;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		r = -errno;
		goto out_close;
	}
	if (!S_ISREG(st.st_mode)) {
		r = S_ISDIR(st.st_mode) ? -EISDIR : -EINVAL;
		goto out_close;
	}
	if ((uint64_t)st.st_size > max) {
		r = -EFBIG;
		goto out_close;
	}
	/* +1: room to see that the file grew past max since the fstat */
	buf = malloc(max + 2);
	if (!buf) {
		r = -ENOMEM;
		goto out_close;
	}
	for (;;) {
		n = read(fd, buf + have, max + 1 - have);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = -errno;
			goto err_free;
		}
		if (n == 0)
			break;
		have += (size_t)n;
		if (have > max) {
			r = -EFBIG;
			goto err_free;
		}
	}
	buf[have] = '\0';
	*out = buf;
	*len = have;
	r = 0;
	goto out_close;

err_free:
	free(buf);
out_close:
	close(fd);
	return r;
}

static void fault_state_free(struct fault_state *s)
{
	free(s->reason);
	json_object_put(s->detail);
	memset(s, 0, sizeof(*s));
}

/* state_parse: the active set in text into st[] (all inactive on entry).
 * Entries of ids this version does not know (written by a newer one) are
 * dropped. Returns 0, -ENOMEM, or -EINVAL with the defect in why. */
static int state_parse(const char *text, size_t len, struct fault_state *st, const char **why)
{
	struct json_tokener *tok = json_tokener_new();
	struct json_object *doc = NULL, *v, *arr;
	size_t end, n;
	int r = -EINVAL;

	if (!tok)
		return -ENOMEM;
	doc = json_tokener_parse_ex(tok, text, (int)len);
	if (!doc || json_tokener_get_error(tok) != json_tokener_success) {
		*why = "not valid JSON";
		goto out;
	}
	for (end = json_tokener_get_parse_end(tok); end < len; end++)
		if (!strchr(" \t\r\n", text[end])) {
			*why = "text after the JSON document";
			goto out;
		}
	if (!json_object_is_type(doc, json_type_object) ||
	    !json_object_object_get_ex(doc, "version", &v) ||
	    !json_object_is_type(v, json_type_int)) {
		*why = "no version";
		goto out;
	}
	if (json_object_get_int64(v) != FAULTS_STATE_VERSION) {
		*why = "unknown version";
		goto out;
	}
	if (!json_object_object_get_ex(doc, "active", &arr) ||
	    !json_object_is_type(arr, json_type_array)) {
		*why = "no active array";
		goto out;
	}
	n = json_object_array_length(arr);
	for (size_t k = 0; k < n; k++) {
		struct json_object *e = json_object_array_get_idx(arr, k);
		struct json_object *id, *since, *reason, *detail = NULL;
		int64_t idv;
		int i;

		if (!json_object_is_type(e, json_type_object) ||
		    !json_object_object_get_ex(e, "id", &id) ||
		    !json_object_is_type(id, json_type_int) ||
		    !json_object_object_get_ex(e, "since", &since) ||
		    !json_object_is_type(since, json_type_int) ||
		    !json_object_object_get_ex(e, "reason", &reason) ||
		    !json_object_is_type(reason, json_type_string)) {
			*why = "malformed entry";
			goto out;
		}
		idv = json_object_get_int64(id);
		i = idv >= 0 && idv <= INT32_MAX ? def_index((int)idv) : -1;
		if (i < 0)
			continue;
		if (st[i].active) {
			*why = "duplicate entry";
			goto out;
		}
		json_object_object_get_ex(e, "detail", &detail);
		st[i].reason = one_line(json_object_get_string(reason));
		st[i].detail = detail ? json_object_get(detail) : json_object_new_object();
		if (!st[i].reason || !st[i].detail) {
			r = -ENOMEM;
			goto out;
		}
		st[i].active = true;
		st[i].since = (time_t)json_object_get_int64(since);
	}
	r = 0;
out:
	if (r < 0)
		for (size_t i = 0; i < NFAULTS; i++)
			fault_state_free(&st[i]);
	json_object_put(doc);
	json_tokener_free(tok);
	return r;
}

/* state_reset: the state file could not be used (why): move it aside to
 * "<state file>.corrupt" for a post-mortem (a missing file is an empty set,
 * and the next change writes a good one), say so in err and as a
 * "state_reset" event. The service must start anyway. */
static void state_reset(struct faults *f, const char *why, char *err)
{
	struct json_object *detail = json_object_new_object();
	char *aside = NULL;
	bool kept;

	kept = asprintf(&aside, "%s.corrupt", f->state_file) >= 0 &&
	       rename(f->state_file, aside) == 0;
	snprintf(err, FAULTS_ERR_LEN, "fault state %s: %s; starting with no active faults%s%s",
		 f->state_file, why, kept ? ", old file kept as " : "", kept ? aside : "");
	if (detail &&
	    (jsonutil_add(detail, "state_file", json_object_new_string(f->state_file)) < 0 ||
	     jsonutil_add(detail, "error", json_object_new_string(why)) < 0 ||
	     (kept && jsonutil_add(detail, "kept_as", json_object_new_string(aside)) < 0))) {
		json_object_put(detail);
		detail = NULL;
	}
	/* Best effort: the err message reaches the operator anyway. */
	faults_event(f, "state_reset", err, detail);
	free(aside);
}

/* state_load: load the active set from the state file; a missing file is
 * an empty set, an unusable one is reset (state_reset). Returns 0 or
 * -ENOMEM. */
static int state_load(struct faults *f, char *err)
{
	struct fault_state st[NFAULTS] = {0};
	const char *why = NULL;
	char whybuf[128];
	char *text = NULL;
	size_t len = 0;
	int r;

	r = read_small(f->state_file, FAULTS_STATE_MAX, &text, &len);
	if (r == -ENOENT)
		return 0;
	if (r == -ENOMEM)
		return r;
	if (r < 0) {
		snprintf(whybuf, sizeof(whybuf), "cannot be read (%s)",
			 r == -EFBIG ? "too large" : strerror(-r));
		state_reset(f, whybuf, err);
		return 0;
	}
	r = state_parse(text, len, st, &why);
	free(text);
	if (r == -ENOMEM)
		return r;
	if (r < 0) {
		state_reset(f, why, err);
		return 0;
	}
	memcpy(f->st, st, sizeof(st));
	return 0;
}

struct faults *faults_open(const struct faults_options *opt, char *err)
{
	char dummy[FAULTS_ERR_LEN];
	struct faults *f;
	int r;

	if (!err)
		err = dummy;
	err[0] = '\0';
	f = calloc(1, sizeof(*f));
	if (!f) {
		snprintf(err, FAULTS_ERR_LEN, "out of memory");
		return NULL;
	}
	f->log_fd = -1;
	f->to_syslog = opt->to_syslog;
	f->clock = opt->clock;
	if ((opt->state_file && !(f->state_file = strdup(opt->state_file))) ||
	    (opt->event_log && !(f->event_log = strdup(opt->event_log)))) {
		r = -ENOMEM;
		snprintf(err, FAULTS_ERR_LEN, "out of memory");
		goto err_free;
	}
	if (f->event_log) {
		r = log_follow(f);
		if (r < 0) {
			snprintf(err, FAULTS_ERR_LEN, "event log %s: %s", f->event_log,
				 strerror(-r));
			goto err_free;
		}
	}
	if (f->state_file) {
		remove_stale_temps(f->state_file);
		r = state_load(f, err);
		if (r < 0) {
			snprintf(err, FAULTS_ERR_LEN, "fault state %s: %s", f->state_file,
				 strerror(-r));
			goto err_free;
		}
	}
	return f;

err_free:
	faults_close(f);
	errno = -r;
	return NULL;
}

void faults_close(struct faults *f)
{
	if (!f)
		return;
	util_close(&f->log_fd);
	for (size_t i = 0; i < NFAULTS; i++)
		fault_state_free(&f->st[i]);
	free(f->state_file);
	free(f->event_log);
	free(f);
}

int faults_raise(struct faults *f, int id, const char *reason, struct json_object *detail)
{
	int i = def_index(id);
	struct fault_state *s;
	char *line;
	int ev, r;

	if (i < 0) {
		json_object_put(detail);
		return -EINVAL;
	}
	s = &f->st[i];
	line = one_line(reason);
	detail = detail_bound(detail);
	if (!line || !detail) {
		free(line);
		json_object_put(detail);
		return -ENOMEM;
	}
	free(s->reason);
	s->reason = line;
	json_object_put(s->detail);
	s->detail = detail;
	if (s->active)
		/* Already reported: no new event, but queries (and the state
		 * after a restart) show the latest reason and detail. */
		return persist(f);
	s->active = true;
	s->since = now(f);
	/* The event goes first: if the service dies before the state is
	 * written, the condition is raised again after the restart, and the
	 * log holds one raise too many rather than none. */
	ev = emit_transition(f, (size_t)i, s->since, s->reason, s->detail, -1);
	r = persist(f);
	if (r < 0)
		return r;
	return ev < 0 ? ev : 1;
}

int faults_clear(struct faults *f, int id, const char *reason)
{
	int i = def_index(id);
	struct fault_state *s;
	int64_t secs;
	char *line;
	time_t t;
	int ev, r;

	if (i < 0)
		return -EINVAL;
	s = &f->st[i];
	if (!s->active)
		return 0;
	line = one_line(reason);
	if (!line)
		return -ENOMEM;
	t = now(f);
	/* A wall clock stepped back must not make a negative duration. */
	secs = t > s->since ? (int64_t)(t - s->since) : 0;
	/* Event first, as for a raise: after a crash in between, the fault is
	 * still active and is cleared (and logged) again. */
	ev = emit_transition(f, (size_t)i, t, line, NULL, secs);
	free(line);
	fault_state_free(s);
	r = persist(f);
	if (r < 0)
		return r;
	return ev < 0 ? ev : 1;
}

bool faults_is_active(const struct faults *f, int id)
{
	int i = def_index(id);

	return i >= 0 && f->st[i].active;
}

size_t faults_active_ids(const struct faults *f, int *ids, size_t max)
{
	size_t n = 0;

	/* fault_defs is in ascending id order */
	for (size_t i = 0; i < NFAULTS; i++) {
		if (!f->st[i].active)
			continue;
		if (n < max)
			ids[n] = fault_defs[i].id;
		n++;
	}
	return n;
}

struct json_object *faults_active_json(const struct faults *f)
{
	struct json_object *arr = json_object_new_array();

	if (!arr)
		return NULL;
	for (size_t i = 0; i < NFAULTS; i++) {
		const struct fault_def *d = &fault_defs[i];
		const struct fault_state *s = &f->st[i];
		struct json_object *e, *detail = NULL;
		char text[32];

		if (!s->active)
			continue;
		e = json_object_new_object();
		if (!e || json_object_array_add(arr, e) < 0) {
			json_object_put(e);
			goto err_put;
		}
		/* A copy: the caller may change what it gets. */
		if (json_object_deep_copy(s->detail, &detail, NULL) < 0)
			goto err_put;
		iso_time(s->since, text, sizeof(text));
		if (jsonutil_add(e, "id", json_object_new_int(d->id)) < 0 ||
		    jsonutil_add(e, "name", json_object_new_string(d->name)) < 0 ||
		    jsonutil_add(e, "severity", json_object_new_string(d->severity)) < 0 ||
		    jsonutil_add(e, "since", json_object_new_int64((int64_t)s->since)) < 0 ||
		    jsonutil_add(e, "since_text", json_object_new_string(text)) < 0 ||
		    jsonutil_add(e, "reason", json_object_new_string(s->reason)) < 0 ||
		    jsonutil_add(e, "detail", detail) < 0 ||
		    jsonutil_add(e, "remediation", json_object_new_string(d->remediation)) < 0)
			goto err_put;
	}
	return arr;

err_put:
	json_object_put(arr);
	errno = ENOMEM;
	return NULL;
}

/* The event log read backwards: buf holds the file's bytes [pos, pos+len),
 * the not yet consumed part of what has been read. Unless skipping,
 * buf[len-1] is the '\n' that ends the next line to return. */
struct tail {
	int fd;
	off_t pos;
	char *buf;
	size_t len, cap;
	bool skipping; /* inside a line whose end is not wanted */
};

/* tail_more: prepend up to FAULTS_CHUNK bytes from before pos. Returns 0 or
 * -errno. */
static int tail_more(struct tail *t)
{
	size_t n = t->pos < FAULTS_CHUNK ? (size_t)t->pos : FAULTS_CHUNK;
	size_t got = 0;

	if (t->len + n > t->cap) {
		char *nb = realloc(t->buf, t->len + n);

		if (!nb)
			return -ENOMEM;
		t->buf = nb;
		t->cap = t->len + n;
	}
	memmove(t->buf + n, t->buf, t->len);
	while (got < n) {
		ssize_t r = pread(t->fd, t->buf + got, n - got, t->pos - (off_t)n + (off_t)got);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			return -EIO; /* truncated while we read it */
		got += (size_t)r;
	}
	t->pos -= (off_t)n;
	t->len += n;
	return 0;
}

/* tail_collect: parse the lines of the event log from the end backwards
 * into rev (newest first) until it holds max events. Lines that are not a
 * JSON object are skipped, as are a last line still being written and
 * lines longer than FAULTS_LINE_MAX. Memory stays within one chunk plus one
 * line whatever the size of the log. Returns 0 or -errno. */
static int tail_collect(int fd, off_t size, size_t max, struct json_object *rev)
{
	struct tail t = {.fd = fd, .pos = size, .skipping = true};
	struct json_tokener *tok = json_tokener_new();
	size_t count = 0;
	int r = 0;

	if (!tok)
		return -ENOMEM;
	while (count < max) {
		char *nl;
		size_t start;
		struct json_object *o;

		if (t.skipping) {
			nl = t.len ? memrchr(t.buf, '\n', t.len) : NULL;
			if (nl) {
				t.len = (size_t)(nl - t.buf) + 1;
				t.skipping = false;
				continue;
			}
			t.len = 0;
		}
		/* Unless the file's start is reached, a line is complete only
		 * once the '\n' before it is in buf. */
		nl = t.len > 1 ? memrchr(t.buf, '\n', t.len - 1) : NULL;
		if (t.len == 0 || (!nl && t.pos > 0)) {
			if (t.pos == 0)
				break;
			if (t.len > FAULTS_LINE_MAX) {
				/* Drop what we have of it and look for its start. */
				t.skipping = true;
				t.len = 0;
			}
			r = tail_more(&t);
			if (r < 0)
				goto out;
			continue;
		}
		start = nl ? (size_t)(nl - t.buf) + 1 : 0;
		json_tokener_reset(tok);
		o = json_tokener_parse_ex(tok, t.buf + start, (int)(t.len - 1 - start));
		if (o && json_tokener_get_error(tok) == json_tokener_success &&
		    json_tokener_get_parse_end(tok) == t.len - 1 - start &&
		    json_object_is_type(o, json_type_object)) {
			if (json_object_array_add(rev, o) < 0) {
				json_object_put(o);
				r = -ENOMEM;
				goto out;
			}
			count++;
		} else {
			json_object_put(o);
		}
		t.len = start;
	}
out:
	json_tokener_free(tok);
	free(t.buf);
	return r;
}

struct json_object *faults_history_json(const struct faults *f, size_t max)
{
	struct json_object *rev = NULL, *arr;
	struct stat st;
	size_t n;
	int fd, r;

	arr = json_object_new_array();
	if (!arr) {
		errno = ENOMEM;
		return NULL;
	}
	if (!f->event_log || max == 0)
		return arr;
	fd = open(f->event_log, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		if (errno == ENOENT)
			return arr;
		r = -errno;
		goto err_put;
	}
	if (fstat(fd, &st) < 0) {
		r = -errno;
		goto err_close;
	}
	rev = json_object_new_array();
	if (!rev) {
		r = -ENOMEM;
		goto err_close;
	}
	/* Lines appended after this size are not part of this answer. */
	r = tail_collect(fd, st.st_size, max, rev);
	if (r < 0)
		goto err_close;
	n = json_object_array_length(rev);
	for (size_t k = 0; k < n; k++) {
		struct json_object *o = json_object_array_get_idx(rev, n - 1 - k);

		if (json_object_array_add(arr, json_object_get(o)) < 0) {
			json_object_put(o);
			r = -ENOMEM;
			goto err_close;
		}
	}
	json_object_put(rev);
	close(fd);
	return arr;

err_close:
	json_object_put(rev);
	close(fd);
err_put:
	json_object_put(arr);
	errno = -r;
	return NULL;
}

/* valid_type: event types are short identifiers; "raise" and "clear"
 * belong to fault transitions, whose lines readers rely on. */
static bool valid_type(const char *type)
{
	size_t len;

	if (!type || !strcmp(type, "raise") || !strcmp(type, "clear"))
		return false;
	len = strlen(type);
	if (len == 0 || len > FAULTS_TYPE_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = type[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '-' || c == '.'))
			return false;
	}
	return true;
}

int faults_event(struct faults *f, const char *type, const char *message,
		 struct json_object *detail)
{
	struct json_object *ev = NULL;
	char *line = NULL;
	int r;

	if (!valid_type(type)) {
		json_object_put(detail);
		return -EINVAL;
	}
	line = one_line(message);
	detail = detail_bound(detail);
	if (!line || !detail) {
		r = -ENOMEM;
		goto out;
	}
	if (f->to_syslog)
		syslog(LOG_WARNING, "%s: %s", type, line);
	if (!f->event_log) {
		r = 0;
		goto out;
	}
	ev = event_new(now(f), type);
	r = ev ? jsonutil_add(ev, "message", json_object_new_string(line)) : -ENOMEM;
	if (r < 0)
		goto out;
	if (json_object_is_type(detail, json_type_object)) {
		json_object_object_foreach(detail, key, val)
		{
			/* The common fields keep their meaning for every reader. */
			if (json_object_object_get_ex(ev, key, NULL))
				continue;
			/* a null member (an unknown value) is null in the line too */
			r = val ? jsonutil_add(ev, key, json_object_get(val))
				: (json_object_object_add(ev, key, NULL) < 0 ? -ENOMEM : 0);
			if (r < 0)
				goto out;
		}
	} else {
		r = jsonutil_add(ev, "detail", json_object_get(detail));
		if (r < 0)
			goto out;
	}
	r = log_append(f, ev);
out:
	json_object_put(ev);
	json_object_put(detail);
	free(line);
	return r;
}

const char *faults_name(int id)
{
	int i = def_index(id);

	return i < 0 ? NULL : fault_defs[i].name;
}

const char *faults_remediation(int id)
{
	int i = def_index(id);

	return i < 0 ? NULL : fault_defs[i].remediation;
}
