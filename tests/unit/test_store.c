/* SPDX-License-Identifier: ISC */
/* Unit tests for store/: schema, modes, migrations, round trips, resync, retention, locking, keys. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <limits.h>
#include <setjmp.h>
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

#include "store/store.h"
#include "store/store_test.h"

#define T0 INT64_C(1700000000)

struct fixture {
	char tmp[64];          /* mkdtemp directory */
	char dir[128];          /* state dir inside it, not created */
	char db[160];           /* dir/sakeyd.db */
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	snprintf(f->tmp, sizeof(f->tmp), "/tmp/test_store.XXXXXX");
	if (!mkdtemp(f->tmp)) {
		free(f);
		return -1;
	}
	snprintf(f->dir, sizeof(f->dir), "%s/state", f->tmp);
	snprintf(f->db, sizeof(f->db), "%s/%s", f->dir, STORE_DB_NAME);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	chmod(f->dir, 0700);
	fixture_rm_tree(f->tmp);
	free(f);
	return 0;
}

static struct store *open_writer(const struct fixture *f)
{
	char err[STORE_ERRMSG_LEN] = "";
	struct store *s = NULL;
	int rc = store_open(f->dir, false, &s, err, sizeof(err));

	if (rc)
		print_error("store_open: %s\n", err);
	assert_int_equal(rc, 0);
	assert_non_null(s);
	return s;
}

static struct store *open_reader(const struct fixture *f)
{
	char err[STORE_ERRMSG_LEN] = "";
	struct store *s = NULL;
	int rc = store_open(f->dir, true, &s, err, sizeof(err));

	if (rc)
		print_error("store_open (reader): %s\n", err);
	assert_int_equal(rc, 0);
	assert_non_null(s);
	return s;
}

static mode_t file_mode(const char *path)
{
	struct stat st;

	assert_int_equal(stat(path, &st), 0);
	return st.st_mode & 07777;
}

/* A managed inbound SA of link l1. */
static struct store_sa make_sa(uint32_t spi, const char *src, const char *dst, int64_t added_at)
{
	struct store_sa sa = { 0 };

	snprintf(sa.link, sizeof(sa.link), "l1");
	sa.dir = STORE_DIR_IN;
	sa.spi = spi;
	snprintf(sa.src, sizeof(sa.src), "%s", src);
	snprintf(sa.dst, sizeof(sa.dst), "%s", dst);
	sa.proto = 50;
	snprintf(sa.mode, sizeof(sa.mode), "transport");
	snprintf(sa.algorithm, sizeof(sa.algorithm), "aes-cbc-256-hmac-sha512");
	sa.has_epoch = true;
	sa.epoch = 491234;
	sa.managed = true;
	sa.state = STORE_SA_MATURE;
	sa.added_at = added_at;
	sa.soft_expires_at = added_at + 3630;
	sa.hard_expires_at = added_at + 7200;
	sa.bytes = 1000;
	sa.packets = 10;
	sa.last_counters_at = added_at + 5;
	snprintf(sa.key_fp, sizeof(sa.key_fp), "735063a3ff9b6832");
	sa.origin_pid = 4242;
	return sa;
}

static int64_t add_sa(struct store *s, const struct store_sa *sa)
{
	int64_t id = 0;
	int rc = store_sa_add(s, sa, &id);

	if (rc)
		print_error("store_sa_add: %s\n", store_errmsg(s));
	assert_int_equal(rc, 0);
	assert_true(id > 0);
	return id;
}

static uint64_t count_sa(struct store *s, const char *link, bool include_gone)
{
	struct store_sa_query q = { .link = link, .include_gone = include_gone };
	uint64_t n = UINT64_MAX;

	assert_int_equal(store_sa_count(s, &q, &n), 0);
	return n;
}

static int64_t query_int(const struct fixture *f, const char *sql)
{
	int64_t v = -1;

	assert_int_equal(store_test_query_int(f->dir, sql, &v), 0);
	return v;
}

static void assert_sa_equal(const struct store_sa *a, const struct store_sa *b)
{
	assert_string_equal(a->link, b->link);
	assert_int_equal(a->dir, b->dir);
	assert_int_equal(a->spi, b->spi);
	assert_string_equal(a->src, b->src);
	assert_string_equal(a->dst, b->dst);
	assert_int_equal(a->proto, b->proto);
	assert_string_equal(a->mode, b->mode);
	assert_string_equal(a->algorithm, b->algorithm);
	assert_int_equal(a->has_epoch, b->has_epoch);
	assert_int_equal(a->epoch, b->epoch);
	assert_int_equal(a->managed, b->managed);
	assert_int_equal(a->state, b->state);
	assert_int_equal(a->added_at, b->added_at);
	assert_int_equal(a->soft_expires_at, b->soft_expires_at);
	assert_int_equal(a->hard_expires_at, b->hard_expires_at);
	assert_int_equal(a->bytes, b->bytes);
	assert_int_equal(a->packets, b->packets);
	assert_int_equal(a->last_counters_at, b->last_counters_at);
	assert_string_equal(a->key_fp, b->key_fp);
	assert_int_equal(a->origin_pid, b->origin_pid);
}

/* Schema and files */

static void creates_dir_and_db(void **state)
{
	struct fixture *f = *state;
	char path[192];
	struct store *s;
	mode_t old = umask(0);

	/* Even with an empty umask: exactly 0700 and 0600. */
	s = open_writer(f);
	umask(old);
	assert_int_equal(file_mode(f->dir), 0700);
	assert_int_equal(file_mode(f->db), 0600);
	snprintf(path, sizeof(path), "%s-wal", f->db);
	assert_int_equal(file_mode(path), 0600);
	snprintf(path, sizeof(path), "%s-shm", f->db);
	assert_int_equal(file_mode(path), 0600);
	assert_int_equal(store_schema_version(s), STORE_SCHEMA_VERSION);
	assert_string_equal(store_errmsg(s), "");
	assert_false(store_in_transaction(s));
	store_close(s);

	assert_int_equal(query_int(f, "PRAGMA user_version"), STORE_SCHEMA_VERSION);
	assert_int_equal(query_int(f, "SELECT count(*) FROM pragma_journal_mode "
				      "WHERE journal_mode = 'wal'"),
			 1);
	assert_int_equal(query_int(f, "SELECT count(*) FROM sqlite_schema WHERE type = 'table' "
				      "AND name IN ('sa', 'event', 'rotation', 'meta')"),
			 4);
	assert_int_equal(query_int(f, "SELECT count(*) FROM sqlite_schema WHERE type = 'index' "
				      "AND name IN ('sa_live', 'event_at', 'event_kind_at', "
				      "'rotation_link_at', 'event_sa')"),
			 5);
	/* Opening again changes nothing. */
	s = open_writer(f);
	assert_int_equal(store_schema_version(s), STORE_SCHEMA_VERSION);
	store_close(s);
	store_close(NULL);
}

static void tightens_existing_db(void **state)
{
	struct fixture *f = *state;
	struct store *s;

	assert_int_equal(mkdir(f->dir, 0755), 0);
	assert_int_equal(close(open(f->db, O_CREAT | O_WRONLY, 0644)), 0);
	assert_int_equal(chmod(f->db, 0644), 0);
	s = open_writer(f);
	store_close(s);
	assert_int_equal(file_mode(f->db), 0600);
	/* An existing state dir is the operator's: left as it is. */
	assert_int_equal(file_mode(f->dir), 0755);
}

static void refuses_odd_files(void **state)
{
	struct fixture *f = *state;
	char err[STORE_ERRMSG_LEN];
	char target[PATH_MAX + 8];
	struct store *s = (struct store *)1;

	/* The state dir is a file. */
	assert_int_equal(close(open(f->dir, O_CREAT | O_WRONLY, 0600)), 0);
	assert_int_equal(store_open(f->dir, false, &s, err, sizeof(err)), -ENOTDIR);
	assert_null(s);
	assert_int_equal(unlink(f->dir), 0);

	/* The database is a directory. */
	assert_int_equal(mkdir(f->dir, 0700), 0);
	assert_int_equal(mkdir(f->db, 0700), 0);
	assert_int_equal(store_open(f->dir, false, &s, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "regular file"));
	assert_int_equal(rmdir(f->db), 0);

	/* The database is a symbolic link. */
	snprintf(target, sizeof(target), "%s/elsewhere.db", f->tmp);
	assert_int_equal(symlink(target, f->db), 0);
	assert_int_equal(store_open(f->dir, false, &s, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "symbolic link"));
	assert_int_equal(access(target, F_OK), -1);
	assert_int_equal(unlink(f->db), 0);

	/* Not a database at all. */
	{
		int fd = open(f->db, O_CREAT | O_WRONLY, 0600);

		assert_true(fd >= 0);
		for (int i = 0; i < 64; i++)
			assert_int_equal(write(fd, "this is no sqlite file, ", 24), 24);
		close(fd);
	}
	assert_int_equal(store_open(f->dir, false, &s, err, sizeof(err)), -EIO);
	assert_int_equal(store_open(f->dir, true, &s, err, sizeof(err)), -EIO);
	assert_int_equal(unlink(f->db), 0);

	/* A SQLite file of something else is not taken over. */
	assert_int_equal(store_test_create(f->dir, 0), 0);
	assert_int_equal(store_test_exec(f->dir, "CREATE TABLE other (x)"), 0);
	assert_int_equal(store_open(f->dir, false, &s, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "not a sakeyd ledger"));

	assert_int_equal(store_open("", false, &s, err, sizeof(err)), -EINVAL);
	assert_int_equal(store_open(NULL, true, &s, NULL, 0), -EINVAL);
}

/* Migrations */

/* Rows as a sakeyd with schema v1 wrote them. */
static const char v1_rows[] =
	"INSERT INTO sa (link, dir, spi, src, dst, proto, mode, algorithm, epoch, managed, state, "
	"added_at, soft_expires_at, hard_expires_at, bytes, packets, last_counters_at, key_fp) "
	"VALUES ('l1', 'in', 10753, '198.51.100.7', '192.0.2.1', 50, 'transport', "
	"'aes-gcm-128', 491234, 1, 'mature', 1700000000, 1700003630, 1700007200, 5, 1, "
	"1700000010, '735063a3ff9b6832');"
	"INSERT INTO sa (spi, src, dst, proto, state, added_at, gone_at) "
	"VALUES (4096, '10.0.0.1', '10.0.0.2', 50, 'gone', 1600000000, 1600000100);"
	"INSERT INTO event (at, kind, link, spi, message) "
	"VALUES (1700000000, 'add', 'l1', 10753, 'added by v1');"
	"INSERT INTO rotation (at, link, epoch, result, detail, old_spi, new_spi) "
	"VALUES (1700000000, 'l1', 491234, 'ok', '', 10753, 10754);"
	"INSERT INTO meta (key, value) VALUES ('pid', '77');";

/* Whether the bytes of needle are anywhere in the file at path (absent file: no). */
static bool file_holds(const char *path, const char *needle)
{
	size_t n = strlen(needle), len = 0, cap = 0;
	char *data = NULL;
	bool found = false;
	FILE *fp = fopen(path, "rb");

	if (!fp)
		return false;
	for (;;) {
		if (len == cap) {
			cap = cap ? cap * 2 : 65536;
			data = realloc(data, cap);
			assert_non_null(data);
		}
		size_t got = fread(data + len, 1, cap - len, fp);

		if (!got)
			break;
		len += got;
	}
	fclose(fp);
	for (size_t i = 0; !found && i + n <= len; i++)
		found = !memcmp(data + i, needle, n);
	free(data);
	return found;
}

/*
 * v6: a ledger written before hand-keyed SAs lost their fingerprints keeps
 * none of them, in no page of the database or its WAL; the link's own keep
 * theirs.
 */
static void migration_clears_foreign_fingerprints(void **state)
{
	struct fixture *f = *state;
	char wal[200];
	struct store *s;

	snprintf(wal, sizeof(wal), "%s-wal", f->db);
	assert_int_equal(mkdir(f->dir, 0700), 0);
	assert_int_equal(store_test_create(f->dir, 5), 0);
	assert_int_equal(store_test_exec(f->dir, v1_rows), 0);
	/* Two hand-keyed SAs as a v5 writer recorded them: one live, one gone. */
	assert_int_equal(store_test_exec(f->dir,
			 "INSERT INTO sa (spi, src, dst, proto, state, added_at, key_fp) "
			 "VALUES (8192, '10.0.0.1', '10.0.0.2', 50, 'mature', 1700000000, "
			 "'f00dfacecafe0001');"
			 "INSERT INTO sa (spi, src, dst, proto, state, added_at, gone_at, key_fp) "
			 "VALUES (8193, '10.0.0.1', '10.0.0.2', 50, 'gone', 1700000000, "
			 "1700000050, 'f00dfacecafe0002');"),
			 0);
	assert_true(file_holds(f->db, "f00dfacecafe0001") || file_holds(wal, "f00dfacecafe0001"));

	s = open_writer(f);
	assert_int_equal(store_schema_version(s), STORE_SCHEMA_VERSION);
	assert_int_equal(query_int(f, "SELECT count(*) FROM sa WHERE key_fp IS NOT NULL"), 1);
	assert_int_equal(query_int(f, "SELECT count(*) FROM sa WHERE key_fp = '735063a3ff9b6832' "
				      "AND managed = 1"),
			 1);
	/* Neither in the file nor in the WAL, with the writer still open. */
	for (int i = 1; i <= 2; i++) {
		char fp[20];

		snprintf(fp, sizeof(fp), "f00dfacecafe%04d", i);
		assert_false(file_holds(f->db, fp));
		assert_false(file_holds(wal, fp));
	}
	assert_true(file_holds(f->db, "735063a3ff9b6832") || file_holds(wal, "735063a3ff9b6832"));
	store_close(s);
}

/* The file deleted, or replaced by another, under an open writer: noticed. */
static void notices_file_replaced(void **state)
{
	struct fixture *f = *state;
	struct store *s = open_writer(f);
	struct store *r = NULL;
	char err[256];
	int fd;

	assert_false(store_file_replaced(s));
	assert_int_equal(unlink(f->db), 0);
	assert_true(store_file_replaced(s));
	fd = open(f->db, O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_true(fd >= 0);
	close(fd);
	assert_true(store_file_replaced(s));
	store_close(s);
	s = open_writer(f);
	assert_false(store_file_replaced(s));
	store_close(s);
	/* A reader never claims it. */
	s = open_writer(f);
	assert_int_equal(store_open(f->dir, true, &r, err, sizeof(err)), 0);
	assert_int_equal(unlink(f->db), 0);
	assert_false(store_file_replaced(r));
	assert_true(store_file_replaced(s));
	store_close(r);
	store_close(s);
}

static void migrates_from_every_version(void **state)
{
	struct fixture *f = *state;

	for (int from = 0; from <= STORE_SCHEMA_VERSION; from++) {
		struct store_event *evs = NULL;
		struct store_sa *sas = NULL;
		struct store_sa_query all = { .include_gone = true };
		struct store *s;
		size_t n = 0;
		int64_t pid = 0;

		assert_int_equal(mkdir(f->dir, 0700), 0);
		assert_int_equal(store_test_create(f->dir, from), 0);
		assert_int_equal(store_test_create(f->dir, from), -EEXIST);
		assert_int_equal(query_int(f, "PRAGMA user_version"), from);
		if (from >= 1)
			assert_int_equal(store_test_exec(f->dir, v1_rows), 0);
		if (from >= 2) /* an event that points at its SA survives v3's table rebuild */
			assert_int_equal(store_test_exec(f->dir, "INSERT INTO event (at, kind, sa_id, "
								 "message) VALUES (1700000001, "
								 "'delete', 1, 'v2 row');"),
					 0);
		if (from == 4) {
			/* v4 refuses v5's kinds. */
			assert_int_not_equal(store_test_exec(f->dir, "INSERT INTO event (at, kind) "
								     "VALUES (1, 'generation-changed')"),
					     0);
		}
		if (from < 2) {
			/* v2 is not there yet. */
			assert_int_equal(query_int(f, "SELECT count(*) FROM sqlite_schema "
						      "WHERE name = 'event_kind_at'"),
					 0);
		}

		s = open_writer(f);
		assert_int_equal(store_schema_version(s), STORE_SCHEMA_VERSION);
		assert_int_equal(store_sa_list(s, &all, &sas, &n), 0);
		if (from >= 1) {
			assert_int_equal(n, 2);
			assert_string_equal(sas[0].link, "l1");
			assert_int_equal(sas[0].dir, STORE_DIR_IN);
			assert_int_equal(sas[0].spi, 10753);
			assert_int_equal(sas[0].state, STORE_SA_MATURE);
			assert_string_equal(sas[0].key_fp, "735063a3ff9b6832");
			assert_int_equal(sas[0].origin_pid, 0); /* v2 column, NULL for old rows */
			assert_int_equal(sas[1].state, STORE_SA_GONE);
			assert_int_equal(sas[1].gone_at, 1600000100);
			assert_string_equal(sas[1].link, "");
			assert_false(sas[1].has_epoch);
			assert_int_equal(store_event_list(s, 0, NULL, &evs, &n), 0);
			assert_int_equal(n, from >= 2 ? 2 : 1);
			assert_string_equal(evs[0].message, "added by v1");
			assert_int_equal(evs[0].sa_id, 0);
			if (from >= 2) {
				assert_string_equal(evs[1].message, "v2 row");
				assert_int_equal(evs[1].sa_id, 1);
			}
			assert_int_equal(store_meta_get_int(s, STORE_META_PID, &pid), 0);
			assert_int_equal(pid, 77);
		} else {
			assert_int_equal(n, 0);
		}
		store_list_free(sas);
		store_list_free(evs);

		/* The migrated database takes current writes. */
		{
			struct store_sa sa = make_sa(0x2a01, "192.0.2.1", "198.51.100.7", T0);
			struct store_event ev = { .at = T0, .kind = STORE_EV_ADD };
			uint64_t count = 0;

			ev.sa_id = add_sa(s, &sa);
			assert_int_equal(store_event_add(s, &ev, NULL), 0);
			/* v3: the kind the v2 table's CHECK refused. */
			ev.kind = STORE_EV_XFRM_ERRORS;
			ev.sa_id = 0;
			assert_int_equal(store_event_add(s, &ev, NULL), 0);
			assert_int_equal(store_event_count(s, STORE_EV_XFRM_ERRORS, 0, &count), 0);
			assert_int_equal(count, 1);
			/* v5: key schedule v2's kinds, which the v4 table's CHECK refused. */
			for (enum store_event_kind k = STORE_EV_GENERATION_CHANGED;
			     k <= STORE_EV_REPLAY_UNPROTECTED; k++) {
				ev.kind = k;
				assert_int_equal(store_event_add(s, &ev, NULL), 0);
				assert_int_equal(store_event_count(s, k, 0, &count), 0);
				assert_int_equal(count, 1);
			}
			/* Every event of before kept its id and its SA (v5's table rebuild). */
			if (from >= 2) {
				struct store_event *all_evs = NULL;
				size_t nev = 0, found = 0;

				assert_int_equal(store_event_list(s, 0, NULL, &all_evs, &nev), 0);
				for (size_t k = 0; k < nev; k++) {
					if (strcmp(all_evs[k].message, "v2 row") != 0)
						continue;
					assert_int_equal(all_evs[k].id, 2);
					assert_int_equal(all_evs[k].sa_id, 1);
					found++;
				}
				assert_int_equal(found, 1);
				store_list_free(all_evs);
			}
		}
		store_close(s);

		assert_int_equal(query_int(f, "PRAGMA user_version"), STORE_SCHEMA_VERSION);
		assert_int_equal(query_int(f, "PRAGMA application_id"), 0x73616b64);
		assert_int_equal(query_int(f, "SELECT count(*) FROM sqlite_schema WHERE name IN "
					      "('event_kind_at', 'rotation_link_at', 'event_sa')"),
				 3);
		assert_int_equal(query_int(f, "SELECT count(*) FROM pragma_table_info('sa') "
					      "WHERE name = 'origin_pid'"),
				 1);
		assert_int_equal(query_int(f, "SELECT count(*) FROM pragma_foreign_key_check"), 0);
		/*
		 * v4: no CHECK lists three or more constants (SQLite would build an
		 * ephemeral b-tree for it on every row written) ...
		 */
		assert_int_equal(query_int(f, "SELECT count(*) FROM sqlite_schema WHERE "
					      "sql LIKE '%state IN (%' OR sql LIKE '%kind IN (%'"),
				 0);
		/* ... and the rewritten ones still refuse what the lists refused. */
		assert_int_not_equal(store_test_exec(f->dir, "INSERT INTO event (at, kind) "
							     "VALUES (1, 'bogus')"),
				     0);
		assert_int_not_equal(store_test_exec(f->dir, "INSERT INTO sa (spi, src, dst, proto, "
							     "state, added_at) VALUES (1, 'a', 'b', "
							     "50, 'bogus', 1)"),
				     0);
		assert_int_equal(store_test_exec(f->dir, "INSERT INTO event (at, kind) "
							 "VALUES (1, 'acquire-unanswered')"),
				 0);

		/* A reader accepts it now. */
		s = open_reader(f);
		assert_int_equal(count_sa(s, NULL, true), from >= 1 ? 3 : 1);
		store_close(s);

		teardown(state);
		assert_int_equal(setup(state), 0);
		f = *state;
	}
}

static void refuses_newer_schema(void **state)
{
	struct fixture *f = *state;
	char err[STORE_ERRMSG_LEN];
	struct store *s;

	assert_int_equal(mkdir(f->dir, 0700), 0);
	assert_int_equal(store_test_create(f->dir, STORE_SCHEMA_VERSION), 0);
	assert_int_equal(store_test_exec(f->dir, "PRAGMA user_version = 99"), 0);
	assert_int_equal(store_open(f->dir, false, &s, err, sizeof(err)), -EPROTONOSUPPORT);
	assert_non_null(strstr(err, "newer"));
	assert_null(s);
	assert_int_equal(store_open(f->dir, true, &s, err, sizeof(err)), -EPROTONOSUPPORT);
	assert_non_null(strstr(err, "99"));
	/* Left as it was. */
	assert_int_equal(query_int(f, "PRAGMA user_version"), 99);
}

static void reader_needs_current_schema(void **state)
{
	struct fixture *f = *state;
	char err[STORE_ERRMSG_LEN];
	struct store *s;

	/* No state dir, no database: the reader creates nothing. */
	assert_int_equal(store_open(f->dir, true, &s, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "has sakeyd run"));
	assert_int_equal(access(f->dir, F_OK), -1);

	assert_int_equal(mkdir(f->dir, 0700), 0);
	assert_int_equal(store_test_create(f->dir, 0), 0);
	assert_int_equal(store_open(f->dir, true, &s, err, sizeof(err)), -ENOENT);
	assert_int_equal(unlink(f->db), 0);

	assert_int_equal(store_test_create(f->dir, 1), 0);
	assert_int_equal(store_open(f->dir, true, &s, err, sizeof(err)), -EPROTO);
	assert_non_null(strstr(err, "older"));
	assert_int_equal(query_int(f, "PRAGMA user_version"), 1);
}

/* SAs */

static void sa_round_trip(void **state)
{
	struct fixture *f = *state;
	struct store *s = open_writer(f);
	struct store_sa in = make_sa(0x2ae2, "198.51.100.7", "192.0.2.1", T0);
	struct store_sa un = { 0 }, out;
	int64_t id, id_un;

	id = add_sa(s, &in);
	assert_int_equal(store_sa_get(s, id, &out), 0);
	assert_int_equal(out.id, id);
	assert_int_equal(out.gone_at, 0);
	assert_sa_equal(&out, &in);

	/* Unmanaged, nothing optional known; IPv6 written in a non-canonical way. */
	un.spi = 0x1000;
	snprintf(un.src, sizeof(un.src), "2001:DB8:0:0::1");
	snprintf(un.dst, sizeof(un.dst), "2001:0db8::0002");
	un.proto = 51;
	un.state = STORE_SA_LARVAL;
	un.added_at = T0 + 1;
	id_un = add_sa(s, &un);
	assert_int_equal(store_sa_get(s, id_un, &out), 0);
	snprintf(un.src, sizeof(un.src), "2001:db8::1");
	snprintf(un.dst, sizeof(un.dst), "2001:db8::2");
	assert_sa_equal(&out, &un);
	assert_string_equal(out.link, "");
	assert_int_equal(out.dir, STORE_DIR_NONE);
	assert_false(out.has_epoch);
	assert_false(out.managed);
	assert_int_equal(query_int(f, "SELECT count(*) FROM sa WHERE link IS NULL AND dir IS NULL "
				      "AND epoch IS NULL AND key_fp IS NULL AND mode IS NULL "
				      "AND soft_expires_at IS NULL AND origin_pid IS NULL"),
			 1);

	/* Looked up by identity, in any spelling of the address. */
	assert_int_equal(store_sa_find_live(s, "2001:db8:0::2", 0x1000, 51, &out), 0);
	assert_int_equal(out.id, id_un);
	assert_int_equal(store_sa_find_live(s, "192.0.2.1", 0x2ae2, 50, &out), 0);
	assert_int_equal(out.id, id);
	assert_int_equal(store_sa_find_live(s, "192.0.2.1", 0x2ae2, 51, &out), -ENOENT);
	assert_int_equal(store_sa_find_live(s, "gateway", 0x2ae2, 50, &out), -EINVAL);
	assert_int_equal(store_sa_get(s, 9999, &out), -ENOENT);

	/* Lists: all live, by link. */
	{
		struct store_sa *rows;
		struct store_sa_query l1 = { .link = "l1" };
		size_t n;

		assert_int_equal(store_sa_list(s, NULL, &rows, &n), 0);
		assert_int_equal(n, 2);
		assert_int_equal(rows[0].id, id);
		assert_int_equal(rows[1].id, id_un);
		store_list_free(rows);
		assert_int_equal(store_sa_list(s, &l1, &rows, &n), 0);
		assert_int_equal(n, 1);
		assert_sa_equal(&rows[0], &in);
		store_list_free(rows);
		l1.link = "nope";
		assert_int_equal(store_sa_list(s, &l1, &rows, &n), 0);
		assert_int_equal(n, 0);
		assert_null(rows);
	}
	store_close(s);

	/* Read back by a reader. */
	s = open_reader(f);
	assert_int_equal(store_sa_get(s, id, &out), 0);
	assert_sa_equal(&out, &in);
	store_close(s);
}

static void sa_rejects_bad_fields(void **state)
{
	struct fixture *f = *state;
	struct store *s = open_writer(f);
	struct store_sa good = make_sa(0x2a01, "192.0.2.1", "198.51.100.7", T0), sa;

	sa = good;
	snprintf(sa.src, sizeof(sa.src), "host.example");
	assert_int_equal(store_sa_add(s, &sa, NULL), -EINVAL);
	assert_non_null(strstr(store_errmsg(s), "src"));
	sa = good;
	sa.dst[0] = '\0';
	assert_int_equal(store_sa_add(s, &sa, NULL), -EINVAL);
	sa = good;
	memset(sa.dst, '1', sizeof(sa.dst)); /* unterminated */
	assert_int_equal(store_sa_add(s, &sa, NULL), -EINVAL);
	sa = good;
	snprintf(sa.key_fp, sizeof(sa.key_fp), "735063A3FF9B6832");
	assert_int_equal(store_sa_add(s, &sa, NULL), -EINVAL);
	sa = good;
	snprintf(sa.key_fp, sizeof(sa.key_fp), "735063a3ff9b683");
	assert_int_equal(store_sa_add(s, &sa, NULL), -EINVAL);
	sa = good;
	memset(sa.key_fp, 'a', sizeof(sa.key_fp)); /* 17 digits, unterminated */
	assert_int_equal(store_sa_add(s, &sa, NULL), -EINVAL);
	sa = good;
	snprintf(sa.key_fp, sizeof(sa.key_fp), "735063a3ff9b683g");
	assert_int_equal(store_sa_add(s, &sa, NULL), -EINVAL);
	sa = good;
	sa.state = STORE_SA_GONE;
	assert_int_equal(store_sa_add(s, &sa, NULL), -EINVAL);
	sa = good;
	sa.state = (enum store_sa_state)7;
	assert_int_equal(store_sa_add(s, &sa, NULL), -EINVAL);
	sa = good;
	sa.dir = (enum store_dir)9;
	assert_int_equal(store_sa_add(s, &sa, NULL), -EINVAL);
	sa = good;
	sa.proto = 0;
	assert_int_equal(store_sa_add(s, &sa, NULL), -EINVAL);
	sa = good;
	sa.added_at = 0;
	assert_int_equal(store_sa_add(s, &sa, NULL), -EINVAL);
	sa = good;
	snprintf(sa.link, sizeof(sa.link), "two words");
	assert_int_equal(store_sa_add(s, &sa, NULL), -EINVAL);
	sa = good;
	snprintf(sa.link, sizeof(sa.link), "tab\there");
	assert_int_equal(store_sa_add(s, &sa, NULL), -EINVAL);
	sa = good;
	memset(sa.algorithm, 'x', sizeof(sa.algorithm));
	assert_int_equal(store_sa_add(s, &sa, NULL), -EINVAL);
	assert_int_equal(count_sa(s, NULL, true), 0);

	/* The same checks guard updates. */
	{
		int64_t id = add_sa(s, &good);

		sa = good;
		snprintf(sa.key_fp, sizeof(sa.key_fp), "XYZ");
		assert_int_equal(store_sa_update(s, id, &sa), -EINVAL);
		sa = good;
		sa.state = STORE_SA_GONE;
		assert_int_equal(store_sa_update(s, id, &sa), -EINVAL);
		assert_int_equal(store_sa_set_state(s, id, (enum store_sa_state)9, T0), -EINVAL);
	}
	store_close(s);
}

static void sa_lifecycle(void **state)
{
	struct fixture *f = *state;
	struct store *s = open_writer(f);
	struct store_sa sa = make_sa(0x2a01, "192.0.2.1", "198.51.100.7", T0), out;
	int64_t id, id2, id3;

	sa.state = STORE_SA_LARVAL;
	id = add_sa(s, &sa);

	/* SADB_UPDATE: mature, new lifetimes, now known to belong to a link. */
	sa.state = STORE_SA_MATURE;
	sa.hard_expires_at = T0 + 9000;
	snprintf(sa.link, sizeof(sa.link), "l2");
	sa.dir = STORE_DIR_OUT;
	assert_int_equal(store_sa_update(s, id, &sa), 0);
	assert_int_equal(store_sa_get(s, id, &out), 0);
	assert_sa_equal(&out, &sa);

	/* Counters. */
	assert_int_equal(store_sa_update_counters(s, id, UINT64_C(1) << 40, 123456, T0 + 60), 0);
	assert_int_equal(store_sa_get(s, id, &out), 0);
	assert_int_equal(out.bytes, UINT64_C(1) << 40);
	assert_int_equal(out.packets, 123456);
	assert_int_equal(out.last_counters_at, T0 + 60);
	assert_int_equal(store_sa_update_counters(s, 9999, 1, 1, T0), -ENOENT);

	/* Soft expiry, then deletion. */
	assert_int_equal(store_sa_set_state(s, id, STORE_SA_DYING, T0 + 3630), 0);
	assert_int_equal(store_sa_get(s, id, &out), 0);
	assert_int_equal(out.state, STORE_SA_DYING);
	assert_int_equal(out.gone_at, 0);
	assert_int_equal(store_sa_set_state(s, id, STORE_SA_GONE, T0 + 3700), 0);
	assert_int_equal(store_sa_get(s, id, &out), 0);
	assert_int_equal(out.state, STORE_SA_GONE);
	assert_int_equal(out.gone_at, T0 + 3700);
	/* Gone is final. */
	assert_int_equal(store_sa_set_state(s, id, STORE_SA_MATURE, T0 + 3800), -ENOENT);
	assert_int_equal(store_sa_set_state(s, id, STORE_SA_GONE, T0 + 3800), -ENOENT);
	assert_int_equal(store_sa_update(s, id, &sa), -ENOENT);
	/* Final counters may still arrive with the deletion. */
	assert_int_equal(store_sa_update_counters(s, id, 5, 5, T0 + 3700), 0);
	assert_int_equal(count_sa(s, NULL, false), 0);
	assert_int_equal(count_sa(s, NULL, true), 1);

	/* The same SPI again, later: a new life, a new row. */
	id2 = add_sa(s, &sa);
	assert_true(id2 != id);
	assert_int_equal(count_sa(s, NULL, false), 1);
	assert_int_equal(count_sa(s, NULL, true), 2);

	/* An ADD while a live row of that identity exists: the old life ended unnoticed. */
	sa.added_at = T0 + 7000;
	id3 = add_sa(s, &sa);
	assert_int_equal(store_sa_get(s, id2, &out), 0);
	assert_int_equal(out.state, STORE_SA_GONE);
	assert_int_equal(out.gone_at, T0 + 7000);
	assert_int_equal(store_sa_find_live(s, "198.51.100.7", 0x2a01, 50, &out), 0);
	assert_int_equal(out.id, id3);

	/* gone_at never precedes added_at. */
	assert_int_equal(store_sa_set_state(s, id3, STORE_SA_GONE, T0), 0);
	assert_int_equal(store_sa_get(s, id3, &out), 0);
	assert_int_equal(out.gone_at, T0 + 7000);
	assert_int_equal(count_sa(s, "l2", true), 3);
	assert_int_equal(count_sa(s, "l1", true), 0);
	store_close(s);
}

/* Resync */

/* A refresh that reads an SA as the row already has it writes nothing, yet counts it seen. */
static void sync_leaves_unchanged_rows(void **state)
{
	struct fixture *f = *state;
	struct store *s = open_writer(f);
	struct store_sa a = make_sa(0x101, "192.0.2.1", "198.51.100.7", T0), out;
	uint64_t gone = 99;
	int64_t ida, id;

	a.last_counters_at = T0 + 5;
	ida = add_sa(s, &a);
	assert_int_equal(store_begin(s), 0);
	assert_int_equal(store_sa_sync_begin(s), 0);
	a.last_counters_at = T0 + 100; /* only the time of the reading differs */
	assert_int_equal(store_sa_seen(s, &a, T0 + 100, &id), 0);
	assert_int_equal(id, ida);
	assert_int_equal(store_sa_sync_end(s, T0 + 100, &gone), 0);
	assert_int_equal(store_commit(s), 0);
	assert_int_equal(gone, 0);
	assert_int_equal(store_sa_get(s, ida, &out), 0);
	assert_int_equal(out.state, STORE_SA_MATURE);
	assert_int_equal(out.last_counters_at, T0 + 5); /* not rewritten */

	/* Traffic moved the counters: the row is written, with the time of this reading. */
	assert_int_equal(store_begin(s), 0);
	assert_int_equal(store_sa_sync_begin(s), 0);
	a.bytes = 4096;
	a.last_counters_at = T0 + 200;
	assert_int_equal(store_sa_seen(s, &a, T0 + 200, &id), 0);
	assert_int_equal(store_sa_sync_end(s, T0 + 200, &gone), 0);
	assert_int_equal(store_commit(s), 0);
	assert_int_equal(store_sa_get(s, ida, &out), 0);
	assert_int_equal(out.bytes, 4096);
	assert_int_equal(out.last_counters_at, T0 + 200);
	store_close(s);
}

static void sync_reconciles(void **state)
{
	struct fixture *f = *state;
	struct store *s = open_writer(f);
	struct store_sa a = make_sa(0x101, "192.0.2.1", "198.51.100.7", T0);
	struct store_sa b = make_sa(0x102, "192.0.2.1", "198.51.100.7", T0);
	struct store_sa c = make_sa(0x103, "192.0.2.1", "198.51.100.7", T0);
	struct store_sa d = make_sa(0x104, "192.0.2.1", "198.51.100.7", T0 + 50);
	struct store_sa e = make_sa(0x105, "192.0.2.1", "198.51.100.7", T0 + 60);
	struct store_sa out;
	int64_t ida, idb, idc, id, idb2, idd, ide;
	uint64_t gone = 99;

	ida = add_sa(s, &a);
	idb = add_sa(s, &b);
	idc = add_sa(s, &c);

	assert_int_equal(store_sa_seen(s, &a, T0 + 100, &id), -EINVAL);
	assert_int_equal(store_sa_sync_end(s, T0 + 100, &gone), -EINVAL);

	assert_int_equal(store_begin(s), 0);
	assert_int_equal(store_sa_sync_begin(s), 0);
	/* a: the same life, counters moved on. */
	a.bytes = 9999;
	a.state = STORE_SA_DYING;
	assert_int_equal(store_sa_seen(s, &a, T0 + 100, &id), 0);
	assert_int_equal(id, ida);
	/* b: same identity, another life (re-added while the daemon was down). */
	b.added_at = T0 + 40;
	assert_int_equal(store_sa_seen(s, &b, T0 + 100, &idb2), 0);
	assert_true(idb2 != idb);
	/* d: new. */
	assert_int_equal(store_sa_seen(s, &d, T0 + 100, &idd), 0);
	/* e: an ADD broadcast arriving during the dump counts as seen. */
	ide = add_sa(s, &e);
	/* c: not in the dump. */
	assert_int_equal(store_sa_sync_end(s, T0 + 100, &gone), 0);
	assert_int_equal(store_commit(s), 0);
	assert_int_equal(gone, 1);

	assert_int_equal(store_sa_get(s, ida, &out), 0);
	assert_int_equal(out.state, STORE_SA_DYING);
	assert_int_equal(out.bytes, 9999);
	assert_int_equal(store_sa_get(s, idb, &out), 0);
	assert_int_equal(out.state, STORE_SA_GONE);
	assert_int_equal(out.gone_at, T0 + 40);
	assert_int_equal(store_sa_get(s, idb2, &out), 0);
	assert_int_equal(out.state, STORE_SA_MATURE);
	assert_int_equal(out.added_at, T0 + 40);
	assert_int_equal(store_sa_get(s, idc, &out), 0);
	assert_int_equal(out.state, STORE_SA_GONE);
	assert_int_equal(out.gone_at, T0 + 100);
	assert_int_equal(store_sa_get(s, idd, &out), 0);
	assert_int_equal(out.state, STORE_SA_MATURE);
	assert_int_equal(store_sa_get(s, ide, &out), 0);
	assert_int_equal(out.state, STORE_SA_MATURE);
	assert_int_equal(count_sa(s, NULL, false), 4);

	/* Unknown added_at matches the live life; a different src does not. */
	assert_int_equal(store_sa_sync_begin(s), 0);
	a.added_at = 0;
	assert_int_equal(store_sa_seen(s, &a, T0 + 200, &id), 0);
	assert_int_equal(id, ida);
	d.added_at = 0;
	snprintf(d.src, sizeof(d.src), "203.0.113.9");
	assert_int_equal(store_sa_seen(s, &d, T0 + 200, &id), 0);
	assert_true(id != idd);
	assert_int_equal(store_sa_get(s, id, &out), 0);
	assert_int_equal(out.added_at, T0 + 200);
	/* An update during the sync counts as seen too. */
	assert_int_equal(store_sa_update(s, ide, &e), 0);
	assert_int_equal(store_sa_sync_end(s, T0 + 200, &gone), 0);
	assert_int_equal(gone, 1); /* b2 */
	assert_int_equal(store_sa_get(s, idd, &out), 0);
	assert_int_equal(out.state, STORE_SA_GONE);
	assert_int_equal(out.gone_at, T0 + 200);
	assert_int_equal(count_sa(s, NULL, false), 3);

	/* A rolled-back sync is over. */
	assert_int_equal(store_begin(s), 0);
	assert_int_equal(store_sa_sync_begin(s), 0);
	store_rollback(s);
	assert_int_equal(store_sa_sync_end(s, T0 + 250, &gone), -EINVAL);
	assert_int_equal(count_sa(s, NULL, false), 3);

	/* An empty dump: everything goes; a second end needs a new begin. */
	assert_int_equal(store_sa_sync_begin(s), 0);
	assert_int_equal(store_sa_sync_end(s, T0 + 300, NULL), 0);
	assert_int_equal(count_sa(s, NULL, false), 0);
	assert_int_equal(store_sa_sync_end(s, T0 + 300, &gone), -EINVAL);
	store_close(s);
}

/* Events and rotations */

static int count_cb(const struct store_event *ev, void *arg)
{
	(*(int *)arg)++;
	return 0;
}

static int stop_cb(const struct store_event *ev, void *arg)
{
	(*(int *)arg)++;
	return 42;
}

/* ev is about row sa_id, a make_sa(spi, "192.0.2.1", "198.51.100.7", ...): the row's fields. */
static void assert_event_of_sa(const struct store_event *ev, int64_t sa_id, uint32_t spi)
{
	assert_int_equal(ev->sa_id, sa_id);
	assert_string_equal(ev->link, "l1");
	assert_int_equal(ev->spi, spi);
	assert_string_equal(ev->src, "192.0.2.1");
	assert_string_equal(ev->dst, "198.51.100.7");
	assert_int_equal(ev->proto, 50);
	assert_int_equal(ev->origin_pid, 4242);
}

/* An event made from an SA row: its fields are the row's; no row, no event. */
static void event_for_sa(void **state)
{
	struct fixture *f = *state;
	struct store *s = open_writer(f);
	struct store_sa sa = make_sa(0x2a02, "192.0.2.1", "198.51.100.7", T0);
	int64_t sa_id = add_sa(s, &sa);
	struct store_event *rows;
	size_t nrows;

	assert_int_equal(store_event_add_for_sa(s, sa_id, T0 + 9, STORE_EV_DELETE,
						"deleted (rotation)"),
			 0);
	assert_int_equal(store_event_add_for_sa(s, sa_id + 1, T0 + 9, STORE_EV_DELETE, "x"),
			 -ENOENT);
	assert_int_equal(store_event_add_for_sa(s, sa_id, T0 + 9, STORE_EV_COUNT_, "x"), -EINVAL);
	/* Key-shaped text is redacted here too. */
	assert_int_equal(store_event_add_for_sa(s, sa_id, T0 + 10, STORE_EV_SA_REMOVED,
						"key 0123456789abcdef0123456789abcdef"),
			 0);
	assert_int_equal(store_event_list(s, 0, NULL, &rows, &nrows), 0);
	assert_int_equal(nrows, 2);
	assert_int_equal(rows[0].at, T0 + 9);
	assert_int_equal(rows[0].kind, STORE_EV_DELETE);
	assert_event_of_sa(&rows[0], sa_id, 0x2a02);
	assert_string_equal(rows[0].message, "deleted (rotation)");
	assert_null(strstr(rows[1].message, "0123456789abcdef"));
	store_list_free(rows);
	store_close(s);
}

/* The kinds of events[0..n) in order, as one string ("add,delete,..."). */
static const char *kinds_of(const struct store_event *rows, size_t n, char *buf, size_t len)
{
	size_t off = 0;

	buf[0] = 0;
	for (size_t i = 0; i < n && off < len; i++)
		off += (size_t)snprintf(buf + off, len - off, "%s%s", i ? "," : "",
					store_event_kind_name(rows[i].kind));
	return buf;
}

/*
 * v7: an add or delete event kept in its SA's row lists as the event it is,
 * with the row's fields, in the order the events were recorded among the
 * event rows (all in the same second here), also after a reopen; a second
 * delete is refused (-ENOENT: the caller writes an event row); a rolled-back
 * transaction leaves nothing; the counts include them.
 */
static void events_kept_in_sa_rows(void **state)
{
	struct fixture *f = *state;
	struct store *s = open_writer(f);
	struct store_sa a = make_sa(0x3a01, "192.0.2.1", "198.51.100.7", T0);
	struct store_sa b = make_sa(0x3a02, "192.0.2.1", "198.51.100.7", T0);
	struct store_sa c = make_sa(0x3a03, "192.0.2.1", "198.51.100.7", T0);
	struct store_event ev = { .at = T0, .kind = STORE_EV_EXPIRE_SOFT };
	struct store_event *rows;
	int64_t ida = 0, idb = 0, idc = 0;
	struct store_sa row;
	uint64_t n = 0;
	size_t nrows;
	char kinds[256];

	assert_int_equal(store_begin(s), 0);
	assert_int_equal(store_sa_add_logged(s, &a, T0, "added by sakeyd", &ida), 0);
	assert_int_equal(store_event_add(s, &ev, NULL), 0);
	assert_int_equal(store_sa_add_logged(s, &b, T0, "added via netlink (ip xfrm)", &idb), 0);
	assert_int_equal(store_sa_gone_logged(s, ida, T0, "deleted (rotation)"), 0);
	assert_int_equal(store_sa_gone_logged(s, ida, T0, "again"), -ENOENT);
	assert_int_equal(store_sa_gone_logged(s, ida + 100, T0, "none"), -ENOENT);
	assert_int_equal(store_commit(s), 0);

	assert_int_equal(store_event_list(s, 0, NULL, &rows, &nrows), 0);
	assert_string_equal(kinds_of(rows, nrows, kinds, sizeof(kinds)),
			    "add,expire-soft,add,delete");
	assert_event_of_sa(&rows[0], ida, 0x3a01);
	assert_string_equal(rows[0].message, "added by sakeyd");
	assert_string_equal(rows[2].message, "added via netlink (ip xfrm)");
	assert_int_equal(rows[3].sa_id, ida);
	assert_string_equal(rows[3].message, "deleted (rotation)");
	for (size_t i = 1; i < nrows; i++)
		assert_true(rows[i].id > rows[i - 1].id);
	store_list_free(rows);
	assert_int_equal(store_sa_get(s, ida, &row), 0);
	assert_int_equal(row.state, STORE_SA_GONE);
	assert_int_equal(row.gone_at, T0);

	/* A rolled-back add and delete leave no event behind. */
	assert_int_equal(store_begin(s), 0);
	assert_int_equal(store_sa_add_logged(s, &c, T0 + 1, "added by sakeyd", &idc), 0);
	assert_int_equal(store_sa_gone_logged(s, idb, T0 + 1, "deleted (rotation)"), 0);
	store_rollback(s);
	store_close(s);

	/* After a reopen, new events come after the old ones, rows or not. */
	s = open_writer(f);
	assert_int_equal(store_sa_add_logged(s, &c, T0, "added by sakeyd", &idc), 0);
	assert_int_equal(store_sa_set_state(s, idb, STORE_SA_GONE, T0 + 5), 0);
	/* A row already gone keeps its end and takes the delete event. */
	assert_int_equal(store_sa_gone_logged(s, idb, T0 + 9, "deleted (expired)"), 0);
	assert_int_equal(store_sa_get(s, idb, &row), 0);
	assert_int_equal(row.gone_at, T0 + 5);
	assert_int_equal(store_event_add(s, &ev, NULL), 0);
	store_close(s);

	s = open_reader(f);
	assert_int_equal(store_event_list(s, 0, NULL, &rows, &nrows), 0);
	assert_string_equal(kinds_of(rows, nrows, kinds, sizeof(kinds)),
			    "add,expire-soft,add,delete,add,expire-soft,delete");
	assert_int_equal(rows[4].sa_id, idc);
	assert_int_equal(rows[6].at, T0 + 9);
	store_list_free(rows);
	assert_int_equal(store_event_list(s, T0 + 1, NULL, &rows, &nrows), 0);
	assert_int_equal(nrows, 1);
	store_list_free(rows);
	assert_int_equal(store_event_count(s, STORE_EV_ADD, 0, &n), 0);
	assert_int_equal(n, 3);
	assert_int_equal(store_event_count(s, STORE_EV_DELETE, 0, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(store_event_count(s, STORE_EV_DELETE, T0 + 1, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(store_event_count(s, STORE_EV_EXPIRE_SOFT, 0, &n), 0);
	assert_int_equal(n, 2);
	/* Only a link's own. */
	assert_int_equal(store_event_list(s, 0, "l2", &rows, &nrows), 0);
	assert_int_equal(nrows, 0);
	store_list_free(rows);
	assert_int_equal(store_sa_add_logged(s, &a, T0, "x", NULL), -EROFS);
	store_close(s);
}

static void events_round_trip(void **state)
{
	struct fixture *f = *state;
	struct store *s = open_writer(f);
	struct store_sa sa = make_sa(0x2a01, "192.0.2.1", "198.51.100.7", T0);
	struct store_event ev = { 0 }, *rows;
	enum store_event_kind kind;
	int64_t sa_id = add_sa(s, &sa), id;
	uint64_t n;
	size_t nrows;
	int calls = 0;

	for (int k = 0; k < STORE_EV_COUNT_; k++) {
		assert_non_null(store_event_kind_name((enum store_event_kind)k));
		assert_int_equal(store_event_kind_parse(store_event_kind_name((enum store_event_kind)k),
							&kind),
				 0);
		assert_int_equal(kind, k);
	}
	assert_null(store_event_kind_name(STORE_EV_COUNT_));
	assert_int_equal(store_event_kind_parse("expire", &kind), -EINVAL);
	assert_int_equal(store_event_kind_parse(NULL, &kind), -EINVAL);
	assert_string_equal(store_event_kind_name(STORE_EV_ACQUIRE_UNANSWERED), "acquire-unanswered");
	assert_string_equal(store_event_kind_name(STORE_EV_GENERATION_CHANGED), "generation-changed");
	assert_string_equal(store_event_kind_name(STORE_EV_GENERATIONS_EXHAUSTED),
			    "generations-exhausted");
	assert_string_equal(store_event_kind_name(STORE_EV_REPLAY_UNPROTECTED), "replay-unprotected");
	assert_string_equal(store_sa_state_name(STORE_SA_DYING), "dying");
	assert_string_equal(store_dir_name(STORE_DIR_OUT), "out");
	assert_null(store_dir_name(STORE_DIR_NONE));
	assert_string_equal(store_rot_result_name(STORE_ROT_FAILED), "failed");

	ev.at = T0 + 10;
	ev.kind = STORE_EV_EXPIRE_HARD;
	ev.sa_id = sa_id;
	snprintf(ev.link, sizeof(ev.link), "l1");
	ev.spi = 0x2a01;
	snprintf(ev.src, sizeof(ev.src), "192.0.2.1");
	snprintf(ev.dst, sizeof(ev.dst), "198.51.100.7");
	ev.proto = 50;
	snprintf(ev.message, sizeof(ev.message), "hard lifetime reached\n(after 2h)");
	ev.origin_pid = 321;
	assert_int_equal(store_event_add(s, &ev, &id), 0);

	/* An acquire: no SPI, no link, no SA. */
	memset(&ev, 0, sizeof(ev));
	ev.at = T0 + 20;
	ev.kind = STORE_EV_ACQUIRE_UNANSWERED;
	snprintf(ev.src, sizeof(ev.src), "10.1.0.1");
	snprintf(ev.dst, sizeof(ev.dst), "10.2.0.1");
	ev.proto = 50;
	assert_int_equal(store_event_add(s, &ev, NULL), 0);
	ev.at = T0 + 30;
	ev.kind = STORE_EV_EXPIRE_HARD;
	assert_int_equal(store_event_add(s, &ev, NULL), 0);

	/* Rejected: bad kind, bad address, unknown SA row. */
	ev.kind = STORE_EV_COUNT_;
	assert_int_equal(store_event_add(s, &ev, NULL), -EINVAL);
	ev.kind = STORE_EV_ADD;
	snprintf(ev.src, sizeof(ev.src), "10.1.0.300");
	assert_int_equal(store_event_add(s, &ev, NULL), -EINVAL);
	ev.src[0] = '\0';
	ev.sa_id = 9999;
	assert_int_equal(store_event_add(s, &ev, NULL), -EINVAL);
	memset(ev.message, 'm', sizeof(ev.message));
	ev.sa_id = 0;
	assert_int_equal(store_event_add(s, &ev, NULL), -EINVAL);

	assert_int_equal(store_event_list(s, 0, NULL, &rows, &nrows), 0);
	assert_int_equal(nrows, 3);
	assert_int_equal(rows[0].id, id);
	assert_int_equal(rows[0].at, T0 + 10);
	assert_int_equal(rows[0].kind, STORE_EV_EXPIRE_HARD);
	assert_int_equal(rows[0].sa_id, sa_id);
	assert_string_equal(rows[0].link, "l1");
	assert_int_equal(rows[0].spi, 0x2a01);
	assert_string_equal(rows[0].src, "192.0.2.1");
	assert_string_equal(rows[0].dst, "198.51.100.7");
	assert_int_equal(rows[0].proto, 50);
	/* Control characters do not reach the ledger. */
	assert_string_equal(rows[0].message, "hard lifetime reached?(after 2h)");
	assert_int_equal(rows[0].origin_pid, 321);
	assert_int_equal(rows[1].kind, STORE_EV_ACQUIRE_UNANSWERED);
	assert_string_equal(rows[1].link, "");
	assert_int_equal(rows[1].spi, 0);
	assert_int_equal(rows[1].sa_id, 0);
	assert_int_equal(rows[1].origin_pid, 0);
	store_list_free(rows);

	assert_int_equal(store_event_list(s, T0 + 20, NULL, &rows, &nrows), 0);
	assert_int_equal(nrows, 2);
	store_list_free(rows);
	assert_int_equal(store_event_list(s, 0, "l1", &rows, &nrows), 0);
	assert_int_equal(nrows, 1);
	store_list_free(rows);
	assert_int_equal(store_event_each(s, 0, NULL, count_cb, &calls), 0);
	assert_int_equal(calls, 3);
	calls = 0;
	assert_int_equal(store_event_each(s, 0, NULL, stop_cb, &calls), 42);
	assert_int_equal(calls, 1);

	assert_int_equal(store_event_count(s, STORE_EV_EXPIRE_HARD, 0, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(store_event_count(s, STORE_EV_EXPIRE_HARD, T0 + 11, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(store_event_count(s, STORE_EV_EXPIRE_SOFT, 0, &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(store_event_count(s, STORE_EV_COUNT_, 0, &n), -EINVAL);
	store_close(s);
}

static int rot_collect(const struct store_rotation *rot, void *arg)
{
	char *seen = arg;

	snprintf(seen + strlen(seen), 128 - strlen(seen), "%s:%" PRId64 ":%s ", rot->link,
		 rot->epoch, store_rot_result_name(rot->result));
	return 0;
}

static void rotations_round_trip(void **state)
{
	struct fixture *f = *state;
	struct store *s = open_writer(f);
	struct store_rotation rot = { 0 }, out, *rows;
	char seen[128] = "";
	uint64_t n;
	size_t nrows;
	int64_t id;

	for (int i = 0; i < 4; i++) {
		rot.at = T0 + 3600 * i;
		snprintf(rot.link, sizeof(rot.link), "l1");
		rot.epoch = 100 + i;
		rot.result = i == 3 ? STORE_ROT_FAILED : STORE_ROT_OK;
		snprintf(rot.detail, sizeof(rot.detail), i == 3 ? "add: ENOSYS" : "");
		rot.old_spi = 0x2a00 + (uint32_t)i;
		rot.new_spi = 0x2a01 + (uint32_t)i;
		assert_int_equal(store_rotation_add(s, &rot, &id), 0);
		assert_true(id > 0);
	}
	snprintf(rot.link, sizeof(rot.link), "l2");
	rot.at = T0;
	rot.epoch = 7;
	rot.result = STORE_ROT_OK;
	rot.old_spi = 0;
	assert_int_equal(store_rotation_add(s, &rot, NULL), 0);

	rot.link[0] = '\0';
	assert_int_equal(store_rotation_add(s, &rot, NULL), -EINVAL);
	snprintf(rot.link, sizeof(rot.link), "l2");
	rot.result = (enum store_rot_result)5;
	assert_int_equal(store_rotation_add(s, &rot, NULL), -EINVAL);

	assert_int_equal(store_rotation_list(s, 0, "l1", &rows, &nrows), 0);
	assert_int_equal(nrows, 4);
	assert_int_equal(rows[0].epoch, 100);
	assert_int_equal(rows[0].result, STORE_ROT_OK);
	assert_int_equal(rows[0].old_spi, 0x2a00);
	assert_int_equal(rows[0].new_spi, 0x2a01);
	assert_int_equal(rows[3].result, STORE_ROT_FAILED);
	assert_string_equal(rows[3].detail, "add: ENOSYS");
	store_list_free(rows);
	assert_int_equal(store_rotation_list(s, T0 + 1, NULL, &rows, &nrows), 0);
	assert_int_equal(nrows, 3);
	store_list_free(rows);

	assert_int_equal(store_rotation_count(s, NULL, STORE_ROT_FAILED, 0, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(store_rotation_count(s, "l1", STORE_ROT_OK, 0, &n), 0);
	assert_int_equal(n, 3);
	assert_int_equal(store_rotation_count(s, "l2", STORE_ROT_FAILED, 0, &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(store_rotation_count(s, NULL, STORE_ROT_FAILED, T0 + 3 * 3600 + 1, &n), 0);
	assert_int_equal(n, 0);

	assert_int_equal(store_rotation_last(s, "l1", false, &out), 0);
	assert_int_equal(out.epoch, 103);
	assert_int_equal(out.result, STORE_ROT_FAILED);
	assert_int_equal(store_rotation_last(s, "l1", true, &out), 0);
	assert_int_equal(out.epoch, 102);
	assert_int_equal(store_rotation_last(s, "l2", false, &out), 0);
	assert_int_equal(out.old_spi, 0);
	assert_int_equal(store_rotation_last(s, "l3", false, &out), -ENOENT);

	assert_int_equal(store_rotation_last_each(s, false, rot_collect, seen), 0);
	assert_string_equal(seen, "l1:103:failed l2:7:ok ");
	seen[0] = '\0';
	assert_int_equal(store_rotation_last_each(s, true, rot_collect, seen), 0);
	assert_string_equal(seen, "l1:102:ok l2:7:ok ");
	store_close(s);
}

static void meta_values(void **state)
{
	struct fixture *f = *state;
	struct store *s = open_writer(f);
	char buf[64], small[4];
	int64_t v;

	assert_int_equal(store_meta_get(s, STORE_META_CONFIG, buf, sizeof(buf)), -ENOENT);
	assert_int_equal(store_meta_set(s, STORE_META_CONFIG, "/etc/sakeyd/sakeyd.conf"), 0);
	assert_int_equal(store_meta_get(s, STORE_META_CONFIG, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "/etc/sakeyd/sakeyd.conf");
	assert_int_equal(store_meta_set(s, STORE_META_CONFIG, "/srv/sakeyd.conf"), 0);
	assert_int_equal(store_meta_get(s, STORE_META_CONFIG, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "/srv/sakeyd.conf");
	assert_int_equal(store_meta_get(s, STORE_META_CONFIG, small, sizeof(small)), -ERANGE);
	assert_string_equal(small, "/sr");

	assert_int_equal(store_meta_set_int(s, STORE_META_PID, 12345), 0);
	assert_int_equal(store_meta_set_int(s, STORE_META_STARTED_AT, T0), 0);
	assert_int_equal(store_meta_set_int(s, STORE_META_LAST_WRITE_AT, -5), 0);
	assert_int_equal(store_meta_get_int(s, STORE_META_PID, &v), 0);
	assert_int_equal(v, 12345);
	assert_int_equal(store_meta_get_int(s, STORE_META_STARTED_AT, &v), 0);
	assert_int_equal(v, T0);
	assert_int_equal(store_meta_get_int(s, STORE_META_LAST_WRITE_AT, &v), 0);
	assert_int_equal(v, -5);
	assert_int_equal(store_meta_get_int(s, STORE_META_CONFIG, &v), -EINVAL);
	assert_int_equal(store_meta_set(s, STORE_META_VERSION, "0.1.0"), 0);
	assert_int_equal(store_meta_get_int(s, STORE_META_VERSION, &v), -EINVAL);
	assert_int_equal(store_meta_get_int(s, STORE_META_LAST_DUMP_AT, &v), -ENOENT);

	assert_int_equal(store_meta_set(s, STORE_META_PID, NULL), 0);
	assert_int_equal(store_meta_get_int(s, STORE_META_PID, &v), -ENOENT);
	assert_int_equal(store_meta_set(s, STORE_META_PID, NULL), 0);

	assert_int_equal(store_meta_set(s, "Bad Key", "x"), -EINVAL);
	assert_int_equal(store_meta_set(s, "", "x"), -EINVAL);
	assert_int_equal(store_meta_set(s, NULL, "x"), -EINVAL);
	assert_int_equal(store_meta_set(s, "note", "line\nbreak"), -EINVAL);
	store_close(s);

	s = open_reader(f);
	assert_int_equal(store_meta_get(s, STORE_META_CONFIG, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "/srv/sakeyd.conf");
	store_close(s);
}

/* Retention */

static void prune_by_retention(void **state)
{
	struct fixture *f = *state;
	struct store *s = open_writer(f);
	struct store_sa old_gone = make_sa(0x1, "192.0.2.1", "198.51.100.7", T0 - 100 * 86400);
	struct store_sa old_live = make_sa(0x2, "192.0.2.1", "198.51.100.7", T0 - 100 * 86400);
	struct store_sa new_gone = make_sa(0x3, "192.0.2.1", "198.51.100.7", T0 - 100 * 86400);
	struct store_event ev = { .kind = STORE_EV_DELETE };
	struct store_rotation rot = { .link = "l1" };
	struct store_prune_result r;
	struct store_event *evs;
	const int64_t retention = 30 * 86400;
	int64_t id_old_gone, id_new_gone;
	size_t n;

	id_old_gone = add_sa(s, &old_gone);
	add_sa(s, &old_live);
	id_new_gone = add_sa(s, &new_gone);
	assert_int_equal(store_sa_set_state(s, id_old_gone, STORE_SA_GONE, T0 - 31 * 86400), 0);
	assert_int_equal(store_sa_set_state(s, id_new_gone, STORE_SA_GONE, T0 - 29 * 86400), 0);

	/* An old event, a recent event about the SA that will be pruned, one right at the cutoff. */
	ev.at = T0 - 31 * 86400;
	assert_int_equal(store_event_add(s, &ev, NULL), 0);
	ev.at = T0 - 86400;
	ev.sa_id = id_old_gone;
	assert_int_equal(store_event_add(s, &ev, NULL), 0);
	ev.at = T0 - retention;
	ev.sa_id = 0;
	assert_int_equal(store_event_add(s, &ev, NULL), 0);
	rot.at = T0 - retention - 1;
	assert_int_equal(store_rotation_add(s, &rot, NULL), 0);
	rot.at = T0;
	assert_int_equal(store_rotation_add(s, &rot, NULL), 0);

	assert_int_equal(store_prune(s, T0, -1, &r), -EINVAL);
	assert_int_equal(store_begin(s), 0);
	assert_int_equal(store_prune(s, T0, retention, &r), 0);
	assert_int_equal(store_commit(s), 0);
	assert_int_equal(r.events, 1);
	assert_int_equal(r.rotations, 1);
	assert_int_equal(r.sas, 1);
	/* The live SA stays however old; the recently gone one stays. */
	assert_int_equal(count_sa(s, NULL, true), 2);
	assert_int_equal(count_sa(s, NULL, false), 1);
	assert_int_equal(store_event_list(s, 0, NULL, &evs, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(evs[0].at, T0 - retention);
	/* The event outlives its SA row; its reference is cleared. */
	assert_int_equal(evs[1].sa_id, 0);
	store_list_free(evs);

	assert_int_equal(store_prune(s, T0, retention, NULL), 0);
	assert_int_equal(store_prune(s, INT64_MIN + 5, INT64_MAX, &r), 0);
	assert_int_equal(r.events + r.rotations + r.sas, 0);
	store_close(s);
}

/* Transactions and concurrency */

static void batching(void **state)
{
	struct fixture *f = *state;
	struct store *w = open_writer(f), *r = open_reader(f);
	struct store_sa sa = make_sa(0x100, "192.0.2.1", "198.51.100.7", T0);

	assert_int_equal(store_commit(w), -EINVAL);
	assert_int_equal(store_begin(w), 0);
	assert_true(store_in_transaction(w));
	assert_int_equal(store_begin(w), -EALREADY);
	for (uint32_t i = 0; i < 10; i++) {
		sa.spi = 0x100 + i;
		add_sa(w, &sa);
	}
	/* A rejected row does not spoil the batch. */
	sa.proto = 0;
	assert_int_equal(store_sa_add(w, &sa, NULL), -EINVAL);
	assert_int_equal(count_sa(w, NULL, false), 10);
	assert_int_equal(count_sa(r, NULL, false), 0);
	assert_int_equal(store_commit(w), 0);
	assert_false(store_in_transaction(w));
	assert_int_equal(count_sa(r, NULL, false), 10);

	/* Rolled back: nothing happened. */
	assert_int_equal(store_begin(w), 0);
	assert_int_equal(store_meta_set(w, "note", "rolled back"), 0);
	store_rollback(w);
	assert_false(store_in_transaction(w));
	{
		char buf[32];

		assert_int_equal(store_meta_get(w, "note", buf, sizeof(buf)), -ENOENT);
	}
	store_rollback(w);
	store_close(r);

	/* Closing with a transaction open rolls it back. */
	assert_int_equal(store_begin(w), 0);
	sa.proto = 50;
	sa.spi = 0x999;
	add_sa(w, &sa);
	store_close(w);
	r = open_reader(f);
	assert_int_equal(count_sa(r, NULL, false), 10);
	store_close(r);
}

/*
 * A process that holds a byte of f's -shm locked, as another process sees it
 * (F_GETLK reports only other processes' locks): its pid, or 0.
 */
static pid_t shm_lock_holder(const struct fixture *f, off_t byte)
{
	char shm[200];
	int fds[2], status;
	pid_t pid, holder = 0;

	snprintf(shm, sizeof(shm), "%s-shm", f->db);
	assert_int_equal(pipe(fds), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = byte,
				    .l_len = 1 };
		int fd = open(shm, O_RDONLY | O_CLOEXEC);

		if (fd < 0 || fcntl(fd, F_GETLK, &fl) < 0)
			_exit(1);
		holder = fl.l_type == F_UNLCK ? 0 : fl.l_pid;
		_exit(write(fds[1], &holder, sizeof(holder)) == sizeof(holder) ? 0 : 1);
	}
	close(fds[1]);
	assert_int_equal(read(fds[0], &holder, sizeof(holder)), sizeof(holder));
	close(fds[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	return holder;
}

/*
 * The writer keeps SQLite's lock on the -shm: the "DMS" byte (128 in
 * SQLite's unix VFS) that tells a new connection the file is in use. POSIX
 * locks go when the process closes any descriptor of the file: the writer
 * used to open and close the -wal and -shm to set their modes after SQLite
 * had opened them, a reader then took the -shm for unused and truncated it,
 * and the daemon died of SIGBUS in its mapping (demo-short, CI).
 */
static void keeps_shm_lock(void **state)
{
	struct fixture *f = *state;
	struct store *w = open_writer(f);

	assert_int_equal(store_meta_set_int(w, STORE_META_LAST_WRITE_AT, T0), 0);
	assert_int_equal(shm_lock_holder(f, 128), getpid());
	store_close(w);
	/* Reopened over the -wal and -shm the last run left. */
	w = open_writer(f);
	assert_int_equal(store_meta_set_int(w, STORE_META_LAST_WRITE_AT, T0 + 1), 0);
	assert_int_equal(shm_lock_holder(f, 128), getpid());
	store_close(w);
}

static void concurrent_reader(void **state)
{
	struct fixture *f = *state;
	struct store *w = open_writer(f), *r;
	struct store_sa sa = make_sa(0x200, "192.0.2.1", "198.51.100.7", T0);
	int status;
	pid_t pid;

	for (uint32_t i = 0; i < 5; i++) {
		sa.spi = 0x200 + i;
		add_sa(w, &sa);
	}
	assert_int_equal(store_meta_set_int(w, STORE_META_LAST_WRITE_AT, T0), 0);
	assert_int_equal(store_begin(w), 0);
	for (uint32_t i = 5; i < 8; i++) {
		sa.spi = 0x200 + i;
		add_sa(w, &sa);
	}
	assert_int_equal(store_meta_set_int(w, STORE_META_LAST_WRITE_AT, T0 + 1), 0);

	/* Another process, as sactl: the last committed state, without waiting. */
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct store *c = NULL;
		struct store_sa_query q = { 0 };
		uint64_t n = 0;
		int64_t at = 0;
		int code = 0;

		if (store_open(f->dir, true, &c, NULL, 0))
			_exit(10);
		store_set_busy_timeout(c, 0);
		if (store_sa_count(c, &q, &n))
			code = 11;
		else if (n != 5)
			code = 12;
		else if (store_meta_get_int(c, STORE_META_LAST_WRITE_AT, &at) || at != T0)
			code = 13;
		store_close(c);
		_exit(code);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);

	/* And another connection of this process. */
	r = open_reader(f);
	store_set_busy_timeout(r, 0);
	assert_int_equal(count_sa(r, NULL, false), 5);
	assert_int_equal(store_commit(w), 0);
	assert_int_equal(count_sa(r, NULL, false), 8);
	store_close(r);
	store_close(w);

	/* With the writer gone, a reader still opens (the WAL files are gone too). */
	r = open_reader(f);
	assert_int_equal(count_sa(r, NULL, false), 8);
	store_close(r);
}

static void reader_cannot_write(void **state)
{
	struct fixture *f = *state;
	struct store *w = open_writer(f), *r;
	struct store_sa sa = make_sa(0x300, "192.0.2.1", "198.51.100.7", T0);
	struct store_event ev = { .at = T0, .kind = STORE_EV_RESYNC };
	int64_t id = add_sa(w, &sa);

	store_close(w);
	r = open_reader(f);
	assert_int_equal(store_sa_add(r, &sa, NULL), -EROFS);
	assert_non_null(strstr(store_errmsg(r), "readonly"));
	assert_int_equal(store_sa_set_state(r, id, STORE_SA_GONE, T0), -EROFS);
	assert_int_equal(store_event_add(r, &ev, NULL), -EROFS);
	assert_int_equal(store_meta_set(r, STORE_META_PID, "1"), -EROFS);
	assert_int_equal(store_prune(r, T0, 0, NULL), -EROFS);
	assert_int_equal(store_sa_sync_begin(r), -EROFS);
	assert_int_equal(store_begin(r), 0); /* a read transaction is allowed... */
	assert_int_equal(store_sa_update_counters(r, id, 1, 1, T0), -EROFS); /* ...writes not */
	assert_int_equal(store_commit(r), 0);
	store_close(r);

	/* A writer whose database turned read-only (works as root, unlike chmod). */
	w = open_writer(f);
	assert_int_equal(store_test_exec_on(w, "PRAGMA query_only = 1"), 0);
	assert_int_equal(store_begin(w), -EROFS);
	assert_false(store_in_transaction(w));
	assert_int_equal(store_sa_add(w, &sa, NULL), -EROFS);
	assert_int_equal(store_meta_set(w, "note", "x"), -EROFS);
	assert_int_equal(store_test_exec_on(w, "PRAGMA query_only = 0"), 0);
	sa.spi = 0x301;
	add_sa(w, &sa);
	store_close(w);
}

static void busy_database(void **state)
{
	struct fixture *f = *state;
	struct store *a = open_writer(f), *b = open_writer(f), *r;
	struct store_sa sa = make_sa(0x400, "192.0.2.1", "198.51.100.7", T0);

	/* a holds the write lock (BEGIN IMMEDIATE) mid-turn. */
	assert_int_equal(store_begin(a), 0);
	add_sa(a, &sa);

	store_set_busy_timeout(b, 20);
	assert_int_equal(store_begin(b), -EBUSY);
	assert_non_null(strstr(store_errmsg(b), "locked"));
	assert_false(store_in_transaction(b));
	sa.spi = 0x401;
	assert_int_equal(store_sa_add(b, &sa, NULL), -EBUSY);
	assert_int_equal(store_meta_set(b, "note", "x"), -EBUSY);
	/* Readers are not held up. */
	assert_int_equal(count_sa(b, NULL, false), 0);
	r = open_reader(f);
	assert_int_equal(count_sa(r, NULL, false), 0);

	assert_int_equal(store_commit(a), 0);
	assert_int_equal(store_begin(b), 0);
	add_sa(b, &sa);
	assert_int_equal(store_commit(b), 0);
	assert_int_equal(count_sa(r, NULL, false), 2);
	store_close(r);
	store_close(b);
	store_close(a);
}

static void disk_full(void **state)
{
	struct fixture *f = *state;
	struct store *s = open_writer(f);
	struct store_sa sa = make_sa(0, "192.0.2.1", "198.51.100.7", T0);
	struct store_event ev = { .at = T0, .kind = STORE_EV_ADD };
	int64_t pages = 0, before;
	int rc = 0, lost;
	uint32_t i;

	before = count_sa(s, NULL, true);
	assert_int_equal(store_test_query_int(f->dir, "PRAGMA page_count", &pages), 0);
	{
		char sql[64];

		snprintf(sql, sizeof(sql), "PRAGMA max_page_count = %" PRId64, pages + 2);
		assert_int_equal(store_test_exec_on(s, sql), 0);
	}
	assert_int_equal(store_begin(s), 0);
	for (i = 1; i < 100000; i++) {
		sa.spi = i;
		rc = store_sa_add(s, &sa, NULL);
		if (rc)
			break;
	}
	assert_int_equal(rc, -ENOSPC);
	assert_non_null(strstr(store_errmsg(s), "full"));
	/* Whatever SQLite kept of the transaction, the handle reports and survives. */
	lost = store_event_add(s, &ev, NULL);
	assert_true(lost == 0 || lost == -ENOSPC);
	rc = store_commit(s);
	assert_false(store_in_transaction(s));
	if (lost) {
		/* SQLite rolled the whole transaction back: all of it is lost, nothing leaked
		 * into autocommit writes. */
		assert_int_equal(rc, -ENOSPC);
		assert_int_equal(count_sa(s, NULL, true), before);
	} else {
		assert_true(rc == 0 || rc == -ENOSPC);
	}

	/* Space again: the daemon goes on. */
	assert_int_equal(store_test_exec_on(s, "PRAGMA max_page_count = 1000000"), 0);
	assert_int_equal(store_begin(s), 0);
	sa.spi = 200000;
	add_sa(s, &sa);
	assert_int_equal(store_commit(s), 0);
	assert_true(count_sa(s, NULL, true) > (uint64_t)before);
	store_close(s);
}

static void unwritable_dir(void **state)
{
	struct fixture *f = *state;
	char err[STORE_ERRMSG_LEN];
	char sub[PATH_MAX + 8];
	struct store *s;

	if (geteuid() == 0)
		skip(); /* root writes anyway; the read-only cases are covered by reader_cannot_write */
	s = open_writer(f);
	store_close(s);
	assert_int_equal(chmod(f->db, 0400), 0);
	assert_int_equal(chmod(f->dir, 0500), 0);
	assert_int_equal(store_open(f->dir, false, &s, err, sizeof(err)), -EACCES);
	assert_null(s);
	/* The database writable, its directory not: no WAL file can be made. */
	assert_int_equal(chmod(f->db, 0600), 0);
	assert_int_equal(store_open(f->dir, false, &s, err, sizeof(err)), -EROFS);
	assert_non_null(strstr(err, "readonly"));
	assert_null(s);
	snprintf(sub, sizeof(sub), "%s/sub", f->dir);
	assert_int_equal(store_open(sub, false, &s, err, sizeof(err)), -EACCES);
	chmod(f->dir, 0700);
	chmod(f->db, 0600);
}

static int reenter_cb(const struct store_sa *sa, void *arg)
{
	struct store *s = arg;
	struct store_sa_query q = { 0 };
	uint64_t n = 0;

	/* Another query may run; the same iteration may not start again. */
	assert_int_equal(store_sa_count(s, &q, &n), 0);
	assert_int_equal(n, 1);
	return store_sa_each(s, NULL, reenter_cb, s);
}

static void reentrant_iteration(void **state)
{
	struct fixture *f = *state;
	struct store *s = open_writer(f);
	struct store_sa sa = make_sa(0x500, "192.0.2.1", "198.51.100.7", T0);

	add_sa(s, &sa);
	assert_int_equal(store_sa_each(s, NULL, reenter_cb, s), -EDEADLK);
	/* And the handle works afterwards. */
	assert_int_equal(count_sa(s, NULL, false), 1);
	store_close(s);
}

/* Key material */

static const char b64_alphabet[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static void base64(const uint8_t *in, size_t len, char *out)
{
	size_t o = 0;

	for (size_t i = 0; i < len; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16;

		v |= i + 1 < len ? (uint32_t)in[i + 1] << 8 : 0;
		v |= i + 2 < len ? in[i + 2] : 0;
		out[o++] = b64_alphabet[(v >> 18) & 63];
		out[o++] = b64_alphabet[(v >> 12) & 63];
		out[o++] = i + 1 < len ? b64_alphabet[(v >> 6) & 63] : '=';
		out[o++] = i + 2 < len ? b64_alphabet[v & 63] : '=';
	}
	out[o] = '\0';
}

static bool file_contains(const char *path, const void *needle, size_t len)
{
	FILE *fp = fopen(path, "rb");
	char *buf = NULL;
	size_t size = 0, cap = 0, got;
	bool found = false;

	if (!fp)
		return false;
	do {
		if (size + 65536 > cap) {
			cap = cap ? cap * 2 : 1 << 20;
			buf = realloc(buf, cap);
			assert_non_null(buf);
		}
		got = fread(buf + size, 1, cap - size, fp);
		size += got;
	} while (got > 0);
	fclose(fp);
	for (size_t i = 0; i + len <= size && !found; i++)
		found = memcmp(buf + i, needle, len) == 0;
	free(buf);
	return found;
}

/* Whether any file of dir holds the key in any of its forms. */
static bool dir_holds_key(const char *dir, const uint8_t *key, size_t len, const char *hex_lo,
			  const char *hex_up, const char *b64)
{
	static const char *const suffixes[] = { "", "-wal", "-shm", "-journal" };
	char path[PATH_MAX + 16];
	bool found = false;

	for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s%s", dir, STORE_DB_NAME, suffixes[i]);
		found |= file_contains(path, key, len / 2);           /* either half, raw */
		found |= file_contains(path, key + len / 2, len / 2);
		found |= file_contains(path, hex_lo, 32);             /* 128 bits of hex */
		found |= file_contains(path, hex_lo + 32, 32);
		found |= file_contains(path, hex_up, 32);
		found |= file_contains(path, b64, 20);
		found |= file_contains(path, b64 + 20, 20);
	}
	return found;
}

static void no_key_material(void **state)
{
	struct fixture *f = *state;
	struct store *s = open_writer(f);
	uint8_t key[32];
	char hex_lo[65], hex_up[65], b64[45], raw[33];
	struct store_sa sa = make_sa(0x2a01, "192.0.2.1", "198.51.100.7", T0), out;
	struct store_event ev = { .at = T0, .kind = STORE_EV_ADD }, *evs;
	struct store_rotation rot = { .at = T0, .link = "l1", .epoch = 1 }, *rots;
	size_t n;
	int64_t id;

	/* A key with no zero byte, so it can be smuggled in as a C string too. */
	for (size_t i = 0; i < sizeof(key); i++) {
		key[i] = (uint8_t)(0x9d ^ (i * 37 + 11));
		if (key[i] == 0)
			key[i] = 0x5a;
		snprintf(hex_lo + 2 * i, 3, "%02x", key[i]);
		snprintf(hex_up + 2 * i, 3, "%02X", key[i]);
	}
	memcpy(raw, key, sizeof(key));
	raw[32] = '\0';
	base64(key, sizeof(key), b64);
	assert_false(dir_holds_key(f->dir, key, sizeof(key), hex_lo, hex_up, b64));

	/* The SA built around the key carries its fingerprint, nothing more. */
	id = add_sa(s, &sa);

	/* Every text field, tried with every form of the key. */
	snprintf(sa.algorithm, sizeof(sa.algorithm), "%.40s", hex_lo);
	assert_int_equal(store_sa_add(s, &sa, NULL), -EINVAL);
	assert_non_null(strstr(store_errmsg(s), "key material"));
	assert_int_equal(store_sa_update(s, id, &sa), -EINVAL);
	snprintf(sa.algorithm, sizeof(sa.algorithm), "%s", b64);
	assert_int_equal(store_sa_add(s, &sa, NULL), -EINVAL);
	snprintf(sa.algorithm, sizeof(sa.algorithm), "aes-cbc-256-hmac-sha512");
	snprintf(sa.link, sizeof(sa.link), "link-%.40s", hex_up);
	assert_int_equal(store_sa_add(s, &sa, NULL), -EINVAL);
	snprintf(sa.link, sizeof(sa.link), "l1");
	snprintf(sa.mode, sizeof(sa.mode), "%.15s", b64);
	assert_int_equal(store_sa_add(s, &sa, NULL), 0); /* 15 characters hold no key */
	snprintf(sa.mode, sizeof(sa.mode), "transport");
	snprintf(sa.key_fp, sizeof(sa.key_fp), "%.16s", hex_up);
	assert_int_equal(store_sa_add(s, &sa, NULL), -EINVAL);
	assert_int_equal(store_meta_set(s, "secret", hex_lo), -EINVAL);
	assert_int_equal(store_meta_set(s, "secret", b64), -EINVAL);
	assert_int_equal(store_meta_set(s, "secret", raw), -EINVAL);

	/* Free text is cleaned, not refused: the event is kept. */
	snprintf(ev.message, sizeof(ev.message), "derived key=%s for epoch 1", hex_lo);
	assert_int_equal(store_event_add(s, &ev, NULL), 0);
	snprintf(ev.message, sizeof(ev.message), "secret file says %s.", b64);
	assert_int_equal(store_event_add(s, &ev, NULL), 0);
	snprintf(ev.message, sizeof(ev.message), "raw %s end", raw);
	assert_int_equal(store_event_add(s, &ev, NULL), 0);
	snprintf(ev.message, sizeof(ev.message), "%s:%s", hex_up, hex_lo);
	assert_int_equal(store_event_add(s, &ev, NULL), 0);
	snprintf(rot.detail, sizeof(rot.detail), "keymat %s", hex_lo);
	assert_int_equal(store_rotation_add(s, &rot, NULL), 0);
	/* Fingerprints, addresses and algorithm names are not redacted. */
	snprintf(ev.message, sizeof(ev.message),
		 "fp 735063a3ff9b6832 2001:db8::1 aes-cbc-256-hmac-sha512 0x2a01");
	assert_int_equal(store_event_add(s, &ev, NULL), 0);

	assert_int_equal(store_event_list(s, 0, NULL, &evs, &n), 0);
	assert_int_equal(n, 5);
	assert_string_equal(evs[0].message, "derived key=[redacted] for epoch 1");
	assert_string_equal(evs[1].message, "secret file says [redacted].");
	assert_null(strstr(evs[2].message, raw));
	assert_string_equal(evs[3].message, "[redacted]:[redacted]");
	assert_string_equal(evs[4].message,
			    "fp 735063a3ff9b6832 2001:db8::1 aes-cbc-256-hmac-sha512 0x2a01");
	store_list_free(evs);
	assert_int_equal(store_rotation_list(s, 0, NULL, &rots, &n), 0);
	assert_int_equal(n, 1);
	assert_string_equal(rots[0].detail, "keymat [redacted]");
	store_list_free(rots);
	assert_int_equal(store_sa_get(s, id, &out), 0);
	assert_string_equal(out.key_fp, "735063a3ff9b6832");

	/* The schema itself refuses a key in the one key-related column. */
	store_close(s);
	{
		char sql[256];

		snprintf(sql, sizeof(sql), "UPDATE sa SET key_fp = '%s'", hex_lo);
		assert_int_equal(store_test_exec(f->dir, sql), -EINVAL);
	}
	assert_int_equal(query_int(f, "SELECT count(*) FROM pragma_table_info('sa') "
				      "WHERE name LIKE '%key%' AND name != 'key_fp'"),
			 0);
	assert_int_equal(query_int(f, "SELECT count(*) FROM pragma_table_info('sa') "
				      "WHERE lower(type) = 'blob'"),
			 0);

	/* Not in any byte of the files: the WAL while open, the database after close. */
	s = open_writer(f);
	assert_int_equal(store_event_add(s, &ev, NULL), 0);
	assert_false(dir_holds_key(f->dir, key, sizeof(key), hex_lo, hex_up, b64));
	store_close(s);
	assert_false(dir_holds_key(f->dir, key, sizeof(key), hex_lo, hex_up, b64));
}

/* Scale */

static void many_sas_in_one_transaction(void **state)
{
	struct fixture *f = *state;
	struct store *s = open_writer(f);
	struct store_sa sa = make_sa(0, "192.0.2.1", "198.51.100.7", T0), out;
	struct store_sa_query all = { 0 };
	const uint32_t count = 20000;
	uint64_t gone = 0;

	assert_int_equal(store_begin(s), 0);
	for (uint32_t i = 0; i < count; i++) {
		sa.spi = 0x1000 + i;
		snprintf(sa.dst, sizeof(sa.dst), "10.%u.%u.1", (i >> 8) & 0xff, i & 0xff);
		assert_int_equal(store_sa_add(s, &sa, NULL), 0);
	}
	assert_int_equal(store_commit(s), 0);
	assert_int_equal(count_sa(s, NULL, false), count);
	assert_int_equal(store_sa_find_live(s, "10.78.31.1", 0x1000 + 19999, 50, &out), 0);
	assert_int_equal(out.spi, 0x1000 + 19999);

	/* A resync of all of them, half gone from the kernel. */
	assert_int_equal(store_begin(s), 0);
	assert_int_equal(store_sa_sync_begin(s), 0);
	for (uint32_t i = 0; i < count; i += 2) {
		sa.spi = 0x1000 + i;
		snprintf(sa.dst, sizeof(sa.dst), "10.%u.%u.1", (i >> 8) & 0xff, i & 0xff);
		assert_int_equal(store_sa_seen(s, &sa, T0 + 10, NULL), 0);
	}
	assert_int_equal(store_sa_sync_end(s, T0 + 10, &gone), 0);
	assert_int_equal(store_commit(s), 0);
	assert_int_equal(gone, count / 2);
	assert_int_equal(count_sa(s, NULL, false), count / 2);
	all.include_gone = true;
	{
		uint64_t n;

		assert_int_equal(store_sa_count(s, &all, &n), 0);
		assert_int_equal(n, count);
	}
	store_close(s);
}

/*
 * A VFS under the writer's (store_sql_walbuf_vfs wraps the default VFS it
 * finds): the default one, counting the writes that reach a WAL file.
 * Registered as the default in main(), before any store is opened.
 */
static sqlite3_vfs counting_vfs;
static sqlite3_io_methods counting_methods;
static const sqlite3_io_methods *unix_methods;
static unsigned long wal_writes;
static unsigned long long wal_bytes_written;

static int counting_write(sqlite3_file *file, const void *data, int n, sqlite3_int64 ofst)
{
	wal_writes++;
	wal_bytes_written += (unsigned long long)n;
	return unix_methods->xWrite(file, data, n, ofst);
}

static int counting_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *file, int flags,
			 int *out_flags)
{
	sqlite3_vfs *real = vfs->pAppData;
	int rc = real->xOpen(real, name, file, flags, out_flags);

	if (rc == SQLITE_OK && (flags & SQLITE_OPEN_WAL) && file->pMethods) {
		if (!unix_methods) {
			unix_methods = file->pMethods;
			counting_methods = *unix_methods;
			counting_methods.xWrite = counting_write;
		}
		if (file->pMethods == unix_methods)
			file->pMethods = &counting_methods;
	}
	return rc;
}

static void count_wal_writes(void)
{
	sqlite3_vfs *real = sqlite3_vfs_find(NULL);

	assert_non_null(real);
	counting_vfs = *real;
	counting_vfs.zName = "test-counting";
	counting_vfs.pAppData = real;
	counting_vfs.xOpen = counting_open;
	assert_int_equal(sqlite3_vfs_register(&counting_vfs, 1), SQLITE_OK);
}

/*
 * The writer's WAL frames reach the file in runs, not two write()s a page
 * (store_sql_walbuf_vfs), and every transaction, whatever its size and
 * wherever its commit frame falls in the buffer, is in the file when its
 * commit returns: a reader on its own connection sees all of it.
 */
static void wal_written_in_runs(void **state)
{
	const struct fixture *f = *state;
	struct store *w = open_writer(f), *r;
	struct store_event ev = { .at = T0, .kind = STORE_EV_RESYNC };
	uint64_t total = 0, seen;

	memset(ev.message, 'm', sizeof(ev.message) - 1);
	/* 1, 11, 22, ... 1089 events: commits of 1 to ~20 frames, each length of the last run. */
	for (int i = 0; i < 100; i++) {
		unsigned long writes = wal_writes;
		unsigned long long bytes = wal_bytes_written;

		assert_int_equal(store_begin(w), 0);
		for (int k = 0; k < (i ? i * 11 : 1); k++, total++)
			assert_int_equal(store_event_add(w, &ev, NULL), 0);
		assert_int_equal(store_commit(w), 0);
		r = open_reader(f);
		assert_int_equal(store_event_count(r, STORE_EV_RESYNC, 0, &seen), 0);
		assert_int_equal(seen, total);
		store_close(r);
		/*
		 * Without the buffer: two writes per frame of 16 KiB + 24 bytes.
		 * (Counted in bytes written, not by the file's growth: the WAL
		 * starts over after a checkpoint, cut back to journal_size_limit.)
		 */
		{
			unsigned long frames =
				(unsigned long)((wal_bytes_written - bytes) / (16384 + 24));

			assert_true(frames > 0);
			assert_true(wal_writes - writes <= 2 + frames / 7);
		}
	}
	store_close(w);
}

int main(void)
{
	count_wal_writes();
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(creates_dir_and_db, setup, teardown),
		cmocka_unit_test_setup_teardown(wal_written_in_runs, setup, teardown),
		cmocka_unit_test_setup_teardown(tightens_existing_db, setup, teardown),
		cmocka_unit_test_setup_teardown(refuses_odd_files, setup, teardown),
		cmocka_unit_test_setup_teardown(migrates_from_every_version, setup, teardown),
		cmocka_unit_test_setup_teardown(migration_clears_foreign_fingerprints, setup, teardown),
		cmocka_unit_test_setup_teardown(sync_leaves_unchanged_rows, setup, teardown),
		cmocka_unit_test_setup_teardown(refuses_newer_schema, setup, teardown),
		cmocka_unit_test_setup_teardown(reader_needs_current_schema, setup, teardown),
		cmocka_unit_test_setup_teardown(sa_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(sa_rejects_bad_fields, setup, teardown),
		cmocka_unit_test_setup_teardown(sa_lifecycle, setup, teardown),
		cmocka_unit_test_setup_teardown(sync_reconciles, setup, teardown),
		cmocka_unit_test_setup_teardown(events_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(events_kept_in_sa_rows, setup, teardown),
		cmocka_unit_test_setup_teardown(rotations_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(meta_values, setup, teardown),
		cmocka_unit_test_setup_teardown(prune_by_retention, setup, teardown),
		cmocka_unit_test_setup_teardown(batching, setup, teardown),
		cmocka_unit_test_setup_teardown(keeps_shm_lock, setup, teardown),
		cmocka_unit_test_setup_teardown(concurrent_reader, setup, teardown),
		cmocka_unit_test_setup_teardown(reader_cannot_write, setup, teardown),
		cmocka_unit_test_setup_teardown(busy_database, setup, teardown),
		cmocka_unit_test_setup_teardown(disk_full, setup, teardown),
		cmocka_unit_test_setup_teardown(unwritable_dir, setup, teardown),
		cmocka_unit_test_setup_teardown(reentrant_iteration, setup, teardown),
		cmocka_unit_test_setup_teardown(no_key_material, setup, teardown),
		cmocka_unit_test_setup_teardown(many_sas_in_one_transaction, setup, teardown),
		cmocka_unit_test_setup_teardown(notices_file_replaced, setup, teardown),
		cmocka_unit_test_setup_teardown(event_for_sa, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
