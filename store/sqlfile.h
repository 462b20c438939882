/* SPDX-License-Identifier: ISC */
/* What the ledger and the generation records share: their files on disk and SQLite's errors. */
#ifndef SAKEYD_STORE_SQLFILE_H
#define SAKEYD_STORE_SQLFILE_H

#include <stddef.h>

#include <sqlite3.h>

/*
 * SQLite result code rc of db (NULL allowed) as -errno, 0 for OK/ROW/DONE:
 * BUSY/LOCKED -EBUSY, FULL -ENOSPC, READONLY -EROFS, CORRUPT/NOTADB -EIO,
 * IOERR/CANTOPEN the system errno (else -EIO, -ENOENT), NOMEM -ENOMEM,
 * PERM/AUTH -EACCES, CONSTRAINT -EINVAL (UNIQUE, PRIMARYKEY -EEXIST),
 * TOOBIG -E2BIG, anything else unknown -EIO.
 */
int store_sqlite_errno(sqlite3 *db, int rc);

/*
 * dir, created 0700 if missing (one level; the mode made exact despite the
 * umask). 0, -ENOTDIR if it is something else, or -errno; err (err_size
 * bytes, may be NULL) says why.
 */
int store_make_dir(const char *dir, char *err, size_t err_size);

/*
 * Create the database file path 0600 before SQLite opens it (SQLite would
 * create it 0644 under the usual umask), or tighten an existing one to 0600.
 * SQLite gives the -wal and -shm files the database file's mode. 0, -EINVAL
 * for a symbolic link or a non-regular file, -EPERM if the mode does not
 * stick, or -errno; err says why.
 */
int store_make_db_file(const char *path, char *err, size_t err_size);

#endif
