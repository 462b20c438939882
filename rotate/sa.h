/* SPDX-License-Identifier: ISC */
/* The domain model: one security association as the daemon sees it, without key material. */
#ifndef SAKEYD_ROTATE_SA_H
#define SAKEYD_ROTATE_SA_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conf/conf.h"

/* Hex digits of a key fingerprint (DESIGN.md "Key schedule v2"). */
#define ROT_FP_LEN 16

/* Direction of a managed SA, seen from this host. */
enum rot_dir {
	ROT_DIR_NONE = 0, /* unmanaged */
	ROT_DIR_IN,       /* remote -> local */
	ROT_DIR_OUT,      /* local -> remote */
};

/*
 * One SA. Its identity is (dst, spi, proto), as in the Linux kernel
 * (xfrm_state_lookup). Never holds key bytes: only their fingerprint.
 */
struct rot_sa {
	/*
	 * Widest fields first: an SA is held in the monitor's table and copied
	 * into each pass's arrays (200,000 of each at 10,000 links with v2's
	 * spares), and the order of the fields as described left 24 of 160
	 * bytes as padding. Grouped by meaning in the comments instead.
	 */
	/* What the kernel holds (with spi, proto, mode, src, dst, reqid below). */
	const struct conf_alg *alg; /* NULL if unknown to conf_algs[] */

	/* Management data; link NULL, dir ROT_DIR_NONE and times 0 if unmanaged. */
	const struct conf_link *link; /* borrowed */
	int64_t epoch;
	int64_t planned_removal; /* Unix seconds */
	int64_t soft_expires_at; /* Unix seconds, absolute form of soft_lifetime */
	int64_t hard_expires_at;
	/* Relative seconds from `now` (the add time), as the kernel takes them; 0 = none. */
	uint64_t soft_lifetime;
	uint64_t hard_lifetime;

	uint32_t spi;   /* host order */
	uint32_t reqid; /* 0 if none / unknown */
	enum conf_mode mode;
	enum rot_dir dir;
	struct conf_addr src, dst;
	char key_fp[ROT_FP_LEN + 1]; /* "" if unknown */
	uint8_t proto; /* IPPROTO_ESP */
	bool staged; /* inbound SA of a future epoch: the peer is not meant to use it yet */
	uint8_t gen; /* generation of the epoch's SA (rot_spi), 0..ROT_GEN_MAX */
};

/* Number of address bytes for a's family: 4, 16, or 0 if the family is unset or unknown. */
size_t rot_addr_len(const struct conf_addr *a);

/* Whether a and b are the same host address (family and address bytes; prefixlen ignored). */
bool rot_addr_equal(const struct conf_addr *a, const struct conf_addr *b);

/* Total order on SA identity (dst, spi, proto): <0, 0, >0 like strcmp. */
int rot_sa_id_cmp(const struct rot_sa *a, const struct rot_sa *b);

/*
 * Whether the SA belongs to link: ESP, spi >> 8 equal to the link's (resolved)
 * spi_prefix, and the link's addresses in either direction. Sets *dir if dir
 * is not NULL and the SA belongs to the link.
 */
bool rot_sa_owned_by(const struct rot_sa *sa, const struct conf_link *link, enum rot_dir *dir);

#endif
