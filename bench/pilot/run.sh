#!/usr/bin/env bash
# Pilot benchmark: N tasks of 50 ms on the local single-node Slurm (tests/slurm/cluster.sh), three ways in one run:
# Sparky in pilot mode (worker jobs fed over ZeroMQ), Sparky with one sbatch per task (its Slurm executor), and a
# plain `sbatch` loop polled with one squeue per second. Prints makespan for each, the ratio, and pilot mode's
# per-task overhead.
#
#   bench/pilot/run.sh           N=${SPARKY_BENCH_PILOT_N:-2000}  (the sbatch ways take about 8 minutes each here)
#   bench/pilot/run.sh --small   N=${SPARKY_BENCH_PILOT_N:-40}: what test.sh runs
#
# Needs root (slurmctld, slurmd, munged run as root) and Debian's slurm-wlm and munge.
# Exit status: 0 when every way completed every task (targets are reported, not enforced), 1 otherwise.
set -euo pipefail
cd "$(dirname "$0")/../.."
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1
n=${SPARKY_BENCH_PILOT_N:-2000}
for a in "$@"; do
  case "$a" in
    --small) n=${SPARKY_BENCH_PILOT_N:-40} ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "run.sh: unknown argument '$a' (use --small)" >&2; exit 64 ;;
  esac
done
bench/build.sh project src/Sparky
dir=$(mktemp -d /tmp/sparky-bench-pilot.XXXXXX)
chmod 755 "$dir"
trap 'tests/slurm/cluster.sh stop "$dir/cluster" >/dev/null 2>&1 || true; rm -rf "$dir"' EXIT
eval "$(tests/slurm/cluster.sh start "$dir/cluster")"
python3 bench/pilot/bench.py --n "$n" --work "$dir" --sparky "$PWD/src/Sparky/bin/Release/net10.0/sparky.dll"
