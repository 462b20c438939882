/* SPDX-License-Identifier: ISC */
/* The make-before-break ordering of a pass: the diff's adds first, each link's deletes apart. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "rotate/pass.h"
#include "rotate/prefixidx.h"

void rot_pass_init(struct rot_pass *pass)
{
	memset(pass, 0, sizeof(*pass));
	rot_ops_init(&pass->ops);
}

void rot_pass_fini(struct rot_pass *pass)
{
	rot_ops_fini(&pass->ops);
	free(pass->make);
	free(pass->brk);
	free(pass->link);
	rot_pass_init(pass);
}

/*
 * Index of link's entry in pass->link, made if new. The array and index
 * (spi_prefix -> entry) have room for every link counted beforehand: adding
 * cannot fail.
 */
static size_t link_entry(struct rot_pass *pass, struct rot_prefix_index *index,
			 const struct conf_link *link)
{
	const struct rot_pass_link *l;
	size_t cursor = 0;

	while ((l = rot_prefix_index_next(index, link->spi_prefix, &cursor)))
		if (l->link == link)
			return (size_t)(l - pass->link);
	pass->link[pass->nlink].link = link;
	rot_prefix_index_add(index, link->spi_prefix, &pass->link[pass->nlink]);
	return pass->nlink++;
}

static void step(struct rot_step *to, size_t *n, enum rot_op_kind kind, const struct rot_sa *sa,
		 size_t link)
{
	to[(*n)++] = (struct rot_step){ .kind = kind, .sa = sa, .link = link };
}

int rot_pass_order(const struct rot_sa *planned, size_t n, const struct rot_sa *actual, size_t m,
		   struct rot_pass *pass)
{
	struct rot_prefix_index index = { 0 };
	struct rot_step *deletes = NULL;
	size_t runs = 0, nadd, nreplace, ndelete, ndeletes = 0;
	int ret;

	rot_pass_fini(pass);
	ret = rot_reconcile(planned, n, actual, m, &pass->ops);
	if (ret)
		return ret;
	nadd = pass->ops.count[ROT_OP_ADD];
	nreplace = pass->ops.count[ROT_OP_REPLACE];
	ndelete = pass->ops.count[ROT_OP_DELETE];
	for (size_t i = 0; i < n; i++)
		if (i == 0 || planned[i].link != planned[i - 1].link)
			runs++;
	pass->link = calloc(runs + ndelete + 1, sizeof(*pass->link));
	pass->make = calloc(nadd + 2 * nreplace + 1, sizeof(*pass->make));
	pass->brk = calloc(ndelete + 1, sizeof(*pass->brk));
	deletes = calloc(ndelete + 1, sizeof(*deletes));
	if (!pass->link || !pass->make || !pass->brk || !deletes ||
	    rot_prefix_index_init(&index, runs + ndelete)) {
		ret = -ENOMEM;
		goto cleanup;
	}
	for (size_t i = 0; i < n; i++)
		if (i == 0 || planned[i].link != planned[i - 1].link)
			link_entry(pass, &index, planned[i].link);

	/* Ops come ADD, REPLACE, DELETE, CONFLICT: every make precedes every break. */
	for (size_t i = 0; i < pass->ops.n; i++) {
		const struct rot_op *op = &pass->ops.op[i];
		size_t k;

		switch (op->kind) {
		case ROT_OP_ADD:
			k = link_entry(pass, &index, op->sa->link);
			step(pass->make, &pass->nmake, ROT_OP_ADD, op->sa, k);
			pass->link[k].makes++;
			break;
		case ROT_OP_REPLACE:
			/* One identity: the old SA must be gone before the new one goes in. */
			k = link_entry(pass, &index, op->sa->link);
			step(pass->make, &pass->nmake, ROT_OP_DELETE, op->actual, k);
			step(pass->make, &pass->nmake, ROT_OP_REPLACE, op->sa, k);
			pass->link[k].makes += 2;
			break;
		case ROT_OP_DELETE:
			if (!op->sa->link)
				break;
			k = link_entry(pass, &index, op->sa->link);
			step(deletes, &ndeletes, ROT_OP_DELETE, op->sa, k);
			pass->link[k].breaks++;
			break;
		case ROT_OP_CONFLICT:
			break;
		}
	}

	/* The breaks grouped by link, each link's last identity first. */
	for (size_t k = 0, at = 0; k < pass->nlink; k++) {
		pass->link[k].first_break = at;
		at += pass->link[k].breaks;
		pass->link[k].breaks = 0;
	}
	for (size_t i = ndeletes; i-- > 0;) {
		struct rot_pass_link *l = &pass->link[deletes[i].link];

		pass->brk[l->first_break + l->breaks++] = deletes[i];
	}
	pass->nbrk = ndeletes;
	pass->nconflict = pass->ops.count[ROT_OP_CONFLICT];
	pass->conflict = pass->nconflict ? &pass->ops.op[pass->ops.n - pass->nconflict] : NULL;
	ret = 0;
cleanup:
	if (ret)
		rot_pass_fini(pass);
	rot_prefix_index_fini(&index);
	free(deletes);
	return ret;
}
