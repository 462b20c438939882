/* SPDX-License-Identifier: ISC */
/* Threshold ranges of the Monitoring Plugins guidelines (-w/-c of sactl check); pure. */
#ifndef SAKEYD_MONITOR_RANGE_H
#define SAKEYD_MONITOR_RANGE_H

#include <stdbool.h>

/* Room for a range as given (it goes into the perfdata as it was written), NUL included. */
#define MON_RANGE_TEXT_LEN 64

/*
 * A range "[@]start:end" (monitoring-plugins.org/doc/guidelines.html,
 * "Threshold and ranges"): "10" is 0:10; "10:" is 10 to infinity; "~:10"
 * is minus infinity to 10; "10:20" alerts outside [10, 20], ends included;
 * "@10:20" alerts inside [10, 20].
 */
struct mon_range {
	bool set;    /* a range was given */
	bool inside; /* '@': alert inside */
	bool has_start, has_end; /* false: minus / plus infinity */
	double start, end;
	char text[MON_RANGE_TEXT_LEN];
};

/*
 * Parse s into *r. Numbers are decimal, optionally signed, with an optional
 * fraction ("-1.5"); nothing else (no exponent, "inf", hex or spaces).
 * Returns 0, or -EINVAL with *why (may be NULL) set to a static explanation
 * (empty, too long, not a number, start greater than end); *r is then unset.
 */
int mon_range_parse(const char *s, struct mon_range *r, const char **why);

/* Whether value alerts under r (never for an unset range). */
bool mon_range_alert(const struct mon_range *r, double value);

#endif
