#!/usr/bin/env bash
# Embedding job benchmark: `sparky embed run` (batches of 64, 4 in flight, one pooled keep-alive client, JSONL in,
# .npy out, its process start-up included) against a client that sends one text per request, one at a time, over a
# kept-alive connection: the same corpus (sentences of 3 to 60 words) and the same endpoint. Target (issue 17): embed
# run >= 10x the one-text client's texts/s. See bench/README.md.
#
#   bench/embedrun/run.sh            full: 20,000 texts
#   bench/embedrun/run.sh --small    2,000 texts: a few seconds after the builds
#
# Environment: SPARKY_BENCH_EMBED_ENDPOINT (an OpenAI-compatible server to measure, such as `sparky embed serve`'s;
# default: the tests' stand-in server in the bench's process, whose vectors are a hash of the text, so the numbers
# are the client's and HTTP's cost alone), SPARKY_BENCH_TEXTS, SPARKY_BENCH_DAEMON (native, the default: ./native.sh's
# build; jit: sparky.dll under dotnet).
#
# Exit status: 0 when it ran, target met or not (a miss prints MISSED); non-zero when a build failed or a client
# failed or lost a text.
set -euo pipefail
cd "$(dirname "$0")/../.."
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1

# --small and the program's other arguments (--texts N, --batch N, --concurrency N) go through; it refuses others.
case "${1:-}" in -h|--help) sed -n '2,17p' "$0"; exit 0 ;; esac
args=("$@")
[ -n "${SPARKY_BENCH_EMBED_ENDPOINT:-}" ] && args+=(--endpoint "$SPARKY_BENCH_EMBED_ENDPOINT")
[ -n "${SPARKY_BENCH_TEXTS:-}" ] && args+=(--texts "$SPARKY_BENCH_TEXTS")

sparky=$(bench/build.sh sparky)
bench/build.sh project bench/embedrun/Sparky.Bench.EmbedRun.csproj

mkdir -p bench/results
exec dotnet bench/embedrun/bin/Release/net10.0/Sparky.Bench.EmbedRun.dll --sparky "$sparky" --results bench/results "${args[@]}"
