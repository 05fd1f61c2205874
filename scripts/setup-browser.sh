#!/usr/bin/env bash
# Installs Debian's chromium for the console's browser test (Playwright drives it; its
# own browser download is not used: this machine reaches only the package registries).
set -euo pipefail
if [ -x "${TOLLGATE_CHROMIUM:-/usr/bin/chromium}" ]; then
  exit 0
fi
sudo=""
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null; then sudo="sudo"; else
    echo "setup-browser: chromium is missing and installing it needs root (apt-get install chromium)" >&2
    exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
command -v chromium >/dev/null
