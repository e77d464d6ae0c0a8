#!/usr/bin/env bash
# Builds the native sparky (Native AOT: an executable and the SQLite library beside it, no .NET runtime) into
# artifacts/native/sparky unless it is already newer than every source, and prints its path.
# Native AOT links with clang and zlib: as root this installs Debian's clang and zlib1g-dev when missing.
#
#   ./native.sh                 -> /path/to/artifacts/native/sparky
#   artifacts/native/sparky serve
set -euo pipefail
cd "$(dirname "$0")"
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1
case "$(uname -m)" in
  x86_64) rid=linux-x64 ;;
  aarch64) rid=linux-arm64 ;;
  *) echo "native.sh: no native build for $(uname -m); use dotnet run --project src/Sparky" >&2; exit 1 ;;
esac
out=artifacts/native
exe=$out/sparky
if [ -x "$exe" ] && [ -z "$(find src examples Directory.Build.props -newer "$exe" \( -name '*.cs' -o -name '*.csproj' -o -name '*.props' -o -name '*.yaml' \
  -o -name '*.js' -o -name '*.css' -o -name '*.html' -o -name '*.svg' -o -name 'package*.json' \) -not -path '*/obj/*' -not -path '*/bin/*' -not -path '*/node_modules/*' -print -quit)" ]; then
  echo "$PWD/$exe"
  exit 0
fi
missing=()
command -v clang >/dev/null || missing+=(clang)
[ -e /usr/include/zlib.h ] || missing+=(zlib1g-dev)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "native.sh: installing ${missing[*]}" >&2
    { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" ||
      { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"; }; } >/dev/null
  else
    echo "native.sh: Native AOT needs ${missing[*]} (apt-get install ${missing[*]})" >&2
    exit 1
  fi
fi
echo "native.sh: building $exe ($rid, Native AOT; about two minutes)" >&2
dotnet publish src/Sparky -c Release -r "$rid" -p:PublishAot=true -o "$out" -nologo -clp:ErrorsOnly >&2
touch "$exe"
echo "$PWD/$exe"
