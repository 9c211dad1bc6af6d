"""The embedded OTLP receiver: encodings, storage, flat views and fault modes."""

from __future__ import annotations

import gzip
import http.client
import json
import socket
import sqlite3
import time

import pytest
from lambda_sandbox.otlp_receiver import OtlpReceiver, encode_json
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.metrics.v1.metrics_pb2 import AGGREGATION_TEMPORALITY_DELTA


def trace_request(name: str = "op") -> ExportTraceServiceRequest:
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.append(KeyValue(key="service.name", value=AnyValue(string_value="svc")))
    span = rs.scope_spans.add().spans.add()
    span.trace_id = bytes.fromhex("5759e988bd862e3fe1be46a994272793")
    span.span_id = bytes.fromhex("53995c3f42cd8ad8")
    span.parent_span_id = bytes.fromhex("1111111111111111")
    span.name, span.kind = name, 2
    span.start_time_unix_nano, span.end_time_unix_nano = 1_000, 2_000
    span.attributes.append(KeyValue(key="faas.coldstart", value=AnyValue(bool_value=True)))
    span.status.code = 2
    return req


def post(rx: OtlpReceiver, path: str, body: bytes, ctype: str = "application/x-protobuf",
         encoding: str = "", timeout: float = 5.0):
    conn = http.client.HTTPConnection("127.0.0.1", rx.port, timeout=timeout)
    headers = {"Content-Type": ctype}
    if encoding:
        headers["Content-Encoding"] = encoding
    try:
        conn.request("POST", path, body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        conn.close()


def test_protobuf_gzip_and_json_spans_are_decoded_alike(tmp_path):
    store = tmp_path / "otlp.jsonl"
    with OtlpReceiver(store_path=store) as rx:
        assert post(rx, "/v1/traces", trace_request("a").SerializeToString())[0] == 200
        assert post(rx, "/v1/traces", gzip.compress(trace_request("b").SerializeToString()), encoding="gzip")[0] == 200
        status, headers, body = post(rx, "/v1/traces", encode_json(trace_request("c")), "application/json")
        assert status == 200 and headers["Content-Type"] == "application/json"
        spans = rx.spans()
        assert [s["name"] for s in spans] == ["a", "b", "c"]
        for s in spans:
            assert s["trace_id"] == "5759e988bd862e3fe1be46a994272793" and s["span_id"] == "53995c3f42cd8ad8"
            assert s["parent_span_id"] == "1111111111111111" and s["kind"] == "SERVER"
            assert s["status"]["code"] == "ERROR" and s["attributes"] == {"faas.coldstart": True}
            assert s["resource"] == {"service.name": "svc"} and (s["start_ns"], s["end_ns"]) == (1000, 2000)
        assert rx.requests["/v1/traces"]["count"] == 3
    lines = [json.loads(line) for line in store.read_text().splitlines()]
    assert len(lines) == 3
    assert lines[0]["body"]["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["traceId"] == \
        "5759e988bd862e3fe1be46a994272793"


def test_metrics_and_logs_are_flattened_and_stored_in_sqlite(tmp_path):
    mreq = ExportMetricsServiceRequest()
    m = mreq.resource_metrics.add().scope_metrics.add().metrics.add()
    m.name, m.unit = "faas.invocations", "{invocation}"
    m.sum.aggregation_temporality, m.sum.is_monotonic = AGGREGATION_TEMPORALITY_DELTA, True
    m.sum.data_points.add(as_double=3.0)
    lreq = ExportLogsServiceRequest()
    rec = lreq.resource_logs.add().scope_logs.add().log_records.add()
    rec.body.string_value, rec.severity_text, rec.severity_number = "hello", "INFO", 9
    rec.trace_id = bytes(range(16))
    with OtlpReceiver(store_path=tmp_path / "otlp.db") as rx:
        assert post(rx, "/v1/metrics", mreq.SerializeToString())[0] == 200
        assert post(rx, "/v1/logs", lreq.SerializeToString())[0] == 200
        (point,) = rx.metrics()
        assert (point["name"], point["unit"], point["temporality"], point["value"]) == \
            ("faas.invocations", "{invocation}", "delta", 3.0)
        (logrec,) = rx.logs()
        assert (logrec["body"], logrec["severity_text"], logrec["trace_id"]) == ("hello", "INFO", bytes(range(16)).hex())
    rows = sqlite3.connect(tmp_path / "otlp.db").execute("SELECT path FROM requests ORDER BY time").fetchall()
    assert rows == [("/v1/metrics",), ("/v1/logs",)]


def test_bad_requests_are_answered_not_stored():
    with OtlpReceiver() as rx:
        assert post(rx, "/v1/traces", b"\xff\xfe not protobuf")[0] == 400
        assert post(rx, "/v1/nothing", b"")[0] == 404
        assert post(rx, "/v1/traces", b"not gzip", encoding="gzip")[0] == 400
        assert rx.spans() == [] and rx.requests["/v1/traces"]["count"] == 0


def test_status_fault_with_retry_after_for_a_number_of_requests():
    with OtlpReceiver() as rx:
        rx.set_fault("status", status=429, retry_after=2, times=1)
        status, headers, body = post(rx, "/v1/traces", trace_request().SerializeToString())
        assert status == 429 and headers["Retry-After"] == "2"
        assert post(rx, "/v1/traces", trace_request().SerializeToString())[0] == 200
        assert rx.fault is None and len(rx.spans()) == 1


def test_partial_success_fault():
    with OtlpReceiver(fault="partial:1") as rx:
        status, _, body = post(rx, "/v1/traces", trace_request().SerializeToString())
        resp = ExportTraceServiceResponse.FromString(body)
        assert status == 200 and resp.partial_success.rejected_spans == 1


def test_refuse_closes_the_port_and_reopens_it():
    with OtlpReceiver() as rx:
        port = rx.port
        rx.set_fault("refuse")
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
        rx.clear_fault()
        assert rx.port == port
        assert post(rx, "/v1/traces", trace_request().SerializeToString())[0] == 200


def test_stall_holds_the_request_until_stop_and_slow_delays():
    rx = OtlpReceiver(fault="stall").start()
    try:
        with pytest.raises(TimeoutError):
            post(rx, "/v1/traces", trace_request().SerializeToString(), timeout=0.3)
        rx.set_fault("slow", delay_ms=150)
        t0 = time.monotonic()
        assert post(rx, "/v1/traces", trace_request().SerializeToString())[0] == 200
        assert time.monotonic() - t0 >= 0.15
    finally:
        t0 = time.monotonic()
        rx.stop()
    assert time.monotonic() - t0 < 5


def test_wait_for_returns_the_predicate_value_or_falsy_on_timeout():
    with OtlpReceiver() as rx:
        assert rx.wait_for(lambda r: r.spans(), timeout=0.1) == []
        post(rx, "/v1/traces", trace_request().SerializeToString())
        assert len(rx.wait_for(lambda r: r.spans(), timeout=2)) == 1
        assert rx.summary()["spans"] == 1


def test_standalone_cli_prints_each_request_and_a_summary():
    import signal
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-m", "lambda_sandbox.otlp_receiver", "--port", "0"],
                            stdout=subprocess.PIPE, text=True)
    try:
        first = proc.stdout.readline()
        assert first.startswith("OTLP receiver listening at http://127.0.0.1:")
        port = int(first.rsplit(":", 1)[1])
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("POST", "/v1/traces", body=trace_request().SerializeToString(),
                     headers={"Content-Type": "application/x-protobuf"})
        assert conn.getresponse().status == 200
        conn.close()
        assert proc.stdout.readline().startswith("/v1/traces 200")
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=10)
        assert json.loads(out.strip().splitlines()[-1])["spans"] == 1
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)


def test_refuse_also_resets_connections_kept_alive_from_before():
    with OtlpReceiver() as rx:
        conn = http.client.HTTPConnection("127.0.0.1", rx.port, timeout=5)
        body = trace_request().SerializeToString()
        conn.request("POST", "/v1/traces", body=body, headers={"Content-Type": "application/x-protobuf"})
        first = conn.getresponse()
        first.read()
        assert first.status == 200 and len(rx.spans()) == 1     # the kept-alive connection delivered a span
        rx.set_fault("refuse")
        with pytest.raises((ConnectionError, http.client.HTTPException)):
            conn.request("POST", "/v1/traces", body=body, headers={"Content-Type": "application/x-protobuf"})
            conn.getresponse()
        conn.close()
        assert len(rx.spans()) == 1


def test_memory_is_bounded_by_max_requests():
    with OtlpReceiver(max_requests=2) as rx:
        for name in ("a", "b", "c"):
            assert post(rx, "/v1/traces", trace_request(name).SerializeToString())[0] == 200
        assert [s["name"] for s in rx.spans()] == ["b", "c"] and rx.summary()["forgotten"] == 1


def test_chunked_request_bodies_are_read():
    with OtlpReceiver() as rx:
        body = trace_request("chunked").SerializeToString()
        conn = http.client.HTTPConnection("127.0.0.1", rx.port, timeout=5)
        conn.request("POST", "/v1/traces", body=iter([body[:10], body[10:]]),
                     headers={"Content-Type": "application/x-protobuf"}, encode_chunked=True)
        assert conn.getresponse().status == 200
        conn.close()
        assert [s["name"] for s in rx.spans()] == ["chunked"]


def test_per_path_status_refuses_one_signal_and_serves_the_others():
    with OtlpReceiver() as rx:
        rx.set_path_status("/v1/metrics", 405)
        assert post(rx, "/v1/metrics", ExportMetricsServiceRequest().SerializeToString())[0] == 405
        assert post(rx, "/v1/logs", ExportLogsServiceRequest().SerializeToString())[0] == 200
        assert [(r["path"], r["status"]) for r in rx.request_log] == [("/v1/metrics", 405), ("/v1/logs", 200)]
        assert rx.requests["/v1/metrics"]["count"] == 0                    # refused: nothing stored
        rx.set_path_status("/v1/metrics", None)
        assert post(rx, "/v1/metrics", ExportMetricsServiceRequest().SerializeToString())[0] == 200
        with pytest.raises(ValueError, match="/v1/nothing"):
            rx.set_path_status("/v1/nothing", 405)
