/* SPDX-License-Identifier: ISC */
/* Unit tests for monitor/rules: the alert verdicts, the dump checks, sactl check, the alert env. */
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "monitor/rules.h"
#include "rotate/keysched.h"
#include "rotate/plan.h"

#define T0 INT64_C(1700000000)

/*
 * The links, as an operator writes them: l1 rotates hourly at phase 100 s
 * with prefix 0x2a (explicit: nothing left for rot_resolve_links); l2
 * shares l1's local address, l6 speaks IPv6.
 */
static const char config_text[] = "[link l1]\n"
				   "local = 192.0.2.1\n"
				   "remote = 198.51.100.7\n"
				   "rotate_every = 1h\n"
				   "phase = 100s\n"
				   "spi_prefix = 0x2a\n"
				   "lead = 60s\n"
				   "grace = 60s\n"
				   "hard_slack = 1h\n"
				   "[link l2]\n"
				   "local = 192.0.2.1\n"
				   "remote = 203.0.113.9\n"
				   "phase = 0s\n"
				   "spi_prefix = 0x2b\n"
				   "[link l6]\n"
				   "local = 2001:db8::1\n"
				   "remote = 2001:db8::2\n"
				   "phase = 0s\n"
				   "spi_prefix = 0x2c\n";

static struct config *cfg;
static const struct conf_link *l1, *l2, *l6;

static int parse_links(void **state)
{
	if (conf_parse("rules.conf", config_text, sizeof(config_text) - 1, &cfg, NULL))
		return -1;
	l1 = &cfg->links[0];
	l2 = &cfg->links[1];
	l6 = &cfg->links[2];
	return 0;
}

static int free_links(void **state)
{
	conf_free(cfg);
	return 0;
}

/* Whether the verdict is empty: no alert, no message, no kick. */
static bool no_verdict(const struct mon_verdict *v)
{
	return !v->alert && !v->message[0] && !v->kick;
}

/* A verdict full of garbage, so that a rule that leaves a field shows it. */
static void poison(struct mon_verdict *v)
{
	memset(v, 0x5a, sizeof(*v));
	v->alert = "poison";
	v->kick = "poison";
	v->message[sizeof(v->message) - 1] = '\0';
}

/* Whether text starts with prefix; on a mismatch both are shown. */
#define assert_starts_with(text, prefix)                                                       \
	do {                                                                                   \
		if (strncmp((text), (prefix), strlen(prefix)))                                 \
			assert_string_equal((text), (prefix));                                 \
	} while (0)

/* ---- kernel events ---- */

static void test_expire_larval(void **state)
{
	struct mon_sa e = { .sa.spi = 0x2a000001 };
	struct mon_verdict v;

	poison(&v);
	assert_int_equal(mon_expire_verdict(NULL, 0x1234, false, &v), MON_EXPIRE_LARVAL);
	assert_true(no_verdict(&v));
	poison(&v);
	assert_int_equal(mon_expire_verdict(NULL, 0x1234, true, &v), MON_EXPIRE_LARVAL);
	assert_true(no_verdict(&v));
	/* SPI 0: a larval state, even if an entry matched. */
	poison(&v);
	assert_int_equal(mon_expire_verdict(&e, 0, false, &v), MON_EXPIRE_LARVAL);
	assert_true(no_verdict(&v));
	poison(&v);
	assert_int_equal(mon_expire_verdict(&e, 0, true, &v), MON_EXPIRE_LARVAL);
	assert_true(no_verdict(&v));
}

static void test_expire_hard(void **state)
{
	struct mon_sa e = { .sa.spi = 0x1234, .managed = true };
	struct mon_verdict v;

	poison(&v);
	assert_int_equal(mon_expire_verdict(&e, 0x1234, true, &v), MON_EXPIRE_HARD);
	assert_string_equal(v.alert, "expire-hard");
	assert_string_equal(v.message, "hard lifetime reached: the kernel deleted the SA");
	assert_null(v.kick); /* the removal decides on the re-install */
	e.managed = false;
	e.soft_alerted = true; /* a soft alert does not hide the hard one */
	poison(&v);
	assert_int_equal(mon_expire_verdict(&e, 0x1234, true, &v), MON_EXPIRE_HARD);
	assert_string_equal(v.alert, "expire-hard");
	/* Once per SA life: still a hard expiry (the SA leaves), no second alert. */
	e.hard_alerted = true;
	poison(&v);
	assert_int_equal(mon_expire_verdict(&e, 0x1234, true, &v), MON_EXPIRE_HARD);
	assert_true(no_verdict(&v));
}

static void test_expire_soft(void **state)
{
	struct mon_sa e = { .sa.spi = 0x1234 };
	struct mon_verdict v;

	poison(&v);
	assert_int_equal(mon_expire_verdict(&e, 0x1234, false, &v), MON_EXPIRE_SOFT);
	assert_string_equal(v.alert, "expire-soft");
	assert_string_equal(v.message, "soft lifetime reached: refresh its keys");
	assert_null(v.kick);
	e.managed = true;
	poison(&v);
	assert_int_equal(mon_expire_verdict(&e, 0x1234, false, &v), MON_EXPIRE_SOFT);
	assert_string_equal(v.alert, "expire-soft");
	assert_string_equal(v.message, "soft lifetime of a managed SA reached: the rotation "
				       "schedule was missed; reconciling now");
	assert_string_equal(v.kick, "soft expiry of a managed SA");
	/* A hard alert already raised does not stop a (late) soft one. */
	e.hard_alerted = true;
	assert_int_equal(mon_expire_verdict(&e, 0x1234, false, &v), MON_EXPIRE_SOFT);
	/* Duplicate soft expiry: nothing, managed or not. */
	e.soft_alerted = true;
	poison(&v);
	assert_int_equal(mon_expire_verdict(&e, 0x1234, false, &v), MON_EXPIRE_DUPLICATE);
	assert_true(no_verdict(&v));
	e.managed = false;
	assert_int_equal(mon_expire_verdict(&e, 0x1234, false, &v), MON_EXPIRE_DUPLICATE);
}

/* Whether the SA id is in link's plan at t (the oracle of mon_sa_still_planned). */
static bool in_plan(const struct conf_link *link, const struct rot_sa *id, int64_t t)
{
	struct rot_plan plan;

	assert_int_equal(rot_plan(link, t, &plan), 0);
	for (size_t i = 0; i < plan.n; i++)
		if (!rot_sa_id_cmp(&plan.sa[i], id))
			return true;
	return false;
}

/*
 * The periodic refresh: never a dump while one runs (a tick during a 10 s dump
 * of 170,000 SAs started the next the moment it ended: dumps back to back and
 * no pass, #22); after a long one, three times its length before the next.
 */
static void test_refresh_due(void **state)
{
	struct mon_refresh r = { .interval_ms = 10000 };
	bool stretched = true;

	(void)state;
	/* No dump yet: the first tick dumps. */
	assert_true(mon_refresh_due(&r, &stretched));
	assert_false(stretched);
	/* One running (or owed): no other. */
	r.dump_running = true;
	assert_false(mon_refresh_due(&r, &stretched));
	assert_false(stretched);
	r.dump_running = false;
	/* A short dump (a third of the interval at most): every tick. */
	r.dumped = true;
	r.last_took_ms = 3333;
	r.since_end_ms = 0;
	assert_true(mon_refresh_due(&r, &stretched));
	assert_false(stretched);
	/* A long one: not before three times its length after its end. */
	r.last_took_ms = 10000;
	r.since_end_ms = 29999;
	assert_false(mon_refresh_due(&r, &stretched));
	assert_true(stretched);
	r.since_end_ms = 30000;
	assert_true(mon_refresh_due(&r, &stretched));
	assert_true(stretched);
	r.dump_running = true;
	assert_false(mon_refresh_due(&r, NULL));
	/* Just above a third of the interval stretches. */
	r.dump_running = false;
	r.last_took_ms = 3334;
	r.since_end_ms = 10001;
	assert_false(mon_refresh_due(&r, &stretched));
	assert_true(stretched);
	r.since_end_ms = 10002;
	assert_true(mon_refresh_due(&r, NULL));
}

static void test_still_planned(void **state)
{
	struct conf_link link = *l1;
	struct rot_plan plan;
	struct mon_sa e = { 0 };
	int64_t t, now = T0;

	assert_int_equal(rot_plan(&link, now, &plan), 0);
	assert_true(plan.n > 0);
	e.sa = plan.sa[0];
	e.managed = true;
	assert_true(mon_sa_still_planned(&e, now));
	/* Unmanaged, or managed without its link: never planned. */
	e.managed = false;
	assert_false(mon_sa_still_planned(&e, now));
	e.managed = true;
	e.sa.link = NULL;
	assert_false(mon_sa_still_planned(&e, now));
	e.sa.link = &link;
	/* Identity is (dst, spi, proto): another SPI or destination is not planned. */
	e.sa.spi ^= 0x100; /* another prefix: bits 4-7 are the generation */
	assert_false(mon_sa_still_planned(&e, now));
	e.sa.spi ^= 0x100;
	/* Every generation of a planned (epoch, direction) is planned: spares, after a loss. */
	for (uint8_t g = 1; g <= ROT_GEN_MAX; g++) {
		e.sa.spi = rot_spi(link.spi_prefix, plan.sa[0].epoch, g);
		assert_true(mon_sa_still_planned(&e, now));
	}
	/* Not another epoch's (the SPI keeps the epoch mod 16). */
	e.sa.spi = rot_spi(link.spi_prefix, plan.sa[0].epoch + 5, 3);
	assert_false(mon_sa_still_planned(&e, now));
	e.sa.spi = plan.sa[0].spi;
	e.sa.dst = l2->remote;
	assert_false(mon_sa_still_planned(&e, now));
	e.sa.dst = plan.sa[0].dst;
	/* The boundary: the last second the plan holds it, and the first it does not. */
	for (t = now; in_plan(&link, &e.sa, t);) {
		assert_int_equal(rot_plan(&link, t, &plan), 0);
		assert_true(plan.next_change > t);
		t = plan.next_change;
	}
	assert_true(t > now);
	assert_true(mon_sa_still_planned(&e, t - 1));
	assert_false(mon_sa_still_planned(&e, t));
	/* A link rot_plan refuses (period 0): not planned rather than an error. */
	link.rotate_every = 0;
	assert_false(mon_sa_still_planned(&e, now));
}

static void test_removal(void **state)
{
	struct rot_plan plan;
	struct mon_sa e = { 0 };
	struct mon_verdict v;

	assert_int_equal(rot_plan(l1, T0, &plan), 0);
	e.sa = plan.sa[0];
	e.managed = true;
	poison(&v);
	assert_true(mon_removal_verdict(&e, T0, "deleted by another tool", false, &v));
	assert_string_equal(v.alert, "sa-removed");
	assert_string_equal(v.message,
			    "managed SA deleted by another tool while still in use; re-installing");
	assert_string_equal(v.kick, "managed SA removed");
	poison(&v);
	assert_true(mon_removal_verdict(&e, T0, "hard-expired", true, &v));
	assert_string_equal(v.alert, "expire-hard");
	assert_string_equal(v.message, "managed SA hard-expired while still in use; re-installing");
	assert_string_equal(v.kick, "managed SA removed");
	/* Our own delete of an SA the plan no longer wants: no alert. */
	assert_false(mon_removal_verdict(&e, T0 + 10 * 3600, "deleted", false, &v));
	/* An unmanaged SA removed: the kernel's business, no alert. */
	e.managed = false;
	assert_false(mon_removal_verdict(&e, T0, "deleted by another tool", false, &v));
	assert_false(mon_removal_verdict(&e, T0, "hard-expired", true, &v));
}

static void test_acquire_answered(void **state)
{
	assert_true(mon_acquire_answered_by(l1, &l1->local, &l1->remote));
	assert_false(mon_acquire_answered_by(l1, &l1->remote, &l1->local)); /* the way back */
	assert_false(mon_acquire_answered_by(l1, &l1->local, &l2->remote));  /* another peer */
	assert_false(mon_acquire_answered_by(l1, &l2->remote, &l1->remote)); /* another source */
	assert_true(mon_acquire_answered_by(l2, &l1->local, &l2->remote));
	assert_true(mon_acquire_answered_by(l6, &l6->local, &l6->remote));
	assert_false(mon_acquire_answered_by(l6, &l1->local, &l1->remote));
	assert_false(mon_acquire_answered_by(l1, &l6->local, &l6->remote));
}

static void test_acquire_unanswered(void **state)
{
	struct conf_addr none = { 0 };
	struct mon_sa subject;
	struct mon_verdict v;

	memset(&subject, 0x5a, sizeof(subject));
	poison(&v);
	mon_acquire_unanswered(&l1->local, &l6->remote, &subject, &v);
	assert_string_equal(v.alert, "acquire-unanswered");
	assert_string_equal(v.message, "traffic 192.0.2.1 -> 2001:db8::2 matched a policy but no "
				       "SA exists and no link covers it: it is dropped");
	assert_null(v.kick);
	assert_true(rot_addr_equal(&subject.sa.src, &l1->local));
	assert_true(rot_addr_equal(&subject.sa.dst, &l6->remote));
	assert_int_equal(subject.sa.proto, IPPROTO_ESP);
	assert_int_equal(subject.sa.spi, 0);
	assert_null(subject.sa.link);
	assert_false(subject.managed);
	assert_int_equal(subject.added_at, 0);
	/* An address of no family: "-", as the log shows it. */
	mon_acquire_unanswered(&none, &l1->local, &subject, &v);
	assert_string_equal(v.message, "traffic - -> 192.0.2.1 matched a policy but no SA exists "
				       "and no link covers it: it is dropped");
	mon_acquire_unanswered(&l6->local, &none, &subject, &v);
	assert_string_equal(v.message, "traffic 2001:db8::1 -> - matched a policy but no SA "
				       "exists and no link covers it: it is dropped");
}

static void test_flush(void **state)
{
	struct mon_verdict v;

	assert_false(mon_flush_verdict(false, &v));
	poison(&v);
	assert_true(mon_flush_verdict(true, &v));
	assert_string_equal(v.alert, "sa-removed");
	assert_string_equal(v.message,
			    "the SADB was flushed by another tool; re-installing managed SAs");
	assert_string_equal(v.kick, "flush");
}

/* ---- checks after each dump ---- */

static void test_too_old(void **state)
{
	struct mon_sa e = { .added_at = T0 };

	assert_false(mon_sa_too_old(&e, T0 + 100, 100)); /* exactly max: not older */
	assert_true(mon_sa_too_old(&e, T0 + 101, 100));
	assert_false(mon_sa_too_old(&e, T0 + 101, 0)); /* disabled */
	e.age_alerted = true;
	assert_false(mon_sa_too_old(&e, T0 + 1000, 100)); /* once per SA life */
	e.age_alerted = false;
	e.added_at = 0;
	assert_false(mon_sa_too_old(&e, T0 + 1000, 100)); /* add time unknown */
	e.added_at = T0 + 50;
	assert_false(mon_sa_too_old(&e, T0, 10)); /* clock behind the kernel */
}

static void test_too_old_verdict(void **state)
{
	struct mon_sa e = { .added_at = T0 };
	struct mon_verdict v;

	assert_false(mon_too_old_verdict(&e, T0 + 86400, 86400, &v)); /* exactly max_sa_age */
	poison(&v);
	assert_true(mon_too_old_verdict(&e, T0 + 86401, 86400, &v));
	assert_string_equal(v.alert, "sa-too-old");
	assert_string_equal(v.message, "SA is 1d1s old, more than max_sa_age 1d: refresh its keys");
	assert_null(v.kick);
	assert_true(mon_too_old_verdict(&e, T0 + 5400 + 1, 5400, &v));
	assert_string_equal(v.message,
			    "SA is 1h30m1s old, more than max_sa_age 1h30m: refresh its keys");
	assert_false(mon_too_old_verdict(&e, T0 + 86401, 0, &v)); /* max_sa_age 0: off */
	e.age_alerted = true;
	assert_false(mon_too_old_verdict(&e, T0 + 86401, 86400, &v)); /* once per SA life */
	e.age_alerted = false;
	e.added_at = 0;
	assert_false(mon_too_old_verdict(&e, T0, 1, &v)); /* add time unknown */
}

static void set_stat(struct mon_xfrm_stat *s, const char *name, uint64_t value)
{
	snprintf(s->name, sizeof(s->name), "%s", name);
	s->value = value;
}

static void test_xfrm_check(void **state)
{
	struct mon_xfrm_watch w = { 0 };
	struct mon_xfrm_stat cur[2];
	struct mon_verdict v;

	set_stat(&cur[0], "XfrmInError", 5);
	set_stat(&cur[1], "XfrmInNoStates", 10);
	/* No counters (no CONFIG_XFRM_STATISTICS): nothing, not even a baseline. */
	assert_false(mon_xfrm_check(&w, cur, 0, T0, &v));
	assert_false(w.has_baseline);
	/* The first reading is the baseline, whatever it counts. */
	assert_false(mon_xfrm_check(&w, cur, 2, T0, &v));
	assert_true(w.has_baseline);
	assert_int_equal(w.nbase, 2);
	/* Unchanged: nothing. */
	assert_false(mon_xfrm_check(&w, cur, 2, T0 + 1, &v));
	/* A rise: an alert with the rise and the total. */
	cur[1].value = 22;
	poison(&v);
	assert_true(mon_xfrm_check(&w, cur, 2, T0 + 2, &v));
	assert_string_equal(v.alert, "xfrm-errors");
	assert_string_equal(v.message, "the kernel counted IPsec errors (packets dropped): "
				       "XfrmInNoStates +12 (now 22)");
	assert_null(v.kick);
	assert_int_equal(w.alerted_at, T0 + 2);
	assert_int_equal(w.base[1].value, 22);
	/* Held off for MON_XFRM_ALERT_EVERY_S: the baseline stays, rises add up. */
	cur[0].value = 6;
	assert_false(mon_xfrm_check(&w, cur, 2, T0 + 2, &v));
	cur[1].value = 25;
	assert_false(mon_xfrm_check(&w, cur, 2, T0 + 2 + MON_XFRM_ALERT_EVERY_S - 1, &v));
	assert_int_equal(w.base[0].value, 5);
	assert_int_equal(w.base[1].value, 22);
	assert_true(mon_xfrm_check(&w, cur, 2, T0 + 2 + MON_XFRM_ALERT_EVERY_S, &v));
	assert_string_equal(v.message, "the kernel counted IPsec errors (packets dropped): "
				       "XfrmInError +1 (now 6), XfrmInNoStates +3 (now 25)");
	assert_int_equal(w.alerted_at, T0 + 2 + MON_XFRM_ALERT_EVERY_S);
	/* The clock went back: not held off. */
	cur[0].value = 7;
	assert_true(mon_xfrm_check(&w, cur, 2, T0, &v));
	assert_int_equal(w.alerted_at, T0);
	/* A counter reset (fell): no alert, it becomes the baseline; a rise from it alerts. */
	cur[1].value = 1;
	assert_false(mon_xfrm_check(&w, cur, 2, T0 + 1000, &v));
	assert_int_equal(w.base[1].value, 1);
	cur[1].value = 2;
	assert_true(mon_xfrm_check(&w, cur, 2, T0 + 1001, &v));
	assert_string_equal(v.message, "the kernel counted IPsec errors (packets dropped): "
				       "XfrmInNoStates +1 (now 2)");
	/* A counter that appears later is a baseline of its own. */
	set_stat(&cur[0], "XfrmOutError", 9);
	assert_false(mon_xfrm_check(&w, cur, 2, T0 + 2000, &v));
	/* Readings of no counters leave the memory as it was. */
	assert_false(mon_xfrm_check(&w, cur, 0, T0 + 3000, &v));
	assert_int_equal(w.nbase, 2);
	assert_string_equal(w.base[0].name, "XfrmOutError");
}

static void test_xfrm_check_many(void **state)
{
	static struct mon_xfrm_stat cur[MON_XFRM_MAX + 1];
	struct mon_xfrm_watch w = { 0 };
	struct mon_verdict v;

	for (size_t i = 0; i < MON_XFRM_MAX + 1; i++) {
		char name[MON_XFRM_NAME_LEN];

		snprintf(name, sizeof(name), "XfrmCounter%zu", i);
		set_stat(&cur[i], name, i);
	}
	/* More counters than kept: the baseline holds the first MON_XFRM_MAX. */
	assert_false(mon_xfrm_check(&w, cur, MON_XFRM_MAX + 1, T0, &v));
	assert_int_equal(w.nbase, MON_XFRM_MAX);
	for (size_t i = 0; i < MON_XFRM_MAX + 1; i++)
		cur[i].value += 1000;
	/* All rise: the message is cut short, never overflows. */
	assert_true(mon_xfrm_check(&w, cur, MON_XFRM_MAX, T0 + 1, &v));
	assert_true(strlen(v.message) < sizeof(v.message));
	assert_memory_equal(v.message, "the kernel counted IPsec errors (packets dropped): "
				       "XfrmCounter0 +1000 (now 1000)", 80);
}

static void test_age(void **state)
{
	struct mon_sa e = { .added_at = T0 };

	assert_int_equal(mon_sa_age(&e, T0 + 42), 42);
	assert_int_equal(mon_sa_age(&e, T0 - 5), 0);
	e.added_at = 0;
	assert_int_equal(mon_sa_age(&e, T0), 0);
}

/* ---- sactl check ---- */

static void test_human_duration(void **state)
{
	static const struct {
		int64_t secs;
		const char *text;
	} cases[] = {
		{ -5, "0s" },	    { 0, "0s" },	 { 1, "1s" },	       { 59, "59s" },
		{ 60, "1m" },	    { 61, "1m1s" },	 { 3599, "59m59s" },   { 3600, "1h" },
		{ 3601, "1h" },	    { 3660, "1h1m" },	 { 86399, "23h59m" },  { 86400, "1d" },
		{ 86460, "1d" },    { 90000, "1d1h" },	 { 900, "15m" },
		{ INT64_MAX, "106751991167300d15h" },
	};
	char buf[MON_HUMAN_LEN];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		assert_string_equal(mon_human_duration(cases[i].secs, buf), cases[i].text);
	assert_ptr_equal(mon_human_duration(1, buf), buf);
}

static void test_check_since(void **state)
{
	/* No last check: the lookback. */
	assert_int_equal(mon_check_since(T0, 0), T0 - MON_CHECK_LOOKBACK_S);
	/* A last check longer ago: everything since then. */
	assert_int_equal(mon_check_since(T0, T0 - 3600), T0 - 3600);
	assert_int_equal(mon_check_since(T0, T0 - MON_CHECK_LOOKBACK_S - 1),
			 T0 - MON_CHECK_LOOKBACK_S - 1);
	/* A recent one: at least the lookback. */
	assert_int_equal(mon_check_since(T0, T0 - MON_CHECK_LOOKBACK_S), T0 - MON_CHECK_LOOKBACK_S);
	assert_int_equal(mon_check_since(T0, T0 - 10), T0 - MON_CHECK_LOOKBACK_S);
	assert_int_equal(mon_check_since(T0, T0 + 10), T0 - MON_CHECK_LOOKBACK_S);
}

static void test_stored_sa_age(void **state)
{
	struct store_sa sa = { .added_at = T0, .state = STORE_SA_MATURE };

	assert_int_equal(mon_stored_sa_age(&sa, T0 + 42), 42);
	assert_int_equal(mon_stored_sa_age(&sa, T0), 0);
	assert_int_equal(mon_stored_sa_age(&sa, T0 - 1), 0); /* added "later" */
	sa.gone_at = T0 + 10; /* gone_at counts only once gone */
	assert_int_equal(mon_stored_sa_age(&sa, T0 + 42), 42);
	sa.state = STORE_SA_GONE;
	assert_int_equal(mon_stored_sa_age(&sa, T0 + 42), 10);
	sa.gone_at = 0; /* gone at an unknown time: up to now */
	assert_int_equal(mon_stored_sa_age(&sa, T0 + 42), 42);
}

static struct store_event event(enum store_event_kind kind, const char *link, uint32_t spi,
				const char *message)
{
	struct store_event ev = { .at = T0, .kind = kind, .spi = spi };

	snprintf(ev.link, sizeof(ev.link), "%s", link);
	snprintf(ev.message, sizeof(ev.message), "%s", message);
	if (spi) {
		snprintf(ev.src, sizeof(ev.src), "192.0.2.1");
		snprintf(ev.dst, sizeof(ev.dst), "198.51.100.7");
	}
	return ev;
}

static void test_event_tally(void **state)
{
	struct mon_event_tally t = { 0 };
	struct store_event a = event(STORE_EV_EXPIRE_SOFT, "l1", 1, "first");
	struct store_event b = event(STORE_EV_EXPIRE_SOFT, "l2", 2, "second");
	struct store_event bad = event(STORE_EV_ADD, "", 0, "out of range");

	mon_event_tally_add(&t, &a);
	mon_event_tally_add(&t, &b);
	assert_int_equal(t.n[STORE_EV_EXPIRE_SOFT], 2);
	assert_string_equal(t.first[STORE_EV_EXPIRE_SOFT].message, "first"); /* the first kept */
	bad.kind = STORE_EV_COUNT_;
	mon_event_tally_add(&t, &bad);
	bad.kind = (enum store_event_kind)-1;
	mon_event_tally_add(&t, &bad);
	for (int k = 0; k < STORE_EV_COUNT_; k++)
		assert_int_equal(t.n[k], k == STORE_EV_EXPIRE_SOFT ? 2 : 0);
}

/* mon_check(in) says status and, to the letter, want (or a line that starts with it). */
static void check_output_line(const struct mon_check_in *in, enum mon_check_status status,
			      const char *want, bool whole)
{
	char line[MON_CHECK_LINE_LEN];

	assert_int_equal(mon_check(in, line, sizeof(line)), status);
	if (whole)
		assert_string_equal(line, want);
	else
		assert_starts_with(line, want);
}

static void check_output(const struct mon_check_in *in, enum mon_check_status status,
			 const char *want)
{
	check_output_line(in, status, want, true);
}

static void check_output_prefix(const struct mon_check_in *in, enum mon_check_status status,
				const char *prefix)
{
	check_output_line(in, status, prefix, false);
}

/* A running daemon that wrote 5 s ago, a 15 min window, no SA, no event, 1 link. */
static struct mon_check_in check_in(struct mon_event_tally *t)
{
	struct mon_check_in in = {
		.now = T0,
		.since = T0 - MON_CHECK_LOOKBACK_S,
		.running = true,
		.pid = 4242,
		.last_write_at = T0 - 5,
		.refresh_interval = 10,
		.warn_age = 86400,
		.nlinks = 1,
		.events = t,
	};

	memset(t, 0, sizeof(*t));
	return in;
}

static void test_check_ok(void **state)
{
	struct mon_event_tally t;
	struct mon_check_in in = check_in(&t);
	char line[MON_CHECK_LINE_LEN];

	check_output(&in, MON_CHECK_OK, "SAKEYD OK - 0 SAs (0 managed), 1 link | sas=0 managed=0 "
		     "links=1 oldest_age=0s;86400;;0 hard_expiry_in=U;;;0 soft_expiries=0 hard_expiries=0 "
		     "rotation_failures=0 data_age=5s");
	/* No data written yet: data_age 0, and no staleness warning. */
	in.last_write_at = 0;
	in.nlinks = 2;
	check_output(&in, MON_CHECK_OK, "SAKEYD OK - 0 SAs (0 managed), 2 links | sas=0 managed=0 "
		     "links=2 oldest_age=0s;86400;;0 hard_expiry_in=U;;;0 soft_expiries=0 hard_expiries=0 "
		     "rotation_failures=0 data_age=0s");
	/* Events of kinds the check does not weigh (add, delete, resync...) are no reason. */
	t.n[STORE_EV_ADD] = 3;
	t.n[STORE_EV_DELETE] = 1;
	t.n[STORE_EV_RESYNC] = 9;
	t.n[STORE_EV_SA_TOO_OLD] = 1; /* the SA itself is what counts */
	assert_int_equal(mon_check(&in, line, sizeof(line)), MON_CHECK_OK);
}

static void test_check_not_running(void **state)
{
	struct mon_event_tally t;
	struct mon_check_in in = check_in(&t);

	in.running = false;
	in.last_write_at = T0 - 100000; /* stale, but a dead daemon says so already */
	check_output(&in, MON_CHECK_CRITICAL, "SAKEYD CRITICAL - sakeyd is not running "
		     "(crashed?); 0 SAs (0 managed), 1 link | sas=0 managed=0 links=1 "
		     "oldest_age=0s;86400;;0 hard_expiry_in=U;;;0 soft_expiries=0 hard_expiries=0 rotation_failures=0 "
		     "data_age=100000s");
	in.pid = 0;
	check_output_prefix(&in, MON_CHECK_CRITICAL, "SAKEYD CRITICAL - sakeyd is not running; 0 "
			    "SAs");
}

static void test_check_stale(void **state)
{
	struct mon_event_tally t;
	struct mon_check_in in = check_in(&t);
	char line[MON_CHECK_LINE_LEN];

	/* 3 refresh intervals and 30 s: the boundary itself is still fresh. */
	in.last_write_at = T0 - (3 * 10 + 30);
	assert_int_equal(mon_check(&in, line, sizeof(line)), MON_CHECK_OK);
	in.last_write_at = T0 - (3 * 10 + 30) - 1;
	check_output_prefix(&in, MON_CHECK_WARNING, "SAKEYD WARNING - data 1m1s old: sakeyd is "
			    "not refreshing it; 0 SAs");
	/* A refresh interval of hours stretches the limit. */
	in.refresh_interval = 3600;
	assert_int_equal(mon_check(&in, line, sizeof(line)), MON_CHECK_OK);
}

static void test_check_events(void **state)
{
	struct mon_event_tally t;
	struct mon_check_in in = check_in(&t);
	struct store_event ev;

	/* Each warning kind alone, with its first event named. */
	ev = event(STORE_EV_EXPIRE_SOFT, "l1", 0x2a000001, "m");
	mon_event_tally_add(&t, &ev);
	check_output(&in, MON_CHECK_WARNING, "SAKEYD WARNING - 1 soft expiry in the last 15m (l1 "
		     "spi 0x2a000001 192.0.2.1->198.51.100.7); 0 SAs (0 managed), 1 link | sas=0 "
		     "managed=0 links=1 oldest_age=0s;86400;;0 hard_expiry_in=U;;;0 soft_expiries=1 hard_expiries=0 "
		     "rotation_failures=0 data_age=5s");

	check_in(&t);
	ev = event(STORE_EV_SA_REMOVED, "", 0x1234, "m"); /* an SPI without a link */
	mon_event_tally_add(&t, &ev);
	mon_event_tally_add(&t, &ev);
	check_output_prefix(&in, MON_CHECK_WARNING, "SAKEYD WARNING - 2 managed SA removals in "
			    "the last 15m (spi 0x00001234 192.0.2.1->198.51.100.7); 0 SAs");

	check_in(&t);
	ev = event(STORE_EV_ACQUIRE_UNANSWERED, "", 0, "traffic a -> b dropped"); /* the message */
	mon_event_tally_add(&t, &ev);
	check_output_prefix(&in, MON_CHECK_WARNING, "SAKEYD WARNING - 1 unanswered acquire in the "
			    "last 15m (traffic a -> b dropped); 0 SAs");

	check_in(&t);
	ev = event(STORE_EV_XFRM_ERRORS, "", 0, "XfrmInNoStates +1 (now 1)");
	mon_event_tally_add(&t, &ev);
	in.since = T0 - 7200; /* the window since the last check */
	check_output_prefix(&in, MON_CHECK_WARNING, "SAKEYD WARNING - 1 kernel IPsec error alert "
			    "in the last 2h (XfrmInNoStates +1 (now 1)); 0 SAs");
	in.since = T0 - MON_CHECK_LOOKBACK_S;

	/* Hard expiry: CRITICAL, counted in the perfdata. */
	check_in(&t);
	ev = event(STORE_EV_EXPIRE_HARD, "l1", 0, "m"); /* a link without an SPI */
	mon_event_tally_add(&t, &ev);
	mon_event_tally_add(&t, &ev);
	mon_event_tally_add(&t, &ev);
	check_output(&in, MON_CHECK_CRITICAL, "SAKEYD CRITICAL - 3 hard expirys in the last 15m "
		     "(link l1); 0 SAs (0 managed), 1 link | sas=0 managed=0 links=1 "
		     "oldest_age=0s;86400;;0 hard_expiry_in=U;;;0 soft_expiries=0 hard_expiries=3 rotation_failures=0 "
		     "data_age=5s");
}

static void test_check_rotation_failures(void **state)
{
	struct mon_event_tally t;
	struct mon_check_in in = check_in(&t);
	struct store_event ev = event(STORE_EV_ROTATION_FAILED, "l1", 0, "EEXIST");

	/* From the rotations table only. */
	in.rotation_failures = 1;
	check_output(&in, MON_CHECK_CRITICAL, "SAKEYD CRITICAL - 1 rotation failure in the last "
		     "15m; 0 SAs (0 managed), 1 link | sas=0 managed=0 links=1 "
		     "oldest_age=0s;86400;;0 hard_expiry_in=U;;;0 soft_expiries=0 hard_expiries=0 rotation_failures=1 "
		     "data_age=5s");
	/* From events only: the count is theirs, the first one is named. */
	in.rotation_failures = 0;
	mon_event_tally_add(&t, &ev);
	mon_event_tally_add(&t, &ev);
	check_output(&in, MON_CHECK_CRITICAL, "SAKEYD CRITICAL - 2 rotation failures in the last "
		     "15m (link l1); 0 SAs (0 managed), 1 link | sas=0 managed=0 links=1 "
		     "oldest_age=0s;86400;;0 hard_expiry_in=U;;;0 soft_expiries=0 hard_expiries=0 rotation_failures=0 "
		     "data_age=5s");
	/* Both: the larger count. */
	in.rotation_failures = 5;
	check_output(&in, MON_CHECK_CRITICAL, "SAKEYD CRITICAL - 5 rotation failures in the last "
		     "15m (link l1); 0 SAs (0 managed), 1 link | sas=0 managed=0 links=1 "
		     "oldest_age=0s;86400;;0 hard_expiry_in=U;;;0 soft_expiries=0 hard_expiries=0 rotation_failures=5 "
		     "data_age=5s");
}

static void test_check_sas(void **state)
{
	struct mon_event_tally t;
	struct mon_check_in in = check_in(&t);
	char line[MON_CHECK_LINE_LEN];
	struct store_sa sas[4] = {
		{ .spi = 0x2a000001, .managed = true, .state = STORE_SA_MATURE,
		  .added_at = T0 - 100, .src = "192.0.2.1", .dst = "198.51.100.7" },
		{ .spi = 0x2a000002, .managed = true, .state = STORE_SA_DYING,
		  .added_at = T0 - 86400, .src = "198.51.100.7", .dst = "192.0.2.1" },
		{ .spi = 0x1234, .state = STORE_SA_MATURE, .added_at = T0 - 50,
		  .src = "2001:db8::1", .dst = "2001:db8::2" },
		{ .spi = 0x99, .state = STORE_SA_GONE, .added_at = T0 - 200000,
		  .gone_at = T0 - 199000, .src = "192.0.2.9", .dst = "192.0.2.8" },
	};

	in.sas = sas;
	in.nsas = 4;
	/* Exactly warn_age old is not older; one SA dying. */
	check_output(&in, MON_CHECK_WARNING, "SAKEYD WARNING - 1 SA past the soft lifetime; 4 SAs "
		     "(2 managed), 1 link | sas=4 managed=2 links=1 oldest_age=86400s;86400;;0 "
		     "hard_expiry_in=U;;;0 soft_expiries=0 hard_expiries=0 rotation_failures=0 data_age=5s");
	/* One second more: too old too, the oldest named. */
	sas[1].added_at = T0 - 86401;
	sas[0].state = STORE_SA_DYING;
	sas[0].added_at = T0 - 90000;
	check_output(&in, MON_CHECK_WARNING, "SAKEYD WARNING - 2 SAs past the soft lifetime; 2 "
		     "SAs older than 1d (oldest 1d1h: spi 0x2a000001 192.0.2.1->198.51.100.7); 4 "
		     "SAs (2 managed), 1 link | sas=4 managed=2 links=1 "
		     "oldest_age=90000s;86400;;0 hard_expiry_in=U;;;0 soft_expiries=0 hard_expiries=0 rotation_failures=0 data_age=5s");
	/* One SA, singular. */
	in.nsas = 1;
	in.warn_age = 3600;
	check_output_prefix(&in, MON_CHECK_WARNING, "SAKEYD WARNING - 1 SA past the soft "
			    "lifetime; 1 SA older than 1h (oldest 1d1h: spi 0x2a000001 "
			    "192.0.2.1->198.51.100.7); 1 SA (1 managed), 1 link |");
	/* A gone SA counts its life, not up to now. */
	in.sas = &sas[3];
	in.warn_age = 1000;
	assert_int_equal(mon_check(&in, line, sizeof(line)), MON_CHECK_OK);
	assert_non_null(strstr(line, " oldest_age=1000s;1000;;0 "));
}

/* -w/-c on hard_expiry_in: the earliest hard expiry of an SA not gone, in the perfdata too. */
static void test_check_thresholds(void **state)
{
	struct mon_event_tally t;
	struct mon_check_in in = check_in(&t);
	struct mon_range warn, crit;
	char line[MON_CHECK_LINE_LEN];
	struct store_sa sas[3] = {
		{ .spi = 0x2a000001, .managed = true, .state = STORE_SA_MATURE, .link = "l1",
		  .added_at = T0 - 100, .hard_expires_at = T0 + 7200, .src = "192.0.2.1",
		  .dst = "198.51.100.7" },
		{ .spi = 0x1234, .state = STORE_SA_MATURE, .added_at = T0 - 50,
		  .hard_expires_at = T0 + 1000, .src = "2001:db8::1", .dst = "2001:db8::2" },
		/* Gone: its expiry no longer counts. */
		{ .spi = 0x99, .state = STORE_SA_GONE, .added_at = T0 - 2000, .gone_at = T0 - 10,
		  .hard_expires_at = T0 + 5, .src = "192.0.2.9", .dst = "192.0.2.8" },
	};

	(void)state;
	assert_int_equal(mon_range_parse("1800:", &warn, NULL), 0);
	assert_int_equal(mon_range_parse("600:", &crit, NULL), 0);
	in.sas = sas;
	in.nsas = 3;
	/* No threshold: the value is perfdata only. */
	check_output(&in, MON_CHECK_OK, "SAKEYD OK - 3 SAs (1 managed), 1 link | sas=3 managed=1 "
		     "links=1 oldest_age=1990s;86400;;0 hard_expiry_in=1000s;;;0 soft_expiries=0 "
		     "hard_expiries=0 rotation_failures=0 data_age=5s");
	in.warn = &warn;
	in.crit = &crit;
	check_output(&in, MON_CHECK_WARNING, "SAKEYD WARNING - hard expiry in 16m40s (spi "
		     "0x00001234 2001:db8::1->2001:db8::2; warning range 1800:); 3 SAs (1 managed), "
		     "1 link | sas=3 managed=1 links=1 oldest_age=1990s;86400;;0 "
		     "hard_expiry_in=1000s;1800:;600:;0 soft_expiries=0 hard_expiries=0 "
		     "rotation_failures=0 data_age=5s");
	/* The critical range wins; exactly 600 is inside "600:". */
	sas[1].hard_expires_at = T0 + 599;
	check_output_prefix(&in, MON_CHECK_CRITICAL, "SAKEYD CRITICAL - hard expiry in 9m59s (spi "
			    "0x00001234 2001:db8::1->2001:db8::2; critical range 600:); 3 SAs");
	sas[1].hard_expires_at = T0 + 600;
	check_output_prefix(&in, MON_CHECK_WARNING, "SAKEYD WARNING - hard expiry in 10m (");
	/* Reached: 0, never negative; the link is named. */
	sas[1].hard_expires_at = T0 + 7300;
	sas[0].hard_expires_at = T0 - 30;
	assert_int_equal(mon_check(&in, line, sizeof(line)), MON_CHECK_CRITICAL);
	assert_non_null(strstr(line, "hard expiry reached (spi 0x2a000001 "
				     "192.0.2.1->198.51.100.7, link l1; critical range 600:)"));
	assert_non_null(strstr(line, " hard_expiry_in=0s;1800:;600:;0 "));
	/* "@" ranges alert inside. */
	sas[0].hard_expires_at = T0 + 7200;
	assert_int_equal(mon_range_parse("@7000:7200", &warn, NULL), 0);
	in.crit = NULL;
	check_output_prefix(&in, MON_CHECK_WARNING, "SAKEYD WARNING - hard expiry in 2h (spi "
			    "0x2a000001");
	/* No SA with a hard expiry: "U", and no threshold applies. */
	in.nsas = 0;
	assert_int_equal(mon_check(&in, line, sizeof(line)), MON_CHECK_OK);
	assert_non_null(strstr(line, " hard_expiry_in=U;@7000:7200;;0 "));
}

static void test_check_order(void **state)
{
	struct mon_event_tally t;
	struct mon_check_in in = check_in(&t);
	char line[MON_CHECK_LINE_LEN];
	struct store_sa dying = { .spi = 1, .state = STORE_SA_DYING, .added_at = T0 - 10,
				  .src = "a", .dst = "b" };
	struct store_event soft = event(STORE_EV_EXPIRE_SOFT, "", 0, "s");
	struct store_event hard = event(STORE_EV_EXPIRE_HARD, "", 0, "h");
	struct store_event removed = event(STORE_EV_SA_REMOVED, "", 0, "r");
	struct store_event acq = event(STORE_EV_ACQUIRE_UNANSWERED, "", 0, "a");
	struct store_event xfrm = event(STORE_EV_XFRM_ERRORS, "", 0, "x");
	struct store_event rot = event(STORE_EV_ROTATION_FAILED, "", 0, "f");

	/* Every reason at once, in the order of the rules; the worst status wins. */
	mon_event_tally_add(&t, &xfrm);
	mon_event_tally_add(&t, &acq);
	mon_event_tally_add(&t, &removed);
	mon_event_tally_add(&t, &soft);
	mon_event_tally_add(&t, &rot);
	mon_event_tally_add(&t, &hard);
	in.sas = &dying;
	in.nsas = 1;
	in.warn_age = 5;
	in.running = false;
	in.pid = 0;
	check_output(&in, MON_CHECK_CRITICAL, "SAKEYD CRITICAL - sakeyd is not running; 1 hard "
		     "expiry in the last 15m (h); 1 rotation failure in the last 15m (f); 1 soft "
		     "expiry in the last 15m (s); 1 SA past the soft lifetime; 1 SA older than 5s "
		     "(oldest 10s: spi 0x00000001 a->b); 1 managed SA removal in the last 15m "
		     "(r); 1 unanswered acquire in the last 15m (a); 1 kernel IPsec error alert "
		     "in the last 15m (x); 1 SA (0 managed), 1 link | sas=1 managed=0 links=1 "
		     "oldest_age=10s;5;;0 hard_expiry_in=U;;;0 soft_expiries=1 hard_expiries=1 rotation_failures=0 "
		     "data_age=5s");
	/* Warnings only: WARNING. */
	in.running = true;
	t.n[STORE_EV_EXPIRE_HARD] = 0;
	t.n[STORE_EV_ROTATION_FAILED] = 0;
	assert_int_equal(mon_check(&in, line, sizeof(line)), MON_CHECK_WARNING);
}

/* Key schedule v2's events: an exhausted series is CRITICAL, an unprotected replay window a WARNING. */
static void test_check_generations(void **state)
{
	struct mon_event_tally t;
	struct mon_check_in in = check_in(&t);
	char line[MON_CHECK_LINE_LEN];
	struct store_event changed = event(STORE_EV_GENERATION_CHANGED, "l", 0x2a12, "g 0 -> 1");
	struct store_event unprot = event(STORE_EV_REPLAY_UNPROTECTED, "l", 0x2a12, "u");
	struct store_event exhausted = event(STORE_EV_GENERATIONS_EXHAUSTED, "l", 0, "e");

	(void)state;
	/* A generation change alone is the cure of a loss, not a problem of its own. */
	mon_event_tally_add(&t, &changed);
	assert_int_equal(mon_check(&in, line, sizeof(line)), MON_CHECK_OK);
	mon_event_tally_add(&t, &unprot);
	assert_int_equal(mon_check(&in, line, sizeof(line)), MON_CHECK_WARNING);
	assert_non_null(strstr(line, "1 unprotected replay window in the last 15m"));
	mon_event_tally_add(&t, &unprot);
	mon_event_tally_add(&t, &exhausted);
	assert_int_equal(mon_check(&in, line, sizeof(line)), MON_CHECK_CRITICAL);
	assert_non_null(strstr(line, "SAKEYD CRITICAL - 1 generation exhaustion in the last 15m"));
	assert_non_null(strstr(line, "; 2 unprotected replay windows in the last 15m"));
}

static void test_check_long(void **state)
{
	static const enum store_event_kind kinds[] = {
		STORE_EV_EXPIRE_HARD, STORE_EV_ROTATION_FAILED,	   STORE_EV_EXPIRE_SOFT,
		STORE_EV_SA_REMOVED,  STORE_EV_ACQUIRE_UNANSWERED, STORE_EV_XFRM_ERRORS,
	};
	struct mon_event_tally t;
	struct mon_check_in in = check_in(&t);
	char line[MON_CHECK_LINE_LEN], small[64], msg[STORE_MSG_LEN];
	const char *bar;

	/* Reasons of the longest messages: cut at 1023 bytes, the perfdata intact. */
	memset(msg, 'm', sizeof(msg) - 1);
	msg[sizeof(msg) - 1] = '\0';
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		struct store_event ev = event(kinds[i], "", 0, msg);

		mon_event_tally_add(&t, &ev);
	}
	in.nlinks = SIZE_MAX;
	in.last_write_at = INT64_MIN / 2;
	in.rotation_failures = UINT64_MAX;
	in.warn_age = UINT64_MAX;
	assert_int_equal(mon_check(&in, line, sizeof(line)), MON_CHECK_CRITICAL);
	assert_true(strlen(line) < sizeof(line));
	bar = strstr(line, "; 0 SAs (0 managed), 18446744073709551615 links | sas=0 ");
	assert_non_null(bar);
	assert_int_equal(bar - line, strlen("SAKEYD CRITICAL - ") + 1023);
	assert_non_null(strstr(line, " rotation_failures=18446744073709551615 data_age="));
	/*
	 * Every length of the first reason: the reasons stop at 1023 bytes
	 * wherever that falls (within a reason, on its "; ", just after it).
	 */
	in.nlinks = 1;
	for (size_t pad = 0; pad < sizeof(msg); pad++) {
		struct store_event ev = event(STORE_EV_EXPIRE_HARD, "", 0, msg + pad);
		const char *end;

		t.first[STORE_EV_EXPIRE_HARD] = ev;
		assert_int_equal(mon_check(&in, line, sizeof(line)), MON_CHECK_CRITICAL);
		end = strstr(line, "0 SAs (0 managed), 1 link | sas=0 ");
		assert_non_null(end);
		assert_true(end - line <= (ptrdiff_t)strlen("SAKEYD CRITICAL - ") + 1023 + 2);
		assert_memory_equal(end - 2, "; ", 2);
	}
	/* A short buffer: cut, NUL-terminated. */
	assert_int_equal(mon_check(&in, small, sizeof(small)), MON_CHECK_CRITICAL);
	assert_int_equal(strlen(small), sizeof(small) - 1);
	assert_starts_with(small, "SAKEYD CRITICAL - ");
}

static void test_proto(void **state)
{
	char buf[8];

	assert_string_equal(mon_proto_name(50, buf, sizeof(buf)), "esp");
	assert_string_equal(mon_proto_name(51, buf, sizeof(buf)), "ah");
	assert_string_equal(mon_proto_name(108, buf, sizeof(buf)), "comp");
	assert_string_equal(mon_proto_name(0, buf, sizeof(buf)), "");
	assert_string_equal(mon_proto_name(255, buf, sizeof(buf)), "255");
}

static void test_env_full(void **state)
{
	struct mon_alert a = {
		.event = "expire-soft",
		.link = "l1",
		.spi = 0x1234,
		.src = "192.0.2.10",
		.dst = "2001:db8::1",
		.proto = 50,
		.age = 3,
		.message = "soft lifetime reached: refresh its keys",
	};
	char *envp[MON_ALERT_ENV_N];
	char buf[MON_ALERT_ENV_BUF];

	assert_int_equal(mon_alert_env(&a, envp, MON_ALERT_ENV_N, buf, sizeof(buf)), 9);
	assert_string_equal(envp[0], "SAKEYD_EVENT=expire-soft");
	assert_string_equal(envp[1], "SAKEYD_LINK=l1");
	assert_string_equal(envp[2], "SAKEYD_SPI=0x1234");
	assert_string_equal(envp[3], "SAKEYD_SRC=192.0.2.10");
	assert_string_equal(envp[4], "SAKEYD_DST=2001:db8::1");
	assert_string_equal(envp[5], "SAKEYD_PROTO=esp");
	assert_string_equal(envp[6], "SAKEYD_AGE=3");
	assert_string_equal(envp[7], "SAKEYD_MESSAGE=soft lifetime reached: refresh its keys");
	assert_string_equal(envp[8], "PATH=/usr/sbin:/usr/bin:/sbin:/bin");
	assert_null(envp[9]);
}

static void test_env_absent(void **state)
{
	struct mon_alert a = { .event = "acquire-unanswered", .age = -1 };
	char *envp[MON_ALERT_ENV_N];
	char buf[MON_ALERT_ENV_BUF];

	assert_int_equal(mon_alert_env(&a, envp, MON_ALERT_ENV_N, buf, sizeof(buf)), 9);
	assert_string_equal(envp[1], "SAKEYD_LINK=");
	assert_string_equal(envp[2], "SAKEYD_SPI=");
	assert_string_equal(envp[3], "SAKEYD_SRC=");
	assert_string_equal(envp[5], "SAKEYD_PROTO=");
	assert_string_equal(envp[6], "SAKEYD_AGE=");
	assert_string_equal(envp[7], "SAKEYD_MESSAGE=");
	assert_string_equal(envp[8], "PATH=" MON_ALERT_PATH);
	a.spi = 0xffffffffu;
	a.age = 0;
	assert_int_equal(mon_alert_env(&a, envp, MON_ALERT_ENV_N, buf, sizeof(buf)), 9);
	assert_string_equal(envp[2], "SAKEYD_SPI=0xffffffff");
	assert_string_equal(envp[6], "SAKEYD_AGE=0");
}

static void test_env_cleaning(void **state)
{
	struct mon_alert a = {
		.event = "sa-removed",
		.message = "line\none\ttab \x01\xff key 000102030405060708090a0b0c0d0e0f0001 "
			   "and QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZn== end; "
			   "fp 4c0eb6d3b9000caf",
		.age = -1,
	};
	char *envp[MON_ALERT_ENV_N];
	char buf[MON_ALERT_ENV_BUF];

	assert_int_equal(mon_alert_env(&a, envp, MON_ALERT_ENV_N, buf, sizeof(buf)), 9);
	assert_string_equal(envp[7], "SAKEYD_MESSAGE=line?one?tab ?? key [redacted] and [redacted] "
				     "end; fp 4c0eb6d3b9000caf");
}

static void test_env_truncation(void **state)
{
	char msg[4000], *envp[MON_ALERT_ENV_N], small[200];
	struct mon_alert a = { .event = "sa-too-old", .link = "l1", .message = msg, .age = 1 };
	char buf[MON_ALERT_ENV_BUF];
	size_t total = 0;

	memset(msg, 'x', sizeof(msg) - 1);
	msg[sizeof(msg) - 1] = '\0';
	/* 'x' only: not key-shaped (no digits, one case). */
	assert_int_equal(mon_alert_env(&a, envp, MON_ALERT_ENV_N, buf, sizeof(buf)), 9);
	assert_string_equal(envp[8], "PATH=" MON_ALERT_PATH);
	assert_true(strlen(envp[7]) > 1000);
	for (int i = 0; i < 9; i++)
		total += strlen(envp[i]) + 1;
	assert_true(total <= sizeof(buf));

	/* A small buffer: names and PATH survive, values shrink. */
	assert_int_equal(mon_alert_env(&a, envp, MON_ALERT_ENV_N, small, sizeof(small)), 9);
	assert_string_equal(envp[8], "PATH=" MON_ALERT_PATH);
	assert_string_equal(envp[0], "SAKEYD_EVENT=sa-too-old");
	assert_memory_equal(envp[7], "SAKEYD_MESSAGE=", 15);

	/* Too small for the names: refused. */
	assert_int_equal(mon_alert_env(&a, envp, MON_ALERT_ENV_N, small, 100), -ENOSPC);
}

static void test_env_rejects(void **state)
{
	struct mon_alert a = { .event = "x" }, none = { 0 }, empty = { .event = "" };
	char *envp[MON_ALERT_ENV_N], buf[MON_ALERT_ENV_BUF];

	assert_int_equal(mon_alert_env(&none, envp, MON_ALERT_ENV_N, buf, sizeof(buf)), -EINVAL);
	assert_int_equal(mon_alert_env(&empty, envp, MON_ALERT_ENV_N, buf, sizeof(buf)), -EINVAL);
	assert_int_equal(mon_alert_env(NULL, envp, MON_ALERT_ENV_N, buf, sizeof(buf)), -EINVAL);
	assert_int_equal(mon_alert_env(&a, envp, MON_ALERT_ENV_N - 1, buf, sizeof(buf)), -EINVAL);
	assert_int_equal(mon_alert_env(&a, envp, MON_ALERT_ENV_N, buf, 10), -ENOSPC);
	assert_int_equal(mon_alert_env(&a, NULL, MON_ALERT_ENV_N, buf, sizeof(buf)), -EINVAL);
	assert_int_equal(mon_alert_env(&a, envp, MON_ALERT_ENV_N, NULL, sizeof(buf)), -EINVAL);
}

/* ---- the ALERT log line ---- */

static void test_alert_line_full(void **state)
{
	struct mon_alert a = {
		.event = "expire-soft",
		.link = "l1",
		.spi = 0x1234,
		.src = "192.0.2.10",
		.dst = "2001:db8::",
		.proto = 50,
		.age = 3,
		.message = "soft lifetime reached: refresh its keys",
	};
	char buf[MON_ALERT_LINE_LEN];

	int n = mon_alert_line(&a, buf, sizeof(buf));

	assert_int_equal(n, (int)strlen(buf));
	/* An IPv6 address ending in "::" is followed by a space, never by the text. */
	assert_string_equal(buf, "ALERT expire-soft link=l1 spi=0x1234 src=192.0.2.10 "
				 "dst=2001:db8:: proto=esp age=3 event=expire-soft "
				 "msg=soft lifetime reached: refresh its keys");
}

static void test_alert_line_absent(void **state)
{
	struct mon_alert a = { .event = "xfrm-errors", .age = -1, .message = "" };
	char buf[MON_ALERT_LINE_LEN];

	assert_true(mon_alert_line(&a, buf, sizeof(buf)) > 0);
	assert_string_equal(buf, "ALERT xfrm-errors link=- spi=- src=- dst=- proto=- age=- "
				 "event=xfrm-errors msg=-");
	a.age = 0;
	a.spi = 0xffffffffu;
	a.proto = 51;
	a.message = NULL;
	assert_true(mon_alert_line(&a, buf, sizeof(buf)) > 0);
	assert_string_equal(buf, "ALERT xfrm-errors link=- spi=0xffffffff src=- dst=- proto=ah "
				 "age=0 event=xfrm-errors msg=-");
}

static void test_alert_line_cleaning(void **state)
{
	/* No value but the message holds a space; nothing makes a second line or shows a key. */
	struct mon_alert a = {
		.event = "sa removed\n",
		.link = "l 1",
		.src = "192.0.2.1\tx",
		.dst = "a b",
		.age = -1,
		.message = "line\none key 000102030405060708090a0b0c0d0e0f0001 end\r; "
			   "fp 4c0eb6d3b9000caf",
	};
	char buf[MON_ALERT_LINE_LEN];

	assert_true(mon_alert_line(&a, buf, sizeof(buf)) > 0);
	assert_string_equal(buf, "ALERT sa?removed? link=l?1 spi=- src=192.0.2.1?x dst=a?b "
				 "proto=- age=- event=sa?removed? "
				 "msg=line?one key [redacted] end?; fp 4c0eb6d3b9000caf");
}

static void test_alert_line_truncation(void **state)
{
	char msg[4000], buf[MON_ALERT_LINE_LEN], small[40];
	struct mon_alert a = { .event = "sa-too-old", .link = "l1", .message = msg, .age = 1 };

	memset(msg, 'x', sizeof(msg) - 1);
	msg[sizeof(msg) - 1] = '\0';
	assert_int_equal(mon_alert_line(&a, buf, sizeof(buf)), (int)sizeof(buf) - 1);
	assert_int_equal(strlen(buf), sizeof(buf) - 1);
	assert_starts_with(buf, "ALERT sa-too-old link=l1 spi=- ");
	assert_non_null(strstr(buf, " event=sa-too-old msg=xxx"));
	assert_int_equal(mon_alert_line(&a, small, sizeof(small)), (int)sizeof(small) - 1);
	assert_string_equal(small, "ALERT sa-too-old link=l1 spi=- src=- ds");
	assert_int_equal(mon_alert_line(&a, small, 1), 0);
	assert_string_equal(small, "");
}

static void test_alert_line_rejects(void **state)
{
	struct mon_alert none = { 0 }, empty = { .event = "" }, a = { .event = "x" };
	char buf[MON_ALERT_LINE_LEN];

	assert_int_equal(mon_alert_line(&none, buf, sizeof(buf)), -EINVAL);
	assert_int_equal(mon_alert_line(&empty, buf, sizeof(buf)), -EINVAL);
	assert_int_equal(mon_alert_line(NULL, buf, sizeof(buf)), -EINVAL);
	assert_int_equal(mon_alert_line(&a, NULL, sizeof(buf)), -EINVAL);
	assert_int_equal(mon_alert_line(&a, buf, 0), -EINVAL);
}

/* The line and alert_command's environment carry the same fields of one SA. */
static void test_alert_fill(void **state)
{
	struct mon_sa e = { .sa.spi = 0x2a000001, .sa.proto = 50, .added_at = T0 - 90 };
	struct mon_alert_addrs room;
	char *envp[MON_ALERT_ENV_N], env[MON_ALERT_ENV_BUF], line[MON_ALERT_LINE_LEN];
	struct mon_alert a;

	e.sa.link = l6;
	e.sa.src = l6->local;
	e.sa.dst = l6->remote;
	mon_alert_fill(&a, "sa-removed", &e, NULL, "deleted by another tool", T0, &room);
	assert_true(mon_alert_line(&a, line, sizeof(line)) > 0);
	assert_string_equal(line, "ALERT sa-removed link=l6 spi=0x2a000001 src=2001:db8::1 "
				  "dst=2001:db8::2 proto=esp age=90 event=sa-removed "
				  "msg=deleted by another tool");
	assert_int_equal(mon_alert_env(&a, envp, MON_ALERT_ENV_N, env, sizeof(env)), 9);
	assert_string_equal(envp[1], "SAKEYD_LINK=l6");
	assert_string_equal(envp[2], "SAKEYD_SPI=0x2a000001");
	assert_string_equal(envp[3], "SAKEYD_SRC=2001:db8::1");
	assert_string_equal(envp[4], "SAKEYD_DST=2001:db8::2");
	assert_string_equal(envp[6], "SAKEYD_AGE=90");

	/* A link given wins over the SA's; an SA not added yet (pseudo entry) has no age. */
	e.added_at = 0;
	mon_alert_fill(&a, "rotation-failed", &e, l1, "x", T0, &room);
	assert_string_equal(a.link, "l1");
	assert_int_equal(a.age, -1);
	/* An address of no family is absent, as no SA at all. */
	memset(&e.sa.src, 0, sizeof(e.sa.src));
	mon_alert_fill(&a, "rotation-failed", &e, NULL, "x", T0, &room);
	assert_null(a.src);
	assert_string_equal(a.dst, "2001:db8::2");
	mon_alert_fill(&a, "xfrm-errors", NULL, NULL, "rose", T0, &room);
	assert_true(mon_alert_line(&a, line, sizeof(line)) > 0);
	assert_string_equal(line, "ALERT xfrm-errors link=- spi=- src=- dst=- proto=- age=- "
				  "event=xfrm-errors msg=rose");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_expire_larval),
		cmocka_unit_test(test_expire_hard),
		cmocka_unit_test(test_expire_soft),
		cmocka_unit_test(test_refresh_due),
		cmocka_unit_test(test_still_planned),
		cmocka_unit_test(test_removal),
		cmocka_unit_test(test_acquire_answered),
		cmocka_unit_test(test_acquire_unanswered),
		cmocka_unit_test(test_flush),
		cmocka_unit_test(test_too_old),
		cmocka_unit_test(test_too_old_verdict),
		cmocka_unit_test(test_xfrm_check),
		cmocka_unit_test(test_xfrm_check_many),
		cmocka_unit_test(test_age),
		cmocka_unit_test(test_human_duration),
		cmocka_unit_test(test_check_since),
		cmocka_unit_test(test_stored_sa_age),
		cmocka_unit_test(test_event_tally),
		cmocka_unit_test(test_check_ok),
		cmocka_unit_test(test_check_not_running),
		cmocka_unit_test(test_check_stale),
		cmocka_unit_test(test_check_events),
		cmocka_unit_test(test_check_rotation_failures),
		cmocka_unit_test(test_check_sas),
		cmocka_unit_test(test_check_thresholds),
		cmocka_unit_test(test_check_order),
		cmocka_unit_test(test_check_long),
		cmocka_unit_test(test_check_generations),
		cmocka_unit_test(test_proto),
		cmocka_unit_test(test_env_full),
		cmocka_unit_test(test_env_absent),
		cmocka_unit_test(test_env_cleaning),
		cmocka_unit_test(test_env_truncation),
		cmocka_unit_test(test_env_rejects),
		cmocka_unit_test(test_alert_line_full),
		cmocka_unit_test(test_alert_line_absent),
		cmocka_unit_test(test_alert_line_cleaning),
		cmocka_unit_test(test_alert_line_truncation),
		cmocka_unit_test(test_alert_line_rejects),
		cmocka_unit_test(test_alert_fill),
	};

	return cmocka_run_group_tests(tests, parse_links, free_links);
}
