/* SPDX-License-Identifier: ISC */
/* The simulated SADB: an in-process PF_KEYv2 kernel modelled on Linux af_key, with fault injection. */
#ifndef SAKEYD_SIMKERNEL_H
#define SAKEYD_SIMKERNEL_H

#include <stdint.h>
#include <uv.h>

#include "svc/pfkey.h"

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
 * full.
 *
 * Where it differs (documented, by necessity): Linux fails send() itself for
 * a bad base header; over a socketpair the simulator answers with an error
 * message of that errno instead.
 */

struct sim;

struct sim_opts {
	/* Wall clock in Unix seconds; NULL = time(). Lifetimes use it. */
	int64_t (*now)(void *arg);
	void *now_arg;
	unsigned acq_expires; /* seconds a larval state lives; 0 = 30 (net.core.xfrm_acq_expires) */
	unsigned tick_ms;     /* lifetime check period; 0 = 1000 (the kernel's second resolution) */
	unsigned max_sas;     /* 0 = 1,000,000 */
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
 * Traffic from src to dst: the outbound policy covering it picks an SA as
 * Linux does (non-dying first, then newest add time, then latest inserted)
 * and counts bytes and one packet on it (byte/packet lifetimes apply). With
 * no SA, an ACQUIRE goes to registered clients and a larval state is made
 * (one per flow until it expires). Returns the SPI used (> 0), 0 if no
 * policy covers the flow (sent in clear), -EAGAIN if it waits for an SA,
 * -EPERM for a discard policy.
 */
int64_t sim_traffic(struct sim *s, const struct pfkey_addr *src, const struct pfkey_addr *dst,
		    uint32_t bytes);

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
};
void sim_get_stats(const struct sim *s, struct sim_stats *st);

#endif
