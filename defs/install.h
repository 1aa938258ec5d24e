/* install: the definitions install transaction (DESIGN.md section 4, stages
 * 1-8), shared by `scanctl defs install` (which waits) and the service's
 * DatabaseDirectory imports (which poll from the event loop).
 *
 *   start   a work directory in the store's staging/ (owned by the scan
 *           account), the input files copied into it when asked (the
 *           caller's files may be unreadable to that account, and a copy
 *           cannot change under the validator), then a validator process:
 *           it drops to the scan account and runs validate_candidate over
 *           the active generation, writing result.json into the work
 *           directory; progress lines go to a descriptor if given
 *   finish  with the validator gone: a set that passed is imported as a
 *           new generation (the store checks that every file is byte for
 *           byte what was validated), its manifest recording the databases,
 *           the stages and their timings, the engine memory measured, the
 *           origin and any forced stage; then activated (the transaction
 *           point is the store's rename of "current") and recorded in the
 *           store's history. A refused set, or one whose validator died, is
 *           moved to quarantine with a reason.json naming the stage, the
 *           reason and the offending file or member; the active generation
 *           is untouched. If the active generation changed while the
 *           validator ran, nothing is activated (-EAGAIN): the candidate
 *           was built over a set that is no longer current.
 *
 * The parent never parses the definitions: only the validator's
 * result.json. */
#ifndef SE_DEFS_INSTALL_H
#define SE_DEFS_INSTALL_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/config.h"
#include "sandbox/sandbox.h"

struct json_object;
struct defs_store;

#define INSTALL_ERR_LEN 512

struct install_req {
	const struct config *cfg;
	const struct sandbox_identity *id; /* the validator's account (when root) */
	const char *const *files;	   /* the new files ("<file>.sign" go along) */
	size_t nfiles;
	bool copy_inputs;	 /* copy files (and their .sign) into the work dir first */
	const char *origin;	 /* "install", "DatabaseDirectory", ... */
	bool local;		 /* validate_policy.local */
	bool rollback;		 /* validate_policy.rollback */
	unsigned int force;	 /* validate_policy.force */
	const char *const *drop; /* validate_policy.drop */
	size_t ndrop;
	bool skip_unchanged; /* validate_policy.skip_unchanged */
	int progress_fd;     /* progress lines, or -1 */
	const char *actor;   /* for the history: "scanctl (uid 0)", "service" */
};

struct install_job {
	pid_t pid; /* the validator, 0 once reaped */
	int status;
	char work[PATH_MAX];
	unsigned int base_gen; /* the active generation the candidate was built over */
	uint64_t oom_kills;    /* the host's OOM kills when the validator started */
};

struct install_outcome {
	unsigned int gen;     /* activated generation (0: none) */
	bool unchanged;	      /* skip_unchanged: nothing new, nothing done */
	char qpath[PATH_MAX]; /* quarantine, when refused */
	char reason[INSTALL_ERR_LEN];
	struct json_object *result; /* the validator's report (caller puts), or NULL */
};

/* install_start: create the work directory, copy the inputs when asked,
 * and fork the validator. Returns 0 with job filled, or -errno with a
 * reason in err[INSTALL_ERR_LEN] (an input that cannot be read: -ENOENT,
 * -EACCES naming it). */
int install_start(struct defs_store *s, const struct install_req *req, struct install_job *job,
		  char *err);

/* install_wait: reap the validator: 1 while it runs (block false), 0 once
 * it has exited (job->status), -errno. */
int install_wait(struct install_job *job, bool block);

/* install_finish: after install_wait returned 0: commit or quarantine as
 * described above, remove the work directory, fill out. Returns 0 (out->gen
 * activated, or 0 with out->unchanged when skip_unchanged found nothing
 * new), -EBADMSG (refused: out->reason, out->qpath), -EAGAIN (the
 * active set changed meanwhile; nothing done), -ENOMEM (the OOM killer
 * took the validator or its test load: the set was not judged, nothing is
 * quarantined; try again later), or another -errno for an internal failure
 * (out->reason). */
int install_finish(struct defs_store *s, struct install_job *job, const struct install_req *req,
		   struct install_outcome *out);

/* An install_finish running in a child process of its own (the service's
 * event loop must not wait for the copies and fsyncs of a big set). */
struct install_commit {
	pid_t pid; /* the committer, 0 once it is done */
	int fd;	   /* the read end of its report, -1 when none */
};

/* install_finish_start: run install_finish(s, job, req) in a child process
 * that keeps only the store's directory, the log file and the report pipe
 * of the parent's descriptors (a client connection held here would miss
 * its EOF). Returns 0 with c filled, or -errno (the caller may then run
 * install_finish itself). job->work belongs to the child from here on. */
int install_finish_start(struct defs_store *s, struct install_job *job,
			 const struct install_req *req, struct install_commit *c);

/* install_finish_collect: once the committer has exited (the caller reaped
 * it; status is its wait status): its outcome into out (out->result is
 * NULL) and install_finish's return value, or -EIO with out->reason when
 * it died without a report. Closes c->fd; job->work is removed if the
 * child left it. */
int install_finish_collect(struct install_commit *c, struct install_job *job, int status,
			   struct install_outcome *out);

/* install_abort: kill a running validator, reap it, remove the work
 * directory. */
void install_abort(struct install_job *job);

/* install_verify: everything but the activation, for "scanctl defs
 * verify": the validator runs over copies of the files (req->copy_inputs
 * is implied) against the generation activedir (NULL: none) in a private
 * work directory under tmpdir (NULL: /tmp), removed afterwards; its report
 * goes to *result (caller puts; NULL on an internal failure). Returns 0
 * (passed), -EBADMSG (refused: see the report), or another -errno with
 * err[INSTALL_ERR_LEN]. No store is needed or touched. */
int install_verify(const struct install_req *req, const char *activedir, const char *tmpdir,
		   struct json_object **result, char *err);

/* install_run: install_start + install_wait(block) + install_finish. */
int install_run(struct defs_store *s, const struct install_req *req, struct install_outcome *out);

#endif
