# Sourced by interpreter/deps.sh and interpreter/build.sh: the target of ARCH ($1), the zig toolchain, the
# cache and the sources (fetched and checked once).
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
arch=${1:-}
case "$arch" in
  x86_64) target=x86_64-linux-gnu.2.17; host=x86_64-pc-linux-gnu; ossl=linux-x86_64 ;;
  arm64|aarch64) arch=arm64; target=aarch64-linux-gnu.2.17; host=aarch64-unknown-linux-gnu; ossl=linux-aarch64 ;;
  *) echo "usage: interpreter/${0##*/} x86_64|arm64 (got '${arch}')" >&2; exit 2 ;;
esac
log() { echo "[interpreter] $*" >&2; }

PY=${PYTHON:-}
if [ -z "$PY" ]; then
  if [ -x "$root/.venv/bin/python" ]; then PY=$root/.venv/bin/python; else PY=python3; fi
fi
zig=$("$PY" -c 'import os, ziglang; print(os.path.join(os.path.dirname(ziglang.__file__), "zig"))' 2>/dev/null) || {
  echo "[interpreter] ERROR the zig compiler is missing: pip install -e '.[layer]' (PyPI package ziglang) into $PY's environment" >&2
  exit 1
}
zig_version=$("$zig" version)
cache=${OTEL_SIDECAR_INTERPRETER_CACHE:-$HOME/.cache/otel-sidecar/interpreter}
jobs=${INTERPRETER_JOBS:-$(nproc)}

# --- sources -------------------------------------------------------------------------------------------
src=$cache/sources
mkdir -p "$src"
fetch() {  # fetch PACKAGE VERSION SUITE: apt-get source --download-only, from a private apt state
  local pkg=$1 ver=$2 suite=$3 state=$src/.apt-$suite base
  case "$suite" in
    *-security) base=http://deb.debian.org/debian-security ;;
    *) base=http://deb.debian.org/debian ;;
  esac
  mkdir -p "$state/lists/partial" "$state/cache/archives/partial"
  echo "deb-src $base $suite main" > "$state/sources.list"
  local opts=(-o "Dir::Etc::SourceList=$state/sources.list" -o Dir::Etc::SourceParts=/dev/null
              -o "Dir::State::Lists=$state/lists" -o "Dir::Cache=$state/cache" -o APT::Sandbox::User=root)
  [ -n "$(ls "$state/lists" 2>/dev/null | grep Sources)" ] || apt-get "${opts[@]}" update -qq >&2
  # A mirror may lack a part the package lists (e.g. a .dsc): the sha256 check below is what counts.
  (cd "$src" && apt-get "${opts[@]}" source --download-only -qq "$pkg=$ver" >&2) || true
}
fetch_sources() {  # every file of sources.lock into $src, sha256-checked
  while read -r pkg ver suite file sha; do
    case "$pkg" in ''|'#'*) continue ;; esac
    if [ ! -f "$src/$file" ] || [ "$(sha256sum < "$src/$file" | cut -d' ' -f1)" != "$sha" ]; then
      log "fetching $pkg $ver ($suite) with apt-get source"
      fetch "$pkg" "$ver" "$suite"
    fi
    got=$(sha256sum < "$src/$file" 2>/dev/null | cut -d' ' -f1 || true)
    if [ "$got" != "$sha" ]; then
      echo "[interpreter] ERROR $file: sha256 ${got:-missing}, sources.lock says $sha (Debian's source packages unreachable?)" >&2
      exit 1
    fi
  done < "$here/sources.lock"
}
srcfile() { awk -v p="$1" -v f="$2" '$1 == p && $4 ~ f { print $4 }' "$here/sources.lock"; }


# toolchain DIR: cc/c++/ar/ranlib wrappers of zig for the target in DIR/bin, exported as CC, CXX, AR, RANLIB
toolchain() {
  local dir=$1
  mkdir -p "$dir/bin"
  export ZIG_GLOBAL_CACHE_DIR=$dir/zig-cache ZIG_LOCAL_CACHE_DIR=$dir/zig-cache
  # -fno-sanitize: zig cc traps undefined behaviour in builds without -O (configure's test programs, say)
  for tool in cc c++; do
    printf '#!/bin/sh\nexec "%s" %s -target %s -fno-sanitize=undefined "$@"\n' "$zig" "$tool" "$target" > "$dir/bin/$tool"
  done
  printf '#!/bin/sh\nexec "%s" ar "$@"\n' "$zig" > "$dir/bin/ar"
  printf '#!/bin/sh\nexec "%s" ranlib "$@"\n' "$zig" > "$dir/bin/ranlib"
  chmod +x "$dir/bin/"*
  export CC=$dir/bin/cc CXX=$dir/bin/c++ AR=$dir/bin/ar RANLIB=$dir/bin/ranlib
}

# lock NAME: one build of NAME at a time (parallel test sessions, arm64 asking for the x86_64 build);
# the caller checks again for a finished build after it got the lock.
lock() {
  mkdir -p "$cache"
  exec 9>"$cache/.lock-$1"
  flock 9
}
