/* SPDX-License-Identifier: ISC */
/* Logging to stderr with a level and the calling function; never given key material. */
#ifndef SAKEYD_LOG_H
#define SAKEYD_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <time.h>

enum log_level {
	LOG_LVL_ERR = 0,
	LOG_LVL_WARN,
	LOG_LVL_INFO,
	LOG_LVL_DEBUG,
};

/* Messages above this level are dropped (default LOG_LVL_INFO; -q LOG_LVL_WARN, -v DEBUG). */
void log_set_level(enum log_level level);
enum log_level log_get_level(void);

/*
 * The syslog priority journald reads from a "<N>" prefix (sd-daemon.h):
 * error 3 (SD_ERR), warning 4 (SD_WARNING), info 6 (SD_INFO), debug 7 (SD_DEBUG).
 */
int log_priority(enum log_level level);

/*
 * Whether env, the value of JOURNAL_STREAM ("DEV:INODE" in decimal, set by
 * systemd when stdout or stderr is a journal stream: systemd.exec(5)),
 * names the file with this st_dev and st_ino. NULL, an empty or malformed
 * value: false.
 */
bool log_journal_stream_is(const char *env, dev_t dev, ino_t ino);

/*
 * Whether lines get journald's "<N>" prefix instead of our own timestamp.
 * Decided at the first line from JOURNAL_STREAM and fstat(2) of stderr (as
 * systemd's own log.c does), unless log_set_journal set it first.
 */
bool log_to_journal(void);
void log_set_journal(bool on);

/*
 * One log line, without its newline, into buf (len bytes; truncated to fit,
 * always terminated): "YYYY-MM-DDTHH:MM:SS.mmmZ sakeyd[LEVEL] FUNC: MSG"
 * with ts in UTC; journal: "<N>sakeyd[LEVEL] FUNC: MSG" (no timestamp:
 * journald stamps each entry; ts is not read). Control bytes of msg
 * become '?', so one call is one line (journald would give a second line
 * the default priority). Returns the length written.
 */
size_t log_format(char *buf, size_t len, bool journal, enum log_level level, const char *func,
		  const struct timespec *ts, const char *msg);

void log_msg(enum log_level level, const char *func, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/*
 * A line of text that is already complete (a config diagnostic
 * "FILE:LINE: ..."): written as is, with only the "<N>" prefix when stderr
 * is the journal. Dropped above the level, as log_msg's lines.
 */
void log_plain(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_err(...) log_msg(LOG_LVL_ERR, __func__, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_LVL_WARN, __func__, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LVL_INFO, __func__, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_LVL_DEBUG, __func__, __VA_ARGS__)

#endif
