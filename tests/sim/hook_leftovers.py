#!/usr/bin/env python3
# SPDX-License-Identifier: ISC
"""An alert_command leaves nothing running behind it.

sakeyd on the simulated SADB, with an alert_command that tries to outlive
itself in two ways. The simulator refuses the first ADD (rotation-failed):
for that event the hook starts `setsid sleep` in the background and exits
0 at once. max_sa_age = 3s makes the managed SAs too old (sa-too-old): for
that event the hook double-forks a sleeper into a session of its own, then
sleeps past the daemon's 10 s time limit. setsid takes both sleepers out of
the hook's process group and session, which is all the daemon used to kill.

After each: no process carrying this run's marker (an environment variable
the hook exports, unique to this run) remains, the daemon has no zombie
child, and the daemon logged what it killed.

usage: hook_leftovers.py SAKEYD SACTL LOGDIR
"""
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from checks import Checks  # noqa: E402
import proc  # noqa: E402
from proc import wait_for  # noqa: E402
from simconf import write_one_link  # noqa: E402

SAKEYD, SACTL, LOGDIR = sys.argv[1:4]
WORK = tempfile.mkdtemp(prefix="sakeyd-hooks-")
MARK = f"SAKEYD_HOOKTEST={WORK}"
check = Checks()

os.makedirs(LOGDIR, exist_ok=True)
with open(f"{WORK}/hook", "w") as f:
    f.write(f"""#!/bin/sh
export {MARK}
# Once per event (the SAs of a link all become too old at once): the others exit 0.
mkdir {WORK}/once.$SAKEYD_EVENT 2>/dev/null || exit 0
case "$SAKEYD_EVENT" in
rotation-failed)
	# Out of the hook's session and group before the hook exits.
	setsid sh -c 'echo $$ > {WORK}/started.rotation-failed; exec sleep 4711' &
	while [ ! -s {WORK}/started.rotation-failed ]; do sleep 0.01; done
	exit 0 ;;
sa-too-old)
	# Once the other sa-too-old hooks are done (their exits would sweep the orphan early),
	# a subshell forks the sleeper and exits: it is orphaned at once.
	sleep 2
	( setsid sh -c 'echo $$ > {WORK}/started.sa-too-old; exec sleep 4712' & )
	sleep 4713 ;;
esac
""")
os.chmod(f"{WORK}/hook", 0o700)
CONF = write_one_link(WORK, daemon_extra=f"alert_command = {WORK}/hook\n"
                      "max_sa_age = 3s\nrefresh_interval = 1s\n")


def marked():
    """Live processes whose environment holds this run's marker (MARK as it is now)."""
    return proc.marked(MARK)


def zombies_of(pid):
    """Zombie children of pid."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] == "Z" and int(fields[1]) == pid:
            found.append(int(name))
    return found


def started(event):
    return os.path.exists(f"{WORK}/started.{event}")


def logged():
    with open(f"{WORK}/sakeyd.log") as f:
        return f.read()


log = open(f"{WORK}/sakeyd.log", "w")
daemon = subprocess.Popen([SAKEYD, "-c", CONF, "-v"], stdout=log, stderr=log,
                          env=dict(os.environ, SAKEYD_SIM_FAIL="3:105:1"))
try:
    # 1. setsid sleep &, exit 0: what it left is killed when it exits.
    check(wait_for(lambda: started("rotation-failed"), 20),
          "the rotation-failed hook ran and started its sleeper")
    check(wait_for(lambda: not marked(), 10),
          f"nothing of the rotation-failed hook is left ({marked()})")
    check(wait_for(lambda: "rotation-failed: killed 1 process it left behind" in logged(), 5),
          "the daemon logged that it killed what the rotation-failed hook left")
    swept = logged().count("left behind")

    # 2. A double-forked sleeper, the hook itself past the time limit.
    check(wait_for(lambda: started("sa-too-old"), 20),
          "the sa-too-old hook ran and double-forked its sleeper")
    # (The hook's own shell exported the marker after its exec: its children carry it.)
    check(wait_for(lambda: len(marked()) >= 2, 5),
          f"the hook's sleep and its orphan run ({marked()})")
    check(wait_for(lambda: "still running after 10000 ms: killed" in logged(), 20),
          "the sa-too-old hook itself was killed at its time limit")
    # The orphaned sleeper goes at the latest then (earlier if another hook exits first).
    check(wait_for(lambda: logged().count("left behind") > swept, 5),
          "the daemon logged that it killed what the sa-too-old hook left")
    check(wait_for(lambda: not marked(), 10),
          f"nothing of the sa-too-old hook is left ({marked()})")
    check(wait_for(lambda: not zombies_of(daemon.pid), 5),
          f"no zombie child of the daemon ({zombies_of(daemon.pid)})")
    check(daemon.poll() is None, "the daemon is still running")
finally:
    daemon.send_signal(signal.SIGTERM)
    try:
        code = daemon.wait(timeout=10)
    except subprocess.TimeoutExpired:
        daemon.kill()
        code = daemon.wait()
    # Whatever a failed run left behind goes now (it would sleep for an hour).
    for pid in marked():
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    log.close()
check(code == 0, "SIGTERM: clean exit 0")
shutil.copy(f"{WORK}/sakeyd.log", f"{LOGDIR}/sakeyd.log")
shutil.rmtree(WORK, ignore_errors=True)
check.finish()
