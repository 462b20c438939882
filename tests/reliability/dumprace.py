#!/usr/bin/env python3
# SPDX-License-Identifier: ISC
"""The resync's dump runs on its own channel: what arrives there late must not undo news.

sakeyd dumps the SADB on a second socket, so that thousands of dump replies
never queue in front of an EXPIRE on the main one. Two sockets keep no
order between them: the dump may show an SA that the main channel has
already reported deleted (the kernel dumped it first), or an SA's older
state. This test makes that happen constantly and checks nothing wrong
comes of it.

On simd (which, like af_key, builds a dump's replies when it is asked and
delivers them as the socket drains): 20 links (rotate_every 1h, nothing
rotates), 1,500 SAs of another tool, refresh_interval 1s, so a dump of
1,540 entries is nearly always running. Meanwhile another PF_KEY client
replaces 250 foreign SAs a second: delete one, add a new one with a
fresh SPI, never reusing an SPI; and 300 more foreign SAs reach their soft
lifetime during the churn, their EXPIREs arriving while dumps run. Asserted:
- every foreign SPI has exactly one life in the ledger (`sactl status
  --json --all`): a dump entry taken before a delete and read after it
  would bring the SA back as a second row (seen missing at the next resync);
- each delete is an event "deleted by another tool", none "vanished";
- each SA that soft-expired during a dump is still there, dying, with one
  life and its expire-soft event (the EXPIRE is news newer than the dump:
  the SA was dropped as "vanished" at the dump's end, and its hard expiry
  later found no entry);
- after the churn, the ledger's live SAs equal the simulator's, and every
  resync logged finished ("SADB synchronised") on the dump channel with no
  fallback to the main one;
- SIGTERM exits 0 with no sanitizer report.

usage: dumprace.py SAKEYD SACTL SIMD LOGDIR
"""
import json
import os
import random
import socket
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "sim"))
import conform  # noqa: E402
import simlib  # noqa: E402

SAKEYD, SACTL, SIMD, LOGDIR = sys.argv[1:5]
FOREIGN, CHURN_S, RATE = 1500, 12, 250  # replacements per second
check = simlib.Checks()
# Every link half an hour from its next change point: nothing rotates.
links = simlib.make_links(20, 3600, phase=(int(time.time()) + 1800) % 3600)
env = simlib.Env(SAKEYD, SACTL, SIMD, LOGDIR, links, "refresh_interval = 1s\n")
rng = random.Random(int.from_bytes(os.urandom(4), "big"))

tool = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
tool.connect(env.sim_sock)
tool.setblocking(False)
PID = 777
seq = 0


def request(mtype, spi, keys, src="203.0.113.1", lifetimes=None):
    global seq
    seq += 1
    m = conform.sa_msg(mtype, conform.SATYPE_ESP, seq, PID, spi, src, "203.0.113.2",
                       keys=keys, lifetimes=lifetimes)
    while True:
        try:
            tool.send(m)
            return
        except BlockingIOError:
            drain(0.01)


def drain(wait=0.0):
    """Read (and forget) what simd sends the tool: its replies and everyone's broadcasts."""
    end = time.time() + wait
    while True:
        try:
            tool.recv(65536)
        except BlockingIOError:
            if time.time() >= end:
                return
            time.sleep(0.001)


next_spi = 0x70000000
live = []
for _ in range(FOREIGN):
    request("ADD", next_spi, True)
    live.append(next_spi)
    next_spi += 1
    drain()
drain(0.5)

offset = env.start()
check(env.wait_log("ready:", timeout=60, offset=offset) is not None,
      "sakeyd started and reconciled")

# SAs that reach their soft lifetime 2 to 9 s from now, in the middle of the churn.
DYING = [0x71000000 + i for i in range(300)]
for i, spi in enumerate(DYING):
    request("ADD", spi, True, src="203.0.113.3", lifetimes=(2 + i % 8, 3600))
    drain()

t_end = time.time() + CHURN_S
replaced = 0
while time.time() < t_end:
    victim = live.pop(rng.randrange(len(live)))
    request("DELETE", victim, False)
    request("ADD", next_spi, True)
    live.append(next_spi)
    next_spi += 1
    replaced += 1
    drain()
    # Paced: the ledger of every SA life stays small enough to read back.
    time.sleep(max(0.0, t_end - CHURN_S + replaced / RATE - time.time()))
drain(0.5)
print(f"     {replaced} foreign SAs replaced in {CHURN_S} s, while the daemon resynced")

# Let two more resyncs finish so whatever a stale entry brought back would be seen missing.
log = env.log_since(offset)
n0 = log.count("SADB synchronised")
deadline = time.time() + 20
while env.log_since(offset).count("SADB synchronised") < n0 + 2 and time.time() < deadline:
    time.sleep(0.2)
log = env.log_since(offset)
syncs = log.count("SADB synchronised")
check(syncs >= CHURN_S // 2, f"resyncs ran during the churn ({syncs})")
check("no separate channel for the SADB dump" not in log,
      "every dump ran on its own channel")

r = env.sactl("status", "--json", "--all")
rows = json.loads(r.stdout)["sas"] if r.returncode == 0 else []
check(r.returncode == 0, "sactl status --json --all")
lives = {}
for row in rows:
    if row["src"] == "203.0.113.1":
        lives.setdefault(row["spi"], []).append(row)
twice = {spi: len(v) for spi, v in lives.items() if len(v) != 1}
check(len(lives) == next_spi - 0x70000000,
      f"the ledger knows every foreign SA ({len(lives)} of {next_spi - 0x70000000})")
check(not twice, f"every foreign SA has exactly one life in the ledger "
      f"({len(twice)} with more: {sorted(twice.items())[:5]})")
r = env.sactl("events", "--json", "--since", "10m")
events = json.loads(r.stdout)["events"] if r.returncode == 0 else []
deletes = [e for e in events if e.get("event") == "delete" and e.get("src") == "203.0.113.1"]
vanished = [e["spi"] for e in deletes if "vanished" in (e.get("message") or "")]
check(r.returncode == 0 and len(deletes) >= replaced,
      f"a delete event per replaced SA ({len(deletes)} for {replaced})")
check(not vanished, f"no foreign SA recorded as vanished ({len(vanished)}: {vanished[:5]})")
dying = {}
for row in rows:
    if row["src"] == "203.0.113.3":
        dying.setdefault(row["spi"], []).append(row)
check(sorted(dying) == DYING and all(len(v) == 1 and v[0].get("state") == "dying"
                                     for v in dying.values()),
      "every SA that soft-expired during a dump has one life, still there, dying "
      f"({sum(len(v) == 1 and v[0].get('state') == 'dying' for v in dying.values())} "
      f"of {len(DYING)})")
softs = {e["spi"] for e in events if e.get("event") == "expire-soft" and e.get("src") == "203.0.113.3"}
lost = [e["spi"] for e in events if e.get("src") == "203.0.113.3" and e.get("event") == "delete"]
check(softs == set(DYING) and not lost,
      f"an expire-soft event for each, no delete ({len(softs)} of {len(DYING)}; "
      f"{len(lost)} deleted: {lost[:5]})")
gone = sum(1 for v in lives.values() for row in v if row.get("state") == "gone")
check(gone == replaced, f"the ledger has each replaced SA gone ({gone} of {replaced})")
ok, last = env.ledger_agrees()
check(ok, "the ledger's live SAs equal the simulator's" +
      ("" if ok else f" (sim {len(last[0]) if last else '?'}, ledger "
       f"{len(last[1]) if last else '?'})"))
rc, bad = env.stop()
check(rc == 0 and not bad, f"SIGTERM: exit {rc}, no sanitizer report")
env.close()
sys.exit(check.finish())
