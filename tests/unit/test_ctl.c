/* SPDX-License-Identifier: ISC */
/* Unit tests of svc/ctl/ctl.c: the request parser, the server on a loop, its checks, the client. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <grp.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "svc/ctl/ctl.h"

/* ---- Parser ---- */

static void test_parse_valid(void **state)
{
	static const struct {
		const char *text;
		enum ctl_cmd cmd;
	} cases[] = {
		{ "reload\n", CTL_CMD_RELOAD },
		{ "reconcile\n", CTL_CMD_RECONCILE },
		{ "status-ping\n", CTL_CMD_STATUS_PING },
		{ "version\n", CTL_CMD_VERSION },
		{ "reload\r\n", CTL_CMD_RELOAD },
		{ "  reload   \n", CTL_CMD_RELOAD },
		{ " version\r\n", CTL_CMD_VERSION },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct ctl_request req = { 0 };
		const char *why = NULL;
		int ret = ctl_parse_request(cases[i].text, strlen(cases[i].text), &req, &why);

		if (ret)
			print_message("'%s': %s\n", cases[i].text, why);
		assert_int_equal(ret, 0);
		assert_int_equal(req.cmd, cases[i].cmd);
	}
}

/* The longest request: 256 bytes with the newline. */
static void test_parse_lengths(void **state)
{
	char buf[CTL_REQUEST_MAX + 2];
	struct ctl_request req;
	const char *why = NULL;

	memset(buf, ' ', sizeof(buf));
	memcpy(buf, "reload", 6);
	buf[CTL_REQUEST_MAX - 1] = '\n';
	assert_int_equal(ctl_parse_request(buf, CTL_REQUEST_MAX, &req, &why), 0);
	assert_int_equal(req.cmd, CTL_CMD_RELOAD);

	buf[CTL_REQUEST_MAX - 1] = ' ';
	buf[CTL_REQUEST_MAX] = '\n';
	assert_int_equal(ctl_parse_request(buf, CTL_REQUEST_MAX + 1, &req, &why), -EINVAL);
	assert_string_equal(why, "request longer than 256 bytes");
	/* A full buffer without newline is a long request, not a short one. */
	assert_int_equal(ctl_parse_request(buf, CTL_REQUEST_MAX, &req, &why), -EINVAL);
	assert_string_equal(why, "request longer than 256 bytes");
	/* why may be NULL. */
	assert_int_equal(ctl_parse_request(buf, 0, &req, NULL), -EINVAL);
}

static void test_parse_rejections(void **state)
{
	static const struct {
		const char *text;
		size_t len; /* 0: strlen */
		const char *why;
	} cases[] = {
		{ "", 0, "empty request" },
		{ "\n", 0, "empty request" },
		{ "   \n", 0, "empty request" },
		{ "\r\n", 0, "empty request" },
		{ "reload", 0, "no newline at the end of the request" },
		{ "reload\r", 0, "no newline at the end of the request" },
		{ "reload\nreload\n", 0, "data after the newline (one request per connection)" },
		{ "reload\n\n", 0, "data after the newline (one request per connection)" },
		{ "reload\nx", 0, "data after the newline (one request per connection)" },
		{ "r\xc3\xa9load\n", 0, "non-ASCII byte in the request" },
		{ "reload\xff\n", 0, "non-ASCII byte in the request" },
		{ "reload\tnow\n", 0, "control character in the request" },
		{ "re\0load\n", 8, "control character in the request" },
		{ "\x7f\n", 0, "control character in the request" },
		{ "reload\r\r\n", 0, "control character in the request" },
		{ "\rreload\n", 0, "control character in the request" },
		{ "\x1b[Areload\n", 0, "control character in the request" },
		{ "reload now\n", 0, "unexpected argument (requests take none)" },
		{ "status-ping x\n", 0, "unexpected argument (requests take none)" },
		{ "RELOAD\n", 0, "unknown request (known: reload, reconcile, status-ping, version)" },
		{ "reloa\n", 0, "unknown request (known: reload, reconcile, status-ping, version)" },
		{ "reloadx\n", 0, "unknown request (known: reload, reconcile, status-ping, version)" },
		{ "status\n", 0, "unknown request (known: reload, reconcile, status-ping, version)" },
		{ "GET / HTTP/1.0\n", 0,
		  "unknown request (known: reload, reconcile, status-ping, version)" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct ctl_request req = { .cmd = 99 };
		const char *why = NULL;
		size_t len = cases[i].len ? cases[i].len : strlen(cases[i].text);
		int ret = ctl_parse_request(cases[i].text, len, &req, &why);

		if (ret != -EINVAL || !why || strcmp(why, cases[i].why))
			print_message("case %zu: ret %d why '%s', want '%s'\n", i, ret,
				      why ? why : "(null)", cases[i].why);
		assert_int_equal(ret, -EINVAL);
		assert_non_null(why);
		assert_string_equal(why, cases[i].why);
		assert_int_equal(req.cmd, 99); /* untouched on refusal */
	}
}

static void test_cmd_names(void **state)
{
	assert_string_equal(ctl_cmd_name(CTL_CMD_RELOAD), "reload");
	assert_string_equal(ctl_cmd_name(CTL_CMD_RECONCILE), "reconcile");
	assert_string_equal(ctl_cmd_name(CTL_CMD_STATUS_PING), "status-ping");
	assert_string_equal(ctl_cmd_name(CTL_CMD_VERSION), "version");
	assert_string_equal(ctl_cmd_name((enum ctl_cmd)0), "?");
	assert_true(ctl_cmd_mutating(CTL_CMD_RELOAD));
	assert_true(ctl_cmd_mutating(CTL_CMD_RECONCILE));
	assert_false(ctl_cmd_mutating(CTL_CMD_STATUS_PING));
	assert_false(ctl_cmd_mutating(CTL_CMD_VERSION));
	assert_false(ctl_cmd_mutating((enum ctl_cmd)0));
}

/* ---- Fixture: a temporary directory and a loop ---- */

struct fix {
	uv_loop_t loop;
	char dir[40];
	char sock[64]; /* dir/run/ctl.sock */
	char rundir[48];
	int reloads, reconciles;
	int reload_ret;
};

static int setup(void **state)
{
	struct fix *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/sakeyd-ctl.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->rundir, sizeof(f->rundir), "%s/run", f->dir);
	snprintf(f->sock, sizeof(f->sock), "%s/ctl.sock", f->rundir);
	assert_int_equal(uv_loop_init(&f->loop), 0);
	*state = f;
	return 0;
}

/* A handle a test left open (it failed before closing its server): closed here, and counted. */
static void close_left_open(uv_handle_t *h, void *arg)
{
	if (!uv_is_closing(h)) {
		(*(int *)arg)++;
		uv_close(h, NULL);
	}
}

static int teardown(void **state)
{
	struct fix *f = *state;
	char cmd[128];
	int left_open = 0;

	/* Every handle closed, every connection freed (ASan checks the memory). */
	uv_run(&f->loop, UV_RUN_NOWAIT);
	/* A server left open would make the loop run forever: a failure, not a hang. */
	uv_walk(&f->loop, close_left_open, &left_open);
	uv_run(&f->loop, UV_RUN_DEFAULT);
	assert_int_equal(left_open, 0);
	assert_int_equal(uv_loop_close(&f->loop), 0);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

static int on_reload(void *arg, char *msg, size_t len)
{
	struct fix *f = arg;

	f->reloads++;
	if (f->reload_ret == 0)
		snprintf(msg, len, "reloaded /etc/sakeyd/sakeyd.conf (2 links)");
	else
		snprintf(msg, len, "t.conf:3: unknown key 'x'\nsecond line");
	return f->reload_ret;
}

static int on_reconcile(void *arg, char *msg, size_t len)
{
	struct fix *f = arg;

	f->reconciles++;
	return -EIO;
}

static struct ctl_server *start(struct fix *f)
{
	struct ctl_handlers h = { .reload = on_reload, .reconcile = on_reconcile, .arg = f };
	struct ctl_server *srv = NULL;

	assert_int_equal(ctl_server_start(&f->loop, f->sock, &h, &srv), 0);
	assert_non_null(srv);
	return srv;
}

/* ---- Clients, run in a child process while the parent runs the loop ---- */

struct result {
	int ret;
	char reply[CTL_REPLY_MAX + 64];
	double elapsed;
};

struct client {
	const char *path;
	const char *request; /* for ctl_call, or raw bytes */
	size_t raw_len;      /* raw: send exactly these bytes (0: use ctl_call) */
	bool raw_eof;        /* raw: shut down the write side after sending */
	bool raw;
	uid_t drop_to; /* 0: stay root */
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int raw_connect(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

/* Reads until EOF; returns the bytes read (NUL-terminated). */
static ssize_t read_all(int fd, char *buf, size_t len)
{
	size_t got = 0;
	ssize_t n;

	while (got < len - 1 && (n = read(fd, buf + got, len - 1 - got)) > 0)
		got += (size_t)n;
	buf[got] = '\0';
	return (ssize_t)got;
}

static void client_body(const struct client *c, struct result *r)
{
	double t0 = now_s();
	int fd;

	if (c->drop_to && (setgid(c->drop_to) || setuid(c->drop_to))) {
		r->ret = -errno;
		snprintf(r->reply, sizeof(r->reply), "cannot drop to %u", (unsigned)c->drop_to);
		return;
	}
	if (!c->raw) {
		r->ret = ctl_call(c->path, c->request, r->reply, sizeof(r->reply));
	} else {
		fd = raw_connect(c->path);
		if (fd < 0) {
			r->ret = -errno;
			return;
		}
		if (c->raw_len && send(fd, c->request, c->raw_len, MSG_NOSIGNAL) < 0)
			r->ret = -errno;
		if (c->raw_eof)
			shutdown(fd, SHUT_WR);
		read_all(fd, r->reply, sizeof(r->reply));
		close(fd);
	}
	r->elapsed = now_s() - t0;
}

/* Runs the client in a child process, serving the loop until it exits. */
static void run_client(struct fix *f, const struct client *c, struct result *r)
{
	int fds[2], status;
	pid_t pid;

	assert_int_equal(pipe(fds), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct result res = { 0 };

		close(fds[0]);
		client_body(c, &res);
		_exit(write(fds[1], &res, sizeof(res)) == (ssize_t)sizeof(res) ? 0 : 1);
	}
	close(fds[1]);
	while (waitpid(pid, &status, WNOHANG) == 0) {
		uv_run(&f->loop, UV_RUN_NOWAIT);
		usleep(1000);
	}
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_int_equal(read(fds[0], r, sizeof(*r)), (ssize_t)sizeof(*r));
	close(fds[0]);
}

static void call(struct fix *f, const char *request, struct result *r)
{
	struct client c = { .path = f->sock, .request = request };

	run_client(f, &c, r);
}

static void raw(struct fix *f, const char *bytes, size_t len, bool eof, struct result *r)
{
	struct client c = { .path = f->sock, .request = bytes, .raw_len = len, .raw = true,
			    .raw_eof = eof };

	run_client(f, &c, r);
}

/* ---- Server round trips ---- */

static void test_round_trip(void **state)
{
	struct fix *f = *state;
	struct ctl_server *srv = start(f);
	struct result r;
	struct stat st;
	char want[64];

	/* 0660 socket in a 0750 directory. */
	assert_int_equal(lstat(f->sock, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0660);
	assert_int_equal(stat(f->rundir, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0750);

	call(f, "status-ping", &r);
	assert_int_equal(r.ret, 0);
	snprintf(want, sizeof(want), "ok pong pid=%ld", (long)getpid());
	assert_string_equal(r.reply, want);

	call(f, "version", &r);
	assert_int_equal(r.ret, 0);
	assert_int_equal(strncmp(r.reply, "ok sakeyd ", 10), 0);

	call(f, "reload", &r);
	assert_int_equal(r.ret, 0);
	assert_string_equal(r.reply, "ok reloaded /etc/sakeyd/sakeyd.conf (2 links)");
	assert_int_equal(f->reloads, 1);

	/* A failed handler's message, flattened to one line. */
	f->reload_ret = -EINVAL;
	call(f, "reload", &r);
	assert_int_equal(r.ret, -EREMOTEIO);
	assert_string_equal(r.reply, "error t.conf:3: unknown key 'x' second line");
	assert_int_equal(f->reloads, 2);

	/* A failed handler without message: the default text. */
	call(f, "reconcile", &r);
	assert_int_equal(r.ret, -EREMOTEIO);
	assert_string_equal(r.reply, "error reconcile failed: Input/output error");
	assert_int_equal(f->reconciles, 1);

	/* An empty request goes out as "\n" and is refused by the server. */
	call(f, "", &r);
	assert_int_equal(r.ret, -EREMOTEIO);
	assert_string_equal(r.reply, "error bad request: empty request");

	assert_int_equal(ctl_server_connections(srv), 0);
	ctl_server_close(srv);
	uv_run(&f->loop, UV_RUN_DEFAULT);
	/* The socket file goes with the server. */
	assert_int_equal(lstat(f->sock, &st), -1);
	assert_int_equal(errno, ENOENT);
	ctl_server_close(NULL);
}

static void test_no_handlers(void **state)
{
	struct fix *f = *state;
	struct ctl_server *srv = NULL;
	struct result r;

	assert_int_equal(ctl_server_start(&f->loop, f->sock, NULL, &srv), 0);
	call(f, "reload", &r);
	assert_int_equal(r.ret, -EREMOTEIO);
	assert_string_equal(r.reply, "error not supported: reload");
	call(f, "reconcile", &r);
	assert_string_equal(r.reply, "error not supported: reconcile");
	ctl_server_close(srv);
}

static void test_bad_requests(void **state)
{
	struct fix *f = *state;
	struct ctl_server *srv = start(f);
	char big[1024];
	struct result r;

	raw(f, "\xff\xfe\n", 3, false, &r);
	assert_string_equal(r.reply, "error bad request: non-ASCII byte in the request\n");

	raw(f, "shutdown\n", 9, false, &r);
	assert_string_equal(r.reply, "error bad request: unknown request (known: reload, "
				     "reconcile, status-ping, version)\n");

	raw(f, "reload now\n", 11, false, &r);
	assert_string_equal(r.reply,
			    "error bad request: unexpected argument (requests take none)\n");

	raw(f, "reload\nreconcile\n", 17, false, &r);
	/* Both lines in one read: refused; or only the first read: served. Never both. */
	assert_true(!strcmp(r.reply, "ok reloaded /etc/sakeyd/sakeyd.conf (2 links)\n") ||
		    !strcmp(r.reply, "error bad request: data after the newline (one request "
				     "per connection)\n"));
	assert_int_equal(f->reconciles, 0);

	/* EOF before the newline. */
	raw(f, "reload", 6, true, &r);
	assert_string_equal(r.reply, "error bad request: no newline at the end of the request\n");

	/* Oversize, with and without a newline far away: answered at 256 bytes. */
	memset(big, 'a', sizeof(big));
	raw(f, big, sizeof(big), false, &r);
	assert_string_equal(r.reply, "error bad request: request longer than 256 bytes\n");
	big[sizeof(big) - 1] = '\n';
	raw(f, big, sizeof(big), false, &r);
	assert_string_equal(r.reply, "error bad request: request longer than 256 bytes\n");
	raw(f, big, CTL_REQUEST_MAX, false, &r);
	assert_string_equal(r.reply, "error bad request: request longer than 256 bytes\n");

	/* Nul bytes. */
	raw(f, "\0\0\0\n", 4, false, &r);
	assert_string_equal(r.reply, "error bad request: control character in the request\n");

	/* Nothing at all, then EOF. */
	raw(f, "", 0, true, &r);
	assert_string_equal(r.reply, "error bad request: empty request\n");

	/* A client that goes away before the answer does not hurt the server. */
	{
		int fd;
		struct result ok;

		fd = raw_connect(f->sock);
		assert_true(fd >= 0);
		assert_int_equal(send(fd, "status-ping\n", 12, MSG_NOSIGNAL), 12);
		close(fd);
		call(f, "status-ping", &ok);
		assert_int_equal(ok.ret, 0);
	}
	assert_int_equal(f->reloads <= 1, true);
	ctl_server_close(srv);
}

static void test_timeout(void **state)
{
	struct fix *f = *state;
	struct ctl_server *srv = start(f);
	struct result r;

	/* A silent client: answered and closed after CTL_TIMEOUT_MS. */
	raw(f, "rel", 3, false, &r);
	assert_string_equal(r.reply, "error timeout: no request within 2000 ms\n");
	assert_true(r.elapsed >= CTL_TIMEOUT_MS / 1000.0 - 0.1);
	assert_true(r.elapsed < CTL_TIMEOUT_MS / 1000.0 + 3);
	assert_int_equal(ctl_server_connections(srv), 0);
	ctl_server_close(srv);
}

/* CTL_CONN_MAX silent clients hold their connections; the next one is told the server is busy. */
static void busy_body(const char *path, struct result *r)
{
	int fds[CTL_CONN_MAX + 1];
	char buf[CTL_REPLY_MAX];

	for (int i = 0; i <= CTL_CONN_MAX; i++) {
		fds[i] = raw_connect(path);
		if (fds[i] < 0) {
			r->ret = -errno;
			return;
		}
		/* Let the server accept them in order. */
		usleep(20000);
	}
	read_all(fds[CTL_CONN_MAX], r->reply, sizeof(r->reply));
	/* The held ones are still served. */
	if (send(fds[0], "status-ping\n", 12, MSG_NOSIGNAL) != 12)
		r->ret = -errno;
	read_all(fds[0], buf, sizeof(buf));
	if (strncmp(buf, "ok pong", 7))
		r->ret = -EPROTO;
	for (int i = 0; i <= CTL_CONN_MAX; i++)
		close(fds[i]);
}

static void test_connection_cap(void **state)
{
	struct fix *f = *state;
	struct ctl_server *srv = start(f);
	struct result r = { 0 };
	int fds[2], status;
	pid_t pid;

	assert_int_equal(pipe(fds), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct result res = { 0 };

		busy_body(f->sock, &res);
		_exit(write(fds[1], &res, sizeof(res)) == (ssize_t)sizeof(res) ? 0 : 1);
	}
	close(fds[1]);
	while (waitpid(pid, &status, WNOHANG) == 0) {
		uv_run(&f->loop, UV_RUN_NOWAIT);
		usleep(1000);
	}
	assert_int_equal(read(fds[0], &r, sizeof(r)), (ssize_t)sizeof(r));
	close(fds[0]);
	assert_int_equal(r.ret, 0);
	/* Root (the test runs as root or as the server's euid) may take every slot, no more. */
	assert_string_equal(r.reply, "error busy: all 16 control connections are in use (16 by "
				     "root); try again when one of them is done\n");
	ctl_server_close(srv);
}

/* Closing the server with connections open frees everything in the close callbacks. */
static void test_close_with_connections(void **state)
{
	struct fix *f = *state;
	struct ctl_server *srv = start(f);
	int fd1, fd2;
	char buf[64];

	fd1 = raw_connect(f->sock);
	fd2 = raw_connect(f->sock);
	assert_true(fd1 >= 0 && fd2 >= 0);
	for (int i = 0; i < 100 && ctl_server_connections(srv) < 2; i++) {
		uv_run(&f->loop, UV_RUN_NOWAIT);
		usleep(1000);
	}
	assert_int_equal(ctl_server_connections(srv), 2);
	ctl_server_close(srv);
	ctl_server_close(srv); /* twice is harmless before the callbacks ran */
	uv_run(&f->loop, UV_RUN_DEFAULT);
	assert_int_equal(read(fd1, buf, sizeof(buf)), 0);
	close(fd1);
	close(fd2);
}

/* ---- Authorisation ---- */

#define NOBODY 65534

static void test_authorisation(void **state)
{
	struct fix *f = *state;
	struct ctl_server *srv;
	struct client c = { .drop_to = NOBODY };
	struct result r;
	char want[256];

	if (geteuid() != 0) {
		print_message("SKIPPED: the authorisation test drops to uid %d and needs root\n",
			      NOBODY);
		skip();
	}
	/* nobody may reach the socket only through a group it is in, as an operator group would. */
	assert_int_equal(chmod(f->dir, 0755), 0);
	srv = start(f);
	c.path = f->sock;

	/* Default: the socket is root's and the directory closed; connect() is refused. */
	c.request = "status-ping";
	run_client(f, &c, &r);
	assert_int_equal(r.ret, -EACCES);
	snprintf(want, sizeof(want), "permission denied: run as root (cannot connect to %s)",
		 f->sock);
	assert_string_equal(r.reply, want);

	/* In the socket's group: read-only requests work, mutating ones are refused. */
	assert_int_equal(chown(f->rundir, 0, NOBODY), 0);
	assert_int_equal(chown(f->sock, 0, NOBODY), 0);
	run_client(f, &c, &r);
	assert_int_equal(r.ret, 0);
	assert_non_null(strstr(r.reply, "ok pong pid="));

	c.request = "reload";
	run_client(f, &c, &r);
	assert_int_equal(r.ret, -EREMOTEIO);
	assert_string_equal(r.reply, "error permission denied: reload needs root");
	c.request = "reconcile";
	run_client(f, &c, &r);
	assert_string_equal(r.reply, "error permission denied: reconcile needs root");
	assert_int_equal(f->reloads, 0);
	assert_int_equal(f->reconciles, 0);

	/* And root may. */
	call(f, "reload", &r);
	assert_int_equal(r.ret, 0);
	assert_int_equal(f->reloads, 1);
	ctl_server_close(srv);
}

/* ---- Slots: root's reserve, the per-uid cap, the idle timeout, the refusal log ---- */

/* What a process of another uid saw of its idle connections. */
struct hog_report {
	int err;            /* 0, or -errno of the step in what */
	char what[64];
	int held;           /* of its connections, those not refused at once */
	char refusal[CTL_REPLY_MAX]; /* the answer to a refused one */
	int still_held;     /* of the held ones, those still open when told to go on */
	char timeout[CTL_REPLY_MAX]; /* what a held one got in the end */
	int held_again;     /* after the timeout: of CTL_CONN_PER_UID new ones, those held */
};

struct hog {
	pid_t pid;
	int report, go; /* its reports to us; our "go on" to it */
};

static void hog_fail(struct hog_report *r, const char *what)
{
	r->err = -errno;
	snprintf(r->what, sizeof(r->what), "%s", what);
}

/*
 * Opens n idle connections, then one more as a barrier: the server accepts
 * in order, so when the barrier is answered every one before it has been
 * admitted or refused (and a refused one answered). Returns how many of the
 * n are held (not answered); a refusal's text goes to refusal.
 */
static int open_idle(const char *path, int *fds, int n, char *refusal, size_t len,
		     struct hog_report *r)
{
	struct pollfd pfd = { .events = POLLIN };
	char buf[CTL_REPLY_MAX];
	int barrier, held = 0;

	for (int i = 0; i < n; i++) {
		fds[i] = raw_connect(path);
		if (fds[i] < 0) {
			hog_fail(r, "connect");
			return -1;
		}
	}
	barrier = raw_connect(path);
	if (barrier < 0) {
		hog_fail(r, "connect (barrier)");
		return -1;
	}
	read_all(barrier, buf, sizeof(buf));
	close(barrier);
	for (int i = 0; i < n; i++) {
		pfd.fd = fds[i];
		if (poll(&pfd, 1, 0) == 0) {
			held++;
			continue;
		}
		read_all(fds[i], refusal, len);
		close(fds[i]);
		fds[i] = -1;
	}
	return held;
}

static void hog_body(const char *path, uid_t uid, int n, bool again, int report, int go)
{
	struct hog_report r = { 0 };
	struct pollfd pfd = { .events = POLLIN };
	int fds[64], more[CTL_CONN_PER_UID];
	char byte;

	/* The socket's group lets it in, as an operator's group would. */
	if (setgroups(0, NULL) || setgid(NOBODY) || setuid(uid)) {
		hog_fail(&r, "drop privileges");
		goto out;
	}
	r.held = open_idle(path, fds, n, r.refusal, sizeof(r.refusal), &r);
	if (r.held < 0)
		goto out;
	if (write(report, &r, sizeof(r)) != (ssize_t)sizeof(r) || read(go, &byte, 1) != 1)
		_exit(3);
	for (int i = 0; i < n; i++) {
		pfd.fd = fds[i];
		if (fds[i] >= 0 && poll(&pfd, 1, 0) == 0)
			r.still_held++;
	}
	if (!again)
		goto out;
	/* Idle connections do not keep their slots: each is answered and closed in the end. */
	for (int i = 0; i < n; i++) {
		if (fds[i] < 0)
			continue;
		read_all(fds[i], r.timeout, sizeof(r.timeout));
		close(fds[i]);
		fds[i] = -1;
	}
	r.held_again = open_idle(path, more, CTL_CONN_PER_UID, r.refusal, sizeof(r.refusal), &r);
	for (int i = 0; i < CTL_CONN_PER_UID; i++)
		if (r.held_again > 0 && more[i] >= 0)
			close(more[i]);
out:
	for (int i = 0; i < n && r.held >= 0 && !again; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	_exit(write(report, &r, sizeof(r)) == (ssize_t)sizeof(r) ? 0 : 3);
}

/* Starts a hog of uid with n connections; returns its first report. */
static void hog_start(struct hog *h, const char *path, uid_t uid, int n, bool again,
		      struct hog_report *r)
{
	int rep[2], go[2];

	assert_true(n <= 64);
	assert_int_equal(pipe(rep), 0);
	assert_int_equal(pipe(go), 0);
	h->pid = fork();
	assert_true(h->pid >= 0);
	if (h->pid == 0) {
		close(rep[0]);
		close(go[1]);
		hog_body(path, uid, n, again, rep[1], go[0]);
	}
	close(rep[1]);
	close(go[0]);
	h->report = rep[0];
	h->go = go[1];
	memset(r, 0, sizeof(*r));
	if (read(h->report, r, sizeof(*r)) != (ssize_t)sizeof(*r)) {
		r->err = -EPROTO;
		snprintf(r->what, sizeof(r->what), "no report from the hog of uid %u",
			 (unsigned)uid);
	}
}

/* Tells the hog to go on and returns its last report. */
static void hog_finish(struct hog *h, struct hog_report *r)
{
	int status;

	memset(r, 0, sizeof(*r));
	if (write(h->go, "g", 1) != 1 || read(h->report, r, sizeof(*r)) != (ssize_t)sizeof(*r)) {
		r->err = -EPROTO;
		snprintf(r->what, sizeof(r->what), "no last report");
	}
	waitpid(h->pid, &status, 0);
	close(h->report);
	close(h->go);
}

#define HOGS 40
#define HOG_UIDS 4

struct slots_result {
	int err;
	char what[64];
	struct hog_report first[HOG_UIDS], last[HOG_UIDS];
	int reloads_ok;
	char reload_reply[CTL_REPLY_MAX + 64];
};

static const uid_t hog_uids[HOG_UIDS] = { NOBODY, NOBODY - 1, NOBODY - 2, NOBODY - 3 };
/* uid 65534 holds 40, two others 4 each (the 12 shared slots are full), a fourth tries 2. */
static const int hog_conns[HOG_UIDS] = { HOGS, CTL_CONN_PER_UID, CTL_CONN_PER_UID, 2 };

/* Runs in a child of the test (as root) while the parent serves the loop. */
static void slots_body(const char *path, struct slots_result *res)
{
	struct hog hogs[HOG_UIDS];

	for (int i = 0; i < HOG_UIDS; i++)
		hog_start(&hogs[i], path, hog_uids[i], hog_conns[i], i == 0, &res->first[i]);
	/* Root, while the others hold every slot they may. */
	for (int i = 0; i < 5; i++) {
		int ret = ctl_call(path, "reload", res->reload_reply, sizeof(res->reload_reply));

		res->reloads_ok += ret == 0;
	}
	for (int i = HOG_UIDS - 1; i >= 0; i--)
		hog_finish(&hogs[i], &res->last[i]);
}

/* Refusals of uid that the log counted: its lines and the sum of their counts. */
static void count_refusals(const char *log, uid_t uid, int *lines, unsigned long *refused)
{
	char once[64], summed[64];
	const char *p;

	snprintf(once, sizeof(once), "refused a control connection of uid %u ", (unsigned)uid);
	snprintf(summed, sizeof(summed), " of uid %u in ", (unsigned)uid);
	*lines = 0;
	*refused = 0;
	for (p = log; (p = strstr(p, "refused ")); p++) {
		const char *eol = strchr(p, '\n');
		const char *of = strstr(p, summed);
		unsigned long n;

		if (!strncmp(p, once, strlen(once))) {
			(*lines)++;
			(*refused)++;
		} else if (of && (!eol || of < eol) &&
			   sscanf(p, "refused %lu control connection", &n) == 1) {
			(*lines)++;
			*refused += n;
		}
	}
}

static void test_slots(void **state)
{
	struct fix *f = *state;
	struct ctl_server *srv;
	struct slots_result r = { 0 };
	char logpath[96], log[16384];
	int fds[2], status, saved_err, logfd, lines;
	unsigned long refused;
	double t0;
	pid_t pid;

	if (geteuid() != 0) {
		print_message("SKIPPED: the slots test runs clients of other uids and needs root\n");
		skip();
	}
	assert_int_equal(chmod(f->dir, 0755), 0);
	srv = start(f);
	assert_int_equal(chown(f->rundir, 0, NOBODY), 0);
	assert_int_equal(chown(f->sock, 0, NOBODY), 0);
	/* The server's log, to count its refusal lines. */
	snprintf(logpath, sizeof(logpath), "%s/log", f->dir);
	logfd = open(logpath, O_CREAT | O_RDWR | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(logfd >= 0);
	fflush(stderr);
	saved_err = dup(2);
	assert_int_equal(dup2(logfd, 2), 2);

	t0 = now_s();
	assert_int_equal(pipe(fds), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct slots_result res = { 0 };

		dup2(saved_err, 2);
		close(fds[0]);
		slots_body(f->sock, &res);
		_exit(write(fds[1], &res, sizeof(res)) == (ssize_t)sizeof(res) ? 0 : 1);
	}
	close(fds[1]);
	while (waitpid(pid, &status, WNOHANG) == 0) {
		uv_run(&f->loop, UV_RUN_NOWAIT);
		usleep(1000);
	}
	ctl_server_close(srv); /* logs the counts still pending */
	uv_run(&f->loop, UV_RUN_DEFAULT);
	fflush(stderr);
	dup2(saved_err, 2);
	close(saved_err);
	memset(log, 0, sizeof(log));
	assert_true(pread(logfd, log, sizeof(log) - 1, 0) >= 0);
	close(logfd);
	fputs(log, stderr);
	assert_int_equal(read(fds[0], &r, sizeof(r)), (ssize_t)sizeof(r));
	close(fds[0]);
	assert_true(WIFEXITED(status));
	for (int i = 0; i < HOG_UIDS; i++) {
		if (r.first[i].err || r.last[i].err)
			print_message("hog %d: %s / %s: %s\n", i, r.first[i].what, r.last[i].what,
				      strerror(-(r.first[i].err ? r.first[i].err : r.last[i].err)));
		assert_int_equal(r.first[i].err, 0);
		assert_int_equal(r.last[i].err, 0);
	}

	/* Root's reloads all served while the others held every slot they could. */
	print_message("reloads: %d of 5 ok, last answer '%s'\n", r.reloads_ok, r.reload_reply);
	assert_int_equal(r.reloads_ok, 5);
	assert_string_equal(r.reload_reply, "ok reloaded /etc/sakeyd/sakeyd.conf (2 links)");
	assert_int_equal(f->reloads, 5);

	/* 65534: 4 of its 40 held; the rest told why. */
	assert_int_equal(r.first[0].held, CTL_CONN_PER_UID);
	assert_string_equal(r.first[0].refusal,
			    "error busy: uid 65534 already has 4 control connections open (the "
			    "limit per user); close one and try again\n");
	assert_int_equal(r.first[1].held, CTL_CONN_PER_UID);
	assert_int_equal(r.first[2].held, CTL_CONN_PER_UID);
	/* The shared pool is full: a fourth uid gets nothing, root still does. */
	assert_int_equal(r.first[3].held, 0);
	assert_string_equal(r.first[3].refusal, "error busy: the 12 connections open to non-root "
						"users are in use; try again later\n");
	/* The reloads ran while they were held (else the test proved nothing). */
	for (int i = 0; i < HOG_UIDS; i++)
		assert_int_equal(r.last[i].still_held, r.first[i].held);
	/* An idle connection is closed after CTL_TIMEOUT_MS and its slot is free again. */
	assert_string_equal(r.last[0].timeout, "error timeout: no request within 2000 ms\n");
	assert_int_equal(r.last[0].held_again, CTL_CONN_PER_UID);

	/*
	 * Refusals (each hog's barrier included): 65534 36 + 1, + 1 after the
	 * timeout; 65533 and 65532 1 each; 65531 2 + 1. Each uid: the first at
	 * once, the rest in one line per CTL_REFUSAL_LOG_MS (the last at close).
	 */
	{
		static const unsigned long want[HOG_UIDS] = { HOGS - CTL_CONN_PER_UID + 2, 1, 1, 3 };
		int max_lines = 2 + (int)((now_s() - t0) * 1000 / CTL_REFUSAL_LOG_MS);

		for (int i = 0; i < HOG_UIDS; i++) {
			count_refusals(log, hog_uids[i], &lines, &refused);
			print_message("uid %u: %lu refusals in %d lines (at most %d)\n",
				      (unsigned)hog_uids[i], refused, lines, max_lines);
			assert_int_equal(refused, want[i]);
			assert_true(lines >= 1 && lines <= max_lines);
		}
		assert_non_null(strstr(log, "refused 37 control connections of uid 65534 in "));
		assert_non_null(strstr(log, ": per-uid limit 4\n"));
	}
}

/*
 * The client's send() waits, while fake_send_wait_hup is set, until the peer
 * has closed: so sactl's request meets EPIPE as when a busy daemon refused
 * it between connect() and send(). It overrides libc's send() for this
 * program (ctl.c's calls included).
 */
static bool fake_send_wait_hup;

ssize_t send(int fd, const void *buf, size_t len, int flags)
{
	if (fake_send_wait_hup) {
		struct pollfd pfd = { .fd = fd, .events = POLLRDHUP };

		for (int i = 0; i < 500 && !(pfd.revents & (POLLHUP | POLLRDHUP)); i++)
			poll(&pfd, 1, 10);
	}
	return syscall(SYS_sendto, fd, buf, len, flags, NULL, 0);
}

/* A fake daemon: accepts one connection, writes answer (may be empty) and closes. */
static void epipe_case(struct fix *f, const char *answer_line, struct result *r)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int lfd, cfd, fds[2], status;
	pid_t pid;

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", f->sock);
	lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(lfd >= 0);
	assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(lfd, 4), 0);
	assert_int_equal(pipe(fds), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct result res = { 0 };

		close(fds[0]);
		close(lfd);
		fake_send_wait_hup = true;
		res.ret = ctl_call(f->sock, "reload", res.reply, sizeof(res.reply));
		_exit(write(fds[1], &res, sizeof(res)) == (ssize_t)sizeof(res) ? 0 : 1);
	}
	close(fds[1]);
	cfd = accept(lfd, NULL, NULL);
	assert_true(cfd >= 0);
	if (answer_line[0])
		assert_int_equal(write(cfd, answer_line, strlen(answer_line)),
				 (ssize_t)strlen(answer_line));
	close(cfd);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	/* Not killed by SIGPIPE. */
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_int_equal(read(fds[0], r, sizeof(*r)), (ssize_t)sizeof(*r));
	close(fds[0]);
	close(lfd);
	unlink(f->sock);
}

static void test_client_epipe(void **state)
{
	struct fix *f = *state;
	struct result r;
	char want[256];

	assert_int_equal(mkdir(f->rundir, 0750), 0);
	/* The daemon refused before reading the request: its answer is still read. */
	epipe_case(f, "error busy: uid 1000 already has 4 control connections open\n", &r);
	assert_int_equal(r.ret, -EREMOTEIO);
	assert_string_equal(r.reply, "error busy: uid 1000 already has 4 control connections open");

	/* No answer at all: a sentence that says so, and -EPIPE. */
	epipe_case(f, "", &r);
	assert_int_equal(r.ret, -EPIPE);
	snprintf(want, sizeof(want),
		 "sakeyd at %s closed the connection without reading the request or answering "
		 "(Broken pipe); its log says why (e.g. too many control connections)",
		 f->sock);
	assert_string_equal(r.reply, want);
}

/* ---- Start-up checks ---- */

static void test_stale_socket(void **state)
{
	struct fix *f = *state;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct ctl_server *srv, *other = NULL;
	struct result r;
	int fd;

	assert_int_equal(mkdir(f->rundir, 0750), 0);
	/* A socket file left by a killed daemon: bound, nobody listening. */
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", f->sock);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	close(fd);

	/* The client explains. */
	call(f, "reload", &r);
	assert_int_equal(r.ret, -ECONNREFUSED);
	assert_non_null(strstr(r.reply, "sakeyd is not running (nobody listens on the control "
					"socket"));

	srv = start(f);
	call(f, "status-ping", &r);
	assert_int_equal(r.ret, 0);

	/* A live one is not removed. */
	assert_int_equal(ctl_server_start(&f->loop, f->sock, NULL, &other), -EADDRINUSE);
	assert_null(other);
	call(f, "status-ping", &r);
	assert_int_equal(r.ret, 0);

	/* Closing does not remove a socket that is no longer ours. */
	assert_int_equal(unlink(f->sock), 0);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ctl_server_close(srv);
	uv_run(&f->loop, UV_RUN_DEFAULT);
	assert_int_equal(access(f->sock, F_OK), 0);
	close(fd);
}

static void test_not_a_socket(void **state)
{
	struct fix *f = *state;
	struct ctl_server *srv = NULL;
	int fd;

	assert_int_equal(mkdir(f->rundir, 0750), 0);
	fd = open(f->sock, O_CREAT | O_WRONLY, 0600);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(ctl_server_start(&f->loop, f->sock, NULL, &srv), -EEXIST);
	assert_null(srv);
	assert_int_equal(access(f->sock, F_OK), 0); /* left alone */
}

static void test_directory_checks(void **state)
{
	struct fix *f = *state;
	struct ctl_server *srv = NULL;
	char path[256], file[128];
	struct result r;
	mode_t old;
	int fd;

	/* No socket at all: the client says the daemon is not running. */
	call(f, "reload", &r);
	assert_int_equal(r.ret, -ENOENT);
	snprintf(path, sizeof(path), "sakeyd is not running (no control socket at %s)", f->sock);
	assert_string_equal(r.reply, path);

	/* Created 0750 whatever the umask. */
	old = umask(0);
	srv = start(f);
	umask(old);
	{
		struct stat st;

		assert_int_equal(stat(f->rundir, &st), 0);
		assert_int_equal(st.st_mode & 07777, 0750);
		assert_int_equal(lstat(f->sock, &st), 0);
		assert_int_equal(st.st_mode & 07777, 0660);
	}
	ctl_server_close(srv);
	uv_run(&f->loop, UV_RUN_DEFAULT);

	/* Group- or world-writable: refused. */
	assert_int_equal(chmod(f->rundir, 0770), 0);
	assert_int_equal(ctl_server_start(&f->loop, f->sock, NULL, &srv), -EPERM);
	assert_int_equal(chmod(f->rundir, 0757), 0);
	assert_int_equal(ctl_server_start(&f->loop, f->sock, NULL, &srv), -EPERM);
	assert_int_equal(chmod(f->rundir, 01777), 0);
	assert_int_equal(ctl_server_start(&f->loop, f->sock, NULL, &srv), -EPERM);
	assert_null(srv);
	assert_int_equal(chmod(f->rundir, 0700), 0);

	/* Another owner: refused (only root can make one here). */
	if (geteuid() == 0) {
		assert_int_equal(chown(f->rundir, NOBODY, NOBODY), 0);
		assert_int_equal(ctl_server_start(&f->loop, f->sock, NULL, &srv), -EPERM);
		assert_int_equal(chown(f->rundir, 0, 0), 0);
	} else {
		print_message("note: the foreign-owner check needs root; not run\n");
	}

	/* The directory is a file. */
	snprintf(file, sizeof(file), "%s/file", f->dir);
	fd = open(file, O_CREAT | O_WRONLY, 0600);
	assert_true(fd >= 0);
	close(fd);
	snprintf(path, sizeof(path), "%s/ctl.sock", file);
	assert_int_equal(ctl_server_start(&f->loop, path, NULL, &srv), -ENOTDIR);
	call(f, "x", &r); /* still nothing at f->sock */
	assert_int_equal(r.ret, -ENOENT);

	/* The parent of a missing directory must exist. */
	snprintf(path, sizeof(path), "%s/a/b/ctl.sock", f->dir);
	assert_int_equal(ctl_server_start(&f->loop, path, NULL, &srv), -ENOENT);

	/* Longer than sun_path; empty. */
	memset(path, 'x', sizeof(path) - 1);
	path[0] = '/';
	path[sizeof(path) - 1] = '\0';
	assert_int_equal(ctl_server_start(&f->loop, path, NULL, &srv), -ENAMETOOLONG);
	assert_int_equal(ctl_server_start(&f->loop, "", NULL, &srv), -EINVAL);
	assert_null(srv);
	{
		struct client c = { .path = path, .request = "reload" };

		run_client(f, &c, &r);
		assert_int_equal(r.ret, -ENAMETOOLONG);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_valid),
		cmocka_unit_test(test_parse_lengths),
		cmocka_unit_test(test_parse_rejections),
		cmocka_unit_test(test_cmd_names),
		cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_handlers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_requests, setup, teardown),
		cmocka_unit_test_setup_teardown(test_timeout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_connection_cap, setup, teardown),
		cmocka_unit_test_setup_teardown(test_close_with_connections, setup, teardown),
		cmocka_unit_test_setup_teardown(test_authorisation, setup, teardown),
		cmocka_unit_test_setup_teardown(test_slots, setup, teardown),
		cmocka_unit_test_setup_teardown(test_client_epipe, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stale_socket, setup, teardown),
		cmocka_unit_test_setup_teardown(test_not_a_socket, setup, teardown),
		cmocka_unit_test_setup_teardown(test_directory_checks, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
