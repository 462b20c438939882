/* SPDX-License-Identifier: ISC */
/* The simulated SADB: an in-process PF_KEYv2 kernel modelled on Linux af_key, with fault injection. */
#ifndef SAKEYD_SIMKERNEL_H
#define SAKEYD_SIMKERNEL_H

#include <stdint.h>
#include <uv.h>

#include "svc/kernel/pfkey.h"

/*
 * Clients speak PF_KEYv2 datagrams over AF_UNIX SOCK_SEQPACKET: the daemon's
 * codec and kernel channel run unchanged (KERN_BACKEND_FD). What it models,
 * after ../shared/pfkey-linux.md: the message set and errnos (EEXIST,
 * ESRCH, EINVAL, ENOSYS for AEAD, ENOENT, EOPNOTSUPP), the broadcast modes
 * (ADD/UPDATE/DELETE to all sockets with keys and the requester's pid/seq;
 * EXPIRE and ACQUIRE to registered sockets only; FLUSH twice to the
 * requester), wall-clock soft/hard lifetimes (a hard expiry deletes with no
 * DELETE broadcast), byte/packet lifetimes driven by sim_traffic(), ACQUIRE
 * and larval states expiring after acq_expires, DUMP newest first with seq
 * counting up and 0 last, the SPD, and silent loss when a client's queue is
 * full. ESP sequence numbers and replay windows as Linux keeps them for a
 * PF_KEY SA (no ESN, window capped at 32: the legacy mode of xfrm_replay.c):
 * each SA instance has an output counter (sim_traffic gives the number each
 * packet carried) and a window with a 32-bit bitmap (sim_deliver takes the
 * packet's number and accepts or refuses it, replayed and too old told
 * apart), both zero when the SA is added, so a deleted and re-added SA sends
 * 1, 2, ... again and accepts what its predecessor accepted; the SA's and
 * /proc/net/xfrm_stat's counters of refused packets (sim_stats). Conformance
 * scenarios esp_* compare this with real ESP between two namespaces.
 *
 * Where it differs (documented, by necessity): Linux fails send() itself for
 * a bad base header (shorter than 16 bytes, version, reserved, type 0 or
 * > 24: EINVAL; length: EMSGSIZE); a seqpacket send cannot fail that way, so
 * the simulator answers with an error message of that errno instead (the
 * request's header echoed, len 2), and the client is not closed.
 *
 * Not modelled: AH/IPCOMP traffic, NAT-T, security contexts, X_FILTER on
 * DUMP, ESN and windows above 32 (XFRM only), replay/aevent notifications
 * (XFRM_MSG_NEWAE: PF_KEY has none), ICV failures and the payload (every
 * delivered packet authenticates; bytes are the caller's, without ESP
 * overhead), inbound policy checks, the per-SA integrity_failed counter,
 * policy lifetimes, ACQUIRE negative acknowledgements (accepted, no
 * reply, no ERROR state), per-flow selectors of larval states (one ACQUIRE
 * per (src, dst) pair), proposals (the ACQUIRE carries an empty PROPOSAL,
 * as for PF_KEY-installed policies), xfrm_user (netlink) listeners, network
 * namespaces. A promiscuous socket gets copies of requests and of what the
 * kernel sends, as Linux does (conformance scenario promisc), except that the
 * simulator also copies a request with a bad base header and its error.
 */

struct sim;

struct sim_opts {
	/* Wall clock in Unix seconds; NULL = time(). Lifetimes use it. */
	int64_t (*now)(void *arg);
	void *now_arg;
	unsigned acq_expires; /* seconds a larval state lives; 0 = 30 (net.core.xfrm_acq_expires) */
	unsigned tick_ms;     /* lifetime check period; 0 = 1000 (the kernel's second resolution) */
	unsigned max_sas;     /* SAs (larval included), and policies; 0 = 1,000,000; then ENOBUFS */
	/*
	 * Per-client receive queue limit in bytes, as the socket layer counts
	 * them (truesize): a message to a client whose unread queue is already
	 * above it is dropped silently, as af_key does past sk_rcvbuf. Dumps are
	 * flow-controlled and never dropped. 0 = no limit but the socket's own
	 * (8 MiB with CAP_NET_ADMIN, else wmem_max).
	 */
	unsigned rcvbuf;
};

/* A simulated SADB on loop. Returns 0 and *out, or -errno. */
int sim_new(uv_loop_t *loop, const struct sim_opts *opts, struct sim **out);
/* Close every client and handle; memory is released from the loop's close callbacks. */
void sim_close(struct sim *s);

/* A new client: *fd is the caller's end (owned by the caller). 0 or -errno. */
int sim_connect(struct sim *s, int *fd);
/* Also accept clients on a Unix SOCK_SEQPACKET socket at path (mode 0600). 0 or -errno. */
int sim_listen(struct sim *s, const char *path);

/* Evaluate lifetimes now (the timer does it every tick_ms). */
void sim_tick(struct sim *s);

/*
 * Expire every SA now, as if its limits were reached (tests: a burst of
 * EXPIREs in one loop turn): with soft, each mature SA becomes dying with a
 * soft EXPIRE; then with hard, each SA but larval ones goes with a hard
 * EXPIRE (no DELETE). Returns the number of EXPIRE messages sent.
 */
unsigned sim_expire_now(struct sim *s, bool soft, bool hard);

/*
 * One outbound ESP packet from src to dst: the outbound policy covering it
 * picks an SA as Linux does (non-dying first, then newest add time, then
 * latest inserted). xfrm_output_one's order: byte/packet limits are checked
 * first (xfrm_state_check_expire: first use stamped; a packet that finds the
 * soft limit reached fires the soft EXPIRE and goes; one that finds the hard
 * limit reached is dropped, -EINVAL, and the SA expires at once); then the
 * SA's output counter gives the packet its sequence number (xfrm_replay_
 * overflow, non-ESN: 1 for a new SA instance, then 2, 3, ...); then bytes and
 * one packet are counted. At 2^32 - 1 the counter stays there and every
 * further packet on that SA is dropped with -EOVERFLOW (XfrmOutStateSeqError;
 * no expiry, the SA stays: a PF_KEY SA cannot ask for XFRM_SA_XFLAG_OSEQ_MAY_
 * WRAP). With no SA, if a client is registered, an ACQUIRE goes to registered
 * clients and a larval state is made (one per (src, dst) until it expires).
 *
 * Returns the SPI used (> 0; an SA with SPI 0 reads as 0), 0 if no policy
 * covers the flow (sent in clear), -EAGAIN if it waits for an SA (Linux drops
 * it silently: xfrm_larval_drop), -EINVAL or -EOVERFLOW as above, -EPERM for
 * a discard policy. *seq (if seq is not NULL) is the packet's ESP sequence
 * number when it was sent through an SA, else 0.
 */
int64_t sim_traffic(struct sim *s, const struct pfkey_addr *src, const struct pfkey_addr *dst,
		    uint32_t bytes, uint32_t *seq);

/*
 * One inbound ESP packet of bytes with sequence number seq to the SA (dst,
 * spi), in xfrm_input's order: the SA is looked up by (dst, SPI, proto) only;
 * the replay check (xfrm_replay_check_legacy: PF_KEY SAs have no ESN and a
 * window of at most 32, af_key.c: pfkey_msg2xfrm_state); the byte/packet
 * limits as for sim_traffic; then the window advances (xfrm_replay_advance)
 * and bytes and one packet are counted. A refused packet counts nothing on
 * the SA but its refusal. Returns:
 *   0           accepted
 *   -ESRCH      no such SA (XfrmInNoStates; a larval state: XfrmAcquireError)
 *   -EALREADY   replayed: seq is in the window and was seen (stats.replay)
 *   -ERANGE     too old: seq is window or more below the highest seen
 *               (stats.replay_window)
 *   -EPROTO     seq 0 on an SA with a window (counted in neither SA counter)
 *   -EINVAL     it found the hard limit reached (XfrmInStateExpired; the SA is
 *               then gone, with a hard EXPIRE)
 * -EALREADY, -ERANGE and -EPROTO count XfrmInStateSeqError. Window 0: no
 * replay check at all, every seq (0 too) is accepted.
 */
int sim_deliver(struct sim *s, const struct pfkey_addr *dst, uint32_t spi, uint32_t seq,
		uint32_t bytes);

/* The sequence and replay state of one SA instance (struct xfrm_replay_state, x->stats). */
struct sim_replay {
	uint32_t oseq;          /* the last sequence number sent; 0 before the first */
	uint32_t seq;           /* the highest sequence number accepted; 0 before the first */
	uint32_t bitmap;        /* bit i: seq - i was accepted (bit 0: seq itself) */
	uint8_t window;         /* replay window, 0..32; 0 = no replay check */
	uint32_t replay;        /* packets refused as seen (x->stats.replay) */
	uint32_t replay_window; /* packets refused as too old (x->stats.replay_window) */
	uint64_t bytes, packets; /* counted (curlft): sent or accepted */
};

/* The replay state of the SA (dst, spi) (ESP) into *out. 0 or -ESRCH. */
int sim_sa_replay(struct sim *s, const struct pfkey_addr *dst, uint32_t spi,
		  struct sim_replay *out);

/*
 * Set the counters of the SA (dst, spi) (ESP) as XFRM_MSG_NEWAE with
 * XFRMA_REPLAY_VAL does (xfrm_user.c: xfrm_update_ae_params): the output
 * counter, the highest sequence number seen and the bitmap. PF_KEY itself
 * has no such request; tests use it (e.g. to reach the counter's end). 0 or
 * -ESRCH.
 */
int sim_sa_set_replay(struct sim *s, const struct pfkey_addr *dst, uint32_t spi, uint32_t oseq,
		      uint32_t seq, uint32_t bitmap);

/* Number of SAs (larval included) and policies. */
unsigned sim_sa_count(const struct sim *s);
unsigned sim_policy_count(const struct sim *s);

/* --- fault injection (tests) --- */

/* Drop the next n messages to the client whose end is fd (all clients if fd < 0). */
void sim_drop_next(struct sim *s, int fd, unsigned n);
/* Drop each message to any client with probability permille/1000 (seeded, deterministic). */
void sim_drop_rate(struct sim *s, unsigned permille, uint32_t seed);
/* Fail the next request of type (0: any) with err (a positive errno), as an error reply. */
void sim_fail_next(struct sim *s, uint8_t type, int err);
/* The same for the next count requests of type. */
void sim_fail_count(struct sim *s, uint8_t type, int err, unsigned count);
/* Hold every reply and broadcast for ms milliseconds before delivering it (0: off). */
void sim_delay(struct sim *s, unsigned ms);
/* Deliver raw bytes to the client whose end is fd (all clients if fd < 0), e.g. a malformed message. */
void sim_inject(struct sim *s, int fd, const void *buf, size_t len);

struct sim_stats {
	unsigned long requests, replies, broadcasts, dropped, expires, acquires, malformed;
	/* As /proc/net/xfrm_stat names them: what sim_traffic and sim_deliver refused. */
	unsigned long in_no_states;        /* XfrmInNoStates */
	unsigned long in_acquire_errors;   /* XfrmAcquireError: a larval state's SPI */
	unsigned long in_state_seq_errors; /* XfrmInStateSeqError: replayed, too old, seq 0 */
	unsigned long in_state_expired;    /* XfrmInStateExpired */
	unsigned long out_state_seq_errors; /* XfrmOutStateSeqError: the counter's end */
	unsigned long out_state_expired;   /* XfrmOutStateExpired */
};
void sim_get_stats(const struct sim *s, struct sim_stats *st);

#endif
