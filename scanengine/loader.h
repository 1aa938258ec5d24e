/* loader: which definitions the engine loads, and what happens when they
 * do not load (fault 7).
 *
 * The engine always loads a generation of the definitions store
 * (<StateDirectory>/defs, defs/store.h). DatabaseDirectory is where new
 * definitions come from: when its files changed (looked at on start,
 * RELOAD and SIGUSR2, never by watching) a validator process (defs/install.h)
 * checks them in the background, as the scan account, over the active
 * generation: the files that differ from the active set's are new, the
 * databases that came from DatabaseDirectory and are gone from it are left
 * out, the rest (sets installed with scanctl) is carried over. A set that
 * passes becomes a new generation, is activated and loaded; one that is
 * refused is quarantined with its reason (event "definitions_refused") and
 * the active generation stays. Until the first set passes there is nothing
 * to load: fault 7.
 *
 * When an engine cannot be brought up, fault 7 is raised with the cause:
 *   - bad definitions (libclamav rejects them, or the loader crashes on
 *     them): the generation is quarantined with a reason.json, the previous
 *     one is activated and loaded; a set that failed before is not
 *     activated again when it is offered again;
 *   - insufficient memory (the OOM killer in the MemoryLimit cgroup,
 *     ENOMEM): the reason gives the memory needed against what is
 *     available; the definitions are kept and loading is retried with
 *     exponential back-off;
 *   - anything else: named, retried with back-off.
 * Fault 7 clears when an engine is up. While none is, scan requests are
 * answered with an error naming fault 7. */
#ifndef SE_SCANENGINE_LOADER_H
#define SE_SCANENGINE_LOADER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "defs/install.h"

#include "common/config.h"
#include "sandbox/sandbox.h"
#include "scanengine/msgs.h"

struct json_object;
struct pool;
struct faults;
struct memlimit;
struct loader;

/* loader_new: open the store under cfg->state_dir. cfg, id (the scan
 * account, read at each import), pool and faults must outlive the loader;
 * faults may be NULL. Returns it or NULL with a reason in err[512]. */
struct loader *loader_new(const struct config *cfg, const struct sandbox_identity *id,
			  struct pool *pool, struct faults *faults, char *err);

/* loader_free: NULL ok. */
void loader_free(struct loader *l);

/* loader_set_memlimit: the MemoryLimit in force (NULL: none), for the
 * figures of an insufficient-memory fault. */
void loader_set_memlimit(struct loader *l, struct memlimit *m);

/* loader_start: bring in DatabaseDirectory if it changed since the last
 * import (or nothing is active yet) and start loading the active
 * generation. Returns 0, or -errno with a one-line reason in err[512] when
 * there is nothing that could be loaded at all (no active generation and
 * DatabaseDirectory missing, empty or unreadable by the scan user). */
int loader_start(struct loader *l, char *err);

/* loader_reload: RELOAD/SIGUSR2: bring in changed definitions and load the
 * active generation now (also cutting short a retry back-off). */
void loader_reload(struct loader *l, const char *why);

/* loader_engine_ready / loader_engine_failed: the pool's outcome hooks. */
void loader_engine_ready(struct loader *l, const struct msg_engine_info *info);
void loader_engine_failed(struct loader *l, enum load_failure cls, const char *why,
			  const char *dir);

/* loader_import: validate files (candidate definitions, each "<file>.sign"
 * going along when it exists) over the active generation as DatabaseDirectory
 * imports are, but with authenticity required (they do not come from the
 * admin's own directory) and origin recorded in the manifest; in the
 * background. When the validation and its commit are over, done(arg, r,
 * out) is called with install_finish's r and outcome (0 with out->gen:
 * activated, and the engine then loads it; -EBADMSG refused and
 * quarantined; -EAGAIN the active set changed meanwhile; -ENOMEM not
 * judged, ...). The files are copied first: the caller may remove them
 * once done is called. Returns 0, -EBUSY while another validation runs,
 * or -errno with err[512]. */
typedef void (*loader_import_cb)(void *arg, int r, const struct install_outcome *out);
int loader_import(struct loader *l, const char *const *files, size_t nfiles, const char *origin,
		  loader_import_cb done, void *arg, char *err);

/* loader_failed_before: whether a generation with database db at this
 * version failed to load before (fault 7, bad definitions) and was
 * quarantined for it; its path into qpath[qlen] (may be NULL). */
bool loader_failed_before(const struct loader *l, const char *db, uint32_t version, char *qpath,
			  size_t qlen);

/* loader_active_dir: the active generation's directory, or NULL. */
const char *loader_active_dir(const struct loader *l);

/* loader_busy: a validation of DatabaseDirectory's files is running. */
bool loader_busy(const struct loader *l);

/* loader_start_failure: why no engine can be brought up at all (the only
 * definitions there are were refused), or NULL. */
const char *loader_start_failure(const struct loader *l);

/* loader_tick: retries that are due, a validator that finished. Call every
 * ~100 ms. */
void loader_tick(struct loader *l);

/* loader_status: add the store's state ("definitions_generation",
 * "definitions_store", next retry) to o. */
void loader_status(const struct loader *l, struct json_object *o);

#endif
