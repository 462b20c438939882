/* SPDX-License-Identifier: ISC */
/* Key schedule v2 in the daemon: promotions, replay states, alerts and the probe of a new generation. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "rotate/gens.h"
#include "rotate/keysched.h"
#include "svc/base/log.h"
#include "svc/daemon/daemon_int.h"
#include "svc/daemon/genbook.h"
#include "svc/daemon/sadb.h"
#include "svc/kernel/aevents.h"

/* UDP "discard": the probe's only purpose is the ESP packet that carries it. */
#define PROBE_PORT 9
/* How long stopping waits for the dump that records the receiver's state. */
#define FINAL_DUMP_MS 2000

static struct link_state *link_of(struct daemon *d, const struct conf_link *link)
{
	return link ? (struct link_state *)rot_prefix_index_get(&d->link_index, link->spi_prefix)
		    : NULL;
}

static bool on_xfrm(const struct daemon *d)
{
	return d->backend_kind == KERN_BACKEND_XFRM;
}

void gen_exhausted(struct daemon *d, struct link_state *ls, int64_t epoch)
{
	struct link_gens *g = ls->gens;
	struct mon_sa pseudo = { 0 };

	if (g->alerted_exhausted == epoch + 1)
		return;
	g->alerted_exhausted = epoch + 1;
	pseudo.sa.link = ls->link;
	pseudo.sa.epoch = epoch;
	daemon_alert(d, "generations-exhausted", &pseudo, ls->link,
		     "this host lost its outbound SA of epoch %lld more often than its generations "
		     "allow: nothing is sent on this link until the next epoch (the policy blocks "
		     "the traffic, never sends it in clear)",
		     (long long)epoch);
}

/* One UDP datagram through the link's policy, so the peer sees the new generation now. */
static void probe(struct daemon *d, struct link_state *ls)
{
	const struct conf_link *l = ls->link;
	struct sockaddr_storage src = { 0 }, dst = { 0 };
	socklen_t len;
	int fd;

	/*
	 * Only where the link's own policy covers local -> remote: transport
	 * mode with policy = yes. A tunnel's policy covers subnets this host
	 * may have no address in, and without our policy the datagram could
	 * leave in clear (nothing secret in it, but pointless).
	 */
	if (!l->policy || l->mode != CONF_MODE_TRANSPORT || d->backend)
		return;
	if (l->local.family == AF_INET) {
		struct sockaddr_in *s = (struct sockaddr_in *)&src, *t = (struct sockaddr_in *)&dst;

		s->sin_family = t->sin_family = AF_INET;
		memcpy(&s->sin_addr, l->local.bytes, 4);
		memcpy(&t->sin_addr, l->remote.bytes, 4);
		t->sin_port = htons(PROBE_PORT);
		len = sizeof(*s);
	} else {
		struct sockaddr_in6 *s = (struct sockaddr_in6 *)&src, *t = (struct sockaddr_in6 *)&dst;

		s->sin6_family = t->sin6_family = AF_INET6;
		memcpy(&s->sin6_addr, l->local.bytes, 16);
		memcpy(&t->sin6_addr, l->remote.bytes, 16);
		t->sin6_port = htons(PROBE_PORT);
		len = sizeof(*s);
	}
	fd = socket(l->local.family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&src, len) ||
	    sendto(fd, "", 1, 0, (struct sockaddr *)&dst, len) != 1)
		log_debug("link %s: probe of the new generation: %s", l->name, strerror(errno));
	if (fd >= 0)
		close(fd);
}

void gen_out_installed(struct daemon *d, struct link_state *ls, const struct rot_sa *sa)
{
	struct mon_sa pseudo = { .sa = *sa };

	if (ls->new_out != sa->gen || sa->gen == 0)
		return; /* adopted, or an epoch's first generation: nothing was lost */
	/*
	 * Generation 15: no records (gen_start warned once). A first start
	 * looks the same as a lost state directory: no alert per link.
	 */
	if (sa->gen == ROT_GEN_MAX)
		log_info("link %s: no generation records: sends with generation 15 of epoch %lld "
			 "(spi %#x), which the peer holds as a spare",
			 ls->link->name, (long long)sa->epoch, sa->spi);
	else
		daemon_alert(d, "generation-changed", &pseudo, ls->link,
			     "this host lost its outbound SA of epoch %lld (reboot, SAD flush, "
			     "deletion, or the add of the last one failed): it now sends with "
			     "generation %u (spi %#x); the keys of generation %u are never used "
			     "again",
			     (long long)sa->epoch, sa->gen, sa->spi,
			     rot_gen_lost_series(sa->gen) ? sa->gen + 1 : sa->gen - 1);
	/*
	 * A pass that finished after its epoch ended (a slow start: the
	 * kernel's algorithm probe, a loaded host) installed an SA the next
	 * pass replaces; the peer may have dropped that epoch already, and
	 * would count the probe as a packet for no SA. Its successor is
	 * generation 0 of the new epoch, which the peer holds anyway.
	 */
	if (sa->epoch != rot_epoch(daemon_now(d), ls->link->rotate_every, ls->link->phase)) {
		log_debug("link %s: no probe: epoch %lld is over", ls->link->name,
			  (long long)sa->epoch);
		return;
	}
	probe(d, ls);
}

void gen_add_options(struct daemon *d, struct link_state *ls, const struct rot_sa *sa,
		     struct sadb_add_opts *o, bool *unprotected)
{
	struct rot_gen_in in;
	int ret;

	memset(o, 0, sizeof(*o));
	*unprotected = false;
	if (sa->dir != ROT_DIR_IN || !ls->gens)
		return;
	in = genbook_in(ls->gens, sa->epoch);
	/* A spare (or any generation while the current one is unknown) reports its first packet. */
	o->aevents = in.cur == ROT_GEN_NONE || sa->gen != in.cur ? KERN_AEV_FIRST : KERN_AEV_QUIET;
	ret = genbook_replay_of(d->book, sa, &o->replay);
	if (ret < 0)
		log_err("link %s: reading the replay state of spi %#x: %s", ls->link->name, sa->spi,
			strerror(-ret));
	if (ret <= 0)
		return;
	/* It carried traffic before: re-installed after a loss. */
	if (on_xfrm(d) && o->replay.bmp_len &&
	    o->replay.window == (ls->link->replay_window ? ls->link->replay_window
							  : CONF_REPLAY_DEFAULT_XFRM))
		o->has_replay = true;
	else
		*unprotected = true;
}

void gen_unprotected(struct daemon *d, struct link_state *ls, const struct rot_sa *sa)
{
	struct mon_sa pseudo = { .sa = *sa };

	/* Once per SA instance lost: a re-add refused and retried is not a second loss. */
	if (ls->gens->alerted_unprotected == sa->epoch + 1 && ls->gens->alerted_spi == sa->spi)
		return;
	ls->gens->alerted_unprotected = sa->epoch + 1;
	ls->gens->alerted_spi = sa->spi;
	daemon_alert(d, "replay-unprotected", &pseudo, ls->link,
		     "inbound spi %#x (epoch %lld, generation %u) was lost and is re-installed "
		     "without its replay state (%s): packets the peer sent with it before could "
		     "be accepted again until the epoch ends; kernel = xfrm restores the state",
		     sa->spi, (long long)sa->epoch, sa->gen,
		     on_xfrm(d) ? "none recorded" : "PF_KEY cannot carry it");
}

/*
 * Traffic on inbound e: if its generation supersedes the link's record of
 * the epoch, it becomes the current one (synced), its spares follow, and
 * the one it replaced stays for grace. Returns whether it was promoted.
 */
static bool promote(struct daemon *d, struct mon_sa *e, const char *how)
{
	struct link_state *ls = link_of(d, e->sa.link);
	uint8_t was;
	int ret;

	if (!ls || !ls->gens || e->sa.dir != ROT_DIR_IN)
		return false;
	ret = genbook_promote(d->book, ls->gens, e->sa.epoch, e->sa.gen, daemon_now(d), &was);
	if (ret < 0) {
		log_err("link %s: cannot record generation %u of inbound epoch %lld in %s: %s",
			ls->link->name, e->sa.gen, (long long)e->sa.epoch, GENS_DB_NAME,
			strerror(-ret));
		return false;
	}
	if (ret == 0)
		return false;
	if (was == ROT_GEN_NONE)
		log_info("link %s: the peer sends with generation %u of epoch %lld (%s)",
			 ls->link->name, e->sa.gen, (long long)e->sa.epoch, how);
	else
		daemon_alert(d, "generation-changed", e, ls->link,
			     "the peer now sends with generation %u of epoch %lld (spi %#x, seen %s), "
			     "not %u: it lost its SAs or its records; generation %u is held for "
			     "%llu s more",
			     e->sa.gen, (long long)e->sa.epoch, e->sa.spi, how, was, was,
			     (unsigned long long)ls->link->grace);
	daemon_kick(d, "a spare inbound SA carried traffic");
	return true;
}

/* The promotions of this loop turn's notifications, synced at once. */
static void commit_cb(uv_timer_t *t)
{
	struct daemon *d = t->data;
	int ret = genbook_commit(d->book);

	if (ret)
		log_err("recording the generations heard in %s: %s", GENS_DB_NAME, strerror(-ret));
}

static void on_aevent(const struct kern_aevent *ev, void *arg)
{
	struct daemon *d = arg;
	struct rot_sa id = { .spi = ev->spi, .proto = ev->proto };
	struct link_state *ls;
	struct mon_sa *e;

	if (sadb_addr_from_pfkey(&ev->dst, &id.dst))
		return;
	e = mon_table_get(d->table, &id);
	if (!e || !e->managed || e->sa.dir != ROT_DIR_IN)
		return;
	if (promote(d, e, "first packet") && !uv_is_active((uv_handle_t *)&d->gen_commit))
		uv_timer_start(&d->gen_commit, commit_cb, 0, 0); /* one sync per loop turn */
	ls = link_of(d, e->sa.link);
	/* Now (or already) the generation in use: no more reports of it, one per packet. */
	if (d->aev && ls && ls->gens && !e->quiet_sent &&
	    genbook_in(ls->gens, e->sa.epoch).cur == e->sa.gen)
		e->quiet_sent = !kern_aevents_quiet(d->aev, &ev->dst, ev->spi, ev->proto);
}

static void on_aevents_lost(unsigned long count, void *arg)
{
	struct daemon *d = arg;

	log_warn("%lu XFRM replay notification%s lost: the next dump shows which spare SAs "
		 "carry traffic", count, count == 1 ? "" : "s");
	d->resync_wanted = true;
	daemon_kick(d, "replay notifications lost");
}

void gen_dump_entry(struct daemon *d, struct mon_sa *e, const struct pfkey_msg *m, int64_t now)
{
	struct link_state *ls;
	int ret = 0;

	if (!e->managed || e->sa.dir != ROT_DIR_IN || !(ls = link_of(d, e->sa.link)) || !ls->gens)
		return;
	if (m->x_has_replay) {
		if (!m->x_replay.seq || (e->replay_recorded && e->replay_seq == m->x_replay.seq))
			return;
		ret = genbook_stage_replay(d->book, ls->gens, &e->sa, &m->x_replay, now);
		e->replay_seq = m->x_replay.seq;
	} else {
		/* PF_KEY: no state, only that the SA carried traffic (its re-install is then alerted). */
		if (e->replay_recorded || (!e->bytes && !e->packets && !e->first_used_at))
			return;
		ret = genbook_stage_replay(d->book, ls->gens, &e->sa, NULL, now);
	}
	if (ret)
		log_err("link %s: recording the replay state of spi %#x: %s", ls->link->name,
			e->sa.spi, strerror(-ret));
	else
		e->replay_recorded = true;
}

static int cmp_first_use(const void *a, const void *b)
{
	const struct mon_sa *x = *(const struct mon_sa *const *)a;
	const struct mon_sa *y = *(const struct mon_sa *const *)b;

	return (x->first_used_at > y->first_used_at) - (x->first_used_at < y->first_used_at);
}

void gen_dump_done(struct daemon *d)
{
	struct mon_sa **cand = NULL, *e;
	size_t n = 0, cap = 0, cur = 0;
	int ret;

	/* Spares that carried traffic, oldest first use first: the newest wins. */
	while ((e = mon_table_next(d->table, &cur))) {
		struct link_state *ls;

		if (!e->managed || e->sa.dir != ROT_DIR_IN ||
		    (!e->bytes && !e->packets && !e->first_used_at) ||
		    !(ls = link_of(d, e->sa.link)) || !ls->gens ||
		    genbook_in(ls->gens, e->sa.epoch).cur == e->sa.gen)
			continue;
		if (n == cap) {
			size_t c = cap ? 2 * cap : 16;
			struct mon_sa **grown = realloc(cand, c * sizeof(*grown));

			if (!grown)
				break;
			cand = grown;
			cap = c;
		}
		cand[n++] = e;
	}
	if (n > 1)
		qsort(cand, n, sizeof(*cand), cmp_first_use);
	for (size_t i = 0; i < n; i++)
		promote(d, cand[i], "in a dump");
	free(cand);
	/* One sync for the dump's replay states and promotions. */
	ret = genbook_commit(d->book);
	if (ret)
		log_err("recording the receiver's state in %s: %s", GENS_DB_NAME, strerror(-ret));
}

int gen_start(struct daemon *d)
{
	uint64_t started = uv_hrtime();
	char err[512] = "";
	int ret;

	ret = genbook_open(d->cfg->daemon.state_dir, &d->book, err, sizeof(err));
	if (ret) {
		log_err("%s/%s: %s; sakeyd does not install outbound SAs it cannot record "
			"(DESIGN.md key schedule v2): check the state directory's owner (root), "
			"mode and free space",
			d->cfg->daemon.state_dir, GENS_DB_NAME, err[0] ? err : strerror(-ret));
		return ret;
	}
	log_info("%s/%s opened and read in %.3f s", d->cfg->daemon.state_dir, GENS_DB_NAME,
		 (double)(uv_hrtime() - started) / 1e9);
	uv_timer_init(&d->loop, &d->gen_commit);
	d->gen_commit.data = d;
	if (genbook_was_fresh(d->book))
		log_warn("%s/%s holds no generation records (new or lost state directory): "
			 "outbound SAs of this epoch use generation 15, inbound ones all 16 until "
			 "the peer's traffic shows which", d->cfg->daemon.state_dir, GENS_DB_NAME);
	if (!on_xfrm(d))
		return 0;
	ret = kern_aevents_open(&d->loop, on_aevent, on_aevents_lost, d, &d->aev);
	if (ret) {
		/* Not fatal: the dumps every refresh_interval show spares in use, later. */
		log_warn("XFRM replay notifications: %s; spare SAs are promoted from dumps only",
			 strerror(-ret));
		d->aev = NULL;
	}
	return 0;
}

static void final_dump_each(struct kern *k, const struct pfkey_msg *m, void *arg)
{
	struct daemon *d = arg;
	struct rot_sa id;
	struct mon_sa *e;

	if (sadb_msg_to_sa(m, &id) || !(e = mon_table_get(d->table, &id)))
		return;
	sadb_fill_entry(m, e, false); /* its counters now: what carried traffic since the last dump */
	gen_dump_entry(d, e, m, daemon_now(d));
}

static void final_dump_done(struct kern *k, int err, unsigned long n, void *arg)
{
	struct daemon *d = arg;

	if (!d->final_dump)
		return;
	d->final_dump = false;
	uv_timer_stop(&d->final_timer);
	if (err) {
		log_warn("the last dump before stopping failed (%s): replay states are those of "
			 "the dump before", strerror(-err));
		genbook_rollback(d->book);
	} else {
		gen_dump_done(d); /* and the spares that carried traffic since the last dump */
		log_info("stopping: the receiver's records of %lu SAs written", n);
	}
	daemon_stop_now(d);
}

static void final_timeout(uv_timer_t *t)
{
	struct daemon *d = t->data;

	if (!d->final_dump)
		return;
	d->final_dump = false;
	log_warn("the last dump before stopping took too long: replay states are those of the "
		 "dump before");
	genbook_rollback(d->book);
	daemon_stop_now(d);
}

bool gen_stop_later(struct daemon *d)
{
	int ret;

	/*
	 * Both backends: with XFRM the replay states, with PF_KEY which inbound
	 * SAs carried traffic (their re-install is then alerted), and with both
	 * the spares promoted since the last dump.
	 */
	if (!d->kern || !d->synced || !d->book || d->backend)
		return false;
	ret = kern_dump(d->kern, SADB_DUMP, SADB_SATYPE_UNSPEC, final_dump_each, final_dump_done,
			d);
	if (ret) {
		log_warn("cannot dump the SADB to record replay states at stop: %s",
			 strerror(-ret));
		return false;
	}
	d->final_dump = true;
	uv_timer_init(&d->loop, &d->final_timer);
	d->final_timer.data = d;
	uv_timer_start(&d->final_timer, final_timeout, FINAL_DUMP_MS, 0);
	return true;
}

void gen_close(struct daemon *d)
{
	if (d->aev)
		kern_aevents_close(d->aev);
	d->aev = NULL;
}

void gen_fini(struct daemon *d)
{
	if (d->book && genbook_pending(d->book) && genbook_commit(d->book))
		log_err("recording the last generations heard in %s failed", GENS_DB_NAME);
	genbook_close(d->book);
	d->book = NULL;
}
