/* SPDX-License-Identifier: ISC */
/* The daemon's ledger: SA lives, events and rotations into SQLite, one transaction per loop turn. */
#ifndef SAKEYD_LEDGER_H
#define SAKEYD_LEDGER_H

struct daemon;

/*
 * Chain the ledger into d's hooks and open <state_dir>/sakeyd.db. A database
 * that cannot be opened or written is reported, alerted and retried; the
 * daemon goes on (the kernel is the truth). 0 or -ENOMEM.
 */
int ledger_start(struct daemon *d);
/* Commit what is pending and close the database (before the loop's handles close). */
void ledger_stop(struct daemon *d);
/* Free the ledger (after the loop closed). */
void ledger_free(struct daemon *d);

#endif
