/* SPDX-License-Identifier: ISC */
/* An index from SPI prefix to borrowed pointers: linear probing, no deletion. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "rotate/prefixidx.h"

static size_t home(const struct rot_prefix_index *ix, uint32_t prefix)
{
	/* Fibonacci hashing: consecutive prefixes (the usual plan) spread over the table. */
	return (size_t)((uint64_t)prefix * 0x9e3779b97f4a7c15ull >> 32) & (ix->cap - 1);
}

int rot_prefix_index_init(struct rot_prefix_index *ix, size_t max)
{
	size_t cap = 16;

	memset(ix, 0, sizeof(*ix));
	while (cap < 2 * max) {
		if (cap > SIZE_MAX / 2 / sizeof(*ix->slot))
			return -ENOMEM;
		cap *= 2;
	}
	ix->slot = calloc(cap, sizeof(*ix->slot));
	if (!ix->slot)
		return -ENOMEM;
	ix->cap = cap;
	ix->max = max;
	return 0;
}

void rot_prefix_index_fini(struct rot_prefix_index *ix)
{
	free(ix->slot);
	memset(ix, 0, sizeof(*ix));
}

int rot_prefix_index_add(struct rot_prefix_index *ix, uint32_t prefix, const void *value)
{
	size_t i;

	if (!value)
		return -EINVAL;
	if (!ix->slot)
		return -ENOSPC;
	for (i = home(ix, prefix); ix->slot[i].value; i = (i + 1) & (ix->cap - 1))
		if (ix->slot[i].prefix == prefix && ix->slot[i].value == value)
			return 0;
	if (ix->n >= ix->max)
		return -ENOSPC;
	ix->slot[i].prefix = prefix;
	ix->slot[i].value = value;
	ix->n++;
	return 0;
}

const void *rot_prefix_index_next(const struct rot_prefix_index *ix, uint32_t prefix,
				  size_t *cursor)
{
	/* *cursor is 1 + the slot to look at next; the table always has an empty slot. */
	size_t i;

	if (!ix->slot)
		return NULL;
	i = *cursor ? *cursor - 1 : home(ix, prefix);
	for (; ix->slot[i].value; i = (i + 1) & (ix->cap - 1)) {
		if (ix->slot[i].prefix == prefix) {
			*cursor = ((i + 1) & (ix->cap - 1)) + 1;
			return ix->slot[i].value;
		}
	}
	*cursor = i + 1;
	return NULL;
}

const void *rot_prefix_index_get(const struct rot_prefix_index *ix, uint32_t prefix)
{
	size_t cursor = 0;

	return rot_prefix_index_next(ix, prefix, &cursor);
}
