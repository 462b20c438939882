/* SPDX-License-Identifier: ISC */
/*
 * LD_PRELOAD shim for the long soak: every clock of the process runs K times
 * faster than real time, and every wait is K times shorter, so 10,000 epochs
 * of 1 s take 10,000 / K seconds of real time.
 *
 *   TIMEWARP_K     the factor, > 0 (e.g. 10; fractions allowed)
 *   TIMEWARP_BASE  "RT MONO RAW BOOT TAI": the real readings (ns) of the five
 *                  clock families at which the faked clocks equal the real
 *                  ones. Unset, the first process sets it from its own
 *                  clocks at load time and its children inherit it, so the
 *                  driver, simd, sakeyd and sactl share one faked clock.
 *
 * A faked reading is  base + (real - base) * K  (the base of the clock's
 * family: REALTIME, _COARSE and _ALARM share one, as do MONOTONIC and
 * _COARSE, and BOOTTIME and _ALARM), so a coarse clock still lags its fine
 * one and differences between clocks of different families are scaled like
 * everything else. Timeouts are divided by K; an absolute deadline on a
 * faked clock is mapped back to the real one; remaining times are
 * multiplied by K.
 *
 * Interposed: clock_gettime, gettimeofday, time, nanosleep, clock_nanosleep,
 * usleep, sleep, poll, ppoll, select, pselect, epoll_wait, epoll_pwait,
 * epoll_pwait2, and setsockopt's SO_RCVTIMEO / SO_SNDTIMEO (sactl's control
 * client). Refused loudly (abort) rather than left unscaled: alarm,
 * setitimer, timer_settime, timerfd_settime. Not covered (use them and the
 * wait is real time): futex, semaphore and condition-variable timeouts
 * (pthread_cond_timedwait: libuv's uv_cond_timedwait, which sakeyd does not
 * use), file timestamps, /proc/uptime, getsockopt of a socket timeout.
 * CPU-time clocks are not scaled.
 *
 * Only exported libc symbols can be interposed: calls that glibc makes to
 * itself (e.g. sleep() -> nanosleep) or straight to the vDSO are not seen,
 * which is why sleep and usleep are wrapped here too.
 * It cannot be combined with AddressSanitizer (ASan must come first in
 * LD_PRELOAD): use it on a build without sanitizers.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define NS 1000000000LL

enum family { F_RT, F_MONO, F_RAW, F_BOOT, F_TAI, F_NONE };

static long double warp = 1.0L; /* K */
static int64_t base[F_NONE];	/* real ns at which fake == real */
static int active, inited;

static int (*real_clock_gettime)(clockid_t, struct timespec *);
static int (*real_clock_nanosleep)(clockid_t, int, const struct timespec *, struct timespec *);
static int (*real_nanosleep)(const struct timespec *, struct timespec *);
static int (*real_ppoll)(struct pollfd *, nfds_t, const struct timespec *, const sigset_t *);
static int (*real_select)(int, fd_set *, fd_set *, fd_set *, struct timeval *);
static int (*real_pselect)(int, fd_set *, fd_set *, fd_set *, const struct timespec *,
			   const sigset_t *);
static int (*real_epoll_pwait)(int, struct epoll_event *, int, int, const sigset_t *);
static int (*real_epoll_pwait2)(int, struct epoll_event *, int, const struct timespec *,
				const sigset_t *);

static enum family family_of(clockid_t c)
{
	switch (c) {
	case CLOCK_REALTIME:
	case CLOCK_REALTIME_COARSE:
	case CLOCK_REALTIME_ALARM:
		return F_RT;
	case CLOCK_MONOTONIC:
	case CLOCK_MONOTONIC_COARSE:
		return F_MONO;
	case CLOCK_MONOTONIC_RAW:
		return F_RAW;
	case CLOCK_BOOTTIME:
	case CLOCK_BOOTTIME_ALARM:
		return F_BOOT;
	case CLOCK_TAI:
		return F_TAI;
	default:
		return F_NONE; /* CPU-time clocks and dynamic (fd) clocks */
	}
}

static const clockid_t family_clock[F_NONE] = {
	CLOCK_REALTIME, CLOCK_MONOTONIC, CLOCK_MONOTONIC_RAW, CLOCK_BOOTTIME, CLOCK_TAI,
};

static int64_t ts_ns(const struct timespec *ts)
{
	return (int64_t)ts->tv_sec * NS + ts->tv_nsec;
}

static struct timespec ns_ts(int64_t ns)
{
	struct timespec ts;

	if (ns < 0)
		ns = 0;
	ts.tv_sec = ns / NS;
	ts.tv_nsec = ns % NS;
	return ts;
}

/* Real duration of a faked one, rounded up: a wait never ends early in faked
 * time. */
static int64_t shrink(int64_t fake_ns)
{
	long double r = (long double)fake_ns / warp;
	int64_t n = (int64_t)r;

	return n < r ? n + 1 : n;
}

static int64_t stretch(int64_t real_ns)
{
	return (int64_t)((long double)real_ns * warp);
}

static void timewarp_init(void);
#define INIT()                           \
	do {                             \
		if (!inited)             \
			timewarp_init(); \
	} while (0)

static void die(const char *what)
{
	char msg[160];
	int n = snprintf(msg, sizeof(msg), "timewarp: %s is not supported under the shim\n", what);

	if (n > 0)
		(void)!write(2, msg, (size_t)n);
	abort();
}

static void *need(const char *name)
{
	void *p = dlsym(RTLD_NEXT, name);

	if (!p) {
		char msg[160];
		int n = snprintf(msg, sizeof(msg), "timewarp: no %s in libc\n", name);

		if (n > 0)
			(void)!write(2, msg, (size_t)n);
		abort();
	}
	return p;
}

/*
 * Runs at load time, but another library's constructor may read a clock
 * first: every wrapper calls it if it has not run yet.
 */
__attribute__((constructor)) static void timewarp_init(void)
{
	const char *k = getenv("TIMEWARP_K"), *b = getenv("TIMEWARP_BASE");
	char text[160];
	int i;

	if (inited)
		return;
	inited = 1;
	real_clock_gettime = need("clock_gettime");
	real_clock_nanosleep = need("clock_nanosleep");
	real_nanosleep = need("nanosleep");
	real_ppoll = need("ppoll");
	real_select = need("select");
	real_pselect = need("pselect");
	real_epoll_pwait = need("epoll_pwait");
	real_epoll_pwait2 = dlsym(RTLD_NEXT, "epoll_pwait2"); /* glibc >= 2.35 */
	if (!k)
		return;
	warp = strtold(k, NULL);
	if (!(warp > 0)) {
		(void)!write(2, "timewarp: bad TIMEWARP_K\n", 25);
		abort();
	}
	if (b) {
		long long v[F_NONE];

		if (sscanf(b, "%lld %lld %lld %lld %lld", &v[0], &v[1], &v[2], &v[3], &v[4]) !=
		    F_NONE) {
			(void)!write(2, "timewarp: bad TIMEWARP_BASE\n", 28);
			abort();
		}
		for (i = 0; i < F_NONE; i++)
			base[i] = v[i];
	} else {
		for (i = 0; i < F_NONE; i++) {
			struct timespec ts = {0};

			real_clock_gettime(family_clock[i], &ts);
			base[i] = ts_ns(&ts);
		}
		snprintf(text, sizeof(text), "%lld %lld %lld %lld %lld", (long long)base[0],
			 (long long)base[1], (long long)base[2], (long long)base[3],
			 (long long)base[4]);
		setenv("TIMEWARP_BASE", text, 1);
	}
	active = 1;
}

/* --- clocks
 * ------------------------------------------------------------------------------
 */

int clock_gettime(clockid_t c, struct timespec *ts)
{
	enum family f = family_of(c);
	int ret;

	INIT();
	ret = real_clock_gettime(c, ts);

	if (ret == 0 && active && f != F_NONE)
		*ts = ns_ts(base[f] + stretch(ts_ns(ts) - base[f]));
	return ret;
}

int gettimeofday(struct timeval *restrict tv, void *restrict tz)
{
	struct timespec ts;

	if (tz)
		memset(tz, 0, sizeof(struct timezone));
	clock_gettime(CLOCK_REALTIME, &ts);
	tv->tv_sec = ts.tv_sec;
	tv->tv_usec = ts.tv_nsec / 1000;
	return 0;
}

/* As glibc's: the coarse clock. */
time_t time(time_t *out)
{
	struct timespec ts = {0};

	clock_gettime(CLOCK_REALTIME_COARSE, &ts);
	if (out)
		*out = ts.tv_sec;
	return ts.tv_sec;
}

/* --- sleeps
 * ------------------------------------------------------------------------------
 */

int nanosleep(const struct timespec *req, struct timespec *rem)
{
	struct timespec r, left = {0};
	int ret;

	INIT();
	if (!active || !req || req->tv_nsec < 0 || req->tv_nsec >= NS)
		return real_nanosleep(req, rem);
	r = ns_ts(shrink(ts_ns(req)));
	ret = real_nanosleep(&r, &left);
	if (ret && rem)
		*rem = ns_ts(stretch(ts_ns(&left)));
	return ret;
}

int clock_nanosleep(clockid_t c, int flags, const struct timespec *req, struct timespec *rem)
{
	enum family f = family_of(c);
	struct timespec r, left = {0};
	int ret;

	INIT();
	if (!active || f == F_NONE || !req || req->tv_nsec < 0 || req->tv_nsec >= NS)
		return real_clock_nanosleep(c, flags, req, rem);
	if (flags & TIMER_ABSTIME) {
		/* The real instant at which this clock reads the faked deadline. */
		r = ns_ts(base[f] + shrink(ts_ns(req) - base[f]));
		return real_clock_nanosleep(c, flags, &r, rem);
	}
	r = ns_ts(shrink(ts_ns(req)));
	ret = real_clock_nanosleep(c, flags, &r, &left);
	if (ret == EINTR && rem)
		*rem = ns_ts(stretch(ts_ns(&left)));
	return ret;
}

int usleep(useconds_t us)
{
	struct timespec ts = ns_ts((int64_t)us * 1000);

	return nanosleep(&ts, NULL);
}

unsigned int sleep(unsigned int s)
{
	struct timespec ts = ns_ts((int64_t)s * NS), rem = {0};

	if (nanosleep(&ts, &rem) == 0)
		return 0;
	return (unsigned int)rem.tv_sec + (rem.tv_nsec > 0);
}

/* --- waits on descriptors
 * ---------------------------------------------------------------- */

int poll(struct pollfd *fds, nfds_t n, int timeout_ms)
{
	struct timespec ts;

	INIT();
	if (!active || timeout_ms < 0)
		return real_ppoll(fds, n, NULL, NULL);
	ts = ns_ts(shrink((int64_t)timeout_ms * 1000000));
	return real_ppoll(fds, n, &ts, NULL);
}

int ppoll(struct pollfd *fds, nfds_t n, const struct timespec *timeout, const sigset_t *mask)
{
	struct timespec ts;

	INIT();
	if (!active || !timeout)
		return real_ppoll(fds, n, timeout, mask);
	ts = ns_ts(shrink(ts_ns(timeout)));
	return real_ppoll(fds, n, &ts, mask);
}

int select(int n, fd_set *r, fd_set *w, fd_set *e, struct timeval *tv)
{
	struct timeval t;
	int64_t ns;
	int ret;

	INIT();
	if (!active || !tv)
		return real_select(n, r, w, e, tv);
	ns = shrink(((int64_t)tv->tv_sec * 1000000 + tv->tv_usec) * 1000);
	/* Round up to whole microseconds: a wait never ends early. */
	ns = (ns + 999) / 1000;
	t.tv_sec = ns / 1000000;
	t.tv_usec = ns % 1000000;
	ret = real_select(n, r, w, e, &t);
	/* Linux writes back the time left; give it back in faked time. */
	ns = stretch(((int64_t)t.tv_sec * 1000000 + t.tv_usec) * 1000) / 1000;
	tv->tv_sec = ns / 1000000;
	tv->tv_usec = ns % 1000000;
	return ret;
}

int pselect(int n, fd_set *r, fd_set *w, fd_set *e, const struct timespec *timeout,
	    const sigset_t *mask)
{
	struct timespec ts;

	INIT();
	if (!active || !timeout)
		return real_pselect(n, r, w, e, timeout, mask);
	ts = ns_ts(shrink(ts_ns(timeout)));
	return real_pselect(n, r, w, e, &ts, mask);
}

int epoll_pwait2(int epfd, struct epoll_event *ev, int max, const struct timespec *timeout,
		 const sigset_t *mask)
{
	struct timespec ts;

	INIT();
	if (!real_epoll_pwait2) {
		errno = ENOSYS;
		return -1;
	}
	if (!active || !timeout)
		return real_epoll_pwait2(epfd, ev, max, timeout, mask);
	ts = ns_ts(shrink(ts_ns(timeout)));
	return real_epoll_pwait2(epfd, ev, max, &ts, mask);
}

/*
 * A timeout in milliseconds divided by K is a fraction of a millisecond:
 * wait with nanosecond precision (epoll_pwait2, Linux >= 5.11) when the kernel
 * has it, else round up to whole milliseconds.
 */
int epoll_pwait(int epfd, struct epoll_event *ev, int max, int timeout_ms, const sigset_t *mask)
{
	static int no_pwait2;
	struct timespec ts;
	int64_t ns;
	int ret;

	INIT();
	if (!active || timeout_ms <= 0)
		return real_epoll_pwait(epfd, ev, max, timeout_ms, mask);
	ns = shrink((int64_t)timeout_ms * 1000000);
	if (real_epoll_pwait2 && !no_pwait2) {
		ts = ns_ts(ns);
		ret = real_epoll_pwait2(epfd, ev, max, &ts, mask);
		if (ret >= 0 || errno != ENOSYS)
			return ret;
		no_pwait2 = 1;
	}
	return real_epoll_pwait(epfd, ev, max, (int)((ns + 999999) / 1000000), mask);
}

int epoll_wait(int epfd, struct epoll_event *ev, int max, int timeout_ms)
{
	return epoll_pwait(epfd, ev, max, timeout_ms, NULL);
}

/* --- socket timeouts ------------------------------------------------------------------- */

int setsockopt(int fd, int level, int name, const void *value, socklen_t len)
{
	static int (*real_setsockopt)(int, int, int, const void *, socklen_t);
	struct timeval tv;
	int64_t us;

	if (!real_setsockopt)
		real_setsockopt = need("setsockopt");
	INIT();
	if (!active || level != SOL_SOCKET || (name != SO_RCVTIMEO && name != SO_SNDTIMEO) ||
	    !value || len != sizeof(tv))
		return real_setsockopt(fd, level, name, value, len);
	memcpy(&tv, value, sizeof(tv));
	us = (int64_t)tv.tv_sec * 1000000 + tv.tv_usec;
	if (us > 0) {
		/* Round up to whole microseconds; 0 would mean "no timeout". */
		us = (shrink(us * 1000) + 999) / 1000;
		tv.tv_sec = us / 1000000;
		tv.tv_usec = us % 1000000;
	}
	return real_setsockopt(fd, level, name, &tv, sizeof(tv));
}

/* --- timers: refused, so that nothing silently runs in real time
 * ------------------------- */

unsigned int alarm(unsigned int s)
{
	INIT();
	if (active && s)
		die("alarm");
	return ((unsigned int (*)(unsigned int))need("alarm"))(s);
}

int setitimer(__itimer_which_t which, const struct itimerval *nv, struct itimerval *old)
{
	INIT();
	if (active && nv && (nv->it_value.tv_sec || nv->it_value.tv_usec))
		die("setitimer");
	return ((int (*)(__itimer_which_t, const struct itimerval *, struct itimerval *))need(
		"setitimer"))(which, nv, old);
}

int timer_settime(timer_t t, int flags, const struct itimerspec *nv, struct itimerspec *old)
{
	INIT();
	if (active && nv && (nv->it_value.tv_sec || nv->it_value.tv_nsec))
		die("timer_settime");
	return ((int (*)(timer_t, int, const struct itimerspec *, struct itimerspec *))need(
		"timer_settime"))(t, flags, nv, old);
}

int timerfd_settime(int fd, int flags, const struct itimerspec *nv, struct itimerspec *old)
{
	INIT();
	if (active && nv && (nv->it_value.tv_sec || nv->it_value.tv_nsec))
		die("timerfd_settime");
	return ((int (*)(int, int, const struct itimerspec *, struct itimerspec *))need(
		"timerfd_settime"))(fd, flags, nv, old);
}
