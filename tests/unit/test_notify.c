/* SPDX-License-Identifier: ISC */
/*
 * Unit tests of svc/daemon/notify.c: datagrams to a path and an abstract socket, what is
 * ignored, the watchdog's variables and its pings from a loop.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>
#include <uv.h>

#include "svc/daemon/notify.h"

/* Binds a datagram socket at name ('@' for abstract) and returns it. */
static int listen_at(const char *name)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	size_t n = strlen(name);
	socklen_t len;
	int fd;

	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	memcpy(sa.sun_path, name, n);
	if (name[0] == '@')
		sa.sun_path[0] = '\0';
	len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + (name[0] == '/'));
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, len), 0);
	return fd;
}

static void expect_datagram(int fd, const char *want)
{
	char buf[256];
	ssize_t n = recv(fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);

	assert_int_equal(n, (ssize_t)strlen(want));
	buf[n] = '\0';
	assert_string_equal(buf, want);
}

static void test_path(void **state)
{
	char dir[] = "/tmp/sakeyd-notify.XXXXXX", path[64];
	int fd;

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/notify", dir);
	fd = listen_at(path);
	setenv("NOTIFY_SOCKET", path, 1);
	assert_int_equal(notify_send("READY=1"), 1);
	expect_datagram(fd, "READY=1");
	assert_int_equal(notify_send("RELOADING=1\nSTATUS=reloading"), 1);
	expect_datagram(fd, "RELOADING=1\nSTATUS=reloading");
	assert_int_equal(notify_send("STOPPING=1"), 1);
	expect_datagram(fd, "STOPPING=1");
	close(fd);

	/* Nobody there any more. */
	assert_int_equal(notify_send("READY=1"), -ECONNREFUSED);
	unlink(path);
	assert_int_equal(notify_send("READY=1"), -ENOENT);
	rmdir(dir);
	unsetenv("NOTIFY_SOCKET");
}

static void test_abstract(void **state)
{
	char name[64];
	int fd;

	snprintf(name, sizeof(name), "@sakeyd-test-notify-%ld", (long)getpid());
	fd = listen_at(name);
	setenv("NOTIFY_SOCKET", name, 1);
	assert_int_equal(notify_send("READY=1"), 1);
	expect_datagram(fd, "READY=1");
	close(fd);
	unsetenv("NOTIFY_SOCKET");
}

static void test_ignored(void **state)
{
	char longname[200];

	unsetenv("NOTIFY_SOCKET");
	assert_int_equal(notify_send("READY=1"), 0);
	setenv("NOTIFY_SOCKET", "", 1);
	assert_int_equal(notify_send("READY=1"), 0);
	setenv("NOTIFY_SOCKET", "relative/path", 1);
	assert_int_equal(notify_send("READY=1"), -EINVAL);
	setenv("NOTIFY_SOCKET", "@", 1);
	assert_int_equal(notify_send("READY=1"), -EINVAL);
	memset(longname, 'x', sizeof(longname) - 1);
	longname[0] = '/';
	longname[sizeof(longname) - 1] = '\0';
	setenv("NOTIFY_SOCKET", longname, 1);
	assert_int_equal(notify_send("READY=1"), -EINVAL);
	/* Exactly sun_path bytes: no room for the NUL of a path. */
	longname[sizeof(((struct sockaddr_un *)0)->sun_path)] = '\0';
	assert_int_equal(setenv("NOTIFY_SOCKET", longname, 1), 0);
	assert_int_equal(notify_send("READY=1"), -ENAMETOOLONG);
	unsetenv("NOTIFY_SOCKET");
}

static void test_watchdog_env(void **state)
{
	char pid[32];
	uint64_t usec = 7;

	unsetenv("WATCHDOG_USEC");
	unsetenv("WATCHDOG_PID");
	assert_int_equal(notify_watchdog_usec(&usec), 0);
	assert_int_equal(usec, 7);

	setenv("WATCHDOG_USEC", "30000000", 1);
	assert_int_equal(notify_watchdog_usec(&usec), 1);
	assert_int_equal(usec, 30000000);
	setenv("WATCHDOG_USEC", "18446744073709551614", 1);
	assert_int_equal(notify_watchdog_usec(&usec), 1);
	assert_true(usec == UINT64_MAX - 1);

	/* Ours, or another process's (a child that inherited the variables). */
	setenv("WATCHDOG_USEC", "200000", 1);
	snprintf(pid, sizeof(pid), "%ld", (long)getpid());
	setenv("WATCHDOG_PID", pid, 1);
	assert_int_equal(notify_watchdog_usec(&usec), 1);
	assert_int_equal(usec, 200000);
	snprintf(pid, sizeof(pid), "%ld", (long)getpid() + 1);
	setenv("WATCHDOG_PID", pid, 1);
	usec = 7;
	assert_int_equal(notify_watchdog_usec(&usec), 0);
	assert_int_equal(usec, 7);
	for (const char **bad = (const char *[]){ "", "x", "-1", "0", "12 ", NULL }; *bad; bad++) {
		setenv("WATCHDOG_PID", *bad, 1);
		assert_int_equal(notify_watchdog_usec(&usec), -EINVAL);
	}
	unsetenv("WATCHDOG_PID");

	for (const char **bad = (const char *[]){ "", "0", "-200000", "+5", " 5", "5s", "0x10",
						  "18446744073709551615",
						  "99999999999999999999999", NULL };
	     *bad; bad++) {
		setenv("WATCHDOG_USEC", *bad, 1);
		assert_int_equal(notify_watchdog_usec(&usec), -EINVAL);
	}
	unsetenv("WATCHDOG_USEC");
}

static void stop_loop(uv_timer_t *t)
{
	uv_stop(t->loop);
}

static void close_all(uv_handle_t *h, void *arg)
{
	if (!uv_is_closing(h))
		uv_close(h, NULL);
}

/* Runs a loop with the watchdog timer for ms milliseconds; returns the datagrams received on fd. */
static int pings_in(int fd, unsigned ms, int *started)
{
	uv_loop_t loop;
	uv_timer_t dog, stop;
	char buf[64];
	int n = 0;
	ssize_t got;

	assert_int_equal(uv_loop_init(&loop), 0);
	uv_timer_init(&loop, &dog);
	uv_timer_init(&loop, &stop);
	*started = notify_watchdog_start(&dog);
	uv_timer_start(&stop, stop_loop, ms, 0);
	uv_run(&loop, UV_RUN_DEFAULT);
	uv_walk(&loop, close_all, NULL);
	uv_run(&loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&loop), 0);
	while ((got = recv(fd, buf, sizeof(buf) - 1, MSG_DONTWAIT)) > 0) {
		buf[got] = '\0';
		assert_string_equal(buf, "WATCHDOG=1");
		n++;
	}
	return n;
}

static void test_watchdog_pings(void **state)
{
	char name[64];
	int fd, started, n;

	snprintf(name, sizeof(name), "@sakeyd-test-watchdog-%ld", (long)getpid());
	fd = listen_at(name);
	setenv("NOTIFY_SOCKET", name, 1);

	/* 20 ms asked: a ping every 10 ms, about 10 in 105 ms (fewer on a busy machine). */
	setenv("WATCHDOG_USEC", "20000", 1);
	n = pings_in(fd, 105, &started);
	assert_int_equal(started, 1);
	assert_true(n >= 3);
	assert_true(n <= 11);

	/* Not asked, or asked of another process: no ping at all. */
	unsetenv("WATCHDOG_USEC");
	n = pings_in(fd, 50, &started);
	assert_int_equal(started, 0);
	assert_int_equal(n, 0);
	setenv("WATCHDOG_USEC", "20000", 1);
	setenv("WATCHDOG_PID", "1", 1);
	n = pings_in(fd, 50, &started);
	assert_int_equal(started, 0);
	assert_int_equal(n, 0);
	setenv("WATCHDOG_PID", "1x", 1);
	n = pings_in(fd, 50, &started);
	assert_int_equal(started, -EINVAL);
	assert_int_equal(n, 0);

	unsetenv("WATCHDOG_PID");
	unsetenv("WATCHDOG_USEC");
	unsetenv("NOTIFY_SOCKET");
	close(fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_path),
		cmocka_unit_test(test_abstract),
		cmocka_unit_test(test_ignored),
		cmocka_unit_test(test_watchdog_env),
		cmocka_unit_test(test_watchdog_pings),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
