/* notify: systemd's service notification protocol (Type=notify) without
 * libsystemd: one datagram to $NOTIFY_SOCKET per state change. */
#ifndef SE_COMMON_NOTIFY_H
#define SE_COMMON_NOTIFY_H

#include <stdint.h>

/* notify_send: send state (e.g. "READY=1\nSTATUS=...") to the service
 * manager. Returns 0 (also when not run under systemd) or -errno. */
int notify_send(const char *state);

/* notify_watchdog_usec: the WATCHDOG_USEC the manager asked for (when
 * WATCHDOG_PID is unset or ours), else 0. */
uint64_t notify_watchdog_usec(void);

#endif
