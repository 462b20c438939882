/* SPDX-License-Identifier: ISC */
/* Unit tests of conf.d (conf/conf.c: conf_load, conf_load_daemon): order, file:line, duplicates, trust. */
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

#include "conf/conf.h"
#include "fixture.h"

#define NOBODY 65534
#define HEX_0_31 "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n"

static char dir[64];

static int setup(void **state)
{
	char path[128];

	(void)state;
	strcpy(dir, "/tmp/sakeyd-test-confd-XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	snprintf(path, sizeof(path), "%s/conf.d", dir);
	return mkdir(path, 0755);
}

static int teardown(void **state)
{
	(void)state;
	fixture_rm_tree(dir);
	return 0;
}

/* dir/name, in one of four static buffers. */
static const char *at(const char *name)
{
	static char bufs[4][256];
	static unsigned next;
	char *b = bufs[next++ % 4];

	snprintf(b, sizeof(bufs[0]), "%s/%s", dir, name);
	return b;
}


static void dump(const struct conf_diag *diag)
{
	for (size_t i = 0; i < diag->count; i++)
		print_message("  diag: %s\n", diag->msgs[i]);
}

/* Whether a message starts with "FILE:LINE: " (dir/name) and contains phrase. */
static bool has_msg(const struct conf_diag *diag, const char *name, unsigned line,
		    const char *phrase)
{
	char prefix[300];

	if (line)
		snprintf(prefix, sizeof(prefix), "%s:%u: ", at(name), line);
	else
		snprintf(prefix, sizeof(prefix), "%s: ", at(name));
	for (size_t i = 0; i < diag->count; i++)
		if (!strncmp(diag->msgs[i], prefix, strlen(prefix)) &&
		    strstr(diag->msgs[i], phrase))
			return true;
	print_message("  missing: %s... %s\n", prefix, phrase);
	dump(diag);
	return false;
}

static const struct conf_link *find(const struct config *cfg, const char *name)
{
	for (size_t i = 0; i < cfg->nlinks; i++)
		if (!strcmp(cfg->links[i].name, name))
			return &cfg->links[i];
	return NULL;
}

#define MAIN "[daemon]\nkernel = sim\n\n[link main]\nlocal = 192.0.2.1\nremote = 192.0.2.2\n"

/* conf.d files are read after the main file, in strcmp order; others are skipped. */
static void order_and_skipped(void **state)
{
	struct conf_diag diag = { 0 };
	struct config *cfg = NULL;
	const struct conf_link *l;

	(void)state;
	fixture_write_file(at("sakeyd.conf"), MAIN, 0644);
	fixture_write_file(at("conf.d/20-b.conf"), "[link b]\nlocal = 192.0.2.1\nremote = 192.0.2.4\n",
		   0644);
	fixture_write_file(at("conf.d/10-a.conf"),
		   "# a role's link\n\n[link a]\nlocal = 192.0.2.1\nremote = 192.0.2.3\n", 0644);
	/* Not read: another suffix, an editor's backup, a dotfile. */
	fixture_write_file(at("conf.d/30-c.conf.dpkg-old"), "[daemon]\nbroken\n", 0644);
	fixture_write_file(at("conf.d/40-d.conf~"), "broken\n", 0644);
	fixture_write_file(at("conf.d/.50-e.conf"), "broken\n", 0644);

	assert_int_equal(conf_load(at("sakeyd.conf"), &cfg, &diag), 0);
	dump(&diag);
	assert_int_equal(diag.count, 0);
	assert_int_equal(cfg->nlinks, 3);
	assert_string_equal(cfg->links[0].name, "main");
	assert_string_equal(cfg->links[1].name, "a");
	assert_string_equal(cfg->links[2].name, "b");
	assert_int_equal(cfg->ndropins, 2);
	assert_string_equal(cfg->dropins[0], at("conf.d/10-a.conf"));
	assert_string_equal(cfg->dropins[1], at("conf.d/20-b.conf"));
	l = find(cfg, "a");
	assert_string_equal(l->file, at("conf.d/10-a.conf"));
	assert_int_equal(l->line, 3);
	assert_string_equal(find(cfg, "main")->file, cfg->path);
	/* The main file's [daemon] holds for the links of conf.d. */
	assert_int_equal(cfg->daemon.kernel, CONF_KERNEL_SIM);
	conf_free(cfg);
	conf_diag_fini(&diag);

	/* Without a conf.d directory, the main file alone. */
	unlink(at("conf.d/10-a.conf"));
	unlink(at("conf.d/20-b.conf"));
	unlink(at("conf.d/30-c.conf.dpkg-old"));
	unlink(at("conf.d/40-d.conf~"));
	unlink(at("conf.d/.50-e.conf"));
	assert_int_equal(rmdir(at("conf.d")), 0);
	assert_int_equal(conf_load(at("sakeyd.conf"), &cfg, &diag), 0);
	assert_int_equal(cfg->nlinks, 1);
	assert_int_equal(cfg->ndropins, 0);
	conf_free(cfg);
	conf_diag_fini(&diag);
}

/* Every error names the file it is in and its line there; each file is reported. */
static void errors_name_their_file(void **state)
{
	struct conf_diag diag = { 0 };
	struct config *cfg = (struct config *)1;

	(void)state;
	fixture_write_file(at("sakeyd.conf"), MAIN, 0644);
	fixture_write_file(at("conf.d/a.conf"),
		   "[link a]\nlocal = 192.0.2.1\nremote = 192.0.2.3\nrotate_every = 60\n", 0644);
	fixture_write_file(at("conf.d/b.conf"),
		   "\n[link b]\nlocal = 192.0.2.1\nremote = 192.0.2.4\nmode = tunnel\n", 0644);
	fixture_write_file(at("conf.d/c.conf"), "[daemon]\nmax_sa_age = 1h\n", 0644);
	fixture_write_file(at("conf.d/d.conf"), "remote = 192.0.2.9\n", 0644);
	assert_int_equal(conf_load(at("sakeyd.conf"), &cfg, &diag), -EINVAL);
	assert_null(cfg);
	/* A value's error, and a link's validation, at the lines of its own file. */
	assert_true(has_msg(&diag, "conf.d/a.conf", 4, "has no unit"));
	assert_true(has_msg(&diag, "conf.d/b.conf", 5, "needs local_subnet and remote_subnet"));
	/* [daemon] belongs in the main file, and says so. */
	assert_true(has_msg(&diag, "conf.d/c.conf", 1, "conf.d files hold [link NAME] sections"));
	assert_true(has_msg(&diag, "conf.d/c.conf", 1, at("sakeyd.conf")));
	/* A file starts outside any section: a key at its top is not the last file's link's. */
	assert_true(has_msg(&diag, "conf.d/d.conf", 1, "outside any section"));
	assert_int_equal(diag.count, 4);
	conf_diag_fini(&diag);
}

/* A link defined twice across files: the error names both places. */
static void duplicate_across_files(void **state)
{
	struct conf_diag diag = { 0 };
	struct config *cfg = (struct config *)1;
	char first[300];

	(void)state;
	fixture_write_file(at("sakeyd.conf"), MAIN, 0644);
	fixture_write_file(at("conf.d/x.conf"), "\n\n[link main]\nlocal = 192.0.2.1\nremote = 192.0.2.5\n",
		   0644);
	assert_int_equal(conf_load(at("sakeyd.conf"), &cfg, &diag), -EINVAL);
	assert_null(cfg);
	snprintf(first, sizeof(first), "first defined at %s:4", at("sakeyd.conf"));
	assert_true(has_msg(&diag, "conf.d/x.conf", 3, "duplicate link name 'main'"));
	assert_true(has_msg(&diag, "conf.d/x.conf", 3, first));
	assert_int_equal(diag.count, 1);
	conf_diag_fini(&diag);

	/* Between two conf.d files, and an explicit spi_prefix shared across files. */
	fixture_write_file(at("conf.d/x.conf"),
		   "[link p]\nlocal = 192.0.2.1\nremote = 192.0.2.5\nspi_prefix = 0x42\n", 0644);
	fixture_write_file(at("conf.d/y.conf"),
		   "[link p]\nlocal = 192.0.2.1\nremote = 192.0.2.6\n"
		   "[link q]\nlocal = 192.0.2.1\nremote = 192.0.2.7\nspi_prefix = 0x42\n",
		   0644);
	assert_int_equal(conf_load(at("sakeyd.conf"), &cfg, &diag), -EINVAL);
	snprintf(first, sizeof(first), "first defined at %s:1", at("conf.d/x.conf"));
	assert_true(has_msg(&diag, "conf.d/y.conf", 1, first));
	snprintf(first, sizeof(first), "links q and p (%s:4) both use spi_prefix 0x42",
		 at("conf.d/x.conf"));
	assert_true(has_msg(&diag, "conf.d/y.conf", 7, first));
	assert_int_equal(diag.count, 2);
	conf_diag_fini(&diag);
}

/* conf.d files pass the main file's trust checks when the daemon loads them. */
static void untrusted_dropin_refused(void **state)
{
	struct conf_diag diag = { 0 };
	struct config *cfg = NULL;
	char text[512];

	(void)state;
	fixture_write_file(at("l.key"), HEX_0_31, 0600);
	snprintf(text, sizeof(text), "[daemon]\nkernel = sim\nstate_dir = %s\n", at("state"));
	fixture_write_file(at("sakeyd.conf"), text, 0644);
	snprintf(text, sizeof(text),
		 "[link a]\nlocal = 192.0.2.1\nremote = 192.0.2.3\nsecret_file = %s\n",
		 at("l.key"));
	fixture_write_file(at("conf.d/a.conf"), text, 0644);
	assert_int_equal(conf_load_daemon(at("sakeyd.conf"), geteuid(), NULL, &cfg, &diag), 0);
	dump(&diag);
	assert_int_equal(cfg->nlinks, 1);
	assert_non_null(cfg->links[0].secret);
	conf_free(cfg);
	conf_diag_fini(&diag);

	/* Writable by others: refused, naming the conf.d file and the fix. */
	assert_int_equal(chmod(at("conf.d/a.conf"), 0666), 0);
	assert_int_equal(conf_load_daemon(at("sakeyd.conf"), geteuid(), NULL, &cfg, &diag),
			 -EPERM);
	assert_null(cfg);
	assert_true(has_msg(&diag, "conf.d/a.conf", 0, "chmod go-w"));
	conf_diag_fini(&diag);
	/* sactl (conf_load) does not judge trust: it only reads. */
	assert_int_equal(conf_load(at("sakeyd.conf"), &cfg, &diag), 0);
	conf_free(cfg);
	conf_diag_fini(&diag);

	/* Owned by another user (root only: chown). */
	if (geteuid() != 0)
		return;
	assert_int_equal(chmod(at("conf.d/a.conf"), 0644), 0);
	assert_int_equal(chown(at("conf.d/a.conf"), NOBODY, NOBODY), 0);
	assert_int_equal(conf_load_daemon(at("sakeyd.conf"), 0, NULL, &cfg, &diag), -EPERM);
	assert_null(cfg);
	assert_true(has_msg(&diag, "conf.d/a.conf", 0, "owned by uid 65534"));
	conf_diag_fini(&diag);
	/* And a conf.d directory others may write to. */
	assert_int_equal(chown(at("conf.d/a.conf"), 0, 0), 0);
	assert_int_equal(chmod(at("conf.d"), 0777), 0);
	assert_int_equal(conf_load_daemon(at("sakeyd.conf"), 0, NULL, &cfg, &diag), -EPERM);
	assert_null(cfg);
	assert_true(has_msg(&diag, "conf.d/a.conf", 0, "chmod go-w"));
	conf_diag_fini(&diag);
}

/* A conf.d entry that cannot be read as a file is an error naming it; the rest still parsed. */
static void unreadable_dropin(void **state)
{
	struct conf_diag diag = { 0 };
	struct config *cfg = (struct config *)1;

	(void)state;
	fixture_write_file(at("sakeyd.conf"), MAIN, 0644);
	assert_int_equal(mkdir(at("conf.d/dir.conf"), 0755), 0);
	fixture_write_file(at("conf.d/z.conf"), "[link z]\nlocal = 192.0.2.1\n", 0644);
	assert_int_equal(conf_load(at("sakeyd.conf"), &cfg, &diag), -EINVAL);
	assert_null(cfg);
	assert_true(has_msg(&diag, "conf.d/dir.conf", 0, "not a regular file"));
	assert_true(has_msg(&diag, "conf.d/z.conf", 1, "no remote address"));
	assert_int_equal(diag.count, 2);
	conf_diag_fini(&diag);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(order_and_skipped),
		T(errors_name_their_file),
		T(duplicate_across_files),
		T(untrusted_dropin_refused),
		T(unreadable_dropin),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
