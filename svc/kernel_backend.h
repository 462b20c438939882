/* SPDX-License-Identifier: ISC */
/* Backends of the kernel channel: where its descriptor comes from. Internal to svc/. */
#ifndef SAKEYD_KERNEL_BACKEND_H
#define SAKEYD_KERNEL_BACKEND_H

#include "svc/kernel.h"

/*
 * Open a non-blocking PF_KEY socket with a large receive buffer and register
 * it for ACQUIRE and EXPIRE. Returns 0 and *fd, or -errno.
 */
int kern_pfkey_open(const struct kern_opts *opts, int *fd);

/*
 * SADB_REGISTER for ESP on fd: only registered sockets receive EXPIRE and
 * ACQUIRE. The reply arrives later as an event. 0 or -errno.
 */
int kern_pfkey_register(int fd);

#endif
