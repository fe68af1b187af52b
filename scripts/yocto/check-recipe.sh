#!/usr/bin/env bash
# Run the steps of meta-hako's hako recipe outside BitBake, with a Debian cross toolchain standing in for the
# SDK's, and the target Node's headers (TARGET_INCDIR) or else the host's for ${STAGING_INCDIR}/node:
#   unpack   the `npm pack` tarball and the node-addon-api / node-gyp-build / yaml tarballs (sha256 from the recipe)
#   compile  cmake with the recipe's EXTRA_OECMAKE and TARGET_C(XX)FLAGS
#   install  the recipe's own do_install, into OUTDIR/image
#
#   [TARGET_INCDIR=DIR] scripts/yocto/check-recipe.sh x64|arm64|arm OUTDIR [hako-VERSION.tgz]
#
# Without a tarball it makes one with scripts/yocto/pack-source.sh (dist/ must be built). Needs cmake and, for arm64/arm,
# g++-aarch64-linux-gnu / g++-arm-linux-gnueabihf. The test test/prebuild-emulated.test.ts runs it for arm.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
ARCH=${1:?usage: check-recipe.sh x64|arm64|arm OUTDIR [TGZ]}
OUT=${2:?usage: check-recipe.sh x64|arm64|arm OUTDIR [TGZ]}
TGZ=${3:-}
BB=$(ls "$ROOT"/scripts/yocto/meta-hako/recipes-containers/hako/hako_*.bb)
PV=$(basename "$BB" .bb)
PV=${PV#hako_}
case $ARCH in
  x64) TRIPLET=x86_64-linux-gnu PROC=x86_64 PRE= ;;
  arm64) TRIPLET=aarch64-linux-gnu PROC=aarch64 PRE=aarch64-linux-gnu- ;;
  arm) TRIPLET=arm-linux-gnueabihf PROC=arm PRE=arm-linux-gnueabihf- ;;
  *) echo "check-recipe: unknown arch $ARCH" >&2; exit 2 ;;
esac

rm -rf "$OUT"
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
UNPACKDIR=$OUT/sources
S=$UNPACKDIR/hako-$PV
B=$OUT/build
D=$OUT/image
mkdir -p "$UNPACKDIR" "$S" "$B" "$D"

# Value of a simple one-line assignment in the recipe (VAR = "value" or VAR:append = " value").
recipe_var() { sed -n "s/^$1 *?*= *\"\(.*\)\"$/\1/p" "$BB" | head -1; }

# --- unpack -------------------------------------------------------------------------------------------------
if [ -z "$TGZ" ]; then
  TGZ=$("$ROOT/scripts/yocto/pack-source.sh" "$OUT" | cut -d' ' -f1)
fi
tar -xzf "$TGZ" -C "$S" --strip-components=1
grep -o 'https://registry.npmjs.org/[^ ;"]*\.tgz;name=[a-z]*;subdir=[a-z-]*' "$BB" | while IFS=';' read -r url name subdir; do
  name=${name#name=}
  subdir=${subdir#subdir=}
  want=$(sed -n "s/^SRC_URI\[$name.sha256sum\] = \"\([0-9a-f]*\)\"/\1/p" "$BB")
  file=$OUT/$(basename "$url")
  pkg=$(basename "$url" .tgz)       # node-addon-api-8.9.2
  (cd "$OUT" && npm pack "${pkg%-*}@${pkg##*-}" --silent >/dev/null)
  got=$(sha256sum "$file" | cut -d' ' -f1)
  [ "$got" = "$want" ] || { echo "check-recipe: $url: sha256 $got, recipe says $want" >&2; exit 1; }
  mkdir -p "$UNPACKDIR/$subdir"
  tar -xzf "$file" -C "$UNPACKDIR/$subdir" --strip-components=1
done

# --- compile --------------------------------------------------------------------------------------------------
# ${STAGING_INCDIR}: the target's headers, as BitBake stages them. TARGET_INCDIR gives a directory holding the
# target Node's node/ headers (the include/ of the official linux-<arch> Node build); without it, the host's.
if [ -n "${TARGET_INCDIR:-}" ]; then
  [ -f "$TARGET_INCDIR/node/node_api.h" ] || { echo "check-recipe: TARGET_INCDIR=$TARGET_INCDIR has no node/node_api.h" >&2; exit 2; }
  STAGING_INCDIR=$(cd "$TARGET_INCDIR" && pwd)
else
  STAGING_INCDIR=/usr/include
  echo "check-recipe: the host's Node headers stand in for the target's (set TARGET_INCDIR to use the target's)" >&2
fi
expand() { sed -e "s|\${STAGING_INCDIR}|$STAGING_INCDIR|g" -e "s|\${UNPACKDIR}|$UNPACKDIR|g"; }
EXTRA_OECMAKE=$(recipe_var EXTRA_OECMAKE | expand)
CFLAGS_APPEND=$(recipe_var 'TARGET_CFLAGS:append')
CXXFLAGS_APPEND=$(recipe_var 'TARGET_CXXFLAGS:append')
cat > "$OUT/toolchain.cmake" <<EOF
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR $PROC)
set(CMAKE_C_COMPILER ${PRE}gcc)
set(CMAKE_CXX_COMPILER ${PRE}g++)
set(CMAKE_STRIP ${PRE}strip)
EOF
# shellcheck disable=SC2086
cmake -S "$S" -B "$B" -DCMAKE_TOOLCHAIN_FILE="$OUT/toolchain.cmake" -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_C_FLAGS="-O2 $CFLAGS_APPEND" -DCMAKE_CXX_FLAGS="-O2 $CXXFLAGS_APPEND" $EXTRA_OECMAKE >"$OUT/cmake.log"
cmake --build "$B" -j"$(nproc)" >>"$OUT/cmake.log" 2>&1 || { cat "$OUT/cmake.log" >&2; exit 1; }
if grep -q 'warning:' "$OUT/cmake.log"; then grep 'warning:' "$OUT/cmake.log" | sort -u | sed 's/^/check-recipe: /' >&2; fi

# --- install: the recipe's do_install, variables expanded as BitBake would -----------------------------------
sed -n '/^do_install() {$/,/^}$/p' "$BB" | sed '1d;$d' | sed \
  -e "s|\${D}|$D|g" -e "s|\${S}|$S|g" -e "s|\${B}|$B|g" -e "s|\${UNPACKDIR}|$UNPACKDIR|g" \
  -e "s|\${nonarch_libdir}|/usr/lib|g" -e "s|\${bindir}|/usr/bin|g" >"$OUT/do_install.sh"
sh -e "$OUT/do_install.sh"

pkg=$D/usr/lib/node_modules/hako
[ -x "$D/usr/bin/hako" ] && [ -f "$pkg/build/Release/hako.node" ] && [ -x "$pkg/build/Release/hako-init" ]
[ ! -e "$pkg/prebuilds" ]
# The shim's launcher: the native one built here (an ELF, not the tarball's sh), linked from /usr/bin.
[ -x "$D/usr/bin/containerd-shim-hako-v2" ] && [ -f "$pkg/bin/hako-shim.js" ]
[ "$(head -c 4 "$pkg/bin/containerd-shim-hako-v2" | od -An -tx1 | tr -d ' ')" = 7f454c46 ]
echo "check-recipe: $ARCH ($TRIPLET) installed into $D:"
(cd "$D" && find . \( -path ./usr/lib/node_modules/hako/dist -o -path ./usr/lib/node_modules/hako/node_modules/yaml/dist \) -prune -o -type f -newer "$OUT/toolchain.cmake" -print | sort | sed 's/^/  /')
