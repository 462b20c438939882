/* SPDX-License-Identifier: ISC */
/*
 * Real-kernel tests of the PF_KEY codec and the kernel channel. Runs as root
 * inside User-Mode Linux (uml-run.sh), never on the build host.
 *
 *   ktest_pfkey [--fixtures DIR] [TEST...]
 *
 * With --fixtures, the raw kernel messages the tests receive are saved there
 * (tests/fixtures/ feeds the unit tests and the fuzz corpus).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "svc/kernel/channel.h"
#include "svc/kernel/pfkey.h"

static const char *fixture_dir;
static char failure[512];

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

/* --- raw socket helpers ------------------------------------------------- */

static uint32_t seqno = 100;

static int pfk_socket(void)
{
	int fd = socket(PF_KEY, SOCK_RAW | SOCK_CLOEXEC, PF_KEY_V2);
	int size = 8 * 1024 * 1024;

	if (fd >= 0)
		setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof(size));
	return fd;
}

static int pfk_send(int fd, struct pfkey_msg *m)
{
	uint8_t buf[4096];
	ssize_t len;

	if (!m->seq)
		m->seq = ++seqno;
	m->pid = (uint32_t)getpid();
	len = pfkey_encode(m, buf, sizeof(buf));
	if (len < 0)
		return (int)len;
	if (send(fd, buf, (size_t)len, 0) != len)
		return -errno;
	return 0;
}

static void save_fixture(const char *name, const uint8_t *buf, size_t len)
{
	char path[1024];
	FILE *f;

	if (!fixture_dir)
		return;
	snprintf(path, sizeof(path), "%s/%s.bin", fixture_dir, name);
	f = fopen(path, "wb");
	if (!f || fwrite(buf, 1, len, f) != len)
		fprintf(stderr, "cannot write %s\n", path);
	if (f)
		fclose(f);
}

struct rx {
	uint8_t buf[65536];
	size_t len;
	struct pfkey_msg m;
};

/*
 * Receive messages until one satisfies match (type, and if seq != 0 the seq),
 * within timeout_ms. Returns 0 and fills rx, -ETIMEDOUT, or -EBADMSG if the
 * codec rejected a kernel message (a codec bug: the test fails).
 */
static int pfk_recv_match(int fd, struct rx *rx, uint8_t type, uint32_t seq, uint32_t spi,
			  int timeout_ms)
{
	struct timespec t0, t;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		const char *why = NULL;
		long waited;
		ssize_t n;

		clock_gettime(CLOCK_MONOTONIC, &t);
		waited = (t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000;
		if (waited >= timeout_ms)
			return -ETIMEDOUT;
		if (poll(&p, 1, (int)(timeout_ms - waited)) <= 0)
			continue;
		n = recv(fd, rx->buf, sizeof(rx->buf), MSG_DONTWAIT);
		if (n <= 0)
			continue;
		rx->len = (size_t)n;
		if (pfkey_decode(rx->buf, rx->len, &rx->m, &why)) {
			fprintf(stderr, "codec rejected a kernel message: %s\n", why);
			return -EBADMSG;
		}
		if (rx->m.type != type)
			continue;
		if (seq && rx->m.seq != seq)
			continue;
		if (spi && (!(rx->m.present & PFKEY_EXT_BIT(SADB_EXT_SA)) || rx->m.spi != spi))
			continue;
		return 0;
	}
}

/* Send m and wait for its reply; returns the reply's errno as -errno, or a local error. */
static int pfk_call(int fd, struct pfkey_msg *m, struct rx *rx)
{
	int ret;

	m->seq = 0;
	ret = pfk_send(fd, m);
	if (ret)
		return ret;
	ret = pfk_recv_match(fd, rx, m->type, m->seq, 0, 2000);
	if (ret)
		return ret;
	return rx->m.errno_val ? -(int)rx->m.errno_val : 0;
}

static void drain(int fd)
{
	uint8_t buf[65536];

	while (recv(fd, buf, sizeof(buf), MSG_DONTWAIT) > 0)
		;
}

static int do_register(int fd, struct rx *rx)
{
	struct pfkey_msg m;

	pfkey_msg_init(&m, SADB_REGISTER, SADB_SATYPE_ESP, 0, 0);
	return pfk_call(fd, &m, rx);
}

/* --- SA construction ----------------------------------------------------- */

static const uint8_t enc_key[32] = { 0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19,
				     0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f, 0x20, 0x21, 0x22, 0x23,
				     0x24, 0x25, 0x26, 0x27, 0x28, 0x29, 0x2a, 0x2b, 0x2c, 0x2d,
				     0x2e, 0x2f };
static uint8_t auth_key[64];

struct sa_def {
	uint32_t spi;
	const char *src, *dst;
	uint8_t mode;
	uint8_t ealg, aalg;
	uint16_t ebits, abits;
	uint64_t soft_add, hard_add;
};

static int build_sa(struct pfkey_msg *m, uint8_t type, const struct sa_def *d, bool keys)
{
	struct pfkey_addr src, dst;

	if (pfkey_addr_from_string(&src, d->src) || pfkey_addr_from_string(&dst, d->dst))
		return -EINVAL;
	pfkey_msg_init(m, type, SADB_SATYPE_ESP, 0, 0);
	pfkey_set_sa(m, d->spi, keys ? 32 : 0, keys ? d->aalg : 0, keys ? d->ealg : 0);
	pfkey_set_addr(m, SADB_EXT_ADDRESS_SRC, &src);
	pfkey_set_addr(m, SADB_EXT_ADDRESS_DST, &dst);
	if (!keys)
		return 0;
	pfkey_set_key(m, SADB_EXT_KEY_ENCRYPT, enc_key, d->ebits);
	if (d->aalg)
		pfkey_set_key(m, SADB_EXT_KEY_AUTH, auth_key, d->abits);
	pfkey_set_sa2(m, d->mode, 0);
	if (d->hard_add) {
		struct pfkey_lifetime soft = { .addtime = d->soft_add };
		struct pfkey_lifetime hard = { .addtime = d->hard_add };

		pfkey_set_lifetime(m, SADB_EXT_LIFETIME_SOFT, &soft);
		pfkey_set_lifetime(m, SADB_EXT_LIFETIME_HARD, &hard);
	}
	return 0;
}

static const struct sa_def sha512_v4 = {
	.spi = 0x2a0101, .src = "192.0.2.1", .dst = "198.51.100.7", .mode = IPSEC_MODE_TRANSPORT,
	.ealg = SADB_X_EALG_AESCBC, .aalg = SADB_X_AALG_SHA2_512HMAC, .ebits = 256, .abits = 512,
};

/* --- tests --------------------------------------------------------------- */

static int test_register(void)
{
	struct rx *rx = calloc(1, sizeof(*rx));
	bool sha512 = false, sha384 = false, aescbc = false, gcm = false;
	int fd = pfk_socket(), ret = -1;

	CHECK(fd >= 0, "socket: %s", strerror(errno));
	CHECK(do_register(fd, rx) == 0, "REGISTER failed");
	save_fixture("register-reply", rx->buf, rx->len);
	CHECK(rx->m.present & PFKEY_EXT_BIT(SADB_EXT_SUPPORTED_AUTH), "no SUPPORTED_AUTH");
	CHECK(rx->m.present & PFKEY_EXT_BIT(SADB_EXT_SUPPORTED_ENCRYPT), "no SUPPORTED_ENCRYPT");
	for (unsigned i = 0; i < rx->m.nauth_algs && i < PFKEY_MAX_ALGS; i++) {
		sha512 |= rx->m.auth_algs[i].id == SADB_X_AALG_SHA2_512HMAC;
		sha384 |= rx->m.auth_algs[i].id == SADB_X_AALG_SHA2_384HMAC;
	}
	for (unsigned i = 0; i < rx->m.nenc_algs && i < PFKEY_MAX_ALGS; i++) {
		aescbc |= rx->m.enc_algs[i].id == SADB_X_EALG_AESCBC;
		gcm |= rx->m.enc_algs[i].id == SADB_X_EALG_AES_GCM_ICV16;
	}
	CHECK(sha512 && sha384 && aescbc, "SUPPORTED lacks sha512/sha384/aes-cbc");
	CHECK(!gcm, "GCM listed by PF_KEY");
	/* A second REGISTER of the same satype: EEXIST (af_key.c: pfkey_register). */
	CHECK(do_register(fd, rx) == -EEXIST, "second REGISTER not EEXIST");
	ret = 0;
out:
	if (fd >= 0)
		close(fd);
	free(rx);
	return ret;
}

static int roundtrip(const char *name, const char *src, const char *dst, uint8_t mode, uint32_t spi)
{
	struct rx *rx = calloc(1, sizeof(*rx));
	struct sa_def d = sha512_v4;
	struct pfkey_msg m;
	char fx[128];
	int fd = pfk_socket(), ret = -1;

	d.spi = spi;
	d.src = src;
	d.dst = dst;
	d.mode = mode;
	CHECK(fd >= 0, "socket");
	CHECK(build_sa(&m, SADB_ADD, &d, true) == 0, "build");
	CHECK(pfk_call(fd, &m, rx) == 0, "ADD errno %u", rx->m.errno_val);
	snprintf(fx, sizeof(fx), "add-reply-%s", name);
	save_fixture(fx, rx->buf, rx->len);
	/* The ADD reply is the broadcast: it carries the keys (af_key.c: key_notify_sa). */
	CHECK(rx->m.present & PFKEY_EXT_BIT(SADB_EXT_KEY_ENCRYPT), "ADD reply without key");

	CHECK(build_sa(&m, SADB_GET, &d, false) == 0, "build");
	CHECK(pfk_call(fd, &m, rx) == 0, "GET errno %u", rx->m.errno_val);
	snprintf(fx, sizeof(fx), "get-reply-%s", name);
	save_fixture(fx, rx->buf, rx->len);
	CHECK(rx->m.spi == spi, "spi %#x", rx->m.spi);
	CHECK(rx->m.encrypt == SADB_X_EALG_AESCBC && rx->m.auth == SADB_X_AALG_SHA2_512HMAC,
	      "algs %u/%u", rx->m.encrypt, rx->m.auth);
	CHECK(rx->m.key_enc.bits == 256 && !memcmp(rx->m.key_enc.data, enc_key, 32), "enc key");
	CHECK(rx->m.key_auth.bits == 512 && !memcmp(rx->m.key_auth.data, auth_key, 64), "auth key");
	CHECK(rx->m.present & PFKEY_EXT_BIT(SADB_X_EXT_SA2), "no SA2");
	CHECK(rx->m.mode == mode, "mode %u", rx->m.mode);
	{
		struct pfkey_addr a;

		pfkey_addr_from_string(&a, src);
		CHECK(rx->m.src.family == a.family && !memcmp(rx->m.src.addr, a.addr,
			a.family == AF_INET ? 4 : 16), "src");
		pfkey_addr_from_string(&a, dst);
		CHECK(rx->m.dst.family == a.family && !memcmp(rx->m.dst.addr, a.addr,
			a.family == AF_INET ? 4 : 16), "dst");
	}
	CHECK(rx->m.present & PFKEY_EXT_BIT(SADB_EXT_LIFETIME_CURRENT), "no current lifetime");
	CHECK(rx->m.current.addtime > 1000000000, "addtime %llu",
	      (unsigned long long)rx->m.current.addtime);

	/* A duplicate (dst, spi, proto): EEXIST. */
	CHECK(build_sa(&m, SADB_ADD, &d, true) == 0, "build");
	CHECK(pfk_call(fd, &m, rx) == -EEXIST, "duplicate ADD not EEXIST");

	CHECK(build_sa(&m, SADB_DELETE, &d, false) == 0, "build");
	CHECK(pfk_call(fd, &m, rx) == 0, "DELETE errno %u", rx->m.errno_val);
	snprintf(fx, sizeof(fx), "delete-reply-%s", name);
	save_fixture(fx, rx->buf, rx->len);
	CHECK(build_sa(&m, SADB_GET, &d, false) == 0, "build");
	CHECK(pfk_call(fd, &m, rx) == -ESRCH, "GET after DELETE not ESRCH");
	snprintf(fx, sizeof(fx), "get-esrch-%s", name);
	save_fixture(fx, rx->buf, rx->len);
	ret = 0;
out:
	if (fd >= 0)
		close(fd);
	free(rx);
	return ret;
}

static int test_roundtrip_v4_transport(void)
{
	return roundtrip("v4-transport", "192.0.2.1", "198.51.100.7", IPSEC_MODE_TRANSPORT, 0x2a0201);
}

static int test_roundtrip_v4_tunnel(void)
{
	return roundtrip("v4-tunnel", "192.0.2.1", "198.51.100.7", IPSEC_MODE_TUNNEL, 0x2a0202);
}

static int test_roundtrip_v6_transport(void)
{
	return roundtrip("v6-transport", "2001:db8::1", "2001:db8::2", IPSEC_MODE_TRANSPORT, 0x2a0203);
}

static int test_roundtrip_v6_tunnel(void)
{
	return roundtrip("v6-tunnel", "2001:db8::1", "2001:db8::2", IPSEC_MODE_TUNNEL, 0x2a0204);
}

static int test_lifetimes(void)
{
	struct rx *rx = calloc(1, sizeof(*rx)), *orx = calloc(1, sizeof(*orx));
	int fd = pfk_socket(), obs = pfk_socket(), ret = -1;
	struct sa_def d = sha512_v4;
	struct pfkey_msg m;
	time_t t0;

	d.spi = 0x2a0301;
	d.soft_add = 2;
	d.hard_add = 4;
	CHECK(fd >= 0 && obs >= 0, "socket");
	CHECK(do_register(fd, rx) == 0, "REGISTER");
	drain(obs);
	CHECK(build_sa(&m, SADB_ADD, &d, true) == 0, "build");
	CHECK(pfk_call(fd, &m, rx) == 0, "ADD errno %u", rx->m.errno_val);
	CHECK(rx->m.present & PFKEY_EXT_BIT(SADB_EXT_LIFETIME_SOFT), "ADD reply lacks soft lifetime");
	CHECK(rx->m.soft.addtime == 2 && rx->m.hard.addtime == 4, "lifetimes %llu/%llu",
	      (unsigned long long)rx->m.soft.addtime, (unsigned long long)rx->m.hard.addtime);
	t0 = time(NULL);

	CHECK(pfk_recv_match(fd, rx, SADB_EXPIRE, 0, d.spi, 6000) == 0, "no soft EXPIRE");
	save_fixture("expire-soft", rx->buf, rx->len);
	CHECK(rx->m.present & PFKEY_EXT_BIT(SADB_EXT_LIFETIME_SOFT), "soft EXPIRE lacks LIFETIME_SOFT");
	CHECK(!(rx->m.present & PFKEY_EXT_BIT(SADB_EXT_LIFETIME_HARD)), "soft EXPIRE has LIFETIME_HARD");
	CHECK(rx->m.present & PFKEY_EXT_BIT(SADB_EXT_LIFETIME_CURRENT), "EXPIRE lacks CURRENT");
	CHECK(rx->m.present & PFKEY_EXT_BIT(SADB_EXT_ADDRESS_DST), "EXPIRE lacks DST");
	CHECK(!(rx->m.present & PFKEY_EXT_BIT(SADB_EXT_KEY_ENCRYPT)), "EXPIRE carries a key");
	CHECK(rx->m.soft.addtime == 2, "soft addtime %llu", (unsigned long long)rx->m.soft.addtime);
	CHECK(rx->m.pid == 0 && rx->m.seq == 0, "EXPIRE pid/seq %u/%u", rx->m.pid, rx->m.seq);
	CHECK(time(NULL) - t0 >= 1, "soft EXPIRE too early");

	CHECK(pfk_recv_match(fd, rx, SADB_EXPIRE, 0, d.spi, 6000) == 0, "no hard EXPIRE");
	save_fixture("expire-hard", rx->buf, rx->len);
	CHECK(rx->m.present & PFKEY_EXT_BIT(SADB_EXT_LIFETIME_HARD), "hard EXPIRE lacks LIFETIME_HARD");
	CHECK(rx->m.hard.addtime == 4, "hard addtime %llu", (unsigned long long)rx->m.hard.addtime);
	CHECK(time(NULL) - t0 >= 3, "hard EXPIRE too early");

	CHECK(build_sa(&m, SADB_GET, &d, false) == 0, "build");
	CHECK(pfk_call(fd, &m, rx) == -ESRCH, "SA still there after hard expiry");
	/* A hard expiry deletes the SA without a DELETE broadcast; unregistered sockets see nothing. */
	CHECK(pfk_recv_match(obs, orx, SADB_DELETE, 0, d.spi, 300) == -ETIMEDOUT,
	      "DELETE broadcast after hard expiry");
	CHECK(pfk_recv_match(obs, orx, SADB_EXPIRE, 0, d.spi, 100) == -ETIMEDOUT,
	      "unregistered socket got EXPIRE");
	ret = 0;
out:
	if (fd >= 0)
		close(fd);
	if (obs >= 0)
		close(obs);
	free(rx);
	free(orx);
	return ret;
}

static int test_ip_xfrm_broadcast(void)
{
	struct rx *rx = calloc(1, sizeof(*rx));
	int fd = pfk_socket(), ret = -1;

	CHECK(fd >= 0, "socket");
	CHECK(system("ip xfrm state add src 192.0.2.10 dst 192.0.2.20 proto esp spi 0x2a0401 "
		     "mode transport enc 'cbc(aes)' 0x000102030405060708090a0b0c0d0e0f "
		     "auth-trunc 'hmac(sha256)' "
		     "0x000102030405060708090a0b0c0d0e0f000102030405060708090a0b0c0d0e0f 128 "
		     "limit time-soft 2000 limit time-hard 3000") == 0,
	      "ip xfrm state add failed");
	CHECK(pfk_recv_match(fd, rx, SADB_ADD, 0, 0x2a0401, 2000) == 0, "no ADD broadcast");
	save_fixture("xfrm-add-broadcast", rx->buf, rx->len);
	/* Netlink-caused broadcasts carry nlmsg_pid, 0 from iproute2. */
	CHECK(rx->m.pid == 0, "pid %u", rx->m.pid);
	CHECK(rx->m.auth == SADB_X_AALG_SHA2_256HMAC && rx->m.encrypt == SADB_X_EALG_AESCBC,
	      "algs %u/%u", rx->m.auth, rx->m.encrypt);
	CHECK(rx->m.hard.addtime == 3000 && rx->m.soft.addtime == 2000, "lifetimes");
	CHECK(system("ip xfrm state delete src 192.0.2.10 dst 192.0.2.20 proto esp spi 0x2a0401") == 0,
	      "ip xfrm state delete");
	CHECK(pfk_recv_match(fd, rx, SADB_DELETE, 0, 0x2a0401, 2000) == 0, "no DELETE broadcast");
	save_fixture("xfrm-delete-broadcast", rx->buf, rx->len);
	/* A flush of an empty SAD broadcasts nothing: flush one SA. */
	CHECK(system("ip xfrm state add src 192.0.2.10 dst 192.0.2.20 proto esp spi 0x2a0402 "
		     "mode transport enc 'cbc(aes)' 0x000102030405060708090a0b0c0d0e0f") == 0,
	      "ip xfrm state add");
	CHECK(system("ip xfrm state flush") == 0, "flush");
	CHECK(pfk_recv_match(fd, rx, SADB_FLUSH, 0, 0, 2000) == 0, "no FLUSH broadcast");
	save_fixture("xfrm-flush-broadcast", rx->buf, rx->len);
	ret = 0;
out:
	if (fd >= 0)
		close(fd);
	free(rx);
	return ret;
}

static int send_udp(const char *dst, uint16_t port)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(port) };
	int s = socket(AF_INET, SOCK_DGRAM, 0), ret;

	inet_pton(AF_INET, dst, &sin.sin_addr);
	ret = (int)sendto(s, "x", 1, 0, (struct sockaddr *)&sin, sizeof(sin));
	ret = ret < 0 ? -errno : 0;
	close(s);
	return ret;
}

static int test_acquire_and_spd(void)
{
	struct rx *rx = calloc(1, sizeof(*rx));
	struct pfkey_ipsecreq req = {
		.proto = IPPROTO_ESP, .mode = IPSEC_MODE_TRANSPORT, .level = IPSEC_LEVEL_REQUIRE,
	};
	struct pfkey_addr src, dst;
	struct pfkey_msg m;
	int fd = pfk_socket(), ret = -1;
	uint32_t policy_id;

	CHECK(fd >= 0, "socket");
	CHECK(system("ip link add d0 type dummy && ip link set d0 up && "
		     "ip addr add 10.1.0.1/24 dev d0") == 0, "dummy link");
	CHECK(do_register(fd, rx) == 0, "REGISTER");
	pfkey_addr_from_string(&src, "10.1.0.0/24");
	pfkey_addr_from_string(&dst, "10.1.0.0/24");
	pfkey_msg_init(&m, SADB_X_SPDADD, SADB_SATYPE_UNSPEC, 0, 0);
	pfkey_set_addr(&m, SADB_EXT_ADDRESS_SRC, &src);
	pfkey_set_addr(&m, SADB_EXT_ADDRESS_DST, &dst);
	pfkey_set_policy(&m, IPSEC_POLICY_IPSEC, IPSEC_DIR_OUTBOUND, 0);
	CHECK(pfkey_policy_add_req(&m, &req) == 0, "add req");
	CHECK(pfk_call(fd, &m, rx) == 0, "SPDADD errno %u", rx->m.errno_val);
	save_fixture("spdadd-reply", rx->buf, rx->len);
	CHECK(rx->m.present & PFKEY_EXT_BIT(SADB_X_EXT_POLICY), "SPDADD reply lacks policy");
	CHECK(rx->m.policy.nreqs == 1 && rx->m.policy.reqs[0].proto == IPPROTO_ESP, "reqs");
	policy_id = rx->m.policy.id;
	CHECK(pfk_call(fd, &m, rx) == -EEXIST, "duplicate SPDADD not EEXIST");

	/* Traffic that hits the policy with no SA: an ACQUIRE to registered sockets. */
	send_udp("10.1.0.2", 9);
	CHECK(pfk_recv_match(fd, rx, SADB_ACQUIRE, 0, 0, 3000) == 0, "no ACQUIRE");
	save_fixture("acquire", rx->buf, rx->len);
	CHECK(rx->m.present & PFKEY_EXT_BIT(SADB_EXT_ADDRESS_DST), "ACQUIRE lacks DST");
	CHECK(rx->m.dst.addr[0] == 10 && rx->m.dst.addr[3] == 2, "ACQUIRE dst");
	CHECK(rx->m.present & PFKEY_EXT_BIT(SADB_X_EXT_POLICY), "ACQUIRE lacks policy");
	CHECK(rx->m.pid == 0 && rx->m.seq != 0, "ACQUIRE pid %u seq %u", rx->m.pid, rx->m.seq);

	/* SPDDUMP lists it; SPDDELETE2 by id removes it. */
	/* Dump replies count seq up from 1 and end with seq 0 (af_key.c: dump_sp). */
	pfkey_msg_init(&m, SADB_X_SPDDUMP, SADB_SATYPE_UNSPEC, 0, 0);
	CHECK(pfk_send(fd, &m) == 0, "send SPDDUMP");
	CHECK(pfk_recv_match(fd, rx, SADB_X_SPDDUMP, 0, 0, 2000) == 0, "no SPDDUMP reply");
	CHECK(rx->m.errno_val == 0 && rx->m.seq == 0, "SPDDUMP errno %u seq %u", rx->m.errno_val,
	      rx->m.seq);
	save_fixture("spddump", rx->buf, rx->len);
	CHECK(rx->m.policy.id == policy_id, "SPDDUMP id %u != %u", rx->m.policy.id, policy_id);
	pfkey_msg_init(&m, SADB_X_SPDDELETE2, SADB_SATYPE_UNSPEC, 0, 0);
	pfkey_set_policy(&m, IPSEC_POLICY_IPSEC, IPSEC_DIR_OUTBOUND, 0);
	m.policy.id = policy_id;
	CHECK(pfk_call(fd, &m, rx) == 0, "SPDDELETE2 errno %u", rx->m.errno_val);
	save_fixture("spddelete2-reply", rx->buf, rx->len);
	pfkey_msg_init(&m, SADB_X_SPDDUMP, SADB_SATYPE_UNSPEC, 0, 0);
	CHECK(pfk_send(fd, &m) == 0, "send SPDDUMP");
	CHECK(pfk_recv_match(fd, rx, SADB_X_SPDDUMP, 0, 0, 2000) == 0, "no SPDDUMP reply");
	CHECK(rx->m.errno_val == ENOENT, "SPD not empty after SPDDELETE2 (errno %u)",
	      rx->m.errno_val);

	/* SPDDELETE by selector of a policy that is gone: ENOENT. */
	pfkey_msg_init(&m, SADB_X_SPDDELETE, SADB_SATYPE_UNSPEC, 0, 0);
	pfkey_set_addr(&m, SADB_EXT_ADDRESS_SRC, &src);
	pfkey_set_addr(&m, SADB_EXT_ADDRESS_DST, &dst);
	pfkey_set_policy(&m, IPSEC_POLICY_IPSEC, IPSEC_DIR_OUTBOUND, 0);
	CHECK(pfk_call(fd, &m, rx) == -ENOENT, "SPDDELETE miss not ENOENT");
	ret = 0;
out:
	system("ip link del d0 2>/dev/null; ip xfrm state flush; ip xfrm policy flush");
	if (fd >= 0)
		close(fd);
	free(rx);
	return ret;
}

/*
 * The algorithm table of DESIGN.md against PF_KEY: the SADB ids, key sizes and
 * what the kernel does with each.
 */
static int test_algorithms(void)
{
	struct rx *rx = calloc(1, sizeof(*rx));
	struct sa_def d = sha512_v4;
	struct pfkey_msg m;
	int fd = pfk_socket(), ret = -1;
	FILE *p;
	char line[512];
	bool icv96 = false;

	CHECK(fd >= 0, "socket");
	/* aes-cbc-256-hmac-sha512 and -sha384: accepted. */
	d.spi = 0x2a0501;
	CHECK(build_sa(&m, SADB_ADD, &d, true) == 0 && pfk_call(fd, &m, rx) == 0, "sha512 refused");
	d.spi = 0x2a0502;
	d.aalg = SADB_X_AALG_SHA2_384HMAC;
	d.abits = 384;
	CHECK(build_sa(&m, SADB_ADD, &d, true) == 0 && pfk_call(fd, &m, rx) == 0, "sha384 refused");
	/* aes-gcm-128 / -256 (rfc4106, ICV 16): ENOSYS, PF_KEY has no AEAD. */
	d.spi = 0x2a0503;
	d.ealg = SADB_X_EALG_AES_GCM_ICV16;
	d.aalg = 0;
	d.ebits = 160;
	CHECK(build_sa(&m, SADB_ADD, &d, true) == 0, "build");
	CHECK(pfk_call(fd, &m, rx) == -ENOSYS, "GCM-128 not ENOSYS (errno %u)", rx->m.errno_val);
	save_fixture("add-gcm-enosys", rx->buf, rx->len);
	d.ebits = 288;
	CHECK(build_sa(&m, SADB_ADD, &d, true) == 0, "build");
	CHECK(pfk_call(fd, &m, rx) == -ENOSYS, "GCM-256 not ENOSYS");
	/* aes-cbc-256-hmac-sha256: accepted, but with a 96-bit ICV, not RFC 4868's 128. */
	d = sha512_v4;
	d.spi = 0x2a0504;
	d.aalg = SADB_X_AALG_SHA2_256HMAC;
	d.abits = 256;
	CHECK(build_sa(&m, SADB_ADD, &d, true) == 0 && pfk_call(fd, &m, rx) == 0, "sha256 refused");
	p = popen("ip xfrm state get src 192.0.2.1 dst 198.51.100.7 proto esp spi 0x2a0504", "r");
	CHECK(p, "popen");
	while (fgets(line, sizeof(line), p))
		if (strstr(line, "hmac(sha256)") && strstr(line, " 96"))
			icv96 = true;
	pclose(p);
	CHECK(icv96, "hmac(sha256) via PF_KEY did not get a 96-bit ICV");
	ret = 0;
out:
	system("ip xfrm state flush");
	if (fd >= 0)
		close(fd);
	free(rx);
	return ret;
}

/* --- kernel channel tests (libuv) ---------------------------------------- */

struct chan_ctx {
	struct kern *k;
	unsigned long ok, err, timeouts, losses, dumped;
	int dump_err;
	bool dump_done;
	uint8_t *seen; /* by spi - base */
	uint32_t base;
	unsigned n;
};

static void count_reply(struct kern *k, int err, const struct pfkey_msg *reply, void *arg)
{
	struct chan_ctx *c = arg;

	if (err == 0)
		c->ok++;
	else if (err == -ETIMEDOUT)
		c->timeouts++;
	else
		c->err++;
}

static void on_loss(struct kern *k, unsigned long count, void *arg)
{
	struct chan_ctx *c = arg;

	c->losses = count;
}

static void dump_each(struct kern *k, const struct pfkey_msg *m, void *arg)
{
	struct chan_ctx *c = arg;

	c->dumped++;
	if ((m->present & PFKEY_EXT_BIT(SADB_EXT_SA)) && m->spi >= c->base &&
	    m->spi - c->base < c->n)
		c->seen[m->spi - c->base]++;
}

static void dump_done(struct kern *k, int err, unsigned long n, void *arg)
{
	struct chan_ctx *c = arg;

	c->dump_err = err;
	c->dump_done = true;
}

/*
 * Run the loop until pred holds. UV_RUN_ONCE would block for I/O even when a
 * timer callback already made pred true, so a 10 ms check timer stops it.
 */
struct until {
	uv_timer_t timer;
	struct chan_ctx *c;
	bool (*pred)(struct chan_ctx *c);
};

static void until_cb(uv_timer_t *t)
{
	struct until *u = (struct until *)t;

	if (u->pred(u->c))
		uv_stop(t->loop);
}

static void run_until(uv_loop_t *loop, struct chan_ctx *c, bool (*pred)(struct chan_ctx *c))
{
	struct until u = { .c = c, .pred = pred };

	uv_timer_init(loop, &u.timer);
	uv_timer_start(&u.timer, until_cb, 10, 10);
	if (!pred(c))
		uv_run(loop, UV_RUN_DEFAULT);
	uv_close((uv_handle_t *)&u.timer, NULL);
	uv_run(loop, UV_RUN_NOWAIT);
}

static bool no_pending(struct chan_ctx *c)
{
	return kern_pending(c->k) == 0;
}

static bool dump_finished(struct chan_ctx *c)
{
	return c->dump_done;
}

static int add_many(struct chan_ctx *c, uint32_t base, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		struct sa_def d = sha512_v4;
		struct pfkey_msg m;
		char dst[64];
		int ret;

		/* One address pair per SA, as a fleet of links would have. */
		snprintf(dst, sizeof(dst), "10.%u.%u.%u", 100 + (i >> 16), (i >> 8) & 255, i & 255);
		d.spi = base + i;
		d.dst = dst;
		build_sa(&m, SADB_ADD, &d, true);
		ret = kern_request(c->k, &m, count_reply, c);
		if (ret)
			return ret;
	}
	return 0;
}

static int chan_open(uv_loop_t *loop, struct chan_ctx *c, int rcvbuf, unsigned timeout_ms,
		     unsigned window)
{
	struct kern_opts o = {
		.backend = KERN_BACKEND_PFKEY,
		.rcvbuf = rcvbuf,
		.timeout_ms = timeout_ms,
		.window = window,
		.on_loss = on_loss,
		.arg = c,
	};

	return kern_open(loop, &o, &c->k);
}

static int flush_all(void)
{
	return system("ip xfrm state flush");
}

static int test_channel_dump_5000(void)
{
	uv_loop_t loop;
	struct chan_ctx c = { .base = 0x2b0000, .n = 5000 };
	unsigned long missing = 0, dup = 0;
	int ret = -1;

	c.seen = calloc(c.n, 1);
	uv_loop_init(&loop);
	CHECK(chan_open(&loop, &c, 0, 5000, 0) == 0, "kern_open");
	CHECK(add_many(&c, c.base, c.n) == 0, "kern_request");
	run_until(&loop, &c, no_pending);
	CHECK(c.ok == c.n, "%lu of %u ADDs acknowledged (%lu errors, %lu timeouts)", c.ok, c.n,
	      c.err, c.timeouts);
	CHECK(kern_dump(c.k, SADB_DUMP, SADB_SATYPE_UNSPEC, dump_each, dump_done, &c) == 0, "dump");
	run_until(&loop, &c, dump_finished);
	CHECK(c.dump_err == 0, "dump: %s", strerror(-c.dump_err));
	for (unsigned i = 0; i < c.n; i++) {
		missing += c.seen[i] == 0;
		dup += c.seen[i] > 1;
	}
	CHECK(c.dumped == c.n && missing == 0 && dup == 0, "dumped %lu, missing %lu, dup %lu",
	      c.dumped, missing, dup);
	ret = 0;
out:
	if (c.k)
		kern_close(c.k);
	uv_run(&loop, UV_RUN_DEFAULT);
	if (uv_loop_close(&loop))
		ret = -1;
	flush_all();
	free(c.seen);
	return ret;
}

/*
 * The kernel drops replies that do not fit the receive buffer, silently
 * (af_key.c: pfkey_broadcast_one). With a tiny buffer and 400 requests sent
 * before the loop reads, most replies are lost: the channel must time them
 * out, report the loss, and a dump must then show the true state.
 */
static int test_channel_loss_resync(void)
{
	uv_loop_t loop;
	struct chan_ctx c = { .base = 0x2c0000, .n = 400 };
	struct kern_stats st;
	unsigned long missing = 0;
	int ret = -1;

	c.seen = calloc(c.n, 1);
	uv_loop_init(&loop);
	CHECK(chan_open(&loop, &c, 4096, 500, 1000) == 0, "kern_open");
	CHECK(add_many(&c, c.base, c.n) == 0, "kern_request");
	run_until(&loop, &c, no_pending);
	kern_get_stats(c.k, &st);
	CHECK(c.timeouts > 0 && st.timeouts == c.timeouts, "no reply lost (ok %lu)", c.ok);
	CHECK(c.ok + c.timeouts == c.n && c.err == 0, "ok %lu + timeouts %lu + err %lu != %u",
	      c.ok, c.timeouts, c.err, c.n);
	CHECK(c.losses > 0, "loss not reported");
	/* Resync: the dump is flow-controlled, so it is complete even through the small buffer. */
	CHECK(kern_dump(c.k, SADB_DUMP, SADB_SATYPE_UNSPEC, dump_each, dump_done, &c) == 0, "dump");
	run_until(&loop, &c, dump_finished);
	CHECK(c.dump_err == 0, "dump: %s", strerror(-c.dump_err));
	for (unsigned i = 0; i < c.n; i++)
		missing += c.seen[i] == 0;
	CHECK(missing == 0 && c.dumped == c.n, "resync dump: %lu SAs, %lu missing", c.dumped,
	      missing);
	printf("# loss test: %lu of %u replies lost and detected, all %u SAs found by the resync\n",
	       c.timeouts, c.n, c.n);
	ret = 0;
out:
	if (c.k)
		kern_close(c.k);
	uv_run(&loop, UV_RUN_DEFAULT);
	if (uv_loop_close(&loop))
		ret = -1;
	flush_all();
	free(c.seen);
	return ret;
}

/* An empty SADB dumps as zero messages, not as an error. */
static int test_channel_empty_dump(void)
{
	uv_loop_t loop;
	struct chan_ctx c = { 0 };
	int ret = -1;

	flush_all();
	uv_loop_init(&loop);
	CHECK(chan_open(&loop, &c, 0, 2000, 0) == 0, "kern_open");
	CHECK(kern_dump(c.k, SADB_DUMP, SADB_SATYPE_UNSPEC, dump_each, dump_done, &c) == 0, "dump");
	run_until(&loop, &c, dump_finished);
	CHECK(c.dump_err == 0 && c.dumped == 0, "empty dump: err %d, %lu messages", c.dump_err,
	      c.dumped);
	ret = 0;
out:
	if (c.k)
		kern_close(c.k);
	uv_run(&loop, UV_RUN_DEFAULT);
	if (uv_loop_close(&loop))
		ret = -1;
	return ret;
}

static const struct {
	const char *name;
	int (*fn)(void);
} tests[] = {
	{ "register", test_register },
	{ "roundtrip-v4-transport", test_roundtrip_v4_transport },
	{ "roundtrip-v4-tunnel", test_roundtrip_v4_tunnel },
	{ "roundtrip-v6-transport", test_roundtrip_v6_transport },
	{ "roundtrip-v6-tunnel", test_roundtrip_v6_tunnel },
	{ "lifetimes-soft-hard", test_lifetimes },
	{ "ip-xfrm-broadcast", test_ip_xfrm_broadcast },
	{ "acquire-and-spd", test_acquire_and_spd },
	{ "algorithms", test_algorithms },
	{ "channel-empty-dump", test_channel_empty_dump },
	{ "channel-dump-5000", test_channel_dump_5000 },
	{ "channel-loss-resync", test_channel_loss_resync },
};

static bool selected(const char *name, int argc, char **argv, int first)
{
	if (first >= argc)
		return true;
	for (int i = first; i < argc; i++)
		if (!strcmp(argv[i], name))
			return true;
	return false;
}

int main(int argc, char **argv)
{
	int first = 1, passed = 0, failed = 0, n = 0;

	if (argc > 2 && !strcmp(argv[1], "--fixtures")) {
		fixture_dir = argv[2];
		mkdir(fixture_dir, 0755);
		first = 3;
	}
	for (unsigned i = 0; i < sizeof(auth_key); i++)
		auth_key[i] = (uint8_t)(0xa0 + i);
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (access("/proc/net/pfkey", R_OK)) {
		printf("Bail out! /proc/net/pfkey missing: not inside the test kernel\n");
		return 1;
	}
	for (size_t i = 0; i < sizeof(tests) / sizeof(tests[0]); i++) {
		if (!selected(tests[i].name, argc, argv, first))
			continue;
		n++;
		failure[0] = 0;
		if (tests[i].fn() == 0) {
			printf("ok %d - %s\n", n, tests[i].name);
			passed++;
		} else {
			printf("not ok %d - %s: %s\n", n, tests[i].name, failure);
			failed++;
		}
	}
	printf("1..%d\n%d passed, %d failed\n", n, passed, failed);
	return failed || !n ? 1 : 0;
}
