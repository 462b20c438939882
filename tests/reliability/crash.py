#!/usr/bin/env python3
# SPDX-License-Identifier: ISC
"""Crash anywhere: kill -9 the daemon at random instants during rotations, restart it.

sakeyd runs on simd (sim_connect), so the simulated SADB survives each kill.
4 links (three with rotate_every = 1s, one with 4s, lead 1s, grace 1s, so the
make-before-break windows are exercised too). KILLS times: start sakeyd,
kill it with SIGKILL at a random instant of one of three kinds:
- "start": 0-400 ms after exec (during the start-up dump and first pass);
- "rotation": a whole second (every epoch boundary) + 0-30 ms, in the pass;
- "uniform": 0-1 s after it is ready.
After every restart that reaches "ready", asserted:
- the SADB equals the desired set computed here from DESIGN.md (no missing
  SA, no duplicate, no orphan: nothing outside the window);
- the ledger's live SAs (sactl status --json) equal the SADB;
and at the end every row of the ledger (live or gone) matches the key schedule.
Then a last run ends with SIGTERM: exit 0 and no sanitizer report.

usage: crash.py SAKEYD SACTL SIMD LOGDIR [KILLS]
"""
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "sim"))
import simlib  # noqa: E402

SAKEYD, SACTL, SIMD, LOGDIR = sys.argv[1:5]
KILLS = int(sys.argv[5]) if len(sys.argv) > 5 else 100
check = simlib.Checks()
rand = simlib.rng()

links = simlib.make_links(3, 1)
links.append(simlib.Link("w4", "192.0.2.1", "10.9.0.2", 4, 1, 1))
env = simlib.Env(SAKEYD, SACTL, SIMD, LOGDIR, links, "refresh_interval = 2s\n")

verified = mismatched = ledger_bad = not_ready = retries = 0
where = {}
kinds = {"start": 0, "rotation": 0, "uniform": 0}
first_bad = []
t0 = time.time()
try:
    for i in range(KILLS + 1):
        env.start()
        kind = rand.choices(["start", "rotation", "uniform"], [2, 5, 3])[0]
        if i < KILLS and kind == "start":
            time.sleep(rand.uniform(0, 0.4))
        else:
            if not env.wait_log("ready:", 60):
                not_ready += 1
                first_bad.append(f"run {env.runs}: never ready")
                if i == KILLS:
                    break
                env.kill9()
                continue
            ok, have, want, used = env.settled_set()
            retries += used - 1
            exact = ok and sorted(have) == sorted(want)
            if not exact:
                mismatched += 1
                first_bad.append(f"run {env.runs}: extra {sorted(set(have) - want)} "
                                 f"missing {sorted(want - set(have))} dup "
                                 f"{len(have) - len(set(have))}")
            agree, last = env.ledger_agrees()
            if not agree:
                ledger_bad += 1
                first_bad.append(f"run {env.runs}: ledger {last}")
            verified += 1
            if i == KILLS:
                break
            if kind == "rotation":
                now = time.time()
                time.sleep((int(now) + 1 - now) + rand.uniform(0, 0.03))
            else:
                time.sleep(rand.uniform(0, 1))
        env.kill9()
        kinds[kind] += 1
        # What the daemon was doing when it died: its last log line.
        lines = [ln for ln in env.log_since().splitlines() if ln.strip()]
        last = lines[-1] if lines else "(nothing)"
        tag = ("request" if (": add " in last or ": delete " in last) else
               "rotated" if "outbound spi" in last else
               "sync" if "synchronised" in last or "started" in last or "kernel = sim" in last
               else "ready" if "ready:" in last else "other")
        where[tag] = where.get(tag, 0) + 1

    elapsed = time.time() - t0
    print(f"     {sum(kinds.values())} kills {kinds} in {elapsed:.0f}s; last log line before "
          f"each kill: {where}")
    print(f"     {verified} restarts verified, {retries} extra mid-second samples needed")
    for line in first_bad[:5]:
        print("     " + line)
    check(sum(kinds.values()) >= KILLS, f"{KILLS} kill -9 at random instants")
    check(not_ready == 0, "every restart reaches ready")
    check(verified >= KILLS * 0.6 and mismatched == 0,
          "after every restart the SADB equals the desired set: no missing SA, no duplicate, "
          "no orphan")
    check(ledger_bad == 0, "after every restart the ledger's live SAs equal the SADB")
    rows, wrong = env.ledger_wrong()
    print(f"     {rows} ledger rows checked against the key schedule; wrong: {wrong[:3]}")
    check(rows > 0 and not wrong,
          "every SA the ledger ever recorded has the link, SPI, addresses and key "
          "fingerprint of its epoch")
    rc, bad = env.stop()
    check(rc == 0 and not bad, f"SIGTERM: exit {rc}, no sanitizer report")
    text = open(env.logpath, errors="replace").read()
    check("AddressSanitizer" not in text and "runtime error:" not in text,
          "no sanitizer error in any run")
    check(env.secrets_absent(), "no secret in the log")
finally:
    env.close()
check.finish()
