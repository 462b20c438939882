/* SPDX-License-Identifier: ISC */
/*
 * The ledger's writes after a rotation, on the host (BENCHMARKS.md, #22):
 * the real svc/daemon/ledger.c behind the unit tests' stand-in daemon, fed
 * the hooks of key schedule v2 rotations of N links (3 passes: 3N inbound
 * adds; N outbound adds, N deletes and N rotation rows; 3N inbound
 * deletes), each pass then written and committed as the daemon does (loop
 * turns until the queue is committed). Prints the seconds the loop spent in
 * each rotation's writes, wall and its thread's CPU (user + system: on a
 * loaded machine the wall time is mostly waiting for a CPU). Run under strace -f to count system calls by
 * thread (the loop's, the checkpoint thread's). Not a test.
 *
 *   ledger_run DIR [links [rotations]]
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <uv.h>

#include "../unit/fake_daemon.h"
#include "monitor/table.h"
#include "store/store.h"
#include "svc/base/log.h"
#include "svc/daemon/ledger.h"

static double now_s(clockid_t clock)
{
	struct timespec ts;

	clock_gettime(clock, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_s; /* the loop thread's CPU seconds in settle, this rotation */

static struct mon_sa *put(struct fake_daemon *d, size_t link, uint32_t spi, enum rot_dir dir)
{
	struct rot_sa sa = { .spi = spi, .proto = IPPROTO_ESP };
	struct mon_sa *e;
	bool created;

	sa.src.family = sa.dst.family = AF_INET;
	sa.src.bytes[0] = 10, sa.src.bytes[1] = (uint8_t)(link >> 8), sa.src.bytes[2] = (uint8_t)link;
	sa.dst.bytes[0] = 10, sa.dst.bytes[1] = 200, sa.dst.bytes[3] = 1;
	if (dir == ROT_DIR_IN) {
		struct conf_addr t = sa.src;

		sa.src = sa.dst;
		sa.dst = t;
	}
	e = mon_table_put(d->table, &sa, &created);
	if (!e || !created)
		abort();
	e->managed = true;
	e->sa.link = &d->cfg->links[link];
	e->sa.dir = dir;
	e->sa.epoch = spi & 0xff;
	e->added_at = 1000;
	e->state = MON_MATURE;
	return e;
}

static void drop(struct fake_daemon *d, struct mon_sa *e)
{
	struct rot_sa id = e->sa;

	d->obs->sa_gone(d->obs->self, e, "deleted (rotation)");
	if (!mon_table_del(d->table, &id))
		abort();
}

/* The daemon's loop turns after a pass, until the queue is written and committed. */
static double settle(struct fake_daemon *d, size_t items)
{
	double t0 = now_s(CLOCK_MONOTONIC), c0 = now_s(CLOCK_THREAD_CPUTIME_ID);

	for (size_t i = 0; i < items / 2000 + 3; i++)
		uv_run(&d->loop, UV_RUN_NOWAIT);
	cpu_s += now_s(CLOCK_THREAD_CPUTIME_ID) - c0;
	return now_s(CLOCK_MONOTONIC) - t0;
}

static uint32_t spi_of(size_t link, unsigned epoch, unsigned gen)
{
	return (uint32_t)((0x1000 + link) << 8 | ((epoch * 16 + gen) & 0xff));
}

int main(int argc, char **argv)
{
	size_t n = argc > 2 ? strtoul(argv[2], NULL, 10) : 10000;
	unsigned reps = argc > 3 ? (unsigned)strtoul(argv[3], NULL, 10) : 3;
	struct fake_daemon d = { 0 };
	struct config *cfg = calloc(1, sizeof(*cfg));
	struct mon_sa **out, **in;
	struct daemon_port port;
	struct ledger *l;

	if (argc < 2 || !cfg || !n) {
		fprintf(stderr, "usage: ledger_run DIR [links [rotations]]\n");
		return 2;
	}
	cfg->daemon.kernel = CONF_KERNEL_SIM;
	cfg->daemon.event_retention = 30 * 86400;
	snprintf(cfg->daemon.state_dir, sizeof(cfg->daemon.state_dir), "%s", argv[1]);
	cfg->links = calloc(n, sizeof(*cfg->links));
	out = calloc(n, sizeof(*out));
	in = calloc(3 * n, sizeof(*in));
	if (!cfg->links || !out || !in)
		return 1;
	cfg->nlinks = n;
	for (size_t i = 0; i < n; i++) {
		snprintf(cfg->links[i].name, sizeof(cfg->links[i].name), "link%zu", i);
		cfg->links[i].spi_prefix = (uint32_t)(0x1000 + i);
	}
	d.cfg = cfg;
	d.table = mon_table_new();
	if (!d.table || uv_loop_init(&d.loop))
		return 1;
	port = fake_daemon_port(&d);
	if (ledger_new(&port, &l))
		return 1;
	d.obs = ledger_observer(l);
	/* Epoch 0: the links' outbound and three inbound SAs, as after a rotation. */
	for (size_t i = 0; i < n; i++) {
		out[i] = put(&d, i, spi_of(i, 0, 0), ROT_DIR_OUT);
		d.obs->sa_added(d.obs->self, out[i], false);
		for (unsigned g = 0; g < 3; g++) {
			in[3 * i + g] = put(&d, i, spi_of(i, 0, g + 1), ROT_DIR_IN);
			d.obs->sa_added(d.obs->self, in[3 * i + g], false);
		}
	}
	settle(&d, 4 * n);
	for (unsigned r = 1; r <= reps; r++) {
		struct mon_sa **fresh = calloc(3 * n, sizeof(*fresh));
		double t = 0;

		if (!fresh)
			return 1;
		cpu_s = 0;
		for (size_t i = 0; i < 3 * n; i++) { /* T - lead: the next epoch's inbound */
			fresh[i] = put(&d, i / 3, spi_of(i / 3, r, (unsigned)(i % 3) + 1), ROT_DIR_IN);
			d.obs->sa_added(d.obs->self, fresh[i], false);
		}
		t += settle(&d, 3 * n);
		for (size_t i = 0; i < n; i++) { /* T: the outbound SA replaced */
			struct mon_sa *o = put(&d, i, spi_of(i, r, 0), ROT_DIR_OUT);

			d.obs->sa_added(d.obs->self, o, false);
			drop(&d, out[i]);
			out[i] = o;
			d.obs->rotation(d.obs->self, &cfg->links[i], &o->sa, true, NULL);
		}
		t += settle(&d, 3 * n);
		for (size_t i = 0; i < 3 * n; i++) /* T + grace: the old epoch's inbound */
			drop(&d, in[i]);
		t += settle(&d, 3 * n);
		free(in);
		in = fresh;
		printf("rotation %u: %zu links, the ledger's writes and commits %.3f s, loop CPU %.3f s\n",
		       r, n, t, cpu_s);
		fflush(stdout);
	}
	ledger_stop(l);
	uv_loop_close(&d.loop);
	ledger_free(l);
	return 0;
}
