/* SPDX-License-Identifier: ISC */
/* Monitoring rules: which event raises which alert, sactl check's verdict; pure, `now` given. */
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "monitor/rules.h"
#include "rotate/keysched.h"
#include "rotate/plan.h"
#include "store/addr.h"
#include "store/store.h"

/* ---- Kernel events ---- */

static void __attribute__((format(printf, 3, 4)))
verdict(struct mon_verdict *v, const char *alert, const char *fmt, ...)
{
	va_list ap;

	v->alert = alert;
	v->kick = NULL;
	va_start(ap, fmt);
	vsnprintf(v->message, sizeof(v->message), fmt, ap);
	va_end(ap);
}

enum mon_expire_kind mon_expire_verdict(const struct mon_sa *e, uint32_t spi, bool hard,
					struct mon_verdict *v)
{
	v->alert = NULL;
	v->message[0] = '\0';
	v->kick = NULL;
	/* A larval state from an ACQUIRE or GETSPI timed out (pfkey-linux.md §4.4). */
	if (!e || spi == 0)
		return MON_EXPIRE_LARVAL;
	if (hard) {
		if (!e->hard_alerted)
			verdict(v, "expire-hard",
				"hard lifetime reached: the kernel deleted the SA");
		return MON_EXPIRE_HARD;
	}
	if (e->soft_alerted)
		return MON_EXPIRE_DUPLICATE;
	if (e->managed) {
		verdict(v, "expire-soft", "soft lifetime of a managed SA reached: the rotation "
					  "schedule was missed; reconciling now");
		v->kick = "soft expiry of a managed SA";
	} else {
		verdict(v, "expire-soft", "soft lifetime reached: refresh its keys");
	}
	return MON_EXPIRE_SOFT;
}

bool mon_sa_still_planned(const struct mon_sa *e, int64_t now)
{
	struct rot_plan plan;

	if (!e->managed || !e->sa.link)
		return false;
	if (rot_plan(e->sa.link, now, &plan))
		return false;
	/*
	 * The plan names generation 0 of each (epoch, direction); every
	 * generation of those (the one in use, spares, a sender's after a loss)
	 * is planned while its epoch is (key schedule v2).
	 */
	for (size_t i = 0; i < plan.n; i++) {
		struct rot_sa id = plan.sa[i];

		id.spi = rot_spi(e->sa.link->spi_prefix, id.epoch, rot_spi_gen(e->sa.spi));
		if (!rot_sa_id_cmp(&id, &e->sa))
			return true;
	}
	return false;
}

bool mon_removal_verdict(const struct mon_sa *e, int64_t now, const char *why, bool hard,
			 struct mon_verdict *v)
{
	if (!e->managed || !mon_sa_still_planned(e, now))
		return false;
	verdict(v, hard ? "expire-hard" : "sa-removed",
		"managed SA %s while still in use; re-installing", why);
	v->kick = "managed SA removed";
	return true;
}

bool mon_acquire_answered_by(const struct conf_link *link, const struct conf_addr *src,
			     const struct conf_addr *dst)
{
	return rot_addr_equal(&link->local, src) && rot_addr_equal(&link->remote, dst);
}

void mon_acquire_unanswered(const struct conf_addr *src, const struct conf_addr *dst,
			    struct mon_sa *subject, struct mon_verdict *v)
{
	char s[64], t[64];

	if (!store_addr_ntop(src->family, src->bytes, s, sizeof(s)))
		snprintf(s, sizeof(s), "-");
	if (!store_addr_ntop(dst->family, dst->bytes, t, sizeof(t)))
		snprintf(t, sizeof(t), "-");
	memset(subject, 0, sizeof(*subject));
	subject->sa.src = *src;
	subject->sa.dst = *dst;
	subject->sa.proto = IPPROTO_ESP;
	verdict(v, "acquire-unanswered",
		"traffic %s -> %s matched a policy but no SA exists and no link covers it: it "
		"is dropped",
		s, t);
}

bool mon_flush_verdict(bool removed_managed, struct mon_verdict *v)
{
	if (!removed_managed)
		return false;
	verdict(v, "sa-removed", "the SADB was flushed by another tool; re-installing managed SAs");
	v->kick = "flush";
	return true;
}

/* ---- Checks after each dump ---- */

int64_t mon_sa_age(const struct mon_sa *e, int64_t now)
{
	if (!e->added_at || now <= e->added_at)
		return 0;
	return now - e->added_at;
}

bool mon_sa_too_old(const struct mon_sa *e, int64_t now, uint64_t max_age)
{
	if (!max_age || !e->added_at || e->age_alerted)
		return false;
	/* max_age is at most CONF_DURATION_MAX: the cast cannot overflow. */
	return now - e->added_at > (int64_t)max_age;
}

bool mon_too_old_verdict(const struct mon_sa *e, int64_t now, uint64_t max_age,
			 struct mon_verdict *v)
{
	char age[CONF_DURATION_STRLEN], max[CONF_DURATION_STRLEN];

	if (!mon_sa_too_old(e, now, max_age))
		return false;
	verdict(v, "sa-too-old", "SA is %s old, more than max_sa_age %s: refresh its keys",
		conf_format_duration((uint64_t)mon_sa_age(e, now), age),
		conf_format_duration(max_age, max));
	return true;
}

bool mon_xfrm_check(struct mon_xfrm_watch *w, const struct mon_xfrm_stat *cur, size_t n,
		    int64_t now, struct mon_verdict *v)
{
	char rises[300];
	bool alert = false;

	if (!n)
		return false;
	if (w->has_baseline) {
		if (w->alerted_at && now - w->alerted_at < MON_XFRM_ALERT_EVERY_S &&
		    now >= w->alerted_at)
			return false; /* held off: the rises add up against the old baseline */
		if (mon_xfrm_stat_rises(w->base, w->nbase, cur, n, rises, sizeof(rises))) {
			w->alerted_at = now;
			verdict(v, "xfrm-errors",
				"the kernel counted IPsec errors (packets dropped): %s", rises);
			alert = true;
		}
	}
	if (n > MON_XFRM_MAX)
		n = MON_XFRM_MAX;
	memcpy(w->base, cur, n * sizeof(cur[0]));
	w->nbase = n;
	w->has_baseline = true;
	return alert;
}

/* ---- sactl check ---- */

void mon_event_tally_add(struct mon_event_tally *t, const struct store_event *ev)
{
	if ((unsigned)ev->kind < STORE_EV_COUNT_ && !t->n[ev->kind]++)
		t->first[ev->kind] = *ev;
}

int64_t mon_check_since(int64_t now, int64_t last_check)
{
	int64_t since = now - MON_CHECK_LOOKBACK_S;

	if (last_check && last_check < since)
		since = last_check;
	return since;
}

int64_t mon_stored_sa_age(const struct store_sa *sa, int64_t now)
{
	int64_t end = sa->state == STORE_SA_GONE && sa->gone_at ? sa->gone_at : now;

	return end > sa->added_at ? end - sa->added_at : 0;
}

char *mon_human_duration(int64_t secs, char buf[MON_HUMAN_LEN])
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
			snprintf(buf, MON_HUMAN_LEN, "%" PRId64 "s", secs);
			return buf;
		}
		lo = (secs % units[i].secs) / units[i + 1].secs;
		if (lo)
			snprintf(buf, MON_HUMAN_LEN, "%" PRId64 "%c%" PRId64 "%c", hi,
				 units[i].unit, lo, units[i + 1].unit);
		else
			snprintf(buf, MON_HUMAN_LEN, "%" PRId64 "%c", hi, units[i].unit);
		return buf;
	}
	return buf;
}

/* The verdict as it grows: the worst status so far and the reasons, "; "-separated. */
struct check {
	enum mon_check_status status;
	char reasons[1024];
	size_t len;
};

static void __attribute__((format(printf, 3, 4)))
reason(struct check *c, enum mon_check_status status, const char *fmt, ...)
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

static void check_event(struct check *c, const struct mon_event_tally *t, enum store_event_kind k,
			enum mon_check_status status, const char *what, const char *window)
{
	char buf[STORE_MSG_LEN + 64];

	if (!t->n[k])
		return;
	reason(c, status, "%" PRIu64 " %s%s %s (%s)", t->n[k], what, t->n[k] == 1 ? "" : "s",
	       window, event_what(&t->first[k], buf, sizeof(buf)));
}

enum mon_check_status mon_check(const struct mon_check_in *in, char *line, size_t len)
{
	static const char *const names[] = { "OK", "WARNING", "CRITICAL", "UNKNOWN" };
	const struct mon_event_tally *tally = in->events;
	struct check c = { 0 };
	size_t managed = 0, old = 0, dying = 0, oldest_i = 0, hard_i = 0;
	int64_t oldest = 0, hard_in = -1;
	char h[MON_HUMAN_LEN], h2[MON_HUMAN_LEN], window[64], perf[640], hard_val[32];

	snprintf(window, sizeof(window), "in the last %s",
		 mon_human_duration(in->now - in->since, h));
	for (size_t i = 0; i < in->nsas; i++) {
		int64_t age = mon_stored_sa_age(&in->sas[i], in->now);

		managed += in->sas[i].managed;
		dying += in->sas[i].state == STORE_SA_DYING;
		if (age > (int64_t)in->warn_age)
			old++;
		if (age > oldest) {
			oldest = age;
			oldest_i = i;
		}
		if (in->sas[i].state != STORE_SA_GONE && in->sas[i].hard_expires_at) {
			int64_t left = in->sas[i].hard_expires_at - in->now;

			if (left < 0)
				left = 0;
			if (hard_in < 0 || left < hard_in) {
				hard_in = left;
				hard_i = i;
			}
		}
	}

	if (!in->running)
		reason(&c, MON_CHECK_CRITICAL, "sakeyd is not running%s",
		       in->pid ? " (crashed?)" : "");
	check_event(&c, tally, STORE_EV_EXPIRE_HARD, MON_CHECK_CRITICAL, "hard expiry", window);
	if (in->rotation_failures || tally->n[STORE_EV_ROTATION_FAILED]) {
		uint64_t events = tally->n[STORE_EV_ROTATION_FAILED];
		uint64_t k = in->rotation_failures > events ? in->rotation_failures : events;
		char buf[STORE_MSG_LEN + 64] = "";

		if (events)
			event_what(&tally->first[STORE_EV_ROTATION_FAILED], buf, sizeof(buf));
		reason(&c, MON_CHECK_CRITICAL, "%" PRIu64 " rotation failure%s %s%s%s%s", k,
		       k == 1 ? "" : "s", window, events ? " (" : "", buf, events ? ")" : "");
	}
	/* Key schedule v2: a sender with no outbound SA until the next epoch (traffic blocked). */
	check_event(&c, tally, STORE_EV_GENERATIONS_EXHAUSTED, MON_CHECK_CRITICAL,
		    "generation exhaustion", window);
	check_event(&c, tally, STORE_EV_EXPIRE_SOFT, MON_CHECK_WARNING, "soft expiry", window);
	if (dying)
		reason(&c, MON_CHECK_WARNING, "%zu SA%s past the soft lifetime", dying,
		       dying == 1 ? "" : "s");
	if (old)
		reason(&c, MON_CHECK_WARNING,
		       "%zu SA%s older than %s (oldest %s: spi 0x%08" PRIx32 " %s->%s)", old,
		       old == 1 ? "" : "s", mon_human_duration((int64_t)in->warn_age, h),
		       mon_human_duration(oldest, h2), in->sas[oldest_i].spi, in->sas[oldest_i].src,
		       in->sas[oldest_i].dst);
	if (hard_in >= 0) {
		const struct mon_range *hit = NULL;
		enum mon_check_status st = MON_CHECK_OK;

		if (in->crit && mon_range_alert(in->crit, (double)hard_in)) {
			hit = in->crit;
			st = MON_CHECK_CRITICAL;
		} else if (in->warn && mon_range_alert(in->warn, (double)hard_in)) {
			hit = in->warn;
			st = MON_CHECK_WARNING;
		}
		if (hit)
			reason(&c, st, "hard expiry %s%s (spi 0x%08" PRIx32 " %s->%s%s%s; %s range %s)",
			       hard_in ? "in " : "reached",
			       hard_in ? mon_human_duration(hard_in, h) : "", in->sas[hard_i].spi,
			       in->sas[hard_i].src, in->sas[hard_i].dst,
			       in->sas[hard_i].link[0] ? ", link " : "", in->sas[hard_i].link,
			       st == MON_CHECK_CRITICAL ? "critical" : "warning", hit->text);
	}
	check_event(&c, tally, STORE_EV_SA_REMOVED, MON_CHECK_WARNING, "managed SA removal",
		    window);
	check_event(&c, tally, STORE_EV_ACQUIRE_UNANSWERED, MON_CHECK_WARNING,
		    "unanswered acquire", window);
	check_event(&c, tally, STORE_EV_XFRM_ERRORS, MON_CHECK_WARNING,
		    "kernel IPsec error alert", window);
	/* An inbound SA re-installed without its replay state (PF_KEY): replays accepted. */
	check_event(&c, tally, STORE_EV_REPLAY_UNPROTECTED, MON_CHECK_WARNING,
		    "unprotected replay window", window);
	if (in->running && in->last_write_at &&
	    in->now - in->last_write_at > 3 * (int64_t)in->refresh_interval + 30)
		reason(&c, MON_CHECK_WARNING, "data %s old: sakeyd is not refreshing it",
		       mon_human_duration(in->now - in->last_write_at, h));

	/* Perfdata: label=value[UOM];[warn];[crit];[min];[max]; "U" for a value there is none of. */
	if (hard_in >= 0)
		snprintf(hard_val, sizeof(hard_val), "%" PRId64 "s", hard_in);
	else
		snprintf(hard_val, sizeof(hard_val), "U");
	snprintf(perf, sizeof(perf),
		 "sas=%zu managed=%zu links=%zu oldest_age=%" PRId64 "s;%" PRIu64
		 ";;0 hard_expiry_in=%s;%s;%s;0 soft_expiries=%" PRIu64 " hard_expiries=%" PRIu64
		 " rotation_failures=%" PRIu64 " data_age=%" PRId64 "s",
		 in->nsas, managed, in->nlinks, oldest, in->warn_age, hard_val,
		 in->warn && in->warn->set ? in->warn->text : "",
		 in->crit && in->crit->set ? in->crit->text : "",
		 tally->n[STORE_EV_EXPIRE_SOFT], tally->n[STORE_EV_EXPIRE_HARD],
		 in->rotation_failures, in->last_write_at ? in->now - in->last_write_at : 0);
	snprintf(line, len, "SAKEYD %s - %s%s%zu SA%s (%zu managed), %zu link%s | %s",
		 names[c.status], c.reasons, c.len ? "; " : "", in->nsas, in->nsas == 1 ? "" : "s",
		 managed, in->nlinks, in->nlinks == 1 ? "" : "s", perf);
	return c.status;
}

/* ---- alert_command ---- */

const char *mon_proto_name(uint8_t proto, char *buf, size_t len)
{
	switch (proto) {
	case 0:
		snprintf(buf, len, "%s", "");
		break;
	case 50: /* IPPROTO_ESP */
		snprintf(buf, len, "esp");
		break;
	case 51: /* IPPROTO_AH */
		snprintf(buf, len, "ah");
		break;
	case 108: /* IPPROTO_COMP */
		snprintf(buf, len, "comp");
		break;
	default:
		snprintf(buf, len, "%u", (unsigned)proto);
	}
	return buf;
}

/*
 * Append value at buf + o, cleaned: control bytes (and spaces too when word)
 * become '?', runs shaped like a key "[redacted]". Stops at limit (an index
 * of buf); returns the new end (not terminated).
 */
static size_t clean(char *buf, size_t o, size_t limit, const char *value, bool word)
{
	static const char redacted[] = "[redacted]";

	for (size_t i = 0; value && value[i] && o < limit;) {
		size_t run = 0;

		while (value[i + run] && store_is_b64_char(value[i + run]))
			run++;
		if (run && store_run_is_key(value + i, run)) {
			size_t n = sizeof(redacted) - 1;

			if (n > limit - o)
				n = limit - o;
			memcpy(buf + o, redacted, n);
			o += n;
			i += run;
			while (value[i] == '=')
				i++;
			continue;
		}
		if (!run)
			run = 1;
		for (size_t j = 0; j < run && o < limit; j++) {
			char c = value[i + j];

			buf[o++] = (c > 0x20 && c < 0x7f) || (c == ' ' && !word) ? c : '?';
		}
		i += run;
	}
	return o;
}

/*
 * Append "name=value" (value cleaned, truncated to leave `reserve` bytes) at
 * buf + *off. The name always fits: the caller reserved room for it.
 */
static char *put(char *buf, size_t len, size_t *off, size_t reserve, const char *name,
		 const char *value)
{
	char *start = buf + *off;
	size_t o = *off, limit = len - reserve - 1; /* last byte for the NUL */

	o += (size_t)snprintf(buf + o, len - o, "%s=", name);
	o = clean(buf, o, limit, value, false);
	buf[o++] = '\0';
	*off = o;
	return start;
}

void mon_alert_fill(struct mon_alert *a, const char *event, const struct mon_sa *e,
		    const struct conf_link *link, const char *message, int64_t now,
		    struct mon_alert_addrs *room)
{
	*a = (struct mon_alert){ .event = event, .message = message, .age = -1 };
	room->src[0] = room->dst[0] = '\0';
	if (!link && e)
		link = e->sa.link;
	if (link)
		a->link = link->name;
	if (!e)
		return;
	a->spi = e->sa.spi;
	a->proto = e->sa.proto;
	a->src = store_addr_ntop(e->sa.src.family, e->sa.src.bytes, room->src, sizeof(room->src));
	a->dst = store_addr_ntop(e->sa.dst.family, e->sa.dst.bytes, room->dst, sizeof(room->dst));
	if (e->added_at)
		a->age = mon_sa_age(e, now);
}

/* Append " name=value" (value a word: cleaned, "-" when absent) at buf + o. */
static size_t field(char *buf, size_t o, size_t limit, const char *name, const char *value)
{
	o = clean(buf, o, limit, " ", false);
	o = clean(buf, o, limit, name, true);
	o = clean(buf, o, limit, "=", true);
	return clean(buf, o, limit, value && value[0] ? value : "-", true);
}

int mon_alert_line(const struct mon_alert *a, char *buf, size_t len)
{
	char spi[16] = "", age[24] = "", proto[8];
	size_t o, limit;

	if (!a || !a->event || !a->event[0] || !buf || !len)
		return -EINVAL;
	limit = len - 1; /* the NUL */
	if (a->spi)
		snprintf(spi, sizeof(spi), "0x%" PRIx32, a->spi);
	if (a->age >= 0)
		snprintf(age, sizeof(age), "%" PRId64, a->age);
	/* Operators' filters and the tests read "ALERT <event> link=<link> spi=<spi> " first. */
	o = clean(buf, 0, limit, "ALERT ", false);
	o = clean(buf, o, limit, a->event, true);
	o = field(buf, o, limit, "link", a->link);
	o = field(buf, o, limit, "spi", spi);
	o = field(buf, o, limit, "src", a->src);
	o = field(buf, o, limit, "dst", a->dst);
	o = field(buf, o, limit, "proto", mon_proto_name(a->proto, proto, sizeof(proto)));
	o = field(buf, o, limit, "age", age);
	o = field(buf, o, limit, "event", a->event);
	/* Last: the detail, spaces kept, up to the end of the line. */
	o = clean(buf, o, limit, " msg=", false);
	o = clean(buf, o, limit, a->message && a->message[0] ? a->message : "-", false);
	buf[o] = '\0';
	return (int)o;
}

int mon_alert_env(const struct mon_alert *a, char **envp, size_t n, char *buf, size_t len)
{
	static const char *const names[] = {
		"SAKEYD_EVENT", "SAKEYD_LINK",	"SAKEYD_SPI",	  "SAKEYD_SRC",
		"SAKEYD_DST",	"SAKEYD_PROTO", "SAKEYD_AGE",	  "SAKEYD_MESSAGE",
	};
	const size_t nvars = sizeof(names) / sizeof(names[0]);
	char spi[16] = "", age[24] = "", proto[8];
	const char *values[sizeof(names) / sizeof(names[0])];
	size_t need_after[sizeof(names) / sizeof(names[0]) + 1], off = 0;
	size_t path_len = strlen("PATH=" MON_ALERT_PATH) + 1;

	if (!a || !a->event || !a->event[0] || n < MON_ALERT_ENV_N || !envp || !buf)
		return -EINVAL;
	if (a->spi)
		snprintf(spi, sizeof(spi), "0x%" PRIx32, a->spi);
	if (a->age >= 0)
		snprintf(age, sizeof(age), "%" PRId64, a->age);
	values[0] = a->event;
	values[1] = a->link;
	values[2] = spi;
	values[3] = a->src;
	values[4] = a->dst;
	values[5] = mon_proto_name(a->proto, proto, sizeof(proto));
	values[6] = age;
	values[7] = a->message;

	/* need_after[i]: bytes the variables after i need at least (names, '=', NUL, PATH). */
	need_after[nvars] = path_len;
	for (size_t i = nvars; i-- > 0;)
		need_after[i] = need_after[i + 1] + (i + 1 < nvars ? strlen(names[i + 1]) + 2 : 0);
	if (len < need_after[0] + strlen(names[0]) + 2)
		return -ENOSPC;
	for (size_t i = 0; i < nvars; i++)
		envp[i] = put(buf, len, &off, need_after[i], names[i], values[i]);
	memcpy(buf + off, "PATH=" MON_ALERT_PATH, path_len);
	envp[nvars] = buf + off;
	envp[nvars + 1] = NULL;
	return (int)nvars + 1;
}

bool mon_refresh_due(const struct mon_refresh *r, bool *stretched)
{
	uint64_t gap_ms = r->dumped ? MON_REFRESH_SPACING * r->last_took_ms : 0;
	bool stretch = gap_ms > r->interval_ms;

	if (stretched)
		*stretched = stretch;
	if (r->dump_running)
		return false;
	return !stretch || r->since_end_ms >= gap_ms;
}
