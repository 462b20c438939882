#!/usr/bin/env python3
# SPDX-License-Identifier: ISC
"""Capture real XFRM netlink messages for tests/fixtures/xfrm/ (runs as root inside UML).

    tests/kernel/uml-run.sh OUT SHIM python3 tests/kernel/capture_xfrm.py DIR

A NETLINK_XFRM socket joined to the ACQUIRE, EXPIRE, SA and POLICY groups
records what the kernel multicasts while `ip xfrm` adds and deletes SAs
(CBC + HMAC, AES-GCM with ESN) and policies, a packet raises an ACQUIRE and
lifetimes expire; then the socket's own dump of the SADB and an error
acknowledgement. Each datagram is saved as DIR/NAME.bin. The keys are test
constants. test_xfrm.c decodes every message; the fuzz target starts from them.
"""
import os
import socket
import struct
import subprocess
import sys
import time

DIR = sys.argv[1]
os.makedirs(DIR, exist_ok=True)
NAMES = {16: "newsa", 17: "delsa", 18: "getsa", 19: "newpolicy", 20: "delpolicy",
         22: "allocspi", 23: "acquire", 24: "expire", 25: "updpolicy", 26: "updsa",
         27: "polexpire", 28: "flushsa", 29: "flushpolicy", 2: "error", 3: "done"}
s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 6)  # NETLINK_XFRM
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
s.bind((0, 1 | 2 | 4 | 8))
s.settimeout(0.3)
count = {}


def save(tag, data):
    mtype = struct.unpack_from("=H", data, 4)[0]
    name = f"{tag}-{NAMES.get(mtype, str(mtype))}"
    count[name] = count.get(name, 0) + 1
    with open(f"{DIR}/{name}-{count[name]}.bin", "wb") as f:
        f.write(data)


def drain(tag, wait=0.3):
    end = time.time() + wait
    while time.time() < end:
        try:
            save(tag, s.recv(65536))
        except socket.timeout:
            pass


def ip(cmd):
    subprocess.run("ip " + cmd, shell=True, check=True)


K32 = "0x" + "11" * 32
K64 = "0x" + "22" * 64
K20 = "0x" + "33" * 20
ip(f"xfrm state add src 192.0.2.1 dst 198.51.100.7 proto esp spi 0x2a0101 mode transport "
   f"enc 'cbc(aes)' {K32} auth-trunc 'hmac(sha512)' {K64} 256")
drain("cbc")
ip(f"xfrm state add src 2001:db8::1 dst 2001:db8::2 proto esp spi 0x2a0102 mode tunnel "
   f"aead 'rfc4106(gcm(aes))' {K20} 128 flag esn replay-window 128")
drain("newsa-gcm")
ip("xfrm state delete src 192.0.2.1 dst 198.51.100.7 proto esp spi 0x2a0101")
drain("del")
ip("xfrm policy add src 10.1.0.0/24 dst 10.1.0.0/24 dir out tmpl proto esp mode transport")
drain("pol")
ip("link add d0 type dummy && ip link set d0 up && ip addr add 10.1.0.1/24 dev d0")
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.sendto(b"x", ("10.1.0.2", 9))
drain("acquire", 1.0)
ip(f"xfrm state add src 192.0.2.1 dst 198.51.100.9 proto esp spi 0x2a0103 mode transport "
   f"enc 'cbc(aes)' {K32} auth-trunc 'hmac(sha256)' {K32} 128 limit time-soft 1 limit time-hard 2")
drain("expire", 3.0)
ip("xfrm policy flush")
ip("xfrm state flush")
drain("flush")
# Our own dump (GETSA | NLM_F_DUMP) of one SA, and an error ack (DELSA of nothing).
ip(f"xfrm state add src 192.0.2.1 dst 198.51.100.7 proto esp spi 0x2a0104 mode transport "
   f"enc 'cbc(aes)' {K32} auth-trunc 'hmac(sha384)' 0x{'44' * 48} 192")
drain("pre-dump")
s.send(struct.pack("=IHHII", 16, 18, 0x301, 7, 0))
drain("dump")
s.send(struct.pack("=IHHII", 16 + 24, 17, 0x5, 8, 0) + bytes(16) + struct.pack("!I", 0x99) +
       struct.pack("=HBx", 2, 50))
drain("ack")
ip("xfrm state flush")
print(f"captured {sum(count.values())} datagrams: {sorted(count)}")
