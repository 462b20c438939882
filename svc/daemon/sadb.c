/* SPDX-License-Identifier: ISC */
/* Mapping between PF_KEY messages and the domain model; the daemon's SA and policy requests. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>

#include "rotate/keysched.h"
#include "store/addr.h"
#include "svc/daemon/sadb.h"


int sadb_addr_from_pfkey(const struct pfkey_addr *in, struct conf_addr *out)
{
	memset(out, 0, sizeof(*out));
	if (in->family != AF_INET && in->family != AF_INET6)
		return -EINVAL;
	out->family = in->family;
	out->prefixlen = in->prefixlen;
	memcpy(out->bytes, in->addr, in->family == AF_INET ? 4 : 16);
	return 0;
}

void sadb_addr_to_pfkey(const struct conf_addr *in, struct pfkey_addr *out)
{
	memset(out, 0, sizeof(*out));
	out->family = in->family;
	out->prefixlen = in->family == AF_INET ? 32 : 128;
	out->proto = IPSEC_PROTO_ANY;
	memcpy(out->addr, in->bytes, in->family == AF_INET ? 4 : 16);
}

static void subnet_to_pfkey(const struct conf_addr *in, struct pfkey_addr *out)
{
	sadb_addr_to_pfkey(in, out);
	out->prefixlen = in->prefixlen;
}

const char *sadb_addr_str(const struct conf_addr *a, char *buf, size_t len)
{
	/* inet_ntop's text without its sprintf per byte: the ledger formats every SA's twice. */
	if (!store_addr_ntop(a->family, a->bytes, buf, len) && len)
		snprintf(buf, len, "-");
	return buf;
}

const struct conf_alg *sadb_alg_by_ids(uint8_t ealg, uint8_t aalg, uint16_t enc_bits)
{
	/* aes-gcm-128 and aes-gcm-256 share an id: the key length tells them apart. */
	for (const struct conf_alg *a = conf_algs; a->name; a++)
		if (a->sadb_ealg && a->sadb_ealg == ealg && a->sadb_aalg == aalg &&
		    (!enc_bits || enc_bits == a->enc_key_len * 8))
			return a;
	return NULL;
}

int sadb_msg_to_sa(const struct pfkey_msg *m, struct rot_sa *sa)
{
	const uint32_t need = PFKEY_EXT_BIT(SADB_EXT_SA) | PFKEY_EXT_BIT(SADB_EXT_ADDRESS_SRC) |
			      PFKEY_EXT_BIT(SADB_EXT_ADDRESS_DST);

	memset(sa, 0, sizeof(*sa));
	if ((m->present & need) != need)
		return -EINVAL;
	if (sadb_addr_from_pfkey(&m->src, &sa->src) || sadb_addr_from_pfkey(&m->dst, &sa->dst))
		return -EINVAL;
	sa->spi = m->spi;
	sa->proto = pfkey_satype_proto(m->satype);
	sa->mode = CONF_MODE_TRANSPORT;
	if (m->present & PFKEY_EXT_BIT(SADB_X_EXT_SA2)) {
		if (m->mode == IPSEC_MODE_TUNNEL)
			sa->mode = CONF_MODE_TUNNEL;
		else if (m->mode != IPSEC_MODE_TRANSPORT && m->mode != IPSEC_MODE_ANY)
			sa->mode = (enum conf_mode)m->mode; /* BEET: shown, never managed */
		sa->reqid = m->reqid;
	}
	sa->alg = sadb_alg_by_ids(m->encrypt, m->auth,
				  (m->present & PFKEY_EXT_BIT(SADB_EXT_KEY_ENCRYPT)) ? m->key_enc.bits : 0);
	return 0;
}

static void limits(const struct pfkey_lifetime *lt, struct mon_limits *l)
{
	l->addtime = lt->addtime;
	l->usetime = lt->usetime;
	l->bytes = lt->bytes;
	l->packets = lt->allocations;
}

void sadb_fill_entry(const struct pfkey_msg *m, struct mon_sa *e, bool created)
{
	switch (m->state) {
	case SADB_SASTATE_LARVAL:
		e->state = MON_LARVAL;
		break;
	case SADB_SASTATE_DYING:
		e->state = MON_DYING;
		break;
	default:
		if (e->state != MON_DYING)
			e->state = MON_MATURE;
		e->was_mature |= m->state == SADB_SASTATE_MATURE;
	}
	if (m->present & PFKEY_EXT_BIT(SADB_EXT_LIFETIME_CURRENT)) {
		e->added_at = (int64_t)m->current.addtime;
		e->first_used_at = (int64_t)m->current.usetime;
		e->bytes = m->current.bytes;
		e->packets = m->current.allocations; /* a packet count on Linux */
	}
	if (m->present & PFKEY_EXT_BIT(SADB_EXT_LIFETIME_SOFT))
		limits(&m->soft, &e->soft);
	if (m->present & PFKEY_EXT_BIT(SADB_EXT_LIFETIME_HARD))
		limits(&m->hard, &e->hard);
	if (created)
		e->origin_pid = m->pid;
	/*
	 * The kernel broadcasts every SA's keys (af_key.c: key_notify_sa): keep
	 * only their fingerprint, which is what operators compare across hosts.
	 */
	if ((m->present & PFKEY_EXT_BIT(SADB_EXT_KEY_ENCRYPT)) && m->key_enc.data) {
		size_t elen = (m->key_enc.bits + 7u) / 8, alen = 0;

		if (m->present & PFKEY_EXT_BIT(SADB_EXT_KEY_AUTH) && m->key_auth.data)
			alen = (m->key_auth.bits + 7u) / 8;
		/* Hashed where they lie: no copy of the key bytes to wipe. */
		if (elen + alen <= ROT_KEYMAT_MAX * 2) {
			char fp[sizeof(e->sa.key_fp)];

			rot_fingerprint2(m->key_enc.data, elen, alen ? m->key_auth.data : NULL, alen,
					 fp);
			if (strcmp(fp, e->sa.key_fp) != 0) {
				memcpy(e->sa.key_fp, fp, sizeof(fp));
				e->fp_checked = false;
			}
		}
	}
}

void sadb_own_sa(const struct rot_sa *sa, struct rot_sa *id)
{
	memset(id, 0, sizeof(*id));
	id->spi = sa->spi;
	id->proto = sa->proto;
	id->mode = sa->mode;
	id->src = sa->src;
	id->dst = sa->dst;
	id->alg = sa->alg;
	id->reqid = sa->reqid;
	memcpy(id->key_fp, sa->key_fp, sizeof(id->key_fp));
}

void sadb_fill_own_entry(const struct rot_sa *sa, uint32_t pid, int64_t now, struct mon_sa *e,
			 bool created)
{
	/* As sadb_request_add asked: add-time lifetimes, and only with a hard one. */
	struct mon_limits soft = { .addtime = sa->hard_lifetime ? sa->soft_lifetime : 0 };
	struct mon_limits hard = { .addtime = sa->hard_lifetime };

	if (e->state != MON_DYING)
		e->state = MON_MATURE;
	/* A new SA: never used, nothing counted (xfrm_state_add). */
	e->added_at = now;
	e->first_used_at = 0;
	e->bytes = e->packets = 0;
	e->soft = soft;
	e->hard = hard;
	if (created)
		e->origin_pid = pid;
	if (strcmp(e->sa.key_fp, sa->key_fp) != 0) {
		memcpy(e->sa.key_fp, sa->key_fp, sizeof(e->sa.key_fp));
		e->fp_checked = false;
	}
}

static void fill_sa_id(struct pfkey_msg *m, uint8_t type, const struct rot_sa *sa)
{
	struct pfkey_addr src, dst;

	pfkey_msg_init(m, type, SADB_SATYPE_ESP, 0, 0);
	sadb_addr_to_pfkey(&sa->src, &src);
	sadb_addr_to_pfkey(&sa->dst, &dst);
	pfkey_set_sa(m, sa->spi, 0, 0, 0);
	pfkey_set_addr(m, SADB_EXT_ADDRESS_SRC, &src);
	pfkey_set_addr(m, SADB_EXT_ADDRESS_DST, &dst);
}

int sadb_request_add(struct kern *k, const struct rot_sa *sa, const uint8_t *secret, uint32_t seq,
		     const struct sadb_add_opts *opts, char *fp, kern_reply_cb cb, void *arg)
{
	const struct conf_alg *alg = sa->alg;
	struct pfkey_lifetime soft = { .addtime = sa->soft_lifetime };
	struct pfkey_lifetime hard = { .addtime = sa->hard_lifetime };
	struct pfkey_msg m;
	uint8_t *keymat = NULL;
	int ret;

	bool xfrm = kern_backend(k) == KERN_BACKEND_XFRM;
	const struct conf_link *link = sa->link;
	uint32_t window;

	if (!alg || !secret || (!xfrm && !alg->pfkey_ok))
		return -EINVAL;
	/* af_key.c: pfkey_msg2xfrm_state caps the window at 32 and has no ESN. */
	window = link && link->replay_window ? link->replay_window :
		 xfrm			     ? CONF_REPLAY_DEFAULT_XFRM :
					       CONF_REPLAY_DEFAULT_PFKEY;
	if (!xfrm && (window > CONF_REPLAY_MAX_PFKEY || (link && link->esn == CONF_YES)))
		return -EINVAL;
	keymat = rot_secret_alloc(ROT_KEYMAT_MAX);
	if (!keymat)
		return -ENOMEM;
	ret = rot_keymat(secret, sa->proto, sa->mode, alg, &sa->src, &sa->dst, sa->epoch, sa->gen,
			 keymat, ROT_KEYMAT_MAX);
	/* As rot_sa_fingerprint: the first keymat_len bytes are the SA's keys. */
	if (!ret && fp)
		ret = rot_fingerprint(keymat, alg->keymat_len, fp);
	if (ret)
		goto cleanup;
	fill_sa_id(&m, SADB_ADD, sa);
	m.seq = seq;
	pfkey_set_sa(&m, sa->spi, window > UINT8_MAX ? UINT8_MAX : (uint8_t)window, alg->sadb_aalg,
		     alg->sadb_ealg);
	if (xfrm) {
		/* What PF_KEY cannot say: DESIGN.md's ICV, the full window, ESN. */
		m.x_icv_bits = alg->icv_bits;
		m.x_replay_window = window;
		m.x_esn = !link || link->esn != CONF_NO;
		if (opts) {
			m.x_aevents = opts->aevents;
			/* A state recorded with another window would not fit this one. */
			if (opts->has_replay && opts->replay.window == window) {
				m.x_has_replay = true;
				m.x_replay = opts->replay;
			}
		}
	}
	pfkey_set_key(&m, SADB_EXT_KEY_ENCRYPT, keymat, (uint16_t)(alg->enc_key_len * 8));
	if (alg->auth_key_len)
		pfkey_set_key(&m, SADB_EXT_KEY_AUTH, keymat + alg->enc_key_len,
			      (uint16_t)(alg->auth_key_len * 8));
	pfkey_set_sa2(&m, sa->mode == CONF_MODE_TUNNEL ? IPSEC_MODE_TUNNEL : IPSEC_MODE_TRANSPORT,
		      sa->reqid);
	if (sa->hard_lifetime) {
		pfkey_set_lifetime(&m, SADB_EXT_LIFETIME_SOFT, &soft);
		pfkey_set_lifetime(&m, SADB_EXT_LIFETIME_HARD, &hard);
	}
	/* kern_request encodes now; the wire copy is wiped after sending. */
	ret = kern_request(k, &m, cb, arg);
cleanup:
	rot_secret_free(keymat, ROT_KEYMAT_MAX);
	return ret;
}

int sadb_request_delete(struct kern *k, const struct rot_sa *sa, kern_reply_cb cb, void *arg)
{
	struct pfkey_msg m;

	fill_sa_id(&m, SADB_DELETE, sa);
	return kern_request(k, &m, cb, arg);
}

static void policy(struct pfkey_msg *m, uint8_t dir, uint32_t priority,
		   const struct conf_link *l, bool outbound_sel)
{
	struct pfkey_ipsecreq req = {
		.proto = IPPROTO_ESP,
		.level = IPSEC_LEVEL_REQUIRE,
	};
	struct pfkey_addr src, dst;
	bool tunnel = l->mode == CONF_MODE_TUNNEL;

	pfkey_msg_init(m, SADB_X_SPDUPDATE, SADB_SATYPE_UNSPEC, 0, 0);
	if (tunnel) {
		subnet_to_pfkey(outbound_sel ? &l->local_subnet : &l->remote_subnet, &src);
		subnet_to_pfkey(outbound_sel ? &l->remote_subnet : &l->local_subnet, &dst);
	} else {
		sadb_addr_to_pfkey(outbound_sel ? &l->local : &l->remote, &src);
		sadb_addr_to_pfkey(outbound_sel ? &l->remote : &l->local, &dst);
	}
	pfkey_set_addr(m, SADB_EXT_ADDRESS_SRC, &src);
	pfkey_set_addr(m, SADB_EXT_ADDRESS_DST, &dst);
	pfkey_set_policy(m, IPSEC_POLICY_IPSEC, dir, priority);
	req.mode = tunnel ? IPSEC_MODE_TUNNEL : IPSEC_MODE_TRANSPORT;
	if (tunnel) {
		req.has_endpoints = true;
		sadb_addr_to_pfkey(outbound_sel ? &l->local : &l->remote, &req.tun_src);
		sadb_addr_to_pfkey(outbound_sel ? &l->remote : &l->local, &req.tun_dst);
	}
	pfkey_policy_add_req(m, &req);
}

int sadb_link_policies(const struct conf_link *link, uint32_t priority, struct pfkey_msg out[3])
{
	int n = 0;

	policy(&out[n++], IPSEC_DIR_OUTBOUND, priority, link, true);
	policy(&out[n++], IPSEC_DIR_INBOUND, priority, link, false);
	if (link->mode == CONF_MODE_TUNNEL)
		policy(&out[n++], IPSEC_DIR_FWD, priority, link, false);
	return n;
}
