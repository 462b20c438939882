/* SPDX-License-Identifier: ISC */
/* The daemon's event loop: kernel channel, signals, resync; runs until SIGTERM/SIGINT. */
#ifndef SAKEYD_DAEMON_H
#define SAKEYD_DAEMON_H

#include "conf/conf.h"

/*
 * Run the daemon on cfg (borrowed; secrets loaded) until SIGTERM or SIGINT.
 * Returns 0 on a clean stop, -errno if start-up failed.
 */
int daemon_run(struct config *cfg, const char *config_path);

#endif
