/* SPDX-License-Identifier: ISC */
/* Kernel backends of the daemon: the PF_KEY socket, or the in-process simulated SADB. */
#include <errno.h>
#include <string.h>

#include "svc/daemon_int.h"
#include "svc/log.h"
#include "svc/simkernel.h"

int daemon_backend_open(struct daemon *d, struct kern_opts *o)
{
	struct sim *s = NULL;
	int fd, ret;

	switch (d->cfg->daemon.kernel) {
	case CONF_KERNEL_PFKEY:
		o->backend = KERN_BACKEND_PFKEY;
		return 0;
	case CONF_KERNEL_SIM:
		ret = sim_new(&d->loop, NULL, &s);
		if (!ret)
			ret = sim_connect(s, &fd);
		if (!ret && d->cfg->daemon.sim_socket[0]) {
			ret = sim_listen(s, d->cfg->daemon.sim_socket);
			if (ret)
				log_err("sim_socket %s: %s", d->cfg->daemon.sim_socket, strerror(-ret));
		}
		if (ret) {
			log_err("cannot start the simulated SADB: %s", strerror(-ret));
			sim_close(s);
			return ret;
		}
		d->backend = s;
		o->backend = KERN_BACKEND_FD;
		o->fd = fd;
		log_info("kernel = sim: an in-process simulated SADB (nothing reaches the real kernel)%s%s",
			 d->cfg->daemon.sim_socket[0] ? "; PF_KEY clients at " : "",
			 d->cfg->daemon.sim_socket);
		return 0;
	default:
		return -EINVAL;
	}
}

void daemon_backend_close(struct daemon *d)
{
	if (d->backend) {
		sim_close(d->backend);
		d->backend = NULL;
	}
}
