/* SPDX-License-Identifier: ISC */
/* Key schedule v2's generations: which instance of an epoch's SA a sender installs, which a receiver holds. */
#ifndef SAKEYD_ROTATE_GENS_H
#define SAKEYD_ROTATE_GENS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * DESIGN.md "Key schedule v2": generations 0-7 are the normal series, 15
 * down to 8 the series of a sender that lost its records. These rules are
 * pure: the caller (svc/daemon/gens.c) keeps the records and reads the clock.
 */

/* No generation: none recorded, not known yet, or none left. */
#define ROT_GEN_NONE 0xff
/* Generations of one epoch. */
#define ROT_GENS 16

/* Whether g belongs to the series of a sender that lost its records (15 down to 8). */
bool rot_gen_lost_series(uint8_t g);

/*
 * The generation a sender installs for an epoch whose outbound SA the kernel
 * does not hold: after last (the last one recorded for that epoch), the next
 * of last's series (g + 1 in 0-7, g - 1 in 15-8); with none recorded
 * (ROT_GEN_NONE), 15 when the sender lost its records, else 0. Returns the
 * generation, or -ENOSPC when last's series is used up (7 or 8 recorded):
 * no outbound SA until the next epoch.
 */
int rot_gen_next(uint8_t last, bool lost_records);

/*
 * A receiver's record of one inbound epoch: the generation carrying traffic
 * (cur; ROT_GEN_NONE = not known yet: all 16 are held) and the one it
 * superseded (prev, held until prev_until; ROT_GEN_NONE = none).
 */
struct rot_gen_in {
	int64_t epoch;
	uint8_t cur;
	uint8_t prev;
	int64_t prev_until; /* Unix seconds */
};

/* An epoch a receiver has no record of: its sender starts at generation 0. */
#define ROT_GEN_IN_DEFAULT(e) ((struct rot_gen_in){ .epoch = (e), .cur = 0, .prev = ROT_GEN_NONE })

/*
 * The spares of generation cur: cur + 1 (while <= 7) and 15 when cur is in
 * 0-7; cur - 1 (while >= 8) when cur is in 15-8. Writes them to out in
 * rising order; returns how many (0-2).
 */
size_t rot_gen_spares(uint8_t cur, uint8_t out[2]);

/*
 * The generations a receiver holds for in at now, in rising order, without
 * duplicates: all 16 while cur is not known; else cur, its spares, and prev
 * while now < prev_until. Returns how many (1-16).
 */
size_t rot_gen_held(const struct rot_gen_in *in, int64_t now, uint8_t out[ROT_GENS]);

/*
 * Whether traffic on generation s of an epoch whose current generation is
 * cur shows the sender moved on to s: any s while cur is not known; from cur
 * in 0-7, a later one of that series or any of 15-8 (the sender lost its
 * records); from cur in 15-8, a later one of that series (a lower number).
 * A move backwards (late packets of an older generation) is not one.
 */
bool rot_gen_supersedes(uint8_t cur, uint8_t s);

#endif
