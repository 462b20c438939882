/* SPDX-License-Identifier: ISC */
/* Output sinks: alert_command children, the sa-too-old and xfrm_stat checks, the metrics file. */
#ifndef SAKEYD_ALERTS_H
#define SAKEYD_ALERTS_H

#include <stddef.h>

struct daemon;

/* Defaults of the alert_command runner (DESIGN.md "Interfaces"). */
#define SINKS_TIMEOUT_MS 10000 /* then SIGKILL */
#define SINKS_MAX_RUNNING 4    /* children at once */
#define SINKS_MAX_QUEUED 1000  /* alerts waiting for a free slot; more are dropped (counted) */
/* The metrics file is rewritten at most this often (changes in between are coalesced). */
#define SINKS_METRICS_MS 1000

struct sinks_stats {
	unsigned long queued;  /* alerts handed to the runner (alert_command set) */
	unsigned long started; /* children spawned */
	unsigned long ok;      /* exited 0 */
	unsigned long failed;  /* spawn error, exit != 0, killed by a signal (not ours) */
	unsigned long timeouts; /* killed after the time limit */
	unsigned long dropped; /* queue full, or still queued at stop */
	unsigned long running_max; /* most children at once */
	unsigned long too_old;     /* sa-too-old alerts raised */
	unsigned long xfrm_alerts; /* xfrm-errors alerts raised */
	unsigned long metrics_written, metrics_failed;
};

/*
 * Chain the alert outputs into d's hooks (like ledger_start: the previous
 * hooks run after ours) and start the metrics timer. On every alert, if
 * alert_command is set, it runs without a shell (argv {alert_command}) in
 * "/", with only SAKEYD_EVENT, SAKEYD_LINK, SAKEYD_SPI, SAKEYD_SRC,
 * SAKEYD_DST, SAKEYD_PROTO, SAKEYD_AGE, SAKEYD_MESSAGE and PATH in its
 * environment, stdin /dev/null, stdout and stderr the daemon's stderr (so
 * what it prints lands in the daemon's log). SINKS_MAX_RUNNING run at
 * once, SINKS_MAX_QUEUED more wait; each is killed (SIGKILL) after
 * SINKS_TIMEOUT_MS. A failure is logged and counted, never fatal. After
 * each kernel dump (hooks.synced) every SA older than max_sa_age raises
 * sa-too-old, once per SA life, and with a real kernel (not kernel = sim)
 * a rise of any /proc/net/xfrm_stat counter since the last alert (or since
 * the first reading) raises xfrm-errors, at most once a minute. If
 * metrics_file is set it is rewritten
 * atomically at most every SINKS_METRICS_MS while something changes.
 * Returns 0 or -ENOMEM.
 */
int sinks_start(struct daemon *d);
/*
 * At stop (before the loop's handles close): write the metrics file a last
 * time (sakeyd_up 0), drop queued alerts (counted, logged), send SIGTERM to
 * the commands still running and close every handle of ours.
 */
void sinks_stop(struct daemon *d);
/* Free the state (after the loop closed); no-op if sinks_start was not called. */
void sinks_free(struct daemon *d);

/* Change the runner's limits (tests use a short timeout); 0 keeps a value. */
void sinks_set_limits(struct daemon *d, unsigned timeout_ms, unsigned max_running,
		       size_t max_queued);
/* Read path instead of /proc/net/xfrm_stat (tests): the next reading is a new baseline. */
void sinks_set_xfrm_stat_path(struct daemon *d, const char *path);
/* The counters so far; NULL before sinks_start. */
const struct sinks_stats *sinks_get_stats(const struct daemon *d);
/* Write the metrics file now (if metrics_file is set). 0 or -errno (logged). */
int sinks_write_metrics(struct daemon *d);

#endif
