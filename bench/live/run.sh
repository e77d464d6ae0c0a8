#!/usr/bin/env bash
# Live views under load: N tasks of `true` through a real `sparky serve` (2 slots), with no event stream open and with
# K dashboards' streams open (GET /api/v1/events, what the dashboard's page reads), rounds alternated. Prints tasks/s
# for each, their ratio against the target (within 10%), the daemon's CPU per task, and how far behind the daemon
# each stream fell (every event's arrival against its own timestamp) against the target (no stream more than 1 s).
#
#   bench/live/run.sh            full: 5,000 tasks, 100 streams, 3 rounds of each
#   bench/live/run.sh --small    500 tasks, 20 streams, 1 round of each: what test.sh runs
#
# Environment: SPARKY_BENCH_DAEMON (native, the default: ./native.sh's build; jit: sparky.dll under dotnet).
# Exit status: 0 when every round ran every task (a missed target prints MISSED); non-zero when a build failed, the
# daemon could not start or died, a task failed, or a stream lost an event.
set -euo pipefail
cd "$(dirname "$0")/../.."
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1
args=()
for a in "$@"; do
  case "$a" in
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    --small) args+=(--small) ;;
    *) echo "run.sh: unknown argument '$a' (use --small)" >&2; exit 64 ;;
  esac
done
daemon=$(bench/build.sh sparky)
bench/build.sh project bench/live/Sparky.Bench.Live.csproj
mkdir -p bench/results
exec dotnet bench/live/bin/Release/net10.0/Sparky.Bench.Live.dll --sparky "$daemon" --results bench/results "${args[@]}"
