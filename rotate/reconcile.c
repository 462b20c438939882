/* SPDX-License-Identifier: ISC */
/* The reconciler: diff desired and actual SAs by identity, emit adds before deletes. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rotate/prefixidx.h"
#include "rotate/reconcile.h"

void rot_ops_init(struct rot_ops *ops)
{
	memset(ops, 0, sizeof(*ops));
}

void rot_ops_fini(struct rot_ops *ops)
{
	free(ops->op);
	rot_ops_init(ops);
}

size_t rot_ops_changes(const struct rot_ops *ops)
{
	return ops->count[ROT_OP_ADD] + ops->count[ROT_OP_REPLACE] + ops->count[ROT_OP_DELETE];
}

bool rot_op_result_ok(enum rot_op_kind kind, int err)
{
	if (err == 0)
		return true;
	if (kind == ROT_OP_ADD)
		return err == -EEXIST;
	if (kind == ROT_OP_DELETE)
		return err == -ESRCH || err == -ENOENT;
	return false;
}

bool rot_sa_same_attrs(const struct rot_sa *desired, const struct rot_sa *actual)
{
	if (!rot_addr_equal(&desired->src, &actual->src) || desired->mode != actual->mode)
		return false;
	if (desired->alg != actual->alg &&
	    (!desired->alg || !actual->alg || strcmp(desired->alg->name, actual->alg->name) != 0))
		return false;
	if (desired->reqid && actual->reqid && desired->reqid != actual->reqid)
		return false;
	if (desired->key_fp[0] && actual->key_fp[0] && strcmp(desired->key_fp, actual->key_fp) != 0)
		return false;
	return true;
}

/*
 * An SA's identity packed so that comparing (k0, k1, k2) as unsigned
 * integers orders like rot_sa_id_cmp: family, address bytes (big-endian,
 * as memcmp reads them; bytes past the family's length zero), spi, proto.
 * Sorting these in one array, not pointers compared through rot_sa_id_cmp,
 * keeps the sort in cache: it was 5 % of the daemon's CPU at 30,000 SAs.
 */
struct id_key {
	uint64_t k0, k1, k2;
	size_t index; /* in the caller's array: ties (duplicates) keep input order */
};

static void id_key_of(const struct rot_sa *sa, size_t index, struct id_key *k)
{
	uint8_t b[16] = { 0 };

	memcpy(b, sa->dst.bytes, rot_addr_len(&sa->dst));
	k->k0 = (uint64_t)sa->dst.family << 48;
	for (int i = 0; i < 6; i++)
		k->k0 |= (uint64_t)b[i] << (40 - 8 * i);
	k->k1 = 0;
	for (int i = 6; i < 14; i++)
		k->k1 = k->k1 << 8 | b[i];
	k->k2 = (uint64_t)b[14] << 56 | (uint64_t)b[15] << 48 | (uint64_t)sa->spi << 16 |
		(uint64_t)sa->proto << 8;
	k->index = index;
}

/* Identity order of two keys, ignoring their index: <0, 0, >0. */
static int id_key_cmp(const struct id_key *x, const struct id_key *y)
{
	if (x->k0 != y->k0)
		return x->k0 < y->k0 ? -1 : 1;
	if (x->k1 != y->k1)
		return x->k1 < y->k1 ? -1 : 1;
	if (x->k2 != y->k2)
		return x->k2 < y->k2 ? -1 : 1;
	return 0;
}

static bool key_less(const struct id_key *x, const struct id_key *y)
{
	int r = id_key_cmp(x, y);

	return r < 0 || (r == 0 && x->index < y->index);
}

/*
 * Merge sort of k[0..n) with tmp[0..n) as scratch, insertion sort below 16:
 * glibc's qsort called back and copied 32-byte elements with memcpy (its
 * msort was still 4 % of the daemon's CPU per pass). Keys are distinct
 * (index), so the order is fully defined.
 */
static void sort_keys(struct id_key *k, struct id_key *tmp, size_t n)
{
	size_t half = n / 2, i = 0, j = half, o = 0;

	if (n < 16) {
		for (size_t a = 1; a < n; a++) {
			struct id_key x = k[a];
			size_t b = a;

			for (; b > 0 && key_less(&x, &k[b - 1]); b--)
				k[b] = k[b - 1];
			k[b] = x;
		}
		return;
	}
	sort_keys(k, tmp, half);
	sort_keys(k + half, tmp, n - half);
	if (!key_less(&k[half], &k[half - 1]))
		return; /* already in order: a planned list often is */
	while (i < half && j < n)
		tmp[o++] = key_less(&k[j], &k[i]) ? k[j++] : k[i++];
	while (i < half)
		tmp[o++] = k[i++];
	/* What is left of the second half is in place already. */
	memcpy(k, tmp, o * sizeof(*k));
}

/* Keys of sa[0..n) in identity order; NULL if out of memory. */
static struct id_key *sorted_keys(const struct rot_sa *sa, size_t n)
{
	/* Not zeroed: every key is written below, tmp is the merge's scratch. */
	struct id_key *k = malloc((n ? n : 1) * sizeof(*k));
	struct id_key *tmp = malloc((n ? n : 1) * sizeof(*tmp));

	if (!k || !tmp) {
		free(k);
		free(tmp);
		return NULL;
	}
	for (size_t i = 0; i < n; i++)
		id_key_of(&sa[i], i, &k[i]);
	sort_keys(k, tmp, n);
	free(tmp);
	return k;
}

/* Whether sa belongs to one of the links in index (by spi_prefix). */
static bool owned(const struct rot_sa *sa, const struct rot_prefix_index *links)
{
	const struct conf_link *link;
	size_t cursor = 0;

	/* Prefixes are unique per host, but a misconfiguration must not hide an owner. */
	while ((link = rot_prefix_index_next(links, sa->spi >> 8, &cursor)))
		if (rot_sa_owned_by(sa, link, NULL))
			return true;
	return false;
}

static void emit(struct rot_op *tmp, size_t *n, enum rot_op_kind kind, const struct rot_sa *sa,
		 const struct rot_sa *actual)
{
	tmp[*n].kind = kind;
	tmp[*n].sa = sa;
	tmp[*n].actual = actual;
	(*n)++;
}

int rot_reconcile(const struct rot_sa *desired, size_t n, const struct rot_sa *actual, size_t m,
		  struct rot_ops *ops)
{
	struct id_key *dk = NULL, *ak = NULL;
	struct rot_prefix_index links = { 0 };
	struct rot_op *tmp = NULL, *out = NULL;
	size_t ntmp = 0, i = 0, j = 0, pos[ROT_OP_KINDS];
	int ret;

	rot_ops_fini(ops);
	for (size_t k = 0; k < n; k++)
		if (!desired[k].link)
			return -EINVAL;

	dk = sorted_keys(desired, n);
	ak = sorted_keys(actual, m);
	tmp = calloc(n + m ? n + m : 1, sizeof(*tmp));
	if (!dk || !ak || !tmp || rot_prefix_index_init(&links, n)) {
		ret = -ENOMEM;
		goto cleanup;
	}
	/*
	 * Cannot fail: room for n pairs. A plan lists each link's SAs together:
	 * one add per run of them, not a probe of the index (a cache miss each)
	 * for every planned SA, 30,000 of them for 10,000 links.
	 */
	for (size_t k = 0; k < n; k++)
		if (k == 0 || desired[k].link != desired[k - 1].link)
			rot_prefix_index_add(&links, desired[k].link->spi_prefix, desired[k].link);

	while (i < n || j < m) {
		int c = i == n ? 1 : j == m ? -1 : id_key_cmp(&dk[i], &ak[j]);
		const struct rot_sa *want, *have;

		if (c < 0) {
			emit(tmp, &ntmp, ROT_OP_ADD, &desired[dk[i].index], NULL);
		} else if (c > 0) {
			have = &actual[ak[j].index];
			if (owned(have, &links))
				emit(tmp, &ntmp, ROT_OP_DELETE, have, NULL);
			j++;
			continue;
		} else {
			want = &desired[dk[i].index];
			have = &actual[ak[j].index];
			if (rot_sa_same_attrs(want, have))
				; /* in sync */
			else if (want->staged && owned(have, &links))
				emit(tmp, &ntmp, ROT_OP_REPLACE, want, have);
			else
				emit(tmp, &ntmp, ROT_OP_CONFLICT, want, have);
			j++;
			/* A kernel holds one SA per identity; if input has more, never delete. */
			for (; j < m && id_key_cmp(&dk[i], &ak[j]) == 0; j++)
				emit(tmp, &ntmp, ROT_OP_CONFLICT, want, &actual[ak[j].index]);
		}
		/* Skip duplicate desired identities (two links colliding): add once. */
		for (i++; i < n && id_key_cmp(&dk[i - 1], &dk[i]) == 0; i++)
			;
	}

	/* Stable counting sort by kind: adds, replaces, deletes, conflicts. */
	out = calloc(ntmp ? ntmp : 1, sizeof(*out));
	if (!out) {
		ret = -ENOMEM;
		goto cleanup;
	}
	for (size_t k = 0; k < ntmp; k++)
		ops->count[tmp[k].kind]++;
	pos[0] = 0;
	for (size_t k = 1; k < ROT_OP_KINDS; k++)
		pos[k] = pos[k - 1] + ops->count[k - 1];
	for (size_t k = 0; k < ntmp; k++)
		out[pos[tmp[k].kind]++] = tmp[k];
	ops->op = out;
	ops->n = ntmp;
	ret = 0;
cleanup:
	if (ret)
		rot_ops_fini(ops);
	free(dk);
	free(ak);
	rot_prefix_index_fini(&links);
	free(tmp);
	return ret;
}
