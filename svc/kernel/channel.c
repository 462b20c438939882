/* SPDX-License-Identifier: ISC */
/* The kernel channel: pipelined PF_KEY requests matched by (pid, seq), events, dumps, loss detection. */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <libmnl/libmnl.h>
#include <linux/netlink.h>
#include <sys/socket.h>
#include <unistd.h>

#include "svc/kernel/channel.h"
#include "svc/kernel/backend.h"
#include "svc/base/log.h"
#include "svc/base/spare.h"
#include "svc/kernel/xfrm.h"

#define DEFAULT_RCVBUF (32 * 1024 * 1024)
#define DEFAULT_WINDOW 512
#define DEFAULT_TIMEOUT_MS 2000
/* Messages read per poll callback before yielding to the loop. */
#define READ_BUDGET 4096
/*
 * XFRM: bytes of requests per sendmsg (the kernel refuses a datagram above
 * its send buffer, 212992 by default), and the receive slot of each of the
 * RECV_BATCH datagrams per recvmmsg, large enough for a dump chunk
 * (netlink_dump sizes them after our receive length, capped at 32 KiB).
 */
#define XFRM_BATCH_MAX (64 * 1024)
#define XFRM_SLOT_SIZE (32 * 1024)
/* Datagrams per recvmmsg: the receive buffer holds this many slots. */
#define RECV_BATCH 32
/* PF_KEY: requests per sendmmsg. */
#define PFKEY_SEND_BATCH 64

#define container_of(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))

struct kern_req {
	struct kern_req *prev, *next; /* queue (unsent) or in-flight list, oldest first */
	struct kern_req *hnext;       /* seq hash chain (in flight only) */
	uint32_t seq;
	uint8_t type;
	bool is_dump;
	bool data_reply; /* XFRM: answered by a message, not an acknowledgement */
	uint32_t acq_seq; /* XFRM: the ACQUIRE seq an ADD or GETSPI answers (km.seq) */
	unsigned long overrun_gen; /* XFRM: k->overruns when sent */
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

struct kern {
	uv_loop_t *loop;
	uv_poll_t poll;
	uv_timer_t timer;    /* oldest in-flight deadline */
	uv_timer_t deferred; /* completions that must not run inside kern_request */
	uv_prepare_t flush;  /* send the requests of this loop turn together */
	bool xfrm;
	int fd;
	int closing_handles;
	bool closing;
	bool send_blocked; /* the last send got EAGAIN/ENOBUFS */
	uint32_t pid;
	uint32_t next_seq;
	struct kern_opts opts;

	struct req_list queue;    /* encoded, waiting for window space */
	struct req_list inflight; /* sent, waiting for a reply */
	struct spare spare; /* freed requests, kept for the next (svc/base/spare.h) */
	struct req_list done;     /* completed, callback pending */
	struct req_list dumps;    /* dumps waiting for the active one to finish */
	struct kern_req *active_dump;
	unsigned long dump_n;

	struct kern_req **hash;
	size_t hash_size;

	uint8_t *rbuf;  /* PF_KEY: PFKEY_MSG_MAX in RECV_BATCH slots, or one whole datagram;
			 * XFRM: RECV_BATCH slots of XFRM_SLOT_SIZE; wiped after each datagram */
	uint8_t *sbuf;  /* XFRM: one batch of requests; wiped after each send */
	uint8_t *ebuf;  /* one request being encoded; wiped after each */
	unsigned batch; /* PF_KEY datagrams per recvmmsg: RECV_BATCH, 1 after a truncation */
	bool reading;     /* dispatching a received batch: sends wait for its end */
	bool pump_wanted; /* a send or a free window slot came up while reading */
	int poll_events;  /* what k->poll waits for now */
	struct kern_stats stats;
	unsigned long loss_count;
};

static unsigned instance_count;

static void poll_cb(uv_poll_t *handle, int status, int events);
static void timer_cb(uv_timer_t *t);
static void deferred_cb(uv_timer_t *t);
static void flush_cb(uv_prepare_t *p);

static size_t rbuf_size(const struct kern *k)
{
	return k->xfrm ? (size_t)RECV_BATCH * XFRM_SLOT_SIZE : PFKEY_MSG_MAX;
}

static void list_push(struct req_list *l, struct kern_req *r)
{
	r->next = NULL;
	r->prev = l->tail;
	if (l->tail)
		l->tail->next = r;
	else
		l->head = r;
	l->tail = r;
	l->n++;
}

static void list_push_front(struct req_list *l, struct kern_req *r)
{
	r->prev = NULL;
	r->next = l->head;
	if (l->head)
		l->head->prev = r;
	else
		l->tail = r;
	l->head = r;
	l->n++;
}

static void list_remove(struct req_list *l, struct kern_req *r)
{
	if (r->prev)
		r->prev->next = r->next;
	else
		l->head = r->next;
	if (r->next)
		r->next->prev = r->prev;
	else
		l->tail = r->prev;
	r->prev = r->next = NULL;
	l->n--;
}

static struct kern_req **hash_slot(struct kern *k, uint32_t seq)
{
	return &k->hash[seq & (k->hash_size - 1)];
}

static void hash_insert(struct kern *k, struct kern_req *r)
{
	struct kern_req **slot = hash_slot(k, r->seq);

	r->hnext = *slot;
	*slot = r;
}

static struct kern_req *hash_take(struct kern *k, uint32_t seq, uint8_t type)
{
	for (struct kern_req **p = hash_slot(k, seq); *p; p = &(*p)->hnext) {
		struct kern_req *r = *p;

		if (r->seq == seq && r->type == type) {
			*p = r->hnext;
			r->hnext = NULL;
			return r;
		}
	}
	return NULL;
}

/* XFRM: acknowledgements carry the seq only. */
static struct kern_req *hash_find_seq(struct kern *k, uint32_t seq)
{
	for (struct kern_req *r = *hash_slot(k, seq); r; r = r->hnext)
		if (r->seq == seq)
			return r;
	return NULL;
}

static void wipe_wire(struct kern_req *r)
{
	if (r->wire) {
		pfkey_cleanse(r->wire, r->wire_len);
		free(r->wire);
		r->wire = NULL;
	}
}

static struct kern_req *req_alloc(struct kern *k)
{
	return spare_get(&k->spare, sizeof(struct kern_req));
}

static void req_free(struct kern *k, struct kern_req *r)
{
	wipe_wire(r);
	spare_put(&k->spare, r);
}

static uint32_t fresh_seq(struct kern *k)
{
	/* seq 0 marks the last message of a dump (af_key.c: dump_sa). */
	if (++k->next_seq == 0)
		k->next_seq = 1;
	return k->next_seq;
}

static void arm_timer(struct kern *k)
{
	uint64_t now = uv_now(k->loop);
	uint64_t deadline = UINT64_MAX;

	if (k->inflight.head)
		deadline = k->inflight.head->deadline;
	if (k->active_dump && k->active_dump->deadline < deadline)
		deadline = k->active_dump->deadline;
	if (deadline == UINT64_MAX) {
		uv_timer_stop(&k->timer);
		return;
	}
	uv_timer_start(&k->timer, timer_cb, deadline > now ? deadline - now : 0, 0);
}

static void defer_done(struct kern *k, struct kern_req *r, int err)
{
	r->err = err;
	list_push(&k->done, r);
	if (!uv_is_active((uv_handle_t *)&k->deferred))
		uv_timer_start(&k->deferred, deferred_cb, 0, 0);
}

static void note_loss(struct kern *k, const char *why)
{
	k->loss_count++;
	log_warn("kernel message lost (%s); %lu so far: resync needed", why, k->loss_count);
	if (k->opts.on_loss)
		k->opts.on_loss(k, k->loss_count, k->opts.arg);
}

static void finish_dump(struct kern *k, int err);
static void start_next_dump(struct kern *k);

/* A request the kernel never got (send failed): its callback gets err, later. */
static void fail_unsent(struct kern *k, struct kern_req *r, int err)
{
	if (r->is_dump) {
		k->active_dump = r;
		finish_dump(k, err);
	} else {
		defer_done(k, r, err);
	}
}

/*
 * Watch for readability, and writability while requests wait for a send
 * that was refused. Only on a change: libuv's uv_poll_start deletes the fd
 * from epoll and adds it back, two system calls per request.
 */
static void watch(struct kern *k)
{
	int events;

	if (k->closing)
		return;
	events = UV_READABLE | (k->queue.head && k->send_blocked ? UV_WRITABLE : 0);
	if (events != k->poll_events) {
		uv_poll_start(&k->poll, events, poll_cb);
		k->poll_events = events;
	}
}

static void sent_ok(struct kern *k, struct kern_req *r)
{
	list_remove(&k->queue, r);
	wipe_wire(r);
	r->overrun_gen = k->stats.overruns;
	k->stats.sent++;
	r->deadline = uv_now(k->loop) + k->opts.timeout_ms;
	if (r->is_dump)
		return; /* active_dump already points at it */
	list_push(&k->inflight, r);
	hash_insert(k, r);
}

/*
 * PF_KEY: the queued requests that fit the window, PFKEY_SEND_BATCH per
 * sendmmsg. af_key takes one message per sendmsg, so a PF_KEY daemon pays a
 * system call per request; sendmmsg pays one per batch, and each system call
 * is a trap into the kernel, costly in User-Mode Linux (6 us each, a quarter
 * of the kernel's own work for an SADB_ADD). Nothing else changes:
 * net/socket.c runs ___sys_sendmsg for each message in turn, af_key.c's
 * pfkey_sendmsg answers each inside it, and sendmmsg stops at the first
 * message that fails, returning how many went before it; that message is
 * sent again first in the next call, whose error is then its own.
 */
static void pump_pfkey(struct kern *k)
{
	struct mmsghdr mm[PFKEY_SEND_BATCH];
	struct iovec iov[PFKEY_SEND_BATCH];
	bool timed = false; /* one clock read per call, not per message */

	k->pump_wanted = false;
	while (k->queue.head && k->inflight.n < k->opts.window) {
		struct kern_req *r = k->queue.head;
		unsigned room = k->opts.window - k->inflight.n, n = 0;
		int sent;

		for (struct kern_req *q = r; q && n < room && n < PFKEY_SEND_BATCH; q = q->next, n++) {
			iov[n] = (struct iovec){ .iov_base = q->wire, .iov_len = q->wire_len };
			mm[n] = (struct mmsghdr){ .msg_hdr = { .msg_iov = &iov[n], .msg_iovlen = 1 } };
		}
		sent = sendmmsg(k->fd, mm, n, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (sent < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS)) {
			k->send_blocked = true;
			k->stats.send_blocked++;
			break;
		}
		k->send_blocked = false;
		if (sent < 0) {
			/*
			 * The first message failed: af_key.c pfkey_sendmsg fails
			 * send() itself for base header errors, and queues no reply.
			 */
			int err = -errno;

			list_remove(&k->queue, r);
			wipe_wire(r);
			log_warn("send %s seq %u: %s", pfkey_type_name(r->type), r->seq,
				 strerror(-err));
			fail_unsent(k, r, err);
			continue;
		}
		/* The loop's time is from the start of this turn, which may be long. */
		if (!timed) {
			uv_update_time(k->loop);
			timed = true;
		}
		k->stats.batches++;
		for (int i = 0; i < sent; i++)
			sent_ok(k, k->queue.head);
	}
	/*
	 * Requests still queued when the window is full wait for replies; ones
	 * refused with EAGAIN/ENOBUFS wait for the socket to become writable.
	 */
	watch(k);
	arm_timer(k);
}


/*
 * XFRM: as many queued requests per sendmsg as fit XFRM_BATCH_MAX and the
 * window. Only the last of a batch asks for an acknowledgement: the kernel
 * handles a batch's messages in order and acknowledges every failure
 * anyway (netlink_rcv_skb), so the last one's answer means every earlier
 * request that drew no error succeeded (see complete_before).
 */
static void pump_xfrm(struct kern *k)
{
	k->pump_wanted = false;
	while (k->queue.head && k->inflight.n < k->opts.window) {
		struct kern_req *r, *last = NULL;
		unsigned n = 0, room = k->opts.window - k->inflight.n;
		size_t len = 0;
		ssize_t sent;

		for (r = k->queue.head; r && n < room; r = r->next) {
			if (len && len + r->wire_len > XFRM_BATCH_MAX)
				break;
			memcpy(k->sbuf + len, r->wire, r->wire_len);
			if (!r->data_reply && !r->is_dump)
				((struct nlmsghdr *)(k->sbuf + len))->nlmsg_flags &= (uint16_t)~NLM_F_ACK;
			len += r->wire_len;
			last = r;
			n++;
			if (r->is_dump)
				break; /* a dump ends its batch: its replies follow it */
		}
		if (!last->data_reply && !last->is_dump)
			((struct nlmsghdr *)(k->sbuf + len - last->wire_len))->nlmsg_flags |= NLM_F_ACK;
		sent = send(k->fd, k->sbuf, len, MSG_DONTWAIT | MSG_NOSIGNAL);
		pfkey_cleanse(k->sbuf, len);
		if (sent < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS)) {
			k->send_blocked = true;
			k->stats.send_blocked++;
			break;
		}
		k->send_blocked = false;
		uv_update_time(k->loop);
		if (sent < 0) {
			int err = -errno;

			log_warn("sendmsg of %u XFRM request%s: %s", n, n == 1 ? "" : "s",
				 strerror(errno));
			for (unsigned i = 0; i < n; i++) {
				r = k->queue.head;
				list_remove(&k->queue, r);
				wipe_wire(r);
				fail_unsent(k, r, err);
			}
			continue;
		}
		k->stats.batches++;
		for (unsigned i = 0; i < n; i++)
			sent_ok(k, k->queue.head);
	}
	watch(k);
	arm_timer(k);
}

static void pump(struct kern *k)
{
	if (k->xfrm)
		pump_xfrm(k);
	else
		pump_pfkey(k);
}

/*
 * Send now, or once the batch being read is dispatched: one pump (and one
 * clock read) per batch of replies, not one per reply.
 */
static void want_pump(struct kern *k)
{
	if (k->reading)
		k->pump_wanted = true;
	else
		pump(k);
}

static int enqueue(struct kern *k, struct kern_req *r, struct pfkey_msg *m)
{
	/*
	 * Encoded into the channel's scratch buffer, then copied to a block of
	 * its own size: a PFKEY_MSG_MAX malloc per request would be an mmap and
	 * a munmap each (above glibc's mmap threshold), two more syscalls per SA.
	 */
	uint8_t *buf = k->ebuf;
	ssize_t len;

	r->type = m->type;
	if (k->xfrm) {
		/* The ACQUIRE's seq goes into the SA (km.seq); netlink's seq is ours. */
		r->seq = fresh_seq(k);
		r->acq_seq = m->seq;
		r->data_reply = xfrm_reply_is_data(m->type);
		len = xfrm_encode(m, r->seq, k->pid, r->acq_seq, buf, XFRM_BATCH_MAX);
	} else {
		/* A caller may set seq, e.g. an ACQUIRE's to answer it (pfkey-linux.md §4.3). */
		m->seq = r->seq = m->seq ? m->seq : fresh_seq(k);
		m->pid = k->pid;
		len = pfkey_encode(m, buf, PFKEY_MSG_MAX);
	}
	if (len < 0) {
		/* A failed encoding may have written any part of the buffer. */
		pfkey_cleanse(buf, k->xfrm ? XFRM_BATCH_MAX : PFKEY_MSG_MAX);
		return (int)len;
	}
	r->wire = malloc((size_t)len);
	if (r->wire)
		memcpy(r->wire, buf, (size_t)len);
	pfkey_cleanse(buf, (size_t)len);
	if (!r->wire)
		return -ENOMEM;
	r->wire_len = (size_t)len;
	return 0;
}

int kern_request(struct kern *k, struct pfkey_msg *m, kern_reply_cb cb, void *arg)
{
	struct kern_req *r;
	int ret;

	assert(k && m && cb);
	if (k->closing)
		return -ECANCELED;
	/* Its answer would be dropped as an echo of our own change (kern_opts). */
	if (k->xfrm && k->opts.drop_own_echoes && xfrm_reply_is_data(m->type))
		return -EOPNOTSUPP;
	r = req_alloc(k);
	if (!r)
		return -ENOMEM;
	ret = enqueue(k, r, m);
	if (ret) {
		req_free(k, r);
		return ret;
	}
	r->cb = cb;
	r->arg = arg;
	list_push(&k->queue, r);
	if (k->queue.n > k->stats.queued_max)
		k->stats.queued_max = k->queue.n;
	/*
	 * The requests of one loop turn leave together (flush_cb): XFRM in one
	 * sendmsg, PF_KEY one send() each but with one clock read for all. A
	 * pump per request read the clock per request, a system call each in
	 * User-Mode Linux (10,000 in a change point's pass).
	 */
	if (k->queue.n < k->opts.window)
		uv_prepare_start(&k->flush, flush_cb);
	else
		want_pump(k);
	return 0;
}

static void start_next_dump(struct kern *k)
{
	struct kern_req *r;

	if (k->active_dump || !k->dumps.head || k->closing)
		return;
	r = k->dumps.head;
	list_remove(&k->dumps, r);
	k->active_dump = r;
	k->dump_n = 0;
	k->stats.dumps++;
	/*
	 * Its deadline runs from now, and again from its send: with a full
	 * window it waits in the queue, and a zero deadline would time it out
	 * at once, over and over.
	 */
	uv_update_time(k->loop);
	r->deadline = uv_now(k->loop) + k->opts.timeout_ms;
	/* First in line, so a resync is not stuck behind a long queue. */
	list_push_front(&k->queue, r);
	want_pump(k);
}

int kern_dump(struct kern *k, uint8_t type, uint8_t satype, kern_dump_msg_cb each,
	      kern_dump_done_cb done, void *arg)
{
	struct pfkey_msg m;
	struct kern_req *r;
	int ret;

	assert(k && each && done);
	if (type != SADB_DUMP && type != SADB_X_SPDDUMP)
		return -EINVAL;
	if (k->closing)
		return -ECANCELED;
	r = req_alloc(k);
	if (!r)
		return -ENOMEM;
	pfkey_msg_init(&m, type, satype, 0, 0);
	ret = enqueue(k, r, &m);
	if (ret) {
		req_free(k, r);
		return ret;
	}
	r->is_dump = true;
	r->dump_each = each;
	r->dump_done = done;
	r->arg = arg;
	list_push(&k->dumps, r);
	start_next_dump(k);
	return 0;
}

static void finish_dump(struct kern *k, int err)
{
	struct kern_req *r = k->active_dump;
	unsigned long n = k->dump_n;

	k->active_dump = NULL;
	k->dump_n = 0;
	if (!r)
		return;
	r->dump_done(k, err, n, r->arg);
	req_free(k, r);
	start_next_dump(k);
	arm_timer(k);
}

static void complete(struct kern *k, struct kern_req *r, int err, const struct pfkey_msg *reply)
{
	r->cb(k, err, reply, r->arg);
	req_free(k, r);
}

/* An in-flight request answered (reply: the kernel's message, if one came). */
static void answered(struct kern *k, struct kern_req *r, int err, const struct pfkey_msg *reply)
{
	list_remove(&k->inflight, r);
	k->stats.replies++;
	complete(k, r, err, reply);
}

/* An in-flight request whose reply will not come: it completes as timed out. */
static void give_up(struct kern *k, struct kern_req *r)
{
	list_remove(&k->inflight, r);
	hash_take(k, r->seq, r->type);
	k->stats.timeouts++;
	complete(k, r, -ETIMEDOUT, NULL);
}

/*
 * PF_KEY answers a request inside its send() (af_key.c: pfkey_sendmsg runs
 * the handler, and the reply is queued before send() returns), so our
 * replies arrive in the order we sent: the reply to `until` means every
 * request sent before it that is still waiting lost its reply (dropped at a
 * full receive buffer). Complete those as lost now, not after the timeout.
 */
static void lost_before(struct kern *k, struct kern_req *until)
{
	unsigned long lost = 0;

	while (k->inflight.head && k->inflight.head != until) {
		give_up(k, k->inflight.head);
		lost++;
	}
	if (lost)
		note_loss(k, "reply lost (a later request's came)");
}

static void dispatch(struct kern *k, const struct pfkey_msg *m)
{
	struct kern_req *r;

	if (k->active_dump && m->pid == k->pid && m->type == k->active_dump->type) {
		/*
		 * af_key.c: pfkey_do_dump — the replies carry seq 1, 2, ... and the
		 * last one seq 0; an empty table is one reply with ENOENT.
		 */
		if (m->errno_val) {
			finish_dump(k, m->errno_val == ENOENT ? 0 : -(int)m->errno_val);
			return;
		}
		k->dump_n++;
		k->active_dump->deadline = uv_now(k->loop) + k->opts.timeout_ms;
		k->active_dump->dump_each(k, m, k->active_dump->arg);
		if (m->seq == 0)
			finish_dump(k, 0);
		return;
	}
	if (m->pid == k->pid && m->seq != 0 && (r = hash_take(k, m->seq, m->type))) {
		lost_before(k, r);
		answered(k, r, m->errno_val ? -(int)m->errno_val : 0, m);
		want_pump(k);
		return;
	}
	k->stats.events++;
	if (k->opts.on_event)
		k->opts.on_event(k, m, m->pid == k->pid, k->opts.arg);
}


/*
 * XFRM: complete, successfully, every acknowledgement-type request sent
 * before `until` (in send order) that is still waiting: the kernel answered
 * a later request of the same socket, so it handled these without error.
 * Not those sent before an overrun: their error acknowledgement may be what
 * the kernel dropped. They time out instead, and the loss is reported.
 */
static void complete_before(struct kern *k, struct kern_req *until)
{
	struct kern_req *r = k->inflight.head;

	while (r && r != until) {
		struct kern_req *next = r->next;

		if (!r->data_reply && r->overrun_gen == k->stats.overruns) {
			hash_take(k, r->seq, r->type);
			answered(k, r, 0, NULL);
		}
		r = next;
	}
}

/* The kernel's reason in an extended acknowledgement, or NULL. */
static const char *ext_ack_msg(const struct nlmsghdr *nlh)
{
	const struct nlmsgerr *e = mnl_nlmsg_get_payload(nlh);
	size_t off = sizeof(*e);
	const struct nlattr *a;

	if (!(nlh->nlmsg_flags & NLM_F_ACK_TLVS))
		return NULL;
	if (!(nlh->nlmsg_flags & NLM_F_CAPPED))
		off += e->msg.nlmsg_len > sizeof(struct nlmsghdr) ? e->msg.nlmsg_len - sizeof(struct nlmsghdr) : 0;
	off = MNL_ALIGN(off);
	if (nlh->nlmsg_len < MNL_NLMSG_HDRLEN + off)
		return NULL;
	mnl_attr_for_each(a, nlh, off) {
		if (mnl_attr_get_type(a) == NLMSGERR_ATTR_MSG && mnl_attr_validate(a, MNL_TYPE_NUL_STRING) >= 0)
			return mnl_attr_get_str(a);
	}
	return NULL;
}

/* One netlink message from the kernel (bounded by the caller). */
static void dispatch_xfrm(struct kern *k, const struct nlmsghdr *nlh)
{
	struct kern_req *r;
	struct pfkey_msg m;
	const char *why = NULL;
	bool dump_msg;
	int ret;

	dump_msg = k->active_dump && nlh->nlmsg_seq == k->active_dump->seq &&
		   nlh->nlmsg_pid == k->pid;
	if (nlh->nlmsg_type == NLMSG_ERROR || nlh->nlmsg_type == NLMSG_DONE) {
		int err = 0;

		if (nlh->nlmsg_len >= MNL_NLMSG_HDRLEN + sizeof(int))
			err = *(const int *)mnl_nlmsg_get_payload(nlh);
		else if (nlh->nlmsg_type == NLMSG_ERROR) {
			k->stats.malformed++;
			log_warn("dropped a short netlink error message");
			return;
		}
		if (err > 0 || err < -4095)
			err = -EPROTO;
		if (dump_msg) {
			finish_dump(k, err);
			return;
		}
		if (nlh->nlmsg_type == NLMSG_DONE || nlh->nlmsg_pid != k->pid ||
		    !(r = hash_find_seq(k, nlh->nlmsg_seq)))
			return;
		if (err) {
			const char *reason = ext_ack_msg(nlh);

			if (reason)
				log_debug("%s seq %u: %s (%s)", pfkey_type_name(r->type), r->seq,
					  strerror(-err), reason);
		}
		complete_before(k, r);
		hash_take(k, r->seq, r->type);
		answered(k, r, err, NULL);
		want_pump(k);
		return;
	}
	if (nlh->nlmsg_type == NLMSG_NOOP || nlh->nlmsg_type == NLMSG_OVERRUN)
		return;
	ret = xfrm_decode(nlh, &m, &why);
	if (ret < 0) {
		k->stats.malformed++;
		log_warn("dropped malformed XFRM message (type %u, %u bytes): %s", nlh->nlmsg_type,
			 nlh->nlmsg_len, why ? why : "?");
		if (dump_msg)
			k->active_dump->deadline = uv_now(k->loop) + k->opts.timeout_ms;
		return;
	}
	if (ret == 0)
		return; /* a message type the daemon does not use (NEWAE, REPORT, ...) */
	if (dump_msg && (nlh->nlmsg_flags & NLM_F_MULTI)) {
		m.type = k->active_dump->type;
		k->dump_n++;
		k->active_dump->deadline = uv_now(k->loop) + k->opts.timeout_ms;
		k->active_dump->dump_each(k, &m, k->active_dump->arg);
		return;
	}
	if (nlh->nlmsg_pid == k->pid && nlh->nlmsg_seq && (r = hash_find_seq(k, nlh->nlmsg_seq)) &&
	    r->data_reply) {
		complete_before(k, r);
		hash_take(k, r->seq, r->type);
		m.type = r->type;
		if (r->type == SADB_GETSPI)
			m.state = SADB_SASTATE_LARVAL;
		answered(k, r, 0, &m);
		want_pump(k);
		return;
	}
	k->stats.events++;
	if (k->opts.on_event)
		k->opts.on_event(k, &m, nlh->nlmsg_pid == k->pid, k->opts.arg);
}

/* XFRM: the netlink messages of one received datagram (n bytes, whole). */
static void dispatch_netlink(struct kern *k, const uint8_t *buf, size_t n)
{
	const struct nlmsghdr *nlh = (const struct nlmsghdr *)buf;

	while (n && !k->closing && xfrm_nlmsg_ok(nlh, n)) {
		dispatch_xfrm(k, nlh);
		nlh = xfrm_nlmsg_next(nlh, &n);
	}
	if (n > 0 && !k->closing) {
		k->stats.malformed++;
		log_warn("dropped %zu bytes of a malformed netlink datagram", n);
	}
}

/* One received datagram: hand it on, then wipe it. cap is its slot's size. */
static void on_datagram(struct kern *k, uint8_t *buf, size_t cap, size_t n)
{
	struct pfkey_msg m;
	const char *why = NULL;

	if (n > cap) {
		k->stats.truncated++;
		pfkey_cleanse(buf, cap);
		if (!k->xfrm && k->batch > 1) {
			/*
			 * Longer than a batch slot: read one message at a time into
			 * the whole buffer from now on, so the resync sees it.
			 */
			log_warn("a %zu-byte kernel message does not fit a %zu-byte slot; reading "
				 "one message per call from now on",
				 n, cap);
			k->batch = 1;
		}
		note_loss(k, "truncated message");
		return;
	}
	if (k->xfrm) {
		dispatch_netlink(k, buf, n);
	} else if (pfkey_decode(buf, n, &m, &why)) {
		k->stats.malformed++;
		log_warn("dropped malformed message (%zu bytes): %s", n, why ? why : "?");
	} else {
		dispatch(k, &m);
	}
	/*
	 * Broadcasts carry the keys of every SA (af_key.c: key_notify_sa;
	 * xfrm_user.c: copy_to_user_state_extra).
	 */
	pfkey_cleanse(buf, n);
}

static void read_batches(struct kern *k);

static void on_readable(struct kern *k)
{
	k->reading = true;
	read_batches(k);
	k->reading = false;
	if (k->pump_wanted && !k->closing)
		pump(k);
}

static void read_batches(struct kern *k)
{
	struct mmsghdr mm[RECV_BATCH];
	struct iovec iov[RECV_BATCH];

	for (int budget = (int)k->opts.read_budget; budget > 0 && !k->closing;) {
		unsigned batch = k->xfrm ? RECV_BATCH : k->batch;
		size_t cap = k->xfrm	  ? XFRM_SLOT_SIZE :
			     batch > 1 ? PFKEY_MSG_MAX / RECV_BATCH :
					 PFKEY_MSG_MAX;
		int n;

		/* Not more than the budget: an XFRM datagram alone may hold 80 SAs. */
		if (batch > (unsigned)budget)
			batch = (unsigned)budget;
		/* recvmmsg: one system call for up to RECV_BATCH replies of a burst. */
		memset(mm, 0, batch * sizeof(mm[0]));
		for (unsigned i = 0; i < batch; i++) {
			iov[i].iov_base = k->rbuf + i * cap;
			iov[i].iov_len = cap;
			mm[i].msg_hdr.msg_iov = &iov[i];
			mm[i].msg_hdr.msg_iovlen = 1;
		}
		n = recvmmsg(k->fd, mm, batch, MSG_DONTWAIT | MSG_TRUNC, NULL);
		if (n < 0) {
			if (errno == ENOBUFS) {
				/* Netlink: multicasts were dropped, our view may be stale. */
				k->stats.overruns++;
				note_loss(k, "netlink receive buffer overrun");
				continue;
			}
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
				log_err("recvmmsg: %s", strerror(errno));
			return;
		}
		for (int i = 0; i < n; i++) {
			uint8_t *buf = k->rbuf + (size_t)i * cap;

			budget--;
			if (k->closing) {
				pfkey_cleanse(buf, mm[i].msg_len < cap ? mm[i].msg_len : cap);
				continue;
			}
			if (mm[i].msg_len == 0) {
				/* A seqpacket peer (the simulated SADB) went away. */
				if (k->opts.backend == KERN_BACKEND_FD) {
					log_err("kernel channel closed by peer");
					uv_poll_stop(&k->poll);
					k->poll_events = 0;
					return;
				}
				continue;
			}
			on_datagram(k, buf, cap, mm[i].msg_len);
		}
		/* Fewer than asked: the socket was empty; epoll reports what came since. */
		if ((unsigned)n < batch)
			return;
	}
}

static void poll_cb(uv_poll_t *handle, int status, int events)
{
	struct kern *k = container_of(handle, struct kern, poll);

	if (status < 0) {
		/*
		 * libuv reports POLLERR as UV_EBADF and stops the handle. A netlink
		 * socket raises it when multicasts overran the receive buffer
		 * (sk_err = ENOBUFS): read, which reports the loss and clears
		 * the error, and watch the socket again.
		 */
		if (k->xfrm && status == UV_EBADF && !k->closing) {
			k->poll_events = 0; /* libuv stopped the handle */
			on_readable(k);
			watch(k);
			pump(k);
			return;
		}
		log_err("poll: %s", uv_strerror(status));
		return;
	}
	if (events & UV_READABLE)
		on_readable(k);
	if (events & UV_WRITABLE)
		pump(k);
}

static void timer_cb(uv_timer_t *t)
{
	struct kern *k = container_of(t, struct kern, timer);
	uint64_t now = uv_now(k->loop);
	unsigned long lost = 0;

	/* Read first: a reply may be waiting behind a busy loop turn. */
	on_readable(k);
	while (k->inflight.head && k->inflight.head->deadline <= now) {
		give_up(k, k->inflight.head);
		lost++;
	}
	if (k->active_dump && k->active_dump->deadline <= now) {
		k->stats.timeouts++;
		lost++;
		finish_dump(k, -ETIMEDOUT);
	}
	if (lost)
		note_loss(k, "reply timed out");
	pump(k);
}

static void flush_cb(uv_prepare_t *p)
{
	struct kern *k = container_of(p, struct kern, flush);

	uv_prepare_stop(p);
	pump(k);
}

static void deferred_cb(uv_timer_t *t)
{
	struct kern *k = container_of(t, struct kern, deferred);

	while (k->done.head) {
		struct kern_req *r = k->done.head;

		list_remove(&k->done, r);
		complete(k, r, r->err, NULL);
	}
}

int kern_open(uv_loop_t *loop, const struct kern_opts *opts, struct kern **out)
{
	struct kern *k = NULL;
	int ret, fd = -1;

	k = calloc(1, sizeof(*k));
	if (!k) {
		ret = -ENOMEM;
		goto cleanup;
	}
	k->opts = *opts;
	/* A channel in no multicast group hears no echo: nothing to filter, nothing to refuse. */
	if (k->opts.dumps_only)
		k->opts.drop_own_echoes = false;
	if (!k->opts.rcvbuf)
		k->opts.rcvbuf = DEFAULT_RCVBUF;
	if (!k->opts.window)
		k->opts.window = DEFAULT_WINDOW;
	if (!k->opts.timeout_ms)
		k->opts.timeout_ms = DEFAULT_TIMEOUT_MS;
	if (!k->opts.read_budget || k->opts.read_budget > READ_BUDGET)
		k->opts.read_budget = READ_BUDGET;
	k->hash_size = 1;
	while (k->hash_size < 2 * (size_t)k->opts.window)
		k->hash_size <<= 1;
	k->hash = calloc(k->hash_size, sizeof(*k->hash));
	k->xfrm = opts->backend == KERN_BACKEND_XFRM;
	k->rbuf = malloc(rbuf_size(k));
	k->ebuf = malloc(PFKEY_MSG_MAX);
	k->batch = RECV_BATCH;
	if (k->xfrm)
		k->sbuf = malloc(XFRM_BATCH_MAX);
	if (!k->hash || !k->rbuf || !k->ebuf || (k->xfrm && !k->sbuf)) {
		ret = -ENOMEM;
		goto cleanup;
	}
	switch (opts->backend) {
	case KERN_BACKEND_PFKEY:
		ret = kern_pfkey_open(&k->opts, &fd);
		break;
	case KERN_BACKEND_XFRM:
		ret = kern_xfrm_open(&k->opts, &fd, &k->pid);
		break;
	case KERN_BACKEND_FD:
		fd = opts->fd;
		ret = fd < 0 ? -EBADF : opts->dumps_only ? 0 : kern_pfkey_register(fd);
		break;
	default:
		ret = -EINVAL;
	}
	if (ret)
		goto cleanup;
	k->fd = fd;
	/*
	 * Each channel stamps its own pid so two channels of one process never
	 * take each other's replies: the kernel echoes pid verbatim and delivers
	 * ADD/DELETE replies to every socket (af_key.c: pfkey_broadcast, BROADCAST_ALL).
	 */
	if (!k->xfrm)
		k->pid = (uint32_t)getpid() + ((uint32_t)instance_count++ << 22);
	k->loop = loop;
	/* Our seqs stay far above the kernel's acquire counter, which callers may reuse. */
	k->next_seq = 0x10000000;
	uv_timer_init(loop, &k->timer);
	uv_timer_init(loop, &k->deferred);
	uv_prepare_init(loop, &k->flush);
	ret = uv_poll_init(loop, &k->poll, fd);
	if (ret) {
		log_err("uv_poll_init: %s", uv_strerror(ret));
		uv_close((uv_handle_t *)&k->timer, NULL);
		uv_close((uv_handle_t *)&k->deferred, NULL);
		uv_close((uv_handle_t *)&k->flush, NULL);
		/* The handles are embedded: let the loop release them before freeing. */
		uv_run(loop, UV_RUN_NOWAIT);
		goto cleanup;
	}
	uv_poll_start(&k->poll, UV_READABLE, poll_cb);
	k->poll_events = UV_READABLE;
	if (k->opts.promisc && !k->xfrm) {
		struct pfkey_msg m;

		pfkey_msg_init(&m, SADB_X_PROMISC, 1, 0, k->pid);
		uint8_t buf[16];
		if (pfkey_encode(&m, buf, sizeof(buf)) == 16 && send(fd, buf, 16, 0) != 16)
			log_warn("X_PROMISC: %s", strerror(errno));
	}
	*out = k;
	return 0;
cleanup:
	if (fd >= 0)
		close(fd);
	if (k) {
		free(k->hash);
		free(k->rbuf);
		free(k->sbuf);
		free(k->ebuf);
		free(k);
	}
	return ret;
}

static void close_cb(uv_handle_t *h)
{
	struct kern *k = h->data;

	if (--k->closing_handles > 0)
		return;
	close(k->fd);
	pfkey_cleanse(k->rbuf, rbuf_size(k));
	free(k->rbuf);
	if (k->sbuf)
		pfkey_cleanse(k->sbuf, XFRM_BATCH_MAX);
	free(k->sbuf);
	free(k->ebuf);
	free(k->hash);
	spare_fini(&k->spare);
	free(k);
}

void kern_close(struct kern *k)
{
	struct kern_req *r;

	if (!k || k->closing)
		return;
	k->closing = true;
	while ((r = k->inflight.head)) {
		list_remove(&k->inflight, r);
		complete(k, r, -ECANCELED, NULL);
	}
	while ((r = k->queue.head)) {
		list_remove(&k->queue, r);
		if (r->is_dump)
			continue; /* it is the active dump, finished below */
		complete(k, r, -ECANCELED, NULL);
	}
	while ((r = k->done.head)) {
		list_remove(&k->done, r);
		complete(k, r, r->err, NULL);
	}
	if (k->active_dump)
		finish_dump(k, -ECANCELED);
	while ((r = k->dumps.head)) {
		list_remove(&k->dumps, r);
		r->dump_done(k, -ECANCELED, 0, r->arg);
		req_free(k, r);
	}
	k->closing_handles = 4;
	k->poll.data = k->timer.data = k->deferred.data = k->flush.data = k;
	uv_close((uv_handle_t *)&k->poll, close_cb);
	uv_close((uv_handle_t *)&k->timer, close_cb);
	uv_close((uv_handle_t *)&k->deferred, close_cb);
	uv_close((uv_handle_t *)&k->flush, close_cb);
}

void *kern_get_arg(const struct kern *k)
{
	return k->opts.arg;
}

uint32_t kern_pid(const struct kern *k)
{
	return k->pid;
}

unsigned kern_pending(const struct kern *k)
{
	return k->queue.n + k->inflight.n + k->done.n;
}

void kern_get_stats(const struct kern *k, struct kern_stats *st)
{
	*st = k->stats;
}

int kern_fd(const struct kern *k)
{
	return k->fd;
}

enum kern_backend kern_backend(const struct kern *k)
{
	return k->opts.backend;
}
