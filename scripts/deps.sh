#!/bin/sh
# SPDX-License-Identifier: ISC
# Install the Debian packages sakeyd builds, tests and fuzzes with; quiet and
# quick when they are already there. Needs root (or sudo) only if something is missing.
set -eu

PKGS="meson ninja-build pkg-config gcc libc6-dev linux-libc-dev libuv1-dev libssl-dev
libsqlite3-dev libinih-dev libmnl-dev libcmocka-dev clang libclang-rt-14-dev
user-mode-linux kmod iproute2 python3 sqlite3 e2fsprogs util-linux
systemd scdoc faketime
dpkg-dev debhelper lintian adduser"

missing=""
for p in $PKGS; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing="$missing $p"
	fi
done
fetch_promtool() {
	# promtool lints the Prometheus rules (tests/ops). It ships in Debian's
	# prometheus package, the whole server with a service that would start on
	# install; only the one binary is unpacked, into tools/.
	[ -x "$TOOLS/promtool" ] && return 0
	command -v promtool >/dev/null 2>&1 && return 0
	[ "$(id -u)" -eq 0 ] || return 0
	tmp=$(mktemp -d)
	if (cd "$tmp" && apt-get download -qq prometheus >/dev/null 2>&1 &&
	    dpkg-deb -x prometheus_*.deb x && [ -x x/usr/bin/promtool ]); then
		mkdir -p "$TOOLS"
		cp "$tmp/x/usr/bin/promtool" "$TOOLS/promtool"
	else
		echo "deps: could not fetch promtool (Debian package prometheus)" >&2
	fi
	rm -rf "$tmp"
}
TOOLS=$(cd "$(dirname "$0")/.." && pwd)/tools

if [ -z "$missing" ]; then
	fetch_promtool
	exit 0
fi

echo "deps: installing:$missing" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
	command -v sudo >/dev/null 2>&1 || {
		echo "deps: missing packages:$missing; run this script as root" >&2
		exit 1
	}
	SUDO=sudo
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
fetch_promtool
