/* SPDX-License-Identifier: ISC */
/* The simulated SADB: an in-process PF_KEYv2 kernel modelled on Linux af_key, with fault injection. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <linux/sockios.h>

#include "svc/base/container.h"
#include "svc/base/log.h"
#include "svc/kernel/sim.h"

#define KEY_MAX 128
#define DEFAULT_ACQ_EXPIRES 30
/*
 * What a client may leave unread: the daemon's PF_KEY receive buffer
 * (channel.c: DEFAULT_RCVBUF), so a burst the kernel would queue for it
 * (10,000 EXPIREs at once: tests/sim/burst.py) is not lost here alone.
 */
#define SNDBUF (32 * 1024 * 1024)

enum sa_state { ST_LARVAL = 0, ST_MATURE = 1, ST_DYING = 2, ST_DEAD = 3 };

struct sim_sa {
	struct sim_sa *next; /* newest first, as Linux dumps */
	struct sim_sa *prev;
	struct sim_sa *hnext; /* chain of its (satype, dst, SPI) bucket */
	uint64_t order;      /* insertion counter: ties of add time go to the latest */
	uint8_t satype;
	uint32_t spi;
	struct pfkey_addr src, dst;
	uint8_t state, auth, enc, replay;
	uint32_t flags;
	uint8_t mode;
	uint32_t reqid;
	uint8_t key_auth[KEY_MAX], key_enc[KEY_MAX];
	uint16_t auth_bits, enc_bits;
	bool has_auth;
	struct pfkey_lifetime soft, hard, cur;
	uint32_t acq_seq;
	bool by_spi; /* in the kernel's byspi hash: mature, or larval with a GETSPI'd SPI */
	/*
	 * struct xfrm_replay_state (legacy, non-ESN) and x->stats: this SA
	 * instance's alone, zero when it is made; a deleted and re-added SA
	 * starts from zero again.
	 */
	uint32_t oseq, rseq, bitmap;
	uint32_t replay_errs, window_errs;
};

/* Buckets of the (satype, dst, SPI) index: lookups stay O(1) at 40,000 SAs. */
#define SIM_BYSPI_BUCKETS 16384

struct sim_pol {
	struct sim_pol *next;
	struct pfkey_addr src, dst;
	struct pfkey_policy pol;
};

struct outmsg {
	struct outmsg *next;
	uint64_t due; /* loop time, for delayed delivery */
	size_t len;
	uint8_t data[];
};

struct client {
	struct client *next;
	struct sim *s;
	uv_poll_t poll;
	int fd;
	int peer_fd; /* the caller's end from sim_connect, -1 for accepted clients */
	unsigned registered; /* bitmask of satypes */
	bool promisc;
	unsigned drop_next;
	struct outmsg *dump_head, *dump_tail; /* flow-controlled dump in progress */
	bool closing;
};

struct sim {
	uv_loop_t *loop;
	struct sim_opts opts;
	uv_timer_t tick;
	uv_timer_t delay_timer;
	uv_poll_t listen_poll;
	int listen_fd;
	char listen_path[108];
	struct client *clients;
	struct sim_sa *sas;
	struct sim_sa *byspi[SIM_BYSPI_BUCKETS]; /* as the kernel's state_byspi hash */
	bool any_larval; /* once a larval state existed, adds look for one */
	struct sim_pol *pols;
	unsigned nsas, npols;
	uint64_t order;
	uint32_t acq_seq;
	uint32_t pol_index;
	/* faults */
	uint8_t fail_type;
	int fail_err;
	unsigned fail_count;
	unsigned delay_ms;
	unsigned drop_permille;
	uint32_t rng;
	struct outmsg *delayed_head, *delayed_tail;
	struct sim_stats stats;
	int handles; /* open handles, for the close */
	bool closing;
	uint8_t buf[PFKEY_MSG_MAX];
};

static int64_t now_s(struct sim *s)
{
	return s->opts.now ? s->opts.now(s->opts.now_arg) : (int64_t)time(NULL);
}

static size_t alen(const struct pfkey_addr *a)
{
	return a->family == AF_INET ? 4 : 16;
}

static bool addr_eq(const struct pfkey_addr *a, const struct pfkey_addr *b)
{
	return a->family == b->family && !memcmp(a->addr, b->addr, alen(a));
}

static bool prefix_match(const struct pfkey_addr *net, const struct pfkey_addr *a)
{
	unsigned bits = net->prefixlen, full = bits / 8;

	if (net->family != a->family)
		return false;
	if (memcmp(net->addr, a->addr, full))
		return false;
	if (bits % 8) {
		uint8_t mask = (uint8_t)(0xff << (8 - bits % 8));

		return (net->addr[full] & mask) == (a->addr[full] & mask);
	}
	return true;
}

/* --- delivery -------------------------------------------------------------- */

static bool drop_roll(struct sim *s)
{
	if (!s->drop_permille)
		return false;
	/* xorshift32: deterministic for a seed */
	s->rng ^= s->rng << 13;
	s->rng ^= s->rng >> 17;
	s->rng ^= s->rng << 5;
	return s->rng % 1000 < s->drop_permille;
}

static void push(struct outmsg **head, struct outmsg **tail, struct outmsg *m)
{
	m->next = NULL;
	if (*tail)
		(*tail)->next = m;
	else
		*head = m;
	*tail = m;
}

static void free_msg(struct outmsg *m)
{
	pfkey_cleanse(m->data, m->len);
	free(m);
}

static void raw_send(struct sim *s, struct client *c, const void *buf, size_t len)
{
	int queued;

	if (c->closing)
		return;
	/*
	 * af_key.c: pfkey_broadcast_one drops a message, silently, when the
	 * receive queue already holds more than sk_rcvbuf. The queue is what
	 * the client has not read yet: our end's unsent bytes (SIOCOUTQ counts
	 * truesize, as sk_rmem_alloc does).
	 */
	if (s->opts.rcvbuf && !ioctl(c->fd, SIOCOUTQ, &queued) &&
	    (unsigned)queued > s->opts.rcvbuf) {
		s->stats.dropped++;
		return;
	}
	if (send(c->fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
		s->stats.dropped++;
}

static void delay_cb(uv_timer_t *t);

/*
 * A message lost on purpose, at debug level (simd logs at debug): type, seq,
 * pid and SPI, to match the client's own account of what it missed
 * (tests/reliability/loss.py). buf is a message this simulator encoded.
 */
static void log_drop(const struct client *c, const uint8_t *buf, size_t len)
{
	uint32_t seq, pid, spi = 0;

	if (log_get_level() < LOG_LVL_DEBUG || len < 16)
		return;
	memcpy(&seq, buf + 8, 4);
	memcpy(&pid, buf + 12, 4);
	for (size_t off = 16; off + 8 <= len;) {
		uint16_t elen, etype;

		memcpy(&elen, buf + off, 2);
		memcpy(&etype, buf + off + 2, 2);
		if (!elen || off + elen * 8u > len)
			break;
		if (etype == SADB_EXT_SA) {
			memcpy(&spi, buf + off + 4, 4);
			spi = ntohl(spi);
			break;
		}
		off += elen * 8u;
	}
	log_debug("sim: dropped %s seq %u pid %u spi %#x to client fd %d",
		  pfkey_type_name(buf[1]), seq, pid, spi, c->fd);
}

static void deliver(struct sim *s, struct client *c, const void *buf, size_t len)
{
	struct outmsg *m;

	if (c->closing)
		return;
	if (c->drop_next) {
		c->drop_next--;
		s->stats.dropped++;
		log_drop(c, buf, len);
		return;
	}
	if (drop_roll(s)) {
		s->stats.dropped++;
		log_drop(c, buf, len);
		return;
	}
	if (!s->delay_ms) {
		raw_send(s, c, buf, len);
		return;
	}
	m = malloc(sizeof(*m) + len + sizeof(c));
	if (!m)
		return;
	m->len = len;
	m->due = uv_now(s->loop) + s->delay_ms;
	memcpy(m->data, buf, len);
	memcpy(m->data + len, &c, sizeof(c)); /* the target, after the message */
	push(&s->delayed_head, &s->delayed_tail, m);
	if (!uv_is_active((uv_handle_t *)&s->delay_timer))
		uv_timer_start(&s->delay_timer, delay_cb, s->delay_ms, 0);
}

static bool client_alive(struct sim *s, struct client *target)
{
	for (struct client *c = s->clients; c; c = c->next)
		if (c == target)
			return true;
	return false;
}

static void delay_cb(uv_timer_t *t)
{
	struct sim *s = container_of(t, struct sim, delay_timer);
	uint64_t now = uv_now(s->loop);

	while (s->delayed_head && s->delayed_head->due <= now) {
		struct outmsg *m = s->delayed_head;
		struct client *c;

		s->delayed_head = m->next;
		if (!s->delayed_head)
			s->delayed_tail = NULL;
		memcpy(&c, m->data + m->len, sizeof(c));
		if (client_alive(s, c))
			raw_send(s, c, m->data, m->len);
		free_msg(m);
	}
	if (s->delayed_head)
		uv_timer_start(&s->delay_timer, delay_cb, s->delayed_head->due - now, 0);
}

enum target { ONE, ALL, REGISTERED };

/*
 * af_key.c: pfkey_broadcast(skb, flags, one_sk). Every promiscuous socket
 * gets a copy of every message, whatever its target (so a promiscuous
 * target gets it twice); then ALL or the registered sockets, except one;
 * then one, last. ALL broadcasts have no one_sk (key_notify_sa & co).
 */
static void broadcast(struct sim *s, struct client *one, enum target t, const void *buf,
		      size_t len)
{
	if (t == ALL)
		one = NULL;
	for (struct client *c = s->clients; c; c = c->next) {
		if (c->promisc)
			deliver(s, c, buf, len);
		if (c == one)
			continue;
		if (t == ALL || (t == REGISTERED && c->registered))
			deliver(s, c, buf, len);
	}
	if (one)
		deliver(s, one, buf, len);
}

/* Encode m into the scratch buffer and broadcast it (to req: see broadcast); the buffer is wiped. */
static void emit(struct sim *s, struct client *req, enum target t, struct pfkey_msg *m)
{
	ssize_t len = pfkey_encode(m, s->buf, sizeof(s->buf));

	if (len < 0) {
		log_err("sim: cannot encode %s: %s", pfkey_type_name(m->type), strerror((int)-len));
		return;
	}
	if (t == ONE)
		s->stats.replies++;
	else
		s->stats.broadcasts++;
	broadcast(s, req, t, s->buf, (size_t)len);
	pfkey_cleanse(s->buf, (size_t)len);
}

/* af_key.c: pfkey_error — the request's header echoed with errno, no extensions. */
static void error_reply(struct sim *s, struct client *c, const struct pfkey_msg *req, int err)
{
	struct pfkey_msg m;

	pfkey_msg_init(&m, req->type, req->satype, req->seq, req->pid);
	m.errno_val = (uint8_t)(err >= 512 ? EINVAL : err);
	emit(s, c, ONE, &m);
}

/* af_key.c: pfkey_get_base_msg — the errno send() fails with for this header, or 0. */
static int base_header_error(const uint8_t *buf, size_t len)
{
	struct sadb_msg hdr;

	if (len < sizeof(hdr))
		return EMSGSIZE;
	memcpy(&hdr, buf, sizeof(hdr));
	if (hdr.sadb_msg_version != PF_KEY_V2 || hdr.sadb_msg_reserved ||
	    hdr.sadb_msg_type == SADB_RESERVED || hdr.sadb_msg_type > SADB_MAX)
		return EINVAL;
	if (hdr.sadb_msg_len != len / 8 || hdr.sadb_msg_len < sizeof(hdr) / 8)
		return EMSGSIZE;
	return 0;
}

/*
 * An error reply to a request that does not decode: its header echoed (as far
 * as there is one) with errno set, len 2 and reserved 0, like pfkey_error;
 * copied to promiscuous sockets when Linux would queue it (promisc_copy).
 */
static void raw_error(struct sim *s, struct client *c, const uint8_t *req, size_t len, int err,
		      bool promisc_copy)
{
	struct sadb_msg hdr = { 0 };

	memcpy(&hdr, req, len < sizeof(hdr) ? len : sizeof(hdr));
	hdr.sadb_msg_version = PF_KEY_V2;
	hdr.sadb_msg_errno = (uint8_t)err;
	hdr.sadb_msg_len = sizeof(hdr) / 8;
	hdr.sadb_msg_reserved = 0;
	s->stats.replies++;
	if (promisc_copy)
		broadcast(s, c, ONE, &hdr, sizeof(hdr));
	else
		deliver(s, c, &hdr, sizeof(hdr));
}

/* --- SAs --------------------------------------------------------------------- */

/*
 * af_key.c: __pfkey_xfrm_state2msg adds ADDRESS_PROXY whenever the selector's
 * source differs from the SA's: for an SA added by PF_KEY the selector is the
 * wildcard, 0.0.0.0/0 (or ::/0) proto 255. A larval state's selector is its
 * flow, so it has none.
 */
static void set_proxy(struct pfkey_msg *m, const struct sim_sa *sa)
{
	if (sa->state == ST_LARVAL)
		return;
	memset(&m->proxy, 0, sizeof(m->proxy));
	m->proxy.family = sa->src.family;
	m->proxy.proto = 255;
	m->present |= PFKEY_EXT_BIT(SADB_EXT_ADDRESS_PROXY);
}

static void sa_to_msg(const struct sim_sa *sa, struct pfkey_msg *m, uint8_t type, bool keys,
		      uint32_t seq, uint32_t pid)
{
	pfkey_msg_init(m, type, sa->satype, seq, pid);
	pfkey_set_sa(m, sa->spi, sa->replay, sa->auth, sa->enc);
	m->state = sa->state;
	m->flags = sa->flags;
	pfkey_set_lifetime(m, SADB_EXT_LIFETIME_HARD, &sa->hard);
	pfkey_set_lifetime(m, SADB_EXT_LIFETIME_SOFT, &sa->soft);
	pfkey_set_lifetime(m, SADB_EXT_LIFETIME_CURRENT, &sa->cur);
	pfkey_set_addr(m, SADB_EXT_ADDRESS_SRC, &sa->src);
	pfkey_set_addr(m, SADB_EXT_ADDRESS_DST, &sa->dst);
	set_proxy(m, sa);
	if (keys && sa->state != ST_LARVAL) {
		if (sa->has_auth)
			pfkey_set_key(m, SADB_EXT_KEY_AUTH, sa->key_auth, sa->auth_bits);
		pfkey_set_key(m, SADB_EXT_KEY_ENCRYPT, sa->key_enc, sa->enc_bits);
	}
	pfkey_set_sa2(m, sa->mode, sa->reqid);
}

static struct sim_sa **bucket(struct sim *s, uint8_t satype, const struct pfkey_addr *dst,
			      uint32_t spi)
{
	uint32_t h = 2166136261u;
	const uint8_t *a = dst->addr;

	for (size_t i = 0; i < alen(dst); i++)
		h = (h ^ a[i]) * 16777619u;
	h = (h ^ satype) * 16777619u;
	h ^= spi * 2654435761u;
	h ^= h >> 15;
	return &s->byspi[h % SIM_BYSPI_BUCKETS];
}

static void hash_sa(struct sim *s, struct sim_sa *sa)
{
	struct sim_sa **b = bucket(s, sa->satype, &sa->dst, sa->spi);

	sa->hnext = *b;
	*b = sa;
}

static void unhash_sa(struct sim *s, struct sim_sa *sa)
{
	for (struct sim_sa **p = bucket(s, sa->satype, &sa->dst, sa->spi); *p; p = &(*p)->hnext) {
		if (*p == sa) {
			*p = sa->hnext;
			return;
		}
	}
}

static struct sim_sa *find_sa(struct sim *s, uint8_t satype, const struct pfkey_addr *dst,
			      uint32_t spi)
{
	for (struct sim_sa *sa = *bucket(s, satype, dst, spi); sa; sa = sa->hnext)
		if (sa->satype == satype && sa->spi == spi && addr_eq(&sa->dst, dst) && sa->by_spi)
			return sa;
	return NULL;
}

/* Out of the list and the index, wiped and freed. */
static void unlink_sa(struct sim *s, struct sim_sa *victim)
{
	if (victim->prev)
		victim->prev->next = victim->next;
	else
		s->sas = victim->next;
	if (victim->next)
		victim->next->prev = victim->prev;
	unhash_sa(s, victim);
	s->nsas--;
	pfkey_cleanse(victim, sizeof(*victim));
	free(victim);
}

static void insert_sa(struct sim *s, struct sim_sa *sa)
{
	sa->order = ++s->order;
	sa->prev = NULL;
	sa->next = s->sas;
	if (s->sas)
		s->sas->prev = sa;
	s->sas = sa;
	hash_sa(s, sa);
	s->nsas++;
	if (sa->state == ST_LARVAL)
		s->any_larval = true;
}

static bool ealg_ok(uint8_t id)
{
	static const uint8_t ok[] = { 2, 3, 6, 7, 11, 12, 13, 22, 252, 253 };

	for (size_t i = 0; i < sizeof(ok); i++)
		if (ok[i] == id)
			return true;
	return false;
}

static bool aalg_ok(uint8_t id)
{
	static const uint8_t ok[] = { 0, 2, 3, 5, 6, 7, 8, 9, 251 };

	for (size_t i = 0; i < sizeof(ok); i++)
		if (ok[i] == id)
			return true;
	return false;
}

/* af_key.c: pfkey_msg2xfrm_state. Returns 0 or a positive errno. */
static int msg_to_sa(const struct pfkey_msg *m, struct sim_sa *sa, int64_t now)
{
	const uint32_t need = PFKEY_EXT_BIT(SADB_EXT_SA) | PFKEY_EXT_BIT(SADB_EXT_ADDRESS_SRC) |
			      PFKEY_EXT_BIT(SADB_EXT_ADDRESS_DST);

	memset(sa, 0, sizeof(*sa));
	if ((m->present & need) != need || m->src.family != m->dst.family)
		return EINVAL;
	if (m->satype != SADB_SATYPE_ESP && m->satype != SADB_SATYPE_AH &&
	    m->satype != SADB_X_SATYPE_IPCOMP)
		return EINVAL;
	if (m->satype == SADB_SATYPE_ESP && !(m->present & PFKEY_EXT_BIT(SADB_EXT_KEY_ENCRYPT)))
		return EINVAL;
	/* HARD and SOFT come together or not at all. */
	if (!(m->present & PFKEY_EXT_BIT(SADB_EXT_LIFETIME_HARD)) !=
	    !(m->present & PFKEY_EXT_BIT(SADB_EXT_LIFETIME_SOFT)))
		return EINVAL;
	/* AEAD (GCM, CCM, GMAC) ids are not in ealg_list: xfrm_ealg_get_byid fails. */
	if (m->satype == SADB_SATYPE_ESP && !ealg_ok(m->encrypt))
		return ENOSYS;
	if (!aalg_ok(m->auth))
		return ENOSYS;
	if (m->present & PFKEY_EXT_BIT(SADB_EXT_KEY_ENCRYPT)) {
		if ((m->key_enc.bits + 7u) / 8 > KEY_MAX || (m->encrypt != 11 && !m->key_enc.bits))
			return EINVAL;
		sa->enc_bits = m->key_enc.bits;
		memcpy(sa->key_enc, m->key_enc.data, (sa->enc_bits + 7u) / 8);
	}
	if (m->present & PFKEY_EXT_BIT(SADB_EXT_KEY_AUTH)) {
		if ((m->key_auth.bits + 7u) / 8 > KEY_MAX)
			return EINVAL;
		sa->has_auth = true;
		sa->auth_bits = m->key_auth.bits;
		memcpy(sa->key_auth, m->key_auth.data, (sa->auth_bits + 7u) / 8);
	}
	sa->satype = m->satype;
	sa->spi = m->spi;
	sa->src = m->src;
	sa->dst = m->dst;
	sa->auth = m->auth;
	sa->enc = m->encrypt;
	/* The replay window is capped at 32 (af_key.c: pfkey_msg2xfrm_state). */
	sa->replay = m->replay > 32 ? 32 : m->replay;
	sa->flags = m->flags;
	sa->mode = IPSEC_MODE_TRANSPORT;
	if (m->present & PFKEY_EXT_BIT(SADB_X_EXT_SA2)) {
		if (m->mode > IPSEC_MODE_BEET)
			return EINVAL;
		sa->mode = m->mode ? m->mode : IPSEC_MODE_TRANSPORT;
		sa->reqid = m->reqid;
	}
	if (m->present & PFKEY_EXT_BIT(SADB_EXT_LIFETIME_HARD))
		sa->hard = m->hard;
	if (m->present & PFKEY_EXT_BIT(SADB_EXT_LIFETIME_SOFT))
		sa->soft = m->soft;
	sa->state = ST_MATURE;
	sa->by_spi = true;
	sa->cur.addtime = (uint64_t)now;
	return 0;
}

static struct sim_sa *find_larval(struct sim *s, const struct sim_sa *sa, uint32_t seq)
{
	if (!s->any_larval)
		return NULL;
	for (struct sim_sa *l = s->sas; l; l = l->next) {
		if (l->state != ST_LARVAL || l->satype != sa->satype || !addr_eq(&l->dst, &sa->dst))
			continue;
		/*
		 * xfrm_state_add: by the acquire's seq (__xfrm_find_acq_byseq),
		 * else a larval state without SPI by (mode, reqid, proto, daddr,
		 * saddr) (__find_acq_core).
		 */
		if ((seq && l->acq_seq == seq) ||
		    (!l->by_spi && addr_eq(&l->src, &sa->src) && l->reqid == sa->reqid &&
		     l->mode == sa->mode))
			return l;
	}
	return NULL;
}

static void do_add(struct sim *s, struct client *c, const struct pfkey_msg *m)
{
	struct sim_sa *sa = calloc(1, sizeof(*sa)), *larval;
	struct pfkey_msg out;
	int err;

	if (!sa) {
		error_reply(s, c, m, ENOMEM);
		return;
	}
	err = msg_to_sa(m, sa, now_s(s));
	if (!err && find_sa(s, m->satype, &m->dst, m->spi))
		err = EEXIST;
	if (!err && s->nsas >= s->opts.max_sas)
		err = ENOBUFS;
	if (err) {
		pfkey_cleanse(sa, sizeof(*sa));
		free(sa);
		error_reply(s, c, m, err);
		return;
	}
	/* (A GETSPI'd SPI is owned by its larval state: find_sa gave EEXIST above.) */
	larval = find_larval(s, sa, m->seq);
	if (larval)
		unlink_sa(s, larval);
	insert_sa(s, sa);
	/* af_key.c: key_notify_sa — to every socket, with keys, pid and seq echoed. */
	sa_to_msg(sa, &out, SADB_ADD, true, m->seq, m->pid);
	emit(s, c, ALL, &out);
}

static void do_update(struct sim *s, struct client *c, const struct pfkey_msg *m)
{
	struct sim_sa tmp, *sa = NULL;
	struct pfkey_msg out;
	int err = msg_to_sa(m, &tmp, now_s(s));

	if (!err) {
		/* xfrm_state_update: by (dst, SPI, proto), a GETSPI'd larval state included. */
		sa = find_sa(s, m->satype, &m->dst, m->spi);
		if (!sa)
			err = ESRCH;
	}
	if (err) {
		pfkey_cleanse(&tmp, sizeof(tmp));
		error_reply(s, c, m, err);
		return;
	}
	if (sa->state == ST_LARVAL) {
		uint64_t order = sa->order;

		/* Same (satype, dst, SPI): found by them, so the list and bucket links stay. */
		tmp.next = sa->next;
		tmp.prev = sa->prev;
		tmp.hnext = sa->hnext;
		*sa = tmp;
		sa->order = order;
	} else {
		/* xfrm_state_update on a mature SA: only the lifetimes; keys etc. ignored. */
		sa->hard = tmp.hard;
		sa->soft = tmp.soft;
		if (sa->state == ST_DYING)
			sa->state = ST_MATURE;
		/* The broadcast describes the request, a DEAD temporary (pfkey-linux.md §5.3). */
		tmp.state = ST_DEAD;
	}
	sa_to_msg(sa->state == ST_MATURE && tmp.state == ST_DEAD ? &tmp : sa, &out, SADB_UPDATE,
		  true, m->seq, m->pid);
	emit(s, c, ALL, &out);
	pfkey_cleanse(&tmp, sizeof(tmp));
}

static void do_delete_get(struct sim *s, struct client *c, const struct pfkey_msg *m)
{
	const uint32_t need = PFKEY_EXT_BIT(SADB_EXT_SA) | PFKEY_EXT_BIT(SADB_EXT_ADDRESS_SRC) |
			      PFKEY_EXT_BIT(SADB_EXT_ADDRESS_DST);
	struct sim_sa *sa;
	struct pfkey_msg out;

	if ((m->present & need) != need || m->src.family != m->dst.family) {
		error_reply(s, c, m, EINVAL);
		return;
	}
	/* The lookup uses (dst, spi, proto) only: the source is ignored. */
	sa = find_sa(s, m->satype, &m->dst, m->spi);
	if (!sa) {
		error_reply(s, c, m, ESRCH);
		return;
	}
	sa_to_msg(sa, &out, m->type, true, m->seq, m->pid);
	if (m->type == SADB_GET) {
		emit(s, c, ONE, &out);
		return;
	}
	out.state = ST_DEAD;
	emit(s, c, ALL, &out);
	unlink_sa(s, sa);
}

/*
 * af_key.c: pfkey_getspi. The larval state is the acquire's (found by seq and
 * dst), or one without SPI by (mode, reqid, proto, daddr, saddr), or a new one
 * (xfrm_find_acq, create = 1), which stays even when no SPI can be had. An SPI
 * already given is given again (xfrm_alloc_spi); Linux picks a random free
 * SPI in the range, the simulator the lowest.
 */
static void do_getspi(struct sim *s, struct client *c, const struct pfkey_msg *m)
{
	uint32_t lo = 0x100, hi = 0x0fffffff, spi;
	uint8_t mode = IPSEC_MODE_TRANSPORT;
	uint32_t reqid = 0;
	struct sim_sa *sa = NULL;
	struct pfkey_msg out;

	if (!(m->present & PFKEY_EXT_BIT(SADB_EXT_ADDRESS_SRC)) ||
	    !(m->present & PFKEY_EXT_BIT(SADB_EXT_ADDRESS_DST)) || m->src.family != m->dst.family) {
		error_reply(s, c, m, EINVAL);
		return;
	}
	if (m->present & PFKEY_EXT_BIT(SADB_X_EXT_SA2)) {
		if (m->mode > IPSEC_MODE_BEET) {
			error_reply(s, c, m, EINVAL);
			return;
		}
		mode = m->mode ? m->mode : IPSEC_MODE_TRANSPORT;
		reqid = m->reqid;
	}
	for (struct sim_sa *l = s->sas; l && m->seq; l = l->next)
		if (l->state == ST_LARVAL && l->acq_seq == m->seq && addr_eq(&l->dst, &m->dst)) {
			sa = l;
			break;
		}
	for (struct sim_sa *l = s->sas; l && !sa; l = l->next)
		if (l->state == ST_LARVAL && !l->by_spi && l->satype == m->satype &&
		    l->mode == mode && l->reqid == reqid && addr_eq(&l->dst, &m->dst) &&
		    addr_eq(&l->src, &m->src))
			sa = l;
	if (!sa) {
		if (s->nsas >= s->opts.max_sas) {
			error_reply(s, c, m, ENOBUFS);
			return;
		}
		sa = calloc(1, sizeof(*sa));
		if (!sa) {
			error_reply(s, c, m, ENOMEM);
			return;
		}
		sa->satype = m->satype;
		sa->src = m->src;
		sa->dst = m->dst;
		sa->state = ST_LARVAL;
		sa->mode = mode;
		sa->reqid = reqid;
		sa->hard.addtime = s->opts.acq_expires;
		sa->cur.addtime = (uint64_t)now_s(s);
		insert_sa(s, sa);
	}
	if (m->present & PFKEY_EXT_BIT(SADB_EXT_SPIRANGE)) {
		lo = m->spi_min;
		hi = m->spi_max;
	}
	if (lo > hi) {
		error_reply(s, c, m, EINVAL);
		return;
	}
	if (!sa->by_spi) {
		for (spi = lo; find_sa(s, m->satype, &m->dst, spi) && spi < hi; spi++)
			;
		if (find_sa(s, m->satype, &m->dst, spi)) {
			error_reply(s, c, m, ENOENT);
			return;
		}
		unhash_sa(s, sa);
		sa->spi = spi;
		sa->by_spi = true;
		hash_sa(s, sa);
	}
	sa_to_msg(sa, &out, SADB_GETSPI, false, m->seq, m->pid);
	emit(s, c, ONE, &out);
}

static void do_flush(struct sim *s, struct client *c, const struct pfkey_msg *m)
{
	struct sim_sa *sa = s->sas, *next;
	unsigned flushed = 0;
	struct pfkey_msg out;

	for (; sa; sa = next) {
		next = sa->next;
		if (m->satype == SADB_SATYPE_UNSPEC || sa->satype == m->satype) {
			unlink_sa(s, sa);
			flushed++;
		}
	}
	pfkey_msg_init(&out, SADB_FLUSH, m->satype, m->seq, m->pid);
	/* af_key.c: pfkey_flush — a unicast reply, then (if anything went) the broadcast. */
	emit(s, c, ONE, &out);
	if (flushed)
		emit(s, c, ALL, &out);
}

static void pump_dump(struct client *c);

/* Queue one dump message on c (flow-controlled, never dropped). 0 or -errno. */
static int queue_dump(struct sim *s, struct client *c, const struct pfkey_msg *out)
{
	ssize_t len = pfkey_encode(out, s->buf, sizeof(s->buf));
	struct outmsg *om;

	if (len < 0)
		return (int)len;
	om = malloc(sizeof(*om) + (size_t)len);
	if (om) {
		om->len = (size_t)len;
		memcpy(om->data, s->buf, (size_t)len);
		push(&c->dump_head, &c->dump_tail, om);
	}
	pfkey_cleanse(s->buf, (size_t)len);
	return om ? 0 : -ENOMEM;
}

static void do_dump(struct sim *s, struct client *c, const struct pfkey_msg *m)
{
	unsigned n = 0, i = 0;

	if (c->dump_head) {
		error_reply(s, c, m, EBUSY);
		return;
	}
	for (struct sim_sa *sa = s->sas; sa; sa = sa->next)
		if (m->satype == SADB_SATYPE_UNSPEC || sa->satype == m->satype)
			n++;
	if (!n) {
		error_reply(s, c, m, ENOENT);
		return;
	}
	/* af_key.c: dump_sa — newest first; seq counts up from 1 and the last is 0. */
	for (struct sim_sa *sa = s->sas; sa; sa = sa->next) {
		struct pfkey_msg out;

		if (m->satype != SADB_SATYPE_UNSPEC && sa->satype != m->satype)
			continue;
		i++;
		sa_to_msg(sa, &out, SADB_DUMP, true, i == n ? 0 : i, m->pid);
		if (queue_dump(s, c, &out))
			break;
	}
	pump_dump(c);
}

/* --- SPD ------------------------------------------------------------------------ */

static bool same_selector(const struct sim_pol *p, const struct pfkey_msg *m)
{
	return p->pol.dir == m->policy.dir && addr_eq(&p->src, &m->src) &&
	       addr_eq(&p->dst, &m->dst) && p->src.prefixlen == m->src.prefixlen &&
	       p->dst.prefixlen == m->dst.prefixlen;
}

static void pol_to_msg(const struct sim_pol *p, struct pfkey_msg *m, uint8_t type, uint32_t seq,
		       uint32_t pid)
{
	struct pfkey_lifetime zero = { 0 };

	pfkey_msg_init(m, type, SADB_SATYPE_UNSPEC, seq, pid);
	pfkey_set_addr(m, SADB_EXT_ADDRESS_SRC, &p->src);
	pfkey_set_addr(m, SADB_EXT_ADDRESS_DST, &p->dst);
	pfkey_set_lifetime(m, SADB_EXT_LIFETIME_HARD, &zero);
	pfkey_set_lifetime(m, SADB_EXT_LIFETIME_SOFT, &zero);
	pfkey_set_lifetime(m, SADB_EXT_LIFETIME_CURRENT, &zero);
	m->policy = p->pol;
	m->present |= PFKEY_EXT_BIT(SADB_X_EXT_POLICY);
	/* af_key.c: pfkey_xfrm_policy2msg puts the refcount in sadb_msg_reserved. */
	m->reserved = 1;
}

static void do_spdadd(struct sim *s, struct client *c, const struct pfkey_msg *m)
{
	const uint32_t need = PFKEY_EXT_BIT(SADB_EXT_ADDRESS_SRC) |
			      PFKEY_EXT_BIT(SADB_EXT_ADDRESS_DST) | PFKEY_EXT_BIT(SADB_X_EXT_POLICY);
	struct sim_pol *p, *old = NULL;
	struct pfkey_msg out;

	if ((m->present & need) != need || m->policy.dir < 1 || m->policy.dir > 3 ||
	    m->policy.type > IPSEC_POLICY_IPSEC) {
		error_reply(s, c, m, EINVAL);
		return;
	}
	for (unsigned i = 0; i < m->policy.nreqs; i++)
		if (!m->policy.reqs[i].mode) {
			error_reply(s, c, m, EINVAL);
			return;
		}
	for (p = s->pols; p; p = p->next)
		if (same_selector(p, m))
			old = p;
	if (old && m->type == SADB_X_SPDADD) {
		error_reply(s, c, m, EEXIST);
		return;
	}
	/* Bounded memory: the SPD is capped like the SAD (max_sas). */
	if (!old && s->npols >= s->opts.max_sas) {
		error_reply(s, c, m, ENOBUFS);
		return;
	}
	p = old ? old : calloc(1, sizeof(*p));
	if (!p) {
		error_reply(s, c, m, ENOMEM);
		return;
	}
	p->src = m->src;
	p->dst = m->dst;
	p->pol = m->policy;
	if (!old) {
		/* xfrm_gen_index: steps of 8, the direction in the low bits. */
		s->pol_index += 8;
		p->pol.id = s->pol_index | (uint32_t)(m->policy.dir - 1);
		p->next = s->pols;
		s->pols = p;
		s->npols++;
	} else {
		p->pol.id = old->pol.id;
	}
	pol_to_msg(p, &out, m->type == SADB_X_SPDSETIDX ? SADB_X_SPDADD : m->type, m->seq, m->pid);
	emit(s, c, ALL, &out);
}

static void do_spddelete(struct sim *s, struct client *c, const struct pfkey_msg *m)
{
	struct pfkey_msg out;

	if (!(m->present & PFKEY_EXT_BIT(SADB_X_EXT_POLICY))) {
		error_reply(s, c, m, EINVAL);
		return;
	}
	for (struct sim_pol **pp = &s->pols; *pp; pp = &(*pp)->next) {
		struct sim_pol *p = *pp;
		bool hit = m->type == SADB_X_SPDDELETE ? same_selector(p, m) : p->pol.id == m->policy.id;

		if (!hit)
			continue;
		pol_to_msg(p, &out, m->type, m->seq, m->pid);
		if (m->type == SADB_X_SPDGET) {
			emit(s, c, ONE, &out);
			return;
		}
		*pp = p->next;
		s->npols--;
		free(p);
		emit(s, c, ALL, &out);
		return;
	}
	error_reply(s, c, m, ENOENT);
}

static void do_spddump(struct sim *s, struct client *c, const struct pfkey_msg *m)
{
	unsigned n = s->npols, i = 0;

	/* One dump per socket at a time, SA or SPD (af_key.c: pfkey_spddump). */
	if (c->dump_head) {
		error_reply(s, c, m, EBUSY);
		return;
	}
	if (!n) {
		error_reply(s, c, m, ENOENT);
		return;
	}
	for (struct sim_pol *p = s->pols; p; p = p->next) {
		struct pfkey_msg out;

		i++;
		pol_to_msg(p, &out, SADB_X_SPDDUMP, i == n ? 0 : i, m->pid);
		if (queue_dump(s, c, &out))
			break;
	}
	pump_dump(c);
}

static void do_spdflush(struct sim *s, struct client *c, const struct pfkey_msg *m)
{
	struct pfkey_msg out;
	bool any = s->pols != NULL;

	while (s->pols) {
		struct sim_pol *p = s->pols;

		s->pols = p->next;
		free(p);
	}
	s->npols = 0;
	pfkey_msg_init(&out, SADB_X_SPDFLUSH, SADB_SATYPE_UNSPEC, m->seq, m->pid);
	emit(s, c, ONE, &out);
	if (any)
		emit(s, c, ALL, &out);
}

/* --- REGISTER ------------------------------------------------------------------ */

static void do_register(struct sim *s, struct client *c, const struct pfkey_msg *m)
{
	/* What UML 6.1's af_key lists (pfkey-linux.md §5.2). */
	static const struct pfkey_alg auth[] = {
		{ 251, 0, 0, 0 },     { 2, 0, 128, 128 },   { 3, 0, 160, 160 },
		{ 5, 0, 256, 256 },   { 6, 0, 384, 384 },   { 7, 0, 512, 512 },
		{ 8, 0, 160, 160 },   { 9, 0, 128, 128 },
	};
	static const struct pfkey_alg enc[] = {
		{ 11, 0, 0, 0 },     { 2, 8, 64, 64 },     { 3, 8, 192, 192 },
		{ 6, 8, 40, 128 },   { 7, 8, 40, 448 },    { 12, 8, 128, 256 },
		{ 252, 8, 128, 256 }, { 22, 8, 128, 256 }, { 253, 8, 128, 256 },
		{ 13, 8, 160, 288 },
	};
	unsigned bit;
	struct pfkey_msg out;

	if (m->satype > SADB_SATYPE_MAX) {
		error_reply(s, c, m, EINVAL);
		return;
	}
	if (m->satype != SADB_SATYPE_UNSPEC) {
		bit = 1u << m->satype;
		if (c->registered & bit) {
			error_reply(s, c, m, EEXIST);
			return;
		}
		c->registered |= bit;
	}
	pfkey_msg_init(&out, SADB_REGISTER, m->satype, m->seq, m->pid);
	out.present |= PFKEY_EXT_BIT(SADB_EXT_SUPPORTED_AUTH) |
		       PFKEY_EXT_BIT(SADB_EXT_SUPPORTED_ENCRYPT);
	out.nauth_algs = sizeof(auth) / sizeof(auth[0]);
	memcpy(out.auth_algs, auth, sizeof(auth));
	out.nenc_algs = sizeof(enc) / sizeof(enc[0]);
	memcpy(out.enc_algs, enc, sizeof(enc));
	/*
	 * af_key.c: pfkey_register — to every registered socket and the
	 * requester (one_sk), even an unregistered one (an UNSPEC register).
	 */
	emit(s, c, REGISTERED, &out);
}

/* --- requests ------------------------------------------------------------------- */

static void handle(struct sim *s, struct client *c, const uint8_t *buf, size_t len)
{
	struct pfkey_msg m;
	const char *why = NULL;
	uint8_t type;
	int ret;

	s->stats.requests++;
	/*
	 * af_key.c: pfkey_get_base_msg. Linux fails send() for a bad base
	 * header, before anything else happens; a seqpacket send cannot fail
	 * that way, so the simulator answers the sender alone with an error
	 * message of that errno instead.
	 */
	ret = base_header_error(buf, len);
	if (ret) {
		s->stats.malformed++;
		raw_error(s, c, buf, len, ret, false);
		return;
	}
	/* af_key.c: pfkey_process — a raw copy to every promiscuous socket, the sender's included. */
	for (struct client *p = s->clients; p; p = p->next)
		if (p->promisc)
			deliver(s, p, buf, len);
	/* af_key.c: parse_exthdrs — every extension error is EINVAL, as an error message. */
	ret = pfkey_decode(buf, len, &m, &why);
	if (ret) {
		s->stats.malformed++;
		raw_error(s, c, buf, len, EINVAL, true);
		return;
	}
	type = m.type;
	if (s->fail_count && (!s->fail_type || s->fail_type == type)) {
		int err = s->fail_err;

		s->fail_count--;
		error_reply(s, c, &m, err);
		return;
	}
	switch (type) {
	case SADB_REGISTER:
		do_register(s, c, &m);
		break;
	case SADB_ADD:
		do_add(s, c, &m);
		break;
	case SADB_UPDATE:
		do_update(s, c, &m);
		break;
	case SADB_DELETE:
	case SADB_GET:
		do_delete_get(s, c, &m);
		break;
	case SADB_GETSPI:
		do_getspi(s, c, &m);
		break;
	case SADB_FLUSH:
		do_flush(s, c, &m);
		break;
	case SADB_DUMP:
		do_dump(s, c, &m);
		break;
	case SADB_X_SPDADD:
	case SADB_X_SPDUPDATE:
	case SADB_X_SPDSETIDX:
		do_spdadd(s, c, &m);
		break;
	case SADB_X_SPDDELETE:
	case SADB_X_SPDDELETE2:
	case SADB_X_SPDGET:
		do_spddelete(s, c, &m);
		break;
	case SADB_X_SPDDUMP:
		do_spddump(s, c, &m);
		break;
	case SADB_X_SPDFLUSH:
		do_spdflush(s, c, &m);
		break;
	case SADB_X_PROMISC:
		/*
		 * af_key.c: pfkey_promisc — a bare header (len 2) with satype 0 or 1
		 * switches the mode, errno reset; either way the request itself is
		 * broadcast to all.
		 */
		s->stats.broadcasts++;
		if (len == sizeof(struct sadb_msg)) {
			struct sadb_msg hdr;

			if (m.satype > 1) {
				error_reply(s, c, &m, EINVAL);
				break;
			}
			c->promisc = m.satype != 0;
			memcpy(&hdr, buf, sizeof(hdr));
			hdr.sadb_msg_errno = 0;
			broadcast(s, c, ALL, &hdr, sizeof(hdr));
			break;
		}
		broadcast(s, c, ALL, buf, len);
		break;
	case SADB_ACQUIRE:
		/* A negative acknowledgement gets no reply (af_key.c: pfkey_acquire). */
		break;
	default:
		/* EXPIRE, X_PCHANGE, X_SPDACQUIRE, X_SPDEXPIRE, X_NAT_T_NEW_MAPPING */
		error_reply(s, c, &m, EOPNOTSUPP);
	}
}

/* --- lifetimes ------------------------------------------------------------------- */

static void send_expire(struct sim *s, struct sim_sa *sa, bool hard)
{
	struct pfkey_msg out;

	s->stats.expires++;
	pfkey_msg_init(&out, SADB_EXPIRE, sa->satype, 0, 0);
	pfkey_set_sa(&out, sa->spi, sa->replay, sa->auth, sa->enc);
	out.state = hard ? ST_DEAD : ST_DYING;
	pfkey_set_lifetime(&out, hard ? SADB_EXT_LIFETIME_HARD : SADB_EXT_LIFETIME_SOFT,
			   hard ? &sa->hard : &sa->soft);
	pfkey_set_lifetime(&out, SADB_EXT_LIFETIME_CURRENT, &sa->cur);
	pfkey_set_addr(&out, SADB_EXT_ADDRESS_SRC, &sa->src);
	pfkey_set_addr(&out, SADB_EXT_ADDRESS_DST, &sa->dst);
	set_proxy(&out, sa);
	pfkey_set_sa2(&out, sa->mode, sa->reqid);
	emit(s, NULL, REGISTERED, &out);
}

/*
 * xfrm_timer_handler checks the time limits only; byte and packet limits are
 * checked per packet (check_expire).
 */
static bool reached(const struct pfkey_lifetime *lim, const struct pfkey_lifetime *cur, int64_t now)
{
	return (lim->addtime && now - (int64_t)cur->addtime >= (int64_t)lim->addtime) ||
	       (lim->usetime && cur->usetime &&
		now - (int64_t)cur->usetime >= (int64_t)lim->usetime);
}

static bool count_reached(const struct pfkey_lifetime *lim, const struct pfkey_lifetime *cur)
{
	return (lim->bytes && cur->bytes >= lim->bytes) ||
	       (lim->allocations && cur->allocations >= lim->allocations);
}

/*
 * xfrm_state_check_expire, before a packet is counted on sa, in or out: the
 * first use is stamped; a packet that finds the hard limit reached is dropped
 * with EINVAL and the SA expires at once (hard EXPIRE, no DELETE); one that
 * finds the soft limit reached fires the soft EXPIRE and still goes. Returns
 * 0, or -EINVAL when sa was hard-expired and freed.
 */
static int check_expire(struct sim *s, struct sim_sa *sa, int64_t now)
{
	if (!sa->cur.usetime)
		sa->cur.usetime = (uint64_t)now;
	if (count_reached(&sa->hard, &sa->cur)) {
		send_expire(s, sa, true);
		unlink_sa(s, sa);
		return -EINVAL;
	}
	if (sa->state == ST_MATURE && count_reached(&sa->soft, &sa->cur)) {
		sa->state = ST_DYING;
		send_expire(s, sa, false);
	}
	return 0;
}

/* x->curlft: bytes and one packet, once the packet is through every check. */
static void account(struct sim_sa *sa, uint32_t bytes)
{
	sa->cur.bytes += bytes;
	sa->cur.allocations++;
}

/*
 * xfrm_replay.c: xfrm_replay_check_legacy. Window 0 checks nothing; seq 0 is
 * refused; above the highest seen passes; window or more below it is too old;
 * a set bit was seen. The SA's own counters as the kernel's x->stats.
 */
static int replay_check(struct sim_sa *sa, uint32_t seq)
{
	uint32_t diff;

	if (!sa->replay)
		return 0;
	if (!seq)
		return -EPROTO;
	if (seq > sa->rseq)
		return 0;
	diff = sa->rseq - seq;
	if (diff >= sa->replay) {
		sa->window_errs++;
		return -ERANGE;
	}
	if (sa->bitmap & (1u << diff)) {
		sa->replay_errs++;
		return -EALREADY;
	}
	return 0;
}

/* xfrm_replay.c: xfrm_replay_advance (legacy): after the packet was accepted. */
static void replay_advance(struct sim_sa *sa, uint32_t seq)
{
	uint32_t diff;

	if (!sa->replay)
		return;
	if (seq > sa->rseq) {
		diff = seq - sa->rseq;
		sa->bitmap = diff < sa->replay ? (sa->bitmap << diff) | 1 : 1;
		sa->rseq = seq;
	} else {
		sa->bitmap |= 1u << (sa->rseq - seq);
	}
}

void sim_tick(struct sim *s)
{
	int64_t now = now_s(s);
	struct sim_sa *sa = s->sas, *next;

	for (; sa; sa = next) {
		next = sa->next;
		/* xfrm_timer_handler: hard deletes (EXPIRE to registered only, no DELETE). */
		if (reached(&sa->hard, &sa->cur, now)) {
			send_expire(s, sa, true);
			unlink_sa(s, sa);
			continue;
		}
		if (sa->state == ST_MATURE && reached(&sa->soft, &sa->cur, now)) {
			sa->state = ST_DYING;
			send_expire(s, sa, false);
		}
	}
}

unsigned sim_expire_now(struct sim *s, bool soft, bool hard)
{
	struct sim_sa *sa, *next;
	unsigned sent = 0;

	/* As sim_tick, with every mature SA's limit reached: one EXPIRE each, in one go. */
	if (soft) {
		for (sa = s->sas; sa; sa = sa->next) {
			if (sa->state != ST_MATURE)
				continue;
			sa->state = ST_DYING;
			send_expire(s, sa, false);
			sent++;
		}
	}
	if (hard) {
		for (sa = s->sas; sa; sa = next) {
			next = sa->next;
			if (sa->state == ST_LARVAL)
				continue;
			send_expire(s, sa, true);
			unlink_sa(s, sa);
			sent++;
		}
	}
	return sent;
}

static void tick_cb(uv_timer_t *t)
{
	sim_tick(container_of(t, struct sim, tick));
}

/* --- traffic ------------------------------------------------------------------------- */

static bool any_registered(const struct sim *s)
{
	for (const struct client *c = s->clients; c; c = c->next)
		if (c->registered)
			return true;
	return false;
}

int sim_deliver(struct sim *s, const struct pfkey_addr *dst, uint32_t spi, uint32_t seq,
		uint32_t bytes)
{
	/* xfrm_input: inbound SAs are found by (dst, SPI, proto) alone. */
	struct sim_sa *sa = find_sa(s, SADB_SATYPE_ESP, dst, spi);
	int ret;

	if (!sa) {
		s->stats.in_no_states++;
		return -ESRCH;
	}
	if (sa->state == ST_LARVAL) {
		/* A GETSPI'd larval state is found but not VALID (XFRM_STATE_ACQ). */
		s->stats.in_acquire_errors++;
		return -ESRCH;
	}
	/* xfrm_input: the replay check comes before the lifetime check. */
	ret = replay_check(sa, seq);
	if (ret) {
		s->stats.in_state_seq_errors++;
		return ret;
	}
	ret = check_expire(s, sa, now_s(s));
	if (ret) {
		s->stats.in_state_expired++;
		return ret;
	}
	/* (Decryption cannot fail here; xfrm_replay_recheck then passes as the check did.) */
	replay_advance(sa, seq);
	account(sa, bytes);
	return 0;
}

int sim_sa_replay(struct sim *s, const struct pfkey_addr *dst, uint32_t spi,
		  struct sim_replay *out)
{
	const struct sim_sa *sa = find_sa(s, SADB_SATYPE_ESP, dst, spi);

	if (!sa || sa->state == ST_LARVAL)
		return -ESRCH;
	*out = (struct sim_replay){ .oseq = sa->oseq, .seq = sa->rseq, .bitmap = sa->bitmap,
				    .window = sa->replay, .replay = sa->replay_errs,
				    .replay_window = sa->window_errs, .bytes = sa->cur.bytes,
				    .packets = sa->cur.allocations };
	return 0;
}

int sim_sa_set_replay(struct sim *s, const struct pfkey_addr *dst, uint32_t spi, uint32_t oseq,
		      uint32_t seq, uint32_t bitmap)
{
	struct sim_sa *sa = find_sa(s, SADB_SATYPE_ESP, dst, spi);

	if (!sa || sa->state == ST_LARVAL)
		return -ESRCH;
	sa->oseq = oseq;
	sa->rseq = seq;
	sa->bitmap = bitmap;
	return 0;
}

int64_t sim_traffic(struct sim *s, const struct pfkey_addr *src, const struct pfkey_addr *dst,
		    uint32_t bytes, uint32_t *seq)
{
	struct sim_pol *best = NULL;
	struct sim_sa *use = NULL;
	const struct pfkey_addr *tsrc = src, *tdst = dst;
	uint8_t mode = IPSEC_MODE_TRANSPORT;
	int64_t now = now_s(s);
	struct pfkey_msg out;

	if (seq)
		*seq = 0;
	for (struct sim_pol *p = s->pols; p; p = p->next)
		if (p->pol.dir == IPSEC_DIR_OUTBOUND && prefix_match(&p->src, src) &&
		    prefix_match(&p->dst, dst) && (!best || p->pol.priority < best->pol.priority))
			best = p;
	if (!best || best->pol.type == IPSEC_POLICY_NONE || !best->pol.nreqs)
		return 0;
	if (best->pol.type == IPSEC_POLICY_DISCARD)
		return -EPERM;
	if (best->pol.reqs[0].mode == IPSEC_MODE_TUNNEL && best->pol.reqs[0].has_endpoints) {
		tsrc = &best->pol.reqs[0].tun_src;
		tdst = &best->pol.reqs[0].tun_dst;
		mode = IPSEC_MODE_TUNNEL;
	}
	/* xfrm_state_look_at: non-dying beats dying, then the newest add time, then latest inserted. */
	for (struct sim_sa *sa = s->sas; sa; sa = sa->next) {
		if (sa->state == ST_LARVAL || sa->mode != mode || sa->reqid != 0 ||
		    !addr_eq(&sa->dst, tdst) || !addr_eq(&sa->src, tsrc))
			continue;
		if (!use || (use->state == ST_DYING && sa->state != ST_DYING) ||
		    ((use->state == ST_DYING) == (sa->state == ST_DYING) &&
		     (sa->cur.addtime > use->cur.addtime ||
		      (sa->cur.addtime == use->cur.addtime && sa->order > use->order))))
			use = sa;
	}
	if (use) {
		uint32_t spi = use->spi;

		/* xfrm_output_one: the lifetime check, then the sequence number, then the count. */
		if (check_expire(s, use, now)) {
			s->stats.out_state_expired++;
			return -EINVAL;
		}
		/* xfrm_replay_overflow (legacy): the counter never wraps; the SA stays. */
		if (++use->oseq == 0) {
			use->oseq--;
			s->stats.out_state_seq_errors++;
			return -EOVERFLOW;
		}
		account(use, bytes);
		if (seq)
			*seq = use->oseq;
		return (int64_t)spi;
	}
	for (struct sim_sa *sa = s->sas; sa; sa = sa->next)
		if (sa->state == ST_LARVAL && addr_eq(&sa->dst, tdst) && addr_eq(&sa->src, tsrc))
			return -EAGAIN; /* an acquire is in progress */
	/*
	 * xfrm_state_find: no key manager alive (no registered socket), no
	 * ACQUIRE and no larval state; the packet is dropped (larval_drop).
	 */
	if (!any_registered(s))
		return -EAGAIN;
	use = calloc(1, sizeof(*use));
	if (!use)
		return -ENOMEM;
	use->satype = SADB_SATYPE_ESP;
	use->src = *tsrc;
	use->dst = *tdst;
	use->state = ST_LARVAL;
	use->mode = mode;
	use->acq_seq = ++s->acq_seq;
	use->hard.addtime = s->opts.acq_expires;
	use->cur.addtime = (uint64_t)now;
	insert_sa(s, use);
	s->stats.acquires++;
	/* af_key.c: pfkey_send_acquire — registered sockets; pid 0, seq the acquire counter. */
	pfkey_msg_init(&out, SADB_ACQUIRE, SADB_SATYPE_ESP, use->acq_seq, 0);
	pfkey_set_addr(&out, SADB_EXT_ADDRESS_SRC, tsrc);
	pfkey_set_addr(&out, SADB_EXT_ADDRESS_DST, tdst);
	pfkey_set_policy(&out, IPSEC_POLICY_IPSEC, IPSEC_DIR_OUTBOUND, best->pol.priority);
	out.policy.id = best->pol.id;
	out.present |= PFKEY_EXT_BIT(SADB_EXT_PROPOSAL);
	out.prop_replay = 32;
	emit(s, NULL, REGISTERED, &out);
	return -EAGAIN;
}

/* --- clients --------------------------------------------------------------------------- */

static void client_close_cb(uv_handle_t *h)
{
	struct client *c = h->data;
	struct sim *s = c->s;

	close(c->fd);
	while (c->dump_head) {
		struct outmsg *m = c->dump_head;

		c->dump_head = m->next;
		free_msg(m);
	}
	free(c);
	if (--s->handles == 0 && s->closing)
		free(s);
}

static void client_close(struct client *c)
{
	struct sim *s = c->s;

	if (c->closing)
		return;
	c->closing = true;
	for (struct client **p = &s->clients; *p; p = &(*p)->next)
		if (*p == c) {
			*p = c->next;
			break;
		}
	uv_close((uv_handle_t *)&c->poll, client_close_cb);
}

static void client_poll_cb(uv_poll_t *h, int status, int events);

/* Dumps are flow-controlled and never lose data (af_key.c: pfkey_do_dump). */
static void pump_dump(struct client *c)
{
	while (c->dump_head) {
		struct outmsg *m = c->dump_head;

		if (send(c->fd, m->data, m->len, MSG_DONTWAIT | MSG_NOSIGNAL) < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS) {
				uv_poll_start(&c->poll, UV_READABLE | UV_WRITABLE, client_poll_cb);
				return;
			}
			c->s->stats.dropped++;
		} else {
			/* pfkey_do_dump goes through pfkey_broadcast: promiscuous sockets get a copy. */
			for (struct client *p = c->s->clients; p; p = p->next)
				if (p->promisc)
					deliver(c->s, p, m->data, m->len);
		}
		c->dump_head = m->next;
		if (!c->dump_head)
			c->dump_tail = NULL;
		free_msg(m);
	}
	if (!c->closing)
		uv_poll_start(&c->poll, UV_READABLE, client_poll_cb);
}

static void client_poll_cb(uv_poll_t *h, int status, int events)
{
	struct client *c = h->data;
	struct sim *s = c->s;

	if (status < 0) {
		client_close(c);
		return;
	}
	if (events & UV_WRITABLE)
		pump_dump(c);
	if (!(events & UV_READABLE))
		return;
	for (int budget = 256; budget > 0 && !c->closing; budget--) {
		ssize_t n = recv(c->fd, s->buf, sizeof(s->buf), MSG_DONTWAIT);

		if (n == 0) {
			client_close(c);
			return;
		}
		if (n < 0)
			return;
		{
			/* Requests carry keys: work on a copy, wipe both. */
			uint8_t *req = malloc((size_t)n);

			if (!req)
				return;
			memcpy(req, s->buf, (size_t)n);
			pfkey_cleanse(s->buf, (size_t)n);
			handle(s, c, req, (size_t)n);
			pfkey_cleanse(req, (size_t)n);
			free(req);
		}
	}
}

static int add_client(struct sim *s, int fd)
{
	struct client *c = calloc(1, sizeof(*c));
	int size = SNDBUF;

	if (!c)
		return -ENOMEM;
	if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof(size)))
		setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
	c->s = s;
	c->fd = fd;
	c->peer_fd = -1;
	if (uv_poll_init(s->loop, &c->poll, fd)) {
		free(c);
		return -EIO;
	}
	c->poll.data = c;
	s->handles++;
	c->next = s->clients;
	s->clients = c;
	uv_poll_start(&c->poll, UV_READABLE, client_poll_cb);
	return 0;
}

int sim_connect(struct sim *s, int *fd)
{
	int sv[2], ret;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv))
		return -errno;
	ret = add_client(s, sv[1]);
	if (ret) {
		close(sv[0]);
		close(sv[1]);
		return ret;
	}
	s->clients->peer_fd = sv[0];
	*fd = sv[0];
	return 0;
}

static void listen_cb(uv_poll_t *h, int status, int events)
{
	struct sim *s = h->data;
	int fd = accept4(s->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

	if (fd < 0)
		return;
	if (add_client(s, fd))
		close(fd);
}

int sim_listen(struct sim *s, const char *path)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd, ret;
	mode_t old;

	if (s->listen_fd >= 0)
		return -EBUSY;
	if (strlen(path) >= sizeof(sun.sun_path))
		return -ENAMETOOLONG;
	strcpy(sun.sun_path, path);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	unlink(path);
	old = umask(077);
	ret = bind(fd, (struct sockaddr *)&sun, sizeof(sun));
	umask(old);
	if (ret || listen(fd, 16)) {
		ret = -errno;
		close(fd);
		return ret;
	}
	s->listen_fd = fd;
	snprintf(s->listen_path, sizeof(s->listen_path), "%s", path);
	uv_poll_init(s->loop, &s->listen_poll, fd);
	s->listen_poll.data = s;
	s->handles++;
	uv_poll_start(&s->listen_poll, UV_READABLE, listen_cb);
	return 0;
}

/* --- life ----------------------------------------------------------------------------- */

int sim_new(uv_loop_t *loop, const struct sim_opts *opts, struct sim **out)
{
	struct sim *s = calloc(1, sizeof(*s));

	if (!s)
		return -ENOMEM;
	s->loop = loop;
	if (opts)
		s->opts = *opts;
	if (!s->opts.acq_expires)
		s->opts.acq_expires = DEFAULT_ACQ_EXPIRES;
	if (!s->opts.tick_ms)
		s->opts.tick_ms = 1000;
	if (!s->opts.max_sas)
		s->opts.max_sas = 1000000;
	s->listen_fd = -1;
	s->rng = 0x9e3779b9u;
	uv_timer_init(loop, &s->tick);
	uv_timer_init(loop, &s->delay_timer);
	s->handles = 2;
	uv_timer_start(&s->tick, tick_cb, s->opts.tick_ms, s->opts.tick_ms);
	*out = s;
	return 0;
}

static void sim_handle_closed(uv_handle_t *h)
{
	struct sim *s = h->data;

	if (--s->handles == 0)
		free(s);
}

void sim_close(struct sim *s)
{
	if (!s || s->closing)
		return;
	s->closing = true;
	while (s->clients)
		client_close(s->clients);
	while (s->sas)
		unlink_sa(s, s->sas);
	while (s->pols) {
		struct sim_pol *p = s->pols;

		s->pols = p->next;
		free(p);
	}
	while (s->delayed_head) {
		struct outmsg *m = s->delayed_head;

		s->delayed_head = m->next;
		free_msg(m);
	}
	s->tick.data = s->delay_timer.data = s;
	uv_close((uv_handle_t *)&s->tick, sim_handle_closed);
	uv_close((uv_handle_t *)&s->delay_timer, sim_handle_closed);
	if (s->listen_fd >= 0) {
		uv_close((uv_handle_t *)&s->listen_poll, sim_handle_closed);
		close(s->listen_fd);
		unlink(s->listen_path);
	}
}

unsigned sim_sa_count(const struct sim *s)
{
	return s->nsas;
}

unsigned sim_policy_count(const struct sim *s)
{
	return s->npols;
}

static struct client *client_by_fd(struct sim *s, int fd)
{
	for (struct client *c = s->clients; c; c = c->next)
		if (c->peer_fd == fd)
			return c;
	return NULL;
}

void sim_drop_next(struct sim *s, int fd, unsigned n)
{
	for (struct client *c = s->clients; c; c = c->next)
		if (fd < 0 || c->peer_fd == fd)
			c->drop_next = n;
}

void sim_drop_rate(struct sim *s, unsigned permille, uint32_t seed)
{
	s->drop_permille = permille > 1000 ? 1000 : permille;
	s->rng = seed ? seed : 0x9e3779b9u;
}

void sim_fail_next(struct sim *s, uint8_t type, int err)
{
	sim_fail_count(s, type, err, 1);
}

void sim_fail_count(struct sim *s, uint8_t type, int err, unsigned count)
{
	s->fail_type = type;
	s->fail_err = err;
	s->fail_count = err ? count : 0;
}

void sim_delay(struct sim *s, unsigned ms)
{
	s->delay_ms = ms;
}

void sim_inject(struct sim *s, int fd, const void *buf, size_t len)
{
	struct client *target = fd < 0 ? NULL : client_by_fd(s, fd);

	for (struct client *c = s->clients; c; c = c->next)
		if (!target || c == target)
			raw_send(s, c, buf, len);
}

void sim_get_stats(const struct sim *s, struct sim_stats *st)
{
	*st = s->stats;
}
