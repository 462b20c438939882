/* SPDX-License-Identifier: ISC */
/* Unit tests for rotate/pass: the make-before-break order of a pass, over every window. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "rotate/keysched.h"
#include "rotate/pass.h"
#include "rotate/plan.h"

#define PERIOD 600
#define PHASE 7
#define LEAD 60
#define GRACE 90
#define NLINKS 4
/* Start of epoch e of every test link: T(e). */
#define START(e) ((int64_t)(e) * PERIOD + PHASE)
/* An epoch far from 0, so that e - 4 is still positive. */
#define E 1000

static const struct conf_alg gcm = { .name = "aes-gcm-128", .keymat_len = 20, .enc_key_len = 20 };

/* Link i: 10.0.i.1 (local) <-> 10.1.i.1 (remote), spi_prefix 0x100 + i. */
static struct conf_link links[NLINKS];
static uint8_t secret_a[CONF_SECRET_LEN], secret_b[CONF_SECRET_LEN];

static struct conf_addr v4(uint8_t b0, uint8_t b1, uint8_t b2, uint8_t b3)
{
	struct conf_addr a = { .family = AF_INET, .prefixlen = 32 };

	a.bytes[0] = b0;
	a.bytes[1] = b1;
	a.bytes[2] = b2;
	a.bytes[3] = b3;
	return a;
}

static int setup_links(void **state)
{
	for (uint8_t i = 0; i < NLINKS; i++) {
		struct conf_link *l = &links[i];

		memset(l, 0, sizeof(*l));
		snprintf(l->name, sizeof(l->name), "l%u", i);
		l->local = v4(10, 0, i, 1);
		l->remote = v4(10, 1, i, 1);
		l->mode = CONF_MODE_TRANSPORT;
		l->alg = &gcm;
		l->rotate_every = PERIOD;
		l->phase = PHASE;
		l->spi_prefix = 0x100u + i;
		l->lead = LEAD;
		l->grace = GRACE;
		l->hard_slack = 120;
	}
	memset(secret_a, 0xa5, sizeof(secret_a));
	memset(secret_b, 0x5a, sizeof(secret_b));
	return 0;
}

/* ---- the SAs a pass sees: at most a few per link, plus foreign ones ---- */
#define SET_MAX 64
struct sa_set {
	struct rot_sa sa[SET_MAX];
	size_t n;
};

/* Append the plan of link at now to set. */
static void plan_into(struct sa_set *set, const struct conf_link *link, int64_t now)
{
	struct rot_plan plan;

	assert_int_equal(rot_plan(link, now, &plan), 0);
	assert_true(set->n + plan.n <= SET_MAX);
	memcpy(&set->sa[set->n], plan.sa, plan.n * sizeof(plan.sa[0]));
	set->n += plan.n;
}

/* The plan of link at now alone. */
static struct sa_set plan_of(const struct conf_link *link, int64_t now)
{
	struct sa_set set = { .n = 0 };

	plan_into(&set, link, now);
	return set;
}

static struct rot_sa *set_find(struct sa_set *set, const struct rot_sa *id)
{
	for (size_t i = 0; i < set->n; i++)
		if (!rot_sa_id_cmp(&set->sa[i], id))
			return &set->sa[i];
	return NULL;
}

static void set_put(struct sa_set *set, const struct rot_sa *sa)
{
	assert_null(set_find(set, sa));
	assert_true(set->n < SET_MAX);
	set->sa[set->n++] = *sa;
}

static void set_take(struct sa_set *set, const struct rot_sa *id)
{
	struct rot_sa *sa = set_find(set, id);

	assert_non_null(sa);
	*sa = set->sa[--set->n];
}

static size_t outbound_of(const struct sa_set *set, const struct conf_link *link)
{
	size_t n = 0;
	enum rot_dir dir;

	for (size_t i = 0; i < set->n; i++)
		n += rot_sa_owned_by(&set->sa[i], link, &dir) && dir == ROT_DIR_OUT;
	return n;
}

static bool points_into(const struct rot_sa *sa, const struct rot_sa *arr, size_t n)
{
	return n && sa >= arr && sa < arr + n;
}

/*
 * What every pass must hold: each link's makes and breaks counted and
 * grouped as the entries say, makes from the diff's adds and replacements,
 * breaks from its deletes, in falling identity order within a link, and
 * only SAs a planned link owns touched.
 */
static void check_shape(const struct sa_set *planned, const struct sa_set *actual,
			const struct rot_pass *p)
{
	size_t makes = 0, breaks = 0, deletes = 0;

	assert_int_equal(p->nconflict, p->ops.count[ROT_OP_CONFLICT]);
	for (size_t i = 0; i < p->nconflict; i++)
		assert_int_equal(p->conflict[i].kind, ROT_OP_CONFLICT);
	assert_int_equal(p->nmake, p->ops.count[ROT_OP_ADD] + 2 * p->ops.count[ROT_OP_REPLACE]);
	for (size_t k = 0; k < p->nlink; k++) {
		const struct rot_pass_link *l = &p->link[k];
		size_t own = 0;

		assert_int_equal(l->first_break, breaks);
		makes += l->makes;
		breaks += l->breaks;
		for (size_t i = 0; i < p->nmake; i++)
			own += p->make[i].link == k;
		assert_int_equal(own, l->makes);
		for (size_t i = l->first_break; i < l->first_break + l->breaks; i++) {
			const struct rot_step *s = &p->brk[i];

			assert_int_equal(s->link, k);
			assert_int_equal(s->kind, ROT_OP_DELETE);
			assert_ptr_equal(s->sa->link, l->link);
			assert_true(points_into(s->sa, actual->sa, actual->n));
			if (i > l->first_break)
				assert_true(rot_sa_id_cmp(&p->brk[i - 1].sa[0], s->sa) > 0);
		}
	}
	assert_int_equal(makes, p->nmake);
	assert_int_equal(breaks, p->nbrk);
	/* Every delete of the diff is a break, but for an SA that names no link. */
	for (size_t i = 0; i < p->ops.n; i++)
		deletes += p->ops.op[i].kind == ROT_OP_DELETE && p->ops.op[i].sa->link;
	assert_int_equal(breaks, deletes);
	for (size_t i = 0; i < p->nmake; i++) {
		const struct rot_step *s = &p->make[i];

		assert_true(s->link < p->nlink);
		if (s->kind == ROT_OP_DELETE) {
			/* Only as the first half of a replacement, of the same identity. */
			assert_true(i + 1 < p->nmake);
			assert_int_equal(p->make[i + 1].kind, ROT_OP_REPLACE);
			assert_int_equal(rot_sa_id_cmp(s->sa, p->make[i + 1].sa), 0);
			assert_true(points_into(s->sa, actual->sa, actual->n));
		} else {
			assert_true(s->kind == ROT_OP_ADD || s->kind == ROT_OP_REPLACE);
			assert_true(points_into(s->sa, planned->sa, planned->n));
			assert_ptr_equal(s->sa->link, p->link[s->link].link);
		}
		if (s->kind == ROT_OP_REPLACE)
			assert_true(i > 0 && p->make[i - 1].kind == ROT_OP_DELETE);
	}
}

/*
 * Apply the pass as the daemon does when every request succeeds: all makes,
 * then each link's breaks. No link with an outbound SA is ever left without
 * one, and no SA planned is ever deleted for good.
 */
static void apply(struct sa_set *kernel, const struct sa_set *planned, const struct rot_pass *p)
{
	struct rot_sa copy;

	for (size_t i = 0; i < p->nmake; i++) {
		copy = p->make[i].sa[0];
		if (p->make[i].kind == ROT_OP_DELETE)
			set_take(kernel, &copy);
		else
			set_put(kernel, &copy);
	}
	for (size_t k = 0; k < p->nlink; k++) {
		const struct rot_pass_link *l = &p->link[k];

		for (size_t i = l->first_break; i < l->first_break + l->breaks; i++) {
			size_t before = outbound_of(kernel, l->link);

			copy = p->brk[i].sa[0];
			for (size_t j = 0; j < planned->n; j++)
				assert_int_not_equal(rot_sa_id_cmp(&planned->sa[j], &copy), 0);
			set_take(kernel, &copy);
			if (before)
				assert_true(outbound_of(kernel, l->link) >= 1);
		}
	}
}

/* Order a pass from a copy of kernel (a pass borrows what it reads), check it, apply it. */
static void pass_and_apply(struct sa_set *kernel, const struct sa_set *planned,
			   struct rot_pass *p)
{
	static struct sa_set actual;

	actual = *kernel;
	assert_int_equal(rot_pass_order(planned->sa, planned->n, actual.sa, actual.n, p), 0);
	check_shape(planned, &actual, p);
	apply(kernel, planned, p);
}

/* Entry k of p is link's, with that many makes and breaks. */
static void assert_link(const struct rot_pass *p, size_t k, const struct conf_link *link,
			size_t makes, size_t breaks)
{
	assert_true(k < p->nlink);
	assert_ptr_equal(p->link[k].link, link);
	assert_int_equal(p->link[k].makes, makes);
	assert_int_equal(p->link[k].breaks, breaks);
}

/* ---- cases ---- */

static void test_empty(void **state)
{
	struct rot_pass p;

	rot_pass_init(&p);
	assert_int_equal(rot_pass_order(NULL, 0, NULL, 0, &p), 0);
	assert_int_equal(p.nmake + p.nbrk + p.nlink + p.nconflict, 0);
	assert_null(p.conflict);
	rot_pass_fini(&p);
	rot_pass_fini(&p); /* twice is harmless */
}

/* A link never installed: every planned SA is a make, nothing to break; in every window. */
static void test_new_link(void **state)
{
	const int64_t when[] = { START(E) + PERIOD / 2, START(E) + 1, START(E + 1) - 1,
				 START(E) + GRACE - 1 };
	struct rot_pass p;

	rot_pass_init(&p);
	for (size_t w = 0; w < sizeof(when) / sizeof(when[0]); w++) {
		struct sa_set planned = plan_of(&links[0], when[w]), kernel = { .n = 0 };

		pass_and_apply(&kernel, &planned, &p);
		assert_int_equal(p.nlink, 1);
		assert_link(&p, 0, &links[0], planned.n, 0);
		for (size_t i = 0; i < p.nmake; i++)
			assert_int_equal(p.make[i].kind, ROT_OP_ADD);
		assert_int_equal(kernel.n, planned.n);
	}
	rot_pass_fini(&p);
}

/* At T(e) the outbound SA of e is a make and the one of e-1 a break: the outbound switch. */
static void test_change_point(void **state)
{
	struct sa_set kernel = plan_of(&links[0], START(E) - 1);
	struct sa_set planned = plan_of(&links[0], START(E));
	struct rot_pass p;

	rot_pass_init(&p);
	pass_and_apply(&kernel, &planned, &p);
	assert_int_equal(p.nmake, 1);
	assert_int_equal(p.make[0].kind, ROT_OP_ADD);
	assert_int_equal(p.make[0].sa->dir, ROT_DIR_OUT);
	assert_int_equal(p.make[0].sa->epoch, E);
	assert_int_equal(p.nbrk, 1);
	assert_int_equal(p.brk[0].sa->dir, ROT_DIR_OUT);
	assert_int_equal(p.brk[0].sa->spi, rot_spi(links[0].spi_prefix, E - 1, 0));
	assert_link(&p, 0, &links[0], 1, 1);
	rot_pass_fini(&p);
}

/* Entering the lead window: the next epoch's inbound SA is a make, nothing breaks. */
static void test_lead_window(void **state)
{
	struct sa_set kernel = plan_of(&links[0], START(E + 1) - LEAD - 1);
	struct sa_set planned = plan_of(&links[0], START(E + 1) - LEAD);
	struct rot_pass p;

	rot_pass_init(&p);
	pass_and_apply(&kernel, &planned, &p);
	assert_int_equal(p.nmake, 1);
	assert_int_equal(p.make[0].sa->dir, ROT_DIR_IN);
	assert_int_equal(p.make[0].sa->epoch, E + 1);
	assert_true(p.make[0].sa->staged);
	assert_int_equal(p.nbrk, 0);
	rot_pass_fini(&p);
}

/* Leaving the grace window: the previous epoch's inbound SA breaks, with no make before it. */
static void test_grace_window(void **state)
{
	struct sa_set kernel = plan_of(&links[0], START(E) + GRACE - 1);
	struct sa_set planned = plan_of(&links[0], START(E) + GRACE);
	struct rot_pass p;

	rot_pass_init(&p);
	pass_and_apply(&kernel, &planned, &p);
	assert_link(&p, 0, &links[0], 0, 1);
	assert_int_equal(p.brk[0].sa->dir, ROT_DIR_IN);
	assert_int_equal(p.brk[0].sa->spi, rot_spi(links[0].spi_prefix, E - 1, 0));
	rot_pass_fini(&p);
}

/* A late wake-up (three epochs missed): new SAs first, then every old one, last identity first. */
static void test_late_wakeup(void **state)
{
	struct sa_set kernel = plan_of(&links[0], START(E - 3) + 10);
	struct sa_set planned = plan_of(&links[0], START(E) + PERIOD / 2);
	uint32_t prefix = links[0].spi_prefix;
	struct rot_pass p;

	rot_pass_init(&p);
	assert_int_equal(kernel.n, 3); /* in e-4 (grace), in e-3, out e-3 */
	pass_and_apply(&kernel, &planned, &p);
	assert_int_equal(p.nmake, 2); /* in e, out e */
	assert_int_equal(p.nbrk, 3);
	/* Outbound (dst 10.1.0.1) sorts after inbound (dst 10.0.0.1): it breaks first. */
	assert_int_equal(p.brk[0].sa->spi, rot_spi(prefix, E - 3, 0));
	assert_int_equal(p.brk[0].sa->dir, ROT_DIR_OUT);
	assert_int_equal(p.brk[1].sa->spi, rot_spi(prefix, E - 3, 0));
	assert_int_equal(p.brk[1].sa->dir, ROT_DIR_IN);
	assert_int_equal(p.brk[2].sa->spi, rot_spi(prefix, E - 4, 0));
	assert_int_equal(kernel.n, planned.n);
	rot_pass_fini(&p);
}

/*
 * Several links in one pass, each at another point of its schedule: entries
 * in planned order, each link's makes and breaks its own.
 */
static void test_several_links(void **state)
{
	struct sa_set kernel = { .n = 0 }, planned = { .n = 0 };
	int64_t now = START(E) + GRACE;
	struct rot_pass p;

	/* l0 new; l1 at its grace end; l2 in sync; l3 three epochs behind. */
	plan_into(&kernel, &links[1], now - 1);
	plan_into(&kernel, &links[2], now);
	plan_into(&kernel, &links[3], START(E - 3) + 10);
	plan_into(&planned, &links[2], now); /* not in prefix order: planned order rules */
	plan_into(&planned, &links[0], now);
	plan_into(&planned, &links[1], now);
	plan_into(&planned, &links[3], now);
	rot_pass_init(&p);
	pass_and_apply(&kernel, &planned, &p);
	assert_int_equal(p.nlink, 4);
	assert_link(&p, 0, &links[2], 0, 0);
	assert_link(&p, 1, &links[0], 2, 0);
	assert_link(&p, 2, &links[1], 0, 1);
	assert_link(&p, 3, &links[3], 2, 3);
	assert_int_equal(p.link[3].first_break, 1);
	assert_int_equal(kernel.n, planned.n);
	rot_pass_fini(&p);
}

/*
 * A link whose adds fail keeps its old SAs: the daemon holds its breaks
 * (its own, apart from the other link's), then leaves it out while it backs
 * off, and on the retry the same makes come first again.
 */
static void test_adds_fail(void **state)
{
	struct sa_set kernel = { .n = 0 }, planned = { .n = 0 }, actual;
	struct rot_pass p;

	plan_into(&kernel, &links[0], START(E) - 1);
	plan_into(&kernel, &links[1], START(E) - 1);
	plan_into(&planned, &links[0], START(E));
	plan_into(&planned, &links[1], START(E));
	actual = kernel;
	rot_pass_init(&p);
	assert_int_equal(rot_pass_order(planned.sa, planned.n, actual.sa, actual.n, &p), 0);
	check_shape(&planned, &actual, &p);
	assert_link(&p, 0, &links[0], 1, 1);
	assert_link(&p, 1, &links[1], 1, 1);
	assert_ptr_equal(p.brk[p.link[0].first_break].sa->link, &links[0]);
	assert_ptr_equal(p.brk[p.link[1].first_break].sa->link, &links[1]);
	/* l0's add fails: the daemon sends l1's requests only. */
	for (size_t i = 0; i < p.nmake; i++)
		if (p.make[i].sa->link == &links[1])
			set_put(&kernel, p.make[i].sa);
	set_take(&kernel, p.brk[p.link[1].first_break].sa);
	assert_int_equal(outbound_of(&kernel, &links[0]), 1);

	/* l0 backs off: a pass without it leaves its SAs alone. */
	planned.n = 0;
	plan_into(&planned, &links[1], START(E) + 1);
	actual = kernel;
	assert_int_equal(rot_pass_order(planned.sa, planned.n, actual.sa, actual.n, &p), 0);
	assert_int_equal(p.nmake + p.nbrk, 0);
	assert_int_equal(p.nlink, 1);

	/* The retry, past the grace: l0 adds out e first, then breaks in e-1 and out e-1. */
	planned.n = 0;
	plan_into(&planned, &links[0], START(E) + GRACE + 5);
	plan_into(&planned, &links[1], START(E) + GRACE + 5);
	pass_and_apply(&kernel, &planned, &p);
	assert_link(&p, 0, &links[0], 1, 2);
	assert_link(&p, 1, &links[1], 0, 1);
	assert_int_equal(p.make[0].sa->dir, ROT_DIR_OUT);
	assert_int_equal(p.make[0].sa->epoch, E);
	assert_int_equal(kernel.n, planned.n);
	rot_pass_fini(&p);
}

/*
 * A changed secret: the staged inbound SA is replaced (its delete is a make,
 * right before its add); those in use are conflicts, reported and not sent.
 */
static void test_replace_and_conflict(void **state)
{
	struct conf_link keyed = links[0];
	int64_t now = START(E + 1) - LEAD + 1;
	struct sa_set kernel, planned;
	struct rot_pass p;

	keyed.secret = secret_a;
	kernel = plan_of(&keyed, now - 1);
	keyed.secret = secret_b;
	planned = plan_of(&keyed, now);
	rot_pass_init(&p);
	pass_and_apply(&kernel, &planned, &p);
	assert_int_equal(p.nmake, 2);
	assert_int_equal(p.make[0].kind, ROT_OP_DELETE);
	assert_int_equal(p.make[1].kind, ROT_OP_REPLACE);
	assert_int_equal(p.make[1].sa->epoch, E + 1);
	assert_link(&p, 0, &keyed, 2, 0);
	assert_int_equal(p.nconflict, 2); /* in e and out e */
	for (size_t i = 0; i < p.nconflict; i++)
		assert_int_equal(p.conflict[i].sa->epoch, E);
	rot_pass_fini(&p);
}

/*
 * Unmanaged and foreign SAs are never touched: hand-keyed ones, one with the
 * link's addresses and another prefix, one with its prefix and other
 * addresses, a link's that is not due. An unclassified SA (no link) the diff
 * would delete is left out; one on a planned identity is a conflict.
 */
static void test_foreign_untouched(void **state)
{
	struct sa_set kernel = plan_of(&links[0], START(E) + PERIOD / 2);
	struct sa_set planned = plan_of(&links[0], START(E) + PERIOD / 2);
	struct rot_sa hand = kernel.sa[0], other_prefix = kernel.sa[0], other_addr = kernel.sa[0];
	struct rot_sa unclassified = kernel.sa[0], squatter = planned.sa[0];
	struct rot_pass p;
	size_t before;

	hand.link = NULL;
	hand.dir = ROT_DIR_NONE;
	hand.spi = 0x4242;
	other_prefix.link = NULL;
	other_prefix.spi = rot_spi(0x999, E, 0);
	other_addr.link = NULL;
	other_addr.dst = v4(192, 0, 2, 9);
	unclassified.link = NULL;
	unclassified.spi = rot_spi(links[0].spi_prefix, E - 7, 0);
	set_put(&kernel, &hand);
	set_put(&kernel, &other_prefix);
	set_put(&kernel, &other_addr);
	set_put(&kernel, &unclassified);
	plan_into(&kernel, &links[2], START(E - 5)); /* l2 is not due this pass */
	set_take(&kernel, &squatter);
	squatter.link = NULL;
	squatter.src = v4(203, 0, 113, 1);
	set_put(&kernel, &squatter);
	before = kernel.n;
	rot_pass_init(&p);
	pass_and_apply(&kernel, &planned, &p);
	assert_int_equal(p.ops.count[ROT_OP_DELETE], 1); /* the unclassified SA */
	assert_int_equal(p.nmake + p.nbrk, 0);
	assert_int_equal(p.nconflict, 1);
	assert_int_equal(p.conflict[0].actual->src.bytes[0], 203);
	assert_int_equal(kernel.n, before);
	rot_pass_fini(&p);
}

/*
 * Entries: one per link however often planned names it, and after them the
 * links only a break names (an SA whose link is another copy of a planned one).
 */
static void test_link_entries(void **state)
{
	struct conf_link twin = links[1];
	struct sa_set kernel = { .n = 0 }, planned = { .n = 0 }, part;
	int64_t now = START(E) + PERIOD / 2;
	struct rot_pass p;

	part = plan_of(&links[0], now);
	set_put(&planned, &part.sa[0]);
	plan_into(&planned, &links[1], now);
	for (size_t i = 1; i < part.n; i++)
		set_put(&planned, &part.sa[i]);
	kernel = plan_of(&links[1], now);
	part = plan_of(&twin, START(E - 2));
	part.sa[0].link = &twin;
	set_put(&kernel, &part.sa[0]);
	rot_pass_init(&p);
	pass_and_apply(&kernel, &planned, &p);
	assert_int_equal(p.nlink, 3);
	assert_link(&p, 0, &links[0], 2, 0);
	assert_link(&p, 1, &links[1], 0, 0);
	assert_link(&p, 2, &twin, 0, 1);
	rot_pass_fini(&p);
}

static void test_errors(void **state)
{
	struct sa_set planned = plan_of(&links[0], START(E));
	struct rot_pass p;

	rot_pass_init(&p);
	assert_int_equal(rot_pass_order(planned.sa, planned.n, NULL, 0, &p), 0);
	assert_int_not_equal(p.nmake, 0);
	planned.sa[1].link = NULL;
	assert_int_equal(rot_pass_order(planned.sa, planned.n, NULL, 0, &p), -EINVAL);
	assert_int_equal(p.nmake + p.nbrk + p.nlink + p.nconflict, 0);
	assert_null(p.make);
	assert_null(p.link);
	rot_pass_fini(&p);
}

/*
 * Every pair of instants t0 < t1 over three epochs (t0 each second, t1 at
 * each distance that crosses another set of change points): the kernel as
 * planned at t0, reconciled to t1 by one pass, keeps an outbound SA at
 * every step, ends as planned, and a second pass has nothing to do.
 */
static void test_every_window(void **state)
{
	const int64_t gap[] = { 1, 2, LEAD - 1, LEAD, GRACE, GRACE + 1, PERIOD - LEAD, PERIOD,
				PERIOD + GRACE, 3 * PERIOD };
	struct rot_pass p;

	rot_pass_init(&p);
	for (int64_t t0 = START(E) - PERIOD; t0 < START(E) + 2 * PERIOD; t0++) {
		for (size_t g = 0; g < sizeof(gap) / sizeof(gap[0]); g++) {
			struct sa_set kernel = plan_of(&links[0], t0);
			struct sa_set planned = plan_of(&links[0], t0 + gap[g]);
			size_t ins = 0, outs = 0;

			pass_and_apply(&kernel, &planned, &p);
			assert_int_equal(kernel.n, planned.n);
			for (size_t i = 0; i < p.nmake; i++) {
				ins += p.make[i].sa->dir == ROT_DIR_IN;
				outs += p.make[i].sa->dir == ROT_DIR_OUT;
			}
			/* A new outbound SA exactly when the epoch turned. */
			assert_int_equal(outs, rot_epoch(t0 + gap[g], PERIOD, PHASE) !=
						       rot_epoch(t0, PERIOD, PHASE));
			assert_true(ins <= 3);
			pass_and_apply(&kernel, &planned, &p);
			assert_int_equal(p.nmake + p.nbrk + p.nconflict, 0);
		}
	}
	rot_pass_fini(&p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_empty),
		cmocka_unit_test(test_new_link),
		cmocka_unit_test(test_change_point),
		cmocka_unit_test(test_lead_window),
		cmocka_unit_test(test_grace_window),
		cmocka_unit_test(test_late_wakeup),
		cmocka_unit_test(test_several_links),
		cmocka_unit_test(test_adds_fail),
		cmocka_unit_test(test_replace_and_conflict),
		cmocka_unit_test(test_foreign_untouched),
		cmocka_unit_test(test_link_entries),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_every_window),
	};

	return cmocka_run_group_tests(tests, setup_links, NULL);
}
