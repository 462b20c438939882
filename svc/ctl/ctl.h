/* SPDX-License-Identifier: ISC */
/* The control socket: sactl's line protocol, the daemon's libuv server and the client. */
#ifndef SAKEYD_CTL_H
#define SAKEYD_CTL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <uv.h>

/*
 * The protocol, over an AF_UNIX SOCK_STREAM socket: the client sends one
 * request line of printable ASCII, at most CTL_REQUEST_MAX bytes with its
 * "\n" (a "\r" before it is tolerated); the server answers one line
 * "ok <text>\n" or "error <text>\n" (at most CTL_REPLY_MAX bytes, printable
 * ASCII) and closes the connection. One request per connection.
 *
 *   reload        re-read the configuration (mutating: root only)
 *   reconcile     reconcile every link with the kernel now (mutating: root only)
 *   status-ping   is the daemon alive? "ok pong pid=N"
 *   version       "ok sakeyd VERSION"
 *
 * A rejected request is answered "error bad request: <why>"; a mutating
 * request from another user "error permission denied: reload needs root".
 */
#define CTL_REQUEST_MAX 256
#define CTL_REPLY_MAX 512
/* Longest text a handler may put after "ok " / "error ". */
#define CTL_MSG_MAX 400
/*
 * A connection that has not sent its whole request within this time of its
 * accept() is answered and closed; data trickling in does not extend it, so
 * an idle or slow client holds a slot for at most this long.
 */
#define CTL_TIMEOUT_MS 2000
/*
 * Connection slots. The peer is identified (SO_PEERCRED) before it gets one;
 * a peer refused a slot is answered "error busy: <why>" and closed. A
 * well-behaved client holds a slot for the milliseconds of one request; only
 * idle or slow clients hold one longer (CTL_TIMEOUT_MS at most).
 *
 * - CTL_CONN_MAX slots in all (fds and memory stay small).
 * - CTL_CONN_RESERVED of them only for the peers that may mutate (uid 0 and
 *   the daemon's own euid, "root" below): root may use any free slot, the
 *   others together at most CTL_CONN_MAX - CTL_CONN_RESERVED = 12. So
 *   however many connections the socket's group holds, root finds a slot
 *   unless root itself holds every one. Four: root's requests are sactl
 *   reload / reconcile from a person or a configuration run, one or two at
 *   once, served one at a time by synchronous handlers.
 * - CTL_CONN_PER_UID per non-root uid: a monitoring agent needs one at a
 *   time, four allow a few parallel checks, and one uid cannot take the
 *   whole shared pool (it takes three uids to fill its 12).
 */
#define CTL_CONN_MAX 16
#define CTL_CONN_RESERVED 4
#define CTL_CONN_PER_UID 4
/*
 * Refusals are logged at most once per uid per this period: the first at
 * once, the rest summed up in one line ("refused 312 control connections of
 * uid 1000 in 10 s: ...") when the period is over. Up to CTL_REFUSAL_UIDS
 * uids are counted apart; beyond them, the others are counted together.
 */
#define CTL_REFUSAL_LOG_MS 10000
#define CTL_REFUSAL_UIDS 16
/* The listen(2) backlog: well above the slots, so connect() does not wait behind a burst. */
#define CTL_BACKLOG 128
/* How long ctl_call() waits for the daemon's answer (a reload reads the config and secrets). */
#define CTL_CLIENT_TIMEOUT_MS 30000

enum ctl_cmd {
	CTL_CMD_RELOAD = 1,
	CTL_CMD_RECONCILE,
	CTL_CMD_STATUS_PING,
	CTL_CMD_VERSION,
};

struct ctl_request {
	enum ctl_cmd cmd;
};

/*
 * Parses one request: exactly len bytes of buf (need not be NUL-terminated),
 * which must be one line ending in "\n" and nothing after it. Pure. Returns 0
 * and fills *out, or -EINVAL with *why (may be NULL) set to a static
 * explanation: empty, too long, no newline, data after the newline, a byte
 * that is not printable ASCII, an unknown command, or an argument.
 */
int ctl_parse_request(const char *buf, size_t len, struct ctl_request *out, const char **why);
/* The request's word ("reload", ...); "?" for a value out of range. */
const char *ctl_cmd_name(enum ctl_cmd cmd);
/* Whether the request changes the daemon's state (and so needs root). */
bool ctl_cmd_mutating(enum ctl_cmd cmd);

/*
 * A handler does the work of a mutating request, synchronously, on the loop.
 * It returns 0 or -errno and may write a one-line explanation (at most len
 * bytes with the NUL) into msg, which starts empty; the server answers
 * "ok <msg>" or "error <msg>" (a default text if it left msg empty).
 */
typedef int (*ctl_handler_fn)(void *arg, char *msg, size_t len);

struct ctl_handlers {
	ctl_handler_fn reload;    /* NULL: answered "error not supported: reload" */
	ctl_handler_fn reconcile; /* NULL: likewise */
	void *arg;                /* passed to each handler */
};

struct ctl_server;

/*
 * Listens on the Unix socket at path (at most 107 bytes) on loop. The
 * directory of path is created mode 0750 if missing (its parent must exist)
 * and refused if it is not a directory, not owned by our effective uid, or
 * group- or world-writable. A socket file already at path is removed if
 * nobody listens on it; anything else there is refused. The socket is made
 * mode 0660. Mutating requests are served only to peers (SO_PEERCRED) of uid
 * 0 or of our own effective uid: that user can signal the daemon anyway, and
 * it lets an unprivileged daemon (kernel = sim, tests) be driven by its
 * owner. Connection slots are shared as CTL_CONN_MAX above says. h is
 * copied. Every refusal is logged with the fix. On success *out is the
 * server, to be released with ctl_server_close(). Returns 0 or -errno
 * (-ENAMETOOLONG, -ENOTDIR, -EPERM for an unsafe directory, -EEXIST for a
 * non-socket file, -EADDRINUSE when another process listens, or uv's error).
 */
int ctl_server_start(uv_loop_t *loop, const char *path, const struct ctl_handlers *h,
		     struct ctl_server **out);
/*
 * Stops listening, closes every connection and removes the socket file (if
 * it is still ours). Memory is released in the close callbacks, so the loop
 * must run on until they have run. NULL is a no-op.
 */
void ctl_server_close(struct ctl_server *srv);
/* Connections accepted and not yet freed (closing ones included; for tests). */
unsigned ctl_server_connections(const struct ctl_server *srv);

/*
 * Sends request (a command word without newline) to the daemon listening at
 * path and waits up to CTL_CLIENT_TIMEOUT_MS for its answer. Blocking; for
 * sactl. Returns 0 if the daemon answered "ok ..." and -EREMOTEIO if it
 * answered "error ...": reply then holds the line without its newline. Any
 * other -errno is a local failure and reply holds a sentence that says what
 * to do ("sakeyd is not running (no control socket at PATH)", "permission
 * denied: run as root", ...). A daemon that refuses a connection answers
 * and closes it before reading the request, so sending may fail with EPIPE:
 * the answer is read all the same ("error busy: ..."); without one, the
 * result is -EPIPE (or -ECONNRESET) with a sentence saying so. No SIGPIPE is
 * raised. reply is always NUL-terminated (len >= 1), truncated to len bytes.
 */
int ctl_call(const char *path, const char *request, char *reply, size_t len);

#endif
