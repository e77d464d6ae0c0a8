#!/bin/sh
# The container's entry: the bearer token may come from a file (SPARKY_TOKEN_FILE: a compose or Docker secret), so it
# is neither in the image nor in what `docker inspect` shows. The daemon keeps its own SPARKY_ settings out of the
# environment its tasks get.
set -eu
if [ -z "${SPARKY_TOKEN:-}" ] && [ -n "${SPARKY_TOKEN_FILE:-}" ]; then
  SPARKY_TOKEN=$(cat "$SPARKY_TOKEN_FILE")
  export SPARKY_TOKEN
fi
unset SPARKY_TOKEN_FILE
exec /usr/bin/sparky "$@"
