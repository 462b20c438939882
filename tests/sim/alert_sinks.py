#!/usr/bin/env python3
# SPDX-License-Identifier: ISC
"""Each alert once, through a recording alert_command; a reload without churn.

sakeyd on the simulated SADB, with an alert_command that records its
environment. The simulator refuses the first ADD (rotation-failed); a
client of the simulator keys an SA by hand with 2 s / 4 s lifetimes
(expire-soft, expire-hard) and deletes a managed SA (sa-removed);
max_sa_age = 3s makes the managed SAs too old (sa-too-old). Then an
unchanged config is reloaded through the control socket: the broadcast
stream must show no ADD, DELETE or SPD message.

usage: alert_sinks.py SAKEYD SACTL LOGDIR
"""
import os
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from checks import Checks  # noqa: E402
from proc import connect_unix  # noqa: E402
from keysched import write_secret  # noqa: E402
from pfkey import SADB_DELETE, hand_add_request, header  # noqa: E402

SAKEYD, SACTL, LOGDIR = sys.argv[1:4]
WORK = tempfile.mkdtemp(prefix="sakeyd-alerts-")
check = Checks()


os.makedirs(LOGDIR, exist_ok=True)
secret = os.urandom(32)
write_secret(f"{WORK}/l.key", secret)
with open(f"{WORK}/record", "w") as f:
    f.write(f"#!/bin/sh\nenv > {WORK}/alert.$$.$(date +%s%N)\n")
os.chmod(f"{WORK}/record", 0o700)
CONF = f"{WORK}/sakeyd.conf"
with open(CONF, "w") as f:
    f.write(f"""[daemon]
kernel = sim
state_dir = {WORK}/state
control_socket = {WORK}/control.sock
sim_socket = {WORK}/sim.sock
alert_command = {WORK}/record
max_sa_age = 3s
refresh_interval = 1s

[link l1]
local = 192.0.2.1
remote = 192.0.2.2
secret_file = {WORK}/l.key
rotate_every = 1h
# Half an hour from any change point: the SAs the test counts stay put.
phase = {(int(time.time()) + 1800) % 3600}s
""")
log = open(f"{WORK}/sakeyd.log", "w")
# -v: the SPI of each SA added is logged at debug level.
daemon = subprocess.Popen([SAKEYD, "-c", CONF, "-v"], stdout=log, stderr=log,
                          env=dict(os.environ, SAKEYD_SIM_FAIL="3:105:1", SECRET_MARKER="x"))
deadline = time.time() + 10
obs = connect_unix(f"{WORK}/sim.sock", 10)
# The daemon's first pass meets the injected ADD failure, not our hand-keyed ADD.
while time.time() < deadline:
    with open(f"{WORK}/sakeyd.log") as f:
        if "ready:" in f.read():
            break
    time.sleep(0.05)


def addr_ext(t, ip):
    return struct.pack("=HHBBH", 3, t, 255, 32, 0) + \
        struct.pack("=HH4s8s", socket.AF_INET, 0, socket.inet_aton(ip), b"\0" * 8)


def drain(timeout):
    """Types of the messages that arrive within timeout."""
    types, end = [], time.time() + timeout
    while True:
        r, _, _ = select.select([obs], [], [], max(0, end - time.time()))
        if not r:
            return types
        types.append(obs.recv(65536)[1])


# A hand-keyed SA, as another tool would add it.
obs.send(hand_add_request(1, 999, 0x1234, 2, 4))
time.sleep(2)
# Another tool deletes the managed inbound SA.
with open(f"{WORK}/sakeyd.log") as f:
    spis = [int(w, 16) for line in f if "add in spi" in line
            for w in line.split() if w.startswith("0x")]
if spis:
    dele = header(SADB_DELETE, 3, 10, 2, 999)
    dele += struct.pack("=HHIBBBBI", 2, 1, socket.htonl(spis[-1]), 0, 0, 0, 0, 0)
    dele += addr_ext(5, "192.0.2.2") + addr_ext(6, "192.0.2.1")
    obs.send(dele)
time.sleep(4)

records = []
for name in sorted(os.listdir(WORK)):
    if name.startswith("alert."):
        with open(f"{WORK}/{name}") as f:
            records.append(dict(line.rstrip("\n").split("=", 1) for line in f if "=" in line))
events = [r.get("SAKEYD_EVENT") for r in records]
print(f"     alerts recorded: {events}")
for ev in ("rotation-failed", "expire-soft", "expire-hard", "sa-removed", "sa-too-old"):
    check(ev in events, f"{ev} reached the alert_command")
soft = [r for r in records if r.get("SAKEYD_EVENT") == "expire-soft"]
check(soft and soft[0].get("SAKEYD_SPI") == "0x1234" and soft[0].get("SAKEYD_SRC") ==
      "203.0.113.5" and soft[0].get("SAKEYD_DST") == "203.0.113.9",
      "the expire-soft alert names the SA (SPI, src, dst)")
check(events.count("expire-soft") == 1 and events.count("expire-hard") == 1,
      "each expiry alerted once")
allowed = {"PATH", "PWD", "SHLVL", "_", "OLDPWD"}
extra = {k for r in records for k in r if not k.startswith("SAKEYD_") and k not in allowed}
check(not extra, f"the command's environment holds only SAKEYD_* and PATH {extra or ''}")
blob = "".join(open(f"{WORK}/{n}").read() for n in os.listdir(WORK) if n.startswith("alert."))
check(secret.hex() not in blob, "no key material in any alert")

# A reload of the unchanged config: no churn in the broadcast stream.
drain(0.3)
out = subprocess.run([SACTL, "-c", CONF, "reload"], capture_output=True, text=True)
check(out.returncode == 0 and "reloaded" in out.stdout + out.stderr,
      f"sactl reload succeeds ({(out.stdout + out.stderr).strip()})")
types = drain(1.5)
check(not types, f"no ADD, DELETE or policy change after the reload ({types})")

daemon.send_signal(signal.SIGTERM)
check(daemon.wait(timeout=10) == 0, "SIGTERM: clean exit 0")
shutil.copy(f"{WORK}/sakeyd.log", f"{LOGDIR}/sakeyd.log")
shutil.rmtree(WORK, ignore_errors=True)
check.finish()
