/* SPDX-License-Identifier: ISC */
/*
 * XFRM replay/aevent notifications and replay-state restore on the real
 * kernel, with real ESP between two network namespaces (a 192.0.2.1 and
 * b 192.0.2.2, joined by veth). Runs as root inside User-Mode Linux
 * (uml-run.sh).
 *
 *   ktest_aevents [OUTDIR]
 *
 * aevents: inbound SAs in b added with x_aevents = FIRST and QUIET through
 * svc/kernel/xfrm.c, one packet at a time: exactly the FIRST one notifies
 * svc/kernel/aevents.c, on its first packet; none at ADD; after
 * kern_aevents_quiet, no more. An SA added by `ip xfrm` (the sysctls'
 * thresholds) notifies: the socket does hear what QUIET silences.
 * restore-*: an inbound SA's replay state read from a dump after N packets,
 * the SA deleted and added again with it (x_has_replay), the N ESP frames
 * captured on va sent again on the wire: none is accepted, newer packets
 * are; without the restored state the same frames are all accepted again
 * (the control). For the ESN, BMP and legacy replay modes.
 * With OUTDIR, the first NEWAE and a NEWSA dump entry with its replay state
 * are written there as they came from the kernel (fixtures, fuzz corpus).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <linux/netlink.h>
#include <linux/xfrm.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "svc/kernel/aevents.h"
#include "svc/kernel/pfkey.h"
#include "svc/kernel/xfrm.h"

#define ADDR_A "192.0.2.1"
#define ADDR_B "192.0.2.2"
#define MAX_EV 4096
#define MAX_FRAMES 64

static char failure[512];
static const char *outdir;

#define FAIL(...)                                                                   \
	do {                                                                        \
		snprintf(failure, sizeof(failure), __VA_ARGS__);                    \
		goto out;                                                           \
	} while (0)
#define CHECK(cond, fmt, ...)                                                       \
	do {                                                                        \
		if (!(cond))                                                        \
			FAIL("line %d: %s: " fmt, __LINE__, #cond, ##__VA_ARGS__);  \
	} while (0)

struct rec {
	uint32_t spi, flags, seq, window;
	bool has_replay;
	double at;
};

static uv_loop_t loop;
static uv_timer_t timer;
static struct kern_aevents *aev;
static struct rec evs[MAX_EV];
static size_t nev;
static unsigned long overruns;
static int nl_a = -1, nl_b = -1, udp_tx = -1, cap = -1, raw_aev = -1;
static int ns_a = -1, ns_b = -1;
static uint32_t nl_seq = 100;
static _Alignas(8) uint8_t nlbuf[65536];

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int sh(const char *fmt, ...)
{
	char cmd[1024];
	va_list ap;
	int ret;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	ret = system(cmd);
	if (ret)
		fprintf(stderr, "ktest_aevents: '%s' exited %d\n", cmd, ret);
	return ret;
}

static void on_aevent(const struct kern_aevent *ev, void *arg)
{
	(void)arg;
	if (nev < MAX_EV)
		evs[nev++] = (struct rec){ .spi = ev->spi,
					   .flags = ev->flags,
					   .seq = ev->replay.seq,
					   .window = ev->replay.window,
					   .has_replay = ev->has_replay,
					   .at = now() };
}

static void on_lost(unsigned long count, void *arg)
{
	(void)arg;
	overruns = count;
}

static void stop_cb(uv_timer_t *t)
{
	uv_stop(t->loop);
}

/* Run the loop for ms milliseconds. */
static void pump(unsigned ms)
{
	uv_timer_start(&timer, stop_cb, ms, 0);
	uv_run(&loop, UV_RUN_DEFAULT);
	uv_timer_stop(&timer);
}

static unsigned events_of(uint32_t spi)
{
	unsigned n = 0;

	for (size_t i = 0; i < nev; i++)
		n += evs[i].spi == spi;
	return n;
}

/* Pump until spi has more than `had` events or ms pass; the time it took, or -1. */
static double wait_event(uint32_t spi, unsigned had, unsigned ms)
{
	double start = now();

	while (now() - start < ms / 1000.0) {
		pump(2);
		if (events_of(spi) > had)
			return now() - start;
	}
	return -1;
}

/* --- netlink requests through the codec under test ---------------------------- */

/* Send m (encoded by xfrm_encode) on fd and wait for its acknowledgement: 0 or -errno. */
static int nl_request(int fd, const struct pfkey_msg *m)
{
	ssize_t len = xfrm_encode(m, ++nl_seq, 0, 0, nlbuf, sizeof(nlbuf));
	struct pollfd p = { .fd = fd, .events = POLLIN };

	if (len < 0)
		return (int)len;
	if (send(fd, nlbuf, (size_t)len, 0) < 0)
		return -errno;
	pfkey_cleanse(nlbuf, (size_t)len);
	while (poll(&p, 1, 2000) == 1) {
		ssize_t n = recv(fd, nlbuf, sizeof(nlbuf), 0);
		const struct nlmsghdr *nlh = (const void *)nlbuf;
		size_t left = n > 0 ? (size_t)n : 0;

		for (; left && xfrm_nlmsg_ok(nlh, left); nlh = xfrm_nlmsg_next(nlh, &left))
			if (nlh->nlmsg_type == NLMSG_ERROR && nlh->nlmsg_seq == nl_seq)
				return ((const struct nlmsgerr *)NLMSG_DATA(nlh))->error;
	}
	return -ETIMEDOUT;
}

/*
 * Dump the SAs of fd's namespace and copy the replay state of spi into *r.
 * With save, the dump part holding it goes to OUTDIR/name. 0, or -ESRCH.
 */
static int dump_replay(int fd, uint32_t spi, struct kern_replay *r, const char *save)
{
	struct pfkey_msg m;
	struct pollfd p = { .fd = fd, .events = POLLIN };
	ssize_t len;
	int found = -ESRCH;

	pfkey_msg_init(&m, SADB_DUMP, SADB_SATYPE_ESP, 0, 0);
	len = xfrm_encode(&m, ++nl_seq, 0, 0, nlbuf, sizeof(nlbuf));
	if (len < 0 || send(fd, nlbuf, (size_t)len, 0) < 0)
		return -EIO;
	while (poll(&p, 1, 2000) == 1) {
		ssize_t n = recv(fd, nlbuf, sizeof(nlbuf), 0);
		const struct nlmsghdr *nlh = (const void *)nlbuf;
		size_t left = n > 0 ? (size_t)n : 0;

		for (; left && xfrm_nlmsg_ok(nlh, left); nlh = xfrm_nlmsg_next(nlh, &left)) {
			struct pfkey_msg d;
			const char *why = NULL;

			if (nlh->nlmsg_type == NLMSG_DONE || nlh->nlmsg_type == NLMSG_ERROR)
				return found;
			if (xfrm_decode(nlh, &d, &why) < 0) {
				fprintf(stderr, "dump: %s\n", why);
				return -EINVAL;
			}
			if (d.spi == spi && d.x_has_replay) {
				*r = d.x_replay;
				found = 0;
				if (save && outdir) {
					char path[512];
					FILE *f;

					snprintf(path, sizeof(path), "%s/%s", outdir, save);
					f = fopen(path, "wb");
					if (f) {
						fwrite(nlh, 1, nlh->nlmsg_len, f);
						fclose(f);
					}
				}
			}
			pfkey_cleanse(&d, sizeof(d));
		}
		pfkey_cleanse(nlbuf, sizeof(nlbuf));
	}
	return -ETIMEDOUT;
}

/* GCM-128 keying material (20 bytes) of an SPI: a test pattern, no secret. */
static void keymat(uint32_t spi, uint8_t key[20])
{
	for (unsigned i = 0; i < 20; i++)
		key[i] = (uint8_t)(spi * 7 + i * 13);
}

enum replay_mode { MODE_ESN, MODE_BMP, MODE_LEGACY };

static const char *mode_name(enum replay_mode mode)
{
	return mode == MODE_ESN ? "esn" : mode == MODE_BMP ? "bmp" : "legacy";
}

/* An SA a -> b, transport, AES-GCM-128, in one of the replay modes. */
static void sa_msg(struct pfkey_msg *m, uint8_t type, uint32_t spi, uint32_t reqid,
		   enum replay_mode mode, const uint8_t *key)
{
	struct pfkey_addr src, dst;

	pfkey_addr_from_string(&src, ADDR_A);
	pfkey_addr_from_string(&dst, ADDR_B);
	pfkey_msg_init(m, type, SADB_SATYPE_ESP, 0, 0);
	pfkey_set_sa(m, spi, mode == MODE_LEGACY ? 32 : 255, SADB_AALG_NONE,
		     SADB_X_EALG_AES_GCM_ICV16);
	pfkey_set_addr(m, SADB_EXT_ADDRESS_SRC, &src);
	pfkey_set_addr(m, SADB_EXT_ADDRESS_DST, &dst);
	if (key)
		pfkey_set_key(m, SADB_EXT_KEY_ENCRYPT, key, 160);
	pfkey_set_sa2(m, IPSEC_MODE_TRANSPORT, reqid);
	m->x_icv_bits = 128;
	m->x_esn = mode == MODE_ESN;
	m->x_replay_window = mode == MODE_ESN ? 128 : mode == MODE_BMP ? 64 : 0;
}

/* The outbound SA in a, the inbound one in b (with its aevents and replay state). */
static int add_pair(uint32_t spi, uint32_t reqid, enum replay_mode mode, uint8_t aevents)
{
	struct pfkey_msg m;
	uint8_t key[20];
	int ret;

	keymat(spi, key);
	sa_msg(&m, SADB_ADD, spi, reqid, mode, key);
	ret = nl_request(nl_a, &m);
	if (ret)
		return ret;
	m.x_aevents = aevents;
	return nl_request(nl_b, &m);
}

static int add_inbound(uint32_t spi, uint32_t reqid, enum replay_mode mode,
		       const struct kern_replay *replay)
{
	struct pfkey_msg m;
	uint8_t key[20];

	keymat(spi, key);
	sa_msg(&m, SADB_ADD, spi, reqid, mode, key);
	if (replay) {
		m.x_has_replay = true;
		m.x_replay = *replay;
	}
	return nl_request(nl_b, &m);
}

static int del_inbound(uint32_t spi, enum replay_mode mode)
{
	struct pfkey_msg m;

	sa_msg(&m, SADB_DELETE, spi, 0, mode, NULL);
	return nl_request(nl_b, &m);
}

/* a's policy: UDP to ADDR_B:port goes through the SA of reqid. */
static int policy(uint16_t port, uint32_t reqid)
{
	return sh("ip -n a xfrm policy add src %s dst %s proto udp dport %u dir out tmpl src %s "
		  "dst %s proto esp reqid %u mode transport level required",
		  ADDR_A, ADDR_B, port, ADDR_A, ADDR_B, reqid);
}

/* --- traffic -------------------------------------------------------------------- */

static int rx_socket(uint16_t port)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(port) };
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	inet_pton(AF_INET, ADDR_B, &sin.sin_addr);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sin, sizeof(sin))) {
		perror("rx bind");
		return -1;
	}
	return fd;
}

static int send_udp(uint16_t port, unsigned n)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(port) };

	inet_pton(AF_INET, ADDR_B, &sin.sin_addr);
	for (unsigned i = 0; i < n; i++) {
		char msg[64];
		int len = snprintf(msg, sizeof(msg), "datagram %u to %u", i, port);

		if (sendto(udp_tx, msg, (size_t)len, 0, (struct sockaddr *)&sin, sizeof(sin)) < 0)
			return -errno;
	}
	return 0;
}

/*
 * Datagrams that reached rx: pumps the loop until `want` have come or max_ms
 * passed (a liveness bound: a loaded guest delivers late, never early), then a
 * further 50 ms to see any beyond want.
 */
static unsigned received(int rx, unsigned want, unsigned max_ms)
{
	double end = now() + max_ms / 1000.0;
	unsigned n = 0;
	char msg[256];

	for (;;) {
		while (recv(rx, msg, sizeof(msg), 0) > 0)
			n++;
		if (n >= want || now() >= end)
			break;
		pump(20);
	}
	pump(50);
	while (recv(rx, msg, sizeof(msg), 0) > 0)
		n++;
	return n;
}

/* A counter of b's /proc/net/xfrm_stat (this process is in b). */
static long xfrm_stat(const char *name);

/* Pump until b's counter name has risen to at least target, or max_ms pass. */
static long wait_stat(const char *name, long target, unsigned max_ms)
{
	double end = now() + max_ms / 1000.0;
	long v;

	while ((v = xfrm_stat(name)) < target && now() < end)
		pump(20);
	return v;
}

/* A counter of b's /proc/net/xfrm_stat (this process is in b). */
static long xfrm_stat(const char *name)
{
	FILE *f = fopen("/proc/self/net/xfrm_stat", "r");
	char key[64];
	long v, found = -1;

	if (!f)
		return -1;
	while (fscanf(f, "%63s %ld", key, &v) == 2)
		if (!strcmp(key, name))
			found = v;
	fclose(f);
	return found;
}

struct frame {
	size_t len;
	uint8_t data[2048];
};

/* ESP frames of spi that a sent on va since the last call (cap is in a). */
static unsigned capture(uint32_t spi, struct frame *frames, unsigned max)
{
	unsigned n = 0;
	struct frame f;
	ssize_t len;

	while ((len = recv(cap, f.data, sizeof(f.data), MSG_DONTWAIT)) > 0) {
		const uint8_t *ip = f.data + ETH_HLEN;
		size_t ihl;
		uint32_t esp_spi;

		if ((size_t)len < ETH_HLEN + 28 || f.data[12] != 0x08 || f.data[13] != 0x00)
			continue;
		ihl = (ip[0] & 15u) * 4;
		if (ip[9] != IPPROTO_ESP || (size_t)len < ETH_HLEN + ihl + 8)
			continue;
		memcpy(&esp_spi, ip + ihl, 4);
		if (ntohl(esp_spi) != spi || n >= max)
			continue;
		f.len = (size_t)len;
		frames[n++] = f;
	}
	return n;
}

static int inject(const struct frame *frames, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		if (send(cap, frames[i].data, frames[i].len, 0) < 0)
			return -errno;
	return 0;
}

/* --- the tests ------------------------------------------------------------------ */

static int test_aevents(void)
{
	const uint32_t first = 0x2a0101, quiet = 0x2a0102, foreign = 0x2a0106;
	int rx1 = rx_socket(1001), rx2 = rx_socket(1002), rx6 = rx_socket(1006);
	struct kern_aevents_stats st;
	struct pfkey_addr dst;
	uint8_t key[20];
	char hex[41];
	double took;
	unsigned n;
	int ret = -1;

	CHECK(rx1 >= 0 && rx2 >= 0 && rx6 >= 0, "UDP sockets in b");
	CHECK(!policy(1001, 1) && !policy(1002, 2) && !policy(1006, 6), "policies in a");
	/* Listening already: an ADD itself must not notify. */
	CHECK(!add_pair(first, 1, MODE_ESN, KERN_AEV_FIRST), "FIRST SA pair");
	CHECK(!add_pair(quiet, 2, MODE_ESN, KERN_AEV_QUIET), "QUIET SA pair");
	pump(300);
	CHECK(nev == 0, "%zu aevents after the ADDs, before any packet", nev);

	/* The QUIET SA carries a packet: no event. */
	CHECK(!send_udp(1002, 1), "send");
	n = received(rx2, 1, 20000);
	CHECK(n == 1, "QUIET SA delivered %u of 1", n);
	CHECK(events_of(quiet) == 0, "QUIET SA notified %u times", events_of(quiet));

	/* The FIRST SA: one packet, then wait for its event. */
	CHECK(!send_udp(1001, 1), "send");
	took = wait_event(first, 0, 2000);
	CHECK(took >= 0, "no aevent for the FIRST SA's first packet within 2 s");
	n = received(rx1, 1, 20000);
	CHECK(n == 1, "FIRST SA delivered %u of 1", n);
	CHECK(events_of(first) == 1, "%u events for one packet", events_of(first));
	CHECK(evs[nev - 1].flags == XFRM_AE_CR && evs[nev - 1].has_replay &&
		      evs[nev - 1].seq == 1 && evs[nev - 1].window == 128,
	      "event flags 0x%x seq %u window %u", evs[nev - 1].flags, evs[nev - 1].seq,
	      evs[nev - 1].window);
	printf("aevents: FIRST SA 0x%x: the first packet notified after %.1f ms (flags "
	       "XFRM_AE_CR, seq 1); the QUIET SA 0x%x: 0 events for 1 packet\n",
	       first, took * 1000, quiet);

	/* More packets: the QUIET SA stays silent, the FIRST one reports each. */
	CHECK(!send_udp(1002, 5) && !send_udp(1001, 3), "send");
	n = received(rx2, 5, 20000);
	CHECK(n == 5, "QUIET SA delivered %u of 5", n);
	CHECK(received(rx1, 3, 20000) == 3, "FIRST SA delivered");
	CHECK(events_of(quiet) == 0, "QUIET SA notified %u times", events_of(quiet));
	while (events_of(first) < 4 && wait_event(first, events_of(first), 20000) >= 0)
		;
	CHECK(events_of(first) == 4, "FIRST SA: %u events for 4 packets", events_of(first));
	CHECK(evs[nev - 1].seq == 4, "last event seq %u", evs[nev - 1].seq);

	/* Promoted: quiet again; nothing more, not by packet, not by timer. */
	pfkey_addr_from_string(&dst, ADDR_B);
	CHECK(!kern_aevents_quiet(aev, &dst, first, IPPROTO_ESP), "kern_aevents_quiet");
	pump(200);
	kern_aevents_stats(aev, &st);
	CHECK(st.ignored >= 1, "no echo of our own NEWAE (ignored %lu)", st.ignored);
	CHECK(events_of(first) == 4, "the quiet request itself reached cb");
	CHECK(!send_udp(1001, 5), "send");
	n = received(rx1, 5, 20000);
	CHECK(n == 5, "quieted SA delivered %u of 5", n);
	CHECK(events_of(first) == 4, "quieted SA notified %u more times", events_of(first) - 4);
	printf("aevents: FIRST SA: 4 events for packets 1-4, 0 for 5 more packets and 1.5 s after "
	       "kern_aevents_quiet; QUIET SA: 0 events for 6 packets\n");

	/* An SA without thresholds (ip xfrm: the sysctls') does notify this socket. */
	keymat(foreign, key);
	for (unsigned i = 0; i < 20; i++)
		snprintf(hex + 2 * i, 3, "%02x", key[i]);
	{
		struct pfkey_msg m;

		sa_msg(&m, SADB_ADD, foreign, 6, MODE_LEGACY, key);
		CHECK(!nl_request(nl_a, &m), "outbound SA of the foreign pair");
	}
	CHECK(!sh("ip -n b xfrm state add src %s dst %s proto esp spi 0x%x reqid 6 mode transport "
		  "aead 'rfc4106(gcm(aes))' 0x%s 128 replay-window 32",
		  ADDR_A, ADDR_B, foreign, hex),
	      "ip xfrm state add");
	CHECK(!send_udp(1006, 4), "send");
	n = received(rx6, 4, 20000);
	CHECK(n == 4, "foreign SA delivered %u of 4", n);
	wait_event(foreign, 0, 20000);
	CHECK(events_of(foreign) >= 1, "an SA with the sysctls' thresholds did not notify");
	printf("aevents: an SA added by ip xfrm (sysctl thresholds): %u events for 4 packets\n",
	       events_of(foreign));
	kern_aevents_stats(aev, &st);
	printf("aevents: stats received %lu malformed %lu lost %lu ignored %lu\n", st.received,
	       st.malformed, st.lost, st.ignored);
	CHECK(st.malformed == 0 && st.lost == 0 && overruns == 0, "malformed or lost events");
	ret = 0;
out:
	if (rx1 >= 0)
		close(rx1);
	if (rx2 >= 0)
		close(rx2);
	if (rx6 >= 0)
		close(rx6);
	return ret;
}

static struct frame frames[MAX_FRAMES];

static int test_restore(enum replay_mode mode, uint32_t spi, uint16_t port, uint32_t reqid)
{
	const unsigned N = 20;
	int rx = rx_socket(port);
	struct kern_replay r;
	char save[64];
	unsigned n, got;
	long seq_err;
	int ret = -1;

	CHECK(rx >= 0, "UDP socket");
	CHECK(!policy(port, reqid), "policy");
	CHECK(!add_pair(spi, reqid, mode, KERN_AEV_QUIET), "SA pair");
	capture(spi, frames, MAX_FRAMES); /* nothing of this SPI yet */
	CHECK(!send_udp(port, N), "send");
	got = received(rx, N, 20000);
	n = capture(spi, frames, MAX_FRAMES);
	CHECK(got == N, "%u of %u datagrams delivered", got, N);
	CHECK(n == N, "%u of %u ESP frames captured", n, N);

	/* The replay state after N packets, as a dump reports it. */
	snprintf(save, sizeof(save), "replay-%s-newsa-1.bin", mode_name(mode));
	CHECK(!dump_replay(nl_b, spi, &r, save), "SA 0x%x not in the dump", spi);
	CHECK(r.seq == N, "dumped seq %u", r.seq);
	for (uint32_t d = 0; d < N; d++)
		CHECK(xfrm_replay_seen(&r, d), "seq %u not seen in the dump", N - d);

	/* Lost and re-installed with it: the N frames again on the wire, none accepted. */
	CHECK(!del_inbound(spi, mode), "delete");
	CHECK(!add_inbound(spi, reqid, mode, &r), "add with the replay state");
	seq_err = xfrm_stat("XfrmInStateSeqError");
	CHECK(!inject(frames, N), "inject");
	/* None may pass: wait until the kernel has judged all N (its counter), then look. */
	seq_err = wait_stat("XfrmInStateSeqError", seq_err + N, 20000) - seq_err;
	got = received(rx, 0, 0);
	CHECK(got == 0, "%s: %u of %u replayed frames accepted after the restore", mode_name(mode),
	      got, N);
	CHECK(seq_err == N, "XfrmInStateSeqError rose by %ld, not %u", seq_err, N);
	/* The sender goes on: sequence numbers N+1.. are new. */
	CHECK(!send_udp(port, 5), "send");
	got = received(rx, 5, 20000);
	CHECK(got == 5, "%u of 5 new datagrams delivered after the restore", got);
	capture(spi, frames + N, MAX_FRAMES - N);
	printf("restore-%s: %u frames replayed after a restore: 0 accepted, "
	       "XfrmInStateSeqError +%ld; 5 new packets: 5 accepted\n",
	       mode_name(mode), N, seq_err);

	/* The control: re-installed with an empty window, the same frames pass. */
	CHECK(!del_inbound(spi, mode), "delete");
	CHECK(!add_inbound(spi, reqid, mode, NULL), "add without the replay state");
	CHECK(!inject(frames, N), "inject");
	got = received(rx, N, 20000);
	CHECK(got == N, "control: %u of %u replayed frames accepted without the restore", got, N);
	printf("restore-%s: control, re-installed without it: %u of %u replayed frames accepted\n",
	       mode_name(mode), got, N);
	ret = 0;
out:
	if (rx >= 0)
		close(rx);
	return ret;
}

/* The first NEWAE of the namespace as the kernel sent it, for the fixtures. */
static void save_raw_aevent(void)
{
	char path[512];
	ssize_t n;
	FILE *f;

	if (!outdir || raw_aev < 0)
		return;
	n = recv(raw_aev, nlbuf, sizeof(nlbuf), MSG_DONTWAIT);
	if (n <= 0)
		return;
	snprintf(path, sizeof(path), "%s/aevent-newae-1.bin", outdir);
	f = fopen(path, "wb");
	if (f) {
		fwrite(nlbuf, 1, (size_t)n, f);
		fclose(f);
	}
}

static int open_netlink(void)
{
	int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_XFRM);
	struct sockaddr_nl sa = { .nl_family = AF_NETLINK };

	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)))
		return -1;
	return fd;
}

static int setup(void)
{
	struct sockaddr_ll ll = { .sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_ALL) };
	int group = XFRMNLGRP_AEVENTS;

	if (sh("ip netns add a && ip netns add b") ||
	    sh("ip link add va netns a type veth peer name vb netns b") ||
	    sh("ip -n a addr add %s/24 dev va && ip -n a link set va up && ip -n a link set lo up",
	       ADDR_A) ||
	    sh("ip -n b addr add %s/24 dev vb && ip -n b link set vb up && ip -n b link set lo up",
	       ADDR_B))
		return -1;
	ns_a = open("/run/netns/a", O_RDONLY | O_CLOEXEC);
	ns_b = open("/run/netns/b", O_RDONLY | O_CLOEXEC);
	if (ns_a < 0 || ns_b < 0 || setns(ns_a, CLONE_NEWNET))
		return -1;
	/* Sockets keep the namespace they were made in. */
	nl_a = open_netlink();
	udp_tx = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	cap = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETH_P_ALL));
	ll.sll_ifindex = (int)if_nametoindex("va");
	if (nl_a < 0 || udp_tx < 0 || cap < 0 || !ll.sll_ifindex ||
	    bind(cap, (struct sockaddr *)&ll, sizeof(ll)))
		return -1;
	if (setns(ns_b, CLONE_NEWNET))
		return -1;
	nl_b = open_netlink();
	raw_aev = open_netlink();
	if (nl_b < 0 || raw_aev < 0 ||
	    setsockopt(raw_aev, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, &group, sizeof(group)))
		return -1;
	if (uv_loop_init(&loop) || uv_timer_init(&loop, &timer))
		return -1;
	return kern_aevents_open(&loop, on_aevent, on_lost, NULL, &aev);
}

int main(int argc, char **argv)
{
	int fails = 0;

	outdir = argc > 1 ? argv[1] : NULL;
	if (setup()) {
		fprintf(stderr, "ktest_aevents: setup failed: %s\n", strerror(errno));
		return 1;
	}
	failure[0] = 0;
	if (test_aevents()) {
		printf("FAIL aevents: %s\n", failure);
		fails++;
	} else {
		printf("ok aevents\n");
	}
	save_raw_aevent();
	{
		static const struct {
			enum replay_mode mode;
			uint32_t spi;
			uint16_t port;
			uint32_t reqid;
		} runs[] = {
			{ MODE_ESN, 0x2a0103, 1003, 3 },
			{ MODE_BMP, 0x2a0104, 1004, 4 },
			{ MODE_LEGACY, 0x2a0105, 1005, 5 },
		};

		for (size_t i = 0; i < sizeof(runs) / sizeof(runs[0]); i++) {
			failure[0] = 0;
			if (test_restore(runs[i].mode, runs[i].spi, runs[i].port, runs[i].reqid)) {
				printf("FAIL restore-%s: %s\n", mode_name(runs[i].mode), failure);
				fails++;
			} else {
				printf("ok restore-%s\n", mode_name(runs[i].mode));
			}
		}
	}
	kern_aevents_close(aev);
	uv_close((uv_handle_t *)&timer, NULL);
	uv_run(&loop, UV_RUN_DEFAULT);
	if (uv_loop_close(&loop))
		fprintf(stderr, "ktest_aevents: handles left open\n");
	printf("%s\n", fails ? "FAILED" : "all passed");
	return fails ? 1 : 0;
}
