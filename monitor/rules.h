/* SPDX-License-Identifier: ISC */
/* Monitoring rules: which event raises which alert, sactl check's verdict; pure, `now` given. */
#ifndef SAKEYD_MONITOR_ALERT_H
#define SAKEYD_MONITOR_ALERT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conf/conf.h"
#include "monitor/range.h"
#include "monitor/table.h"
#include "monitor/xfrm_stat.h"
#include "store/store.h"

/* Room for an alert's message, NUL included (daemon_alert keeps as much). */
#define MON_MSG_LEN 512

/* What to do about one observation: which alert to raise, whether to reconcile now. */
struct mon_verdict {
	const char *alert;         /* the event to raise (DESIGN.md "Interfaces"), NULL: none */
	char message[MON_MSG_LEN]; /* the alert's text */
	const char *kick;          /* why to reconcile at once, NULL: no need */
};

/* ---- Kernel events ---- */

enum mon_expire_kind {
	MON_EXPIRE_LARVAL,    /* no such SA, or SPI 0: a larval state of an unanswered acquire */
	MON_EXPIRE_HARD,      /* the kernel deleted the SA: alert once, then it leaves the table */
	MON_EXPIRE_SOFT,      /* first soft expiry: alert; the SA is dying (MON_DYING) */
	MON_EXPIRE_DUPLICATE, /* soft expiry already alerted: nothing */
};

/*
 * An EXPIRE of the SA e (NULL if not in the table) with SPI spi, hard or
 * soft. Fills v: expire-hard unless e->hard_alerted; expire-soft, with a
 * kick when e is managed (its rotation schedule was missed). The caller
 * marks e (hard_alerted, or soft_alerted and MON_DYING) as it acts.
 */
enum mon_expire_kind mon_expire_verdict(const struct mon_sa *e, uint32_t spi, bool hard,
					struct mon_verdict *v);

/* Whether the managed SA e is one its link's plan wants at now. */
bool mon_sa_still_planned(const struct mon_sa *e, int64_t now);

/*
 * The SA e leaves the kernel (why: "deleted by another tool", "hard-expired"...).
 * True, with v filled (sa-removed, or expire-hard if hard; and a kick),
 * when e is managed and still planned at now: it must be re-installed.
 */
bool mon_removal_verdict(const struct mon_sa *e, int64_t now, const char *why, bool hard,
			 struct mon_verdict *v);

/* Whether link answers an ACQUIRE for traffic src -> dst (its local and remote addresses). */
bool mon_acquire_answered_by(const struct conf_link *link, const struct conf_addr *src,
			     const struct conf_addr *dst);

/*
 * An ACQUIRE src -> dst that no link answers: the traffic is dropped. Fills
 * v (acquire-unanswered) and *subject, the ESP SA src -> dst the alert names.
 */
void mon_acquire_unanswered(const struct conf_addr *src, const struct conf_addr *dst,
			    struct mon_sa *subject, struct mon_verdict *v);

/*
 * A FLUSH by another tool emptied the SADB (of one protocol). True, with v
 * filled (sa-removed and a kick), when it removed a managed SA.
 */
bool mon_flush_verdict(bool removed_managed, struct mon_verdict *v);

/* ---- The periodic refresh dump ---- */

/* A periodic dump waits this many times the last dump's length after its end. */
#define MON_REFRESH_SPACING 3

/* What the refresh rule knows of the dumps; all in milliseconds. */
struct mon_refresh {
	bool dump_running;     /* a dump is under way, or owed already */
	bool dumped;           /* a dump has ended before: the two below are known */
	uint64_t last_took_ms; /* how long the last one took */
	uint64_t since_end_ms; /* since it ended */
	uint64_t interval_ms;  /* refresh_interval */
};

/*
 * Whether a refresh_interval tick starts a dump: never while one runs (it
 * refreshes already; one asked for then started the moment it ended, back
 * to back), and after a dump longer than interval / MON_REFRESH_SPACING
 * not before MON_REFRESH_SPACING times its length has passed since its
 * end. *stretched (may be NULL) tells whether that stretch applies.
 */
bool mon_refresh_due(const struct mon_refresh *r, bool *stretched);

/* ---- Checks after each dump ---- */

/*
 * Whether e is older than max_age at now and has not been alerted for it
 * yet (once per SA life: the caller sets e->age_alerted). An SA without an
 * add time, or max_age 0, never is.
 */
bool mon_sa_too_old(const struct mon_sa *e, int64_t now, uint64_t max_age);

/* Seconds since e was added at now (0 if unknown or in the future). */
int64_t mon_sa_age(const struct mon_sa *e, int64_t now);

/*
 * sa-too-old: true, with v filled, when mon_sa_too_old(e, now, max_age);
 * the caller then sets e->age_alerted.
 */
bool mon_too_old_verdict(const struct mon_sa *e, int64_t now, uint64_t max_age,
			 struct mon_verdict *v);

/* xfrm-errors: at most one alert this often; rises in between add up into the next one. */
#define MON_XFRM_ALERT_EVERY_S 60

/* What the xfrm-errors check remembers between readings; all zero to start (or start over). */
struct mon_xfrm_watch {
	bool has_baseline;
	struct mon_xfrm_stat base[MON_XFRM_MAX]; /* as last alerted on, or first read */
	size_t nbase;
	int64_t alerted_at; /* 0: never */
};

/*
 * One reading cur[0..n) of /proc/net/xfrm_stat at now. The first reading is
 * the baseline; then a rise of any counter since the baseline raises
 * xfrm-errors (true, v filled) at most once per MON_XFRM_ALERT_EVERY_S
 * (unless the clock went back), and the reading becomes the baseline.
 * While held off, the baseline stays: the rises add up. No counters (n 0:
 * the kernel keeps none) change nothing.
 */
bool mon_xfrm_check(struct mon_xfrm_watch *w, const struct mon_xfrm_stat *cur, size_t n,
		    int64_t now, struct mon_verdict *v);

/* ---- sactl check ---- */

/* Monitoring-plugin exit statuses. */
enum mon_check_status {
	MON_CHECK_OK = 0,
	MON_CHECK_WARNING,
	MON_CHECK_CRITICAL,
	MON_CHECK_UNKNOWN,
};

/* Events count if they are newer than the last check or this recent, whichever is older. */
#define MON_CHECK_LOOKBACK_S 900
/* A buffer of this size always holds mon_check()'s status line. */
#define MON_CHECK_LINE_LEN 2048
/* Room for mon_human_duration(): "106751991167300d23h" and the NUL. */
#define MON_HUMAN_LEN 48

/* Events of the window, counted by kind, with the first of each kind kept for the message. */
struct mon_event_tally {
	uint64_t n[STORE_EV_COUNT_];
	struct store_event first[STORE_EV_COUNT_];
};

/* Count ev into t (a kind out of range is left out). */
void mon_event_tally_add(struct mon_event_tally *t, const struct store_event *ev);

/* Start of the event window at now: the last check (0: none), or the lookback if more recent. */
int64_t mon_check_since(int64_t now, int64_t last_check);

/* What sactl check looks at, read from the database. Arrays are borrowed. */
struct mon_check_in {
	int64_t now;
	int64_t since;             /* start of the event window (mon_check_since) */
	bool running;              /* a live sakeyd has the recorded pid */
	int64_t pid;               /* the recorded pid, 0 if none */
	int64_t last_write_at;     /* the daemon's last write, 0 if never */
	uint64_t refresh_interval; /* seconds, from the config */
	uint64_t warn_age;         /* an SA older than this warns */
	size_t nlinks;
	const struct store_sa *sas;
	size_t nsas;
	const struct mon_event_tally *events; /* of the window */
	uint64_t rotation_failures;           /* failed rotations of the window */
	/*
	 * -w and -c (NULL or unset: none), on hard_expiry_in: the seconds to
	 * the earliest hard expiry of an SA not gone, when the kernel stops
	 * using it. A managed SA's hard expiry is hard_slack after its planned
	 * removal, so it stays above hard_slack while sakeyd keeps its schedule.
	 */
	const struct mon_range *warn, *crit;
};

/*
 * The verdict of sactl check: CRITICAL (daemon down, hard expiry, rotation
 * failure, hard_expiry_in in the critical range), WARNING (soft expiry,
 * dying or too old SAs, removal, unanswered acquire, kernel errors, stale
 * data, hard_expiry_in in the warning range) or OK, and the status line with its
 * perfdata into line (len bytes; MON_CHECK_LINE_LEN always suffices), no
 * newline. Returns the status.
 */
enum mon_check_status mon_check(const struct mon_check_in *in, char *line, size_t len);

/* Age of a stored SA: at now, or its whole life if gone; 0 if added later. */
int64_t mon_stored_sa_age(const struct store_sa *sa, int64_t now);

/* "3m12s", "2h5m", "4d3h": the two largest units, the second left out when 0. Returns buf. */
char *mon_human_duration(int64_t secs, char buf[MON_HUMAN_LEN]);

/* ---- alert_command ---- */

/* PATH of an alert command: the only variable it gets besides SAKEYD_* (DESIGN.md "Interfaces"). */
#define MON_ALERT_PATH "/usr/sbin:/usr/bin:/sbin:/bin"
/* Entries mon_alert_env() writes: the 8 SAKEYD_* variables, PATH, and the NULL terminator. */
#define MON_ALERT_ENV_N 10
/* A buffer of this size always holds the environment (values are truncated to fit it). */
#define MON_ALERT_ENV_BUF 2048

/*
 * One alert as alert_command sees it. Strings are borrowed; NULL or "" means
 * absent and the variable is then set to "" (the command always gets all of
 * them). spi 0 and proto 0 mean absent, age < 0 unknown.
 */
struct mon_alert {
	const char *event;   /* expire-soft, expire-hard, acquire-unanswered, sa-removed, ... */
	const char *link;    /* the managed link, NULL if none */
	uint32_t spi;        /* host order */
	const char *src;     /* IP literals */
	const char *dst;
	uint8_t proto;       /* IPPROTO_ESP... */
	int64_t age;         /* seconds since the SA was added */
	const char *message; /* free text; control bytes and key-like runs are cleaned */
};

/* Room for the text of an alert's addresses (INET6_ADDRSTRLEN), filled by mon_alert_fill. */
struct mon_alert_addrs {
	char src[46], dst[46];
};

/*
 * Fill a with the fields of an alert about the SA e (NULL: none) of link
 * (NULL: e's link if managed, else none), with message (borrowed): SPI,
 * protocol, addresses (written into room, which must outlive a), and the
 * age at now when the kernel said when e was added. The log line
 * (mon_alert_line) and alert_command's environment (mon_alert_env) are
 * both made from it, so they carry the same fields.
 */
void mon_alert_fill(struct mon_alert *a, const char *event, const struct mon_sa *e,
		    const struct conf_link *link, const char *message, int64_t now,
		    struct mon_alert_addrs *room);

/* A buffer of this size holds any alert line (the message is truncated to fit). */
#define MON_ALERT_LINE_LEN (MON_MSG_LEN + 256)

/*
 * The alert's log line into buf (len bytes, always terminated; the message
 * is truncated to fit), no newline:
 *   ALERT <event> link=<l> spi=<0x..> src=<a> dst=<a> proto=<p> age=<s> event=<event> msg=<text>
 * Every field is always there, "-" when absent; the values are words (no
 * space: a space or control byte becomes '?'); msg= comes last and runs to
 * the end of the line (spaces kept, control bytes '?'). Runs shaped like a
 * key become "[redacted]" as in mon_alert_env. Returns the length, or
 * -EINVAL (no event, no buffer).
 */
int mon_alert_line(const struct mon_alert *a, char *buf, size_t len);

/* "esp", "ah", "comp", or the number in decimal; "" for 0. Writes into buf (>= 4 bytes). */
const char *mon_proto_name(uint8_t proto, char *buf, size_t len);

/*
 * Build the environment of alert_command for a: envp[0..8] point into buf
 * ("SAKEYD_EVENT=...", ..., "PATH=" MON_ALERT_PATH) and envp[9] is NULL.
 * SAKEYD_SPI is "0x" and lowercase hex, SAKEYD_AGE decimal seconds. Values
 * lose control bytes ('?') and runs of 32+ hex digits or 40+ base64
 * characters ("[redacted]"): never a key, whatever a message says; values
 * too long for buf are truncated. n must be >= MON_ALERT_ENV_N. Returns the
 * number of variables (9), -EINVAL (no event, n too small) or -ENOSPC (len
 * too small for even the names).
 */
int mon_alert_env(const struct mon_alert *a, char **envp, size_t n, char *buf, size_t len);

#endif
