/* SPDX-License-Identifier: ISC */
/* The XFRM netlink backend of the kernel channel: the socket. */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/filter.h>
#include <linux/netlink.h>
#include <linux/xfrm.h>
#include <stddef.h>
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

int kern_xfrm_open(const struct kern_opts *opts, int *fd_out, uint32_t *portid)
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
