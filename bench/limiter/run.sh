#!/usr/bin/env bash
# Limiter benchmark: a deterministic discrete-event simulation (simulated time, seeded) of a resource whose
# throughput knee moves, run under the AIMD, Vegas and Gradient2 limiters and every fixed limit 1..64.
# See bench/limiter/README.md.
#
#   bench/limiter/run.sh           full: 3 seeds, 3000 s steady + 4000 s moving (simulated)
#   bench/limiter/run.sh --small   1 seed, 600 s + 800 s: a few seconds after the build
#   bench/limiter/run.sh --trace aimd   also print that limiter's limit every 5 simulated s (stderr)
#
# Exit status: 0 when it ran, whether or not the targets were met (it is a measurement); non-zero when the
# build failed or the simulation crashed.
set -euo pipefail
cd "$(dirname "$0")"
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1

for a in "$@"; do
  case "$a" in
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
  esac
done

../build.sh project Sparky.Bench.Limiter.csproj
exec dotnet bin/Release/net10.0/Sparky.Bench.Limiter.dll "$@"
