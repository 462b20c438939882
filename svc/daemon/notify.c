/* SPDX-License-Identifier: ISC */
/* systemd's readiness protocol (sd_notify) without libsystemd: one datagram to $NOTIFY_SOCKET. */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "svc/base/log.h"
#include "svc/daemon/notify.h"

int notify_send(const char *state)
{
	const char *where = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	size_t n, state_len = strlen(state);
	socklen_t salen;
	ssize_t sent;
	int fd, ret;

	if (!where || !where[0])
		return 0;
	n = strlen(where);
	/* sd_notify(3): an absolute path, or '@' for the abstract namespace. */
	if ((where[0] != '/' && where[0] != '@') || n < 2 || n > sizeof(sa.sun_path)) {
		log_debug("NOTIFY_SOCKET=%s is not a socket path or abstract name; ignored", where);
		return -EINVAL;
	}
	if (where[0] == '/' && n == sizeof(sa.sun_path)) {
		log_debug("NOTIFY_SOCKET=%s is too long", where);
		return -ENAMETOOLONG;
	}
	memcpy(sa.sun_path, where, n);
	if (where[0] == '@')
		sa.sun_path[0] = '\0'; /* the abstract name is exactly n bytes, no NUL */
	salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + (where[0] == '/'));

	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		ret = -errno;
		log_debug("socket: %s", strerror(errno));
		return ret;
	}
	do
		sent = sendto(fd, state, state_len, MSG_NOSIGNAL, (struct sockaddr *)&sa, salen);
	while (sent < 0 && errno == EINTR);
	ret = sent < 0 ? -errno : 1;
	if (sent < 0)
		log_debug("%s to NOTIFY_SOCKET=%s: %s", state, where, strerror(errno));
	close(fd);
	return ret;
}
