/* SPDX-License-Identifier: ISC */
/* Whether a file sakeyd reads or runs can be trusted: type, owner, mode, links, file system, parents. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "conf/conf.h"

/*
 * File systems whose storage this host does not alone control, refused for
 * secrets (illumos ipseckey refuses NFS; the rest have the same flaw):
 * - network: every read crosses the network (in clear for NFSv3, SMB1) and
 *   the server, not this host's modes, decides who else reads the file;
 * - cluster: other hosts mount the same blocks;
 * - FUSE (sshfs, gocryptfs, ...), Coda, vmhgfs, prl_fs: a process outside
 *   the kernel serves every read and sees the key;
 * - overlayfs: a view of other file systems; a lower layer (an image layer
 *   shared with other containers, a directory of the host) keeps its own
 *   copy of the file with its own owner and mode, and the upper layer may
 *   itself be any of the above (Documentation/filesystems/overlayfs.rst).
 * Magics from include/uapi/linux/magic.h, or the vendors' where Linux has none.
 */
static const struct {
	long f_type;
	const char *name;
	const char *why;
} untrusted_fs[] = {
#define NETWORK "a network file system: the server decides who reads the key"
#define CLUSTER "a cluster file system: other hosts read the same blocks"
#define USER "served by a user-space process, which sees the key"
	{ 0x6969, "nfs", NETWORK },
	{ 0x517B, "smb", NETWORK },
	{ (long)0xFE534D42, "smb2", NETWORK },
	{ (long)0xFF534D42, "cifs", NETWORK },
	{ 0x01021997, "9p", NETWORK },
	{ 0x5346414F, "afs", NETWORK },
	{ 0x6B414653, "kafs", NETWORK },
	{ 0x00C36400, "ceph", NETWORK },
	{ 0x564c, "ncp", NETWORK },
	{ 0x0BD00BD0, "lustre", CLUSTER },
	{ 0x01161970, "gfs2", CLUSTER },
	{ 0x7461636f, "ocfs2", CLUSTER },
	{ 0x47504653, "gpfs", CLUSTER },
	{ 0x013111A8, "ibrix", CLUSTER },
	{ 0x19830326, "fhgfs/beegfs", CLUSTER },
	{ 0x61636673, "acfs", CLUSTER },
	{ 0x20030528, "pvfs2/orangefs", CLUSTER },
	{ (long)0xAAD7AAEA, "panfs", CLUSTER },
	{ (long)0xBEEFDEAD, "snfs", CLUSTER },
	{ 0x65735546, "fuse", USER },
	{ 0x73757245, "coda", USER },
	{ (long)0xBACBACBC, "vmhgfs", USER },
	{ 0x7C7C6673, "prl_fs", USER },
	{ 0x794c7630, "overlayfs",
	  "a stack of other file systems: a lower layer keeps its own copy of the key with its "
	  "own owner and mode" },
#undef NETWORK
#undef CLUSTER
#undef USER
};

static int untrusted_fs_index(long f_type)
{
	/* statfs's f_type is a signed long on x86_64 but the magics are 32-bit values. */
	uint32_t t = (uint32_t)f_type;

	for (size_t i = 0; i < sizeof(untrusted_fs) / sizeof(untrusted_fs[0]); i++)
		if ((uint32_t)untrusted_fs[i].f_type == t)
			return (int)i;
	return -1;
}

const char *conf_fs_remote_name(long f_type)
{
	int i = untrusted_fs_index(f_type);

	return i < 0 ? NULL : untrusted_fs[i].name;
}

bool conf_fs_is_remote(long f_type)
{
	return conf_fs_remote_name(f_type) != NULL;
}

/* What each kind of file must be. */
static const struct rules {
	const char *noun;
	bool dir;	       /* a directory, not a regular file */
	mode_t forbidden;      /* permission bits refused */
	const char *chmod_fix; /* the chmod argument that clears them */
	bool root_may_own;     /* root as well as the daemon's euid */
	bool one_link;
	bool local_fs;
	bool executable;
	const char *type_fix;
} kinds[] = {
	[CONF_TRUST_CONFIG] = {
		.noun = "configuration file",
		.forbidden = 022,
		.chmod_fix = "go-w",
		.root_may_own = true,
		.type_fix = "give the path of the configuration file with -c",
	},
	[CONF_TRUST_PROGRAM] = {
		.noun = "alert_command",
		.forbidden = 022,
		.chmod_fix = "go-w",
		.root_may_own = true,
		.executable = true,
		.type_fix = "point alert_command at the program itself",
	},
	[CONF_TRUST_SECRET] = {
		.noun = "secret file",
		.forbidden = 077,
		.chmod_fix = "600",
		.one_link = true,
		.local_fs = true,
		.type_fix = "regenerate with: sactl genkey -o FILE and point secret_file at it",
	},
	[CONF_TRUST_STATE_DIR] = {
		.noun = "state_dir",
		.dir = true,
		.forbidden = 022,
		.chmod_fix = "go-w",
		.type_fix = "move it away (sakeyd creates the directory) or set state_dir to a "
			    "directory",
	},
};

/* Where a file was named: messages start "FILE:LINE: " and name the file unless FILE is it. */
struct where {
	const char *file;
	unsigned line;
	const char *path;
	const struct rules *r;
	char subject[PATH_MAX + 32];
};

static void where_init(struct where *w, const char *file, unsigned line, const char *path,
		       enum conf_trust_kind kind)
{
	w->file = file ? file : path;
	w->line = line;
	w->path = path;
	w->r = &kinds[kind];
	if (!strcmp(w->file, path))
		snprintf(w->subject, sizeof(w->subject), "%s", w->r->noun);
	else
		snprintf(w->subject, sizeof(w->subject), "%s %s", w->r->noun, path);
}

static const char *type_name(mode_t mode)
{
	return S_ISREG(mode)	? "a regular file"
	       : S_ISDIR(mode)	? "a directory"
	       : S_ISFIFO(mode) ? "a FIFO"
	       : S_ISSOCK(mode) ? "a socket"
	       : S_ISCHR(mode)	? "a character device"
	       : S_ISBLK(mode)	? "a block device"
	       : S_ISLNK(mode)	? "a symbolic link"
				: "not a file";
}

static bool owner_ok(uid_t owner, uid_t euid, bool root_may_own)
{
	return owner == euid || (root_may_own && owner == 0);
}

/* "root:" or "UID:", for chown. */
static const char *chown_arg(uid_t uid, char buf[32])
{
	if (uid == 0)
		return "root:";
	snprintf(buf, 32, "%lu:", (unsigned long)uid);
	return buf;
}

/* "root", "uid N" or "root or uid N": who may own a file. */
static const char *owners(uid_t euid, bool root_may_own, char buf[48])
{
	if (euid == 0)
		return "root";
	snprintf(buf, 48, "%suid %lu", root_may_own ? "root or " : "", (unsigned long)euid);
	return buf;
}

/* The checks of the file itself (st), each refusal reported. */
static int check_stat(const struct where *w, const struct stat *st, uid_t euid,
		      struct conf_diag *diag)
{
	const struct rules *r = w->r;
	char who[48], fix[32];
	int ret = 0;

	if (r->dir ? !S_ISDIR(st->st_mode) : !S_ISREG(st->st_mode)) {
		conf_diag_add(diag, w->file, w->line, "%s is not a %s (%s); %s", w->subject,
			      r->dir ? "directory" : "regular file", type_name(st->st_mode),
			      r->type_fix);
		return -EINVAL;
	}
	/*
	 * Another name for the same file (a hard link, perhaps in a directory
	 * with looser rights) is another way in that the checks here cannot see.
	 */
	if (r->one_link && st->st_nlink > 1) {
		conf_diag_add(diag, w->file, w->line,
			      "%s has %lu names (hard links): another name is another way to read "
			      "or replace it; fix: remove the other links (find / -xdev -samefile "
			      "%s) or regenerate with: sactl genkey -o FILE",
			      w->subject, (unsigned long)st->st_nlink, w->path);
		ret = -EPERM;
	}
	if (!owner_ok(st->st_uid, euid, r->root_may_own)) {
		conf_diag_add(diag, w->file, w->line,
			      "%s is owned by uid %lu, not by %s%s; fix: chown %s %s", w->subject,
			      (unsigned long)st->st_uid, owners(euid, r->root_may_own, who),
			      r->forbidden & 044 ? "" : ": its owner can change it",
			      chown_arg(r->root_may_own ? 0 : euid, fix), w->path);
		ret = -EPERM;
	}
	if (st->st_mode & r->forbidden) {
		conf_diag_add(diag, w->file, w->line,
			      "%s has mode %04o: group or others may %s it; fix: chmod %s %s",
			      w->subject, (unsigned)(st->st_mode & 07777),
			      r->forbidden & 044 ? "access" : "change", r->chmod_fix, w->path);
		ret = -EPERM;
	}
	return ret;
}

/*
 * Every directory from dir up to / must be owned by root or euid and not
 * writable by group or others, else someone else could rename what it
 * holds and put another file in its place (OpenSSH's safe_path, misc.c).
 * Unlike safe_path, a sticky directory (/tmp) passes: there only the owner
 * of an entry, of the directory or root may rename or remove it
 * (fs/namei.c: check_sticky), and the entry on the way down is checked in
 * turn (owned by root or euid as well). dir is a canonical path.
 */
static int check_dirs(const struct where *w, const char *dir, uid_t euid, struct conf_diag *diag)
{
	char buf[PATH_MAX], who[48];
	struct stat st;
	int ret = 0;

	if (strlen(dir) >= sizeof(buf))
		return -ENAMETOOLONG;
	strcpy(buf, dir);
	for (;;) {
		char *slash;

		if (lstat(buf, &st)) {
			ret = -errno;
			conf_diag_add(diag, w->file, w->line, "cannot check directory %s (above %s): %s",
				      buf, w->path, strerror(errno));
			return ret;
		}
		if (!S_ISDIR(st.st_mode)) {
			/* realpath() gave a directory: it was replaced since. */
			conf_diag_add(diag, w->file, w->line,
				      "%s changed while it was checked (%s is no longer a directory); "
				      "check again",
				      w->subject, buf);
			return -EAGAIN;
		}
		if (!owner_ok(st.st_uid, euid, true)) {
			conf_diag_add(diag, w->file, w->line,
				      "directory %s (above %s) is owned by uid %lu, who could replace "
				      "the %s; fix: chown root: %s (directories up to / must be owned "
				      "by %s)",
				      buf, w->path, (unsigned long)st.st_uid, w->r->noun, buf,
				      owners(euid, true, who));
			ret = -EPERM;
		}
		if ((st.st_mode & 022) && !(st.st_mode & S_ISVTX)) {
			conf_diag_add(diag, w->file, w->line,
				      "directory %s (above %s) has mode %04o: group or others could "
				      "replace the %s; fix: chmod go-w %s",
				      buf, w->path, (unsigned)(st.st_mode & 07777), w->r->noun, buf);
			ret = -EPERM;
		}
		if (!strcmp(buf, "/"))
			break;
		slash = strrchr(buf, '/');
		if (slash == buf)
			slash[1] = '\0';
		else
			*slash = '\0';
	}
	return ret;
}

/*
 * A directory of a load already through check_parents: path's directory as
 * written (dir) and its realpath() (real), whose directories up to / passed
 * check_dirs for euid. Failures are never kept: each file under a bad
 * directory reports it.
 */
struct conf_trust_dir {
	char *dir, *real;
	uid_t euid;
};

void conf_trust_memo_fini(struct conf_trust_memo *m)
{
	for (size_t i = 0; i < m->n; i++) {
		free(m->dir[i].dir);
		free(m->dir[i].real);
	}
	free(m->dir);
	memset(m, 0, sizeof(*m));
}

/* path's directory as written (up to its last slash, "/" for a file in /); false if none. */
static bool dir_of(const char *path, char out[PATH_MAX])
{
	const char *slash = strrchr(path, '/');
	size_t len = slash ? (size_t)(slash - path) : 0;

	if (!slash || len >= PATH_MAX)
		return false;
	if (len == 0)
		len = 1;
	memcpy(out, path, len);
	out[len] = '\0';
	return true;
}

static const struct conf_trust_dir *memo_find(const struct conf_trust_memo *m, const char *dir,
					      uid_t euid)
{
	for (size_t i = 0; m && i < m->n; i++)
		if (m->dir[i].euid == euid && !strcmp(m->dir[i].dir, dir))
			return &m->dir[i];
	return NULL;
}

/* Best effort: a memo that cannot grow only costs the next file the whole walk. */
static void memo_add(struct conf_trust_memo *m, const char *dir, const char *real, uid_t euid)
{
	struct conf_trust_dir *n;

	if (!m || m->n >= CONF_TRUST_MEMO_MAX || memo_find(m, dir, euid))
		return;
	if (!(n = realloc(m->dir, (m->n + 1) * sizeof(*n))))
		return;
	m->dir = n;
	n = &m->dir[m->n];
	n->dir = strdup(dir);
	n->real = strdup(real);
	n->euid = euid;
	if (!n->dir || !n->real) {
		free(n->dir);
		free(n->real);
		return;
	}
	m->n++;
}

/*
 * With a directory of the memo: its real path + the file's name must still
 * name st (the same test as check_parents' after realpath()); then its
 * directories need no second walk. False: take the whole walk.
 */
static bool memo_names(const struct conf_trust_memo *m, const struct where *w,
		       const struct stat *st, uid_t euid)
{
	char dir[PATH_MAX], real[PATH_MAX];
	const struct conf_trust_dir *d;
	const char *base = strrchr(w->path, '/');
	struct stat now;
	int n;

	if (!m || !dir_of(w->path, dir) || !(d = memo_find(m, dir, euid)))
		return false;
	n = snprintf(real, sizeof(real), "%s/%s", strcmp(d->real, "/") ? d->real : "", base + 1);
	return n > 0 && (size_t)n < sizeof(real) && !lstat(real, &now) &&
	       now.st_dev == st->st_dev && now.st_ino == st->st_ino;
}

/* The parents of path, whose file is st: through realpath(), which must still name st. */
static int check_parents(const struct where *w, const struct stat *st, uid_t euid,
			 struct conf_trust_memo *m, struct conf_diag *diag)
{
	char real[PATH_MAX], dir[PATH_MAX];
	struct stat now;
	char *slash;
	bool keep;
	int ret;

	if (memo_names(m, w, st, euid))
		return 0;
	if (!realpath(w->path, real)) {
		ret = -errno;
		conf_diag_add(diag, w->file, w->line, "cannot resolve %s: %s", w->path,
			      strerror(-ret));
		return ret;
	}
	if (lstat(real, &now) || now.st_dev != st->st_dev || now.st_ino != st->st_ino) {
		conf_diag_add(diag, w->file, w->line,
			      "%s changed while it was checked (%s is another file now); check again",
			      w->subject, real);
		return -EAGAIN;
	}
	slash = strrchr(real, '/');
	/*
	 * Remembered only when the file's name is its real one: one reached
	 * through a symbolic link as its last component (conf_trust_path) has
	 * its parents elsewhere than the directory it is named in.
	 */
	keep = m && dir_of(w->path, dir) && !strcmp(strrchr(w->path, '/') + 1, slash + 1);
	if (slash == real)
		slash[1] = '\0';
	else
		*slash = '\0';
	ret = check_dirs(w, real, euid, diag);
	if (!ret && keep)
		memo_add(m, dir, real, euid);
	return ret;
}

static int check(const struct where *w, int fd, const struct stat *st, uid_t euid,
		 struct conf_trust_memo *m, struct conf_diag *diag)
{
	const struct rules *r = w->r;
	int ret = check_stat(w, st, euid, diag), err;

	if (ret == -EINVAL)
		return ret; /* a wrong type: nothing else applies */
	if (r->executable && faccessat(AT_FDCWD, w->path, X_OK, AT_EACCESS)) {
		conf_diag_add(diag, w->file, w->line, "%s is not executable (mode %04o); fix: chmod "
						      "755 %s",
			      w->subject, (unsigned)(st->st_mode & 07777), w->path);
		ret = ret ? ret : -EACCES;
	}
	if (r->local_fs) {
		struct statfs sfs;
		int i;

		if (fd >= 0 ? fstatfs(fd, &sfs) : statfs(w->path, &sfs)) {
			err = -errno;
			conf_diag_add(diag, w->file, w->line, "cannot statfs the %s: %s", r->noun,
				      strerror(-err));
			return err;
		}
		i = untrusted_fs_index((long)sfs.f_type);
		if (i >= 0) {
			conf_diag_add(diag, w->file, w->line,
				      "%s is on %s, %s; move it to a local file system (ext4, xfs, "
				      "btrfs, tmpfs)",
				      w->subject, untrusted_fs[i].name, untrusted_fs[i].why);
			ret = ret ? ret : -EPERM;
		}
	}
	err = check_parents(w, st, euid, m, diag);
	return ret ? ret : err;
}

int conf_trust_fd(int fd, const char *path, enum conf_trust_kind kind, uid_t euid,
		  const char *file, unsigned line, struct conf_diag *diag)
{
	return conf_trust_fd_memo(fd, path, kind, euid, file, line, NULL, diag);
}

int conf_trust_fd_memo(int fd, const char *path, enum conf_trust_kind kind, uid_t euid,
		       const char *file, unsigned line, struct conf_trust_memo *memo,
		       struct conf_diag *diag)
{
	struct where w;
	struct stat st;
	int ret;

	where_init(&w, file, line, path, kind);
	if (fstat(fd, &st)) {
		ret = -errno;
		conf_diag_add(diag, w.file, w.line, "cannot stat the %s: %s", w.r->noun,
			      strerror(-ret));
		return ret;
	}
	return check(&w, fd, &st, euid, memo, diag);
}

int conf_trust_path(const char *path, enum conf_trust_kind kind, uid_t euid, const char *file,
		    unsigned line, struct conf_diag *diag)
{
	struct where w;
	struct stat st;
	int ret;

	where_init(&w, file, line, path, kind);
	if (stat(path, &st)) {
		ret = -errno;
		if (ret == -ENOENT)
			conf_diag_add(diag, w.file, w.line, "%s does not exist; %s", w.subject,
				      kind == CONF_TRUST_PROGRAM ?
					      "install the program or remove the alert_command line" :
					      "give an existing path");
		else
			conf_diag_add(diag, w.file, w.line, "cannot check the %s: %s", w.subject,
				      strerror(-ret));
		return ret;
	}
	return check(&w, -1, &st, euid, NULL, diag);
}

/*
 * A missing state_dir is created 0700 by the daemon (store/sqlfile.c:
 * store_make_dir): then its parent and the directories above must be safe.
 */
static int check_state_dir(const struct config *cfg, uid_t euid, struct conf_diag *diag)
{
	const char *dir = cfg->daemon.state_dir;
	unsigned line = cfg->daemon.state_dir_line;
	char parent[PATH_MAX], real[PATH_MAX];
	struct where w;
	struct stat st;
	char *slash;

	if (!stat(dir, &st) || errno != ENOENT)
		return conf_trust_path(dir, CONF_TRUST_STATE_DIR, euid, cfg->path, line, diag);
	if (strlen(dir) >= sizeof(parent))
		return -ENAMETOOLONG;
	strcpy(parent, dir);
	slash = strrchr(parent, '/');
	if (!slash)
		return 0; /* not absolute: the parser refused it */
	if (slash == parent)
		slash[1] = '\0';
	else
		*slash = '\0';
	if (!realpath(parent, real))
		return 0; /* the daemon's mkdir will say what is missing */
	where_init(&w, cfg->path, line, dir, CONF_TRUST_STATE_DIR);
	return check_dirs(&w, real, euid, diag);
}

int conf_check_files(const struct config *cfg, uid_t euid, struct conf_diag *diag)
{
	int ret = 0, err;

	if (cfg->daemon.alert_command[0])
		ret = conf_trust_path(cfg->daemon.alert_command, CONF_TRUST_PROGRAM, euid, cfg->path,
				      cfg->daemon.alert_command_line, diag);
	err = check_state_dir(cfg, euid, diag);
	return ret ? ret : err;
}
