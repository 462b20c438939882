/* SPDX-License-Identifier: ISC */
/*
 * The raw-kernel floor of the benchmark, and the small tools the guest-side
 * driver (bench.py) needs to time sakeyd against it in the same boot.
 *
 * The SAs are those sakeyd installs for the generated links (bench.py): SA i
 * belongs to pair p = i / K (-K), 10.1.x.y <-> 10.2.x.y with x.y = p + 1 as a
 * 16-bit number; the first of a pair's K goes 10.1 -> 10.2 (out), the others
 * 10.2 -> 10.1 (in); SPI
 * = first + i, or with -L the link's (spi_of: bench.py passes -L for every
 * floor it compares sakeyd with). ESP transport, reqid 0, replay window 32
 * (-E: ESN, 128), cbc(aes) 256-bit +
 * hmac(sha512) ICV 256 (sakeyd's default algorithm), add-time lifetimes
 * 3000 s soft / 3600 s hard. Each pair has its own addresses: with one pair
 * for all SAs the kernel's bydst chain makes every add O(N).
 *
 *   floor [-E] [-K PERLINK] [-L PREFIX] [-r RCVBUF] [-w WINDOW] [-b BATCH] [-s FIRSTSPI] [-m LABEL] [-o FILE] COMMAND ...
 *
 *   -K PERLINK: SAs per link, 2 (default: one outbound, one inbound), 4
 *   (key schedule v2 between rotations: outbound generation 0, inbound
 *   generation 0 and its spares 1 and 15) or 17 (v2's fresh start: outbound
 *   generation 15, inbound generations 0..15), as sa_addrs and spi_of lay them out
 *
 *   add-sync N | del-sync N   PF_KEY SADB_ADD/DELETE, send one, read its reply
 *   add-pipe N | del-pipe N   PF_KEY, WINDOW requests in flight (0 = all N),
 *                             replies read with recvmmsg, 64 per call; with
 *                             -b BATCH, requests sent BATCH per sendmmsg
 *   nl-add-batch N | nl-del-batch N
 *                             NETLINK_XFRM NEWSA/DELSA, 64 per sendmsg, an ack
 *                             asked only on each batch's last message; with -E
 *                             the SAs have ESN and a 128-packet replay window
 *                             (XFRMA_REPLAY_ESN_VAL), as sakeyd's kernel = xfrm
 *                             installs them, instead of a 32-packet window
 *   nl-rotate N               (needs -L) the kernel's share of a rotation of
 *                             the N SAs' links by batched netlink: sakeyd's
 *                             three bursts in its order, timed (nl_rotate)
 *   dump                      PF_KEY SADB_DUMP of every SA, counted
 *   count                     SAD count (XFRM_MSG_GETSADINFO)
 *   wait-count OP N TIMEOUT_S poll the count every 20 ms until it is >= N
 *                             (OP ge) or <= N (OP le); at= is CLOCK_REALTIME then
 *   gen-batch add|del N       `ip -batch` lines for the same N SAs
 *   timeit N -- CMD...        run CMD, time it from fork to exit (-o FILE:
 *                             CMD's stdout goes there)
 *   start-ready -- CMD...     run CMD with NOTIFY_SOCKET set; time fork ->
 *                             READY=1, print that, CMD's pid and the fork's
 *                             CLOCK_REALTIME (forked_at=), then wait
 *                             for CMD and exit with its status
 *   expire-lat N INTERVAL_MS SOFT_S OUT
 *                             add N SAs (SPIs from FIRSTSPI, addresses
 *                             10.3.x.y -> 10.4.x.y) one every INTERVAL_MS with
 *                             a SOFT_S soft lifetime; a registered PF_KEY
 *                             listener at SCHED_FIFO notes when each soft
 *                             SADB_EXPIRE arrives (CLOCK_MONOTONIC); one
 *                             "EXPIRE spi ns" line per SA into OUT
 *   expire-del N              delete those N SAs
 *   spawn-lat N INTERVAL_MS PROG OUT
 *                             the floor of EXPIRE -> alert: posix_spawn PROG
 *                             (the alert-stamp link) N times, one every
 *                             INTERVAL_MS, as sakeyd's alerts.c does (stdin
 *                             /dev/null, cwd /, own session, signals reset),
 *                             with SAKEYD_EVENT=spawn SAKEYD_SPI=0x<i>; one
 *                             "SPAWN 0x<i> ns" line per spawn into OUT, the
 *                             CLOCK_MONOTONIC just before posix_spawn
 *   stamp OUT                 the alert_command: append "$SAKEYD_EVENT
 *                             $SAKEYD_SPI ns" (CLOCK_MONOTONIC at main); run
 *                             through a link named alert-stamp, floor does
 *                             this into /run/sakeyd-bench/stamps
 *
 * Timed commands print "RESULT method=LABEL phase=... n=N secs=S ok=.. err=..
 * lost=..": CLOCK_MONOTONIC around the phase only, socket setup excluded.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <linux/ipsec.h>
#include <linux/netlink.h>
#include <linux/pfkeyv2.h>
#include <linux/xfrm.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MSG_MAX 1024
#define ESN_WINDOW 128
#define RBATCH 64
#define SBATCH 64
#define RBUF 4096
#define NLBATCH 64
#define ENC_BITS 256
#define AUTH_BITS 512
#define ICV_BITS 256
#define SOFT_S 3000
#define HARD_S 3600

static long opt_rcvbuf;
static long opt_window;
static long opt_batch = 1;
static int opt_esn; /* -E: netlink SAs with ESN and a 128-packet window, as sakeyd's XFRM ones */
static uint32_t opt_spi0 = 0x10000;
static long opt_link_prefix; /* -L: SPIs as sakeyd's links make them (see spi_of) */
static long opt_per_link = 2; /* -K: SAs per link (sa_addrs, spi_of) */
static const char *opt_label;
static const char *opt_out; /* -o: timeit's command writes its stdout here */

/* The alert_command: floor run through a link of this name (it gets no arguments). */
#define STAMP_NAME "alert-stamp"
#define STAMP_FILE "/run/sakeyd-bench/stamps"

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long long now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void die(const char *what)
{
	perror(what);
	exit(1);
}

static void result(const char *phase, long n, double secs, long ok, long err, long lost,
		   const char *extra)
{
	printf("RESULT method=%s phase=%s n=%ld secs=%.6f rate=%.1f ok=%ld err=%ld lost=%ld%s%s\n",
	       opt_label, phase, n, secs, secs > 0 ? n / secs : 0.0, ok, err, lost,
	       extra ? " " : "", extra ? extra : "");
	fflush(stdout);
}

/* Pair p's addresses: base.x.y with x.y = p + 1. */
static uint32_t pair_addr(uint8_t net, long p)
{
	uint32_t v = (uint32_t)(p + 1) & 0xffff;

	return htonl(10u << 24 | (uint32_t)net << 16 | v);
}

/*
 * SA i belongs to link i / K (K = -K, SAs per link); the first of a link's K
 * is its outbound SA, the others inbound: K = 2 is one inbound SA (the
 * floor's historical shape), K = 4 key schedule v2's steady state, the
 * inbound generation 0 and its spares 1 and 15 (DESIGN.md).
 */
static bool sa_is_out(long i)
{
	return i % opt_per_link == 0;
}

static void sa_addrs(long i, uint8_t net_a, uint8_t net_b, uint32_t *src, uint32_t *dst)
{
	uint32_t a = pair_addr(net_a, i / opt_per_link), b = pair_addr(net_b, i / opt_per_link);

	*src = sa_is_out(i) ? a : b;
	*dst = sa_is_out(i) ? b : a;
}

/*
 * The SPI of SA i: FIRSTSPI + i, or with -L PREFIX the one sakeyd's link
 * i / K makes (DESIGN.md: spi_prefix << 8 | generation << 4 | epoch mod 16,
 * the bench's links numbering their prefixes from PREFIX; generation 0 for
 * the outbound SA and the first inbound one, the spares 1 and 15 with K = 4;
 * epoch 0, or nl-rotate's). The kernel hashes SAs by (daddr ^ spi ^ proto):
 * the same SPIs put them in the same hash chains as sakeyd's.
 */
static void usage(void);
static uint8_t cur_epoch; /* nl-rotate: the epoch byte of the SPIs built now (with -L) */

static uint32_t spi_of(long i)
{
	static const uint8_t gen[4] = { 0, 0, 1, 15 };
	long k = i % opt_per_link;
	/* -K 17: a fresh start's outbound generation 15, then inbound 0..15. */
	uint32_t g = opt_per_link == 17 ? (k ? (uint32_t)k - 1 : 15) : gen[k];

	if (opt_link_prefix)
		return (uint32_t)(opt_link_prefix + i / opt_per_link) << 8 | g << 4 |
		       (cur_epoch & 0xf);
	return opt_spi0 + (uint32_t)i;
}

static void fill_key(uint8_t *k, size_t n, long i, uint8_t salt)
{
	for (size_t j = 0; j < n; j++)
		k[j] = (uint8_t)(i * 31 + (long)j * 7 + salt);
}

/* --- PF_KEY -------------------------------------------------------------- */

static int pfkey_open(void)
{
	int fd = socket(PF_KEY, SOCK_RAW, PF_KEY_V2);

	if (fd < 0)
		die("socket(PF_KEY)");
	if (opt_rcvbuf && setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &opt_rcvbuf,
				     sizeof(opt_rcvbuf)))
		die("SO_RCVBUFFORCE");
	return fd;
}

static size_t put_addr(uint8_t *p, uint16_t type, uint32_t a)
{
	struct sadb_address *ad = (struct sadb_address *)p;
	struct sockaddr_in *sin = (struct sockaddr_in *)(ad + 1);
	size_t len = sizeof(*ad) + 16; /* sockaddr_in is 16 bytes: 8-byte aligned */

	memset(p, 0, len);
	ad->sadb_address_len = (uint16_t)(len / 8);
	ad->sadb_address_exttype = type;
	ad->sadb_address_prefixlen = 32;
	sin->sin_family = AF_INET;
	sin->sin_addr.s_addr = a;
	return len;
}

static size_t put_key(uint8_t *p, uint16_t type, unsigned bits, long i, uint8_t salt)
{
	struct sadb_key *k = (struct sadb_key *)p;
	size_t klen = bits / 8, len = (sizeof(*k) + klen + 7) & ~(size_t)7;

	memset(p, 0, len);
	k->sadb_key_len = (uint16_t)(len / 8);
	k->sadb_key_exttype = type;
	k->sadb_key_bits = (uint16_t)bits;
	fill_key((uint8_t *)(k + 1), klen, i, salt);
	return len;
}

static size_t put_lifetime(uint8_t *p, uint16_t type, uint64_t addtime)
{
	struct sadb_lifetime *l = (struct sadb_lifetime *)p;

	memset(l, 0, sizeof(*l));
	l->sadb_lifetime_len = sizeof(*l) / 8;
	l->sadb_lifetime_exttype = type;
	l->sadb_lifetime_addtime = addtime;
	return sizeof(*l);
}

/* One SADB_ADD or SADB_DELETE for SA i; returns its length. */
static size_t pfkey_build(uint8_t *buf, uint8_t type, long i, uint32_t spi, uint32_t src,
			  uint32_t dst, uint64_t soft, uint64_t hard, uint32_t seq)
{
	struct sadb_msg *m = (struct sadb_msg *)buf;
	struct sadb_sa *sa;
	size_t off = sizeof(*m);

	memset(buf, 0, MSG_MAX);
	m->sadb_msg_version = PF_KEY_V2;
	m->sadb_msg_type = type;
	m->sadb_msg_satype = SADB_SATYPE_ESP;
	m->sadb_msg_seq = seq;
	m->sadb_msg_pid = (uint32_t)getpid();
	sa = (struct sadb_sa *)(buf + off);
	sa->sadb_sa_len = sizeof(*sa) / 8;
	sa->sadb_sa_exttype = SADB_EXT_SA;
	sa->sadb_sa_spi = htonl(spi);
	off += sizeof(*sa);
	if (type == SADB_ADD) {
		struct sadb_x_sa2 *sa2;

		sa->sadb_sa_replay = 32;
		sa->sadb_sa_state = SADB_SASTATE_MATURE;
		sa->sadb_sa_auth = SADB_X_AALG_SHA2_512HMAC;
		sa->sadb_sa_encrypt = SADB_X_EALG_AESCBC;
		off += put_lifetime(buf + off, SADB_EXT_LIFETIME_HARD, hard);
		off += put_lifetime(buf + off, SADB_EXT_LIFETIME_SOFT, soft);
		off += put_addr(buf + off, SADB_EXT_ADDRESS_SRC, src);
		off += put_addr(buf + off, SADB_EXT_ADDRESS_DST, dst);
		off += put_key(buf + off, SADB_EXT_KEY_AUTH, AUTH_BITS, i, 0x55);
		off += put_key(buf + off, SADB_EXT_KEY_ENCRYPT, ENC_BITS, i, 0xaa);
		sa2 = (struct sadb_x_sa2 *)(buf + off);
		sa2->sadb_x_sa2_len = sizeof(*sa2) / 8;
		sa2->sadb_x_sa2_exttype = SADB_X_EXT_SA2;
		sa2->sadb_x_sa2_mode = IPSEC_MODE_TRANSPORT;
		off += sizeof(*sa2);
	} else {
		off += put_addr(buf + off, SADB_EXT_ADDRESS_SRC, src);
		off += put_addr(buf + off, SADB_EXT_ADDRESS_DST, dst);
	}
	m->sadb_msg_len = (uint16_t)(off / 8);
	return off;
}

static size_t pfkey_build_sa(uint8_t *buf, uint8_t type, long i, uint32_t seq)
{
	uint32_t src, dst;

	sa_addrs(i, 1, 2, &src, &dst);
	return pfkey_build(buf, type, i, spi_of(i), src, dst, SOFT_S, HARD_S, seq);
}

/* Replies to our own requests (pid, type); broadcasts of others are skipped. */
static int is_reply(const uint8_t *buf, ssize_t n, uint8_t type, uint32_t pid, int *err)
{
	const struct sadb_msg *m = (const struct sadb_msg *)buf;

	if (n < (ssize_t)sizeof(*m) || m->sadb_msg_type != type || m->sadb_msg_pid != pid)
		return 0;
	*err = m->sadb_msg_errno;
	return 1;
}

static void pfkey_sync(uint8_t type, long n)
{
	int fd = pfkey_open();
	uint32_t pid = (uint32_t)getpid();
	static uint8_t buf[MSG_MAX], rbuf[RBUF];
	long ok = 0, err = 0;
	double t0 = now_s();

	for (long i = 0; i < n; i++) {
		size_t len = pfkey_build_sa(buf, type, i, (uint32_t)i + 1);
		int e = 0;

		if (send(fd, buf, len, 0) < 0)
			die("send");
		for (;;) {
			ssize_t r = recv(fd, rbuf, sizeof(rbuf), 0);

			if (r < 0)
				die("recv");
			if (is_reply(rbuf, r, type, pid, &e))
				break;
		}
		if (e)
			err++;
		else
			ok++;
	}
	result(type == SADB_ADD ? "add" : "del", n, now_s() - t0, ok, err, 0, NULL);
	close(fd);
}

static void pfkey_pipe(uint8_t type, long n)
{
	int fd = pfkey_open();
	uint32_t pid = (uint32_t)getpid();
	static uint8_t sbufs[SBATCH][MSG_MAX];
	static uint8_t rbufs[RBATCH][RBUF];
	struct mmsghdr mm[RBATCH], smm[SBATCH];
	struct iovec siov[SBATCH];
	struct iovec iov[RBATCH];
	long sent = 0, got = 0, ok = 0, err = 0, window = opt_window > 0 ? opt_window : n;
	char extra[64];
	int rcvbuf = 0;
	socklen_t sl = sizeof(rcvbuf);
	double t0;

	getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, &sl);
	for (int j = 0; j < RBATCH; j++) {
		iov[j] = (struct iovec){ rbufs[j], RBUF };
		memset(&mm[j], 0, sizeof(mm[j]));
		mm[j].msg_hdr.msg_iov = &iov[j];
		mm[j].msg_hdr.msg_iovlen = 1;
	}
	t0 = now_s();
	while (got < n) {
		while (sent < n && sent - got < window) {
			long b = 0;

			/* af_key takes one message per sendmsg; sendmmsg carries a batch of them */
			while (b < opt_batch && b < SBATCH && sent + b < n && sent + b - got < window) {
				size_t len = pfkey_build_sa(sbufs[b], type, sent + b, (uint32_t)(sent + b) + 1);

				siov[b] = (struct iovec){ sbufs[b], len };
				memset(&smm[b], 0, sizeof(smm[b]));
				smm[b].msg_hdr.msg_iov = &siov[b];
				smm[b].msg_hdr.msg_iovlen = 1;
				b++;
			}
			if (b == 1) {
				if (send(fd, sbufs[0], siov[0].iov_len, 0) < 0)
					die("send");
			} else if (sendmmsg(fd, smm, (unsigned)b, 0) != b) {
				die("sendmmsg");
			}
			sent += b;
		}
		/* af_key drops replies on a full buffer without a word: time out, count lost. */
		struct pollfd pfd = { fd, POLLIN, 0 };
		if (poll(&pfd, 1, 1000) <= 0)
			break;
		int r = recvmmsg(fd, mm, RBATCH, MSG_DONTWAIT, NULL);

		if (r < 0) {
			if (errno == EAGAIN)
				continue;
			die("recvmmsg");
		}
		for (int j = 0; j < r; j++) {
			int e = 0;

			if (!is_reply(rbufs[j], mm[j].msg_len, type, pid, &e))
				continue;
			got++;
			if (e)
				err++;
			else
				ok++;
		}
	}
	snprintf(extra, sizeof(extra), "rcvbuf=%d window=%ld batch=%ld", rcvbuf, window, opt_batch);
	result(type == SADB_ADD ? "add" : "del", n, now_s() - t0, ok, err, n - got, extra);
	close(fd);
}

static void pfkey_dump(void)
{
	int fd = pfkey_open();
	uint32_t pid = (uint32_t)getpid();
	static uint8_t rbuf[RBUF];
	struct sadb_msg m = {
		.sadb_msg_version = PF_KEY_V2,
		.sadb_msg_type = SADB_DUMP,
		.sadb_msg_satype = SADB_SATYPE_UNSPEC,
		.sadb_msg_len = sizeof(m) / 8,
		.sadb_msg_seq = 1,
		.sadb_msg_pid = pid,
	};
	long count = 0, err = 0;
	double t0 = now_s();

	if (send(fd, &m, sizeof(m), 0) < 0)
		die("send");
	for (;;) {
		ssize_t r = recv(fd, rbuf, sizeof(rbuf), 0);
		const struct sadb_msg *h = (const struct sadb_msg *)rbuf;

		if (r < 0)
			die("recv");
		if (r < (ssize_t)sizeof(*h) || h->sadb_msg_type != SADB_DUMP ||
		    h->sadb_msg_pid != pid)
			continue;
		if (h->sadb_msg_errno) {
			if (h->sadb_msg_errno != ENOENT)
				err++;
			break;
		}
		count++;
		if (h->sadb_msg_seq == 0)
			break;
	}
	result("dump", count, now_s() - t0, count, err, 0, NULL);
	close(fd);
}

/* --- NETLINK_XFRM -------------------------------------------------------- */

static int nl_open(void)
{
	int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_XFRM);
	struct sockaddr_nl sa = { .nl_family = AF_NETLINK };

	if (fd < 0)
		die("socket(NETLINK_XFRM)");
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)))
		die("bind");
	return fd;
}

static size_t nl_attr(uint8_t *p, uint16_t type, const void *data, size_t len)
{
	struct nlattr *a = (struct nlattr *)p;

	a->nla_len = (uint16_t)(NLA_HDRLEN + len);
	a->nla_type = type;
	memcpy(p + NLA_HDRLEN, data, len);
	return NLA_ALIGN(a->nla_len);
}

static size_t nl_build(uint8_t *p, int add, long i, uint32_t seq, uint16_t flags)
{
	struct nlmsghdr *h = (struct nlmsghdr *)p;
	size_t off = NLMSG_HDRLEN;
	uint32_t src, dst;

	sa_addrs(i, 1, 2, &src, &dst);
	memset(p, 0, MSG_MAX);
	h->nlmsg_type = add ? XFRM_MSG_NEWSA : XFRM_MSG_DELSA;
	h->nlmsg_flags = NLM_F_REQUEST | flags;
	h->nlmsg_seq = seq;
	if (add) {
		struct xfrm_usersa_info *u = (struct xfrm_usersa_info *)(p + off);
		uint8_t ab[sizeof(struct xfrm_algo_auth) + AUTH_BITS / 8];
		uint8_t eb[sizeof(struct xfrm_algo) + ENC_BITS / 8];
		struct xfrm_algo_auth *auth = (struct xfrm_algo_auth *)ab;
		struct xfrm_algo *enc = (struct xfrm_algo *)eb;
		uint8_t esn[sizeof(struct xfrm_replay_state_esn) + ESN_WINDOW / 8];
		size_t esn_off = 0;

		h->nlmsg_flags |= NLM_F_CREATE | NLM_F_EXCL;
		u->sel.family = AF_INET;
		u->id.daddr.a4 = dst;
		u->id.spi = htonl(spi_of(i));
		u->id.proto = IPPROTO_ESP;
		u->saddr.a4 = src;
		u->family = AF_INET;
		u->mode = XFRM_MODE_TRANSPORT;
		if (opt_esn) {
			/* sakeyd's kernel = xfrm default (svc/kernel/xfrm.c: put_replay). */
			struct {
				struct xfrm_replay_state_esn esn;
				uint32_t bmp[ESN_WINDOW / 32];
			} r = { .esn = { .bmp_len = ESN_WINDOW / 32, .replay_window = ESN_WINDOW } };

			u->flags |= XFRM_STATE_ESN;
			esn_off = sizeof(r);
			memcpy(esn, &r, sizeof(r));
		} else {
			u->replay_window = 32;
		}
		u->lft.soft_byte_limit = u->lft.hard_byte_limit = XFRM_INF;
		u->lft.soft_packet_limit = u->lft.hard_packet_limit = XFRM_INF;
		u->lft.soft_add_expires_seconds = SOFT_S;
		u->lft.hard_add_expires_seconds = HARD_S;
		off += NLMSG_ALIGN(sizeof(*u));
		memset(eb, 0, sizeof(eb));
		strcpy(enc->alg_name, "cbc(aes)");
		enc->alg_key_len = ENC_BITS;
		fill_key((uint8_t *)enc->alg_key, ENC_BITS / 8, i, 0xaa);
		off += nl_attr(p + off, XFRMA_ALG_CRYPT, eb, sizeof(eb));
		memset(ab, 0, sizeof(ab));
		strcpy(auth->alg_name, "hmac(sha512)");
		auth->alg_key_len = AUTH_BITS;
		auth->alg_trunc_len = ICV_BITS;
		fill_key((uint8_t *)auth->alg_key, AUTH_BITS / 8, i, 0x55);
		off += nl_attr(p + off, XFRMA_ALG_AUTH_TRUNC, ab, sizeof(ab));
		if (esn_off)
			off += nl_attr(p + off, XFRMA_REPLAY_ESN_VAL, esn, esn_off);
	} else {
		struct xfrm_usersa_id *u = (struct xfrm_usersa_id *)(p + off);
		xfrm_address_t s = { .a4 = src };

		u->daddr.a4 = dst;
		u->spi = htonl(spi_of(i));
		u->family = AF_INET;
		u->proto = IPPROTO_ESP;
		off += NLMSG_ALIGN(sizeof(*u));
		off += nl_attr(p + off, XFRMA_SRCADDR, &s, sizeof(s));
	}
	h->nlmsg_len = (uint32_t)off;
	return off;
}

/* Read until the ack of seq; counts error messages (errors always come). */
static void nl_wait_ack(int fd, uint32_t seq, long *err)
{
	static uint8_t buf[65536];

	for (;;) {
		ssize_t r = recv(fd, buf, sizeof(buf), 0);

		if (r < 0)
			die("recv(netlink)");
		for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, (size_t)r);
		     h = NLMSG_NEXT(h, r)) {
			if (h->nlmsg_type != NLMSG_ERROR)
				continue;
			struct nlmsgerr *e = NLMSG_DATA(h);

			if (e->error)
				(*err)++;
			if (h->nlmsg_seq == seq)
				return;
		}
	}
}

/*
 * SAs first, first + step, ... (count of them) of epoch byte `epoch`, added
 * or deleted NLBATCH per sendmsg, an ack asked only on each batch's last
 * (errors are acknowledged anyway); returns the seconds taken.
 */
enum nl_which { NL_ALL, NL_OUT, NL_IN };

/* Of SAs 0 .. n - 1, those of which (all, outbound, inbound), NLBATCH a sendmsg. */
static double nl_run(int fd, int add, enum nl_which which, long n, uint8_t epoch, long *err)
{
	static uint8_t buf[NLBATCH * MSG_MAX];
	double t0 = now_s();
	uint32_t seq = 0;
	long i = 0;

	cur_epoch = epoch;
	for (;;) {
		struct nlmsghdr *last = NULL;
		size_t off = 0;
		long b = 0;

		for (; i < n && b < NLBATCH; i++) {
			if (which != NL_ALL && sa_is_out(i) != (which == NL_OUT))
				continue;
			b++;
			last = (struct nlmsghdr *)(buf + off);
			off += nl_build(buf + off, add, i, ++seq, 0);
		}
		if (!last)
			break;
		last->nlmsg_flags |= NLM_F_ACK; /* the batch's last asks the ack */
		if (send(fd, buf, off, 0) < 0)
			die("send(netlink)");
		nl_wait_ack(fd, seq, err);
	}
	return now_s() - t0;
}

static void nl_batch(int add, long n)
{
	int fd = nl_open();
	long err = 0;
	double secs = nl_run(fd, add, NL_ALL, n, 0, &err);

	result(add ? "add" : "del", n, secs, n - err, err, 0, NULL);
	close(fd);
}

/*
 * The kernel's share of one rotation of N/K links, by batched netlink: the
 * three bursts of sakeyd's passes, in its order and with its SAs present
 * (make before break). Untimed set-up: the N SAs of epoch 0. Then, each
 * burst timed, 1.2 s apart as the daemon's passes are apart: the
 * inbound SAs of epoch 1 added; the outbound of epoch 1 added, then those
 * of epoch 0 deleted; the inbound of epoch 0 deleted. Untimed clean-up.
 * Needs -L (the epoch byte is the SPI's).
 */
static void nl_rotate(long n)
{
	const double settle = 1.2; /* each new SA arms a 1 s kernel timer, as in bench.py */
	int fd = nl_open();
	long err = 0;
	double p1, p2, p3;
	char extra[128];

	if (!opt_link_prefix || n < opt_per_link || n % opt_per_link)
		usage();
	nl_run(fd, 1, NL_ALL, n, 0, &err);
	usleep((useconds_t)(settle * 1e6));
	p1 = nl_run(fd, 1, NL_IN, n, 1, &err);
	usleep((useconds_t)(settle * 1e6));
	p2 = nl_run(fd, 1, NL_OUT, n, 1, &err);
	p2 += nl_run(fd, 0, NL_OUT, n, 0, &err);
	usleep((useconds_t)(settle * 1e6));
	p3 = nl_run(fd, 0, NL_IN, n, 0, &err);
	nl_run(fd, 0, NL_ALL, n, 1, &err);
	snprintf(extra, sizeof(extra), "in_add=%.6f out_replace=%.6f in_del=%.6f", p1, p2, p3);
	result("rotate", 2 * n, p1 + p2 + p3, 2 * n - err, err, 0, extra);
	close(fd);
}

static long sad_count(int fd)
{
	static uint8_t buf[4096];
	struct {
		struct nlmsghdr h;
		uint32_t flags;
	} req = {
		.h = { .nlmsg_len = sizeof(req), .nlmsg_type = XFRM_MSG_GETSADINFO,
		       .nlmsg_flags = NLM_F_REQUEST, .nlmsg_seq = 1 },
	};

	if (send(fd, &req, sizeof(req), 0) < 0)
		die("send(GETSADINFO)");
	for (;;) {
		ssize_t r = recv(fd, buf, sizeof(buf), 0);

		if (r < 0)
			die("recv(GETSADINFO)");
		for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, (size_t)r);
		     h = NLMSG_NEXT(h, r)) {
			if (h->nlmsg_type == NLMSG_ERROR)
				return -1;
			if (h->nlmsg_type != XFRM_MSG_NEWSADINFO)
				continue;
			size_t alen = h->nlmsg_len - NLMSG_LENGTH(sizeof(uint32_t));
			struct nlattr *a = (struct nlattr *)((uint8_t *)NLMSG_DATA(h) + 4);

			while (alen >= NLA_HDRLEN && a->nla_len >= NLA_HDRLEN &&
			       a->nla_len <= alen) {
				if (a->nla_type == XFRMA_SAD_CNT)
					return *(uint32_t *)((uint8_t *)a + NLA_HDRLEN);
				size_t step = NLA_ALIGN((size_t)a->nla_len);

				if (step >= alen)
					break;
				alen -= step;
				a = (struct nlattr *)((uint8_t *)a + step);
			}
			return -1;
		}
	}
}

static int wait_count(const char *op, long target, double timeout)
{
	int fd = nl_open();
	int ge = !strcmp(op, "ge");
	double t0 = now_s();
	long c = -1;

	while (now_s() - t0 < timeout) {
		c = sad_count(fd);
		if (ge ? c >= target : c <= target) {
			struct timespec rt;

			clock_gettime(CLOCK_REALTIME, &rt);
			printf("RESULT method=%s phase=wait n=%ld secs=%.6f ok=1 err=0 lost=0 at=%.6f\n",
			       opt_label, c, now_s() - t0, (double)rt.tv_sec + rt.tv_nsec / 1e9);
			return 0;
		}
		/* Every 20 ms: a few syscalls, about 1 % of the guest's CPU under UML. */
		usleep(20000);
	}
	printf("RESULT method=%s phase=wait n=%ld secs=%.6f ok=0 err=1 lost=0 timeout\n",
	       opt_label, c, now_s() - t0);
	return 1;
}

/* --- ip -batch input, processes ------------------------------------------ */

static void ip4(uint32_t a, char *s)
{
	const uint8_t *b = (const uint8_t *)&a;

	sprintf(s, "%u.%u.%u.%u", b[0], b[1], b[2], b[3]);
}

static void gen_batch(const char *what, long n)
{
	for (long i = 0; i < n; i++) {
		char s[16], d[16];
		uint32_t src, dst;
		uint8_t ek[ENC_BITS / 8], ak[AUTH_BITS / 8];

		sa_addrs(i, 1, 2, &src, &dst);
		ip4(src, s);
		ip4(dst, d);
		if (strcmp(what, "add")) {
			printf("xfrm state delete src %s dst %s proto esp spi 0x%x\n", s, d,
			       (unsigned)spi_of(i));
			continue;
		}
		fill_key(ek, sizeof(ek), i, 0xaa);
		fill_key(ak, sizeof(ak), i, 0x55);
		printf("xfrm state add src %s dst %s proto esp spi 0x%x mode transport replay-window 32 "
		       "enc 'cbc(aes)' 0x", s, d, (unsigned)spi_of(i));
		for (size_t j = 0; j < sizeof(ek); j++)
			printf("%02x", ek[j]);
		printf(" auth-trunc 'hmac(sha512)' 0x");
		for (size_t j = 0; j < sizeof(ak); j++)
			printf("%02x", ak[j]);
		printf(" %d limit time-soft %d limit time-hard %d\n", ICV_BITS, SOFT_S, HARD_S);
	}
}

static int timeit(long n, char **argv)
{
	double t0 = now_s();
	int status;
	pid_t pid = fork();

	if (pid < 0)
		die("fork");
	if (pid == 0) {
		if (opt_out) {
			int fd = open(opt_out, O_WRONLY | O_CREAT | O_TRUNC, 0600);

			if (fd < 0 || dup2(fd, STDOUT_FILENO) < 0)
				_exit(127);
		}
		execvp(argv[0], argv);
		_exit(127);
	}
	if (waitpid(pid, &status, 0) < 0)
		die("waitpid");
	result("run", n, now_s() - t0, WIFEXITED(status) && !WEXITSTATUS(status), 0, 0, NULL);
	return !(WIFEXITED(status) && !WEXITSTATUS(status));
}

/* Start CMD with NOTIFY_SOCKET (abstract) and wait for its READY=1. */
static int start_ready(char **argv, double timeout)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char name[64], buf[512];
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	struct timespec forked_at;
	socklen_t len;
	double t0;
	pid_t pid;

	snprintf(name, sizeof(name), "@sakeyd-bench-%d", (int)getpid());
	memcpy(sa.sun_path + 1, name + 1, strlen(name) - 1);
	len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(name));
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, len))
		die("notify socket");
	setenv("NOTIFY_SOCKET", name, 1);
	/* wait-count's at= is CLOCK_REALTIME too: exec -> SAs installed, seen from outside. */
	clock_gettime(CLOCK_REALTIME, &forked_at);
	t0 = now_s();
	pid = fork();
	if (pid < 0)
		die("fork");
	if (pid == 0) {
		/* Our stdout is the driver's pipe: the daemon logs to stderr only. */
		dup2(STDERR_FILENO, STDOUT_FILENO);
		execvp(argv[0], argv);
		_exit(127);
	}
	for (;;) {
		struct pollfd pfd = { fd, POLLIN, 0 };
		int status = 0;
		bool exited = waitpid(pid, &status, WNOHANG) == pid;

		/* A daemon that exits (a refused config) never says READY=1. */
		if (exited || now_s() - t0 > timeout) {
			/* exit=N, signal=N, or still running when the time was up. */
			char how[32] = "exit=running";

			if (exited && WIFEXITED(status))
				snprintf(how, sizeof(how), "exit=%d", WEXITSTATUS(status));
			else if (exited && WIFSIGNALED(status))
				snprintf(how, sizeof(how), "signal=%d", WTERMSIG(status));
			printf("RESULT method=%s phase=ready n=0 secs=%.6f ok=0 err=1 lost=0 pid=%d "
			       "%s\n",
			       opt_label, now_s() - t0, (int)pid, how);
			return 1;
		}
		if (poll(&pfd, 1, 100) <= 0)
			continue;
		ssize_t r = recv(fd, buf, sizeof(buf) - 1, 0);

		if (r <= 0)
			continue;
		buf[r] = 0;
		if (strstr(buf, "READY=1") && !strstr(buf, "RELOADING")) {
			printf("RESULT method=%s phase=ready n=0 secs=%.6f ok=1 err=0 lost=0 pid=%d "
			       "forked_at=%.6f\n",
			       opt_label, now_s() - t0, (int)pid,
			       (double)forked_at.tv_sec + forked_at.tv_nsec / 1e9);
			fflush(stdout);
			/* Stay its parent: the driver stops it and waits for us. */
			close(fd);
			if (waitpid(pid, &status, 0) < 0)
				die("waitpid");
			return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
		}
	}
}

/* --- EXPIRE -> alert latency --------------------------------------------- */

static void expire_sa(uint8_t type, uint8_t *buf, size_t *len, long i, uint64_t soft, uint32_t seq)
{
	uint32_t src, dst;

	sa_addrs(i * opt_per_link, 3, 4, &src, &dst); /* an outbound SA of pair i */
	*len = pfkey_build(buf, type, i, opt_spi0 + (uint32_t)i, src, dst, soft, soft + 3600, seq);
}

static int expire_lat(long n, long interval_ms, long soft, const char *out)
{
	double t_setup = now_s();
	int lfd = pfkey_open(), afd = pfkey_open();
	double t_open = now_s() - t_setup, t_reg;
	static uint8_t buf[MSG_MAX], rbuf[RBUF];
	struct sched_param sp = { .sched_priority = 50 };
	struct sadb_msg reg = {
		.sadb_msg_version = PF_KEY_V2,
		.sadb_msg_type = SADB_REGISTER,
		.sadb_msg_satype = SADB_SATYPE_ESP,
		.sadb_msg_len = sizeof(reg) / 8,
		.sadb_msg_seq = 1,
		.sadb_msg_pid = (uint32_t)getpid(),
	};
	long added = 0, seen = 0, late_at = -1;
	double next, deadline, late_max = 0, send_max = 0;
	FILE *f = fopen(out, "w");

	if (!f)
		die(out);
	/* Run first when the EXPIRE is queued, before sakeyd can: the stamp is its arrival. */
	if (sched_setscheduler(0, SCHED_FIFO, &sp))
		perror("SCHED_FIFO (stamps may be late)");
	t_reg = now_s();
	if (send(lfd, &reg, sizeof(reg), 0) < 0)
		die("SADB_REGISTER");
	t_reg = now_s() - t_reg;
	/* The schedule starts after the set-up: from before it, the first adds would bunch. */
	next = now_s();
	t_setup = next - t_setup;
	deadline = next + (double)n * interval_ms / 1000 + soft + 10;
	while (seen < n && now_s() < deadline) {
		int wait = 1000;

		if (added < n) {
			double d = next - now_s();

			if (d <= 0) {
				size_t len;

				double t_send = now_s(), took;

				/* An add late on its schedule makes the EXPIREs come in a burst. */
				if (-d > late_max) {
					late_max = -d;
					late_at = added;
				}
				expire_sa(SADB_ADD, buf, &len, added, (uint64_t)soft, (uint32_t)added + 1);
				if (send(afd, buf, len, 0) < 0)
					die("send ADD");
				took = now_s() - t_send;
				if (took > send_max)
					send_max = took;
				added++;
				next += interval_ms / 1000.0;
				continue;
			}
			wait = (int)(d * 1000) + 1;
		}
		struct pollfd p[2] = { { lfd, POLLIN, 0 }, { afd, POLLIN, 0 } };

		if (poll(p, 2, wait) <= 0)
			continue;
		if (p[0].revents & POLLIN) {
			ssize_t r = recv(lfd, rbuf, sizeof(rbuf), MSG_DONTWAIT);
			long long t = now_ns();
			const struct sadb_msg *m = (const struct sadb_msg *)rbuf;

			if (r >= (ssize_t)sizeof(*m) && m->sadb_msg_type == SADB_EXPIRE) {
				/* the SA extension follows the header; soft has LIFETIME_SOFT */
				const uint8_t *p2 = rbuf + sizeof(*m), *end = rbuf + r;
				uint32_t spi = 0;
				int is_soft = 0;

				while (p2 + 4 <= end) {
					const struct sadb_ext *x = (const struct sadb_ext *)p2;
					size_t xl = (size_t)x->sadb_ext_len * 8;

					if (xl == 0 || p2 + xl > end)
						break;
					if (x->sadb_ext_type == SADB_EXT_SA)
						spi = ntohl(((const struct sadb_sa *)p2)->sadb_sa_spi);
					if (x->sadb_ext_type == SADB_EXT_LIFETIME_SOFT)
						is_soft = 1;
					p2 += xl;
				}
				if (is_soft && spi >= opt_spi0 && spi < opt_spi0 + (uint32_t)n) {
					fprintf(f, "EXPIRE 0x%x %lld\n", spi, t);
					seen++;
				}
			}
		}
		if (p[1].revents & POLLIN)
			while (recv(afd, rbuf, sizeof(rbuf), MSG_DONTWAIT) > 0)
				;
	}
	fclose(f);
	printf("RESULT method=%s phase=expire n=%ld secs=0 ok=%ld err=%ld lost=0 late_max_ms=%.1f "
	       "late_at=%ld send_max_ms=%.1f setup_ms=%.1f open_ms=%.1f register_ms=%.1f\n", opt_label, n,
	       seen, n - seen, late_max * 1e3, late_at, send_max * 1e3, t_setup * 1e3, t_open * 1e3,
	       t_reg * 1e3);
	return seen == n ? 0 : 1;
}

static void expire_del(long n)
{
	int fd = pfkey_open();
	static uint8_t buf[MSG_MAX], rbuf[RBUF];
	uint32_t pid = (uint32_t)getpid();

	for (long i = 0; i < n; i++) {
		size_t len;
		int e;

		expire_sa(SADB_DELETE, buf, &len, i, 0, (uint32_t)i + 1);
		if (send(fd, buf, len, 0) < 0)
			die("send DELETE");
		for (;;) {
			ssize_t r = recv(fd, rbuf, sizeof(rbuf), 0);

			if (r < 0 || is_reply(rbuf, r, SADB_DELETE, pid, &e))
				break;
		}
	}
	close(fd);
}

static int spawn_lat(long n, long interval_ms, const char *prog, const char *out)
{
	FILE *f = fopen(out, "w");
	char ev[] = "SAKEYD_EVENT=spawn", spi[32];
	char *envp[] = { ev, spi, NULL };
	char *args[] = { (char *)prog, NULL };
	sigset_t none, all;
	long failed = 0;

	if (!f)
		die(out);
	sigemptyset(&none);
	sigfillset(&all);
	for (long i = 0; i < n; i++) {
		posix_spawn_file_actions_t fa;
		posix_spawnattr_t attr;
		long long t0;
		pid_t pid;
		int ret;

		snprintf(spi, sizeof(spi), "SAKEYD_SPI=0x%lx", (unsigned long)opt_spi0 + (unsigned long)i);
		posix_spawn_file_actions_init(&fa);
		posix_spawnattr_init(&attr);
		posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
		posix_spawn_file_actions_adddup2(&fa, STDERR_FILENO, STDOUT_FILENO);
		posix_spawn_file_actions_addchdir_np(&fa, "/");
		posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK |
							POSIX_SPAWN_SETSIGDEF);
		posix_spawnattr_setsigmask(&attr, &none);
		posix_spawnattr_setsigdefault(&attr, &all);
		t0 = now_ns();
		ret = posix_spawn(&pid, prog, &fa, &attr, args, envp);
		posix_spawn_file_actions_destroy(&fa);
		posix_spawnattr_destroy(&attr);
		if (ret) {
			failed++;
			continue;
		}
		fprintf(f, "SPAWN 0x%lx %lld\n", (unsigned long)opt_spi0 + (unsigned long)i, t0);
		usleep((useconds_t)interval_ms * 1000);
		waitpid(pid, NULL, 0);
	}
	fclose(f);
	printf("RESULT method=%s phase=spawn n=%ld secs=0 ok=%ld err=%ld lost=0\n", opt_label, n,
	       n - failed, failed);
	return failed ? 1 : 0;
}

static int stamp(const char *out)
{
	long long t = now_ns();
	const char *ev = getenv("SAKEYD_EVENT"), *spi = getenv("SAKEYD_SPI");
	char line[128];
	int fd = open(out, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	int n;

	if (fd < 0)
		return 1;
	n = snprintf(line, sizeof(line), "%s %s %lld\n", ev ? ev : "-", spi ? spi : "-", t);
	/* One write with O_APPEND: lines of concurrent alerts stay whole. */
	if (write(fd, line, (size_t)n) != n)
		return 1;
	close(fd);
	return 0;
}

static void usage(void)
{
	fprintf(stderr, "usage: floor [-E] [-K PERLINK] [-L PREFIX] [-r RCVBUF] [-w WINDOW] [-b BATCH] [-s FIRSTSPI] [-m LABEL] [-o FILE] COMMAND ...\n"
			"see the header of tests/bench/floor.c\n");
	exit(2);
}

int main(int argc, char **argv)
{
	int c;
	const char *cmd, *base = strrchr(argv[0], '/');

	if (!strcmp(base ? base + 1 : argv[0], STAMP_NAME))
		return stamp(STAMP_FILE);
	while ((c = getopt(argc, argv, "+EK:L:r:w:b:s:m:o:")) != -1) {
		switch (c) {
		case 'E':
			opt_esn = 1;
			break;
		case 'r':
			opt_rcvbuf = strtol(optarg, NULL, 0);
			break;
		case 'w':
			opt_window = strtol(optarg, NULL, 0);
			break;
		case 'b':
			opt_batch = strtol(optarg, NULL, 0);
			if (opt_batch < 1 || opt_batch > SBATCH)
				usage();
			break;
		case 's':
			opt_spi0 = (uint32_t)strtoul(optarg, NULL, 0);
			break;
		case 'K':
			opt_per_link = strtol(optarg, NULL, 0);
			if (opt_per_link != 2 && opt_per_link != 4 && opt_per_link != 17)
				usage();
			break;
		case 'L':
			opt_link_prefix = strtol(optarg, NULL, 0);
			if (opt_link_prefix < 1 || opt_link_prefix > 0xffffff)
				usage();
			break;
		case 'm':
			opt_label = optarg;
			break;
		case 'o':
			opt_out = optarg;
			break;
		default:
			usage();
		}
	}
	if (optind >= argc)
		usage();
	cmd = argv[optind++];
	if (!opt_label)
		opt_label = cmd;
#define ARG(k) (optind + (k) < argc ? argv[optind + (k)] : (usage(), ""))
#define NUM(k) strtol(ARG(k), NULL, 0)
	if (!strcmp(cmd, "add-sync"))
		pfkey_sync(SADB_ADD, NUM(0));
	else if (!strcmp(cmd, "del-sync"))
		pfkey_sync(SADB_DELETE, NUM(0));
	else if (!strcmp(cmd, "add-pipe"))
		pfkey_pipe(SADB_ADD, NUM(0));
	else if (!strcmp(cmd, "del-pipe"))
		pfkey_pipe(SADB_DELETE, NUM(0));
	else if (!strcmp(cmd, "nl-add-batch"))
		nl_batch(1, NUM(0));
	else if (!strcmp(cmd, "nl-del-batch"))
		nl_batch(0, NUM(0));
	else if (!strcmp(cmd, "nl-rotate"))
		nl_rotate(NUM(0));
	else if (!strcmp(cmd, "dump"))
		pfkey_dump();
	else if (!strcmp(cmd, "count")) {
		int fd = nl_open();

		printf("%ld\n", sad_count(fd));
	} else if (!strcmp(cmd, "wait-count"))
		return wait_count(ARG(0), NUM(1), strtod(ARG(2), NULL));
	else if (!strcmp(cmd, "gen-batch"))
		gen_batch(ARG(0), NUM(1));
	else if (!strcmp(cmd, "timeit")) {
		long n = NUM(0);

		if (strcmp(ARG(1), "--"))
			usage();
		return timeit(n, argv + optind + 2);
	} else if (!strcmp(cmd, "start-ready")) {
		if (strcmp(ARG(0), "--"))
			usage();
		return start_ready(argv + optind + 1, 600);
	} else if (!strcmp(cmd, "expire-lat"))
		return expire_lat(NUM(0), NUM(1), NUM(2), ARG(3));
	else if (!strcmp(cmd, "expire-del"))
		expire_del(NUM(0));
	else if (!strcmp(cmd, "spawn-lat"))
		return spawn_lat(NUM(0), NUM(1), ARG(2), ARG(3));
	else if (!strcmp(cmd, "stamp"))
		return stamp(ARG(0));
	else
		usage();
	return 0;
}
