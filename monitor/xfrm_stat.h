/* SPDX-License-Identifier: ISC */
/* The kernel's IPsec error counters (/proc/net/xfrm_stat): parsing, and which of them rose. */
#ifndef SAKEYD_MONITOR_XFRM_STAT_H
#define SAKEYD_MONITOR_XFRM_STAT_H

#include <stddef.h>
#include <stdint.h>

/* Longest counter name of /proc/net/xfrm_stat kept, NUL included. */
#define MON_XFRM_NAME_LEN 48
/* Counters kept (Linux 6.x has 30). */
#define MON_XFRM_MAX 64

struct mon_xfrm_stat {
	char name[MON_XFRM_NAME_LEN]; /* as the kernel names it: "XfrmInError" */
	uint64_t value;
};

/*
 * Parse the text of /proc/net/xfrm_stat (len bytes, need not end in a NUL):
 * lines "NAME<spaces or tabs>DECIMAL", NAME of letters, digits and '_'.
 * Fills out[0..*n). Returns 0, -EINVAL (a malformed line: the whole text is
 * refused), -ERANGE (a value above UINT64_MAX), -E2BIG (more than max
 * counters, or a name of MON_XFRM_NAME_LEN or more).
 */
int mon_xfrm_stat_parse(const char *text, size_t len, struct mon_xfrm_stat *out, size_t max,
			size_t *n);

/*
 * Which counters rose from prev[0..nprev) to cur[0..ncur), matched by name:
 * "XfrmInNoStates +12 (now 40), XfrmInStateProtoError +1 (now 1)" into msg
 * (len bytes, always NUL-terminated when len > 0; cut short if too small).
 * A counter missing from prev is a baseline and one that fell was reset:
 * neither counts. Returns how many counters rose.
 */
size_t mon_xfrm_stat_rises(const struct mon_xfrm_stat *prev, size_t nprev,
			   const struct mon_xfrm_stat *cur, size_t ncur, char *msg, size_t len);

#endif
