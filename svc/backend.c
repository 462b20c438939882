/* SPDX-License-Identifier: ISC */
/* Kernel backends of the daemon: the PF_KEY socket, or the in-process simulated SADB. */
#include <errno.h>

#include "svc/daemon_int.h"
#include "svc/log.h"

int daemon_backend_open(struct daemon *d, struct kern_opts *o)
{
	switch (d->cfg->daemon.kernel) {
	case CONF_KERNEL_PFKEY:
		o->backend = KERN_BACKEND_PFKEY;
		return 0;
	case CONF_KERNEL_SIM:
	default:
		log_err("kernel = sim: the simulated SADB is not built into this version");
		return -ENOTSUP;
	}
}

void daemon_backend_close(struct daemon *d)
{
}
