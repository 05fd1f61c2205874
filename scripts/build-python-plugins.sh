#!/usr/bin/env bash
# Builds every Python plugin (plugins/<name>/app.py) into
# $CARGO_TARGET_DIR/wasm32-wasip2/release/tollgate_<name with - as _>.wasm, where the
# gateway finds first-party plugins, with componentize-py from tests/.venv (make venv).
# A plugin whose inputs (its files, the SDK, the WIT, componentize-py's version) are
# unchanged since its last build is skipped.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${CARGO_TARGET_DIR:-$repo/target}/wasm32-wasip2/release"
cpy="$repo/tests/.venv/bin/componentize-py"
sdk="$repo/guest-sdk/python"
wit="$repo/wit/plugin.wit"

if [[ ! -x "$cpy" ]]; then
    echo "build-python-plugins: $cpy is missing; run 'make venv' (tests/requirements.txt pins componentize-py)" >&2
    exit 1
fi
mkdir -p "$out"
version="$("$cpy" --version)"

# Hash of everything a plugin's component is built from (tests and caches excluded).
inputs_hash() {
    {
        echo "$version"
        find "$1" "$sdk/tollgate_guest" "$wit" -type f \
            \( -name '*.py' -o -name '*.json' -o -name '*.wit' \) \
            -not -path '*/tests/*' -not -path '*/__pycache__/*' -print0 |
            sort -z | xargs -0 sha256sum
    } | sha256sum | cut -d' ' -f1
}

built=0
for app in "$repo"/plugins/*/app.py; do
    [[ -e "$app" ]] || continue
    dir="$(dirname "$app")"
    name="$(basename "$dir")"
    wasm="$out/tollgate_${name//-/_}.wasm"
    stamp="$wasm.inputs"
    hash="$(inputs_hash "$dir")"
    if [[ -f "$wasm" && -f "$stamp" && "$(cat "$stamp")" == "$hash" ]]; then
        echo "build-python-plugins: $name is up to date ($wasm)"
        continue
    fi
    start=$(date +%s%N)
    # componentize-py embeds the Python path's directories: stage the plugin without its
    # tests and caches. Only the plugin and the SDK go on the path (without -p it would
    # also search the running interpreter's site-packages).
    stage="$(mktemp -d)"
    tar -C "$dir" --exclude=tests --exclude=__pycache__ -cf - . | tar -C "$stage" -xf -
    (cd "$stage" && env -u VIRTUAL_ENV "$cpy" -q -d "$wit" -w plugin componentize app \
        -p "$stage" -p "$sdk" -o "$wasm.tmp") || { rm -rf "$stage"; exit 1; }
    rm -rf "$stage"
    mv "$wasm.tmp" "$wasm"
    echo "$hash" >"$stamp"
    echo "build-python-plugins: built $wasm ($(stat -c %s "$wasm") bytes, $((($(date +%s%N) - start) / 1000000)) ms)"
    built=$((built + 1))
done
echo "build-python-plugins: $built built"
