/* cycle: one update cycle as the updater process runs it (DESIGN.md
 * section 3: unprivileged, network access, may write only its work
 * directory). For each database name, in the mirrors' failover order:
 *
 *   1. the mirror's header: a Range request for the first 512 bytes of
 *      <mirror>/<db>.cvd, checked as a CVD header (an HTML page or a
 *      truncated answer is "bad data");
 *   2. the verdict against the version the host has (policy.h): up to
 *      date (nothing more is fetched), a stale mirror (never a downgrade:
 *      the next mirror is asked), or newer;
 *   3. newer: the .cdiff patches <db>-<local+1>.cdiff .. <db>-<remote>.cdiff
 *      applied to a private copy of the active database and written as a
 *      .cld (cdiff.h), when the host has the database, ScriptedUpdates is
 *      on and every patch is there and applies (and each patch's .sign,
 *      where the mirror has one, verifies: one that does not rules the
 *      mirror out as serving bad data; with RequireSignFile a patch
 *      without .sign is not used); otherwise the whole
 *      <db>.cvd and, when the mirror has it, <db>-<remote>.cvd.sign. What
 *      comes must be the advertised version (a mirror that serves an older
 *      one than it announced is out of sync: stale).
 *
 * Nothing fetched here is trusted: the files go back to the supervisor,
 * which hands them to the definitions pipeline (defs/install.h) like any
 * other candidate. The updater only decides what to fetch.
 *
 * Results travel to the supervisor as IPC messages (common/ipc.h), one
 * UPD_MSG_DB per database with a JSON object, then UPD_MSG_DONE. */
#ifndef SE_UPDATER_CYCLE_H
#define SE_UPDATER_CYCLE_H

#include <stdbool.h>
#include <stdint.h>

#include "updater/fetch.h"
#include "updater/policy.h"

enum {
	UPD_MSG_DB = 0x5501,   /* payload: one database's result (JSON text) */
	UPD_MSG_DONE = 0x5502, /* payload: empty; the cycle is over */
};

#define UPD_MAX_DB_BYTES (1ull << 30) /* a whole .cvd or one .cdiff larger than this is refused */

struct upd_cycle_req {
	const char *const *names; /* databases, NULL-terminated */
	const struct upd_mirrors *mirrors;
	/* per mirror (mirrors->n entries): not to be contacted in this cycle
	 * (a 429/403 cool-down, or ordinary back-off for a scheduled cycle),
	 * with the reason reported for it */
	const bool *skip;
	const enum upd_failure *skip_kind;
	const char *const *skip_reason;
	const char *active_dir; /* the active generation's directory, or NULL */
	const char *work_dir;	/* empty, private, writable */
	struct fetch_opts fetch;
	bool scripted_updates; /* ScriptedUpdates */
	/* a patch's .sign, when the mirror has one, is checked here, so that
	 * a tampered patch is put down to its mirror at once */
	const char *certs_dir; /* CertsDirectory */
	bool require_sign;     /* RequireSignFile: a patch without .sign is not taken */
	const char *tmp_dir;   /* for the checks' private files (work_dir) */
};

/* upd_cycle_run: run the cycle for every name and send the results over
 * sock. A database's JSON object:
 *   name, result ("fetched", "up to date", "failed"), old_version (0: the
 *   host has none), mirror_version (null: no mirror answered), mirror (the
 *   one used, or null), incremental, cdiffs, cdiff_signatures (the patches
 *   whose .sign verified), bytes (everything fetched for
 *   it, header requests and failed tries included), ms, file and sign (the
 *   fetched files in work_dir, when fetched; sign may be null), failure
 *   (policy's name of the kind) and reason (one line), and attempts: per
 *   mirror asked, {mirror (its URL), index (in mirrors), result ("ok",
 *   "failed", "skipped"), failure, reason, retry_after_s}.
 * Returns 0, or -errno when the results could not be sent. */
int upd_cycle_run(const struct upd_cycle_req *req, int sock);

#endif
