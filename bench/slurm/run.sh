#!/usr/bin/env bash
# Slurm benchmark: N short tasks through Sparky's Slurm executor against the same N submitted by a plain
# `sbatch` loop (then polled with one squeue per second, as a careful script would), on the same local
# single-node Slurm started by tests/slurm/cluster.sh. Prints makespan for each and Slurm calls per task
# (every sbatch, squeue, sacct, scontrol and scancel is counted by a wrapper on PATH).
#
#   bench/slurm/run.sh           N=${SPARKY_BENCH_SLURM_N:-200}
#   bench/slurm/run.sh --small   N=${SPARKY_BENCH_SLURM_N:-20}: what test.sh runs
#
# Needs root (slurmctld, slurmd, munged run as root) and Debian's slurm-wlm and munge.
# Exit status: 0 when both runs completed every task (targets are reported, not enforced), 1 otherwise.
set -euo pipefail
cd "$(dirname "$0")/../.."
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1
n=${SPARKY_BENCH_SLURM_N:-200}
for a in "$@"; do
  case "$a" in
    --small) n=${SPARKY_BENCH_SLURM_N:-20} ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "run.sh: unknown argument '$a' (use --small)" >&2; exit 64 ;;
  esac
done
bench/build.sh project src/Sparky
dir=$(mktemp -d /tmp/sparky-bench-slurm.XXXXXX)
chmod 755 "$dir"
trap 'tests/slurm/cluster.sh stop "$dir/cluster" >/dev/null 2>&1 || true; rm -rf "$dir"' EXIT
eval "$(tests/slurm/cluster.sh start "$dir/cluster")"
python3 bench/slurm/bench.py --n "$n" --work "$dir" --sparky "$PWD/src/Sparky/bin/Release/net10.0/sparky.dll"
