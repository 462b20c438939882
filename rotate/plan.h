/* SPDX-License-Identifier: ISC */
/* The planner: the SAs one link should have at time now (DESIGN.md "Make-before-break windows"). */
#ifndef SAKEYD_ROTATE_PLAN_H
#define SAKEYD_ROTATE_PLAN_H

#include <stddef.h>
#include <stdint.h>

#include "conf/conf.h"
#include "rotate/sa.h"

/* Inbound e-1, e, e+1 and outbound e. */
#define ROT_PLAN_MAX 4
/*
 * Soft lifetime = planned removal + margin, margin = min(ROT_SOFT_MARGIN_MAX,
 * max(1, hard_slack / 2)): always > 0 (a soft expiry then means the daemon
 * missed its schedule) and, whenever hard_slack >= 2, before the hard expiry.
 */
#define ROT_SOFT_MARGIN_MAX 30

/* The desired SAs of one link at one instant. */
struct rot_plan {
	int64_t now;
	int64_t epoch;       /* e = rot_epoch(now) */
	int64_t next_change; /* earliest instant > now at which the desired set changes */
	size_t n;
	struct rot_sa sa[ROT_PLAN_MAX]; /* inbound by rising epoch, then outbound */
};

/* Soft lifetime margin after planned removal for a link (see ROT_SOFT_MARGIN_MAX). */
uint64_t rot_soft_margin(const struct conf_link *link);

/*
 * The desired SA set of link at now (Unix seconds). At time t in epoch e:
 * inbound (remote -> local) e; plus e+1 once t >= T(e+1) - lead; plus e-1
 * while t < T(e) + grace; outbound (local -> remote) e only.
 * Planned removal: inbound epoch k at T(k+1) + grace, outbound k at T(k+1).
 * Lifetimes: soft = removal + rot_soft_margin(), hard = removal + hard_slack,
 * both also as relative seconds from now. reqid 0 (see plan.c).
 * key_fp is filled when link->secret is set, else "". SAs borrow link.
 * The link must be resolved (rot_resolve_link). Returns 0, -EINVAL (bad
 * link: period, phase, prefix, addresses, alg; now out of range) or -errno
 * from the key schedule.
 */
int rot_plan(const struct conf_link *link, int64_t now, struct rot_plan *out);

#endif
