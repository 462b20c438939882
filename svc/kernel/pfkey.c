/* SPDX-License-Identifier: ISC */
/* PF_KEYv2 codec: decodes hostile kernel messages and encodes requests, with no I/O. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>

#include "svc/kernel/pfkey.h"

#define ALIGN8(n) (((n) + 7u) & ~(size_t)7u)

/*
 * Minimum length of each known extension type, as af_key.c: sadb_ext_min_len,
 * plus the types newer kernels parse (sec ctx, KMADDRESS, filter).
 * A min of 8 is met by every extension, whose length is at least one unit.
 */
static const struct {
	uint16_t min;
	const char *why;
} ext_min[SADB_EXT_MAX + 1] = {
	[SADB_EXT_SA] = { sizeof(struct sadb_sa), "sa: extension shorter than 16 bytes" },
	[SADB_EXT_LIFETIME_CURRENT] = { sizeof(struct sadb_lifetime),
					"lifetime: extension shorter than 32 bytes" },
	[SADB_EXT_LIFETIME_HARD] = { sizeof(struct sadb_lifetime),
				     "lifetime: extension shorter than 32 bytes" },
	[SADB_EXT_LIFETIME_SOFT] = { sizeof(struct sadb_lifetime),
				     "lifetime: extension shorter than 32 bytes" },
	[SADB_EXT_IDENTITY_SRC] = { sizeof(struct sadb_ident),
				    "identity: extension shorter than 16 bytes" },
	[SADB_EXT_IDENTITY_DST] = { sizeof(struct sadb_ident),
				    "identity: extension shorter than 16 bytes" },
	[SADB_EXT_SENSITIVITY] = { sizeof(struct sadb_sens),
				   "sensitivity: extension shorter than 16 bytes" },
	[SADB_EXT_SPIRANGE] = { sizeof(struct sadb_spirange),
				"spirange: extension shorter than 16 bytes" },
	[SADB_X_EXT_POLICY] = { sizeof(struct sadb_x_policy),
				"policy: extension shorter than 16 bytes" },
	[SADB_X_EXT_SA2] = { sizeof(struct sadb_x_sa2), "sa2: extension shorter than 16 bytes" },
	[SADB_X_EXT_FILTER] = { sizeof(struct sadb_x_filter),
				"filter: extension shorter than 40 bytes" },
};

static const char *const type_names[SADB_MAX + 1] = {
	[SADB_GETSPI] = "GETSPI",
	[SADB_UPDATE] = "UPDATE",
	[SADB_ADD] = "ADD",
	[SADB_DELETE] = "DELETE",
	[SADB_GET] = "GET",
	[SADB_ACQUIRE] = "ACQUIRE",
	[SADB_REGISTER] = "REGISTER",
	[SADB_EXPIRE] = "EXPIRE",
	[SADB_FLUSH] = "FLUSH",
	[SADB_DUMP] = "DUMP",
	[SADB_X_PROMISC] = "X_PROMISC",
	[SADB_X_PCHANGE] = "X_PCHANGE",
	[SADB_X_SPDUPDATE] = "X_SPDUPDATE",
	[SADB_X_SPDADD] = "X_SPDADD",
	[SADB_X_SPDDELETE] = "X_SPDDELETE",
	[SADB_X_SPDGET] = "X_SPDGET",
	[SADB_X_SPDACQUIRE] = "X_SPDACQUIRE",
	[SADB_X_SPDDUMP] = "X_SPDDUMP",
	[SADB_X_SPDFLUSH] = "X_SPDFLUSH",
	[SADB_X_SPDSETIDX] = "X_SPDSETIDX",
	[SADB_X_SPDEXPIRE] = "X_SPDEXPIRE",
	[SADB_X_SPDDELETE2] = "X_SPDDELETE2",
	[SADB_X_NAT_T_NEW_MAPPING] = "X_NAT_T_NEW_MAPPING",
	[SADB_X_MIGRATE] = "X_MIGRATE",
};

/* The wire family is 16 bits wide; never narrow it before this check. */
static size_t sockaddr_len(uint16_t family)
{
	switch (family) {
	case AF_INET:
		return sizeof(struct sockaddr_in);
	case AF_INET6:
		return sizeof(struct sockaddr_in6);
	default:
		return 0;
	}
}

static unsigned max_prefix(uint16_t family)
{
	return family == AF_INET ? 32 : 128;
}

static size_t addr_bytes(uint16_t family)
{
	return family == AF_INET ? 4 : 16;
}

static int reject(const char **why, const char *rule)
{
	*why = rule;
	return -EINVAL;
}

/* Reads the sockaddr of a known family at p into a (address and port only). */
static void sockaddr_get(const uint8_t *p, uint16_t family, struct pfkey_addr *a)
{
	a->family = (uint8_t)family;
	if (family == AF_INET) {
		struct sockaddr_in sin;

		memcpy(&sin, p, sizeof(sin));
		memcpy(a->addr, &sin.sin_addr, 4);
		a->port = ntohs(sin.sin_port);
	} else {
		struct sockaddr_in6 sin6;

		memcpy(&sin6, p, sizeof(sin6));
		memcpy(a->addr, &sin6.sin6_addr, 16);
		a->port = ntohs(sin6.sin6_port);
	}
}

static void sockaddr_put(uint8_t *p, const struct pfkey_addr *a)
{
	if (a->family == AF_INET) {
		struct sockaddr_in sin;

		memset(&sin, 0, sizeof(sin));
		sin.sin_family = AF_INET;
		sin.sin_port = htons(a->port);
		memcpy(&sin.sin_addr, a->addr, 4);
		memcpy(p, &sin, sizeof(sin));
	} else {
		struct sockaddr_in6 sin6;

		memset(&sin6, 0, sizeof(sin6));
		sin6.sin6_family = AF_INET6;
		sin6.sin6_port = htons(a->port);
		memcpy(&sin6.sin6_addr, a->addr, 16);
		memcpy(p, &sin6, sizeof(sin6));
	}
}

/* af_key.c: verify_address_len demands exactly 3 (IPv4) or 5 (IPv6) units. */
static int parse_address(const uint8_t *p, size_t len, struct pfkey_addr *a, const char **why)
{
	struct sadb_address hdr;
	uint16_t family;

	if (len < sizeof(hdr) + sizeof(family))
		return reject(why, "address: no room for a sockaddr");
	memcpy(&hdr, p, sizeof(hdr));
	memcpy(&family, p + sizeof(hdr), sizeof(family));
	switch (family) {
	case AF_INET:
		if (len != ALIGN8(sizeof(hdr) + sizeof(struct sockaddr_in)))
			return reject(why, "address: AF_INET extension is not 3 units");
		if (hdr.sadb_address_prefixlen > 32)
			return reject(why, "address: IPv4 prefix longer than 32");
		break;
	case AF_INET6:
		if (len != ALIGN8(sizeof(hdr) + sizeof(struct sockaddr_in6)))
			return reject(why, "address: AF_INET6 extension is not 5 units");
		if (hdr.sadb_address_prefixlen > 128)
			return reject(why, "address: IPv6 prefix longer than 128");
		break;
	default:
		return reject(why, "address: unsupported sockaddr family");
	}
	memset(a, 0, sizeof(*a));
	sockaddr_get(p + sizeof(hdr), family, a);
	a->prefixlen = hdr.sadb_address_prefixlen;
	a->proto = hdr.sadb_address_proto;
	return 0;
}

/* af_key.c: verify_key_len; sadb_key_bits counts bits, the extension bytes. */
static int parse_key(const uint8_t *p, size_t len, struct pfkey_key *k, const char **why)
{
	struct sadb_key hdr;
	size_t bytes;

	memcpy(&hdr, p, sizeof(hdr));
	bytes = (hdr.sadb_key_bits + 7u) / 8u;
	if (sizeof(hdr) + bytes > len)
		return reject(why, "key: sadb_key_bits exceed the extension");
	k->bits = hdr.sadb_key_bits;
	k->data = bytes ? p + sizeof(hdr) : NULL;
	return 0;
}

static void parse_lifetime(const uint8_t *p, struct pfkey_lifetime *lt)
{
	struct sadb_lifetime l;

	memcpy(&l, p, sizeof(l));
	lt->allocations = l.sadb_lifetime_allocations;
	lt->bytes = l.sadb_lifetime_bytes;
	lt->addtime = l.sadb_lifetime_addtime;
	lt->usetime = l.sadb_lifetime_usetime;
}

static void parse_sa(const uint8_t *p, struct pfkey_msg *m)
{
	struct sadb_sa sa;

	memcpy(&sa, p, sizeof(sa));
	m->spi = ntohl(sa.sadb_sa_spi);
	m->replay = sa.sadb_sa_replay;
	m->state = sa.sadb_sa_state;
	m->auth = sa.sadb_sa_auth;
	m->encrypt = sa.sadb_sa_encrypt;
	m->flags = sa.sadb_sa_flags;
}

static int parse_proposal(const uint8_t *p, size_t len, struct pfkey_msg *m, const char **why)
{
	struct sadb_prop prop;
	size_t n;

	if ((len - sizeof(prop)) % sizeof(struct sadb_comb))
		return reject(why, "proposal: not a whole number of sadb_comb");
	memcpy(&prop, p, sizeof(prop));
	n = (len - sizeof(prop)) / sizeof(struct sadb_comb);
	m->prop_replay = prop.sadb_prop_replay;
	m->ncombs = (unsigned)n;
	for (size_t i = 0; i < n && i < PFKEY_MAX_COMBS; i++) {
		struct pfkey_comb *c = &m->combs[i];
		struct sadb_comb sc;

		memcpy(&sc, p + sizeof(prop) + i * sizeof(sc), sizeof(sc));
		c->auth = sc.sadb_comb_auth;
		c->encrypt = sc.sadb_comb_encrypt;
		c->flags = sc.sadb_comb_flags;
		c->auth_minbits = sc.sadb_comb_auth_minbits;
		c->auth_maxbits = sc.sadb_comb_auth_maxbits;
		c->encrypt_minbits = sc.sadb_comb_encrypt_minbits;
		c->encrypt_maxbits = sc.sadb_comb_encrypt_maxbits;
		c->soft_allocations = sc.sadb_comb_soft_allocations;
		c->hard_allocations = sc.sadb_comb_hard_allocations;
		c->soft_bytes = sc.sadb_comb_soft_bytes;
		c->hard_bytes = sc.sadb_comb_hard_bytes;
		c->soft_addtime = sc.sadb_comb_soft_addtime;
		c->hard_addtime = sc.sadb_comb_hard_addtime;
		c->soft_usetime = sc.sadb_comb_soft_usetime;
		c->hard_usetime = sc.sadb_comb_hard_usetime;
	}
	return 0;
}

/* The length is a multiple of 8 and sadb_alg is 8 bytes: any length is whole. */
static void parse_supported(const uint8_t *p, size_t len, unsigned *count, struct pfkey_alg *algs)
{
	size_t n = (len - sizeof(struct sadb_supported)) / sizeof(struct sadb_alg);

	*count = (unsigned)n;
	for (size_t i = 0; i < n && i < PFKEY_MAX_ALGS; i++) {
		struct sadb_alg alg;

		memcpy(&alg, p + sizeof(struct sadb_supported) + i * sizeof(alg), sizeof(alg));
		algs[i].id = alg.sadb_alg_id;
		algs[i].ivlen = alg.sadb_alg_ivlen;
		algs[i].minbits = alg.sadb_alg_minbits;
		algs[i].maxbits = alg.sadb_alg_maxbits;
	}
}

/* af_key.c: parse_sockaddr_pair; outer source then destination, one family. */
static int parse_endpoints(const uint8_t *p, size_t len, struct pfkey_ipsecreq *r,
			   const char **why)
{
	uint16_t family, family2;
	size_t salen;

	if (len < sizeof(family))
		return reject(why, "ipsecrequest: tunnel mode without endpoints");
	memcpy(&family, p, sizeof(family));
	salen = sockaddr_len(family);
	if (!salen)
		return reject(why, "ipsecrequest: unsupported endpoint family");
	if (len < 2 * salen)
		return reject(why, "ipsecrequest: endpoints overrun the request");
	memcpy(&family2, p + salen, sizeof(family2));
	if (family2 != family)
		return reject(why, "ipsecrequest: endpoint families differ");
	sockaddr_get(p, family, &r->tun_src);
	sockaddr_get(p + salen, family, &r->tun_dst);
	r->tun_src.prefixlen = r->tun_dst.prefixlen = (uint8_t)max_prefix(family);
	r->tun_src.proto = r->tun_dst.proto = IPSEC_PROTO_ANY;
	r->has_endpoints = true;
	return 0;
}

/*
 * af_key.c: parse_ipsecrequests. sadb_x_ipsecrequest_len is in bytes; the
 * kernel emits 16, 48 or 72, so a length that is not a multiple of 8 or bytes
 * too few to hold a request are rejected rather than ignored.
 */
static int parse_policy(const uint8_t *p, size_t len, struct pfkey_policy *pol, const char **why)
{
	struct sadb_x_policy hdr;
	size_t off = sizeof(hdr);

	memcpy(&hdr, p, sizeof(hdr));
	pol->type = hdr.sadb_x_policy_type;
	pol->dir = hdr.sadb_x_policy_dir;
	/* Linux has no policy flags: flags carries the reserved byte through a round trip. */
	pol->flags = hdr.sadb_x_policy_reserved;
	pol->id = hdr.sadb_x_policy_id;
	pol->priority = hdr.sadb_x_policy_priority;
	while (off < len) {
		struct sadb_x_ipsecrequest rq;
		struct pfkey_ipsecreq *r;
		size_t left = len - off;
		size_t rq_len;
		int err;

		if (left < sizeof(rq))
			return reject(why, "policy: trailing bytes shorter than an ipsecrequest");
		memcpy(&rq, p + off, sizeof(rq));
		rq_len = rq.sadb_x_ipsecrequest_len;
		if (rq_len < sizeof(rq))
			return reject(why, "ipsecrequest: shorter than 16 bytes");
		if (rq_len % 8)
			return reject(why, "ipsecrequest: length not a multiple of 8 bytes");
		if (rq_len > left)
			return reject(why, "ipsecrequest: overruns the policy extension");
		/* af_key.c: parse_ipsecrequest refuses more than XFRM_MAX_DEPTH (ELOOP). */
		if (pol->nreqs == PFKEY_MAX_REQS)
			return reject(why, "policy: more than PFKEY_MAX_REQS ipsecrequests");
		r = &pol->reqs[pol->nreqs];
		memset(r, 0, sizeof(*r));
		r->proto = rq.sadb_x_ipsecrequest_proto;
		r->mode = rq.sadb_x_ipsecrequest_mode;
		r->level = rq.sadb_x_ipsecrequest_level;
		r->reqid = rq.sadb_x_ipsecrequest_reqid;
		if (r->mode == IPSEC_MODE_TUNNEL) {
			err = parse_endpoints(p + off + sizeof(rq), rq_len - sizeof(rq), r, why);
			if (err)
				return err;
		}
		pol->nreqs++;
		off += rq_len;
	}
	return 0;
}

/* af_key.c: verify_sec_ctx_len. */
static int check_sec_ctx(const uint8_t *p, size_t len, const char **why)
{
	struct sadb_x_sec_ctx ctx;

	memcpy(&ctx, p, sizeof(ctx));
	if (sizeof(ctx) + ctx.sadb_x_ctx_len > len)
		return reject(why, "sec_ctx: context overruns the extension");
	return 0;
}

static int parse_ext(uint16_t type, const uint8_t *p, size_t len, struct pfkey_msg *m,
		     const char **why)
{
	switch (type) {
	case SADB_EXT_SA:
		parse_sa(p, m);
		return 0;
	case SADB_EXT_LIFETIME_CURRENT:
		parse_lifetime(p, &m->current);
		return 0;
	case SADB_EXT_LIFETIME_HARD:
		parse_lifetime(p, &m->hard);
		return 0;
	case SADB_EXT_LIFETIME_SOFT:
		parse_lifetime(p, &m->soft);
		return 0;
	case SADB_EXT_ADDRESS_SRC:
		return parse_address(p, len, &m->src, why);
	case SADB_EXT_ADDRESS_DST:
		return parse_address(p, len, &m->dst, why);
	case SADB_EXT_ADDRESS_PROXY:
		return parse_address(p, len, &m->proxy, why);
	case SADB_X_EXT_NAT_T_OA:
		return parse_address(p, len, &m->natt_oa, why);
	case SADB_EXT_KEY_AUTH:
		return parse_key(p, len, &m->key_auth, why);
	case SADB_EXT_KEY_ENCRYPT:
		return parse_key(p, len, &m->key_enc, why);
	case SADB_EXT_PROPOSAL:
		return parse_proposal(p, len, m, why);
	case SADB_EXT_SUPPORTED_AUTH:
		parse_supported(p, len, &m->nauth_algs, m->auth_algs);
		return 0;
	case SADB_EXT_SUPPORTED_ENCRYPT:
		parse_supported(p, len, &m->nenc_algs, m->enc_algs);
		return 0;
	case SADB_EXT_SPIRANGE: {
		struct sadb_spirange r;

		memcpy(&r, p, sizeof(r));
		m->spi_min = r.sadb_spirange_min;
		m->spi_max = r.sadb_spirange_max;
		return 0;
	}
	case SADB_X_EXT_POLICY:
		return parse_policy(p, len, &m->policy, why);
	case SADB_X_EXT_SA2: {
		struct sadb_x_sa2 sa2;

		memcpy(&sa2, p, sizeof(sa2));
		m->mode = sa2.sadb_x_sa2_mode;
		m->sa2_sequence = sa2.sadb_x_sa2_sequence;
		m->reqid = sa2.sadb_x_sa2_reqid;
		return 0;
	}
	case SADB_X_EXT_NAT_T_TYPE: {
		struct sadb_x_nat_t_type t;

		memcpy(&t, p, sizeof(t));
		m->natt_type = t.sadb_x_nat_t_type_type;
		return 0;
	}
	case SADB_X_EXT_NAT_T_SPORT:
	case SADB_X_EXT_NAT_T_DPORT: {
		struct sadb_x_nat_t_port port;

		memcpy(&port, p, sizeof(port));
		if (type == SADB_X_EXT_NAT_T_SPORT)
			m->natt_sport = ntohs(port.sadb_x_nat_t_port_port);
		else
			m->natt_dport = ntohs(port.sadb_x_nat_t_port_port);
		return 0;
	}
	case SADB_X_EXT_SEC_CTX:
		return check_sec_ctx(p, len, why);
	default:
		/* identity, sensitivity, KMPRIVATE, KMADDRESS, filter: length only */
		return 0;
	}
}

static int decode(const uint8_t *p, size_t len, struct pfkey_msg *m, const char **why)
{
	struct sadb_msg hdr;

	memset(m, 0, sizeof(*m));
	if (len < sizeof(hdr)) {
		*why = "message shorter than sadb_msg";
		return -EMSGSIZE;
	}
	memcpy(&hdr, p, sizeof(hdr));
	if (hdr.sadb_msg_version != PF_KEY_V2)
		return reject(why, "sadb_msg_version is not PF_KEY_V2");
	if (len % 8) {
		*why = "message length not a multiple of 8";
		return -EMSGSIZE;
	}
	if (hdr.sadb_msg_len < 2) {
		*why = "sadb_msg_len below 2";
		return -EMSGSIZE;
	}
	if ((size_t)hdr.sadb_msg_len * 8 != len) {
		*why = "sadb_msg_len does not match the message length";
		return -EMSGSIZE;
	}
	/* sadb_msg_reserved is not checked: SPD messages carry a refcount there. */
	if (hdr.sadb_msg_type == SADB_RESERVED || hdr.sadb_msg_type > SADB_MAX)
		return reject(why, "sadb_msg_type out of range");
	m->type = hdr.sadb_msg_type;
	m->errno_val = hdr.sadb_msg_errno;
	m->satype = hdr.sadb_msg_satype;
	m->reserved = hdr.sadb_msg_reserved;
	m->seq = hdr.sadb_msg_seq;
	m->pid = hdr.sadb_msg_pid;

	/* len and every extension are multiples of 8: a whole sadb_ext always remains. */
	for (size_t off = sizeof(hdr), ext_len; off < len; off += ext_len) {
		struct sadb_ext ext;
		int err;

		memcpy(&ext, p + off, sizeof(ext));
		ext_len = (size_t)ext.sadb_ext_len * 8;
		if (ext_len == 0)
			return reject(why, "extension length zero");
		if (ext_len > len - off)
			return reject(why, "extension overruns the message");
		if (ext.sadb_ext_type == SADB_EXT_RESERVED)
			return reject(why, "extension type 0");
		/* af_key.c: parse_exthdrs skips unknown types silently. */
		if (ext.sadb_ext_type > SADB_EXT_MAX)
			continue;
		if (ext_len < ext_min[ext.sadb_ext_type].min)
			return reject(why, ext_min[ext.sadb_ext_type].why);
		if (m->present & PFKEY_EXT_BIT(ext.sadb_ext_type))
			return reject(why, "duplicate extension");
		m->present |= PFKEY_EXT_BIT(ext.sadb_ext_type);
		err = parse_ext(ext.sadb_ext_type, p + off, ext_len, m, why);
		if (err)
			return err;
	}
	return 0;
}

int pfkey_decode(const void *buf, size_t len, struct pfkey_msg *m, const char **why)
{
	const char *rule = NULL;
	int err = decode(buf, len, m, &rule);

	if (err)
		memset(m, 0, sizeof(*m));
	if (why)
		*why = rule;
	return err;
}

struct wbuf {
	uint8_t *p;
	size_t cap;
	size_t off;
};

/* Reserves n zeroed bytes (padding included), or NULL if they do not fit. */
static uint8_t *reserve(struct wbuf *w, size_t n)
{
	uint8_t *q;

	if (n > w->cap - w->off)
		return NULL;
	q = w->p + w->off;
	memset(q, 0, n);
	w->off += n;
	return q;
}

static int put_sa(struct wbuf *w, const struct pfkey_msg *m)
{
	struct sadb_sa sa;
	uint8_t *q = reserve(w, sizeof(sa));

	if (!q)
		return -EMSGSIZE;
	memset(&sa, 0, sizeof(sa));
	sa.sadb_sa_len = sizeof(sa) / 8;
	sa.sadb_sa_exttype = SADB_EXT_SA;
	sa.sadb_sa_spi = htonl(m->spi);
	sa.sadb_sa_replay = m->replay;
	sa.sadb_sa_state = m->state;
	sa.sadb_sa_auth = m->auth;
	sa.sadb_sa_encrypt = m->encrypt;
	sa.sadb_sa_flags = m->flags;
	memcpy(q, &sa, sizeof(sa));
	return 0;
}

static int put_lifetime(struct wbuf *w, uint16_t type, const struct pfkey_lifetime *lt)
{
	struct sadb_lifetime l;
	uint8_t *q = reserve(w, sizeof(l));

	if (!q)
		return -EMSGSIZE;
	memset(&l, 0, sizeof(l));
	l.sadb_lifetime_len = sizeof(l) / 8;
	l.sadb_lifetime_exttype = type;
	l.sadb_lifetime_allocations = lt->allocations;
	l.sadb_lifetime_bytes = lt->bytes;
	l.sadb_lifetime_addtime = lt->addtime;
	l.sadb_lifetime_usetime = lt->usetime;
	memcpy(q, &l, sizeof(l));
	return 0;
}

static int put_address(struct wbuf *w, uint16_t type, const struct pfkey_addr *a)
{
	size_t salen = sockaddr_len(a->family);
	struct sadb_address hdr;
	size_t size;
	uint8_t *q;

	if (!salen || a->prefixlen > max_prefix(a->family))
		return -EINVAL;
	size = ALIGN8(sizeof(hdr) + salen);
	q = reserve(w, size);
	if (!q)
		return -EMSGSIZE;
	memset(&hdr, 0, sizeof(hdr));
	hdr.sadb_address_len = (uint16_t)(size / 8);
	hdr.sadb_address_exttype = type;
	hdr.sadb_address_proto = a->proto;
	hdr.sadb_address_prefixlen = a->prefixlen;
	memcpy(q, &hdr, sizeof(hdr));
	sockaddr_put(q + sizeof(hdr), a);
	return 0;
}

static int put_key(struct wbuf *w, uint16_t type, const struct pfkey_key *k)
{
	size_t bytes = (k->bits + 7u) / 8u;
	size_t size = sizeof(struct sadb_key) + ALIGN8(bytes);
	struct sadb_key hdr;
	uint8_t *q;

	if (bytes && !k->data)
		return -EINVAL;
	q = reserve(w, size);
	if (!q)
		return -EMSGSIZE;
	memset(&hdr, 0, sizeof(hdr));
	hdr.sadb_key_len = (uint16_t)(size / 8);
	hdr.sadb_key_exttype = type;
	hdr.sadb_key_bits = k->bits;
	memcpy(q, &hdr, sizeof(hdr));
	if (bytes)
		memcpy(q + sizeof(hdr), k->data, bytes);
	return 0;
}

static int put_proposal(struct wbuf *w, const struct pfkey_msg *m)
{
	size_t size = sizeof(struct sadb_prop) + m->ncombs * sizeof(struct sadb_comb);
	struct sadb_prop prop;
	uint8_t *q;

	if (m->ncombs > PFKEY_MAX_COMBS)
		return -EINVAL;
	for (unsigned i = 0; i < m->ncombs; i++)
		if (m->combs[i].flags > UINT16_MAX)
			return -EINVAL;
	q = reserve(w, size);
	if (!q)
		return -EMSGSIZE;
	memset(&prop, 0, sizeof(prop));
	prop.sadb_prop_len = (uint16_t)(size / 8);
	prop.sadb_prop_exttype = SADB_EXT_PROPOSAL;
	prop.sadb_prop_replay = m->prop_replay;
	memcpy(q, &prop, sizeof(prop));
	for (unsigned i = 0; i < m->ncombs; i++) {
		const struct pfkey_comb *c = &m->combs[i];
		struct sadb_comb sc;

		memset(&sc, 0, sizeof(sc));
		sc.sadb_comb_auth = c->auth;
		sc.sadb_comb_encrypt = c->encrypt;
		sc.sadb_comb_flags = (uint16_t)c->flags;
		sc.sadb_comb_auth_minbits = c->auth_minbits;
		sc.sadb_comb_auth_maxbits = c->auth_maxbits;
		sc.sadb_comb_encrypt_minbits = c->encrypt_minbits;
		sc.sadb_comb_encrypt_maxbits = c->encrypt_maxbits;
		sc.sadb_comb_soft_allocations = c->soft_allocations;
		sc.sadb_comb_hard_allocations = c->hard_allocations;
		sc.sadb_comb_soft_bytes = c->soft_bytes;
		sc.sadb_comb_hard_bytes = c->hard_bytes;
		sc.sadb_comb_soft_addtime = c->soft_addtime;
		sc.sadb_comb_hard_addtime = c->hard_addtime;
		sc.sadb_comb_soft_usetime = c->soft_usetime;
		sc.sadb_comb_hard_usetime = c->hard_usetime;
		memcpy(q + sizeof(prop) + i * sizeof(sc), &sc, sizeof(sc));
	}
	return 0;
}

static int put_supported(struct wbuf *w, uint16_t type, unsigned n, const struct pfkey_alg *algs)
{
	size_t size = sizeof(struct sadb_supported) + n * sizeof(struct sadb_alg);
	struct sadb_supported sup;
	uint8_t *q;

	if (n > PFKEY_MAX_ALGS)
		return -EINVAL;
	q = reserve(w, size);
	if (!q)
		return -EMSGSIZE;
	memset(&sup, 0, sizeof(sup));
	sup.sadb_supported_len = (uint16_t)(size / 8);
	sup.sadb_supported_exttype = type;
	memcpy(q, &sup, sizeof(sup));
	for (unsigned i = 0; i < n; i++) {
		struct sadb_alg alg;

		memset(&alg, 0, sizeof(alg));
		alg.sadb_alg_id = algs[i].id;
		alg.sadb_alg_ivlen = algs[i].ivlen;
		alg.sadb_alg_minbits = algs[i].minbits;
		alg.sadb_alg_maxbits = algs[i].maxbits;
		memcpy(q + sizeof(sup) + i * sizeof(alg), &alg, sizeof(alg));
	}
	return 0;
}

static int put_spirange(struct wbuf *w, const struct pfkey_msg *m)
{
	struct sadb_spirange r;
	uint8_t *q = reserve(w, sizeof(r));

	if (!q)
		return -EMSGSIZE;
	memset(&r, 0, sizeof(r));
	r.sadb_spirange_len = sizeof(r) / 8;
	r.sadb_spirange_exttype = SADB_EXT_SPIRANGE;
	r.sadb_spirange_min = m->spi_min;
	r.sadb_spirange_max = m->spi_max;
	memcpy(q, &r, sizeof(r));
	return 0;
}

/* Bytes the request takes on the wire, 0 if the decoder could not read it back. */
static size_t req_size(const struct pfkey_ipsecreq *r)
{
	size_t salen;

	if (r->has_endpoints != (r->mode == IPSEC_MODE_TUNNEL))
		return 0;
	if (!r->has_endpoints)
		return sizeof(struct sadb_x_ipsecrequest);
	salen = sockaddr_len(r->tun_src.family);
	if (!salen || r->tun_dst.family != r->tun_src.family)
		return 0;
	return sizeof(struct sadb_x_ipsecrequest) + ALIGN8(2 * salen);
}

static int put_policy(struct wbuf *w, const struct pfkey_policy *pol)
{
	size_t size = sizeof(struct sadb_x_policy);
	struct sadb_x_policy hdr;
	uint8_t *q;

	if (pol->nreqs > PFKEY_MAX_REQS)
		return -EINVAL;
	for (unsigned i = 0; i < pol->nreqs; i++) {
		size_t n = req_size(&pol->reqs[i]);

		if (!n)
			return -EINVAL;
		size += n;
	}
	q = reserve(w, size);
	if (!q)
		return -EMSGSIZE;
	memset(&hdr, 0, sizeof(hdr));
	hdr.sadb_x_policy_len = (uint16_t)(size / 8);
	hdr.sadb_x_policy_exttype = SADB_X_EXT_POLICY;
	hdr.sadb_x_policy_type = pol->type;
	hdr.sadb_x_policy_dir = pol->dir;
	hdr.sadb_x_policy_reserved = pol->flags;
	hdr.sadb_x_policy_id = pol->id;
	hdr.sadb_x_policy_priority = pol->priority;
	memcpy(q, &hdr, sizeof(hdr));
	q += sizeof(hdr);
	for (unsigned i = 0; i < pol->nreqs; i++) {
		const struct pfkey_ipsecreq *r = &pol->reqs[i];
		struct sadb_x_ipsecrequest rq;
		size_t n = req_size(r);

		memset(&rq, 0, sizeof(rq));
		rq.sadb_x_ipsecrequest_len = (uint16_t)n; /* bytes, not units */
		rq.sadb_x_ipsecrequest_proto = r->proto;
		rq.sadb_x_ipsecrequest_mode = r->mode;
		rq.sadb_x_ipsecrequest_level = r->level;
		rq.sadb_x_ipsecrequest_reqid = r->reqid;
		memcpy(q, &rq, sizeof(rq));
		if (r->has_endpoints) {
			size_t salen = sockaddr_len(r->tun_src.family);

			sockaddr_put(q + sizeof(rq), &r->tun_src);
			sockaddr_put(q + sizeof(rq) + salen, &r->tun_dst);
		}
		q += n;
	}
	return 0;
}

static int put_sa2(struct wbuf *w, const struct pfkey_msg *m)
{
	struct sadb_x_sa2 sa2;
	uint8_t *q = reserve(w, sizeof(sa2));

	if (!q)
		return -EMSGSIZE;
	memset(&sa2, 0, sizeof(sa2));
	sa2.sadb_x_sa2_len = sizeof(sa2) / 8;
	sa2.sadb_x_sa2_exttype = SADB_X_EXT_SA2;
	sa2.sadb_x_sa2_mode = m->mode;
	sa2.sadb_x_sa2_sequence = m->sa2_sequence;
	sa2.sadb_x_sa2_reqid = m->reqid;
	memcpy(q, &sa2, sizeof(sa2));
	return 0;
}

static int put_natt_type(struct wbuf *w, uint8_t natt_type)
{
	struct sadb_x_nat_t_type t;
	uint8_t *q = reserve(w, sizeof(t));

	if (!q)
		return -EMSGSIZE;
	memset(&t, 0, sizeof(t));
	t.sadb_x_nat_t_type_len = sizeof(t) / 8;
	t.sadb_x_nat_t_type_exttype = SADB_X_EXT_NAT_T_TYPE;
	t.sadb_x_nat_t_type_type = natt_type;
	memcpy(q, &t, sizeof(t));
	return 0;
}

static int put_natt_port(struct wbuf *w, uint16_t type, uint16_t port)
{
	struct sadb_x_nat_t_port np;
	uint8_t *q = reserve(w, sizeof(np));

	if (!q)
		return -EMSGSIZE;
	memset(&np, 0, sizeof(np));
	np.sadb_x_nat_t_port_len = sizeof(np) / 8;
	np.sadb_x_nat_t_port_exttype = type;
	np.sadb_x_nat_t_port_port = htons(port);
	memcpy(q, &np, sizeof(np));
	return 0;
}

static int put_ext(struct wbuf *w, uint16_t type, const struct pfkey_msg *m)
{
	switch (type) {
	case SADB_EXT_SA:
		return put_sa(w, m);
	case SADB_EXT_LIFETIME_CURRENT:
		return put_lifetime(w, type, &m->current);
	case SADB_EXT_LIFETIME_HARD:
		return put_lifetime(w, type, &m->hard);
	case SADB_EXT_LIFETIME_SOFT:
		return put_lifetime(w, type, &m->soft);
	case SADB_EXT_ADDRESS_SRC:
		return put_address(w, type, &m->src);
	case SADB_EXT_ADDRESS_DST:
		return put_address(w, type, &m->dst);
	case SADB_EXT_ADDRESS_PROXY:
		return put_address(w, type, &m->proxy);
	case SADB_EXT_KEY_AUTH:
		return put_key(w, type, &m->key_auth);
	case SADB_EXT_KEY_ENCRYPT:
		return put_key(w, type, &m->key_enc);
	case SADB_EXT_PROPOSAL:
		return put_proposal(w, m);
	case SADB_EXT_SUPPORTED_AUTH:
		return put_supported(w, type, m->nauth_algs, m->auth_algs);
	case SADB_EXT_SUPPORTED_ENCRYPT:
		return put_supported(w, type, m->nenc_algs, m->enc_algs);
	case SADB_EXT_SPIRANGE:
		return put_spirange(w, m);
	case SADB_X_EXT_POLICY:
		return put_policy(w, &m->policy);
	case SADB_X_EXT_SA2:
		return put_sa2(w, m);
	case SADB_X_EXT_NAT_T_TYPE:
		return put_natt_type(w, m->natt_type);
	case SADB_X_EXT_NAT_T_SPORT:
		return put_natt_port(w, type, m->natt_sport);
	case SADB_X_EXT_NAT_T_DPORT:
		return put_natt_port(w, type, m->natt_dport);
	case SADB_X_EXT_NAT_T_OA:
		return put_address(w, type, &m->natt_oa);
	default:
		return -EINVAL;
	}
}

ssize_t pfkey_encode(const struct pfkey_msg *m, void *buf, size_t cap)
{
	struct wbuf w = { .p = buf, .cap = cap, .off = 0 };
	struct sadb_msg hdr;
	uint8_t *q;
	int err = 0;

	if (m->type == SADB_RESERVED || m->type > SADB_MAX || (m->present & ~PFKEY_EXT_CODED))
		return -EINVAL;
	q = reserve(&w, sizeof(hdr));
	if (!q)
		return -EMSGSIZE;
	for (uint16_t type = 1; type <= SADB_EXT_MAX && !err; type++)
		if (m->present & PFKEY_EXT_BIT(type))
			err = put_ext(&w, type, m);
	if (!err && w.off > PFKEY_MSG_MAX)
		err = -EMSGSIZE;
	if (err) {
		/* The extensions written so far may hold key bytes. */
		pfkey_cleanse(buf, w.off);
		return err;
	}
	memset(&hdr, 0, sizeof(hdr));
	hdr.sadb_msg_version = PF_KEY_V2;
	hdr.sadb_msg_type = m->type;
	hdr.sadb_msg_errno = m->errno_val;
	hdr.sadb_msg_satype = m->satype;
	hdr.sadb_msg_len = (uint16_t)(w.off / 8);
	hdr.sadb_msg_reserved = m->reserved;
	hdr.sadb_msg_seq = m->seq;
	hdr.sadb_msg_pid = m->pid;
	memcpy(q, &hdr, sizeof(hdr));
	return (ssize_t)w.off;
}

void pfkey_msg_init(struct pfkey_msg *m, uint8_t type, uint8_t satype, uint32_t seq,
		    uint32_t pid)
{
	/*
	 * All but the proposal and supported-algorithm arrays, which every
	 * reader takes only up to their counts (zeroed here): they are 1.5 KB
	 * of the 2.2, and a rotation of 10,000 links builds 40,000 requests.
	 */
	memset(m, 0, offsetof(struct pfkey_msg, combs));
	m->nauth_algs = m->nenc_algs = 0;
	memset(&m->spi_min, 0, sizeof(*m) - offsetof(struct pfkey_msg, spi_min));
	m->type = type;
	m->satype = satype;
	m->seq = seq;
	m->pid = pid;
}

int pfkey_addr_from_string(struct pfkey_addr *a, const char *text)
{
	const char *slash = strchr(text, '/');
	size_t host_len = slash ? (size_t)(slash - text) : strlen(text);
	char host[INET6_ADDRSTRLEN];
	struct pfkey_addr out;
	unsigned max;

	if (host_len == 0 || host_len >= sizeof(host))
		return -EINVAL;
	memcpy(host, text, host_len);
	host[host_len] = '\0';
	memset(&out, 0, sizeof(out));
	if (inet_pton(AF_INET, host, out.addr) == 1)
		out.family = AF_INET;
	else if (inet_pton(AF_INET6, host, out.addr) == 1)
		out.family = AF_INET6;
	else
		return -EINVAL;
	max = max_prefix(out.family);
	out.prefixlen = (uint8_t)max;
	out.proto = IPSEC_PROTO_ANY;
	if (slash) {
		const char *s = slash + 1;
		unsigned prefix = 0;

		if (*s == '\0')
			return -EINVAL;
		for (; *s; s++) {
			if (*s < '0' || *s > '9')
				return -EINVAL;
			prefix = prefix * 10 + (unsigned)(*s - '0');
			if (prefix > max)
				return -EINVAL;
		}
		out.prefixlen = (uint8_t)prefix;
	}
	*a = out;
	return 0;
}

const char *pfkey_addr_to_string(const struct pfkey_addr *a, char *buf, size_t len)
{
	if (!len)
		return buf;
	if (!sockaddr_len(a->family) || !inet_ntop(a->family, a->addr, buf, (socklen_t)len))
		snprintf(buf, len, "?");
	return buf;
}

const char *pfkey_type_name(uint8_t type)
{
	if (type > SADB_MAX || !type_names[type])
		return "UNKNOWN";
	return type_names[type];
}

size_t pfkey_sockaddr_len(uint8_t family)
{
	return sockaddr_len(family);
}

static bool addr_equal(const struct pfkey_addr *a, const struct pfkey_addr *b, bool endpoint)
{
	if (a->family != b->family || a->port != b->port)
		return false;
	/* tunnel endpoints carry no prefix or proto on the wire */
	if (!endpoint && (a->prefixlen != b->prefixlen || a->proto != b->proto))
		return false;
	return memcmp(a->addr, b->addr, addr_bytes(a->family)) == 0;
}

static bool lifetime_equal(const struct pfkey_lifetime *a, const struct pfkey_lifetime *b)
{
	return a->allocations == b->allocations && a->bytes == b->bytes &&
	       a->addtime == b->addtime && a->usetime == b->usetime;
}

static bool key_equal(const struct pfkey_key *a, const struct pfkey_key *b)
{
	size_t bytes = (a->bits + 7u) / 8u;

	if (a->bits != b->bits)
		return false;
	if (!bytes)
		return true;
	if (!a->data || !b->data)
		return a->data == b->data;
	return memcmp(a->data, b->data, bytes) == 0;
}

static bool comb_equal(const struct pfkey_comb *a, const struct pfkey_comb *b)
{
	return a->auth == b->auth && a->encrypt == b->encrypt && a->flags == b->flags &&
	       a->auth_minbits == b->auth_minbits && a->auth_maxbits == b->auth_maxbits &&
	       a->encrypt_minbits == b->encrypt_minbits &&
	       a->encrypt_maxbits == b->encrypt_maxbits && a->soft_addtime == b->soft_addtime &&
	       a->hard_addtime == b->hard_addtime && a->soft_usetime == b->soft_usetime &&
	       a->hard_usetime == b->hard_usetime && a->soft_bytes == b->soft_bytes &&
	       a->hard_bytes == b->hard_bytes && a->soft_allocations == b->soft_allocations &&
	       a->hard_allocations == b->hard_allocations;
}

static bool algs_equal(unsigned na, const struct pfkey_alg *a, unsigned nb,
		       const struct pfkey_alg *b)
{
	if (na != nb)
		return false;
	for (unsigned i = 0; i < na && i < PFKEY_MAX_ALGS; i++)
		if (a[i].id != b[i].id || a[i].ivlen != b[i].ivlen ||
		    a[i].minbits != b[i].minbits || a[i].maxbits != b[i].maxbits)
			return false;
	return true;
}

static bool req_equal(const struct pfkey_ipsecreq *a, const struct pfkey_ipsecreq *b)
{
	if (a->proto != b->proto || a->mode != b->mode || a->level != b->level ||
	    a->reqid != b->reqid || a->has_endpoints != b->has_endpoints)
		return false;
	return !a->has_endpoints ||
	       (addr_equal(&a->tun_src, &b->tun_src, true) &&
		addr_equal(&a->tun_dst, &b->tun_dst, true));
}

static bool policy_equal(const struct pfkey_policy *a, const struct pfkey_policy *b)
{
	if (a->type != b->type || a->dir != b->dir || a->flags != b->flags || a->id != b->id ||
	    a->priority != b->priority || a->nreqs != b->nreqs || a->nreqs > PFKEY_MAX_REQS)
		return false;
	for (unsigned i = 0; i < a->nreqs; i++)
		if (!req_equal(&a->reqs[i], &b->reqs[i]))
			return false;
	return true;
}

static bool ext_equal(uint16_t type, const struct pfkey_msg *a, const struct pfkey_msg *b)
{
	switch (type) {
	case SADB_EXT_SA:
		return a->spi == b->spi && a->replay == b->replay && a->state == b->state &&
		       a->auth == b->auth && a->encrypt == b->encrypt && a->flags == b->flags;
	case SADB_EXT_LIFETIME_CURRENT:
		return lifetime_equal(&a->current, &b->current);
	case SADB_EXT_LIFETIME_HARD:
		return lifetime_equal(&a->hard, &b->hard);
	case SADB_EXT_LIFETIME_SOFT:
		return lifetime_equal(&a->soft, &b->soft);
	case SADB_EXT_ADDRESS_SRC:
		return addr_equal(&a->src, &b->src, false);
	case SADB_EXT_ADDRESS_DST:
		return addr_equal(&a->dst, &b->dst, false);
	case SADB_EXT_ADDRESS_PROXY:
		return addr_equal(&a->proxy, &b->proxy, false);
	case SADB_EXT_KEY_AUTH:
		return key_equal(&a->key_auth, &b->key_auth);
	case SADB_EXT_KEY_ENCRYPT:
		return key_equal(&a->key_enc, &b->key_enc);
	case SADB_EXT_PROPOSAL:
		if (a->prop_replay != b->prop_replay || a->ncombs != b->ncombs)
			return false;
		for (unsigned i = 0; i < a->ncombs && i < PFKEY_MAX_COMBS; i++)
			if (!comb_equal(&a->combs[i], &b->combs[i]))
				return false;
		return true;
	case SADB_EXT_SUPPORTED_AUTH:
		return algs_equal(a->nauth_algs, a->auth_algs, b->nauth_algs, b->auth_algs);
	case SADB_EXT_SUPPORTED_ENCRYPT:
		return algs_equal(a->nenc_algs, a->enc_algs, b->nenc_algs, b->enc_algs);
	case SADB_EXT_SPIRANGE:
		return a->spi_min == b->spi_min && a->spi_max == b->spi_max;
	case SADB_X_EXT_POLICY:
		return policy_equal(&a->policy, &b->policy);
	case SADB_X_EXT_SA2:
		return a->mode == b->mode && a->sa2_sequence == b->sa2_sequence &&
		       a->reqid == b->reqid;
	case SADB_X_EXT_NAT_T_TYPE:
		return a->natt_type == b->natt_type;
	case SADB_X_EXT_NAT_T_SPORT:
		return a->natt_sport == b->natt_sport;
	case SADB_X_EXT_NAT_T_DPORT:
		return a->natt_dport == b->natt_dport;
	case SADB_X_EXT_NAT_T_OA:
		return addr_equal(&a->natt_oa, &b->natt_oa, false);
	default:
		/* length-checked only: nothing stored to compare */
		return true;
	}
}

bool pfkey_msg_equal(const struct pfkey_msg *a, const struct pfkey_msg *b)
{
	if (a->type != b->type || a->errno_val != b->errno_val || a->satype != b->satype ||
	    a->reserved != b->reserved || a->seq != b->seq || a->pid != b->pid ||
	    a->present != b->present)
		return false;
	for (uint16_t type = 1; type <= SADB_EXT_MAX; type++)
		if ((a->present & PFKEY_EXT_BIT(type)) && !ext_equal(type, a, b))
			return false;
	return true;
}

void pfkey_cleanse(void *buf, size_t len)
{
	if (buf && len)
		explicit_bzero(buf, len);
}

void pfkey_set_sa(struct pfkey_msg *m, uint32_t spi, uint8_t replay, uint8_t auth, uint8_t enc)
{
	m->spi = spi;
	m->replay = replay;
	m->state = SADB_SASTATE_MATURE;
	m->auth = auth;
	m->encrypt = enc;
	m->flags = 0;
	m->present |= PFKEY_EXT_BIT(SADB_EXT_SA);
}

int pfkey_set_addr(struct pfkey_msg *m, uint16_t ext, const struct pfkey_addr *a)
{
	struct pfkey_addr *dst;

	switch (ext) {
	case SADB_EXT_ADDRESS_SRC:
		dst = &m->src;
		break;
	case SADB_EXT_ADDRESS_DST:
		dst = &m->dst;
		break;
	case SADB_EXT_ADDRESS_PROXY:
		dst = &m->proxy;
		break;
	case SADB_X_EXT_NAT_T_OA:
		dst = &m->natt_oa;
		break;
	default:
		return -EINVAL;
	}
	*dst = *a;
	m->present |= PFKEY_EXT_BIT(ext);
	return 0;
}

int pfkey_set_key(struct pfkey_msg *m, uint16_t ext, const uint8_t *data, uint16_t bits)
{
	struct pfkey_key *k;

	if (ext == SADB_EXT_KEY_AUTH)
		k = &m->key_auth;
	else if (ext == SADB_EXT_KEY_ENCRYPT)
		k = &m->key_enc;
	else
		return -EINVAL;
	if (bits && !data)
		return -EINVAL;
	k->bits = bits;
	k->data = data;
	m->present |= PFKEY_EXT_BIT(ext);
	return 0;
}

int pfkey_set_lifetime(struct pfkey_msg *m, uint16_t ext, const struct pfkey_lifetime *lt)
{
	switch (ext) {
	case SADB_EXT_LIFETIME_CURRENT:
		m->current = *lt;
		break;
	case SADB_EXT_LIFETIME_HARD:
		m->hard = *lt;
		break;
	case SADB_EXT_LIFETIME_SOFT:
		m->soft = *lt;
		break;
	default:
		return -EINVAL;
	}
	m->present |= PFKEY_EXT_BIT(ext);
	return 0;
}

void pfkey_set_sa2(struct pfkey_msg *m, uint8_t mode, uint32_t reqid)
{
	m->mode = mode;
	m->reqid = reqid;
	m->sa2_sequence = 0;
	m->present |= PFKEY_EXT_BIT(SADB_X_EXT_SA2);
}

void pfkey_set_spirange(struct pfkey_msg *m, uint32_t min, uint32_t max)
{
	m->spi_min = min;
	m->spi_max = max;
	m->present |= PFKEY_EXT_BIT(SADB_EXT_SPIRANGE);
}

void pfkey_set_policy(struct pfkey_msg *m, uint16_t type, uint8_t dir, uint32_t priority)
{
	memset(&m->policy, 0, sizeof(m->policy));
	m->policy.type = type;
	m->policy.dir = dir;
	m->policy.priority = priority;
	m->present |= PFKEY_EXT_BIT(SADB_X_EXT_POLICY);
}

int pfkey_policy_add_req(struct pfkey_msg *m, const struct pfkey_ipsecreq *req)
{
	if (m->policy.nreqs >= PFKEY_MAX_REQS)
		return -ENOSPC;
	m->policy.reqs[m->policy.nreqs++] = *req;
	return 0;
}

void pfkey_set_natt(struct pfkey_msg *m, uint8_t type, uint16_t sport, uint16_t dport)
{
	m->natt_type = type;
	m->natt_sport = sport;
	m->natt_dport = dport;
	m->present |= PFKEY_EXT_BIT(SADB_X_EXT_NAT_T_TYPE) |
		      PFKEY_EXT_BIT(SADB_X_EXT_NAT_T_SPORT) | PFKEY_EXT_BIT(SADB_X_EXT_NAT_T_DPORT);
}

uint8_t pfkey_satype_proto(uint8_t satype)
{
	switch (satype) {
	case SADB_SATYPE_ESP:
		return IPPROTO_ESP;
	case SADB_SATYPE_AH:
		return IPPROTO_AH;
	case SADB_X_SATYPE_IPCOMP:
		return IPPROTO_COMP;
	default:
		return 0;
	}
}
