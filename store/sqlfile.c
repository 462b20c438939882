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

/*
 * The WAL, written in runs. SQLite writes each frame with two pwrite()s
 * (sqlite3 wal.c: walWriteOneFrame, a 24-byte header then the page), the
 * commit's frames included: 2 system calls per 16 KiB page, which is what a
 * pass's commit cost where system calls trap (User-Mode Linux, ~50 us
 * each). This VFS, over the default one, gathers consecutive writes to a
 * WAL file in a buffer and writes them with one pwrite() when the next
 * write does not follow on, when the buffer is full, when SQLite reads,
 * syncs, sizes or closes the file, and as soon as the frame that commits
 * a transaction is complete (its header's "database size after commit" is
 * not 0; walformat: https://www.sqlite.org/fileformat.html#wal_file_format).
 * So a transaction's frames are all in the file before its commit returns
 * and before SQLite publishes them in the wal-index for readers, as without
 * the buffer: a crash of the process loses what it lost before (frames of
 * an uncommitted transaction), and a failing write fails the write or the
 * commit that needed it. The database file itself is left as it is.
 */
#define WALBUF_VFS "sakeyd-walbuf"
/*
 * The default VFS writes at most 128 KiB - 1 bytes a call (os_unix.c:
 * seekAndWriteFd masks nBuf with 0x1ffff; more fails as a full disk): a
 * buffer of 31 4-KiB blocks.
 */
#define WALBUF_SIZE (31 * 4096)
#define WAL_HDR 32
#define WAL_FRAME_HDR 24

struct walbuf_file {
	sqlite3_file base;
	sqlite3_file *real; /* the default VFS's file, allocated right after this struct */
	unsigned char *buf; /* WALBUF_SIZE bytes */
	sqlite3_int64 off;  /* file offset of buf[0] */
	size_t len;
	uint32_t page_size; /* from the WAL header; 0: not known yet */
	sqlite3_int64 commit_end; /* flush once the buffer reaches this offset; 0: none */
	sqlite3_int64 appended; /* end of what this WAL generation wrote (a header at 0: anew) */
};

static sqlite3_vfs walbuf_vfs;

static int walbuf_flush(struct walbuf_file *f)
{
	int rc = SQLITE_OK;

	if (f->len)
		rc = f->real->pMethods->xWrite(f->real, f->buf, (int)f->len, f->off);
	/* A commit frame still to come (the buffer was full before its end) stays awaited. */
	if (f->off + (sqlite3_int64)f->len >= f->commit_end || rc != SQLITE_OK)
		f->commit_end = 0;
	f->len = 0;
	return rc;
}

static uint32_t be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* The page size of the WAL header written in [data, data + n) at ofst, or read from the file. */
static void note_page_size(struct walbuf_file *f, const unsigned char *data, int n,
			   sqlite3_int64 ofst)
{
	unsigned char hdr[WAL_HDR];
	uint32_t sz;

	if (ofst == 0 && n >= 12)
		memcpy(hdr, data, 12);
	else if (f->page_size || f->real->pMethods->xRead(f->real, hdr, 12, 0) != SQLITE_OK)
		return;
	sz = be32(hdr + 8);
	if (sz == 1)
		sz = 65536;
	if (sz >= 512 && sz <= 65536 && !(sz & (sz - 1)))
		f->page_size = sz;
}

/*
 * If [ofst, ofst + n) holds the header of a commit frame, the offset where
 * that frame ends; else 0. Frames start at WAL_HDR + k * (24 + page size).
 */
static sqlite3_int64 commit_frame_end(const struct walbuf_file *f, const unsigned char *data,
				      int n, sqlite3_int64 ofst)
{
	sqlite3_int64 frame = WAL_FRAME_HDR + (sqlite3_int64)f->page_size, k, end = 0;

	if (ofst + n < WAL_HDR + WAL_FRAME_HDR)
		return 0;
	k = ofst <= WAL_HDR ? 0 : (ofst - WAL_HDR + frame - 1) / frame;
	for (sqlite3_int64 at = WAL_HDR + k * frame; at + WAL_FRAME_HDR <= ofst + n; at += frame)
		if (be32(data + (at - ofst) + 4) != 0)
			end = at + frame;
	return end;
}

static int walbuf_write(sqlite3_file *file, const void *data, int n, sqlite3_int64 ofst)
{
	struct walbuf_file *f = (struct walbuf_file *)file;
	sqlite3_int64 end;
	int rc;

	note_page_size(f, data, n, ofst);
	if (ofst == 0)
		f->appended = 0; /* a new header: the WAL starts again from its beginning */
	/*
	 * Only appends are gathered. A write below what was appended rewrites
	 * frames of the transaction (wal.c: walRewriteChecksums, after the commit
	 * frame, and spilled pages written again): it goes to the file at once,
	 * after what the buffer holds, so a commit is never left in the buffer.
	 */
	if (!f->page_size || ofst < f->appended) {
		if ((rc = walbuf_flush(f)) != SQLITE_OK)
			return rc;
		return f->real->pMethods->xWrite(f->real, data, n, ofst);
	}
	end = commit_frame_end(f, data, n, ofst);
	if (end > f->commit_end)
		f->commit_end = end;
	if (f->len && (ofst != f->off + (sqlite3_int64)f->len || f->len + (size_t)n > WALBUF_SIZE) &&
	    (rc = walbuf_flush(f)) != SQLITE_OK)
		return rc;
	f->appended = ofst + n;
	if ((size_t)n > WALBUF_SIZE) {
		if (ofst + n >= f->commit_end)
			f->commit_end = 0;
		return f->real->pMethods->xWrite(f->real, data, n, ofst);
	}
	if (!f->len)
		f->off = ofst;
	memcpy(f->buf + f->len, data, (size_t)n);
	f->len += (size_t)n;
	if (f->commit_end && f->off + (sqlite3_int64)f->len >= f->commit_end)
		return walbuf_flush(f);
	return SQLITE_OK;
}

static int walbuf_read(sqlite3_file *file, void *data, int n, sqlite3_int64 ofst)
{
	struct walbuf_file *f = (struct walbuf_file *)file;
	int rc;

	/* A page SQLite spilled in this transaction and reads back: from the file, written. */
	if (f->len && ofst < f->off + (sqlite3_int64)f->len && ofst + n > f->off &&
	    (rc = walbuf_flush(f)) != SQLITE_OK)
		return rc;
	return f->real->pMethods->xRead(f->real, data, n, ofst);
}

static int walbuf_close(sqlite3_file *file)
{
	struct walbuf_file *f = (struct walbuf_file *)file;
	int rc = walbuf_flush(f), close_rc = f->real->pMethods->xClose(f->real);

	sqlite3_free(f->buf);
	f->buf = NULL;
	return rc != SQLITE_OK ? rc : close_rc;
}

static int walbuf_truncate(sqlite3_file *file, sqlite3_int64 size)
{
	struct walbuf_file *f = (struct walbuf_file *)file;
	int rc = walbuf_flush(f);

	if (f->appended > size)
		f->appended = size;
	return rc != SQLITE_OK ? rc : f->real->pMethods->xTruncate(f->real, size);
}

static int walbuf_sync(sqlite3_file *file, int flags)
{
	struct walbuf_file *f = (struct walbuf_file *)file;
	int rc = walbuf_flush(f);

	return rc != SQLITE_OK ? rc : f->real->pMethods->xSync(f->real, flags);
}

static int walbuf_file_size(sqlite3_file *file, sqlite3_int64 *size)
{
	struct walbuf_file *f = (struct walbuf_file *)file;
	int rc = walbuf_flush(f);

	return rc != SQLITE_OK ? rc : f->real->pMethods->xFileSize(f->real, size);
}

static int walbuf_lock(sqlite3_file *file, int lock)
{
	struct walbuf_file *f = (struct walbuf_file *)file;

	return f->real->pMethods->xLock(f->real, lock);
}

static int walbuf_unlock(sqlite3_file *file, int lock)
{
	struct walbuf_file *f = (struct walbuf_file *)file;

	return f->real->pMethods->xUnlock(f->real, lock);
}

static int walbuf_check_reserved(sqlite3_file *file, int *out)
{
	struct walbuf_file *f = (struct walbuf_file *)file;

	return f->real->pMethods->xCheckReservedLock(f->real, out);
}

static int walbuf_file_control(sqlite3_file *file, int op, void *arg)
{
	struct walbuf_file *f = (struct walbuf_file *)file;
	int rc = walbuf_flush(f);

	return rc != SQLITE_OK ? rc : f->real->pMethods->xFileControl(f->real, op, arg);
}

static int walbuf_sector_size(sqlite3_file *file)
{
	struct walbuf_file *f = (struct walbuf_file *)file;

	return f->real->pMethods->xSectorSize(f->real);
}

static int walbuf_device_characteristics(sqlite3_file *file)
{
	struct walbuf_file *f = (struct walbuf_file *)file;

	return f->real->pMethods->xDeviceCharacteristics(f->real);
}

/* Version 1: a WAL file is never memory-mapped nor used for shared memory. */
static const sqlite3_io_methods walbuf_methods = {
	.iVersion = 1,
	.xClose = walbuf_close,
	.xRead = walbuf_read,
	.xWrite = walbuf_write,
	.xTruncate = walbuf_truncate,
	.xSync = walbuf_sync,
	.xFileSize = walbuf_file_size,
	.xLock = walbuf_lock,
	.xUnlock = walbuf_unlock,
	.xCheckReservedLock = walbuf_check_reserved,
	.xFileControl = walbuf_file_control,
	.xSectorSize = walbuf_sector_size,
	.xDeviceCharacteristics = walbuf_device_characteristics,
};

static int walbuf_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *file, int flags,
		       int *out_flags)
{
	sqlite3_vfs *real_vfs = vfs->pAppData;
	struct walbuf_file *f = (struct walbuf_file *)file;
	int rc;

	/* Every other file is the default VFS's own, in the same memory. */
	if (!(flags & SQLITE_OPEN_WAL))
		return real_vfs->xOpen(real_vfs, name, file, flags, out_flags);
	memset(f, 0, sizeof(*f));
	f->real = (sqlite3_file *)(f + 1);
	if (!(f->buf = sqlite3_malloc(WALBUF_SIZE)))
		return SQLITE_NOMEM;
	rc = real_vfs->xOpen(real_vfs, name, f->real, flags, out_flags);
	if (rc != SQLITE_OK) {
		sqlite3_free(f->buf);
		f->buf = NULL;
		return rc;
	}
	f->base.pMethods = &walbuf_methods;
	return SQLITE_OK;
}

static int walbuf_delete(sqlite3_vfs *vfs, const char *name, int sync_dir)
{
	sqlite3_vfs *r = vfs->pAppData;

	return r->xDelete(r, name, sync_dir);
}

static int walbuf_access(sqlite3_vfs *vfs, const char *name, int flags, int *out)
{
	sqlite3_vfs *r = vfs->pAppData;

	return r->xAccess(r, name, flags, out);
}

static int walbuf_full_pathname(sqlite3_vfs *vfs, const char *name, int n, char *out)
{
	sqlite3_vfs *r = vfs->pAppData;

	return r->xFullPathname(r, name, n, out);
}

static void *walbuf_dl_open(sqlite3_vfs *vfs, const char *name)
{
	sqlite3_vfs *r = vfs->pAppData;

	return r->xDlOpen(r, name);
}

static void walbuf_dl_error(sqlite3_vfs *vfs, int n, char *out)
{
	sqlite3_vfs *r = vfs->pAppData;

	r->xDlError(r, n, out);
}

static void (*walbuf_dl_sym(sqlite3_vfs *vfs, void *handle, const char *sym))(void)
{
	sqlite3_vfs *r = vfs->pAppData;

	return r->xDlSym(r, handle, sym);
}

static void walbuf_dl_close(sqlite3_vfs *vfs, void *handle)
{
	sqlite3_vfs *r = vfs->pAppData;

	r->xDlClose(r, handle);
}

static int walbuf_randomness(sqlite3_vfs *vfs, int n, char *out)
{
	sqlite3_vfs *r = vfs->pAppData;

	return r->xRandomness(r, n, out);
}

static int walbuf_sleep(sqlite3_vfs *vfs, int us)
{
	sqlite3_vfs *r = vfs->pAppData;

	return r->xSleep(r, us);
}

static int walbuf_current_time_int64(sqlite3_vfs *vfs, sqlite3_int64 *out)
{
	sqlite3_vfs *r = vfs->pAppData;

	return r->xCurrentTimeInt64(r, out);
}

static int walbuf_current_time(sqlite3_vfs *vfs, double *out)
{
	sqlite3_vfs *r = vfs->pAppData;

	return r->xCurrentTime(r, out);
}

static int walbuf_get_last_error(sqlite3_vfs *vfs, int n, char *out)
{
	sqlite3_vfs *r = vfs->pAppData;

	return r->xGetLastError ? r->xGetLastError(r, n, out) : 0;
}

const char *store_sql_walbuf_vfs(void)
{
	sqlite3_vfs *real_vfs;

	if (walbuf_vfs.zName)
		return WALBUF_VFS;
	real_vfs = sqlite3_vfs_find(NULL);
	if (!real_vfs || real_vfs->iVersion < 2 || !real_vfs->xCurrentTimeInt64 ||
	    !real_vfs->xDlOpen || !real_vfs->xDlError || !real_vfs->xDlSym || !real_vfs->xDlClose)
		return NULL;
	walbuf_vfs = (sqlite3_vfs){
		.iVersion = 2,
		.szOsFile = (int)sizeof(struct walbuf_file) + real_vfs->szOsFile,
		.mxPathname = real_vfs->mxPathname,
		.zName = WALBUF_VFS,
		.pAppData = real_vfs,
		.xOpen = walbuf_open,
		.xDelete = walbuf_delete,
		.xAccess = walbuf_access,
		.xFullPathname = walbuf_full_pathname,
		.xDlOpen = walbuf_dl_open,
		.xDlError = walbuf_dl_error,
		.xDlSym = walbuf_dl_sym,
		.xDlClose = walbuf_dl_close,
		.xRandomness = walbuf_randomness,
		.xSleep = walbuf_sleep,
		.xCurrentTime = walbuf_current_time,
		.xGetLastError = walbuf_get_last_error,
		.xCurrentTimeInt64 = walbuf_current_time_int64,
	};
	if (sqlite3_vfs_register(&walbuf_vfs, 0) != SQLITE_OK) {
		walbuf_vfs.zName = NULL;
		return NULL;
	}
	return WALBUF_VFS;
}
