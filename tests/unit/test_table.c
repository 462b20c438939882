/* SPDX-License-Identifier: ISC */
/* Unit tests for monitor/table.c: the SA table against a reference, through growth and deletions. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "monitor/table.h"

/* Identity number k <-> an SA: both families, few addresses, spi and proto varying. */
enum { IDS = 6000 };

static void id_of(unsigned k, struct rot_sa *sa)
{
	memset(sa, 0, sizeof(*sa));
	sa->dst.family = k % 2 ? AF_INET6 : AF_INET;
	sa->dst.bytes[0] = 10;
	sa->dst.bytes[3] = (uint8_t)(k / 2 % 7);
	/* Past an IPv4 address's length: not part of its identity. */
	sa->dst.bytes[10] = (uint8_t)(k % 2 ? k / 14 % 5 : 0xee);
	sa->spi = k / 2; /* with the family: one identity per k */
	sa->proto = k % 3 ? IPPROTO_ESP : IPPROTO_AH;
	sa->src.family = sa->dst.family;
	sa->src.bytes[1] = (uint8_t)k;
}

static uint64_t next_rand(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void against_reference(void **state)
{
	static bool in[IDS];
	static struct mon_sa *ptr[IDS];
	struct mon_table *t = mon_table_new();
	uint64_t seed = 0x853c49e6748fea9bull;
	size_t count = 0;

	(void)state;
	assert_non_null(t);
	memset(in, 0, sizeof(in));
	for (int op = 0; op < 400000; op++) {
		uint64_t r = next_rand(&seed);
		/* Phases that fill up, churn, and drain, so the table grows and tombstones pile up. */
		int phase = op / 50000 % 4;
		unsigned k = (unsigned)(r >> 16) % IDS;
		struct rot_sa sa;
		bool created;
		struct mon_sa *e;

		id_of(k, &sa);
		if ((r & 7) < (phase == 0 ? 6u : phase == 3 ? 1u : 4u)) {
			e = mon_table_put(t, &sa, &created);
			assert_non_null(e);
			assert_int_equal(created, !in[k]);
			if (created) {
				assert_int_equal(e->sa.spi, sa.spi);
				e->store_id = k + 1;
				ptr[k] = e;
				in[k] = true;
				count++;
			} else {
				assert_ptr_equal(e, ptr[k]);
			}
		} else if ((r & 7) == 7) {
			e = mon_table_get(t, &sa);
			assert_ptr_equal(e, in[k] ? ptr[k] : NULL);
		} else {
			assert_int_equal(mon_table_del(t, &sa), in[k]);
			count -= in[k];
			in[k] = false;
		}
		assert_int_equal(mon_table_count(t), count);
		if (op % 50000 == 49999) {
			size_t cursor = 0, seen = 0;

			while ((e = mon_table_next(t, &cursor))) {
				assert_true(e->store_id >= 1 && e->store_id <= IDS);
				assert_true(in[e->store_id - 1]);
				assert_ptr_equal(e, ptr[e->store_id - 1]);
				seen++;
			}
			assert_int_equal(seen, count);
			for (unsigned j = 0; j < IDS; j++) {
				id_of(j, &sa);
				assert_ptr_equal(mon_table_get(t, &sa), in[j] ? ptr[j] : NULL);
			}
		}
	}
	mon_table_free(t);
}

/* An identity is (dst, spi, proto): another source address finds the same entry. */
static void identity_only(void **state)
{
	struct mon_table *t = mon_table_new();
	struct rot_sa a, b;
	bool created;
	struct mon_sa *e;

	(void)state;
	id_of(5, &a);
	b = a;
	b.src.bytes[2] = 99;
	b.dst.bytes[12] = 42; /* IPv6 here (k odd): part of the address */
	e = mon_table_put(t, &a, &created);
	assert_true(created);
	assert_ptr_equal(mon_table_put(t, &a, &created), e);
	assert_false(created);
	a.src.bytes[2] = 99;
	assert_ptr_equal(mon_table_get(t, &a), e);
	assert_null(mon_table_get(t, &b));
	assert_true(mon_table_del(t, &a));
	assert_false(mon_table_del(t, &a));
	assert_int_equal(mon_table_count(t), 0);
	mon_table_free(t);
	mon_table_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(against_reference),
		cmocka_unit_test(identity_only),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
