#!/usr/bin/env bash
# The CLI's cost per call: `sparky submit -- true` against a real daemon beside `tsp true` and `nq -q true`, per call
# (tools taking turns, wall and CPU, median and p90) and in a bash loop, and `sparky --help` alone. Prints the
# targets (a submit in a shell loop within 2x of tsp; --help under 3 ms) and writes bench/results/cli-<time>.json.
#
#   bench/cli/run.sh            1,000 submits per tool, 200 --help
#   bench/cli/run.sh --small    50 submits per tool, 30 --help: what test.sh runs
#   bench/cli/run.sh --strict   exit 2 when a target is missed
#
# Environment: SPARKY_BENCH_DAEMON (native, the default: ./native.sh's build; jit: sparky.dll under dotnet, whose
# start-up is the JIT's, not this benchmark's subject), SPARKY_BENCH_N (submits per tool),
# SPARKY_BENCH_BASELINE_EXE=<another sparky> (times it in the same turns: before/after in one run),
# SPARKY_BENCH_BASELINE_LABEL (its row's name, default baseline), SPARKY_BENCH_PREBUILT=1 (build nothing).
# Exit status: 0 when every call ran (a missed target prints MISSED), 1 when a call failed, a printed id is not in the
# daemon or a build failed, 2 on --strict with a missed target, 64 on a bad argument.
set -euo pipefail
caller=$PWD
cd "$(dirname "$0")/../.."
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1
small=0
extra=()
for a in "$@"; do
  case "$a" in
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    --small) small=1; extra+=(--small) ;;
    --strict) extra+=(--strict) ;;
    *) echo "run.sh: unknown argument '$a' (use --small, --strict)" >&2; exit 64 ;;
  esac
done
if [ $small = 1 ]; then n=${SPARKY_BENCH_N:-50} help_n=30; else n=${SPARKY_BENCH_N:-1000} help_n=200; fi
case "$n" in ''|*[!0-9]*|0) echo "run.sh: SPARKY_BENCH_N must be a positive integer" >&2; exit 64 ;; esac
base=${SPARKY_BENCH_BASELINE_EXE:-}
if [ -n "$base" ]; then
  case "$base" in /*) ;; *) base=$caller/$base ;; esac
  [ -x "$base" ] || { echo "run.sh: SPARKY_BENCH_BASELINE_EXE='$SPARKY_BENCH_BASELINE_EXE' is not an executable sparky" >&2; exit 64; }
fi
label=${SPARKY_BENCH_BASELINE_LABEL:-baseline}
case "$label" in *[[:space:]]*|'') echo "run.sh: SPARKY_BENCH_BASELINE_LABEL must be one word" >&2; exit 64 ;; esac

# shellcheck source=../common/comparators.sh
. bench/common/comparators.sh
install_comparators || exit 1
tsp_bin=$(find_tsp)

sparky=$(bench/build.sh sparky)
case "$sparky" in
  *.dll) # a dotnet-run dll cannot be spawned by itself: a two-line launcher in the scratch dir
    dll=$sparky; sparky="" ;;
  *) dll="" ;;
esac

# A scratch dir; the daemon (the one long-lived process started) is in $work/pids and ended by pid on exit.
work=$(mktemp -d "${TMPDIR:-/tmp}/sparky-bench-cli.XXXXXX")
py=""
cleanup() {
  local rc=$?
  set +e
  # The driver stops the daemon itself on SIGTERM; the pid book is for a driver that could not.
  [ -n "$py" ] && kill -TERM "$py" 2>/dev/null && wait "$py"
  # "pid starttime label": a pid is signalled only while it is still the process started.
  [ -f "$work/pids" ] && while read -r pid start _; do
    [ "$(awk '{sub(/^.*\) /, ""); print $20}' "/proc/$pid/stat" 2>/dev/null)" = "$start" ] && kill -KILL "$pid" 2>/dev/null
  done < "$work/pids"
  [ -S "$work/tsp.socket" ] && TS_SOCKET="$work/tsp.socket" "$tsp_bin" -K >/dev/null 2>&1
  rm -rf "$work"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
if [ -n "$dll" ]; then
  sparky=$work/sparky
  printf '#!/bin/sh\nexec dotnet %q "$@"\n' "$dll" > "$sparky"
  chmod +x "$sparky"
fi

mkdir -p bench/results
args=(--n "$n" --help-n "$help_n" --sparky "$sparky" --tsp "$tsp_bin" --work "$work"
      --results "$PWD/bench/results/cli-$(date -u +%Y%m%dT%H%M%SZ).json")
[ -n "$base" ] && args+=(--baseline "$base" --baseline-label "$label")
# In the background and waited for, so that a signal to this script runs the trap at once.
python3 bench/cli/bench.py "${args[@]}" "${extra[@]}" &
py=$!
rc=0
wait "$py" || rc=$?
py=""
exit $rc
