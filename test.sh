#!/usr/bin/env bash
# Sets up what the tests need on a fresh machine (root: Debian packages), builds, and runs every test,
# then each benchmark once at a small size so they keep working. Exit code: non-zero if anything failed.
set -euo pipefail
cd "$(dirname "$0")"
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1

# Debian packages: the tools the benchmarks compare against (task-spooler's binary is tsp or ts), pyzmq and
# msgpack for the Python client's test, the Prometheus server that the metrics test scrapes with, a C compiler,
# clang and zlib for the native build, Slurm and munge (the Slurm tests start their own slurmctld/slurmd/munged
# on loopback; their packages' services stay off).
missing=()
command -v nq >/dev/null || missing+=(nq)
{ command -v tsp >/dev/null || command -v ts >/dev/null; } || missing+=(task-spooler)
command -v python3 >/dev/null || missing+=(python3)
# The ZeroMQ tests drive the daemon from Python (examples/python/sparky_client.py); Debian's modules are
# for /usr/bin/python3, which the tests use where the python3 on PATH (a pyenv shim) lacks them.
{ python3 -c 'import zmq, msgpack' || /usr/bin/python3 -c 'import zmq, msgpack'; } 2>/dev/null || missing+=(python3-zmq python3-msgpack)
command -v prometheus >/dev/null || missing+=(prometheus)
command -v cc >/dev/null || missing+=(gcc libc6-dev)   # the spawn-floor benchmark and the stand-in libnvidia-ml
command -v slurmctld >/dev/null || missing+=(slurm-wlm)  # tests/slurm/cluster.sh: a real single-node Slurm
command -v munged >/dev/null || missing+=(munge)
command -v clang >/dev/null || missing+=(clang)        # ./native.sh: Native AOT links with clang and zlib
[ -e /usr/include/zlib.h ] || missing+=(zlib1g-dev)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "test.sh: installing ${missing[*]}"
    # prometheus's postinst starts a server on :9090 (and its Recommends, node-exporter, one on :9100),
    # slurm-wlm's and munge's start slurmctld/slurmd/munged, where services may start; the tests run
    # their own, so forbid service starts while installing.
    policy=/usr/sbin/policy-rc.d ours=
    if [ ! -e "$policy" ]; then
      printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && ours=1
      trap 'rm -f /usr/sbin/policy-rc.d' EXIT
    fi
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    if [ -n "$ours" ]; then rm -f "$policy"; trap - EXIT; fi
  else
    echo "test.sh: missing ${missing[*]} (run as root, or apt-get install them)" >&2
    [ "${CI:-}" = true ] && exit 1
  fi
fi

dotnet build Sparky.slnx -c Release -nologo -clp:ErrorsOnly

log=$(mktemp)
status=0
# run_tests PROJECT [VAR=VALUE...]: one test project, its summary lines shown, its whole output kept for the tally.
run_tests() {
  local proj=$1 out
  shift
  out=$(mktemp)
  env "$@" dotnet test "$proj" -c Release --no-build --nologo --logger "console;verbosity=normal" >"$out" 2>&1 || status=1
  cat "$out" >>"$log"
  grep -E "^\s*(Passed|Failed|Skipped)[ :]|^\s*\[.*\] |Total tests|error" "$out" || true
  rm -f "$out"
}
for proj in tests/Sparky.Core.Tests tests/Sparky.Execution.Tests tests/Sparky.Plans.Tests tests/Sparky.Workers.Tests tests/Sparky.IntegrationTests; do
  echo "== $proj"
  run_tests "$proj"
done

# The native build (what `dotnet tool install` installs on linux-x64) passes the same integration tests.
echo "== native build (./native.sh)"
if native=$(./native.sh); then
  echo "== tests/Sparky.IntegrationTests against $native"
  run_tests tests/Sparky.IntegrationTests SPARKY_TEST_EXE="$native"
else
  echo "native.sh failed"
  status=1
fi

echo "== benchmarks (small size; full runs: see bench/README.md)"
if ! SPARKY_BENCH_N=300 bench/throughput/run.sh --small; then status=1; fi
if ! bench/limiter/run.sh --small; then status=1; fi
if ! bench/packing/run.sh --small; then status=1; fi
if ! bench/slurm/run.sh --small; then status=1; fi
if ! bench/pilot/run.sh --small; then status=1; fi
if ! bench/ipc/run.sh --small; then status=1; fi

# vstest's summary per project: "Passed: N" always, "Failed: N" only when some failed.
passed=$( { grep -oE "^\s*Passed: +[0-9]+" "$log" || true; } | awk '{s+=$2} END {print s+0}')
failed=$( { grep -oE "^\s*Failed: +[0-9]+" "$log" || true; } | awk '{s+=$2} END {print s+0}')
echo "tests: $passed passed, $failed failed"
# Repeat each failed test with its message here at the end, where a CI log's tail shows it.
if [ "$failed" != 0 ]; then
  echo "failed tests:"
  awk '/^\s*Failed [^:]/ {n=14} n>0 {print; n--}' "$log"
fi
rm -f "$log"
[ "$failed" = 0 ] || status=1
exit $status
