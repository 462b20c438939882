/* SPDX-License-Identifier: ISC */
/* sactl's database subcommands: status, check, history and events, read-only from sakeyd.db. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
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
#include "store/store.h"
#include "svc/sactl/sactl.h"

/*
 * SACTL_NOW=<Unix seconds> replaces the clock (ages, "in ...", the event
 * window): the test suite uses it for stable output. Times are printed in
 * the local time zone (TZ).
 */
#define NOW_ENV "SACTL_NOW"
/* check: events count if they are newer than the last check or this recent, whichever is older. */
#define CHECK_LOOKBACK_S 900
/* check: the last check time, in state_dir (written when sactl may write there). */
#define CHECK_STATE_NAME "check.state"
/* events: the default window. */
#define EVENTS_SINCE_S 3600
/* Room for human(): "106751991167300d23h" and the NUL. */
#define HUMAN_LEN 48

/* Monitoring-plugin exit statuses. */
enum { CHECK_OK = 0, CHECK_WARNING, CHECK_CRITICAL, CHECK_UNKNOWN };

struct db {
	struct config *cfg;
	struct store *s;
	int64_t now;
	/* What the meta table says about the daemon. */
	int64_t pid, last_write_at, last_dump_at;
	bool running;
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

/* "3m12s", "2h5m", "4d3h": the two largest units, the second left out when 0. */
static char *human(int64_t secs, char buf[HUMAN_LEN])
{
	static const struct {
		int64_t secs;
		char unit;
	} units[] = { { 86400, 'd' }, { 3600, 'h' }, { 60, 'm' }, { 1, 's' } };

	if (secs < 0)
		secs = 0;
	for (size_t i = 0; i < 4; i++) {
		int64_t hi = secs / units[i].secs, lo;

		if (!hi && i < 3)
			continue;
		if (i == 3) {
			snprintf(buf, HUMAN_LEN, "%" PRId64 "s", secs);
			return buf;
		}
		lo = (secs % units[i].secs) / units[i + 1].secs;
		if (lo)
			snprintf(buf, HUMAN_LEN, "%" PRId64 "%c%" PRId64 "%c", hi,
				 units[i].unit, lo, units[i + 1].unit);
		else
			snprintf(buf, HUMAN_LEN, "%" PRId64 "%c", hi, units[i].unit);
		return buf;
	}
	return buf;
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
	if (ret)
		return ret;
	ret = store_open(db->cfg->daemon.state_dir, true, &db->s, err, sizeof(err));
	if (ret) {
		const char *hint = "";

		if (ret == -ENOENT)
			hint = " (no database yet: has sakeyd run with this state_dir?)";
		else if (ret == -EACCES || ret == -EPERM)
			hint = " (the database belongs to sakeyd's user: run sactl as root)";
		else if (ret == -EPROTO)
			hint = " (an older schema: start the new sakeyd once to migrate it)";
		fprintf(stderr, "%s: %s: cannot read %s/%s: %s%s\n", ctx->prog, cmd,
			db->cfg->daemon.state_dir, STORE_DB_NAME, err[0] ? err : strerror(-ret),
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
	char h[HUMAN_LEN];

	if (!db->last_write_at)
		snprintf(buf, len, "no data written yet");
	else
		snprintf(buf, len, "data %s old", human(db->now - db->last_write_at, h));
	return buf;
}

/* The first line of the text outputs: is the daemon running, how old is the data. */
static void print_header(const struct db *db, FILE *f)
{
	char age[64], h[HUMAN_LEN];

	data_age(db, age, sizeof(age));
	if (db->running) {
		fprintf(f, "sakeyd running (pid %" PRId64 "), %s", db->pid, age);
		if (db->last_dump_at)
			fprintf(f, ", last kernel dump %s ago",
				human(db->now - db->last_dump_at, h));
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

/* Age of an SA: at now, or its whole life if gone. */
static int64_t sa_age(const struct store_sa *sa, int64_t now)
{
	int64_t end = sa->state == STORE_SA_GONE && sa->gone_at ? sa->gone_at : now;

	return end > sa->added_at ? end - sa->added_at : 0;
}

/* "in 3m12s", "reached", "-" */
static void expiry_str(const struct store_sa *sa, int64_t at, int64_t now, char *buf, size_t len)
{
	char h[HUMAN_LEN];

	if (!at || sa->state == STORE_SA_GONE)
		snprintf(buf, len, "-");
	else if (at <= now)
		snprintf(buf, len, "reached");
	else
		snprintf(buf, len, "in %s", human(at - now, h));
}

static void status_json(const struct store_sa *rows, size_t n, int64_t now, FILE *f)
{
	char pbuf[8];

	fputs("[", f);
	for (size_t i = 0; i < n; i++) {
		const struct store_sa *sa = &rows[i];

		fputs(i ? ",\n  {" : "\n  {", f);
		fputs("\"link\": ", f);
		json_str_or_null(f, sa->link);
		fputs(", \"dir\": ", f);
		json_str_or_null(f, store_dir_name(sa->dir) ? store_dir_name(sa->dir) : "");
		fprintf(f, ", \"spi\": %" PRIu32 ", \"src\": ", sa->spi);
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
			sa_age(sa, now));
		fputs(", \"soft_expires_at\": ", f);
		json_int_or_null(f, sa->soft_expires_at);
		fputs(", \"hard_expires_at\": ", f);
		json_int_or_null(f, sa->hard_expires_at);
		fprintf(f, ", \"bytes\": %" PRIu64 ", \"packets\": %" PRIu64 ", \"key_fp\": ",
			sa->bytes, sa->packets);
		json_str_or_null(f, sa->key_fp);
		fputs("}", f);
	}
	fputs(n ? "\n]\n" : "]\n", f);
}

static int status_text(const struct store_sa *rows, size_t n, int64_t now, FILE *f)
{
	struct table t = {
		.ncol = 11,
		.head = { "LINK", "DIR", "SPI", "SRC -> DST", "ALGORITHM", "AGE", "SOFT", "HARD",
			  "BYTES", "PACKETS", "STATE" },
		.right = { [8] = true, [9] = true },
	};
	char h[HUMAN_LEN], buf[48];

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
		set(&t, r, 3, "%s -> %s", sa->src, sa->dst);
		set(&t, r, 4, "%s", sa->algorithm[0] ? sa->algorithm : "-");
		set(&t, r, 5, "%s", human(sa_age(sa, now), h));
		expiry_str(sa, sa->soft_expires_at, now, buf, sizeof(buf));
		set(&t, r, 6, "%s", buf);
		expiry_str(sa, sa->hard_expires_at, now, buf, sizeof(buf));
		set(&t, r, 7, "%s", buf);
		set(&t, r, 8, "%" PRIu64, sa->bytes);
		set(&t, r, 9, "%" PRIu64, sa->packets);
		if (sa->state == STORE_SA_GONE)
			set(&t, r, 10, "gone %s ago", human(now - sa->gone_at, h));
		else
			set(&t, r, 10, "%s", store_sa_state_name(sa->state));
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
	struct db db;
	bool json = false;
	size_t n = 0;
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
			       "  --json       one JSON array of SA objects (DESIGN.md fields)\n"
			       "  --link NAME  only the SAs of link NAME\n"
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
	ret = store_sa_list(db.s, &q, &rows, &n);
	if (ret) {
		fprintf(stderr, "%s: status: reading the SAs: %s\n", ctx->prog, store_errmsg(db.s));
		db_close(&db);
		return SACTL_EXIT_FAILURE;
	}
	if (n)
		qsort(rows, n, sizeof(*rows), cmp_status);
	if (json) {
		if (!db.running)
			print_header(&db, stderr);
		status_json(rows, n, db.now, stdout);
	} else {
		print_header(&db, stdout);
		ret = status_text(rows, n, db.now, stdout);
	}
	store_list_free(rows);
	db_close(&db);
	if (fflush(stdout) || ret) {
		fprintf(stderr, "%s: status: %s\n", ctx->prog, strerror(ret ? -ret : errno));
		return SACTL_EXIT_FAILURE;
	}
	return SACTL_EXIT_OK;
}

/* ---- check ---- */

#define CHECK_USAGE "[-c FILE] check [--warn-age DUR]"

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

struct check {
	int status;
	char reasons[1024];
	size_t len;
};

static void __attribute__((format(printf, 3, 4)))
reason(struct check *c, int status, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (status > c->status)
		c->status = status;
	if (c->len >= sizeof(c->reasons) - 1)
		return;
	if (c->len)
		c->len += (size_t)snprintf(c->reasons + c->len, sizeof(c->reasons) - c->len, "; ");
	if (c->len >= sizeof(c->reasons) - 1)
		return;
	va_start(ap, fmt);
	n = vsnprintf(c->reasons + c->len, sizeof(c->reasons) - c->len, fmt, ap);
	va_end(ap);
	if (n > 0)
		c->len += (size_t)n;
	if (c->len > sizeof(c->reasons) - 1)
		c->len = sizeof(c->reasons) - 1;
}

/* Events of the window, counted by kind, with the first of each kind kept for the message. */
struct event_tally {
	uint64_t n[STORE_EV_COUNT_];
	struct store_event first[STORE_EV_COUNT_];
};

static int tally_cb(const struct store_event *ev, void *arg)
{
	struct event_tally *t = arg;

	if ((unsigned)ev->kind < STORE_EV_COUNT_ && !t->n[ev->kind]++)
		t->first[ev->kind] = *ev;
	return 0;
}

/* "spi 0x00001234 192.0.2.10->192.0.2.20" or the link, for a check message. */
static char *event_what(const struct store_event *ev, char *buf, size_t len)
{
	if (ev->spi)
		snprintf(buf, len, "%s%sspi 0x%08" PRIx32 " %s->%s", ev->link,
			 ev->link[0] ? " " : "", ev->spi, ev->src, ev->dst);
	else if (ev->link[0])
		snprintf(buf, len, "link %s", ev->link);
	else
		snprintf(buf, len, "%s", ev->message);
	return buf;
}

static void check_event(struct check *c, const struct event_tally *t, enum store_event_kind k,
			int status, const char *what, const char *window)
{
	char buf[STORE_MSG_LEN + 64];

	if (!t->n[k])
		return;
	reason(c, status, "%" PRIu64 " %s%s %s (%s)", t->n[k], what, t->n[k] == 1 ? "" : "s",
	       window, event_what(&t->first[k], buf, sizeof(buf)));
}

int sactl_cmd_check(const struct sactl_ctx *ctx, int argc, char **argv)
{
	static const char *const names[] = { "OK", "WARNING", "CRITICAL", "UNKNOWN" };
	static const struct option opts[] = {
		{ "warn-age", required_argument, NULL, 'w' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct check c = { 0 };
	struct event_tally tally = { 0 };
	struct store_sa *rows = NULL;
	struct db db;
	uint64_t warn_age = 0, rot_failed = 0;
	size_t n = 0, managed = 0, old = 0, dying = 0, oldest_i = 0;
	int64_t since, last_check, oldest = 0;
	char h[HUMAN_LEN], h2[HUMAN_LEN], window[64], perf[512];
	int opt, ret;

	while ((opt = getopt_long(argc, argv, "w:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'w':
			if (conf_parse_duration(optarg, &warn_age) || !warn_age) {
				fprintf(stderr,
					"%s: check: --warn-age %s: not a duration such as 2h "
					"or 1d12h\n",
					ctx->prog, optarg);
				return CHECK_UNKNOWN;
			}
			break;
		case 'h':
			printf("usage: %s " CHECK_USAGE "\n"
			       "  --warn-age DUR  WARNING for an SA older than DUR (default: "
			       "max_sa_age)\n"
			       "exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN\n",
			       ctx->prog);
			return CHECK_OK;
		default:
			fprintf(stderr, "usage: %s " CHECK_USAGE "\n", ctx->prog);
			return CHECK_UNKNOWN;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "usage: %s " CHECK_USAGE "\n", ctx->prog);
		return CHECK_UNKNOWN;
	}
	ret = db_open(ctx, "check", &db);
	if (ret) {
		printf("SAKEYD UNKNOWN - %s\n",
		       ret == -ENOENT ?
			       "no database (has sakeyd run yet?)" :
			       "cannot read the configuration or the database (see stderr)");
		return CHECK_UNKNOWN;
	}
	if (!warn_age)
		warn_age = db.cfg->daemon.max_sa_age;

	/* The window: since the last check, and at least the lookback. */
	last_check = check_state_read(db.cfg->daemon.state_dir);
	since = db.now - CHECK_LOOKBACK_S;
	if (last_check && last_check < since)
		since = last_check;
	snprintf(window, sizeof(window), "in the last %s", human(db.now - since, h));

	ret = store_sa_list(db.s, NULL, &rows, &n);
	if (!ret)
		ret = store_event_each(db.s, since, NULL, tally_cb, &tally);
	if (!ret)
		ret = store_rotation_count(db.s, NULL, STORE_ROT_FAILED, since, &rot_failed);
	if (ret) {
		printf("SAKEYD UNKNOWN - cannot read the database: %s\n", store_errmsg(db.s));
		store_list_free(rows);
		db_close(&db);
		return CHECK_UNKNOWN;
	}
	for (size_t i = 0; i < n; i++) {
		int64_t age = sa_age(&rows[i], db.now);

		managed += rows[i].managed;
		dying += rows[i].state == STORE_SA_DYING;
		if (age > (int64_t)warn_age)
			old++;
		if (age > oldest) {
			oldest = age;
			oldest_i = i;
		}
	}

	if (!db.running)
		reason(&c, CHECK_CRITICAL, "sakeyd is not running%s", db.pid ? " (crashed?)" : "");
	check_event(&c, &tally, STORE_EV_EXPIRE_HARD, CHECK_CRITICAL, "hard expiry", window);
	if (rot_failed || tally.n[STORE_EV_ROTATION_FAILED]) {
		uint64_t events = tally.n[STORE_EV_ROTATION_FAILED];
		uint64_t k = rot_failed > events ? rot_failed : events;
		char buf[STORE_MSG_LEN + 64] = "";

		if (events)
			event_what(&tally.first[STORE_EV_ROTATION_FAILED], buf, sizeof(buf));
		reason(&c, CHECK_CRITICAL, "%" PRIu64 " rotation failure%s %s%s%s%s", k,
		       k == 1 ? "" : "s", window, events ? " (" : "", buf, events ? ")" : "");
	}
	check_event(&c, &tally, STORE_EV_EXPIRE_SOFT, CHECK_WARNING, "soft expiry", window);
	if (dying)
		reason(&c, CHECK_WARNING, "%zu SA%s past the soft lifetime", dying,
		       dying == 1 ? "" : "s");
	if (old)
		reason(&c, CHECK_WARNING, "%zu SA%s older than %s (oldest %s: spi 0x%08" PRIx32
					  " %s->%s)",
		       old, old == 1 ? "" : "s", human((int64_t)warn_age, h), human(oldest, h2),
		       rows[oldest_i].spi, rows[oldest_i].src, rows[oldest_i].dst);
	check_event(&c, &tally, STORE_EV_SA_REMOVED, CHECK_WARNING, "managed SA removal", window);
	check_event(&c, &tally, STORE_EV_ACQUIRE_UNANSWERED, CHECK_WARNING, "unanswered acquire",
		    window);
	check_event(&c, &tally, STORE_EV_XFRM_ERRORS, CHECK_WARNING, "kernel IPsec error alert",
		    window);
	if (db.running && db.last_write_at &&
	    db.now - db.last_write_at > 3 * (int64_t)db.cfg->daemon.refresh_interval + 30)
		reason(&c, CHECK_WARNING, "data %s old: sakeyd is not refreshing it",
		       human(db.now - db.last_write_at, h));

	snprintf(perf, sizeof(perf),
		 "sas=%zu managed=%zu links=%zu oldest_age=%" PRId64 "s;%" PRIu64
		 " soft_expiries=%" PRIu64 " hard_expiries=%" PRIu64 " rotation_failures=%" PRIu64
		 " data_age=%" PRId64 "s",
		 n, managed, db.cfg->nlinks, oldest, warn_age, tally.n[STORE_EV_EXPIRE_SOFT],
		 tally.n[STORE_EV_EXPIRE_HARD], rot_failed,
		 db.last_write_at ? db.now - db.last_write_at : 0);
	printf("SAKEYD %s - %s%s%zu SA%s (%zu managed), %zu link%s | %s\n", names[c.status],
	       c.reasons, c.len ? "; " : "", n, n == 1 ? "" : "s", managed, db.cfg->nlinks,
	       db.cfg->nlinks == 1 ? "" : "s", perf);
	check_state_write(db.cfg->daemon.state_dir, db.now);
	store_list_free(rows);
	db_close(&db);
	return c.status;
}

/* ---- history ---- */

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
			       "  --json       one JSON array of rotation objects\n",
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
	ret = store_rotation_list(db.s, 0, link, &rows, &n);
	if (ret) {
		fprintf(stderr, "%s: history: %s\n", ctx->prog, store_errmsg(db.s));
		db_close(&db);
		return SACTL_EXIT_FAILURE;
	}
	if (json) {
		if (!db.running)
			print_header(&db, stderr);
		fputs("[", stdout);
		for (size_t i = 0; i < n; i++) {
			const struct store_rotation *r = &rows[i];

			fprintf(stdout, "%s{\"at\": %" PRId64 ", \"link\": ", i ? ",\n  " : "\n  ",
				r->at);
			json_str(stdout, r->link);
			fprintf(stdout, ", \"epoch\": %" PRId64 ", \"result\": ", r->epoch);
			json_str(stdout, store_rot_result_name(r->result));
			fputs(", \"old_spi\": ", stdout);
			json_int_or_null(stdout, r->old_spi);
			fputs(", \"new_spi\": ", stdout);
			json_int_or_null(stdout, r->new_spi);
			fputs(", \"detail\": ", stdout);
			json_str_or_null(stdout, r->detail);
			fputs("}", stdout);
		}
		fputs(n ? "\n]\n" : "]\n", stdout);
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
				set(&t, row, 4, "0x%08" PRIx32, r->old_spi);
			else
				set(&t, row, 4, "-");
			if (r->new_spi)
				set(&t, row, 5, "0x%08" PRIx32, r->new_spi);
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
	char tbuf[32], pbuf[8], h[HUMAN_LEN];
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
			       "  --json       one JSON array of event objects\n",
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
	ret = store_event_list(db.s, db.now - (int64_t)since, link, &rows, &n);
	if (ret) {
		fprintf(stderr, "%s: events: %s\n", ctx->prog, store_errmsg(db.s));
		db_close(&db);
		return SACTL_EXIT_FAILURE;
	}
	if (json) {
		if (!db.running)
			print_header(&db, stderr);
		fputs("[", stdout);
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
		fputs(n ? "\n]\n" : "]\n", stdout);
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
			printf("no events in the last %s\n", human((int64_t)since, h));
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
