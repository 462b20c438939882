#!/usr/bin/env python3
# SPDX-License-Identifier: ISC
"""A failing kernel: retries with backoff and a rotation-failed alert, then recovery.

The simulated SADB refuses the first three SADB_ADDs with ENOBUFS
(SAKEYD_SIM_FAIL). The daemon must raise rotation-failed, keep the old SAs
(no delete after a failed add), retry after 1 s then 2 s, install the link's
SAs, record the failure in the ledger, and say it recovered.

usage: backoff.py SAKEYD SACTL LOGDIR
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from checks import Checks  # noqa: E402
from simconf import write_one_link  # noqa: E402

SAKEYD, SACTL, LOGDIR = sys.argv[1:4]
WORK = tempfile.mkdtemp(prefix="sakeyd-backoff-")
check = Checks()


os.makedirs(LOGDIR, exist_ok=True)
# Epochs change half an hour from now: no next inbound SA (lead) and no
# previous one (grace) is wanted, so the link has two SAs and the three
# refused ADDs span two passes (with phase auto, 1 start in 30 wanted three
# SAs at once and recovered after one failed pass).
CONF = write_one_link(WORK, link_extra=f"phase = {(int(time.time()) + 1800) % 3600}s\n")
env = dict(os.environ, SAKEYD_SIM_FAIL="3:105:3")
log = open(f"{WORK}/sakeyd.log", "w")
daemon = subprocess.Popen([SAKEYD, "-c", CONF], stdout=log, stderr=log, env=env)


def text():
    with open(f"{WORK}/sakeyd.log") as f:
        return f.read()


def status():
    out = subprocess.run([SACTL, "-c", CONF, "status", "--json"], capture_output=True, text=True)
    return json.loads(out.stdout or "[]")


deadline = time.time() + 15
while time.time() < deadline and "recovered" not in text():
    time.sleep(0.2)
t = text()
check("ALERT rotation-failed link=l1" in t, "rotation-failed alert raised")
check("retry in 1s" in t and "retry in 2s" in t, "retried with backoff: 1 s, then 2 s")
check("recovered after 2 failure(s)" in t, "the link recovered after its failures")
check("delete" not in "".join(l for l in t.splitlines() if "send_op" in l),
      "nothing was deleted while adds failed")
time.sleep(1)
sas = [s for s in status() if s["link"] == "l1"]
check(sorted(s["dir"] for s in sas) == ["in", "out"], "the link's SAs are installed in the end")
hist = json.loads(subprocess.run([SACTL, "-c", CONF, "history", "--json"],
                                 capture_output=True, text=True).stdout or "[]")
check(any(r["result"] == "failed" for r in hist) and any(r["result"] == "ok" for r in hist),
      "the ledger records the failed and the successful rotation")
daemon.send_signal(signal.SIGTERM)
check(daemon.wait(timeout=10) == 0, "SIGTERM: clean exit 0")
shutil.copy(f"{WORK}/sakeyd.log", f"{LOGDIR}/sakeyd.log")
shutil.rmtree(WORK, ignore_errors=True)
check.finish()
