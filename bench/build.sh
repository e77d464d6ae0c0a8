#!/usr/bin/env bash
# What the benchmarks' run.sh scripts build before they measure, quiet unless a build fails (its log then goes to
# stderr and this exits 1).
#
#   bench/build.sh sparky                prints the sparky to measure: ./native.sh's build (what `dotnet tool install`
#                                        installs on linux-x64), or sparky.dll under dotnet with SPARKY_BENCH_DAEMON=jit
#   bench/build.sh project X.csproj...   builds projects in Release
#
# With SPARKY_BENCH_PREBUILT=1 nothing is built with dotnet: test.sh has just built the whole solution, and a build
# that finds nothing to do still costs seconds each time.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
quiet_build() {
  [ "${SPARKY_BENCH_PREBUILT:-}" = 1 ] && return 0
  local log
  if ! log=$(dotnet build "$1" -c Release -nologo -clp:ErrorsOnly 2>&1); then echo "$log" >&2; exit 1; fi
}
case "${1:-}" in
  sparky)
    case "${SPARKY_BENCH_DAEMON:-native}" in
      native) "$root/native.sh" || { echo "the native build failed (SPARKY_BENCH_DAEMON=jit runs the dll)" >&2; exit 1; } ;;
      jit) quiet_build "$root/src/Sparky"; echo "$root/src/Sparky/bin/Release/net10.0/sparky.dll" ;;
      *) echo "SPARKY_BENCH_DAEMON must be native or jit" >&2; exit 64 ;;
    esac ;;
  project)
    shift
    for proj in "$@"; do quiet_build "$proj"; done ;;
  *) echo "usage: bench/build.sh sparky | project X.csproj..." >&2; exit 64 ;;
esac
