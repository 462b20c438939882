# SPDX-License-Identifier: ISC
"""UDP streams with sequence-numbered payloads, for the kernel tests.

Each datagram carries b"STREAM:SEQ" (ASCII), so a receiver tells one stream
from another and old datagrams (a replay) from new ones. The receiver
records every arrival, duplicates included:

    r = Receiver("192.0.2.2", 5000)        # a thread records (time, stream, seq)
    sent = send("s1", ("192.0.2.2", 5000), count=200, interval=0.01)
    r.arrivals("s1")                       # [(time, seq)], in arrival order
"""
import socket
import threading
import time

PORT = 5000


def payload(stream, seq):
    return f"{stream}:{seq}".encode()


def unpack(data):
    """(stream, seq) of a payload, or None if it is not one of ours."""
    try:
        stream, seq = data.decode("ascii").split(":")
        return stream, int(seq)
    except (UnicodeDecodeError, ValueError):
        return None


def send(stream, dst, count, interval, sock=None):
    """Send seq 0..count-1 of stream to dst (addr, port) every interval s.
    Returns [(send time, accepted by the kernel)]: a send refused for want
    of an SA (EAGAIN, EPERM, ...) is recorded, not raised."""
    own = sock is None
    if own:
        sock = socket.socket(socket.AF_INET6 if ":" in dst[0] else socket.AF_INET,
                             socket.SOCK_DGRAM)
    out = []
    start = time.time()
    try:
        for seq in range(count):
            # Paced from the start, so a slow send does not stretch the stream.
            delay = start + seq * interval - time.time()
            if delay > 0:
                time.sleep(delay)
            t = time.time()
            try:
                sock.sendto(payload(stream, seq), dst)
                out.append((t, True))
            except OSError:
                out.append((t, False))
    finally:
        if own:
            sock.close()
    return out


class Receiver:
    """Records every datagram that reaches addr:port, from a thread."""

    def __init__(self, addr, port=PORT):
        self.sock = socket.socket(socket.AF_INET6 if ":" in addr else socket.AF_INET,
                                  socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.sock.bind((addr, port))
        self.lock = threading.Lock()
        self.got = []  # (time, stream, seq)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while True:
            try:
                data = self.sock.recv(2048)
            except OSError:
                return
            x = unpack(data)
            if x:
                with self.lock:
                    self.got.append((time.time(), x[0], x[1]))

    def arrivals(self, stream):
        """[(time, seq)] of stream's datagrams received so far, in arrival order."""
        with self.lock:
            return [(t, q) for t, s, q in self.got if s == stream]
