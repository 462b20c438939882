/* SPDX-License-Identifier: ISC */
/* sactl: the operator's tool; a table of subcommands, with genkey, reload and reconcile. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "conf/conf.h"
#include "svc/ctl/ctl.h"
#include "svc/sactl/sactl.h"

#ifndef SAKEYD_VERSION
#define SAKEYD_VERSION "unknown"
#endif

/* ---- Shared by the subcommands ---- */

int sactl_load_config(const struct sactl_ctx *ctx, struct config **out)
{
	struct conf_diag diag = { 0 };
	int ret;

	ret = conf_load(ctx->config_path, out, &diag);
	conf_diag_print(&diag, stderr);
	conf_diag_fini(&diag);
	if (ret == -EINVAL)
		fprintf(stderr, "%s: %s: configuration refused (sakeyd would refuse it too); "
				"fix it and check with: sakeyd --check -c %s\n",
			ctx->prog, ctx->config_path, ctx->config_path);
	else if (ret)
		fprintf(stderr, "%s: %s: cannot load the configuration: %s%s\n", ctx->prog,
			ctx->config_path, strerror(-ret),
			ctx->config_given ? "" : " (give another one with -c FILE)");
	return ret;
}

int sactl_extra_args(const struct sactl_ctx *ctx, int argc, char **argv, const char *usage)
{
	if (optind == argc)
		return 0;
	fprintf(stderr, "%s: %s: unexpected argument '%s'\nusage: %s %s\n", ctx->prog, argv[0],
		argv[optind], ctx->prog, usage);
	return -1;
}

/* Parses a subcommand's options when it has none but --help. Returns -1 to go on, or an exit status. */
static int no_options(const struct sactl_ctx *ctx, int argc, char **argv, const char *usage)
{
	static const struct option opts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int opt;

	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (opt == 'h') {
			printf("usage: %s %s\n", ctx->prog, usage);
			return SACTL_EXIT_OK;
		}
		fprintf(stderr, "usage: %s %s\n", ctx->prog, usage);
		return SACTL_EXIT_USAGE;
	}
	if (sactl_extra_args(ctx, argc, argv, usage))
		return SACTL_EXIT_USAGE;
	return -1;
}

/* ---- genkey ---- */

#define GENKEY_USAGE "genkey [-o FILE] [--force]"

/*
 * A key printed to the terminal of an SSH session crosses the network (inside
 * SSH, but on to whatever records the session: terminal scrollback, screen
 * logs, a jump host's recorder). sshd sets SSH_CONNECTION, and SSH_TTY when it
 * allocated the terminal; sudo's env_reset drops both, hence the advice to use
 * -o in the man page.
 */
static bool remote_terminal(int fd)
{
	const char *ssh_tty = getenv("SSH_TTY"), *ssh_conn = getenv("SSH_CONNECTION");

	return isatty(fd) && ((ssh_tty && ssh_tty[0]) || (ssh_conn && ssh_conn[0]));
}

/* wireguard-tools' genkey does the same for a world-readable stdout. */
static void warn_if_readable(const struct sactl_ctx *ctx, int fd)
{
	struct stat st;

	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 077))
		fprintf(stderr,
			"%s: genkey: warning: writing a key to a file that group or others can read "
			"(mode %04o); chmod 600 it now, or use -o FILE, which creates it 0600\n",
			ctx->prog, (unsigned)(st.st_mode & 07777));
}

static int write_all(int fd, const char *buf, size_t len)
{
	while (len) {
		ssize_t n = write(fd, buf, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

static int write_key_file(const struct sactl_ctx *ctx, const char *path, const char *text,
			  size_t len)
{
	int fd, ret;

	/* O_EXCL: never replace a key that may be in use; it also refuses any symbolic link. */
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		ret = -errno;
		if (ret == -EEXIST)
			fprintf(stderr,
				"%s: genkey: %s already exists; refusing to overwrite it (a key in "
				"use would be lost): remove it first or choose another name\n",
				ctx->prog, path);
		else
			fprintf(stderr, "%s: genkey: cannot create %s: %s\n", ctx->prog, path,
				strerror(-ret));
		return ret;
	}
	/* The mode given to open() passes through the umask; state it whatever the umask. */
	ret = fchmod(fd, 0600) ? -errno : 0;
	if (!ret)
		ret = write_all(fd, text, len);
	if (!ret && fsync(fd))
		ret = -errno;
	if (close(fd) && !ret)
		ret = -errno;
	if (ret) {
		fprintf(stderr, "%s: genkey: writing %s: %s\n", ctx->prog, path, strerror(-ret));
		unlink(path);
		return ret;
	}
	if (geteuid() != 0)
		fprintf(stderr,
			"%s: genkey: note: %s belongs to uid %lu; sakeyd accepts only secret files "
			"owned by its own user (root): chown root:root %s\n",
			ctx->prog, path, (unsigned long)geteuid(), path);
	return 0;
}

static int cmd_genkey(const struct sactl_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "output", required_argument, NULL, 'o' },
		{ "force", no_argument, NULL, 'f' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	uint8_t key[CONF_SECRET_LEN];
	char text[4 * ((CONF_SECRET_LEN + 2) / 3) + 2]; /* base64, newline, NUL */
	const char *out_path = NULL;
	bool force = false;
	int opt, n, ret = SACTL_EXIT_FAILURE;

	while ((opt = getopt_long(argc, argv, "o:fh", opts, NULL)) != -1) {
		switch (opt) {
		case 'o':
			out_path = optarg;
			break;
		case 'f':
			force = true;
			break;
		case 'h':
			printf("usage: %s " GENKEY_USAGE "\n"
			       "  -o, --output FILE  create FILE (mode 0600) for the key; never overwrites\n"
			       "      --force        print to the terminal even in an SSH session\n",
			       ctx->prog);
			return SACTL_EXIT_OK;
		default:
			fprintf(stderr, "usage: %s " GENKEY_USAGE "\n", ctx->prog);
			return SACTL_EXIT_USAGE;
		}
	}
	if (sactl_extra_args(ctx, argc, argv, GENKEY_USAGE))
		return SACTL_EXIT_USAGE;
	if (!out_path && !force && remote_terminal(STDOUT_FILENO)) {
		fprintf(stderr,
			"%s: genkey: refusing to print a key to the terminal of a remote (SSH) "
			"session: it would cross the network and stay in scrollback and session "
			"logs. Write it on this host with -o FILE (e.g. -o /etc/sakeyd/LINK.key), "
			"or pass --force to print it anyway\n",
			ctx->prog);
		return SACTL_EXIT_FAILURE;
	}
	if (!out_path)
		warn_if_readable(ctx, STDOUT_FILENO);

	if (RAND_bytes(key, sizeof(key)) != 1) {
		fprintf(stderr, "%s: genkey: the OpenSSL random generator failed: %s\n", ctx->prog,
			ERR_error_string(ERR_get_error(), NULL));
		goto cleanup;
	}
	n = EVP_EncodeBlock((unsigned char *)text, key, sizeof(key));
	text[n++] = '\n';
	/* write(2), not stdio: no copy of the key is left in a stdio buffer. */
	if (out_path) {
		if (write_key_file(ctx, out_path, text, (size_t)n))
			goto cleanup;
	} else if ((ret = write_all(STDOUT_FILENO, text, (size_t)n))) {
		fprintf(stderr, "%s: genkey: writing the key: %s\n", ctx->prog, strerror(-ret));
		ret = SACTL_EXIT_FAILURE;
		goto cleanup;
	}
	ret = SACTL_EXIT_OK;
cleanup:
	OPENSSL_cleanse(key, sizeof(key));
	OPENSSL_cleanse(text, sizeof(text));
	return ret;
}

/* ---- reload, reconcile ---- */

static int cmd_control(const struct sactl_ctx *ctx, int argc, char **argv)
{
	char usage[32], reply[CTL_REPLY_MAX + 64];
	struct config *cfg = NULL;
	int ret;

	snprintf(usage, sizeof(usage), "[-c FILE] %s", argv[0]);
	ret = no_options(ctx, argc, argv, usage);
	if (ret >= 0)
		return ret;
	if (sactl_load_config(ctx, &cfg))
		return SACTL_EXIT_FAILURE;
	ret = ctl_call(cfg->daemon.control_socket, argv[0], reply, sizeof(reply));
	conf_free(cfg);
	if (ret == 0) {
		printf("%s\n", strncmp(reply, "ok ", 3) ? "ok" : reply + 3);
		return SACTL_EXIT_OK;
	}
	/* The daemon's "error <why>" or ctl_call's own explanation. */
	fprintf(stderr, "%s: %s: %s\n", ctx->prog, argv[0],
		strncmp(reply, "error ", 6) ? reply : reply + 6);
	return SACTL_EXIT_FAILURE;
}

/* ---- The table ---- */

struct sactl_cmd {
	const char *name;
	sactl_cmd_fn run;
	const char *usage;
	const char *summary;
};

static const struct sactl_cmd commands[] = {
	/* In reports.c. */
	{ "status", sactl_cmd_status, "[-c FILE] status [--json] [--link NAME] [--all]",
	  "SA age and time to expiry, from the database" },
	{ "check", sactl_cmd_check,
	  "[-c FILE] check [-w RANGE] [-c RANGE] [-t SECONDS] [--warn-age DUR]",
	  "monitoring-plugin check (exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN)" },
	{ "history", sactl_cmd_history, "[-c FILE] history [--link NAME] [--json]",
	  "rotations, from the database" },
	{ "events", sactl_cmd_events, "[-c FILE] events [--since DUR] [--json]",
	  "SA events and alerts, from the database" },
	/* Here. */
	{ "genkey", cmd_genkey, GENKEY_USAGE, "make a 32-byte link secret (base64)" },
	{ "reload", cmd_control, "[-c FILE] reload", "make sakeyd re-read its configuration" },
	{ "reconcile", cmd_control, "[-c FILE] reconcile",
	  "make sakeyd reconcile every link with the kernel now" },
};

static void usage(const struct sactl_ctx *ctx, FILE *f)
{
	fprintf(f, "usage: %s [-c FILE] COMMAND [ARGS]\n"
		   "  -c, --config FILE  sakeyd's configuration (default " CONF_DEFAULT_PATH ")\n"
		   "  -h, --help         this text; COMMAND --help for a command's\n"
		   "      --version      sactl's version\n"
		   "commands:\n",
		ctx->prog);
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct sactl_ctx ctx = { .prog = "sactl", .config_path = CONF_DEFAULT_PATH };
	int opt;

	/* '+': the options before the command are sactl's, the rest the command's. */
	while ((opt = getopt_long(argc, argv, "+c:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			ctx.config_path = optarg;
			ctx.config_given = true;
			break;
		case 'h':
			usage(&ctx, stdout);
			return SACTL_EXIT_OK;
		case 'V':
			printf("sactl %s\n", SAKEYD_VERSION);
			return SACTL_EXIT_OK;
		default:
			usage(&ctx, stderr);
			return SACTL_EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		usage(&ctx, stderr);
		return SACTL_EXIT_USAGE;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		if (strcmp(argv[optind], commands[i].name))
			continue;
		argc -= optind;
		argv += optind;
		optind = 0; /* glibc: 0 starts getopt afresh on the new argv */
		return commands[i].run(&ctx, argc, argv);
	}
	fprintf(stderr, "%s: unknown command '%s'\n", ctx.prog, argv[optind]);
	usage(&ctx, stderr);
	return SACTL_EXIT_USAGE;
}
