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

SAKEYD, SACTL, LOGDIR = sys.argv[1:4]
WORK = tempfile.mkdtemp(prefix="sakeyd-sigpipe-")
failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        failures.append(what)


os.makedirs(LOGDIR, exist_ok=True)
out = subprocess.run([SAKEYD, "--version"], capture_output=True, text=True, timeout=10)
check(out.returncode == 0 and out.stdout.startswith("sakeyd ") and
      len(out.stdout.split()) == 2, "sakeyd --version: %r" % out.stdout.strip())
version = out.stdout.split()[1] if out.returncode == 0 else "?"

fd = os.open(f"{WORK}/l.key", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
os.write(fd, (os.urandom(32).hex() + "\n").encode())
os.close(fd)
CONF = f"{WORK}/sakeyd.conf"
with open(CONF, "w") as f:
    f.write(f"""[daemon]
kernel = sim
state_dir = {WORK}/state
control_socket = {WORK}/control.sock

[link l1]
local = 192.0.2.1
remote = 192.0.2.2
secret_file = {WORK}/l.key
rotate_every = 1h
""")

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
print("%d failure(s)" % len(failures))
sys.exit(1 if failures else 0)
