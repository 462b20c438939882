/* SPDX-License-Identifier: ISC */
/*
 * Freed fixed-size blocks kept for reuse, linked through their first bytes:
 * a pass allocates and frees one request and one request context per SA,
 * and handing them back to glibc (whose malloc and free were together about
 * 4 % of the samples in a rotation's passes) is skipped for up to SPARE_MAX.
 */
#ifndef SAKEYD_SVC_SPARE_H
#define SAKEYD_SVC_SPARE_H

#include <stdlib.h>
#include <string.h>

#define SPARE_MAX 1024

struct spare {
	void *head;
	unsigned n;
};

/* A zeroed block of size bytes (at least a pointer's): a kept one, or calloc's; NULL if none. */
static inline void *spare_get(struct spare *s, size_t size)
{
	void *p = s->head;

	if (!p)
		return calloc(1, size);
	memcpy(&s->head, p, sizeof(s->head));
	s->n--;
	memset(p, 0, size);
	return p;
}

/* Keep p (from spare_get) for the next, or free it past SPARE_MAX. */
static inline void spare_put(struct spare *s, void *p)
{
	if (s->n >= SPARE_MAX) {
		free(p);
		return;
	}
	memcpy(p, &s->head, sizeof(s->head));
	s->head = p;
	s->n++;
}

/* Free every kept block. */
static inline void spare_fini(struct spare *s)
{
	while (s->head) {
		void *p = s->head;

		memcpy(&s->head, p, sizeof(s->head));
		free(p);
	}
	s->n = 0;
}

#endif
