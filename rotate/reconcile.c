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

static int cmp_sa_ptr(const void *a, const void *b)
{
	const struct rot_sa *const *x = a, *const *y = b;
	int r = rot_sa_id_cmp(*x, *y);

	/* Ties (duplicates) in input order, so the result does not depend on qsort. */
	if (r == 0 && *x != *y)
		r = *x < *y ? -1 : 1;
	return r;
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
	const struct rot_sa **d = NULL, **a = NULL;
	struct rot_prefix_index links = { 0 };
	struct rot_op *tmp = NULL, *out = NULL;
	size_t ntmp = 0, i = 0, j = 0, pos[ROT_OP_KINDS];
	int ret;

	rot_ops_fini(ops);
	for (size_t k = 0; k < n; k++)
		if (!desired[k].link)
			return -EINVAL;

	d = calloc(n ? n : 1, sizeof(*d));
	a = calloc(m ? m : 1, sizeof(*a));
	tmp = calloc(n + m ? n + m : 1, sizeof(*tmp));
	if (!d || !a || !tmp || rot_prefix_index_init(&links, n)) {
		ret = -ENOMEM;
		goto cleanup;
	}
	for (size_t k = 0; k < n; k++) {
		d[k] = &desired[k];
		/* Cannot fail: room for n pairs. */
		rot_prefix_index_add(&links, desired[k].link->spi_prefix, desired[k].link);
	}
	for (size_t k = 0; k < m; k++)
		a[k] = &actual[k];
	qsort(d, n, sizeof(*d), cmp_sa_ptr);
	qsort(a, m, sizeof(*a), cmp_sa_ptr);

	while (i < n || j < m) {
		int c = i == n ? 1 : j == m ? -1 : rot_sa_id_cmp(d[i], a[j]);
		const struct rot_sa *want;

		if (c < 0) {
			emit(tmp, &ntmp, ROT_OP_ADD, d[i], NULL);
		} else if (c > 0) {
			if (owned(a[j], &links))
				emit(tmp, &ntmp, ROT_OP_DELETE, a[j], NULL);
			j++;
			continue;
		} else {
			want = d[i];
			if (rot_sa_same_attrs(want, a[j]))
				; /* in sync */
			else if (want->staged && owned(a[j], &links))
				emit(tmp, &ntmp, ROT_OP_REPLACE, want, a[j]);
			else
				emit(tmp, &ntmp, ROT_OP_CONFLICT, want, a[j]);
			j++;
			/* A kernel holds one SA per identity; if input has more, never delete. */
			for (; j < m && rot_sa_id_cmp(want, a[j]) == 0; j++)
				emit(tmp, &ntmp, ROT_OP_CONFLICT, want, a[j]);
		}
		/* Skip duplicate desired identities (two links colliding): add once. */
		want = d[i++];
		while (i < n && rot_sa_id_cmp(want, d[i]) == 0)
			i++;
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
	free(d);
	free(a);
	rot_prefix_index_fini(&links);
	free(tmp);
	return ret;
}
