/* SPDX-License-Identifier: ISC */
/* The key schedule's records in the daemon: generations sent and heard per link, replay states (store/gens.h). */
#ifndef SAKEYD_DAEMON_GENBOOK_H
#define SAKEYD_DAEMON_GENBOOK_H

#include <stdbool.h>
#include <stdint.h>

#include "conf/conf.h"
#include "rotate/plan.h"
#include "store/gens.h"
#include "svc/kernel/pfkey.h"

/*
 * DESIGN.md "Key schedule v2": a sender records (link, epoch, generation)
 * durably before it installs an outbound SA, and after a loss installs the
 * next generation; a receiver records the generation carrying traffic per
 * epoch and, with XFRM, every inbound SA's replay state. The book keeps the
 * records of the epochs around now in memory; <state_dir>/generations.db
 * keeps them across crashes and reboots.
 */

/* Epochs of records kept in memory per link and direction. */
#define GENBOOK_EPOCHS 4

/* One link's records (owned by the book, kept across reloads by the link's key). */
struct link_gens {
	char key[GENS_LINK_LEN]; /* spi_prefix, local, remote */
	bool stored;             /* its link row is in the database */
	int64_t first_epoch;     /* the epoch in which the records first knew the link */
	bool fresh;              /* the records were lost or new then */
	uint64_t grace;          /* the link's, as last configured: a superseded generation's hold */
	struct {
		int64_t epoch;
		uint8_t gen; /* ROT_GEN_NONE: empty slot */
	} out[GENBOOK_EPOCHS];
	struct rot_gen_in in[GENBOOK_EPOCHS]; /* cur ROT_GEN_NONE and epoch 0 with prev 0: empty */
	bool in_used[GENBOOK_EPOCHS];
	int64_t alerted_exhausted; /* epoch + 1 of the last generations-exhausted alert; 0 none */
	int64_t alerted_unprotected; /* epoch + 1 of the last replay-unprotected alert; 0 none */
	uint32_t alerted_spi;        /* and its SPI */
};

struct genbook;

/*
 * Open <state_dir>/generations.db (created 0600 if missing) and load it.
 * err (err_size bytes) says why on failure. 0 or -errno.
 */
int genbook_open(const char *state_dir, struct genbook **out, char *err, size_t err_size);
void genbook_close(struct genbook *b);
/* Whether the database held no record when opened (new or lost state directory). */
bool genbook_was_fresh(const struct genbook *b);

/* The records of link (made, not yet stored, if the book has none; epoch = now's). NULL: no memory. */
struct link_gens *genbook_link(struct genbook *b, const struct conf_link *link, int64_t epoch);

/*
 * link's view at epoch e (rot_plan_gens): the receiver's records of e-1..e+1
 * and the outbound generation: held (the kernel still holds an outbound SA
 * of e: adopt it) or the next one (*fresh_out set: record it before the
 * add), ROT_GEN_NONE when the series is used up.
 */
void genbook_view(const struct link_gens *g, int64_t e, uint8_t held, struct rot_gen_view *v,
		  bool *fresh_out);

/* The receiver's record of inbound epoch k (ROT_GEN_IN_DEFAULT or all unknown if none). */
struct rot_gen_in genbook_in(const struct link_gens *g, int64_t k);

/* Stage a sender record (link, e, gen) for the next genbook_commit. 0 or -errno. */
int genbook_stage_out(struct genbook *b, struct link_gens *g, int64_t e, uint8_t gen, int64_t now);
/*
 * Write the staged records in one transaction, synced to disk when it
 * returns 0; only then are they in memory (genbook_view sees them). On
 * failure nothing staged is kept: the caller installs none of them.
 */
int genbook_commit(struct genbook *b);
/* Drop what is staged. */
void genbook_rollback(struct genbook *b);

/*
 * Traffic was seen on generation s of inbound epoch k: if it supersedes the
 * record (rot_gen_supersedes), s is current from now on (in memory at once,
 * on disk with the next genbook_commit), the old one held for the link's
 * grace (added by genbook_in: a reload may change it). Returns 1 if promoted, 0 if not, -errno if it could not be staged
 * (memory unchanged). *was (if not NULL) gets the old one.
 */
int genbook_promote(struct genbook *b, struct link_gens *g, int64_t k, uint8_t s, int64_t now,
		    uint8_t *was);
/* Whether records are staged and not committed yet. */
bool genbook_pending(const struct genbook *b);

/* Stage the replay state of an inbound SA (XFRM) or, with r NULL, that it carried traffic. */
int genbook_stage_replay(struct genbook *b, const struct link_gens *g, const struct rot_sa *sa,
			 const struct kern_replay *r, int64_t now);
/* The replay state recorded for sa's identity in sa's epoch: 1 (state in *r, or r->bmp_len 0: traffic, no state), 0 none, -errno. */
int genbook_replay_of(struct genbook *b, const struct rot_sa *sa, struct kern_replay *r);

/*
 * Once per pass, not per SA: reopen generations.db if it was deleted or
 * replaced (and write the records held), so the pass's lookups see the
 * file the next start reads. 0 or -errno (the next write retries).
 */
int genbook_check_file(struct genbook *b);

/* What the book asked of the file system and SQLite (debug log, tests). */
struct genbook_stats {
	uint64_t replay_lookups; /* genbook_replay_of calls */
	uint64_t db_reads;       /* of them, the ones a row of the SA's epoch sent to SQLite */
	uint64_t file_checks;    /* stat of generations.db: deleted or replaced? */
};
struct genbook_stats genbook_stats(const struct genbook *b);

/* Link key text of link (GENS_LINK_LEN). */
void genbook_link_key(const struct conf_link *link, char out[GENS_LINK_LEN]);

#endif
