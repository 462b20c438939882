/* SPDX-License-Identifier: ISC */
/* Alert decisions and the environment of alert_command: pure functions, no clock, no I/O. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "monitor/rules.h"
#include "store/store.h"

int64_t mon_sa_age(const struct mon_sa *e, int64_t now)
{
	if (!e->added_at || now <= e->added_at)
		return 0;
	return now - e->added_at;
}

bool mon_sa_too_old(const struct mon_sa *e, int64_t now, uint64_t max_age)
{
	if (!max_age || !e->added_at || e->age_alerted)
		return false;
	/* max_age is at most CONF_DURATION_MAX: the cast cannot overflow. */
	return now - e->added_at > (int64_t)max_age;
}

const char *mon_proto_name(uint8_t proto, char *buf, size_t len)
{
	switch (proto) {
	case 0:
		snprintf(buf, len, "%s", "");
		break;
	case 50: /* IPPROTO_ESP */
		snprintf(buf, len, "esp");
		break;
	case 51: /* IPPROTO_AH */
		snprintf(buf, len, "ah");
		break;
	case 108: /* IPPROTO_COMP */
		snprintf(buf, len, "comp");
		break;
	default:
		snprintf(buf, len, "%u", (unsigned)proto);
	}
	return buf;
}

/*
 * Append "name=value" (value cleaned, truncated to leave `reserve` bytes) at
 * buf + *off. The name always fits: the caller reserved room for it.
 */
static char *put(char *buf, size_t len, size_t *off, size_t reserve, const char *name,
		 const char *value)
{
	static const char redacted[] = "[redacted]";
	char *start = buf + *off;
	size_t o = *off, limit = len - reserve - 1; /* last byte for the NUL */

	o += (size_t)snprintf(buf + o, len - o, "%s=", name);
	for (size_t i = 0; value && value[i] && o < limit;) {
		size_t run = 0;

		while (value[i + run] && store_is_b64_char(value[i + run]))
			run++;
		if (run && store_run_is_key(value + i, run)) {
			size_t n = sizeof(redacted) - 1;

			if (n > limit - o)
				n = limit - o;
			memcpy(buf + o, redacted, n);
			o += n;
			i += run;
			while (value[i] == '=')
				i++;
			continue;
		}
		if (!run)
			run = 1;
		for (size_t j = 0; j < run && o < limit; j++) {
			char c = value[i + j];

			buf[o++] = (c >= 0x20 && c < 0x7f) ? c : '?';
		}
		i += run;
	}
	buf[o++] = '\0';
	*off = o;
	return start;
}

int mon_alert_env(const struct mon_alert *a, char **envp, size_t n, char *buf, size_t len)
{
	static const char *const names[] = {
		"SAKEYD_EVENT", "SAKEYD_LINK",	"SAKEYD_SPI",	  "SAKEYD_SRC",
		"SAKEYD_DST",	"SAKEYD_PROTO", "SAKEYD_AGE",	  "SAKEYD_MESSAGE",
	};
	const size_t nvars = sizeof(names) / sizeof(names[0]);
	char spi[16] = "", age[24] = "", proto[8];
	const char *values[sizeof(names) / sizeof(names[0])];
	size_t need_after[sizeof(names) / sizeof(names[0]) + 1], off = 0;
	size_t path_len = strlen("PATH=" MON_ALERT_PATH) + 1;

	if (!a || !a->event || !a->event[0] || n < MON_ALERT_ENV_N || !envp || !buf)
		return -EINVAL;
	if (a->spi)
		snprintf(spi, sizeof(spi), "0x%" PRIx32, a->spi);
	if (a->age >= 0)
		snprintf(age, sizeof(age), "%" PRId64, a->age);
	values[0] = a->event;
	values[1] = a->link;
	values[2] = spi;
	values[3] = a->src;
	values[4] = a->dst;
	values[5] = mon_proto_name(a->proto, proto, sizeof(proto));
	values[6] = age;
	values[7] = a->message;

	/* need_after[i]: bytes the variables after i need at least (names, '=', NUL, PATH). */
	need_after[nvars] = path_len;
	for (size_t i = nvars; i-- > 0;)
		need_after[i] = need_after[i + 1] + (i + 1 < nvars ? strlen(names[i + 1]) + 2 : 0);
	if (len < need_after[0] + strlen(names[0]) + 2)
		return -ENOSPC;
	for (size_t i = 0; i < nvars; i++)
		envp[i] = put(buf, len, &off, need_after[i], names[i], values[i]);
	memcpy(buf + off, "PATH=" MON_ALERT_PATH, path_len);
	envp[nvars] = buf + off;
	envp[nvars + 1] = NULL;
	return (int)nvars + 1;
}
