/* SPDX-License-Identifier: ISC */
/* Unit tests for rotate/keysched: DESIGN.md vectors, an independent RFC 5869 HKDF, epochs. */
#include <arpa/inet.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include <cmocka.h>
#include "fixture.h"
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "rotate/keysched.h"

/* Our own algorithm rows (DESIGN.md table), independent of conf/conf.c. */
static const struct conf_alg alg_gcm128 = {
	.name = "aes-gcm-128", .keymat_len = 20, .enc_key_len = 20, .auth_key_len = 0,
};
static const struct conf_alg alg_gcm256 = {
	.name = "aes-gcm-256", .keymat_len = 36, .enc_key_len = 36, .auth_key_len = 0,
};
static const struct conf_alg alg_sha256 = {
	.name = "aes-cbc-256-hmac-sha256", .keymat_len = 64, .enc_key_len = 32, .auth_key_len = 32,
};
static const struct conf_alg alg_sha384 = {
	.name = "aes-cbc-256-hmac-sha384", .keymat_len = 80, .enc_key_len = 32, .auth_key_len = 48,
};
static const struct conf_alg alg_sha512 = {
	.name = "aes-cbc-256-hmac-sha512", .keymat_len = 96, .enc_key_len = 32, .auth_key_len = 64,
};
static const struct conf_alg *const algs[] = {
	&alg_gcm128, &alg_gcm256, &alg_sha256, &alg_sha384, &alg_sha512,
};

static uint8_t vector_secret[CONF_SECRET_LEN];

static int setup(void **state)
{
	for (int i = 0; i < CONF_SECRET_LEN; i++)
		vector_secret[i] = (uint8_t)i;
	return 0;
}

static struct conf_addr addr(const char *text)
{
	return fixture_addr(text);
}

static void hex(const uint8_t *b, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", b[i]);
}

/* ---- deterministic PRNG for property tests (xorshift64*) ---- */
static uint64_t rng_state = 0x9e3779b97f4a7c15u;

static uint64_t rnd(void)
{
	return fixture_rnd(&rng_state);
}

static void rnd_bytes(uint8_t *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		b[i] = (uint8_t)rnd();
}

/* ---- independent HKDF, written from RFC 5869 over HMAC-SHA256 ---- */
static void ref_hkdf(const uint8_t *salt, size_t salt_len, const uint8_t *ikm, size_t ikm_len,
		     const uint8_t *info, size_t info_len, uint8_t *okm, size_t L)
{
	uint8_t prk[32], t[32], buf[32 + 1024 + 1];
	unsigned int len = 0;
	size_t done = 0, tlen = 0;

	assert_true(L <= 255 * 32 && info_len <= 1024);
	/* §2.2 Extract: PRK = HMAC-Hash(salt, IKM). */
	assert_non_null(HMAC(EVP_sha256(), salt, (int)salt_len, ikm, ikm_len, prk, &len));
	assert_int_equal(len, 32);
	/* §2.3 Expand: T(i) = HMAC-Hash(PRK, T(i-1) | info | i). */
	for (uint8_t i = 1; done < L; i++) {
		memcpy(buf, t, tlen);
		memcpy(buf + tlen, info, info_len);
		buf[tlen + info_len] = i;
		assert_non_null(HMAC(EVP_sha256(), prk, 32, buf, tlen + info_len + 1, t, &len));
		tlen = 32;
		memcpy(okm + done, t, L - done < 32 ? L - done : 32);
		done += L - done < 32 ? L - done : 32;
	}
}

static void ref_sakeyd(const uint8_t *secret, const uint8_t *info, size_t info_len, uint8_t *out,
		       size_t L)
{
	ref_hkdf((const uint8_t *)"sakeyd-v2", 9, secret, 32, info, info_len, out, L);
}

/* The SA info string built independently from DESIGN.md, field by field. */
static size_t ref_sa_info(uint8_t *info, uint8_t mode, const char *name,
			  const struct conf_addr *x, const struct conf_addr *y, int64_t e, uint8_t g)
{
	size_t n = 0, alen = x->family == AF_INET ? 4 : 16;
	uint64_t ue = (uint64_t)e;

	n += (size_t)sprintf((char *)info, "sakeyd-v2 sa") + 1; /* with 0x00 */
	info[n++] = 50;
	info[n++] = mode;
	n += (size_t)sprintf((char *)info + n, "%s", name) + 1;
	memcpy(info + n, x->bytes, alen);
	n += alen;
	memcpy(info + n, y->bytes, alen);
	n += alen;
	for (int i = 0; i < 8; i++)
		info[n++] = (uint8_t)(ue >> (56 - 8 * i));
	info[n++] = g;
	return n;
}

static void ref_fp(const uint8_t *keymat, size_t len, char *fp)
{
	uint8_t buf[13 + 8160], md[32];
	unsigned int mdlen;

	memcpy(buf, "sakeyd-v2 fp", 13); /* the 0x00 included */
	memcpy(buf + 13, keymat, len);
	assert_int_equal(EVP_Digest(buf, 13 + len, md, &mdlen, EVP_sha256(), NULL), 1);
	hex(md, 8, fp);
	fp[16] = '\0';
}

/* ---- RFC 5869 A.1 for the independent implementation ---- */
static void test_ref_hkdf_rfc5869_case1(void **state)
{
	uint8_t ikm[22], salt[13], info[10], okm[42];
	char out[85];

	memset(ikm, 0x0b, sizeof(ikm));
	for (int i = 0; i < 13; i++)
		salt[i] = (uint8_t)i;
	for (int i = 0; i < 10; i++)
		info[i] = (uint8_t)(0xf0 + i);
	ref_hkdf(salt, sizeof(salt), ikm, sizeof(ikm), info, sizeof(info), okm, sizeof(okm));
	hex(okm, sizeof(okm), out);
	assert_string_equal(out, "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf"
				 "34007208d5b887185865");
}

/* ---- DESIGN.md test vectors ---- */
static void test_vector_auto_spi_prefix(void **state)
{
	uint32_t prefix = 0;

	assert_int_equal(rot_auto_spi_prefix(vector_secret, &prefix), 0);
	assert_int_equal(prefix, 0x959a92);
}

static void test_vector_auto_phase(void **state)
{
	uint64_t phase = 0;

	assert_int_equal(rot_auto_phase(vector_secret, 3600, &phase), 0);
	assert_int_equal(phase, 960);
}

/* The plan digest's vectors (doc/sakeyd.8.scd), computed apart with Python's hmac and hashlib. */
static void test_vector_plan_digest(void **state)
{
	struct conf_link link = {
		.rotate_every = 3600, .phase_auto = true, .spi_prefix_auto = true,
		.secret = vector_secret, .mode = CONF_MODE_TRANSPORT, .alg = &alg_sha512,
	};
	struct conf_link swapped;
	char d[ROT_DIGEST_STRLEN];

	(void)state;
	link.local = addr("198.51.100.7");
	link.remote = addr("192.0.2.1");
	assert_int_equal(rot_resolve_link(&link), 0);
	assert_int_equal(rot_plan_digest(&link, false, d), 0);
	assert_string_equal(d, "809b-d186-9f69-fe75");
	/* The peer's view: local and remote swapped. */
	swapped = link;
	swapped.local = link.remote;
	swapped.remote = link.local;
	assert_int_equal(rot_plan_digest(&swapped, false, d), 0);
	assert_string_equal(d, "809b-d186-9f69-fe75");

	link.local = addr("2001:db8::2");
	link.remote = addr("2001:db8::1");
	link.local_subnet = addr("2001:db8:2::");
	link.local_subnet.prefixlen = 48;
	link.remote_subnet = addr("2001:db8:1::");
	link.remote_subnet.prefixlen = 48;
	link.mode = CONF_MODE_TUNNEL;
	link.alg = &alg_gcm128;
	link.spi_prefix_auto = false;
	link.spi_prefix = 0x2a;
	assert_int_equal(rot_plan_digest(&link, true, d), 0);
	assert_string_equal(d, "9623-f846-78b7-3921");
	swapped = link;
	swapped.local = link.remote;
	swapped.remote = link.local;
	swapped.local_subnet = link.remote_subnet;
	swapped.remote_subnet = link.local_subnet;
	assert_int_equal(rot_plan_digest(&swapped, true, d), 0);
	assert_string_equal(d, "9623-f846-78b7-3921");
	/* Swapping the addresses but not the subnets is another link. */
	swapped.local_subnet = link.local_subnet;
	swapped.remote_subnet = link.remote_subnet;
	assert_int_equal(rot_plan_digest(&swapped, true, d), 0);
	assert_string_not_equal(d, "9623-f846-78b7-3921");
	/* No secret: no digest. */
	link.secret = NULL;
	assert_int_equal(rot_plan_digest(&link, true, d), -EINVAL);
}

static void test_vector_resolve_link(void **state)
{
	struct conf_link link = {
		.rotate_every = 3600, .phase_auto = true, .spi_prefix_auto = true,
		.secret = vector_secret,
	};

	assert_int_equal(rot_resolve_link(&link), 0);
	assert_int_equal(link.phase, 960);
	assert_int_equal(link.spi_prefix, 0x959a92);
	assert_true(link.phase_auto && link.spi_prefix_auto);
	/* Explicit values are kept. */
	link.phase_auto = link.spi_prefix_auto = false;
	link.phase = 0;
	link.spi_prefix = 0x2a;
	assert_int_equal(rot_resolve_link(&link), 0);
	assert_int_equal(link.phase, 0);
	assert_int_equal(link.spi_prefix, 0x2a);
	/* No secret is fine when nothing is auto... */
	link.secret = NULL;
	assert_int_equal(rot_resolve_link(&link), 0);
	/* ...and an error when something is. */
	link.phase_auto = true;
	assert_int_equal(rot_resolve_link(&link), -EINVAL);
	link.phase_auto = false;
	link.spi_prefix_auto = true;
	assert_int_equal(rot_resolve_link(&link), -EINVAL);
	link.spi_prefix_auto = false;
	link.rotate_every = 0;
	assert_int_equal(rot_resolve_link(&link), -EINVAL);
	link.rotate_every = ROT_PERIOD_MAX + 1;
	assert_int_equal(rot_resolve_link(&link), -EINVAL);
}

static void test_resolve_links_collision(void **state)
{
	struct conf_link links[4] = {
		{ .rotate_every = 3600, .spi_prefix = 0x10 },
		{ .rotate_every = 3600, .phase_auto = true, .spi_prefix_auto = true,
		  .secret = vector_secret },
		{ .rotate_every = 60, .spi_prefix = 0x11 },
		{ .rotate_every = 3600, .spi_prefix = 0x959a92 }, /* equals link 1's auto prefix */
	};
	size_t first = 99, second = 99;

	assert_int_equal(rot_resolve_links(links, 3, &first, &second), 0);
	assert_int_equal(links[1].spi_prefix, 0x959a92);
	assert_int_equal(rot_resolve_links(links, 4, &first, &second), -EEXIST);
	assert_int_equal(first, 1);
	assert_int_equal(second, 3);
	links[3].spi_prefix = 0x10;
	assert_int_equal(rot_resolve_links(links, 4, &first, &second), -EEXIST);
	assert_int_equal(first, 0);
	assert_int_equal(second, 3);
	links[2].rotate_every = 0;
	assert_int_equal(rot_resolve_links(links, 4, &first, &second), -EINVAL);
	assert_int_equal(first, 2);
	assert_int_equal(rot_resolve_links(NULL, 0, &first, &second), 0);
}

struct sa_vector {
	uint32_t prefix;
	enum conf_mode mode;
	const struct conf_alg *alg;
	const char *src, *dst;
	int64_t epoch;
	uint8_t gen;
	uint32_t spi;
	const char *keymat;
	const char *fp;
};

/* DESIGN.md "Key schedule v2", test vectors. */
static const struct sa_vector sa_vectors[] = {
	{ 0x2a, CONF_MODE_TRANSPORT, &alg_gcm128, "192.0.2.1", "198.51.100.7", 491234, 0, 0x2a02,
	  "0c2a6fd7fed3d13a6be750b9c92529817645ec34", "f7af5b0be5874e20" },
	{ 0x2a, CONF_MODE_TRANSPORT, &alg_gcm128, "192.0.2.1", "198.51.100.7", 491234, 1, 0x2a12,
	  "45f2f3209616e3321b57e7ccd162137958b291a3", "812eca075b83fb98" },
	{ 0x2a, CONF_MODE_TUNNEL, &alg_sha256, "2001:db8::1", "2001:db8::2", 7, 15, 0x2af7,
	  "6b18c8943ddcdbe49745aa17dd8956ee9c919e9fc98bc364653ecce0b140a928"
	  "1b582f40b65c1f87f2b78e9dcbb446a545941f87520e12494facb3ed65fbe5d0",
	  "3af77c0e15f06b39" },
	{ 0x2a, CONF_MODE_TRANSPORT, &alg_sha512, "198.51.100.7", "192.0.2.1", 1, 0, 0x2a01,
	  "beba324dfcffb824f9853028b7e7378d08396e59eeef76a81696f7364971dc07"
	  "edd8e1d1236caf161ce32eea0db84a02f015330598f34588d4612ba3a922a6ab"
	  "43b9f6c1a697ca3af5eb435a9c1829ddbd040e6bfd0ec264ea5f32e1d85983b0",
	  "6c48427cba231ca9" },
};

static void test_vector_sa(void **state)
{
	for (size_t i = 0; i < sizeof(sa_vectors) / sizeof(sa_vectors[0]); i++) {
		const struct sa_vector *v = &sa_vectors[i];
		struct conf_addr src = addr(v->src), dst = addr(v->dst);
		uint8_t *keymat = rot_secret_alloc(ROT_KEYMAT_MAX);
		char text[2 * ROT_KEYMAT_MAX + 1], fp[ROT_FP_LEN + 1];
		struct rot_sa sa = {
			.proto = IPPROTO_ESP, .mode = v->mode, .src = src, .dst = dst,
			.alg = v->alg, .epoch = v->epoch, .gen = v->gen,
		};

		assert_non_null(keymat);
		assert_int_equal(rot_spi(v->prefix, v->epoch, v->gen), v->spi);
		assert_int_equal(rot_spi_gen(v->spi), v->gen);
		assert_int_equal(rot_spi_epoch_near(v->spi, v->epoch + 3), v->epoch);
		assert_int_equal(rot_keymat(vector_secret, IPPROTO_ESP, v->mode, v->alg, &src, &dst,
					    v->epoch, v->gen, keymat, ROT_KEYMAT_MAX),
				 0);
		hex(keymat, v->alg->keymat_len, text);
		assert_string_equal(text, v->keymat);
		assert_int_equal(rot_fingerprint(keymat, v->alg->keymat_len, fp), 0);
		assert_string_equal(fp, v->fp);
		assert_int_equal(rot_sa_fingerprint(vector_secret, &sa), 0);
		assert_string_equal(sa.key_fp, v->fp);
		rot_secret_free(keymat, ROT_KEYMAT_MAX);
	}
}

/* ---- property: rot_ against the independent implementation ---- */
static void test_property_hkdf(void **state)
{
	uint8_t secret[32], info[1024], want[8160], got[8160];

	for (int iter = 0; iter < 2000; iter++) {
		size_t info_len = rnd() % (iter % 10 ? 80 : 1025);
		size_t L = 1 + rnd() % (iter % 50 ? 200 : 8160);

		rnd_bytes(secret, sizeof(secret));
		rnd_bytes(info, info_len);
		ref_sakeyd(secret, info, info_len, want, L);
		assert_int_equal(rot_hkdf(secret, info, info_len, got, L), 0);
		assert_memory_equal(got, want, L);
	}
	/* The maximum output length. */
	rnd_bytes(secret, sizeof(secret));
	ref_sakeyd(secret, (const uint8_t *)"x", 1, want, 8160);
	assert_int_equal(rot_hkdf(secret, (const uint8_t *)"x", 1, got, 8160), 0);
	assert_memory_equal(got, want, 8160);
}

static void test_property_auto(void **state)
{
	uint8_t secret[32], out[8];

	for (int iter = 0; iter < 1000; iter++) {
		uint64_t period = 1 + rnd() % (iter % 2 ? 86400 * 7 : ROT_PERIOD_MAX), phase, v = 0;
		uint32_t prefix, want;

		rnd_bytes(secret, sizeof(secret));
		ref_sakeyd(secret, (const uint8_t *)"sakeyd-v2 phase", 15, out, 8);
		for (int i = 0; i < 8; i++)
			v = v << 8 | out[i];
		assert_int_equal(rot_auto_phase(secret, period, &phase), 0);
		assert_int_equal(phase, v % period);
		assert_true(phase < period);

		ref_sakeyd(secret, (const uint8_t *)"sakeyd-v2 spi", 13, out, 4);
		want = ((uint32_t)out[0] << 24 | (uint32_t)out[1] << 16 | (uint32_t)out[2] << 8 |
			out[3]) & 0xffffff;
		assert_int_equal(rot_auto_spi_prefix(secret, &prefix), 0);
		assert_int_equal(prefix, want ? want : 1);
		assert_true(prefix >= 1 && prefix <= 0xffffff);
	}
	/* Period 1: every phase is 0. */
	assert_int_equal(rot_auto_phase(vector_secret, 1, &(uint64_t){ 7 }), 0);
}

static void test_property_keymat(void **state)
{
	uint8_t secret[32], info[256], want[ROT_KEYMAT_MAX], got[ROT_KEYMAT_MAX];
	char want_fp[17], got_fp[17];

	for (int iter = 0; iter < 3000; iter++) {
		const struct conf_alg *alg = algs[rnd() % 5];
		enum conf_mode mode = rnd() % 2 ? CONF_MODE_TUNNEL : CONF_MODE_TRANSPORT;
		struct conf_addr x = { 0 }, y = { 0 };
		int64_t e = (int64_t)rnd();
		uint8_t g = (uint8_t)(rnd() % (ROT_GEN_MAX + 1));
		size_t info_len;

		if (iter % 3 == 0)
			e %= 1000000; /* small, and negative ones */
		x.family = y.family = rnd() % 2 ? AF_INET : AF_INET6;
		rnd_bytes(x.bytes, 16);
		rnd_bytes(y.bytes, 16);
		rnd_bytes(secret, sizeof(secret));
		info_len = ref_sa_info(info, (uint8_t)mode, alg->name, &x, &y, e, g);
		ref_sakeyd(secret, info, info_len, want, alg->keymat_len);
		memset(got, 0xa5, sizeof(got));
		assert_int_equal(rot_keymat(secret, IPPROTO_ESP, mode, alg, &x, &y, e, g, got,
					    sizeof(got)),
				 0);
		assert_memory_equal(got, want, alg->keymat_len);
		/* Nothing written past L. */
		for (size_t i = alg->keymat_len; i < sizeof(got); i++)
			assert_int_equal(got[i], 0xa5);
		ref_fp(want, alg->keymat_len, want_fp);
		assert_int_equal(rot_fingerprint(got, alg->keymat_len, got_fp), 0);
		assert_string_equal(got_fp, want_fp);
	}
}

/* Swapping X and Y, the epoch, generation, mode or algorithm changes the key. */
static void test_keymat_domain_separation(void **state)
{
	struct conf_addr x = addr("192.0.2.1"), y = addr("198.51.100.7");
	uint8_t base[96], other[96];

	assert_int_equal(rot_keymat(vector_secret, IPPROTO_ESP, CONF_MODE_TRANSPORT, &alg_sha512,
				    &x, &y, 5, 0, base, sizeof(base)), 0);
	assert_int_equal(rot_keymat(vector_secret, IPPROTO_ESP, CONF_MODE_TRANSPORT, &alg_sha512,
				    &y, &x, 5, 0, other, sizeof(other)), 0);
	assert_memory_not_equal(base, other, 96);
	assert_int_equal(rot_keymat(vector_secret, IPPROTO_ESP, CONF_MODE_TRANSPORT, &alg_sha512,
				    &x, &y, 6, 0, other, sizeof(other)), 0);
	assert_memory_not_equal(base, other, 96);
	assert_int_equal(rot_keymat(vector_secret, IPPROTO_ESP, CONF_MODE_TUNNEL, &alg_sha512,
				    &x, &y, 5, 0, other, sizeof(other)), 0);
	assert_memory_not_equal(base, other, 96);
	assert_int_equal(rot_keymat(vector_secret, IPPROTO_ESP, CONF_MODE_TRANSPORT, &alg_sha384,
				    &x, &y, 5, 0, other, sizeof(other)), 0);
	assert_memory_not_equal(base, other, 80);
}

/* ---- rejection paths ---- */
static void test_errors(void **state)
{
	struct conf_addr v4 = addr("192.0.2.1"), v6 = addr("2001:db8::1"), none = { 0 };
	struct conf_alg noname = { .name = NULL, .keymat_len = 20 };
	struct conf_alg zero = { .name = "x", .keymat_len = 0 };
	struct conf_alg emptyname = { .name = "", .keymat_len = 20 };
	uint8_t out[96];
	char fp[ROT_FP_LEN + 1];
	uint32_t prefix;
	uint64_t phase;
	struct rot_sa sa = { .alg = NULL };

	assert_int_equal(rot_hkdf(vector_secret, NULL, 0, out, 0), -EINVAL);
	assert_int_equal(rot_hkdf(vector_secret, NULL, 0, out, 255 * 32 + 1), -EINVAL);
	assert_int_equal(rot_hkdf(NULL, NULL, 0, out, 1), -EINVAL);
	assert_int_equal(rot_hkdf(vector_secret, NULL, 5, out, 1), -EINVAL);
	assert_int_equal(rot_hkdf(vector_secret, NULL, 0, NULL, 1), -EINVAL);
	assert_int_equal(rot_hkdf(vector_secret, NULL, 0, out, 1), 0); /* empty info is fine */
	assert_int_equal(rot_auto_phase(vector_secret, 0, &phase), -EINVAL);
	assert_int_equal(rot_auto_phase(vector_secret, 10, NULL), -EINVAL);
	assert_int_equal(rot_auto_spi_prefix(vector_secret, NULL), -EINVAL);
	assert_int_equal(rot_auto_spi_prefix(NULL, &prefix), -EINVAL);

	assert_int_equal(rot_keymat(vector_secret, 50, CONF_MODE_TRANSPORT, &alg_gcm128, &v4, &v6,
				    1, 0, out, sizeof(out)), -EINVAL);
	assert_int_equal(rot_keymat(vector_secret, 50, CONF_MODE_TRANSPORT, &alg_gcm128, &none,
				    &none, 1, 0, out, sizeof(out)), -EINVAL);
	assert_int_equal(rot_keymat(vector_secret, 50, 0, &alg_gcm128, &v4, &v4, 1, 0, out,
				    sizeof(out)), -EINVAL);
	assert_int_equal(rot_keymat(vector_secret, 50, 3, &alg_gcm128, &v4, &v4, 1, 0, out,
				    sizeof(out)), -EINVAL);
	assert_int_equal(rot_keymat(vector_secret, 50, CONF_MODE_TRANSPORT, NULL, &v4, &v4, 1, 0, out,
				    sizeof(out)), -EINVAL);
	assert_int_equal(rot_keymat(vector_secret, 50, CONF_MODE_TRANSPORT, &noname, &v4, &v4, 1,
				    0, out, sizeof(out)), -EINVAL);
	assert_int_equal(rot_keymat(vector_secret, 50, CONF_MODE_TRANSPORT, &zero, &v4, &v4, 1,
				    0, out, sizeof(out)), -EINVAL);
	assert_int_equal(rot_keymat(vector_secret, 50, CONF_MODE_TRANSPORT, &emptyname, &v4, &v4,
				    1, 0, out, sizeof(out)), -EINVAL);
	assert_int_equal(rot_keymat(NULL, 50, CONF_MODE_TRANSPORT, &alg_gcm128, &v4, &v4, 1, 0, out,
				    sizeof(out)), -EINVAL);
	assert_int_equal(rot_keymat(vector_secret, 50, CONF_MODE_TRANSPORT, &alg_gcm128, &v4, &v4, 1,
				    ROT_GEN_MAX + 1, out, sizeof(out)), -EINVAL);
	memset(out, 0xff, sizeof(out));
	assert_int_equal(rot_keymat(vector_secret, 50, CONF_MODE_TRANSPORT, &alg_gcm128, &v4, &v4,
				    1, 0, out, 19), -ENOBUFS);
	for (int i = 0; i < 19; i++)
		assert_int_equal(out[i], 0); /* wiped */
	assert_int_equal(rot_fingerprint(NULL, 3, fp), -EINVAL);
	assert_int_equal(rot_fingerprint(out, 3, NULL), -EINVAL);
	assert_int_equal(rot_sa_fingerprint(vector_secret, &sa), -EINVAL);
}

/* The two-part fingerprint is the fingerprint of the concatenation, at every split. */
static void test_fingerprint2(void **state)
{
	uint8_t key[72];
	char whole[ROT_FP_LEN + 1], parts[ROT_FP_LEN + 1];

	(void)state;
	for (size_t i = 0; i < sizeof(key); i++)
		key[i] = (uint8_t)(i * 37 + 11);
	for (size_t len = 0; len <= sizeof(key); len += 9) {
		assert_int_equal(rot_fingerprint(key, len, whole), 0);
		assert_int_equal(strlen(whole), ROT_FP_LEN);
		for (size_t split = 0; split <= len; split++) {
			assert_int_equal(rot_fingerprint2(key, split, key + split, len - split, parts),
					 0);
			assert_string_equal(parts, whole);
		}
		assert_int_equal(rot_fingerprint2(key, len, NULL, 0, parts), 0);
		assert_string_equal(parts, whole);
	}
	/* Another key, another fingerprint. */
	assert_int_equal(rot_fingerprint(key, 36, whole), 0);
	key[35] ^= 1;
	assert_int_equal(rot_fingerprint2(key, 20, key + 20, 16, parts), 0);
	assert_string_not_equal(parts, whole);
	assert_int_equal(rot_fingerprint2(NULL, 1, key, 1, parts), -EINVAL);
	assert_int_equal(rot_fingerprint2(key, 1, NULL, 1, parts), -EINVAL);
	assert_int_equal(rot_fingerprint2(key, 1, key, 1, NULL), -EINVAL);
}

static void test_secret_buffer(void **state)
{
	uint8_t *p = rot_secret_alloc(64);

	assert_non_null(p);
	for (int i = 0; i < 64; i++)
		assert_int_equal(p[i], 0);
	memset(p, 0x55, 64);
	rot_secret_free(p, 64);
	rot_secret_free(NULL, 64); /* no-op */
}

/* ---- epochs ---- */
struct epoch_case {
	int64_t t;
	uint64_t period, phase;
	int64_t epoch;
};

static const struct epoch_case epoch_cases[] = {
	{ 0, 3600, 0, 0 },
	{ 3599, 3600, 0, 0 },
	{ 3600, 3600, 0, 1 },
	{ -1, 3600, 0, -1 },       /* floor, not truncation */
	{ -3600, 3600, 0, -1 },
	{ -3601, 3600, 0, -2 },
	{ 0, 3600, 3197, -1 },     /* t < phase */
	{ 3196, 3600, 3197, -1 },
	{ 3197, 3600, 3197, 0 },
	{ 6796, 3600, 3197, 0 },
	{ 6797, 3600, 3197, 1 },
	{ -403, 3600, 3197, -1 },  /* T(-1) = -403 */
	{ -404, 3600, 3197, -2 },
	{ 1700000000, 3600, 3197, 472221 }, /* (1700000000 - 3197) / 3600 = 472221.33 */
	{ 5, 1, 0, 5 },
	{ -5, 1, 0, -5 },
	{ 10, 7, 6, 0 },
	{ 5, 7, 6, -1 },
	{ -2, 7, 6, -2 },         /* (-8)/7 -> floor -2 */
	{ -1, 7, 6, -1 },         /* -7/7 = -1 exactly: T(-1) = -1 */
	{ ROT_TIME_MAX, ROT_PERIOD_MAX, ROT_PERIOD_MAX - 1,
	  (ROT_TIME_MAX - (int64_t)ROT_PERIOD_MAX + 1) / (int64_t)ROT_PERIOD_MAX },
	{ -ROT_TIME_MAX, ROT_PERIOD_MAX, 0, -(ROT_TIME_MAX / (int64_t)ROT_PERIOD_MAX) },
	{ -ROT_TIME_MAX, ROT_PERIOD_MAX, 1, -(ROT_TIME_MAX / (int64_t)ROT_PERIOD_MAX) - 1 },
};

static void test_epoch_table(void **state)
{
	for (size_t i = 0; i < sizeof(epoch_cases) / sizeof(epoch_cases[0]); i++) {
		const struct epoch_case *c = &epoch_cases[i];
		int64_t e = rot_epoch(c->t, c->period, c->phase);

		if (e != c->epoch)
			fail_msg("case %zu: t=%lld P=%llu phase=%llu: epoch %lld, want %lld", i,
				 (long long)c->t, (unsigned long long)c->period,
				 (unsigned long long)c->phase, (long long)e, (long long)c->epoch);
		assert_true(rot_epoch_start(e, c->period, c->phase) <= c->t);
		assert_true(rot_epoch_start(e + 1, c->period, c->phase) > c->t);
	}
}

static void test_epoch_property(void **state)
{
	for (int iter = 0; iter < 100000; iter++) {
		uint64_t period = 1 + rnd() % (iter % 3 ? 100000 : ROT_PERIOD_MAX);
		uint64_t phase = rnd() % period;
		int64_t t = (int64_t)(rnd() % (2 * (uint64_t)ROT_TIME_MAX)) - ROT_TIME_MAX;
		int64_t e, start;

		if (iter % 2)
			t = (int64_t)(rnd() % 2000000) - 1000000;
		e = rot_epoch(t, period, phase);
		start = rot_epoch_start(e, period, phase);
		assert_true(start <= t);
		assert_true(t - start < (int64_t)period);
		/* Boundaries: T(e) is in e, T(e) - 1 in e - 1. */
		assert_int_equal(rot_epoch(start, period, phase), e);
		if (start > -ROT_TIME_MAX)
			assert_int_equal(rot_epoch(start - 1, period, phase), e - 1);
	}
}

static void test_spi(void **state)
{
	assert_int_equal(rot_spi(0x2a, 0, 0), 0x2a00);
	assert_int_equal(rot_spi(0x2a, 15, 0), 0x2a0f);
	assert_int_equal(rot_spi(0x2a, 16, 0), 0x2a00);
	assert_int_equal(rot_spi(0x2a, -1, 0), 0x2a0f); /* e mod 16 is 15 */
	assert_int_equal(rot_spi(0x2a, -16, 0), 0x2a00);
	assert_int_equal(rot_spi(0x2a, -17, 0), 0x2a0f);
	assert_int_equal(rot_spi(0x2a, 491234, 1), 0x2a12);
	assert_int_equal(rot_spi(0x2a, 7, 15), 0x2af7);
	assert_int_equal(rot_spi(0x2a, 7, 16), 0x2a07); /* the generation's 4 bits */
	assert_int_equal(rot_spi(0xffffff, 1, 0), 0xffffff01u);
	assert_int_equal(rot_spi(0x959a92, 491234, 0), 0x959a9202u);
	assert_int_equal(rot_spi(0x1ffffff, 1, 0), 0xffffff01u); /* masked to 24 bits */
	for (uint8_t g = 0; g <= ROT_GEN_MAX; g++)
		assert_int_equal(rot_spi_gen(rot_spi(0x2a, 12345, g)), g);
	/* The epoch back from the SPI: exact within [cur - 8, cur + 7], also across 0. */
	for (int64_t cur = -40; cur <= 40; cur++)
		for (int64_t e = cur - 8; e <= cur + 7; e++)
			for (uint8_t g = 0; g <= ROT_GEN_MAX; g += 5)
				assert_int_equal(rot_spi_epoch_near(rot_spi(0x2a, e, g), cur), e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ref_hkdf_rfc5869_case1),
		cmocka_unit_test(test_vector_auto_spi_prefix),
		cmocka_unit_test(test_vector_auto_phase),
		cmocka_unit_test(test_vector_resolve_link),
		cmocka_unit_test(test_vector_plan_digest),
		cmocka_unit_test(test_resolve_links_collision),
		cmocka_unit_test(test_vector_sa),
		cmocka_unit_test(test_property_hkdf),
		cmocka_unit_test(test_property_auto),
		cmocka_unit_test(test_property_keymat),
		cmocka_unit_test(test_keymat_domain_separation),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_secret_buffer),
		cmocka_unit_test(test_epoch_table),
		cmocka_unit_test(test_epoch_property),
		cmocka_unit_test(test_spi),
		cmocka_unit_test(test_fingerprint2),
	};

	return cmocka_run_group_tests(tests, setup, NULL);
}
