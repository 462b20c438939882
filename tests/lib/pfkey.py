# SPDX-License-Identifier: ISC
"""PF_KEYv2 (RFC 2367), just enough for the test drivers: the header and a parse
of the SA and address extensions."""
import socket
import struct

SADB_ADD, SADB_DELETE, SADB_DUMP = 3, 4, 10
HEADER = "=BBBBHHII"  # version, type, errno, satype, len (8-byte units), reserved, seq, pid


def header(mtype, satype, length, seq, pid, errno=0):
    return struct.pack(HEADER, 2, mtype, errno, satype, length, 0, seq, pid)


def dump_request(seq, pid):
    """SADB_DUMP of every SA type."""
    return header(SADB_DUMP, 0, 2, seq, pid)


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
