/* SPDX-License-Identifier: ISC */
/* The XFRM netlink codec: requests, round trips, hostile input, real kernel messages. */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <libmnl/libmnl.h>
#include <linux/xfrm.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include "fixture.h"

#include "svc/kernel/xfrm.h"

static _Alignas(8) uint8_t buf[65536];
static uint8_t ekey[36], akey[64];

static void sa_msg(struct pfkey_msg *m, uint8_t type, const char *src, const char *dst, uint8_t mode,
		   uint8_t ealg, uint16_t ebits, uint8_t aalg, uint16_t abits)
{
	struct pfkey_addr s, d;
	struct pfkey_lifetime soft = { .addtime = 100, .bytes = 1000 };
	struct pfkey_lifetime hard = { .addtime = 200, .allocations = 7 };

	assert_int_equal(pfkey_addr_from_string(&s, src), 0);
	assert_int_equal(pfkey_addr_from_string(&d, dst), 0);
	pfkey_msg_init(m, type, SADB_SATYPE_ESP, 0, 0);
	pfkey_set_sa(m, 0x2a0105, 32, aalg, ealg);
	pfkey_set_addr(m, SADB_EXT_ADDRESS_SRC, &s);
	pfkey_set_addr(m, SADB_EXT_ADDRESS_DST, &d);
	if (ealg)
		pfkey_set_key(m, SADB_EXT_KEY_ENCRYPT, ekey, ebits);
	if (aalg)
		pfkey_set_key(m, SADB_EXT_KEY_AUTH, akey, abits);
	pfkey_set_sa2(m, mode, 0);
	pfkey_set_lifetime(m, SADB_EXT_LIFETIME_SOFT, &soft);
	pfkey_set_lifetime(m, SADB_EXT_LIFETIME_HARD, &hard);
}

static const struct nlmsghdr *encode(const struct pfkey_msg *m, uint32_t acq)
{
	ssize_t len = xfrm_encode(m, 77, 4242, acq, buf, sizeof(buf));
	const struct nlmsghdr *nlh = (const void *)buf;

	assert_true(len > 0);
	assert_int_equal(NLMSG_ALIGN(nlh->nlmsg_len), len);
	assert_int_equal(nlh->nlmsg_seq, 77);
	assert_int_equal(nlh->nlmsg_pid, 4242);
	return nlh;
}

/* An ADD becomes NEWSA; decoding it gives back everything the daemon sets. */
static void sa_roundtrip(const char *src, const char *dst, uint8_t mode)
{
	struct pfkey_msg m, d;
	const struct nlmsghdr *nlh;
	const struct xfrm_usersa_info *p;
	const char *why;

	sa_msg(&m, SADB_ADD, src, dst, mode, SADB_X_EALG_AESCBC, 256, SADB_X_AALG_SHA2_256HMAC, 256);
	m.x_icv_bits = 128;
	m.x_replay_window = 128;
	m.x_esn = true;
	nlh = encode(&m, 0x55);
	assert_int_equal(nlh->nlmsg_type, XFRM_MSG_NEWSA);
	assert_int_equal(nlh->nlmsg_flags, NLM_F_REQUEST | NLM_F_ACK);
	p = mnl_nlmsg_get_payload(nlh);
	assert_int_equal(ntohl(p->id.spi), 0x2a0105);
	assert_int_equal(p->id.proto, IPPROTO_ESP);
	assert_int_equal(p->seq, 0x55); /* km.seq: the ACQUIRE it answers */
	assert_int_equal(p->mode, mode == IPSEC_MODE_TUNNEL ? XFRM_MODE_TUNNEL : XFRM_MODE_TRANSPORT);
	assert_int_equal(p->replay_window, 0); /* ESN: the window is in the attribute */
	assert_true(p->flags & XFRM_STATE_ESN);
	/* PF_KEY's "no limit" is 0; XFRM's is XFRM_INF for bytes and packets. */
	assert_true(p->lft.hard_byte_limit == XFRM_INF && p->lft.soft_packet_limit == XFRM_INF);
	assert_true(p->lft.soft_byte_limit == 1000 && p->lft.hard_packet_limit == 7);

	assert_int_equal(xfrm_decode(nlh, &d, &why), 1);
	assert_int_equal(d.type, SADB_ADD);
	assert_int_equal(d.spi, 0x2a0105);
	assert_int_equal(d.satype, SADB_SATYPE_ESP);
	assert_int_equal(d.state, SADB_SASTATE_MATURE);
	assert_int_equal(d.src.family, m.src.family);
	assert_memory_equal(d.src.addr, m.src.addr, 16);
	assert_memory_equal(d.dst.addr, m.dst.addr, 16);
	assert_int_equal(d.mode, mode);
	assert_int_equal(d.encrypt, SADB_X_EALG_AESCBC);
	assert_int_equal(d.auth, SADB_X_AALG_SHA2_256HMAC);
	assert_int_equal(d.x_icv_bits, 128);
	assert_int_equal(d.x_replay_window, 128);
	assert_true(d.x_esn);
	assert_int_equal(d.key_enc.bits, 256);
	assert_memory_equal(d.key_enc.data, ekey, 32);
	assert_int_equal(d.key_auth.bits, 256);
	assert_memory_equal(d.key_auth.data, akey, 32);
	assert_int_equal(d.soft.addtime, 100);
	assert_int_equal(d.soft.bytes, 1000);
	assert_int_equal(d.soft.allocations, 0);
	assert_int_equal(d.hard.addtime, 200);
	assert_int_equal(d.hard.allocations, 7);
	assert_int_equal(d.hard.bytes, 0);
	pfkey_cleanse(buf, sizeof(buf));
}

static void roundtrip_v4_transport(void **state)
{
	sa_roundtrip("192.0.2.1", "198.51.100.7", IPSEC_MODE_TRANSPORT);
}

static void roundtrip_v6_tunnel(void **state)
{
	sa_roundtrip("2001:db8::1", "2001:db8::2", IPSEC_MODE_TUNNEL);
}

/* AES-GCM (XFRM only): AEAD attribute, key with salt, ICV; gcm-128 and -256 by key length. */
static void gcm(void **state)
{
	struct pfkey_msg m, d;
	const struct nlmsghdr *nlh;
	const char *why;

	sa_msg(&m, SADB_ADD, "192.0.2.1", "198.51.100.7", IPSEC_MODE_TRANSPORT,
	       SADB_X_EALG_AES_GCM_ICV16, 160, 0, 0);
	nlh = encode(&m, 0);
	assert_int_equal(xfrm_decode(nlh, &d, &why), 1);
	assert_int_equal(d.encrypt, SADB_X_EALG_AES_GCM_ICV16);
	assert_int_equal(d.auth, 0);
	assert_int_equal(d.x_icv_bits, 128);
	assert_int_equal(d.key_enc.bits, 160);
	assert_memory_equal(d.key_enc.data, ekey, 20);
	assert_false(d.present & PFKEY_EXT_BIT(SADB_EXT_KEY_AUTH));
	/* An AEAD with an integrity algorithm is refused, as the kernel would. */
	sa_msg(&m, SADB_ADD, "192.0.2.1", "198.51.100.7", IPSEC_MODE_TRANSPORT,
	       SADB_X_EALG_AES_GCM_ICV16, 160, SADB_X_AALG_SHA2_256HMAC, 256);
	assert_int_equal(xfrm_encode(&m, 1, 1, 0, buf, sizeof(buf)), -EINVAL);
	pfkey_cleanse(buf, sizeof(buf));
}

/* Without ESN or a large window, the u8 replay window goes in usersa_info. */
static void legacy_replay(void **state)
{
	struct pfkey_msg m, d;
	const struct nlmsghdr *nlh;
	const struct xfrm_usersa_info *p;

	sa_msg(&m, SADB_ADD, "192.0.2.1", "198.51.100.7", IPSEC_MODE_TRANSPORT, SADB_X_EALG_AESCBC,
	       256, SADB_X_AALG_SHA2_512HMAC, 512);
	nlh = encode(&m, 0);
	p = mnl_nlmsg_get_payload(nlh);
	assert_int_equal(p->replay_window, 32);
	assert_false(p->flags & XFRM_STATE_ESN);
	assert_int_equal(xfrm_decode(nlh, &d, NULL), 1);
	assert_int_equal(d.replay, 32);
	assert_false(d.x_esn);
	assert_int_equal(d.x_icv_bits, 256); /* RFC 4868's default for SHA-512 */
	/* Windows XFRM cannot hold. */
	m.x_replay_window = XFRMA_REPLAY_ESN_MAX + 1;
	assert_int_equal(xfrm_encode(&m, 1, 1, 0, buf, sizeof(buf)), -EINVAL);
	m.x_replay_window = 0;
	m.replay = 0;
	m.x_esn = true;
	assert_int_equal(xfrm_encode(&m, 1, 1, 0, buf, sizeof(buf)), -EINVAL);
	pfkey_cleanse(buf, sizeof(buf));
}

static void requests(void **state)
{
	struct pfkey_msg m;
	const struct nlmsghdr *nlh;
	const struct xfrm_usersa_id *id;

	sa_msg(&m, SADB_DELETE, "192.0.2.1", "198.51.100.7", IPSEC_MODE_TRANSPORT, 0, 0, 0, 0);
	nlh = encode(&m, 0);
	assert_int_equal(nlh->nlmsg_type, XFRM_MSG_DELSA);
	id = mnl_nlmsg_get_payload(nlh);
	assert_int_equal(ntohl(id->spi), 0x2a0105);
	assert_int_equal(id->family, AF_INET);
	assert_int_equal(id->proto, IPPROTO_ESP);
	assert_memory_equal(&id->daddr, m.dst.addr, 4);

	m.type = SADB_GET;
	nlh = encode(&m, 0);
	assert_int_equal(nlh->nlmsg_type, XFRM_MSG_GETSA);
	assert_int_equal(nlh->nlmsg_flags, NLM_F_REQUEST); /* answered by the SA or an error */
	assert_true(xfrm_reply_is_data(SADB_GET));
	assert_false(xfrm_reply_is_data(SADB_ADD));

	pfkey_msg_init(&m, SADB_DUMP, SADB_SATYPE_UNSPEC, 0, 0);
	nlh = encode(&m, 0);
	assert_int_equal(nlh->nlmsg_type, XFRM_MSG_GETSA);
	assert_int_equal(nlh->nlmsg_flags, NLM_F_REQUEST | NLM_F_DUMP);
	pfkey_msg_init(&m, SADB_FLUSH, SADB_SATYPE_ESP, 0, 0);
	nlh = encode(&m, 0);
	assert_int_equal(nlh->nlmsg_type, XFRM_MSG_FLUSHSA);
	assert_int_equal(((const struct xfrm_usersa_flush *)mnl_nlmsg_get_payload(nlh))->proto,
			 IPPROTO_ESP);

	/* What XFRM has no request for, and what cannot be said. */
	pfkey_msg_init(&m, SADB_REGISTER, SADB_SATYPE_ESP, 0, 0);
	assert_int_equal(xfrm_encode(&m, 1, 1, 0, buf, sizeof(buf)), -EOPNOTSUPP);
	sa_msg(&m, SADB_ADD, "192.0.2.1", "198.51.100.7", IPSEC_MODE_TRANSPORT, 99, 256, 0, 0);
	assert_int_equal(xfrm_encode(&m, 1, 1, 0, buf, sizeof(buf)), -EINVAL);
	sa_msg(&m, SADB_ADD, "192.0.2.1", "2001:db8::2", IPSEC_MODE_TRANSPORT, SADB_X_EALG_AESCBC,
	       256, 0, 0);
	assert_int_equal(xfrm_encode(&m, 1, 1, 0, buf, sizeof(buf)), -EINVAL);
	sa_msg(&m, SADB_ADD, "192.0.2.1", "198.51.100.7", IPSEC_MODE_TRANSPORT, SADB_X_EALG_AESCBC,
	       256, SADB_X_AALG_SHA2_512HMAC, 512);
	assert_int_equal(xfrm_encode(&m, 1, 1, 0, buf, 200), -EMSGSIZE);
	assert_int_equal(xfrm_encode(&m, 1, 1, 0, buf, 300), -EMSGSIZE);
	pfkey_cleanse(buf, sizeof(buf));
}

/* A tunnel policy with its template, and the policy id forms of delete and get. */
static void policies(void **state)
{
	struct pfkey_ipsecreq req = {
		.proto = IPPROTO_ESP, .mode = IPSEC_MODE_TUNNEL, .level = IPSEC_LEVEL_REQUIRE,
		.has_endpoints = true,
	};
	struct pfkey_addr s, d;
	struct pfkey_msg m, out;
	const struct nlmsghdr *nlh;
	const struct xfrm_userpolicy_id *id;

	pfkey_addr_from_string(&s, "10.1.0.0/16");
	pfkey_addr_from_string(&d, "10.2.0.0/16");
	pfkey_addr_from_string(&req.tun_src, "192.0.2.1");
	pfkey_addr_from_string(&req.tun_dst, "198.51.100.7");
	pfkey_msg_init(&m, SADB_X_SPDUPDATE, SADB_SATYPE_UNSPEC, 0, 0);
	pfkey_set_addr(&m, SADB_EXT_ADDRESS_SRC, &s);
	pfkey_set_addr(&m, SADB_EXT_ADDRESS_DST, &d);
	pfkey_set_policy(&m, IPSEC_POLICY_IPSEC, IPSEC_DIR_FWD, 1000);
	assert_int_equal(pfkey_policy_add_req(&m, &req), 0);
	nlh = encode(&m, 0);
	assert_int_equal(nlh->nlmsg_type, XFRM_MSG_UPDPOLICY);
	assert_int_equal(xfrm_decode(nlh, &out, NULL), 1);
	assert_int_equal(out.type, SADB_X_SPDUPDATE);
	assert_int_equal(out.src.prefixlen, 16);
	assert_int_equal(out.dst.prefixlen, 16);
	assert_memory_equal(out.dst.addr, d.addr, 4);
	assert_int_equal(out.src.proto, IPSEC_PROTO_ANY);
	assert_int_equal(out.policy.dir, IPSEC_DIR_FWD);
	assert_int_equal(out.policy.priority, 1000);
	assert_int_equal(out.policy.type, IPSEC_POLICY_IPSEC);
	assert_int_equal(out.policy.nreqs, 1);
	assert_int_equal(out.policy.reqs[0].mode, IPSEC_MODE_TUNNEL);
	assert_int_equal(out.policy.reqs[0].level, IPSEC_LEVEL_REQUIRE);
	assert_true(out.policy.reqs[0].has_endpoints);
	assert_memory_equal(out.policy.reqs[0].tun_dst.addr, req.tun_dst.addr, 4);

	m.type = SADB_X_SPDDELETE;
	nlh = encode(&m, 0);
	assert_int_equal(nlh->nlmsg_type, XFRM_MSG_DELPOLICY);
	id = mnl_nlmsg_get_payload(nlh);
	assert_int_equal(id->dir, XFRM_POLICY_FWD);
	assert_int_equal(id->index, 0);
	assert_int_equal(id->sel.prefixlen_s, 16);
	m.type = SADB_X_SPDDELETE2;
	m.policy.id = 0x1a; /* index 0x1a: direction 0x1a & 7 = 2, FWD */
	nlh = encode(&m, 0);
	id = mnl_nlmsg_get_payload(nlh);
	assert_int_equal(id->index, 0x1a);
	assert_int_equal(id->dir, 2);
	/* A selector prefix beyond the family's bits is refused. */
	m.type = SADB_X_SPDADD;
	m.src.prefixlen = 33;
	assert_int_equal(xfrm_encode(&m, 1, 1, 0, buf, sizeof(buf)), -EINVAL);
}

/* --- hostile input ----------------------------------------------------------- */

static struct nlmsghdr *valid_newsa(void)
{
	struct pfkey_msg m;

	sa_msg(&m, SADB_ADD, "192.0.2.1", "198.51.100.7", IPSEC_MODE_TRANSPORT, SADB_X_EALG_AESCBC,
	       256, SADB_X_AALG_SHA2_512HMAC, 512);
	encode(&m, 0);
	return (struct nlmsghdr *)buf;
}

/* The first attribute of type in a NEWSA message. */
static struct nlattr *find_attr(struct nlmsghdr *nlh, int type)
{
	struct nlattr *a;

	mnl_attr_for_each(a, nlh, sizeof(struct xfrm_usersa_info))
		if (mnl_attr_get_type(a) == type)
			return a;
	fail_msg("no attribute %d", type);
	return NULL;
}

static void expect_reject(const struct nlmsghdr *nlh, const char *needle)
{
	struct pfkey_msg d;
	const char *why = NULL;

	assert_int_equal(xfrm_decode(nlh, &d, &why), -EINVAL);
	assert_non_null(why);
	if (!strstr(why, needle))
		fail_msg("'%s' does not name '%s'", why, needle);
	assert_int_equal(d.type, 0); /* zeroed */
}

static void hostile(void **state)
{
	struct nlmsghdr *nlh;
	struct nlattr *a;
	struct xfrm_algo *alg;
	struct pfkey_msg d;

	nlh = valid_newsa();
	nlh->nlmsg_len = MNL_NLMSG_HDRLEN + 10;
	expect_reject(nlh, "shorter than its fixed part");

	/* An attribute running past the message. */
	nlh = valid_newsa();
	a = (struct nlattr *)((uint8_t *)nlh + MNL_NLMSG_HDRLEN +
			      MNL_ALIGN(sizeof(struct xfrm_usersa_info)));
	a->nla_len = 60000;
	expect_reject(nlh, "out of bounds");

	/* A key longer than its attribute. */
	nlh = valid_newsa();
	a = find_attr(nlh, XFRMA_ALG_CRYPT);
	alg = mnl_attr_get_payload(a);
	alg->alg_key_len = 4000;
	expect_reject(nlh, "XFRMA_ALG_CRYPT");

	/* A name without its NUL. */
	nlh = valid_newsa();
	a = find_attr(nlh, XFRMA_ALG_AUTH_TRUNC);
	memset(mnl_attr_get_payload(a), 'A', 64);
	expect_reject(nlh, "XFRMA_ALG_AUTH_TRUNC");

	/* An attribute shorter than its structure. */
	nlh = valid_newsa();
	a = find_attr(nlh, XFRMA_ALG_CRYPT);
	a->nla_len = MNL_ATTR_HDRLEN + 10;
	expect_reject(nlh, "shorter than its structure");

	/* An unknown address family. */
	nlh = valid_newsa();
	((struct xfrm_usersa_info *)mnl_nlmsg_get_payload(nlh))->family = 99;
	expect_reject(nlh, "address family");

	/* A header shorter than itself. */
	nlh = valid_newsa();
	nlh->nlmsg_len = 4;
	expect_reject(nlh, "shorter than its header");

	/* Types the channel does not use are ignored, not errors. */
	nlh = valid_newsa();
	nlh->nlmsg_type = XFRM_MSG_NEWAE;
	assert_int_equal(xfrm_decode(nlh, &d, NULL), 0);
	pfkey_cleanse(buf, sizeof(buf));
}

/* An EXPIRE and an ACQUIRE as the kernel builds them. */
static void events(void **state)
{
	struct {
		struct nlmsghdr h;
		struct xfrm_user_expire e;
	} ex;
	struct pfkey_msg d;
	struct nlmsghdr *nlh;
	struct xfrm_user_acquire *ua;
	struct xfrm_user_tmpl t = { .family = AF_INET, .mode = XFRM_MODE_TRANSPORT };

	memset(&ex, 0, sizeof(ex));
	ex.h.nlmsg_len = sizeof(ex);
	ex.h.nlmsg_type = XFRM_MSG_EXPIRE;
	ex.e.state.family = AF_INET;
	ex.e.state.id.proto = IPPROTO_ESP;
	ex.e.state.id.spi = htonl(0x2a0107);
	ex.e.state.lft.hard_add_expires_seconds = 20;
	ex.e.state.lft.hard_byte_limit = XFRM_INF;
	ex.e.state.lft.hard_packet_limit = XFRM_INF;
	ex.e.hard = 1;
	assert_int_equal(xfrm_decode(&ex.h, &d, NULL), 1);
	assert_int_equal(d.type, SADB_EXPIRE);
	assert_int_equal(d.spi, 0x2a0107);
	assert_true(d.present & PFKEY_EXT_BIT(SADB_EXT_LIFETIME_HARD));
	assert_false(d.present & PFKEY_EXT_BIT(SADB_EXT_LIFETIME_SOFT));
	assert_int_equal(d.hard.addtime, 20);
	assert_int_equal(d.hard.bytes, 0);
	assert_int_equal(d.state, SADB_SASTATE_DEAD);
	ex.e.hard = 0;
	assert_int_equal(xfrm_decode(&ex.h, &d, NULL), 1);
	assert_true(d.present & PFKEY_EXT_BIT(SADB_EXT_LIFETIME_SOFT));
	assert_false(d.present & PFKEY_EXT_BIT(SADB_EXT_LIFETIME_HARD));

	memset(buf, 0, 1024);
	nlh = mnl_nlmsg_put_header(buf);
	nlh->nlmsg_type = XFRM_MSG_ACQUIRE;
	ua = mnl_nlmsg_put_extra_header(nlh, sizeof(*ua));
	ua->id.proto = IPPROTO_ESP;
	inet_pton(AF_INET, "10.1.0.2", &ua->id.daddr);
	inet_pton(AF_INET, "10.1.0.1", &ua->saddr);
	ua->sel.family = AF_INET;
	ua->policy.dir = XFRM_POLICY_OUT;
	ua->policy.index = 0x99;
	ua->seq = 0x1234;
	mnl_attr_put(nlh, XFRMA_TMPL, sizeof(t), &t);
	assert_int_equal(xfrm_decode(nlh, &d, NULL), 1);
	assert_int_equal(d.type, SADB_ACQUIRE);
	assert_int_equal(d.seq, 0x1234);
	assert_int_equal(d.policy.dir, IPSEC_DIR_OUTBOUND);
	assert_int_equal(d.policy.id, 0x99);
	assert_int_equal(d.dst.addr[3], 2);
	assert_int_equal(d.src.addr[3], 1);
	/* Templates that are not whole are refused. */
	nlh->nlmsg_len -= 4;
	((struct nlattr *)((uint8_t *)nlh + MNL_NLMSG_HDRLEN + MNL_ALIGN(sizeof(*ua))))->nla_len -= 4;
	expect_reject(nlh, "XFRMA_TMPL");
}


/* --- replay state and aevents ------------------------------------------------ */

/* A replay state: top seq, window, and the sequence numbers seen below the top. */
static void replay_state(struct kern_replay *r, uint32_t window, uint32_t seq, const uint32_t *seen,
			 size_t n)
{
	memset(r, 0, sizeof(*r));
	r->window = window;
	r->seq = seq;
	r->seq_hi = 3;
	r->bmp_len = (window + 31) / 32;
	for (size_t i = 0; i < n; i++) {
		uint32_t d = seq - seen[i], pos = (seq - 1) % window;
		uint32_t bit = pos >= d ? pos - d : window - (d - pos);

		if (d < window) /* older ones are no part of the ring */
			r->bmp[bit / 32] |= 1u << (bit % 32);
	}
}

static const struct nlattr *attr_of(const struct nlmsghdr *nlh, size_t fixed, int type)
{
	const struct nlattr *a;

	mnl_attr_for_each(a, nlh, fixed)
		if (mnl_attr_get_type(a) == type)
			return a;
	return NULL;
}

/* An ADD with x_has_replay installs the SA with that state; a NEWSA gives it back. */
static void replay_restore(void **state)
{
	static const uint32_t seen[] = { 200, 199, 150, 90, 73 };
	struct pfkey_msg m, d;
	const struct nlmsghdr *nlh;
	const struct nlattr *a;
	const struct xfrm_replay_state_esn *esn;

	sa_msg(&m, SADB_ADD, "192.0.2.1", "198.51.100.7", IPSEC_MODE_TRANSPORT,
	       SADB_X_EALG_AES_GCM_ICV16, 160, 0, 0);
	m.x_esn = true;
	m.x_replay_window = 128;
	m.x_has_replay = true;
	replay_state(&m.x_replay, 128, 200, seen, 5);
	m.x_replay.oseq = 7;
	nlh = encode(&m, 0);
	a = attr_of(nlh, sizeof(struct xfrm_usersa_info), XFRMA_REPLAY_ESN_VAL);
	assert_non_null(a);
	esn = mnl_attr_get_payload(a);
	assert_int_equal(esn->seq, 200);
	assert_int_equal(esn->seq_hi, 3);
	assert_int_equal(esn->oseq, 7);
	assert_int_equal(esn->bmp_len, 4);
	assert_int_equal(esn->replay_window, 128);
	/* The ring as xfrm_replay_check_bmp reads it: pos = 199 % 128 = 71; 200 is bit 71. */
	assert_true(esn->bmp[71 / 32] & (1u << (71 % 32)));
	assert_true(esn->bmp[70 / 32] & (1u << (70 % 32)));  /* 199 */
	assert_false(esn->bmp[69 / 32] & (1u << (69 % 32))); /* 198 */
	assert_int_equal(xfrm_decode(nlh, &d, NULL), 1);
	assert_true(d.x_has_replay);
	assert_int_equal(d.x_replay.seq, 200);
	assert_int_equal(d.x_replay.window, 128);
	for (uint32_t diff = 0; diff < 300; diff++)
		assert_int_equal(xfrm_replay_seen(&d.x_replay, diff),
				 diff >= 128 || diff == 0 || diff == 1 || diff == 50 || diff == 110 ||
					 diff == 127);

	/* Into a wider window: what the old one could not tell counts as seen. */
	replay_state(&m.x_replay, 64, 200, seen, 4);
	m.x_replay_window = 256;
	nlh = encode(&m, 0);
	assert_int_equal(xfrm_decode(nlh, &d, NULL), 1);
	assert_int_equal(d.x_replay.window, 256);
	for (uint32_t diff = 0; diff < 300; diff++)
		assert_int_equal(xfrm_replay_seen(&d.x_replay, diff),
				 diff >= 64 || diff == 0 || diff == 1 || diff == 50);

	/* Without ESN the high halves are not sent. */
	m.x_esn = false;
	nlh = encode(&m, 0);
	esn = mnl_attr_get_payload(attr_of(nlh, sizeof(struct xfrm_usersa_info),
					   XFRMA_REPLAY_ESN_VAL));
	assert_int_equal(esn->seq_hi, 0);

	/* A legacy SA (window in usersa_info) gets XFRMA_REPLAY_VAL, bit d for seq - d. */
	m.x_replay_window = 0;
	m.replay = 32;
	replay_state(&m.x_replay, 128, 200, seen, 5);
	nlh = encode(&m, 0);
	assert_null(attr_of(nlh, sizeof(struct xfrm_usersa_info), XFRMA_REPLAY_ESN_VAL));
	a = attr_of(nlh, sizeof(struct xfrm_usersa_info), XFRMA_REPLAY_VAL);
	assert_non_null(a);
	{
		const struct xfrm_replay_state *l = mnl_attr_get_payload(a);

		assert_int_equal(l->seq, 200);
		assert_int_equal(l->oseq, 0);
		assert_int_equal(l->bitmap, 1u << 0 | 1u << 1);
	}
	assert_int_equal(xfrm_decode(nlh, &d, NULL), 1);
	assert_true(d.x_has_replay);
	assert_int_equal(d.x_replay.window, 32);
	assert_int_equal(d.x_replay.bmp_len, 1);
	for (uint32_t diff = 0; diff < 64; diff++)
		assert_int_equal(xfrm_replay_seen(&d.x_replay, diff), diff >= 32 || diff <= 1);

	/* Without x_has_replay: an empty window, as before. */
	m.x_has_replay = false;
	nlh = encode(&m, 0);
	assert_null(attr_of(nlh, sizeof(struct xfrm_usersa_info), XFRMA_REPLAY_VAL));
	pfkey_cleanse(buf, sizeof(buf));
}

/* x_aevents sets both thresholds: quiet (0, 0) by default, first packet (1, 0). */
static void thresholds(void **state)
{
	struct pfkey_msg m;
	const struct nlmsghdr *nlh;
	const struct nlattr *rt, *et;

	sa_msg(&m, SADB_ADD, "192.0.2.1", "198.51.100.7", IPSEC_MODE_TRANSPORT, SADB_X_EALG_AESCBC,
	       256, SADB_X_AALG_SHA2_512HMAC, 512);
	nlh = encode(&m, 0);
	rt = attr_of(nlh, sizeof(struct xfrm_usersa_info), XFRMA_REPLAY_THRESH);
	et = attr_of(nlh, sizeof(struct xfrm_usersa_info), XFRMA_ETIMER_THRESH);
	assert_non_null(rt);
	assert_non_null(et);
	assert_int_equal(mnl_attr_get_u32(rt), 0);
	assert_int_equal(mnl_attr_get_u32(et), 0);
	m.x_aevents = KERN_AEV_FIRST;
	nlh = encode(&m, 0);
	assert_int_equal(
		mnl_attr_get_u32(attr_of(nlh, sizeof(struct xfrm_usersa_info), XFRMA_REPLAY_THRESH)),
		1);
	assert_int_equal(
		mnl_attr_get_u32(attr_of(nlh, sizeof(struct xfrm_usersa_info), XFRMA_ETIMER_THRESH)),
		0);
	m.x_aevents = 7;
	assert_int_equal(xfrm_encode(&m, 1, 1, 0, buf, sizeof(buf)), -EINVAL);
	pfkey_cleanse(buf, sizeof(buf));
}

/*
 * A NEWAE as xfrm_user.c: build_aevent makes it: the id, the replay state,
 * the current lifetime (after an XFRMA_PAD), a threshold. bmp_words is the
 * ring's real length, bmp_len what the message claims.
 */
static struct nlmsghdr *aevent_msg(uint32_t bmp_len, uint32_t bmp_words, uint32_t window)
{
	struct {
		struct xfrm_replay_state_esn esn;
		uint32_t bmp[KERN_REPLAY_BMP_MAX + 8];
	} r;
	struct xfrm_lifetime_cur cur = { .bytes = 1500, .packets = 3, .add_time = 1700000000,
					 .use_time = 1700000005 };
	struct xfrm_aevent_id *id;
	struct nlmsghdr *nlh;

	memset(buf, 0, 4096);
	nlh = mnl_nlmsg_put_header(buf);
	nlh->nlmsg_type = XFRM_MSG_NEWAE;
	id = mnl_nlmsg_put_extra_header(nlh, sizeof(*id));
	inet_pton(AF_INET, "198.51.100.7", &id->sa_id.daddr);
	inet_pton(AF_INET, "192.0.2.1", &id->saddr);
	id->sa_id.spi = htonl(0x2a0112);
	id->sa_id.family = AF_INET;
	id->sa_id.proto = IPPROTO_ESP;
	id->reqid = 9;
	id->flags = XFRM_AE_CR;
	memset(&r, 0, sizeof(r));
	r.esn.bmp_len = bmp_len;
	r.esn.replay_window = window;
	r.esn.seq = 1;
	r.bmp[0] = 1; /* seq 1 is pos 0 */
	mnl_attr_put(nlh, XFRMA_REPLAY_ESN_VAL, sizeof(r.esn) + bmp_words * 4, &r);
	mnl_attr_put(nlh, XFRMA_PAD, 0, NULL);
	mnl_attr_put(nlh, XFRMA_LTIME_VAL, sizeof(cur), &cur);
	mnl_attr_put_u32(nlh, XFRMA_REPLAY_THRESH, 1);
	return nlh;
}

static void expect_aevent_reject(const struct nlmsghdr *nlh, const char *needle)
{
	struct kern_aevent ev;
	const char *why = NULL;

	assert_int_equal(xfrm_decode_aevent(nlh, &ev, &why), -EINVAL);
	assert_non_null(why);
	if (!strstr(why, needle))
		fail_msg("'%s' does not name '%s'", why, needle);
	assert_int_equal(ev.spi, 0); /* zeroed */
	assert_false(ev.has_replay);
}

static void aevents(void **state)
{
	struct kern_aevent ev;
	struct nlmsghdr *nlh;
	struct nlattr *a;
	const char *why = NULL;

	nlh = aevent_msg(4, 4, 128);
	assert_int_equal(xfrm_decode_aevent(nlh, &ev, &why), 1);
	assert_null(why);
	assert_int_equal(ev.spi, 0x2a0112);
	assert_int_equal(ev.proto, IPPROTO_ESP);
	assert_int_equal(ev.reqid, 9);
	assert_int_equal(ev.flags, XFRM_AE_CR);
	assert_int_equal(ev.dst.family, AF_INET);
	assert_int_equal(ev.dst.addr[3], 7);
	assert_int_equal(ev.src.addr[3], 1);
	assert_true(ev.has_replay);
	assert_int_equal(ev.replay.window, 128);
	assert_int_equal(ev.replay.seq, 1);
	assert_int_equal(ev.replay.bmp_len, 4);
	assert_true(xfrm_replay_seen(&ev.replay, 0));
	assert_false(xfrm_replay_seen(&ev.replay, 1));
	assert_true(ev.has_lifetime);
	assert_int_equal(ev.packets, 3);
	assert_int_equal(ev.bytes, 1500);
	assert_int_equal(ev.add_time, 1700000000);
	assert_int_equal(ev.use_time, 1700000005);
	/* The channel's decoder leaves them to this one. */
	{
		struct pfkey_msg d;

		assert_int_equal(xfrm_decode(nlh, &d, NULL), 0);
	}

	/* A bmp_len lying about its size: longer than the attribute carries. */
	expect_aevent_reject(aevent_msg(4, 1, 32), "bitmap longer than its attribute");
	/* A bmp_len past XFRMA_REPLAY_ESN_MAX, with the words to back it. */
	expect_aevent_reject(aevent_msg(KERN_REPLAY_BMP_MAX + 1, KERN_REPLAY_BMP_MAX + 1, 32),
			     "XFRMA_REPLAY_ESN_MAX");
	/* A window wider than its ring. */
	expect_aevent_reject(aevent_msg(1, 1, 33), "wider than its bitmap");
	/* Truncated attributes: the replay state shorter than its structure... */
	nlh = aevent_msg(1, 1, 32);
	a = (struct nlattr *)((uint8_t *)nlh + MNL_NLMSG_HDRLEN +
			      MNL_ALIGN(sizeof(struct xfrm_aevent_id)));
	assert_int_equal(a->nla_type, XFRMA_REPLAY_ESN_VAL);
	a->nla_len = MNL_ATTR_HDRLEN + 20;
	expect_aevent_reject(nlh, "attribute");
	/* ...the lifetime cut short by the message's end... */
	nlh = aevent_msg(1, 1, 32);
	nlh->nlmsg_len -= MNL_ALIGN(MNL_ATTR_HDRLEN + 4) + 8;
	expect_aevent_reject(nlh, "out of bounds");
	/* ...a lifetime attribute shorter than struct xfrm_lifetime_cur... */
	nlh = aevent_msg(1, 1, 32);
	a = (struct nlattr *)attr_of(nlh, sizeof(struct xfrm_aevent_id), XFRMA_LTIME_VAL);
	a->nla_len = MNL_ATTR_HDRLEN + 16;
	expect_aevent_reject(nlh, "shorter than its structure");
	/* ...and the fixed part itself. */
	nlh = aevent_msg(1, 1, 32);
	nlh->nlmsg_len = MNL_NLMSG_HDRLEN + 20;
	expect_aevent_reject(nlh, "shorter than its fixed part");
	nlh = aevent_msg(1, 1, 32);
	((struct xfrm_aevent_id *)mnl_nlmsg_get_payload(nlh))->sa_id.family = 77;
	expect_aevent_reject(nlh, "address family");
	/* Other types are not aevents. */
	nlh = aevent_msg(1, 1, 32);
	nlh->nlmsg_type = XFRM_MSG_NEWSA;
	assert_int_equal(xfrm_decode_aevent(nlh, &ev, NULL), 0);

	/* A legacy SA's aevent: XFRMA_REPLAY_VAL, read as a 32-bit window. */
	{
		struct xfrm_replay_state l = { .seq = 40, .oseq = 0, .bitmap = 1u << 0 | 1u << 5 };
		struct xfrm_aevent_id *id;

		memset(buf, 0, 1024);
		nlh = mnl_nlmsg_put_header(buf);
		nlh->nlmsg_type = XFRM_MSG_NEWAE;
		id = mnl_nlmsg_put_extra_header(nlh, sizeof(*id));
		id->sa_id.family = AF_INET6;
		id->sa_id.proto = IPPROTO_ESP;
		id->flags = XFRM_AE_CE;
		mnl_attr_put(nlh, XFRMA_REPLAY_VAL, sizeof(l), &l);
		assert_int_equal(xfrm_decode_aevent(nlh, &ev, NULL), 1);
		assert_true(ev.has_replay);
		assert_false(ev.has_lifetime);
		assert_int_equal(ev.replay.window, 32);
		assert_int_equal(ev.replay.bmp_len, 1);
		for (uint32_t diff = 0; diff < 40; diff++)
			assert_int_equal(xfrm_replay_seen(&ev.replay, diff),
					 diff >= 32 || diff == 0 || diff == 5);
		/* Shorter than struct xfrm_replay_state. */
		((struct nlattr *)((uint8_t *)nlh + MNL_NLMSG_HDRLEN + MNL_ALIGN(sizeof(*id))))
			->nla_len = MNL_ATTR_HDRLEN + 8;
		expect_aevent_reject(nlh, "shorter than its structure");
	}
}

/* A NEWSA whose ESN state lies about its bitmap is refused too. */
static void hostile_replay(void **state)
{
	struct pfkey_msg m;
	struct nlmsghdr *nlh;
	struct xfrm_replay_state_esn *esn;

	sa_msg(&m, SADB_ADD, "192.0.2.1", "198.51.100.7", IPSEC_MODE_TRANSPORT,
	       SADB_X_EALG_AES_GCM_ICV16, 160, 0, 0);
	m.x_esn = true;
	m.x_replay_window = 64;
	nlh = (struct nlmsghdr *)encode(&m, 0);
	esn = mnl_attr_get_payload(find_attr(nlh, XFRMA_REPLAY_ESN_VAL));
	esn->bmp_len = 3;
	expect_reject(nlh, "bitmap longer than its attribute");
	pfkey_cleanse(buf, sizeof(buf));
}

/* kern_aevents_quiet's request: NEWAE, NLM_F_REPLACE, both thresholds 0. */
static void quiet_request(void **state)
{
	struct pfkey_addr dst;
	const struct nlmsghdr *nlh = (const void *)buf;
	const struct xfrm_aevent_id *id;
	ssize_t len;

	assert_int_equal(pfkey_addr_from_string(&dst, "2001:db8::2"), 0);
	len = xfrm_encode_aevent_quiet(&dst, 0x2a01f3, IPPROTO_ESP, 5, 6, buf, sizeof(buf));
	assert_true(len > 0);
	assert_int_equal(nlh->nlmsg_len, len);
	assert_int_equal(nlh->nlmsg_type, XFRM_MSG_NEWAE);
	assert_int_equal(nlh->nlmsg_flags, NLM_F_REQUEST | NLM_F_REPLACE | NLM_F_ACK);
	assert_int_equal(nlh->nlmsg_seq, 5);
	id = mnl_nlmsg_get_payload(nlh);
	assert_int_equal(ntohl(id->sa_id.spi), 0x2a01f3);
	assert_int_equal(id->sa_id.family, AF_INET6);
	assert_int_equal(id->sa_id.proto, IPPROTO_ESP);
	assert_memory_equal(&id->sa_id.daddr, dst.addr, 16);
	assert_int_equal(mnl_attr_get_u32(attr_of(nlh, sizeof(*id), XFRMA_REPLAY_THRESH)), 0);
	assert_int_equal(mnl_attr_get_u32(attr_of(nlh, sizeof(*id), XFRMA_ETIMER_THRESH)), 0);
	assert_int_equal(xfrm_encode_aevent_quiet(&dst, 1, IPPROTO_ESP, 5, 6, buf, 40), -EMSGSIZE);
	assert_int_equal(xfrm_encode_aevent_quiet(&dst, 1, 0, 5, 6, buf, sizeof(buf)), -EINVAL);
	dst.family = 0;
	assert_int_equal(xfrm_encode_aevent_quiet(&dst, 1, IPPROTO_ESP, 5, 6, buf, sizeof(buf)),
			 -EINVAL);
}

/*
 * Messages the real kernel sent (tests/fixtures/xfrm/, captured in UML by
 * tests/kernel/capture_xfrm.py): each datagram's messages decode.
 */
static void kernel_fixtures(void **state)
{
	DIR *dir = opendir(FIXTURE_DIR "/xfrm");
	struct dirent *e;
	unsigned files = 0, msgs = 0, replays = 0, aevents = 0;

	assert_non_null(dir);
	while ((e = readdir(dir))) {
		char path[512];
		size_t n, left;
		const struct nlmsghdr *nlh = (const void *)buf;

		if (!strstr(e->d_name, ".bin"))
			continue;
		snprintf(path, sizeof(path), "%s/xfrm/%s", FIXTURE_DIR, e->d_name);
		n = fixture_read(path, buf, sizeof(buf));
		left = n;
		files++;
		while (left && xfrm_nlmsg_ok(nlh, left)) {
			struct pfkey_msg d;
			const char *why = NULL;
			int ret = xfrm_decode(nlh, &d, &why);

			if (ret < 0)
				fail_msg("%s: %s", e->d_name, why);
			msgs++;
			if (strstr(e->d_name, "newsa-gcm") && nlh->nlmsg_type == XFRM_MSG_NEWSA) {
				assert_int_equal(d.encrypt, SADB_X_EALG_AES_GCM_ICV16);
				assert_int_equal(d.x_icv_bits, 128);
			}
			/* ktest_aevents: an SA's state after 20 packets, its first-packet NEWAE. */
			if (!strncmp(e->d_name, "replay-", 7) && nlh->nlmsg_type == XFRM_MSG_NEWSA) {
				assert_true(d.x_has_replay);
				assert_int_equal(d.x_replay.seq, 20);
				assert_int_equal(d.x_replay.window,
						 strstr(e->d_name, "esn")   ? 128 :
						 strstr(e->d_name, "bmp") ? 64 :
									     32);
				for (uint32_t diff = 0; diff < 20; diff++)
					assert_true(xfrm_replay_seen(&d.x_replay, diff));
				assert_false(xfrm_replay_seen(&d.x_replay, 20));
				replays++;
			}
			if (!strncmp(e->d_name, "aevent-", 7)) {
				struct kern_aevent ev;

				assert_int_equal(xfrm_decode_aevent(nlh, &ev, &why), 1);
				assert_int_equal(ev.flags, XFRM_AE_CR);
				assert_true(ev.has_replay);
				assert_int_equal(ev.replay.seq, 1);
				assert_true(ev.has_lifetime);
				aevents++;
			}
			if (strstr(e->d_name, "acquire") && nlh->nlmsg_type == XFRM_MSG_ACQUIRE) {
				assert_int_equal(d.type, SADB_ACQUIRE);
				assert_int_not_equal(d.seq, 0);
			}
			nlh = xfrm_nlmsg_next(nlh, &left);
		}
		assert_int_equal(left, 0);
	}
	closedir(dir);
	assert_true(files >= 8);
	assert_true(msgs >= files);
	assert_int_equal(replays, 3);
	assert_int_equal(aevents, 1);
}

/* A datagram walk that libmnl's int comparison would let run off the buffer. */
static void walk(void **state)
{
	struct nlmsghdr *nlh = (struct nlmsghdr *)buf;
	size_t left = 64;

	memset(buf, 0, 64);
	nlh->nlmsg_len = 0xfffffffc;
	assert_false(xfrm_nlmsg_ok(nlh, left));
	nlh->nlmsg_len = 22;
	assert_true(xfrm_nlmsg_ok(nlh, left));
	nlh = (struct nlmsghdr *)xfrm_nlmsg_next(nlh, &left);
	assert_int_equal(left, 40); /* 22 rounds up to 24 */
	assert_ptr_equal(nlh, buf + 24);
	nlh->nlmsg_len = 41;
	assert_false(xfrm_nlmsg_ok(nlh, left));
	nlh->nlmsg_len = 40;
	xfrm_nlmsg_next(nlh, &left);
	assert_int_equal(left, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(roundtrip_v4_transport),
		cmocka_unit_test(roundtrip_v6_tunnel),
		cmocka_unit_test(gcm),
		cmocka_unit_test(legacy_replay),
		cmocka_unit_test(requests),
		cmocka_unit_test(policies),
		cmocka_unit_test(hostile),
		cmocka_unit_test(events),
		cmocka_unit_test(kernel_fixtures),
		cmocka_unit_test(walk),
		cmocka_unit_test(replay_restore),
		cmocka_unit_test(thresholds),
		cmocka_unit_test(aevents),
		cmocka_unit_test(hostile_replay),
		cmocka_unit_test(quiet_request),
	};

	for (unsigned i = 0; i < sizeof(ekey); i++)
		ekey[i] = (uint8_t)(0x10 + i);
	for (unsigned i = 0; i < sizeof(akey); i++)
		akey[i] = (uint8_t)(0xa0 + i);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
