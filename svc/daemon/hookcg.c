/* SPDX-License-Identifier: ISC */
/* alert_command hooks each in a cgroup of its own, where systemd delegates one to the daemon. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/sched.h> /* struct clone_args, CLONE_INTO_CGROUP */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "svc/base/log.h"
#include "svc/daemon/hookcg.h"

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

/* How often a released cgroup is tried again until it can be removed (ms). */
#define RETRY_MS 50
/* Then say so, once per cgroup (ms). */
#define STUCK_MS 10000

/* A hook's cgroup: running (fd open) or released, waiting to be empty to go. */
struct cgent {
	unsigned id;
	int fd; /* the directory; -1 once released */
	unsigned tries;
};

struct hookcg {
	uv_loop_t *loop;
	int dir; /* the delegated cgroup */
	char path[PATH_MAX];
	bool active, pids;
	bool clone3; /* CLONE_INTO_CGROUP works; else fork, and the child joins before exec */
	unsigned next_id;
	struct cgent *ents;
	size_t nents, cap;
	uv_timer_t retry;
	bool retry_init;
};

/* --- parsing ------------------------------------------------------------- */

/* Whether the absolute path p (n bytes) holds an empty, "." or ".." component (but "/" alone). */
static bool bad_components(const char *p, size_t n)
{
	size_t i = 1, start;

	if (n == 1)
		return false;
	while (i <= n) {
		start = i;
		while (i < n && p[i] != '/')
			i++;
		if (i == start || (i - start == 1 && p[start] == '.') ||
		    (i - start == 2 && p[start] == '.' && p[start + 1] == '.'))
			return true;
		i++;
	}
	return false;
}

int hookcg_parse_cgroup(const char *text, size_t len, char *path, size_t size)
{
	const char *line = text, *end = text + len;
	int ret = -ENOENT;

	while (line < end) {
		const char *nl = memchr(line, '\n', (size_t)(end - line));
		const char *eol = nl ? nl : end, *c1, *c2;
		size_t n;

		if (eol == line) { /* an empty line: the end, or nothing */
			line = eol + 1;
			continue;
		}
		c1 = memchr(line, ':', (size_t)(eol - line));
		c2 = c1 ? memchr(c1 + 1, ':', (size_t)(eol - c1 - 1)) : NULL;
		if (!c2 || memchr(line, '\0', (size_t)(eol - line)))
			return -EINVAL;
		/* "0::PATH": hierarchy 0, no controller names (cgroups(7)). */
		if (c1 - line == 1 && line[0] == '0' && c2 == c1 + 1) {
			n = (size_t)(eol - c2 - 1);
			if (!n || c2[1] != '/' || bad_components(c2 + 1, n))
				return -EINVAL;
			if (n >= size)
				return -ENAMETOOLONG;
			if (ret == 0)
				return -EINVAL; /* two of them: which? */
			memcpy(path, c2 + 1, n);
			path[n] = '\0';
			ret = 0;
		}
		line = eol + 1;
	}
	return ret;
}

/* Decode mountinfo's octal escapes (\040 \011 \012 \134) of field [s, s+n) into out; -errno. */
static int unescape(const char *s, size_t n, char *out, size_t size)
{
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		if (c == '\\') {
			if (i + 3 >= n)
				return -EINVAL;
			if (s[i + 1] < '0' || s[i + 1] > '3' || s[i + 2] < '0' || s[i + 2] > '7' ||
			    s[i + 3] < '0' || s[i + 3] > '7')
				return -EINVAL;
			c = (char)((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0'));
			if (!c)
				return -EINVAL;
			i += 3;
		}
		if (o + 1 >= size)
			return -ENAMETOOLONG;
		out[o++] = c;
	}
	out[o] = '\0';
	return 0;
}

/* The n space-separated fields of [line, eol) into f/flen; how many there were (at most max). */
static size_t split(const char *line, const char *eol, const char **f, size_t *flen, size_t max)
{
	size_t n = 0;

	while (line < eol && n < max) {
		const char *sp;

		while (line < eol && *line == ' ')
			line++;
		if (line == eol)
			break;
		sp = memchr(line, ' ', (size_t)(eol - line));
		if (!sp)
			sp = eol;
		f[n] = line;
		flen[n++] = (size_t)(sp - line);
		line = sp;
	}
	return n;
}

/* Whether root (a cgroup path) holds cgpath: equal, "/", or a prefix up to a '/'. */
static bool holds(const char *root, const char *cgpath)
{
	size_t n = strlen(root);

	if (!strcmp(root, "/"))
		return true;
	return !strncmp(root, cgpath, n) && (cgpath[n] == '\0' || cgpath[n] == '/');
}

int hookcg_parse_mountinfo(const char *text, size_t len, const char *cgpath, char *dir,
			   size_t size)
{
	const char *line = text, *end = text + len;
	char best_mnt[PATH_MAX], root[PATH_MAX], mnt[PATH_MAX];
	size_t best_len = 0;
	bool found = false;
	int ret;

	if (cgpath[0] != '/')
		return -EINVAL;
	while (line < end) {
		const char *nl = memchr(line, '\n', (size_t)(end - line));
		const char *eol = nl ? nl : end, *f[64];
		size_t flen[64], n, sep;

		if (eol == line) {
			line = eol + 1;
			continue;
		}
		if (memchr(line, '\0', (size_t)(eol - line)))
			return -EINVAL;
		/* ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER (proc(5)) */
		n = split(line, eol, f, flen, 64);
		for (sep = 6; sep < n; sep++)
			if (flen[sep] == 1 && f[sep][0] == '-')
				break;
		if (n < 6 || sep + 1 >= n)
			return -EINVAL;
		line = eol + 1;
		if (flen[sep + 1] != 7 || memcmp(f[sep + 1], "cgroup2", 7))
			continue;
		ret = unescape(f[3], flen[3], root, sizeof(root));
		if (!ret)
			ret = unescape(f[4], flen[4], mnt, sizeof(mnt));
		if (ret)
			return ret;
		if (root[0] != '/' || mnt[0] != '/' || bad_components(root, strlen(root)) ||
		    bad_components(mnt, strlen(mnt)))
			return -EINVAL;
		if (!holds(root, cgpath))
			continue;
		/* The longest root wins; the same root mounted twice: the last (it covers the first). */
		if (!found || strlen(root) >= best_len) {
			const char *rest = strcmp(root, "/") ? cgpath + strlen(root) : cgpath;
			int w = snprintf(best_mnt, sizeof(best_mnt), "%s%s",
					 strcmp(mnt, "/") ? mnt : "", rest);

			if (w < 0 || (size_t)w >= sizeof(best_mnt))
				return -ENAMETOOLONG;
			if (!best_mnt[0])
				snprintf(best_mnt, sizeof(best_mnt), "/");
			best_len = strlen(root);
			found = true;
		}
	}
	if (!found)
		return -ENOENT;
	if (strlen(best_mnt) >= size)
		return -ENAMETOOLONG;
	snprintf(dir, size, "%s", best_mnt);
	return 0;
}

/* --- files of a cgroup --------------------------------------------------- */

/* Write text to dir/name; 0 or -errno. */
static int write_at(int dir, const char *name, const char *text)
{
	size_t len = strlen(text);
	ssize_t n;
	int fd = openat(dir, name, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);

	if (fd < 0)
		return -errno;
	n = write(fd, text, len);
	if (n < 0) {
		n = -errno;
		close(fd);
		return (int)n;
	}
	close(fd);
	return (size_t)n == len ? 0 : -EIO;
}

/* Read dir/name (at most size - 1 bytes) into buf, NUL-terminated; its length or -errno. */
static ssize_t read_at(int dir, const char *name, char *buf, size_t size)
{
	size_t len = 0;
	int fd = openat(dir, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);

	if (fd < 0)
		return -errno;
	while (len + 1 < size) {
		ssize_t n = read(fd, buf + len, size - 1 - len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			n = -errno;
			close(fd);
			return n;
		}
		if (!n)
			break;
		len += (size_t)n;
	}
	close(fd);
	buf[len] = '\0';
	return (ssize_t)len;
}

/* Whether the word w is in the space-separated list. */
static bool has_word(const char *list, const char *w)
{
	size_t n = strlen(w);

	for (const char *p = list; (p = strstr(p, w)); p += n)
		if ((p == list || p[-1] == ' ') && (p[n] == ' ' || p[n] == '\n' || !p[n]))
			return true;
	return false;
}

/*
 * SIGKILL everything in the cgroup at fd but main; how many there were.
 * cgroup.kill (Linux 5.14) kills the whole cgroup at once, forks in flight
 * included (kernel/cgroup/cgroup.c: cgroup_kill). Before it, the cgroup is
 * frozen first (cgroup.freeze, 5.2) so that no member reaps another while
 * its pid is read and killed, then every pid of cgroup.procs: a frozen task
 * still dies of SIGKILL. What forks meanwhile goes at the next try
 * (hookcg_release retries until rmdir succeeds).
 */
static unsigned kill_cgroup(int fd, pid_t main)
{
	char procs[16384];
	unsigned others = 0;
	ssize_t n = read_at(fd, "cgroup.procs", procs, sizeof(procs));

	for (char *p = procs, *e; n > 0 && *p; p = e) {
		long pid = strtol(p, &e, 10);

		if (e == p)
			break;
		if (pid > 0 && pid != main)
			others++;
	}
	if (!write_at(fd, "cgroup.kill", "1"))
		return others;
	write_at(fd, "cgroup.freeze", "1");
	n = read_at(fd, "cgroup.procs", procs, sizeof(procs));
	for (char *p = procs, *e; n > 0 && *p; p = e) {
		long pid = strtol(p, &e, 10);

		if (e == p)
			break;
		if (pid > 0 && pid != main)
			kill((pid_t)pid, SIGKILL);
	}
	return others;
}

/* --- set-up -------------------------------------------------------------- */

static struct cgent *find(struct hookcg *hc, unsigned id)
{
	for (size_t i = 0; i < hc->nents; i++)
		if (hc->ents[i].id == id)
			return &hc->ents[i];
	return NULL;
}

static struct cgent *add(struct hookcg *hc, unsigned id, int fd)
{
	if (hc->nents == hc->cap) {
		size_t cap = hc->cap ? hc->cap * 2 : 8;
		struct cgent *e = realloc(hc->ents, cap * sizeof(*e));

		if (!e)
			return NULL;
		hc->ents = e;
		hc->cap = cap;
	}
	hc->ents[hc->nents] = (struct cgent){ .id = id, .fd = fd };
	return &hc->ents[hc->nents++];
}

static void retry_cb(uv_timer_t *t);

/* Remove the released cgroups that are empty; the others are killed again. */
static void remove_released(struct hookcg *hc)
{
	for (size_t i = 0; i < hc->nents;) {
		struct cgent *e = &hc->ents[i];
		char name[32];
		int fd;

		if (e->fd >= 0) {
			i++;
			continue;
		}
		snprintf(name, sizeof(name), HOOKCG_PREFIX "%u", e->id);
		/* Empty once every task left it (cgroup.events "populated 0"): else EBUSY. */
		if (!unlinkat(hc->dir, name, AT_REMOVEDIR) || errno == ENOENT) {
			hc->ents[i] = hc->ents[--hc->nents];
			continue;
		}
		if (errno != EBUSY) {
			log_err("%s/%s: cannot remove it: %s; left in place", hc->path, name,
				strerror(errno));
			hc->ents[i] = hc->ents[--hc->nents];
			continue;
		}
		fd = openat(hc->dir, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd >= 0) {
			kill_cgroup(fd, 0);
			close(fd);
		}
		if (++e->tries == STUCK_MS / RETRY_MS)
			log_warn("%s/%s: still not empty %d s after it was killed; trying on", hc->path,
				 name, STUCK_MS / 1000);
		i++;
	}
	if (hc->retry_init && !uv_is_closing((uv_handle_t *)&hc->retry)) {
		bool waiting = false;

		for (size_t i = 0; i < hc->nents; i++)
			waiting |= hc->ents[i].fd < 0;
		if (waiting && !uv_is_active((uv_handle_t *)&hc->retry))
			uv_timer_start(&hc->retry, retry_cb, RETRY_MS, 0);
	}
}

static void retry_cb(uv_timer_t *t)
{
	remove_released(t->data);
}

/* What a crashed earlier run left: its hook cgroups, killed and queued for removal. */
static void clear_leftovers(struct hookcg *hc)
{
	int fd = openat(hc->dir, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct dirent *de;
	unsigned found = 0;
	DIR *d;

	d = fd >= 0 ? fdopendir(fd) : NULL;
	if (!d) {
		if (fd >= 0)
			close(fd);
		return;
	}
	while ((de = readdir(d))) {
		const char *num = de->d_name + strlen(HOOKCG_PREFIX);
		char *end;
		unsigned long id;
		int cg;

		if (strncmp(de->d_name, HOOKCG_PREFIX, strlen(HOOKCG_PREFIX)) || de->d_type != DT_DIR)
			continue;
		id = strtoul(num, &end, 10);
		if (*end || end == num || id > UINT_MAX || find(hc, (unsigned)id))
			continue;
		cg = openat(hc->dir, de->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (cg >= 0) {
			kill_cgroup(cg, 0);
			close(cg);
		}
		if (add(hc, (unsigned)id, -1))
			found++;
		if (id >= hc->next_id)
			hc->next_id = (unsigned)id + 1;
	}
	closedir(d);
	if (found)
		log_info("alert_command: %u cgroup(s) of an earlier run's hooks in %s: killed, "
			 "removed once empty",
			 found, hc->path);
	remove_released(hc);
}

/* Whether the cgroup at fd carries systemd's delegation mark. */
static bool delegated(int fd)
{
	/* user.* first: trusted.* is readable only with CAP_SYS_ADMIN, which the unit drops. */
	static const char *const names[] = { "user.delegate", "trusted.delegate" };
	char value[8];

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		ssize_t n = fgetxattr(fd, names[i], value, sizeof(value));

		if (n == 1 && value[0] == '1')
			return true;
	}
	return false;
}

/* Read a /proc/self file into buf; its length or -errno. */
static ssize_t read_proc(const char *path, char *buf, size_t size)
{
	return read_at(AT_FDCWD, path, buf, size);
}

/* The set-up; 0, or -errno with why (what to tell the operator) filled. */
static int setup(struct hookcg *hc, char *why, size_t size)
{
	char text[65536], cgpath[PATH_MAX], controllers[512], leaf[PATH_MAX];
	ssize_t n;
	int ret;

	n = read_proc("/proc/self/cgroup", text, sizeof(text));
	ret = n < 0 ? (int)n : hookcg_parse_cgroup(text, (size_t)n, cgpath, sizeof(cgpath));
	if (ret) {
		snprintf(why, size, "%s", ret == -ENOENT ? "no cgroup v2 (cgroup v1 only)" :
				       "/proc/self/cgroup: cannot read it");
		return ret;
	}
	n = read_proc("/proc/self/mountinfo", text, sizeof(text));
	ret = n < 0 ? (int)n : hookcg_parse_mountinfo(text, (size_t)n, cgpath, hc->path,
							 sizeof(hc->path));
	if (ret) {
		snprintf(why, size, "cgroup %s: %s", cgpath,
			 ret == -ENOENT ? "no cgroup2 file system mounted that holds it" :
					  "/proc/self/mountinfo: cannot read it");
		return ret;
	}
	hc->dir = open(hc->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (hc->dir < 0) {
		ret = -errno;
		snprintf(why, size, "%s: %s", hc->path, strerror(-ret));
		return ret;
	}
	if (!delegated(hc->dir)) {
		snprintf(why, size, "cgroup %s not delegated (no Delegate= in the unit, or no systemd)",
			 hc->path);
		return -EPERM;
	}
	/* cgroup v2 has no internal processes (cgroups(7)): the daemon first moves to a leaf. */
	if (mkdirat(hc->dir, HOOKCG_DAEMON_LEAF, 0755) && errno != EEXIST) {
		ret = -errno;
		snprintf(why, size,
			 "%s/%s: %s (read-only? ProtectControlGroups=yes, or not in ReadWritePaths=)",
			 hc->path, HOOKCG_DAEMON_LEAF, strerror(-ret));
		return ret;
	}
	snprintf(leaf, sizeof(leaf), "%s/cgroup.procs", HOOKCG_DAEMON_LEAF);
	ret = write_at(hc->dir, leaf, "0");
	if (ret) {
		snprintf(why, size, "%s/%s: cannot move the daemon there: %s", hc->path, leaf,
			 strerror(-ret));
		return ret;
	}
	/*
	 * clone3 may be refused: systemd's RestrictNamespaces= makes it ENOSYS
	 * (src/shared/seccomp-util.c: seccomp_restrict_namespaces, "we cannot
	 * filter on individual flags to clone3()"). With no arguments the
	 * kernel says EINVAL (kernel/fork.c: copy_clone_args_from_user).
	 */
	hc->clone3 = !(syscall(SYS_clone3, NULL, 0) < 0 && errno == ENOSYS);
	n = read_at(hc->dir, "cgroup.controllers", controllers, sizeof(controllers));
	if (n > 0 && has_word(controllers, "pids")) {
		ret = write_at(hc->dir, "cgroup.subtree_control", "+pids");
		hc->pids = !ret;
		if (ret)
			log_warn("%s/cgroup.subtree_control: +pids: %s: hooks run without pids.max "
				 "(another process in %s?)",
				 hc->path, strerror(-ret), hc->path);
	}
	return 0;
}

struct hookcg *hookcg_new(uv_loop_t *loop)
{
	struct hookcg *hc = calloc(1, sizeof(*hc));
	char why[2 * PATH_MAX + 256];
	int ret;

	if (!hc) {
		log_err("out of memory: alert_command containment by the subreaper's sweep only");
		return NULL;
	}
	hc->loop = loop;
	hc->dir = -1;
	ret = setup(hc, why, sizeof(why));
	if (ret) {
		log_info("alert_command containment: subreaper and /proc sweep (%s)", why);
		if (hc->dir >= 0)
			close(hc->dir);
		free(hc);
		return NULL;
	}
	uv_timer_init(loop, &hc->retry);
	hc->retry.data = hc;
	hc->retry_init = true;
	hc->active = true;
	hc->next_id = 1;
	if (hc->pids)
		snprintf(why, sizeof(why), "pids.max %d", HOOKCG_PIDS_MAX);
	else
		snprintf(why, sizeof(why), "no pids controller");
	log_info("alert_command containment: cgroup %s/" HOOKCG_PREFIX "N per hook, %s, "
		 "started %s (daemon in %s/" HOOKCG_DAEMON_LEAF ")",
		 hc->path, why,
		 hc->clone3 ? "in it by clone3" : "by fork, joining it before exec (clone3 refused)",
		 hc->path);
	clear_leftovers(hc);
	return hc;
}

bool hookcg_active(const struct hookcg *hc)
{
	return hc && hc->active;
}

/* --- running a hook ------------------------------------------------------ */

struct child_args {
	const char *path;
	char *const *argv, *const *envp;
	int err;   /* the write end of the pipe that reports exec's errno */
	int procs; /* the hook cgroup's cgroup.procs to join first (fork), or -1 (clone3) */
};

/*
 * The child, a copy of the daemon (fork-like clone3): only async-signal-safe
 * calls until execve (signal-safety(7)). Every signal was blocked by the
 * parent around the clone, so no handler of the daemon runs here.
 */
static _Noreturn void child(const struct child_args *c)
{
	struct sigaction dfl;
	sigset_t none;
	int e, fd;

	/* Forked: into the hook's cgroup before anything of the hook can run. */
	if (c->procs >= 0 && write(c->procs, "0", 1) != 1)
		goto fail;
	memset(&dfl, 0, sizeof(dfl));
	dfl.sa_handler = SIG_DFL;
	for (int s = 1; s < NSIG; s++)
		sigaction(s, &dfl, NULL); /* SIGKILL, SIGSTOP, glibc's own: refused, harmless */
	fd = open("/dev/null", O_RDONLY);
	if (fd < 0 || dup2(fd, STDIN_FILENO) < 0 || dup2(STDERR_FILENO, STDOUT_FILENO) < 0)
		goto fail;
	if (fd != STDIN_FILENO)
		close(fd);
	/* Nothing the daemon holds reaches the command; the error pipe closes on exec too. */
	if (syscall(SYS_close_range, STDERR_FILENO + 1, ~0U, CLOSE_RANGE_CLOEXEC)) {
		if (c->err > STDERR_FILENO + 1)
			syscall(SYS_close_range, STDERR_FILENO + 1, c->err - 1, 0);
		syscall(SYS_close_range, c->err + 1, ~0U, 0);
	}
	if (chdir("/") || setsid() < 0)
		goto fail;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	execve(c->path, c->argv, c->envp);
fail:
	e = errno;
	while (write(c->err, &e, sizeof(e)) < 0 && errno == EINTR)
		;
	_exit(127);
}

/* Give up the cgroups for good after err (one line), if it cannot get better. */
static int clone_failed(struct hookcg *hc, int err)
{
	if (err == EPERM || err == EINVAL || err == EOPNOTSUPP) {
		hc->active = false;
		log_err("alert_command: %s: %s: containment by the subreaper and /proc sweep from "
			"now on",
			hc->clone3 ? "clone3(CLONE_INTO_CGROUP)" : "fork", strerror(err));
	} else {
		log_err("alert_command: %s: %s: this hook runs uncontained (subreaper and /proc "
			"sweep)",
			hc->clone3 ? "clone3(CLONE_INTO_CGROUP)" : "fork", strerror(err));
	}
	return -EAGAIN;
}

/*
 * A child that runs c, in the cgroup at fd from its first instruction
 * (clone3), or joining it before exec (fork: where clone3 is refused, the
 * next best; the hook's own code still never runs outside). The pid, or
 * -errno. Every signal is blocked around it: no handler of the daemon runs
 * in the child before child() has reset them.
 */
static long start_child(struct hookcg *hc, int fd, struct child_args *c)
{
	struct clone_args args;
	sigset_t all, old;
	long pid;
	int err;

	sigfillset(&all);
	if (hc->clone3) {
		memset(&args, 0, sizeof(args));
		args.flags = CLONE_INTO_CGROUP;
		args.exit_signal = SIGCHLD;
		args.cgroup = (uint64_t)fd;
		c->procs = -1;
		pthread_sigmask(SIG_SETMASK, &all, &old);
		pid = syscall(SYS_clone3, &args, sizeof(args));
		if (pid == 0)
			child(c);
		err = errno;
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		if (pid >= 0 || err != ENOSYS)
			return pid >= 0 ? pid : -err;
		/* Refused since the probe (a seccomp filter added later): fork from now on. */
		hc->clone3 = false;
		log_warn("alert_command: clone3: %s: hooks are forked and join their cgroup "
			 "before exec from now on",
			 strerror(err));
	}
	c->procs = openat(fd, "cgroup.procs", O_WRONLY | O_CLOEXEC);
	if (c->procs < 0)
		return -errno;
	pthread_sigmask(SIG_SETMASK, &all, &old);
	pid = fork();
	if (pid == 0)
		child(c);
	err = errno;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	close(c->procs);
	return pid >= 0 ? pid : -err;
}

int hookcg_spawn(struct hookcg *hc, const char *path, char *const argv[], char *const envp[],
		 pid_t *pid, unsigned *cg)
{
	struct child_args c = { .path = path, .argv = argv, .envp = envp };
	char name[32], max[16];
	int fd, pipefd[2], err = 0, ret;
	unsigned id;
	ssize_t n;
	long child_pid;

	/* A name that a leftover still holds (being removed) is skipped. */
	for (int tries = 0;; tries++) {
		id = hc->next_id++;
		if (!id)
			id = hc->next_id++;
		snprintf(name, sizeof(name), HOOKCG_PREFIX "%u", id);
		if (!find(hc, id) && !mkdirat(hc->dir, name, 0755))
			break;
		if ((find(hc, id) || errno == EEXIST) && tries < 16)
			continue;
		log_err("alert_command: %s/%s: %s: this hook runs uncontained (subreaper and /proc "
			"sweep)",
			hc->path, name, strerror(errno));
		return -EAGAIN;
	}
	fd = openat(hc->dir, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || !add(hc, id, -1)) {
		log_err("alert_command: %s/%s: %s: this hook runs uncontained", hc->path, name,
			fd < 0 ? strerror(errno) : "out of memory");
		if (fd >= 0)
			close(fd);
		unlinkat(hc->dir, name, AT_REMOVEDIR);
		return -EAGAIN;
	}
	if (hc->pids) {
		snprintf(max, sizeof(max), "%d", HOOKCG_PIDS_MAX);
		ret = write_at(fd, "pids.max", max);
		if (ret)
			log_warn("%s/%s/pids.max: %s: this hook runs without a task limit", hc->path,
				 name, strerror(-ret));
	}
	if (pipe2(pipefd, O_CLOEXEC)) {
		err = errno;
		close(fd);
		remove_released(hc);
		log_err("alert_command: pipe: %s: this hook runs uncontained", strerror(err));
		return -EAGAIN;
	}
	c.err = pipefd[1];
	child_pid = start_child(hc, fd, &c);
	close(pipefd[1]);
	if (child_pid < 0) {
		close(pipefd[0]);
		close(fd);
		remove_released(hc);
		return clone_failed(hc, (int)-child_pid);
	}
	/* EOF: the exec succeeded (the pipe closed on it); else the child's errno. */
	do
		n = read(pipefd[0], &err, sizeof(err));
	while (n < 0 && errno == EINTR);
	close(pipefd[0]);
	if (n == (ssize_t)sizeof(err)) {
		waitpid((pid_t)child_pid, NULL, 0); /* it has exited: _exit(127) */
		close(fd);
		remove_released(hc);
		return -err;
	}
	find(hc, id)->fd = fd;
	*pid = (pid_t)child_pid;
	*cg = id;
	return 0;
}

unsigned hookcg_kill(struct hookcg *hc, unsigned cg, pid_t main)
{
	struct cgent *e = find(hc, cg);

	return e && e->fd >= 0 ? kill_cgroup(e->fd, main) : 0;
}

void hookcg_release(struct hookcg *hc, unsigned cg)
{
	struct cgent *e = find(hc, cg);

	if (!e || e->fd < 0)
		return;
	kill_cgroup(e->fd, 0);
	close(e->fd);
	e->fd = -1;
	remove_released(hc);
}

void hookcg_stop(struct hookcg *hc)
{
	if (!hc)
		return;
	if (hc->retry_init && !uv_is_closing((uv_handle_t *)&hc->retry)) {
		uv_timer_stop(&hc->retry);
		uv_close((uv_handle_t *)&hc->retry, NULL);
	}
	/*
	 * What is empty already goes; the rest, and the cgroups of the hooks
	 * still running (sinks_stop sent them SIGTERM), are the next start's
	 * (clear_leftovers), or systemd's (KillMode=control-group).
	 */
	remove_released(hc);
	for (size_t i = 0; i < hc->nents; i++) {
		if (hc->ents[i].fd >= 0) {
			close(hc->ents[i].fd);
			hc->ents[i].fd = -1;
		}
	}
	hc->nents = 0;
}

void hookcg_free(struct hookcg *hc)
{
	if (!hc)
		return;
	if (hc->dir >= 0)
		close(hc->dir);
	free(hc->ents);
	free(hc);
}
