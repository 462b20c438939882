/* SPDX-License-Identifier: ISC */
/* XFRM replay/aevent notifications on a socket of their own: first packets on spare SAs. */
#ifndef SAKEYD_AEVENTS_H
#define SAKEYD_AEVENTS_H

#include <stdint.h>
#include <uv.h>

#include "svc/kernel/pfkey.h"
#include "svc/kernel/xfrm.h"

/*
 * While anyone listens to XFRMNLGRP_AEVENTS, every SA of the network
 * namespace notifies it by its thresholds (xfrm_replay.c: xfrm_aevent_is_on):
 * SAs of other tools keep the sysctls' (every 2 packets, and each second
 * after a change). That flood lands here, on a socket of its own with a
 * large receive buffer, never on the channel's socket, so it can delay or
 * overflow nothing but itself. What the daemon's SAs send is decided at ADD
 * by pfkey_msg.x_aevents: KERN_AEV_QUIET never notifies, KERN_AEV_FIRST
 * notifies every packet that moves its sequence number (flags XFRM_AE_CR),
 * the first one included, until kern_aevents_quiet. No aevent is sent at
 * ADD, DELETE or expiry, and none by timer for either kind.
 */
struct kern_aevents;

/* One event (valid during the call only). */
typedef void (*kern_aevent_cb)(const struct kern_aevent *ev, void *arg);
/*
 * The kernel dropped notifications (ENOBUFS: the receive buffer overran);
 * count is the total of such overruns since open. Which SAs' events were
 * lost is unknown: the caller must learn from a dump instead.
 */
typedef void (*kern_aevent_lost_cb)(unsigned long count, void *arg);

/*
 * Open a NETLINK_XFRM socket joined to XFRMNLGRP_AEVENTS only, in the
 * caller's network namespace, read on loop. cb gets every NEWAE from the
 * kernel except the echoes of kern_aevents_quiet (counted as ignored);
 * lost (may be NULL) every overrun. Needs CAP_NET_ADMIN. Returns 0 and
 * *out, or -errno (logged).
 */
int kern_aevents_open(uv_loop_t *loop, kern_aevent_cb cb, kern_aevent_lost_cb lost, void *arg,
		      struct kern_aevents **out);

/*
 * Make SA (dst, spi, proto) quiet again (XFRM_MSG_NEWAE, NLM_F_REPLACE,
 * both thresholds 0), e.g. once a spare that was added KERN_AEV_FIRST has
 * been promoted. The kernel's answer comes later: an error (ESRCH if the
 * SA is gone) is logged with the SPI. Returns 0 once sent, or -errno
 * (-EINVAL for an address or proto the codec refuses, -EAGAIN if the socket
 * cannot take it now).
 */
int kern_aevents_quiet(struct kern_aevents *a, const struct pfkey_addr *dst, uint32_t spi,
		       uint8_t proto);

struct kern_aevents_stats {
	unsigned long received;  /* events passed to cb */
	unsigned long malformed; /* refused by xfrm_decode_aevent, or truncated */
	unsigned long lost;      /* ENOBUFS overruns */
	unsigned long ignored;   /* own echoes, other message types, not from the kernel */
};
void kern_aevents_stats(const struct kern_aevents *a, struct kern_aevents_stats *out);

/* Stop reading and close; memory is freed from the loop's close callback. NULL is a no-op. */
void kern_aevents_close(struct kern_aevents *a);

#endif
