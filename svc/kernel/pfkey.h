/* SPDX-License-Identifier: ISC */
/* PF_KEYv2 (RFC 2367, Linux af_key dialect) codec: pure encode/decode, no I/O. */
#ifndef SAKEYD_PFKEY_H
#define SAKEYD_PFKEY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <linux/pfkeyv2.h>
#include <linux/ipsec.h>

/* Largest message we ever build or accept: the u16 length field caps it. */
#define PFKEY_MSG_MAX (65535u * 8u)
/* Linux XFRM_MAX_DEPTH: at most this many ipsecrequests per policy. */
#define PFKEY_MAX_REQS 6
/* SUPPORTED_AUTH/ENCRYPT entries kept; more are counted but not stored. */
#define PFKEY_MAX_ALGS 32
/* PROPOSAL combinations kept; more are counted but not stored. */
#define PFKEY_MAX_COMBS 16

/* Bit for extension type t in pfkey_msg.present. */
#define PFKEY_EXT_BIT(t) (1u << (t))

/*
 * An address extension (ADDRESS_SRC/DST/PROXY, NAT-T OA) or a tunnel endpoint
 * in an ipsecrequest. family is AF_INET or AF_INET6; addr holds 4 or 16 bytes
 * in network order; port is in host order.
 */
struct pfkey_addr {
	uint8_t family;
	uint8_t prefixlen;
	uint8_t proto; /* sadb_address_proto; 255 = any (IPSEC_PROTO_ANY) */
	uint16_t port;
	uint8_t addr[16];
};

struct pfkey_lifetime {
	uint32_t allocations;
	uint64_t bytes;
	uint64_t addtime;
	uint64_t usetime;
};

/*
 * A key extension. When decoded, data points into the decoded buffer (which
 * the caller must cleanse); when encoding, data points to caller memory.
 */
struct pfkey_key {
	uint16_t bits;
	const uint8_t *data;
};

struct pfkey_ipsecreq {
	uint16_t proto; /* IPPROTO_ESP, IPPROTO_AH, IPPROTO_COMP, ... */
	uint8_t mode;   /* IPSEC_MODE_TRANSPORT / TUNNEL / BEET */
	uint8_t level;  /* IPSEC_LEVEL_* */
	uint32_t reqid;
	/* tunnel mode only (has_endpoints): outer source and destination */
	bool has_endpoints;
	struct pfkey_addr tun_src;
	struct pfkey_addr tun_dst;
};

struct pfkey_policy {
	uint16_t type; /* IPSEC_POLICY_DISCARD / NONE / IPSEC */
	uint8_t dir;   /* IPSEC_DIR_INBOUND / OUTBOUND / FWD */
	uint8_t flags;
	uint32_t id;
	uint32_t priority;
	unsigned nreqs;
	struct pfkey_ipsecreq reqs[PFKEY_MAX_REQS];
};

struct pfkey_alg {
	uint8_t id;
	uint8_t ivlen;
	uint16_t minbits;
	uint16_t maxbits;
};

struct pfkey_comb {
	uint8_t auth;
	uint8_t encrypt;
	uint32_t flags;
	uint16_t auth_minbits, auth_maxbits;
	uint16_t encrypt_minbits, encrypt_maxbits;
	uint64_t soft_addtime, hard_addtime;
	uint64_t soft_usetime, hard_usetime;
	uint64_t soft_bytes, hard_bytes;
	uint32_t soft_allocations, hard_allocations;
};

/*
 * Replay state of an SA (XFRM only). bmp is the ring of the kernel's BMP and
 * ESN modes (xfrm_replay.c: xfrm_replay_advance_bmp): sequence number
 * seq - d (0 <= d < window) is bit (pos - d) mod window, pos = (seq - 1) mod
 * window, of the words bmp[0..bmp_len). A legacy SA's bitmap (XFRMA_REPLAY_VAL,
 * bit d for seq - d) is converted to this ring on decode and back on encode.
 */
#define KERN_REPLAY_BMP_MAX 128 /* XFRMA_REPLAY_ESN_MAX / 32 words */
struct kern_replay {
	uint32_t window; /* bits */
	uint32_t seq, seq_hi, oseq, oseq_hi;
	uint32_t bmp_len; /* words used in bmp */
	uint32_t bmp[KERN_REPLAY_BMP_MAX];
};

/* pfkey_msg.x_aevents */
enum {
	KERN_AEV_QUIET = 0,
	KERN_AEV_FIRST = 1,
};

/*
 * One PF_KEY message, decoded or to be encoded. Each extension is meaningful
 * only when its bit (PFKEY_EXT_BIT(SADB_EXT_*)) is set in present. All integer
 * fields are in host byte order (the SPI too; the codec converts).
 */
struct pfkey_msg {
	/* base header */
	uint8_t type;
	uint8_t errno_val;
	uint8_t satype;
	uint16_t reserved; /* the kernel puts a policy refcount here */
	uint32_t seq;
	uint32_t pid;

	uint32_t present;

	/* SADB_EXT_SA */
	uint32_t spi;
	uint8_t replay;
	uint8_t state;
	uint8_t auth;
	uint8_t encrypt;
	uint32_t flags;

	struct pfkey_lifetime current; /* SADB_EXT_LIFETIME_CURRENT */
	struct pfkey_lifetime hard;    /* SADB_EXT_LIFETIME_HARD */
	struct pfkey_lifetime soft;    /* SADB_EXT_LIFETIME_SOFT */

	struct pfkey_addr src;   /* SADB_EXT_ADDRESS_SRC */
	struct pfkey_addr dst;   /* SADB_EXT_ADDRESS_DST */
	struct pfkey_addr proxy; /* SADB_EXT_ADDRESS_PROXY */

	struct pfkey_key key_auth; /* SADB_EXT_KEY_AUTH */
	struct pfkey_key key_enc;  /* SADB_EXT_KEY_ENCRYPT */

	/* SADB_EXT_PROPOSAL */
	uint8_t prop_replay;
	unsigned ncombs; /* total in the message; at most PFKEY_MAX_COMBS stored */
	struct pfkey_comb combs[PFKEY_MAX_COMBS];

	/* SADB_EXT_SUPPORTED_AUTH / SADB_EXT_SUPPORTED_ENCRYPT */
	unsigned nauth_algs, nenc_algs; /* totals; at most PFKEY_MAX_ALGS stored */
	struct pfkey_alg auth_algs[PFKEY_MAX_ALGS];
	struct pfkey_alg enc_algs[PFKEY_MAX_ALGS];

	/* SADB_EXT_SPIRANGE (host order; the kernel applies htonl itself) */
	uint32_t spi_min, spi_max;

	/* SADB_X_EXT_POLICY */
	struct pfkey_policy policy;

	/* SADB_X_EXT_SA2 */
	uint8_t mode;
	uint32_t sa2_sequence;
	uint32_t reqid;

	/* SADB_X_EXT_NAT_T_TYPE / _SPORT / _DPORT / _OA */
	uint8_t natt_type;
	uint16_t natt_sport, natt_dport; /* host order */
	struct pfkey_addr natt_oa;

	/*
	 * XFRM netlink only (svc/kernel/xfrm.c): PF_KEY has no field for these, so
	 * pfkey_encode ignores them and pfkey_decode leaves them zero.
	 */
	uint16_t x_icv_bits;      /* integrity/AEAD ICV bits; 0 = the algorithm's RFC length */
	uint32_t x_replay_window; /* packets; 0 = use replay (the SA extension's u8) */
	bool x_esn;               /* extended sequence numbers (RFC 4303) */
	/*
	 * Replay state: decoded from every SA the kernel reports (dumps, GET,
	 * NEWSA/UPDSA events); on ADD/UPDATE, x_has_replay installs the SA with
	 * it instead of an empty window (svc/kernel/xfrm.c: put_replay).
	 */
	bool x_has_replay;
	struct kern_replay x_replay;
	/*
	 * ADD/UPDATE: the SA's replay/aevent notifications (XFRM_MSG_NEWAE,
	 * svc/kernel/aevents.h). KERN_AEV_QUIET (0): never notifies;
	 * KERN_AEV_FIRST: every packet that moves its sequence number notifies
	 * at once, the first one included, until kern_aevents_quiet.
	 */
	uint8_t x_aevents;
};

/*
 * Decode buf[0..len) into *m. The input is hostile: every length, the 8-byte
 * alignment, duplicate extensions and per-type minimum sizes are checked;
 * unknown extension types (> SADB_EXT_MAX) are skipped as Linux does.
 * Key pointers in *m point into buf. Returns 0 (*why = NULL), or -EINVAL /
 * -EMSGSIZE with *why (if non-NULL) set to a static string naming the rejected
 * rule and *m zeroed.
 */
int pfkey_decode(const void *buf, size_t len, struct pfkey_msg *m, const char **why);

/*
 * Encode *m (the base header and every extension whose bit is set in
 * m->present, in type order) into buf of capacity cap. Returns the message
 * length in bytes, or -EMSGSIZE if it does not fit, -EINVAL for a field that
 * cannot be represented (a present bit outside PFKEY_EXT_CODED, an unknown
 * family, a count above what pfkey_msg stores, a tunnel request without
 * endpoints). The caller must cleanse buf if m carried keys.
 */
ssize_t pfkey_encode(const struct pfkey_msg *m, void *buf, size_t cap);

/*
 * Initialise *m as an empty message of the given type (version 2, len set on
 * encode). The combs, auth_algs and enc_algs arrays are not cleared: their
 * counts are, and nothing reads an array past its count.
 */
void pfkey_msg_init(struct pfkey_msg *m, uint8_t type, uint8_t satype, uint32_t seq,
		    uint32_t pid);

/*
 * Fill an address from an AF_INET/AF_INET6 literal with an optional "/prefix"
 * (inet_pton only, never a resolver); full prefix if none, proto any, port 0.
 * 0 or -EINVAL (then *a is unchanged).
 */
int pfkey_addr_from_string(struct pfkey_addr *a, const char *text);

/* Format an address (without prefix) into buf; returns buf. */
const char *pfkey_addr_to_string(const struct pfkey_addr *a, char *buf, size_t len);

/* IP protocol of a PF_KEY satype (ESP 50, AH 51, IPCOMP 108), 0 if none. */
uint8_t pfkey_satype_proto(uint8_t satype);

/* Name of a message type ("ADD", "X_SPDDUMP", ...), or "UNKNOWN". */
const char *pfkey_type_name(uint8_t type);

/* Length of the sockaddr an address extension carries for family, 0 if unsupported. */
size_t pfkey_sockaddr_len(uint8_t family);

/*
 * Extensions the codec decodes into struct pfkey_msg and can encode again.
 * Other known types (identity, sensitivity, KMPRIVATE, sec ctx, KMADDRESS,
 * filter) are length-checked, skipped and marked in present by the decoder;
 * pfkey_encode refuses them with -EINVAL.
 */
#define PFKEY_EXT_CODED                                                                       \
	(PFKEY_EXT_BIT(SADB_EXT_SA) | PFKEY_EXT_BIT(SADB_EXT_LIFETIME_CURRENT) |                \
	 PFKEY_EXT_BIT(SADB_EXT_LIFETIME_HARD) | PFKEY_EXT_BIT(SADB_EXT_LIFETIME_SOFT) |        \
	 PFKEY_EXT_BIT(SADB_EXT_ADDRESS_SRC) | PFKEY_EXT_BIT(SADB_EXT_ADDRESS_DST) |            \
	 PFKEY_EXT_BIT(SADB_EXT_ADDRESS_PROXY) | PFKEY_EXT_BIT(SADB_EXT_KEY_AUTH) |             \
	 PFKEY_EXT_BIT(SADB_EXT_KEY_ENCRYPT) | PFKEY_EXT_BIT(SADB_EXT_PROPOSAL) |               \
	 PFKEY_EXT_BIT(SADB_EXT_SUPPORTED_AUTH) | PFKEY_EXT_BIT(SADB_EXT_SUPPORTED_ENCRYPT) |   \
	 PFKEY_EXT_BIT(SADB_EXT_SPIRANGE) | PFKEY_EXT_BIT(SADB_X_EXT_POLICY) |                  \
	 PFKEY_EXT_BIT(SADB_X_EXT_SA2) | PFKEY_EXT_BIT(SADB_X_EXT_NAT_T_TYPE) |                 \
	 PFKEY_EXT_BIT(SADB_X_EXT_NAT_T_SPORT) | PFKEY_EXT_BIT(SADB_X_EXT_NAT_T_DPORT) |        \
	 PFKEY_EXT_BIT(SADB_X_EXT_NAT_T_OA))

/*
 * True if a and b carry the same header and the same present extensions with
 * the same contents, as far as the wire format can express them: key bytes are
 * compared by value, address bytes beyond the family's length, the fields of
 * absent extensions and the prefix/proto of tunnel endpoints are ignored.
 */
bool pfkey_msg_equal(const struct pfkey_msg *a, const struct pfkey_msg *b);

/* Wipe len bytes at buf in a way the compiler cannot elide (explicit_bzero). */
void pfkey_cleanse(void *buf, size_t len);

/*
 * Constructors for messages the daemon builds. Each sets the extension's
 * fields and its present bit; pointers are borrowed until pfkey_encode.
 */

/* SADB_EXT_SA: spi in host order, state MATURE, no flags. */
void pfkey_set_sa(struct pfkey_msg *m, uint32_t spi, uint8_t replay, uint8_t auth, uint8_t enc);

/* ext is ADDRESS_SRC, ADDRESS_DST, ADDRESS_PROXY or X_NAT_T_OA. 0 or -EINVAL. */
int pfkey_set_addr(struct pfkey_msg *m, uint16_t ext, const struct pfkey_addr *a);

/* ext is KEY_AUTH or KEY_ENCRYPT; data holds ceil(bits/8) bytes, borrowed. 0 or -EINVAL. */
int pfkey_set_key(struct pfkey_msg *m, uint16_t ext, const uint8_t *data, uint16_t bits);

/* ext is LIFETIME_CURRENT, LIFETIME_HARD or LIFETIME_SOFT. 0 or -EINVAL. */
int pfkey_set_lifetime(struct pfkey_msg *m, uint16_t ext, const struct pfkey_lifetime *lt);

/* SADB_X_EXT_SA2: mode is IPSEC_MODE_*, sequence 0. */
void pfkey_set_sa2(struct pfkey_msg *m, uint8_t mode, uint32_t reqid);

/* SADB_EXT_SPIRANGE, host order. */
void pfkey_set_spirange(struct pfkey_msg *m, uint32_t min, uint32_t max);

/* SADB_X_EXT_POLICY with no ipsecrequest yet; id 0 (the kernel assigns it). */
void pfkey_set_policy(struct pfkey_msg *m, uint16_t type, uint8_t dir, uint32_t priority);

/*
 * Append a copy of *req to the policy set by pfkey_set_policy. Tunnel mode
 * needs has_endpoints with both endpoints of one family. 0, or -ENOSPC past
 * PFKEY_MAX_REQS requests.
 */
int pfkey_policy_add_req(struct pfkey_msg *m, const struct pfkey_ipsecreq *req);

/* SADB_X_EXT_NAT_T_TYPE, _SPORT and _DPORT (ports in host order). */
void pfkey_set_natt(struct pfkey_msg *m, uint8_t type, uint16_t sport, uint16_t dport);

#endif
