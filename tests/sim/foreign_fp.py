#!/usr/bin/env python3
# SPDX-License-Identifier: ISC
"""A hand-keyed SA's fingerprint is no offline oracle (#20 item 8).

An operator keys an ESP SA by hand (through the simulated SADB's socket, as
ip xfrm or setkey would) with weak keys: all zero, and "0123...". sakeyd
learns it; nowhere (the ledger through sactl status --json and sactl
history, the log at debug level, the metrics file) may a hash of those keys
appear: neither SHA-256 of the key bytes nor sakeyd's fingerprint of them
(SHA-256 of "sakeyd-v2 fp\\0" || keys), nor a 8-digit prefix of either. The
link's own SAs keep their derived fingerprints.

usage: foreign_fp.py SAKEYD SACTL LOGDIR
"""
import hashlib
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from checks import Checks  # noqa: E402
from simconf import write_one_link  # noqa: E402

SAKEYD, SACTL, LOGDIR = sys.argv[1:4]
WORK = tempfile.mkdtemp(prefix="sakeyd-ffp-")
check = Checks()
os.makedirs(LOGDIR, exist_ok=True)

KEYS = {0x1234: (b"\0" * 64, b"\0" * 32),
        0x1235: ((b"0123456789abcdef" * 4), b"0123456789abcdef" * 2)}


def add_sa(sock_path, spi, auth, enc):
    """SADB_ADD of an ESP SA 203.0.113.5 -> 203.0.113.9, AES-256-CBC + HMAC-SHA512."""
    hdr = struct.pack("=BBBBHHII", 2, 3, 0, 3, 2 + 2 + 3 + 3 + 9 + 5 + 2, 0, spi, 999)
    sa = struct.pack("=HHIBBBBI", 2, 1, socket.htonl(spi), 32, 0, 7, 12, 0)

    def addr_ext(t, ip):
        return struct.pack("=HHBBH", 3, t, 255, 32, 0) + \
            struct.pack("=HH4s8s", socket.AF_INET, 0, socket.inet_aton(ip), b"\0" * 8)

    key_auth = struct.pack("=HHHH", 9, 8, 512, 0) + auth
    key_enc = struct.pack("=HHHH", 5, 9, 256, 0) + enc
    sa2 = struct.pack("=HHBBHII", 2, 19, 1, 0, 0, 0, 0)
    msg = hdr + sa + addr_ext(5, "203.0.113.5") + addr_ext(6, "203.0.113.9") + key_auth + \
        key_enc + sa2
    assert len(msg) == struct.unpack_from("=H", hdr, 4)[0] * 8, len(msg)
    with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as op:
        op.connect(sock_path)
        op.send(msg)
        return op.recv(65536)[2]


def hashes(auth, enc):
    """Every hash of these keys an attacker could test guesses against."""
    out = []
    for data in (enc + auth, auth + enc, enc, auth):
        out.append(hashlib.sha256(data).hexdigest())
        out.append(hashlib.sha256(b"sakeyd-v2 fp\0" + data).hexdigest())
    return out


def sactl(*args):
    return subprocess.run([SACTL, "-c", CONF, *args], capture_output=True, text=True)


CONF = write_one_link(WORK, daemon_extra=f"sim_socket = {WORK}/sim.sock\n"
                                         f"metrics_file = {WORK}/sakeyd.prom\n")
log = open(f"{WORK}/sakeyd.log", "w")
daemon = subprocess.Popen([SAKEYD, "-v", "-c", CONF], stdout=log, stderr=log)
try:
    deadline = time.time() + 20
    while not os.path.exists(f"{WORK}/sim.sock") and time.time() < deadline:
        time.sleep(0.1)
    time.sleep(1)
    for spi, (auth, enc) in KEYS.items():
        check(add_sa(f"{WORK}/sim.sock", spi, auth, enc) == 0,
              f"the simulated SADB took hand-keyed SA {spi:#x}")
    deadline = time.time() + 20
    rows = []
    while time.time() < deadline:
        rows = json.loads(sactl("status", "--json").stdout or '{"sas": []}')["sas"]
        if {r["spi"] for r in rows} >= set(KEYS):
            break
        time.sleep(0.3)
    time.sleep(1.5)  # a metrics write and a ledger turn after the SAs were learnt
    rows = json.loads(sactl("status", "--json").stdout or '{"sas": []}')["sas"]
    hand = [r for r in rows if r["spi"] in KEYS]
    own = [r for r in rows if r.get("managed")]
    check(len(hand) == 2, f"the ledger lists both hand-keyed SAs ({len(hand)})")
    check(all(r["key_fp"] is None for r in hand),
          f"a hand-keyed SA has no fingerprint in the ledger: {[r['key_fp'] for r in hand]}")
    check(own and all(r["key_fp"] and len(r["key_fp"]) == 16 for r in own),
          f"the link's SAs keep their fingerprints ({len(own)} SAs)")
    with open(f"{WORK}/sakeyd.log") as f:
        text = f.read()
    outputs = {"log": text, "sactl status --json": sactl("status", "--json").stdout,
               "sactl status": sactl("status").stdout,
               "sactl history": sactl("history").stdout + sactl("history", "--json").stdout}
    try:
        with open(f"{WORK}/sakeyd.prom") as f:
            outputs["metrics"] = f.read()
    except OSError:
        outputs["metrics"] = ""
    check(outputs["metrics"] != "", "the metrics file was written")
    for spi, (auth, enc) in KEYS.items():
        for where, out in outputs.items():
            leaked = [h[:16] for h in hashes(auth, enc) if h[:8] in out]
            check(not leaked, f"{spi:#x}: no hash of its keys in the {where} ({leaked})")
finally:
    daemon.terminate()
    daemon.wait(timeout=30)
    log.close()
    shutil.copy(f"{WORK}/sakeyd.log", f"{LOGDIR}/sakeyd.log")
    shutil.rmtree(WORK, ignore_errors=True)
check.finish()
