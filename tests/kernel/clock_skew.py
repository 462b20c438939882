#!/usr/bin/env python3
# SPDX-License-Identifier: ISC
"""Clock skew between two peers, real kernel (runs as root inside User-Mode Linux).

Two sakeyd hosts in two network namespaces (netpair.py), one link, ESP
transport, rotate_every 5 s, lead = grace = 2 s, UDP sequence streams
both ways. Host b keeps the true time; host a's sakeyd runs under
libfaketime (Debian package faketime) with its wall clock shifted:
1. by +lead/2 (+1 s) for >= 10 rotations: zero datagrams lost or refused,
   no XFRM error counter moved, no alert;
2. by -grace/2 (-1 s) for >= 10 rotations: the same;
3. by +3 s, beyond min(lead, grace): a sends with the next SPI before b
   installed it and drops its previous inbound SA while b still sends with
   it, so both kernels count XfrmInNoStates; asserted: datagrams are lost,
   the counter rises in both namespaces, in both daemons' metrics files
   (sakeyd_xfrm_errors_total), as an xfrm-errors alert in both logs, and
   `sactl check` says WARNING with the alert on both hosts.
That the shift really applies is measured, not assumed: `ip xfrm monitor`
in each namespace timestamps every SA the daemons add, and in every epoch
a's new outbound SA must come the shift earlier than b's (within 0.5 s);
a libfaketime that did nothing fails this.

usage: clock_skew.py SAKEYD OUTDIR SACTL
"""
import datetime
import os
import re
import signal
import subprocess
import sys
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from checks import Checks  # noqa: E402
from netpair import A, B, FAKETIME_LIB, Pair, Traffic, lost  # noqa: E402

SAKEYD, OUT, SACTL = sys.argv[1], sys.argv[2], sys.argv[3]
PERIOD, LEAD, GRACE = 5, 2, 2
ROTATIONS = int(os.environ.get("SKEW_ROTATIONS", "10"))
WORK = "/run/clock-skew"
check = Checks()


check(os.path.exists(FAKETIME_LIB), f"libfaketime is installed ({FAKETIME_LIB})")

pair = Pair(SAKEYD, OUT, WORK, PERIOD, LEAD, GRACE, daemon_extra="refresh_interval = 1s\n")

# Every SA added in either namespace, stamped with the real time it was seen.
added = []  # (time, ns, src, spi)


def monitor(ns):
    p = subprocess.Popen(["ip", "-n", ns, "xfrm", "monitor"], stdout=subprocess.PIPE, text=True,
                         bufsize=1)
    monitors.append(p)
    pending = None
    for line in p.stdout:
        t = time.time()
        m = re.match(r"^(Deleted |Updated |Expired )?src (\S+) dst (\S+)", line)
        if m:
            pending = None if m.group(1) else (t, m.group(2))
            continue
        m = re.search(r"proto esp spi (0x[0-9a-f]+)", line)
        if m and pending:
            added.append((pending[0], ns, pending[1], int(m.group(1), 16)))
            pending = None


monitors = []
for ns in ("a", "b"):
    threading.Thread(target=monitor, args=(ns,), daemon=True).start()
time.sleep(0.5)

pair.launch("b")
pair.launch("a", faketime=f"+{LEAD / 2:g}", tag="-plus")
for ns in ("a", "b"):
    check(pair.wait_ready(ns) is not None, f"sakeyd {ns} started and reconciled")
traffic = Traffic(WORK)


def switch_offsets(t0, t1):
    """Per epoch whose outbound SAs both appeared in [t0, t1): b's time minus a's."""
    first = {}
    for t, ns, src, spi in added:
        if t0 <= t < t1 and src == {"a": A, "b": B}[ns]:
            first.setdefault((ns, spi), t)
    return [first[("b", spi)] - first[("a", spi)] for (ns, spi) in first
            if ns == "a" and ("b", spi) in first]


def counters():
    return {ns: pair.xfrm_stat(ns) for ns in "ab"}


def moved(before, after):
    return {ns: {k: v - before[ns].get(k, 0) for k, v in after[ns].items()
                 if v != before[ns].get(k, 0)} for ns in "ab"}


def after_grace():
    """Sleep until 0.3 s past the next T+grace: the longest stretch with no change point."""
    e = pair.epoch_at(time.time())
    while pair.start(e) + GRACE + 0.3 <= time.time() + 0.2:
        e += 1
    time.sleep(pair.start(e) + GRACE + 0.3 - time.time())


def phase(name, shift, rotations):
    """Run rotations epochs with a's clock shifted by shift; return (t0, t1, counters moved)."""
    before = counters()
    t0 = time.time()
    time.sleep(rotations * PERIOD)
    after_grace()
    t1 = time.time()
    offs = switch_offsets(t0, t1)
    shown = ", ".join(f"{x:+.2f}" for x in offs)
    print(f"     {name}: a's outbound switch came before b's by [{shown}] s", flush=True)
    check(len(offs) >= rotations - 1 and all(abs(x - shift) < 0.5 for x in offs),
          f"{name}: a's clock is really {shift:+g} s off: its every switch that much earlier "
          f"than b's ({len(offs)} epochs)")
    return t0, t1, moved(before, counters()), before


def restart_a(shift, tag):
    pair.procs["a"].send_signal(signal.SIGTERM)
    check(pair.procs["a"].wait(timeout=20) == 0, f"sakeyd a stopped cleanly (before {tag})")
    pair.launch("a", faketime=f"{shift:+g}", tag=tag)
    check(pair.wait_ready("a") is not None, f"sakeyd a restarted with its clock {shift:+g} s off")


def alerts(ns, start=0):
    return [line for line in pair.log_text(ns)[start:].splitlines() if "ALERT" in line]


def logged_at(line):
    """The Unix time a log line was written (its UTC timestamp, to the millisecond)."""
    stamp = datetime.datetime.strptime(line.split(" ", 1)[0], "%Y-%m-%dT%H:%M:%S.%fZ")
    return stamp.replace(tzinfo=datetime.timezone.utc).timestamp()


def alerts_within(ns, t0, t1, before, shift=0.0):
    """The alerts ns logged in [t0, t1], less an xfrm-errors alert that only reports
    rises from before t0 (every counter it names is no higher now than before[ns],
    the reading at t0): a downtime before the phase (a restart's first REGISTER
    can take seconds) is no part of the phase's judgement, as for the counters.
    shift is how far ns's clock (so its log's timestamps) is off."""
    out = []
    for line in alerts(ns):
        if not t0 <= logged_at(line) - shift <= t1:
            continue
        now = re.findall(r"(\w+) \+\d+ \(now (\d+)\)", line)
        if "ALERT xfrm-errors" in line and now and \
                all(int(v) <= before[ns].get(k, 0) for k, v in now):
            continue
        out.append(line)
    return out


# --- 1 and 2: within the tolerance ---------------------------------------------
after_grace()
windows = []
t0, t1, mv, before = phase("+lead/2", LEAD / 2, ROTATIONS)
windows.append(("+lead/2", t0, t1))
check(not mv["a"] and not mv["b"], f"+lead/2: no xfrm error counter moved {mv}")
late = alerts_within("a", t0, t1, before, LEAD / 2) + alerts_within("b", t0, t1, before)
check(not late, f"+lead/2: no alert {late[:2]}")
restart_a(-GRACE / 2, "-minus")
after_grace()
t0, t1, mv, before = phase("-grace/2", -GRACE / 2, ROTATIONS)
windows.append(("-grace/2", t0, t1))
check(not mv["a"] and not mv["b"], f"-grace/2: no xfrm error counter moved {mv}")
late = alerts_within("a", t0, t1, before, -GRACE / 2) + alerts_within("b", t0, t1, before)
check(not late, f"-grace/2: no alert {late[:2]}")

# --- 3: beyond the tolerance ---------------------------------------------------------
BEYOND = min(LEAD, GRACE) + 1
mark_b = len(pair.log_text("b"))
restart_a(BEYOND, "-beyond")
after_grace()
t0, t1, mv, _ = phase(f"+{BEYOND}", BEYOND, 3)
windows.append((f"+{BEYOND}", t0, t1))
time.sleep(2.5)  # two more refresh_intervals: the last rises are seen and alerted
for ns in "ab":
    rise = mv[ns].get("XfrmInNoStates", 0)
    print(f"     +{BEYOND}: {ns}: xfrm counters moved {mv[ns]}")
    check(rise > 0, f"+{BEYOND}: {ns}'s kernel counts XfrmInNoStates (+{rise})")
    with open(f"{WORK}/{ns}.prom") as f:
        m = re.search(r'^sakeyd_xfrm_errors_total\{error="XfrmInNoStates"\} (\d+)$', f.read(),
                      re.M)
    check(m and int(m.group(1)) >= rise,
          f"+{BEYOND}: {ns}'s metrics file shows it: {m.group(0) if m else 'missing'}")
    found = [a for a in alerts(ns, 0 if ns == "a" else mark_b) if "ALERT xfrm-errors" in a]
    check(found and "XfrmInNoStates +" in found[0],
          f"+{BEYOND}: {ns} raised xfrm-errors: {found[0].split(': ', 1)[-1] if found else ''}")
    rc, out = pair.sactl(SACTL, ns, "check")
    check(rc == 1 and "kernel IPsec error alert" in out,
          f"+{BEYOND}: sactl check on {ns} says WARNING: {out.strip()[:160]}")

results = traffic.stop()
for name, t0, t1 in windows:
    for direction, (sent, got) in results.items():
        inside = [x for x in sent if t0 <= x[0] < t1]
        gone = [x for x in lost(sent, got) if t0 <= x[1] < t1]
        print(f"     {name}: {direction}: sent {len(inside)} in {(t1 - t0) / PERIOD:.1f} epochs, "
              f"lost or refused {len(gone)}")
        check(len(inside) > (t1 - t0) * 50, f"{name}: {direction}: the stream ran")
        if name.startswith("+" + str(BEYOND)):
            continue
        check(not gone, f"{name}: {direction}: zero loss ({len(gone)} lost)")
beyond = sum(1 for d, (sent, got) in results.items() for x in lost(sent, got)
             if windows[2][1] <= x[1] < windows[2][2])
check(beyond > 0, f"+{BEYOND}: datagrams were lost ({beyond}): beyond min(lead, grace) the "
      "schedule cannot hold")

for ns in "ab":
    pair.procs[ns].send_signal(signal.SIGTERM)
    check(pair.procs[ns].wait(timeout=20) == 0, f"sakeyd {ns} stopped cleanly on SIGTERM")
for p in monitors:
    p.terminate()
check.finish()
