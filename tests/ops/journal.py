#!/usr/bin/env python3
# SPDX-License-Identifier: ISC
"""journald's view of sakeyd's log: every line's <N> priority, alerts' fields, -q.

sakeyd on the simulated SADB with its stderr in a file and JOURNAL_STREAM
set to that file's st_dev:st_ino, as systemd sets it for a journal stream.
The simulator refuses the first ADD (an error, and a rotation-failed
alert); another client keys an SA by hand with 1 s / 2 s lifetimes
(expire-soft, expire-hard); a reload of a broken file is refused (errors).
Each line is read as journald reads a stream
with level prefixes (journald-stream.c, syslog_parse_priority): every line
must carry one, errors <3>, warnings and alerts <4>, info <6>, and no
timestamp of ours. Every ALERT line must split into the documented
key=value fields (sakeyd(8) LOG AND ALERTS). With -q no info line is
written, alerts are. With JOURNAL_STREAM naming another file (stdout's
stream, a parent's), or unset, lines are today's: our timestamp, no prefix.
A refused configuration's FILE:LINE lines are errors (<3>) too.

usage: journal.py SAKEYD
"""
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from checks import Checks  # noqa: E402
from pfkey import hand_add_request  # noqa: E402
from proc import connect_unix, wait_for  # noqa: E402
from simconf import write_one_link  # noqa: E402

SAKEYD = sys.argv[1]
WORK = tempfile.mkdtemp(prefix="sakeyd-journal-")
check = Checks()

TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d")
# The documented alert line; no value before msg= holds a space.
ALERT = re.compile(r"ALERT (?P<event>[a-z-]+) link=(?P<link>\S+) spi=(?P<spi>0x[0-9a-f]+|-) "
                   r"src=(?P<src>\S+) dst=(?P<dst>\S+) proto=(?P<proto>\S+) "
                   r"age=(?P<age>[0-9]+|-) event=(?P<event2>\S+) msg=(?P<msg>.*)$")


def journal_priority(line):
    """(priority, text) as journald reads a line of a stream with level_prefix:
    "<N>" of one to three digits, 0..7 (no facility); None if it has none."""
    m = re.match(r"<([0-9]{1,3})>", line)
    if not m or int(m.group(1)) > 7:
        return None, line
    return int(m.group(1)), line[m.end():]


def dev_ino(path):
    st = os.stat(path)
    return f"{st.st_dev}:{st.st_ino}"


CONF = write_one_link(WORK, daemon_extra=f"sim_socket = {WORK}/sim.sock\nrefresh_interval = 1s\n")
with open(f"{WORK}/l.key") as f:
    secret = bytes.fromhex(f.read().strip())
with open(CONF) as f:
    BOGUS_LINE = len(f.read().splitlines()) + 1  # where a broken reload adds its line


def run(name, journal, args=()):
    """Run the scenario; journal: "match" (JOURNAL_STREAM names the log file),
    "other" (it names another file), None (unset). Returns the log's lines."""
    shutil.rmtree(f"{WORK}/state", ignore_errors=True)
    log_path = f"{WORK}/{name}.log"
    log = open(log_path, "w")
    other = open(f"{WORK}/{name}.other", "w")
    env = {k: v for k, v in os.environ.items() if k != "JOURNAL_STREAM"}
    if journal == "match":
        env["JOURNAL_STREAM"] = dev_ino(log_path)
    elif journal == "other":
        env["JOURNAL_STREAM"] = dev_ino(f"{WORK}/{name}.other")
    env["SAKEYD_SIM_FAIL"] = "3:105:1"

    def text():
        with open(log_path) as f:
            return f.read()

    daemon = subprocess.Popen([SAKEYD, "-c", CONF, *args], stdout=other, stderr=log, env=env)
    try:
        try:
            obs = connect_unix(f"{WORK}/sim.sock", 10)
        except OSError as e:
            check(False, f"{name}: sakeyd {' '.join(args)} runs ({e}; exit {daemon.poll()}): "
                  f"{text()[-300:]}")
            return text().splitlines()
        # The first pass meets the refused ADD (a warning even with -q), then our ADD goes.
        check(wait_for(lambda: "ALERT rotation-failed" in text(), 10),
              f"{name}: the refused ADD raised rotation-failed")
        # SPI 0x1234, 1 s soft and 2 s hard lifetimes, as another tool's.
        obs.send(hand_add_request(1, 999, 0x1234, 1, 2))
        check(wait_for(lambda: "ALERT expire-hard" in text(), 10),
              f"{name}: the hand-keyed SA's expiries were alerted")
        obs.close()
        # A reload of a broken file: refused (errors), survived.
        with open(CONF) as f:
            good = f.read()
        with open(CONF, "a") as f:
            f.write("bogus = 1\n")
        daemon.send_signal(signal.SIGHUP)
        check(wait_for(lambda: "reload refused" in text(), 10),
              f"{name}: a broken reload was refused")
        with open(CONF, "w") as f:
            f.write(good)
    finally:
        daemon.send_signal(signal.SIGTERM)
        rc = daemon.wait(timeout=10)
    log.close()
    other.close()
    check(rc == 0, f"{name}: SIGTERM, exit 0 ({rc})")
    shutil.copy(log_path, f"{WORK}/{name}.kept")
    lines = text().splitlines()
    check(os.path.getsize(f"{WORK}/{name}.other") == 0, f"{name}: nothing on stdout")
    return lines


def check_alerts(name, texts):
    """Every ALERT text parses into the documented fields, the same event twice."""
    alerts = [t[t.index("ALERT "):] for t in texts if "ALERT " in t]
    bad = [a for a in alerts if not ALERT.match(a) or
           ALERT.match(a).group("event") != ALERT.match(a).group("event2")]
    check(alerts and not bad, f"{name}: {len(alerts)} ALERT lines, each of the documented "
          f"key=value fields {bad[:2]}")
    hard = [m for m in (ALERT.match(a) for a in alerts if a.startswith("ALERT expire-hard "))
            if m]
    check(hard and hard[0].group("spi") == "0x1234" and hard[0].group("src") == "203.0.113.5"
          and hard[0].group("dst") == "203.0.113.9" and hard[0].group("proto") == "esp"
          and hard[0].group("link") == "-" and hard[0].group("age") != "-",
          f"{name}: expire-hard names the SA: spi, src, dst, proto, age, link=- "
          f"{hard[0].groupdict() if hard else None}")
    failed = [m for m in (ALERT.match(a) for a in alerts
                          if a.startswith("ALERT rotation-failed ")) if m]
    check(failed and failed[0].group("link") == "l1" and failed[0].group("msg") != "-",
          f"{name}: rotation-failed names its link and says why")
    check(secret.hex() not in "\n".join(texts), f"{name}: no key in the log")
    return alerts


# 1. stderr is the journal: every line has its priority, no timestamp of ours.
lines = run("journal", "match")
parsed = [journal_priority(line) for line in lines]
unprefixed = [line for line, (p, _) in zip(lines, parsed) if p is None]
check(lines and not unprefixed,
      f"journal: each of {len(lines)} lines has a <N> prefix {unprefixed[:2]}")
stamped = [t for _, t in parsed if TIMESTAMP.match(t)]
check(not stamped, f"journal: no line carries our timestamp {stamped[:2]}")
want = {"error": 3, "warning": 4, "info": 6, "debug": 7}
LEVEL = re.compile(r"sakeyd\[(\w+)\] \w+: ")
wrong = [(p, t) for p, t in parsed if p is not None and
         (not LEVEL.match(t) or want.get(LEVEL.match(t).group(1)) != p)]
check(not wrong, f"journal: each line is 'sakeyd[LEVEL] FUNC: ...' at LEVEL's priority "
      f"{wrong[:2]}")
errors = [t for p, t in parsed if p == 3]
check(any("reload refused" in t for t in errors) and
      any(f"{CONF}:{BOGUS_LINE}: " in t for t in errors),
      f"journal: the refused reload and its FILE:LINE are errors, <3> {errors[:2]}")
alert_prios = {p for p, t in parsed if "ALERT " in t}
check(alert_prios == {4}, f"journal: alerts are warnings, <4> ({alert_prios})")
check(any(p == 6 and "ready:" in t for p, t in parsed), "journal: the ready line is info, <6>")
check_alerts("journal", [t for _, t in parsed])

# 2. -q: warnings and errors only, alerts kept.
lines = run("quiet", "match", ["-q"])
prios = sorted({journal_priority(line)[0] for line in lines})
check(prios == [3, 4], f"-q: <3> and <4> lines only ({prios})")
check(not any("ready:" in line for line in lines), "-q: no info line (ready:)")
check_alerts("quiet", [journal_priority(line)[1] for line in lines])

# 3. JOURNAL_STREAM of another file, then unset: today's lines, no prefix.
for name, how in (("other", "other"), ("plain", None)):
    lines = run(name, how)
    prefixed = [line for line in lines if journal_priority(line)[0] is not None]
    check(lines and not prefixed, f"{name}: no <N> prefix {prefixed[:2]}")
    plain = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z "
                       r"sakeyd\[(error|warning|info|debug)\] \w+: ")
    odd = [line for line in lines if not plain.match(line)]
    check(not odd, f"{name}: every line is 'TIME sakeyd[LEVEL] FUNC: ...' {odd[:2]}")
    check(any("sakeyd[info] pass_finish: ready:" in line for line in lines),
          f"{name}: the ready line")
    check_alerts(name, lines)

# 4. A refused configuration: its FILE:LINE lines are errors to journald.
BAD = f"{WORK}/bad.conf"
with open(BAD, "w") as f:
    f.write(f"[daemon]\nkernel = sim\nstate_dir = {WORK}/state\nbogus = 1\n")
with open(f"{WORK}/bad.log", "w") as log:
    env = dict(os.environ, JOURNAL_STREAM=dev_ino(f"{WORK}/bad.log"))
    rc = subprocess.run([SAKEYD, "-c", BAD], stderr=log, stdout=subprocess.DEVNULL,
                        env=env).returncode
with open(f"{WORK}/bad.log") as f:
    lines = f.read().splitlines()
check(rc == 1 and lines and all(journal_priority(line)[0] is not None for line in lines) and
      any(line.startswith(f"<3>{BAD}:4: ") for line in lines) and
      lines[-1] == f"<3>sakeyd: {BAD}: configuration refused",
      f"refused config: every line prefixed, FILE:LINE and the refusal <3> (exit {rc}: {lines[:3]})")

# 5. -q and -v together: a usage error.
out = subprocess.run([SAKEYD, "-q", "-v", "-c", CONF], capture_output=True, text=True)
check(out.returncode == 2 and "-q" in out.stderr and "-v" in out.stderr and
      "usage:" in out.stderr, f"-q -v: usage error, exit 2 ({out.returncode})")

if check.failures:
    for name in ("journal", "quiet", "other", "plain"):
        if os.path.exists(f"{WORK}/{name}.kept"):
            print(f"--- {name}.log\n" + open(f"{WORK}/{name}.kept").read()[-3000:])
shutil.rmtree(WORK, ignore_errors=True)
check.finish()
