/* SPDX-License-Identifier: ISC */
/* The XFRM netlink backend of the kernel channel: requests translated, many per sendmsg. */
#include <arpa/inet.h>
#include <errno.h>
#include <libmnl/libmnl.h>
#include <linux/filter.h>
#include <linux/netlink.h>
#include <linux/xfrm.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "svc/kernel/backend.h"
#include "svc/base/log.h"
#include "svc/kernel/xfrm.h"

#ifndef NETLINK_CAP_ACK
#define NETLINK_CAP_ACK 10
#endif
#ifndef NETLINK_EXT_ACK
#define NETLINK_EXT_ACK 11
#endif

/*
 * Bytes of requests per sendmsg (the kernel refuses a datagram above its
 * send buffer, 212992 by default), and the receive slot of each of the
 * RECV_BATCH datagrams per recvmmsg, large enough for a dump chunk
 * (netlink_dump sizes them after our receive length, capped at 32 KiB).
 */
#define XFRM_BATCH_MAX (64 * 1024)
#define XFRM_SLOT_SIZE (32 * 1024)

/*
 * Drop the notifications of our own SA and policy changes in the kernel
 * (kern_opts.drop_own_echoes). xfrm_user.c stamps a change's notification
 * with the port id and seq of the request that made it (xfrm_notify_sa,
 * xfrm_notify_policy: nlmsg_put(skb, c->portid, c->seq, ...)), and
 * netlink's do_one_broadcast runs the listener's socket filter before it
 * queues anything. Dump parts (NLM_F_MULTI), acknowledgements and every
 * other tool's notifications pass. Classic BPF loads in network byte order,
 * hence the swapped constants. Returns 0 or -errno.
 */
static int drop_own_echoes(int fd, uint32_t portid)
{
	enum { ACCEPT = 11, DROP = 12 };
	struct sock_filter f[] = {
		/* 0 */ BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct nlmsghdr, nlmsg_pid)),
		/* 1 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, ntohl(portid), 0, ACCEPT - 2),
		/* 2 */ BPF_STMT(BPF_LD | BPF_H | BPF_ABS, offsetof(struct nlmsghdr, nlmsg_flags)),
		/* 3 */ BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, ntohs(NLM_F_MULTI), ACCEPT - 4, 0),
		/* 4 */ BPF_STMT(BPF_LD | BPF_H | BPF_ABS, offsetof(struct nlmsghdr, nlmsg_type)),
		/* 5 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, ntohs(XFRM_MSG_NEWSA), DROP - 6, 0),
		/* 6 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, ntohs(XFRM_MSG_UPDSA), DROP - 7, 0),
		/* 7 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, ntohs(XFRM_MSG_DELSA), DROP - 8, 0),
		/* 8 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, ntohs(XFRM_MSG_NEWPOLICY), DROP - 9, 0),
		/* 9 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, ntohs(XFRM_MSG_UPDPOLICY), DROP - 10, 0),
		/* 10 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, ntohs(XFRM_MSG_DELPOLICY), DROP - 11, 0),
		/* 11 ACCEPT */ BPF_STMT(BPF_RET | BPF_K, 0xffffffff),
		/* 12 DROP */ BPF_STMT(BPF_RET | BPF_K, 0),
	};
	struct sock_fprog prog = { .len = sizeof(f) / sizeof(f[0]), .filter = f };

	if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof(prog)))
		return -errno;
	return 0;
}

/*
 * Open a non-blocking NETLINK_XFRM socket with a large receive buffer,
 * joined to the ACQUIRE, EXPIRE, SA and POLICY groups. *portid is the
 * address the kernel bound it to. Returns 0 and *fd, or -errno.
 */
static int xfrm_socket_open(const struct kern_opts *opts, int *fd_out, uint32_t *portid)
{
	struct sockaddr_nl sa = { .nl_family = AF_NETLINK,
				  .nl_groups = opts->dumps_only ? 0 : XFRM_CHANNEL_GROUPS };
	socklen_t salen = sizeof(sa);
	int fd, ret, one = 1, size = opts->rcvbuf;

	fd = socket(AF_NETLINK, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, NETLINK_XFRM);
	if (fd < 0) {
		ret = -errno;
		if (errno == EPROTONOSUPPORT)
			log_err("this kernel has no XFRM netlink (CONFIG_XFRM_USER); load it with: "
				"modprobe xfrm_user");
		else
			log_err("socket(NETLINK_XFRM): %s", strerror(errno));
		return ret;
	}
	/*
	 * A multicast that does not fit is dropped and the next recv() fails
	 * with ENOBUFS: the channel then reports a loss and the daemon resyncs.
	 * A burst of N requests brings N SA notifications: make room.
	 */
	kern_set_rcvbuf(fd, size);
	/*
	 * An error acknowledgement echoes the whole request by default, keys
	 * included: have the kernel echo only its header. Extended acks carry
	 * the kernel's reason, which the channel logs.
	 */
	if (setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof(one)))
		log_warn("NETLINK_CAP_ACK: %s", strerror(errno));
	if (setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof(one)))
		log_debug("NETLINK_EXT_ACK: %s", strerror(errno));
	/* Joining XFRM's groups needs CAP_NET_ADMIN (netlink_bind: no NL_CFG_F_NONROOT_RECV). */
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) ||
	    getsockname(fd, (struct sockaddr *)&sa, &salen)) {
		ret = -errno;
		if (errno == EPERM || errno == EACCES)
			log_err("XFRM netlink needs CAP_NET_ADMIN: run sakeyd as root");
		else
			log_err("bind(NETLINK_XFRM): %s", strerror(errno));
		close(fd);
		return ret;
	}
	/*
	 * Without the filter the echoes come as before: the daemon's table
	 * takes them as updates of entries it already has, at the old cost.
	 */
	if (opts->drop_own_echoes && (ret = drop_own_echoes(fd, sa.nl_pid)))
		log_warn("a socket filter for our own XFRM notifications: %s; they are read "
			 "and parsed instead",
			 strerror(-ret));
	*portid = sa.nl_pid;
	*fd_out = fd;
	return 0;
}

/* The socket, and the backend's state: a buffer to join a batch's requests for one sendmsg. */
static int xfrm_open(struct kern *k)
{
	uint8_t *sbuf = malloc(XFRM_BATCH_MAX);
	int ret;

	if (!sbuf)
		return -ENOMEM;
	ret = xfrm_socket_open(&k->opts, &k->fd, &k->pid);
	if (ret) {
		free(sbuf);
		return ret;
	}
	k->backend_state = sbuf;
	return 0;
}

static void xfrm_close(struct kern *k)
{
	pfkey_cleanse(k->backend_state, XFRM_BATCH_MAX);
	free(k->backend_state);
}

static ssize_t xfrm_encode_req(struct kern *k, struct kern_req *r, struct pfkey_msg *m,
			       uint8_t *buf)
{
	/* Its answer would be dropped as an echo of our own change (kern_opts). */
	if (k->opts.drop_own_echoes && xfrm_reply_is_data(m->type))
		return -EOPNOTSUPP;
	/* The ACQUIRE's seq goes into the SA (km.seq); netlink's seq is ours. */
	r->seq = kern_fresh_seq(k);
	return xfrm_encode(m, r->seq, k->pid, m->seq, buf, XFRM_BATCH_MAX);
}

/* Whether r is answered by an acknowledgement, not by a message (data) or a dump. */
static bool acked(const struct kern_req *r)
{
	return !xfrm_reply_is_data(r->type) && !r->is_dump;
}

/*
 * As many requests per sendmsg as fit XFRM_BATCH_MAX and room. Only the
 * last of a batch asks for an acknowledgement: the kernel handles a batch's
 * messages in order and acknowledges every failure anyway
 * (netlink_rcv_skb), so the last one's answer means every earlier request
 * that drew no error succeeded (see complete_before). A failed sendmsg
 * fails the whole batch.
 */
static int xfrm_send(struct kern *k, struct kern_req *first, unsigned room, unsigned *failed)
{
	uint8_t *sbuf = k->backend_state;
	struct kern_req *r, *last = NULL;
	unsigned n = 0;
	size_t len = 0;
	int err;

	for (r = first; r && n < room; r = r->next) {
		if (len && len + r->wire_len > XFRM_BATCH_MAX)
			break;
		memcpy(sbuf + len, r->wire, r->wire_len);
		if (acked(r))
			((struct nlmsghdr *)(sbuf + len))->nlmsg_flags &= (uint16_t)~NLM_F_ACK;
		len += r->wire_len;
		last = r;
		n++;
		if (r->is_dump)
			break; /* a dump ends its batch: its replies follow it */
	}
	if (acked(last))
		((struct nlmsghdr *)(sbuf + len - last->wire_len))->nlmsg_flags |= NLM_F_ACK;
	err = send(k->fd, sbuf, len, MSG_DONTWAIT | MSG_NOSIGNAL) < 0 ? -errno : 0;
	pfkey_cleanse(sbuf, len);
	if (!err)
		return (int)n;
	if (!kern_send_would_block(err))
		log_warn("sendmsg of %u XFRM request%s: %s", n, n == 1 ? "" : "s", strerror(-err));
	*failed = n;
	return err;
}

/*
 * Complete, successfully, every acknowledgement-type request sent before
 * `until` (in send order) that is still waiting: the kernel answered a
 * later request of the same socket, so it handled these without error.
 * Not those sent before an overrun: their error acknowledgement may be what
 * the kernel dropped. They time out instead, and the loss is reported.
 */
static void complete_before(struct kern *k, struct kern_req *until)
{
	struct kern_req *r = k->inflight.head;

	while (r && r != until) {
		struct kern_req *next = r->next;

		if (acked(r) && r->overrun_gen == k->stats.overruns) {
			kern_req_take(k, r->seq, r->type);
			kern_answered(k, r, 0, NULL);
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
		off += e->msg.nlmsg_len > sizeof(struct nlmsghdr) ?
			       e->msg.nlmsg_len - sizeof(struct nlmsghdr) :
			       0;
	off = MNL_ALIGN(off);
	if (nlh->nlmsg_len < MNL_NLMSG_HDRLEN + off)
		return NULL;
	mnl_attr_for_each(a, nlh, off) {
		if (mnl_attr_get_type(a) == NLMSGERR_ATTR_MSG &&
		    mnl_attr_validate(a, MNL_TYPE_NUL_STRING) >= 0)
			return mnl_attr_get_str(a);
	}
	return NULL;
}

/* r acknowledged (err) or answered (reply), and the acknowledgement-type ones sent before it. */
static void answered_in_order(struct kern *k, struct kern_req *r, int err,
			      const struct pfkey_msg *reply)
{
	complete_before(k, r);
	kern_req_take(k, r->seq, r->type);
	kern_answered(k, r, err, reply);
	kern_want_pump(k);
}

/* One netlink message from the kernel (bounded by the caller). */
static void dispatch_nlmsg(struct kern *k, const struct nlmsghdr *nlh)
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
			kern_dump_finish(k, err);
			return;
		}
		if (nlh->nlmsg_type == NLMSG_DONE || nlh->nlmsg_pid != k->pid ||
		    !(r = kern_req_find(k, nlh->nlmsg_seq)))
			return;
		if (err) {
			const char *reason = ext_ack_msg(nlh);

			if (reason)
				log_debug("%s seq %u: %s (%s)", pfkey_type_name(r->type), r->seq,
					  strerror(-err), reason);
		}
		answered_in_order(k, r, err, NULL);
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
			kern_dump_alive(k);
		return;
	}
	if (ret == 0)
		return; /* a message type the daemon does not use (NEWAE, REPORT, ...) */
	if (dump_msg && (nlh->nlmsg_flags & NLM_F_MULTI)) {
		m.type = k->active_dump->type;
		kern_dump_msg(k, &m);
		return;
	}
	if (nlh->nlmsg_pid == k->pid && nlh->nlmsg_seq && (r = kern_req_find(k, nlh->nlmsg_seq)) &&
	    xfrm_reply_is_data(r->type)) {
		m.type = r->type;
		if (r->type == SADB_GETSPI)
			m.state = SADB_SASTATE_LARVAL;
		answered_in_order(k, r, 0, &m);
		return;
	}
	kern_event(k, &m, nlh->nlmsg_pid == k->pid);
}

/* The netlink messages of one received datagram (n bytes, whole). */
static void xfrm_dispatch(struct kern *k, const uint8_t *buf, size_t n)
{
	const struct nlmsghdr *nlh = (const struct nlmsghdr *)buf;

	while (n && !k->closing && xfrm_nlmsg_ok(nlh, n)) {
		dispatch_nlmsg(k, nlh);
		nlh = xfrm_nlmsg_next(nlh, &n);
	}
	if (n > 0 && !k->closing) {
		k->stats.malformed++;
		log_warn("dropped %zu bytes of a malformed netlink datagram", n);
	}
}

/*
 * XFRM netlink: requests translated by svc/kernel/xfrm.c, many per sendmsg;
 * replies and events translated back into the messages af_key would have
 * sent. An acknowledged request's reply is NULL (the SA arrives as an own
 * ADD event, as from PF_KEY's broadcast).
 */
static const struct kern_protocol xfrm_protocol = {
	.encode = xfrm_encode_req,
	.send = xfrm_send,
	.dispatch = xfrm_dispatch,
	.encode_max = XFRM_BATCH_MAX,
	.recv_slot = XFRM_SLOT_SIZE,
	.recv_max = XFRM_SLOT_SIZE,
	.long_sends = true,
};

/* A NETLINK_XFRM socket of the real kernel, with or without PF_KEY. */
const struct kern_backend_ops kern_xfrm_ops = {
	.open = xfrm_open,
	.close = xfrm_close,
	.protocol = &xfrm_protocol,
	.pollerr_on_overrun = true,
};

/* Whether socket(domain, SOCK_RAW, proto) works, or fails other than with missing. */
static bool family_available(int domain, int proto, int missing)
{
	int fd = socket(domain, SOCK_RAW | SOCK_CLOEXEC, proto);

	/* Without CAP_NET_ADMIN the family exists all the same (EPERM). */
	if (fd < 0)
		return errno != missing;
	close(fd);
	return true;
}

bool kern_pfkey_available(void)
{
	return family_available(PF_KEY, PF_KEY_V2, EAFNOSUPPORT);
}

bool kern_xfrm_available(void)
{
	return family_available(AF_NETLINK, NETLINK_XFRM, EPROTONOSUPPORT);
}
