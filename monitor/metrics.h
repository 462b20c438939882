/* SPDX-License-Identifier: ISC */
/* Prometheus text exposition of the SA table and the daemon's counters; xfrm_stat parsing. */
#ifndef SAKEYD_MONITOR_METRICS_H
#define SAKEYD_MONITOR_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "monitor/table.h"

/* A named counter (events by kind, alert command results). name is borrowed. */
struct mon_count {
	const char *name;
	uint64_t value;
};

/* One configured link as the metrics show it. name is borrowed. */
struct mon_metrics_link {
	const char *name;
	bool has_epoch;         /* the planner ran for it */
	int64_t epoch;
	int64_t next_rotation;  /* Unix seconds, 0 if not planned */
	uint64_t rotations_ok, rotations_failed;
};

/* Longest counter name of /proc/net/xfrm_stat kept, NUL included. */
#define MON_XFRM_NAME_LEN 48
/* Counters kept (Linux 6.x has 30). */
#define MON_XFRM_MAX 64

struct mon_xfrm_stat {
	char name[MON_XFRM_NAME_LEN]; /* as the kernel names it: "XfrmInError" */
	uint64_t value;
};

/* What mon_metrics_render() shows. Arrays are borrowed; any may be empty. */
struct mon_metrics {
	int64_t now;           /* Unix seconds: ages and time left are computed at now */
	bool up;               /* sakeyd_up: 1 while running, 0 in the file left at exit */
	int64_t last_update;   /* last refresh from the kernel; 0 = never (metric left out) */
	struct mon_table *sas; /* may be NULL: no per-SA series */
	const struct mon_count *events;
	size_t nevents;
	const struct mon_metrics_link *links;
	size_t nlinks;
	const struct mon_xfrm_stat *xfrm;
	size_t nxfrm;
	const struct mon_count *alert_commands; /* by result: ok, failed, timeout, dropped */
	size_t nalert_commands;
	/* Kernel messages dropped by reason: malformed, truncated, reply-timeout */
	const struct mon_count *kernel_drops;
	size_t nkernel_drops;
};

/*
 * Render m in the Prometheus text exposition format (version 0.0.4): HELP
 * and TYPE lines, then the series; SAs sorted (managed by link, dir, spi;
 * then unmanaged by dst, spi, proto), so equal inputs give equal text. Label
 * values are escaped (\\, \", \n). Series: sakeyd_up, sakeyd_sas,
 * sakeyd_last_update_timestamp_seconds, sakeyd_sa_age_seconds,
 * sakeyd_sa_expiry_seconds{kind="soft|hard"} (time left, 0 once passed; left
 * out for an SA without that lifetime), sakeyd_events_total{event},
 * sakeyd_rotations_total{link,result}, sakeyd_link_epoch{link},
 * sakeyd_link_next_rotation_timestamp_seconds{link},
 * sakeyd_alert_commands_total{result}, sakeyd_kernel_messages_dropped_total{reason},
 * sakeyd_xfrm_errors_total{error}.
 * On success *text (caller frees) holds *len bytes plus a NUL. 0 or -ENOMEM.
 */
int mon_metrics_render(const struct mon_metrics *m, char **text, size_t *len);

/*
 * Parse the text of /proc/net/xfrm_stat (len bytes, need not end in a NUL):
 * lines "NAME<spaces or tabs>DECIMAL", NAME of letters, digits and '_'.
 * Fills out[0..*n). Returns 0, -EINVAL (a malformed line: the whole text is
 * refused), -ERANGE (a value above UINT64_MAX), -E2BIG (more than max
 * counters, or a name of MON_XFRM_NAME_LEN or more).
 */
int mon_xfrm_stat_parse(const char *text, size_t len, struct mon_xfrm_stat *out, size_t max,
			size_t *n);

/*
 * Which counters rose from prev[0..nprev) to cur[0..ncur), matched by name:
 * "XfrmInNoStates +12 (now 40), XfrmInStateProtoError +1 (now 1)" into msg
 * (len bytes, always NUL-terminated when len > 0; cut short if too small).
 * A counter missing from prev is a baseline and one that fell was reset:
 * neither counts. Returns how many counters rose.
 */
size_t mon_xfrm_stat_rises(const struct mon_xfrm_stat *prev, size_t nprev,
			   const struct mon_xfrm_stat *cur, size_t ncur, char *msg, size_t len);

#endif
