/* SPDX-License-Identifier: ISC */
/* sactl's database subcommands (status, check, history, events): placeholders until written. */

/*
 * PLACEHOLDERS. These four functions are dispatched from the table in
 * sactl.c and declared in sactl.h. Whoever implements the ledger queries
 * replaces this file (and adds store_dep to sactl's dependencies in
 * svc/meson.build); sactl.c needs no change.
 */
#include "svc/sactl.h"

int sactl_cmd_status(const struct sactl_ctx *ctx, int argc, char **argv)
{
	return sactl_not_implemented(ctx, argv[0]);
}

int sactl_cmd_check(const struct sactl_ctx *ctx, int argc, char **argv)
{
	return sactl_not_implemented(ctx, argv[0]);
}

int sactl_cmd_history(const struct sactl_ctx *ctx, int argc, char **argv)
{
	return sactl_not_implemented(ctx, argv[0]);
}

int sactl_cmd_events(const struct sactl_ctx *ctx, int argc, char **argv)
{
	return sactl_not_implemented(ctx, argv[0]);
}
