/* store_history: the history of the definitions store, history.jsonl (see
 * store.h). */
#include "defs/store.h"
#include "defs/store_int.h"
#include "common/log.h"
#include "common/jsonutil.h"
#include "common/util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

/* The history entry for an event into *out: a JSON object that prints on
 * one line (json-c escapes control characters in strings). It holds
 * references to detail's members; detail stays the caller's. */
static int history_entry(const char *event, unsigned int gen, struct json_object *detail,
			 struct json_object **out)
{
	static const char *const own[] = {"time", "event", "generation"};
	struct json_object *o;
	char when[32];

	*out = NULL;
	if (detail) {
		json_object_object_foreach(detail, key, val)
		{
			for (size_t i = 0; i < SE_ARRAY_SIZE(own); i++)
				if (!strcmp(key, own[i]))
					return -EINVAL;
		}
	}
	o = json_object_new_object();
	if (!o)
		return -ENOMEM;
	store_utc_time(time(NULL), false, when, sizeof(when));
	if (store_jadd_str(o, "time", when) || store_jadd_str(o, "event", event) ||
	    (gen ? jsonutil_add(o, "generation", json_object_new_int64(gen))
		 : store_jadd_str(o, "generation", NULL)))
		goto err_put;
	if (detail) {
		json_object_object_foreach(detail, key, val)
		{
			if (json_object_object_add(o, key, json_object_get(val)) < 0) {
				json_object_put(val);
				goto err_put;
			}
		}
	}
	*out = o;
	return 0;

err_put:
	json_object_put(o);
	return -ENOMEM;
}

/* Copies [from, to) of in to out. */
static int copy_range(int in, int out, off_t from, off_t to, char *buf, size_t len)
{
	while (from < to) {
		ssize_t n = pread(in, buf, SE_MIN(len, (size_t)(to - from)), from);
		int r;

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO; /* shrunk under the lock */
		r = util_write_all(out, buf, (size_t)n);
		if (r)
			return r;
		from += n;
	}
	return 0;
}

/* Replaces the history (fd, size bytes) by its newest half of lines: a
 * temporary file, fsynced, renamed over it. Called under the store lock,
 * which every appender takes, so no line is appended to the old file
 * meanwhile. */
static int history_halve(const struct defs_store *s, int fd, off_t size)
{
	enum { CHUNK = 64 * 1024 };
	char tmp[NAME_LEN], *buf;
	off_t off, start = 0, end = 0;
	size_t lines = 0, skip, seen = 0;
	int out = -1, r = 0;

	buf = malloc(CHUNK);
	if (!buf)
		return -ENOMEM;
	/* count the complete lines; a torn last one is dropped */
	for (off = 0; off < size;) {
		ssize_t n = pread(fd, buf, SE_MIN((off_t)CHUNK, size - off), off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			r = n < 0 ? -errno : -EIO;
			goto out_free;
		}
		for (ssize_t i = 0; i < n; i++) {
			if (buf[i] == '\n') {
				lines++;
				end = off + i + 1;
			}
		}
		off += n;
	}
	/* where the newest half starts: after the skip-th newline */
	skip = lines - lines / 2;
	for (off = 0; seen < skip && off < end;) {
		ssize_t n = pread(fd, buf, SE_MIN((off_t)CHUNK, end - off), off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			r = n < 0 ? -errno : -EIO;
			goto out_free;
		}
		for (ssize_t i = 0; i < n && seen < skip; i++) {
			if (buf[i] == '\n' && ++seen == skip)
				start = off + i + 1;
		}
		off += n;
	}
	snprintf(tmp, sizeof(tmp), "%s%ld", HISTORY_TMP, (long)getpid());
	unlinkat(s->rootfd, tmp, 0); /* a leftover of a crashed run with our pid */
	out = openat(s->rootfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
		     FILE_MODE);
	if (out < 0) {
		r = -errno;
		goto out_free;
	}
	if (fchmod(out, FILE_MODE) < 0)
		r = -errno;
	if (!r)
		r = copy_range(fd, out, start, end, buf, CHUNK);
	if (!r)
		r = store_fsync_fd(out);
	if (r)
		goto err_unlink;
	if (close(out) < 0) {
		out = -1;
		r = -errno;
		goto err_unlink;
	}
	out = -1;
	/* Transaction point: readers see the whole old history or the
	 * halved one; a crash before leaves a temporary that open removes. */
	if (renameat(s->rootfd, tmp, s->rootfd, HISTORY_NAME) < 0) {
		r = -errno;
		goto err_unlink;
	}
	util_crash_point("store.history_add.halved");
	r = store_fsync_fd(s->rootfd);
	goto out_free;

err_unlink:
	util_close(&out);
	unlinkat(s->rootfd, tmp, 0);
out_free:
	free(buf);
	return r;
}

/* Opens the history for appending (and reading its end), creating it;
 * *created says whether it was. */
static int history_open(const struct defs_store *s, bool *created)
{
	const int flags = O_RDWR | O_APPEND | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC;
	struct stat st;
	int fd, r = 0;

	*created = false;
	fd = openat(s->rootfd, HISTORY_NAME, flags);
	if (fd < 0 && errno == ENOENT) {
		fd = openat(s->rootfd, HISTORY_NAME, flags | O_CREAT | O_EXCL, FILE_MODE);
		/* fchmod: readable by the scan user whatever the umask */
		if (fd >= 0 && fchmod(fd, FILE_MODE) < 0)
			util_close(&fd);
		*created = fd >= 0;
	}
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0)
		r = -errno;
	else if (!S_ISREG(st.st_mode))
		r = -EBADMSG;
	if (r)
		util_close(&fd);
	return r ? r : fd;
}

/* history_open and fstat: the descriptor, or -errno (nothing left open). */
static int history_open_stat(const struct defs_store *s, bool *created, struct stat *st)
{
	int fd = history_open(s, created), r;

	if (fd < 0 || fstat(fd, st) == 0)
		return fd;
	r = -errno;
	close(fd);
	return r;
}

int defs_store_history_add(struct defs_store *s, const char *event, unsigned int gen,
			   struct json_object *detail)
{
	struct json_object *o = NULL;
	const char *text;
	char *line = NULL, last = '\n';
	size_t tlen, len;
	struct stat st;
	bool created;
	ssize_t n;
	int fd = -1, r;

	if (!event || !*event || (detail && !json_object_is_type(detail, json_type_object))) {
		r = -EINVAL;
		goto out_put;
	}
	r = history_entry(event, gen, detail, &o);
	if (r)
		goto out_put;
	text = json_object_to_json_string_length(
		o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &tlen);
	line = text ? malloc(tlen + 2) : NULL;
	if (!line) {
		r = -ENOMEM;
		goto out_put;
	}
	r = store_lock(s);
	if (r)
		goto out_put;
	fd = r = history_open_stat(s, &created, &st);
	if (r < 0)
		goto out_unlock;
	if (st.st_size > (off_t)DEFS_HISTORY_MAX) {
		/* a history too long is better than an event lost */
		r = history_halve(s, fd, st.st_size);
		if (r)
			log_warn("definitions store: cannot shorten %s/%s: %s", s->root,
				 HISTORY_NAME, strerror(-r));
		/* again: the file may have been replaced even on an error */
		util_close(&fd);
		fd = r = history_open_stat(s, &created, &st);
		if (r < 0)
			goto out_unlock;
	}
	/* a line torn by a crash is ended, so that only it is lost and not
	 * the one appended now too */
	if (st.st_size > 0 && pread(fd, &last, 1, st.st_size - 1) != 1)
		last = '\n';
	len = 0;
	if (last != '\n')
		line[len++] = '\n';
	memcpy(line + len, text, tlen);
	len += tlen;
	line[len++] = '\n';
	util_crash_point("store.history_add.writing");
	/* one write(2) in append mode: concurrent readers see whole lines
	 * or a torn last one, which they skip */
	n = write(fd, line, len);
	if (n < 0) {
		r = -errno;
		goto out_unlock;
	}
	if ((size_t)n != len) {
		r = -EIO; /* the next append ends the torn line */
		goto out_unlock;
	}
	util_crash_point("store.history_add.written");
	r = fdatasync(fd) < 0 ? -errno : 0;
	if (!r && created)
		r = store_fsync_fd(s->rootfd);
out_unlock:
	util_close(&fd);
	store_unlock(s);
out_put:
	free(line);
	json_object_put(o);
	json_object_put(detail);
	return r;
}

/* Line (len bytes, no newline) as a JSON object, or NULL: the whole line
 * must be one object. */
static struct json_object *parse_line(const char *line, size_t len)
{
	struct json_tokener *tok;
	struct json_object *o;

	if (!len || len > INT_MAX)
		return NULL;
	tok = json_tokener_new();
	if (!tok)
		return NULL;
	o = json_tokener_parse_ex(tok, line, (int)len);
	if (o &&
	    (json_tokener_get_error(tok) != json_tokener_success ||
	     json_tokener_get_parse_end(tok) != len || !json_object_is_type(o, json_type_object))) {
		json_object_put(o);
		o = NULL;
	}
	json_tokener_free(tok);
	return o;
}

struct json_object *defs_store_history_json(const struct defs_store *s, size_t max)
{
	struct json_object *arr = NULL;
	char *line = NULL;
	size_t cap = 0, count;
	struct stat st;
	ssize_t n;
	FILE *f;
	int fd, r = 0;

	fd = openat(s->rootfd, HISTORY_NAME, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		if (errno != ENOENT)
			return NULL;
		arr = json_object_new_array();
		if (!arr)
			errno = ENOMEM;
		return arr;
	}
	if (fstat(fd, &st) < 0)
		r = -errno;
	else if (!S_ISREG(st.st_mode))
		r = -EBADMSG;
	f = r ? NULL : fdopen(fd, "r");
	if (!f) {
		r = r ? r : -errno;
		util_close(&fd);
		errno = -r;
		return NULL;
	}
	arr = json_object_new_array();
	if (!arr) {
		r = -ENOMEM;
		goto out_close;
	}
	/* a line that is no JSON object (torn by a crash, or appended to
	 * meanwhile) is skipped */
	while ((n = getline(&line, &cap, f)) > 0) {
		struct json_object *o;

		if (line[n - 1] != '\n')
			continue; /* being written */
		o = parse_line(line, (size_t)n - 1);
		if (o && store_jappend(arr, o)) {
			r = -ENOMEM;
			goto out_close;
		}
	}
	if (ferror(f)) {
		r = errno ? -errno : -EIO;
		goto out_close;
	}
	count = json_object_array_length(arr);
	if (max && count > max && json_object_array_del_idx(arr, 0, count - max) < 0)
		r = -ENOMEM;
out_close:
	free(line);
	fclose(f);
	if (r) {
		json_object_put(arr);
		arr = NULL;
		errno = -r;
	}
	return arr;
}
