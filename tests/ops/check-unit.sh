#!/bin/sh
# SPDX-License-Identifier: ISC
# systemd-analyze verify on contrib/sakeyd.service: fails on any warning or
# error it prints; skips (77) only when systemd-analyze is not installed.
#
#   check-unit.sh UNIT SAKEYD
#
# The unit names /usr/sbin/sakeyd; verify checks that ExecStart= programs
# exist, so a copy pointing at the built sakeyd is verified (everything else
# unchanged). Works without a running systemd (in a container, in CI): verify
# only loads the unit files. --man=no: the man pages need not be installed.
set -eu
UNIT=$1
SAKEYD=$2
if ! command -v systemd-analyze >/dev/null 2>&1; then
	echo "check-unit: systemd-analyze not installed (Debian package systemd); skipped"
	exit 77
fi
T=$(mktemp -d /tmp/sakeyd-unit.XXXXXX)
trap 'rm -rf "$T"' EXIT
SAKEYD=$(readlink -f "$SAKEYD")
sed "s|/usr/sbin/sakeyd|$SAKEYD|g" "$UNIT" >"$T/sakeyd.service"

status=0
# What systemd-analyze prints at warning level or above is the verdict.
SYSTEMD_LOG_COLOR=0 systemd-analyze verify --man=no "$T/sakeyd.service" >"$T/verdict" 2>&1 ||
	status=$?
if [ "$status" != 0 ] || [ -s "$T/verdict" ]; then
	echo "check-unit: systemd-analyze verify $UNIT (exit $status):"
	sed "s|$T/||g" "$T/verdict"
	exit 1
fi
echo "check-unit: systemd-analyze verify: no warning, no error"
systemd-analyze --version | head -n 1

# The exposure score needs a running systemd (it asks PID 1 over D-Bus), or an
# offline unit file (--offline=yes, systemd 252 and later).
if systemd-analyze security --offline=yes --no-pager "$T/sakeyd.service" >"$T/security" 2>&1; then
	tail -n 1 "$T/security"
else
	echo "check-unit: systemd-analyze security --offline is not available here:"
	tail -n 3 "$T/security"
fi
exit 0
