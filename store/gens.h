/* SPDX-License-Identifier: ISC */
/* Key schedule v2's durable records: generations sent and received, inbound replay state. */
#ifndef SAKEYD_STORE_GENS_H
#define SAKEYD_STORE_GENS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * <state_dir>/generations.db, apart from the ledger (sakeyd.db): the ledger
 * batches a loop turn's writes with synchronous = NORMAL, while a sender
 * must know that (link, epoch, generation) is on disk before it installs
 * the outbound SA (DESIGN.md "Key schedule v2: generations").
 *
 * What is durable when (WAL with PRAGMA synchronous = FULL):
 * - gens_commit() returning 0, or a gens_put_* / gens_del_replay /
 *   gens_prune outside a transaction returning 0: the transaction is in the
 *   WAL and the WAL has been fsync'd, as have the directory entries that
 *   name the files (gens_open fsyncs the state directory after creating the
 *   database file and its parent after creating the directory; SQLite
 *   fsyncs the directory when it creates the -wal file). It survives a
 *   crash of the process, of the kernel and a power loss, provided the disk
 *   honours fsync.
 * - Writes between gens_begin() and gens_commit(): nothing until the commit
 *   returns; a crash or gens_rollback() before then loses all of them
 *   together, never some.
 * - A commit that fails has not happened (rolled back); the caller must not
 *   act as if it had (a sender must not install the SA).
 *
 * Conventions as store.h: times are Unix seconds passed by the caller (the
 * store reads no clock); functions return 0 or -errno with gens_errmsg()
 * saying why; input refused before SQLite sees it is -EINVAL; SQLite's codes
 * map as in store.h. No key material: a link text that looks like a key
 * (store_run_is_key) is refused, and no record has a field for one. The
 * file is hostile input too: a row that breaks a rule of the records (a
 * generation out of range, a bitmap whose length disagrees with bmp_len, an
 * address not in inet_ntop form, a value of the wrong type) makes
 * gens_load fail with -EIO naming the row; nothing is read past a bound.
 * One writer (the daemon); a handle is used from one thread.
 */

#define GENS_DB_NAME "generations.db"
/* Current schema version (PRAGMA user_version); see gens.c for each migration. */
#define GENS_SCHEMA_VERSION 1
/* The link's key text: e.g. "2a 192.0.2.1 198.51.100.7" (prefix in hex, local, remote), made by
 * the caller: printable ASCII, spaces allowed, 1..GENS_LINK_LEN - 1 bytes. */
#define GENS_LINK_LEN 96
#define GENS_GEN_UNKNOWN 0xff
#define GENS_GEN_MAX 15
#define GENS_ADDR_LEN 46    /* = INET6_ADDRSTRLEN */
#define GENS_BMP_MAX 128    /* u32 words: XFRMA_REPLAY_ESN_MAX's 4096 bits */
#define GENS_ERRMSG_LEN 512
/* How long a write waits for the lock of another connection before -EBUSY. */
#define GENS_BUSY_TIMEOUT_MS 1000

struct gens;

/* When the records first knew a link, and whether the database was fresh then. */
struct gens_link {
	char link[GENS_LINK_LEN];
	int64_t first_epoch;
	bool fresh;
	int64_t at;
};

/* Sender: the last generation installed for (link, epoch); gen 0..15. */
struct gens_out {
	char link[GENS_LINK_LEN];
	int64_t epoch;
	uint8_t gen;
	int64_t at;
};

/*
 * Receiver: g_cur of (link, epoch) (GENS_GEN_UNKNOWN = not known yet), the
 * one it superseded (GENS_GEN_UNKNOWN = none), since when.
 */
struct gens_in {
	char link[GENS_LINK_LEN];
	int64_t epoch;
	uint8_t gen;
	uint8_t prev;
	int64_t since;
};

/*
 * Replay state of one inbound SA, keyed by (dst, spi): XFRM's
 * xfrm_replay_state_esn (window, seq, seq_hi, bmp_len words of bitmap; the
 * legacy xfrm_replay_state is seq, bitmap as bmp_len 1, window). gen 0..15;
 * bmp_len 0..GENS_BMP_MAX, words past bmp_len are ignored on the way in and
 * zero on the way out. dst is an IP literal, stored in inet_ntop form.
 */
struct gens_replay {
	char link[GENS_LINK_LEN];
	int64_t epoch;
	uint8_t gen;
	uint32_t spi;
	char dst[GENS_ADDR_LEN];
	uint32_t window, seq, seq_hi;
	uint32_t bmp_len;
	uint32_t bmp[GENS_BMP_MAX];
	int64_t at;
};

/*
 * Open (creating) <dir>/generations.db: dir created 0700 if missing (one
 * level), the file created 0600 or tightened to it, a symbolic link or a
 * non-regular file refused (-EINVAL), WAL, synchronous = FULL, the schema
 * migrated forward in one transaction (-EPROTONOSUPPORT if newer than this
 * build, -EINVAL if the file is some other SQLite database). *fresh (if not
 * NULL) is true when the database holds no record at all (just created, or
 * emptied): the sender then starts at generation 15. On success *out is a
 * handle for gens_close(); on failure *out is NULL and err (err_size bytes,
 * may be NULL) says why.
 */
int gens_open(const char *dir, struct gens **out, bool *fresh, char *err, size_t err_size);

/* Close (rolling back an open transaction) and free; NULL is a no-op. */
void gens_close(struct gens *g);

/* The last error of g, "" if none. Owned by g, valid until the next call on g. */
const char *gens_errmsg(const struct gens *g);

/*
 * True if the database's path no longer names the file that is open
 * (deleted with the state directory, or replaced): SQLite would go on
 * writing to the unlinked file, so a commit would not be durable where the
 * next start looks. The caller closes and opens again (and then is fresh).
 */
bool gens_file_replaced(const struct gens *g);

/*
 * gens_begin takes the write lock (BEGIN IMMEDIATE; -EALREADY inside a
 * transaction, -EBUSY past GENS_BUSY_TIMEOUT_MS); gens_commit makes the
 * writes since durable (see above) and returns 0, or fails, rolls back and
 * returns the error (-EINVAL without a transaction). A write refused with
 * -EINVAL leaves the transaction intact; if the database fails (disk full,
 * I/O) the transaction is lost: further writes and the commit return that
 * error. gens_rollback abandons the transaction (no-op without one).
 */
int gens_begin(struct gens *g);
int gens_commit(struct gens *g);
void gens_rollback(struct gens *g);

/* Insert if absent: first_epoch, fresh and at of a known link never change. */
int gens_put_link(struct gens *g, const struct gens_link *r);
/* Upsert by (link, epoch). */
int gens_put_out(struct gens *g, const struct gens_out *r);
int gens_put_in(struct gens *g, const struct gens_in *r);
/* Upsert by (dst, spi). */
int gens_put_replay(struct gens *g, const struct gens_replay *r);
/* Forget the replay state of (dst, spi): 0 also when there was none; -EINVAL for a bad dst. */
int gens_del_replay(struct gens *g, const char *dst, uint32_t spi);
/* The replay row of (dst, spi): 0 and *out, -ENOENT if none, -EIO for a bad row, or -errno. */
int gens_get_replay(struct gens *g, const char *dst, uint32_t spi, struct gens_replay *out);

struct gens_visit {
	int (*link)(const struct gens_link *r, void *arg);
	int (*out)(const struct gens_out *r, void *arg);
	int (*in)(const struct gens_in *r, void *arg);
	int (*replay)(const struct gens_replay *r, void *arg);
	void *arg;
};

/*
 * Every record, kind by kind (links, out, in, replay), each kind in (link,
 * epoch) order (links by link; replay then by gen, dst, spi). A callback
 * returning non-zero stops with that value; NULL callbacks skip a kind.
 * The records are borrowed for the call. A callback may not call gens_load
 * again (-EDEADLK); it should not write the kind being visited (SQLite
 * would let the visit see some of those writes): collect, then write. -EIO for a row that breaks the
 * records' rules (see above), with the table and key in gens_errmsg.
 */
int gens_load(struct gens *g, const struct gens_visit *v);

/*
 * Forget link's out, in and replay records of epochs < before (the link row
 * stays, so the database is never fresh again by pruning). Returns the
 * number of rows deleted (at most INT_MAX) or -errno.
 */
int gens_prune(struct gens *g, const char *link, int64_t before);

#endif
