/* SPDX-License-Identifier: ISC */
/* Which kernel the daemon talks to (kernel = auto, pfkey, xfrm, sim), and the simulated SADB it may start. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "svc/daemon/daemon_int.h"
#include "svc/base/log.h"
#include "svc/kernel/sim.h"

/*
 * Tests of the daemon on the simulator inject kernel failures with
 * SAKEYD_SIM_FAIL=TYPE:ERRNO:COUNT (e.g. 3:105:3, three ADDs failing with
 * ENOBUFS). Only kernel = sim reads it; it never reaches a real kernel.
 */
static void sim_faults_from_env(struct sim *s)
{
	const char *spec = getenv("SAKEYD_SIM_FAIL");
	unsigned type, err, count;

	if (!spec)
		return;
	if (sscanf(spec, "%u:%u:%u", &type, &err, &count) != 3 || type > 255 || !err || err > 255) {
		log_warn("SAKEYD_SIM_FAIL=%s ignored: write TYPE:ERRNO:COUNT", spec);
		return;
	}
	log_warn("simulated SADB: the next %u requests of type %u fail with %s (SAKEYD_SIM_FAIL)",
		 count, type, strerror((int)err));
	sim_fail_count(s, (uint8_t)type, (int)err, count);
}

/*
 * kernel = sim with sim_connect: the simulated SADB runs in another process
 * (tests/sim/simd) that outlives the daemon, so a test can kill -9 the
 * daemon and restart it on the same SADB. The channel gets the socket.
 */
static int sim_connect_socket(const char *path, int *fd)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int s, ret;

	if (strlen(path) >= sizeof(sun.sun_path))
		return -ENAMETOOLONG;
	strcpy(sun.sun_path, path);
	s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s < 0)
		return -errno;
	if (connect(s, (struct sockaddr *)&sun, sizeof(sun))) {
		ret = -errno;
		close(s);
		return ret;
	}
	*fd = s;
	return 0;
}

int daemon_backend_open(struct daemon *d, struct kern_opts *o)
{
	struct sim *s = NULL;
	int fd, ret;

	switch (d->cfg->daemon.kernel) {
	case CONF_KERNEL_PFKEY:
		o->backend = KERN_BACKEND_PFKEY;
		log_info("kernel = pfkey: PF_KEYv2");
		return 0;
	case CONF_KERNEL_XFRM:
		o->backend = KERN_BACKEND_XFRM;
		log_info("kernel = xfrm: XFRM netlink");
		return 0;
	case CONF_KERNEL_AUTO:
		/*
		 * XFRM wherever the kernel has it: PF_KEY on Linux is deprecated
		 * (removal announced for 2027) and cannot carry AEAD, ESN, replay
		 * state or first-packet notifications (key schedule v2's receiver).
		 */
		if (kern_xfrm_available()) {
			o->backend = KERN_BACKEND_XFRM;
			log_info("kernel = auto: using XFRM netlink");
		} else if (kern_pfkey_available()) {
			o->backend = KERN_BACKEND_PFKEY;
			log_warn("kernel = auto: this kernel has no XFRM netlink; using PF_KEYv2, "
				 "which cannot restore replay state after a loss");
		} else {
			log_err("kernel = auto: this kernel has neither XFRM netlink nor PF_KEY "
				"(modprobe xfrm_user)");
			return -EAFNOSUPPORT;
		}
		return 0;
	case CONF_KERNEL_SIM:
		if (d->cfg->daemon.sim_connect[0]) {
			ret = sim_connect_socket(d->cfg->daemon.sim_connect, &fd);
			if (ret) {
				log_err("sim_connect %s: %s", d->cfg->daemon.sim_connect,
					strerror(-ret));
				return ret;
			}
			o->backend = KERN_BACKEND_FD;
			o->fd = fd;
			log_info("kernel = sim: the simulated SADB at %s", d->cfg->daemon.sim_connect);
			return 0;
		}
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
		sim_faults_from_env(s);
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

int daemon_backend_dump_channel(struct daemon *d, struct kern_opts *o)
{
	int fd, ret;

	o->backend = d->backend_kind;
	o->dumps_only = true;
	if (o->backend != KERN_BACKEND_FD)
		return 0;
	/* The simulated SADB: another client of it, as another PF_KEY socket would be. */
	if (d->cfg->daemon.sim_connect[0])
		ret = sim_connect_socket(d->cfg->daemon.sim_connect, &fd);
	else
		ret = d->backend ? sim_connect(d->backend, &fd) : -ENOTCONN;
	if (ret)
		return ret;
	o->fd = fd;
	return 0;
}

void daemon_backend_close(struct daemon *d)
{
	if (d->backend) {
		sim_close(d->backend);
		d->backend = NULL;
	}
}
