/* SPDX-License-Identifier: ISC */
/* Key schedule v2 (DESIGN.md): HKDF-SHA256 derivation of phases, SPIs, keys and fingerprints. */
#ifndef SAKEYD_ROTATE_KEYSCHED_H
#define SAKEYD_ROTATE_KEYSCHED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conf/conf.h"
#include "rotate/sa.h"

/* HKDF salt: the 9 ASCII bytes "sakeyd-v2", no terminator. */
#define ROT_HKDF_SALT "sakeyd-v2"
#define ROT_HKDF_SALT_LEN 9
/*
 * Generations of an epoch's SA (DESIGN.md "Key schedule v2"): 0-7 the normal
 * series, 15 down to 8 the series of a sender that lost its records.
 */
#define ROT_GEN_MAX 15
/* Largest keymat_len of DESIGN.md's table (aes-cbc-256-hmac-sha512); a safe buffer size. */
#define ROT_KEYMAT_MAX 96
/*
 * Bounds that keep epoch arithmetic in int64_t: periods up to 2^40 s and
 * times within +-2^62 s. conf/ rejects larger rotate_every values.
 */
#define ROT_PERIOD_MAX (UINT64_C(1) << 40)
#define ROT_TIME_MAX (INT64_C(1) << 62)

/*
 * Secure buffer for key bytes: OpenSSL secure heap when initialised
 * (CRYPTO_secure_malloc_init), zeroed. Returns NULL on failure.
 * rot_secret_free wipes len bytes and frees; rot_secret_free(NULL, n) is a no-op.
 */
void *rot_secret_alloc(size_t len);
void rot_secret_free(void *p, size_t len);

/*
 * HKDF-SHA256 (RFC 5869) with salt ROT_HKDF_SALT and ikm = the 32-byte secret:
 * writes out_len bytes of HKDF(info, out_len) to out. Intermediate state is
 * wiped. Returns 0, -EINVAL (bad length), -ENOMEM or -EIO (OpenSSL failure).
 */
int rot_hkdf(const uint8_t secret[CONF_SECRET_LEN], const uint8_t *info, size_t info_len,
	     uint8_t *out, size_t out_len);

/* Auto phase: first 8 bytes of HKDF("sakeyd-v2 phase", 8), big-endian, mod period. 0 or -errno. */
int rot_auto_phase(const uint8_t secret[CONF_SECRET_LEN], uint64_t period, uint64_t *phase);

/*
 * Auto SPI prefix: first 4 bytes of HKDF("sakeyd-v2 spi", 4), big-endian,
 * masked to 24 bits, 0 becomes 1. 0 or -errno.
 */
int rot_auto_spi_prefix(const uint8_t secret[CONF_SECRET_LEN], uint32_t *spi_prefix);

/*
 * Fill link->phase and link->spi_prefix where the config says auto (the auto
 * flags stay set, so this may be called again after a secret change). Needs
 * link->secret when either is auto. 0, -EINVAL (no secret, bad period) or -errno.
 */
int rot_resolve_link(struct conf_link *link);

/*
 * Resolve every link (rot_resolve_link) and check that spi_prefix values are
 * unique among them (DESIGN.md: a collision is a configuration error naming
 * both links). Returns 0; -EEXIST with *first < *second set to the indexes
 * of two colliding links; or the error of rot_resolve_link with *first set
 * to the failing link's index. O(n log n).
 */
int rot_resolve_links(struct conf_link *links, size_t n, size_t *first, size_t *second);

/* Bytes of the plan digest, and its text: 4 groups of 4 hex digits joined by '-', NUL. */
#define ROT_DIGEST_LEN 8
#define ROT_DIGEST_STRLEN 20

/*
 * The link digest of sakeyd --check --plan: what both hosts of a link must
 * agree on, hashed so that two operators compare one short word. The first
 * ROT_DIGEST_LEN bytes of SHA-256 over (doc/sakeyd.8.scd, PLAN DIGEST):
 *   "sakeyd-v2 plan digest" 0x00 || algorithm name 0x00 || mode (1 byte) ||
 *   esn (1 byte, 0 or 1) || rotate_every, phase (8 bytes each, big-endian) ||
 *   spi_prefix (4 bytes, big-endian) || family (1 byte: 4 or 6) ||
 *   endpoint || endpoint || HKDF("sakeyd-v2 plan", 16)
 * where an endpoint is address (4 or 16 bytes) || subnet prefix length
 * (1 byte, 0xff without subnet) || subnet (4 or 16 bytes, zeros without),
 * local's (local, local_subnet) and remote's (remote, remote_subnet), the
 * smaller address first (memcmp), so both ends hash the same bytes. The
 * last part binds the secret without being a key: both ends with different
 * secrets disagree. The link must be resolved (rot_resolve_link) and hold
 * its secret; esn is the effective setting (the caller resolves auto).
 * Writes the text to out. 0, -EINVAL or -errno of the key schedule.
 */
int rot_plan_digest(const struct conf_link *link, bool esn, char out[ROT_DIGEST_STRLEN]);

/* Epoch of time t: floor((t - phase) / period), rounding toward minus infinity. */
int64_t rot_epoch(int64_t t, uint64_t period, uint64_t phase);

/* Start of epoch e: T(e) = e * period + phase. */
int64_t rot_epoch_start(int64_t epoch, uint64_t period, uint64_t phase);

/* SPI of generation gen of an epoch: spi_prefix << 8 | gen << 4 | (epoch mod 16), host order. */
uint32_t rot_spi(uint32_t spi_prefix, int64_t epoch, uint8_t gen);
/* The generation an SPI carries. */
uint8_t rot_spi_gen(uint32_t spi);
/* The epoch of an SPI nearest to epoch cur: the SPI keeps it mod 16. */
int64_t rot_spi_epoch_near(uint32_t spi, int64_t cur);

/*
 * Keying material of generation gen of the SA sent from src to dst in epoch
 * (DESIGN.md), for
 * proto (IPPROTO_ESP), mode and alg: writes alg->keymat_len bytes to out
 * (encryption key first, then authentication key). out should be a
 * rot_secret_alloc() buffer; the caller wipes it. Returns 0, -EINVAL (bad
 * arguments, address families differ), -ENOBUFS (out_size < keymat_len) or
 * -errno from rot_hkdf. gen > ROT_GEN_MAX is -EINVAL. On error out is wiped.
 */
int rot_keymat(const uint8_t secret[CONF_SECRET_LEN], uint8_t proto, enum conf_mode mode,
	       const struct conf_alg *alg, const struct conf_addr *src, const struct conf_addr *dst,
	       int64_t epoch, uint8_t gen, uint8_t *out, size_t out_size);

/*
 * Key fingerprint: first ROT_FP_LEN hex digits (lowercase) of
 * SHA-256("sakeyd-v2 fp" 0x00 || keymat), NUL-terminated in fp. 0 or -errno.
 */
int rot_fingerprint(const uint8_t *keymat, size_t len, char fp[ROT_FP_LEN + 1]);
/*
 * rot_fingerprint of the concatenation a || b, without copying key bytes
 * into one buffer (the kernel reports encryption and authentication keys
 * apart). 0 or -errno.
 */
int rot_fingerprint2(const uint8_t *a, size_t a_len, const uint8_t *b, size_t b_len,
		     char fp[ROT_FP_LEN + 1]);

/*
 * Fingerprint of the SA sa describes (its proto, mode, alg, src, dst, epoch, gen)
 * under secret, into sa->key_fp. The keying material lives only in a wiped
 * secure buffer. 0 or -errno.
 */
int rot_sa_fingerprint(const uint8_t secret[CONF_SECRET_LEN], struct rot_sa *sa);

#endif
