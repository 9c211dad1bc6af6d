"""The layer zip: reproducible, within budget, the documented layout, pure Python on every interpreter."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

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
    with zipfile.ZipFile(layer_zip) as zf:    # its parsed twin: the same document, made from exactly this text
        text, twin = zf.read("collector-config/config.yaml"), json.loads(zf.read("collector-config/config.json"))
    assert twin["config"] == yaml.safe_load(text) and twin["sourceSha256"] == hashlib.sha256(text).hexdigest()
    assert "otel-sidecar/otel_sidecar/__main__.py" in names and "otel-sidecar/bootstrap.py" in names
    # nothing on the function's import path, nothing but the launcher in extensions/
    assert not [n for n in names if n.startswith("python/")]
    assert [n for n in names if n.startswith("extensions/") and not n.endswith("/")] == ["extensions/otel-sidecar"]
    # no stubs or tests; bytecode only as unchecked-hash pycs (no timestamps) next to their sources, for
    # supported Python versions, and none for PyYAML (only a user's own config file loads it)
    assert not [n for n in names if n.endswith((".pyi", ".pyo"))]
    pycs = [n for n in names if n.endswith(".pyc")]
    assert pycs and all(re.search(r"/__pycache__/[^/]+\.cpython-3(9|1[0-3])\.pyc$", n) for n in pycs)
    assert all(n.replace("__pycache__/", "").split(".cpython-")[0] + ".py" in names for n in pycs)
    assert not [n for n in pycs if n.startswith("otel-sidecar/yaml/")]
    with zipfile.ZipFile(layer_zip) as zf:
        assert {int.from_bytes(zf.read(n)[4:8], "little") for n in pycs} == {1}    # PEP 552: hash, unchecked
    native = sorted(n for n in names if n.endswith(".so"))
    assert native == [f"otel-sidecar/native/{m}/google/_upb/_message.abi3.so" for m in ("aarch64", "x86_64")]
    with zipfile.ZipFile(layer_zip) as zf:    # ELF e_machine: 183 aarch64, 62 x86-64
        assert [int.from_bytes(zf.read(n)[18:20], "little") for n in native] == [183, 62]
    # what the sidecar never imports: it builds OTLP from the proto classes and sends with http.client
    tops = {n.split("/")[1] for n in names if n.startswith("otel-sidecar/") and n.count("/") > 1}
    assert not tops & {"requests", "urllib3", "certifi"} and not [t for t in tops if t.startswith("opentelemetry_sdk")]
    assert not (names & {"otel-sidecar/opentelemetry/sdk/", "otel-sidecar/opentelemetry/trace/"})
    assert not [n for n in names if "/tests/" in n]
    assert "otel-sidecar/opentelemetry_proto-1.41.1.dist-info/METADATA" in names     # what is vendored, and which
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


@pytest.mark.parametrize("protobuf", ["auto", "python"])
@pytest.mark.parametrize("label", sorted(_interpreters()))
def test_vendored_stack_imports_on_each_interpreter_compiled_and_pure(layer_zip, tmp_path, label, protobuf):
    exe = _interpreters()[label]
    with zipfile.ZipFile(layer_zip) as zf:
        zf.extractall(tmp_path)
    home = tmp_path / "otel-sidecar"
    # the path set-up of bootstrap.py itself, then the whole OTLP stack: metrics SDK, encoders, a request
    code = (
        "import sys; sys.argv = [sys.argv[1] + '/bootstrap.py']; __file__ = sys.argv[0]\n"
        "exec(open(__file__).read().split('sys.argv[0] = os.path.join(HERE')[0])\n"
        "from google.protobuf.internal import api_implementation\n"
        "from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest as R\n"
        "from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest as M\n"
        "import yaml, opentelemetry.proto.version as v, otel_sidecar.otlp.config as c, otel_sidecar.otlp.sink\n"
        "import otel_sidecar.otlp.encode as e, otel_sidecar.otlp.metrics as m\n"
        "req = e.Envelope('traces', {'a': 1}, 's').request([e.span(1, 2, None, 'n', e.KIND_SERVER, 1, 2, {'b': 'c'})])\n"
        "assert R.FromString(req).resource_spans[0].scope_spans[0].spans[0].name == 'n'\n"
        "agg = m.Aggregator(); agg.declare('h', m.HISTOGRAM, 's'); agg.record('h', 0.5)\n"
        "env = e.Envelope('metrics', {'a': 1}, 's')\n"
        "assert M.FromString(env.request(x.SerializeToString() for x in agg.collect(1)[0])).resource_metrics\n"
        "print(api_implementation.Type(), yaml.__with_libyaml__, v.__version__)\n"
        "mods = [m.__file__ for n, m in list(sys.modules.items()) if n.split('.')[0] in "
        "('opentelemetry', 'google', 'yaml') and getattr(m, '__file__', None)]\n"
        "home = sys.argv[0].rsplit('/', 1)[0]\n"
        "assert all(f.startswith(home) for f in mods), [f for f in mods if not f.startswith(home)]\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SIDECAR_", "PROTOCOL_BUFFERS"))}
    env["SIDECAR_PROTOBUF"] = protobuf
    env["PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION"] = "python"     # the function's setting: never ours
    proc = subprocess.run([exe, "-I", "-S", "-B", "-c", code, str(home)], capture_output=True, text=True,
                          timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr
    # compiled protobuf where this machine's architecture has it (pure with SIDECAR_PROTOBUF=python), pure
    # PyYAML, the pinned OpenTelemetry
    expected = "upb" if protobuf == "auto" and (home / "native" / os.uname().machine).is_dir() else "python"
    assert proc.stdout.split() == [expected, "False", "1.41.1"]
