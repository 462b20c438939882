/* SPDX-License-Identifier: ISC */
/* Key schedule v2's durable records: generations sent and received, inbound replay state. */
#include "store/gens.h"
#include "store/addr.h"
#include "store/sqlfile.h"
#include "store/store.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

/* PRAGMA application_id: "sakg", so neither the ledger nor a foreign file is taken for this one. */
#define APP_ID 0x73616b67

/*
 * Migrations: migrations[v] takes the database from version v to v + 1,
 * append-only, all steps up to the target in one transaction with the
 * user_version update. The CHECKs repeat the rules gens.c enforces on the
 * way in and on the way out (the file is hostile input: it is checked when
 * read, whatever the CHECKs said when it was written).
 */
static const char *const migrations[GENS_SCHEMA_VERSION] = {
	/* v0 -> v1 */
	"PRAGMA application_id = 1935764327;" /* APP_ID */
	"CREATE TABLE link ("
	"  link TEXT PRIMARY KEY NOT NULL CHECK (length(link) BETWEEN 1 AND 95),"
	"  first_epoch INTEGER NOT NULL,"
	"  fresh INTEGER NOT NULL CHECK (fresh = 0 OR fresh = 1),"
	"  at INTEGER NOT NULL"
	") WITHOUT ROWID;"
	"CREATE TABLE gen_out ("
	"  link TEXT NOT NULL CHECK (length(link) BETWEEN 1 AND 95),"
	"  epoch INTEGER NOT NULL,"
	"  gen INTEGER NOT NULL CHECK (gen BETWEEN 0 AND 15),"
	"  at INTEGER NOT NULL,"
	"  PRIMARY KEY (link, epoch)"
	") WITHOUT ROWID;"
	"CREATE TABLE gen_in ("
	"  link TEXT NOT NULL CHECK (length(link) BETWEEN 1 AND 95),"
	"  epoch INTEGER NOT NULL,"
	"  gen INTEGER NOT NULL CHECK (gen BETWEEN 0 AND 15 OR gen = 255),"
	"  prev INTEGER NOT NULL CHECK (prev BETWEEN 0 AND 15 OR prev = 255),"
	"  since INTEGER NOT NULL,"
	"  PRIMARY KEY (link, epoch)"
	") WITHOUT ROWID;"
	"CREATE TABLE replay ("
	"  dst TEXT NOT NULL,"
	"  spi INTEGER NOT NULL CHECK (spi BETWEEN 0 AND 4294967295),"
	"  link TEXT NOT NULL CHECK (length(link) BETWEEN 1 AND 95),"
	"  epoch INTEGER NOT NULL,"
	"  gen INTEGER NOT NULL CHECK (gen BETWEEN 0 AND 15),"
	"  window INTEGER NOT NULL CHECK (window BETWEEN 0 AND 4294967295),"
	"  seq INTEGER NOT NULL CHECK (seq BETWEEN 0 AND 4294967295),"
	"  seq_hi INTEGER NOT NULL CHECK (seq_hi BETWEEN 0 AND 4294967295),"
	"  bmp_len INTEGER NOT NULL CHECK (bmp_len BETWEEN 0 AND 128),"
	"  bmp BLOB NOT NULL CHECK (typeof(bmp) = 'blob' AND length(bmp) = 4 * bmp_len),"
	"  at INTEGER NOT NULL,"
	"  PRIMARY KEY (dst, spi)"
	") WITHOUT ROWID;"
	"CREATE INDEX replay_link_epoch ON replay(link, epoch);",
};

enum stmt_id {
	ST_BEGIN,
	ST_COMMIT,
	ST_ROLLBACK,
	ST_LINK_PUT,
	ST_OUT_PUT,
	ST_IN_PUT,
	ST_REPLAY_PUT,
	ST_REPLAY_DEL,
	ST_LINK_EACH,
	ST_OUT_EACH,
	ST_IN_EACH,
	ST_REPLAY_EACH,
	ST_REPLAY_GET,
	ST_PRUNE_OUT,
	ST_PRUNE_IN,
	ST_PRUNE_REPLAY,
	ST_COUNT_,
};

static const char *const stmt_sql[ST_COUNT_] = {
	[ST_BEGIN] = "BEGIN IMMEDIATE",
	[ST_COMMIT] = "COMMIT",
	[ST_ROLLBACK] = "ROLLBACK",
	[ST_LINK_PUT] = "INSERT INTO link (link, first_epoch, fresh, at) VALUES (?1, ?2, ?3, ?4) "
			"ON CONFLICT (link) DO NOTHING",
	[ST_OUT_PUT] = "INSERT INTO gen_out (link, epoch, gen, at) VALUES (?1, ?2, ?3, ?4) "
		       "ON CONFLICT (link, epoch) DO UPDATE SET gen = excluded.gen, at = excluded.at",
	[ST_IN_PUT] = "INSERT INTO gen_in (link, epoch, gen, prev, since) VALUES (?1, ?2, ?3, ?4, ?5) "
		      "ON CONFLICT (link, epoch) DO UPDATE SET gen = excluded.gen, "
		      "prev = excluded.prev, since = excluded.since",
	[ST_REPLAY_PUT] = "INSERT INTO replay (dst, spi, link, epoch, gen, window, seq, seq_hi, "
			  "bmp_len, bmp, at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) "
			  "ON CONFLICT (dst, spi) DO UPDATE SET link = excluded.link, "
			  "epoch = excluded.epoch, gen = excluded.gen, window = excluded.window, "
			  "seq = excluded.seq, seq_hi = excluded.seq_hi, bmp_len = excluded.bmp_len, "
			  "bmp = excluded.bmp, at = excluded.at",
	[ST_REPLAY_DEL] = "DELETE FROM replay WHERE dst = ?1 AND spi = ?2",
	[ST_LINK_EACH] = "SELECT link, first_epoch, fresh, at FROM link ORDER BY link",
	[ST_OUT_EACH] = "SELECT link, epoch, gen, at FROM gen_out ORDER BY link, epoch",
	[ST_IN_EACH] = "SELECT link, epoch, gen, prev, since FROM gen_in ORDER BY link, epoch",
	[ST_REPLAY_EACH] = "SELECT dst, spi, link, epoch, gen, window, seq, seq_hi, bmp_len, bmp, at "
			   "FROM replay ORDER BY link, epoch, gen, dst, spi",
	[ST_REPLAY_GET] = "SELECT dst, spi, link, epoch, gen, window, seq, seq_hi, bmp_len, bmp, at "
			  "FROM replay WHERE dst = ?1 AND spi = ?2",
	[ST_PRUNE_OUT] = "DELETE FROM gen_out WHERE link = ?1 AND epoch < ?2",
	[ST_PRUNE_IN] = "DELETE FROM gen_in WHERE link = ?1 AND epoch < ?2",
	[ST_PRUNE_REPLAY] = "DELETE FROM replay WHERE link = ?1 AND epoch < ?2",
};

struct gens {
	struct store_sql sql; /* the handle, statements, errors, transaction, file */
	bool loading; /* inside gens_load */
	sqlite3_stmt *stmt[ST_COUNT_];
	char errmsg[GENS_ERRMSG_LEN];
};

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Input checks */

static bool fits(const char *buf, size_t size)
{
	return memchr(buf, '\0', size) != NULL;
}

/* A link's key text: 1..GENS_LINK_LEN - 1 bytes of printable ASCII (spaces too), not a key. */
static bool link_ok(const char *t, size_t len)
{
	if (len == 0 || len >= GENS_LINK_LEN)
		return false;
	for (size_t i = 0; i < len; i++)
		if (t[i] < 0x20 || t[i] >= 0x7f)
			return false;
	return !store_key_shaped(t);
}

static int check_link(struct gens *g, const char *link)
{
	if (!link || !fits(link, GENS_LINK_LEN))
		return store_sql_fail(&g->sql, -EINVAL, "link: missing or longer than %d bytes",
				      GENS_LINK_LEN - 1);
	if (!link_ok(link, strlen(link)))
		return store_sql_fail(
			&g->sql, -EINVAL,
			"link: empty, not printable ASCII, or looks like key material; refused");
	return 0;
}

static bool gen_ok(unsigned gen, bool unknown_ok)
{
	return gen <= GENS_GEN_MAX || (unknown_ok && gen == GENS_GEN_UNKNOWN);
}

/* An IP literal in its inet_ntop form into out; false if it is none. */
static bool addr_norm(const char *in, size_t len, char out[GENS_ADDR_LEN])
{
	unsigned char bytes[16];
	char tmp[GENS_ADDR_LEN];

	if (len == 0 || len >= GENS_ADDR_LEN)
		return false;
	memcpy(tmp, in, len);
	tmp[len] = '\0';
	if (inet_pton(AF_INET, tmp, bytes) == 1)
		return store_addr_ntop(AF_INET, bytes, out, GENS_ADDR_LEN) != NULL;
	if (inet_pton(AF_INET6, tmp, bytes) == 1)
		return store_addr_ntop(AF_INET6, bytes, out, GENS_ADDR_LEN) != NULL;
	return false;
}

static int check_dst(struct gens *g, const char *dst, char out[GENS_ADDR_LEN])
{
	if (!dst || !fits(dst, GENS_ADDR_LEN) || !addr_norm(dst, strlen(dst), out))
		return store_sql_fail(&g->sql, -EINVAL, "dst: not an IP address literal");
	return 0;
}

/* Opening */

/* fsync a directory, so the entries made in it survive a power loss. */
static int sync_dir(struct gens *g, const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int err = 0;

	if (fd < 0)
		return store_sql_fail(&g->sql, -errno, "open %s: %s", dir, strerror(errno));
	/* Some file systems cannot sync a directory (EINVAL): nothing more to do there. */
	if (fsync(fd) < 0 && errno != EINVAL)
		err = store_sql_fail(&g->sql, -errno, "fsync %s: %s", dir, strerror(errno));
	close(fd);
	return err;
}

/* The directory that holds dir's entry. */
static int sync_parent(struct gens *g, const char *dir)
{
	char parent[PATH_MAX];
	char *slash;
	size_t n = strlen(dir);

	if (n >= sizeof(parent))
		return store_sql_fail(&g->sql, -ENAMETOOLONG, "%s: path too long", dir);
	memcpy(parent, dir, n + 1);
	while (n > 1 && parent[n - 1] == '/')
		parent[--n] = '\0';
	slash = strrchr(parent, '/');
	if (!slash)
		return sync_dir(g, ".");
	if (slash == parent)
		slash[1] = '\0';
	else
		*slash = '\0';
	return sync_dir(g, parent);
}

static int migrate(struct gens *g)
{
	int64_t version = 0, app_id = 0, tables = 0;
	int err;

	if ((err = store_sql_exec(&g->sql, "BEGIN IMMEDIATE", "migration")))
		return err;
	if ((err = store_sql_query_int(&g->sql, "PRAGMA user_version", &version)) ||
	    (err = store_sql_query_int(&g->sql, "PRAGMA application_id", &app_id)))
		goto cleanup;
	if (version > GENS_SCHEMA_VERSION) {
		err = store_sql_fail(&g->sql, -EPROTONOSUPPORT,
				     "%s: schema version %" PRId64
				     " is newer than this build's %d; "
				     "upgrade sakeyd",
				     GENS_DB_NAME, version, GENS_SCHEMA_VERSION);
		goto cleanup;
	}
	if (version > 0 && app_id != APP_ID) {
		err = store_sql_fail(&g->sql, -EINVAL,
				     "%s: not sakeyd's generation records (application_id %" PRId64
				     ")",
				     GENS_DB_NAME, app_id);
		goto cleanup;
	}
	if (version == 0) {
		if ((err = store_sql_query_int(&g->sql, "SELECT count(*) FROM sqlite_schema",
					       &tables)))
			goto cleanup;
		if (tables > 0 || app_id != 0) {
			err = store_sql_fail(&g->sql, -EINVAL,
					     "%s: not sakeyd's generation records (tables "
					     "without a schema version)",
					     GENS_DB_NAME);
			goto cleanup;
		}
	}
	if ((err = store_sql_migrate_steps(&g->sql, migrations, version, GENS_SCHEMA_VERSION)))
		goto cleanup;
	return 0;

cleanup:
	store_sql_abandon(&g->sql);
	return err;
}

static int open_db(struct gens *g, const char *dir, bool *fresh)
{
	char path[PATH_MAX];
	struct stat st;
	bool had_dir;
	int64_t any = 0;
	int rc, err;

	if (!dir || !dir[0])
		return store_sql_fail(&g->sql, -EINVAL, "no state directory");
	if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, GENS_DB_NAME) >= sizeof(path))
		return store_sql_fail(&g->sql, -ENAMETOOLONG, "%s: path too long", dir);
	had_dir = stat(dir, &st) == 0;
	if ((err = store_make_dir(dir, g->errmsg, sizeof(g->errmsg))))
		return err;
	if (!had_dir && (err = sync_parent(g, dir)))
		return err;
	if ((err = store_make_db_file(path, g->errmsg, sizeof(g->errmsg))) ||
	    (err = sync_dir(g, dir)))
		return err;
	rc = sqlite3_open_v2(path, &g->sql.db,
			     SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOFOLLOW | SQLITE_OPEN_NOMUTEX,
			     NULL);
	if (rc != SQLITE_OK)
		return store_sql_db_fail(&g->sql, rc, path);
	sqlite3_extended_result_codes(g->sql.db, 1);
	sqlite3_busy_timeout(g->sql.db, GENS_BUSY_TIMEOUT_MS);
	store_sql_note_file(&g->sql, path);
	if ((err = store_sql_wal(&g->sql, path)))
		return err;
	/*
	 * FULL: in WAL mode the WAL is fsync'd at every commit, so a commit is
	 * durable when it returns (NORMAL, the ledger's, only syncs at
	 * checkpoints: a power loss may undo the last commits).
	 */
	if ((err = store_sql_exec(&g->sql, "PRAGMA synchronous = FULL", "pragmas")) ||
	    (err = migrate(g)))
		return err;
	if ((err = store_sql_query_int(
		     &g->sql,
		     "SELECT EXISTS (SELECT 1 FROM link) OR EXISTS (SELECT 1 FROM gen_out) "
		     "OR EXISTS (SELECT 1 FROM gen_in) OR EXISTS (SELECT 1 FROM replay)",
		     &any)))
		return err;
	if (fresh)
		*fresh = any == 0;
	return 0;
}

int gens_open(const char *dir, struct gens **out, bool *fresh, char *err, size_t err_size)
{
	struct gens *g = calloc(1, sizeof(*g));
	int ret;

	*out = NULL;
	if (!g) {
		if (err && err_size)
			snprintf(err, err_size, "out of memory");
		return -ENOMEM;
	}
	store_sql_init(&g->sql, stmt_sql, g->stmt, ARRAY_LEN(g->stmt), g->errmsg, sizeof(g->errmsg),
		       "generations", GENS_DB_NAME);
	ret = open_db(g, dir, fresh);
	if (ret) {
		if (err && err_size)
			snprintf(err, err_size, "%s", g->errmsg);
		gens_close(g);
		return ret;
	}
	*out = g;
	return 0;
}

void gens_close(struct gens *g)
{
	if (!g)
		return;
	store_sql_close(&g->sql);
	free(g);
}

const char *gens_errmsg(const struct gens *g)
{
	return g ? g->errmsg : "no generation records";
}

bool gens_file_replaced(const struct gens *g)
{
	return store_sql_file_replaced(&g->sql);
}

/* Transactions */

int gens_begin(struct gens *g)
{
	return store_sql_begin(&g->sql, ST_BEGIN);
}

int gens_commit(struct gens *g)
{
	return store_sql_commit(&g->sql, ST_COMMIT, ST_ROLLBACK);
}

void gens_rollback(struct gens *g)
{
	store_sql_rollback(&g->sql, ST_ROLLBACK);
}

/* Writes */

int gens_put_link(struct gens *g, const struct gens_link *r)
{
	sqlite3_stmt *st;
	int err, rc;

	if ((err = store_sql_write_ok(&g->sql)) || (err = check_link(g, r->link)) ||
	    (err = store_sql_stmt_get(&g->sql, ST_LINK_PUT, &st)))
		return err;
	rc = sqlite3_bind_text(st, 1, r->link, -1, SQLITE_STATIC);
	store_sql_keep(&rc, sqlite3_bind_int64(st, 2, r->first_epoch));
	store_sql_keep(&rc, sqlite3_bind_int(st, 3, r->fresh ? 1 : 0));
	store_sql_keep(&rc, sqlite3_bind_int64(st, 4, r->at));
	if ((err = store_sql_bind_check(&g->sql, rc, st)))
		return err;
	return store_sql_run(&g->sql, st, "link");
}

int gens_put_out(struct gens *g, const struct gens_out *r)
{
	sqlite3_stmt *st;
	int err, rc;

	if ((err = store_sql_write_ok(&g->sql)) || (err = check_link(g, r->link)))
		return err;
	if (!gen_ok(r->gen, false))
		return store_sql_fail(&g->sql, -EINVAL, "out: generation %u not in 0..%d", r->gen,
				      GENS_GEN_MAX);
	if ((err = store_sql_stmt_get(&g->sql, ST_OUT_PUT, &st)))
		return err;
	rc = sqlite3_bind_text(st, 1, r->link, -1, SQLITE_STATIC);
	store_sql_keep(&rc, sqlite3_bind_int64(st, 2, r->epoch));
	store_sql_keep(&rc, sqlite3_bind_int(st, 3, r->gen));
	store_sql_keep(&rc, sqlite3_bind_int64(st, 4, r->at));
	if ((err = store_sql_bind_check(&g->sql, rc, st)))
		return err;
	return store_sql_run(&g->sql, st, "out");
}

int gens_put_in(struct gens *g, const struct gens_in *r)
{
	sqlite3_stmt *st;
	int err, rc;

	if ((err = store_sql_write_ok(&g->sql)) || (err = check_link(g, r->link)))
		return err;
	if (!gen_ok(r->gen, true) || !gen_ok(r->prev, true))
		return store_sql_fail(&g->sql, -EINVAL,
				      "in: generation %u or previous %u not in 0..%d or unknown",
				      r->gen, r->prev, GENS_GEN_MAX);
	if ((err = store_sql_stmt_get(&g->sql, ST_IN_PUT, &st)))
		return err;
	rc = sqlite3_bind_text(st, 1, r->link, -1, SQLITE_STATIC);
	store_sql_keep(&rc, sqlite3_bind_int64(st, 2, r->epoch));
	store_sql_keep(&rc, sqlite3_bind_int(st, 3, r->gen));
	store_sql_keep(&rc, sqlite3_bind_int(st, 4, r->prev));
	store_sql_keep(&rc, sqlite3_bind_int64(st, 5, r->since));
	if ((err = store_sql_bind_check(&g->sql, rc, st)))
		return err;
	return store_sql_run(&g->sql, st, "in");
}

int gens_put_replay(struct gens *g, const struct gens_replay *r)
{
	unsigned char blob[4 * GENS_BMP_MAX];
	char dst[GENS_ADDR_LEN];
	sqlite3_stmt *st;
	int err, rc;

	if ((err = store_sql_write_ok(&g->sql)) || (err = check_link(g, r->link)) ||
	    (err = check_dst(g, r->dst, dst)))
		return err;
	if (!gen_ok(r->gen, false))
		return store_sql_fail(&g->sql, -EINVAL, "replay: generation %u not in 0..%d",
				      r->gen, GENS_GEN_MAX);
	if (r->bmp_len > GENS_BMP_MAX)
		return store_sql_fail(&g->sql, -EINVAL, "replay: bmp_len %" PRIu32 " over %d",
				      r->bmp_len, GENS_BMP_MAX);
	/* Big-endian words: the file reads the same on any host. */
	for (uint32_t i = 0; i < r->bmp_len; i++) {
		blob[4 * i] = (unsigned char)(r->bmp[i] >> 24);
		blob[4 * i + 1] = (unsigned char)(r->bmp[i] >> 16);
		blob[4 * i + 2] = (unsigned char)(r->bmp[i] >> 8);
		blob[4 * i + 3] = (unsigned char)r->bmp[i];
	}
	if ((err = store_sql_stmt_get(&g->sql, ST_REPLAY_PUT, &st)))
		return err;
	rc = sqlite3_bind_text(st, 1, dst, -1, SQLITE_STATIC);
	store_sql_keep(&rc, sqlite3_bind_int64(st, 2, r->spi));
	store_sql_keep(&rc, sqlite3_bind_text(st, 3, r->link, -1, SQLITE_STATIC));
	store_sql_keep(&rc, sqlite3_bind_int64(st, 4, r->epoch));
	store_sql_keep(&rc, sqlite3_bind_int(st, 5, r->gen));
	store_sql_keep(&rc, sqlite3_bind_int64(st, 6, r->window));
	store_sql_keep(&rc, sqlite3_bind_int64(st, 7, r->seq));
	store_sql_keep(&rc, sqlite3_bind_int64(st, 8, r->seq_hi));
	store_sql_keep(&rc, sqlite3_bind_int64(st, 9, r->bmp_len));
	/* A zero-length blob, not NULL, for an empty bitmap. */
	store_sql_keep(&rc, r->bmp_len ? sqlite3_bind_blob(st, 10, blob, (int)(4 * r->bmp_len),
							   SQLITE_STATIC)
				       : sqlite3_bind_zeroblob(st, 10, 0));
	store_sql_keep(&rc, sqlite3_bind_int64(st, 11, r->at));
	if ((err = store_sql_bind_check(&g->sql, rc, st)))
		return err;
	return store_sql_run(&g->sql, st, "replay");
}

int gens_del_replay(struct gens *g, const char *dst, uint32_t spi)
{
	char norm[GENS_ADDR_LEN];
	sqlite3_stmt *st;
	int err, rc;

	if ((err = store_sql_write_ok(&g->sql)) || (err = check_dst(g, dst, norm)) ||
	    (err = store_sql_stmt_get(&g->sql, ST_REPLAY_DEL, &st)))
		return err;
	rc = sqlite3_bind_text(st, 1, norm, -1, SQLITE_STATIC);
	store_sql_keep(&rc, sqlite3_bind_int64(st, 2, spi));
	if ((err = store_sql_bind_check(&g->sql, rc, st)))
		return err;
	return store_sql_run(&g->sql, st, "replay delete");
}

int gens_prune(struct gens *g, const char *link, int64_t before)
{
	static const enum stmt_id ids[] = { ST_PRUNE_OUT, ST_PRUNE_IN, ST_PRUNE_REPLAY };
	int64_t deleted = 0;
	int err;

	if ((err = store_sql_write_ok(&g->sql)) || (err = check_link(g, link)))
		return err;
	for (size_t i = 0; i < ARRAY_LEN(ids); i++) {
		sqlite3_stmt *st;
		int rc;

		if ((err = store_sql_stmt_get(&g->sql, ids[i], &st)))
			return err;
		rc = sqlite3_bind_text(st, 1, link, -1, SQLITE_STATIC);
		store_sql_keep(&rc, sqlite3_bind_int64(st, 2, before));
		if ((err = store_sql_bind_check(&g->sql, rc, st)) ||
		    (err = store_sql_run(&g->sql, st, "prune")))
			return err;
		deleted += sqlite3_changes(g->sql.db);
	}
	return deleted > INT_MAX ? INT_MAX : (int)deleted;
}

/* Reading: every column checked, as the file may hold anything. */

static bool col_int(sqlite3_stmt *st, int i, int64_t lo, int64_t hi, int64_t *out)
{
	int64_t v;

	if (sqlite3_column_type(st, i) != SQLITE_INTEGER)
		return false;
	v = sqlite3_column_int64(st, i);
	if (v < lo || v > hi)
		return false;
	*out = v;
	return true;
}

static bool col_link(sqlite3_stmt *st, int i, char out[GENS_LINK_LEN])
{
	const unsigned char *t;
	int len;

	if (sqlite3_column_type(st, i) != SQLITE_TEXT)
		return false;
	t = sqlite3_column_text(st, i);
	len = sqlite3_column_bytes(st, i);
	if (!t || len <= 0 || len >= GENS_LINK_LEN || memchr(t, '\0', (size_t)len))
		return false;
	memcpy(out, t, (size_t)len);
	out[len] = '\0';
	return link_ok(out, (size_t)len);
}

/* A bad row: which table, and as much of its key as could be read. */
static int bad_row(struct gens *g, const char *table, const char *link, int64_t epoch,
		   const char *why)
{
	return store_sql_fail(&g->sql, -EIO,
			      "%s: a %s row (link \"%s\", epoch %" PRId64 ") is corrupt: %s",
			      GENS_DB_NAME, table, link, epoch, why);
}

static int read_link(struct gens *g, sqlite3_stmt *st, struct gens_link *r)
{
	int64_t fresh;

	memset(r, 0, sizeof(*r));
	if (!col_link(st, 0, r->link))
		return bad_row(g, "link", "?", 0, "link text");
	if (!col_int(st, 1, INT64_MIN, INT64_MAX, &r->first_epoch))
		return bad_row(g, "link", r->link, 0, "first_epoch");
	if (!col_int(st, 2, 0, 1, &fresh))
		return bad_row(g, "link", r->link, r->first_epoch, "fresh");
	r->fresh = fresh != 0;
	if (!col_int(st, 3, INT64_MIN, INT64_MAX, &r->at))
		return bad_row(g, "link", r->link, r->first_epoch, "at");
	return 0;
}

static int read_out(struct gens *g, sqlite3_stmt *st, struct gens_out *r)
{
	int64_t gen;

	memset(r, 0, sizeof(*r));
	if (!col_link(st, 0, r->link))
		return bad_row(g, "gen_out", "?", 0, "link text");
	if (!col_int(st, 1, INT64_MIN, INT64_MAX, &r->epoch))
		return bad_row(g, "gen_out", r->link, 0, "epoch");
	if (!col_int(st, 2, 0, GENS_GEN_MAX, &gen))
		return bad_row(g, "gen_out", r->link, r->epoch, "generation out of range");
	r->gen = (uint8_t)gen;
	if (!col_int(st, 3, INT64_MIN, INT64_MAX, &r->at))
		return bad_row(g, "gen_out", r->link, r->epoch, "at");
	return 0;
}

static bool col_gen_or_unknown(sqlite3_stmt *st, int i, uint8_t *out)
{
	int64_t v;

	if (!col_int(st, i, 0, GENS_GEN_UNKNOWN, &v) || !gen_ok((unsigned)v, true))
		return false;
	*out = (uint8_t)v;
	return true;
}

static int read_in(struct gens *g, sqlite3_stmt *st, struct gens_in *r)
{
	memset(r, 0, sizeof(*r));
	if (!col_link(st, 0, r->link))
		return bad_row(g, "gen_in", "?", 0, "link text");
	if (!col_int(st, 1, INT64_MIN, INT64_MAX, &r->epoch))
		return bad_row(g, "gen_in", r->link, 0, "epoch");
	if (!col_gen_or_unknown(st, 2, &r->gen))
		return bad_row(g, "gen_in", r->link, r->epoch, "generation out of range");
	if (!col_gen_or_unknown(st, 3, &r->prev))
		return bad_row(g, "gen_in", r->link, r->epoch, "previous generation out of range");
	if (!col_int(st, 4, INT64_MIN, INT64_MAX, &r->since))
		return bad_row(g, "gen_in", r->link, r->epoch, "since");
	return 0;
}

static int read_replay(struct gens *g, sqlite3_stmt *st, struct gens_replay *r)
{
	int64_t v, window, seq, seq_hi, bmp_len;
	const unsigned char *blob;
	int blob_len;

	memset(r, 0, sizeof(*r));
	/* Columns: dst, spi, link, epoch, gen, window, seq, seq_hi, bmp_len, bmp, at. */
	if (!col_link(st, 2, r->link))
		return bad_row(g, "replay", "?", 0, "link text");
	if (!col_int(st, 3, INT64_MIN, INT64_MAX, &r->epoch))
		return bad_row(g, "replay", r->link, 0, "epoch");
	/* In the inet_ntop form gens_put_replay stores, or gens_del_replay would miss the row. */
	if (sqlite3_column_type(st, 0) != SQLITE_TEXT ||
	    !addr_norm((const char *)sqlite3_column_text(st, 0), (size_t)sqlite3_column_bytes(st, 0),
		       r->dst) ||
	    strlen(r->dst) != (size_t)sqlite3_column_bytes(st, 0) ||
	    memcmp(r->dst, sqlite3_column_text(st, 0), strlen(r->dst)) != 0)
		return bad_row(g, "replay", r->link, r->epoch,
			       "dst is not an IP address literal in inet_ntop form");
	if (!col_int(st, 1, 0, UINT32_MAX, &v))
		return bad_row(g, "replay", r->link, r->epoch, "spi");
	r->spi = (uint32_t)v;
	if (!col_int(st, 4, 0, GENS_GEN_MAX, &v))
		return bad_row(g, "replay", r->link, r->epoch, "generation out of range");
	r->gen = (uint8_t)v;
	if (!col_int(st, 5, 0, UINT32_MAX, &window) || !col_int(st, 6, 0, UINT32_MAX, &seq) ||
	    !col_int(st, 7, 0, UINT32_MAX, &seq_hi))
		return bad_row(g, "replay", r->link, r->epoch, "window or sequence numbers");
	r->window = (uint32_t)window;
	r->seq = (uint32_t)seq;
	r->seq_hi = (uint32_t)seq_hi;
	if (!col_int(st, 8, 0, GENS_BMP_MAX, &bmp_len))
		return bad_row(g, "replay", r->link, r->epoch, "bmp_len out of range");
	r->bmp_len = (uint32_t)bmp_len;
	if (sqlite3_column_type(st, 9) != SQLITE_BLOB)
		return bad_row(g, "replay", r->link, r->epoch, "bitmap is not a blob");
	blob = sqlite3_column_blob(st, 9);
	blob_len = sqlite3_column_bytes(st, 9);
	if (blob_len != 4 * bmp_len || (blob_len > 0 && !blob))
		return bad_row(g, "replay", r->link, r->epoch, "bitmap length disagrees with bmp_len");
	for (uint32_t i = 0; i < r->bmp_len; i++)
		r->bmp[i] = (uint32_t)blob[4 * i] << 24 | (uint32_t)blob[4 * i + 1] << 16 |
			    (uint32_t)blob[4 * i + 2] << 8 | (uint32_t)blob[4 * i + 3];
	if (!col_int(st, 10, INT64_MIN, INT64_MAX, &r->at))
		return bad_row(g, "replay", r->link, r->epoch, "at");
	return 0;
}

/* One kind: step through the rows, read and check each, hand it on. */
static int visit(struct gens *g, enum stmt_id id, const struct gens_visit *v)
{
	union {
		struct gens_link link;
		struct gens_out out;
		struct gens_in in;
		struct gens_replay replay;
	} r;
	sqlite3_stmt *st;
	int err, rc, ret = 0;

	if ((err = store_sql_stmt_get(&g->sql, id, &st)))
		return err;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		switch (id) {
		case ST_LINK_EACH:
			ret = read_link(g, st, &r.link);
			if (!ret)
				ret = v->link(&r.link, v->arg);
			break;
		case ST_OUT_EACH:
			ret = read_out(g, st, &r.out);
			if (!ret)
				ret = v->out(&r.out, v->arg);
			break;
		case ST_IN_EACH:
			ret = read_in(g, st, &r.in);
			if (!ret)
				ret = v->in(&r.in, v->arg);
			break;
		default:
			ret = read_replay(g, st, &r.replay);
			if (!ret)
				ret = v->replay(&r.replay, v->arg);
			break;
		}
		if (ret)
			break;
	}
	if (!ret && rc != SQLITE_DONE)
		ret = store_sql_db_fail(&g->sql, rc, "load");
	store_sql_stmt_done(st);
	return ret;
}

int gens_get_replay(struct gens *g, const char *dst, uint32_t spi, struct gens_replay *out)
{
	char norm[GENS_ADDR_LEN];
	sqlite3_stmt *st;
	int err, rc;

	if ((err = check_dst(g, dst, norm)) ||
	    (err = store_sql_stmt_get(&g->sql, ST_REPLAY_GET, &st)))
		return err;
	rc = sqlite3_bind_text(st, 1, norm, -1, SQLITE_STATIC);
	store_sql_keep(&rc, sqlite3_bind_int64(st, 2, spi));
	if ((err = store_sql_bind_check(&g->sql, rc, st)))
		return err;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		err = read_replay(g, st, out);
	else if (rc == SQLITE_DONE)
		err = -ENOENT;
	else
		err = store_sql_db_fail(&g->sql, rc, "replay get");
	store_sql_stmt_done(st);
	return err;
}

int gens_load(struct gens *g, const struct gens_visit *v)
{
	int ret = 0;

	if (g->loading)
		return store_sql_fail(&g->sql, -EDEADLK, "gens_load called from its own callback");
	g->loading = true;
	if (v->link)
		ret = visit(g, ST_LINK_EACH, v);
	if (!ret && v->out)
		ret = visit(g, ST_OUT_EACH, v);
	if (!ret && v->in)
		ret = visit(g, ST_IN_EACH, v);
	if (!ret && v->replay)
		ret = visit(g, ST_REPLAY_EACH, v);
	g->loading = false;
	return ret;
}
