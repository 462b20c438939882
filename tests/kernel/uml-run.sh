#!/bin/sh
# SPDX-License-Identifier: ISC
# Run a command as root inside a real Linux kernel: User-Mode Linux with the
# host's / as its root (hostfs) and af_key, xfrm_user, esp4, esp6, veth loaded.
# The command's output and exit status come back as this script's.
#
#   uml-run.sh OUTDIR SHIM COMMAND [ARG...]
#
# UML_MEM (default 768M) is the guest's memory, UML_TIMEOUT (600 s) its
# time. The guest mounts a private /tmp unless OUTDIR is under /tmp. SHIM is the
# uml_xstate LD_PRELOAD library (see uml_xstate.c); pass "" to go without.
# Exit 77 (skip) only when linux.uml is not installed; anything else that
# goes wrong in the guest is a failure.
set -u
OUT=$1
SHIM=$2
shift 2

UML=$(command -v linux.uml || true)
if [ -z "$UML" ] || [ ! -d /usr/lib/uml/modules ]; then
	echo "uml-run: linux.uml is not installed (apt-get install user-mode-linux kmod): SKIP"
	exit 77
fi
HERE=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
rm -f "$OUT/rc" "$OUT/output.txt" "$OUT/console.txt"
# The command, quoted for sh, run by the guest's init.
{
	printf 'cd %s\n' "'$PWD'"
	printf 'exec'
	for a in "$@"; do
		printf " '%s'" "$(printf %s "$a" | sed "s/'/'\\\\''/g")"
	done
	printf '\n'
} > "$OUT/cmd.sh"

if [ -n "$SHIM" ]; then
	export LD_PRELOAD="$SHIM"
fi
# Each boot gets a fresh copy-on-write kernel: no state leaks between tests.
timeout "${UML_TIMEOUT:-600}" "$UML" mem="${UML_MEM:-768M}" root=/dev/root rootfstype=hostfs rootflags=/ rw \
	init="$HERE/uml-init.sh" UMLOUT="$OUT" con=null con0=fd:0,fd:1 \
	</dev/null >"$OUT/console.txt" 2>&1
uml_status=$?
unset LD_PRELOAD

cat "$OUT/output.txt" 2>/dev/null
if [ ! -f "$OUT/rc" ]; then
	echo "uml-run: the guest did not finish (linux.uml exit $uml_status); console:" >&2
	grep -v '^ \[<' "$OUT/console.txt" | tail -30 >&2
	exit 1
fi
exit "$(cat "$OUT/rc")"
