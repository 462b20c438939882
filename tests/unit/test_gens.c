/* SPDX-License-Identifier: ISC */
/* Unit tests for store/gens.c: the generation records' file, round trips, rules, hostile rows, durability. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>
#include "fixture.h"

#include "store/gens.h"

#define T0 INT64_C(1700000000)
#define LINK_A "2a 192.0.2.1 198.51.100.7"
#define LINK_B "959a92 2001:db8::1 2001:db8::2"

struct fixture {
	char tmp[64];  /* mkdtemp directory */
	char dir[128]; /* state dir inside it, not created */
	char db[192];  /* dir/generations.db */
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	snprintf(f->tmp, sizeof(f->tmp), "/tmp/test_gens.XXXXXX");
	if (!mkdtemp(f->tmp)) {
		free(f);
		return -1;
	}
	snprintf(f->dir, sizeof(f->dir), "%s/state", f->tmp);
	snprintf(f->db, sizeof(f->db), "%s/%s", f->dir, GENS_DB_NAME);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	fixture_rm_tree(f->tmp);
	free(f);
	return 0;
}

static struct gens *open_ok(const struct fixture *f, bool *fresh)
{
	char err[GENS_ERRMSG_LEN] = "";
	struct gens *g = NULL;
	int rc = gens_open(f->dir, &g, fresh, err, sizeof(err));

	if (rc)
		print_error("gens_open: %s\n", err);
	assert_int_equal(rc, 0);
	assert_non_null(g);
	return g;
}

static int open_err(const struct fixture *f, char *err, size_t size)
{
	struct gens *g = (struct gens *)1;
	bool fresh;
	int rc = gens_open(f->dir, &g, &fresh, err, size);

	assert_null(g);
	return rc;
}

/* Raw SQL on the file, as an attacker or a broken disk would write it. */
static void raw_exec(const struct fixture *f, const char *sql)
{
	sqlite3 *db = NULL;
	char *msg = NULL;

	assert_int_equal(sqlite3_open(f->db, &db), SQLITE_OK);
	if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
		print_error("%s: %s\n", sql, msg ? msg : "?");
	sqlite3_free(msg);
	assert_int_equal(sqlite3_errcode(db), SQLITE_OK);
	sqlite3_close(db);
}

static int64_t raw_int(const struct fixture *f, const char *sql)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	int64_t v;

	assert_int_equal(sqlite3_open(f->db, &db), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return v;
}

/* Everything gens_load hands out, copied. */
#define MAXR 32
struct seen {
	size_t nlink, nout, nin, nreplay;
	struct gens_link link[MAXR];
	struct gens_out out[MAXR];
	struct gens_in in[MAXR];
	struct gens_replay replay[MAXR];
	int stop_after; /* stop with 7 after this many records of any kind (0: never) */
	struct gens *g; /* to call gens_load from a callback */
	int nested;
};

static int stop(struct seen *s)
{
	size_t n = s->nlink + s->nout + s->nin + s->nreplay;

	if (s->g)
		s->nested = gens_load(s->g, &(struct gens_visit){ 0 });
	return s->stop_after && n >= (size_t)s->stop_after ? 7 : 0;
}

static int on_link(const struct gens_link *r, void *arg)
{
	struct seen *s = arg;

	assert_true(s->nlink < MAXR);
	s->link[s->nlink++] = *r;
	return stop(s);
}

static int on_out(const struct gens_out *r, void *arg)
{
	struct seen *s = arg;

	assert_true(s->nout < MAXR);
	s->out[s->nout++] = *r;
	return stop(s);
}

static int on_in(const struct gens_in *r, void *arg)
{
	struct seen *s = arg;

	assert_true(s->nin < MAXR);
	s->in[s->nin++] = *r;
	return stop(s);
}

static int on_replay(const struct gens_replay *r, void *arg)
{
	struct seen *s = arg;

	assert_true(s->nreplay < MAXR);
	s->replay[s->nreplay++] = *r;
	return stop(s);
}

static int load(struct gens *g, struct seen *s)
{
	struct gens_visit v = { on_link, on_out, on_in, on_replay, s };

	memset(s, 0, sizeof(*s));
	return gens_load(g, &v);
}

static struct gens_link mk_link(const char *link, int64_t first_epoch, bool fresh)
{
	struct gens_link r = { .first_epoch = first_epoch, .fresh = fresh, .at = T0 };

	snprintf(r.link, sizeof(r.link), "%s", link);
	return r;
}

static struct gens_out mk_out(const char *link, int64_t epoch, uint8_t gen)
{
	struct gens_out r = { .epoch = epoch, .gen = gen, .at = T0 + epoch };

	snprintf(r.link, sizeof(r.link), "%s", link);
	return r;
}

static struct gens_in mk_in(const char *link, int64_t epoch, uint8_t gen, uint8_t prev)
{
	struct gens_in r = { .epoch = epoch, .gen = gen, .prev = prev, .since = T0 + epoch };

	snprintf(r.link, sizeof(r.link), "%s", link);
	return r;
}

static struct gens_replay mk_replay(const char *link, int64_t epoch, uint8_t gen, uint32_t spi,
				    const char *dst, uint32_t bmp_len)
{
	struct gens_replay r = { .epoch = epoch, .gen = gen, .spi = spi, .window = 32 * bmp_len,
				 .seq = 1000 + spi, .seq_hi = 2, .bmp_len = bmp_len, .at = T0 };

	snprintf(r.link, sizeof(r.link), "%s", link);
	snprintf(r.dst, sizeof(r.dst), "%s", dst);
	for (uint32_t i = 0; i < bmp_len; i++)
		r.bmp[i] = 0x80000001u ^ (i * 0x01010101u);
	return r;
}

static void creates_dir_and_file(void **state)
{
	struct fixture *f = *state;
	struct stat st;
	bool fresh = false;
	mode_t old = umask(022);
	struct gens *g = open_ok(f, &fresh);

	umask(old);
	assert_true(fresh);
	assert_int_equal(stat(f->dir, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0700);
	assert_int_equal(stat(f->db, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_false(gens_file_replaced(g));
	assert_string_equal(gens_errmsg(g), "");
	gens_close(g);
	gens_close(NULL);
	assert_int_equal(raw_int(f, "PRAGMA user_version"), GENS_SCHEMA_VERSION);
	assert_int_equal(raw_int(f, "PRAGMA application_id"), 0x73616b67);
	assert_int_equal(raw_int(f, "SELECT journal_mode = 'wal' FROM pragma_journal_mode"), 1);

	/* An existing file is tightened to 0600. */
	assert_int_equal(chmod(f->db, 0644), 0);
	g = open_ok(f, &fresh);
	assert_int_equal(stat(f->db, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	gens_close(g);
}

static void refuses_odd_files(void **state)
{
	struct fixture *f = *state;
	char err[GENS_ERRMSG_LEN] = "", target[160];
	struct gens *g = NULL;
	struct stat st;
	int fd;

	/* A symbolic link, even to a good file: refused, and the target left alone. */
	assert_int_equal(mkdir(f->dir, 0700), 0);
	snprintf(target, sizeof(target), "%s/elsewhere", f->tmp);
	fd = open(target, O_CREAT | O_WRONLY, 0644);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(symlink(target, f->db), 0);
	assert_int_equal(open_err(f, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "symbolic link"));
	assert_int_equal(stat(target, &st), 0);
	assert_int_equal(st.st_size, 0);
	assert_int_equal(st.st_mode & 07777, 0644);
	assert_int_equal(unlink(f->db), 0);

	/* A directory. */
	assert_int_equal(mkdir(f->db, 0700), 0);
	assert_int_equal(open_err(f, err, sizeof(err)), -EINVAL);
	assert_int_equal(rmdir(f->db), 0);

	/* Another SQLite database (tables, no schema version). */
	raw_exec(f, "CREATE TABLE t (x)");
	assert_int_equal(open_err(f, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "not sakeyd's generation records"));
	assert_int_equal(unlink(f->db), 0);

	/* A newer schema. */
	g = open_ok(f, NULL);
	gens_close(g);
	raw_exec(f, "PRAGMA user_version = 9");
	assert_int_equal(open_err(f, err, sizeof(err)), -EPROTONOSUPPORT);
	assert_int_equal(unlink(f->db), 0);

	/* The state directory is a file. */
	assert_int_equal(rmdir(f->dir), 0);
	fd = open(f->dir, O_CREAT | O_WRONLY, 0600);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(open_err(f, err, sizeof(err)), -ENOTDIR);
	assert_int_equal(unlink(f->dir), 0);

	/* No directory at all. */
	{
		bool fresh;

		g = (struct gens *)1;
		assert_int_equal(gens_open("", &g, &fresh, NULL, 0), -EINVAL);
		assert_null(g);
	}
}

static void round_trip(void **state)
{
	struct fixture *f = *state;
	struct gens *g = open_ok(f, NULL);
	struct gens_replay r6 = mk_replay(LINK_B, 7, 15, 0x959a92f7, "2001:DB8:0:0::2", 128);
	struct gens_replay r4 = mk_replay(LINK_A, 491234, 1, 0x2a12, "192.0.2.1", 1);
	struct gens_replay r0 = mk_replay(LINK_A, 491233, 0, 0x2a01, "192.0.2.1", 0);
	struct seen *s = calloc(1, sizeof(*s));

	assert_non_null(s);
	assert_int_equal(gens_put_link(g, &(struct gens_link){ .link = LINK_B, .first_epoch = 7,
							      .fresh = true, .at = T0 }),
			 0);
	assert_int_equal(gens_put_link(g, &(struct gens_link){ .link = LINK_A,
							      .first_epoch = -3, .at = T0 + 1 }),
			 0);
	/* Out of order on the way in, in (link, epoch) order on the way out. */
	assert_int_equal(gens_put_out(g, &(struct gens_out){ LINK_A, 491234, 15, T0 + 2 }), 0);
	assert_int_equal(gens_put_out(g, &(struct gens_out){ LINK_A, 491233, 0, T0 + 3 }), 0);
	assert_int_equal(gens_put_out(g, &(struct gens_out){ LINK_B, -1, 8, T0 + 4 }), 0);
	assert_int_equal(gens_put_in(g, &(struct gens_in){ LINK_B, 7, GENS_GEN_UNKNOWN,
							  GENS_GEN_UNKNOWN, T0 + 5 }),
			 0);
	assert_int_equal(gens_put_in(g, &(struct gens_in){ LINK_A, 491234, 1, 0, T0 + 6 }), 0);
	assert_int_equal(gens_put_replay(g, &r6), 0);
	assert_int_equal(gens_put_replay(g, &r4), 0);
	assert_int_equal(gens_put_replay(g, &r0), 0);
	gens_close(g);

	g = open_ok(f, NULL);
	assert_int_equal(load(g, s), 0);
	assert_int_equal(s->nlink, 2);
	assert_string_equal(s->link[0].link, LINK_A);
	assert_int_equal(s->link[0].first_epoch, -3);
	assert_false(s->link[0].fresh);
	assert_int_equal(s->link[0].at, T0 + 1);
	assert_string_equal(s->link[1].link, LINK_B);
	assert_int_equal(s->link[1].first_epoch, 7);
	assert_true(s->link[1].fresh);

	assert_int_equal(s->nout, 3);
	assert_string_equal(s->out[0].link, LINK_A);
	assert_int_equal(s->out[0].epoch, 491233);
	assert_int_equal(s->out[0].gen, 0);
	assert_int_equal(s->out[0].at, T0 + 3);
	assert_int_equal(s->out[1].epoch, 491234);
	assert_int_equal(s->out[1].gen, 15);
	assert_string_equal(s->out[2].link, LINK_B);
	assert_int_equal(s->out[2].epoch, -1);
	assert_int_equal(s->out[2].gen, 8);

	assert_int_equal(s->nin, 2);
	assert_string_equal(s->in[0].link, LINK_A);
	assert_int_equal(s->in[0].gen, 1);
	assert_int_equal(s->in[0].prev, 0);
	assert_int_equal(s->in[0].since, T0 + 6);
	assert_int_equal(s->in[1].gen, GENS_GEN_UNKNOWN);
	assert_int_equal(s->in[1].prev, GENS_GEN_UNKNOWN);

	assert_int_equal(s->nreplay, 3);
	assert_int_equal(s->replay[0].spi, 0x2a01);
	assert_int_equal(s->replay[0].bmp_len, 0);
	assert_int_equal(s->replay[1].spi, 0x2a12);
	assert_int_equal(s->replay[1].gen, 1);
	assert_string_equal(s->replay[1].dst, "192.0.2.1");
	assert_int_equal(s->replay[1].window, 32);
	assert_int_equal(s->replay[1].seq, 1000 + 0x2a12);
	assert_int_equal(s->replay[1].seq_hi, 2);
	assert_int_equal(s->replay[1].bmp_len, 1);
	assert_int_equal(s->replay[1].bmp[0], r4.bmp[0]);
	assert_int_equal(s->replay[1].bmp[1], 0);
	/* The address in inet_ntop form; all 128 words back in order. */
	assert_string_equal(s->replay[2].dst, "2001:db8::2");
	assert_int_equal(s->replay[2].spi, 0x959a92f7);
	assert_int_equal(s->replay[2].epoch, 7);
	assert_int_equal(s->replay[2].gen, 15);
	assert_memory_equal(s->replay[2].bmp, r6.bmp, sizeof(r6.bmp));
	assert_string_equal(s->replay[2].link, LINK_B);

	/* NULL callbacks skip a kind. */
	{
		struct gens_visit v = { .out = on_out, .arg = s };

		memset(s, 0, sizeof(*s));
		assert_int_equal(gens_load(g, &v), 0);
		assert_int_equal(s->nout, 3);
		assert_int_equal(s->nlink + s->nin + s->nreplay, 0);
	}
	/* A non-zero callback result stops the load and is returned. */
	memset(s, 0, sizeof(*s));
	s->stop_after = 4;
	assert_int_equal(gens_load(g, &(struct gens_visit){ on_link, on_out, on_in, on_replay, s }),
			 7);
	assert_int_equal(s->nlink + s->nout + s->nin + s->nreplay, 4);
	/* Loading again from a callback is refused. */
	memset(s, 0, sizeof(*s));
	s->g = g;
	assert_int_equal(gens_load(g, &(struct gens_visit){ .replay = on_replay, .arg = s }), 0);
	assert_int_equal(s->nested, -EDEADLK);
	gens_close(g);
	free(s);
}

static void upserts(void **state)
{
	struct fixture *f = *state;
	struct gens *g = open_ok(f, NULL);
	struct seen *s = calloc(1, sizeof(*s));
	struct gens_link l = mk_link(LINK_A, 10, true);
	struct gens_replay r = mk_replay(LINK_A, 10, 0, 0x2a0a, "198.51.100.7", 4);

	assert_non_null(s);
	assert_int_equal(gens_put_link(g, &l), 0);
	l.first_epoch = 11;
	l.fresh = false;
	l.at = T0 + 100;
	assert_int_equal(gens_put_link(g, &l), 0); /* absent only: the first stays */
	assert_int_equal(gens_put_out(g, &(struct gens_out){ LINK_A, 10, 0, T0 }), 0);
	assert_int_equal(gens_put_out(g, &(struct gens_out){ LINK_A, 10, 1, T0 + 9 }), 0);
	assert_int_equal(gens_put_in(g, &(struct gens_in){ LINK_A, 10, GENS_GEN_UNKNOWN,
							  GENS_GEN_UNKNOWN, T0 }),
			 0);
	assert_int_equal(gens_put_in(g, &(struct gens_in){ LINK_A, 10, 15, GENS_GEN_UNKNOWN,
							  T0 + 5 }),
			 0);
	assert_int_equal(gens_put_replay(g, &r), 0);
	/* Same (dst, spi), in another spelling: one row, the later state, shorter bitmap. */
	snprintf(r.dst, sizeof(r.dst), "::ffff:198.51.100.7");
	assert_int_equal(gens_put_replay(g, &r), 0); /* a different address: a second row */
	snprintf(r.dst, sizeof(r.dst), "198.51.100.7");
	r.seq = 5000;
	r.bmp_len = 2;
	r.bmp[2] = 0xffffffff;
	assert_int_equal(gens_put_replay(g, &r), 0);

	assert_int_equal(load(g, s), 0);
	assert_int_equal(s->nlink, 1);
	assert_int_equal(s->link[0].first_epoch, 10);
	assert_true(s->link[0].fresh);
	assert_int_equal(s->link[0].at, T0);
	assert_int_equal(s->nout, 1);
	assert_int_equal(s->out[0].gen, 1);
	assert_int_equal(s->out[0].at, T0 + 9);
	assert_int_equal(s->nin, 1);
	assert_int_equal(s->in[0].gen, 15);
	assert_int_equal(s->in[0].since, T0 + 5);
	assert_int_equal(s->nreplay, 2);
	for (size_t i = 0; i < 2; i++) {
		if (strcmp(s->replay[i].dst, "198.51.100.7") != 0) {
			assert_string_equal(s->replay[i].dst, "::ffff:198.51.100.7");
			continue;
		}
		assert_int_equal(s->replay[i].seq, 5000);
		assert_int_equal(s->replay[i].bmp_len, 2);
		assert_int_equal(s->replay[i].bmp[0], r.bmp[0]);
		assert_int_equal(s->replay[i].bmp[1], r.bmp[1]);
		assert_int_equal(s->replay[i].bmp[2], 0); /* past bmp_len: neither stored nor read */
	}

	/* Deleting by (dst, spi), in any spelling; deleting nothing is fine. */
	assert_int_equal(gens_del_replay(g, "198.51.100.007", 0x2a0a), -EINVAL);
	assert_int_equal(gens_del_replay(g, "::ffff:c633:6407", 0x2a0a), 0);
	assert_int_equal(gens_del_replay(g, "198.51.100.7", 0x2a0b), 0);
	assert_int_equal(load(g, s), 0);
	assert_int_equal(s->nreplay, 1);
	assert_string_equal(s->replay[0].dst, "198.51.100.7");
	gens_close(g);
	free(s);
}

static void fresh_flag(void **state)
{
	struct fixture *f = *state;
	bool fresh = false;
	struct gens *g = open_ok(f, &fresh);
	struct gens_link l = mk_link(LINK_A, 1, true);

	assert_true(fresh);
	gens_close(g);
	/* Opened and closed with nothing written: still fresh. */
	g = open_ok(f, &fresh);
	assert_true(fresh);
	assert_int_equal(gens_begin(g), 0);
	assert_int_equal(gens_put_link(g, &l), 0);
	assert_int_equal(gens_commit(g), 0);
	gens_close(g);
	g = open_ok(f, &fresh);
	assert_false(fresh);
	gens_close(g);

	/* Emptied (every record deleted): fresh again. */
	raw_exec(f, "DELETE FROM link");
	g = open_ok(f, &fresh);
	assert_true(fresh);
	/* Any kind of record counts. */
	assert_int_equal(gens_put_replay(g, &(struct gens_replay){ .link = LINK_A, .dst = "::1" }),
			 0);
	gens_close(g);
	g = open_ok(f, &fresh);
	assert_false(fresh);
	gens_close(g);
}

static void prune(void **state)
{
	struct fixture *f = *state;
	struct gens *g = open_ok(f, NULL);
	struct seen *s = calloc(1, sizeof(*s));
	bool fresh = true;

	assert_non_null(s);
	static const char *const links[] = { LINK_A, LINK_B };

	for (size_t k = 0; k < 2; k++) {
		const char *link = links[k];
		struct gens_link l = mk_link(link, 5, false);

		assert_int_equal(gens_put_link(g, &l), 0);
		for (int64_t e = 5; e < 10; e++) {
			struct gens_out o = mk_out(link, e, 0);
			struct gens_in i = mk_in(link, e, 0, GENS_GEN_UNKNOWN);
			uint32_t spi = (k ? 0x3a00u : 0x2a00u) + (uint32_t)e;
			struct gens_replay r = mk_replay(link, e, 0, spi, "192.0.2.1", 1);

			assert_int_equal(gens_put_out(g, &o), 0);
			assert_int_equal(gens_put_in(g, &i), 0);
			assert_int_equal(gens_put_replay(g, &r), 0);
		}
	}
	/* Epochs 5, 6, 7 of A: three rows of each kind. */
	assert_int_equal(gens_prune(g, LINK_A, 8), 9);
	assert_int_equal(gens_prune(g, LINK_A, 8), 0);
	assert_int_equal(gens_prune(g, "no such link", 100), 0);
	assert_int_equal(gens_prune(g, "", 100), -EINVAL);
	assert_int_equal(load(g, s), 0);
	assert_int_equal(s->nlink, 2);
	assert_int_equal(s->nout, 2 + 5);
	assert_int_equal(s->nin, 2 + 5);
	assert_int_equal(s->nreplay, 2 + 5);
	assert_string_equal(s->out[0].link, LINK_A);
	assert_int_equal(s->out[0].epoch, 8);
	assert_int_equal(s->replay[0].epoch, 8);
	assert_int_equal(s->in[1].epoch, 9);
	assert_string_equal(s->in[2].link, LINK_B);
	assert_int_equal(s->in[2].epoch, 5);
	/* Everything of A: only its link row stays, so the records are not fresh. */
	assert_int_equal(gens_prune(g, LINK_A, INT64_MAX), 6);
	gens_close(g);
	g = open_ok(f, &fresh);
	assert_false(fresh);
	assert_int_equal(load(g, s), 0);
	assert_int_equal(s->nlink, 2);
	assert_int_equal(s->nout, 5);
	gens_close(g);
	free(s);
}

static void rollback_leaves_nothing(void **state)
{
	struct fixture *f = *state;
	struct gens *g = open_ok(f, NULL);
	struct seen *s = calloc(1, sizeof(*s));
	struct gens_link l = mk_link(LINK_A, 3, true);
	struct gens_out o = mk_out(LINK_A, 3, 15);
	struct gens_in i = mk_in(LINK_A, 3, 0, GENS_GEN_UNKNOWN);
	struct gens_replay r = mk_replay(LINK_A, 3, 0, 0x2a03, "192.0.2.1", 2);
	bool fresh = false;

	assert_non_null(s);
	assert_int_equal(gens_commit(g), -EINVAL); /* no transaction */
	assert_int_equal(gens_begin(g), 0);
	assert_int_equal(gens_begin(g), -EALREADY);
	assert_int_equal(gens_put_link(g, &l), 0);
	assert_int_equal(gens_put_out(g, &o), 0);
	assert_int_equal(gens_put_in(g, &i), 0);
	assert_int_equal(gens_put_replay(g, &r), 0);
	gens_rollback(g);
	assert_int_equal(load(g, s), 0);
	assert_int_equal(s->nlink + s->nout + s->nin + s->nreplay, 0);
	gens_rollback(g); /* no transaction: nothing */

	/* Closed with a transaction open: nothing either. */
	assert_int_equal(gens_begin(g), 0);
	assert_int_equal(gens_put_out(g, &o), 0);
	/* A refused write leaves the rest of the transaction. */
	o.gen = 16;
	assert_int_equal(gens_put_out(g, &o), -EINVAL);
	gens_close(g);
	g = open_ok(f, &fresh);
	assert_true(fresh);

	/* ... and commits it when asked. */
	assert_int_equal(gens_begin(g), 0);
	o.gen = 14;
	assert_int_equal(gens_put_out(g, &o), 0);
	o.gen = 16;
	assert_int_equal(gens_put_out(g, &o), -EINVAL);
	assert_int_equal(gens_commit(g), 0);
	assert_int_equal(load(g, s), 0);
	assert_int_equal(s->nout, 1);
	assert_int_equal(s->out[0].gen, 14);
	gens_close(g);
	free(s);
}

static void rejects_bad_input(void **state)
{
	struct fixture *f = *state;
	struct gens *g = open_ok(f, NULL);
	struct gens_link l = mk_link(LINK_A, 1, false);
	struct gens_out o = mk_out(LINK_A, 1, 0);
	struct gens_in i = mk_in(LINK_A, 1, 0, 0);
	struct gens_replay r = mk_replay(LINK_A, 1, 0, 0x2a01, "192.0.2.1", 1);
	struct seen *s = calloc(1, sizeof(*s));

	assert_non_null(s);
	/* Generations: 0..15 out and replay; in also GENS_GEN_UNKNOWN. */
	o.gen = 16;
	assert_int_equal(gens_put_out(g, &o), -EINVAL);
	assert_non_null(strstr(gens_errmsg(g), "generation"));
	o.gen = GENS_GEN_UNKNOWN;
	assert_int_equal(gens_put_out(g, &o), -EINVAL);
	o.gen = 15;
	assert_int_equal(gens_put_out(g, &o), 0);
	i.gen = 16;
	assert_int_equal(gens_put_in(g, &i), -EINVAL);
	i.gen = 200;
	assert_int_equal(gens_put_in(g, &i), -EINVAL);
	i.gen = 3;
	i.prev = 16;
	assert_int_equal(gens_put_in(g, &i), -EINVAL);
	i.prev = GENS_GEN_UNKNOWN;
	assert_int_equal(gens_put_in(g, &i), 0);
	r.gen = 16;
	assert_int_equal(gens_put_replay(g, &r), -EINVAL);
	r.gen = GENS_GEN_UNKNOWN;
	assert_int_equal(gens_put_replay(g, &r), -EINVAL);
	r.gen = 0;
	r.bmp_len = GENS_BMP_MAX + 1;
	assert_int_equal(gens_put_replay(g, &r), -EINVAL);
	r.bmp_len = UINT32_MAX;
	assert_int_equal(gens_put_replay(g, &r), -EINVAL);
	r.bmp_len = GENS_BMP_MAX;
	assert_int_equal(gens_put_replay(g, &r), 0);

	/* Addresses: IP literals only. */
	static const char *const bad_dst[] = { "", "host.example", "192.0.2", "192.0.2.1 ",
					       "2001:db8::1%eth0", "::g" };
	for (size_t k = 0; k < sizeof(bad_dst) / sizeof(bad_dst[0]); k++) {
		snprintf(r.dst, sizeof(r.dst), "%s", bad_dst[k]);
		assert_int_equal(gens_put_replay(g, &r), -EINVAL);
		assert_int_equal(gens_del_replay(g, bad_dst[k], 1), -EINVAL);
	}
	memset(r.dst, 'a', sizeof(r.dst)); /* no NUL within the field */
	assert_int_equal(gens_put_replay(g, &r), -EINVAL);
	assert_int_equal(gens_del_replay(g, NULL, 1), -EINVAL);

	/* Links: not empty, bounded, printable, not key-shaped. */
	static const char *const bad_link[] = {
		"",
		"2a 192.0.2.1\n198.51.100.7",
		"2a 192.0.2.1\t198.51.100.7",
		"00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
		"x AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8",
		"2a 192.0.2.1 198.51.100.7 \xc3\xa9",
	};
	for (size_t k = 0; k < sizeof(bad_link) / sizeof(bad_link[0]); k++) {
		snprintf(l.link, sizeof(l.link), "%s", bad_link[k]);
		snprintf(o.link, sizeof(o.link), "%s", bad_link[k]);
		snprintf(i.link, sizeof(i.link), "%s", bad_link[k]);
		snprintf(r.link, sizeof(r.link), "%s", bad_link[k]);
		assert_int_equal(gens_put_link(g, &l), -EINVAL);
		assert_int_equal(gens_put_out(g, &o), -EINVAL);
		assert_int_equal(gens_put_in(g, &i), -EINVAL);
		assert_int_equal(gens_put_replay(g, &r), -EINVAL);
		assert_int_equal(gens_prune(g, bad_link[k], 10), -EINVAL);
	}
	memset(l.link, 'z', sizeof(l.link));
	assert_int_equal(gens_put_link(g, &l), -EINVAL);
	memset(l.link, 'z', sizeof(l.link) - 1);
	l.link[sizeof(l.link) - 1] = '\0'; /* 95 bytes: the longest */
	assert_int_equal(gens_put_link(g, &l), 0);

	/* Only the accepted writes are there. */
	assert_int_equal(load(g, s), 0);
	assert_int_equal(s->nlink, 1);
	assert_int_equal(strlen(s->link[0].link), GENS_LINK_LEN - 1);
	assert_int_equal(s->nout, 1);
	assert_int_equal(s->nin, 1);
	assert_int_equal(s->nreplay, 1);
	assert_int_equal(s->replay[0].bmp_len, GENS_BMP_MAX);
	gens_close(g);
	free(s);
}

/* One hostile row at a time: gens_load fails with -EIO and a message naming it, and no more. */
static void expect_corrupt(const struct fixture *f, const char *sql, const char *why)
{
	struct seen *s = calloc(1, sizeof(*s));
	struct gens *g;
	int rc;

	assert_non_null(s);
	raw_exec(f, sql);
	g = open_ok(f, NULL);
	rc = load(g, s);
	if (rc != -EIO)
		print_error("%s: load returned %d\n", sql, rc);
	assert_int_equal(rc, -EIO);
	if (!strstr(gens_errmsg(g), why))
		print_error("%s: %s\n", sql, gens_errmsg(g));
	assert_non_null(strstr(gens_errmsg(g), why));
	gens_close(g);
	free(s);
}

static void hostile_rows(void **state)
{
	struct fixture *f = *state;
	struct gens *g = open_ok(f, NULL);
	struct gens_replay r = mk_replay(LINK_A, 4, 0, 0x2a04, "192.0.2.1", 2);
	struct seen *s = calloc(1, sizeof(*s));

	assert_non_null(s);
	assert_int_equal(gens_put_link(g, &(struct gens_link){ .link = LINK_A }), 0);
	assert_int_equal(gens_put_replay(g, &r), 0);
	gens_close(g);

	/* The schema's CHECKs refuse such rows to an honest writer ... */
	{
		sqlite3 *db = NULL;

		assert_int_equal(sqlite3_open(f->db, &db), SQLITE_OK);
		assert_int_equal(sqlite3_exec(db, "UPDATE replay SET bmp_len = 3", NULL, NULL, NULL),
				 SQLITE_CONSTRAINT);
		assert_int_equal(sqlite3_exec(db, "INSERT INTO gen_out VALUES ('l', 1, 200, 0)",
					      NULL, NULL, NULL),
				 SQLITE_CONSTRAINT);
		sqlite3_close(db);
	}
	/* ... not to whoever else writes the file; the reader checks every row. */
#define RAW "PRAGMA ignore_check_constraints = 1;"
	expect_corrupt(f, RAW "UPDATE replay SET bmp_len = 3", "bitmap length disagrees");
	expect_corrupt(f, RAW "UPDATE replay SET bmp_len = 2, bmp = x'00'", "bitmap length");
	expect_corrupt(f, RAW "UPDATE replay SET bmp_len = 200, bmp = zeroblob(800)", "bmp_len");
	expect_corrupt(f, RAW "UPDATE replay SET bmp_len = -1", "bmp_len");
	expect_corrupt(f, RAW "UPDATE replay SET bmp_len = 0, bmp = ''", "not a blob");
	expect_corrupt(f, RAW "UPDATE replay SET bmp_len = 1, bmp = 'abcd'", "not a blob");
	expect_corrupt(f, RAW "UPDATE replay SET bmp_len = 2, bmp = zeroblob(8), gen = 200",
		       "generation");
	expect_corrupt(f, RAW "UPDATE replay SET gen = 0, dst = 'host.example'", "dst");
	expect_corrupt(f, RAW "UPDATE replay SET dst = '192.0.2.01'", "dst");
	expect_corrupt(f, RAW "UPDATE replay SET dst = '2001:DB8::2'", "inet_ntop form");
	expect_corrupt(f, RAW "UPDATE replay SET dst = '192.0.2.1', spi = 4294967296", "spi");
	expect_corrupt(f, RAW "UPDATE replay SET spi = 10756, seq = -1", "sequence");
	expect_corrupt(f, RAW "UPDATE replay SET seq = 'many'", "sequence");
	expect_corrupt(f, RAW "UPDATE replay SET seq = 1, epoch = 4.5", "epoch");
	expect_corrupt(f, RAW "UPDATE replay SET epoch = 4, link = x'41420043'", "link text");
	expect_corrupt(f, RAW "DELETE FROM replay; INSERT INTO gen_out VALUES ('" LINK_A
				  "', 1, 200, 0)",
		       "generation out of range");
	expect_corrupt(f, RAW "UPDATE gen_out SET gen = 16", "generation out of range");
	expect_corrupt(f, RAW "UPDATE gen_out SET gen = 255", "generation out of range");
	expect_corrupt(f, RAW "UPDATE gen_out SET gen = 'one'", "generation out of range");
	expect_corrupt(f, RAW "DELETE FROM gen_out; INSERT INTO gen_in VALUES ('" LINK_A
				  "', 1, 200, 255, 0)",
		       "generation out of range");
	expect_corrupt(f, RAW "UPDATE gen_in SET gen = 255, prev = 16", "previous generation");
	expect_corrupt(f, RAW "DELETE FROM gen_in; UPDATE link SET fresh = 2", "fresh");
	expect_corrupt(f, RAW "UPDATE link SET fresh = 0, link = '" \
			      "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff'",
		       "link text");
	expect_corrupt(f, RAW "UPDATE link SET link = ''", "link text");
	expect_corrupt(f, RAW "UPDATE link SET link = 'a' || char(10) || 'b'", "link text");
	/* Repaired, the file loads again. */
	raw_exec(f, "UPDATE link SET link = '" LINK_A "'");
	g = open_ok(f, NULL);
	assert_int_equal(load(g, s), 0);
	assert_int_equal(s->nlink, 1);
	gens_close(g);
	free(s);
}

/*
 * Durability: a child commits, tells the parent, and is killed (SIGKILL)
 * before it can close or checkpoint; the parent reads the record back.
 */
static void commit_survives_kill(void **state)
{
	struct fixture *f = *state;
	struct seen *s = calloc(1, sizeof(*s));
	struct gens *g = open_ok(f, NULL);
	int fds[2], status = 0;
	char c = 0;
	pid_t pid;

	assert_non_null(s);
	gens_close(g);
	assert_int_equal(pipe(fds), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct gens *cg = NULL;
		struct gens_out o = mk_out(LINK_A, 491234, 15);
		bool fresh = false;

		close(fds[0]);
		if (gens_open(f->dir, &cg, &fresh, NULL, 0) || !fresh || gens_begin(cg) ||
		    gens_put_link(cg, &(struct gens_link){ .link = LINK_A, .first_epoch = 491234,
							   .fresh = true, .at = T0 }) ||
		    gens_put_out(cg, &o) || gens_commit(cg))
			_exit(1);
		/* Outside a transaction: durable on return as well. */
		o.epoch++;
		o.gen = 14;
		if (gens_put_out(cg, &o))
			_exit(1);
		if (write(fds[1], "k", 1) != 1)
			_exit(1);
		pause();
		_exit(2);
	}
	close(fds[1]);
	assert_int_equal(read(fds[0], &c, 1), 1);
	assert_int_equal(c, 'k');
	assert_int_equal(kill(pid, SIGKILL), 0);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status));
	assert_int_equal(WTERMSIG(status), SIGKILL);
	close(fds[0]);
	{
		/* Killed before any checkpoint: the records are in the WAL alone. */
		char wal[220];
		struct stat st;

		snprintf(wal, sizeof(wal), "%s-wal", f->db);
		assert_int_equal(stat(wal, &st), 0);
		assert_true(st.st_size > 0);
	}

	{
		bool fresh = true;

		g = open_ok(f, &fresh);
		assert_false(fresh);
	}
	assert_int_equal(load(g, s), 0);
	assert_int_equal(s->nlink, 1);
	assert_true(s->link[0].fresh);
	assert_int_equal(s->nout, 2);
	assert_int_equal(s->out[0].epoch, 491234);
	assert_int_equal(s->out[0].gen, 15);
	assert_int_equal(s->out[1].epoch, 491235);
	assert_int_equal(s->out[1].gen, 14);
	gens_close(g);
	free(s);
}

static void notices_file_replaced(void **state)
{
	struct fixture *f = *state;
	struct gens *g = open_ok(f, NULL);

	assert_false(gens_file_replaced(g));
	assert_int_equal(unlink(f->db), 0);
	assert_true(gens_file_replaced(g));
	gens_close(g);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(creates_dir_and_file, setup, teardown),
		cmocka_unit_test_setup_teardown(refuses_odd_files, setup, teardown),
		cmocka_unit_test_setup_teardown(round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(upserts, setup, teardown),
		cmocka_unit_test_setup_teardown(fresh_flag, setup, teardown),
		cmocka_unit_test_setup_teardown(prune, setup, teardown),
		cmocka_unit_test_setup_teardown(rollback_leaves_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(rejects_bad_input, setup, teardown),
		cmocka_unit_test_setup_teardown(hostile_rows, setup, teardown),
		cmocka_unit_test_setup_teardown(commit_survives_kill, setup, teardown),
		cmocka_unit_test_setup_teardown(notices_file_replaced, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
