/* SPDX-License-Identifier: ISC */
/* An index from SPI prefix to links (or any borrowed pointer): open addressing, built once. */
#ifndef SAKEYD_ROTATE_PREFIXIDX_H
#define SAKEYD_ROTATE_PREFIXIDX_H

#include <stddef.h>
#include <stdint.h>

struct rot_prefix_slot {
	uint32_t prefix;
	const void *value; /* NULL: empty slot */
};

/*
 * Lookup by SPI prefix in one or two cache lines, where a binary search
 * over 10,000 links costs a dozen misses; the daemon looks an SA's link up
 * for every kernel message and every SA of a pass. Several values may share
 * a prefix (a misconfiguration must not hide an owner).
 */
struct rot_prefix_index {
	struct rot_prefix_slot *slot; /* owned; cap entries */
	size_t cap;                   /* power of two, at least twice max */
	size_t max, n;
};

/* Initialise an index for at most max distinct (prefix, value) pairs. 0 or -ENOMEM. */
int rot_prefix_index_init(struct rot_prefix_index *ix, size_t max);
/* Free the slots; ix is empty afterwards (lookups find nothing). */
void rot_prefix_index_fini(struct rot_prefix_index *ix);
/*
 * Add (prefix, value), value not NULL (borrowed). Adding a pair that is
 * there already does nothing. 0, or -ENOSPC past max pairs, -EINVAL for NULL.
 */
int rot_prefix_index_add(struct rot_prefix_index *ix, uint32_t prefix, const void *value);
/*
 * The values added with prefix, one per call in the order added: *cursor
 * starts at 0; returns NULL when there are no more (and again after).
 */
const void *rot_prefix_index_next(const struct rot_prefix_index *ix, uint32_t prefix,
				  size_t *cursor);
/* The first value added with prefix, or NULL. */
const void *rot_prefix_index_get(const struct rot_prefix_index *ix, uint32_t prefix);

#endif
