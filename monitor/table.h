/* SPDX-License-Identifier: ISC */
/* The SA table: every SA the kernel holds, managed or not, by identity (dst, spi, proto). */
#ifndef SAKEYD_MONITOR_TABLE_H
#define SAKEYD_MONITOR_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rotate/sa.h"

enum mon_state {
	MON_LARVAL = 0,
	MON_MATURE,
	MON_DYING, /* soft lifetime reached */
};

/* Kernel lifetimes in relative seconds / bytes / packets; 0 = none. */
struct mon_limits {
	uint64_t addtime, usetime, bytes, packets;
};

struct mon_sa {
	struct rot_sa sa; /* identity, attributes, and management data if managed */
	/* Widest fields first (no padding): one entry per SA in the kernel. */
	int64_t added_at;      /* kernel addtime, Unix seconds */
	int64_t first_used_at; /* kernel usetime, 0 if never used */
	uint64_t bytes, packets;
	struct mon_limits soft, hard;
	int64_t store_id;    /* ledger row, 0 if none */
	/*
	 * The ledger's digest of what it last wrote to that row (0: none): a
	 * refresh dump that finds the entry as it was touches no row.
	 */
	uint64_t ledger_sum;
	uint32_t origin_pid; /* pid stamped on the ADD that created it (0: netlink, ip xfrm) */
	uint32_t ledger_slot; /* the ledger's queued write of this entry, + 1; 0: none */
	/* Key schedule v2: its replay state (or, PF_KEY, that it carried traffic) is recorded. */
	uint32_t replay_seq; /* the sequence number recorded */
	uint8_t state;       /* enum mon_state */
	/* Flags, one bit each: an entry per SA in the kernel. */
	bool replay_recorded : 1;
	bool managed : 1;
	bool seen : 1; /* resync mark */
	bool soft_alerted : 1, hard_alerted : 1, age_alerted : 1;
	bool was_mature : 1; /* the kernel once described it mature: its soft expiry came later */
	bool quiet_sent : 1; /* XFRM: its first-packet reports were turned off */
	/*
	 * Its key_fp is the one sakeyd derives for it (a pass compared them):
	 * later passes need not derive it again. Cleared when the kernel
	 * reports another key (sadb_fill_entry) and at every configuration swap.
	 */
	bool fp_checked : 1;
};

struct mon_table;

/* A new empty table, or NULL. */
struct mon_table *mon_table_new(void);
/* Free the table and its entries; NULL is a no-op. */
void mon_table_free(struct mon_table *t);

/* The entry with sa's identity (dst, spi, proto), or NULL. */
struct mon_sa *mon_table_get(struct mon_table *t, const struct rot_sa *id);
/*
 * The entry with sa's identity, created (zeroed, with sa copied in) if absent;
 * *created tells which. NULL on allocation failure. Pointers stay valid until
 * the entry is deleted (entries are separately allocated).
 */
struct mon_sa *mon_table_put(struct mon_table *t, const struct rot_sa *sa, bool *created);
/* Remove and free the entry with id's identity; returns whether it existed. */
bool mon_table_del(struct mon_table *t, const struct rot_sa *id);
size_t mon_table_count(const struct mon_table *t);

/*
 * Iterate: *cursor starts at 0; returns the next entry or NULL at the end.
 * The table must not change during an iteration, except by mon_table_del of
 * the entry just returned.
 */
struct mon_sa *mon_table_next(struct mon_table *t, size_t *cursor);

/*
 * Soft and hard expiry as ipseckey computes them: the earlier of
 * added_at + addtime and first_used_at + usetime (when used); 0 = none.
 */
int64_t mon_sa_soft_expires_at(const struct mon_sa *e);
int64_t mon_sa_hard_expires_at(const struct mon_sa *e);

#endif
