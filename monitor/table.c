/* SPDX-License-Identifier: ISC */
/* The SA table: every SA the kernel holds, managed or not, by identity (dst, spi, proto). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "monitor/table.h"

/* Open addressing with linear probing; slots hold entry pointers, tombstones mark deletions. */
#define TOMBSTONE ((struct mon_sa *)1)

struct mon_table {
	struct mon_sa **slot;
	/*
	 * Per slot, the high half of its entry's hash: a probe compares it
	 * before reading the entry, one cache miss fewer per colliding probe
	 * (the lookups of a 30,000-SA pass were 3 % of the daemon's CPU).
	 */
	uint32_t *tag;
	size_t cap;   /* power of two */
	size_t count; /* live entries */
	size_t used;  /* live + tombstones */
};

static uint64_t id_hash(const struct rot_sa *sa)
{
	/* FNV-1a over the identity. */
	uint64_t h = 1469598103934665603ull;
	size_t len = rot_addr_len(&sa->dst);
	uint8_t buf[4 + 1 + 1 + 16];

	memcpy(buf, &sa->spi, 4);
	buf[4] = sa->proto;
	buf[5] = sa->dst.family;
	memcpy(buf + 6, sa->dst.bytes, len);
	for (size_t i = 0; i < 6 + len; i++) {
		h ^= buf[i];
		h *= 1099511628211ull;
	}
	return h ^ (h >> 29);
}

static bool same_id(const struct rot_sa *a, const struct rot_sa *b)
{
	return rot_sa_id_cmp(a, b) == 0;
}

static uint32_t tag_of(uint64_t hash)
{
	return (uint32_t)(hash >> 32);
}

/* Slots and tags for cap entries, all empty; -ENOMEM leaves t as it was. */
static int alloc_slots(struct mon_table *t, size_t cap)
{
	struct mon_sa **slot = calloc(cap, sizeof(*slot));
	uint32_t *tag = calloc(cap, sizeof(*tag));

	if (!slot || !tag) {
		free(slot);
		free(tag);
		return -ENOMEM;
	}
	t->slot = slot;
	t->tag = tag;
	t->cap = cap;
	return 0;
}

struct mon_table *mon_table_new(void)
{
	struct mon_table *t = calloc(1, sizeof(*t));

	if (!t)
		return NULL;
	if (alloc_slots(t, 64)) {
		free(t);
		return NULL;
	}
	return t;
}

void mon_table_free(struct mon_table *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->cap; i++)
		if (t->slot[i] && t->slot[i] != TOMBSTONE)
			free(t->slot[i]);
	free(t->slot);
	free(t->tag);
	free(t);
}

static size_t find(const struct mon_table *t, const struct rot_sa *id, uint64_t hash, bool *found)
{
	size_t mask = t->cap - 1, i = hash & mask, first_free = SIZE_MAX;
	uint32_t tag = tag_of(hash);

	for (;;) {
		struct mon_sa *e = t->slot[i];

		if (!e) {
			*found = false;
			return first_free != SIZE_MAX ? first_free : i;
		}
		if (e == TOMBSTONE) {
			if (first_free == SIZE_MAX)
				first_free = i;
		} else if (t->tag[i] == tag && same_id(&e->sa, id)) {
			*found = true;
			return i;
		}
		i = (i + 1) & mask;
	}
}

static int grow(struct mon_table *t)
{
	size_t cap = t->count * 4 > t->cap ? t->cap * 2 : t->cap;
	struct mon_sa **old = t->slot;
	uint32_t *old_tag = t->tag;
	size_t old_cap = t->cap;

	if (alloc_slots(t, cap))
		return -ENOMEM;
	t->used = t->count;
	for (size_t i = 0; i < old_cap; i++) {
		bool found;
		uint64_t hash;
		size_t j;

		if (!old[i] || old[i] == TOMBSTONE)
			continue;
		hash = id_hash(&old[i]->sa);
		j = find(t, &old[i]->sa, hash, &found);
		t->slot[j] = old[i];
		t->tag[j] = tag_of(hash);
	}
	free(old);
	free(old_tag);
	return 0;
}

struct mon_sa *mon_table_get(struct mon_table *t, const struct rot_sa *id)
{
	bool found;
	size_t i = find(t, id, id_hash(id), &found);

	return found ? t->slot[i] : NULL;
}

struct mon_sa *mon_table_put(struct mon_table *t, const struct rot_sa *sa, bool *created)
{
	uint64_t hash = id_hash(sa);
	struct mon_sa *e;
	bool found;
	size_t i;

	/* Keep the load (with tombstones) under 1/2 so probes stay short. */
	if ((t->used + 1) * 2 > t->cap && grow(t))
		return NULL;
	i = find(t, sa, hash, &found);
	if (found) {
		*created = false;
		return t->slot[i];
	}
	e = calloc(1, sizeof(*e));
	if (!e)
		return NULL;
	e->sa = *sa;
	if (!t->slot[i])
		t->used++;
	t->slot[i] = e;
	t->tag[i] = tag_of(hash);
	t->count++;
	*created = true;
	return e;
}

bool mon_table_del(struct mon_table *t, const struct rot_sa *id)
{
	bool found;
	size_t i = find(t, id, id_hash(id), &found);

	if (!found)
		return false;
	free(t->slot[i]);
	t->slot[i] = TOMBSTONE;
	t->count--;
	return true;
}

size_t mon_table_count(const struct mon_table *t)
{
	return t->count;
}

struct mon_sa *mon_table_next(struct mon_table *t, size_t *cursor)
{
	while (*cursor < t->cap) {
		struct mon_sa *e = t->slot[(*cursor)++];

		if (e && e != TOMBSTONE)
			return e;
	}
	return NULL;
}

static int64_t earlier(int64_t a, int64_t b)
{
	if (!a)
		return b;
	if (!b)
		return a;
	return a < b ? a : b;
}

static int64_t expires_at(const struct mon_sa *e, const struct mon_limits *l)
{
	int64_t by_add = l->addtime && e->added_at ? e->added_at + (int64_t)l->addtime : 0;
	int64_t by_use = l->usetime && e->first_used_at ? e->first_used_at + (int64_t)l->usetime : 0;

	return earlier(by_add, by_use);
}

int64_t mon_sa_soft_expires_at(const struct mon_sa *e)
{
	return expires_at(e, &e->soft);
}

int64_t mon_sa_hard_expires_at(const struct mon_sa *e)
{
	return expires_at(e, &e->hard);
}
