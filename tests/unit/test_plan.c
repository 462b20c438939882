/* SPDX-License-Identifier: ISC */
/* Unit tests for rotate/plan: windows around epoch boundaries, next change points, two peers. */
#include <arpa/inet.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include <cmocka.h>
#include "fixture.h"

#include "rotate/keysched.h"
#include "rotate/plan.h"

static const struct conf_alg alg_gcm128 = { .name = "aes-gcm-128", .keymat_len = 20,
					    .enc_key_len = 20 };
static const struct conf_alg alg_sha512 = { .name = "aes-cbc-256-hmac-sha512",
					    .keymat_len = 96, .enc_key_len = 32,
					    .auth_key_len = 64 };

static uint8_t secret[CONF_SECRET_LEN];

static uint64_t rng_state = 0x243f6a8885a308d3u;

static uint64_t rnd(void)
{
	return fixture_rnd(&rng_state);
}

static struct conf_addr addr(const char *text)
{
	return fixture_addr(text);
}

/* P = 3600, phase 100, lead = grace = 60, hard_slack 1h, prefix 0x2a, no secret. */
static struct conf_link base_link(void)
{
	return fixture_base_link(&alg_sha512);
}

static const struct rot_sa *find(const struct rot_plan *p, enum rot_dir dir, int64_t epoch)
{
	for (size_t i = 0; i < p->n; i++)
		if (p->sa[i].dir == dir && p->sa[i].epoch == epoch)
			return &p->sa[i];
	return NULL;
}

/* ---- table-driven windows ---- */
#define T(e) ((int64_t)(e) * 3600 + 100)
#define E 10

struct window_case {
	int64_t now;
	int64_t epoch;
	int in[3];     /* inbound epochs, relative to `epoch`; terminated by 9 */
	int64_t next_change;
};

static const struct window_case window_cases[] = {
	/* At the epoch start: previous inbound kept for grace. */
	{ T(E), E, { -1, 0, 9 }, T(E) + 60 },
	{ T(E) + 1, E, { -1, 0, 9 }, T(E) + 60 },
	{ T(E) + 59, E, { -1, 0, 9 }, T(E) + 60 },
	/* Grace over. */
	{ T(E) + 60, E, { 0, 9 }, T(E + 1) - 60 },
	{ T(E) + 1800, E, { 0, 9 }, T(E + 1) - 60 },
	{ T(E + 1) - 61, E, { 0, 9 }, T(E + 1) - 60 },
	/* Lead: next inbound staged. */
	{ T(E + 1) - 60, E, { 0, 1, 9 }, T(E + 1) },
	{ T(E + 1) - 1, E, { 0, 1, 9 }, T(E + 1) },
	/* The switch. */
	{ T(E + 1), E + 1, { -1, 0, 9 }, T(E + 1) + 60 },
	/* Before the Unix epoch and before the phase. */
	{ 0, -1, { 0, 9 }, 40 },
	{ 40, -1, { 0, 1, 9 }, 100 },
	{ 99, -1, { 0, 1, 9 }, 100 },
	{ 100, 0, { -1, 0, 9 }, 160 },
	{ -3500, -1, { -1, 0, 9 }, -3440 },
	{ -3441, -1, { -1, 0, 9 }, -3440 },
	{ -3440, -1, { 0, 9 }, 40 },
};

static void check_plan_shape(const struct conf_link *l, const struct rot_plan *p)
{
	int64_t P = (int64_t)l->rotate_every;
	int64_t start = rot_epoch_start(p->epoch, l->rotate_every, l->phase);

	assert_true(p->n >= 2 && p->n <= ROT_PLAN_MAX);
	assert_true(p->next_change > p->now);
	assert_true(p->next_change <= start + P);
	for (size_t i = 0; i < p->n; i++) {
		const struct rot_sa *sa = &p->sa[i];
		int64_t k_end = rot_epoch_start(sa->epoch + 1, l->rotate_every, l->phase);

		assert_int_equal(sa->spi, rot_spi(l->spi_prefix, sa->epoch, 0));
		assert_int_equal(sa->proto, IPPROTO_ESP);
		assert_int_equal(sa->mode, l->mode);
		assert_ptr_equal(sa->alg, l->alg);
		assert_ptr_equal(sa->link, l);
		assert_int_equal(sa->reqid, 0);
		if (sa->dir == ROT_DIR_IN) {
			assert_true(rot_addr_equal(&sa->src, &l->remote));
			assert_true(rot_addr_equal(&sa->dst, &l->local));
			assert_int_equal(sa->planned_removal, k_end + (int64_t)l->grace);
			assert_int_equal(sa->staged, sa->epoch > p->epoch);
		} else {
			assert_int_equal(sa->dir, ROT_DIR_OUT);
			assert_true(rot_addr_equal(&sa->src, &l->local));
			assert_true(rot_addr_equal(&sa->dst, &l->remote));
			assert_int_equal(sa->planned_removal, k_end);
			assert_int_equal(sa->epoch, p->epoch);
			assert_false(sa->staged);
		}
		assert_true(sa->planned_removal > p->now);
		assert_int_equal(sa->soft_expires_at,
				 sa->planned_removal + (int64_t)rot_soft_margin(l));
		assert_int_equal(sa->hard_expires_at, sa->planned_removal + (int64_t)l->hard_slack);
		assert_true(sa->soft_expires_at > sa->planned_removal);
		assert_int_equal((int64_t)sa->soft_lifetime, sa->soft_expires_at - p->now);
		assert_true(sa->soft_lifetime >= 1 && sa->hard_lifetime >= 1);
		if (l->hard_slack >= 2)
			assert_true(sa->soft_expires_at <= sa->hard_expires_at);
		if (sa->hard_expires_at > p->now)
			assert_int_equal((int64_t)sa->hard_lifetime, sa->hard_expires_at - p->now);
		if (l->secret)
			assert_int_equal(strlen(sa->key_fp), ROT_FP_LEN);
		else
			assert_string_equal(sa->key_fp, "");
	}
	/* Inbound first, by rising epoch, then one outbound. */
	for (size_t i = 0; i + 1 < p->n; i++) {
		assert_int_equal(p->sa[i].dir, ROT_DIR_IN);
		if (i + 2 < p->n)
			assert_true(p->sa[i].epoch < p->sa[i + 1].epoch);
	}
	assert_int_equal(p->sa[p->n - 1].dir, ROT_DIR_OUT);
}

static void test_windows(void **state)
{
	struct conf_link l = base_link();

	for (size_t i = 0; i < sizeof(window_cases) / sizeof(window_cases[0]); i++) {
		const struct window_case *c = &window_cases[i];
		struct rot_plan p;
		size_t nin = 0;

		assert_int_equal(rot_plan(&l, c->now, &p), 0);
		if (p.epoch != c->epoch || p.next_change != c->next_change)
			fail_msg("case %zu (now %lld): epoch %lld next %lld", i, (long long)c->now,
				 (long long)p.epoch, (long long)p.next_change);
		for (; c->in[nin] != 9; nin++)
			assert_non_null(find(&p, ROT_DIR_IN, c->epoch + c->in[nin]));
		assert_int_equal(p.n, nin + 1);
		assert_non_null(find(&p, ROT_DIR_OUT, c->epoch));
		check_plan_shape(&l, &p);
	}
}

/* Exact values at one instant: removal, lifetimes, SPI. */
static void test_values(void **state)
{
	struct conf_link l = base_link();
	struct rot_plan p;
	const struct rot_sa *in_prev, *in_cur, *out;

	assert_int_equal(rot_plan(&l, T(E) + 10, &p), 0);
	assert_int_equal(rot_soft_margin(&l), 30);
	in_prev = find(&p, ROT_DIR_IN, E - 1);
	in_cur = find(&p, ROT_DIR_IN, E);
	out = find(&p, ROT_DIR_OUT, E);
	assert_non_null(in_prev);
	assert_non_null(in_cur);
	assert_non_null(out);
	assert_int_equal(in_prev->spi, 0x2a09);
	assert_int_equal(in_prev->planned_removal, T(E) + 60);
	assert_int_equal(in_prev->soft_lifetime, 50 + 30);
	assert_int_equal(in_prev->hard_lifetime, 50 + 3600);
	assert_int_equal(in_cur->spi, 0x2a0a);
	assert_int_equal(in_cur->planned_removal, T(E + 1) + 60);
	assert_int_equal(in_cur->soft_lifetime, 3600 + 50 + 30);
	assert_int_equal(out->spi, 0x2a0a);
	assert_int_equal(out->planned_removal, T(E + 1));
	assert_int_equal(out->soft_lifetime, 3590 + 30);
	assert_int_equal(out->hard_lifetime, 3590 + 3600);

	/* Small hard_slack: the margin shrinks, soft stays > removal. */
	l.hard_slack = 0;
	assert_int_equal(rot_soft_margin(&l), 1);
	l.hard_slack = 1;
	assert_int_equal(rot_soft_margin(&l), 1);
	l.hard_slack = 10;
	assert_int_equal(rot_soft_margin(&l), 5);
	assert_int_equal(rot_plan(&l, T(E) + 10, &p), 0);
	check_plan_shape(&l, &p);
	l.hard_slack = 0;
	assert_int_equal(rot_plan(&l, T(E + 1) - 1, &p), 0);
	check_plan_shape(&l, &p);
	out = find(&p, ROT_DIR_OUT, E);
	assert_int_equal(out->hard_lifetime, 1);
	assert_int_equal(out->soft_lifetime, 2);
}

/* Degenerate windows: lead or grace 0, and lead + grace > P (four SAs). */
static void test_extreme_windows(void **state)
{
	struct conf_link l = base_link();
	struct rot_plan p;

	l.grace = 0;
	assert_int_equal(rot_plan(&l, T(E), &p), 0);
	assert_int_equal(p.n, 2);
	assert_null(find(&p, ROT_DIR_IN, E - 1));
	assert_int_equal(p.next_change, T(E + 1) - 60);
	check_plan_shape(&l, &p);

	l.grace = 60;
	l.lead = 0;
	assert_int_equal(rot_plan(&l, T(E + 1) - 1, &p), 0);
	assert_int_equal(p.n, 2);
	assert_int_equal(p.next_change, T(E + 1));
	assert_int_equal(rot_plan(&l, T(E) + 60, &p), 0);
	assert_int_equal(p.next_change, T(E + 1));

	l.rotate_every = 100;
	l.phase = 0;
	l.lead = 60;
	l.grace = 60;
	assert_int_equal(rot_plan(&l, 1045, &p), 0);
	assert_int_equal(p.epoch, 10);
	assert_int_equal(p.n, 4);
	assert_non_null(find(&p, ROT_DIR_IN, 9));
	assert_non_null(find(&p, ROT_DIR_IN, 10));
	assert_non_null(find(&p, ROT_DIR_IN, 11));
	assert_int_equal(p.next_change, 1060);
	check_plan_shape(&l, &p);

	/* Period 1: every second is an epoch. */
	l.rotate_every = 1;
	l.lead = l.grace = 0;
	assert_int_equal(rot_plan(&l, 5, &p), 0);
	assert_int_equal(p.epoch, 5);
	assert_int_equal(p.n, 2);
	assert_int_equal(p.next_change, 6);
}

static void test_ipv6_tunnel_and_fingerprints(void **state)
{
	struct conf_link l = base_link();
	struct rot_plan p;

	/* DESIGN.md v2 vector 1 is the outbound SA (generation 0) of this link in epoch 491234. */
	l.alg = &alg_gcm128;
	l.phase = 0;
	l.secret = secret;
	assert_int_equal(rot_plan(&l, 491234LL * 3600 + 1000, &p), 0);
	assert_int_equal(p.epoch, 491234);
	assert_int_equal(find(&p, ROT_DIR_OUT, 491234)->spi, 0x2a02);
	assert_string_equal(find(&p, ROT_DIR_OUT, 491234)->key_fp, "f7af5b0be5874e20");
	check_plan_shape(&l, &p);

	/* DESIGN.md v2 vector 4 is the inbound SA (generation 0) of this link in epoch 1. */
	l.alg = &alg_sha512;
	assert_int_equal(rot_plan(&l, 3600 + 5, &p), 0);
	assert_string_equal(find(&p, ROT_DIR_IN, 1)->key_fp, "6c48427cba231ca9");

	l.local = addr("2001:db8::1");
	l.remote = addr("2001:db8::2");
	l.mode = CONF_MODE_TUNNEL;
	assert_int_equal(rot_plan(&l, 7 * 3600 + 5, &p), 0);
	check_plan_shape(&l, &p);
	assert_int_equal(find(&p, ROT_DIR_OUT, 7)->dst.family, AF_INET6);
}

static void test_errors(void **state)
{
	struct conf_link l;
	struct rot_plan p;

#define BAD(stmt)                                                   \
	do {                                                        \
		l = base_link();                                    \
		stmt;                                               \
		assert_int_equal(rot_plan(&l, 1000000, &p), -EINVAL); \
		assert_int_equal(p.n, 0);                           \
	} while (0)
	BAD(l.rotate_every = 0);
	BAD(l.rotate_every = ROT_PERIOD_MAX + 1);
	BAD(l.phase = 3600);
	BAD(l.spi_prefix = 0);
	BAD(l.spi_prefix = 0x1000000);
	BAD(l.local.family = 0);
	BAD(l.remote = addr("2001:db8::2"));
	BAD(l.alg = NULL);
	BAD(l.mode = 0);
	BAD(l.lead = ROT_PERIOD_MAX + 1);
	BAD(l.grace = ROT_PERIOD_MAX + 1);
	BAD(l.hard_slack = ROT_PERIOD_MAX + 1);
#undef BAD
	l = base_link();
	assert_int_equal(rot_plan(&l, ROT_TIME_MAX + 1, &p), -EINVAL);
	assert_int_equal(rot_plan(&l, -ROT_TIME_MAX - 1, &p), -EINVAL);
	assert_int_equal(rot_plan(&l, ROT_TIME_MAX, &p), 0);
	assert_int_equal(rot_plan(&l, -ROT_TIME_MAX, &p), 0);
}

/* Same set of SAs (by dir, epoch and identity). */
static bool same_set(const struct rot_plan *a, const struct rot_plan *b)
{
	if (a->n != b->n)
		return false;
	for (size_t i = 0; i < a->n; i++) {
		const struct rot_sa *o = find(b, a->sa[i].dir, a->sa[i].epoch);

		if (!o || rot_sa_id_cmp(o, &a->sa[i]) != 0 ||
		    o->planned_removal != a->sa[i].planned_removal)
			return false;
	}
	return true;
}

static struct conf_link random_link(void)
{
	struct conf_link l = base_link();
	uint64_t P = 1 + rnd() % 7200;

	l.rotate_every = P;
	l.phase = rnd() % P;
	/* Mostly valid configs (lead + grace <= P), sometimes wider windows. */
	if (rnd() % 4) {
		l.lead = rnd() % (P / 2 + 1);
		l.grace = rnd() % (P / 2 + 1);
	} else {
		l.lead = rnd() % (2 * P);
		l.grace = rnd() % (2 * P);
	}
	l.hard_slack = rnd() % 5000;
	l.spi_prefix = 1 + (uint32_t)(rnd() % 0xffffff);
	return l;
}

/*
 * next_change is exact: the set is constant on [now, next_change) and
 * differs at next_change; each SA stays until its planned removal and is
 * gone then (within the spec's windows, lead and grace < P).
 */
static void test_property_next_change_and_removal(void **state)
{
	for (int iter = 0; iter < 20000; iter++) {
		struct conf_link l = random_link();
		int64_t now = (int64_t)(rnd() % 4000000000u) - 2000000000, mid;
		struct rot_plan p, q;

		assert_int_equal(rot_plan(&l, now, &p), 0);
		check_plan_shape(&l, &p);
		assert_int_equal(rot_plan(&l, p.next_change - 1, &q), 0);
		assert_true(same_set(&p, &q));
		mid = now + (int64_t)(rnd() % (uint64_t)(p.next_change - now));
		assert_int_equal(rot_plan(&l, mid, &q), 0);
		assert_true(same_set(&p, &q));
		assert_int_equal(rot_plan(&l, p.next_change, &q), 0);
		assert_false(same_set(&p, &q));

		if (l.lead >= l.rotate_every || l.grace >= l.rotate_every)
			continue;
		for (size_t i = 0; i < p.n; i++) {
			const struct rot_sa *sa = &p.sa[i];

			assert_int_equal(rot_plan(&l, sa->planned_removal - 1, &q), 0);
			assert_non_null(find(&q, sa->dir, sa->epoch));
			assert_int_equal(rot_plan(&l, sa->planned_removal, &q), 0);
			assert_null(find(&q, sa->dir, sa->epoch));
		}
	}
}

/*
 * Two peers of one link (local and remote swapped), clocks skewed by sa and
 * sb. Returns true if, at true time t, each peer's inbound set holds the SA
 * (identity and key) the other one sends with.
 */
static bool peers_agree(const struct conf_link *a, const struct conf_link *b, int64_t t,
			int64_t skew_a, int64_t skew_b)
{
	struct rot_plan pa, pb;
	const struct conf_link *links[2] = { a, b };
	const struct rot_plan *plans[2] = { &pa, &pb };

	assert_int_equal(rot_plan(a, t + skew_a, &pa), 0);
	assert_int_equal(rot_plan(b, t + skew_b, &pb), 0);
	for (int s = 0; s < 2; s++) {
		const struct rot_plan *tx = plans[s], *rx = plans[1 - s];
		const struct rot_sa *out = find(tx, ROT_DIR_OUT, tx->epoch), *in;

		assert_non_null(out);
		in = find(rx, ROT_DIR_IN, out->epoch);
		if (!in)
			return false;
		/* Same identity, same key. */
		assert_int_equal(rot_sa_id_cmp(in, out), 0);
		assert_true(rot_addr_equal(&in->src, &out->src));
		if (links[0]->secret)
			assert_string_equal(in->key_fp, out->key_fp);
	}
	return true;
}

static void make_peers(struct conf_link *a, struct conf_link *b, bool with_secret)
{
	*a = random_link();
	/* Valid windows: lead, grace <= P / 2. */
	a->lead = rnd() % (a->rotate_every / 2 + 1);
	a->grace = rnd() % (a->rotate_every / 2 + 1);
	a->secret = with_secret ? secret : NULL;
	if (rnd() % 2) {
		a->local = addr("2001:db8::1");
		a->remote = addr("2001:db8::2");
	}
	*b = *a;
	b->local = a->remote;
	b->remote = a->local;
}

/*
 * DESIGN.md: clock skew up to min(lead, grace) between the peers loses no
 * packet. The guarantee is about the peers' relative skew |sa - sb|: each
 * peer may be off true time, as long as they are within min(lead, grace) of
 * each other (see test_two_peers_bound_is_tight for |sa|, |sb| <= min each).
 */
static void test_property_two_peers(void **state)
{
	struct conf_link a, b;

	for (int iter = 0; iter < 20000; iter++) {
		int64_t m, skew_a, skew_b, t;

		make_peers(&a, &b, iter % 20 == 0);
		m = (int64_t)(a.lead < a.grace ? a.lead : a.grace);
		skew_a = (int64_t)(rnd() % (uint64_t)(2 * m + 1)) - m;
		/* skew_b within m of skew_a; often at the edge. */
		switch (rnd() % 3) {
		case 0:
			skew_b = skew_a + m;
			break;
		case 1:
			skew_b = skew_a - m;
			break;
		default:
			skew_b = skew_a + (int64_t)(rnd() % (uint64_t)(2 * m + 1)) - m;
		}
		/* Random instants, and instants right at the boundaries of either clock. */
		t = (int64_t)(rnd() % 4000000000u);
		if (iter % 2) {
			int64_t e = rot_epoch(t, a.rotate_every, a.phase);
			int64_t edge = rot_epoch_start(e, a.rotate_every, a.phase);

			t = edge - (iter % 4 == 1 ? skew_a : skew_b) + (int64_t)(rnd() % 3) - 1;
		}
		if (!peers_agree(&a, &b, t, skew_a, skew_b))
			fail_msg("loss: P=%llu phase=%llu lead=%llu grace=%llu "
				 "t=%lld sa=%lld sb=%lld",
				 (unsigned long long)a.rotate_every, (unsigned long long)a.phase,
				 (unsigned long long)a.lead, (unsigned long long)a.grace,
				 (long long)t, (long long)skew_a, (long long)skew_b);
	}
}

/*
 * The bound is tight: a relative skew of min(lead, grace) + 1 loses packets
 * at some instant, so two peers each within min(lead, grace) of true time,
 * in opposite directions, are not covered by the design.
 */
static void test_two_peers_bound_is_tight(void **state)
{
	struct conf_link a = base_link(), b;
	int64_t m = 60, t;
	bool lost = false;

	b = a;
	b.local = a.remote;
	b.remote = a.local;
	for (t = T(E) - 200; t < T(E) + 200; t++)
		assert_true(peers_agree(&a, &b, t, 0, m));
	for (t = T(E) - 200; t < T(E) + 200; t++)
		lost |= !peers_agree(&a, &b, t, 0, m + 1);
	assert_true(lost);
	lost = false;
	for (t = T(E) - 200; t < T(E) + 200; t++)
		lost |= !peers_agree(&a, &b, t, m, -m);
	assert_true(lost);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_windows),
		cmocka_unit_test(test_values),
		cmocka_unit_test(test_extreme_windows),
		cmocka_unit_test(test_ipv6_tunnel_and_fingerprints),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_property_next_change_and_removal),
		cmocka_unit_test(test_property_two_peers),
		cmocka_unit_test(test_two_peers_bound_is_tight),
	};

	for (int i = 0; i < CONF_SECRET_LEN; i++)
		secret[i] = (uint8_t)i;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
