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
#include <unistd.h>

#include <cmocka.h>

#include "svc/kernel.h"
#include "svc/simkernel.h"

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

	pfkey_addr_from_string(&s, src);
	pfkey_addr_from_string(&d, dst);
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
	assert_int_equal(sim_traffic(e->sim, &src, &dst, 100), -EAGAIN);
	assert_true(next_msg(e->a, buf, &r));
	assert_int_equal(r.type, SADB_ACQUIRE);
	assert_int_equal(r.pid, 0);
	assert_int_equal(r.seq, 1);
	assert_false(next_msg(e->b, buf, &r));
	assert_int_equal(sim_traffic(e->sim, &src, &dst, 100), -EAGAIN); /* larval: no new ACQUIRE */
	assert_false(next_msg(e->a, buf, &r));
	sa_msg(&m, SADB_ADD, 0x300, "192.0.2.1", "192.0.2.2", SADB_X_EALG_AESCBC, 0, 0);
	m.seq = 1; /* the acquire's seq replaces the larval state */
	send_msg(e, e->a, &m);
	assert_int_equal(sim_sa_count(e->sim), 1);
	assert_int_equal(sim_traffic(e->sim, &src, &dst, 100), 0x300);
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

static void test_channel_loss_resync(void **state)
{
	struct env *e = *state;
	struct chan c = { 0 };
	struct kern *k;
	struct kern_opts o = {
		.backend = KERN_BACKEND_FD, .timeout_ms = 200, .on_loss = loss_cb, .arg = &c,
	};
	int fd;

	assert_int_equal(sim_connect(e->sim, &fd), 0);
	o.fd = fd;
	assert_int_equal(kern_open(&e->loop, &o, &k), 0);
	/* Let the channel's REGISTER and its reply pass first. */
	for (int i = 0; i < 20; i++) {
		uv_run(&e->loop, UV_RUN_NOWAIT);
		usleep(500);
	}
	/* The kernel loses replies silently when the receive buffer is full. */
	sim_drop_next(e->sim, fd, 5);
	for (uint32_t i = 0; i < 20; i++) {
		struct pfkey_msg m;
		char dst[32];

		snprintf(dst, sizeof(dst), "10.9.0.%u", i + 1);
		sa_msg(&m, SADB_ADD, 0x400 + i, "192.0.2.1", dst, SADB_X_EALG_AESCBC, 0, 0);
		m.seq = 0;
		assert_int_equal(kern_request(k, &m, reply_cb, &c), 0);
	}
	RUN_WHILE(e, kern_pending(k));
	assert_int_equal(c.ok, 15);
	assert_int_equal(c.timeouts, 5);
	assert_int_equal(c.other, 0);
	assert_true(c.losses > 0);
	/* Resync: the dump shows the truth, all 20. */
	assert_int_equal(kern_dump(k, SADB_DUMP, SADB_SATYPE_UNSPEC, each_cb, done_cb, &c), 0);
	RUN_WHILE(e, !c.dump_done);
	assert_int_equal(c.dump_err, 0);
	assert_int_equal(c.dumped, 20);
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
		cmocka_unit_test_setup_teardown(test_channel_loss_resync, setup, teardown),
		cmocka_unit_test_setup_teardown(test_channel_survives_malformed, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
