#!/usr/bin/env python3
# SPDX-License-Identifier: ISC
"""Guest side of the benchmark: sakeyd against the raw-kernel floor, in one boot.

Run by tests/bench/run (or the 'bench' meson suite) inside User-Mode Linux as
root:  bench.py --sakeyd EXE --sactl EXE --floor EXE --out DIR [--links N]
[--reps R] [--kernel pfkey|xfrm] [--quick]

It writes DIR/results.json (every sample) and DIR/table.md, and prints the
table. The steps, all in this boot:
  1. floor: the same 4N SAs that N links hold between rotations (floor.c -K 4:
     per link the outbound SA, the inbound generation 0 and its spares 1 and
     15, with the links' SPIs) added and deleted by
     pfkey-sync, pfkey-pipe, pfkey-mmsg, netlink-batch (without and with ESN)
     and ip -batch, REPS times each; then the kernel's share of a rotation
     (floor nl-rotate), REPS times;
  2. phase A, sakeyd with N links, rotate_every 1d (no change point during
     the phase): start-up from an empty SADB and state directory (REPS
     times: exec -> READY=1, and exec -> the kernel's SA count at 17N seen
     from outside, against the floor adding the same 17N SAs: floor -K 17),
     then start-up with its 17N SAs
     already installed (REPS restarts), sactl status --json and the table
     against a PF_KEY dump of the same SAs, SADB_EXPIRE -> alert_command
     latency with 17N SAs present, peak RSS;
  3. phase B, sakeyd with N links whose epochs all end at known instants:
     REPS rotations of every link, each one three passes (next inbound SA
     added `lead` before the change point, outbound SA replaced at it,
     previous inbound SA deleted `grace` after), timed by the daemon's own
     "reconcile pass" lines (planning to last reply, CLOCK_MONOTONIC), and
     the add-only and delete-only bursts also from outside (SAD count).
The check lines (CHECK ok / CHECK FAIL) make the smoke test fail; no timing
is asserted anywhere.

Key schedule v2 (DESIGN.md): each phase's daemon starts on an empty state
directory, so it is fresh: generation 15 outbound and all 16 generations of
the current epoch's inbound SA, N + 16N SAs (SAS_FRESH) where v1 had 2N; each
later inbound epoch is generation 0 plus spares 1 and 15 (3N adds at T-lead,
3N deletes at T+grace; N + 3N SAs between rotations), and the first
rotation's T+grace deletes the 16N of the fresh epoch. A later rotation adds
4N SAs and deletes 4N: the floor adds and deletes the same 4N SAs (floor -K
4), so its add + delete time is the floor of one steady rotation (the first
rotation, with its 16N deletes, is not sampled as one).
"""
import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time

ap = argparse.ArgumentParser()
ap.add_argument("--sakeyd", required=True)
ap.add_argument("--sactl", required=True)
ap.add_argument("--floor", required=True)
ap.add_argument("--out", required=True)
ap.add_argument("--links", type=int, default=10000)
ap.add_argument("--reps", type=int, default=3)
ap.add_argument("--kernel", default="pfkey")
ap.add_argument("--expire-n", type=int, default=250)
ap.add_argument("--lead", type=int, default=0, help="lead = grace of phase B (s); 0: from N")
ap.add_argument("--skip-ip", action="store_true", help="leave out ip -batch (slow)")
ap.add_argument("--quick", action="store_true", help="smoke run: small N, one rep")
args = ap.parse_args()
if args.quick:
    args.links = min(args.links, 200)
    args.reps = 1
    args.expire_n = min(args.expire_n, 20)

N = args.links
SAS = 4 * N  # the floor's SAs: a steady v2 rotation's (floor -K 4)
SAS_FRESH = N + 16 * N  # v2, a fresh daemon: outbound generation 15, 16 inbound generations
SAS_STEADY = N + 3 * N  # v2 between rotations: outbound, inbound 0 with spares 1 and 15
FLOOR = args.floor
WORK = "/run/sakeyd-bench"  # guest tmpfs: the daemon's files never touch hostfs
OUT = os.path.abspath(args.out)
os.makedirs(WORK, exist_ok=True)
os.makedirs(OUT, exist_ok=True)
failures = []
samples = {}  # name -> list of floats (seconds unless noted)
notes = {}


LOG_A = f"{WORK}/sakeyd-a.log"
LOG_B = f"{WORK}/sakeyd-b.log"


def finish():
    """Write results.json, keep the daemon's logs; the exit status."""
    with open(f"{OUT}/results.json", "w") as f:
        json.dump({"env": env, "samples": samples, "notes": notes, "failures": failures}, f,
                  indent=1)
    for src in (LOG_A, LOG_B):
        if os.path.exists(src):
            subprocess.run(["cp", src, OUT], check=False)
    log(f"RESULTS {len(failures)} check(s) failed" if failures else "RESULTS all checks passed")
    return 1 if failures else 0


def log(msg):
    print(msg, flush=True)


def check(ok, what):
    log(("CHECK ok " if ok else "CHECK FAIL ") + what)
    if not ok:
        failures.append(what)


def sample(name, value):
    samples.setdefault(name, []).append(value)


def parse_result(text):
    out = []
    for line in text.splitlines():
        if line.startswith("RESULT "):
            out.append(dict(kv.split("=", 1) for kv in line.split()[1:] if "=" in kv))
    return out


def floor(*argv, check_rc=True):
    p = subprocess.run([FLOOR, *argv], capture_output=True, text=True)
    if p.returncode and check_rc:
        check(False, f"floor {' '.join(argv)}: exit {p.returncode}: {p.stderr.strip()}")
    r = parse_result(p.stdout)
    return r[0] if r else None


def count():
    out = subprocess.run([FLOOR, "count"], capture_output=True, text=True).stdout.strip()
    return int(out) if out.lstrip("-").isdigit() else -1


def expect_count(n, what):
    c = count()
    check(c == n, f"{what}: SAD count {c}, expected {n}")


def ip4(net, p):
    v = (p + 1) & 0xFFFF
    return f"10.{net}.{v >> 8}.{v & 0xFF}"


# --- environment ------------------------------------------------------------
def sh(cmd):
    return subprocess.run(cmd, shell=True, capture_output=True, text=True).stdout.strip()


env = {
    "kernel": sh("uname -r"),
    "guest_cpus": sh("nproc"),
    "guest_mem": sh("grep MemTotal /proc/meminfo | tr -s ' '"),
    "links": N,
    "reps": args.reps,
    "backend": args.kernel,
    "date": sh("date -u +%Y-%m-%dT%H:%M:%SZ"),
}
log(f"INFO {json.dumps(env)}")

# --- warm-up ----------------------------------------------------------------
# The first SA makes the kernel load authenc/hmac/sha512/cbc/aes; the xfrm
# hash tables grow to the largest count once (they never shrink), so every
# measurement sees the same tables.
floor("-m", "warmup", "add-sync", "1")
floor("-m", "warmup", "del-sync", "1")
floor("-m", "warmup", "nl-add-batch", str(2 * SAS))
time.sleep(1.5)
floor("-m", "warmup", "nl-del-batch", str(2 * SAS))
time.sleep(0.5)
# The first ESN SA instantiates authencesn: without this the ESN floor's first
# repetition took 0.25-0.32 s for its adds where the others took 0.16.
floor("-m", "warmup", "-E", "nl-add-batch", str(SAS))
time.sleep(1.2)
floor("-m", "warmup", "-E", "nl-del-batch", str(SAS))
time.sleep(0.5)
expect_count(0, "warm-up")

# --- 1. the floor -----------------------------------------------------------
BIG = str(128 << 20)  # SO_RCVBUFFORCE, doubled by the kernel: no reply is lost
SETTLE_ADD, SETTLE_DEL = 1.2, 0.3  # each new SA arms a 1 s kernel timer (RESULTS.md note 2)

# The links' SPI prefixes (write_config). The floor's SAs take the SPIs the links'
# SAs have (floor -L), so the kernel hashes them into the same chains.
SPI_PREFIX0 = 0x1000
LINK_SPIS = ["-K", "4", "-L", hex(SPI_PREFIX0)]
methods = {
    "pfkey-sync": (["add-sync"], ["del-sync"]),
    "pfkey-pipe": (["-r", BIG, "add-pipe"], ["-r", BIG, "del-pipe"]),
    # The same with 64 requests per sendmmsg, as sakeyd sends them: one system call
    # per batch instead of one per request. Shown beside the goal's floor, not instead.
    "pfkey-mmsg": (["-r", BIG, "-b", "64", "add-pipe"], ["-r", BIG, "-b", "64", "del-pipe"]),
    "netlink-batch": (["nl-add-batch"], ["nl-del-batch"]),
    # The same SAs as sakeyd's kernel = xfrm installs them: ESN and a 128-packet
    # replay window (each add allocates the ESN state: a few % more per add).
    "netlink-batch-esn": (["-E", "nl-add-batch"], ["-E", "nl-del-batch"]),
}
# The floor of #9's goal: the same SAs the daemon installs in this run.
XFRM_FLOOR = "netlink-batch-esn" if args.kernel == "xfrm" else "netlink-batch"
if not args.skip_ip:
    for what in ("add", "del"):
        with open(f"{WORK}/ip-{what}.batch", "w") as f:
            f.write(subprocess.run([FLOOR, *LINK_SPIS, "gen-batch", what, str(SAS)],
                                   capture_output=True, text=True, check=True).stdout)
    methods["ip-batch"] = (["timeit", str(SAS), "--", "ip", "-batch", f"{WORK}/ip-add.batch"],
                           ["timeit", str(SAS), "--", "ip", "-batch", f"{WORK}/ip-del.batch"])

for rep in range(args.reps):
    for m, (add, dele) in methods.items():
        r = floor("-m", m, *LINK_SPIS, *add, *([] if m == "ip-batch" else [str(SAS)]))
        time.sleep(SETTLE_ADD)
        expect_count(SAS, f"floor {m} add")
        if r:
            check(int(r.get("lost", 0)) == 0 and int(r.get("err", 0)) == 0,
                  f"floor {m} add: no error, no lost reply ({r.get('err')}/{r.get('lost')})")
            sample(f"floor:{m}:add", float(r["secs"]))
        if m == "pfkey-pipe":
            # A PF_KEY dump of the floor's 4N SAs (status is compared below with
            # a dump of the daemon's own SAs).
            d = floor("-m", "dump", "dump")
            if d:
                check(int(d["n"]) == SAS, f"floor dump: {d['n']} SAs")
                sample("floor:pfkey-dump", float(d["secs"]))
        r = floor("-m", m, *LINK_SPIS, *dele, *([] if m == "ip-batch" else [str(SAS)]))
        time.sleep(SETTLE_DEL)
        expect_count(0, f"floor {m} del")
        if r:
            sample(f"floor:{m}:del", float(r["secs"]))

# The kernel's share of a rotation: sakeyd's three bursts, in its order, with
# its SAs present (make before break) and of its shape, by batched netlink
# (floor nl-rotate). Not a goal's floor: it shows what of a rotation is the
# daemon's own work.
for rep in range(args.reps):
    r = floor("-m", "netlink-rotate", *LINK_SPIS,
              *(["-E"] if args.kernel == "xfrm" else []), "nl-rotate", str(SAS))
    time.sleep(SETTLE_DEL)
    expect_count(0, "floor nl-rotate")
    if r:
        check(int(r.get("err", 0)) == 0, f"floor nl-rotate: no error ({r.get('err')})")
        sample("floor:nl-rotate", float(r["secs"]))
        for k in ("in_add", "out_replace", "in_del"):
            sample(f"floor:nl-rotate:{k}", float(r[k]))

# The floor of a cold start (#22): the SAs a fresh daemon installs (floor -K 17:
# per link outbound generation 15 and inbound generations 0..15, the links' SPIs),
# added by the method its backend's pass is closest to. An untimed add first grows
# the kernel's hash tables to 17N, as the daemon's own first start leaves them.
COLD_SPIS = ["-K", "17", "-L", hex(SPI_PREFIX0)]
COLD_FLOOR = "netlink-batch-esn" if args.kernel == "xfrm" else "pfkey-mmsg"
floor("-m", "warmup", *COLD_SPIS, "nl-add-batch", str(SAS_FRESH))
time.sleep(SETTLE_ADD)
floor("-m", "warmup", *COLD_SPIS, "nl-del-batch", str(SAS_FRESH))
time.sleep(SETTLE_DEL)
for rep in range(args.reps):
    add, dele = methods[COLD_FLOOR]
    r = floor("-m", f"cold-{COLD_FLOOR}", *COLD_SPIS, *add, str(SAS_FRESH))
    time.sleep(SETTLE_ADD)
    expect_count(SAS_FRESH, f"floor {COLD_FLOOR} add of a cold start's SAs")
    if r:
        check(int(r.get("lost", 0)) == 0 and int(r.get("err", 0)) == 0,
              f"floor {COLD_FLOOR} cold add: no error, no lost reply")
        sample("floor:cold-start:add", float(r["secs"]))
    floor("-m", f"cold-{COLD_FLOOR}", *COLD_SPIS, *dele, str(SAS_FRESH))
    time.sleep(SETTLE_DEL)
    expect_count(0, f"floor {COLD_FLOOR} delete of a cold start's SAs")

# --- the daemon's configuration ---------------------------------------------
KEYS = f"{WORK}/keys"
os.makedirs(KEYS, mode=0o700, exist_ok=True)
for p in range(N):
    path = f"{KEYS}/l{p}.key"
    if not os.path.exists(path):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, (os.urandom(32).hex() + "\n").encode())
        os.close(fd)
STAMP = f"{WORK}/alert-stamp"  # floor.c run under this name appends to WORK/stamps
if not os.path.lexists(STAMP):
    os.symlink(os.path.abspath(FLOOR), STAMP)


def write_config(path, state, rotate_every, phase, lead):
    lines = [
        "[daemon]",
        f"kernel = {args.kernel}",
        f"state_dir = {state}",
        f"control_socket = {state}/control.sock",
        f"alert_command = {STAMP}",
        "",
    ]
    for p in range(N):
        lines += [
            f"[link l{p}]",
            f"local = {ip4(1, p)}",
            f"remote = {ip4(2, p)}",
            f"secret_file = {KEYS}/l{p}.key",
            f"rotate_every = {rotate_every}s",
            f"phase = {phase}s",
            # Explicit: 10,000 auto prefixes (24 bits) would collide (birthday bound).
            f"spi_prefix = {SPI_PREFIX0 + p:#x}",
            f"lead = {lead}s",
            f"grace = {lead}s",
            # The floor installs no policy: neither does this benchmark.
            "policy = no",
            "",
        ]
    with open(path, "w") as f:
        f.write("\n".join(lines))


PASS_RE = re.compile(r"reconcile pass: (\d+) added, (\d+) deleted, (\d+) failed in ([0-9.]+) s")
# The ledger's rows for a pass are written after its last reply, then committed (svc/daemon/ledger.c).
LEDGER_RE = re.compile(r"ledger: (\d+) queued writes written and committed in ([0-9.]+) s")
SYNC_RE = re.compile(r"SADB synchronised: (\d+) SAs .* in ([0-9.]+) s")


def ledger_commits(logpath):
    with open(logpath, errors="replace") as f:
        return [(int(n), float(t)) for n, t in LEDGER_RE.findall(f.read())]


def passes(logpath):
    with open(logpath, errors="replace") as f:
        return [tuple(float(x) for x in m.groups()) for m in PASS_RE.finditer(f.read())]


class Daemon:
    """sakeyd started through floor start-ready: exec -> READY=1 is timed."""

    def __init__(self, conf, logpath, label):
        self.log = open(logpath, "a")
        self.proc = subprocess.Popen([FLOOR, "-m", label, "start-ready", "--", args.sakeyd, "-c",
                                      conf], stdout=subprocess.PIPE, stderr=self.log, text=True)
        line = self.proc.stdout.readline()
        r = parse_result(line)
        self.result = r[0] if r else None
        ok = bool(self.result) and self.result.get("ok") == "1"
        check(ok, f"{label}: sakeyd ready ({line.strip()})")
        if not ok:
            raise SystemExit(finish())
        self.pid = int(self.result["pid"])
        self.secs = float(self.result["secs"])

    def status(self, key):
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])  # kB
        return -1

    def cpu(self):
        """(user s, system s, minor faults) of the daemon so far (proc(5) stat)."""
        with open(f"/proc/{self.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        tck = os.sysconf("SC_CLK_TCK")
        return int(fields[11]) / tck, int(fields[12]) / tck, int(fields[7])

    def stop(self):
        os.kill(self.pid, signal.SIGTERM)
        rc = self.proc.wait(timeout=120)
        self.log.close()
        check(rc == 0, f"sakeyd stopped cleanly (exit {rc})")


def flush():
    subprocess.run(["ip", "xfrm", "state", "flush"], check=False)
    time.sleep(SETTLE_DEL)
    expect_count(0, "flushed")


def med(name):
    xs = samples.get(name, [])
    return statistics.median(xs) if xs else float("nan")


def pct(xs, q):
    xs = sorted(xs)
    if not xs:
        return float("nan")
    k = (len(xs) - 1) * q
    lo = int(k)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


# --- 2. phase A: start-up, status, EXPIRE latency, RSS ----------------------
STATE_A = f"{WORK}/state-a"
os.makedirs(STATE_A, exist_ok=True)
CONF_A = f"{WORK}/a.conf"
DAY = 86400
# The middle of an epoch: no change point for half a day.
write_config(CONF_A, STATE_A, DAY, (int(time.time()) + DAY // 2) % DAY, 60)
open(LOG_A, "w").close()



def cold_start():
    """sakeyd on an empty SADB and state directory: exec -> READY=1, and exec -> the
    kernel's SA count reaching SAS_FRESH, seen from outside (floor wait-count)."""
    w = subprocess.Popen([FLOOR, "-m", "cold-start", "wait-count", "ge", str(SAS_FRESH), "900"],
                         stdout=subprocess.PIPE, text=True)
    d = Daemon(CONF_A, LOG_A, "startup-empty")
    sample("sakeyd:startup-empty", d.secs)
    r = parse_result(w.communicate(timeout=900)[0])
    ok = bool(r) and r[0].get("ok") == "1" and "forked_at" in d.result
    check(ok, f"cold start: the SAD count reached {SAS_FRESH} ({r})")
    if ok:
        sample("sakeyd:cold-start-count", float(r[0]["at"]) - float(d.result["forked_at"]))
    return d


d = cold_start()
ps = passes(LOG_A)
check(len(ps) == 1 and ps[0][0] == SAS_FRESH and ps[0][2] == 0,
      f"start-up from empty: one pass adding {SAS_FRESH} SAs ({ps})")
if ps:
    sample("sakeyd:initial-pass", ps[0][3])
expect_count(SAS_FRESH, "phase A installed")
# More cold starts: the SADB flushed and the state directory emptied before each.
for rep in range(1, args.reps):
    d.stop()
    flush()
    shutil.rmtree(STATE_A)
    os.makedirs(STATE_A)
    d = cold_start()
    more = passes(LOG_A)[len(ps):]
    check(len(more) == 1 and more[0][0] == SAS_FRESH and more[0][2] == 0,
          f"cold start {rep + 1}: one pass adding {SAS_FRESH} SAs ({more})")
    if more:
        sample("sakeyd:initial-pass", more[0][3])
    ps = passes(LOG_A)
    expect_count(SAS_FRESH, f"cold start {rep + 1} installed")
# The ESN floor stands for the daemon's SAs only if they are the same: check one.
if args.kernel == "xfrm":
    st = subprocess.run(["ip", "xfrm", "state", "list", "src", ip4(2, 0), "dst", ip4(1, 0)],
                        capture_output=True, text=True).stdout
    check(re.search(r"flag .*\besn\b", st) is not None and "replay_window 128" in st,
          "kernel = xfrm installs ESN SAs with a 128-packet window, as the ESN floor: "
          + repr([ln.strip() for ln in st.splitlines() if "flag" in ln or "replay" in ln]))
sample("sakeyd:vmhwm-kB:startup-empty", d.status("VmHWM"))

for rep in range(args.reps):
    d.stop()
    expect_count(SAS_FRESH, "SAs stay after SIGTERM")
    d = Daemon(CONF_A, LOG_A, "startup-adopt")
    sample("sakeyd:startup-adopt", d.secs)
    sample("sakeyd:vmhwm-kB:adopt", d.status("VmHWM"))
    check(len(passes(LOG_A)) == len(ps), "adoption: no SA added or deleted")
with open(LOG_A, errors="replace") as f:
    syncs = [float(m.group(2)) for m in SYNC_RE.finditer(f.read()) if int(m.group(1)) == SAS_FRESH]
notes["resync_s"] = syncs

# sactl over the same SAs, and the floor's PF_KEY dump of them, alternated.
for rep in range(args.reps):
    r = floor("-m", "sactl-json", "-o", f"{WORK}/status.json", "timeit", str(SAS_FRESH), "--",
              args.sactl, "-c", CONF_A, "status", "--json")
    if r:
        sample("sactl:status-json", float(r["secs"]))
    r = floor("-m", "sactl-table", "-o", f"{WORK}/status.txt", "timeit", str(SAS_FRESH), "--",
              args.sactl, "-c", CONF_A, "status")
    if r:
        sample("sactl:status-table", float(r["secs"]))
    r = floor("-m", "dump", "dump")
    if r:
        sample("floor:pfkey-dump-daemon-sas", float(r["secs"]))
try:
    with open(f"{WORK}/status.json") as f:
        js = json.load(f)["sas"]
    check(sum(1 for e in js if e.get("managed")) == SAS_FRESH,
          f"status --json lists {SAS_FRESH} managed SAs")
except (OSError, ValueError) as e:
    check(False, f"status --json parses: {e}")
with open(f"{WORK}/status.txt") as f:
    table_lines = sum(1 for _ in f)
check(table_lines >= SAS_FRESH, f"status table has a line per SA ({table_lines})")

STAMPS = f"{WORK}/stamps"  # what the alert command (floor as alert-stamp) writes


def stamp_latencies(starts, event):
    """
    Per SPI, ms from its start instant ("WHAT 0xSPI ns" lines in starts) to the
    first stamp the alert command wrote for it with SAKEYD_EVENT = event.
    """
    t0, got = {}, {}
    with open(starts) as f:
        for line in f:
            _, spi, ns = line.split()
            t0[int(spi, 16)] = int(ns)
    if os.path.exists(STAMPS):
        with open(STAMPS) as f:
            for line in f:
                # Commands still running append to the file: a line may be partly written.
                parts = line.split()
                if len(parts) != 3 or not parts[2].isdigit():
                    continue
                ev, spi, ns = parts
                if ev == event and spi.startswith("0x"):
                    got.setdefault(int(spi, 16), int(ns))
    return [(got[s] - t0[s]) / 1e6 for s in t0 if s in got]


# SADB_EXPIRE -> alert_command, with 2N SAs present.
lat_all = []
for rep in range(args.reps):
    if os.path.exists(STAMPS):
        os.unlink(STAMPS)
    exp = f"{WORK}/expire-{rep}.txt"
    r = floor("-s", "0x20000", "-m", "expire", "expire-lat", str(args.expire_n), "40", "2", exp)
    # The alert commands still queued (4 run at a time): whether each EXPIRE reached its
    # command is a question of loss, not of latency (the latency is stamp - arrival), so
    # wait for the stragglers, up to a minute, before counting.
    waited = time.time()
    while True:
        lat = stamp_latencies(exp, "expire-soft")
        if len(lat) >= args.expire_n or time.time() - waited > 60:
            break
        time.sleep(0.5)
    log(f"INFO expire rep {rep}: {len(lat)} stamps {time.time() - waited:.1f} s after the last add")
    if r:
        # Adds that left late on their 40 ms schedule (the adder catches up) expire together.
        log(f"INFO expire rep {rep}: adds late by up to {r.get('late_max_ms')} ms (add "
            f"{r.get('late_at')}), longest send {r.get('send_max_ms')} ms, set-up "
            f"{r.get('setup_ms')} ms (socket opens {r.get('open_ms')}, SADB_REGISTER "
            f"{r.get('register_ms')})")
    check(len(lat) == args.expire_n,
          f"expire rep {rep}: {len(lat)} of {args.expire_n} EXPIREs reached the alert command")
    lat_all += lat
    # The raw instants, kept: when each EXPIRE arrived, when its command ran.
    subprocess.run(["cp", exp, f"{OUT}/expire-{rep}.txt"], check=False)
    subprocess.run(["cp", STAMPS, f"{OUT}/stamps-expire-{rep}.txt"], check=False)
    floor("-s", "0x20000", "expire-del", str(args.expire_n))
    time.sleep(SETTLE_DEL)
samples["expire-alert-ms"] = lat_all

# The floor of that latency in this boot: the same alert command started by a
# bare posix_spawn (alerts.c's attributes), CLOCK_MONOTONIC before the call to
# the command's first instruction. No kernel message, no daemon.
spawn_all = []
for rep in range(args.reps):
    if os.path.exists(STAMPS):
        os.unlink(STAMPS)
    out = f"{WORK}/spawn-{rep}.txt"
    floor("-s", "0x30000", "-m", "spawn", "spawn-lat", str(args.expire_n), "40", STAMP, out)
    lat = stamp_latencies(out, "spawn")
    check(len(lat) == args.expire_n,
          f"spawn rep {rep}: {len(lat)} of {args.expire_n} spawned commands stamped")
    spawn_all += lat
samples["spawn-floor-ms"] = spawn_all
sample("sakeyd:vmhwm-kB:phase-a-end", d.status("VmHWM"))
d.stop()
flush()

# --- 3. phase B: rotation throughput ----------------------------------------
# lead = grace = L; rotate_every = 4L: per rotation three bursts, L apart.
# L covers one burst with room to spare: start-up from empty made 2N SAs.
L = args.lead or max(10, int(0.75 * med("sakeyd:startup-empty")) + 5)
P = 4 * L
# The start must lie after the previous epoch's grace (T1 - P + L = T1 - 3L)
# and start-up (config, secrets, 2N adds) must be over before the first burst
# (T1 - L): T1 = now + 3L - 2 leaves 2 s after that grace and 2L - 2 s for
# the start-up (L is at least 1.5 times the start-up measured in phase A).
T1 = int(time.time()) + 3 * L - 2  # first change point; its inbound burst at T1 - L
STATE_B = f"{WORK}/state-b"
os.makedirs(STATE_B, exist_ok=True)
CONF_B = f"{WORK}/b.conf"
write_config(CONF_B, STATE_B, P, T1 % P, L)
open(LOG_B, "w").close()
notes["phase_b"] = {"lead": L, "grace": L, "rotate_every": P}
d = Daemon(CONF_B, LOG_B, "startup-rotation")
check(time.time() < T1 - L, "phase B started before the first burst")
base = len(passes(LOG_B))
ledger_base = len(ledger_commits(LOG_B))
cpu0 = d.cpu()
# The first rotation leaves the fresh epoch (its T+grace deletes 16N): sampled on its own
# ("-first"); the REPS after it are the steady rotations the floor's 4N stand for.
ROTATIONS = args.reps + 1
for rep in range(ROTATIONS):
    T = T1 + rep * P
    tag = "-first" if rep == 0 else ""
    # Before: the fresh epoch's 17N, or 4N; 3N inbound added, then the previous epoch's gone.
    before = SAS_FRESH if rep == 0 else SAS_STEADY
    for at, op, target, name in ((T - L, "ge", before + 3 * N, "in-add"),
                                 (T, None, 0, "out-replace"), (T + L, "le", SAS_STEADY, "in-del")):
        delay = at - 0.3 - time.time()
        if delay > 0:
            time.sleep(delay)
        if op:
            r = floor("-m", f"ext-{name}", "wait-count", op, str(target), str(L - 1))
            if r and r.get("ok") == "1":
                sample(f"ext:{name}{tag}", float(r["at"]) - at)
    time.sleep(min(L - 1, 5))
    # The three passes of this rotation.
    deadline = time.time() + L
    while len(passes(LOG_B)) < base + 3 and time.time() < deadline:
        time.sleep(0.5)
    ps = passes(LOG_B)[base:base + 3]
    base += 3
    shape = [(a, dl, fl) for a, dl, fl, _ in ps]
    ok = shape == [(3 * N, 0, 0), (N, N, 0), (0, before - N, 0)]
    check(ok, f"rotation {rep}: passes {shape}")
    if ok:
        sample(f"sakeyd:in-add{tag}", ps[0][3])
        sample(f"sakeyd:out-replace{tag}", ps[1][3])
        sample(f"sakeyd:in-del{tag}", ps[2][3])
        sample(f"sakeyd:rotation{tag}", ps[0][3] + ps[1][3] + ps[2][3])
    expect_count(SAS_STEADY, f"rotation {rep}: 4N SAs after it")
cpu1 = d.cpu()
# What the ledger wrote after the passes: not in the passes' time, but the daemon's work.
lc = ledger_commits(LOG_B)[ledger_base:]
notes["ledger_after_passes"] = {"commits": len(lc), "writes": sum(n for n, _ in lc),
                                "seconds_per_rotation": sum(t for _, t in lc) / ROTATIONS}
sample("sakeyd:ledger-per-rotation", sum(t for _, t in lc) / ROTATIONS)
# What the rotations cost the daemon, including its refresh dumps meanwhile.
notes["rotation_cpu_per_rep"] = {"user_s": (cpu1[0] - cpu0[0]) / ROTATIONS,
                                 "system_s": (cpu1[1] - cpu0[1]) / ROTATIONS,
                                 "minor_faults": (cpu1[2] - cpu0[2]) / ROTATIONS}
sample("sakeyd:vmhwm-kB:rotation", d.status("VmHWM"))
d.stop()
# What the state directory holds after the rotations and a clean stop: the ledger, the
# generation records (with XFRM, every inbound SA's replay state, rewritten at each dump)
# and what their write-ahead logs kept.
state_files = {}
for name in sorted(os.listdir(STATE_B)):
    state_files[name] = os.stat(os.path.join(STATE_B, name)).st_size
notes["state_dir_after_rotations"] = state_files
flush()


# --- results ----------------------------------------------------------------
def cell(name, scale=1.0, fmt="{:.3f}"):
    xs = samples.get(name, [])
    if not xs:
        return "-"
    return (fmt.format(statistics.median(xs) * scale) + " (" + fmt.format(min(xs) * scale) + "–"
            + fmt.format(max(xs) * scale) + ")")


def ratio(a, b):
    return f"{a / b:.2f}" if a == a and b == b and b > 0 else "-"


rows = []
floor_rot = {m: med(f"floor:{m}:add") + med(f"floor:{m}:del") for m in methods}
d_rot = med("sakeyd:rotation")
rows.append("| figure | median (min–max) | floor, same boot | ratio | goal |")
rows.append("|---|---|---|---|---|")
for m in methods:
    rows.append(f"| floor {m}: add {SAS} / delete {SAS} SAs (s) | {cell(f'floor:{m}:add')} / "
                f"{cell(f'floor:{m}:del')} | | | |")
rows.append(f"| sakeyd rotation of {N} links: {4 * N} adds + {4 * N} deletes (v2 spares; the "
            f"floor the same: {SAS} + {SAS}), sum of its 3 passes (s) "
            f"| {cell('sakeyd:rotation')} | pfkey-pipe {floor_rot['pfkey-pipe']:.3f} s | "
            f"{ratio(floor_rot['pfkey-pipe'], d_rot)}x pfkey-pipe | >= 0.8x |")
rows.append(f"| same, against pfkey-mmsg (the pipelined floor sending 64 per sendmmsg, as sakeyd "
            f"does) | | pfkey-mmsg {floor_rot['pfkey-mmsg']:.3f} s | "
            f"{ratio(floor_rot['pfkey-mmsg'], d_rot)}x pfkey-mmsg | |")
if "ip-batch" in methods:
    rows.append(f"| same, against ip -batch | | ip-batch {floor_rot['ip-batch']:.3f} s | "
                f"{ratio(floor_rot['ip-batch'], d_rot)}x ip-batch | >= 20x |")
for m in ("netlink-batch", "netlink-batch-esn"):
    what = ("ESN, 128-packet window" if m.endswith("-esn") else "32-packet window, no ESN")
    rows.append(f"| same, against {m} (the XFRM floor; {what}"
                f"{': the SAs this run installs' if m == XFRM_FLOOR else ''}) | | {m} "
                f"{floor_rot[m]:.3f} s | {ratio(floor_rot[m], d_rot)}x | "
                f"{'(#22: >= 0.8x)' if m == XFRM_FLOOR and args.kernel == 'xfrm' else ''} |")
nl_rot = med("floor:nl-rotate")
rows.append(f"| the kernel's share of the same rotation: its three bursts by batched netlink, in "
            f"sakeyd's order, its SAs present and of its shape (floor nl-rotate) (s) | "
            f"{cell('floor:nl-rotate')} | | "
            + (f"sakeyd's own: {d_rot - nl_rot:.3f} s ({100 * (d_rot - nl_rot) / d_rot:.0f} %)"
               if args.kernel == "xfrm" else "(netlink; sakeyd speaks PF_KEY in this run)")
            + " | |")
rows.append(f"| after the passes: the ledger's queued rows written and committed, per rotation "
            f"(s) | {cell('sakeyd:ledger-per-rotation')} | | | |")
rows.append(f"| pass: {3 * N} inbound adds at T-lead (s) | {cell('sakeyd:in-add')} | outside: "
            f"{cell('ext:in-add')}; nl-rotate {cell('floor:nl-rotate:in_add')} | | |")
rows.append(f"| pass: {N} outbound adds + {N} deletes at T (s) | {cell('sakeyd:out-replace')} | "
            f"nl-rotate {cell('floor:nl-rotate:out_replace')} | | |")
rows.append(f"| pass: {3 * N} inbound deletes at T+grace (s) | {cell('sakeyd:in-del')} | outside: "
            f"{cell('ext:in-del')}; nl-rotate {cell('floor:nl-rotate:in_del')} | | |")
rows.append(f"| the first rotation after a fresh start (its T+grace deletes the fresh epoch's "
            f"{16 * N} inbound SAs), sum of its 3 passes (s) | {cell('sakeyd:rotation-first')} | "
            f"| | |")
dump = med("floor:pfkey-dump-daemon-sas")
rows.append(f"| sactl status --json, {SAS_FRESH} SAs (s) | {cell('sactl:status-json')} | pfkey dump "
            f"{cell('floor:pfkey-dump-daemon-sas')} | {ratio(med('sactl:status-json'), dump)}x "
            f"dump | < 10x |")
rows.append(f"| sactl status (table), {SAS_FRESH} SAs (s) | {cell('sactl:status-table')} | | "
            f"{ratio(med('sactl:status-table'), dump)}x dump | |")
for k, what in (("startup-empty", "after start-up from empty"),
                ("adopt", f"after start-up with {SAS_FRESH} SAs present"),
                ("phase-a-end", "end of phase A (status, expiries)"),
                ("rotation", f"end of phase B ({ROTATIONS} rotations, up to {SAS_FRESH + 3 * N} SAs)")):
    rows.append(f"| peak RSS (VmHWM), {what} (MiB) | "
                f"{cell('sakeyd:vmhwm-kB:' + k, 1 / 1024, '{:.1f}')} | | | < 64 MiB |")
for name, size in notes.get("state_dir_after_rotations", {}).items():
    rows.append(f"| state directory after phase B and a clean stop: {name} (MiB) | "
                f"{size / 1048576:.1f} | | | |")
lat = samples.get("expire-alert-ms", [])
spawn = samples.get("spawn-floor-ms", [])
if lat:
    floor_cell = (f"bare posix_spawn -> main: p50 {pct(spawn, .5):.2f}, p99 {pct(spawn, .99):.2f}"
                  if spawn else "")
    rows.append(f"| SADB_EXPIRE -> alert_command running, {len(lat)} samples, {SAS_FRESH} SAs (ms) | "
                f"p50 {pct(lat, .5):.2f}, p99 {pct(lat, .99):.2f}, max {max(lat):.2f} | "
                f"{floor_cell} | | p99 <= floor p99 + 1 ms |")
rows.append(f"| start-up, exec -> READY=1, {SAS_FRESH} SAs present (s) | {cell('sakeyd:startup-adopt')} "
            f"| | | |")
rows.append(f"| start-up, exec -> READY=1, empty SADB, installs {SAS_FRESH} (s) | "
            f"{cell('sakeyd:startup-empty')} | initial pass {cell('sakeyd:initial-pass')} | | |")
cold_floor = med("floor:cold-start:add")
rows.append(f"| cold start of {N} links: exec -> the kernel's SA count at {SAS_FRESH} (outside, "
            f"floor wait-count) (s) | {cell('sakeyd:cold-start-count')} | {COLD_FLOOR} adding the "
            f"same {SAS_FRESH} SAs {cell('floor:cold-start:add')} | "
            f"{ratio(cold_floor, med('sakeyd:cold-start-count'))}x | >= 0.5x |")


def goal(name, value, ok):
    mark = "-" if value != value else ("met" if ok else "NOT met")
    rows.append(f"| {name} | {value:.2f} | {mark} |")


# The goals of issues #8, #9, #19 and #22, as ratios to the floor of this boot
# (a report, not a test).
rows += ["", "| goal | value | |", "|---|---|---|"]
rot_pipe = floor_rot["pfkey-pipe"] / d_rot if d_rot > 0 else float("nan")
if args.kernel == "pfkey":
    goal("rotation / pfkey-pipe floor >= 1 (#22)", rot_pipe, rot_pipe >= 1)
else:
    goal("rotation / pfkey-pipe floor >= 0.8", rot_pipe, rot_pipe >= 0.8)
if "ip-batch" in methods:
    rot_ip = floor_rot["ip-batch"] / d_rot if d_rot > 0 else float("nan")
    goal("rotation / ip -batch >= 20", rot_ip, rot_ip >= 20)
if args.kernel == "xfrm":
    rot_nl = floor_rot[XFRM_FLOOR] / d_rot if d_rot > 0 else float("nan")
    goal(f"rotation / {XFRM_FLOOR} >= 0.8 (#22)", rot_nl, rot_nl >= 0.8)
ledger = med("sakeyd:ledger-per-rotation") / d_rot if d_rot > 0 else float("nan")
goal("ledger after the passes / the passes <= 0.25 (#22)", ledger, ledger <= 0.25)
adopt = med("sakeyd:startup-adopt") / dump if dump > 0 else float("nan")
goal(f"start-up with {SAS_FRESH} SAs present / pfkey dump of them <= 2 (#22)", adopt, adopt <= 2)
cold = cold_floor / med("sakeyd:cold-start-count") if med("sakeyd:cold-start-count") > 0 \
    else float("nan")
goal(f"cold start: {COLD_FLOOR} floor / exec -> {SAS_FRESH} SAs >= 0.5 (#22)", cold, cold >= 0.5)
st = med("sactl:status-json") / dump if dump > 0 else float("nan")
goal("status --json / pfkey dump < 10", st, st < 10)
hwm = max(samples.get("sakeyd:vmhwm-kB:adopt", [float("nan")])) / 1024
goal(f"peak RSS with {SAS_FRESH} SAs (MiB) < 64", hwm, hwm < 64)
hwm_b = max(samples.get("sakeyd:vmhwm-kB:rotation", [float("nan")])) / 1024
goal(f"peak RSS after {ROTATIONS} rotations (MiB) < 64 (#22)", hwm_b, hwm_b < 64)
if lat and spawn:
    # #22 replaced #8's "p99 < 5 ms", which no process-per-alert design meets on this
    # kernel, with the same-boot posix_spawn floor's p99 plus 1 ms.
    over = pct(lat, .99) - pct(spawn, .99)
    goal("EXPIRE -> alert p99 - posix_spawn floor p99 (ms) <= 1 (#22)", over, over <= 1)
table = "\n".join(rows)



with open(f"{OUT}/table.md", "w") as f:
    f.write(table + "\n")
log(table)
log(f"INFO notes {json.dumps(notes)}")
sys.exit(finish())
