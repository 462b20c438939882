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

#define STR(x) #x
#define XSTR(x) STR(x)
#define MON_METRICS_SA_MAX_TEXT XSTR(MON_METRICS_SA_MAX)

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

/* Unmanaged SAs: by dst, spi, proto (rot_sa_id_cmp). */
static int cmp_sa(const void *pa, const void *pb)
{
	const struct mon_sa *a = *(const struct mon_sa *const *)pa;
	const struct mon_sa *b = *(const struct mon_sa *const *)pb;

	return rot_sa_id_cmp(&a->sa, &b->sa);
}

/* The labels of an unmanaged SA: spi, src, dst, proto (proto: two SAs may share dst and spi). */
static void sa_labels(struct out *o, const struct mon_sa *e)
{
	char spi[16], src[64], dst[64], proto[8];

	snprintf(spi, sizeof(spi), "0x%08" PRIx32, e->sa.spi);
	add_label(o, "spi", spi, false);
	add_label(o, "src", addr_str(&e->sa.src, src, sizeof(src)), false);
	add_label(o, "dst", addr_str(&e->sa.dst, dst, sizeof(dst)), false);
	add_label(o, "proto", mon_proto_name(e->sa.proto, proto, sizeof(proto)), true);
}

static int64_t left(int64_t at, int64_t now)
{
	return at > now ? at - now : 0;
}

const char *mon_link_state_name(enum mon_link_state s)
{
	static const char *const names[MON_LINK_NSTATES] = {
		[MON_LINK_PENDING] = "pending",
		[MON_LINK_OK] = "ok",
		[MON_LINK_BACKOFF] = "backoff",
		[MON_LINK_EXHAUSTED] = "exhausted",
	};

	return (unsigned)s < MON_LINK_NSTATES ? names[s] : "unknown";
}

static void earliest(int64_t *at, int64_t t)
{
	if (t && (!*at || t < *at))
		*at = t;
}

void mon_metrics_link_add_sa(struct mon_metrics_link *l, const struct mon_sa *e)
{
	if (e->sa.dir == ROT_DIR_IN)
		l->inbound++;
	else if (e->sa.dir == ROT_DIR_OUT && l->has_epoch && e->sa.epoch == l->epoch &&
		 (!l->has_out || e->added_at > l->out_added ||
		  (e->added_at == l->out_added && e->sa.gen > l->out_gen))) {
		l->has_out = true;
		l->out_added = e->added_at;
		l->out_gen = e->sa.gen;
	}
	earliest(&l->soft_at, mon_sa_soft_expires_at(e));
	earliest(&l->hard_at, mon_sa_hard_expires_at(e));
}

static void link_label(struct out *o, const struct mon_metrics_link *l, const char *name, bool last)
{
	add(o, "%s{", name);
	add_label(o, "link", l->name, last);
}

static void render_links(struct out *o, const struct mon_metrics *m)
{
	static const char *const kinds[] = { "soft", "hard" };

	family(o, "sakeyd_link_state", "gauge",
	       "What each link is doing: 1 for its state (pending: not planned yet; ok; backoff: "
	       "its last attempt failed, retried later; exhausted: no outbound SA until the next "
	       "epoch), 0 for the others.");
	for (size_t i = 0; i < m->nlinks; i++) {
		for (int s = 0; s < MON_LINK_NSTATES; s++) {
			link_label(o, &m->links[i], "sakeyd_link_state", false);
			add_label(o, "state", mon_link_state_name((enum mon_link_state)s), true);
			add(o, "} %d\n", m->links[i].state == (enum mon_link_state)s);
		}
	}
	family(o, "sakeyd_link_epoch", "gauge", "Current key epoch of each link.");
	for (size_t i = 0; i < m->nlinks; i++) {
		if (!m->links[i].has_epoch)
			continue;
		link_label(o, &m->links[i], "sakeyd_link_epoch", true);
		add(o, "} %" PRId64 "\n", m->links[i].epoch);
	}
	family(o, "sakeyd_link_next_rotation_timestamp_seconds", "gauge",
	       "Start of each link's next epoch, when its next outbound SA takes over (Unix "
	       "seconds).");
	for (size_t i = 0; i < m->nlinks; i++) {
		if (!m->links[i].next_rotation)
			continue;
		link_label(o, &m->links[i], "sakeyd_link_next_rotation_timestamp_seconds", true);
		add(o, "} %" PRId64 "\n", m->links[i].next_rotation);
	}
	family(o, "sakeyd_link_outbound_age_seconds", "gauge",
	       "Seconds since the link's current outbound SA was added to the kernel (left out "
	       "while the kernel holds none of the current epoch).");
	for (size_t i = 0; i < m->nlinks; i++) {
		if (!m->links[i].has_out)
			continue;
		link_label(o, &m->links[i], "sakeyd_link_outbound_age_seconds", true);
		add(o, "} %" PRId64 "\n",
		    m->now > m->links[i].out_added ? m->now - m->links[i].out_added : 0);
	}
	family(o, "sakeyd_link_outbound_generation", "gauge",
	       "Generation of the link's current outbound SA (key schedule v2): 0-7 the normal "
	       "series, 15-8 once this host lost its records; a change within an epoch means "
	       "this host lost its SAs.");
	for (size_t i = 0; i < m->nlinks; i++) {
		if (!m->links[i].has_out)
			continue;
		link_label(o, &m->links[i], "sakeyd_link_outbound_generation", true);
		add(o, "} %u\n", (unsigned)m->links[i].out_gen);
	}
	family(o, "sakeyd_link_inbound_sas", "gauge",
	       "Inbound SAs the kernel holds for the link (previous, current and next epoch, "
	       "spare generations).");
	for (size_t i = 0; i < m->nlinks; i++) {
		link_label(o, &m->links[i], "sakeyd_link_inbound_sas", true);
		add(o, "} %zu\n", m->links[i].inbound);
	}
	family(o, "sakeyd_link_expiry_seconds", "gauge",
	       "Seconds left until the earliest soft or hard lifetime of the link's SAs (0 once "
	       "reached): soft comes a little after a planned removal, so 0 means sakeyd is "
	       "behind its schedule; hard is when the kernel deletes the SA.");
	for (size_t i = 0; i < m->nlinks; i++) {
		for (int k = 0; k < 2; k++) {
			int64_t at = k ? m->links[i].hard_at : m->links[i].soft_at;

			if (!at)
				continue;
			add(o, "sakeyd_link_expiry_seconds{");
			add_label(o, "kind", kinds[k], false);
			add_label(o, "link", m->links[i].name, true);
			add(o, "} %" PRId64 "\n", left(at, m->now));
		}
	}
	family(o, "sakeyd_rotations_total", "counter",
	       "Rotations (outbound SA of a new epoch installed) and failed steps, per link.");
	for (size_t i = 0; i < m->nlinks; i++) {
		for (int ok = 1; ok >= 0; ok--) {
			link_label(o, &m->links[i], "sakeyd_rotations_total", false);
			add_label(o, "result", ok ? "ok" : "failed", true);
			add(o, "} %" PRIu64 "\n",
			    ok ? m->links[i].rotations_ok : m->links[i].rotations_failed);
		}
	}
}

/* v: the unmanaged SAs, sorted; the first n_shown get series. */
static void render_sas(struct out *o, const struct mon_metrics *m, struct mon_sa **v, size_t n,
		       size_t n_shown)
{
	static const char *const kinds[] = { "soft", "hard" };

	family(o, "sakeyd_sa_age_seconds", "gauge",
	       "Seconds since an SA no link manages (keyed by hand) was added to the kernel.");
	for (size_t i = 0; i < n_shown; i++) {
		add(o, "sakeyd_sa_age_seconds{");
		sa_labels(o, v[i]);
		add(o, "} %" PRId64 "\n", mon_sa_age(v[i], m->now));
	}
	family(o, "sakeyd_sa_expiry_seconds", "gauge",
	       "Seconds left until the soft or hard lifetime of an SA no link manages (0 once "
	       "reached).");
	for (size_t i = 0; i < n_shown; i++) {
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
	family(o, "sakeyd_sa_series_omitted", "gauge",
	       "SAs no link manages left out of the per-SA series (more than "
	       MON_METRICS_SA_MAX_TEXT "); sakeyd_sas counts them all.");
	add(o, "sakeyd_sa_series_omitted %zu\n", n - n_shown);
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
		while ((e = mon_table_next(m->sas, &cur)) && n + managed < mon_table_count(m->sas)) {
			if (e->managed)
				managed++;
			else
				v[n++] = e;
		}
		qsort(v, n, sizeof(*v), cmp_sa);
	}
	family(&o, "sakeyd_up", "gauge", "1 while sakeyd runs; 0 in the file it leaves at exit.");
	add(&o, "sakeyd_up %d\n", m->up ? 1 : 0);
	if (m->version) {
		family(&o, "sakeyd_build_info", "gauge", "Always 1; the version of sakeyd running.");
		add(&o, "sakeyd_build_info{");
		add_label(&o, "version", m->version, true);
		add(&o, "} 1\n");
	}
	if (m->last_update) {
		family(&o, "sakeyd_last_update_timestamp_seconds", "gauge",
		       "When sakeyd last refreshed its view of the kernel's SAs (Unix seconds).");
		add(&o, "sakeyd_last_update_timestamp_seconds %" PRId64 "\n", m->last_update);
	}
	family(&o, "sakeyd_sas", "gauge", "SAs in the kernel, managed by a link or not.");
	add(&o, "sakeyd_sas{managed=\"true\"} %zu\n", managed);
	add(&o, "sakeyd_sas{managed=\"false\"} %zu\n", n);
	render_links(&o, m);
	render_sas(&o, m, v, n, n < MON_METRICS_SA_MAX ? n : MON_METRICS_SA_MAX);
	family(&o, "sakeyd_events_total", "counter", "SA events and alerts since sakeyd started.");
	render_counts(&o, "sakeyd_events_total", "event", m->events, m->nevents);
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
