/* SPDX-License-Identifier: ISC */
/* Unit tests of conf/conf.c: every rejection with its file:line, defaults, durations, the example. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "conf/conf.h"

#define LINK_A "[link a]\nlocal = 192.0.2.1\nremote = 198.51.100.7\n" /* lines 1-3 */

static void dump(const struct conf_diag *diag)
{
	for (size_t i = 0; i < diag->count; i++)
		print_message("  diag: %s\n", diag->msgs[i]);
}

/* Parses text and checks that it fails with exactly `count` messages, one of them
 * "t.conf:LINE: ..." containing every phrase given (NULL-terminated). */
static void expect_errors(const char *text, size_t count, unsigned line, ...)
{
	struct conf_diag diag = { 0 };
	struct config *cfg = (struct config *)1;
	char prefix[32];
	bool found = false;
	int ret;

	ret = conf_parse("t.conf", text, strlen(text), &cfg, &diag);
	snprintf(prefix, sizeof(prefix), "t.conf:%u: ", line);
	for (size_t i = 0; i < diag.count && !found; i++) {
		const char *phrase;
		va_list ap;

		if (strncmp(diag.msgs[i], prefix, strlen(prefix)))
			continue;
		found = true;
		va_start(ap, line);
		while ((phrase = va_arg(ap, const char *)))
			if (!strstr(diag.msgs[i], phrase))
				found = false;
		va_end(ap);
	}
	if (!found || diag.count != count || ret != -EINVAL) {
		print_message("input:\n%s\nret %d, want line %u, %zu messages:\n", text, ret, line,
			      count);
		dump(&diag);
	}
	assert_int_equal(ret, -EINVAL);
	assert_null(cfg);
	assert_true(found);
	assert_int_equal(diag.count, count);
	conf_diag_fini(&diag);
}

#define expect_error(text, line, ...) expect_errors(text, 1, line, __VA_ARGS__, NULL)

static struct config *parse_ok(const char *text)
{
	struct conf_diag diag = { 0 };
	struct config *cfg = NULL;
	int ret = conf_parse("t.conf", text, strlen(text), &cfg, &diag);

	if (ret)
		dump(&diag);
	assert_int_equal(ret, 0);
	assert_int_equal(diag.count, 0);
	assert_non_null(cfg);
	conf_diag_fini(&diag);
	return cfg;
}

/* ---- Each rejection ---- */

#define ERR_TEST(fn, text, line, ...)                          \
	static void fn(void **state)                           \
	{                                                      \
		(void)state;                                   \
		expect_error(text, line, __VA_ARGS__);         \
	}

ERR_TEST(unknown_key_daemon, "[daemon]\nkernal = pfkey\n", 2, "unknown key 'kernal' in [daemon]",
	 "valid keys: kernel,")
ERR_TEST(unknown_key_link, LINK_A "colour = blue\n", 4, "unknown key 'colour' in [link a]",
	 "rotate_every")
ERR_TEST(daemon_key_in_link, LINK_A "max_sa_age = 1h\n", 4,
	 "'max_sa_age' belongs in the [daemon] section, not in [link a]")
ERR_TEST(link_key_in_daemon, "[daemon]\nrotate_every = 1h\n", 2,
	 "'rotate_every' belongs in a [link NAME] section")
ERR_TEST(unknown_section, "[deamon]\nkernel = sim\n", 1, "unknown section [deamon]",
	 "[daemon] and [link NAME]")
ERR_TEST(key_outside_section, "# hi\nkernel = pfkey\n[daemon]\n", 2, "outside any section")
ERR_TEST(duplicate_key, "[daemon]\nkernel = pfkey\nkernel = sim\n", 3, "duplicate key 'kernel'",
	 "first set at line 2")
ERR_TEST(duplicate_daemon_section, "[daemon]\n[daemon]\n", 2, "second [daemon]", "line 1")
ERR_TEST(duplicate_link, LINK_A "[link a]\nlocal = 192.0.2.1\nremote = 198.51.100.8\n", 4,
	 "duplicate link name 'a'", "first defined at line 1")
ERR_TEST(link_without_name, "[link]\nlocal = 192.0.2.1\n", 1, "[link] has no name")
ERR_TEST(link_without_name_blank, "[link   ]\n", 1, "[link] has no name")
ERR_TEST(link_invalid_name, "[link a/b]\n", 1, "invalid link name 'a/b'", "A-Z a-z 0-9 _ . -")
ERR_TEST(link_name_with_space, "[link a b]\n", 1, "invalid link name 'a b'")
ERR_TEST(link_name_too_long,
	 "[link a123456789012345678901234567890123456789012345678901234567890123]\n", 1,
	 "invalid link name", "1 to 63 characters")
ERR_TEST(section_unclosed, "[daemon\nkernel = sim\n", 1, "no closing ']'")
ERR_TEST(section_trailing_text, "[daemon] x\n", 1, "unexpected text after ']'")
ERR_TEST(not_key_value, "[daemon]\nkernel pfkey\n", 2, "neither KEY = VALUE")
ERR_TEST(empty_key, "[daemon]\n = pfkey\n", 2, "missing key name")
ERR_TEST(bad_key_chars, "[daemon]\nker:nel = pfkey\n", 2, "invalid key name 'ker:nel'")
ERR_TEST(duration_no_unit, LINK_A "rotate_every = 60\n", 4, "rotate_every = 60 has no unit",
	 "60s")
ERR_TEST(duration_bad_unit, LINK_A "rotate_every = 1x\n", 4, "'1x' is not a duration", "1h30m")
ERR_TEST(duration_negative, LINK_A "lead = -5s\n", 4, "lead = '-5s' is not a duration")
ERR_TEST(duration_empty, "[daemon]\nmax_sa_age =\n", 2, "max_sa_age = '' is not a duration")
ERR_TEST(duration_out_of_order, LINK_A "rotate_every = 30m1h\n", 4, "is not a duration",
	 "in that order")
ERR_TEST(duration_space, LINK_A "rotate_every = 1h 30m\n", 4, "is not a duration")
ERR_TEST(duration_overflow, LINK_A "rotate_every = 99999999999999999999999s\n", 4, "too large",
	 "36500d")
ERR_TEST(rotate_every_zero, LINK_A "rotate_every = 0s\n", 4, "rotate_every must be at least 1s")
ERR_TEST(refresh_interval_zero, "[daemon]\nrefresh_interval = 0m\n", 2,
	 "refresh_interval must be at least 1s")
ERR_TEST(hostname_local, "[link a]\nlocal = gw.example.net\nremote = 198.51.100.7\n", 2,
	 "local = 'gw.example.net' is not an IP address", "IP literals only")
ERR_TEST(hostname_remote, "[link a]\nlocal = 192.0.2.1\nremote = localhost\n", 3,
	 "IP literals only")
ERR_TEST(address_with_prefix, "[link a]\nlocal = 192.0.2.1/32\nremote = 198.51.100.7\n", 2,
	 "has a prefix")
ERR_TEST(address_unspecified, "[link a]\nlocal = ::\nremote = 2001:db8::1\n", 2,
	 "unspecified address")
ERR_TEST(mixed_families, "[link a]\nlocal = 192.0.2.1\nremote = 2001:db8::2\n", 3,
	 "mixes address families", "local is IPv4, remote is IPv6")
ERR_TEST(local_equals_remote, "[link a]\nlocal = 2001:db8::1\nremote = 2001:db8:0::1\n", 3,
	 "remote is the same address as local")
ERR_TEST(missing_local, "[link a]\nremote = 198.51.100.7\n", 1, "link a has no local address",
	 "add local =")
ERR_TEST(missing_remote, "[link a]\nlocal = 198.51.100.7\n", 1, "link a has no remote address")
ERR_TEST(lead_grace_too_long, LINK_A "rotate_every = 2m\nlead = 1m\ngrace = 1m\n", 5,
	 "lead (1m) + grace (1m) must be less than rotate_every (2m)")
ERR_TEST(lead_alone_too_long, LINK_A "rotate_every = 1h\nlead = 59m\n", 5,
	 "lead (59m) + grace (1m)")
ERR_TEST(phase_too_big, LINK_A "phase = 1h\n", 4, "phase (1h) must be less than rotate_every (1h)")
ERR_TEST(spi_prefix_not_hex, LINK_A "spi_prefix = 0xzz\n", 4, "spi_prefix = '0xzz' is not a hex",
	 "0x1 to 0xffffff")
ERR_TEST(spi_prefix_decimal, LINK_A "spi_prefix = 42\n", 4, "not a hex number")
ERR_TEST(spi_prefix_too_big, LINK_A "spi_prefix = 0x1000000\n", 4, "out of range")
ERR_TEST(spi_prefix_zero, LINK_A "spi_prefix = 0x0\n", 4, "out of range")
ERR_TEST(spi_prefix_collision,
	 LINK_A "spi_prefix = 0x2a\n"
		"[link b]\nlocal = 192.0.2.1\nremote = 198.51.100.9\nspi_prefix = 0x02A\n",
	 8, "links b and a (line 4) both use spi_prefix 0x2a")
ERR_TEST(unknown_algorithm, LINK_A "algorithm = aes-ctr\n", 4, "unknown algorithm 'aes-ctr'",
	 "aes-gcm-128, aes-gcm-256, aes-cbc-256-hmac-sha256, aes-cbc-256-hmac-sha384, "
	 "aes-cbc-256-hmac-sha512")
ERR_TEST(gcm_on_pfkey, "[daemon]\nkernel = pfkey\n" LINK_A "algorithm = aes-gcm-128\n", 6,
	 "kernel = pfkey", "ENOSYS", "use aes-cbc-256-hmac-sha512")
ERR_TEST(esn_on_pfkey, "[daemon]\nkernel = pfkey\n" LINK_A "esn = yes\n", 6,
	 "esn = yes needs kernel = xfrm or auto", "set esn = no")
ERR_TEST(replay_on_pfkey, "[daemon]\nkernel = pfkey\n" LINK_A "replay_window = 64\n", 6,
	 "replay_window 64 is above PF_KEY's 32", "use kernel = xfrm")
ERR_TEST(replay_zero, LINK_A "replay_window = 0\n", 4, "replay_window = '0' is not a packet count",
	 "from 1 to 4096")
ERR_TEST(replay_huge, LINK_A "replay_window = 4097\n", 4, "replay_window = '4097'")
ERR_TEST(replay_signed, LINK_A "replay_window = +64\n", 4, "replay_window = '+64'")
ERR_TEST(replay_word, LINK_A "replay_window = lots\n", 4, "replay_window = 'lots'",
	 "write a number or auto")
ERR_TEST(esn_maybe, LINK_A "esn = maybe\n", 4, "esn = 'maybe' is not a boolean")
ERR_TEST(sha256_on_sim, "[daemon]\nkernel = sim\n" LINK_A "algorithm = aes-cbc-256-hmac-sha256\n",
	 6, "kernel = sim", "96-bit ICV", "use aes-cbc-256-hmac-sha512")
ERR_TEST(tunnel_without_subnets, LINK_A "mode = tunnel\nlocal_subnet = 10.1.0.0/16\n", 4,
	 "mode = tunnel needs local_subnet and remote_subnet")
ERR_TEST(subnet_in_transport, LINK_A "remote_subnet = 10.2.0.0/16\n", 4,
	 "for mode = tunnel only")
ERR_TEST(subnet_family_mismatch,
	 LINK_A "mode = tunnel\nlocal_subnet = 10.1.0.0/16\nremote_subnet = 2001:db8:2::/48\n", 6,
	 "different address families")
ERR_TEST(subnet_bad_prefix, LINK_A "mode = tunnel\nlocal_subnet = 10.1.0.0/33\n"
			       "remote_subnet = 10.2.0.0/16\n",
	 5, "bad prefix length", "0 to 32")
ERR_TEST(subnet_no_prefix, LINK_A "mode = tunnel\nlocal_subnet = 10.1.0.0\n"
			      "remote_subnet = 10.2.0.0/16\n",
	 5, "is not a subnet", "ADDRESS/PREFIX")
ERR_TEST(subnet_host_bits, LINK_A "mode = tunnel\nlocal_subnet = 10.1.2.3/16\n"
			      "remote_subnet = 10.2.0.0/16\n",
	 5, "bits set after the /16 prefix")
ERR_TEST(subnet_hostname, LINK_A "mode = tunnel\nlocal_subnet = lan.example/16\n"
			     "remote_subnet = 10.2.0.0/16\n",
	 5, "IP literals only")
ERR_TEST(bad_mode, LINK_A "mode = tunel\n", 4, "mode = 'tunel' is unknown", "transport or tunnel")
ERR_TEST(bad_kernel, "[daemon]\nkernel = netlink\n", 2, "kernel = 'netlink' is unknown",
	 "write auto, xfrm, pfkey or sim")
ERR_TEST(bad_policy, LINK_A "policy = maybe\n", 4, "policy = 'maybe' is not a boolean",
	 "yes, no, true or false")
ERR_TEST(relative_state_dir, "[daemon]\nstate_dir = var/lib/sakeyd\n", 2,
	 "state_dir must be an absolute path")
ERR_TEST(relative_secret_file, LINK_A "secret_file = a.key\n", 4,
	 "secret_file must be an absolute path")
ERR_TEST(relative_alert_command, "[daemon]\nalert_command = notify\n", 2,
	 "alert_command must be an absolute path")
ERR_TEST(control_socket_too_long,
	 "[daemon]\ncontrol_socket = /run/"
	 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.sock\n",
	 2, "too long for a Unix socket")

ERR_TEST(sim_connect_without_sim, "[daemon]\nsim_connect = /run/simd.sock\n", 2,
	 "sim_connect needs kernel = sim")
ERR_TEST(sim_connect_with_sim_socket,
	 "[daemon]\nkernel = sim\nsim_socket = /run/a.sock\nsim_connect = /run/b.sock\n", 4,
	 "sim_connect and sim_socket (line 3) exclude each other")
ERR_TEST(sim_connect_relative, "[daemon]\nkernel = sim\nsim_connect = simd.sock\n", 3,
	 "sim_connect must be an absolute path")
ERR_TEST(sim_connect_too_long,
	 "[daemon]\nkernel = sim\nsim_connect = /run/"
	 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.sock\n",
	 3, "sim_connect is too long for a Unix socket")

static void sim_connect_parsed(void **state)
{
	struct config *cfg;

	(void)state;
	cfg = parse_ok("[daemon]\nkernel = sim\nsim_connect = /run/simd.sock\n");
	assert_string_equal(cfg->daemon.sim_connect, "/run/simd.sock");
	assert_string_equal(cfg->daemon.sim_socket, "");
	conf_free(cfg);
}

static void line_too_long(void **state)
{
	char text[2048];

	(void)state;
	memset(text, 0, sizeof(text));
	strcpy(text, "[daemon]\nstate_dir = /");
	memset(text + strlen(text), 'x', 1500);
	strcat(text, "\nkernel = sim\n");
	expect_error(text, 2, "line too long", "shorten it");
}

static void nul_byte(void **state)
{
	static const char text[] = "[daemon]\nkernel = p\0fkey\n";
	struct conf_diag diag = { 0 };
	struct config *cfg = NULL;

	(void)state;
	assert_int_equal(conf_parse("t.conf", text, sizeof(text) - 1, &cfg, &diag), -EINVAL);
	assert_int_equal(diag.count, 1);
	assert_string_equal(diag.msgs[0],
			    "t.conf:2: line contains a NUL byte; save the file as plain text");
	conf_diag_fini(&diag);
}

/* Every error of a file is reported, in order, not just the first. */
static void all_errors_reported(void **state)
{
	static const char text[] = "[daemon]\n"
				   "kernel = xfrn\n"	     /* 2 */
				   "bogus = 1\n"	     /* 3 */
				   "[link a]\n"		     /* 4 */
				   "local = host.example\n"  /* 5 */
				   "remote = 198.51.100.7\n" /* 6 */
				   "rotate_every = 0s\n"     /* 7 */
				   "[nope]\n"		     /* 8 */
				   "nothing here\n";	     /* 9 */
	struct conf_diag diag = { 0 };
	struct config *cfg = NULL;

	(void)state;
	assert_int_equal(conf_parse("t.conf", text, strlen(text), &cfg, &diag), -EINVAL);
	dump(&diag);
	assert_int_equal(diag.count, 6);
	assert_true(!strncmp(diag.msgs[0], "t.conf:2: ", 10));
	assert_true(!strncmp(diag.msgs[1], "t.conf:3: ", 10));
	assert_true(!strncmp(diag.msgs[2], "t.conf:5: ", 10));
	assert_true(!strncmp(diag.msgs[3], "t.conf:7: ", 10));
	assert_true(!strncmp(diag.msgs[4], "t.conf:8: ", 10));
	assert_true(!strncmp(diag.msgs[5], "t.conf:9: ", 10));
	conf_diag_fini(&diag);
}

static void diag_is_capped(void **state)
{
	char *text = calloc(1, 200 * 16 + 16);
	struct conf_diag diag = { 0 };
	struct config *cfg = NULL;

	(void)state;
	assert_non_null(text);
	strcpy(text, "[daemon]\n");
	for (int i = 0; i < 150; i++)
		strcat(text, "x = 1\n");
	assert_int_equal(conf_parse("t.conf", text, strlen(text), &cfg, &diag), -EINVAL);
	assert_int_equal(diag.count, CONF_DIAG_MAX);
	assert_int_equal(diag.dropped, 150 - CONF_DIAG_MAX);
	conf_diag_fini(&diag);
	free(text);
}

/* Non-printable bytes from the file are escaped in messages. */
static void messages_escape_input(void **state)
{
	(void)state;
	expect_error("[daemon]\nkernel = \x1b[31mred\n", 2, "kernel = '\\x1b[31mred' is unknown");
}

/* ---- Accepted input ---- */

/* kernel = xfrm takes what PF_KEY cannot; auto leaves the choice to run time. */
static void xfrm_settings(void **state)
{
	struct config *cfg;
	const char *why = NULL;

	(void)state;
	cfg = parse_ok("[daemon]\nkernel = xfrm\n" LINK_A "algorithm = aes-gcm-256\nesn = yes\n"
		       "replay_window = 1024\n"
		       "[link b]\nlocal = 192.0.2.1\nremote = 198.51.100.9\nesn = no\n"
		       "[link c]\nlocal = 192.0.2.1\nremote = 198.51.100.10\nreplay_window = auto\n"
		       "esn = auto\n");
	assert_int_equal(cfg->daemon.kernel, CONF_KERNEL_XFRM);
	assert_string_equal(conf_kernel_name(cfg->daemon.kernel), "xfrm");
	assert_int_equal(cfg->links[0].esn, CONF_YES);
	assert_int_equal(cfg->links[0].replay_window, 1024);
	assert_false(conf_link_pfkey_ok(&cfg->links[0], &why));
	assert_non_null(strstr(why, "ENOSYS"));
	assert_int_equal(cfg->links[1].esn, CONF_NO);
	assert_int_equal(cfg->links[1].replay_window, 0);
	assert_true(conf_link_pfkey_ok(&cfg->links[1], NULL));
	assert_int_equal(cfg->links[2].esn, CONF_AUTO);
	assert_true(conf_link_pfkey_ok(&cfg->links[2], NULL));
	conf_free(cfg);

	cfg = parse_ok(LINK_A "replay_window = 33\n");
	assert_int_equal(cfg->daemon.kernel, CONF_KERNEL_AUTO);
	assert_false(conf_link_pfkey_ok(&cfg->links[0], &why));
	assert_non_null(strstr(why, "replay_window"));
	conf_free(cfg);
	cfg = parse_ok(LINK_A "esn = true\n");
	assert_false(conf_link_pfkey_ok(&cfg->links[0], &why));
	assert_non_null(strstr(why, "esn = yes"));
	conf_free(cfg);
}

static void defaults(void **state)
{
	struct config *cfg;
	const struct conf_link *l;

	(void)state;
	cfg = parse_ok("");
	assert_string_equal(cfg->path, "t.conf");
	assert_int_equal(cfg->nlinks, 0); /* no links: a monitor-only daemon */
	assert_int_equal(cfg->daemon.kernel, CONF_KERNEL_AUTO);
	assert_string_equal(cfg->daemon.state_dir, "/var/lib/sakeyd");
	assert_string_equal(cfg->daemon.control_socket, "/run/sakeyd/control.sock");
	assert_string_equal(cfg->daemon.alert_command, "");
	assert_string_equal(cfg->daemon.metrics_file, "");
	assert_int_equal(cfg->daemon.max_sa_age, 86400);
	assert_int_equal(cfg->daemon.event_retention, 30 * 86400);
	assert_int_equal(cfg->daemon.refresh_interval, 10);
	conf_free(cfg);

	cfg = parse_ok(LINK_A);
	assert_int_equal(cfg->nlinks, 1);
	l = &cfg->links[0];
	assert_string_equal(l->name, "a");
	assert_int_equal(l->line, 1);
	assert_int_equal(l->local.family, AF_INET);
	assert_memory_equal(l->local.bytes, "\xc0\x00\x02\x01", 4);
	assert_int_equal(l->local.prefixlen, 32);
	assert_memory_equal(l->remote.bytes, "\xc6\x33\x64\x07", 4);
	assert_int_equal(l->mode, CONF_MODE_TRANSPORT);
	assert_int_equal(l->local_subnet.family, 0);
	assert_int_equal(l->remote_subnet.family, 0);
	assert_ptr_equal(l->alg, conf_alg_by_name("aes-cbc-256-hmac-sha512"));
	assert_string_equal(l->secret_file, "/etc/sakeyd/a.key");
	assert_int_equal(l->rotate_every, 3600);
	assert_true(l->phase_auto);
	assert_true(l->spi_prefix_auto);
	assert_int_equal(l->lead, 60);
	assert_int_equal(l->grace, 60);
	assert_int_equal(l->hard_slack, 3600);
	assert_true(l->policy);
	assert_null(l->secret);
	conf_free(cfg);
}

/* lead = grace = min(60s, P/4) when not set. */
static void lead_grace_default_short_period(void **state)
{
	struct config *cfg;

	(void)state;
	cfg = parse_ok(LINK_A "rotate_every = 2m\n");
	assert_int_equal(cfg->links[0].lead, 30);
	assert_int_equal(cfg->links[0].grace, 30);
	conf_free(cfg);
	cfg = parse_ok(LINK_A "rotate_every = 3s\ngrace = 1s\n");
	assert_int_equal(cfg->links[0].lead, 0);
	assert_int_equal(cfg->links[0].grace, 1);
	conf_free(cfg);
}

static void full_config(void **state)
{
	static const char text[] =
		"\xef\xbb\xbf# leading BOM and comments\r\n"
		"; semicolon comment\n"
		"[daemon]   # trailing comment\n"
		"  kernel = sim ; inline\n"
		"\tstate_dir = /tmp/s\n"
		"control_socket=/tmp/c.sock\n"
		"alert_command = /usr/local/sbin/notify\n"
		"metrics_file = /var/lib/node_exporter/sakeyd.prom\n"
		"max_sa_age = 1d12h\n"
		"event_retention = 7d\n"
		"refresh_interval = 1m30s\n"
		"\n"
		"[link tun.6-x_Y]\n"
		"local = 2001:db8::1\n"
		"remote = 2001:DB8::2\n"
		"mode = tunnel\n"
		"local_subnet = 2001:db8:1::/48\n"
		"remote_subnet = 2001:db8:2::/48\n"
		"algorithm = aes-cbc-256-hmac-sha384\n"
		"secret_file = /etc/sakeyd/tun6.key\n"
		"rotate_every = 1h30m\n"
		"phase = 0s\n"
		"spi_prefix = 0xABCdef\n"
		"lead = 2m\n"
		"grace = 3m\n"
		"hard_slack = 2h\n"
		"policy = false\n"
		"[link b]\n"
		"local = 192.0.2.1\n"
		"remote = 198.51.100.7\n"
		"spi_prefix = 0x2a\n"
		"policy = no\n"
		"[link c]\n"
		"local = 192.0.2.1\n"
		"remote = 198.51.100.8\n"
		"spi_prefix = auto\n"
		"phase = auto\n"
		"policy = yes\n";
	struct config *cfg;
	const struct conf_link *l;

	(void)state;
	cfg = parse_ok(text);
	assert_int_equal(cfg->daemon.kernel, CONF_KERNEL_SIM);
	assert_string_equal(cfg->daemon.state_dir, "/tmp/s");
	assert_string_equal(cfg->daemon.control_socket, "/tmp/c.sock");
	assert_string_equal(cfg->daemon.alert_command, "/usr/local/sbin/notify");
	assert_string_equal(cfg->daemon.metrics_file, "/var/lib/node_exporter/sakeyd.prom");
	assert_int_equal(cfg->daemon.max_sa_age, 36 * 3600);
	assert_int_equal(cfg->daemon.event_retention, 7 * 86400);
	assert_int_equal(cfg->daemon.refresh_interval, 90);
	assert_int_equal(cfg->nlinks, 3);
	l = &cfg->links[0];
	assert_string_equal(l->name, "tun.6-x_Y");
	assert_int_equal(l->line, 13);
	assert_int_equal(l->local.family, AF_INET6);
	assert_int_equal(l->remote.bytes[15], 2);
	assert_int_equal(l->mode, CONF_MODE_TUNNEL);
	assert_int_equal(l->local_subnet.family, AF_INET6);
	assert_int_equal(l->local_subnet.prefixlen, 48);
	assert_int_equal(l->remote_subnet.bytes[5], 2);
	assert_string_equal(l->alg->name, "aes-cbc-256-hmac-sha384");
	assert_string_equal(l->secret_file, "/etc/sakeyd/tun6.key");
	assert_int_equal(l->rotate_every, 5400);
	assert_false(l->phase_auto);
	assert_int_equal(l->phase, 0);
	assert_false(l->spi_prefix_auto);
	assert_int_equal(l->spi_prefix, 0xabcdef);
	assert_int_equal(l->lead, 120);
	assert_int_equal(l->grace, 180);
	assert_int_equal(l->hard_slack, 7200);
	assert_false(l->policy);
	assert_int_equal(cfg->links[1].spi_prefix, 0x2a);
	assert_false(cfg->links[1].policy);
	assert_true(cfg->links[2].spi_prefix_auto);
	assert_true(cfg->links[2].phase_auto);
	assert_true(cfg->links[2].policy);
	conf_free(cfg);
}

/* Auto prefixes are not compared here (rotate/ resolves and checks them). */
static void auto_spi_prefixes_not_colliding(void **state)
{
	struct config *cfg;

	(void)state;
	cfg = parse_ok(LINK_A "[link b]\nlocal = 192.0.2.1\nremote = 198.51.100.9\n");
	assert_int_equal(cfg->nlinks, 2);
	conf_free(cfg);
}

static void example_config(void **state)
{
	struct conf_diag diag = { 0 };
	struct config *cfg = NULL;
	int ret;

	(void)state;
	ret = conf_load(FIXTURE_DIR "/../../contrib/sakeyd.conf.example", &cfg, &diag);
	dump(&diag);
	assert_int_equal(ret, 0);
	assert_int_equal(diag.count, 0);
	assert_int_equal(cfg->nlinks, 2);
	assert_int_equal(cfg->links[0].mode, CONF_MODE_TRANSPORT);
	assert_int_equal(cfg->links[0].local.family, AF_INET);
	assert_int_equal(cfg->links[1].mode, CONF_MODE_TUNNEL);
	assert_int_equal(cfg->links[1].local.family, AF_INET6);
	conf_free(cfg);
	conf_diag_fini(&diag);
}

static void load_missing_file(void **state)
{
	struct conf_diag diag = { 0 };
	struct config *cfg = NULL;

	(void)state;
	assert_int_equal(conf_load("/nonexistent/sakeyd.conf", &cfg, &diag), -ENOENT);
	assert_null(cfg);
	assert_int_equal(diag.count, 1);
	assert_non_null(strstr(diag.msgs[0], "/nonexistent/sakeyd.conf: cannot open"));
	conf_diag_fini(&diag);
	conf_free(NULL);
	conf_diag_fini(NULL);
}

/* ---- Durations ---- */

static void duration_table(void **state)
{
	static const struct {
		const char *text;
		int ret;
		uint64_t secs;
	} cases[] = {
		{ "0s", 0, 0 },
		{ "90s", 0, 90 },
		{ "5m", 0, 300 },
		{ "1h30m", 0, 5400 },
		{ "2d", 0, 172800 },
		{ "1d2h3m4s", 0, 93784 },
		{ "1d4s", 0, 86404 },
		{ "007m", 0, 420 },
		{ "120m", 0, 7200 },
		{ "36500d", 0, 3153600000u },
		{ "3153600000s", 0, 3153600000u },
		{ "36500d1s", -ERANGE, 0 },
		{ "3153600001s", -ERANGE, 0 },
		{ "99999999999999999999999999d", -ERANGE, 0 },
		{ "18446744073709551616s", -ERANGE, 0 },
		{ "", -EINVAL, 0 },
		{ "60", -EINVAL, 0 },
		{ "0", -EINVAL, 0 },
		{ "-5s", -EINVAL, 0 },
		{ "+5s", -EINVAL, 0 },
		{ "5", -EINVAL, 0 },
		{ "s", -EINVAL, 0 },
		{ "5S", -EINVAL, 0 },
		{ "5 s", -EINVAL, 0 },
		{ " 5s", -EINVAL, 0 },
		{ "5s ", -EINVAL, 0 },
		{ "1h1h", -EINVAL, 0 },
		{ "30m1h", -EINVAL, 0 },
		{ "1w", -EINVAL, 0 },
		{ "1.5h", -EINVAL, 0 },
		{ "1h30", -EINVAL, 0 },
		{ "0x10s", -EINVAL, 0 },
		{ "1ms", -EINVAL, 0 },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint64_t secs = 12345;
		int ret = conf_parse_duration(cases[i].text, &secs);

		if (ret != cases[i].ret)
			print_message("'%s': %d\n", cases[i].text, ret);
		assert_int_equal(ret, cases[i].ret);
		if (ret == 0)
			assert_int_equal(secs, cases[i].secs);
		else
			assert_int_equal(secs, 12345); /* untouched on error */
	}
	assert_int_equal(conf_parse_duration(NULL, &(uint64_t){ 0 }), -EINVAL);
}

static void duration_format(void **state)
{
	static const struct {
		uint64_t secs;
		const char *text;
	} cases[] = {
		{ 0, "0s" },	   { 59, "59s" },	{ 60, "1m" },
		{ 5400, "1h30m" }, { 93784, "1d2h3m4s" }, { 3153600000u, "36500d" },
	};
	char buf[CONF_DURATION_STRLEN];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint64_t back;

		assert_string_equal(conf_format_duration(cases[i].secs, buf), cases[i].text);
		assert_int_equal(conf_parse_duration(buf, &back), 0);
		assert_int_equal(back, cases[i].secs);
	}
	assert_non_null(conf_format_duration(UINT64_MAX, buf));
}

/* ---- The algorithm table (DESIGN.md, Key schedule v1, unchanged in v2) ---- */

static void algorithm_table(void **state)
{
	const struct conf_alg *a;
	size_t n = 0;

	(void)state;
	for (a = conf_algs; a->name; a++) {
		n++;
		assert_int_equal(a->keymat_len, a->enc_key_len + a->auth_key_len);
		assert_int_equal(a->pfkey_ok, a->pfkey_why == NULL);
		assert_ptr_equal(conf_alg_by_name(a->name), a);
	}
	assert_int_equal(n, 5);
	assert_null(conf_alg_by_name("aes"));
	assert_null(conf_alg_by_name(NULL));

	a = conf_alg_by_name("aes-gcm-128");
	assert_int_equal(a->keymat_len, 20);
	assert_int_equal(a->enc_key_len, 20);
	assert_int_equal(a->icv_bits, 128);
	assert_string_equal(a->xfrm_aead, "rfc4106(gcm(aes))");
	assert_null(a->xfrm_enc);
	assert_false(a->pfkey_ok);
	assert_non_null(strstr(a->pfkey_why, "ENOSYS"));
	assert_non_null(strstr(a->pfkey_why, "aes-cbc-256-hmac-sha512"));

	a = conf_alg_by_name("aes-gcm-256");
	assert_int_equal(a->keymat_len, 36);
	assert_int_equal(a->icv_bits, 128);
	assert_string_equal(a->xfrm_aead, "rfc4106(gcm(aes))");
	assert_false(a->pfkey_ok);

	a = conf_alg_by_name("aes-cbc-256-hmac-sha256");
	assert_int_equal(a->keymat_len, 64);
	assert_int_equal(a->enc_key_len, 32);
	assert_int_equal(a->auth_key_len, 32);
	assert_int_equal(a->icv_bits, 128);
	assert_string_equal(a->xfrm_enc, "cbc(aes)");
	assert_string_equal(a->xfrm_auth, "hmac(sha256)");
	assert_null(a->xfrm_aead);
	assert_false(a->pfkey_ok);
	assert_non_null(strstr(a->pfkey_why, "96-bit"));

	a = conf_alg_by_name("aes-cbc-256-hmac-sha384");
	assert_int_equal(a->keymat_len, 80);
	assert_int_equal(a->auth_key_len, 48);
	assert_int_equal(a->icv_bits, 192);
	assert_string_equal(a->xfrm_auth, "hmac(sha384)");
	assert_int_equal(a->sadb_ealg, 12);
	assert_int_equal(a->sadb_aalg, 6);
	assert_true(a->pfkey_ok);

	a = conf_alg_by_name("aes-cbc-256-hmac-sha512");
	assert_int_equal(a->keymat_len, 96);
	assert_int_equal(a->auth_key_len, 64);
	assert_int_equal(a->icv_bits, 256);
	assert_string_equal(a->xfrm_auth, "hmac(sha512)");
	assert_int_equal(a->sadb_ealg, 12);
	assert_int_equal(a->sadb_aalg, 7);
	assert_true(a->pfkey_ok);
}

static void addr_len(void **state)
{
	struct conf_addr a = { .family = AF_INET };

	(void)state;
	assert_int_equal(conf_addr_len(&a), 4);
	a.family = AF_INET6;
	assert_int_equal(conf_addr_len(&a), 16);
	a.family = 0;
	assert_int_equal(conf_addr_len(&a), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(unknown_key_daemon),
		cmocka_unit_test(unknown_key_link),
		cmocka_unit_test(daemon_key_in_link),
		cmocka_unit_test(link_key_in_daemon),
		cmocka_unit_test(unknown_section),
		cmocka_unit_test(key_outside_section),
		cmocka_unit_test(duplicate_key),
		cmocka_unit_test(duplicate_daemon_section),
		cmocka_unit_test(duplicate_link),
		cmocka_unit_test(link_without_name),
		cmocka_unit_test(link_without_name_blank),
		cmocka_unit_test(link_invalid_name),
		cmocka_unit_test(link_name_with_space),
		cmocka_unit_test(link_name_too_long),
		cmocka_unit_test(section_unclosed),
		cmocka_unit_test(section_trailing_text),
		cmocka_unit_test(not_key_value),
		cmocka_unit_test(empty_key),
		cmocka_unit_test(bad_key_chars),
		cmocka_unit_test(duration_no_unit),
		cmocka_unit_test(duration_bad_unit),
		cmocka_unit_test(duration_negative),
		cmocka_unit_test(duration_empty),
		cmocka_unit_test(duration_out_of_order),
		cmocka_unit_test(duration_space),
		cmocka_unit_test(duration_overflow),
		cmocka_unit_test(rotate_every_zero),
		cmocka_unit_test(refresh_interval_zero),
		cmocka_unit_test(hostname_local),
		cmocka_unit_test(hostname_remote),
		cmocka_unit_test(address_with_prefix),
		cmocka_unit_test(address_unspecified),
		cmocka_unit_test(mixed_families),
		cmocka_unit_test(local_equals_remote),
		cmocka_unit_test(missing_local),
		cmocka_unit_test(missing_remote),
		cmocka_unit_test(lead_grace_too_long),
		cmocka_unit_test(lead_alone_too_long),
		cmocka_unit_test(phase_too_big),
		cmocka_unit_test(spi_prefix_not_hex),
		cmocka_unit_test(spi_prefix_decimal),
		cmocka_unit_test(spi_prefix_too_big),
		cmocka_unit_test(spi_prefix_zero),
		cmocka_unit_test(spi_prefix_collision),
		cmocka_unit_test(unknown_algorithm),
		cmocka_unit_test(gcm_on_pfkey),
		cmocka_unit_test(esn_on_pfkey),
		cmocka_unit_test(replay_on_pfkey),
		cmocka_unit_test(replay_zero),
		cmocka_unit_test(replay_huge),
		cmocka_unit_test(replay_signed),
		cmocka_unit_test(replay_word),
		cmocka_unit_test(esn_maybe),
		cmocka_unit_test(xfrm_settings),
		cmocka_unit_test(sha256_on_sim),
		cmocka_unit_test(tunnel_without_subnets),
		cmocka_unit_test(subnet_in_transport),
		cmocka_unit_test(subnet_family_mismatch),
		cmocka_unit_test(subnet_bad_prefix),
		cmocka_unit_test(subnet_no_prefix),
		cmocka_unit_test(subnet_host_bits),
		cmocka_unit_test(subnet_hostname),
		cmocka_unit_test(bad_mode),
		cmocka_unit_test(bad_kernel),
		cmocka_unit_test(bad_policy),
		cmocka_unit_test(relative_state_dir),
		cmocka_unit_test(relative_secret_file),
		cmocka_unit_test(relative_alert_command),
		cmocka_unit_test(control_socket_too_long),
		cmocka_unit_test(sim_connect_without_sim),
		cmocka_unit_test(sim_connect_with_sim_socket),
		cmocka_unit_test(sim_connect_relative),
		cmocka_unit_test(sim_connect_too_long),
		cmocka_unit_test(sim_connect_parsed),
		cmocka_unit_test(line_too_long),
		cmocka_unit_test(nul_byte),
		cmocka_unit_test(all_errors_reported),
		cmocka_unit_test(diag_is_capped),
		cmocka_unit_test(messages_escape_input),
		cmocka_unit_test(defaults),
		cmocka_unit_test(lead_grace_default_short_period),
		cmocka_unit_test(full_config),
		cmocka_unit_test(auto_spi_prefixes_not_colliding),
		cmocka_unit_test(example_config),
		cmocka_unit_test(load_missing_file),
		cmocka_unit_test(duration_table),
		cmocka_unit_test(duration_format),
		cmocka_unit_test(algorithm_table),
		cmocka_unit_test(addr_len),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
