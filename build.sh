#!/usr/bin/env bash
# Build dist/otel-sidecar-layer.zip: the launcher, the sidecar with every dependency vendored (pure Python,
# pinned with hashes in layer/requirements.txt), and collector-config/config.yaml.
# Reproducible: the same inputs give the same bytes. Needs python3 (3.9+); the pinned wheels are downloaded
# once with pip into build/layer-cache (override with LAYER_CACHE_DIR), later builds need no network.
#   ./build.sh [--out PATH] [--cache DIR] [--pyc PYTHON]   (--pyc: also ship bytecode for that Python version)
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
exec "$PY" layer/build_layer.py --python "$PY" "$@"
