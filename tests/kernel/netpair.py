# SPDX-License-Identifier: ISC
"""Two sakeyd hosts in two network namespaces of a User-Mode Linux guest (a library).

Shared by crash_restart.py and clock_skew.py: namespaces a (192.0.2.1) and
b (192.0.2.2) joined by veth, one link "ab" between them (ESP transport,
policies on), daemons started with an optional libfaketime offset, the
desired SA set recomputed here from DESIGN.md's key schedule, `ip xfrm`
parsing, and UDP sequence streams both ways that record what was lost and
when it was sent.
"""
import calendar
import glob
import json
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import keysched  # noqa: E402
import logs  # noqa: E402
from ipxfrm import parse_states  # noqa: E402
from proc import sh  # noqa: E402

A, B = "192.0.2.1", "192.0.2.2"
ADDR = {"a": A, "b": B}
PEER = {"a": "b", "b": "a"}
FAKETIME_LIB = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"


STAMP = re.compile(r"^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)\.(\d{3})Z ")


def log_time(line):
    """The Unix time of a daemon's log line, or None."""
    m = STAMP.match(line)
    if not m:
        return None
    y, mo, d, h, mi, s, ms = (int(x) for x in m.groups())
    return calendar.timegm((y, mo, d, h, mi, s, 0, 0, 0)) + ms / 1000


class Pair:
    """The two hosts, their link's schedule and their daemons."""

    def __init__(self, sakeyd, out, work, period, lead, grace, daemon_extra="",
                 kernels=("pfkey", "pfkey"), link_extra="", phase=None):
        """kernels: the backends of a and b; daemon_extra, link_extra: more lines for
        [daemon] and [link ab] (e.g. algorithm, esn); phase: seconds (default auto)."""
        self.sakeyd, self.out, self.work = sakeyd, out, work
        self.period, self.lead, self.grace = period, lead, grace
        self.procs, self.logs, self.nlogs = {}, {}, {}
        os.makedirs(work, exist_ok=True)
        sh("ip netns add a && ip netns add b")
        sh("ip link add va netns a type veth peer name vb netns b")
        for ns, dev in (("a", "va"), ("b", "vb")):
            sh(f"ip -n {ns} addr add {ADDR[ns]}/24 dev {dev} && ip -n {ns} link set {dev} up "
               f"&& ip -n {ns} link set lo up")
        self.secret = os.urandom(32)
        keysched.write_secret(f"{work}/link.key", self.secret)
        self.phase = keysched.phase(self.secret, period) if phase is None else phase % period
        if phase is not None:
            link_extra = f"phase = {self.phase}s\n{link_extra}"
        self.prefix = keysched.spi_prefix(self.secret)
        self.kernels = dict(zip(("a", "b"), kernels))
        for ns in ("a", "b"):
            with open(self.conf(ns), "w") as f:
                f.write(f"""[daemon]
kernel = {self.kernels[ns]}
state_dir = {work}/state-{ns}
control_socket = {work}/{ns}.sock
metrics_file = {work}/{ns}.prom
{daemon_extra}
[link ab]
local = {ADDR[ns]}
remote = {ADDR[PEER[ns]]}
secret_file = {work}/link.key
rotate_every = {period}s
lead = {lead}s
grace = {grace}s
hard_slack = 60s
{link_extra}""")

    def conf(self, ns):
        return f"{self.work}/{ns}.conf"

    # --- the schedule (DESIGN.md) ---------------------------------------------
    def epoch_at(self, t):
        return (int(t) - self.phase) // self.period

    def start(self, e):
        return e * self.period + self.phase

    def change_points(self, e):
        """Change points around epoch e's start: T-lead, T, T+grace."""
        t = self.start(e)
        return [t - self.lead, t, t + self.grace]

    def spi(self, e):
        return keysched.spi(self.prefix, e)

    def desired(self, ns, t):
        """Desired SAs of host ns at wall time t: set of (dir, spi)."""
        e = self.epoch_at(t)
        want = {("out", self.spi(e)), ("in", self.spi(e))}
        if int(t) < self.start(e) + self.grace:
            want.add(("in", self.spi(e - 1)))
        if int(t) >= self.start(e + 1) - self.lead:
            want.add(("in", self.spi(e + 1)))
        return want

    # --- key schedule v2 (DESIGN.md): generations -----------------------------------
    def spi_gen(self, e, gen):
        """The SPI of generation gen of epoch e's SA."""
        return keysched.spi(self.prefix, e, gen)

    @staticmethod
    def spares(cur):
        """The generations a receiver holds while the peer sends with cur (cur included)."""
        if cur <= 7:
            return {cur, 15} | ({cur + 1} if cur < 7 else set())
        return {cur} | ({cur - 1} if cur > 8 else set())

    def gen_records(self, ns):
        """
        What the logs of every daemon ns ran say about generations (wall times, no
        faketime): first = the epoch a fresh daemon sent with generation 15 in (or
        None); out = {epoch: generation} after a loss of its outbound SA; cur =
        {epoch: (generation, since, previous or None)} for the peer's generation
        seen on inbound traffic, the last of each epoch.
        """
        first, out, cur = None, {}, {}
        paths = sorted(glob.glob(f"{self.out}/sakeyd-{ns}*.log"),
                       key=lambda p: int(re.search(r"\.(\d+)\.log$", p).group(1))
                       if re.search(r"\.(\d+)\.log$", p) else 0)
        for path in paths:
            with open(path, errors="replace") as f:
                for line in f:
                    m = re.search(r"no generation records: sends with generation 15 of epoch (\d+)",
                                  line)
                    if m and first is None:
                        first = int(m.group(1))
                    m = re.search(r"lost its outbound SA of epoch (\d+).*?now sends with "
                                  r"generation (\d+)", line)
                    if m:
                        out[int(m.group(1))] = int(m.group(2))
                    m = re.search(r"the peer (?:now )?sends with generation (\d+) of epoch (\d+)"
                                  r"(?:.*?not (\d+):)?", line)
                    if m:
                        cur[int(m.group(2))] = (int(m.group(1)), log_time(line) or 0,
                                                int(m.group(3)) if m.group(3) else None)
        return first, out, cur

    def desired_v2(self, ns, t, records=None, slack=1.0):
        """
        The SAs host ns must hold at wall time t under key schedule v2, and those it
        may hold besides: (must, may), sets of (dir, spi). records: gen_records(ns).
        Outbound: generation 15 in its first epoch, 0 later, or the one it moved to
        after a loss. Inbound epoch k: all 16 while the peer's generation is unknown
        (k <= its first epoch, none seen yet), else the one in use and its spares;
        the one it superseded (all 16 if unknown) may stay until grace (+ slack)
        after the promotion.
        """
        first, out, cur = records or self.gen_records(ns)
        e = self.epoch_at(t)
        gen = out.get(e, 15 if first is not None and e <= first else 0)
        must, may = {("out", self.spi_gen(e, gen))}, set()
        ks = [e]
        if int(t) < self.start(e) + self.grace:
            ks.append(e - 1)
        if int(t) >= self.start(e + 1) - self.lead:
            ks.append(e + 1)
        for k in ks:
            if k in cur:
                g, since, prev = cur[k]
                must |= {("in", self.spi_gen(k, x)) for x in self.spares(g)}
                if t < since + self.grace + slack:
                    old = range(16) if prev is None else {prev}
                    may |= {("in", self.spi_gen(k, x)) for x in old}
            elif first is not None and k <= first:
                must |= {("in", self.spi_gen(k, x)) for x in range(16)}
            else:
                must |= {("in", self.spi_gen(k, x)) for x in self.spares(0)}
        return must, may - must

    def distance_to_change(self, t):
        """Seconds from t to the nearest change point of the link."""
        e = self.epoch_at(t)
        points = self.change_points(e) + self.change_points(e + 1) + self.change_points(e - 1)
        return min(abs(t - p) for p in points)

    def next_change(self, t):
        """Seconds from t to the next change point of the link (after t)."""
        e = self.epoch_at(t)
        return min(p - t for x in (e, e + 1) for p in self.change_points(x) if p > t)

    def wait_quiet(self, margin=0.35, need=0.0):
        """
        Sleep until at least margin seconds from any change point and at least need
        seconds before the next one (and return the time). need: how long the caller's
        look may take (at most the gap between change points less margin); a look
        begun 0.36 s before a change point seldom ends before it under load.
        """
        while self.distance_to_change(time.time()) < margin or \
                self.next_change(time.time()) < need:
            time.sleep(0.02)
        return time.time()

    # --- the kernel ---------------------------------------------------------------
    def states(self, ns):
        """SAs of namespace ns: list of dicts (src, dst, spi, packets, ...)."""
        return parse_states(sh(f"ip -s -n {ns} xfrm state"))

    def sa_set(self, ns):
        """The kernel's SAs of ns as a sorted list of (dir, spi); dir '?' if foreign."""
        res = []
        for s in self.states(ns):
            d = "out" if s["src"] == ADDR[ns] else "in" if s["dst"] == ADDR[ns] else "?"
            res.append((d, s.get("spi", 0)))
        return sorted(res)

    def policies(self, ns):
        """Directions of the link's policies in ns (a sorted list)."""
        out = sh(f"ip -n {ns} xfrm policy")
        return sorted(re.findall(r"\bdir (in|out|fwd)\b", out))

    def xfrm_stat(self, ns):
        text = sh(f"ip netns exec {ns} cat /proc/net/xfrm_stat")
        return {k: int(v) for k, v in (line.split() for line in text.splitlines())}

    # --- the daemons ---------------------------------------------------------------
    def prepare(self, ns, faketime=None, tag="", env=None):
        """
        Spawn what becomes sakeyd in ns, waiting on its stdin for go(): a shell
        in the namespace that then execs the daemon (same pid), so a restart
        costs the daemon's own start only, not UML's slow fork of this script
        and of ip(8). faketime: a libfaketime offset such as '+1'; env: more
        environment. Returns a handle for go().
        """
        n = self.nlogs.get(ns, 0)
        self.nlogs[ns] = n + 1
        path = f"{self.out}/sakeyd-{ns}{tag}.{n}.log"
        env_extra, env = env, dict(os.environ)
        if faketime is not None:
            env.update(LD_PRELOAD=FAKETIME_LIB, FAKETIME=faketime,
                       FAKETIME_DONT_FAKE_MONOTONIC="1", FAKETIME_NO_CACHE="1")
        env.update(env_extra or {})
        log = open(path, "w")
        p = subprocess.Popen(
            ["ip", "netns", "exec", ns, "sh", "-c", 'read go && exec "$0" "$@"', self.sakeyd,
             "-c", self.conf(ns), "-v"], stdin=subprocess.PIPE, stdout=log, stderr=log, env=env)
        log.close()
        return (ns, p, path)

    def go(self, handle):
        """Let a prepared sakeyd start; it becomes procs[ns]. Returns its log path."""
        ns, p, path = handle
        p.stdin.write(b"go\n")
        p.stdin.flush()
        self.procs[ns], self.logs[ns] = p, path
        return path

    def launch(self, ns, faketime=None, tag="", env=None):
        """Start sakeyd in ns now (see prepare()); return its log path."""
        return self.go(self.prepare(ns, faketime, tag, env))

    def log_text(self, ns):
        with open(self.logs[ns]) as f:
            return f.read()

    def wait_ready(self, ns, timeout=180):
        """Wait for the daemon's first reconciliation ("ready:"); the time seen, or None.
        A liveness bound, not a timing judgement: on PF_KEY the first pass waits in the
        kernel for REGISTER's algorithm probe, which took 60.8 s in a guest under a load
        of 20 (30 s was too short, and every later check of crash-restart failed with it)."""
        end = time.time() + timeout
        while time.time() < end:
            if re.search(r"\bready: ", self.log_text(ns)):
                return time.time()
            if self.procs[ns].poll() is not None:
                return None
            time.sleep(0.005)
        return None

    @staticmethod
    def ready_at(path):
        """The instant a daemon's log says it was ready (its first "ready:" line), or None.
        The daemon's own record, not when a test noticed: a test waiting on two daemons
        in turn notices the second one late."""
        return logs.logged_at(path, r"\bready: ")

    def sactl_json(self, sactl, ns, *args):
        r = subprocess.run([sactl, "-c", self.conf(ns), *args, "--json"], capture_output=True,
                           text=True)
        if r.returncode != 0:
            return None
        doc = json.loads(r.stdout)
        # --json objects (schema 2): the rows are under the command's key.
        return doc[{"status": "sas", "history": "rotations", "events": "events"}[args[0]]]

    def sactl(self, sactl, ns, *args):
        r = subprocess.run([sactl, "-c", self.conf(ns), *args], capture_output=True, text=True)
        return r.returncode, r.stdout + r.stderr


# --- traffic ------------------------------------------------------------------------
RECV = r"""
import socket, sys, signal, json
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], 5000)); s.settimeout(0.5)
seen, stop = set(), []
signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
print("ready", flush=True)
while not stop:
    try:
        seen.add(int(s.recv(64).decode()))
    except socket.timeout:
        pass
with open(sys.argv[2], "w") as f:
    json.dump(sorted(seen), f)
"""
# Sends seq 0, 1, ... every 10 ms until SIGTERM; records each seq's send time and result.
SEND = r"""
import socket, sys, time, signal, json
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
stop, sent = [], []
signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
while not stop:
    t = time.time()
    try:
        s.sendto(str(len(sent)).encode(), (sys.argv[1], 5000))
        sent.append((t, 1))
    except OSError:
        sent.append((t, 0))
    time.sleep(0.01)
with open(sys.argv[2], "w") as f:
    json.dump(sent, f)
"""


class Traffic:
    """UDP sequence streams a->b and b->a."""

    def __init__(self, work):
        self.work = work
        self.recv = {ns: subprocess.Popen(
            ["ip", "netns", "exec", ns, "python3", "-c", RECV, ADDR[ns], f"{work}/recv-{ns}"],
            stdout=subprocess.PIPE, text=True) for ns in ("a", "b")}
        for r in self.recv.values():
            r.stdout.readline()
        self.send = {ns: subprocess.Popen(
            ["ip", "netns", "exec", ns, "python3", "-c", SEND, ADDR[PEER[ns]],
             f"{work}/send-{ns}"]) for ns in ("a", "b")}

    def stop(self):
        """Stop; per direction 'a->b': (sent [(time, ok)], set of seqs received)."""
        for p in self.send.values():
            p.terminate()
            p.wait(timeout=30)
        time.sleep(0.5)
        for p in self.recv.values():
            p.terminate()
            p.wait(timeout=30)
        res = {}
        for ns in ("a", "b"):
            with open(f"{self.work}/send-{ns}") as f:
                sent = json.load(f)
            with open(f"{self.work}/recv-{PEER[ns]}") as f:
                got = set(json.load(f))
            res[f"{ns}->{PEER[ns]}"] = (sent, got)
        return res


def lost(sent, got):
    """Seqs sent (or refused) but not received: list of (seq, send time, refused)."""
    return [(i, t, not ok) for i, (t, ok) in enumerate(sent) if not ok or i not in got]
