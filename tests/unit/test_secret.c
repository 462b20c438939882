/* SPDX-License-Identifier: ISC */
/* Unit tests of conf/secret.c: every refusal of a secret file, decoding, the file-system table. */
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

#define HEX_0_31 "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
#define B64_0_31 "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="

static char dir[64];
static char path[128];

static int setup(void **state)
{
	(void)state;
	strcpy(dir, "/tmp/sakeyd-test-secret-XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	snprintf(path, sizeof(path), "%s/k.key", dir);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	unlink(path);
	rmdir(dir);
	return 0;
}

/* Writes path with the given content and mode, owned by the current user. */
static void write_key(const char *content, size_t len, mode_t mode)
{
	int fd;

	unlink(path);
	rmdir(path);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, content, len), (ssize_t)len);
	assert_int_equal(fchmod(fd, mode), 0);
	close(fd);
}

static void write_key_str(const char *content)
{
	write_key(content, strlen(content), 0600);
}

/* Loads path expecting `want`; with an error, exactly one message naming the file
 * and containing every phrase given (NULL-terminated). */
static uint8_t *load(uid_t uid, int want, ...)
{
	struct conf_diag diag = { 0 };
	uint8_t *secret = (uint8_t *)1;
	const char *phrase;
	va_list ap;
	int ret;

	ret = conf_load_secret(path, uid, &secret, &diag);
	for (size_t i = 0; i < diag.count; i++)
		print_message("  diag: %s\n", diag.msgs[i]);
	assert_int_equal(ret, want);
	if (want) {
		assert_null(secret);
		assert_int_equal(diag.count, 1);
		assert_true(!strncmp(diag.msgs[0], path, strlen(path)));
		va_start(ap, want);
		while ((phrase = va_arg(ap, const char *)))
			assert_non_null(strstr(diag.msgs[0], phrase));
		va_end(ap);
	} else {
		assert_non_null(secret);
		assert_int_equal(diag.count, 0);
	}
	conf_diag_fini(&diag);
	return secret;
}

static void expect_key(const uint8_t *secret)
{
	uint8_t want[CONF_SECRET_LEN];

	for (size_t i = 0; i < sizeof(want); i++)
		want[i] = (uint8_t)i;
	assert_memory_equal(secret, want, sizeof(want));
	OPENSSL_secure_clear_free((void *)secret, CONF_SECRET_LEN);
}

static void good_hex(void **state)
{
	(void)state;
	write_key_str(HEX_0_31 "\n");
	expect_key(load(getuid(), 0, NULL));
	write_key_str(HEX_0_31); /* the newline is optional */
	expect_key(load(getuid(), 0, NULL));
}

static void good_hex_upper(void **state)
{
	(void)state;
	write_key_str("000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F\n");
	expect_key(load(getuid(), 0, NULL));
}

static void good_base64(void **state)
{
	(void)state;
	write_key_str(B64_0_31 "\n");
	expect_key(load(getuid(), 0, NULL));
	write_key_str(B64_0_31);
	expect_key(load(getuid(), 0, NULL));
}

static void base64_all_alphabet(void **state)
{
	uint8_t *s;

	(void)state;
	/* 0xfb 0xff 0xbf...: '+' and '/' decode to 62 and 63. */
	write_key_str("+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/8=\n");
	s = load(getuid(), 0, NULL);
	assert_int_equal(s[0], 0xfb);
	assert_int_equal(s[1], 0xff);
	assert_int_equal(s[2], 0xbf);
	assert_int_equal(s[31], 0xff);
	OPENSSL_secure_clear_free(s, CONF_SECRET_LEN);
}

static void world_readable(void **state)
{
	char fix[160];

	(void)state;
	write_key(HEX_0_31 "\n", 65, 0644);
	snprintf(fix, sizeof(fix), "chmod 600 %s", path);
	load(getuid(), -EPERM, "mode 0644", fix, NULL);
}

static void group_readable(void **state)
{
	(void)state;
	write_key(HEX_0_31 "\n", 65, 0640);
	load(getuid(), -EPERM, "mode 0640", "group or others", "chmod 600", NULL);
}

static void other_executable(void **state)
{
	(void)state;
	write_key(HEX_0_31 "\n", 65, 0601);
	load(getuid(), -EPERM, "mode 0601", NULL);
}

/* Works as root and not: the file is ours, we expect another uid. */
static void foreign_owner(void **state)
{
	char fix[160];
	uid_t other = getuid() + 1;

	(void)state;
	write_key_str(HEX_0_31 "\n");
	snprintf(fix, sizeof(fix), "chown %lu: %s", (unsigned long)other, path);
	load(other, -EPERM, "is owned by uid", fix, NULL);
}

static void foreign_owner_expected_root(void **state)
{
	char fix[160];

	(void)state;
	if (getuid() == 0)
		skip();
	write_key_str(HEX_0_31 "\n");
	snprintf(fix, sizeof(fix), "chown root: %s", path);
	load(0, -EPERM, fix, NULL);
}

static void owner_and_mode_both_reported(void **state)
{
	struct conf_diag diag = { 0 };
	uint8_t *secret = NULL;

	(void)state;
	write_key(HEX_0_31 "\n", 65, 0666);
	assert_int_equal(conf_load_secret(path, getuid() + 1, &secret, &diag), -EPERM);
	assert_null(secret);
	assert_int_equal(diag.count, 2);
	conf_diag_fini(&diag);
}

static void symlink_refused(void **state)
{
	char target[160];

	(void)state;
	snprintf(target, sizeof(target), "%s/real.key", dir);
	unlink(path);
	unlink(target);
	{
		int fd = open(target, O_WRONLY | O_CREAT | O_EXCL, 0600);

		assert_true(fd >= 0);
		assert_int_equal(write(fd, HEX_0_31 "\n", 65), 65);
		close(fd);
	}
	assert_int_equal(symlink(target, path), 0);
	load(getuid(), -ELOOP, "symbolic link", NULL);
	unlink(target);
	unlink(path);
}

/* A second name for the file: refused, with the way to find it. */
static void hard_link_refused(void **state)
{
	char other[160];

	(void)state;
	write_key_str(HEX_0_31 "\n");
	snprintf(other, sizeof(other), "%s/other-name.key", dir);
	unlink(other);
	assert_int_equal(link(path, other), 0);
	load(getuid(), -EPERM, "2 names (hard links)", "-samefile", NULL);
	unlink(other);
	expect_key(load(getuid(), 0, NULL));
}

static void directory_refused(void **state)
{
	(void)state;
	unlink(path);
	assert_int_equal(mkdir(path, 0700), 0);
	load(getuid(), -EINVAL, "not a regular file", "a directory", NULL);
	rmdir(path);
}

/* O_NONBLOCK: opening a FIFO with no writer must not block. */
static void fifo_refused(void **state)
{
	(void)state;
	unlink(path);
	assert_int_equal(mkfifo(path, 0600), 0);
	load(getuid(), -EINVAL, "not a regular file", "a FIFO", NULL);
	unlink(path);
}

static void missing_file(void **state)
{
	char fix[160];

	(void)state;
	unlink(path);
	snprintf(fix, sizeof(fix), "sactl genkey -o %s", path);
	load(getuid(), -ENOENT, "does not exist", fix, NULL);
}

static void empty_file(void **state)
{
	(void)state;
	write_key_str("");
	load(getuid(), -EINVAL, "is empty", "sactl genkey -o", NULL);
}

static void wrong_length(void **state)
{
	(void)state;
	write_key_str("0001020304\n");
	load(getuid(), -EINVAL, "wrong length (10 characters", "64 hex digits or 44 base64", NULL);
	write_key_str(HEX_0_31 "00\n");
	load(getuid(), -EINVAL, "wrong length (66 characters", NULL);
	write_key_str(HEX_0_31 " \n"); /* a trailing blank is not forgiven */
	load(getuid(), -EINVAL, "wrong length (65 characters", NULL);
	write_key_str("\n");
	load(getuid(), -EINVAL, "wrong length (0 characters", NULL);
}

static void very_long_file(void **state)
{
	char big[4096];

	(void)state;
	memset(big, 'a', sizeof(big));
	write_key(big, sizeof(big), 0600);
	load(getuid(), -EINVAL, "wrong length (at least", NULL);
}

static void bad_hex(void **state)
{
	static const char *const bad[] = {
		"g00102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n",
		"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1 \n",
		"000102030405060708090a0b0c0d0e0f10111213141516171819:a1b1c1d1e1f\n",
		"0x0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n",
		"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e/f\n",
		"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e@f\n",
		"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e`f\n",
		"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e\377f\n",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		write_key_str(bad[i]);
		load(getuid(), -EINVAL, "not valid hex", NULL);
	}
}

static void bad_base64(void **state)
{
	static const char *const bad[] = {
		"*AECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n",
		"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8A\n", /* no '=' */
		"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh==\n", /* '=' too early */
		"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh9=\n", /* spare bits set: not canonical */
		"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwd-_8=\n", /* base64url */
		"AAECAwQFBgcICQoLDA0ODx REhMUFRYXGBkaGxwdHh8=\n",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		write_key_str(bad[i]);
		load(getuid(), -EINVAL, "not valid base64", NULL);
	}
}

static void trailing_garbage(void **state)
{
	(void)state;
	write_key_str(HEX_0_31 "\nextra\n");
	load(getuid(), -EINVAL, "data after the key", "exactly one line", NULL);
	write_key_str(HEX_0_31 "\n\n");
	load(getuid(), -EINVAL, "data after the key", NULL);
	write_key(HEX_0_31 "\0", 65, 0600);
	load(getuid(), -EINVAL, "data after the key", NULL);
}

/* No message ever carries key material, even of a rejected key. */
static void messages_never_show_key(void **state)
{
	struct conf_diag diag = { 0 };
	uint8_t *secret = NULL;

	(void)state;
	write_key(HEX_0_31 "\n", 65, 0644);
	assert_int_equal(conf_load_secret(path, getuid() + 1, &secret, &diag), -EPERM);
	write_key_str("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1eZZ\n");
	assert_int_equal(conf_load_secret(path, getuid(), &secret, &diag), -EINVAL);
	for (size_t i = 0; i < diag.count; i++) {
		assert_null(strstr(diag.msgs[i], "0a0b0c"));
		assert_null(strstr(diag.msgs[i], "1d1e"));
	}
	conf_diag_fini(&diag);
}

static void load_secrets_of_config(void **state)
{
	char text[512], second[160];
	struct conf_diag diag = { 0 };
	struct config *cfg = NULL;

	(void)state;
	snprintf(second, sizeof(second), "%s/b.key", dir);
	snprintf(text, sizeof(text),
		 "[link a]\nlocal = 192.0.2.1\nremote = 198.51.100.7\nsecret_file = %s\n"
		 "[link b]\nlocal = 192.0.2.1\nremote = 198.51.100.8\nsecret_file = %s\n",
		 path, second);
	assert_int_equal(conf_parse("t.conf", text, strlen(text), &cfg, &diag), 0);

	write_key_str(HEX_0_31 "\n");
	unlink(second);
	assert_int_equal(conf_load_secrets(cfg, getuid(), &diag), -ENOENT);
	assert_int_equal(diag.count, 1);
	assert_null(cfg->links[0].secret); /* all or nothing */
	assert_null(cfg->links[1].secret);
	conf_diag_fini(&diag);

	{
		int fd = open(second, O_WRONLY | O_CREAT | O_EXCL, 0600);

		assert_true(fd >= 0);
		assert_int_equal(write(fd, B64_0_31 "\n", 45), 45);
		close(fd);
	}
	assert_int_equal(conf_load_secrets(cfg, getuid(), &diag), 0);
	assert_int_equal(diag.count, 0);
	assert_non_null(cfg->links[0].secret);
	assert_non_null(cfg->links[1].secret);
	assert_int_equal(CRYPTO_memcmp(cfg->links[0].secret, cfg->links[1].secret,
				       CONF_SECRET_LEN),
			 0);
	/* A reload replaces them. */
	assert_int_equal(conf_load_secrets(cfg, getuid(), &diag), 0);
	conf_free(cfg); /* wipes and frees the secrets */
	unlink(second);
}

static void fs_classifier(void **state)
{
	static const struct {
		long f_type;
		bool remote;
	} cases[] = {
		{ 0x6969, true },		 /* NFS */
		{ 0x517B, true },		 /* SMB */
		{ (long)0xFE534D42, true },	 /* SMB2 */
		{ (long)0xFF534D42, true },	 /* CIFS */
		{ (int32_t)0xFF534D42, true }, /* CIFS, sign-extended */
		{ 0x01021997, true },		 /* 9P */
		{ 0x5346414F, true },		 /* AFS */
		{ 0x6B414653, true },		 /* kAFS */
		{ 0x00C36400, true },		 /* Ceph */
		{ 0x65735546, true },		 /* FUSE */
		{ 0x73757245, true },		 /* CODA */
		{ 0x564c, true },		 /* NCP */
		{ 0x0BD00BD0, true },		 /* Lustre */
		{ 0x01161970, true },		 /* GFS2 */
		{ 0x7461636f, true },		 /* OCFS2 */
		{ 0x47504653, true },		 /* GPFS */
		{ 0x19830326, true },		 /* BeeGFS */
		{ (long)0xAAD7AAEA, true },	 /* PanFS */
		{ 0xEF53, false },		 /* ext2/3/4 */
		{ 0x58465342, false },		 /* XFS */
		{ (long)0x9123683E, false },	 /* btrfs */
		{ 0x01021994, false },		 /* tmpfs (next to 9P's magic) */
		{ 0x2FC12FC1, false },		 /* ZFS */
		{ 0xF15F, false },		 /* ecryptfs */
		{ 0x794c7630, true },		 /* overlayfs */
		{ 0, false },
		{ -1, false },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (conf_fs_is_remote(cases[i].f_type) != cases[i].remote)
			print_message("f_type %#lx\n", (unsigned long)cases[i].f_type);
		assert_int_equal(conf_fs_is_remote(cases[i].f_type), cases[i].remote);
		assert_int_equal(conf_fs_remote_name(cases[i].f_type) != NULL, cases[i].remote);
	}
	assert_string_equal(conf_fs_remote_name(0x6969), "nfs");
	assert_string_equal(conf_fs_remote_name((long)0xFF534D42), "cifs");
	assert_string_equal(conf_fs_remote_name(0x794c7630), "overlayfs");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(good_hex),
		cmocka_unit_test(good_hex_upper),
		cmocka_unit_test(good_base64),
		cmocka_unit_test(base64_all_alphabet),
		cmocka_unit_test(world_readable),
		cmocka_unit_test(group_readable),
		cmocka_unit_test(other_executable),
		cmocka_unit_test(foreign_owner),
		cmocka_unit_test(foreign_owner_expected_root),
		cmocka_unit_test(owner_and_mode_both_reported),
		cmocka_unit_test(symlink_refused),
		cmocka_unit_test(hard_link_refused),
		cmocka_unit_test(directory_refused),
		cmocka_unit_test(fifo_refused),
		cmocka_unit_test(missing_file),
		cmocka_unit_test(empty_file),
		cmocka_unit_test(wrong_length),
		cmocka_unit_test(very_long_file),
		cmocka_unit_test(bad_hex),
		cmocka_unit_test(bad_base64),
		cmocka_unit_test(trailing_garbage),
		cmocka_unit_test(messages_never_show_key),
		cmocka_unit_test(load_secrets_of_config),
		cmocka_unit_test(fs_classifier),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
