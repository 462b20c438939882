/* SPDX-License-Identifier: ISC */
/* IP address literals in inet_ntop form: glibc's algorithm (resolv/inet_ntop.c), without sprintf. */
#include <string.h>
#include <sys/socket.h>

#include "store/addr.h"

/* "255.255.255.255" and the longest IPv6 form, with their NUL (INET6_ADDRSTRLEN). */
#define V4_MAX 16
#define V6_MAX 46

static size_t put_v4(const unsigned char *b, char *t)
{
	size_t n = 0;

	for (int i = 0; i < 4; i++) {
		unsigned v = b[i];

		if (i)
			t[n++] = '.';
		if (v >= 100)
			t[n++] = (char)('0' + v / 100);
		if (v >= 10)
			t[n++] = (char)('0' + v / 10 % 10);
		t[n++] = (char)('0' + v % 10);
	}
	return n;
}

static size_t put_hex16(unsigned v, char *t)
{
	static const char hex[] = "0123456789abcdef";
	size_t n = 0;
	int shift = 12;

	while (shift > 0 && !(v >> shift & 0xf))
		shift -= 4;
	for (; shift >= 0; shift -= 4)
		t[n++] = hex[v >> shift & 0xf];
	return n;
}

static size_t put_v6(const unsigned char *b, char *t)
{
	unsigned words[8];
	int best_base = -1, best_len = 0, cur_base = -1, cur_len = 0;
	size_t n = 0;

	for (int i = 0; i < 8; i++)
		words[i] = (unsigned)b[2 * i] << 8 | b[2 * i + 1];
	/* The longest run of zero words, the first of equal ones; never a single word. */
	for (int i = 0; i < 8; i++) {
		if (words[i] == 0) {
			if (cur_base == -1) {
				cur_base = i;
				cur_len = 1;
			} else {
				cur_len++;
			}
		} else if (cur_base != -1) {
			if (best_base == -1 || cur_len > best_len) {
				best_base = cur_base;
				best_len = cur_len;
			}
			cur_base = -1;
		}
	}
	if (cur_base != -1 && (best_base == -1 || cur_len > best_len)) {
		best_base = cur_base;
		best_len = cur_len;
	}
	if (best_base != -1 && best_len < 2)
		best_base = -1;
	for (int i = 0; i < 8; i++) {
		if (best_base != -1 && i >= best_base && i < best_base + best_len) {
			if (i == best_base)
				t[n++] = ':';
			continue;
		}
		if (i != 0)
			t[n++] = ':';
		/* IPv4-compatible (::a.b.c.d) or IPv4-mapped (::ffff:a.b.c.d), as glibc. */
		if (i == 6 && best_base == 0 &&
		    (best_len == 6 || (best_len == 5 && words[5] == 0xffff))) {
			n += put_v4(b + 12, t + n);
			return n;
		}
		n += put_hex16(words[i], t + n);
	}
	if (best_base != -1 && best_base + best_len == 8)
		t[n++] = ':';
	return n;
}

const char *store_addr_ntop(int family, const void *bytes, char *out, size_t size)
{
	char tmp[V6_MAX];
	size_t n;

	if (family == AF_INET)
		n = put_v4(bytes, tmp);
	else if (family == AF_INET6)
		n = put_v6(bytes, tmp);
	else
		return NULL;
	if (n + 1 > size)
		return NULL;
	memcpy(out, tmp, n);
	out[n] = '\0';
	return out;
}
