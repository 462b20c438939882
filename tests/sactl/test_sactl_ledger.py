#!/usr/bin/env python3
# SPDX-License-Identifier: ISC
"""sactl status / check / history / events against databases built by mkdb.

Every run uses SACTL_NOW (a fixed clock) and TZ=UTC, so the text output is
compared with golden files (tests/sactl/golden/*.txt; the daemon's
pid is written PID). UPDATE_GOLDEN=1 rewrites them.

usage: test_sactl_ledger.py SACTL MKDB GOLDEN_DIR OUTDIR
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from checks import Checks  # noqa: E402

SACTL, MKDB, GOLDEN, OUT = sys.argv[1:5]
NOW = 1700000000
check = Checks()


shutil.rmtree(OUT, ignore_errors=True)
os.makedirs(OUT)

# A stand-in for a running daemon: /proc/PID/comm says "sakeyd".
fake = os.path.join(OUT, "sakeyd")
os.symlink(shutil.which("sleep"), fake)
daemon = subprocess.Popen([fake, "300"])
# A pid that is surely not running: a child that has exited and been reaped.
dead = subprocess.Popen(["true"])
dead.wait()


def make(name, pid, *scenario):
    """A state dir and config for one scenario; returns the config path."""
    d = os.path.join(OUT, name)
    os.makedirs(d)
    conf = os.path.join(d, "sakeyd.conf")
    with open(conf, "w") as f:
        f.write(f"""[daemon]
kernel = sim
state_dir = {d}/state
control_socket = {d}/control.sock

[link l1]
local = 192.0.2.1
remote = 198.51.100.7
secret_file = {d}/l1.key
spi_prefix = 0x2a
rotate_every = 1h

[link l2]
local = 2001:db8::1
remote = 2001:db8::2
secret_file = {d}/l2.key
spi_prefix = 0x2b
rotate_every = 1d
""")
    if pid is not None:
        subprocess.run([MKDB, f"{d}/state", str(NOW), str(pid), *scenario], check=True)
    return conf


def sactl(conf, *args, now=NOW):
    env = dict(os.environ, SACTL_NOW=str(now), TZ="UTC")
    r = subprocess.run([SACTL, "-c", conf, *args], capture_output=True, text=True, env=env)
    return r.returncode, r.stdout.replace(f"pid {daemon.pid}", "pid PID"), r.stderr


def golden(name, text):
    path = os.path.join(GOLDEN, name + ".txt")
    with open(os.path.join(OUT, name + ".txt"), "w") as f:
        f.write(text)
    if os.environ.get("UPDATE_GOLDEN"):
        with open(path, "w") as f:
            f.write(text)
    try:
        with open(path) as f:
            want = f.read()
    except FileNotFoundError:
        want = None
    check(text == want, f"{name}: output matches golden/{name}.txt")
    if text != want:
        print(f"     got:\n{text}")


base = make("base", daemon.pid)

# status: the table, then JSON.
rc, out, err = sactl(base, "status")
check(rc == 0, "status: exit 0")
golden("status", out)
rc, out, err = sactl(base, "status", "--all")
check(rc == 0, "status --all: exit 0")
golden("status-all", out)
check("gone 1h ago" in out, "status --all: the gone SA is shown gone")
rc, out, err = sactl(base, "status", "--link", "l2")
golden("status-link", out)

rc, out, err = sactl(base, "status", "--json")
check(rc == 0 and err == "", "status --json: exit 0, nothing on stderr while the daemon runs")
doc = json.loads(out)
check(list(doc.keys()) == ["schema", "daemon_running", "read_at", "data_age_s", "links", "sas"]
      and doc["schema"] == 2 and doc["daemon_running"] is True and doc["read_at"] == NOW
      and doc["data_age_s"] == 4,
      f"status --json: schema 2, daemon running, read at NOW, data 4 s old: {list(doc.keys())}")
# l1: the schedule the daemon recorded (phase 960): epoch and next rotation; l2: auto phase, none.
e1 = (NOW - 960) // 3600
check(doc["links"] == [{"link": "l1", "epoch": e1, "next_rotation_at": (e1 + 1) * 3600 + 960,
                        "generation": 1},
                       {"link": "l2", "epoch": None, "next_rotation_at": None, "generation": 15}],
      f"status --json: each link's epoch, next rotation and outbound generation: {doc['links']}")
sas = doc["sas"]
fields = ["link", "dir", "spi", "generation", "src", "dst", "proto", "mode", "algorithm", "epoch", "managed",
          "state", "added_at", "age_s", "soft_expires_at", "hard_expires_at", "bytes", "packets",
          "key_fp"]
check(isinstance(sas, list) and len(sas) == 5, "status --json: an array of the 5 live SAs")
check(all(list(s.keys()) == fields for s in sas), "status --json: exactly DESIGN.md's fields")
by_spi = {(s["spi"], s["dir"]): s for s in sas}
s = by_spi[(0x2a07, "in")]
check(s == {"link": "l1", "dir": "in", "spi": 0x2a07, "generation": 0, "src": "198.51.100.7",
            "dst": "192.0.2.1", "proto": "esp", "mode": "transport",
            "algorithm": "aes-cbc-256-hmac-sha512", "epoch": 7, "managed": True,
            "state": "mature", "added_at": NOW - 3660, "age_s": 3660,
            "soft_expires_at": NOW + 100, "hard_expires_at": NOW + 3700,
            "bytes": 123456789, "packets": 98765, "key_fp": "735063a3ff9b6832"},
      "status --json: a managed SA, every field")
check(by_spi[(0x2a17, "out")]["generation"] == 1 and by_spi[(0x2bf3, "out")]["generation"] == 15,
      "status --json: a managed SA's generation is the one its SPI carries")
h = by_spi[(0x1234, None)]
check(h["link"] is None and h["epoch"] is None and h["managed"] is False and
      h["generation"] is None and
      h["key_fp"] is None and h["algorithm"] is None and h["age_s"] == 125,
      "status --json: the hand-keyed SA: link, epoch, generation, key_fp null; unmanaged")
rc, out, err = sactl(base, "status", "--json", "--all")
sas_all = json.loads(out)["sas"]
g = [s for s in sas_all if s["state"] == "gone"]
check(len(sas_all) == 6 and len(g) == 1 and g[0]["age_s"] == 3700,
      "status --json --all: the gone SA, its whole life as age_s")
rc, out, err = sactl(base, "status", "--json", "--link", "nosuch")
check(rc == 1 and out == "" and "--link nosuch: no such link in" in err and "l1 l2" in err,
      f"status --link of an unknown link: exit 1, named, the links listed: {err.strip()}")
for cmd in ("history", "events"):
    rc, out, err = sactl(base, cmd, "--link", "nosuch")
    check(rc == 1 and "--link nosuch: no such link" in err, f"{cmd} --link of an unknown link: exit 1")
rc, out, err = sactl(base, "status", "--json", "--link", "l2")
doc = json.loads(out)
check(rc == 0 and [x["link"] for x in doc["links"]] == ["l2"]
      and {s["link"] for s in doc["sas"]} == {"l2"}, "status --json --link l2: only l2")

# history and events.
rc, out, err = sactl(base, "history")
check(rc == 0, "history: exit 0")
golden("history", out)
rc, out, err = sactl(base, "history", "--link", "l2", "--json")
doc = json.loads(out)
check(doc["schema"] == 2 and doc["daemon_running"] is True and doc["data_age_s"] == 4,
      "history --json: schema, daemon_running, data_age_s")
rot = doc["rotations"]
check(rc == 0 and [r["result"] for r in rot] == ["failed", "ok"] and
      rot[0]["detail"] == 'File exists "quoted"' and rot[0]["old_spi"] is None and
      rot[0]["old_generation"] is None and rot[0]["new_generation"] == 15 and
      rot[1]["old_spi"] == 0x2b02 and rot[1]["old_generation"] == 0 and
      rot[1]["new_spi"] == 0x2bf3 and rot[1]["new_generation"] == 15 and
      rot[1]["detail"] is None and
      list(rot[1].keys()) == ["at", "link", "epoch", "result", "old_spi", "old_generation",
                              "new_spi", "new_generation", "detail"],
      "history --link l2 --json: l2's rotations, generations, escaped detail, nulls")
rc, out, err = sactl(base, "events")
check(rc == 0, "events: exit 0")
golden("events", out)
check("added by sakeyd" not in out, "events: the default window is 1h")
rc, out, err = sactl(base, "events", "--since", "2h")
golden("events-2h", out)
rc, out, err = sactl(base, "events", "--since", "2h", "--json")
doc = json.loads(out)
check(doc["schema"] == 2 and doc["daemon_running"] is True and doc["data_age_s"] == 4,
      "events --json: schema, daemon_running, data_age_s")
evs = doc["events"]
check(rc == 0 and len(evs) == 4 and evs[0]["event"] == "add" and evs[-1]["link"] is None and
      evs[-1]["spi"] == 0x1234 and evs[-1]["proto"] == "esp",
      "events --since 2h --json: 4 events, oldest first")
rc, out, err = sactl(base, "events", "--since", "soon")
check(rc == 2, "events --since soon: usage error (2)")
rc, out, err = sactl(base, "status", "--bogus")
check(rc == 2, "status --bogus: usage error (2)")

# check: each situation.
def check_case(name, pid, scenario, want_rc, want_text, *args, conf=None):
    conf = conf or make(name, pid, *scenario)
    rc, out, err = sactl(conf, "check", *args)
    lines = out.splitlines()
    perf = want_rc == 3 or " | sas=" in out
    check(rc == want_rc and len(lines) == 1 and want_text in out and perf,
          f"check {name}: exit {want_rc}, '{want_text}'")
    if rc != want_rc or want_text not in out:
        print(f"     rc {rc}: {out}{err}")
    return out


out = check_case("ok", daemon.pid, [], 0, "SAKEYD OK - 5 SAs (4 managed), 2 links")
check("oldest_age=3660s;86400" in out and "soft_expiries=0" in out,
      "check ok: perfdata")
golden("check-ok", out)
check_case("soft", daemon.pid, ["soft"], 1, "SAKEYD WARNING - 1 soft expiry in the last 15m "
           "(spi 0x00001234 192.0.2.10->192.0.2.20)")
out = check_case("hard", daemon.pid, ["hard"], 2, "SAKEYD CRITICAL - 1 hard expiry")
check("soft_expiries=1 hard_expiries=1" in out, "check hard: perfdata counts both expiries")
check_case("rotfail", daemon.pid, ["rotfail"], 2, "1 rotation failure in the last 15m (l2 spi")
check_case("old", daemon.pid, ["old"], 1, "1 SA older than 1d (oldest 2d3h")
check_case("warnage", daemon.pid, [], 1, "4 SAs older than 1m", "--warn-age", "1m")
check_case("xfrm", daemon.pid, ["xfrm"], 1, "SAKEYD WARNING - 1 kernel IPsec error alert in the "
           "last 15m (the kernel counted IPsec errors (packets dropped): XfrmInNoStates +37 "
           "(now 37))")
# Key schedule v2's events.
# A generation change alone is no problem; an unprotected replay window is a WARNING, an
# exhausted series (no outbound SA until the next epoch) CRITICAL.
check_case("gens", daemon.pid, ["gens"], 1, "SAKEYD WARNING - 1 unprotected replay window in the "
           "last 15m (l1 spi 0x00002a07 198.51.100.7->192.0.2.1); 5 SAs")
check_case("exhausted", daemon.pid, ["exhausted"], 2, "SAKEYD CRITICAL - 1 generation exhaustion "
           "in the last 15m (link l2); 5 SAs")
conf = make("gens-events", daemon.pid, "gens", "exhausted")
rc, out, err = sactl(conf, "events")
golden("events-gens", out)
rc, out, err = sactl(conf, "events", "--json")
kinds = [e["event"] for e in json.loads(out)["events"]] if rc == 0 else []
check(rc == 0 and kinds == ["sa-removed", "generation-changed", "replay-unprotected", "add",
                            "generations-exhausted"],
      "events --json: generation-changed, replay-unprotected, generations-exhausted")
check_case("stale", daemon.pid, ["stale"], 1, "data 10m old: sakeyd is not refreshing it")
check_case("down", 0, [], 2, "SAKEYD CRITICAL - sakeyd is not running;")
check_case("crashed", dead.pid, [], 2, "sakeyd is not running (crashed?)")
check_case("nodb", None, [], 3, "SAKEYD UNKNOWN - no database")
rc, out, err = sactl(os.path.join(OUT, "nosuch.conf"), "check")
check(rc == 3 and out.startswith("SAKEYD UNKNOWN"), "check without a config: UNKNOWN (3)")
rc, out, err = sactl(base, "check", "--warn-age", "x")
check(rc == 3 and out.startswith("SAKEYD UNKNOWN - usage: --warn-age x: not a duration"),
      "check --warn-age x: UNKNOWN (3), one UNKNOWN line")

# Thresholds (Monitoring Plugins ranges) on hard_expiry_in: base's earliest hard expiry is in
# 1000 s (mkdb), and the perfdata carries value;warn;crit;min.
for args, want_rc, want in [
        (["-w", "1800:", "-c", "600:"], 1, "SAKEYD WARNING - hard expiry in 16m40s"),
        (["-w", "1800:", "-c", "1000:"], 1, "warning range 1800:"),
        (["-w", "1800:", "-c", "1001:"], 2, "SAKEYD CRITICAL - hard expiry in 16m40s"),
        (["-w", "900:"], 0, "SAKEYD OK - 5 SAs"),
        (["-w", "~:999"], 1, "warning range ~:999"),
        (["--critical", "@1000:2000"], 2, "critical range @1000:2000"),
        (["-c", "2000"], 0, "SAKEYD OK"),
        (["-w", "10:20", "-t", "5"], 1, "warning range 10:20")]:
    rc, out, err = sactl(base, "check", *args)
    warn = args[args.index("-w") + 1] if "-w" in args else ""
    crit = next((args[i + 1] for i, a in enumerate(args) if a in ("-c", "--critical")), "")
    status = ["OK", "WARNING", "CRITICAL"][want_rc]
    check(rc == want_rc and out.startswith(f"SAKEYD {status} - ") and want in out and
          f" hard_expiry_in=1000s;{warn};{crit};0 " in out and len(out.splitlines()) == 1,
          f"check {' '.join(args)}: exit {want_rc}, '{want}', perfdata with the ranges")

# Usage errors: one UNKNOWN line on stdout, exit 3 (never 2), the usage on stderr.
for args, want in [(["-w", "abc"], "-w abc: not a range"),
                   (["-c", "10:5"], "-c 10:5: not a range (the start is greater than the end)"),
                   (["-w", "2h"], "for an SA age use --warn-age DUR"),
                   (["-c", "/etc/sakeyd/sakeyd.conf"], "before the command: sactl -c "),
                   (["-t", "0"], "-t 0: not a number of seconds"),
                   (["-t", "x"], "-t x: not a number of seconds"),
                   (["-w"], "-w needs a value"),
                   (["--bogus"], "unknown option --bogus"),
                   (["-x"], "unknown option -x"),
                   (["extra"], "unexpected argument 'extra'")]:
    rc, out, err = sactl(base, "check", *args)
    check(rc == 3 and out.startswith("SAKEYD UNKNOWN - usage: ") and want in out and
          len(out.splitlines()) == 1 and "usage: sactl" in err,
          f"check {' '.join(args)}: UNKNOWN (3) '{want}'")

# -t: a database another process holds locked (EXCLUSIVE) keeps sactl waiting for its lock
# (2 s, STORE_BUSY_TIMEOUT_MS); with -t 1 the check gives up after 1 s with an UNKNOWN line.
import sqlite3  # noqa: E402
lockconf = make("locked", daemon.pid)
holder = sqlite3.connect(os.path.join(OUT, "locked/state/sakeyd.db"), isolation_level=None)
holder.execute("PRAGMA locking_mode = EXCLUSIVE")
holder.execute("BEGIN EXCLUSIVE")
holder.execute("UPDATE meta SET value = value WHERE key = 'pid'")
rc, out, err = sactl(lockconf, "check", "-t", "1")
check(rc == 3 and out == "SAKEYD UNKNOWN - sactl check timed out after 1s (reading the "
      "configuration or the database); raise -t or see why the state_dir is slow\n",
      "check -t 1 on a locked database: UNKNOWN (3), timed out after 1s")
rc, out, err = sactl(lockconf, "check", "-t", "30")
check(rc == 3 and out.startswith("SAKEYD UNKNOWN - ") and "timed out" not in out,
      "check -t 30 on a locked database: the lock wait ends first (UNKNOWN, not a timeout)")
holder.execute("ROLLBACK")
holder.close()
rc, out, err = sactl(lockconf, "check", "-t", "1")
check(rc == 0, "check -t 1 once the lock is gone: OK")

# "Since the last check": an hour later the soft expiry is out of the lookback, but the
# state file remembers the last check, so the expiry between the two still counts.
conf = make("since", daemon.pid, "soft")
rc, out, err = sactl(conf, "check", now=NOW - 3600)
check(rc == 1 and os.path.exists(os.path.join(OUT, "since/state/check.state")),
      "check: records its time in state_dir/check.state")
rc, out, err = sactl(conf, "check", now=NOW + 3600)
check(rc == 1 and "in the last 2h" in out, "check: an event since the last check counts")
rc, out, err = sactl(conf, "check", now=NOW + 7200)
check(rc == 1 and "soft expiry" not in out and "1 SA past the soft lifetime" in out,
      "check: the next check no longer counts it (the SA is still dying: WARNING)")
# Without write permission on state_dir: the lookback alone.
if os.geteuid() != 0:
    conf = make("rostate", daemon.pid)
    os.chmod(os.path.join(OUT, "rostate/state"), 0o500)
    rc, out, err = sactl(conf, "check")
    check(rc == 0 and err == "", "check: a read-only state_dir is no error")
    os.chmod(os.path.join(OUT, "rostate/state"), 0o700)

# The daemon down: status says so.
conf = make("down-status", 0)
rc, out, err = sactl(conf, "status")
check(rc == 0 and out.startswith("WARNING: sakeyd is not running, data 4s old"),
      "status: warns when the daemon is not running")
rc, out, err = sactl(conf, "status", "--json")
doc = json.loads(out) if rc == 0 else {}
check(rc == 0 and doc.get("daemon_running") is False and doc.get("data_age_s") == 4
      and "not running" in err,
      "status --json: JSON on stdout (daemon_running false), the warning on stderr")
conf = make("nodb-status", None)
rc, out, err = sactl(conf, "status")
check(rc == 1 and "no database yet" in err, "status without a database: exit 1, explained")

daemon.send_signal(signal.SIGTERM)
daemon.wait()
check.finish()
