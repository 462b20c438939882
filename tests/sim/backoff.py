#!/usr/bin/env python3
# SPDX-License-Identifier: ISC
"""A failing kernel: retries with backoff and a rotation-failed alert, then recovery.

The daemon starts without generation records (a fresh state directory), so
it wants 17 SAs (DESIGN.md "Key schedule v2"): inbound generations 0-15 of
the current epoch and outbound generation 15. The simulated SADB refuses the
first 18 SADB_ADDs with ENOBUFS (SAKEYD_SIM_FAIL): the whole first pass and
one add of the second, so the failures span two passes. The daemon must
raise rotation-failed, keep the old SAs (no delete after a failed add), retry
after 1 s then 2 s, install the link's SAs, record the failure in the ledger,
and say it recovered. Generation 15 was recorded before its refused add, and
a recorded generation is never installed again: the outbound SA in the end
is generation 14, announced by generation-changed.

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
from genmodel import LinkGens  # noqa: E402
from keysched import spi, spi_prefix  # noqa: E402
from simconf import write_one_link  # noqa: E402

SAKEYD, SACTL, LOGDIR = sys.argv[1:4]
WORK = tempfile.mkdtemp(prefix="sakeyd-backoff-")
check = Checks()


os.makedirs(LOGDIR, exist_ok=True)
# Epochs change half an hour from now: no next inbound SA (lead) and no
# previous one (grace) is wanted, only those of the current epoch (with phase
# auto, 1 start in 30 would also want a neighbour epoch's).
PHASE = (int(time.time()) + 1800) % 3600
CONF = write_one_link(WORK, link_extra=f"phase = {PHASE}s\n")
with open(f"{WORK}/l.key") as f:
    secret = bytes.fromhex(f.read().strip())
epoch = (int(time.time()) - PHASE) // 3600
model = LinkGens(spi_prefix(secret), "192.0.2.1", "192.0.2.2", 3600, PHASE, 60, 60, epoch)
wanted = model.desired(time.time())
# Every add of the first pass fails, and one of the second.
env = dict(os.environ, SAKEYD_SIM_FAIL=f"3:105:{len(wanted) + 1}")
log = open(f"{WORK}/sakeyd.log", "w")
daemon = subprocess.Popen([SAKEYD, "-c", CONF], stdout=log, stderr=log, env=env)


def text():
    with open(f"{WORK}/sakeyd.log") as f:
        return f.read()


def status():
    out = subprocess.run([SACTL, "-c", CONF, "status", "--json"], capture_output=True, text=True)
    return json.loads(out.stdout or '{"sas": []}')["sas"]


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
check(len(wanted) == 17, f"a fresh start wants 16 inbound generations and 1 outbound SA "
                         f"({len(wanted)})")
after_refused = model.lost_out(epoch)  # 15 was recorded, refused: never installed again
sas = [s for s in status() if s["link"] == "l1"]
have = {(s["spi"], s["src"], s["dst"]) for s in sas}
want = model.desired(time.time())
check(have == want, f"the link's SAs are installed in the end, generations included "
                    f"(extra {sorted(have - want)}, missing {sorted(want - have)})")
check(sorted((s["dir"], s["generation"]) for s in sas if s["dir"] == "out") == [("out", 14)],
      "the outbound SA is generation 14: 15 was recorded before its add failed")
check(f"ALERT generation-changed link=l1 spi={spi(model.prefix, epoch, after_refused):#x}" in t,
      "generation-changed announced generation 14")
hist = json.loads(subprocess.run([SACTL, "-c", CONF, "history", "--json"],
                                 capture_output=True, text=True).stdout
                  or '{"rotations": []}')["rotations"]
check(any(r["result"] == "failed" for r in hist) and any(r["result"] == "ok" for r in hist),
      "the ledger records the failed and the successful rotation")
daemon.send_signal(signal.SIGTERM)
check(daemon.wait(timeout=10) == 0, "SIGTERM: clean exit 0")
shutil.copy(f"{WORK}/sakeyd.log", f"{LOGDIR}/sakeyd.log")
shutil.rmtree(WORK, ignore_errors=True)
check.finish()
