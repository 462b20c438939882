#!/usr/bin/env python3
# SPDX-License-Identifier: ISC
# Writes hand-built PF_KEYv2 seed messages (Linux af_key layouts) into tests/fuzz/corpus/pfkey/.
"""Regenerate with: python3 tests/fuzz/gen_pfkey_corpus.py [outdir]

Host-order fields use the native byte order ('='), as the kernel does; the SPI,
ports and addresses are in network order. Layouts: /usr/include/linux/pfkeyv2.h.
"""
import os
import socket
import struct
import sys

AF_INET, AF_INET6 = socket.AF_INET, socket.AF_INET6
ESP, AH = 50, 51


def ext(etype, body):
    """An extension: sadb_ext header + body, padded to 8 bytes."""
    raw = body + b"\0" * (-(len(body) + 4) % 8)
    return struct.pack("=HH", (len(raw) + 4) // 8, etype) + raw


def msg(mtype, satype, *exts, seq=1, pid=4242, errno=0, reserved=0):
    body = b"".join(exts)
    return struct.pack("=BBBBHHII", 2, mtype, errno, satype, (16 + len(body)) // 8,
                       reserved, seq, pid) + body


def sockaddr(text, port=0):
    if ":" in text:
        return struct.pack("=H", AF_INET6) + struct.pack("!HI", port, 0) + \
            socket.inet_pton(AF_INET6, text) + struct.pack("=I", 0)
    return struct.pack("=H", AF_INET) + struct.pack("!H", port) + \
        socket.inet_pton(AF_INET, text) + b"\0" * 8


def address(etype, text, prefix=None, proto=0, port=0):
    if prefix is None:
        prefix = 128 if ":" in text else 32
    return ext(etype, struct.pack("=BBH", proto, prefix, 0) + sockaddr(text, port))


def sa(spi, replay=32, state=1, auth=5, enc=12, flags=0):
    return ext(1, struct.pack("!I", spi) + struct.pack("=BBBBI", replay, state, auth, enc, flags))


def lifetime(etype, allocs=0, nbytes=0, add=0, use=0):
    return ext(etype, struct.pack("=IQQQ", allocs, nbytes, add, use))


def key(etype, bits, fill):
    return ext(etype, struct.pack("=HH", bits, 0) + bytes([fill]) * ((bits + 7) // 8))


def sa2(mode, reqid):
    return ext(19, struct.pack("=BBHII", mode, 0, 0, 0, reqid))


def policy(ptype, pdir, reqs=b"", pid=0, prio=0):
    return ext(18, struct.pack("=HBBII", ptype, pdir, 0, pid, prio) + reqs)


def ipsecrequest(proto, mode, level, reqid, tun=None):
    tail = b"" if tun is None else sockaddr(tun[0]) + sockaddr(tun[1])
    return struct.pack("=HHBBHII", 16 + len(tail), proto, mode, level, 0, reqid, 0) + tail


def supported(etype, algs):
    return ext(etype, struct.pack("=I", 0) +
               b"".join(struct.pack("=BBHHH", *a, 0) for a in algs))


def proposal(combs):
    body = struct.pack("=B3x", 32)
    for auth, enc in combs:
        body += struct.pack("=BBHHHHHIIIQQQQQQ", auth, enc, 0, 256, 256, 128, 256, 0,
                            0, 0, 0, 0, 86400 - 8640, 86400, 0, 0)
    return ext(13, body)


SEEDS = {
    "flush": msg(9, 0),
    "dump-request": msg(10, 0),
    "register-request": msg(7, 3),
    "register-reply": msg(7, 3,
                          supported(14, [(2, 0, 128, 128), (3, 0, 160, 160), (5, 0, 256, 256)]),
                          supported(15, [(11, 0, 0, 0), (12, 8, 128, 256)])),
    "getspi": msg(1, 3, address(5, "192.0.2.1"), address(6, "192.0.2.2"),
                  ext(16, struct.pack("=III", 0x100, 0x0fffffff, 0)), sa2(1, 0)),
    "add-ipv4": msg(3, 3, sa(0x12345678), lifetime(3, add=3600), lifetime(4, add=3000),
                    address(5, "198.51.100.1"), address(6, "198.51.100.2"),
                    key(8, 256, 0x11), key(9, 128, 0x22), sa2(1, 7)),
    "update-ipv6-tunnel": msg(2, 3, sa(0xdeadbeef, auth=3), address(5, "2001:db8::1"),
                              address(6, "2001:db8:ffff::2"), key(8, 160, 0x33),
                              key(9, 256, 0x44), sa2(2, 0x3fff)),
    "delete": msg(4, 3, sa(0x1001), address(5, "10.0.0.1"), address(6, "10.0.0.2")),
    "get-reply": msg(5, 3, sa(0x1001), lifetime(3, add=3600), lifetime(2, 10, 1500, 1700000000),
                     address(5, "10.0.0.1"), address(6, "10.0.0.2"),
                     key(8, 256, 0x55), key(9, 128, 0x66), sa2(1, 0)),
    "expire-soft": msg(8, 3, sa(0x2002, state=2), lifetime(4, add=60),
                       lifetime(2, 3, 300, 1700000000), address(5, "10.0.0.1"),
                       address(6, "10.0.0.2"), seq=0, pid=0),
    "expire-hard": msg(8, 3, sa(0x2002, state=3), lifetime(3, add=60),
                       lifetime(2, 3, 300, 1700000000), address(5, "10.0.0.1"),
                       address(6, "10.0.0.2"), seq=0, pid=0),
    "acquire": msg(6, 3, address(5, "10.1.0.1"), address(6, "10.2.0.1"),
                   policy(2, 2, pid=0x49), proposal([(5, 12), (3, 3)]), seq=77, pid=0),
    "spdadd-transport": msg(14, 0, address(5, "10.1.0.0", 16, 17),
                            address(6, "10.2.0.0", 16, 17, 4500),
                            policy(2, 2, ipsecrequest(ESP, 1, 3, 5), prio=100)),
    "spdadd-tunnel-ipv4": msg(14, 0, address(5, "10.1.0.0", 16, 255),
                              address(6, "10.2.0.0", 16, 255),
                              policy(2, 3, ipsecrequest(ESP, 2, 2, 0, ("192.0.2.1", "192.0.2.2")) +
                                     ipsecrequest(AH, 1, 1, 0))),
    "spdadd-tunnel-ipv6": msg(14, 0, address(5, "2001:db8:1::", 48, 255),
                              address(6, "2001:db8:2::", 48, 255),
                              policy(2, 1, ipsecrequest(ESP, 2, 3, 9,
                                                        ("2001:db8::a", "2001:db8::b"))),
                              reserved=2),
    "spddelete": msg(15, 0, address(5, "10.1.0.0", 16, 255), address(6, "10.2.0.0", 16, 255),
                     policy(2, 2)),
    "spddelete2": msg(22, 0, policy(0, 0, pid=0x209)),
    "spddump-request": msg(18, 0),
    "add-natt": msg(3, 3, sa(0xabcd0001), address(5, "203.0.113.5"), address(6, "203.0.113.6"),
                    ext(20, struct.pack("=B3x", 2)), ext(21, struct.pack("!H", 4500) + b"\0\0"),
                    ext(22, struct.pack("!H", 4500) + b"\0\0"), address(23, "10.9.9.9")),
    "unknown-and-skipped-exts": msg(10, 0, ext(27, b""), ext(200, b"\0" * 12),
                                    ext(10, struct.pack("=HHQ", 1, 0, 0)),
                                    ext(24, struct.pack("=BBH", 1, 1, 4) + b"abcd"),
                                    ext(26, b"\0" * 36), reserved=3),
}


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "corpus", "pfkey")
    os.makedirs(out, exist_ok=True)
    for name, data in sorted(SEEDS.items()):
        assert len(data) % 8 == 0, name
        with open(os.path.join(out, name + ".bin"), "wb") as f:
            f.write(data)
    print(f"wrote {len(SEEDS)} seeds to {out}")


if __name__ == "__main__":
    main()
