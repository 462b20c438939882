/* SPDX-License-Identifier: ISC */
/* The simulated SADB as a standalone process, for conform.py: PF_KEY clients on one socket, traffic on another. */
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <uv.h>

#include "svc/base/log.h"
#include "svc/kernel/sim.h"

/*
 * simd SOCKET_PATH CONTROL_PATH [--acq-expires N]
 *
 * The control socket (SOCK_STREAM) takes one command a line:
 *   traffic SRC DST BYTES  -> the return value of sim_traffic, a line
 *   send SRC DST BYTES     -> "RET SEQ": sim_traffic's return value (the SPI
 *                             used, 0 in clear, -errno) and the packet's ESP
 *                             sequence number (0 when no SA carried it)
 *   deliver DST SPI SEQ BYTES -> sim_deliver's outcome for an ESP packet with
 *                             that sequence number: "accepted", "replay",
 *                             "too-old", "seq-zero", "no-state", "expired"
 *   replay DST SPI         -> "oseq N seq N bitmap N window N replay N
 *                             replay_window N packets N bytes N" (sim_sa_replay)
 *                             or "no-state"
 *   setreplay DST SPI OSEQ SEQ BITMAP -> "ok" or "no-state" (sim_sa_set_replay)
 *   drop PERMILLE SEED     -> "ok": from now on each reply and broadcast to
 *                             any client is lost with probability
 *                             PERMILLE/1000 (sim_drop_rate; 0 = off)
 *   delay MS               -> "ok": from now on every message to any client
 *                             leaves MS milliseconds late (sim_delay; 0 = off),
 *                             so a daemon's requests stay in flight that long
 *   fail TYPE ERRNO COUNT  -> "ok": the next COUNT requests of TYPE (0: any)
 *                             get an error reply ERRNO (sim_fail_count)
 *   inject HEX             -> "ok": these raw bytes (e.g. a malformed
 *                             message) to every client (sim_inject)
 *   expire soft|hard|both  -> "N": every mature SA's soft EXPIRE, every SA's
 *                             hard EXPIRE (gone), or soft then hard, at once
 *                             (sim_expire_now); N EXPIREs were sent
 *   stats                  -> "requests N replies N broadcasts N dropped N
 *                             malformed N sas N in_no_states N
 *                             in_state_seq_errors N in_state_expired N
 *                             out_state_seq_errors N out_state_expired N"
 *   quit                   -> "ok", then simd exits
 * These let tests/sim drive faults into a daemon connected with sim_connect.
 */

/* inject carries up to 4 KiB of hex */
#define LINE_MAX_LEN 8400

struct conn {
	uv_pipe_t pipe;
	char line[LINE_MAX_LEN];
	size_t len;
};

static struct sim *sim;
static uv_loop_t loop;
static uv_pipe_t control;
static uv_signal_t sigterm, sigint;
static const char *control_path;
static bool quitting, stopping;

static void shutdown_all(void);

static void conn_closed(uv_handle_t *h)
{
	free(h->data);
}

static void alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
	static char slab[4096];

	buf->base = slab;
	buf->len = sizeof(slab);
}

static void write_done(uv_write_t *req, int status)
{
	free(req);
	if (quitting)
		shutdown_all();
}

static void reply(struct conn *c, const char *text)
{
	size_t n = strlen(text);
	uv_write_t *req = malloc(sizeof(*req) + n);
	uv_buf_t buf;

	if (!req)
		return;
	memcpy(req + 1, text, n);
	buf = uv_buf_init((char *)(req + 1), (unsigned)n);
	if (uv_write(req, (uv_stream_t *)&c->pipe, &buf, 1, write_done)) {
		free(req);
		if (quitting)
			shutdown_all();
	}
}

static void close_any(uv_handle_t *h, void *arg)
{
	if (!uv_is_closing(h))
		uv_close(h, h->type == UV_NAMED_PIPE && h != (uv_handle_t *)&control ? conn_closed : NULL);
}

/* Close the simulator first (it owns its handles), then whatever else is open. */
static void shutdown_all(void)
{
	if (stopping)
		return;
	stopping = true;
	unlink(control_path);
	sim_close(sim);
	uv_walk(&loop, close_any, NULL);
}

/* sim_deliver's return value as the control protocol names it. */
static const char *outcome(int ret)
{
	switch (ret) {
	case 0:
		return "accepted\n";
	case -EALREADY:
		return "replay\n";
	case -ERANGE:
		return "too-old\n";
	case -EPROTO:
		return "seq-zero\n";
	case -ESRCH:
		return "no-state\n";
	case -EINVAL:
		return "expired\n";
	default:
		return "error\n";
	}
}

static void command(struct conn *c, char *line)
{
	char src_text[128], dst_text[128], out[64];
	unsigned long bytes;
	unsigned permille, seed, ms, ftype, ferr, fcount;
	long spi, seq, oseq, bitmap;
	static unsigned char raw[4096];
	struct pfkey_addr src, dst;

	if (!strcmp(line, "quit")) {
		/* Answer first; the write's callback shuts down. */
		quitting = true;
		reply(c, "ok\n");
		return;
	}
	if (sscanf(line, "drop %u %u", &permille, &seed) == 2) {
		sim_drop_rate(sim, permille, seed);
		reply(c, "ok\n");
		return;
	}
	if (sscanf(line, "fail %u %u %u", &ftype, &ferr, &fcount) == 3 && ftype < 256 && ferr &&
	    ferr < 256) {
		sim_fail_count(sim, (uint8_t)ftype, (int)ferr, fcount);
		reply(c, "ok\n");
		return;
	}
	if (sscanf(line, "delay %u", &ms) == 1) {
		sim_delay(sim, ms);
		reply(c, "ok\n");
		return;
	}
	if (!strncmp(line, "inject ", 7)) {
		size_t n = 0;
		const char *hex = line + 7;

		while (hex[0] && hex[1] && n < sizeof(raw) && sscanf(hex, "%2hhx", &raw[n]) == 1) {
			n++;
			hex += 2;
		}
		if (*hex || !n) {
			reply(c, "error\n");
			return;
		}
		sim_inject(sim, -1, raw, n);
		reply(c, "ok\n");
		return;
	}
	if (!strncmp(line, "expire ", 7)) {
		const char *kind = line + 7;
		bool soft = !strcmp(kind, "soft") || !strcmp(kind, "both");
		bool hard = !strcmp(kind, "hard") || !strcmp(kind, "both");

		if (!soft && !hard) {
			reply(c, "error\n");
			return;
		}
		snprintf(out, sizeof(out), "%u\n", sim_expire_now(sim, soft, hard));
		reply(c, out);
		return;
	}
	if (!strcmp(line, "stats")) {
		struct sim_stats st;
		char text[256];

		sim_get_stats(sim, &st);
		snprintf(text, sizeof(text),
			 "requests %lu replies %lu broadcasts %lu dropped %lu malformed %lu sas %u "
			 "in_no_states %lu in_state_seq_errors %lu in_state_expired %lu "
			 "out_state_seq_errors %lu out_state_expired %lu\n",
			 st.requests, st.replies, st.broadcasts, st.dropped, st.malformed,
			 sim_sa_count(sim), st.in_no_states, st.in_state_seq_errors,
			 st.in_state_expired, st.out_state_seq_errors, st.out_state_expired);
		reply(c, text);
		return;
	}
	if (sscanf(line, "traffic %127s %127s %lu", src_text, dst_text, &bytes) == 3 &&
	    !pfkey_addr_from_string(&src, src_text) && !pfkey_addr_from_string(&dst, dst_text)) {
		snprintf(out, sizeof(out), "%lld\n",
			 (long long)sim_traffic(sim, &src, &dst, (uint32_t)bytes, NULL));
		reply(c, out);
		return;
	}
	if (sscanf(line, "send %127s %127s %lu", src_text, dst_text, &bytes) == 3 &&
	    !pfkey_addr_from_string(&src, src_text) && !pfkey_addr_from_string(&dst, dst_text)) {
		uint32_t used;
		int64_t ret = sim_traffic(sim, &src, &dst, (uint32_t)bytes, &used);

		snprintf(out, sizeof(out), "%lld %u\n", (long long)ret, used);
		reply(c, out);
		return;
	}
	if (sscanf(line, "deliver %127s %li %li %lu", dst_text, &spi, &seq, &bytes) == 4 &&
	    !pfkey_addr_from_string(&dst, dst_text)) {
		reply(c, outcome(sim_deliver(sim, &dst, (uint32_t)spi, (uint32_t)seq,
					     (uint32_t)bytes)));
		return;
	}
	if (sscanf(line, "replay %127s %li", dst_text, &spi) == 2 &&
	    !pfkey_addr_from_string(&dst, dst_text)) {
		struct sim_replay r;
		char text[256];

		if (sim_sa_replay(sim, &dst, (uint32_t)spi, &r)) {
			reply(c, "no-state\n");
			return;
		}
		snprintf(text, sizeof(text),
			 "oseq %u seq %u bitmap %u window %u replay %u replay_window %u "
			 "packets %llu bytes %llu\n",
			 r.oseq, r.seq, r.bitmap, r.window, r.replay, r.replay_window,
			 (unsigned long long)r.packets, (unsigned long long)r.bytes);
		reply(c, text);
		return;
	}
	if (sscanf(line, "setreplay %127s %li %li %li %li", dst_text, &spi, &oseq, &seq,
		   &bitmap) == 5 &&
	    !pfkey_addr_from_string(&dst, dst_text)) {
		reply(c, sim_sa_set_replay(sim, &dst, (uint32_t)spi, (uint32_t)oseq, (uint32_t)seq,
					   (uint32_t)bitmap) ?
				 "no-state\n" :
				 "ok\n");
		return;
	}
	reply(c, "error\n");
}

static void read_cb(uv_stream_t *stream, ssize_t n, const uv_buf_t *buf)
{
	struct conn *c = stream->data;

	if (n < 0) {
		uv_close((uv_handle_t *)stream, conn_closed);
		return;
	}
	for (ssize_t i = 0; i < n; i++) {
		if (buf->base[i] == '\n') {
			c->line[c->len] = '\0';
			c->len = 0;
			command(c, c->line);
			if (stopping)
				return;
		} else if (c->len + 1 < sizeof(c->line)) {
			c->line[c->len++] = buf->base[i];
		}
	}
}

static void connection_cb(uv_stream_t *server, int status)
{
	struct conn *c;

	if (status < 0)
		return;
	c = calloc(1, sizeof(*c));
	if (!c)
		return;
	uv_pipe_init(&loop, &c->pipe, 0);
	c->pipe.data = c;
	if (uv_accept(server, (uv_stream_t *)&c->pipe)) {
		uv_close((uv_handle_t *)&c->pipe, conn_closed);
		return;
	}
	uv_read_start((uv_stream_t *)&c->pipe, alloc_cb, read_cb);
}

static void signal_cb(uv_signal_t *h, int signum)
{
	shutdown_all();
}

int main(int argc, char **argv)
{
	struct sim_opts opts = { 0 };
	int ret;

	if (argc != 3 && !(argc == 5 && !strcmp(argv[3], "--acq-expires"))) {
		fprintf(stderr, "usage: simd SOCKET_PATH CONTROL_PATH [--acq-expires N]\n");
		return 2;
	}
	if (argc == 5)
		opts.acq_expires = (unsigned)strtoul(argv[4], NULL, 10);
	control_path = argv[2];
	/* The simulator logs little beside each message it drops on purpose (drop). */
	log_set_level(LOG_LVL_DEBUG);
	signal(SIGPIPE, SIG_IGN);
	uv_loop_init(&loop);
	ret = sim_new(&loop, &opts, &sim);
	if (!ret)
		ret = sim_listen(sim, argv[1]);
	if (ret) {
		fprintf(stderr, "simd: %s: %s\n", argv[1], strerror(-ret));
		return 1;
	}
	uv_pipe_init(&loop, &control, 0);
	unlink(control_path);
	ret = uv_pipe_bind(&control, control_path);
	if (!ret)
		ret = uv_listen((uv_stream_t *)&control, 16, connection_cb);
	if (ret) {
		fprintf(stderr, "simd: %s: %s\n", control_path, uv_strerror(ret));
		return 1;
	}
	uv_signal_init(&loop, &sigterm);
	uv_signal_start(&sigterm, signal_cb, SIGTERM);
	uv_signal_init(&loop, &sigint);
	uv_signal_start(&sigint, signal_cb, SIGINT);
	uv_run(&loop, UV_RUN_DEFAULT);
	uv_loop_close(&loop);
	return 0;
}
