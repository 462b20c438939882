/* SPDX-License-Identifier: ISC */
/* The daemon as its observers see it: the helpers of the port's calls. */
#include <stdarg.h>
#include <stdio.h>

#include "svc/daemon/observer.h"

void daemon_port_alertf(const struct daemon_port *port, const char *event, const struct mon_sa *e,
			const struct conf_link *link, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	port->alert(port->daemon, event, e, link, msg);
}
