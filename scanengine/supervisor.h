/* supervisor: the root process of scanengined. It owns the event loop, the
 * control socket, the pid file and the engine pool; it never parses
 * untrusted file content, and never exits over what a child or a client
 * sent (DESIGN.md section 3). */
#ifndef SE_SCANENGINE_SUPERVISOR_H
#define SE_SCANENGINE_SUPERVISOR_H

#include "common/config.h"

/* supervisor_run: start the service and run it until SHUTDOWN or a
 * terminating signal. Start-up progress is reported on ready_fd (the
 * daemonizing parent's pipe, or -1 in the foreground): "OK\n" once the
 * engine is loaded and the socket accepts, or "ERR <reason>\n". Returns the
 * process exit status (0 after a clean stop, 1 when start-up failed). */
int supervisor_run(struct config *cfg, int ready_fd);

#endif
