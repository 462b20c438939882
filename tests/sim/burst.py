#!/usr/bin/env python3
# SPDX-License-Identifier: ISC
"""A burst of 10,000 SA expiries within one second (#22): every event in the ledger, a
bounded, summarised set of alert commands and ALERT lines, nothing else starved.

sakeyd on simd (kernel = sim, sim_connect) with LINKS links and hand-keyed SAs up to
SAS in all; an alert_command that records its environment, one file per run. simd's
"expire both" then sends, in one go, a soft EXPIRE for every SA and a hard EXPIRE
for every SA (2 x SAS messages; managed SAs too: the daemon re-installs them).
Checked: every expiry is an event in the database; the commands for expire-soft and
expire-hard are at most SINKS_BURST_FIRST one by one and one summary per window
(svc/daemon/sinks.h), and the summaries' SAKEYD_COUNT add up, with the runs one by
one, to every alert of that kind in the ledger; the ALERT lines likewise; the control
socket (status-ping) and sactl status answer during the burst; each link's outbound
SA is back; exit 0 with no sanitizer report. Printed: the digest time from the log
(first expiry alert to the last handled), the commands run, dropped.

usage: burst.py SAKEYD SACTL SIMD LOGDIR [SAS]
"""
import os
import re
import socket
import sqlite3
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import logs  # noqa: E402
import simlib  # noqa: E402
from checks import Checks  # noqa: E402
from pfkey import hand_add_request  # noqa: E402

SAKEYD, SACTL, SIMD, LOGDIR = sys.argv[1:5]
SAS = int(sys.argv[5]) if len(sys.argv) > 5 else 5000
LINKS = 20
# svc/daemon/sinks.h: SINKS_BURST_FIRST alerts of a kind one by one in a window of
# SINKS_BURST_WINDOW_MS; the rest of the window's make one summary at its end, and a
# window that follows a folded one folds all (one summary a window while it goes on).
FIRST, WINDOW_S = 100, 1
KINDS = ("expire-soft", "expire-hard")
check = Checks()


def ping(path):
    """The control socket's answer to status-ping (svc/ctl/ctl.h), or the error."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(30)
            s.connect(path)
            s.sendall(b"status-ping\n")
            out = b""
            while not out.endswith(b"\n"):
                chunk = s.recv(512)
                if not chunk:
                    break
                out += chunk
        return out.decode().strip()
    except OSError as e:
        return f"error {e}"


def db_count(db, where):
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        return con.execute(f"SELECT count(*) FROM event WHERE {where}").fetchone()[0]
    finally:
        con.close()


links = simlib.make_links(LINKS, 3600, phase=(int(time.time()) + 1800) % 3600)
env = simlib.Env(SAKEYD, SACTL, SIMD, LOGDIR, links)
try:
    hooks = f"{env.work}/hooks"
    os.makedirs(hooks)
    with open(f"{env.work}/record", "w") as f:
        f.write(f"#!/bin/sh\nenv > {hooks}/alert.$$.$(date +%s%N)\n")
    os.chmod(f"{env.work}/record", 0o700)
    env.daemon_extra = f"alert_command = {env.work}/record\n" \
                       f"metrics_file = {env.work}/sakeyd.prom\n"
    with open(env.conf, "w") as f:
        f.write(env.conf_text(links))
    env.start()
    check(env.wait_log("ready:", 60), "the daemon is ready")
    managed = env.sim_stats()["sas"]
    # Hand-keyed SAs up to SAS in all, as another tool adds them; lifetimes far away.
    hand = SAS - managed
    for i in range(hand):
        env.obs.send(hand_add_request(i + 1, 4243, 0x100000 + i, 3600, 7200))
        if i % 200 == 199:
            env.sim_stats()  # paces the adds; our own copies of the broadcasts are dropped
    db = f"{env.state}/sakeyd.db"
    deadline = time.time() + 60
    while time.time() < deadline:
        live = env.ledger_live()
        if live is not None and len(live) >= SAS:
            break
        time.sleep(0.5)
    total = env.sim_stats()["sas"]
    check(total == SAS and live is not None and len(live) == SAS,
          f"{managed} managed and {hand} hand-keyed SAs in simd ({total}) and the ledger "
          f"({None if live is None else len(live)})")
    before = {k: db_count(db, f"kind = '{k}'") for k in KINDS}
    before_reached = db_count(db, "kind = 'expire-hard' AND message LIKE 'hard lifetime reached%'")
    mark = logs.log_len(env.logpath)
    hooks_before = set(os.listdir(hooks))

    # The burst, and at once the control socket and sactl status.
    answers = {}

    def probe():
        answers["ping"] = ping(f"{env.work}/control.sock")
        answers["status"] = env.sactl("status", "--json").returncode

    sent = int(env.simctl("expire both"))
    t = threading.Thread(target=probe)
    t.start()
    t.join(60)
    print(f"     simd sent {sent} EXPIREs; during the burst: status-ping "
          f"{answers.get('ping')!r}, sactl status exit {answers.get('status')}")
    check(sent == 2 * SAS, f"simd sent a soft and a hard EXPIRE for each SA ({sent})")
    lost = env.sim_stats()["dropped"]
    check(lost == 0, f"simd lost none of them for a full receive queue ({lost})")
    check(answers.get("ping", "").startswith("ok pong"),
          "the control socket answers status-ping during the burst")
    check(answers.get("status") == 0, "sactl status answers during the burst")

    # Every expiry becomes an event in the ledger.
    deadline = time.time() + 60
    while time.time() < deadline:
        got = {k: db_count(db, f"kind = '{k}'") - before[k] for k in KINDS}
        if sum(got.values()) >= sent:
            break
        time.sleep(0.5)
    print(f"     ledger: {got}")
    # A managed SA's hard expiry is two alerts: the EXPIRE's, then its removal's (re-installed).
    reached = db_count(db, "kind = 'expire-hard' AND message LIKE 'hard lifetime reached%'") - \
        before_reached
    check(got["expire-soft"] == SAS and reached == SAS,
          f"every expiry is an event in the ledger ({got}, {reached} hard lifetimes reached)")

    # The windows close: their summaries run; then the commands are counted.
    time.sleep(WINDOW_S + 1)
    count, stable = -1, 0
    for _ in range(60):  # until the hook's runs stop coming (1 s without a new one)
        n = len(os.listdir(hooks))
        stable = stable + 1 if n == count else 0
        count = n
        if stable >= 2:
            break
        time.sleep(0.5)
    records = []
    for name in sorted(set(os.listdir(hooks)) - hooks_before):
        with open(f"{hooks}/{name}") as f:
            records.append(dict(line.rstrip("\n").split("=", 1) for line in f if "=" in line))
    text = env.log_since(mark)
    lines = [ln for ln in text.splitlines() if re.search(r"ALERT expire-(soft|hard) ", ln)]
    for kind in KINDS:
        runs = [r for r in records if r.get("SAKEYD_EVENT") == kind]
        summ = [r for r in runs if "SAKEYD_WINDOW" in r]
        counted = sum(int(r.get("SAKEYD_COUNT", "1")) for r in runs)
        windows = len(summ)
        klines = [ln for ln in lines if f"ALERT {kind} " in ln]
        print(f"     {kind}: {len(runs)} commands ({windows} summaries) standing for "
              f"{counted} alerts; {len(klines)} ALERT lines")
        check(counted == got[kind], f"{kind}: the commands' SAKEYD_COUNT add up to every "
              f"alert in the ledger ({counted} of {got[kind]})")
        # Folded windows follow each other while the flood goes on: the first window's
        # FIRST one by one, then a summary per window.
        check(windows >= 1 and len(runs) <= FIRST + windows,
              f"{kind}: at most {FIRST} commands one by one, then one summary per window "
              f"({len(runs)} commands, {windows} windows)")
        check(len(klines) <= FIRST + windows,
              f"{kind}: ALERT lines bounded likewise ({len(klines)})")
        for r in summ[:1]:
            check(r.get("SAKEYD_WINDOW") == str(WINDOW_S) and r.get("SAKEYD_FIRST_SPI") and
                  r.get("SAKEYD_LAST_SPI") and r.get("SAKEYD_WINDOW_START"),
                  f"{kind}: the summary names its window and first and last SA "
                  f"({ {k: v for k, v in r.items() if k.startswith('SAKEYD_')} })")
    dropped = re.findall(r"(\d+) dropped so far", text)
    print(f"     commands run: {len(records)}; dropped (log): {dropped[-1] if dropped else 0}; "
          f"ALERT lines for expiries: {len(lines)}")
    check(not dropped, "no alert command dropped")

    # Digest time, from the log: the first expiry alert to the last one handled: the last
    # ALERT line of one, or a summary's last alert ("N s before this summary").
    stamped = logs.stamped(text)
    first = next((t for t, ln in stamped if "ALERT expire-" in ln), None)
    last = max((t for t, ln in stamped if "ALERT expire-" in ln and " summarised here" not in ln),
               default=None)
    for t, ln in stamped:
        m = re.search(r"ALERT expire-.*, ([0-9.]+) s before this summary", ln)
        if m:
            last = max(last or 0, t - float(m.group(1)))
    if first is not None and last is not None:
        print(f"     digest: {last - first:.3f} s from the first expiry alert to the last "
              f"(log); {len(records)} commands ran")

    # Rotation is not starved: the managed SAs the hard expiries removed are back.
    def outbound_back():
        have = env.dump()
        return all(any(s >> 8 == link.prefix and src == link.local for s, src, _ in have)
                   for link in links)
    deadline = time.time() + 30
    back = False
    while time.time() < deadline and not (back := outbound_back()):
        time.sleep(0.5)
    check(back, "every link's outbound SA is installed again")
    env.stop_checked(check)
finally:
    env.close()
check.finish()
