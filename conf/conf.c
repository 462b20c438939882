/* SPDX-License-Identifier: ISC */
/* Config parsing (inih) and validation, the algorithm table, durations and diagnostics. */

/*
 * How lines are numbered. Debian's libinih is built with INI_HANDLER_LINENO (its
 * handler gets a line number; the define below matches that ABI), but inih's
 * numbers drift once it splits an over-long line into several reads, it returns
 * only the first syntax error, never reports an empty [section], and treats an
 * indented line as the continuation of the previous value. So the text reaches
 * ini_parse_stream() through read_line(), a reader that numbers the lines
 * itself, refuses over-long ones, strips comments ('#' or ';' at the start of a
 * line or after a blank) and indentation, handles [section] headers and syntax
 * errors (all of them are reported), and hands inih only "key = value" lines,
 * one per read. inih splits and trims them and calls on_key(), which takes the
 * line number from the reader. Lines are limited by inih's line buffer
 * (INI_MAX_LINE, 200 bytes on Debian: 197 characters).
 */
#define INI_HANDLER_LINENO 1

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ini.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "conf/conf.h"

#define DEFAULT_ALG "aes-cbc-256-hmac-sha512"
#define KEY_DIR "/etc/sakeyd"

const struct conf_alg conf_algs[] = {
	{
		.name = "aes-gcm-128",
		.keymat_len = 20,
		.enc_key_len = 20, /* 16 key + 4 salt (RFC 4106) */
		.auth_key_len = 0,
		.icv_bits = 128,
		.xfrm_aead = "rfc4106(gcm(aes))",
		.sadb_ealg = 20, /* SADB_X_EALG_AES_GCM_ICV16: the id XFRM reports */
		.pfkey_ok = false,
		.pfkey_why = "Linux PF_KEY cannot install AEAD (ENOSYS); use aes-cbc-256-hmac-sha512",
	},
	{
		.name = "aes-gcm-256",
		.keymat_len = 36,
		.enc_key_len = 36, /* 32 key + 4 salt */
		.auth_key_len = 0,
		.icv_bits = 128,
		.xfrm_aead = "rfc4106(gcm(aes))",
		.sadb_ealg = 20, /* SADB_X_EALG_AES_GCM_ICV16: the id XFRM reports */
		.pfkey_ok = false,
		.pfkey_why = "Linux PF_KEY cannot install AEAD (ENOSYS); use aes-cbc-256-hmac-sha512",
	},
	{
		.name = "aes-cbc-256-hmac-sha256",
		.keymat_len = 64,
		.enc_key_len = 32,
		.auth_key_len = 32,
		.icv_bits = 128, /* RFC 4868 */
		.xfrm_enc = "cbc(aes)",
		.xfrm_auth = "hmac(sha256)",
		.sadb_ealg = 12, /* SADB_EALG_AESCBC */
		.sadb_aalg = 5,	 /* SADB_X_AALG_SHA2_256HMAC */
		.pfkey_ok = false,
		/* af_key.c truncates hmac(sha256) to the 96 bits of draft-ietf-ipsec-ciph-sha-256-00. */
		.pfkey_why = "Linux PF_KEY forces a 96-bit ICV on hmac(sha256) instead of RFC 4868's "
			     "128 bits; use aes-cbc-256-hmac-sha512 (or aes-cbc-256-hmac-sha384)",
	},
	{
		.name = "aes-cbc-256-hmac-sha384",
		.keymat_len = 80,
		.enc_key_len = 32,
		.auth_key_len = 48,
		.icv_bits = 192,
		.xfrm_enc = "cbc(aes)",
		.xfrm_auth = "hmac(sha384)",
		.sadb_ealg = 12, /* SADB_EALG_AESCBC */
		.sadb_aalg = 6,	 /* SADB_X_AALG_SHA2_384HMAC */
		.pfkey_ok = true,
	},
	{
		.name = "aes-cbc-256-hmac-sha512",
		.keymat_len = 96,
		.enc_key_len = 32,
		.auth_key_len = 64,
		.icv_bits = 256,
		.xfrm_enc = "cbc(aes)",
		.xfrm_auth = "hmac(sha512)",
		.sadb_ealg = 12, /* SADB_EALG_AESCBC */
		.sadb_aalg = 7,	 /* SADB_X_AALG_SHA2_512HMAC */
		.pfkey_ok = true,
	},
	{ .name = NULL },
};

bool conf_link_pfkey_ok(const struct conf_link *link, const char **why)
{
	const char *dummy;

	if (!why)
		why = &dummy;
	if (link->alg && !link->alg->pfkey_ok)
		*why = link->alg->pfkey_why;
	else if (link->esn == CONF_YES)
		*why = "esn = yes (PF_KEY has no extended sequence numbers)";
	else if (link->replay_window > CONF_REPLAY_MAX_PFKEY)
		*why = "a replay_window above PF_KEY's 32";
	else
		return true;
	return false;
}

const char *conf_kernel_name(enum conf_kernel k)
{
	switch (k) {
	case CONF_KERNEL_AUTO:
		return "auto";
	case CONF_KERNEL_PFKEY:
		return "pfkey";
	case CONF_KERNEL_XFRM:
		return "xfrm";
	case CONF_KERNEL_SIM:
		return "sim";
	}
	return "?";
}

const struct conf_alg *conf_alg_by_name(const char *name)
{
	if (!name)
		return NULL;
	for (const struct conf_alg *a = conf_algs; a->name; a++)
		if (!strcmp(a->name, name))
			return a;
	return NULL;
}

size_t conf_addr_len(const struct conf_addr *a)
{
	if (a->family == AF_INET)
		return 4;
	if (a->family == AF_INET6)
		return 16;
	return 0;
}

/* ---- Diagnostics ---- */

void conf_diag_init(struct conf_diag *diag)
{
	memset(diag, 0, sizeof(*diag));
}

void conf_diag_fini(struct conf_diag *diag)
{
	if (!diag)
		return;
	for (size_t i = 0; i < diag->count; i++)
		free(diag->msgs[i]);
	free(diag->msgs);
	memset(diag, 0, sizeof(*diag));
}

int conf_diag_add(struct conf_diag *diag, const char *file, unsigned line, const char *fmt, ...)
{
	char prefix[PATH_MAX + 32];
	char **msgs;
	char *msg;
	va_list ap;
	int plen, len;

	if (!diag)
		return 0;
	if (diag->count >= CONF_DIAG_MAX) {
		diag->dropped++;
		return 0;
	}
	if (line)
		plen = snprintf(prefix, sizeof(prefix), "%s:%u: ", file, line);
	else
		plen = snprintf(prefix, sizeof(prefix), "%s: ", file);
	if (plen < 0)
		return -EINVAL;
	if ((size_t)plen >= sizeof(prefix))
		plen = sizeof(prefix) - 1;
	va_start(ap, fmt);
	len = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (len < 0)
		return -EINVAL;
	msg = malloc((size_t)plen + (size_t)len + 1);
	if (!msg)
		return -ENOMEM;
	memcpy(msg, prefix, (size_t)plen);
	va_start(ap, fmt);
	vsnprintf(msg + plen, (size_t)len + 1, fmt, ap);
	va_end(ap);
	msgs = realloc(diag->msgs, (diag->count + 1) * sizeof(*msgs));
	if (!msgs) {
		free(msg);
		return -ENOMEM;
	}
	msgs[diag->count++] = msg;
	diag->msgs = msgs;
	return 0;
}

void conf_diag_print(const struct conf_diag *diag, FILE *f)
{
	for (size_t i = 0; i < diag->count; i++)
		fprintf(f, "%s\n", diag->msgs[i]);
	if (diag->dropped)
		fprintf(f, "(%zu more errors not shown; fix the ones above first)\n", diag->dropped);
}

/* ---- Durations ---- */

int conf_parse_duration(const char *s, uint64_t *secs)
{
	static const struct {
		char unit;
		uint64_t mult;
	} units[] = { { 'd', 86400 }, { 'h', 3600 }, { 'm', 60 }, { 's', 1 } };
	uint64_t total = 0;
	size_t next_unit = 0;
	bool any = false;

	if (!s || !*s)
		return -EINVAL;
	while (*s) {
		uint64_t n = 0;
		size_t u;

		if (*s < '0' || *s > '9')
			return -EINVAL;
		for (; *s >= '0' && *s <= '9'; s++) {
			if (n > (CONF_DURATION_MAX - (uint64_t)(*s - '0')) / 10)
				return -ERANGE;
			n = n * 10 + (uint64_t)(*s - '0');
		}
		for (u = next_unit; u < sizeof(units) / sizeof(units[0]); u++)
			if (units[u].unit == *s)
				break;
		if (u == sizeof(units) / sizeof(units[0]))
			return -EINVAL; /* no unit, unknown unit, or units out of order */
		if (n > CONF_DURATION_MAX / units[u].mult ||
		    total > CONF_DURATION_MAX - n * units[u].mult)
			return -ERANGE;
		total += n * units[u].mult;
		next_unit = u + 1;
		any = true;
		s++;
	}
	if (!any)
		return -EINVAL;
	*secs = total;
	return 0;
}

char *conf_format_duration(uint64_t secs, char buf[CONF_DURATION_STRLEN])
{
	uint64_t d = secs / 86400, h = secs / 3600 % 24, m = secs / 60 % 60, s = secs % 60;
	size_t off = 0;

	buf[0] = '\0';
	if (d)
		off += (size_t)snprintf(buf + off, CONF_DURATION_STRLEN - off, "%llud",
					(unsigned long long)d);
	if (h)
		off += (size_t)snprintf(buf + off, CONF_DURATION_STRLEN - off, "%lluh",
					(unsigned long long)h);
	if (m)
		off += (size_t)snprintf(buf + off, CONF_DURATION_STRLEN - off, "%llum",
					(unsigned long long)m);
	if (s || !off)
		snprintf(buf + off, CONF_DURATION_STRLEN - off, "%llus", (unsigned long long)s);
	return buf;
}

/* ---- Parser state ---- */

enum daemon_key {
	DK_KERNEL,
	DK_STATE_DIR,
	DK_CONTROL_SOCKET,
	DK_ALERT_COMMAND,
	DK_METRICS_FILE,
	DK_MAX_SA_AGE,
	DK_EVENT_RETENTION,
	DK_REFRESH_INTERVAL,
	DK_SIM_SOCKET,
	DK_SIM_CONNECT,
	DK_COUNT
};

static const char *const daemon_keys[DK_COUNT] = {
	[DK_KERNEL] = "kernel",
	[DK_STATE_DIR] = "state_dir",
	[DK_CONTROL_SOCKET] = "control_socket",
	[DK_ALERT_COMMAND] = "alert_command",
	[DK_METRICS_FILE] = "metrics_file",
	[DK_MAX_SA_AGE] = "max_sa_age",
	[DK_EVENT_RETENTION] = "event_retention",
	[DK_REFRESH_INTERVAL] = "refresh_interval",
	[DK_SIM_SOCKET] = "sim_socket",
	[DK_SIM_CONNECT] = "sim_connect",
};

enum link_key {
	LK_LOCAL,
	LK_REMOTE,
	LK_MODE,
	LK_LOCAL_SUBNET,
	LK_REMOTE_SUBNET,
	LK_ALGORITHM,
	LK_SECRET_FILE,
	LK_ROTATE_EVERY,
	LK_PHASE,
	LK_SPI_PREFIX,
	LK_LEAD,
	LK_GRACE,
	LK_HARD_SLACK,
	LK_POLICY,
	LK_ESN,
	LK_REPLAY_WINDOW,
	LK_COUNT
};

static const char *const link_keys[LK_COUNT] = {
	[LK_LOCAL] = "local",
	[LK_REMOTE] = "remote",
	[LK_MODE] = "mode",
	[LK_LOCAL_SUBNET] = "local_subnet",
	[LK_REMOTE_SUBNET] = "remote_subnet",
	[LK_ALGORITHM] = "algorithm",
	[LK_SECRET_FILE] = "secret_file",
	[LK_ROTATE_EVERY] = "rotate_every",
	[LK_PHASE] = "phase",
	[LK_SPI_PREFIX] = "spi_prefix",
	[LK_LEAD] = "lead",
	[LK_GRACE] = "grace",
	[LK_HARD_SLACK] = "hard_slack",
	[LK_POLICY] = "policy",
	[LK_ESN] = "esn",
	[LK_REPLAY_WINDOW] = "replay_window",
};

/* Where each key of a link was set (0: not set). */
struct link_lines {
	unsigned key[LK_COUNT];
};

enum section { SEC_NONE, SEC_DAEMON, SEC_LINK, SEC_BAD };

struct parser {
	const char *path; /* the file being read (cfg->path or a cfg->dropins entry); messages name it */
	bool dropin;      /* it is a conf.d file: [link NAME] sections only */
	const char *text;
	size_t len, pos;
	unsigned line;
	struct conf_diag *diag;
	struct config *cfg;
	struct link_lines *lines; /* parallel to cfg->links */
	size_t cap;
	enum section sec;
	size_t *names;     /* link names, open addressing: index + 1 into cfg->links */
	size_t names_size; /* a power of two, more than twice nlinks */
	unsigned daemon_section_line;
	unsigned daemon_key[DK_COUNT];
	bool errors;
	bool oom;
};

__attribute__((format(printf, 3, 4))) static void err(struct parser *p, unsigned line,
						       const char *fmt, ...)
{
	char buf[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	p->errors = true;
	if (conf_diag_add(p->diag, p->path, line, "%s", buf))
		p->oom = true;
}

/* Copies s for a message: at most 48 characters, non-printable bytes as \xNN. */
static const char *quote(char out[static 256], const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;

	for (size_t i = 0; i < n && s[i]; i++) {
		unsigned char c = (unsigned char)s[i];

		if (i == 48) {
			memcpy(out + o, "...", 3);
			o += 3;
			break;
		}
		if (c < 0x20 || c >= 0x7f || c == '\\') {
			out[o++] = '\\';
			out[o++] = 'x';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 15];
		} else {
			out[o++] = (char)c;
		}
	}
	out[o] = '\0';
	return out;
}

static const char *q(char out[static 256], const char *s)
{
	return quote(out, s, strlen(s));
}

static bool is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

static bool valid_link_name(const char *s, size_t n)
{
	if (n == 0 || n >= CONF_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '.' || c == '-'))
			return false;
	}
	return true;
}

static void link_defaults(struct conf_link *link)
{
	link->mode = CONF_MODE_TRANSPORT;
	link->alg = conf_alg_by_name(DEFAULT_ALG);
	snprintf(link->secret_file, sizeof(link->secret_file), KEY_DIR "/%s.key", link->name);
	link->rotate_every = 3600;
	link->phase_auto = true;
	link->spi_prefix_auto = true;
	link->hard_slack = 3600;
	link->policy = true;
}

static struct conf_link *link_new(struct parser *p, const char *name, size_t n)
{
	struct config *cfg = p->cfg;
	struct conf_link *link;

	if (cfg->nlinks == p->cap) {
		size_t cap = p->cap ? p->cap * 2 : 4;
		struct conf_link *links = realloc(cfg->links, cap * sizeof(*links));
		struct link_lines *lines;

		if (!links) {
			p->oom = true;
			return NULL;
		}
		cfg->links = links;
		lines = realloc(p->lines, cap * sizeof(*lines));
		if (!lines) {
			p->oom = true;
			return NULL;
		}
		p->lines = lines;
		p->cap = cap;
	}
	link = &cfg->links[cfg->nlinks];
	memset(link, 0, sizeof(*link));
	memset(&p->lines[cfg->nlinks], 0, sizeof(p->lines[0]));
	memcpy(link->name, name, n);
	link->name[n] = '\0';
	link->file = p->path;
	link->line = p->line;
	link_defaults(link);
	cfg->nlinks++;
	return link;
}

/* The name index's slot of name: where it is, or the empty slot it would take. */
static size_t *name_slot(struct parser *p, const char *name, size_t n)
{
	size_t mask = p->names_size - 1, h = 1469598103934665603u; /* FNV-1a */

	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)name[i]) * 1099511628211u;
	for (size_t i = h & mask;; i = (i + 1) & mask) {
		const char *other;

		if (!p->names[i])
			return &p->names[i];
		other = p->cfg->links[p->names[i] - 1].name;
		if (strlen(other) == n && !memcmp(other, name, n))
			return &p->names[i];
	}
}

/* Index link i's name (10,000 links: a hash, not a scan per [link] header). */
static void name_add(struct parser *p, size_t i)
{
	const char *name = p->cfg->links[i].name;

	if ((p->cfg->nlinks + 1) * 2 > p->names_size) {
		size_t size = p->names_size ? p->names_size * 2 : 64;
		size_t *names = calloc(size, sizeof(*names));

		if (!names) {
			p->oom = true;
			return;
		}
		free(p->names);
		p->names = names;
		p->names_size = size;
		for (size_t j = 0; j < i; j++)
			*name_slot(p, p->cfg->links[j].name, strlen(p->cfg->links[j].name)) = j + 1;
	}
	*name_slot(p, name, strlen(name)) = i + 1;
}

static void section_start(struct parser *p, const char *s, size_t n)
{
	char qb[256];

	while (n && is_blank(*s))
		s++, n--;
	while (n && is_blank(s[n - 1]))
		n--;
	if (n == 6 && !memcmp(s, "daemon", 6)) {
		if (p->dropin) {
			p->sec = SEC_BAD;
			err(p, p->line,
			    "[daemon] in a conf.d file; conf.d files hold [link NAME] sections only: "
			    "move these settings to the [daemon] section of %s",
			    p->cfg->path);
			return;
		}
		if (p->daemon_section_line)
			err(p, p->line,
			    "second [daemon] section (the first is at line %u); merge them into one",
			    p->daemon_section_line);
		else
			p->daemon_section_line = p->line;
		p->sec = SEC_DAEMON;
		return;
	}
	if (n >= 4 && !memcmp(s, "link", 4) && (n == 4 || is_blank(s[4]))) {
		const char *name = s + 4;
		size_t nlen = n - 4;

		p->sec = SEC_BAD;
		while (nlen && is_blank(*name))
			name++, nlen--;
		if (!nlen) {
			err(p, p->line, "[link] has no name; write [link NAME], e.g. [link office]");
			return;
		}
		if (!valid_link_name(name, nlen)) {
			err(p, p->line,
			    "invalid link name '%s'; use 1 to %d characters of A-Z a-z 0-9 _ . -",
			    quote(qb, name, nlen), CONF_NAME_MAX - 1);
			return;
		}
		if (p->names_size) {
			size_t dup = *name_slot(p, name, nlen);

			if (dup) {
				const struct conf_link *first = &p->cfg->links[dup - 1];

				if (first->file == p->path)
					err(p, p->line,
					    "duplicate link name '%s' (first defined at line %u); give "
					    "each link its own name",
					    quote(qb, name, nlen), first->line);
				else
					err(p, p->line,
					    "duplicate link name '%s' (first defined at %s:%u); give "
					    "each link its own name, or remove one of the two",
					    quote(qb, name, nlen), first->file, first->line);
				return;
			}
		}
		if (p->cfg->nlinks >= CONF_LINKS_MAX) {
			err(p, p->line, "too many links (at most %d); split the configuration",
			    CONF_LINKS_MAX);
			return;
		}
		if (link_new(p, name, nlen)) {
			p->sec = SEC_LINK;
			name_add(p, p->cfg->nlinks - 1);
		}
		return;
	}
	p->sec = SEC_BAD;
	err(p, p->line, "unknown section [%s]; the sections are [daemon] and [link NAME]",
	    quote(qb, s, n));
}

/* Classifies one line; writes "key=value" to out for inih, or leaves out empty. */
static void scan_line(struct parser *p, const char *s, size_t n, char *out, size_t outsz)
{
	char qb[256];
	const char *eq;
	size_t keylen;

	if (p->line == 1 && n >= 3 && !memcmp(s, "\xef\xbb\xbf", 3))
		s += 3, n -= 3;
	if (memchr(s, '\0', n)) {
		err(p, p->line, "line contains a NUL byte; save the file as plain text");
		return;
	}
	if (outsz < 4 || n > outsz - 3) {
		err(p, p->line, "line too long (%zu characters, at most %zu); shorten it", n,
		    outsz < 4 ? (size_t)0 : outsz - 3);
		return;
	}
	while (n && is_blank(*s))
		s++, n--;
	if (!n || *s == '#' || *s == ';')
		return;
	for (size_t i = 1; i < n; i++) {
		if ((s[i] == '#' || s[i] == ';') && is_blank(s[i - 1])) {
			n = i;
			break;
		}
	}
	while (n && is_blank(s[n - 1]))
		n--;
	if (*s == '[') {
		const char *close = memchr(s, ']', n);

		if (!close) {
			err(p, p->line, "section header '%s' has no closing ']'; write [daemon] or [link NAME]",
			    quote(qb, s, n));
			p->sec = SEC_BAD;
			return;
		}
		if ((size_t)(close - s) + 1 != n) {
			err(p, p->line, "unexpected text after ']' in '%s'; put comments after #",
			    quote(qb, s, n));
			p->sec = SEC_BAD;
			return;
		}
		section_start(p, s + 1, (size_t)(close - s) - 1);
		return;
	}
	eq = memchr(s, '=', n);
	if (!eq) {
		err(p, p->line, "'%s' is neither KEY = VALUE, nor a [section], nor a comment",
		    quote(qb, s, n));
		return;
	}
	keylen = (size_t)(eq - s);
	while (keylen && is_blank(s[keylen - 1]))
		keylen--;
	if (!keylen) {
		err(p, p->line, "missing key name before '='");
		return;
	}
	for (size_t i = 0; i < keylen; i++) {
		char c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '-')) {
			err(p, p->line, "invalid key name '%s'", quote(qb, s, keylen));
			return;
		}
	}
	memcpy(out, s, n);
	out[n] = '\0';
}

/* inih reader: one line of the text per call (see the comment at the top). */
static char *read_line(char *str, int num, void *stream)
{
	struct parser *p = stream;
	const char *start, *nl;
	size_t rest, n;

	if (p->pos >= p->len || num <= 0)
		return NULL;
	start = p->text + p->pos;
	rest = p->len - p->pos;
	nl = memchr(start, '\n', rest);
	n = nl ? (size_t)(nl - start) : rest;
	p->pos += n + (nl ? 1 : 0);
	p->line++;
	str[0] = '\0';
	scan_line(p, start, n, str, (size_t)num);
	return str;
}

/* ---- Values ---- */

static int lookup_key(const char *const *keys, int count, const char *name)
{
	for (int i = 0; i < count; i++)
		if (!strcmp(keys[i], name))
			return i;
	return -1;
}

static void list_keys(char *buf, size_t size, const char *const *keys, int count)
{
	size_t off = 0;

	buf[0] = '\0';
	for (int i = 0; i < count && off < size; i++)
		off += (size_t)snprintf(buf + off, size - off, "%s%s", i ? ", " : "", keys[i]);
}

static void set_path(struct parser *p, const char *key, const char *value, char *dst,
		     size_t size, bool optional)
{
	char qb[256];

	if (optional && !*value) {
		dst[0] = '\0';
		return;
	}
	if (value[0] != '/') {
		err(p, p->line, "%s must be an absolute path (starting with /), not '%s'", key,
		    q(qb, value));
		return;
	}
	if (strlen(value) >= size) {
		err(p, p->line, "%s is too long (at most %zu characters)", key, size - 1);
		return;
	}
	strcpy(dst, value);
}

static bool set_duration(struct parser *p, const char *key, const char *value, uint64_t *dst)
{
	char qb[256];
	size_t digits = strspn(value, "0123456789");
	int ret = conf_parse_duration(value, dst);

	if (ret == -ERANGE) {
		err(p, p->line, "%s = %s is too large; the most is 36500d", key, q(qb, value));
		return false;
	}
	if (ret && *value && !value[digits]) {
		err(p, p->line, "%s = %s has no unit; write e.g. %ss for seconds or %sm for minutes",
		    key, q(qb, value), value, value);
		return false;
	}
	if (ret) {
		err(p, p->line,
		    "%s = '%s' is not a duration; write e.g. 90s, 5m, 1h30m or 2d (units d h m s, "
		    "in that order)",
		    key, q(qb, value));
		return false;
	}
	return true;
}

static bool set_positive_duration(struct parser *p, const char *key, const char *value,
				  uint64_t *dst)
{
	if (!set_duration(p, key, value, dst))
		return false;
	if (*dst == 0) {
		err(p, p->line, "%s must be at least 1s", key);
		return false;
	}
	return true;
}

static void set_bool(struct parser *p, const char *key, const char *value, bool *dst)
{
	char qb[256];

	if (!strcmp(value, "yes") || !strcmp(value, "true"))
		*dst = true;
	else if (!strcmp(value, "no") || !strcmp(value, "false"))
		*dst = false;
	else
		err(p, p->line, "%s = '%s' is not a boolean; write yes, no, true or false", key,
		    q(qb, value));
}

static void set_replay_window(struct parser *p, const char *value, struct conf_link *link)
{
	char qb[256], *end;
	unsigned long v;

	if (!strcmp(value, "auto")) {
		link->replay_window = 0;
		return;
	}
	errno = 0;
	v = strtoul(value, &end, 10);
	if (!*value || *end || errno || value[0] == '-' || value[0] == '+' || v < 1 ||
	    v > CONF_REPLAY_MAX) {
		err(p, p->line,
		    "replay_window = '%s' is not a packet count from 1 to %d; write a number or auto",
		    q(qb, value), CONF_REPLAY_MAX);
		return;
	}
	link->replay_window = (uint32_t)v;
}

static bool addr_unspecified(const struct conf_addr *a)
{
	for (size_t i = 0; i < conf_addr_len(a); i++)
		if (a->bytes[i])
			return false;
	return true;
}

static bool parse_ip(const char *s, struct conf_addr *a)
{
	memset(a, 0, sizeof(*a));
	if (inet_pton(AF_INET, s, a->bytes) == 1) {
		a->family = AF_INET;
		a->prefixlen = 32;
		return true;
	}
	if (inet_pton(AF_INET6, s, a->bytes) == 1) {
		a->family = AF_INET6;
		a->prefixlen = 128;
		return true;
	}
	memset(a, 0, sizeof(*a));
	return false;
}

static void set_addr(struct parser *p, const char *key, const char *value, struct conf_addr *dst)
{
	char qb[256];
	struct conf_addr a;

	/* inet_pton only: a peer address must never depend on a naming service. */
	if (!parse_ip(value, &a)) {
		if (strchr(value, '/'))
			err(p, p->line,
			    "%s = '%s' has a prefix; %s is one IP address, e.g. 192.0.2.1", key,
			    q(qb, value), key);
		else
			err(p, p->line,
			    "%s = '%s' is not an IP address; IP literals only (sakeyd never resolves "
			    "host names), e.g. 192.0.2.1 or 2001:db8::1",
			    key, q(qb, value));
		return;
	}
	if (addr_unspecified(&a)) {
		err(p, p->line, "%s = %s is the unspecified address; write this link's real address",
		    key, q(qb, value));
		return;
	}
	*dst = a;
}

static void set_subnet(struct parser *p, const char *key, const char *value,
		       struct conf_addr *dst)
{
	char qb[256], ip[64];
	const char *slash = strchr(value, '/');
	struct conf_addr a;
	unsigned long plen;
	unsigned max;
	char *end;

	if (!slash || (size_t)(slash - value) >= sizeof(ip)) {
		err(p, p->line, "%s = '%s' is not a subnet; write ADDRESS/PREFIX, e.g. 10.1.0.0/16",
		    key, q(qb, value));
		return;
	}
	memcpy(ip, value, (size_t)(slash - value));
	ip[slash - value] = '\0';
	if (!parse_ip(ip, &a)) {
		err(p, p->line,
		    "%s = '%s': '%s' is not an IP address; IP literals only, e.g. 10.1.0.0/16", key,
		    q(qb, value), ip);
		return;
	}
	max = a.family == AF_INET ? 32 : 128;
	errno = 0;
	plen = strtoul(slash + 1, &end, 10);
	if (slash[1] < '0' || slash[1] > '9' || *end || errno || plen > max) {
		err(p, p->line, "%s = '%s' has a bad prefix length; use 0 to %u", key, q(qb, value),
		    max);
		return;
	}
	a.prefixlen = (uint8_t)plen;
	for (unsigned bit = (unsigned)plen; bit < max; bit++) {
		if (a.bytes[bit / 8] & (0x80 >> (bit % 8))) {
			err(p, p->line,
			    "%s = '%s' has bits set after the /%lu prefix; write the network "
			    "address",
			    key, q(qb, value), plen);
			return;
		}
	}
	*dst = a;
}

static void set_spi_prefix(struct parser *p, const char *value, struct conf_link *link)
{
	char qb[256];
	unsigned long long v;
	size_t n;

	if (!strcmp(value, "auto")) {
		link->spi_prefix_auto = true;
		link->spi_prefix = 0;
		return;
	}
	n = strlen(value);
	if (n < 3 || n > 18 || value[0] != '0' || (value[1] != 'x' && value[1] != 'X') ||
	    strspn(value + 2, "0123456789abcdefABCDEF") != n - 2) {
		err(p, p->line,
		    "spi_prefix = '%s' is not a hex number; write auto or 0x1 to 0xffffff", q(qb, value));
		return;
	}
	v = strtoull(value + 2, NULL, 16);
	if (v < 1 || v > 0xffffff) {
		err(p, p->line, "spi_prefix = %s is out of range; write auto or 0x1 to 0xffffff",
		    q(qb, value));
		return;
	}
	link->spi_prefix_auto = false;
	link->spi_prefix = (uint32_t)v;
}

static void set_daemon_key(struct parser *p, int key, const char *value)
{
	struct conf_daemon *d = &p->cfg->daemon;
	char qb[256];

	switch (key) {
	case DK_KERNEL:
		if (!strcmp(value, "auto"))
			d->kernel = CONF_KERNEL_AUTO;
		else if (!strcmp(value, "pfkey"))
			d->kernel = CONF_KERNEL_PFKEY;
		else if (!strcmp(value, "xfrm"))
			d->kernel = CONF_KERNEL_XFRM;
		else if (!strcmp(value, "sim"))
			d->kernel = CONF_KERNEL_SIM;
		else
			err(p, p->line, "kernel = '%s' is unknown; write auto, xfrm, pfkey or sim",
			    q(qb, value));
		break;
	case DK_STATE_DIR:
		set_path(p, "state_dir", value, d->state_dir, sizeof(d->state_dir), false);
		break;
	case DK_CONTROL_SOCKET:
		if (strlen(value) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
			err(p, p->line, "control_socket is too long for a Unix socket (at most %zu "
				     "characters); choose a shorter path",
			    sizeof(((struct sockaddr_un *)0)->sun_path) - 1);
			break;
		}
		set_path(p, "control_socket", value, d->control_socket, sizeof(d->control_socket),
			 false);
		break;
	case DK_ALERT_COMMAND:
		set_path(p, "alert_command", value, d->alert_command, sizeof(d->alert_command), true);
		break;
	case DK_METRICS_FILE:
		set_path(p, "metrics_file", value, d->metrics_file, sizeof(d->metrics_file), true);
		break;
	case DK_MAX_SA_AGE:
		set_positive_duration(p, "max_sa_age", value, &d->max_sa_age);
		break;
	case DK_EVENT_RETENTION:
		set_positive_duration(p, "event_retention", value, &d->event_retention);
		break;
	case DK_REFRESH_INTERVAL:
		set_positive_duration(p, "refresh_interval", value, &d->refresh_interval);
		break;
	case DK_SIM_SOCKET:
		if (strlen(value) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
			err(p, p->line, "sim_socket is too long for a Unix socket (at most %zu "
				     "characters); choose a shorter path",
			    sizeof(((struct sockaddr_un *)0)->sun_path) - 1);
			break;
		}
		set_path(p, "sim_socket", value, d->sim_socket, sizeof(d->sim_socket), true);
		break;
	case DK_SIM_CONNECT:
		if (strlen(value) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
			err(p, p->line, "sim_connect is too long for a Unix socket (at most %zu "
				     "characters); choose a shorter path",
			    sizeof(((struct sockaddr_un *)0)->sun_path) - 1);
			break;
		}
		set_path(p, "sim_connect", value, d->sim_connect, sizeof(d->sim_connect), true);
		break;
	}
}

/* sim_connect replaces the in-process simulator: only with kernel = sim, and not with sim_socket. */
static void validate_daemon(struct parser *p)
{
	const struct conf_daemon *d = &p->cfg->daemon;
	unsigned line = p->daemon_key[DK_SIM_CONNECT];

	if (!d->sim_connect[0])
		return;
	if (d->kernel != CONF_KERNEL_SIM)
		err(p, line, "sim_connect needs kernel = sim (it reaches a simulated SADB, never "
			     "the real kernel)");
	else if (d->sim_socket[0])
		err(p, line, "sim_connect and sim_socket (line %u) exclude each other: with "
			     "sim_connect there is no in-process simulator to share; let other "
			     "clients connect to the simulator's own socket",
		    p->daemon_key[DK_SIM_SOCKET]);
}

static void set_link_key(struct parser *p, struct conf_link *link, int key, const char *value)
{
	char qb[256], names[256];

	switch (key) {
	case LK_LOCAL:
		set_addr(p, "local", value, &link->local);
		break;
	case LK_REMOTE:
		set_addr(p, "remote", value, &link->remote);
		break;
	case LK_MODE:
		if (!strcmp(value, "transport"))
			link->mode = CONF_MODE_TRANSPORT;
		else if (!strcmp(value, "tunnel"))
			link->mode = CONF_MODE_TUNNEL;
		else
			err(p, p->line, "mode = '%s' is unknown; write transport or tunnel",
			    q(qb, value));
		break;
	case LK_LOCAL_SUBNET:
		set_subnet(p, "local_subnet", value, &link->local_subnet);
		break;
	case LK_REMOTE_SUBNET:
		set_subnet(p, "remote_subnet", value, &link->remote_subnet);
		break;
	case LK_ALGORITHM: {
		const struct conf_alg *alg = conf_alg_by_name(value);
		size_t off = 0;

		if (alg) {
			link->alg = alg;
			break;
		}
		names[0] = '\0';
		for (const struct conf_alg *a = conf_algs; a->name && off < sizeof(names); a++)
			off += (size_t)snprintf(names + off, sizeof(names) - off, "%s%s",
						a == conf_algs ? "" : ", ", a->name);
		err(p, p->line, "unknown algorithm '%s'; valid algorithms: %s", q(qb, value), names);
		break;
	}
	case LK_SECRET_FILE:
		set_path(p, "secret_file", value, link->secret_file, sizeof(link->secret_file),
			 false);
		break;
	case LK_ROTATE_EVERY:
		set_positive_duration(p, "rotate_every", value, &link->rotate_every);
		break;
	case LK_PHASE:
		if (!strcmp(value, "auto")) {
			link->phase_auto = true;
			link->phase = 0;
		} else if (set_duration(p, "phase", value, &link->phase)) {
			link->phase_auto = false;
		}
		break;
	case LK_SPI_PREFIX:
		set_spi_prefix(p, value, link);
		break;
	case LK_LEAD:
		set_duration(p, "lead", value, &link->lead);
		break;
	case LK_GRACE:
		set_duration(p, "grace", value, &link->grace);
		break;
	case LK_HARD_SLACK:
		set_duration(p, "hard_slack", value, &link->hard_slack);
		break;
	case LK_POLICY:
		set_bool(p, "policy", value, &link->policy);
		break;
	case LK_ESN:
		if (!strcmp(value, "auto")) {
			link->esn = CONF_AUTO;
		} else {
			bool on = false;

			set_bool(p, "esn", value, &on);
			link->esn = on ? CONF_YES : CONF_NO;
		}
		break;
	case LK_REPLAY_WINDOW:
		set_replay_window(p, value, link);
		break;
	}
}

/* inih handler; the line number comes from read_line() (see the top of the file). */
static int on_key(void *user, const char *section, const char *name, const char *value,
		  int lineno)
{
	struct parser *p = user;
	char qb[256], keys[512];
	unsigned *seen;
	int key;

	switch (p->sec) {
	case SEC_NONE:
		err(p, p->line, "key '%s' is outside any section; put it under [daemon] or "
				"[link NAME]",
		    q(qb, name));
		return 1;
	case SEC_BAD:
		return 1; /* the section header was reported */
	case SEC_DAEMON:
		key = lookup_key(daemon_keys, DK_COUNT, name);
		if (key < 0) {
			list_keys(keys, sizeof(keys), daemon_keys, DK_COUNT);
			if (lookup_key(link_keys, LK_COUNT, name) >= 0)
				err(p, p->line, "key '%s' belongs in a [link NAME] section, not in "
						"[daemon]",
				    name);
			else
				err(p, p->line, "unknown key '%s' in [daemon]; valid keys: %s",
				    q(qb, name), keys);
			return 1;
		}
		seen = &p->daemon_key[key];
		break;
	case SEC_LINK:
		key = lookup_key(link_keys, LK_COUNT, name);
		if (key < 0) {
			list_keys(keys, sizeof(keys), link_keys, LK_COUNT);
			if (lookup_key(daemon_keys, DK_COUNT, name) >= 0)
				err(p, p->line, "key '%s' belongs in the [daemon] section, not in "
						"[link %s]",
				    name, p->cfg->links[p->cfg->nlinks - 1].name);
			else
				err(p, p->line, "unknown key '%s' in [link %s]; valid keys: %s",
				    q(qb, name), p->cfg->links[p->cfg->nlinks - 1].name, keys);
			return 1;
		}
		seen = &p->lines[p->cfg->nlinks - 1].key[key];
		break;
	default:
		return 1;
	}
	if (*seen) {
		err(p, p->line, "duplicate key '%s' (first set at line %u); keep only one", name,
		    *seen);
		return 1;
	}
	*seen = p->line;
	if (p->sec == SEC_DAEMON)
		set_daemon_key(p, key, value);
	else
		set_link_key(p, &p->cfg->links[p->cfg->nlinks - 1], key, value);
	return 1;
}

/* ---- Validation ---- */

static unsigned first_line(const struct link_lines *l, const struct conf_link *link, int a, int b)
{
	if (l->key[a])
		return l->key[a];
	if (b >= 0 && l->key[b])
		return l->key[b];
	return link->line;
}

static void validate_link(struct parser *p, struct conf_link *link, const struct link_lines *l)
{
	const struct conf_daemon *d = &p->cfg->daemon;
	char b1[CONF_DURATION_STRLEN], b2[CONF_DURATION_STRLEN], b3[CONF_DURATION_STRLEN];
	uint64_t quarter = link->rotate_every / 4;
	bool subnets = link->local_subnet.family || link->remote_subnet.family;

	if (!l->key[LK_LOCAL])
		err(p, link->line, "link %s has no local address; add local = <this host's IP>",
		    link->name);
	if (!l->key[LK_REMOTE])
		err(p, link->line, "link %s has no remote address; add remote = <the peer's IP>",
		    link->name);
	if (link->local.family && link->remote.family) {
		if (link->local.family != link->remote.family)
			err(p, l->key[LK_REMOTE],
			    "link %s mixes address families: local is %s, remote is %s; use two "
			    "IPv4 or two IPv6 addresses",
			    link->name, link->local.family == AF_INET ? "IPv4" : "IPv6",
			    link->remote.family == AF_INET ? "IPv4" : "IPv6");
		else if (!memcmp(link->local.bytes, link->remote.bytes, conf_addr_len(&link->local)))
			err(p, l->key[LK_REMOTE],
			    "link %s: remote is the same address as local; remote is the peer's "
			    "address",
			    link->name);
	}

	if (link->mode == CONF_MODE_TUNNEL) {
		if (!l->key[LK_LOCAL_SUBNET] || !l->key[LK_REMOTE_SUBNET])
			err(p, first_line(l, link, LK_MODE, -1),
			    "link %s: mode = tunnel needs local_subnet and remote_subnet (the "
			    "networks behind each peer)",
			    link->name);
		else if (link->local_subnet.family && link->remote_subnet.family &&
			 link->local_subnet.family != link->remote_subnet.family)
			err(p, l->key[LK_REMOTE_SUBNET],
			    "link %s: local_subnet and remote_subnet are of different address "
			    "families; use two IPv4 or two IPv6 subnets",
			    link->name);
	} else if (l->key[LK_LOCAL_SUBNET] || l->key[LK_REMOTE_SUBNET] || subnets) {
		err(p, first_line(l, link, LK_LOCAL_SUBNET, LK_REMOTE_SUBNET),
		    "link %s: local_subnet and remote_subnet are for mode = tunnel only; remove them "
		    "or set mode = tunnel",
		    link->name);
	}

	if (d->kernel == CONF_KERNEL_PFKEY || d->kernel == CONF_KERNEL_SIM) {
		const char *kname = conf_kernel_name(d->kernel);

		if (link->alg && !link->alg->pfkey_ok)
			err(p, first_line(l, link, LK_ALGORITHM, -1),
			    "link %s: algorithm %s cannot be installed by kernel = %s: %s", link->name,
			    link->alg->name, kname, link->alg->pfkey_why);
		if (link->esn == CONF_YES)
			err(p, l->key[LK_ESN],
			    "link %s: esn = yes needs kernel = xfrm or auto (PF_KEY has no extended "
			    "sequence numbers); set esn = no",
			    link->name);
		if (link->replay_window > CONF_REPLAY_MAX_PFKEY)
			err(p, l->key[LK_REPLAY_WINDOW],
			    "link %s: replay_window %u is above PF_KEY's %d (kernel = %s); lower it or "
			    "use kernel = xfrm",
			    link->name, (unsigned)link->replay_window, CONF_REPLAY_MAX_PFKEY, kname);
	}

	if (!l->key[LK_LEAD])
		link->lead = quarter < 60 ? quarter : 60;
	if (!l->key[LK_GRACE])
		link->grace = quarter < 60 ? quarter : 60;
	if (link->rotate_every && link->lead + link->grace >= link->rotate_every)
		err(p, first_line(l, link, LK_LEAD, LK_GRACE),
		    "link %s: lead (%s) + grace (%s) must be less than rotate_every (%s); shorten "
		    "them or rotate less often",
		    link->name, conf_format_duration(link->lead, b1),
		    conf_format_duration(link->grace, b2),
		    conf_format_duration(link->rotate_every, b3));
	if (!link->phase_auto && link->rotate_every && link->phase >= link->rotate_every)
		err(p, l->key[LK_PHASE],
		    "link %s: phase (%s) must be less than rotate_every (%s); use a smaller phase "
		    "or auto",
		    link->name, conf_format_duration(link->phase, b1),
		    conf_format_duration(link->rotate_every, b2));
}

struct prefix_ref {
	uint32_t prefix;
	size_t link;
};

static int cmp_prefix(const void *a, const void *b)
{
	const struct prefix_ref *x = a, *y = b;

	if (x->prefix != y->prefix)
		return x->prefix < y->prefix ? -1 : 1;
	return x->link < y->link ? -1 : x->link > y->link;
}

/* Explicit spi_prefix collisions; auto ones are resolved and checked by rotate/. */
static void check_spi_prefixes(struct parser *p)
{
	struct config *cfg = p->cfg;
	struct prefix_ref *refs;
	size_t n = 0;

	if (cfg->nlinks < 2)
		return;
	refs = calloc(cfg->nlinks, sizeof(*refs));
	if (!refs) {
		p->oom = true;
		return;
	}
	for (size_t i = 0; i < cfg->nlinks; i++)
		if (!cfg->links[i].spi_prefix_auto && cfg->links[i].spi_prefix)
			refs[n++] = (struct prefix_ref){ cfg->links[i].spi_prefix, i };
	qsort(refs, n, sizeof(*refs), cmp_prefix);
	for (size_t i = 1; i < n; i++) {
		const struct conf_link *first, *second;
		size_t j = i - 1;

		if (refs[i].prefix != refs[j].prefix)
			continue;
		while (j > 0 && refs[j - 1].prefix == refs[i].prefix)
			j--;
		first = &cfg->links[refs[j].link];
		second = &cfg->links[refs[i].link];
		p->path = second->file;
		if (first->file == second->file)
			err(p, p->lines[refs[i].link].key[LK_SPI_PREFIX],
			    "links %s and %s (line %u) both use spi_prefix 0x%x; give each link its "
			    "own spi_prefix",
			    second->name, first->name, p->lines[refs[j].link].key[LK_SPI_PREFIX],
			    (unsigned)second->spi_prefix);
		else
			err(p, p->lines[refs[i].link].key[LK_SPI_PREFIX],
			    "links %s and %s (%s:%u) both use spi_prefix 0x%x; give each link its "
			    "own spi_prefix",
			    second->name, first->name, first->file,
			    p->lines[refs[j].link].key[LK_SPI_PREFIX], (unsigned)second->spi_prefix);
	}
	free(refs);
}

static void daemon_defaults(struct conf_daemon *d)
{
	d->kernel = CONF_KERNEL_AUTO;
	strcpy(d->state_dir, "/var/lib/sakeyd");
	strcpy(d->control_socket, "/run/sakeyd/control.sock");
	d->max_sa_age = 24 * 3600;
	d->event_retention = 30 * 86400;
	d->refresh_interval = 10;
}

int conf_parse_files(const struct conf_text *files, size_t nfiles, struct config **out,
		     struct conf_diag *diag)
{
	struct parser p = { .diag = diag };
	const char *path = files[0].path;
	int ret;

	*out = NULL;
	p.cfg = calloc(1, sizeof(*p.cfg));
	if (!p.cfg)
		return -ENOMEM;
	if (strlen(path) >= sizeof(p.cfg->path)) {
		free(p.cfg);
		conf_diag_add(diag, "config", 0, "path is too long");
		return -ENAMETOOLONG;
	}
	strcpy(p.cfg->path, path);
	daemon_defaults(&p.cfg->daemon);
	if (nfiles > 1) {
		p.cfg->dropins = calloc(nfiles - 1, sizeof(*p.cfg->dropins));
		if (!p.cfg->dropins)
			p.oom = true;
	}

	for (size_t i = 0; i < nfiles && !p.oom; i++) {
		if (i) {
			char *copy = strdup(files[i].path);

			if (!copy) {
				p.oom = true;
				break;
			}
			p.cfg->dropins[p.cfg->ndropins++] = copy;
			p.path = copy;
		} else {
			p.path = p.cfg->path;
		}
		p.dropin = i > 0;
		p.text = files[i].text;
		p.len = files[i].len;
		p.pos = 0;
		p.line = 0;
		p.sec = SEC_NONE;
		/* on_key() and read_line() report every error themselves; inih's result adds nothing. */
		ini_parse_stream(read_line, &p, on_key, &p);
	}

	if (!p.oom) {
		for (size_t i = 0; i < p.cfg->nlinks; i++) {
			p.path = p.cfg->links[i].file;
			validate_link(&p, &p.cfg->links[i], &p.lines[i]);
		}
		check_spi_prefixes(&p);
		p.path = p.cfg->path;
		validate_daemon(&p);
	}
	p.cfg->daemon.alert_command_line = p.daemon_key[DK_ALERT_COMMAND];
	p.cfg->daemon.state_dir_line = p.daemon_key[DK_STATE_DIR];
	free(p.lines);
	free(p.names);
	ret = p.oom ? -ENOMEM : p.errors ? -EINVAL : 0;
	if (ret) {
		conf_free(p.cfg);
		return ret;
	}
	*out = p.cfg;
	return 0;
}

int conf_parse(const char *path, const char *text, size_t len, struct config **out,
	       struct conf_diag *diag)
{
	const struct conf_text file = { path, text, len };

	return conf_parse_files(&file, 1, out, diag);
}

/*
 * Reads path into *text (malloc'd, *len bytes). With trust, the open file
 * and its directories are checked as CONF_TRUST_CONFIG for euid first: the
 * first refusal goes to *untrusted (if it holds 0) and the text is read
 * anyway, so that every error is reported.
 */
static int read_text(const char *path, bool trust, uid_t euid, int *untrusted, char **text,
		     size_t *out_len, struct conf_diag *diag)
{
	char *buf = NULL;
	size_t len = 0, cap;
	struct stat st;
	int fd, ret;

	*text = NULL;
	*out_len = 0;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		ret = -errno;
		conf_diag_add(diag, path, 0, "cannot open: %s; check the path given with -c",
			      strerror(-ret));
		return ret;
	}
	if (fstat(fd, &st)) {
		ret = -errno;
		conf_diag_add(diag, path, 0, "cannot stat: %s", strerror(-ret));
		goto cleanup;
	}
	if (!S_ISREG(st.st_mode)) {
		ret = -EINVAL;
		conf_diag_add(diag, path, 0, "not a regular file; give the path of the config file "
					      "(in conf.d: remove it, or rename it not to end in .conf)");
		goto cleanup;
	}
	if (trust) {
		ret = conf_trust_fd(fd, path, CONF_TRUST_CONFIG, euid, NULL, 0, diag);
		if (ret && !*untrusted)
			*untrusted = ret;
	}
	/* Sized by the file, not the limit: the daemon's memory is locked (mlockall). */
	cap = st.st_size < CONF_FILE_MAX ? (size_t)st.st_size + 1 : (size_t)CONF_FILE_MAX + 1;
	buf = malloc(cap);
	if (!buf) {
		ret = -ENOMEM;
		goto cleanup;
	}
	for (;;) {
		ssize_t n;

		if (len == cap && cap <= CONF_FILE_MAX) { /* it grew since fstat */
			size_t grown = cap * 2 < (size_t)CONF_FILE_MAX + 1 ? cap * 2 :
									(size_t)CONF_FILE_MAX + 1;
			char *nb = realloc(buf, grown);

			if (!nb) {
				ret = -ENOMEM;
				goto cleanup;
			}
			buf = nb;
			cap = grown;
		}
		n = read(fd, buf + len, cap - len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			ret = -errno;
			conf_diag_add(diag, path, 0, "cannot read: %s", strerror(-ret));
			goto cleanup;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len > CONF_FILE_MAX) {
			ret = -EFBIG;
			conf_diag_add(diag, path, 0, "larger than %d bytes; is this the config file?",
				      CONF_FILE_MAX);
			goto cleanup;
		}
	}
	*text = buf;
	*out_len = len;
	buf = NULL;
	ret = 0;
cleanup:
	free(buf);
	close(fd);
	return ret;
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * The conf.d files of path: <dir of path>/conf.d/NAME.conf, NAME not starting
 * with '.', sorted by strcmp(). *names (each and the array malloc'd) gets
 * their full paths, *n how many. A missing directory is none; another error
 * is reported. Returns 0, -ENOMEM, -E2BIG (too many) or -errno of opendir.
 */
static int list_dropins(const char *path, char ***names, size_t *n, struct conf_diag *diag)
{
	const char *slash = strrchr(path, '/');
	size_t dirlen = slash ? (size_t)(slash - path) : 1, cap = 0, sfx = strlen(CONF_DROPIN_SUFFIX);
	char dir[PATH_MAX];
	struct dirent *de;
	char **list = NULL;
	DIR *d;
	int ret = 0;

	*names = NULL;
	*n = 0;
	if (dirlen + sizeof("/" CONF_DROPIN_DIR) > sizeof(dir))
		return -ENAMETOOLONG;
	if (slash)
		memcpy(dir, path, dirlen);
	else
		dir[0] = '.';
	memcpy(dir + dirlen, "/" CONF_DROPIN_DIR, sizeof("/" CONF_DROPIN_DIR));
	d = opendir(dir);
	if (!d) {
		ret = -errno;
		if (ret == -ENOENT)
			return 0;
		conf_diag_add(diag, dir, 0, "cannot read the directory: %s; fix its permissions or "
					    "remove it",
			      strerror(-ret));
		return ret;
	}
	while ((errno = 0, de = readdir(d))) {
		size_t len = strlen(de->d_name);
		char *full;

		if (de->d_name[0] == '.' || len <= sfx ||
		    strcmp(de->d_name + len - sfx, CONF_DROPIN_SUFFIX))
			continue;
		if (*n >= CONF_DROPINS_MAX) {
			conf_diag_add(diag, dir, 0, "more than %d *.conf files; merge some of them",
				      CONF_DROPINS_MAX);
			ret = -E2BIG;
			break;
		}
		if (*n == cap) {
			size_t ncap = cap ? cap * 2 : 16;
			char **nl = realloc(list, ncap * sizeof(*nl));

			if (!nl) {
				ret = -ENOMEM;
				break;
			}
			list = nl;
			cap = ncap;
		}
		full = malloc(strlen(dir) + 1 + len + 1);
		if (!full) {
			ret = -ENOMEM;
			break;
		}
		sprintf(full, "%s/%s", dir, de->d_name);
		list[(*n)++] = full;
	}
	if (!ret && errno) {
		ret = -errno;
		conf_diag_add(diag, dir, 0, "cannot read the directory: %s", strerror(-ret));
	}
	closedir(d);
	if (ret) {
		for (size_t i = 0; i < *n; i++)
			free(list[i]);
		free(list);
		*n = 0;
		return ret;
	}
	if (*n)
		qsort(list, *n, sizeof(*list), cmp_names);
	*names = list;
	return 0;
}

/*
 * Reads and parses path and its conf.d files (conf_load()). With trust,
 * each file is checked as read_text() says; *untrusted gets the first
 * refusal.
 */
static int load(const char *path, bool trust, uid_t euid, int *untrusted, struct config **out,
		struct conf_diag *diag)
{
	struct conf_text *files = NULL;
	char **names = NULL, **texts = NULL;
	size_t n = 0, nread = 0;
	int ret, first = 0;

	*out = NULL;
	ret = list_dropins(path, &names, &n, diag);
	if (ret)
		return ret;
	files = calloc(n + 1, sizeof(*files));
	texts = calloc(n + 1, sizeof(*texts));
	if (!files || !texts) {
		ret = -ENOMEM;
		goto cleanup;
	}
	/* A conf.d file that cannot be read is left out of the parse, whose errors still count. */
	for (size_t i = 0; i <= n; i++) {
		const char *name = i ? names[i - 1] : path;
		size_t len = 0;

		ret = read_text(name, trust, euid, untrusted, &texts[nread], &len, diag);
		if (ret && !i)
			goto cleanup; /* no main file: nothing to add conf.d to */
		if (ret) {
			first = first ? first : ret;
			continue;
		}
		files[nread] = (struct conf_text){ name, texts[nread], len };
		nread++;
	}
	ret = conf_parse_files(files, nread, out, diag);
	if (!ret && first) {
		conf_free(*out);
		*out = NULL;
	}
	ret = ret ? ret : first;
cleanup:
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	for (size_t i = 0; texts && i <= n; i++)
		free(texts[i]);
	free(names);
	free(texts);
	free(files);
	return ret;
}

int conf_load(const char *path, struct config **out, struct conf_diag *diag)
{
	return load(path, false, 0, NULL, out, diag);
}

int conf_load_daemon(const char *path, uid_t euid, void (*before_secrets)(const struct config *),
		     struct config **out, struct conf_diag *diag)
{
	struct config *cfg = NULL;
	int untrusted = 0, ret, err;

	*out = NULL;
	ret = load(path, true, euid, &untrusted, &cfg, diag);
	if (ret)
		return ret;
	ret = untrusted;
	err = conf_check_files(cfg, euid, diag);
	ret = ret ? ret : err;
	if (before_secrets)
		before_secrets(cfg);
	err = conf_load_secrets(cfg, euid, diag);
	ret = ret ? ret : err;
	if (ret) {
		conf_free(cfg);
		return ret;
	}
	*out = cfg;
	return 0;
}

void conf_free(struct config *cfg)
{
	if (!cfg)
		return;
	for (size_t i = 0; i < cfg->nlinks; i++) {
		OPENSSL_secure_clear_free(cfg->links[i].secret, CONF_SECRET_LEN);
		cfg->links[i].secret = NULL;
	}
	free(cfg->links);
	for (size_t i = 0; i < cfg->ndropins; i++)
		free(cfg->dropins[i]);
	free(cfg->dropins);
	free(cfg);
}
