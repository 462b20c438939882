/* SPDX-License-Identifier: ISC */
/* sactl's subcommands: the context they get and the ones implemented outside sactl.c. */
#ifndef SAKEYD_SACTL_H
#define SAKEYD_SACTL_H

#include <stdbool.h>

struct config;

/* Exit statuses of sactl (STYLE.md rule 21); `check` uses the monitoring-plugin ones. */
enum {
	SACTL_EXIT_OK = 0,
	SACTL_EXIT_FAILURE = 1,
	SACTL_EXIT_USAGE = 2,
};

/* What every subcommand gets from the command line before its name. */
struct sactl_ctx {
	const char *prog;        /* "sactl", for messages */
	const char *config_path; /* -c FILE, or CONF_DEFAULT_PATH */
	bool config_given;       /* -c was on the command line */
};

/*
 * A subcommand. argv[0] is its name, argv[1..argc-1] its arguments; optind
 * has been reset, so getopt_long(argc, argv, ...) works as in a main(). It
 * returns the process's exit status: SACTL_EXIT_OK, SACTL_EXIT_FAILURE or
 * SACTL_EXIT_USAGE (after printing its usage to stderr), or for `check` the
 * monitoring-plugin codes 0..3.
 */
typedef int (*sactl_cmd_fn)(const struct sactl_ctx *ctx, int argc, char **argv);

/*
 * Loads ctx->config_path without its secrets (sactl never reads keys, so a
 * config whose secret files it cannot read still serves). Prints every
 * problem to stderr. Returns 0 and *out (for conf_free()), or -errno.
 */
int sactl_load_config(const struct sactl_ctx *ctx, struct config **out);

/*
 * After a subcommand's getopt loop: if an argument is left over, print
 * "PROG: NAME: unexpected argument 'ARG'" and the usage line, and return -1;
 * else 0. usage is the subcommand's usage text without the program name.
 */
int sactl_extra_args(const struct sactl_ctx *ctx, int argc, char **argv, const char *usage);

/*
 * The database subcommands, implemented in reports.c (they read
 * state_dir/sakeyd.db read-only and work while the daemon is down); see
 * DESIGN.md "Interfaces" for their options and output. sactl.c's table
 * already dispatches to them.
 */
int sactl_cmd_status(const struct sactl_ctx *ctx, int argc, char **argv);
int sactl_cmd_check(const struct sactl_ctx *ctx, int argc, char **argv);
int sactl_cmd_history(const struct sactl_ctx *ctx, int argc, char **argv);
int sactl_cmd_events(const struct sactl_ctx *ctx, int argc, char **argv);

#endif
