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

/*
 * Per-SA series are written only for SAs no link manages (keyed by hand),
 * at most this many (sorted by dst, spi, proto: the first ones); how many
 * were left out is sakeyd_sa_series_omitted. A managed SA's SPI changes at
 * every rotation: its link's aggregates stand for it, so the number of
 * series stays the same from one rotation to the next.
 */
#define MON_METRICS_SA_MAX 1000

/*
 * What a link is doing, as sakeyd_link_state{state} says: one series per
 * state, 1 for the link's, 0 for the others (Prometheus' enum pattern, an
 * OpenMetrics StateSet): a rule or panel names the state (state="backoff")
 * instead of a number to decode, a state added later renumbers nothing, and
 * every series is always there, so none goes stale when the state changes.
 */
enum mon_link_state {
	MON_LINK_PENDING,   /* not planned yet (start-up, a link just added by reload) */
	MON_LINK_OK,        /* planned, its last attempt succeeded */
	MON_LINK_BACKOFF,   /* its last attempt failed: retried after a backoff */
	MON_LINK_EXHAUSTED, /* generations of this epoch used up: no outbound SA until the next */
	MON_LINK_NSTATES,
};

/* The state's label value ("pending", "ok", "backoff", "exhausted"). */
const char *mon_link_state_name(enum mon_link_state s);

/* One configured link as the metrics show it. name is borrowed. */
struct mon_metrics_link {
	const char *name;
	bool has_epoch;         /* the planner ran for it */
	int64_t epoch;
	int64_t next_rotation;  /* start of the next epoch (Unix seconds), 0 if not planned */
	uint64_t rotations_ok, rotations_failed;
	enum mon_link_state state;
	/* Filled by mon_metrics_link_add_sa from the link's SAs in the table: */
	bool has_out;      /* an outbound SA of epoch is in the kernel */
	int64_t out_added; /* the current one's add time (of two, the newer: the kernel sends with it) */
	uint8_t out_gen;   /* and its generation */
	size_t inbound;    /* inbound SAs held (every epoch and generation) */
	int64_t soft_at, hard_at; /* earliest soft / hard lifetime of its SAs; 0 none */
};

/* Count e (an SA of link l: the caller matched it) into l's aggregates. */
void mon_metrics_link_add_sa(struct mon_metrics_link *l, const struct mon_sa *e);

/* What mon_metrics_render() shows. Arrays are borrowed; any may be empty. */
struct mon_metrics {
	int64_t now;           /* Unix seconds: ages and time left are computed at now */
	bool up;               /* sakeyd_up: 1 while running, 0 in the file left at exit */
	int64_t last_update;   /* last refresh from the kernel; 0 = never (metric left out) */
	const char *version;   /* sakeyd_build_info{version}; NULL: left out */
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
 * and TYPE lines, then the series; links in m's order, unmanaged SAs sorted
 * by dst, spi, proto, so equal inputs give equal text. Label values are
 * escaped (\\, \", \n). Series: sakeyd_up, sakeyd_build_info{version},
 * sakeyd_last_update_timestamp_seconds, sakeyd_sas{managed};
 * per link: sakeyd_link_state{link,state}, sakeyd_link_epoch,
 * sakeyd_link_next_rotation_timestamp_seconds, sakeyd_link_outbound_age_seconds,
 * sakeyd_link_outbound_generation, sakeyd_link_inbound_sas,
 * sakeyd_link_expiry_seconds{link,kind}, sakeyd_rotations_total{link,result};
 * per unmanaged SA (at most MON_METRICS_SA_MAX): sakeyd_sa_age_seconds and
 * sakeyd_sa_expiry_seconds{kind} labelled spi, src, dst, proto, then
 * sakeyd_sa_series_omitted; sakeyd_events_total{event},
 * sakeyd_alert_commands_total{result}, sakeyd_kernel_messages_dropped_total{reason},
 * sakeyd_xfrm_errors_total{error}. No key and no fingerprint in any of them.
 * On success *text (caller frees) holds *len bytes plus a NUL. 0 or -ENOMEM.
 */
int mon_metrics_render(const struct mon_metrics *m, char **text, size_t *len);

#endif
