#!/usr/bin/env python3
# SPDX-License-Identifier: ISC
"""OpenSSL's secure heap holds every link's secret, a reload's too (#20 item 1).

1. sakeyd --check accepts 33,000 and 65,536 links (the configuration's
   limit), each with its own secret file: the heap was 1 MiB, 32,768 secrets.
2. The daemon on the simulated SADB with LINKS links loads them, installs
   every link's SAs without a rotation-failed alert, and `sactl reload` of the
   unchanged file succeeds: both copies of the secrets fit.
3. A heap made too small (SAKEYD_SIM_SECURE_HEAP, read with kernel = sim
   only) to derive any key: every ADD fails with ENOMEM, and a pass raises at
   most FAIL_ALERTS_MAX (3) rotation-failed alerts one by one plus one summary
   with the count, whose reason names the full secure heap.

usage: secheap.py SAKEYD SACTL LOGDIR [LINKS]
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from checks import Checks  # noqa: E402
from keysched import spi_prefix  # noqa: E402

SAKEYD, SACTL, LOGDIR = sys.argv[1:4]
LINKS = int(sys.argv[4]) if len(sys.argv) > 4 else 20000
check = Checks()
os.makedirs(LOGDIR, exist_ok=True)


def write_conf(work, n, period="1h", extra=""):
    """n links, each with its own secret file (random keys of distinct SPI prefixes)."""
    keys = f"{work}/keys"
    os.makedirs(keys, mode=0o700)
    parts = [f"""[daemon]
kernel = sim
state_dir = {work}/state
control_socket = {work}/control.sock
{extra}
"""]
    prefixes = set()
    for i in range(n):
        path = f"{keys}/{i}.key"
        while True:  # 24-bit SPI prefixes: 33,000 random ones collide about 30 times
            secret = os.urandom(32)
            if spi_prefix(secret) not in prefixes:
                break
        prefixes.add(spi_prefix(secret))
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, (secret.hex() + "\n").encode())
        os.close(fd)
        parts.append(f"[link l{i}]\nlocal = 10.{i >> 16}.{(i >> 8) & 255}.{i & 255}\n"
                     f"remote = 192.0.2.1\nsecret_file = {path}\nrotate_every = {period}\n")
    conf = f"{work}/sakeyd.conf"
    with open(conf, "w") as f:
        f.write("\n".join(parts))
    return conf


def run_check(n):
    work = tempfile.mkdtemp(prefix="sakeyd-secheap-")
    try:
        conf = write_conf(work, n)
        t0 = time.time()
        r = subprocess.run([SAKEYD, "--check", "-c", conf], capture_output=True, text=True,
                           timeout=300)
        out = r.stdout + r.stderr
        with open(f"{LOGDIR}/check-{n}.log", "w") as f:
            f.write(out)
        print(f"     --check of {n} links: exit {r.returncode} in {time.time() - t0:.1f} s")
        check(r.returncode == 0 and f"configuration OK ({n} links)" in out,
              f"sakeyd --check accepts {n} links: {out.strip()[-300:]}")
        check("Cannot allocate memory" not in out and "no room" not in out,
              f"--check of {n} links: no secret refused for want of room")
    finally:
        shutil.rmtree(work, ignore_errors=True)


class Daemon:
    def __init__(self, work, conf, env=None):
        self.logpath = f"{work}/sakeyd.log"
        self.log = open(self.logpath, "w")
        self.proc = subprocess.Popen([SAKEYD, "-c", conf], stdout=self.log, stderr=self.log,
                                     env=env)

    def text(self):
        with open(self.logpath, errors="replace") as f:
            return f.read()

    def wait(self, needle, timeout):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if needle in self.text() or self.proc.poll() is not None:
                break
            time.sleep(0.2)
        return needle in self.text()

    def stop(self):
        self.proc.terminate()
        try:
            rc = self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self.log.close()
        return rc


def run_daemon(n):
    work = tempfile.mkdtemp(prefix="sakeyd-secheap-")
    d = None
    try:
        conf = write_conf(work, n)
        t0 = time.time()
        d = Daemon(work, conf)
        ready = d.wait("ready:", 240)
        print(f"     daemon with {n} links: ready after {time.time() - t0:.1f} s")
        text = d.text()
        m = re.search(r"ready: (\d+) SAs in the kernel", text)
        sas = int(m.group(1)) if m else 0
        check(ready and sas >= 2 * n, f"the daemon with {n} links is ready with every link's "
                                      f"SAs installed ({sas} SAs)")
        check("rotation-failed" not in text and "Cannot allocate memory" not in text,
              f"{n} links: no rotation-failed alert, no ENOMEM")
        r = subprocess.run([SACTL, "-c", conf, "reload"], capture_output=True, text=True,
                           timeout=120)
        ok = d.wait(f"reloaded: {n} links", 120)
        text = d.text()
        print(f"     sactl reload: exit {r.returncode}: {(r.stdout + r.stderr).strip()[:200]}")
        check(r.returncode == 0 and ok and "reload refused" not in text,
              f"sactl reload of the unchanged file with {n} links succeeds")
        check("no room" not in text and "Cannot allocate memory" not in text,
              "the reload found room for every secret")
        check(d.stop() == 0, "the daemon stops cleanly")
    finally:
        if d:
            shutil.copy(d.logpath, f"{LOGDIR}/daemon-{n}.log")
            if d.proc.poll() is None:
                d.proc.kill()
        shutil.rmtree(work, ignore_errors=True)


def run_exhausted():
    """64 links, a 2 KiB heap: the 64 secrets fill it, no key can be derived."""
    work = tempfile.mkdtemp(prefix="sakeyd-secheap-")
    d = None
    try:
        conf = write_conf(work, 64)
        env = dict(os.environ, SAKEYD_SIM_SECURE_HEAP="2048")
        d = Daemon(work, conf, env)
        summary = d.wait("more SA requests failed in this pass", 30)
        time.sleep(2)  # the retries' passes (backoff 1 s, 2 s)
        text = d.text()
        alerts = text.count("ALERT rotation-failed")
        summaries = text.count("more SA requests failed in this pass")
        # Judged per finished pass. Every pass here fails every add, so each ends with its
        # summary (raised as the pass finishes): the log is cut after each summary, and what
        # follows the last one (a pass in progress when the text was read, its first alerts
        # logged and its summary not yet) is left out.
        marker = "more SA requests failed in this pass"
        segments = text.split(marker)[:-1]
        per_pass = [seg.count("ALERT rotation-failed") for seg in segments]
        passes = len(per_pass)
        worst = max(per_pass, default=0)
        print(f"     exhausted heap: {alerts} rotation-failed alerts, {summaries} summaries; "
              f"alerts in each finished pass, its summary included: {per_pass}")
        check(summary, "a pass whose adds all fail raises one summarised rotation-failed alert")
        m = re.search(r"(\d+) more SA requests failed in this pass, on (\d+) more links", text)
        check(m and int(m.group(1)) >= 64 * 16 - 3 and int(m.group(2)) >= 60,
              f"the summary counts the pass's other failures and links "
              f"({m.group(0) if m else 'none'})")
        check(passes >= 1 and worst <= 4,
              f"at most 3 alerts one by one and one summary per pass (at most {worst} alerts "
              f"in one of {passes} finished passes), not one per SA")
        check("OpenSSL's secure heap is exhausted" in text and "2 KiB" in text,
              "the ENOMEM names its cause: the secure heap, its use and size")
        d.stop()
    finally:
        if d:
            shutil.copy(d.logpath, f"{LOGDIR}/exhausted.log")
            if d.proc.poll() is None:
                d.proc.kill()
        shutil.rmtree(work, ignore_errors=True)


run_check(33000)
run_check(65536)
run_daemon(LINKS)
run_exhausted()
check.finish()
