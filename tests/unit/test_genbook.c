/* SPDX-License-Identifier: ISC */
/* Unit tests for svc/daemon/genbook: the key schedule's records across restarts, on a real generations.db. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <uv.h>
#include "fixture.h"

#include "rotate/keysched.h"
#include "svc/daemon/genbook.h"

static const struct conf_alg alg_sha512 = { .name = "aes-cbc-256-hmac-sha512",
					    .keymat_len = 96, .enc_key_len = 32,
					    .auth_key_len = 64 };

struct fx {
	char dir[64];
	struct conf_link link;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	snprintf(f->dir, sizeof(f->dir), "/tmp/test-genbook-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	f->link = fixture_base_link(&alg_sha512);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	fixture_rm_tree(f->dir);
	free(f);
	return 0;
}

static struct genbook *open_book(struct fx *f)
{
	struct genbook *b = NULL;
	char err[512];

	assert_int_equal(genbook_open(f->dir, &b, err, sizeof(err)), 0);
	return b;
}

/* A new state directory: generation 15, all 16 inbound; then recorded, the next epoch 0. */
static void fresh_then_records(void **state)
{
	struct fx *f = *state;
	struct genbook *b = open_book(f);
	struct link_gens *g = genbook_link(b, &f->link, 100);
	struct rot_gen_view v;
	bool fresh_out;

	assert_true(genbook_was_fresh(b));
	genbook_view(g, 100, ROT_GEN_NONE, &v, &fresh_out);
	assert_true(fresh_out);
	assert_int_equal(v.out, 15);
	assert_int_equal(v.in[0].cur, ROT_GEN_NONE); /* epoch 99 */
	assert_int_equal(v.in[1].cur, ROT_GEN_NONE); /* epoch 100 */
	assert_int_equal(v.in[2].cur, 0);            /* epoch 101: its sender starts at 0 */
	assert_int_equal(genbook_stage_out(b, g, 100, 15, 1000), 0);
	assert_int_equal(genbook_commit(b), 0);
	/* Lost again (same run): 14. The next epoch: 0. An SA the kernel holds: adopted. */
	genbook_view(g, 100, ROT_GEN_NONE, &v, &fresh_out);
	assert_int_equal(v.out, 14);
	genbook_view(g, 101, ROT_GEN_NONE, &v, &fresh_out);
	assert_int_equal(v.out, 0);
	genbook_view(g, 100, 15, &v, &fresh_out);
	assert_false(fresh_out);
	assert_int_equal(v.out, 15);
	genbook_close(b);

	/* A restart: the records, not fresh any more, the link's first epoch kept. */
	b = open_book(f);
	assert_false(genbook_was_fresh(b));
	g = genbook_link(b, &f->link, 100);
	genbook_view(g, 100, ROT_GEN_NONE, &v, &fresh_out);
	assert_int_equal(v.out, 14);
	assert_int_equal(v.in[1].cur, ROT_GEN_NONE); /* still nothing heard in epoch 100 */
	genbook_close(b);
}

/* Staged but not committed: never in memory, never on disk. */
static void rollback_forgets(void **state)
{
	struct fx *f = *state;
	struct genbook *b = open_book(f);
	struct link_gens *g = genbook_link(b, &f->link, 7);
	struct rot_gen_view v;
	bool fresh_out;

	assert_int_equal(genbook_stage_out(b, g, 7, 15, 1), 0);
	genbook_rollback(b);
	genbook_view(g, 7, ROT_GEN_NONE, &v, &fresh_out);
	assert_int_equal(v.out, 15);
	genbook_close(b);
	b = open_book(f);
	assert_true(genbook_was_fresh(b));
	genbook_close(b);
}

/* A series used up: nothing to install until the next epoch. */
static void series_used_up(void **state)
{
	struct fx *f = *state;
	struct genbook *b = open_book(f);
	struct link_gens *g;
	struct rot_gen_view v;
	bool fresh_out;

	/* Not fresh: a record of another link first. */
	g = genbook_link(b, &f->link, 5);
	assert_int_equal(genbook_stage_out(b, g, 5, 15, 1), 0);
	assert_int_equal(genbook_commit(b), 0);
	for (int gen = 0; gen <= 7; gen++) {
		genbook_view(g, 6, ROT_GEN_NONE, &v, &fresh_out);
		assert_true(fresh_out);
		assert_int_equal(v.out, gen);
		assert_int_equal(genbook_stage_out(b, g, 6, v.out, 2), 0);
		assert_int_equal(genbook_commit(b), 0);
	}
	genbook_view(g, 6, ROT_GEN_NONE, &v, &fresh_out);
	assert_false(fresh_out);
	assert_int_equal(v.out, ROT_GEN_NONE);
	genbook_view(g, 7, ROT_GEN_NONE, &v, &fresh_out);
	assert_int_equal(v.out, 0);
	genbook_close(b);
}

/* Promotion: recorded, the old generation held for grace, kept across a restart; no going back. */
static void promotion(void **state)
{
	struct fx *f = *state;
	struct genbook *b = open_book(f);
	struct link_gens *g = genbook_link(b, &f->link, 50);
	struct rot_gen_in in;
	uint8_t was;

	assert_int_equal(genbook_stage_out(b, g, 50, 15, 1), 0);
	assert_int_equal(genbook_commit(b), 0);
	genbook_close(b);
	b = open_book(f);
	g = genbook_link(b, &f->link, 51);
	/* Epoch 52: the peer starts at 0; traffic on 1 promotes it. */
	assert_int_equal(genbook_in(g, 52).cur, 0);
	assert_int_equal(genbook_promote(b, g, 52, 1, 5000, &was), 1);
	assert_int_equal(was, 0);
	in = genbook_in(g, 52);
	assert_int_equal(in.cur, 1);
	assert_int_equal(in.prev, 0);
	assert_int_equal(in.prev_until, 5000 + (int64_t)f->link.grace);
	/* Late packets of 0 change nothing; 15 (the peer lost its records) does. */
	assert_int_equal(genbook_promote(b, g, 52, 0, 5001, &was), 0);
	assert_int_equal(genbook_promote(b, g, 52, 15, 5002, &was), 1);
	assert_true(genbook_pending(b));
	assert_int_equal(genbook_commit(b), 0);
	assert_false(genbook_pending(b));
	genbook_close(b);
	b = open_book(f);
	g = genbook_link(b, &f->link, 52);
	in = genbook_in(g, 52);
	assert_int_equal(in.cur, 15);
	assert_int_equal(in.prev, 1);
	assert_int_equal(in.prev_until, 5002 + (int64_t)f->link.grace);
	/* Epoch 50 was the first, with no records: unknown until traffic. */
	assert_int_equal(genbook_in(g, 50).cur, ROT_GEN_NONE);
	assert_int_equal(genbook_promote(b, g, 50, 9, 6000, &was), 1);
	assert_int_equal(was, ROT_GEN_NONE);
	/* Not committed: a receiver's record lost costs spares, never a key. */
	genbook_close(b);
	b = open_book(f);
	g = genbook_link(b, &f->link, 52);
	assert_int_equal(genbook_in(g, 50).cur, ROT_GEN_NONE);
	genbook_close(b);
}

/* Replay states: restored only for the same epoch (an SPI recurs 16 epochs later). */
static void replay_states(void **state)
{
	struct fx *f = *state;
	struct genbook *b = open_book(f);
	struct link_gens *g = genbook_link(b, &f->link, 10);
	struct rot_sa sa = { .dst = f->link.local, .epoch = 10, .gen = 0 };
	struct kern_replay r = { .window = 128, .seq = 4242, .bmp_len = 4,
				 .bmp = { 0xffffffff, 1, 2, 3 } }, got;

	sa.spi = rot_spi(f->link.spi_prefix, 10, 0);
	assert_int_equal(genbook_replay_of(b, &sa, &got), 0);
	assert_int_equal(genbook_stage_replay(b, g, &sa, &r, 77), 0);
	assert_int_equal(genbook_commit(b), 0);
	genbook_close(b);
	b = open_book(f);
	assert_int_equal(genbook_replay_of(b, &sa, &got), 1);
	assert_int_equal(got.seq, 4242);
	assert_int_equal(got.window, 128);
	assert_int_equal(got.bmp_len, 4);
	assert_int_equal(got.bmp[0], 0xffffffff);
	assert_int_equal(got.bmp[3], 3);
	sa.epoch = 26;
	assert_int_equal(genbook_replay_of(b, &sa, &got), 0);
	genbook_close(b);
}

/*
 * A fresh start adds 17 inbound SAs per link: a lookup of an SA with no
 * replay row of its epoch reads neither SQLite nor the file system; one
 * with a row does (one read).
 */
static void replay_lookups_without_rows_cost_nothing(void **state)
{
	struct fx *f = *state;
	struct genbook *b = open_book(f);
	struct link_gens *g = genbook_link(b, &f->link, 10);
	struct rot_sa sa = { .dst = f->link.local, .epoch = 10 };
	struct kern_replay r = { .window = 128, .seq = 99, .bmp_len = 4 }, got;
	struct genbook_stats st;

	for (uint8_t gen = 0; gen <= ROT_GEN_MAX; gen++) {
		sa.gen = gen;
		sa.spi = rot_spi(f->link.spi_prefix, 10, gen);
		assert_int_equal(genbook_replay_of(b, &sa, &got), 0);
	}
	st = genbook_stats(b);
	assert_int_equal(st.replay_lookups, ROT_GEN_MAX + 1);
	assert_int_equal(st.db_reads, 0);
	assert_int_equal(st.file_checks, 0);

	sa.gen = 3;
	sa.spi = rot_spi(f->link.spi_prefix, 10, 3);
	assert_int_equal(genbook_stage_replay(b, g, &sa, &r, 77), 0);
	assert_int_equal(genbook_commit(b), 0);
	assert_int_equal(genbook_replay_of(b, &sa, &got), 1);
	assert_int_equal(got.seq, 99);
	assert_int_equal(genbook_stats(b).db_reads, 1);
	sa.epoch = 26; /* the same SPI 16 epochs later: the row is of another epoch */
	assert_int_equal(genbook_replay_of(b, &sa, &got), 0);
	assert_int_equal(genbook_stats(b).db_reads, 1);
	genbook_close(b);

	/* Loaded at open: the row is found after a restart. */
	b = open_book(f);
	sa.epoch = 10;
	assert_int_equal(genbook_replay_of(b, &sa, &got), 1);
	assert_int_equal(got.seq, 99);
	genbook_close(b);
}

/* A generations.db put back under a running book (a restored copy): its replay rows are seen. */
static void replay_rows_of_a_restored_file(void **state)
{
	struct fx *f = *state;
	struct genbook *b = open_book(f);
	struct link_gens *g = genbook_link(b, &f->link, 10);
	struct rot_sa sa = { .dst = f->link.local, .epoch = 10, .gen = 2 };
	struct kern_replay r = { .window = 128, .seq = 5150, .bmp_len = 4 }, got;
	char other[64], from[128], to[128];
	struct genbook *fresh;
	char err[512];

	sa.spi = rot_spi(f->link.spi_prefix, 10, 2);
	assert_int_equal(genbook_stage_replay(b, g, &sa, &r, 77), 0);
	assert_int_equal(genbook_commit(b), 0);
	genbook_close(b); /* the last connection: the WAL is checkpointed into the file */

	snprintf(other, sizeof(other), "/tmp/test-genbook-XXXXXX");
	assert_non_null(mkdtemp(other));
	assert_int_equal(genbook_open(other, &fresh, err, sizeof(err)), 0);
	assert_non_null(genbook_link(fresh, &f->link, 10));
	assert_int_equal(genbook_replay_of(fresh, &sa, &got), 0);
	/* As an operator restores it: the old file's WAL goes too, or SQLite would apply it. */
	snprintf(to, sizeof(to), "%s/%s-wal", other, GENS_DB_NAME);
	assert_int_equal(unlink(to), 0);
	snprintf(to, sizeof(to), "%s/%s-shm", other, GENS_DB_NAME);
	assert_int_equal(unlink(to), 0);
	snprintf(from, sizeof(from), "%s/%s", f->dir, GENS_DB_NAME);
	snprintf(to, sizeof(to), "%s/%s", other, GENS_DB_NAME);
	assert_int_equal(rename(from, to), 0);
	assert_int_equal(genbook_check_file(fresh), 0);
	assert_int_equal(genbook_replay_of(fresh, &sa, &got), 1);
	assert_int_equal(got.seq, 5150);
	genbook_close(fresh);
	fixture_rm_tree(other);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(fresh_then_records, setup, teardown),
		cmocka_unit_test_setup_teardown(rollback_forgets, setup, teardown),
		cmocka_unit_test_setup_teardown(series_used_up, setup, teardown),
		cmocka_unit_test_setup_teardown(promotion, setup, teardown),
		cmocka_unit_test_setup_teardown(replay_states, setup, teardown),
		cmocka_unit_test_setup_teardown(replay_lookups_without_rows_cost_nothing, setup,
						teardown),
		cmocka_unit_test_setup_teardown(replay_rows_of_a_restored_file, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
