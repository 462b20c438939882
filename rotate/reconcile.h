/* SPDX-License-Identifier: ISC */
/* The reconciler: ordered operations that turn the actual SA set into the desired one. */
#ifndef SAKEYD_ROTATE_RECONCILE_H
#define SAKEYD_ROTATE_RECONCILE_H

#include <stdbool.h>
#include <stddef.h>

#include "rotate/sa.h"

/* Operation kinds, in the order rot_reconcile emits them. */
enum rot_op_kind {
	/* Install op->sa (a desired SA). */
	ROT_OP_ADD = 0,
	/*
	 * Delete op->actual, then add op->sa (same identity): a staged inbound
	 * SA (future epoch, peer not meant to use it yet) whose attributes
	 * differ, e.g. after a secret or algorithm change.
	 */
	ROT_OP_REPLACE,
	/* Delete op->sa (an actual SA the link owns that is not desired). */
	ROT_OP_DELETE,
	/*
	 * No kernel action, report only: op->actual has the identity of the
	 * desired op->sa but other attributes, and it is in use (inbound of the
	 * current or previous epoch, or outbound), or it is not ours (foreign
	 * source address), or it duplicates an identity. Replacing it would
	 * drop traffic (an outbound SA cannot be added before the old one with
	 * the same identity is gone), so it stays until its planned removal:
	 * the next epoch's SAs carry the new attributes. The caller alerts.
	 */
	ROT_OP_CONFLICT,
};
#define ROT_OP_KINDS 4

struct rot_op {
	enum rot_op_kind kind;
	const struct rot_sa *sa;     /* ADD, REPLACE, CONFLICT: desired; DELETE: actual */
	const struct rot_sa *actual; /* REPLACE, CONFLICT: the actual SA; else NULL */
};

/* Result of rot_reconcile. Pointers borrow the caller's desired / actual arrays. */
struct rot_ops {
	struct rot_op *op; /* owned */
	size_t n;
	size_t count[ROT_OP_KINDS]; /* per kind */
};

/* Initialise an empty set of operations. */
void rot_ops_init(struct rot_ops *ops);
/* Free the operations; ops is empty afterwards. */
void rot_ops_fini(struct rot_ops *ops);
/* Operations that change the kernel (ADD + REPLACE + DELETE); 0 means "in sync". */
size_t rot_ops_changes(const struct rot_ops *ops);

/*
 * Diff desired (from rot_plan of some links; every SA names its link) against
 * actual (every SA in the kernel, managed or not) by identity (dst, spi,
 * proto), sorting both: O((n + m) log(n + m)).
 * - A desired SA missing from actual: ADD.
 * - An actual SA absent from desired and owned by one of the links named in
 *   desired (rot_sa_owned_by): DELETE. Anything else (hand-keyed SAs, other
 *   links) is left alone; so is every SA whose identity is desired.
 * - Same identity, other attributes (src, mode, alg, reqid if both set,
 *   key_fp if both set): REPLACE if the desired SA is staged and the actual
 *   one owned, else CONFLICT.
 * Ops are ordered ADD, REPLACE, DELETE, CONFLICT (by identity within a kind),
 * so every add precedes every delete. Applying them and reconciling again
 * yields no change (conflicts are reported again). ops is reset first.
 * Returns 0, -EINVAL (a desired SA without a link) or -ENOMEM (ops empty).
 */
int rot_reconcile(const struct rot_sa *desired, size_t n, const struct rot_sa *actual, size_t m,
		  struct rot_ops *ops);

/*
 * Whether err (0 or -errno) from applying one step of an operation counts as
 * success: an ADD failing with -EEXIST (already there) or a DELETE failing
 * with -ESRCH / -ENOENT (already gone, as PF_KEY and XFRM report it) leaves
 * the kernel as desired. kind is ROT_OP_ADD or ROT_OP_DELETE (the two steps
 * of a REPLACE are a DELETE then an ADD).
 */
bool rot_op_result_ok(enum rot_op_kind kind, int err);

/* Whether desired and actual (same identity) agree on every attribute reconcile compares. */
bool rot_sa_same_attrs(const struct rot_sa *desired, const struct rot_sa *actual);

#endif
