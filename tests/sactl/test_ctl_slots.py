#!/usr/bin/env python3
# SPDX-License-Identifier: ISC
"""Root's sactl reload gets through while another user floods the control socket.

sakeyd runs on the simulated SADB; its control socket is put in group 65534,
as an operator gives a monitoring group read access. A process of uid 65534
(nobody) holds 40 idle connections for 12 s and reconnects every one the
daemon closes (refused at once, or idle past the timeout): what issue #20
item 3 measured (root's reload failed 5 times in 5; 26,206 warnings in 12 s).
Now:
- root's `sactl reload`, 5 times during the flood: all succeed;
- nobody's connections are refused with the reason, and those it is given
  are closed after the idle timeout (2 s);
- nobody's own `sactl reload` is refused with a reason and a non-zero exit
  status, not killed by SIGPIPE;
- the daemon's log has at most one refusal line per uid per 10 s, and
  their counts add up to the refusals the flooder saw.

usage: test_ctl_slots.py SAKEYD SACTL OUTDIR
"""
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from checks import Checks  # noqa: E402
from simconf import write_one_link  # noqa: E402

NOBODY = 65534
HOGS = 40
FLOOD_S = 12


def hog(path, n, seconds, out):
    """Keeps n connections open to path for seconds, reconnecting each one that
    the daemon closes; writes "ready HELD" to the file out once the first n are
    decided, then a JSON line of what the answers were."""
    stats = {"connects": 0, "busy": 0, "timeout": 0, "other": 0, "busy_text": ""}
    conns = {}
    poller = select.poll()

    def connect():
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(path)
        s.setblocking(False)
        stats["connects"] += 1
        conns[s.fileno()] = [s, b""]
        poller.register(s.fileno(), select.POLLIN)

    def answered(fd):
        s, buf = conns.pop(fd)
        poller.unregister(fd)
        s.close()
        line = buf.decode(errors="replace")
        if line.startswith("error busy: "):
            stats["busy"] += 1
            stats["busy_text"] = line.strip()
        elif line.startswith("error timeout: "):
            stats["timeout"] += 1
        else:
            stats["other"] += 1

    for _ in range(n):
        connect()
    # The daemon accepts in order: once this one is answered, the n are decided.
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as b:
        b.connect(path)
        b.settimeout(10)
        while b.recv(1024):
            pass
    answered_now = {fd for fd, _ in poller.poll(0)}
    held = sum(1 for fd in conns if fd not in answered_now)
    out.write("ready %d\n" % held)
    out.flush()
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for fd, _ in poller.poll(100):
            if fd not in conns:
                continue
            try:
                data = conns[fd][0].recv(1024)
            except (ConnectionResetError, BlockingIOError):
                data = b""
            if data:
                conns[fd][1] += data
                continue
            answered(fd)
            connect()
    for fd in list(conns):
        conns[fd][0].close()
    out.write(json.dumps(stats) + "\n")
    out.flush()


def start_hog(path, n, seconds):
    """Runs hog() in a child of uid and gid 65534; returns (pid, its output)."""
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(rfd)
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            hog(path, n, seconds, os.fdopen(wfd, "w"))
            code = 0
        finally:
            os._exit(code)
    os.close(wfd)
    return pid, os.fdopen(rfd)


def main():
    sakeyd, sactl, out = sys.argv[1:4]
    if os.geteuid() != 0:
        print("SKIP: runs a client as uid %d, needs root" % NOBODY)
        sys.exit(77)
    check = Checks()
    os.makedirs(out, exist_ok=True)
    work = tempfile.mkdtemp(prefix="sakeyd-slots-")
    # nobody reaches the socket through the directory (x) and the socket's group.
    os.chmod(work, 0o711)
    conf = write_one_link(work)
    os.chmod(conf, 0o644)
    sock = f"{work}/control.sock"
    logpath = f"{out}/sakeyd.log"
    log = open(logpath, "wb")
    daemon = subprocess.Popen([sakeyd, "-c", conf], stdin=subprocess.DEVNULL,
                              stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and daemon.poll() is None:
            with open(logpath, "rb") as f:
                if b"ready:" in f.read():
                    break
            time.sleep(0.05)
        if check(daemon.poll() is None and os.path.exists(sock), "the daemon is ready"):
            # As an operator gives a group access: chgrp; the socket is mode 0660.
            os.chown(sock, 0, NOBODY)
            run(check, daemon, log, logpath, conf, sock, sactl)
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
        log.close()
        shutil.rmtree(work, ignore_errors=True)
    check.finish()


def run(check, daemon, log, logpath, conf, sock, sactl):
    t0 = time.monotonic()
    flooder, flooder_out = start_hog(sock, HOGS, FLOOD_S)
    ready = flooder_out.readline().split()
    check(ready[:1] == ["ready"], "uid %d opened %d idle connections" % (NOBODY, HOGS))
    held = int(ready[1]) if len(ready) == 2 else -1
    check(held == 4, "uid %d holds 4 of them, its limit (%d)" % (NOBODY, held))

    # Root, during the flood.
    ok = 0
    for i in range(5):
        r = subprocess.run([sactl, "-c", conf, "reload"], capture_output=True, text=True,
                           timeout=60)
        print("  root's sactl reload %d: exit %d: %s" % (i + 1, r.returncode,
                                                        (r.stdout + r.stderr).strip()))
        ok += r.returncode == 0 and r.stdout.startswith("reloaded")
    check(ok == 5, "root's sactl reload succeeded %d times of 5 during the flood" % ok)

    # nobody's own sactl: refused with a reason, not killed by a signal.
    try:
        r = subprocess.run([sactl, "-c", conf, "reload"], capture_output=True, text=True,
                           timeout=60, user=NOBODY, group=NOBODY, extra_groups=[])
        print("  nobody's sactl reload: exit %d: %s" % (r.returncode, r.stderr.strip()))
        check(r.returncode == 1 and
              "busy: uid 65534 already has 4 control connections open" in r.stderr,
              "nobody's sactl reload exits 1 with the daemon's reason (no SIGPIPE)")
    except PermissionError:
        print("  note: uid %d cannot run %s (its directory is closed); not tried" %
              (NOBODY, sactl))

    stats = json.loads(flooder_out.readline() or "{}")
    os.waitpid(flooder, 0)
    elapsed = time.monotonic() - t0
    print("  flooder:", stats)
    check(stats.get("busy", 0) >= 100,
          "the flood was refused many times (%d refusals, %d connects in %.0f s)" %
          (stats.get("busy", 0), stats.get("connects", 0), elapsed))
    check(stats.get("busy_text", "").startswith(
        "error busy: uid 65534 already has 4 control connections open (the limit per user)"),
          "a refused connection is told why: %r" % stats.get("busy_text"))
    check(stats.get("timeout", 0) >= 4,
          "idle connections are closed after the timeout (%d)" % stats.get("timeout", 0))
    check(stats.get("other", 1) == 0, "no other answer (%d)" % stats.get("other", -1))

    daemon.send_signal(signal.SIGTERM)
    rc = daemon.wait(timeout=60)
    check(rc == 0, "the daemon stops cleanly (exit %d)" % rc)

    text = open(logpath, errors="replace").read()
    warnings = [l for l in text.splitlines() if "[warning]" in l or "[error]" in l]
    refusal_lines = [l for l in warnings if "of uid %d" % NOBODY in l and "refused" in l]
    counted = 0
    for line in refusal_lines:
        m = re.search(r"refused (\d+) control connections? of uid %d in " % NOBODY, line)
        counted += int(m.group(1)) if m else 1
    most = 2 + int(elapsed // 10)
    print("  %d warning lines; refusals of uid %d: %d lines, %d counted" %
          (len(warnings), NOBODY, len(refusal_lines), counted))
    for line in refusal_lines:
        print("    " + line)
    check(1 <= len(refusal_lines) <= most,
          "at most one refusal line per 10 s (%d lines in %.0f s, at most %d)" %
          (len(refusal_lines), elapsed, most))
    # Its last connections may be refused after it stopped counting: >=; and at most all it
    # made, with its barrier and its sactl.
    check(stats.get("busy", 0) <= counted <= stats.get("connects", 0) + 2,
          "their counts add up to what the flooder saw (%d logged, %d seen)" %
          (counted, stats.get("busy", 0)))
    # Start-up may warn (a new state directory, ...); nothing else about connections.
    per_conn = [l for l in warnings if "connection" in l and l not in refusal_lines]
    check(not per_conn, "no other warning about control connections (%d: %s)" %
          (len(per_conn), per_conn[:2]))


if __name__ == "__main__":
    main()
