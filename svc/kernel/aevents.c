/* SPDX-License-Identifier: ISC */
/* XFRM replay/aevent notifications on a socket of their own: first packets on spare SAs. */
#include <errno.h>
#include <linux/netlink.h>
#include <linux/xfrm.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "svc/base/container.h"
#include "svc/base/log.h"
#include "svc/kernel/aevents.h"
#include "svc/kernel/backend.h"

#ifndef NETLINK_CAP_ACK
#define NETLINK_CAP_ACK 10
#endif

/*
 * Receive buffer: a flood from thousands of foreign SAs (one NEWAE of about
 * 150 bytes, 1 KiB of skb, per 2 packets each) should overrun it rarely;
 * an overrun is reported, never silent.
 */
#define AEV_RCVBUF (8 * 1024 * 1024)
/* A datagram holds one NEWAE: 48 fixed bytes, a 4096-bit ring and a few attributes. */
#define AEV_DGRAM_MAX 4096
/* Datagrams read per wake-up, so that a flood cannot hold the loop. */
#define AEV_READ_BATCH 256
/* kern_aevents_quiet requests remembered to name the SPI of a refusal. */
#define AEV_PENDING 32

struct pending_quiet {
	uint32_t seq;
	uint32_t spi;
};

struct kern_aevents {
	uv_poll_t poll;
	int fd;
	uint32_t portid;
	uint32_t seq;
	bool closing;
	kern_aevent_cb cb;
	kern_aevent_lost_cb lost;
	void *arg;
	struct kern_aevents_stats st;
	struct pending_quiet pending[AEV_PENDING];
	_Alignas(8) uint8_t buf[AEV_DGRAM_MAX];
};

static void on_close(uv_handle_t *h)
{
	struct kern_aevents *a = container_of((uv_poll_t *)h, struct kern_aevents, poll);

	close(a->fd);
	free(a);
}

/* The kernel's answer to a kern_aevents_quiet: logged if it failed. */
static void on_ack(struct kern_aevents *a, const struct nlmsghdr *nlh)
{
	const struct nlmsgerr *e = NLMSG_DATA(nlh);
	uint32_t spi = 0;
	bool known = false;

	if (nlh->nlmsg_len < NLMSG_LENGTH(sizeof(*e))) {
		a->st.malformed++;
		return;
	}
	for (unsigned i = 0; i < AEV_PENDING; i++)
		if (a->pending[i].seq == nlh->nlmsg_seq && a->pending[i].seq) {
			spi = a->pending[i].spi;
			known = true;
			a->pending[i].seq = 0;
		}
	if (e->error)
		log_warn("quieting SA 0x%x: %s", known ? spi : 0, strerror(-e->error));
}

static void on_datagram(struct kern_aevents *a, size_t len)
{
	const struct nlmsghdr *nlh = (const struct nlmsghdr *)a->buf;
	size_t left = len;

	while (left && xfrm_nlmsg_ok(nlh, left) && !a->closing) {
		struct kern_aevent ev;
		const char *why = NULL;
		int ret;

		switch (nlh->nlmsg_type) {
		case NLMSG_ERROR:
			on_ack(a, nlh);
			break;
		case XFRM_MSG_NEWAE:
			ret = xfrm_decode_aevent(nlh, &ev, &why);
			if (ret < 0) {
				a->st.malformed++;
				log_warn("malformed XFRM aevent: %s", why);
			} else if (nlh->nlmsg_pid == a->portid) {
				/* xfrm_new_ae notifies our own change with our port id (XFRM_AE_CU). */
				a->st.ignored++;
			} else {
				a->st.received++;
				a->cb(&ev, a->arg);
			}
			break;
		default:
			a->st.ignored++;
			break;
		}
		nlh = xfrm_nlmsg_next(nlh, &left);
	}
	if (left && !a->closing) {
		a->st.malformed++;
		log_warn("XFRM aevent datagram with %zu bytes that are no whole message", left);
	}
}

static void on_readable(uv_poll_t *h, int status, int events)
{
	struct kern_aevents *a = container_of(h, struct kern_aevents, poll);

	(void)events;
	if (status < 0) {
		log_warn("aevents socket: %s", uv_strerror(status));
		return;
	}
	for (unsigned i = 0; i < AEV_READ_BATCH && !a->closing; i++) {
		struct sockaddr_nl from;
		socklen_t fromlen = sizeof(from);
		ssize_t n = recvfrom(a->fd, a->buf, sizeof(a->buf), MSG_TRUNC | MSG_DONTWAIT,
				     (struct sockaddr *)&from, &fromlen);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == ENOBUFS) {
				/* netlink_overrun: notifications were dropped; the socket goes on. */
				a->st.lost++;
				if (a->lost)
					a->lost(a->st.lost, a->arg);
				continue;
			}
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				log_warn("recv on the aevents socket: %s", strerror(errno));
			return;
		}
		if ((size_t)n > sizeof(a->buf)) {
			a->st.malformed++;
			log_warn("XFRM aevent of %zd bytes truncated", n);
			continue;
		}
		/* XFRM's groups take messages from the kernel only; anything else is refused. */
		if (fromlen < sizeof(from) || from.nl_family != AF_NETLINK || from.nl_pid != 0) {
			a->st.ignored++;
			continue;
		}
		on_datagram(a, (size_t)n);
	}
}

int kern_aevents_open(uv_loop_t *loop, kern_aevent_cb cb, kern_aevent_lost_cb lost, void *arg,
		      struct kern_aevents **out)
{
	struct sockaddr_nl sa = { .nl_family = AF_NETLINK };
	socklen_t salen = sizeof(sa);
	struct kern_aevents *a = NULL;
	int one = 1, group = XFRMNLGRP_AEVENTS, ret, fd;

	*out = NULL;
	fd = socket(AF_NETLINK, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, NETLINK_XFRM);
	if (fd < 0) {
		ret = -errno;
		log_err("socket(NETLINK_XFRM): %s", strerror(errno));
		return ret;
	}
	kern_set_rcvbuf(fd, AEV_RCVBUF);
	/* Refusals of kern_aevents_quiet echo only the header. */
	if (setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof(one)))
		log_debug("NETLINK_CAP_ACK: %s", strerror(errno));
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) ||
	    getsockname(fd, (struct sockaddr *)&sa, &salen)) {
		ret = -errno;
		log_err("bind(NETLINK_XFRM): %s", strerror(errno));
		goto fail;
	}
	/* Joining XFRM's groups needs CAP_NET_ADMIN (netlink_bind: no NL_CFG_F_NONROOT_RECV). */
	if (setsockopt(fd, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, &group, sizeof(group))) {
		ret = -errno;
		log_err("joining XFRMNLGRP_AEVENTS: %s%s", strerror(errno),
			errno == EPERM ? " (needs CAP_NET_ADMIN: run sakeyd as root)" : "");
		goto fail;
	}
	a = calloc(1, sizeof(*a));
	if (!a) {
		ret = -ENOMEM;
		goto fail;
	}
	a->fd = fd;
	a->portid = sa.nl_pid;
	a->cb = cb;
	a->lost = lost;
	a->arg = arg;
	ret = uv_poll_init(loop, &a->poll, fd);
	if (ret) {
		log_err("uv_poll_init: %s", uv_strerror(ret));
		free(a);
		goto fail;
	}
	ret = uv_poll_start(&a->poll, UV_READABLE, on_readable);
	if (ret) {
		log_err("uv_poll_start: %s", uv_strerror(ret));
		uv_close((uv_handle_t *)&a->poll, on_close);
		return ret;
	}
	*out = a;
	return 0;
fail:
	close(fd);
	return ret;
}

int kern_aevents_quiet(struct kern_aevents *a, const struct pfkey_addr *dst, uint32_t spi,
		       uint8_t proto)
{
	_Alignas(8) uint8_t req[256];
	uint32_t seq = ++a->seq ? a->seq : ++a->seq;
	ssize_t len = xfrm_encode_aevent_quiet(dst, spi, proto, seq, a->portid, req, sizeof(req));
	struct sockaddr_nl kernel = { .nl_family = AF_NETLINK };

	if (len < 0)
		return (int)len;
	/* The kernel handles the request within sendto; its answer waits on the socket. */
	if (sendto(a->fd, req, (size_t)len, MSG_DONTWAIT, (struct sockaddr *)&kernel,
		   sizeof(kernel)) < 0) {
		int ret = -errno;

		log_warn("quieting SA 0x%x: %s", spi, strerror(errno));
		return ret;
	}
	a->pending[seq % AEV_PENDING] = (struct pending_quiet){ .seq = seq, .spi = spi };
	return 0;
}

void kern_aevents_stats(const struct kern_aevents *a, struct kern_aevents_stats *out)
{
	*out = a->st;
}

void kern_aevents_close(struct kern_aevents *a)
{
	if (!a || a->closing)
		return;
	a->closing = true;
	uv_poll_stop(&a->poll);
	uv_close((uv_handle_t *)&a->poll, on_close);
}
