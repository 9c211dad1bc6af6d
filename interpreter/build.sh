#!/usr/bin/env bash
# Build the layer's own CPython for one architecture, once per input version, into a cache:
#   interpreter/build.sh x86_64|arm64      prints the directory of the finished build (PREFIX)
# PREFIX/bin/python3.13 is one executable: libpython, OpenSSL (libssl + one libcrypto), zlib and the
# extension modules of interpreter/Setup.local linked in statically, against glibc 2.17 symbols only
# (zig cc -target <arch>-linux-gnu.2.17), so it starts on Amazon Linux 2 (glibc 2.26) and 2023 (2.34)
# with nothing else on the machine. PREFIX/lib/python3.13 is the whole pure stdlib: layer/build_layer.py
# takes from it only the modules in interpreter/stdlib.txt.
#
# Inputs: Debian source packages (interpreter/sources.lock, sha256-checked; fetched with apt-get source into
# $CACHE/sources) and the zig compiler from PyPI (package ziglang, the `layer` extra of pyproject.toml).
# Cache: ${OTEL_SIDECAR_INTERPRETER_CACHE:-~/.cache/otel-sidecar/interpreter}/<arch>-<key>, where key
# hashes this script, sources.lock, Setup.local and the zig version: any change builds anew, anything
# else reuses. arm64 is cross-compiled on x86_64 and needs the x86_64 build first (CPython's build
# runs a Python of its own version): this script builds it when missing.
set -euo pipefail
source "$(dirname "$0")/common.sh"
key=$(cat "$here/common.sh" "$here/build.sh" "$here/deps.sh" "$here/sources.lock" "$here/Setup.local" \
        <(echo "zig $zig_version") | sha256sum | cut -c1-16)
prefix=$cache/$arch-$key
if [ -x "$prefix/bin/python3.13" ] && [ -f "$prefix/BUILD-INFO" ]; then
  echo "$prefix"
  exit 0
fi
lock "python-$arch-$key"
if [ -x "$prefix/bin/python3.13" ] && [ -f "$prefix/BUILD-INFO" ]; then
  echo "$prefix"
  exit 0
fi
fetch_sources
deps=$("$here/deps.sh" "$arch")
# CPython's cross build runs a Python of the same version: the x86_64 build.
if [ "$arch" = arm64 ]; then
  build_python=$("$here/build.sh" x86_64)/bin/python3.13
fi

work=$cache/.work-$arch-$key-$$
trap 'rm -rf "$work"' EXIT
toolchain "$work"
started=$(date +%s)

log "$arch: CPython (static, modules of Setup.local only, Debian's security patches)"
mkdir -p "$work/python" "$work/debian"
tar xJf "$src/$(srcfile python3.13 orig)" -C "$work/python" --strip-components=1
tar xJf "$src/$(srcfile python3.13 debian)" -C "$work/debian"
patches=$(grep -E '^(CVE-|ssl-|dict-use-after-free|traverse-managed-dicts)' "$work/debian/debian/patches/series")
for p in $patches; do
  patch -d "$work/python" -p1 -s < "$work/debian/debian/patches/$p" >&2
done
# zig cc refuses __DATE__/__TIME__ (not reproducible): the build info says "xx/xx/xx" instead
sed -i 's/^#ifdef __DATE__$/#if 0/; s/^#ifdef __TIME__$/#if 0/' "$work/python/Modules/getbuildinfo.c"
cp "$here/Setup.local" "$work/python/Modules/Setup.local"
wanted=" $(grep -vE '^\s*(#|\*|$)' "$here/Setup.local" | awk '{print $1}' | tr '\n' ' ') "
off=()
for mod in $(grep -E '^@MODULE_' "$work/python/Modules/Setup.stdlib.in" | awk '{print $1}' | sed 's/^@MODULE_[A-Z0-9_]*_TRUE@//'); do
  case "$wanted" in *" $mod "*) ;; *) off+=("py_cv_module_$mod=n/a") ;; esac
done
cross=()
if [ "$arch" = arm64 ]; then
  printf 'ac_cv_file__dev_ptmx=yes\nac_cv_file__dev_ptc=no\nac_cv_buggy_getaddrinfo=no\n' > "$work/config.site"
  cross=(--build=x86_64-pc-linux-gnu --host="$host" --with-build-python="$build_python")
  export CONFIG_SITE=$work/config.site
fi
(cd "$work/python" && ./configure --prefix=/opt/otel-sidecar/python "${cross[@]}" \
    --disable-shared --without-static-libpython --without-ensurepip --disable-test-modules \
    --without-doc-strings --with-openssl="$deps" --with-ssl-default-suites=openssl \
    ZLIB_CFLAGS="-I$deps/include" ZLIB_LIBS="-L$deps/lib -lz" \
    LIBS="-lpthread" LDFLAGS="-s -Wl,--gc-sections" OPT="-O2 -DNDEBUG -ffunction-sections -fdata-sections" "${off[@]}" >"$work/configure.log" 2>&1 \
  || { tail -40 "$work/configure.log" >&2; exit 1; }
  make -s -j"$jobs" >"$work/make.log" 2>&1 || { grep -B5 -iE 'error' "$work/make.log" | tail -60 >&2; exit 1; }
  make -s install DESTDIR="$work/install" >"$work/install.log" 2>&1 || { tail -40 "$work/install.log" >&2; exit 1; }) 
out=$work/install/opt/otel-sidecar/python
find "$out/lib" -name __pycache__ -prune -exec rm -rf {} +   # the layer compiles what it ships itself
rm -rf "$out/lib/python3.13/test" "$out/lib/python3.13/idlelib" "$out/lib/python3.13/tkinter" \
       "$out/lib/python3.13/lib2to3" "$out/share" "$out/include"
mkdir -p "$out/licenses"
cp "$work/python/LICENSE" "$out/licenses/CPython-LICENSE.txt"
cp "$deps"/licenses/* "$out/licenses/"
{
  echo "arch $arch"
  echo "target $target"
  echo "zig $zig_version"
  grep -vE '^\s*(#|$)' "$here/sources.lock" | awk '{print "source", $1, $2, $4}'
  echo "patches $(echo $patches)"
  echo "built_in_seconds $(( $(date +%s) - started ))"
} > "$out/BUILD-INFO"
mkdir -p "$cache"
rm -rf "$prefix"
mv "$out" "$prefix"
log "$arch: built in $(( $(date +%s) - started )) s: $prefix"
echo "$prefix"
