/* SPDX-License-Identifier: ISC */
/* The SQLite ledger: schema and migrations, batched writes, read-only queries for sactl. */
#include "store/store.h"
#include "store/addr.h"
#include "store/sqlfile.h"
#include "store/store_test.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

/* PRAGMA application_id: "sakd", so a foreign SQLite file is never migrated into a ledger. */
#define APP_ID 0x73616b64

/*
 * Migrations: migrations[v] takes a database from version v to v + 1. They
 * are append-only: a released step is never edited, a change is a new step.
 * All steps up to the target run in one transaction with the user_version
 * update, so a crash leaves the old version or the new one.
 */
static const char *const migrations[STORE_SCHEMA_VERSION] = {
	/* v0 -> v1: the ledger. */
	"PRAGMA application_id = 1935764324;" /* APP_ID */
	"CREATE TABLE meta ("
	"  key TEXT PRIMARY KEY NOT NULL,"
	"  value TEXT NOT NULL"
	") WITHOUT ROWID;"
	"CREATE TABLE sa ("
	"  id INTEGER PRIMARY KEY,"
	"  link TEXT,"
	"  dir TEXT CHECK (dir IN ('in', 'out')),"
	"  spi INTEGER NOT NULL CHECK (spi BETWEEN 0 AND 4294967295),"
	"  src TEXT NOT NULL,"
	"  dst TEXT NOT NULL,"
	"  proto INTEGER NOT NULL CHECK (proto BETWEEN 1 AND 255),"
	"  mode TEXT,"
	"  algorithm TEXT,"
	"  epoch INTEGER,"
	"  managed INTEGER NOT NULL DEFAULT 0 CHECK (managed IN (0, 1)),"
	"  state TEXT NOT NULL CHECK (state IN ('larval', 'mature', 'dying', 'gone')),"
	"  added_at INTEGER NOT NULL,"
	"  gone_at INTEGER,"
	"  soft_expires_at INTEGER,"
	"  hard_expires_at INTEGER,"
	"  bytes INTEGER NOT NULL DEFAULT 0,"
	"  packets INTEGER NOT NULL DEFAULT 0,"
	"  last_counters_at INTEGER,"
	/* A fingerprint and nothing longer: no column of the ledger can hold a key. */
	"  key_fp TEXT CHECK (key_fp IS NULL OR"
	"    (length(key_fp) = 16 AND key_fp NOT GLOB '*[^0-9a-f]*')),"
	"  CHECK ((state = 'gone') = (gone_at IS NOT NULL))"
	");"
	/* The kernel holds one SA per (dst, spi, proto): so does the set of live rows. */
	"CREATE UNIQUE INDEX sa_live ON sa(dst, spi, proto) WHERE state != 'gone';"
	"CREATE INDEX sa_gone_at ON sa(gone_at) WHERE gone_at IS NOT NULL;"
	"CREATE TABLE event ("
	"  id INTEGER PRIMARY KEY,"
	"  at INTEGER NOT NULL,"
	"  kind TEXT NOT NULL CHECK (kind IN ('add', 'update', 'delete', 'expire-soft',"
	"    'expire-hard', 'acquire', 'acquire-unanswered', 'sa-removed', 'sa-too-old',"
	"    'rotation-failed', 'resync')),"
	"  link TEXT,"
	"  spi INTEGER CHECK (spi BETWEEN 1 AND 4294967295),"
	"  src TEXT,"
	"  dst TEXT,"
	"  proto INTEGER CHECK (proto BETWEEN 1 AND 255),"
	"  message TEXT NOT NULL DEFAULT '',"
	"  origin_pid INTEGER"
	");"
	"CREATE INDEX event_at ON event(at);"
	"CREATE TABLE rotation ("
	"  id INTEGER PRIMARY KEY,"
	"  at INTEGER NOT NULL,"
	"  link TEXT NOT NULL,"
	"  epoch INTEGER NOT NULL,"
	"  result TEXT NOT NULL CHECK (result IN ('ok', 'failed')),"
	"  detail TEXT NOT NULL DEFAULT '',"
	"  old_spi INTEGER,"
	"  new_spi INTEGER"
	");"
	"CREATE INDEX rotation_at ON rotation(at);",

	/*
	 * v1 -> v2: the pid that added an SA; events point at the SA life they
	 * concern (kept when the SA is pruned); indexes for sactl check's counts
	 * and for the last rotation of each link.
	 */
	"ALTER TABLE sa ADD COLUMN origin_pid INTEGER;"
	"ALTER TABLE event ADD COLUMN sa_id INTEGER REFERENCES sa(id) ON DELETE SET NULL;"
	"CREATE INDEX event_sa ON event(sa_id);"
	"CREATE INDEX event_kind_at ON event(kind, at);"
	"CREATE INDEX rotation_link_at ON rotation(link, at);",

	/*
	 * v2 -> v3: event kind xfrm-errors. A CHECK constraint cannot be altered:
	 * the table is rebuilt with the same columns and rows (ids kept, so
	 * nothing that points at an event changes), then its indexes.
	 */
	"CREATE TABLE event_v3 ("
	"  id INTEGER PRIMARY KEY,"
	"  at INTEGER NOT NULL,"
	"  kind TEXT NOT NULL CHECK (kind IN ('add', 'update', 'delete', 'expire-soft',"
	"    'expire-hard', 'acquire', 'acquire-unanswered', 'sa-removed', 'sa-too-old',"
	"    'rotation-failed', 'resync', 'xfrm-errors')),"
	"  link TEXT,"
	"  spi INTEGER CHECK (spi BETWEEN 1 AND 4294967295),"
	"  src TEXT,"
	"  dst TEXT,"
	"  proto INTEGER CHECK (proto BETWEEN 1 AND 255),"
	"  message TEXT NOT NULL DEFAULT '',"
	"  origin_pid INTEGER,"
	"  sa_id INTEGER REFERENCES sa(id) ON DELETE SET NULL"
	");"
	"INSERT INTO event_v3 (id, at, kind, link, spi, src, dst, proto, message, origin_pid, sa_id)"
	"  SELECT id, at, kind, link, spi, src, dst, proto, message, origin_pid, sa_id FROM event;"
	"DROP TABLE event;"
	"ALTER TABLE event_v3 RENAME TO event;"
	"CREATE INDEX event_at ON event(at);"
	"CREATE INDEX event_sa ON event(sa_id);"
	"CREATE INDEX event_kind_at ON event(kind, at);",

	/*
	 * v3 -> v4: the same constraints, cheaper. SQLite checks "x IN (a, b,
	 * c, ...)" of three or more constants by building an ephemeral b-tree
	 * of the list, anew for every row written: about half the cost of an
	 * event insert (BENCHMARKS.md). A chain of
	 * equalities refuses exactly the same values. sa and event are rebuilt
	 * with the same columns, rows and ids; foreign keys are off while
	 * migrations run, so dropping the old sa nulls no event's sa_id.
	 */
	"CREATE TABLE sa_v4 ("
	"  id INTEGER PRIMARY KEY,"
	"  link TEXT,"
	"  dir TEXT CHECK (dir IN ('in', 'out')),"
	"  spi INTEGER NOT NULL CHECK (spi BETWEEN 0 AND 4294967295),"
	"  src TEXT NOT NULL,"
	"  dst TEXT NOT NULL,"
	"  proto INTEGER NOT NULL CHECK (proto BETWEEN 1 AND 255),"
	"  mode TEXT,"
	"  algorithm TEXT,"
	"  epoch INTEGER,"
	"  managed INTEGER NOT NULL DEFAULT 0 CHECK (managed IN (0, 1)),"
	"  state TEXT NOT NULL CHECK (state = 'larval' OR state = 'mature' OR state = 'dying'"
	"    OR state = 'gone'),"
	"  added_at INTEGER NOT NULL,"
	"  gone_at INTEGER,"
	"  soft_expires_at INTEGER,"
	"  hard_expires_at INTEGER,"
	"  bytes INTEGER NOT NULL DEFAULT 0,"
	"  packets INTEGER NOT NULL DEFAULT 0,"
	"  last_counters_at INTEGER,"
	"  key_fp TEXT CHECK (key_fp IS NULL OR"
	"    (length(key_fp) = 16 AND key_fp NOT GLOB '*[^0-9a-f]*')),"
	"  origin_pid INTEGER,"
	"  CHECK ((state = 'gone') = (gone_at IS NOT NULL))"
	");"
	"INSERT INTO sa_v4 (id, link, dir, spi, src, dst, proto, mode, algorithm, epoch, managed,"
	"  state, added_at, gone_at, soft_expires_at, hard_expires_at, bytes, packets,"
	"  last_counters_at, key_fp, origin_pid)"
	"  SELECT id, link, dir, spi, src, dst, proto, mode, algorithm, epoch, managed,"
	"  state, added_at, gone_at, soft_expires_at, hard_expires_at, bytes, packets,"
	"  last_counters_at, key_fp, origin_pid FROM sa;"
	"DROP TABLE sa;"
	"ALTER TABLE sa_v4 RENAME TO sa;"
	"CREATE UNIQUE INDEX sa_live ON sa(dst, spi, proto) WHERE state != 'gone';"
	"CREATE INDEX sa_gone_at ON sa(gone_at) WHERE gone_at IS NOT NULL;"
	"CREATE TABLE event_v4 ("
	"  id INTEGER PRIMARY KEY,"
	"  at INTEGER NOT NULL,"
	"  kind TEXT NOT NULL CHECK (kind = 'add' OR kind = 'update' OR kind = 'delete'"
	"    OR kind = 'expire-soft' OR kind = 'expire-hard' OR kind = 'acquire'"
	"    OR kind = 'acquire-unanswered' OR kind = 'sa-removed' OR kind = 'sa-too-old'"
	"    OR kind = 'rotation-failed' OR kind = 'resync' OR kind = 'xfrm-errors'),"
	"  link TEXT,"
	"  spi INTEGER CHECK (spi BETWEEN 1 AND 4294967295),"
	"  src TEXT,"
	"  dst TEXT,"
	"  proto INTEGER CHECK (proto BETWEEN 1 AND 255),"
	"  message TEXT NOT NULL DEFAULT '',"
	"  origin_pid INTEGER,"
	"  sa_id INTEGER REFERENCES sa(id) ON DELETE SET NULL"
	");"
	"INSERT INTO event_v4 (id, at, kind, link, spi, src, dst, proto, message, origin_pid, sa_id)"
	"  SELECT id, at, kind, link, spi, src, dst, proto, message, origin_pid, sa_id FROM event;"
	"DROP TABLE event;"
	"ALTER TABLE event_v4 RENAME TO event;"
	"CREATE INDEX event_at ON event(at);"
	"CREATE INDEX event_sa ON event(sa_id);"
	"CREATE INDEX event_kind_at ON event(kind, at);",

	/*
	 * v4 -> v5: event kinds of key schedule v2 (generation-changed,
	 * generations-exhausted, replay-unprotected). The event table is rebuilt
	 * as v3 did, with the same columns, rows and ids.
	 */
	"CREATE TABLE event_v5 ("
	"  id INTEGER PRIMARY KEY,"
	"  at INTEGER NOT NULL,"
	"  kind TEXT NOT NULL CHECK (kind = 'add' OR kind = 'update' OR kind = 'delete'"
	"    OR kind = 'expire-soft' OR kind = 'expire-hard' OR kind = 'acquire'"
	"    OR kind = 'acquire-unanswered' OR kind = 'sa-removed' OR kind = 'sa-too-old'"
	"    OR kind = 'rotation-failed' OR kind = 'resync' OR kind = 'xfrm-errors'"
	"    OR kind = 'generation-changed' OR kind = 'generations-exhausted'"
	"    OR kind = 'replay-unprotected'),"
	"  link TEXT,"
	"  spi INTEGER CHECK (spi BETWEEN 1 AND 4294967295),"
	"  src TEXT,"
	"  dst TEXT,"
	"  proto INTEGER CHECK (proto BETWEEN 1 AND 255),"
	"  message TEXT NOT NULL DEFAULT '',"
	"  origin_pid INTEGER,"
	"  sa_id INTEGER REFERENCES sa(id) ON DELETE SET NULL"
	");"
	"INSERT INTO event_v5 (id, at, kind, link, spi, src, dst, proto, message, origin_pid, sa_id)"
	"  SELECT id, at, kind, link, spi, src, dst, proto, message, origin_pid, sa_id FROM event;"
	"DROP TABLE event;"
	"ALTER TABLE event_v5 RENAME TO event;"
	"CREATE INDEX event_at ON event(at);"
	"CREATE INDEX event_sa ON event(sa_id);"
	"CREATE INDEX event_kind_at ON event(kind, at);",

	/*
	 * v5 -> v6: no fingerprint of a key sakeyd did not derive (#20). Until
	 * 3d87e46 the writer stored an unsalted hash of every SA's key, a
	 * hand-keyed one's included: an offline oracle for a weak hand-typed
	 * key. Those are cleared; secure_delete (on for the writer) zeroes the
	 * bytes the shorter rows free, and migrate() checkpoints the WAL into
	 * the file and truncates it, so no page of the database or its WAL
	 * keeps them.
	 */
	"UPDATE sa SET key_fp = NULL WHERE managed = 0 AND key_fp IS NOT NULL;",

	/*
	 * v6 -> v7: an SA life's add and delete events in its own row. A
	 * rotation wrote an event row beside every SA row it added or ended
	 * (80,000 a rotation of 10,000 links, each with three indexes): most
	 * of the ledger's work after the passes. The row now says when its add
	 * and its delete were recorded (add_ev_at, del_ev_at), with what message,
	 * and where they stand among the events (add_ev, del_ev: numbers from
	 * the event ids' series, meta event_next). Readers list them among the
	 * event rows as kind 'add' and 'delete' (ST_EV_EACH); rows written
	 * before v7 keep their event rows, and an event that cannot go in its
	 * SA's row (none written, or a second delete) is an event row still.
	 */
	"ALTER TABLE sa ADD COLUMN add_ev INTEGER;"
	"ALTER TABLE sa ADD COLUMN add_ev_at INTEGER;"
	"ALTER TABLE sa ADD COLUMN add_ev_msg TEXT;"
	"ALTER TABLE sa ADD COLUMN del_ev INTEGER;"
	"ALTER TABLE sa ADD COLUMN del_ev_at INTEGER;"
	"ALTER TABLE sa ADD COLUMN del_ev_msg TEXT;",
};

enum stmt_id {
	ST_BEGIN,
	ST_COMMIT,
	ST_ROLLBACK,
	ST_SA_CLOSE_LIVE,
	ST_SA_INSERT,
	ST_SA_UPDATE,
	ST_SA_COUNTERS,
	ST_SA_STATE,
	ST_SA_GONE_EV,
	ST_SA_GET,
	ST_SA_FIND_LIVE,
	ST_SA_EACH,
	ST_SA_COUNT,
	ST_SYNC_CLEAR,
	ST_SYNC_MARK,
	ST_SYNC_END,
	ST_EV_INSERT,
	ST_EV_FROM_SA,
	ST_EV_EACH,
	ST_EV_COUNT,
	ST_ROT_INSERT,
	ST_ROT_EACH,
	ST_ROT_COUNT,
	ST_ROT_LAST,
	ST_ROT_LAST_EACH,
	ST_META_SET,
	ST_META_DEL,
	ST_META_GET,
	ST_PRUNE_EV,
	ST_PRUNE_ROT,
	ST_PRUNE_SA,
	ST_COUNT_,
};

#define SA_COLS                                                                                    \
	"id, link, dir, spi, src, dst, proto, mode, algorithm, epoch, managed, state, added_at, "  \
	"gone_at, soft_expires_at, hard_expires_at, bytes, packets, last_counters_at, key_fp, "    \
	"origin_pid"
#define EV_COLS "id, at, kind, sa_id, link, spi, src, dst, proto, message, origin_pid"
#define ROT_COLS "id, at, link, epoch, result, detail, old_spi, new_spi"
/* EV_COLS of the add (e "add") or delete (e "del") event an SA row holds (v7). */
#define SA_EV_COLS(e, kind)                                                                        \
	e "_ev, " e "_ev_at, '" kind "', id, link, nullif(spi, 0), "                               \
	"CASE WHEN src = '-' THEN NULL ELSE src END, CASE WHEN src = '-' THEN NULL ELSE dst END, " \
	"proto, " e "_ev_msg, origin_pid"

static const char *const stmt_sql[ST_COUNT_] = {
	[ST_BEGIN] = "BEGIN IMMEDIATE",
	[ST_COMMIT] = "COMMIT",
	[ST_ROLLBACK] = "ROLLBACK",
	[ST_SA_CLOSE_LIVE] = "UPDATE sa SET state = 'gone', gone_at = max(?4, added_at) "
			     "WHERE dst = ?1 AND spi = ?2 AND proto = ?3 AND state != 'gone'",
	[ST_SA_INSERT] = "INSERT INTO sa (link, dir, spi, src, dst, proto, mode, algorithm, epoch, "
			 "managed, state, added_at, soft_expires_at, hard_expires_at, bytes, "
			 "packets, last_counters_at, key_fp, origin_pid, add_ev, add_ev_at, "
			 "add_ev_msg) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, "
			 "?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22)",
	[ST_SA_UPDATE] = "UPDATE sa SET link = ?2, dir = ?3, mode = ?4, algorithm = ?5, epoch = ?6, "
			 "managed = ?7, state = ?8, soft_expires_at = ?9, hard_expires_at = ?10, "
			 "bytes = ?11, packets = ?12, last_counters_at = ?13, key_fp = ?14, "
			 "origin_pid = ?15 WHERE id = ?1 AND state != 'gone'",
	[ST_SA_COUNTERS] = "UPDATE sa SET bytes = ?2, packets = ?3, last_counters_at = ?4 "
			   "WHERE id = ?1",
	[ST_SA_STATE] = "UPDATE sa SET state = ?2, gone_at = CASE WHEN ?2 = 'gone' "
			"THEN max(?3, added_at) END WHERE id = ?1 AND state != 'gone'",
	/* The life's end and its delete event, in one row (a row already gone keeps its end). */
	[ST_SA_GONE_EV] = "UPDATE sa SET state = 'gone', gone_at = CASE WHEN state = 'gone' "
			  "THEN gone_at ELSE max(?2, added_at) END, del_ev = ?3, del_ev_at = ?2, "
			  "del_ev_msg = ?4 WHERE id = ?1 AND del_ev IS NULL",
	[ST_SA_GET] = "SELECT " SA_COLS " FROM sa WHERE id = ?1",
	[ST_SA_FIND_LIVE] = "SELECT " SA_COLS " FROM sa "
			    "WHERE dst = ?1 AND spi = ?2 AND proto = ?3 AND state != 'gone'",
	[ST_SA_EACH] = "SELECT " SA_COLS " FROM sa WHERE (?1 IS NULL OR link = ?1) "
		       "AND (?2 OR state != 'gone') ORDER BY id",
	[ST_SA_COUNT] = "SELECT count(*) FROM sa WHERE (?1 IS NULL OR link = ?1) "
			"AND (?2 OR state != 'gone')",
	[ST_SYNC_CLEAR] = "DELETE FROM temp.sync_seen",
	[ST_SYNC_MARK] = "INSERT OR IGNORE INTO temp.sync_seen (id) VALUES (?1)",
	[ST_SYNC_END] = "UPDATE main.sa SET state = 'gone', gone_at = max(?1, added_at) "
			"WHERE state != 'gone' AND id NOT IN (SELECT id FROM temp.sync_seen)",
	[ST_EV_INSERT] = "INSERT INTO event (at, kind, sa_id, link, spi, src, dst, proto, message, "
			 "origin_pid, id) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
	[ST_EV_FROM_SA] = "INSERT INTO event (at, kind, sa_id, link, spi, src, dst, proto, message, "
			  "origin_pid, id) SELECT ?1, ?2, id, link, nullif(spi, 0), src, dst, proto, "
			  "?3, origin_pid, ?5 FROM sa WHERE id = ?4",
	/*
	 * The event rows and the add and delete events kept in SA rows (v7),
	 * in the order they were recorded. The SA row's part is what
	 * store_event_add would have stored from the entry: no address when
	 * the source is unspecified ("-"), no SPI 0.
	 */
	[ST_EV_EACH] = "SELECT " EV_COLS " FROM event WHERE at >= ?1 "
		       "AND (?2 IS NULL OR link = ?2) "
		       "UNION ALL SELECT " SA_EV_COLS("add", "add") " FROM sa WHERE add_ev IS NOT NULL "
		       "AND add_ev_at >= ?1 AND (?2 IS NULL OR link = ?2) "
		       "UNION ALL SELECT " SA_EV_COLS("del", "delete") " FROM sa WHERE del_ev IS NOT NULL "
		       "AND del_ev_at >= ?1 AND (?2 IS NULL OR link = ?2) "
		       "ORDER BY 2, 1",
	[ST_EV_COUNT] = "SELECT (SELECT count(*) FROM event WHERE kind = ?1 AND at >= ?2) + "
			"CASE ?1 WHEN 'add' THEN (SELECT count(*) FROM sa WHERE add_ev IS NOT NULL "
			"AND add_ev_at >= ?2) WHEN 'delete' THEN (SELECT count(*) FROM sa "
			"WHERE del_ev IS NOT NULL AND del_ev_at >= ?2) ELSE 0 END",
	[ST_ROT_INSERT] = "INSERT INTO rotation (at, link, epoch, result, detail, old_spi, new_spi) "
			  "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
	[ST_ROT_EACH] = "SELECT " ROT_COLS " FROM rotation WHERE at >= ?1 "
			"AND (?2 IS NULL OR link = ?2) ORDER BY at, id",
	[ST_ROT_COUNT] = "SELECT count(*) FROM rotation WHERE result = ?2 AND at >= ?3 "
			 "AND (?1 IS NULL OR link = ?1)",
	[ST_ROT_LAST] = "SELECT " ROT_COLS " FROM rotation WHERE link = ?1 "
			"AND (?2 = 0 OR result = 'ok') ORDER BY at DESC, id DESC LIMIT 1",
	[ST_ROT_LAST_EACH] = "SELECT " ROT_COLS " FROM rotation WHERE id IN ("
			     "SELECT (SELECT r.id FROM rotation r WHERE r.link = l.link "
			     "AND (?1 = 0 OR r.result = 'ok') ORDER BY r.at DESC, r.id DESC LIMIT 1) "
			     "FROM (SELECT DISTINCT link FROM rotation) l) ORDER BY link",
	[ST_META_SET] = "INSERT INTO meta (key, value) VALUES (?1, ?2) "
			"ON CONFLICT (key) DO UPDATE SET value = excluded.value",
	[ST_META_DEL] = "DELETE FROM meta WHERE key = ?1",
	[ST_META_GET] = "SELECT value FROM meta WHERE key = ?1",
	[ST_PRUNE_EV] = "DELETE FROM event WHERE at < ?1",
	[ST_PRUNE_ROT] = "DELETE FROM rotation WHERE at < ?1",
	[ST_PRUNE_SA] = "DELETE FROM sa WHERE gone_at IS NOT NULL AND gone_at < ?1",
};

struct store {
	struct store_sql sql; /* the handle, statements, errors, transaction, writer's file */
	bool readonly;
	bool syncing;
	int version;
	/*
	 * The writer's event ids (v7): every event, in an event row or in an
	 * SA row, takes the next, so the events list in the order they were
	 * recorded. ev_saved is what meta event_next holds as committed.
	 */
	int64_t ev_next, ev_saved;
	sqlite3_stmt *stmt[ST_COUNT_];
	char errmsg[STORE_ERRMSG_LEN];
};

static const char *const dir_names[] = {
	[STORE_DIR_NONE] = NULL,
	[STORE_DIR_IN] = "in",
	[STORE_DIR_OUT] = "out",
};

static const char *const state_names[] = {
	[STORE_SA_LARVAL] = "larval",
	[STORE_SA_MATURE] = "mature",
	[STORE_SA_DYING] = "dying",
	[STORE_SA_GONE] = "gone",
};

static const char *const kind_names[STORE_EV_COUNT_] = {
	[STORE_EV_ADD] = "add",
	[STORE_EV_UPDATE] = "update",
	[STORE_EV_DELETE] = "delete",
	[STORE_EV_EXPIRE_SOFT] = "expire-soft",
	[STORE_EV_EXPIRE_HARD] = "expire-hard",
	[STORE_EV_ACQUIRE] = "acquire",
	[STORE_EV_ACQUIRE_UNANSWERED] = "acquire-unanswered",
	[STORE_EV_SA_REMOVED] = "sa-removed",
	[STORE_EV_SA_TOO_OLD] = "sa-too-old",
	[STORE_EV_ROTATION_FAILED] = "rotation-failed",
	[STORE_EV_RESYNC] = "resync",
	[STORE_EV_XFRM_ERRORS] = "xfrm-errors",
	[STORE_EV_GENERATION_CHANGED] = "generation-changed",
	[STORE_EV_GENERATIONS_EXHAUSTED] = "generations-exhausted",
	[STORE_EV_REPLAY_UNPROTECTED] = "replay-unprotected",
};

static const char *const result_names[] = {
	[STORE_ROT_OK] = "ok",
	[STORE_ROT_FAILED] = "failed",
};

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

const char *store_dir_name(enum store_dir dir)
{
	return (unsigned)dir < ARRAY_LEN(dir_names) ? dir_names[dir] : NULL;
}

const char *store_sa_state_name(enum store_sa_state state)
{
	return (unsigned)state < ARRAY_LEN(state_names) ? state_names[state] : NULL;
}

const char *store_event_kind_name(enum store_event_kind kind)
{
	return (unsigned)kind < ARRAY_LEN(kind_names) ? kind_names[kind] : NULL;
}

const char *store_rot_result_name(enum store_rot_result result)
{
	return (unsigned)result < ARRAY_LEN(result_names) ? result_names[result] : NULL;
}

static int name_index(const char *const *names, size_t n, const char *name)
{
	for (size_t i = 0; name && i < n; i++)
		if (names[i] && strcmp(names[i], name) == 0)
			return (int)i;
	return -1;
}

int store_event_kind_parse(const char *name, enum store_event_kind *kind)
{
	int i = name_index(kind_names, ARRAY_LEN(kind_names), name);

	if (i < 0)
		return -EINVAL;
	*kind = (enum store_event_kind)i;
	return 0;
}

/*
 * Text of a write: SQLITE_STATIC, not a copy (a malloc per column). Every
 * write binds and steps in one call while the text lives, and stmt_done
 * clears the bindings before returning, on every path.
 */
static int bind_text(sqlite3_stmt *st, int i, const char *text)
{
	if (!text || !text[0])
		return sqlite3_bind_null(st, i);
	return sqlite3_bind_text(st, i, text, -1, SQLITE_STATIC);
}

static int bind_opt(sqlite3_stmt *st, int i, int64_t v)
{
	return v ? sqlite3_bind_int64(st, i, v) : sqlite3_bind_null(st, i);
}

static void col_text(sqlite3_stmt *st, int i, char *buf, size_t size)
{
	const unsigned char *t = sqlite3_column_text(st, i);

	snprintf(buf, size, "%s", t ? (const char *)t : "");
}

/* Input checks: nothing key-shaped, nothing unbounded, addresses in one canonical form. */

static bool fits(const char *buf, size_t size)
{
	return memchr(buf, '\0', size) != NULL;
}

static bool is_hex(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

bool store_is_b64_char(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       c == '+' || c == '/' || c == '-' || c == '_';
}

/*
 * Whether the run t[0..len) of base64 characters (padding aside) could be a key: 32+ hex
 * digits in a row (128 bits), or 40+ characters mixing digits, upper and
 * lower case (base64 of 30+ bytes). Words, paths and fingerprints are not.
 */
bool store_run_is_key(const char *t, size_t len)
{
	bool digit = false, upper = false, lower = false;
	size_t hex = 0;

	for (size_t i = 0; i < len; i++) {
		hex = is_hex(t[i]) ? hex + 1 : 0;
		if (hex >= 32)
			return true;
		digit |= t[i] >= '0' && t[i] <= '9';
		upper |= t[i] >= 'A' && t[i] <= 'Z';
		lower |= t[i] >= 'a' && t[i] <= 'z';
	}
	return len >= 40 && digit && upper && lower;
}

bool store_key_shaped(const char *t)
{
	size_t i = 0;

	while (t[i]) {
		size_t len = 0;

		while (t[i + len] && store_is_b64_char(t[i + len]))
			len++;
		if (len && store_run_is_key(t + i, len))
			return true;
		i += len ? len : 1;
	}
	return false;
}

/*
 * Free text as it may be stored: bytes outside printable ASCII become '?',
 * key-shaped runs become "[redacted]" (never longer than the run). out has
 * STORE_MSG_LEN bytes; in is NUL-terminated within STORE_MSG_LEN.
 */
static void clean_text(const char *in, char out[STORE_MSG_LEN])
{
	static const char redacted[] = "[redacted]";
	char tmp[STORE_MSG_LEN];
	size_t i = 0, o = 0;

	for (i = 0; in[i] && i < sizeof(tmp) - 1; i++)
		tmp[i] = (in[i] >= 0x20 && in[i] < 0x7f) ? in[i] : '?';
	tmp[i] = '\0';
	for (i = 0; tmp[i];) {
		size_t len = 0;

		while (tmp[i + len] && store_is_b64_char(tmp[i + len]))
			len++;
		if (len && store_run_is_key(tmp + i, len)) {
			memcpy(out + o, redacted, sizeof(redacted) - 1);
			o += sizeof(redacted) - 1;
			/* base64 padding goes with the run */
			while (tmp[i + len] == '=')
				len++;
		} else {
			size_t n = len ? len : 1;

			memcpy(out + o, tmp + i, n);
			o += n;
		}
		i += len ? len : 1;
	}
	out[o] = '\0';
	/* Wipe the copy: it held whatever the caller passed, key-shaped or not. */
	explicit_bzero(tmp, sizeof(tmp));
}

/* A name field (link, algorithm, mode): printable ASCII, no space, not key-shaped. */
static int check_name(struct store *s, const char *what, const char *buf, size_t size)
{
	if (!fits(buf, size))
		return store_sql_fail(&s->sql, -EINVAL, "%s: longer than %zu bytes", what,
				      size - 1);
	for (const char *p = buf; *p; p++)
		if (*p <= 0x20 || *p >= 0x7f)
			return store_sql_fail(&s->sql, -EINVAL,
					      "%s: not printable ASCII without spaces", what);
	if (store_key_shaped(buf))
		return store_sql_fail(&s->sql, -EINVAL, "%s: looks like key material; refused",
				      what);
	return 0;
}

/* Parse an IP literal into its inet_ntop form in out; "" allowed if optional. */
static int norm_addr(struct store *s, const char *what, const char *in, bool optional,
		     char out[STORE_ADDR_LEN])
{
	unsigned char bytes[16];

	if (!fits(in, STORE_ADDR_LEN))
		return store_sql_fail(&s->sql, -EINVAL, "%s: too long for an address", what);
	if (!in[0]) {
		out[0] = '\0';
		return optional ? 0 : store_sql_fail(&s->sql, -EINVAL, "%s: missing", what);
	}
	if (inet_pton(AF_INET, in, bytes) == 1) {
		store_addr_ntop(AF_INET, bytes, out, STORE_ADDR_LEN);
		return 0;
	}
	if (inet_pton(AF_INET6, in, bytes) == 1) {
		store_addr_ntop(AF_INET6, bytes, out, STORE_ADDR_LEN);
		return 0;
	}
	return store_sql_fail(&s->sql, -EINVAL, "%s: not an IP address literal", what);
}

static bool fp_ok(const char *fp)
{
	size_t n = strnlen(fp, STORE_FP_LEN + 1);

	if (n == 0)
		return true;
	if (n != STORE_FP_LEN)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((fp[i] >= '0' && fp[i] <= '9') || (fp[i] >= 'a' && fp[i] <= 'f')))
			return false;
	return true;
}

/* Checked and normalized copies of the fields of an SA. */
struct sa_in {
	char src[STORE_ADDR_LEN], dst[STORE_ADDR_LEN];
};

static int check_sa(struct store *s, const struct store_sa *sa, struct sa_in *in)
{
	int err;

	if ((err = check_name(s, "link", sa->link, sizeof(sa->link))) ||
	    (err = check_name(s, "mode", sa->mode, sizeof(sa->mode))) ||
	    (err = check_name(s, "algorithm", sa->algorithm, sizeof(sa->algorithm))) ||
	    (err = norm_addr(s, "src", sa->src, false, in->src)) ||
	    (err = norm_addr(s, "dst", sa->dst, false, in->dst)))
		return err;
	if (!fp_ok(sa->key_fp))
		return store_sql_fail(&s->sql, -EINVAL, "key_fp: not %d lowercase hex digits",
				      STORE_FP_LEN);
	if (!store_dir_name(sa->dir) && sa->dir != STORE_DIR_NONE)
		return store_sql_fail(&s->sql, -EINVAL, "dir: %d unknown", (int)sa->dir);
	if (!store_sa_state_name(sa->state) || sa->state == STORE_SA_GONE)
		return store_sql_fail(&s->sql, -EINVAL, "state: %d is not a live state",
				      (int)sa->state);
	if (sa->proto == 0)
		return store_sql_fail(&s->sql, -EINVAL, "proto: 0");
	return 0;
}

/* Bind the mutable fields of sa as ST_SA_UPDATE numbers them (2..15). */
static int bind_sa_update(struct store *s, sqlite3_stmt *st, int64_t id, const struct store_sa *sa)
{
	int rc = sqlite3_bind_int64(st, 1, id);

	store_sql_keep(&rc, bind_text(st, 2, sa->link));
	store_sql_keep(&rc, bind_text(st, 3, store_dir_name(sa->dir)));
	store_sql_keep(&rc, bind_text(st, 4, sa->mode));
	store_sql_keep(&rc, bind_text(st, 5, sa->algorithm));
	store_sql_keep(&rc, (sa->has_epoch ? sqlite3_bind_int64(st, 6, sa->epoch)
					   : sqlite3_bind_null(st, 6)));
	store_sql_keep(&rc, sqlite3_bind_int(st, 7, sa->managed));
	store_sql_keep(&rc, bind_text(st, 8, store_sa_state_name(sa->state)));
	store_sql_keep(&rc, bind_opt(st, 9, sa->soft_expires_at));
	store_sql_keep(&rc, bind_opt(st, 10, sa->hard_expires_at));
	store_sql_keep(&rc, sqlite3_bind_int64(st, 11, (sqlite3_int64)sa->bytes));
	store_sql_keep(&rc, sqlite3_bind_int64(st, 12, (sqlite3_int64)sa->packets));
	store_sql_keep(&rc, bind_opt(st, 13, sa->last_counters_at));
	store_sql_keep(&rc, bind_text(st, 14, sa->key_fp));
	store_sql_keep(&rc, bind_opt(st, 15, sa->origin_pid));
	return store_sql_bind_check(&s->sql, rc, st);
}

static int read_sa(struct store *s, sqlite3_stmt *st, struct store_sa *sa)
{
	const unsigned char *text;
	int i;

	memset(sa, 0, sizeof(*sa));
	sa->id = sqlite3_column_int64(st, 0);
	col_text(st, 1, sa->link, sizeof(sa->link));
	text = sqlite3_column_text(st, 2);
	i = text ? name_index(dir_names, ARRAY_LEN(dir_names), (const char *)text) : 0;
	if (i < 0)
		return store_sql_fail(&s->sql, -EIO, "sa %" PRId64 ": unknown dir", sa->id);
	sa->dir = (enum store_dir)i;
	sa->spi = (uint32_t)sqlite3_column_int64(st, 3);
	col_text(st, 4, sa->src, sizeof(sa->src));
	col_text(st, 5, sa->dst, sizeof(sa->dst));
	sa->proto = (uint8_t)sqlite3_column_int(st, 6);
	col_text(st, 7, sa->mode, sizeof(sa->mode));
	col_text(st, 8, sa->algorithm, sizeof(sa->algorithm));
	sa->has_epoch = sqlite3_column_type(st, 9) != SQLITE_NULL;
	sa->epoch = sqlite3_column_int64(st, 9);
	sa->managed = sqlite3_column_int(st, 10) != 0;
	i = name_index(state_names, ARRAY_LEN(state_names), (const char *)sqlite3_column_text(st, 11));
	if (i < 0)
		return store_sql_fail(&s->sql, -EIO, "sa %" PRId64 ": unknown state", sa->id);
	sa->state = (enum store_sa_state)i;
	sa->added_at = sqlite3_column_int64(st, 12);
	sa->gone_at = sqlite3_column_int64(st, 13);
	sa->soft_expires_at = sqlite3_column_int64(st, 14);
	sa->hard_expires_at = sqlite3_column_int64(st, 15);
	sa->bytes = (uint64_t)sqlite3_column_int64(st, 16);
	sa->packets = (uint64_t)sqlite3_column_int64(st, 17);
	sa->last_counters_at = sqlite3_column_int64(st, 18);
	col_text(st, 19, sa->key_fp, sizeof(sa->key_fp));
	sa->origin_pid = (uint32_t)sqlite3_column_int64(st, 20);
	return 0;
}

static int read_event(struct store *s, sqlite3_stmt *st, struct store_event *ev)
{
	int i;

	memset(ev, 0, sizeof(*ev));
	ev->id = sqlite3_column_int64(st, 0);
	ev->at = sqlite3_column_int64(st, 1);
	i = name_index(kind_names, ARRAY_LEN(kind_names), (const char *)sqlite3_column_text(st, 2));
	if (i < 0)
		return store_sql_fail(&s->sql, -EIO, "event %" PRId64 ": unknown kind", ev->id);
	ev->kind = (enum store_event_kind)i;
	ev->sa_id = sqlite3_column_int64(st, 3);
	col_text(st, 4, ev->link, sizeof(ev->link));
	ev->spi = (uint32_t)sqlite3_column_int64(st, 5);
	col_text(st, 6, ev->src, sizeof(ev->src));
	col_text(st, 7, ev->dst, sizeof(ev->dst));
	ev->proto = (uint8_t)sqlite3_column_int(st, 8);
	col_text(st, 9, ev->message, sizeof(ev->message));
	ev->origin_pid = (uint32_t)sqlite3_column_int64(st, 10);
	return 0;
}

static int read_rotation(struct store *s, sqlite3_stmt *st, struct store_rotation *rot)
{
	int i;

	memset(rot, 0, sizeof(*rot));
	rot->id = sqlite3_column_int64(st, 0);
	rot->at = sqlite3_column_int64(st, 1);
	col_text(st, 2, rot->link, sizeof(rot->link));
	rot->epoch = sqlite3_column_int64(st, 3);
	i = name_index(result_names, ARRAY_LEN(result_names),
		       (const char *)sqlite3_column_text(st, 4));
	if (i < 0)
		return store_sql_fail(&s->sql, -EIO, "rotation %" PRId64 ": unknown result",
				      rot->id);
	rot->result = (enum store_rot_result)i;
	col_text(st, 5, rot->detail, sizeof(rot->detail));
	rot->old_spi = (uint32_t)sqlite3_column_int64(st, 6);
	rot->new_spi = (uint32_t)sqlite3_column_int64(st, 7);
	return 0;
}

/* Opening */

/* Whether the file holds anything but a sakeyd ledger (or nothing at all). */
static int check_foreign(struct store *s, int64_t version)
{
	int64_t app_id, tables;
	int err;

	if ((err = store_sql_query_int(&s->sql, "PRAGMA application_id", &app_id)))
		return err;
	if (version > 0 && app_id != APP_ID)
		return store_sql_fail(&s->sql, -EINVAL,
				      "not a sakeyd ledger (application_id %" PRId64 ")", app_id);
	if (version == 0) {
		err = store_sql_query_int(&s->sql, "SELECT count(*) FROM sqlite_schema", &tables);
		if (err)
			return err;
		if (tables > 0 || app_id != 0)
			return store_sql_fail(
				&s->sql, -EINVAL,
				"not a sakeyd ledger (tables without a schema version)");
	}
	return 0;
}

/* Take a writable database forward to target inside one transaction. */
static int migrate(struct store *s, int target)
{
	int64_t version = 0;
	int err;

	if ((err = store_sql_exec(&s->sql, "BEGIN IMMEDIATE", "migration")))
		return err;
	/* Read again under the write lock: another writer may have migrated meanwhile. */
	if ((err = store_sql_query_int(&s->sql, "PRAGMA user_version", &version)))
		goto cleanup;
	if (version > STORE_SCHEMA_VERSION) {
		err = store_sql_fail(&s->sql, -EPROTONOSUPPORT,
				     "database schema version %" PRId64
				     " is newer than this build's %d; "
				     "upgrade sakeyd",
				     version, STORE_SCHEMA_VERSION);
		goto cleanup;
	}
	if ((err = check_foreign(s, version)))
		goto cleanup;
	if ((err = store_sql_migrate_steps(&s->sql, migrations, version, target)))
		goto cleanup;
	s->version = version < target ? target : (int)version;
	/*
	 * v6 cleared fingerprints: their old pages may still be in the WAL's
	 * earlier frames or in the file until a checkpoint. Copy every page
	 * into the file and empty the WAL now. A reader that holds a snapshot
	 * past the busy timeout keeps it from finishing: the pages then reach
	 * the file at the next automatic checkpoint, and the WAL's frames are
	 * overwritten as it is reused.
	 */
	if (version >= 1 && version < 6 && target >= 6) /* not a new file: nothing to clear */
		sqlite3_wal_checkpoint_v2(s->sql.db, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
	return 0;

cleanup:
	store_sql_abandon(&s->sql);
	return err;
}

/*
 * The writer's next event id: past every event row and past what meta
 * event_next says the SA rows' events took (it is written in the
 * transaction that took them, so no committed id is above it).
 */
static int ev_load(struct store *s)
{
	int64_t next = 0, saved = 0;
	int err;

	if ((err = store_sql_query_int(&s->sql, "SELECT coalesce(max(id), 0) + 1 FROM event",
				       &next)) ||
	    (err = store_sql_query_int(&s->sql,
				       "SELECT coalesce((SELECT CAST(value AS INTEGER) FROM meta "
				       "WHERE key = '" STORE_META_EVENT_NEXT "'), 0)",
				       &saved)))
		return err;
	s->ev_next = next > saved ? next : saved;
	s->ev_saved = saved;
	return 0;
}

static int ev_save(struct store *s)
{
	int err;

	if (s->ev_next == s->ev_saved)
		return 0;
	if ((err = store_meta_set_int(s, STORE_META_EVENT_NEXT, s->ev_next)))
		return err;
	if (!s->sql.in_txn)
		s->ev_saved = s->ev_next;
	return 0;
}

/* An id for a new event; outside a transaction its meta row is written at once. */
static int ev_take(struct store *s, int64_t *id)
{
	if (s->readonly)
		return store_sql_fail(&s->sql, -EROFS, "event: the ledger is open readonly");
	if (s->ev_next <= 0)
		return store_sql_fail(&s->sql, -EINVAL, "event id: the ledger is not open for writing");
	*id = s->ev_next++;
	return s->sql.in_txn ? 0 : ev_save(s);
}

/* The mode of the ledger's files: readable by the group the directory is shared with, if any. */
static mode_t db_mode(gid_t gid)
{
	return gid == (gid_t)-1 ? 0600 : 0640;
}

/*
 * The database's -wal and -shm, if they exist, as the database: a WAL kept
 * from a run that shared the directory is tightened when it is no longer
 * shared, and one SQLite created as a non-root writer gets the group.
 */
static int companions_access(struct store *s, const char *path, gid_t gid)
{
	static const char *const suffix[] = { "-wal", "-shm" };
	char name[PATH_MAX];
	int err;

	for (size_t i = 0; i < ARRAY_LEN(suffix); i++) {
		if ((size_t)snprintf(name, sizeof(name), "%s%s", path, suffix[i]) >= sizeof(name))
			return store_sql_fail(&s->sql, -ENAMETOOLONG, "%s: path too long", path);
		/* By path: the connection may be open (store_set_path_access). */
		err = store_set_path_access(name, db_mode(gid), gid, s->errmsg, sizeof(s->errmsg));
		if (err)
			return err;
	}
	return 0;
}

/*
 * dir, created 0700 if missing (one level), shared with gid (0750) unless
 * gid is (gid_t)-1; the database file created or set 0600 (0640, group gid
 * when shared), its -wal and -shm likewise (store/sqlfile.h).
 */
static int make_files(struct store *s, const char *dir, const char *path, gid_t gid)
{
	int err;

	if ((err = store_make_dir(dir, s->errmsg, sizeof(s->errmsg))))
		return err;
	if (gid != (gid_t)-1 && (err = store_share_dir(dir, gid, s->errmsg, sizeof(s->errmsg))))
		return err;
	if ((err = store_set_file_access(path, db_mode(gid), gid, s->errmsg,
					 sizeof(s->errmsg))))
		return err;
	return companions_access(s, path, gid);
}

/*
 * SQLite starts the WAL over once all of it is checkpointed, but never
 * shrinks the file: cut it back to STORE_WAL_KEEP_BYTES then, so a
 * rotation's burst does not stay on disk (a no-op for smaller files).
 */
static int wal_keep(struct store *s)
{
	char sql[64];

	snprintf(sql, sizeof(sql), "PRAGMA journal_size_limit = %d", STORE_WAL_KEEP_BYTES);
	return store_sql_query_int(&s->sql, sql, &(int64_t){ 0 });
}

/*
 * Open the database for the writer or a reader, with the schema at target
 * (writer) or current; the writer shares it with group gid unless (gid_t)-1.
 */
static int open_db(struct store *s, const char *dir, bool readonly, gid_t gid, int target)
{
	char path[PATH_MAX];
	int64_t version = 0;
	int flags, rc, err;

	if (!dir || !dir[0])
		return store_sql_fail(&s->sql, -EINVAL, "no state directory");
	if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, STORE_DB_NAME) >= sizeof(path))
		return store_sql_fail(&s->sql, -ENAMETOOLONG, "%s: path too long", dir);
	s->readonly = readonly;
	if (readonly) {
		struct stat st;

		if (stat(path, &st) < 0)
			return store_sql_fail(&s->sql, -errno, "%s: %s%s", path, strerror(errno),
					      errno == ENOENT ? " (has sakeyd run yet?)" : "");
		flags = SQLITE_OPEN_READONLY;
	} else {
		if ((err = make_files(s, dir, path, gid)))
			return err;
		flags = SQLITE_OPEN_READWRITE;
	}
	flags |= SQLITE_OPEN_NOFOLLOW | SQLITE_OPEN_NOMUTEX;
	/* The writer's WAL in runs (store_sql_walbuf_vfs); a reader writes none. */
	rc = sqlite3_open_v2(path, &s->sql.db, flags, readonly ? NULL : store_sql_walbuf_vfs());
	if (rc != SQLITE_OK) {
		err = store_sql_db_fail(&s->sql, rc, path);
		return err;
	}
	sqlite3_extended_result_codes(s->sql.db, 1);
	sqlite3_busy_timeout(s->sql.db,
			     readonly ? STORE_BUSY_TIMEOUT_MS : STORE_WRITER_BUSY_TIMEOUT_MS);
	if (!readonly)
		store_sql_note_file(&s->sql, path);
	if (!readonly && gid != (gid_t)-1) {
		int persist = 1;

		/*
		 * A reader that cannot write in dir cannot create the -wal and
		 * -shm files, and a WAL database cannot be read without them
		 * (sqlite.org/wal.html, "Read-Only Databases"): keep them when
		 * the last connection closes instead of deleting them.
		 */
		rc = sqlite3_file_control(s->sql.db, "main", SQLITE_FCNTL_PERSIST_WAL, &persist);
		if (rc != SQLITE_OK)
			return store_sql_db_fail(&s->sql, rc, "persistent WAL");
	}

	if (readonly) {
		if ((err = store_sql_query_int(&s->sql, "PRAGMA user_version", &version)))
			return err;
		if (version == 0)
			return store_sql_fail(&s->sql, -ENOENT,
					      "%s: no ledger schema yet (has sakeyd run?)", path);
		if (version > STORE_SCHEMA_VERSION)
			return store_sql_fail(&s->sql, -EPROTONOSUPPORT,
					      "%s: schema version %" PRId64
					      " is newer than this build's %d; "
					      "upgrade sactl",
					      path, version, STORE_SCHEMA_VERSION);
		if (version < STORE_SCHEMA_VERSION)
			return store_sql_fail(&s->sql, -EPROTO,
					      "%s: schema version %" PRId64
					      " is older than this build's %d; "
					      "restart sakeyd to migrate it",
					      path, version, STORE_SCHEMA_VERSION);
		if ((err = check_foreign(s, version)))
			return err;
		s->version = (int)version;
		return 0;
	}

	/* A newer schema is refused before anything (even the journal mode) changes. */
	if ((err = store_sql_query_int(&s->sql, "PRAGMA user_version", &version)))
		return err;
	if (version > STORE_SCHEMA_VERSION)
		return store_sql_fail(&s->sql, -EPROTONOSUPPORT,
				      "%s: schema version %" PRId64
				      " is newer than this build's %d; "
				      "upgrade sakeyd",
				      path, version, STORE_SCHEMA_VERSION);
	/*
	 * A new database gets 16 KiB pages (it is a no-op on an existing one):
	 * a change point's commit dirties index pages all over, and WAL writes
	 * each with its own pwrite(); larger pages are fewer calls, which is
	 * what costs where system calls trap (User-Mode Linux, 50 us each).
	 */
	if (version == 0 &&
	    (err = store_sql_exec(&s->sql, "PRAGMA page_size = 16384", "page_size")))
		return err;
	if ((err = store_sql_wal(&s->sql, path)))
		return err;
	/*
	 * Foreign keys on only after the migrations: a step that rebuilds a
	 * parent table (v4: sa) must not null the children's references when
	 * it drops the old copy (the pragma is a no-op inside a transaction).
	 */
	/*
	 * secure_delete: what a prune or a migration frees is zeroed, not left
	 * in free pages (Debian's SQLite is built with it on; others are not).
	 */
	if ((err = store_sql_exec(&s->sql,
				  "PRAGMA synchronous = NORMAL; PRAGMA temp_store = MEMORY; "
				  "PRAGMA secure_delete = ON",
				  "pragmas")) ||
	    (err = wal_keep(s)) || (err = migrate(s, target)) ||
	    (err = store_sql_exec(&s->sql, "PRAGMA foreign_keys = ON", "pragmas")))
		return err;
	/* WAL mode made the -wal and -shm files: as the database, whoever created them. */
	if ((err = companions_access(s, path, gid)))
		return err;
	if (target == STORE_SCHEMA_VERSION &&
	    (err = store_sql_exec(&s->sql, "CREATE TEMP TABLE sync_seen (id INTEGER PRIMARY KEY)",
				  "sync table")))
		return err;
	return target >= 1 ? ev_load(s) : 0;
}

static struct store *store_alloc(void)
{
	struct store *s = calloc(1, sizeof(struct store));

	if (s)
		store_sql_init(&s->sql, stmt_sql, s->stmt, ARRAY_LEN(s->stmt), s->errmsg,
			       sizeof(s->errmsg), "store", NULL);
	return s;
}

static int open_store(const char *dir, bool readonly, gid_t gid, struct store **out, char *err,
		      size_t err_size)
{
	struct store *s = store_alloc();
	int ret;

	*out = NULL;
	if (!s) {
		if (err && err_size)
			snprintf(err, err_size, "out of memory");
		return -ENOMEM;
	}
	ret = open_db(s, dir, readonly, gid, STORE_SCHEMA_VERSION);
	if (ret) {
		if (err && err_size)
			snprintf(err, err_size, "%s", s->errmsg);
		store_close(s);
		return ret;
	}
	*out = s;
	return 0;
}

int store_open(const char *dir, bool readonly, struct store **out, char *err, size_t err_size)
{
	return open_store(dir, readonly, (gid_t)-1, out, err, err_size);
}

int store_open_shared(const char *dir, gid_t gid, struct store **out, char *err, size_t err_size)
{
	return open_store(dir, false, gid, out, err, err_size);
}

void store_close(struct store *s)
{
	if (!s)
		return;
	store_sql_close(&s->sql);
	free(s);
}

const char *store_errmsg(const struct store *s)
{
	return s ? s->errmsg : "no store";
}

int store_schema_version(const struct store *s)
{
	return s->version;
}

void store_set_busy_timeout(struct store *s, int ms)
{
	sqlite3_busy_timeout(s->sql.db, ms);
}

int store_autocheckpoint(struct store *s, bool on)
{
	int rc;

	if (s->readonly)
		return -EROFS;
	rc = sqlite3_wal_autocheckpoint(s->sql.db, on ? 1000 : 0);
	if (rc != SQLITE_OK)
		return store_sql_db_fail(&s->sql, rc, "wal_autocheckpoint");
	return 0;
}

struct store_ckpt {
	sqlite3 *db;
	char wal[PATH_MAX + 8]; /* the -wal file, whose size is the bound's measure */
	char errmsg[STORE_ERRMSG_LEN];
};

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static int ckpt_fail(struct store_ckpt *c, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->errmsg, sizeof(c->errmsg), fmt, ap);
	va_end(ap);
	return err;
}

static int ckpt_db_fail(struct store_ckpt *c, int rc, const char *what)
{
	int err = store_sqlite_errno(c->db, rc);

	return ckpt_fail(c, err ? err : -EIO, "%s: %s: %s", c->wal, what,
			 c->db ? sqlite3_errmsg(c->db) : sqlite3_errstr(rc));
}

int store_ckpt_open(const struct store *s, struct store_ckpt **out, char *err, size_t err_size)
{
	struct store_ckpt *c;
	int persist = -1, rc, ret;

	*out = NULL;
	if (s->readonly || !s->sql.have_ino) {
		if (err && err_size)
			snprintf(err, err_size, "the ledger is not open for writing");
		return -EINVAL;
	}
	/* Two connections on two threads share SQLite's global state (its caches, its allocator). */
	if (!sqlite3_threadsafe()) {
		if (err && err_size)
			snprintf(err, err_size, "this SQLite library is built without threads "
						"(SQLITE_THREADSAFE=0)");
		return -ENOTSUP;
	}
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	snprintf(c->wal, sizeof(c->wal), "%s-wal", s->sql.path);
	rc = sqlite3_open_v2(s->sql.path, &c->db,
			     SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOFOLLOW | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_extended_result_codes(c->db, 1);
	/*
	 * synchronous = NORMAL as the writer: a checkpoint syncs the WAL
	 * before it copies and the database file after, in either mode. The
	 * copy goes through no page cache: keep this connection's small.
	 */
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(c->db, "PRAGMA synchronous = NORMAL; PRAGMA cache_size = -64", NULL,
				  NULL, NULL);
	/* A shared ledger keeps its -wal and -shm (store_open_shared): so does this one. */
	if (rc == SQLITE_OK &&
	    sqlite3_file_control(s->sql.db, "main", SQLITE_FCNTL_PERSIST_WAL, &persist) ==
		    SQLITE_OK &&
	    persist > 0)
		rc = sqlite3_file_control(c->db, "main", SQLITE_FCNTL_PERSIST_WAL, &persist);
	if (rc != SQLITE_OK) {
		ret = ckpt_db_fail(c, rc, "checkpoint connection");
		if (err && err_size)
			snprintf(err, err_size, "%s", c->errmsg);
		store_ckpt_close(c);
		return ret;
	}
	*out = c;
	return 0;
}

int store_ckpt_run(struct store_ckpt *c, bool final, struct store_ckpt_stat *st)
{
	struct stat wst;
	int frames = 0, rc;

	if (st)
		*st = (struct store_ckpt_stat){ 0 };
	c->errmsg[0] = '\0';
	rc = sqlite3_wal_checkpoint_v2(c->db, "main", SQLITE_CHECKPOINT_PASSIVE, &frames, NULL);
	if (rc != SQLITE_OK)
		return ckpt_db_fail(c, rc, "checkpoint");
	if (st)
		st->wal_frames = frames;
	if (stat(c->wal, &wst) < 0)
		return errno == ENOENT ? 0 : ckpt_fail(c, -errno, "%s: %s", c->wal, strerror(errno));
	if (st)
		st->wal_bytes = (int64_t)wst.st_size;
	if (!final && wst.st_size <= STORE_WAL_BOUND_BYTES)
		return 0;
	/*
	 * TRUNCATE holds the write lock while it waits for readers: the
	 * writer waits behind it for up to STORE_WRITER_BUSY_TIMEOUT_MS, so
	 * this waits much less, and gives up (-EBUSY) until the next run.
	 */
	sqlite3_busy_timeout(c->db, final ? STORE_CKPT_FINAL_WAIT_MS : STORE_CKPT_WAIT_MS);
	rc = sqlite3_wal_checkpoint_v2(c->db, "main", SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
	sqlite3_busy_timeout(c->db, 0);
	if (rc != SQLITE_OK)
		return ckpt_db_fail(c, rc, final ? "final checkpoint" : "checkpoint of a long WAL");
	if (st) {
		st->truncated = true;
		st->wal_bytes = stat(c->wal, &wst) == 0 ? (int64_t)wst.st_size : 0;
	}
	return 0;
}

const char *store_ckpt_errmsg(const struct store_ckpt *c)
{
	return c ? c->errmsg : "no checkpoint connection";
}

void store_ckpt_close(struct store_ckpt *c)
{
	if (!c)
		return;
	sqlite3_close_v2(c->db);
	free(c);
}

bool store_file_replaced(const struct store *s)
{
	return store_sql_file_replaced(&s->sql);
}

/* Transactions */

int store_begin(struct store *s)
{
	return store_sql_begin(&s->sql, ST_BEGIN);
}

int store_commit(struct store *s)
{
	bool open = s->sql.in_txn;
	int err = open ? ev_save(s) : 0;

	if (err) {
		store_rollback(s);
		return err;
	}
	err = store_sql_commit(&s->sql, ST_COMMIT, ST_ROLLBACK);
	if (!err && open)
		s->ev_saved = s->ev_next;

	/* On failure the turn's changes are lost, the caller resyncs. */
	if (err && open)
		s->syncing = false; /* its marks went with the transaction */
	return err;
}

void store_rollback(struct store *s)
{
	if (!s->sql.db)
		return;
	store_sql_rollback(&s->sql, ST_ROLLBACK);
	s->syncing = false;
}

bool store_in_transaction(const struct store *s)
{
	return s->sql.in_txn;
}

/* SAs */

static int sync_mark(struct store *s, int64_t id)
{
	sqlite3_stmt *st;
	int err;

	if (!s->syncing)
		return 0;
	if ((err = store_sql_stmt_get(&s->sql, ST_SYNC_MARK, &st)))
		return err;
	if ((err = store_sql_bind_check(&s->sql, sqlite3_bind_int64(st, 1, id), st)))
		return err;
	return store_sql_run(&s->sql, st, "sync mark");
}

/* Close the live row of (dst, spi, proto), if any, at gone_at. */
static int close_live(struct store *s, const char *dst, uint32_t spi, uint8_t proto,
		      int64_t gone_at)
{
	sqlite3_stmt *st;
	int err, rc;

	if ((err = store_sql_stmt_get(&s->sql, ST_SA_CLOSE_LIVE, &st)))
		return err;
	rc = sqlite3_bind_text(st, 1, dst, -1, SQLITE_STATIC);
	store_sql_keep(&rc, sqlite3_bind_int64(st, 2, spi));
	store_sql_keep(&rc, sqlite3_bind_int(st, 3, proto));
	store_sql_keep(&rc, sqlite3_bind_int64(st, 4, gone_at));
	if ((err = store_sql_bind_check(&s->sql, rc, st)))
		return err;
	return store_sql_run(&s->sql, st, "sa close");
}

/* An event kept in an SA row (v7): its id, when, and its cleaned message. */
struct ev_note {
	int64_t id, at;
	char message[STORE_MSG_LEN];
};

/* note for an event at at with message msg (a string shorter than STORE_MSG_LEN). */
static int ev_note_make(struct store *s, int64_t at, const char *msg, struct ev_note *note)
{
	/* Not fits(): msg may be a string literal, shorter than the buffer fits() would read. */
	if (!msg || strnlen(msg, sizeof(note->message)) == sizeof(note->message))
		return store_sql_fail(&s->sql, -EINVAL, "event message: missing or too long");
	clean_text(msg, note->message);
	note->at = at;
	return ev_take(s, &note->id);
}

/*
 * Insert a checked SA with added_at and, if add is not NULL, its add event;
 * close any live row of its identity first.
 */
static int insert_sa(struct store *s, const struct store_sa *sa, const struct sa_in *in,
		     int64_t added_at, const struct ev_note *add, int64_t *id)
{
	sqlite3_stmt *st;
	int err, rc;

	if ((err = store_sql_stmt_get(&s->sql, ST_SA_INSERT, &st)))
		return err;
	rc = bind_text(st, 1, sa->link);
	store_sql_keep(&rc, bind_text(st, 2, store_dir_name(sa->dir)));
	store_sql_keep(&rc, sqlite3_bind_int64(st, 3, sa->spi));
	store_sql_keep(&rc, sqlite3_bind_text(st, 4, in->src, -1, SQLITE_STATIC));
	store_sql_keep(&rc, sqlite3_bind_text(st, 5, in->dst, -1, SQLITE_STATIC));
	store_sql_keep(&rc, sqlite3_bind_int(st, 6, sa->proto));
	store_sql_keep(&rc, bind_text(st, 7, sa->mode));
	store_sql_keep(&rc, bind_text(st, 8, sa->algorithm));
	store_sql_keep(&rc, (sa->has_epoch ? sqlite3_bind_int64(st, 9, sa->epoch)
					   : sqlite3_bind_null(st, 9)));
	store_sql_keep(&rc, sqlite3_bind_int(st, 10, sa->managed));
	store_sql_keep(&rc, bind_text(st, 11, store_sa_state_name(sa->state)));
	store_sql_keep(&rc, sqlite3_bind_int64(st, 12, added_at));
	store_sql_keep(&rc, bind_opt(st, 13, sa->soft_expires_at));
	store_sql_keep(&rc, bind_opt(st, 14, sa->hard_expires_at));
	store_sql_keep(&rc, sqlite3_bind_int64(st, 15, (sqlite3_int64)sa->bytes));
	store_sql_keep(&rc, sqlite3_bind_int64(st, 16, (sqlite3_int64)sa->packets));
	store_sql_keep(&rc, bind_opt(st, 17, sa->last_counters_at));
	store_sql_keep(&rc, bind_text(st, 18, sa->key_fp));
	store_sql_keep(&rc, bind_opt(st, 19, sa->origin_pid));
	if (add) {
		store_sql_keep(&rc, sqlite3_bind_int64(st, 20, add->id));
		store_sql_keep(&rc, sqlite3_bind_int64(st, 21, add->at));
		store_sql_keep(&rc, sqlite3_bind_text(st, 22, add->message, -1, SQLITE_STATIC));
	} else {
		store_sql_keep(&rc, sqlite3_bind_null(st, 20));
		store_sql_keep(&rc, sqlite3_bind_null(st, 21));
		store_sql_keep(&rc, sqlite3_bind_null(st, 22));
	}
	if ((err = store_sql_bind_check(&s->sql, rc, st)))
		return err;
	/*
	 * The kernel holds one SA per (dst, spi, proto), and so does the set
	 * of live rows (sa_live, unique): a live row of this identity is an
	 * old life whose end was missed, closed at added_at. Looking for one
	 * before every insert cost a statement each (a third of a rotation's
	 * statements); the insert goes first, and the old life is closed only
	 * when the unique index says there is one (the failed step changed
	 * nothing: SQLite checks uniqueness before it writes).
	 */
	rc = sqlite3_step(st);
	if (rc == SQLITE_CONSTRAINT_UNIQUE) {
		sqlite3_reset(st); /* the bindings stay */
		err = close_live(s, in->dst, sa->spi, sa->proto, added_at);
		rc = err ? SQLITE_DONE : sqlite3_step(st);
	}
	if (!err && rc != SQLITE_DONE)
		err = store_sql_db_fail(&s->sql, rc, "sa add");
	store_sql_stmt_done(st);
	if (err)
		return err;
	if (id)
		*id = sqlite3_last_insert_rowid(s->sql.db);
	return sync_mark(s, sqlite3_last_insert_rowid(s->sql.db));
}

/* store_sa_add, and if logged its add event at at with msg (store_sa_add_logged). */
static int add_sa(struct store *s, const struct store_sa *sa, bool logged, int64_t at,
		  const char *msg, int64_t *id)
{
	struct ev_note add;
	struct sa_in in;
	int err;

	if ((err = store_sql_write_ok(&s->sql)) || (err = check_sa(s, sa, &in)))
		return err;
	if (sa->added_at == 0)
		return store_sql_fail(&s->sql, -EINVAL, "sa add: added_at not set");
	if (logged && (err = ev_note_make(s, at, msg, &add)))
		return err;
	return insert_sa(s, sa, &in, sa->added_at, logged ? &add : NULL, id);
}

int store_sa_add(struct store *s, const struct store_sa *sa, int64_t *id)
{
	return add_sa(s, sa, false, 0, NULL, id);
}

int store_sa_add_logged(struct store *s, const struct store_sa *sa, int64_t at, const char *msg,
			int64_t *id)
{
	return add_sa(s, sa, true, at, msg, id);
}

static int update_sa(struct store *s, int64_t id, const struct store_sa *sa)
{
	sqlite3_stmt *st;
	int err;

	if ((err = store_sql_stmt_get(&s->sql, ST_SA_UPDATE, &st)) ||
	    (err = bind_sa_update(s, st, id, sa)) ||
	    (err = store_sql_run(&s->sql, st, "sa update")))
		return err;
	if (sqlite3_changes(s->sql.db) == 0)
		return store_sql_fail(&s->sql, -ENOENT, "sa update: no live row %" PRId64, id);
	return sync_mark(s, id);
}

int store_sa_update(struct store *s, int64_t id, const struct store_sa *sa)
{
	struct sa_in in;
	int err;

	if ((err = store_sql_write_ok(&s->sql)) || (err = check_sa(s, sa, &in)))
		return err;
	return update_sa(s, id, sa);
}

int store_sa_update_counters(struct store *s, int64_t id, uint64_t bytes, uint64_t packets,
			     int64_t now)
{
	sqlite3_stmt *st;
	int err, rc;

	if ((err = store_sql_write_ok(&s->sql)) ||
	    (err = store_sql_stmt_get(&s->sql, ST_SA_COUNTERS, &st)))
		return err;
	rc = sqlite3_bind_int64(st, 1, id);
	store_sql_keep(&rc, sqlite3_bind_int64(st, 2, (sqlite3_int64)bytes));
	store_sql_keep(&rc, sqlite3_bind_int64(st, 3, (sqlite3_int64)packets));
	store_sql_keep(&rc, bind_opt(st, 4, now));
	if ((err = store_sql_bind_check(&s->sql, rc, st)) ||
	    (err = store_sql_run(&s->sql, st, "sa counters")))
		return err;
	if (sqlite3_changes(s->sql.db) == 0)
		return store_sql_fail(&s->sql, -ENOENT, "sa counters: no row %" PRId64, id);
	return 0;
}

int store_sa_set_state(struct store *s, int64_t id, enum store_sa_state state, int64_t now)
{
	sqlite3_stmt *st;
	int err, rc;

	if ((err = store_sql_write_ok(&s->sql)))
		return err;
	if (!store_sa_state_name(state))
		return store_sql_fail(&s->sql, -EINVAL, "sa state: %d unknown", (int)state);
	if ((err = store_sql_stmt_get(&s->sql, ST_SA_STATE, &st)))
		return err;
	rc = sqlite3_bind_int64(st, 1, id);
	store_sql_keep(&rc,
		       sqlite3_bind_text(st, 2, store_sa_state_name(state), -1, SQLITE_STATIC));
	store_sql_keep(&rc, sqlite3_bind_int64(st, 3, now));
	if ((err = store_sql_bind_check(&s->sql, rc, st)) ||
	    (err = store_sql_run(&s->sql, st, "sa state")))
		return err;
	if (sqlite3_changes(s->sql.db) == 0)
		return store_sql_fail(&s->sql, -ENOENT, "sa state: no live row %" PRId64, id);
	return 0;
}

int store_sa_gone_logged(struct store *s, int64_t id, int64_t at, const char *msg)
{
	struct ev_note del;
	sqlite3_stmt *st;
	int err, rc;

	if ((err = store_sql_write_ok(&s->sql)) || (err = ev_note_make(s, at, msg, &del)) ||
	    (err = store_sql_stmt_get(&s->sql, ST_SA_GONE_EV, &st)))
		return err;
	rc = sqlite3_bind_int64(st, 1, id);
	store_sql_keep(&rc, sqlite3_bind_int64(st, 2, at));
	store_sql_keep(&rc, sqlite3_bind_int64(st, 3, del.id));
	store_sql_keep(&rc, sqlite3_bind_text(st, 4, del.message, -1, SQLITE_STATIC));
	if ((err = store_sql_bind_check(&s->sql, rc, st)) ||
	    (err = store_sql_run(&s->sql, st, "sa gone")))
		return err;
	if (sqlite3_changes(s->sql.db) == 0)
		return store_sql_fail(&s->sql, -ENOENT,
				      "sa gone: no row %" PRId64 " without a delete event", id);
	return 0;
}

int store_sa_sync_begin(struct store *s)
{
	sqlite3_stmt *st;
	int err;

	if (s->readonly)
		return store_sql_fail(&s->sql, -EROFS, "sync: read-only handle");
	if ((err = store_sql_write_ok(&s->sql)) ||
	    (err = store_sql_stmt_get(&s->sql, ST_SYNC_CLEAR, &st)) ||
	    (err = store_sql_run(&s->sql, st, "sync begin")))
		return err;
	s->syncing = true;
	return 0;
}

/* Run a one-row query whose statement is bound; 0 with the row read by read_sa, or -ENOENT. */
static int one_sa(struct store *s, sqlite3_stmt *st, struct store_sa *out, const char *what)
{
	int rc = sqlite3_step(st), err;

	if (rc == SQLITE_ROW)
		err = read_sa(s, st, out);
	else if (rc == SQLITE_DONE)
		err = store_sql_fail(&s->sql, -ENOENT, "%s: no such SA", what);
	else
		err = store_sql_db_fail(&s->sql, rc, what);
	store_sql_stmt_done(st);
	return err;
}

static int find_live(struct store *s, const char *dst, uint32_t spi, uint8_t proto,
		     struct store_sa *out)
{
	sqlite3_stmt *st;
	int err, rc;

	if ((err = store_sql_stmt_get(&s->sql, ST_SA_FIND_LIVE, &st)))
		return err;
	rc = sqlite3_bind_text(st, 1, dst, -1, SQLITE_TRANSIENT);
	store_sql_keep(&rc, sqlite3_bind_int64(st, 2, spi));
	store_sql_keep(&rc, sqlite3_bind_int(st, 3, proto));
	if ((err = store_sql_bind_check(&s->sql, rc, st)))
		return err;
	return one_sa(s, st, out, "sa find");
}

/* Everything a resync would write, but the time of the reading, is what the row holds. */
static bool same_sa_data(const struct store_sa *row, const struct store_sa *sa)
{
	return strcmp(row->link, sa->link) == 0 && row->dir == sa->dir &&
	       strcmp(row->mode, sa->mode) == 0 && strcmp(row->algorithm, sa->algorithm) == 0 &&
	       row->has_epoch == sa->has_epoch && (!sa->has_epoch || row->epoch == sa->epoch) &&
	       row->managed == sa->managed && row->state == sa->state &&
	       row->soft_expires_at == sa->soft_expires_at &&
	       row->hard_expires_at == sa->hard_expires_at && row->bytes == sa->bytes &&
	       row->packets == sa->packets && strcmp(row->key_fp, sa->key_fp) == 0 &&
	       row->origin_pid == sa->origin_pid;
}

int store_sa_seen(struct store *s, const struct store_sa *sa, int64_t now, int64_t *id)
{
	struct store_sa row;
	struct sa_in in;
	int err;

	if (!s->syncing)
		return store_sql_fail(&s->sql, -EINVAL,
				      "sync: store_sa_seen without store_sa_sync_begin");
	if ((err = store_sql_write_ok(&s->sql)) || (err = check_sa(s, sa, &in)))
		return err;
	err = find_live(s, in.dst, sa->spi, sa->proto, &row);
	if (err && err != -ENOENT)
		return err;
	if (!err && strcmp(row.src, in.src) == 0 && (sa->added_at == 0 || sa->added_at == row.added_at)) {
		if (id)
			*id = row.id;
		/*
		 * An idle SA reads the same at every refresh: rewriting its row
		 * (only last_counters_at changed) made every refresh commit a row
		 * per SA. Mark it seen and leave the row alone.
		 */
		if (same_sa_data(&row, sa))
			return sync_mark(s, row.id);
		return update_sa(s, row.id, sa);
	}
	/* Not the life we know: the old SA went while we were not looking. */
	return insert_sa(s, sa, &in, sa->added_at ? sa->added_at : now, NULL, id);
}

int store_sa_seen_id(struct store *s, int64_t id)
{
	int err;

	if (!s->syncing)
		return store_sql_fail(&s->sql, -EINVAL,
				      "sync: store_sa_seen_id without store_sa_sync_begin");
	if ((err = store_sql_write_ok(&s->sql)))
		return err;
	return sync_mark(s, id);
}

int store_sa_sync_end(struct store *s, int64_t now, uint64_t *gone)
{
	sqlite3_stmt *st;
	int err;

	if (!s->syncing)
		return store_sql_fail(&s->sql, -EINVAL,
				      "sync: store_sa_sync_end without store_sa_sync_begin");
	if ((err = store_sql_write_ok(&s->sql)) ||
	    (err = store_sql_stmt_get(&s->sql, ST_SYNC_END, &st)))
		return err;
	if ((err = store_sql_bind_check(&s->sql, sqlite3_bind_int64(st, 1, now), st)) ||
	    (err = store_sql_run(&s->sql, st, "sync end")))
		return err;
	if (gone)
		*gone = (uint64_t)sqlite3_changes(s->sql.db);
	s->syncing = false;
	if ((err = store_sql_stmt_get(&s->sql, ST_SYNC_CLEAR, &st)))
		return err;
	return store_sql_run(&s->sql, st, "sync clear");
}

/* Events, rotations */

int store_event_add(struct store *s, const struct store_event *ev, int64_t *id)
{
	char src[STORE_ADDR_LEN], dst[STORE_ADDR_LEN], message[STORE_MSG_LEN];
	int64_t ev_id = 0;
	sqlite3_stmt *st;
	int err, rc;

	if ((err = store_sql_write_ok(&s->sql)) ||
	    (err = check_name(s, "link", ev->link, sizeof(ev->link))) ||
	    (err = norm_addr(s, "src", ev->src, true, src)) ||
	    (err = norm_addr(s, "dst", ev->dst, true, dst)))
		return err;
	if (!store_event_kind_name(ev->kind))
		return store_sql_fail(&s->sql, -EINVAL, "event kind: %d unknown", (int)ev->kind);
	if (!fits(ev->message, sizeof(ev->message)))
		return store_sql_fail(&s->sql, -EINVAL, "event message: not terminated");
	clean_text(ev->message, message);
	if ((err = ev_take(s, &ev_id)) || (err = store_sql_stmt_get(&s->sql, ST_EV_INSERT, &st)))
		return err;
	rc = sqlite3_bind_int64(st, 1, ev->at);
	store_sql_keep(
		&rc, sqlite3_bind_text(st, 2, store_event_kind_name(ev->kind), -1, SQLITE_STATIC));
	store_sql_keep(&rc, bind_opt(st, 3, ev->sa_id));
	store_sql_keep(&rc, bind_text(st, 4, ev->link));
	store_sql_keep(&rc, bind_opt(st, 5, ev->spi));
	store_sql_keep(&rc, bind_text(st, 6, src));
	store_sql_keep(&rc, bind_text(st, 7, dst));
	store_sql_keep(&rc, bind_opt(st, 8, ev->proto));
	store_sql_keep(&rc, sqlite3_bind_text(st, 9, message, -1, SQLITE_STATIC));
	store_sql_keep(&rc, bind_opt(st, 10, ev->origin_pid));
	store_sql_keep(&rc, sqlite3_bind_int64(st, 11, ev_id));
	if ((err = store_sql_bind_check(&s->sql, rc, st)) ||
	    (err = store_sql_run(&s->sql, st, "event add")))
		return err;
	if (id)
		*id = ev_id;
	return 0;
}

int store_event_add_for_sa(struct store *s, int64_t sa_id, int64_t at,
			   enum store_event_kind kind, const char *msg)
{
	struct ev_note note;
	sqlite3_stmt *st;
	int err, rc;

	if ((err = store_sql_write_ok(&s->sql)))
		return err;
	if (!store_event_kind_name(kind))
		return store_sql_fail(&s->sql, -EINVAL, "event kind: %d unknown", (int)kind);
	if ((err = ev_note_make(s, at, msg, &note)) ||
	    (err = store_sql_stmt_get(&s->sql, ST_EV_FROM_SA, &st)))
		return err;
	rc = sqlite3_bind_int64(st, 1, note.at);
	store_sql_keep(&rc,
		       sqlite3_bind_text(st, 2, store_event_kind_name(kind), -1, SQLITE_STATIC));
	store_sql_keep(&rc, sqlite3_bind_text(st, 3, note.message, -1, SQLITE_STATIC));
	store_sql_keep(&rc, sqlite3_bind_int64(st, 4, sa_id));
	store_sql_keep(&rc, sqlite3_bind_int64(st, 5, note.id));
	if ((err = store_sql_bind_check(&s->sql, rc, st)) ||
	    (err = store_sql_run(&s->sql, st, "event for SA")))
		return err;
	if (sqlite3_changes(s->sql.db) == 0)
		return store_sql_fail(&s->sql, -ENOENT, "event for SA: no row %" PRId64, sa_id);
	return 0;
}

int store_rotation_add(struct store *s, const struct store_rotation *rot, int64_t *id)
{
	char detail[STORE_MSG_LEN];
	sqlite3_stmt *st;
	int err, rc;

	if ((err = store_sql_write_ok(&s->sql)) ||
	    (err = check_name(s, "link", rot->link, sizeof(rot->link))))
		return err;
	if (!rot->link[0])
		return store_sql_fail(&s->sql, -EINVAL, "rotation: no link");
	if (!store_rot_result_name(rot->result))
		return store_sql_fail(&s->sql, -EINVAL, "rotation result: %d unknown",
				      (int)rot->result);
	if (!fits(rot->detail, sizeof(rot->detail)))
		return store_sql_fail(&s->sql, -EINVAL, "rotation detail: not terminated");
	clean_text(rot->detail, detail);
	if ((err = store_sql_stmt_get(&s->sql, ST_ROT_INSERT, &st)))
		return err;
	rc = sqlite3_bind_int64(st, 1, rot->at);
	store_sql_keep(&rc, sqlite3_bind_text(st, 2, rot->link, -1, SQLITE_TRANSIENT));
	store_sql_keep(&rc, sqlite3_bind_int64(st, 3, rot->epoch));
	store_sql_keep(&rc, sqlite3_bind_text(st, 4, store_rot_result_name(rot->result), -1,
					      SQLITE_STATIC));
	store_sql_keep(&rc, sqlite3_bind_text(st, 5, detail, -1, SQLITE_TRANSIENT));
	store_sql_keep(&rc, bind_opt(st, 6, rot->old_spi));
	store_sql_keep(&rc, bind_opt(st, 7, rot->new_spi));
	if ((err = store_sql_bind_check(&s->sql, rc, st)) ||
	    (err = store_sql_run(&s->sql, st, "rotation add")))
		return err;
	if (id)
		*id = sqlite3_last_insert_rowid(s->sql.db);
	return 0;
}

/* Meta */

static int check_meta_key(struct store *s, const char *key)
{
	if (!key || !key[0] || strlen(key) > 64)
		return store_sql_fail(&s->sql, -EINVAL, "meta: bad key");
	for (const char *p = key; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_'))
			return store_sql_fail(&s->sql, -EINVAL, "meta: key %s: only [a-z0-9_]",
					      key);
	return 0;
}

int store_meta_set(struct store *s, const char *key, const char *value)
{
	sqlite3_stmt *st;
	int err, rc;

	if ((err = store_sql_write_ok(&s->sql)) || (err = check_meta_key(s, key)))
		return err;
	if (!value) {
		if ((err = store_sql_stmt_get(&s->sql, ST_META_DEL, &st)) ||
		    (err = store_sql_bind_check(
			     &s->sql, sqlite3_bind_text(st, 1, key, -1, SQLITE_TRANSIENT), st)))
			return err;
		return store_sql_run(&s->sql, st, "meta delete");
	}
	if (strnlen(value, PATH_MAX + 1) > PATH_MAX)
		return store_sql_fail(&s->sql, -EINVAL, "meta %s: value longer than %d bytes", key,
				      PATH_MAX);
	for (const char *p = value; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			return store_sql_fail(&s->sql, -EINVAL,
					      "meta %s: control character in value", key);
	if (store_key_shaped(value))
		return store_sql_fail(&s->sql, -EINVAL,
				      "meta %s: value looks like key material; refused", key);
	if ((err = store_sql_stmt_get(&s->sql, ST_META_SET, &st)))
		return err;
	rc = sqlite3_bind_text(st, 1, key, -1, SQLITE_TRANSIENT);
	store_sql_keep(&rc, sqlite3_bind_text(st, 2, value, -1, SQLITE_TRANSIENT));
	if ((err = store_sql_bind_check(&s->sql, rc, st)))
		return err;
	return store_sql_run(&s->sql, st, "meta set");
}

int store_meta_get(struct store *s, const char *key, char *buf, size_t size)
{
	sqlite3_stmt *st;
	int err, rc;

	if ((err = check_meta_key(s, key)) ||
	    (err = store_sql_stmt_get(&s->sql, ST_META_GET, &st)) ||
	    (err = store_sql_bind_check(&s->sql,
					sqlite3_bind_text(st, 1, key, -1, SQLITE_TRANSIENT), st)))
		return err;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		const unsigned char *t = sqlite3_column_text(st, 0);
		size_t len = (size_t)sqlite3_column_bytes(st, 0);

		if (size)
			snprintf(buf, size, "%s", t ? (const char *)t : "");
		err = len < size ? 0
				 : store_sql_fail(&s->sql, -ERANGE,
						  "meta %s: value longer than the buffer", key);
	} else if (rc == SQLITE_DONE) {
		err = store_sql_fail(&s->sql, -ENOENT, "meta %s: not set", key);
	} else {
		err = store_sql_db_fail(&s->sql, rc, "meta get");
	}
	store_sql_stmt_done(st);
	return err;
}

int store_meta_set_int(struct store *s, const char *key, int64_t value)
{
	char text[24];

	snprintf(text, sizeof(text), "%" PRId64, value);
	return store_meta_set(s, key, text);
}

int store_meta_get_int(struct store *s, const char *key, int64_t *value)
{
	char text[24], *end;
	long long v;
	int err;

	if ((err = store_meta_get(s, key, text, sizeof(text))))
		return err == -ERANGE
			       ? store_sql_fail(&s->sql, -EINVAL, "meta %s: not an integer", key)
			       : err;
	errno = 0;
	v = strtoll(text, &end, 10);
	if (errno || end == text || *end)
		return store_sql_fail(&s->sql, -EINVAL, "meta %s: not an integer", key);
	*value = v;
	return 0;
}

/* Retention */

static int prune_one(struct store *s, enum stmt_id id, int64_t cutoff, uint64_t *n)
{
	sqlite3_stmt *st;
	int err;

	if ((err = store_sql_stmt_get(&s->sql, id, &st)) ||
	    (err = store_sql_bind_check(&s->sql, sqlite3_bind_int64(st, 1, cutoff), st)) ||
	    (err = store_sql_run(&s->sql, st, "prune")))
		return err;
	*n = (uint64_t)sqlite3_changes(s->sql.db);
	return 0;
}

int store_prune(struct store *s, int64_t now, int64_t retention, struct store_prune_result *result)
{
	struct store_prune_result r = { 0 };
	int64_t cutoff;
	int err;

	if ((err = store_sql_write_ok(&s->sql)))
		return err;
	if (retention < 0)
		return store_sql_fail(&s->sql, -EINVAL, "prune: negative retention");
	cutoff = now < INT64_MIN + retention ? INT64_MIN : now - retention;
	/* Events first: deleting an SA then has fewer event references to clear. */
	if ((err = prune_one(s, ST_PRUNE_EV, cutoff, &r.events)) ||
	    (err = prune_one(s, ST_PRUNE_ROT, cutoff, &r.rotations)) ||
	    (err = prune_one(s, ST_PRUNE_SA, cutoff, &r.sas)))
		return err;
	if (result)
		*result = r;
	return 0;
}

/* Queries */

/* A caller's callback and its argument. */
struct emit_to {
	union {
		store_sa_cb sa;
		store_event_cb ev;
		store_rotation_cb rot;
	} cb;
	void *arg;
};

/* Read one row and hand it to the caller; nonzero stops the iteration. */
typedef int (*row_fn)(struct store *s, sqlite3_stmt *st, const struct emit_to *to);

/* Step a bound SELECT through emit; a nonzero emit result stops and is returned. */
static int each_row(struct store *s, sqlite3_stmt *st, row_fn emit, const struct emit_to *to,
		    const char *what)
{
	int rc, ret = 0;

	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if ((ret = emit(s, st, to)))
			break;
	}
	if (!ret && rc != SQLITE_DONE)
		ret = store_sql_db_fail(&s->sql, rc, what);
	store_sql_stmt_done(st);
	return ret;
}

static int emit_sa(struct store *s, sqlite3_stmt *st, const struct emit_to *to)
{
	struct store_sa sa;
	int err = read_sa(s, st, &sa);

	return err ? err : to->cb.sa(&sa, to->arg);
}

static int emit_event(struct store *s, sqlite3_stmt *st, const struct emit_to *to)
{
	struct store_event ev;
	int err = read_event(s, st, &ev);

	return err ? err : to->cb.ev(&ev, to->arg);
}

static int emit_rotation(struct store *s, sqlite3_stmt *st, const struct emit_to *to)
{
	struct store_rotation rot;
	int err = read_rotation(s, st, &rot);

	return err ? err : to->cb.rot(&rot, to->arg);
}

static int bind_sa_query(struct store *s, sqlite3_stmt *st, const struct store_sa_query *q)
{
	int rc = q && q->link ? sqlite3_bind_text(st, 1, q->link, -1, SQLITE_TRANSIENT)
			      : sqlite3_bind_null(st, 1);

	store_sql_keep(&rc, sqlite3_bind_int(st, 2, q && q->include_gone));
	return store_sql_bind_check(&s->sql, rc, st);
}

int store_sa_each(struct store *s, const struct store_sa_query *q, store_sa_cb cb, void *arg)
{
	sqlite3_stmt *st;
	int err;

	if ((err = store_sql_stmt_get(&s->sql, ST_SA_EACH, &st)) || (err = bind_sa_query(s, st, q)))
		return err;
	return each_row(s, st, emit_sa, &(struct emit_to){ .cb.sa = cb, .arg = arg }, "sa list");
}

int store_sa_get(struct store *s, int64_t id, struct store_sa *out)
{
	sqlite3_stmt *st;
	int err;

	if ((err = store_sql_stmt_get(&s->sql, ST_SA_GET, &st)) ||
	    (err = store_sql_bind_check(&s->sql, sqlite3_bind_int64(st, 1, id), st)))
		return err;
	return one_sa(s, st, out, "sa get");
}

int store_sa_find_live(struct store *s, const char *dst, uint32_t spi, uint8_t proto,
		       struct store_sa *out)
{
	char norm[STORE_ADDR_LEN];
	int err;

	if (!dst)
		return store_sql_fail(&s->sql, -EINVAL, "sa find: no dst");
	if (strnlen(dst, STORE_ADDR_LEN) >= STORE_ADDR_LEN)
		return store_sql_fail(&s->sql, -EINVAL, "sa find: dst too long");
	if ((err = norm_addr(s, "dst", dst, false, norm)))
		return err;
	return find_live(s, norm, spi, proto, out);
}

/* Run a bound count(*) query. */
static int count_query(struct store *s, sqlite3_stmt *st, uint64_t *n, const char *what)
{
	int rc = sqlite3_step(st), err = 0;

	if (rc == SQLITE_ROW)
		*n = (uint64_t)sqlite3_column_int64(st, 0);
	else
		err = store_sql_db_fail(&s->sql, rc, what);
	store_sql_stmt_done(st);
	return err;
}

int store_sa_count(struct store *s, const struct store_sa_query *q, uint64_t *n)
{
	sqlite3_stmt *st;
	int err;

	if ((err = store_sql_stmt_get(&s->sql, ST_SA_COUNT, &st)) ||
	    (err = bind_sa_query(s, st, q)))
		return err;
	return count_query(s, st, n, "sa count");
}

static int bind_since_link(struct store *s, sqlite3_stmt *st, int64_t since, const char *link)
{
	int rc = sqlite3_bind_int64(st, 1, since);

	store_sql_keep(&rc, link ? sqlite3_bind_text(st, 2, link, -1, SQLITE_TRANSIENT)
				 : sqlite3_bind_null(st, 2));
	return store_sql_bind_check(&s->sql, rc, st);
}

int store_event_each(struct store *s, int64_t since, const char *link, store_event_cb cb,
		     void *arg)
{
	sqlite3_stmt *st;
	int err;

	if ((err = store_sql_stmt_get(&s->sql, ST_EV_EACH, &st)) ||
	    (err = bind_since_link(s, st, since, link)))
		return err;
	return each_row(s, st, emit_event, &(struct emit_to){ .cb.ev = cb, .arg = arg },
			"event list");
}

int store_event_count(struct store *s, enum store_event_kind kind, int64_t since, uint64_t *n)
{
	sqlite3_stmt *st;
	int err, rc;

	if (!store_event_kind_name(kind))
		return store_sql_fail(&s->sql, -EINVAL, "event count: kind %d unknown", (int)kind);
	if ((err = store_sql_stmt_get(&s->sql, ST_EV_COUNT, &st)))
		return err;
	rc = sqlite3_bind_text(st, 1, store_event_kind_name(kind), -1, SQLITE_STATIC);
	store_sql_keep(&rc, sqlite3_bind_int64(st, 2, since));
	if ((err = store_sql_bind_check(&s->sql, rc, st)))
		return err;
	return count_query(s, st, n, "event count");
}

int store_rotation_each(struct store *s, int64_t since, const char *link, store_rotation_cb cb,
			void *arg)
{
	sqlite3_stmt *st;
	int err;

	if ((err = store_sql_stmt_get(&s->sql, ST_ROT_EACH, &st)) ||
	    (err = bind_since_link(s, st, since, link)))
		return err;
	return each_row(s, st, emit_rotation, &(struct emit_to){ .cb.rot = cb, .arg = arg },
			"rotation list");
}

int store_rotation_count(struct store *s, const char *link, enum store_rot_result result,
			 int64_t since, uint64_t *n)
{
	sqlite3_stmt *st;
	int err, rc;

	if (!store_rot_result_name(result))
		return store_sql_fail(&s->sql, -EINVAL, "rotation count: result %d unknown",
				      (int)result);
	if ((err = store_sql_stmt_get(&s->sql, ST_ROT_COUNT, &st)))
		return err;
	rc = link ? sqlite3_bind_text(st, 1, link, -1, SQLITE_TRANSIENT) : sqlite3_bind_null(st, 1);
	store_sql_keep(&rc,
		       sqlite3_bind_text(st, 2, store_rot_result_name(result), -1, SQLITE_STATIC));
	store_sql_keep(&rc, sqlite3_bind_int64(st, 3, since));
	if ((err = store_sql_bind_check(&s->sql, rc, st)))
		return err;
	return count_query(s, st, n, "rotation count");
}

int store_rotation_last(struct store *s, const char *link, bool ok_only,
			struct store_rotation *out)
{
	sqlite3_stmt *st;
	int err, rc;

	if (!link)
		return store_sql_fail(&s->sql, -EINVAL, "rotation last: no link");
	if ((err = store_sql_stmt_get(&s->sql, ST_ROT_LAST, &st)))
		return err;
	rc = sqlite3_bind_text(st, 1, link, -1, SQLITE_TRANSIENT);
	store_sql_keep(&rc, sqlite3_bind_int(st, 2, ok_only));
	if ((err = store_sql_bind_check(&s->sql, rc, st)))
		return err;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		err = read_rotation(s, st, out);
	else if (rc == SQLITE_DONE)
		err = store_sql_fail(&s->sql, -ENOENT, "rotation last: none for link %s", link);
	else
		err = store_sql_db_fail(&s->sql, rc, "rotation last");
	store_sql_stmt_done(st);
	return err;
}

int store_rotation_last_each(struct store *s, bool ok_only, store_rotation_cb cb, void *arg)
{
	sqlite3_stmt *st;
	int err;

	if ((err = store_sql_stmt_get(&s->sql, ST_ROT_LAST_EACH, &st)) ||
	    (err = store_sql_bind_check(&s->sql, sqlite3_bind_int(st, 1, ok_only), st)))
		return err;
	return each_row(s, st, emit_rotation, &(struct emit_to){ .cb.rot = cb, .arg = arg },
			"rotation last");
}

/* Arrays */

struct list {
	char *rows;
	size_t n, cap, elem;
};

static int list_push(struct list *l, const void *row)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 16;
		char *rows = reallocarray(l->rows, cap, l->elem);

		if (!rows)
			return -ENOMEM;
		l->rows = rows;
		l->cap = cap;
	}
	memcpy(l->rows + l->n * l->elem, row, l->elem);
	l->n++;
	return 0;
}

static int push_sa(const struct store_sa *sa, void *arg)
{
	return list_push(arg, sa);
}

static int push_event(const struct store_event *ev, void *arg)
{
	return list_push(arg, ev);
}

static int push_rotation(const struct store_rotation *rot, void *arg)
{
	return list_push(arg, rot);
}

/* Hand the list over, or free it on error. */
static int list_finish(struct store *s, struct list *l, int err, void **rows, size_t *n)
{
	if (err) {
		if (err == -ENOMEM)
			store_sql_fail(&s->sql, err, "list: out of memory");
		free(l->rows);
		*rows = NULL;
		*n = 0;
		return err;
	}
	*rows = l->n ? l->rows : NULL;
	if (!l->n)
		free(l->rows);
	*n = l->n;
	return 0;
}

int store_sa_list(struct store *s, const struct store_sa_query *q, struct store_sa **rows,
		  size_t *n)
{
	struct list l = { .elem = sizeof(**rows) };
	void *out;
	int err = store_sa_each(s, q, push_sa, &l);

	err = list_finish(s, &l, err, &out, n);
	*rows = out;
	return err;
}

int store_event_list(struct store *s, int64_t since, const char *link,
		     struct store_event **rows, size_t *n)
{
	struct list l = { .elem = sizeof(**rows) };
	void *out;
	int err = store_event_each(s, since, link, push_event, &l);

	err = list_finish(s, &l, err, &out, n);
	*rows = out;
	return err;
}

int store_rotation_list(struct store *s, int64_t since, const char *link,
			struct store_rotation **rows, size_t *n)
{
	struct list l = { .elem = sizeof(**rows) };
	void *out;
	int err = store_rotation_each(s, since, link, push_rotation, &l);

	err = list_finish(s, &l, err, &out, n);
	*rows = out;
	return err;
}

void store_list_free(void *rows)
{
	free(rows);
}

/* Test hooks (store_test.h) */

int store_test_create(const char *dir, int version)
{
	char path[PATH_MAX];
	struct store *s;
	int err;

	if (version < 0 || version > STORE_SCHEMA_VERSION)
		return -EINVAL;
	if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, STORE_DB_NAME) >= sizeof(path))
		return -ENAMETOOLONG;
	if (access(path, F_OK) == 0)
		return -EEXIST;
	if (!(s = store_alloc()))
		return -ENOMEM;
	err = open_db(s, dir, false, (gid_t)-1, version);
	store_close(s);
	return err;
}

/* A bare connection to <dir>/sakeyd.db, as a store (for the error helpers). */
static int test_connect(const char *dir, struct store **out)
{
	char path[PATH_MAX];
	struct store *s;
	int rc;

	if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, STORE_DB_NAME) >= sizeof(path))
		return -ENAMETOOLONG;
	if (!(s = store_alloc()))
		return -ENOMEM;
	rc = sqlite3_open_v2(path, &s->sql.db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		rc = store_sql_db_fail(&s->sql, rc, path);
		store_close(s);
		return rc;
	}
	sqlite3_busy_timeout(s->sql.db, STORE_BUSY_TIMEOUT_MS);
	*out = s;
	return 0;
}

int store_test_exec(const char *dir, const char *sql)
{
	struct store *s;
	int err = test_connect(dir, &s);

	if (err)
		return err;
	err = store_sql_exec(&s->sql, sql, "test exec");
	store_close(s);
	return err;
}

int store_test_query_int(const char *dir, const char *sql, int64_t *out)
{
	struct store *s;
	int err = test_connect(dir, &s);

	if (err)
		return err;
	err = store_sql_query_int(&s->sql, sql, out);
	store_close(s);
	return err;
}

int store_test_exec_on(struct store *s, const char *sql)
{
	return store_sql_exec(&s->sql, sql, "test exec");
}
