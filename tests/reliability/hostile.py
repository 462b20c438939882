#!/usr/bin/env python3
# SPDX-License-Identifier: ISC
"""Hostile kernel input: the simulator injects malformed PF_KEY messages into a live daemon.

sakeyd runs on simd (sim_connect), 2 links at rotate_every = 1s, with a
metrics file. simd's "inject HEX" delivers raw bytes to every client; this
script sends COUNT malformed messages of a dozen kinds (each built from a
well-formed SADB_ADD broadcast, broken one way, with random SPIs, addresses
and padding). Asserted:
- each one is logged ("dropped malformed message") and counted: the log
  has COUNT such lines and sakeyd_kernel_messages_dropped_total{reason=
  "malformed"} reaches COUNT;
- the daemon survives and keeps rotating: the SADB equals the desired set
  afterwards, and the ledger's live SAs equal the SADB. The desired set is key
  schedule v2's after a fresh start (tests/lib/genmodel.py): all 16 inbound
  generations of epochs up to the first one, 0, 1 and 15 of later ones, one
  outbound SA (generation 15 in the first epoch, 0 after);
- SIGTERM: exit 0, no sanitizer report.

usage: hostile.py SAKEYD SACTL SIMD LOGDIR [COUNT]
"""
import os
import random
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "sim"))
import simlib  # noqa: E402
import genmodel  # noqa: E402,I100 (tests/lib: simlib puts it on the path)

SAKEYD, SACTL, SIMD, LOGDIR = sys.argv[1:5]
COUNT = int(sys.argv[5]) if len(sys.argv) > 5 else 240
check = simlib.Checks()
rand = simlib.rng()


def ext(etype, body):
    """An extension: len in 8-byte units, padded."""
    body += b"\0" * (-(len(body) + 4) % 8)
    return struct.pack("=HH", (len(body) + 4) // 8, etype) + body


def sa_ext(spi):
    return ext(1, struct.pack("!I", spi) + struct.pack("=BBBBI", 0, 1, 3, 12, 0))


def addr_ext(etype, ip, prefix=32, family=socket.AF_INET):
    sin = struct.pack("=H", family) + b"\0\0" + socket.inet_aton(ip) + b"\0" * 8
    return ext(etype, struct.pack("=BBH", 255, prefix, 0) + sin)


def message(exts, typ=3, version=2, len_units=None, seq=None):
    body = b"".join(exts)
    n = (16 + len(body)) // 8 if len_units is None else len_units
    return struct.pack("=BBBBHHII", version, typ, 0, 3, n, 0,
                       rand.randrange(1, 2**31) if seq is None else seq,
                       rand.randrange(1000, 2**31)) + body


def ip():
    return f"203.0.113.{rand.randrange(1, 255)}"


def good_exts():
    return [sa_ext(rand.randrange(0x100, 2**32)), addr_ext(5, ip()), addr_ext(6, ip())]


KINDS = {
    "shorter than a header": lambda: os.urandom(rand.randrange(1, 16)),
    "version 1": lambda: message(good_exts(), version=1),
    "length says more": lambda: message(good_exts(), len_units=12 + rand.randrange(0, 50)),
    "length says less": lambda: message(good_exts(), len_units=rand.randrange(2, 9)),
    "zero-length extension": lambda: message(good_exts()[:1] + [struct.pack("=HH", 0, 5) +
                                                               b"\0" * 4] + good_exts()[2:]),
    "extension past the end": lambda: (lambda m: m[:16] + struct.pack("=HH", 200, 1) + m[20:])(
        message(good_exts())),
    "duplicate SA extension": lambda: message([sa_ext(1), sa_ext(2)] + good_exts()[1:]),
    "SA extension too short": lambda: message([ext(1, b"")] + good_exts()[1:]),
    "unknown address family": lambda: message(good_exts()[:2] + [addr_ext(6, ip(),
                                                                 family=rand.choice([0, 7, 99]))]),
    "prefix longer than the address": lambda: message(good_exts()[:2] + [addr_ext(
        6, ip(), prefix=rand.randrange(33, 256))]),
    "key bits beyond the extension": lambda: message(good_exts() + [ext(8, struct.pack(
        "=HH", rand.randrange(65, 4096), 0) + os.urandom(8))]),
    "unknown message type": lambda: message(good_exts(), typ=rand.randrange(60, 256)),
}

links = simlib.make_links(2, 1)
metrics = f"/tmp/sakeyd-hostile-{os.getpid()}.prom"
env = simlib.Env(SAKEYD, SACTL, SIMD, LOGDIR, links,
                 f"refresh_interval = 2s\nmetrics_file = {metrics}\n")


def malformed_metric():
    try:
        for line in open(metrics):
            if line.startswith('sakeyd_kernel_messages_dropped_total{reason="malformed"}'):
                return int(line.split()[-1])
    except OSError:
        pass
    return None


try:
    env.start()
    check(env.wait_log("ready:", 60), "sakeyd ready")
    names = list(KINDS)
    sent = {}
    for i in range(COUNT):
        kind = names[i % len(names)]
        env.simctl("inject " + KINDS[kind]().hex())
        sent[kind] = sent.get(kind, 0) + 1
        if i % 20 == 19:
            time.sleep(0.05)
    print(f"     injected {COUNT}: {len(sent)} kinds, {COUNT // len(names)}+ of each")
    deadline = time.time() + 20
    while time.time() < deadline and env.log_since().count("dropped malformed message") < COUNT:
        time.sleep(0.2)
    logged = env.log_since().count("dropped malformed message")
    check(logged == COUNT, f"each malformed message logged ({logged} of {COUNT})")
    deadline = time.time() + 20
    while time.time() < deadline and (malformed_metric() or 0) < COUNT:
        time.sleep(0.2)
    counted = malformed_metric()
    check(counted == COUNT,
          f"each counted: sakeyd_kernel_messages_dropped_total{{reason=\"malformed\"}} {counted}")
    check(env.daemon.poll() is None, "the daemon survived")
    genmodel.check_settled(check, env, genmodel.Model(env),
                           "it keeps rotating: the SADB equals the desired set (key schedule v2 "
                           "after a fresh start: no SA lost, no traffic)")
    agree, _ = env.ledger_agrees()
    check(agree, "the ledger's live SAs equal the SADB")
    rc, bad = env.stop()
    check(rc == 0 and not bad, f"SIGTERM: exit {rc}, no sanitizer report")
finally:
    env.close()
    try:
        os.unlink(metrics)
    except OSError:
        pass
check.finish()
