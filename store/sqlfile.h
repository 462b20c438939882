/* SPDX-License-Identifier: ISC */
/* What the ledger and the generation records share: files, SQLite connection, key check. */
#ifndef SAKEYD_STORE_SQLFILE_H
#define SAKEYD_STORE_SQLFILE_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <sqlite3.h>

/*
 * A connection as the ledger (store.c) and the generation records (gens.c)
 * both drive it: the handle, its cache of prepared statements (stmt[id],
 * prepared from sql[id] on first use), the message of the last error, the
 * open transaction and the file it was opened on. The owner gives it its
 * parts (store_sql_init) and opens db; store_sql_* do the rest.
 */
struct store_sql {
	sqlite3 *db;
	const char *const *sql; /* statement texts, by the owner's ids */
	sqlite3_stmt **stmt; /* n_stmt, prepared on first use */
	size_t n_stmt;
	char *errmsg; /* errmsg_size bytes: the last error */
	size_t errmsg_size;
	const char *what; /* the owner, in "<what> called from its own iteration callback" */
	const char *file; /* NULL, or the file name that starts each SQLite error */
	bool in_txn;
	int txn_err; /* the database failed inside the open transaction: it is lost */
	/* The file, to notice it deleted or replaced under us (store_sql_file_replaced). */
	char path[PATH_MAX];
	dev_t dev;
	ino_t ino;
	bool have_ino;
};

/*
 * Zero q and give it its owner's statement texts and cache (n each, by the
 * owner's ids), error buffer, name and file name (NULL: none).
 */
void store_sql_init(struct store_sql *q, const char *const *sql, sqlite3_stmt **stmt, size_t n,
		    char *errmsg, size_t errmsg_size, const char *what, const char *file);

/* Format the error into q->errmsg; returns err. */
#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
int store_sql_fail(struct store_sql *q, int err, const char *fmt, ...);

/*
 * Record the SQLite error rc for what ("[file: ]what: message (rc text)");
 * returns it as -errno (-EIO for a code that maps to 0). An error that rolled
 * the open transaction back is kept in txn_err.
 */
int store_sql_db_fail(struct store_sql *q, int rc, const char *what);

/* 0, or txn_err once the open transaction is lost: writes go no further. */
int store_sql_write_ok(struct store_sql *q);

/* The prepared statement id (prepared now if need be); -EDEADLK if it is mid-step. */
int store_sql_stmt_get(struct store_sql *q, int id, sqlite3_stmt **out);

/* Reset st and clear its bindings. */
void store_sql_stmt_done(sqlite3_stmt *st);

/* Step a statement that returns no row; reset it. 0 or -errno. */
int store_sql_run(struct store_sql *q, sqlite3_stmt *st, const char *what);

/* Keep the first binding error of a series. */
void store_sql_keep(int *rc, int next);

/* Bindings fail only for an index out of range or out of memory: 0, or st reset and -errno. */
int store_sql_bind_check(struct store_sql *q, int rc, sqlite3_stmt *st);

/* sqlite3_exec sql; 0 or -errno (the error for what). */
int store_sql_exec(struct store_sql *q, const char *sql, const char *what);

/* The first column of a one-row query (an integer pragma); -ENOENT for no row. */
int store_sql_query_int(struct store_sql *q, const char *sql, int64_t *out);

/* PRAGMA journal_mode = WAL; -ENOTSUP if the file system keeps another mode. */
int store_sql_wal(struct store_sql *q, const char *path);

/* Remember the device and inode of path, the file q was opened on (if stat works). */
void store_sql_note_file(struct store_sql *q, const char *path);

/* Whether the noted file was deleted or replaced since (false if none was noted). */
bool store_sql_file_replaced(const struct store_sql *q);

/* Roll back (statement id rollback) the transaction SQLite has open, if any; q's flags stay. */
void store_sql_rollback_now(struct store_sql *q, int rollback);

/* Roll back and forget the transaction: none is open afterwards. */
void store_sql_rollback(struct store_sql *q, int rollback);

/* Begin (BEGIN IMMEDIATE, statement id begin): -EALREADY if one is open. */
int store_sql_begin(struct store_sql *q, int begin);

/*
 * Commit (statement ids commit, rollback): -EINVAL without a transaction;
 * a transaction lost earlier, or a failing COMMIT, is rolled back and its
 * error returned. No transaction is open afterwards.
 */
int store_sql_commit(struct store_sql *q, int commit, int rollback);

/*
 * The end of a migration, inside its BEGIN IMMEDIATE: steps[from] up to
 * steps[target - 1] (steps[v] takes version v to v + 1), user_version =
 * target, COMMIT. 0 or -errno; on error the caller rolls back
 * (store_sql_abandon).
 */
int store_sql_migrate_steps(struct store_sql *q, const char *const *steps, int64_t from,
			    int target);

/* ROLLBACK by plain SQL whatever is open (a migration), if anything is. */
void store_sql_abandon(struct store_sql *q);

/* Finalize the statements, roll back what is open and close the handle (NULL: nothing). */
void store_sql_close(struct store_sql *q);

/*
 * SQLite result code rc of db (NULL allowed) as -errno, 0 for OK/ROW/DONE:
 * BUSY/LOCKED -EBUSY, FULL -ENOSPC, READONLY -EROFS, CORRUPT/NOTADB -EIO,
 * IOERR/CANTOPEN the system errno (else -EIO, -ENOENT), NOMEM -ENOMEM,
 * PERM/AUTH -EACCES, CONSTRAINT -EINVAL (UNIQUE, PRIMARYKEY -EEXIST),
 * TOOBIG -E2BIG, anything else unknown -EIO.
 */
int store_sqlite_errno(sqlite3 *db, int rc);

/*
 * The name of a VFS that writes a WAL's frames in runs, one pwrite() for many
 * (each transaction's frames in the file before its commit returns; see
 * sqlfile.c), registered on first call; NULL (the default VFS) if SQLite's
 * default VFS lacks what it needs. Not thread-safe on the first call.
 */
const char *store_sql_walbuf_vfs(void);

/*
 * Whether text t holds a key-shaped run (store_run_is_key, store.h): never
 * stored. Defined in store.c, beside store_run_is_key.
 */
bool store_key_shaped(const char *t);

/*
 * dir, created 0700 if missing (one level; the mode made exact despite the
 * umask). 0, -ENOTDIR if it is something else, or -errno; err (err_size
 * bytes, may be NULL) says why.
 */
int store_make_dir(const char *dir, char *err, size_t err_size);

/*
 * Give the file path exactly mode (passed through no umask) and, unless gid
 * is (gid_t)-1, group gid (the group is changed first, with the group and
 * other bits cleared until the mode is set), created with mode if missing,
 * through a descriptor of its own. 0, -EINVAL for a
 * symbolic link or a non-regular file, -EPERM if the mode does not stick,
 * or -errno (-EPERM from chown: neither root nor a member of gid); err says
 * why.
 */
int store_set_file_access(const char *path, mode_t mode, gid_t gid, char *err, size_t err_size);

/*
 * The same for an existing file that an open SQLite connection of this
 * process may hold locks on (a database's -wal and -shm): by path, never
 * through a descriptor of its own. POSIX record locks belong to the process
 * and go when any descriptor of the file is closed: closing one of ours
 * dropped SQLite's lock on the -shm, a reader then took the file for
 * unused and truncated it, and the writer died of SIGBUS in its mapping.
 * A missing file is not an error (0); otherwise as store_set_file_access.
 */
int store_set_path_access(const char *path, mode_t mode, gid_t gid, char *err, size_t err_size);

/*
 * Create the database file path 0600 before SQLite opens it (SQLite would
 * create it 0644 under the usual umask), or tighten an existing one to 0600:
 * store_set_file_access(path, 0600, (gid_t)-1, ...). SQLite gives the
 * -wal and -shm files the database file's mode (and, run as root, its owner
 * and group).
 */
int store_make_db_file(const char *path, char *err, size_t err_size);

/*
 * Share the existing directory dir with group gid for reading: group gid,
 * mode 0750 (a setuid/setgid/sticky bit is dropped). A symbolic link is
 * refused (-EINVAL). 0 or -errno; err says why.
 */
int store_share_dir(const char *dir, gid_t gid, char *err, size_t err_size);

#endif
