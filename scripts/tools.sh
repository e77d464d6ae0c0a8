#!/usr/bin/env bash
# Installs the pinned npm tools in tools/node_modules when missing or older than tools/package-lock.json, and prints
# the folder. npm install, not npm ci: rust-just names platform packages that npm leaves out of the lock file, which
# npm ci refuses; install still takes the locked versions and checks their integrity hashes. Nothing runs at install
# (--ignore-scripts): rust-just's binary comes as an optional dependency for this platform.
set -euo pipefail
cd "$(dirname "$0")/.."
tools=$PWD/tools
if [ ! -e "$tools/node_modules/.package-lock.json" ] || [ "$tools/package-lock.json" -nt "$tools/node_modules/.package-lock.json" ]; then
  command -v npm >/dev/null || { echo "tools.sh: npm is needed (Debian: apt-get install npm)" >&2; exit 1; }
  npm install --prefix "$tools" --ignore-scripts --no-audit --no-fund --loglevel=error >&2
fi
echo "$tools/node_modules"
