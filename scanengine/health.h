/* health: fault 5 (scan service user unavailable).
 *
 * The scan account must exist, and the directories make install sets up
 * must keep their owner and mode: StateDirectory and its definitions store
 * (defs/), root, 0755 (TemporaryDirectory is the service's own: it is
 * recreated and given to the scan account as needed). Checked at start,
 * on reload and every HealthCheckInterval. While the account is missing the
 * engine and workers run as root (degraded) and fault 5 says how to fix
 * it; it clears by itself when everything is right again. */
#ifndef SE_SCANENGINE_HEALTH_H
#define SE_SCANENGINE_HEALTH_H

#include <stdbool.h>

#include "common/config.h"
#include "sandbox/sandbox.h"

struct faults;

/* health_check: look cfg->user up again into *id (NSS: not for hot paths),
 * check the directories, and raise or clear fault 5 on f (may be NULL).
 * Returns true when the account appeared or disappeared since *id was last
 * filled, so the caller can restart the engine under the right identity. */
bool health_check(const struct config *cfg, struct sandbox_identity *id, struct faults *f);

#endif
