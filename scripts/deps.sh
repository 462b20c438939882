#!/bin/sh
# SPDX-License-Identifier: ISC
# Install the Debian packages sakeyd builds, tests and fuzzes with; quiet and
# quick when they are already there. Needs root (or sudo) only if something is missing.
set -eu

PKGS="meson ninja-build pkg-config gcc libc6-dev linux-libc-dev libuv1-dev libssl-dev
libsqlite3-dev libinih-dev libcmocka-dev clang libclang-rt-14-dev
user-mode-linux kmod iproute2 python3 sqlite3
systemd scdoc"

missing=""
for p in $PKGS; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing="$missing $p"
	fi
done
[ -z "$missing" ] && exit 0

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
