/* validate: the staged validation of definitions (DESIGN.md section 4).
 *
 * A candidate set is what the next generation would hold: the active
 * generation's databases that the new files do not replace, plus the new
 * files under their database file names (test-3.cvd is database "test",
 * stored as test.cvd, with test.cvd.sign beside it when it came with one).
 * The new files go through the per-file stages, the whole set through the
 * set stages; each stage reports pass or fail with a reason and its
 * duration, and the first failure stops the pipeline:
 *
 *   1 format         header, name, size; libmagic says what a payload that
 *                    is no container really is ("HTML document ...")
 *   2 integrity      the header's MD5 of the payload
 *   3 authenticity   .sign (PKCS#7 against CertsDirectory), the legacy CVD
 *                    signature, or unsigned where allowed
 *   4 compatibility  f-level <= the linked libclamav's, version newer than
 *                    the active one (unless it is an explicit rollback)
 *   5 unpack         libarchive into a private directory under the rules
 *                    of defs/unpack.h; every member's size and SHA-256
 *                    against its .info line
 *   6 test load      a separate process as the scan user, under a memory
 *                    cap and a timeout: cl_load + compile of the whole set;
 *                    the signature count against the headers; peak memory
 *   7 canary         that engine must detect EICAR and every file of
 *                    CanaryDirectory, and must not alarm on the clean corpus
 *                    (system files every host has, and CleanCorpusDirectory)
 *
 * Activation is the store's (defs/store.h); this module never touches the
 * store. */
#ifndef SE_DEFS_VALIDATE_H
#define SE_DEFS_VALIDATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/config.h"
#include "sandbox/sandbox.h"

struct json_object;

enum validate_stage {
	VS_FORMAT = 0,
	VS_INTEGRITY,
	VS_AUTHENTICITY,
	VS_COMPATIBILITY,
	VS_UNPACK,
	VS_TEST_LOAD,
	VS_CANARY,
	VS_NSTAGES,
};

enum validate_status {
	VST_NOT_RUN = 0,
	VST_PASS,
	VST_FAIL,
	VST_FORCED, /* skipped by --force; recorded */
};

#define VALIDATE_REASON_MAX 512

struct validate_stage_report {
	enum validate_status status;
	char reason[VALIDATE_REASON_MAX];
	uint64_t ms;
};

/* One database of the candidate set. */
struct validate_db {
	char name[128]; /* "test", "daily", or a plain file's own name */
	char file[256]; /* its file in the generation: "test.cvd", "local.hdb" */
	bool container; /* .cvd/.cld/.cud */
	bool is_new;	/* came with this install (else carried over) */
	uint32_t version, sigs, flevel, stime;
	char build_time[40];
	char sha256[65];
	char auth[16]; /* "sign", "legacy", "unsigned", "local", "carried" */
	char signer[256];
	uint32_t loaded;     /* signatures the test load counted (all, PUA included) */
	uint32_t load_ms;    /* its cl_load in the test load (before the compile) */
	uint64_t engine_kib; /* memory the test load grew by while loading it */
};

struct validate_policy {
	const struct config *cfg;	   /* CertsDirectory, AllowUnsignedDefinitions, ... */
	const struct sandbox_identity *id; /* the test load runs as this account */
	unsigned int force;		   /* bit (1 << stage) per stage to skip */
	bool rollback;			   /* an explicit rollback may go back in version */
	/* Files from DatabaseDirectory: the administrator put them there, so
	 * unsigned plain files and .cud are trusted as "local". */
	bool local;
	/* Databases of the active set not to carry over (a DatabaseDirectory
	 * import drops those it brought and no longer holds). */
	const char *const *drop;
	size_t ndrop;
	/* A new file identical to the active set's file of its database is
	 * carried over instead; when nothing is new and nothing dropped, the
	 * pipeline stops after format with res->unchanged (DatabaseDirectory
	 * imports, where every file is offered each time). */
	bool skip_unchanged;
	/* Progress lines (may be NULL), e.g. for a TTY. */
	void (*progress)(void *arg, const char *line);
	void *progress_arg;
};

/* A file of the candidate set and its SHA-256, as validated. */
struct validate_file {
	char name[300];
	char sha256[65];
};

struct validate_result {
	struct validate_stage_report stages[VS_NSTAGES];
	enum validate_stage failed; /* VS_NSTAGES: nothing failed */
	bool unchanged;		    /* skip_unchanged: nothing new; no other stage ran */
	char offending[256];	    /* the file (and member) a failure is about */
	struct validate_db *dbs;
	size_t ndbs;
	struct validate_file *files; /* every file of set/, hashed before the test load */
	size_t nfiles;
	uint32_t loaded_sigs; /* what the test load counted */
	uint64_t engine_kib;  /* peak memory of the test load */
};

/* validate_stage_name: "format", "integrity", ... */
const char *validate_stage_name(enum validate_stage s);

/* validate_stage_parse: the stage named name, or -EINVAL. */
int validate_stage_parse(const char *name);

/* validate_db_name: the database a file belongs to: the file name without
 * directory and extension, and without a "-<number>" version suffix for a
 * container ("test-3.cvd" -> "test"); a plain signature file is its own
 * database ("local.hdb"). Writes into out[len]; returns 0 or -EINVAL for a
 * name that cannot be a database. */
int validate_db_name(const char *path, char *out, size_t len);

/* validate_candidate: build, in the work directory dir (existing and
 * empty; made mode 0755, since the test load reads it as the scan
 * account), the candidate set of the new files (paths; a "<file>.sign"
 * argument or sibling goes with <file>) over the active generation
 * activedir (NULL: none), and run every stage. dir then holds:
 *   set/     the candidate: what a generation made of it would hold
 *   unpack/  each new container's members, as stage 5 extracted them
 *   tmp/     the test load's scratch directory
 * Nothing outside dir is written. res is filled in either case (free with
 * validate_result_free). Returns 0 when the set passed (a forced stage's
 * failure is recorded as VST_FORCED and counts as passed), -EBADMSG when a
 * stage failed (res->failed, its reason, res->offending), or another -errno
 * for an internal failure (bad arguments, the work directory, memory, an
 * unreadable CanaryDirectory; described in the failed stage's reason, or
 * in stages[0] when no stage ran). */
int validate_candidate(const char *const *files, size_t nfiles, const char *activedir,
		       const char *dir, const struct validate_policy *pol,
		       struct validate_result *res);

/* validate_result_free: free what validate_candidate allocated (NULL ok). */
void validate_result_free(struct validate_result *res);

/* validate_result_json: a new JSON object: {stages: [{stage, status,
 * reason, ms}], passed, failed, reason, offending, databases: [...],
 * set_files: {name: sha256}, loaded_signatures, engine_kib}; NULL when out
 * of memory. */
struct json_object *validate_result_json(const struct validate_result *res);

/* validate_db_json: one database as in the manifest: {name, file, version,
 * signatures, flevel, build_time, build_stime, loaded_signatures, sha256,
 * authentication, signer, new}; NULL when out of memory. */
struct json_object *validate_db_json(const struct validate_db *d);

/* validate_status_name: "pass", "fail", "forced", "not run". */
const char *validate_status_name(enum validate_status s);

#endif
