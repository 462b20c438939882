/* SPDX-License-Identifier: ISC */
/* The planner: desired SAs of a link at an instant, their lifetimes and the next change point. */
#include <errno.h>
#include <string.h>

#include "rotate/keysched.h"
#include "rotate/plan.h"

uint64_t rot_soft_margin(const struct conf_link *link)
{
	uint64_t half = link->hard_slack / 2;

	if (half < 1)
		half = 1;
	return half < ROT_SOFT_MARGIN_MAX ? half : ROT_SOFT_MARGIN_MAX;
}

static bool link_valid(const struct conf_link *link)
{
	size_t len = rot_addr_len(&link->local);

	return link->rotate_every > 0 && link->rotate_every <= ROT_PERIOD_MAX &&
	       link->phase < link->rotate_every && link->spi_prefix >= 1 &&
	       link->spi_prefix <= 0xffffff && len != 0 &&
	       link->local.family == link->remote.family && link->alg && link->alg->name &&
	       (link->mode == CONF_MODE_TRANSPORT || link->mode == CONF_MODE_TUNNEL) &&
	       link->lead <= ROT_PERIOD_MAX && link->grace <= ROT_PERIOD_MAX &&
	       link->hard_slack <= ROT_PERIOD_MAX;
}

static int add_sa(const struct conf_link *link, int64_t now, struct rot_plan *plan,
		  enum rot_dir dir, int64_t epoch, int64_t planned_removal, bool staged)
{
	struct rot_sa *sa = &plan->sa[plan->n++];
	int64_t soft_at = planned_removal + (int64_t)rot_soft_margin(link);
	int64_t hard_at = planned_removal + (int64_t)link->hard_slack;

	memset(sa, 0, sizeof(*sa));
	/* Generation 0: a sender's generation records and a receiver's spares come next. */
	sa->spi = rot_spi(link->spi_prefix, epoch, 0);
	sa->proto = IPPROTO_ESP;
	sa->mode = link->mode;
	sa->src = dir == ROT_DIR_IN ? link->remote : link->local;
	sa->dst = dir == ROT_DIR_IN ? link->local : link->remote;
	sa->src.prefixlen = sa->dst.prefixlen = (uint8_t)(rot_addr_len(&sa->src) * 8);
	sa->alg = link->alg;
	/*
	 * reqid 0: PF_KEY policy templates of level REQUIRE force reqid 0 and then
	 * match only SAs with reqid 0 (af_key.c: parse_ipsecrequest); UNIQUE would
	 * take a reqid only up to 0x3fff, below the 24-bit spi_prefix range. A
	 * link's SAs are told apart by their address pair and SPI prefix instead.
	 */
	sa->reqid = 0;
	sa->link = link;
	sa->dir = dir;
	sa->staged = staged;
	sa->epoch = epoch;
	sa->planned_removal = planned_removal;
	sa->soft_expires_at = soft_at;
	sa->hard_expires_at = hard_at;
	/* A desired SA is always removed in the future, so both are >= 1 (0 would mean "none"). */
	sa->soft_lifetime = (uint64_t)(soft_at - now);
	sa->hard_lifetime = (uint64_t)(hard_at > now ? hard_at - now : 1);
	if (link->secret)
		return rot_sa_fingerprint(link->secret, sa);
	return 0;
}

int rot_plan(const struct conf_link *link, int64_t now, struct rot_plan *out)
{
	uint64_t period, phase;
	int64_t e, next_start, start, grace, lead, next_change;
	int ret = 0;

	memset(out, 0, sizeof(*out));
	if (!link_valid(link) || now > ROT_TIME_MAX || now < -ROT_TIME_MAX)
		return -EINVAL;
	period = link->rotate_every;
	phase = link->phase;
	lead = (int64_t)link->lead;
	grace = (int64_t)link->grace;
	e = rot_epoch(now, period, phase);
	start = rot_epoch_start(e, period, phase);
	next_start = rot_epoch_start(e + 1, period, phase);

	out->now = now;
	out->epoch = e;
	if (now < start + grace)
		ret = ret ? ret : add_sa(link, now, out, ROT_DIR_IN, e - 1, start + grace, false);
	ret = ret ? ret : add_sa(link, now, out, ROT_DIR_IN, e, next_start + grace, false);
	if (now >= next_start - lead) {
		int64_t after_next = rot_epoch_start(e + 2, period, phase);

		ret = ret ? ret
			    : add_sa(link, now, out, ROT_DIR_IN, e + 1, after_next + grace, true);
	}
	ret = ret ? ret : add_sa(link, now, out, ROT_DIR_OUT, e, next_start, false);
	if (ret) {
		memset(out, 0, sizeof(*out));
		return ret;
	}

	/* The set changes when e+1 arrives inbound, e-1 leaves, or the epoch turns. */
	next_change = next_start;
	if (next_start - lead > now && next_start - lead < next_change)
		next_change = next_start - lead;
	if (start + grace > now && start + grace < next_change)
		next_change = start + grace;
	out->next_change = next_change;
	return 0;
}

/* v's record of inbound epoch k, else the default (sender at generation 0). */
static struct rot_gen_in gen_in_of(const struct rot_gen_view *v, int64_t k)
{
	for (size_t i = 0; i < v->nin && i < sizeof(v->in) / sizeof(v->in[0]); i++)
		if (v->in[i].epoch == k)
			return v->in[i];
	return ROT_GEN_IN_DEFAULT(k);
}

static void gen_sa(const struct rot_sa *base, uint8_t gen, struct rot_sa *out)
{
	*out = *base;
	out->gen = gen;
	out->spi = rot_spi(base->link->spi_prefix, base->epoch, gen);
	out->key_fp[0] = '\0';
}

size_t rot_plan_gens(const struct rot_plan *plan, const struct rot_gen_view *v,
		     struct rot_sa *out, int64_t *next_change)
{
	size_t n = 0;

	for (size_t i = 0; i < plan->n; i++) {
		const struct rot_sa *sa = &plan->sa[i];

		if (sa->dir == ROT_DIR_OUT) {
			if (v->out <= ROT_GEN_MAX)
				gen_sa(sa, v->out, &out[n++]);
		} else {
			struct rot_gen_in in = gen_in_of(v, sa->epoch);
			uint8_t held[ROT_GENS];
			size_t nheld = rot_gen_held(&in, plan->now, held);

			for (size_t g = 0; g < nheld; g++)
				gen_sa(sa, held[g], &out[n++]);
			if (in.prev <= ROT_GEN_MAX && in.prev_until > plan->now &&
			    in.prev_until < *next_change)
				*next_change = in.prev_until;
		}
	}
	return n;
}
