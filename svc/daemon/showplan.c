/* SPDX-License-Identifier: ISC */
/* sakeyd --check --plan: per link what both hosts must agree on, with its digest and next change points. */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "rotate/keysched.h"
#include "store/addr.h"
#include "store/gens.h"
#include "svc/daemon/daemon.h"
#include "svc/daemon/genbook.h"

/* UTC, so that hosts in other time zones print the same text. */
static char *utc(int64_t t, char buf[32])
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (!gmtime_r(&tt, &tm) || !strftime(buf, 32, "%Y-%m-%dT%H:%M:%SZ", &tm))
		snprintf(buf, 32, "%" PRId64, t);
	return buf;
}

struct out_gen {
	const char *key;
	int64_t epoch;
	int gen; /* -1: no record */
};

static int visit_out(const struct gens_out *r, void *arg)
{
	struct out_gen *o = arg;

	if (r->epoch == o->epoch && !strcmp(r->link, o->key))
		o->gen = r->gen;
	return 0;
}

/*
 * The outbound generation recorded for link's epoch in state_dir's
 * generations.db, without creating it: -1 with *why set if unknown.
 */
static int recorded_gen(const char *state_dir, const struct conf_link *link, int64_t epoch,
			const char **why)
{
	char path[PATH_MAX + 32], key[GENS_LINK_LEN], err[256] = "";
	struct out_gen o = { key, epoch, -1 };
	struct gens_visit v = { .out = visit_out, .arg = &o };
	struct gens *g = NULL;
	struct stat st;

	snprintf(path, sizeof(path), "%s/%s", state_dir, GENS_DB_NAME);
	if (stat(path, &st)) {
		*why = "no records in state_dir: sakeyd has not run here";
		return -1;
	}
	if (gens_open(state_dir, &g, NULL, err, sizeof(err))) {
		*why = "the records cannot be read (see sakeyd's log)";
		return -1;
	}
	genbook_link_key(link, key);
	if (gens_load(g, &v))
		*why = "the records cannot be read";
	else if (o.gen < 0)
		*why = "none recorded for this epoch yet";
	gens_close(g);
	return o.gen;
}

/* ESN as the daemon will install it: auto is on with XFRM (what kernel = auto picks where it can). */
static bool effective_esn(const struct config *cfg, const struct conf_link *link)
{
	if (link->esn != CONF_AUTO)
		return link->esn == CONF_YES;
	return cfg->daemon.kernel == CONF_KERNEL_XFRM || cfg->daemon.kernel == CONF_KERNEL_AUTO;
}

static void print_link(const struct config *cfg, const struct conf_link *l, int64_t now, FILE *f)
{
	char digest[ROT_DIGEST_STRLEN], a[GENS_ADDR_LEN], b[GENS_ADDR_LEN], t[32];
	char d1[CONF_DURATION_STRLEN], d2[CONF_DURATION_STRLEN], d3[CONF_DURATION_STRLEN];
	char d4[CONF_DURATION_STRLEN];
	bool esn = effective_esn(cfg, l);
	int64_t e = rot_epoch(now, l->rotate_every, l->phase);
	int64_t start = rot_epoch_start(e, l->rotate_every, l->phase);
	int64_t next = rot_epoch_start(e + 1, l->rotate_every, l->phase);
	const char *why = "";
	int gen;

	if (rot_plan_digest(l, esn, digest))
		snprintf(digest, sizeof(digest), "(unavailable)");
	store_addr_ntop(l->local.family, l->local.bytes, a, sizeof(a));
	store_addr_ntop(l->remote.family, l->remote.bytes, b, sizeof(b));
	fprintf(f, "link %s  digest %s\n", l->name, digest);
	fprintf(f, "  local %s  remote %s  mode %s", a, b,
		l->mode == CONF_MODE_TUNNEL ? "tunnel" : "transport");
	if (l->mode == CONF_MODE_TUNNEL) {
		store_addr_ntop(l->local_subnet.family, l->local_subnet.bytes, a, sizeof(a));
		store_addr_ntop(l->remote_subnet.family, l->remote_subnet.bytes, b, sizeof(b));
		fprintf(f, "  local_subnet %s/%u  remote_subnet %s/%u", a,
			(unsigned)l->local_subnet.prefixlen, b, (unsigned)l->remote_subnet.prefixlen);
	}
	fprintf(f, "\n  algorithm %s  esn %s%s\n", l->alg->name, esn ? "yes" : "no",
		l->esn == CONF_AUTO ? " (auto: yes with XFRM, no with PF_KEY)" : "");
	fprintf(f, "  spi_prefix 0x%06" PRIx32 "%s  rotate_every %s  phase %s%s  lead %s  grace %s\n",
		l->spi_prefix, l->spi_prefix_auto ? " (auto)" : "",
		conf_format_duration(l->rotate_every, d1), conf_format_duration(l->phase, d2),
		l->phase_auto ? " (auto)" : "", conf_format_duration(l->lead, d3),
		conf_format_duration(l->grace, d4));
	fprintf(f, "  epoch %" PRId64 " since %s", e, utc(start, t));
	gen = recorded_gen(cfg->daemon.state_dir, l, e, &why);
	if (gen >= 0)
		fprintf(f, "  outbound generation %d\n", gen);
	else
		fprintf(f, "  outbound generation unknown (%s)\n", why);
	if (now < start + (int64_t)l->grace)
		fprintf(f, "  %s  inbound epoch %" PRId64 " ends (grace)\n",
			utc(start + (int64_t)l->grace, t), e - 1);
	if (now < next - (int64_t)l->lead)
		fprintf(f, "  %s  inbound epoch %" PRId64 " accepted (lead)\n",
			utc(next - (int64_t)l->lead, t), e + 1);
	fprintf(f, "  %s  rotation to epoch %" PRId64 "\n", utc(next, t), e + 1);
	fprintf(f, "  %s  inbound epoch %" PRId64 " ends (grace)\n", utc(next + (int64_t)l->grace, t),
		e);
}

int daemon_print_plan(struct config *cfg, int64_t now, FILE *f)
{
	size_t first = 0, second = 0;
	int ret = rot_resolve_links(cfg->links, cfg->nlinks, &first, &second);

	if (ret == -EEXIST) {
		fprintf(stderr, "%s: links %s and %s have the same spi_prefix %#x; set spi_prefix "
				"explicitly on one of them\n",
			cfg->path, cfg->links[first].name, cfg->links[second].name,
			cfg->links[first].spi_prefix);
		return ret;
	}
	if (ret) {
		fprintf(stderr, "%s: link %s: cannot resolve phase/spi_prefix: %s\n", cfg->path,
			cfg->links[first].name, strerror(-ret));
		return ret;
	}
	fprintf(f, "plan at %s (digests: doc sakeyd(8), PLAN DIGEST)\n", utc(now, (char[32]){ 0 }));
	for (size_t i = 0; i < cfg->nlinks; i++)
		print_link(cfg, &cfg->links[i], now, f);
	return 0;
}
