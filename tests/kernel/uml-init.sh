#!/bin/sh
# SPDX-License-Identifier: ISC
# init (PID 1) of the User-Mode Linux guest: mount what the tests need, load
# the IPsec modules, run $UMLOUT/cmd.sh, record its output and status, halt.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root
mount -t proc proc /proc
mount -t sysfs sys /sys
# Guest-private scratch space: the root is the host's own file system.
mount -t tmpfs run /run
case "$UMLOUT" in
/tmp/*) ;;
*) mount -t tmpfs tmp /tmp ;;
esac
mkdir -p /run/uml/lib
ln -s /usr/lib/uml/modules /run/uml/lib/modules
# Modules are loaded on demand through this wrapper. A name that failed once
# fails at once afterwards: every PF_KEY REGISTER probes every algorithm
# af_key knows (xfrm_probe_algs), and each one this kernel lacks costs two
# modprobe runs, a fork and an exec each, slow in UML: 2 to 5 s per daemon
# start, which the crash tests measured as downtime.
mkdir -p /run/uml/absent
printf '%s\n' '#!/bin/sh' 'for name; do :; done' \
	'[ -e "/run/uml/absent/$name" ] && exit 1' \
	'/sbin/modprobe -d /run/uml "$@" && exit 0' \
	': > "/run/uml/absent/$name"' 'exit 1' > /run/uml/modprobe
chmod +x /run/uml/modprobe
echo /run/uml/modprobe > /proc/sys/kernel/modprobe
for m in af_key xfrm_user esp4 esp6 veth dummy; do
	modprobe -d /run/uml $m || echo "uml-init: modprobe $m failed" >> "$UMLOUT/output.txt"
done
# Every crypto module up front (tcrypt is a self-test that refuses to stay):
# the algorithms are then found without running modprobe at all.
for ko in /usr/lib/uml/modules/*/kernel/crypto/*.ko; do
	m=${ko##*/}
	[ "$m" = tcrypt.ko ] || modprobe -d /run/uml -q "${m%.ko}" 2>/dev/null
done
ip link set lo up
export TMPDIR=/run
sh "$UMLOUT/cmd.sh" >> "$UMLOUT/output.txt" 2>&1
echo $? > "$UMLOUT/rc.tmp"
mv "$UMLOUT/rc.tmp" "$UMLOUT/rc"
sync
halt -f
