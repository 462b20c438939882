# SPDX-License-Identifier: ISC
"""The SAs a key schedule v2 daemon holds for a link (DESIGN.md "Key schedule v2:
generations"), written again from DESIGN.md for the tests, independently of the C code.

A receiver holds, for each inbound epoch of v1's windows, its peer's current
generation and spares (0, 1 and 15 for an epoch it has no record of), or all
16 generations for epochs it has no records of because it started without
any (a first start, a lost state directory: every epoch <= the epoch it first
saw the link). A sender uses generation 15 in that first epoch, 0 from the
next on, and after a loss of its outbound SA the next generation of the
series (g + 1 in 0-7, g - 1 in 15-8).

    g = LinkGens(prefix, local, remote, period, phase, lead, grace, first_epoch)
    g.desired(t)          # {(spi, src, dst)} at Unix time t, no traffic seen
    g.lost_out(e)         # the outbound SA of epoch e was lost: next generation
"""
import re

from keysched import spi

LOST_FIRST, LOST_LAST, NORMAL_LAST = 15, 8, 7
ALL = frozenset(range(16))


def lost_series(g):
    """Whether g is of the series of a sender that lost its records (15 down to 8)."""
    return LOST_LAST <= g <= LOST_FIRST


def spares(cur):
    """The spares of generation cur: cur + 1 (<= 7) and 15 from 0-7; cur - 1 (>= 8) from 15-8."""
    if lost_series(cur):
        return {cur - 1} if cur > LOST_LAST else set()
    return ({cur + 1} if cur < NORMAL_LAST else set()) | {LOST_FIRST}


def next_gen(last, lost_records=False):
    """The generation a sender installs after last (None: none recorded); None when used up."""
    if last is None:
        return LOST_FIRST if lost_records else 0
    if lost_series(last):
        return last - 1 if last > LOST_LAST else None
    return last + 1 if last < NORMAL_LAST else None


class LinkGens:
    """One link as a v2 daemon that started with no records in epoch first_epoch keys it,
    while no inbound SA carries traffic (nothing promotes a spare)."""

    def __init__(self, prefix, local, remote, period, phase, lead, grace, first_epoch,
                 fresh=True):
        self.prefix, self.local, self.remote = prefix, local, remote
        self.period, self.phase, self.lead, self.grace = period, phase, lead, grace
        self.first_epoch, self.fresh = first_epoch, fresh
        self.out = {}  # epoch -> generation installed after a loss

    def epoch(self, t):
        return (int(t) - self.phase) // self.period

    def out_gen(self, e):
        """The generation of the outbound SA of epoch e (None: series used up)."""
        if e in self.out:
            return self.out[e]
        return next_gen(None, self.fresh and e <= self.first_epoch)

    def lost_out(self, e):
        """The outbound SA of epoch e was lost: the sender moves to the next generation.
        Returns it (None: used up)."""
        g = self.out_gen(e)
        self.out[e] = None if g is None else next_gen(g)
        return self.out[e]

    def in_gens(self, k):
        """The generations held of inbound epoch k (no traffic seen)."""
        if self.fresh and k <= self.first_epoch:
            return ALL
        return {0} | spares(0)

    def inbound_epochs(self, t):
        """v1's windows: e; e + 1 from T(e + 1) - lead; e - 1 until T(e) + grace."""
        e = self.epoch(t)
        start, nxt = e * self.period + self.phase, (e + 1) * self.period + self.phase
        out = [e]
        if t >= nxt - self.lead:
            out.append(e + 1)
        if t < start + self.grace:
            out.append(e - 1)
        return out

    def desired(self, t):
        """Every (spi, src, dst) of this link at Unix time t."""
        out = {(spi(self.prefix, k, g), self.remote, self.local)
               for k in self.inbound_epochs(t) for g in self.in_gens(k)}
        e = self.epoch(t)
        g = self.out_gen(e)
        if g is not None:
            out.add((spi(self.prefix, e, g), self.local, self.remote))
        return out


FRESH_LINE = re.compile(r"link (\S+): no generation records: sends with generation 15 "
                        r"of epoch (-?\d+)")


def fresh_epochs(log_text):
    """{link name: epoch} from the daemon's log: the epoch in which each link, without
    generation records, was first sent on with generation 15 (its first epoch)."""
    return {m.group(1): int(m.group(2)) for m in FRESH_LINE.finditer(log_text)}
