#!/usr/bin/env bash
# Builds the tool packages into ./artifacts (or --out DIR): the one `dotnet tool install` picks from (Sparky), which
# points to the native packages for linux-x64 and linux-arm64 (Native AOT; the one not of this machine
# cross-compiled, see ./native.sh) and to the framework-dependent one for every other platform. None carries debug
# symbols. Then: dotnet tool install --global --add-source ./artifacts Sparky
set -euo pipefail
cd "$(dirname "$0")/.."
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
out=./artifacts
[ "${1:-}" = --out ] && out=${2:?pack.sh: --out needs a folder}
dotnet pack src/Sparky -c Release -o "$out" -nologo -clp:ErrorsOnly
for rid in linux-x64 linux-arm64; do
  # ./native.sh compiles it (and installs the cross toolchain as root); packing with the same properties, from the same
  # obj folders, compiles nothing.
  ./native.sh --rid "$rid" >/dev/null
  dotnet pack src/Sparky -c Release -r "$rid" -o "$out" -nologo -clp:ErrorsOnly
done
# The framework-dependent one: its IL is the first pack's (the same properties), found where that pack compiled it,
# not compiled again into obj/Release/net10.0/any.
dotnet pack src/Sparky -c Release -r any -p:PublishAot=false -p:AppendRuntimeIdentifierToOutputPath=false -o "$out" -nologo -clp:ErrorsOnly
version=$(sed -n 's:.*<Version>\(.*\)</Version>.*:\1:p' Directory.Build.props | head -1)
for pkg in Sparky Sparky.linux-x64 Sparky.linux-arm64 Sparky.any; do
  f=$out/$pkg.$version.nupkg
  printf '%s\t%s\n' "$(du -h "$f" | cut -f1)" "$(cd "$(dirname "$f")" && pwd)/$(basename "$f")"
done
