/* SPDX-License-Identifier: ISC */
/* Unit tests for rotate/prefixidx.c: lookups against a brute-force reference, limits, misuse. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "rotate/prefixidx.h"

static void empty_and_misuse(void **state)
{
	struct rot_prefix_index ix;
	size_t cursor = 0;
	int v = 0;

	(void)state;
	assert_int_equal(rot_prefix_index_init(&ix, 0), 0);
	assert_null(rot_prefix_index_get(&ix, 0));
	assert_null(rot_prefix_index_next(&ix, 7, &cursor));
	assert_null(rot_prefix_index_next(&ix, 7, &cursor));
	assert_int_equal(rot_prefix_index_add(&ix, 1, &v), -ENOSPC);
	assert_int_equal(rot_prefix_index_add(&ix, 1, NULL), -EINVAL);
	rot_prefix_index_fini(&ix);
	/* A finished index finds nothing and takes nothing. */
	assert_null(rot_prefix_index_get(&ix, 1));
	assert_int_equal(rot_prefix_index_add(&ix, 1, &v), -ENOSPC);
	rot_prefix_index_fini(&ix);
}

static void limit_and_duplicates(void **state)
{
	struct rot_prefix_index ix;
	int v[4];
	size_t cursor = 0;

	(void)state;
	assert_int_equal(rot_prefix_index_init(&ix, 3), 0);
	assert_int_equal(rot_prefix_index_add(&ix, 5, &v[0]), 0);
	assert_int_equal(rot_prefix_index_add(&ix, 5, &v[0]), 0); /* same pair: nothing new */
	assert_int_equal(rot_prefix_index_add(&ix, 5, &v[1]), 0); /* same prefix, other value */
	assert_int_equal(rot_prefix_index_add(&ix, 6, &v[0]), 0); /* same value, other prefix */
	assert_int_equal(ix.n, 3);
	assert_int_equal(rot_prefix_index_add(&ix, 7, &v[2]), -ENOSPC);
	assert_int_equal(rot_prefix_index_add(&ix, 5, &v[1]), 0); /* still there: not an add */
	assert_ptr_equal(rot_prefix_index_next(&ix, 5, &cursor), &v[0]);
	assert_ptr_equal(rot_prefix_index_next(&ix, 5, &cursor), &v[1]);
	assert_null(rot_prefix_index_next(&ix, 5, &cursor));
	assert_null(rot_prefix_index_next(&ix, 5, &cursor));
	assert_ptr_equal(rot_prefix_index_get(&ix, 6), &v[0]);
	assert_null(rot_prefix_index_get(&ix, 7));
	rot_prefix_index_fini(&ix);
}

static uint64_t next_rand(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/*
 * Every lookup against a linear scan of what was added: consecutive
 * prefixes (the usual configuration), random ones from a small range (so
 * many share a prefix and probe chains cross), and the full 24-bit range.
 */
static void against_reference(void **state)
{
	enum { N = 20000 };
	static uint32_t prefix[N];
	static int value[N];
	uint64_t seed = 0x2545f4914f6cdd1dull;

	(void)state;
	for (int round = 0; round < 3; round++) {
		struct rot_prefix_index ix;

		assert_int_equal(rot_prefix_index_init(&ix, N), 0);
		assert_true(ix.cap >= 2 * N);
		for (size_t i = 0; i < N; i++) {
			uint64_t r = next_rand(&seed);

			prefix[i] = round == 0 ? (uint32_t)(0x1000 + i) :
				    round == 1 ? (uint32_t)(r % 3000) :
						 (uint32_t)(r & 0xffffff);
			assert_int_equal(rot_prefix_index_add(&ix, prefix[i], &value[i]), 0);
		}
		assert_int_equal(ix.n, N);
		for (uint32_t p = 0; p < 4000; p++) {
			uint32_t q = round == 2 ? prefix[p] ^ (p & 1) : round == 0 ? p + 0x1000 - 500 : p;
			size_t cursor = 0, j = 0;
			const void *got;

			/* Values of q in the order added, then NULL. */
			while ((got = rot_prefix_index_next(&ix, q, &cursor))) {
				while (j < N && prefix[j] != q)
					j++;
				assert_true(j < N);
				assert_ptr_equal(got, &value[j]);
				j++;
			}
			while (j < N && prefix[j] != q)
				j++;
			assert_int_equal(j, N);
		}
		rot_prefix_index_fini(&ix);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(empty_and_misuse),
		cmocka_unit_test(limit_and_duplicates),
		cmocka_unit_test(against_reference),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
