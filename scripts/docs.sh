#!/usr/bin/env bash
# Writes the docs generated from the CLI's own command tree, so they never drift from it: the man page (sparky.1) and
# the bash, zsh and fish completions, into artifacts/docs (or --out DIR). scripts/package.sh puts the same into the
# .deb and the tarball; see README, "Shell completions and the man page".
#   scripts/docs.sh                          builds src/Sparky, then writes sparky.1, sparky.bash, _sparky, sparky.fish
#   SPARKY=artifacts/native/sparky scripts/docs.sh    with that sparky instead (a command line; no build)
#   man -l artifacts/docs/sparky.1
set -euo pipefail
cd "$(dirname "$0")/.."
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
out=artifacts/docs
case "${1:-}" in
  "") ;;
  --out) out=${2:?docs.sh: --out needs a folder} ;;
  *) echo "docs.sh: unknown argument '$1' (use --out DIR)" >&2; exit 64 ;;
esac
if [ -n "${SPARKY:-}" ]; then
  read -ra sparky <<<"$SPARKY"
else
  dotnet build src/Sparky -c Release -nologo -clp:ErrorsOnly >&2
  sparky=(dotnet src/Sparky/bin/Release/net10.0/sparky.dll)
fi
mkdir -p "$out"
"${sparky[@]}" man >"$out/sparky.1"
"${sparky[@]}" completions bash >"$out/sparky.bash"
"${sparky[@]}" completions zsh >"$out/_sparky"
"${sparky[@]}" completions fish >"$out/sparky.fish"
for f in sparky.1 sparky.bash _sparky sparky.fish; do echo "$out/$f"; done
