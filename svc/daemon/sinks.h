/* SPDX-License-Identifier: ISC */
/* Output sinks: alert_command children, the sa-too-old and xfrm_stat checks, the metrics file. */
#ifndef SAKEYD_ALERTS_H
#define SAKEYD_ALERTS_H

#include <stddef.h>

struct daemon_observer;
struct daemon_port;
struct sinks;

/* Defaults of the alert_command runner (DESIGN.md "Interfaces"). */
#define SINKS_TIMEOUT_MS 10000 /* then SIGKILL */
#define SINKS_MAX_RUNNING 4    /* children at once */
#define SINKS_MAX_QUEUED 1000  /* alerts waiting for a free slot; more are dropped (counted) */
/*
 * Bursts (sakeyd(8) LOG AND ALERTS): per event kind, the first
 * SINKS_BURST_FIRST alerts of a window of SINKS_BURST_WINDOW_MS (opened by
 * the first alert of that kind when none is open) are logged and run
 * alert_command one by one; the window's further alerts of that kind are
 * counted, and when it closes one summary ALERT line and one summary
 * alert_command stand for them all. A window opened within a window's
 * length of one that folded alerts folds all of its own (a flood goes on:
 * one summary a window). So a hook runs at most SINKS_BURST_FIRST times
 * plus once a window per kind during a flood, whatever the kernel sends,
 * while a steady stream below the limit (25 expiries a second) is reported
 * alert by alert; the ledger still records every alert (its observer is
 * told first).
 */
#define SINKS_BURST_FIRST 100
#define SINKS_BURST_WINDOW_MS 1000
/* The metrics file is rewritten at most this often (changes in between are coalesced). */
#define SINKS_METRICS_MS 1000

struct sinks_stats {
	unsigned long queued;  /* alerts handed to the runner (alert_command set) */
	unsigned long started; /* children spawned */
	unsigned long ok;      /* exited 0 */
	unsigned long failed;  /* spawn error, exit != 0, killed by a signal (not ours) */
	unsigned long timeouts; /* killed after the time limit */
	unsigned long leftovers; /* processes a command left behind, killed by a sweep */
	unsigned long dropped; /* queue full, or still queued at stop */
	unsigned long folded;  /* alerts folded into a burst summary (not logged one by one) */
	unsigned long summaries; /* burst summaries raised */
	unsigned long running_max; /* most children at once */
	unsigned long too_old;     /* sa-too-old alerts raised */
	unsigned long xfrm_alerts; /* xfrm-errors alerts raised */
	unsigned long metrics_written, metrics_failed;
};

/*
 * The output sinks on port's loop (port is copied); they learn through
 * their observer (sinks_observer), which the caller adds to the daemon
 * after the ledger's. Every alert is logged (its ALERT line) and, if
 * alert_command is set, runs it, both subject to the burst rule above. It
 * runs without a shell (argv {alert_command}) in
 * "/", with only SAKEYD_EVENT, SAKEYD_LINK, SAKEYD_SPI, SAKEYD_SRC,
 * SAKEYD_DST, SAKEYD_PROTO, SAKEYD_AGE, SAKEYD_MESSAGE, SAKEYD_COUNT (1, or
 * a burst summary's count, which also gets SAKEYD_WINDOW,
 * SAKEYD_WINDOW_START, SAKEYD_FIRST_SPI, SAKEYD_FIRST_LINK,
 * SAKEYD_LAST_SPI, SAKEYD_LAST_LINK and SAKEYD_MANAGED) and PATH in its
 * environment, stdin /dev/null, stdout and stderr the daemon's stderr (so
 * what it prints lands in the daemon's log). SINKS_MAX_RUNNING run at
 * once, SINKS_MAX_QUEUED more wait; each is killed (SIGKILL, its process
 * group) after SINKS_TIMEOUT_MS. The daemon becomes the subreaper of its
 * descendants (PR_SET_CHILD_SUBREAPER), so it must start no child but
 * these: when a command exits or times out, its process group and every
 * other child of the daemon (what a command left behind: re-parented to
 * the daemon when its parent exited, setsid or not) are killed (SIGKILL),
 * counted (leftovers) and logged, and reaped. A failure is logged and
 * counted, never fatal. After
 * each kernel dump (hook synced) every SA older than max_sa_age raises
 * sa-too-old, once per SA life, and with a real kernel (not kernel = sim)
 * a rise of any /proc/net/xfrm_stat counter since the last alert (or since
 * the first reading) raises xfrm-errors, at most once a minute. If
 * metrics_file is set it is rewritten atomically at most every
 * SINKS_METRICS_MS while something changes. 0 and *out, or -ENOMEM.
 */
int sinks_new(const struct daemon_port *port, struct sinks **out);
/* The hooks through which the daemon tells the sinks what happened (owned by a). */
struct daemon_observer *sinks_observer(struct sinks *a);
/*
 * At stop (before the loop's handles close): write the metrics file a last
 * time (sakeyd_up 0), drop queued alerts (counted, logged), kill what
 * commands left behind, send SIGTERM to the commands still running (their
 * process groups) and close every handle of ours. NULL: no-op.
 */
void sinks_stop(struct sinks *a);
/* Free the state (after the loop closed). NULL: no-op. */
void sinks_free(struct sinks *a);

/* Change the runner's limits (tests use a short timeout); 0 keeps a value. */
void sinks_set_limits(struct sinks *a, unsigned timeout_ms, unsigned max_running,
		      size_t max_queued);
/* Read path instead of /proc/net/xfrm_stat (tests): the next reading is a new baseline. */
void sinks_set_xfrm_stat_path(struct sinks *a, const char *path);
/* The counters so far; NULL if a is NULL. */
const struct sinks_stats *sinks_get_stats(const struct sinks *a);
/* Write the metrics file now (if metrics_file is set). 0 or -errno (logged). */
int sinks_write_metrics(struct sinks *a);

#endif
