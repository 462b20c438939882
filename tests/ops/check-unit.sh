#!/bin/sh
# SPDX-License-Identifier: ISC
# systemd-analyze verify on contrib/sakeyd.service: fails on any warning or
# error it prints; skips (77) only when systemd-analyze is not installed.
#
#   check-unit.sh UNIT SAKEYD SACTL
#
# The unit names /usr/sbin/sakeyd and /usr/sbin/sactl (ExecReload=); verify
# checks that the programs exist, so a copy pointing at the built ones is
# verified (everything else unchanged). Works without a running systemd (in a container, in CI): verify
# only loads the unit files. --man=no: the man pages need not be installed.
set -eu
UNIT=$1
SAKEYD=$2
SACTL=$3
if ! command -v systemd-analyze >/dev/null 2>&1; then
	echo "check-unit: systemd-analyze not installed (Debian package systemd); skipped"
	exit 77
fi
T=$(mktemp -d /tmp/sakeyd-unit.XXXXXX)
trap 'rm -rf "$T"' EXIT
SAKEYD=$(readlink -f "$SAKEYD")
SACTL=$(readlink -f "$SACTL")
sed -e "s|/usr/sbin/sakeyd|$SAKEYD|g" -e "s|/usr/sbin/sactl|$SACTL|g" "$UNIT" >"$T/sakeyd.service"

# What the unit must say (issue #21): a reload that waits for the daemon's
# verdict, and the watchdog the daemon feeds from its loop.
for line in 'ExecReload=/usr/sbin/sactl -c /etc/sakeyd/sakeyd.conf reload' 'WatchdogSec=2min' \
	'ReadWritePaths=-/var/lib/prometheus/node-exporter' \
	'ConditionPathExists=/etc/sakeyd/sakeyd.conf'; do
	if ! grep -qxF "$line" "$UNIT"; then
		echo "check-unit: $UNIT lacks the line: $line"
		exit 1
	fi
done

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
