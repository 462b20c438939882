#!/usr/bin/env python3
# SPDX-License-Identifier: ISC
"""An installed SA of a link whose key changes unseen is found by the next dump.

A pass compares the key of every installed SA of a link with the one sakeyd
derives for it, and remembers the SAs whose keys matched, so that a refresh
(every refresh_interval) does not derive every key again. That memory must
end when the kernel reports another key for the SA: here the SA is deleted
and added again, with the same SPI and attributes but other keys, while simd
drops every broadcast (the daemon hears neither), so only the next dump shows
the new key.

sakeyd runs on simd (sim_connect) with one link (rotate_every 1h: no change
point during the test) and refresh_interval = 2s. Asserted:
- before: no rotation-failed alert;
- after the swap, within a few refreshes: a rotation-failed alert naming the
  link and the SPI ("other keys or attributes than planned");
- SIGTERM: exit 0, no sanitizer report; no secret in the log.

usage: keyswap.py SAKEYD SACTL SIMD LOGDIR
"""
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "sim"))
import simlib  # noqa: E402
import genmodel  # noqa: E402,I100 (tests/lib: simlib puts it on the path)
from pfkey import delete_request, hand_add_request  # noqa: E402

SAKEYD, SACTL, SIMD, LOGDIR = sys.argv[1:5]
check = simlib.Checks()
link = simlib.make_links(1, 3600)[0]
env = simlib.Env(SAKEYD, SACTL, SIMD, LOGDIR, [link], daemon_extra="refresh_interval = 2s")
try:
    offset = env.start()
    check(env.wait_log("ready:", timeout=60, offset=offset), "sakeyd started and reconciled")
    model = genmodel.Model(env)
    genmodel.check_settled(check, env, model, "the link's SAs are the desired set of a fresh start")
    # Two refreshes and their passes: every installed key compared and found right.
    mark = len(env.log_since(offset))
    for _ in range(2):
        check(env.wait_log("SADB synchronised", timeout=20, offset=offset + mark),
              "a refresh dump ran")
        mark = len(env.log_since(offset))
    time.sleep(0.5)
    check("ALERT rotation-failed" not in env.log_since(offset),
          "no rotation-failed alert before the swap")
    inbound = sorted(spi for spi, src, dst in env.managed(env.dump()) if dst == link.local)
    check(inbound, f"an inbound SA of the link to swap ({[hex(s) for s in inbound]})")
    victim = inbound[0]
    mark = len(env.log_since(offset))
    check(env.simctl("drop 1000 1") == "ok", "simd drops every reply and broadcast")
    env.obs.send(delete_request(9001, 4343, victim, link.remote, link.local))
    env.obs.send(hand_add_request(9002, 4343, victim, 3000, 3600, link.remote, link.local))
    time.sleep(0.3)
    check(env.simctl("drop 0 1") == "ok", "simd delivers again")
    check(victim in {spi for spi, _, _ in env.dump()}, "the SA is there again, other keys")
    check(env.wait_log("other keys or attributes than planned", timeout=20,
                       offset=offset + mark),
          "a pass after the next dump finds the other keys")
    lines = [x for x in env.log_since(offset)[mark:].splitlines()
             if "ALERT rotation-failed" in x]
    check(len(lines) == 1 and f"link={link.name} " in lines[0] and f"{victim:#x}" in lines[0],
          f"one rotation-failed alert naming the link and spi {victim:#x} ({lines})")
    env.stop_checked(check)
finally:
    env.close()
check.finish()
