#!/usr/bin/env bash
# Sparky throughput benchmark: N trivial tasks (`true`) end to end on 2 slots through Sparky,
# task-spooler, nq, `xargs -P2` and a process-spawn floor, side by side; then Sparky's
# submit-to-start latency, idle RSS, and (full mode) /queue/status latency and restart time with
# 1,000,000 tasks queued. See bench/README.md.
#
#   bench/throughput/run.sh            full: N=${SPARKY_BENCH_N:-5000}, plus the 1,000,000-queued part
#   bench/throughput/run.sh --small    N=${SPARKY_BENCH_N:-300}, no 1M part, well under a minute
#   bench/throughput/run.sh --strict   exit 2 when a target is missed
#
# Environment: SPARKY_BENCH_N (tasks per tool), SPARKY_BENCH_BATCH (submit batch, default 1000),
# SPARKY_BENCH_QUEUED (default 1000000), SPARKY_BENCH_QUEUE_BUDGET_S (seconds allowed for
# submitting the queued tasks, default 900; past it the run goes on with what was submitted),
# SPARKY_BENCH_DAEMON (native, the default: ./native.sh's build; jit: sparky.dll under dotnet),
# SPARKY_BENCH_LATENCY_SAMPLES (default 50 small / 200 full), SPARKY_BENCH_WARMUP (untimed tasks
# run through the daemon before its timed runs, default 300 small / 1000 full), SPARKY_BENCH_ROUNDS (round-robin
# rounds of every tool, median reported; default 1 small / 3 full), SPARKY_BENCH_NQ_EVERY_ROUND=1
# (nq runs in the last round only by default: at N=5000 one nq run takes minutes).
#
# Before/after in one run: SPARKY_BENCH_BASELINE=<git revision> (HEAD~3, a commit id, a branch) also builds
# that revision's sparky (the same kind as SPARKY_BENCH_DAEMON) in a temporary detached `git worktree` under the
# scratch dir (removed on exit; this checkout is not touched) and times it in the same rounds as the current one:
# the table gets a "sparky @<short id>" row and a current/baseline line for tasks/s and CPU per task.
# SPARKY_BENCH_BASELINE_EXE=<path to a built sparky or sparky.dll> uses that build instead (no git, no build);
# SPARKY_BENCH_BASELINE_LABEL names the row (default: the short commit id, or "baseline" for _EXE).
#
# Exit status: 0 when every part ran (missed targets are reported, not failed, unless --strict),
# 1 when anything errored (a tool failed or timed out, Sparky lost or failed a task).
set -euo pipefail
caller=$PWD
cd "$(dirname "$0")/../.."
root=$PWD
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1

small=0
strict=()
for a in "$@"; do
  case "$a" in
    --small) small=1 ;;
    --strict) strict=(--strict) ;;
    -h|--help) sed -n '2,28p' "$0"; exit 0 ;;
    *) echo "run.sh: unknown argument '$a' (use --small, --strict)" >&2; exit 64 ;;
  esac
done
if [ $small = 1 ]; then n=${SPARKY_BENCH_N:-300}; else n=${SPARKY_BENCH_N:-5000}; fi
case "$n" in ''|*[!0-9]*) echo "run.sh: SPARKY_BENCH_N must be a positive integer" >&2; exit 64 ;; esac
[ "$n" -ge 2 ] || { echo "run.sh: SPARKY_BENCH_N must be at least 2" >&2; exit 64; }

# ---- the baseline, checked before anything is built: a revision to build, or a build to use
base_rev="" base_exe="" base_label=""
if [ -n "${SPARKY_BENCH_BASELINE:-}" ] && [ -n "${SPARKY_BENCH_BASELINE_EXE:-}" ]; then
  echo "run.sh: set SPARKY_BENCH_BASELINE or SPARKY_BENCH_BASELINE_EXE, not both" >&2; exit 64
fi
if [ -n "${SPARKY_BENCH_BASELINE:-}" ]; then
  base_rev=$(git rev-parse -q --verify "${SPARKY_BENCH_BASELINE}^{commit}") \
    || { echo "run.sh: SPARKY_BENCH_BASELINE='$SPARKY_BENCH_BASELINE' is not a commit of this repository" >&2; exit 64; }
  base_label=${SPARKY_BENCH_BASELINE_LABEL:-$(git rev-parse --short "$base_rev")}
elif [ -n "${SPARKY_BENCH_BASELINE_EXE:-}" ]; then
  base_exe=$SPARKY_BENCH_BASELINE_EXE
  case "$base_exe" in /*) ;; *) base_exe=$caller/$base_exe ;; esac
  if [ ! -f "$base_exe" ] || { case "$base_exe" in *.dll) false ;; *) [ ! -x "$base_exe" ] ;; esac; }; then
    echo "run.sh: SPARKY_BENCH_BASELINE_EXE='$SPARKY_BENCH_BASELINE_EXE' is not a sparky.dll or an executable sparky" >&2; exit 64
  fi
  base_exe=$(cd "$(dirname "$base_exe")" && pwd -P)/$(basename "$base_exe")
  base_label=${SPARKY_BENCH_BASELINE_LABEL:-baseline}
fi
case "$base_label" in *[[:space:]]*) echo "run.sh: SPARKY_BENCH_BASELINE_LABEL must not contain spaces" >&2; exit 64 ;; esac

# ---- tools: task-spooler and nq (a row whose tool is missing is skipped)
# shellcheck source=../common/comparators.sh
. bench/common/comparators.sh
install_comparators || true
tsp_bin=$(find_tsp || true)

# ---- sparky, Release, built unless already up to date: the native build (./native.sh, what `dotnet tool install`
# installs on linux-x64) unless SPARKY_BENCH_DAEMON=jit asks for sparky.dll under dotnet
case "${SPARKY_BENCH_DAEMON:-native}" in
  native)
    daemon=$(./native.sh) || { echo "run.sh: the native build failed (SPARKY_BENCH_DAEMON=jit runs the dll)" >&2; exit 1; } ;;
  jit)
    daemon=$root/src/Sparky/bin/Release/net10.0/sparky.dll
    if [ ! -f "$daemon" ] || [ -n "$(find src Directory.Build.props -newer "$daemon" \( -name '*.cs' -o -name '*.csproj' -o -name '*.props' \) -not -path '*/obj/*' -not -path '*/bin/*' -print -quit)" ]; then
      echo "run.sh: building sparky (Release)"
      dotnet build src/Sparky -c Release -nologo -clp:ErrorsOnly >/dev/null || { echo "run.sh: build failed" >&2; dotnet build src/Sparky -c Release -nologo -clp:ErrorsOnly >&2; exit 1; }
    fi ;;
  *) echo "run.sh: SPARKY_BENCH_DAEMON must be native or jit" >&2; exit 64 ;;
esac

# ---- a scratch dir on the normal temp filesystem; everything we start is ended by pid on exit
work=$(mktemp -d "${TMPDIR:-/tmp}/sparky-bench.XXXXXX")
py=""
base_wt=""
cleanup() {
  local rc=$?
  set +e
  # The driver first: SIGTERM makes it stop what it started and exit; give it a few seconds.
  if [ -n "$py" ] && kill -0 "$py" 2>/dev/null; then
    kill -TERM "$py" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$py" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$py" 2>/dev/null
  fi
  if [ -f "$work/pids" ]; then
    # "pid starttime label": signal a pid only while it is still the process we started.
    while read -r pid start label; do
      [ -r "/proc/$pid/stat" ] || continue
      now=$(awk '{sub(/^.*\) /, ""); print $20}' "/proc/$pid/stat" 2>/dev/null)
      [ "$now" = "$start" ] || continue
      if [ "$label" = blocker-pgrp ]; then kill -KILL -- "-$pid" 2>/dev/null; kill -KILL "$pid" 2>/dev/null
      else kill -TERM "$pid" 2>/dev/null; fi
    done < "$work/pids"
    sleep 1
    while read -r pid start label; do
      [ -r "/proc/$pid/stat" ] || continue
      now=$(awk '{sub(/^.*\) /, ""); print $20}' "/proc/$pid/stat" 2>/dev/null)
      [ "$now" = "$start" ] && kill -KILL "$pid" 2>/dev/null
    done < "$work/pids"
  fi
  # Our own task-spooler server, by its socket (tsp -K ends the server of that socket only).
  for sock in "$work"/tsp*/socket; do
    [ -n "$tsp_bin" ] && [ -S "$sock" ] && TS_SOCKET="$sock" "$tsp_bin" -K >/dev/null 2>&1
  done
  # The baseline's worktree (its daemon is ended above): --force, as its build left untracked files.
  [ -n "$base_wt" ] && git -C "$root" worktree remove --force "$base_wt" >/dev/null 2>&1
  rm -rf "$work"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- the baseline's build: that revision checked out (detached) in the scratch dir, built like the current one
base_args=()
if [ -n "$base_rev" ]; then
  base_wt=$work/baseline-src
  git worktree add -q --detach "$base_wt" "$base_rev" >/dev/null \
    || { echo "run.sh: git worktree add of $base_rev failed" >&2; exit 1; }
  echo "run.sh: building the baseline sparky @$base_label ($SPARKY_BENCH_BASELINE, ${SPARKY_BENCH_DAEMON:-native})"
  case "${SPARKY_BENCH_DAEMON:-native}" in
    native)
      [ -x "$base_wt/native.sh" ] || { echo "run.sh: $base_label has no native.sh (SPARKY_BENCH_DAEMON=jit builds the dll)" >&2; exit 1; }
      base_exe=$("$base_wt/native.sh") || { echo "run.sh: the baseline's native build failed" >&2; exit 1; } ;;
    jit)
      (cd "$base_wt" && dotnet build src/Sparky -c Release -nologo -clp:ErrorsOnly >"$work/baseline-build.log" 2>&1) \
        || { echo "run.sh: the baseline's build failed:" >&2; tail -n 30 "$work/baseline-build.log" >&2; exit 1; }
      base_exe=$base_wt/src/Sparky/bin/Release/net10.0/sparky.dll ;;
  esac
  [ -f "$base_exe" ] || { echo "run.sh: the baseline's build did not make $base_exe" >&2; exit 1; }
fi
[ -n "$base_exe" ] && base_args=(--baseline-dll "$base_exe" --baseline-label "$base_label" --baseline-rev "$base_rev")

# ---- the spawn floor: a tiny C program when a compiler is there, else bash loops (bench.py says which)
floor=""
if command -v cc >/dev/null && cc -O2 -o "$work/spawnfloor" bench/throughput/spawnfloor.c 2>/dev/null; then
  floor="$work/spawnfloor"
fi

mkdir -p bench/results
stamp=$(date -u +%Y%m%dT%H%M%SZ)
args=(--n "$n" --dll "$daemon" --work "$work" --tsp "$tsp_bin" --floor-bin "$floor"
      --results "$root/bench/results/throughput-$stamp.json"
      --batch "${SPARKY_BENCH_BATCH:-1000}" --queued "${SPARKY_BENCH_QUEUED:-1000000}"
      --queue-budget "${SPARKY_BENCH_QUEUE_BUDGET_S:-900}" --latency-samples "${SPARKY_BENCH_LATENCY_SAMPLES:-0}"
      --warmup "${SPARKY_BENCH_WARMUP:--1}" --rounds "${SPARKY_BENCH_ROUNDS:-0}")
[ "${SPARKY_BENCH_NQ_EVERY_ROUND:-0}" = 1 ] || args+=(--nq-once)
[ $small = 1 ] && args+=(--small)
# In the background and waited for, so that a signal to this script runs the trap at once.
python3 bench/throughput/bench.py "${args[@]}" "${base_args[@]}" "${strict[@]}" &
py=$!
rc=0
wait "$py" || rc=$?
py=""
exit $rc
