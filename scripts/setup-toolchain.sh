#!/usr/bin/env bash
# Installs the pinned toolchain (rust-toolchain.toml) and the wasm32-wasip2 target the
# plugins build for. This rustup does not add a toolchain file's targets by itself.
set -euo pipefail
cd "$(dirname "$0")/.."
channel=$(sed -n 's/^channel *= *"\(.*\)"/\1/p' rust-toolchain.toml)
if ! rustup toolchain list | grep -q "^${channel}"; then
  rustup toolchain install "${channel}" --profile minimal --component rustfmt,clippy
fi
if ! rustup +"${channel}" target list --installed | grep -qx wasm32-wasip2; then
  rustup +"${channel}" target add wasm32-wasip2
fi
