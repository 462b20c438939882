/* SPDX-License-Identifier: ISC */
/* Unit tests for monitor/range: the Monitoring Plugins threshold ranges of sactl check -w/-c. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "monitor/range.h"

static struct mon_range parsed(const char *text)
{
	struct mon_range r;
	const char *why = NULL;

	assert_int_equal(mon_range_parse(text, &r, &why), 0);
	assert_true(r.set);
	assert_string_equal(r.text, text);
	return r;
}

/* The guidelines' table (monitoring-plugins.org/doc/guidelines.html#THRESHOLDFORMAT). */
static void test_forms(void **state)
{
	struct mon_range r;

	(void)state;
	/* "10": alert outside 0..10 (< 0 or > 10), ends included. */
	r = parsed("10");
	assert_true(mon_range_alert(&r, -1));
	assert_false(mon_range_alert(&r, 0));
	assert_false(mon_range_alert(&r, 10));
	assert_true(mon_range_alert(&r, 10.5));
	assert_true(mon_range_alert(&r, 11));

	/* "10:": alert below 10. */
	r = parsed("10:");
	assert_true(mon_range_alert(&r, 9));
	assert_true(mon_range_alert(&r, -100));
	assert_false(mon_range_alert(&r, 10));
	assert_false(mon_range_alert(&r, 1e12));

	/* "~:10": alert above 10. */
	r = parsed("~:10");
	assert_false(mon_range_alert(&r, -1e12));
	assert_false(mon_range_alert(&r, 10));
	assert_true(mon_range_alert(&r, 11));

	/* "10:20": alert outside 10..20. */
	r = parsed("10:20");
	assert_true(mon_range_alert(&r, 9));
	assert_false(mon_range_alert(&r, 10));
	assert_false(mon_range_alert(&r, 15));
	assert_false(mon_range_alert(&r, 20));
	assert_true(mon_range_alert(&r, 21));

	/* "@10:20": alert inside 10..20, ends included. */
	r = parsed("@10:20");
	assert_false(mon_range_alert(&r, 9));
	assert_true(mon_range_alert(&r, 10));
	assert_true(mon_range_alert(&r, 15));
	assert_true(mon_range_alert(&r, 20));
	assert_false(mon_range_alert(&r, 20.5));

	/* "@10": alert inside 0..10. */
	r = parsed("@10");
	assert_true(mon_range_alert(&r, 0));
	assert_true(mon_range_alert(&r, 10));
	assert_false(mon_range_alert(&r, 11));
	assert_false(mon_range_alert(&r, -1));
}

static void test_numbers(void **state)
{
	struct mon_range r;

	(void)state;
	r = parsed("-5:-1.5");
	assert_true(r.has_start && r.has_end);
	assert_true(r.start == -5 && r.end == -1.5);
	assert_false(mon_range_alert(&r, -3));
	assert_true(mon_range_alert(&r, -1));
	r = parsed("+.5:1.");
	assert_true(r.start == 0.5 && r.end == 1);
	/* ":N" as check_* read it: 0..N. */
	r = parsed(":10");
	assert_true(r.has_start && r.start == 0 && r.end == 10);
	/* "~:": no end either way: never outside. */
	r = parsed("~:");
	assert_false(r.has_start || r.has_end);
	assert_false(mon_range_alert(&r, -1e300));
	assert_false(mon_range_alert(&r, 1e300));
	/* Equal ends: only that value is inside. */
	r = parsed("5:5");
	assert_false(mon_range_alert(&r, 5));
	assert_true(mon_range_alert(&r, 4.9));
}

static void test_rejects(void **state)
{
	static const char *const bad[] = {
		"", "@", "~", "abc", "10s", "1h:", "1e3", "inf", "nan", "0x10", " 10", "10 ",
		"10:5", "@20:10", "~10", "10:~", "1:2:3", ":", "@:", "-", ".", "+", "10::",
		"--1", "1..2", "12345678901234567890123456789012345678901234567890123456789012345",
	};
	struct mon_range r;
	const char *why;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		why = NULL;
		memset(&r, 0xa5, sizeof(r));
		if (mon_range_parse(bad[i], &r, &why) != -EINVAL)
			fail_msg("'%s' accepted", bad[i]);
		assert_non_null(why);
		assert_false(r.set);
		/* An unset range never alerts. */
		assert_false(mon_range_alert(&r, 0));
		assert_false(mon_range_alert(&r, -1));
	}
	assert_int_equal(mon_range_parse("10:5", &r, NULL), -EINVAL);
	assert_int_equal(mon_range_parse("10:5", &r, &why), -EINVAL);
	assert_string_equal(why, "the start is greater than the end");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_forms),
		cmocka_unit_test(test_numbers),
		cmocka_unit_test(test_rejects),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
