/* SPDX-License-Identifier: ISC */
/* Logging to stderr with a level and the calling function; never given key material. */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "svc/base/log.h"

static enum log_level max_level = LOG_LVL_INFO;
/* -1: not decided yet (the first line decides), else 0 or 1. */
static int journal = -1;

static const char *const level_names[] = { "error", "warning", "info", "debug" };

void log_set_level(enum log_level level)
{
	max_level = level;
}

enum log_level log_get_level(void)
{
	return max_level;
}

int log_priority(enum log_level level)
{
	/* sd-daemon.h: SD_ERR "<3>", SD_WARNING "<4>", SD_INFO "<6>", SD_DEBUG "<7>". */
	static const int prio[] = { 3, 4, 6, 7 };

	return (unsigned)level < sizeof(prio) / sizeof(prio[0]) ? prio[level] : 7;
}

/* A decimal number of digits only (no sign, no space: strtoumax would take both) up to end. */
static bool parse_decimal(const char *s, const char *end, uintmax_t *out)
{
	char *stop;

	if (s == end || *s < '0' || *s > '9')
		return false;
	errno = 0;
	*out = strtoumax(s, &stop, 10);
	return !errno && stop == end;
}

bool log_journal_stream_is(const char *env, dev_t dev, ino_t ino)
{
	const char *colon = env ? strchr(env, ':') : NULL;
	uintmax_t d, i;

	if (!colon || !parse_decimal(env, colon, &d) ||
	    !parse_decimal(colon + 1, colon + 1 + strlen(colon + 1), &i))
		return false;
	return d == (uintmax_t)dev && i == (uintmax_t)ino;
}

/* systemd's log.c (stderr_is_journal) decides the same way. */
static bool stderr_is_journal(void)
{
	const char *env = getenv("JOURNAL_STREAM");
	struct stat st;

	if (!env || fstat(STDERR_FILENO, &st))
		return false;
	return log_journal_stream_is(env, st.st_dev, st.st_ino);
}

bool log_to_journal(void)
{
	if (journal < 0)
		journal = stderr_is_journal();
	return journal;
}

void log_set_journal(bool on)
{
	journal = on;
}

/* Append msg at buf + o (len bytes in all), control bytes as '?'; returns the new length. */
static size_t put_clean(char *buf, size_t len, size_t o, const char *msg)
{
	for (; *msg && o + 1 < len; msg++)
		buf[o++] = ((unsigned char)*msg < 0x20 || *msg == 0x7f) ? '?' : *msg;
	buf[o] = '\0';
	return o;
}

size_t log_format(char *buf, size_t len, bool to_journal, enum log_level level, const char *func,
		  const struct timespec *ts, const char *msg)
{
	const char *name = (unsigned)level < 4 ? level_names[level] : "debug";
	struct tm tm;
	int n;

	if (!len)
		return 0;
	/* The journal's line is the other one without its timestamp: the same greps work. */
	if (to_journal) {
		n = snprintf(buf, len, "<%d>sakeyd[%s] %s: ", log_priority(level), name, func);
	} else {
		gmtime_r(&ts->tv_sec, &tm);
		n = snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ sakeyd[%s] %s: ",
			     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
			     tm.tm_sec, ts->tv_nsec / 1000000, name, func);
	}
	if (n < 0)
		n = 0;
	if ((size_t)n >= len)
		return len - 1;
	return put_clean(buf, len, (size_t)n, msg);
}

void log_msg(enum log_level level, const char *func, const char *fmt, ...)
{
	char msg[1024], line[1200];
	struct timespec ts = { 0 };
	bool to_journal;
	va_list ap;

	if (level > max_level)
		return;
	to_journal = log_to_journal();
	if (!to_journal)
		clock_gettime(CLOCK_REALTIME, &ts);
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_format(line, sizeof(line), to_journal, level, func, &ts, msg);
	/* One fprintf per line keeps lines whole when several processes share stderr. */
	fprintf(stderr, "%s\n", line);
}

void log_plain(enum log_level level, const char *fmt, ...)
{
	char msg[1024], line[1100];
	size_t o = 0;
	va_list ap;

	if (level > max_level)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (log_to_journal())
		o = (size_t)snprintf(line, sizeof(line), "<%d>", log_priority(level));
	put_clean(line, sizeof(line), o, msg);
	fprintf(stderr, "%s\n", line);
}
