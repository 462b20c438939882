#!/usr/bin/env python3
# SPDX-License-Identifier: ISC
"""Database faults: rotation goes on, an alert is raised, the ledger catches up.

sakeyd runs on simd (sim_connect), 3 links at rotate_every = 1s, its
state_dir on a private tmpfs (this script re-runs itself in a new mount
namespace with unshare -m: root only; otherwise it skips). Four faults, one
after the other, each held for HOLD seconds (longer than the ledger's 5 s
reopen period, so reopening fails too), then cleared:
- full: the file system filled up by another file;
- locked: another writer (the sqlite3 CLI) holds BEGIN EXCLUSIVE;
- deleted: sakeyd.db and its -wal and -shm unlinked;
- read-only: a file system error (/sys/fs/ext4/DEV/trigger_fs_error) turns
  it read-only under the daemon (errors=remount-ro); cleared by an fsck and
  a new mount at the same place.
The desired set is key schedule v2's after a fresh start (tests/lib/
genmodel.py). During "locked" and "deleted" (the ledger alone): the SADB
equals it (the kernel is the truth, rotation does not wait for the ledger).
During "full" and "read-only", generations.db (same state_dir) cannot be
written either, and v2 installs no outbound SA whose generation is not
recorded: the inbound SAs equal the desired ones (none kept past its
window), an outbound SA is there only if its generation is recorded, and a
rotation-failed alert says the generation could not be recorded. In every
case a rotation-failed alert names the ledger. Once cleared: the daemon says
the database works again, the SADB equals the desired set again (outbound
SAs back), the ledger's live SAs equal the SADB, and rotations are recorded
again.
At the end every SA the ledger recorded matches the key schedule, and
SIGTERM exits 0 with no sanitizer report.

usage: dbfault.py SAKEYD SACTL SIMD LOGDIR
"""
import json
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "sim"))
import simlib  # noqa: E402
import genmodel  # noqa: E402,I100 (tests/lib: simlib puts it on the path)

if os.environ.get("SAKEYD_DBFAULT_NS") != "1":
    if os.geteuid() != 0:
        print("SKIP: needs root (mount namespace, tmpfs)")
        sys.exit(77)
    if subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode != 0:
        print("SKIP: unshare -m is not permitted here (no mount namespace)")
        sys.exit(77)
    os.environ["SAKEYD_DBFAULT_NS"] = "1"
    try:
        os.execvp("unshare", ["unshare", "-m", "--propagation", "private", sys.executable,
                              os.path.abspath(__file__), *sys.argv[1:]])
    except OSError as e:
        print(f"SKIP: unshare: {e}")
        sys.exit(77)

SAKEYD, SACTL, SIMD, LOGDIR = sys.argv[1:5]
HOLD = 8
check = simlib.Checks()

links = simlib.make_links(3, 1)
env = simlib.Env(SAKEYD, SACTL, SIMD, LOGDIR, links, "refresh_interval = 2s\n")
DB = f"{env.state}/sakeyd.db"
IMG = f"{env.work}/state.img"


def mount_ext4():
    return subprocess.run(["mount", "-o", "loop,errors=remount-ro", IMG, env.state],
                          capture_output=True, text=True).returncode == 0


# An ext4 image on a loop device: a file system error turns it read-only under the
# daemon's open descriptors (errors=remount-ro), as a failing disk would. Without
# loop devices, a tmpfs, and the read-only fault is skipped (said so).
subprocess.run(["truncate", "-s", "16M", IMG], check=True)
on_ext4 = subprocess.run(["mkfs.ext4", "-q", "-F", "-m", "0", IMG],
                         capture_output=True).returncode == 0 and mount_ext4()
if on_ext4:
    os.chmod(env.state, 0o700)
else:
    print("     no loop device: state_dir on a tmpfs; the read-only fault is skipped")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m,mode=0700", "tmpfs", env.state],
                   check=True)


def make_read_only():
    dev = os.path.basename(subprocess.run(["findmnt", "-n", "-o", "SOURCE", env.state],
                                          capture_output=True, text=True).stdout.strip())
    with open(f"/sys/fs/ext4/{dev}/trigger_fs_error", "w") as f:
        f.write("1")


def repair():
    """umount (lazily: the daemon's descriptors keep the old one), fsck, mount anew."""
    subprocess.run(["umount", "-l", env.state], check=True)
    subprocess.run(["e2fsck", "-f", "-y", IMG], capture_output=True)
    return mount_ext4()


def fill():
    """Fill the tmpfs; returns the filler's path."""
    path = f"{env.state}/filler"
    with open(path, "wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass
    return path


class Locker:
    """Another writer: the sqlite3 CLI in BEGIN EXCLUSIVE until released."""

    def __init__(self):
        self.p = subprocess.Popen(["sqlite3", DB], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.p.stdin.write(".timeout 10000\nBEGIN EXCLUSIVE;\n"
                           "SELECT 'locked';\n")
        self.p.stdin.flush()
        self.locked = self.p.stdout.readline().strip() == "locked"

    def release(self):
        self.p.stdin.write("COMMIT;\n.quit\n")
        self.p.stdin.flush()
        self.p.wait(timeout=10)


def history_since(t):
    r = env.sactl("history", "--json")
    rows = json.loads(r.stdout)["rotations"] if r.returncode == 0 else []
    return [h for h in rows if h.get("at", 0) >= t]


FAULTS = ["full", "locked", "deleted"] + (["read-only"] if on_ext4 else [])
GENS_TOO = ("full", "read-only")  # faults that keep generations.db from being written too


def gens_fault_sample(model):
    """During a fault of generations.db: (ok, why) of one mid-second look at the SADB:
    the inbound SAs exactly the desired ones, each outbound SA of a recorded generation."""
    env.wait_mid_second()
    t = time.time()
    have = set(env.managed(env.dump()))
    want = model.desired(t)
    try:
        model.refresh()
    except Exception as e:  # noqa: BLE001 (the records unreadable: say so)
        return False, f"generations.db unreadable: {e}"
    if model.desired(time.time()) != want:
        return None, "change point"
    local = {link.local for link in links}
    have_in = {sa for sa in have if sa[1] not in local}
    want_in = {sa for sa in want if sa[1] not in local}
    outs = have - have_in
    bad_out = []
    for link in links:
        e = link.epoch(t)
        for sa in outs:
            if sa[0] >> 8 == link.prefix and (sa[0] != genmodel.spi(
                    link.prefix, e, model.out_gen(link, e) or 0) or model.out_gen(link, e) is None):
                bad_out.append(sa)
    if have_in != want_in or bad_out:
        return False, (f"inbound extra {len(have_in - want_in)} missing {len(want_in - have_in)}"
                       f"; outbound other than the current epoch's recorded one {bad_out[:2]}")
    return True, f"{len(outs)} outbound"
try:
    env.start()
    check(env.wait_log("ready:", 60), "sakeyd ready")
    time.sleep(2)
    model = genmodel.Model(env)
    for fault in FAULTS:
        mark = len(env.log_since())
        state = None
        if fault == "read-only":
            make_read_only()
        elif fault == "full":
            state = fill()
        elif fault == "locked":
            state = Locker()
            check(state.locked, "locked: sqlite3 holds BEGIN EXCLUSIVE")
        elif fault == "deleted":
            for suffix in ("", "-wal", "-shm"):
                try:
                    os.unlink(DB + suffix)
                except FileNotFoundError:
                    pass
        t_fault = time.time()
        exact = checks = 0
        why = []
        while time.time() < t_fault + HOLD:
            if fault in GENS_TOO:
                ok, what = gens_fault_sample(model)
                if ok is None:
                    continue
                if not ok:
                    why.append(what)
            else:
                ok, have, want, _ = genmodel.settled(env, model, tries=2)
            exact += ok
            checks += 1
            time.sleep(0.5)
        text = env.log_since()[mark:]
        alerted = "ALERT rotation-failed" in text and "SQLite ledger" in text
        print(f"     {fault}: {exact}/{checks} SADB checks as v2 wants during the fault {why[:2]}")
        if fault in GENS_TOO:
            check(checks >= 3 and exact == checks,
                  f"{fault}: inbound SAs as desired, no outbound SA of an unrecorded generation")
            check(re.search(r"ALERT rotation-failed .*recording generation [0-9]+ of epoch", text)
                  is not None,
                  f"{fault}: a rotation-failed alert says a generation could not be recorded")
        else:
            check(checks >= 3 and exact == checks,
                  f"{fault}: rotation goes on, the SADB equals the desired set")
        check(alerted, f"{fault}: a rotation-failed alert names the ledger")
        if fault == "read-only":
            check(repair(), "read-only: the file system repaired and mounted again")
        elif fault == "full":
            os.unlink(state)
        elif fault == "locked":
            state.release()
        t_clear = time.time()
        # A reopen during the fault may have succeeded for a moment (a full disk has
        # room for a few pages): what counts is one after the fault is cleared.
        # A deleted file has nothing to clear: the daemon makes a new one at its reopen.
        cleared = mark if fault == "deleted" else len(env.log_since())
        deadline = time.time() + 20
        back = False
        while not back and time.time() < deadline:
            time.sleep(0.2)
            back = "database works again" in env.log_since()[cleared:]
        check(back, f"{fault}: cleared, the daemon reopens the database")
        ok, have, want, _ = genmodel.settled(env, model, tries=8)
        if not ok:
            print(f"     extra {sorted(set(env.managed(have)) - want)[:3]} "
                  f"missing {sorted(want - set(env.managed(have)))[:3]}")
        check(ok, f"{fault}: cleared, the SADB equals the desired set again")
        agree, last = env.ledger_agrees()
        if not agree:
            print(f"     ledger {last[1] if last else None}\n     kernel {last[0] if last else None}")
        check(agree, f"{fault}: the ledger's live SAs equal the SADB again")
        time.sleep(2)
        recorded = history_since(int(t_clear) + 1)
        check(len(recorded) >= len(links),
              f"{fault}: rotations recorded again ({len(recorded)} since the fault cleared)")
    rows, wrong, _ = genmodel.ledger_wrong(env)
    print(f"     {rows} ledger rows checked against the key schedule; wrong: {wrong[:3]}")
    check(rows > 0 and not wrong, "every SA the ledger recorded matches the key schedule")
    rc, bad = env.stop()
    check(rc == 0 and not bad, f"SIGTERM: exit {rc}, no sanitizer report")
finally:
    env.close()
    subprocess.run(["umount", "-l", env.state], stderr=subprocess.DEVNULL)
    subprocess.run(["umount", "-l", env.state], stderr=subprocess.DEVNULL)
check.finish()
