#!/usr/bin/env bash
# IPC benchmark: request round trips over ZeroMQ (DEALER -> ROUTER, MessagePack) against HTTP (kept-alive
# HttpClient), and event delivery over the ZeroMQ PUB socket against SSE, on loopback, from a real
# `sparky serve` (Release build). Also pyzmq's round trip (examples/python/sparky_client.py) and ZeroMQ with CURVE.
# See bench/README.md.
#
#   bench/ipc/run.sh           full: 5000 round trips of each kind, 500 events
#   bench/ipc/run.sh --small   500 round trips, 50 events: well under 30 s after the builds
#
# Exit status: 0 when it ran, targets met or not (a missed one prints MISSED); non-zero when a build failed,
# the daemon could not start or died, or a request went unanswered.
set -euo pipefail
cd "$(dirname "$0")/../.."
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1

for a in "$@"; do
  case "$a" in
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
  esac
done

bench/build.sh project src/Sparky bench/ipc/Sparky.Bench.Ipc.csproj

# A python3 with pyzmq and msgpack (the one on PATH, else Debian's, where a pyenv shim comes first); none: that row is skipped.
python=""
for p in python3 /usr/bin/python3; do
  if "$p" -c 'import zmq, msgpack' 2>/dev/null; then python=$p; break; fi
done

mkdir -p bench/results
exec dotnet bench/ipc/bin/Release/net10.0/Sparky.Bench.Ipc.dll --sparky src/Sparky/bin/Release/net10.0/sparky.dll \
  --python "$python" --client examples/python --results bench/results "$@"
