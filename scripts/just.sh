#!/usr/bin/env bash
# Runs `just` (the command centre's runner), the version pinned in tools/package-lock.json, installing it on first use
# (scripts/tools.sh). Every recipe in the justfile is a thin call of a script, so nothing needs `just`: this is for
# those who like it.
#   scripts/just.sh --list        scripts/just.sh test
set -euo pipefail
cd "$(dirname "$0")/.."
modules=$(scripts/tools.sh)
exec "$modules/.bin/just" "$@"
