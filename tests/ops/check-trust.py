#!/usr/bin/env python3
# SPDX-License-Identifier: ISC
"""Who may change what sakeyd reads and runs (#20 item 5): sakeyd --check,
start-up and reload refuse an untrusted config file, alert_command,
state_dir or secret, each refusal at its location with its fix, all at once.

Each case writes a fresh configuration (kernel = sim) in its own
directory, spoils one thing, and runs sakeyd --check. A secret on overlayfs
is checked in a private mount namespace (unshare -m). Then a running
daemon: a reload after its alert_command turned group-writable is refused
and the daemon goes on; fixed, the next reload applies. Needs root (it
chowns files to nobody, as CI does).

usage: check-trust.py SAKEYD
"""
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from checks import Checks  # noqa: E402
from keysched import write_secret  # noqa: E402

SAKEYD = sys.argv[1]
NOBODY = 65534
check = Checks()
works = []

if os.geteuid() != 0:
    print("SKIP: needs root (files are chowned to nobody)")
    sys.exit(77)


def setup(etc_sub=False):
    """A directory with a good config (alert_command on line 5), hook, secret."""
    work = tempfile.mkdtemp(prefix="sakeyd-trust-")
    works.append(work)
    etc = f"{work}/etc" if etc_sub else work
    os.makedirs(etc, exist_ok=True)
    write_secret(f"{work}/l.key", os.urandom(32))
    with open(f"{work}/hook", "w") as f:
        f.write("#!/bin/sh\nexit 0\n")
    os.chmod(f"{work}/hook", 0o755)
    conf = f"{etc}/sakeyd.conf"
    with open(conf, "w") as f:
        f.write(f"""[daemon]
kernel = sim
state_dir = {work}/state
control_socket = {work}/control.sock
alert_command = {work}/hook
[link l1]
local = 192.0.2.1
remote = 192.0.2.2
secret_file = {work}/l.key
rotate_every = 1h
""")
    os.chmod(conf, 0o644)
    return work, conf


def run_check(conf, prefix=()):
    p = subprocess.run(list(prefix) + [SAKEYD, "--check", "-c", conf], capture_output=True,
                       text=True, timeout=30)
    return p.returncode, p.stdout + p.stderr


def refused(what, conf, *phrases, prefix=()):
    """sakeyd --check exits 1 and its output has every phrase."""
    rc, out = run_check(conf, prefix)
    missing = [p for p in phrases if p not in out]
    if not check(rc == 1 and not missing and "configuration refused" in out,
                 f"{what}: refused with {phrases}"):
        print(f"     exit {rc}, missing {missing}; output:\n{out}")
    return out


work, conf = setup()
rc, out = run_check(conf)
if not check(rc == 0 and "configuration OK" in out, "a good configuration passes --check"):
    print(out)

# The config file itself.
work, conf = setup()
os.chmod(conf, 0o666)
refused("a world-writable config", conf, f"{conf}: configuration file has mode 0666",
        f"fix: chmod go-w {conf}")

work, conf = setup()
os.chown(conf, NOBODY, NOBODY)
refused("a config owned by nobody", conf, f"{conf}: configuration file is owned by uid 65534",
        f"fix: chown root: {conf}")

work, conf = setup(etc_sub=True)
os.chmod(f"{work}/etc", 0o770)
refused("a config whose directory is group-writable", conf,
        f"{conf}: directory {work}/etc (above {conf}) has mode 0770",
        f"fix: chmod go-w {work}/etc")

# alert_command, at its line (5).
work, conf = setup()
os.chown(f"{work}/hook", NOBODY, NOBODY)
refused("an alert_command owned by nobody", conf,
        f"{conf}:5: alert_command {work}/hook is owned by uid 65534",
        f"fix: chown root: {work}/hook")

work, conf = setup()
os.chmod(f"{work}/hook", 0o775)
refused("a group-writable alert_command", conf,
        f"{conf}:5: alert_command {work}/hook has mode 0775", f"fix: chmod go-w {work}/hook")

work, conf = setup()
with open(conf) as f:
    text = f.read()
with open(conf, "w") as f:
    f.write(text.replace(f"alert_command = {work}/hook", "alert_command = hook"))
refused("a relative alert_command", conf,
        f"{conf}:5: alert_command must be an absolute path (starting with /), not 'hook'")

# state_dir, at its line (3).
work, conf = setup()
os.mkdir(f"{work}/state", 0o700)
os.chown(f"{work}/state", NOBODY, NOBODY)
refused("a state_dir owned by nobody", conf,
        f"{conf}:3: state_dir {work}/state is owned by uid 65534",
        f"fix: chown root: {work}/state")

work, conf = setup()
os.mkdir(f"{work}/state")
os.chmod(f"{work}/state", 0o777)
refused("a state_dir of mode 0777", conf, f"{conf}:3: state_dir {work}/state has mode 0777",
        f"fix: chmod go-w {work}/state")

# Secrets.
work, conf = setup()
os.link(f"{work}/l.key", f"{work}/copy.key")
refused("a secret with two hard links", conf,
        f"{work}/l.key: secret file has 2 names (hard links)", "-samefile")

work, conf = setup()
for d in ("lower", "upper", "wd", "keys"):
    os.mkdir(f"{work}/{d}", 0o700)
shutil.move(f"{work}/l.key", f"{work}/lower/l.key")
with open(conf) as f:
    text = f.read()
with open(conf, "w") as f:
    f.write(text.replace(f"secret_file = {work}/l.key", f"secret_file = {work}/keys/l.key"))
mount = (f"mount -t overlay overlay -o lowerdir={work}/lower,upperdir={work}/upper,"
         f"workdir={work}/wd {work}/keys")
probe = subprocess.run(["unshare", "-m", "sh", "-c", mount], capture_output=True, text=True)
if probe.returncode != 0:
    print(f"SKIP overlayfs: cannot mount one here ({probe.stderr.strip()}); "
          "the unit test secret/fs_classifier covers the decision")
else:
    refused("a secret on overlayfs", conf, f"{work}/keys/l.key: secret file is on overlayfs",
            "move it to a local file system",
            prefix=["unshare", "-m", "sh", "-c", f"{mount} && exec \"$0\" \"$@\""])

# Everything at once: one --check lists every refusal.
work, conf = setup()
os.chmod(conf, 0o666)
os.chown(f"{work}/hook", NOBODY, NOBODY)
os.mkdir(f"{work}/state")
os.chmod(f"{work}/state", 0o777)
os.link(f"{work}/l.key", f"{work}/copy.key")
refused("four refusals at once", conf, f"{conf}: configuration file has mode 0666",
        f"{conf}:5: alert_command", f"{conf}:3: state_dir", f"{work}/l.key: secret file has 2")

# Start-up refuses too, and a reload is refused and survived.
work, conf = setup()
os.mkdir(f"{work}/state")
os.chmod(f"{work}/state", 0o777)
p = subprocess.Popen([SAKEYD, "-c", conf], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                     stderr=subprocess.PIPE, text=True)
try:
    _, err = p.communicate(timeout=10)
except subprocess.TimeoutExpired:
    p.kill()
    _, err = p.communicate()
check(p.returncode == 1 and f"{conf}:3: state_dir {work}/state has mode 0777" in err,
      "start-up with a state_dir of mode 0777: exit 1, the refusal at its line")

work, conf = setup()
log_path = f"{work}/sakeyd.log"
log = open(log_path, "w")
daemon = subprocess.Popen([SAKEYD, "-c", conf], stdin=subprocess.DEVNULL,
                          stdout=subprocess.DEVNULL, stderr=log)


def wait_log(text, timeout=15):
    deadline = time.time() + timeout
    while time.time() < deadline:
        with open(log_path) as f:
            if text in f.read():
                return True
        if daemon.poll() is not None:
            return False
        time.sleep(0.05)
    return False


if check(wait_log("ready: "), "the daemon starts with a good config"):
    os.chmod(f"{work}/hook", 0o777)
    daemon.send_signal(signal.SIGHUP)
    check(wait_log(f"{conf}:5: alert_command {work}/hook has mode 0777") and
          wait_log("reload refused"),
          "a reload after the alert_command turned world-writable is refused, at its line")
    check(daemon.poll() is None, "the daemon goes on after the refused reload")
    os.chmod(f"{work}/hook", 0o755)
    daemon.send_signal(signal.SIGHUP)
    check(wait_log("reloaded"), "fixed, the next reload applies")
daemon.send_signal(signal.SIGTERM)
try:
    daemon.wait(timeout=15)
except subprocess.TimeoutExpired:
    daemon.kill()
    daemon.wait()
log.close()
check(daemon.returncode == 0, "the daemon stops cleanly on SIGTERM")

for w in works:
    shutil.rmtree(w, ignore_errors=True)
check.finish()
