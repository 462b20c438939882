/* SPDX-License-Identifier: ISC */
/* The PF_KEY backends of the kernel channel: a PF_KEY socket, or a descriptor speaking PF_KEY. */
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "svc/kernel/backend.h"
#include "svc/base/log.h"

/* Requests per sendmmsg. */
#define PFKEY_SEND_BATCH 64

/* Channels opened so far: each stamps its own pid (pfkey_channel_init). */
static unsigned instance_count;

/*
 * SADB_REGISTER for ESP, stamped pid: only registered sockets get EXPIRE and
 * ACQUIRE (af_key.c: pfkey_broadcast, BROADCAST_REGISTERED), and satype
 * UNSPEC would not register (af_key.c: pfkey_register). Blocking: the
 * kernel probes its algorithms inside the send (kern_register).
 */
static int pfkey_register(int fd, uint32_t pid)
{
	struct pfkey_msg m;
	uint8_t buf[16];
	ssize_t n;

	pfkey_msg_init(&m, SADB_REGISTER, SADB_SATYPE_ESP, 1, pid);
	if (pfkey_encode(&m, buf, sizeof(buf)) != (ssize_t)sizeof(buf))
		return -EINVAL;
	/* The descriptor is non-blocking; a full socket (the simulator's) waits for room. */
	while ((n = send(fd, buf, sizeof(buf), 0)) < 0 && (errno == EAGAIN || errno == EINTR)) {
		struct pollfd p = { .fd = fd, .events = POLLOUT };

		if (errno == EAGAIN && poll(&p, 1, 5000) == 0)
			return -ETIMEDOUT;
	}
	if (n < 0)
		return -errno;
	/*
	 * The SUPPORTED reply is queued before send() returns (af_key.c:
	 * pfkey_sendmsg runs the handler synchronously); the channel reads and
	 * passes it on as an event like any other message.
	 */
	return 0;
}

void kern_set_rcvbuf(int fd, int size)
{
	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof(size)) &&
	    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size)))
		log_warn("SO_RCVBUF %d: %s", size, strerror(errno));
}

/*
 * Open a non-blocking PF_KEY socket with a large receive buffer and register
 * it for ACQUIRE and EXPIRE. Returns 0 and *fd, or -errno.
 */
static int pfkey_socket_open(const struct kern_opts *opts, int *fd_out)
{
	int fd, ret, size = opts->rcvbuf;

	fd = socket(PF_KEY, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, PF_KEY_V2);
	if (fd < 0) {
		ret = -errno;
		if (errno == EAFNOSUPPORT)
			log_err("this kernel has no PF_KEY (CONFIG_NET_KEY): load it (modprobe af_key) "
				"or set kernel = auto or xfrm");
		else if (errno == EPERM || errno == EACCES)
			log_err("PF_KEY needs CAP_NET_ADMIN: run sakeyd as root");
		else
			log_err("socket(PF_KEY): %s", strerror(errno));
		return ret;
	}
	/*
	 * The kernel drops any message that does not fit the receive buffer, with
	 * no error anywhere (af_key.c: pfkey_broadcast_one): make it large.
	 * SO_RCVBUFFORCE passes rmem_max with CAP_NET_ADMIN.
	 */
	kern_set_rcvbuf(fd, size);
	ret = opts->dumps_only || opts->register_later ? 0 : pfkey_register(fd, (uint32_t)getpid());
	if (ret) {
		log_err("SADB_REGISTER: %s", strerror(-ret));
		close(fd);
		return ret;
	}
	*fd_out = fd;
	return 0;
}

/* The channel's pid, and X_PROMISC if asked for, once k->fd is open. */
static void pfkey_channel_init(struct kern *k)
{
	struct pfkey_msg m;
	uint8_t buf[16];

	/*
	 * Each channel stamps its own pid so two channels of one process never
	 * take each other's replies: the kernel echoes pid verbatim and delivers
	 * ADD/DELETE replies to every socket (af_key.c: pfkey_broadcast, BROADCAST_ALL).
	 */
	k->pid = (uint32_t)getpid() + ((uint32_t)instance_count++ << 22);
	if (!k->opts.promisc)
		return;
	pfkey_msg_init(&m, SADB_X_PROMISC, 1, 0, k->pid);
	if (pfkey_encode(&m, buf, sizeof(buf)) == 16 && send(k->fd, buf, 16, 0) != 16)
		log_warn("X_PROMISC: %s", strerror(errno));
}

static int pfkey_open(struct kern *k)
{
	int ret = pfkey_socket_open(&k->opts, &k->fd);

	if (ret)
		return ret;
	pfkey_channel_init(k);
	return 0;
}

/* The simulated SADB: the descriptor comes with the options, and the channel owns it. */
static int fd_open(struct kern *k)
{
	int ret;

	if (k->opts.fd < 0)
		return -EBADF;
	ret = k->opts.dumps_only || k->opts.register_later
		      ? 0
		      : pfkey_register(k->opts.fd, (uint32_t)getpid());
	if (ret) {
		close(k->opts.fd);
		return ret;
	}
	k->fd = k->opts.fd;
	pfkey_channel_init(k);
	return 0;
}

static ssize_t pfkey_encode_req(struct kern *k, struct kern_req *r, struct pfkey_msg *m,
				uint8_t *buf)
{
	/* A caller may set seq, e.g. an ACQUIRE's to answer it (pfkey-linux.md §4.3). */
	m->seq = r->seq = m->seq ? m->seq : kern_fresh_seq(k);
	m->pid = k->pid;
	return pfkey_encode(m, buf, PFKEY_MSG_MAX);
}

/*
 * Up to PFKEY_SEND_BATCH requests per sendmmsg. af_key takes one message
 * per sendmsg, so a PF_KEY daemon pays a system call per request; sendmmsg
 * pays one per batch, and each system call is a trap into the kernel,
 * costly in User-Mode Linux. Nothing else changes: net/socket.c runs
 * ___sys_sendmsg for each message in turn, af_key.c's pfkey_sendmsg
 * answers each inside it, and sendmmsg stops at the first message that
 * fails, returning how many went before it; that message is sent again
 * first in the next call, whose error is then its own. A failure of the
 * first message is its own: af_key.c pfkey_sendmsg fails send() itself for
 * base header errors, and queues no reply.
 */
static int pfkey_send(struct kern *k, struct kern_req *first, unsigned room, unsigned *failed)
{
	struct mmsghdr mm[PFKEY_SEND_BATCH];
	struct iovec iov[PFKEY_SEND_BATCH];
	unsigned n = 0;
	int sent, err;

	for (struct kern_req *q = first; q && n < room && n < PFKEY_SEND_BATCH; q = q->next, n++) {
		iov[n] = (struct iovec){ .iov_base = q->wire, .iov_len = q->wire_len };
		mm[n] = (struct mmsghdr){ .msg_hdr = { .msg_iov = &iov[n], .msg_iovlen = 1 } };
	}
	sent = sendmmsg(k->fd, mm, n, MSG_DONTWAIT | MSG_NOSIGNAL);
	if (sent >= 0)
		return sent;
	err = -errno;
	if (!kern_send_would_block(err))
		log_warn("send %s seq %u: %s", pfkey_type_name(first->type), first->seq,
			 strerror(-err));
	*failed = 1;
	return err;
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
		kern_give_up(k, k->inflight.head);
		lost++;
	}
	if (lost)
		kern_note_loss(k, "reply lost (a later request's came)");
}

static void dispatch_msg(struct kern *k, const struct pfkey_msg *m)
{
	struct kern_req *r;

	if (k->active_dump && m->pid == k->pid && m->type == k->active_dump->type) {
		/*
		 * af_key.c: pfkey_do_dump — the replies carry seq 1, 2, ... and the
		 * last one seq 0; an empty table is one reply with ENOENT.
		 */
		if (m->errno_val) {
			kern_dump_finish(k, m->errno_val == ENOENT ? 0 : -(int)m->errno_val);
			return;
		}
		kern_dump_msg(k, m);
		if (m->seq == 0)
			kern_dump_finish(k, 0);
		return;
	}
	if (m->pid == k->pid && m->seq != 0 && (r = kern_req_take(k, m->seq, m->type))) {
		lost_before(k, r);
		kern_answered(k, r, m->errno_val ? -(int)m->errno_val : 0, m);
		kern_want_pump(k);
		return;
	}
	kern_event(k, m, m->pid == k->pid);
}

/* One PF_KEY message per datagram. */
static void pfkey_dispatch(struct kern *k, const uint8_t *buf, size_t n)
{
	struct pfkey_msg m;
	const char *why = NULL;

	if (pfkey_decode(buf, n, &m, &why)) {
		k->stats.malformed++;
		log_warn("dropped malformed message (%zu bytes): %s", n, why ? why : "?");
		return;
	}
	dispatch_msg(k, &m);
}

/* PF_KEYv2: one message per datagram, many datagrams per sendmmsg. */
static const struct kern_protocol pfkey_protocol = {
	.encode = pfkey_encode_req,
	.send = pfkey_send,
	.dispatch = pfkey_dispatch,
	.encode_max = PFKEY_MSG_MAX,
	.recv_slot = PFKEY_MSG_MAX / RECV_BATCH,
	.recv_max = PFKEY_MSG_MAX,
};

/* A PF_KEY socket of the real kernel. */
const struct kern_backend_ops kern_pfkey_ops = {
	.open = pfkey_open,
	.register_events = pfkey_register,
	.protocol = &pfkey_protocol,
};

/*
 * PF_KEYv2 on one end of a SOCK_SEQPACKET pair or Unix socket: the
 * simulated SADB. Only where the descriptor comes from differs from a
 * PF_KEY socket, and that its peer may go away.
 */
const struct kern_backend_ops kern_fd_ops = {
	.open = fd_open,
	.register_events = pfkey_register,
	.protocol = &pfkey_protocol,
	.empty_is_eof = true,
};
