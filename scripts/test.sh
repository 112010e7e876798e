#!/usr/bin/env bash
# Set up, then run the whole test suite (unit, integration against a real server, end to end).
set -euo pipefail
cd "$(dirname "$0")/.."
HUBSERVE_SETUP_BROWSER=1 bash scripts/setup.sh
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
exec .venv/bin/python -m pytest "$@"
