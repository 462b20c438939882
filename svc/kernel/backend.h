/* SPDX-License-Identifier: ISC */
/* Backends of the kernel channel: where its descriptor comes from. Internal to svc/kernel/. */
#ifndef SAKEYD_KERNEL_BACKEND_H
#define SAKEYD_KERNEL_BACKEND_H

#include "svc/kernel/channel.h"

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

/*
 * A receive buffer of size bytes on fd: SO_RCVBUFFORCE (past rmem_max, with
 * CAP_NET_ADMIN), else SO_RCVBUF; a failure is logged, not fatal.
 */
void kern_set_rcvbuf(int fd, int size);

/*
 * Open a non-blocking NETLINK_XFRM socket with a large receive buffer,
 * joined to the ACQUIRE, EXPIRE, SA and POLICY groups. *portid is the
 * address the kernel bound it to. Returns 0 and *fd, or -errno.
 */
int kern_xfrm_open(const struct kern_opts *opts, int *fd, uint32_t *portid);

#endif
