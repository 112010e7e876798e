#!/usr/bin/env bash
# Create .venv with hubserve and every dependency; torch is constrained to the CPU build.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
  .venv/bin/python -m pip install --quiet --upgrade pip
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[test]"
# The console's browser tests drive Debian's chromium; scripts/test.sh asks for it (HUBSERVE_SETUP_BROWSER=1)
# and it is installed when missing. Never fail the set-up for it: without it tests/console skip with the reason.
if [ "${HUBSERVE_SETUP_BROWSER:-0}" = 1 ] && [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null 2>&1; then
  SUDO=""
  if [ "$(id -u)" != 0 ]; then SUDO="$(command -v sudo || true)"; [ -n "$SUDO" ] && SUDO="$SUDO -n"; fi
  if [ "$(id -u)" = 0 ] || [ -n "$SUDO" ]; then
    { $SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends chromium; } \
      >/dev/null 2>&1 || echo "setup: could not install chromium; the console's browser tests will be skipped" >&2
  else
    echo "setup: chromium is missing and apt-get needs root; the console's browser tests will be skipped" >&2
  fi
fi
