/* SPDX-License-Identifier: ISC */
/* What the ledger and the generation records share: their files on disk and SQLite's errors. */
#include "store/sqlfile.h"

#include <errno.h>
#include <fcntl.h>
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

int store_make_db_file(const char *path, char *err, size_t err_size)
{
	struct stat st;
	int fd, ret = 0;

	fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK, 0600);
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
	if ((st.st_mode & 07777) != 0600) {
		if (fchmod(fd, 0600) < 0 || fstat(fd, &st) < 0) {
			ret = fail(err, err_size, -errno, "chmod %s: %s", path, strerror(errno));
			goto cleanup;
		}
		if ((st.st_mode & 07777) != 0600) {
			ret = fail(err, err_size, -EPERM, "%s: mode %o, not 0600", path,
				   st.st_mode & 07777);
			goto cleanup;
		}
	}
cleanup:
	close(fd);
	return ret;
}
