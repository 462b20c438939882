/* SPDX-License-Identifier: ISC */
/*
 * Conformance of the kernel channel's backends on the real kernel: every test
 * runs once with kernel = pfkey and once with kernel = xfrm, through the same
 * svc/kernel/channel.h calls and the same assertions, so the daemon sees the same
 * behaviour from both. Where the two kernels' APIs truly differ (AEAD, ICV
 * lengths, ESN) the test says so and asserts each side. Runs as root inside
 * User-Mode Linux (uml-run.sh).
 *
 *   ktest_kern [pfkey|xfrm] [TEST...]
 *
 * The PF_KEY conformance scenarios of tests/sim/conform.py, as they apply to
 * both backends: add_get_delete -> roundtrip-*, flush -> flush, dump ->
 * burst-dump, expire -> expire-soft-hard, spd, acquire and acquire_answer ->
 * acquire-and-spd, update -> update, getspi -> getspi, traffic -> traffic.
 * register, malformed and promisc are about the PF_KEY socket itself (its
 * REGISTER, its wire format, X_PROMISC); XFRM's counterparts are the
 * multicast groups joined at open, svc/kernel/xfrm.c's hostile-input tests and
 * fuzz target, and nothing. update, getspi, flush and traffic compare the
 * XFRM run's transcript with the PF_KEY run's, line for line.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "conf/conf.h"
#include "svc/kernel/channel.h"
#include "svc/kernel/pfkey.h"

static char failure[512];
static enum kern_backend backend;
static const char *bname;

#define FAIL(...)                                                                   \
	do {                                                                        \
		snprintf(failure, sizeof(failure), __VA_ARGS__);                    \
		goto out;                                                           \
	} while (0)
#define CHECK(cond, fmt, ...)                                                       \
	do {                                                                        \
		if (!(cond))                                                        \
			FAIL("line %d: %s: " fmt, __LINE__, #cond, ##__VA_ARGS__);  \
	} while (0)

/* --- a recorded message (copies: the channel's are valid during the call only) --- */

#define MAX_EVENTS 8192

struct rec {
	uint8_t type, satype, state, mode, ealg, aalg;
	bool own;
	uint32_t present, spi, seq, pid, reqid;
	struct pfkey_addr src, dst;
	struct pfkey_lifetime soft, hard;
	uint8_t policy_dir;
	uint32_t policy_id;
	uint16_t ebits, abits, icv;
	uint8_t ekey[64], akey[64];
};

struct ctx {
	uv_loop_t loop;
	struct kern *k;
	/* the last reply */
	bool replied;
	int err;
	bool has_reply;
	struct rec reply;
	/* events */
	struct rec *ev;
	size_t nev;
	unsigned long losses;
	/* counters for bursts */
	unsigned long ok, errs, timeouts, pending;
	/* dumps */
	bool dump_done;
	int dump_err;
	unsigned long dumped;
	struct rec *dump;
	size_t ndump;
};

static void record(struct rec *r, const struct pfkey_msg *m)
{
	memset(r, 0, sizeof(*r));
	r->type = m->type;
	r->satype = m->satype;
	r->state = m->state;
	r->present = m->present;
	r->spi = m->spi;
	r->seq = m->seq;
	r->pid = m->pid;
	r->mode = m->mode;
	r->reqid = m->reqid;
	r->ealg = m->encrypt;
	r->aalg = m->auth;
	r->src = m->src;
	r->dst = m->dst;
	r->soft = m->soft;
	r->hard = m->hard;
	r->policy_dir = m->policy.dir;
	r->policy_id = m->policy.id;
	r->icv = m->x_icv_bits;
	if ((m->present & PFKEY_EXT_BIT(SADB_EXT_KEY_ENCRYPT)) && m->key_enc.data &&
	    m->key_enc.bits <= 512) {
		r->ebits = m->key_enc.bits;
		memcpy(r->ekey, m->key_enc.data, (r->ebits + 7u) / 8);
	}
	if ((m->present & PFKEY_EXT_BIT(SADB_EXT_KEY_AUTH)) && m->key_auth.data &&
	    m->key_auth.bits <= 512) {
		r->abits = m->key_auth.bits;
		memcpy(r->akey, m->key_auth.data, (r->abits + 7u) / 8);
	}
}

static void on_event(struct kern *k, const struct pfkey_msg *m, bool own, void *arg)
{
	struct ctx *c = arg;

	if (c->nev < MAX_EVENTS) {
		record(&c->ev[c->nev], m);
		c->ev[c->nev++].own = own;
	}
}

static void on_loss(struct kern *k, unsigned long count, void *arg)
{
	((struct ctx *)arg)->losses = count;
}

static void reply_cb(struct kern *k, int err, const struct pfkey_msg *reply, void *arg)
{
	struct ctx *c = arg;

	c->replied = true;
	c->err = err;
	c->has_reply = reply != NULL;
	if (reply)
		record(&c->reply, reply);
}

static void count_cb(struct kern *k, int err, const struct pfkey_msg *reply, void *arg)
{
	struct ctx *c = arg;

	c->pending--;
	if (!err)
		c->ok++;
	else if (err == -ETIMEDOUT)
		c->timeouts++;
	else
		c->errs++;
}

static void dump_each(struct kern *k, const struct pfkey_msg *m, void *arg)
{
	struct ctx *c = arg;

	c->dumped++;
	if (c->dump && c->ndump < 20000)
		record(&c->dump[c->ndump++], m);
}

static void dump_done(struct kern *k, int err, unsigned long n, void *arg)
{
	struct ctx *c = arg;

	c->dump_done = true;
	c->dump_err = err;
}

static uint64_t now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000 + (uint64_t)t.tv_nsec / 1000000;
}

/* Run the loop (without blocking forever) until cond or timeout_ms. */
static bool run_until(struct ctx *c, bool (*cond)(struct ctx *, const void *), const void *a,
		      unsigned timeout_ms)
{
	uint64_t end = now_ms() + timeout_ms;

	while (!cond(c, a)) {
		if (now_ms() > end)
			return false;
		uv_run(&c->loop, UV_RUN_NOWAIT);
		if (!cond(c, a))
			usleep(1000);
	}
	return true;
}

static bool replied(struct ctx *c, const void *a)
{
	return c->replied;
}

static bool none_pending(struct ctx *c, const void *a)
{
	return c->pending == 0;
}

static bool dumped(struct ctx *c, const void *a)
{
	return c->dump_done;
}

struct want {
	uint8_t type;
	uint32_t spi; /* 0: any */
	size_t from;
};

static const struct rec *find_event(struct ctx *c, const struct want *w)
{
	for (size_t i = w->from; i < c->nev; i++)
		if (c->ev[i].type == w->type && (!w->spi || c->ev[i].spi == w->spi))
			return &c->ev[i];
	return NULL;
}

static bool has_event(struct ctx *c, const void *a)
{
	return find_event(c, a) != NULL;
}

static int ctx_open_opts(struct ctx *c, int rcvbuf, unsigned timeout_ms, bool drop_own_echoes)
{
	struct kern_opts o = {
		.backend = backend,
		.rcvbuf = rcvbuf,
		.timeout_ms = timeout_ms,
		.drop_own_echoes = drop_own_echoes,
		.on_event = on_event,
		.on_loss = on_loss,
		.arg = c,
	};

	memset(c, 0, sizeof(*c));
	c->ev = calloc(MAX_EVENTS, sizeof(*c->ev));
	uv_loop_init(&c->loop);
	return kern_open(&c->loop, &o, &c->k);
}

static int ctx_open(struct ctx *c, int rcvbuf, unsigned timeout_ms)
{
	return ctx_open_opts(c, rcvbuf, timeout_ms, false);
}

static int ctx_close(struct ctx *c)
{
	int ret;

	if (c->k)
		kern_close(c->k);
	uv_run(&c->loop, UV_RUN_DEFAULT);
	ret = uv_loop_close(&c->loop);
	free(c->ev);
	free(c->dump);
	return ret ? -1 : 0;
}

/* Send m and wait for its answer: 0 or -errno. */
static int call(struct ctx *c, struct pfkey_msg *m)
{
	int ret;

	c->replied = false;
	c->has_reply = false;
	ret = kern_request(c->k, m, reply_cb, c);
	if (ret)
		return ret;
	if (!run_until(c, replied, NULL, 5000))
		return -ETIME;
	return c->err;
}

static int dump(struct ctx *c, uint8_t type)
{
	c->dump_done = false;
	c->dumped = 0;
	c->ndump = 0;
	if (!c->dump)
		c->dump = calloc(20000, sizeof(*c->dump));
	if (kern_dump(c->k, type, SADB_SATYPE_UNSPEC, dump_each, dump_done, c))
		return -EIO;
	if (!run_until(c, dumped, NULL, 20000))
		return -ETIME;
	return c->dump_err;
}

/* Run a shell command; 0 if it exited 0. */
static int sh(const char *fmt, ...)
{
	char cmd[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	return system(cmd) == 0 ? 0 : -1;
}

/* Whether `cmd`'s output contains every one of the NULL-terminated needles. */
static bool output_has(const char *cmd, ...)
{
	char buf[65536];
	size_t n;
	FILE *f = popen(cmd, "r");
	va_list ap;
	const char *s;
	bool all = true;

	if (!f)
		return false;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = 0;
	pclose(f);
	va_start(ap, cmd);
	while ((s = va_arg(ap, const char *)))
		if (!strstr(buf, s)) {
			fprintf(stderr, "# '%s' not in the output of %s:\n%s\n", s, cmd, buf);
			all = false;
		}
	va_end(ap);
	return all;
}

/*
 * Differential transcripts: a test appends what it observed (errnos, states,
 * lifetimes, SPIs) step by step; the pfkey run's transcript is kept and the
 * xfrm run's must equal it line for line.
 */
static char transcript[4096];
static struct {
	const char *test;
	char text[4096];
} kept[16];
static size_t nkept;

static void note(const char *fmt, ...)
{
	size_t len = strlen(transcript);
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(transcript + len, sizeof(transcript) - len, fmt, ap);
	va_end(ap);
	len = strlen(transcript);
	if (len + 1 < sizeof(transcript))
		strcat(transcript, "\n");
}

/* 0 if this run's transcript matches the pfkey run's (or is the pfkey run). */
static int compare_transcript(const char *test)
{
	if (backend == KERN_BACKEND_PFKEY) {
		if (nkept < sizeof(kept) / sizeof(kept[0])) {
			kept[nkept].test = test;
			snprintf(kept[nkept++].text, sizeof(kept[0].text), "%s", transcript);
		}
		return 0;
	}
	for (size_t i = 0; i < nkept; i++) {
		if (strcmp(kept[i].test, test))
			continue;
		if (!strcmp(kept[i].text, transcript)) {
			printf("# %s: transcript equal to PF_KEY's:\n%s", test, transcript);
			return 0;
		}
		snprintf(failure, sizeof(failure), "transcript differs from PF_KEY's");
		printf("# pfkey transcript:\n%s# xfrm transcript:\n%s", kept[i].text, transcript);
		return -1;
	}
	return 0; /* run alone: nothing to compare with */
}

/* --- SA construction ----------------------------------------------------- */

static uint8_t ekey[64], akey[64];

struct sa_def {
	uint32_t spi;
	const char *src, *dst;
	uint8_t mode;
	uint8_t ealg, aalg;
	uint16_t ebits, abits, icv;
	uint64_t soft_add, hard_add;
	uint32_t window;
	bool esn;
	uint32_t acq_seq;
};

static int build_sa(struct pfkey_msg *m, uint8_t type, const struct sa_def *d, bool keys)
{
	struct pfkey_addr src, dst;

	if (pfkey_addr_from_string(&src, d->src) || pfkey_addr_from_string(&dst, d->dst))
		return -EINVAL;
	pfkey_msg_init(m, type, SADB_SATYPE_ESP, 0, 0);
	pfkey_set_sa(m, d->spi, keys ? 32 : 0, keys ? d->aalg : 0, keys ? d->ealg : 0);
	pfkey_set_addr(m, SADB_EXT_ADDRESS_SRC, &src);
	pfkey_set_addr(m, SADB_EXT_ADDRESS_DST, &dst);
	m->seq = d->acq_seq;
	if (!keys)
		return 0;
	pfkey_set_key(m, SADB_EXT_KEY_ENCRYPT, ekey, d->ebits);
	if (d->aalg)
		pfkey_set_key(m, SADB_EXT_KEY_AUTH, akey, d->abits);
	pfkey_set_sa2(m, d->mode, 0);
	m->x_icv_bits = d->icv;
	m->x_replay_window = d->window;
	m->x_esn = d->esn;
	if (d->hard_add) {
		struct pfkey_lifetime soft = { .addtime = d->soft_add };
		struct pfkey_lifetime hard = { .addtime = d->hard_add };

		pfkey_set_lifetime(m, SADB_EXT_LIFETIME_SOFT, &soft);
		pfkey_set_lifetime(m, SADB_EXT_LIFETIME_HARD, &hard);
	}
	return 0;
}

static bool addr_is(const struct pfkey_addr *a, const char *text)
{
	struct pfkey_addr b;

	if (pfkey_addr_from_string(&b, text) || a->family != b.family)
		return false;
	return !memcmp(a->addr, b.addr, a->family == AF_INET ? 4 : 16);
}

/* --- tests --------------------------------------------------------------- */

/*
 * ADD, the SA as the channel reports it (PF_KEY's reply, XFRM's own ADD
 * notification), GET with the keys, duplicate ADD, DELETE, GET and DELETE of
 * what is gone: for each family and mode.
 */
static int roundtrip(const char *src, const char *dst, uint8_t mode)
{
	struct sa_def d = {
		.spi = 0x2a0101, .src = src, .dst = dst, .mode = mode,
		.ealg = SADB_X_EALG_AESCBC, .aalg = SADB_X_AALG_SHA2_512HMAC,
		.ebits = 256, .abits = 512, .soft_add = 100, .hard_add = 200,
	};
	struct want w = { .type = SADB_ADD, .spi = d.spi };
	struct ctx c;
	struct pfkey_msg m;
	const struct rec *seen;
	int ret = -1;

	CHECK(ctx_open(&c, 0, 2000) == 0, "kern_open");
	build_sa(&m, SADB_ADD, &d, true);
	CHECK(call(&c, &m) == 0, "ADD: %s", strerror(-c.err));
	/* The SA itself reaches the daemon once: as the reply or as an own event. */
	if (c.has_reply) {
		seen = &c.reply;
	} else {
		CHECK(run_until(&c, has_event, &w, 2000), "no ADD notification");
		seen = find_event(&c, &w);
		CHECK(seen->own, "our own ADD reported as another tool's");
	}
	CHECK(seen->spi == d.spi && seen->satype == SADB_SATYPE_ESP, "spi %#x", seen->spi);
	CHECK(addr_is(&seen->src, src) && addr_is(&seen->dst, dst), "addresses");

	build_sa(&m, SADB_GET, &d, false);
	CHECK(call(&c, &m) == 0, "GET: %s", strerror(-c.err));
	CHECK(c.has_reply && c.reply.type == SADB_GET, "GET without its SA");
	CHECK(c.reply.spi == d.spi && c.reply.state == SADB_SASTATE_MATURE, "state %u",
	      c.reply.state);
	CHECK(addr_is(&c.reply.src, src) && addr_is(&c.reply.dst, dst), "GET addresses");
	CHECK(c.reply.mode == mode, "mode %u != %u", c.reply.mode, mode);
	CHECK(c.reply.ealg == d.ealg && c.reply.aalg == d.aalg, "algs %u/%u", c.reply.ealg,
	      c.reply.aalg);
	CHECK(c.reply.ebits == 256 && !memcmp(c.reply.ekey, ekey, 32), "encryption key");
	CHECK(c.reply.abits == 512 && !memcmp(c.reply.akey, akey, 64), "auth key");
	CHECK(c.reply.soft.addtime == 100 && c.reply.hard.addtime == 200, "lifetimes %llu/%llu",
	      (unsigned long long)c.reply.soft.addtime, (unsigned long long)c.reply.hard.addtime);
	CHECK(c.reply.soft.bytes == 0 && c.reply.hard.allocations == 0, "unset limits not 0");

	build_sa(&m, SADB_ADD, &d, true);
	CHECK(call(&c, &m) == -EEXIST, "duplicate ADD: %s", strerror(-c.err));
	w.type = SADB_DELETE;
	w.from = c.nev;
	build_sa(&m, SADB_DELETE, &d, false);
	CHECK(call(&c, &m) == 0, "DELETE: %s", strerror(-c.err));
	if (!c.has_reply)
		CHECK(run_until(&c, has_event, &w, 2000) && find_event(&c, &w)->own,
		      "no own DELETE notification");
	build_sa(&m, SADB_GET, &d, false);
	CHECK(call(&c, &m) == -ESRCH, "GET after DELETE: %s", strerror(-c.err));
	build_sa(&m, SADB_DELETE, &d, false);
	CHECK(call(&c, &m) == -ESRCH, "DELETE of nothing: %s", strerror(-c.err));
	ret = 0;
out:
	if (ctx_close(&c))
		ret = -1;
	sh("ip xfrm state flush");
	return ret;
}

static int test_roundtrip_v4_transport(void)
{
	return roundtrip("192.0.2.1", "198.51.100.7", IPSEC_MODE_TRANSPORT);
}

static int test_roundtrip_v6_tunnel(void)
{
	return roundtrip("2001:db8::1", "2001:db8::2", IPSEC_MODE_TUNNEL);
}

static int test_roundtrip_v4_tunnel(void)
{
	return roundtrip("192.0.2.1", "198.51.100.7", IPSEC_MODE_TUNNEL);
}

static int test_roundtrip_v6_transport(void)
{
	return roundtrip("2001:db8::1", "2001:db8::2", IPSEC_MODE_TRANSPORT);
}

/* Soft then hard expiry arrive as EXPIRE events, and the SA is then gone. */
static int test_expire(void)
{
	struct sa_def d = {
		.spi = 0x2a0201, .src = "192.0.2.1", .dst = "198.51.100.7",
		.mode = IPSEC_MODE_TRANSPORT, .ealg = SADB_X_EALG_AESCBC,
		.aalg = SADB_X_AALG_SHA2_512HMAC, .ebits = 256, .abits = 512, .soft_add = 1,
		.hard_add = 2,
	};
	struct want w = { .type = SADB_EXPIRE, .spi = d.spi };
	const struct rec *e;
	struct pfkey_msg m;
	struct ctx c;
	int ret = -1;

	CHECK(ctx_open(&c, 0, 2000) == 0, "kern_open");
	build_sa(&m, SADB_ADD, &d, true);
	CHECK(call(&c, &m) == 0, "ADD: %s", strerror(-c.err));
	CHECK(run_until(&c, has_event, &w, 5000), "no soft EXPIRE");
	e = find_event(&c, &w);
	CHECK((e->present & PFKEY_EXT_BIT(SADB_EXT_LIFETIME_SOFT)) &&
		      !(e->present & PFKEY_EXT_BIT(SADB_EXT_LIFETIME_HARD)),
	      "first EXPIRE is not soft");
	CHECK(addr_is(&e->src, d.src) && addr_is(&e->dst, d.dst), "EXPIRE addresses");
	CHECK(e->state == SADB_SASTATE_DYING, "soft EXPIRE state %u", e->state);
	w.from = (size_t)(e - c.ev) + 1;
	CHECK(run_until(&c, has_event, &w, 5000), "no hard EXPIRE");
	e = find_event(&c, &w);
	CHECK(e->present & PFKEY_EXT_BIT(SADB_EXT_LIFETIME_HARD), "second EXPIRE is not hard");
	CHECK(e->hard.addtime == 2, "hard addtime %llu", (unsigned long long)e->hard.addtime);
	build_sa(&m, SADB_GET, &d, false);
	CHECK(call(&c, &m) == -ESRCH, "GET after hard expiry: %s", strerror(-c.err));
	ret = 0;
out:
	if (ctx_close(&c))
		ret = -1;
	sh("ip xfrm state flush");
	return ret;
}

static void send_udp(const char *dst, uint16_t port)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(port) };
	int fd = socket(AF_INET, SOCK_DGRAM, 0);

	inet_pton(AF_INET, dst, &sin.sin_addr);
	if (fd >= 0) {
		sendto(fd, "x", 1, MSG_DONTWAIT, (struct sockaddr *)&sin, sizeof(sin));
		close(fd);
	}
}

static void policy_msg(struct pfkey_msg *m, uint8_t type, const char *s, const char *d, uint8_t dir)
{
	struct pfkey_ipsecreq req = {
		.proto = IPPROTO_ESP, .mode = IPSEC_MODE_TRANSPORT, .level = IPSEC_LEVEL_REQUIRE,
	};
	struct pfkey_addr src, dst;

	pfkey_addr_from_string(&src, s);
	pfkey_addr_from_string(&dst, d);
	pfkey_msg_init(m, type, SADB_SATYPE_UNSPEC, 0, 0);
	pfkey_set_addr(m, SADB_EXT_ADDRESS_SRC, &src);
	pfkey_set_addr(m, SADB_EXT_ADDRESS_DST, &dst);
	pfkey_set_policy(m, IPSEC_POLICY_IPSEC, dir, 0);
	pfkey_policy_add_req(m, &req);
}

/*
 * Policies (SPDUPDATE twice, SPDDUMP, SPDDELETE, again ENOENT) and the
 * ACQUIRE a packet raises, answered by an ADD with the acquire's seq: the
 * kernel then holds the answer and no larval state.
 */
static int test_acquire_and_spd(void)
{
	struct want w = { .type = SADB_ACQUIRE };
	struct sa_def d = {
		.spi = 0x2a0301, .src = "10.1.0.1", .dst = "10.1.0.2", .mode = IPSEC_MODE_TRANSPORT,
		.ealg = SADB_X_EALG_AESCBC, .aalg = SADB_X_AALG_SHA2_512HMAC, .ebits = 256,
		.abits = 512,
	};
	const struct rec *a;
	struct pfkey_msg m;
	struct ctx c;
	size_t larval = 0, mature = 0;
	int ret = -1;

	CHECK(sh("ip link add d0 type dummy && ip link set d0 up && "
		 "ip addr add 10.1.0.1/24 dev d0") == 0, "dummy link");
	CHECK(ctx_open(&c, 0, 2000) == 0, "kern_open");
	policy_msg(&m, SADB_X_SPDUPDATE, "10.1.0.1", "10.1.0.2", IPSEC_DIR_OUTBOUND);
	CHECK(call(&c, &m) == 0, "SPDUPDATE: %s", strerror(-c.err));
	policy_msg(&m, SADB_X_SPDUPDATE, "10.1.0.1", "10.1.0.2", IPSEC_DIR_OUTBOUND);
	CHECK(call(&c, &m) == 0, "second SPDUPDATE: %s", strerror(-c.err));
	policy_msg(&m, SADB_X_SPDUPDATE, "10.1.0.2", "10.1.0.1", IPSEC_DIR_INBOUND);
	CHECK(call(&c, &m) == 0, "inbound SPDUPDATE: %s", strerror(-c.err));
	CHECK(dump(&c, SADB_X_SPDDUMP) == 0, "SPDDUMP: %s", strerror(-c.dump_err));
	CHECK(c.dumped == 2, "SPDDUMP shows %lu policies, not 2", c.dumped);
	for (size_t i = 0; i < c.ndump; i++)
		CHECK(c.dump[i].policy_id != 0 &&
			      (c.dump[i].policy_dir == IPSEC_DIR_OUTBOUND ||
			       c.dump[i].policy_dir == IPSEC_DIR_INBOUND),
		      "dumped policy id %u dir %u", c.dump[i].policy_id, c.dump[i].policy_dir);

	send_udp("10.1.0.2", 9);
	CHECK(run_until(&c, has_event, &w, 3000), "no ACQUIRE");
	a = find_event(&c, &w);
	CHECK(addr_is(&a->src, "10.1.0.1") && addr_is(&a->dst, "10.1.0.2"), "ACQUIRE addresses");
	CHECK(a->seq != 0 && a->policy_dir == IPSEC_DIR_OUTBOUND && a->policy_id != 0,
	      "ACQUIRE seq %u dir %u id %u", a->seq, a->policy_dir, a->policy_id);
	CHECK(!a->own, "ACQUIRE marked own");
	d.acq_seq = a->seq;
	build_sa(&m, SADB_ADD, &d, true);
	CHECK(call(&c, &m) == 0, "ADD answering the ACQUIRE: %s", strerror(-c.err));
	CHECK(dump(&c, SADB_DUMP) == 0, "DUMP: %s", strerror(-c.dump_err));
	for (size_t i = 0; i < c.ndump; i++) {
		larval += c.dump[i].state == SADB_SASTATE_LARVAL;
		mature += c.dump[i].state == SADB_SASTATE_MATURE && c.dump[i].spi == d.spi;
	}
	CHECK(larval == 0 && mature == 1, "after the answer: %zu larval, %zu answer SAs", larval,
	      mature);

	policy_msg(&m, SADB_X_SPDDELETE, "10.1.0.1", "10.1.0.2", IPSEC_DIR_OUTBOUND);
	CHECK(call(&c, &m) == 0, "SPDDELETE: %s", strerror(-c.err));
	policy_msg(&m, SADB_X_SPDDELETE, "10.1.0.1", "10.1.0.2", IPSEC_DIR_OUTBOUND);
	CHECK(call(&c, &m) == -ENOENT, "SPDDELETE of nothing: %s", strerror(-c.err));
	CHECK(dump(&c, SADB_X_SPDDUMP) == 0 && c.dumped == 1, "one policy left, dump shows %lu",
	      c.dumped);
	ret = 0;
out:
	if (ctx_close(&c))
		ret = -1;
	sh("ip link del d0 2>/dev/null; ip xfrm state flush; ip xfrm policy flush");
	return ret;
}

/* Another tool's ADD, DELETE and FLUSH reach the channel as events, not own. */
static int test_other_tools(void)
{
	struct want w = { .type = SADB_ADD, .spi = 0x2a0401 };
	const struct rec *e;
	struct ctx c;
	int ret = -1;

	CHECK(ctx_open(&c, 0, 2000) == 0, "kern_open");
	CHECK(sh("ip xfrm state add src 192.0.2.1 dst 198.51.100.7 proto esp spi 0x2a0401 "
		 "mode transport enc 'cbc(aes)' 0x%064x auth-trunc 'hmac(sha256)' 0x%064x 128",
		 1, 2) == 0,
	      "ip xfrm state add");
	CHECK(run_until(&c, has_event, &w, 2000), "no ADD event for ip xfrm state add");
	e = find_event(&c, &w);
	CHECK(!e->own && e->ealg == SADB_X_EALG_AESCBC && e->aalg == SADB_X_AALG_SHA2_256HMAC,
	      "own %d algs %u/%u", e->own, e->ealg, e->aalg);
	w.type = SADB_DELETE;
	w.from = c.nev;
	CHECK(sh("ip xfrm state delete src 192.0.2.1 dst 198.51.100.7 proto esp spi 0x2a0401") == 0,
	      "ip xfrm state delete");
	CHECK(run_until(&c, has_event, &w, 2000), "no DELETE event");
	CHECK(!find_event(&c, &w)->own && addr_is(&find_event(&c, &w)->dst, "198.51.100.7"),
	      "DELETE event");
	/* A flush of an empty SADB notifies nobody (xfrm_state_flush: ESRCH). */
	w.type = SADB_FLUSH;
	w.spi = 0;
	w.from = c.nev;
	CHECK(sh("ip xfrm state add src 192.0.2.1 dst 198.51.100.7 proto esp spi 0x2a0402 "
		 "mode transport enc 'cbc(aes)' 0x%064x auth-trunc 'hmac(sha256)' 0x%064x 128 && "
		 "ip xfrm state flush",
		 1, 2) == 0,
	      "add and flush");
	CHECK(run_until(&c, has_event, &w, 2000), "no FLUSH event");
	ret = 0;
out:
	if (ctx_close(&c))
		ret = -1;
	sh("ip xfrm state flush");
	return ret;
}

/*
 * drop_own_echoes: the channel hears neither its own ADD nor its own DELETE
 * (XFRM: dropped by its socket filter; PF_KEY: the reply is the broadcast),
 * while a channel without it hears both and another tool's changes still
 * reach the filtered one. Another tool's change made after ours marks the
 * point by which an echo would have come: one socket's multicasts keep
 * their order. XFRM refuses a GET on such a channel, whose answer the
 * filter would drop.
 */
static int test_own_echoes(void)
{
	struct sa_def d = {
		.spi = 0x2e0001, .src = "192.0.2.1", .dst = "198.51.100.9",
		.mode = IPSEC_MODE_TRANSPORT, .ealg = SADB_X_EALG_AESCBC,
		.aalg = SADB_X_AALG_SHA2_256HMAC, .ebits = 256, .abits = 256, .icv = 128,
	};
	struct want own = { .type = SADB_ADD, .spi = 0x2e0001 };
	struct want mark = { .type = SADB_ADD, .spi = 0x2e0002 };
	struct pfkey_msg m;
	struct ctx c, w;
	bool w_open = false;
	int ret = -1;

	CHECK(ctx_open_opts(&c, 0, 2000, true) == 0, "kern_open with drop_own_echoes");
	w_open = true;
	CHECK(ctx_open(&w, 0, 2000) == 0, "kern_open of the watcher");
	build_sa(&m, SADB_ADD, &d, true);
	CHECK(call(&c, &m) == 0, "ADD: %d", c.err);
	CHECK(sh("ip xfrm state add src 192.0.2.1 dst 198.51.100.9 proto esp spi 0x2e0002 "
		 "mode transport enc 'cbc(aes)' 0x%064x auth-trunc 'hmac(sha256)' 0x%064x 128",
		 1, 2) == 0,
	      "ip xfrm state add");
	CHECK(run_until(&c, has_event, &mark, 2000), "no ADD event for another tool's SA");
	CHECK(!find_event(&c, &own), "the channel heard its own ADD");
	CHECK(run_until(&w, has_event, &mark, 2000) && find_event(&w, &own),
	      "a channel without the filter did not hear the ADD");
	own.type = mark.type = SADB_DELETE;
	own.from = mark.from = c.nev;
	build_sa(&m, SADB_DELETE, &d, false);
	CHECK(call(&c, &m) == 0, "DELETE: %d", c.err);
	CHECK(sh("ip xfrm state delete src 192.0.2.1 dst 198.51.100.9 proto esp spi 0x2e0002") == 0,
	      "ip xfrm state delete");
	CHECK(run_until(&c, has_event, &mark, 2000), "no DELETE event for another tool's SA");
	CHECK(!find_event(&c, &own), "the channel heard its own DELETE");
	own.from = mark.from = 0;
	CHECK(run_until(&w, has_event, &mark, 2000) && find_event(&w, &own),
	      "a channel without the filter did not hear the DELETE");
	build_sa(&m, SADB_GET, &d, false);
	if (backend == KERN_BACKEND_XFRM)
		CHECK(kern_request(c.k, &m, reply_cb, &c) == -EOPNOTSUPP, "GET not refused");
	else
		CHECK(call(&c, &m) == -ESRCH, "GET of the deleted SA: %d", c.err);
	ret = 0;
out:
	if (ctx_close(&c))
		ret = -1;
	if (w_open && ctx_close(&w))
		ret = -1;
	sh("ip xfrm state flush");
	return ret;
}

static int add_many(struct ctx *c, uint32_t base, unsigned n, uint8_t type)
{
	for (unsigned i = 0; i < n; i++) {
		struct sa_def d = {
			.spi = base + i, .src = "192.0.2.1", .mode = IPSEC_MODE_TRANSPORT,
			.ealg = SADB_X_EALG_AESCBC, .aalg = SADB_X_AALG_SHA2_512HMAC,
			.ebits = 256, .abits = 512,
		};
		struct pfkey_msg m;
		char dst[64];
		int ret;

		/* One address pair per SA, as a fleet of links would have. */
		snprintf(dst, sizeof(dst), "10.%u.%u.%u", 100 + (i >> 16), (i >> 8) & 255, i & 255);
		d.dst = dst;
		build_sa(&m, type, &d, type == SADB_ADD);
		ret = kern_request(c->k, &m, count_cb, c);
		if (ret)
			return ret;
		c->pending++;
	}
	return 0;
}

/*
 * A burst as a rotation makes it: 2000 ADDs in one loop turn, all answered;
 * a dump shows each once; 2000 DELETEs empty the SADB. XFRM sends them many
 * per sendmsg, PF_KEY 64 per sendmmsg.
 */
static int test_burst_dump(void)
{
	const unsigned n = 2000;
	struct kern_stats st;
	unsigned char *seen = calloc(n, 1);
	unsigned long missing = 0, dup = 0;
	struct ctx c;
	int ret = -1;

	CHECK(ctx_open(&c, 0, 10000) == 0, "kern_open");
	CHECK(add_many(&c, 0x2b0000, n, SADB_ADD) == 0, "kern_request");
	CHECK(run_until(&c, none_pending, NULL, 60000), "%lu requests unanswered", c.pending);
	CHECK(c.ok == n, "%lu of %u ADDs succeeded (%lu errors, %lu timeouts)", c.ok, n, c.errs,
	      c.timeouts);
	kern_get_stats(c.k, &st);
	/* XFRM: many per sendmsg; PF_KEY: 64 per sendmmsg, each still its own sendmsg inside */
	CHECK(st.batches * 20 <= n, "%lu send calls for %u requests", st.batches, n);
	printf("# %s: %u ADDs in %lu send calls\n", bname, n, st.batches);
	CHECK(dump(&c, SADB_DUMP) == 0, "dump: %s", strerror(-c.dump_err));
	for (size_t i = 0; i < c.ndump; i++)
		if (c.dump[i].spi >= 0x2b0000 && c.dump[i].spi < 0x2b0000 + n)
			seen[c.dump[i].spi - 0x2b0000]++;
	for (unsigned i = 0; i < n; i++) {
		missing += seen[i] == 0;
		dup += seen[i] > 1;
	}
	CHECK(c.dumped == n && !missing && !dup, "dumped %lu, missing %lu, dup %lu", c.dumped,
	      missing, dup);
	c.ok = 0;
	CHECK(add_many(&c, 0x2b0000, n, SADB_DELETE) == 0, "kern_request");
	CHECK(run_until(&c, none_pending, NULL, 60000), "%lu requests unanswered", c.pending);
	CHECK(c.ok == n, "%lu of %u DELETEs succeeded", c.ok, n);
	CHECK(dump(&c, SADB_DUMP) == 0 && c.dumped == 0, "%lu SAs left", c.dumped);
	ret = 0;
out:
	if (ctx_close(&c))
		ret = -1;
	sh("ip xfrm state flush");
	free(seen);
	return ret;
}

/*
 * A receive buffer far too small for a burst: PF_KEY drops replies silently,
 * XFRM drops notifications and says ENOBUFS. Either way the channel reports
 * the loss, every request completes, and a dump then finds every SA.
 */
static int test_loss_resync(void)
{
	const unsigned n = 400;
	unsigned long found = 0;
	struct ctx c;
	int ret = -1;

	CHECK(ctx_open(&c, 4096, 500) == 0, "kern_open");
	CHECK(add_many(&c, 0x2c0000, n, SADB_ADD) == 0, "kern_request");
	CHECK(run_until(&c, none_pending, NULL, 30000), "%lu requests unanswered", c.pending);
	uv_run(&c.loop, UV_RUN_NOWAIT);
	CHECK(c.ok + c.timeouts == n && c.errs == 0, "ok %lu + timeouts %lu, errors %lu", c.ok,
	      c.timeouts, c.errs);
	CHECK(c.losses > 0, "loss not reported");
	CHECK(dump(&c, SADB_DUMP) == 0, "dump: %s", strerror(-c.dump_err));
	for (size_t i = 0; i < c.ndump; i++)
		found += c.dump[i].spi >= 0x2c0000 && c.dump[i].spi < 0x2c0000 + n;
	CHECK(found == n, "the resync dump found %lu of %u SAs", found, n);
	printf("# %s: loss reported %lu times, %lu of %u answers timed out, the dump found all\n",
	       bname, c.losses, c.timeouts, n);
	ret = 0;
out:
	if (ctx_close(&c))
		ret = -1;
	sh("ip xfrm state flush");
	return ret;
}

/*
 * DESIGN.md's algorithm table. XFRM installs every row as specified (ICV
 * per the RFCs, AEAD, ESN with a 128-packet window); PF_KEY refuses AEAD with
 * ENOSYS and gives HMAC-SHA-256 a 96-bit ICV, which is why conf/ refuses
 * those rows for kernel = pfkey.
 */
static int test_algorithms(void)
{
	struct ctx c;
	int ret = -1;
	uint32_t spi = 0x2a0500;

	CHECK(ctx_open(&c, 0, 5000) == 0, "kern_open");
	for (const struct conf_alg *a = conf_algs; a->name; a++) {
		struct sa_def d = {
			.spi = ++spi, .src = "192.0.2.1", .dst = "198.51.100.7",
			.mode = IPSEC_MODE_TRANSPORT, .ealg = a->sadb_ealg, .aalg = a->sadb_aalg,
			.ebits = (uint16_t)(a->enc_key_len * 8),
			.abits = (uint16_t)(a->auth_key_len * 8),
		};
		struct pfkey_msg m;
		char cmd[128], icv[64];
		int err;

		if (backend == KERN_BACKEND_XFRM) {
			d.icv = a->icv_bits;
			d.window = 128;
			d.esn = true;
		}
		build_sa(&m, SADB_ADD, &d, true);
		err = call(&c, &m);
		snprintf(cmd, sizeof(cmd), "ip -s xfrm state get src 192.0.2.1 dst 198.51.100.7 "
					   "proto esp spi %#x", d.spi);
		if (backend == KERN_BACKEND_PFKEY && a->xfrm_aead) {
			CHECK(err == -ENOSYS, "%s over PF_KEY: %s, not ENOSYS", a->name,
			      strerror(-err));
			continue;
		}
		CHECK(err == 0, "%s: %s", a->name, strerror(-err));
		if (a->xfrm_aead) {
			snprintf(icv, sizeof(icv), "%u", a->icv_bits);
			CHECK(output_has(cmd, "aead rfc4106(gcm(aes))", icv, NULL), "%s", a->name);
		} else {
			unsigned bits = backend == KERN_BACKEND_PFKEY && a->sadb_aalg == 5 ? 96 :
											    a->icv_bits;

			snprintf(icv, sizeof(icv), "(%u bits) %u", a->auth_key_len * 8, bits);
			CHECK(output_has(cmd, a->xfrm_auth, icv, NULL), "%s: ICV not %u", a->name,
			      bits);
		}
		if (backend == KERN_BACKEND_XFRM)
			CHECK(output_has(cmd, "flag esn", "replay_window 128", NULL), "%s: no ESN",
			      a->name);
		printf("# %s: %s installed, ICV %s\n", bname, a->name, icv);
	}
	ret = 0;
out:
	if (ctx_close(&c))
		ret = -1;
	sh("ip xfrm state flush");
	return ret;
}


static void note_get(struct ctx *c, struct pfkey_msg *m, const struct sa_def *d, const char *label)
{
	int err;

	build_sa(m, SADB_GET, d, false);
	err = call(c, m);
	if (err) {
		note("%s: %s", label, strerror(-err));
		return;
	}
	note("%s: spi %#x state %u soft %llu hard %llu key %02x ealg %u", label, c->reply.spi,
	     c->reply.state, (unsigned long long)c->reply.soft.addtime,
	     (unsigned long long)c->reply.hard.addtime, c->reply.ebits ? c->reply.ekey[0] : 0,
	     c->reply.ealg);
}

/*
 * conform.py's "update": UPDATE of a mature SA changes its lifetimes only
 * (xfrm_state_update), of a missing one fails; same answers from both.
 */
static int test_update(void)
{
	struct sa_def d = {
		.spi = 0x2a8001, .src = "192.0.2.1", .dst = "198.51.100.7",
		.mode = IPSEC_MODE_TRANSPORT, .ealg = SADB_X_EALG_AESCBC,
		.aalg = SADB_X_AALG_SHA2_512HMAC, .ebits = 256, .abits = 512, .soft_add = 100,
		.hard_add = 200,
	};
	struct pfkey_msg m;
	struct ctx c;
	int ret = -1;

	transcript[0] = 0;
	CHECK(ctx_open(&c, 0, 2000) == 0, "kern_open");
	build_sa(&m, SADB_ADD, &d, true);
	note("ADD: %d", call(&c, &m));
	ekey[0] ^= 0xff;
	d.soft_add = 300;
	d.hard_add = 400;
	build_sa(&m, SADB_UPDATE, &d, true);
	note("UPDATE new key and lifetimes: %d", call(&c, &m));
	ekey[0] ^= 0xff;
	note_get(&c, &m, &d, "GET");
	d.spi = 0x2a8002;
	build_sa(&m, SADB_UPDATE, &d, true);
	note("UPDATE missing: %d", call(&c, &m));
	ret = compare_transcript("update");
out:
	if (ctx_close(&c))
		ret = -1;
	sh("ip xfrm state flush");
	return ret;
}

/*
 * conform.py's "getspi": GETSPI (XFRM_MSG_ALLOCSPI) makes a larval SA with
 * an SPI from the range; ADD of that SPI collides, UPDATE matures it.
 */
static int test_getspi(void)
{
	struct sa_def d = {
		.spi = 0x7001, .src = "192.0.2.1", .dst = "198.51.100.7",
		.mode = IPSEC_MODE_TRANSPORT, .ealg = SADB_X_EALG_AESCBC,
		.aalg = SADB_X_AALG_SHA2_512HMAC, .ebits = 256, .abits = 512,
	};
	struct pfkey_addr src, dst;
	struct pfkey_msg m;
	struct ctx c;
	int ret = -1, err;

	transcript[0] = 0;
	CHECK(ctx_open(&c, 0, 2000) == 0, "kern_open");
	for (int i = 0; i < 3; i++) {
		uint32_t lo = i < 2 ? 0x7001 : 0x7003, hi = i < 2 ? 0x7001 : 0x7002;

		pfkey_addr_from_string(&src, d.src);
		pfkey_addr_from_string(&dst, d.dst);
		pfkey_msg_init(&m, SADB_GETSPI, SADB_SATYPE_ESP, 0, 0);
		pfkey_set_addr(&m, SADB_EXT_ADDRESS_SRC, &src);
		pfkey_set_addr(&m, SADB_EXT_ADDRESS_DST, &dst);
		pfkey_set_spirange(&m, lo, hi);
		err = call(&c, &m);
		note("GETSPI %#x-%#x: %d spi %#x state %u", lo, hi, err,
		     err || !c.has_reply ? 0 : c.reply.spi, err || !c.has_reply ? 9 : c.reply.state);
		if (i == 1) {
			note_get(&c, &m, &d, "GET larval");
			build_sa(&m, SADB_ADD, &d, true);
			note("ADD: %d", call(&c, &m));
			build_sa(&m, SADB_UPDATE, &d, true);
			note("UPDATE: %d", call(&c, &m));
			note_get(&c, &m, &d, "GET");
		}
	}
	ret = compare_transcript("getspi");
out:
	if (ctx_close(&c))
		ret = -1;
	sh("ip xfrm state flush");
	return ret;
}

/* An EXPIRE's kind and the packet count it fired at. */
static void note_expire(const struct rec *e)
{
	bool hard = e->present & PFKEY_EXT_BIT(SADB_EXT_LIFETIME_HARD);

	note("EXPIRE: %s allocations %u", hard ? "hard" : "soft",
	     hard ? e->hard.allocations : e->soft.allocations);
}

/*
 * conform.py's "traffic": packet-count lifetimes (PF_KEY allocations, XFRM
 * packet limits) expire an outbound SA under real traffic, soft then hard.
 */
static int test_traffic(void)
{
	struct sa_def d = {
		.spi = 0x2a6001, .src = "10.1.0.1", .dst = "10.1.0.2", .mode = IPSEC_MODE_TRANSPORT,
		.ealg = SADB_X_EALG_AESCBC, .aalg = SADB_X_AALG_SHA2_512HMAC, .ebits = 256,
		.abits = 512,
	};
	struct want w = { .type = SADB_EXPIRE, .spi = 0x2a6001 };
	struct pfkey_lifetime soft = { .allocations = 3 }, hard = { .allocations = 5 };
	const struct rec *e;
	struct pfkey_msg m;
	struct ctx c;
	int ret = -1;

	transcript[0] = 0;
	CHECK(sh("ip link add d0 type dummy && ip link set d0 up && "
		 "ip addr add 10.1.0.1/24 dev d0") == 0, "dummy link");
	CHECK(ctx_open(&c, 0, 2000) == 0, "kern_open");
	policy_msg(&m, SADB_X_SPDUPDATE, "10.1.0.1", "10.1.0.2", IPSEC_DIR_OUTBOUND);
	note("SPDUPDATE: %d", call(&c, &m));
	build_sa(&m, SADB_ADD, &d, true);
	pfkey_set_lifetime(&m, SADB_EXT_LIFETIME_SOFT, &soft);
	pfkey_set_lifetime(&m, SADB_EXT_LIFETIME_HARD, &hard);
	note("ADD packets soft 3 hard 5: %d", call(&c, &m));
	/* xfrm_state_check_expire runs before each packet counts: the 4th sees 3. */
	for (int i = 0; i < 4; i++)
		send_udp("10.1.0.2", 9);
	CHECK(run_until(&c, has_event, &w, 3000), "no EXPIRE after 4 packets");
	e = find_event(&c, &w);
	note_expire(e);
	w.from = (size_t)(e - c.ev) + 1;
	for (int i = 0; i < 3; i++)
		send_udp("10.1.0.2", 9);
	CHECK(run_until(&c, has_event, &w, 3000), "no second EXPIRE");
	e = find_event(&c, &w);
	note_expire(e);
	note_get(&c, &m, &d, "GET after hard expiry");
	ret = compare_transcript("traffic");
out:
	if (ctx_close(&c))
		ret = -1;
	sh("ip link del d0 2>/dev/null; ip xfrm state flush; ip xfrm policy flush");
	return ret;
}

/* conform.py's "flush": FLUSH empties the SADB; a flush of nothing is no error. */
static int test_flush(void)
{
	struct want w = { .type = SADB_FLUSH };
	struct pfkey_msg m;
	struct ctx c;
	int ret = -1;

	transcript[0] = 0;
	CHECK(ctx_open(&c, 0, 5000) == 0, "kern_open");
	CHECK(add_many(&c, 0x2d0000, 3, SADB_ADD) == 0, "kern_request");
	CHECK(run_until(&c, none_pending, NULL, 5000) && c.ok == 3, "3 ADDs");
	pfkey_msg_init(&m, SADB_FLUSH, SADB_SATYPE_ESP, 0, 0);
	note("FLUSH ESP: %d", call(&c, &m));
	/* PF_KEY answers with the FLUSH itself; XFRM acknowledges and notifies. */
	note("FLUSH seen: %d", c.has_reply || run_until(&c, has_event, &w, 2000));
	note("DUMP: %d, %lu SAs", dump(&c, SADB_DUMP), c.dumped);
	pfkey_msg_init(&m, SADB_FLUSH, SADB_SATYPE_UNSPEC, 0, 0);
	note("FLUSH of nothing: %d", call(&c, &m));
	ret = compare_transcript("flush");
out:
	if (ctx_close(&c))
		ret = -1;
	return ret;
}

static const struct {
	const char *name;
	int (*fn)(void);
} tests[] = {
	{ "roundtrip-v4-transport", test_roundtrip_v4_transport },
	{ "roundtrip-v4-tunnel", test_roundtrip_v4_tunnel },
	{ "roundtrip-v6-transport", test_roundtrip_v6_transport },
	{ "roundtrip-v6-tunnel", test_roundtrip_v6_tunnel },
	{ "expire-soft-hard", test_expire },
	{ "acquire-and-spd", test_acquire_and_spd },
	{ "other-tools", test_other_tools },
	{ "own-echoes", test_own_echoes },
	{ "burst-dump", test_burst_dump },
	{ "loss-resync", test_loss_resync },
	{ "algorithms", test_algorithms },
	{ "update", test_update },
	{ "getspi", test_getspi },
	{ "traffic", test_traffic },
	{ "flush", test_flush },
};

static bool selected(const char *name, int argc, char **argv, int first)
{
	if (first >= argc)
		return true;
	for (int i = first; i < argc; i++)
		if (!strcmp(argv[i], name))
			return true;
	return false;
}

int main(int argc, char **argv)
{
	static const char *const names[] = { "pfkey", "xfrm" };
	static const enum kern_backend backends[] = { KERN_BACKEND_PFKEY, KERN_BACKEND_XFRM };
	int first = 1, passed = 0, failed = 0, n = 0;
	size_t b0 = 0, b1 = 2;

	if (argc > 1 && (!strcmp(argv[1], "pfkey") || !strcmp(argv[1], "xfrm"))) {
		b0 = !strcmp(argv[1], "xfrm");
		b1 = b0 + 1;
		first = 2;
	}
	for (unsigned i = 0; i < sizeof(ekey); i++) {
		ekey[i] = (uint8_t)(0x10 + i);
		akey[i] = (uint8_t)(0xa0 + i);
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (access("/proc/net/pfkey", R_OK)) {
		printf("Bail out! /proc/net/pfkey missing: not inside the test kernel\n");
		return 1;
	}
	for (size_t b = b0; b < b1; b++) {
		backend = backends[b];
		bname = names[b];
		for (size_t i = 0; i < sizeof(tests) / sizeof(tests[0]); i++) {
			if (!selected(tests[i].name, argc, argv, first))
				continue;
			n++;
			failure[0] = 0;
			if (tests[i].fn() == 0) {
				printf("ok %d - %s %s\n", n, bname, tests[i].name);
				passed++;
			} else {
				printf("not ok %d - %s %s: %s\n", n, bname, tests[i].name, failure);
				failed++;
			}
		}
	}
	printf("1..%d\n%d passed, %d failed\n", n, passed, failed);
	return failed || !n ? 1 : 0;
}
