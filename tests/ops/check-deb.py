#!/usr/bin/env python3
# SPDX-License-Identifier: ISC
"""The Debian package: build, lintian, install, check, remove, purge.

Builds the .deb with dpkg-buildpackage -us -uc -b from a copy of the source
tree in a temporary directory (the tree itself stays clean), runs lintian on
it (any E: or W: fails), installs it with dpkg -i on this machine and checks
what it put in place: the programs, the systemd unit (enabled), the man
pages, modules-load.d, the examples, /etc/sakeyd (0750 root:sakeyd) and the
sakeyd group; systemd-analyze verify on the installed unit; sakeyd --check
with the installed programs on the example configuration made valid (its
secrets made with the installed sactl genkey); then dpkg -r (programs gone,
/etc/sakeyd kept) and dpkg -P (everything gone).

Skips (77) unless root with dpkg-buildpackage, dh and lintian, and on a
machine that already has sakeyd installed or an /etc/sakeyd or
/var/lib/sakeyd of its own (the test would replace or purge them).

usage: check-deb.py SOURCE_ROOT
"""
import grp
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from checks import Checks  # noqa: E402

SRC = os.path.abspath(sys.argv[1])
T0 = time.monotonic()


def skip(why):
    print(f"check-deb: skipped: {why}")
    sys.exit(77)


if os.geteuid() != 0:
    skip("not root (dpkg -i needs root)")
for tool, pkg in (("dpkg-buildpackage", "dpkg-dev"), ("dh", "debhelper"), ("lintian", "lintian")):
    if not shutil.which(tool):
        skip(f"{tool} is not installed (Debian package {pkg}; scripts/deps.sh installs it)")
if subprocess.run(["dpkg-query", "-W", "-f=${Status}", "sakeyd"], capture_output=True,
                  text=True).stdout.endswith(" installed"):
    skip("a sakeyd package is installed on this machine: the test would replace and purge it")
for d in ("/etc/sakeyd", "/var/lib/sakeyd"):
    if os.path.lexists(d):
        skip(f"{d} exists on this machine: the test's dpkg -P would remove it")

check = Checks()
WORK = tempfile.mkdtemp(prefix="sakeyd-deb-")
TREE = f"{WORK}/sakeyd"


def stage(what):
    print(f"--- {what} (at {time.monotonic() - T0:.0f} s)", flush=True)


def run(argv, timeout=120, **kw):
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kw)


def copy_tree():
    """The files git knows (tracked and untracked, not ignored), else all but build dirs."""
    files = None
    if os.path.isdir(f"{SRC}/.git") or os.path.isfile(f"{SRC}/.git"):
        r = run(["git", "-C", SRC, "ls-files", "-z", "-co", "--exclude-standard"])
        if r.returncode == 0:
            files = [f for f in r.stdout.split("\0") if f]
    if files is None:
        shutil.copytree(SRC, TREE, symlinks=True, ignore=shutil.ignore_patterns(
            "build*", "tools", ".git", "__pycache__"))
        return
    for f in files:
        if f.startswith("build") or not os.path.lexists(f"{SRC}/{f}"):
            continue
        os.makedirs(os.path.dirname(f"{TREE}/{f}"), exist_ok=True)
        shutil.copy2(f"{SRC}/{f}", f"{TREE}/{f}", follow_symlinks=False)


group_before = True
try:
    grp.getgrnam("sakeyd")
except KeyError:
    group_before = False

class Abort(Exception):
    """Nothing more to check: the failure is recorded."""


installed = False
try:
    stage("copy the source tree")
    copy_tree()

    stage("dpkg-buildpackage -us -uc -b")
    env = dict(os.environ, DEB_BUILD_OPTIONS="parallel=2")
    r = run(["dpkg-buildpackage", "-us", "-uc", "-b"], timeout=1500, cwd=TREE, env=env)
    with open(f"{WORK}/build.log", "w") as f:
        f.write(r.stdout + r.stderr)
    if not check(r.returncode == 0, "dpkg-buildpackage -us -uc -b (exit %d)" % r.returncode):
        print("\n".join((r.stdout + r.stderr).splitlines()[-40:]))
        raise Abort
    debs = [f for f in os.listdir(WORK) if f.startswith("sakeyd_") and f.endswith(".deb")]
    changes = [f for f in os.listdir(WORK) if f.endswith(".changes")]
    if not check(len(debs) == 1 and len(changes) == 1, f"one .deb and one .changes: {debs}"):
        raise Abort
    deb = f"{WORK}/{debs[0]}"
    check(not os.path.exists(f"{SRC}/debian/.debhelper") and
          not os.path.exists(f"{SRC}/obj-x86_64-linux-gnu"),
          "the source tree itself stays clean (built in a copy)")

    stage("lintian")
    r = run(["lintian", "--info", f"{WORK}/{changes[0]}"], timeout=600)
    tags = [l for l in r.stdout.splitlines() if l[:2] in ("E:", "W:", "I:", "P:", "N:")]
    for line in tags:
        print("    " + line)
    bad = [l for l in tags if l.startswith(("E:", "W:"))]
    check(r.returncode == 0 and not bad,
          "lintian: no error, no warning (%d E:/W: lines, exit %d)" % (len(bad), r.returncode))

    stage("dpkg -i")
    r = run(["dpkg", "-i", deb], timeout=300)
    installed = True
    if not check(r.returncode == 0, "dpkg -i (exit %d)" % r.returncode):
        print(r.stdout + r.stderr)
    listed = run(["dpkg", "-L", "sakeyd"]).stdout.split()
    units = [p for p in listed if p.endswith("/systemd/system/sakeyd.service")]
    check(len(units) == 1 and os.path.isfile(units[0]),
          f"the unit in systemd's unit directory: {units}")
    unit = units[0] if units else "/lib/systemd/system/sakeyd.service"
    for path in ("/usr/sbin/sakeyd", "/usr/sbin/sactl"):
        check(os.access(path, os.X_OK), f"{path} installed")
    for path in ("/usr/share/man/man8/sakeyd.8.gz", "/usr/share/man/man8/sactl.8.gz",
                 "/usr/share/man/man5/sakeyd.conf.5.gz", "/usr/lib/modules-load.d/sakeyd.conf",
                 "/usr/share/doc/sakeyd/examples/sakeyd.conf.example",
                 "/usr/share/doc/sakeyd/examples/prometheus/sakeyd.rules.yml",
                 "/usr/share/doc/sakeyd/copyright"):
        check(os.path.isfile(path), f"{path} installed")
    st = os.stat("/etc/sakeyd") if os.path.isdir("/etc/sakeyd") else None
    check(st is not None and stat.S_IMODE(st.st_mode) == 0o750 and st.st_uid == 0 and
          st.st_gid == grp.getgrnam("sakeyd").gr_gid,
          "/etc/sakeyd is a directory 0750 root:sakeyd (%s)" %
          (oct(stat.S_IMODE(st.st_mode)) if st else "missing"))
    try:
        g = grp.getgrnam("sakeyd")
        check(g.gr_gid < 1000, f"group sakeyd exists, a system group (gid {g.gr_gid})")
    except KeyError:
        check(False, "group sakeyd exists")
    wants = "/etc/systemd/system/multi-user.target.wants/sakeyd.service"
    check(os.path.islink(wants), f"the unit is enabled ({wants})")
    check(not os.path.exists("/etc/sakeyd/sakeyd.conf"),
          "no configuration installed: the unit's condition keeps it from starting")

    if shutil.which("systemd-analyze"):
        stage("systemd-analyze verify")
        r = run(["systemd-analyze", "verify", unit], env=dict(os.environ, SYSTEMD_LOG_COLOR="0"))
        out = (r.stdout + r.stderr).strip()
        check(r.returncode == 0 and not out,
              f"systemd-analyze verify {unit}: exit {r.returncode}, {out or 'nothing said'}")
    else:
        print("    systemd-analyze not installed: the installed unit is not verified")

    stage("sakeyd --check on the example, with real secrets")
    # As an operator would: the secrets from the installed sactl, in /etc/sakeyd.
    shutil.copy("/usr/share/doc/sakeyd/examples/sakeyd.conf.example", "/etc/sakeyd/sakeyd.conf")
    os.chmod("/etc/sakeyd/sakeyd.conf", 0o600)
    for name in ("branch-office", "dc-tunnel6"):
        r = run(["/usr/sbin/sactl", "genkey", "-o", f"/etc/sakeyd/{name}.key"])
        check(r.returncode == 0, f"sactl genkey -o /etc/sakeyd/{name}.key: "
              f"{(r.stdout + r.stderr).strip() or 'ok'}")
    r = run(["/usr/sbin/sakeyd", "--check", "-c", "/etc/sakeyd/sakeyd.conf"])
    check(r.returncode == 0, "sakeyd --check on the example: exit %d: %s" %
          (r.returncode, (r.stdout + r.stderr).strip()))
    # Without its secrets, the same file is refused: --check reads them.
    os.rename("/etc/sakeyd/dc-tunnel6.key", "/etc/sakeyd/dc-tunnel6.key.off")
    r = run(["/usr/sbin/sakeyd", "--check", "-c", "/etc/sakeyd/sakeyd.conf"])
    check(r.returncode == 1 and "dc-tunnel6.key" in r.stdout + r.stderr,
          "a missing secret is refused, named: exit %d" % r.returncode)
    os.rename("/etc/sakeyd/dc-tunnel6.key.off", "/etc/sakeyd/dc-tunnel6.key")
    os.makedirs("/var/lib/sakeyd", mode=0o750)  # as StateDirectory= would make it

    stage("dpkg -r")
    r = run(["dpkg", "-r", "sakeyd"], timeout=300)
    check(r.returncode == 0, "dpkg -r (exit %d): %s" % (r.returncode, r.stderr.strip()))
    for path in ("/usr/sbin/sakeyd", "/usr/sbin/sactl", unit,
                 "/usr/lib/modules-load.d/sakeyd.conf"):
        check(not os.path.exists(path), f"removed: {path} gone")
    check(os.path.isfile("/etc/sakeyd/sakeyd.conf") and
          os.path.isfile("/etc/sakeyd/branch-office.key"),
          "removed: /etc/sakeyd kept with the configuration and the secrets")
    check(os.path.isdir("/var/lib/sakeyd"), "removed: /var/lib/sakeyd kept")
    try:
        grp.getgrnam("sakeyd")
        check(True, "removed: group sakeyd kept")
    except KeyError:
        check(False, "removed: group sakeyd kept")

    stage("dpkg -P")
    r = run(["dpkg", "-P", "sakeyd"], timeout=300)
    installed = r.returncode != 0
    check(r.returncode == 0, "dpkg -P (exit %d): %s" % (r.returncode, r.stderr.strip()))
    for path in ("/etc/sakeyd", "/var/lib/sakeyd", wants):
        check(not os.path.lexists(path), f"purged: {path} gone")
    status = run(["dpkg-query", "-W", "-f=${Status}", "sakeyd"]).stdout
    check(not status.endswith(" installed") and "config-files" not in status,
          f"purged: dpkg knows no sakeyd ({status or 'not known'})")
    if group_before:
        print("    group sakeyd existed before the test: its removal is not judged")
    else:
        try:
            grp.getgrnam("sakeyd")
            check(False, "purged: group sakeyd (no member, nobody's primary group) removed")
        except KeyError:
            check(True, "purged: group sakeyd (no member, nobody's primary group) removed")
except Abort:
    pass
finally:
    if installed:
        run(["dpkg", "-P", "sakeyd"], timeout=300)
    if group_before:
        try:
            grp.getgrnam("sakeyd")
        except KeyError:
            run(["addgroup", "--system", "--quiet", "sakeyd"])
    shutil.rmtree(WORK, ignore_errors=True)
    print(f"check-deb: took {time.monotonic() - T0:.0f} s")

check.finish()
