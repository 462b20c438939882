/* SPDX-License-Identifier: ISC */
/* Prometheus text exposition of the SA table and the daemon's counters. */
#ifndef SAKEYD_MONITOR_METRICS_H
#define SAKEYD_MONITOR_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "monitor/table.h"
#include "monitor/xfrm_stat.h"

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
 * sakeyd_sa_generation (managed SAs),
 * sakeyd_sa_expiry_seconds{kind="soft|hard"} (time left, 0 once passed; left
 * out for an SA without that lifetime), sakeyd_events_total{event},
 * sakeyd_rotations_total{link,result}, sakeyd_link_epoch{link},
 * sakeyd_link_next_rotation_timestamp_seconds{link},
 * sakeyd_alert_commands_total{result}, sakeyd_kernel_messages_dropped_total{reason},
 * sakeyd_xfrm_errors_total{error}.
 * On success *text (caller frees) holds *len bytes plus a NUL. 0 or -ENOMEM.
 */
int mon_metrics_render(const struct mon_metrics *m, char **text, size_t *len);

#endif
