# SPDX-License-Identifier: ISC
"""Key schedule v2's generations as the tests on simd expect them (DESIGN.md "Key schedule
v2: generations", doc/sakeyd.8.scd "LOSING SAS: GENERATIONS"), for links of
tests/sim/simlib.py (any object with name, local, remote, prefix, secret, period, phase,
lead, grace and epoch(t)) and its Env (dump, managed, wait_mid_second, settled_set, sactl,
state), and for tests that keep their own links (LinkGens, fresh_epochs).

No traffic flows on simd unless a test sends it, so no spare is ever promoted there and a
receiver's generations follow from its records alone:
- a link whose records were new or lost when the daemon first knew it ("fresh", in epoch
  first): all 16 generations of every inbound epoch <= first; for later epochs, generation
  0 and its spares 1 and 15;
- a sender sends with generation 15 in epoch first (fresh), 0 in later epochs; after a loss
  of its outbound SA, the next generation of the series (g + 1 in 0..7, g - 1 in 15..8),
  recorded in generations.db before it is installed.
The records are read from <state_dir>/generations.db (read-only): the first epoch and
freshness of each link, and the last generation recorded per (link, epoch) as sender.
Without the records (tests/sim/rotation.py, soak.py, backoff.py), a link's first epoch is
the one the daemon logs it first sends in (fresh_epochs), and LinkGens follows its losses:

    g = LinkGens(prefix, local, remote, period, phase, lead, grace, first_epoch)
    g.desired(t)          # {(spi, src, dst)} at Unix time t, no traffic seen
    g.lost_out(e)         # the outbound SA of epoch e was lost: next generation
"""
import json
import os
import re
import sqlite3
import urllib.parse

from keysched import (inbound_epochs, key_fp, spi, spi_epoch,  # noqa: F401 (for the drivers)
                      spi_gen)

ALL = frozenset(range(16))
DEFAULT_IN = frozenset({0, 1, 15})


def link_key(link):
    """The link's key in generations.db: spi_prefix (6 hex digits), local, remote."""
    return f"{link.prefix:06x} {link.local} {link.remote}"


def in_gens(k, first, fresh=True):
    """The generations a receiver holds of inbound epoch k with no traffic seen: all 16 for
    epochs <= first when its records were fresh then, else 0 and its spares 1 and 15."""
    return ALL if fresh and first is not None and k <= first else DEFAULT_IN


def fresh_out_gen(e, first, fresh=True):
    """The outbound generation of epoch e on a link that lost nothing since it was first
    known in epoch first: 15 in that epoch if its records were fresh, else 0 (an epoch
    before first, never sent in, counts as first, as in in_gens)."""
    return 15 if fresh and first is not None and e <= first else 0


def next_gen(g):
    """The generation a sender installs after losing generation g (None: series used up)."""
    if g <= 7:
        return g + 1 if g < 7 else None
    return g - 1 if g > 8 else None


def series_index(g):
    """How far g is along its series: 0..7 for 0..7, 0..7 for 15..8."""
    return g if g <= 7 else 15 - g


def inbound(link, t, first, fresh=True):
    """The inbound (spi, src, dst) link should have at Unix time t (no traffic): the
    generations in_gens gives of each epoch of its window."""
    return {(spi(link.prefix, k, g), link.remote, link.local)
            for k in inbound_epochs(link, t) for g in in_gens(k, first, fresh)}


def desired(link, t, first, fresh=True, out_gen=None):
    """The (spi, src, dst) link should have at Unix time t on simd (no traffic): inbound
    generations of each window epoch, one outbound SA of generation out_gen (default: that
    of a link that lost nothing) of the current epoch."""
    e = link.epoch(t)
    g = fresh_out_gen(e, first, fresh) if out_gen is None else out_gen
    return inbound(link, t, first, fresh) | {(spi(link.prefix, e, g), link.local, link.remote)}


class LinkGens:
    """One link as a v2 daemon that started with no records in epoch first_epoch keys it,
    while no inbound SA carries traffic (nothing promotes a spare); fresh=False: it had
    records then. It is also a link for inbound() and desired()."""

    def __init__(self, prefix, local, remote, period, phase, lead, grace, first_epoch,
                 fresh=True):
        self.prefix, self.local, self.remote = prefix, local, remote
        self.period, self.phase, self.lead, self.grace = period, phase, lead, grace
        self.first_epoch, self.fresh = first_epoch, fresh
        self.out = {}  # epoch -> generation installed after a loss (None: series used up)

    def epoch(self, t):
        return (int(t) - self.phase) // self.period

    def out_gen(self, e):
        """The generation of the outbound SA of epoch e (None: series used up)."""
        if e in self.out:
            return self.out[e]
        return fresh_out_gen(e, self.first_epoch, self.fresh)

    def lost_out(self, e):
        """The outbound SA of epoch e was lost: the sender moves to the next generation.
        Returns it (None: used up)."""
        g = self.out_gen(e)
        self.out[e] = None if g is None else next_gen(g)
        return self.out[e]

    def desired(self, t):
        """Every (spi, src, dst) of this link at Unix time t (no outbound SA once its
        epoch's series is used up)."""
        g = self.out_gen(self.epoch(t))
        if g is None:
            return inbound(self, t, self.first_epoch, self.fresh)
        return desired(self, t, self.first_epoch, self.fresh, g)


FRESH_LINE = re.compile(r"link (\S+): no generation records: sends with generation 15 "
                        r"of epoch (-?\d+)")


def fresh_epochs(log_text):
    """{link name: epoch} from the daemon's log: the epoch in which each link, without
    generation records, was first sent on with generation 15 (its first epoch)."""
    return {m.group(1): int(m.group(2)) for m in FRESH_LINE.finditer(log_text)}


def _db(state_dir):
    path = os.path.join(state_dir, "generations.db")
    uri = "file:" + urllib.parse.quote(path) + "?mode=ro"
    return sqlite3.connect(uri, uri=True, timeout=10)


def records(state_dir):
    """generations.db's records: ({link key: (first_epoch, fresh)}, {(link key, epoch): gen}).
    Empty dicts when there is no file yet."""
    if not os.path.exists(os.path.join(state_dir, "generations.db")):
        return {}, {}
    db = _db(state_dir)
    try:
        links = {k: (first, bool(fresh)) for k, first, fresh in
                 db.execute("SELECT link, first_epoch, fresh FROM link")}
        outs = {(k, e): g for k, e, g in db.execute("SELECT link, epoch, gen FROM gen_out")}
    finally:
        db.close()
    return links, outs


class Model:
    """The desired SADB of an Env's links from generations.db's records."""

    def __init__(self, env):
        self.env = env
        self.refresh()

    def refresh(self):
        self.links, self.outs = records(self.env.state)

    def first(self, link):
        """(first epoch, fresh) of link in the records; (None, False) if it has none."""
        return self.links.get(link_key(link), (None, False))

    def out_gen(self, link, e):
        """The outbound generation of epoch e the records say is installed: the last recorded
        one (recorded before every install); None if none is recorded."""
        return self.outs.get((link_key(link), e))

    def desired(self, t, links=None, out_from_records=False, out_gens=None):
        """The desired set of links (default: the Env's) at t. The outbound generation of
        each is, in this order: out_gens[(link name, epoch)] (what the test expects after
        it removed an SA); with out_from_records, the last one recorded (a test that kills
        the daemon); else that of a link that lost nothing (15 in a fresh first epoch,
        then 0)."""
        out = set()
        for link in self.env.links if links is None else links:
            first, fresh = self.first(link)
            e = link.epoch(t)
            g = None
            if out_gens and (link.name, e) in out_gens:
                g = out_gens[(link.name, e)]
            elif out_from_records:
                g = self.out_gen(link, e)
            out |= desired(link, t, first, fresh, g)
        return out


def settled(env, model, tries=6, out_from_records=False, links=None, out_gens=None):
    """simlib.Env.settled_set against the v2 model (Model.desired's arguments): dump at
    mid-second until the managed SAs equal the desired set (records re-read each try).
    (ok, have, want, tries)."""
    return env.settled_set(tries, lambda t: model.desired(t, links, out_from_records, out_gens),
                           model.refresh)


def check_settled(check, env, model, label, **kw):
    """check (simlib.Checks) that the managed SAs settle on the v2 model's desired set
    (settled's keywords), naming what is extra and missing when they do not. Returns ok."""
    ok, have, want, _ = settled(env, model, **kw)
    have = env.managed(have)
    ok = ok and sorted(have) == sorted(want)
    check(ok, label + ("" if ok else f": extra {sorted(set(have) - set(want))[:6]}, "
                                     f"missing {sorted(set(want) - set(have))[:6]}"))
    return ok


def ledger_wrong(env):
    """Rows of the whole ledger (sactl status --json --all) that contradict key schedule v2:
    a managed SA whose link, direction, addresses, SPI (its epoch and generation) or key
    fingerprint (of that generation) is not the one its epoch gives, or whose JSON
    "generation" is not its SPI's. Returns (rows checked, list of wrong rows, generations
    seen as {(dir, gen): count})."""
    r = env.sactl("status", "--json", "--all")
    if r.returncode != 0:
        return 0, [f"sactl status --all: exit {r.returncode}: {r.stderr.strip()}"], {}
    by_name = {link.name: link for link in env.links}
    rows, wrong, seen = 0, [], {}
    for sa in json.loads(r.stdout)["sas"]:
        if not sa.get("managed"):
            wrong.append(("unmanaged", sa["spi"], sa["src"], sa["dst"]))
            continue
        rows += 1
        link = by_name.get(sa["link"])
        e = sa["epoch"]
        if link is None or e is None:
            wrong.append(("no link/epoch", sa))
            continue
        g = sa.get("generation")
        src, dst = (link.local, link.remote) if sa["dir"] == "out" else \
            (link.remote, link.local)
        ok = (sa["dir"] in ("in", "out") and (sa["src"], sa["dst"]) == (src, dst) and
              g == spi_gen(sa["spi"]) and spi_epoch(sa["spi"], e) == e and
              sa["spi"] == spi(link.prefix, e, g) and
              sa.get("key_fp") in (None, key_fp(link.secret, src, dst, e, gen=g)))
        if not ok:
            wrong.append((sa["link"], sa["dir"], sa["spi"], e, g, sa.get("key_fp")))
        else:
            seen[(sa["dir"], g)] = seen.get((sa["dir"], g), 0) + 1
    return rows, wrong, seen


class SenderHistory:
    """One sender's outbound SA installs of one link, in the order it made them across its
    restarts, judged against DESIGN.md's sender rules: the first instance of an epoch is
    generation 0 with records, 15 in the epoch in which it had none (a first start, a wiped
    state directory); every later one of the same epoch is the next of the series (g + 1 in
    0..7, g - 1 in 15..8), so no instance is ever installed twice.

        h = SenderHistory()            # no records yet
        h.installed(e, g)              # -> (ok, expected generation)
        h.installed(e, g, may_skip=True)  # the run before ended in kill -9: the generation
                                       # it recorded but had not installed yet is skipped
        h.records_lost()               # state directory wiped
    """

    def __init__(self):
        self.records_lost()
        self.skips = 0

    def records_lost(self):
        self.last = {}           # epoch -> last generation installed
        self.fresh_epoch = None  # the epoch of the first install without records
        self.fresh = True

    def expected(self, e):
        """The generation the next install of epoch e must have (None: series used up)."""
        if e in self.last:
            return None if self.last[e] is None else next_gen(self.last[e])
        first = e if self.fresh and self.fresh_epoch is None else self.fresh_epoch
        return fresh_out_gen(e, first, self.fresh)

    def installed(self, e, g, may_skip=False):
        """Generation g of epoch e installed. (ok, the generation expected)."""
        want = self.expected(e)
        ok = g == want
        if not ok and may_skip and want is not None and g == next_gen(want):
            ok = True
            self.skips += 1
        if self.fresh and self.fresh_epoch is None:
            self.fresh_epoch = e
        self.last[e] = g
        return ok, want


class LegacyWindow:
    """An inbound SA's replay window as Linux keeps it for a PF_KEY SA (xfrm_replay.c:
    xfrm_replay_check_legacy, then xfrm_replay_advance; no ESN, window <= 32), empty when
    the SA is (re-)installed."""

    def __init__(self, window=32):
        self.window, self.top, self.bitmap = window, 0, 0

    def accept(self, seq):
        """Whether a packet with this sequence number is accepted (the window advances)."""
        if not self.window:
            return True
        if seq == 0:
            return False
        if seq > self.top:
            diff = seq - self.top
            self.bitmap = ((self.bitmap << diff) | 1) & 0xFFFFFFFF if diff < self.window else 1
            self.top = seq
            return True
        diff = self.top - seq
        if diff >= self.window or self.bitmap >> diff & 1:
            return False
        self.bitmap |= 1 << diff
        return True


def fresh_window_accepts(live, replayed, window=32):
    """How many of the sequence numbers replayed (in order) an inbound SA re-installed with
    an empty window accepts, after the live ones it accepted since: the most a receiver
    whose replay state could not be restored (PF_KEY) lets through; packets that arrive
    among the replayed ones only move the window on and lower it."""
    w = LegacyWindow(window)
    for q in live:
        w.accept(q)
    return sum(1 for q in replayed if w.accept(q))
