/* worker: a sandboxed scan process forked from the zygote. It receives
 * (job id, file descriptor) over its socket, scans with the shared engine and
 * answers with the verdict. It has no path access beyond its scratch
 * directory, cannot execute, create sockets or trace (sandbox/). */
#ifndef SE_SCANENGINE_WORKER_H
#define SE_SCANENGINE_WORKER_H

#include "common/config.h"
#include "scanengine/engine.h"

/* worker_main: body of a worker; sock is its end of the socketpair the
 * supervisor created for it, every other descriptor is closed. Exits on EOF
 * (the supervisor went away or retired it). Never returns. */
void worker_main(struct engine *e, const struct config *cfg, int sock) __attribute__((noreturn));

#endif
