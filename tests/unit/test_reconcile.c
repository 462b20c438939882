/* SPDX-License-Identifier: ISC */
/* Unit tests for rotate/reconcile: ordering, ownership, conflicts, idempotence, restarts, scale. */
#include <arpa/inet.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <cmocka.h>
#include "fixture.h"

#include "rotate/keysched.h"
#include "rotate/plan.h"
#include "rotate/reconcile.h"

static const struct conf_alg alg_gcm128 = { .name = "aes-gcm-128", .keymat_len = 20,
					    .enc_key_len = 20 };
static const struct conf_alg alg_sha512 = { .name = "aes-cbc-256-hmac-sha512",
					    .keymat_len = 96, .enc_key_len = 32,
					    .auth_key_len = 64 };
/* Same name, another table row: compared by name. */
static const struct conf_alg alg_sha512_copy = { .name = "aes-cbc-256-hmac-sha512",
						 .keymat_len = 96 };

static uint8_t secret[CONF_SECRET_LEN], other_secret[CONF_SECRET_LEN];

static uint64_t rng_state = 0x13198a2e03707344u;

static uint64_t rnd(void)
{
	return fixture_rnd(&rng_state);
}

static struct conf_addr addr(const char *text)
{
	return fixture_addr(text);
}

static struct conf_addr addr4(uint32_t v)
{
	struct conf_addr a = { .family = AF_INET, .prefixlen = 32 };

	v = htonl(v);
	memcpy(a.bytes, &v, 4);
	return a;
}

static struct conf_link base_link(void)
{
	return fixture_base_link(&alg_sha512);
}

#define T(e) ((int64_t)(e) * 3600 + 100)
#define E 10

/* ---- a simulated SADB: one SA per (dst, spi, proto) ---- */
#define KMAX 256
struct kern {
	struct rot_sa sa[KMAX];
	size_t n;
	unsigned eexist, esrch;
};

/* What the daemon reconciles against: a dump of the kernel, which ops borrow. */
static struct kern snap;

/* Take the dump: copy k into snap, return its SAs (count: k->n). */
static const struct rot_sa *dump_of(const struct kern *k)
{
	snap = *k;
	return snap.sa;
}

static struct rot_sa *kern_find(struct kern *k, const struct rot_sa *id)
{
	for (size_t i = 0; i < k->n; i++)
		if (rot_sa_id_cmp(&k->sa[i], id) == 0)
			return &k->sa[i];
	return NULL;
}

/* What a dump shows: no management data. */
static int kern_add(struct kern *k, const struct rot_sa *sa)
{
	struct rot_sa *slot;

	if (kern_find(k, sa))
		return -EEXIST;
	assert_true(k->n < KMAX);
	slot = &k->sa[k->n++];
	*slot = *sa;
	slot->link = NULL;
	slot->dir = ROT_DIR_NONE;
	slot->staged = false;
	return 0;
}

static int kern_del(struct kern *k, const struct rot_sa *id)
{
	struct rot_sa *sa = kern_find(k, id);

	if (!sa)
		return -ESRCH;
	*sa = k->sa[--k->n];
	return 0;
}

static void step(struct kern *k, enum rot_op_kind kind, int err)
{
	assert_true(rot_op_result_ok(kind, err));
	if (err == -EEXIST)
		k->eexist++;
	if (err == -ESRCH)
		k->esrch++;
}

/*
 * Apply ops[0..limit) as the daemon would. ops must have been computed from
 * a snapshot of k (a dump), not from k itself, since they borrow its SAs.
 */
static void kern_apply(struct kern *k, const struct rot_ops *ops, size_t limit)
{
	for (size_t i = 0; i < ops->n && i < limit; i++) {
		const struct rot_op *op = &ops->op[i];
		struct rot_sa copy;

		switch (op->kind) {
		case ROT_OP_ADD:
			step(k, ROT_OP_ADD, kern_add(k, op->sa));
			break;
		case ROT_OP_DELETE:
			copy = *op->sa; /* op->sa may point into k */
			step(k, ROT_OP_DELETE, kern_del(k, &copy));
			break;
		case ROT_OP_REPLACE:
			copy = *op->actual;
			step(k, ROT_OP_DELETE, kern_del(k, &copy));
			step(k, ROT_OP_ADD, kern_add(k, op->sa));
			break;
		case ROT_OP_CONFLICT:
			break;
		}
	}
}

/* Reconcile k to desired; returns the number of kernel changes. */
static size_t sync_to(struct kern *k, const struct rot_sa *desired, size_t n)
{
	static struct kern dump; /* ops borrow the array they were computed from */
	struct rot_ops ops;
	size_t changes;

	rot_ops_init(&ops);
	dump = *k;
	assert_int_equal(rot_reconcile(desired, n, dump.sa, dump.n, &ops), 0);
	changes = rot_ops_changes(&ops);
	kern_apply(k, &ops, SIZE_MAX);
	rot_ops_fini(&ops);
	return changes;
}

/* The kernel's SAs of link are exactly plan's, with equal attributes. */
static void assert_kern_matches(struct kern *k, const struct conf_link *l, const struct rot_plan *p)
{
	size_t owned = 0;

	for (size_t i = 0; i < k->n; i++)
		owned += rot_sa_owned_by(&k->sa[i], l, NULL);
	assert_int_equal(owned, p->n);
	for (size_t i = 0; i < p->n; i++) {
		struct rot_sa *sa = kern_find(k, &p->sa[i]);

		assert_non_null(sa);
		assert_true(rot_sa_same_attrs(&p->sa[i], sa));
	}
}

static void assert_ordered(const struct rot_ops *ops)
{
	size_t count[ROT_OP_KINDS] = { 0 };

	for (size_t i = 0; i < ops->n; i++) {
		count[ops->op[i].kind]++;
		if (i)
			assert_true(ops->op[i - 1].kind <= ops->op[i].kind);
	}
	assert_memory_equal(count, ops->count, sizeof(count));
}

/* ---- basic cases ---- */
static void test_empty(void **state)
{
	struct rot_ops ops;

	rot_ops_init(&ops);
	rot_ops_fini(&ops); /* fini of empty is fine */
	assert_int_equal(rot_reconcile(NULL, 0, NULL, 0, &ops), 0);
	assert_int_equal(ops.n, 0);
	rot_ops_fini(&ops);
}

static void test_fresh_start_adds_only(void **state)
{
	struct conf_link l = base_link();
	struct rot_plan p;
	struct rot_ops ops;

	rot_ops_init(&ops);
	assert_int_equal(rot_plan(&l, T(E) + 5, &p), 0);
	assert_int_equal(rot_reconcile(p.sa, p.n, NULL, 0, &ops), 0);
	assert_int_equal(ops.n, p.n);
	assert_int_equal(ops.count[ROT_OP_ADD], p.n);
	for (size_t i = 0; i < ops.n; i++)
		assert_true(ops.op[i].sa >= p.sa && ops.op[i].sa < p.sa + p.n);
	assert_ordered(&ops);
	rot_ops_fini(&ops);
}

/* At T(e+1): the new outbound SA is added, then the old one deleted. */
static void test_outbound_switch(void **state)
{
	struct conf_link l = base_link();
	struct kern k = { 0 };
	struct rot_plan before, after;
	struct rot_ops ops;

	rot_ops_init(&ops);
	assert_int_equal(rot_plan(&l, T(E + 1) - 1, &before), 0);
	assert_int_equal(sync_to(&k, before.sa, before.n), 4 - 1);
	assert_int_equal(rot_plan(&l, T(E + 1), &after), 0);
	assert_int_equal(rot_reconcile(after.sa, after.n, dump_of(&k), k.n, &ops), 0);
	assert_int_equal(ops.n, 2);
	assert_int_equal(ops.op[0].kind, ROT_OP_ADD);
	assert_int_equal(ops.op[0].sa->dir, ROT_DIR_OUT);
	assert_int_equal(ops.op[0].sa->epoch, E + 1);
	assert_int_equal(ops.op[1].kind, ROT_OP_DELETE);
	assert_int_equal(ops.op[1].sa->spi, rot_spi(0x2a, E, 0));
	assert_true(rot_addr_equal(&ops.op[1].sa->dst, &l.remote));
	kern_apply(&k, &ops, SIZE_MAX);
	assert_kern_matches(&k, &l, &after);
	/* Grace over: the previous inbound leaves. */
	assert_int_equal(rot_plan(&l, T(E + 1) + 60, &after), 0);
	assert_int_equal(rot_reconcile(after.sa, after.n, dump_of(&k), k.n, &ops), 0);
	assert_int_equal(ops.n, 1);
	assert_int_equal(ops.op[0].kind, ROT_OP_DELETE);
	assert_int_equal(ops.op[0].sa->spi, rot_spi(0x2a, E, 0));
	assert_true(rot_addr_equal(&ops.op[0].sa->dst, &l.local));
	rot_ops_fini(&ops);
}

/* Hand-keyed and other SAs are left alone. */
static void test_foreign_untouched(void **state)
{
	struct conf_link l = base_link();
	struct kern k = { 0 };
	struct rot_plan p;
	struct rot_sa foreign[5];
	struct rot_ops ops;

	rot_ops_init(&ops);
	assert_int_equal(rot_plan(&l, T(E) + 1000, &p), 0);
	/* Same addresses, another prefix (hand-keyed). */
	foreign[0] = p.sa[0];
	foreign[0].spi = 0x1234;
	/* Our prefix, other addresses. */
	foreign[1] = p.sa[0];
	foreign[1].spi = rot_spi(0x2a, E - 5, 0);
	foreign[1].src = addr("203.0.113.9");
	/* Our prefix and addresses, AH. */
	foreign[2] = p.sa[0];
	foreign[2].spi = rot_spi(0x2a, E - 5, 0);
	foreign[2].proto = 51;
	/* Our prefix, local -> local. */
	foreign[3] = p.sa[0];
	foreign[3].spi = rot_spi(0x2a, E - 6, 0);
	foreign[3].src = l.local;
	/* IPv6 with the same bytes prefix. */
	foreign[4] = p.sa[0];
	foreign[4].spi = rot_spi(0x2a, E - 7, 0);
	foreign[4].src = addr("2001:db8::1");
	foreign[4].dst = addr("2001:db8::2");
	for (int i = 0; i < 5; i++)
		assert_int_equal(kern_add(&k, &foreign[i]), 0);
	/* And an owned stale SA, which goes. */
	assert_int_equal(rot_plan(&l, T(E - 3), &p), 0);
	assert_int_equal(kern_add(&k, &p.sa[p.n - 1]), 0);

	assert_int_equal(rot_plan(&l, T(E) + 1000, &p), 0);
	assert_int_equal(rot_reconcile(p.sa, p.n, dump_of(&k), k.n, &ops), 0);
	assert_int_equal(ops.count[ROT_OP_ADD], p.n);
	assert_int_equal(ops.count[ROT_OP_DELETE], 1);
	assert_int_equal(ops.op[ops.n - 1].sa->spi, rot_spi(0x2a, E - 3, 0));
	kern_apply(&k, &ops, SIZE_MAX);
	for (int i = 0; i < 5; i++)
		assert_non_null(kern_find(&k, &foreign[i]));
	assert_kern_matches(&k, &l, &p);
	/* Without desired SAs no link is in scope: nothing is deleted. */
	assert_int_equal(rot_reconcile(NULL, 0, dump_of(&k), k.n, &ops), 0);
	assert_int_equal(ops.n, 0);
	rot_ops_fini(&ops);
}

/* A changed secret or algorithm: replace only what is not in use. */
static void test_conflicts(void **state)
{
	struct conf_link l = base_link(), changed;
	struct kern k = { 0 };
	struct rot_plan p;
	struct rot_ops ops;

	rot_ops_init(&ops);
	l.secret = other_secret;
	assert_int_equal(rot_plan(&l, T(E + 1) - 10, &p), 0); /* in e, in e+1 (staged), out e */
	assert_int_equal(sync_to(&k, p.sa, p.n), 3);

	changed = l;
	changed.secret = secret;
	assert_int_equal(rot_plan(&changed, T(E + 1) - 10, &p), 0);
	assert_int_equal(rot_reconcile(p.sa, p.n, dump_of(&k), k.n, &ops), 0);
	assert_ordered(&ops);
	assert_int_equal(ops.count[ROT_OP_REPLACE], 1);
	assert_int_equal(ops.count[ROT_OP_CONFLICT], 2);
	assert_int_equal(ops.count[ROT_OP_DELETE] + ops.count[ROT_OP_ADD], 0);
	assert_int_equal(ops.op[0].kind, ROT_OP_REPLACE);
	assert_true(ops.op[0].sa->staged && ops.op[0].sa->epoch == E + 1);
	assert_string_not_equal(ops.op[0].sa->key_fp, ops.op[0].actual->key_fp);
	for (size_t i = 1; i < 3; i++) {
		assert_int_equal(ops.op[i].kind, ROT_OP_CONFLICT);
		assert_false(ops.op[i].sa->staged);
		assert_non_null(ops.op[i].actual);
	}
	kern_apply(&k, &ops, SIZE_MAX);
	/* Conflicts persist (reported again) but nothing more changes. */
	assert_int_equal(rot_reconcile(p.sa, p.n, dump_of(&k), k.n, &ops), 0);
	assert_int_equal(rot_ops_changes(&ops), 0);
	assert_int_equal(ops.count[ROT_OP_CONFLICT], 2);
	/* Next epoch, after grace: the old-key SAs left at their planned removal. */
	assert_int_equal(rot_plan(&changed, T(E + 1) + 60, &p), 0);
	assert_int_equal(sync_to(&k, p.sa, p.n), 3); /* add out e+1, delete out e, in e */
	assert_kern_matches(&k, &changed, &p);

	/* Algorithm change on the outbound SA: report, never delete it. */
	changed.alg = &alg_gcm128;
	changed.secret = NULL;
	assert_int_equal(rot_plan(&changed, T(E + 1) + 100, &p), 0);
	assert_int_equal(rot_reconcile(p.sa, p.n, dump_of(&k), k.n, &ops), 0);
	assert_int_equal(ops.count[ROT_OP_CONFLICT], 2);
	assert_int_equal(rot_ops_changes(&ops), 0);
	/* Same name through another table row is the same algorithm. */
	changed.alg = &alg_sha512_copy;
	assert_int_equal(rot_plan(&changed, T(E + 1) + 100, &p), 0);
	assert_int_equal(rot_reconcile(p.sa, p.n, dump_of(&k), k.n, &ops), 0);
	assert_int_equal(ops.n, 0);
	/* Mode and source address are compared; reqid only when both are set. */
	changed = l;
	changed.secret = NULL;
	changed.mode = CONF_MODE_TUNNEL;
	assert_int_equal(rot_plan(&changed, T(E + 1) + 100, &p), 0);
	assert_int_equal(rot_reconcile(p.sa, p.n, dump_of(&k), k.n, &ops), 0);
	assert_int_equal(ops.count[ROT_OP_CONFLICT], 2);
	rot_ops_fini(&ops);
}

static void test_same_attrs(void **state)
{
	struct conf_link l = base_link();
	struct rot_plan p;
	struct rot_sa a, d;

	assert_int_equal(rot_plan(&l, T(E), &p), 0);
	d = p.sa[0];
	d.reqid = 5; /* the planner sets 0 (plan.c); a set reqid must be compared */
	a = d;
	assert_true(rot_sa_same_attrs(&d, &a));
	a.reqid = 0;
	assert_true(rot_sa_same_attrs(&d, &a));
	a.reqid = 7;
	assert_false(rot_sa_same_attrs(&d, &a));
	a = d;
	strcpy(a.key_fp, "0123456789abcdef");
	assert_true(rot_sa_same_attrs(&d, &a)); /* desired fp unknown */
	strcpy(d.key_fp, "0123456789abcdee");
	assert_false(rot_sa_same_attrs(&d, &a));
	a = d;
	a.alg = NULL;
	assert_false(rot_sa_same_attrs(&d, &a));
	a = d;
	a.src = addr("203.0.113.1");
	assert_false(rot_sa_same_attrs(&d, &a));
	a = d;
	a.src.prefixlen = 7; /* prefixlen is not part of an address */
	assert_true(rot_sa_same_attrs(&d, &a));
	/* Lifetimes and management data are not attributes. */
	a = d;
	a.soft_lifetime = 1;
	a.link = NULL;
	a.dir = ROT_DIR_NONE;
	a.epoch = 0;
	assert_true(rot_sa_same_attrs(&d, &a));
}

/* A foreign SA sitting on a desired identity is reported, never deleted, even when staged. */
static void test_foreign_on_desired_identity(void **state)
{
	struct conf_link l = base_link();
	struct rot_plan p;
	struct rot_sa squatter;
	struct rot_ops ops;

	rot_ops_init(&ops);
	assert_int_equal(rot_plan(&l, T(E + 1) - 10, &p), 0);
	squatter = p.sa[1]; /* inbound e+1, staged */
	assert_true(squatter.staged);
	squatter.src = addr("203.0.113.1");
	assert_int_equal(rot_reconcile(p.sa, p.n, &squatter, 1, &ops), 0);
	assert_int_equal(ops.count[ROT_OP_ADD], 2);
	assert_int_equal(ops.count[ROT_OP_CONFLICT], 1);
	assert_int_equal(ops.count[ROT_OP_REPLACE] + ops.count[ROT_OP_DELETE], 0);
	assert_ptr_equal(ops.op[2].actual, &squatter);
	rot_ops_fini(&ops);
}

static void test_duplicates_and_errors(void **state)
{
	struct conf_link l = base_link(), twin = base_link();
	struct rot_plan p, q;
	struct rot_sa desired[8], actual[2];
	struct rot_ops ops;
	size_t n = 0;

	rot_ops_init(&ops);
	assert_int_equal(rot_plan(&l, T(E) + 1000, &p), 0);
	assert_int_equal(rot_plan(&twin, T(E) + 1000, &q), 0);
	for (size_t i = 0; i < p.n; i++)
		desired[n++] = p.sa[i];
	for (size_t i = 0; i < q.n; i++)
		desired[n++] = q.sa[i];
	/* Two links with the same prefix and addresses (a config error): each SA added once. */
	assert_int_equal(rot_reconcile(desired, n, NULL, 0, &ops), 0);
	assert_int_equal(ops.n, p.n);
	/* The same identity twice in actual: never deleted. */
	actual[0] = actual[1] = p.sa[0];
	assert_int_equal(rot_reconcile(p.sa, p.n, actual, 2, &ops), 0);
	assert_int_equal(ops.count[ROT_OP_ADD], p.n - 1);
	assert_int_equal(ops.count[ROT_OP_CONFLICT], 1);
	assert_int_equal(ops.count[ROT_OP_DELETE], 0);
	/* A desired SA must name its link; ops are left empty. */
	desired[1].link = NULL;
	assert_int_equal(rot_reconcile(desired, n, NULL, 0, &ops), -EINVAL);
	assert_int_equal(ops.n, 0);
	assert_null(ops.op);
	rot_ops_fini(&ops);
}

static void test_result_ok(void **state)
{
	assert_true(rot_op_result_ok(ROT_OP_ADD, 0));
	assert_true(rot_op_result_ok(ROT_OP_ADD, -EEXIST));
	assert_false(rot_op_result_ok(ROT_OP_ADD, -ESRCH));
	assert_false(rot_op_result_ok(ROT_OP_ADD, -ENOMEM));
	assert_false(rot_op_result_ok(ROT_OP_ADD, -ENOSYS));
	assert_true(rot_op_result_ok(ROT_OP_DELETE, 0));
	assert_true(rot_op_result_ok(ROT_OP_DELETE, -ESRCH));
	assert_true(rot_op_result_ok(ROT_OP_DELETE, -ENOENT));
	assert_false(rot_op_result_ok(ROT_OP_DELETE, -EEXIST));
	assert_false(rot_op_result_ok(ROT_OP_DELETE, -EPERM));
	assert_false(rot_op_result_ok(ROT_OP_REPLACE, -EEXIST));
	assert_true(rot_op_result_ok(ROT_OP_CONFLICT, 0));
}

/* Re-applying ops to a kernel that already has them: EEXIST / ESRCH count as success. */
static void test_reapply_is_harmless(void **state)
{
	struct conf_link l = base_link();
	struct kern k = { 0 }, copy;
	struct rot_plan p, q;
	struct rot_ops ops;

	rot_ops_init(&ops);
	assert_int_equal(rot_plan(&l, T(E + 1) - 1, &p), 0);
	sync_to(&k, p.sa, p.n);
	assert_int_equal(rot_plan(&l, T(E + 1), &q), 0);
	copy = k;
	assert_int_equal(rot_reconcile(q.sa, q.n, copy.sa, copy.n, &ops), 0);
	kern_apply(&k, &ops, SIZE_MAX);
	kern_apply(&k, &ops, SIZE_MAX); /* the daemon retried after a crash */
	assert_int_equal(k.eexist, 1);
	assert_int_equal(k.esrch, 1);
	assert_kern_matches(&k, &l, &q);
	rot_ops_fini(&ops);
}

/* ---- windows, restarts, late wake-ups ---- */
static const int64_t window_offsets[] = {
	0, 1, 59, 60, 61, 1800, 3600 - 61, 3600 - 60, 3600 - 59, 3600 - 1,
};
#define NOFFSETS (sizeof(window_offsets) / sizeof(window_offsets[0]))

/* Restart in every window from an empty, a partial, a stale and a half-applied kernel. */
static void test_restart_every_window(void **state)
{
	struct conf_link l = base_link();
	struct rot_plan p, old;
	struct rot_ops ops;
	int ret;

	rot_ops_init(&ops);
	l.secret = secret;
	for (size_t w = 0; w < NOFFSETS; w++) {
		int64_t now = T(E) + window_offsets[w];

		assert_int_equal(rot_plan(&l, now, &p), 0);
		for (int start = 0; start < 4; start++) {
			for (size_t prev = 0; prev < NOFFSETS; prev++) {
				struct kern k = { 0 };
				/* The state the crashed daemon left, from some earlier instant. */
				int64_t then = T(E - 1) + window_offsets[prev];

				assert_int_equal(rot_plan(&l, then, &old), 0);
				if (start == 1) { /* partial: only some of the desired SAs */
					for (size_t i = 0; i < p.n; i += 2)
						kern_add(&k, &p.sa[i]);
				} else if (start == 2) { /* stale: a reconcile missed */
					sync_to(&k, old.sa, old.n);
				} else if (start == 3) { /* crashed half-way through applying */
					sync_to(&k, old.sa, old.n);
					ret = rot_reconcile(p.sa, p.n, dump_of(&k), k.n, &ops);
					assert_int_equal(ret, 0);
					kern_apply(&k, &ops, ops.n / 2);
				}
				ret = rot_reconcile(p.sa, p.n, dump_of(&k), k.n, &ops);
				assert_int_equal(ret, 0);
				assert_ordered(&ops);
				kern_apply(&k, &ops, SIZE_MAX);
				assert_kern_matches(&k, &l, &p);
				assert_int_equal(sync_to(&k, p.sa, p.n), 0);
				if (start == 0)
					break;
			}
		}
	}
	rot_ops_fini(&ops);
}

/* Suspended for several periods: one reconcile reaches the present. */
static void test_late_wakeup(void **state)
{
	struct conf_link l = base_link();
	struct rot_plan p, q;

	for (int iter = 0; iter < 2000; iter++) {
		struct kern k = { 0 };
		int64_t t0 = T(E) + (int64_t)(rnd() % 3600);
		int64_t t1 = t0 + (int64_t)(rnd() % (6 * 3600));
		struct rot_ops ops;

		rot_ops_init(&ops);
		assert_int_equal(rot_plan(&l, t0, &p), 0);
		sync_to(&k, p.sa, p.n);
		assert_int_equal(rot_plan(&l, t1, &q), 0);
		assert_int_equal(rot_reconcile(q.sa, q.n, dump_of(&k), k.n, &ops), 0);
		assert_ordered(&ops);
		/* Something to send with at every step: the outbound SA is never missing. */
		for (size_t i = 0; i < ops.n; i++) {
			bool has_out = false;

			kern_apply(&k, &ops, i + 1);
			/* kern_apply(.., i + 1) re-applies earlier ops: harmless by design. */
			for (size_t j = 0; j < k.n; j++) {
				enum rot_dir dir;

				if (rot_sa_owned_by(&k.sa[j], &l, &dir) && dir == ROT_DIR_OUT)
					has_out = true;
			}
			assert_true(has_out);
		}
		assert_kern_matches(&k, &l, &q);
		rot_ops_fini(&ops);
	}
}

/*
 * Two daemons (A and B, one link, local and remote swapped) with skewed
 * clocks (relative skew <= min(lead, grace)), each waking at its own change
 * points and reconciling its own kernel. At every checked instant, each
 * kernel's inbound SAs include the one the other kernel sends with (its
 * newest outbound SA, as Linux picks it), with the same key.
 */
static void test_two_daemons(void **state)
{
	for (int run = 0; run < 60; run++) {
		struct conf_link a = base_link(), b;
		struct kern ka = { 0 }, kb = { 0 };
		struct conf_link *links[2] = { &a, &b };
		struct kern *kerns[2] = { &ka, &kb };
		int64_t skew[2], wake[2], m, t;

		a.rotate_every = 60 + rnd() % 600;
		a.phase = rnd() % a.rotate_every;
		a.lead = 1 + rnd() % (a.rotate_every / 4);
		a.grace = 1 + rnd() % (a.rotate_every / 4);
		a.spi_prefix = 1 + (uint32_t)(rnd() % 0xffffff);
		a.secret = run % 10 ? NULL : secret;
		b = a;
		b.local = a.remote;
		b.remote = a.local;
		m = (int64_t)(a.lead < a.grace ? a.lead : a.grace);
		skew[0] = (int64_t)(rnd() % 1000) - 500;
		skew[1] = skew[0] + (int64_t)(rnd() % (uint64_t)(2 * m + 1)) - m;
		t = 1700000000 + (int64_t)(rnd() % 100000);
		wake[0] = wake[1] = INT64_MIN;
		for (int steps = 0; steps < 400; steps++) {
			/* Each daemon runs when its own clock reaches its wake-up. */
			for (int s = 0; s < 2; s++) {
				struct rot_plan p;

				if (t + skew[s] < wake[s])
					continue;
				assert_int_equal(rot_plan(links[s], t + skew[s], &p), 0);
				sync_to(kerns[s], p.sa, p.n);
				wake[s] = p.next_change;
			}
			for (int s = 0; s < 2; s++) {
				struct kern *tx = kerns[s], *rx = kerns[1 - s];
				const struct rot_sa *out = NULL, *in;

				for (size_t i = 0; i < tx->n; i++) {
					const struct rot_sa *sa = &tx->sa[i];
					enum rot_dir dir = ROT_DIR_NONE;
					bool mine = rot_sa_owned_by(sa, links[s], &dir);

					if (!mine || dir != ROT_DIR_OUT)
						continue;
					if (!out || sa->planned_removal > out->planned_removal)
						out = sa;
				}
				assert_non_null(out);
				in = kern_find(rx, out);
				if (!in)
					fail_msg("run %d t=%lld: peer %d sends spi %#x, "
						 "peer %d lacks it",
						 run, (long long)t, s, out->spi, 1 - s);
				assert_true(rot_addr_equal(&in->src, &out->src));
				assert_string_equal(in->key_fp, out->key_fp);
			}
			/* Next instant: a random step, often right at a change point of either. */
			switch (rnd() % 3) {
			case 0:
				t = wake[0] - skew[0];
				break;
			case 1:
				t = wake[1] - skew[1];
				break;
			default:
				t += 1 + (int64_t)(rnd() % a.rotate_every);
			}
			t = t > 1700000000 ? t : 1700000000;
		}
	}
}

/* ---- random invariants ---- */
#define NLINKS 6

static void make_random_world(struct conf_link *links, struct rot_sa *desired, size_t *n,
			      struct rot_sa *actual, size_t *m, int64_t now)
{
	*n = *m = 0;
	for (int i = 0; i < NLINKS; i++) {
		struct conf_link *l = &links[i];
		struct rot_plan p;

		*l = base_link();
		l->local = addr4(0xc0000201 + (uint32_t)(rnd() % 3));
		l->remote = addr4(0xc6336407 + (uint32_t)(rnd() % 3));
		l->rotate_every = 50 + rnd() % 100;
		l->phase = rnd() % l->rotate_every;
		l->lead = rnd() % 30;
		l->grace = rnd() % 30;
		l->spi_prefix = 1 + (uint32_t)(rnd() % 4); /* collisions on purpose, sometimes */
		if (rnd() % 3 == 0) {
			strcpy(l->name, "fp");
			l->secret = secret;
		}
		assert_int_equal(rot_plan(l, now, &p), 0);
		for (size_t j = 0; j < p.n; j++)
			desired[(*n)++] = p.sa[j];
		/* Actual: some desired SAs (maybe altered), some stale ones, some foreign. */
		for (size_t j = 0; j < p.n; j++) {
			struct rot_sa sa = p.sa[j];

			switch (rnd() % 5) {
			case 0:
				continue;
			case 1:
				if (rnd() % 2)
					strcpy(sa.key_fp, "00000000deadbeef");
				else
					sa.alg = &alg_gcm128;
				break;
			default:
				break;
			}
			sa.link = NULL;
			actual[(*m)++] = sa;
		}
		for (int j = 0; j < 3; j++) {
			struct rot_plan old;

			assert_int_equal(rot_plan(l, now - (int64_t)(rnd() % 1000), &old), 0);
			actual[(*m)++] = old.sa[rnd() % old.n];
		}
	}
	for (int j = 0; j < 6; j++) {
		struct rot_sa sa = desired[rnd() % *n];

		switch (rnd() % 4) {
		case 0: sa.spi = (uint32_t)rnd() & 0x3ff; break;
		case 1: sa.proto = 51; break;
		case 2: sa.src = addr4((uint32_t)rnd()); break;
		default: sa.spi ^= 0x100; break; /* another prefix */
		}
		sa.link = NULL;
		actual[(*m)++] = sa;
	}
}

static bool owned_by_any(const struct rot_sa *sa, const struct conf_link *links)
{
	for (int i = 0; i < NLINKS; i++)
		if (rot_sa_owned_by(sa, &links[i], NULL))
			return true;
	return false;
}

/* Two desired SAs with one identity from two links, or of two epochs (colliding links). */
static bool ambiguous_desired(const struct rot_sa *desired, size_t n)
{
	for (size_t i = 0; i < n; i++)
		for (size_t j = i + 1; j < n; j++)
			if (rot_sa_id_cmp(&desired[i], &desired[j]) == 0 &&
			    (desired[i].link != desired[j].link ||
			     desired[i].epoch != desired[j].epoch ||
			     !rot_sa_same_attrs(&desired[i], &desired[j])))
				return true;
	return false;
}

static void test_property_invariants(void **state)
{
	struct conf_link links[NLINKS];
	struct rot_sa desired[NLINKS * ROT_PLAN_MAX], actual[NLINKS * (ROT_PLAN_MAX + 3) + 6];
	struct rot_ops ops;

	rot_ops_init(&ops);
	for (int iter = 0; iter < 3000; iter++) {
		struct kern k = { 0 };
		size_t n, m;
		int64_t now = 1000000 + (int64_t)(rnd() % 100000);

		make_random_world(links, desired, &n, actual, &m, now);
		for (size_t i = 0; i < m; i++)
			kern_add(&k, &actual[i]); /* drops duplicate identities, like a kernel */
		assert_int_equal(rot_reconcile(desired, n, dump_of(&k), k.n, &ops), 0);
		assert_ordered(&ops);
		for (size_t i = 0; i < ops.n; i++) {
			const struct rot_op *op = &ops.op[i];

			if (op->kind == ROT_OP_DELETE) {
				/* Never a desired identity; only owned SAs. */
				for (size_t j = 0; j < n; j++)
					assert_int_not_equal(rot_sa_id_cmp(op->sa, &desired[j]), 0);
				assert_true(owned_by_any(op->sa, links));
				assert_true(op->sa >= snap.sa && op->sa < snap.sa + snap.n);
			} else {
				assert_true(op->sa >= desired && op->sa < desired + n);
			}
			if (op->kind == ROT_OP_REPLACE) {
				assert_true(op->sa->staged);
				assert_true(owned_by_any(op->actual, links));
				assert_int_equal(rot_sa_id_cmp(op->sa, op->actual), 0);
			}
		}
		/* Every desired identity is in the kernel afterwards. */
		{
			struct kern before = k;

			kern_apply(&k, &ops, SIZE_MAX);
			for (size_t j = 0; j < n; j++)
				assert_non_null(kern_find(&k, &desired[j]));
			/* Foreign SAs untouched. */
			for (size_t j = 0; j < before.n; j++) {
				const struct rot_sa *kept = kern_find(&k, &before.sa[j]);

				if (!owned_by_any(&before.sa[j], links)) {
					assert_non_null(kept);
					assert_memory_equal(kept, &before.sa[j], sizeof(*kept));
				}
			}
			/* No owned SA left that is not desired. */
			for (size_t j = 0; j < k.n; j++) {
				bool want = false;

				for (size_t d = 0; d < n; d++)
					want |= rot_sa_id_cmp(&k.sa[j], &desired[d]) == 0;
				if (!want)
					assert_false(owned_by_any(&k.sa[j], links));
			}
		}
		/* Idempotence. */
		{
			size_t conflicts = ops.count[ROT_OP_CONFLICT];

			assert_int_equal(rot_reconcile(desired, n, dump_of(&k), k.n, &ops), 0);
			assert_int_equal(rot_ops_changes(&ops), 0);
			assert_int_equal(ops.count[ROT_OP_CONFLICT], conflicts);
		}
		/*
		 * Order of the input does not matter, unless two desired SAs share an
		 * identity from two links (one spi_prefix, which the config refuses):
		 * the first of them is the one added.
		 */
		for (size_t i = n - 1; i > 0; i--) {
			size_t j = rnd() % (i + 1);
			struct rot_sa tmp = desired[i];

			desired[i] = desired[j];
			desired[j] = tmp;
		}
		assert_int_equal(rot_reconcile(desired, n, dump_of(&k), k.n, &ops), 0);
		if (!ambiguous_desired(desired, n))
			assert_int_equal(rot_ops_changes(&ops), 0);
	}
	rot_ops_fini(&ops);
}

/* ---- scale: 10,000 links, one rotation for all of them ---- */
/*
 * The documented order within a kind is by identity (rot_sa_id_cmp), for any
 * mix of families (bytes past an IPv4 address's length are not part of it),
 * and a duplicated desired identity is added once, as its first occurrence.
 */
static void test_identity_order(void **state)
{
	enum { N = 3000 };
	struct conf_link link = base_link();
	struct rot_sa *desired = calloc(N, sizeof(*desired));
	struct rot_ops ops;

	(void)state;
	assert_non_null(desired);
	rot_ops_init(&ops);
	for (int round = 0; round < 20; round++) {
		for (size_t i = 0; i < N; i++) {
			struct rot_sa *sa = &desired[i];

			if (i && rnd() % 8 == 0) {
				*sa = desired[rnd() % i];
				continue;
			}
			memset(sa, 0, sizeof(*sa));
			sa->link = &link;
			sa->proto = rnd() % 4 ? IPPROTO_ESP : IPPROTO_AH;
			sa->spi = (uint32_t)(rnd() % 3 ? rnd() % 4 : rnd());
			sa->dst.family = rnd() % 2 ? AF_INET : AF_INET6;
			/* Few byte values, so identities share long prefixes and differ late. */
			for (size_t b = 0; b < sizeof(sa->dst.bytes); b++)
				sa->dst.bytes[b] = (uint8_t)(rnd() % 3 ? 0 : rnd() % 2 ? 0xff : rnd() % 3);
		}
		assert_int_equal(rot_reconcile(desired, N, NULL, 0, &ops), 0);
		assert_int_equal(ops.count[ROT_OP_ADD], ops.n);
		for (size_t i = 1; i < ops.n; i++)
			assert_true(rot_sa_id_cmp(ops.op[i - 1].sa, ops.op[i].sa) < 0);
		/* Every desired SA has its identity added, by its first occurrence. */
		for (size_t i = 0, k = 0; i < N; i++) {
			size_t lo = 0, hi = ops.n;

			while (lo < hi) {
				size_t mid = lo + (hi - lo) / 2;

				if (rot_sa_id_cmp(ops.op[mid].sa, &desired[i]) < 0)
					lo = mid + 1;
				else
					hi = mid;
			}
			assert_true(lo < ops.n);
			assert_int_equal(rot_sa_id_cmp(ops.op[lo].sa, &desired[i]), 0);
			for (k = 0; rot_sa_id_cmp(&desired[k], &desired[i]) != 0; k++)
				;
			assert_ptr_equal(ops.op[lo].sa, &desired[k]);
		}
	}
	rot_ops_fini(&ops);
	free(desired);
}

static void test_scale(void **state)
{
	enum { NL = 10000 };
	struct conf_link *links = calloc(NL, sizeof(*links));
	struct rot_sa *before = calloc(NL * ROT_PLAN_MAX, sizeof(*before));
	struct rot_sa *after = calloc(NL * ROT_PLAN_MAX, sizeof(*after));
	size_t nb = 0, na = 0;
	struct rot_ops ops;
	struct timespec t0, t1;
	double ms;

	assert_non_null(links);
	assert_non_null(before);
	assert_non_null(after);
	rot_ops_init(&ops);
	for (uint32_t i = 0; i < NL; i++) {
		struct rot_plan p;

		links[i] = base_link();
		links[i].remote = addr4(0x0a000000 + i);
		links[i].spi_prefix = 1 + i;
		links[i].phase = 0;
		assert_int_equal(rot_plan(&links[i], T(E + 1) - 1 - 100, &p), 0);
		memcpy(before + nb, p.sa, p.n * sizeof(p.sa[0]));
		nb += p.n;
		assert_int_equal(rot_plan(&links[i], T(E + 1) - 100 + 30, &p), 0);
		memcpy(after + na, p.sa, p.n * sizeof(p.sa[0]));
		na += p.n;
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(rot_reconcile(after, na, before, nb, &ops), 0);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
	print_message("reconcile of %zu desired vs %zu actual SAs: %.1f ms\n", na, nb, ms);
	assert_int_equal(ops.count[ROT_OP_ADD], NL);
	assert_int_equal(ops.count[ROT_OP_DELETE], NL);
	assert_ordered(&ops);
	assert_true(ms < 5000);
	assert_int_equal(rot_reconcile(after, na, after, na, &ops), 0);
	assert_int_equal(ops.n, 0);
	rot_ops_fini(&ops);
	free(links);
	free(before);
	free(after);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_empty),
		cmocka_unit_test(test_fresh_start_adds_only),
		cmocka_unit_test(test_outbound_switch),
		cmocka_unit_test(test_foreign_untouched),
		cmocka_unit_test(test_conflicts),
		cmocka_unit_test(test_same_attrs),
		cmocka_unit_test(test_foreign_on_desired_identity),
		cmocka_unit_test(test_duplicates_and_errors),
		cmocka_unit_test(test_result_ok),
		cmocka_unit_test(test_reapply_is_harmless),
		cmocka_unit_test(test_restart_every_window),
		cmocka_unit_test(test_late_wakeup),
		cmocka_unit_test(test_two_daemons),
		cmocka_unit_test(test_property_invariants),
		cmocka_unit_test(test_identity_order),
		cmocka_unit_test(test_scale),
	};

	for (int i = 0; i < CONF_SECRET_LEN; i++) {
		secret[i] = (uint8_t)i;
		other_secret[i] = (uint8_t)(0xff - i);
	}
	return cmocka_run_group_tests(tests, NULL, NULL);
}
