/* SPDX-License-Identifier: ISC */
/* The kernel channel's backends: the ops table each fills and the channel state they share. */
#ifndef SAKEYD_KERNEL_BACKEND_H
#define SAKEYD_KERNEL_BACKEND_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include "svc/base/spare.h"
#include "svc/kernel/channel.h"

/* Datagrams per recvmmsg while the receive buffer is read in slots. */
#define RECV_BATCH 32

struct kern_req {
	struct kern_req *prev, *next; /* queue (unsent) or in-flight list, oldest first */
	struct kern_req *hnext;       /* seq hash chain (in flight only) */
	uint32_t seq;
	uint8_t type;
	bool is_dump;
	unsigned long overrun_gen; /* k->stats.overruns when sent */
	uint64_t deadline;
	uint8_t *wire; /* encoded message until sent; may hold keys */
	size_t wire_len;
	int err; /* deferred completion */
	kern_reply_cb cb;
	kern_dump_msg_cb dump_each;
	kern_dump_done_cb dump_done;
	void *arg;
};

struct req_list {
	struct kern_req *head, *tail;
	unsigned n;
};

/*
 * How requests and replies look on the descriptor: PF_KEYv2 or XFRM
 * netlink. The channel speaks struct pfkey_msg; the protocol turns it into
 * bytes and back.
 */
struct kern_protocol {
	/*
	 * Encode request m into buf (encode_max bytes), and give r its seq. May
	 * assign m's pid and seq. Returns the length, or -errno (buf may then
	 * hold any part of the message).
	 */
	ssize_t (*encode)(struct kern *k, struct kern_req *r, struct pfkey_msg *m, uint8_t *buf);
	/*
	 * Write requests from first on (following ->next) in one system call, at
	 * most room of them. Returns how many the kernel took, or -errno: then
	 * *failed is how many of them the error stands for. A full socket is
	 * -EAGAIN or -ENOBUFS, unlogged (kern_send_would_block); the requests stay
	 * queued.
	 */
	int (*send)(struct kern *k, struct kern_req *first, unsigned room, unsigned *failed);
	/* One received datagram of n bytes, whole: replies, dump parts, events. */
	void (*dispatch)(struct kern *k, const uint8_t *buf, size_t n);
	size_t encode_max; /* bytes of one encoded request at most */
	size_t recv_slot;  /* bytes per datagram when RECV_BATCH are read at a time */
	size_t recv_max;   /* the largest datagram the kernel sends */
	/* One send may carry many requests the kernel carries out before it returns. */
	bool long_sends;
};

/*
 * What the channel needs from a backend: where its descriptor comes from,
 * what the descriptor does besides, and the protocol spoken on it. The
 * channel itself does not know which backend it runs on.
 */
struct kern_backend_ops {
	/*
	 * Open the descriptor (k->fd) from k->opts, register it for the events
	 * the channel passes on, set k->pid (the pid its requests carry) and any
	 * state of the backend's own (k->backend_state). Returns 0 or -errno,
	 * with nothing left open.
	 */
	int (*open)(struct kern *k);
	/*
	 * Register descriptor fd (a duplicate of k's) for events, stamping pid;
	 * blocking, called on a worker thread (kern_register). NULL: nothing to
	 * register. Returns 0 or -errno.
	 */
	int (*register_events)(int fd, uint32_t pid);
	/* Release k->backend_state, if the backend keeps one; the channel closes k->fd. */
	void (*close)(struct kern *k);
	const struct kern_protocol *protocol;
	/* A receive buffer overrun raises POLLERR (netlink: sk_err = ENOBUFS). */
	bool pollerr_on_overrun;
	/* An empty datagram means the peer closed (a seqpacket socket). */
	bool empty_is_eof;
};

extern const struct kern_backend_ops kern_pfkey_ops, kern_fd_ops, kern_xfrm_ops;

struct kern {
	const struct kern_backend_ops *ops;
	void *backend_state; /* the backend's own, if any */
	uv_loop_t *loop;
	uv_poll_t poll;
	uv_timer_t timer;    /* oldest in-flight deadline */
	uv_timer_t deferred; /* completions that must not run inside kern_request */
	uv_prepare_t flush;  /* send the requests of this loop turn together */
	int fd;
	int closing_handles;
	bool closing;
	bool send_blocked; /* the last send got EAGAIN/ENOBUFS */
	uint32_t pid;
	uint32_t next_seq;
	struct kern_opts opts;
	struct kern_registration *registering; /* kern_register's, while it runs */

	struct req_list queue;    /* encoded, waiting for window space */
	struct req_list inflight; /* sent, waiting for a reply */
	struct spare spare; /* freed requests, kept for the next (svc/base/spare.h) */
	struct req_list done;     /* completed, callback pending */
	struct req_list dumps;    /* dumps waiting for the active one to finish */
	struct kern_req *active_dump;
	unsigned long dump_n;

	struct kern_req **hash;
	size_t hash_size;

	uint8_t *rbuf;  /* RECV_BATCH slots of protocol->recv_slot, or one whole datagram;
			 * wiped after each datagram */
	uint8_t *ebuf;  /* one request being encoded (protocol->encode_max); wiped after each */
	unsigned batch; /* datagrams per recvmmsg: RECV_BATCH, 1 after a truncation */
	bool reading;     /* dispatching a received batch: sends wait for its end */
	bool pump_wanted; /* a send or a free window slot came up while reading */
	int poll_events;  /* what k->poll waits for now */
	struct kern_stats stats;
	unsigned long loss_count;
};

/* Whether a send's error only says that the socket is full for now. */
static inline bool kern_send_would_block(int err)
{
	return err == -EAGAIN || err == -EWOULDBLOCK || err == -ENOBUFS;
}

/*
 * What the channel offers its backends (channel.c). Requests answered or
 * given up leave the in-flight list and complete at once.
 */
uint32_t kern_fresh_seq(struct kern *k);
/* The in-flight request (seq, type), taken out of the seq hash; NULL if none. */
struct kern_req *kern_req_take(struct kern *k, uint32_t seq, uint8_t type);
/* The in-flight request with seq, left in the hash; NULL if none. */
struct kern_req *kern_req_find(struct kern *k, uint32_t seq);
/* r (out of the hash) answered: err and the kernel's reply, if one came. */
void kern_answered(struct kern *k, struct kern_req *r, int err, const struct pfkey_msg *reply);
/* r's reply will not come: it completes with -ETIMEDOUT. */
void kern_give_up(struct kern *k, struct kern_req *r);
/* A message may have been lost: count it and tell the consumer to resync. */
void kern_note_loss(struct kern *k, const char *why);
/* Send what the window allows, now or after the batch being read. */
void kern_want_pump(struct kern *k);
/* An unsolicited message to the consumer (own: an echo of our own request). */
void kern_event(struct kern *k, const struct pfkey_msg *m, bool own);
/* One message of the active dump; restarts its timeout. */
void kern_dump_msg(struct kern *k, const struct pfkey_msg *m);
/* The active dump's timeout runs again from now. */
void kern_dump_alive(struct kern *k);
/* The active dump ends with err; the next one starts. */
void kern_dump_finish(struct kern *k, int err);

/*
 * A receive buffer of size bytes on fd: SO_RCVBUFFORCE (past rmem_max, with
 * CAP_NET_ADMIN), else SO_RCVBUF; a failure is logged, not fatal.
 */
void kern_set_rcvbuf(int fd, int size);

#endif
