/* SPDX-License-Identifier: ISC */
/* What the ledger and the generation records share: files, SQLite connection, key check. */
#include "store/sqlfile.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int store_sqlite_errno(sqlite3 *db, int rc)
{
	int sys = db ? sqlite3_system_errno(db) : 0;

	switch (rc & 0xff) {
	case SQLITE_OK:
	case SQLITE_ROW:
	case SQLITE_DONE:
		return 0;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
	case SQLITE_PROTOCOL:
		return -EBUSY;
	case SQLITE_FULL:
		return -ENOSPC;
	case SQLITE_READONLY:
		return -EROFS;
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB:
		return -EIO;
	case SQLITE_IOERR:
	case SQLITE_CANTOPEN:
		return sys > 0 ? -sys : ((rc & 0xff) == SQLITE_CANTOPEN ? -ENOENT : -EIO);
	case SQLITE_NOMEM:
		return -ENOMEM;
	case SQLITE_PERM:
	case SQLITE_AUTH:
		return -EACCES;
	case SQLITE_CONSTRAINT:
		if (rc == SQLITE_CONSTRAINT_UNIQUE || rc == SQLITE_CONSTRAINT_PRIMARYKEY)
			return -EEXIST;
		return -EINVAL;
	case SQLITE_TOOBIG:
		return -E2BIG;
	case SQLITE_NOLFS:
		return -EFBIG;
	case SQLITE_INTERRUPT:
		return -EINTR;
	case SQLITE_ABORT:
		return -ECANCELED;
	case SQLITE_SCHEMA:
		return -EAGAIN;
	case SQLITE_RANGE:
	case SQLITE_MISMATCH:
	case SQLITE_MISUSE:
		return -EINVAL;
	default:
		return -EIO;
	}
}

#if defined(__GNUC__)
__attribute__((format(printf, 4, 5)))
#endif
static int fail(char *err, size_t err_size, int code, const char *fmt, ...)
{
	va_list ap;

	if (err && err_size) {
		va_start(ap, fmt);
		vsnprintf(err, err_size, fmt, ap);
		va_end(ap);
	}
	return code;
}

int store_make_dir(const char *dir, char *err, size_t err_size)
{
	struct stat st;

	if (mkdir(dir, 0700) == 0) {
		/* mkdir applied the umask; make the mode exact. */
		if (chmod(dir, 0700) < 0)
			return fail(err, err_size, -errno, "chmod %s: %s", dir, strerror(errno));
		return 0;
	}
	if (errno != EEXIST)
		return fail(err, err_size, -errno, "mkdir %s: %s", dir, strerror(errno));
	if (stat(dir, &st) < 0)
		return fail(err, err_size, -errno, "stat %s: %s", dir, strerror(errno));
	if (!S_ISDIR(st.st_mode))
		return fail(err, err_size, -ENOTDIR, "%s: not a directory", dir);
	return 0;
}

int store_set_file_access(const char *path, mode_t mode, gid_t gid, char *err, size_t err_size)
{
	struct stat st;
	int fd, ret = 0;

	fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK, mode);
	if (fd < 0) {
		if (errno == ELOOP)
			return fail(err, err_size, -EINVAL, "%s: a symbolic link; refused", path);
		if (errno == EISDIR)
			return fail(err, err_size, -EINVAL, "%s: not a regular file", path);
		return fail(err, err_size, -errno, "open %s: %s", path, strerror(errno));
	}
	if (fstat(fd, &st) < 0) {
		ret = fail(err, err_size, -errno, "stat %s: %s", path, strerror(errno));
		goto cleanup;
	}
	if (!S_ISREG(st.st_mode)) {
		ret = fail(err, err_size, -EINVAL, "%s: not a regular file", path);
		goto cleanup;
	}
	/* The group first: the mode never shows group bits to a group not yet the file's. */
	if (gid != (gid_t)-1 && st.st_gid != gid) {
		if (fchmod(fd, st.st_mode & 0700) < 0 || fchown(fd, (uid_t)-1, gid) < 0 ||
		    fstat(fd, &st) < 0) {
			ret = fail(err, err_size, -errno, "chgrp %lu %s: %s", (unsigned long)gid,
				   path, strerror(errno));
			goto cleanup;
		}
	}
	if ((st.st_mode & 07777) != mode) {
		if (fchmod(fd, mode) < 0 || fstat(fd, &st) < 0) {
			ret = fail(err, err_size, -errno, "chmod %s: %s", path, strerror(errno));
			goto cleanup;
		}
		if ((st.st_mode & 07777) != mode) {
			ret = fail(err, err_size, -EPERM, "%s: mode %o, not %04o", path,
				   st.st_mode & 07777, (unsigned)mode);
			goto cleanup;
		}
	}
cleanup:
	close(fd);
	return ret;
}

int store_set_path_access(const char *path, mode_t mode, gid_t gid, char *err, size_t err_size)
{
	struct stat st;

	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : fail(err, err_size, -errno, "%s: %s", path,
						  strerror(errno));
	if (S_ISLNK(st.st_mode))
		return fail(err, err_size, -EINVAL, "%s: a symbolic link; refused", path);
	if (!S_ISREG(st.st_mode))
		return fail(err, err_size, -EINVAL, "%s: not a regular file", path);
	/* The group first: the mode never shows group bits to a group not yet the file's. */
	if (gid != (gid_t)-1 && st.st_gid != gid &&
	    (chmod(path, st.st_mode & 0700) < 0 || lchown(path, (uid_t)-1, gid) < 0))
		return fail(err, err_size, -errno, "chgrp %lu %s: %s", (unsigned long)gid, path,
			    strerror(errno));
	if ((st.st_mode & 07777) == mode)
		return 0;
	if (chmod(path, mode) < 0 || lstat(path, &st) < 0)
		return fail(err, err_size, -errno, "chmod %s: %s", path, strerror(errno));
	if ((st.st_mode & 07777) != mode)
		return fail(err, err_size, -EPERM, "%s: mode %o, not %04o", path, st.st_mode & 07777,
			    (unsigned)mode);
	return 0;
}

int store_make_db_file(const char *path, char *err, size_t err_size)
{
	return store_set_file_access(path, 0600, (gid_t)-1, err, err_size);
}

int store_share_dir(const char *dir, gid_t gid, char *err, size_t err_size)
{
	struct stat st;
	int fd, ret = 0;

	/* O_NOFOLLOW: the directory itself, as conf_check_files() judged it. */
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return fail(err, err_size, errno == ELOOP ? -EINVAL : -errno, "open %s: %s", dir,
			    errno == ELOOP ? "a symbolic link; refused" : strerror(errno));
	if (fstat(fd, &st) < 0) {
		ret = fail(err, err_size, -errno, "stat %s: %s", dir, strerror(errno));
		goto cleanup;
	}
	if (st.st_gid != gid &&
	    (fchmod(fd, st.st_mode & 07700) < 0 || fchown(fd, (uid_t)-1, gid) < 0)) {
		ret = fail(err, err_size, -errno, "chgrp %lu %s: %s", (unsigned long)gid, dir,
			   strerror(errno));
		goto cleanup;
	}
	if (fchmod(fd, 0750) < 0)
		ret = fail(err, err_size, -errno, "chmod 0750 %s: %s", dir, strerror(errno));
cleanup:
	close(fd);
	return ret;
}

/* The connection both files drive (struct store_sql) */

void store_sql_init(struct store_sql *q, const char *const *sql, sqlite3_stmt **stmt, size_t n,
		    char *errmsg, size_t errmsg_size, const char *what, const char *file)
{
	*q = (struct store_sql){
		.sql = sql,
		.stmt = stmt,
		.n_stmt = n,
		.errmsg = errmsg,
		.errmsg_size = errmsg_size,
		.what = what,
		.file = file,
	};
}

int store_sql_fail(struct store_sql *q, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(q->errmsg, q->errmsg_size, fmt, ap);
	va_end(ap);
	return err;
}

int store_sql_db_fail(struct store_sql *q, int rc, const char *what)
{
	int err = store_sqlite_errno(q->db, rc);
	const char *msg = q->db ? sqlite3_errmsg(q->db) : "out of memory";

	if (err == 0)
		err = -EIO;
	if (q->file)
		store_sql_fail(q, err, "%s: %s: %s (%s)", q->file, what, msg, sqlite3_errstr(rc));
	else
		store_sql_fail(q, err, "%s: %s (%s)", what, msg, sqlite3_errstr(rc));
	/* Some errors (FULL, IOERR, NOMEM, BUSY) roll the whole transaction back. */
	if (q->in_txn && q->db && sqlite3_get_autocommit(q->db) && !q->txn_err)
		q->txn_err = err;
	return err;
}

int store_sql_write_ok(struct store_sql *q)
{
	if (q->txn_err)
		return store_sql_fail(q, q->txn_err,
				      "transaction already failed; roll back or commit");
	return 0;
}

int store_sql_stmt_get(struct store_sql *q, int id, sqlite3_stmt **out)
{
	sqlite3_stmt *st = q->stmt[id];
	int rc;

	if (!st) {
		rc = sqlite3_prepare_v3(q->db, q->sql[id], -1, SQLITE_PREPARE_PERSISTENT, &st,
					NULL);
		if (rc != SQLITE_OK) {
			sqlite3_finalize(st);
			return store_sql_db_fail(q, rc, "prepare");
		}
		q->stmt[id] = st;
	}
	if (sqlite3_stmt_busy(st))
		return store_sql_fail(q, -EDEADLK, "%s called from its own iteration callback",
				      q->what);
	*out = st;
	return 0;
}

void store_sql_stmt_done(sqlite3_stmt *st)
{
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
}

int store_sql_run(struct store_sql *q, sqlite3_stmt *st, const char *what)
{
	int rc = sqlite3_step(st);
	int err = 0;

	if (rc != SQLITE_DONE && rc != SQLITE_ROW)
		err = store_sql_db_fail(q, rc, what);
	store_sql_stmt_done(st);
	return err;
}

void store_sql_keep(int *rc, int next)
{
	if (*rc == SQLITE_OK)
		*rc = next;
}

int store_sql_bind_check(struct store_sql *q, int rc, sqlite3_stmt *st)
{
	if (rc == SQLITE_OK)
		return 0;
	store_sql_stmt_done(st);
	return store_sql_db_fail(q, rc, "bind");
}

int store_sql_exec(struct store_sql *q, const char *sql, const char *what)
{
	int rc = sqlite3_exec(q->db, sql, NULL, NULL, NULL);

	return rc == SQLITE_OK ? 0 : store_sql_db_fail(q, rc, what);
}

int store_sql_query_int(struct store_sql *q, const char *sql, int64_t *out)
{
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(q->db, sql, -1, &st, NULL);
	int err = 0;

	if (rc == SQLITE_OK) {
		rc = sqlite3_step(st);
		if (rc == SQLITE_ROW)
			*out = sqlite3_column_int64(st, 0);
		else if (rc == SQLITE_DONE)
			err = store_sql_fail(q, -ENOENT, "%s: no row", sql);
		else
			err = store_sql_db_fail(q, rc, sql);
	} else {
		err = store_sql_db_fail(q, rc, sql);
	}
	sqlite3_finalize(st);
	return err;
}

int store_sql_wal(struct store_sql *q, const char *path)
{
	sqlite3_stmt *st = NULL;
	const unsigned char *mode;
	int rc, err;

	rc = sqlite3_prepare_v2(q->db, "PRAGMA journal_mode = WAL", -1, &st, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		err = store_sql_db_fail(q, rc, "journal_mode");
		sqlite3_finalize(st);
		return err;
	}
	mode = sqlite3_column_text(st, 0);
	err = mode && strcmp((const char *)mode, "wal") == 0
		      ? 0
		      : store_sql_fail(q, -ENOTSUP, "%s: no WAL mode on this file system", path);
	sqlite3_finalize(st);
	return err;
}

void store_sql_note_file(struct store_sql *q, const char *path)
{
	struct stat st;

	if (stat(path, &st) == 0) {
		snprintf(q->path, sizeof(q->path), "%s", path);
		q->dev = st.st_dev;
		q->ino = st.st_ino;
		q->have_ino = true;
	}
}

bool store_sql_file_replaced(const struct store_sql *q)
{
	struct stat st;

	if (!q->have_ino)
		return false;
	if (stat(q->path, &st) < 0)
		return errno == ENOENT || errno == ENOTDIR;
	return st.st_dev != q->dev || st.st_ino != q->ino;
}

void store_sql_rollback_now(struct store_sql *q, int rollback)
{
	sqlite3_stmt *st;

	if (q->db && !sqlite3_get_autocommit(q->db) && !store_sql_stmt_get(q, rollback, &st)) {
		sqlite3_step(st);
		store_sql_stmt_done(st);
	}
}

void store_sql_rollback(struct store_sql *q, int rollback)
{
	store_sql_rollback_now(q, rollback);
	q->in_txn = false;
	q->txn_err = 0;
}

int store_sql_begin(struct store_sql *q, int begin)
{
	sqlite3_stmt *st;
	int err;

	if (q->in_txn)
		return store_sql_fail(q, -EALREADY, "begin: a transaction is already open");
	if ((err = store_sql_stmt_get(q, begin, &st)) || (err = store_sql_run(q, st, "begin")))
		return err;
	q->in_txn = true;
	q->txn_err = 0;
	return 0;
}

int store_sql_commit(struct store_sql *q, int commit, int rollback)
{
	sqlite3_stmt *st;
	int err;

	if (!q->in_txn)
		return store_sql_fail(q, -EINVAL, "commit: no transaction open");
	err = q->txn_err;
	if (err)
		store_sql_fail(q, err, "commit: the transaction was lost to an earlier error");
	else if (!(err = store_sql_stmt_get(q, commit, &st)))
		err = store_sql_run(q, st, "commit");
	/* Keep the handle usable: the transaction's changes are lost, the caller starts again. */
	if (err)
		store_sql_rollback_now(q, rollback);
	q->in_txn = false;
	q->txn_err = 0;
	return err;
}

int store_sql_migrate_steps(struct store_sql *q, const char *const *steps, int64_t from, int target)
{
	char sql[64];
	int err;

	for (int64_t v = from; v < target; v++) {
		char what[48];

		snprintf(what, sizeof(what), "migration to version %" PRId64, v + 1);
		if ((err = store_sql_exec(q, steps[v], what)))
			return err;
	}
	if (from < target) {
		snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", target);
		if ((err = store_sql_exec(q, sql, "migration")))
			return err;
	}
	return store_sql_exec(q, "COMMIT", "migration");
}

void store_sql_abandon(struct store_sql *q)
{
	if (!sqlite3_get_autocommit(q->db))
		sqlite3_exec(q->db, "ROLLBACK", NULL, NULL, NULL);
}

void store_sql_close(struct store_sql *q)
{
	for (size_t i = 0; i < q->n_stmt; i++)
		sqlite3_finalize(q->stmt[i]);
	if (q->db) {
		store_sql_abandon(q);
		sqlite3_close_v2(q->db);
	}
}
