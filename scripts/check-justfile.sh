#!/usr/bin/env bash
# Checks the command centre: `just --list` reads the justfile, and every recipe's commands (as `just --dry-run`
# prints them, without running them) start with a program or script that exists here. test.sh runs it.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/just.sh --list --unsorted
bad=0
for recipe in $(scripts/just.sh --summary); do
  while IFS= read -r line; do
    [ -z "$line" ] && continue
    cmd=${line%% *}
    case "$cmd" in
      ./*|scripts/*|/*) [ -x "$cmd" ] || { echo "justfile: recipe '$recipe' runs '$cmd', which is not an executable file here" >&2; bad=1; } ;;
      *) command -v "$cmd" >/dev/null || { echo "justfile: recipe '$recipe' runs '$cmd', which is not on PATH" >&2; bad=1; } ;;
    esac
  done < <(scripts/just.sh --dry-run "$recipe" 2>&1 >/dev/null)
done
[ $bad = 0 ] && echo "justfile: every recipe's commands exist"
exit $bad
