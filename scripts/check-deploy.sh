#!/usr/bin/env bash
# Checks everything in deploy/ as the tests do (tests/Sparky.IntegrationTests/Deploy): the Dockerfile and compose.yaml
# (scripts/check-deploy.mjs: the Compose specification's schema, dockerfile-utils' linter), the systemd units
# (systemd-analyze verify, the daemon's readiness notifications), the alert rules and the Grafana dashboard (promtool,
# against a live daemon). Needs node/npm, promtool (Debian's prometheus) and systemd-analyze.
set -euo pipefail
cd "$(dirname "$0")/.."
dotnet build tests/Sparky.IntegrationTests -c Release -nologo -clp:ErrorsOnly
exec dotnet test tests/Sparky.IntegrationTests -c Release --no-build --nologo --filter "FullyQualifiedName~Sparky.IntegrationTests.Deploy."
