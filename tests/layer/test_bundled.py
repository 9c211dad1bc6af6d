"""The self-contained layers (one per architecture, with their own CPython): they start on Amazon Linux's
glibc, under an empty environment, with no Python on the machine, find CA certificates where Amazon Linux
keeps them, and the arm64 one runs the sidecar's start path under emulation.

The bundled interpreter is built once per input version into the interpreter cache (conftest.interpreter_prefix:
about ten minutes per architecture on a fresh machine, seconds after that)."""

from __future__ import annotations

import json
import os
import re
import shutil
import ssl
import stat
import subprocess
import sys
import threading
import time
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from .conftest import ARCHES, ROOT

sys.path.insert(0, str(ROOT / "layer"))
import bundle  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.timeout(3600)]   # the first run on a machine builds CPython

QEMU = shutil.which("qemu-aarch64-static") or shutil.which("qemu-aarch64")
ARM64_SYSROOT = Path("/usr/aarch64-linux-gnu")     # Debian's libc6-arm64-cross: the loader and glibc for qemu
GLIBC_MAX = (2, 17)
ALLOWED_NEEDED = {"libc.so.6", "libm.so.6", "libpthread.so.0", "libdl.so.2", "libutil.so.1", "librt.so.1",
                  "ld-linux-x86-64.so.2", "ld-linux-aarch64.so.1"}


def _extract(zip_path: Path, dest: Path) -> Path:
    with zipfile.ZipFile(zip_path) as zf:
        for info in zf.infolist():
            zf.extract(info, dest)
            mode = (info.external_attr >> 16) & 0o777
            if mode and not info.is_dir():
                os.chmod(dest / info.filename, mode)
    return dest


def _glibc_versions(path: Path):
    """The GLIBC_x.y versions an ELF file requires (readelf works for every architecture)."""
    out = subprocess.run(["readelf", "-V", "-W", str(path)], capture_output=True, text=True, check=True).stdout
    return sorted({tuple(int(x) for x in m.split(".")) for m in re.findall(r"Name: GLIBC_([0-9.]+)", out)})


def _dynamic(path: Path) -> str:
    return subprocess.run(["readelf", "-d", "-W", str(path)], capture_output=True, text=True, check=True).stdout


@pytest.mark.parametrize("arch", ARCHES)
def test_interpreter_needs_glibc_217_at_most_and_no_library_of_its_own(bundled_zips, tmp_path, arch):
    opt = _extract(bundled_zips(arch), tmp_path)
    exe = opt / "otel-sidecar" / "interpreter" / "bin" / "python3"
    upb = opt / "otel-sidecar" / "native" / bundle.MACHINES[arch] / "google" / "_upb" / "_message.abi3.so"
    for elf in (exe, upb):
        versions = _glibc_versions(elf)
        assert versions and max(versions) <= GLIBC_MAX, (elf.name, versions)   # Amazon Linux 2 has 2.26
        needed = set(bundle.needed(elf.read_bytes()))
        # the C library only: OpenSSL, zlib and libpython are inside; protobuf's core without libstdc++,
        # which provided.al2023 lacks
        assert needed <= ALLOWED_NEEDED, (elf.name, needed)
        assert "RUNPATH" not in _dynamic(elf) and "RPATH" not in _dynamic(elf)
    assert int.from_bytes(exe.read_bytes()[18:20], "little") == bundle.ELF_MACHINE[arch]
    assert (opt / "otel-sidecar" / "interpreter" / "MACHINE").read_text().strip() == bundle.MACHINES[arch]


@pytest.mark.parametrize("arch", ARCHES)
def test_layout_budget_and_nothing_on_the_functions_path(bundled_zips, arch):
    zip_path = bundled_zips(arch)
    assert zip_path.stat().st_size <= 8 * 1024 * 1024
    with zipfile.ZipFile(zip_path) as zf:
        names = set(zf.namelist())
        meta = json.loads(zf.read("otel-sidecar/LAYER.json"))
        exe = zf.getinfo("otel-sidecar/interpreter/bin/python3")
    assert not [n for n in names if n.startswith("python/")]
    assert [n for n in names if n.startswith("extensions/") and not n.endswith("/")] == ["extensions/otel-sidecar"]
    assert stat.S_IMODE(exe.external_attr >> 16) == 0o755
    # only this architecture's protobuf core; the stdlib as bytecode only, without its tests and tools
    assert {n.split("/")[2] for n in names if n.startswith("otel-sidecar/native/") and n.count("/") > 2} == {
        bundle.MACHINES[arch]}
    stdlib = [n for n in names if n.startswith("otel-sidecar/interpreter/lib/python3.13/") and not n.endswith("/")]
    assert "otel-sidecar/interpreter/lib/python3.13/os.pyc" in names
    assert not [n for n in stdlib if n.endswith(".py")]
    assert not [n for n in stdlib if re.search(r"/python3\.13/(test|unittest|tkinter|idlelib|ensurepip)/", n)]
    assert meta["compatibleArchitectures"] == [arch]
    assert {"nodejs20.x", "provided.al2023", "python3.12"} <= set(meta["compatibleRuntimes"])
    assert len(meta["compatibleRuntimes"]) <= 15     # what publish-layer-version accepts
    licences = {n.rsplit("/", 1)[1] for n in names if n.startswith("otel-sidecar/interpreter/licenses/")} - {""}
    assert licences == {"CPython-LICENSE.txt", "OpenSSL-LICENSE.txt", "zlib-LICENSE.txt"}


def test_two_builds_are_byte_identical(bundled_zips, tmp_path):
    from .conftest import build_layer, interpreter_prefix

    x86 = interpreter_prefix("x86_64")
    again = build_layer(tmp_path / "again.zip", "--arch", "x86_64", "--interpreter", str(x86))
    assert again.read_bytes() == bundled_zips("x86_64").read_bytes()


class FakeLambda:
    """The Extensions and Telemetry APIs as far as the sidecar's start needs them: register, subscribe, then
    `invokes` INVOKE events and a SHUTDOWN; records what it was asked."""

    def __init__(self, invokes: int = 1):
        self.requests = []
        self.invokes = invokes
        self.shutdown_sent = threading.Event()
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _reply(self, status, body, headers=()):
                data = json.dumps(body).encode()
                self.send_response(status)
                for k, v in headers:
                    self.send_header(k, v)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _body(self):
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def do_POST(self):  # noqa: N802
                api.requests.append(("POST", self.path, dict(self.headers), self._body()))
                self._reply(200, {"functionName": "f", "functionVersion": "$LATEST", "handler": "index.handler"},
                            [("Lambda-Extension-Identifier", "ext-1")])

            def do_PUT(self):  # noqa: N802
                api.requests.append(("PUT", self.path, dict(self.headers), self._body()))
                self._reply(200, {})

            def do_GET(self):  # noqa: N802
                api.requests.append(("GET", self.path, dict(self.headers), b""))
                now_ms = int(time.time() * 1000)
                if api.invokes > 0:
                    api.invokes -= 1
                    self._reply(200, {"eventType": "INVOKE", "requestId": f"req-{api.invokes}",
                                      "deadlineMs": now_ms + 1500,
                                      "invokedFunctionArn": "arn:aws:lambda:us-east-1:123456789012:function:f"})
                else:
                    api.shutdown_sent.set()
                    self._reply(200, {"eventType": "SHUTDOWN", "shutdownReason": "spindown",
                                      "deadlineMs": now_ms + 2000})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def paths(self):
        return [(m, p) for m, p, _, _ in self.requests]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake_lambda():
    api = FakeLambda(invokes=1)
    yield api
    api.close()


def _check_started_and_served(api: FakeLambda, proc: subprocess.CompletedProcess):
    assert proc.returncode == 0, proc.stderr
    paths = api.paths()
    assert paths[0] == ("POST", "/2020-01-01/extension/register")
    assert json.loads(api.requests[0][3])["events"] == ["INVOKE", "SHUTDOWN"]    # the sidecar, not the stand-in
    assert ("PUT", "/2022-07-01/telemetry") in paths
    assert [p for p in paths if p[0] == "GET"] == [("GET", "/2020-01-01/extension/event/next")] * 2
    assert "Traceback" not in proc.stderr


def test_starts_under_an_empty_environment_with_no_python_on_the_machine(bundled_zips, tmp_path, fake_lambda):
    """env -i plus the one variable Lambda always sets; PATH names no directory with a Python in it."""
    opt = _extract(bundled_zips("x86_64"), tmp_path / "opt")
    empty_bin = tmp_path / "bin"
    empty_bin.mkdir()
    env_i = ["env", "-i", f"AWS_LAMBDA_RUNTIME_API={fake_lambda.address}", f"PATH={empty_bin}"]
    proc = subprocess.run([*env_i, "/bin/sh", str(opt / "extensions" / "otel-sidecar")], capture_output=True,
                          text=True, timeout=60)
    _check_started_and_served(fake_lambda, proc)
    chosen = [ln for ln in proc.stderr.splitlines() if "interpreter:" in ln]
    assert chosen == [f"[otel-sidecar] INFO interpreter: bundled CPython 3.13.5 "
                      f"({opt.resolve()}/otel-sidecar/interpreter/bin/python3)"]


def test_the_runtimes_own_python_is_preferred_when_compatible(tmp_path):
    """On a Python runtime the layer takes the runtime's interpreter (cheaper start); with
    SIDECAR_INTERPRETER=bundled its own. Shown with SIDECAR_PYTHON, the knob in the same place of the order."""
    opt = tmp_path / "opt"
    (opt / "extensions").mkdir(parents=True)
    (opt / "otel-sidecar" / "interpreter" / "bin").mkdir(parents=True)
    shutil.copy2(ROOT / "layer" / "otel-sidecar", opt / "extensions" / "otel-sidecar")
    fake = opt / "otel-sidecar" / "interpreter" / "bin" / "python3"
    fake.write_text("#!/bin/sh\necho bundled \"$@\"; echo \"SSL_CERT_FILE=$SSL_CERT_FILE\"\n")
    fake.chmod(0o755)
    (opt / "otel-sidecar" / "interpreter" / "MACHINE").write_text(os.uname().machine + "\n")
    (opt / "otel-sidecar" / "interpreter" / "VERSION").write_text("3.13.5\n")
    host = tmp_path / "host-python"
    host.write_text("#!/bin/sh\necho host \"$@\"\n")
    host.chmod(0o755)
    launcher = [str(opt / "extensions" / "otel-sidecar")]
    base = {"PATH": "/usr/bin:/bin"}
    first = subprocess.run(launcher, env={**base, "SIDECAR_PYTHON": str(host)}, capture_output=True, text=True)
    assert first.stdout.split()[0] == "host" and "INFO interpreter: SIDECAR_PYTHON" in first.stderr
    forced = subprocess.run(launcher, env={**base, "SIDECAR_PYTHON": str(host), "SIDECAR_INTERPRETER": "bundled"},
                            capture_output=True, text=True)
    assert forced.stdout.split()[:2] == ["bundled", "-I"] and "bundled CPython 3.13.5" in forced.stderr
    # CA certificates for the bundled OpenSSL: the first store of the launcher's list this machine has...
    stores = ["/etc/pki/tls/certs/ca-bundle.crt", "/etc/pki/tls/cert.pem",
              "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem", "/etc/ssl/certs/ca-certificates.crt"]
    present = [s for s in stores if os.access(s, os.R_OK)]
    if present:
        assert f"SSL_CERT_FILE={present[0]}" in forced.stdout.splitlines()
    # ...and the user's SSL_CERT_FILE untouched
    own = subprocess.run(launcher, env={**base, "SIDECAR_INTERPRETER": "bundled", "SSL_CERT_FILE": "/my/ca.pem"},
                         capture_output=True, text=True)
    assert "SSL_CERT_FILE=/my/ca.pem" in own.stdout.splitlines()
    bad = subprocess.run(launcher, env={**base, "SIDECAR_INTERPRETER": "fastest"}, capture_output=True, text=True)
    assert "SIDECAR_INTERPRETER=fastest is not one of auto, bundled; using auto" in bad.stderr
    # another architecture's layer: one clear line, then the next choice (here no Python: the stand-in)
    (opt / "otel-sidecar" / "interpreter" / "MACHINE").write_text("riscv64\n")
    wrong = subprocess.run(launcher, env={"PATH": str(tmp_path / "nothing"), "SIDECAR_INTERPRETER": "bundled"},
                           capture_output=True, text=True, timeout=30)
    assert "built for riscv64" in wrong.stderr and "no usable Python" in wrong.stderr


_HTTPS_PROBE = (
    "import ssl, sys\n"
    "ctx = ssl.create_default_context()\n"
    "print(len(ctx.get_ca_certs()), ssl.OPENSSL_VERSION, ssl.get_default_verify_paths().openssl_cafile)\n"
)


def test_ca_certificates_come_from_amazon_linux_store_or_the_documented_variable(bundled_zips, tmp_path):
    """The bundled OpenSSL's own default is Amazon Linux's /etc/pki/tls/cert.pem; where that is missing the
    launcher's fallback list or SSL_CERT_FILE (documented in the README) gives the bundle."""
    opt = _extract(bundled_zips("x86_64"), tmp_path / "opt")
    exe = opt / "otel-sidecar" / "interpreter" / "bin" / "python3"
    bare = subprocess.run(["env", "-i", str(exe), "-I", "-S", "-c", _HTTPS_PROBE], capture_output=True, text=True,
                          timeout=60)
    assert bare.returncode == 0, bare.stderr
    count, *_, cafile = bare.stdout.split()
    assert cafile == "/etc/pki/tls/cert.pem"
    # where Amazon Linux's store is absent (this machine, say) nothing loads without help: why the fallbacks
    assert (int(count) > 0) == Path(cafile).is_file()
    # a planted bundle through the documented variable: exactly its certificates are loaded
    planted = tmp_path / "ca.pem"
    system = Path(ssl.get_default_verify_paths().cafile or "/etc/ssl/certs/ca-certificates.crt")
    if not system.is_file():
        pytest.skip("no CA bundle on this machine to plant")
    planted.write_bytes(system.read_bytes())
    expected = len(ssl.create_default_context(cafile=str(planted)).get_ca_certs())
    planted_run = subprocess.run(["env", "-i", f"SSL_CERT_FILE={planted}", str(exe), "-I", "-S", "-c", _HTTPS_PROBE],
                                 capture_output=True, text=True, timeout=60)
    assert planted_run.returncode == 0, planted_run.stderr
    assert int(planted_run.stdout.split()[0]) == expected > 0
    assert "OpenSSL 3.5" in planted_run.stdout
    # without the variable, the launcher's fallback list (Amazon Linux's paths first, then other systems')
    text = (opt / "extensions" / "otel-sidecar").read_text()
    fallbacks = re.search(r"for ca in (.*?); do", text, re.S).group(1).replace("\\\n", " ").split()
    assert fallbacks[:2] == ["/etc/pki/tls/certs/ca-bundle.crt", "/etc/pki/tls/cert.pem"]
    assert "/etc/ssl/certs/ca-certificates.crt" in fallbacks


_SMOKE = (
    "import sys; sys.argv = [sys.argv[1] + '/bootstrap.py']; __file__ = sys.argv[0]\n"
    "exec(open(__file__).read().split('sys.argv[0] = os.path.join(HERE')[0])\n"
    "import os, ssl, otel_sidecar, otel_sidecar.__main__, otel_sidecar.otlp.encode as e\n"
    "from google.protobuf.internal import api_implementation\n"
    "from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest as R\n"
    "req = e.Envelope('traces', {'a': 1}, 's').request([e.span(1, 2, None, 'n', e.KIND_SERVER, 1, 2, {})])\n"
    "assert R.FromString(req).resource_spans[0].scope_spans[0].spans[0].name == 'n'\n"
    "ctx = ssl.create_default_context()\n"
    "print(os.uname().machine, api_implementation.Type(), ctx.verify_mode == ssl.CERT_REQUIRED)\n"
)


def _qemu_or_skip():
    if not QEMU:
        pytest.skip("qemu-user is not installed (Debian: apt-get install qemu-user-static libc6-arm64-cross)")
    if not (ARM64_SYSROOT / "lib" / "ld-linux-aarch64.so.1").exists():
        pytest.skip("no arm64 glibc for qemu (Debian: apt-get install libc6-arm64-cross)")


def test_arm64_start_path_under_qemu(bundled_zips, tmp_path):
    """The cross-built arm64 interpreter imports the sidecar, encodes OTLP with protobuf's compiled core and
    makes an https context, emulated."""
    _qemu_or_skip()
    opt = _extract(bundled_zips("arm64"), tmp_path / "opt")
    exe = opt / "otel-sidecar" / "interpreter" / "bin" / "python3"
    proc = subprocess.run(["env", "-i", QEMU, "-L", str(ARM64_SYSROOT), str(exe), "-I", "-S", "-B", "-c", _SMOKE,
                           str(opt / "otel-sidecar")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["aarch64", "upb", "True"]


def test_arm64_sidecar_registers_serves_an_invoke_and_shuts_down_under_qemu(bundled_zips, tmp_path, fake_lambda):
    _qemu_or_skip()
    opt = _extract(bundled_zips("arm64"), tmp_path / "opt")
    exe = opt / "otel-sidecar" / "interpreter" / "bin" / "python3"
    proc = subprocess.run(["env", "-i", f"AWS_LAMBDA_RUNTIME_API={fake_lambda.address}", QEMU, "-L",
                           str(ARM64_SYSROOT), str(exe), "-I", "-S", "-B", "-u", str(opt / "otel-sidecar" / "bootstrap.py"),
                           "--name", "otel-sidecar"], capture_output=True, text=True, timeout=300)
    _check_started_and_served(fake_lambda, proc)


@pytest.mark.sandbox
def test_the_sandbox_runs_a_function_with_the_layers_own_interpreter(bundled_zips):
    """The built zip as the sandbox takes it (--layer ZIP), its bundled CPython forced on a Python function:
    one line names it, the sidecar registers and writes the invocation's EMF record."""
    proc = subprocess.run([sys.executable, "-m", "lambda_sandbox.cli", "run", "--code", str(ROOT / "examples" / "orders"),
                           "--handler", "app.handler", "--layer", str(bundled_zips("x86_64")), "--count", "1",
                           "--env", "SIDECAR_INTERPRETER=bundled"], capture_output=True, text=True, timeout=300,
                          cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout + proc.stderr
    assert "[otel-sidecar] INFO interpreter: bundled CPython 3.13.5 (/opt/otel-sidecar/interpreter/bin/python3)" in out
    assert "EXTENSION\tName: otel-sidecar\tState: Ready\tEvents: [INVOKE, SHUTDOWN]" in out
    emf = [json.loads(ln) for ln in out.splitlines() if ln.startswith('{"_aws"')]
    assert [r["Invocations"] for r in emf] == [1] and emf[0]["ColdStart"] == 1
    assert "Traceback" not in out
