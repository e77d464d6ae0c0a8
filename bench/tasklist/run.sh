#!/usr/bin/env bash
# Task list benchmark: the API behind the dashboard's table (GET /api/v1/tasks: filters, search, cursor paging) on a
# large store. Fills a store through the store's own writer (80% succeeded, 10% failed, 5% cancelled, 5% queued behind
# one running task), times the migration that builds the search index on a schema-9 copy of it, starts a real
# `sparky serve` on it and times one page (limit 100, newest first) for each kind of query: no filter, one state, two
# states, class + state, a search with many matches, one with a single match, search + state, search + a mid-size and
# a small filter, and deep pages. Prints p50/p99 per case against the target p99 < 50 ms. See bench/README.md.
#
#   bench/tasklist/run.sh            full: 1,000,000 tasks, 200 timed requests per case (the fill takes minutes)
#   bench/tasklist/run.sh --small    20,000 tasks, 50 per case: well under a minute after the builds
#
# Environment: SPARKY_BENCH_TASKS (tasks in the store), SPARKY_BENCH_SAMPLES (timed requests per case),
# SPARKY_BENCH_DAEMON (native, the default: ./native.sh's build; jit: sparky.dll under dotnet).
#
# Exit status: 0 when it ran, targets met or not (a missed one prints MISSED); non-zero when a build failed, the
# daemon could not start or died, or a page was not what its query asked for.
set -euo pipefail
cd "$(dirname "$0")/../.."
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1

args=()
for a in "$@"; do
  case "$a" in
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    --small) args+=(--small) ;;
    *) echo "run.sh: unknown argument '$a' (use --small)" >&2; exit 64 ;;
  esac
done
[ -n "${SPARKY_BENCH_TASKS:-}" ] && args+=(--tasks "$SPARKY_BENCH_TASKS")
[ -n "${SPARKY_BENCH_SAMPLES:-}" ] && args+=(--samples "$SPARKY_BENCH_SAMPLES")

# The daemon: the native build unless SPARKY_BENCH_DAEMON=jit; the bench itself fills the store with src/Sparky.Store.
daemon=$(bench/build.sh sparky)
bench/build.sh project bench/tasklist/Sparky.Bench.TaskList.csproj

mkdir -p bench/results
exec dotnet bench/tasklist/bin/Release/net10.0/Sparky.Bench.TaskList.dll --sparky "$daemon" --results bench/results "${args[@]}"
