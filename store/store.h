/* SPDX-License-Identifier: ISC */
/* The SQLite ledger: the life of every SA, events, rotations, and how fresh the data is. */
#ifndef SAKEYD_STORE_STORE_H
#define SAKEYD_STORE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <string.h>

/*
 * One writer (the daemon) and any number of readers (sactl) share
 * <state_dir>/sakeyd.db in WAL mode: readers see the last committed state
 * while the writer holds a transaction open.
 *
 * Conventions:
 * - Times are Unix seconds; the store never reads a clock, callers pass `now`.
 * - Optional values: 0 or "" on the way in are stored as NULL and come back
 *   as 0 or "" (spi, proto, pid, times, link, key_fp...). epoch, where 0 is
 *   a valid value, has its own has_epoch flag.
 * - Functions return 0 or -errno; store_errmsg() says what failed. SQLite
 *   codes map as: BUSY/LOCKED -EBUSY, FULL -ENOSPC, READONLY -EROFS,
 *   CORRUPT/NOTADB -EIO, IOERR/CANTOPEN the system errno (else -EIO),
 *   NOMEM -ENOMEM, PERM/AUTH -EACCES, CONSTRAINT -EINVAL (UNIQUE -EEXIST),
 *   TOOBIG -E2BIG. Input the store rejects before SQLite sees it: -EINVAL.
 * - No key material: the row structs have no field for a key, key_fp must be
 *   exactly STORE_FP_LEN lowercase hex digits, structured text fields (link,
 *   algorithm, mode, meta values) are refused if they look like a key (a run
 *   of 32+ hex digits or 40+ base64 characters), and free text (event
 *   messages, rotation details) is cleaned: such runs become "[redacted]",
 *   control and non-ASCII bytes become '?'.
 * - A handle is used from one thread. An iteration callback may call the
 *   store, but not start the iteration it is called from again (-EDEADLK).
 */

#define STORE_DB_NAME "sakeyd.db"
/*
 * The system group that may read the ledger (sactl status and check without
 * root): if it exists when sakeyd starts, sakeyd shares the ledger with it
 * (store_open_shared).
 */
#define STORE_GROUP_NAME "sakeyd"
/* Current schema version (PRAGMA user_version); see store.c for each migration. */
#define STORE_SCHEMA_VERSION 7
/* How long a reader waits for a lock. */
#define STORE_BUSY_TIMEOUT_MS 2000
/*
 * How long the writer (the daemon) waits: the wait blocks its event loop, so
 * briefly; past it the write fails with -EBUSY and the ledger catches up later.
 */
#define STORE_WRITER_BUSY_TIMEOUT_MS 100

/* Buffer sizes, terminating NUL included. */
#define STORE_LINK_LEN 64 /* = CONF_NAME_MAX */
#define STORE_ADDR_LEN 46 /* = INET6_ADDRSTRLEN */
#define STORE_MODE_LEN 16
#define STORE_ALG_LEN 64
#define STORE_FP_LEN 16 /* hex digits of a key fingerprint (DESIGN.md "Key schedule v2") */
#define STORE_MSG_LEN 256
#define STORE_ERRMSG_LEN 512

/* Keys of the meta table (values are text; the *_at ones are Unix seconds). */
#define STORE_META_PID "pid"                     /* daemon pid */
#define STORE_META_STARTED_AT "started_at"       /* daemon start */
#define STORE_META_LAST_WRITE_AT "last_write_at" /* last loop turn that wrote */
#define STORE_META_LAST_DUMP_AT "last_dump_at"   /* last full resync from a kernel dump */
#define STORE_META_CONFIG "config"               /* config file path */
#define STORE_META_VERSION "version"             /* daemon version */
/* The next event id (v7: add and delete events kept in SA rows take theirs too). */
#define STORE_META_EVENT_NEXT "event_next"
/*
 * "schedule_" and the link name in hex (meta keys are [a-z0-9_]): "period=SECONDS
 * phase=SECONDS" of a running link, resolved (sactl status's next rotation).
 */
#define STORE_META_SCHEDULE "schedule_"
#define STORE_META_SCHEDULE_LEN (sizeof(STORE_META_SCHEDULE) + 2 * 64)

enum store_dir {
	STORE_DIR_NONE = 0, /* unmanaged: NULL */
	STORE_DIR_IN,       /* "in": remote -> local */
	STORE_DIR_OUT,      /* "out": local -> remote */
};

enum store_sa_state {
	STORE_SA_LARVAL = 0,
	STORE_SA_MATURE,
	STORE_SA_DYING, /* soft lifetime reached */
	STORE_SA_GONE,  /* no longer in the kernel; gone_at says since when */
};

/* Event kinds; the names (store_event_kind_name) are those of DESIGN.md. */
enum store_event_kind {
	STORE_EV_ADD = 0,
	STORE_EV_UPDATE,
	STORE_EV_DELETE,
	STORE_EV_EXPIRE_SOFT,
	STORE_EV_EXPIRE_HARD,
	STORE_EV_ACQUIRE,
	STORE_EV_ACQUIRE_UNANSWERED,
	STORE_EV_SA_REMOVED,
	STORE_EV_SA_TOO_OLD,
	STORE_EV_ROTATION_FAILED,
	STORE_EV_RESYNC,
	STORE_EV_XFRM_ERRORS, /* an /proc/net/xfrm_stat counter rose (schema v3) */
	/* Key schedule v2 (schema v5): */
	STORE_EV_GENERATION_CHANGED,    /* a sender moved to a new generation after a loss */
	STORE_EV_GENERATIONS_EXHAUSTED, /* a sender's series is used up: no outbound SA this epoch */
	STORE_EV_REPLAY_UNPROTECTED,    /* an inbound SA re-installed without its replay state */
	STORE_EV_COUNT_,
};

enum store_rot_result {
	STORE_ROT_OK = 0,
	STORE_ROT_FAILED,
};

/*
 * One life of one SA: identity (dst, spi, proto) plus added_at, so an SPI
 * reused later is a new row. At most one row per identity is not gone.
 */
struct store_sa {
	int64_t id;                  /* row id; ignored on input */
	char link[STORE_LINK_LEN];   /* "" if unmanaged */
	enum store_dir dir;
	uint32_t spi;                /* host order */
	char src[STORE_ADDR_LEN];    /* IP literals; stored in inet_ntop form */
	char dst[STORE_ADDR_LEN];
	uint8_t proto;               /* IPPROTO_ESP...; 1..255 */
	char mode[STORE_MODE_LEN];   /* "transport", "tunnel"; "" if unknown */
	char algorithm[STORE_ALG_LEN]; /* config name or kernel name; "" if unknown */
	bool has_epoch;
	int64_t epoch;
	bool managed;
	enum store_sa_state state;
	int64_t added_at;            /* kernel addtime */
	int64_t gone_at;             /* 0 unless gone; ignored on input */
	int64_t soft_expires_at;     /* 0 = none */
	int64_t hard_expires_at;
	uint64_t bytes, packets;
	int64_t last_counters_at;    /* when the row was last written with a reading; a resync
				      * that reads the same leaves it (0 = never) */
	char key_fp[STORE_FP_LEN + 1]; /* "" if unknown */
	uint32_t origin_pid;         /* pid stamped on the ADD; 0 = unknown (schema v2) */
};

struct store_event {
	int64_t id; /* ignored on input */
	int64_t at;
	enum store_event_kind kind;
	int64_t sa_id;             /* ledger row of the SA, 0 if none (schema v2) */
	char link[STORE_LINK_LEN]; /* "" if none */
	uint32_t spi;              /* 0 if none */
	char src[STORE_ADDR_LEN];  /* "" if none */
	char dst[STORE_ADDR_LEN];
	uint8_t proto;             /* 0 if none */
	char message[STORE_MSG_LEN];
	uint32_t origin_pid;       /* 0 if unknown */
};

struct store_rotation {
	int64_t id; /* ignored on input */
	int64_t at;
	char link[STORE_LINK_LEN];
	int64_t epoch;
	enum store_rot_result result;
	char detail[STORE_MSG_LEN];
	uint32_t old_spi, new_spi; /* 0 if none */
};

struct store;

/* Names as stored and shown ("in", "mature", "expire-soft", "ok"); NULL for an unknown value. */
const char *store_dir_name(enum store_dir dir);
const char *store_sa_state_name(enum store_sa_state state);
const char *store_event_kind_name(enum store_event_kind kind);
const char *store_rot_result_name(enum store_rot_result result);
/* Inverse of store_event_kind_name: 0 and *kind set, or -EINVAL. */
int store_event_kind_parse(const char *name, enum store_event_kind *kind);

/*
 * Open <dir>/sakeyd.db. Writer (readonly false): creates dir 0700 if missing
 * (one level), creates the database 0600 (tightens an existing one and its
 * -wal and -shm files to 0600, refuses a symlink or a non-regular file),
 * turns on WAL, foreign keys, and migrates the schema forward to
 * STORE_SCHEMA_VERSION in one transaction.
 * Reader (readonly true): opens with SQLITE_OPEN_READONLY; works while a
 * writer holds a transaction; the schema must be exactly the current one.
 * On success *out is a handle for store_close(). On failure *out is NULL and,
 * if err is not NULL, err (err_size bytes) holds the reason. Returns 0,
 * -ENOENT (no database or no schema yet, reader), -EPROTONOSUPPORT (schema
 * newer than this build), -EPROTO (reader: schema older, the daemon has not
 * migrated it yet), -ENOTSUP (no WAL on this file system), -ENOTDIR,
 * -EINVAL (not a regular file), -ENAMETOOLONG, or a mapped SQLite/system error.
 */
int store_open(const char *dir, bool readonly, struct store **out, char *err, size_t err_size);

/*
 * The writer, as store_open(dir, false, ...), sharing the ledger with group
 * gid for reading (sactl status and check by a monitoring user): dir gets
 * group gid and mode 0750, the database and its -wal and -shm files group
 * gid and mode 0640, and the -wal and -shm files are kept when the database
 * is closed (a reader that cannot write in dir cannot create them). The
 * writer must be root or a member of gid (else -EPERM). The other files of
 * dir are not touched (generations.db stays 0600). store_open() instead
 * sets the database files back to 0600 (the directory is left as it is).
 */
int store_open_shared(const char *dir, gid_t gid, struct store **out, char *err, size_t err_size);

/* Close (rolling back an open transaction) and free; NULL is a no-op. */
void store_close(struct store *s);

/* The last error of s, "" if none. Owned by s, valid until the next call on s. */
const char *store_errmsg(const struct store *s);

/* Schema version of the open database (STORE_SCHEMA_VERSION once open). */
int store_schema_version(const struct store *s);

/*
 * How long a statement waits for a lock before -EBUSY (default
 * STORE_WRITER_BUSY_TIMEOUT_MS for a writer, STORE_BUSY_TIMEOUT_MS for a reader).
 */
void store_set_busy_timeout(struct store *s, int ms);

/*
 * Writer: true if the database's path no longer names the file that is open
 * (deleted, or replaced by another file). SQLite would go on writing to the
 * unlinked file unaware, losing everything at close; the caller reopens.
 */
bool store_file_replaced(const struct store *s);

/*
 * The WAL checkpoint away from the writer (the daemon's loop): a checkpoint
 * copies every page of the WAL into the database file (a pread() and a
 * pwrite() a page), and SQLite's automatic one ran inside whichever commit
 * crossed wal_autocheckpoint pages, three quarters of a rotation's ledger
 * I/O. store_autocheckpoint(s, false) stops the writer's own checkpoints; a
 * store_ckpt is a second connection to the same file whose store_ckpt_run
 * does them instead, on another thread (svc/daemon/ckpt.c). A store_ckpt is
 * used by one thread at a time and never by two connections' threads at once
 * (SQLITE_OPEN_NOMUTEX, as every connection here).
 *
 * store_ckpt_run: a PASSIVE checkpoint (it takes no lock the writer waits
 * for, and copies what no reader's snapshot still needs). If the -wal file
 * is then larger than STORE_WAL_BOUND_BYTES (readers such as sactl held old
 * snapshots, or the writer outran the copy), or if final, a TRUNCATE
 * checkpoint: it holds the write lock while it waits for readers, so it
 * waits at most STORE_CKPT_WAIT_MS (final: STORE_CKPT_FINAL_WAIT_MS), well
 * under the writer's STORE_WRITER_BUSY_TIMEOUT_MS, and is tried again at the
 * next run if it could not finish. 0, or -EBUSY (a lock held: try later),
 * -ENOSPC (disk full: the WAL keeps every committed page until there is
 * room), another -errno (store_ckpt_errmsg says what).
 */
#define STORE_WAL_BOUND_BYTES (64 << 20)
#define STORE_CKPT_WAIT_MS 25
#define STORE_CKPT_FINAL_WAIT_MS 500
/* The writer's -wal file is cut back to this when SQLite starts it over. */
#define STORE_WAL_KEEP_BYTES (16 << 20)
struct store_ckpt;
struct store_ckpt_stat {
	int64_t wal_frames; /* pages in the WAL when the PASSIVE checkpoint ran */
	int64_t wal_bytes; /* the -wal file's size after the run */
	bool truncated; /* a TRUNCATE checkpoint emptied it */
};
int store_autocheckpoint(struct store *s, bool on);
int store_ckpt_open(const struct store *s, struct store_ckpt **out, char *err, size_t err_size);
int store_ckpt_run(struct store_ckpt *c, bool final, struct store_ckpt_stat *st);
const char *store_ckpt_errmsg(const struct store_ckpt *c);
void store_ckpt_close(struct store_ckpt *c);

/*
 * Batching: store_begin takes the write lock (BEGIN IMMEDIATE; -EBUSY if
 * another writer holds it past the busy timeout); the writes up to
 * store_commit are one transaction, as the daemon does per loop turn.
 * Writes outside a transaction commit one by one. A write rejected with
 * -EINVAL or -EEXIST leaves the rest of the transaction intact; if the
 * database itself fails (disk full, I/O error) the transaction is lost, every
 * further write of it returns that error and store_commit returns it too.
 * store_commit on failure rolls back: the turn's changes are lost, the caller
 * should resync. store_rollback abandons the transaction (no-op without one).
 */
int store_begin(struct store *s);
int store_commit(struct store *s);
void store_rollback(struct store *s);
bool store_in_transaction(const struct store *s);

/*
 * Record a new SA life (state must not be gone; added_at must be set).
 * A live row with the same identity is closed first (gone at sa->added_at):
 * the kernel cannot hold both, so the old one went unnoticed. During a sync
 * the new row counts as seen. Sets *id (if not NULL) to the new row id.
 * Returns 0, -EINVAL (bad field, with the reason in store_errmsg) or an error.
 */
int store_sa_add(struct store *s, const struct store_sa *sa, int64_t *id);

/*
 * Update everything but identity and added_at of live row id from sa:
 * link, dir, mode, algorithm, epoch, managed, state (not gone: use
 * store_sa_set_state), expiries, counters, key_fp, origin_pid.
 * -ENOENT if id is not a live row.
 */
int store_sa_update(struct store *s, int64_t id, const struct store_sa *sa);

/* Usage counters of row id (live or gone) at now. -ENOENT if no such row. */
int store_sa_update_counters(struct store *s, int64_t id, uint64_t bytes, uint64_t packets,
			     int64_t now);

/*
 * Move live row id to state; STORE_SA_GONE sets gone_at = now (not before
 * added_at). A gone row never comes back. -ENOENT if id is not a live row.
 */
int store_sa_set_state(struct store *s, int64_t id, enum store_sa_state state, int64_t now);

/*
 * Resync after a kernel dump: store_sa_sync_begin(), then store_sa_seen() for
 * every SA of the dump (adds and updates that arrive meanwhile count as seen
 * too), then store_sa_sync_end() marks every live row not seen as gone at
 * now and sets *gone (if not NULL) to how many. Wrap it in one transaction.
 * store_sa_seen matches the live row by identity: if its src and added_at
 * agree (sa->added_at 0 = unknown, matches) the row is updated like
 * store_sa_update (state may not be gone), else the old row is closed and a
 * new one recorded (added_at 0 becomes now). *id (if not NULL) is the row.
 * -EINVAL for store_sa_seen/store_sa_sync_end without store_sa_sync_begin
 * (a rollback or a failed commit ends the sync: begin it again).
 */
int store_sa_sync_begin(struct store *s);
int store_sa_seen(struct store *s, const struct store_sa *sa, int64_t now, int64_t *id);
/*
 * store_sa_seen of an SA the caller knows row id holds as it is (the row
 * it last wrote, live, in this store): the row is only marked seen.
 */
int store_sa_seen_id(struct store *s, int64_t id);
int store_sa_sync_end(struct store *s, int64_t now, uint64_t *gone);

/* Append an event / a rotation; *id (if not NULL) the new row. */
int store_event_add(struct store *s, const struct store_event *ev, int64_t *id);
/*
 * An event about SA row sa_id, with the row's link, SPI, addresses,
 * protocol and origin: 0, or -ENOENT if there is no such row.
 */
int store_event_add_for_sa(struct store *s, int64_t sa_id, int64_t at,
			   enum store_event_kind kind, const char *msg);
int store_rotation_add(struct store *s, const struct store_rotation *rot, int64_t *id);

/*
 * The cheap forms of an SA row with its add event and of an SA life's end
 * with its delete event (v7): the event is kept in the SA's row, not in a
 * row of its own, and the event queries list it as the event it is (kind
 * add or delete, at, msg, the row's link, SPI, addresses, protocol and
 * origin). store_sa_add_logged is store_sa_add with that add event.
 * store_sa_gone_logged ends row id's life at at (as store_sa_set_state to
 * STORE_SA_GONE; a row already gone keeps its end) with that delete event:
 * -ENOENT if there is no such row or it holds a delete event already (the
 * caller then appends the event with store_event_add_for_sa or
 * store_event_add). msg: a string shorter than STORE_MSG_LEN.
 */
int store_sa_add_logged(struct store *s, const struct store_sa *sa, int64_t at, const char *msg,
			int64_t *id);
int store_sa_gone_logged(struct store *s, int64_t id, int64_t at, const char *msg);

/*
 * Meta key/value pairs (STORE_META_*). store_meta_set with value NULL
 * deletes the key. store_meta_get copies the value to buf (size bytes):
 * 0, -ENOENT, or -ERANGE if it does not fit (buf then holds a truncated copy).
 * The _int forms store decimal text; store_meta_get_int returns -EINVAL if
 * the value is not an integer.
 */
int store_meta_set(struct store *s, const char *key, const char *value);
int store_meta_get(struct store *s, const char *key, char *buf, size_t size);
int store_meta_set_int(struct store *s, const char *key, int64_t value);
int store_meta_get_int(struct store *s, const char *key, int64_t *value);

/* What store_prune removed. */
struct store_prune_result {
	uint64_t events, rotations, sas;
};

/*
 * Delete events and rotations with at < now - retention and gone SAs with
 * gone_at < now - retention (live SAs are kept however old). retention >= 0
 * seconds. *result may be NULL.
 */
int store_prune(struct store *s, int64_t now, int64_t retention, struct store_prune_result *result);

/* Queries. Callbacks: return 0 to go on; nonzero stops and is returned by the iterator. */
typedef int (*store_sa_cb)(const struct store_sa *sa, void *arg);
typedef int (*store_event_cb)(const struct store_event *ev, void *arg);
typedef int (*store_rotation_cb)(const struct store_rotation *rot, void *arg);

/* Which SAs: of link (NULL: every SA, managed or not), live only or also gone. */
struct store_sa_query {
	const char *link;
	bool include_gone;
};

/* SAs matching q (NULL: every live SA), by id. */
int store_sa_each(struct store *s, const struct store_sa_query *q, store_sa_cb cb, void *arg);
/* Row id into *out; -ENOENT if none. */
int store_sa_get(struct store *s, int64_t id, struct store_sa *out);
/* The live row of identity (dst, spi, proto) into *out; -ENOENT if none, -EINVAL for a bad dst. */
int store_sa_find_live(struct store *s, const char *dst, uint32_t spi, uint8_t proto,
		       struct store_sa *out);
/* Number of SAs matching q (NULL: live SAs). */
int store_sa_count(struct store *s, const struct store_sa_query *q, uint64_t *n);

/* Events with at >= since, of link (NULL: all), by time. */
int store_event_each(struct store *s, int64_t since, const char *link, store_event_cb cb,
		     void *arg);
/* Number of events of kind with at >= since. */
int store_event_count(struct store *s, enum store_event_kind kind, int64_t since, uint64_t *n);

/* Rotations with at >= since, of link (NULL: all), by time. */
int store_rotation_each(struct store *s, int64_t since, const char *link, store_rotation_cb cb,
			void *arg);
/* Number of rotations with result and at >= since, of link (NULL: all). */
int store_rotation_count(struct store *s, const char *link, enum store_rot_result result,
			 int64_t since, uint64_t *n);
/* The latest rotation of link (only successful ones if ok_only) into *out; -ENOENT if none. */
int store_rotation_last(struct store *s, const char *link, bool ok_only,
			struct store_rotation *out);
/* The latest rotation of every link (ok_only: latest successful one), by link name. */
int store_rotation_last_each(struct store *s, bool ok_only, store_rotation_cb cb, void *arg);

/*
 * The same queries as arrays: *rows (caller frees with store_list_free) holds
 * *n rows; *rows is NULL when *n is 0 or on error.
 */
int store_sa_list(struct store *s, const struct store_sa_query *q, struct store_sa **rows,
		  size_t *n);
int store_event_list(struct store *s, int64_t since, const char *link,
		     struct store_event **rows, size_t *n);
int store_rotation_list(struct store *s, int64_t since, const char *link,
			struct store_rotation **rows, size_t *n);
/*
 * The store's notion of key-shaped text, shared with every other place that
 * must keep keys out of what it writes: a run t[0..len) of base64 characters
 * (store_is_b64_char) is a key if it holds 32+ hex digits in a row (128
 * bits) or is 40+ characters mixing digits, upper and lower case.
 */
bool store_is_b64_char(char c);
bool store_run_is_key(const char *t, size_t len);

/* Free an array from a store_*_list function; NULL is a no-op. */
void store_list_free(void *rows);

/* The STORE_META_SCHEDULE key of link into out (STORE_META_SCHEDULE_LEN bytes; names are cut at 64). */
static inline void store_meta_schedule_key(const char *link, char out[STORE_META_SCHEDULE_LEN])
{
	static const char hex[] = "0123456789abcdef";
	size_t o = sizeof(STORE_META_SCHEDULE) - 1;

	memcpy(out, STORE_META_SCHEDULE, o);
	for (size_t i = 0; link[i] && i < 64; i++) {
		out[o++] = hex[(unsigned char)link[i] >> 4];
		out[o++] = hex[(unsigned char)link[i] & 15];
	}
	out[o] = '\0';
}

#endif
