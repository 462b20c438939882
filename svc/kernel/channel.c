/* SPDX-License-Identifier: ISC */
/* The kernel channel: pipelined requests matched to replies, events, dumps, loss detection. */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "svc/base/container.h"
#include "svc/kernel/channel.h"
#include "svc/kernel/backend.h"
#include "svc/base/log.h"

#define DEFAULT_RCVBUF (32 * 1024 * 1024)
#define DEFAULT_WINDOW 512
#define DEFAULT_TIMEOUT_MS 2000
/* Messages read per poll callback before yielding to the loop. */
#define READ_BUDGET 4096

/* The backends, by the kind kern_opts names. */
static const struct kern_backend_ops *const backends[] = {
	[KERN_BACKEND_PFKEY] = &kern_pfkey_ops,
	[KERN_BACKEND_FD] = &kern_fd_ops,
	[KERN_BACKEND_XFRM] = &kern_xfrm_ops,
};

static void poll_cb(uv_poll_t *handle, int status, int events);
static void timer_cb(uv_timer_t *t);
static void deferred_cb(uv_timer_t *t);
static void flush_cb(uv_prepare_t *p);

/* RECV_BATCH slots, or one datagram as large as the kernel sends. */
static size_t rbuf_size(const struct kern *k)
{
	const struct kern_protocol *proto = k->ops->protocol;
	size_t slots = (size_t)RECV_BATCH * proto->recv_slot;

	return slots > proto->recv_max ? slots : proto->recv_max;
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

struct kern_req *kern_req_take(struct kern *k, uint32_t seq, uint8_t type)
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
struct kern_req *kern_req_find(struct kern *k, uint32_t seq)
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

uint32_t kern_fresh_seq(struct kern *k)
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

void kern_note_loss(struct kern *k, const char *why)
{
	k->loss_count++;
	log_warn("kernel message lost (%s); %lu so far: resync needed", why, k->loss_count);
	if (k->opts.on_loss)
		k->opts.on_loss(k, k->loss_count, k->opts.arg);
}

static void start_next_dump(struct kern *k);

/* A request the kernel never got (send failed): its callback gets err, later. */
static void fail_unsent(struct kern *k, struct kern_req *r, int err)
{
	if (r->is_dump) {
		k->active_dump = r;
		kern_dump_finish(k, err);
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
 * The queued requests that fit the window, as many per system call as the
 * backend writes at once (the protocol's send).
 */
static void pump(struct kern *k)
{
	const struct kern_protocol *proto = k->ops->protocol;
	bool timed = false; /* one clock read per call, not per message */

	k->pump_wanted = false;
	/* A SADB_REGISTER holds the kernel's configuration lock: queue behind it (kern_register). */
	while (!k->registering && k->queue.head && k->inflight.n < k->opts.window) {
		unsigned failed = 0;
		int sent = proto->send(k, k->queue.head, k->opts.window - k->inflight.n, &failed);

		if (kern_send_would_block(sent)) {
			k->send_blocked = true;
			k->stats.send_blocked++;
			break;
		}
		k->send_blocked = false;
		/*
		 * The loop's time is from the start of this turn, which may be long;
		 * a long send's requests take their deadlines from its end.
		 */
		if (proto->long_sends) {
			uv_update_time(k->loop);
			timed = true;
		}
		if (sent < 0) {
			/* The kernel never got them: each callback gets the error, later. */
			for (unsigned i = 0; i < failed; i++) {
				struct kern_req *r = k->queue.head;

				list_remove(&k->queue, r);
				wipe_wire(r);
				fail_unsent(k, r, sent);
			}
			continue;
		}
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
 * Send now, or once the batch being read is dispatched: one pump (and one
 * clock read) per batch of replies, not one per reply.
 */
void kern_want_pump(struct kern *k)
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
	len = k->ops->protocol->encode(k, r, m, buf);
	if (len < 0) {
		/* A failed encoding may have written any part of the buffer. */
		pfkey_cleanse(buf, k->ops->protocol->encode_max);
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
		kern_want_pump(k);
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
	kern_want_pump(k);
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

void kern_dump_finish(struct kern *k, int err)
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
void kern_answered(struct kern *k, struct kern_req *r, int err, const struct pfkey_msg *reply)
{
	list_remove(&k->inflight, r);
	k->stats.replies++;
	complete(k, r, err, reply);
}

/* An in-flight request whose reply will not come: it completes as timed out. */
void kern_give_up(struct kern *k, struct kern_req *r)
{
	list_remove(&k->inflight, r);
	kern_req_take(k, r->seq, r->type);
	k->stats.timeouts++;
	complete(k, r, -ETIMEDOUT, NULL);
}

void kern_event(struct kern *k, const struct pfkey_msg *m, bool own)
{
	k->stats.events++;
	if (k->opts.on_event)
		k->opts.on_event(k, m, own, k->opts.arg);
}

void kern_dump_alive(struct kern *k)
{
	k->active_dump->deadline = uv_now(k->loop) + k->opts.timeout_ms;
}

void kern_dump_msg(struct kern *k, const struct pfkey_msg *m)
{
	k->dump_n++;
	kern_dump_alive(k);
	k->active_dump->dump_each(k, m, k->active_dump->arg);
}

/* One received datagram: hand it on, then wipe it. cap is its slot's size. */
static void on_datagram(struct kern *k, uint8_t *buf, size_t cap, size_t n)
{
	if (n > cap) {
		k->stats.truncated++;
		pfkey_cleanse(buf, cap);
		if (k->batch > 1 && k->ops->protocol->recv_max > cap) {
			/*
			 * Longer than a batch slot, and the kernel sends longer: read
			 * one message at a time into the whole buffer from now on, so
			 * the resync sees it.
			 */
			log_warn("a %zu-byte kernel message does not fit a %zu-byte slot; reading "
				 "one message per call from now on",
				 n, cap);
			k->batch = 1;
		}
		kern_note_loss(k, "truncated message");
		return;
	}
	k->ops->protocol->dispatch(k, buf, n);
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
	const struct kern_protocol *proto = k->ops->protocol;
	struct mmsghdr mm[RECV_BATCH];
	struct iovec iov[RECV_BATCH];

	for (int budget = (int)k->opts.read_budget; budget > 0 && !k->closing;) {
		unsigned batch = k->batch;
		size_t cap = batch > 1 ? proto->recv_slot : proto->recv_max;
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
				kern_note_loss(k, "netlink receive buffer overrun");
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
				if (k->ops->empty_is_eof) {
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
		if (k->ops->pollerr_on_overrun && status == UV_EBADF && !k->closing) {
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
		kern_give_up(k, k->inflight.head);
		lost++;
	}
	if (k->active_dump && k->active_dump->deadline <= now) {
		k->stats.timeouts++;
		lost++;
		kern_dump_finish(k, -ETIMEDOUT);
	}
	if (lost)
		kern_note_loss(k, "reply timed out");
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

/* The descriptor and the backend's state, once its open succeeded. */
static void close_backend(struct kern *k)
{
	if (k->ops->close)
		k->ops->close(k);
	close(k->fd);
}

int kern_open(uv_loop_t *loop, const struct kern_opts *opts, struct kern **out)
{
	struct kern *k = NULL;
	int ret;

	if ((unsigned)opts->backend >= sizeof(backends) / sizeof(backends[0]))
		return -EINVAL;
	k = calloc(1, sizeof(*k));
	if (!k)
		return -ENOMEM;
	k->ops = backends[opts->backend];
	k->fd = -1;
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
	k->rbuf = malloc(rbuf_size(k));
	k->ebuf = malloc(k->ops->protocol->encode_max);
	k->batch = RECV_BATCH;
	if (!k->hash || !k->rbuf || !k->ebuf) {
		ret = -ENOMEM;
		goto cleanup;
	}
	ret = k->ops->open(k);
	if (ret)
		goto cleanup;
	k->loop = loop;
	/* Our seqs stay far above the kernel's acquire counter, which callers may reuse. */
	k->next_seq = 0x10000000;
	uv_timer_init(loop, &k->timer);
	uv_timer_init(loop, &k->deferred);
	uv_prepare_init(loop, &k->flush);
	ret = uv_poll_init(loop, &k->poll, k->fd);
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
	*out = k;
	return 0;
cleanup:
	if (k->fd >= 0)
		close_backend(k);
	free(k->hash);
	free(k->rbuf);
	free(k->ebuf);
	free(k);
	return ret;
}

/* --- kern_register ---------------------------------------------------------- */

struct kern_registration {
	uv_work_t work;
	struct kern *k; /* NULL once the channel closed: nobody to tell */
	int fd;         /* a duplicate: the socket outlives a close of the channel's */
	uint32_t pid;
	int (*register_events)(int fd, uint32_t pid);
	kern_registered_cb done;
	int err;
	uint64_t started_ns, took_ns;
};

static void register_work(uv_work_t *w)
{
	struct kern_registration *r = container_of(w, struct kern_registration, work);

	r->err = r->register_events(r->fd, r->pid);
	r->took_ns = uv_hrtime() - r->started_ns;
	close(r->fd);
}

static void register_after(uv_work_t *w, int status)
{
	struct kern_registration *r = container_of(w, struct kern_registration, work);
	struct kern *k = r->k;

	if (status)
		r->err = status; /* uv_cancel: it never ran */
	if (k) {
		k->registering = NULL;
		/* The loop's clock went on while the kernel held its lock. */
		uv_update_time(k->loop);
		kern_want_pump(k);
		r->done(k, r->err, (double)r->took_ns / 1e9, k->opts.arg);
	}
	free(r);
}

int kern_register(struct kern *k, kern_registered_cb done)
{
	struct kern_registration *r;
	int ret;

	if (!k->ops->register_events)
		return -EOPNOTSUPP;
	if (k->registering)
		return -EALREADY;
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->fd = fcntl(k->fd, F_DUPFD_CLOEXEC, 0);
	if (r->fd < 0) {
		ret = -errno;
		free(r);
		return ret;
	}
	r->k = k;
	r->pid = k->pid;
	r->register_events = k->ops->register_events;
	r->done = done;
	r->started_ns = uv_hrtime();
	ret = uv_queue_work(k->loop, &r->work, register_work, register_after);
	if (ret) {
		close(r->fd);
		free(r);
		return ret;
	}
	k->registering = r;
	return 0;
}

static void close_cb(uv_handle_t *h)
{
	struct kern *k = h->data;

	if (--k->closing_handles > 0)
		return;
	close_backend(k);
	pfkey_cleanse(k->rbuf, rbuf_size(k));
	free(k->rbuf);
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
	if (k->registering)
		k->registering->k = NULL; /* it finishes on its own duplicate */
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
		kern_dump_finish(k, -ECANCELED);
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
