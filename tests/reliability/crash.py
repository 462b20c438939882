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
- the SADB equals the desired set computed here from DESIGN.md's key
  schedule v2 (tests/lib/genmodel.py: no missing SA, no duplicate, no
  orphan: nothing outside the window). Inbound: all 16 generations of epochs
  up to a link's first (the state directory starts empty), 0, 1 and 15 of
  later ones (no traffic on simd). Outbound: one SA of the current epoch,
  of the last generation generations.db records for it: a kill between
  recording a generation and installing it makes the next start install
  the next one (a recorded generation is never installed again);
- record before install: every outbound SA in the SADB has its (link,
  epoch, generation) in generations.db, and the generation a link sends
  with in an epoch only moves forward in its series (0..7 up, 15..8 down)
  from one restart to the next, never back to one already used;
- the ledger's live SAs (sactl status --json) equal the SADB;
and at the end every row of the ledger (live or gone) matches the key
schedule (SPI and key fingerprint of its epoch and generation).
Then a last run ends with SIGTERM: exit 0 and no sanitizer report.

usage: crash.py SAKEYD SACTL SIMD LOGDIR [KILLS]
"""
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "sim"))
import simlib  # noqa: E402
import genmodel  # noqa: E402,I100 (tests/lib: simlib puts it on the path)

SAKEYD, SACTL, SIMD, LOGDIR = sys.argv[1:5]
KILLS = int(sys.argv[5]) if len(sys.argv) > 5 else 100
check = simlib.Checks()
rand = simlib.rng()

links = simlib.make_links(3, 1)
links.append(simlib.Link("w4", "192.0.2.1", "10.9.0.2", 4, 1, 1))
env = simlib.Env(SAKEYD, SACTL, SIMD, LOGDIR, links, "refresh_interval = 2s\n")

verified = mismatched = ledger_bad = not_ready = retries = unrecorded = backwards = 0
model = genmodel.Model(env)
sent_with = {}  # (link name, epoch): outbound generations seen, in order
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
            ok, have, want, used = genmodel.settled(env, model, out_from_records=True)
            retries += used - 1
            # Record before install, and a sender's generation only moves forward.
            model.refresh()
            for link in links:
                for sa_spi, src, dst in env.managed(have):
                    if sa_spi >> 8 != link.prefix or src != link.local:
                        continue
                    e = genmodel.spi_epoch(sa_spi, link.epoch(time.time()))
                    g = genmodel.spi_gen(sa_spi)
                    if model.out_gen(link, e) is None or \
                            genmodel.series_index(model.out_gen(link, e)) < \
                            genmodel.series_index(g):
                        unrecorded += 1
                        first_bad.append(f"run {env.runs}: {link.name} sends with generation "
                                         f"{g} of epoch {e}, recorded "
                                         f"{model.out_gen(link, e)}")
                    seen = sent_with.setdefault((link.name, e), [])
                    if seen and genmodel.series_index(g) < genmodel.series_index(seen[-1]):
                        backwards += 1
                        first_bad.append(f"run {env.runs}: {link.name} epoch {e}: generation "
                                         f"{g} after {seen}")
                    if not seen or seen[-1] != g:
                        seen.append(g)
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
    moved = {k: v for k, v in sent_with.items() if len(v) > 1}
    print(f"     {len(sent_with)} (link, epoch) outbound SAs seen; {len(moved)} moved to a next "
          f"generation after a kill: {list(moved.items())[:4]}")
    for line in first_bad[:5]:
        print("     " + line)
    check(sum(kinds.values()) >= KILLS, f"{KILLS} kill -9 at random instants")
    check(not_ready == 0, "every restart reaches ready")
    check(verified >= KILLS * 0.6 and mismatched == 0,
          "after every restart the SADB equals the desired set: no missing SA, no duplicate, "
          "no orphan")
    check(unrecorded == 0, "every outbound SA in the SADB is recorded in generations.db")
    check(backwards == 0, "a link's outbound generation in an epoch never goes back")
    check(ledger_bad == 0, "after every restart the ledger's live SAs equal the SADB")
    rows, wrong, _ = genmodel.ledger_wrong(env)
    print(f"     {rows} ledger rows checked against the key schedule; wrong: {wrong[:3]}")
    check(rows > 0 and not wrong,
          "every SA the ledger ever recorded has the link, SPI, addresses and key "
          "fingerprint of its epoch and generation")
    rc, bad = env.stop()
    check(rc == 0 and not bad, f"SIGTERM: exit {rc}, no sanitizer report")
    text = open(env.logpath, errors="replace").read()
    check("AddressSanitizer" not in text and "runtime error:" not in text,
          "no sanitizer error in any run")
    check(env.secrets_absent(), "no secret in the log")
finally:
    env.close()
check.finish()
