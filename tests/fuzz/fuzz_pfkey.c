/* SPDX-License-Identifier: ISC */
/* libFuzzer target: decodes hostile PF_KEY messages and checks that decode(encode(m)) == m. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/*
 * The codec is included rather than linked so that libFuzzer instruments it
 * (as wireguard-tools' fuzzers do); the linker then never pulls pfkey.o out of
 * libpfkey.a.
 */
#include "svc/kernel/pfkey.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t encoded[PFKEY_MSG_MAX];
static uint8_t reencoded[PFKEY_MSG_MAX];

/* Address literals: whatever parses must print and parse back to the same address. */
static void fuzz_addr_string(const uint8_t *data, size_t size)
{
	struct pfkey_addr a, b;
	char text[64], printed[64];

	if (size >= sizeof(text))
		return;
	memcpy(text, data, size);
	text[size] = '\0';
	if (pfkey_addr_from_string(&a, text))
		return;
	pfkey_addr_to_string(&a, printed, sizeof(printed));
	if (pfkey_addr_from_string(&b, printed) || a.family != b.family ||
	    memcmp(a.addr, b.addr, sizeof(a.addr)) != 0)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pfkey_msg m, again;
	const char *why = NULL;
	char text[64];
	ssize_t len, len2;

	fuzz_addr_string(data, size);
	if (pfkey_decode(data, size, &m, &why)) {
		if (!why)
			abort();
		return 0;
	}
	pfkey_type_name(m.type);
	pfkey_addr_to_string(&m.src, text, sizeof(text));

	/* Accepted but not carried by struct pfkey_msg: skipped extensions, long lists. */
	m.present &= PFKEY_EXT_CODED;
	if (m.ncombs > PFKEY_MAX_COMBS)
		m.ncombs = PFKEY_MAX_COMBS;
	if (m.nauth_algs > PFKEY_MAX_ALGS)
		m.nauth_algs = PFKEY_MAX_ALGS;
	if (m.nenc_algs > PFKEY_MAX_ALGS)
		m.nenc_algs = PFKEY_MAX_ALGS;

	/* The encoding is canonical, so it is never longer than what was accepted. */
	len = pfkey_encode(&m, encoded, sizeof(encoded));
	if (len < 0 || (size_t)len > size)
		abort();
	if (pfkey_decode(encoded, (size_t)len, &again, &why) || !pfkey_msg_equal(&m, &again))
		abort();
	len2 = pfkey_encode(&again, reencoded, sizeof(reencoded));
	if (len2 != len || memcmp(encoded, reencoded, (size_t)len) != 0)
		abort();
	return 0;
}
