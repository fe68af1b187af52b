#!/usr/bin/env bash
# The recipe's source tarball, hako-VERSION.tgz: what `npm pack` ships minus prebuilds/ (the recipe builds the
# native parts for its target and installs no prebuild, so the three prebuild folders would be dead weight), made
# reproducibly (sorted names, fixed owner and mtime, gzip without a timestamp) so its sha256 only changes with its
# contents. Prints the tarball's path and sha256.
#
#   scripts/yocto/pack-source.sh [OUTDIR]   (default: the recipe's files/ directory; dist/ must be built)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OUT=${1:-$ROOT/scripts/yocto/meta-hako/recipes-containers/hako/files}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/hako-pack-source-XXXXXX")
trap 'rm -rf "$WORK"' EXIT
TGZ=$(cd "$ROOT" && npm pack --ignore-scripts --silent --pack-destination "$WORK" | tail -1)
tar -xzf "$WORK/$TGZ" -C "$WORK"
rm -rf "$WORK/package/prebuilds"
# As prepack ships it (install.js --pack): the sh at the launcher's path, whatever this checkout built there.
cp "$WORK/package/bin/containerd-shim-hako-v2.sh" "$WORK/package/bin/containerd-shim-hako-v2"
tar --sort=name --mtime='1985-10-26 08:15:00 UTC' --owner=0 --group=0 --numeric-owner -C "$WORK" -cf - package | gzip -9n > "$OUT/$TGZ"
echo "$OUT/$TGZ $(sha256sum "$OUT/$TGZ" | cut -d' ' -f1)"
