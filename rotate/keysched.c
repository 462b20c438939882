/* SPDX-License-Identifier: ISC */
/* Key schedule v2 (DESIGN.md): HKDF-SHA256 via OpenSSL 3 EVP_KDF, fingerprints via EVP_Digest. */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>

#include "rotate/keysched.h"

#define LABEL_PHASE "sakeyd-v2 phase"
#define LABEL_SPI "sakeyd-v2 spi"
#define LABEL_SA "sakeyd-v2 sa" /* followed by 0x00 */
#define LABEL_FP "sakeyd-v2 fp" /* followed by 0x00 */
/* RFC 5869 §2.3: L <= 255 * HashLen. */
#define HKDF_OUT_MAX (255 * 32)
/* label, NUL, proto, mode, name, NUL, 2 addresses, epoch, generation. */
#define SA_INFO_MAX (sizeof(LABEL_SA) + 2 + CONF_NAME_MAX + 1 + 2 * 16 + 8 + 1)

void *rot_secret_alloc(size_t len)
{
	return conf_secure_alloc(len);
}

void rot_secret_free(void *p, size_t len)
{
	if (p)
		OPENSSL_secure_clear_free(p, len);
}

/*
 * HMAC-SHA256 with the digest bound, made once and duplicated per use:
 * OpenSSL's EVP_KDF HKDF fetches its digest and MACs by name on every
 * derivation (13 us, where the four HMACs take 2), and a pass plans every
 * link's SAs. NULL if OpenSSL lacks them; the caller reports it.
 */
#define SHA256_LEN 32
#define SHA256_BLOCK 64

/* SHA-256, fetched once: fetching by name costs more than hashing a few blocks. */
static const EVP_MD *sha256(void)
{
	static EVP_MD *md;

	if (!md)
		md = EVP_MD_fetch(NULL, "SHA256", NULL);
	return md;
}

/* An HMAC-SHA256 key as the digest states after its inner and outer pads (RFC 2104). */
struct hmac_key {
	EVP_MD_CTX *inner, *outer;
};

static void hmac_key_fini(struct hmac_key *hk)
{
	/* The states are key material: EVP_MD_CTX_free cleanses them. */
	EVP_MD_CTX_free(hk->inner);
	EVP_MD_CTX_free(hk->outer);
	hk->inner = hk->outer = NULL;
}

static int hmac_key_init(struct hmac_key *hk, const uint8_t *key, size_t key_len)
{
	const EVP_MD *md = sha256();
	uint8_t pad[SHA256_BLOCK];
	int ok;

	hk->inner = hk->outer = NULL;
	/* Our keys (the salt, a PRK) are never longer than a block: no pre-hash. */
	if (!md || key_len > SHA256_BLOCK)
		return -EIO;
	hk->inner = EVP_MD_CTX_new();
	hk->outer = EVP_MD_CTX_new();
	ok = hk->inner && hk->outer;
	memset(pad, 0x36, sizeof(pad));
	for (size_t i = 0; i < key_len; i++)
		pad[i] ^= key[i];
	ok = ok && EVP_DigestInit_ex2(hk->inner, md, NULL) &&
	     EVP_DigestUpdate(hk->inner, pad, sizeof(pad));
	memset(pad, 0x5c, sizeof(pad));
	for (size_t i = 0; i < key_len; i++)
		pad[i] ^= key[i];
	ok = ok && EVP_DigestInit_ex2(hk->outer, md, NULL) &&
	     EVP_DigestUpdate(hk->outer, pad, sizeof(pad));
	OPENSSL_cleanse(pad, sizeof(pad));
	if (!ok) {
		hmac_key_fini(hk);
		return -EIO;
	}
	return 0;
}

/* out = HMAC-SHA256(key, a || b || c), from the key's pad states; scratch is reused. */
static int hmac3(const struct hmac_key *hk, EVP_MD_CTX *scratch, const uint8_t *a, size_t a_len,
		 const uint8_t *b, size_t b_len, const uint8_t *c, size_t c_len,
		 uint8_t out[SHA256_LEN])
{
	uint8_t inner[SHA256_LEN];
	unsigned int len = 0;
	int ok;

	ok = EVP_MD_CTX_copy_ex(scratch, hk->inner) && EVP_DigestUpdate(scratch, a, a_len) &&
	     EVP_DigestUpdate(scratch, b, b_len) && EVP_DigestUpdate(scratch, c, c_len) &&
	     EVP_DigestFinal_ex(scratch, inner, &len) && len == SHA256_LEN &&
	     EVP_MD_CTX_copy_ex(scratch, hk->outer) && EVP_DigestUpdate(scratch, inner, len) &&
	     EVP_DigestFinal_ex(scratch, out, &len) && len == SHA256_LEN;
	OPENSSL_cleanse(inner, sizeof(inner));
	return ok ? 0 : -EIO;
}

/*
 * HKDF-SHA256 (RFC 5869), extract then expand, on HMAC pad states: the salt's
 * are made once, the PRK's once per derivation. OpenSSL's EVP_KDF HKDF
 * fetched its digest and MACs by name and keyed HMAC afresh for every block;
 * this does neither, and a rotation derives every SA's keys twice (plan
 * fingerprint, SADB_ADD).
 */
int rot_hkdf(const uint8_t secret[CONF_SECRET_LEN], const uint8_t *info, size_t info_len,
	     uint8_t *out, size_t out_len)
{
	static struct hmac_key salt_key;
	struct hmac_key prk_key = { 0 };
	uint8_t prk[SHA256_LEN], t[SHA256_LEN];
	EVP_MD_CTX *scratch = NULL;
	size_t done = 0, t_len = 0;
	uint8_t counter = 0;
	int ret;

	if (!secret || !out || out_len == 0 || out_len > HKDF_OUT_MAX || (!info && info_len))
		return -EINVAL;
	if (!salt_key.inner &&
	    hmac_key_init(&salt_key, (const uint8_t *)ROT_HKDF_SALT, ROT_HKDF_SALT_LEN))
		return -EIO;
	scratch = EVP_MD_CTX_new();
	if (!scratch)
		return -ENOMEM;
	ret = hmac3(&salt_key, scratch, secret, CONF_SECRET_LEN, NULL, 0, NULL, 0, prk);
	if (!ret)
		ret = hmac_key_init(&prk_key, prk, sizeof(prk));
	while (!ret && done < out_len) {
		size_t n = out_len - done < SHA256_LEN ? out_len - done : SHA256_LEN;

		counter++;
		ret = hmac3(&prk_key, scratch, t, t_len, info, info_len, &counter, 1, t);
		t_len = SHA256_LEN;
		if (!ret)
			memcpy(out + done, t, n);
		done += n;
	}
	if (ret)
		OPENSSL_cleanse(out, out_len);
	hmac_key_fini(&prk_key);
	/* The scratch state saw the PRK and the output: freeing cleanses it. */
	EVP_MD_CTX_free(scratch);
	OPENSSL_cleanse(prk, sizeof(prk));
	OPENSSL_cleanse(t, sizeof(t));
	return ret;
}

static uint64_t load_be(const uint8_t *b, size_t n)
{
	uint64_t v = 0;

	for (size_t i = 0; i < n; i++)
		v = v << 8 | b[i];
	return v;
}

int rot_auto_phase(const uint8_t secret[CONF_SECRET_LEN], uint64_t period, uint64_t *phase)
{
	uint8_t out[8];
	int ret;

	if (period == 0 || !phase)
		return -EINVAL;
	ret = rot_hkdf(secret, (const uint8_t *)LABEL_PHASE, strlen(LABEL_PHASE), out, sizeof(out));
	if (ret == 0)
		*phase = load_be(out, sizeof(out)) % period;
	OPENSSL_cleanse(out, sizeof(out));
	return ret;
}

int rot_auto_spi_prefix(const uint8_t secret[CONF_SECRET_LEN], uint32_t *spi_prefix)
{
	uint8_t out[4];
	uint32_t v;
	int ret;

	if (!spi_prefix)
		return -EINVAL;
	ret = rot_hkdf(secret, (const uint8_t *)LABEL_SPI, strlen(LABEL_SPI), out, sizeof(out));
	if (ret == 0) {
		v = (uint32_t)load_be(out, sizeof(out)) & 0xffffff;
		*spi_prefix = v ? v : 1;
	}
	OPENSSL_cleanse(out, sizeof(out));
	return ret;
}

/* One side of a link for the digest: its address and the subnet behind it. */
static size_t put_endpoint(uint8_t *out, const struct conf_addr *addr, const struct conf_addr *net,
			   size_t alen)
{
	memcpy(out, addr->bytes, alen);
	out[alen] = net->family ? net->prefixlen : 0xff;
	if (net->family)
		memcpy(out + alen + 1, net->bytes, alen);
	else
		memset(out + alen + 1, 0, alen);
	return 2 * alen + 1;
}

int rot_plan_digest(const struct conf_link *link, bool esn, char out[ROT_DIGEST_STRLEN])
{
	static const char label[] = "sakeyd-v2 plan digest";
	static const char bind_label[] = "sakeyd-v2 plan";
	uint8_t buf[sizeof(label) + 64 + 3 + 16 + 4 + 1 + 2 * 33 + 16];
	uint8_t md[32];
	size_t off = 0, alen = conf_addr_len(&link->local), nlen;
	const struct conf_addr *a_addr = &link->local, *a_net = &link->local_subnet;
	const struct conf_addr *b_addr = &link->remote, *b_net = &link->remote_subnet;
	unsigned int mdlen = 0;
	int ret;

	if (!link->secret || !link->alg || !alen || link->remote.family != link->local.family)
		return -EINVAL;
	nlen = strlen(link->alg->name);
	if (nlen > 63)
		return -EINVAL;
	memcpy(buf, label, sizeof(label)); /* with its NUL */
	off = sizeof(label);
	memcpy(buf + off, link->alg->name, nlen + 1);
	off += nlen + 1;
	buf[off++] = (uint8_t)link->mode;
	buf[off++] = esn ? 1 : 0;
	for (int i = 7; i >= 0; i--)
		buf[off++] = (uint8_t)(link->rotate_every >> (8 * i));
	for (int i = 7; i >= 0; i--)
		buf[off++] = (uint8_t)(link->phase >> (8 * i));
	for (int i = 3; i >= 0; i--)
		buf[off++] = (uint8_t)(link->spi_prefix >> (8 * i));
	buf[off++] = alen == 4 ? 4 : 6;
	if (memcmp(b_addr->bytes, a_addr->bytes, alen) < 0) {
		a_addr = &link->remote, a_net = &link->remote_subnet;
		b_addr = &link->local, b_net = &link->local_subnet;
	}
	off += put_endpoint(buf + off, a_addr, a_net, alen);
	off += put_endpoint(buf + off, b_addr, b_net, alen);
	ret = rot_hkdf(link->secret, (const uint8_t *)bind_label, strlen(bind_label), buf + off,
		       16);
	if (ret)
		goto cleanup;
	off += 16;
	if (!EVP_Digest(buf, off, md, &mdlen, EVP_sha256(), NULL) || mdlen != sizeof(md)) {
		ret = -EIO;
		goto cleanup;
	}
	snprintf(out, ROT_DIGEST_STRLEN, "%02x%02x-%02x%02x-%02x%02x-%02x%02x", md[0], md[1], md[2],
		 md[3], md[4], md[5], md[6], md[7]);
cleanup:
	OPENSSL_cleanse(buf, sizeof(buf));
	OPENSSL_cleanse(md, sizeof(md));
	return ret;
}

int rot_resolve_link(struct conf_link *link)
{
	uint64_t phase;
	uint32_t prefix;
	int ret;

	if (link->rotate_every == 0 || link->rotate_every > ROT_PERIOD_MAX)
		return -EINVAL;
	if ((link->phase_auto || link->spi_prefix_auto) && !link->secret)
		return -EINVAL;
	if (link->phase_auto) {
		ret = rot_auto_phase(link->secret, link->rotate_every, &phase);
		if (ret)
			return ret;
		link->phase = phase;
	}
	if (link->spi_prefix_auto) {
		ret = rot_auto_spi_prefix(link->secret, &prefix);
		if (ret)
			return ret;
		link->spi_prefix = prefix;
	}
	return 0;
}

/* Sort context for rot_resolve_links: qsort has none, so sort (prefix, index) pairs. */
struct prefix_index {
	uint32_t prefix;
	size_t index;
};

static int cmp_prefix_index(const void *a, const void *b)
{
	const struct prefix_index *x = a, *y = b;

	if (x->prefix != y->prefix)
		return x->prefix < y->prefix ? -1 : 1;
	return x->index < y->index ? -1 : x->index > y->index;
}

int rot_resolve_links(struct conf_link *links, size_t n, size_t *first, size_t *second)
{
	struct prefix_index *v = NULL;
	int ret;

	for (size_t i = 0; i < n; i++) {
		ret = rot_resolve_link(&links[i]);
		if (ret) {
			*first = i;
			return ret;
		}
	}
	v = calloc(n ? n : 1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		v[i].prefix = links[i].spi_prefix;
		v[i].index = i;
	}
	qsort(v, n, sizeof(*v), cmp_prefix_index);
	ret = 0;
	for (size_t i = 1; i < n; i++) {
		if (v[i].prefix == v[i - 1].prefix) {
			*first = v[i - 1].index;
			*second = v[i].index;
			ret = -EEXIST;
			break;
		}
	}
	free(v);
	return ret;
}

int64_t rot_epoch(int64_t t, uint64_t period, uint64_t phase)
{
	int64_t d, p, q;

	assert(period > 0 && period <= ROT_PERIOD_MAX && phase < period);
	p = (int64_t)period;
	d = t - (int64_t)phase;
	q = d / p;
	/* C division truncates toward zero; epochs are floored. */
	if (d % p < 0)
		q--;
	return q;
}

int64_t rot_epoch_start(int64_t epoch, uint64_t period, uint64_t phase)
{
	assert(period > 0 && period <= ROT_PERIOD_MAX && phase < period);
	return epoch * (int64_t)period + (int64_t)phase;
}

uint32_t rot_spi(uint32_t spi_prefix, int64_t epoch, uint8_t gen)
{
	/* Two's complement low bits equal the mathematical e mod 16, also for e < 0. */
	return (spi_prefix & 0xffffff) << 8 | (uint32_t)(gen & 0xf) << 4 |
	       (uint32_t)((uint64_t)epoch & 0xf);
}

uint8_t rot_spi_gen(uint32_t spi)
{
	return (uint8_t)(spi >> 4 & 0xf);
}

int64_t rot_spi_epoch_near(uint32_t spi, int64_t cur)
{
	int64_t delta = (int64_t)(spi & 0xf) - (int64_t)((uint64_t)cur & 0xf);

	/* Within [-8, 7] of cur: far more than the epochs e - 1, e, e + 1 a host holds. */
	if (delta > 7)
		delta -= 16;
	if (delta < -8)
		delta += 16;
	return cur + delta;
}

int rot_keymat(const uint8_t secret[CONF_SECRET_LEN], uint8_t proto, enum conf_mode mode,
	       const struct conf_alg *alg, const struct conf_addr *src, const struct conf_addr *dst,
	       int64_t epoch, uint8_t gen, uint8_t *out, size_t out_size)
{
	uint8_t info[SA_INFO_MAX];
	size_t n = 0, name_len, addr_len;
	int ret;

	if (!secret || !alg || !alg->name || !src || !dst || !out || alg->keymat_len == 0 ||
	    gen > ROT_GEN_MAX)
		return -EINVAL;
	if (mode != CONF_MODE_TRANSPORT && mode != CONF_MODE_TUNNEL)
		return -EINVAL;
	addr_len = rot_addr_len(src);
	if (addr_len == 0 || src->family != dst->family)
		return -EINVAL;
	name_len = strlen(alg->name);
	if (name_len == 0 || name_len > CONF_NAME_MAX)
		return -EINVAL;
	if (out_size < alg->keymat_len) {
		OPENSSL_cleanse(out, out_size);
		return -ENOBUFS;
	}

	/* "sakeyd-v2 sa" 0x00 || proto || mode || name 0x00 || X || Y || e (8 bytes BE) || g */
	memcpy(info + n, LABEL_SA, sizeof(LABEL_SA)); /* sizeof includes the 0x00 */
	n += sizeof(LABEL_SA);
	info[n++] = proto;
	info[n++] = (uint8_t)mode;
	memcpy(info + n, alg->name, name_len + 1);
	n += name_len + 1;
	memcpy(info + n, src->bytes, addr_len);
	n += addr_len;
	memcpy(info + n, dst->bytes, addr_len);
	n += addr_len;
	for (int i = 7; i >= 0; i--)
		info[n++] = (uint8_t)((uint64_t)epoch >> (8 * i));
	info[n++] = gen;
	assert(n <= sizeof(info));

	ret = rot_hkdf(secret, info, n, out, alg->keymat_len);
	OPENSSL_cleanse(info, sizeof(info));
	return ret;
}

int rot_fingerprint2(const uint8_t *a, size_t a_len, const uint8_t *b, size_t b_len,
		     char fp[ROT_FP_LEN + 1])
{
	static const char hex[] = "0123456789abcdef";
	static const uint8_t label[] = LABEL_FP; /* includes the 0x00 */
	const EVP_MD *md = sha256();
	uint8_t digest[EVP_MAX_MD_SIZE];
	unsigned int md_len = 0;
	EVP_MD_CTX *ctx = NULL;
	int ret;

	if (!fp || (!a && a_len) || (!b && b_len))
		return -EINVAL;
	fp[0] = '\0';
	ctx = EVP_MD_CTX_new();
	if (!ctx) {
		ret = -ENOMEM;
		goto cleanup;
	}
	/*
	 * The digest fetched once (sha256()), not EVP_sha256(): that one is
	 * looked up by name in the provider store at every init, under a lock,
	 * and a rotation fingerprints every SA.
	 */
	if (!md || EVP_DigestInit_ex2(ctx, md, NULL) != 1 ||
	    EVP_DigestUpdate(ctx, label, sizeof(label)) != 1 ||
	    EVP_DigestUpdate(ctx, a, a_len) != 1 || EVP_DigestUpdate(ctx, b, b_len) != 1 ||
	    EVP_DigestFinal_ex(ctx, digest, &md_len) != 1 || md_len * 2 < ROT_FP_LEN) {
		ret = -EIO;
		goto cleanup;
	}
	for (size_t i = 0; i < ROT_FP_LEN / 2; i++) {
		fp[2 * i] = hex[digest[i] >> 4];
		fp[2 * i + 1] = hex[digest[i] & 0xf];
	}
	fp[ROT_FP_LEN] = '\0';
	ret = 0;
cleanup:
	/* The digest context saw key bytes: EVP_MD_CTX_free cleanses it. */
	EVP_MD_CTX_free(ctx);
	OPENSSL_cleanse(digest, sizeof(digest));
	return ret;
}

int rot_fingerprint(const uint8_t *keymat, size_t len, char fp[ROT_FP_LEN + 1])
{
	return rot_fingerprint2(keymat, len, NULL, 0, fp);
}

int rot_sa_fingerprint(const uint8_t secret[CONF_SECRET_LEN], struct rot_sa *sa)
{
	uint8_t *keymat = NULL;
	size_t len;
	int ret;

	if (!sa->alg)
		return -EINVAL;
	len = sa->alg->keymat_len;
	keymat = rot_secret_alloc(len ? len : 1);
	if (!keymat)
		return -ENOMEM;
	ret = rot_keymat(secret, sa->proto, sa->mode, sa->alg, &sa->src, &sa->dst, sa->epoch,
			 sa->gen, keymat, len);
	if (ret == 0)
		ret = rot_fingerprint(keymat, len, sa->key_fp);
	rot_secret_free(keymat, len ? len : 1);
	return ret;
}
