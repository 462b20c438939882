/* SPDX-License-Identifier: ISC */
/* Unit tests for svc/base/log: journald's <N> prefixes, JOURNAL_STREAM, the line format, -q. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "svc/base/log.h"

/* 2023-11-14T22:13:20.123Z */
static const struct timespec ts = { .tv_sec = 1700000000, .tv_nsec = 123456789 };

static void test_priority(void **state)
{
	assert_int_equal(log_priority(LOG_LVL_ERR), 3);
	assert_int_equal(log_priority(LOG_LVL_WARN), 4);
	assert_int_equal(log_priority(LOG_LVL_INFO), 6);
	assert_int_equal(log_priority(LOG_LVL_DEBUG), 7);
	assert_int_equal(log_priority((enum log_level)42), 7);
}

static void test_journal_stream(void **state)
{
	assert_true(log_journal_stream_is("8:306630", 8, 306630));
	assert_true(log_journal_stream_is("0:0", 0, 0));
	assert_true(log_journal_stream_is("18446744073709551615:1", (dev_t)UINT64_MAX, 1));
	assert_false(log_journal_stream_is("8:306630", 8, 306631)); /* another stream */
	assert_false(log_journal_stream_is("8:306630", 9, 306630));
	assert_false(log_journal_stream_is(NULL, 8, 306630));
	assert_false(log_journal_stream_is("", 0, 0));
	assert_false(log_journal_stream_is(":", 0, 0));
	assert_false(log_journal_stream_is("8:", 8, 0));
	assert_false(log_journal_stream_is(":306630", 0, 306630));
	assert_false(log_journal_stream_is("8", 8, 0));
	assert_false(log_journal_stream_is("8:306630:1", 8, 306630));
	assert_false(log_journal_stream_is("8:306630x", 8, 306630));
	assert_false(log_journal_stream_is(" 8:306630", 8, 306630));
	assert_false(log_journal_stream_is("8: 306630", 8, 306630));
	assert_false(log_journal_stream_is("+8:306630", 8, 306630));
	assert_false(log_journal_stream_is("-8:306630", (dev_t)-8, 306630));
	assert_false(log_journal_stream_is("0x8:306630", 8, 306630));
	/* Past 64 bits: not a device number, whatever wraps to. */
	assert_false(log_journal_stream_is("18446744073709551624:306630", 8, 306630));
}

static void test_format_plain(void **state)
{
	char buf[256];

	/* Today's format, kept exactly: the tests and operators' greps read it. */
	size_t n = log_format(buf, sizeof(buf), false, LOG_LVL_INFO, "daemon_run", &ts,
			      "ready: 3 links");

	assert_int_equal(n, strlen(buf));
	assert_string_equal(buf,
			    "2023-11-14T22:13:20.123Z sakeyd[info] daemon_run: ready: 3 links");
	log_format(buf, sizeof(buf), false, LOG_LVL_ERR, "f", &ts, "x");
	assert_string_equal(buf, "2023-11-14T22:13:20.123Z sakeyd[error] f: x");
	log_format(buf, sizeof(buf), false, LOG_LVL_WARN, "f", &ts, "x");
	assert_string_equal(buf, "2023-11-14T22:13:20.123Z sakeyd[warning] f: x");
	log_format(buf, sizeof(buf), false, LOG_LVL_DEBUG, "f", &ts, "x");
	assert_string_equal(buf, "2023-11-14T22:13:20.123Z sakeyd[debug] f: x");
}

static void test_format_journal(void **state)
{
	char buf[256];

	/* No timestamp of ours: journald stamps each entry. */
	size_t n = log_format(buf, sizeof(buf), true, LOG_LVL_ERR, "store_open", &ts, "disk full");

	assert_int_equal(n, strlen(buf));
	assert_string_equal(buf, "<3>sakeyd[error] store_open: disk full");
	log_format(buf, sizeof(buf), true, LOG_LVL_WARN, "daemon_alert", &ts, "ALERT x link=-");
	assert_string_equal(buf, "<4>sakeyd[warning] daemon_alert: ALERT x link=-");
	log_format(buf, sizeof(buf), true, LOG_LVL_INFO, "f", &ts, "x");
	assert_string_equal(buf, "<6>sakeyd[info] f: x");
	log_format(buf, sizeof(buf), true, LOG_LVL_DEBUG, "f", &ts, "x");
	assert_string_equal(buf, "<7>sakeyd[debug] f: x");
}

static void test_format_one_line(void **state)
{
	char buf[256], small[12];

	/* A newline would start an entry journald gives the default priority. */
	log_format(buf, sizeof(buf), true, LOG_LVL_ERR, "f", &ts,
		   "a\nb\rc\td\x7f" "e\x01 \xc3\xa9");
	assert_string_equal(buf, "<3>sakeyd[error] f: a?b?c?d?e? \xc3\xa9");
	log_format(buf, sizeof(buf), false, LOG_LVL_ERR, "f", &ts, "a\nb");
	assert_string_equal(buf, "2023-11-14T22:13:20.123Z sakeyd[error] f: a?b");
	/* Truncated, always terminated. */
	assert_int_equal(log_format(small, sizeof(small), true, LOG_LVL_ERR, "f", &ts, "abcdef"),
			 sizeof(small) - 1);
	assert_string_equal(small, "<3>sakeyd[e");
	assert_int_equal(log_format(small, 1, true, LOG_LVL_ERR, "f", &ts, "abcdef"), 0);
	assert_string_equal(small, "");
	assert_int_equal(log_format(small, 0, true, LOG_LVL_ERR, "f", &ts, "abcdef"), 0);
}

/*
 * In a child: stderr into a new file, JOURNAL_STREAM set to its dev:ino (or
 * to another's, or unset), the level given; it logs one line per level and
 * one plain line. Returns what the file holds (static buffer).
 */
enum stream_env { ENV_MATCH, ENV_OTHER, ENV_UNSET };

static const char *run_child(enum stream_env how, enum log_level level)
{
	static char text[4096];
	char path[] = "/tmp/test_log.XXXXXX";
	int fd = mkstemp(path), status;
	struct stat st;
	ssize_t n;
	pid_t pid;

	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	fflush(stderr);
	pid = fork();
	assert_true(pid >= 0);
	if (!pid) {
		char env[64];

		dup2(fd, STDERR_FILENO);
		snprintf(env, sizeof(env), "%ju:%ju", (uintmax_t)st.st_dev,
			 (uintmax_t)st.st_ino + (how == ENV_OTHER));
		if (how == ENV_UNSET)
			unsetenv("JOURNAL_STREAM");
		else
			setenv("JOURNAL_STREAM", env, 1);
		log_set_level(level);
		log_err("e %d", 1);
		log_warn("w");
		log_info("i");
		log_debug("d");
		log_plain(LOG_LVL_ERR, "conf:3: bad");
		fflush(stderr);
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	n = pread(fd, text, sizeof(text) - 1, 0);
	assert_true(n >= 0);
	text[n] = '\0';
	close(fd);
	unlink(path);
	return text;
}

static void test_stderr_is_journal(void **state)
{
	const char *t = run_child(ENV_MATCH, LOG_LVL_DEBUG);

	assert_string_equal(t, "<3>sakeyd[error] run_child: e 1\n"
			       "<4>sakeyd[warning] run_child: w\n"
			       "<6>sakeyd[info] run_child: i\n"
			       "<7>sakeyd[debug] run_child: d\n"
			       "<3>conf:3: bad\n");
	/* -q: warnings and errors only. */
	t = run_child(ENV_MATCH, LOG_LVL_WARN);
	assert_string_equal(t, "<3>sakeyd[error] run_child: e 1\n"
			       "<4>sakeyd[warning] run_child: w\n"
			       "<3>conf:3: bad\n");
}

static void test_stderr_not_journal(void **state)
{
	/* JOURNAL_STREAM of another stream (stdout's, a parent's): our stderr is a plain file. */
	const char *t = run_child(ENV_OTHER, LOG_LVL_INFO);

	assert_null(strchr(t, '<'));
	assert_non_null(strstr(t, "Z sakeyd[error] run_child: e 1\n"));
	assert_non_null(strstr(t, "Z sakeyd[info] run_child: i\n"));
	assert_null(strstr(t, "debug"));
	assert_non_null(strstr(t, "\nconf:3: bad\n"));
	t = run_child(ENV_UNSET, LOG_LVL_INFO);
	assert_null(strchr(t, '<'));
	assert_non_null(strstr(t, "Z sakeyd[warning] run_child: w\n"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_priority),
		cmocka_unit_test(test_journal_stream),
		cmocka_unit_test(test_format_plain),
		cmocka_unit_test(test_format_journal),
		cmocka_unit_test(test_format_one_line),
		cmocka_unit_test(test_stderr_is_journal),
		cmocka_unit_test(test_stderr_not_journal),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
