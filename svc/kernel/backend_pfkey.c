/* SPDX-License-Identifier: ISC */
/* The PF_KEY socket backend of the kernel channel. */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "svc/kernel/backend.h"
#include "svc/base/log.h"

/*
 * SADB_REGISTER for ESP, synchronously at open: only registered sockets get
 * EXPIRE and ACQUIRE (af_key.c: pfkey_broadcast, BROADCAST_REGISTERED), and
 * satype UNSPEC would not register (af_key.c: pfkey_register).
 */
int kern_pfkey_register(int fd)
{
	struct pfkey_msg m;
	uint8_t buf[16];
	ssize_t n;

	pfkey_msg_init(&m, SADB_REGISTER, SADB_SATYPE_ESP, 1, (uint32_t)getpid());
	if (pfkey_encode(&m, buf, sizeof(buf)) != (ssize_t)sizeof(buf))
		return -EINVAL;
	n = send(fd, buf, sizeof(buf), 0);
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

int kern_pfkey_open(const struct kern_opts *opts, int *fd_out)
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
	ret = opts->dumps_only ? 0 : kern_pfkey_register(fd);
	if (ret) {
		log_err("SADB_REGISTER: %s", strerror(-ret));
		close(fd);
		return ret;
	}
	*fd_out = fd;
	return 0;
}
