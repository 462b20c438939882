#!/usr/bin/env python3
# SPDX-License-Identifier: ISC
"""kernel = auto on the real kernel (runs as root inside User-Mode Linux).

- with both PF_KEY and XFRM present: XFRM (PF_KEY is deprecated on Linux and
  cannot restore replay state), SAs with ESN, and the log says so;
- kernel = pfkey: PF_KEY SAs without ESN; a reload that adds a GCM link is
  refused, naming the link and the fix;
- xfrm_user unloaded (if the kernel lets it go): auto falls back to PF_KEY
  and warns;
- af_key unloaded (a kernel without PF_KEY): XFRM, SAs installed with ESN;
- kernel = pfkey on that kernel fails at start with the fix in the message.

usage: kernel_auto.py SAKEYD OUTDIR [SACTL]
"""
import os
import re
import signal
import subprocess
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from checks import Checks  # noqa: E402
from keysched import write_secret  # noqa: E402
from logs import read  # noqa: E402
from proc import sh, wait_for  # noqa: E402

SAKEYD, OUT = sys.argv[1], sys.argv[2]
WORK = "/run/kernel-auto"
check = Checks()


os.makedirs(WORK, exist_ok=True)
write_secret(f"{WORK}/l.key", os.urandom(32))


def config(name, kernel, links):
    text = f"""[daemon]
kernel = {kernel}
state_dir = {WORK}/state-{name}
control_socket = {WORK}/{name}.sock
"""
    for i, alg in enumerate(links):
        text += f"""
[link l{i}]
local = 192.0.2.1
remote = 192.0.2.{10 + i}
secret_file = {WORK}/l.key
spi_prefix = {0x2a00 + i:#x}
rotate_every = 1h
algorithm = {alg}
"""
    path = f"{WORK}/{name}.conf"
    with open(path, "w") as f:
        f.write(text)
    return path


def start(name, conf):
    log = f"{OUT}/sakeyd-{name}.log"
    p = subprocess.Popen([SAKEYD, "-c", conf, "-v"], stderr=open(log, "w"),
                         stdout=subprocess.DEVNULL)
    return p, log


def stop(p):
    p.send_signal(signal.SIGTERM)
    return p.wait(timeout=20)


def states():
    return sh("ip -s xfrm state")


# 1. Both present: auto prefers XFRM (PF_KEY is deprecated on Linux and cannot carry
# replay state, ESN or AEAD).
conf = config("both", "auto", ["aes-cbc-256-hmac-sha512"])
p, log = start("both", conf)
check(wait_for(lambda: "kernel xfrm" in read(log), 30), "auto picked XFRM (log: kernel xfrm)")
check("kernel = auto: using XFRM netlink" in read(log), "the log says so")
check(wait_for(lambda: "spi 0x002a00" in states(), 10), "its SAs are installed")
check("flag esn" in states(), "with ESN")
check(stop(p) == 0, "stopped cleanly")
sh("ip xfrm state flush; ip xfrm policy flush")

# 2. kernel = pfkey stays fully supported; a reload adding a link PF_KEY cannot
# install is refused, with the fix.
conf = config("pf", "pfkey", ["aes-cbc-256-hmac-sha512"])
p, log = start("pf", conf)
check(wait_for(lambda: "kernel pfkey" in read(log), 30), "kernel = pfkey runs on PF_KEY")
check(wait_for(lambda: "spi 0x002a00" in states(), 10), "its SAs are installed")
check("flag esn" not in states(), "no ESN on PF_KEY SAs")
config("pf", "pfkey", ["aes-cbc-256-hmac-sha512", "aes-gcm-128"])
p.send_signal(signal.SIGHUP)
check(wait_for(lambda: "reload refused" in read(log), 10), "reload with a GCM link refused")
check(re.search(r"link l1: .*cannot be installed by kernel = pfkey.*; use ", read(log)) is not None,
      "the refusal names the link and the fix")
check(stop(p) == 0, "stopped cleanly")
sh("ip xfrm state flush; ip xfrm policy flush")

# 2b. A kernel without XFRM netlink but with PF_KEY: auto falls back, and warns.
sh("echo /bin/false > /proc/sys/kernel/modprobe")
rc = subprocess.run(["rmmod", "xfrm_user"], capture_output=True).returncode
if rc == 0:
    # ip xfrm needs xfrm_user: the daemon's own word says what it installed.
    conf = config("noxf", "auto", ["aes-cbc-256-hmac-sha512"])
    p, log = start("noxf", conf)
    check(wait_for(lambda: "kernel pfkey" in read(log), 30), "auto picked PF_KEY without XFRM")
    check("no XFRM netlink" in read(log), "the log says why")
    check(wait_for(lambda: re.search(r"ready: [1-9][0-9]* SAs in the kernel", read(log)), 20)
          is not None, "its SAs are installed")
    check(stop(p) == 0, "stopped cleanly")
    sh("modprobe -d /run/uml xfrm_user")
    sh("ip xfrm state flush; ip xfrm policy flush")
else:
    print("# xfrm_user cannot be unloaded here (in use): case 2b skipped", flush=True)

# 3. A kernel without PF_KEY (modprobe is still /bin/false: it stays unloaded).
sh("rmmod af_key")
check(not os.path.exists("/proc/net/pfkey"), "af_key unloaded")
conf = config("nopf", "auto", ["aes-cbc-256-hmac-sha512"])
p, log = start("nopf", conf)
check(wait_for(lambda: "kernel xfrm" in read(log), 10), "auto picked XFRM without PF_KEY")
check("kernel = auto: using XFRM netlink" in read(log), "the log says so")
check(wait_for(lambda: "spi 0x002a00" in states(), 10), "its SAs are installed")
check("flag esn" in states() and "replay_window 128" in states(), "ESN, window 128")
check(stop(p) == 0, "stopped cleanly")
conf = config("pfonly", "pfkey", ["aes-cbc-256-hmac-sha512"])
p, log = start("pfonly", conf)
rc = p.wait(timeout=20)
check(rc != 0, f"kernel = pfkey without PF_KEY fails at start (exit {rc})")
check("kernel = auto or xfrm" in read(log), "and says to use kernel = auto or xfrm")

check.finish()
