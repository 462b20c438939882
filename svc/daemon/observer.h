/* SPDX-License-Identifier: ISC */
/* The daemon as its observers (ledger, sinks) see it: events in, a few services out. */
#ifndef SAKEYD_OBSERVER_H
#define SAKEYD_OBSERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "conf/conf.h"
#include "monitor/table.h"
#include "rotate/sa.h"
#include "svc/kernel/channel.h"

/*
 * What the daemon tells an observer. Every hook is optional and gets the
 * observer's self. An entry stays valid until sa_gone for it returns: every
 * removal from the table calls sa_gone first, and the ledger keeps pointers
 * to entries until its commit. sa_gone's why is a string literal (the
 * ledger keeps it too). Config pointers stay valid until config_swap, which
 * runs before a reload replaces the config. Observers are told in the order
 * they were added (daemon_observe).
 */
struct daemon_observer {
	void (*sa_added)(void *self, const struct mon_sa *e, bool from_dump);
	void (*sa_changed)(void *self, const struct mon_sa *e);
	void (*sa_gone)(void *self, const struct mon_sa *e, const char *why);
	/* msg is formatted; link is e's link when e has one and none was given. */
	void (*alert)(void *self, const char *event, const struct mon_sa *e,
		      const struct conf_link *link, const char *msg);
	void (*rotation)(void *self, const struct conf_link *link, const struct rot_sa *sa, bool ok,
			 const char *detail);
	void (*acquire)(void *self, uint32_t seq, const struct conf_addr *src,
			const struct conf_addr *dst, const struct conf_link *link);
	void (*resync_begin)(void *self);
	void (*config_swap)(void *self);
	void (*synced)(void *self, unsigned long n);
	void (*pass_done)(void *self);
	void *self;
	struct daemon_observer *next; /* the daemon's list */
};

/* One running link as an observer may read it. */
struct daemon_link_view {
	const struct conf_link *link;
	int64_t epoch;
	int64_t next_change; /* Unix seconds; 0 if not planned yet */
	unsigned failures;   /* failed attempts in a row (0 after a success) */
	int64_t retry_at;    /* backoff: not retried before (Unix seconds); 0 if none */
	bool exhausted;      /* generations of epoch used up: no outbound SA until the next */
};

/*
 * What an observer may ask of the daemon: a table of calls, each given
 * daemon back, so that an observer knows nothing of the daemon's state and
 * a test can stand in for the daemon. Every call is set.
 */
struct daemon_port {
	void *daemon;
	uv_loop_t *loop;
	/* Wall-clock seconds, read once per loop turn. */
	int64_t (*now)(void *daemon);
	/* Raise an alert: logged, then told to every observer (hook alert). */
	void (*alert)(void *daemon, const char *event, const struct mon_sa *e,
		      const struct conf_link *link, const char *msg);
	/* Reconcile soon; with resync, dump the kernel's SAs first. why is logged. */
	void (*kick)(void *daemon, bool resync, const char *why);
	/* The running config (valid until the next config_swap). */
	const struct config *(*config)(void *daemon);
	/*
	 * The SA table. Its entries are the daemon's; an observer writes only
	 * its own fields of them (ledger_slot and store_id the ledger's,
	 * age_alerted the sinks').
	 */
	struct mon_table *(*table)(void *daemon);
	/* The running links, sorted by spi_prefix: how many, and link i. */
	size_t (*nlinks)(void *daemon);
	void (*link_at)(void *daemon, size_t i, struct daemon_link_view *out);
	/* Index of the running link that e belongs to; false if none (a link gone by reload). */
	bool (*link_of)(void *daemon, const struct mon_sa *e, size_t *i);
	/* True if the daemon's own channel added e (not another tool). */
	bool (*added_by_us)(void *daemon, const struct mon_sa *e);
	/* True while kernel requests await their replies. */
	bool (*kernel_busy)(void *daemon);
	/* The kernel channel's counters (zeros when it is closed). */
	void (*kernel_stats)(void *daemon, struct kern_stats *out);
};

/* port->alert with a printf format: the message is cut at 511 bytes. */
void daemon_port_alertf(const struct daemon_port *port, const char *event, const struct mon_sa *e,
			const struct conf_link *link, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

#endif
