# SPDX-License-Identifier: ISC
"""ESP on the wire, for the kernel tests: capture, parse, count, inject.

An ESP header's SPI and sequence number travel in clear (RFC 4303 §2), so a
capture on a veth end tells which (SPI, seq) pairs a host sent, and whether
one was ever sent twice. Frames are kept whole, so a test can put them on
the wire again (a replay) through the same AF_PACKET socket.

    cap = Capture("va")            # in the namespace that owns va; a thread reads
    ...
    recs = cap.records()           # [(time, outgoing, frame bytes)]
    esp = [p for _, _, f in recs if (p := parse(f)) and p["proto"] == "esp"]
    duplicates(esp)                # {(src, dst, spi, seq): times seen} for those seen > 1
    cap.inject(frame)              # send a captured frame out of va again

parse() reads Ethernet II, IPv4 (options too) or IPv6 (no extension headers
but ESP/UDP directly), and ESP or UDP. Anything short or malformed parses
as None: the wire is hostile input like any other.
"""
import socket
import struct
import threading
import time

ETH_P_ALL = 0x0003
ETH_P_IP, ETH_P_IPV6 = 0x0800, 0x86DD
IPPROTO_UDP, IPPROTO_ESP = 17, 50
PACKET_OUTGOING = 4


def parse(frame):
    """
    A dict for an Ethernet frame carrying ESP or UDP over IPv4/IPv6:
    proto ("esp" or "udp"), src, dst; spi, seq for ESP; sport, dport, payload
    for UDP. None for anything else, or for a frame too short for its headers.
    """
    if len(frame) < 14:
        return None
    ethertype = struct.unpack_from("!H", frame, 12)[0]
    off = 14
    if ethertype == ETH_P_IP:
        if len(frame) < off + 20:
            return None
        ihl = (frame[off] & 0x0F) * 4
        if frame[off] >> 4 != 4 or ihl < 20 or len(frame) < off + ihl:
            return None
        total = struct.unpack_from("!H", frame, off + 2)[0]
        frag = struct.unpack_from("!H", frame, off + 6)[0]
        if frag & 0x1FFF:
            return None  # a later fragment: no transport header here
        proto = frame[off + 9]
        src = socket.inet_ntop(socket.AF_INET, frame[off + 12:off + 16])
        dst = socket.inet_ntop(socket.AF_INET, frame[off + 16:off + 20])
        end = min(len(frame), off + max(total, ihl))
        off += ihl
    elif ethertype == ETH_P_IPV6:
        if len(frame) < off + 40:
            return None
        plen = struct.unpack_from("!H", frame, off + 4)[0]
        proto = frame[off + 6]
        src = socket.inet_ntop(socket.AF_INET6, frame[off + 8:off + 24])
        dst = socket.inet_ntop(socket.AF_INET6, frame[off + 24:off + 40])
        off += 40
        end = min(len(frame), off + plen)
    else:
        return None
    if proto == IPPROTO_ESP:
        if end < off + 8:
            return None
        spi, seq = struct.unpack_from("!II", frame, off)
        return {"proto": "esp", "src": src, "dst": dst, "spi": spi, "seq": seq}
    if proto == IPPROTO_UDP:
        if end < off + 8:
            return None
        sport, dport, ulen = struct.unpack_from("!HHH", frame, off)
        payload = frame[off + 8:min(end, off + max(ulen, 8))]
        return {"proto": "udp", "src": src, "dst": dst, "sport": sport, "dport": dport,
                "payload": bytes(payload)}
    return None


def duplicates(packets):
    """(src, dst, spi, seq) keys of parsed ESP packets seen more than once: {key: count}."""
    seen = {}
    for p in packets:
        if p and p["proto"] == "esp":
            k = (p["src"], p["dst"], p["spi"], p["seq"])
            seen[k] = seen.get(k, 0) + 1
    return {k: n for k, n in seen.items() if n > 1}


def plaintext(packets, dport):
    """Parsed UDP packets to port dport: what ESP should have hidden."""
    return [p for p in packets if p and p["proto"] == "udp" and p["dport"] == dport]


class Capture:
    """Every frame of one interface (both directions), read by a thread from an
    AF_PACKET socket opened in the calling process's network namespace."""

    def __init__(self, ifname):
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.sock.bind((ifname, 0))
        self.ifname = ifname
        self.lock = threading.Lock()
        self.frames = []  # (time, outgoing, frame)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while True:
            try:
                frame, addr = self.sock.recvfrom(65535)
            except OSError:
                return
            with self.lock:
                self.frames.append((time.time(), addr[2] == PACKET_OUTGOING, frame))

    def records(self):
        """A copy of what was captured so far: [(time, outgoing, frame)]."""
        with self.lock:
            return list(self.frames)

    def inject(self, frame):
        """Send a whole Ethernet frame out of the interface; bytes sent.
        The frame is then captured again, as outgoing: callers that count
        duplicates leave out what they injected (see their times)."""
        return self.sock.send(frame)
