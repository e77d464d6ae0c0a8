#!/usr/bin/env bash
# Builds the native sparky (Native AOT: an executable and the SQLite library beside it, no .NET runtime) unless it is
# already newer than every source, and prints its path: for this machine into artifacts/native, or cross-compiled for
# another Linux architecture into artifacts/native-<rid> (clang links it against Debian's cross sysroot for that
# architecture). As root this installs the Debian packages it needs when missing.
#
#   ./native.sh                       -> /path/to/artifacts/native/sparky
#   ./native.sh --rid linux-arm64     -> /path/to/artifacts/native-linux-arm64/sparky (from x64: an aarch64 executable)
#   artifacts/native/sparky serve
set -euo pipefail
cd "$(dirname "$0")"
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1
case "$(uname -m)" in
  x86_64) host=linux-x64 ;;
  aarch64) host=linux-arm64 ;;
  *) echo "native.sh: no native build for $(uname -m); use dotnet run --project src/Sparky" >&2; exit 1 ;;
esac
rid=$host
case "${1:-}" in
  "") ;;
  --rid) rid=${2:?native.sh: --rid needs linux-x64 or linux-arm64} ;;
  *) echo "native.sh: unknown argument '$1' (use --rid linux-x64|linux-arm64)" >&2; exit 64 ;;
esac
out=artifacts/native
# The cross linker's Debian packages: gcc-<triplet> brings the target's binutils (ld), C runtime and libgcc, which
# clang --target=<triplet> finds on its own. Native AOT's zlib is its own (libz.a in the runtime package).
missing=()
command -v clang >/dev/null || missing+=(clang)
if [ "$rid" != "$host" ]; then
  case "$rid" in
    linux-arm64) triplet=aarch64-linux-gnu ;;
    linux-x64) triplet=x86_64-linux-gnu ;;
    *) echo "native.sh: no native build for '$rid' (linux-x64, linux-arm64)" >&2; exit 64 ;;
  esac
  out=artifacts/native-$rid
  command -v "$triplet-ld.bfd" >/dev/null && [ -e "/usr/$triplet/lib/crt1.o" ] || missing+=("gcc-${triplet//_/-}")
fi
exe=$out/sparky
current() {
  [ -x "$exe" ] && [ -z "$(find src examples Directory.Build.props -newer "$exe" \( -name '*.cs' -o -name '*.c' -o -name '*.csproj' -o -name '*.props' -o -name '*.yaml' \
    -o -name '*.js' -o -name '*.css' -o -name '*.html' -o -name '*.svg' -o -name 'package*.json' \) -not -path '*/obj/*' -not -path '*/bin/*' -not -path '*/node_modules/*' -print -quit)" ]
}
current && { echo "$PWD/$exe"; exit 0; }
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "native.sh: installing ${missing[*]}" >&2
    { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" ||
      { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"; }; } >/dev/null
  else
    echo "native.sh: Native AOT for $rid needs ${missing[*]} (apt-get install ${missing[*]})" >&2
    exit 1
  fi
fi
# One native build at a time, of either runtime (they share obj folders): a second caller waits for the first, then
# finds its output current.
mkdir -p artifacts && exec 9>"artifacts/.native.lock" && flock 9
current && { echo "$PWD/$exe"; exit 0; }
echo "native.sh: building $exe ($rid, Native AOT; about two minutes)" >&2
# In the obj and bin folders of `dotnet build`, with its properties (PublishAot comes from src/Sparky's project file, not
# the command line, which would hand it to the libraries and change how they compile): the libraries' IL is RID-neutral,
# so what `dotnet build` compiled serves every runtime and only src/Sparky compiles again per runtime
# (obj/Release/net10.0/<rid>) before ILC; scripts/pack.sh packs from the same folders without compiling again. Not
# beside a `dotnet build` or another runtime's restore: each rewrites the projects' project.assets.json.
dotnet publish src/Sparky -c Release -r "$rid" -o "$out" -nologo -clp:ErrorsOnly >&2
touch "$exe"
echo "$PWD/$exe"
