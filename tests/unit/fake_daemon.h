/* SPDX-License-Identifier: ISC */
/* A stand-in for the daemon behind struct daemon_port, for the unit tests of its observers. */
#ifndef SAKEYD_TEST_FAKE_DAEMON_H
#define SAKEYD_TEST_FAKE_DAEMON_H

#include <time.h>
#include <uv.h>

#include "svc/daemon/observer.h"

/*
 * The fields a test sets: cfg, table, and the observer under test (obs),
 * which the fake tells of the alerts the observer itself raises, as the
 * daemon tells every observer. No kernel: nothing added by us, never busy.
 */
struct fake_daemon {
	uv_loop_t loop;
	const struct config *cfg;
	struct mon_table *table;
	struct daemon_observer *obs;
	unsigned kicks, resyncs;
};

static int64_t fake_now(void *daemon)
{
	return time(NULL);
}

static void fake_alert(void *daemon, const char *event, const struct mon_sa *e,
		       const struct conf_link *link, const char *msg)
{
	struct fake_daemon *d = daemon;

	if (e && !link)
		link = e->sa.link;
	if (d->obs && d->obs->alert)
		d->obs->alert(d->obs->self, event, e, link, msg);
}

static void fake_kick(void *daemon, bool resync, const char *why)
{
	struct fake_daemon *d = daemon;

	d->kicks++;
	d->resyncs += resync;
}

static const struct config *fake_config(void *daemon)
{
	return ((struct fake_daemon *)daemon)->cfg;
}

static struct mon_table *fake_table(void *daemon)
{
	return ((struct fake_daemon *)daemon)->table;
}

/* The config's links stand for the running links, unplanned. */
static size_t fake_nlinks(void *daemon)
{
	return ((struct fake_daemon *)daemon)->cfg->nlinks;
}

static void fake_link_at(void *daemon, size_t i, struct daemon_link_view *out)
{
	*out = (struct daemon_link_view){ .link = &((struct fake_daemon *)daemon)->cfg->links[i] };
}

static bool fake_link_of(void *daemon, const struct mon_sa *e, size_t *i)
{
	const struct config *cfg = ((struct fake_daemon *)daemon)->cfg;

	for (size_t k = 0; k < cfg->nlinks; k++)
		if (e->sa.link == &cfg->links[k]) {
			*i = k;
			return true;
		}
	return false;
}

static bool fake_no(void *daemon)
{
	return false;
}

static bool fake_added_by_us(void *daemon, const struct mon_sa *e)
{
	return false;
}

static void fake_kernel_stats(void *daemon, struct kern_stats *out)
{
	*out = (struct kern_stats){ 0 };
}

/* The port of d, whose loop the test has initialised. */
static inline struct daemon_port fake_daemon_port(struct fake_daemon *d)
{
	return (struct daemon_port){
		.daemon = d,
		.loop = &d->loop,
		.now = fake_now,
		.alert = fake_alert,
		.kick = fake_kick,
		.config = fake_config,
		.table = fake_table,
		.nlinks = fake_nlinks,
		.link_at = fake_link_at,
		.link_of = fake_link_of,
		.added_by_us = fake_added_by_us,
		.kernel_busy = fake_no,
		.kernel_stats = fake_kernel_stats,
	};
}

#endif
