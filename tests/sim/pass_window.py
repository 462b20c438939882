#!/usr/bin/env python3
# SPDX-License-Identifier: ISC
"""A pass hands its requests to the kernel channel in bounded chunks (#22 peak RSS).

N = 700 links start fresh on simd (key schedule v2, no generation records):
the first pass adds 17N = 11,900 SAs, and the first rotation's T+grace
deletes the fresh epoch's 16N = 11,200 inbound SAs; both are more than
PASS_QUEUE_MAX (8,192), the requests the daemon hands to the channel at a
time. It used to hand over a whole pass at once: every request's kern_req
and encoded message held together (70 MiB of the peak at 10,000 links).
Asserted, from the daemon's own debug line after each pass ("N requests
queued at most") and from simd's SADB, not from any clock or RSS figure:
- the channel never held more requests unsent than the bound;
- each of those passes still did all it had to, with no failure, and the
  SADB holds exactly the SA count the schedule wants after each.

usage: pass_window.py SAKEYD SACTL SIMD LOGDIR
"""
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import simlib  # noqa: E402

SAKEYD, SACTL, SIMD, LOGDIR = sys.argv[1:5]
N = 700
BOUND = 8192  # svc/daemon/daemon.c PASS_QUEUE_MAX
L = 10        # lead = grace
P = 6 * L     # rotate_every
check = simlib.Checks()

# The next change point T lies 2L + 10 s ahead: the start has 10 s before T - lead.
T = int(time.time()) + 2 * L + 10
links = simlib.make_links(N, P, lead=L, grace=L, phase=T % P)
env = simlib.Env(SAKEYD, SACTL, SIMD, LOGDIR, links)
PASS = re.compile(r"reconcile pass: (\d+) added, (\d+) deleted, (\d+) failed")
QUEUED = re.compile(r"kernel channel since start: (\d+) requests queued at most")


def passes():
    text = env.log_since()
    return PASS.findall(text), [int(q) for q in QUEUED.findall(text)]


def wait_pass(pred, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline and env.daemon.poll() is None:
        found, queued = passes()
        for i, (a, d, f) in enumerate(found):
            if pred(int(a), int(d)) and len(queued) > i:
                return (int(a), int(d), int(f)), queued[i]
        time.sleep(0.2)
    return None, None


def managed_count():
    return len(env.managed(env.dump()))


try:
    env.start(args=("-v",))
    got, queued = wait_pass(lambda a, d: a >= 17 * N, 120)
    check(got is not None, f"the first pass added {17 * N} SAs ({got})")
    if got:
        check(got[2] == 0, "the first pass failed nothing")
        check(queued <= BOUND,
              f"the channel held at most {BOUND} requests in the first pass ({queued})")
        check(managed_count() == 17 * N, f"the SADB holds {17 * N} SAs after it")
    # T + grace: the fresh epoch's 16 inbound generations go (and the older spares).
    got, queued = wait_pass(lambda a, d: d >= 16 * N, T + L + 120 - time.time())
    check(got is not None, f"the first rotation's T+grace deleted {16 * N} SAs ({got})")
    if got:
        check(got[2] == 0, "that pass failed nothing")
        check(queued <= BOUND,
              f"the channel held at most {BOUND} requests in that pass too ({queued})")
        # Steady state: the outbound SA and the inbound generation 0 + spares 1, 15.
        check(managed_count() == 4 * N, f"the SADB holds {4 * N} SAs after it")
    rc, bad = env.stop()
    check(rc == 0 and not bad, f"SIGTERM: exit 0, no sanitizer report (rc {rc})")
finally:
    env.close()
check.finish()
