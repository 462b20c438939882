#!/bin/sh
# SPDX-License-Identifier: ISC
# sactl genkey: key format, file mode and O_EXCL, the remote-terminal refusal
# (on a real pty from script(1)), the readable-stdout warning, and sakeyd
# --check accepting what it makes; sactl's usage exit codes.
#
#   test-genkey.sh SACTL SAKEYD
set -u
SACTL=$1
SAKEYD=$2
T=$(mktemp -d /tmp/sakeyd-genkey.XXXXXX)
trap 'rm -rf "$T"' EXIT
failures=0
n=0

ok() { n=$((n + 1)); echo "ok $n - $1"; }
not_ok() { n=$((n + 1)); failures=$((failures + 1)); echo "not ok $n - $1"; }
check() { # check DESCRIPTION COMMAND...: passes if the command succeeds
	desc=$1
	shift
	if "$@"; then ok "$desc"; else not_ok "$desc"; fi
}
# Whether FILE lacks PATTERN.
not_grep() { ! grep -q "$1" "$2"; }
# Decoded length of a base64 key file (first line).
decoded_len() { head -n 1 "$1" | base64 -d 2>/dev/null | wc -c | tr -d ' '; }
is_key() { # 44 base64 characters and a newline, 32 bytes decoded
	[ "$(wc -c <"$1" | tr -d ' ')" = 45 ] && [ "$(wc -l <"$1" | tr -d ' ')" = 1 ] &&
		grep -Eq '^[A-Za-z0-9+/]{43}=$' "$1" && [ "$(decoded_len "$1")" = 32 ]
}
mode_of() { stat -c %a "$1"; }
unset SSH_TTY SSH_CONNECTION SSH_CLIENT

# ---- stdout ----
"$SACTL" genkey >"$T/a" 2>"$T/err" </dev/null
check "genkey to a pipe/file exits 0" [ $? = 0 ]
check "genkey prints 44 base64 characters that decode to 32 bytes" is_key "$T/a"
"$SACTL" genkey | cat >"$T/b"
check "two keys differ" [ "$(cat "$T/a")" != "$(cat "$T/b")" ]

# A regular file group/others can read: a warning, the key still written.
rm -f "$T/pub"
(umask 022 && "$SACTL" genkey >"$T/pub" 2>"$T/err")
check "readable stdout file: exit 0" [ $? = 0 ]
check "readable stdout file: warning names the mode" grep -q "group or others can read (mode 0644)" "$T/err"
check "readable stdout file: key written" is_key "$T/pub"
(umask 077 && "$SACTL" genkey >"$T/priv" 2>"$T/err")
check "private stdout file: no warning" [ ! -s "$T/err" ]

# ---- -o FILE ----
(umask 000 && "$SACTL" genkey -o "$T/k1" >"$T/out" 2>"$T/err")
check "genkey -o exits 0" [ $? = 0 ]
check "genkey -o creates mode 0600 even with umask 000" [ "$(mode_of "$T/k1")" = 600 ]
check "genkey -o writes a key" is_key "$T/k1"
check "genkey -o prints nothing on stdout" [ ! -s "$T/out" ]
cp "$T/k1" "$T/k1.orig"
"$SACTL" genkey -o "$T/k1" 2>"$T/err"
check "genkey -o refuses an existing file (exit 1)" [ $? = 1 ]
check "genkey -o explains the refusal" grep -q "already exists; refusing to overwrite" "$T/err"
check "genkey -o left the existing key alone" cmp -s "$T/k1" "$T/k1.orig"
"$SACTL" genkey --output="$T/k2" && check "genkey --output= works" is_key "$T/k2"
ln -s "$T/target" "$T/link"
"$SACTL" genkey -o "$T/link" 2>"$T/err"
check "genkey -o refuses a (dangling) symbolic link" [ $? = 1 ]
check "genkey -o did not create the link's target" [ ! -e "$T/target" ]
"$SACTL" genkey -o "$T/no/such/dir/k" 2>"$T/err"
check "genkey -o into a missing directory fails (exit 1)" [ $? = 1 ]
check "genkey -o failure names the file" grep -q "cannot create $T/no/such/dir/k" "$T/err"

# ---- terminals: script(1) gives the command a pty ----
on_pty() { # on_pty OUTFILE ENV... -- ARGS: runs sactl on a pty, returns its exit status
	out=$1
	shift
	script -qec "env $* $SACTL genkey $PTY_ARGS" /dev/null >"$out" 2>&1 </dev/null
}
if command -v script >/dev/null 2>&1; then
	PTY_ARGS=""
	on_pty "$T/pty1" "SSH_CONNECTION='192.0.2.9 50000 192.0.2.1 22'"
	check "SSH_CONNECTION + terminal: refused (exit 1)" [ $? = 1 ]
	check "SSH refusal explains why and the way out" \
		grep -q "refusing to print a key to the terminal of a remote (SSH) session" "$T/pty1"
	check "SSH refusal prints no key" sh -c "! grep -Eq '^[A-Za-z0-9+/]{43}=' '$T/pty1'"
	on_pty "$T/pty2" "SSH_TTY=/dev/pts/7"
	check "SSH_TTY + terminal: refused (exit 1)" [ $? = 1 ]
	PTY_ARGS="--force"
	on_pty "$T/pty3" "SSH_CONNECTION='192.0.2.9 50000 192.0.2.1 22'"
	check "SSH + terminal + --force: printed (exit 0)" [ $? = 0 ]
	check "--force output is a key" grep -Eq '^[A-Za-z0-9+/]{43}=' "$T/pty3"
	PTY_ARGS=""
	on_pty "$T/pty4" "FOO=1"
	check "local terminal: printed (exit 0)" [ $? = 0 ]
	PTY_ARGS="-o $T/k3"
	on_pty "$T/pty5" "SSH_CONNECTION='192.0.2.9 50000 192.0.2.1 22'"
	check "SSH + terminal + -o FILE: allowed (the key stays on this host)" [ $? = 0 ]
	check "SSH + -o FILE wrote the key" is_key "$T/k3"
else
	not_ok "script(1) from util-linux is missing: cannot test the terminal refusal"
fi
SSH_CONNECTION='192.0.2.9 50000 192.0.2.1 22' "$SACTL" genkey >"$T/c" 2>/dev/null
check "SSH session but stdout not a terminal: printed" is_key "$T/c"

# ---- sakeyd --check accepts a generated key ----
mkdir "$T/etc"
"$SACTL" genkey -o "$T/etc/t.key"
cat >"$T/etc/sakeyd.conf" <<CONF
[daemon]
kernel = sim
state_dir = $T/state
control_socket = $T/run/control.sock

[link t]
local = 192.0.2.1
remote = 198.51.100.7
secret_file = $T/etc/t.key
rotate_every = 1h
CONF
"$SAKEYD" --check -c "$T/etc/sakeyd.conf" >"$T/out" 2>&1
check "sakeyd --check accepts a key made by sactl genkey -o" [ $? = 0 ]
grep -q "configuration OK" "$T/out" || cat "$T/out"

# ---- reload / reconcile without a daemon; secrets are not read ----
"$SACTL" -c "$T/etc/sakeyd.conf" reload 2>"$T/err"
check "reload with no daemon: exit 1" [ $? = 1 ]
check "reload with no daemon: says so, naming the socket" \
	grep -qF "sakeyd is not running (no control socket at $T/run/control.sock)" "$T/err"
chmod 000 "$T/etc/t.key"
sed "s|secret_file = .*|secret_file = $T/etc/missing.key|" "$T/etc/sakeyd.conf" >"$T/etc/nosecret.conf"
"$SACTL" --config "$T/etc/nosecret.conf" reconcile 2>"$T/err"
check "reconcile reads no secret (missing key file is no error for sactl)" \
	grep -qF "sakeyd is not running (no control socket at" "$T/err"
printf '[daemon]\nbogus = 1\n' >"$T/etc/bad.conf"
"$SACTL" -c "$T/etc/bad.conf" reload 2>"$T/err"
check "reload with a broken config: exit 1" [ $? = 1 ]
check "reload with a broken config: file:line shown" grep -q "$T/etc/bad.conf:2" "$T/err"

# ---- usage and exit codes ----
"$SACTL" >/dev/null 2>&1
check "no command: exit 2" [ $? = 2 ]
"$SACTL" frobnicate >/dev/null 2>&1
check "unknown command: exit 2" [ $? = 2 ]
"$SACTL" genkey extra >/dev/null 2>&1
check "genkey with an argument: exit 2" [ $? = 2 ]
"$SACTL" genkey --bogus >/dev/null 2>&1
check "genkey with an unknown option: exit 2" [ $? = 2 ]
"$SACTL" reload extra >/dev/null 2>&1
check "reload with an argument: exit 2" [ $? = 2 ]
"$SACTL" --help >"$T/out" 2>&1
check "--help: exit 0 and lists genkey" grep -q "genkey" "$T/out"
"$SACTL" genkey --help >/dev/null 2>&1
check "genkey --help: exit 0" [ $? = 0 ]
for c in status check history events; do
	"$SACTL" -c "$T/etc/sakeyd.conf" $c >/dev/null 2>"$T/err"
	check "$c is implemented" not_grep "not implemented" "$T/err"
done

echo "1..$n"
echo "$((n - failures)) passed, $failures failed"
[ "$failures" = 0 ]
