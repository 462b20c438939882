# SPDX-License-Identifier: ISC
"""What the kernel itself announced: a NETLINK_XFRM socket in the EXPIRE group,
read on a thread, as an independent witness for tests that judge the daemon's
reaction to expiries.

Why a witness: the kernel does not always send a soft expiry. xfrm_timer_handler
(net/xfrm/xfrm_state.c) runs first 1 s after the add and then at the next limit;
when it runs at or after the hard add-time limit and the soft one has not been
sent yet, it goes straight to the hard expiry and never sends the soft one. On a
loaded machine a User-Mode Linux guest can be descheduled for seconds, and an SA
keyed with 2 s / 4 s lifetimes then gets only its hard expiry. A test must expect
the daemon's soft-expiry alert only for the soft expiries the kernel sent.

The kernel hands each expiry to every key manager (km_state_expired: PF_KEY and
XFRM netlink alike), so this witness sees what a PF_KEY daemon sees too.
"""
import socket
import struct
import threading
import time

XFRM_MSG_EXPIRE = 24
XFRMNLGRP_EXPIRE = 2
USERSA_INFO = 224  # sizeof(struct xfrm_usersa_info); struct xfrm_user_expire adds __u8 hard
SPI_OFF = 72  # xfrm_usersa_info.id.spi: after the 56-byte selector and the 16-byte daddr


class ExpireWitness:
    """Records (spi, hard, wall-clock time) of every XFRM_MSG_EXPIRE while open."""

    def __init__(self):
        self.events = []
        self._lock = threading.Lock()
        self._stop = False
        self._sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 6)  # NETLINK_XFRM
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        self._sock.bind((0, 1 << (XFRMNLGRP_EXPIRE - 1)))
        self._sock.settimeout(0.2)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop:
            try:
                data = self._sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                # ENOBUFS: the witness itself lost messages; say so rather than guess.
                with self._lock:
                    self.events.append((None, None, time.time()))
                continue
            now = time.time()
            off = 0
            while off + 16 <= len(data):
                mlen, mtype = struct.unpack_from("=IH", data, off)
                if mlen < 16 or off + mlen > len(data):
                    break
                if mtype == XFRM_MSG_EXPIRE and mlen >= 16 + USERSA_INFO + 1:
                    spi = struct.unpack_from("!I", data, off + 16 + SPI_OFF)[0]
                    hard = data[off + 16 + USERSA_INFO] != 0
                    with self._lock:
                        self.events.append((spi, hard, now))
                off += (mlen + 3) & ~3

    def sent(self, spi, hard):
        """Wall-clock time of the first expiry of that kind the kernel sent for spi, or None."""
        with self._lock:
            return next((t for s, h, t in self.events if s == spi and h == hard), None)

    def lost(self):
        """Whether the witness's own socket overflowed (its record is then incomplete)."""
        with self._lock:
            return any(s is None for s, _, _ in self.events)

    def close(self):
        self._stop = True
        self._thread.join()
        self._sock.close()
