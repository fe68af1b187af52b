#!/bin/busybox sh
# /init of a board-lane guest (scripts/board/lane.sh). Stage 1 runs on the initramfs: pivot_root(2), which
# every container start uses, refuses a caller whose root is the initramfs itself, so the tree is copied to
# a tmpfs and switch_root runs stage 2 from there. Stage 2 mounts the cgroup layout asked for on the kernel
# command line (hako.cgroup=v2: pure cgroup v2, as on boards; v1: only v1 hierarchies), runs the guest tests
# with Node, prints their TAP between markers on the console, and powers off.
# No `set -e`: whatever fails, the guest must still print its result marker and power off, or the host waits
# for its time limit.
set -u
export PATH=/bin:/sbin:/opt/node/bin

if [ "${1:-}" != stage2 ]; then
  /bin/busybox mkdir -p /proc /newroot
  /bin/busybox mount -t proc proc /proc
  /bin/busybox mount -t tmpfs -o mode=755 tmpfs /newroot
  for d in bin etc lib lib64 lib32 usr opt init; do
    [ -e "/$d" ] && /bin/busybox cp -a "/$d" /newroot/
  done
  /bin/busybox mkdir -p /newroot/proc /newroot/sys /newroot/dev /newroot/tmp /newroot/run
  /bin/busybox umount /proc
  exec /bin/busybox switch_root /newroot /init stage2
fi

/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
mount -t tmpfs -o mode=1777 tmpfs /tmp
mount -t tmpfs -o mode=755 tmpfs /run
ip link set lo up 2>/dev/null
# One 8 MiB ram disk (/dev/ram0, block 1:0) for the tests whose containers do block IO.
if [ -f /lib/modules/brd.ko ]; then
  insmod /lib/modules/brd.ko rd_nr=1 rd_size=8192 || echo "HAKO-BOARD-INFO: brd.ko could not be loaded"
fi

cmdline=$(cat /proc/cmdline)
cg=v2
guest=unknown
for w in $cmdline; do
  case $w in
    hako.cgroup=*) cg=${w#hako.cgroup=} ;;
    hako.guest=*) guest=${w#hako.guest=} ;;
  esac
done

if [ "$cg" = v1 ]; then
  mount -t tmpfs -o mode=755 cgroup /sys/fs/cgroup
  for c in cpu,cpuacct cpuset memory pids devices freezer blkio; do
    mkdir -p "/sys/fs/cgroup/$c"
    mount -t cgroup -o "$c" cgroup "/sys/fs/cgroup/$c" || echo "HAKO-BOARD-INFO: cgroup v1 $c could not be mounted"
  done
  ln -s cpu,cpuacct /sys/fs/cgroup/cpu
  ln -s cpu,cpuacct /sys/fs/cgroup/cpuacct
  # systemd's named hierarchy is absent, as on a board without systemd.
else
  mount -t cgroup2 -o nsdelegate cgroup2 /sys/fs/cgroup
  # Every controller the kernel offers, delegated to the children (as systemd would do on a board).
  for c in $(cat /sys/fs/cgroup/cgroup.controllers); do
    echo "+$c" >/sys/fs/cgroup/cgroup.subtree_control 2>/dev/null || echo "HAKO-BOARD-INFO: controller $c not enabled"
  done
fi

echo "HAKO-BOARD-INFO: guest=$guest uname=$(uname -srm) cgroup=$cg cpus=$(grep -c ^processor /proc/cpuinfo) mem_kb=$(sed -n 's/^MemTotal: *\([0-9]*\).*/\1/p' /proc/meminfo) package=$(cat /etc/hako-board)"
[ "$cg" = v2 ] && echo "HAKO-BOARD-INFO: controllers=$(cat /sys/fs/cgroup/cgroup.controllers | tr ' ' ,)"
# How long Node itself and the CLI take to start here: under TCG these say how slow the emulated machine is,
# which is what the tests' times mostly are.
up() { cut -d' ' -f1 /proc/uptime; }
a=$(up); node -e 0; b=$(up); node /opt/hako/node_modules/hako/bin/hako --version >/dev/null; c=$(up)
echo "HAKO-BOARD-INFO: node_e0_s=$(echo "$a $b" | awk '{printf "%.2f", $2-$1}') hako_version_s=$(echo "$b $c" | awk '{printf "%.2f", $2-$1}')"
echo "HAKO-BOARD-INFO: uptime_at_tests=$(up)"
echo HAKO-BOARD-TAP-BEGIN
HAKO_BOARD_GUEST=$guest HAKO_BOARD_CGROUP=$cg HAKO_PKG=/opt/hako/node_modules/hako HAKO_BIN=/opt/hako/node_modules/hako/bin/hako \
  node --test --test-reporter=tap --test-concurrency=1 /opt/board/board.test.js 2>&1
rc=$?
echo "HAKO-BOARD-RC=$rc"
echo "HAKO-BOARD-INFO: uptime_at_end=$(cut -d' ' -f1 /proc/uptime)"
sync
poweroff -f
