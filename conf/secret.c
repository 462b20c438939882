/* SPDX-License-Identifier: ISC */
/* Link secret files: reading them after the checks of trust.c, constant-time decoding. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "conf/conf.h"

#define HEX_LEN (2 * CONF_SECRET_LEN)		  /* 64 */
#define BASE64_LEN (4 * ((CONF_SECRET_LEN + 2) / 3)) /* 44, with one '=' */
#define READ_MAX 128				  /* anything longer is wrong anyway */

/*
 * Constant-time character classes (no branch or table lookup on key bytes):
 * ((lo - 1 - c) & (c - (hi + 1))) >> 8 is -1 when lo <= c <= hi, else 0.
 * Each returns the digit's value, or -1 if c is not a digit of the alphabet.
 */
static int range_mask(int c, int lo, int hi)
{
	return ((lo - 1 - c) & (c - (hi + 1))) >> 8;
}

static int hex_value(unsigned char ch)
{
	int c = ch;

	return -1 + ((range_mask(c, '0', '9') & (c - '0' + 1)) |
		     (range_mask(c, 'a', 'f') & (c - 'a' + 11)) |
		     (range_mask(c, 'A', 'F') & (c - 'A' + 11)));
}

static int base64_value(unsigned char ch)
{
	int c = ch;

	return -1 + ((range_mask(c, 'A', 'Z') & (c - 'A' + 1)) |
		     (range_mask(c, 'a', 'z') & (c - 'a' + 27)) |
		     (range_mask(c, '0', '9') & (c - '0' + 53)) | (range_mask(c, '+', '+') & 63) |
		     (range_mask(c, '/', '/') & 64));
}

/* Decodes 64 hex digits; true if all were hex digits. */
static bool decode_hex(uint8_t out[CONF_SECRET_LEN], const char *hex)
{
	int bad = 0;

	for (size_t i = 0; i < CONF_SECRET_LEN; i++) {
		int hi = hex_value((unsigned char)hex[2 * i]);
		int lo = hex_value((unsigned char)hex[2 * i + 1]);

		bad |= hi | lo;
		out[i] = (uint8_t)(((unsigned)hi << 4) | (unsigned)lo);
	}
	return bad >= 0;
}

/* Decodes 44 base64 characters (the last one '=') to 32 bytes; true if canonical. */
static bool decode_base64(uint8_t out[CONF_SECRET_LEN], const char *b64)
{
	unsigned v;
	int bad = 0;
	size_t i;

	if (b64[BASE64_LEN - 1] != '=')
		return false;
	for (i = 0; i < CONF_SECRET_LEN / 3; i++) {
		int a = base64_value((unsigned char)b64[4 * i]);
		int b = base64_value((unsigned char)b64[4 * i + 1]);
		int c = base64_value((unsigned char)b64[4 * i + 2]);
		int d = base64_value((unsigned char)b64[4 * i + 3]);

		bad |= a | b | c | d;
		v = (unsigned)a << 18 | (unsigned)b << 12 | (unsigned)c << 6 | (unsigned)d;
		out[3 * i] = (uint8_t)(v >> 16);
		out[3 * i + 1] = (uint8_t)(v >> 8);
		out[3 * i + 2] = (uint8_t)v;
	}
	{
		/* Last quantum: 3 characters carry 16 bits; its 2 spare bits must be 0. */
		int a = base64_value((unsigned char)b64[4 * i]);
		int b = base64_value((unsigned char)b64[4 * i + 1]);
		int c = base64_value((unsigned char)b64[4 * i + 2]);

		bad |= a | b | c;
		v = (unsigned)a << 12 | (unsigned)b << 6 | (unsigned)c;
		bad |= -(int)((v & 3) != 0);
		out[3 * i] = (uint8_t)(v >> 10);
		out[3 * i + 1] = (uint8_t)(v >> 2);
	}
	OPENSSL_cleanse(&v, sizeof(v));
	return bad >= 0;
}

static int read_all(int fd, char *buf, size_t size, size_t *len)
{
	*len = 0;
	while (*len < size) {
		ssize_t n = read(fd, buf + *len, size - *len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			break;
		*len += (size_t)n;
	}
	return 0;
}

static int load_secret(const char *path, uid_t expected_uid, struct conf_trust_memo *memo,
		       uint8_t **secret_out, struct conf_diag *diag)
{
	char text[READ_MAX + 1];
	uint8_t *secret = NULL;
	size_t len = 0, line_len;
	const char *nl;
	int fd, ret;

	*secret_out = NULL;
	/* O_NONBLOCK: a FIFO put in place of the file must not hang the daemon. */
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (fd < 0) {
		ret = -errno;
		if (ret == -ELOOP)
			conf_diag_add(diag, path, 0,
				      "secret file is a symbolic link, which is refused; point "
				      "secret_file at the real file");
		else if (ret == -ENOENT)
			conf_diag_add(diag, path, 0,
				      "secret file does not exist; create it with: sactl genkey -o %s",
				      path);
		else
			conf_diag_add(diag, path, 0, "cannot open the secret file: %s",
				      strerror(-ret));
		return ret;
	}
	ret = conf_trust_fd_memo(fd, path, CONF_TRUST_SECRET, expected_uid, NULL, 0, memo, diag);
	if (ret)
		goto cleanup;
	ret = read_all(fd, text, sizeof(text) - 1, &len);
	if (ret) {
		conf_diag_add(diag, path, 0, "cannot read the secret file: %s", strerror(-ret));
		goto cleanup;
	}
	text[len] = '\0';
	ret = -EINVAL;
	nl = memchr(text, '\n', len);
	line_len = nl ? (size_t)(nl - text) : len;
	if (len == 0) {
		conf_diag_add(diag, path, 0, "secret file is empty; regenerate with: sactl genkey -o %s",
			      path);
		goto cleanup;
	}
	if (memchr(text, '\0', len) || (nl && line_len + 1 != len)) {
		conf_diag_add(diag, path, 0,
			      "secret file has data after the key (it must be exactly one line); "
			      "regenerate with: sactl genkey -o %s",
			      path);
		goto cleanup;
	}
	if (line_len != HEX_LEN && line_len != BASE64_LEN) {
		conf_diag_add(diag, path, 0,
			      "secret file has the wrong length (%s%zu characters; a key is %d hex "
			      "digits or %d base64 characters); regenerate with: sactl genkey -o %s",
			      len == READ_MAX ? "at least " : "", line_len, HEX_LEN, BASE64_LEN, path);
		goto cleanup;
	}
	secret = conf_secure_alloc(CONF_SECRET_LEN);
	if (!secret) {
		char why[256];

		conf_diag_add(diag, path, 0, "no room for the key: %s",
			      conf_secure_heap_why(why, sizeof(why)));
		ret = -ENOMEM;
		goto cleanup;
	}
	if (line_len == HEX_LEN ? !decode_hex(secret, text) : !decode_base64(secret, text)) {
		conf_diag_add(diag, path, 0,
			      "secret file is not valid %s; regenerate with: sactl genkey -o %s",
			      line_len == HEX_LEN ? "hex (64 digits 0-9 a-f)"
						  : "base64 (44 characters ending in '=')",
			      path);
		goto cleanup;
	}
	*secret_out = secret;
	secret = NULL;
	ret = 0;
cleanup:
	OPENSSL_secure_clear_free(secret, CONF_SECRET_LEN);
	OPENSSL_cleanse(text, sizeof(text));
	close(fd);
	return ret;
}

int conf_load_secret(const char *path, uid_t expected_uid, uint8_t **secret_out,
		     struct conf_diag *diag)
{
	return load_secret(path, expected_uid, NULL, secret_out, diag);
}

int conf_load_secrets(struct config *cfg, uid_t expected_uid, struct conf_diag *diag)
{
	struct conf_trust_memo memo = { 0 };
	int first = 0;

	for (size_t i = 0; i < cfg->nlinks; i++) {
		struct conf_link *link = &cfg->links[i];
		uint8_t *secret = NULL;
		int ret = load_secret(link->secret_file, expected_uid, &memo, &secret, diag);

		OPENSSL_secure_clear_free(link->secret, CONF_SECRET_LEN);
		link->secret = secret;
		if (ret && !first)
			first = ret;
	}
	conf_trust_memo_fini(&memo);
	if (first) {
		for (size_t i = 0; i < cfg->nlinks; i++) {
			OPENSSL_secure_clear_free(cfg->links[i].secret, CONF_SECRET_LEN);
			cfg->links[i].secret = NULL;
		}
	}
	return first;
}
