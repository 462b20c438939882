/* SPDX-License-Identifier: ISC */
/*
 * libFuzzer target: hostile XFRM netlink datagrams through the decoders
 * (xfrm_decode, xfrm_decode_aevent), and what they accept through the
 * encoder and back: decode(encode(m)) keeps what the daemon relies on
 * (identity, addresses, mode, algorithms, keys, policy, replay state), and
 * an aevent's replay state installed on an ADD comes back the same.
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

/*
 * The replay state again has the same counters and the same sequence numbers
 * count as received, below and past the window (the high halves only with ESN).
 */
static bool same_replay(const struct pfkey_msg *m, const struct pfkey_msg *again)
{
	const struct kern_replay *a = &m->x_replay, *b = &again->x_replay;

	if (!again->x_has_replay || a->seq != b->seq || a->oseq != b->oseq)
		return false;
	if (m->x_esn && (a->seq_hi != b->seq_hi || a->oseq_hi != b->oseq_hi))
		return false;
	for (uint32_t d = 0; d < b->window + 2; d++)
		if (xfrm_replay_seen(a, d) != xfrm_replay_seen(b, d))
			return false;
	return true;
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
	if (m->x_has_replay && !same_replay(m, &again))
		abort();
	pfkey_cleanse(out, (size_t)len);
}

/* An aevent's replay state, restored on an ADD of its window, decodes to the same. */
static void check_aevent(const struct kern_aevent *ev)
{
	struct pfkey_msg m, again;
	ssize_t len;

	if (ev->has_replay && (ev->replay.bmp_len > KERN_REPLAY_BMP_MAX ||
			       ev->replay.window > ev->replay.bmp_len * 32))
		abort();
	if (!ev->has_replay || !ev->replay.window)
		return;
	pfkey_msg_init(&m, SADB_ADD, SADB_SATYPE_ESP, 0, 0);
	pfkey_set_sa(&m, ev->spi, 0, SADB_AALG_NONE, SADB_EALG_NULL);
	m.src = ev->dst;
	m.dst = ev->dst;
	m.present |= PFKEY_EXT_BIT(SADB_EXT_ADDRESS_SRC) | PFKEY_EXT_BIT(SADB_EXT_ADDRESS_DST);
	m.x_esn = true;
	m.x_replay_window = ev->replay.window;
	m.x_has_replay = true;
	m.x_replay = ev->replay;
	m.x_aevents = KERN_AEV_FIRST;
	len = xfrm_encode(&m, 1, 2, 0, out, sizeof(out));
	if (len < 0)
		abort();
	if (xfrm_decode((const struct nlmsghdr *)out, &again, NULL) != 1 || !same_replay(&m, &again))
		abort();
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
		struct kern_aevent ev;
		const char *why = NULL;
		int ret = xfrm_decode(nlh, &m, &why);

		if (ret < 0 && !why)
			abort();
		if (ret == 1)
			check_reencode(&m);
		why = NULL;
		ret = xfrm_decode_aevent(nlh, &ev, &why);
		if (ret < 0 && !why)
			abort();
		if (ret == 1)
			check_aevent(&ev);
		nlh = xfrm_nlmsg_next(nlh, &left);
	}
	return 0;
}
