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


# ---- the hand-written wire format against the official classes, byte for byte ----------------------------
def _official_span(trace_id, span_id, parent_id, name, kind, start_ns, end_ns, attrs, error=None,
                   remote_parent=False, extra=(), events=(), links=()) -> bytes:
    msg = Span(trace_id=trace_id.to_bytes(16, "big"), span_id=span_id.to_bytes(8, "big"), name=name, kind=kind,
               start_time_unix_nano=start_ns, end_time_unix_nano=max(start_ns, end_ns),
               attributes=encode.attributes(attrs),
               flags=encode.FLAG_SAMPLED | encode.FLAG_HAS_IS_REMOTE | (encode.FLAG_IS_REMOTE if remote_parent else 0))
    if parent_id:
        msg.parent_span_id = parent_id.to_bytes(8, "big")
    for ev_name, ev_ns, ev_attrs in events:
        msg.events.add(name=ev_name, time_unix_nano=min(max(ev_ns, start_ns), max(start_ns, end_ns)),
                       attributes=encode.attributes(ev_attrs))
    for l_trace, l_span, l_attrs in links:
        msg.links.add(trace_id=l_trace.to_bytes(16, "big"), span_id=l_span.to_bytes(8, "big"),
                      attributes=encode.attributes(l_attrs), flags=encode.FLAG_SAMPLED | encode.FLAG_HAS_IS_REMOTE)
    if error is not None:
        msg.status.code = encode.STATUS_ERROR
        msg.status.message = error
    return msg.SerializeToString() + b"".join(extra)


def _official_log(time_ns, observed_ns, body, severity_number, severity_text, attrs, trace_id=None, span_id=None,
                  sampled=False, extra=()) -> bytes:
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue
    from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

    msg = LogRecord(time_unix_nano=time_ns, observed_time_unix_nano=observed_ns, severity_number=severity_number,
                    body=AnyValue(string_value=body))
    if attrs:
        msg.attributes.extend(encode.attributes(attrs))
    if severity_text:
        msg.severity_text = severity_text
    if trace_id and span_id:
        msg.trace_id = trace_id.to_bytes(16, "big")
        msg.span_id = span_id.to_bytes(8, "big")
        msg.flags = encode.FLAG_SAMPLED if sampled else 0
    return msg.SerializeToString() + b"".join(extra)


nested = st.one_of(values, st.lists(values, max_size=3), st.none())
attr_maps = st.dictionaries(st.text(max_size=12), nested, max_size=6)
u64 = st.integers(0, 2 ** 64 - 1)


@given(trace_id=st.integers(0, 2 ** 128 - 1), span_id=u64, parent=st.one_of(st.none(), u64),
       name=st.text(max_size=20), kind=st.integers(0, 5), start=u64, end=u64, attrs=attr_maps,
       error=st.one_of(st.none(), st.text(max_size=20)), remote=st.booleans(),
       events=st.lists(st.tuples(st.text(max_size=8), u64, attr_maps), max_size=2),
       links=st.lists(st.tuples(st.integers(0, 2 ** 128 - 1), u64, attr_maps), max_size=2))
def test_span_bytes_are_the_official_encoders(trace_id, span_id, parent, name, kind, start, end, attrs, error,
                                              remote, events, links):
    extra = [encode.span_attribute("faas.name", name)]
    mine = encode.span(trace_id, span_id, parent, name, kind, start, end, attrs, error, remote, extra, events, links)
    assert mine == _official_span(trace_id, span_id, parent, name, kind, start, end, attrs, error, remote, extra,
                                  events, links)


@given(time_ns=u64, observed=u64, body=st.text(max_size=30), severity=st.integers(0, 24),
       text=st.one_of(st.none(), st.text(max_size=6)), attrs=attr_maps, trace_id=st.one_of(st.none(), u64),
       span_id=st.one_of(st.none(), u64), sampled=st.booleans())
def test_log_record_bytes_are_the_official_encoders(time_ns, observed, body, severity, text, attrs, trace_id, span_id,
                                                    sampled):
    extra = [encode.log_attribute("log.source", "function"), encode.log_attribute("n", 3)]
    mine = encode.log_record(time_ns, observed, body, severity, text, attrs, trace_id, span_id, sampled, extra)
    assert mine == _official_log(time_ns, observed, body, severity, text, attrs, trace_id, span_id, sampled, extra)


@given(key=st.text(max_size=10), value=nested.filter(lambda v: v is not None))
def test_an_attribute_is_the_official_key_value(key, value):
    from opentelemetry.proto.common.v1.common_pb2 import KeyValue

    assert encode.key_value(key, value) == KeyValue(key=key, value=encode.any_value(value)).SerializeToString()
