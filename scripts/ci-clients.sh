#!/usr/bin/env bash
# Install and start the real clients that drive hako in test/clients/: podman + conmon (as root, and
# rootless as the user hako-podman), containerd + ctr, dockerd. No systemd: daemons run in the background
# with their logs in files, and the script waits for their sockets. Idempotent: packages already installed,
# daemons already answering and images already imported are left as they are. Everything lives under
# $HAKO_CLIENTS_WORK (default /tmp/hako-clients; rootless podman's $XDG_RUNTIME_DIR aside: /run/user/UID);
# the tests read $HAKO_CLIENTS_WORK/env.json.
#
#   bash scripts/ci-clients.sh            # install + start (+ build hako if dist/ is missing)
#   bash scripts/ci-clients.sh stop       # stop the daemons this script started (and rootless podman's
#                                         # pause process)
#
# hako is registered through a wrapper named `hako` ($WORK/bin/hako) that logs every call (argv, fds, rc,
# duration) to $WORK/argv.log and runs the real bin/hako as a child. Rootless podman has its own wrapper and
# log under $WORK/podman-rootless (its user cannot write the first log).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
WORK=${HAKO_CLIENTS_WORK:-/tmp/hako-clients}
export DEBIAN_FRONTEND=noninteractive
t_start=$EPOCHREALTIME
log() { printf '[ci-clients %6.1fs] %s\n' "$(bc_sub "$EPOCHREALTIME" "$t_start")" "$*"; }
bc_sub() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", a - b }'; }

stop_pidfile() {
  local f=$1
  [ -s "$f" ] || return 0
  local pid
  pid=$(cat "$f")
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  rm -f "$f"
}

RL_USER=hako-podman # rootless podman's user
if [ "${1:-}" = stop ]; then
  stop_pidfile "$WORK/docker/dockerd.pid.ours"
  stop_pidfile "$WORK/containerd/containerd.pid"
  # The process rootless podman keeps to hold its user and mount namespaces.
  if rl_uid=$(id -u "$RL_USER" 2>/dev/null); then stop_pidfile "/run/user/$rl_uid/libpod/tmp/pause.pid"; fi
  exit 0
fi

# ---------------------------------------------------------------- packages
# uidmap (newuidmap/newgidmap), slirp4netns and fuse-overlayfs: rootless podman (podman only recommends them).
PKGS=(podman conmon netavark aardvark-dns containerd docker.io iptables busybox-static jq util-linux bsdutils runc
  uidmap slirp4netns fuse-overlayfs)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "apt-get install ${missing[*]}"
  # A mirror mid-sync can fail an index of no interest here (seen: bookworm-security armhf, the architecture
  # .ci/run adds): go on with what was fetched; the install below fails if a package is really missing.
  apt-get update -qq || log "apt-get update reported errors; installing from the indexes it fetched"
  # Debian's packages try to start their services through invoke-rc.d; there is no init system here.
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >"$REPO/ci-clients-apt.log" 2>&1 ||
    { cat "$REPO/ci-clients-apt.log"; exit 1; }
fi

# ---------------------------------------------------------------- hako
if [ ! -f "$REPO/dist/cli.js" ]; then
  log "building hako"
  npm run build >/dev/null
fi
mkdir -p "$WORK/bin" "$WORK/rootfs"
REAL=$REPO/bin/hako
# Registered everywhere instead of bin/hako. Its basename must be `hako`: podman compares the runtime's
# basename with runtime_supports_json. Clients pass no environment (podman: only XDG_RUNTIME_DIR), so
# every path is baked in; node is found through #!/usr/bin/env in the libc default PATH.
write_wrapper() { # write_wrapper PATH LOG REAL
  local dest=$1 log=$2 real=$3
  cat >"$dest.new" <<EOF
#!/bin/bash
# Logging wrapper in front of hako (written by scripts/ci-clients.sh).
REAL=$real
LOG=$log
t0=\$EPOCHREALTIME
fds=; for n in 0 1 2 3 4 5 6 7 8 9; do [ -e /proc/\$\$/fd/\$n ] && fds+=" \$n->\$(readlink /proc/\$\$/fd/\$n)"; done
{ printf '%s pid=%s parent=%s cwd=%s\n  argv:' "\$t0" "\$\$" "\$(cat /proc/\$PPID/comm 2>/dev/null)" "\$PWD"; printf ' %q' "\$@"
  printf '\n  fds:%s\n' "\$fds"; } >> "\$LOG"
PATH=\${PATH:-/usr/local/bin:/usr/bin:/bin} "\$REAL" "\$@"; rc=\$?
printf '  %s -> rc=%s (%d ms)\n' "\$\$" "\$rc" \$(( (\${EPOCHREALTIME/./}-\${t0/./})/1000 )) >> "\$LOG"
exit \$rc
EOF
  chmod 755 "$dest.new"
  mv "$dest.new" "$dest"
}
write_wrapper "$WORK/bin/hako" "$WORK/argv.log" "$REAL"
HAKO=$WORK/bin/hako

# A busybox rootfs, imported into every client as localhost/busybox:latest.
BUSYBOX=$(command -v busybox)
if [ ! -x "$WORK/rootfs/bin/busybox" ]; then
  rm -rf "$WORK/rootfs"
  mkdir -p "$WORK/rootfs"/{bin,dev,proc,sys,tmp,etc,root}
  cp "$BUSYBOX" "$WORK/rootfs/bin/busybox"
  for a in sh echo cat ls id mount ps sleep true false env grep head tail wc top stty tty hostname ip ifconfig readlink test; do
    ln -s busybox "$WORK/rootfs/bin/$a"
  done
  echo 'root:x:0:0:root:/root:/bin/sh' >"$WORK/rootfs/etc/passwd"
  echo 'root:x:0:' >"$WORK/rootfs/etc/group"
fi
[ -f "$WORK/busybox.tar" ] || tar -C "$WORK/rootfs" -cf "$WORK/busybox.tar" .

wait_for() { # wait_for SECONDS DESCRIPTION COMMAND...
  local secs=$1 what=$2; shift 2
  local n=$((secs * 10))
  for _ in $(seq 1 "$n"); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "ci-clients: $what did not come up in ${secs}s" >&2
  return 1
}

# ---------------------------------------------------------------- containerd
CD=$WORK/containerd
mkdir -p "$CD"
# ctr and dockerd need no CRI plugin; test/clients/kubernetes.test.ts starts its own containerd with the
# handler of docs/kubernetes.md and the CRI plugin.
cat >"$CD/config.toml" <<EOF
version = 2
root = "$CD/root"
state = "$CD/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$CD/containerd.sock"
[ttrpc]
  address = "$CD/containerd.sock.ttrpc"
[debug]
  level = "info"
EOF
# hako's own shim (runtime io.containerd.hako.v2): containerd looks for containerd-shim-hako-v2 on its PATH.
# (bin/containerd-shim-hako-v2 is what npm install / npm run build:native put there: the native launcher, or the sh.)
# test/clients/shim.test.ts runs a containerd of its own with the same PATH entry.
ln -sfn "$REPO/bin/containerd-shim-hako-v2" "$WORK/bin/containerd-shim-hako-v2"
CTR=(ctr -a "$CD/containerd.sock")
CTR_PROBE=(ctr --connect-timeout 1s -a "$CD/containerd.sock")
if ! { [ -S "$CD/containerd.sock" ] && "${CTR_PROBE[@]}" version >/dev/null 2>&1; }; then
  log "starting containerd"
  PATH="$WORK/bin:$PATH" setsid nohup containerd --config "$CD/config.toml" >>"$CD/containerd.log" 2>&1 </dev/null &
  echo $! >"$CD/containerd.pid"
  wait_for 30 containerd "${CTR_PROBE[@]}" version || { tail -20 "$CD/containerd.log"; exit 1; }
fi

# ---------------------------------------------------------------- dockerd
DK=$WORK/docker
mkdir -p "$DK"
cat >"$DK/daemon.json.new" <<EOF
{
  "data-root": "$DK/root",
  "exec-root": "$DK/exec",
  "pidfile": "$DK/dockerd.pid",
  "hosts": ["unix://$DK/docker.sock"],
  "containerd": "$CD/containerd.sock",
  "runtimes": { "hako": { "path": "$HAKO" } }
}
EOF
mv "$DK/daemon.json.new" "$DK/daemon.json"
DOCKER=(/usr/bin/docker -H "unix://$DK/docker.sock")
if ! "${DOCKER[@]}" version >/dev/null 2>&1; then
  log "starting dockerd"
  rm -f "$DK/dockerd.pid"
  setsid nohup dockerd --config-file "$DK/daemon.json" >>"$DK/dockerd.log" 2>&1 </dev/null &
  echo $! >"$DK/dockerd.pid.ours"
  wait_for 60 dockerd "${DOCKER[@]}" version || { tail -30 "$DK/dockerd.log"; exit 1; }
else
  # Pick up a changed runtimes entry without a restart.
  [ -s "$DK/dockerd.pid" ] && kill -HUP "$(cat "$DK/dockerd.pid")" 2>/dev/null || true
fi

# ---------------------------------------------------------------- podman
PD=$WORK/podman
mkdir -p "$PD"
cat >"$PD/containers.conf" <<EOF
[containers]
# Hosts whose bounding set lacks CAP_SYS_RESOURCE (CI sandboxes) cannot raise podman's default rlimits.
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$PD/events.log"
runtime = "hako"
# conmon passes --log-format=json --log <userdata>/oci-log only to runtimes whose basename is listed.
runtime_supports_json = ["crun", "runc", "kata", "runsc", "youki", "krun", "hako"]
[network]
network_backend = "netavark"
[engine.runtimes]
hako = ["$HAKO"]
runc = ["/usr/sbin/runc", "/usr/bin/runc"]
EOF
cat >"$PD/storage.conf" <<EOF
[storage]
driver = "overlay"
graphroot = "$PD/storage"
runroot = "$PD/run"
EOF
export CONTAINERS_CONF=$PD/containers.conf CONTAINERS_STORAGE_CONF=$PD/storage.conf
PODMAN=(podman)

# ---------------------------------------------------------------- images
if ! "${PODMAN[@]}" image exists localhost/busybox:latest; then
  log "podman import"
  "${PODMAN[@]}" import -q "$WORK/busybox.tar" localhost/busybox:latest >/dev/null
fi
if ! "${DOCKER[@]}" image inspect localhost/busybox:latest >/dev/null 2>&1; then
  log "docker import"
  "${DOCKER[@]}" import "$WORK/busybox.tar" localhost/busybox:latest >/dev/null
fi
# The pod sandbox ("pause") image of the CRI test: busybox sleeping as pid 1.
if ! "${DOCKER[@]}" image inspect localhost/pause:hako >/dev/null 2>&1; then
  log "docker import (pause)"
  "${DOCKER[@]}" import --change 'ENTRYPOINT ["/bin/sleep", "2147483647"]' "$WORK/busybox.tar" localhost/pause:hako >/dev/null
fi
# containerd: docker's images as docker-archives (ctr image import reads them).
[ -s "$WORK/busybox-docker.tar" ] || "${DOCKER[@]}" save localhost/busybox:latest -o "$WORK/busybox-docker.tar"
[ -s "$WORK/pause-docker.tar" ] || "${DOCKER[@]}" save localhost/pause:hako -o "$WORK/pause-docker.tar"
if ! "${CTR[@]}" -n hako-e2e image ls -q | grep -qx 'localhost/busybox:latest'; then
  log "ctr image import"
  "${CTR[@]}" -n hako-e2e image import "$WORK/busybox-docker.tar" >/dev/null
fi

# ---------------------------------------------------------------- CRI client (kubernetes.test.ts)
# Debian 12 has no crictl: the test speaks the CRI gRPC API itself, with these two npm packages.
CRI=$WORK/cri-client
if [ ! -f "$CRI/node_modules/@grpc/grpc-js/package.json" ] || [ ! -f "$CRI/node_modules/@grpc/proto-loader/package.json" ]; then
  log "npm install @grpc/grpc-js @grpc/proto-loader"
  mkdir -p "$CRI"
  (cd "$CRI" && npm install --no-audit --no-fund --no-save --no-package-lock --loglevel=error \
    @grpc/grpc-js@1.14.7 @grpc/proto-loader@0.8.1 >/dev/null)
fi

# ---------------------------------------------------------------- rootless podman
# podman run by an unprivileged user runs conmon and hako as uid 0 of the user namespace it makes from the
# user's subordinate ids: hako keeps its state in $XDG_RUNTIME_DIR/hako and runs without cgroups. The user
# gets subuid/subgid ranges, an $XDG_RUNTIME_DIR (/run/user/UID, 0700: there is no logind to make it), a
# containers.conf in its $HOME ($WORK/podman-rootless/home, where its podman storage lives too) and the
# busybox image. Its podman runs with `--network none` in the tests: no slirp4netns, so no /dev/net/tun.
RL=$WORK/podman-rootless
RL_HOME=$RL/home
if ! id -u "$RL_USER" >/dev/null 2>&1; then
  log "useradd $RL_USER"
  useradd -M -d "$RL_HOME" -s /usr/sbin/nologin "$RL_USER"
fi
RL_UID=$(id -u "$RL_USER")
RL_GID=$(id -g "$RL_USER")
RL_XDG=/run/user/$RL_UID
# Debian's useradd gives a new user 65536 subordinate ids; one made otherwise gets a range after the highest.
for f in /etc/subuid /etc/subgid; do
  [ -e "$f" ] || touch "$f"
  if ! grep -q -e "^$RL_USER:" -e "^$RL_UID:" "$f"; then
    start=$(awk -F: 'BEGIN { m = 100000 } NF == 3 && $2 + $3 > m { m = $2 + $3 } END { print m }' "$f")
    log "$f: $RL_USER:$start:65536"
    echo "$RL_USER:$start:65536" >>"$f"
  fi
done
chmod go+rx "$WORK" # whatever root's umask made it: the user reaches its wrapper and the image through it
install -d -m 755 /run/user "$RL" "$RL/bin"
install -d -m 700 -o "$RL_UID" -g "$RL_GID" "$RL_XDG" "$RL_HOME" "$RL_HOME/.config" "$RL_HOME/.config/containers"
as_rl() { # run a command as the user, with the environment of a login (no more)
  setpriv --reuid="$RL_UID" --regid="$RL_GID" --init-groups \
    env -i -C "$RL_HOME" HOME="$RL_HOME" USER="$RL_USER" LOGNAME="$RL_USER" XDG_RUNTIME_DIR="$RL_XDG" PATH=/usr/bin:/bin "$@"
}
# The user runs this checkout's hako when it can read it, else a copy of what bin/hako loads (a checkout
# under /root, say); podman.test.ts checks that the copy is still this checkout's build.
RL_REAL=$REAL
if ! as_rl test -x "$REAL" -a -r "$REPO/dist/cli.js" -a -r "$REPO/package.json"; then
  RL_REAL=$RL/hako/bin/hako
  log "rootless: $RL_USER cannot read $REPO; it runs a copy in $RL/hako"
  rm -rf "$RL/hako.new"
  mkdir -p "$RL/hako.new/dist"
  cp -a "$REPO/bin" "$REPO/package.json" "$REPO/binding.gyp" "$RL/hako.new/"
  cp -a "$REPO/dist/cli.js" "$REPO/dist/lib" "$RL/hako.new/dist/"
  for f in hako.node hako-init hako-policy-helper hako-probe; do
    if [ -e "$REPO/build/Release/$f" ]; then install -D -m 755 "$REPO/build/Release/$f" "$RL/hako.new/build/Release/$f"; fi
  done
  if [ -d "$REPO/prebuilds" ]; then cp -a "$REPO/prebuilds" "$RL/hako.new/"; fi
  if [ -d "$REPO/node_modules/node-gyp-build" ]; then
    mkdir -p "$RL/hako.new/node_modules"
    cp -a "$REPO/node_modules/node-gyp-build" "$RL/hako.new/node_modules/"
  fi
  chmod -R a+rX "$RL/hako.new"
  rm -rf "$RL/hako"
  mv "$RL/hako.new" "$RL/hako"
else
  rm -rf "$RL/hako" # a copy an earlier run made
fi
write_wrapper "$RL/bin/hako" "$RL/argv.log" "$RL_REAL"
touch "$RL/argv.log"
chown "$RL_UID:$RL_GID" "$RL/argv.log"
cat >"$RL_HOME/.config/containers/containers.conf.new" <<EOF
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
[engine]
# No systemd user session; hako skips the cgroups it may not make, with a warning in its log.
cgroup_manager = "cgroupfs"
events_logger = "file"
runtime = "hako"
runtime_supports_json = ["crun", "runc", "kata", "runsc", "youki", "krun", "hako"]
[engine.runtimes]
hako = ["$RL/bin/hako"]
EOF
chown "$RL_UID:$RL_GID" "$RL_HOME/.config/containers/containers.conf.new"
mv "$RL_HOME/.config/containers/containers.conf.new" "$RL_HOME/.config/containers/containers.conf"
as_rl test -x "$RL/bin/hako" -a -r "$WORK/busybox.tar" ||
  { echo "ci-clients: $RL_USER cannot reach $RL/bin/hako or $WORK/busybox.tar (the permissions of a parent of $WORK?)" >&2; exit 1; }
if ! as_rl podman image exists localhost/busybox:latest; then
  log "podman import (rootless, as $RL_USER)"
  as_rl podman import -q "$WORK/busybox.tar" localhost/busybox:latest >/dev/null
fi
rl_info=$(as_rl podman info --format '{{.Host.Security.Rootless}} {{.Host.OCIRuntime.Name}} {{.Store.GraphDriverName}}')
case $rl_info in
  "true hako "*) ;;
  *) echo "ci-clients: rootless podman of $RL_USER reports '$rl_info', not 'true hako <driver>'" >&2; exit 1 ;;
esac

cat >"$WORK/env.json" <<EOF
{
  "work": "$WORK",
  "repo": "$REPO",
  "hako": "$HAKO",
  "shim": "$WORK/bin/containerd-shim-hako-v2",
  "realHako": "$REAL",
  "argvLog": "$WORK/argv.log",
  "image": "localhost/busybox:latest",
  "containerdSocket": "$CD/containerd.sock",
  "containerdLog": "$CD/containerd.log",
  "dockerHost": "unix://$DK/docker.sock",
  "dockerExecRoot": "$DK/exec",
  "dockerLog": "$DK/dockerd.log",
  "containersConf": "$PD/containers.conf",
  "storageConf": "$PD/storage.conf",
  "busyboxArchive": "$WORK/busybox-docker.tar",
  "pauseArchive": "$WORK/pause-docker.tar",
  "criClientModules": "$CRI/node_modules",
  "rootless": {
    "user": "$RL_USER",
    "uid": $RL_UID,
    "gid": $RL_GID,
    "home": "$RL_HOME",
    "xdgRuntimeDir": "$RL_XDG",
    "hako": "$RL/bin/hako",
    "realHako": "$RL_REAL",
    "argvLog": "$RL/argv.log"
  }
}
EOF
log "ready: containerd $(containerd --version | awk '{print $3}'), dockerd $(dockerd --version | awk '{print $3}' | tr -d ,), podman $(podman --version | awk '{print $3}'), conmon $(conmon --version | awk 'NR==1{print $3}'); rootless podman as $RL_USER (storage: ${rl_info##* })"
