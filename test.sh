#!/usr/bin/env bash
# Sets up what the tests need on a fresh machine (root: Debian packages), builds, and runs every test,
# then each benchmark once at a small size so they keep working. Exit code: non-zero if anything failed.
set -euo pipefail
cd "$(dirname "$0")"
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1

# Debian packages: the tools the benchmarks compare against (task-spooler's binary is tsp or ts), pyzmq and
# msgpack for the Python client's test, the Prometheus server that the metrics test scrapes with, a C compiler,
# clang for the native build, Slurm and munge (the Slurm tests start their own slurmctld/slurmd/munged
# on loopback; their packages' services stay off), npm (the build restores the dashboard's pinned JavaScript package
# with it) and chromium (the dashboard's tests drive it headless).
missing=()
command -v nq >/dev/null || missing+=(nq)
{ command -v tsp >/dev/null || command -v ts >/dev/null; } || missing+=(task-spooler)
command -v python3 >/dev/null || missing+=(python3)
# The ZeroMQ tests drive the daemon from Python (examples/python/sparky_client.py); Debian's modules are
# for /usr/bin/python3, which the tests use where the python3 on PATH (a pyenv shim) lacks them.
{ python3 -c 'import zmq, msgpack' || /usr/bin/python3 -c 'import zmq, msgpack'; } 2>/dev/null || missing+=(python3-zmq python3-msgpack)
# The output of `sparky embed run` is loaded with numpy (tests/…/Embeddings/EmbedRunTests.cs).
{ python3 -c 'import numpy' || /usr/bin/python3 -c 'import numpy'; } 2>/dev/null || missing+=(python3-numpy)
# The daemon's ZeroMQ command socket runs on Debian's libzmq (P/Invoke; NetMQ where it is missing): tests cover both.
[ -e "/usr/lib/$(uname -m)-linux-gnu/libzmq.so.5" ] || missing+=(libzmq5)
command -v prometheus >/dev/null || missing+=(prometheus)
command -v cc >/dev/null || missing+=(gcc libc6-dev)   # the spawn-floor benchmark and the stand-in libnvidia-ml
command -v systemd-analyze >/dev/null || missing+=(systemd)  # the units in deploy/systemd are checked with systemd-analyze verify
command -v npm >/dev/null || missing+=(npm)
command -v zsh >/dev/null || missing+=(zsh)            # the shell completions are driven in bash, zsh and fish
command -v fish >/dev/null || missing+=(fish)
command -v man >/dev/null || missing+=(man-db)         # the man page is rendered with man --warnings
command -v lintian >/dev/null || missing+=(lintian)    # the .deb (scripts/package.sh) is checked with lintian              # scripts/just.sh installs the pinned `just` from npm
command -v slurmctld >/dev/null || missing+=(slurm-wlm)  # tests/slurm/cluster.sh: a real single-node Slurm
command -v munged >/dev/null || missing+=(munge)
command -v clang >/dev/null || missing+=(clang)        # ./native.sh: Native AOT links with clang (.NET 10 brings its zlib)
command -v tmux >/dev/null || missing+=(tmux)          # the tests of `sparky top` run it in a real terminal
# The linux-arm64 build (./native.sh --rid linux-arm64): clang links it with Debian's arm64 cross toolchain and sysroot;
# the tests check it with file and run it under qemu-user, with Debian's arm64 C library and OpenSSL (which .NET loads
# at run time) from multiarch.
command -v file >/dev/null || missing+=(file)
command -v aarch64-linux-gnu-ld.bfd >/dev/null || missing+=(gcc-aarch64-linux-gnu)
command -v qemu-aarch64 >/dev/null || missing+=(qemu-user)
[ -e /usr/lib/aarch64-linux-gnu/libssl.so.3 ] || missing+=(libssl3:arm64)
[ -e /usr/lib/aarch64-linux-gnu/libstdc++.so.6 ] || missing+=(libstdc++6:arm64)  # ONNX Runtime's (the embeddings) needs it
command -v npm >/dev/null || missing+=(npm)            # src/Sparky.Server: npm ci of Dashboard/web/package-lock.json
{ command -v chromium >/dev/null || [ -n "${CHROMIUM:-}" ]; } || missing+=(chromium)  # tests/…/Dashboard: headless
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
    case " ${missing[*]} " in *:arm64\ *) dpkg --print-foreign-architectures | grep -qx arm64 || [ "$(dpkg --print-architecture)" = arm64 ] || dpkg --add-architecture arm64 ;; esac
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    if [ -n "$ours" ]; then rm -f "$policy"; trap - EXIT; fi
  else
    echo "test.sh: missing ${missing[*]} (run as root, or apt-get install them)" >&2
    [ "${CI:-}" = true ] && exit 1
  fi
fi

# Each part's wall time, printed at the end.
times=()
status=0
# How busy the machine was in each part (/proc/stat: every process, builds' detached compiler nodes too): a part near
# 100% is bound by the CPU; one far below it mostly waits, and something could run beside it.
cores=$(nproc) tick=$(getconf CLK_TCK)
cpu_now() { cpu=$(awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8 + $9; exit }' /proc/stat); }
declare -A cpu_at
# Each part starts with `t=$SECONDS; cpu_now; cpu_at[$t]=$cpu`; mark NAME $t lists its wall time and the machine's use.
mark() {
  cpu_now
  local wall=$((SECONDS - $2))
  times+=("$(printf '  %-62s %5d s  (CPU busy %3d%%)' "$1" $wall $(( (cpu - ${cpu_at[$2]:-$cpu}) * 100 / tick / cores / (wall > 0 ? wall : 1) )))")
}
began=$SECONDS; cpu_now; cpu_at[$began]=$cpu
t=$SECONDS; cpu_now; cpu_at[$t]=$cpu
dotnet build Sparky.slnx -c Release -nologo -clp:ErrorsOnly
mark "build" $t

# Jobs beside the foreground part: `beside NAME CMD...` runs CMD in the background, its output kept; `collect` waits for
# every one, shows its output, lists its time and counts its failure.
beside_pids=() beside_outs=() beside_names=()
beside() {
  local name=$1 out
  shift
  out=$(mktemp)
  ( s=$SECONDS; if "$@" >"$out" 2>&1; then rc=0; else rc=$?; fi; echo "$rc $((SECONDS - s))" >"$out.rc" ) &
  beside_pids+=($!) beside_outs+=("$out") beside_names+=("$name")
}
collect() {
  local i rc secs
  for i in "${!beside_pids[@]}"; do
    wait "${beside_pids[$i]}" || true
    cat "${beside_outs[$i]}"
    read -r rc secs <"${beside_outs[$i]}.rc" || { rc=1 secs=0; }
    [ "$rc" = 0 ] || { echo "${beside_names[$i]}: exit $rc"; status=1; }
    times+=("$(printf '  %-62s %5d s' "beside: ${beside_names[$i]}" "$secs")")
    rm -f "${beside_outs[$i]}" "${beside_outs[$i]}.rc"
  done
  beside_pids=() beside_outs=() beside_names=()
}

log=$(mktemp)
# run_tests PROJECT [VAR=VALUE...] [-- DOTNET-TEST-ARGS...]: one test project, its summary lines shown, its whole
# output kept for the tally.
run_tests() {
  local proj=$1 out
  shift
  local vars=() args=()
  while [ $# -gt 0 ] && [ "$1" != -- ]; do vars+=("$1"); shift; done
  [ "${1:-}" = -- ] && shift && args=("$@")
  out=$(mktemp)
  env "${vars[@]}" dotnet test "$proj" -c Release --no-build --nologo --logger "console;verbosity=normal" "${args[@]}" >"$out" 2>&1 || status=1
  cat "$out" >>"$log"
  grep -E "^\s*(Passed|Failed|Skipped)[ :]|^\s*\[.*\] |Total tests|error" "$out" || true
  rm -f "$out"
}

# The native build (what `dotnet tool install` installs on linux-x64) compiles while the unit tests run; beside them
# too, the command centre's check: just (pinned, from npm) reads the justfile, and every recipe's commands exist.
t=$SECONDS; cpu_now; cpu_at[$t]=$cpu
beside "justfile (scripts/check-justfile.sh)" scripts/check-justfile.sh
native_out=$(mktemp)
./native.sh >"$native_out" &
native_pid=$!
for proj in tests/Sparky.Core.Tests tests/Sparky.Execution.Tests tests/Sparky.Plans.Tests tests/Sparky.Workers.Tests tests/Sparky.Cli.Tests \
    tests/Sparky.Embeddings.Tests tests/Sparky.Embeddings.Client.Tests; do
  echo "== $proj"
  run_tests "$proj"
done
mark "unit tests (beside the native build)" $t
native=
if wait $native_pid; then native=$(cat "$native_out"); else echo "native.sh failed"; status=1; fi
rm -f "$native_out"
mark "native build (./native.sh), done" $t

# run_tests as a job of its own: its exit status says whether it passed.
tests_job() { status=0; run_tests "$@"; return $status; }

# The integration suite once in full, every CLI and daemon process it starts being the native build. Beside it (it
# mostly waits on the processes it starts): the classes on the test Slurm cluster (Needs=slurm), which wait for Slurm's
# scheduler one class at a time, in a test process of their own (the cluster sets SLURM_CONF in its process's
# environment); and the linux-arm64 build (cross-compiled Native AOT: ILC as long as this machine's, on the IL that
# `dotnet build` compiled), then the tests that need it (under qemu-user), which then overlap the suite's last minute
# instead of the benchmarks.
t=$SECONDS; cpu_now; cpu_at[$t]=$cpu
exe=()
[ -n "$native" ] && exe=(SPARKY_TEST_EXE="$native")
beside "the integration tests on Slurm (Needs=slurm)" tests_job tests/Sparky.IntegrationTests "${exe[@]}" -- --filter "Needs=slurm"
arm64_build_and_tests() {
  local arm s=$SECONDS
  arm=$(./native.sh --rid linux-arm64) || return 1
  echo "== the linux-arm64 build (./native.sh --rid linux-arm64) took $((SECONDS - s)) s"
  echo "== tests/Sparky.IntegrationTests: the linux-arm64 build's ($arm, under qemu-user)"
  tests_job tests/Sparky.IntegrationTests SPARKY_TEST_EXE="${native:-}" -- --filter "Needs=arm64"
}
beside "linux-arm64 build, then its tests (Needs=arm64)" arm64_build_and_tests
echo "== tests/Sparky.IntegrationTests against ${native:-sparky.dll}: all but the Slurm classes and the linux-arm64 build's (beside)"
run_tests tests/Sparky.IntegrationTests "${exe[@]}" -- --filter "Needs!=arm64&Needs!=slurm"
mark "integration tests but Slurm's ($([ -n "${native:-}" ] && echo native build || echo sparky.dll))" $t

# The benchmarks' smoke runs, which print what they measure but assert no timing. Beside them: the two Slurm ones
# (they mostly wait for Slurm, each on its own cluster) and a short pass of the CLI's tests against sparky.dll under
# dotnet (what `dotnet run` gives; the tests that run the daemon in this process are the same code either way: they ran
# once).
echo "== benchmarks (small size; full runs: see bench/README.md)"
export SPARKY_BENCH_PREBUILT=1  # the solution is built: no benchmark builds it again
t=$SECONDS; cpu_now; cpu_at[$t]=$cpu
bench() {
  local t=$SECONDS; cpu_now; cpu_at[$t]=$cpu
  if ! "$@"; then status=1; fi
  mark "bench: $*" $t
}
[ -n "$native" ] && beside "the CLI's integration tests against sparky.dll" \
  tests_job tests/Sparky.IntegrationTests -- --filter "FullyQualifiedName~Sparky.IntegrationTests.Cli.&Needs!=slurm"
beside "bench/slurm/run.sh --small" bench/slurm/run.sh --small
beside "bench/pilot/run.sh --small" bench/pilot/run.sh --small
bench env SPARKY_BENCH_N=300 bench/throughput/run.sh --small
bench bench/limiter/run.sh --small
bench bench/packing/run.sh --small
bench bench/ipc/run.sh --small
bench bench/tasklist/run.sh --small
bench bench/live/run.sh --small
bench bench/overhead/run.sh --small
bench bench/cli/run.sh --small
bench bench/embedrun/run.sh --small
bench bench/embed/run.sh --small
mark "benchmarks" $t
t=$SECONDS; cpu_now; cpu_at[$t]=$cpu
collect
mark "waited for the jobs beside" $t

# vstest's summary per project: "Passed: N" always, "Failed: N" only when some failed.
passed=$( { grep -oE "^\s*Passed: +[0-9]+" "$log" || true; } | awk '{s+=$2} END {print s+0}')
failed=$( { grep -oE "^\s*Failed: +[0-9]+" "$log" || true; } | awk '{s+=$2} END {print s+0}')
mark "all" $began
echo "time per part:"
printf '%s\n' "${times[@]}"
echo "slowest test classes (the sum of their tests' times; classes run in parallel):"
awk -v top=12 -f scripts/slowest-tests.awk "$log"
echo "tests: $passed passed, $failed failed"
# Repeat each failed test with its message here at the end, where a CI log's tail shows it.
if [ "$failed" != 0 ]; then
  echo "failed tests:"
  awk '/^[[:space:]]*Failed [^:]/ {n=14} n>0 {print; n--}' "$log"
fi
rm -f "$log"
[ "$failed" = 0 ] || status=1
exit $status
