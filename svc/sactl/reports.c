/* SPDX-License-Identifier: ISC */
/* sactl's database subcommands: status, check, history and events, read-only from sakeyd.db. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "conf/conf.h"
#include "monitor/range.h"
#include "monitor/rules.h"
#include "rotate/keysched.h"
#include "store/store.h"
#include "svc/sactl/sactl.h"

/*
 * SACTL_NOW=<Unix seconds> replaces the clock (ages, "in ...", the event
 * window): the test suite uses it for stable output. Times are printed in
 * the local time zone (TZ).
 */
#define NOW_ENV "SACTL_NOW"
/* check: the last check time, in state_dir (written when sactl may write there). */
#define CHECK_STATE_NAME "check.state"
/* events: the default window. */
#define EVENTS_SINCE_S 3600

struct db {
	struct config *cfg;
	struct store *s;
	int64_t now;
	/* What the meta table says about the daemon. */
	int64_t pid, last_write_at, last_dump_at;
	bool running;
	/* Why db_open failed and the fix, one line (check prints it after "SAKEYD UNKNOWN - "). */
	char why[768];
};

/* ---- Helpers ---- */

static int64_t now_s(void)
{
	const char *v = getenv(NOW_ENV);
	char *end;
	long long t;

	if (v && *v) {
		errno = 0;
		t = strtoll(v, &end, 10);
		if (!errno && !*end && t > 0)
			return t;
	}
	return (int64_t)time(NULL);
}

static char *clock_str(int64_t t, char buf[32])
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (!localtime_r(&tt, &tm) || !strftime(buf, 32, "%Y-%m-%d %H:%M:%S", &tm))
		snprintf(buf, 32, "%" PRId64, t);
	return buf;
}

static const char *proto_name(uint8_t proto, char buf[8])
{
	switch (proto) {
	case 50:
		return "esp";
	case 51:
		return "ah";
	case 108:
		return "comp";
	default:
		snprintf(buf, 8, "%u", (unsigned)proto);
		return buf;
	}
}

/* A JSON string, escaped (RFC 8259 §7); bytes outside ASCII as \u00XX: the output stays UTF-8. */
static void json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
		switch (*c) {
		case '"':
			fputs("\\\"", f);
			break;
		case '\\':
			fputs("\\\\", f);
			break;
		case '\n':
			fputs("\\n", f);
			break;
		case '\r':
			fputs("\\r", f);
			break;
		case '\t':
			fputs("\\t", f);
			break;
		default:
			if (*c < 0x20 || *c >= 0x7f)
				fprintf(f, "\\u%04x", *c);
			else
				fputc(*c, f);
		}
	}
	fputc('"', f);
}

/* A JSON string, or null for "". */
static void json_str_or_null(FILE *f, const char *s)
{
	if (s && *s)
		json_str(f, s);
	else
		fputs("null", f);
}

static void json_int_or_null(FILE *f, int64_t v)
{
	if (v)
		fprintf(f, "%" PRId64, v);
	else
		fputs("null", f);
}

/* Whether pid is a live sakeyd: signal 0 reaches it and (where /proc says) it is named sakeyd*. */
static bool pid_is_sakeyd(int64_t pid)
{
	char path[64], comm[32] = "";
	FILE *f;

	if (pid <= 0 || pid > INT32_MAX)
		return false;
	if (kill((pid_t)pid, 0) && errno != EPERM)
		return false;
	/* After a crash the pid may have been given to another process: compare the name. */
	snprintf(path, sizeof(path), "/proc/%" PRId64 "/comm", pid);
	f = fopen(path, "re");
	if (!f)
		return true; /* no /proc, or hidepid: trust the signal */
	if (!fgets(comm, sizeof(comm), f))
		comm[0] = '\0';
	fclose(f);
	return strncmp(comm, "sakeyd", 6) == 0;
}

static void __attribute__((format(printf, 2, 3))) set_why(struct db *db, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(db->why, sizeof(db->why), fmt, ap);
	va_end(ap);
}

/*
 * Why a user cannot read the database, and the fix: " (...)". sakeyd shares
 * state_dir with group STORE_GROUP_NAME when that group exists at its start.
 */
static void access_hint(const char *dir, char *buf, size_t len)
{
	struct group *gr = getgrnam(STORE_GROUP_NAME);
	struct stat st;

	if (geteuid() == 0) {
		snprintf(buf, len, " (root may read it: is the state_dir on a file system "
				   "that refuses root?)");
		return;
	}
	if (!gr) {
		snprintf(buf, len,
			 " (only root may read it: create the group " STORE_GROUP_NAME " "
			 "(addgroup --system " STORE_GROUP_NAME "), restart sakeyd, which then "
			 "shares state_dir with it, and add this user (uid %lu) to it; or run "
			 "sactl as root)",
			 (unsigned long)geteuid());
		return;
	}
	if (stat(dir, &st) == 0 && st.st_gid == gr->gr_gid && (st.st_mode & 0050) == 0050) {
		snprintf(buf, len,
			 " (state_dir is shared with group " STORE_GROUP_NAME ", and uid %lu is "
			 "not in it: adduser USER " STORE_GROUP_NAME ", then restart the "
			 "monitoring agent so it gets the group)",
			 (unsigned long)geteuid());
		return;
	}
	snprintf(buf, len,
		 " (group " STORE_GROUP_NAME " exists, but sakeyd has not shared state_dir "
		 "with it: restart sakeyd (it shares it at start, as root); and add uid %lu "
		 "to the group)",
		 (unsigned long)geteuid());
}

static void db_close(struct db *db)
{
	store_close(db->s);
	conf_free(db->cfg);
	db->s = NULL;
	db->cfg = NULL;
}

/*
 * Load the config and open its database read-only. Prints what went wrong.
 * Returns 0, or -errno (-ENOENT: no database yet).
 */
static int db_open(const struct sactl_ctx *ctx, const char *cmd, struct db *db)
{
	char err[STORE_ERRMSG_LEN] = "";
	int ret;

	memset(db, 0, sizeof(*db));
	db->now = now_s();
	ret = sactl_load_config(ctx, &db->cfg);
	if (ret) {
		if (ret == -EACCES)
			set_why(db,
				 "cannot read the configuration %s: permission denied; to check "
				 "without root, let group " STORE_GROUP_NAME " read it: chgrp "
				 STORE_GROUP_NAME " %s and its directory, chmod g+r %s, chmod "
				 "g+rx on the directory (secret files stay 0600 root)",
				 ctx->config_path, ctx->config_path, ctx->config_path);
		else if (ret == -ENOENT)
			set_why(db,
				 "no configuration %s; give sakeyd's with: sactl -c FILE check",
				 ctx->config_path);
		else
			set_why(db,
				 "cannot use the configuration %s: %s; check it with: sakeyd "
				 "--check -c %s",
				 ctx->config_path, strerror(-ret), ctx->config_path);
		return ret;
	}
	ret = store_open(db->cfg->daemon.state_dir, true, &db->s, err, sizeof(err));
	if (ret) {
		char hint[320] = "";

		if (ret == -ENOENT)
			snprintf(hint, sizeof(hint),
				 " (no database yet: has sakeyd run with this state_dir?)");
		else if (ret == -EACCES || ret == -EPERM)
			access_hint(db->cfg->daemon.state_dir, hint, sizeof(hint));
		else if (ret == -EPROTO)
			snprintf(hint, sizeof(hint),
				 " (an older schema: start the new sakeyd once to migrate it)");
		fprintf(stderr, "%s: %s: cannot read %s/%s: %s%s\n", ctx->prog, cmd,
			db->cfg->daemon.state_dir, STORE_DB_NAME, err[0] ? err : strerror(-ret),
			hint);
		if (ret == -ENOENT)
			set_why(db, "no database %s/%s yet: has sakeyd run with this state_dir?",
				db->cfg->daemon.state_dir, STORE_DB_NAME);
		else
			set_why(db, "cannot read %s/%s: %s%s", db->cfg->daemon.state_dir,
				STORE_DB_NAME,
				ret == -EACCES || ret == -EPERM ? "permission denied" :
				err[0] ? err : strerror(-ret),
				hint);
		db_close(db);
		return ret;
	}
	if (store_meta_get_int(db->s, STORE_META_PID, &db->pid))
		db->pid = 0;
	if (store_meta_get_int(db->s, STORE_META_LAST_WRITE_AT, &db->last_write_at))
		db->last_write_at = 0;
	if (store_meta_get_int(db->s, STORE_META_LAST_DUMP_AT, &db->last_dump_at))
		db->last_dump_at = 0;
	db->running = pid_is_sakeyd(db->pid);
	return 0;
}

/* "data 4s old" */
static char *data_age(const struct db *db, char *buf, size_t len)
{
	char h[MON_HUMAN_LEN];

	if (!db->last_write_at)
		snprintf(buf, len, "no data written yet");
	else
		snprintf(buf, len, "data %s old",
			 mon_human_duration(db->now - db->last_write_at, h));
	return buf;
}

/* The first line of the text outputs: is the daemon running, how old is the data. */
static void print_header(const struct db *db, FILE *f)
{
	char age[64], h[MON_HUMAN_LEN];

	data_age(db, age, sizeof(age));
	if (db->running) {
		fprintf(f, "sakeyd running (pid %" PRId64 "), %s", db->pid, age);
		if (db->last_dump_at)
			fprintf(f, ", last kernel dump %s ago",
				mon_human_duration(db->now - db->last_dump_at, h));
		fputc('\n', f);
	} else if (db->pid) {
		fprintf(f, "WARNING: sakeyd is not running (pid %" PRId64 " is gone; it did not "
			   "stop cleanly), %s: the kernel may hold other SAs by now\n",
			db->pid, age);
	} else {
		fprintf(f, "WARNING: sakeyd is not running, %s: the kernel may hold other SAs "
			   "by now\n",
			age);
	}
}

/* The version of the --json objects: 2 wraps the rows in an object (1 was a bare array). */
#define JSON_SCHEMA 2

/* The start of every --json object: schema, is the daemon running, how old the data is. */
static void json_head(const struct db *db, FILE *f)
{
	fprintf(f, "{\"schema\": %d, \"daemon_running\": %s, \"read_at\": %" PRId64
		   ", \"data_age_s\": ",
		JSON_SCHEMA, db->running ? "true" : "false", db->now);
	if (db->last_write_at)
		fprintf(f, "%" PRId64, db->now - db->last_write_at);
	else
		fputs("null", f);
}

/*
 * --link NAME must name a link of the configuration (conf.d included): a
 * typo would otherwise show nothing, as if the link had no SA. Prints the
 * error and returns false.
 */
static bool link_known(const struct sactl_ctx *ctx, const char *cmd, const struct config *cfg,
		       const char *name)
{
	if (!name)
		return true;
	for (size_t i = 0; i < cfg->nlinks; i++)
		if (!strcmp(cfg->links[i].name, name))
			return true;
	fprintf(stderr, "%s: %s: --link %s: no such link in %s%s; ", ctx->prog, cmd, name,
		cfg->path, cfg->ndropins ? " and its conf.d" : "");
	if (!cfg->nlinks) {
		fprintf(stderr, "it has no links\n");
		return false;
	}
	fprintf(stderr, "its links are:");
	for (size_t i = 0; i < cfg->nlinks && i < 20; i++)
		fprintf(stderr, " %s", cfg->links[i].name);
	fprintf(stderr, "%s\n", cfg->nlinks > 20 ? " ..." : "");
	return false;
}

/* ---- A text table, columns sized to their content ---- */

#define COL_MAX 12
#define CELL_LEN 128

struct table {
	size_t ncol, nrow, cap;
	const char *head[COL_MAX];
	bool right[COL_MAX];
	char (*cell)[COL_MAX][CELL_LEN]; /* rows */
};

static char *cell(struct table *t, size_t row, size_t col)
{
	return t->cell[row][col];
}

/* A new row (cells ""), or -1 on allocation failure. */
static long table_row(struct table *t)
{
	if (t->nrow == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 16;
		void *p = realloc(t->cell, cap * sizeof(*t->cell));

		if (!p)
			return -1;
		t->cell = p;
		t->cap = cap;
	}
	memset(t->cell[t->nrow], 0, sizeof(*t->cell));
	return (long)t->nrow++;
}

static void __attribute__((format(printf, 4, 5)))
set(struct table *t, long row, size_t col, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cell(t, (size_t)row, col), CELL_LEN, fmt, ap);
	va_end(ap);
}

static void table_print(const struct table *t, FILE *f)
{
	size_t w[COL_MAX];

	for (size_t c = 0; c < t->ncol; c++) {
		w[c] = strlen(t->head[c]);
		for (size_t r = 0; r < t->nrow; r++)
			if (strlen(t->cell[r][c]) > w[c])
				w[c] = strlen(t->cell[r][c]);
	}
	for (size_t r = 0; r <= t->nrow; r++) {
		for (size_t c = 0; c < t->ncol; c++) {
			const char *v = r ? t->cell[r - 1][c] : t->head[c];
			bool last = c + 1 == t->ncol;

			if (t->right[c])
				fprintf(f, "%*s", (int)w[c], v);
			else if (last)
				fputs(v, f);
			else
				fprintf(f, "%-*s", (int)w[c], v);
			if (!last)
				fputs("  ", f);
		}
		fputc('\n', f);
	}
}

/* ---- status ---- */

#define STATUS_USAGE "[-c FILE] status [--json] [--link NAME] [--all]"

static int cmp_status(const void *pa, const void *pb)
{
	const struct store_sa *a = pa, *b = pb;
	bool ga = a->state == STORE_SA_GONE, gb = b->state == STORE_SA_GONE;
	int c;

	if (ga != gb)
		return ga ? 1 : -1;
	if (ga && a->gone_at != b->gone_at)
		return a->gone_at < b->gone_at ? -1 : 1;
	if (a->managed != b->managed)
		return a->managed ? -1 : 1;
	if (a->managed) {
		c = strcmp(a->link, b->link);
		if (c)
			return c;
		if (a->dir != b->dir)
			return a->dir < b->dir ? -1 : 1;
		if (a->epoch != b->epoch)
			return a->epoch < b->epoch ? -1 : 1;
	}
	c = strcmp(a->dst, b->dst);
	if (c)
		return c;
	if (a->spi != b->spi)
		return a->spi < b->spi ? -1 : 1;
	if (a->proto != b->proto)
		return a->proto < b->proto ? -1 : 1;
	return a->id < b->id ? -1 : a->id > b->id;
}

/* "in 3m12s", "reached", "-" */
static void expiry_str(const struct store_sa *sa, int64_t at, int64_t now, char *buf, size_t len)
{
	char h[MON_HUMAN_LEN];

	if (!at || sa->state == STORE_SA_GONE)
		snprintf(buf, len, "-");
	else if (at <= now)
		snprintf(buf, len, "reached");
	else
		snprintf(buf, len, "in %s", mon_human_duration(at - now, h));
}

/* A link's schedule and current outbound SA, for status. */
struct link_row {
	const char *name;
	bool has_schedule;
	int64_t epoch, next_rotation;
	int gen; /* of the current outbound SA; -1 if none */
};

/*
 * The links of the config (or only want), each with its epoch and next
 * rotation (from the daemon's STORE_META_SCHEDULE row, or from the config
 * when its phase is explicit) and its outbound SA's generation (the newest
 * live managed outbound row). *out (malloc'd) and *nout; -ENOMEM.
 */
static int link_rows(struct db *db, const char *want, const struct store_sa *rows, size_t n,
		     struct link_row **out, size_t *nout)
{
	const struct config *cfg = db->cfg;
	struct link_row *lr = calloc(cfg->nlinks ? cfg->nlinks : 1, sizeof(*lr));
	size_t k = 0;

	if (!lr)
		return -ENOMEM;
	for (size_t i = 0; i < cfg->nlinks; i++) {
		const struct conf_link *l = &cfg->links[i];
		char key[STORE_META_SCHEDULE_LEN], value[64];
		unsigned long long period = 0, phase = 0;
		int64_t best = INT64_MIN;

		if (want && strcmp(want, l->name))
			continue;
		lr[k].name = l->name;
		lr[k].gen = -1;
		store_meta_schedule_key(l->name, key);
		if (!store_meta_get(db->s, key, value, sizeof(value)) &&
		    sscanf(value, "period=%llu phase=%llu", &period, &phase) == 2 && period &&
		    period <= ROT_PERIOD_MAX && phase < period) {
			lr[k].has_schedule = true;
		} else if (!l->phase_auto) {
			period = l->rotate_every;
			phase = l->phase;
			lr[k].has_schedule = true;
		}
		if (lr[k].has_schedule) {
			lr[k].epoch = rot_epoch(db->now, period, phase);
			lr[k].next_rotation = rot_epoch_start(lr[k].epoch + 1, period, phase);
		}
		for (size_t j = 0; j < n; j++) {
			const struct store_sa *sa = &rows[j];

			if (sa->managed && sa->dir == STORE_DIR_OUT && sa->state != STORE_SA_GONE &&
			    sa->has_epoch && !strcmp(sa->link, l->name) && sa->epoch > best) {
				best = sa->epoch;
				lr[k].gen = rot_spi_gen(sa->spi);
			}
		}
		k++;
	}
	*out = lr;
	*nout = k;
	return 0;
}

static void links_json(const struct link_row *lr, size_t n, FILE *f)
{
	fputs("\"links\": [", f);
	for (size_t i = 0; i < n; i++) {
		fputs(i ? ",\n  {\"link\": " : "\n  {\"link\": ", f);
		json_str(f, lr[i].name);
		fputs(", \"epoch\": ", f);
		if (lr[i].has_schedule)
			fprintf(f, "%" PRId64 ", \"next_rotation_at\": %" PRId64, lr[i].epoch,
				lr[i].next_rotation);
		else
			fputs("null, \"next_rotation_at\": null", f);
		fputs(", \"generation\": ", f);
		if (lr[i].gen >= 0)
			fprintf(f, "%d}", lr[i].gen);
		else
			fputs("null}", f);
	}
	fputs(n ? "\n]" : "]", f);
}

static int links_text(const struct link_row *lr, size_t n, int64_t now, FILE *f)
{
	struct table t = {
		.ncol = 4,
		.head = { "LINK", "EPOCH", "GEN", "NEXT ROTATION" },
		.right = { [1] = true, [2] = true },
	};
	char h[MON_HUMAN_LEN], tbuf[32];

	for (size_t i = 0; i < n; i++) {
		long r = table_row(&t);

		if (r < 0) {
			free(t.cell);
			return -ENOMEM;
		}
		set(&t, r, 0, "%s", lr[i].name);
		if (lr[i].has_schedule) {
			set(&t, r, 1, "%" PRId64, lr[i].epoch);
			set(&t, r, 3, "in %s (%s)", mon_human_duration(lr[i].next_rotation - now, h),
			    clock_str(lr[i].next_rotation, tbuf));
		} else {
			set(&t, r, 1, "-");
			set(&t, r, 3, "unknown (auto phase: sakeyd has not recorded it yet)");
		}
		if (lr[i].gen >= 0)
			set(&t, r, 2, "%d", lr[i].gen);
		else
			set(&t, r, 2, "-");
	}
	if (n) {
		table_print(&t, f);
		fputc('\n', f);
	}
	free(t.cell);
	return 0;
}

static void status_json(const struct store_sa *rows, size_t n, int64_t now, FILE *f)
{
	char pbuf[8];

	fputs("\"sas\": [", f);
	for (size_t i = 0; i < n; i++) {
		const struct store_sa *sa = &rows[i];

		fputs(i ? ",\n  {" : "\n  {", f);
		fputs("\"link\": ", f);
		json_str_or_null(f, sa->link);
		fputs(", \"dir\": ", f);
		json_str_or_null(f, store_dir_name(sa->dir) ? store_dir_name(sa->dir) : "");
		fprintf(f, ", \"spi\": %" PRIu32 ", \"generation\": ", sa->spi);
		/* Key schedule v2: a managed SPI carries its generation; another tool's does not. */
		if (sa->managed)
			fprintf(f, "%u", (unsigned)rot_spi_gen(sa->spi));
		else
			fputs("null", f);
		fputs(", \"src\": ", f);
		json_str(f, sa->src);
		fputs(", \"dst\": ", f);
		json_str(f, sa->dst);
		fputs(", \"proto\": ", f);
		json_str(f, proto_name(sa->proto, pbuf));
		fputs(", \"mode\": ", f);
		json_str_or_null(f, sa->mode);
		fputs(", \"algorithm\": ", f);
		json_str_or_null(f, sa->algorithm);
		fputs(", \"epoch\": ", f);
		if (sa->has_epoch)
			fprintf(f, "%" PRId64, sa->epoch);
		else
			fputs("null", f);
		fprintf(f, ", \"managed\": %s, \"state\": ", sa->managed ? "true" : "false");
		json_str(f, store_sa_state_name(sa->state));
		fprintf(f, ", \"added_at\": %" PRId64 ", \"age_s\": %" PRId64, sa->added_at,
			mon_stored_sa_age(sa, now));
		fputs(", \"soft_expires_at\": ", f);
		json_int_or_null(f, sa->soft_expires_at);
		fputs(", \"hard_expires_at\": ", f);
		json_int_or_null(f, sa->hard_expires_at);
		fprintf(f, ", \"bytes\": %" PRIu64 ", \"packets\": %" PRIu64 ", \"key_fp\": ",
			sa->bytes, sa->packets);
		json_str_or_null(f, sa->key_fp);
		fputs("}", f);
	}
	fputs(n ? "\n]" : "]", f);
}

static int status_text(const struct store_sa *rows, size_t n, int64_t now, FILE *f)
{
	struct table t = {
		.ncol = 12,
		.head = { "LINK", "DIR", "SPI", "GEN", "SRC -> DST", "ALGORITHM", "AGE", "SOFT",
			  "HARD", "BYTES", "PACKETS", "STATE" },
		.right = { [3] = true, [9] = true, [10] = true },
	};
	char h[MON_HUMAN_LEN], buf[48];

	if (!n) {
		fprintf(f, "no SAs\n");
		return 0;
	}
	for (size_t i = 0; i < n; i++) {
		const struct store_sa *sa = &rows[i];
		long r = table_row(&t);

		if (r < 0) {
			free(t.cell);
			return -ENOMEM;
		}
		set(&t, r, 0, "%s", sa->link[0] ? sa->link : "-");
		set(&t, r, 1, "%s", store_dir_name(sa->dir) ? store_dir_name(sa->dir) : "-");
		set(&t, r, 2, "0x%08" PRIx32, sa->spi);
		if (sa->managed)
			set(&t, r, 3, "%u", (unsigned)rot_spi_gen(sa->spi));
		else
			set(&t, r, 3, "-");
		set(&t, r, 4, "%s -> %s", sa->src, sa->dst);
		set(&t, r, 5, "%s", sa->algorithm[0] ? sa->algorithm : "-");
		set(&t, r, 6, "%s", mon_human_duration(mon_stored_sa_age(sa, now), h));
		expiry_str(sa, sa->soft_expires_at, now, buf, sizeof(buf));
		set(&t, r, 7, "%s", buf);
		expiry_str(sa, sa->hard_expires_at, now, buf, sizeof(buf));
		set(&t, r, 8, "%s", buf);
		set(&t, r, 9, "%" PRIu64, sa->bytes);
		set(&t, r, 10, "%" PRIu64, sa->packets);
		if (sa->state == STORE_SA_GONE)
			set(&t, r, 11, "gone %s ago", mon_human_duration(now - sa->gone_at, h));
		else
			set(&t, r, 11, "%s", store_sa_state_name(sa->state));
	}
	table_print(&t, f);
	free(t.cell);
	return 0;
}

int sactl_cmd_status(const struct sactl_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "link", required_argument, NULL, 'l' },
		{ "all", no_argument, NULL, 'a' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct store_sa_query q = { 0 };
	struct store_sa *rows = NULL;
	struct link_row *lr = NULL;
	struct db db;
	bool json = false;
	size_t n = 0, nl = 0;
	int opt, ret;

	while ((opt = getopt_long(argc, argv, "jl:ah", opts, NULL)) != -1) {
		switch (opt) {
		case 'j':
			json = true;
			break;
		case 'l':
			q.link = optarg;
			break;
		case 'a':
			q.include_gone = true;
			break;
		case 'h':
			printf("usage: %s " STATUS_USAGE "\n"
			       "  --json       one JSON object: schema, daemon_running, read_at,\n"
			       "               data_age_s, links (epoch, next_rotation_at,\n"
			       "               generation) and sas (DESIGN.md fields)\n"
			       "  --link NAME  only link NAME (a link of the configuration)\n"
			       "  --all        also SAs no longer in the kernel\n",
			       ctx->prog);
			return SACTL_EXIT_OK;
		default:
			fprintf(stderr, "usage: %s " STATUS_USAGE "\n", ctx->prog);
			return SACTL_EXIT_USAGE;
		}
	}
	if (sactl_extra_args(ctx, argc, argv, STATUS_USAGE))
		return SACTL_EXIT_USAGE;
	if (db_open(ctx, "status", &db))
		return SACTL_EXIT_FAILURE;
	if (!link_known(ctx, "status", db.cfg, q.link)) {
		db_close(&db);
		return SACTL_EXIT_FAILURE;
	}
	ret = store_sa_list(db.s, &q, &rows, &n);
	if (ret) {
		fprintf(stderr, "%s: status: reading the SAs: %s\n", ctx->prog, store_errmsg(db.s));
		db_close(&db);
		return SACTL_EXIT_FAILURE;
	}
	if (n)
		qsort(rows, n, sizeof(*rows), cmp_status);
	ret = link_rows(&db, q.link, rows, n, &lr, &nl);
	if (ret) {
		/* reported below */
	} else if (json) {
		if (!db.running)
			print_header(&db, stderr);
		json_head(&db, stdout);
		fputs(", ", stdout);
		links_json(lr, nl, stdout);
		fputs(",\n", stdout);
		status_json(rows, n, db.now, stdout);
		fputs("}\n", stdout);
	} else {
		print_header(&db, stdout);
		ret = links_text(lr, nl, db.now, stdout);
		if (!ret)
			ret = status_text(rows, n, db.now, stdout);
	}
	free(lr);
	store_list_free(rows);
	db_close(&db);
	if (fflush(stdout) || ret) {
		fprintf(stderr, "%s: status: %s\n", ctx->prog, strerror(ret ? -ret : errno));
		return SACTL_EXIT_FAILURE;
	}
	return SACTL_EXIT_OK;
}

/* ---- check ---- */

#define CHECK_USAGE \
	"[-c FILE] check [-w RANGE] [-c RANGE] [-t SECONDS] [--warn-age DUR]"
/* The guidelines' usual plugin timeout (monitoring-plugins: DEFAULT_SOCKET_TIMEOUT). */
#define CHECK_TIMEOUT_S 10
#define CHECK_TIMEOUT_MAX_S 3600

/* What the SIGALRM handler writes: made before the alarm is set (no stdio in a handler). */
static char timeout_line[160];
static size_t timeout_len;

static void on_timeout(int sig)
{
	ssize_t n;

	(void)sig;
	n = write(STDOUT_FILENO, timeout_line, timeout_len);
	(void)n;
	_exit(MON_CHECK_UNKNOWN);
}

static void start_timeout(unsigned secs)
{
	struct sigaction sa = { .sa_handler = on_timeout };

	timeout_len = (size_t)snprintf(
		timeout_line, sizeof(timeout_line),
		"SAKEYD UNKNOWN - sactl check timed out after %us (reading the configuration "
		"or the database); raise -t or see why the state_dir is slow\n",
		secs);
	if (timeout_len >= sizeof(timeout_line))
		timeout_len = sizeof(timeout_line) - 1;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGALRM, &sa, NULL);
	alarm(secs);
}

/*
 * A usage error, as the guidelines want it: one UNKNOWN line on stdout (what
 * a monitoring system shows) and the usage on stderr. Returns UNKNOWN.
 */
static int __attribute__((format(printf, 2, 3)))
check_usage_error(const struct sactl_ctx *ctx, const char *fmt, ...)
{
	char msg[320];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	printf("SAKEYD UNKNOWN - usage: %s\n", msg);
	fprintf(stderr, "usage: %s " CHECK_USAGE "\n", ctx->prog);
	return MON_CHECK_UNKNOWN;
}

static int parse_threshold(const struct sactl_ctx *ctx, char opt, const char *arg,
			   struct mon_range *r)
{
	const char *why = "";

	if (!mon_range_parse(arg, r, &why))
		return 0;
	if (strchr(arg, '/'))
		return check_usage_error(ctx,
					 "-%c %s: not a range (%s); -%c is the %s threshold; "
					 "give the configuration before the command: %s -c %s check",
					 opt, arg, why, opt, opt == 'w' ? "warning" : "critical",
					 ctx->prog, arg);
	return check_usage_error(ctx,
				 "-%c %s: not a range (%s): seconds to the earliest hard expiry, "
				 "as N, N:, ~:N, N:M or @N:M (e.g. -w 1800: -c 600:)%s",
				 opt, arg, why,
				 opt == 'w' ? "; for an SA age use --warn-age DUR" : "");
}

/* The last check's time from state_dir/check.state; 0 if none or unreadable. */
static int64_t check_state_read(const char *dir)
{
	char path[PATH_MAX + 32], line[64];
	long long t = 0;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, CHECK_STATE_NAME);
	f = fopen(path, "re");
	if (!f)
		return 0;
	if (!fgets(line, sizeof(line), f) || sscanf(line, "last_check_at=%lld", &t) != 1)
		t = 0;
	fclose(f);
	return t > 0 ? (int64_t)t : 0;
}

/*
 * Record this check's time. A monitoring user without write permission on
 * state_dir simply goes without: the lookback window alone then decides.
 */
static void check_state_write(const char *dir, int64_t now)
{
	char path[PATH_MAX + 32], tmp[PATH_MAX + 48], text[64];
	int fd, len;
	bool ok;

	snprintf(path, sizeof(path), "%s/%s", dir, CHECK_STATE_NAME);
	snprintf(tmp, sizeof(tmp), "%s.%ld", path, (long)getpid());
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return;
	len = snprintf(text, sizeof(text), "last_check_at=%" PRId64 "\n", now);
	ok = write(fd, text, (size_t)len) == len;
	ok = !close(fd) && ok;
	if (!ok || rename(tmp, path))
		unlink(tmp);
}

static int tally_cb(const struct store_event *ev, void *arg)
{
	mon_event_tally_add(arg, ev);
	return 0;
}

int sactl_cmd_check(const struct sactl_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "warning", required_argument, NULL, 'w' },
		{ "critical", required_argument, NULL, 'c' },
		{ "timeout", required_argument, NULL, 't' },
		{ "warn-age", required_argument, NULL, 'a' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct mon_event_tally tally = { 0 };
	struct mon_check_in in = { 0 };
	struct mon_range warn = { 0 }, crit = { 0 };
	struct store_sa *rows = NULL;
	struct db db;
	uint64_t warn_age = 0, rot_failed = 0, timeout = CHECK_TIMEOUT_S;
	size_t n = 0;
	int64_t since;
	char line[MON_CHECK_LINE_LEN], *end;
	enum mon_check_status status;
	int opt, ret;

	opterr = 0; /* every usage error is reported below, as an UNKNOWN line */
	while ((opt = getopt_long(argc, argv, ":w:c:t:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'w':
			if (parse_threshold(ctx, 'w', optarg, &warn))
				return MON_CHECK_UNKNOWN;
			break;
		case 'c':
			if (parse_threshold(ctx, 'c', optarg, &crit))
				return MON_CHECK_UNKNOWN;
			break;
		case 't':
			errno = 0;
			timeout = strtoull(optarg, &end, 10);
			if (errno || end == optarg || *end || optarg[0] == '-' || !timeout ||
			    timeout > CHECK_TIMEOUT_MAX_S)
				return check_usage_error(ctx,
							 "-t %s: not a number of seconds from 1 to "
							 "%d",
							 optarg, CHECK_TIMEOUT_MAX_S);
			break;
		case 'a':
			if (conf_parse_duration(optarg, &warn_age) || !warn_age)
				return check_usage_error(ctx,
							 "--warn-age %s: not a duration such as 2h "
							 "or 1d12h",
							 optarg);
			break;
		case 'h':
			printf("usage: %s " CHECK_USAGE "\n"
			       "A Monitoring Plugins check of sakeyd's database (NRPE, "
			       "check_by_ssh, Icinga).\n"
			       "  -w, --warning RANGE   WARNING when hard_expiry_in (seconds to "
			       "the earliest\n"
			       "                        hard expiry of an SA) alerts under RANGE "
			       "(e.g. 1800:)\n"
			       "  -c, --critical RANGE  CRITICAL likewise (e.g. 600:)\n"
			       "  -t, --timeout SECONDS UNKNOWN after SECONDS (default %d)\n"
			       "      --warn-age DUR    WARNING for an SA older than DUR (default: "
			       "max_sa_age)\n"
			       "RANGE: N (outside 0..N), N: (below N), ~:N (above N), N:M (outside),\n"
			       "@N:M (inside). Exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.\n",
			       ctx->prog, CHECK_TIMEOUT_S);
			return MON_CHECK_OK;
		case ':':
			return check_usage_error(ctx, "%s needs a value",
						 argv[optind - 1] ? argv[optind - 1] : "option");
		default:
			if (optopt)
				return check_usage_error(ctx, "unknown option -%c", optopt);
			return check_usage_error(ctx, "unknown option %s",
						 argv[optind - 1] ? argv[optind - 1] : "");
		}
	}
	if (optind != argc)
		return check_usage_error(ctx, "unexpected argument '%s'", argv[optind]);
	start_timeout((unsigned)timeout);
	ret = db_open(ctx, "check", &db);
	if (ret) {
		printf("SAKEYD UNKNOWN - %s\n", db.why[0] ? db.why : strerror(-ret));
		return MON_CHECK_UNKNOWN;
	}
	if (!warn_age)
		warn_age = db.cfg->daemon.max_sa_age;

	/* The window: since the last check, and at least the lookback. */
	since = mon_check_since(db.now, check_state_read(db.cfg->daemon.state_dir));

	ret = store_sa_list(db.s, NULL, &rows, &n);
	if (!ret)
		ret = store_event_each(db.s, since, NULL, tally_cb, &tally);
	if (!ret)
		ret = store_rotation_count(db.s, NULL, STORE_ROT_FAILED, since, &rot_failed);
	if (ret) {
		printf("SAKEYD UNKNOWN - cannot read the database: %s\n", store_errmsg(db.s));
		store_list_free(rows);
		db_close(&db);
		return MON_CHECK_UNKNOWN;
	}
	in.now = db.now;
	in.since = since;
	in.running = db.running;
	in.pid = db.pid;
	in.last_write_at = db.last_write_at;
	in.refresh_interval = db.cfg->daemon.refresh_interval;
	in.warn_age = warn_age;
	in.nlinks = db.cfg->nlinks;
	in.sas = rows;
	in.nsas = n;
	in.events = &tally;
	in.rotation_failures = rot_failed;
	in.warn = &warn;
	in.crit = &crit;
	status = mon_check(&in, line, sizeof(line));
	check_state_write(db.cfg->daemon.state_dir, db.now);
	store_list_free(rows);
	db_close(&db);
	/* The verdict is known: no timeout may replace it now. */
	alarm(0);
	printf("%s\n", line);
	return status;
}

/* ---- history ---- */

/* A rotation's SPIs are managed ones: their generation (key schedule v2), null with no SPI. */
static void json_gen_or_null(FILE *f, uint32_t spi)
{
	if (spi)
		fprintf(f, "%u", (unsigned)rot_spi_gen(spi));
	else
		fputs("null", f);
}

#define HISTORY_USAGE "[-c FILE] history [--link NAME] [--json]"

int sactl_cmd_history(const struct sactl_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "link", required_argument, NULL, 'l' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct table t = {
		.ncol = 7,
		.head = { "TIME", "LINK", "EPOCH", "RESULT", "OLD SPI", "NEW SPI", "DETAIL" },
		.right = { [2] = true },
	};
	struct store_rotation *rows = NULL;
	const char *link = NULL;
	struct db db;
	bool json = false;
	size_t n = 0;
	char tbuf[32];
	int opt, ret;

	while ((opt = getopt_long(argc, argv, "l:jh", opts, NULL)) != -1) {
		switch (opt) {
		case 'l':
			link = optarg;
			break;
		case 'j':
			json = true;
			break;
		case 'h':
			printf("usage: %s " HISTORY_USAGE "\n"
			       "  --link NAME  only the rotations of link NAME\n"
			       "  --json       one JSON object: schema, daemon_running, read_at,\n"
			       "               data_age_s and rotations\n",
			       ctx->prog);
			return SACTL_EXIT_OK;
		default:
			fprintf(stderr, "usage: %s " HISTORY_USAGE "\n", ctx->prog);
			return SACTL_EXIT_USAGE;
		}
	}
	if (sactl_extra_args(ctx, argc, argv, HISTORY_USAGE))
		return SACTL_EXIT_USAGE;
	if (db_open(ctx, "history", &db))
		return SACTL_EXIT_FAILURE;
	if (!link_known(ctx, "history", db.cfg, link)) {
		db_close(&db);
		return SACTL_EXIT_FAILURE;
	}
	ret = store_rotation_list(db.s, 0, link, &rows, &n);
	if (ret) {
		fprintf(stderr, "%s: history: %s\n", ctx->prog, store_errmsg(db.s));
		db_close(&db);
		return SACTL_EXIT_FAILURE;
	}
	if (json) {
		if (!db.running)
			print_header(&db, stderr);
		json_head(&db, stdout);
		fputs(", \"rotations\": [", stdout);
		for (size_t i = 0; i < n; i++) {
			const struct store_rotation *r = &rows[i];

			fprintf(stdout, "%s{\"at\": %" PRId64 ", \"link\": ", i ? ",\n  " : "\n  ",
				r->at);
			json_str(stdout, r->link);
			fprintf(stdout, ", \"epoch\": %" PRId64 ", \"result\": ", r->epoch);
			json_str(stdout, store_rot_result_name(r->result));
			fputs(", \"old_spi\": ", stdout);
			json_int_or_null(stdout, r->old_spi);
			fputs(", \"old_generation\": ", stdout);
			json_gen_or_null(stdout, r->old_spi);
			fputs(", \"new_spi\": ", stdout);
			json_int_or_null(stdout, r->new_spi);
			fputs(", \"new_generation\": ", stdout);
			json_gen_or_null(stdout, r->new_spi);
			fputs(", \"detail\": ", stdout);
			json_str_or_null(stdout, r->detail);
			fputs("}", stdout);
		}
		fputs(n ? "\n]}\n" : "]}\n", stdout);
	} else {
		print_header(&db, stdout);
		for (size_t i = 0; i < n && !ret; i++) {
			const struct store_rotation *r = &rows[i];
			long row = table_row(&t);

			if (row < 0) {
				ret = -ENOMEM;
				break;
			}
			set(&t, row, 0, "%s", clock_str(r->at, tbuf));
			set(&t, row, 1, "%s", r->link);
			set(&t, row, 2, "%" PRId64, r->epoch);
			set(&t, row, 3, "%s", store_rot_result_name(r->result));
			if (r->old_spi)
				set(&t, row, 4, "0x%08" PRIx32 " (gen %u)", r->old_spi,
				    (unsigned)rot_spi_gen(r->old_spi));
			else
				set(&t, row, 4, "-");
			if (r->new_spi)
				set(&t, row, 5, "0x%08" PRIx32 " (gen %u)", r->new_spi,
				    (unsigned)rot_spi_gen(r->new_spi));
			else
				set(&t, row, 5, "-");
			set(&t, row, 6, "%s", r->detail[0] ? r->detail : "-");
		}
		if (!n)
			printf("no rotations recorded%s%s\n", link ? " for link " : "",
			       link ? link : "");
		else if (!ret)
			table_print(&t, stdout);
		free(t.cell);
	}
	store_list_free(rows);
	db_close(&db);
	if (fflush(stdout) || ret) {
		fprintf(stderr, "%s: history: %s\n", ctx->prog, strerror(ret ? -ret : errno));
		return SACTL_EXIT_FAILURE;
	}
	return SACTL_EXIT_OK;
}

/* ---- events ---- */

#define EVENTS_USAGE "[-c FILE] events [--since DUR] [--link NAME] [--json]"

int sactl_cmd_events(const struct sactl_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "since", required_argument, NULL, 's' },
		{ "link", required_argument, NULL, 'l' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct table t = {
		.ncol = 6,
		.head = { "TIME", "EVENT", "LINK", "SPI", "SRC -> DST", "MESSAGE" },
	};
	struct store_event *rows = NULL;
	const char *link = NULL;
	uint64_t since = EVENTS_SINCE_S;
	struct db db;
	bool json = false;
	size_t n = 0;
	char tbuf[32], pbuf[8], h[MON_HUMAN_LEN];
	int opt, ret;

	while ((opt = getopt_long(argc, argv, "s:l:jh", opts, NULL)) != -1) {
		switch (opt) {
		case 's':
			if (conf_parse_duration(optarg, &since)) {
				fprintf(stderr,
					"%s: events: --since %s: not a duration such as 30m, "
					"2h or 7d\n",
					ctx->prog, optarg);
				return SACTL_EXIT_USAGE;
			}
			break;
		case 'l':
			link = optarg;
			break;
		case 'j':
			json = true;
			break;
		case 'h':
			printf("usage: %s " EVENTS_USAGE "\n"
			       "  --since DUR  events of the last DUR (default 1h)\n"
			       "  --link NAME  only the events of link NAME\n"
			       "  --json       one JSON object: schema, daemon_running, read_at,\n"
			       "               data_age_s and events\n",
			       ctx->prog);
			return SACTL_EXIT_OK;
		default:
			fprintf(stderr, "usage: %s " EVENTS_USAGE "\n", ctx->prog);
			return SACTL_EXIT_USAGE;
		}
	}
	if (sactl_extra_args(ctx, argc, argv, EVENTS_USAGE))
		return SACTL_EXIT_USAGE;
	if (db_open(ctx, "events", &db))
		return SACTL_EXIT_FAILURE;
	if (!link_known(ctx, "events", db.cfg, link)) {
		db_close(&db);
		return SACTL_EXIT_FAILURE;
	}
	ret = store_event_list(db.s, db.now - (int64_t)since, link, &rows, &n);
	if (ret) {
		fprintf(stderr, "%s: events: %s\n", ctx->prog, store_errmsg(db.s));
		db_close(&db);
		return SACTL_EXIT_FAILURE;
	}
	if (json) {
		if (!db.running)
			print_header(&db, stderr);
		json_head(&db, stdout);
		fputs(", \"events\": [", stdout);
		for (size_t i = 0; i < n; i++) {
			const struct store_event *ev = &rows[i];
			const char *kind = store_event_kind_name(ev->kind);

			fprintf(stdout, "%s{\"at\": %" PRId64 ", \"event\": ", i ? ",\n  " : "\n  ",
				ev->at);
			json_str(stdout, kind ? kind : "unknown");
			fputs(", \"link\": ", stdout);
			json_str_or_null(stdout, ev->link);
			fputs(", \"spi\": ", stdout);
			json_int_or_null(stdout, ev->spi);
			fputs(", \"src\": ", stdout);
			json_str_or_null(stdout, ev->src);
			fputs(", \"dst\": ", stdout);
			json_str_or_null(stdout, ev->dst);
			fputs(", \"proto\": ", stdout);
			json_str_or_null(stdout, ev->proto ? proto_name(ev->proto, pbuf) : "");
			fputs(", \"message\": ", stdout);
			json_str(stdout, ev->message);
			fputs("}", stdout);
		}
		fputs(n ? "\n]}\n" : "]}\n", stdout);
	} else {
		print_header(&db, stdout);
		for (size_t i = 0; i < n; i++) {
			const struct store_event *ev = &rows[i];
			const char *kind = store_event_kind_name(ev->kind);
			long row = table_row(&t);

			if (row < 0) {
				ret = -ENOMEM;
				break;
			}
			set(&t, row, 0, "%s", clock_str(ev->at, tbuf));
			set(&t, row, 1, "%s", kind ? kind : "unknown");
			set(&t, row, 2, "%s", ev->link[0] ? ev->link : "-");
			if (ev->spi)
				set(&t, row, 3, "0x%08" PRIx32, ev->spi);
			else
				set(&t, row, 3, "-");
			if (ev->src[0] || ev->dst[0])
				set(&t, row, 4, "%s -> %s", ev->src[0] ? ev->src : "-",
				    ev->dst[0] ? ev->dst : "-");
			else
				set(&t, row, 4, "-");
			set(&t, row, 5, "%s", ev->message[0] ? ev->message : "-");
		}
		if (!n)
			printf("no events in the last %s\n", mon_human_duration((int64_t)since, h));
		else if (!ret)
			table_print(&t, stdout);
		free(t.cell);
	}
	store_list_free(rows);
	db_close(&db);
	if (fflush(stdout) || ret) {
		fprintf(stderr, "%s: events: %s\n", ctx->prog, strerror(ret ? -ret : errno));
		return SACTL_EXIT_FAILURE;
	}
	return SACTL_EXIT_OK;
}
