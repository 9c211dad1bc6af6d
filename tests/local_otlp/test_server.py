"""The local endpoint's HTTP shell on loopback: answers, refusals, bounds against slow or hostile clients."""

from __future__ import annotations

import http.client
import logging
import socket

import pytest
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from otel_sidecar import local_otlp_server as server_mod
from otel_sidecar.local_otlp import Codec, Intake
from otel_sidecar.local_otlp_server import LocalOtlpServer, start

from tests.local_otlp.conftest import free_port

PB = {"Content-Type": "application/x-protobuf"}


def body(spans=2) -> bytes:
    req = ExportTraceServiceRequest()
    ss = req.resource_spans.add().scope_spans.add()
    for i in range(spans):
        ss.spans.add(name=f"s{i}", trace_id=b"\1" * 16, span_id=(i + 1).to_bytes(8, "big"))
    return req.SerializeToString()


@pytest.fixture
def server():
    intake = Intake({"AWS_LAMBDA_FUNCTION_NAME": "fn"})
    intake.warm(Codec())
    srv = LocalOtlpServer(intake)
    srv.bind("127.0.0.1", 0)
    yield srv
    srv.close()


def post(srv, path="/v1/traces", data=b"", headers=PB, method="POST"):
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=5)
    try:
        conn.request(method, path, body=data, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.getheader("Content-Type"), resp.read()
    finally:
        conn.close()


def test_a_valid_export_is_answered_with_success_and_queued(server):
    assert post(server, data=body()) == (200, "application/x-protobuf", b"")
    assert server.intake.pending("traces") == 1


def test_keep_alive_serves_several_requests_on_one_connection(server):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    for _ in range(3):
        conn.request("POST", "/v1/traces", body=body(), headers=PB)
        assert conn.getresponse().read() == b""
    conn.close()
    assert server.intake.health()["local_otlp_received_spans"] == 6


def test_malformed_is_400_with_a_status_body(server):
    status, ctype, raw = post(server, data=b"\x0a\x05abc")
    assert (status, ctype) == (400, "application/x-protobuf")
    assert Status.FromString(raw).code == 3


@pytest.mark.parametrize("path, method, headers, expect", [
    ("/v1/nope", "POST", PB, 404),
    ("/v1/traces", "GET", PB, 405),
    ("/v1/traces", "POST", {"Content-Type": "text/plain"}, 415),
])
def test_refusals(server, path, method, headers, expect):
    status, _, raw = post(server, path=path, data=b"" if method == "GET" else body(), headers=headers, method=method)
    assert status == expect
    assert Status.FromString(raw).message


def test_a_body_over_the_limit_is_refused_unread(server):
    s = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    s.sendall(b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\n"
              b"Content-Length: 999999999\r\n\r\n")
    assert s.recv(4096).startswith(b"HTTP/1.1 413 ")
    s.close()


def test_chunked_bodies_are_read_and_bad_chunks_refused(server):
    raw = body()
    s = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    s.sendall(b"POST /v1/traces HTTP/1.1\r\nContent-Type: application/x-protobuf\r\nTransfer-Encoding: chunked\r\n"
              b"\r\n" + f"{len(raw):x}\r\n".encode() + raw + b"\r\n0\r\n\r\n")
    assert s.recv(4096).startswith(b"HTTP/1.1 200 ")
    s.sendall(b"POST /v1/traces HTTP/1.1\r\nContent-Type: application/x-protobuf\r\nTransfer-Encoding: chunked\r\n"
              b"\r\n-5\r\n")
    assert s.recv(4096).startswith(b"HTTP/1.1 400 ")
    s.close()


def test_slowloris_headers_are_cut_at_the_deadline(server, monkeypatch):
    monkeypatch.setattr(server_mod, "HEADER_TIMEOUT_S", 0.3)
    s = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    s.sendall(b"POST /v1/traces HTTP/1.1\r\nX-Slow: ")      # and never more
    assert s.recv(4096) == b""                                # closed by the server, not by our timeout
    s.close()
    assert server.health()["local_otlp_http_deadline_closed"] == 1


def test_idle_connections_beyond_the_slots_are_evicted_and_a_new_client_is_served(server):
    idle = [socket.create_connection(("127.0.0.1", server.port), timeout=5)
            for _ in range(server_mod.MAX_CONNECTIONS + 5)]
    try:
        assert post(server, data=body())[0] == 200
        assert server.health()["local_otlp_http_evicted"] >= 5
        assert server.health()["local_otlp_connections"] <= server_mod.MAX_CONNECTIONS
    finally:
        for s in idle:
            s.close()


def test_a_port_in_use_is_one_warning_and_the_feature_off(caplog):
    port = free_port()
    taken = socket.socket()
    taken.bind(("127.0.0.1", port))
    taken.listen(1)
    log = logging.getLogger("test.local_otlp")
    try:
        with caplog.at_level(logging.WARNING, logger="test.local_otlp"):
            srv = start({"SIDECAR_LOCAL_OTLP": "on", "SIDECAR_LOCAL_OTLP_ENDPOINT": f"127.0.0.1:{port}"}, log)
    finally:
        taken.close()
    assert srv is None
    assert len(caplog.records) == 1 and f"127.0.0.1:{port} is not available" in caplog.records[0].getMessage()


def test_start_listens_when_configured_and_not_otherwise():
    port = free_port()
    srv = start({"SIDECAR_LOCAL_OTLP": "on", "SIDECAR_LOCAL_OTLP_ENDPOINT": f"127.0.0.1:{port}"})
    try:
        assert srv is not None and srv.port == port
        # before the worker loads protobuf, a request is taken (queued unparsed) and answered at once
        assert post(srv, data=body()) == (200, "application/x-protobuf", b"")
    finally:
        srv.close()
    assert start({}) is None      # auto without an OTLP export configured
