#!/usr/bin/env bash
# Build the layer zips, reproducibly (the same inputs give the same bytes):
#   dist/otel-sidecar-layer.zip          the slim layer for Python runtimes: the launcher, the sidecar with
#                                        every dependency vendored (pinned with hashes in layer/requirements.txt)
#   dist/otel-sidecar-layer-x86_64.zip   the same plus its own CPython (interpreter/build.sh): every runtime
#   dist/otel-sidecar-layer-arm64.zip    (Node.js, Java, .NET, Ruby, provided.al2023/al2, Python), one per arch
#
#   ./build.sh                           all three
#   ./build.sh --slim [--out PATH]       the slim layer only (seconds; what ./dev demo needs)
#   ./build.sh --arch x86_64|arm64 ...   only the self-contained layer(s) named (repeatable)
#   other options go to layer/build_layer.py: [--cache DIR] [--pyc PYTHON] [--no-pyc]
# Needs python3 (3.9+). The pinned wheels are downloaded once with pip into build/layer-cache (override with
# LAYER_CACHE_DIR). The bundled CPython is built once per input version with zig (PyPI package ziglang:
# pip install -e '.[layer]') from Debian's source packages, into ~/.cache/otel-sidecar/interpreter
# (override with OTEL_SIDECAR_INTERPRETER_CACHE): ~10 minutes per architecture the first time, then reused.
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-}
if [ -z "$PY" ]; then
  if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi
if ! "$PY" -m pip --version >/dev/null 2>&1; then
  # A bare python3 without pip: a private build venv provides it (only used to download wheels).
  if [ ! -x build/venv/bin/python ]; then
    echo "[build] creating build/venv for pip" >&2
    "$PY" -m venv build/venv
  fi
  PY=build/venv/bin/python
fi

slim=
arches=()
out=()
pass=()
while [ $# -gt 0 ]; do
  case "$1" in
    --slim) slim=1 ;;
    --arch)
      [ $# -ge 2 ] || { echo "./build.sh: --arch needs a value: x86_64 or arm64" >&2; exit 2; }
      case "$2" in x86_64|arm64) arches+=("$2") ;;
        *) echo "./build.sh: --arch $2 is not one of x86_64, arm64" >&2; exit 2 ;; esac
      shift ;;
    --out) [ $# -ge 2 ] || { echo "./build.sh: --out needs a path" >&2; exit 2; }; out=(--out "$2"); shift ;;
    *) pass+=("$1") ;;
  esac
  shift
done
if [ -z "$slim" ] && [ ${#arches[@]} -eq 0 ]; then
  slim=1
  arches=(x86_64 arm64)
  [ ${#out[@]} -eq 0 ] || arches=()    # the old form, ./build.sh --out PATH: the slim layer at PATH
fi
if [ ${#out[@]} -gt 0 ] && [ $(( ${slim:+1}+0 + ${#arches[@]} )) -ne 1 ]; then
  echo "./build.sh: --out names one zip: use it with --slim or with a single --arch" >&2
  exit 2
fi

summary=()
build() {  # build [build_layer.py options...]: run it, keep its "built ..." line for the summary
  local log
  log=$("$PY" layer/build_layer.py --python "$PY" "$@" "${pass[@]}") || { echo "$log"; return 1; }
  echo "$log"
  summary+=("$(echo "$log" | grep '^built ')")
}
[ -z "$slim" ] || build "${out[@]}"
if [ ${#arches[@]} -gt 0 ]; then
  zig_python=$PY
  [ -x .venv/bin/python ] && zig_python=.venv/bin/python
  x86=$(PYTHON=$zig_python interpreter/build.sh x86_64)
  for arch in "${arches[@]}"; do
    prefix=$x86
    [ "$arch" = x86_64 ] || prefix=$(PYTHON=$zig_python interpreter/build.sh "$arch")
    build --arch "$arch" --interpreter "$prefix" --build-interpreter "$x86" "${out[@]}"
  done
fi
echo "sizes (zipped):"
printf '  %s\n' "${summary[@]}" | sed -E 's/^  built ([^:]+): ([0-9.]+ MB) zipped.*/  \2  \1/'
