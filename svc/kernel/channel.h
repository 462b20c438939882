/* SPDX-License-Identifier: ISC */
/* The one door to the kernel SADB: requests matched to replies, events, dumps, loss detection. */
#ifndef SAKEYD_KERNEL_H
#define SAKEYD_KERNEL_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "svc/kernel/pfkey.h"

/*
 * A channel speaks struct pfkey_msg whatever the backend:
 * - PFKEY: PF_KEYv2 datagrams on a PF_KEY socket (the real kernel);
 * - FD: PF_KEYv2 datagrams on one end of a SOCK_SEQPACKET pair or Unix
 *   socket (the simulated SADB);
 * - XFRM: NETLINK_XFRM (the real kernel, with or without PF_KEY). Requests
 *   are translated by svc/kernel/xfrm.c and sent many per sendmsg; replies and
 *   events are translated back into the messages af_key would have sent.
 *   An acknowledged request's reply is NULL (the SA arrives as an own ADD
 *   event, as from PF_KEY's broadcast).
 */
enum kern_backend {
	KERN_BACKEND_PFKEY = 0,
	KERN_BACKEND_FD,
	KERN_BACKEND_XFRM,
};

struct kern;

/*
 * Reply to a request. err is 0, the kernel's errno as -errno (a reply with
 * sadb_msg_errno set), -ETIMEDOUT when no reply came (lost: the kernel drops
 * replies silently when the receive buffer is full), or -ECANCELED at close.
 * reply is NULL unless a reply arrived; it and its key pointers are valid
 * only during the call.
 */
typedef void (*kern_reply_cb)(struct kern *k, int err, const struct pfkey_msg *reply, void *arg);

/*
 * An unsolicited message: EXPIRE, ACQUIRE, other tools' ADD/UPDATE/DELETE/
 * FLUSH, SPD changes, or an echo of our own request (own = true, e.g. the
 * second FLUSH copy). Valid only during the call.
 */
typedef void (*kern_event_cb)(struct kern *k, const struct pfkey_msg *msg, bool own, void *arg);

/*
 * Loss suspected (a reply timed out, or a malformed message was dropped):
 * the consumer should resynchronise with a dump. count is the total so far.
 */
typedef void (*kern_loss_cb)(struct kern *k, unsigned long count, void *arg);

/* One message of a dump (SADB_DUMP or SADB_X_SPDDUMP); valid during the call. */
typedef void (*kern_dump_msg_cb)(struct kern *k, const struct pfkey_msg *msg, void *arg);
/* End of a dump: err 0 (an empty table is 0 with n == 0), or -errno. */
typedef void (*kern_dump_done_cb)(struct kern *k, int err, unsigned long n, void *arg);

struct kern_opts {
	enum kern_backend backend;
	int fd;                  /* KERN_BACKEND_FD: the descriptor, owned by the channel */
	int rcvbuf;              /* bytes; 0 = 32 MiB (SO_RCVBUFFORCE where permitted) */
	unsigned window;         /* requests in flight at most; 0 = 512 */
	unsigned timeout_ms;     /* reply timeout; 0 = 2000 */
	bool promisc;            /* X_PROMISC (tests only) */
	/*
	 * A channel for dumps only: PF_KEY without SADB_REGISTER (no EXPIRE or
	 * ACQUIRE), XFRM in no multicast group. Its dumps then never queue in
	 * front of the main channel's events.
	 */
	bool dumps_only;
	/*
	 * PF_KEY: open without SADB_REGISTER; the caller registers later with
	 * kern_register (no EXPIRE or ACQUIRE reaches the channel until then).
	 */
	bool register_later;
	/*
	 * XFRM: have the kernel drop, before they are queued, the notifications
	 * of this channel's own SA and policy changes (a socket filter on our
	 * port id). The kernel multicasts every NEWSA and DELSA it carries out,
	 * keys included, to the SA group: a rotation of N SAs sent N echoes back
	 * to the daemon that asked for them. The caller learns its changes from
	 * the acknowledgements instead. A GET, GETSPI or X_SPDGET is then refused
	 * (-EOPNOTSUPP): its answer looks like such a notification. PF_KEY
	 * ignores it (a PF_KEY reply is the broadcast), and so does a
	 * dumps_only channel (in no group, it hears no echo).
	 */
	bool drop_own_echoes;
	unsigned read_budget;    /* datagrams handled per readable event; 0 = 4096 (an
				  * XFRM datagram carries many messages, a PF_KEY one one) */
	kern_event_cb on_event;
	kern_loss_cb on_loss;
	void *arg;
};

struct kern_stats {
	unsigned long sent, replies, events, timeouts, malformed, truncated, dumps;
	unsigned long queued_max, send_blocked;
	unsigned long batches; /* sendmsg (XFRM) or sendmmsg (PF_KEY) calls carrying requests */
	unsigned long overruns; /* XFRM: ENOBUFS from the socket (messages lost) */
};

/*
 * Open a channel on loop. Returns 0 and *out, or -errno (e.g. -EAFNOSUPPORT
 * when the kernel has no PF_KEY, -EPROTONOSUPPORT without XFRM netlink,
 * -EPERM without CAP_NET_ADMIN).
 */
int kern_open(uv_loop_t *loop, const struct kern_opts *opts, struct kern **out);

/*
 * Close: pending requests complete with -ECANCELED, the descriptor is closed;
 * the memory is released in the loop's close callback, so run the loop after.
 */
void kern_close(struct kern *k);

/*
 * Send request m (its pid and, unless m->seq is set, its seq are assigned here). The encoded buffer is
 * wiped after sending, as it may hold keys; m itself is borrowed. cb runs
 * exactly once, later, from the loop (never from inside this call).
 * Returns 0, or -errno if m cannot be encoded (cb is then not called).
 */
int kern_request(struct kern *k, struct pfkey_msg *m, kern_reply_cb cb, void *arg);

/*
 * Dump the SADB (type SADB_DUMP, satype SADB_SATYPE_UNSPEC for all) or the
 * SPD (SADB_X_SPDDUMP). Dumps are serialised: one at a time per socket, as
 * the kernel allows. Returns 0 or -errno.
 */
int kern_dump(struct kern *k, uint8_t type, uint8_t satype, kern_dump_msg_cb each,
	      kern_dump_done_cb done, void *arg);

/*
 * What kern_register reports, from the loop: 0 or -errno, and how long the
 * kernel took.
 */
typedef void (*kern_registered_cb)(struct kern *k, int err, double seconds, void *arg);

/*
 * Register a channel opened with register_later for EXPIRE and ACQUIRE
 * (SADB_REGISTER, ESP). The kernel probes its algorithms inside that send
 * (af_key.c: pfkey_register, xfrm_probe_algs: a module request for each
 * algorithm not loaded, seconds on a cold boot) holding the namespace's
 * xfrm_cfg_mutex, so every PF_KEY or XFRM request of the namespace waits
 * for it. The send runs on a worker thread; the channel sends none of its
 * own requests meanwhile (they queue), so the loop never waits behind it.
 * The socket is registered once the kernel takes the request; done then
 * runs from the loop with the send's result (never if the channel closes
 * first). A refusal comes as the kernel's answer, an SADB_REGISTER event
 * with an errno (af_key.c: pfkey_error), read before or after done. Returns 0, -EALREADY (one is running), or -EOPNOTSUPP (the
 * backend has nothing to register: XFRM joins its groups at open).
 */
int kern_register(struct kern *k, kern_registered_cb done);

/* The arg given in kern_opts. */
void *kern_get_arg(const struct kern *k);
/* The pid this channel stamps on its requests. */
uint32_t kern_pid(const struct kern *k);
/* Requests sent and not yet answered. */
unsigned kern_pending(const struct kern *k);
void kern_get_stats(const struct kern *k, struct kern_stats *st);
/* The descriptor (tests). */
int kern_fd(const struct kern *k);
/* The backend the channel was opened with. */
enum kern_backend kern_backend(const struct kern *k);

/*
 * Whether this kernel offers PF_KEY (a PF_KEY socket opens, perhaps after
 * the af_key module autoloads) and XFRM netlink. For kernel = auto.
 */
bool kern_pfkey_available(void);
bool kern_xfrm_available(void);

#endif
