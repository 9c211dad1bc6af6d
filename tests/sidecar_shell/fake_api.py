"""A tiny fake Extensions + Telemetry API for testing the sidecar's shell without a sandbox.

The test drives it: it hands events to the extension's blocked /next, answers the Telemetry API
subscription with a chosen status, and POSTs telemetry batches to the extension's listener.
"""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Dict, List, Optional

EXTENSION_DIR = Path(__file__).resolve().parents[2] / "extension"


class FakeApi:
    def __init__(self, subscribe_status: int = 200, register_status: int = 200, lmi: bool = False) -> None:
        self.lmi = lmi    # as RIE-LMI: INVOKE registration refused (403), schema 2025-01-29 required (400)
        self.subscribe_status = subscribe_status
        self.register_status = register_status
        self.cond = threading.Condition()
        self.registrations: List[Dict[str, Any]] = []
        self.subscriptions: List[Dict[str, Any]] = []
        self.next_calls: List[float] = []        # epoch seconds of every /next received
        self.pending: List[Dict[str, Any]] = []  # events waiting for a /next
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def _send(self, status: int, body: bytes, headers: Optional[Dict[str, str]] = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def _body(self) -> bytes:
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def do_POST(self) -> None:  # noqa: N802
                body = self._body()
                if self.path == "/2020-01-01/extension/register":
                    with api.cond:
                        api.registrations.append({"name": self.headers.get("Lambda-Extension-Name"),
                                                  "body": json.loads(body or b"null")})
                        api.cond.notify_all()
                    if api.lmi and "INVOKE" in (json.loads(body or b"{}").get("events") or []):
                        self._send(403, b'{"errorMessage":"INVOKE: ErrorInvalidEventType",'
                                        b'"errorType":"Extension.InvalidEventType"}')
                        return
                    if api.register_status != 200:
                        self._send(api.register_status, b'{"errorMessage":"nope","errorType":"Extension.Test"}')
                        return
                    self._send(200, json.dumps({"functionName": "fn", "functionVersion": "$LATEST",
                                                "handler": "app.handler"}).encode(),
                               {"Lambda-Extension-Identifier": str(uuid.uuid4())})
                    return
                self._send(404, b"404 page not found")

            def do_PUT(self) -> None:  # noqa: N802
                body = self._body()
                if self.path == "/2022-07-01/telemetry":
                    with api.cond:
                        api.subscriptions.append(json.loads(body))
                        api.cond.notify_all()
                    status = api.subscribe_status
                    if api.lmi and json.loads(body).get("schemaVersion") != "2025-01-29":
                        self._send(400, b'{"errorType":"ValidationError","errorMessage":"schema validation error: '
                                        b'schemaVersion must be one of [2025-01-29]"}')
                        return
                    answer = {200: b'"OK"', 202: b'{"errorMessage":"Telemetry API is not supported",'
                                                 b'"errorType":"Telemetry.NotSupported"}',
                              404: b"404 page not found"}.get(status, b'{"errorType":"X","errorMessage":"y"}')
                    self._send(status, answer)
                    return
                self._send(404, b"404 page not found")

            def do_GET(self) -> None:  # noqa: N802
                if self.path != "/2020-01-01/extension/event/next":
                    self._send(404, b"404 page not found")
                    return
                with api.cond:
                    api.next_calls.append(time.time())
                    api.cond.notify_all()
                    while not api.pending and not api.closed:
                        api.cond.wait(1.0)
                    if api.closed:
                        return
                    event = api.pending.pop(0)
                self._send(200, json.dumps(event).encode())

            def log_message(self, *args: Any) -> None:
                pass

        self.closed = False
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1},
                                       daemon=True)
        self.thread.start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def push(self, event: Dict[str, Any]) -> None:
        with self.cond:
            self.pending.append(event)
            self.cond.notify_all()

    def invoke(self, request_id: str, timeout_s: float = 30.0) -> Dict[str, Any]:
        event = {"eventType": "INVOKE", "deadlineMs": int((time.time() + timeout_s) * 1000),
                 "requestId": request_id, "invokedFunctionArn": "arn:aws:lambda:us-east-1:123456789012:function:fn"}
        self.push(event)
        return event

    def shutdown_event(self, reason: str = "spindown", window_s: float = 2.0) -> Dict[str, Any]:
        event = {"eventType": "SHUTDOWN", "deadlineMs": int((time.time() + window_s) * 1000),
                 "shutdownReason": reason}
        self.push(event)
        return event

    def wait(self, pred, timeout: float = 10.0) -> Any:
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                value = pred()
                if value:
                    return value
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"fake API: condition not met within {timeout} s")
                self.cond.wait(min(left, 0.05))

    def wait_next_calls(self, n: int, timeout: float = 10.0) -> float:
        """Wait until the extension has called /next n times; returns the epoch of the n-th call."""
        return self.wait(lambda: len(self.next_calls) >= n and self.next_calls[n - 1], timeout)

    def listener_port(self) -> int:
        uri = self.subscriptions[-1]["destination"]["URI"]
        return urllib.parse.urlsplit(uri).port

    def deliver(self, events: List[Dict[str, Any]], port: Optional[int] = None) -> int:
        """POST one batch to the subscriber (sandbox.localdomain -> 127.0.0.1); returns the HTTP status."""
        body = json.dumps(events).encode() if not isinstance(events, bytes) else events
        conn = http.client.HTTPConnection("127.0.0.1", port or self.listener_port(), timeout=5)
        path = urllib.parse.urlsplit(self.subscriptions[-1]["destination"]["URI"]).path or "/"   # as Lambda does
        try:
            conn.request("POST", path, body=body, headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            resp.read()
            return resp.status
        finally:
            conn.close()

    def close(self) -> None:
        with self.cond:
            self.closed = True
            self.cond.notify_all()
        self.server.shutdown()
        self.server.server_close()


class SidecarProcess:
    """`python -m otel_sidecar` against a FakeApi; stdout and stderr captured line by line."""

    def __init__(self, api: FakeApi, env: Optional[Dict[str, str]] = None, name: str = "otel-sidecar") -> None:
        full_env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "PYTHONPATH": str(EXTENSION_DIR),
            "AWS_LAMBDA_RUNTIME_API": api.address,
            "AWS_LAMBDA_FUNCTION_NAME": "fn",
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
            "AWS_REGION": "us-east-1",
            "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        }
        full_env.update(env or {})
        self.stdout: List[str] = []
        self.stderr: List[str] = []
        self.cond = threading.Condition()
        python = os.environ.get("SIDECAR_TEST_PYTHON") or sys.executable   # e.g. a python3.9 to check support
        self.proc = subprocess.Popen([python, "-s", "-m", "otel_sidecar", "--name", name],
                                     env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     cwd=str(EXTENSION_DIR))
        self.exited_at: Optional[float] = None
        for stream, sink in ((self.proc.stdout, self.stdout), (self.proc.stderr, self.stderr)):
            threading.Thread(target=self._pump, args=(stream, sink), daemon=True).start()
        threading.Thread(target=self._reap, daemon=True).start()

    def _pump(self, stream, sink: List[str]) -> None:
        for raw in iter(stream.readline, b""):
            with self.cond:
                sink.append(raw.decode("utf-8", "replace").rstrip("\n"))
                self.cond.notify_all()

    def _reap(self) -> None:
        self.proc.wait()
        with self.cond:
            self.exited_at = time.time()
            self.cond.notify_all()

    def wait_exit(self, timeout: float = 10.0) -> int:
        return self.proc.wait(timeout)

    def wait_line(self, pred, stream: str = "stderr", timeout: float = 10.0) -> str:
        lines = self.stderr if stream == "stderr" else self.stdout
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for line in lines:
                    if pred(line):
                        return line
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no matching {stream} line within {timeout} s; got {lines!r}")
                self.cond.wait(min(left, 0.05))

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
