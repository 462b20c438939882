#!/usr/bin/env python3
# SPDX-License-Identifier: ISC
"""sakeyd --check --plan: the link digest both operators compare.

- two hosts with mirrored configs (local and remote swapped, subnets too):
  every link has the same digest on both, IPv4 and IPv6, transport and tunnel;
- the digest differs when one end changes anything both must agree on:
  algorithm, secret, phase, rotate_every, mode, spi_prefix, esn, an address;
- it does not change with what is each host's own: hard_slack, policy,
  lead and grace, replay_window, the link's name;
- no byte of a secret appears in the output; --plan without --check is a
  usage error.
Usage: check-plan.py SAKEYD
"""
import os
import re
import subprocess
import sys
import tempfile

SAKEYD = sys.argv[1]
work = tempfile.mkdtemp(prefix="sakeyd-plan-")
failures = []
SECRETS = {"v4": "00" * 31 + "01", "v6": "00" * 31 + "03", "tun": "00" * 31 + "04",
           "other": "00" * 31 + "02"}


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        failures.append(what)


for name, hexkey in SECRETS.items():
    path = f"{work}/{name}.key"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, (hexkey + "\n").encode())
    os.close(fd)

# (name, A's local, B's local, extra lines as A writes them, as B writes them)
LINKS = [
    ("v4", "192.0.2.1", "198.51.100.7", "", ""),
    ("v6", "2001:db8::1", "2001:db8::2", "algorithm = aes-cbc-256-hmac-sha384\n", ""),
    ("tun", "192.0.2.1", "192.0.2.9",
     "mode = tunnel\nlocal_subnet = 10.1.0.0/16\nremote_subnet = 10.2.0.0/24\n",
     "mode = tunnel\nlocal_subnet = 10.2.0.0/24\nremote_subnet = 10.1.0.0/16\n"),
]
v6_b_extra = "algorithm = aes-cbc-256-hmac-sha384\n"


def conf(host, links, daemon_extra=""):
    text = f"[daemon]\nkernel = sim\nstate_dir = {work}/{host}-state\n{daemon_extra}"
    for name, local, remote, body in links:
        text += (f"\n[link {name}]\nlocal = {local}\nremote = {remote}\n"
                 f"secret_file = {work}/{name.split('-')[0]}.key\nrotate_every = 1h\n{body}")
    path = f"{work}/{host}.conf"
    with open(path, "w") as f:
        f.write(text)
    return path


def plan(path, *extra):
    r = subprocess.run([SAKEYD, "--check", "--plan", "-c", path, *extra],
                       capture_output=True, text=True)
    digests = dict(re.findall(r"^link (\S+)  digest ([0-9a-f]{4}(?:-[0-9a-f]{4}){3})$",
                              r.stdout, re.M))
    return r, digests


a_links = [(n, a, b, ea) for n, a, b, ea, _ in LINKS]
b_links = [(n, b, a, eb or (v6_b_extra if n == "v6" else "")) for n, a, b, _, eb in LINKS]
ra, da = plan(conf("A", a_links))
rb, db = plan(conf("B", b_links))
check(ra.returncode == 0 and rb.returncode == 0, f"--check --plan exits 0 on both: {ra.stderr}{rb.stderr}")
check(len(da) == 3 and da == db, f"each link's digest is the same on A and B: {da} {db}")
check(len(set(da.values())) == 3, "the three links have three digests")
for field in ("algorithm aes-cbc-256-hmac-sha512", "spi_prefix 0x", "phase ", "(auto)",
              "rotate_every 1h", "lead 1m", "grace 1m", "esn no", "epoch ",
              "outbound generation unknown", "rotation to epoch", "mode tunnel",
              "local_subnet 10.1.0.0/16  remote_subnet 10.2.0.0/24"):
    check(field in ra.stdout, f"the plan shows '{field}'")
# Mirrored: A's line shows B's addresses swapped, the same auto spi_prefix and phase.
pa = re.search(r"link v4 .*?\n.*?\n.*?\n  (spi_prefix \S+ \(auto\)  rotate_every 1h  phase \S+)",
               ra.stdout)
pb = re.search(r"link v4 .*?\n.*?\n.*?\n  (spi_prefix \S+ \(auto\)  rotate_every 1h  phase \S+)",
               rb.stdout)
check(pa and pb and pa.group(1) == pb.group(1), "auto spi_prefix and phase resolved alike")
for hexkey in SECRETS.values():
    check(hexkey not in ra.stdout + ra.stderr, "no secret in the output")

# One end changes something both must agree on: that link's digest differs.
CHANGES = {
    "algorithm": "algorithm = aes-cbc-256-hmac-sha384\n",
    "secret": None,
    "phase": "phase = 5m\n",
    "rotate_every": "rotate_every = 2h\n",
    "mode": "mode = tunnel\nlocal_subnet = 10.9.0.0/16\nremote_subnet = 10.8.0.0/16\n",
    "spi_prefix": "spi_prefix = 0x123\n",
    "esn": "esn = yes\n",
}
base = [("v4", "198.51.100.7", "192.0.2.1", "")]
_, d0 = plan(conf("B1", base))
check(d0.get("v4") == da["v4"], "the same link alone in a file: the same digest")
for what, line in CHANGES.items():
    path = conf("B1", [("v4", "198.51.100.7", "192.0.2.1", line or "")],
                "kernel = xfrm\n" if what == "esn" else "")
    text = open(path).read()
    if what == "rotate_every":
        text = text.replace("rotate_every = 1h\n", "")
    elif what == "secret":
        text = text.replace("v4.key", "other.key")
    elif what == "esn":
        text = text.replace("kernel = sim\n", "")
    open(path, "w").write(text)
    r, d = plan(path)
    check(r.returncode == 0 and d.get("v4") and d["v4"] != da["v4"],
          f"{what} differs on one end: the digest differs ({d.get('v4')} vs {da['v4']}) {r.stderr}")
path = conf("B1", [("v4", "198.51.100.8", "192.0.2.1", "")])
r, d = plan(path)
check(d.get("v4") and d["v4"] != da["v4"], "another address: the digest differs")

# What each host sets for itself leaves the digest alone.
path = conf("B1", [("v4", "198.51.100.7", "192.0.2.1",
                    "hard_slack = 5m\npolicy = no\nlead = 30s\ngrace = 2m\nreplay_window = 16\n")])
r, d = plan(path)
check(d.get("v4") == da["v4"], f"hard_slack, policy, lead, grace, replay_window: same digest {r.stderr}")
text = open(path).read().replace("[link v4]", "[link v4-renamed]")
open(path, "w").write(text)
r, d = plan(path)
check(d.get("v4-renamed") == da["v4"], "another link name: same digest")

r = subprocess.run([SAKEYD, "--plan", "-c", path], capture_output=True, text=True)
check(r.returncode == 2 and "--plan goes with --check" in r.stderr, "--plan alone: usage error")

subprocess.run(["rm", "-rf", work])
print(f"{len(failures)} failure(s)")
sys.exit(1 if failures else 0)
