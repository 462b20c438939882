#!/usr/bin/env python3
# SPDX-License-Identifier: ISC
"""Where the daemon's peak memory is, on the host (#22): no timing, no assertion.

N links on simd (the simulated SADB in its own process, so that its SAs are
not in the daemon's memory), every link's epoch ending at the same instants
as in the bench's phase B (rotate_every = 4L, lead = grace = L): a fresh start
(17N SAs, key schedule v2), then ROT rotations. After the start and after
every reconciliation pass that changed something it prints the daemon's
VmHWM and VmRSS (/proc/PID/status), so the pass that makes the peak is seen.
With --heaptrack the daemon runs under heaptrack (slower: use a larger L);
`heaptrack_print -p 0 -a 0 -T 0 --print-peaks FILE` then tells who holds the
peak.

usage: rss_sim.py SAKEYD SIMD [--links N] [--lead L] [--rotations R] [--heaptrack OUT]
"""
import argparse
import os
import re
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "sim"))
import simlib  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("sakeyd")
ap.add_argument("simd")
ap.add_argument("--links", type=int, default=10000)
ap.add_argument("--lead", type=int, default=20, help="lead = grace (s); rotate_every = 4x")
ap.add_argument("--rotations", type=int, default=3)
ap.add_argument("--heaptrack", default="")
ap.add_argument("--tmp", default="", help="directory for the work directory (TMPDIR)")
ap.add_argument("--extra", default="", help="more [daemon] lines, ';' between them")
args = ap.parse_args()

if args.tmp:
    tempfile.tempdir = args.tmp
N, L = args.links, args.lead
P = 4 * L
# The start lies after the previous epoch's grace and before the next T-lead.
T1 = int(time.time()) + 3 * L - 2
links = simlib.make_links(N, P, lead=L, grace=L, phase=T1 % P)
logdir = tempfile.mkdtemp(prefix="rss_sim-logs-")
env = simlib.Env(args.sakeyd, args.sakeyd, args.simd, logdir, links,
                 daemon_extra=args.extra.replace(";", "\n"))
# As the bench: no policies (the floor installs none), only SAs.
with open(env.conf) as f:
    conf = f.read()
with open(env.conf, "w") as f:
    f.write(conf.replace("hard_slack = 30s\n", "hard_slack = 30s\npolicy = no\n"))
if args.heaptrack:
    # heaptrack runs sakeyd as its child: a wrapper takes Env's place.
    wrapper = f"{env.work}/heaptrack-sakeyd"
    with open(wrapper, "w") as f:
        f.write(f'#!/bin/sh\nexec heaptrack -o {args.heaptrack} {env.sakeyd} "$@"\n')
    os.chmod(wrapper, 0o755)
    env.sakeyd = wrapper


def status(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmHWM", "VmRSS"):
                out[k] = int(v.split()[0]) // 1024
    return out


def daemon_pid():
    if not args.heaptrack:
        return env.daemon.pid
    # heaptrack runs sakeyd as its child (LD_PRELOAD): find it by its parent chain.
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/cmdline", "rb") as f:
                    argv = f.read().split(b"\0")
                if argv and argv[0] == args.sakeyd.encode() and env.conf.encode() in argv:
                    return int(d)
            except OSError:
                pass
    return None


env.start()
t0 = time.time()
end = T1 + (args.rotations - 1) * P + L + 3
seen = 0
pid = None
print(f"links {N}, lead = grace = {L} s, rotate_every {P} s, first change point in "
      f"{T1 - t0:.0f} s, end in {end - t0:.0f} s", flush=True)
while time.time() < end and env.daemon.poll() is None:
    time.sleep(0.2)
    if pid is None:
        pid = daemon_pid()
        if pid is None:
            continue
    text = env.log_since()
    lines = [ln for ln in text.splitlines()
             if "reconcile pass:" in ln or "queued writes written" in ln]
    for ln in lines[seen:]:
        st = status(pid)
        m = re.search(r"(reconcile pass: \d+ added, \d+ deleted|ledger: \d+ queued writes)", ln)
        print(f"{time.time() - t0:6.1f}s  VmHWM {st['VmHWM']:4d} MiB  VmRSS {st['VmRSS']:4d} MiB"
              f"  after {m.group(1) if m else ln}", flush=True)
    seen = len(lines)
st = status(pid)
print(f"logs: {logdir}")
print(f"end: VmHWM {st['VmHWM']} MiB, VmRSS {st['VmRSS']} MiB", flush=True)
env.stop()
env.close()
