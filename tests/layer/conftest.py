"""Fixtures of the layer tests: the layer is built once per session, from the pinned wheel cache.

The cache (build/layer-cache, or LAYER_CACHE_DIR) is filled from PyPI on the first build; later builds
need no network. The function-side dependencies of the isolation test (a different opentelemetry-sdk)
are cached the same way under build/test-cache.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUILDER = ROOT / "layer" / "build_layer.py"
FUNCTION_OTEL_VERSION = "1.27.0"   # deliberately different from the layer's pinned opentelemetry-proto


def build_layer(out: Path, *extra: str) -> Path:
    """Build the layer zip at `out` with this interpreter's pip (only used when the cache lacks a wheel)."""
    proc = subprocess.run([sys.executable, str(BUILDER), "--out", str(out), *extra], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, f"layer build failed:\n{proc.stdout}\n{proc.stderr}"
    return out


@pytest.fixture(scope="session")
def layer_zip(tmp_path_factory) -> Path:
    return build_layer(tmp_path_factory.mktemp("layer") / "otel-sidecar-layer.zip")


@pytest.fixture(scope="session")
def function_otel_deps() -> Path:
    """A layer directory whose python/ holds opentelemetry-sdk and the OTLP/HTTP exporter FUNCTION_OTEL_VERSION
    (so opentelemetry-proto of that version and the protobuf it pins): the function's own OTLP stack."""
    cache = Path(os.environ.get("LAYER_TEST_CACHE_DIR", ROOT / "build" / "test-cache"))
    target = cache / f"fn-otel-{FUNCTION_OTEL_VERSION}-py{sys.version_info.major}{sys.version_info.minor}"
    if not (target / "python" / "opentelemetry" / "proto").is_dir():
        tmp = cache / f".tmp-{uuid.uuid4().hex}"
        proc = subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-compile",
             "--target", str(tmp / "python"), f"opentelemetry-sdk=={FUNCTION_OTEL_VERSION}",
             f"opentelemetry-exporter-otlp-proto-http=={FUNCTION_OTEL_VERSION}"],
            capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, f"pip could not fetch the function's dependencies:\n{proc.stderr}"
        try:
            tmp.rename(target)      # atomic: a parallel session either wins or finds it done
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)
    return target


INTERPRETER_BUILD = ROOT / "interpreter" / "build.sh"
ARCHES = ("x86_64", "arm64")


def interpreter_prefix(arch: str) -> Path:
    """The bundled CPython of `arch`: built once per input version into the interpreter cache (about ten
    minutes per architecture the first time, on a fresh machine or CI), then reused in seconds."""
    proc = subprocess.run(["bash", str(INTERPRETER_BUILD), arch], cwd=ROOT, capture_output=True, text=True,
                          timeout=3600, env={**os.environ, "PYTHON": sys.executable})
    assert proc.returncode == 0, f"interpreter build failed:\n{proc.stderr[-4000:]}"
    return Path(proc.stdout.split()[-1])

# bundled_zips (the self-contained layer of each architecture, built once per session) is in tests/conftest.py:
# the end-to-end tests on other runtimes use it too.
