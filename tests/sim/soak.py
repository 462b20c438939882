#!/usr/bin/env python3
# SPDX-License-Identifier: ISC
"""Soak: EPOCHS epochs of 50 links with rotate_every = 1s on simd; resources stay flat.

Every second the daemon's RSS (VmRSS), its open descriptors (/proc/PID/fd)
and the database's size on disk (sakeyd.db + -wal + -shm) are sampled.
event_retention = 20s, so the ledger prunes every 2 s and its size must
level off. "Flat" (RELIABILITY.md): after a warm-up of WARMUP seconds, the
baseline is the median of the next 30 samples; the median of the last 50
samples must not exceed the baseline by more than 10 % (RSS), 25 % (database)
or at all (descriptors: a transient one, e.g. the metrics file being
rewritten at the sampling instant, moves no median; one leaked does). The
samples go to LOGDIR/samples.csv (or --csv), with the size of generations.db
(+ -wal + -shm), for the record only: at one synced commit per second its WAL
reaches SQLite's checkpoint (1000 pages) after the run, so its size would tell
nothing here. What must level off there is the records it holds: every 10 s
its rows are counted, and after the warm-up they must not exceed the
baseline's (the most counted during it) by more than 10 %. Also asserted:
every 10 s the SADB equals key schedule v2's desired set (DESIGN.md; after
each link's first epoch, sent with generation 15 as the state directory is
fresh: outbound generation 0, inbound 0 and spares 1 and 15, as no SA carries
traffic; tests/lib/genmodel.py), no failed rotation, every link
rotated at least EPOCHS - 10 times (metrics), the ledger agrees with the
SADB at the end, SIGTERM exits 0 with no sanitizer report.

Under ASan the daemon runs with ASAN_OPTIONS quarantine_size_mb=8: the
default 256 MiB quarantine of freed blocks would otherwise make RSS climb for
minutes by design, which is not a leak (leaks are LeakSanitizer's job at exit).

With --timewarp K --timewarp-lib timewarp.so (tests/reliability/timewarp.c;
run-long soak does this when TIMEWARP=K is set), the driver re-executes
itself under that LD_PRELOAD shim and every process of the run (this driver,
simd, sakeyd, sactl) reads one clock running K times faster than real time,
and waits K times shorter: EPOCHS epochs take EPOCHS / K seconds. Every
figure here (epochs, samples, the desired set) is then in faked time. The
daemon must not see a wall-clock jump (its log is checked), and the real
time taken is printed (read from /proc/uptime, which the shim does not scale).
Not with a sanitized build: ASan must come first in LD_PRELOAD.

usage: soak.py SAKEYD SACTL SIMD LOGDIR [--epochs N] [--links N] [--csv FILE]
               [--sample-every S] [--timewarp K --timewarp-lib SO]
"""
import argparse
import os
import sqlite3
import statistics
import sys
import time

sys.path.insert(0, __file__.rsplit("/", 1)[0])
import simlib  # noqa: E402
from genmodel import LinkGens, fresh_epochs  # noqa: E402 (simlib put tests/lib on the path)

ap = argparse.ArgumentParser()
ap.add_argument("sakeyd")
ap.add_argument("sactl")
ap.add_argument("simd")
ap.add_argument("logdir")
ap.add_argument("--epochs", type=int, default=200)
ap.add_argument("--links", type=int, default=50)
ap.add_argument("--csv")
ap.add_argument("--sample-every", type=float, default=1.0)
ap.add_argument("--timewarp", type=float)
ap.add_argument("--timewarp-lib")
args = ap.parse_args()
check = simlib.Checks()


def real_uptime():
    with open("/proc/uptime") as f:
        return float(f.read().split()[0])


if args.timewarp:
    if "TIMEWARP_BASE" not in os.environ:
        if not args.timewarp_lib or not os.path.exists(args.timewarp_lib):
            sys.exit("soak.py: --timewarp needs --timewarp-lib PATH/timewarp.so")
        # Once, under the shim; it sets TIMEWARP_BASE when it loads, which
        # every child inherits (one faked clock for all).
        wenv = dict(os.environ, TIMEWARP_K=repr(args.timewarp))
        wenv["LD_PRELOAD"] = " ".join(filter(None, [os.path.abspath(args.timewarp_lib),
                                                    os.environ.get("LD_PRELOAD")]))
        os.execve(sys.executable, [sys.executable] + sys.argv, wenv)
    check(float(os.environ.get("TIMEWARP_K", "0")) == args.timewarp,
          f"under the timewarp shim, K = {args.timewarp} (base {os.environ['TIMEWARP_BASE']})")

class Env(simlib.Env):
    """simlib.Env with key schedule v2's desired set: models[link name] (a LinkGens)."""

    models = {}

    def desired(self, t):
        out = set()
        for link in self.links:
            out |= self.models[link.name].desired(t)
        return out


RETENTION = 20
WARMUP = 60
links = simlib.make_links(args.links, 1)
env = Env(args.sakeyd, args.sactl, args.simd, args.logdir, links,
                 f"event_retention = {RETENTION}s\nrefresh_interval = 5s\n"
                 f"metrics_file = /tmp/sakeyd-soak-{os.getpid()}.prom\n")
metrics = f"/tmp/sakeyd-soak-{os.getpid()}.prom"
denv = dict(os.environ)
denv["ASAN_OPTIONS"] = (denv.get("ASAN_OPTIONS", "") + ":quarantine_size_mb=8").lstrip(":")


def db_size(name="sakeyd.db"):
    total = 0
    for suffix in ("", "-wal", "-shm"):
        try:
            total += os.path.getsize(f"{env.state}/{name}{suffix}")
        except OSError:
            pass
    return total


def gens_rows():
    """The rows of generations.db (every table), read-only; None if it cannot be read."""
    try:
        db = sqlite3.connect(f"file:{env.state}/generations.db?mode=ro", uri=True, timeout=5)
        try:
            names = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = "
                                              "'table' AND name NOT LIKE 'sqlite_%'")]
            return sum(db.execute(f'SELECT count(*) FROM "{n}"').fetchone()[0] for n in names)
        finally:
            db.close()
    except sqlite3.Error as err:
        print(f"     generations.db: {err}", flush=True)
        return None


def read_metrics():
    out = {}
    try:
        for line in open(metrics):
            if line.startswith("sakeyd_rotations_total{"):
                labels, value = line.rsplit(" ", 1)
                out[labels] = float(value)
    except OSError:
        pass
    return out


samples = []  # (t, rss_kb, fds, db_bytes, gens_db_bytes)
os.makedirs(args.logdir, exist_ok=True)
csv = open(args.csv or f"{args.logdir}/samples.csv", "w")
csv.write("elapsed_s,rss_kb,fds,db_bytes,gens_db_bytes\n")
bad_sets, set_checks = [], 0
rows = []  # (t, rows of generations.db)
try:
    t_launch = time.time()
    env.start(denv)
    check(env.wait_log("ready:", 60), "sakeyd ready")
    # Each link's first epoch, sent with generation 15 (the daemon's first pass).
    deadline = time.time() + 10
    while len(fresh_epochs(env.log_since())) < len(links) and time.time() < deadline:
        time.sleep(0.1)
    first = fresh_epochs(env.log_since())
    t_told = time.time()
    for link in links:
        Env.models[link.name] = LinkGens(link.prefix, link.local, link.remote, link.period,
                                         link.phase, link.lead, link.grace,
                                         first.get(link.name, link.epoch(t_launch)))
    check(len(first) == len(links) and all(
        link.epoch(t_launch) <= first[link.name] <= link.epoch(t_told) for link in links),
        f"every link's first epoch was sent with generation 15 ({len(first)} links)")
    pid = env.daemon.pid
    t0 = time.time()
    real0 = real_uptime()
    end = t0 + args.epochs
    next_set = t0 + 10
    while time.time() < end and env.daemon.poll() is None:
        now = time.time()
        s = (now - t0, simlib.rss_kb(pid), simlib.fd_count(pid), db_size(),
             db_size("generations.db"))
        samples.append(s)
        csv.write("%.1f,%d,%d,%d,%d\n" % s)
        csv.flush()
        if now >= next_set:
            ok, have, want, _ = env.settled_set(tries=3)
            set_checks += 1
            if not ok:
                bad_sets.append((round(now - t0), sorted(set(have) ^ want)[:4]))
            rows.append((now - t0, gens_rows()))
            next_set = time.time() + 10
        time.sleep(max(0.0, args.sample_every - (time.time() - now)))
    alive = env.daemon.poll() is None
    if args.timewarp:
        real = real_uptime() - real0
        print(f"     timewarp: {time.time() - t0:.0f} s faked in {real:.0f} s real "
              f"(x{(time.time() - t0) / real:.2f}, K = {args.timewarp})", flush=True)
    check(alive, f"sakeyd alive after {len(samples)} samples over {args.epochs} epochs")

    def flat(name, idx, tol, use_max=False):
        base = [s[idx] for s in samples if WARMUP <= s[0] < WARMUP + 30]
        last = [s[idx] for s in samples[-50:]]
        if not base or not last:
            return check(False, f"{name}: not enough samples")
        b = max(base) if use_max else statistics.median(base)
        f = max(last) if use_max else statistics.median(last)
        peak = max(s[idx] for s in samples)
        return check(f <= b * (1 + tol),
                     f"{name} flat: baseline {b} (t={WARMUP}-{WARMUP + 30}s), last 50 samples "
                     f"{f} (limit +{tol * 100:.0f} %), peak {peak}")

    flat("RSS kB (median)", 1, 0.10)
    flat("open descriptors (median)", 2, 0.0)
    flat("database bytes (median)", 3, 0.25)
    base = [n for t, n in rows if WARMUP <= t < WARMUP + 30]
    after = [n for t, n in rows if t >= WARMUP]
    print(f"     generations.db rows every 10 s: {[n for _, n in rows]}")
    ok = bool(base) and bool(after) and None not in after
    check(ok and max(after) <= max(base) * 1.10,
          f"generations.db rows flat: baseline {max(base) if ok else None} "
          f"(t={WARMUP}-{WARMUP + 30}s), most after {max(after) if ok else None} "
          f"(limit +10 %)")
    print(f"     {set_checks} SADB checks, failures: {bad_sets[:3]}")
    check(set_checks >= args.epochs // 25 and not bad_sets,
          "every 10 s the SADB equals the desired set")
    m = read_metrics()
    oks = [v for k, v in m.items() if 'result="ok"' in k]
    fails = [v for k, v in m.items() if 'result="failed"' in k]
    print(f"     rotations per link: min {min(oks) if oks else None}, "
          f"failed total {sum(fails)}")
    check(len(oks) == args.links and min(oks) >= args.epochs - 10 and sum(fails) == 0,
          f"every link rotated >= {args.epochs - 10} times, no failed rotation")
    agree, last = env.ledger_agrees()
    check(agree, "the ledger's live SAs equal the SADB")
    rc, bad = env.stop()
    check(rc == 0 and not bad, f"SIGTERM: exit {rc}, no sanitizer report")
    if args.timewarp:
        # Both of the daemon's clocks (CLOCK_REALTIME, libuv's monotonic one)
        # are scaled alike: no false jump.
        jumps = [line for line in env.log_since(0).splitlines() if "wall clock jumped" in line]
        check(not jumps, f"the daemon saw no wall-clock jump ({len(jumps)} logged: "
                         f"{jumps[:2]})")
finally:
    env.close()
    csv.close()
    try:
        os.unlink(metrics)
    except OSError:
        pass
check.finish()
