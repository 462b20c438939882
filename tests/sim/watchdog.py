#!/usr/bin/env python3
# SPDX-License-Identifier: ISC
"""systemd's watchdog: WATCHDOG=1 from the daemon's loop, only when asked of it.

sakeyd runs on the simulated SADB with NOTIFY_SOCKET pointing at a datagram
socket of this test, as systemd would start it with WatchdogSec=:
- WATCHDOG_USEC=200000 and WATCHDOG_PID = the daemon's pid: after READY=1,
  WATCHDOG=1 keeps coming, about one per half interval (the interval is read
  from the daemon's log line "watchdog: WATCHDOG=1 every N ms");
- no WATCHDOG_USEC: READY=1 and not one WATCHDOG=1;
- WATCHDOG_PID of another process (the variables inherited by a child): none.
Each run ends with SIGTERM: STOPPING=1, exit 0.

usage: watchdog.py SAKEYD SACTL LOGDIR
"""
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from checks import Checks  # noqa: E402
from simconf import write_one_link  # noqa: E402

SAKEYD, SACTL, LOGDIR = sys.argv[1:4]
WORK = tempfile.mkdtemp(prefix="sakeyd-wd-")
os.makedirs(LOGDIR, exist_ok=True)
check = Checks()
CONF = write_one_link(WORK)
WATCH_S = 1.5  # how long the pings are counted after READY=1


def run(name, env_extra):
    """Starts the daemon with env_extra (WATCHDOG_PID=self: its own pid), counts
    the datagrams for WATCH_S after READY=1, stops it. Returns (datagrams, log, rc)."""
    sock_path = f"{WORK}/notify-{name}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(sock_path)
    env = dict(os.environ, NOTIFY_SOCKET=sock_path)
    for k in ("WATCHDOG_USEC", "WATCHDOG_PID"):
        env.pop(k, None)
    own_pid = env_extra.get("WATCHDOG_PID") == "self"
    if own_pid:
        del env_extra["WATCHDOG_PID"]
    env.update(env_extra)
    log_path = f"{LOGDIR}/sakeyd-{name}.log"
    argv = [SAKEYD, "-c", CONF, "-v"]
    if own_pid:
        # exec keeps the shell's pid: the variable names the daemon itself, as systemd's does.
        argv = ["sh", "-c", 'WATCHDOG_PID=$$ exec "$@"', "sh"] + argv
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    got = []
    sock.settimeout(0.2)
    deadline = time.monotonic() + 60
    ready_at = None
    while proc.poll() is None and time.monotonic() < deadline:
        if ready_at is not None and time.monotonic() - ready_at >= WATCH_S:
            break
        try:
            data = sock.recv(4096).decode()
        except socket.timeout:
            continue
        got.append((time.monotonic(), data))
        if ready_at is None and "READY=1" in data.split("\n"):
            ready_at = time.monotonic()
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        rc = proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        rc = proc.wait()
    sock.settimeout(0.5)
    try:
        while True:
            got.append((time.monotonic(), sock.recv(4096).decode()))
    except socket.timeout:
        pass
    sock.close()
    with open(log_path, errors="replace") as f:
        text = f.read()
    check(ready_at is not None, f"{name}: READY=1 came (log {log_path})")
    check(rc == 0, f"{name}: SIGTERM stops it cleanly (exit status {rc})")
    check(any("STOPPING=1" in d for _, d in got), f"{name}: STOPPING=1 came")
    return got, text, ready_at


# Asked: pings keep coming, at about half the interval the daemon logged.
got, text, ready_at = run("asked", {"WATCHDOG_USEC": "200000", "WATCHDOG_PID": "self"})
m = re.search(r"watchdog: WATCHDOG=1 every (\d+) ms \(WATCHDOG_USEC=200000\)", text)
check(m is not None, "asked: the daemon logs the ping interval it chose")
pings = [t for t, d in got if d == "WATCHDOG=1"]
check(all(d == "WATCHDOG=1" or "WATCHDOG" not in d for _, d in got),
      "asked: WATCHDOG=1 comes alone in its datagram")
if ready_at is not None:
    # The daemon's own word for its interval; half of WATCHDOG_USEC if it said nothing.
    every_s = int(m.group(1)) / 1000 if m else 0.1
    check(every_s == 0.1, f"asked: half of WATCHDOG_USEC (every {every_s} s)")
    after = [t for t in pings if ready_at <= t <= ready_at + WATCH_S]
    # A busy 2-core machine delays timers; half of what the interval promises is plenty.
    want = int(WATCH_S / every_s / 2)
    check(len(after) >= want,
          f"asked: {len(after)} WATCHDOG=1 in the {WATCH_S} s after READY=1 (at least {want})")
    gaps = [b - a for a, b in zip(after, after[1:])]
    check(not gaps or max(gaps) < 1.0,
          "asked: no gap of a second between pings (largest %.3f s)" % max(gaps or [0]))

# Not asked: not one ping.
got, text, _ = run("unset", {})
check(not any("WATCHDOG=1" in d for _, d in got),
      "unset: no WATCHDOG=1 without WATCHDOG_USEC (%d datagrams: %s)" %
      (len(got), sorted({d for _, d in got})))
check("watchdog:" not in text, "unset: no watchdog line in the log")

# Asked of another process (a child that inherited the variables): not one ping.
got, text, _ = run("other-pid", {"WATCHDOG_USEC": "200000", "WATCHDOG_PID": "1"})
check(not any("WATCHDOG=1" in d for _, d in got),
      "other-pid: no WATCHDOG=1 when WATCHDOG_PID is another process")

shutil.rmtree(WORK, ignore_errors=True)
check.finish()
