#!/usr/bin/env bash
# Runs the benchmarks at full size: one by name (bench/<name>/run.sh), or every one in turn. Extra arguments go to
# each run.sh (--small: the size test.sh runs). Results land in bench/results/; bench/README.md explains them.
#   scripts/bench.sh                 every benchmark, full size (tens of minutes)
#   scripts/bench.sh throughput      one
#   scripts/bench.sh ipc --small     one, small
set -euo pipefail
cd "$(dirname "$0")/.."
names=()
if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then names=("$1"); shift; fi
if [ ${#names[@]} -eq 0 ]; then
  for dir in bench/*/; do [ -x "$dir/run.sh" ] && names+=("$(basename "$dir")"); done
fi
status=0
for name in "${names[@]}"; do
  [ -x "bench/$name/run.sh" ] || { echo "bench.sh: no benchmark '$name' (bench/*/run.sh: $(ls bench | tr '\n' ' '))" >&2; exit 64; }
  echo "== bench/$name/run.sh $*"
  "bench/$name/run.sh" "$@" || status=1
done
exit $status
