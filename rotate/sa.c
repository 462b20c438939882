/* SPDX-License-Identifier: ISC */
/* The domain model: SA identity, address comparison and link ownership. */
#include <string.h>
#include <sys/socket.h>

#include "rotate/sa.h"

size_t rot_addr_len(const struct conf_addr *a)
{
	switch (a->family) {
	case AF_INET:
		return 4;
	case AF_INET6:
		return 16;
	default:
		return 0;
	}
}

bool rot_addr_equal(const struct conf_addr *a, const struct conf_addr *b)
{
	return a->family == b->family && memcmp(a->bytes, b->bytes, rot_addr_len(a)) == 0;
}

int rot_sa_id_cmp(const struct rot_sa *a, const struct rot_sa *b)
{
	int r;

	if (a->dst.family != b->dst.family)
		return a->dst.family < b->dst.family ? -1 : 1;
	r = memcmp(a->dst.bytes, b->dst.bytes, rot_addr_len(&a->dst));
	if (r)
		return r < 0 ? -1 : 1;
	if (a->spi != b->spi)
		return a->spi < b->spi ? -1 : 1;
	if (a->proto != b->proto)
		return a->proto < b->proto ? -1 : 1;
	return 0;
}

bool rot_sa_owned_by(const struct rot_sa *sa, const struct conf_link *link, enum rot_dir *dir)
{
	enum rot_dir d;

	if (sa->proto != IPPROTO_ESP || sa->spi >> 8 != link->spi_prefix)
		return false;
	if (rot_addr_equal(&sa->src, &link->remote) && rot_addr_equal(&sa->dst, &link->local))
		d = ROT_DIR_IN;
	else if (rot_addr_equal(&sa->src, &link->local) && rot_addr_equal(&sa->dst, &link->remote))
		d = ROT_DIR_OUT;
	else
		return false;
	if (dir)
		*dir = d;
	return true;
}
