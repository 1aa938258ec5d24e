/* faults: the fault model of DESIGN.md section 2.
 *
 * A fault is raised when a condition that impairs protection is detected
 * and cleared when it no longer holds. The active set is persisted in the
 * state directory (written atomically: temporary file, fsync, rename,
 * directory fsync) so it survives a restart of the service, with each
 * fault's original "since" time. Every raise and clear, and every other
 * service event worth an operator's attention (a poisoned file, a
 * quarantined definitions set), is one JSON object per line appended to the
 * event log and, if enabled, a syslog line. Raising a fault that is already
 * active writes no new raise event: its reason and detail are updated.
 *
 * A manager is used from one thread (the supervisor's event loop) and owns
 * its state file; several processes may share one event log (each line is
 * one write on an O_APPEND descriptor). Reasons and messages are kept to
 * one line of at most 1 KiB; a detail larger than 32 KiB serialised (or
 * nested deeper than 16 levels) is replaced by {"truncated": true, "bytes"}.
 * The event log path is followed: after a rotation (rename or removal) the
 * next event creates a new file, so logrotate needs no copytruncate. */
#ifndef SE_SCANENGINE_FAULTS_H
#define SE_SCANENGINE_FAULTS_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

struct json_object;

enum fault_id {
	FAULT_USER_UNAVAILABLE = 5, /* scan service user unavailable */
	FAULT_RESTARTS = 6,	    /* frequent scan service restarts */
	FAULT_START_FAILED = 7,	    /* scan service failed to start */
	FAULT_MONITOR_FAILED = 8,   /* real-time file system monitor failed to start */
	FAULT_KERNEL_SUPPORT = 11,  /* kernel-level support missing */
	FAULT_OVERLOADED = 18,	    /* event monitoring overloaded */
};

struct faults;

struct faults_options {
	const char *state_file; /* the persisted active set (JSON); NULL: not kept */
	const char *event_log;	/* JSON lines, appended; NULL: none */
	bool to_syslog;		/* also one syslog line per event */
	/* wall clock for "since" and event times; NULL: time(NULL). Tests
	 * set it; windows and durations elsewhere use CLOCK_MONOTONIC. */
	time_t (*clock)(void);
};

/* faults_open: load the active set from opt->state_file (a missing file is
 * an empty set; an unreadable or corrupt one is reported in err and
 * replaced by an empty set, with a "state_reset" event saying so; the old
 * file is kept as "<state_file>.corrupt") and open the event log for
 * appending (O_APPEND, created 0640). On success err is "" unless the state
 * was reset. Returns the manager or NULL with errno and a one-line reason in
 * err[256] (the event log cannot be opened, or no memory). Free with
 * faults_close. */
struct faults *faults_open(const struct faults_options *opt, char *err);

/* faults_close: close the event log and free (NULL ok). */
void faults_close(struct faults *f);

/* faults_raise: raise fault id (one of enum fault_id) with a one-line
 * reason and a structured detail (taken over, may be NULL). Returns 1 when
 * newly raised (event "raise" written), 0 when it was already active (reason
 * and detail updated, "since" kept, no event), -EINVAL for an unknown id,
 * or another -errno if persisting failed (the in-memory state is still
 * updated and the event still written). */
int faults_raise(struct faults *f, int id, const char *reason, struct json_object *detail);

/* faults_clear: clear fault id with a reason. Returns 1 when it was active
 * (event "clear" written, with how long it was active), 0 when it was not,
 * or -errno as for faults_raise. */
int faults_clear(struct faults *f, int id, const char *reason);

/* faults_is_active: whether fault id is active. */
bool faults_is_active(const struct faults *f, int id);

/* faults_active_ids: write the active ids, ascending, into ids[max].
 * Returns how many are active. */
size_t faults_active_ids(const struct faults *f, int *ids, size_t max);

/* faults_active_json: a new JSON array of the active faults, ascending by
 * id: {id, name, severity, since (epoch seconds), since_text (ISO 8601),
 * reason, detail, remediation}. Caller puts it. */
struct json_object *faults_active_json(const struct faults *f);

/* faults_history_json: a new JSON array of the last max events of the
 * event log, oldest first (each as written; lines that are not a JSON
 * object, and a last line still being written, are skipped). Reads the log
 * backwards from its end, so its size does not matter. A missing log (or
 * none configured) is an empty array. Caller puts it; NULL with errno on a
 * read error or ENOMEM. */
struct json_object *faults_history_json(const struct faults *f, size_t max);

/* faults_event: append a service event that is not a fault transition:
 * {time, time_text, event: type, message, ...detail's fields} (a field of
 * detail named like a common one is dropped; a detail that is not an object
 * goes in "detail"), and a syslog line at LOG_WARNING. type is an
 * identifier ([A-Za-z0-9_.-], at most 64) other than "raise" and "clear".
 * detail is taken over (may be NULL). Returns 0, -EINVAL for a bad type,
 * or -errno. */
int faults_event(struct faults *f, const char *type, const char *message,
		 struct json_object *detail);

/* faults_name: the fault's name ("frequent scan service restarts"), or
 * NULL for an unknown id. */
const char *faults_name(int id);

/* faults_remediation: what an operator should do about fault id, or NULL. */
const char *faults_remediation(int id);

#endif
