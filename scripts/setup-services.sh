#!/usr/bin/env bash
# Installs the servers the fleet tests start throwaway instances of: Debian's
# postgresql (initdb/pg_ctl, psql) and redis-server. Nothing is started here and
# nothing needs to be running: the tests start each server on a free port in a temp dir
# and stop it afterwards. A developer with their own servers points the tests at them
# with TOLLGATE_TEST_POSTGRES_URL and TOLLGATE_TEST_REDIS_URL instead.
set -euo pipefail
want=()
if [ -z "${TOLLGATE_TEST_REDIS_URL:-}" ] && ! command -v redis-server >/dev/null; then
  want+=(redis-server)
fi
if [ -z "${TOLLGATE_TEST_POSTGRES_URL:-}" ] && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  want+=(postgresql)
fi
if ! command -v psql >/dev/null; then
  want+=(postgresql-client)
fi
if [ ${#want[@]} -eq 0 ]; then
  exit 0
fi
sudo=""
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null; then sudo="sudo"; else
    echo "setup-services: ${want[*]} missing and installing needs root (apt-get install ${want[*]})" >&2
    exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
# The packages' own services are not wanted: policy-rc.d keeps them from starting.
printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null
$sudo chmod +x /usr/sbin/policy-rc.d
trap '$sudo rm -f /usr/sbin/policy-rc.d' EXIT
$sudo apt-get install -y -qq --no-install-recommends "${want[@]}" >/dev/null
