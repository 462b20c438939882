/* SPDX-License-Identifier: ISC */
/* systemd's readiness protocol (sd_notify) without libsystemd: one datagram to $NOTIFY_SOCKET. */
#ifndef SAKEYD_NOTIFY_H
#define SAKEYD_NOTIFY_H

#include <stdint.h>
#include <uv.h>

/*
 * Sends state (newline-separated VAR=VALUE assignments such as "READY=1",
 * "RELOADING=1", "STOPPING=1", "STATUS=...") to the service manager at
 * $NOTIFY_SOCKET: an AF_UNIX datagram socket, a path or, when the variable
 * starts with '@', an abstract name. Does nothing when the variable is unset
 * or empty (not started by systemd, or Type= is not notify). Never blocks
 * the loop for long: one non-blocking sendto(). Returns 1 if sent, 0 if there
 * is nobody to tell, or -errno (logged at debug level; callers may ignore it:
 * a missed notification is systemd's timeout to report, not ours).
 */
int notify_send(const char *state);

/*
 * The watchdog interval the service manager asks of this process, as
 * sd_watchdog_enabled(3) reads it: $WATCHDOG_USEC, a positive decimal number
 * of microseconds, and, if set, $WATCHDOG_PID, which must be our pid (else
 * the request is another process's: a child that inherited the variables).
 * Returns 1 with *usec set, 0 if no watchdog is asked of us, -EINVAL if a
 * variable is malformed (logged as a warning; no watchdog then).
 */
int notify_watchdog_usec(uint64_t *usec);

/*
 * Starts timer (initialised on the daemon's loop by the caller, closed by
 * it) sending WATCHDOG=1 every half of the interval notify_watchdog_usec()
 * reads, so a loop that hangs stops the pings and the service manager
 * restarts the daemon (WatchdogSec= in the unit). Returns 1 if started, 0 if
 * no watchdog is asked of us, or -EINVAL (malformed variables, logged).
 */
int notify_watchdog_start(uv_timer_t *timer);

#endif
