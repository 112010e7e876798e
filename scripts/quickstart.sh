#!/usr/bin/env bash
# Set up, start hubserve on its embedded defaults, deploy all-MiniLM-L6-v2 and print a prediction.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/hubserve quickstart "$@"
