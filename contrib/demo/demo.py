#!/usr/bin/env python3
# SPDX-License-Identifier: ISC
"""The sakeyd demo: two hosts rotating keys on simulated SADBs.

usage: demo.py SAKEYD SACTL [--short]

Host A and host B each run sakeyd on its own simulated SADB (kernel = sim),
configured as each other's peer with three links. An operator also keys an
SA by hand on host A, through the simulator's PF_KEY socket, with soft and
hard lifetimes. For about a minute (--short: about 20 s, for CI) the demo
shows sactl status on both hosts, checks that both derive the same SPIs and
key fingerprints for each direction, watches rotations, and follows the
hand-keyed SA through its soft and hard expiry. It needs no root, and leaves
no process or file behind.
"""
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

SAKEYD, SACTL = sys.argv[1], sys.argv[2]
SHORT = "--short" in sys.argv
PERIOD = 4 if SHORT else 10
SOFT, HARD = (6, 12) if SHORT else (20, 40)
DURATION = HARD + 6 if SHORT else 60
HOSTS = {"A": "192.0.2.1", "B": "198.51.100.7"}
LINKS = [("office", ""), ("backup", ":1"), ("lab", ":2")]
failures, passes = [], []


def say(text=""):
    print(text, flush=True)


def check(cond, what):
    say(("  ok   " if cond else "  FAIL ") + what)
    (passes if cond else failures).append(what)


work = tempfile.mkdtemp(prefix="sakeyd-demo-")
daemons = {}


def cleanup(*_):
    for p in daemons.values():
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
    # A daemon that did not stop cleanly: its last words before the directory goes.
    for host, p in daemons.items():
        if p.returncode != 0:
            try:
                with open(f"{work}/{host}/sakeyd.log", errors="replace") as f:
                    tail = f.read().splitlines()[-40:]
            except OSError:
                tail = []
            say(f"== host {host}'s sakeyd exited {p.returncode}; the end of its log:")
            say("   " + "\n   ".join(tail))
    shutil.rmtree(work, ignore_errors=True)


signal.signal(signal.SIGINT, lambda *a: (cleanup(), sys.exit(130)))


def sactl(host, *args):
    return subprocess.run([SACTL, "-c", f"{work}/{host}/sakeyd.conf", *args],
                          capture_output=True, text=True)


def addrs(link_i):
    """The address pair of link i: 192.0.2.1+i <-> 198.51.100.7+i."""
    a = HOSTS["A"].rsplit(".", 1)
    b = HOSTS["B"].rsplit(".", 1)
    return f"{a[0]}.{int(a[1]) + link_i}", f"{b[0]}.{int(b[1]) + link_i}"


try:
    say("== sakeyd demo: two hosts, three links, keys refreshed every "
        f"{PERIOD}s on simulated SADBs")
    # One secret per link, shared by both hosts (sactl genkey; copied securely in real life).
    for name, _ in LINKS:
        subprocess.run([SACTL, "genkey", "-o", f"{work}/{name}.key"], check=True)
    for host in HOSTS:
        os.makedirs(f"{work}/{host}", mode=0o700)
        conf = f"""[daemon]
kernel = sim
state_dir = {work}/{host}/state
control_socket = {work}/{host}/control.sock
sim_socket = {work}/{host}/sim.sock
refresh_interval = 2s
"""
        for i, (name, _) in enumerate(LINKS):
            a, b = addrs(i)
            local, remote = (a, b) if host == "A" else (b, a)
            conf += f"""
[link {name}]
local = {local}
remote = {remote}
secret_file = {work}/{name}.key
rotate_every = {PERIOD}s
hard_slack = 30s
"""
        with open(f"{work}/{host}/sakeyd.conf", "w") as f:
            f.write(conf)
        log = open(f"{work}/{host}/sakeyd.log", "w")
        daemons[host] = subprocess.Popen([SAKEYD, "-c", f"{work}/{host}/sakeyd.conf"],
                                          stdout=log, stderr=log)
    # What the two operators compare over the phone before starting: one digest per link.
    digests = {}
    for host in HOSTS:
        r = subprocess.run([SAKEYD, "--check", "--plan", "-c", f"{work}/{host}/sakeyd.conf"],
                           capture_output=True, text=True)
        digests[host] = dict(re.findall(r"^link (\S+)  digest (\S+)$", r.stdout, re.M))
    say("   sakeyd --check --plan: each link's digest on host A and host B")
    for name, _ in LINKS:
        say(f"   {name:7} A {digests['A'].get(name, 'missing')}  B {digests['B'].get(name, 'missing')}")
    check(len(digests["A"]) == len(LINKS) and digests["A"] == digests["B"],
          "A and B agree on every link's plan digest (sakeyd --check --plan)")
    say(f"   host A ({HOSTS['A']}...) and host B ({HOSTS['B']}...) started; config of A:")
    with open(f"{work}/A/sakeyd.conf") as f:
        say("   | " + "\n   | ".join(f.read().strip().splitlines()[:14]) + "\n   | ...")

    deadline = time.time() + 10
    while not all(os.path.exists(f"{work}/{h}/sim.sock") for h in HOSTS) and time.time() < deadline:
        time.sleep(0.1)
    time.sleep(1.5)

    # An operator keys an SA by hand on host A, as with ip xfrm or setkey.
    say(f"\n== an operator keys an SA by hand on host A (soft {SOFT}s, hard {HARD}s lifetime)")
    hand_spi = 0x1234
    hdr = struct.pack("=BBBBHHII", 2, 3, 0, 3, 2 + 2 + 3 + 3 + 3 + 3 + 4 + 4 + 4 + 6, 0, 1, 999)
    sa = struct.pack("=HHIBBBBI", 2, 1, socket.htonl(hand_spi), 32, 0, 7, 12, 0)
    lt_hard = struct.pack("=HHIQQQ", 4, 3, 0, 0, HARD, 0)
    lt_soft = struct.pack("=HHIQQQ", 4, 4, 0, 0, SOFT, 0)

    def addr_ext(t, ip):
        return struct.pack("=HHBBH", 3, t, 255, 32, 0) + \
            struct.pack("=HH4s8s", socket.AF_INET, 0, socket.inet_aton(ip), b"\0" * 8)

    key_auth = struct.pack("=HHHH", 9, 8, 512, 0) + os.urandom(64)
    key_enc = struct.pack("=HHHH", 5, 9, 256, 0) + os.urandom(32)
    sa2 = struct.pack("=HHBBHII", 2, 19, 1, 0, 0, 0, 0)
    msg = hdr + sa + lt_hard + lt_soft + addr_ext(5, "203.0.113.5") + \
        addr_ext(6, "203.0.113.9") + key_auth + key_enc + sa2
    assert len(msg) == struct.unpack_from("=H", hdr, 4)[0] * 8, len(msg)
    op = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    op.connect(f"{work}/A/sim.sock")
    op.send(msg)
    reply = op.recv(65536)
    check(reply[2] == 0, "the simulated SADB took the hand-keyed SA (SADB_ADD)")
    op.close()

    start = time.time()
    seen_out = {h: set() for h in HOSTS}
    phases_seen = set()
    shown = 0
    explained = False
    while time.time() - start < DURATION:
        time.sleep(0.5)
        status = {h: json.loads(sactl(h, "status", "--json").stdout or '{"sas": []}')["sas"] for h in HOSTS}
        for h in HOSTS:
            for s in status[h]:
                if s["managed"] and s["dir"] == "out":
                    seen_out[h].add((s["link"], s["spi"]))
        hand = [s for s in status["A"] if s["spi"] == hand_spi]
        phase = "gone" if not hand else hand[0]["state"]
        elapsed = time.time() - start
        if elapsed >= shown:
            shown += 20 if not SHORT else 8
            for h in HOSTS:
                say(f"\n== t={elapsed:.0f}s: sactl status on host {h}")
                say("   " + "\n   ".join(sactl(h, "status").stdout.rstrip().splitlines()))
            say(f"   (the hand-keyed SA 0x{hand_spi:x} on host A is {phase})")
            if not explained:
                explained = True
                say("   (GEN: the generation of an epoch's SA, in the SPI's second-lowest hex "
                    "digit. Both hosts\n    started without records: each sends with generation "
                    "15 in its first epoch and\n    holds all 16 of its peer's until then; later "
                    "epochs are sent with 0, with 1 and\n    15 held as spares, for a host that "
                    "loses its SAs: see sakeyd(8), LOSING SAS)")
        if phase not in phases_seen:
            phases_seen.add(phase)
            if phase != "mature":
                say(f"   t={elapsed:.0f}s: the hand-keyed SA is now {phase}")
                code = sactl("A", "check").returncode
                say(f"   sactl check on host A: exit {code} "
                    f"({['OK', 'WARNING', 'CRITICAL', 'UNKNOWN'][code] if code < 4 else code})")

    say("\n== what the two hosts agree on (each direction: sender's outbound = receiver's inbound)")
    status = {h: json.loads(sactl(h, "status", "--json").stdout or '{"sas": []}')["sas"] for h in HOSTS}
    pairs = 0
    agree = True
    for s in status["A"]:
        if not s["managed"]:
            continue
        match = [t for t in status["B"] if t["managed"] and t["spi"] == s["spi"] and
                 t["src"] == s["src"] and t["dst"] == s["dst"]]
        if s["dir"] == "out" or any(t["dir"] == "out" for t in match):
            pairs += 1
            same = bool(match) and match[0]["key_fp"] == s["key_fp"] and s["key_fp"]
            agree &= bool(same)
            say(f"   {s['link']:7} {s['src']:>14} -> {s['dst']:<14} spi 0x{s['spi']:08x} "
                f"key {s['key_fp']}  host B: {match[0]['key_fp'] if match else 'missing'}")
    check(pairs >= 6 and agree, "A and B hold the same SPI and key fingerprint for each direction")
    rotations = min(len(v) for v in seen_out.values())
    check(rotations >= 3 * (DURATION // PERIOD - 1),
          f"links rotated: {rotations} outbound SAs seen per host in {DURATION}s")
    hist = sactl("A", "history").stdout.rstrip().splitlines()
    say("\n== sactl history on host A (last rotations)")
    say("   " + "\n   ".join(hist[:2] + hist[-4:]))
    with open(f"{work}/A/sakeyd.log") as f:
        alerts = [line.split("] ", 1)[-1] for line in f if "ALERT" in line]
    say("\n== alerts raised on host A")
    say("   " + "\n   ".join(alerts) if alerts else "   (none)")
    check(any("expire-soft" in a and f"spi=0x{hand_spi:x}" in a for a in alerts),
          "the hand-keyed SA raised expire-soft")
    check(any("expire-hard" in a and f"spi=0x{hand_spi:x}" in a for a in alerts),
          "the hand-keyed SA raised expire-hard")
    events = sactl("A", "events", "--since", "5m").stdout.rstrip().splitlines()
    check(any("expire-hard" in e for e in events), "the ledger recorded both expiries (sactl events)")
    check("gone" in phases_seen, "the hand-keyed SA is shown gone after its hard lifetime")
finally:
    cleanup()
    codes = [p.returncode for p in daemons.values()]
    check(codes == [0, 0], f"both daemons stopped cleanly (exit {codes})")
    check(not os.path.exists(work), "no state left behind")
    say(f"\n{len(passes)} passed, {len(failures)} failed")
sys.exit(1 if failures else 0)
