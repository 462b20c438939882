/* SPDX-License-Identifier: ISC */
/* Unit tests for rotate/gens (the rules) and rot_plan_gens: the series, spares, promotion, and a two-host property. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include "fixture.h"

#include "rotate/gens.h"
#include "rotate/keysched.h"
#include "rotate/plan.h"

static const struct conf_alg alg_sha512 = { .name = "aes-cbc-256-hmac-sha512",
					    .keymat_len = 96, .enc_key_len = 32,
					    .auth_key_len = 64 };

static void next_series(void **state)
{
	(void)state;
	assert_int_equal(rot_gen_next(ROT_GEN_NONE, false), 0);
	assert_int_equal(rot_gen_next(ROT_GEN_NONE, true), 15);
	for (int g = 0; g < 7; g++)
		assert_int_equal(rot_gen_next((uint8_t)g, false), g + 1);
	assert_int_equal(rot_gen_next(7, false), -ENOSPC);
	for (int g = 15; g > 8; g--)
		assert_int_equal(rot_gen_next((uint8_t)g, false), g - 1);
	assert_int_equal(rot_gen_next(8, false), -ENOSPC);
	/* A record says which series: lost_records only matters with none. */
	assert_int_equal(rot_gen_next(3, true), 4);
	assert_int_equal(rot_gen_next(16, false), -ENOSPC);
	assert_int_equal(rot_gen_next(200, true), -ENOSPC);
}

static void spares(void **state)
{
	uint8_t s[2];

	(void)state;
	assert_int_equal(rot_gen_spares(0, s), 2);
	assert_int_equal(s[0], 1);
	assert_int_equal(s[1], 15);
	assert_int_equal(rot_gen_spares(6, s), 2);
	assert_int_equal(s[0], 7);
	assert_int_equal(rot_gen_spares(7, s), 1);
	assert_int_equal(s[0], 15);
	assert_int_equal(rot_gen_spares(15, s), 1);
	assert_int_equal(s[0], 14);
	assert_int_equal(rot_gen_spares(9, s), 1);
	assert_int_equal(s[0], 8);
	assert_int_equal(rot_gen_spares(8, s), 0);
	assert_int_equal(rot_gen_spares(ROT_GEN_NONE, s), 0);
}

static void held(void **state)
{
	struct rot_gen_in in = ROT_GEN_IN_DEFAULT(5);
	uint8_t h[ROT_GENS];

	(void)state;
	assert_int_equal(rot_gen_held(&in, 100, h), 3);
	assert_int_equal(h[0], 0);
	assert_int_equal(h[1], 1);
	assert_int_equal(h[2], 15);
	in.cur = ROT_GEN_NONE;
	assert_int_equal(rot_gen_held(&in, 100, h), 16);
	for (int g = 0; g < 16; g++)
		assert_int_equal(h[g], g);
	/* Promoted to 1 at 90 with grace 60: 0 held until 150. */
	in = (struct rot_gen_in){ .epoch = 5, .cur = 1, .prev = 0, .prev_until = 150 };
	assert_int_equal(rot_gen_held(&in, 149, h), 4);
	assert_int_equal(h[0], 0);
	assert_int_equal(h[1], 1);
	assert_int_equal(h[2], 2);
	assert_int_equal(h[3], 15);
	assert_int_equal(rot_gen_held(&in, 150, h), 3);
	assert_int_equal(h[0], 1);
	/* The previous one is a spare of the new: listed once. */
	in = (struct rot_gen_in){ .epoch = 5, .cur = 0, .prev = 15, .prev_until = 150 };
	assert_int_equal(rot_gen_held(&in, 100, h), 3);
	in = (struct rot_gen_in){ .epoch = 5, .cur = 8, .prev = 9, .prev_until = 150 };
	assert_int_equal(rot_gen_held(&in, 100, h), 2);
	assert_int_equal(h[0], 8);
	assert_int_equal(h[1], 9);
}

static void supersedes(void **state)
{
	(void)state;
	for (int s = 0; s < 16; s++)
		assert_true(rot_gen_supersedes(ROT_GEN_NONE, (uint8_t)s));
	assert_false(rot_gen_supersedes(ROT_GEN_NONE, 16));
	assert_true(rot_gen_supersedes(0, 1));
	assert_true(rot_gen_supersedes(0, 15));
	assert_true(rot_gen_supersedes(0, 8));
	assert_true(rot_gen_supersedes(3, 7));
	assert_false(rot_gen_supersedes(3, 3));
	assert_false(rot_gen_supersedes(3, 2));
	assert_true(rot_gen_supersedes(15, 14));
	assert_false(rot_gen_supersedes(14, 15));
	assert_false(rot_gen_supersedes(14, 3));
}

/*
 * The property of the rules: a sender S and a receiver R of one epoch. S
 * installs a generation after each of its losses (with or without its
 * records); R holds what rot_gen_held says and promotes when a held spare
 * carries traffic. Over every sequence of up to 8 losses, each either
 * keeping or wiping S's records once: S never installs a generation twice
 * (except the accepted limit: records lost twice), and every generation S
 * sends with is held by R when S sends (R promoted from S's previous one).
 */
static void property_two_hosts(void **state)
{
	(void)state;
	for (unsigned mask = 0; mask < (1u << 9); mask++) {
		for (int wipe_at = -1; wipe_at < 9; wipe_at++) {
			bool used[ROT_GENS] = { false };
			struct rot_gen_in r = ROT_GEN_IN_DEFAULT(1);
			uint8_t last = ROT_GEN_NONE;
			bool lost = false;
			int64_t now = 0;

			for (int step = 0; step < 9; step++) {
				uint8_t h[ROT_GENS];
				size_t nh;
				bool found = false;
				int g;

				if (!(mask & (1u << step)))
					continue;
				if (step == wipe_at) {
					last = ROT_GEN_NONE;
					lost = true;
				}
				g = rot_gen_next(last, lost);
				if (g < 0)
					break; /* used up: nothing installed */
				assert_false(used[g]);
				used[g] = true;
				last = (uint8_t)g;
				lost = false; /* records again from here on */
				nh = rot_gen_held(&r, now, h);
				for (size_t i = 0; i < nh; i++)
					found |= h[i] == g;
				assert_true(found);
				/* Its traffic reaches R, which promotes. */
				if (g != r.cur) {
					assert_true(rot_gen_supersedes(r.cur, (uint8_t)g));
					r.prev = r.cur;
					r.cur = (uint8_t)g;
					r.prev_until = now + 60;
				}
				now += 10;
			}
		}
	}
}

/* P = 3600, phase 100, lead = grace = 60, prefix 0x2a. */
#define T(e) ((int64_t)(e) * 3600 + 100)

static void plan_gens_expands(void **state)
{
	struct conf_link l = fixture_base_link(&alg_sha512);
	struct rot_plan p;
	struct rot_gen_view v = { .out = 3 };
	struct rot_sa sa[ROT_PLAN_GENS_MAX];
	int64_t next;
	size_t n;

	(void)state;
	/* Inside epoch 10's lead: inbound 10 and 11, outbound 10. */
	assert_int_equal(rot_plan(&l, T(11) - 30, &p), 0);
	assert_int_equal(p.n, 3);
	v.in[0] = (struct rot_gen_in){ .epoch = 10, .cur = 2, .prev = 1, .prev_until = T(11) - 10 };
	v.nin = 1;
	next = p.next_change;
	n = rot_plan_gens(&p, &v, sa, &next);
	/* Epoch 10: 1 (until T(11) - 10), 2, 3, 15; epoch 11: 0, 1, 15; outbound 3. */
	assert_int_equal(n, 8);
	assert_int_equal(next, T(11) - 10);
	assert_int_equal(sa[0].gen, 1);
	assert_int_equal(sa[0].spi, rot_spi(0x2a, 10, 1));
	assert_int_equal(sa[3].gen, 15);
	assert_int_equal(sa[3].dir, ROT_DIR_IN);
	assert_int_equal(sa[4].epoch, 11);
	assert_int_equal(sa[4].gen, 0);
	assert_true(sa[4].staged);
	assert_int_equal(sa[7].dir, ROT_DIR_OUT);
	assert_int_equal(sa[7].spi, rot_spi(0x2a, 10, 3));
	assert_int_equal(sa[7].planned_removal, p.sa[2].planned_removal);
	for (size_t i = 0; i < n; i++) {
		assert_string_equal(sa[i].key_fp, "");
		assert_int_equal(rot_spi_gen(sa[i].spi), sa[i].gen);
	}
	/* Used up: no outbound SA at all; unknown receiver state: all 16. */
	v.out = ROT_GEN_NONE;
	v.in[0] = (struct rot_gen_in){ .epoch = 10, .cur = ROT_GEN_NONE, .prev = ROT_GEN_NONE };
	next = p.next_change;
	n = rot_plan_gens(&p, &v, sa, &next);
	assert_int_equal(n, 16 + 3);
	assert_int_equal(next, p.next_change);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(sa[i].dir, ROT_DIR_IN);
	/* The most a plan can expand to fits: lead and grace overlapping, nothing known. */
	l.lead = l.grace = 2000;
	assert_int_equal(rot_plan(&l, T(11) + 1700, &p), 0);
	assert_int_equal(p.n, 4);
	v.out = 0;
	v.in[0] = (struct rot_gen_in){ .epoch = 10, .cur = ROT_GEN_NONE };
	v.in[1] = (struct rot_gen_in){ .epoch = 11, .cur = ROT_GEN_NONE };
	v.in[2] = (struct rot_gen_in){ .epoch = 12, .cur = ROT_GEN_NONE };
	v.nin = 3;
	assert_int_equal(rot_plan_gens(&p, &v, sa, &next), ROT_PLAN_GENS_MAX);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(next_series),
		cmocka_unit_test(spares),
		cmocka_unit_test(held),
		cmocka_unit_test(supersedes),
		cmocka_unit_test(property_two_hosts),
		cmocka_unit_test(plan_gens_expands),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
