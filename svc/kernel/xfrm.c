/* SPDX-License-Identifier: ISC */
/* XFRM netlink codec: PF_KEY-shaped requests to NETLINK_XFRM messages and back. */
#include <arpa/inet.h>
#include <errno.h>
#include <libmnl/libmnl.h>
#include <linux/xfrm.h>
#include <netinet/in.h>
#include <string.h>

#include "svc/kernel/xfrm.h"

#ifndef SADB_X_EALG_AES_GCM_ICV8
#define SADB_X_EALG_AES_GCM_ICV8 18
#define SADB_X_EALG_AES_GCM_ICV12 19
#define SADB_X_EALG_AES_GCM_ICV16 20
#endif
#ifndef SADB_X_EALG_NULL_AES_GMAC
#define SADB_X_EALG_NULL_AES_GMAC 23
#endif

/* Largest number of templates a policy carries (XFRM_MAX_DEPTH). */
#define TMPL_MAX PFKEY_MAX_REQS

struct alg_name {
	uint8_t id;
	bool aead;
	uint16_t icv_bits;
	const char *name;
};

/*
 * The names net/xfrm/xfrm_algo.c gives PF_KEY's ids (its canonical names:
 * the kernel reports those whatever alias was installed). Integrity ICVs are
 * the RFCs' (RFC 4868 for SHA-2), which is what netlink installs by default
 * with XFRMA_ALG_AUTH_TRUNC; PF_KEY gets the kernel's icv_truncbits instead.
 */
static const struct alg_name ealgs[] = {
	{ SADB_EALG_NULL, false, 0, "ecb(cipher_null)" },
	{ SADB_EALG_3DESCBC, false, 0, "cbc(des3_ede)" },
	{ SADB_X_EALG_CASTCBC, false, 0, "cbc(cast5)" },
	{ SADB_X_EALG_BLOWFISHCBC, false, 0, "cbc(blowfish)" },
	{ SADB_X_EALG_AESCBC, false, 0, "cbc(aes)" },
	{ SADB_X_EALG_AESCTR, false, 0, "rfc3686(ctr(aes))" },
	{ SADB_X_EALG_CAMELLIACBC, false, 0, "cbc(camellia)" },
	{ SADB_X_EALG_SERPENTCBC, false, 0, "cbc(serpent)" },
	{ SADB_X_EALG_TWOFISHCBC, false, 0, "cbc(twofish)" },
	{ SADB_X_EALG_AES_GCM_ICV8, true, 64, "rfc4106(gcm(aes))" },
	{ SADB_X_EALG_AES_GCM_ICV12, true, 96, "rfc4106(gcm(aes))" },
	{ SADB_X_EALG_AES_GCM_ICV16, true, 128, "rfc4106(gcm(aes))" },
	{ SADB_X_EALG_NULL_AES_GMAC, true, 128, "rfc4543(gcm(aes))" },
	{ 0, false, 0, NULL },
};

static const struct alg_name aalgs[] = {
	{ SADB_AALG_MD5HMAC, false, 96, "hmac(md5)" },
	{ SADB_AALG_SHA1HMAC, false, 96, "hmac(sha1)" },
	{ SADB_X_AALG_SHA2_256HMAC, false, 128, "hmac(sha256)" },
	{ SADB_X_AALG_SHA2_384HMAC, false, 192, "hmac(sha384)" },
	{ SADB_X_AALG_SHA2_512HMAC, false, 256, "hmac(sha512)" },
	{ SADB_X_AALG_RIPEMD160HMAC, false, 96, "hmac(rmd160)" },
	{ SADB_X_AALG_AES_XCBC_MAC, false, 96, "xcbc(aes)" },
	{ SADB_X_AALG_NULL, false, 0, "digest_null" },
	{ 0, false, 0, NULL },
};

const char *xfrm_ealg_name(uint8_t id, bool *aead, uint16_t *icv_bits)
{
	for (const struct alg_name *a = ealgs; a->name; a++)
		if (a->id == id) {
			*aead = a->aead;
			*icv_bits = a->icv_bits;
			return a->name;
		}
	return NULL;
}

const char *xfrm_aalg_name(uint8_t id, uint16_t *icv_bits)
{
	for (const struct alg_name *a = aalgs; a->name; a++)
		if (a->id == id) {
			*icv_bits = a->icv_bits;
			return a->name;
		}
	return NULL;
}

static uint8_t ealg_id(const char *name, bool aead, uint32_t icv_bits)
{
	for (const struct alg_name *a = ealgs; a->name; a++)
		if (a->aead == aead && !strcmp(a->name, name) && (!aead || a->icv_bits == icv_bits))
			return a->id;
	return 0;
}

static uint8_t aalg_id(const char *name)
{
	for (const struct alg_name *a = aalgs; a->name; a++)
		if (!strcmp(a->name, name))
			return a->id;
	return 0;
}

bool xfrm_nlmsg_ok(const struct nlmsghdr *nlh, size_t left)
{
	return left >= sizeof(*nlh) && nlh->nlmsg_len >= sizeof(*nlh) && nlh->nlmsg_len <= left;
}

const struct nlmsghdr *xfrm_nlmsg_next(const struct nlmsghdr *nlh, size_t *left)
{
	size_t step = NLMSG_ALIGN((size_t)nlh->nlmsg_len);

	if (step >= *left) {
		*left = 0;
		return nlh;
	}
	*left -= step;
	return (const struct nlmsghdr *)((const uint8_t *)nlh + step);
}

bool xfrm_reply_is_data(uint8_t type)
{
	return type == SADB_GET || type == SADB_GETSPI || type == SADB_X_SPDGET;
}

/* --- small mappings ------------------------------------------------------ */

static uint8_t proto_to_satype(uint8_t proto)
{
	switch (proto) {
	case IPPROTO_ESP:
		return SADB_SATYPE_ESP;
	case IPPROTO_AH:
		return SADB_SATYPE_AH;
	case IPPROTO_COMP:
		return SADB_X_SATYPE_IPCOMP;
	default:
		return SADB_SATYPE_UNSPEC;
	}
}

/* af_key.c: pfkey_mode_to_xfrm / pfkey_mode_from_xfrm. */
static int mode_to_xfrm(uint8_t mode)
{
	switch (mode) {
	case IPSEC_MODE_ANY:
	case IPSEC_MODE_TRANSPORT:
		return XFRM_MODE_TRANSPORT;
	case IPSEC_MODE_TUNNEL:
		return XFRM_MODE_TUNNEL;
	case IPSEC_MODE_BEET:
		return XFRM_MODE_BEET;
	default:
		return -1;
	}
}

static uint8_t mode_from_xfrm(uint8_t mode)
{
	switch (mode) {
	case XFRM_MODE_TRANSPORT:
		return IPSEC_MODE_TRANSPORT;
	case XFRM_MODE_TUNNEL:
		return IPSEC_MODE_TUNNEL;
	case XFRM_MODE_BEET:
		return IPSEC_MODE_BEET;
	default:
		return IPSEC_MODE_ANY;
	}
}

/* PF_KEY IPSEC_DIR_INBOUND/OUTBOUND/FWD (1..3) and XFRM_POLICY_IN/OUT/FWD (0..2). */
static int dir_to_xfrm(uint8_t dir)
{
	return dir >= IPSEC_DIR_INBOUND && dir <= IPSEC_DIR_FWD ? dir - 1 : -1;
}

static size_t addr_len(uint8_t family)
{
	return family == AF_INET ? 4 : family == AF_INET6 ? 16 : 0;
}

static int put_addr(xfrm_address_t *x, const struct pfkey_addr *a)
{
	size_t n = addr_len(a->family);

	if (!n)
		return -EINVAL;
	memset(x, 0, sizeof(*x));
	memcpy(x, a->addr, n);
	return 0;
}

static void get_addr(struct pfkey_addr *a, uint16_t family, const xfrm_address_t *x,
		     uint8_t prefixlen, uint8_t proto, uint16_t port_be)
{
	size_t n = addr_len((uint8_t)family);

	memset(a, 0, sizeof(*a));
	if (!n)
		return;
	a->family = (uint8_t)family;
	a->prefixlen = prefixlen;
	a->proto = proto ? proto : IPSEC_PROTO_ANY;
	a->port = ntohs(port_be);
	memcpy(a->addr, x, n);
}

/* PF_KEY's 0 means "no limit"; XFRM's is XFRM_INF for bytes and packets, 0 for times. */
static uint64_t inf_if_zero(uint64_t v)
{
	return v ? v : XFRM_INF;
}

static uint64_t zero_if_inf(uint64_t v)
{
	return v == XFRM_INF ? 0 : v;
}

static void put_lifetimes(struct xfrm_lifetime_cfg *l, const struct pfkey_msg *m)
{
	bool soft = m->present & PFKEY_EXT_BIT(SADB_EXT_LIFETIME_SOFT);
	bool hard = m->present & PFKEY_EXT_BIT(SADB_EXT_LIFETIME_HARD);

	l->soft_byte_limit = inf_if_zero(soft ? m->soft.bytes : 0);
	l->hard_byte_limit = inf_if_zero(hard ? m->hard.bytes : 0);
	l->soft_packet_limit = inf_if_zero(soft ? m->soft.allocations : 0);
	l->hard_packet_limit = inf_if_zero(hard ? m->hard.allocations : 0);
	l->soft_add_expires_seconds = soft ? m->soft.addtime : 0;
	l->hard_add_expires_seconds = hard ? m->hard.addtime : 0;
	l->soft_use_expires_seconds = soft ? m->soft.usetime : 0;
	l->hard_use_expires_seconds = hard ? m->hard.usetime : 0;
}

/* --- encoding ------------------------------------------------------------- */

/* Space left for attributes after the current message (libmnl does not check). */
static bool fits(const struct nlmsghdr *nlh, size_t cap, size_t payload)
{
	return nlh->nlmsg_len + MNL_ALIGN(sizeof(struct nlattr)) + MNL_ALIGN(payload) <= cap;
}

/*
 * Reserve attribute type with len payload bytes at the message's tail and
 * return its payload, zeroed. The key-carrying attributes are built in place
 * this way, so no key is copied through a buffer on the stack.
 */
static void *attr_reserve(struct nlmsghdr *nlh, uint16_t type, size_t len)
{
	struct nlattr *a = mnl_nlmsg_get_payload_tail(nlh);
	void *p;

	a->nla_type = type;
	a->nla_len = (uint16_t)(MNL_ATTR_HDRLEN + len);
	p = mnl_attr_get_payload(a);
	memset(p, 0, MNL_ALIGN(len));
	nlh->nlmsg_len += MNL_ALIGN(a->nla_len);
	return p;
}

/*
 * Reserve an algorithm attribute and fill what struct xfrm_algo, _auth and
 * _aead share: the name, then the key length in bits; the key follows the
 * structure (fixed bytes). The caller sets the ICV of the last two. NULL if
 * it does not fit.
 */
static void *put_alg(struct nlmsghdr *nlh, size_t cap, uint16_t type, size_t fixed,
		     const char *name, bool has_key, const struct pfkey_key *key)
{
	size_t len = has_key ? (key->bits + 7u) / 8 : 0;
	struct xfrm_algo *a;

	if (!fits(nlh, cap, fixed + len))
		return NULL;
	a = attr_reserve(nlh, type, fixed + len);
	strcpy(a->alg_name, name);
	a->alg_key_len = has_key ? key->bits : 0;
	if (len)
		memcpy((uint8_t *)a + fixed, key->data, len);
	return a;
}

static int put_algs(struct nlmsghdr *nlh, size_t cap, const struct pfkey_msg *m)
{
	bool enc = m->present & PFKEY_EXT_BIT(SADB_EXT_KEY_ENCRYPT);
	bool auth = m->present & PFKEY_EXT_BIT(SADB_EXT_KEY_AUTH);
	uint16_t icv = 0;
	bool aead = false;
	const char *name;

	if (m->encrypt != SADB_EALG_NONE) {
		name = xfrm_ealg_name(m->encrypt, &aead, &icv);
		if (!name || (enc && m->key_enc.bits && !m->key_enc.data))
			return -EINVAL;
		if (aead) {
			struct xfrm_algo_aead *a = put_alg(nlh, cap, XFRMA_ALG_AEAD, sizeof(*a), name,
							   enc, &m->key_enc);

			if (!a)
				return -EMSGSIZE;
			a->alg_icv_len = m->x_icv_bits ? m->x_icv_bits : icv;
		} else if (!put_alg(nlh, cap, XFRMA_ALG_CRYPT, sizeof(struct xfrm_algo), name, enc,
				    &m->key_enc)) {
			return -EMSGSIZE;
		}
	}
	if (m->auth != SADB_AALG_NONE) {
		struct xfrm_algo_auth *a;

		if (aead)
			return -EINVAL; /* an AEAD integrity-protects on its own */
		name = xfrm_aalg_name(m->auth, &icv);
		if (!name || (auth && m->key_auth.bits && !m->key_auth.data))
			return -EINVAL;
		a = put_alg(nlh, cap, XFRMA_ALG_AUTH_TRUNC, sizeof(*a), name, auth, &m->key_auth);
		if (!a)
			return -EMSGSIZE;
		a->alg_trunc_len = m->x_icv_bits ? m->x_icv_bits : icv;
	}
	return 0;
}

/* Bit of sequence number seq - diff in the ring of a window (xfrm_replay.c: xfrm_replay_check_bmp). */
static uint32_t ring_bit(uint32_t seq, uint32_t window, uint32_t diff)
{
	uint32_t pos = (seq - 1) % window;

	return pos >= diff ? pos - diff : window - (diff - pos);
}

bool xfrm_replay_seen(const struct kern_replay *r, uint32_t diff)
{
	uint32_t bit;

	if (diff >= r->window)
		return true;
	bit = ring_bit(r->seq, r->window, diff);
	/* A ring shorter than its window (a caller's own struct): what it lacks counts as seen. */
	if (bit / 32 >= r->bmp_len || bit / 32 >= KERN_REPLAY_BMP_MAX)
		return true;
	return (r->bmp[bit / 32] >> (bit % 32)) & 1;
}

/*
 * The replay state of an SA: the window, and with m->x_has_replay the state
 * to resume from. xfrm_user.c: xfrm_state_construct copies a whole
 * XFRMA_REPLAY_ESN_VAL (xfrm_alloc_replay_state_esn: seq, seq_hi, oseq,
 * oseq_hi and bmp) into both the state and the copy its notifications
 * compare with, and a legacy SA's XFRMA_REPLAY_VAL likewise
 * (xfrm_update_ae_params). Each sequence number of the new window counts as
 * received when it did in m->x_replay, or was older than its window, so a
 * window of another size loses nothing.
 */
static int put_replay(struct nlmsghdr *nlh, size_t cap, struct xfrm_usersa_info *p,
		      const struct pfkey_msg *m)
{
	const struct kern_replay *from = &m->x_replay;
	uint32_t window = m->x_replay_window ? m->x_replay_window : m->replay;
	struct {
		struct xfrm_replay_state_esn esn;
		uint32_t bmp[XFRMA_REPLAY_ESN_MAX / 32];
	} r;
	size_t len;

	if (!m->x_esn && !m->x_replay_window) {
		struct xfrm_replay_state legacy = { .oseq = from->oseq, .seq = from->seq };

		p->replay_window = m->replay;
		if (!m->x_has_replay)
			return 0;
		/* xfrm_user.c: copy_from_user_state caps a legacy window at its 32-bit bitmap. */
		for (uint32_t d = 0; d < m->replay && d < 32; d++)
			if (xfrm_replay_seen(from, d))
				legacy.bitmap |= 1u << d;
		if (!fits(nlh, cap, sizeof(legacy)))
			return -EMSGSIZE;
		mnl_attr_put(nlh, XFRMA_REPLAY_VAL, sizeof(legacy), &legacy);
		return 0;
	}
	/* xfrm_user.c: verify_replay — bitmap at most 4096 bits; ESN needs a window. */
	if (window > XFRMA_REPLAY_ESN_MAX || (m->x_esn && !window))
		return -EINVAL;
	memset(&r, 0, sizeof(r));
	r.esn.replay_window = window;
	r.esn.bmp_len = (window + 31) / 32;
	if (m->x_has_replay) {
		r.esn.seq = from->seq;
		r.esn.oseq = from->oseq;
		/* Without ESN the kernel keeps 32-bit counters (xfrm_replay_advance_bmp). */
		r.esn.seq_hi = m->x_esn ? from->seq_hi : 0;
		r.esn.oseq_hi = m->x_esn ? from->oseq_hi : 0;
		for (uint32_t d = 0; d < window; d++)
			if (xfrm_replay_seen(from, d)) {
				uint32_t bit = ring_bit(from->seq, window, d);

				r.bmp[bit / 32] |= 1u << (bit % 32);
			}
	}
	len = sizeof(r.esn) + r.esn.bmp_len * sizeof(uint32_t);
	if (!fits(nlh, cap, len))
		return -EMSGSIZE;
	mnl_attr_put(nlh, XFRMA_REPLAY_ESN_VAL, len, &r);
	p->replay_window = 0;
	if (m->x_esn)
		p->flags |= XFRM_STATE_ESN;
	return 0;
}

/*
 * The SA's notification thresholds. Without them xfrm_state_construct takes
 * the sysctls' (xfrm_aevent_rseqth: every 2 packets; xfrm_aevent_etime: 1 s)
 * and the SA notifies XFRMNLGRP_AEVENTS whenever anyone listens.
 * xfrm_replay.c (xfrm_replay_notify, _bmp, _esn): a packet notifies when it
 * moves seq or oseq by replay_maxdiff or more since the last notification,
 * never when replay_maxdiff is 0 unless XFRM_TIME_DEFER is set; that flag is
 * set only by the replay timer (xfrm_state.c: xfrm_replay_timer_handler),
 * which is armed only when replay_maxage is non-zero. So 0 and 0 is silence,
 * and a threshold of 1 reports every packet that moves seq, the first one
 * included, at once. XFRMA_ETIMER_THRESH is taken in jiffies here (0 either way).
 */
static int put_thresholds(struct nlmsghdr *nlh, size_t cap, const struct pfkey_msg *m)
{
	if (m->x_aevents != KERN_AEV_QUIET && m->x_aevents != KERN_AEV_FIRST)
		return -EINVAL;
	if (!fits(nlh, cap, sizeof(uint32_t)))
		return -EMSGSIZE;
	mnl_attr_put_u32(nlh, XFRMA_REPLAY_THRESH, m->x_aevents == KERN_AEV_FIRST ? 1 : 0);
	if (!fits(nlh, cap, sizeof(uint32_t)))
		return -EMSGSIZE;
	mnl_attr_put_u32(nlh, XFRMA_ETIMER_THRESH, 0);
	return 0;
}

static int encode_sa(struct nlmsghdr *nlh, size_t cap, const struct pfkey_msg *m, uint32_t acq_seq)
{
	const uint32_t need = PFKEY_EXT_BIT(SADB_EXT_SA) | PFKEY_EXT_BIT(SADB_EXT_ADDRESS_SRC) |
			      PFKEY_EXT_BIT(SADB_EXT_ADDRESS_DST);
	struct xfrm_usersa_info *p;
	int mode = XFRM_MODE_TRANSPORT, ret;

	if ((m->present & need) != need || m->src.family != m->dst.family)
		return -EINVAL;
	if (m->present & PFKEY_EXT_BIT(SADB_X_EXT_SA2))
		mode = mode_to_xfrm(m->mode);
	if (mode < 0 || !pfkey_satype_proto(m->satype))
		return -EINVAL;
	p = mnl_nlmsg_put_extra_header(nlh, sizeof(*p));
	if (put_addr(&p->id.daddr, &m->dst) || put_addr(&p->saddr, &m->src))
		return -EINVAL;
	p->id.spi = htonl(m->spi);
	p->id.proto = pfkey_satype_proto(m->satype);
	p->family = m->dst.family;
	/* A wildcard selector of the SA's family, as ip xfrm state add leaves it. */
	p->sel.family = m->dst.family;
	p->mode = (uint8_t)mode;
	p->reqid = (m->present & PFKEY_EXT_BIT(SADB_X_EXT_SA2)) ? m->reqid : 0;
	p->seq = acq_seq;
	if (m->flags & SADB_SAFLAGS_NOECN)
		p->flags |= XFRM_STATE_NOECN;
	if (m->flags & SADB_SAFLAGS_DECAP_DSCP)
		p->flags |= XFRM_STATE_DECAP_DSCP;
	if (m->flags & SADB_SAFLAGS_NOPMTUDISC)
		p->flags |= XFRM_STATE_NOPMTUDISC;
	put_lifetimes(&p->lft, m);
	ret = put_replay(nlh, cap, p, m);
	if (!ret)
		ret = put_thresholds(nlh, cap, m);
	if (!ret)
		ret = put_algs(nlh, cap, m);
	return ret;
}

static int encode_sa_id(struct nlmsghdr *nlh, size_t cap, const struct pfkey_msg *m)
{
	const uint32_t need = PFKEY_EXT_BIT(SADB_EXT_SA) | PFKEY_EXT_BIT(SADB_EXT_ADDRESS_DST);
	struct xfrm_usersa_id *id;

	if ((m->present & need) != need || !pfkey_satype_proto(m->satype))
		return -EINVAL;
	id = mnl_nlmsg_put_extra_header(nlh, sizeof(*id));
	if (put_addr(&id->daddr, &m->dst))
		return -EINVAL;
	id->spi = htonl(m->spi);
	id->family = m->dst.family;
	id->proto = pfkey_satype_proto(m->satype);
	if (m->present & PFKEY_EXT_BIT(SADB_EXT_ADDRESS_SRC) && m->src.family == m->dst.family) {
		xfrm_address_t s;

		if (!fits(nlh, cap, sizeof(s)) || put_addr(&s, &m->src))
			return -EMSGSIZE;
		mnl_attr_put(nlh, XFRMA_SRCADDR, sizeof(s), &s);
	}
	return 0;
}

static int encode_getspi(struct nlmsghdr *nlh, const struct pfkey_msg *m, uint32_t acq_seq)
{
	const uint32_t need = PFKEY_EXT_BIT(SADB_EXT_ADDRESS_SRC) | PFKEY_EXT_BIT(SADB_EXT_ADDRESS_DST);
	struct xfrm_userspi_info *s;
	int mode = XFRM_MODE_TRANSPORT;

	if ((m->present & need) != need || m->src.family != m->dst.family ||
	    !pfkey_satype_proto(m->satype))
		return -EINVAL;
	if (m->present & PFKEY_EXT_BIT(SADB_X_EXT_SA2))
		mode = mode_to_xfrm(m->mode);
	if (mode < 0)
		return -EINVAL;
	s = mnl_nlmsg_put_extra_header(nlh, sizeof(*s));
	if (put_addr(&s->info.id.daddr, &m->dst) || put_addr(&s->info.saddr, &m->src))
		return -EINVAL;
	s->info.id.proto = pfkey_satype_proto(m->satype);
	s->info.family = m->dst.family;
	s->info.sel.family = m->dst.family;
	s->info.mode = (uint8_t)mode;
	s->info.reqid = (m->present & PFKEY_EXT_BIT(SADB_X_EXT_SA2)) ? m->reqid : 0;
	s->info.seq = acq_seq;
	/* af_key.c: pfkey_getspi — without a range, 0x100..0x0fffffff. */
	if (m->present & PFKEY_EXT_BIT(SADB_EXT_SPIRANGE)) {
		s->min = m->spi_min;
		s->max = m->spi_max;
	} else {
		s->min = 0x100;
		s->max = 0x0fffffff;
	}
	return 0;
}

static int put_selector(struct xfrm_selector *sel, const struct pfkey_msg *m)
{
	const uint32_t need = PFKEY_EXT_BIT(SADB_EXT_ADDRESS_SRC) | PFKEY_EXT_BIT(SADB_EXT_ADDRESS_DST);
	unsigned max;

	if ((m->present & need) != need || m->src.family != m->dst.family)
		return -EINVAL;
	max = m->src.family == AF_INET ? 32 : 128;
	if (m->src.prefixlen > max || m->dst.prefixlen > max)
		return -EINVAL;
	if (put_addr(&sel->saddr, &m->src) || put_addr(&sel->daddr, &m->dst))
		return -EINVAL;
	sel->family = m->src.family;
	sel->prefixlen_s = m->src.prefixlen;
	sel->prefixlen_d = m->dst.prefixlen;
	/* af_key.c: pfkey_proto_to_xfrm — IPSEC_PROTO_ANY is 0 to XFRM. */
	sel->proto = m->src.proto == IPSEC_PROTO_ANY ? 0 : m->src.proto;
	sel->sport = htons(m->src.port);
	sel->sport_mask = m->src.port ? 0xffff : 0;
	sel->dport = htons(m->dst.port);
	sel->dport_mask = m->dst.port ? 0xffff : 0;
	return 0;
}

static int encode_policy(struct nlmsghdr *nlh, size_t cap, const struct pfkey_msg *m)
{
	const struct pfkey_policy *pol = &m->policy;
	struct xfrm_user_tmpl t[TMPL_MAX];
	struct xfrm_userpolicy_info *p;
	int dir = dir_to_xfrm(pol->dir);

	if (!(m->present & PFKEY_EXT_BIT(SADB_X_EXT_POLICY)) || dir < 0 || pol->nreqs > TMPL_MAX)
		return -EINVAL;
	p = mnl_nlmsg_put_extra_header(nlh, sizeof(*p));
	if (put_selector(&p->sel, m))
		return -EINVAL;
	p->lft.soft_byte_limit = p->lft.hard_byte_limit = XFRM_INF;
	p->lft.soft_packet_limit = p->lft.hard_packet_limit = XFRM_INF;
	p->priority = pol->priority;
	p->index = pol->id;
	p->dir = (uint8_t)dir;
	switch (pol->type) {
	case IPSEC_POLICY_DISCARD:
		p->action = XFRM_POLICY_BLOCK;
		break;
	case IPSEC_POLICY_NONE:
	case IPSEC_POLICY_IPSEC:
		p->action = XFRM_POLICY_ALLOW;
		break;
	default:
		return -EINVAL;
	}
	if (pol->type != IPSEC_POLICY_IPSEC || !pol->nreqs)
		return 0;
	memset(t, 0, sizeof(t));
	for (unsigned i = 0; i < pol->nreqs; i++) {
		const struct pfkey_ipsecreq *r = &pol->reqs[i];
		int mode = mode_to_xfrm(r->mode);

		if (mode < 0)
			return -EINVAL;
		t[i].id.proto = (uint8_t)r->proto;
		t[i].mode = (uint8_t)mode;
		t[i].family = p->sel.family;
		if (r->has_endpoints) {
			if (r->tun_src.family != r->tun_dst.family ||
			    put_addr(&t[i].saddr, &r->tun_src) || put_addr(&t[i].id.daddr, &r->tun_dst))
				return -EINVAL;
			t[i].family = r->tun_src.family;
		}
		/* af_key.c: parse_ipsecrequest — USE is optional; only UNIQUE keeps a reqid. */
		t[i].optional = r->level == IPSEC_LEVEL_USE;
		t[i].reqid = r->level == IPSEC_LEVEL_UNIQUE ? r->reqid : 0;
		t[i].aalgos = t[i].ealgos = t[i].calgos = ~0u;
	}
	if (!fits(nlh, cap, pol->nreqs * sizeof(t[0])))
		return -EMSGSIZE;
	mnl_attr_put(nlh, XFRMA_TMPL, pol->nreqs * sizeof(t[0]), t);
	return 0;
}

static int encode_policy_id(struct nlmsghdr *nlh, const struct pfkey_msg *m, bool by_index)
{
	struct xfrm_userpolicy_id *id;

	if (!(m->present & PFKEY_EXT_BIT(SADB_X_EXT_POLICY)))
		return -EINVAL;
	id = mnl_nlmsg_put_extra_header(nlh, sizeof(*id));
	if (by_index) {
		/* xfrm_policy_id2dir: the direction is in the index's low bits. */
		id->index = m->policy.id;
		id->dir = (uint8_t)(m->policy.id & 7);
		return m->policy.id ? 0 : -EINVAL;
	}
	if (dir_to_xfrm(m->policy.dir) < 0 || put_selector(&id->sel, m))
		return -EINVAL;
	id->dir = (uint8_t)dir_to_xfrm(m->policy.dir);
	return 0;
}

ssize_t xfrm_encode(const struct pfkey_msg *m, uint32_t seq, uint32_t portid, uint32_t acq_seq,
		    void *buf, size_t cap)
{
	struct nlmsghdr *nlh;
	uint16_t flags = NLM_F_REQUEST | NLM_F_ACK;
	int ret = 0;

	/* Room for the largest fixed part (xfrm_userspi_info); attributes are checked as added. */
	if (cap < MNL_NLMSG_HDRLEN + MNL_ALIGN(sizeof(struct xfrm_userspi_info)))
		return -EMSGSIZE;
	memset(buf, 0, MNL_NLMSG_HDRLEN + MNL_ALIGN(sizeof(struct xfrm_userspi_info)));
	nlh = mnl_nlmsg_put_header(buf);
	nlh->nlmsg_seq = seq;
	nlh->nlmsg_pid = portid;
	switch (m->type) {
	case SADB_ADD:
	case SADB_UPDATE:
		nlh->nlmsg_type = m->type == SADB_ADD ? XFRM_MSG_NEWSA : XFRM_MSG_UPDSA;
		ret = encode_sa(nlh, cap, m, acq_seq);
		break;
	case SADB_DELETE:
		nlh->nlmsg_type = XFRM_MSG_DELSA;
		ret = encode_sa_id(nlh, cap, m);
		break;
	case SADB_GET:
		nlh->nlmsg_type = XFRM_MSG_GETSA;
		flags = NLM_F_REQUEST;
		ret = encode_sa_id(nlh, cap, m);
		break;
	case SADB_GETSPI:
		nlh->nlmsg_type = XFRM_MSG_ALLOCSPI;
		flags = NLM_F_REQUEST;
		ret = encode_getspi(nlh, m, acq_seq);
		break;
	case SADB_FLUSH: {
		struct xfrm_usersa_flush *f = mnl_nlmsg_put_extra_header(nlh, sizeof(*f));

		nlh->nlmsg_type = XFRM_MSG_FLUSHSA;
		f->proto = pfkey_satype_proto(m->satype);
		break;
	}
	case SADB_DUMP:
		nlh->nlmsg_type = XFRM_MSG_GETSA;
		flags = NLM_F_REQUEST | NLM_F_DUMP;
		if (m->satype != SADB_SATYPE_UNSPEC) {
			if (!pfkey_satype_proto(m->satype))
				return -EINVAL;
			mnl_attr_put_u8(nlh, XFRMA_PROTO, pfkey_satype_proto(m->satype));
		}
		break;
	case SADB_X_SPDADD:
	case SADB_X_SPDUPDATE:
		nlh->nlmsg_type = m->type == SADB_X_SPDADD ? XFRM_MSG_NEWPOLICY : XFRM_MSG_UPDPOLICY;
		ret = encode_policy(nlh, cap, m);
		break;
	case SADB_X_SPDDELETE:
	case SADB_X_SPDDELETE2:
		nlh->nlmsg_type = XFRM_MSG_DELPOLICY;
		ret = encode_policy_id(nlh, m, m->type == SADB_X_SPDDELETE2);
		break;
	case SADB_X_SPDGET:
		nlh->nlmsg_type = XFRM_MSG_GETPOLICY;
		flags = NLM_F_REQUEST;
		ret = encode_policy_id(nlh, m, true);
		break;
	case SADB_X_SPDDUMP:
		nlh->nlmsg_type = XFRM_MSG_GETPOLICY;
		flags = NLM_F_REQUEST | NLM_F_DUMP;
		break;
	case SADB_X_SPDFLUSH:
		nlh->nlmsg_type = XFRM_MSG_FLUSHPOLICY;
		break;
	default:
		return -EOPNOTSUPP;
	}
	if (ret)
		return ret;
	nlh->nlmsg_flags = flags;
	if (nlh->nlmsg_len > cap)
		return -EMSGSIZE;
	return (ssize_t)NLMSG_ALIGN(nlh->nlmsg_len);
}

/* --- decoding ------------------------------------------------------------- */

struct attrs {
	const struct nlattr *tb[XFRMA_MAX + 1];
	const char *why;
};

/* Minimum payload of each attribute the decoder reads. */
static size_t attr_min(int type)
{
	switch (type) {
	case XFRMA_ALG_AUTH:
	case XFRMA_ALG_CRYPT:
	case XFRMA_ALG_COMP:
		return sizeof(struct xfrm_algo);
	case XFRMA_ALG_AUTH_TRUNC:
		return sizeof(struct xfrm_algo_auth);
	case XFRMA_ALG_AEAD:
		return sizeof(struct xfrm_algo_aead);
	case XFRMA_SA:
		return sizeof(struct xfrm_usersa_info);
	case XFRMA_POLICY:
		return sizeof(struct xfrm_userpolicy_info);
	case XFRMA_SRCADDR:
		return sizeof(xfrm_address_t);
	case XFRMA_REPLAY_ESN_VAL:
		return sizeof(struct xfrm_replay_state_esn);
	case XFRMA_REPLAY_VAL:
		return sizeof(struct xfrm_replay_state);
	case XFRMA_LTIME_VAL:
		return sizeof(struct xfrm_lifetime_cur);
	case XFRMA_REPLAY_THRESH:
	case XFRMA_ETIMER_THRESH:
		return sizeof(uint32_t);
	case XFRMA_TMPL:
		return 0;
	default:
		return 0;
	}
}

static int attr_cb(const struct nlattr *a, void *data)
{
	struct attrs *at = data;
	int type = mnl_attr_get_type(a);
	size_t len = mnl_attr_get_payload_len(a);

	if (type > XFRMA_MAX)
		return MNL_CB_OK; /* newer kernels' attributes: skipped */
	if (len < attr_min(type)) {
		at->why = "attribute shorter than its structure";
		return MNL_CB_ERROR;
	}
	if (type == XFRMA_TMPL && len % sizeof(struct xfrm_user_tmpl)) {
		at->why = "XFRMA_TMPL not a whole number of templates";
		return MNL_CB_ERROR;
	}
	at->tb[type] = a;
	return MNL_CB_OK;
}

static int parse_attrs(const struct nlmsghdr *nlh, size_t fixed, struct attrs *at, const char **why)
{
	memset(at, 0, sizeof(*at));
	if (nlh->nlmsg_len < MNL_NLMSG_HDRLEN + MNL_ALIGN(fixed)) {
		/* The fixed part may be the whole message, unpadded. */
		if (nlh->nlmsg_len < MNL_NLMSG_HDRLEN + fixed) {
			*why = "message shorter than its fixed part";
			return -EINVAL;
		}
		return 0;
	}
	/*
	 * mnl_attr_parse stops quietly at the first attribute that does not fit
	 * and measures against the padded end: walk them here, within
	 * nlmsg_len, and refuse a message whose attributes do not fill it.
	 */
	const uint8_t *end = (const uint8_t *)nlh + nlh->nlmsg_len;
	const uint8_t *pos = (const uint8_t *)nlh + MNL_NLMSG_HDRLEN + MNL_ALIGN(fixed);

	while (pos < end) {
		const struct nlattr *a = (const struct nlattr *)pos;
		size_t left = (size_t)(end - pos);

		if (left < MNL_ATTR_HDRLEN || a->nla_len < MNL_ATTR_HDRLEN || a->nla_len > left) {
			*why = "attribute length out of bounds";
			return -EINVAL;
		}
		if (attr_cb(a, at) != MNL_CB_OK) {
			*why = at->why;
			return -EINVAL;
		}
		size_t step = MNL_ALIGN((size_t)a->nla_len);

		pos += step < left ? step : left;
	}
	return 0;
}

/* A C string within n bytes. */
static bool has_nul(const char *s, size_t n)
{
	return memchr(s, 0, n) != NULL;
}

/*
 * Whether an algorithm attribute (struct xfrm_algo, _auth or _aead, of
 * fixed bytes) holds a C-string name and a key of at most 16 bits' length
 * within the attribute.
 */
static bool alg_ok(const struct nlattr *a, size_t fixed)
{
	const struct xfrm_algo *x = mnl_attr_get_payload(a);

	return has_nul(x->alg_name, sizeof(x->alg_name)) && x->alg_key_len <= UINT16_MAX &&
	       mnl_attr_get_payload_len(a) >= fixed + (x->alg_key_len + 7u) / 8;
}

/* The key of an algorithm attribute checked by alg_ok, as KEY_ENCRYPT or KEY_AUTH. */
static void get_key(struct pfkey_msg *m, uint16_t ext, const struct nlattr *a, size_t fixed)
{
	const struct xfrm_algo *x = mnl_attr_get_payload(a);
	struct pfkey_key *key = ext == SADB_EXT_KEY_ENCRYPT ? &m->key_enc : &m->key_auth;

	key->bits = (uint16_t)x->alg_key_len;
	key->data = (const uint8_t *)x + fixed;
	m->present |= PFKEY_EXT_BIT(ext);
}

static int get_algs(const struct attrs *at, struct pfkey_msg *m, bool *any, const char **why)
{
	const struct nlattr *a;

	*any = false;
	if ((a = at->tb[XFRMA_ALG_AEAD])) {
		const struct xfrm_algo_aead *x = mnl_attr_get_payload(a);

		if (!alg_ok(a, sizeof(*x))) {
			*why = "XFRMA_ALG_AEAD: bad name or key length";
			return -EINVAL;
		}
		m->encrypt = ealg_id(x->alg_name, true, x->alg_icv_len);
		m->x_icv_bits = x->alg_icv_len > UINT16_MAX ? 0 : (uint16_t)x->alg_icv_len;
		get_key(m, SADB_EXT_KEY_ENCRYPT, a, sizeof(*x));
		*any = true;
	}
	if ((a = at->tb[XFRMA_ALG_CRYPT])) {
		const struct xfrm_algo *x = mnl_attr_get_payload(a);

		if (!alg_ok(a, sizeof(*x))) {
			*why = "XFRMA_ALG_CRYPT: bad name or key length";
			return -EINVAL;
		}
		m->encrypt = ealg_id(x->alg_name, false, 0);
		get_key(m, SADB_EXT_KEY_ENCRYPT, a, sizeof(*x));
		*any = true;
	}
	/* The kernel sends both AUTH and AUTH_TRUNC; only the latter has the ICV length. */
	if ((a = at->tb[XFRMA_ALG_AUTH_TRUNC])) {
		const struct xfrm_algo_auth *x = mnl_attr_get_payload(a);

		if (!alg_ok(a, sizeof(*x)) || x->alg_trunc_len > UINT16_MAX) {
			*why = "XFRMA_ALG_AUTH_TRUNC: bad name or key length";
			return -EINVAL;
		}
		m->auth = aalg_id(x->alg_name);
		m->x_icv_bits = (uint16_t)x->alg_trunc_len;
		get_key(m, SADB_EXT_KEY_AUTH, a, sizeof(*x));
		*any = true;
	} else if ((a = at->tb[XFRMA_ALG_AUTH])) {
		const struct xfrm_algo *x = mnl_attr_get_payload(a);

		if (!alg_ok(a, sizeof(*x))) {
			*why = "XFRMA_ALG_AUTH: bad name or key length";
			return -EINVAL;
		}
		m->auth = aalg_id(x->alg_name);
		get_key(m, SADB_EXT_KEY_AUTH, a, sizeof(*x));
		*any = true;
	}
	if (at->tb[XFRMA_ALG_COMP])
		*any = true;
	return 0;
}

static void get_lifetimes(struct pfkey_msg *m, const struct xfrm_lifetime_cfg *l,
			  const struct xfrm_lifetime_cur *c, unsigned which)
{
	m->current.allocations = c->packets > UINT32_MAX ? UINT32_MAX : (uint32_t)c->packets;
	m->current.bytes = c->bytes;
	m->current.addtime = c->add_time;
	m->current.usetime = c->use_time;
	m->present |= PFKEY_EXT_BIT(SADB_EXT_LIFETIME_CURRENT);
	if (which & 1) {
		uint64_t p = zero_if_inf(l->soft_packet_limit);

		m->soft.allocations = p > UINT32_MAX ? UINT32_MAX : (uint32_t)p;
		m->soft.bytes = zero_if_inf(l->soft_byte_limit);
		m->soft.addtime = l->soft_add_expires_seconds;
		m->soft.usetime = l->soft_use_expires_seconds;
		m->present |= PFKEY_EXT_BIT(SADB_EXT_LIFETIME_SOFT);
	}
	if (which & 2) {
		uint64_t p = zero_if_inf(l->hard_packet_limit);

		m->hard.allocations = p > UINT32_MAX ? UINT32_MAX : (uint32_t)p;
		m->hard.bytes = zero_if_inf(l->hard_byte_limit);
		m->hard.addtime = l->hard_add_expires_seconds;
		m->hard.usetime = l->hard_use_expires_seconds;
		m->present |= PFKEY_EXT_BIT(SADB_EXT_LIFETIME_HARD);
	}
}

/*
 * The replay state of an SA or an aevent: XFRMA_REPLAY_ESN_VAL (BMP and ESN
 * modes), else a legacy XFRMA_REPLAY_VAL, whose 32-bit bitmap (bit d for
 * seq - d, xfrm_replay.c: xfrm_replay_advance) becomes the ring of
 * legacy_window (the SA's replay_window, at most 32) bits.
 */
static int get_replay(const struct attrs *at, uint32_t legacy_window, struct kern_replay *r,
		      bool *has, const char **why)
{
	const struct nlattr *a;

	*has = false;
	memset(r, 0, sizeof(*r));
	if ((a = at->tb[XFRMA_REPLAY_ESN_VAL])) {
		struct xfrm_replay_state_esn esn;
		size_t len = mnl_attr_get_payload_len(a);

		memcpy(&esn, mnl_attr_get_payload(a), sizeof(esn));
		if (esn.bmp_len > KERN_REPLAY_BMP_MAX) {
			*why = "XFRMA_REPLAY_ESN_VAL: bitmap longer than XFRMA_REPLAY_ESN_MAX";
			return -EINVAL;
		}
		if (len < sizeof(esn) + esn.bmp_len * sizeof(uint32_t)) {
			*why = "XFRMA_REPLAY_ESN_VAL: bitmap longer than its attribute";
			return -EINVAL;
		}
		if (esn.replay_window > esn.bmp_len * 32) {
			*why = "XFRMA_REPLAY_ESN_VAL: window wider than its bitmap";
			return -EINVAL;
		}
		r->window = esn.replay_window;
		r->seq = esn.seq;
		r->seq_hi = esn.seq_hi;
		r->oseq = esn.oseq;
		r->oseq_hi = esn.oseq_hi;
		r->bmp_len = esn.bmp_len;
		memcpy(r->bmp, (const uint8_t *)mnl_attr_get_payload(a) + sizeof(esn),
		       esn.bmp_len * sizeof(uint32_t));
		*has = true;
	} else if ((a = at->tb[XFRMA_REPLAY_VAL])) {
		struct xfrm_replay_state legacy;

		memcpy(&legacy, mnl_attr_get_payload(a), sizeof(legacy));
		r->window = legacy_window < 32 ? legacy_window : 32;
		r->seq = legacy.seq;
		r->oseq = legacy.oseq;
		r->bmp_len = 1;
		for (uint32_t d = 0; d < r->window; d++)
			if ((legacy.bitmap >> d) & 1)
				r->bmp[0] |= 1u << ring_bit(legacy.seq, r->window, d);
		*has = true;
	}
	return 0;
}

/* The SA of a usersa_info, as af_key's pfkey_xfrm_state2msg describes it. */
static int get_sa(struct pfkey_msg *m, const struct xfrm_usersa_info *p, const struct attrs *at,
		  unsigned lifetimes, const char **why)
{
	bool any_alg;
	int ret;

	if (!addr_len((uint8_t)p->family)) {
		*why = "SA of an unknown address family";
		return -EINVAL;
	}
	m->satype = proto_to_satype(p->id.proto);
	m->spi = ntohl(p->id.spi);
	m->replay = p->replay_window;
	m->flags = 0;
	if (p->flags & XFRM_STATE_NOECN)
		m->flags |= SADB_SAFLAGS_NOECN;
	if (p->flags & XFRM_STATE_DECAP_DSCP)
		m->flags |= SADB_SAFLAGS_DECAP_DSCP;
	if (p->flags & XFRM_STATE_NOPMTUDISC)
		m->flags |= SADB_SAFLAGS_NOPMTUDISC;
	m->x_esn = (p->flags & XFRM_STATE_ESN) != 0;
	if (at && at->tb[XFRMA_REPLAY_ESN_VAL]) {
		const struct xfrm_replay_state_esn *r = mnl_attr_get_payload(at->tb[XFRMA_REPLAY_ESN_VAL]);

		m->x_replay_window = r->replay_window;
		m->replay = r->replay_window > UINT8_MAX ? UINT8_MAX : (uint8_t)r->replay_window;
	}
	if (at) {
		ret = get_replay(at, p->replay_window, &m->x_replay, &m->x_has_replay, why);
		if (ret)
			return ret;
	}
	m->present |= PFKEY_EXT_BIT(SADB_EXT_SA);
	get_addr(&m->src, p->family, &p->saddr, p->family == AF_INET ? 32 : 128, 0, 0);
	get_addr(&m->dst, p->family, &p->id.daddr, p->family == AF_INET ? 32 : 128, 0, 0);
	m->present |= PFKEY_EXT_BIT(SADB_EXT_ADDRESS_SRC) | PFKEY_EXT_BIT(SADB_EXT_ADDRESS_DST);
	m->mode = mode_from_xfrm(p->mode);
	m->reqid = p->reqid;
	m->sa2_sequence = p->seq;
	m->present |= PFKEY_EXT_BIT(SADB_X_EXT_SA2);
	get_lifetimes(m, &p->lft, &p->curlft, lifetimes);
	any_alg = false;
	if (at) {
		ret = get_algs(at, m, &any_alg, why);
		if (ret)
			return ret;
	}
	/* An ACQUIRE's or ALLOCSPI's state has no algorithm yet: PF_KEY calls it larval. */
	m->state = any_alg ? SADB_SASTATE_MATURE : SADB_SASTATE_LARVAL;
	return 0;
}

static int get_policy(struct pfkey_msg *m, const struct xfrm_userpolicy_info *p,
		      const struct attrs *at, const char **why)
{
	struct pfkey_policy *pol = &m->policy;
	const struct xfrm_selector *s = &p->sel;
	unsigned max;

	if (!addr_len((uint8_t)s->family)) {
		*why = "policy selector of an unknown address family";
		return -EINVAL;
	}
	max = s->family == AF_INET ? 32 : 128;
	if (s->prefixlen_s > max || s->prefixlen_d > max || p->dir > XFRM_POLICY_FWD) {
		*why = "policy selector prefix or direction out of range";
		return -EINVAL;
	}
	get_addr(&m->src, s->family, &s->saddr, s->prefixlen_s, s->proto, s->sport);
	get_addr(&m->dst, s->family, &s->daddr, s->prefixlen_d, s->proto, s->dport);
	m->present |= PFKEY_EXT_BIT(SADB_EXT_ADDRESS_SRC) | PFKEY_EXT_BIT(SADB_EXT_ADDRESS_DST);
	memset(pol, 0, sizeof(*pol));
	pol->dir = (uint8_t)(p->dir + 1);
	pol->id = p->index;
	pol->priority = p->priority;
	m->present |= PFKEY_EXT_BIT(SADB_X_EXT_POLICY);
	if (p->action == XFRM_POLICY_BLOCK) {
		pol->type = IPSEC_POLICY_DISCARD;
		return 0;
	}
	pol->type = IPSEC_POLICY_NONE;
	if (at && at->tb[XFRMA_TMPL]) {
		const struct xfrm_user_tmpl *t = mnl_attr_get_payload(at->tb[XFRMA_TMPL]);
		size_t n = mnl_attr_get_payload_len(at->tb[XFRMA_TMPL]) / sizeof(*t);

		if (n > TMPL_MAX) {
			*why = "more templates than XFRM_MAX_DEPTH";
			return -EINVAL;
		}
		pol->type = n ? IPSEC_POLICY_IPSEC : IPSEC_POLICY_NONE;
		for (size_t i = 0; i < n; i++) {
			struct pfkey_ipsecreq *r = &pol->reqs[pol->nreqs++];

			r->proto = t[i].id.proto;
			r->mode = mode_from_xfrm(t[i].mode);
			r->reqid = t[i].reqid;
			r->level = t[i].optional ? IPSEC_LEVEL_USE :
				   t[i].reqid	 ? IPSEC_LEVEL_UNIQUE :
						   IPSEC_LEVEL_REQUIRE;
			if (t[i].mode == XFRM_MODE_TUNNEL && addr_len((uint8_t)t[i].family)) {
				r->has_endpoints = true;
				get_addr(&r->tun_src, t[i].family, &t[i].saddr,
					 t[i].family == AF_INET ? 32 : 128, 0, 0);
				get_addr(&r->tun_dst, t[i].family, &t[i].id.daddr,
					 t[i].family == AF_INET ? 32 : 128, 0, 0);
			}
		}
	}
	return 0;
}

/*
 * Netlink aligns messages and attributes to 4 bytes only, and several XFRM
 * structures hold 64-bit counters: the decoder reads those from aligned
 * copies, never in place.
 */
union fixed {
	struct xfrm_usersa_info sa;
	struct xfrm_usersa_id id;
	struct xfrm_user_expire expire;
	struct xfrm_user_acquire acquire;
	struct xfrm_usersa_flush flush;
	struct xfrm_userpolicy_info pol;
	struct xfrm_userpolicy_id pol_id;
	struct xfrm_user_polexpire polexpire;
};

int xfrm_decode(const struct nlmsghdr *nlh, struct pfkey_msg *m, const char **why)
{
	const char *dummy;
	struct attrs at;
	union fixed fx;
	const void *data = &fx;
	int ret = 0;

	if (!why)
		why = &dummy;
	*why = NULL;
	memset(m, 0, sizeof(*m));
	if (nlh->nlmsg_len < MNL_NLMSG_HDRLEN) {
		*why = "netlink message shorter than its header";
		return -EINVAL;
	}
	memset(&fx, 0, sizeof(fx));
	memcpy(&fx, mnl_nlmsg_get_payload(nlh),
	       nlh->nlmsg_len - MNL_NLMSG_HDRLEN < sizeof(fx) ? nlh->nlmsg_len - MNL_NLMSG_HDRLEN :
								 sizeof(fx));
	m->pid = nlh->nlmsg_pid;
	m->seq = nlh->nlmsg_seq;
	switch (nlh->nlmsg_type) {
	case XFRM_MSG_NEWSA:
	case XFRM_MSG_UPDSA:
		m->type = nlh->nlmsg_type == XFRM_MSG_NEWSA ? SADB_ADD : SADB_UPDATE;
		ret = parse_attrs(nlh, sizeof(struct xfrm_usersa_info), &at, why);
		if (!ret)
			ret = get_sa(m, data, &at, 3, why);
		break;
	case XFRM_MSG_DELSA: {
		const struct xfrm_usersa_id *id = data;

		m->type = SADB_DELETE;
		ret = parse_attrs(nlh, sizeof(*id), &at, why);
		if (ret)
			break;
		if (at.tb[XFRMA_SA]) {
			struct xfrm_usersa_info sa;

			/* xfrm_notify_sa: the whole SA follows the id (its keys too). */
			memcpy(&sa, mnl_attr_get_payload(at.tb[XFRMA_SA]), sizeof(sa));
			ret = get_sa(m, &sa, &at, 3, why);
			break;
		}
		if (!addr_len((uint8_t)id->family)) {
			*why = "SA id of an unknown address family";
			ret = -EINVAL;
			break;
		}
		m->satype = proto_to_satype(id->proto);
		m->spi = ntohl(id->spi);
		m->state = SADB_SASTATE_MATURE;
		m->present |= PFKEY_EXT_BIT(SADB_EXT_SA);
		get_addr(&m->dst, id->family, &id->daddr, id->family == AF_INET ? 32 : 128, 0, 0);
		m->present |= PFKEY_EXT_BIT(SADB_EXT_ADDRESS_DST);
		if (at.tb[XFRMA_SRCADDR]) {
			get_addr(&m->src, id->family, mnl_attr_get_payload(at.tb[XFRMA_SRCADDR]),
				 id->family == AF_INET ? 32 : 128, 0, 0);
			m->present |= PFKEY_EXT_BIT(SADB_EXT_ADDRESS_SRC);
		}
		break;
	}
	case XFRM_MSG_EXPIRE: {
		const struct xfrm_user_expire *e = data;

		m->type = SADB_EXPIRE;
		ret = parse_attrs(nlh, sizeof(*e), &at, why);
		if (!ret)
			ret = get_sa(m, &e->state, NULL, e->hard ? 2 : 1, why);
		/* af_key.c: key_notify_sa_expire — DYING on soft, DEAD on hard. */
		m->state = e->hard ? SADB_SASTATE_DEAD : SADB_SASTATE_DYING;
		break;
	}
	case XFRM_MSG_ACQUIRE: {
		const struct xfrm_user_acquire *a = data;
		uint16_t family;

		m->type = SADB_ACQUIRE;
		ret = parse_attrs(nlh, sizeof(*a), &at, why);
		if (ret)
			break;
		/* The larval state's family is its first template's (tunnel endpoints). */
		family = a->sel.family ? a->sel.family : a->policy.sel.family;
		if (at.tb[XFRMA_TMPL] && mnl_attr_get_payload_len(at.tb[XFRMA_TMPL])) {
			const struct xfrm_user_tmpl *t = mnl_attr_get_payload(at.tb[XFRMA_TMPL]);

			if (addr_len((uint8_t)t->family))
				family = t->family;
		}
		if (!addr_len((uint8_t)family) || a->policy.dir > XFRM_POLICY_FWD) {
			*why = "ACQUIRE of an unknown address family or direction";
			ret = -EINVAL;
			break;
		}
		m->satype = proto_to_satype(a->id.proto);
		m->seq = a->seq;
		get_addr(&m->src, family, &a->saddr, family == AF_INET ? 32 : 128, 0, 0);
		get_addr(&m->dst, family, &a->id.daddr, family == AF_INET ? 32 : 128, 0, 0);
		m->present |= PFKEY_EXT_BIT(SADB_EXT_ADDRESS_SRC) | PFKEY_EXT_BIT(SADB_EXT_ADDRESS_DST);
		m->policy.type = IPSEC_POLICY_IPSEC;
		m->policy.dir = (uint8_t)(a->policy.dir + 1);
		m->policy.id = a->policy.index;
		m->policy.priority = a->policy.priority;
		m->present |= PFKEY_EXT_BIT(SADB_X_EXT_POLICY);
		break;
	}
	case XFRM_MSG_FLUSHSA: {
		const struct xfrm_usersa_flush *f = data;

		m->type = SADB_FLUSH;
		if (nlh->nlmsg_len < MNL_NLMSG_HDRLEN + sizeof(*f)) {
			*why = "FLUSHSA shorter than its fixed part";
			ret = -EINVAL;
			break;
		}
		m->satype = proto_to_satype(f->proto);
		break;
	}
	case XFRM_MSG_NEWPOLICY:
	case XFRM_MSG_UPDPOLICY:
		m->type = nlh->nlmsg_type == XFRM_MSG_NEWPOLICY ? SADB_X_SPDADD : SADB_X_SPDUPDATE;
		ret = parse_attrs(nlh, sizeof(struct xfrm_userpolicy_info), &at, why);
		if (!ret)
			ret = get_policy(m, data, &at, why);
		break;
	case XFRM_MSG_DELPOLICY: {
		const struct xfrm_userpolicy_id *id = data;

		m->type = SADB_X_SPDDELETE;
		ret = parse_attrs(nlh, sizeof(*id), &at, why);
		if (ret)
			break;
		if (at.tb[XFRMA_POLICY]) {
			struct xfrm_userpolicy_info pol;

			memcpy(&pol, mnl_attr_get_payload(at.tb[XFRMA_POLICY]), sizeof(pol));
			ret = get_policy(m, &pol, &at, why);
			break;
		}
		if (id->dir > XFRM_POLICY_FWD) {
			*why = "policy direction out of range";
			ret = -EINVAL;
			break;
		}
		m->policy.dir = (uint8_t)(id->dir + 1);
		m->policy.id = id->index;
		m->present |= PFKEY_EXT_BIT(SADB_X_EXT_POLICY);
		break;
	}
	case XFRM_MSG_POLEXPIRE: {
		const struct xfrm_user_polexpire *e = data;

		m->type = SADB_X_SPDEXPIRE;
		ret = parse_attrs(nlh, sizeof(*e), &at, why);
		if (!ret)
			ret = get_policy(m, &e->pol, &at, why);
		break;
	}
	case XFRM_MSG_FLUSHPOLICY:
		m->type = SADB_X_SPDFLUSH;
		break;
	default:
		return 0;
	}
	if (ret) {
		memset(m, 0, sizeof(*m));
		return ret;
	}
	return 1;
}

int xfrm_decode_aevent(const struct nlmsghdr *nlh, struct kern_aevent *ev, const char **why)
{
	struct xfrm_aevent_id id;
	const char *dummy;
	struct attrs at;
	uint8_t full;
	int ret;

	if (!why)
		why = &dummy;
	*why = NULL;
	memset(ev, 0, sizeof(*ev));
	if (nlh->nlmsg_len < MNL_NLMSG_HDRLEN) {
		*why = "netlink message shorter than its header";
		return -EINVAL;
	}
	if (nlh->nlmsg_type != XFRM_MSG_NEWAE)
		return 0;
	ret = parse_attrs(nlh, sizeof(id), &at, why);
	if (ret)
		goto fail;
	memcpy(&id, mnl_nlmsg_get_payload(nlh), sizeof(id));
	if (!addr_len((uint8_t)id.sa_id.family)) {
		*why = "aevent of an unknown address family";
		ret = -EINVAL;
		goto fail;
	}
	full = id.sa_id.family == AF_INET ? 32 : 128;
	get_addr(&ev->dst, id.sa_id.family, &id.sa_id.daddr, full, 0, 0);
	get_addr(&ev->src, id.sa_id.family, &id.saddr, full, 0, 0);
	ev->spi = ntohl(id.sa_id.spi);
	ev->proto = id.sa_id.proto;
	ev->reqid = id.reqid;
	ev->flags = id.flags;
	/* xfrm_aevent_id has no window: a legacy bitmap is read as 32 bits wide. */
	ret = get_replay(&at, 32, &ev->replay, &ev->has_replay, why);
	if (ret)
		goto fail;
	if (at.tb[XFRMA_LTIME_VAL]) {
		struct xfrm_lifetime_cur cur;

		/* nla_put_64bit aligns it with XFRMA_PAD, but copy: the datagram may not be. */
		memcpy(&cur, mnl_attr_get_payload(at.tb[XFRMA_LTIME_VAL]), sizeof(cur));
		ev->bytes = cur.bytes;
		ev->packets = cur.packets;
		ev->add_time = cur.add_time > INT64_MAX ? INT64_MAX : (int64_t)cur.add_time;
		ev->use_time = cur.use_time > INT64_MAX ? INT64_MAX : (int64_t)cur.use_time;
		ev->has_lifetime = true;
	}
	return 1;
fail:
	memset(ev, 0, sizeof(*ev));
	return ret;
}

ssize_t xfrm_encode_aevent_quiet(const struct pfkey_addr *dst, uint32_t spi, uint8_t proto,
				 uint32_t seq, uint32_t portid, void *buf, size_t cap)
{
	size_t need = MNL_NLMSG_HDRLEN + MNL_ALIGN(sizeof(struct xfrm_aevent_id)) +
		      2 * MNL_ALIGN(MNL_ATTR_HDRLEN + sizeof(uint32_t));
	struct xfrm_aevent_id *id;
	struct nlmsghdr *nlh;

	if (!addr_len(dst->family) || !proto)
		return -EINVAL;
	if (cap < need)
		return -EMSGSIZE;
	memset(buf, 0, need);
	nlh = mnl_nlmsg_put_header(buf);
	nlh->nlmsg_type = XFRM_MSG_NEWAE;
	/* xfrm_user.c: xfrm_new_ae refuses a request without NLM_F_REPLACE. */
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_REPLACE | NLM_F_ACK;
	nlh->nlmsg_seq = seq;
	nlh->nlmsg_pid = portid;
	id = mnl_nlmsg_put_extra_header(nlh, sizeof(*id));
	put_addr(&id->sa_id.daddr, dst);
	id->sa_id.spi = htonl(spi);
	id->sa_id.family = dst->family;
	id->sa_id.proto = proto;
	id->flags = XFRM_AE_RTHR | XFRM_AE_ETHR;
	mnl_attr_put_u32(nlh, XFRMA_REPLAY_THRESH, 0);
	mnl_attr_put_u32(nlh, XFRMA_ETIMER_THRESH, 0);
	return (ssize_t)nlh->nlmsg_len;
}
