#!/usr/bin/env python3
# SPDX-License-Identifier: ISC
"""Expiries while unregistered: a refused SADB_REGISTER is retried, and nothing is missed.

On PF_KEY, only registered sockets hear EXPIRE (af_key.c: pfkey_broadcast,
BROADCAST_REGISTERED). sakeyd registers on a worker thread at start (the
kernel probes its algorithms inside the REGISTER, seconds on a fresh boot);
af_key answers a refused one with an error message. sakeyd then runs
unregistered, retries every refresh_interval, and catches up from its dumps
on what expired in between.

sakeyd runs on simd (sim_connect) with one link and refresh_interval = 6s.
Before it starts, the test keys two SAs by hand: A with a soft lifetime of
2 s (hard 120 s), B with a hard lifetime of 3 s; and simd refuses the next
REGISTER (ENOBUFS). Both lifetimes run out before the retry; simd's EXPIREs
go to registered sockets only. Asserted:
- the first REGISTER was refused, and the daemon said so; a later one succeeded;
- expire-soft for A and expire-hard for B, each exactly once, each saying
  it was found by a dump;
- the managed SAs are the desired set of a fresh start;
- SIGTERM: exit 0, no sanitizer report.

usage: unheard.py SAKEYD SACTL SIMD LOGDIR
"""
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "sim"))
import simlib  # noqa: E402
import genmodel  # noqa: E402,I100 (tests/lib: simlib puts it on the path)
from pfkey import hand_add_request  # noqa: E402

SAKEYD, SACTL, SIMD, LOGDIR = sys.argv[1:5]
check = simlib.Checks()


def alerts(text, event, spi):
    return [line for line in text.splitlines()
            if f"ALERT {event} " in line and f"spi={spi:#x} " in line]


link = simlib.make_links(1, 60)[0]
env = simlib.Env(SAKEYD, SACTL, SIMD, LOGDIR, [link], daemon_extra="refresh_interval = 6s")
try:
    env.obs.send(hand_add_request(1, 999, 0xa11ce, 2, 120))
    env.obs.send(hand_add_request(2, 999, 0xb0b, 1, 3))
    time.sleep(0.2)
    check({0xa11ce, 0xb0b} <= {spi for spi, _, _ in env.dump()}, "both hand-keyed SAs are in simd")
    check(env.simctl("fail 7 105 1") == "ok", "simd refuses the next REGISTER")
    env.start()
    check(env.wait_log("SADB_REGISTER", timeout=30), "the daemon's REGISTER was answered")
    check(env.wait_log("registered for EXPIRE and ACQUIRE", timeout=60),
          "a later REGISTER succeeded")
    check(env.wait_log("found by a dump", timeout=30), "the dumps caught up")
    time.sleep(1)
    text = env.log_since()
    refused = text.find("No buffer space available: EXPIRE and ACQUIRE go unheard")
    check(0 <= refused < text.find("registered for EXPIRE"),
          "the refusal was logged, then the registration")
    soft = alerts(text, "expire-soft", 0xa11ce)
    hard = alerts(text, "expire-hard", 0xb0b)
    check(len(soft) == 1 and "found by a dump" in soft[0],
          f"expire-soft for A once, found by a dump ({len(soft)})")
    check(len(hard) == 1 and "found by a dump" in hard[0],
          f"expire-hard for B once, found by a dump ({len(hard)})")
    check(not alerts(text, "expire-hard", 0xa11ce), "no expire-hard for A")
    genmodel.check_settled(check, env, genmodel.Model(env),
                           "the link's SAs are the desired set of a fresh start (key schedule v2)")
    env.stop_checked(check)
finally:
    env.close()
check.finish()
