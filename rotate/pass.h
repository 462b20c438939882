/* SPDX-License-Identifier: ISC */
/* The make-before-break ordering of a pass: which kernel requests go first and which wait. */
#ifndef SAKEYD_ROTATE_PASS_H
#define SAKEYD_ROTATE_PASS_H

#include <stddef.h>

#include "rotate/reconcile.h"
#include "rotate/sa.h"

/* One kernel request of a pass. */
struct rot_step {
	/*
	 * ROT_OP_ADD: add sa. ROT_OP_DELETE: delete sa. ROT_OP_REPLACE: add sa,
	 * the second half of a replacement, right after the delete of the SA
	 * it replaces.
	 */
	enum rot_op_kind kind;
	const struct rot_sa *sa; /* borrowed: planned (adds) or actual (deletes) */
	size_t link;             /* the link it is sent for: index in rot_pass.link */
};

/*
 * One link of a pass. Its makes (adds, and a replacement's delete) go
 * first; its breaks (deletes of SAs no longer desired) only once every
 * make was answered and none failed (DESIGN.md "Make-before-break windows":
 * the new outbound SA is added before the old one is deleted).
 */
struct rot_pass_link {
	const struct conf_link *link; /* borrowed */
	size_t makes;                 /* its steps in rot_pass.make */
	size_t first_break;           /* its breaks: rot_pass.brk[first_break] and the next */
	size_t breaks;                /* breaks - 1 */
};

/* The ordered requests of one pass. Pointers borrow the caller's planned and actual arrays. */
struct rot_pass {
	struct rot_ops ops;            /* the diff (rot_reconcile) the steps come from */
	struct rot_step *make;         /* owned: every link's makes, in send order */
	size_t nmake;
	struct rot_step *brk;          /* owned: the breaks, grouped by link */
	size_t nbrk;
	struct rot_pass_link *link;    /* owned: the links named in planned (in their order), */
	size_t nlink;                  /* then those only the breaks name */
	const struct rot_op *conflict; /* the CONFLICT ops in ops: reported, never sent */
	size_t nconflict;
};

/* Initialise an empty pass. */
void rot_pass_init(struct rot_pass *pass);
/* Free the pass's arrays; pass is empty afterwards. */
void rot_pass_fini(struct rot_pass *pass);

/*
 * Order the pass that turns actual (every SA in the kernel, managed or not)
 * into planned (rot_plan's SAs of the links due at one instant, each naming
 * its link): diffs them (rot_reconcile) and orders the requests:
 * - makes, in rot_reconcile's order: each ADD as an add; each REPLACE as a
 *   delete of the actual SA, then the add of the planned one;
 * - breaks, each DELETE as a delete, grouped by link, within a link in
 *   falling identity order (any order is safe once the makes are in);
 *   a DELETE of an SA naming no link is left out.
 * An SA no planned link owns (rot_sa_owned_by: hand-keyed, another link's,
 * a link's not due) is never touched.
 * pass is reset first. Returns 0, -EINVAL (a planned SA without a link) or
 * -ENOMEM (pass empty).
 */
int rot_pass_order(const struct rot_sa *planned, size_t n, const struct rot_sa *actual, size_t m,
		   struct rot_pass *pass);

#endif
