/* SPDX-License-Identifier: ISC */
/* The configuration model: daemon settings, links, algorithms; parsing and validation. */
#ifndef SAKEYD_CONF_H
#define SAKEYD_CONF_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define CONF_DEFAULT_PATH "/etc/sakeyd/sakeyd.conf"
#define CONF_NAME_MAX 64
#define CONF_SECRET_LEN 32

/* An IP address (and prefix, for subnets). bytes in network order, 4 or 16 used. */
struct conf_addr {
	uint8_t family; /* AF_INET or AF_INET6 */
	uint8_t prefixlen;
	uint8_t bytes[16];
};

/* Number of address bytes for a family: 4, 16, or 0. */
size_t conf_addr_len(const struct conf_addr *a);

enum conf_kernel {
	CONF_KERNEL_PFKEY = 0,
	CONF_KERNEL_SIM,
};

/* IPsec modes, numbered as PF_KEY / XFRM number them. */
enum conf_mode {
	CONF_MODE_TRANSPORT = 1,
	CONF_MODE_TUNNEL = 2,
};

/* One row of DESIGN.md's algorithm table. */
struct conf_alg {
	const char *name;      /* as in the config */
	uint16_t keymat_len;   /* L: HKDF output length */
	uint16_t enc_key_len;  /* first bytes of keymat: encryption key (with salt for GCM) */
	uint16_t auth_key_len; /* following bytes: integrity key (0 for AEAD) */
	uint16_t icv_bits;
	const char *xfrm_enc;  /* kernel crypto names, NULL where not used */
	const char *xfrm_auth;
	const char *xfrm_aead;
	uint8_t sadb_ealg; /* PF_KEY ids (SADB_EALG_*, SADB_AALG_*), 0 if none */
	uint8_t sadb_aalg;
	bool pfkey_ok;          /* Linux PF_KEY installs it exactly as specified */
	const char *pfkey_why;  /* why not, naming the alternative; NULL if pfkey_ok */
};

/* Look up an algorithm by its config name; NULL if unknown. */
const struct conf_alg *conf_alg_by_name(const char *name);
/* The table, terminated by an entry with name == NULL. */
extern const struct conf_alg conf_algs[];

struct conf_link {
	char name[CONF_NAME_MAX];
	unsigned line; /* line of the [link NAME] header */
	struct conf_addr local, remote;
	enum conf_mode mode;
	struct conf_addr local_subnet, remote_subnet; /* tunnel mode; family 0 if unset */
	const struct conf_alg *alg;
	char secret_file[PATH_MAX];
	uint64_t rotate_every; /* seconds, >= 1 */
	bool phase_auto;
	uint64_t phase; /* seconds in [0, rotate_every); resolved by rotate/ if phase_auto */
	bool spi_prefix_auto;
	uint32_t spi_prefix; /* 1..0xffffff; resolved by rotate/ if spi_prefix_auto */
	uint64_t lead, grace, hard_slack; /* seconds */
	bool policy;
	/* The 32-byte secret, in OpenSSL's secure heap; NULL until conf_load_secrets(). */
	uint8_t *secret;
};

struct conf_daemon {
	enum conf_kernel kernel;
	char state_dir[PATH_MAX];
	char control_socket[PATH_MAX];
	char alert_command[PATH_MAX]; /* "" if unset */
	char metrics_file[PATH_MAX];  /* "" if unset */
	uint64_t max_sa_age;          /* seconds */
	uint64_t event_retention;     /* seconds */
	uint64_t refresh_interval;    /* seconds */
};

struct config {
	char path[PATH_MAX];
	struct conf_daemon daemon;
	struct conf_link *links;
	size_t nlinks;
};

#endif
