#!/usr/bin/env python3
# SPDX-License-Identifier: ISC
"""Rotation on the simulated SADB: the daemon through >= 10 epochs, 3 links.

sakeyd runs with kernel = sim and a sim_socket; this script is another PF_KEY
client of the simulated SADB. It records the broadcast stream and dumps the
SADB just after every change point. Asserted:
- after every change point the SADB holds exactly the desired SAs of every
  link (computed here from DESIGN.md with an independent HKDF);
- for every link and epoch, the new outbound SA's ADD precedes the old
  outbound SA's DELETE in the broadcast stream;
- the ledger records each rotation (sactl history --json);
- an SA deleted by this client is re-installed, with an sa-removed alert;
- SIGTERM: exit 0.

usage: rotation.py SAKEYD SACTL LOGDIR
"""
import json
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
import keysched  # noqa: E402
from checks import Checks  # noqa: E402
from keysched import write_secret  # noqa: E402
from pfkey import SADB_ADD, SADB_DELETE, SADB_DUMP, dump_request, header, parse  # noqa: E402

SAKEYD, SACTL, LOGDIR = sys.argv[1], sys.argv[2], sys.argv[3]
# Unix socket paths must stay short: work in a fresh private directory.
WORK = tempfile.mkdtemp(prefix="sakeyd-sim-")
EPOCHS = 10
# name, local, remote, period, lead, grace
LINKS = [("l1", "192.0.2.1", "192.0.2.11", 2, 0, 0),
         ("l2", "192.0.2.1", "192.0.2.12", 2, 0, 0),
         ("l3", "192.0.2.1", "192.0.2.13", 4, 1, 1)]
check = Checks()


# --- PF_KEY, just enough ----------------------------------------------------
events = []  # (time, type, spi, src, dst)


def pump(sock, timeout=0.0):
    """Read every waiting message; return the DUMP replies among them."""
    dumps = []
    end = time.time() + timeout
    while True:
        left = max(0.0, end - time.time())
        r, _, _ = select.select([sock], [], [], left)
        if not r:
            return dumps
        data = sock.recv(65536)
        typ, err, seq, pid, spi, src, dst = parse(data)
        if typ == SADB_DUMP and pid == 4242:
            dumps.append((err, seq, spi, src, dst))
            if seq == 0 or err:
                return dumps
            end = time.time() + 2
        elif typ in (SADB_ADD, SADB_DELETE) and not err:
            events.append((time.time(), typ, spi, src, dst))


def dump(sock):
    sock.send(dump_request(1, 4242))
    replies = pump(sock, 3)
    if replies and replies[-1][0]:
        return set()  # ENOENT: empty
    return {(spi, src, dst) for _e, _s, spi, src, dst in replies}


# --- set-up ---------------------------------------------------------------------
os.makedirs(LOGDIR, exist_ok=True)
secrets = {}
conf = f"""[daemon]
kernel = sim
state_dir = {WORK}/state
control_socket = {WORK}/control.sock
sim_socket = {WORK}/sim.sock
refresh_interval = 3s
"""
for name, local, remote, period, lead, grace in LINKS:
    secrets[name] = os.urandom(32)
    path = f"{WORK}/{name}.key"
    write_secret(path, secrets[name])
    conf += f"""
[link {name}]
local = {local}
remote = {remote}
secret_file = {path}
rotate_every = {period}s
lead = {lead}s
grace = {grace}s
hard_slack = 30s
"""
with open(f"{WORK}/sakeyd.conf", "w") as f:
    f.write(conf)

params = {}
for name, local, remote, period, lead, grace in LINKS:
    s = secrets[name]
    phase = keysched.phase(s, period)
    prefix = keysched.spi_prefix(s)
    params[name] = (local, remote, period, lead, grace, phase, prefix)


def desired(t):
    """Every desired (spi, src, dst) at Unix time t (DESIGN.md windows)."""
    out = set()
    for name, (local, remote, period, lead, grace, phase, prefix) in params.items():
        e = (int(t) - phase) // period
        start, nxt = e * period + phase, (e + 1) * period + phase
        inbound = [e]
        if t >= nxt - lead:
            inbound.append(e + 1)
        if t < start + grace:
            inbound.append(e - 1)
        for k in inbound:
            out.add((keysched.spi(prefix, k), remote, local))
        out.add((keysched.spi(prefix, e), local, remote))
    return out


def change_points(t0, t1):
    pts = set()
    for name, (local, remote, period, lead, grace, phase, prefix) in params.items():
        e = (int(t0) - phase) // period
        while e * period + phase <= t1 + period:
            for p in (e * period + phase, e * period + phase + grace,
                      (e + 1) * period + phase - lead):
                if t0 < p <= t1:
                    pts.add(p)
            e += 1
    return sorted(pts)


log = open(f"{WORK}/sakeyd.log", "w")
daemon = subprocess.Popen([SAKEYD, "-c", f"{WORK}/sakeyd.conf"], stdout=log, stderr=log)
deadline = time.time() + 10
while not os.path.exists(f"{WORK}/sim.sock") and time.time() < deadline:
    time.sleep(0.05)
obs = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
obs.connect(f"{WORK}/sim.sock")
time.sleep(1.5)

# --- >= 10 epochs: the exact desired set after every change point ------------------
start = time.time()
end = start + EPOCHS * 2 + 0.5
mismatches, samples = [], 0
for p in change_points(start, end):
    while time.time() < p + 0.4:
        pump(obs, max(0.0, p + 0.4 - time.time()))
    have = dump(obs)
    want = desired(time.time())
    samples += 1
    if have != want:
        mismatches.append((p, sorted(have - want), sorted(want - have)))
print(f"     {samples} change points sampled over {end - start:.0f}s")
for m in mismatches[:3]:
    print(f"     at {m[0]}: extra {m[1]}, missing {m[2]}")
check(samples >= EPOCHS and not mismatches,
      "after every change point the SADB holds exactly the desired SAs")

# --- the broadcast stream: make before break ----------------------------------------
violations, switches = 0, 0
for name, (local, remote, period, lead, grace, phase, prefix) in params.items():
    adds = {spi: t for t, typ, spi, src, dst in events if typ == SADB_ADD and src == local
            and spi >> 8 == prefix}
    dels = {spi: t for t, typ, spi, src, dst in events if typ == SADB_DELETE and src == local
            and spi >> 8 == prefix}
    for spi, t_del in dels.items():
        newer = [t for s, t in adds.items() if (s & 0xF) == ((spi + 1) & 0xF)]
        switches += 1
        if not newer or min(newer) > t_del:
            violations += 1
print(f"     {switches} outbound switches observed")
check(switches >= 2 * EPOCHS and violations == 0,
      "every new outbound SA's ADD precedes the old one's DELETE")

# --- the ledger ----------------------------------------------------------------
hist = json.loads(subprocess.run([SACTL, "-c", f"{WORK}/sakeyd.conf", "history", "--json"],
                                 capture_output=True, text=True, check=True).stdout)
per_link = {}
for row in hist:
    if row.get("result") == "ok":
        per_link[row["link"]] = per_link.get(row["link"], 0) + 1
print(f"     rotations recorded: {per_link}")
check(per_link.get("l1", 0) >= EPOCHS and per_link.get("l2", 0) >= EPOCHS and
      per_link.get("l3", 0) >= EPOCHS // 2, "the ledger records each rotation")

# --- another client deletes a managed SA ------------------------------------------
local, remote, period, lead, grace, phase, prefix = params["l3"]
e = (int(time.time()) - phase) // period
spi = keysched.spi(prefix, e)
msg = header(SADB_DELETE, 3, 2 + 2 + 3 + 3, 7, 4343)
msg += struct.pack("=HHIBBBBI", 2, 1, socket.htonl(spi), 0, 0, 0, 0, 0)
for ip in (local, remote):
    msg += struct.pack("=HHBBH", 3, 5 if ip == local else 6, 255, 32, 0)
    msg += struct.pack("=HH4s8s", socket.AF_INET, 0, socket.inet_aton(ip), b"\0" * 8)
obs.send(msg)
time.sleep(1.0)
pump(obs)
have = dump(obs)
check((spi, local, remote) in have or desired(time.time()) == have,
      "an SA deleted by another client is re-installed")
with open(f"{WORK}/sakeyd.log") as f:
    text = f.read()
check("ALERT sa-removed link=l3" in text, "sa-removed alert raised")

daemon.send_signal(signal.SIGTERM)
check(daemon.wait(timeout=10) == 0, "SIGTERM: clean exit 0")
check(not any(s.hex() in text for s in secrets.values()), "no secret in the log")
shutil.copy(f"{WORK}/sakeyd.log", f"{LOGDIR}/sakeyd.log")
shutil.rmtree(WORK, ignore_errors=True)
check.finish()
