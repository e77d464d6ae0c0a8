#!/usr/bin/env bash
# The daemon alone: N tasks through a real `sparky serve` (HTTP door, engine, store, events, metrics) whose cpu_short
# class runs nothing (bench_noop_classes = cpu_short, a setting for benchmarks only: every attempt ends at once with
# exit 0, recorded and announced as a real one). Prints the daemon's CPU per task (utime+stime from /proc, in all and
# by thread) and tasks/s, against the target (<= 0.1 ms of daemon CPU per task).
#
#   bench/overhead/run.sh            full: 100,000 tasks, 3 rounds (after 5,000 untimed)
#   bench/overhead/run.sh --small    3,000 tasks, 1 round (after 1,000 untimed): a few seconds, what test.sh runs
#
# Environment: SPARKY_BENCH_N (tasks per round), SPARKY_BENCH_ROUNDS, SPARKY_BENCH_BATCH (tasks per submit request,
# 1000), SPARKY_BENCH_SLOTS (cpu_short slots, 2 as in bench/throughput), SPARKY_BENCH_WARMUP (untimed tasks first),
# SPARKY_BENCH_DAEMON (native, the default: ./native.sh's build; jit: sparky.dll under dotnet).
# Before/after in one run: SPARKY_BENCH_BASELINE=<git revision> builds that revision (the same kind) in a temporary
# detached `git worktree` (removed on exit) and times it in the same rounds, alternated; SPARKY_BENCH_BASELINE_EXE=<path>
# uses a build you have. The baseline must know bench_noop_classes (this commit or later).
# Exit status: 0 when every round ran every task (a missed target prints MISSED); 1 when a build failed, a daemon could
# not start or died, or a task was lost or failed; 64 on a bad argument.
set -euo pipefail
caller=$PWD
cd "$(dirname "$0")/../.."
root=$PWD
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1
args=()
for a in "$@"; do
  case "$a" in
    -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
    --small) args+=(--small) ;;
    *) echo "run.sh: unknown argument '$a' (use --small)" >&2; exit 64 ;;
  esac
done
if [ -n "${SPARKY_BENCH_BASELINE:-}" ] && [ -n "${SPARKY_BENCH_BASELINE_EXE:-}" ]; then
  echo "run.sh: set SPARKY_BENCH_BASELINE or SPARKY_BENCH_BASELINE_EXE, not both" >&2; exit 64
fi
rev=""
if [ -n "${SPARKY_BENCH_BASELINE:-}" ]; then
  rev=$(git rev-parse -q --verify "${SPARKY_BENCH_BASELINE}^{commit}") \
    || { echo "run.sh: SPARKY_BENCH_BASELINE='$SPARKY_BENCH_BASELINE' is not a commit of this repository" >&2; exit 64; }
fi
daemon=$(bench/build.sh sparky)
bench/build.sh project bench/overhead/Sparky.Bench.Overhead.csproj

base_wt=""
trap '[ -n "$base_wt" ] && git -C "$root" worktree remove --force "$base_wt" >/dev/null 2>&1; [ -n "$base_wt" ] && rm -rf "$(dirname "$base_wt")"' EXIT
if [ -n "$rev" ]; then
  base_wt=$(mktemp -d "${TMPDIR:-/tmp}/sparky-overhead-base.XXXXXX")/src
  git worktree add -q --detach "$base_wt" "$rev" >/dev/null || { echo "run.sh: git worktree add of $rev failed" >&2; exit 1; }
  echo "run.sh: building the baseline @$(git rev-parse --short "$rev") (${SPARKY_BENCH_DAEMON:-native})"
  # Its own bench/build.sh, so the baseline is built the way its revision builds itself.
  base=$(SPARKY_BENCH_PREBUILT= "$base_wt/bench/build.sh" sparky) || { echo "run.sh: the baseline's build failed" >&2; exit 1; }
  args+=(--baseline "$base" --baseline-label "${SPARKY_BENCH_BASELINE_LABEL:-$(git rev-parse --short "$rev")}")
elif [ -n "${SPARKY_BENCH_BASELINE_EXE:-}" ]; then
  base=$SPARKY_BENCH_BASELINE_EXE
  case "$base" in /*) ;; *) base=$caller/$base ;; esac
  args+=(--baseline "$base" --baseline-label "${SPARKY_BENCH_BASELINE_LABEL:-baseline}")
fi
mkdir -p bench/results
rc=0
dotnet bench/overhead/bin/Release/net10.0/Sparky.Bench.Overhead.dll --sparky "$daemon" --results bench/results "${args[@]}" || rc=$?
exit $rc
