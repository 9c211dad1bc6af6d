"""encode.py: requests assembled by framing pre-serialized items are what the official classes read."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span
from otel_sidecar.otlp import encode

RESOURCE = {"service.name": "orders", "faas.max_memory": 134217728, "aws.log.group.names": ("/aws/lambda/orders",)}


def _attrs(kvs) -> dict:
    out = {}
    for kv in kvs:
        v = kv.value
        out[kv.key] = getattr(v, v.WhichOneof("value"))
    return out


def test_a_trace_request_is_resource_scope_and_every_span_in_order():
    env = encode.Envelope("traces", RESOURCE, "otel_sidecar", "0.1.0")
    spans = [encode.span(0xABC, 0x1, 0x2, "orders", encode.KIND_SERVER, 10, 20, {"faas.coldstart": True},
                         "timeout", remote_parent=True),
             encode.span(0xABC, 0x3, 0x1, "responseLatency", encode.KIND_INTERNAL, 11, 12,
                         {"aws.lambda.phase.duration_ms": 1.5}, extra=[encode.span_attribute("faas.name", "orders")])]
    req = ExportTraceServiceRequest.FromString(env.request(spans))
    (rs,) = req.resource_spans
    assert _attrs(rs.resource.attributes)["service.name"] == "orders"
    (ss,) = rs.scope_spans
    assert (ss.scope.name, ss.scope.version) == ("otel_sidecar", "0.1.0")
    server, child = ss.spans
    assert server.trace_id == (0xABC).to_bytes(16, "big") and server.parent_span_id == (2).to_bytes(8, "big")
    assert server.kind == Span.SPAN_KIND_SERVER and (server.start_time_unix_nano, server.end_time_unix_nano) == (10, 20)
    assert server.status.code == server.status.STATUS_CODE_ERROR and server.status.message == "timeout"
    assert server.flags == encode.FLAG_SAMPLED | encode.FLAG_HAS_IS_REMOTE | encode.FLAG_IS_REMOTE
    assert child.parent_span_id == (1).to_bytes(8, "big") and child.flags & encode.FLAG_IS_REMOTE == 0
    assert _attrs(child.attributes) == {"aws.lambda.phase.duration_ms": 1.5, "faas.name": "orders"}


def test_a_log_request_carries_trace_context_and_severity():
    env = encode.Envelope("logs", RESOURCE, "otel_sidecar")
    rec = encode.log_record(5, 6, "boom", 17, "ERROR", {"faas.invocation_id": "r1"}, 0xABC, 0x1, sampled=False,
                            extra=[encode.log_attribute("log.source", "function")])
    bare = encode.log_record(7, 8, "plain", 0, None, {})
    req = ExportLogsServiceRequest.FromString(env.request([rec, bare]))
    first, second = req.resource_logs[0].scope_logs[0].log_records
    assert (first.body.string_value, first.severity_number, first.severity_text) == ("boom", 17, "ERROR")
    assert first.trace_id == (0xABC).to_bytes(16, "big") and first.flags == 0
    assert _attrs(first.attributes) == {"faas.invocation_id": "r1", "log.source": "function"}
    assert second.trace_id == b"" and second.severity_text == ""


def test_an_empty_request_is_still_valid():
    assert ExportTraceServiceRequest.FromString(encode.Envelope("traces", {}, "s").request([])).resource_spans


values = st.one_of(st.booleans(), st.integers(-(2 ** 63), 2 ** 63 - 1), st.floats(allow_nan=False),
                   st.text(max_size=40), st.lists(st.text(max_size=5), max_size=3))


@given(attrs=st.dictionaries(st.text(min_size=1, max_size=20), values, max_size=8),
       n=st.integers(0, 40), name=st.text(max_size=30))
def test_framing_equals_the_official_encoding(attrs, n, name):
    env = encode.Envelope("traces", RESOURCE, "otel_sidecar")
    items = [encode.span(i + 1, i + 1, None, name, encode.KIND_INTERNAL, i, i + 5, attrs) for i in range(n)]
    framed = ExportTraceServiceRequest.FromString(env.request(items))
    official = ExportTraceServiceRequest()
    rs = official.resource_spans.add()
    rs.resource.attributes.extend(encode.attributes(RESOURCE))
    ss = rs.scope_spans.add()
    ss.scope.name = "otel_sidecar"
    for b in items:
        ss.spans.add().MergeFromString(b)
    assert framed == official
    assert framed.SerializeToString() == official.SerializeToString()
