/* SPDX-License-Identifier: ISC */
/* Builds a sakeyd.db for sactl's golden tests with the store API, as a running sakeyd would. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store.h"

/*
 * usage: mkdb STATE_DIR NOW PID [SCENARIO...]
 * A base ledger at NOW: links l1 (spi_prefix 0x2a) and l2 (0x2b), their SAs,
 * an unmanaged SA keyed by hand, a gone SA, rotations and events older than
 * sactl check's window. PID 0 leaves the pid out (a clean stop). Scenarios
 * add to it: soft (the hand-keyed SA reached its soft lifetime a minute ago),
 * hard (and then its hard one), rotfail (a failed rotation 2 minutes ago),
 * old (an SA added 2 days ago), stale (last write 10 minutes ago).
 */

static struct store *s;

static void die(const char *what, int ret)
{
	fprintf(stderr, "mkdb: %s: %s (%s)\n", what, strerror(-ret), s ? store_errmsg(s) : "");
	exit(1);
}

static int64_t sa(const char *link, enum store_dir dir, uint32_t spi, const char *src,
		  const char *dst, int64_t epoch, int64_t added, int64_t soft, int64_t hard,
		  uint64_t bytes, uint64_t packets, const char *fp)
{
	struct store_sa r = {
		.dir = dir,
		.spi = spi,
		.proto = 50,
		.has_epoch = link != NULL,
		.epoch = epoch,
		.managed = link != NULL,
		.state = STORE_SA_MATURE,
		.added_at = added,
		.soft_expires_at = soft,
		.hard_expires_at = hard,
		.bytes = bytes,
		.packets = packets,
		.last_counters_at = added,
	};
	int64_t id;
	int ret;

	snprintf(r.link, sizeof(r.link), "%s", link ? link : "");
	snprintf(r.src, sizeof(r.src), "%s", src);
	snprintf(r.dst, sizeof(r.dst), "%s", dst);
	snprintf(r.mode, sizeof(r.mode), "%s", "transport");
	snprintf(r.algorithm, sizeof(r.algorithm), "%s",
		 link ? "aes-cbc-256-hmac-sha512" : "");
	snprintf(r.key_fp, sizeof(r.key_fp), "%s", fp ? fp : "");
	ret = store_sa_add(s, &r, &id);
	if (ret)
		die("sa", ret);
	return id;
}

static void event(int64_t at, enum store_event_kind kind, const char *link, uint32_t spi,
		  const char *src, const char *dst, const char *msg)
{
	struct store_event ev = { .at = at, .kind = kind, .spi = spi, .proto = spi ? 50 : 0 };
	int ret;

	snprintf(ev.link, sizeof(ev.link), "%s", link ? link : "");
	snprintf(ev.src, sizeof(ev.src), "%s", src ? src : "");
	snprintf(ev.dst, sizeof(ev.dst), "%s", dst ? dst : "");
	snprintf(ev.message, sizeof(ev.message), "%s", msg);
	ret = store_event_add(s, &ev, NULL);
	if (ret)
		die("event", ret);
}

static void rotation(int64_t at, const char *link, int64_t epoch, bool ok, uint32_t old_spi,
		     uint32_t new_spi, const char *detail)
{
	struct store_rotation r = {
		.at = at,
		.epoch = epoch,
		.result = ok ? STORE_ROT_OK : STORE_ROT_FAILED,
		.old_spi = old_spi,
		.new_spi = new_spi,
	};
	int ret;

	snprintf(r.link, sizeof(r.link), "%s", link);
	snprintf(r.detail, sizeof(r.detail), "%s", detail);
	ret = store_rotation_add(s, &r, NULL);
	if (ret)
		die("rotation", ret);
}

int main(int argc, char **argv)
{
	char err[STORE_ERRMSG_LEN];
	int64_t now, pid, hand, gone, last_write;
	int ret;

	if (argc < 4) {
		fprintf(stderr, "usage: mkdb STATE_DIR NOW PID [SCENARIO...]\n");
		return 2;
	}
	now = strtoll(argv[2], NULL, 10);
	pid = strtoll(argv[3], NULL, 10);
	last_write = now - 4;
	ret = store_open(argv[1], false, &s, err, sizeof(err));
	if (ret) {
		fprintf(stderr, "mkdb: %s: %s\n", argv[1], err);
		return 1;
	}
	/*
	 * Links l1 (epoch 7 current, 8 staged) and l2 (epoch 3), with key
	 * schedule v2's SPIs (prefix << 8 | generation << 4 | epoch mod 16): l1's
	 * outbound SA of epoch 7 was removed by another tool and re-installed as
	 * generation 1; l2's host lost its records, so its sender is at 15.
	 */
	gone = sa("l1", STORE_DIR_OUT, 0x2a06, "192.0.2.1", "198.51.100.7", 6, now - 7300,
		  now - 3500, now + 100, 81234, 90, "0011223344556677");
	if ((ret = store_sa_set_state(s, gone, STORE_SA_GONE, now - 3600)))
		die("gone", ret);
	sa("l1", STORE_DIR_IN, 0x2a07, "198.51.100.7", "192.0.2.1", 7, now - 3660, now + 100,
	   now + 3700, 123456789, 98765, "735063a3ff9b6832");
	sa("l1", STORE_DIR_OUT, 0x2a17, "192.0.2.1", "198.51.100.7", 7, now - 1800, now + 100,
	   now + 3700, 2345, 17, "d55db93cd27a6fac");
	sa("l1", STORE_DIR_IN, 0x2a08, "198.51.100.7", "192.0.2.1", 8, now - 60, now + 3700,
	   now + 7300, 0, 0, "4c0eb6d3b9000caf");
	sa("l2", STORE_DIR_OUT, 0x2bf3, "2001:db8::1", "2001:db8::2", 3, now - 192, now + 86400,
	   now + 90000, 1, 1, NULL);
	/* Keyed by hand with ip xfrm: no link, no fingerprint. */
	hand = sa(NULL, STORE_DIR_NONE, 0x1234, "192.0.2.10", "192.0.2.20", 0, now - 125,
		  now + 500, now + 1000, 0, 0, NULL);

	rotation(now - 7200, "l1", 6, true, 0x2a05, 0x2a06, "");
	rotation(now - 3600, "l1", 7, true, 0x2a06, 0x2a07, "");
	rotation(now - 5000, "l2", 3, false, 0, 0x2bf3, "File exists \"quoted\"");
	rotation(now - 4990, "l2", 3, true, 0x2b02, 0x2bf3, "");
	event(now - 3605, STORE_EV_ADD, "l1", 0x2a07, "192.0.2.1", "198.51.100.7",
	      "added by sakeyd");
	event(now - 3605, STORE_EV_DELETE, "l1", 0x2a06, "192.0.2.1", "198.51.100.7",
	      "deleted (rotation)");
	event(now - 1800, STORE_EV_SA_REMOVED, "l1", 0x2a07, "192.0.2.1", "198.51.100.7",
	      "managed SA deleted by another tool while still in use; re-installing");
	event(now - 125, STORE_EV_ADD, NULL, 0x1234, "192.0.2.10", "192.0.2.20",
	      "added via netlink (ip xfrm)");

	for (int i = 4; i < argc; i++) {
		if (!strcmp(argv[i], "soft") || !strcmp(argv[i], "hard")) {
			struct store_sa r;

			if ((ret = store_sa_get(s, hand, &r)))
				die("get", ret);
			r.state = STORE_SA_DYING;
			if ((ret = store_sa_update(s, hand, &r)))
				die("dying", ret);
			event(now - 60, STORE_EV_EXPIRE_SOFT, NULL, 0x1234, "192.0.2.10",
			      "192.0.2.20", "soft lifetime reached: refresh its keys");
		}
		if (!strcmp(argv[i], "hard")) {
			if ((ret = store_sa_set_state(s, hand, STORE_SA_GONE, now - 30)))
				die("hard", ret);
			event(now - 30, STORE_EV_EXPIRE_HARD, NULL, 0x1234, "192.0.2.10",
			      "192.0.2.20", "hard lifetime reached: the kernel deleted the SA");
		} else if (!strcmp(argv[i], "rotfail")) {
			rotation(now - 120, "l2", 4, false, 0, 0x2b04,
				 "No buffer space available");
			event(now - 120, STORE_EV_ROTATION_FAILED, "l2", 0x2b04,
			      "2001:db8::1", "2001:db8::2",
			      "adding spi 0x2b04 failed: No buffer space available; "
			      "retry in 1s");
		} else if (!strcmp(argv[i], "old")) {
			sa(NULL, STORE_DIR_NONE, 0x5678, "192.0.2.30", "192.0.2.40", 0,
			   now - 2 * 86400 - 3 * 3600, 0, 0, 5, 1, NULL);
		} else if (!strcmp(argv[i], "xfrm")) {
			event(now - 90, STORE_EV_XFRM_ERRORS, NULL, 0, NULL, NULL,
			      "the kernel counted IPsec errors (packets dropped): XfrmInNoStates "
			      "+37 (now 37)");
		} else if (!strcmp(argv[i], "gens")) {
			/* Key schedule v2's events (ledger schema v5). */
			event(now - 600, STORE_EV_GENERATION_CHANGED, "l1", 0x2a17, "192.0.2.1",
			      "198.51.100.7", "sender moved to generation 1 of epoch 7 after a loss");
			event(now - 500, STORE_EV_REPLAY_UNPROTECTED, "l1", 0x2a07, "198.51.100.7",
			      "192.0.2.1",
			      "inbound SA re-installed without its replay state (PF_KEY)");
		} else if (!strcmp(argv[i], "exhausted")) {
			event(now - 100, STORE_EV_GENERATIONS_EXHAUSTED, "l2", 0, NULL, NULL,
			      "generations of epoch 3 used up: no outbound SA until epoch 4");
		} else if (!strcmp(argv[i], "stale")) {
			last_write = now - 600;
		}
	}
	if (pid)
		ret = store_meta_set_int(s, STORE_META_PID, pid);
	if (!ret)
		ret = store_meta_set_int(s, STORE_META_LAST_WRITE_AT, last_write);
	if (!ret)
		ret = store_meta_set_int(s, STORE_META_LAST_DUMP_AT, last_write);
	/* As the daemon records l1's resolved schedule (ledger.c); l2's auto phase goes unknown. */
	if (!ret) {
		char key[STORE_META_SCHEDULE_LEN];

		store_meta_schedule_key("l1", key);
		ret = store_meta_set(s, key, "period=3600 phase=960");
	}
	if (ret)
		die("meta", ret);
	store_close(s);
	return 0;
}
