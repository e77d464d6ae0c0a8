#!/usr/bin/env bash
# Builds the Debian package and the tarball of a native sparky for one architecture, from a native build directory
# (an executable `sparky` and libe_sqlite3.so beside it: ./native.sh's artifacts/native for this machine).
#   scripts/package.sh                               this machine's architecture, from ./native.sh's output
#   scripts/package.sh --arch arm64                  linux-arm64, from ./native.sh --rid linux-arm64 (cross-compiled
#                                                    on x64; the man page and completions are written by this
#                                                    machine's sparky: they are the same everywhere)
#   scripts/package.sh --arch arm64 --from DIR       from a build directory of that architecture
#   scripts/package.sh --fast                        xz -1 and gzip -1 instead of xz -6 and gzip -6: 10% larger, a
#                                                    sixth of the CPU (37 s per .deb at -6 on 2 cores); the tests use it
# Writes artifacts/packages/: sparky_<version>_<deb arch>.deb, sparky-<version>-linux-<x64|arm64>.tar.gz and its
# .sha256. The package holds the executable (no debug symbols), the systemd units, the man page and the bash, zsh and
# fish completions; it makes the system user `sparky` (systemd-sysusers) for the system unit, which it does not start.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
case "$(uname -m)" in x86_64) arch=amd64 ;; aarch64) arch=arm64 ;; *) arch=$(uname -m) ;; esac
from=
out=$root/artifacts/packages
level=6
while [ $# -gt 0 ]; do
  case "$1" in
    --arch) arch=$2; shift 2 ;;
    --from) from=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --fast) level=1; shift ;;
    *) echo "package.sh: unknown argument '$1' (use --arch amd64|arm64, --from DIR, --out DIR, --fast)" >&2; exit 64 ;;
  esac
done
case "$arch" in amd64) rid=linux-x64; triplet=x86_64-linux-gnu ;; arm64) rid=linux-arm64; triplet=aarch64-linux-gnu ;;
  *) echo "package.sh: no package for architecture '$arch' (amd64, arm64)" >&2; exit 64 ;; esac
[ -n "$from" ] || from=$(dirname "$(./native.sh --rid "$rid")")
[ -x "$from/sparky" ] && [ -f "$from/libe_sqlite3.so" ] || { echo "package.sh: $from holds no native sparky and libe_sqlite3.so" >&2; exit 1; }
here=$(dirname "$(./native.sh)")/sparky   # writes the man page and completions
version=$(sed -n 's:.*<Version>\(.*\)</Version>.*:\1:p' Directory.Build.props | head -1)
strip=strip
[ "$arch" = amd64 ] || strip=$triplet-strip
command -v "$strip" >/dev/null || { echo "package.sh: $strip is needed (Debian: binutils-$triplet)" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
pkg=$work/sparky
install -d "$pkg/DEBIAN" "$pkg/usr/bin" "$pkg/usr/lib/sparky" "$pkg/lib/systemd/system" "$pkg/usr/lib/systemd/user" \
  "$pkg/usr/lib/sysusers.d" "$pkg/usr/share/man/man1" "$pkg/usr/share/doc/sparky" \
  "$pkg/usr/share/bash-completion/completions" "$pkg/usr/share/zsh/vendor-completions" "$pkg/usr/share/fish/vendor_completions.d"
install -m 0755 "$from/sparky" "$pkg/usr/lib/sparky/sparky"
"$strip" --remove-section=.comment "$pkg/usr/lib/sparky/sparky"   # already stripped of symbols by the build
# sparky-quick: the small executable that sparky hands `sparky submit` to (src/Sparky.Quick), beside it.
[ -x "$from/sparky-quick" ] || { echo "package.sh: $from holds no sparky-quick (the native build publishes it beside sparky)" >&2; exit 1; }
install -m 0755 "$from/sparky-quick" "$pkg/usr/lib/sparky/sparky-quick"
"$strip" --remove-section=.comment "$pkg/usr/lib/sparky/sparky-quick"
install -m 0644 "$from/libe_sqlite3.so" "$pkg/usr/lib/sparky/libe_sqlite3.so"
"$strip" --strip-unneeded --remove-section=.comment --remove-section=.note "$pkg/usr/lib/sparky/libe_sqlite3.so"
# ONNX Runtime, which the embedding service (sparky embed serve) loads from beside the executable.
[ -f "$from/libonnxruntime.so" ] || { echo "package.sh: $from holds no libonnxruntime.so (the embedding service needs it)" >&2; exit 1; }
install -m 0644 "$from/libonnxruntime.so" "$pkg/usr/lib/sparky/libonnxruntime.so"
# Microsoft's build of it links curl and mbedtls in statically (for its own model downloads, which Sparky never asks
# for); it comes as one file from the NuGet package Microsoft.ML.OnnxRuntime, and Debian has no ONNX Runtime to use instead.
install -d "$pkg/usr/share/lintian/overrides"
printf '%s\n' "sparky: embedded-library curl [usr/lib/sparky/libonnxruntime.so]" "sparky: embedded-library mbedtls [usr/lib/sparky/libonnxruntime.so]" \
  >"$pkg/usr/share/lintian/overrides/sparky"
ln -s ../lib/sparky/sparky "$pkg/usr/bin/sparky"
install -m 0644 deploy/systemd/sparky.service "$pkg/lib/systemd/system/sparky.service"
# Installed, the units can point to the man page the package carries.
sed -i 's|^Description=.*|&\nDocumentation=man:sparky(1)|' "$pkg/lib/systemd/system/sparky.service"
install -m 0644 deploy/systemd/sparky-user.service "$pkg/usr/lib/systemd/user/sparky.service"
sed -i 's|%h/.dotnet/tools/sparky|/usr/bin/sparky|' "$pkg/usr/lib/systemd/user/sparky.service"
printf 'u sparky - "Sparky task orchestrator" /var/lib/sparky /usr/sbin/nologin\n' >"$pkg/usr/lib/sysusers.d/sparky.conf"
"$here" man | gzip -9n >"$pkg/usr/share/man/man1/sparky.1.gz"
"$here" completions bash >"$pkg/usr/share/bash-completion/completions/sparky"
"$here" completions zsh >"$pkg/usr/share/zsh/vendor-completions/_sparky"
"$here" completions fish >"$pkg/usr/share/fish/vendor_completions.d/sparky.fish"
cat >"$pkg/usr/share/doc/sparky/copyright" <<'EOF'
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: sparky
Source: https://github.com/sparky-orchestrator/sparky

Files: *
Copyright: 2026 The Sparky authors
License: MIT
 Permission is hereby granted, free of charge, to any person obtaining a copy of this software and associated
 documentation files (the "Software"), to deal in the Software without restriction, including without limitation the
 rights to use, copy, modify, merge, publish, distribute, sublicense, and/or sell copies of the Software, and to permit
 persons to whom the Software is furnished to do so, subject to the following conditions:
 .
 The above copyright notice and this permission notice shall be included in all copies or substantial portions of the
 Software.
 .
 THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED, INCLUDING BUT NOT LIMITED TO THE
 WARRANTIES OF MERCHANTABILITY, FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE AUTHORS OR
 COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR
 OTHERWISE, ARISING FROM, OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE SOFTWARE.
EOF
{
  printf 'sparky (%s) unstable; urgency=medium\n\n' "$version"
  printf '  * Packaged from the native build.\n\n'
  printf ' -- Sparky authors <sparky@example.org>  %s\n' "$(date -R -u -d @"${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}")"
} | gzip -9n >"$pkg/usr/share/doc/sparky/changelog.gz"

# What the executable needs from the system, by its ELF NEEDED entries (readelf reads any architecture's).
depends=()
for lib in $(readelf -d "$pkg/usr/lib/sparky/sparky" "$pkg/usr/lib/sparky/sparky-quick" "$pkg/usr/lib/sparky/libe_sqlite3.so" "$pkg/usr/lib/sparky/libonnxruntime.so" | sed -n 's/.*Shared library: \[\(.*\)\]/\1/p' | sort -u); do
  case "$lib" in
    libc.so.6|libm.so.6|libdl.so.2|libpthread.so.0|librt.so.1|ld-linux-*) depends+=("libc6 (>= 2.36)") ;;
    libz.so.1) depends+=("zlib1g (>= 1:1.2.13)") ;;
    libgcc_s.so.1) depends+=("libgcc-s1") ;;
    libstdc++.so.6) depends+=("libstdc++6") ;;
    libe_sqlite3.so|libonnxruntime.so*) ;;
    *) echo "package.sh: the executable needs $lib, which this script does not map to a Debian package" >&2; exit 1 ;;
  esac
done
# .NET's cryptography (the daemon's keys and tokens) loads OpenSSL at run time, by dlopen: no NEEDED entry names it.
depends+=("libssl3 | libssl3t64")
deps=$(printf '%s\n' "${depends[@]}" | sort -u | paste -sd, - | sed 's/,/, /g')
size=$(du -sk --exclude=DEBIAN "$pkg" | cut -f1)
cat >"$pkg/DEBIAN/control" <<EOF
Package: sparky
Version: $version
Architecture: $arch
Maintainer: Sparky authors <sparky@example.org>
Installed-Size: $size
Depends: $deps
Recommends: systemd, libzmq5
Suggests: slurm-client
Section: utils
Priority: optional
Homepage: https://github.com/sparky-orchestrator/sparky
Description: durable, fast task queue for ML work
 Sparky queues commands (training runs, evaluations, data jobs) and runs them
 durably: on this machine as process groups with GPUs, CPUs and memory handed
 out, on Slurm with generated sbatch scripts, or on workers. A daemon with a
 SQLite store of record serves an HTTP API, Prometheus metrics and a ZeroMQ
 channel; plans run phases of parallel workstreams behind gates.
EOF
cat >"$pkg/DEBIAN/postinst" <<'EOF'
#!/bin/sh
# The system unit runs as user sparky: made from /usr/lib/sysusers.d/sparky.conf. The unit is not enabled or started.
set -e
if [ "$1" = configure ] && command -v systemd-sysusers >/dev/null 2>&1; then
  systemd-sysusers sparky.conf
fi
EOF
chmod 0755 "$pkg/DEBIAN/postinst"
(cd "$pkg" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum) >"$pkg/DEBIAN/md5sums"
chmod 0644 "$pkg/DEBIAN/control" "$pkg/DEBIAN/md5sums"
find "$pkg" -type d -exec chmod 0755 {} +

mkdir -p "$out"
deb=$out/sparky_${version}_${arch}.deb
dpkg-deb --root-owner-group -Zxz "-z$level" --build "$pkg" "$deb" >/dev/null
# The tarball: the same files under sparky-<version>/, to unpack anywhere (bin/sparky runs from there).
tree=$work/sparky-$version
install -d "$tree/bin" "$tree/lib/sparky" "$tree/share"
cp -a "$pkg/usr/lib/sparky/." "$tree/lib/sparky/"
ln -s ../lib/sparky/sparky "$tree/bin/sparky"
cp -a "$pkg/usr/share/man" "$pkg/usr/share/bash-completion" "$pkg/usr/share/zsh" "$pkg/usr/share/fish" "$tree/share/"
install -d "$tree/systemd" && cp deploy/systemd/*.service "$tree/systemd/"
tarball=$out/sparky-$version-$rid.tar.gz
tar -C "$work" --owner=0 --group=0 --numeric-owner --sort=name -c "sparky-$version" | gzip "-$level" -n >"$tarball"
(cd "$out" && sha256sum "$(basename "$tarball")" >"$(basename "$tarball").sha256" && sha256sum "$(basename "$deb")" >"$(basename "$deb").sha256")
echo "$deb"
echo "$tarball"
