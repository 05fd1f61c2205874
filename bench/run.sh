#!/usr/bin/env bash
# Load bench against the real release binary: see bench/run.py for what it measures.
# Installs nginx and wrk from Debian when missing, builds what it runs, then measures.
# `bench/run.sh --fleet` measures 1, 2 and 3 replicas on PostgreSQL + Redis (bench/fleet.py).
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
if [ "${1:-}" = "--fleet" ]; then
  shift
  scripts/setup-services.sh
  exec python3 bench/fleet.py "$@"
fi
exec python3 bench/run.py "$@"
