/* SPDX-License-Identifier: ISC */
/* libFuzzer target: gens_load() on generations.db rows of any type and value, as a hostile file holds. */

/* Compiled in for the harness's coverage instrumentation, as fuzz_conf.c does with conf.c. */
#include "store/gens.c"

#include <arpa/inet.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "store/gens.h"

/*
 * Input: a series of rows. Each row: one byte for the table (mod 4: link,
 * gen_out, gen_in, replay), then for each of the table's columns one byte
 * for the value's type (mod 5: integer, text, blob, NULL, real) and the value
 * (integer and real: 8 bytes; text and blob: a length byte and that many
 * bytes). Rows go in with the schema's CHECKs off, as anyone writing the
 * file could; a row SQLite refuses (NOT NULL, a duplicate key) is skipped.
 * gens_load must then succeed with records that keep every rule of
 * gens.h, or fail with -EIO; nothing else, and no crash.
 */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const insert_sql[] = {
	"INSERT INTO link (link, first_epoch, fresh, at) VALUES (?, ?, ?, ?)",
	"INSERT INTO gen_out (link, epoch, gen, at) VALUES (?, ?, ?, ?)",
	"INSERT INTO gen_in (link, epoch, gen, prev, since) VALUES (?, ?, ?, ?, ?)",
	("INSERT INTO replay (dst, spi, link, epoch, gen, window, seq, seq_hi, bmp_len, bmp, at) "
	 "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"),
};
static const int ncols[] = { 4, 4, 5, 11 };

static char dir[64];

static void remove_dir(void)
{
	static const char *const names[] = { GENS_DB_NAME, GENS_DB_NAME "-wal",
					     GENS_DB_NAME "-shm" };
	char path[128];

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		unlink(path);
	}
	rmdir(dir);
}

static bool take(const uint8_t **p, const uint8_t *end, size_t n)
{
	return (size_t)(end - *p) >= n;
}

/* Bind column i from the input; false when the input runs out. */
static bool bind_one(sqlite3_stmt *st, int i, const uint8_t **p, const uint8_t *end)
{
	uint8_t type, len;
	int64_t v;
	double d;

	if (!take(p, end, 1))
		return false;
	type = *(*p)++ % 5;
	switch (type) {
	case 0:
	case 4:
		if (!take(p, end, 8))
			return false;
		memcpy(&v, *p, 8);
		memcpy(&d, *p, 8);
		*p += 8;
		if (type == 0)
			sqlite3_bind_int64(st, i, v);
		else
			sqlite3_bind_double(st, i, d);
		return true;
	case 1:
	case 2:
		if (!take(p, end, 1))
			return false;
		len = *(*p)++;
		if (!take(p, end, len))
			return false;
		if (type == 1)
			sqlite3_bind_text(st, i, (const char *)*p, len, SQLITE_TRANSIENT);
		else
			sqlite3_bind_blob(st, i, *p, len, SQLITE_TRANSIENT);
		*p += len;
		return true;
	default:
		sqlite3_bind_null(st, i);
		return true;
	}
}

static bool printable_link(const char *t)
{
	size_t n = strnlen(t, GENS_LINK_LEN);

	if (n == 0 || n >= GENS_LINK_LEN)
		return false;
	for (size_t i = 0; i < n; i++)
		if (t[i] < 0x20 || t[i] >= 0x7f)
			return false;
	return true;
}

static int on_link(const struct gens_link *r, void *arg)
{
	(void)arg;
	if (!printable_link(r->link))
		abort();
	return 0;
}

static int on_out(const struct gens_out *r, void *arg)
{
	(void)arg;
	if (!printable_link(r->link) || r->gen > GENS_GEN_MAX)
		abort();
	return 0;
}

static int on_in(const struct gens_in *r, void *arg)
{
	(void)arg;
	if (!printable_link(r->link) || (r->gen > GENS_GEN_MAX && r->gen != GENS_GEN_UNKNOWN) ||
	    (r->prev > GENS_GEN_MAX && r->prev != GENS_GEN_UNKNOWN))
		abort();
	return 0;
}

static int on_replay(const struct gens_replay *r, void *arg)
{
	unsigned char bytes[16];

	(void)arg;
	if (!printable_link(r->link) || r->gen > GENS_GEN_MAX || r->bmp_len > GENS_BMP_MAX ||
	    !memchr(r->dst, '\0', sizeof(r->dst)) ||
	    (inet_pton(AF_INET, r->dst, bytes) != 1 && inet_pton(AF_INET6, r->dst, bytes) != 1))
		abort();
	for (uint32_t i = r->bmp_len; i < GENS_BMP_MAX; i++)
		if (r->bmp[i])
			abort();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *p = data, *end = data + size;
	struct gens_visit v = { on_link, on_out, on_in, on_replay, NULL };
	char path[128];
	struct gens *g = NULL;
	sqlite3 *db = NULL;
	bool fresh;
	int ret;

	if (!dir[0]) {
		/* /dev/shm where there is one: every open syncs (synchronous = FULL). */
		snprintf(dir, sizeof(dir), "%s/fuzz_gens.XXXXXX",
			 access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
		if (!mkdtemp(dir))
			abort();
		atexit(remove_dir);
	}
	snprintf(path, sizeof(path), "%s/%s", dir, GENS_DB_NAME);
	/* A fresh schema each run. */
	if (gens_open(dir, &g, &fresh, NULL, 0))
		abort();
	gens_close(g);
	if (sqlite3_open(path, &db) != SQLITE_OK)
		abort();
	sqlite3_exec(db, "PRAGMA ignore_check_constraints = 1; PRAGMA synchronous = OFF; BEGIN; "
			 "DELETE FROM link; DELETE FROM gen_out; DELETE FROM gen_in; "
			 "DELETE FROM replay",
		     NULL, NULL, NULL);
	while (take(&p, end, 1)) {
		unsigned table = *p++ % 4;
		sqlite3_stmt *st = NULL;
		bool whole = true;

		if (sqlite3_prepare_v2(db, insert_sql[table], -1, &st, NULL) != SQLITE_OK)
			abort();
		for (int i = 1; i <= ncols[table] && whole; i++)
			whole = bind_one(st, i, &p, end);
		if (whole)
			sqlite3_step(st); /* refused rows (NOT NULL, duplicates) are skipped */
		sqlite3_finalize(st);
		if (!whole)
			break;
	}
	sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
	sqlite3_close(db);

	if (gens_open(dir, &g, &fresh, NULL, 0))
		abort();
	ret = gens_load(g, &v);
	if (ret != 0 && ret != -EIO)
		abort();
	if (ret == -EIO && !strstr(gens_errmsg(g), "corrupt"))
		abort(); /* every refusal is explained */
	gens_close(g);
	return 0;
}
