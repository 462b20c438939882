/* SPDX-License-Identifier: ISC */
/* The daemon's ledger: SA lives, events and rotations into SQLite, committed once a burst is answered. */
#ifndef SAKEYD_LEDGER_H
#define SAKEYD_LEDGER_H

struct daemon_observer;
struct daemon_port;
struct ledger;

/*
 * A ledger on port's loop (port is copied): it opens <state_dir>/sakeyd.db
 * and learns through its observer (ledger_observer), which the caller adds
 * to the daemon. A database that cannot be opened or written is reported,
 * alerted and retried; the daemon goes on (the kernel is the truth).
 * 0 and *out, or -ENOMEM.
 */
int ledger_new(const struct daemon_port *port, struct ledger **out);
/* The hooks through which the daemon tells the ledger what happened (owned by l). */
struct daemon_observer *ledger_observer(struct ledger *l);
/* Commit what is pending and close the database (before the loop's handles close). NULL: no-op. */
void ledger_stop(struct ledger *l);
/* Free the ledger (after the loop closed). NULL: no-op. */
void ledger_free(struct ledger *l);

#endif
