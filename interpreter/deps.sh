#!/usr/bin/env bash
# The static libraries the bundled CPython links in, for one architecture, built once into the cache:
#   interpreter/deps.sh x86_64|arm64     prints the prefix (include/, lib/libz.a, libssl.a, libcrypto.a, licenses/)
# zlib, and OpenSSL with what TLS clients and hashlib use (no engines, legacy provider, apps, QUIC, DTLS),
# optimised for size, one section per function so that the link drops what CPython never calls.
# --openssldir=/etc/pki/tls: OpenSSL's default certificates are then Amazon Linux's store
# (/etc/pki/tls/cert.pem, /etc/pki/tls/certs); layer/otel-sidecar adds fallbacks for other systems.
set -euo pipefail
source "$(dirname "$0")/common.sh"
key=$(cat "$here/common.sh" "$here/deps.sh" <(grep -E '^(openssl|zlib) ' "$here/sources.lock") \
        <(echo "zig $zig_version") | sha256sum | cut -c1-16)
prefix=$cache/deps-$arch-$key
if [ -f "$prefix/lib/libcrypto.a" ] && [ -f "$prefix/lib/libz.a" ] && [ -d "$prefix/licenses" ]; then
  echo "$prefix"
  exit 0
fi
lock "deps-$arch-$key"
if [ -f "$prefix/lib/libcrypto.a" ] && [ -f "$prefix/lib/libz.a" ] && [ -d "$prefix/licenses" ]; then
  echo "$prefix"
  exit 0
fi
fetch_sources
work=$cache/.work-deps-$arch-$key-$$
trap 'rm -rf "$work"' EXIT
toolchain "$work"
out=$work/prefix
started=$(date +%s)

log "$arch: zlib"
mkdir -p "$work/zlib" && tar xzf "$src/$(srcfile zlib orig)" -C "$work/zlib" --strip-components=1
(cd "$work/zlib" && CFLAGS="-O2 -fPIC -ffunction-sections -fdata-sections" ./configure --static --prefix="$out" && make -j"$jobs" libz.a \
  && make install) >"$work/zlib.log" 2>&1 || { tail -40 "$work/zlib.log" >&2; exit 1; }

log "$arch: OpenSSL (static; a few minutes)"
mkdir -p "$work/openssl" && tar xzf "$src/$(srcfile openssl orig)" -C "$work/openssl" --strip-components=1
(cd "$work/openssl" && ./Configure "$ossl" --prefix="$out" --libdir=lib --openssldir=/etc/pki/tls \
    no-shared no-module no-dso no-engine no-legacy no-apps no-tests no-docs no-asm no-ssl3 no-dtls no-srp \
    no-comp no-idea no-md2 no-mdc2 no-rc5 no-whirlpool no-seed no-sm2 no-sm3 no-sm4 no-camellia no-aria \
    no-quic no-ui-console no-afalgeng no-async -Os -ffunction-sections -fdata-sections \
  && make -j"$jobs" build_libs && make install_dev) >"$work/openssl.log" 2>&1 || { tail -40 "$work/openssl.log" >&2; exit 1; }
mkdir -p "$out/licenses"
cp "$work/openssl/LICENSE.txt" "$out/licenses/OpenSSL-LICENSE.txt"
cp "$work/zlib/LICENSE" "$out/licenses/zlib-LICENSE.txt"
rm -rf "$prefix"
mv "$out" "$prefix"
log "$arch: zlib and OpenSSL built in $(( $(date +%s) - started )) s: $prefix"
echo "$prefix"
