#!/usr/bin/env python3
# SPDX-License-Identifier: ISC
"""What a fresh start asks of the file system, counted with strace (#22).

In User-Mode Linux every system call costs ~50 us, so start-up's cost is
counted in system calls per link and per SA, not timed (a busy machine would
make any time meaningless). N links, their secret files in one directory,
the in-process simulated SADB, a new state directory: the first pass adds
N outbound SAs and 16N inbound ones (key schedule v2, no records).

- Secret files: the directories above them are walked once for the load
  (conf/trust.c's memo), not once per file: fewer readlink calls (realpath)
  than links. It was one per path component per file.
- generations.db: an inbound SA with no replay row of its epoch is answered
  from memory (svc/daemon/genbook.c); the file is checked once per pass, not
  once per SA: fewer stat calls on it than links. It was one per inbound SA.

Both checks are still as strict: the checks of every secret file (type,
owner, mode, links, file system, that its real path still names it) run per
file; tests/unit/test_trust.c and test_secret.c hold the refusals.

usage: startup_cost.py SAKEYD SACTL LOGDIR
"""
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from checks import Checks  # noqa: E402
from keysched import write_secret  # noqa: E402

SAKEYD, SACTL, LOGDIR = sys.argv[1:4]
N = 40
check = Checks()
os.makedirs(LOGDIR, exist_ok=True)
if not shutil.which("strace"):
    check(False, "strace is installed (scripts/deps.sh)")
    check.finish()

WORK = tempfile.mkdtemp(prefix="sakeyd-startcost-")
os.makedirs(f"{WORK}/keys", mode=0o700)
conf = f"{WORK}/sakeyd.conf"
text = f"""[daemon]
kernel = sim
state_dir = {WORK}/state
control_socket = {WORK}/control.sock
"""
# The middle of every link's epoch: no next or previous inbound epoch in the first pass.
PHASE = (int(time.time()) + 1800) % 3600
for i in range(N):
    write_secret(f"{WORK}/keys/l{i}.key", os.urandom(32))
    text += f"""
[link l{i}]
local = 192.0.2.1
remote = 198.51.{100 + i // 250}.{1 + i % 250}
secret_file = {WORK}/keys/l{i}.key
spi_prefix = {0x1000 + i:#x}
rotate_every = 1h
phase = {PHASE}s
"""
with open(conf, "w") as f:
    f.write(text)

trace = f"{LOGDIR}/strace.txt"
log_path = f"{LOGDIR}/sakeyd.log"
# LeakSanitizer stops the world with ptrace, which strace holds: off for this run.
env = dict(os.environ, ASAN_OPTIONS="detect_leaks=0")
with open(log_path, "w") as log:
    proc = subprocess.Popen(["strace", "-f", "-qq", "-s", "4096", "-o", trace, "-e",
                             "trace=readlink,readlinkat,%%stat", SAKEYD, "-c", conf, "-v"],
                            stdout=log, stderr=log, env=env)
    deadline = time.monotonic() + 120
    ready = False
    while time.monotonic() < deadline and proc.poll() is None:
        with open(log_path, errors="replace") as f:
            if "ready:" in f.read():
                ready = True
                break
        time.sleep(0.1)
    check(ready, f"the daemon started {N} links and reconciled under strace")
    # strace's child is the daemon: stop it, strace exits with it.
    try:
        with open(f"/proc/{proc.pid}/task/{proc.pid}/children") as f:
            kids = [int(p) for p in f.read().split()]
    except OSError:
        kids = []
    for pid in kids:
        os.kill(pid, signal.SIGTERM)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()

with open(log_path, errors="replace") as f:
    m = re.search(r"reconcile pass: (\d+) added", f.read())
check(m is not None and int(m.group(1)) == 17 * N,
      f"the first pass added {17 * N} SAs (N outbound, 16N inbound): {m and m.group(0)}")
with open(trace, errors="replace") as f:
    calls = f.read().splitlines()
readlinks = [c for c in calls if re.search(r"\breadlink(at)?\(", c)]
lstats = [c for c in calls if f'"{WORK}/keys' in c and
          (re.search(r"\blstat\(", c) or "AT_SYMLINK_NOFOLLOW" in c)]
gens_stats = [c for c in calls if re.search(r"stat[a-z0-9]*\(.*/generations\.db\"", c)]
print(f"readlink: {len(readlinks)}; lstat in the key directory: {len(lstats)}; "
      f"stat of generations.db: {len(gens_stats)}")
check(len(readlinks) < N,
      f"the secret files' directories are resolved once, not per file: {len(readlinks)} "
      f"readlink calls for {N} files (one per path component per file before)")
# Per file the lstat of its real path (it must still name the open file); the walk up to /
# is shared. Before: one more per directory above it per file (here: of the key directory).
check(len(lstats) <= N + 2,
      f"{len(lstats)} lstat calls naming the key directory or a file in it, for {N} secret "
      f"files (<= N + 2: one each, and one walk)")
check(len(gens_stats) < N,
      f"generations.db is checked per pass, not per inbound SA: {len(gens_stats)} stat calls "
      f"for {16 * N} inbound adds")

shutil.rmtree(WORK, ignore_errors=True)
check.finish()
