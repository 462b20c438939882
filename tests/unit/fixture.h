/* SPDX-License-Identifier: ISC */
/*
 * Helpers shared by the cmocka unit tests (tests/unit/test_*.c): addresses
 * from text, a base link, a deterministic PRNG for property tests, reading a
 * fixture file, removing a test's temporary directory and closing a test's
 * libuv loop.
 * Include after <cmocka.h> (and after <uv.h> for fixture_loop_close).
 * Everything is static inline: a test uses what it needs.
 */
#ifndef SAKEYD_TESTS_FIXTURE_H
#define SAKEYD_TESTS_FIXTURE_H

#include <arpa/inet.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf/conf.h"

/* An IPv4 or IPv6 host address (prefix 32 or 128); the text must parse. */
static inline struct conf_addr fixture_addr(const char *text)
{
	struct conf_addr a = { 0 };

	if (inet_pton(AF_INET, text, a.bytes) == 1) {
		a.family = AF_INET;
		a.prefixlen = 32;
	} else {
		assert_int_equal(inet_pton(AF_INET6, text, a.bytes), 1);
		a.family = AF_INET6;
		a.prefixlen = 128;
	}
	return a;
}

/*
 * The link most rotate/ tests start from: "test", 192.0.2.1 -> 198.51.100.7,
 * transport, algorithm alg, P = 3600, phase 100, lead = grace = 60,
 * hard_slack 1h, prefix 0x2a, no secret.
 */
static inline struct conf_link fixture_base_link(const struct conf_alg *alg)
{
	struct conf_link l = { 0 };

	snprintf(l.name, sizeof(l.name), "test");
	l.local = fixture_addr("192.0.2.1");
	l.remote = fixture_addr("198.51.100.7");
	l.mode = CONF_MODE_TRANSPORT;
	l.alg = alg;
	l.rotate_every = 3600;
	l.phase = 100;
	l.spi_prefix = 0x2a;
	l.lead = 60;
	l.grace = 60;
	l.hard_slack = 3600;
	return l;
}

/* xorshift64*: the next number of the sequence whose state is *state. */
static inline uint64_t fixture_rnd(uint64_t *state)
{
	*state ^= *state >> 12;
	*state ^= *state << 25;
	*state ^= *state >> 27;
	return *state * 0x2545f4914f6cdd1dULL;
}

/* The contents of the file at path (at most cap bytes) into buf; its length. */
static inline size_t fixture_read(const char *path, void *buf, size_t cap)
{
	FILE *f = fopen(path, "rb");
	size_t len;

	assert_non_null(f);
	len = fread(buf, 1, cap, f);
	fclose(f);
	return len;
}

static inline int fixture_rm_entry(const char *path, const struct stat *st, int flag,
				   struct FTW *ftw)
{
	/* Give back write permission a test took away, so the tree can go. */
	if (flag == FTW_DP)
		chmod(path, 0700);
	return remove(path);
}

/* A fresh file at path (whatever was there is unlinked) holding text, then exactly mode. */
static inline void fixture_write_file(const char *path, const char *text, mode_t mode)
{
	int fd;

	unlink(path);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	assert_int_equal(fchmod(fd, mode), 0);
	close(fd);
}

/* Remove a test's temporary directory and everything below it. */
static inline void fixture_rm_tree(const char *dir)
{
	nftw(dir, fixture_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

#ifdef UV_VERSION_MAJOR
static inline void fixture_close_walk(uv_handle_t *h, void *arg)
{
	if (!uv_is_closing(h))
		uv_close(h, NULL);
}

/* Close every handle still open on loop, let the closes run, close the loop. */
static inline void fixture_loop_close(uv_loop_t *loop)
{
	uv_walk(loop, fixture_close_walk, NULL);
	uv_run(loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(loop), 0);
}
#endif

#endif
