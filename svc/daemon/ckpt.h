/* SPDX-License-Identifier: ISC */
/* The ledger's WAL checkpoints on a thread of their own, off the event loop. */
#ifndef SAKEYD_SVC_DAEMON_CKPT_H
#define SAKEYD_SVC_DAEMON_CKPT_H

#include <stdbool.h>
#include <stddef.h>

struct store;
struct store_ckpt_stat;
struct ckpt;

/*
 * Stack of the checkpoint thread: the daemon runs mlockall'd (MCL_FUTURE),
 * so every byte of a thread's stack is locked memory. A checkpoint's deepest
 * path (sqlite3_wal_checkpoint_v2 down to pwrite) uses a few KiB.
 */
#define CKPT_STACK_BYTES (256 << 10)
/* Its nice value, above the loop's (less CPU when both want it). */
#define CKPT_NICE 10

/*
 * Start the thread and its own connection to s's file (store_ckpt_open),
 * and turn the writer's automatic checkpoints off (store_autocheckpoint).
 * On failure (err says why) nothing changed: s checkpoints as before.
 */
int ckpt_start(struct store *s, struct ckpt **out, char *err, size_t err_size);

/* After a commit: a checkpoint runs soon (wakes coalesce; never blocks for one). */
void ckpt_wake(struct ckpt *k);

/*
 * The result of the last run that ended since the last call: 0, or -errno
 * with its message copied to msg (msg_size bytes); 1 if none ended since.
 * st (may be NULL) gets what that run saw.
 */
int ckpt_result(struct ckpt *k, struct store_ckpt_stat *st, char *msg, size_t msg_size);

/* Wait until every wake so far has had its run (tests; the benchmark). */
void ckpt_drain(struct ckpt *k);

/*
 * Stop the thread (after the run in progress, if any) and close its
 * connection. If final, a last checkpoint copies all of the WAL into the
 * file and empties it first (store_ckpt_run); its result is returned, and
 * its message copied to msg. The writer s must stay open until this returns.
 */
int ckpt_stop(struct ckpt *k, bool final, char *msg, size_t msg_size);

#endif
