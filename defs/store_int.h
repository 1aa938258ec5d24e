/* store_int: what defs/store.c, defs/store_quarantine.c and
 * defs/store_history.c share: the store's layout, its handle and the
 * helpers defined in store.c. Internal to defs/store*.c. */
#ifndef SE_DEFS_STORE_INT_H
#define SE_DEFS_STORE_INT_H

#include "defs/store.h"

#include <dirent.h>
#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define STAGING_DIR    "staging"
#define QUARANTINE_DIR "quarantine"
#define CURRENT_LINK   "current"
#define CURRENT_TMP    "current.tmp-"
#define MANIFEST_NAME  "manifest.json"
#define REASON_NAME    "reason.json"
#define HISTORY_NAME   "history.jsonl"
#define HISTORY_TMP    "history.jsonl.tmp-"
#define WORK_PREFIX    "work-"
#define WORK_SET       "set" /* a work directory's candidate set */
#define FILE_MODE      0644
#define NAME_LEN       64 /* "gen-NNNNNN", temporary and quarantine names */

struct defs_store {
	int rootfd;
	unsigned int keep;
	char root[PATH_MAX];
	char current[PATH_MAX];
};

/* One entry of the source directory: a file to import (skip == NULL) or
 * what is reported in the manifest's "skipped". */
struct src_entry {
	char *name;
	const char *skip;
	uint64_t size;
	char sha256[DEFS_FINGERPRINT_LEN + 1];
};

struct src_list {
	struct src_entry *v;
	size_t n, cap;
	size_t nfiles;
};

/* store_set_err: formats a message into err[256] (NULL: none); keeps errno. */
__attribute__((format(printf, 2, 3))) void store_set_err(char *err, const char *fmt, ...);

/* store_gen_name: generation gen's directory name ("gen-NNNNNN") into buf[NAME_LEN]. */
void store_gen_name(unsigned int gen, char *buf);

/* store_sanitise_name: in (NULL or "": dflt) into out[max + 1], [A-Za-z0-9._-] only. */
void store_sanitise_name(const char *in, const char *dflt, size_t max, char *out);

/* store_is_fingerprint: whether s is DEFS_FINGERPRINT_LEN hex digits. */
bool store_is_fingerprint(const char *s);

/* store_utc_time: t as "YYYY-mm-ddTHH:MM:SSZ" or, compact, "YYYYmmddTHHMMSSZ". */
void store_utc_time(time_t t, bool compact, char *buf, size_t len);

/* store_lock: takes the store's writer lock (flock on the root). 0 or -errno. */
int store_lock(const struct defs_store *s);

/* store_unlock: releases store_lock's lock; keeps errno. */
void store_unlock(const struct defs_store *s);

/* store_fsync_fd: fsync(fd). 0 or -errno. */
int store_fsync_fd(int fd);

/* store_fsync_at: fsyncs directory path relative to dirfd. 0 or -errno. */
int store_fsync_at(int dirfd, const char *path);

/* store_open_dir_at: opendir() of path relative to dirfd (caller closedir()s), or NULL. */
DIR *store_open_dir_at(int dirfd, const char *path);

/* store_is_dir_at: whether dirfd/name is a directory (not following a symlink). */
bool store_is_dir_at(int dirfd, const char *name);

/* store_rename_noreplace: renameat that never replaces (-EEXIST). 0 or -errno. */
int store_rename_noreplace(int olddir, const char *oldname, int newdir, const char *newname);

/* store_write_json_atomic: replaces dirfd/name by obj (still the caller's) atomically. */
int store_write_json_atomic(int dirfd, const char *name, struct json_object *obj);

/* store_jadd_str: adds string member key (NULL: JSON null) to obj. 0 or -ENOMEM. */
int store_jadd_str(struct json_object *obj, const char *key, const char *str);

/* store_jappend: appends v (NULL: -ENOMEM) to arr, which takes it; put on failure. */
int store_jappend(struct json_object *arr, struct json_object *v);

/* store_read_fingerprint_in: the "fingerprint" of JSON file dirfd/dir/name into hex. */
/* store_read_json_at: the JSON object in the regular file path (relative
 * to dirfd, no symlink followed, at most JSON_FILE_MAX bytes) into *out.
 * Returns 0 or -errno (-EBADMSG: not a JSON object). */
int store_read_json_at(int dirfd, const char *path, struct json_object **out);

int store_read_fingerprint_in(int dirfd, const char *dir, const char *name, char *hex);

/* store_src_list_free: frees l's entries and zeroes l. */
void store_src_list_free(struct src_list *l);

/* store_read_source: lists srcfd into l (free with store_src_list_free), sorted by name. */
int store_read_source(int srcfd, struct src_list *l, char *err);

/* store_sha256_fd: SHA-256 of fd's content (from offset 0) as hex, and its size. */
int store_sha256_fd(int fd, char *hex, uint64_t *size);

/* store_fingerprint_of: the fingerprint (see store.h) of l's files into hex. */
int store_fingerprint_of(const struct src_list *l, char *hex);

#endif
