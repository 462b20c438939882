#!/usr/bin/env python3
# SPDX-License-Identifier: ISC
"""The ledger, alerts and metrics against the real kernel (runs as root inside User-Mode Linux).

One sakeyd (kernel = pfkey, one link, an alert_command that records its
environment, a metrics_file), then an SA keyed by hand with `ip xfrm` and
lifetimes of 2 s (soft) and 4 s (hard):
- it appears in `sactl status` and `status --json` with its age;
- `sactl check` says OK before the soft expiry, WARNING after it, CRITICAL
  after the hard one;
- expire-soft then expire-hard run the alert command with the documented
  environment and nothing else;
- after its hard expiry it is shown gone (`status --all`);
- no key byte anywhere: the recorded environments, the database, the metrics;
- the metrics file has the hand-keyed SA's series while it lives, the
  link's series (none per SA of the link) and the required metric names;
  at exit it says sakeyd_up 0
  and sactl says the daemon is not running (check CRITICAL).

usage: ledger_status.py SAKEYD OUTDIR SACTL
"""
import glob
import json
import os
import signal
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import logs  # noqa: E402
from checks import Checks  # noqa: E402
from keysched import write_secret  # noqa: E402
from proc import sh, wait_for  # noqa: E402
from xfrmwitness import ExpireWitness  # noqa: E402

SAKEYD, OUT, SACTL = sys.argv[1], sys.argv[2], sys.argv[3]
# The backend under test: pfkey, or xfrm (the same checks, the XFRM backend).
KERNEL = next((a for a in sys.argv[4:] if a in ("pfkey", "xfrm")), "pfkey")
WORK = "/run/ledger-status"
LOCAL, REMOTE = "192.0.2.1", "192.0.2.2"
ENC_KEY = "000102030405060708090a0b0c0d0e0f"
AUTH_KEY = "f0e0d0c0b0a090807060504030201000f0e0d0c0b0a090807060504030201000"
check = Checks()


def sactl(*args):
    r = subprocess.run([SACTL, "-c", CONF, *args], capture_output=True, text=True)
    return r.returncode, r.stdout, r.stderr


def alert_times(event):
    """When the alert command wrote each recorded environment of event (its file's mtime)."""
    return [os.stat(p).st_mtime for p in sorted(glob.glob(f"{WORK}/alerts/{event}.*"))]


def alerts(event):
    """Recorded environments of event: a list of {name: value}."""
    res = []
    for path in sorted(glob.glob(f"{WORK}/alerts/{event}.*")):
        with open(path, "rb") as f:
            items = [v.decode() for v in f.read().split(b"\0") if v]
        res.append(dict(v.split("=", 1) for v in items) | {"_n": len(items)})
    return res


os.makedirs(f"{WORK}/alerts", exist_ok=True)
os.makedirs(f"{WORK}/metrics", exist_ok=True)
sh(f"ip link add d0 type dummy && ip link set d0 up && ip addr add {LOCAL}/24 dev d0")
write_secret(f"{WORK}/l.key", os.urandom(32))
with open(f"{WORK}/alert.sh", "w") as f:
    # Its open files, then the environment exactly as exec'd (NUL-separated), one file per run.
    f.write(f"#!/bin/sh\nls -l /proc/$$/fd > {WORK}/alerts/fds.$$ 2>&1\n"
            f"cat /proc/$$/environ > {WORK}/alerts/.tmp.$$ && "
            f"mv {WORK}/alerts/.tmp.$$ {WORK}/alerts/$SAKEYD_EVENT.$$\n")
os.chmod(f"{WORK}/alert.sh", 0o755)
METRICS = f"{WORK}/metrics/sakeyd.prom"
CONF = f"{WORK}/sakeyd.conf"
with open(CONF, "w") as f:
    f.write(f"""[daemon]
kernel = {KERNEL}
state_dir = {WORK}/state
control_socket = {WORK}/control.sock
alert_command = {WORK}/alert.sh
metrics_file = {METRICS}
refresh_interval = 1s

[link l1]
local = {LOCAL}
remote = {REMOTE}
secret_file = {WORK}/l.key
rotate_every = 1h
""")

LOG = f"{OUT}/sakeyd.log"
logf = open(LOG, "w")
# A daemon environment variable that must not reach the alert command.
env = dict(os.environ, SAKEYD_TEST_LEAK="leak-me")
daemon = subprocess.Popen([SAKEYD, "-c", CONF, "-v"], stdout=logf, stderr=logf, env=env)


def log_has(pattern):
    return logs.log_has(LOG, pattern)


check(wait_for(lambda: logs.started(LOG), 60),
      "sakeyd started, reconciled and (PF_KEY) registered for EXPIRE")
check(wait_for(lambda: sactl("status")[0] == 0 and "l1" in sactl("status")[1], 5),
      "sactl status shows the link's SAs")
rc, out, err = sactl("check")
check(rc == 0 and out.startswith("SAKEYD OK - "), f"check before the SA: OK (0): {out.strip()}")

def read_metrics():
    try:
        with open(METRICS) as f:
            return f.read()
    except FileNotFoundError:
        return ""


# The SA keyed by hand. Which expiries the kernel sent, and when, is read from the
# kernel itself: a loaded guest's late timer sends the hard one late and skips the
# soft one (xfrm_timer_handler), and the test may be descheduled for seconds.
witness = ExpireWitness()
added = time.time()
sh(f"ip xfrm state add src 192.0.2.10 dst 192.0.2.20 proto esp spi 0x1234 mode transport "
   f"enc 'cbc(aes)' 0x{ENC_KEY} auth-trunc 'hmac(sha256)' 0x{AUTH_KEY} 128 "
   f"limit time-soft 2 limit time-hard 4")


def hand_sa():
    rc, out, err = sactl("status", "--json")
    if rc:
        return None
    return next((s for s in json.loads(out)["sas"] if s["spi"] == 0x1234), None)


first = {}


def look_alive():
    """The first status --json that lists the SA alive (and when it was read), or the
    kernel's hard expiry first: a test descheduled past the SA's life cannot see it alive."""
    x = hand_sa()
    if x is not None and not first:
        first.update(x, _read_at=time.time())
    return bool(first) or witness.sent(0x1234, True) is not None


wait_for(look_alive, 60)
alive_seen = bool(first)
check(alive_seen or witness.sent(0x1234, True) is not None,
      "the hand-keyed SA appears in status --json" +
      ("" if alive_seen else " (not while alive: the kernel expired it first; judged from "
       "status --all below)"))
rc, out, err = sactl("check")
early = time.time() - added < 1.9
check(not early or rc == 0, f"check before its soft expiry: OK (0): {out.strip()}")


def fields_ok(x):
    return (x.get("link") is None and x.get("managed") is False and x.get("dir") is None and
            x.get("src") == "192.0.2.10" and x.get("dst") == "192.0.2.20" and
            x.get("proto") == "esp" and x.get("mode") == "transport" and x.get("epoch") is None and
            abs(x.get("added_at", 0) - added) <= 2 and
            x.get("soft_expires_at") == x.get("added_at", 0) + 2 and
            x.get("hard_expires_at") == x.get("added_at", 0) + 4)


if alive_seen:
    s = dict(first)
    read_at = s.pop("_read_at")
    # Bounds from when the status was really read, not from nominal instants.
    check(fields_ok(s), f"status --json: the hand-keyed SA's fields, expiries at +2 s and +4 s: {s}")
    check(0 <= s.get("age_s", -1) <= read_at - added + 1,
          f"status --json: its age ({s.get('age_s')} s, read {read_at - added:.1f} s after "
          "the add)")
rc, out, err = sactl("status")
row = next((l for l in out.splitlines() if "0x00001234" in l), "")
# Past its hard lifetime (4 s after the add, less a second of rounding) the
# kernel may have deleted it: then only the daemon's line is asked for.
present = time.time() - added < 3
check(rc == 0 and out.startswith("sakeyd running (pid ") and
      (not present or "192.0.2.10 -> 192.0.2.20" in row),
      f"status: the SA's row{'' if present else ' (read past its lifetime: not asked)'}, "
      f"and the daemon running: {row}")

# The metrics: a series of its own (no link manages it) while it lives; it
# is rewritten within a second of a change. Past 3 s after the add (its hard
# lifetime is 4 s) it may be gone: then not asked.
HAND_SERIES = 'sakeyd_sa_age_seconds{spi="0x00001234",src="192.0.2.10",dst="192.0.2.20",proto="esp"}'
seen = wait_for(lambda: HAND_SERIES in read_metrics(), max(0.0, 3 - (time.time() - added)))
check(seen or time.time() - added >= 3,
      f"metrics: {HAND_SERIES}" + ("" if seen else " (read past 3 s: not asked)"))

# Soft expiry: asked for only if the kernel sent one (see the witness above).
soft_sent = wait_for(lambda: witness.sent(0x1234, False) is not None or
                     witness.sent(0x1234, True) is not None, 60) and \
    witness.sent(0x1234, False) is not None
if soft_sent:
    check(wait_for(lambda: alerts("expire-soft"), 30), "expire-soft ran the alert command")
    dying = wait_for(lambda: (hand_sa() or {}).get("state") == "dying", 3)
    # Between the soft (2 s) and the hard (4 s) expiry; a machine too loaded to
    # look in that window shows the SA gone already: its events below still
    # have to show the soft expiry before the hard one.
    missed = not dying and witness.sent(0x1234, True) is not None
    check(dying or missed, "status --json: the SA is dying after its soft expiry" +
          (" (window missed under load: judged from its events below)" if missed else ""))
    rc, out, err = sactl("check")
    # The verdict follows what the ledger held when check read it: the hard
    # expiry too, if the kernel got there first on a loaded machine.
    hard_yet = "hard expir" in out
    check(rc == (2 if hard_yet else 1),
          f"check after the soft expiry: {'CRITICAL (2)' if hard_yet else 'WARNING (1)'}: "
          f"{out.strip()}")
    check(hard_yet or "soft expiry" in out, "check: the soft expiry named")
else:
    print("     the kernel sent no soft expiry (its timer first ran after the hard limit: "
          "xfrm_timer_handler then skips the soft one); the daemon must raise none")

# Hard expiry.
check(wait_for(lambda: witness.sent(0x1234, True) is not None, 60),
      "the kernel sent the hard expiry")
check(not witness.lost(), "the expiry witness lost no message")
check(wait_for(lambda: alerts("expire-hard"), 30), "expire-hard ran the alert command")
check(wait_for(lambda: hand_sa() is None, 30), "the SA left status after its hard expiry")
rc, out, err = sactl("status", "--all")
row = next((l for l in out.splitlines() if "0x00001234" in l), "")
check("gone" in row, f"status --all: the SA shown gone: {row}")
rc, out, err = sactl("status", "--json", "--all")
gone = [s for s in json.loads(out)["sas"] if s["spi"] == 0x1234]
check(len(gone) == 1 and gone[0]["state"] == "gone", "status --json --all: state gone")
check(len(gone) == 1 and fields_ok(gone[0]),
      f"status --json --all: the hand-keyed SA's fields, expiries at +2 s and +4 s: {gone}")
rc, out, err = sactl("check")
check(rc == 2 and "hard expir" in out, f"check after the hard expiry: CRITICAL (2): {out.strip()}")
rc, out, err = sactl("events", "--json")
kinds = [e["event"] for e in json.loads(out)["events"] if e["spi"] == 0x1234]
if soft_sent:
    check("expire-soft" in kinds and "expire-hard" in kinds and
          kinds.index("expire-soft") < kinds.index("expire-hard"),
          f"events: the SA's life, soft expiry before hard: {kinds}")
else:
    check("expire-soft" not in kinds and "expire-hard" in kinds,
          f"events: the SA's life, a hard expiry and no soft one (none sent): {kinds}")
    check(not alerts("expire-soft"), "no expire-soft alert for a soft expiry never sent")

# The recorded environments.
for event in ("expire-soft", "expire-hard") if soft_sent else ("expire-hard",):
    a = alerts(event)
    e = a[0] if a else {}
    check(len(a) == 1, f"{event}: the command ran once")
    # SAKEYD_COUNT: 1 for a single alert, the number folded for a burst summary.
    check(e.get("_n") == 10 and e.get("SAKEYD_COUNT") == "1" and
          set(e) == {"SAKEYD_EVENT", "SAKEYD_LINK", "SAKEYD_SPI", "SAKEYD_SRC", "SAKEYD_DST",
                     "SAKEYD_PROTO", "SAKEYD_AGE", "SAKEYD_MESSAGE", "SAKEYD_COUNT", "PATH", "_n"},
          f"{event}: exactly the documented variables: {sorted(e)}")
    check(e.get("SAKEYD_EVENT") == event and e.get("SAKEYD_LINK") == "" and
          e.get("SAKEYD_SPI") == "0x1234" and e.get("SAKEYD_SRC") == "192.0.2.10" and
          e.get("SAKEYD_DST") == "192.0.2.20" and e.get("SAKEYD_PROTO") == "esp" and
          e.get("PATH") == "/usr/sbin:/usr/bin:/sbin:/bin",
          f"{event}: the values: {e}")
    # The age when the daemon handled the expiry: no less than the lifetime (less a
    # second of the kernel's rounding), no more than when the command ran (its file).
    want_age = 2 if event == "expire-soft" else 4
    ran_at = alert_times(event)
    top = (ran_at[0] - added + 1) if ran_at else want_age + 1
    check(e.get("SAKEYD_AGE", "").isdigit() and want_age - 1 <= int(e["SAKEYD_AGE"]) <= top,
          f"{event}: SAKEYD_AGE {e.get('SAKEYD_AGE')} in [{want_age - 1}, {top:.1f}] "
          "(the lifetime; when the command ran)")

fds = ""
for path in glob.glob(f"{WORK}/alerts/fds.*"):
    with open(path) as f:
        fds += f.read()
check(fds and "socket:" not in fds and "sakeyd.db" not in fds and "pipe:" not in fds,
      "the alert command inherits no socket (PF_KEY), database or pipe of the daemon")
if "socket:" in fds or "sakeyd.db" in fds:
    print(fds)

# The metrics file (read_metrics, defined above).
# Rewritten at most once a second: the expiry is in it within about a second.
check(wait_for(lambda: 'sakeyd_events_total{event="expire-hard"} 1' in read_metrics(), 3),
      "the metrics file exists and counts the expiry")
metrics = read_metrics()
for name in ("sakeyd_up 1", "sakeyd_build_info{version=",
             "sakeyd_link_outbound_age_seconds{link=\"l1\"}",
             "sakeyd_link_expiry_seconds{kind=\"hard\",link=\"l1\"}",
             "sakeyd_link_state{link=\"l1\",state=\"ok\"} 1",
             "sakeyd_events_total{event=\"expire-hard\"} 1", "sakeyd_rotations_total{link=\"l1\"",
             "sakeyd_link_epoch{link=\"l1\"}", "sakeyd_link_next_rotation_timestamp_seconds{",
             "sakeyd_last_update_timestamp_seconds "):
    check(name in metrics, f"metrics: {name}")
# The link's SAs have no series of their own: their SPIs change at every rotation.
check(wait_for(lambda: "spi=" not in read_metrics(), 3),
      "metrics: no per-SA series once the hand-keyed SA is gone")
if os.path.exists("/proc/net/xfrm_stat"):
    check("sakeyd_xfrm_errors_total{error=\"XfrmInError\"}" in metrics,
          "metrics: sakeyd_xfrm_errors_total from /proc/net/xfrm_stat")
else:
    print("     (no /proc/net/xfrm_stat in this kernel: CONFIG_XFRM_STATISTICS off)")
check(os.stat(METRICS).st_mode & 0o777 == 0o644 and not glob.glob(f"{WORK}/metrics/*.tmp"),
      "metrics: mode 0644, no temporary file left")

# No key byte anywhere.
blobs = {}
for path in glob.glob(f"{WORK}/alerts/*") + glob.glob(f"{WORK}/state/*") + [METRICS, LOG]:
    with open(path, "rb") as f:
        blobs[path] = f.read()
raw = [bytes.fromhex(ENC_KEY), bytes.fromhex(AUTH_KEY)]
leaks = [p for p, b in blobs.items()
         if any(k.encode() in b.lower() for k in (ENC_KEY, AUTH_KEY, AUTH_KEY[:32]))
         or any(k in b for k in raw)]
check(len(blobs) >= 5 and not leaks, f"no key bytes in the alerts, the database, the metrics, "
      f"the log: {leaks}")
check(not any(b"leak-me" in blobs[p] for p in blobs if "/alerts/" in p),
      "the daemon's environment does not reach the alert command")

# Stop: sakeyd_up 0, sactl says the daemon is down.
daemon.send_signal(signal.SIGTERM)
check(daemon.wait(timeout=10) == 0, "SIGTERM: clean exit 0")
with open(METRICS) as f:
    check("\nsakeyd_up 0\n" in f.read(), "metrics at exit: sakeyd_up 0")
rc, out, err = sactl("status")
check(rc == 0 and out.startswith("WARNING: sakeyd is not running"), "status: the daemon is down")
rc, out, err = sactl("check")
check(rc == 2 and "not running" in out, f"check with the daemon down: CRITICAL (2): {out.strip()}")
check.finish()
