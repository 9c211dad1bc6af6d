"""The launcher without a usable Python: one clear line, then the bash stand-in registers and waits for SHUTDOWN."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from .conftest import ROOT


class FakeExtensionsApi:
    """Answers register (200 + identifier) and /next: INVOKE events first, then SHUTDOWN."""

    def __init__(self, invokes: int = 0):
        self.requests = []
        self.invokes = invokes
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

            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                api.requests.append(("POST", self.path, dict(self.headers), body))
                self._reply(200, {"functionName": "f", "functionVersion": "$LATEST", "handler": "app.handler"},
                            [("Lambda-Extension-Identifier", "abc-123")])

            def do_GET(self):  # noqa: N802
                api.requests.append(("GET", self.path, dict(self.headers), b""))
                if api.invokes > 0:
                    api.invokes -= 1
                    self._reply(200, {"eventType": "INVOKE", "requestId": "r1", "deadlineMs": 0})
                else:
                    self._reply(200, {"eventType": "SHUTDOWN", "shutdownReason": "spindown", "deadlineMs": 0})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def api():
    server = FakeExtensionsApi(invokes=2)
    yield server
    server.close()


def _layer_dir(tmp_path: Path) -> Path:
    """The layer's launcher files laid out as in the zip (no build needed for the shell parts)."""
    opt = tmp_path / "opt"
    (opt / "extensions").mkdir(parents=True)
    (opt / "otel-sidecar").mkdir()
    shutil.copy2(ROOT / "layer" / "otel-sidecar", opt / "extensions" / "otel-sidecar")
    for name in ("bootstrap.py", "no-python-extension.bash"):
        shutil.copy2(ROOT / "layer" / name, opt / "otel-sidecar" / name)
    return opt


def _bin_without_python(tmp_path: Path) -> Path:
    """A PATH with the tools the launcher needs (sh, bash, sleep) and no python."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for tool in ("sh", "bash", "sleep"):
        os.symlink(shutil.which(tool), bindir / tool)
    return bindir


def _run(opt: Path, env: dict, timeout: float = 20.0) -> subprocess.CompletedProcess:
    return subprocess.run([str(opt / "extensions" / "otel-sidecar")], env=env, capture_output=True, text=True,
                          timeout=timeout)


def test_no_python_registers_for_shutdown_and_waits_for_it(tmp_path, api):
    opt = _layer_dir(tmp_path)
    env = {"PATH": str(_bin_without_python(tmp_path)), "AWS_LAMBDA_RUNTIME_API": api.address}
    proc = _run(opt, env)
    assert proc.returncode == 0, proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if "ERROR" in ln]
    assert len(errors) == 1 and "no usable Python" in errors[0] and "function is unaffected" in errors[0]
    method, path, headers, body = api.requests[0]
    assert (method, path) == ("POST", "/2020-01-01/extension/register")
    assert headers["Lambda-Extension-Name"] == "otel-sidecar"          # the file name, as Lambda requires
    assert json.loads(body) == {"events": ["SHUTDOWN"]}                # never takes part in invokes
    nexts = [r for r in api.requests if r[0] == "GET"]
    # it asked /next until the SHUTDOWN came (the fake also answers INVOKE first), and not once more
    assert len(nexts) == 3 and all(r[2]["Lambda-Extension-Identifier"] == "abc-123" for r in nexts)


def test_python_too_old_hands_over_to_the_bash_stand_in(tmp_path, api):
    old = sorted(Path(os.environ.get("PYENV_ROOT", "~/.pyenv")).expanduser().glob("versions/3.8*/bin/python3.8"))
    if not old:
        pytest.skip("no Python 3.8 on this machine")
    opt = _layer_dir(tmp_path)
    env = {"PATH": str(_bin_without_python(tmp_path)), "AWS_LAMBDA_RUNTIME_API": api.address,
           "SIDECAR_PYTHON": str(old[0])}
    proc = _run(opt, env)
    assert proc.returncode == 0, proc.stderr
    assert "older than 3.9" in proc.stderr
    assert json.loads(api.requests[0][3]) == {"events": ["SHUTDOWN"]}


def test_stand_in_keeps_asking_when_next_breaks(tmp_path):
    """A broken /next connection (e.g. around a freeze) is retried; the stand-in never exits before SHUTDOWN."""
    server = FakeExtensionsApi(invokes=0)
    original = server.server.RequestHandlerClass.do_GET
    calls = {"n": 0}

    def flaky(handler):
        calls["n"] += 1
        if calls["n"] <= 2:
            handler.close_connection = True
            handler.connection.close()   # drop the connection without an answer
            return
        original(handler)

    server.server.RequestHandlerClass.do_GET = flaky
    try:
        opt = _layer_dir(tmp_path)
        started = time.monotonic()
        proc = _run(opt, {"PATH": str(_bin_without_python(tmp_path)), "AWS_LAMBDA_RUNTIME_API": server.address,
                          "SIDECAR_FORCE_NO_PYTHON": "1"})
        assert proc.returncode == 0, proc.stderr
        assert calls["n"] == 3 and time.monotonic() - started < 20
    finally:
        server.close()
