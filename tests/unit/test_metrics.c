/* SPDX-License-Identifier: ISC */
/* Unit tests for monitor/metrics: Prometheus text (golden), label escaping, xfrm_stat parsing. */
#include <arpa/inet.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "monitor/metrics.h"

#define T0 INT64_C(1700000000)

static struct conf_addr addr(const char *s)
{
	struct conf_addr a = { 0 };

	if (inet_pton(AF_INET, s, a.bytes) == 1)
		a.family = AF_INET;
	else if (inet_pton(AF_INET6, s, a.bytes) == 1)
		a.family = AF_INET6;
	return a;
}

static struct mon_sa *put(struct mon_table *t, uint32_t spi, const char *src, const char *dst)
{
	struct rot_sa sa = { .spi = spi, .proto = IPPROTO_ESP, .src = addr(src), .dst = addr(dst) };
	bool created;
	struct mon_sa *e = mon_table_put(t, &sa, &created);

	assert_non_null(e);
	assert_true(created);
	return e;
}

static const char golden[] =
	"# HELP sakeyd_up 1 while sakeyd runs; 0 in the file it leaves at exit.\n"
	"# TYPE sakeyd_up gauge\n"
	"sakeyd_up 1\n"
	"# HELP sakeyd_build_info Always 1; the version of sakeyd running.\n"
	"# TYPE sakeyd_build_info gauge\n"
	"sakeyd_build_info{version=\"1.2\\\"3\"} 1\n"
	"# HELP sakeyd_last_update_timestamp_seconds When sakeyd last refreshed its view of "
	"the kernel's SAs (Unix seconds).\n"
	"# TYPE sakeyd_last_update_timestamp_seconds gauge\n"
	"sakeyd_last_update_timestamp_seconds 1699999995\n"
	"# HELP sakeyd_sas SAs in the kernel, managed by a link or not.\n"
	"# TYPE sakeyd_sas gauge\n"
	"sakeyd_sas{managed=\"true\"} 3\n"
	"sakeyd_sas{managed=\"false\"} 1\n"
	"# HELP sakeyd_link_state What each link is doing: 1 for its state (pending: not "
	"planned yet; ok; backoff: its last attempt failed, retried later; exhausted: no "
	"outbound SA until the next epoch), 0 for the others.\n"
	"# TYPE sakeyd_link_state gauge\n"
	"sakeyd_link_state{link=\"l\\\"1\\\\x\\n\",state=\"pending\"} 0\n"
	"sakeyd_link_state{link=\"l\\\"1\\\\x\\n\",state=\"ok\"} 0\n"
	"sakeyd_link_state{link=\"l\\\"1\\\\x\\n\",state=\"backoff\"} 1\n"
	"sakeyd_link_state{link=\"l\\\"1\\\\x\\n\",state=\"exhausted\"} 0\n"
	"sakeyd_link_state{link=\"new\",state=\"pending\"} 1\n"
	"sakeyd_link_state{link=\"new\",state=\"ok\"} 0\n"
	"sakeyd_link_state{link=\"new\",state=\"backoff\"} 0\n"
	"sakeyd_link_state{link=\"new\",state=\"exhausted\"} 0\n"
	"# HELP sakeyd_link_epoch Current key epoch of each link.\n"
	"# TYPE sakeyd_link_epoch gauge\n"
	"sakeyd_link_epoch{link=\"l\\\"1\\\\x\\n\"} 7\n"
	"# HELP sakeyd_link_next_rotation_timestamp_seconds Start of each link's next epoch, "
	"when its next outbound SA takes over (Unix seconds).\n"
	"# TYPE sakeyd_link_next_rotation_timestamp_seconds gauge\n"
	"sakeyd_link_next_rotation_timestamp_seconds{link=\"l\\\"1\\\\x\\n\"} 1700003540\n"
	"# HELP sakeyd_link_outbound_age_seconds Seconds since the link's current outbound "
	"SA was added to the kernel (left out while the kernel holds none of the current "
	"epoch).\n"
	"# TYPE sakeyd_link_outbound_age_seconds gauge\n"
	"sakeyd_link_outbound_age_seconds{link=\"l\\\"1\\\\x\\n\"} 100\n"
	"# HELP sakeyd_link_outbound_generation Generation of the link's current outbound SA "
	"(key schedule v2): 0-7 the normal series, 15-8 once this host lost its records; a "
	"change within an epoch means this host lost its SAs.\n"
	"# TYPE sakeyd_link_outbound_generation gauge\n"
	"sakeyd_link_outbound_generation{link=\"l\\\"1\\\\x\\n\"} 3\n"
	"# HELP sakeyd_link_inbound_sas Inbound SAs the kernel holds for the link (previous, "
	"current and next epoch, spare generations).\n"
	"# TYPE sakeyd_link_inbound_sas gauge\n"
	"sakeyd_link_inbound_sas{link=\"l\\\"1\\\\x\\n\"} 1\n"
	"sakeyd_link_inbound_sas{link=\"new\"} 0\n"
	"# HELP sakeyd_link_expiry_seconds Seconds left until the earliest soft or hard "
	"lifetime of the link's SAs (0 once reached): soft comes a little after a planned "
	"removal, so 0 means sakeyd is behind its schedule; hard is when the kernel deletes "
	"the SA.\n"
	"# TYPE sakeyd_link_expiry_seconds gauge\n"
	"sakeyd_link_expiry_seconds{kind=\"soft\",link=\"l\\\"1\\\\x\\n\"} 3560\n"
	"sakeyd_link_expiry_seconds{kind=\"hard\",link=\"l\\\"1\\\\x\\n\"} 7100\n"
	"# HELP sakeyd_rotations_total Rotations (outbound SA of a new epoch installed) and "
	"failed steps, per link.\n"
	"# TYPE sakeyd_rotations_total counter\n"
	"sakeyd_rotations_total{link=\"l\\\"1\\\\x\\n\",result=\"ok\"} 5\n"
	"sakeyd_rotations_total{link=\"l\\\"1\\\\x\\n\",result=\"failed\"} 1\n"
	"sakeyd_rotations_total{link=\"new\",result=\"ok\"} 0\n"
	"sakeyd_rotations_total{link=\"new\",result=\"failed\"} 0\n"
	"# HELP sakeyd_sa_age_seconds Seconds since an SA no link manages (keyed by hand) "
	"was added to the kernel.\n"
	"# TYPE sakeyd_sa_age_seconds gauge\n"
	"sakeyd_sa_age_seconds{spi=\"0x00001234\",src=\"2001:db8::1\",dst=\"2001:db8::2\","
	"proto=\"esp\"} 3600\n"
	"# HELP sakeyd_sa_expiry_seconds Seconds left until the soft or hard lifetime of an "
	"SA no link manages (0 once reached).\n"
	"# TYPE sakeyd_sa_expiry_seconds gauge\n"
	"sakeyd_sa_expiry_seconds{kind=\"soft\",spi=\"0x00001234\",src=\"2001:db8::1\","
	"dst=\"2001:db8::2\",proto=\"esp\"} 0\n"
	"# HELP sakeyd_sa_series_omitted SAs no link manages left out of the per-SA series "
	"(more than 1000); sakeyd_sas counts them all.\n"
	"# TYPE sakeyd_sa_series_omitted gauge\n"
	"sakeyd_sa_series_omitted 0\n"
	"# HELP sakeyd_events_total SA events and alerts since sakeyd started.\n"
	"# TYPE sakeyd_events_total counter\n"
	"sakeyd_events_total{event=\"add\"} 3\n"
	"sakeyd_events_total{event=\"expire-soft\"} 1\n"
	"# HELP sakeyd_alert_commands_total Runs of alert_command by result (ok, failed, "
	"timeout, dropped).\n"
	"# TYPE sakeyd_alert_commands_total counter\n"
	"sakeyd_alert_commands_total{result=\"ok\"} 2\n"
	"sakeyd_alert_commands_total{result=\"timeout\"} 1\n"
	"# HELP sakeyd_kernel_messages_dropped_total Messages from the kernel dropped: "
	"malformed (rejected by the decoder), truncated, replies that never came "
	"(reply-timeout), or receive-buffer overruns the kernel reported (overrun, XFRM).\n"
	"# TYPE sakeyd_kernel_messages_dropped_total counter\n"
	"sakeyd_kernel_messages_dropped_total{reason=\"malformed\"} 4\n"
	"sakeyd_kernel_messages_dropped_total{reason=\"reply-timeout\"} 1\n"
	"# HELP sakeyd_xfrm_errors_total The kernel's XFRM error counters "
	"(/proc/net/xfrm_stat).\n"
	"# TYPE sakeyd_xfrm_errors_total counter\n"
	"sakeyd_xfrm_errors_total{error=\"XfrmInError\"} 0\n"
	"sakeyd_xfrm_errors_total{error=\"XfrmInNoStates\"} 12\n";

static void test_render_golden(void **state)
{
	struct mon_table *t = mon_table_new();
	struct conf_link link = { .name = "l\"1\\x\n" };
	struct mon_sa *e, *mine[3];
	struct mon_count events[] = { { "add", 3 }, { "expire-soft", 1 } };
	struct mon_count commands[] = { { "ok", 2 }, { "timeout", 1 } };
	struct mon_count drops[] = { { "malformed", 4 }, { "reply-timeout", 1 } };
	struct mon_metrics_link links[] = {
		{ .name = link.name, .has_epoch = true, .epoch = 7, .next_rotation = T0 + 3540,
		  .rotations_ok = 5, .rotations_failed = 1, .state = MON_LINK_BACKOFF },
		{ .name = "new", .state = MON_LINK_PENDING },
	};
	struct mon_xfrm_stat xfrm[] = { { "XfrmInError", 0 }, { "XfrmInNoStates", 12 } };
	struct mon_metrics m = {
		.now = T0,
		.up = true,
		.last_update = T0 - 5,
		.version = "1.2\"3",
		.sas = t,
		.events = events,
		.nevents = 2,
		.links = links,
		.nlinks = 2,
		.xfrm = xfrm,
		.nxfrm = 2,
		.alert_commands = commands,
		.nalert_commands = 2,
		.kernel_drops = drops,
		.nkernel_drops = 2,
	};
	char *text = NULL;
	size_t len = 0;

	assert_non_null(t);
	/* Unmanaged, added first. */
	e = put(t, 0x1234, "2001:db8::1", "2001:db8::2");
	e->added_at = T0 - 3600;
	e->soft.addtime = 60; /* passed: 0 left */
	/* The link's outbound SA of epoch 7, generation 3 (the newer of two: current). */
	e = mine[0] = put(t, 0x2a000037, "192.0.2.1", "198.51.100.7");
	e->managed = true;
	e->sa.link = &link;
	e->sa.dir = ROT_DIR_OUT;
	e->sa.epoch = 7;
	e->sa.gen = 3;
	e->added_at = T0 - 100;
	e->hard.addtime = 8000;
	/* Generation 2, replaced: older, not the current one. */
	e = mine[1] = put(t, 0x2a000027, "192.0.2.1", "198.51.100.7");
	e->managed = true;
	e->sa.link = &link;
	e->sa.dir = ROT_DIR_OUT;
	e->sa.epoch = 7;
	e->sa.gen = 2;
	e->added_at = T0 - 200;
	e = mine[2] = put(t, 0x2a000007, "198.51.100.7", "192.0.2.1");
	e->managed = true;
	e->sa.link = &link;
	e->sa.dir = ROT_DIR_IN;
	e->sa.epoch = 7;
	e->added_at = T0 - 100;
	e->soft.addtime = 3660;
	e->hard.addtime = 7200;
	for (int i = 0; i < 3; i++)
		mon_metrics_link_add_sa(&links[0], mine[i]);

	assert_int_equal(mon_metrics_render(&m, &text, &len), 0);
	assert_int_equal(len, strlen(text));
	if (strcmp(text, golden))
		fprintf(stderr, "got:\n%s", text);
	assert_string_equal(text, golden);
	free(text);
	mon_table_free(t);
}

static void test_render_empty(void **state)
{
	struct mon_metrics m = { .now = T0 };
	char *text = NULL;
	size_t len = 0;

	assert_int_equal(mon_metrics_render(&m, &text, &len), 0);
	assert_non_null(strstr(text, "\nsakeyd_up 0\n"));
	assert_null(strstr(text, "sakeyd_last_update_timestamp_seconds "));
	assert_null(strstr(text, "sakeyd_xfrm_errors_total"));
	assert_non_null(strstr(text, "sakeyd_sas{managed=\"false\"} 0\n"));
	/* Every family has its TYPE line even when it has no series. */
	assert_non_null(strstr(text, "# TYPE sakeyd_sa_age_seconds gauge\n"));
	assert_non_null(strstr(text, "# TYPE sakeyd_events_total counter\n"));
	assert_non_null(strstr(text, "# TYPE sakeyd_link_epoch gauge\n"));
	free(text);
}

static void test_render_many(void **state)
{
	struct mon_table *t = mon_table_new();
	struct mon_metrics m = { .now = T0, .up = true, .sas = t };
	char *text = NULL, src[32];
	size_t len = 0, lines = 0;

	/* Beyond the first buffer (the text grows), and beyond MON_METRICS_SA_MAX. */
	for (uint32_t i = 1; i <= MON_METRICS_SA_MAX + 5; i++) {
		struct mon_sa *e;

		snprintf(src, sizeof(src), "10.0.%u.%u", i / 256, i % 256);
		e = put(t, i, src, "10.1.0.1");
		e->added_at = T0 - i;
	}
	assert_int_equal(mon_metrics_render(&m, &text, &len), 0);
	for (size_t i = 0; i < len; i++)
		lines += !strncmp(text + i, "\nsakeyd_sa_age_seconds{", 23);
	assert_int_equal(lines, MON_METRICS_SA_MAX);
	assert_non_null(strstr(text, "sakeyd_sas{managed=\"false\"} 1005\n"));
	assert_non_null(strstr(text, "\nsakeyd_sa_series_omitted 5\n"));
	assert_non_null(strstr(text, "spi=\"0x000001f4\",src=\"10.0.1.244\",dst=\"10.1.0.1\","
				     "proto=\"esp\"} 500\n"));
	/* The first 1000 by (dst, spi): spi 1000 in, 1001 out. */
	assert_non_null(strstr(text, "sakeyd_sa_age_seconds{spi=\"0x000003e8\","));
	assert_null(strstr(text, "sakeyd_sa_age_seconds{spi=\"0x000003e9\","));
	free(text);
	mon_table_free(t);
}

/* Managed SAs never get per-SA series: a rotation changes no series name or label set. */
static void test_render_managed_bounded(void **state)
{
	struct mon_table *t = mon_table_new();
	struct conf_link link = { .name = "l1" };
	struct mon_metrics_link l = { .name = "l1", .has_epoch = true, .epoch = 1 };
	struct mon_metrics m = { .now = T0, .up = true, .sas = t, .links = &l, .nlinks = 1 };
	char *before = NULL, *after = NULL, *p;
	size_t len;

	for (int epoch = 1; epoch <= 2; epoch++) {
		struct mon_sa *e = put(t, 0x2a000000u | (uint32_t)epoch, "192.0.2.1", "192.0.2.2");

		e->managed = true;
		e->sa.link = &link;
		e->sa.dir = ROT_DIR_OUT;
		e->sa.epoch = epoch;
		e->added_at = T0 - 10 * (3 - epoch);
		l = (struct mon_metrics_link){ .name = "l1", .has_epoch = true, .epoch = epoch };
		mon_metrics_link_add_sa(&l, e);
		assert_int_equal(mon_metrics_render(&m, epoch == 1 ? &before : &after, &len), 0);
	}
	assert_null(strstr(before, "spi="));
	assert_null(strstr(after, "spi="));
	assert_non_null(strstr(before, "\nsakeyd_link_outbound_age_seconds{link=\"l1\"} 20\n"));
	/* Epoch 2's SA is the current one; epoch 1's, still there, is not counted. */
	assert_non_null(strstr(after, "\nsakeyd_link_outbound_age_seconds{link=\"l1\"} 10\n"));
	/* Same series (names and labels) before and after the rotation. */
	for (p = before; *p; p++)
		if (*p == '}')
			while (p[1] && p[1] != '\n')
				memmove(p + 1, p + 2, strlen(p + 1));
	for (p = after; *p; p++)
		if (*p == '}')
			while (p[1] && p[1] != '\n')
				memmove(p + 1, p + 2, strlen(p + 1));
	assert_string_equal(before, after);
	free(before);
	free(after);
	mon_table_free(t);
}

/* A real /proc/net/xfrm_stat (Linux 6.1): names padded with spaces, one counter a line. */
static const char xfrm_stat[] = "XfrmInError             \t0\n"
				"XfrmInBufferError       \t0\n"
				"XfrmInHdrError          \t3\n"
				"XfrmInNoStates          \t18446744073709551615\n"
				"XfrmOutPolBlock         \t7\n";

static void test_xfrm_parse(void **state)
{
	struct mon_xfrm_stat out[MON_XFRM_MAX];
	size_t n = 99;

	assert_int_equal(mon_xfrm_stat_parse(xfrm_stat, strlen(xfrm_stat), out, MON_XFRM_MAX, &n),
			 0);
	assert_int_equal(n, 5);
	assert_string_equal(out[0].name, "XfrmInError");
	assert_int_equal(out[0].value, 0);
	assert_string_equal(out[2].name, "XfrmInHdrError");
	assert_int_equal(out[2].value, 3);
	assert_true(out[3].value == UINT64_MAX);
	assert_string_equal(out[4].name, "XfrmOutPolBlock");
	assert_int_equal(out[4].value, 7);

	/* Without the last line feed, with empty lines, not NUL-terminated. */
	assert_int_equal(mon_xfrm_stat_parse("A 1\n\nB 2", 8, out, MON_XFRM_MAX, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(out[1].name, "B");
	assert_int_equal(out[1].value, 2);
	assert_int_equal(mon_xfrm_stat_parse("A 1\nB 23456", 7, out, MON_XFRM_MAX, &n), 0);
	assert_int_equal(out[1].value, 2);
	/* Nothing. */
	assert_int_equal(mon_xfrm_stat_parse("", 0, out, MON_XFRM_MAX, &n), 0);
	assert_int_equal(n, 0);
	/* Trailing blanks. */
	assert_int_equal(mon_xfrm_stat_parse("A 1  \n", 6, out, MON_XFRM_MAX, &n), 0);
	assert_int_equal(n, 1);
}

static void test_xfrm_rejects(void **state)
{
	static const char *const bad[] = {
		"A\n",	     /* no value */
		"A \n",	     /* no value */
		" 1\n",	     /* no name */
		"A-B 1\n",   /* bad name character */
		"A 1x\n",    /* trailing garbage */
		"A -1\n",    /* sign */
		"A 1 2\n",   /* two values */
		"A\t\n",     /* blank only */
		"A 1\nB\n",  /* a later line broken */
		"A 1\0B 2\n" /* NUL inside */,
	};
	struct mon_xfrm_stat out[MON_XFRM_MAX];
	char name[80];
	size_t n;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(mon_xfrm_stat_parse(bad[i], strlen(bad[i]) + (i == 9 ? 5 : 0), out,
						     MON_XFRM_MAX, &n),
				 -EINVAL);
	assert_int_equal(mon_xfrm_stat_parse("A 18446744073709551616\n", 23, out, MON_XFRM_MAX, &n),
			 -ERANGE);
	assert_int_equal(mon_xfrm_stat_parse("A 1\nB 2\nC 3\n", 12, out, 2, &n), -E2BIG);
	memset(name, 'N', MON_XFRM_NAME_LEN);
	snprintf(name + MON_XFRM_NAME_LEN, sizeof(name) - MON_XFRM_NAME_LEN, " 1\n");
	assert_int_equal(mon_xfrm_stat_parse(name, strlen(name), out, MON_XFRM_MAX, &n), -E2BIG);
	name[MON_XFRM_NAME_LEN - 1] = ' '; /* the longest name kept */
	assert_int_equal(mon_xfrm_stat_parse(name, strlen(name), out, MON_XFRM_MAX, &n), 0);
	assert_int_equal(strlen(out[0].name), MON_XFRM_NAME_LEN - 1);
}

static void test_xfrm_rises(void **state)
{
	const struct mon_xfrm_stat prev[] = { { "XfrmInError", 5 }, { "XfrmInNoStates", 10 },
					      { "XfrmOutPolBlock", 7 } };
	const struct mon_xfrm_stat cur[] = { { "XfrmInError", 5 },
					     { "XfrmInNoStates", 22 },
					     { "XfrmOutPolBlock", 3 }, /* fell: reset, not a rise */
					     { "XfrmInStateProtoError", 9 }, /* new: a baseline */
					     { "XfrmAcquireError", 1 } };
	const struct mon_xfrm_stat cur2[] = { { "XfrmInError", 6 }, { "XfrmInNoStates", 23 } };
	char msg[128], tiny[12];

	/* The same counters: nothing rose, an empty message. */
	assert_int_equal(mon_xfrm_stat_rises(prev, 3, prev, 3, msg, sizeof(msg)), 0);
	assert_string_equal(msg, "");
	assert_int_equal(mon_xfrm_stat_rises(prev, 3, cur, 5, msg, sizeof(msg)), 1);
	assert_string_equal(msg, "XfrmInNoStates +12 (now 22)");
	/* No previous reading: all baseline. */
	assert_int_equal(mon_xfrm_stat_rises(NULL, 0, cur, 5, msg, sizeof(msg)), 0);
	/* Two rises, in the current reading's order; matched by name, not position. */
	assert_int_equal(mon_xfrm_stat_rises(prev, 3, cur2, 2, msg, sizeof(msg)), 2);
	assert_string_equal(msg, "XfrmInError +1 (now 6), XfrmInNoStates +13 (now 23)");
	/* A short buffer: a NUL-terminated prefix, every rise still counted. */
	assert_int_equal(mon_xfrm_stat_rises(prev, 3, cur2, 2, tiny, sizeof(tiny)), 2);
	assert_int_equal(strlen(tiny), sizeof(tiny) - 1);
	assert_memory_equal(tiny, "XfrmInError", 11);
	assert_int_equal(mon_xfrm_stat_rises(prev, 3, cur2, 2, NULL, 0), 2);
	/* Up to UINT64_MAX. */
	{
		const struct mon_xfrm_stat big[] = { { "XfrmInNoStates", UINT64_MAX } };

		assert_int_equal(mon_xfrm_stat_rises(prev, 3, big, 1, msg, sizeof(msg)), 1);
		assert_string_equal(msg, "XfrmInNoStates +18446744073709551605 "
					 "(now 18446744073709551615)");
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_render_golden), cmocka_unit_test(test_render_empty),
		cmocka_unit_test(test_render_many),   cmocka_unit_test(test_xfrm_parse),
		cmocka_unit_test(test_xfrm_rejects),  cmocka_unit_test(test_xfrm_rises),
		cmocka_unit_test(test_render_managed_bounded),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
