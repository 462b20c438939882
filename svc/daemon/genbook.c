/* SPDX-License-Identifier: ISC */
/* The key schedule's records in the daemon: memory of the epochs around now, synced to generations.db. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rotate/keysched.h"
#include "store/addr.h"
#include "svc/base/log.h"
#include "svc/daemon/genbook.h"

struct staged_out {
	struct link_gens *g;
	int64_t epoch;
	uint8_t gen;
};

/*
 * Which (dst, spi) have a replay row in generations.db, and of which epoch:
 * a superset (rows written, staged or read; pruned ones stay until the SPI's
 * next row replaces them), so an SA with no row of its epoch is answered
 * without asking SQLite. A fresh start adds 17 inbound SAs per link, each a
 * query otherwise (a lock, the statement, an fstatat: ~0.15 ms in UML).
 * Bounded by the SPIs of the links: 256 per (link, direction).
 */
struct replay_key {
	uint32_t spi;
	bool used;
	int64_t epoch;
	char dst[GENS_ADDR_LEN];
};

struct genbook {
	struct gens *db; /* NULL after a failure, until reopened (ensure_db) */
	struct replay_key *rkey; /* open addressing, capacity a power of two */
	size_t nrkey, caprkey;
	struct genbook_stats stats;
	char dir[PATH_MAX];
	bool fresh;
	struct link_gens **link; /* sorted by key */
	size_t nlink, caplink;
	struct staged_out *staged;
	size_t nstaged, capstaged;
	bool in_tx;
};

void genbook_link_key(const struct conf_link *link, char out[GENS_LINK_LEN])
{
	char local[GENS_ADDR_LEN], remote[GENS_ADDR_LEN];

	store_addr_ntop(link->local.family, link->local.bytes, local, sizeof(local));
	store_addr_ntop(link->remote.family, link->remote.bytes, remote, sizeof(remote));
	/* 6 + 2 + 2 x 43 < GENS_LINK_LEN; an address literal is at most 39 characters here. */
	snprintf(out, GENS_LINK_LEN, "%06x %.43s %.43s", link->spi_prefix, local, remote);
}

static size_t rkey_hash(const char *dst, uint32_t spi)
{
	uint64_t h = 1469598103934665603ULL ^ spi; /* FNV-1a */

	for (const unsigned char *c = (const unsigned char *)dst; *c; c++)
		h = (h ^ *c) * 1099511628211ULL;
	return (size_t)(h ^ (h >> 29));
}

static struct replay_key *rkey_find(const struct genbook *b, const char *dst, uint32_t spi)
{
	if (!b->caprkey)
		return NULL;
	for (size_t i = rkey_hash(dst, spi) & (b->caprkey - 1);; i = (i + 1) & (b->caprkey - 1)) {
		struct replay_key *k = &b->rkey[i];

		if (!k->used)
			return NULL;
		if (k->spi == spi && !strcmp(k->dst, dst))
			return k;
	}
}

/* Remember that (dst, spi) has (or may have) a row of epoch. 0 or -ENOMEM. */
static int rkey_put(struct genbook *b, const char *dst, uint32_t spi, int64_t epoch)
{
	struct replay_key *k = rkey_find(b, dst, spi);
	size_t i;

	if (k) {
		k->epoch = epoch;
		return 0;
	}
	if (2 * (b->nrkey + 1) > b->caprkey) {
		size_t cap = b->caprkey ? 2 * b->caprkey : 256;
		struct replay_key *old = b->rkey, *n = calloc(cap, sizeof(*n));
		size_t oldcap = b->caprkey;

		if (!n)
			return -ENOMEM;
		b->rkey = n;
		b->caprkey = cap;
		b->nrkey = 0;
		for (i = 0; i < oldcap; i++)
			if (old[i].used)
				rkey_put(b, old[i].dst, old[i].spi, old[i].epoch);
		free(old);
	}
	for (i = rkey_hash(dst, spi) & (b->caprkey - 1); b->rkey[i].used;
	     i = (i + 1) & (b->caprkey - 1))
		;
	k = &b->rkey[i];
	k->used = true;
	k->spi = spi;
	k->epoch = epoch;
	snprintf(k->dst, sizeof(k->dst), "%s", dst);
	b->nrkey++;
	return 0;
}

static int load_replay(const struct gens_replay *r, void *arg)
{
	return rkey_put(arg, r->dst, r->spi, r->epoch);
}

static void gens_init(struct link_gens *g, const char *key)
{
	memset(g, 0, sizeof(*g));
	snprintf(g->key, sizeof(g->key), "%s", key);
	for (size_t i = 0; i < GENBOOK_EPOCHS; i++)
		g->out[i].gen = ROT_GEN_NONE;
}

/* Index of key in b->link, or where it would go (*found false). */
static size_t find(const struct genbook *b, const char *key, bool *found)
{
	size_t lo = 0, hi = b->nlink;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(b->link[mid]->key, key);

		if (c == 0) {
			*found = true;
			return mid;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*found = false;
	return lo;
}

static struct link_gens *get_or_make(struct genbook *b, const char *key, bool *made)
{
	bool found;
	size_t at = find(b, key, &found);
	struct link_gens *g;

	*made = false;
	if (found)
		return b->link[at];
	if (b->nlink == b->caplink) {
		size_t cap = b->caplink ? 2 * b->caplink : 16;
		struct link_gens **n = realloc(b->link, cap * sizeof(*n));

		if (!n)
			return NULL;
		b->link = n;
		b->caplink = cap;
	}
	if (!(g = malloc(sizeof(*g))))
		return NULL;
	gens_init(g, key);
	memmove(&b->link[at + 1], &b->link[at], (b->nlink - at) * sizeof(*b->link));
	b->link[at] = g;
	b->nlink++;
	*made = true;
	return g;
}

/* The slot of epoch e in a ring of GENBOOK_EPOCHS: its own, else an empty one, else the oldest. */
static size_t out_slot(struct link_gens *g, int64_t e)
{
	size_t best = 0;

	for (size_t i = 0; i < GENBOOK_EPOCHS; i++) {
		if (g->out[i].gen != ROT_GEN_NONE && g->out[i].epoch == e)
			return i;
		if (g->out[best].gen != ROT_GEN_NONE &&
		    (g->out[i].gen == ROT_GEN_NONE || g->out[i].epoch < g->out[best].epoch))
			best = i;
	}
	return best;
}

static void set_out(struct link_gens *g, int64_t e, uint8_t gen)
{
	size_t i = out_slot(g, e);

	g->out[i].epoch = e;
	g->out[i].gen = gen;
}

static size_t in_slot(struct link_gens *g, int64_t k)
{
	size_t best = 0;

	for (size_t i = 0; i < GENBOOK_EPOCHS; i++) {
		if (g->in_used[i] && g->in[i].epoch == k)
			return i;
		if (g->in_used[best] && (!g->in_used[i] || g->in[i].epoch < g->in[best].epoch))
			best = i;
	}
	return best;
}

/* prev_until is kept as the instant of promotion until the view adds the link's grace. */
static void set_in(struct link_gens *g, int64_t k, uint8_t cur, uint8_t prev, int64_t since)
{
	size_t i = in_slot(g, k);

	g->in_used[i] = true;
	g->in[i] = (struct rot_gen_in){ .epoch = k, .cur = cur, .prev = prev, .prev_until = since };
}

static int load_link(const struct gens_link *r, void *arg)
{
	struct genbook *b = arg;
	bool made;
	struct link_gens *g = get_or_make(b, r->link, &made);

	if (!g)
		return -ENOMEM;
	g->stored = true;
	g->first_epoch = r->first_epoch;
	g->fresh = r->fresh;
	return 0;
}

static int load_out(const struct gens_out *r, void *arg)
{
	struct genbook *b = arg;
	bool made;
	struct link_gens *g = get_or_make(b, r->link, &made);

	if (!g)
		return -ENOMEM;
	set_out(g, r->epoch, r->gen);
	return 0;
}

static int load_in(const struct gens_in *r, void *arg)
{
	struct genbook *b = arg;
	bool made;
	struct link_gens *g = get_or_make(b, r->link, &made);

	if (!g)
		return -ENOMEM;
	set_in(g, r->epoch, r->gen, r->prev, r->since);
	return 0;
}

int genbook_open(const char *state_dir, struct genbook **out, char *err, size_t err_size)
{
	struct genbook *b = calloc(1, sizeof(*b));
	struct gens_visit v = { .link = load_link, .out = load_out, .in = load_in,
				.replay = load_replay };
	int ret;

	*out = NULL;
	if (!b)
		return -ENOMEM;
	snprintf(b->dir, sizeof(b->dir), "%s", state_dir);
	ret = gens_open(state_dir, &b->db, &b->fresh, err, err_size);
	if (ret) {
		free(b);
		return ret;
	}
	v.arg = b;
	ret = gens_load(b->db, &v);
	if (ret) {
		snprintf(err, err_size, "reading %s/%s: %s", state_dir, GENS_DB_NAME,
			 ret == -ENOMEM ? "out of memory" : gens_errmsg(b->db));
		genbook_close(b);
		return ret;
	}
	*out = b;
	return 0;
}

void genbook_close(struct genbook *b)
{
	if (!b)
		return;
	if (b->in_tx && b->db)
		gens_rollback(b->db);
	gens_close(b->db);
	for (size_t i = 0; i < b->nlink; i++)
		free(b->link[i]);
	free(b->link);
	free(b->staged);
	free(b->rkey);
	free(b);
}

bool genbook_was_fresh(const struct genbook *b)
{
	return b->fresh;
}

struct link_gens *genbook_link(struct genbook *b, const struct conf_link *link, int64_t epoch)
{
	char key[GENS_LINK_LEN];
	struct link_gens *g;
	bool made;

	genbook_link_key(link, key);
	g = get_or_make(b, key, &made);
	if (g)
		g->grace = link->grace;
	if (g && made) {
		/* New to the records: lost ones if the database was (DESIGN.md: generation 15). */
		g->first_epoch = epoch;
		g->fresh = b->fresh;
	}
	return g;
}

/* Whether the records of g say nothing of epoch e because they were lost (or new). */
static bool lost_for(const struct link_gens *g, int64_t e)
{
	return g->fresh && e <= g->first_epoch;
}

struct rot_gen_in genbook_in(const struct link_gens *g, int64_t k)
{
	for (size_t i = 0; i < GENBOOK_EPOCHS; i++) {
		if (g->in_used[i] && g->in[i].epoch == k) {
			struct rot_gen_in in = g->in[i];

			in.prev_until += (int64_t)g->grace; /* kept as the instant of promotion */
			return in;
		}
	}
	if (lost_for(g, k))
		return (struct rot_gen_in){ .epoch = k, .cur = ROT_GEN_NONE, .prev = ROT_GEN_NONE };
	return ROT_GEN_IN_DEFAULT(k);
}

static uint8_t out_of(const struct link_gens *g, int64_t e)
{
	for (size_t i = 0; i < GENBOOK_EPOCHS; i++)
		if (g->out[i].gen != ROT_GEN_NONE && g->out[i].epoch == e)
			return g->out[i].gen;
	return ROT_GEN_NONE;
}

void genbook_view(const struct link_gens *g, int64_t e, uint8_t held, struct rot_gen_view *v,
		  bool *fresh_out)
{
	int next;

	v->nin = 3;
	for (size_t i = 0; i < 3; i++)
		v->in[i] = genbook_in(g, e - 1 + (int64_t)i);
	*fresh_out = false;
	if (held <= ROT_GEN_MAX) {
		v->out = held;
		return;
	}
	next = rot_gen_next(out_of(g, e), lost_for(g, e));
	v->out = next < 0 ? ROT_GEN_NONE : (uint8_t)next;
	*fresh_out = next >= 0;
}

static void drop_db(struct genbook *b)
{
	if (b->db && b->in_tx)
		gens_rollback(b->db);
	gens_close(b->db);
	b->db = NULL;
	b->in_tx = false;
	b->nstaged = 0;
}

/*
 * Write every record the memory holds into a database just (re)opened: a
 * file that was deleted, replaced or repaired has lost some or all of them,
 * and the memory holds the furthest generation of each. 0 or -errno.
 */
static int rewrite(struct genbook *b)
{
	int ret = gens_begin(b->db);

	for (size_t i = 0; !ret && i < b->nlink; i++) {
		struct link_gens *g = b->link[i];
		struct gens_link l = { .first_epoch = g->first_epoch, .fresh = g->fresh };

		if (!g->stored)
			continue;
		snprintf(l.link, sizeof(l.link), "%s", g->key);
		ret = gens_put_link(b->db, &l);
		for (size_t k = 0; !ret && k < GENBOOK_EPOCHS; k++) {
			struct gens_out o = { .epoch = g->out[k].epoch, .gen = g->out[k].gen };
			struct gens_in in = { .epoch = g->in[k].epoch, .gen = g->in[k].cur,
					      .prev = g->in[k].prev, .since = g->in[k].prev_until };

			snprintf(o.link, sizeof(o.link), "%s", g->key);
			snprintf(in.link, sizeof(in.link), "%s", g->key);
			if (g->out[k].gen != ROT_GEN_NONE)
				ret = gens_put_out(b->db, &o);
			if (!ret && g->in_used[k])
				ret = gens_put_in(b->db, &in);
		}
	}
	if (!ret)
		ret = gens_commit(b->db);
	else
		gens_rollback(b->db);
	return ret;
}

/* The database, reopened if it failed or its file was replaced; -errno if it cannot be. */
static int ensure_db(struct genbook *b)
{
	char err[GENS_ERRMSG_LEN];
	bool fresh;
	int ret;

	if (b->db && !b->in_tx && (b->stats.file_checks++, gens_file_replaced(b->db))) {
		log_warn("%s/%s was deleted or replaced: opening it again and writing the "
			 "records sakeyd holds", b->dir, GENS_DB_NAME);
		drop_db(b);
	}
	if (b->db)
		return 0;
	ret = gens_open(b->dir, &b->db, &fresh, err, sizeof(err));
	if (ret) {
		b->db = NULL;
		return ret;
	}
	/* A file put back (a restored copy) may hold replay rows the index has not seen. */
	ret = gens_load(b->db, &(struct gens_visit){ .replay = load_replay, .arg = b });
	if (!ret)
		ret = rewrite(b);
	if (ret) {
		log_err("%s/%s: writing the records again: %s", b->dir, GENS_DB_NAME,
			gens_errmsg(b->db));
		drop_db(b);
		return ret;
	}
	log_info("%s/%s opened again; the records sakeyd holds are written", b->dir,
		 GENS_DB_NAME);
	return 0;
}

static int begin(struct genbook *b)
{
	int ret;

	if (b->in_tx)
		return 0;
	if ((ret = ensure_db(b)))
		return ret;
	ret = gens_begin(b->db);
	if (!ret)
		b->in_tx = true;
	return ret;
}

static int put_link(struct genbook *b, struct link_gens *g, int64_t now)
{
	struct gens_link r = { .first_epoch = g->first_epoch, .fresh = g->fresh, .at = now };

	if (g->stored)
		return 0;
	snprintf(r.link, sizeof(r.link), "%s", g->key);
	return gens_put_link(b->db, &r);
}

int genbook_stage_out(struct genbook *b, struct link_gens *g, int64_t e, uint8_t gen, int64_t now)
{
	struct gens_out r = { .epoch = e, .gen = gen, .at = now };
	int ret;

	if (b->nstaged == b->capstaged) {
		size_t cap = b->capstaged ? 2 * b->capstaged : 64;
		struct staged_out *n = realloc(b->staged, cap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		b->staged = n;
		b->capstaged = cap;
	}
	snprintf(r.link, sizeof(r.link), "%s", g->key);
	if ((ret = begin(b)) || (ret = put_link(b, g, now)) || (ret = gens_put_out(b->db, &r)))
		return ret;
	/* What the memory no longer holds goes from the file too (the ring keeps 4 epochs). */
	if (out_of(g, e) == ROT_GEN_NONE) {
		int n = gens_prune(b->db, g->key, e - (GENBOOK_EPOCHS - 1));

		if (n < 0)
			return n;
	}
	b->staged[b->nstaged++] = (struct staged_out){ .g = g, .epoch = e, .gen = gen };
	return 0;
}

int genbook_commit(struct genbook *b)
{
	int ret;

	if (!b->in_tx)
		return 0;
	ret = gens_commit(b->db);
	b->in_tx = false;
	if (ret) {
		/* Opened again at the next write: a repaired or replaced file recovers. */
		log_err("%s/%s: %s", b->dir, GENS_DB_NAME, gens_errmsg(b->db));
		drop_db(b);
		return ret;
	}
	for (size_t i = 0; i < b->nstaged; i++) {
		b->staged[i].g->stored = true;
		set_out(b->staged[i].g, b->staged[i].epoch, b->staged[i].gen);
	}
	b->nstaged = 0;
	return 0;
}

void genbook_rollback(struct genbook *b)
{
	if (b->in_tx && b->db)
		gens_rollback(b->db);
	b->in_tx = false;
	b->nstaged = 0;
}

int genbook_promote(struct genbook *b, struct link_gens *g, int64_t k, uint8_t s, int64_t now,
		    uint8_t *was)
{
	struct rot_gen_in cur = genbook_in(g, k);
	struct gens_in r = { .epoch = k, .gen = s, .since = now };
	int ret;

	if (was)
		*was = cur.cur;
	if (!rot_gen_supersedes(cur.cur, s))
		return 0;
	r.prev = cur.cur;
	snprintf(r.link, sizeof(r.link), "%s", g->key);
	if ((ret = begin(b)) || (ret = put_link(b, g, now)) || (ret = gens_put_in(b->db, &r)))
		return ret;
	/*
	 * In memory at once, on disk with the next commit: a receiver's record
	 * only decides which spares it holds (a lost one costs spares, never a
	 * reused key), and one sync per batch, not per link, keeps a first
	 * start of 10,000 links from syncing 10,000 times.
	 */
	set_in(g, k, s, cur.cur, now);
	return 1;
}

bool genbook_pending(const struct genbook *b)
{
	return b->in_tx;
}

int genbook_stage_replay(struct genbook *b, const struct link_gens *g, const struct rot_sa *sa,
			 const struct kern_replay *r, int64_t now)
{
	struct gens_replay row = { .epoch = sa->epoch, .gen = sa->gen, .spi = sa->spi, .at = now };
	int ret;

	snprintf(row.link, sizeof(row.link), "%s", g->key);
	store_addr_ntop(sa->dst.family, sa->dst.bytes, row.dst, sizeof(row.dst));
	if (r) {
		row.window = r->window;
		row.seq = r->seq;
		row.seq_hi = r->seq_hi;
		row.bmp_len = r->bmp_len <= KERN_REPLAY_BMP_MAX ? r->bmp_len : 0;
		memcpy(row.bmp, r->bmp, row.bmp_len * sizeof(row.bmp[0]));
	}
	/* In the index first: a row staged and rolled back leaves a key that costs one query. */
	if ((ret = rkey_put(b, row.dst, row.spi, row.epoch)) || (ret = begin(b)))
		return ret;
	return gens_put_replay(b->db, &row);
}

int genbook_replay_of(struct genbook *b, const struct rot_sa *sa, struct kern_replay *r)
{
	const struct replay_key *key;
	struct gens_replay row;
	char dst[GENS_ADDR_LEN];
	int ret;

	store_addr_ntop(sa->dst.family, sa->dst.bytes, dst, sizeof(dst));
	b->stats.replay_lookups++;
	key = rkey_find(b, dst, sa->spi);
	if (!key || key->epoch != sa->epoch)
		return 0; /* no row, or the SPI's last use 16 epochs ago */
	if ((ret = ensure_db(b)))
		return ret;
	b->stats.db_reads++;
	ret = gens_get_replay(b->db, dst, sa->spi, &row);
	if (ret == -ENOENT)
		return 0;
	if (ret)
		return ret;
	if (row.epoch != sa->epoch || row.bmp_len > KERN_REPLAY_BMP_MAX)
		return 0; /* the SPI's last use, 16 epochs ago */
	memset(r, 0, sizeof(*r));
	r->window = row.window;
	r->seq = row.seq;
	r->seq_hi = row.seq_hi;
	r->bmp_len = row.bmp_len;
	memcpy(r->bmp, row.bmp, row.bmp_len * sizeof(row.bmp[0]));
	return 1;
}

int genbook_check_file(struct genbook *b)
{
	return b->in_tx ? 0 : ensure_db(b);
}

struct genbook_stats genbook_stats(const struct genbook *b)
{
	return b->stats;
}
