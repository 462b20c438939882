/* SPDX-License-Identifier: ISC */
/* Tests for svc/daemon/sinks: alert_command children on a real loop (environment, time limit, cap,
 * queue, failures), the sa-too-old check and the metrics file. */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <uv.h>

#include "fake_daemon.h"
#include "fixture.h"
#include "svc/daemon/sinks.h"

struct fixture {
	char dir[64];
	struct fake_daemon d;
	struct sinks *s;
	struct config cfg;
	uv_timer_t tick;
	struct conf_link link;
};

static void write_script(struct fixture *f, const char *name, const char *body)
{
	char path[128];
	FILE *s;

	snprintf(path, sizeof(path), "%s/%s", f->dir, name);
	s = fopen(path, "w");
	assert_non_null(s);
	fprintf(s, "#!/bin/sh\n%s\n", body);
	fclose(s);
	assert_int_equal(chmod(path, 0755), 0);
}

static void use_command(struct fixture *f, const char *name)
{
	snprintf(f->cfg.daemon.alert_command, sizeof(f->cfg.daemon.alert_command), "%s/%s", f->dir,
		 name);
}

static void tick_cb(uv_timer_t *t)
{
}

static int start_sinks(struct fixture *f)
{
	struct daemon_port port = fake_daemon_port(&f->d);
	int ret = sinks_new(&port, &f->s);

	if (!ret)
		f->d.obs = sinks_observer(f->s);
	return ret;
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char body[512];

	if (!f)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/test_alerts.XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	f->cfg.daemon.max_sa_age = 24 * 3600;
	/* Not the host's /proc/net/xfrm_stat: test_xfrm_errors watches a file of its own. */
	f->cfg.daemon.kernel = CONF_KERNEL_SIM;
	f->d.cfg = &f->cfg;
	f->d.table = mon_table_new();
	snprintf(f->link.name, sizeof(f->link.name), "l1");
	if (uv_loop_init(&f->d.loop) || !f->d.table)
		return -1;
	uv_timer_init(&f->d.loop, &f->tick);
	uv_timer_start(&f->tick, tick_cb, 10, 10);
	/* The recorder: the exact environment (NUL-separated, as exec'd) and the arguments. */
	snprintf(body, sizeof(body),
		 "cat /proc/$$/environ > %s/env.$$.tmp && mv %s/env.$$.tmp %s/env.$$\n"
		 "echo \"$# $0 $(pwd)\" > %s/args.$$",
		 f->dir, f->dir, f->dir, f->dir);
	write_script(f, "record", body);
	snprintf(body, sizeof(body), "sleep 0.3\ntouch %s/done.$$", f->dir);
	write_script(f, "slow", body);
	snprintf(body, sizeof(body), "sleep 30 &\necho $! > %s/sleep.pid\nwait", f->dir);
	write_script(f, "hang", body);
	write_script(f, "fail", "exit 3");
	snprintf(body, sizeof(body), "ls /proc/$$/fd > %s/fds.$$.tmp && mv %s/fds.$$.tmp %s/fds.$$",
		 f->dir, f->dir, f->dir);
	write_script(f, "fds", body);
	if (start_sinks(f))
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	sinks_stop(f->s);
	fixture_loop_close(&f->d.loop);
	sinks_free(f->s);
	mon_table_free(f->d.table);
	fixture_rm_tree(f->dir);
	free(f);
	return 0;
}

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Run the loop until pred holds or ms pass; returns pred's last value. */
static bool run_until(struct fixture *f, bool (*pred)(struct fixture *f, void *arg), void *arg,
		      int ms)
{
	int64_t end = mono_ms() + ms;

	while (!pred(f, arg) && mono_ms() < end)
		uv_run(&f->d.loop, UV_RUN_ONCE);
	return pred(f, arg);
}

static size_t count_files(struct fixture *f, const char *prefix)
{
	DIR *dir = opendir(f->dir);
	struct dirent *de;
	size_t n = 0;

	assert_non_null(dir);
	while ((de = readdir(dir)))
		if (!strncmp(de->d_name, prefix, strlen(prefix)) && !strstr(de->d_name, ".tmp"))
			n++;
	closedir(dir);
	return n;
}

static bool files_at_least(struct fixture *f, void *arg)
{
	const char *prefix = ((const char **)arg)[0];
	size_t want = (size_t)(uintptr_t)((const char **)arg)[1];

	return count_files(f, prefix) >= want;
}

static bool all_done(struct fixture *f, void *arg)
{
	const struct sinks_stats *s = sinks_get_stats(f->s);
	unsigned long want = (unsigned long)(uintptr_t)arg;

	return s->ok + s->failed + s->timeouts >= want;
}

static bool summaries_at_least(struct fixture *f, void *arg)
{
	return sinks_get_stats(f->s)->summaries >= (unsigned long)(uintptr_t)arg;
}

static struct mon_sa sample_sa(struct fixture *f)
{
	struct mon_sa e = { 0 };

	e.sa.spi = 0x2a000007;
	e.sa.proto = IPPROTO_ESP;
	e.sa.src.family = e.sa.dst.family = AF_INET;
	inet_pton(AF_INET, "192.0.2.1", e.sa.src.bytes);
	inet_pton(AF_INET, "198.51.100.7", e.sa.dst.bytes);
	e.added_at = time(NULL) - 5;
	e.managed = true;
	e.sa.link = &f->link;
	e.sa.dir = ROT_DIR_OUT;
	return e;
}

/* The first file named prefix*, read whole into buf; returns its length. */
static size_t read_first(struct fixture *f, const char *prefix, char *buf, size_t len)
{
	DIR *dir = opendir(f->dir);
	struct dirent *de;
	char path[512];
	ssize_t n = -1;
	int fd;

	assert_non_null(dir);
	while ((de = readdir(dir))) {
		if (strncmp(de->d_name, prefix, strlen(prefix)) || strstr(de->d_name, ".tmp"))
			continue;
		snprintf(path, sizeof(path), "%s/%s", f->dir, de->d_name);
		fd = open(path, O_RDONLY);
		assert_true(fd >= 0);
		n = read(fd, buf, len - 1);
		close(fd);
		break;
	}
	closedir(dir);
	assert_true(n >= 0);
	buf[n] = '\0';
	return (size_t)n;
}

static void test_environment(void **state)
{
	struct fixture *f = *state;
	struct mon_sa e = sample_sa(f);
	const char *want[] = { "env.", (const char *)(uintptr_t)1 };
	const char *expect[] = {
		"SAKEYD_EVENT=expire-soft",   "SAKEYD_LINK=l1",		  "SAKEYD_SPI=0x2a000007",
		"SAKEYD_SRC=192.0.2.1",	      "SAKEYD_DST=198.51.100.7", "SAKEYD_PROTO=esp",
		NULL /* AGE */,
		"SAKEYD_MESSAGE=soft lifetime reached: refresh its keys",
		"PATH=/usr/sbin:/usr/bin:/sbin:/bin",
		"SAKEYD_COUNT=1",
	};
	char buf[4096], args[512], expect_args[256];
	size_t len, nvars = 0;

	/* Something the daemon has that the child must not see. */
	setenv("SAKEYD_TEST_SECRET", "leak", 1);
	use_command(f, "record");
	f->d.obs->alert(f->d.obs->self, "expire-soft", &e, e.sa.link,
			 "soft lifetime reached: refresh its keys");
	assert_true(run_until(f, files_at_least, want, 5000));
	assert_true(run_until(f, all_done, (void *)(uintptr_t)1, 5000));
	len = read_first(f, "env.", buf, sizeof(buf));
	for (size_t off = 0; off < len; off += strlen(buf + off) + 1) {
		const char *var = buf + off;

		assert_true(nvars < 10);
		if (expect[nvars])
			assert_string_equal(var, expect[nvars]);
		else
			assert_true(!strcmp(var, "SAKEYD_AGE=5") || !strcmp(var, "SAKEYD_AGE=6"));
		nvars++;
	}
	assert_int_equal(nvars, 10); /* nothing else: not SAKEYD_TEST_SECRET, not HOME... */
	assert_null(memmem(buf, len, "leak", 4));
	read_first(f, "args.", args, sizeof(args));
	snprintf(expect_args, sizeof(expect_args), "0 %s/record /\n", f->dir);
	assert_string_equal(args, expect_args);
	assert_int_equal(sinks_get_stats(f->s)->ok, 1);
	assert_int_equal(sinks_get_stats(f->s)->failed, 0);
	unsetenv("SAKEYD_TEST_SECRET");
}

/* Descriptors the daemon inherited or opened without O_CLOEXEC do not reach the command. */
static void test_descriptors_closed(void **state)
{
	struct fixture *f = *state;
	const char *want[] = { "fds.", (const char *)(uintptr_t)1 };
	char buf[4096], *line, *save;
	int fd = open("/dev/null", O_RDONLY); /* no O_CLOEXEC, like a starting shell's */

	assert_true(fd >= 0);
	assert_int_equal(dup2(fd, 251), 251);
	close(fd);
	use_command(f, "fds");
	f->d.obs->alert(f->d.obs->self, "expire-hard", NULL, NULL, "x");
	assert_true(run_until(f, files_at_least, want, 5000));
	read_first(f, "fds.", buf, sizeof(buf));
	close(251);
	for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		/* Besides 0-2, only the script the shell reads (dash: fd 10 and up). */
		assert_string_not_equal(line, "251");
	}
	assert_int_equal(sinks_get_stats(f->s)->failed, 0);
}

static void test_no_sa(void **state)
{
	struct fixture *f = *state;
	const char *want[] = { "env.", (const char *)(uintptr_t)1 };
	char buf[4096];
	size_t len;

	use_command(f, "record");
	f->d.obs->alert(f->d.obs->self, "rotation-failed", NULL, NULL, "the ledger cannot be written");
	assert_true(run_until(f, files_at_least, want, 5000));
	len = read_first(f, "env.", buf, sizeof(buf));
	assert_non_null(memmem(buf, len, "SAKEYD_EVENT=rotation-failed\0SAKEYD_LINK=\0SAKEYD_SPI=\0"
					 "SAKEYD_SRC=\0SAKEYD_DST=\0SAKEYD_PROTO=\0SAKEYD_AGE=\0",
			       strlen("SAKEYD_EVENT=rotation-failed") + 1 + 12 + 12 + 12 + 12 + 14 +
				       12));
}

static void test_timeout(void **state)
{
	struct fixture *f = *state;
	const char *want[] = { "sleep.pid", (const char *)(uintptr_t)1 };
	char buf[64], path[64];
	long pid;
	FILE *st;

	sinks_set_limits(f->s, 300, 0, 0);
	use_command(f, "hang");
	f->d.obs->alert(f->d.obs->self, "expire-hard", NULL, NULL, "x");
	assert_true(run_until(f, files_at_least, want, 5000));
	/* Within 5 s: the 300 ms limit applied, not the default 10 s (no timing asserted beyond). */
	assert_true(run_until(f, all_done, (void *)(uintptr_t)1, 5000));
	assert_int_equal(sinks_get_stats(f->s)->timeouts, 1);
	assert_int_equal(sinks_get_stats(f->s)->ok + sinks_get_stats(f->s)->failed, 0);
	/* The whole process group went: the command's own child too. */
	read_first(f, "sleep.pid", buf, sizeof(buf));
	pid = strtol(buf, NULL, 10);
	assert_true(pid > 0);
	/*
	 * SIGKILL is delivered when the child next runs, which under load can
	 * take a while: wait (up to 10 s) until it is gone or a zombie, which
	 * a command that escaped the group's kill would never become.
	 */
	snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
	for (int i = 0; i < 1000; i++) {
		char line[256] = "";

		st = fopen(path, "r");
		if (!st)
			break;
		if (!fgets(line, sizeof(line), st))
			line[0] = 0;
		fclose(st);
		if (strstr(line, ") Z"))
			break;
		assert_true(i < 999);
		usleep(10 * 1000);
	}
}

/* The pid written in the file name (in f->dir) by a command, or 0 if not yet there. */
static long pid_in(struct fixture *f, const char *name)
{
	char path[128], buf[32] = "";
	FILE *in;

	snprintf(path, sizeof(path), "%s/%s", f->dir, name);
	in = fopen(path, "r");
	if (!in)
		return 0;
	if (!fgets(buf, sizeof(buf), in))
		buf[0] = '\0';
	fclose(in);
	return strtol(buf, NULL, 10);
}

/* Process arg is gone: dead and reaped (a zombie still has its /proc entry). */
static bool process_gone(struct fixture *f, void *arg)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/%ld", (long)(intptr_t)arg);
	return access(path, F_OK) != 0;
}

/* A sleeper in a session of its own (setsid), left running by a command that exits 0. */
static void test_leftover_after_exit(void **state)
{
	struct fixture *f = *state;
	const struct sinks_stats *s = sinks_get_stats(f->s);
	char body[512];
	long pid;

	snprintf(body, sizeof(body),
		 "setsid sh -c 'echo $$ > %s/left.tmp && mv %s/left.tmp %s/left; exec sleep 30' &\n"
		 "while [ ! -s %s/left ]; do sleep 0.01; done",
		 f->dir, f->dir, f->dir, f->dir);
	write_script(f, "leave", body);
	use_command(f, "leave");
	f->d.obs->alert(f->d.obs->self, "expire-soft", NULL, NULL, "x");
	assert_true(run_until(f, all_done, (void *)(uintptr_t)1, 5000));
	assert_int_equal(s->ok, 1);
	pid = pid_in(f, "left");
	assert_true(pid > 0);
	/* Killed when the command exited, and reaped (no zombie): SIGKILL lands when it runs. */
	assert_true(run_until(f, process_gone, (void *)(intptr_t)pid, 10000));
	assert_int_equal(s->leftovers, 1);
}

/* A command that double-forks a sleeper out of its session, then runs past its time limit. */
static void test_leftover_after_timeout(void **state)
{
	struct fixture *f = *state;
	const struct sinks_stats *s = sinks_get_stats(f->s);
	const char *want[] = { "orphan", (const char *)(uintptr_t)1 };
	char body[512];
	long pid;

	snprintf(body, sizeof(body),
		 "( setsid sh -c 'echo $$ > %s/orphan.tmp && mv %s/orphan.tmp %s/orphan; "
		 "exec sleep 30' & )\n"
		 "sleep 30",
		 f->dir, f->dir, f->dir);
	write_script(f, "daemonize", body);
	/* Long enough for the orphan to write its pid under load, short for a test. */
	sinks_set_limits(f->s, 1000, 0, 0);
	use_command(f, "daemonize");
	f->d.obs->alert(f->d.obs->self, "expire-hard", NULL, NULL, "x");
	assert_true(run_until(f, files_at_least, want, 5000));
	pid = pid_in(f, "orphan");
	assert_true(pid > 0);
	assert_true(run_until(f, all_done, (void *)(uintptr_t)1, 5000));
	assert_int_equal(s->timeouts, 1);
	assert_true(run_until(f, process_gone, (void *)(intptr_t)pid, 10000));
	/* The orphan, and the command's own sleep 30 in its group. */
	assert_true(s->leftovers >= 1);
}

static void test_cap_and_queue(void **state)
{
	struct fixture *f = *state;
	const struct sinks_stats *s = sinks_get_stats(f->s);

	use_command(f, "slow");
	for (int i = 0; i < 10; i++)
		f->d.obs->alert(f->d.obs->self, "sa-too-old", NULL, NULL, "x");
	/* Four run at once, six wait. */
	assert_int_equal(s->started, 4);
	assert_int_equal(s->queued, 10);
	assert_true(run_until(f, all_done, (void *)(uintptr_t)10, 10000));
	assert_int_equal(s->started, 10);
	assert_int_equal(s->ok, 10);
	assert_int_equal(s->running_max, 4);
	assert_int_equal(s->dropped, 0);
	assert_int_equal(count_files(f, "done."), 10);
}

static void test_queue_overflow(void **state)
{
	struct fixture *f = *state;
	const struct sinks_stats *s = sinks_get_stats(f->s);

	sinks_set_limits(f->s, 0, 2, 3);
	use_command(f, "slow");
	for (int i = 0; i < 10; i++)
		f->d.obs->alert(f->d.obs->self, "expire-soft", NULL, NULL, "x");
	assert_int_equal(s->started, 2);
	assert_int_equal(s->dropped, 5); /* 2 running + 3 queued */
	assert_true(run_until(f, all_done, (void *)(uintptr_t)5, 10000));
	assert_int_equal(s->ok, 5);
	assert_int_equal(s->running_max, 2);
}

static void test_failures(void **state)
{
	struct fixture *f = *state;
	const struct sinks_stats *s = sinks_get_stats(f->s);

	use_command(f, "fail");
	f->d.obs->alert(f->d.obs->self, "expire-soft", NULL, NULL, "x");
	assert_true(run_until(f, all_done, (void *)(uintptr_t)1, 5000));
	assert_int_equal(s->failed, 1);
	use_command(f, "does-not-exist");
	f->d.obs->alert(f->d.obs->self, "expire-soft", NULL, NULL, "x");
	assert_int_equal(s->failed, 2); /* the spawn itself failed */
	assert_int_equal(s->started, 1);
	/* Without a command: nothing runs. */
	f->cfg.daemon.alert_command[0] = '\0';
	f->d.obs->alert(f->d.obs->self, "expire-soft", NULL, NULL, "x");
	assert_int_equal(s->queued, 2);
}

static void test_stop_with_running(void **state)
{
	struct fixture *f = *state;
	const struct sinks_stats *s = sinks_get_stats(f->s);

	sinks_set_limits(f->s, 0, 1, 0);
	use_command(f, "hang");
	for (int i = 0; i < 3; i++)
		f->d.obs->alert(f->d.obs->self, "expire-soft", NULL, NULL, "x");
	assert_int_equal(s->started, 1);
	sinks_stop(f->s); /* teardown's stop is then a no-op; the loop must still close */
	assert_int_equal(s->dropped, 2);
	/* After the stop, alerts are no longer run. */
	f->d.obs->alert(f->d.obs->self, "expire-soft", NULL, NULL, "x");
	assert_int_equal(s->queued, 3);
}

static void test_too_old(void **state)
{
	struct fixture *f = *state;
	struct mon_sa e = sample_sa(f), *t;
	const struct sinks_stats *s = sinks_get_stats(f->s);
	const char *want[] = { "env.", (const char *)(uintptr_t)1 };
	bool created;
	char buf[4096];
	size_t len;

	use_command(f, "record");
	f->cfg.daemon.max_sa_age = 60;
	t = mon_table_put(f->d.table, &e.sa, &created);
	assert_non_null(t);
	*t = e;
	t->added_at = time(NULL) - 30;
	f->d.obs->synced(f->d.obs->self, 1);
	assert_int_equal(s->too_old, 0);
	t->added_at = time(NULL) - 3600;
	f->d.obs->synced(f->d.obs->self, 1);
	assert_int_equal(s->too_old, 1);
	assert_true(t->age_alerted);
	f->d.obs->synced(f->d.obs->self, 1); /* once per SA life */
	assert_int_equal(s->too_old, 1);
	assert_true(run_until(f, files_at_least, want, 5000));
	len = read_first(f, "env.", buf, sizeof(buf));
	assert_non_null(memmem(buf, len, "SAKEYD_EVENT=sa-too-old", 23));
	assert_non_null(memmem(buf, len, "SAKEYD_AGE=3600", 15));
	assert_non_null(memmem(buf, len, "max_sa_age 1m", 13));
}

static void test_metrics_file(void **state)
{
	struct fixture *f = *state;
	struct mon_sa e = sample_sa(f), *t;
	char path[128], buf[16384];
	bool created;
	struct stat st;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "%s/sakeyd.prom", f->dir);
	/* Unset: nothing written. */
	assert_int_equal(sinks_write_metrics(f->s), 0);
	assert_int_equal(stat(path, &st), -1);
	snprintf(f->cfg.daemon.metrics_file, sizeof(f->cfg.daemon.metrics_file), "%s", path);
	t = mon_table_put(f->d.table, &e.sa, &created);
	*t = e;
	assert_int_equal(sinks_write_metrics(f->s), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0644);
	fd = open(path, O_RDONLY);
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	assert_true(n > 0);
	buf[n] = '\0';
	assert_non_null(strstr(buf, "\nsakeyd_up 1\n"));
	/* A managed SA: counted, no series of its own (its SPI changes at every rotation). */
	assert_non_null(strstr(buf, "\nsakeyd_sas{managed=\"true\"} 1\n"));
	assert_null(strstr(buf, "spi=\"0x2a000007\""));
	assert_non_null(strstr(buf, "\nsakeyd_build_info{version=\"" SAKEYD_VERSION "\"} 1\n"));
	assert_non_null(strstr(buf, "sakeyd_events_total{event=\"expire-hard\"} 0\n"));
	/* Key schedule v2's kinds are counted like the others, from 0. */
	assert_non_null(strstr(buf, "sakeyd_events_total{event=\"generation-changed\"} 0\n"));
	assert_non_null(strstr(buf, "sakeyd_events_total{event=\"generations-exhausted\"} 0\n"));
	assert_non_null(strstr(buf, "sakeyd_events_total{event=\"replay-unprotected\"} 0\n"));
	/* A change is written within a second, coalesced. */
	f->d.obs->alert(f->d.obs->self, "expire-hard", &e, NULL, "x");
	f->d.obs->alert(f->d.obs->self, "expire-hard", &e, NULL, "x");
	f->d.obs->alert(f->d.obs->self, "generations-exhausted", &e, NULL, "x");
	{
		uint64_t before = sinks_get_stats(f->s)->metrics_written;
		int64_t end = mono_ms() + 3000;

		while (sinks_get_stats(f->s)->metrics_written == before && mono_ms() < end)
			uv_run(&f->d.loop, UV_RUN_ONCE);
		assert_int_equal(sinks_get_stats(f->s)->metrics_written, before + 1);
	}
	fd = open(path, O_RDONLY);
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	buf[n] = '\0';
	assert_non_null(strstr(buf, "sakeyd_events_total{event=\"expire-hard\"} 2\n"));
	assert_non_null(strstr(buf, "sakeyd_events_total{event=\"generations-exhausted\"} 1\n"));
	assert_non_null(strstr(buf, "sakeyd_events_total{event=\"replay-unprotected\"} 0\n"));
	/* At stop: sakeyd_up 0. */
	sinks_stop(f->s);
	fd = open(path, O_RDONLY);
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	buf[n] = '\0';
	assert_non_null(strstr(buf, "\nsakeyd_up 0\n"));
	/* A directory that does not exist: an error, not a crash. */
	snprintf(f->cfg.daemon.metrics_file, sizeof(f->cfg.daemon.metrics_file), "%s/no/x.prom",
		 f->dir);
	assert_int_equal(sinks_write_metrics(f->s), -ENOENT);
	assert_int_equal(sinks_get_stats(f->s)->metrics_failed, 1);
}

static void write_stat(struct fixture *f, const char *text)
{
	char path[128], tmp[136];
	FILE *s;

	snprintf(path, sizeof(path), "%s/xfrm_stat", f->dir);
	snprintf(tmp, sizeof(tmp), "%s.new", path);
	s = fopen(tmp, "w");
	assert_non_null(s);
	fputs(text, s);
	fclose(s);
	assert_int_equal(rename(tmp, path), 0);
}

static void alarm_cb(int sig)
{
	fail_msg("the metrics write blocked on what another account left in its directory");
}

/*
 * The textfile directory is often writable by the exporter's account: a FIFO
 * or a hard link to another file at the old fixed name PATH.tmp blocked the
 * daemon in open() or truncated and chmod'ed the file. Neither is touched now.
 */
static void test_metrics_traps(void **state)
{
	struct fixture *f = *state;
	char path[128], trap[160], victim[160], buf[64];
	struct stat st;
	int fd;

	snprintf(path, sizeof(path), "%s/sakeyd.prom", f->dir);
	snprintf(trap, sizeof(trap), "%s.tmp", path);
	snprintf(victim, sizeof(victim), "%s/victim", f->dir);
	snprintf(f->cfg.daemon.metrics_file, sizeof(f->cfg.daemon.metrics_file), "%s", path);
	assert_int_equal(mkfifo(trap, 0622), 0);
	signal(SIGALRM, alarm_cb);
	alarm(5);
	assert_int_equal(sinks_write_metrics(f->s), 0);
	alarm(0);
	assert_int_equal(lstat(trap, &st), 0);
	assert_true(S_ISFIFO(st.st_mode));
	assert_int_equal(unlink(trap), 0);

	fd = open(victim, O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "keep me", 7), 7);
	close(fd);
	assert_int_equal(link(victim, trap), 0);
	assert_int_equal(sinks_write_metrics(f->s), 0);
	assert_int_equal(stat(victim, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	fd = open(victim, O_RDONLY);
	assert_int_equal(read(fd, buf, sizeof(buf)), 7);
	close(fd);
	/* Only the target and what the test made: no temporary file left behind. */
	assert_int_equal(count_files(f, ".sakeyd.prom."), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0644);
}

static void test_xfrm_errors(void **state)
{
	struct fixture *f = *state;
	const struct sinks_stats *s = sinks_get_stats(f->s);
	const char *want[] = { "env.", (const char *)(uintptr_t)1 };
	char path[128], buf[4096];
	size_t len;

	use_command(f, "record");
	snprintf(path, sizeof(path), "%s/xfrm_stat", f->dir);
	/* kernel = sim: the counters say nothing of the simulated SADB, not watched. */
	sinks_set_xfrm_stat_path(f->s, path);
	write_stat(f, "XfrmInNoStates\t1\n");
	f->d.obs->synced(f->d.obs->self, 0);
	write_stat(f, "XfrmInNoStates\t9\n");
	f->d.obs->synced(f->d.obs->self, 0);
	assert_int_equal(s->xfrm_alerts, 0);

	/* A real kernel: restart the outputs with kernel = pfkey. */
	sinks_stop(f->s);
	uv_run(&f->d.loop, UV_RUN_NOWAIT); /* the metrics timer's close */
	sinks_free(f->s);
	f->cfg.daemon.kernel = CONF_KERNEL_PFKEY;
	assert_int_equal(start_sinks(f), 0);
	s = sinks_get_stats(f->s);
	sinks_set_xfrm_stat_path(f->s, path);
	write_stat(f, "XfrmInError\t0\nXfrmInNoStates\t40\n");
	/* The first reading is the baseline, however high. */
	f->d.obs->synced(f->d.obs->self, 0);
	f->d.obs->synced(f->d.obs->self, 0);
	assert_int_equal(s->xfrm_alerts, 0);
	/* A rise: one alert, with the counter and its rise, through alert_command. */
	write_stat(f, "XfrmInError\t0\nXfrmInNoStates\t52\n");
	f->d.obs->synced(f->d.obs->self, 0);
	assert_int_equal(s->xfrm_alerts, 1);
	assert_true(run_until(f, files_at_least, want, 5000));
	len = read_first(f, "env.", buf, sizeof(buf));
	assert_non_null(memmem(buf, len, "SAKEYD_EVENT=xfrm-errors", 24));
	assert_non_null(memmem(buf, len, "XfrmInNoStates +12 (now 52)", 27));
	/* Within the minute: held off. */
	write_stat(f, "XfrmInError\t1\nXfrmInNoStates\t60\n");
	f->d.obs->synced(f->d.obs->self, 0);
	assert_int_equal(s->xfrm_alerts, 1);
	/* Unreadable or malformed: no alert, no crash. */
	write_stat(f, "garbage\n");
	f->d.obs->synced(f->d.obs->self, 0);
	sinks_set_xfrm_stat_path(f->s, "/nonexistent/xfrm_stat");
	f->d.obs->synced(f->d.obs->self, 0);
	assert_int_equal(s->xfrm_alerts, 1);
}

/*
 * A burst: SINKS_BURST_FIRST alerts of a kind one by one, the window's others
 * folded into one summary when it closes; a kind that folded nothing makes
 * none; a window right after a folded one (the flood goes on) folds all.
 */
static void test_burst(void **state)
{
	struct fixture *f = *state;
	struct mon_sa e = sample_sa(f);
	const struct sinks_stats *st = sinks_get_stats(f->s);

	for (int i = 0; i < SINKS_BURST_FIRST + 150; i++)
		f->d.obs->alert(f->d.obs->self, "expire-soft", &e, e.sa.link, "soft");
	f->d.obs->alert(f->d.obs->self, "expire-hard", &e, e.sa.link, "hard");
	assert_int_equal(st->folded, 150);
	assert_int_equal(st->summaries, 0);
	assert_true(run_until(f, summaries_at_least, (void *)(uintptr_t)1, 5000));
	assert_int_equal(st->summaries, 1);
	for (int i = 0; i < 5; i++)
		f->d.obs->alert(f->d.obs->self, "expire-soft", &e, e.sa.link, "soft");
	assert_int_equal(st->folded, 155);
	assert_true(run_until(f, summaries_at_least, (void *)(uintptr_t)2, 5000));
	assert_int_equal(st->summaries, 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_environment, setup, teardown),
		cmocka_unit_test_setup_teardown(test_descriptors_closed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_sa, setup, teardown),
		cmocka_unit_test_setup_teardown(test_timeout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_leftover_after_exit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_leftover_after_timeout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cap_and_queue, setup, teardown),
		cmocka_unit_test_setup_teardown(test_queue_overflow, setup, teardown),
		cmocka_unit_test_setup_teardown(test_failures, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stop_with_running, setup, teardown),
		cmocka_unit_test_setup_teardown(test_too_old, setup, teardown),
		cmocka_unit_test_setup_teardown(test_metrics_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_metrics_traps, setup, teardown),
		cmocka_unit_test_setup_teardown(test_xfrm_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_burst, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
