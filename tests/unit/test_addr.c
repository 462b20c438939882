/* SPDX-License-Identifier: ISC */
/* Unit tests for store/addr.c: store_addr_ntop writes exactly what glibc's inet_ntop writes. */
#include <arpa/inet.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "store/addr.h"

/* Both formatters on the same bytes, into every buffer size from 0 to one past the need. */
static void same_as_libc(int family, const unsigned char *bytes)
{
	char want[INET6_ADDRSTRLEN], got[INET6_ADDRSTRLEN + 8];
	size_t need;

	assert_non_null(inet_ntop(family, bytes, want, sizeof(want)));
	memset(got, 'x', sizeof(got));
	assert_ptr_equal(store_addr_ntop(family, bytes, got, sizeof(got)), got);
	assert_string_equal(got, want);
	need = strlen(want) + 1;
	for (size_t size = 0; size <= need; size++) {
		char small[INET6_ADDRSTRLEN + 8];

		memset(small, 'x', sizeof(small));
		if (size < need) {
			assert_null(store_addr_ntop(family, bytes, small, size));
			assert_int_equal(small[0], 'x'); /* untouched */
		} else {
			assert_ptr_equal(store_addr_ntop(family, bytes, small, size), small);
			assert_string_equal(small, want);
		}
	}
}

static void v4_edges(void **state)
{
	static const unsigned char cases[][4] = {
		{ 0, 0, 0, 0 },       { 255, 255, 255, 255 }, { 10, 1, 0, 1 },
		{ 127, 0, 0, 1 },     { 1, 10, 100, 200 },    { 9, 99, 199, 250 },
		{ 100, 0, 10, 0 },    { 192, 168, 1, 254 },   { 224, 0, 0, 251 },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		same_as_libc(AF_INET, cases[i]);
	/* Every value of every digit count in each position. */
	for (unsigned v = 0; v < 256; v++) {
		unsigned char b[4] = { (unsigned char)v, (unsigned char)(255 - v), 0, (unsigned char)v };

		same_as_libc(AF_INET, b);
	}
}

static void v6_from_words(const uint16_t w[8])
{
	unsigned char b[16];

	for (int i = 0; i < 8; i++) {
		b[2 * i] = (unsigned char)(w[i] >> 8);
		b[2 * i + 1] = (unsigned char)w[i];
	}
	same_as_libc(AF_INET6, b);
}

static void v6_edges(void **state)
{
	static const uint16_t cases[][8] = {
		{ 0, 0, 0, 0, 0, 0, 0, 0 },                 /* :: */
		{ 0, 0, 0, 0, 0, 0, 0, 1 },                 /* ::1 */
		{ 1, 0, 0, 0, 0, 0, 0, 0 },                 /* 1:: */
		{ 0, 0, 0, 0, 0, 0, 0x0a01, 0x0001 },       /* ::10.1.0.1 (compatible) */
		{ 0, 0, 0, 0, 0, 0xffff, 0x0a01, 0x0001 },  /* ::ffff:10.1.0.1 (mapped) */
		{ 0, 0, 0, 0, 0, 0xfffe, 0x0a01, 0x0001 },  /* not mapped */
		{ 0, 0, 0, 0, 0, 0, 0, 2 },                 /* ::2, not ::0.0.0.2 */
		{ 0, 0, 0, 0, 0, 0, 1, 0 },                 /* ::1:0 */
		{ 0, 0, 0, 0, 0, 0xffff, 0, 0 },            /* ::ffff:0.0.0.0 */
		{ 0x2001, 0xdb8, 0, 0, 1, 0, 0, 1 },        /* first of two equal runs */
		{ 0x2001, 0xdb8, 0, 1, 0, 0, 0, 1 },        /* the longer, second run */
		{ 0x2001, 0xdb8, 0, 1, 1, 1, 1, 1 },        /* a single zero word is not compressed */
		{ 0x2001, 0xdb8, 1, 1, 1, 1, 1, 0 },        /* trailing single zero */
		{ 0xfe80, 0, 0, 0, 0x1234, 0x5678, 0x9abc, 0xdef0 },
		{ 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff },
		{ 0x1, 0x10, 0x100, 0x1000, 0xf, 0xf0, 0xf00, 0xf000 },
		{ 0, 1, 0, 1, 0, 1, 0, 1 },
		{ 0, 0, 1, 0, 0, 1, 0, 0 },
		{ 0, 0, 0, 0, 0, 0, 0xffff, 0xffff },       /* ::255.255.255.255 */
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		v6_from_words(cases[i]);
}

/* Deterministic xorshift: the same addresses on every run. */
static uint64_t next_rand(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void v6_random(void **state)
{
	uint64_t seed = 0x9e3779b97f4a7c15ull;

	(void)state;
	/* Words mostly zero, so runs of every length and position come up. */
	for (int n = 0; n < 100000; n++) {
		uint16_t w[8];

		for (int i = 0; i < 8; i++) {
			uint64_t r = next_rand(&seed);

			w[i] = (r & 3) ? 0 : (r & 4) ? 0xffff : (uint16_t)(r >> 16 & (0xffffu >> (r >> 8 & 15)));
		}
		v6_from_words(w);
	}
	for (int n = 0; n < 20000; n++) {
		uint64_t r = next_rand(&seed);
		unsigned char b[4] = { (unsigned char)r, (unsigned char)(r >> 8),
				       (unsigned char)(r >> 16), (unsigned char)(r >> 24) };

		same_as_libc(AF_INET, b);
	}
}

static void other_families(void **state)
{
	unsigned char b[16] = { 0 };
	char out[64] = "x";

	(void)state;
	assert_null(store_addr_ntop(AF_UNSPEC, b, out, sizeof(out)));
	assert_null(store_addr_ntop(AF_UNIX, b, out, sizeof(out)));
	assert_string_equal(out, "x");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(v4_edges),
		cmocka_unit_test(v6_edges),
		cmocka_unit_test(v6_random),
		cmocka_unit_test(other_families),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
