/* SPDX-License-Identifier: ISC */
/* Prometheus text exposition of the SA table and the daemon's counters. */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "monitor/rules.h"
#include "monitor/metrics.h"

/* A growing text buffer; on allocation failure it stays failed and the render returns -ENOMEM. */
struct out {
	char *p;
	size_t len, cap;
	bool failed;
};

static bool reserve(struct out *o, size_t more)
{
	size_t cap = o->cap ? o->cap : 4096;
	char *p;

	if (o->failed)
		return false;
	while (cap - o->len < more + 1)
		cap *= 2;
	if (cap == o->cap)
		return true;
	p = realloc(o->p, cap);
	if (!p) {
		o->failed = true;
		return false;
	}
	o->p = p;
	o->cap = cap;
	return true;
}

static void __attribute__((format(printf, 2, 3))) add(struct out *o, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || !reserve(o, (size_t)n))
		return;
	va_start(ap, fmt);
	vsnprintf(o->p + o->len, o->cap - o->len, fmt, ap);
	va_end(ap);
	o->len += (size_t)n;
}

/* A label value, escaped as the exposition format says: backslash, double quote, line feed. */
static void add_label(struct out *o, const char *name, const char *value, bool last)
{
	add(o, "%s=\"", name);
	for (const char *c = value ? value : ""; *c; c++) {
		if (*c == '\\')
			add(o, "\\\\");
		else if (*c == '"')
			add(o, "\\\"");
		else if (*c == '\n')
			add(o, "\\n");
		else
			add(o, "%c", *c);
	}
	add(o, "\"%s", last ? "" : ",");
}

static void family(struct out *o, const char *name, const char *type, const char *help)
{
	add(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static const char *addr_str(const struct conf_addr *a, char *buf, size_t len)
{
	if (!a->family || !inet_ntop(a->family, a->bytes, buf, (socklen_t)len))
		snprintf(buf, len, "-");
	return buf;
}

static int cmp_sa(const void *pa, const void *pb)
{
	const struct mon_sa *a = *(const struct mon_sa *const *)pa;
	const struct mon_sa *b = *(const struct mon_sa *const *)pb;
	int c;

	if (a->managed != b->managed)
		return a->managed ? -1 : 1;
	if (a->managed && a->sa.link && b->sa.link) {
		c = strcmp(a->sa.link->name, b->sa.link->name);
		if (c)
			return c;
		if (a->sa.dir != b->sa.dir)
			return a->sa.dir < b->sa.dir ? -1 : 1;
	}
	return rot_sa_id_cmp(&a->sa, &b->sa);
}

/* The labels of one SA: link, dir, spi, src, dst, proto (proto: two SAs may share dst and spi). */
static void sa_labels(struct out *o, const struct mon_sa *e)
{
	char spi[16], src[64], dst[64], proto[8];

	snprintf(spi, sizeof(spi), "0x%08" PRIx32, e->sa.spi);
	add_label(o, "link", e->managed && e->sa.link ? e->sa.link->name : "", false);
	add_label(o, "dir", e->sa.dir == ROT_DIR_IN ? "in" : e->sa.dir == ROT_DIR_OUT ? "out" : "",
		  false);
	add_label(o, "spi", spi, false);
	add_label(o, "src", addr_str(&e->sa.src, src, sizeof(src)), false);
	add_label(o, "dst", addr_str(&e->sa.dst, dst, sizeof(dst)), false);
	add_label(o, "proto", mon_proto_name(e->sa.proto, proto, sizeof(proto)), true);
}

static int64_t left(int64_t at, int64_t now)
{
	return at > now ? at - now : 0;
}

static void render_sas(struct out *o, const struct mon_metrics *m, struct mon_sa **v, size_t n)
{
	family(o, "sakeyd_sa_age_seconds", "gauge",
	       "Seconds since the SA was added to the kernel.");
	for (size_t i = 0; i < n; i++) {
		add(o, "sakeyd_sa_age_seconds{");
		sa_labels(o, v[i]);
		add(o, "} %" PRId64 "\n", mon_sa_age(v[i], m->now));
	}
	family(o, "sakeyd_sa_generation", "gauge",
	       "Generation of a managed SA (key schedule v2): 0-7 the normal series, 15-8 once its "
	       "sender lost its records; a change within an epoch means a host lost its SAs.");
	for (size_t i = 0; i < n; i++) {
		if (!v[i]->managed)
			continue;
		add(o, "sakeyd_sa_generation{");
		sa_labels(o, v[i]);
		add(o, "} %u\n", (unsigned)v[i]->sa.gen);
	}
	family(o, "sakeyd_sa_expiry_seconds", "gauge",
	       "Seconds left until the SA's soft or hard lifetime (0 once reached).");
	for (size_t i = 0; i < n; i++) {
		static const char *const kinds[] = { "soft", "hard" };

		for (int k = 0; k < 2; k++) {
			int64_t at = k ? mon_sa_hard_expires_at(v[i]) :
					 mon_sa_soft_expires_at(v[i]);

			if (!at)
				continue;
			add(o, "sakeyd_sa_expiry_seconds{");
			add_label(o, "kind", kinds[k], false);
			sa_labels(o, v[i]);
			add(o, "} %" PRId64 "\n", left(at, m->now));
		}
	}
}

static void render_counts(struct out *o, const char *name, const char *label,
			  const struct mon_count *c, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		add(o, "%s{", name);
		add_label(o, label, c[i].name, true);
		add(o, "} %" PRIu64 "\n", c[i].value);
	}
}

int mon_metrics_render(const struct mon_metrics *m, char **text, size_t *len)
{
	struct out o = { 0 };
	struct mon_sa **v = NULL, *e;
	size_t n = 0, managed = 0, cur = 0;

	*text = NULL;
	*len = 0;
	if (m->sas && mon_table_count(m->sas)) {
		v = calloc(mon_table_count(m->sas), sizeof(*v));
		if (!v)
			return -ENOMEM;
		while ((e = mon_table_next(m->sas, &cur)) && n < mon_table_count(m->sas)) {
			v[n++] = e;
			managed += e->managed;
		}
		qsort(v, n, sizeof(*v), cmp_sa);
	}
	family(&o, "sakeyd_up", "gauge", "1 while sakeyd runs; 0 in the file it leaves at exit.");
	add(&o, "sakeyd_up %d\n", m->up ? 1 : 0);
	if (m->last_update) {
		family(&o, "sakeyd_last_update_timestamp_seconds", "gauge",
		       "When sakeyd last refreshed its view of the kernel's SAs (Unix seconds).");
		add(&o, "sakeyd_last_update_timestamp_seconds %" PRId64 "\n", m->last_update);
	}
	family(&o, "sakeyd_sas", "gauge", "SAs in the kernel, managed by a link or not.");
	add(&o, "sakeyd_sas{managed=\"true\"} %zu\n", managed);
	add(&o, "sakeyd_sas{managed=\"false\"} %zu\n", n - managed);
	render_sas(&o, m, v, n);
	family(&o, "sakeyd_events_total", "counter", "SA events and alerts since sakeyd started.");
	render_counts(&o, "sakeyd_events_total", "event", m->events, m->nevents);
	family(&o, "sakeyd_rotations_total", "counter",
	       "Rotations (outbound SA of a new epoch installed) and failed steps, per link.");
	for (size_t i = 0; i < m->nlinks; i++) {
		for (int ok = 1; ok >= 0; ok--) {
			add(&o, "sakeyd_rotations_total{");
			add_label(&o, "link", m->links[i].name, false);
			add_label(&o, "result", ok ? "ok" : "failed", true);
			add(&o, "} %" PRIu64 "\n",
			    ok ? m->links[i].rotations_ok : m->links[i].rotations_failed);
		}
	}
	family(&o, "sakeyd_link_epoch", "gauge", "Current key epoch of each link.");
	for (size_t i = 0; i < m->nlinks; i++) {
		if (!m->links[i].has_epoch)
			continue;
		add(&o, "sakeyd_link_epoch{");
		add_label(&o, "link", m->links[i].name, true);
		add(&o, "} %" PRId64 "\n", m->links[i].epoch);
	}
	family(&o, "sakeyd_link_next_rotation_timestamp_seconds", "gauge",
	       "Next change point (rotation, staging or retirement) of each link (Unix seconds).");
	for (size_t i = 0; i < m->nlinks; i++) {
		if (!m->links[i].next_rotation)
			continue;
		add(&o, "sakeyd_link_next_rotation_timestamp_seconds{");
		add_label(&o, "link", m->links[i].name, true);
		add(&o, "} %" PRId64 "\n", m->links[i].next_rotation);
	}
	if (m->nalert_commands) {
		family(&o, "sakeyd_alert_commands_total", "counter",
		       "Runs of alert_command by result (ok, failed, timeout, dropped).");
		render_counts(&o, "sakeyd_alert_commands_total", "result", m->alert_commands,
			      m->nalert_commands);
	}
	if (m->nkernel_drops) {
		family(&o, "sakeyd_kernel_messages_dropped_total", "counter",
		       "Messages from the kernel dropped: malformed (rejected by the decoder), "
		       "truncated, replies that never came (reply-timeout), or receive-buffer "
		       "overruns the kernel reported (overrun, XFRM).");
		render_counts(&o, "sakeyd_kernel_messages_dropped_total", "reason",
			      m->kernel_drops, m->nkernel_drops);
	}
	if (m->nxfrm) {
		family(&o, "sakeyd_xfrm_errors_total", "counter",
		       "The kernel's XFRM error counters (/proc/net/xfrm_stat).");
		for (size_t i = 0; i < m->nxfrm; i++) {
			add(&o, "sakeyd_xfrm_errors_total{");
			add_label(&o, "error", m->xfrm[i].name, true);
			add(&o, "} %" PRIu64 "\n", m->xfrm[i].value);
		}
	}
	free(v);
	if (o.failed || !reserve(&o, 0)) {
		free(o.p);
		return -ENOMEM;
	}
	o.p[o.len] = '\0';
	*text = o.p;
	*len = o.len;
	return 0;
}
