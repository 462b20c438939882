#!/usr/bin/env python3
# SPDX-License-Identifier: ISC
"""A reload that lands while a reconciliation pass has requests in flight.

Each request of a pass carries a pointer to its link's state and plans made
from the running configuration; a reload replaces both. Applied in the
middle of a pass, it left every reply still on its way pointing into freed
memory (a use-after-free under ASan, reachable by an operator's `sactl
reload` or SIGHUP). A reload that comes during a pass is now checked at
once (its errors reported as ever), then applied when the pass ends.

On simd with every message delayed by DELAY_MS: N links with phase 0, so all
of them change epoch at the same instant, and each pass keeps N requests in
flight for DELAY_MS or more. The daemon starts fresh (key schedule v2: all 16
inbound generations of the first epoch, 16 N SAs deleted in one burst at the
next epoch's start + grace); the steps begin after that burst, so that a
reload lands in an ordinary epoch change's pass, not in the tail of the
burst. Reloads land DELAY_MS / 3 after a change point:
1. `sactl reload`, same file: the reply says the reload is deferred, the log
   then says it was applied;
2. SIGHUP removing 30 links whose requests are in flight: deferred, applied,
   the removed links retired;
3. two reloads in one pass (sactl, then SIGHUP), changing 20 links' grace and
   bringing back 10 removed links: they coalesce, one application, the last
   file's links;
4. refused reloads during a pass: `sactl reload` of a file the daemon
   refuses fails with its answer; a broken file after a deferred reload is
   refused with its file:line error and the deferred one still applies;
5. after the reloads, the SADB settles to the final configuration's desired
   set (key schedule v2 after a fresh start, tests/lib/genmodel.py: checked
   a whole period later, so that every link, the 10 brought back too, sends
   with generation 0 of an epoch in which it lost nothing) and the removed
   links' SAs are gone;
6. SIGTERM while a reload waits for its pass: exit 0, no sanitizer report
   (checked after every step too: the daemon is still running).

usage: reloadrace.py SAKEYD SACTL SIMD LOGDIR
"""
import os
import signal
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "sim"))
import simlib  # noqa: E402
import genmodel  # noqa: E402,I100 (tests/lib: simlib puts it on the path)

SAKEYD, SACTL, SIMD, LOGDIR = sys.argv[1:5]
N, PERIOD, DELAY_MS = 300, 4, 300
check = simlib.Checks()
links = simlib.make_links(N, PERIOD, phase=0)  # every link changes epoch at the same instant
DAEMON_EXTRA = "refresh_interval = 1h\n"  # no periodic dump in the way of a pass
env = simlib.Env(SAKEYD, SACTL, SIMD, LOGDIR, links, DAEMON_EXTRA)


def write_conf(active, broken=False, no_secret=False):
    """The configuration file with these links (their key files stay), phase 0."""
    text = env.conf_text(active)
    if no_secret:  # sactl does not read secrets; the daemon refuses the file
        text += (f"\n[link nosecret]\nlocal = 192.0.2.1\nremote = 198.51.100.9\n"
                 f"secret_file = {env.work}/missing.key\n")
    if broken:
        text += "\n[link broken]\nlocal = 192.0.2.1\nremote = not-an-address\n"
    with open(env.conf, "w") as f:
        f.write(text)


def mark():
    return os.path.getsize(env.logpath)


def alive(what):
    """The daemon still runs once the pass's replies are in; if not, show the
    sanitizer's report and stop here."""
    time.sleep(3 * DELAY_MS / 1000)
    if check(env.daemon.poll() is None, f"sakeyd still running {what}"):
        return
    text = env.log_since()
    at = text.find("ERROR: AddressSanitizer")
    if at < 0:
        at = max(0, len(text) - 3000)
    print(text[at:at + 3000], flush=True)
    env.close()
    sys.exit(check.finish())


def in_pass():
    """Sleep to DELAY_MS / 3 after an epoch change (every link's outbound SA is replaced,
    a pass of 2 N requests): its requests are in flight."""
    target = DELAY_MS / 3000
    while True:
        frac = time.time() % PERIOD
        if target <= frac <= target + 0.05:
            return
        time.sleep(((target - frac) % PERIOD) + 0.005)


def sighup_outcome(offset, timeout=10):
    """'deferred' or 'applied' (or None) for the SIGHUP sent after offset."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        log = env.log_since(offset)
        if "reload deferred until the running pass ends" in log:
            return "deferred"
        if "reloaded:" in log:
            return "applied"
        if env.daemon.poll() is not None:
            return None
        time.sleep(0.01)
    return None


def sighup_in_pass():
    """SIGHUP inside a pass; again (3 tries at most) while it lands between passes and is
    applied at once. Its outcome and the log offset it was sent at."""
    for attempt in range(3):
        in_pass()
        m = mark()
        env.daemon.send_signal(signal.SIGHUP)
        outcome = sighup_outcome(m)
        if outcome != "applied":
            break
    return outcome, m


write_conf(links)
offset = env.start()
check(env.wait_log("ready:", timeout=60, offset=offset), "sakeyd started and reconciled")
# Key schedule v2: a fresh start holds all 16 inbound generations of the first epoch (16 N
# SAs), deleted in one burst at the next epoch's start + grace. Past that burst, each pass
# is an ordinary one (an epoch change: N outbound SAs replaced).
model = genmodel.Model(env)
first = max(model.first(link)[0] for link in links)
while time.time() < (first + 1) * PERIOD + links[0].grace + 0.2:
    time.sleep(0.05)
check(env.wait_log("reconcile pass:", timeout=10, offset=mark()),
      f"past the fresh start's burst (first epoch {first}'s 16 generations deleted)")
check(env.simctl(f"delay {DELAY_MS}") == "ok", f"simd delays every message by {DELAY_MS} ms")

# 1. sactl reload of the same file while a pass runs.
for attempt in range(3):
    in_pass()
    m = mark()
    r = env.sactl("reload")
    if "deferred" in r.stdout:
        break
print(f"     sactl reload: exit {r.returncode}: {r.stdout.strip()} {r.stderr.strip()}")
check(r.returncode == 0 and "deferred" in r.stdout and f"{N} links" in r.stdout,
      "sactl reload during a pass: accepted, the reply says deferred until the pass ends")
check(env.wait_log(f"reloaded: {N} links", timeout=10, offset=m),
      "the deferred reload is applied when the pass ends")
alive("after a reload during a pass")

# 2. SIGHUP removing links whose requests are in flight.
removed = links[N - 30:]
write_conf(links[:N - 30])
outcome, m = sighup_in_pass()
check(outcome == "deferred", f"SIGHUP during a pass: deferred ({outcome})")
check(env.wait_log(f"reloaded: {N - 30} links", timeout=10, offset=m),
      "the reload removing 30 links is applied when the pass ends")
check(env.wait_log(f"link {removed[-1].name} removed", timeout=10, offset=m),
      "the removed links retire after their grace")
alive("after a reload removed links in flight")

# 3. Two reloads in one pass coalesce; the second file wins.
for link in links[:20]:
    link.grace = 2
active = links[:N - 20]
for attempt in range(3):
    write_conf(links[:N - 30])  # the first: 20 links' grace changed
    in_pass()
    m = mark()
    r = env.sactl("reload")
    if "deferred" not in r.stdout:
        continue
    write_conf(active)  # the second: 10 removed links back
    env.daemon.send_signal(signal.SIGHUP)
    break
check(r.returncode == 0 and "deferred" in r.stdout, "first reload of the pass deferred")
check(env.wait_log("replaces the reload still pending", timeout=10, offset=m),
      "the second reload of the pass replaces the first")
check(env.wait_log(f"reloaded: {N - 20} links", timeout=10, offset=m),
      "the second file is applied when the pass ends")
time.sleep(1)
log = env.log_since(m)
check(log.count("reloaded:") == 1, f"two reloads, one application ({log.count('reloaded:')})")
alive("after two reloads in one pass")

# 4. Reloads refused during a pass report their error; a deferred one still applies.
write_conf(active, no_secret=True)
in_pass()
m = mark()
r = env.sactl("reload")
print(f"     sactl reload (missing secret): exit {r.returncode}: {r.stdout.strip()} "
      f"{r.stderr.strip()}")
check(r.returncode == 1 and "reload refused" in r.stderr,
      "a refused reload during a pass: sactl reload fails with the daemon's answer")
check(env.wait_log("missing.key", timeout=5, offset=m), "the log names the file")
for attempt in range(3):
    write_conf(active)
    in_pass()
    m = mark()
    env.daemon.send_signal(signal.SIGHUP)
    outcome = sighup_outcome(m)
    if outcome != "deferred":
        continue
    write_conf(active, broken=True)
    env.daemon.send_signal(signal.SIGHUP)
    break
check(outcome == "deferred", f"a valid reload during a pass: deferred ({outcome})")
check(env.wait_log("not-an-address", timeout=5, offset=m),
      "then a broken file: the log names its error (file:line)")
check(env.wait_log("the reload deferred before still applies", timeout=5, offset=m),
      "the broken file is refused, the deferred reload kept")
check(env.wait_log(f"reloaded: {N - 20} links", timeout=10, offset=m),
      "the deferred reload is applied when the pass ends")
time.sleep(1)
check(env.log_since(m).count("reloaded:") == 1, "one application")
write_conf(active)
alive("after refused reloads during a pass")

# 5. The SADB settles to the final configuration; the removed links' SAs are gone.
check(env.simctl("delay 0") == "ok", "simd delay off")
env.links = active
time.sleep(PERIOD)
ok, have, want, tries = genmodel.settled(env, genmodel.Model(env))
if not ok:
    print(f"     extra {sorted(set(env.managed(have)) - want)[:4]} "
          f"missing {sorted(want - set(env.managed(have)))[:4]}")
check(ok, f"the SADB holds exactly the final links' desired SAs ({len(want)} SAs)")
gone_prefixes = {link.prefix for link in links[N - 20:]}
left = [sa for sa in have if sa[0] >> 8 in gone_prefixes]
check(not left, f"no SA of the 20 removed links remains ({len(left)})")

# 6. SIGTERM while a reload waits for its pass.
check(env.simctl(f"delay {DELAY_MS}") == "ok", f"simd delay {DELAY_MS} ms again")
outcome, m = sighup_in_pass()
check(outcome == "deferred", f"a reload waits for its pass ({outcome})")
rc, bad = env.stop()
check(rc == 0 and not bad, f"SIGTERM with a reload pending: exit {rc}, no sanitizer report")
check("a deferred reload was not applied" in env.log_since(m),
      "the log says the pending reload was not applied")
check(env.secrets_absent(), "no secret in the log")
env.close()
check.finish()
