#!/usr/bin/env bash
# Builds every JavaScript plugin (plugins/*/plugin.js) into a WebAssembly component at
# $CARGO_TARGET_DIR/wasm32-wasip2/release/tollgate_<name>.wasm, where the gateway looks
# for first-party plugins. Skips a plugin whose inputs (its sources, the SDK, the WIT,
# the lockfile) are unchanged since its last build.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
sdk="$repo/guest-sdk/js"
out_dir="${CARGO_TARGET_DIR:-$repo/target}/wasm32-wasip2/release"

# npm ci only when the lockfile changed since the last install.
if ! cmp -s "$sdk/package-lock.json" "$sdk/node_modules/.package-lock.json.ci" 2>/dev/null; then
  (cd "$sdk" && npm ci --no-audit --no-fund)
  cp "$sdk/package-lock.json" "$sdk/node_modules/.package-lock.json.ci"
fi

mkdir -p "$out_dir"
for dir in "$repo"/plugins/*/; do
  [[ -f "$dir/plugin.js" ]] || continue
  name="$(basename "$dir")"
  wasm="$out_dir/tollgate_${name//-/_}.wasm"
  stamp="$wasm.inputs"
  inputs="$(
    cd "$repo" && find "plugins/$name" guest-sdk/js/src guest-sdk/js/scripts wit/plugin.wit guest-sdk/js/package-lock.json \
      -path '*/node_modules' -prune -o -path "plugins/$name/tests" -prune -o -type f -print0 |
      sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1
  )"
  if [[ -f "$wasm" && "$(cat "$stamp" 2>/dev/null)" == "$inputs" ]]; then
    echo "$name: up to date ($wasm)"
    continue
  fi
  node "$sdk/scripts/build-plugin.js" "$dir" "$wasm"
  echo "$inputs" >"$stamp"
done
