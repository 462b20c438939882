/* SPDX-License-Identifier: ISC */
/* Threshold ranges of the Monitoring Plugins guidelines (-w/-c of sactl check); pure. */
#include "monitor/range.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/*
 * A decimal number filling exactly s[0..len): [+-]digits[.digits] or
 * [+-].digits. strtod alone would also take "inf", "nan", hex and
 * exponents, which the guidelines do not know.
 */
static bool parse_number(const char *s, size_t len, double *out)
{
	char buf[MON_RANGE_TEXT_LEN];
	size_t i = 0, digits = 0;
	char *end;

	if (!len || len >= sizeof(buf))
		return false;
	if (s[i] == '+' || s[i] == '-')
		i++;
	while (i < len && s[i] >= '0' && s[i] <= '9')
		i++, digits++;
	if (i < len && s[i] == '.') {
		i++;
		while (i < len && s[i] >= '0' && s[i] <= '9')
			i++, digits++;
	}
	if (i != len || !digits)
		return false;
	memcpy(buf, s, len);
	buf[len] = '\0';
	errno = 0;
	*out = strtod(buf, &end);
	return !errno && *end == '\0';
}

static int refuse(struct mon_range *r, const char **why, const char *reason)
{
	memset(r, 0, sizeof(*r));
	if (why)
		*why = reason;
	return -EINVAL;
}

int mon_range_parse(const char *s, struct mon_range *r, const char **why)
{
	const char *p = s, *colon;
	size_t len = strlen(s);

	memset(r, 0, sizeof(*r));
	if (!len)
		return refuse(r, why, "empty");
	if (len >= sizeof(r->text))
		return refuse(r, why, "too long");
	memcpy(r->text, s, len + 1);
	if (*p == '@') {
		r->inside = true;
		p++;
	}
	colon = strchr(p, ':');
	if (!colon) {
		/* "N": 0 to N. */
		r->has_start = r->has_end = true;
		r->start = 0;
		if (!parse_number(p, strlen(p), &r->end))
			return refuse(r, why, "not a number");
	} else {
		if (colon == p && colon[1] == '\0')
			return refuse(r, why, "neither a start nor an end");
		if (p[0] == '~' && colon == p + 1) {
			r->has_start = false;
		} else {
			r->has_start = true;
			/* ":N" as the reference implementation reads it: start 0. */
			if (colon == p)
				r->start = 0;
			else if (!parse_number(p, (size_t)(colon - p), &r->start))
				return refuse(r, why, "the start is not a number (or ~)");
		}
		if (colon[1] == '\0') {
			r->has_end = false;
		} else {
			r->has_end = true;
			if (!parse_number(colon + 1, strlen(colon + 1), &r->end))
				return refuse(r, why, "the end is not a number");
		}
	}
	if (r->has_start && r->has_end && r->start > r->end)
		return refuse(r, why, "the start is greater than the end");
	r->set = true;
	return 0;
}

bool mon_range_alert(const struct mon_range *r, double value)
{
	bool in;

	if (!r->set)
		return false;
	in = (!r->has_start || value >= r->start) && (!r->has_end || value <= r->end);
	return r->inside ? in : !in;
}
