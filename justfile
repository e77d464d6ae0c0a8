# Sparky's command centre. Every recipe is a thin call of a script or of dotnet, so nothing here needs `just`:
# read the line under a recipe and run it yourself. Get just with scripts/just.sh (the pinned version, from npm).

set shell := ["bash", "-euo", "pipefail", "-c"]

# list the recipes
default:
    @{{just_executable()}} --list --unsorted

# build every project (Release)
build:
    dotnet build Sparky.slnx -c Release -nologo -clp:ErrorsOnly

# run every test and each benchmark once, small: what CI runs (installs Debian packages as root)
test:
    ./test.sh

# run the demo: an embedded daemon runs examples/plans/demo.yaml in a temp data dir
demo:
    dotnet run --project src/Sparky -c Release -- demo

# start the daemon in the foreground; arguments go to `sparky serve` (e.g. just serve --port 9097)
serve *args:
    dotnet run --project src/Sparky -c Release -- serve {{args}}

# run the benchmarks at full size: one by name (throughput, ipc, limiter, packing, slurm, pilot) or all
bench *args:
    scripts/bench.sh {{args}}

# build the native executable (Native AOT) into artifacts/native/sparky; --rid linux-arm64 cross-compiles for aarch64
native *args:
    ./native.sh {{args}}

# build the tool packages into ./artifacts (native for linux-x64 and linux-arm64, framework-dependent for the rest)
pack:
    scripts/pack.sh

# build the Debian package and the tarball (+ .sha256) for this machine; --arch arm64 for linux-arm64
package *args:
    scripts/package.sh {{args}}

# write the man page and the bash, zsh and fish completions (from the CLI's own definitions) into artifacts/docs
docs *args:
    scripts/docs.sh {{args}}

# install (or update) the sparky tool for this user from ./artifacts
install: pack
    dotnet tool update --global --add-source ./artifacts Sparky

# check deploy/ (Dockerfile, compose.yaml, systemd units, alert rules, Grafana dashboard) with the real tools
deploy-check:
    scripts/check-deploy.sh
