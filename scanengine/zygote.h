/* zygote: the engine process of one definitions generation, and the scan
 * workers it forks.
 *
 * The supervisor forks the zygote; the zygote drops to the scan account,
 * loads and compiles the definitions once, reports MSG_ZY_READY (or
 * MSG_ZY_FAILED) and then forks a worker for every MSG_ZY_SPAWN. Workers are
 * forked through a short-lived intermediate so that they are re-parented to
 * the supervisor (a child subreaper), which thus reaps them and sees how
 * they died. The compiled engine is shared copy-on-write by all of them. */
#ifndef SE_SCANENGINE_ZYGOTE_H
#define SE_SCANENGINE_ZYGOTE_H

#include "common/config.h"
#include "sandbox/sandbox.h"

/* zygote_main: body of the zygote child: load the definitions in dbdir.
 * sock is its end of the supervisor's socketpair, every other descriptor
 * must already be closed. Never returns. */
void zygote_main(const struct config *cfg, const struct sandbox_identity *id, const char *dbdir,
		 int sock) __attribute__((noreturn));

#endif
