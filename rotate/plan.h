/* SPDX-License-Identifier: ISC */
/* The planner: the SAs one link should have at time now (DESIGN.md "Make-before-break windows"). */
#ifndef SAKEYD_ROTATE_PLAN_H
#define SAKEYD_ROTATE_PLAN_H

#include <stddef.h>
#include <stdint.h>

#include "conf/conf.h"
#include "rotate/gens.h"
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

/* A link's generations at one instant (DESIGN.md "Key schedule v2"; rotate/gens.h). */
struct rot_gen_view {
	/* Generation of the outbound SA of the plan's epoch; ROT_GEN_NONE: none (series used up). */
	uint8_t out;
	/* The receiver's records of inbound epochs; an epoch of the plan not here: ROT_GEN_IN_DEFAULT. */
	struct rot_gen_in in[3];
	size_t nin;
};

/* SAs of one link's plan with its generations: 16 per inbound epoch at most, one outbound. */
#define ROT_PLAN_GENS_MAX (3 * ROT_GENS + 1)

/*
 * The SAs plan (rot_plan's, generation 0) stands for once generations are
 * applied: for each inbound SA of epoch k, one per generation the receiver
 * holds (rot_gen_held of k's record in v, at plan->now), in rising order;
 * the outbound SA as generation v->out, or none if v->out is ROT_GEN_NONE.
 * Each gets its SPI (rot_spi), its gen, and an empty key_fp (keys differ per
 * generation; the caller fingerprints). Lifetimes and planned removal are the
 * plan's: spares live as long as the generation in use. Writes at most
 * ROT_PLAN_GENS_MAX SAs to out; returns how many. *next_change (the plan's,
 * on input) is lowered to the instant a superseded generation stops being
 * held, if that comes first.
 */
size_t rot_plan_gens(const struct rot_plan *plan, const struct rot_gen_view *v,
		     struct rot_sa *out, int64_t *next_change);

#endif
