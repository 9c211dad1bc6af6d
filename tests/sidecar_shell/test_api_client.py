"""The sidecar's own HTTP/1.1 client for the Lambda APIs: keep-alive, chunked bodies, closed connections."""

from __future__ import annotations

import socket
import threading

import pytest
from otel_sidecar.lifecycle import ApiError, ExtensionsClient


class RawServer:
    """Answers each request on 127.0.0.1 with the next canned response; closes after it when told to."""

    def __init__(self, responses):
        self.responses = list(responses)      # (raw bytes, close_after)
        self.requests = []
        self.connections = 0
        self.lock = threading.Lock()
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(10)
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn):
        conn.settimeout(10)
        with conn:
            rfile = conn.makefile("rb")
            while True:
                head = b""
                while not head.endswith(b"\r\n\r\n"):
                    line = rfile.readline()
                    if not line:
                        return
                    head += line
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                with self.lock:
                    self.requests.append(head + rfile.read(length))
                    raw, close_after = self.responses.pop(0)
                conn.sendall(raw)
                if close_after:
                    return

    def close(self):
        self.sock.close()


@pytest.fixture
def server():
    made = []

    def factory(responses):
        srv = RawServer(responses)
        made.append(srv)
        return srv

    yield factory
    for srv in made:
        srv.close()


def _ok(body: bytes, extra: str = "") -> bytes:
    return (f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n{extra}Content-Length: {len(body)}\r\n\r\n"
            .encode() + body)


def test_register_then_next_over_chunked_and_keep_alive(server):
    event = b'{"eventType":"INVOKE","requestId":"r1","deadlineMs":1}'
    chunked = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + b"%x\r\n" % 10 + event[:10] + b"\r\n"
               + b"%x\r\n" % (len(event) - 10) + event[10:] + b"\r\n0\r\n\r\n")
    srv = server([(_ok(b'{"functionName":"fn"}', "Lambda-Extension-Identifier: abc\r\n"), False),
                  (chunked, False), (_ok(event), False)])
    client = ExtensionsClient(f"127.0.0.1:{srv.port}")
    assert client.register("otel-sidecar", ["INVOKE", "SHUTDOWN"]) == b'{"functionName":"fn"}'   # kept raw
    assert client.next_event()["requestId"] == "r1"
    assert client.next_event()["eventType"] == "INVOKE"
    assert srv.requests[0].startswith(b"POST /2020-01-01/extension/register HTTP/1.1\r\n")
    assert b"Lambda-Extension-Name: otel-sidecar\r\n" in srv.requests[0]
    assert srv.requests[0].endswith(b'{"events":["INVOKE","SHUTDOWN"]}')
    assert b"Lambda-Extension-Identifier: abc\r\n" in srv.requests[1]
    assert srv.connections == 2          # one control connection, one kept-alive /next connection


def test_next_reconnects_when_the_server_closed_the_idle_connection(server):
    event = b'{"eventType":"SHUTDOWN","deadlineMs":1,"shutdownReason":"spindown"}'
    srv = server([(_ok(b'{"eventType":"INVOKE","requestId":"a"}'), True), (_ok(event), False)])
    client = ExtensionsClient(f"127.0.0.1:{srv.port}")
    assert client.next_event()["requestId"] == "a"
    assert client.next_event()["shutdownReason"] == "spindown"
    assert srv.connections == 2


def test_api_errors_carry_the_status_and_body(server):
    body = b'{"errorMessage":"Empty extension name","errorType":"Extension.InvalidExtensionName"}'
    srv = server([(b"HTTP/1.1 403 Forbidden\r\nContent-Length: %d\r\n\r\n" % len(body) + body, False)])
    client = ExtensionsClient(f"127.0.0.1:{srv.port}")
    with pytest.raises(ApiError) as info:
        client.register("", ["INVOKE"])
    assert info.value.status == 403 and "Extension.InvalidExtensionName" in str(info.value)
