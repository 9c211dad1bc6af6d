"""OtlpSink against the embedded receiver, with signals built by hand."""

from __future__ import annotations

import socket
import time

import pytest
from otel_sidecar.events import TraceContext
from otel_sidecar.otlp.sink import OtlpSink

from tests.otlp._signals import ARN, init, invocation, log_line, shutdown
from tests.otlp.conftest import soon

SLACK = 0.15          # scheduling slack for deadline checks on a shared 2-core machine
PHASES = {"responseLatency", "responseDuration", "runtimeOverhead", "extensionOverhead"}
ROOT = "1-5759e988-bd862e3fe1be46a994272793"


def by_name(spans, name):
    return [s for s in spans if s["name"] == name]


def test_one_server_span_per_invocation_with_faas_and_cloud_attributes(make_sink, receiver):
    sink = make_sink()
    start = time.time() - 5
    sink.accept([invocation("req-1", start=start, cold_start=True)])
    sink.flush(soon())
    spans = receiver.spans()
    (inv,) = by_name(spans, "my-function")
    assert inv["kind"] == "SERVER" and inv["status"]["code"] == "UNSET"
    a = inv["attributes"]
    assert a["faas.invocation_id"] == "req-1" and a["faas.coldstart"] is True
    assert (a["faas.name"], a["faas.version"], a["faas.instance"]) == ("my-function", "7", "2026/11/22/[7]abcdef")
    assert a["faas.max_memory"] == 256 * 1024 * 1024
    assert (a["cloud.provider"], a["cloud.platform"], a["cloud.region"]) == ("aws", "aws_lambda", "us-east-1")
    assert a["cloud.account.id"] == "123456789012" and a["aws.lambda.invoked_arn"] == ARN
    assert inv["start_ns"] == int(round(start * 1e9))
    assert inv["end_ns"] - inv["start_ns"] == pytest.approx(47.5e6, abs=1e3)
    assert inv["resource"]["service.name"] == "my-function" and inv["resource"]["cloud.region"] == "us-east-1"


def test_phase_child_spans_have_real_start_and_duration(make_sink, receiver):
    sink = make_sink()
    start = time.time() - 5
    sink.accept([invocation("req-1", start=start)])
    sink.flush(soon())
    spans = receiver.spans()
    (inv,) = by_name(spans, "my-function")
    children = {s["name"]: s for s in spans if s["parent_span_id"] == inv["span_id"]}
    assert set(children) == PHASES
    rl = children["responseLatency"]
    assert rl["start_ns"] == int(round((start + 0.001) * 1e9))
    assert rl["end_ns"] - rl["start_ns"] == pytest.approx(40e6, abs=1e3)
    assert all(c["trace_id"] == inv["trace_id"] for c in children.values())


@pytest.mark.parametrize("kwargs, error_type", [
    ({"status": "error", "error_type": "Runtime.ExitError"}, "Runtime.ExitError"),
    ({"status": "timeout", "timeout": True}, "timeout"),
    ({"status": "error", "error_type": "Runtime.OutOfMemory", "oom": True}, "Runtime.OutOfMemory"),
    ({"status": "success", "function_error": True}, "FunctionError"),
])
def test_errors_timeouts_and_oom_set_error_status_and_type(make_sink, receiver, kwargs, error_type):
    sink = make_sink()
    sink.accept([invocation("req-e", **kwargs)])
    sink.flush(soon())
    (inv,) = by_name(receiver.spans(), "my-function")
    assert inv["status"]["code"] == "ERROR"
    assert inv["attributes"]["error.type"] == error_type


def test_init_span_is_a_linked_sibling_of_the_first_invocation_it_served(make_sink, receiver):
    sink = make_sink()
    i = init(first="req-1")
    sink.accept([i])
    sink.flush(soon())
    assert by_name(receiver.spans(), "init my-function") == []      # held until its invocation is known
    sink.accept([invocation("req-1", cold_start=True, init_signal=i), invocation("req-2")])
    sink.flush(soon())
    spans = receiver.spans()
    (init_span,) = by_name(spans, "init my-function")
    first = next(s for s in spans if s["attributes"].get("faas.invocation_id") == "req-1" and s["kind"] == "SERVER")
    assert init_span["parent_span_id"] == first["parent_span_id"] and init_span["trace_id"] == first["trace_id"]
    assert [ln["span_id"] for ln in first["links"]] == [init_span["span_id"]]
    assert init_span["attributes"]["faas.coldstart"] is True
    assert init_span["end_ns"] - init_span["start_ns"] == pytest.approx(250e6, abs=1e3)


def test_unused_and_failed_inits_are_exported_at_shutdown(make_sink, receiver):
    sink = make_sink()
    sink.accept([init(first=None, kind="proactive", status="error")])
    sink.shutdown(soon())
    (span,) = by_name(receiver.spans(), "init my-function")
    assert span["parent_span_id"] is None and span["status"]["code"] == "ERROR"
    assert span["attributes"]["aws.lambda.init.kind"] == "proactive"


def test_trace_join_from_the_platform_tracing_header(make_sink, receiver):
    sink = make_sink(SIDECAR_SPAN_PARENT="xray")
    header = f"Root={ROOT};Parent=53995c3f42cd8ad8;Sampled=1"
    tc = TraceContext(value=header, span_id="aaaaaaaaaaaaaaaa")
    sink.accept([log_line("in handler", trace=tc), invocation("req-1", trace=tc)])
    sink.flush(soon())
    (inv,) = by_name(receiver.spans(), "my-function")
    assert inv["trace_id"] == "5759e988bd862e3fe1be46a994272793"
    assert inv["parent_span_id"] == "53995c3f42cd8ad8"        # the Lambda segment
    assert inv["span_id"] == "aaaaaaaaaaaaaaaa"               # what the function sees as its Parent
    (rec,) = receiver.logs()
    assert (rec["trace_id"], rec["span_id"]) == (inv["trace_id"], inv["span_id"])


def test_by_default_the_invocation_is_a_root_span_of_the_xray_trace(make_sink, receiver):
    sink = make_sink()
    tc = TraceContext(value=f"Root={ROOT};Parent=53995c3f42cd8ad8;Sampled=1", span_id="aaaaaaaaaaaaaaaa")
    sink.accept([invocation("req-1", trace=tc)])
    sink.flush(soon())
    (inv,) = by_name(receiver.spans(), "my-function")
    assert (inv["trace_id"], inv["span_id"], inv["parent_span_id"]) == (
        "5759e988bd862e3fe1be46a994272793", "aaaaaaaaaaaaaaaa", None)   # SIDECAR_SPAN_PARENT=none


def test_invoke_event_header_is_the_fallback_and_sampled_0_exports_no_span_under_parent_sampling(make_sink, receiver):
    sink = make_sink(SIDECAR_SPAN_PARENT="xray", SIDECAR_OTLP_SAMPLING="parent")
    sink.accept([invocation("req-1", invoke_tracing_value=f"Root={ROOT};Parent=1234567890abcdef;Sampled=1"),
                 log_line("x", request_id="req-2", invoke_tracing_value=f"Root={ROOT};Parent=1234567890abcdef;Sampled=0"),
                 invocation("req-2", invoke_tracing_value=f"Root={ROOT};Parent=1234567890abcdef;Sampled=0")])
    sink.flush(soon())
    (inv,) = by_name(receiver.spans(), "my-function")
    assert inv["attributes"]["faas.invocation_id"] == "req-1" and inv["parent_span_id"] == "1234567890abcdef"
    (rec,) = receiver.logs()
    assert rec["trace_id"] == "5759e988bd862e3fe1be46a994272793" and rec["flags"] & 1 == 0
    assert sink.health()["otlp_spans_unsampled"] == 5


def test_without_tracing_each_invocation_gets_a_fresh_trace(make_sink, receiver):
    sink = make_sink()
    sink.accept([log_line("a", request_id="r1"), invocation("r1"), invocation("r2")])
    sink.flush(soon())
    invs = by_name(receiver.spans(), "my-function")
    assert len({s["trace_id"] for s in invs}) == 2 and all(s["parent_span_id"] is None for s in invs)
    (rec,) = receiver.logs()
    r1 = next(s for s in invs if s["attributes"]["faas.invocation_id"] == "r1")
    assert (rec["trace_id"], rec["span_id"]) == (r1["trace_id"], r1["span_id"])


def test_metrics_use_catalog_names_units_and_delta_temporality(make_sink, receiver):
    from otel_sidecar.catalog import METRICS

    sink = make_sink()
    sink.accept([init(), invocation("r1", cold_start=True), invocation("r2", status="timeout", timeout=True),
                 shutdown("spindown")])
    sink.flush(soon())
    points = receiver.metrics()
    names = {p["name"]: p for p in points}
    units = {m.otlp_name: m.otlp_unit for m in METRICS}
    assert set(names) <= set(units)                            # nothing outside the catalog (no SDK self-metrics)
    for name in ("faas.invocations", "faas.errors", "faas.timeouts", "faas.coldstarts", "faas.init_duration",
                 "faas.invoke_duration", "faas.mem_usage", "aws.lambda.billed_duration", "aws.lambda.shutdowns"):
        assert name in names, name
        assert names[name]["unit"] == units[name]
    # faas.invocations counts successful invocations, faas.errors the others (the semantic conventions)
    assert names["faas.invocations"]["value"] == 1 and names["faas.invocations"]["temporality"] == "delta"
    assert names["faas.errors"]["value"] == 1 and names["faas.timeouts"]["value"] == 1
    assert names["faas.invoke_duration"]["count"] == 2 and names["faas.invoke_duration"]["sum"] == pytest.approx(0.089)
    assert names["faas.mem_usage"]["sum"] == 2 * 64 * 1024 * 1024
    assert names["aws.lambda.shutdowns"]["attributes"] == {"reason": "spindown"}
    # a second flush sends only what happened since (delta)
    sink.accept([invocation("r3")])
    sink.flush(soon())
    inv_points = [p for p in receiver.metrics() if p["name"] == "faas.invocations"]
    assert [p["value"] for p in inv_points] == [1, 1]


def test_cumulative_preference_is_honoured(make_sink, receiver):
    sink = make_sink(OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE="cumulative")
    sink.accept([invocation("r1")])
    sink.flush(soon())
    sink.accept([invocation("r2")])
    sink.flush(soon())
    inv_points = [p for p in receiver.metrics() if p["name"] == "faas.invocations"]
    assert [(p["temporality"], p["value"]) for p in inv_points] == [("cumulative", 1), ("cumulative", 2)]


def test_logs_carry_severity_raw_body_and_can_be_switched_off(make_sink, receiver):
    sink = make_sink()
    raw = '{"level": "ERROR", "message": "boom", "requestId": "req-1"}'
    sink.accept([log_line(raw, level="ERROR"), log_line("plain", level=None), log_line("w", level="WARN")])
    sink.flush(soon())
    recs = receiver.logs()
    assert [(r["body"], r["severity_text"], r["severity_number"]) for r in recs] == \
        [(raw, "ERROR", 17), ("plain", "", 0), ("w", "WARN", 13)]
    assert all(r["attributes"]["faas.invocation_id"] == "req-1" for r in recs)
    off = make_sink(logs=False)
    off.accept([log_line("never")])
    off.flush(soon())
    assert len(receiver.logs()) == 3


def test_health_metrics_report_drops_by_reason(make_sink, receiver):
    sink = make_sink()
    reasons = {"listener_dropped_batches": 2, "dropped_invoke_events": 1}
    sink.record_health({"records_received": 10, "dropped": 3}, reasons)
    sink.flush(soon())
    sink.record_health({"records_received": 15, "dropped": 3}, reasons)
    sink.flush(soon())
    points = receiver.metrics()
    received = [p["value"] for p in points if p["name"] == "otel_sidecar.records_received"]
    assert received == [10, 5]
    dropped = {p["attributes"]["reason"]: p["value"] for p in points if p["name"] == "otel_sidecar.dropped"}
    assert dropped == {"listener_dropped_batches": 2, "dropped_invoke_events": 1}


def test_health_signal_total_is_split_into_own_reasons_and_the_rest(make_sink, receiver):
    from otel_sidecar.health import drop_reasons
    from otel_sidecar.signals import HealthSignal

    sink = make_sink(SIDECAR_OTLP_MAX_QUEUE="6")
    sink.accept([invocation("r1"), invocation("r2")])           # 10 spans into 6 places: 4 dropped
    sink.flush(soon())
    own = {k[len("otlp_"):]: v for k, v in sink.health().items() if k.startswith("otlp_dropped_")}
    assert own["dropped_spans_buffer_full"] == 4
    total = sum(own.values()) + 3                              # + 3 dropped by the listener
    # the shell folds the sink's counters with its own (health.py) and hands the breakdown down: one way
    reasons = drop_reasons(dict(sink.health(), listener_dropped_records=3), total)
    sink.accept([HealthSignal(time=time.time(), counters=(("dropped", total), ("logs_dropped_records", 7),
                                                          ("records_received", 4)),
                              dropped_reasons=tuple(reasons.items()))])
    sink.flush(soon())
    points = receiver.metrics()
    dropped = {p["attributes"]["reason"]: p["value"] for p in points if p["name"] == "otel_sidecar.dropped"}
    assert dropped == dict(own, other=3)
    assert [p["value"] for p in points if p["name"] == "otel_sidecar.platform_logs_dropped"] == [7]


def test_buffer_is_bounded_drop_oldest_and_counted(make_sink, receiver):
    sink = make_sink(SIDECAR_OTLP_MAX_QUEUE="10")
    sink.accept([invocation(f"r{i}") for i in range(4)])       # 4 x (1 + 4 phases) = 20 spans
    sink.flush(soon())
    spans = receiver.spans()
    assert len(spans) == 10
    h = sink.health()
    assert h["otlp_dropped_spans_buffer_full"] == 10 and h["otlp_exported_spans"] == 10
    kept = {s["attributes"].get("faas.invocation_id") for s in spans if s["kind"] == "SERVER"}
    assert kept == {"r2", "r3"}                                # the oldest were dropped


def test_retry_honours_retry_after_inside_the_budget(make_sink, receiver):
    sink = make_sink()
    receiver.set_fault("status", status=429, retry_after=0.2, times=1)
    sink.accept([invocation("r1")])
    t0 = time.monotonic()
    sink.flush(soon(2.0))
    assert time.monotonic() - t0 >= 0.2
    assert len(by_name(receiver.spans(), "my-function")) == 1
    assert sink.health()["otlp_export_retries"] == 1


def test_retry_after_beyond_the_budget_is_not_waited_for_and_data_is_kept(make_sink, receiver):
    sink = make_sink()
    receiver.set_fault("status", status=503, retry_after=5)
    sink.accept([invocation("r1")])
    t0 = time.monotonic()
    sink.flush(soon(0.3))
    assert time.monotonic() - t0 < 0.3 + SLACK
    assert receiver.spans() == [] and sink.health()["otlp_buffered_spans"] == 5
    receiver.clear_fault()
    sink.shutdown(soon(2.0))                                    # the final flush ignores the backoff
    assert len(receiver.spans()) == 5 and "otlp_dropped_spans_shutdown" not in sink.health()


def test_non_retryable_status_drops_and_counts(make_sink, receiver):
    sink = make_sink()
    receiver.set_fault("status", status=400)
    sink.accept([invocation("r1")])
    sink.flush(soon())
    h = sink.health()
    assert h["otlp_dropped_spans_rejected"] == 5 and h["otlp_buffered_spans"] == 0
    assert [e["status"] for e in receiver.request_log if e["path"] == "/v1/traces"] == [400]


def test_partial_success_is_counted_and_not_retried(make_sink, receiver):
    sink = make_sink()
    receiver.set_fault("partial", rejected=2)
    sink.accept([invocation("r1")])
    sink.flush(soon())
    h = sink.health()
    assert h["otlp_dropped_spans_partial"] == 2 and h["otlp_exported_spans"] == 3
    assert len([e for e in receiver.request_log if e["path"] == "/v1/traces"]) == 1


@pytest.mark.parametrize("fault", ["stall", "refuse", "status:500", "status:429:1"])
def test_flush_and_shutdown_return_by_their_deadline_whatever_the_backend(make_sink, receiver, fault):
    sink = make_sink()
    receiver.set_fault(fault)
    for i in range(3):
        sink.accept([invocation(f"r{i}"), log_line("line", request_id=f"r{i}")])
        deadline = soon(0.15)
        sink.flush(deadline)
        assert time.monotonic() <= deadline + SLACK
    deadline = soon(0.3)
    sink.shutdown(deadline)
    assert time.monotonic() <= deadline + SLACK
    h = sink.health()
    lost = sum(v for k, v in h.items() if k.startswith("otlp_dropped_"))
    assert lost >= 15 + 3                                      # every span and log accounted for
    assert h.get("otlp_export_failures", 0) + h.get("otlp_export_deferred", 0) >= 1


def test_backoff_after_a_failure_keeps_later_flushes_cheap(make_sink, receiver):
    sink = make_sink()
    receiver.set_fault("refuse")
    sink.accept([invocation("r1")])
    sink.flush(soon(0.1))
    requests = sink.health()["otlp_export_requests"]
    for _ in range(5):
        sink.flush(soon(0.1))
    assert sink.health()["otlp_export_requests"] == requests  # backing off: no new request each time
    assert sink.health()["otlp_export_skipped_backoff"] >= 5


def test_a_request_the_flush_window_cuts_off_is_handed_to_the_background(make_sink, receiver):
    sink = make_sink(OTEL_EXPORTER_OTLP_TIMEOUT="5000")
    receiver.set_fault("slow", delay_ms=150)                  # a far-away backend: 150 ms per request
    sink.accept([invocation("r1")])
    deadline = soon(0.05)                                      # a 50 ms post-runtime window
    sink.flush(deadline)
    assert time.monotonic() <= deadline + SLACK
    assert sink.health()["otlp_export_deferred"] == 1 and "otlp_export_failures" not in sink.health()
    t0 = time.monotonic()
    sink.flush(soon(0.05))                                     # the background sender owns the export now
    assert time.monotonic() - t0 < 0.05 + SLACK
    assert receiver.wait_for(lambda r: len(by_name(r.spans(), "my-function")) >= 1, timeout=5)
    # it learnt the backend's latency: later flushes with a too short window defer without trying
    assert receiver.wait_for(lambda r: sink.exporter.destinations["traces"].backoff.latency is not None, timeout=5)
    deferred = sink.health()["otlp_export_deferred"]
    sink.accept([invocation("r2")])
    sink.flush(soon(0.05))
    assert sink.health()["otlp_export_deferred"] == deferred
    # (a request cut off by the window may still have arrived: at-least-once, so compare ids, not counts)
    assert receiver.wait_for(lambda r: {s["attributes"]["faas.invocation_id"] for s in by_name(r.spans(), "my-function")}
                             == {"r1", "r2"}, timeout=5)


def test_http_json_protocol(make_sink, receiver):
    sink = make_sink(OTEL_EXPORTER_OTLP_PROTOCOL="http/json")
    sink.accept([invocation("r1"), log_line("j")])
    sink.flush(soon())
    assert len(receiver.spans()) == 5 and receiver.logs()[0]["body"] == "j"
    assert {r.content_type for r in receiver.received} == {"application/json"}


def test_continuous_mode_sends_without_a_flush_call(make_sink, receiver):
    sink = make_sink(flush_mode="continuous")
    sink.accept([invocation("r1")])
    assert receiver.wait_for(lambda r: len(r.spans()) == 5, timeout=5)


def test_create_sink_honours_sdk_disabled_and_bad_config(receiver, caplog):
    from otel_sidecar.otlp import create_sink

    assert create_sink(None, {"OTEL_SDK_DISABLED": "true"}) is None
    sink = create_sink(None, {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
                              "OTEL_EXPORTER_OTLP_COMPRESSION": "zstd", "AWS_LAMBDA_FUNCTION_NAME": "fn"})
    try:
        assert isinstance(sink, OtlpSink)
        assert sum("OTEL_EXPORTER_OTLP_COMPRESSION" in r.getMessage() for r in caplog.records) == 1
        sink.accept([invocation("r1")])
        sink.flush(soon())
        assert by_name(receiver.spans(), "fn")
    finally:
        sink.shutdown(soon())


def test_busy_buffers_past_high_water_are_sent_from_the_background(make_sink, receiver):
    sink = make_sink(SIDECAR_OTLP_MAX_QUEUE="20")
    sink.accept([invocation("r1")])                           # 5 of 20: waits for a flush
    assert not receiver.wait_for(lambda r: r.spans(), timeout=0.2)
    sink.accept([invocation("r2"), invocation("r3")])         # 15 of 20: past the high-water mark
    assert receiver.wait_for(lambda r: len(r.spans()) == 15, timeout=5)
    assert sink.health()["otlp_background_sends"] >= 1 and "otlp_dropped_spans_buffer_full" not in sink.health()


@pytest.mark.parametrize("reason", ["timeout", "failure"])
def test_unsent_data_is_spooled_at_a_reset_and_sent_by_the_next_instance(make_sink, receiver, tmp_path, reason):
    spool = tmp_path / "spool"
    first = make_sink(SIDECAR_OTLP_SPOOL_DIR=str(spool))
    receiver.set_fault("refuse")
    first.accept([invocation("r1"), log_line("before the reset"), shutdown(reason)])
    first.flush(soon(0.2))
    first.shutdown(soon(1.0))
    h = first.health()
    assert h["otlp_spooled_spans"] == 5 and h["otlp_spooled_logs"] == 1 and h["otlp_spooled_metric_points"] > 0
    assert not any(k.startswith("otlp_dropped_") for k in h)
    assert len(list(spool.glob("*.pb"))) == 3
    receiver.clear_fault()
    second = make_sink(SIDECAR_OTLP_SPOOL_DIR=str(spool))
    second.accept([invocation("r2")])
    second.flush(soon())
    ids = {s["attributes"]["faas.invocation_id"] for s in receiver.spans() if s["kind"] == "SERVER"}
    assert ids == {"r1", "r2"}
    assert [r["body"] for r in receiver.logs()] == ["before the reset"]
    assert list(spool.glob("*.pb")) == [] and second.health()["otlp_unspooled_spans"] == 5


@pytest.mark.parametrize("reason", ["spindown", None])
def test_nothing_is_spooled_when_the_environment_goes_away(make_sink, receiver, tmp_path, reason):
    spool = tmp_path / "spool"
    sink = make_sink(SIDECAR_OTLP_SPOOL_DIR=str(spool), OTEL_METRICS_EXPORTER="none")
    receiver.set_fault("refuse")
    sink.accept([invocation("r1"), log_line("lost with /tmp")] + ([shutdown(reason)] if reason else []))
    sink.shutdown(soon(1.0))
    h = sink.health()
    assert h["otlp_dropped_spans_shutdown"] == 5 and h["otlp_dropped_logs_shutdown"] == 1
    assert not any(k.startswith("otlp_spooled_") for k in h) and not list(spool.glob("*.pb"))


def test_spool_is_bounded_in_bytes_and_the_rest_is_counted(make_sink, receiver, tmp_path):
    sink = make_sink(SIDECAR_OTLP_SPOOL_DIR=str(tmp_path / "spool"), SIDECAR_OTLP_SPOOL_MAX_BYTES="1",
                     OTEL_METRICS_EXPORTER="none", OTEL_LOGS_EXPORTER="none")
    receiver.set_fault("refuse")
    sink.accept([invocation("r1"), shutdown("timeout")])
    sink.shutdown(soon(1.0))
    h = sink.health()
    assert h["otlp_dropped_spans_shutdown"] == 5 and "otlp_spooled_spans" not in h


def test_a_batch_stuck_on_the_wire_at_shutdown_is_counted(make_sink, receiver):
    sink = make_sink(flush_mode="continuous")                 # the background sender owns the export
    receiver.set_fault("stall")
    sink.accept([invocation("r1")])
    assert receiver.wait_for(lambda r: sink.exporter.inflight["traces"] == 5, timeout=5)
    deadline = soon(0.3)
    sink.shutdown(deadline)
    assert time.monotonic() <= deadline + SLACK
    h = sink.health()
    assert h["otlp_dropped_spans_shutdown"] == 5 and h.get("otlp_exported_spans", 0) == 0


def test_unusable_tls_files_give_one_warning_per_signal_and_a_working_sink(make_sink, caplog):
    sink = make_sink(OTEL_EXPORTER_OTLP_TRACES_ENDPOINT="https://127.0.0.1:1/v1/traces",
                     OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE="/nonexistent/ca.pem")
    msgs = [r.getMessage() for r in caplog.records if "TLS files" in r.getMessage()]
    assert len(msgs) == 1 and "/nonexistent/ca.pem" in msgs[0]
    sink.accept([invocation("r1")])
    sink.flush(soon(0.3))
    assert sink.health()["otlp_export_failures"] >= 1


def test_sampling_always_exports_unsampled_invocations_in_the_header_trace(make_sink, receiver):
    sink = make_sink(SIDECAR_OTLP_SAMPLING="always", SIDECAR_SPAN_PARENT="xray")
    sink.accept([invocation("r1", invoke_tracing_value=f"Root={ROOT};Parent=1234567890abcdef;Sampled=0")])
    sink.flush(soon())
    (inv,) = by_name(receiver.spans(), "my-function")
    assert inv["trace_id"] == "5759e988bd862e3fe1be46a994272793" and inv["parent_span_id"] == "1234567890abcdef"


def test_histogram_buckets_fit_seconds_bytes_and_percent(make_sink, receiver):
    sink = make_sink()
    sink.accept([invocation("r1")])
    sink.flush(soon())
    points = {p["name"]: p for p in receiver.metrics()}
    assert points["faas.invoke_duration"]["explicit_bounds"][:3] == [0.005, 0.01, 0.025]
    mem = points["faas.mem_usage"]
    assert mem["explicit_bounds"][0] == 32 * 1024 * 1024
    assert mem["bucket_counts"][1] == 1                      # 64 MiB used: in (32 MiB, 64 MiB]
    assert points["aws.lambda.memory_utilization"]["explicit_bounds"][-1] == 100.0


def test_an_init_signal_arriving_after_its_invocation_gives_one_init_span(make_sink, receiver):
    sink = make_sink()
    i = init(first="req-1")
    sink.accept([invocation("req-1", cold_start=True, init_signal=i), i])
    sink.shutdown(soon())
    assert len(by_name(receiver.spans(), "init my-function")) == 1


def test_create_sink_switches(receiver):
    from types import SimpleNamespace

    from otel_sidecar.otlp import create_sink

    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, "SIDECAR_OTLP_SPOOL_DIR": "off"}
    assert create_sink(None, dict(env, OTEL_TRACES_EXPORTER="none", OTEL_METRICS_EXPORTER="none",
                                  OTEL_LOGS_EXPORTER="none")) is None
    sink = create_sink(SimpleNamespace(otlp_logs=False, flush_mode="end", flush_interval_ms=20000,
                                       function_name="fn"), env)
    try:
        sink.accept([log_line("not exported"), invocation("r1")])
        sink.flush(soon())
        assert receiver.logs() == [] and by_name(receiver.spans(), "fn")
    finally:
        sink.shutdown(soon())


def test_a_big_backlog_leaves_the_short_window_in_small_steps_and_the_rest_in_the_background(make_sink, receiver):
    sink = make_sink(SIDECAR_OTLP_MAX_QUEUE="5000", SIDECAR_OTLP_LOGS="off", OTEL_METRICS_EXPORTER="none")
    sink.accept([invocation(f"r{i}") for i in range(200)])    # 1,000 spans, below the high-water mark
    deadline = soon(0.01)
    sink.flush(deadline)
    assert time.monotonic() <= deadline + SLACK
    left_after_flush = 1000 - sink.health().get("otlp_exported_spans", 0)
    assert receiver.wait_for(lambda r: len(r.spans()) >= 1000, timeout=10)
    # the sender counts a request once its answer is read, just after the receiver stored it
    assert receiver.wait_for(lambda r: sink.health().get("otlp_exported_spans") == 1000, timeout=5)
    if left_after_flush:  # on an idle machine the short window may send all 1,000 itself
        assert sink.health()["otlp_background_sends"] >= 1


def test_a_later_signal_with_the_trace_header_wins_over_fresh_ids(make_sink, receiver):
    sink = make_sink()
    tc = TraceContext(value=f"Root={ROOT};Parent=53995c3f42cd8ad8;Sampled=1", span_id="aaaaaaaaaaaaaaaa")
    sink.accept([log_line("early, before the engine knew the trace"), invocation("req-1", trace=tc)])
    sink.flush(soon())
    (inv,) = by_name(receiver.spans(), "my-function")
    assert (inv["trace_id"], inv["span_id"]) == ("5759e988bd862e3fe1be46a994272793", "aaaaaaaaaaaaaaaa")


def test_payload_too_large_splits_the_batch_instead_of_dropping_it(make_sink, receiver):
    sink = make_sink(OTEL_METRICS_EXPORTER="none", SIDECAR_OTLP_LOGS="off")
    receiver.set_fault("status", status=413, times=2)          # the first two requests are too large
    sink.accept([invocation("r1"), invocation("r2")])
    sink.flush(soon())
    ids = {s["attributes"]["faas.invocation_id"] for s in by_name(receiver.spans(), "my-function")}
    assert ids == {"r1", "r2"} and len(receiver.spans()) == 10
    h = sink.health()
    assert h["otlp_export_splits"] == 2 and not any(k.startswith("otlp_dropped_") for k in h)


def test_a_key_in_the_endpoint_query_never_reaches_a_failure_line(caplog):
    from otel_sidecar.otlp import create_sink

    secret = "qs-S3cret-value"
    with socket.socket() as s:            # a port nobody listens on: every export fails
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sink = create_sink(None, {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"http://127.0.0.1:{port}/v1/traces?api_key={secret}",
                              "OTEL_METRICS_EXPORTER": "none", "OTEL_LOGS_EXPORTER": "none",
                              "AWS_LAMBDA_FUNCTION_NAME": "fn"})
    try:
        sink.accept([invocation("r1")])
        sink.flush(soon(1.0))
    finally:
        sink.shutdown(soon(1.0))
    lines = [r.getMessage() for r in caplog.records]
    assert any("traces" in ln and f"127.0.0.1:{port}" in ln for ln in lines), lines   # the failure was reported
    assert not any(secret in ln for ln in lines)
