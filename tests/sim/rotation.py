#!/usr/bin/env python3
# SPDX-License-Identifier: ISC
"""Rotation on the simulated SADB: the daemon through >= 10 epochs, 3 links.

sakeyd runs with kernel = sim and a sim_socket; this script is another PF_KEY
client of the simulated SADB. It records the broadcast stream and dumps the
SADB just after every change point. The daemon starts without generation
records (a fresh state directory), so each link's first epoch E0 (read from
its log line "no generation records: sends with generation 15 of epoch E0",
and checked against the clock) is sent with generation 15 and its inbound
epochs <= E0 are held in all 16 generations; later epochs are sent with
generation 0 and held as 0 plus spares 1 and 15 (DESIGN.md "Key schedule v2",
tests/lib/genmodel.py). No SA carries traffic, so no spare is promoted. Asserted:
- after every change point the SADB holds exactly the desired SAs of every
  link, generations included (computed here from DESIGN.md with an
  independent HKDF);
- for every link and epoch, the new outbound SA's ADD precedes the old
  outbound SA's DELETE in the broadcast stream;
- the ledger records each rotation (sactl history --json);
- the outbound SA deleted by this client (a loss) is replaced by the next
  generation of its epoch, never by itself again, with the sa-removed and
  generation-changed alerts;
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
from proc import connect_unix  # noqa: E402
from genmodel import LinkGens, fresh_epochs  # noqa: E402
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


models = {}  # name -> LinkGens, once the daemon has told each link's first epoch


def desired(t):
    """Every desired (spi, src, dst) at Unix time t (DESIGN.md windows and generations)."""
    out = set()
    for model in models.values():
        out |= model.desired(t)
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


def log_text():
    with open(f"{WORK}/sakeyd.log") as f:
        return f.read()


log = open(f"{WORK}/sakeyd.log", "w")
t_launch = time.time()
daemon = subprocess.Popen([SAKEYD, "-c", f"{WORK}/sakeyd.conf"], stdout=log, stderr=log)
obs = connect_unix(f"{WORK}/sim.sock", 10)
# Each link's first epoch: the daemon's first pass, at most a few change points after launch.
deadline = time.time() + 10
while len(fresh_epochs(log_text())) < len(LINKS) and time.time() < deadline:
    time.sleep(0.05)
t_told = time.time()
first = fresh_epochs(log_text())
for name, (local, remote, period, lead, grace, phase, prefix) in params.items():
    models[name] = LinkGens(prefix, local, remote, period, phase, lead, grace,
                            first.get(name, 1 << 62))
print(f"     first epochs (generation 15): {first}")
check(len(first) == len(LINKS) and all(
    (int(t_launch) - params[n][5]) // params[n][2] <= first[n] <=
    (int(t_told) - params[n][5]) // params[n][2] for n in first),
    "each link's first epoch is sent with generation 15, the epoch it was started in")
time.sleep(max(0.0, t_launch + 1.5 - time.time()))

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
                                 capture_output=True, text=True, check=True).stdout)["rotations"]
per_link = {}
for row in hist:
    if row.get("result") == "ok":
        per_link[row["link"]] = per_link.get(row["link"], 0) + 1
print(f"     rotations recorded: {per_link}")
check(per_link.get("l1", 0) >= EPOCHS and per_link.get("l2", 0) >= EPOCHS and
      per_link.get("l3", 0) >= EPOCHS // 2, "the ledger records each rotation")

# --- another client deletes a managed SA: a loss of l3's outbound SA ------------------
local, remote, period, lead, grace, phase, prefix = params["l3"]
l3 = models["l3"]
# 0.3 s after l3's grace ends and more than 1.5 s before its next change point (the
# next epoch's lead): the outbound SA and the inbound set stay put while we look.
while True:
    t = time.time()
    into = (t - phase) % period
    if grace + 0.3 <= into <= grace + 0.5:
        break
    pump(obs, 0.02)
e = l3.epoch(time.time())
lost_gen = l3.out_gen(e)
spi = keysched.spi(prefix, e, lost_gen)
msg = header(SADB_DELETE, 3, 2 + 2 + 3 + 3, 7, 4343)
msg += struct.pack("=HHIBBBBI", 2, 1, socket.htonl(spi), 0, 0, 0, 0, 0)
for ip in (local, remote):
    msg += struct.pack("=HHBBH", 3, 5 if ip == local else 6, 255, 32, 0)
    msg += struct.pack("=HH4s8s", socket.AF_INET, 0, socket.inet_aton(ip), b"\0" * 8)
obs.send(msg)
new_gen = l3.lost_out(e)
time.sleep(1.0)
pump(obs)
have = {sa for sa in dump(obs) if sa[0] >> 8 == prefix}
want = l3.desired(time.time())
check(l3.epoch(time.time()) == e and new_gen is not None and
      (keysched.spi(prefix, e, new_gen), local, remote) in have and have == want,
      f"the deleted outbound SA (epoch {e}, generation {lost_gen}) is replaced by "
      f"generation {new_gen} of the same epoch; l3 holds exactly its desired SAs "
      f"(extra {sorted(have - want)}, missing {sorted(want - have)})")
readded = [ev for ev in events if ev[1] == SADB_ADD and ev[2] == spi and ev[3] == local]
check(len(readded) == 1, f"generation {lost_gen}'s outbound SA was added once, never again "
                         f"({len(readded)} adds)")
text = log_text()
check("ALERT sa-removed link=l3" in text, "sa-removed alert raised")
check(f"ALERT generation-changed link=l3 spi={keysched.spi(prefix, e, new_gen):#x}" in text,
      "generation-changed alert raised for the new generation")
daemon.send_signal(signal.SIGTERM)
check(daemon.wait(timeout=10) == 0, "SIGTERM: clean exit 0")
text = log_text()
check(not any(s.hex() in text for s in secrets.values()), "no secret in the log")
shutil.copy(f"{WORK}/sakeyd.log", f"{LOGDIR}/sakeyd.log")
shutil.rmtree(WORK, ignore_errors=True)
check.finish()
