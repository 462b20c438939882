/* SPDX-License-Identifier: ISC */
/* conf/secheap.c: the secure heap's size from the configuration's limit, and an exhausted heap. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/crypto.h>

#include "conf/conf.h"

/* The limit's secrets, three copies of each, and room to derive keys: 8 MiB, a power of two. */
static void test_size_at_limit(void **state)
{
	size_t size = conf_secure_heap_size(CONF_LINKS_MAX);

	(void)state;
	assert_int_equal(size & (size - 1), 0);
	assert_true(size >= (size_t)CONF_SECRET_COPIES * CONF_LINKS_MAX * CONF_SECRET_LEN +
				   CONF_SECURE_WORK);
	assert_int_equal(size, 8u << 20);
	assert_true(conf_secure_heap_links(size) >= CONF_LINKS_MAX);
	/* Beyond the limit: the limit's size (the parser refuses more links). */
	assert_int_equal(conf_secure_heap_size(CONF_LINKS_MAX * 4), size);
	/* The old fixed 1 MiB held 32,768 secrets once and no reload past ~10,000 links. */
	assert_true(conf_secure_heap_links(1 << 20) < 11000);
}

static void test_size_small(void **state)
{
	(void)state;
	assert_int_equal(conf_secure_heap_size(0), 64 * 1024);
	assert_int_equal(conf_secure_heap_size(1), 128 * 1024);
	for (size_t n = 0; n <= CONF_LINKS_MAX; n += 997) {
		size_t size = conf_secure_heap_size(n);

		assert_int_equal(size & (size - 1), 0);
		assert_true(conf_secure_heap_links(size) >= n);
	}
}

static void test_init_refuses_bad_sizes(void **state)
{
	(void)state;
	assert_int_equal(conf_secure_heap_init(0), -EINVAL);
	assert_int_equal(conf_secure_heap_init(3000), -EINVAL);
	assert_int_equal(conf_secure_heap_init(64), -EINVAL);
}

/* A 4 KiB heap: 128 secrets fill it; the next one fails, is counted, and says why. */
static void test_exhausted(void **state)
{
	char dir[] = "/tmp/test_secheap.XXXXXX", path[64], why[320];
	struct conf_diag diag = { 0 };
	uint8_t *secrets[128], *more = NULL;
	unsigned long failures;
	int fd, ret;

	(void)state;
	ret = conf_secure_heap_init(4096);
	assert_true(ret == 0 || ret == -EPERM);
	for (size_t i = 0; i < 128; i++) {
		secrets[i] = conf_secure_alloc(CONF_SECRET_LEN);
		assert_non_null(secrets[i]);
		assert_true(CRYPTO_secure_allocated(secrets[i]));
	}
	failures = conf_secure_heap_failures();
	assert_null(conf_secure_alloc(CONF_SECRET_LEN));
	assert_int_equal(conf_secure_heap_failures(), failures + 1);
	conf_secure_heap_why(why, sizeof(why));
	assert_non_null(strstr(why, "secure heap is exhausted (4 of 4 KiB in use"));

	/* A secret file read then: refused with the cause, not a bare ENOMEM. */
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/k", dir);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n",
			       65),
			 65);
	close(fd);
	assert_int_equal(conf_load_secret(path, geteuid(), &more, &diag), -ENOMEM);
	assert_null(more);
	assert_int_equal(diag.count, 1);
	assert_non_null(strstr(diag.msgs[0], "no room for the key: OpenSSL's secure heap is exhausted"));
	conf_diag_fini(&diag);
	/* Freed, the room is back. */
	OPENSSL_secure_clear_free(secrets[0], CONF_SECRET_LEN);
	assert_int_equal(conf_load_secret(path, geteuid(), &more, &diag), 0);
	assert_non_null(more);
	OPENSSL_secure_clear_free(more, CONF_SECRET_LEN);
	for (size_t i = 1; i < 128; i++)
		OPENSSL_secure_clear_free(secrets[i], CONF_SECRET_LEN);
	conf_diag_fini(&diag);
	unlink(path);
	rmdir(dir);
	assert_int_equal(CRYPTO_secure_malloc_done(), 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_size_at_limit),
		cmocka_unit_test(test_size_small),
		cmocka_unit_test(test_init_refuses_bad_sizes),
		cmocka_unit_test(test_exhausted),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
