#!/usr/bin/env python3
# SPDX-License-Identifier: ISC
"""A reason to reconcile that comes while a pass is running is not lost.

The daemon reconciles when something asks (a change point, a managed SA
removed by another tool, a resync, an ACQUIRE). A request that came while a
pass was still waiting for the kernel was dropped: the running pass had been
planned before it, and nothing planned again after it, so the link stayed
broken until its next change point (here 10 s later).

Key schedule v2 (DESIGN.md): the deleted outbound SA (generation g of its
epoch) is never installed again; what comes back is the next generation of
g's series (g + 1 in 0..7, g - 1 in 15..8: 15 in the first epoch of a fresh
start, 0 later), recorded before its install, with a generation-changed
alert. The daemon starts just after a change point: round 1 removes
generation 15 of the first epoch (14 comes back), round 2 generation 0 of
the next (1 comes back). The desired set is tests/lib/genmodel.py's (fresh
start, no traffic) with that generation as link 1's outbound SA of the epoch.

On simd with every message delayed by DELAY_MS: N links with phase 0 change
epoch at the same instant, so each change point's pass keeps its requests in
flight for two delays or more. Right after the T-lead change point (the pass
adds the next inbound SAs), another PF_KEY client deletes link 1's current
outbound SA, which that pass does not touch; its DELETE reaches the daemon
while the pass is running. Asserted, each round (ROUNDS change points):
- the daemon logged the removal of a managed SA while in use (its alert);
- the link's outbound SA is back (its next generation) before the next
  change point: the removal's reconciliation ran once the pass ended (the
  log says when each pass ended); the deleted generation is not re-installed, and the
  generation-changed alert names the new SPI;
- finally the SADB equals the desired set;
- SIGTERM while the next change point's pass waits for its replies exits 0,
  no sanitizer report, and raises no rotation-failed alert for the requests
  it cancelled (it logs how many were in flight).

usage: kickrace.py SAKEYD SACTL SIMD LOGDIR
"""
import os
import re
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "sim"))
import conform  # noqa: E402
import simlib  # noqa: E402
import genmodel  # noqa: E402,I100 (tests/lib: simlib puts it on the path)

SAKEYD, SACTL, SIMD, LOGDIR = sys.argv[1:5]
N, PERIOD, LEAD, DELAY_MS, ROUNDS = 600, 30, 10, 300, 2
check = simlib.Checks()
links = simlib.make_links(N, PERIOD, LEAD, LEAD, phase=0)
extra = "refresh_interval = 1h\n"  # no periodic dump: only the removal asks for a pass
env = simlib.Env(SAKEYD, SACTL, SIMD, LOGDIR, links, extra)

# Start just after a change point, so that round 1 falls in the first epoch (generation 15,
# the fresh series) and round 2 in the next one (generation 0, the normal series).
while not 0.2 <= time.time() % PERIOD <= 2:
    time.sleep(0.05)
offset = env.start()
check(env.wait_log("ready:", timeout=60, offset=offset), "sakeyd started and reconciled")
# The fresh start's T+grace pass (about 9,000 deletes) first, at full speed: slowed by the
# delay it took 12-25 s under load (ASan, load 10+), covered round 1's whole window and
# left the removal's pass to run after the change point (seen: "not back"). The delay is
# for the rounds' races, not for it.
grace_done = env.wait_log("pass: 0 added, ", timeout=PERIOD + 30, offset=offset)
check(grace_done, "the fresh start's T+grace pass is over (its log line)")
check(env.simctl(f"delay {DELAY_MS}") == "ok", f"simd delays every message by {DELAY_MS} ms")
victim = links[0]
model = genmodel.Model(env)
out_gens = {}  # (link name, epoch): the generation expected after the delete
seq = 0
for rnd in range(ROUNDS):
    # The next T-lead (change points every LEAD s: T-lead, T, T+grace).
    now = time.time()
    e = victim.epoch(now)
    t_lead = (e + 1) * PERIOD - LEAD
    if t_lead < now + 1:
        t_lead += PERIOD
    next_point = t_lead + LEAD
    while time.time() < t_lead + 0.05:
        time.sleep(0.005)
    e = victim.epoch(time.time())
    model.refresh()
    first, fresh = model.first(victim)
    g = genmodel.fresh_out_gen(e, first, fresh)
    check(model.out_gen(victim, e) == g,
          f"round {rnd + 1}: epoch {e} (first {first}): link 1 sends with generation {g}")
    out_spi = simlib.spi(victim.prefix, e, g)
    g_new = genmodel.next_gen(g)
    new_spi = simlib.spi(victim.prefix, e, g_new)
    out_gens[(victim.name, e)] = g_new
    seq += 1
    env.obs.send(conform.sa_msg("DELETE", conform.SATYPE_ESP, seq, 4343, out_spi,
                                victim.local, victim.remote, keys=False))
    t_del = time.time()
    back = None
    while time.time() < next_point - 0.5:
        sas = env.dump()
        if (new_spi, victim.local, victim.remote) in sas:
            back = time.time()
            break
        time.sleep(0.1)
    sas = env.dump()
    log = env.log_since(offset)
    check("while still in use; re-installing" in log,
          f"round {rnd + 1}: the daemon saw its managed SA removed")
    # Before the next change point (the loop above looks until 0.5 s before it). Not "within
    # half of it": under load (ASan, load 10+) round 1's delete falls inside the fresh
    # start's T+grace pass of ~9,000 deletes at 300 ms a message, which took 11.9-22.8 s,
    # and a removal's pass waits for the running one (the log below says how long).
    busy = re.findall(r"(\d\d:\d\d:\d\d\.\d+)Z sakeyd\[info\] pass_finish: reconcile pass: .* in "
                      r"([0-9.]+) s", log)
    check(back is not None,
          f"round {rnd + 1}: the outbound SA is back (generation {g_new}, spi {new_spi:#x}) "
          f"before the next change point "
          f"({'after %.1f s' % (back - t_del) if back else 'not back'}; next change point "
          f"{next_point - t_del:.1f} s after the delete; passes since: "
          f"{[f'{t} ({d} s)' for t, d in busy[:3]]})")
    check((out_spi, victim.local, victim.remote) not in sas,
          f"round {rnd + 1}: the deleted generation {g} (spi {out_spi:#x}) is not re-installed")
    # The alert follows the add's reply, which may come after the SA shows in the dump.
    want = f"ALERT generation-changed link={victim.name} spi={new_spi:#x}"
    deadline = time.time() + 30  # a liveness bound
    while want not in log and time.time() < deadline:
        time.sleep(0.1)
        log = env.log_since(offset)
    check(want in log,
          f"round {rnd + 1}: generation-changed alert for spi {new_spi:#x}")

check(env.simctl("delay 0") == "ok", "simd delay off")
ok, have, want, _ = genmodel.settled(env, model, tries=10, out_gens=out_gens)
if not ok:
    print(f"     extra {sorted(set(env.managed(have)) - want)[:6]} "
          f"missing {sorted(want - set(env.managed(have)))[:6]}")
check(ok, "the SADB equals the desired set (v2, link 1's outbound of its last generation)")

# --- SIGTERM while a pass waits for the kernel ----------------------------------------
# The stop closes the channel under the pass's requests: their outcome is unknown, not
# refused. They were reported as failed rotations ("Operation canceled" alerts).
check(env.simctl(f"delay {DELAY_MS}") == "ok", f"simd delays every message by {DELAY_MS} ms")
now = time.time()
e = victim.epoch(now)
point = min(p for p in (e * PERIOD + LEAD, (e + 1) * PERIOD - LEAD, (e + 1) * PERIOD)
            if p > now + 1)
sent_before = env.sim_stats()["requests"]
while time.time() < point:
    time.sleep(0.01)
deadline = time.time() + 20
while env.sim_stats()["requests"] == sent_before and time.time() < deadline:
    time.sleep(0.01)
check(env.sim_stats()["requests"] > sent_before, "the change point's pass sent its requests")
stop_mark = len(env.log_since(offset))
rc, bad = env.stop()
check(rc == 0 and not bad, f"SIGTERM during the pass: exit {rc}, no sanitizer report")
tail = env.log_since(offset)[stop_mark:]
check("requests to the kernel were still in flight" in tail,
      "the stop found the pass's requests in flight")
check("ALERT rotation-failed" not in tail and "canceled" not in tail,
      "no rotation-failed alert for the requests the stop cancelled")
env.close()
sys.exit(check.finish())
