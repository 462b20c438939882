/* SPDX-License-Identifier: ISC */
/* The simulated SADB against Linux af_key's rules, and the kernel channel's loss recovery on it. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "svc/kernel/channel.h"
#include "svc/kernel/sim.h"

static int64_t fake_now = 1800000000;

static int64_t clock_fn(void *arg)
{
	return fake_now;
}

struct env {
	uv_loop_t loop;
	struct sim *sim;
	int a, b; /* two raw clients */
};

static const uint8_t key[64] = { 1, 2, 3, 4, 5, 6, 7, 8 };

static int setup(void **state)
{
	struct env *e = calloc(1, sizeof(*e));
	struct sim_opts o = { .now = clock_fn, .acq_expires = 3, .tick_ms = 3600000 };

	uv_loop_init(&e->loop);
	assert_int_equal(sim_new(&e->loop, &o, &e->sim), 0);
	assert_int_equal(sim_connect(e->sim, &e->a), 0);
	assert_int_equal(sim_connect(e->sim, &e->b), 0);
	*state = e;
	return 0;
}

static int teardown(void **state)
{
	struct env *e = *state;

	close(e->a);
	close(e->b);
	sim_close(e->sim);
	uv_run(&e->loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&e->loop), 0);
	free(e);
	return 0;
}

static void send_msg(struct env *e, int fd, struct pfkey_msg *m)
{
	uint8_t buf[4096];
	ssize_t len = pfkey_encode(m, buf, sizeof(buf));

	assert_true(len > 0);
	assert_int_equal(send(fd, buf, (size_t)len, 0), len);
	/* Let the simulator read and answer. */
	for (int i = 0; i < 5; i++)
		uv_run(&e->loop, UV_RUN_NOWAIT);
}

/* The next message to fd, decoded into m (buf keeps the bytes); false if none. */
static bool next_msg(int fd, uint8_t *buf, struct pfkey_msg *m)
{
	ssize_t n = recv(fd, buf, 65536, MSG_DONTWAIT);

	if (n <= 0)
		return false;
	assert_int_equal(pfkey_decode(buf, (size_t)n, m, NULL), 0);
	return true;
}

static unsigned drain(int fd)
{
	static uint8_t buf[65536];
	struct pfkey_msg m;
	unsigned n = 0;

	while (next_msg(fd, buf, &m))
		n++;
	return n;
}

static void sa_msg(struct pfkey_msg *m, uint8_t type, uint32_t spi, const char *src,
		   const char *dst, uint8_t ealg, uint64_t soft, uint64_t hard)
{
	struct pfkey_addr s, d;
	struct pfkey_lifetime ls = { .addtime = soft }, lh = { .addtime = hard };

	/* An address that does not parse left s or d uninitialised: fail here instead. */
	assert_int_equal(pfkey_addr_from_string(&s, src), 0);
	assert_int_equal(pfkey_addr_from_string(&d, dst), 0);
	pfkey_msg_init(m, type, SADB_SATYPE_ESP, 9, 777);
	pfkey_set_sa(m, spi, 64, SADB_X_AALG_SHA2_512HMAC, ealg);
	pfkey_set_addr(m, SADB_EXT_ADDRESS_SRC, &s);
	pfkey_set_addr(m, SADB_EXT_ADDRESS_DST, &d);
	if (type == SADB_ADD || type == SADB_UPDATE) {
		pfkey_set_key(m, SADB_EXT_KEY_ENCRYPT, key, ealg == SADB_X_EALG_AES_GCM_ICV16 ? 160 : 256);
		pfkey_set_key(m, SADB_EXT_KEY_AUTH, key, 512);
		if (hard) {
			pfkey_set_lifetime(m, SADB_EXT_LIFETIME_SOFT, &ls);
			pfkey_set_lifetime(m, SADB_EXT_LIFETIME_HARD, &lh);
		}
	}
}

static void do_register(struct env *e, int fd)
{
	struct pfkey_msg m;

	pfkey_msg_init(&m, SADB_REGISTER, SADB_SATYPE_ESP, 1, 1);
	send_msg(e, fd, &m);
}

/* ADD: broadcast to every client with keys and the requester's pid/seq; a duplicate is EEXIST. */
static void test_add_broadcast_and_eexist(void **state)
{
	struct env *e = *state;
	uint8_t buf[65536];
	struct pfkey_msg m, r;

	sa_msg(&m, SADB_ADD, 0x100, "192.0.2.1", "192.0.2.2", SADB_X_EALG_AESCBC, 0, 0);
	send_msg(e, e->a, &m);
	assert_true(next_msg(e->a, buf, &r));
	assert_int_equal(r.type, SADB_ADD);
	assert_int_equal(r.errno_val, 0);
	assert_int_equal(r.pid, 777);
	assert_int_equal(r.seq, 9);
	/* Replay capped at 32 (af_key.c: pfkey_msg2xfrm_state). */
	assert_int_equal(r.replay, 32);
	assert_true(r.present & PFKEY_EXT_BIT(SADB_EXT_KEY_ENCRYPT));
	assert_true(next_msg(e->b, buf, &r));
	assert_int_equal(r.type, SADB_ADD);
	assert_true(r.present & PFKEY_EXT_BIT(SADB_EXT_KEY_AUTH));
	send_msg(e, e->a, &m);
	assert_true(next_msg(e->a, buf, &r));
	assert_int_equal(r.errno_val, EEXIST);
	assert_false(next_msg(e->b, buf, &r)); /* errors go to the requester only */
}

static void test_gcm_enosys_and_missing_key(void **state)
{
	struct env *e = *state;
	uint8_t buf[65536];
	struct pfkey_msg m, r;

	sa_msg(&m, SADB_ADD, 0x101, "192.0.2.1", "192.0.2.2", SADB_X_EALG_AES_GCM_ICV16, 0, 0);
	send_msg(e, e->a, &m);
	assert_true(next_msg(e->a, buf, &r));
	assert_int_equal(r.errno_val, ENOSYS);
	sa_msg(&m, SADB_ADD, 0x102, "192.0.2.1", "192.0.2.2", SADB_X_EALG_AESCBC, 0, 0);
	m.present &= ~PFKEY_EXT_BIT(SADB_EXT_KEY_ENCRYPT);
	send_msg(e, e->a, &m);
	assert_true(next_msg(e->a, buf, &r));
	assert_int_equal(r.errno_val, EINVAL);
	assert_int_equal(sim_sa_count(e->sim), 0);
}

static void test_get_delete_esrch(void **state)
{
	struct env *e = *state;
	uint8_t buf[65536];
	struct pfkey_msg m, r;

	sa_msg(&m, SADB_ADD, 0x103, "192.0.2.1", "192.0.2.2", SADB_X_EALG_AESCBC, 0, 0);
	send_msg(e, e->a, &m);
	drain(e->a);
	drain(e->b);
	/* DELETE ignores the source address (the lookup is dst, spi, proto). */
	sa_msg(&m, SADB_DELETE, 0x103, "203.0.113.9", "192.0.2.2", 0, 0, 0);
	send_msg(e, e->a, &m);
	assert_true(next_msg(e->b, buf, &r));
	assert_int_equal(r.type, SADB_DELETE);
	sa_msg(&m, SADB_GET, 0x103, "192.0.2.1", "192.0.2.2", 0, 0, 0);
	drain(e->a);
	send_msg(e, e->a, &m);
	assert_true(next_msg(e->a, buf, &r));
	assert_int_equal(r.errno_val, ESRCH);
}

/* Soft once, then hard deletes with a hard EXPIRE to registered sockets only and no DELETE. */
static void test_lifetimes(void **state)
{
	struct env *e = *state;
	uint8_t buf[65536];
	struct pfkey_msg m, r;

	do_register(e, e->a);
	drain(e->a);
	sa_msg(&m, SADB_ADD, 0x104, "192.0.2.1", "192.0.2.2", SADB_X_EALG_AESCBC, 2, 4);
	send_msg(e, e->a, &m);
	drain(e->a);
	drain(e->b);
	fake_now += 2;
	sim_tick(e->sim);
	sim_tick(e->sim); /* soft fires once */
	uv_run(&e->loop, UV_RUN_NOWAIT);
	assert_true(next_msg(e->a, buf, &r));
	assert_int_equal(r.type, SADB_EXPIRE);
	assert_true(r.present & PFKEY_EXT_BIT(SADB_EXT_LIFETIME_SOFT));
	assert_false(r.present & PFKEY_EXT_BIT(SADB_EXT_KEY_ENCRYPT));
	assert_false(next_msg(e->a, buf, &r));
	assert_false(next_msg(e->b, buf, &r)); /* unregistered: nothing */
	fake_now += 2;
	sim_tick(e->sim);
	assert_true(next_msg(e->a, buf, &r));
	assert_int_equal(r.type, SADB_EXPIRE);
	assert_true(r.present & PFKEY_EXT_BIT(SADB_EXT_LIFETIME_HARD));
	assert_false(next_msg(e->b, buf, &r));
	assert_int_equal(sim_sa_count(e->sim), 0);
}

static void test_flush_twice_and_dump_order(void **state)
{
	struct env *e = *state;
	uint8_t buf[65536];
	struct pfkey_msg m, r;

	for (uint32_t spi = 0x200; spi < 0x203; spi++) {
		sa_msg(&m, SADB_ADD, spi, "192.0.2.1", "192.0.2.2", SADB_X_EALG_AESCBC, 0, 0);
		send_msg(e, e->a, &m);
	}
	drain(e->a);
	drain(e->b);
	pfkey_msg_init(&m, SADB_DUMP, SADB_SATYPE_UNSPEC, 5, 5);
	send_msg(e, e->a, &m);
	/* Newest first; seq 1, 2, then 0. */
	assert_true(next_msg(e->a, buf, &r));
	assert_int_equal(r.spi, 0x202);
	assert_int_equal(r.seq, 1);
	assert_true(next_msg(e->a, buf, &r));
	assert_int_equal(r.seq, 2);
	assert_true(next_msg(e->a, buf, &r));
	assert_int_equal(r.spi, 0x200);
	assert_int_equal(r.seq, 0);
	pfkey_msg_init(&m, SADB_FLUSH, SADB_SATYPE_UNSPEC, 6, 6);
	send_msg(e, e->a, &m);
	assert_int_equal(drain(e->a), 2);
	assert_int_equal(drain(e->b), 1);
	send_msg(e, e->a, &m); /* empty: the unicast only */
	assert_int_equal(drain(e->a), 1);
	assert_int_equal(drain(e->b), 0);
	pfkey_msg_init(&m, SADB_DUMP, SADB_SATYPE_UNSPEC, 7, 7);
	send_msg(e, e->a, &m);
	assert_true(next_msg(e->a, buf, &r));
	assert_int_equal(r.errno_val, ENOENT);
}

/* Traffic hitting a policy without an SA: ACQUIRE, larval state, answered by an ADD. */
static void test_acquire(void **state)
{
	struct env *e = *state;
	uint8_t buf[65536];
	struct pfkey_msg m, r;
	struct pfkey_addr src, dst;
	struct pfkey_ipsecreq req = { .proto = IPPROTO_ESP, .mode = IPSEC_MODE_TRANSPORT,
				      .level = IPSEC_LEVEL_REQUIRE };

	do_register(e, e->a);
	drain(e->a);
	pfkey_addr_from_string(&src, "192.0.2.1");
	pfkey_addr_from_string(&dst, "192.0.2.2");
	pfkey_msg_init(&m, SADB_X_SPDADD, 0, 3, 3);
	pfkey_set_addr(&m, SADB_EXT_ADDRESS_SRC, &src);
	pfkey_set_addr(&m, SADB_EXT_ADDRESS_DST, &dst);
	pfkey_set_policy(&m, IPSEC_POLICY_IPSEC, IPSEC_DIR_OUTBOUND, 0);
	pfkey_policy_add_req(&m, &req);
	send_msg(e, e->a, &m);
	send_msg(e, e->a, &m);
	drain(e->b);
	assert_true(next_msg(e->a, buf, &r));
	assert_int_equal(r.type, SADB_X_SPDADD);
	assert_true(next_msg(e->a, buf, &r));
	assert_int_equal(r.errno_val, EEXIST);
	assert_int_equal(sim_traffic(e->sim, &src, &dst, 100, NULL), -EAGAIN);
	assert_true(next_msg(e->a, buf, &r));
	assert_int_equal(r.type, SADB_ACQUIRE);
	assert_int_equal(r.pid, 0);
	assert_int_equal(r.seq, 1);
	assert_false(next_msg(e->b, buf, &r));
	assert_int_equal(sim_traffic(e->sim, &src, &dst, 100, NULL), -EAGAIN); /* larval: no new ACQUIRE */
	assert_false(next_msg(e->a, buf, &r));
	sa_msg(&m, SADB_ADD, 0x300, "192.0.2.1", "192.0.2.2", SADB_X_EALG_AESCBC, 0, 0);
	m.seq = 1; /* the acquire's seq replaces the larval state */
	send_msg(e, e->a, &m);
	assert_int_equal(sim_sa_count(e->sim), 1);
	assert_int_equal(sim_traffic(e->sim, &src, &dst, 100, NULL), 0x300);
}

/* --- fault injection and edge cases ------------------------------------------------- */

static void add_out_policy(struct env *e, const char *src, const char *dst)
{
	struct pfkey_msg m;
	struct pfkey_addr s, d;
	struct pfkey_ipsecreq req = { .proto = IPPROTO_ESP, .mode = IPSEC_MODE_TRANSPORT,
				      .level = IPSEC_LEVEL_REQUIRE };

	pfkey_addr_from_string(&s, src);
	pfkey_addr_from_string(&d, dst);
	pfkey_msg_init(&m, SADB_X_SPDADD, 0, 3, 3);
	pfkey_set_addr(&m, SADB_EXT_ADDRESS_SRC, &s);
	pfkey_set_addr(&m, SADB_EXT_ADDRESS_DST, &d);
	pfkey_set_policy(&m, IPSEC_POLICY_IPSEC, IPSEC_DIR_OUTBOUND, 0);
	pfkey_policy_add_req(&m, &req);
	send_msg(e, e->a, &m);
	drain(e->a);
	drain(e->b);
}

/* sim_fail_next fails only the next request of its type, as an error reply; then all is normal. */
static void test_fail_next_by_type(void **state)
{
	struct env *e = *state;
	uint8_t buf[65536];
	struct pfkey_msg m, r;

	sim_fail_next(e->sim, SADB_GET, EIO);
	sa_msg(&m, SADB_ADD, 0x600, "192.0.2.1", "192.0.2.2", SADB_X_EALG_AESCBC, 0, 0);
	send_msg(e, e->a, &m);
	assert_true(next_msg(e->a, buf, &r));
	assert_int_equal(r.type, SADB_ADD);
	assert_int_equal(r.errno_val, 0);
	drain(e->b);
	sa_msg(&m, SADB_GET, 0x600, "192.0.2.1", "192.0.2.2", 0, 0, 0);
	send_msg(e, e->a, &m);
	assert_true(next_msg(e->a, buf, &r));
	assert_int_equal(r.type, SADB_GET);
	assert_int_equal(r.errno_val, EIO);
	assert_int_equal(r.seq, 9);
	assert_int_equal(r.pid, 777);
	assert_false(next_msg(e->b, buf, &r));
	send_msg(e, e->a, &m);
	assert_true(next_msg(e->a, buf, &r));
	assert_int_equal(r.errno_val, 0);
	assert_int_equal(r.spi, 0x600);
	/* Any type, twice. */
	sim_fail_count(e->sim, 0, ENOMEM, 2);
	send_msg(e, e->a, &m);
	send_msg(e, e->a, &m);
	send_msg(e, e->a, &m);
	assert_true(next_msg(e->a, buf, &r));
	assert_int_equal(r.errno_val, ENOMEM);
	assert_true(next_msg(e->a, buf, &r));
	assert_int_equal(r.errno_val, ENOMEM);
	assert_true(next_msg(e->a, buf, &r));
	assert_int_equal(r.errno_val, 0);
}

/* sim_drop_next loses the next n messages to one client only: broadcasts and replies alike. */
static void test_drop_next_one_client(void **state)
{
	struct env *e = *state;
	uint8_t buf[65536];
	struct pfkey_msg m, r;
	struct sim_stats st;

	sim_drop_next(e->sim, e->b, 1);
	sa_msg(&m, SADB_ADD, 0x610, "192.0.2.1", "192.0.2.2", SADB_X_EALG_AESCBC, 0, 0);
	send_msg(e, e->a, &m);
	assert_true(next_msg(e->a, buf, &r));
	assert_false(next_msg(e->b, buf, &r));
	sa_msg(&m, SADB_ADD, 0x611, "192.0.2.1", "192.0.2.2", SADB_X_EALG_AESCBC, 0, 0);
	send_msg(e, e->a, &m);
	assert_true(next_msg(e->a, buf, &r));
	assert_true(next_msg(e->b, buf, &r));
	assert_int_equal(r.spi, 0x611);
	/* The requester's own reply too. */
	sim_drop_next(e->sim, e->a, 1);
	sa_msg(&m, SADB_GET, 0x611, "192.0.2.1", "192.0.2.2", 0, 0, 0);
	send_msg(e, e->a, &m);
	assert_false(next_msg(e->a, buf, &r));
	sim_get_stats(e->sim, &st);
	assert_int_equal(st.dropped, 2);
	/* A rate of 1000 permille drops everything; 0 stops it. */
	sim_drop_rate(e->sim, 1000, 7);
	send_msg(e, e->a, &m);
	assert_false(next_msg(e->a, buf, &r));
	sim_drop_rate(e->sim, 0, 0);
	send_msg(e, e->a, &m);
	assert_true(next_msg(e->a, buf, &r));
}

/* sim_delay holds replies for the given time, in order. */
static void test_delay(void **state)
{
	struct env *e = *state;
	uint8_t buf[65536];
	struct pfkey_msg m, r;
	uint64_t start;

	sim_delay(e->sim, 50);
	sa_msg(&m, SADB_ADD, 0x620, "192.0.2.1", "192.0.2.2", SADB_X_EALG_AESCBC, 0, 0);
	send_msg(e, e->a, &m);
	sa_msg(&m, SADB_ADD, 0x621, "192.0.2.1", "192.0.2.2", SADB_X_EALG_AESCBC, 0, 0);
	send_msg(e, e->a, &m);
	assert_false(next_msg(e->a, buf, &r));
	uv_update_time(&e->loop);
	start = uv_now(&e->loop);
	while (uv_now(&e->loop) - start < 200 && !next_msg(e->a, buf, &r)) {
		uv_run(&e->loop, UV_RUN_ONCE);
		uv_update_time(&e->loop);
	}
	assert_true(uv_now(&e->loop) - start >= 40);
	assert_int_equal(r.spi, 0x620);
	for (int i = 0; i < 50 && !next_msg(e->a, buf, &r); i++)
		uv_run(&e->loop, UV_RUN_ONCE);
	assert_int_equal(r.spi, 0x621);
	sim_delay(e->sim, 0);
	/* Delayed messages still pending at sim_close are freed (teardown checks the loop). */
	sim_delay(e->sim, 10000);
	send_msg(e, e->a, &m);
}

/* sim_inject delivers raw bytes to one client; a malformed request gets an error, no crash. */
static void test_inject_and_malformed_requests(void **state)
{
	struct env *e = *state;
	uint8_t buf[65536];
	static const uint8_t junk[8] = { 2, 3, 0, 3, 9, 0, 0, 0 };
	uint8_t bad[16] = { 1, SADB_FLUSH, 0, 0, 2, 0, 0, 0, 42, 0, 0, 0, 7, 0, 0, 0 };
	struct sadb_msg *hdr = (struct sadb_msg *)buf;
	struct sim_stats st;
	ssize_t n;

	sim_inject(e->sim, e->a, junk, sizeof(junk));
	assert_int_equal(recv(e->a, buf, sizeof(buf), MSG_DONTWAIT), sizeof(junk));
	assert_int_equal(recv(e->b, buf, sizeof(buf), MSG_DONTWAIT), -1);
	/* Version 1: Linux fails send() with EINVAL; the simulator answers EINVAL. */
	assert_int_equal(send(e->a, bad, sizeof(bad), 0), sizeof(bad));
	uv_run(&e->loop, UV_RUN_NOWAIT);
	n = recv(e->a, buf, sizeof(buf), MSG_DONTWAIT);
	assert_int_equal(n, 16);
	assert_int_equal(hdr->sadb_msg_errno, EINVAL);
	assert_int_equal(hdr->sadb_msg_version, PF_KEY_V2);
	assert_int_equal(hdr->sadb_msg_len, 2);
	assert_int_equal(hdr->sadb_msg_seq, 42);
	/* Shorter than a header: EMSGSIZE. */
	assert_int_equal(send(e->a, bad, 5, 0), 5);
	uv_run(&e->loop, UV_RUN_NOWAIT);
	assert_int_equal(recv(e->a, buf, sizeof(buf), MSG_DONTWAIT), 16);
	assert_int_equal(hdr->sadb_msg_errno, EMSGSIZE);
	/* Every truncation of a valid ADD: an error reply each, never a crash. */
	{
		struct pfkey_msg m;
		uint8_t add[1024];
		ssize_t len;

		sa_msg(&m, SADB_ADD, 0x630, "192.0.2.1", "192.0.2.2", SADB_X_EALG_AESCBC, 0, 0);
		len = pfkey_encode(&m, add, sizeof(add));
		assert_true(len > 16);
		for (ssize_t cut = 1; cut < len; cut++) {
			send(e->a, add, (size_t)cut, 0);
			uv_run(&e->loop, UV_RUN_NOWAIT);
			assert_true(recv(e->a, buf, sizeof(buf), MSG_DONTWAIT) == 16);
			assert_true(hdr->sadb_msg_errno != 0);
		}
	}
	assert_int_equal(sim_sa_count(e->sim), 0);
	sim_get_stats(e->sim, &st);
	assert_true(st.malformed >= 2);
}

/* The receive-queue limit: what a client does not read is lost silently; dumps are not. */
static void test_rcvbuf_limit(void **state)
{
	struct env *e = *state;
	struct sim *s;
	struct sim_opts o = { .now = clock_fn, .rcvbuf = 8192, .tick_ms = 3600000 };
	uint8_t buf[65536];
	struct pfkey_msg m, r;
	struct sim_stats st;
	unsigned got = 0, dumped = 0;
	int a, b;

	assert_int_equal(sim_new(&e->loop, &o, &s), 0);
	assert_int_equal(sim_connect(s, &a), 0);
	assert_int_equal(sim_connect(s, &b), 0);
	for (uint32_t i = 0; i < 100; i++) {
		sa_msg(&m, SADB_ADD, 0x700 + i, "192.0.2.1", "192.0.2.2", SADB_X_EALG_AESCBC, 0, 0);
		send_msg(e, a, &m);
		drain(a); /* a reads; b does not */
	}
	while (next_msg(b, buf, &r))
		got++;
	assert_true(got > 0);
	assert_true(got < 100);
	sim_get_stats(s, &st);
	assert_int_equal(st.dropped, 100 - got);
	/* A dump to the same slow reader is flow-controlled: all 100, nothing lost. */
	pfkey_msg_init(&m, SADB_DUMP, SADB_SATYPE_ESP, 1, 1);
	send_msg(e, b, &m);
	for (int i = 0; i < 2000 && dumped < 100; i++) {
		if (next_msg(b, buf, &r))
			dumped++;
		else
			uv_run(&e->loop, UV_RUN_NOWAIT);
	}
	assert_int_equal(dumped, 100);
	assert_int_equal(r.seq, 0);
	close(a);
	close(b);
	sim_close(s);
}

/*
 * Byte/packet limits per packet, before counting: soft fires on the packet that
 * finds the soft limit reached; the one that finds the hard limit is dropped.
 */
static void test_packet_lifetimes(void **state)
{
	struct env *e = *state;
	uint8_t buf[65536];
	struct pfkey_msg m, r;
	struct pfkey_addr src, dst;

	pfkey_addr_from_string(&src, "192.0.2.1");
	pfkey_addr_from_string(&dst, "192.0.2.2");
	do_register(e, e->a);
	drain(e->a);
	add_out_policy(e, "192.0.2.1", "192.0.2.2");
	sa_msg(&m, SADB_ADD, 0x800, "192.0.2.1", "192.0.2.2", SADB_X_EALG_AESCBC, 0, 1000);
	m.soft.allocations = 2;
	m.hard.allocations = 3;
	send_msg(e, e->a, &m);
	drain(e->a);
	drain(e->b);
	assert_int_equal(sim_traffic(e->sim, &src, &dst, 100, NULL), 0x800);
	assert_int_equal(sim_traffic(e->sim, &src, &dst, 100, NULL), 0x800);
	assert_false(next_msg(e->a, buf, &r));
	/* This one finds 2: the soft EXPIRE, and it is still sent. */
	assert_int_equal(sim_traffic(e->sim, &src, &dst, 100, NULL), 0x800);
	assert_true(next_msg(e->a, buf, &r));
	assert_int_equal(r.type, SADB_EXPIRE);
	assert_int_equal(r.state, SADB_SASTATE_DYING);
	assert_int_equal(r.current.allocations, 2);
	assert_int_equal(sim_traffic(e->sim, &src, &dst, 100, NULL), -EINVAL); /* finds 3: dropped */
	assert_true(next_msg(e->a, buf, &r));
	assert_int_equal(r.type, SADB_EXPIRE);
	assert_int_equal(r.state, SADB_SASTATE_DEAD);
	assert_true(r.present & PFKEY_EXT_BIT(SADB_EXT_LIFETIME_HARD));
	assert_int_equal(r.current.allocations, 3);
	assert_int_equal(r.current.bytes, 300);
	assert_false(next_msg(e->b, buf, &r)); /* no DELETE, and no EXPIRE to the unregistered */
	assert_int_equal(sim_sa_count(e->sim), 0);
	/* Then the next packet asks for a new SA. */
	assert_int_equal(sim_traffic(e->sim, &src, &dst, 100, NULL), -EAGAIN);
	assert_true(next_msg(e->a, buf, &r));
	assert_int_equal(r.type, SADB_ACQUIRE);
}

/* Inbound use: found by (dst, spi) alone, counted, first use stamped. */
static void test_deliver_inbound(void **state)
{
	struct env *e = *state;
	uint8_t buf[65536];
	struct pfkey_msg m, r;
	struct pfkey_addr dst;

	pfkey_addr_from_string(&dst, "192.0.2.2");
	sa_msg(&m, SADB_ADD, 0x900, "192.0.2.1", "192.0.2.2", SADB_X_EALG_AESCBC, 0, 0);
	send_msg(e, e->a, &m);
	drain(e->a);
	assert_int_equal(sim_deliver(e->sim, &dst, 0x900, 1, 120), 0);
	assert_int_equal(sim_deliver(e->sim, &dst, 0x901, 1, 120), -ESRCH);
	sa_msg(&m, SADB_GET, 0x900, "192.0.2.1", "192.0.2.2", 0, 0, 0);
	send_msg(e, e->a, &m);
	assert_true(next_msg(e->a, buf, &r));
	assert_int_equal(r.current.allocations, 1);
	assert_int_equal(r.current.bytes, 120);
	assert_int_equal(r.current.usetime, (uint64_t)fake_now);
}

/* An ESP SA 0x%x 192.0.2.1 -> 192.0.2.2 with this replay window (SADB_ADD), its broadcasts drained. */
static void add_sa_window(struct env *e, uint32_t spi, uint8_t window)
{
	struct pfkey_msg m;

	sa_msg(&m, SADB_ADD, spi, "192.0.2.1", "192.0.2.2", SADB_X_EALG_AESCBC, 0, 0);
	m.replay = window;
	send_msg(e, e->a, &m);
	drain(e->a);
	drain(e->b);
}

static void delete_sa(struct env *e, uint32_t spi)
{
	struct pfkey_msg m;

	sa_msg(&m, SADB_DELETE, spi, "192.0.2.1", "192.0.2.2", 0, 0, 0);
	send_msg(e, e->a, &m);
	drain(e->a);
	drain(e->b);
}

/*
 * xfrm_replay_check_legacy / xfrm_replay_advance with a window of 32 (the
 * request's 64 capped): 1..5, 3 again, 100, 60, 99, 68, 69, 100 again, 0.
 */
static void test_replay_window(void **state)
{
	struct env *e = *state;
	struct pfkey_addr dst;
	struct sim_replay r;
	struct sim_stats st;

	pfkey_addr_from_string(&dst, "192.0.2.2");
	add_sa_window(e, 0xa00, 64);
	for (uint32_t seq = 1; seq <= 5; seq++)
		assert_int_equal(sim_deliver(e->sim, &dst, 0xa00, seq, 100), 0);
	assert_int_equal(sim_deliver(e->sim, &dst, 0xa00, 3, 100), -EALREADY);
	assert_int_equal(sim_deliver(e->sim, &dst, 0xa00, 100, 100), 0);
	assert_int_equal(sim_deliver(e->sim, &dst, 0xa00, 60, 100), -ERANGE);
	assert_int_equal(sim_deliver(e->sim, &dst, 0xa00, 99, 100), 0);
	/* 100 - 68 = 32 = the window: too old; 69 is its last slot. */
	assert_int_equal(sim_deliver(e->sim, &dst, 0xa00, 68, 100), -ERANGE);
	assert_int_equal(sim_deliver(e->sim, &dst, 0xa00, 69, 100), 0);
	assert_int_equal(sim_deliver(e->sim, &dst, 0xa00, 100, 100), -EALREADY);
	assert_int_equal(sim_deliver(e->sim, &dst, 0xa00, 0, 100), -EPROTO);
	assert_int_equal(sim_sa_replay(e->sim, &dst, 0xa00, &r), 0);
	assert_int_equal(r.window, 32);
	assert_int_equal(r.seq, 100);
	assert_int_equal(r.bitmap, 1u | 1u << 1 | 1u << 31);
	assert_int_equal(r.oseq, 0);
	assert_int_equal(r.replay, 2);
	assert_int_equal(r.replay_window, 2);
	/* Only accepted packets count: 1..5, 100, 99, 69. */
	assert_int_equal(r.packets, 8);
	assert_int_equal(r.bytes, 800);
	sim_get_stats(e->sim, &st);
	assert_int_equal(st.in_state_seq_errors, 5);
	assert_int_equal(sim_deliver(e->sim, &dst, 0xa01, 1, 100), -ESRCH);
	sim_get_stats(e->sim, &st);
	assert_int_equal(st.in_no_states, 1);
	assert_int_equal(sim_sa_replay(e->sim, &dst, 0xa01, &r), -ESRCH);
}

/* A jump of the window or more clears the bitmap; a window of 0 checks nothing, 0 included. */
static void test_replay_jump_and_window_zero(void **state)
{
	struct env *e = *state;
	struct pfkey_addr dst;
	struct sim_replay r;

	pfkey_addr_from_string(&dst, "192.0.2.2");
	add_sa_window(e, 0xa10, 8);
	assert_int_equal(sim_deliver(e->sim, &dst, 0xa10, 1, 10), 0);
	assert_int_equal(sim_deliver(e->sim, &dst, 0xa10, 2, 10), 0);
	assert_int_equal(sim_deliver(e->sim, &dst, 0xa10, 10, 10), 0); /* diff 8 = window */
	assert_int_equal(sim_sa_replay(e->sim, &dst, 0xa10, &r), 0);
	assert_int_equal(r.bitmap, 1);
	assert_int_equal(sim_deliver(e->sim, &dst, 0xa10, 3, 10), 0);  /* diff 7: in, unseen */
	assert_int_equal(sim_deliver(e->sim, &dst, 0xa10, 2, 10), -ERANGE); /* diff 8 */
	add_sa_window(e, 0xa11, 0);
	for (int i = 0; i < 3; i++)
		assert_int_equal(sim_deliver(e->sim, &dst, 0xa11, 7, 10), 0);
	assert_int_equal(sim_deliver(e->sim, &dst, 0xa11, 0, 10), 0);
	assert_int_equal(sim_sa_replay(e->sim, &dst, 0xa11, &r), 0);
	assert_int_equal(r.packets, 4);
	assert_int_equal(r.seq, 0); /* no window, no state kept */
}

/* A replayed packet is refused before the lifetime check: it neither expires nor counts. */
static void test_replay_before_lifetime(void **state)
{
	struct env *e = *state;
	uint8_t buf[65536];
	struct pfkey_msg m, r;
	struct pfkey_addr dst;
	struct sim_stats st;

	pfkey_addr_from_string(&dst, "192.0.2.2");
	do_register(e, e->a);
	drain(e->a);
	sa_msg(&m, SADB_ADD, 0xa20, "192.0.2.1", "192.0.2.2", SADB_X_EALG_AESCBC, 0, 1000);
	m.soft.allocations = 100;
	m.hard.allocations = 2;
	send_msg(e, e->a, &m);
	drain(e->a);
	assert_int_equal(sim_deliver(e->sim, &dst, 0xa20, 1, 10), 0);
	assert_int_equal(sim_deliver(e->sim, &dst, 0xa20, 2, 10), 0);
	assert_int_equal(sim_deliver(e->sim, &dst, 0xa20, 2, 10), -EALREADY);
	assert_false(next_msg(e->a, buf, &r));
	assert_int_equal(sim_sa_count(e->sim), 1);
	/* A new seq reaches the lifetime check: hard limit 2 reached, the SA goes. */
	assert_int_equal(sim_deliver(e->sim, &dst, 0xa20, 3, 10), -EINVAL);
	assert_true(next_msg(e->a, buf, &r));
	assert_int_equal(r.type, SADB_EXPIRE);
	assert_int_equal(r.state, SADB_SASTATE_DEAD);
	assert_int_equal(r.current.allocations, 2);
	sim_get_stats(e->sim, &st);
	assert_int_equal(st.in_state_expired, 1);
	assert_int_equal(st.in_state_seq_errors, 1);
}

/*
 * Outbound: 1, 2, 3 on a new SA; the newest SA carries and counts from 1 on
 * its own; deleted and re-added, an SA starts at 1 again (the defect that key
 * schedule v2 avoids), and so does the receiver's window (a replay accepted).
 */
static void test_output_seq_per_instance(void **state)
{
	struct env *e = *state;
	struct pfkey_addr src, dst;
	uint32_t seq;

	pfkey_addr_from_string(&src, "192.0.2.1");
	pfkey_addr_from_string(&dst, "192.0.2.2");
	add_out_policy(e, "192.0.2.1", "192.0.2.2");
	add_sa_window(e, 0xb01, 32);
	for (uint32_t want = 1; want <= 3; want++) {
		assert_int_equal(sim_traffic(e->sim, &src, &dst, 100, &seq), 0xb01);
		assert_int_equal(seq, want);
	}
	fake_now++;
	add_sa_window(e, 0xb02, 32);
	assert_int_equal(sim_traffic(e->sim, &src, &dst, 100, &seq), 0xb02);
	assert_int_equal(seq, 1);
	assert_int_equal(sim_traffic(e->sim, &src, &dst, 100, &seq), 0xb02);
	assert_int_equal(seq, 2);
	delete_sa(e, 0xb02);
	assert_int_equal(sim_traffic(e->sim, &src, &dst, 100, &seq), 0xb01);
	assert_int_equal(seq, 4);
	/* The same SA seen as the receiver's: 1..4 accepted, 2 again refused. */
	for (uint32_t i = 1; i <= 4; i++)
		assert_int_equal(sim_deliver(e->sim, &dst, 0xb01, i, 100), 0);
	assert_int_equal(sim_deliver(e->sim, &dst, 0xb01, 2, 100), -EALREADY);
	delete_sa(e, 0xb01);
	add_sa_window(e, 0xb01, 32);
	assert_int_equal(sim_traffic(e->sim, &src, &dst, 100, &seq), 0xb01);
	assert_int_equal(seq, 1);
	assert_int_equal(sim_deliver(e->sim, &dst, 0xb01, 2, 100), 0);
	/* No SA: no sequence number. */
	delete_sa(e, 0xb01);
	assert_int_equal(sim_traffic(e->sim, &src, &dst, 100, &seq), -EAGAIN);
	assert_int_equal(seq, 0);
}

/* xfrm_replay_overflow: at 2^32 - 1 the counter stays and every packet is refused; no expiry. */
static void test_output_seq_overflow(void **state)
{
	struct env *e = *state;
	uint8_t buf[65536];
	struct pfkey_msg r;
	struct pfkey_addr src, dst;
	struct sim_replay rs;
	struct sim_stats st;
	uint32_t seq;

	pfkey_addr_from_string(&src, "192.0.2.1");
	pfkey_addr_from_string(&dst, "192.0.2.2");
	do_register(e, e->a);
	drain(e->a);
	add_out_policy(e, "192.0.2.1", "192.0.2.2");
	add_sa_window(e, 0xc01, 32);
	assert_int_equal(sim_sa_set_replay(e->sim, &dst, 0xc02, 1, 0, 0), -ESRCH);
	assert_int_equal(sim_sa_set_replay(e->sim, &dst, 0xc01, 0xfffffffeu, 0, 0), 0);
	assert_int_equal(sim_traffic(e->sim, &src, &dst, 100, &seq), 0xc01);
	assert_int_equal(seq, 0xffffffffu);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(sim_traffic(e->sim, &src, &dst, 100, &seq), -EOVERFLOW);
		assert_int_equal(seq, 0);
	}
	assert_int_equal(sim_sa_replay(e->sim, &dst, 0xc01, &rs), 0);
	assert_int_equal(rs.oseq, 0xffffffffu);
	assert_int_equal(rs.packets, 1);
	assert_false(next_msg(e->a, buf, &r)); /* no EXPIRE */
	assert_int_equal(sim_sa_count(e->sim), 1);
	sim_get_stats(e->sim, &st);
	assert_int_equal(st.out_state_seq_errors, 2);
}

/* GETSPI: a larval state owns the SPI (ADD: EEXIST; UPDATE matures it); leftovers expire. */
static void test_getspi(void **state)
{
	struct env *e = *state;
	uint8_t buf[65536];
	struct pfkey_msg m, r;
	struct pfkey_addr s, d;

	do_register(e, e->b);
	drain(e->b);
	pfkey_addr_from_string(&s, "192.0.2.1");
	pfkey_addr_from_string(&d, "192.0.2.2");
	pfkey_msg_init(&m, SADB_GETSPI, SADB_SATYPE_ESP, 11, 11);
	pfkey_set_addr(&m, SADB_EXT_ADDRESS_SRC, &s);
	pfkey_set_addr(&m, SADB_EXT_ADDRESS_DST, &d);
	pfkey_set_spirange(&m, 0x7001, 0x7001);
	send_msg(e, e->a, &m);
	assert_true(next_msg(e->a, buf, &r));
	assert_int_equal(r.errno_val, 0);
	assert_int_equal(r.spi, 0x7001);
	assert_int_equal(r.state, SADB_SASTATE_LARVAL);
	assert_int_equal(r.hard.addtime, 3);
	assert_false(next_msg(e->b, buf, &r)); /* unicast */
	send_msg(e, e->a, &m); /* the SPI is taken: ENOENT, and a new larval state stays */
	assert_true(next_msg(e->a, buf, &r));
	assert_int_equal(r.errno_val, ENOENT);
	assert_int_equal(sim_sa_count(e->sim), 2);
	pfkey_set_spirange(&m, 0x7003, 0x7002);
	send_msg(e, e->a, &m);
	assert_true(next_msg(e->a, buf, &r));
	assert_int_equal(r.errno_val, EINVAL);
	sa_msg(&m, SADB_ADD, 0x7001, "192.0.2.1", "192.0.2.2", SADB_X_EALG_AESCBC, 0, 0);
	send_msg(e, e->a, &m);
	assert_true(next_msg(e->a, buf, &r));
	assert_int_equal(r.errno_val, EEXIST);
	sa_msg(&m, SADB_UPDATE, 0x7001, "192.0.2.1", "192.0.2.2", SADB_X_EALG_AESCBC, 0, 0);
	send_msg(e, e->a, &m);
	assert_true(next_msg(e->a, buf, &r));
	assert_int_equal(r.type, SADB_UPDATE);
	assert_int_equal(r.state, SADB_SASTATE_MATURE);
	drain(e->b);
	fake_now += 3;
	sim_tick(e->sim);
	assert_true(next_msg(e->b, buf, &r));
	assert_int_equal(r.type, SADB_EXPIRE);
	assert_int_equal(r.spi, 0);
	assert_int_equal(r.state, SADB_SASTATE_DEAD);
	assert_int_equal(sim_sa_count(e->sim), 1);
}

/* REGISTER with satype 0 lists algorithms but does not register: no ACQUIRE, no larval state. */
static void test_unspec_register_and_no_key_manager(void **state)
{
	struct env *e = *state;
	uint8_t buf[65536];
	struct pfkey_msg m, r;
	struct pfkey_addr src, dst;

	pfkey_msg_init(&m, SADB_REGISTER, SADB_SATYPE_UNSPEC, 1, 1);
	send_msg(e, e->a, &m);
	assert_true(next_msg(e->a, buf, &r));
	assert_int_equal(r.nauth_algs, 8);
	assert_int_equal(r.nenc_algs, 10);
	assert_false(next_msg(e->b, buf, &r));
	send_msg(e, e->a, &m); /* not registered, so no EEXIST either */
	assert_true(next_msg(e->a, buf, &r));
	assert_int_equal(r.errno_val, 0);
	pfkey_addr_from_string(&src, "192.0.2.1");
	pfkey_addr_from_string(&dst, "192.0.2.2");
	add_out_policy(e, "192.0.2.1", "192.0.2.2");
	assert_int_equal(sim_traffic(e->sim, &src, &dst, 10, NULL), -EAGAIN);
	assert_false(next_msg(e->a, buf, &r));
	assert_int_equal(sim_sa_count(e->sim), 0);
}

/* Other processes connect on a path and are PF_KEY clients like the rest. */
static void test_listen(void **state)
{
	struct env *e = *state;
	uint8_t buf[65536];
	struct pfkey_msg m, r;
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd;

	snprintf(sun.sun_path, sizeof(sun.sun_path), "/tmp/test_simkernel.%d.sock", (int)getpid());
	assert_int_equal(sim_listen(e->sim, sun.sun_path), 0);
	assert_int_equal(sim_listen(e->sim, sun.sun_path), -EBUSY);
	fd = socket(AF_UNIX, SOCK_SEQPACKET, 0);
	assert_true(fd >= 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	for (int i = 0; i < 5; i++)
		uv_run(&e->loop, UV_RUN_NOWAIT);
	sa_msg(&m, SADB_ADD, 0xa00, "192.0.2.1", "192.0.2.2", SADB_X_EALG_AESCBC, 0, 0);
	send_msg(e, e->a, &m);
	assert_true(next_msg(fd, buf, &r));
	assert_int_equal(r.type, SADB_ADD);
	assert_int_equal(r.spi, 0xa00);
	close(fd);
}

/* --- the kernel channel on the simulator: loss and resync --------------------------- */

struct chan {
	unsigned long ok, timeouts, other, losses, dumped;
	int dump_err;
	bool dump_done;
};

static void reply_cb(struct kern *k, int err, const struct pfkey_msg *reply, void *arg)
{
	struct chan *c = arg;

	if (!err)
		c->ok++;
	else if (err == -ETIMEDOUT)
		c->timeouts++;
	else
		c->other++;
}

static void loss_cb(struct kern *k, unsigned long count, void *arg)
{
	((struct chan *)arg)->losses = count;
}

static void each_cb(struct kern *k, const struct pfkey_msg *m, void *arg)
{
	((struct chan *)arg)->dumped++;
}

static void done_cb(struct kern *k, int err, unsigned long n, void *arg)
{
	struct chan *c = arg;

	c->dump_err = err;
	c->dump_done = true;
}

/* Run the loop without blocking until *flag-like cond holds (the sim's timers are long). */
#define RUN_WHILE(e, cond)                                                          \
	do {                                                                        \
		for (int guard_ = 0; (cond) && guard_ < 20000; guard_++) {          \
			uv_run(&(e)->loop, UV_RUN_NOWAIT);                          \
			usleep(500);                                                \
		}                                                                   \
	} while (0)

/* A channel on a new client of the simulator, its REGISTER and reply let through. */
static struct kern *open_channel(struct env *e, struct kern_opts *o, int *fd)
{
	struct kern *k;

	assert_int_equal(sim_connect(e->sim, fd), 0);
	o->fd = *fd;
	assert_int_equal(kern_open(&e->loop, o, &k), 0);
	for (int i = 0; i < 20; i++) {
		uv_run(&e->loop, UV_RUN_NOWAIT);
		usleep(500);
	}
	return k;
}

/* n SADB_ADDs through the channel: SPIs spi0.., destinations 10.(9 + net).0.1.. */
static void request_adds(struct kern *k, struct chan *c, uint32_t n, uint32_t spi0, unsigned net)
{
	for (uint32_t i = 0; i < n; i++) {
		struct pfkey_msg m;
		char dst[32];

		snprintf(dst, sizeof(dst), "10.%u.%u.%u", 9 + net, (i + 1) >> 8, (i + 1) & 255);
		sa_msg(&m, SADB_ADD, spi0 + i, "192.0.2.1", dst, SADB_X_EALG_AESCBC, 0, 0);
		m.seq = 0;
		assert_int_equal(kern_request(k, &m, reply_cb, c), 0);
	}
}

static void test_channel_loss_resync(void **state)
{
	struct env *e = *state;
	struct chan c = { 0 };
	struct kern *k;
	struct kern_opts o = {
		.backend = KERN_BACKEND_FD, .timeout_ms = 200, .on_loss = loss_cb, .arg = &c,
	};
	int fd;

	k = open_channel(e, &o, &fd);
	/* The kernel loses replies silently when the receive buffer is full. */
	sim_drop_next(e->sim, fd, 5);
	request_adds(k, &c, 20, 0x400, 0);
	RUN_WHILE(e, kern_pending(k));
	assert_int_equal(c.ok, 15);
	assert_int_equal(c.timeouts, 5);
	assert_int_equal(c.other, 0);
	assert_true(c.losses > 0);
	/* Another tool's ADDs whose broadcasts the channel loses: nothing tells it. */
	sim_drop_next(e->sim, fd, 5);
	for (uint32_t i = 0; i < 5; i++) {
		struct pfkey_msg m;

		sa_msg(&m, SADB_ADD, 0x480 + i, "192.0.2.1", "198.51.100.1", SADB_X_EALG_AESCBC, 0,
		       0);
		send_msg(e, e->b, &m);
	}
	drain(e->b);
	/* Resync: the dump shows the truth, all 25, nothing dropped (dumps are flow-controlled). */
	assert_int_equal(kern_dump(k, SADB_DUMP, SADB_SATYPE_UNSPEC, each_cb, done_cb, &c), 0);
	RUN_WHILE(e, !c.dump_done);
	assert_int_equal(c.dump_err, 0);
	assert_int_equal(c.dumped, 25);
	assert_int_equal(sim_sa_count(e->sim), 25);
	kern_close(k);
	uv_run(&e->loop, UV_RUN_NOWAIT);
}

/*
 * Replies come in request order: a lost one is told by the next reply, not by
 * the timeout (60 s here: the loop below gives up long before it).
 */
static void test_channel_lost_reply_told_by_next(void **state)
{
	struct env *e = *state;
	struct chan c = { 0 };
	struct kern *k;
	struct kern_opts o = {
		.backend = KERN_BACKEND_FD, .timeout_ms = 60000, .on_loss = loss_cb, .arg = &c,
	};
	int fd;

	k = open_channel(e, &o, &fd);
	sim_drop_next(e->sim, fd, 2);
	request_adds(k, &c, 6, 0x500, 1);
	RUN_WHILE(e, kern_pending(k));
	assert_int_equal(kern_pending(k), 0);
	assert_int_equal(c.ok, 4);
	assert_int_equal(c.timeouts, 2);
	assert_int_equal(c.losses, 1); /* one report for both */
	kern_close(k);
	uv_run(&e->loop, UV_RUN_NOWAIT);
}

/*
 * A burst leaves in sendmmsg batches. A send buffer too small for one batch
 * makes sendmmsg stop part-way (EAGAIN after some messages, then EAGAIN
 * alone): every request is still sent exactly once, in order, and answered.
 */
static void test_channel_batches_partial_sends(void **state)
{
	struct env *e = *state;
	struct chan c = { 0 };
	struct kern *k;
	struct kern_opts o = { .backend = KERN_BACKEND_FD, .timeout_ms = 5000, .arg = &c };
	struct kern_stats st;
	int fd, small = 4096;

	k = open_channel(e, &o, &fd);
	assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)), 0);
	request_adds(k, &c, 400, 0x600, 2);
	RUN_WHILE(e, kern_pending(k));
	kern_get_stats(k, &st);
	assert_int_equal(c.ok, 400);
	assert_int_equal(c.timeouts + c.other, 0);
	assert_int_equal(st.sent, 400);
	assert_true(st.send_blocked > 0);
	/* fewer calls than requests, and more than one full batch's worth */
	assert_true(st.batches > 400 / 64 && st.batches < 400);
	assert_int_equal(sim_sa_count(e->sim), 400);
	kern_close(k);
	uv_run(&e->loop, UV_RUN_NOWAIT);
}

/* A malformed message from the "kernel" is dropped and counted; the channel goes on. */
static void test_channel_survives_malformed(void **state)
{
	struct env *e = *state;
	struct chan c = { 0 };
	struct kern *k;
	struct kern_opts o = { .backend = KERN_BACKEND_FD, .timeout_ms = 500, .arg = &c };
	struct kern_stats st;
	static const uint8_t junk[24] = { 2, 3, 0, 3, 3, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1 };
	struct pfkey_msg m;
	int fd;

	assert_int_equal(sim_connect(e->sim, &fd), 0);
	o.fd = fd;
	assert_int_equal(kern_open(&e->loop, &o, &k), 0);
	sim_inject(e->sim, fd, junk, sizeof(junk));
	sa_msg(&m, SADB_ADD, 0x500, "192.0.2.1", "192.0.2.2", SADB_X_EALG_AESCBC, 0, 0);
	m.seq = 0;
	assert_int_equal(kern_request(k, &m, reply_cb, &c), 0);
	RUN_WHILE(e, kern_pending(k));
	kern_get_stats(k, &st);
	assert_int_equal(st.malformed, 1);
	assert_int_equal(c.ok, 1);
	kern_close(k);
	uv_run(&e->loop, UV_RUN_NOWAIT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_add_broadcast_and_eexist, setup, teardown),
		cmocka_unit_test_setup_teardown(test_gcm_enosys_and_missing_key, setup, teardown),
		cmocka_unit_test_setup_teardown(test_get_delete_esrch, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lifetimes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_flush_twice_and_dump_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_acquire, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fail_next_by_type, setup, teardown),
		cmocka_unit_test_setup_teardown(test_drop_next_one_client, setup, teardown),
		cmocka_unit_test_setup_teardown(test_delay, setup, teardown),
		cmocka_unit_test_setup_teardown(test_inject_and_malformed_requests, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_rcvbuf_limit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_packet_lifetimes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_deliver_inbound, setup, teardown),
		cmocka_unit_test_setup_teardown(test_replay_window, setup, teardown),
		cmocka_unit_test_setup_teardown(test_replay_jump_and_window_zero, setup, teardown),
		cmocka_unit_test_setup_teardown(test_replay_before_lifetime, setup, teardown),
		cmocka_unit_test_setup_teardown(test_output_seq_per_instance, setup, teardown),
		cmocka_unit_test_setup_teardown(test_output_seq_overflow, setup, teardown),
		cmocka_unit_test_setup_teardown(test_getspi, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unspec_register_and_no_key_manager, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_listen, setup, teardown),
		cmocka_unit_test_setup_teardown(test_channel_lost_reply_told_by_next, setup, teardown),
		cmocka_unit_test_setup_teardown(test_channel_loss_resync, setup, teardown),
		cmocka_unit_test_setup_teardown(test_channel_survives_malformed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_channel_batches_partial_sends, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
