#!/usr/bin/env python3
# SPDX-License-Identifier: ISC
"""A soft EXPIRE the kernel dropped still raises its alert: the next dump shows the SA dying.

af_key.c's pfkey_broadcast_one drops a broadcast silently when the socket's
receive buffer is full; the kernel has meanwhile set the SA's km.dying, which
its dumps report as SADB_SASTATE_DYING (#22). sakeyd runs on simd
(sim_connect) with one link and refresh_interval = 2s. The test keys SA A by
hand (soft lifetime 6 s, hard 120 s), waits for a dump after its ADD, then
has simd drop every broadcast to its clients (drop 1000) from before A's
soft lifetime ends until after, so the soft EXPIRE reaches no one. Asserted:
- simd dropped messages (simd drops broadcasts and replies, not dump
  entries: the dumps go on meanwhile);
- expire-soft for A exactly once, saying a dump found it because its
  EXPIRE was lost (had the daemon heard the EXPIRE, the dump would have
  nothing to add);
- SIGTERM: exit 0, no sanitizer report.

usage: lostexpire.py SAKEYD SACTL SIMD LOGDIR
"""
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "sim"))
import simlib  # noqa: E402
from pfkey import hand_add_request  # noqa: E402

SAKEYD, SACTL, SIMD, LOGDIR = sys.argv[1:5]
SPI = 0xa11ce
SOFT_S = 6
check = simlib.Checks()


def alerts(text):
    return [line for line in text.splitlines()
            if "ALERT expire-soft " in line and f"spi={SPI:#x} " in line]


link = simlib.make_links(1, 60)[0]
env = simlib.Env(SAKEYD, SACTL, SIMD, LOGDIR, [link], daemon_extra="refresh_interval = 2s")
try:
    env.start()
    check(env.wait_log("SADB synchronised", timeout=60), "the daemon synchronised")
    check(env.wait_log("registered for EXPIRE and ACQUIRE", timeout=60), "registered for EXPIRE")
    added = time.time()
    env.obs.send(hand_add_request(1, 999, SPI, SOFT_S, 120))
    offset = len(env.log_since(0))
    check(env.wait_log("SADB synchronised", timeout=30, offset=offset),
          "a dump after A's ADD")
    # The drop starts once a dump has seen A mature, well before its soft limit.
    check(env.simctl("drop 1000 1") == "ok", "simd drops every message")
    check(time.time() < added + SOFT_S - 0.5, "the drop started before A's soft lifetime ended")
    time.sleep(max(0.0, added + SOFT_S + 3 - time.time()))
    check(env.simctl("drop 0 1") == "ok", "simd delivers again")
    stats = env.sim_stats()
    check(stats.get("dropped", 0) > 0, f"simd dropped messages ({stats.get('dropped')})")
    check(env.wait_log("its EXPIRE was lost", timeout=30), "a dump found A dying")
    time.sleep(2.5)  # one more dump: no second alert
    soft = alerts(env.log_since(0))
    check(len(soft) == 1 and "found by a dump: its EXPIRE was lost" in soft[0],
          f"expire-soft for A once, found by a dump ({soft})")
    env.stop_checked(check)
finally:
    env.close()
check.finish()
