#!/bin/sh
# containerd-shim-hako-v2: containerd's runtime v2 shim for hako (lib/shim/main.ts runs in Node).
# The POSIX sh launcher, for machines without the native one: install.js (npm install, npm run build:native) copies
# the native launcher (src-native/launcher, the same logic in static C, built or prebuilt for this machine) to
# bin/containerd-shim-hako-v2, or this file when there is none. Both answer the two routine calls without Node:
#  - `delete` after a normal removal (containerd 1.5+ runs it after every one): the shim already deleted the
#    container and unmounted its rootfs, so there is nothing to clean; the answer is runc's shim's (137, now).
#  - `start` for a group whose shim runs (the second and later containers of a pod): the same socket address as
#    lib/shim/address.ts computes, checked against the running shim's record (its pid, whose environment names
#    that socket), written to <bundle>/address and printed.
# For a new group it starts the server directly (HAKO_SHIM_BOOT, see lib/shim/main.ts), one Node start in all.
# Anything else (options on stdin, an unusual argument, a server that failed to report) goes to Node's `start`.
# Both routine calls are on the path of every container containerd runs, and each program this script runs costs
# about a millisecond or two (fork and exec): the routine `delete` runs none, the routine `start` two (sed for the
# group, sha256sum for the socket), and only the ways to Node resolve where this script lives.
set -u
shim_js() { js=$(readlink -f "$0") && js=${js%/*}/hako-shim.js; }
node_shim() { shim_js; exec node "$js" "$@"; }

ns= id= bundle= address= cmd= want= odd= debug=
for a in "$@"; do
  if [ -n "$want" ]; then eval "$want=\$a"; want=; continue; fi
  case $a in
    -namespace|--namespace) want=ns ;;
    -id|--id) want=id ;;
    -bundle|--bundle) want=bundle ;;
    -address|--address) want=address ;;
    -publish-binary|--publish-binary) want=ignored ;;
    -namespace=*|--namespace=*) ns=${a#*=} ;;
    -id=*|--id=*) id=${a#*=} ;;
    -bundle=*|--bundle=*) bundle=${a#*=} ;;
    -address=*|--address=*) address=${a#*=} ;;
    -publish-binary=*|--publish-binary=*) ;;
    -debug|--debug) debug=-debug ;;
    start|delete) [ -z "$cmd" ] && cmd=$a || odd=1 ;;
    *) odd=1 ;;
  esac
done
[ -z "$odd" ] && [ -n "$ns" ] && [ -n "$id" ] || node_shim "$@"
# Names that path.join would rewrite, or that need escaping in mountinfo: Node decides.
for v in "$ns" "$id" "$address/" "$bundle/"; do
  case $v in *//*|*/./*|*/../*|*' '*|*\\*|*'
'*) node_shim "$@" ;; esac
done
case $ns$id in */*) node_shim "$@" ;; esac
state=/run/containerd/hako/$ns

mounted() { # mounted PATH: PATH is a mount point
  p=$(readlink -f "$1" 2>/dev/null) || return 1
  awk -v p="$p" '$5 == p { f = 1 } END { exit !f }' /proc/self/mountinfo
}

# The answer to `delete`, as runc's shim (and lib/shim/main.ts) gives it: DeleteResponse {exit_status = 2: 137
# (128 + SIGKILL), exited_at = 3: now}, protobuf-encoded with built-ins only (no fork): now is the boot time
# (/proc/stat btime) plus the uptime's whole seconds, the varint's bytes printed through printf's octal escapes
# (byte N). containerd uses the answer only for a task still in its list (a shim that died), as that task's exit.
byte() { printf "\\$(( ($1 >> 6) & 7 ))$(( ($1 >> 3) & 7 ))$(( $1 & 7 ))"; }
delete_response() {
  btime=0
  while read -r k v; do [ "$k" = btime ] && btime=$v && break; done </proc/stat
  read -r up _ </proc/uptime
  s=$((btime + ${up%.*})) t=$((btime + ${up%.*})) n=1
  while [ "$t" -ge 128 ]; do t=$((t >> 7)) n=$((n + 1)); done
  printf '\020\211\001\032'
  byte $((n + 1))
  printf '\010'
  while [ "$s" -ge 128 ]; do byte $((128 + (s & 127))); s=$((s >> 7)); done
  byte "$s"
}

case $cmd in
delete)
  # .hako-deleted: the shim's Delete finished (state removed, rootfs unmounted; lib/shim/task-service.ts).
  if [ ! -e "$state/$id" ] && { [ -e "${bundle:-$PWD}/.hako-deleted" ] || ! mounted "${bundle:-$PWD}/rootfs"; }; then
    delete_response
    exit 0
  fi
  ;;
start)
  # Options on stdin (a pipe, not /dev/null) can change the grouping: Node reads them.
  # Every fork here is on a new container's path: test -ef and read are built in, and one sed reads both annotations.
  [ /proc/$$/fd/0 -ef /dev/null ] && [ -n "$address" ] && [ -r config.json ] || node_shim "$@"
  # "g" lines are runc's group annotation, "s" lines the CRI sandbox's; the group wins (a line with both prints "g"),
  # an empty one does not count (as in groupOf). Only a one-line "annotations" object without nested braces or \u
  # escapes is read, each key at most once and with a string value without escapes: otherwise, or with either key
  # anywhere else, a line prints "x", and Node reads the document (JSON.parse).
  # (A document whose only "annotations" object is nested, not top-level, would still be misread: the native
  # launcher, src-native/launcher, parses the JSON.)
  group= sandbox=
  while IFS= read -r l; do
    case $l in
    x*) node_shim "$@" ;;
    g*) [ -n "$group" ] || group=${l#g} ;;
    s*) [ -n "$sandbox" ] || sandbox=${l#s} ;;
    esac
  done <<EOF
$(sed -n -e 'h' -e 's/"annotations":{[^{}]*}//' -e '/"io\.containerd\.runc\.v2\.group"/{s/.*/x/p;d;}' \
  -e '/"io\.kubernetes\.cri\.sandbox-id"/{s/.*/x/p;d;}' -e 'g' -e '/"annotations":{[^{}]*}/!d' \
  -e 's/.*"annotations":{\([^{}]*\)}.*/\1/' -e '/\\u/{s/.*/x/p;d;}' \
  -e '/"io\.containerd\.runc\.v2\.group".*"io\.containerd\.runc\.v2\.group"/s/.*/x/p' \
  -e '/"io\.kubernetes\.cri\.sandbox-id".*"io\.kubernetes\.cri\.sandbox-id"/s/.*/x/p' \
  -e '/"io\.containerd\.runc\.v2\.group":"[^"\\]*"/!s/.*"io\.containerd\.runc\.v2\.group".*/x/p' \
  -e '/"io\.kubernetes\.cri\.sandbox-id":"[^"\\]*"/!s/.*"io\.kubernetes\.cri\.sandbox-id".*/x/p' \
  -e 's/.*"io\.containerd\.runc\.v2\.group":"\([^"\\][^"\\]*\)".*/g\1/p' \
  -e 's/.*"io\.kubernetes\.cri\.sandbox-id":"\([^"\\][^"\\]*\)".*/s\1/p' config.json)
EOF
  [ -n "$group" ] || group=$sandbox
  [ -n "$group" ] || group=$id
  hash=$(printf '%s' "${address%/}/$ns/$group" | sha256sum) || node_shim "$@"
  sock=/run/containerd/s/${hash%% *}
  rec=/run/containerd/hako-shims/${hash%% *}.pid
  # The record is "<pid> <start time>" (lib/shim/server.ts): the server is alive while /proc/<pid>/stat shows that
  # start time (field 22), which no later process of that pid has, and is no zombie. Read with built-ins only; the
  # fields after comm's last ") " are state (3) ... starttime (22). (A failed shift would end this shell: counted.)
  started_at() { [ $# -ge 20 ] && [ "$1" != Z ] && shift 19 && now=$1; }
  pid= start= stat= now=
  if [ -S "$sock" ] && { { read -r pid start <"$rec" || [ -n "$pid" ]; } && read -r stat <"/proc/$pid/stat"; } 2>/dev/null &&
    [ -n "$start" ] && started_at ${stat##*) } && [ "$now" = "$start" ]; then
    # One write(2) of a short line: containerd reads it only when it restarts, long after this.
    { printf 'unix://%s' "$sock" >address; } 2>/dev/null || node_shim "$@"
    printf 'unix://%s' "$sock"
    exit 0
  fi
  # A new group (or a dead shim's): the server itself binds the socket, writes ./address and reports the address
  # on fd 3, a pipe to this launcher, once it listens (one Node start instead of `start` plus the server). In its
  # own session; its stderr is containerd's log FIFO when there is one. Its Node flags: SERVER_NODE_FLAGS in
  # lib/shim/server-process.ts.
  logf=/dev/null
  [ -p log ] && logf=log
  shim_js || node_shim "$@"
  out=$(HAKO_SHIM_SOCKET=$sock HAKO_SHIM_BOOT=1 setsid node --max-semi-space-size=1 "$js" -namespace "$ns" -id "$id" \
    -address "$address" $debug 3>&1 >/dev/null 2>>"$logf" </dev/null &)
  case $out in unix://*) printf '%s' "$out"; exit 0 ;; esac
  ;;
esac
node_shim "$@"
