/* SPDX-License-Identifier: ISC */
/* systemd's readiness protocol (sd_notify) without libsystemd: one datagram to $NOTIFY_SOCKET. */
#ifndef SAKEYD_NOTIFY_H
#define SAKEYD_NOTIFY_H

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

#endif
