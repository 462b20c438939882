/* SPDX-License-Identifier: ISC */
/* The daemon's ledger: SA lives, events and rotations into SQLite, committed once a burst is answered. */
#include <errno.h>
#include <grp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "rotate/gens.h"
#include "rotate/keysched.h"
#include "store/store.h"
#include "svc/base/log.h"
#include "svc/daemon/ckpt.h"
#include "svc/daemon/ledger.h"
#include "svc/daemon/observer.h"
#include "svc/daemon/sadb.h"

/* A broken database is retried this often; the ledger then catches up by a resync. */
#define REOPEN_MS 5000

/*
 * Retention pruning cadence: a tenth of event_retention, within [1 s, 1 h],
 * so the database stays within about 1.1 × retention of history whatever
 * the retention (an hourly prune alone let a short retention grow 1 h of rows).
 */
/* Longest a transaction stays open while kernel requests are outstanding. */
#define COMMIT_MAX_MS 1000

static uint64_t prune_ms(const struct config *cfg)
{
	uint64_t ms = cfg->daemon.event_retention * 100;

	return ms < 1000 ? 1000 : ms > 3600 * 1000 ? 3600 * 1000 : ms;
}

/*
 * A rotation pass answers thousands of requests a second, and writing
 * each SA's row and event as its reply arrives kept the daemon busy (SQLite
 * row and index updates) while the kernel
 * waited for the next batch. Outside a resync the ledger therefore queues
 * what the hooks report and writes it, in order, when the kernel has
 * answered everything (or after COMMIT_MAX_MS), LQ_CHUNK items a loop turn,
 * committing each chunk. The commit came at that moment before too, so a
 * crash loses no more writes than before (a pass's rows may now be partly
 * committed: the start-up resync records what the kernel holds). What the queue holds:
 *  - LQ_SA: a live table entry whose row is to be written (added or
 *    changed; e->ledger_slot points back here, so one item per entry);
 *  - LQ_GONE_ROW: the row of an entry that left the table, whose row was
 *    written: its end, and an event made from the row (store_event_add_for_sa);
 *  - LQ_GONE: otherwise (its row still queued, or none), a copy of the
 *    entry, owned by the queue; the row is written first if it was pending;
 *  - LQ_ROTATION: a successful rotation (link, epoch, new SPI).
 * Every removal from the table calls sa_gone first, and a reload flushes
 * before the config (which entries and rotations point into) changes.
 */
enum lq_kind { LQ_SA, LQ_GONE, LQ_GONE_ROW, LQ_ROTATION };

struct lq_item {
	union {
		struct mon_sa *e;	      /* LQ_SA, LQ_GONE */
		int64_t store_id;	      /* LQ_GONE_ROW */
		const struct conf_link *link; /* LQ_ROTATION */
	};
	union {
		const char *why; /* LQ_GONE, LQ_GONE_ROW: a string literal (daemon_observer.sa_gone) */
		int64_t epoch;	 /* LQ_ROTATION */
	};
	int64_t at; /* port->now() when the hook ran */
	uint32_t spi; /* LQ_ROTATION: the new outbound SPI */
	uint8_t kind;
	bool added; /* LQ_SA: the add event is to be written too */
};

#define LQ_BLOCK 1024
/*
 * Items written and committed per loop turn at the commit: a whole pass's
 * rows in one go made an EXPIRE or ACQUIRE wait behind all of them.
 */
#define LQ_CHUNK 2000

struct ledger {
	struct daemon_port port;
	struct daemon_observer observer;
	struct store *store;
	/*
	 * The store's WAL checkpoints, on their own thread (ckpt.c); NULL if
	 * it could not start: the writer then checkpoints as SQLite does.
	 */
	struct ckpt *ckpt;
	bool ckpt_failing; /* its last run failed (logged once) */
	uv_prepare_t commit; /* before the loop blocks: commit the turn's writes */
	uv_timer_t reopen;
	uv_timer_t prune;
	bool syncing;
	bool failed;  /* a write failed: reopen and resync */
	bool adopted; /* rotations found installed at start-up are recorded */
	bool schedules_stale; /* the links' STORE_META_SCHEDULE rows are to be written */
	uint64_t txn_seen_ms; /* loop time the open transaction was first seen; 0: none */
	/*
	 * Opened stores so far: the digests of written rows (mon_sa.ledger_sum,
	 * row_sum) are taken with it, so a reopened store (a failed write is
	 * rolled back, a replaced file is empty) matches none of them.
	 */
	uint64_t store_gen;
	unsigned long errors;
	/*
	 * Writes held until the commit (see struct lq_item): blocks of
	 * LQ_BLOCK items, kept between commits so a pass does not fault in
	 * fresh pages (the daemon runs mlockall'd).
	 */
	struct lq_item **blocks;
	size_t nblocks, queued;
	size_t written; /* items [0, written) are written (a commit in progress, LQ_CHUNK a turn) */
	uv_idle_t more; /* active while a chunked write has more: the loop must not block */
	uint64_t write_started_ns; /* the chunked write's start, for its log line */
	bool flushing;
};

static void reopen_cb(uv_timer_t *t);

/* Close the store, its checkpoint thread first (which uses the file's locks while it runs). */
static void close_store(struct ledger *l, bool final)
{
	char msg[256] = "";
	int ret;

	ret = ckpt_stop(l->ckpt, final, msg, sizeof(msg));
	l->ckpt = NULL;
	if (ret)
		log_warn("ledger: the checkpoint at close failed (%s): the WAL keeps what it "
			 "holds, and the next start copies it into the file",
			 msg);
	store_close(l->store);
	l->store = NULL;
	l->store_gen++; /* what the entries' ledger_sum say of its rows no longer holds */
}

static int64_t now_of(struct ledger *l)
{
	return l->port.now(l->port.daemon);
}

static const struct config *config_of(const struct ledger *l)
{
	return l->port.config(l->port.daemon);
}

static void fail(struct ledger *l, int err, const char *what)
{
	bool first = !l->failed;
	char msg[256] = "";

	/*
	 * Close before alerting: the alert is itself written to the ledger
	 * (on_alert), and with the store still open that write failed again
	 * and alerted again, recursing (each level blocked in the busy wait)
	 * for as long as another writer held the lock.
	 */
	l->failed = true;
	l->errors++;
	if (l->store) {
		snprintf(msg, sizeof(msg), "%s", store_errmsg(l->store));
		store_rollback(l->store);
		close_store(l, false);
	}
	if (!uv_is_active((uv_handle_t *)&l->reopen))
		uv_timer_start(&l->reopen, reopen_cb, REOPEN_MS, 0);
	if (first) {
		log_err("ledger: %s: %s (%s); rotation goes on, the ledger catches up once the "
			"database works again",
			what, strerror(-err), msg);
		daemon_port_alertf(&l->port, "rotation-failed", NULL, NULL,
				   "the SQLite ledger in %s cannot be written: %s",
				   config_of(l)->daemon.state_dir, strerror(-err));
	}
}

/* The store to write to, inside this turn's transaction; NULL if broken. */
static struct store *writable(struct ledger *l)
{
	int ret;

	if (!l->store)
		return NULL;
	if (!store_in_transaction(l->store)) {
		ret = store_begin(l->store);
		if (ret) {
			fail(l, ret, "begin");
			return NULL;
		}
	}
	return l->store;
}

/* snprintf(dst, size, "%s", src) without the format machinery: truncated, NUL-terminated. */
static void copy_str(char *dst, size_t size, const char *src)
{
	size_t n = strnlen(src, size - 1);

	memcpy(dst, src, n);
	dst[n] = '\0';
}

static void to_row(const struct mon_sa *e, struct store_sa *row, int64_t now)
{
	memset(row, 0, sizeof(*row));
	if (e->sa.link)
		copy_str(row->link, sizeof(row->link), e->sa.link->name);
	row->dir = e->sa.dir == ROT_DIR_IN ? STORE_DIR_IN :
		   e->sa.dir == ROT_DIR_OUT ? STORE_DIR_OUT : STORE_DIR_NONE;
	row->spi = e->sa.spi;
	sadb_addr_str(&e->sa.src, row->src, sizeof(row->src));
	sadb_addr_str(&e->sa.dst, row->dst, sizeof(row->dst));
	row->proto = e->sa.proto ? e->sa.proto : 255;
	copy_str(row->mode, sizeof(row->mode),
		 e->sa.mode == CONF_MODE_TUNNEL ? "tunnel" :
		 e->sa.mode == CONF_MODE_TRANSPORT ? "transport" : "");
	if (e->sa.alg)
		copy_str(row->algorithm, sizeof(row->algorithm), e->sa.alg->name);
	row->has_epoch = e->managed;
	row->epoch = e->sa.epoch;
	row->managed = e->managed;
	row->state = e->state == MON_LARVAL ? STORE_SA_LARVAL :
		     e->state == MON_DYING ? STORE_SA_DYING : STORE_SA_MATURE;
	row->added_at = e->added_at ? e->added_at : now;
	row->soft_expires_at = mon_sa_soft_expires_at(e);
	row->hard_expires_at = mon_sa_hard_expires_at(e);
	row->bytes = e->bytes;
	row->packets = e->packets;
	row->last_counters_at = now;
	/*
	 * Only SAs of a link (keys sakeyd derived, compared with the plan in
	 * memory) are fingerprinted in the ledger. A hand-keyed SA's key is
	 * often weak, and an unsalted hash of it would let whoever reads the
	 * database test guesses offline: its key_fp stays NULL.
	 */
	if (e->managed && strlen(e->sa.key_fp) == STORE_FP_LEN)
		memcpy(row->key_fp, e->sa.key_fp, sizeof(row->key_fp));
	row->origin_pid = e->origin_pid;
}

static void event(struct ledger *l, int64_t at, const char *kind, const struct mon_sa *e,
		  const struct conf_link *link, const char *msg)
{
	struct store_event ev = { .at = at };
	struct store *s = writable(l);
	int ret;

	if (!s)
		return;
	if (store_event_kind_parse(kind, &ev.kind))
		return;
	if (e) {
		ev.sa_id = e->store_id;
		ev.spi = e->sa.spi;
		ev.proto = e->sa.proto;
		ev.origin_pid = e->origin_pid;
		sadb_addr_str(&e->sa.src, ev.src, sizeof(ev.src));
		sadb_addr_str(&e->sa.dst, ev.dst, sizeof(ev.dst));
		if (!strcmp(ev.src, "-"))
			ev.src[0] = ev.dst[0] = 0;
		if (!link)
			link = e->sa.link;
	}
	if (link)
		copy_str(ev.link, sizeof(ev.link), link->name);
	copy_str(ev.message, sizeof(ev.message), msg ? msg : "");
	ret = store_event_add(s, &ev, NULL);
	if (ret && ret != -EINVAL)
		fail(l, ret, "event");
}

/*
 * A digest of what row says (its counters' time left out: a refresh sets
 * it every time) in this store (store_gen), never 0: FNV-1a's step on
 * 64-bit words, each followed by a shift to fold the high bits down. An
 * equality check against accidents (the rows are the kernel's and
 * sakeyd's), not a cryptographic hash.
 */
static uint64_t row_sum(const struct ledger *l, const struct store_sa *row)
{
	const unsigned char *p;
	uint64_t h = 0xcbf29ce484222325ULL ^ l->store_gen, w;
	struct store_sa r;
	size_t i = 0;

	memcpy(&r, row, sizeof(r)); /* padding too: to_row zeroed it first */
	r.last_counters_at = 0;
	p = (const unsigned char *)&r;
	for (; i + sizeof(w) <= sizeof(r); i += sizeof(w)) {
		memcpy(&w, p + i, sizeof(w));
		h = (h ^ w) * 0x100000001b3ULL;
		h ^= h >> 29;
	}
	for (; i < sizeof(r); i++)
		h = (h ^ p[i]) * 0x100000001b3ULL;
	return h ? h : 1;
}

static void record(struct ledger *l, struct mon_sa *e, int64_t now)
{
	struct store *s = writable(l);
	struct store_sa row;
	uint64_t sum;
	int ret;

	if (!s)
		return;
	to_row(e, &row, now);
	sum = row_sum(l, &row);
	/*
	 * A refresh dump tells the ledger of every SA, mostly as it was: an
	 * entry whose row this store holds as it would write it now is only
	 * marked seen (the row's find, its comparison and its address
	 * checks were most of a refresh's cost).
	 */
	if (l->syncing && e->store_id && e->ledger_sum == sum)
		ret = store_sa_seen_id(s, e->store_id);
	else if (l->syncing)
		ret = store_sa_seen(s, &row, now, &e->store_id);
	else if (e->store_id)
		ret = store_sa_update(s, e->store_id, &row);
	else
		ret = store_sa_add(s, &row, &e->store_id);
	if (ret == -ENOENT && !l->syncing)
		ret = store_sa_add(s, &row, &e->store_id);
	e->ledger_sum = ret ? 0 : sum;
	if (ret && ret != -EINVAL)
		fail(l, ret, "SA");
}

static const char *add_message(struct ledger *l, const struct mon_sa *e)
{
	return l->port.added_by_us(l->port.daemon, e) ? "added by sakeyd" :
	       e->origin_pid == 0 ? "added via netlink (ip xfrm)" :
				    "added by another PF_KEY client";
}

static void write_sa(struct ledger *l, struct mon_sa *e, bool added, int64_t at)
{
	struct store *s;
	struct store_sa row;
	int ret;

	/*
	 * A new row and its add event: one row (store_sa_add_logged). What
	 * else happens to be an add (a row there already, a resync) is written
	 * as before, the event in a row of its own.
	 */
	if (added && !l->syncing && !e->store_id && (s = writable(l))) {
		to_row(e, &row, at);
		ret = store_sa_add_logged(s, &row, at, add_message(l, e), &e->store_id);
		e->ledger_sum = ret ? 0 : row_sum(l, &row);
		if (ret && ret != -EINVAL)
			fail(l, ret, "SA");
		return;
	}
	record(l, e, at);
	if (added)
		event(l, at, "add", e, NULL, add_message(l, e));
}

/* Row store_id's SA life ends at at (a row already gone is left as it is); false if s failed. */
static bool end_row(struct ledger *l, struct store *s, int64_t store_id, int64_t at)
{
	int ret = store_sa_set_state(s, store_id, STORE_SA_GONE, at);

	if (ret && ret != -ENOENT) {
		fail(l, ret, "SA gone");
		return false;
	}
	return true;
}

/*
 * Row store_id's end and its delete event, in the row (store_sa_gone_logged):
 * 1 done, 0 if the row cannot hold it (none, or it holds a delete already),
 * -1 if s failed.
 */
static int end_row_logged(struct ledger *l, struct store *s, int64_t store_id, const char *why,
			  int64_t at)
{
	int ret = store_sa_gone_logged(s, store_id, at, why);

	if (ret == 0)
		return 1;
	if (ret == -ENOENT || ret == -EINVAL)
		return 0;
	fail(l, ret, "SA gone");
	return -1;
}

static void write_gone(struct ledger *l, const struct mon_sa *e, const char *why, int64_t at)
{
	struct store *s = writable(l);
	int done = 0;

	if (s && e->store_id && (done = end_row_logged(l, s, e->store_id, why, at)) == 0)
		end_row(l, s, e->store_id, at);
	if (done == 0)
		event(l, at, "delete", e, NULL, why);
}

/* write_gone for an entry whose row is written, from the row: the entry has gone. */
static void write_gone_row(struct ledger *l, int64_t store_id, const char *why, int64_t at)
{
	struct store *s = writable(l);
	int ret;

	if (!s || (ret = end_row_logged(l, s, store_id, why, at)) != 0)
		return;
	if (!end_row(l, s, store_id, at))
		return;
	ret = store_event_add_for_sa(s, store_id, at, STORE_EV_DELETE, why);
	if (ret && ret != -ENOENT && ret != -EINVAL)
		fail(l, ret, "event");
}

/*
 * The outbound SA the one with spi replaced: generation g - 1 (g + 1 in the
 * series 15-8) of the same epoch after a loss; at an epoch's start, the epoch
 * before (as generation 0: its last generation is not known here); 0 for
 * generation 15 (the records were lost: nothing is known).
 */
static uint32_t replaced_spi(const struct conf_link *link, int64_t epoch, uint32_t spi)
{
	uint8_t g = rot_spi_gen(spi);

	if (g == 0)
		return rot_spi(link->spi_prefix, epoch - 1, 0);
	if (g == ROT_GEN_MAX)
		return 0;
	return rot_spi(link->spi_prefix, epoch, rot_gen_lost_series(g) ? g + 1 : g - 1);
}

static void write_rotation(struct ledger *l, const struct conf_link *link, int64_t epoch,
			   enum rot_dir dir, uint32_t spi, bool ok, const char *detail, int64_t at)
{
	struct store_rotation rot = {
		.at = at,
		.epoch = epoch,
		.result = ok ? STORE_ROT_OK : STORE_ROT_FAILED,
		.new_spi = spi,
	};
	struct store *s = writable(l);
	int ret;

	if (!s)
		return;
	copy_str(rot.link, sizeof(rot.link), link->name);
	copy_str(rot.detail, sizeof(rot.detail), detail ? detail : "");
	if (ok && dir == ROT_DIR_OUT)
		rot.old_spi = replaced_spi(link, epoch, spi);
	ret = store_rotation_add(s, &rot, NULL);
	if (ret && ret != -EINVAL)
		fail(l, ret, "rotation");
}

static struct lq_item *lq_at(struct ledger *l, size_t i)
{
	return &l->blocks[i / LQ_BLOCK][i % LQ_BLOCK];
}

/* A new item at the queue's end, or NULL (out of memory: the caller writes at once). */
static struct lq_item *lq_push(struct ledger *l, enum lq_kind kind)
{
	struct lq_item *it;

	if (l->queued == l->nblocks * LQ_BLOCK) {
		struct lq_item **grown = realloc(l->blocks, (l->nblocks + 1) * sizeof(*grown));

		if (!grown)
			return NULL;
		l->blocks = grown;
		if (!(l->blocks[l->nblocks] = malloc(LQ_BLOCK * sizeof(struct lq_item))))
			return NULL;
		l->nblocks++;
	}
	it = lq_at(l, l->queued++);
	memset(it, 0, sizeof(*it));
	it->kind = kind;
	it->at = now_of(l);
	return it;
}

/*
 * Write the next max items of the queue, in order, into the open
 * transaction; once all are written the queue is empty again. A failing
 * write closes the store (fail): the rest is dropped, as the writes would
 * have been, and the resync after the reopen catches up.
 */
static void lq_write(struct ledger *l, size_t max)
{
	size_t end = l->queued - l->written > max ? l->written + max : l->queued;

	if (l->flushing || !l->queued)
		return;
	l->flushing = true;
	for (; l->written < end; l->written++) {
		struct lq_item *it = lq_at(l, l->written);

		switch (it->kind) {
		case LQ_SA:
			it->e->ledger_slot = 0;
			write_sa(l, it->e, it->added, it->at);
			break;
		case LQ_GONE:
			write_gone(l, it->e, it->why, it->at);
			free(it->e);
			break;
		case LQ_GONE_ROW:
			write_gone_row(l, it->store_id, it->why, it->at);
			break;
		case LQ_ROTATION:
			write_rotation(l, it->link, it->epoch, ROT_DIR_OUT, it->spi, true, NULL,
				       it->at);
			break;
		}
	}
	if (l->written == l->queued)
		l->queued = l->written = 0;
	l->flushing = false;
}

/* Write all the queue holds. */
static void lq_flush(struct ledger *l)
{
	lq_write(l, SIZE_MAX);
}

/* Queue only outside a resync (whose rows are written as the dump arrives) with a store open. */
static bool queueing(struct ledger *l)
{
	return l->store && !l->syncing && !l->flushing;
}

static void on_sa_added(void *self, const struct mon_sa *ce, bool from_dump)
{
	struct ledger *l = self;
	struct mon_sa *e = (struct mon_sa *)ce;
	struct lq_item *it;

	if (e->ledger_slot)
		lq_at(l, e->ledger_slot - 1)->added |= !from_dump;
	else if (queueing(l) && (it = lq_push(l, LQ_SA))) {
		it->e = e;
		it->added = !from_dump;
		e->ledger_slot = l->queued;
	} else {
		lq_flush(l);
		write_sa(l, e, !from_dump, now_of(l));
	}
}

static void on_sa_changed(void *self, const struct mon_sa *ce)
{
	struct ledger *l = self;
	struct mon_sa *e = (struct mon_sa *)ce;
	struct lq_item *it;

	if (e->ledger_slot)
		; /* its row is written from the entry as it is then */
	else if (queueing(l) && (it = lq_push(l, LQ_SA))) {
		it->e = e;
		e->ledger_slot = l->queued;
	} else {
		lq_flush(l);
		record(l, e, now_of(l));
	}
}

static void on_sa_gone(void *self, const struct mon_sa *e, const char *why)
{
	struct ledger *l = self;
	struct mon_sa *copy = NULL;
	struct lq_item *it = NULL;

	/*
	 * The entry is freed when this returns. Its row written, the row tells
	 * the rest; else the queue keeps a copy (no key bytes in it).
	 */
	if (queueing(l) && !e->ledger_slot && e->store_id && (it = lq_push(l, LQ_GONE_ROW))) {
		it->store_id = e->store_id;
		it->why = why;
	} else if (queueing(l) && (copy = malloc(sizeof(*copy))) &&
		   (it = lq_push(l, LQ_GONE))) {
		*copy = *e;
		copy->ledger_slot = 0;
		if (e->ledger_slot)
			lq_at(l, e->ledger_slot - 1)->e = copy;
		it->e = copy;
		it->why = why;
	} else {
		free(copy);
		lq_flush(l); /* writes e's pending row, if any, while e is still here */
		write_gone(l, e, why, now_of(l));
	}
}

static void on_alert(void *self, const char *kind, const struct mon_sa *e,
		     const struct conf_link *link, const char *msg)
{
	struct ledger *l = self;

	/* After what led to it, and with the SA's row id (its row may be queued). */
	lq_flush(l);
	event(l, now_of(l), kind, e, link, msg);
}

static void on_rotation(void *self, const struct conf_link *link, const struct rot_sa *sa,
			bool ok, const char *detail)
{
	struct ledger *l = self;
	struct lq_item *it;

	/* The common case, a rotation as planned, is queued; the rest is rare and has a detail. */
	if (ok && !detail && sa->dir == ROT_DIR_OUT && queueing(l) &&
	    (it = lq_push(l, LQ_ROTATION))) {
		it->link = link;
		it->epoch = sa->epoch;
		it->spi = sa->spi;
	} else {
		lq_flush(l);
		write_rotation(l, link, sa->epoch, sa->dir, sa->spi, ok, detail, now_of(l));
	}
}

static void on_acquire(void *self, uint32_t seq, const struct conf_addr *src,
		       const struct conf_addr *dst, const struct conf_link *link)
{
	struct ledger *l = self;
	struct mon_sa pseudo = { 0 };
	char msg[64];

	pseudo.sa.src = *src;
	pseudo.sa.dst = *dst;
	pseudo.sa.proto = IPPROTO_ESP;
	snprintf(msg, sizeof(msg), "acquire seq %u%s", seq, link ? ", answered" : "");
	lq_flush(l);
	event(l, now_of(l), "acquire", &pseudo, link, msg);
}

/* The config that queued entries and rotations point into is about to change. */
static void on_config_swap(void *self)
{
	struct ledger *l = self;

	lq_flush(l);
	l->schedules_stale = true;
}

/*
 * Each running link's period and resolved phase, for sactl status's next
 * rotation (sactl reads no secret, so it cannot resolve an auto phase).
 * Written in the open transaction after a start or reload.
 */
static int write_schedules(struct ledger *l)
{
	const struct daemon_port *p = &l->port;
	size_t n = p->nlinks(p->daemon);

	for (size_t i = 0; i < n; i++) {
		struct daemon_link_view view;
		char key[STORE_META_SCHEDULE_LEN], value[64];
		int ret;

		p->link_at(p->daemon, i, &view);
		store_meta_schedule_key(view.link->name, key);
		snprintf(value, sizeof(value), "period=%llu phase=%llu",
			 (unsigned long long)view.link->rotate_every,
			 (unsigned long long)view.link->phase);
		ret = store_meta_set(l->store, key, value);
		if (ret)
			return ret;
	}
	l->schedules_stale = false;
	return 0;
}

static void on_resync_begin(void *self)
{
	struct ledger *l = self;
	struct store *s;

	/* The sync compares the rows with the dump: every queued row first. */
	lq_flush(l);
	s = writable(l);
	l->syncing = false;
	if (s && !store_sa_sync_begin(s))
		l->syncing = true;
}

/*
 * After the first dump: a link whose current outbound SA is installed but
 * whose latest recorded rotation is older was rotated by a sakeyd that died
 * before its ledger write (writes are committed once per loop turn, after the
 * kernel request): record that rotation now, at the kernel's add time, so
 * the history has every epoch's rotation once.
 */
static void adopt_rotations(struct ledger *l, struct store *s)
{
	const struct daemon_port *p = &l->port;
	size_t nlinks = p->nlinks(p->daemon), cur = 0;
	const struct mon_sa **newest, *e;

	/*
	 * Every link's newest outbound SA from one walk of the table, each SA's
	 * link found through the daemon's index by SPI prefix, not a walk per link.
	 */
	newest = calloc(nlinks + 1, sizeof(*newest));
	if (!newest) {
		fail(l, -ENOMEM, "rotation");
		return;
	}
	while ((e = mon_table_next(p->table(p->daemon), &cur))) {
		const struct mon_sa **slot;
		size_t i;

		if (!e->managed || !e->sa.link || e->sa.dir != ROT_DIR_OUT)
			continue;
		if (!p->link_of(p->daemon, e, &i))
			continue;
		slot = &newest[i];
		if (!*slot || e->sa.epoch > (*slot)->sa.epoch)
			*slot = e;
	}
	for (size_t i = 0; i < nlinks; i++) {
		struct daemon_link_view view;
		const struct conf_link *link;
		const struct mon_sa *out = newest[i];
		struct store_rotation last, rot = { .result = STORE_ROT_OK };
		int ret;

		if (!out)
			continue;
		p->link_at(p->daemon, i, &view);
		link = view.link;
		ret = store_rotation_last(s, link->name, true, &last);
		if (ret && ret != -ENOENT) {
			fail(l, ret, "rotation");
			break;
		}
		if (!ret && last.epoch >= out->sa.epoch)
			continue;
		rot.at = out->added_at ? out->added_at : time(NULL);
		rot.epoch = out->sa.epoch;
		rot.old_spi = replaced_spi(link, out->sa.epoch, out->sa.spi);
		rot.new_spi = out->sa.spi;
		snprintf(rot.link, sizeof(rot.link), "%s", link->name);
		snprintf(rot.detail, sizeof(rot.detail),
			 "recorded at start-up: installed by a sakeyd that stopped before "
			 "recording it");
		log_info("link %s: epoch %lld's outbound spi %#x was installed but not recorded "
			 "(sakeyd stopped in between): recording its rotation",
			 link->name, (long long)out->sa.epoch, out->sa.spi);
		ret = store_rotation_add(s, &rot, NULL);
		if (ret && ret != -EINVAL) {
			fail(l, ret, "rotation");
			break;
		}
	}
	free(newest);
}

static void on_synced(void *self, unsigned long n)
{
	struct ledger *l = self;
	struct store *s = writable(l);
	uint64_t gone = 0;
	int ret;

	if (s && l->syncing) {
		ret = store_sa_sync_end(s, time(NULL), &gone);
		if (!ret)
			ret = store_meta_set_int(s, STORE_META_LAST_DUMP_AT, time(NULL));
		if (ret)
			fail(l, ret, "sync");
		else if (!l->adopted) {
			l->adopted = true;
			adopt_rotations(l, s);
		}
	}
	l->syncing = false;
}

/*
 * After a commit: wake the checkpoint thread, and say once when its runs
 * start or stop failing. A failed checkpoint loses nothing (the WAL keeps
 * every committed page); -EBUSY (a reader or a locker) is retried quietly.
 */
static void checkpoint(struct ledger *l)
{
	char msg[256] = "";
	int ret;

	if (!l->ckpt)
		return;
	ret = ckpt_result(l->ckpt, NULL, msg, sizeof(msg));
	if (ret < 0 && ret != -EBUSY && !l->ckpt_failing)
		log_warn("ledger: WAL checkpoint failed: %s (%s); the WAL grows until it "
			 "works again (free space in %s)",
			 strerror(-ret), msg, config_of(l)->daemon.state_dir);
	else if (ret == 0 && l->ckpt_failing)
		log_info("ledger: WAL checkpoints work again");
	if (ret <= 0)
		l->ckpt_failing = ret < 0 && ret != -EBUSY;
	ckpt_wake(l->ckpt);
}

/* Queues at least this long are timed and logged when committed (a pass's rows). */
#define LQ_LOG_MIN 1000

/* Write the rest of the queue and commit the open transaction. */
static void commit(struct ledger *l)
{
	size_t queued = l->queued;
	/* A clock read is a system call in UML: only for a commit that is logged. */
	uint64_t started = l->write_started_ns ? l->write_started_ns :
			   queued >= LQ_LOG_MIN	   ? uv_hrtime() :
						     0;
	int ret;

	l->txn_seen_ms = 0;
	l->write_started_ns = 0;
	lq_flush(l);
	if (!l->store || !store_in_transaction(l->store))
		return; /* a write failed, or nothing was written */
	if (store_file_replaced(l->store)) {
		fail(l, -ENOENT, "database file deleted or replaced");
		return;
	}
	ret = l->schedules_stale ? write_schedules(l) : 0;
	if (!ret)
		ret = store_meta_set_int(l->store, STORE_META_LAST_WRITE_AT, time(NULL));
	if (!ret)
		ret = store_commit(l->store);
	if (ret) {
		fail(l, ret, "commit");
		return;
	}
	checkpoint(l);
	if (queued >= LQ_LOG_MIN)
		log_info("ledger: %zu queued writes written and committed in %.3f s", queued,
			 (double)(uv_hrtime() - started) / 1e9);
}

static void more_cb(uv_idle_t *h)
{
	/* Nothing: while active, the loop polls without blocking and commit_cb runs again. */
}

static void commit_cb(uv_prepare_t *h)
{
	struct ledger *l = h->data;

	uv_idle_stop(&l->more);
	if (!l->store) {
		lq_flush(l); /* drops it: the resync after the reopen catches up */
		l->txn_seen_ms = 0;
		return;
	}
	if (!l->queued && !store_in_transaction(l->store)) {
		l->txn_seen_ms = 0;
		return;
	}
	/* A sync spans loop turns (the dump arrives in pieces): keep it in one transaction. */
	if (l->syncing)
		return;
	/*
	 * A burst (a change point's thousands of requests) is answered over
	 * many loop turns: committing each turn rewrote the same pages again
	 * and again, a pwrite() for every few SAs, each a trap in User-Mode
	 * Linux. Commit when the kernel has answered everything, or
	 * after COMMIT_MAX_MS: a crash loses at most that, and the start-up
	 * resync records what the kernel holds.
	 */
	if (!l->txn_seen_ms)
		l->txn_seen_ms = uv_now(l->port.loop) + 1;
	if (l->port.kernel_busy(l->port.daemon) &&
	    uv_now(l->port.loop) + 1 - l->txn_seen_ms < COMMIT_MAX_MS)
		return;
	/* A pass's rows, a chunk a turn: the loop reads the kernel in between. */
	if (l->queued - l->written > LQ_CHUNK) {
		if (!l->write_started_ns)
			l->write_started_ns = uv_hrtime();
		lq_write(l, LQ_CHUNK);
		/*
		 * Each chunk committed: a whole pass's rows in one transaction
		 * dirtied more pages than SQLite's page cache holds (2 MiB), which
		 * spilled them into the WAL and read them back, a pread()/pwrite()
		 * a page. A chunk's pages stay in the cache until its commit.
		 */
		if (l->store && store_in_transaction(l->store)) {
			int ret = store_commit(l->store);

			if (ret)
				fail(l, ret, "commit");
			else
				checkpoint(l);
		}
		if (l->store) {
			uv_idle_start(&l->more, more_cb);
			return;
		}
	}
	commit(l);
}

/* Whether this process may give its files to group gid: root, or a member of it. */
static bool may_use_group(gid_t gid)
{
	gid_t groups[256];
	int n;

	if (geteuid() == 0 || getegid() == gid)
		return true;
	n = getgroups((int)(sizeof(groups) / sizeof(groups[0])), groups);
	for (int i = 0; i < n; i++)
		if (groups[i] == gid)
			return true;
	return false;
}

/*
 * The group the ledger is shared with: STORE_GROUP_NAME if the system has
 * it (looked up at every open: creating the group and restarting sakeyd
 * turns sharing on, deleting it turns sharing off), else (gid_t)-1.
 */
static gid_t read_group(const struct config *cfg)
{
	struct group *gr;

	errno = 0;
	gr = getgrnam(STORE_GROUP_NAME);
	if (!gr) {
		if (errno && errno != ENOENT && errno != ESRCH)
			log_warn("ledger: cannot look up group %s: %s; %s/%s stays readable by "
				 "root only",
				 STORE_GROUP_NAME, strerror(errno), cfg->daemon.state_dir,
				 STORE_DB_NAME);
		return (gid_t)-1;
	}
	if (!may_use_group(gr->gr_gid)) {
		log_warn("ledger: group %s exists but sakeyd (uid %lu) is neither root nor a "
			 "member: %s/%s stays readable by its owner only; add sakeyd's user to "
			 "group %s or run sakeyd as root",
			 STORE_GROUP_NAME, (unsigned long)geteuid(), cfg->daemon.state_dir,
			 STORE_DB_NAME, STORE_GROUP_NAME);
		return (gid_t)-1;
	}
	return gr->gr_gid;
}

static int open_store(struct ledger *l)
{
	const struct config *cfg = config_of(l);
	gid_t gid = read_group(cfg);
	char err[256] = "";
	int ret;

	if (gid == (gid_t)-1)
		ret = store_open(cfg->daemon.state_dir, false, &l->store, err, sizeof(err));
	else
		ret = store_open_shared(cfg->daemon.state_dir, gid, &l->store, err, sizeof(err));
	if (!ret && gid != (gid_t)-1)
		log_info("ledger: %s and %s/%s readable by group %s (gid %lu): sactl status and "
			 "check work for its members",
			 cfg->daemon.state_dir, cfg->daemon.state_dir, STORE_DB_NAME,
			 STORE_GROUP_NAME, (unsigned long)gid);
	if (ret) {
		log_err("ledger: cannot open %s/%s: %s", cfg->daemon.state_dir, STORE_DB_NAME,
			err[0] ? err : strerror(-ret));
		return ret;
	}
	ret = store_begin(l->store);
	if (!ret)
		ret = store_meta_set_int(l->store, STORE_META_PID, getpid());
	if (!ret)
		ret = store_meta_set_int(l->store, STORE_META_STARTED_AT, time(NULL));
	if (!ret)
		ret = store_meta_set(l->store, STORE_META_CONFIG, cfg->path);
	if (!ret)
		ret = store_meta_set(l->store, STORE_META_VERSION, SAKEYD_VERSION);
	if (!ret)
		ret = store_commit(l->store);
	l->schedules_stale = true;
	if (ret) {
		log_err("ledger: %s", store_errmsg(l->store));
		close_store(l, false);
		return ret;
	}
	ret = ckpt_start(l->store, &l->ckpt, err, sizeof(err));
	if (ret)
		log_warn("ledger: no checkpoint thread (%s): the loop's commits checkpoint "
			 "the WAL themselves",
			 err);
	return 0;
}

static void reopen_cb(uv_timer_t *t)
{
	struct ledger *l = t->data;

	if (open_store(l)) {
		uv_timer_start(&l->reopen, reopen_cb, REOPEN_MS, 0);
		return;
	}
	log_info("ledger: database works again; catching up with a resync");
	l->failed = false;
	l->port.kick(l->port.daemon, true, "ledger reopened");
}

static void prune_cb(uv_timer_t *t)
{
	struct ledger *l = t->data;
	struct store_prune_result r = { 0 };
	struct store *s;
	int ret;

	/* A reload may have changed event_retention. */
	uv_timer_set_repeat(t, prune_ms(config_of(l)));
	lq_flush(l);
	s = writable(l);
	if (!s)
		return;
	ret = store_prune(s, time(NULL), (int64_t)config_of(l)->daemon.event_retention, &r);
	if (ret)
		fail(l, ret, "prune");
	else if (r.events || r.rotations || r.sas)
		log_info("ledger: pruned %llu events, %llu rotations, %llu SA lives past retention",
			 (unsigned long long)r.events, (unsigned long long)r.rotations,
			 (unsigned long long)r.sas);
}

int ledger_new(const struct daemon_port *port, struct ledger **out)
{
	struct ledger *l = calloc(1, sizeof(*l));

	if (!l)
		return -ENOMEM;
	l->port = *port;
	l->observer = (struct daemon_observer){
		.sa_added = on_sa_added,
		.sa_changed = on_sa_changed,
		.sa_gone = on_sa_gone,
		.alert = on_alert,
		.rotation = on_rotation,
		.acquire = on_acquire,
		.resync_begin = on_resync_begin,
		.config_swap = on_config_swap,
		.synced = on_synced,
		.self = l,
	};
	uv_prepare_init(port->loop, &l->commit);
	uv_idle_init(port->loop, &l->more);
	uv_timer_init(port->loop, &l->reopen);
	uv_timer_init(port->loop, &l->prune);
	l->commit.data = l->reopen.data = l->prune.data = l->more.data = l;
	uv_prepare_start(&l->commit, commit_cb);
	*out = l;
	if (open_store(l))
		fail(l, -EIO, "open");
	uv_timer_start(&l->prune, prune_cb, 1000, prune_ms(config_of(l)));
	return 0;
}

struct daemon_observer *ledger_observer(struct ledger *l)
{
	return &l->observer;
}

void ledger_stop(struct ledger *l)
{
	if (!l)
		return;
	if (l->store) {
		/* Requests still in flight or not: what was learnt so far is kept. */
		l->syncing = false;
		commit(l);
	}
	if (l->store) {
		store_meta_set(l->store, STORE_META_PID, NULL);
		close_store(l, true);
	}
}

void ledger_free(struct ledger *l)
{
	if (!l)
		return;
	/*
	 * Nothing queued after ledger_stop, unless the store had failed: with
	 * the store closed (ledger_stop), writing drops it, copies freed.
	 */
	lq_flush(l);
	for (size_t i = 0; i < l->nblocks; i++)
		free(l->blocks[i]);
	free(l->blocks);
	free(l);
}
