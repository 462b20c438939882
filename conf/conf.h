/* SPDX-License-Identifier: ISC */
/* The configuration model: daemon settings, links, algorithms; parsing and validation. */
#ifndef SAKEYD_CONF_H
#define SAKEYD_CONF_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#define CONF_DEFAULT_PATH "/etc/sakeyd/sakeyd.conf"
#define CONF_NAME_MAX 64
/* secret_file paths: bounded, not PATH_MAX, since every link holds one (locked) copy. */
#define CONF_SECRET_PATH_MAX 256
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
	CONF_KERNEL_AUTO = 0, /* PF_KEY where the kernel has it and every link fits it, else XFRM */
	CONF_KERNEL_PFKEY,
	CONF_KERNEL_XFRM,
	CONF_KERNEL_SIM,
};

/* A yes/no setting whose default depends on the kernel backend. */
enum conf_tristate {
	CONF_AUTO = 0,
	CONF_NO,
	CONF_YES,
};

/* XFRM's largest replay window (XFRMA_REPLAY_ESN_MAX bits); PF_KEY's (af_key caps it). */
#define CONF_REPLAY_MAX 4096
#define CONF_REPLAY_MAX_PFKEY 32
/* Defaults: PF_KEY's cap, and RFC 4303's advice for ESN at high rates. */
#define CONF_REPLAY_DEFAULT_PFKEY 32
#define CONF_REPLAY_DEFAULT_XFRM 128

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

/* "auto", "pfkey", "xfrm" or "sim". */
const char *conf_kernel_name(enum conf_kernel k);

/* Look up an algorithm by its config name; NULL if unknown. */
const struct conf_alg *conf_alg_by_name(const char *name);
/* The table, terminated by an entry with name == NULL. */
extern const struct conf_alg conf_algs[];

struct conf_link {
	char name[CONF_NAME_MAX];
	/* Where the [link NAME] header is: the main file or a conf.d file (owned by the config). */
	const char *file;
	unsigned line;
	struct conf_addr local, remote;
	enum conf_mode mode;
	struct conf_addr local_subnet, remote_subnet; /* tunnel mode; family 0 if unset */
	const struct conf_alg *alg;
	char secret_file[CONF_SECRET_PATH_MAX];
	uint64_t rotate_every; /* seconds, >= 1 */
	bool phase_auto;
	uint64_t phase; /* seconds in [0, rotate_every); resolved by rotate/ if phase_auto */
	bool spi_prefix_auto;
	uint32_t spi_prefix; /* 1..0xffffff; resolved by rotate/ if spi_prefix_auto */
	uint64_t lead, grace, hard_slack; /* seconds */
	bool policy;
	/* Extended sequence numbers: auto is on with XFRM, off with PF_KEY (which has none). */
	enum conf_tristate esn;
	uint32_t replay_window; /* packets; 0 = auto (32 with PF_KEY, 128 with XFRM) */
	/* The 32-byte secret, in OpenSSL's secure heap; NULL until conf_load_secrets(). */
	uint8_t *secret;
};

/*
 * Whether Linux PF_KEY can install link's SAs as configured: its algorithm,
 * ESN (never) and replay window (at most 32). If not, *why (if non-NULL)
 * says which setting needs XFRM.
 */
bool conf_link_pfkey_ok(const struct conf_link *link, const char **why);

struct conf_daemon {
	enum conf_kernel kernel;
	char state_dir[PATH_MAX];
	char control_socket[PATH_MAX];
	char alert_command[PATH_MAX]; /* "" if unset */
	unsigned alert_command_line;  /* where state_dir and alert_command were set; 0: default */
	unsigned state_dir_line;
	char metrics_file[PATH_MAX];  /* "" if unset */
	uint64_t max_sa_age;          /* seconds */
	uint64_t event_retention;     /* seconds */
	uint64_t refresh_interval;    /* seconds */
	/* kernel = sim: also accept PF_KEY clients (other tools) here; "" if unset */
	char sim_socket[PATH_MAX];
	/*
	 * kernel = sim, tests: no in-process simulator; connect to one at this
	 * Unix SOCK_SEQPACKET socket (tests/sim/simd), which outlives the daemon. "" if unset.
	 */
	char sim_connect[PATH_MAX];
};

struct config {
	char path[PATH_MAX];
	/* The conf.d files read after path, in the order read (see conf_load()). */
	char **dropins;
	size_t ndropins;
	struct conf_daemon daemon;
	struct conf_link *links;
	size_t nlinks;
};

/* ---- Diagnostics ---- */

/* At most this many messages are kept; the rest are counted in `dropped`. */
#define CONF_DIAG_MAX 100

/*
 * Messages found by the parser and the secret loader, in the order found, each
 * "FILE:LINE: what is wrong; the fix" (or "FILE: ..." where no line applies).
 * Zero-initialise ({0}) or conf_diag_init() before use; conf_diag_fini() frees.
 */
struct conf_diag {
	char **msgs;
	size_t count;
	size_t dropped;
};

void conf_diag_init(struct conf_diag *diag);
void conf_diag_fini(struct conf_diag *diag);
/* Appends "FILE:LINE: " (": LINE" left out when line is 0) and the formatted text.
 * diag may be NULL (the message is dropped). Returns 0 or -ENOMEM. */
int conf_diag_add(struct conf_diag *diag, const char *file, unsigned line, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* Prints every message, one per line, then a note of dropped ones. */
void conf_diag_print(const struct conf_diag *diag, FILE *f);

/* ---- Durations ---- */

/* Largest accepted duration: 36500d (100 years). Sums of a few stay far below INT64_MAX. */
#define CONF_DURATION_MAX UINT64_C(3153600000)
/* Longest text conf_format_duration() writes, with the NUL. */
#define CONF_DURATION_STRLEN 32

/*
 * Parses a duration: one or more NUMBER UNIT groups, units d, h, m, s in that
 * order, each at most once, no spaces or signs: "90s", "5m", "1h30m", "2d", "0s".
 * A bare number is refused (is "60" seconds or minutes?). Returns 0, -EINVAL
 * (syntax) or -ERANGE (above CONF_DURATION_MAX).
 */
int conf_parse_duration(const char *s, uint64_t *secs);
/* Writes secs in the form conf_parse_duration() reads ("1h30m", "0s"). Returns buf. */
char *conf_format_duration(uint64_t secs, char buf[CONF_DURATION_STRLEN]);

/* ---- Parsing ---- */

/* Config files larger than this are refused by conf_load(): 10,000 links take about 2.5 MB. */
#define CONF_FILE_MAX (16 * 1024 * 1024)
/* Links per config; more is an error. */
#define CONF_LINKS_MAX 65536

/*
 * Parses and validates the config text (len bytes, need not be NUL-terminated);
 * path names the file in messages. Every error found is appended to diag (may
 * be NULL), not just the first. Lines are limited by libinih's line buffer
 * (197 characters with Debian's INI_MAX_LINE of 200); '#' and ';' start a
 * comment at the start of a line or after a blank. A config without any [link] is valid: the
 * daemon then only monitors SAs keyed by other tools. Secrets are not read
 * (see conf_load_secrets()); auto phase and spi_prefix are left for rotate/.
 * On success *out is a new config for conf_free(). Returns 0, -EINVAL (see
 * diag) or -ENOMEM.
 */
int conf_parse(const char *path, const char *text, size_t len, struct config **out,
	       struct conf_diag *diag);
/* The drop-in directory: <directory of the main file>/conf.d. */
#define CONF_DROPIN_DIR "conf.d"
#define CONF_DROPIN_SUFFIX ".conf"
/* Files in conf.d; more is an error. */
#define CONF_DROPINS_MAX 4096

/*
 * One more file for conf_parse_files(): its path (for messages and
 * conf_link.file) and its text.
 */
struct conf_text {
	const char *path;
	const char *text;
	size_t len;
};

/*
 * conf_parse() of several files read as one: files[0] is the main file,
 * the others conf.d files, parsed in this order as if appended, each
 * message naming the file its line is in. A conf.d file holds [link NAME]
 * sections only ([daemon] there is an error: daemon settings live in the
 * main file); a link name defined twice, in one file or two, is an error
 * naming both places. nfiles >= 1. Returns as conf_parse().
 */
int conf_parse_files(const struct conf_text *files, size_t nfiles, struct config **out,
		     struct conf_diag *diag);
/*
 * Reads path (at most CONF_FILE_MAX bytes), then every file of
 * <dir of path>/conf.d whose name ends in ".conf" and does not start with
 * '.', in strcmp() order (a missing conf.d is no error), and
 * conf_parse_files() them. Returns 0, -EINVAL (see diag), -ENOMEM, or -errno
 * of open/read (also reported in diag).
 */
int conf_load(const char *path, struct config **out, struct conf_diag *diag);
/*
 * Loads path as the daemon does (start-up, --check, reload): the config file,
 * each conf.d file (as conf_load()) and their directories must be trusted
 * (conf_trust_fd(), CONF_TRUST_CONFIG),
 * its text valid, alert_command and state_dir trusted (conf_check_files()),
 * and every secret file good (conf_load_secrets(), with euid). Every step
 * that can run does, so diag lists every refusal, not the first one. On
 * success *out is a new config with its secrets, for conf_free(). Returns 0
 * or the first error. before_secrets, if not NULL, runs on the parsed config
 * just before its secrets are read (start-up: the secure heap they go to).
 */
int conf_load_daemon(const char *path, uid_t euid, void (*before_secrets)(const struct config *),
		     struct config **out, struct conf_diag *diag);
/* Frees a config, wiping and releasing every link's secret. NULL is a no-op. */
void conf_free(struct config *cfg);

/* ---- Secret files (secret.c) ---- */

/*
 * Reads a link secret: path must be a regular file (not a symbolic link, FIFO,
 * directory, device), owned by expected_uid, without group or other permission
 * bits, with one link, on a local file system, in safe directories
 * (conf_trust_fd(), CONF_TRUST_SECRET), holding one line of 64 hex digits or
 * 44 base64 characters (32 bytes). On success *secret_out is CONF_SECRET_LEN bytes from
 * OpenSSL's secure heap, to be released with OPENSSL_secure_clear_free().
 * Every refusal is added to diag, naming the file and the fix; no key byte is
 * ever printed. Returns 0, -ENOENT/-EACCES/-ELOOP/... (open), -EPERM (owner,
 * mode, links, file system, directories), -EINVAL (not a regular file, bad
 * content), -EAGAIN (changed while checked), -ENOMEM.
 */
int conf_load_secret(const char *path, uid_t expected_uid, uint8_t **secret_out,
		     struct conf_diag *diag);
/*
 * Loads the secret of every link of cfg (replacing any already loaded).
 * Reports every bad file; on failure no link keeps a secret. Returns 0 or the
 * first error of conf_load_secret().
 */
int conf_load_secrets(struct config *cfg, uid_t expected_uid, struct conf_diag *diag);

/* ---- Trusted files (trust.c) ---- */

/*
 * What a file is for; the rules differ. Every kind: the directories from
 * the file's up to / (through realpath()) owned by root or the daemon's euid
 * and not writable by group or others, unless sticky (/tmp).
 */
enum conf_trust_kind {
	/* The config file: regular, owned by root or euid, no group/other write bit. */
	CONF_TRUST_CONFIG,
	/* alert_command: as the config file, and executable. */
	CONF_TRUST_PROGRAM,
	/* A secret: regular, owned by euid, no group/other bit, one link, a local file system. */
	CONF_TRUST_SECRET,
	/* state_dir: a directory owned by euid, no group/other write bit. */
	CONF_TRUST_STATE_DIR,
};

/*
 * Checks the open file fd, named path, as a file of kind for a daemon
 * running as euid. Each refusal is added to diag as "FILE:LINE: what is
 * wrong; fix: ..." where FILE:LINE is where path was set (file NULL: path
 * itself, no line). Returns 0, -EINVAL (wrong type), -EPERM (owner, mode,
 * links, file system, a parent directory), -EACCES (not executable),
 * -EAGAIN (the path changed while checked) or -errno of a stat.
 */
int conf_trust_fd(int fd, const char *path, enum conf_trust_kind kind, uid_t euid,
		  const char *file, unsigned line, struct conf_diag *diag);
/*
 * The directories a load has already found safe, so that 2,000 secret files
 * in one directory cost one walk up to /, not 2,000 (each a readlink and an
 * lstat per component). A file whose directory (as written) is in the memo
 * is checked as by conf_trust_fd, except the walk: its name in the
 * directory's real path must still be the open file (as after realpath()),
 * else the whole walk is taken. Only directories that passed are kept:
 * every file under a refused one reports it. Zero-initialised; one load
 * (its files are checked within moments of each other), then
 * conf_trust_memo_fini.
 */
#define CONF_TRUST_MEMO_MAX 64
struct conf_trust_dir;
struct conf_trust_memo {
	struct conf_trust_dir *dir;
	size_t n;
};
void conf_trust_memo_fini(struct conf_trust_memo *m);
/* conf_trust_fd with a memo (NULL: none). */
int conf_trust_fd_memo(int fd, const char *path, enum conf_trust_kind kind, uid_t euid,
		       const char *file, unsigned line, struct conf_trust_memo *memo,
		       struct conf_diag *diag);
/* The same for path (following symbolic links); -ENOENT if it does not exist. */
int conf_trust_path(const char *path, enum conf_trust_kind kind, uid_t euid, const char *file,
		    unsigned line, struct conf_diag *diag);
/*
 * Checks cfg's alert_command (CONF_TRUST_PROGRAM) and state_dir
 * (CONF_TRUST_STATE_DIR; if missing, the directories the daemon will create
 * it in), reporting at the config's lines. Returns 0 or the first error.
 */
int conf_check_files(const struct config *cfg, uid_t euid, struct conf_diag *diag);
/*
 * Whether statfs's f_type is a file system refused for secrets: network,
 * cluster, served from user space (FUSE) or stacked (overlayfs), where
 * another host or process could read the key (the reasons are in trust.c).
 */
bool conf_fs_is_remote(long f_type);
/* Name of such a file system ("nfs", "overlayfs", ...), or NULL if not one. */
const char *conf_fs_remote_name(long f_type);

/* ---- OpenSSL's secure heap (secheap.c) ---- */

/*
 * Copies of every link's secret the daemon can hold at once: the running
 * configuration, a reload deferred until the running pass ends, and the
 * reload being read (svc/daemon/daemon.c: daemon_reload).
 */
#define CONF_SECRET_COPIES 3
/* The heap's smallest block (CRYPTO_secure_malloc_init's minsize): one secret. */
#define CONF_SECURE_MINSIZE 32
/* Room beyond the secrets: keying material derived per SA (ROT_KEYMAT_MAX, a few at once). */
#define CONF_SECURE_WORK (64 * 1024)

/*
 * Bytes of secure heap for links links (capped at CONF_LINKS_MAX): their
 * secrets held CONF_SECRET_COPIES times in the heap's blocks (powers of two,
 * mem_sec.c: sh_malloc) plus CONF_SECURE_WORK, rounded up to the power of
 * two OpenSSL demands (mem_sec.c: sh_init). 8 MiB for CONF_LINKS_MAX.
 */
size_t conf_secure_heap_size(size_t links);
/* How many links' secrets a heap of size bytes holds CONF_SECRET_COPIES times. */
size_t conf_secure_heap_links(size_t size);
/*
 * Makes OpenSSL's secure heap of size bytes (a power of two, at least 128):
 * CRYPTO_secure_malloc_init. Returns 0, -EPERM if it is made but could not
 * be locked in memory (RLIMIT_MEMLOCK), -EINVAL (size), -ENOMEM (not made:
 * secure allocations then come from the ordinary heap).
 */
int conf_secure_heap_init(size_t size);
/* len zeroed bytes of the secure heap, NULL (counted) if it has no room. */
void *conf_secure_alloc(size_t len);
/* Failed conf_secure_alloc() calls since the start: tells a full heap from other ENOMEMs. */
unsigned long conf_secure_heap_failures(void);
/* Why a secure allocation failed, for a message: the heap's use, its size and the fix. Returns buf. */
char *conf_secure_heap_why(char *buf, size_t size);

#endif
