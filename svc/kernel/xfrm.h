/* SPDX-License-Identifier: ISC */
/* XFRM netlink codec: PF_KEY-shaped requests to NETLINK_XFRM messages and back. Pure: no I/O. */
#ifndef SAKEYD_XFRM_H
#define SAKEYD_XFRM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <linux/netlink.h>

#include "svc/kernel/pfkey.h"

/*
 * The daemon and the kernel channel speak struct pfkey_msg whatever the
 * backend. With kernel = xfrm every request is translated here into its
 * XFRM equivalent (pfkey-linux.md § 9), and every XFRM message back into
 * the PF_KEY message Linux af_key would have sent, so the daemon's logic is
 * the same on both. What PF_KEY cannot say travels in pfkey_msg's x_ fields:
 * the ICV length, a replay window above 255 and ESN.
 */

/* Groups the channel joins (legacy bitmask): ACQUIRE, EXPIRE, SA, POLICY. */
#define XFRM_CHANNEL_GROUPS (1u | 2u | 4u | 8u)

/*
 * Whether a request of PF_KEY type t is answered with a message (GET,
 * GETSPI, X_SPDGET) rather than an acknowledgement. Data requests are sent
 * without NLM_F_ACK: the kernel reports their errors all the same.
 */
bool xfrm_reply_is_data(uint8_t type);

/*
 * Encode request m (types ADD, UPDATE, DELETE, GET, GETSPI, FLUSH, DUMP,
 * X_SPDADD, X_SPDUPDATE, X_SPDDELETE, X_SPDDELETE2, X_SPDGET, X_SPDDUMP,
 * X_SPDFLUSH) as one netlink message with nlmsg_seq seq and nlmsg_pid
 * portid into buf. acq_seq is the kernel's km.seq of an ACQUIRE this ADD
 * answers (0 if none). Returns the message length (NLMSG_ALIGNed), -EMSGSIZE
 * if cap is too small, -EOPNOTSUPP for a type XFRM has no request for
 * (REGISTER, X_PROMISC, ...), -EINVAL for what cannot be translated (an
 * unknown algorithm id, a missing address). The caller cleanses buf.
 */
ssize_t xfrm_encode(const struct pfkey_msg *m, uint32_t seq, uint32_t portid, uint32_t acq_seq,
		    void *buf, size_t cap);

/*
 * Walk the messages of a received datagram: whether nlh is a whole message
 * within the left bytes, and the next one (left shrinks; 0 at the end).
 * libmnl's mnl_nlmsg_ok compares the length as an int, so a hostile
 * nlmsg_len of 2^31 or more passes it: these compare unsigned.
 */
bool xfrm_nlmsg_ok(const struct nlmsghdr *nlh, size_t left);
const struct nlmsghdr *xfrm_nlmsg_next(const struct nlmsghdr *nlh, size_t *left);

/*
 * Translate one netlink message (already bounded: nlh->nlmsg_len bytes are
 * readable and >= sizeof(*nlh)) into *m. The input is hostile: every
 * attribute length, string and count is checked. Key pointers in *m point
 * into the message. Returns 1 (m filled: type is the PF_KEY equivalent, pid
 * nlmsg_pid, seq nlmsg_seq except for ACQUIRE, whose seq is the kernel's
 * acquire seq), 0 for a message type the channel does not use (*m zeroed),
 * or -EINVAL with *why naming the broken rule.
 */
int xfrm_decode(const struct nlmsghdr *nlh, struct pfkey_msg *m, const char **why);

/*
 * One replay/aevent notification (XFRM_MSG_NEWAE to XFRMNLGRP_AEVENTS,
 * xfrm_user.c: build_aevent), or the answer to a GETAE. Integers in host
 * order. flags is the message's XFRM_AE_* cause: XFRM_AE_CR (a packet moved
 * a sequence number by the SA's threshold), XFRM_AE_CE (its timer found a
 * change), XFRM_AE_CU (someone changed the SA with XFRM_MSG_NEWAE).
 */
struct kern_aevent {
	struct pfkey_addr src, dst;
	uint32_t spi; /* host order */
	uint8_t proto;
	uint32_t reqid;
	uint32_t flags;
	bool has_replay;
	struct kern_replay replay;
	bool has_lifetime;
	uint64_t bytes, packets;
	int64_t add_time, use_time;
};

/*
 * Decode one XFRM_MSG_NEWAE (bounded as for xfrm_decode) into *ev. Hostile
 * input: every length is checked, a bitmap against its attribute and
 * KERN_REPLAY_BMP_MAX. Returns 1 (ev filled), 0 for another message type
 * (*ev zeroed), or -EINVAL with *why (if non-NULL) naming the broken rule.
 */
int xfrm_decode_aevent(const struct nlmsghdr *nlh, struct kern_aevent *ev, const char **why);

/*
 * Encode an XFRM_MSG_NEWAE request (NLM_F_REPLACE | NLM_F_ACK) that sets
 * both notification thresholds of SA (dst, spi, proto) to 0: it never
 * notifies again (xfrm_user.c: xfrm_new_ae). Returns the length, -EMSGSIZE
 * or -EINVAL (unknown family, proto 0).
 */
ssize_t xfrm_encode_aevent_quiet(const struct pfkey_addr *dst, uint32_t spi, uint8_t proto,
				 uint32_t seq, uint32_t portid, void *buf, size_t cap);

/*
 * Whether sequence number r->seq - diff counts as received in *r: its bit in
 * the ring, or true when diff >= r->window (older than the window: the
 * kernel refuses it as too old).
 */
bool xfrm_replay_seen(const struct kern_replay *r, uint32_t diff);

/*
 * The XFRM name and default ICV (bits; 0 for ciphers) of PF_KEY algorithm id
 * (aead: an SADB_X_EALG_AES_GCM_* id). NULL if unknown.
 */
const char *xfrm_ealg_name(uint8_t id, bool *aead, uint16_t *icv_bits);
const char *xfrm_aalg_name(uint8_t id, uint16_t *icv_bits);

#endif
