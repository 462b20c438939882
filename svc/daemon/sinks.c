/* SPDX-License-Identifier: ISC */
/* Output sinks: alert_command children, the sa-too-old and xfrm_stat checks, the metrics file. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "conf/conf.h"
#include "monitor/rules.h"
#include "monitor/metrics.h"
#include "rotate/keysched.h"
#include "svc/base/log.h"
#include "svc/daemon/hookcg.h"
#include "svc/daemon/observer.h"
#include "svc/daemon/sinks.h"

#define XFRM_STAT_PATH "/proc/net/xfrm_stat"
#define XFRM_STAT_MAX 8192

/* Event kinds counted for sakeyd_events_total (store.h's names). */
static const char *const event_names[] = {
	"add",	       "delete",     "expire-soft",	"expire-hard",	   "acquire",
	"acquire-unanswered", "sa-removed", "sa-too-old", "rotation-failed", "resync",
	"xfrm-errors", "generation-changed", "generations-exhausted", "replay-unprotected",
};
#define NEVENTS (sizeof(event_names) / sizeof(event_names[0]))

/* Variables of a job beyond mon_alert_env's: SAKEYD_COUNT, and a burst summary's 7 more. */
#define JOB_EXTRA_N 8
#define JOB_EXTRA_BUF 512

/* One alert_command run: queued, then a child with its kill timer. */
struct job {
	struct sinks *a;
	struct job *next; /* in the queue */
	pid_t pid;
	unsigned cg; /* its cgroup (hookcg), 0 if it runs without one */
	uv_timer_t timer; /* the job is freed when it is closed */
	bool timed_out;
	char event[32];
	char *envp[MON_ALERT_ENV_N + JOB_EXTRA_N];
	char buf[MON_ALERT_ENV_BUF];
	char extra[JOB_EXTRA_BUF]; /* SAKEYD_COUNT and the summary's variables */
};

/*
 * The burst window of one event kind (SINKS_BURST_FIRST): how many alerts
 * went out one by one, and what the folded ones were.
 */
struct burst {
	bool open;
	bool flood;	    /* opened right after a window that folded: folds all */
	uint64_t flood_until; /* loop time: a window opened before it is a flood's */
	uint64_t opened_ms; /* loop time the window opened */
	int64_t started;    /* Unix seconds, the same moment */
	uint64_t opened_ns, last_ns; /* uv_hrtime() then, and at the last folded alert */
	unsigned long alerted, folded, managed; /* managed: folded alerts of a link */
	uint32_t first_spi, last_spi;
	char first_link[CONF_NAME_MAX], last_link[CONF_NAME_MAX];
};

/* Rotation counters of one link name (they outlive a reload that drops the link). */
struct link_count {
	char name[CONF_NAME_MAX];
	uint64_t ok, failed;
};

struct sinks {
	struct daemon_port port;
	struct daemon_observer observer;
	unsigned timeout_ms, max_running;
	size_t max_queued;
	struct job *head, *tail; /* waiting for a free slot */
	size_t nqueued;
	unsigned running;
	struct job **live; /* running children, for the stop; max_running slots */
	size_t nlive, live_cap;
	struct sinks_stats stats;
	uint64_t events[NEVENTS];
	struct burst bursts[NEVENTS]; /* by event_names index; other kinds are never folded */
	uv_timer_t burst_timer;	     /* closes the earliest open window */
	struct link_count *links;
	size_t nlinks, links_cap;
	size_t *by_name; /* open addressing: index + 1 into links, 0 = empty */
	size_t by_name_size; /* a power of two, more than twice nlinks */
	uv_timer_t metrics; /* coalesces metrics writes */
	uv_signal_t sigchld; /* reaps the children (posix_spawn, not uv_spawn) */
	struct hookcg *cg; /* a cgroup per hook, if systemd delegated one; else NULL */
	bool sweep_orphans; /* a hook ran without a cgroup: what it left is found by the sweep */
	bool metrics_dirty, stopping;
	int64_t last_update;
	bool xfrm_warned;
	int last_metrics_err;
	/* xfrm-errors: the check's memory, when watched. */
	char xfrm_path[PATH_MAX];
	bool xfrm_watch;
	struct mon_xfrm_watch xfrm;
};

static const struct config *config_of(const struct sinks *a)
{
	return a->port.config(a->port.daemon);
}

/* --- the alert_command runner ------------------------------------------- */

static void drain(struct sinks *a);

static void job_closed(uv_handle_t *h)
{
	struct job *j = h->data;

	explicit_bzero(j->buf, sizeof(j->buf));
	free(j);
}

static void job_close(struct job *j)
{
	struct sinks *a = j->a;

	for (size_t i = 0; i < a->nlive; i++) {
		if (a->live[i] == j) {
			a->live[i] = a->live[--a->nlive];
			break;
		}
	}
	uv_close((uv_handle_t *)&j->timer, job_closed);
}

static void job_exited(struct job *j, int wstatus)
{
	struct sinks *a = j->a;

	uv_timer_stop(&j->timer);
	a->running--;
	if (j->timed_out) {
		/* counted and logged when the limit passed */
	} else if (WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0) {
		a->stats.ok++;
		log_debug("alert_command for %s: done", j->event);
	} else {
		a->stats.failed++;
		if (WIFSIGNALED(wstatus))
			log_err("alert_command %s for %s: killed by signal %d",
				config_of(a)->daemon.alert_command, j->event, WTERMSIG(wstatus));
		else
			log_err("alert_command %s for %s: exit status %d",
				config_of(a)->daemon.alert_command, j->event, WEXITSTATUS(wstatus));
	}
	job_close(j);
}

static struct job *live_job(const struct sinks *a, pid_t pid)
{
	for (size_t i = 0; i < a->nlive; i++)
		if (a->live[i]->pid == pid)
			return a->live[i];
	return NULL;
}

/* The state, parent and process group fields of /proc/NAME/stat (relative to dir), or -errno. */
static int read_stat(int dir, const char *name, char *state, pid_t *ppid, pid_t *pgrp)
{
	char path[32], text[512], *close_paren;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "%s/stat", name);
	fd = openat(dir, path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, text, sizeof(text) - 1);
	close(fd);
	if (n <= 0)
		return -EIO;
	text[n] = '\0';
	/* "pid (comm) state ppid pgrp ...": comm may hold anything, ')' included. */
	close_paren = strrchr(text, ')');
	if (!close_paren || sscanf(close_paren + 1, " %c %d %d", state, ppid, pgrp) != 3)
		return -EIO;
	return 0;
}

/*
 * Whether /proc/NAME (relative to dir) has SIGKILL pending: killed by an
 * earlier sweep, not dead yet (counted once). A fatal signal is queued on
 * each thread (kernel/signal.c: complete_signal), SigPnd of the leader.
 */
static bool being_killed(int dir, const char *name)
{
	char path[32], text[4096], *line, *save;
	unsigned long long pending;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "%s/status", name);
	fd = openat(dir, path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	n = read(fd, text, sizeof(text) - 1);
	close(fd);
	if (n <= 0)
		return false;
	text[n] = '\0';
	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if ((!strncmp(line, "SigPnd:", 7) || !strncmp(line, "ShdPnd:", 7)) &&
		    sscanf(line + 7, "%llx", &pending) == 1 && (pending & (1ull << (SIGKILL - 1))))
			return true;
	}
	return false;
}

/*
 * Kill (SIGKILL) what alert commands left behind; return how many
 * processes went. Every live child of the daemon that is not a running
 * command's main process is such a leftover: the daemon is the subreaper
 * of its descendants (sinks_new) and starts no child but alert_command, so
 * a process that a command started and left (setsid sleep &, a double
 * fork) is re-parented to the daemon when its own parent exits, whatever
 * its session. Killing those is race-free: a child's pid cannot be reused
 * before the daemon reaps it, and only sigchld_cb reaps. If group is not
 * 0, the members of that process group (a command's, whose main process is
 * alive or a zombie not yet reaped: the id is still held) are counted and
 * killed too, with kill(-group), never by a pid another process could have
 * taken since. Each process killed then exits; sigchld_cb reaps it and
 * sweeps again for its own children, re-parented in turn: a tree of any
 * depth goes, a level per loop turn, and nothing blocks the loop.
 */
static unsigned sweep(struct sinks *a, pid_t group)
{
	pid_t self = getpid();
	unsigned killed = 0;
	struct dirent *de;
	DIR *proc;

	proc = opendir("/proc");
	if (!proc)
		log_err("alert_command: /proc: %s: what commands left behind cannot be found",
			strerror(errno));
	while (proc && (de = readdir(proc))) {
		char *end, state;
		long pid = strtol(de->d_name, &end, 10);
		pid_t ppid, pgrp;

		if (*end || pid <= 0 || pid == self || pid == group || live_job(a, (pid_t)pid))
			continue;
		if (read_stat(dirfd(proc), de->d_name, &state, &ppid, &pgrp) || state == 'Z')
			continue; /* gone, or dead: sigchld_cb reaps the zombies of ours */
		if (ppid != self && (!group || pgrp != group))
			continue;
		if (being_killed(dirfd(proc), de->d_name))
			continue;
		if (ppid == self)
			kill((pid_t)pid, SIGKILL);
		/* else killed below, with the whole group */
		killed++;
	}
	if (proc)
		closedir(proc);
	if (group)
		kill(-group, SIGKILL);
	a->stats.leftovers += killed;
	return killed;
}

static void log_killed(struct sinks *a, const char *event, unsigned killed)
{
	if (killed)
		log_warn("alert_command %s for %s: killed %u process%s it left behind",
			 config_of(a)->daemon.alert_command, event, killed,
			 killed == 1 ? "" : "es");
}

/* Sweep, and log what went as left behind by the command for event. */
static void sweep_after(struct sinks *a, pid_t group, const char *event)
{
	log_killed(a, event, sweep(a, group));
}

/*
 * Kill what j started besides its main process, and log it: the whole of
 * its cgroup if it has one (a process cannot leave it: a hook's tree of any
 * depth goes at once, forks in flight included), else a sweep of its
 * process group and of the daemon's children.
 */
static void kill_leftovers(struct sinks *a, struct job *j)
{
	unsigned killed;

	if (!j->cg) {
		sweep_after(a, j->pid, j->event);
		return;
	}
	killed = hookcg_kill(a->cg, j->cg, j->pid);
	a->stats.leftovers += killed;
	log_killed(a, j->event, killed);
}

/*
 * SIGCHLD: reap every child that exited, the commands and what they left
 * behind (waitpid(-1): the daemon has no other child, and a job's status
 * goes to its job). When a command's main process has exited, its process
 * group and what it left outside it are killed while its zombie still
 * holds the group's id (waitid WNOWAIT first: once reaped, the id could
 * name someone else's group).
 */
static void sigchld_cb(uv_signal_t *h, int signum)
{
	struct sinks *a = h->data;
	bool orphan_reaped = false;

	for (;;) {
		siginfo_t si = { 0 };
		struct job *j;
		int wstatus;

		if (waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT) || !si.si_pid)
			break;
		j = live_job(a, si.si_pid);
		if (j)
			kill_leftovers(a, j);
		if (waitpid(si.si_pid, &wstatus, WNOHANG) != si.si_pid)
			break; /* cannot happen: it is a zombie of ours */
		if (j) {
			unsigned cg = j->cg;

			job_exited(j, wstatus);
			if (cg)
				hookcg_release(a->cg, cg); /* removed once empty */
		} else {
			orphan_reaped = true;
		}
	}
	/* A leftover's children are the daemon's now (in a cgroup: killed with it). */
	if (orphan_reaped && a->sweep_orphans)
		sweep_after(a, 0, "an earlier alert");
	drain(a);
}

static void timeout_cb(uv_timer_t *t)
{
	struct job *j = t->data;
	struct sinks *a = j->a;

	j->timed_out = true;
	a->stats.timeouts++;
	log_err("alert_command %s for %s: still running after %u ms: killed",
		config_of(a)->daemon.alert_command, j->event, a->timeout_ms);
	/*
	 * Its cgroup; or its own process group (POSIX_SPAWN_SETSID) and what
	 * has already left the group and its parent (setsid, a double fork).
	 * What its death orphans goes when sigchld_cb reaps it.
	 */
	kill_leftovers(a, j);
	kill(j->pid, SIGKILL); /* if it left its group */
}

/*
 * Start cmd for j without a cgroup; 0 or an errno. posix_spawn, not
 * uv_spawn: glibc starts the child with vfork semantics (CLONE_VM), where
 * fork() copies the page tables of a daemon holding 10,000 links and marks
 * every page copy-on-write, which delays the alert and slows the daemon
 * after it.
 */
static int spawn_posix(struct sinks *a, struct job *j, const char *cmd, char *args[])
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	sigset_t none, all;
	int ret;

	sigemptyset(&none);
	sigfillset(&all);
	posix_spawn_file_actions_init(&fa);
	posix_spawnattr_init(&attr);
	/* stdin /dev/null, stdout and stderr to the daemon's log, no other fd, cwd /, own session. */
	ret = posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
	if (!ret)
		ret = posix_spawn_file_actions_adddup2(&fa, STDERR_FILENO, STDOUT_FILENO);
	if (!ret)
		ret = posix_spawn_file_actions_addchdir_np(&fa, "/");
	/* Nothing the daemon holds or inherited without O_CLOEXEC reaches the command. */
	if (!ret)
		ret = posix_spawn_file_actions_addclosefrom_np(&fa, STDERR_FILENO + 1);
	if (!ret)
		ret = posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK |
							      POSIX_SPAWN_SETSIGDEF);
	if (!ret)
		ret = posix_spawnattr_setsigmask(&attr, &none);
	if (!ret)
		ret = posix_spawnattr_setsigdefault(&attr, &all);
	if (!ret)
		ret = posix_spawn(&j->pid, cmd, &fa, &attr, args, j->envp);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&attr);
	if (!ret)
		a->sweep_orphans = true;
	return ret;
}

/*
 * Spawn j now; on failure j is released. In a cgroup of its own where the
 * daemon has them (hookcg_spawn: a fork-like clone3, whose cost the cgroup
 * is worth); else, or if that fails for want of containment, posix_spawn.
 */
static void spawn(struct sinks *a, struct job *j)
{
	const char *cmd = config_of(a)->daemon.alert_command;
	char *args[] = { (char *)cmd, NULL };
	int ret = -EAGAIN;

	if (!cmd[0]) { /* a reload removed it while this alert waited */
		explicit_bzero(j->buf, sizeof(j->buf));
		free(j);
		return;
	}
	j->cg = 0;
	if (hookcg_active(a->cg)) {
		ret = hookcg_spawn(a->cg, cmd, args, j->envp, &j->pid, &j->cg);
		if (ret != -EAGAIN)
			ret = -ret;
	}
	if (ret == -EAGAIN)
		ret = spawn_posix(a, j, cmd, args);
	if (ret) {
		a->stats.failed++;
		log_err("alert_command %s for %s: cannot run it: %s", cmd, j->event, strerror(ret));
		explicit_bzero(j->buf, sizeof(j->buf));
		free(j);
		return;
	}
	uv_timer_init(a->port.loop, &j->timer);
	j->timer.data = j;
	a->stats.started++;
	a->running++;
	if (a->running > a->stats.running_max)
		a->stats.running_max = a->running;
	a->live[a->nlive++] = j;
	uv_timer_start(&j->timer, timeout_cb, a->timeout_ms, 0);
}

/* Start queued alerts while slots are free. */
static void drain(struct sinks *a)
{
	while (!a->stopping && a->head && a->running < a->max_running) {
		struct job *j = a->head;

		a->head = j->next;
		if (!a->head)
			a->tail = NULL;
		a->nqueued--;
		j->next = NULL;
		spawn(a, j);
	}
}

/* name=value (printf) as the next variable of j's environment; false if there is no room. */
static bool __attribute__((format(printf, 5, 6)))
add_var(struct job *j, size_t *n, size_t *off, const char *name, const char *fmt, ...)
{
	size_t room = sizeof(j->extra) - *off;
	va_list ap;
	int len, vlen;

	if (*n + 1 >= sizeof(j->envp) / sizeof(j->envp[0]))
		return false;
	len = snprintf(j->extra + *off, room, "%s=", name);
	if (len < 0 || (size_t)len >= room)
		return false;
	va_start(ap, fmt);
	vlen = vsnprintf(j->extra + *off + len, room - (size_t)len, fmt, ap);
	va_end(ap);
	if (vlen < 0 || (size_t)(len + vlen) >= room)
		return false;
	j->envp[(*n)++] = j->extra + *off;
	j->envp[*n] = NULL;
	*off += (size_t)(len + vlen) + 1;
	return true;
}

/* SAKEYD_COUNT after mon_alert_env's n variables, and a burst summary's (b) own. */
static bool add_burst_vars(struct job *j, size_t n, const struct burst *b)
{
	size_t off = 0;
	bool ok;

	if (!b)
		return add_var(j, &n, &off, "SAKEYD_COUNT", "1");
	ok = add_var(j, &n, &off, "SAKEYD_COUNT", "%lu", b->folded) &&
	     add_var(j, &n, &off, "SAKEYD_WINDOW", "%u", SINKS_BURST_WINDOW_MS / 1000) &&
	     add_var(j, &n, &off, "SAKEYD_WINDOW_START", "%lld", (long long)b->started) &&
	     add_var(j, &n, &off, "SAKEYD_FIRST_SPI", "%#x", b->first_spi) &&
	     add_var(j, &n, &off, "SAKEYD_FIRST_LINK", "%s", b->first_link) &&
	     add_var(j, &n, &off, "SAKEYD_LAST_SPI", "%#x", b->last_spi) &&
	     add_var(j, &n, &off, "SAKEYD_LAST_LINK", "%s", b->last_link) &&
	     add_var(j, &n, &off, "SAKEYD_MANAGED", "%lu", b->managed);
	return ok;
}

/* Queue an alert_command run for one alert, or with b for the summary of b's burst. */
static void run_command(struct sinks *a, const char *event, const struct mon_sa *e,
			const struct conf_link *link, const char *msg, const struct burst *b)
{
	struct mon_alert_addrs addrs;
	struct mon_alert al;
	struct job *j;
	int n;

	if (a->stopping || !config_of(a)->daemon.alert_command[0])
		return;
	a->stats.queued++;
	if (a->running >= a->max_running && a->nqueued >= a->max_queued) {
		if (a->stats.dropped++ % 100 == 0)
			log_err("alert_command: %zu alerts already wait for %u running commands: "
				"dropping %s (%lu dropped so far)",
				a->nqueued, a->running, event, a->stats.dropped);
		return;
	}
	j = calloc(1, sizeof(*j));
	if (!j) {
		a->stats.dropped++;
		log_err("alert_command: out of memory: dropping %s", event);
		return;
	}
	j->a = a;
	snprintf(j->event, sizeof(j->event), "%s", event);
	/* The same fields as the log's ALERT line (daemon_alert). */
	mon_alert_fill(&al, event, e, link, msg, time(NULL), &addrs);
	n = mon_alert_env(&al, j->envp, MON_ALERT_ENV_N, j->buf, sizeof(j->buf));
	if (n < 0 || !add_burst_vars(j, (size_t)n, b)) {
		log_err("alert_command: cannot build the environment of %s", event);
		a->stats.failed++;
		free(j);
		return;
	}
	if (a->tail)
		a->tail->next = j;
	else
		a->head = j;
	a->tail = j;
	a->nqueued++;
	drain(a);
}

/* --- metrics ------------------------------------------------------------- */

static size_t name_hash(const char *name)
{
	uint64_t h = 1469598103934665603ull; /* FNV-1a */

	for (; *name; name++)
		h = (h ^ (uint8_t)*name) * 1099511628211ull;
	return (size_t)h;
}

/* The index slot of name: where it is, or the empty slot it would go to. */
static size_t *name_slot(struct sinks *a, const char *name)
{
	size_t mask = a->by_name_size - 1, i = name_hash(name) & mask;

	while (a->by_name[i] && strcmp(a->links[a->by_name[i] - 1].name, name))
		i = (i + 1) & mask;
	return &a->by_name[i];
}

/* Counters of a link name: a hash lookup, so a pass over 10,000 links stays linear. */
static struct link_count *link_count(struct sinks *a, const char *name, bool create)
{
	struct link_count *l;
	size_t *slot;

	if (a->by_name_size) {
		slot = name_slot(a, name);
		if (*slot)
			return &a->links[*slot - 1];
	}
	if (!create)
		return NULL;
	if (a->nlinks == a->links_cap) {
		size_t cap = a->links_cap ? a->links_cap * 2 : 16;

		l = realloc(a->links, cap * sizeof(*l));
		if (!l)
			return NULL;
		a->links = l;
		a->links_cap = cap;
	}
	if ((a->nlinks + 1) * 2 > a->by_name_size) {
		size_t size = a->by_name_size ? a->by_name_size * 2 : 32;
		size_t *idx = calloc(size, sizeof(*idx));

		if (!idx)
			return NULL;
		free(a->by_name);
		a->by_name = idx;
		a->by_name_size = size;
		for (size_t i = 0; i < a->nlinks; i++)
			*name_slot(a, a->links[i].name) = i + 1;
	}
	l = &a->links[a->nlinks++];
	memset(l, 0, sizeof(*l));
	snprintf(l->name, sizeof(l->name), "%s", name);
	*name_slot(a, l->name) = a->nlinks;
	return l;
}

static void count_event(struct sinks *a, const char *name)
{
	for (size_t i = 0; i < NEVENTS; i++) {
		if (!strcmp(event_names[i], name)) {
			a->events[i]++;
			return;
		}
	}
}

/* /proc/net/xfrm_stat into out; 0 counters if the kernel has none (no CONFIG_XFRM_STATISTICS). */
static size_t read_xfrm_stat(struct sinks *a, struct mon_xfrm_stat *out, size_t max)
{
	char text[XFRM_STAT_MAX];
	size_t len = 0, n = 0;
	int fd, ret;

	fd = open(a->xfrm_path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	while (len < sizeof(text)) {
		ssize_t r = read(fd, text + len, sizeof(text) - len);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		len += (size_t)r;
	}
	close(fd);
	ret = mon_xfrm_stat_parse(text, len, out, max, &n);
	if (ret) {
		if (!a->xfrm_warned)
			log_warn("%s: cannot parse it (%s); sakeyd_xfrm_errors_total and "
				 "xfrm-errors alerts left out",
				 a->xfrm_path, strerror(-ret));
		a->xfrm_warned = true;
		return 0;
	}
	return n;
}

/*
 * A fresh temporary file beside the target, in dir: a name no one can guess
 * and O_EXCL, so that whatever another account (often the exporter's, which
 * can write the textfile directory) put there is neither opened, truncated
 * nor chmod'ed; O_NONBLOCK, so that nothing there can block the loop.
 * Returns the descriptor and its name in tmp, or -errno.
 */
static int open_temp(int dir, const char *base, char *tmp, size_t size)
{
	static const char digits[] = "0123456789abcdefghijklmnopqrstuvwxyz";

	for (int tries = 0; tries < 16; tries++) {
		unsigned char rnd[8];
		char suffix[sizeof(rnd) + 1];
		int fd;

		if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
			return -EIO;
		for (size_t i = 0; i < sizeof(rnd); i++)
			suffix[i] = digits[rnd[i] % (sizeof(digits) - 1)];
		suffix[sizeof(rnd)] = '\0';
		if (snprintf(tmp, size, ".%s.%s", base, suffix) >= (int)size)
			return -ENAMETOOLONG;
		fd = openat(dir, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC,
			    0644);
		if (fd >= 0 || errno != EEXIST)
			return fd >= 0 ? fd : -errno;
	}
	return -EEXIST;
}

static int write_file(const char *path, const char *text, size_t len)
{
	char dirname[PATH_MAX], tmp[NAME_MAX + 1];
	const char *slash = strrchr(path, '/'), *base = slash ? slash + 1 : path;
	struct stat st;
	int dir, fd, ret = 0;

	if (!slash)
		snprintf(dirname, sizeof(dirname), ".");
	else if (slash == path)
		snprintf(dirname, sizeof(dirname), "/");
	else if ((size_t)(slash - path) < sizeof(dirname))
		snprintf(dirname, sizeof(dirname), "%.*s", (int)(slash - path), path);
	else
		return -ENAMETOOLONG;
	/* Every step relative to the directory: rename() then replaces path atomically. */
	dir = open(dirname, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dir < 0)
		return -errno;
	fd = open_temp(dir, base, tmp, sizeof(tmp));
	if (fd < 0) {
		close(dir);
		return fd;
	}
	if (fstat(fd, &st))
		ret = -errno;
	else if (!S_ISREG(st.st_mode))
		ret = -EINVAL;
	/* node_exporter runs as another user: the file is world-readable, whatever the umask. */
	if (!ret && fchmod(fd, 0644))
		ret = -errno;
	while (!ret && len) {
		ssize_t n = write(fd, text, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			ret = -errno;
		else {
			text += n;
			len -= (size_t)n;
		}
	}
	if (!ret && fsync(fd))
		ret = -errno;
	if (close(fd) && !ret)
		ret = -errno;
	if (!ret && renameat(dir, tmp, dir, base))
		ret = -errno;
	if (ret)
		unlinkat(dir, tmp, 0);
	close(dir);
	return ret;
}

static int write_metrics(struct sinks *a, bool up)
{
	const struct daemon_port *p = &a->port;
	const char *path = config_of(a)->daemon.metrics_file;
	size_t nlinks = p->nlinks(p->daemon);
	struct mon_count events[NEVENTS], commands[4], drops[4];
	struct kern_stats ks = { 0 };
	struct mon_metrics_link *links = NULL;
	struct mon_xfrm_stat xfrm[MON_XFRM_MAX];
	struct mon_metrics m = {
		.now = time(NULL),
		.up = up,
		.last_update = a->last_update,
		.sas = p->table(p->daemon),
		.events = events,
		.nevents = NEVENTS,
		.alert_commands = commands,
		.nalert_commands = 4,
	};
	char *text = NULL;
	size_t len = 0;
	int ret;

	a->metrics_dirty = false;
	if (!path[0])
		return 0;
	for (size_t i = 0; i < NEVENTS; i++)
		events[i] = (struct mon_count){ event_names[i], a->events[i] };
	commands[0] = (struct mon_count){ "ok", a->stats.ok };
	commands[1] = (struct mon_count){ "failed", a->stats.failed };
	commands[2] = (struct mon_count){ "timeout", a->stats.timeouts };
	commands[3] = (struct mon_count){ "dropped", a->stats.dropped };
	p->kernel_stats(p->daemon, &ks);
	drops[0] = (struct mon_count){ "malformed", ks.malformed };
	drops[1] = (struct mon_count){ "truncated", ks.truncated };
	drops[2] = (struct mon_count){ "reply-timeout", ks.timeouts };
	/* XFRM: netlink said ENOBUFS, notifications were dropped (how many is not told). */
	drops[3] = (struct mon_count){ "overrun", ks.overruns };
	m.kernel_drops = drops;
	m.nkernel_drops = 4;
	if (nlinks) {
		links = calloc(nlinks, sizeof(*links));
		if (!links) {
			ret = -ENOMEM;
			goto out;
		}
	}
	for (size_t i = 0; i < nlinks; i++) {
		struct daemon_link_view ls;
		const struct link_count *c;

		p->link_at(p->daemon, i, &ls);
		c = link_count(a, ls.link->name, false);
		links[i].name = ls.link->name;
		links[i].has_epoch = ls.next_change != 0;
		links[i].epoch = ls.epoch;
		links[i].next_rotation = links[i].has_epoch ? rot_epoch_start(ls.epoch + 1,
									      ls.link->rotate_every,
									      ls.link->phase)
							    : 0;
		links[i].rotations_ok = c ? c->ok : 0;
		links[i].rotations_failed = c ? c->failed : 0;
		if (!links[i].has_epoch)
			links[i].state = MON_LINK_PENDING;
		else if (ls.exhausted)
			links[i].state = MON_LINK_EXHAUSTED;
		else if (ls.failures)
			links[i].state = MON_LINK_BACKOFF;
		else
			links[i].state = MON_LINK_OK;
	}
	/* Per-link aggregates: one walk of the table, each managed SA to its running link. */
	if (m.sas && nlinks) {
		size_t cur = 0, li;
		struct mon_sa *e;

		while ((e = mon_table_next(m.sas, &cur)))
			if (e->managed && p->link_of(p->daemon, e, &li) && li < nlinks)
				mon_metrics_link_add_sa(&links[li], e);
	}
	m.links = links;
	m.nlinks = nlinks;
	m.version = SAKEYD_VERSION;
	m.xfrm = xfrm;
	m.nxfrm = read_xfrm_stat(a, xfrm, MON_XFRM_MAX);
	ret = mon_metrics_render(&m, &text, &len);
	if (!ret)
		ret = write_file(path, text, len);
out:
	free(text);
	free(links);
	if (ret) {
		a->stats.metrics_failed++;
		/* Once per kind of failure, not every second. */
		if (ret != a->last_metrics_err)
			log_err("metrics_file %s: cannot write it: %s", path, strerror(-ret));
	} else {
		a->stats.metrics_written++;
		if (a->last_metrics_err)
			log_info("metrics_file %s: written again", path);
	}
	a->last_metrics_err = ret;
	return ret;
}

static void metrics_cb(uv_timer_t *t)
{
	struct sinks *a = t->data;

	if (a->metrics_dirty)
		write_metrics(a, true);
}

/* Something changed: rewrite the metrics file within SINKS_METRICS_MS. */
static void metrics_touch(struct sinks *a)
{
	a->metrics_dirty = true;
	if (a->stopping || !config_of(a)->daemon.metrics_file[0])
		return;
	if (!uv_is_active((uv_handle_t *)&a->metrics))
		uv_timer_start(&a->metrics, metrics_cb, SINKS_METRICS_MS, 0);
}

static void on_sa_added(void *self, const struct mon_sa *e, bool from_dump)
{
	struct sinks *a = self;

	if (!from_dump)
		count_event(a, "add");
	metrics_touch(a);
}

static void on_sa_gone(void *self, const struct mon_sa *e, const char *why)
{
	struct sinks *a = self;

	count_event(a, "delete");
	metrics_touch(a);
}

/* --- bursts (SINKS_BURST_FIRST) ----------------------------------------- */

/* The alert's ALERT line (sakeyd(8) LOG AND ALERTS), at warning. */
static void log_alert(struct sinks *a, const char *event, const struct mon_sa *e,
		      const struct conf_link *link, const char *msg)
{
	char line[MON_ALERT_LINE_LEN];
	struct mon_alert_addrs addrs;
	struct mon_alert al;

	mon_alert_fill(&al, event, e, link, msg, a->port.now(a->port.daemon), &addrs);
	if (mon_alert_line(&al, line, sizeof(line)) >= 0)
		log_warn("%s", line);
	else
		log_err("an alert without an event name: %s", msg);
}

static size_t event_index(const char *name)
{
	for (size_t i = 0; i < NEVENTS; i++)
		if (!strcmp(event_names[i], name))
			return i;
	return NEVENTS;
}

static void burst_cb(uv_timer_t *t);

/*
 * Whether this alert goes out one by one (logged, alert_command): the first
 * SINKS_BURST_FIRST of its kind in the window; the others are counted in
 * the window, for its summary (burst_close).
 */
static bool burst_admit(struct sinks *a, const char *event, const struct mon_sa *e,
			const struct conf_link *link)
{
	size_t i = event_index(event);
	struct burst *b;

	if (i == NEVENTS || a->stopping)
		return true;
	b = &a->bursts[i];
	if (!b->open) {
		uint64_t flood_until = b->flood_until;

		memset(b, 0, sizeof(*b));
		b->open = true;
		b->flood_until = flood_until;
		b->flood = uv_now(a->port.loop) < flood_until;
		b->opened_ms = uv_now(a->port.loop);
		b->started = a->port.now(a->port.daemon);
		b->opened_ns = uv_hrtime();
		if (!uv_is_active((uv_handle_t *)&a->burst_timer))
			uv_timer_start(&a->burst_timer, burst_cb, SINKS_BURST_WINDOW_MS, 0);
	}
	if (!b->flood && b->alerted < SINKS_BURST_FIRST) {
		b->alerted++;
		return true;
	}
	if (!b->folded++) {
		b->first_spi = e ? e->sa.spi : 0;
		snprintf(b->first_link, sizeof(b->first_link), "%s", link ? link->name : "");
	}
	b->last_spi = e ? e->sa.spi : 0;
	snprintf(b->last_link, sizeof(b->last_link), "%s", link ? link->name : "");
	b->managed += link != NULL;
	b->last_ns = uv_hrtime();
	a->stats.folded++;
	return false;
}

/* Close the window of kind i: one summary alert (line and command) for what it folded. */
static void burst_close(struct sinks *a, size_t i)
{
	struct burst *b = &a->bursts[i];
	char msg[MON_MSG_LEN];

	b->open = false;
	if (!b->folded)
		return;
	b->flood_until = uv_now(a->port.loop) + SINKS_BURST_WINDOW_MS;
	a->stats.summaries++;
	snprintf(msg, sizeof(msg),
		 "%lu %s%s alerts in %u s%s (first: spi %#x link %s; last: spi %#x link %s, "
		 "%.3f s before this summary; %lu of managed links), summarised here; "
		 "each is in the ledger (sactl events)",
		 b->folded, b->flood ? "" : "more ", event_names[i], SINKS_BURST_WINDOW_MS / 1000,
		 b->flood ? " (a flood goes on)" : " after the first one by one",
		 b->first_spi, b->first_link[0] ? b->first_link : "-", b->last_spi,
		 b->last_link[0] ? b->last_link : "-", (double)(uv_hrtime() - b->last_ns) / 1e9,
		 b->managed);
	log_alert(a, event_names[i], NULL, NULL, msg);
	run_command(a, event_names[i], NULL, NULL, msg, b);
}

/* Close the windows that ended; wake again at the end of the earliest still open. */
static void burst_cb(uv_timer_t *t)
{
	struct sinks *a = t->data;
	uint64_t now = uv_now(a->port.loop), next = 0;

	for (size_t i = 0; i < NEVENTS; i++) {
		struct burst *b = &a->bursts[i];
		uint64_t end = b->opened_ms + SINKS_BURST_WINDOW_MS;

		if (!b->open)
			continue;
		if (end <= now)
			burst_close(a, i);
		else if (!next || end < next)
			next = end;
	}
	if (next)
		uv_timer_start(t, burst_cb, next - now, 0);
}

/* --- hooks --------------------------------------------------------------- */

static void on_alert(void *self, const char *event, const struct mon_sa *e,
		     const struct conf_link *link, const char *msg)
{
	struct sinks *a = self;

	count_event(a, event);
	if (burst_admit(a, event, e, link)) {
		log_alert(a, event, e, link, msg);
		run_command(a, event, e, link, msg, NULL);
	}
	metrics_touch(a);
}

static void on_rotation(void *self, const struct conf_link *link, const struct rot_sa *sa,
			bool ok, const char *detail)
{
	struct sinks *a = self;
	struct link_count *c = link_count(a, link->name, true);

	if (c) {
		if (ok)
			c->ok++;
		else
			c->failed++;
	}
	metrics_touch(a);
}

static void on_acquire(void *self, uint32_t seq, const struct conf_addr *src,
		       const struct conf_addr *dst, const struct conf_link *link)
{
	struct sinks *a = self;

	count_event(a, "acquire");
	metrics_touch(a);
}

/* After each dump: SAs past max_sa_age (once per SA life), then fresh metrics. */
static void check_ages(struct sinks *a)
{
	const struct daemon_port *p = &a->port;
	uint64_t max_age = config_of(a)->daemon.max_sa_age;
	int64_t now = time(NULL);
	size_t cur = 0;
	struct mon_sa *e;

	while ((e = mon_table_next(p->table(p->daemon), &cur))) {
		struct mon_verdict v;

		if (!mon_too_old_verdict(e, now, max_age, &v))
			continue;
		e->age_alerted = true;
		a->stats.too_old++;
		p->alert(p->daemon, v.alert, e, NULL, v.message);
	}
}

/*
 * After each dump: xfrm-errors when a counter of /proc/net/xfrm_stat rose
 * (packets dropped for want of a state, bad authentication, replay...):
 * mon_xfrm_check decides.
 */
static void check_xfrm(struct sinks *a)
{
	struct mon_xfrm_stat cur[MON_XFRM_MAX];
	int64_t now = time(NULL);
	struct mon_verdict v;
	size_t n;

	if (!a->xfrm_watch)
		return;
	n = read_xfrm_stat(a, cur, MON_XFRM_MAX);
	if (!mon_xfrm_check(&a->xfrm, cur, n, now, &v))
		return;
	a->stats.xfrm_alerts++;
	a->port.alert(a->port.daemon, v.alert, NULL, NULL, v.message);
}

static void on_synced(void *self, unsigned long n)
{
	struct sinks *a = self;

	/* The ledger (told before us) has closed its resync: our alerts follow it. */
	count_event(a, "resync");
	a->last_update = time(NULL);
	check_ages(a);
	check_xfrm(a);
	metrics_touch(a);
}

static void on_pass_done(void *self)
{
	struct sinks *a = self;

	/* Link epochs and next change points moved. */
	metrics_touch(a);
}

/* --- start and stop ------------------------------------------------------ */

int sinks_new(const struct daemon_port *port, struct sinks **out)
{
	struct sinks *a = calloc(1, sizeof(*a));
	const char *cmd;

	if (!a)
		return -ENOMEM;
	a->live = calloc(SINKS_MAX_RUNNING, sizeof(*a->live));
	if (!a->live) {
		free(a);
		return -ENOMEM;
	}
	a->live_cap = SINKS_MAX_RUNNING;
	a->port = *port;
	a->timeout_ms = SINKS_TIMEOUT_MS;
	a->max_running = SINKS_MAX_RUNNING;
	a->max_queued = SINKS_MAX_QUEUED;
	snprintf(a->xfrm_path, sizeof(a->xfrm_path), "%s", XFRM_STAT_PATH);
	/* The simulated SADB has no kernel counters: the host's would say nothing of it. */
	a->xfrm_watch = config_of(a)->daemon.kernel != CONF_KERNEL_SIM;
	a->observer = (struct daemon_observer){
		.sa_added = on_sa_added,
		.sa_gone = on_sa_gone,
		.alert = on_alert,
		.rotation = on_rotation,
		.acquire = on_acquire,
		.synced = on_synced,
		.pass_done = on_pass_done,
		.self = a,
	};
	uv_timer_init(port->loop, &a->metrics);
	a->metrics.data = a;
	uv_timer_init(port->loop, &a->burst_timer);
	a->burst_timer.data = a;
	/* A cgroup per hook where systemd delegates one; it logs which containment is used. */
	a->cg = hookcg_new(port->loop);
	a->sweep_orphans = !a->cg;
	/*
	 * What a command leaves behind (setsid sleep &, a double fork) is
	 * re-parented to the daemon, not to init, when its parent exits: the
	 * sweep finds it there (prctl(2); not inherited by the children).
	 */
	if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0))
		log_warn("prctl(PR_SET_CHILD_SUBREAPER): %s: processes an alert_command leaves "
			 "behind cannot be found and killed",
			 strerror(errno));
	uv_signal_init(port->loop, &a->sigchld);
	a->sigchld.data = a;
	uv_signal_start(&a->sigchld, sigchld_cb, SIGCHLD);
	cmd = config_of(a)->daemon.alert_command;
	if (cmd[0] && access(cmd, X_OK))
		log_warn("alert_command %s: %s; alerts will go to the log and the database only "
			 "until it is fixed",
			 cmd, strerror(errno));
	*out = a;
	return 0;
}

struct daemon_observer *sinks_observer(struct sinks *a)
{
	return &a->observer;
}

void sinks_stop(struct sinks *a)
{
	unsigned long dropped = 0;

	if (!a || a->stopping)
		return;
	/* The file left behind says sakeyd is down (sakeyd_up 0), with the last SA ages. */
	write_metrics(a, false);
	/* The open windows' summaries: their lines are logged, their commands dropped below. */
	for (size_t i = 0; i < NEVENTS; i++)
		if (a->bursts[i].open)
			burst_close(a, i);
	a->stopping = true;
	while (a->head) {
		struct job *j = a->head;

		a->head = j->next;
		explicit_bzero(j->buf, sizeof(j->buf));
		free(j);
		dropped++;
	}
	a->tail = NULL;
	a->nqueued = 0;
	a->stats.dropped += dropped;
	if (dropped)
		log_warn("alert_command: stopping: %lu queued alert(s) dropped (they are in the "
			 "log and the database)",
			 dropped);
	/* What commands left behind; then the running ones and their groups get SIGTERM. */
	sweep_after(a, 0, "an earlier alert");
	if (a->nlive)
		log_warn("alert_command: stopping: terminating %zu command(s) still running",
			 a->nlive);
	while (a->nlive) {
		struct job *j = a->live[0];
		int wstatus;

		if (kill(-j->pid, SIGTERM))
			kill(j->pid, SIGTERM);
		waitpid(j->pid, &wstatus, WNOHANG);
		a->running--;
		job_close(j); /* removes it from live */
	}
	hookcg_stop(a->cg);
	if (!uv_is_closing((uv_handle_t *)&a->metrics))
		uv_close((uv_handle_t *)&a->metrics, NULL);
	if (!uv_is_closing((uv_handle_t *)&a->burst_timer))
		uv_close((uv_handle_t *)&a->burst_timer, NULL);
	if (!uv_is_closing((uv_handle_t *)&a->sigchld))
		uv_close((uv_handle_t *)&a->sigchld, NULL);
}

void sinks_free(struct sinks *a)
{
	if (!a)
		return;
	hookcg_free(a->cg);
	free(a->live);
	free(a->links);
	free(a->by_name);
	free(a);
}

void sinks_set_limits(struct sinks *a, unsigned timeout_ms, unsigned max_running,
		      size_t max_queued)
{
	struct job **live;

	if (timeout_ms)
		a->timeout_ms = timeout_ms;
	if (max_queued)
		a->max_queued = max_queued;
	if (max_running && max_running > a->live_cap) {
		live = realloc(a->live, max_running * sizeof(*live));
		if (!live)
			return;
		a->live = live;
		a->live_cap = max_running;
	}
	if (max_running)
		a->max_running = max_running;
}

void sinks_set_xfrm_stat_path(struct sinks *a, const char *path)
{
	snprintf(a->xfrm_path, sizeof(a->xfrm_path), "%s", path);
	memset(&a->xfrm, 0, sizeof(a->xfrm));
}

const struct sinks_stats *sinks_get_stats(const struct sinks *a)
{
	return a ? &a->stats : NULL;
}

int sinks_write_metrics(struct sinks *a)
{
	return a ? write_metrics(a, !a->stopping) : 0;
}
