# SPDX-License-Identifier: ISC
"""PF_KEYv2 (RFC 2367), just enough for the test drivers: the header, a parse
of the SA and address extensions, and the requests another tool makes to take
SAs away (SADB_DELETE of one SA, SADB_FLUSH, SADB_X_SPDFLUSH)."""
import os
import socket
import struct

SADB_ADD, SADB_DELETE, SADB_FLUSH, SADB_DUMP, SADB_X_SPDFLUSH = 3, 4, 9, 10, 19
SADB_SATYPE_UNSPEC, SADB_SATYPE_ESP = 0, 3
HEADER = "=BBBBHHII"  # version, type, errno, satype, len (8-byte units), reserved, seq, pid


def header(mtype, satype, length, seq, pid, errno=0):
    return struct.pack(HEADER, 2, mtype, errno, satype, length, 0, seq, pid)


def dump_request(seq, pid):
    """SADB_DUMP of every SA type."""
    return header(SADB_DUMP, 0, 2, seq, pid)


def flush_request(seq, pid, satype=SADB_SATYPE_UNSPEC):
    """SADB_FLUSH of every SA of satype (all types by default), as `setkey -F` sends it."""
    return header(SADB_FLUSH, satype, 2, seq, pid)


def spdflush_request(seq, pid):
    """SADB_X_SPDFLUSH: every policy, as `setkey -FP` sends it."""
    return header(SADB_X_SPDFLUSH, SADB_SATYPE_UNSPEC, 2, seq, pid)


def _address(exttype, ip, proto=0):
    """An address extension (RFC 2367 2.3.3) with a full-length prefix."""
    if ":" in ip:
        sa = struct.pack("=H", socket.AF_INET6) + bytes(6) + socket.inet_pton(socket.AF_INET6, ip) \
            + bytes(4)
        plen = 128
    else:
        sa = struct.pack("=H", socket.AF_INET) + bytes(2) + socket.inet_pton(socket.AF_INET, ip) \
            + bytes(8)
        plen = 32
    sa += bytes(-len(sa) % 8)
    return struct.pack("=HHBBH", 1 + len(sa) // 8, exttype, proto, plen, 0) + sa


def hand_add_request(seq, pid, spi, soft_s, hard_s, src="203.0.113.5", dst="203.0.113.9"):
    """SADB_ADD of an ESP SA keyed by hand with random keys, as `setkey -c` "add" sends it:
    AES-256-CBC + HMAC-SHA512, transport, replay window 32, these add-time lifetimes (s)."""
    body = struct.pack("=HHIBBBBI", 2, 1, socket.htonl(spi), 32, 0, 7, 12, 0)
    body += struct.pack("=HHIQQQ", 4, 3, 0, 0, hard_s, 0)
    body += struct.pack("=HHIQQQ", 4, 4, 0, 0, soft_s, 0)
    body += _address(5, src, 255) + _address(6, dst, 255)
    body += struct.pack("=HHHH", 9, 8, 512, 0) + os.urandom(64)
    body += struct.pack("=HHHH", 5, 9, 256, 0) + os.urandom(32)
    body += struct.pack("=HHBBHII", 2, 19, 1, 0, 0, 0, 0)
    return header(SADB_ADD, SADB_SATYPE_ESP, 2 + len(body) // 8, seq, pid) + body


def delete_request(seq, pid, spi, src, dst, satype=SADB_SATYPE_ESP):
    """SADB_DELETE of the SA (dst, spi) of satype, as `setkey -c` "delete src dst esp spi"
    sends it (Linux looks it up by dst, SPI and protocol)."""
    sa = struct.pack("=HH", 2, 1) + struct.pack("!I", spi) + bytes(8)
    body = sa + _address(5, src) + _address(6, dst)
    return header(SADB_DELETE, satype, 2 + len(body) // 8, seq, pid) + body


def parse(data):
    """(type, errno, seq, pid, spi, src, dst) of a PF_KEY message; spi/src/dst None if
    absent; None if the message is too short or malformed."""
    if len(data) < 16:
        return None
    _ver, typ, err, _sat, _len, _res, seq, pid = struct.unpack_from(HEADER, data)
    spi = src = dst = None
    off = 16
    try:
        while off + 4 <= len(data):
            elen, etype = struct.unpack_from("=HH", data, off)
            if elen == 0:
                break
            body = data[off:off + elen * 8]
            if etype == 1:
                spi = struct.unpack_from("!I", body, 4)[0]
            elif etype in (5, 6):
                family = struct.unpack_from("=H", body, 8)[0]
                ip = socket.inet_ntop(socket.AF_INET, body[12:16]) if family == socket.AF_INET \
                    else socket.inet_ntop(socket.AF_INET6, body[16:32])
                if etype == 5:
                    src = ip
                else:
                    dst = ip
            off += elen * 8
    except (struct.error, ValueError):
        return None
    return typ, err, seq, pid, spi, src, dst
