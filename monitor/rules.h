/* SPDX-License-Identifier: ISC */
/* Alert decisions and the environment of alert_command: pure functions, no clock, no I/O. */
#ifndef SAKEYD_MONITOR_ALERT_H
#define SAKEYD_MONITOR_ALERT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "monitor/table.h"

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

/*
 * Whether e is older than max_age at now and has not been alerted for it
 * yet (once per SA life: the caller sets e->age_alerted). An SA without an
 * add time, or max_age 0, never is.
 */
bool mon_sa_too_old(const struct mon_sa *e, int64_t now, uint64_t max_age);

/* Seconds since e was added at now (0 if unknown or in the future). */
int64_t mon_sa_age(const struct mon_sa *e, int64_t now);

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
