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
# Crypto modules are loaded on demand through this wrapper.
printf '#!/bin/sh\nexec /sbin/modprobe -d /run/uml "$@"\n' > /run/uml/modprobe
chmod +x /run/uml/modprobe
echo /run/uml/modprobe > /proc/sys/kernel/modprobe
for m in af_key xfrm_user esp4 esp6 veth dummy; do
	modprobe -d /run/uml $m || echo "uml-init: modprobe $m failed" >> "$UMLOUT/output.txt"
done
ip link set lo up
export TMPDIR=/run
sh "$UMLOUT/cmd.sh" >> "$UMLOUT/output.txt" 2>&1
echo $? > "$UMLOUT/rc.tmp"
mv "$UMLOUT/rc.tmp" "$UMLOUT/rc"
sync
halt -f
