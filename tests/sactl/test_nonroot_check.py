#!/usr/bin/env python3
# SPDX-License-Identifier: ISC
"""sactl check without root, through the sakeyd group (#21, checks without root).

sakeyd runs as root on the simulated SADB. With a system group sakeyd
present (created here with groupadd if missing, and removed afterwards),
the state directory is 0750 root:sakeyd and sakeyd.db, -wal and -shm 0640
root:sakeyd (generations.db stays 0600), and `sactl check` run as uid 65534
with the group (as NRPE's nagios would be) says OK with its perfdata; it
still reads the ledger after sakeyd stopped (the -wal and -shm it cannot
create are kept). Without the group (deleted, sakeyd restarted) the files
go back to 0600 and the same user gets UNKNOWN with the fix. No secret
byte is in the files the group can read.

usage: test_nonroot_check.py SAKEYD SACTL OUTDIR   (as root; else skipped, 77)
"""
import grp
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from checks import Checks  # noqa: E402
from simconf import write_one_link  # noqa: E402

SAKEYD, SACTL, OUT = sys.argv[1:4]
GROUP = "sakeyd"
NOBODY = 65534
if os.geteuid() != 0:
    print("SKIP: needs root (groupadd, files of root read by uid 65534)")
    sys.exit(77)

check = Checks()
shutil.rmtree(OUT, ignore_errors=True)
os.makedirs(OUT)
WORK = tempfile.mkdtemp(prefix="sakeyd-nonroot-")
os.chmod(WORK, 0o755)  # uid 65534 must reach the config and the state directory
STATE = f"{WORK}/state"
DB = f"{STATE}/sakeyd.db"


def as_user(gids):
    """preexec_fn: uid and gid 65534, with exactly the supplementary groups gids."""
    def drop():
        os.setgroups(gids)
        os.setgid(NOBODY)
        os.setuid(NOBODY)
    return drop


def sactl(*args, gids=None):
    """sactl -c CONF ARGS, as root (gids None) or as uid 65534 with groups gids."""
    r = subprocess.run([SACTL, "-c", CONF, *args], capture_output=True, text=True,
                       preexec_fn=None if gids is None else as_user(gids))
    return r.returncode, r.stdout, r.stderr


def mode_gid(path):
    st = os.stat(path)
    return stat.S_IMODE(st.st_mode), st.st_gid


def start(log_name):
    log = open(f"{OUT}/{log_name}", "w")
    p = subprocess.Popen([SAKEYD, "-v", "-c", CONF], stdout=log, stderr=log)
    # Up when the ledger holds this daemon's pid (it opened the database) and the link's SAs.
    deadline = time.time() + 30
    while time.time() < deadline and p.poll() is None:
        rc, out, _ = sactl("status")
        rcj, outj, _ = sactl("status", "--json")
        if rc == 0 and f"(pid {p.pid})" in out.split("\n")[0] and rcj == 0 and \
                len([s for s in json.loads(outj or "{}").get("sas", []) if s["managed"]]) >= 2:
            break
        time.sleep(0.2)
    return p, log


def stop(p, log):
    p.terminate()
    p.wait(timeout=30)
    log.close()


created = False
try:
    try:
        gid = grp.getgrnam(GROUP).gr_gid
    except KeyError:
        subprocess.run(["groupadd", "--system", GROUP], check=True)
        created = True
        gid = grp.getgrnam(GROUP).gr_gid
    CONF = write_one_link(WORK)
    with open(f"{WORK}/l.key") as f:
        secret = bytes.fromhex(f.read().strip())
    # The configuration as the man page says: readable by the group, the secret 0600 root.
    os.chown(CONF, 0, gid)
    os.chmod(CONF, 0o640)

    # ---- With the group ----
    daemon, log = start("sakeyd-group.log")
    check(daemon.poll() is None, "sakeyd runs with the group present")
    check(mode_gid(STATE) == (0o750, gid), f"state_dir 0750 root:{GROUP}: {mode_gid(STATE)}")
    for name in ("sakeyd.db", "sakeyd.db-wal", "sakeyd.db-shm"):
        check(mode_gid(f"{STATE}/{name}") == (0o640, gid),
              f"{name} 0640 root:{GROUP}: {mode_gid(f'{STATE}/{name}')}")
    check(mode_gid(f"{STATE}/generations.db")[0] == 0o600, "generations.db stays 0600")
    with open(f"{OUT}/sakeyd-group.log") as f:
        check(f"readable by group {GROUP} (gid {gid})" in f.read(), "the log says it shares")

    rc, out, err = sactl("check", "-w", "60:", "-c", "10:", gids=[gid])
    check(rc == 0 and out.startswith("SAKEYD OK - ") and len(out.splitlines()) == 1 and
          " | sas=" in out and ";60:;10:;0 " in out and " hard_expiry_in=" in out,
          f"uid 65534 in group {GROUP}: check OK with perfdata ({rc}: {out.strip()} {err})")
    rc, out, err = sactl("status", gids=[gid])
    check(rc == 0 and "sakeyd running" in out, f"uid 65534 in the group: status works ({rc})")

    # Not in the group: the configuration (0640 root:sakeyd) is out of reach, and the
    # line says what to change.
    rc, out, err = sactl("check", gids=[])
    check(rc == 3 and out.startswith("SAKEYD UNKNOWN - cannot read the configuration") and
          f"let group {GROUP} read it" in out,
          f"uid 65534 outside the group, config unreadable: UNKNOWN with the fix ({out.strip()})")
    os.chmod(CONF, 0o644)
    rc, out, err = sactl("check", gids=[])
    check(rc == 3 and out.startswith("SAKEYD UNKNOWN - cannot read ") and
          f"adduser USER {GROUP}" in out,
          f"uid 65534 outside the group: UNKNOWN, says to join it ({out.strip()})")
    os.chmod(CONF, 0o640)

    # Keys are never in what the group can read.
    blobs = b""
    for name in ("sakeyd.db", "sakeyd.db-wal"):
        with open(f"{STATE}/{name}", "rb") as f:
            blobs += f.read()
    check(secret not in blobs and secret.hex().encode() not in blobs and
          secret[:16] not in blobs, "no byte of the link secret in sakeyd.db or its WAL")

    # sakeyd stopped: the -wal and -shm stay, and the group still reads the ledger.
    stop(daemon, log)
    check(os.path.exists(f"{DB}-wal") and os.path.exists(f"{DB}-shm"),
          "the -wal and -shm files outlive sakeyd")
    rc, out, err = sactl("check", gids=[gid])
    check(rc == 2 and out.startswith("SAKEYD CRITICAL - sakeyd is not running"),
          f"after sakeyd stopped, the group's check reads the ledger: CRITICAL ({out.strip()})")

    # ---- Without the group ----
    if not created:
        print(f"note: group {GROUP} existed before this test; not removed, so the "
              "checks without it are left out")
    else:
        subprocess.run(["groupdel", GROUP], check=True)
        created = False
        os.chmod(CONF, 0o644)
        daemon, log = start("sakeyd-nogroup.log")
        check(daemon.poll() is None, "sakeyd runs without the group")
        for name in ("sakeyd.db", "sakeyd.db-wal", "sakeyd.db-shm"):
            check(not os.path.exists(f"{STATE}/{name}") or
                  mode_gid(f"{STATE}/{name}")[0] == 0o600,
                  f"without the group {name} is 0600 again")
        rc, out, err = sactl("check", gids=[gid])
        check(rc == 3 and out.startswith("SAKEYD UNKNOWN - cannot read ") and
              f"addgroup --system {GROUP}" in out and "restart sakeyd" in out,
              f"without the group: UNKNOWN, says to create it ({out.strip()})")
        rc, out, err = sactl("check")
        check(rc == 0 and out.startswith("SAKEYD OK - "), f"root's check: OK ({out.strip()})")
        stop(daemon, log)
        # A new state directory without the group: as before, 0700 and 0600.
        shutil.rmtree(STATE)
        daemon, log = start("sakeyd-fresh.log")
        check(mode_gid(STATE)[0] == 0o700 and mode_gid(DB)[0] == 0o600,
              f"a new state_dir without the group: 0700, sakeyd.db 0600 "
              f"({mode_gid(STATE)}, {mode_gid(DB)})")
        stop(daemon, log)
finally:
    if created:
        subprocess.run(["groupdel", GROUP])
    shutil.rmtree(WORK, ignore_errors=True)
check.finish()
