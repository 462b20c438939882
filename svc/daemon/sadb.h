/* SPDX-License-Identifier: ISC */
/* Mapping between PF_KEY messages and the domain model; the daemon's SA and policy requests. */
#ifndef SAKEYD_SADB_H
#define SAKEYD_SADB_H

#include "conf/conf.h"
#include "monitor/table.h"
#include "rotate/sa.h"
#include "svc/kernel/channel.h"
#include "svc/kernel/pfkey.h"

int sadb_addr_from_pfkey(const struct pfkey_addr *in, struct conf_addr *out);
void sadb_addr_to_pfkey(const struct conf_addr *in, struct pfkey_addr *out);
/* "192.0.2.1" or "2001:db8::1" (no prefix); returns buf. */
const char *sadb_addr_str(const struct conf_addr *a, char *buf, size_t len);
/* The algorithm of conf_algs[] with these PF_KEY ids, or NULL. */
const struct conf_alg *sadb_alg_by_ids(uint8_t ealg, uint8_t aalg, uint16_t enc_bits);

/*
 * The identity and attributes of the SA a message describes (SA, SRC and DST
 * extensions needed). Management fields are zero. 0 or -EINVAL.
 */
int sadb_msg_to_sa(const struct pfkey_msg *m, struct rot_sa *sa);
/*
 * Copy the kernel's view (state, lifetimes, counters, origin if created, key
 * fingerprint when the message carries keys) from m into e.
 */
void sadb_fill_entry(const struct pfkey_msg *m, struct mon_sa *e, bool created);
/*
 * What the kernel holds of an SA that our own ADD of sa installed, as its
 * notification would have said it (the XFRM channel drops those): *id gets
 * the identity and attributes, *e (an entry of that identity) the state,
 * lifetimes, add time now, origin pid if created and the key fingerprint.
 */
void sadb_own_sa(const struct rot_sa *sa, struct rot_sa *id);
void sadb_fill_own_entry(const struct rot_sa *sa, uint32_t pid, int64_t now, struct mon_sa *e,
			 bool created);

/*
 * SADB_ADD of the managed SA sa: its keys are derived from secret here, in a
 * wiped secure buffer, and never leave the encoded message (which the channel
 * wipes after sending). seq 0 for a fresh one, or an ACQUIRE's seq. fp, if
 * not NULL, receives the fingerprint of the derived keys (rot_sa_fingerprint's,
 * without deriving them twice). opts (NULL: none) adds what only XFRM can say.
 */
/* What an add carries besides the SA (XFRM only; PF_KEY cannot say either). */
struct sadb_add_opts {
	bool has_replay;
	struct kern_replay replay; /* the state to start from (key schedule v2: after a loss) */
	uint8_t aevents;           /* KERN_AEV_QUIET or KERN_AEV_FIRST (a spare inbound SA) */
};

int sadb_request_add(struct kern *k, const struct rot_sa *sa, const uint8_t *secret, uint32_t seq,
		     const struct sadb_add_opts *opts, char *fp, kern_reply_cb cb, void *arg);
/* SADB_DELETE of sa (by dst, spi, proto). */
int sadb_request_delete(struct kern *k, const struct rot_sa *sa, kern_reply_cb cb, void *arg);

/*
 * The SADB_X_SPDUPDATE messages that install link's policies: outbound and
 * inbound, plus forward in tunnel mode. Returns how many (2 or 3).
 */
int sadb_link_policies(const struct conf_link *link, uint32_t priority, struct pfkey_msg out[3]);

#endif
