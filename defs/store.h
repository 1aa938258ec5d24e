/* store: the definitions store of DESIGN.md section 4.
 *
 *   <root>/current -> gen-000042    symlink, switched with rename(2)
 *   <root>/gen-000042/              the set's files + manifest.json
 *   <root>/gen-000041/              kept for rollback (KeepGenerations)
 *   <root>/staging/                 a generation being built, work directories;
 *                                   cleaned at open
 *   <root>/quarantine/<time>-gen-000040/   a rejected or failed set + reason.json
 *   <root>/quarantine/<time>-<label>/      a rejected work directory + reason.json
 *   <root>/history.jsonl            what happened to the store, one JSON line each
 *
 * A generation is immutable once published: it is built in staging/,
 * fsynced, and then appears with one rename(2); "current" is switched with
 * one rename(2) of a fresh symlink. Those renames (and the ones that move
 * a set into quarantine or replace a file of the store's) are the only
 * transaction points. The engine loads <root>/current. Everything is
 * created readable by the scan user (directories 0755, files 0644, owned
 * by root), but work directories (see defs_store_make_work).
 *
 * Generation numbers start at 1 and are never reused: a new one is one more
 * than the highest the store shows anywhere (generations, staging,
 * quarantine, the current link). 0 means "none".
 *
 * Writers (import, activate, quarantine, prune, work directories, history,
 * open's cleanup) take an exclusive flock(2) on the root for the duration
 * of the call, so the service and a CLI can share a store; the readers
 * need no lock, since every change they can observe is one rename (or one
 * appended line of the history).
 *
 * Every step of a writer after which a crash leaves another state on disk
 * calls util_crash_point("store.<function>.<step>"), so that the tests can
 * kill a writer there and check what the next open finds. */
#ifndef SE_DEFS_STORE_H
#define SE_DEFS_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct json_object;
struct defs_store;

#define DEFS_FINGERPRINT_LEN  64	 /* hex SHA-256 */
#define DEFS_MANIFEST_VERSION 1		 /* "manifest_version" of manifest.json */
#define DEFS_HISTORY_MAX      (1u << 20) /* history.jsonl is halved past this size */

/* defs_store_open: open (creating if needed, mode 0755) the store at root
 * and remove what a writer that died left behind: everything in staging/
 * but the work directories of other live processes (see
 * defs_store_make_work), temporary "current.tmp-*" links and history
 * temporaries. keep: generations to keep (at least 2: the current and one
 * to roll back to). Returns the store (free with defs_store_close) or NULL
 * with errno (EACCES: not writable, EINVAL: keep < 2) and a one-line
 * reason in err[256] (may be NULL). */
struct defs_store *defs_store_open(const char *root, unsigned int keep, char *err);

/* defs_store_fd: the store's directory descriptor (every operation works
 * relative to it), for a child process that closes all others. */
int defs_store_fd(const struct defs_store *s);

/* defs_store_close: NULL ok. */
void defs_store_close(struct defs_store *s);

/* defs_store_import_dir: copy every regular file of srcdir into a new
 * generation with a manifest.json. Not imported, and listed in the
 * manifest's "skipped" with a reason: subdirectories, symbolic links,
 * other non-regular files, names starting with '.', a file named
 * manifest.json, names holding a backslash or a newline. The files are
 * copied (never linked: the source may change later), fsynced, and hashed
 * from the copy; a source file that changes while being copied fails the
 * import with EAGAIN.
 *
 * manifest.json: {manifest_version, generation, created ("YYYY-mm-ddTHH:MM:SSZ",
 * UTC), source (srcdir, absolute), files: [{name, size, sha256}] sorted by
 * name, skipped: [{name, reason}], fingerprint}, then the members of meta.
 *
 * The fingerprint is the hex SHA-256 of the concatenation, over the files
 * sorted by name in byte order (strcmp, LC_ALL=C), of the lines
 *     <sha256 of the file, 64 lower-case hex digits> "  " <name> "\n"
 * that is, of what `LC_ALL=C sha256sum <files in that order>` prints;
 * manifest.json is not part of it. Equal sets have equal fingerprints
 * wherever they come from (paths, times, modes do not enter).
 *
 * meta (may be NULL; taken over in every case): a JSON object whose
 * members are added to the manifest after the standard ones (e.g. origin,
 * databases). A member named like a standard one fails the import with
 * EINVAL. One member is special and not copied: "expected_files",
 * {name: SHA-256 as 64 hex digits}, the set as a less-privileged process
 * validated it; the files imported must then be exactly those names with
 * exactly those SHA-256 (of the copies, as in the manifest), otherwise the
 * import fails with EBADMSG and err says "file X changed since it was
 * validated", "file X was not validated" or "file X is missing".
 *
 * Does not activate the generation. Returns 0 with *gen, or -errno with
 * err[256] (may be NULL) (ENOENT: srcdir has no files to import; EINVAL:
 * meta is no object, collides with a standard member, or its
 * expected_files is malformed; EBADMSG: the files are not those
 * expected). On failure no generation appears. */
int defs_store_import_dir(struct defs_store *s, const char *srcdir, struct json_object *meta,
			  unsigned int *gen, char *err);

/* defs_store_manifest: the parsed manifest.json of gen (caller puts it), or
 * NULL with errno (ENOENT: no such generation, EBADMSG: its manifest is
 * missing or unreadable, ENOMEM). */
struct json_object *defs_store_manifest(const struct defs_store *s, unsigned int gen);

/* defs_store_activate: point current at gen (transaction point: rename of
 * a new symlink "current" -> "gen-NNNNNN", a relative target, over current,
 * then fsync of the directory). Returns 0 or -errno (ENOENT: no such
 * generation; current is then unchanged). */
int defs_store_activate(struct defs_store *s, unsigned int gen);

/* defs_store_current: the generation current points at, 0 when none (or
 * when it points at something that is no generation). */
unsigned int defs_store_current(const struct defs_store *s);

/* defs_store_current_path: "<root>/current", what the engine loads. Owned
 * by the store. */
const char *defs_store_current_path(const struct defs_store *s);

/* defs_store_gen_path: "<root>/gen-NNNNNN" into buf. Returns 0 or
 * -ENAMETOOLONG. */
int defs_store_gen_path(const struct defs_store *s, unsigned int gen, char *buf, size_t len);

/* defs_store_previous: the newest generation older than gen that exists
 * (quarantined ones no longer do), or 0. */
unsigned int defs_store_previous(const struct defs_store *s, unsigned int gen);

/* defs_store_fingerprint: gen's fingerprint (from its manifest) into
 * hex[DEFS_FINGERPRINT_LEN + 1]. Returns 0 or -errno (ENOENT: no such
 * generation, EBADMSG: its manifest is unreadable). */
int defs_store_fingerprint(const struct defs_store *s, unsigned int gen, char *hex);

/* defs_store_quarantine: move gen to quarantine/<UTC time>-gen-NNNNNN/
 * (time as YYYYmmddTHHMMSSZ; ".1", ".2", ... appended if that exists) and
 * write reason.json there atomically: {generation, time, stage, reason,
 * fingerprint, was_current, detail} (fingerprint null if the manifest is
 * unreadable; stage, reason, detail null when NULL). detail is taken over
 * in every case (may be NULL). If gen was current, current is left
 * pointing nowhere (defs_store_current() returns 0); the caller activates
 * another. Writes the quarantine path into qpath[qlen] (may be NULL) as
 * soon as the set is moved. Returns 0 or -errno (ENOENT: no such
 * generation); an error after the move (reason.json not written) leaves
 * the set quarantined. */
int defs_store_quarantine(struct defs_store *s, unsigned int gen, const char *stage,
			  const char *reason, struct json_object *detail, char *qpath, size_t qlen);

/* defs_store_make_work: create a work directory for a candidate set,
 * <root>/staging/work-<pid>-<seq>-<tag>/ (tag: NULL or "" is "work";
 * characters other than [A-Za-z0-9._-] become '_', cut at 32; seq counts
 * this process's work directories), mode 0700, owned by uid:gid unless uid
 * is (uid_t)-1 (then the caller's). Its absolute path goes to path[len].
 * It is the caller's to fill, to quarantine (defs_store_quarantine_dir) or
 * to remove (util_rm_rf); defs_store_open removes it only once this
 * process is gone (or is the one opening). Returns 0 or -errno with
 * err[256] (may be NULL) (EINVAL: no path; ENAMETOOLONG: path[len] is
 * too small; nothing is created then). */
int defs_store_make_work(struct defs_store *s, const char *tag, uid_t uid, gid_t gid, char *path,
			 size_t len, char *err);

/* defs_store_quarantine_dir: move the directory path, which must be
 * directly inside this store's staging/ (typically a work directory),
 * to quarantine/<UTC time>-<label>/ (time as YYYYmmddTHHMMSSZ; label
 * sanitised as defs_store_make_work's tag, cut at 64, NULL or "" is
 * "work", a leading "gen-" becomes "gen_" so that it never passes for a
 * quarantined generation; ".1", ".2", ... appended if that exists), then
 * write reason.json there atomically: {generation (null), time, stage,
 * reason, fingerprint, was_current (false), detail}. fingerprint: that of
 * the regular files of <path>/set/ as defs_store_import_dir would import
 * them, or null when there is no such directory (or nothing in it to
 * import). When running as root the quarantined directory is given to
 * root, so that the process that filled it cannot rewrite the record.
 * detail is taken over in every case (may be NULL). Writes the quarantine path into qpath[qlen]
 * (may be NULL) as soon as the directory is moved. Returns 0 or -errno (ENOENT: no such path;
 * EINVAL: not a directory directly inside staging/); an error after the move leaves the directory
 * quarantined. */
int defs_store_quarantine_dir(struct defs_store *s, const char *path, const char *label,
			      const char *stage, const char *reason, struct json_object *detail,
			      char *qpath, size_t qlen);

/* defs_store_find_quarantined: whether a set with this fingerprint (64 hex
 * digits, any case) was quarantined before, by the fingerprint in each
 * quarantined set's reason.json (or, lacking one after a crash, its
 * manifest.json, or for a work directory the files of its set/); if so,
 * the path of the latest such quarantine goes to qpath[qlen] (may be
 * NULL). */
bool defs_store_find_quarantined(const struct defs_store *s, const char *fingerprint, char *qpath,
				 size_t qlen);

/* defs_store_find_failed_db: whether a generation holding database db at
 * this version was quarantined because its engine failed to load (stage
 * "load": fault 7, bad definitions); the latest such quarantine's path
 * goes to qpath[qlen] (may be NULL). */
bool defs_store_find_failed_db(const struct defs_store *s, const char *db, uint32_t version,
			       char *qpath, size_t qlen);

/* defs_store_prune: delete the generations older than the newest keep,
 * except the current one (kept even when old). Each is first moved into
 * staging/ in one rename, so a crash never leaves a half-deleted
 * generation. Returns how many were deleted or -errno. */
int defs_store_prune(struct defs_store *s);

/* defs_store_list_json: a new JSON array (caller puts it) of the
 * generations, newest first: {generation, current (bool), created, files
 * (count), bytes (total size), fingerprint}; fields the manifest cannot
 * give are null. Copies of the manifest's "databases" (array), "origin"
 * (string), "engine_kib" (number) and "forced" (array) follow when the
 * manifest has them with that type. NULL with errno on failure. */
struct json_object *defs_store_list_json(const struct defs_store *s);

/* defs_store_history_add: append one line to <root>/history.jsonl
 * (created 0644): {"time": "YYYY-mm-ddTHH:MM:SSZ" (UTC), "event": event,
 * "generation": gen (null when 0), then every member of detail}, with one
 * write(2) in append mode, then fdatasync. A torn last line (a crash
 * mid-write) is ended first so that only it is lost. When the file is
 * larger than DEFS_HISTORY_MAX, it is first rewritten with the newest
 * half of its lines (temporary file, fsync, rename; if that fails, it is
 * logged and the line appended all the same). detail (may be NULL)
 * is taken over in every case. Returns 0 or -errno (EINVAL: no event,
 * detail is no object or has a member named time, event or generation). */
int defs_store_history_add(struct defs_store *s, const char *event, unsigned int gen,
			   struct json_object *detail);

/* defs_store_history_json: a new JSON array (caller puts it) of the last
 * max entries of the history (0: all), oldest first. Lines that are no
 * JSON object (a torn last line after a crash) are skipped; no history
 * file is an empty array. NULL with errno on failure. */
struct json_object *defs_store_history_json(const struct defs_store *s, size_t max);

#endif
