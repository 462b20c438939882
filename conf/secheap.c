/* SPDX-License-Identifier: ISC */
/* OpenSSL's secure heap: its size from the configuration's limit, and why an allocation failed. */
#include <errno.h>
#include <stdio.h>

#include <openssl/crypto.h>

#include "conf/conf.h"

static size_t heap_size; /* 0 until conf_secure_heap_init() made the heap */
static unsigned long heap_failures;

/* What len bytes take in the heap: a power of two, at least the minimum (mem_sec.c: sh_malloc). */
static size_t chunk_of(size_t len)
{
	size_t c = CONF_SECURE_MINSIZE;

	while (c < len)
		c <<= 1;
	return c;
}

size_t conf_secure_heap_size(size_t links)
{
	size_t need, size = CONF_SECURE_MINSIZE;

	if (links > CONF_LINKS_MAX)
		links = CONF_LINKS_MAX;
	need = CONF_SECRET_COPIES * links * chunk_of(CONF_SECRET_LEN) + CONF_SECURE_WORK;
	while (size < need)
		size <<= 1;
	return size;
}

size_t conf_secure_heap_links(size_t size)
{
	if (size <= CONF_SECURE_WORK)
		return 0;
	return (size - CONF_SECURE_WORK) / (CONF_SECRET_COPIES * chunk_of(CONF_SECRET_LEN));
}

int conf_secure_heap_init(size_t size)
{
	int ret;

	/* sh_init asserts (aborts) on a size that is not a power of two. */
	if (size < CONF_SECURE_MINSIZE * 4 || (size & (size - 1)))
		return -EINVAL;
	ret = CRYPTO_secure_malloc_init(size, CONF_SECURE_MINSIZE);
	if (ret == 0)
		return -ENOMEM;
	heap_size = size;
	/* 2: made, but mlock, mprotect of a guard page or MADV_DONTDUMP failed. */
	return ret == 1 ? 0 : -EPERM;
}

void *conf_secure_alloc(size_t len)
{
	void *p = OPENSSL_secure_zalloc(len);

	if (!p)
		heap_failures++;
	return p;
}

unsigned long conf_secure_heap_failures(void)
{
	return heap_failures;
}

char *conf_secure_heap_why(char *buf, size_t size)
{
	if (!heap_size || !CRYPTO_secure_malloc_initialized())
		snprintf(buf, size, "out of memory (no secure heap: keys are in ordinary memory)");
	else
		snprintf(buf, size,
			 "OpenSSL's secure heap is exhausted (%zu of %zu KiB in use, sized for %zu "
			 "links' secrets held %d times); restart sakeyd, and report it if there are "
			 "fewer links",
			 CRYPTO_secure_used() / 1024, heap_size / 1024, conf_secure_heap_links(heap_size),
			 CONF_SECRET_COPIES);
	return buf;
}
