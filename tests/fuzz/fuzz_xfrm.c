/* SPDX-License-Identifier: ISC */
/*
 * libFuzzer target: hostile XFRM netlink datagrams through the decoder, and
 * what it accepts through the encoder and back: decode(encode(m)) keeps what
 * the daemon relies on (identity, addresses, mode, algorithms, keys, policy).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Included so that libFuzzer instruments the codec (see fuzz_pfkey.c). */
#include "svc/kernel/xfrm.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The kernel hands out aligned datagrams; the fuzzer's bytes are copied to one. */
static uint32_t in[65536 / 4];
static _Alignas(8) uint8_t out[65536];

static bool same_addr(const struct pfkey_addr *a, const struct pfkey_addr *b)
{
	size_t n = addr_len(a->family);

	return a->family == b->family && !memcmp(a->addr, b->addr, n);
}

static bool same_key(const struct pfkey_key *a, const struct pfkey_key *b)
{
	return a->bits == b->bits && (!a->bits || !memcmp(a->data, b->data, (a->bits + 7u) / 8));
}

static void check_reencode(const struct pfkey_msg *m)
{
	struct pfkey_msg again;
	const char *why = NULL;
	ssize_t len;

	switch (m->type) {
	case SADB_ADD:
	case SADB_UPDATE:
	case SADB_DELETE:
	case SADB_X_SPDADD:
	case SADB_X_SPDUPDATE:
		break;
	default:
		return;
	}
	len = xfrm_encode(m, 1, 2, 0, out, sizeof(out));
	if (len < 0)
		return; /* not every decodable message is a valid request */
	if (xfrm_decode((const struct nlmsghdr *)out, &again, &why) != 1)
		abort();
	if (again.type != m->type || !same_addr(&again.dst, &m->dst))
		abort();
	if (m->type == SADB_X_SPDADD || m->type == SADB_X_SPDUPDATE) {
		if (again.policy.dir != m->policy.dir || again.policy.id != m->policy.id ||
		    again.policy.priority != m->policy.priority || !same_addr(&again.src, &m->src) ||
		    again.src.prefixlen != m->src.prefixlen || again.dst.prefixlen != m->dst.prefixlen)
			abort();
		return;
	}
	if (again.spi != m->spi || again.satype != m->satype)
		abort();
	if (m->type == SADB_DELETE)
		return;
	/* Modes PF_KEY has no name for (route optimisation, ...) decode as ANY and encode as transport. */
	if (!same_addr(&again.src, &m->src) || again.reqid != m->reqid ||
	    (m->mode != IPSEC_MODE_ANY && again.mode != m->mode))
		abort();
	if (m->encrypt && (again.encrypt != m->encrypt || !same_key(&again.key_enc, &m->key_enc)))
		abort();
	if (m->auth && (again.auth != m->auth || !same_key(&again.key_auth, &m->key_auth)))
		abort();
	if (again.x_esn != m->x_esn)
		abort();
	pfkey_cleanse(out, (size_t)len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct nlmsghdr *nlh = (const struct nlmsghdr *)in;
	size_t left;

	if (size > sizeof(in))
		return 0;
	memcpy(in, data, size);
	left = size;
	while (left && xfrm_nlmsg_ok(nlh, left)) {
		struct pfkey_msg m;
		const char *why = NULL;
		int ret = xfrm_decode(nlh, &m, &why);

		if (ret < 0 && !why)
			abort();
		if (ret == 1)
			check_reencode(&m);
		nlh = xfrm_nlmsg_next(nlh, &left);
	}
	return 0;
}
