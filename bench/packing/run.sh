#!/usr/bin/env bash
# GPU packing benchmark: a deterministic discrete-event simulation (simulated time, seeded) of an 8 x 80 GiB GPU
# machine driving the real Scheduler + ResourcePool (src/Sparky.Core/Scheduling) with a mixed trace of whole-GPU
# and GPU-memory-share tasks; makespan against its lower bound. See bench/packing/README.md.
#
#   bench/packing/run.sh            full: 2000 tasks per run, 3 seeds, 3 scenarios; a few seconds
#   bench/packing/run.sh --small    300 tasks, 1 seed: about a second after the build
#   bench/packing/run.sh --seed N   only seed N
#
# Exit status: 0 when it ran, whether or not the target was met (it is a measurement); non-zero when the
# build failed, the simulation crashed, or an allocation invariant was violated (a GPU handed out twice, shares
# over a GPU's memory, a task started twice).
set -euo pipefail
cd "$(dirname "$0")"
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1

for a in "$@"; do
  case "$a" in
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
  esac
done

../build.sh project Sparky.Bench.Packing.csproj
exec dotnet bin/Release/net10.0/Sparky.Bench.Packing.dll "$@"
