/* SPDX-License-Identifier: ISC */
/* Unit tests of conf/trust.c: config file, alert_command, state_dir and secret rules, parents. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/crypto.h>

#include "conf/conf.h"
#include "fixture.h"

#define NOBODY 65534
#define HEX_0_31 "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n"

static char dir[64];

static void rm_rf(const char *path)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", path);
	assert_int_equal(system(cmd), 0);
}

static int setup(void **state)
{
	(void)state;
	strcpy(dir, "/tmp/sakeyd-test-trust-XXXXXX");
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	rm_rf(dir);
	return 0;
}

/* dir/name, in one of four static buffers (reused from the fifth call on). */
static const char *at(const char *name)
{
	static char bufs[4][256];
	static unsigned next;
	char *b = bufs[next++ % 4];

	snprintf(b, sizeof(bufs[0]), "%s/%s", dir, name);
	return b;
}


static void need_root(void)
{
	if (geteuid() != 0)
		skip(); /* chown to another user */
}

/* Every message of diag contains one of the phrases, and every phrase is in one. */
static void expect_msgs(const struct conf_diag *diag, ...)
{
	const char *phrase;
	va_list ap;

	for (size_t i = 0; i < diag->count; i++)
		print_message("  diag: %s\n", diag->msgs[i]);
	va_start(ap, diag);
	while ((phrase = va_arg(ap, const char *))) {
		bool found = false;

		for (size_t i = 0; i < diag->count && !found; i++)
			found = strstr(diag->msgs[i], phrase) != NULL;
		if (!found)
			print_message("  missing: %s\n", phrase);
		assert_true(found);
	}
	va_end(ap);
}

/* Checks path as a config file (by fd), expecting want, and the phrases. */
static void config_file(const char *path, uid_t euid, int want, size_t nmsgs, ...)
{
	struct conf_diag diag = { 0 };
	const char *phrase;
	va_list ap;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	assert_true(fd >= 0);
	assert_int_equal(conf_trust_fd(fd, path, CONF_TRUST_CONFIG, euid, NULL, 0, &diag), want);
	close(fd);
	for (size_t i = 0; i < diag.count; i++) {
		print_message("  diag: %s\n", diag.msgs[i]);
		/* "PATH: ...": the location comes first. */
		assert_true(!strncmp(diag.msgs[i], path, strlen(path)));
	}
	assert_int_equal(diag.count, nmsgs);
	va_start(ap, nmsgs);
	while ((phrase = va_arg(ap, const char *))) {
		bool found = false;

		for (size_t i = 0; i < diag.count; i++)
			found |= strstr(diag.msgs[i], phrase) != NULL;
		if (!found)
			print_message("  missing: %s\n", phrase);
		assert_true(found);
	}
	va_end(ap);
	conf_diag_fini(&diag);
}

static void config_good(void **state)
{
	const char *conf = at("sakeyd.conf");

	(void)state;
	fixture_write_file(conf, "[daemon]\n", 0644);
	config_file(conf, geteuid(), 0, 0, NULL);
	/* The daemon's own user may own it too, and /tmp (sticky, 1777) is above it. */
	fixture_write_file(conf, "[daemon]\n", 0600);
	config_file(conf, geteuid(), 0, 0, NULL);
}

static void config_world_writable(void **state)
{
	const char *conf = at("sakeyd.conf");
	char fix[300];

	(void)state;
	fixture_write_file(conf, "[daemon]\n", 0666);
	snprintf(fix, sizeof(fix), "fix: chmod go-w %s", conf);
	config_file(conf, geteuid(), -EPERM, 1, "mode 0666", "may change it", fix, NULL);
	fixture_write_file(conf, "[daemon]\n", 0620);
	config_file(conf, geteuid(), -EPERM, 1, "mode 0620", NULL);
}

static void config_owned_by_nobody(void **state)
{
	const char *conf = at("sakeyd.conf");
	char fix[300];

	(void)state;
	need_root();
	fixture_write_file(conf, "[daemon]\n", 0644);
	assert_int_equal(chown(conf, NOBODY, NOBODY), 0);
	snprintf(fix, sizeof(fix), "fix: chown root: %s", conf);
	config_file(conf, 0, -EPERM, 1, "owned by uid 65534, not by root", fix, NULL);
	/* Owner and mode: both said at once. */
	assert_int_equal(chmod(conf, 0666), 0);
	config_file(conf, 0, -EPERM, 2, "owned by uid 65534", "mode 0666", NULL);
	/* A daemon running as nobody may read a config nobody owns. */
	assert_int_equal(chmod(conf, 0644), 0);
	config_file(conf, NOBODY, 0, 0, NULL);
}

static void config_parent_group_writable(void **state)
{
	const char *sub = at("etc"), *conf = at("etc/sakeyd.conf");
	char fix[300];

	(void)state;
	assert_int_equal(mkdir(sub, 0700), 0);
	fixture_write_file(conf, "[daemon]\n", 0644);
	assert_int_equal(chmod(sub, 0770), 0);
	snprintf(fix, sizeof(fix), "fix: chmod go-w %s", sub);
	config_file(conf, geteuid(), -EPERM, 1, "directory", "has mode 0770", fix,
		    "could replace the configuration file", NULL);
	/* Two levels wrong: each is reported. */
	assert_int_equal(chmod(dir, 0757), 0);
	config_file(conf, geteuid(), -EPERM, 2, "has mode 0770", "has mode 0757", NULL);
	assert_int_equal(chmod(dir, 0700), 0);
	/* Sticky: others may create entries but not rename or remove ours. */
	assert_int_equal(chmod(sub, 01777), 0);
	config_file(conf, geteuid(), 0, 0, NULL);
	assert_int_equal(chmod(sub, 0755), 0);
	config_file(conf, geteuid(), 0, 0, NULL);
}

static void config_parent_owned_by_nobody(void **state)
{
	const char *sub = at("etc"), *conf = at("etc/sakeyd.conf");
	char fix[300];

	(void)state;
	need_root();
	assert_int_equal(mkdir(sub, 0755), 0);
	fixture_write_file(conf, "[daemon]\n", 0644);
	assert_int_equal(chown(sub, NOBODY, NOBODY), 0);
	snprintf(fix, sizeof(fix), "fix: chown root: %s", sub);
	config_file(conf, 0, -EPERM, 1, "is owned by uid 65534, who could replace", fix, NULL);
	/* Even sticky: the owner of a sticky directory may remove anything in it. */
	assert_int_equal(chmod(sub, 01777), 0);
	config_file(conf, 0, -EPERM, 1, "is owned by uid 65534", NULL);
}

/* A symbolic link on the way: the directories of the real path are the ones checked. */
static void config_through_symlink(void **state)
{
	const char *real = at("real"), *link = at("link"), *conf = at("link/sakeyd.conf");

	(void)state;
	assert_int_equal(mkdir(real, 0700), 0);
	assert_int_equal(chmod(real, 0770), 0);
	assert_int_equal(symlink(real, link), 0);
	fixture_write_file(conf, "[daemon]\n", 0644);
	config_file(conf, geteuid(), -EPERM, 1, "/real (above", "has mode 0770", NULL);
}

/* A config with alert_command and state_dir set at known lines; returns it parsed. */
static struct config *config_with(const char *alert, const char *state)
{
	struct conf_diag diag = { 0 };
	struct config *cfg = NULL;
	char text[1024];

	snprintf(text, sizeof(text), "[daemon]\nkernel = sim\n%s%s\nstate_dir = %s\n",
		 alert ? "alert_command = " : "# none", alert ? alert : "", state);
	assert_int_equal(conf_parse("/etc/t.conf", text, strlen(text), &cfg, &diag), 0);
	conf_diag_fini(&diag);
	assert_int_equal(cfg->daemon.alert_command_line, alert ? 3 : 0);
	assert_int_equal(cfg->daemon.state_dir_line, 4);
	return cfg;
}

/* conf_check_files() of that config: want, and every message at "/etc/t.conf:LINE:". */
static void check_files(const char *alert, const char *state, uid_t euid, int want, size_t n,
			unsigned line, const char *p1, const char *p2)
{
	struct config *cfg = config_with(alert, state);
	struct conf_diag diag = { 0 };
	char where[32];

	snprintf(where, sizeof(where), "/etc/t.conf:%u: ", line);
	assert_int_equal(conf_check_files(cfg, euid, &diag), want);
	if (p1)
		expect_msgs(&diag, p1, NULL);
	if (p2)
		expect_msgs(&diag, p2, NULL);
	assert_int_equal(diag.count, n);
	for (size_t i = 0; i < diag.count; i++)
		assert_true(!strncmp(diag.msgs[i], where, strlen(where)));
	conf_diag_fini(&diag);
	conf_free(cfg);
}

static void alert_command_good(void **state)
{
	const char *hook = at("hook"), *st = at("state");

	(void)state;
	fixture_write_file(hook, "#!/bin/sh\n", 0755);
	check_files(hook, st, geteuid(), 0, 0, 0, NULL, NULL);
	fixture_write_file(hook, "#!/bin/sh\n", 0700);
	check_files(hook, st, geteuid(), 0, 0, 0, NULL, NULL);
	/* A symbolic link to a good program is good (/usr/local/bin/x -> ...). */
	assert_int_equal(symlink(hook, at("hook-link")), 0);
	check_files(at("hook-link"), st, geteuid(), 0, 0, 0, NULL, NULL);
}

static void alert_command_owned_by_nobody(void **state)
{
	const char *hook = at("hook"), *st = at("state");
	char fix[300];

	(void)state;
	need_root();
	fixture_write_file(hook, "#!/bin/sh\n", 0755);
	assert_int_equal(chown(hook, NOBODY, NOBODY), 0);
	snprintf(fix, sizeof(fix), "fix: chown root: %s", hook);
	check_files(hook, st, 0, -EPERM, 1, 3, "alert_command /tmp/sakeyd-test-trust-",
		    "is owned by uid 65534, not by root: its owner can change it");
	check_files(hook, st, 0, -EPERM, 1, 3, fix, NULL);
}

static void alert_command_group_writable(void **state)
{
	const char *hook = at("hook"), *st = at("state");
	char fix[300];

	(void)state;
	fixture_write_file(hook, "#!/bin/sh\n", 0775);
	snprintf(fix, sizeof(fix), "fix: chmod go-w %s", hook);
	check_files(hook, st, geteuid(), -EPERM, 1, 3, "mode 0775", fix);
	fixture_write_file(hook, "#!/bin/sh\n", 0757);
	check_files(hook, st, geteuid(), -EPERM, 1, 3, "mode 0757", NULL);
}

/* The link is fine, its target is not: the target is what runs. */
static void alert_command_symlink_to_bad(void **state)
{
	const char *sub = at("bin"), *hook = at("bin/hook"), *link = at("hook-link");

	(void)state;
	assert_int_equal(mkdir(sub, 0777), 0);
	assert_int_equal(chmod(sub, 0777), 0);
	fixture_write_file(hook, "#!/bin/sh\n", 0755);
	assert_int_equal(symlink(hook, link), 0);
	check_files(link, at("state"), geteuid(), -EPERM, 1, 3, "/bin (above", "mode 0777");
}

static void alert_command_not_runnable(void **state)
{
	const char *hook = at("hook"), *st = at("state");

	(void)state;
	fixture_write_file(hook, "#!/bin/sh\n", 0644);
	check_files(hook, st, geteuid(), -EACCES, 1, 3, "is not executable", "chmod 755");
	unlink(hook);
	check_files(hook, st, geteuid(), -ENOENT, 1, 3, "does not exist",
		    "remove the alert_command line");
	assert_int_equal(mkdir(hook, 0755), 0);
	check_files(hook, st, geteuid(), -EINVAL, 1, 3, "is not a regular file (a directory)",
		    NULL);
}

/* The parser refuses a relative alert_command at its line. */
static void alert_command_relative(void **state)
{
	static const char text[] = "[daemon]\n\nalert_command = hooks/alert\n";
	struct conf_diag diag = { 0 };
	struct config *cfg = NULL;

	(void)state;
	assert_int_equal(conf_parse("/etc/t.conf", text, strlen(text), &cfg, &diag), -EINVAL);
	assert_int_equal(diag.count, 1);
	expect_msgs(&diag, "/etc/t.conf:3: alert_command must be an absolute path", NULL);
	conf_diag_fini(&diag);
}

static void state_dir_rules(void **state)
{
	const char *st = at("state");
	char fix[300];

	(void)state;
	/* Missing: the daemon creates it 0700; its parents are checked. */
	check_files(NULL, st, geteuid(), 0, 0, 0, NULL, NULL);
	assert_int_equal(chmod(dir, 0777), 0);
	check_files(NULL, st, geteuid(), -EPERM, 1, 4, "has mode 0777", "could replace the state_dir");
	assert_int_equal(chmod(dir, 0700), 0);

	assert_int_equal(mkdir(st, 0700), 0);
	check_files(NULL, st, geteuid(), 0, 0, 0, NULL, NULL);
	assert_int_equal(chmod(st, 0755), 0);
	check_files(NULL, st, geteuid(), 0, 0, 0, NULL, NULL);
	assert_int_equal(chmod(st, 0777), 0);
	snprintf(fix, sizeof(fix), "fix: chmod go-w %s", st);
	check_files(NULL, st, geteuid(), -EPERM, 1, 4, "state_dir /tmp/", fix);
	/* Sticky does not help the directory itself: anyone may add files to it. */
	assert_int_equal(chmod(st, 01777), 0);
	check_files(NULL, st, geteuid(), -EPERM, 1, 4, "mode 1777", NULL);
	rmdir(st);
	fixture_write_file(st, "", 0600);
	check_files(NULL, st, geteuid(), -EINVAL, 1, 4, "is not a directory (a regular file)",
		    NULL);
}

static void state_dir_owned_by_nobody(void **state)
{
	const char *st = at("state");
	char fix[300];

	(void)state;
	need_root();
	assert_int_equal(mkdir(st, 0700), 0);
	assert_int_equal(chown(st, NOBODY, NOBODY), 0);
	snprintf(fix, sizeof(fix), "fix: chown root: %s", st);
	check_files(NULL, st, 0, -EPERM, 1, 4, "is owned by uid 65534, not by root", fix);
	/* The daemon's own user, not root, must own it (root may not stand in). */
	assert_int_equal(chown(st, 0, 0), 0);
	snprintf(fix, sizeof(fix), "fix: chown %d: %s", NOBODY, st);
	check_files(NULL, st, NOBODY, -EPERM, 1, 4, "not by uid 65534", fix);
}

/* A secret in a directory others can write: refused (they could put their own key there). */
static void secret_parent_writable(void **state)
{
	const char *sub = at("keys"), *key = at("keys/l.key");
	struct conf_diag diag = { 0 };
	uint8_t *secret = NULL;

	(void)state;
	assert_int_equal(mkdir(sub, 0700), 0);
	fixture_write_file(key, HEX_0_31, 0600);
	assert_int_equal(conf_load_secret(key, geteuid(), &secret, &diag), 0);
	assert_int_equal(diag.count, 0);
	OPENSSL_secure_clear_free(secret, CONF_SECRET_LEN);
	assert_int_equal(chmod(sub, 0730), 0);
	assert_int_equal(conf_load_secret(key, geteuid(), &secret, &diag), -EPERM);
	assert_null(secret);
	expect_msgs(&diag, "keys (above", "mode 0730", "could replace the secret file", NULL);
	assert_int_equal(diag.count, 1);
	conf_diag_fini(&diag);
}

/* The secret's rules through the shared checker: links, owner, mode, each said. */
static void secret_rules(void **state)
{
	const char *key = at("l.key");
	struct conf_diag diag = { 0 };
	int fd;

	(void)state;
	fixture_write_file(key, HEX_0_31, 0640);
	assert_int_equal(link(key, at("other.key")), 0);
	fd = open(key, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(conf_trust_fd(fd, key, CONF_TRUST_SECRET, geteuid() + 1, NULL, 0, &diag),
			 -EPERM);
	close(fd);
	expect_msgs(&diag, "2 names (hard links)", "is owned by uid", "mode 0640", "chmod 600",
		    NULL);
	assert_int_equal(diag.count, 3);
	conf_diag_fini(&diag);
}

/* conf_load_daemon(): every refusal of every file at once, and nothing loaded. */
static void load_daemon_reports_all(void **state)
{
	const char *conf = at("sakeyd.conf"), *hook = at("hook"), *key = at("l.key");
	struct conf_diag diag = { 0 };
	struct config *cfg = (struct config *)1;
	char text[1024], st[128];

	(void)state;
	snprintf(text, sizeof(text),
		 "[daemon]\nkernel = sim\nstate_dir = %s/state\nalert_command = %s\n"
		 "[link l]\nlocal = 192.0.2.1\nremote = 192.0.2.2\nsecret_file = %s\n",
		 dir, hook, key);
	fixture_write_file(conf, text, 0644);
	fixture_write_file(hook, "#!/bin/sh\n", 0755);
	fixture_write_file(key, HEX_0_31, 0600);
	assert_int_equal(conf_load_daemon(conf, geteuid(), NULL, &cfg, &diag), 0);
	assert_int_equal(diag.count, 0);
	assert_non_null(cfg->links[0].secret);
	conf_free(cfg);

	assert_int_equal(chmod(conf, 0666), 0);
	assert_int_equal(chmod(hook, 0777), 0);
	snprintf(st, sizeof(st), "%s/state", dir);
	assert_int_equal(mkdir(st, 0777), 0);
	assert_int_equal(chmod(st, 0777), 0);
	assert_int_equal(chmod(key, 0644), 0);
	assert_int_equal(conf_load_daemon(conf, geteuid(), NULL, &cfg, &diag), -EPERM);
	assert_null(cfg);
	expect_msgs(&diag, "sakeyd.conf: configuration file has mode 0666",
		    "sakeyd.conf:4: alert_command", "sakeyd.conf:3: state_dir",
		    "l.key: secret file has mode 0644", NULL);
	assert_int_equal(diag.count, 4);
	conf_diag_fini(&diag);

	/* A config that is only untrusted: still refused. */
	assert_int_equal(chmod(hook, 0755), 0);
	assert_int_equal(chmod(st, 0700), 0);
	assert_int_equal(chmod(key, 0600), 0);
	assert_int_equal(conf_load_daemon(conf, geteuid(), NULL, &cfg, &diag), -EPERM);
	assert_null(cfg);
	assert_int_equal(diag.count, 1);
	conf_diag_fini(&diag);
}

/* Checks path as a secret (by fd) with memo, expecting want and diag.count == nmsgs. */
static void secret_memo(const char *path, struct conf_trust_memo *memo, int want, size_t nmsgs,
			const char *phrase)
{
	struct conf_diag diag = { 0 };
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);

	assert_true(fd >= 0);
	assert_int_equal(conf_trust_fd_memo(fd, path, CONF_TRUST_SECRET, geteuid(), NULL, 0, memo,
					    &diag),
			 want);
	close(fd);
	if (phrase)
		expect_msgs(&diag, phrase, NULL);
	assert_int_equal(diag.count, nmsgs);
	conf_diag_fini(&diag);
}

/* A directory the memo holds spares the walk, never a file's own checks. */
static void memo_checks_every_file(void **state)
{
	struct conf_trust_memo memo = { 0 };
	char fix[160];

	(void)state;
	assert_int_equal(mkdir(at("keys"), 0700), 0);
	fixture_write_file(at("keys/a.key"), HEX_0_31, 0600);
	fixture_write_file(at("keys/b.key"), HEX_0_31, 0640);
	secret_memo(at("keys/a.key"), &memo, 0, 0, NULL);
	assert_int_equal(memo.n, 1);
	snprintf(fix, sizeof(fix), "fix: chmod 600 %s", at("keys/b.key"));
	secret_memo(at("keys/b.key"), &memo, -EPERM, 1, fix);
	assert_int_equal(chmod(at("keys/b.key"), 0600), 0);
	secret_memo(at("keys/b.key"), &memo, 0, 0, NULL);
	assert_int_equal(memo.n, 1);
	conf_trust_memo_fini(&memo);
}

/* A refused directory is not remembered: every file under it says so. */
static void memo_keeps_no_refused_directory(void **state)
{
	struct conf_trust_memo memo = { 0 };

	(void)state;
	assert_int_equal(mkdir(at("open"), 0700), 0);
	assert_int_equal(chmod(at("open"), 0777), 0);
	fixture_write_file(at("open/a.key"), HEX_0_31, 0600);
	fixture_write_file(at("open/b.key"), HEX_0_31, 0600);
	secret_memo(at("open/a.key"), &memo, -EPERM, 1, "has mode 0777");
	secret_memo(at("open/b.key"), &memo, -EPERM, 1, "has mode 0777");
	assert_int_equal(memo.n, 0);
	conf_trust_memo_fini(&memo);
}

/*
 * The directory as written leads elsewhere now (a symbolic link moved to a
 * directory others may write): the memo's real path no longer names the
 * file, so the whole walk runs and refuses it.
 */
static void memo_follows_a_moved_link(void **state)
{
	struct conf_trust_memo memo = { 0 };

	(void)state;
	assert_int_equal(mkdir(at("good"), 0700), 0);
	assert_int_equal(mkdir(at("bad"), 0700), 0);
	assert_int_equal(chmod(at("bad"), 0777), 0);
	fixture_write_file(at("good/k.key"), HEX_0_31, 0600);
	fixture_write_file(at("bad/k.key"), HEX_0_31, 0600);
	assert_int_equal(symlink(at("good"), at("keys")), 0);
	secret_memo(at("keys/k.key"), &memo, 0, 0, NULL);
	assert_int_equal(memo.n, 1);
	assert_int_equal(unlink(at("keys")), 0);
	assert_int_equal(symlink(at("bad"), at("keys")), 0);
	secret_memo(at("keys/k.key"), &memo, -EPERM, 1, "has mode 0777");
	conf_trust_memo_fini(&memo);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(config_good),
		T(config_world_writable),
		T(config_owned_by_nobody),
		T(config_parent_group_writable),
		T(config_parent_owned_by_nobody),
		T(config_through_symlink),
		T(alert_command_good),
		T(alert_command_owned_by_nobody),
		T(alert_command_group_writable),
		T(alert_command_symlink_to_bad),
		T(alert_command_not_runnable),
		T(alert_command_relative),
		T(state_dir_rules),
		T(state_dir_owned_by_nobody),
		T(secret_parent_writable),
		T(secret_rules),
		T(load_daemon_reports_all),
		T(memo_checks_every_file),
		T(memo_keeps_no_refused_directory),
		T(memo_follows_a_moved_link),
	};
#undef T

	return cmocka_run_group_tests(tests, NULL, NULL);
}
