/* SPDX-License-Identifier: ISC */
/* The XFRM netlink backend of the kernel channel: the socket. */
#include <errno.h>
#include <linux/netlink.h>
#include <linux/xfrm.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "svc/kernel_backend.h"
#include "svc/log.h"
#include "svc/xfrm.h"

#ifndef NETLINK_CAP_ACK
#define NETLINK_CAP_ACK 10
#endif
#ifndef NETLINK_EXT_ACK
#define NETLINK_EXT_ACK 11
#endif

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
