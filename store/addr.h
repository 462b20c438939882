/* SPDX-License-Identifier: ISC */
/* IP address literals in inet_ntop form, without the stdio machinery inet_ntop runs on. */
#ifndef SAKEYD_STORE_ADDR_H
#define SAKEYD_STORE_ADDR_H

#include <stddef.h>

/*
 * Write the address bytes (4 for AF_INET, 16 for AF_INET6) of family as
 * glibc's inet_ntop does, byte for byte (RFC 5952 zero compression, first
 * longest run; "::a.b.c.d" for IPv4-compatible and "::ffff:a.b.c.d" for
 * IPv4-mapped addresses), NUL-terminated, into out of size bytes. Returns
 * out, or NULL (out untouched) for another family or if size is too small,
 * as inet_ntop. The ledger formats two addresses per row and event; glibc
 * goes through sprintf for each byte or word.
 */
const char *store_addr_ntop(int family, const void *bytes, char *out, size_t size);

#endif
