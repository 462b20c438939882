/* SPDX-License-Identifier: ISC */
/*
 * Tests for svc/daemon/ckpt (and store_ckpt_*): with the writer's automatic
 * checkpoints off, the thread's checkpoints keep the WAL from growing with
 * every commit, and the final one at stop leaves every committed row in the
 * database file itself and the WAL empty.
 */
#include <fcntl.h>
#include <ftw.h>
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
#include <uv.h>

#include "fixture.h"
#include "store/store.h"
#include "svc/daemon/ckpt.h"

#define COMMITS 200
#define EVENTS 20 /* a commit: about 5 KiB of rows, several 16 KiB pages with the indexes */

struct fixture {
	char dir[64];
	char wal[128];
	struct store *s;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char err[256];

	if (!f)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/test_ckpt.XXXXXX");
	if (!mkdtemp(f->dir) || store_open(f->dir, false, &f->s, err, sizeof(err)))
		return -1;
	snprintf(f->wal, sizeof(f->wal), "%s/%s-wal", f->dir, STORE_DB_NAME);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	store_close(f->s);
	fixture_rm_tree(f->dir);
	free(f);
	return 0;
}

static int64_t wal_bytes(const struct fixture *f)
{
	struct stat st;

	return stat(f->wal, &st) == 0 ? (int64_t)st.st_size : 0;
}

/* One commit of EVENTS events, as the ledger's after a pass (smaller). */
static void commit_events(struct fixture *f, int round)
{
	assert_int_equal(store_begin(f->s), 0);
	for (int i = 0; i < EVENTS; i++) {
		struct store_event ev = { .at = 1000 + round, .kind = STORE_EV_ADD,
					  .spi = (uint32_t)(round * EVENTS + i), .proto = 50 };

		snprintf(ev.link, sizeof(ev.link), "link-%d", i);
		snprintf(ev.src, sizeof(ev.src), "192.0.2.%d", i);
		snprintf(ev.dst, sizeof(ev.dst), "198.51.100.%d", round % 250);
		memset(ev.message, 'm', 200);
		assert_int_equal(store_event_add(f->s, &ev, NULL), 0);
	}
	assert_int_equal(store_commit(f->s), 0);
}

static uint64_t events_in(const char *dir)
{
	struct store *r;
	char err[256];
	uint64_t n = 0;

	assert_int_equal(store_open(dir, true, &r, err, sizeof(err)), 0);
	assert_int_equal(store_event_count(r, STORE_EV_ADD, 0, &n), 0);
	store_close(r);
	return n;
}

/*
 * The writer's own checkpoints off (as ckpt_start leaves them): without the
 * thread the WAL holds every commit; with it, checkpointed after each
 * commit, SQLite starts the WAL over and each run finds one commit's pages.
 */
static void test_wal_bounded(void **state)
{
	struct fixture *f = *state;
	struct store_ckpt_stat st, first = { 0 };
	struct ckpt *k;
	char err[256] = "";
	int64_t alone, peak = 0, most = 0;

	assert_int_equal(store_autocheckpoint(f->s, false), 0);
	for (int i = 0; i < COMMITS; i++)
		commit_events(f, i);
	alone = wal_bytes(f);

	assert_int_equal(ckpt_start(f->s, &k, err, sizeof(err)), 0);
	for (int i = COMMITS; i < 2 * COMMITS; i++) {
		commit_events(f, i);
		ckpt_wake(k);
		ckpt_drain(k);
		assert_int_equal(ckpt_result(k, &st, err, sizeof(err)), 0);
		if (i == COMMITS) {
			first = st; /* all the commits before the thread, and this one */
			peak = wal_bytes(f);
		} else if (st.wal_frames > most) {
			most = st.wal_frames;
		}
		/* The file is reused from its start: it does not grow. */
		assert_true(wal_bytes(f) <= peak);
	}
	/* Nothing ran since the last result was read. */
	assert_int_equal(ckpt_result(k, NULL, NULL, 0), 1);
	assert_int_equal(ckpt_stop(k, false, NULL, 0), 0);
	assert_true(most > 0);
	assert_true(most * 20 < first.wal_frames);
	assert_true(first.wal_frames * 16384 <= alone + 16384 * EVENTS);
	assert_int_equal(events_in(f->dir), 2 * COMMITS * EVENTS);
}

/*
 * The final checkpoint at stop: the WAL is empty while the writer is still
 * open, and a copy of the database file alone (no -wal) has every row.
 */
static void test_final(void **state)
{
	struct fixture *f = *state;
	struct ckpt *k;
	char err[256] = "", copy[80], path[160], buf[1 << 16];
	int in, out;
	ssize_t n;

	assert_int_equal(ckpt_start(f->s, &k, err, sizeof(err)), 0);
	for (int i = 0; i < COMMITS; i++)
		commit_events(f, i); /* no wake: everything is left to the final checkpoint */
	assert_true(wal_bytes(f) > 0);
	assert_int_equal(ckpt_stop(k, true, err, sizeof(err)), 0);
	assert_int_equal(wal_bytes(f), 0);

	snprintf(copy, sizeof(copy), "%s/copy", f->dir);
	assert_int_equal(mkdir(copy, 0700), 0);
	snprintf(path, sizeof(path), "%s/%s", f->dir, STORE_DB_NAME);
	in = open(path, O_RDONLY);
	assert_true(in >= 0);
	snprintf(path, sizeof(path), "%s/%s", copy, STORE_DB_NAME);
	out = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_true(out >= 0);
	while ((n = read(in, buf, sizeof(buf))) > 0)
		assert_int_equal(write(out, buf, (size_t)n), n);
	assert_int_equal(n, 0);
	close(in);
	close(out);
	assert_int_equal(events_in(copy), COMMITS * EVENTS);
	/* The writer goes on after its checkpointer stopped. */
	commit_events(f, COMMITS);
	assert_int_equal(events_in(f->dir), (COMMITS + 1) * EVENTS);
}

/* A checkpoint connection needs a writer's store: a reader's is refused, with why. */
static void test_reader_refused(void **state)
{
	struct fixture *f = *state;
	struct store *r;
	struct ckpt *k = (struct ckpt *)1;
	char err[256] = "";

	assert_int_equal(store_open(f->dir, true, &r, err, sizeof(err)), 0);
	assert_int_equal(ckpt_start(r, &k, err, sizeof(err)), -EINVAL);
	assert_null(k);
	assert_non_null(strstr(err, "not open for writing"));
	store_close(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_wal_bounded, setup, teardown),
		cmocka_unit_test_setup_teardown(test_final, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reader_refused, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
