#!/usr/bin/env python3
# SPDX-License-Identifier: ISC
"""The metrics file on the simulated SADB: per-link series, bounded (#21).

One link l1 (rotate_every 8s, phase 1s, lead and grace 2s) and 1,003 SAs
keyed by hand through the simulated SADB's socket. After a rotation:
- the series of the link are the same set as before it (names and labels:
  no SPI label on any SA a link manages);
- sakeyd_link_next_rotation_timestamp_seconds is the start of the next
  epoch, (epoch + 1) * 8 + 1, and the epoch is the one of the file's time;
- the outbound SA was added at or after the change point (the kernel's add
  time, from the ledger: late on a loaded machine), its age is the time
  since then and grows with the file's time; its generation is 0 (an epoch
  after the first, records kept: DESIGN.md key schedule v2);
- the inbound SAs held are the managed SAs but the one outbound SA;
- the link's state is ok (1 for "ok", 0 for the other states);
- per-SA series only for the hand-keyed SAs, the first 1,000, and
  sakeyd_sa_series_omitted 3; sakeyd_sas counts all of them;
- sakeyd_build_info carries the version `sakeyd --version` prints;
- `promtool check metrics` accepts the file (where promtool is installed;
  required in CI).
Times are the file's own (its mtime and sakeyd_last_update), not the test's.

usage: metrics.py SAKEYD SACTL LOGDIR
"""
import json
import os
import re
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
ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
WORK = tempfile.mkdtemp(prefix="sakeyd-metrics-")
PROM = f"{WORK}/sakeyd.prom"
PERIOD, PHASE = 8, 1
HAND = 1003
HAND_DST = "203.0.113.9"
check = Checks()
os.makedirs(LOGDIR, exist_ok=True)


def add_msg(spi):
    """SADB_ADD of an ESP SA 203.0.113.5 -> 203.0.113.9, AES-256-CBC + HMAC-SHA512."""
    hdr = struct.pack("=BBBBHHII", 2, 3, 0, 3, 2 + 2 + 3 + 3 + 9 + 5 + 2, 0, spi, 999)
    sa = struct.pack("=HHIBBBBI", 2, 1, socket.htonl(spi), 32, 0, 7, 12, 0)

    def addr_ext(t, ip):
        return struct.pack("=HHBBH", 3, t, 255, 32, 0) + \
            struct.pack("=HH4s8s", socket.AF_INET, 0, socket.inet_aton(ip), b"\0" * 8)

    key_auth = struct.pack("=HHHH", 9, 8, 512, 0) + os.urandom(64)
    key_enc = struct.pack("=HHHH", 5, 9, 256, 0) + os.urandom(32)
    sa2 = struct.pack("=HHBBHII", 2, 19, 1, 0, 0, 0, 0)
    return hdr + sa + addr_ext(5, "203.0.113.5") + addr_ext(6, HAND_DST) + key_auth + \
        key_enc + sa2


def read():
    """(series {name{labels}: value}, mtime, text) of the metrics file, or None."""
    try:
        with open(PROM) as f:
            text = f.read()
            # The file read, not the name: sakeyd renames a new one over it, and a
            # stat of the name after the read could be the next file's time.
            mtime = os.fstat(f.fileno()).st_mtime
    except FileNotFoundError:
        return None
    series = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, value = line.rsplit(" ", 1)
            series[key] = float(value)
    return series, mtime, text


def get(series, key):
    return series.get(key) if series else None


def wait(pred, timeout):
    """The first read whose (series, mtime) pred accepts, else the last read."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        r = read()
        if r and pred(r[0], r[1]):
            return r
        time.sleep(0.2)
    return read()


def quiet(mtime, epoch):
    """The file was written mid-epoch, away from every change point (T-2, T, T+2)."""
    start = epoch * PERIOD + PHASE
    return start + 3 <= mtime <= start + PERIOD - 3


def link_keys(series):
    """The series that are not a hand-keyed SA's, without their values."""
    return {k for k in series if f'dst="{HAND_DST}"' not in k}


CONF = write_one_link(WORK, daemon_extra=f"sim_socket = {WORK}/sim.sock\n"
                                         "refresh_interval = 1s\n"
                                         f"metrics_file = {PROM}\n",
                      link_extra=f"rotate_every = {PERIOD}s\nphase = {PHASE}s\n"
                                 "lead = 2s\ngrace = 2s\n")
# write_one_link's rotate_every 1h comes first: the later line would be a duplicate key.
with open(CONF) as f:
    text = f.read().replace("rotate_every = 1h\n", "", 1)
with open(CONF, "w") as f:
    f.write(text)
version = subprocess.run([SAKEYD, "--version"], capture_output=True, text=True).stdout.split()
log = open(f"{WORK}/sakeyd.log", "w")
daemon = subprocess.Popen([SAKEYD, "-c", CONF], stdout=log, stderr=log)
try:
    deadline = time.time() + 20
    while not os.path.exists(f"{WORK}/sim.sock") and time.time() < deadline:
        time.sleep(0.1)
    with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as op:
        op.connect(f"{WORK}/sim.sock")
        errors = {}
        for i in range(HAND):
            spi = 0x10000 + i
            op.send(add_msg(spi))
            # The reply is the SADB_ADD with our sequence number; the daemon's
            # own adds and deletes are broadcast to this socket too.
            while True:
                reply = op.recv(65536)
                if reply[1] == 3 and struct.unpack_from("=I", reply, 8)[0] == spi:
                    break
            if reply[2]:
                errors[spi] = reply[2]
    check(not errors, f"the simulated SADB took {HAND} hand-keyed SAs (refused: {errors})")

    r = wait(lambda s, _: get(s, 'sakeyd_sas{managed="false"}') == HAND
             and get(s, 'sakeyd_link_outbound_age_seconds{link="l1"}') is not None, 20)
    check(r is not None, "the metrics file was written")
    s, mtime, text = r
    first_epoch = get(s, 'sakeyd_link_epoch{link="l1"}')
    keys_before = link_keys(s)
    check(first_epoch is not None, "sakeyd_link_epoch{link=l1}")
    check(get(s, 'sakeyd_sas{managed="false"}') == HAND,
          f'sakeyd_sas{{managed="false"}} counts all {HAND} hand-keyed SAs')
    ages = [k for k in s if k.startswith("sakeyd_sa_age_seconds{")]
    check(len(ages) == 1000, f"per-SA series for at most 1000 SAs ({len(ages)})")
    check(get(s, "sakeyd_sa_series_omitted") == HAND - 1000,
          f"sakeyd_sa_series_omitted {HAND - 1000} ({get(s, 'sakeyd_sa_series_omitted')})")
    spi_keys = [k for k in s if "spi=" in k]
    check(spi_keys and all(f'dst="{HAND_DST}"' in k for k in spi_keys),
          "every series with an SPI label is a hand-keyed SA's (none of the link's)")
    check(get(s, f'sakeyd_build_info{{version="{version[-1] if version else "?"}"}}') == 1,
          f"sakeyd_build_info{{version=\"{version[-1] if version else '?'}\"}} 1")

    # A rotation, then a file written mid-epoch.
    r = wait(lambda s, _: (get(s, 'sakeyd_link_epoch{link="l1"}') or 0) > first_epoch
             and get(s, 'sakeyd_rotations_total{link="l1",result="ok"}') >= 2, 3 * PERIOD)
    s, mtime, text = r
    epoch = get(s, 'sakeyd_link_epoch{link="l1"}')
    check(epoch > first_epoch, f"the link rotated: epoch {first_epoch:.0f} -> {epoch:.0f}")
    r = wait(lambda s, m: quiet(m, s.get('sakeyd_link_epoch{link="l1"}', 0)),
             2 * PERIOD)
    s, mtime, text = r
    epoch = int(get(s, 'sakeyd_link_epoch{link="l1"}'))
    check(quiet(mtime, epoch), f"a file written mid-epoch {epoch} (mtime {mtime:.1f})")
    check(epoch == (int(mtime) - PHASE) // PERIOD,
          f"sakeyd_link_epoch {epoch} is the epoch of the file's time")
    nxt = get(s, 'sakeyd_link_next_rotation_timestamp_seconds{link="l1"}')
    check(nxt == (epoch + 1) * PERIOD + PHASE,
          f"next rotation {nxt} = start of epoch {epoch + 1} ({(epoch + 1) * PERIOD + PHASE})")
    age = get(s, 'sakeyd_link_outbound_age_seconds{link="l1"}')
    written = int(mtime)
    # When the outbound SA was really added (the kernel's add time, in the ledger): at the
    # change point, or later on a loaded machine; the age is counted from there.
    out = subprocess.run([SACTL, "-c", CONF, "status", "--json"], capture_output=True, text=True)
    rows = json.loads(out.stdout or '{"sas": []}').get("sas", [])
    added = [r["added_at"] for r in rows
             if r.get("managed") and r.get("dir") == "out" and r.get("epoch") == epoch]
    check(len(added) == 1 and added[0] >= epoch * PERIOD + PHASE,
          f"epoch {epoch}'s outbound SA was added at or after the change point ({added})")
    check(age is not None and added and abs(age - (written - added[0])) <= 1,
          f"outbound age {age} = time since it was added ({written - added[0] if added else '?'})"
          f" within 1s")
    check(get(s, 'sakeyd_link_outbound_generation{link="l1"}') == 0,
          "outbound generation 0 (records kept since the first epoch)")
    managed = get(s, 'sakeyd_sas{managed="true"}')
    inbound = get(s, 'sakeyd_link_inbound_sas{link="l1"}')
    check(inbound is not None and inbound >= 1 and inbound == managed - 1,
          f"inbound SAs held {inbound} = managed SAs {managed} but the outbound one")
    states = {st: get(s, f'sakeyd_link_state{{link="l1",state="{st}"}}')
              for st in ("pending", "ok", "backoff", "exhausted")}
    check(states == {"pending": 0, "ok": 1, "backoff": 0, "exhausted": 0},
          f"sakeyd_link_state: ok 1, the others 0 ({states})")
    soft = get(s, 'sakeyd_link_expiry_seconds{kind="soft",link="l1"}')
    hard = get(s, 'sakeyd_link_expiry_seconds{kind="hard",link="l1"}')
    check(soft is not None and hard is not None and 0 < soft < hard,
          f"link expiry: 0 < soft {soft} < hard {hard}")
    # The age grows with the file's time within the epoch.
    before, before_mtime = age, mtime
    r = wait(lambda s, m: m >= before_mtime + 1.5
             and s.get('sakeyd_link_epoch{link="l1"}') == epoch, PERIOD)
    s2, mtime2, _ = r
    age2 = get(s2, 'sakeyd_link_outbound_age_seconds{link="l1"}')
    if s2.get('sakeyd_link_epoch{link="l1"}') == epoch and mtime2 >= before_mtime + 1.5:
        check(age2 is not None and abs((age2 - before) - (int(mtime2) - int(before_mtime))) <= 1,
              f"the outbound age grew with the file's time: {before} -> {age2} "
              f"({int(mtime2) - int(before_mtime)}s later)")
    else:
        check(False, "a second file written in the same epoch, 1.5s later or more")
    # The same series as the first file's: a rotation makes no new series.
    after = link_keys(s2)
    check(after == keys_before,
          f"the same series after the rotation as before it (new: {sorted(after - keys_before)[:4]},"
          f" gone: {sorted(keys_before - after)[:4]})")

    # promtool's linter on a file the daemon wrote.
    promtool = os.environ.get("PROMTOOL") or (f"{ROOT}/tools/promtool"
                                              if os.access(f"{ROOT}/tools/promtool", os.X_OK)
                                              else shutil.which("promtool"))
    if promtool:
        p = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True,
                           text=True)
        check(p.returncode == 0, f"promtool check metrics: {p.stdout}{p.stderr}".strip())
    else:
        print("     (promtool not installed: `promtool check metrics` not run)")
        check(os.environ.get("CI") != "true", "CI has promtool (scripts/deps.sh fetches it)")
finally:
    daemon.terminate()
    daemon.wait(timeout=30)
    log.close()
    shutil.copy(f"{WORK}/sakeyd.log", f"{LOGDIR}/sakeyd.log")
    shutil.copy(PROM, f"{LOGDIR}/sakeyd.prom") if os.path.exists(PROM) else None
    shutil.rmtree(WORK, ignore_errors=True)
check.finish()
