#!/usr/bin/env bash
# Headless Chromium and its WebDriver from Debian, for the browser tests
# (pytest -m browser). Browser downloads (Selenium Manager, Playwright) do
# not work on our machines, so the tests use these two binaries:
#   /usr/bin/chromium  /usr/bin/chromedriver
# Idempotent: does nothing when both are installed. Needs root (CI runs as root).
set -euo pipefail
if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
  echo "chromium: $(chromium --version 2>/dev/null || echo present); chromedriver present"
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends chromium chromium-driver fonts-dejavu-core
chromium --version
