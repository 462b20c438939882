/* SPDX-License-Identifier: ISC */
/* The control socket: sactl's line protocol, the daemon's libuv server and the client. */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "svc/base/container.h"
#include "svc/ctl/ctl.h"
#include "svc/base/log.h"

#ifndef SAKEYD_VERSION
#define SAKEYD_VERSION "unknown"
#endif

#define SUN_PATH_MAX sizeof(((struct sockaddr_un *)0)->sun_path)

/* ---- Protocol ---- */

static const struct {
	const char *word;
	enum ctl_cmd cmd;
	bool mutating;
} commands[] = {
	{ "reload", CTL_CMD_RELOAD, true },
	{ "reconcile", CTL_CMD_RECONCILE, true },
	{ "status-ping", CTL_CMD_STATUS_PING, false },
	{ "version", CTL_CMD_VERSION, false },
};

#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

const char *ctl_cmd_name(enum ctl_cmd cmd)
{
	for (size_t i = 0; i < NCOMMANDS; i++)
		if (commands[i].cmd == cmd)
			return commands[i].word;
	return "?";
}

bool ctl_cmd_mutating(enum ctl_cmd cmd)
{
	for (size_t i = 0; i < NCOMMANDS; i++)
		if (commands[i].cmd == cmd)
			return commands[i].mutating;
	return false;
}

static int reject(const char **why, const char *reason)
{
	if (why)
		*why = reason;
	return -EINVAL;
}

int ctl_parse_request(const char *buf, size_t len, struct ctl_request *out, const char **why)
{
	const char *newline, *end, *word, *word_end, *p;

	if (len == 0)
		return reject(why, "empty request");
	if (len > CTL_REQUEST_MAX)
		return reject(why, "request longer than 256 bytes");
	newline = memchr(buf, '\n', len);
	if (!newline)
		return reject(why, len == CTL_REQUEST_MAX ? "request longer than 256 bytes"
							  : "no newline at the end of the request");
	if (newline != buf + len - 1)
		return reject(why, "data after the newline (one request per connection)");
	end = newline;
	if (end > buf && end[-1] == '\r')
		end--;
	for (p = buf; p < end; p++) {
		unsigned char c = (unsigned char)*p;

		if (c >= 0x80)
			return reject(why, "non-ASCII byte in the request");
		if (c < 0x20 || c == 0x7f)
			return reject(why, "control character in the request");
	}
	for (word = buf; word < end && *word == ' '; word++)
		;
	for (word_end = word; word_end < end && *word_end != ' '; word_end++)
		;
	if (word == word_end)
		return reject(why, "empty request");
	for (p = word_end; p < end && *p == ' '; p++)
		;
	for (size_t i = 0; i < NCOMMANDS; i++) {
		if (strlen(commands[i].word) != (size_t)(word_end - word) ||
		    memcmp(commands[i].word, word, (size_t)(word_end - word)))
			continue;
		if (p != end)
			return reject(why, "unexpected argument (requests take none)");
		out->cmd = commands[i].cmd;
		return 0;
	}
	return reject(why, "unknown request (known: reload, reconcile, status-ping, version)");
}

/* ---- Server ---- */

/* Which kind of slot a connection holds (see CTL_CONN_MAX). */
enum slot {
	SLOT_NONE = 0, /* not admitted (refused, or not identified yet) */
	SLOT_ROOT,     /* uid 0 or our euid */
	SLOT_OTHER,    /* any other uid: the shared pool */
};

struct ctl_conn {
	uv_pipe_t pipe;
	uv_timer_t timer;
	struct ctl_server *srv;
	struct ctl_conn *prev, *next;
	uid_t uid;
	pid_t pid;
	enum slot slot;
	unsigned open_handles; /* freed when both handles are closed */
	bool answered, closing;
	size_t len;
	char buf[CTL_REQUEST_MAX];
};

/* Connections of one non-root uid holding a slot. */
struct uid_slots {
	uid_t uid;
	unsigned n; /* 0: entry free */
};

/* Refusals of one uid (or of the uids beyond the table) since the last line logged. */
struct refusals {
	bool used;
	uid_t uid;
	uint64_t logged_at; /* uv_now() of the last line */
	unsigned long pending; /* refused since that line */
	char why[128];         /* the latest refusal's reason */
};

#define SHARED_SLOTS (CTL_CONN_MAX - CTL_CONN_RESERVED)

struct ctl_server {
	uv_pipe_t pipe;
	uv_timer_t refusal_timer; /* logs the pending refusal counts when their period ends */
	struct ctl_handlers h;
	struct ctl_conn *conns;
	unsigned nconns; /* accepted and not yet freed */
	unsigned root_slots, other_slots; /* admitted and not closing */
	struct uid_slots uids[SHARED_SLOTS];
	struct refusals refused[CTL_REFUSAL_UIDS];
	struct refusals refused_others; /* uids beyond the table, together */
	bool closing, pipe_closed, timer_closed, bound;
	dev_t dev;
	ino_t ino;
	char path[SUN_PATH_MAX];
};

unsigned ctl_server_connections(const struct ctl_server *srv)
{
	return srv ? srv->nconns : 0;
}

static void server_maybe_free(struct ctl_server *srv)
{
	if (srv->closing && srv->pipe_closed && srv->timer_closed && srv->nconns == 0)
		free(srv);
}

static void on_server_closed(uv_handle_t *h)
{
	struct ctl_server *srv = container_of((uv_pipe_t *)h, struct ctl_server, pipe);

	srv->pipe_closed = true;
	server_maybe_free(srv);
}

static void on_refusal_timer_closed(uv_handle_t *h)
{
	struct ctl_server *srv = container_of((uv_timer_t *)h, struct ctl_server, refusal_timer);

	srv->timer_closed = true;
	server_maybe_free(srv);
}

static void on_conn_closed(uv_handle_t *h)
{
	struct ctl_conn *conn = h->data;
	struct ctl_server *srv = conn->srv;

	if (--conn->open_handles)
		return;
	if (conn->prev)
		conn->prev->next = conn->next;
	else
		srv->conns = conn->next;
	if (conn->next)
		conn->next->prev = conn->prev;
	srv->nconns--;
	free(conn);
	server_maybe_free(srv);
}

/* The entry of a non-root uid in the shared pool; with add, a free one if it has none. */
static struct uid_slots *uid_slots_of(struct ctl_server *srv, uid_t uid, bool add)
{
	struct uid_slots *free_entry = NULL;

	for (size_t i = 0; i < SHARED_SLOTS; i++) {
		if (srv->uids[i].n && srv->uids[i].uid == uid)
			return &srv->uids[i];
		if (!srv->uids[i].n && !free_entry)
			free_entry = &srv->uids[i];
	}
	if (!add || !free_entry)
		return NULL;
	free_entry->uid = uid;
	return free_entry;
}

/* A slot is given back when the connection closes: uv_close() closes its descriptor at once. */
static void release_slot(struct ctl_conn *conn)
{
	struct ctl_server *srv = conn->srv;
	struct uid_slots *u;

	switch (conn->slot) {
	case SLOT_NONE:
		break;
	case SLOT_ROOT:
		srv->root_slots--;
		break;
	case SLOT_OTHER:
		srv->other_slots--;
		u = uid_slots_of(srv, conn->uid, false);
		assert(u && u->n > 0);
		u->n--;
		break;
	}
	conn->slot = SLOT_NONE;
}

static void conn_close(struct ctl_conn *conn)
{
	if (conn->closing)
		return;
	conn->closing = true;
	release_slot(conn);
	uv_close((uv_handle_t *)&conn->pipe, on_conn_closed);
	uv_close((uv_handle_t *)&conn->timer, on_conn_closed);
}

/*
 * Sends the one answer line and closes. The line (at most CTL_REPLY_MAX
 * bytes) goes out with one non-blocking send(): the client's receive buffer
 * is empty, as nothing was sent before, so it never blocks or splits; and
 * MSG_NOSIGNAL spares the daemon a SIGPIPE from a client that went away
 * (uv_write would write() and raise it).
 */
static void answer(struct ctl_conn *conn, bool ok, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void answer(struct ctl_conn *conn, bool ok, const char *fmt, ...)
{
	char text[CTL_REPLY_MAX], line[CTL_REPLY_MAX];
	uv_os_fd_t fd;
	va_list ap;
	int n;

	if (conn->answered || conn->closing)
		return;
	conn->answered = true;
	uv_read_stop((uv_stream_t *)&conn->pipe);
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	/* The answer is one line of printable ASCII, whatever a handler wrote. */
	for (char *p = text; *p; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
			*p = (*p == '\n' || *p == '\t' || *p == '\r') ? ' ' : '?';
	n = snprintf(line, sizeof(line), "%s %s", ok ? "ok" : "error", text);
	if (n < 0 || (size_t)n > sizeof(line) - 2)
		n = (int)sizeof(line) - 2;
	line[n++] = '\n';
	/* A refused peer that went away is not worth a line: refusals have their own. */
	if (uv_fileno((uv_handle_t *)&conn->pipe, &fd) == 0 &&
	    send(fd, line, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT) < 0 && conn->slot != SLOT_NONE)
		log_debug("control connection of pid %ld: %s", (long)conn->pid, strerror(errno));
	conn_close(conn);
}

static bool peer_may_mutate(const struct ctl_conn *conn)
{
	return conn->uid == 0 || conn->uid == geteuid();
}

static void run_handler(struct ctl_conn *conn, enum ctl_cmd cmd, ctl_handler_fn fn,
			const char *done)
{
	const char *name = ctl_cmd_name(cmd);
	char msg[CTL_MSG_MAX] = "";
	int ret;

	if (!fn) {
		answer(conn, false, "not supported: %s", name);
		return;
	}
	log_info("%s requested by uid %lu (pid %ld)", name, (unsigned long)conn->uid,
		 (long)conn->pid);
	ret = fn(conn->srv->h.arg, msg, sizeof(msg));
	msg[sizeof(msg) - 1] = '\0';
	if (ret == 0)
		answer(conn, true, "%s", msg[0] ? msg : done);
	else if (msg[0])
		answer(conn, false, "%s", msg);
	else
		answer(conn, false, "%s failed: %s", name, strerror(-ret));
}

static void serve(struct ctl_conn *conn)
{
	struct ctl_request req;
	const char *why = NULL;

	if (ctl_parse_request(conn->buf, conn->len, &req, &why)) {
		log_debug("bad request from uid %lu (pid %ld): %s", (unsigned long)conn->uid,
			  (long)conn->pid, why);
		answer(conn, false, "bad request: %s", why);
		return;
	}
	if (ctl_cmd_mutating(req.cmd) && !peer_may_mutate(conn)) {
		log_warn("%s refused to uid %lu (pid %ld): only root may change the daemon",
			 ctl_cmd_name(req.cmd), (unsigned long)conn->uid, (long)conn->pid);
		answer(conn, false, "permission denied: %s needs root", ctl_cmd_name(req.cmd));
		return;
	}
	switch (req.cmd) {
	case CTL_CMD_RELOAD:
		run_handler(conn, req.cmd, conn->srv->h.reload, "reloaded");
		break;
	case CTL_CMD_RECONCILE:
		run_handler(conn, req.cmd, conn->srv->h.reconcile, "reconcile started");
		break;
	case CTL_CMD_STATUS_PING:
		answer(conn, true, "pong pid=%ld", (long)getpid());
		break;
	case CTL_CMD_VERSION:
		answer(conn, true, "sakeyd %s", SAKEYD_VERSION);
		break;
	}
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct ctl_conn *conn = h->data;

	buf->base = conn->buf + conn->len;
	buf->len = sizeof(conn->buf) - conn->len;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct ctl_conn *conn = s->data;

	if (nread == 0 || conn->answered)
		return;
	if (nread < 0 && nread != UV_EOF) {
		log_debug("control connection of pid %ld: %s", (long)conn->pid, uv_strerror((int)nread));
		conn_close(conn);
		return;
	}
	if (nread > 0) {
		conn->len += (size_t)nread;
		/* Wait for the rest of the line, as long as it may still fit. */
		if (!memchr(conn->buf, '\n', conn->len) && conn->len < sizeof(conn->buf))
			return;
	}
	serve(conn);
}

static void on_timeout(uv_timer_t *t)
{
	struct ctl_conn *conn = t->data;

	log_debug("control connection of pid %ld sent no request in time", (long)conn->pid);
	answer(conn, false, "timeout: no request within %d ms", CTL_TIMEOUT_MS);
}

/* ---- Slots and refusals ---- */

static void log_refusal_summary(struct ctl_server *srv, struct refusals *r, uint64_t now)
{
	unsigned long long secs = (now - r->logged_at + 500) / 1000;

	if (r == &srv->refused_others)
		log_warn("refused %lu control connection%s of other uids in %llu s: %s", r->pending,
			 r->pending == 1 ? "" : "s", secs, r->why);
	else
		log_warn("refused %lu control connection%s of uid %lu in %llu s: %s", r->pending,
			 r->pending == 1 ? "" : "s", (unsigned long)r->uid, secs, r->why);
	r->logged_at = now;
	r->pending = 0;
}

static void on_refusal_timer(uv_timer_t *t);

/*
 * Logs the pending counts whose period is over (all of them with all), and
 * sets the timer for the next one due.
 */
static void flush_refusals(struct ctl_server *srv, bool all)
{
	uint64_t now = uv_now(srv->pipe.loop), next = UINT64_MAX;

	for (size_t i = 0; i <= CTL_REFUSAL_UIDS; i++) {
		struct refusals *r = i < CTL_REFUSAL_UIDS ? &srv->refused[i] : &srv->refused_others;

		if (!r->used || !r->pending)
			continue;
		if (all || now - r->logged_at >= CTL_REFUSAL_LOG_MS)
			log_refusal_summary(srv, r, now);
		else if (r->logged_at + CTL_REFUSAL_LOG_MS < next)
			next = r->logged_at + CTL_REFUSAL_LOG_MS;
	}
	if (all || srv->closing)
		return;
	if (next == UINT64_MAX)
		uv_timer_stop(&srv->refusal_timer);
	else
		uv_timer_start(&srv->refusal_timer, on_refusal_timer, next - now, 0);
}

static void on_refusal_timer(uv_timer_t *t)
{
	struct ctl_server *srv = container_of(t, struct ctl_server, refusal_timer);

	flush_refusals(srv, false);
}

/* The refusal record of uid: its own, a free or spent one, or the shared one of the others. */
static struct refusals *refusals_of(struct ctl_server *srv, uid_t uid, uint64_t now)
{
	struct refusals *spare = NULL;

	for (size_t i = 0; i < CTL_REFUSAL_UIDS; i++) {
		struct refusals *r = &srv->refused[i];

		if (r->used && r->uid == uid)
			return r;
		/* A record with nothing to report and its period over may be reused. */
		if (!spare &&
		    (!r->used || (!r->pending && now - r->logged_at >= CTL_REFUSAL_LOG_MS)))
			spare = r;
	}
	if (!spare)
		return &srv->refused_others;
	spare->used = false;
	spare->uid = uid;
	return spare;
}

/*
 * Counts a refusal: the first of a period is logged at once, the others are
 * summed up when the period ends (flush_refusals), so a client that
 * reconnects in a loop costs one line per CTL_REFUSAL_LOG_MS, not one per try.
 */
static void note_refusal(struct ctl_server *srv, const struct ctl_conn *conn, const char *why)
{
	uint64_t now = uv_now(srv->pipe.loop);
	struct refusals *r = refusals_of(srv, conn->uid, now);

	if (!r->used || (!r->pending && now - r->logged_at >= CTL_REFUSAL_LOG_MS)) {
		r->used = true;
		r->logged_at = now;
		r->pending = 0;
		if (r == &srv->refused_others)
			log_warn("refused a control connection of uid %lu (pid %ld): %s; refusals "
				 "of uids beyond the %d counted apart are summed up together "
				 "every %d s",
				 (unsigned long)conn->uid, (long)conn->pid, why, CTL_REFUSAL_UIDS,
				 CTL_REFUSAL_LOG_MS / 1000);
		else
			log_warn("refused a control connection of uid %lu (pid %ld): %s; further "
				 "refusals of uid %lu are summed up every %d s",
				 (unsigned long)conn->uid, (long)conn->pid, why,
				 (unsigned long)conn->uid, CTL_REFUSAL_LOG_MS / 1000);
		return;
	}
	r->pending++;
	snprintf(r->why, sizeof(r->why), "%s", why);
	flush_refusals(srv, false);
}

/*
 * Gives the identified peer a slot (see CTL_CONN_MAX), or answers it "error
 * busy: <why>", closes it and counts the refusal. Returns whether it got one.
 */
static bool admit(struct ctl_conn *conn)
{
	struct ctl_server *srv = conn->srv;
	unsigned used = srv->root_slots + srv->other_slots;
	struct uid_slots *u;
	char why[128];

	if (peer_may_mutate(conn)) {
		if (used < CTL_CONN_MAX) {
			conn->slot = SLOT_ROOT;
			srv->root_slots++;
			return true;
		}
		/* Only root's own connections can fill the reserve. */
		snprintf(why, sizeof(why), "all %d connections are in use, %u of them root's",
			 CTL_CONN_MAX, srv->root_slots);
		note_refusal(srv, conn, why);
		answer(conn, false, "busy: all %d control connections are in use (%u by root); "
				    "try again when one of them is done",
		       CTL_CONN_MAX, srv->root_slots);
		return false;
	}
	u = uid_slots_of(srv, conn->uid, true);
	if (u && u->n >= CTL_CONN_PER_UID) {
		snprintf(why, sizeof(why), "per-uid limit %d", CTL_CONN_PER_UID);
		note_refusal(srv, conn, why);
		answer(conn, false, "busy: uid %lu already has %d control connections open (the "
				    "limit per user); close one and try again",
		       (unsigned long)conn->uid, CTL_CONN_PER_UID);
		return false;
	}
	if (!u || srv->other_slots >= SHARED_SLOTS || used >= CTL_CONN_MAX) {
		snprintf(why, sizeof(why), "the %d connections open to non-root users are in use",
			 SHARED_SLOTS);
		if (used >= CTL_CONN_MAX && srv->other_slots < SHARED_SLOTS)
			snprintf(why, sizeof(why), "all %d connections are in use", CTL_CONN_MAX);
		note_refusal(srv, conn, why);
		answer(conn, false, "busy: %s; try again later", why);
		return false;
	}
	conn->slot = SLOT_OTHER;
	srv->other_slots++;
	u->n++;
	return true;
}

static void on_connection(uv_stream_t *server, int status)
{
	struct ctl_server *srv = container_of((uv_pipe_t *)server, struct ctl_server, pipe);
	struct ucred cred;
	socklen_t credlen = sizeof(cred);
	struct ctl_conn *conn;
	uv_os_fd_t fd;
	int ret;

	if (status < 0) {
		log_warn("accept on %s: %s", srv->path, uv_strerror(status));
		return;
	}
	conn = calloc(1, sizeof(*conn));
	if (!conn) {
		log_err("out of memory for a control connection");
		return;
	}
	conn->srv = srv;
	conn->pid = -1;
	conn->uid = (uid_t)-1;
	uv_pipe_init(server->loop, &conn->pipe, 0);
	uv_timer_init(server->loop, &conn->timer);
	conn->pipe.data = conn;
	conn->timer.data = conn;
	conn->open_handles = 2;
	conn->next = srv->conns;
	if (srv->conns)
		srv->conns->prev = conn;
	srv->conns = conn;
	srv->nconns++;

	ret = uv_accept(server, (uv_stream_t *)&conn->pipe);
	if (ret) {
		log_warn("accept on %s: %s", srv->path, uv_strerror(ret));
		conn_close(conn);
		return;
	}
	/* Who it is first: the slots it may take depend on it. */
	if (uv_fileno((uv_handle_t *)&conn->pipe, &fd) ||
	    getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &credlen)) {
		log_err("SO_PEERCRED on a control connection: %s", strerror(errno));
		answer(conn, false, "internal: cannot identify the peer");
		return;
	}
	conn->uid = cred.uid;
	conn->pid = cred.pid;
	if (!admit(conn))
		return;
	ret = uv_timer_start(&conn->timer, on_timeout, CTL_TIMEOUT_MS, 0);
	if (!ret)
		ret = uv_read_start((uv_stream_t *)&conn->pipe, on_alloc, on_read);
	if (ret) {
		log_err("control connection: %s", uv_strerror(ret));
		conn_close(conn);
	}
}

/* A copy of path's directory part ("." if none). */
static int dir_of(const char *path, char *dir, size_t len)
{
	const char *slash = strrchr(path, '/');
	size_t n;

	if (!slash) {
		snprintf(dir, len, ".");
		return 0;
	}
	n = slash == path ? 1 : (size_t)(slash - path);
	if (n >= len)
		return -ENAMETOOLONG;
	memcpy(dir, path, n);
	dir[n] = '\0';
	return 0;
}

/*
 * Whoever can write to the socket's directory can replace the socket with
 * their own and collect sactl's requests, or remove it: the directory must be
 * ours and closed to others.
 */
static int prepare_dir(const char *path)
{
	char dir[PATH_MAX];
	struct stat st;
	int ret;

	ret = dir_of(path, dir, sizeof(dir));
	if (ret)
		return ret;
	if (stat(dir, &st) && errno == ENOENT) {
		if (mkdir(dir, 0750) && errno != EEXIST) {
			ret = -errno;
			log_err("cannot create the control socket directory %s: %s", dir,
				strerror(errno));
			return ret;
		}
		/* mkdir's mode passes through the umask; chmod states it. */
		if (chmod(dir, 0750)) {
			ret = -errno;
			log_err("chmod 0750 %s: %s", dir, strerror(errno));
			return ret;
		}
		log_info("created the control socket directory %s (mode 0750)", dir);
	}
	if (stat(dir, &st)) {
		ret = -errno;
		log_err("control socket directory %s: %s", dir, strerror(errno));
		return ret;
	}
	if (!S_ISDIR(st.st_mode)) {
		log_err("%s is not a directory; choose a control_socket in a directory", dir);
		return -ENOTDIR;
	}
	if (st.st_uid != geteuid()) {
		log_err("control socket directory %s is owned by uid %lu, not by sakeyd's uid %lu: "
			"its owner could replace the socket; use a directory of uid %lu "
			"(chown %lu %s) or another control_socket",
			dir, (unsigned long)st.st_uid, (unsigned long)geteuid(),
			(unsigned long)geteuid(), (unsigned long)geteuid(), dir);
		return -EPERM;
	}
	if (st.st_mode & (S_IWGRP | S_IWOTH)) {
		log_err("control socket directory %s is group- or world-writable (mode %04o): "
			"other users could replace the socket; chmod 0750 %s",
			dir, (unsigned)(st.st_mode & 07777), dir);
		return -EPERM;
	}
	return 0;
}

static void fill_addr(struct sockaddr_un *sa, const char *path)
{
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	memcpy(sa->sun_path, path, strlen(path) + 1);
}

/* Removes a socket file nobody listens on (left by a daemon that was killed). */
static int remove_stale(const char *path)
{
	struct sockaddr_un sa;
	struct stat st;
	int fd, ret;

	if (lstat(path, &st)) {
		if (errno == ENOENT)
			return 0;
		ret = -errno;
		log_err("%s: %s", path, strerror(errno));
		return ret;
	}
	if (!S_ISSOCK(st.st_mode)) {
		log_err("%s exists and is not a socket; remove it or choose another control_socket",
			path);
		return -EEXIST;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		ret = -errno;
		log_err("socket: %s", strerror(errno));
		return ret;
	}
	fill_addr(&sa, path);
	/* Non-blocking: a listener with a full backlog answers EAGAIN rather than blocking us. */
	ret = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) ? -errno : 0;
	close(fd);
	if (ret == 0 || ret == -EAGAIN || ret == -EINPROGRESS) {
		log_err("another process listens on %s: is sakeyd already running?", path);
		return -EADDRINUSE;
	}
	if (ret != -ECONNREFUSED) {
		log_err("cannot tell whether %s is in use: %s", path, strerror(-ret));
		return ret;
	}
	if (unlink(path) && errno != ENOENT) {
		ret = -errno;
		log_err("cannot remove the stale control socket %s: %s", path, strerror(errno));
		return ret;
	}
	log_info("removed the stale control socket %s", path);
	return 0;
}

int ctl_server_start(uv_loop_t *loop, const char *path, const struct ctl_handlers *h,
		     struct ctl_server **out)
{
	struct ctl_server *srv;
	struct sockaddr_un sa;
	struct stat st;
	int fd, ret;

	*out = NULL;
	if (!path[0]) {
		log_err("control_socket is empty");
		return -EINVAL;
	}
	if (strlen(path) >= SUN_PATH_MAX) {
		log_err("control socket path %s is longer than %zu bytes, the limit of a Unix "
			"socket address; choose a shorter control_socket",
			path, SUN_PATH_MAX - 1);
		return -ENAMETOOLONG;
	}
	ret = prepare_dir(path);
	if (!ret)
		ret = remove_stale(path);
	if (ret)
		return ret;

	/*
	 * Bound here, not with uv_pipe_bind(): libuv unlinks a path it bound when
	 * the handle closes, even if another daemon has taken it since.
	 */
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		ret = -errno;
		log_err("socket: %s", strerror(errno));
		return ret;
	}
	fill_addr(&sa, path);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		ret = -errno;
		log_err("bind %s: %s", path, strerror(errno));
		close(fd);
		return ret;
	}
	/* Group members may ask status-ping and version; mutating requests check the peer. */
	ret = chmod(path, 0660) || lstat(path, &st) ? -errno : 0;
	if (ret) {
		log_err("chmod 0660 %s: %s", sa.sun_path, strerror(-ret));
		unlink(path);
		close(fd);
		return ret;
	}
	srv = calloc(1, sizeof(*srv));
	if (!srv) {
		unlink(path);
		close(fd);
		return -ENOMEM;
	}
	if (h)
		srv->h = *h;
	memcpy(srv->path, path, strlen(path) + 1);
	srv->dev = st.st_dev;
	srv->ino = st.st_ino;
	srv->bound = true;
	ret = uv_pipe_init(loop, &srv->pipe, 0);
	if (ret) {
		log_err("uv_pipe_init: %s", uv_strerror(ret));
		unlink(path);
		close(fd);
		free(srv);
		return ret;
	}
	/* Cannot fail (libuv: uv_timer_init only fills the handle in). */
	uv_timer_init(loop, &srv->refusal_timer);
	ret = uv_pipe_open(&srv->pipe, fd);
	if (ret) {
		log_err("uv_pipe_open: %s", uv_strerror(ret));
		close(fd);
		goto cleanup;
	}
	ret = uv_listen((uv_stream_t *)&srv->pipe, CTL_BACKLOG, on_connection);
	if (ret) {
		log_err("listen on %s: %s", path, uv_strerror(ret));
		goto cleanup;
	}
	log_info("control socket listening on %s", path);
	*out = srv;
	return 0;
cleanup:
	ctl_server_close(srv);
	return ret;
}

void ctl_server_close(struct ctl_server *srv)
{
	struct stat st;

	if (!srv || srv->closing)
		return;
	srv->closing = true;
	/* Only our own socket: another daemon may have taken the path since. */
	if (srv->bound && lstat(srv->path, &st) == 0 && S_ISSOCK(st.st_mode) &&
	    st.st_dev == srv->dev && st.st_ino == srv->ino)
		unlink(srv->path);
	for (struct ctl_conn *conn = srv->conns; conn; conn = conn->next)
		conn_close(conn);
	/* The counts not logged yet, so that none is lost. */
	flush_refusals(srv, true);
	uv_close((uv_handle_t *)&srv->pipe, on_server_closed);
	uv_close((uv_handle_t *)&srv->refusal_timer, on_refusal_timer_closed);
}

/* ---- Client ---- */

static int fail(char *reply, size_t len, int err, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int fail(char *reply, size_t len, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(reply, len, fmt, ap);
	va_end(ap);
	return err;
}

int ctl_call(const char *path, const char *request, char *reply, size_t len)
{
	struct timeval tv = { CTL_CLIENT_TIMEOUT_MS / 1000, (CTL_CLIENT_TIMEOUT_MS % 1000) * 1000 };
	char line[CTL_REQUEST_MAX + 1], answer_buf[CTL_REPLY_MAX + 1];
	struct sockaddr_un sa;
	size_t got = 0, sent = 0;
	int fd = -1, ret, n, send_err = 0;
	char *nl;

	reply[0] = '\0';
	if (strlen(path) >= SUN_PATH_MAX)
		return fail(reply, len, -ENAMETOOLONG,
			    "control socket path %s is too long for a Unix socket", path);
	n = snprintf(line, sizeof(line), "%s\n", request);
	if (n < 0 || n > CTL_REQUEST_MAX)
		return fail(reply, len, -EINVAL, "request too long");

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return fail(reply, len, -errno, "socket: %s", strerror(errno));
	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv))) {
		ret = fail(reply, len, -errno, "setsockopt: %s", strerror(errno));
		goto cleanup;
	}
	fill_addr(&sa, path);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		ret = -errno;
		switch (errno) {
		case ENOENT:
		case ENOTDIR:
			fail(reply, len, 0, "sakeyd is not running (no control socket at %s)", path);
			break;
		case ECONNREFUSED:
			fail(reply, len, 0,
			     "sakeyd is not running (nobody listens on the control socket %s)", path);
			break;
		case EACCES:
		case EPERM:
			fail(reply, len, 0, "permission denied: run as root (cannot connect to %s)",
			     path);
			break;
		default:
			fail(reply, len, 0, "cannot connect to %s: %s", path, strerror(errno));
		}
		goto cleanup;
	}
	while (sent < (size_t)n) {
		ssize_t w = send(fd, line + sent, (size_t)n - sent, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		/*
		 * The daemon closed before reading the request: it refused the
		 * connection, and its answer ("error busy: ...") may be waiting in
		 * our receive queue, which outlives the peer (af_unix.c:
		 * unix_stream_read_generic reads the queue before the error).
		 */
		if (w < 0 && (errno == EPIPE || errno == ECONNRESET)) {
			send_err = errno;
			break;
		}
		if (w < 0) {
			ret = fail(reply, len, -errno, "sending to sakeyd at %s: %s", path,
				   strerror(errno));
			goto cleanup;
		}
		sent += (size_t)w;
	}
	while (got < sizeof(answer_buf) - 1 && !memchr(answer_buf, '\n', got)) {
		ssize_t r = recv(fd, answer_buf + got, sizeof(answer_buf) - 1 - got, 0);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			ret = fail(reply, len, -ETIMEDOUT, "no answer from sakeyd within %d s (at %s)",
				   CTL_CLIENT_TIMEOUT_MS / 1000, path);
			goto cleanup;
		}
		/* A daemon that closed with our request unread resets; its answer is read first. */
		if (r < 0 && errno == ECONNRESET) {
			send_err = send_err ? send_err : errno;
			break;
		}
		if (r < 0) {
			ret = fail(reply, len, -errno, "reading from sakeyd at %s: %s", path,
				   strerror(errno));
			goto cleanup;
		}
		if (r == 0)
			break;
		got += (size_t)r;
	}
	answer_buf[got] = '\0';
	nl = memchr(answer_buf, '\n', got);
	if (!nl && send_err) {
		ret = fail(reply, len, -send_err,
			   "sakeyd at %s closed the connection without reading the request or "
			   "answering (%s); its log says why (e.g. too many control connections)",
			   path, strerror(send_err));
		goto cleanup;
	}
	if (!nl) {
		ret = fail(reply, len, -EPROTO, "sakeyd at %s closed the connection without answering",
			   path);
		goto cleanup;
	}
	*nl = '\0';
	if (!strncmp(answer_buf, "ok ", 3) || !strcmp(answer_buf, "ok"))
		ret = 0;
	else if (!strncmp(answer_buf, "error ", 6) || !strcmp(answer_buf, "error"))
		ret = -EREMOTEIO;
	else {
		ret = fail(reply, len, -EPROTO, "unexpected answer from %s (is it sakeyd?)", path);
		goto cleanup;
	}
	snprintf(reply, len, "%s", answer_buf);
cleanup:
	close(fd);
	return ret;
}
