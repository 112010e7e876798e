#!/usr/bin/env bash
# An alias kept for the docs that name it: scripts/check is the test command.
exec "$(dirname "$0")/check" "$@"
