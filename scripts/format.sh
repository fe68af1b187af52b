#!/usr/bin/env bash
# Apply the formatters to the whole tree: Prettier to the code (.prettierrc.json; what .prettierignore leaves, and
# bin/hako) and clang-format to src-native/ (.clang-format). `npm run lint` (run by `npm test`) checks the same
# files with the same settings, so it passes right after this script.
# Needs clang-format (apt-get install clang-format, or CLANG_FORMAT=path): without it nothing is changed.
set -euo pipefail
cd "$(dirname "$0")/.."

cf=${CLANG_FORMAT:-clang-format}
if ! command -v "$cf" >/dev/null; then
  echo "format: no $cf on PATH (apt-get install clang-format, or set CLANG_FORMAT): nothing formatted" >&2
  exit 1
fi
node node_modules/prettier/bin/prettier.cjs --write --log-level=warn . bin/hako
git ls-files -z 'src-native/*.cc' 'src-native/*.h' 'src-native/*.c' | xargs -0 "$cf" -i
echo "format: done ($("$cf" --version)); review with git diff --stat"
