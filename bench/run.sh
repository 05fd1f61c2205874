#!/usr/bin/env bash
# Load bench against the real release binary: see bench/run.py for what it measures.
# Installs nginx and wrk from Debian when missing, builds what it runs, then measures.
set -euo pipefail
cd "$(dirname "$0")/.."
missing=()
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing+=(nginx-light)
command -v wrk >/dev/null || missing+=(wrk)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing ${missing[*]} (Debian)"
  if [ "$(id -u)" = 0 ]; then apt-get install -y -q "${missing[@]}" >/dev/null
  else sudo apt-get install -y -q "${missing[@]}" >/dev/null; fi
fi
export PATH="$PATH:/usr/sbin"
scripts/setup-toolchain.sh
cargo build --release -p tollgate
make --no-print-directory plugins
exec python3 bench/run.py "$@"
