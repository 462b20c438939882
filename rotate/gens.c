/* SPDX-License-Identifier: ISC */
/* Key schedule v2's generations: the sender's next, the receiver's spares, promotion. */
#include <errno.h>
#include <string.h>

#include "rotate/gens.h"

#define GEN_NORMAL_LAST 7
#define GEN_LOST_FIRST 15
#define GEN_LOST_LAST 8

bool rot_gen_lost_series(uint8_t g)
{
	return g >= GEN_LOST_LAST && g <= GEN_LOST_FIRST;
}

int rot_gen_next(uint8_t last, bool lost_records)
{
	if (last == ROT_GEN_NONE)
		return lost_records ? GEN_LOST_FIRST : 0;
	if (last > GEN_LOST_FIRST)
		return -ENOSPC; /* not a generation: trust nothing, install nothing */
	if (rot_gen_lost_series(last))
		return last > GEN_LOST_LAST ? last - 1 : -ENOSPC;
	return last < GEN_NORMAL_LAST ? last + 1 : -ENOSPC;
}

size_t rot_gen_spares(uint8_t cur, uint8_t out[2])
{
	size_t n = 0;

	if (cur > GEN_LOST_FIRST)
		return 0;
	if (rot_gen_lost_series(cur)) {
		if (cur > GEN_LOST_LAST)
			out[n++] = cur - 1;
		return n;
	}
	if (cur < GEN_NORMAL_LAST)
		out[n++] = cur + 1;
	out[n++] = GEN_LOST_FIRST;
	return n;
}

size_t rot_gen_held(const struct rot_gen_in *in, int64_t now, uint8_t out[ROT_GENS])
{
	bool held[ROT_GENS] = { false };
	uint8_t spare[2];
	size_t n = 0, ns;

	if (in->cur > GEN_LOST_FIRST) {
		for (uint8_t g = 0; g < ROT_GENS; g++)
			out[g] = g;
		return ROT_GENS;
	}
	held[in->cur] = true;
	ns = rot_gen_spares(in->cur, spare);
	for (size_t i = 0; i < ns; i++)
		held[spare[i]] = true;
	if (in->prev <= GEN_LOST_FIRST && now < in->prev_until)
		held[in->prev] = true;
	for (uint8_t g = 0; g < ROT_GENS; g++)
		if (held[g])
			out[n++] = g;
	return n;
}

bool rot_gen_supersedes(uint8_t cur, uint8_t s)
{
	if (s > GEN_LOST_FIRST || s == cur)
		return false;
	if (cur > GEN_LOST_FIRST)
		return true;
	if (rot_gen_lost_series(cur))
		return rot_gen_lost_series(s) && s < cur;
	return rot_gen_lost_series(s) || s > cur;
}
