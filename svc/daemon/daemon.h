/* SPDX-License-Identifier: ISC */
/* The daemon's event loop: kernel channel, signals, resync; runs until SIGTERM/SIGINT. */
#ifndef SAKEYD_DAEMON_H
#define SAKEYD_DAEMON_H

#include <stdint.h>
#include <stdio.h>

#include "conf/conf.h"

/*
 * Run the daemon on cfg (borrowed; secrets loaded) until SIGTERM or SIGINT.
 * Returns 0 on a clean stop, -errno if start-up failed.
 */
int daemon_run(struct config *cfg, const char *config_path);

/*
 * sakeyd --check --plan (showplan.c): resolve cfg's links (secrets loaded)
 * and print, per link, what both hosts must agree on, its digest
 * (rot_plan_digest), the epoch and recorded outbound generation at now and
 * the next change points. 0, or -errno after a message on stderr.
 */
int daemon_print_plan(struct config *cfg, int64_t now, FILE *f);

#endif
