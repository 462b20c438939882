#!/usr/bin/env python3
# SPDX-License-Identifier: ISC
"""A managed SA that vanishes without a word is alerted once a dump finds it missing.

The kernel's word of a removal can be lost (a full receive queue drops the
DELETE or FLUSH broadcast) or come after the resync's dump that already
missed the SA; then on_flush or the DELETE finds nothing of the daemon's left
to alert on. The dump used to drop such SAs silently ("vanished") and the
next pass re-installed them: no alert, though traffic was lost meanwhile.

sakeyd runs on simd (sim_connect) with one link (rotate_every 1h: no change
point during the test) and refresh_interval = 2s. Once it has settled, simd
drops every reply and broadcast (drop 1000) while another PF_KEY client
deletes two of the link's inbound SAs, then stops dropping. Asserted:
- one sa-removed alert naming the link, saying a dump found 2 managed SAs
  missing;
- the link's SAs come back to the desired set of a fresh start
  (tests/lib/genmodel.py);
- SIGTERM: exit 0, no sanitizer report; no secret in the log.

usage: vanished.py SAKEYD SACTL SIMD LOGDIR
"""
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "sim"))
import conform  # noqa: E402
import simlib  # noqa: E402
import genmodel  # noqa: E402,I100 (tests/lib: simlib puts it on the path)

SAKEYD, SACTL, SIMD, LOGDIR = sys.argv[1:5]
check = simlib.Checks()
link = simlib.make_links(1, 3600)[0]
env = simlib.Env(SAKEYD, SACTL, SIMD, LOGDIR, [link], daemon_extra="refresh_interval = 2s")
try:
    offset = env.start()
    check(env.wait_log("ready:", timeout=60, offset=offset), "sakeyd started and reconciled")
    model = genmodel.Model(env)
    genmodel.check_settled(check, env, model, "the link's SAs are the desired set of a fresh start")
    inbound = sorted(spi for spi, src, dst in env.managed(env.dump()) if dst == link.local)
    victims = inbound[:2]
    check(len(victims) == 2, f"two inbound SAs to delete ({[hex(v) for v in victims]})")
    mark = len(env.log_since(offset))
    check(env.simctl("drop 1000 1") == "ok", "simd drops every reply and broadcast")
    for seq, spi in enumerate(victims, 1):
        env.obs.send(conform.sa_msg("DELETE", conform.SATYPE_ESP, seq, 4343, spi, link.remote,
                                    link.local, keys=False))
    time.sleep(0.3)
    check(env.simctl("drop 0 1") == "ok", "simd delivers again")
    gone = {spi for spi, _, _ in env.dump()}
    check(not set(victims) & gone, "both SAs are gone from simd")
    check(env.wait_log("found missing by a dump", timeout=20, offset=offset),
          "a dump found them missing")
    time.sleep(0.5)
    lines = [x for x in env.log_since(offset)[mark:].splitlines() if "ALERT sa-removed" in x]
    check(len(lines) == 1 and f"link={link.name} " in lines[0] and "2 managed SAs" in lines[0],
          f"one sa-removed alert naming the link and the 2 SAs ({lines})")
    genmodel.check_settled(check, env, model, "the link's SAs are back to the desired set")
    env.stop_checked(check)
finally:
    env.close()
check.finish()
