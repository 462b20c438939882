/* SPDX-License-Identifier: ISC */
/* systemd's readiness and watchdog protocol (sd_notify) without libsystemd: datagrams to $NOTIFY_SOCKET. */
#include <errno.h>
#include <inttypes.h>
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

/* A decimal number without sign, spaces or trailing text, at most max: 0, or -EINVAL. */
static int parse_decimal(const char *text, uint64_t max, uint64_t *value)
{
	uint64_t v = 0;

	if (!text[0])
		return -EINVAL;
	for (const char *c = text; *c; c++) {
		if (*c < '0' || *c > '9' || v > (max - (uint64_t)(*c - '0')) / 10)
			return -EINVAL;
		v = v * 10 + (uint64_t)(*c - '0');
	}
	*value = v;
	return 0;
}

int notify_watchdog_usec(uint64_t *usec)
{
	const char *text = getenv("WATCHDOG_USEC"), *pid_text = getenv("WATCHDOG_PID");
	uint64_t v, pid;

	if (!text)
		return 0;
	/* systemd's own limit (sd-daemon.c: sd_watchdog_enabled): USEC_INFINITY is not a period. */
	if (parse_decimal(text, UINT64_MAX - 1, &v) || v == 0) {
		log_warn("WATCHDOG_USEC=%s is not a positive number of microseconds; no watchdog "
			 "pings are sent (check WatchdogSec= in the unit)", text);
		return -EINVAL;
	}
	if (pid_text) {
		if (parse_decimal(pid_text, INT32_MAX, &pid) || pid == 0) {
			log_warn("WATCHDOG_PID=%s is not a process id; no watchdog pings are sent",
				 pid_text);
			return -EINVAL;
		}
		if (pid != (uint64_t)getpid()) {
			log_debug("WATCHDOG_PID=%s is not us (%ld): the watchdog is another "
				  "process's", pid_text, (long)getpid());
			return 0;
		}
	}
	*usec = v;
	return 1;
}

static void watchdog_cb(uv_timer_t *t)
{
	notify_send("WATCHDOG=1");
}

int notify_watchdog_start(uv_timer_t *timer)
{
	uint64_t usec, every_ms;
	int ret = notify_watchdog_usec(&usec);

	if (ret <= 0)
		return ret;
	/* Half the interval, as sd_watchdog_enabled(3) advises; libuv counts milliseconds. */
	every_ms = usec / 2000;
	if (every_ms == 0)
		every_ms = 1;
	uv_timer_start(timer, watchdog_cb, every_ms, every_ms);
	log_info("watchdog: WATCHDOG=1 every %" PRIu64 " ms (WATCHDOG_USEC=%" PRIu64 ")",
		 every_ms, usec);
	return 1;
}
