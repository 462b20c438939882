#!/usr/bin/env python3
# SPDX-License-Identifier: ISC
"""The daemon outlives the reader of its log (SIGPIPE), and says its version.

sakeyd on the simulated SADB logs to a pipe; the test reads it until the
daemon is ready, then closes the pipe's read end and makes the daemon log
(sactl reconcile, a reload). A write to a pipe with no reader raises SIGPIPE,
which killed the daemon (exit by signal 13); it must now go on serving and
stop cleanly (exit 0) on SIGTERM.

usage: sigpipe.py SAKEYD SACTL LOGDIR
"""
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from checks import Checks  # noqa: E402
from simconf import write_one_link  # noqa: E402

SAKEYD, SACTL, LOGDIR = sys.argv[1:4]
WORK = tempfile.mkdtemp(prefix="sakeyd-sigpipe-")
check = Checks()

os.makedirs(LOGDIR, exist_ok=True)
out = subprocess.run([SAKEYD, "--version"], capture_output=True, text=True, timeout=10)
check(out.returncode == 0 and out.stdout.startswith("sakeyd ") and
      len(out.stdout.split()) == 2, "sakeyd --version: %r" % out.stdout.strip())
version = out.stdout.split()[1] if out.returncode == 0 else "?"

CONF = write_one_link(WORK)

proc = subprocess.Popen([SAKEYD, "-c", CONF, "-v"], stdin=subprocess.DEVNULL,
                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
log = b""
deadline = time.monotonic() + 60
while b"ready:" not in log and time.monotonic() < deadline and proc.poll() is None:
    r, _, _ = select.select([proc.stderr], [], [], 0.5)
    if r:
        chunk = os.read(proc.stderr.fileno(), 65536)
        if not chunk:
            break
        log += chunk
with open(f"{LOGDIR}/sakeyd.log", "wb") as f:
    f.write(log)
check(b"ready:" in log, "the daemon started and reconciled")
check(("sakeyd %s started:" % version).encode() in log,
      "the start-up line names the version (%s)" % version)

# Nobody reads the log any more: every line the daemon writes now meets EPIPE.
proc.stderr.close()
for cmd in (["reconcile"], ["reload"], ["reconcile"]):
    r = subprocess.run([SACTL, "-c", CONF] + cmd, capture_output=True, text=True, timeout=30)
    check(r.returncode == 0, "sactl %s with the log's reader gone: %s" %
          (cmd[0], (r.stdout + r.stderr).strip()))
time.sleep(0.5)
check(proc.poll() is None, "the daemon still runs (exit status %s)" % proc.returncode)
r = subprocess.run([SACTL, "-c", CONF, "status"], capture_output=True, text=True, timeout=30)
check(r.returncode == 0, "sactl status answers")
if proc.poll() is None:
    proc.send_signal(signal.SIGTERM)
try:
    rc = proc.wait(timeout=30)
except subprocess.TimeoutExpired:
    proc.kill()
    rc = proc.wait()
check(rc == 0, "SIGTERM stops it cleanly (exit status %d; -13 is SIGPIPE)" % rc)

shutil.rmtree(WORK, ignore_errors=True)
check.finish()
