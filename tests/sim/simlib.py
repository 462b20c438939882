# SPDX-License-Identifier: ISC
"""Helpers of the tests on simd (tests/reliability/*.py, tests/sim/soak.py).

The daemon runs with kernel = sim and sim_connect: the simulated SADB is
tests/sim/simd, another process, which outlives the daemon and takes fault
commands on its control socket (drop, inject, stats). The test is one more
PF_KEY client of simd: it dumps the SADB and compares it with the desired set
computed here, independently of the daemon, from DESIGN.md (HKDF key
schedule v2, SPI = spi_prefix << 8 | generation << 4 | epoch mod 16,
make-before-break windows).
"""
import json
import os
import random
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import logs  # noqa: E402
from proc import connect_unix  # noqa: E402
from checks import Checks  # noqa: E402,F401 (simlib.Checks: for the drivers)
from keysched import inbound_epochs, phase as phase_of, spi, spi_prefix, write_secret  # noqa: E402
from pfkey import (SADB_DUMP, delete_request, dump_request, flush_request, parse,  # noqa: E402
                   spdflush_request)


class Link:
    def __init__(self, name, local, remote, period, lead=None, grace=None, phase=None):
        self.name, self.local, self.remote, self.period = name, local, remote, period
        quarter = min(60, period // 4)
        self.lead = quarter if lead is None else lead
        self.grace = quarter if grace is None else grace
        self.secret = os.urandom(32)
        # phase set: written to the configuration; None: the daemon derives it from the secret.
        self.phase_set = phase
        self.phase = phase if phase is not None else phase_of(self.secret, period)
        self.prefix = spi_prefix(self.secret)

    def epoch(self, t):
        return (int(t) - self.phase) // self.period

    def desired(self, t):
        """The (spi, src, dst) this link should have at Unix time t (DESIGN.md windows)."""
        e = self.epoch(t)
        out = {(spi(self.prefix, k), self.remote, self.local) for k in inbound_epochs(self, t)}
        out.add((spi(self.prefix, e), self.local, self.remote))
        return out


def make_links(n, period, lead=None, grace=None, prefix="l", phase=None):
    """n links from 192.0.2.1 to distinct remotes, distinct spi_prefixes; with phase
    set, each link's phase is that many seconds instead of its automatic one."""
    links, prefixes = [], set()
    for i in range(n):
        while True:
            link = Link(f"{prefix}{i + 1}", "192.0.2.1", f"10.{(i >> 8) & 255}.{i & 255}.2",
                        period, lead, grace, phase)
            if link.prefix not in prefixes:
                break
        prefixes.add(link.prefix)
        links.append(link)
    return links


class Env:
    """A work directory, simd, the configuration; the daemon started and stopped at will."""

    def __init__(self, sakeyd, sactl, simd, logdir, links, daemon_extra="", private_state=False):
        self.sakeyd, self.sactl_path, self.simd, self.logdir = sakeyd, sactl, simd, logdir
        self.links = links
        # Unix socket paths must stay short: work in a fresh private directory.
        self.work = tempfile.mkdtemp(prefix="sakeyd-rel-")
        self.state = f"{self.work}/state"
        os.makedirs(self.state)
        os.makedirs(logdir, exist_ok=True)
        self.sim_sock, self.sim_ctl = f"{self.work}/sim.sock", f"{self.work}/simctl.sock"
        self.conf = f"{self.work}/sakeyd.conf"
        self.logpath = f"{self.work}/sakeyd.log"
        self.daemon = None
        self.runs = 0
        self.daemon_extra = daemon_extra
        for link in links:
            write_secret(f"{self.work}/{link.name}.key", link.secret)
        with open(self.conf, "w") as f:
            f.write(self.conf_text(links))
        self.simd_log = open(f"{self.work}/simd.log", "w")
        self.simd_proc = subprocess.Popen([simd, self.sim_sock, self.sim_ctl],
                                          stdout=self.simd_log, stderr=self.simd_log)
        deadline = time.time() + 20
        while not (os.path.exists(self.sim_sock) and os.path.exists(self.sim_ctl)):
            if time.time() > deadline or self.simd_proc.poll() is not None:
                raise RuntimeError("simd did not start")
            time.sleep(0.02)
        self.obs = connect_unix(self.sim_sock, 10)
        self.dump_seq = 0

    def conf_text(self, links):
        """The configuration: these links (of this Env: their key files exist)."""
        text = f"""[daemon]
kernel = sim
sim_connect = {self.sim_sock}
state_dir = {self.state}
control_socket = {self.work}/control.sock
{self.daemon_extra}
"""
        for link in links:
            text += f"""
[link {link.name}]
local = {link.local}
remote = {link.remote}
secret_file = {self.work}/{link.name}.key
rotate_every = {link.period}s
"""
            if link.phase_set is not None:
                text += f"phase = {link.phase_set}s\n"
            text += f"""lead = {link.lead}s
grace = {link.grace}s
hard_slack = 30s
"""
        return text

    # --- simd ------------------------------------------------------------------
    def simctl(self, line):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(10)
            s.connect(self.sim_ctl)
            s.sendall((line + "\n").encode())
            out = b""
            while not out.endswith(b"\n"):
                chunk = s.recv(4096)
                if not chunk:
                    break
                out += chunk
        return out.decode().strip()

    def sim_stats(self):
        words = self.simctl("stats").split()
        return {words[i]: int(words[i + 1]) for i in range(0, len(words), 2)}

    def sim_send(self, src, dst, nbytes=100):
        """One ESP packet src -> dst through the simulated SADB (simd "send"): (spi, seq)
        of the SA and sequence number that carried it, or (-errno or 0, 0) when none did."""
        ret, seq = (int(w) for w in self.simctl(f"send {src} {dst} {nbytes}").split())
        return ret, seq

    def sim_deliver(self, dst, spi, seq, nbytes=100):
        """An inbound ESP packet with this sequence number to the SA (dst, spi) (simd
        "deliver"): "accepted", "replay", "too-old", "seq-zero", "no-state" or "expired"."""
        return self.simctl(f"deliver {dst} {spi:#x} {seq} {nbytes}")

    def sim_sa_replay(self, dst, spi):
        """The SA's sequence and replay state (simd "replay"): a dict with oseq, seq,
        bitmap, window, replay, replay_window, packets, bytes; None if there is no such SA."""
        words = self.simctl(f"replay {dst} {spi:#x}").split()
        if words == ["no-state"]:
            return None
        return {words[i]: int(words[i + 1]) for i in range(0, len(words), 2)}

    def sim_conn(self):
        """A control connection to simd kept open (SimConn): for a test that sends many
        commands, e.g. a packet pump."""
        return SimConn(self.sim_ctl)

    def pfkey_request(self, msg, timeout=10):
        """Send one PF_KEY request (pid 4243) as another tool on the host would; the errno
        of simd's reply to it (0: done)."""
        while select.select([self.obs], [], [], 0)[0]:
            self.obs.recv(65536)
        want = parse(msg)
        self.obs.send(msg)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if not select.select([self.obs], [], [], 1)[0]:
                continue
            m = parse(self.obs.recv(65536))
            if m and m[0] == want[0] and m[2] == want[2] and m[3] == 4243:
                return m[1]
        raise RuntimeError(f"no reply to PF_KEY type {want[0]}")

    def sim_flush(self, policies=False):
        """The SADB flushed by another tool (SADB_FLUSH, all SA types: what `ip xfrm
        state flush` broadcasts to PF_KEY sockets), and with policies the SPD too
        (SADB_X_SPDFLUSH): the kernel's state lost, as by a reboot. The flush's errno."""
        self.dump_seq += 1
        err = self.pfkey_request(flush_request(self.dump_seq, 4243))
        if policies:
            self.dump_seq += 1
            self.pfkey_request(spdflush_request(self.dump_seq, 4243))
        return err

    def sim_delete(self, spi, src, dst):
        """One ESP SA deleted by another tool (SADB_DELETE, as `ip xfrm state delete`
        broadcasts it): 0, or the errno (ESRCH: no such SA)."""
        self.dump_seq += 1
        return self.pfkey_request(delete_request(self.dump_seq, 4243, spi, src, dst))

    def dump(self):
        """Every SA in the simulated SADB, as a list of (spi, src, dst) (duplicates kept)."""
        while select.select([self.obs], [], [], 0)[0]:
            self.obs.recv(65536)  # broadcasts we do not need
        self.dump_seq += 1
        seq = self.dump_seq
        self.obs.send(dump_request(seq, 4242))
        out = []
        deadline = time.time() + 10
        while time.time() < deadline:
            r, _, _ = select.select([self.obs], [], [], 1)
            if not r:
                continue
            m = parse(self.obs.recv(65536))
            if not m or m[0] != SADB_DUMP or m[3] != 4242:
                continue
            typ, err, mseq, pid, spi, src, dst = m
            if err:
                return out  # ENOENT: empty
            out.append((spi, src, dst))
            if mseq == 0:
                return out
        raise RuntimeError("dump did not finish")

    def desired(self, t):
        out = set()
        for link in self.links:
            out |= link.desired(t)
        return out

    def managed(self, sas):
        prefixes = {link.prefix for link in self.links}
        return [sa for sa in sas if sa[0] >> 8 in prefixes]

    # --- the daemon ----------------------------------------------------------------
    def start(self, env=None, args=()):
        """Start sakeyd (extra args, e.g. -v); its output goes to the log after a run marker.
        Returns the log offset."""
        self.runs += 1
        with open(self.logpath, "a") as f:
            f.write(f"=== run {self.runs} ===\n")
            offset = f.tell()
        self.log = open(self.logpath, "a")
        self.daemon = subprocess.Popen([self.sakeyd, "-c", self.conf, *args], stdout=self.log,
                                       stderr=self.log, env=env)
        self.offset = offset
        return offset

    def log_since(self, offset=None):
        return logs.read(self.logpath, self.offset if offset is None else offset)

    def wait_log(self, needle, timeout=30, offset=None, poll=0.02):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if needle in self.log_since(offset):
                return True
            if self.daemon.poll() is not None:
                return needle in self.log_since(offset)
            time.sleep(poll)
        return False

    def kill9(self):
        self.daemon.kill()
        self.daemon.wait()
        self.log.close()

    def stop(self):
        """SIGTERM; (exit status, sanitizer report found in this run's output)."""
        self.daemon.send_signal(signal.SIGTERM)
        try:
            rc = self.daemon.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.daemon.kill()
            rc = self.daemon.wait()
        self.log.close()
        text = self.log_since()
        bad = any(s in text for s in ("LeakSanitizer", "AddressSanitizer", "runtime error:"))
        return rc, bad

    def sactl(self, *args):
        return subprocess.run([self.sactl_path, "-c", self.conf, *args], capture_output=True,
                              text=True)

    def ledger_live(self):
        """The SAs the ledger holds as live: a list of (spi, src, dst)."""
        r = self.sactl("status", "--json")
        if r.returncode != 0:
            return None
        return [(sa["spi"], sa["src"], sa["dst"]) for sa in json.loads(r.stdout)["sas"]
                if sa.get("state") != "gone"]

    def ledger_agrees(self, tries=10):
        """The ledger's live SAs equal the kernel's, at a quiet moment (same dump before and after)."""
        last = None
        for _ in range(tries):
            before = sorted(self.dump())
            ledger = self.ledger_live()
            after = sorted(self.dump())
            if ledger is not None and before == after:
                last = (before, sorted(ledger))
                if last[0] == last[1]:
                    return True, last
            time.sleep(0.3)
        return False, last

    def wait_mid_second(self, lo=0.3, hi=0.6):
        """Sleep to the middle of a second: every period here is whole seconds, phase too."""
        while True:
            frac = time.time() % 1
            if lo <= frac <= hi:
                return
            time.sleep(((lo - frac) % 1) + 0.01)

    def settled_set(self, tries=6, desired=None, refresh=None):
        """Dump at mid-second until the SADB equals the desired set; (ok, have, want, tries used).
        desired(t): the desired set at Unix time t (default: self.desired); refresh(): called
        after each dump, before the desired set is computed (a model re-reading records)."""
        desired = desired or self.desired
        have = want = None
        for i in range(tries):
            self.wait_mid_second()
            t = time.time()
            have = self.dump()
            if refresh:
                refresh()
            want = desired(t)
            if sorted(self.managed(have)) == sorted(want) and \
                    desired(time.time()) == want:
                return True, have, want, i + 1
            time.sleep(0.5)
        return False, have, want, tries

    def close(self, keep_logs=True):
        if self.daemon and self.daemon.poll() is None:
            self.daemon.kill()
            self.daemon.wait()
        try:
            self.simctl("quit")
        except OSError:
            pass
        try:
            self.simd_proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.simd_proc.kill()
            self.simd_proc.wait()
        self.simd_log.close()
        if keep_logs:
            for name in ("sakeyd.log", "simd.log"):
                if os.path.exists(f"{self.work}/{name}"):
                    shutil.copy(f"{self.work}/{name}", f"{self.logdir}/{name}")
        shutil.rmtree(self.work, ignore_errors=True)

    def stop_checked(self, check, label="SIGTERM"):
        """stop(), checked: exit 0, no sanitizer report, no link's secret in the log."""
        rc, bad = self.stop()
        check(rc == 0 and not bad, f"{label}: exit {rc}, no sanitizer report")
        check(self.secrets_absent(), "no secret in the log")

    def secrets_absent(self):
        text = logs.read(self.logpath)
        return not any(link.secret.hex() in text for link in self.links)


class SimConn:
    """One connection to simd's control socket, kept open: one command a line, one line of
    answer (simd.c). Not shared between threads."""

    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(10)
        self.sock.connect(path)
        self.buf = b""

    def call(self, line):
        self.sock.sendall((line + "\n").encode())
        while b"\n" not in self.buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise OSError("simd closed the control connection")
            self.buf += chunk
        out, self.buf = self.buf.split(b"\n", 1)
        return out.decode().strip()

    def send(self, src, dst, nbytes=100):
        """Env.sim_send on this connection: (spi or -errno or 0, seq)."""
        ret, seq = (int(w) for w in self.call(f"send {src} {dst} {nbytes}").split())
        return ret, seq

    def deliver(self, dst, spi, seq, nbytes=100):
        """Env.sim_deliver on this connection: "accepted", "replay", "too-old", ..."""
        return self.call(f"deliver {dst} {spi:#x} {seq} {nbytes}")

    def close(self):
        self.sock.close()


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return None


def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def rng(seed=None):
    seed = int(os.environ.get("SAKEYD_TEST_SEED", seed if seed is not None else time.time()))
    print(f"     seed {seed} (SAKEYD_TEST_SEED to replay)", flush=True)
    return random.Random(seed)
