"""The Telemetry API listener against a hostile local process (issue 9, the listener): chunk sizes that are
negative, overflowing or not hex; bodies over the limit; 60 slow 4 MB bodies; idle and incomplete connections
that would take every slot; a forged batch on the wrong path. Unit level first (the listener in its own
process, so that its RSS can be read from /proc), then in the sandbox with the built layer, the attacker
being the function itself."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List

import pytest

from tests.faults.conftest import assert_deadline_respected, assert_no_traceback, sidecar_text, total
from tests.helpers import SIDECAR_NAME

ROOT = Path(__file__).resolve().parents[2]
PATH = "/telemetry/0123456789abcdef"
MIB = 1024 * 1024
from otel_sidecar.listener import PENDING_BUDGET_BYTES  # noqa: E402

SERVER = r"""
import json, sys
from otel_sidecar.listener import BatchQueue, TelemetryListener
q = BatchQueue()
lst = TelemetryListener(q, path=sys.argv[1])
print(lst.bind("127.0.0.1", 0), flush=True)
for line in sys.stdin:
    if line.strip() == "drain":
        q.get_all_nowait()
    h = lst.health()
    status = open("/proc/self/status").read().split("\n")
    h["hwm_kb"] = int([s for s in status if s.startswith("VmHWM:")][0].split()[1])
    h["rss_kb"] = int([s for s in status if s.startswith("VmRSS:")][0].split()[1])
    h["queued"] = len(q)
    print(json.dumps(h), flush=True)
"""


class Listener:
    """A TelemetryListener in a child process; health() asks it for its counters and its /proc RSS."""

    def __init__(self) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT / "extension")}
        self.proc = subprocess.Popen([sys.executable, "-c", SERVER, PATH], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, env=env)
        self.port = int(self.proc.stdout.readline())

    def health(self, drain: bool = False) -> Dict[str, Any]:
        self.proc.stdin.write("drain\n" if drain else "health\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(10)


@pytest.fixture
def child():
    lst = Listener()
    yield lst
    lst.close()


def _connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=5)


def _answer(s: socket.socket) -> bytes:
    """What the listener answers, until it closes (bounded by the socket timeout)."""
    out = b""
    while True:
        try:
            got = s.recv(65536)
        except ConnectionResetError:
            return out
        if not got:
            return out
        out += got


def _status(port: int, body: bytes, path: str = PATH) -> int:
    with _connect(port) as s:
        s.sendall(b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (path.encode(), len(body), body))
        got = b""
        while b"\r\n" not in got:          # the status line is enough (a 200 keeps the connection open)
            more = s.recv(4096)
            if not more:
                break
            got += more
        return int(got.split(b" ", 2)[1])


@pytest.mark.parametrize("size", [b"-1", b"10000000000000000", b"f" * 40, b"0x10", b"+10", b"zz", b""])
def test_a_bad_chunk_size_is_refused_at_once_not_read_to_eof(child, size):
    with _connect(child.port) as s:
        s.sendall(b"POST " + PATH.encode() + b" HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                  + size + b"\r\n")
        # the attacker would go on sending for ever: the answer comes while the connection is still open
        s.sendall(b"A" * 65536)
        answer = _answer(s)
    assert answer.startswith(b"HTTP/1.1 400 ")
    h = child.health()
    assert (h["listener_read_errors"], h["listener_rejected"], h["queued"]) == (1, 1, 0)
    assert h["hwm_kb"] < 48 * 1024                        # was 515 MB for "-1"
    assert _status(child.port, b"[]") == 200             # and the listener goes on serving


@pytest.mark.parametrize("chunked", [False, True])
def test_a_body_over_the_limit_is_refused_unread(child, chunked):
    with _connect(child.port) as s:
        head = b"POST " + PATH.encode() + b" HTTP/1.1\r\nHost: x\r\n"
        if chunked:
            s.sendall(head + b"Transfer-Encoding: chunked\r\n\r\n" + b"%x\r\n" % (5 * MIB) + b"a" * MIB)
        else:
            s.sendall(head + b"Content-Length: %d\r\n\r\n" % (50 * MIB) + b"a" * MIB)
        answer = _answer(s)
    assert answer.startswith(b"HTTP/1.1 413 ")
    h = child.health()
    assert (h["listener_oversized"], h["queued"]) == (1, 0)
    assert h["hwm_kb"] < 48 * 1024


def test_sixty_slow_4_mb_bodies_stay_within_the_pending_budget(child):
    socks: List[socket.socket] = []
    try:
        for _ in range(60):
            s = _connect(child.port)
            s.sendall(b"POST " + PATH.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (4 * MIB)
                      + b"a" * (4 * MIB - 1))    # one byte short: never finished
            socks.append(s)
        h = child.health()
        assert h["listener_pending_bytes"] <= PENDING_BUDGET_BYTES
        assert h["listener_shed"] >= 60 - PENDING_BUDGET_BYTES // (4 * MIB) and h["listener_rejected"] >= h["listener_shed"]
        assert h["hwm_kb"] < 48 * 1024                   # was 278 MB: a ~12 MB process + the pending budget
        assert _status(child.port, b"[1]") == 200       # a real delivery still gets through
    finally:
        for s in socks:
            s.close()


def test_a_request_on_another_path_is_refused_and_counted_never_queued(child):
    forged = json.dumps([{"time": "t", "type": "platform.report", "record": {"requestId": "x"}}]).encode()
    for path in ("/", "/telemetry", PATH + "x", PATH[:-1], "/" + PATH):
        assert _status(child.port, forged, path) == 404
    assert _status(child.port, b"[]", PATH + "?q=1") == 200
    h = child.health()
    assert (h["listener_wrong_path"], h["listener_rejected"], h["listener_requests"], h["queued"]) == (5, 5, 1, 1)


@pytest.mark.parametrize("n", [64, 200])
def test_idle_and_incomplete_connections_cannot_lock_out_deliveries(child, n):
    held: List[socket.socket] = []
    try:
        for i in range(n):
            s = _connect(child.port)
            if i % 2:
                s.sendall(b"POST " + PATH.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Le")
            held.append(s)
        for i in range(5):                                # the platform's deliveries, on new connections
            assert _status(child.port, b"[%d]" % i) == 200
        h = child.health()
        assert h["listener_connections"] <= 64
        assert h["listener_evicted"] >= n + 1 - 64 and h["queued"] == 5   # the first delivery evicted one
        assert h["listener_connection_threads"] <= 64 + 8
    finally:
        for s in held:
            s.close()


def test_incomplete_headers_are_closed_after_the_header_deadline(child):
    with _connect(child.port) as s:
        s.sendall(b"POST " + PATH.encode() + b" HTTP/1.1\r\nHost: x\r\n")
        assert _answer(s) == b""                          # closed by the listener (HEADER_TIMEOUT_S = 2 s)
    h = child.health()
    assert (h["listener_deadline_closed"], h["listener_rejected"]) == (1, 1)


# ---- in the sandbox: the function attacks the listener ------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.sandbox
@pytest.mark.parametrize("n", [64, 200])
def test_held_connections_from_the_function_do_not_stop_telemetry(sidecar_env, n):
    sb, _rx = sidecar_env(handler="listener_attack.handler", timeout_s=3.0,
                          env={"SIDECAR_LISTENER_PORT": str(_free_port())})
    first = sb.invoke({"action": "hold", "n": n})
    assert first.outcome == "success" and first.response["opened"] >= 64, (first, sidecar_text(sb)[-3000:], sb.function_lines()[-20:])
    results = [sb.invoke({"echo": i}) for i in range(10)]
    assert [r.outcome for r in results] == ["success"] * 10
    for r in results:
        assert_deadline_respected(sb, r)                   # the platform's deliveries got through: /next not held
    shut = sb.shutdown()
    assert shut.extensions[SIDECAR_NAME] == "Exited", sidecar_text(sb)[-2000:]
    assert total(sb, "Invocations") == 11                 # every invocation counted, none lost behind the attacker
    assert_no_traceback(sb)


@pytest.mark.sandbox
def test_a_forged_batch_from_the_function_counts_nothing(sidecar_env):
    sb, _rx = sidecar_env(handler="listener_attack.handler", timeout_s=3.0,
                          env={"SIDECAR_LISTENER_PORT": str(_free_port())})
    results = [sb.invoke({"action": "forge"}) for _ in range(3)]
    assert [r.outcome for r in results] == ["success"] * 3
    assert all(set(r.response["statuses"]) == {"404"} for r in results), results
    shut = sb.shutdown()
    assert shut.extensions[SIDECAR_NAME] == "Exited", sidecar_text(sb)[-2000:]
    assert total(sb, "Invocations") == 3                  # the forged runtimeDone/report were not counted
    assert total(sb, "FunctionErrors") == 0
    assert total(sb, "SidecarPlatformLogsDropped") == 0
    assert total(sb, "SidecarDropped") == 12             # ...but every refused request was
    assert "Forged.Error" not in json.dumps([d for d in _emf(sb)])
    assert_no_traceback(sb)


def _emf(sb: Any) -> List[Dict[str, Any]]:
    from tests.helpers import sidecar_emf

    return sidecar_emf(sb)


