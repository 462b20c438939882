/* SPDX-License-Identifier: ISC */
/* Logging to stderr with a level and the calling function; never given key material. */
#include <stdarg.h>
#include <stdio.h>
#include <time.h>

#include "svc/base/log.h"

static enum log_level max_level = LOG_LVL_INFO;

void log_set_level(enum log_level level)
{
	max_level = level;
}

enum log_level log_get_level(void)
{
	return max_level;
}

void log_msg(enum log_level level, const char *func, const char *fmt, ...)
{
	static const char *const names[] = { "error", "warning", "info", "debug" };
	char line[1024];
	struct timespec ts;
	struct tm tm;
	va_list ap;

	if (level > max_level)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	/* One fprintf per line keeps lines whole when several processes share stderr. */
	fprintf(stderr, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ sakeyd[%s] %s: %s\n",
		tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
		ts.tv_nsec / 1000000, names[level], func, line);
}
