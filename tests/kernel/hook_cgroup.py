#!/usr/bin/env python3
# SPDX-License-Identifier: ISC
"""alert_command hooks each in a cgroup of its own, in a delegated cgroup v2.

Runs as root in User-Mode Linux (uml-run.sh). Mounts cgroup2, makes a
cgroup marked as systemd marks a unit's with Delegate= (user.delegate and
trusted.delegate "1", src/core/cgroup.c: cgroup_delegate_xattr_apply) and
leaves in it a hook-7 cgroup with a process, as a crashed run would. Then
starts sakeyd (kernel = sim) inside it with an alert_command that:
- for rotation-failed (the simulator refuses the first ADD), starts a
  `setsid sleep` and a double-forked `setsid sleep`, then exits 0;
- for sa-too-old (max_sa_age = 3s), forks (no exec) until the kernel refuses
  (pids.max), leaves what it forked, and sleeps past the 10 s time limit.
Checks: the log line names cgroup containment; the daemon sits in its leaf;
each hook ran in hook-N of its own; the crashed run's hook-7 and its process
are gone; forks stop below pids.max; after the first hook's exit and the
second's timeout nothing of either runs, and each hook's cgroup is removed.
Then the rotation-failed part again with clone3 refused (ENOSYS, as
systemd's RestrictNamespaces= makes it): hooks are forked and join their
cgroup before exec.

usage: hook_cgroup.py SAKEYD OUTDIR [SACTL]
"""
import ctypes
import errno
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from checks import Checks  # noqa: E402
import proc  # noqa: E402
from proc import wait_for  # noqa: E402
from simconf import write_one_link  # noqa: E402

SAKEYD, OUTDIR = sys.argv[1:3]
PIDS_MAX = 64  # svc/daemon/hookcg.h: HOOKCG_PIDS_MAX
MNT = "/sys/fs/cgroup"
UNIT = "sakeyd.service"
CG = f"{MNT}/{UNIT}"
WORK = tempfile.mkdtemp(prefix="sakeyd-hookcg-")
MARK = f"SAKEYD_HOOKTEST={WORK}"
check = Checks()
os.makedirs(OUTDIR, exist_ok=True)

subprocess.run(["mount", "-t", "cgroup2", "cgroup2", MNT], check=True)
with open(f"{MNT}/cgroup.controllers") as f:
    check("pids" in f.read().split(), "the guest kernel has the pids controller")
with open(f"{MNT}/cgroup.subtree_control", "w") as f:
    f.write("+pids")
os.mkdir(CG)
os.setxattr(CG, "trusted.delegate", b"1")
try:
    os.setxattr(CG, "user.delegate", b"1")
except OSError as e:  # user xattrs on cgroupfs: Linux 5.7
    print(f"user.delegate: {e} (trusted.delegate only)")


def into(cgroup):
    """A preexec_fn: the child joins cgroup before it runs anything."""
    def join():
        with open(f"{cgroup}/cgroup.procs", "w") as f:
            f.write("0")
    return join


# What a crashed earlier run left: a hook's cgroup with a process in it.
os.mkdir(f"{CG}/hook-7")
stale = subprocess.Popen(["sleep", "4710"], preexec_fn=into(f"{CG}/hook-7"))


def marked():
    """Live processes whose environment holds this run's marker (MARK as it is now)."""
    return proc.marked(MARK)


def alive(pid):
    """Whether pid is a live process (not gone, not a zombie)."""
    stat = read(f"/proc/{pid}/stat")
    return bool(stat) and stat.rsplit(")", 1)[1].split()[0] != "Z"


def logged():
    with open(f"{WORK}/sakeyd.log") as f:
        return f.read()


def read(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return ""


def hook_cgroup(event):
    """The cgroup (relative to the mount) the hook for event ran in."""
    text = read(f"{WORK}/cg.{event}")
    return text[3:] if text.startswith("0::") else None


def hook_dirs():
    return sorted(d for d in os.listdir(CG) if d.startswith("hook-"))


def prepare():
    """The hook and the configuration in WORK; the configuration's path."""
    with open(f"{WORK}/hook", "w") as f:
        f.write(f"""#!/bin/sh
export {MARK}
mkdir {WORK}/once.$SAKEYD_EVENT 2>/dev/null || exit 0
cat /proc/self/cgroup > {WORK}/cg.$SAKEYD_EVENT
case "$SAKEYD_EVENT" in
rotation-failed)
	setsid sh -c 'echo $$ > {WORK}/rf1; exec sleep 4711' &
	( setsid sh -c 'echo $$ > {WORK}/rf2; exec sleep 4712' & )
	while [ ! -s {WORK}/rf1 ] || [ ! -s {WORK}/rf2 ]; do sleep 0.01; done
	exit 0 ;;
sa-too-old)
	# Forks without exec (cheap even in UML), each blocked on a FIFO, until refused.
	mkfifo {WORK}/fifo
	( while :; do ( read x < {WORK}/fifo ) & echo $! >> {WORK}/forks; done ) 2> {WORK}/forks.err
	echo done > {WORK}/forked
	sleep 4713 ;;
esac
""")
    os.chmod(f"{WORK}/hook", 0o700)
    return write_one_link(WORK, daemon_extra=f"alert_command = {WORK}/hook\n"
                          "max_sa_age = 3s\nrefresh_interval = 1s\n")


CONF = prepare()
log = open(f"{WORK}/sakeyd.log", "w")
daemon = subprocess.Popen([SAKEYD, "-c", CONF, "-v"], stdout=log, stderr=log,
                          preexec_fn=into(CG),
                          env=dict(os.environ, SAKEYD_SIM_FAIL="3:105:1"))
try:
    check(wait_for(lambda: "alert_command containment: cgroup" in logged(), 20),
          "the daemon logged that it contains hooks in cgroups")
    line = [x for x in logged().splitlines() if "alert_command containment" in x]
    print("  " + (line[0] if line else "(no containment line)"))
    check(line and f"pids.max {PIDS_MAX}" in line[0], "the line names pids.max")
    check(read(f"/proc/{daemon.pid}/cgroup") == f"0::/{UNIT}/daemon",
          f"the daemon moved to its leaf ({read(f'/proc/{daemon.pid}/cgroup')})")
    check(read(f"{CG}/cgroup.procs") == "", "no process left in the delegated cgroup itself")
    check("pids" in read(f"{CG}/cgroup.subtree_control").split(),
          "pids enabled for the hooks' cgroups")
    # The crashed run's hook-7: killed, removed.
    try:
        code = stale.wait(timeout=10)
    except subprocess.TimeoutExpired:
        code = None
    check(code == -signal.SIGKILL, f"the process in a crashed run's hook-7 was killed ({code})")
    check(wait_for(lambda: not os.path.exists(f"{CG}/hook-7"), 5),
          "the crashed run's hook-7 cgroup was removed")

    # 1. setsid sleep &, a double fork, exit 0: its cgroup goes with all of it.
    check(wait_for(lambda: read(f"{WORK}/rf2"), 20),
          "the rotation-failed hook ran and left two sleepers")
    rf = hook_cgroup("rotation-failed")
    check(rf is not None and re.fullmatch(f"/{UNIT}/hook-[0-9]+", rf) is not None,
          f"the rotation-failed hook ran in a hook cgroup of its own ({rf})")
    check(wait_for(lambda: "rotation-failed: killed 2 processes it left behind" in logged(), 10),
          "the daemon logged that it killed the 2 processes the hook left")
    for name in ("rf1", "rf2"):
        pid = int(read(f"{WORK}/{name}"))
        check(wait_for(lambda: not alive(pid), 5),
              f"the sleeper {name} (pid {pid}) is dead")
    check(rf and wait_for(lambda: not os.path.exists(MNT + rf), 5),
          f"the rotation-failed hook's cgroup {rf} was removed")

    # 2. Forks past pids.max, then the hook itself past the time limit.
    check(wait_for(lambda: read(f"{WORK}/forked"), 30), "the sa-too-old hook forked")
    toold = hook_cgroup("sa-too-old")
    check(toold is not None and toold != rf and
          re.fullmatch(f"/{UNIT}/hook-[0-9]+", toold) is not None,
          f"the sa-too-old hook ran in another hook cgroup ({toold})")
    forked = len(read(f"{WORK}/forks").split())
    check("Cannot fork" in read(f"{WORK}/forks.err"),
          f"fork was refused ({read(f'{WORK}/forks.err')!r})")
    check(0 < forked < PIDS_MAX, f"the hook forked {forked} processes, fewer than {PIDS_MAX}")
    # (Forks that did not exec keep the environment of the hook's exec: no marker.)
    held = read(f"{MNT}{toold}/cgroup.procs").split() if toold else []
    check(len(held) > forked, f"they run in its cgroup, with the hook ({len(held)})")
    check(wait_for(lambda: "sa-too-old: still running after 10000 ms: killed" in logged(), 20),
          "the sa-too-old hook was killed at its time limit")
    killed = re.compile(r"sa-too-old: killed (\d+) process")
    check(wait_for(lambda: killed.search(logged()), 10), "the daemon logged what it killed")
    m = killed.search(logged())
    check(m and int(m.group(1)) >= forked,
          f"the daemon counted what it left ({m.group(1) if m else None} >= {forked})")
    check(wait_for(lambda: not marked(), 10), f"nothing of either hook is left ({marked()})")
    pids = [int(p) for p in read(f"{WORK}/forks").split()]
    check(wait_for(lambda: not [p for p in pids if alive(p)], 10),
          f"none of the {forked} forks is left ({[p for p in pids if alive(p)]})")
    check(toold and wait_for(lambda: not os.path.exists(MNT + toold), 5),
          f"the sa-too-old hook's cgroup {toold} was removed")
    check(wait_for(lambda: not hook_dirs(), 10), f"no hook cgroup is left ({hook_dirs()})")
    check(daemon.poll() is None, "the daemon is still running")
finally:
    daemon.send_signal(signal.SIGTERM)
    try:
        code = daemon.wait(timeout=10)
    except subprocess.TimeoutExpired:
        daemon.kill()
        code = daemon.wait()
    for pid in marked():
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    if stale.poll() is None:
        stale.kill()
    log.close()
    shutil.copy(f"{WORK}/sakeyd.log", f"{OUTDIR}/sakeyd.log")
check(code == 0, "SIGTERM: clean exit 0")
shutil.rmtree(WORK, ignore_errors=True)


def refuse_clone3():
    """A preexec_fn: join CG, then clone3 says ENOSYS, as systemd's RestrictNamespaces= makes it."""
    into(CG)()
    # struct sock_filter {u16 code; u8 jt, jf; u32 k}: syscall nr == clone3 ? ERRNO(ENOSYS) : ALLOW.
    prog = [(0x20, 0, 0, 0), (0x15, 0, 1, 435), (0x06, 0, 0, 0x00050000 | errno.ENOSYS),
            (0x06, 0, 0, 0x7fff0000)]
    code = ctypes.create_string_buffer(b"".join(struct.pack("HBBI", *i) for i in prog))

    class Fprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]
    fprog = Fprog(len(prog), ctypes.addressof(code))
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(38, 1, 0, 0, 0) or libc.prctl(22, 2, ctypes.byref(fprog), 0, 0):
        os.write(2, b"seccomp: %d\n" % ctypes.get_errno())
        os._exit(99)


# 3. Where clone3 is refused: forked, the hook joins its cgroup before exec. A fresh
# unit cgroup, as systemd makes one at each start.
UNIT = "sakeyd-noclone3.service"
CG = f"{MNT}/{UNIT}"
os.mkdir(CG)
os.setxattr(CG, "trusted.delegate", b"1")
WORK = tempfile.mkdtemp(prefix="sakeyd-hookcg-")
MARK = f"SAKEYD_HOOKTEST={WORK}"
CONF = prepare()
log = open(f"{WORK}/sakeyd.log", "w")
daemon = subprocess.Popen([SAKEYD, "-c", CONF, "-v"], stdout=log, stderr=log,
                          preexec_fn=refuse_clone3,
                          env=dict(os.environ, SAKEYD_SIM_FAIL="3:105:1"))
try:
    check(wait_for(lambda: "by fork, joining it before exec" in logged(), 20),
          "clone3 refused: the daemon logged that hooks join their cgroup before exec")
    check(wait_for(lambda: read(f"{WORK}/rf2"), 20),
          "the rotation-failed hook ran and left two sleepers")
    rf = hook_cgroup("rotation-failed")
    check(rf is not None and re.fullmatch(f"/{UNIT}/hook-[0-9]+", rf) is not None,
          f"it ran in a hook cgroup of its own ({rf})")
    check(wait_for(lambda: "rotation-failed: killed 2 processes it left behind" in logged(), 10),
          "the daemon logged that it killed the 2 processes the hook left")
    check(wait_for(lambda: not marked(), 10), f"nothing of the hook is left ({marked()})")
    check(rf and wait_for(lambda: not os.path.exists(MNT + rf), 5),
          f"its cgroup {rf} was removed")
    check(daemon.poll() is None, "the daemon is still running")
finally:
    daemon.send_signal(signal.SIGTERM)
    try:
        code = daemon.wait(timeout=10)
    except subprocess.TimeoutExpired:
        daemon.kill()
        code = daemon.wait()
    for pid in marked():
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    log.close()
    shutil.copy(f"{WORK}/sakeyd.log", f"{OUTDIR}/sakeyd-noclone3.log")
check(code == 0, "SIGTERM: clean exit 0")
shutil.rmtree(WORK, ignore_errors=True)
check.finish()
