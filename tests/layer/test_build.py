"""The layer zip: reproducible, within budget, the documented layout, pure Python on every interpreter."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from .conftest import build_layer

pytestmark = pytest.mark.slow

BUDGET = 5 * 1024 * 1024


def _names(zip_path: Path):
    with zipfile.ZipFile(zip_path) as zf:
        return {i.filename: i for i in zf.infolist()}


def test_two_builds_are_byte_identical_and_within_budget(layer_zip, tmp_path):
    again = build_layer(tmp_path / "again.zip")
    assert again.read_bytes() == layer_zip.read_bytes()
    assert layer_zip.stat().st_size <= BUDGET


def test_a_filled_cache_needs_no_network_nor_pip(layer_zip, tmp_path):
    """With every pinned wheel cached (the session build filled it), pip is never called: /bin/false stands in."""
    out = build_layer(tmp_path / "offline.zip", "--python", "/bin/false")
    assert out.read_bytes() == layer_zip.read_bytes()


def test_optional_bytecode_is_reproducible_and_used_without_writing(tmp_path):
    """--pyc PYTHON: timestamp-free bytecode for that Python version, the same bytes on every build."""
    exe = getattr(sys, "_base_executable", sys.executable)
    first = build_layer(tmp_path / "a.zip", "--pyc", exe)
    second = build_layer(tmp_path / "b.zip", "--pyc", exe)
    assert first.read_bytes() == second.read_bytes() and first.stat().st_size <= BUDGET
    tag = sys.implementation.cache_tag
    names = _names(first)
    assert f"otel-sidecar/otel_sidecar/__pycache__/__main__.{tag}.pyc" in names
    with zipfile.ZipFile(first) as zf:
        zf.extractall(tmp_path / "opt")
    home = tmp_path / "opt" / "otel-sidecar"
    # the shipped bytecode is used as is (unchecked hash): an edit of the source does not run
    source = home / "otel_sidecar" / "otlp" / "config.py"
    source.write_text(source.read_text() + "\nprint('SOURCE WAS COMPILED')\n")
    code = "import sys; sys.path.insert(0, sys.argv[1]); import otel_sidecar.otlp.config; print('imported')"
    proc = subprocess.run([exe, "-I", "-S", "-B", "-c", code, str(home)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["imported"]


def test_layout_and_what_is_left_out(layer_zip):
    entries = _names(layer_zip)
    names = set(entries)
    launcher = entries["extensions/otel-sidecar"]
    assert stat.S_IMODE(launcher.external_attr >> 16) == 0o755
    assert "collector-config/config.yaml" in names
    assert "otel-sidecar/otel_sidecar/__main__.py" in names and "otel-sidecar/bootstrap.py" in names
    # nothing on the function's import path, nothing but the launcher in extensions/
    assert not [n for n in names if n.startswith("python/")]
    assert [n for n in names if n.startswith("extensions/") and not n.endswith("/")] == ["extensions/otel-sidecar"]
    # no caches, stubs, tests, compiled code (one layer for x86_64 and arm64)
    assert not [n for n in names if "__pycache__" in n or n.endswith((".pyc", ".pyi", ".so"))]
    assert not [n for n in names if "/tests/" in n]
    # OpenTelemetry discovers its context and propagators through entry points: their metadata must stay
    assert "otel-sidecar/opentelemetry_api-1.41.1.dist-info/entry_points.txt" in names
    assert {i.date_time for i in entries.values()} == {(1980, 1, 1, 0, 0, 0)}


def _interpreters():
    """The build interpreter plus whichever other supported Pythons this machine has (PATH or pyenv)."""
    found = {}
    pyenv = Path(os.environ.get("PYENV_ROOT", "~/.pyenv")).expanduser() / "versions"
    for name in ("python3.9", "python3.10", "python3.12", "python3.13"):
        candidates = [shutil.which(name)] + [str(p) for p in sorted(pyenv.glob(f"{name[6:]}*/bin/{name}"))]
        for exe in filter(None, candidates):
            if subprocess.run([exe, "-c", "pass"], capture_output=True).returncode == 0:
                found[name] = exe
                break
    found["build"] = getattr(sys, "_base_executable", sys.executable)
    return found


@pytest.mark.parametrize("label", sorted(_interpreters()))
def test_vendored_stack_imports_pure_python_on_each_interpreter(layer_zip, tmp_path, label):
    exe = _interpreters()[label]
    with zipfile.ZipFile(layer_zip) as zf:
        zf.extractall(tmp_path)
    home = tmp_path / "otel-sidecar"
    code = (
        "import sys; sys.path[:] = [sys.argv[1]] + [p for p in sys.path if p.startswith(sys.base_prefix) "
        "and '-packages' not in p]\n"
        "from opentelemetry.sdk.trace import TracerProvider\n"
        "from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter\n"
        "from opentelemetry import propagate\n"
        "from google.protobuf.internal import api_implementation\n"
        "import yaml, opentelemetry.version, otel_sidecar.otlp.config as c\n"
        "TracerProvider().get_tracer('t').start_span('s').end()\n"
        "print(api_implementation.Type(), yaml.__with_libyaml__, opentelemetry.version.__version__)\n"
        "mods = [m.__file__ for n, m in list(sys.modules.items()) if n.split('.')[0] in "
        "('opentelemetry', 'google', 'yaml', 'requests', 'urllib3') and getattr(m, '__file__', None)]\n"
        "assert all(f.startswith(sys.argv[1]) for f in mods), [f for f in mods if not f.startswith(sys.argv[1])]\n"
    )
    proc = subprocess.run([exe, "-I", "-S", "-B", "-c", code, str(home)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    # pure protobuf, pure PyYAML, the pinned OpenTelemetry: the same on x86_64 and arm64
    assert proc.stdout.split() == ["python", "False", "1.41.1"]
