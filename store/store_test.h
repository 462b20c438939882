/* SPDX-License-Identifier: ISC */
/* Test hooks of store/: databases at older schema versions and raw SQL. Not for sakeyd or sactl. */
#ifndef SAKEYD_STORE_STORE_TEST_H
#define SAKEYD_STORE_STORE_TEST_H

#include <stdint.h>

#include "store/store.h"

/*
 * Create <dir>/sakeyd.db (dir must exist, the file must not) at schema
 * version (0..STORE_SCHEMA_VERSION) by running the real migration steps up
 * to it, as a sakeyd of that version left it. 0, -EEXIST, -EINVAL or an error.
 */
int store_test_create(const char *dir, int version);

/* Run sql (one or more statements) on <dir>/sakeyd.db on a connection of its own. */
int store_test_exec(const char *dir, const char *sql);

/* First column of the first row of sql on <dir>/sakeyd.db into *out; -ENOENT if no row. */
int store_test_query_int(const char *dir, const char *sql, int64_t *out);

/* Run sql on s's own connection (for per-connection pragmas such as max_page_count). */
int store_test_exec_on(struct store *s, const char *sql);

#endif
