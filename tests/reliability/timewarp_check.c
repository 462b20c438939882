/* SPDX-License-Identifier: ISC */
/*
 * Checks the timewarp shim (timewarp.c) from inside a process it is loaded
 * into, the way the long soak uses it: every clock reads base + (real - base)
 * * K, every wait of D (faked) ends no earlier than D on the faked clock and
 * takes less than D of real time, libuv's loop time and timers follow, and a
 * child process (python3, as the soak's driver) shares the same faked clock.
 *
 *   LD_PRELOAD=timewarp.so TIMEWARP_K=50 timewarp_check PYTHON3
 *
 * Real time is read with the clock_gettime system call, which the shim does
 * not see. The clock checks are exact (a faked reading must lie between the
 * mapped real readings taken just before and just after it). The wait
 * checks bound real time only by the unscaled duration: at K = 50 a 2 s
 * wait is expected to take 40 ms and fails only past 2 s.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#define NS 1000000000LL
#define WAIT_MS 2000

static int failures, passes;
static long double warp;
static int64_t base[5]; /* RT MONO RAW BOOT TAI, as the shim's TIMEWARP_BASE */

static void check(int cond, const char *what)
{
	printf("%s %s\n", cond ? "ok  " : "FAIL", what);
	if (cond)
		passes++;
	else
		failures++;
}

static int64_t real_ns(clockid_t c)
{
	struct timespec ts;

	if (syscall(SYS_clock_gettime, c, &ts))
		abort();
	return (int64_t)ts.tv_sec * NS + ts.tv_nsec;
}

static int64_t fake_ns(clockid_t c)
{
	struct timespec ts;

	if (clock_gettime(c, &ts))
		abort();
	return (int64_t)ts.tv_sec * NS + ts.tv_nsec;
}

static int64_t mapped(int64_t b, int64_t real)
{
	return b + (int64_t)((long double)(real - b) * warp);
}

static void check_clock(const char *name, clockid_t c, int family)
{
	char what[160];
	int64_t before = real_ns(c), fake = fake_ns(c), after = real_ns(c);
	int64_t lo = mapped(base[family], before), hi = mapped(base[family], after);

	/* +-1 ns: the shim truncates its product */
	snprintf(what, sizeof(what), "%s: faked reading in [%lld, %lld] ns (got %lld)", name,
		 (long long)lo, (long long)hi, (long long)fake);
	check(lo - 1 <= fake && fake <= hi + 1, what);
}

/* A wait of WAIT_MS faked: at least WAIT_MS on the faked clock, less than
 * WAIT_MS real. */
struct timing {
	int64_t fake0, real0;
};

static struct timing start(void)
{
	struct timing t = {fake_ns(CLOCK_MONOTONIC), real_ns(CLOCK_MONOTONIC)};

	return t;
}

static void waited(const char *name, struct timing t, int ret, int want)
{
	char what[200];
	int64_t fake = fake_ns(CLOCK_MONOTONIC) - t.fake0,
		real = real_ns(CLOCK_MONOTONIC) - t.real0;

	snprintf(what, sizeof(what),
		 "%s(%d ms): returned %d (want %d), %.1f ms faked >= %d, %.1f ms "
		 "real < %d",
		 name, WAIT_MS, ret, want, fake / 1e6, WAIT_MS, real / 1e6, WAIT_MS);
	check(ret == want && fake >= (int64_t)WAIT_MS * 1000000 &&
		      real < (int64_t)WAIT_MS * 1000000,
	      what);
}

static void timer_cb(uv_timer_t *t)
{
	*(uint64_t *)t->data = uv_now(t->loop);
}

static void check_libuv(void)
{
	uv_loop_t loop;
	uv_timer_t timer;
	uint64_t fired = 0, now0, hr0;
	struct timing t;
	char what[200];
	int64_t real;

	uv_loop_init(&loop);
	uv_update_time(&loop);
	now0 = uv_now(&loop);
	hr0 = uv_hrtime();
	t = start();
	uv_timer_init(&loop, &timer);
	timer.data = &fired;
	uv_timer_start(&timer, timer_cb, WAIT_MS, 0);
	uv_run(&loop, UV_RUN_DEFAULT);
	real = real_ns(CLOCK_MONOTONIC) - t.real0;
	snprintf(what, sizeof(what),
		 "libuv timer of %d ms: fired at uv_now + %llu ms, uv_hrtime + %.1f ms, "
		 "%.1f ms real < %d",
		 WAIT_MS, (unsigned long long)(fired - now0), (uv_hrtime() - hr0) / 1e6, real / 1e6,
		 WAIT_MS);
	check(fired && fired - now0 >= WAIT_MS && uv_hrtime() - hr0 >= WAIT_MS * 1000000ULL &&
		      real < (int64_t)WAIT_MS * 1000000,
	      what);
	uv_close((uv_handle_t *)&timer, NULL);
	uv_run(&loop, UV_RUN_DEFAULT);
	check(uv_loop_close(&loop) == 0, "libuv loop closed");
}

/* The child prints its faked CLOCK_REALTIME before and after sleeping 2 s +
 * selecting 2 s. */
static void check_child(const char *python)
{
	const char *code = "import time, select\n"
			   "t0 = time.time_ns()\n"
			   "time.sleep(2)\n"
			   "select.select([], [], [], 2)\n"
			   "print(t0, time.time_ns())\n";
	int fds[2], status;
	char out[128] = {0}, what[512];
	long long c0 = 0, c1 = 0;
	int64_t before, after, real0, real;
	pid_t pid;
	ssize_t n;

	if (pipe(fds))
		abort();
	before = fake_ns(CLOCK_REALTIME);
	real0 = real_ns(CLOCK_MONOTONIC);
	pid = fork();
	if (pid == 0) {
		dup2(fds[1], 1);
		execl(python, python, "-c", code, (char *)NULL);
		_exit(127);
	}
	close(fds[1]);
	/*
	 * Until EOF: one read() may return part of the line (a CI run got the
	 * first timestamp without the second).
	 */
	n = 0;
	while (n < (ssize_t)sizeof(out) - 1) {
		ssize_t got = read(fds[0], out + n, sizeof(out) - 1 - (size_t)n);

		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0)
			break;
		n += got;
	}
	close(fds[0]);
	waitpid(pid, &status, 0);
	after = fake_ns(CLOCK_REALTIME);
	real = real_ns(CLOCK_MONOTONIC) - real0;
	if (n > 0)
		sscanf(out, "%lld %lld", &c0, &c1);
	snprintf(what, sizeof(what),
		 "python3 child shares the faked clock: %lld <= %lld, %lld <= %lld; "
		 "slept %.1f s "
		 "faked >= 4, %.2f s real < 4 (exit status %#x, output \"%.*s\")",
		 (long long)before, c0, c1, (long long)after, (c1 - c0) / 1e9, real / 1e9, status,
		 (int)strcspn(out, "\n"), out);
	check(WIFEXITED(status) && WEXITSTATUS(status) == 0 && before <= c0 && c1 <= after &&
		      c1 - c0 >= 4 * NS && real < 4 * NS,
	      what);
}

int main(int argc, char **argv)
{
	const char *k = getenv("TIMEWARP_K"), *b = getenv("TIMEWARP_BASE");
	struct timespec ts, abs_ts;
	struct timeval tv, tv0;
	struct pollfd pfd;
	int ep, ret;
	struct epoll_event ev;
	struct timing t;
	long long v[5];

	if (argc != 2) {
		fprintf(stderr, "usage: LD_PRELOAD=timewarp.so TIMEWARP_K=K %s PYTHON3\n", argv[0]);
		return 2;
	}
	/* The shim sets TIMEWARP_BASE when it loads: its absence means it is not
	 * loaded. */
	check(k && b, "the shim is loaded (TIMEWARP_K given, TIMEWARP_BASE set by the shim)");
	if (!k || !b ||
	    sscanf(b, "%lld %lld %lld %lld %lld", &v[0], &v[1], &v[2], &v[3], &v[4]) != 5)
		goto out;
	warp = strtold(k, NULL);
	for (int i = 0; i < 5; i++)
		base[i] = v[i];
	/* Let real time pass so that faked and real readings differ by far more than
	 * a tick. */
	usleep(200000);

	check_clock("CLOCK_REALTIME", CLOCK_REALTIME, 0);
	check_clock("CLOCK_REALTIME_COARSE", CLOCK_REALTIME_COARSE, 0);
	check_clock("CLOCK_MONOTONIC", CLOCK_MONOTONIC, 1);
	check_clock("CLOCK_MONOTONIC_COARSE", CLOCK_MONOTONIC_COARSE, 1);
	check_clock("CLOCK_MONOTONIC_RAW", CLOCK_MONOTONIC_RAW, 2);
	check_clock("CLOCK_BOOTTIME", CLOCK_BOOTTIME, 3);
	check_clock("CLOCK_TAI", CLOCK_TAI, 4);
	{
		int64_t lo = mapped(base[0], real_ns(CLOCK_REALTIME)) / 1000;
		int64_t lo_s = mapped(base[0], real_ns(CLOCK_REALTIME_COARSE)) / NS, hi_s;
		int64_t us, hi;
		time_t s;

		gettimeofday(&tv, NULL);
		s = time(NULL);
		hi = mapped(base[0], real_ns(CLOCK_REALTIME)) / 1000;
		hi_s = mapped(base[0], real_ns(CLOCK_REALTIME_COARSE)) / NS;
		us = (int64_t)tv.tv_sec * 1000000 + tv.tv_usec;
		check(lo <= us && us <= hi + 1, "gettimeofday follows the faked CLOCK_REALTIME");
		check(lo_s <= s && s <= hi_s, "time() follows the faked CLOCK_REALTIME_COARSE");
	}

	ts.tv_sec = WAIT_MS / 1000;
	ts.tv_nsec = (WAIT_MS % 1000) * 1000000L;
	t = start();
	waited("nanosleep", t, nanosleep(&ts, NULL), 0);
	t = start();
	waited("clock_nanosleep MONOTONIC relative", t,
	       clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, NULL), 0);
	clock_gettime(CLOCK_MONOTONIC, &abs_ts);
	abs_ts.tv_sec += WAIT_MS / 1000;
	t = start();
	waited("clock_nanosleep MONOTONIC absolute", t,
	       clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &abs_ts, NULL), 0);
	clock_gettime(CLOCK_REALTIME, &abs_ts);
	abs_ts.tv_sec += WAIT_MS / 1000;
	t = start();
	waited("clock_nanosleep REALTIME absolute", t,
	       clock_nanosleep(CLOCK_REALTIME, TIMER_ABSTIME, &abs_ts, NULL), 0);
	t = start();
	waited("usleep", t, usleep(WAIT_MS * 1000), 0);
	t = start();
	waited("sleep", t, (int)sleep(WAIT_MS / 1000), 0);
	t = start();
	waited("poll", t, poll(NULL, 0, WAIT_MS), 0);
	t = start();
	waited("ppoll", t, ppoll(NULL, 0, &ts, NULL), 0);
	tv0.tv_sec = WAIT_MS / 1000;
	tv0.tv_usec = (WAIT_MS % 1000) * 1000;
	tv = tv0;
	t = start();
	waited("select", t, select(0, NULL, NULL, NULL, &tv), 0);
	t = start();
	waited("pselect", t, pselect(0, NULL, NULL, NULL, &ts, NULL), 0);

	/* A pipe that never becomes readable: the waits time out. */
	{
		int p[2];

		if (pipe(p))
			abort();
		ep = epoll_create1(0);
		memset(&ev, 0, sizeof(ev));
		ev.events = EPOLLIN;
		epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev);
		t = start();
		waited("epoll_wait", t, epoll_wait(ep, &ev, 1, WAIT_MS), 0);
		t = start();
		waited("epoll_pwait", t, epoll_pwait(ep, &ev, 1, WAIT_MS, NULL), 0);
		t = start();
		ret = epoll_pwait2(ep, &ev, 1, &ts, NULL);
		if (ret < 0 && errno == ENOSYS)
			printf("skip epoll_pwait2: not in this kernel\n");
		else
			waited("epoll_pwait2", t, ret, 0);
		pfd.fd = p[0];
		pfd.events = POLLIN;
		t = start();
		waited("poll on a descriptor", t, poll(&pfd, 1, WAIT_MS), 0);
		close(ep);
		close(p[0]);
		close(p[1]);
	}
	/* sactl's control client: a receive timeout on a socket nobody writes to. */
	{
		int sv[2];
		char byte;

		if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv))
			abort();
		tv = tv0;
		check(setsockopt(sv[0], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) == 0,
		      "setsockopt SO_RCVTIMEO");
		t = start();
		ret = (int)recv(sv[0], &byte, 1, 0);
		waited("recv with SO_RCVTIMEO", t, ret < 0 && errno == EAGAIN ? 0 : 1, 0);
		close(sv[0]);
		close(sv[1]);
	}

	check_libuv();
	check_child(argv[1]);
out:
	printf("%d passed, %d failed\n", passes, failures);
	return failures ? 1 : 0;
}
