/* SPDX-License-Identifier: ISC */
/*
 * Tests for svc/daemon/ledger's queue: outside a resync the per-SA rows, their
 * events and rotations are written at the commit, in the order the hooks
 * reported them, with entries that left the table, alerts, reloads and a
 * failing database in between. Built with ASan: a queued pointer that
 * outlives its entry or its config fails here.
 */
#include <arpa/inet.h>
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

#include "fake_daemon.h"
#include "fixture.h"
#include "rotate/keysched.h"
#include "store/store.h"
#include "store/store_test.h"
#include "svc/daemon/ledger.h"

struct fixture {
	char dir[64];
	struct fake_daemon d;
	struct ledger *l;
	struct config *cfg; /* heap: test_reload frees one */
	uv_timer_t tick;
};

static void tick_cb(uv_timer_t *t)
{
}

static struct config *new_config(const char *dir, const char *link)
{
	struct config *cfg = calloc(1, sizeof(*cfg));

	assert_non_null(cfg);
	cfg->daemon.kernel = CONF_KERNEL_SIM;
	cfg->daemon.event_retention = 30 * 86400;
	snprintf(cfg->daemon.state_dir, sizeof(cfg->daemon.state_dir), "%s", dir);
	cfg->links = calloc(1, sizeof(*cfg->links));
	assert_non_null(cfg->links);
	cfg->nlinks = 1;
	snprintf(cfg->links[0].name, sizeof(cfg->links[0].name), "%s", link);
	cfg->links[0].spi_prefix = 0x123456;
	return cfg;
}

static void free_config(struct config *cfg)
{
	free(cfg->links);
	free(cfg);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct daemon_port port;

	if (!f)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/test_ledger.XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	f->cfg = new_config(f->dir, "l1");
	f->d.cfg = f->cfg;
	f->d.table = mon_table_new();
	if (uv_loop_init(&f->d.loop) || !f->d.table)
		return -1;
	uv_timer_init(&f->d.loop, &f->tick);
	uv_timer_start(&f->tick, tick_cb, 10, 10);
	port = fake_daemon_port(&f->d);
	if (ledger_new(&port, &f->l))
		return -1;
	f->d.obs = ledger_observer(f->l);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	ledger_stop(f->l);
	fixture_loop_close(&f->d.loop);
	ledger_free(f->l);
	mon_table_free(f->d.table);
	free_config(f->cfg);
	fixture_rm_tree(f->dir);
	free(f);
	return 0;
}

/* A table entry for spi, as the daemon makes one for a reply (managed by the config's link). */
static struct mon_sa *put(struct fixture *f, uint32_t spi)
{
	struct rot_sa sa = { .spi = spi, .proto = IPPROTO_ESP };
	struct mon_sa *e;
	bool created;

	sa.src.family = sa.dst.family = AF_INET;
	assert_int_equal(inet_pton(AF_INET, "192.0.2.1", sa.src.bytes), 1);
	assert_int_equal(inet_pton(AF_INET, "192.0.2.2", sa.dst.bytes), 1);
	e = mon_table_put(f->d.table, &sa, &created);
	assert_non_null(e);
	assert_true(created);
	e->managed = true;
	e->sa.link = &f->d.cfg->links[0];
	e->sa.dir = ROT_DIR_OUT;
	e->sa.epoch = spi & 0xff;
	e->added_at = 1000;
	e->state = MON_MATURE;
	return e;
}

/* What the daemon does when an entry leaves the table. */
static void drop(struct fixture *f, struct mon_sa *e, const char *why)
{
	struct rot_sa id = e->sa;

	f->d.obs->sa_gone(f->d.obs->self, e, why);
	assert_true(mon_table_del(f->d.table, &id));
}

/* One loop turn: the prepare callback commits (no kernel channel: nothing pending). */
static void turn(struct fixture *f)
{
	uv_run(&f->d.loop, UV_RUN_ONCE);
}

static struct store *reader(struct fixture *f)
{
	struct store *s;
	char err[128];

	assert_int_equal(store_open(f->dir, true, &s, err, sizeof(err)), 0);
	return s;
}

static size_t events(struct fixture *f, struct store_event **rows)
{
	struct store *s = reader(f);
	size_t n;

	assert_int_equal(store_event_list(s, 0, NULL, rows, &n), 0);
	store_close(s);
	return n;
}

/* Rows of the event table: an add or delete the ledger wrote is kept in its SA's row (v7). */
static int64_t event_rows(struct fixture *f)
{
	int64_t n = -1;

	assert_int_equal(store_test_query_int(f->dir, "SELECT count(*) FROM event", &n), 0);
	return n;
}

static int64_t live_id(struct fixture *f, uint32_t spi, struct store_sa *out)
{
	struct store *s = reader(f);
	int ret = store_sa_find_live(s, "192.0.2.2", spi, IPPROTO_ESP, out);

	store_close(s);
	return ret ? 0 : out->id;
}

/* Nothing reaches the database before the commit; then rows and events in hook order. */
static void test_written_at_commit(void **state)
{
	struct fixture *f = *state;
	struct mon_sa *a = put(f, 0x12345601), *b = put(f, 0x12345602);
	struct store_event *ev;
	struct store_sa row;
	int64_t ida;

	f->d.obs->sa_added(f->d.obs->self, a, false);
	f->d.obs->sa_added(f->d.obs->self, b, false);
	a->state = MON_DYING;
	f->d.obs->sa_changed(f->d.obs->self, a); /* one row write for a: its state then */
	assert_int_equal(a->store_id, 0);
	assert_int_equal(events(f, &ev), 0);
	turn(f);
	ida = live_id(f, 0x12345601, &row);
	assert_true(ida > 0);
	assert_int_equal(a->store_id, ida);
	assert_int_equal(row.state, STORE_SA_DYING);
	assert_string_equal(row.link, "l1");
	assert_int_equal(a->ledger_slot, 0);
	assert_int_equal(events(f, &ev), 2);
	assert_int_equal(ev[0].kind, STORE_EV_ADD);
	assert_int_equal(ev[0].spi, 0x12345601);
	assert_int_equal(ev[0].sa_id, ida);
	assert_int_equal(ev[1].spi, 0x12345602);
	assert_true(ev[1].sa_id > ida);
	store_list_free(ev);
}

/* An entry added and gone before the commit: its row, then its end, from a copy. */
static void test_gone_before_commit(void **state)
{
	struct fixture *f = *state;
	struct mon_sa *a = put(f, 0x12345603), *b = put(f, 0x12345604);
	struct store_event *ev;
	struct store_sa row;
	struct store *s;
	size_t n;

	f->d.obs->sa_added(f->d.obs->self, a, false);
	f->d.obs->sa_added(f->d.obs->self, b, false);
	drop(f, a, "deleted (rotation)"); /* a is freed here */
	turn(f);
	assert_int_equal(events(f, &ev), 3);
	assert_int_equal(ev[0].kind, STORE_EV_ADD);
	assert_int_equal(ev[0].spi, 0x12345603);
	assert_int_equal(ev[1].spi, 0x12345604);
	assert_int_equal(ev[2].kind, STORE_EV_DELETE);
	assert_int_equal(ev[2].spi, 0x12345603);
	assert_string_equal(ev[2].message, "deleted (rotation)");
	assert_string_equal(ev[2].link, "l1");
	assert_true(ev[2].sa_id > 0);
	assert_int_equal(ev[2].sa_id, ev[0].sa_id);
	store_list_free(ev);
	assert_int_equal(event_rows(f), 0);
	assert_int_equal(live_id(f, 0x12345603, &row), 0); /* gone */
	s = reader(f);
	{
		struct store_sa_query q = { .include_gone = true };
		struct store_sa *rows;

		assert_int_equal(store_sa_list(s, &q, &rows, &n), 0);
		assert_int_equal(n, 2);
		assert_int_equal(rows[0].spi, 0x12345603);
		assert_int_equal(rows[0].state, STORE_SA_GONE);
		assert_int_equal(rows[1].state, STORE_SA_MATURE);
		store_list_free(rows);
	}
	store_close(s);
}

/* An entry gone after its row was committed: the delete event is made from the row. */
static void test_gone_after_commit(void **state)
{
	struct fixture *f = *state;
	struct mon_sa *a = put(f, 0x12345609);
	struct store_event *ev;
	struct store_sa row;
	int64_t id;

	f->d.obs->sa_added(f->d.obs->self, a, false);
	turn(f);
	id = live_id(f, 0x12345609, &row);
	assert_true(id > 0);
	drop(f, a, "deleted (rotation)");
	assert_int_equal(live_id(f, 0x12345609, &row), id); /* not before the commit */
	turn(f);
	assert_int_equal(live_id(f, 0x12345609, &row), 0);
	assert_int_equal(events(f, &ev), 2);
	assert_int_equal(event_rows(f), 0);
	assert_int_equal(ev[1].kind, STORE_EV_DELETE);
	assert_int_equal(ev[1].sa_id, id);
	assert_int_equal(ev[1].spi, 0x12345609);
	assert_int_equal(ev[1].proto, IPPROTO_ESP);
	assert_string_equal(ev[1].src, "192.0.2.1");
	assert_string_equal(ev[1].dst, "192.0.2.2");
	assert_string_equal(ev[1].link, "l1");
	assert_string_equal(ev[1].message, "deleted (rotation)");
	store_list_free(ev);
}

/* A pass's worth of rows is written and committed a chunk a loop turn, in order. */
static void test_chunked(void **state)
{
	struct fixture *f = *state;
	enum { N = 4500 };
	struct mon_sa *last = NULL;
	struct store_event *ev;
	size_t n = 0;
	int turns = 0;

	for (uint32_t i = 0; i < N; i++) {
		last = put(f, 0x12340000 + i);
		f->d.obs->sa_added(f->d.obs->self, last, false);
	}
	turn(f); /* the first chunk: written and committed, the rest not yet */
	turns++;
	assert_int_equal(events(f, &ev), 2000);
	for (size_t i = 0; i < 2000; i++)
		assert_int_equal(ev[i].spi, 0x12340000 + i);
	store_list_free(ev);
	/* An entry whose row is still queued leaves between two chunks. */
	drop(f, last, "deleted (rotation)");
	while ((n = events(f, &ev)) < N + 1 && turns < 20) {
		store_list_free(ev);
		turn(f);
		turns++;
	}
	assert_true(turns >= 3 && turns < 20); /* 4,500 in chunks of 2,000 */
	assert_int_equal(n, N + 1);
	for (size_t i = 0; i < N; i++) {
		assert_int_equal(ev[i].kind, STORE_EV_ADD);
		assert_int_equal(ev[i].spi, 0x12340000 + i);
		assert_true(i == 0 || ev[i].id > ev[i - 1].id);
	}
	assert_int_equal(ev[N].kind, STORE_EV_DELETE);
	assert_int_equal(ev[N].sa_id, ev[N - 1].sa_id);
	store_list_free(ev);
}

/* An alert about a queued SA comes after its add, and names its row. */
static void test_alert_after_queued(void **state)
{
	struct fixture *f = *state;
	struct mon_sa *a = put(f, 0x12345605);
	struct store_event *ev;

	f->d.obs->sa_added(f->d.obs->self, a, false);
	f->d.obs->alert(f->d.obs->self, "expire-soft", a, NULL, "soft lifetime reached");
	turn(f);
	assert_int_equal(events(f, &ev), 2);
	assert_int_equal(ev[0].kind, STORE_EV_ADD);
	assert_int_equal(ev[1].kind, STORE_EV_EXPIRE_SOFT);
	assert_true(ev[1].sa_id > 0);
	assert_int_equal(ev[1].sa_id, ev[0].sa_id);
	store_list_free(ev);
}

/* A reload between the hooks and the commit: the queue is written before the old config goes. */
static void test_reload(void **state)
{
	struct fixture *f = *state;
	struct mon_sa *a = put(f, 0x12345606);
	struct config *next = new_config(f->dir, "l2");
	struct store_rotation *rot;
	struct store *s;
	size_t n;

	f->d.obs->sa_added(f->d.obs->self, a, false);
	f->d.obs->rotation(f->d.obs->self, a->sa.link, &a->sa, true, NULL);
	f->d.obs->config_swap(f->d.obs->self);
	a->sa.link = &next->links[0];
	f->d.cfg = next;
	free_config(f->cfg); /* ASan: anything still queued that points into it fails */
	f->cfg = next;
	turn(f);
	s = reader(f);
	assert_int_equal(store_rotation_list(s, 0, NULL, &rot, &n), 0);
	assert_int_equal(n, 1);
	assert_string_equal(rot[0].link, "l1");
	assert_int_equal(rot[0].new_spi, 0x12345606);
	assert_int_equal(rot[0].epoch, 6);
	assert_int_equal(rot[0].old_spi, rot_spi(0x123456, 5, 0));
	store_list_free(rot);
	store_close(s);
}

/* The database breaks with writes queued: they are dropped, entries and copies with them. */
static void test_store_fails(void **state)
{
	struct fixture *f = *state;
	struct mon_sa *a = put(f, 0x12345607), *b = put(f, 0x12345608);
	char path[128];

	f->d.obs->sa_added(f->d.obs->self, a, false);
	f->d.obs->sa_added(f->d.obs->self, b, false);
	drop(f, a, "deleted (rotation)");
	/* The database file replaced under the daemon: the commit notices and closes the store. */
	snprintf(path, sizeof(path), "%s/%s", f->dir, STORE_DB_NAME);
	assert_int_equal(unlink(path), 0);
	turn(f);
	assert_int_equal(b->ledger_slot, 0);
	assert_int_equal(b->store_id > 0, 1); /* written into the transaction that then failed */
	/* While broken: hooks write nothing and queue nothing. */
	f->d.obs->sa_changed(f->d.obs->self, b);
	assert_int_equal(b->ledger_slot, 0);
	drop(f, b, "flushed");
}

/* A refresh dump as the daemon reports it to the ledger: every entry of the table, then the end. */
static void refresh(struct fixture *f, struct mon_sa *const *es, size_t n)
{
	f->d.obs->resync_begin(f->d.obs->self);
	for (size_t i = 0; i < n; i++)
		f->d.obs->sa_changed(f->d.obs->self, es[i]);
	f->d.obs->synced(f->d.obs->self, n);
	turn(f);
}

static int64_t row_int(struct fixture *f, const char *col, int64_t id)
{
	char sql[128];
	int64_t v = -1;

	snprintf(sql, sizeof(sql), "SELECT %s FROM sa WHERE id = %lld", col, (long long)id);
	assert_int_equal(store_test_query_int(f->dir, sql, &v), 0);
	return v;
}

/*
 * A refresh that finds an entry as the ledger last wrote it only marks its
 * row seen: the row stays live, and is not read (a change made behind the
 * ledger's back stays); a changed entry is written; after the store was
 * reopened (here: the file replaced), nothing the ledger wrote before is
 * trusted, and the refresh records the entry in the new file.
 */
static void test_refresh_unchanged(void **state)
{
	struct fixture *f = *state;
	struct mon_sa *a = put(f, 0x1234560a), *b = put(f, 0x1234560b);
	struct mon_sa *both[] = { a, b };
	struct store_sa row;
	char path[160];
	int64_t ida, idb;

	f->d.obs->sa_added(f->d.obs->self, a, false);
	f->d.obs->sa_added(f->d.obs->self, b, false);
	turn(f);
	ida = live_id(f, 0x1234560a, &row);
	idb = live_id(f, 0x1234560b, &row);
	assert_true(ida > 0 && idb > 0);

	refresh(f, both, 2);
	assert_int_equal(live_id(f, 0x1234560a, &row), ida);
	assert_int_equal(live_id(f, 0x1234560b, &row), idb);

	assert_int_equal(store_test_exec(f->dir, "UPDATE sa SET packets = 77"), 0);
	b->bytes = 500;
	refresh(f, both, 2);
	assert_int_equal(row_int(f, "packets", ida), 77); /* a: only marked seen */
	assert_int_equal(row_int(f, "bytes", idb), 500); /* b: written */
	assert_int_equal(row_int(f, "packets", idb), 0);
	assert_int_equal(live_id(f, 0x1234560a, &row), ida);

	/* Only a in the next dump: b's row ends. */
	refresh(f, both, 1);
	assert_int_equal(live_id(f, 0x1234560a, &row), ida);
	assert_int_equal(live_id(f, 0x1234560b, &row), 0);

	/* The file replaced: the commit notices, the store is reopened (REOPEN_MS later). */
	snprintf(path, sizeof(path), "%s/%s", f->dir, STORE_DB_NAME);
	assert_int_equal(unlink(path), 0);
	a->bytes = 1; /* a write, so that the commit finds the file gone */
	f->d.obs->sa_changed(f->d.obs->self, a);
	turn(f);
	for (int i = 0; i < 200 && access(path, F_OK) != 0; i++) {
		usleep(50 * 1000);
		uv_run(&f->d.loop, UV_RUN_NOWAIT);
	}
	assert_int_equal(access(path, F_OK), 0);
	/* a as last written (into the transaction that failed): recorded anew all the same. */
	refresh(f, both, 1);
	assert_true(live_id(f, 0x1234560a, &row) > 0);
	assert_int_equal(row.bytes, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_written_at_commit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_gone_before_commit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_gone_after_commit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_chunked, setup, teardown),
		cmocka_unit_test_setup_teardown(test_alert_after_queued, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reload, setup, teardown),
		cmocka_unit_test_setup_teardown(test_store_fails, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refresh_unchanged, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
