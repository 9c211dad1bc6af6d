"""The local OTLP intake's pure core: parsing, gzip bounds, enrichment, the queue's bound and counts, the parent."""

from __future__ import annotations

import gzip
import json

import pytest
from google.protobuf import json_format
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from otel_sidecar import local_otlp as core
from otel_sidecar.local_otlp import Codec, Intake

ENV = {"AWS_REGION": "eu-west-1", "AWS_LAMBDA_FUNCTION_NAME": "orders", "AWS_LAMBDA_FUNCTION_VERSION": "7",
       "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256", "AWS_LAMBDA_LOG_STREAM_NAME": "2026/12/02/[7]abc"}
PB = "application/x-protobuf"


def trace_request(spans=2, resources=1, attrs=(("service.name", "svc"),)) -> ExportTraceServiceRequest:
    req = ExportTraceServiceRequest()
    for r in range(resources):
        rs = req.resource_spans.add()
        for k, v in attrs:
            rs.resource.attributes.add(key=k).value.string_value = v
        ss = rs.scope_spans.add()
        ss.scope.name = f"scope{r}"
        for i in range(spans):
            s = ss.spans.add(name=f"s{i}", trace_id=bytes.fromhex("5759e988bd862e3fe1be46a994272793"),
                             span_id=(i + 1).to_bytes(8, "big"))
            s.attributes.add(key="i").value.int_value = i
    return req


def warm_intake(**kw) -> Intake:
    intake = Intake(ENV, **kw)
    intake.warm(Codec())
    return intake


def taken(intake: Intake, signal="traces"):
    batch = intake.take(signal, 1 << 30)
    cls = {"traces": ExportTraceServiceRequest, "metrics": ExportMetricsServiceRequest,
           "logs": ExportLogsServiceRequest}[signal]
    return batch, cls.FromString(batch.body)


def attrs_of(resource) -> dict:
    return {kv.key: json_format.MessageToDict(kv.value) for kv in resource.attributes}


# ---- parsing --------------------------------------------------------------------------------------------

def test_protobuf_request_is_queued_as_sent_plus_the_lambda_attributes_it_lacks():
    intake = warm_intake()
    req = trace_request(attrs=(("service.name", "svc"), ("cloud.region", "my-own")))
    reply = intake.receive("traces", req.SerializeToString(), PB)
    assert (reply.status, reply.body) == (200, b"")      # an empty ExportTraceServiceResponse
    batch, out = taken(intake)
    assert batch.records == 2
    rs = out.resource_spans[0]
    a = attrs_of(rs.resource)
    assert a["cloud.region"] == {"stringValue": "my-own"}           # the function's value, not ours
    assert a["service.name"] == {"stringValue": "svc"}
    assert a["faas.name"] == {"stringValue": "orders"} and a["cloud.provider"] == {"stringValue": "aws"}
    assert a["faas.max_memory"] == {"intValue": str(256 * 1024 * 1024)}
    assert a["faas.instance"] == {"stringValue": "2026/12/02/[7]abc"}
    assert list(a)[:2] == ["service.name", "cloud.region"]           # the function's own first, in order
    # the spans and scopes untouched
    assert rs.scope_spans == req.resource_spans[0].scope_spans


def test_a_resource_that_has_every_attribute_is_forwarded_byte_for_byte():
    attrs = tuple((k, "x") for k, _ in core.lambda_resource(ENV))
    req = trace_request(attrs=attrs)
    intake = warm_intake()
    intake.receive("traces", req.SerializeToString(), PB)
    batch, out = taken(intake)
    assert batch.body == req.SerializeToString()


def test_requests_are_merged_into_one_export_keeping_each_resource():
    intake = warm_intake()
    intake.receive("traces", trace_request(resources=2).SerializeToString(), PB)
    intake.receive("traces", trace_request(spans=3).SerializeToString(), PB)
    batch, out = taken(intake)
    assert batch.records == 2 * 2 + 3 and len(out.resource_spans) == 3
    assert [rs.scope_spans[0].scope.name for rs in out.resource_spans] == ["scope0", "scope1", "scope0"]


def test_otlp_json_with_hex_ids_and_string_int64():
    doc = {"resourceSpans": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "j"}}]},
                              "scopeSpans": [{"scope": {"name": "js"}, "spans": [{
                                  "traceId": "5759e988bd862e3fe1be46a994272793", "spanId": "53995c3f42cd8ad8",
                                  "parentSpanId": "", "name": "op", "kind": 2,
                                  "startTimeUnixNano": "1700000000000000000", "endTimeUnixNano": 1700000000000000001,
                                  "unknownField": {"ignored": True}}]}]}]}
    intake = warm_intake()
    reply = intake.receive("traces", json.dumps(doc).encode(), "application/json; charset=utf-8")
    assert (reply.status, reply.content_type, reply.body) == (200, "application/json", b"{}")
    _, out = taken(intake)
    span = out.resource_spans[0].scope_spans[0].spans[0]
    assert span.trace_id.hex() == "5759e988bd862e3fe1be46a994272793" and span.span_id.hex() == "53995c3f42cd8ad8"
    assert span.start_time_unix_nano == 1700000000000000000 and span.end_time_unix_nano == 1700000000000000001


def test_json_with_a_bad_id_is_a_400_status_in_json():
    doc = {"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "not-hex", "name": "x"}]}]}]}
    reply = warm_intake().receive("traces", json.dumps(doc).encode(), "application/json")
    assert reply.status == 400
    status = json.loads(reply.body)
    assert status["code"] == core.RPC_INVALID_ARGUMENT and "traceId" in status["message"]


def test_malformed_protobuf_is_a_400_with_a_google_rpc_status_body():
    from google.rpc.status_pb2 import Status

    reply = warm_intake().receive("traces", b"\x0a\xff\xff\xff\xff\x0f", PB)
    assert reply.status == 400
    status = Status.FromString(reply.body)
    assert status.code == core.RPC_INVALID_ARGUMENT and "invalid protobuf" in status.message


def test_unsupported_content_type_and_encoding_are_415():
    intake = warm_intake()
    assert intake.receive("traces", b"x", "text/plain").status == 415
    assert intake.receive("traces", trace_request().SerializeToString(), PB, "br").status == 415
    assert intake.health()["local_otlp_rejected_415"] == 2


def test_gzip_bodies_are_inflated_and_a_bomb_stops_at_the_limit():
    intake = warm_intake(max_inflated=64 * 1024)
    body = trace_request().SerializeToString()
    assert intake.receive("traces", gzip.compress(body), PB, "gzip").status == 200
    bomb = gzip.compress(b"\0" * (50 * 1024 * 1024))      # 50 MB of zeros in ~50 KB
    reply = intake.receive("traces", bomb, PB, "gzip")
    assert reply.status == 413
    assert intake.health()["local_otlp_received_spans"] == 2


def test_inflate_takes_concatenated_members_and_refuses_truncated_ones():
    assert core.inflate(gzip.compress(b"ab") + gzip.compress(b"cd"), "gzip") == b"abcd"
    with pytest.raises(core.BadRequest):
        core.inflate(gzip.compress(b"abcdef" * 100)[:-10], "gzip")
    with pytest.raises(core.TooLarge):
        core.inflate(gzip.compress(b"x" * 1001), "gzip", limit=1000)
    assert core.inflate(gzip.compress(b"x" * 1000), "gzip", limit=1000) == b"x" * 1000


@settings(max_examples=200, deadline=None)
@given(body=st.binary(max_size=512), kind=st.sampled_from([PB, "application/json"]),
       enc=st.sampled_from(["", "gzip"]), signal=st.sampled_from(["traces", "metrics", "logs"]))
def test_garbage_is_answered_never_raised(body, kind, enc, signal):
    intake = warm_intake()
    reply = intake.receive(signal, body, kind, enc)
    assert reply.status in (200, 400, 413)
    if reply.status == 200:      # it parsed: what is queued is a valid request of the signal
        batch = intake.take(signal, 1 << 20)
        if batch is not None:
            Codec().classes[signal].FromString(batch.body)


@settings(max_examples=100, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8),
                    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(
                        st.sampled_from(["resourceSpans", "scopeSpans", "spans", "traceId", "name", "x"]), kids,
                        max_size=3), max_leaves=20))
def test_arbitrary_json_documents_are_answered_never_raised(doc):
    reply = warm_intake().receive("traces", json.dumps(doc).encode(), "application/json")
    assert reply.status in (200, 400)
    json.loads(reply.body)


# ---- counting -------------------------------------------------------------------------------------------

def test_metric_data_points_and_log_records_are_counted():
    m = ExportMetricsServiceRequest()
    sm = m.resource_metrics.add().scope_metrics.add()
    s = sm.metrics.add(name="a").sum
    s.data_points.add(as_int=1)
    s.data_points.add(as_int=2)
    sm.metrics.add(name="b").histogram.data_points.add(count=1)
    lg = ExportLogsServiceRequest()
    lg.resource_logs.add().scope_logs.add().log_records.add().body.string_value = "hello"
    intake = warm_intake()
    intake.receive("metrics", m.SerializeToString(), PB)
    intake.receive("logs", lg.SerializeToString(), PB)
    h = intake.health()
    assert (h["local_otlp_received_data_points"], h["local_otlp_received_log_records"]) == (3, 1)
    assert h["local_otlp_received"] == 4


def test_the_queue_is_bounded_in_bytes_dropping_the_oldest_and_counting():
    one = trace_request(spans=10).SerializeToString()
    probe = warm_intake()
    probe.receive("traces", one, PB)
    queued = probe.health()["local_otlp_queued_bytes"]       # one request as queued (with the Lambda attributes)
    intake = warm_intake(max_bytes=3 * queued + queued // 2)
    for _ in range(10):
        assert intake.receive("traces", one, PB).status == 200
    h = intake.health()
    assert h["local_otlp_queued_bytes"] <= intake.max_bytes
    assert h["local_otlp_received_spans"] == 100
    assert h["local_otlp_dropped_spans_budget"] == 70 and h["local_otlp_requests_shed"] == 7
    batch, _ = taken(intake)
    assert batch.records == 30                      # the newest three


def test_a_request_larger_than_the_bound_gets_a_partial_success_counted():
    big = trace_request(spans=50)
    intake = warm_intake(max_bytes=200)
    reply = intake.receive("traces", big.SerializeToString(), PB)
    assert reply.status == 200
    resp = ExportTraceServiceResponse.FromString(reply.body)
    assert resp.partial_success.rejected_spans == 50 and "memory budget" in resp.partial_success.error_message
    assert intake.health()["local_otlp_dropped_spans_budget"] == 50
    doc = json_format.MessageToDict(big)
    for span in doc["resourceSpans"][0]["scopeSpans"][0]["spans"]:
        span["traceId"], span["spanId"] = "5759e988bd862e3fe1be46a994272793", "53995c3f42cd8ad8"
    json_reply = intake.receive("traces", json.dumps(doc).encode(), "application/json")
    assert json.loads(json_reply.body)["partialSuccess"]["rejectedSpans"] == "50"


def test_before_warm_up_requests_are_queued_unparsed_and_checked_at_warm_up():
    intake = Intake(ENV)
    assert intake.receive("traces", trace_request().SerializeToString(), PB).status == 200
    assert intake.receive("traces", b"\x0a\xff\xff", PB).status == 200     # cannot be checked yet
    assert intake.take("traces", 1 << 20) is None                         # nothing leaves unchecked
    intake.warm(Codec())
    h = intake.health()
    assert h["local_otlp_received_spans"] == 2 and h["local_otlp_dropped_spans_malformed"] == 1
    batch, out = taken(intake)
    assert batch.records == 2 and attrs_of(out.resource_spans[0].resource)["faas.name"]


def test_refused_intake_answers_partial_success_and_counts():
    intake = warm_intake()
    intake.receive("traces", trace_request().SerializeToString(), PB)
    intake.refuse("no OTLP export")
    reply = intake.receive("traces", trace_request(spans=4).SerializeToString(), PB)
    assert ExportTraceServiceResponse.FromString(reply.body).partial_success.rejected_spans == 4
    assert intake.health()["local_otlp_dropped_spans_no_export"] == 2 + 4
    assert intake.pending() == 0


def test_our_own_exporter_posting_here_is_dropped_once_warned():
    intake = warm_intake()
    calls = []
    intake.on_loop = lambda: calls.append(1)
    reply = intake.receive("traces", trace_request().SerializeToString(), PB, user_agent="otel-sidecar/0.1")
    assert reply.status == 200 and intake.pending() == 0 and calls == [1]


# ---- forwarding -----------------------------------------------------------------------------------------

def test_forward_sends_merged_requests_and_keeps_them_on_retry():
    intake = warm_intake()
    for _ in range(3):
        intake.receive("traces", trace_request().SerializeToString(), PB)
    outcomes = iter(["retry"])
    sent = []

    def send(body, n):
        sent.append(n)
        return next(outcomes, "ok")

    assert core.forward(intake, "traces", send, lambda: True, 1 << 20) is False
    assert intake.pending("traces") == 3                 # put back whole
    assert core.forward(intake, "traces", send, lambda: True, 1 << 20) is True
    assert sent == [6, 6] and intake.health()["local_otlp_forwarded_spans"] == 6


def test_forward_splits_on_413_and_drops_a_single_request_the_backend_will_not_take():
    intake = warm_intake()
    for _ in range(4):
        intake.receive("traces", trace_request().SerializeToString(), PB)
    sizes = []

    def send(body, n):
        sizes.append(n)
        return "split" if n > 2 else "ok"

    assert core.forward(intake, "traces", send, lambda: True, 1 << 20)
    assert sizes[0] == 8 and set(sizes[1:]) <= {8, 4, 2} and intake.health()["local_otlp_forwarded_spans"] == 8
    intake.receive("traces", trace_request().SerializeToString(), PB)
    assert core.forward(intake, "traces", lambda b, n: "split", lambda: True, 1 << 20)
    assert "local_otlp_dropped_spans_split" not in intake.health()
    assert intake.health()["local_otlp_dropped_spans_rejected"] == 2


def test_drop_all_counts_what_is_left_at_shutdown():
    intake = warm_intake()
    intake.receive("traces", trace_request(spans=5).SerializeToString(), PB)
    assert intake.drop_all("shutdown") == 5
    assert intake.health()["local_otlp_dropped_spans_shutdown"] == 5 and intake.pending() == 0


# ---- resource, configuration, trace parent --------------------------------------------------------------

def test_lambda_resource_from_the_environment():
    attrs = dict(core.lambda_resource(ENV))
    assert attrs == {"cloud.provider": "aws", "cloud.platform": "aws_lambda", "cloud.region": "eu-west-1",
                     "faas.name": "orders", "faas.version": "7", "faas.instance": "2026/12/02/[7]abc",
                     "faas.max_memory": 256 * 1024 * 1024, "aws.log.group.names": ("/aws/lambda/orders",)}


def test_appended_attributes_decode_as_the_sdk_would_write_them():
    kv = KeyValue.FromString(core.key_value("faas.max_memory", 5))
    assert kv.key == "faas.max_memory" and kv.value.int_value == 5
    kv = KeyValue.FromString(core.key_value("aws.log.group.names", ("/a", "/b")))
    assert [v.string_value for v in kv.value.array_value.values] == ["/a", "/b"]
    assert KeyValue.FromString(core.key_value("b", True)).value.bool_value is True
    assert KeyValue.FromString(core.key_value("d", 1.5)).value.double_value == 1.5


@pytest.mark.parametrize("env, enabled, where, warned", [
    ({}, False, ("127.0.0.1", 4318), 0),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "https://backend"}, True, ("127.0.0.1", 4318), 0),
    ({"SIDECAR_LOCAL_OTLP": "on", "SIDECAR_LOCAL_OTLP_ENDPOINT": "http://localhost:14318/"}, True,
     ("127.0.0.1", 14318), 0),
    ({"SIDECAR_LOCAL_OTLP": "on", "SIDECAR_LOCAL_OTLP_ENDPOINT": "[::1]:4319"}, True, ("::1", 4319), 0),
    ({"SIDECAR_LOCAL_OTLP": "on", "SIDECAR_LOCAL_OTLP_ENDPOINT": "0.0.0.0:4318"}, True, ("127.0.0.1", 4318), 1),
    ({"SIDECAR_LOCAL_OTLP": "on", "SIDECAR_LOCAL_OTLP_ENDPOINT": "127.0.0.1:99999"}, True, ("127.0.0.1", 4318), 1),
    ({"SIDECAR_LOCAL_OTLP": "off", "OTEL_EXPORTER_OTLP_ENDPOINT": "https://backend"}, False, ("127.0.0.1", 4318), 0),
    ({"SIDECAR_LOCAL_OTLP": "maybe", "OTEL_EXPORTER_OTLP_ENDPOINT": "https://b"}, True, ("127.0.0.1", 4318), 1),
])
def test_configuration(env, enabled, where, warned):
    cfg, warnings = core.load_config(env)
    assert (cfg.enabled, (cfg.host, cfg.port), len(warnings)) == (enabled, where, warned)
    for w in warnings:
        var, value = w.split("=", 1)[0], w.split("=", 1)[1].split(" ", 1)[0]
        assert var in env and repr(env[var]) == value and "instead" in w


def test_a_bad_span_parent_is_one_warning_and_none():
    cfg, warnings = core.load_config({"SIDECAR_SPAN_PARENT": "segment"})
    assert cfg.span_parent == "none" and warnings == [
        "SIDECAR_SPAN_PARENT='segment' is invalid (expected none or xray); using 'none' instead"]


HEADER = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"


def test_invocation_parent_keeps_the_xray_trace_and_chooses_the_parent():
    assert core.invocation_parent(HEADER, "none") == ("5759e988bd862e3fe1be46a994272793", None)
    assert core.invocation_parent(HEADER, "xray") == ("5759e988bd862e3fe1be46a994272793", "53995c3f42cd8ad8")
    assert core.invocation_parent("Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=0", "xray") == (
        "5759e988bd862e3fe1be46a994272793", None)


@given(st.text(max_size=120))
def test_invocation_parent_never_raises_and_agrees_with_traceids(header):
    from otel_sidecar.otlp.traceids import parse_xray

    got = core.invocation_parent(header, "xray")
    xr = parse_xray(header)
    assert (got is None) == (xr is None)
    if xr is not None:
        assert got == (xr.trace_id, xr.parent_id)
