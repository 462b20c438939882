#!/usr/bin/env python3
# SPDX-License-Identifier: ISC
"""An outbound add whose reply was lost still does what its reply would have done, once the
resync shows the SA installed: the new generation's rotation is recorded and
generation-changed is raised.

The kernel drops a reply silently when the socket's receive queue is full (af_key.c:
pfkey_broadcast_one); the daemon gives up on it after its timeout, resyncs, and finds the
SA there. Until this test, a new generation after a loss whose reply was lost raised no
generation-changed alert and sent no probe (seen in kickrace under load: "adding spi ...:
no reply (lost)", then no alert).

sakeyd runs on simd (sim_connect) with one link and refresh_interval = 2s. Once it is
synchronised, simd drops every reply and broadcast (drop 1000; dump entries still go),
and another client deletes the link's outbound SA (generation 15 of a fresh state
directory). The daemon learns of it from a dump, adds generation 14, and that add's reply
is dropped. Asserted:
- the add's reply was lost (the daemon says so) and simd dropped messages;
- generation-changed for the link naming generation 14's SPI, saying the resync found the
  SA installed; the rotation is in sactl history;
- SIGTERM: exit 0, no sanitizer report.

usage: lostreply.py SAKEYD SACTL SIMD LOGDIR
"""
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "sim"))
import simlib  # noqa: E402
from pfkey import delete_request  # noqa: E402

SAKEYD, SACTL, SIMD, LOGDIR = sys.argv[1:5]
check = simlib.Checks()

link = simlib.make_links(1, 120)[0]
env = simlib.Env(SAKEYD, SACTL, SIMD, LOGDIR, [link], daemon_extra="refresh_interval = 2s")
try:
    env.start()
    check(env.wait_log("ready:", timeout=60), "sakeyd started and reconciled")
    check(env.wait_log("SADB synchronised", timeout=60), "the daemon synchronised")
    e = link.epoch(time.time())
    out15, out14 = simlib.spi(link.prefix, e, 15), simlib.spi(link.prefix, e, 14)
    check((out15, link.local, link.remote) in env.dump(),
          f"the outbound SA is generation 15 ({out15:#x}): a fresh state directory")
    offset = len(env.log_since(0))
    check(env.simctl("drop 1000 1") == "ok", "simd drops every reply and broadcast")
    env.obs.send(delete_request(1, 999, out15, link.local, link.remote))
    check(env.wait_log(f"adding spi {out14:#x}: no reply (lost)", timeout=60, offset=offset),
          f"the add of generation 14 ({out14:#x}) lost its reply")
    check(env.simctl("drop 0 1") == "ok", "simd delivers again")
    stats = env.sim_stats()
    check(stats.get("dropped", 0) > 0, f"simd dropped messages ({stats.get('dropped')})")
    want = f"ALERT generation-changed link={link.name} spi={out14:#x}"
    check(env.wait_log(want, timeout=60, offset=offset),
          f"generation-changed for generation 14 ({out14:#x}) after the resync")
    r = env.sactl("history", "--json")
    try:
        rows = json.loads(r.stdout)["rotations"]
    except (ValueError, KeyError):
        rows = []
    mine = [x for x in rows if x.get("new_spi") == out14]
    check(len(mine) == 1 and "the resync found the SA installed" in (mine[0].get("detail") or ""),
          f"sactl history has generation 14's rotation, saying the resync found it ({mine or rows[-2:]})")
    check((out14, link.local, link.remote) in env.dump(), "generation 14 is installed")
    env.stop_checked(check)
finally:
    env.close()
check.finish()
