/* SPDX-License-Identifier: ISC */
/* The daemon's state, shared by the units of svc/daemon/ (daemon, sadb, kernel_open, ledger, sinks). */
#ifndef SAKEYD_DAEMON_INT_H
#define SAKEYD_DAEMON_INT_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "conf/conf.h"
#include "monitor/table.h"
#include "rotate/prefixidx.h"
#include "rotate/sa.h"
#include "svc/kernel/channel.h"
#include "svc/base/spare.h"
#include "svc/daemon/observer.h"

struct sinks;
struct ctl_server;
struct daemon;
struct genbook;
struct kern_aevents;
struct ledger;
struct pass;

struct link_state {
	struct conf_link *link; /* borrowed from the running config */
	int64_t next_change;    /* Unix seconds; 0 if not planned yet */
	int64_t epoch;
	int64_t last_epoch; /* epoch of the last outbound SA installed */
	unsigned failures;
	int64_t retry_at; /* backoff after failures; 0 if none */
	uint32_t acquire_seq;
	bool failed_this_pass;
	bool tried_this_pass;  /* planned by this pass (not waiting out a backoff) */
	bool unsure_this_pass; /* a reply was lost: the outcome waits for the resync */
	/* In the running pass: its adds not answered yet, and its deletes (send_breaks). */
	unsigned makes_pending;
	/*
	 * An outbound SA whose add went unanswered (epoch 0: none) and its generation:
	 * the resync tells whether it was installed, and then what its reply would have
	 * done is done (the rotation recorded, generation-changed raised, the probe sent).
	 */
	int64_t unsure_out_epoch;
	uint8_t unsure_out_gen;
	size_t first_break; /* 1 + index of its entry in the pass's rot_pass.link; 0 = none */
	bool policy_installed;
	bool conflict_alerted;
	/*
	 * Fingerprints of its planned SAs by (epoch, dir, gen): one HKDF per SA,
	 * not per pass. Room for three inbound epochs with a generation in use
	 * and its spares, and the outbound SA.
	 */
	struct planned_fp {
		int64_t epoch;
		enum rot_dir dir;
		uint8_t gen;
		char fp[ROT_FP_LEN + 1]; /* "" = empty slot */
	} fp_cache[12];
	unsigned fp_next;
	/* Key schedule v2 (svc/daemon/genbook.h): its records, owned by the book. */
	struct link_gens *gens;
	int64_t epoch_now;   /* the pass's epoch of the link */
	uint8_t held_out;    /* generation of the outbound SA of epoch_now the kernel holds */
	int64_t held_out_at; /* its add time: of two, the kernel sends with the newer */
	uint8_t new_out;     /* generation recorded this pass for a new outbound SA; ROT_GEN_NONE */
	int64_t unrecorded_alerted; /* epoch + 1 of the last "cannot record" alert; 0 none */
};

/* A link removed by a reload: its SAs and policies go once its grace has passed. */
struct retiring_link {
	struct conf_link link; /* a copy without the secret */
	int64_t remove_at_ms; /* wall clock, ms: a whole grace, not up to a second less */
};

struct daemon {
	uv_loop_t loop;
	uv_timer_t kick;  /* reconcile soon, from the loop */
	uv_timer_t wake;  /* the next change point of any link */
	uv_timer_t clock; /* wall-clock jump detection */
	uv_timer_t watchdog; /* WATCHDOG=1 to systemd from the loop (notify_watchdog_start) */
	uv_signal_t sigterm, sigint, sighup;
	int64_t clock_offset;

	struct spare ctx_spare; /* request contexts freed, kept for the next (svc/base/spare.h) */

	struct config *cfg;       /* running config (borrowed or owned_cfg) */
	struct config *owned_cfg; /* a config loaded by reload, freed by us */
	/*
	 * A reload checked while a pass (or policy requests) had requests in
	 * flight, whose contexts point into links and the running config:
	 * applied when they are answered (owned; a later reload replaces it).
	 */
	struct config *deferred_cfg;
	const char *config_path;
	struct link_state *links; /* sorted by spi_prefix */
	size_t nlinks;
	struct rot_prefix_index link_index; /* spi_prefix -> &links[i] */

	struct kern *kern;
	/*
	 * The resync's own channel, open while it dumps, so that 20,000 dump
	 * replies never queue in front of an EXPIRE; and the SAs the main
	 * channel spoke of meanwhile, whose dump entries are older news.
	 */
	struct kern *dump_kern;
	struct mon_table *dump_news;
	bool dump_stale; /* a FLUSH came during the dump: its entries say nothing */
	enum kern_backend backend_kind;
	struct mon_table *table;
	struct pass *pass; /* the reconciliation in progress */
	unsigned policy_pending;
	bool synced, resync_wanted, resync_running, kick_pending, policies_done, stopping;
	unsigned long cancelled; /* requests in flight when the stop closed the channel */
	bool dump_overlapped; /* a pass ran during the running dump */
	uint64_t resync_started_ns; /* uv_hrtime() of the running dump's start */
	/*
	 * The last dump's length and end (uv_hrtime()): a periodic refresh waits
	 * MON_REFRESH_SPACING times that after it (refresh_due), so a dump of many
	 * SAs does not run back to back with the next one.
	 */
	uint64_t resync_took_ns, resync_ended_ns;
	bool refresh_stretched; /* the stretch is logged once until it ends */
	/* The dump's end waits for what the main channel still holds (resync_done). */
	uv_timer_t resync_wait;
	unsigned resync_waits;
	unsigned long resync_n;
	int64_t now_s;              /* daemon_now()'s wall clock, read at loop time now_turn */
	uint64_t now_turn;

	struct daemon_observer *observers; /* told in this order (daemon_observe) */
	void *backend; /* the simulated SADB, if kernel = sim */
	struct ledger *ledger;
	struct retiring_link *retiring;
	size_t nretiring;
	uv_timer_t retire;
	struct sinks *sinks; /* alert_command, sa-too-old, metrics file (svc/daemon/sinks.c) */
	struct ctl_server *ctl; /* the control socket */
	bool ready_sent;        /* READY=1 told to systemd */
	uv_timer_t refresh; /* usage counters and loss detection: a dump every refresh_interval */
	struct genbook *book;      /* generations sent and heard, replay states (genbook.h) */
	struct kern_aevents *aev;  /* XFRM: first packets on spare inbound SAs */
	uv_timer_t final_timer;    /* stopping: the last replay-state dump's deadline */
	uv_timer_t gen_commit;     /* generations heard from notifications: synced once per turn */
	bool final_dump;           /* stopping: that dump is running */
	/*
	 * PF_KEY registers for EXPIRE and ACQUIRE on a worker thread
	 * (register_later, start_register): the kernel's algorithm probe takes
	 * seconds. What expired while unregistered, the next dump finds
	 * (catch_up_expiries).
	 */
	bool registered, registering, catch_up;
	int register_refused; /* the kernel's errno in answer to the running REGISTER */
	uint64_t register_started_ns;
	int64_t unheard_since; /* wall clock the main channel opened unregistered */
};

int daemon_init(struct daemon *d, struct config *cfg, const char *config_path);
/* Tell o (borrowed until daemon_fini) what happens, after the observers added before it. */
void daemon_observe(struct daemon *d, struct daemon_observer *o);
/* The calls through which an observer asks things of d (filled in *port). */
void daemon_port_init(struct daemon *d, struct daemon_port *port);
/* Open the channel (base: backend options), install signal handlers, start syncing. */
int daemon_start(struct daemon *d, const struct kern_opts *base);
/* Close every handle; the loop then runs out. */
void daemon_stop(struct daemon *d);
void daemon_fini(struct daemon *d);
/* Switch to cfg (borrowed until the next switch); links resolved and checked. 0 or -errno. */
int daemon_set_config(struct daemon *d, struct config *cfg);
/*
 * Re-read the config file; a bad one is reported and the running one stays.
 * During a pass it is checked now and applied when the pass ends
 * (d->deferred_cfg set on return 0).
 */
int daemon_reload(struct daemon *d);
/* Wall-clock seconds, read once per loop turn (uv_now): for per-SA bookkeeping. */
int64_t daemon_now(struct daemon *d);
/* Reconcile soon (coalesced). why is logged at debug level, may be NULL. */
void daemon_kick(struct daemon *d, const char *why);
/* Raise an alert (log + observers). e and link may be NULL. */
void daemon_alert(struct daemon *d, const char *event, const struct mon_sa *e,
		  const struct conf_link *link, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

/* Stop now: close every handle (daemon_stop, once the replay states are recorded). */
void daemon_stop_now(struct daemon *d);

/*
 * Key schedule v2 (svc/daemon/generations.c): the book opened at start (and
 * XFRM's replay notifications), promotions of spare inbound SAs, replay
 * states recorded from dumps and restored on re-install, alerts.
 */
struct sadb_add_opts;
int gen_start(struct daemon *d);
void gen_close(struct daemon *d);
void gen_fini(struct daemon *d);
/* Stopping on XFRM: record replay states from one last dump, then daemon_stop_now. */
bool gen_stop_later(struct daemon *d);
void gen_exhausted(struct daemon *d, struct link_state *ls, int64_t epoch);
void gen_out_installed(struct daemon *d, struct link_state *ls, const struct rot_sa *sa);
void gen_add_options(struct daemon *d, struct link_state *ls, const struct rot_sa *sa,
		     struct sadb_add_opts *o, bool *unprotected);
void gen_unprotected(struct daemon *d, struct link_state *ls, const struct rot_sa *sa);
void gen_dump_entry(struct daemon *d, struct mon_sa *e, const struct pfkey_msg *m, int64_t now);
void gen_dump_done(struct daemon *d);

/* Backend set-up for cfg->daemon.kernel (svc/daemon/kernel_open.c): fills o. */
int daemon_backend_open(struct daemon *d, struct kern_opts *o);
void daemon_backend_close(struct daemon *d);
/* Options for a dump channel beside the main one (o->backend, o->fd); -errno if none. */
int daemon_backend_dump_channel(struct daemon *d, struct kern_opts *o);

#endif
