/* SPDX-License-Identifier: ISC */
/*
 * LD_PRELOAD shim for the kernel suite: SIGKILL the process right after it
 * sent a chosen PF_KEY request, so a test can crash sakeyd between two kernel
 * operations of one reconciliation pass (after the new outbound SA, before
 * the old one is deleted) or between a kernel operation and its ledger write,
 * instants too short to hit with kill(1) from outside.
 *
 *   SAKEYD_TEST_CRASH_AT     add-in | add-out | delete-in | delete-out
 *   SAKEYD_TEST_CRASH_LOCAL  the host's IPv4 address: "out" is an SA from it,
 *                            "in" an SA to it
 *   SAKEYD_TEST_CRASH_SKIP   matching requests to let through first (default 0)
 *
 * sakeyd sends its PF_KEY requests with sendmmsg: the shim cuts the batch
 * after the chosen request, so it reaches the kernel (af_key handles it
 * inside its sendmsg) and the requests behind it do not; then the process
 * dies as by kill -9, before it reads the reply. Nothing happens without
 * SAKEYD_TEST_CRASH_AT; only sockets of PF_KEY are looked at.
 *
 * Just before dying it writes one line to stderr (the daemon's log in the
 * tests), "crash_at: SIGKILL after add in spi 0x... (request I of N of the
 * batch, N-I held back)": the daemon logs every request of a batch before it
 * sends the batch, so its last logged request is not the last one the kernel
 * got when a pass (e.g. a start-up catch-up) batches several kinds.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <dlfcn.h>
#include <linux/pfkeyv2.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int sendmmsg(int fd, struct mmsghdr *mm, unsigned int vlen, int flags);

static long seen; /* matching requests sent so far */

static long skip_n(void)
{
	const char *skip = getenv("SAKEYD_TEST_CRASH_SKIP");

	return skip ? atol(skip) : 0;
}

static bool is_pfkey(int fd)
{
	int domain = 0;
	socklen_t n = sizeof(domain);

	return getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &n) == 0 && domain == PF_KEY;
}

/*
 * The extension of type in msg, at least min_len bytes long: its offset, or
 * 0 if absent (or the message is malformed before it).
 */
static size_t find_ext(const uint8_t *msg, size_t len, uint16_t type, size_t min_len)
{
	size_t off = sizeof(struct sadb_msg);

	while (off + sizeof(struct sadb_ext) <= len) {
		struct sadb_ext ext;
		size_t ext_len;

		memcpy(&ext, msg + off, sizeof(ext));
		ext_len = (size_t)ext.sadb_ext_len * 8;
		if (ext_len < sizeof(ext) || off + ext_len > len)
			return 0;
		if (ext.sadb_ext_type == type && ext_len >= min_len)
			return off;
		off += ext_len;
	}
	return 0;
}

/* The IPv4 address of extension type in msg, or 0 if absent. */
static uint32_t ext_addr(const uint8_t *msg, size_t len, uint16_t type)
{
	size_t off = find_ext(msg, len, type,
			      sizeof(struct sadb_address) + sizeof(struct sockaddr_in));
	struct sockaddr_in sin;

	if (!off)
		return 0;
	memcpy(&sin, msg + off + sizeof(struct sadb_address), sizeof(sin));
	return sin.sin_family == AF_INET ? sin.sin_addr.s_addr : 0;
}

static bool matches(const void *buf, size_t len)
{
	const char *at = getenv("SAKEYD_TEST_CRASH_AT"), *local = getenv("SAKEYD_TEST_CRASH_LOCAL");
	const uint8_t *msg = buf;
	struct in_addr me;
	uint8_t type;
	bool out;

	if (!at || !local || inet_pton(AF_INET, local, &me) != 1 || len < sizeof(struct sadb_msg))
		return false;
	type = msg[1]; /* sadb_msg_type */
	if (type == SADB_ADD && !strncmp(at, "add-", 4))
		at += 4;
	else if (type == SADB_DELETE && !strncmp(at, "delete-", 7))
		at += 7;
	else
		return false;
	out = ext_addr(msg, len, SADB_EXT_ADDRESS_SRC) == me.s_addr;
	if (!out && ext_addr(msg, len, SADB_EXT_ADDRESS_DST) != me.s_addr)
		return false;
	return !strcmp(at, out ? "out" : "in");
}

/* The SPI (host order) of msg's SA extension, or 0 if absent. */
static uint32_t ext_spi(const uint8_t *msg, size_t len)
{
	size_t off = find_ext(msg, len, SADB_EXT_SA, sizeof(struct sadb_sa));
	struct sadb_sa sa;

	if (!off)
		return 0;
	memcpy(&sa, msg + off, sizeof(sa));
	return ntohl(sa.sadb_sa_spi);
}

static bool msg_matches(const struct mmsghdr *m)
{
	return m->msg_hdr.msg_iovlen == 1 &&
	       matches(m->msg_hdr.msg_iov[0].iov_base, m->msg_hdr.msg_iov[0].iov_len);
}

int sendmmsg(int fd, struct mmsghdr *mm, unsigned int vlen, int flags)
{
	static int (*real_sendmmsg)(int, struct mmsghdr *, unsigned int, int);
	unsigned int upto = vlen;
	bool die = false;
	long would = seen;
	int n;

	if (!real_sendmmsg)
		real_sendmmsg = (int (*)(int, struct mmsghdr *, unsigned int, int))dlsym(RTLD_NEXT,
											  "sendmmsg");
	if (!getenv("SAKEYD_TEST_CRASH_AT") || !is_pfkey(fd))
		return real_sendmmsg(fd, mm, vlen, flags);
	for (unsigned int i = 0; i < vlen; i++)
		if (msg_matches(&mm[i]) && would++ >= skip_n()) {
			upto = i + 1;
			die = true;
			break;
		}
	n = real_sendmmsg(fd, mm, upto, flags);
	for (int i = 0; i < n; i++)
		seen += msg_matches(&mm[i]);
	if (die && n == (int)upto) {
		const struct iovec *iov = mm[upto - 1].msg_hdr.msg_iov;
		char line[160];
		int len = snprintf(line, sizeof(line),
				   "crash_at: SIGKILL after %s spi 0x%x (request %u of %u of the batch, "
				   "%u held back)\n",
				   getenv("SAKEYD_TEST_CRASH_AT"), ext_spi(iov->iov_base, iov->iov_len),
				   upto, vlen, vlen - upto);

		if (len > 0 && write(STDERR_FILENO, line, (size_t)len) < 0)
			len = 0; /* nothing to do: the kill below is what matters */
		raise(SIGKILL);
	}
	return n;
}
