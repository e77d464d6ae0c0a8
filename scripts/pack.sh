#!/usr/bin/env bash
# Builds the tool packages into ./artifacts: the one `dotnet tool install` picks from, which points to the native
# package for linux-x64 (Native AOT: needs clang and zlib1g-dev) and the framework-dependent one for every other
# platform. Then: dotnet tool install --global --add-source ./artifacts Sparky
set -euo pipefail
cd "$(dirname "$0")/.."
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
dotnet pack src/Sparky -c Release -o ./artifacts -nologo -clp:ErrorsOnly
dotnet pack src/Sparky -c Release -r linux-x64 -o ./artifacts -nologo -clp:ErrorsOnly
dotnet pack src/Sparky -c Release -r any -p:PublishAot=false -o ./artifacts -nologo -clp:ErrorsOnly
ls -1 ./artifacts/*.nupkg
