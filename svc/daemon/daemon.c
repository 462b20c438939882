/* SPDX-License-Identifier: ISC */
/* The daemon's event loop: watches every SA and rotates the links' SAs by desired-state reconciliation. */
#include <assert.h>
#include <errno.h>
#include <poll.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <uv.h>

#include "monitor/rules.h"
#include "monitor/table.h"
#include "rotate/keysched.h"
#include "rotate/pass.h"
#include "rotate/plan.h"
#include "rotate/reconcile.h"
#include "svc/daemon/sinks.h"
#include "svc/ctl/ctl.h"
#include "svc/daemon/daemon.h"
#include "svc/daemon/daemon_int.h"
#include "svc/daemon/genbook.h"
#include "svc/kernel/channel.h"
#include "svc/daemon/ledger.h"
#include "svc/base/container.h"
#include "svc/base/log.h"
#include "svc/daemon/notify.h"
#include "svc/daemon/sadb.h"

/* Wall-clock jump detection: compare CLOCK_REALTIME against the loop's monotonic clock. */
#define CLOCK_CHECK_MS 1000
#define CLOCK_JUMP_MS 1500
/* Backoff of a failing link: 1 s doubling to this. */
#define RETRY_MAX_S 60
/* A generation that could not be recorded is tried again this soon. */
#define RECORD_RETRY_S 5
/* Policy priority of link policies (lower wins; below the kernel's default 0x7fffffff range). */
#define LINK_POLICY_PRIORITY 0x40000000u

static int64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * Whole seconds of the same clock as wall_ms(). Not time(NULL): glibc's
 * time() reads the coarse clock, which lags CLOCK_REALTIME by up to a tick
 * (10 ms at HZ=100); a wake-up armed with wall_ms() for 5 ms past a change
 * point then still planned the previous second and re-armed at once, a busy
 * loop until the tick (seen in UML: hundreds of wake-ups per change point).
 */
static int64_t wall_s(void)
{
	int64_t ms = wall_ms();

	return ms >= 0 ? ms / 1000 : -((999 - ms) / 1000);
}

int64_t daemon_now(struct daemon *d)
{
	uint64_t turn = uv_now(&d->loop);

	/*
	 * One time() per loop turn, not one per SA: the plan works in whole
	 * seconds, and some kernels (User-Mode Linux) trap every clock read.
	 */
	if (!d->now_s || turn != d->now_turn) {
		d->now_s = wall_s();
		d->now_turn = turn;
	}
	return d->now_s;
}

/* --- observers ----------------------------------------------------------- */

/* Tell every observer that has the hook, in the order they were added. */
#define TELL(d, hook, ...)                                                           \
	do {                                                                         \
		for (struct daemon_observer *o_ = (d)->observers; o_; o_ = o_->next) \
			if (o_->hook)                                                \
				o_->hook(o_->self, __VA_ARGS__);                     \
	} while (0)
#define TELL0(d, hook)                                                               \
	do {                                                                         \
		for (struct daemon_observer *o_ = (d)->observers; o_; o_ = o_->next) \
			if (o_->hook)                                                \
				o_->hook(o_->self);                                  \
	} while (0)

void daemon_observe(struct daemon *d, struct daemon_observer *o)
{
	struct daemon_observer **tail = &d->observers;

	while (*tail)
		tail = &(*tail)->next;
	o->next = NULL;
	*tail = o;
}

static int64_t port_now(void *daemon)
{
	return daemon_now(daemon);
}

static void port_alert(void *daemon, const char *event, const struct mon_sa *e,
		       const struct conf_link *link, const char *msg)
{
	daemon_alert(daemon, event, e, link, "%s", msg);
}

static void port_kick(void *daemon, bool resync, const char *why)
{
	struct daemon *d = daemon;

	if (resync)
		d->resync_wanted = true;
	daemon_kick(d, why);
}

static const struct config *port_config(void *daemon)
{
	return ((struct daemon *)daemon)->cfg;
}

static struct mon_table *port_table(void *daemon)
{
	return ((struct daemon *)daemon)->table;
}

static size_t port_nlinks(void *daemon)
{
	return ((struct daemon *)daemon)->nlinks;
}

static void port_link_at(void *daemon, size_t i, struct daemon_link_view *out)
{
	const struct link_state *ls = &((struct daemon *)daemon)->links[i];

	*out = (struct daemon_link_view){
		.link = ls->link,
		.epoch = ls->epoch,
		.next_change = ls->next_change,
		.failures = ls->failures,
		.retry_at = ls->retry_at,
		.exhausted = ls->gens && ls->gens->alerted_exhausted == ls->epoch + 1,
	};
}

static bool port_link_of(void *daemon, const struct mon_sa *e, size_t *i)
{
	struct daemon *d = daemon;
	const struct link_state *ls;

	if (!e->sa.link)
		return false;
	ls = rot_prefix_index_get(&d->link_index, e->sa.link->spi_prefix);
	if (!ls || ls->link != e->sa.link)
		return false;
	*i = (size_t)(ls - d->links);
	return true;
}

static bool port_added_by_us(void *daemon, const struct mon_sa *e)
{
	struct daemon *d = daemon;

	return d->kern && e->origin_pid == kern_pid(d->kern);
}

static bool port_kernel_busy(void *daemon)
{
	struct daemon *d = daemon;

	return d->kern && kern_pending(d->kern);
}

static void port_kernel_stats(void *daemon, struct kern_stats *out)
{
	struct daemon *d = daemon;

	*out = (struct kern_stats){ 0 };
	if (d->kern)
		kern_get_stats(d->kern, out);
}

void daemon_port_init(struct daemon *d, struct daemon_port *port)
{
	*port = (struct daemon_port){
		.daemon = d,
		.loop = &d->loop,
		.now = port_now,
		.alert = port_alert,
		.kick = port_kick,
		.config = port_config,
		.table = port_table,
		.nlinks = port_nlinks,
		.link_at = port_link_at,
		.link_of = port_link_of,
		.added_by_us = port_added_by_us,
		.kernel_busy = port_kernel_busy,
		.kernel_stats = port_kernel_stats,
	};
}

/* --- links --------------------------------------------------------------- */

static struct link_state *link_by_prefix(struct daemon *d, uint32_t prefix)
{
	/*
	 * Prefixes are unique per host (resolve_links). A hash index, not a
	 * binary search over the sorted links: this runs for every kernel
	 * message and every SA of a pass, and at 10,000 links the search's
	 * dozen cache misses were 4 % of the daemon's CPU in a rotation.
	 */
	return (struct link_state *)rot_prefix_index_get(&d->link_index, prefix);
}

/* The epoch of link's SA spi: the SPI keeps it mod 16, so the one nearest to now. */
static int64_t nearest_epoch(const struct conf_link *link, uint32_t spi, int64_t now)
{
	return rot_spi_epoch_near(spi, rot_epoch(now, link->rotate_every, link->phase));
}

/* Which link (if any) owns sa: management data is filled in from the link's plan. */
static void classify(struct daemon *d, struct mon_sa *e, int64_t now)
{
	struct link_state *ls;
	enum rot_dir dir;

	e->managed = false;
	e->sa.link = NULL;
	e->sa.dir = ROT_DIR_NONE;
	e->sa.epoch = 0;
	e->sa.gen = 0;
	if (e->sa.proto != IPPROTO_ESP)
		return;
	ls = link_by_prefix(d, e->sa.spi >> 8);
	if (!ls || !rot_sa_owned_by(&e->sa, ls->link, &dir))
		return;
	e->managed = true;
	e->sa.link = ls->link;
	e->sa.dir = dir;
	e->sa.epoch = nearest_epoch(ls->link, e->sa.spi, now);
	e->sa.gen = rot_spi_gen(e->sa.spi);
}

static int cmp_link_prefix(const void *a, const void *b)
{
	const struct link_state *x = a, *y = b;

	return x->link->spi_prefix < y->link->spi_prefix ? -1 :
	       x->link->spi_prefix > y->link->spi_prefix;
}

static int cmp_state_name(const void *a, const void *b)
{
	const struct link_state *x = *(const struct link_state *const *)a;
	const struct link_state *y = *(const struct link_state *const *)b;

	return strcmp(x->link->name, y->link->name);
}

/* Resolve cfg's auto phases and SPI prefixes; a collision is an error naming both links. */
static int resolve_links(struct config *cfg)
{
	size_t first = 0, second = 0;
	int ret;

	ret = rot_resolve_links(cfg->links, cfg->nlinks, &first, &second);
	if (ret == -EEXIST)
		log_err("%s: links %s and %s have the same spi_prefix %#x; set spi_prefix "
			"explicitly on one of them",
			cfg->path, cfg->links[first].name, cfg->links[second].name,
			cfg->links[first].spi_prefix);
	else if (ret)
		log_err("%s: link %s: cannot resolve phase/spi_prefix: %s", cfg->path,
			cfg->links[first].name, strerror(-ret));
	return ret;
}

int daemon_set_config(struct daemon *d, struct config *cfg)
{
	struct rot_prefix_index index;
	struct link_state *links = NULL;
	const struct link_state **old = NULL;
	int ret;

	/* Contexts of requests in flight point into d->links: daemon_reload waits for them. */
	assert(!d->pass && !d->policy_pending);
	TELL0(d, config_swap);
	/* A link's secret or its SPIs may change: every installed key is compared again. */
	{
		struct mon_sa *e;
		size_t cur = 0;

		while ((e = mon_table_next(d->table, &cur)))
			e->fp_checked = false;
	}
	ret = resolve_links(cfg);
	if (ret)
		return ret;
	if (cfg->nlinks) {
		links = calloc(cfg->nlinks, sizeof(*links));
		if (!links)
			return -ENOMEM;
	}
	/* The running links by name: a reload of 10,000 links is not 10^8 comparisons. */
	if (d->nlinks) {
		old = calloc(d->nlinks, sizeof(*old));
		if (!old) {
			free(links);
			return -ENOMEM;
		}
		for (size_t j = 0; j < d->nlinks; j++)
			old[j] = &d->links[j];
		qsort(old, d->nlinks, sizeof(*old), cmp_state_name);
	}
	for (size_t i = 0; i < cfg->nlinks; i++) {
		struct conf_link *n = &cfg->links[i];
		const struct conf_link *o;
		const struct link_state *key_state, **found, *was;
		struct link_state key = { .link = n };

		links[i].link = n;
		key_state = &key;
		found = old ? bsearch(&key_state, old, d->nlinks, sizeof(*old), cmp_state_name) : NULL;
		if (!found)
			continue;
		/* Carry over the failure state of a link that stays. */
		was = *found;
		o = was->link;
		links[i].failures = was->failures;
		links[i].retry_at = was->retry_at;
		links[i].last_epoch = was->last_epoch;
		/* An add whose reply was lost: the next resync still tells (same SPI). */
		if (o->spi_prefix == n->spi_prefix) {
			links[i].unsure_out_epoch = was->unsure_out_epoch;
			links[i].unsure_out_gen = was->unsure_out_gen;
		}
		/* Same selectors and mode: its policies stand, no SPD churn. */
		links[i].policy_installed =
			was->policy_installed && o->policy == n->policy && o->mode == n->mode &&
			rot_addr_equal(&o->local, &n->local) && rot_addr_equal(&o->remote, &n->remote) &&
			!memcmp(&o->local_subnet, &n->local_subnet, sizeof(o->local_subnet)) &&
			!memcmp(&o->remote_subnet, &n->remote_subnet, sizeof(o->remote_subnet));
	}
	free(old);
	qsort(links, cfg->nlinks, sizeof(*links), cmp_link_prefix);
	ret = rot_prefix_index_init(&index, cfg->nlinks);
	for (size_t i = 0; !ret && i < cfg->nlinks; i++)
		ret = rot_prefix_index_add(&index, links[i].link->spi_prefix, &links[i]);
	if (ret) {
		rot_prefix_index_fini(&index);
		free(links);
		return ret;
	}
	rot_prefix_index_fini(&d->link_index);
	d->link_index = index;
	free(d->links);
	d->links = links;
	d->nlinks = cfg->nlinks;
	d->cfg = cfg;
	/* Management data of every known SA points into the new config. */
	{
		size_t cur = 0;
		struct mon_sa *e;
		int64_t now = wall_s();

		while ((e = mon_table_next(d->table, &cur)))
			classify(d, e, now);
	}
	return 0;
}

/* --- alerts --------------------------------------------------------------- */

void daemon_alert(struct daemon *d, const char *event, const struct mon_sa *e,
		  const struct conf_link *link, const char *fmt, ...)
{
	char msg[MON_MSG_LEN], line[MON_ALERT_LINE_LEN];
	struct mon_alert_addrs addrs;
	struct mon_alert al;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (e && !link)
		link = e->sa.link;
	/*
	 * The sinks log the ALERT line, a burst's first ones and its summary
	 * (sinks.h: SINKS_BURST_FIRST); before they exist, it is logged here.
	 * The fields alert_command gets too, as key=value (sakeyd(8) LOG AND ALERTS).
	 */
	if (!d->sinks) {
		mon_alert_fill(&al, event, e, link, msg, wall_s(), &addrs);
		if (mon_alert_line(&al, line, sizeof(line)) >= 0)
			log_warn("%s", line);
		else
			log_err("an alert without an event name: %s", msg);
	}
	TELL(d, alert, event, e, link, msg);
}

/* --- the SA table from kernel messages ----------------------------------- */

/* While a dump runs on its own channel: the main channel just spoke of this SA. */
static void note_news(struct daemon *d, const struct rot_sa *id)
{
	bool created;

	if (d->dump_news && !mon_table_put(d->dump_news, id, &created))
		d->dump_stale = true; /* out of memory: trust nothing the dump says */
}

/* The entry for sa's identity, marked seen; NULL (logged) when out of memory. */
static struct mon_sa *table_put(struct daemon *d, const struct rot_sa *sa, bool from_dump,
				bool *created)
{
	struct mon_sa *e;

	if (!from_dump)
		note_news(d, sa);
	e = mon_table_put(d->table, sa, created);
	if (!e) {
		log_err("out of memory");
		return NULL;
	}
	e->seen = true;
	return e;
}

/* An entry just filled from the kernel's word: managed or not, and the observers told. */
static void table_filled(struct daemon *d, struct mon_sa *e, bool created, bool from_dump,
			 int64_t now)
{
	classify(d, e, now);
	if (created)
		TELL(d, sa_added, e, from_dump);
	else
		TELL(d, sa_changed, e);
}

/* The entry m describes, filled in; NULL if m names no SA, echoes a request, or no memory. */
static struct mon_sa *table_update(struct daemon *d, const struct pfkey_msg *m, bool from_dump)
{
	struct rot_sa sa;
	struct mon_sa *e;
	bool created;

	if (sadb_msg_to_sa(m, &sa))
		return NULL;
	if (m->present & PFKEY_EXT_BIT(SADB_EXT_SA) && m->state == SADB_SASTATE_DEAD &&
	    m->type == SADB_UPDATE)
		return NULL; /* an UPDATE broadcast echoes the request, not the SA (pfkey-linux.md §5.3) */
	if (!(e = table_put(d, &sa, from_dump, &created)))
		return NULL;
	sadb_fill_entry(m, e, created);
	table_filled(d, e, created, from_dump, daemon_now(d));
	return e;
}

/*
 * Our ADD of sa succeeded and no message describes the SA: the XFRM
 * channel drops the notifications of our own changes (kern_opts), and an
 * acknowledgement carries none. The entry is what that notification said.
 */
static void table_own_add(struct daemon *d, const struct rot_sa *sa)
{
	int64_t now = daemon_now(d);
	struct rot_sa id;
	struct mon_sa *e;
	bool created;

	sadb_own_sa(sa, &id);
	if (!(e = table_put(d, &id, false, &created)))
		return;
	sadb_fill_own_entry(sa, kern_pid(d->kern), now, e, created);
	table_filled(d, e, created, false, now);
}

/* e leaves the table: the observers first (the ledger holds pointers to entries until then). */
static void table_drop(struct daemon *d, struct mon_sa *e, const char *why)
{
	TELL(d, sa_gone, e, why);
	mon_table_del(d->table, &e->sa);
}

static void table_remove(struct daemon *d, const struct pfkey_msg *m, const char *why, bool hard)
{
	struct mon_verdict v;
	struct rot_sa id;
	struct mon_sa *e;

	if (sadb_msg_to_sa(m, &id))
		return;
	note_news(d, &id);
	e = mon_table_get(d->table, &id);
	if (!e)
		return;
	if (e->managed && mon_removal_verdict(e, daemon_now(d), why, hard, &v)) {
		daemon_alert(d, v.alert, e, NULL, "%s", v.message);
		daemon_kick(d, v.kick);
	}
	table_drop(d, e, why);
}

/* An ACQUIRE: traffic hit a policy with no SA. Answer it if a link matches. */
static void on_acquire(struct daemon *d, const struct pfkey_msg *m)
{
	struct conf_addr src, dst;

	if (sadb_addr_from_pfkey(&m->src, &src) || sadb_addr_from_pfkey(&m->dst, &dst))
		return;
	for (size_t i = 0; i < d->nlinks; i++) {
		const struct conf_link *l = d->links[i].link;

		if (mon_acquire_answered_by(l, &src, &dst)) {
			log_info("ACQUIRE seq %u for link %s: installing its outbound SA", m->seq,
				 l->name);
			d->links[i].acquire_seq = m->seq;
			daemon_kick(d, "acquire");
			TELL(d, acquire, m->seq, &src, &dst, l);
			return;
		}
	}
	{
		struct mon_verdict v;
		struct mon_sa pseudo;

		mon_acquire_unanswered(&src, &dst, &pseudo, &v);
		daemon_alert(d, v.alert, &pseudo, NULL, "%s", v.message);
		TELL(d, acquire, m->seq, &src, &dst, NULL);
	}
}

/*
 * e reached its soft or hard lifetime and verdict v says to alert (none if
 * it already was): marked, alerted with how appended, and a soft one dying
 * (its link re-planned if v says so). The EXPIRE heard, or a dump's
 * finding of one unheard (missed_expiry).
 */
static void expiry_alerted(struct daemon *d, struct mon_sa *e, bool hard,
			   const struct mon_verdict *v, const char *how)
{
	if (!v->alert)
		return;
	if (hard) {
		e->hard_alerted = true;
	} else {
		e->soft_alerted = true;
		e->state = MON_DYING;
	}
	daemon_alert(d, v->alert, e, NULL, "%s%s", v->message, how);
	if (hard)
		return;
	if (v->kick)
		daemon_kick(d, v->kick);
	TELL(d, sa_changed, e);
}

static void on_expire(struct daemon *d, const struct pfkey_msg *m)
{
	bool hard = (m->present & PFKEY_EXT_BIT(SADB_EXT_LIFETIME_HARD)) != 0;
	enum mon_expire_kind kind;
	struct mon_verdict v;
	struct rot_sa id;
	struct mon_sa *e;

	if (sadb_msg_to_sa(m, &id))
		return;
	e = mon_table_get(d->table, &id);
	kind = mon_expire_verdict(e, m->spi, hard, &v);
	if (kind == MON_EXPIRE_LARVAL) {
		log_info("EXPIRE of larval state spi %#x: an acquire went unanswered", m->spi);
		return;
	}
	if (kind == MON_EXPIRE_HARD) {
		expiry_alerted(d, e, true, &v, "");
		/* A hard expiry deletes the SA without a DELETE broadcast (af_key.c: key_notify_sa_expire). */
		table_remove(d, m, "hard-expired", true);
		return;
	}
	/*
	 * News newer than a running dump's: the dump's entry of this SA is
	 * skipped (note_news), so the EXPIRE is what shows it still exists, or
	 * the dump's end drops it as vanished.
	 */
	note_news(d, &id);
	e->seen = true;
	if (kind == MON_EXPIRE_DUPLICATE)
		return;
	expiry_alerted(d, e, false, &v, "");
}

static void on_flush(struct daemon *d, const struct pfkey_msg *m)
{
	size_t cur = 0;
	struct mon_sa *e;
	struct mon_verdict v;
	bool managed = false;
	uint8_t proto = pfkey_satype_proto(m->satype);

	if (d->dump_news)
		d->dump_stale = true;
	while ((e = mon_table_next(d->table, &cur))) {
		if (m->satype != SADB_SATYPE_UNSPEC && e->sa.proto != proto)
			continue;
		managed |= e->managed;
		table_drop(d, e, "flushed");
	}
	if (mon_flush_verdict(managed, &v)) {
		daemon_alert(d, v.alert, NULL, NULL, "%s", v.message);
		daemon_kick(d, v.kick);
	}
}

static void on_register_reply(struct daemon *d, const struct pfkey_msg *m);

static void on_event(struct kern *k, const struct pfkey_msg *m, bool own, void *arg)
{
	struct daemon *d = arg;

	switch (m->type) {
	case SADB_ADD:
	case SADB_UPDATE:
		if (!m->errno_val)
			table_update(d, m, false);
		break;
	case SADB_DELETE:
		if (!m->errno_val)
			table_remove(d, m, own ? "deleted" : "deleted by another tool", false);
		break;
	case SADB_EXPIRE:
		on_expire(d, m);
		break;
	case SADB_REGISTER:
		on_register_reply(d, m);
		break;
	case SADB_ACQUIRE:
		on_acquire(d, m);
		break;
	case SADB_FLUSH:
		if (!m->errno_val)
			on_flush(d, m);
		break;
	case SADB_X_SPDADD:
	case SADB_X_SPDUPDATE:
	case SADB_X_SPDDELETE:
	case SADB_X_SPDDELETE2:
	case SADB_X_SPDFLUSH:
		if (!own)
			log_debug("policy change by another tool: %s", pfkey_type_name(m->type));
		break;
	default:
		log_debug("ignored %s", pfkey_type_name(m->type));
	}
}

/* --- resync (dump) ------------------------------------------------------- */

static void resync_each(struct kern *k, const struct pfkey_msg *m, void *arg)
{
	struct daemon *d = arg;
	struct mon_sa *e;

	if (m->state == SADB_SASTATE_LARVAL)
		return;
	if (d->dump_news) {
		struct rot_sa id;

		/*
		 * Two sockets keep no order between them: an entry the kernel
		 * dumped before it deleted or changed the SA may arrive after the
		 * main channel's word of it. That word is the newer one.
		 */
		if (d->dump_stale || sadb_msg_to_sa(m, &id) || mon_table_get(d->dump_news, &id))
			return;
	}
	e = table_update(d, m, true);
	if (e && d->book)
		gen_dump_entry(d, e, m, daemon_now(d));
}

/* The dump channel hears ADD/DELETE broadcasts too: the main channel has them. */
static void dump_channel_event(struct kern *k, const struct pfkey_msg *m, bool own, void *arg)
{
}

static void close_dump_channel(struct daemon *d)
{
	struct kern *k = d->dump_kern;

	d->dump_kern = NULL;
	if (k)
		kern_close(k); /* safe from its own callbacks: freed by the loop */
	mon_table_free(d->dump_news);
	d->dump_news = NULL;
	d->dump_stale = false;
}

/* Bytes asked for the PF_KEY dump channel's receive buffer (the kernel doubles it). */
#define DUMP_RCVBUF_PFKEY (256 * 1024)

/*
 * Open the resync's channel. Without one (the kernel refuses a socket, no
 * simulator to connect to) the dump runs on the main channel, as before.
 */
static struct kern *dump_channel(struct daemon *d)
{
	struct kern_opts o = { .timeout_ms = 500, .arg = d, .on_event = dump_channel_event };
	int ret;

	ret = daemon_backend_dump_channel(d, &o);
	/*
	 * About 64 SAs per wake-up, so an EXPIRE on the main channel waits for
	 * a millisecond of dump, not a burst: 64 PF_KEY datagrams, or one XFRM
	 * datagram (a netlink dump packs a 32 KiB datagram, ~80 SAs).
	 */
	o.read_budget = o.backend == KERN_BACKEND_XFRM ? 1 : 64;
	/*
	 * PF_KEY refills a dump's socket whenever it is below a third full, up
	 * to two thirds (af_key.c: pfkey_recvmsg, pfkey_can_dump), walking the
	 * SAs under xfrm_state_lock with bottom halves off (xfrm_state.c:
	 * xfrm_state_walk). With the default 32 MiB (64 MiB once doubled) one
	 * refill walked some 40,000 SAs in one system call: the kernel's
	 * lifetime timers, and so every SADB_EXPIRE, waited for it, and came
	 * out seconds late in a burst. A small buffer keeps each refill to a
	 * few hundred SAs.
	 */
	if (o.backend == KERN_BACKEND_PFKEY)
		o.rcvbuf = DUMP_RCVBUF_PFKEY;
	if (!ret)
		ret = kern_open(&d->loop, &o, &d->dump_kern);
	if (!ret && !(d->dump_news = mon_table_new()))
		ret = -ENOMEM;
	if (ret) {
		log_warn("no separate channel for the SADB dump (%s): it shares the main one",
			 strerror(-ret));
		close_dump_channel(d);
		return d->kern;
	}
	return d->dump_kern;
}

static void rotated(struct daemon *d, struct link_state *ls, const struct rot_sa *sa,
		    const char *detail);

/*
 * An outbound add whose reply was lost: the dump shows whether it took
 * effect. If its SA is there, what the reply would have done is done now:
 * a new epoch's rotation is recorded in the history; a new generation after
 * a loss is recorded too, raises generation-changed and sends the probe
 * (gen_out_installed). If not, the next pass adds it again.
 */
static void resolve_unsure_rotations(struct daemon *d)
{
	for (size_t i = 0; i < d->nlinks; i++) {
		struct link_state *ls = &d->links[i];
		struct rot_sa id = { .proto = IPPROTO_ESP };
		struct mon_sa *e;

		if (!ls->unsure_out_epoch)
			continue;
		id.dst = ls->link->remote;
		id.spi = rot_spi(ls->link->spi_prefix, ls->unsure_out_epoch, ls->unsure_out_gen);
		e = mon_table_get(d->table, &id);
		ls->unsure_out_epoch = 0;
		if (!e || !e->managed || e->sa.link != ls->link || e->sa.dir != ROT_DIR_OUT)
			continue;
		if (e->sa.epoch > ls->last_epoch)
			rotated(d, ls, &e->sa, "reply lost; the resync found the SA installed");
		else if (e->sa.gen == ls->new_out)
			rotated(d, ls, &e->sa, "a new generation after a loss; reply lost, the resync "
					       "found the SA installed");
		else
			continue;
		gen_out_installed(d, ls, &e->sa);
	}
}

/*
 * An expiry the kernel announced while the main channel was not yet
 * registered (PF_KEY: only registered sockets hear EXPIRE), found by the
 * dump after it registered: alerted as the EXPIRE would have been.
 */
static void missed_expiry(struct daemon *d, struct mon_sa *e, bool hard)
{
	struct mon_verdict v;

	mon_expire_verdict(e, e->sa.spi, hard, &v);
	expiry_alerted(d, e, hard, &v, " (found by a dump: its EXPIRE came before sakeyd "
					 "registered for EXPIRE)");
}

/*
 * A dump while the main channel is not registered, and the first one after
 * it is: SAs whose soft lifetime ran out since the channel opened, still
 * present, and those whose hard lifetime did, now gone. Before the channel
 * opened nobody listened either, but an earlier sakeyd may have alerted on
 * those: only the unheard span counts.
 */
static void catch_up_expiries(struct daemon *d)
{
	int64_t now = daemon_now(d), at;
	size_t cur = 0;
	struct mon_sa *e;

	d->catch_up = false;
	while ((e = mon_table_next(d->table, &cur))) {
		if (e->seen && !e->soft_alerted) {
			at = mon_sa_soft_expires_at(e);
			if (at && at >= d->unheard_since && at <= now)
				missed_expiry(d, e, false);
		} else if (!e->seen && !e->hard_alerted) {
			at = mon_sa_hard_expires_at(e);
			if (at && at >= d->unheard_since && at <= now)
				missed_expiry(d, e, true);
		}
	}
}

/*
 * SAs a dump showed dying whose soft EXPIRE was never heard, though the
 * kernel had described them mature: the broadcast was lost (af_key.c:
 * pfkey_broadcast_one drops it when the socket's buffer is full). PF_KEY
 * dumps say SADB_SASTATE_DYING from x->km.dying (af_key.c:
 * __pfkey_xfrm_state2msg), which the kernel sets when a soft limit is
 * reached, just before it broadcasts the soft EXPIRE (xfrm_state.c:
 * xfrm_timer_handler, xfrm_state_check_expire). The main channel was read
 * up to the dump's end (resync_done): an EXPIRE sent before is not still
 * on its way. Alerted as the EXPIRE would have been. XFRM dumps carry no
 * such state; there a lost notification is an ENOBUFS, counted and resynced.
 */
static void dying_unheard(struct daemon *d)
{
	size_t cur = 0;
	struct mon_sa *e;
	struct mon_verdict v;

	while ((e = mon_table_next(d->table, &cur))) {
		/* Dying when first seen: it expired before we listened (catch_up_expiries). */
		if (!e->seen || e->soft_alerted || e->state != MON_DYING || !e->was_mature)
			continue;
		mon_expire_verdict(e, e->sa.spi, false, &v);
		expiry_alerted(d, e, false, &v, " (found by a dump: its EXPIRE was lost)");
	}
}

/* Loop turns a dump's end waits at most for the main channel (resync_wait_cb). */
#define RESYNC_WAIT_MAX 1000

static void resync_conclude(struct daemon *d, unsigned long n);

/* Whether the main channel holds messages not read yet. */
static bool main_unread(struct daemon *d)
{
	struct pollfd p = { .fd = d->kern ? kern_fd(d->kern) : -1, .events = POLLIN };

	return p.fd >= 0 && poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
}

static void resync_wait_cb(uv_timer_t *t)
{
	struct daemon *d = container_of(t, struct daemon, resync_wait);

	if (!d->stopping && main_unread(d) && ++d->resync_waits < RESYNC_WAIT_MAX) {
		uv_timer_start(t, resync_wait_cb, 1, 0);
		return;
	}
	resync_conclude(d, d->resync_n);
}

static void resync_done(struct kern *k, int err, unsigned long n, void *arg)
{
	struct daemon *d = arg;
	bool stale = d->dump_stale;

	d->resync_running = false;
	close_dump_channel(d);
	if (d->stopping && err == -ECANCELED)
		return; /* stopping: the channel closed under the dump */
	if (stale) {
		log_info("the SADB was flushed during the dump: dumping again");
		d->resync_wanted = true;
		daemon_kick(d, "flush during dump");
		return;
	}
	if (err) {
		log_err("SADB dump failed: %s; retrying", strerror(-err));
		d->resync_wanted = true;
		daemon_kick(d, "dump failed");
		return;
	}
	/*
	 * The kernel queued what it told the main channel before the dump's
	 * answer; the main channel reads 512 a turn, the dump's 64. After a
	 * burst (10,000 EXPIREs at once) the dump could end first, and each
	 * SA whose hard EXPIRE was still unread was taken for one that
	 * vanished unheard: no expire-hard event in the ledger, and the EXPIRE
	 * then read as a larval state's. So the dump's end waits (a loop turn
	 * at a time, RESYNC_WAIT_MAX at most) until the main channel is read.
	 */
	d->resync_running = true; /* no other dump starts meanwhile: it would reset seen */
	d->resync_n = n;
	d->resync_waits = 0;
	if (main_unread(d)) {
		uv_timer_start(&d->resync_wait, resync_wait_cb, 1, 0);
		return;
	}
	resync_conclude(d, n);
}

/* The end of a dump that succeeded: what it did not show is gone. */
static void resync_conclude(struct daemon *d, unsigned long n)
{
	size_t cur = 0;
	struct mon_sa *e, first_lost;
	unsigned long vanished = 0, lost_managed = 0;
	int64_t now = daemon_now(d);
	bool overlapped = d->dump_overlapped;

	d->resync_running = false;
	if (d->resync_waits)
		log_info("the dump's end waited %u loop turn%s for the main channel's messages",
			 d->resync_waits, d->resync_waits == 1 ? "" : "s");
	/* Unregistered (a REGISTER refused), and the first dump after it succeeded. */
	if (d->catch_up || !d->registered)
		catch_up_expiries(d);
	else
		dying_unheard(d);
	/* What the dump did not show is gone (we missed its DELETE or EXPIRE). */
	while ((e = mon_table_next(d->table, &cur))) {
		if (e->seen)
			continue;
		vanished++;
		/*
		 * A managed SA still in use gone without a word: its DELETE or the
		 * FLUSH was lost, or comes after this dump (then on_flush finds
		 * nothing of ours left to alert on). Unless a pass ran during the
		 * dump: its own deletes may be answered after the dump ended.
		 */
		if (!overlapped && mon_sa_still_planned(e, now) && !lost_managed++)
			first_lost = *e;
		table_drop(d, e, "vanished (seen missing at resync)");
	}
	if (lost_managed) {
		daemon_alert(d, "sa-removed", &first_lost, NULL,
			     "%lu managed SA%s still in use found missing by a dump (the kernel's "
			     "word of their removal was lost or is late); re-installing",
			     lost_managed, lost_managed == 1 ? "" : "s");
		daemon_kick(d, "managed SA removed");
	}
	resolve_unsure_rotations(d);
	if (d->book)
		gen_dump_done(d);
	d->synced = true;
	d->resync_ended_ns = uv_hrtime();
	d->resync_took_ns = d->resync_ended_ns - d->resync_started_ns;
	log_info("SADB synchronised: %lu SAs (%zu managed links), %lu vanished since last sync, "
		 "in %.3f s",
		 n, d->nlinks, vanished, (double)(uv_hrtime() - d->resync_started_ns) / 1e9);
	TELL(d, synced, n);
	daemon_kick(d, "resync");
}

static void start_resync(struct daemon *d)
{
	size_t cur = 0;
	struct mon_sa *e;
	int ret;

	/*
	 * A SADB_REGISTER holds the kernel's configuration lock: the dump's
	 * send would stall the loop behind it. registered() kicks again.
	 */
	if (d->resync_running || d->stopping || d->registering)
		return;
	d->resync_wanted = false;
	d->resync_started_ns = uv_hrtime();
	d->dump_overlapped = d->pass != NULL;
	while ((e = mon_table_next(d->table, &cur)))
		e->seen = false;
	TELL0(d, resync_begin);
	ret = kern_dump(dump_channel(d), SADB_DUMP, SADB_SATYPE_UNSPEC, resync_each, resync_done,
			d);
	if (ret) {
		log_err("cannot dump the SADB: %s", strerror(-ret));
		close_dump_channel(d);
		return;
	}
	d->resync_running = true;
}

static void on_loss(struct kern *k, unsigned long count, void *arg)
{
	struct daemon *d = arg;

	d->resync_wanted = true;
	daemon_kick(d, "kernel message loss");
}

/* --- policies ------------------------------------------------------------ */

static void policy_done(struct kern *k, int err, const struct pfkey_msg *reply, void *arg)
{
	struct daemon *d = kern_get_arg(k);
	struct link_state *ls = arg;

	d->policy_pending--;
	if (err)
		log_err("link %s: installing its policy failed: %s", ls->link->name, strerror(-err));
	if (!d->policy_pending)
		daemon_kick(d, "policies installed");
}

static void install_policies(struct daemon *d)
{
	for (size_t i = 0; i < d->nlinks; i++) {
		struct link_state *ls = &d->links[i];
		struct pfkey_msg pol[3];
		int n;

		if (!ls->link->policy || ls->policy_installed)
			continue;
		n = sadb_link_policies(ls->link, LINK_POLICY_PRIORITY, pol);
		for (int j = 0; j < n; j++) {
			int ret = kern_request(d->kern, &pol[j], policy_done, ls);

			if (ret)
				log_err("link %s: policy: %s", ls->link->name, strerror(-ret));
			else
				d->policy_pending++;
		}
		ls->policy_installed = true;
	}
}

/* --- reconciliation ------------------------------------------------------ */

struct op_ctx {
	struct daemon *d;
	struct pass *pass;
	struct link_state *ls;
	struct rot_sa sa; /* a copy: the pass's arrays go away with it */
	enum rot_op_kind kind;
	bool make; /* an add (or a replacement's delete) that the link's deletes wait for */
};

static struct op_ctx *ctx_alloc(struct daemon *d)
{
	return spare_get(&d->ctx_spare, sizeof(struct op_ctx));
}

static void ctx_free(struct daemon *d, struct op_ctx *c)
{
	spare_put(&d->ctx_spare, c);
}

struct pass {
	struct rot_sa *desired, *actual;
	size_t ndesired, nactual, capdesired;
	struct rot_pass order; /* what to send, makes before breaks (rotate/pass.h) */
	unsigned pending;
	bool planned; /* every add sent: a link whose adds are all answered sends its deletes */
	/* pass_send's progress: the next make and the next link whose deletes may go. */
	size_t next_make, next_link;
	bool marked;   /* the links' first_break are set */
	bool sending;  /* in pass_send: a reply handled meanwhile does not re-enter it */
	bool sent_all; /* every make and every waiting link's deletes handed to the kernel */
	int64_t now;
	uint64_t started_ns; /* uv_hrtime() when the pass was planned */
	unsigned long added, deleted, failed, rotated;
	/* rotation-failed alerts: the first FAIL_ALERTS_MAX, then one summary (link_failed). */
	unsigned long fail_alerts, fail_unalerted, fail_unalerted_links;
	char fail_first[128], fail_why[320]; /* the first unalerted failure and its reason */
	unsigned long heap_failures; /* conf_secure_heap_failures() when the pass began */
};

static void pass_free(struct pass *p)
{
	if (!p)
		return;
	rot_pass_fini(&p->order);
	free(p->desired);
	free(p->actual);
	free(p);
}

static void pass_finish(struct daemon *d);

/*
 * rotation-failed alerts raised one by one in a pass; its other failures make
 * one summary at its end (pass_finish). A cause shared by every SA (a full
 * secure heap, a kernel refusing every ADD) made one alert, one log line and
 * one alert_command per SA: 262,144 for 32,768 links.
 */
#define FAIL_ALERTS_MAX 3

/* Why err: an ENOMEM of a pass in which the secure heap refused an allocation says so. */
static const char *fail_reason(const struct pass *p, int err, char *buf, size_t size)
{
	if (err == -ENOMEM && p && conf_secure_heap_failures() != p->heap_failures)
		return conf_secure_heap_why(buf, size);
	return strerror(-err);
}

static void link_failed(struct daemon *d, struct link_state *ls, const struct rot_sa *sa, int err,
			const char *what)
{
	int64_t backoff = 1;
	struct mon_sa pseudo = { .sa = *sa };
	struct pass *p = d->pass;
	bool first_of_link = !ls->failed_this_pass;
	char why[320];
	const char *reason = fail_reason(d->pass, err, why, sizeof(why));

	/* One attempt per pass: several failed ops of one pass back off once. */
	if (!ls->failed_this_pass)
		ls->failures++;
	ls->failed_this_pass = true;
	for (unsigned i = 1; i < ls->failures && backoff < RETRY_MAX_S; i++)
		backoff *= 2;
	if (backoff > RETRY_MAX_S)
		backoff = RETRY_MAX_S;
	ls->retry_at = wall_s() + backoff;
	if (!p || p->fail_alerts < FAIL_ALERTS_MAX) {
		if (p)
			p->fail_alerts++;
		daemon_alert(d, "rotation-failed", &pseudo, ls->link,
			     "%s spi %#x failed: %s; retry in %llds", what, sa->spi, reason,
			     (long long)backoff);
	} else {
		if (!p->fail_unalerted++) {
			snprintf(p->fail_first, sizeof(p->fail_first), "%s spi %#x of link %s", what,
				 sa->spi, ls->link->name);
			snprintf(p->fail_why, sizeof(p->fail_why), "%s", reason);
		}
		p->fail_unalerted_links += first_of_link;
	}
	/* The ledger still records every failed SA (sactl history). */
	TELL(d, rotation, ls->link, sa, false, reason);
}

/* The failures of pass p that link_failed did not alert one by one: one alert. */
static void fail_summary(struct daemon *d, struct pass *p)
{
	if (!p->fail_unalerted)
		return;
	daemon_alert(d, "rotation-failed", NULL, NULL,
		     "%lu more SA request%s failed in this pass, on %lu more link%s (first: %s), "
		     "each retried with backoff and listed by sactl history: %s",
		     p->fail_unalerted, p->fail_unalerted == 1 ? "" : "s", p->fail_unalerted_links,
		     p->fail_unalerted_links == 1 ? "" : "s", p->fail_first, p->fail_why);
}

static void send_breaks(struct daemon *d, struct link_state *ls);

/*
 * The requests of a pass handed to the channel at a time, at most, give or
 * take one link's deletes. Each is a kern_req with its encoded message and an
 * op_ctx; handed over all at once, a fresh start of 10,000 links (170,000
 * adds) held 170,000 of them, about 70 MiB of the daemon's peak, for the
 * channel to send 512 at a time (its window). pass_send hands over more once
 * fewer than PASS_REFILL are outstanding: still eight windows ahead of the
 * kernel, which so never waits for the daemon.
 */
#define PASS_QUEUE_MAX 8192
#define PASS_REFILL 4096

static void pass_send(struct daemon *d, struct pass *p);

/* The link's outbound SA of a new epoch is installed: one rotation in the history. */
static void rotated(struct daemon *d, struct link_state *ls, const struct rot_sa *sa,
		    const char *detail)
{
	ls->last_epoch = sa->epoch;
	/* Per link at debug: thousands of links roll at once; sactl history has each. */
	log_debug("link %s: epoch %lld, outbound spi %#x (key %s)%s%s", ls->link->name,
		  (long long)sa->epoch, sa->spi, sa->key_fp, detail ? ": " : "", detail ? detail : "");
	TELL(d, rotation, ls->link, sa, true, detail);
}

static void op_done(struct kern *k, int err, const struct pfkey_msg *reply, void *arg)
{
	struct op_ctx *c = arg;
	struct daemon *d = c->d;
	enum rot_op_kind step = c->kind == ROT_OP_DELETE ? ROT_OP_DELETE : ROT_OP_ADD;

	if (err == -ECANCELED) {
		/*
		 * The channel closed under the request (we are stopping): its
		 * outcome is unknown, not refused. No failure, no alert; the next
		 * start's dump tells what the kernel holds.
		 */
		log_debug("link %s: %s spi %#x: cancelled by the stop", c->ls->link->name,
			  step == ROT_OP_ADD ? "adding" : "deleting", c->sa.spi);
		d->cancelled++;
		ctx_free(d, c);
		return;
	}
	if (err == -ETIMEDOUT) {
		/*
		 * The reply was lost (the kernel drops messages past a full
		 * receive queue), not refused: the request may well have taken
		 * effect. Not a failure (no backoff, no alert, no failed rotation
		 * in the ledger): the channel's loss report resyncs, and the next
		 * pass does whatever is still missing. Hold this link's deletes
		 * until then (make before break).
		 */
		log_warn("link %s: %s spi %#x: no reply (lost); the resync will tell",
			 c->ls->link->name, step == ROT_OP_ADD ? "adding" : "deleting", c->sa.spi);
		c->ls->unsure_this_pass = true;
		if (step == ROT_OP_ADD && c->sa.dir == ROT_DIR_OUT) {
			c->ls->unsure_out_epoch = c->sa.epoch;
			c->ls->unsure_out_gen = c->sa.gen;
		}
		d->resync_wanted = true;
		d->kick_pending = true;
	} else if (!rot_op_result_ok(step, err)) {
		d->pass->failed++;
		link_failed(d, c->ls, &c->sa, err, step == ROT_OP_ADD ? "adding" : "deleting");
	} else if (err) {
		/*
		 * EEXIST / ESRCH: the kernel already was as desired, so our table
		 * was stale (a lost broadcast): resync.
		 */
		d->resync_wanted = true;
		if (step == ROT_OP_DELETE) {
			struct mon_sa *e = mon_table_get(d->table, &c->sa);

			note_news(d, &c->sa);
			if (e)
				table_drop(d, e, "already gone (deleted outside sakeyd)");
		}
	} else if (step == ROT_OP_ADD) {
		d->pass->added++;
		/*
		 * PF_KEY's reply is the ADD broadcast (af_key.c: key_notify_sa): it
		 * is the SA. XFRM acknowledges without one.
		 */
		if (reply)
			table_update(d, reply, false);
		else
			table_own_add(d, &c->sa);
		if (c->sa.dir == ROT_DIR_OUT && c->sa.epoch != c->ls->last_epoch) {
			d->pass->rotated++;
			rotated(d, c->ls, &c->sa, NULL);
		} else if (c->sa.dir == ROT_DIR_OUT && c->sa.gen == c->ls->new_out) {
			rotated(d, c->ls, &c->sa, "a new generation after a loss");
		}
		if (c->sa.dir == ROT_DIR_OUT)
			gen_out_installed(d, c->ls, &c->sa);
	} else {
		struct mon_sa *e = mon_table_get(d->table, &c->sa);

		d->pass->deleted++;
		note_news(d, &c->sa);
		if (e)
			table_drop(d, e, "deleted (rotation)");
	}
	/* The link's last add answered: its deletes go now, not after every other link's. */
	if (c->make && --c->ls->makes_pending == 0 && d->pass->planned)
		send_breaks(d, c->ls);
	ctx_free(d, c);
	/* pass_send leaves requests outstanding until it has sent all. */
	if (--d->pass->pending < PASS_REFILL)
		pass_send(d, d->pass);
	if (d->pass->pending == 0 && !d->pass->sending)
		pass_finish(d);
}

/* Keep sa's fingerprint in the cache of ls, by (epoch, dir, gen). */
static void fp_remember(struct link_state *ls, const struct rot_sa *sa)
{
	struct planned_fp *slot;

	slot = &ls->fp_cache[ls->fp_next++ % (sizeof(ls->fp_cache) / sizeof(ls->fp_cache[0]))];
	slot->epoch = sa->epoch;
	slot->dir = sa->dir;
	slot->gen = sa->gen;
	memcpy(slot->fp, sa->key_fp, sizeof(slot->fp));
}

static int send_op(struct daemon *d, struct link_state *ls, enum rot_op_kind kind,
		   const struct rot_sa *sa, uint32_t seq, bool make)
{
	struct op_ctx *c = ctx_alloc(d);
	int ret;

	if (!c)
		return -ENOMEM;
	c->d = d;
	c->pass = d->pass;
	c->ls = ls;
	c->sa = *sa;
	c->kind = kind;
	c->make = make;
	if (kind == ROT_OP_DELETE) {
		ret = sadb_request_delete(d->kern, sa, op_done, c);
	} else {
		/* A fingerprint the plan left to the add (planned_fingerprint): derived once. */
		bool fp_wanted = !c->sa.key_fp[0] && ls->link->secret;

		struct sadb_add_opts opts;
		bool unprotected;

		gen_add_options(d, ls, &c->sa, &opts, &unprotected);
		ret = sadb_request_add(d->kern, &c->sa, ls->link->secret, seq, &opts,
				       fp_wanted ? c->sa.key_fp : NULL, op_done, c);
		OPENSSL_cleanse(&opts, sizeof(opts));
		if (!ret && unprotected)
			gen_unprotected(d, ls, &c->sa);
		if (!ret && fp_wanted)
			fp_remember(ls, &c->sa);
	}
	/* Per SA at debug: a pass's totals are logged at info by pass_finish. */
	log_debug("link %s: %s %s spi %#x epoch %lld%s%s", ls->link->name,
		 kind == ROT_OP_DELETE ? "delete" : kind == ROT_OP_REPLACE ? "re-add" : "add",
		 sa->dir == ROT_DIR_OUT ? "out" : sa->dir == ROT_DIR_IN ? "in" : "?", sa->spi,
		 (long long)sa->epoch, c->sa.key_fp[0] ? " key " : "", c->sa.key_fp);
	if (ret) {
		ctx_free(d, c);
		link_failed(d, ls, sa, ret, kind == ROT_OP_DELETE ? "deleting" : "adding");
		return ret;
	}
	d->pass->pending++;
	ls->makes_pending += make;
	return 0;
}

static struct link_state *state_of(struct daemon *d, const struct conf_link *link)
{
	return link ? link_by_prefix(d, link->spi_prefix) : NULL;
}

/*
 * A link's deletes, once all its adds of the pass succeeded (make before
 * break); none if one failed or went unanswered (the resync will tell, and
 * the pass after it deletes). Per link, not per pass: a reply lost to one
 * link held every link's old SAs for the reply timeout (tests/reliability/loss.py).
 */
static void send_breaks(struct daemon *d, struct link_state *ls)
{
	struct pass *p = d->pass;
	const struct rot_pass_link *l;

	if (!ls->first_break)
		return;
	l = &p->order.link[ls->first_break - 1];
	ls->first_break = 0;
	if (ls->failed_this_pass || ls->unsure_this_pass)
		return;
	for (size_t i = 0; i < l->breaks; i++)
		send_op(d, ls, ROT_OP_DELETE, p->order.brk[l->first_break + i].sa, 0, false);
}

static void arm_wake(struct daemon *d);

/* --- SADB_REGISTER (PF_KEY) ------------------------------------------------ */

static void registered(struct kern *k, int err, double seconds, void *arg)
{
	struct daemon *d = arg;

	d->registering = false;
	/* af_key answers a refused REGISTER with an error message, not a failed send. */
	if (!err && d->register_refused)
		err = -d->register_refused;
	d->register_refused = 0;
	if (err) {
		log_err("SADB_REGISTER: %s after %.3f s: EXPIRE and ACQUIRE go unheard until it "
			"succeeds; retrying every refresh_interval", strerror(-err), seconds);
	} else {
		/* on_register_reply says so when the kernel's answer is read. */
		d->registered = true;
		d->catch_up = true;
	}
	d->resync_wanted = true;
	daemon_kick(d, "registered");
}

/*
 * The kernel's answer to our REGISTER: SUPPORTED, or an error. Read before
 * or after the worker's send returns (af_key queues it inside the send).
 */
static void on_register_reply(struct daemon *d, const struct pfkey_msg *m)
{
	if (m->pid != kern_pid(d->kern))
		return;
	if (!m->errno_val) {
		log_info("registered for EXPIRE and ACQUIRE in %.3f s (the kernel probes its "
			 "algorithms)", (double)(uv_hrtime() - d->register_started_ns) / 1e9);
		return;
	}
	if (d->registering) {
		d->register_refused = m->errno_val;
		return;
	}
	if (d->registered) {
		d->registered = false;
		log_err("SADB_REGISTER refused: %s: EXPIRE and ACQUIRE go unheard until it "
			"succeeds; retrying every refresh_interval", strerror(m->errno_val));
	}
}

/*
 * At start, before the first dump: the kernel probes its algorithms inside
 * the REGISTER (seconds on a fresh boot) holding the configuration lock that
 * every PF_KEY and XFRM request takes, so the dump and the first pass could
 * not go sooner; the loop serves the control socket meanwhile. A REGISTER
 * that failed is tried again at each refresh (refresh_cb); what expired
 * while unregistered, the dump after it catches up (catch_up_expiries).
 */
static void start_register(struct daemon *d)
{
	int ret = kern_register(d->kern, registered);

	if (ret == -EOPNOTSUPP) {
		d->registered = true;
		return;
	}
	if (ret) {
		log_err("SADB_REGISTER: %s; retrying every refresh_interval", strerror(-ret));
		return;
	}
	d->registering = true;
	d->register_started_ns = uv_hrtime();
	log_info("registering for EXPIRE and ACQUIRE (SADB_REGISTER); kernel requests wait "
		 "for the kernel's algorithm probe");
}

static void pass_finish(struct daemon *d)
{
	struct pass *p = d->pass;

	fail_summary(d, p);
	for (size_t i = 0; i < d->nlinks; i++) {
		struct link_state *ls = &d->links[i];

		/* A pass that left the link to its backoff says nothing of it. */
		if (ls->tried_this_pass && !ls->failed_this_pass && ls->failures) {
			log_info("link %s: recovered after %u failure(s)", ls->link->name,
				 ls->failures);
			ls->failures = 0;
			ls->retry_at = 0;
		}
		ls->failed_this_pass = false;
		ls->unsure_this_pass = false;
		ls->tried_this_pass = false;
	}
	/*
	 * One line per pass that changed anything: what a change point cost,
	 * from planning to the last reply (the burst's end for an operator).
	 */
	if (p->added || p->deleted || p->failed)
		log_info("reconcile pass: %lu added, %lu deleted, %lu failed in %.3f s; %lu link%s "
			 "to a new epoch; %zu SAs in the kernel",
			 p->added, p->deleted, p->failed, (double)(uv_hrtime() - p->started_ns) / 1e9,
			 p->rotated, p->rotated == 1 ? "" : "s", mon_table_count(d->table));
	if (d->kern && (p->added || p->deleted || p->failed)) {
		struct kern_stats ks;

		/* pass_send's bound, seen from the channel (tests/sim/pass_window.py). */
		kern_get_stats(d->kern, &ks);
		log_debug("kernel channel since start: %lu requests queued at most (a pass hands "
			  "over %d at a time)", ks.queued_max, PASS_QUEUE_MAX);
	}
	if (d->book) {
		struct genbook_stats gs = genbook_stats(d->book);

		log_debug("%s since start: %llu replay lookups, %llu read from the file, %llu "
			  "checks of the file", GENS_DB_NAME, (unsigned long long)gs.replay_lookups,
			  (unsigned long long)gs.db_reads, (unsigned long long)gs.file_checks);
	}
	pass_free(p);
	d->pass = NULL;
	if (!d->ready_sent) {
		/* Synchronised, policies in place, the first reconciliation applied. */
		d->ready_sent = true;
		notify_send("READY=1\nSTATUS=rotating");
		log_info("ready: %zu SAs in the kernel", mon_table_count(d->table));
	}
	TELL0(d, pass_done);
	if (d->deferred_cfg)
		daemon_kick(d, "deferred reload");
	/* A resync waits for the registration, which kicks when it is done (registered). */
	else if (d->kick_pending || (d->resync_wanted && !d->registering))
		daemon_kick(d, NULL);
	else
		arm_wake(d);
}

/*
 * Fill in the key fingerprint of sa, planned for ls, from the link's cache,
 * else derived. Only reconcile's comparison with an installed SA of the
 * same identity needs it before the add: if table holds none, the add
 * derives the keys anyway and fingerprints them (send_op), so a rotation
 * derives each new SA's keys once, not twice (HKDF was 7 % of the CPU).
 */
static int planned_fingerprint(struct link_state *ls, struct rot_sa *sa, struct mon_table *table)
{
	struct planned_fp *slot;
	struct mon_sa *e;
	int ret;

	for (size_t i = 0; i < sizeof(ls->fp_cache) / sizeof(ls->fp_cache[0]); i++) {
		slot = &ls->fp_cache[i];
		if (slot->fp[0] && slot->epoch == sa->epoch && slot->dir == sa->dir &&
		    slot->gen == sa->gen) {
			memcpy(sa->key_fp, slot->fp, sizeof(sa->key_fp));
			return 0;
		}
	}
	if (!ls->link->secret || !(e = mon_table_get(table, sa)))
		return 0;
	/*
	 * The installed SA's key was found to be this one before, and the
	 * kernel has reported no other since: nothing to compare (the cache
	 * above holds 12, and a link's first start has 17 SAs: without this,
	 * every pass after every refresh derived all their keys again).
	 */
	if (e->fp_checked)
		return 0;
	ret = rot_sa_fingerprint(ls->link->secret, sa);
	if (ret)
		return ret;
	fp_remember(ls, sa);
	e->fp_checked = e->sa.key_fp[0] && strcmp(e->sa.key_fp, sa->key_fp) == 0;
	return 0;
}

static void unrecorded(struct daemon *d, struct link_state *ls, const struct rot_sa *sa, int err,
		       int64_t now);

/*
 * The link's desired SAs now, with their generations (DESIGN.md "Key
 * schedule v2"), appended to p->desired. The plan is made without the
 * secret and the fingerprints come from the link's cache: a pass over
 * 10,000 links would otherwise derive every SA's keys again (HKDF) each time.
 * A new outbound generation is staged in the book, to be synced before the
 * pass sends anything (pass_gather).
 */
static int plan_link(struct daemon *d, struct link_state *ls, int64_t now, struct pass *p)
{
	struct conf_link bare = *ls->link;
	struct rot_gen_view v;
	struct rot_plan plan;
	int64_t next;
	bool fresh_out;
	int stage_err = 0;
	uint8_t unrecorded_out = ROT_GEN_NONE;
	size_t n;
	int ret;

	bare.secret = NULL;
	ret = rot_plan(&bare, now, &plan);
	if (ret)
		return ret;
	for (size_t i = 0; i < plan.n; i++)
		plan.sa[i].link = ls->link;
	genbook_view(ls->gens, plan.epoch, ls->held_out, &v, &fresh_out);
	ls->new_out = ROT_GEN_NONE;
	if (fresh_out) {
		stage_err = genbook_stage_out(d->book, ls->gens, plan.epoch, v.out, now);
		unrecorded_out = v.out;
		if (stage_err)
			v.out = ROT_GEN_NONE;
		else
			ls->new_out = v.out;
	} else if (v.out == ROT_GEN_NONE) {
		gen_exhausted(d, ls, plan.epoch);
	}
	if (p->ndesired + ROT_PLAN_GENS_MAX > p->capdesired) {
		size_t cap = 2 * (p->ndesired + ROT_PLAN_GENS_MAX);
		struct rot_sa *grown = realloc(p->desired, cap * sizeof(*grown));

		if (!grown)
			return -ENOMEM;
		p->desired = grown;
		p->capdesired = cap;
	}
	next = plan.next_change;
	n = rot_plan_gens(&plan, &v, &p->desired[p->ndesired], &next);
	for (size_t i = 0; i < n; i++) {
		ret = planned_fingerprint(ls, &p->desired[p->ndesired + i], d->table);
		if (ret)
			return ret;
	}
	p->ndesired += n;
	ls->next_change = next;
	ls->epoch = plan.epoch;
	if (stage_err) {
		struct rot_sa out = plan.sa[plan.n - 1]; /* the plan's outbound SA, generation 0 */

		out.gen = unrecorded_out;
		out.spi = rot_spi(ls->link->spi_prefix, out.epoch, out.gen);
		unrecorded(d, ls, &out, stage_err, now);
	}
	return 0;
}

static bool link_due(struct link_state *ls, int64_t now)
{
	return !ls->retry_at || now >= ls->retry_at;
}

static void apply_deferred_reload(struct daemon *d);

/*
 * Whether a pass may start now. A pending reload, a resync, a running pass
 * or policy requests come first; each kicks again when it is done.
 */
static bool pass_may_start(struct daemon *d)
{
	if (d->deferred_cfg && !d->pass && !d->policy_pending && !d->stopping) {
		apply_deferred_reload(d); /* kicks again: the next turn plans with the new config */
		return false;
	}
	/*
	 * A dump waits for the running pass: a change point's burst is not
	 * slowed by reading every SA, and the dump does not see the pass half
	 * applied. pass_finish kicks again.
	 */
	if (d->resync_wanted && !d->pass)
		start_resync(d);
	if (!d->synced || d->resync_running || d->pass || d->policy_pending || d->stopping) {
		/*
		 * Still owed a pass: the running one was planned before this
		 * request. pass_finish kicks again when kick_pending is set
		 * (resync_done and policy_done always do).
		 */
		if (d->pass)
			d->kick_pending = true;
		return false;
	}
	if (!d->policies_done) {
		d->policies_done = true;
		install_policies(d);
		if (d->policy_pending)
			return false;
	}
	return true;
}

/*
 * A new outbound generation sa->gen could not be recorded (staged or
 * synced): its add is not sent (never installed unrecorded), an alert is
 * raised once per epoch, and recording is tried again within RECORD_RETRY_S.
 */
static void unrecorded(struct daemon *d, struct link_state *ls, const struct rot_sa *sa, int err,
		       int64_t now)
{
	struct mon_sa pseudo = { .sa = *sa };

	if (ls->unrecorded_alerted != sa->epoch + 1) {
		ls->unrecorded_alerted = sa->epoch + 1;
		daemon_alert(d, "rotation-failed", &pseudo, ls->link,
			     "recording generation %u of epoch %lld in %s failed (%s): no outbound "
			     "SA until it can be recorded",
			     sa->gen, (long long)sa->epoch, GENS_DB_NAME, strerror(-err));
	}
	if (ls->next_change > now + RECORD_RETRY_S)
		ls->next_change = now + RECORD_RETRY_S;
}

/*
 * The pass's new outbound generations could not be synced: their adds are
 * left out (unrecorded); everything else of their links goes on (inbound
 * SAs, the deletes of what is no longer planned: an outbound SA past its
 * epoch goes, traffic is blocked, never sent with old keys).
 */
static void drop_unrecorded(struct daemon *d, struct pass *p, int err, int64_t now)
{
	size_t kept = 0;

	for (size_t i = 0; i < p->ndesired; i++) {
		struct rot_sa *sa = &p->desired[i];
		struct link_state *ls = state_of(d, sa->link);

		if (ls && sa->dir == ROT_DIR_OUT && ls->new_out == sa->gen) {
			unrecorded(d, ls, sa, err, now);
			continue;
		}
		p->desired[kept++] = *sa;
	}
	p->ndesired = kept;
	for (size_t i = 0; i < d->nlinks; i++)
		d->links[i].new_out = ROT_GEN_NONE;
}

/*
 * The pass's input at now: every SA of the table, and the planned SAs of the
 * links due, whose outbound generation depends on what the kernel holds.
 */
static int pass_gather(struct daemon *d, struct pass *p, int64_t now)
{
	size_t cur = 0;
	struct mon_sa *e;
	int ret;

	/*
	 * Not zeroed: only the first ndesired and nactual are written and read,
	 * and the heap's memory is reused from pass to pass (see harden()).
	 */
	if (!d->book)
		return -EIO; /* daemon_start opens it: no outbound SA without its records */
	/* Once per pass: the inbound adds' replay lookups (gen_add_options) do not stat it. */
	ret = genbook_check_file(d->book);
	if (ret)
		log_err("%s/%s cannot be opened again: %s", d->cfg->daemon.state_dir, GENS_DB_NAME,
			strerror(-ret));
	p->capdesired = d->nlinks * 4 + ROT_PLAN_GENS_MAX;
	p->desired = malloc(p->capdesired * sizeof(*p->desired));
	p->actual = malloc((mon_table_count(d->table) + 1) * sizeof(*p->actual));
	if (!p->desired || !p->actual)
		return -ENOMEM;
	for (size_t i = 0; i < d->nlinks; i++) {
		struct link_state *ls = &d->links[i];

		ls->epoch_now = rot_epoch(now, ls->link->rotate_every, ls->link->phase);
		ls->held_out = ROT_GEN_NONE;
		ls->new_out = ROT_GEN_NONE;
		if (!ls->gens && !(ls->gens = genbook_link(d->book, ls->link, ls->epoch_now)))
			return -ENOMEM;
	}
	while ((e = mon_table_next(d->table, &cur))) {
		/*
		 * Owner and direction depend on the SA's identity and addresses
		 * (set when its entry is made) and on the links: table_filled
		 * and daemon_set_config classify. Only the epoch nearest to now
		 * moves with time, so only it is refreshed here.
		 */
		if (e->managed) {
			struct link_state *ls = state_of(d, e->sa.link);

			e->sa.epoch = nearest_epoch(e->sa.link, e->sa.spi, now);
			/* An outbound SA of the epoch the kernel holds is adopted, the newest. */
			if (ls && e->sa.dir == ROT_DIR_OUT && e->sa.epoch == ls->epoch_now &&
			    e->state != MON_DYING &&
			    (ls->held_out == ROT_GEN_NONE || e->added_at >= ls->held_out_at)) {
				ls->held_out = e->sa.gen;
				ls->held_out_at = e->added_at;
			}
		}
		p->actual[p->nactual++] = e->sa;
	}
	for (size_t i = 0; i < d->nlinks; i++) {
		struct link_state *ls = &d->links[i];

		ls->makes_pending = 0;
		ls->first_break = 0;
		if (!link_due(ls, now))
			continue;
		ls->tried_this_pass = true;
		ret = plan_link(d, ls, now, p);
		if (ret == -ENOMEM)
			return ret;
		if (ret)
			log_err("link %s: cannot plan: %s", ls->link->name, strerror(-ret));
	}
	/* DESIGN.md: a new outbound generation is on disk before it is installed. */
	ret = genbook_commit(d->book);
	if (ret)
		drop_unrecorded(d, p, ret, now);
	return 0;
}

static bool pass_full(const struct pass *p)
{
	return p->pending >= PASS_QUEUE_MAX;
}

/*
 * Send the ordered pass: every link's makes, the conflicts' alerts, the
 * breaks not waiting; PASS_QUEUE_MAX outstanding at most, then again from
 * where it stopped (op_done) until all are sent. The order is the one a
 * single call had: every make before any break that waits for no make.
 */
static void pass_send(struct daemon *d, struct pass *p)
{
	if (p->sent_all || p->sending)
		return;
	p->sending = true;
	if (!p->marked) {
		p->marked = true;
		for (size_t i = 0; i < p->order.nlink; i++) {
			struct link_state *ls = state_of(d, p->order.link[i].link);

			/* Its deletes wait for its adds: send_breaks finds them here. */
			if (ls && p->order.link[i].breaks)
				ls->first_break = i + 1;
		}
	}
	for (; p->next_make < p->order.nmake && !pass_full(p); p->next_make++) {
		const struct rot_step *make = &p->order.make[p->next_make];
		struct link_state *ls = state_of(d, p->order.link[make->link].link);
		uint32_t seq = 0;

		if (!ls)
			continue;
		if (make->kind == ROT_OP_ADD && make->sa->dir == ROT_DIR_OUT && ls->acquire_seq) {
			/* Answer the ACQUIRE: its seq lets the kernel replace the larval state. */
			seq = ls->acquire_seq;
			ls->acquire_seq = 0;
		}
		send_op(d, ls, make->kind, make->sa, seq, true);
	}
	if (p->next_make < p->order.nmake) {
		p->sending = false;
		return;
	}
	if (!p->planned) {
		for (size_t i = 0; i < p->order.nconflict; i++) {
			const struct rot_op *op = &p->order.conflict[i];
			struct link_state *ls = state_of(d, op->sa->link);

			if (ls && !ls->conflict_alerted) {
				struct mon_sa pseudo = { .sa = *op->actual };

				ls->conflict_alerted = true;
				daemon_alert(d, "rotation-failed", &pseudo, ls->link,
					     "the kernel holds spi %#x with other keys or attributes "
					     "than planned (changed secret?); it stays until its "
					     "planned removal",
					     op->sa->spi);
			}
		}
		p->planned = true;
		for (size_t i = 0; i < d->nlinks; i++)
			d->links[i].acquire_seq = 0;
	}
	for (; p->next_link < d->nlinks && !pass_full(p); p->next_link++) {
		struct link_state *ls = &d->links[p->next_link];

		if (!ls->makes_pending && ls->first_break)
			send_breaks(d, ls);
	}
	p->sent_all = p->next_link == d->nlinks;
	p->sending = false;
}

/* One pass at the clock's now (read once): plan, order (rotate/pass), send. */
static void reconcile(struct daemon *d)
{
	struct pass *p;
	int64_t now = wall_s();
	int ret;

	d->kick_pending = false;
	if (!pass_may_start(d))
		return;
	p = calloc(1, sizeof(*p));
	if (!p) {
		ret = -ENOMEM;
		goto fail;
	}
	p->now = now;
	p->started_ns = uv_hrtime();
	p->heap_failures = conf_secure_heap_failures();
	rot_pass_init(&p->order);
	ret = pass_gather(d, p, now);
	if (!ret)
		ret = rot_pass_order(p->desired, p->ndesired, p->actual, p->nactual, &p->order);
	if (ret)
		goto fail;
	d->pass = p;
	if (d->resync_running)
		d->dump_overlapped = true;
	pass_send(d, p);
	if (p->pending == 0)
		pass_finish(d);
	return;
fail:
	{
		char why[320];

		log_err("reconcile: %s", fail_reason(p, ret, why, sizeof(why)));
	}
	genbook_rollback(d->book); /* generations staged but not synced are not in memory either */
	pass_free(p);
	arm_wake(d);
}

static void kick_cb(uv_timer_t *t)
{
	reconcile(t->data);
}

void daemon_kick(struct daemon *d, const char *why)
{
	if (why)
		log_debug("reconcile requested: %s", why);
	d->kick_pending = true;
	if (d->stopping)
		return;
	/* From the loop, never from inside a callback chain that holds pass state. */
	uv_timer_start(&d->kick, kick_cb, 0, 0);
}

static void wake_cb(uv_timer_t *t)
{
	struct daemon *d = t->data;

	daemon_kick(d, "scheduled change point");
}

static void arm_wake(struct daemon *d)
{
	int64_t next = INT64_MAX, now_ms = wall_ms(), delay;

	for (size_t i = 0; i < d->nlinks; i++) {
		const struct link_state *ls = &d->links[i];
		/* A link in backoff is not planned until its retry time. */
		int64_t t = ls->retry_at * 1000 > now_ms ? ls->retry_at : ls->next_change;

		if (t && t < next)
			next = t;
	}
	if (next == INT64_MAX) {
		uv_timer_stop(&d->wake);
		return;
	}
	/*
	 * Wake just after the change second starts: the plan works in whole seconds.
	 * The timer counts from the loop's cached time, which lags by however long
	 * this turn has run: refresh it, or the wake-up comes that much early.
	 */
	uv_update_time(&d->loop);
	delay = next * 1000 - now_ms + 5;
	if (delay < 0)
		delay = 0;
	uv_timer_start(&d->wake, wake_cb, (uint64_t)delay, 0);
}

/* A wall-clock step (NTP, suspend, an operator) invalidates the schedule: re-plan. */
static void clock_cb(uv_timer_t *t)
{
	struct daemon *d = t->data;
	int64_t offset = wall_ms() - (int64_t)uv_now(&d->loop);

	if (d->clock_offset && llabs(offset - d->clock_offset) > CLOCK_JUMP_MS) {
		log_warn("wall clock jumped by %+lld ms: re-planning",
			 (long long)(offset - d->clock_offset));
		daemon_kick(d, "clock jump");
	}
	d->clock_offset = offset;
}

/*
 * Whether the periodic refresh dumps at this tick (mon_refresh_due); a
 * stretched interval is logged when it begins and when it ends. A loss, a
 * reload or sactl reconcile still dumps at once.
 */
static bool refresh_due(struct daemon *d)
{
	uint64_t now_ns = uv_hrtime();
	struct mon_refresh r = {
		.dump_running = d->resync_running || d->resync_wanted,
		.dumped = d->resync_ended_ns != 0,
		.last_took_ms = d->resync_took_ns / 1000000u,
		.since_end_ms = d->resync_ended_ns ? (now_ns - d->resync_ended_ns) / 1000000u : 0,
		.interval_ms = (uint64_t)d->cfg->daemon.refresh_interval * 1000u,
	};
	bool stretched, due = mon_refresh_due(&r, &stretched);

	if (stretched && !d->refresh_stretched)
		log_warn("the SADB dump took %.3f s, a sizeable part of refresh_interval (%llu s): "
			 "periodic dumps wait %d times that after the last one (usage counters and "
			 "lost broadcasts are refreshed that much later); EXPIRE, ADD and DELETE "
			 "still come as the kernel sends them",
			 (double)d->resync_took_ns / 1e9,
			 (unsigned long long)d->cfg->daemon.refresh_interval, MON_REFRESH_SPACING);
	else if (!stretched && d->refresh_stretched)
		log_info("SADB dump back to %.3f s: a dump every refresh_interval (%llu s) again",
			 (double)d->resync_took_ns / 1e9,
			 (unsigned long long)d->cfg->daemon.refresh_interval);
	d->refresh_stretched = stretched;
	return due;
}

/*
 * Usage counters come from the kernel only by asking: a dump every
 * refresh_interval refreshes them, and also heals any broadcast we lost.
 */
static void refresh_cb(uv_timer_t *t)
{
	struct daemon *d = t->data;

	if (!d->registered && !d->registering && !d->stopping)
		start_register(d);
	/*
	 * A dump under way (or owed) refreshes already. One asked for now would
	 * start the moment it ends: with a dump as long as refresh_interval
	 * (170,000 SAs took 9-11 s in User-Mode Linux) the daemon dumped
	 * without a pause, and a pass, which waits for the dump, never started.
	 */
	if (!refresh_due(d))
		return;
	d->resync_wanted = true;
	daemon_kick(d, NULL);
}

/* --- start and stop ------------------------------------------------------ */

static void close_walk(uv_handle_t *h, void *arg)
{
	if (!uv_is_closing(h))
		uv_close(h, NULL);
}

void daemon_stop(struct daemon *d)
{
	if (d->stopping)
		return;
	d->stopping = true;
	log_info("stopping; SAs and policies stay installed (fail closed)");
	if (d->deferred_cfg)
		log_warn("a deferred reload was not applied: the pass it waited for was cut short; "
			 "the file is read again at the next start");
	notify_send("STOPPING=1");
	/* The receiver's records as they are now (XFRM: replay states), then stop. */
	if (!gen_stop_later(d))
		daemon_stop_now(d);
}

void daemon_stop_now(struct daemon *d)
{
	gen_close(d);
	ctl_server_close(d->ctl);
	d->ctl = NULL;
	sinks_stop(d->sinks);
	ledger_stop(d->ledger);
	close_dump_channel(d);
	if (d->kern)
		kern_close(d->kern);
	d->kern = NULL;
	if (d->cancelled)
		log_info("stop: %lu requests to the kernel were still in flight; what they did "
			 "is read from the kernel at the next start", d->cancelled);
	/* The simulated SADB closes its own handles (and frees itself in their callbacks). */
	daemon_backend_close(d);
	uv_walk(&d->loop, close_walk, NULL);
}

static void signal_cb(uv_signal_t *s, int signum)
{
	struct daemon *d = s->data;

	if (signum == SIGHUP) {
		daemon_reload(d);
		return;
	}
	log_info("signal %d", signum);
	daemon_stop(d);
}

static void retire_done(struct kern *k, int err, const struct pfkey_msg *reply, void *arg)
{
	if (err && err != -ESRCH && err != -ENOENT && err != -ECANCELED)
		log_warn("removing a retired link's %s: %s",
			 reply ? pfkey_type_name(reply->type) : "SA or policy", strerror(-err));
}

static void arm_retire(struct daemon *d);

/* Remove the SAs and policies of links whose grace after removal has passed. */
static void retire_cb(uv_timer_t *t)
{
	struct daemon *d = t->data;
	int64_t now = wall_ms();
	size_t kept = 0;

	for (size_t i = 0; i < d->nretiring; i++) {
		struct retiring_link *r = &d->retiring[i];
		unsigned long sas = 0;
		size_t cur = 0;
		struct mon_sa *e;

		if (r->remove_at_ms > now) {
			d->retiring[kept++] = *r;
			continue;
		}
		while ((e = mon_table_next(d->table, &cur))) {
			/* Still ours if a current link owns it (e.g. the link was renamed). */
			if (e->managed || e->sa.proto != IPPROTO_ESP ||
			    !rot_sa_owned_by(&e->sa, &r->link, NULL))
				continue;
			if (!sadb_request_delete(d->kern, &e->sa, retire_done, NULL))
				sas++;
		}
		if (r->link.policy) {
			struct pfkey_msg pol[3];
			int n = sadb_link_policies(&r->link, LINK_POLICY_PRIORITY, pol);
			bool reused = false;

			/* A current link with the same selectors keeps the policies. */
			for (size_t j = 0; j < d->nlinks; j++) {
				const struct conf_link *l = d->links[j].link;

				reused |= l->policy && rot_addr_equal(&l->local, &r->link.local) &&
					  rot_addr_equal(&l->remote, &r->link.remote);
			}
			for (int j = 0; j < n && !reused; j++) {
				pol[j].type = SADB_X_SPDDELETE; /* matched by selector and dir */
				kern_request(d->kern, &pol[j], retire_done, NULL);
			}
		}
		log_info("removed link %s retired after its grace: %lu SA%s%s deleted", r->link.name,
			 sas, sas == 1 ? "" : "s", r->link.policy ? " and its policies" : "");
	}
	d->nretiring = kept;
	arm_retire(d);
}

static void arm_retire(struct daemon *d)
{
	int64_t next = INT64_MAX;

	for (size_t i = 0; i < d->nretiring; i++)
		if (d->retiring[i].remove_at_ms < next)
			next = d->retiring[i].remove_at_ms;
	if (next == INT64_MAX || d->stopping) {
		uv_timer_stop(&d->retire);
		return;
	}
	next = next - wall_ms() + 5;
	uv_timer_start(&d->retire, retire_cb, next > 0 ? (uint64_t)next : 0, 0);
}

/*
 * Links of old that no link of the running config continues (same SPI prefix
 * and addresses) are retired: kept for their grace, since the peer may still
 * send with the current key, then removed with their policies.
 */
static void retire_removed(struct daemon *d, const struct config *old)
{
	int64_t now = wall_ms();

	for (size_t i = 0; i < old->nlinks; i++) {
		const struct conf_link *o = &old->links[i];
		struct retiring_link *grown;
		bool continued = false;

		for (size_t j = 0; j < d->nlinks && !continued; j++) {
			const struct conf_link *l = d->links[j].link;

			continued = l->spi_prefix == o->spi_prefix &&
				    rot_addr_equal(&l->local, &o->local) &&
				    rot_addr_equal(&l->remote, &o->remote);
		}
		if (continued)
			continue;
		grown = realloc(d->retiring, (d->nretiring + 1) * sizeof(*grown));
		if (!grown) {
			log_err("out of memory: link %s's SAs stay until their hard lifetime", o->name);
			continue;
		}
		d->retiring = grown;
		d->retiring[d->nretiring].link = *o;
		d->retiring[d->nretiring].link.secret = NULL;
		d->retiring[d->nretiring].remove_at_ms = now + (int64_t)o->grace * 1000;
		d->nretiring++;
		log_info("link %s removed: its SAs and policies go in %llus (its grace)", o->name,
			 (unsigned long long)o->grace);
	}
	arm_retire(d);
}

/* Switch to cfg (checked; ownership taken): 0, or -errno with the running config kept. */
static int apply_reload(struct daemon *d, struct config *cfg)
{
	struct config *old = d->cfg;
	int ret;

	ret = daemon_set_config(d, cfg);
	if (ret) {
		log_err("reload refused (%s); the running configuration stays", strerror(-ret));
		conf_free(cfg);
		notify_send("READY=1");
		return ret;
	}
	retire_removed(d, old);
	/* The old config's links are no longer referenced. */
	if (d->owned_cfg)
		conf_free(d->owned_cfg);
	d->owned_cfg = cfg;
	d->policies_done = false; /* for the links whose policies are new */
	log_info("reloaded: %zu link%s", d->nlinks, d->nlinks == 1 ? "" : "s");
	notify_send("READY=1");
	daemon_kick(d, "reload");
	return 0;
}

/* From the loop (reconcile), once no request of a pass or a policy is in flight. */
static void apply_deferred_reload(struct daemon *d)
{
	struct config *cfg = d->deferred_cfg;

	d->deferred_cfg = NULL;
	log_info("the pass has ended: applying the deferred reload");
	apply_reload(d, cfg);
}

int daemon_reload(struct daemon *d)
{
	struct conf_diag diag = { 0 };
	struct config *cfg = NULL;
	int ret;

	log_info("reloading %s", d->config_path);
	notify_send("RELOADING=1");
	ret = conf_load_daemon(d->config_path, geteuid(), NULL, &cfg, &diag);
	for (size_t i = 0; i < diag.count; i++)
		log_err("%s", diag.msgs[i]);
	conf_diag_fini(&diag);
	if (!ret && cfg->daemon.kernel != d->cfg->daemon.kernel) {
		log_err("reload: the kernel backend cannot change at run time; restart sakeyd");
		ret = -EINVAL;
	}
	/* kernel = auto chose PF_KEY at start: a link that needs XFRM needs a restart. */
	for (size_t i = 0; !ret && d->kern && kern_backend(d->kern) == KERN_BACKEND_PFKEY &&
			   i < cfg->nlinks; i++) {
		const char *why;

		if (!conf_link_pfkey_ok(&cfg->links[i], &why)) {
			log_err("reload: link %s needs XFRM (%s) but sakeyd runs on PF_KEY; restart it "
				"(kernel = auto then picks XFRM) or set kernel = xfrm",
				cfg->links[i].name, why);
			ret = -EINVAL;
		}
	}
	if (!ret)
		ret = resolve_links(cfg);
	if (ret) {
		log_err("reload refused; the running configuration stays%s",
			d->deferred_cfg ? " (the reload deferred before still applies when the "
					  "running pass ends)" :
					  "");
		conf_free(cfg);
		if (!d->deferred_cfg)
			notify_send("READY=1");
		return ret;
	}
	/*
	 * The requests in flight of a pass (and of policies) hold pointers to
	 * their link's state and plans made from the running config: both
	 * stay until the last reply, then the reload applies (reconcile). Two
	 * reloads meanwhile coalesce: the newer file wins.
	 */
	if (d->pass || d->policy_pending) {
		log_info("reload deferred until the running pass ends: %zu link%s checked%s",
			 cfg->nlinks, cfg->nlinks == 1 ? "" : "s",
			 d->deferred_cfg ? "; it replaces the reload still pending" : "");
		conf_free(d->deferred_cfg);
		d->deferred_cfg = cfg;
		return 0;
	}
	/* Between a pass's end and the kick that applies its deferred reload: this newer file wins. */
	conf_free(d->deferred_cfg);
	d->deferred_cfg = NULL;
	return apply_reload(d, cfg);
}

int daemon_init(struct daemon *d, struct config *cfg, const char *config_path)
{
	int ret;

	memset(d, 0, sizeof(*d));
	d->config_path = config_path;
	d->table = mon_table_new();
	if (!d->table)
		return -ENOMEM;
	ret = daemon_set_config(d, cfg);
	if (ret)
		return ret;
	ret = uv_loop_init(&d->loop);
	if (ret)
		return -EIO;
	uv_timer_init(&d->loop, &d->kick);
	uv_timer_init(&d->loop, &d->wake);
	uv_timer_init(&d->loop, &d->clock);
	uv_timer_init(&d->loop, &d->refresh);
	uv_timer_init(&d->loop, &d->resync_wait);
	uv_timer_init(&d->loop, &d->retire);
	uv_timer_init(&d->loop, &d->watchdog);
	d->kick.data = d->wake.data = d->clock.data = d->refresh.data = d->retire.data = d;
	uv_signal_init(&d->loop, &d->sigterm);
	uv_signal_init(&d->loop, &d->sigint);
	uv_signal_init(&d->loop, &d->sighup);
	d->sigterm.data = d->sigint.data = d->sighup.data = d;
	return 0;
}

static int ctl_reload(void *arg, char *msg, size_t len)
{
	struct daemon *d = arg;
	int ret = daemon_reload(d);

	if (ret)
		snprintf(msg, len, "reload refused (%s); the running configuration stays%s: see the "
			 "daemon's log for file:line", strerror(-ret),
			 d->deferred_cfg ? " (a reload deferred before still applies when the "
					   "running pass ends)" : "");
	else if (d->deferred_cfg)
		snprintf(msg, len, "reload deferred until the running pass ends: %zu link%s "
			 "checked; the log says \"reloaded\" when they apply",
			 d->deferred_cfg->nlinks, d->deferred_cfg->nlinks == 1 ? "" : "s");
	else
		snprintf(msg, len, "reloaded: %zu link%s", d->nlinks, d->nlinks == 1 ? "" : "s");
	return ret;
}

static int ctl_reconcile(void *arg, char *msg, size_t len)
{
	struct daemon *d = arg;

	d->resync_wanted = true;
	daemon_kick(d, "control socket");
	snprintf(msg, len, "resynchronising with the kernel and reconciling %zu link%s", d->nlinks,
		 d->nlinks == 1 ? "" : "s");
	return 0;
}

int daemon_start(struct daemon *d, const struct kern_opts *base)
{
	struct kern_opts o = *base;
	struct ctl_handlers h = { .reload = ctl_reload, .reconcile = ctl_reconcile, .arg = d };
	int ret;

	o.on_event = on_event;
	/*
	 * 512 datagrams a wake-up, not 4096: 10,000 EXPIREs at once (each an
	 * alert and a ledger event) held the loop 2 s and more a turn under
	 * ASan, and the control socket's requests timed out (tests/sim/burst.py);
	 * a pass's replies cost a few more wake-ups.
	 */
	if (!o.read_budget || o.read_budget > 512)
		o.read_budget = 512;
	/* op_done learns our changes from the replies: no echo of each (XFRM). */
	o.drop_own_echoes = true;
	d->backend_kind = o.backend;
	o.on_loss = on_loss;
	o.arg = d;
	/* PF_KEY registers off the loop (start_register); XFRM joins its groups at open. */
	o.register_later = o.backend != KERN_BACKEND_XFRM;
	d->registered = !o.register_later;
	d->unheard_since = daemon_now(d);
	ret = kern_open(&d->loop, &o, &d->kern);
	if (ret) {
		log_err("cannot open the kernel channel: %s", strerror(-ret));
		return ret;
	}
	if (!d->registered)
		start_register(d);
	ret = gen_start(d);
	if (ret)
		return ret;
	ret = ctl_server_start(&d->loop, d->cfg->daemon.control_socket, &h, &d->ctl);
	if (ret) {
		/* Not fatal: rotation matters more than sactl reload. */
		log_err("control socket %s: %s; sactl reload/reconcile will not work (SIGHUP does)",
			d->cfg->daemon.control_socket, strerror(-ret));
		d->ctl = NULL;
	}
	uv_signal_start(&d->sigterm, signal_cb, SIGTERM);
	uv_signal_start(&d->sigint, signal_cb, SIGINT);
	uv_signal_start(&d->sighup, signal_cb, SIGHUP);
	uv_timer_start(&d->clock, clock_cb, CLOCK_CHECK_MS, CLOCK_CHECK_MS);
	/* From the loop itself: a loop that hangs stops the pings (WatchdogSec= restarts us). */
	notify_watchdog_start(&d->watchdog);
	uv_timer_start(&d->refresh, refresh_cb, d->cfg->daemon.refresh_interval * 1000,
		       d->cfg->daemon.refresh_interval * 1000);
	d->resync_wanted = true;
	daemon_kick(d, "start");
	return 0;
}

void daemon_fini(struct daemon *d)
{
	int ret;

	pass_free(d->pass);
	d->pass = NULL;
	ret = uv_loop_close(&d->loop);
	if (ret)
		log_err("event loop closed with live handles: %s", uv_strerror(ret));
	assert(ret == 0);
	ledger_free(d->ledger);
	d->ledger = NULL;
	gen_fini(d);
	sinks_free(d->sinks);
	d->sinks = NULL;
	spare_fini(&d->ctx_spare);
	free(d->retiring);
	mon_table_free(d->table);
	rot_prefix_index_fini(&d->link_index);
	free(d->links);
	conf_free(d->owned_cfg);
	conf_free(d->deferred_cfg);
}

int daemon_run(struct config *cfg, const char *config_path)
{
	struct daemon *d = calloc(1, sizeof(*d));
	/*
	 * Replies: af_key answers inside sendmsg (the reply is queued before
	 * send returns), so one not read within 500 ms was dropped (full
	 * receive queue). The channel's 2 s default held a whole pass that
	 * long per lost reply: with 1 s epochs and 10 % loss, rotation fell
	 * behind (tests/reliability/loss.py). A late reply costs only a resync.
	 */
	struct kern_opts o = { .backend = KERN_BACKEND_PFKEY, .timeout_ms = 500 };
	struct daemon_port port;
	uint64_t opened_ns;
	int ret;

	if (!d)
		return -ENOMEM;
	ret = daemon_init(d, cfg, config_path);
	if (ret)
		goto out;
	daemon_port_init(d, &port);
	ret = daemon_backend_open(d, &o);
	opened_ns = uv_hrtime();
	if (!ret && !(ret = ledger_new(&port, &d->ledger))) {
		daemon_observe(d, ledger_observer(d->ledger));
		log_info("ledger opened in %.3f s", (double)(uv_hrtime() - opened_ns) / 1e9);
	}
	/* After the ledger: an alert the sinks raise follows the rows that led to it. */
	if (!ret && !(ret = sinks_new(&port, &d->sinks)))
		daemon_observe(d, sinks_observer(d->sinks));
	if (!ret)
		ret = daemon_start(d, &o);
	if (ret) {
		daemon_stop(d);
		uv_run(&d->loop, UV_RUN_DEFAULT);
		daemon_fini(d);
		goto out;
	}
	log_info("sakeyd " SAKEYD_VERSION " started: %zu link%s, kernel %s", d->nlinks,
		 d->nlinks == 1 ? "" : "s", cfg->daemon.kernel == CONF_KERNEL_SIM ? "sim" :
		 o.backend == KERN_BACKEND_XFRM	      ? "xfrm" :
							"pfkey");
	uv_run(&d->loop, UV_RUN_DEFAULT);
	daemon_backend_close(d);
	daemon_fini(d);
	log_info("stopped");
out:
	free(d);
	return ret;
}
