/* SPDX-License-Identifier: ISC */
/* Unit tests for monitor/rules: the sa-too-old decision and alert_command's environment. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "monitor/rules.h"

#define T0 INT64_C(1700000000)

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

static void test_age(void **state)
{
	struct mon_sa e = { .added_at = T0 };

	assert_int_equal(mon_sa_age(&e, T0 + 42), 42);
	assert_int_equal(mon_sa_age(&e, T0 - 5), 0);
	e.added_at = 0;
	assert_int_equal(mon_sa_age(&e, T0), 0);
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
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_too_old),	     cmocka_unit_test(test_age),
		cmocka_unit_test(test_proto),	     cmocka_unit_test(test_env_full),
		cmocka_unit_test(test_env_absent),   cmocka_unit_test(test_env_cleaning),
		cmocka_unit_test(test_env_truncation), cmocka_unit_test(test_env_rejects),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
