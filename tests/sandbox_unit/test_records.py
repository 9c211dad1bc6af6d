"""records.py against the examples of lambda-apis.md 5.3-5.6, field by field."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from lambda_sandbox import records as R


def ts(iso: str) -> float:
    return dt.datetime.strptime(iso, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.timezone.utc).timestamp()


def test_iso_has_milliseconds_and_z():
    assert R.iso(ts("2024-07-01T08:54:54.106Z")) == "2024-07-01T08:54:54.106Z"
    assert R.iso(0.0) == "1970-01-01T00:00:00.000Z"
    assert R.iso(1.9996) == "1970-01-01T00:00:01.999Z"  # truncated like Go's layout


@given(st.floats(min_value=0, max_value=4_000_000_000, allow_nan=False))
def test_iso_round_trips_to_the_millisecond(t):
    assert -1e-6 <= t - ts(R.iso(t)) < 0.001 + 1e-6


def test_envelope_shape():
    env = R.envelope("platform.start", {"requestId": "r"}, ts("2022-10-21T14:05:03.165Z"))
    assert list(env) == ["time", "type", "record"]
    assert env == {"time": "2022-10-21T14:05:03.165Z", "type": "platform.start", "record": {"requestId": "r"}}


def test_init_start_matches_2025_capture():
    rec = R.init_start(initialization_type="on-demand", phase="init", runtime_version="python:3.12.v29",
                       runtime_version_arn="arn:aws:lambda:us-east-1::runtime:0123",
                       function_name="my-function", function_version="$LATEST",
                       instance_id="2025/01/07/[$LATEST]002cf7829acf404ea7f6995e1910b96b",
                       instance_max_memory_mb=128)
    assert rec == {
        "initializationType": "on-demand", "phase": "init",
        "runtimeVersion": "python:3.12.v29", "runtimeVersionArn": "arn:aws:lambda:us-east-1::runtime:0123",
        "functionName": "my-function", "functionVersion": "$LATEST",
        "instanceId": "2025/01/07/[$LATEST]002cf7829acf404ea7f6995e1910b96b",
        "instanceMaxMemory": 134217728,
    }
    assert R.init_start(initialization_type="on-demand", phase="init", runtime_version=None,
                        runtime_version_arn=None, function_name="f", function_version="$LATEST",
                        instance_id=None, instance_max_memory_mb=1792)["instanceMaxMemory"] == 1879048192


def test_init_runtime_done_and_report():
    ok = R.init_runtime_done(initialization_type="on-demand", phase="init", status="success")
    assert ok == {"initializationType": "on-demand", "phase": "init", "status": "success"}
    err = R.init_runtime_done(initialization_type="on-demand", phase="init", status="error",
                              error_type="Extension.Crash")
    assert err == {"initializationType": "on-demand", "phase": "init", "status": "error",
                   "errorType": "Extension.Crash"}
    rep = R.init_report(initialization_type="on-demand", phase="init", status="success", duration_ms=234.7661)
    assert rep == {"initializationType": "on-demand", "phase": "init", "status": "success",
                   "metrics": {"durationMs": 234.766}}
    timeout = R.init_report(initialization_type="on-demand", phase="invoke", status="timeout",
                            duration_ms=10000.12)
    assert timeout["status"] == "timeout" and "errorType" not in timeout
    assert timeout["phase"] == "invoke"


def test_start_with_and_without_tracing():
    value = "Root=1-6352a70e-1e2c502e358361800241fd45;Parent=35465b3a9e2f7c6a;Sampled=1"
    rec = R.start(request_id="459921b5-681c-4a96-beb0-81e0aa586026", version="$LATEST",
                  tracing=R.trace_context(value, "24cd7d670fa455f0"))
    assert rec == {"requestId": "459921b5-681c-4a96-beb0-81e0aa586026", "version": "$LATEST",
                   "tracing": {"spanId": "24cd7d670fa455f0", "type": "X-Amzn-Trace-Id", "value": value}}
    assert R.start(request_id="b2de", version="$LATEST") == {"requestId": "b2de", "version": "$LATEST"}
    passthrough = R.start(request_id="r", version="$LATEST", tracing={"type": "X-Amzn-Trace-Id", "value": value})
    assert passthrough["tracing"] == {"type": "X-Amzn-Trace-Id", "value": value}


def test_runtime_done_success_has_three_chained_spans():
    t0 = ts("2024-07-01T08:54:54.108Z")
    rec = R.runtime_done(request_id="b2de8fdb-259d-476f-9546-0b4822dce67a", status="success", duration_ms=17.12,
                         produced_bytes=50, start_time=t0, response_latency_ms=1.613, response_duration_ms=0.064,
                         runtime_overhead_ms=15.246)
    assert rec["requestId"] == "b2de8fdb-259d-476f-9546-0b4822dce67a"
    assert rec["status"] == "success"
    assert "errorType" not in rec and "tracing" not in rec
    assert rec["metrics"] == {"durationMs": 17.12, "producedBytes": 50}
    assert [s["name"] for s in rec["spans"]] == ["responseLatency", "responseDuration", "runtimeOverhead"]
    assert [s["durationMs"] for s in rec["spans"]] == [1.613, 0.064, 15.246]
    # each span starts where the previous one ended (108 + 1.613 ms, then + 0.064 ms), truncated to ms
    assert [s["start"] for s in rec["spans"]] == ["2024-07-01T08:54:54.108Z", "2024-07-01T08:54:54.109Z",
                                                  "2024-07-01T08:54:54.109Z"]
    assert all(set(s) == {"name", "start", "durationMs"} for s in rec["spans"])


def test_runtime_done_error_paths_have_no_response_spans():
    handled = R.runtime_done(request_id="777f", status="success", duration_ms=78.656, produced_bytes=0)
    assert handled == {"requestId": "777f", "status": "success",
                       "metrics": {"durationMs": 78.656, "producedBytes": 0}}
    crash = R.runtime_done(request_id="b2de", status="error", error_type="Runtime.ExitError", duration_ms=120.4,
                           produced_bytes=0)
    assert crash == {"requestId": "b2de", "status": "error", "errorType": "Runtime.ExitError",
                     "metrics": {"durationMs": 120.4, "producedBytes": 0}}
    after_error = R.runtime_done(request_id="r", status="success", duration_ms=5, produced_bytes=0,
                                 start_time=100.0, runtime_overhead_ms=1.5)
    assert [s["name"] for s in after_error["spans"]] == ["runtimeOverhead"]


def test_report_cold_start_with_extension_overhead_and_tracing():
    value = "Root=1-6352a70e-1e2c502e358361800241fd45;Parent=35465b3a9e2f7c6a;Sampled=1"
    rec = R.report(request_id="459921b5", status="success", duration_ms=2599.4, billed_duration_ms=2600,
                   memory_size_mb=128, max_memory_used_mb=94, init_duration_ms=235.0861,
                   spans=[("extensionOverhead", ts("2022-10-21T14:05:05.764Z"), 0.38)],
                   tracing=R.trace_context(value, "24cd7d670fa455f0"))
    assert list(rec) == ["requestId", "status", "metrics", "spans", "tracing"]
    assert rec["metrics"] == {"durationMs": 2599.4, "billedDurationMs": 2600, "memorySizeMB": 128,
                              "maxMemoryUsedMB": 94, "initDurationMs": 235.086}
    assert rec["spans"] == [{"name": "extensionOverhead", "start": "2022-10-21T14:05:05.764Z", "durationMs": 0.38}]
    assert rec["tracing"]["spanId"] == "24cd7d670fa455f0"


def test_report_timeout_and_crash():
    t = R.report(request_id="527c", status="timeout", duration_ms=3016.78, billed_duration_ms=3101,
                 memory_size_mb=128, max_memory_used_mb=31, init_duration_ms=84.0)
    assert t == {"requestId": "527c", "status": "timeout",
                 "metrics": {"durationMs": 3016.78, "billedDurationMs": 3101, "memorySizeMB": 128,
                             "maxMemoryUsedMB": 31, "initDurationMs": 84.0}}
    c = R.report(request_id="5b86", status="error", error_type="Runtime.ExitError", duration_ms=133.61,
                 billed_duration_ms=214, memory_size_mb=128, max_memory_used_mb=31)
    assert c["errorType"] == "Runtime.ExitError" and "initDurationMs" not in c["metrics"]


def test_extension_subscription_and_logs_dropped():
    assert R.extension(name="go-example-extension", state="Ready", events=["INVOKE", "SHUTDOWN"]) == {
        "name": "go-example-extension", "state": "Ready", "events": ["INVOKE", "SHUTDOWN"]}
    assert R.extension(name="my-ext", state="InitError", events=["INVOKE"], error_type="Extension.ConfigInvalid") == {
        "name": "my-ext", "state": "InitError", "events": ["INVOKE"], "errorType": "Extension.ConfigInvalid"}
    assert R.extension(name="x", state="Ready", events=None)["events"] == []
    assert R.telemetry_subscription(name="go-example-extension", state="Subscribed", types=["platform"]) == {
        "name": "go-example-extension", "state": "Subscribed", "types": ["platform"]}
    assert R.logs_dropped(dropped_records=123, dropped_bytes=12345) == {
        "droppedBytes": 12345, "droppedRecords": 123,
        "reason": "Some logs were dropped because the downstream consumer is slower than the logs production rate"}


def test_restore_records():
    assert R.restore_runtime_done(status="error", error_type="Runtime.ExitError") == {
        "status": "error", "errorType": "Runtime.ExitError"}
    assert R.restore_report(status="success", duration_ms=15.19) == {"status": "success",
                                                                       "metrics": {"durationMs": 15.19}}
    rs = R.restore_start(function_name="f", function_version="3", instance_max_memory_mb=512)
    assert rs == {"functionName": "f", "functionVersion": "3", "instanceMaxMemory": 536870912}


def test_text_log_records_keep_one_trailing_newline():
    assert R.text_log_record("Hello world") == "Hello world\n"
    assert R.text_log_record("Hello world\n") == "Hello world\n"
    assert R.text_log_record("Hello world\n", keep_newline=False) == "Hello world"


def test_json_log_record_object_line_is_not_double_encoded():
    line = '{"timestamp":"2022-10-12T00:03:50.000Z","level":"INFO","requestId":"79b4","message":"Hello"}'
    assert R.json_log_record(line, time=0.0) == {"timestamp": "2022-10-12T00:03:50.000Z", "level": "INFO",
                                                  "requestId": "79b4", "message": "Hello"}


def test_json_log_record_wraps_plain_lines():
    t = ts("2022-10-12T00:03:50.000Z")
    assert R.json_log_record("Hello world, I am a function!\n", time=t, request_id="79b4", level="info") == {
        "timestamp": "2022-10-12T00:03:50.000Z", "level": "INFO", "requestId": "79b4",
        "message": "Hello world, I am a function!"}
    assert R.json_log_record("Hello, I am an extension!", time=t) == {
        "timestamp": "2022-10-12T00:03:50.000Z", "level": "INFO", "message": "Hello, I am an extension!"}
    assert R.json_log_record("[1, 2]", time=t, wrap_text=False) == "[1, 2]"


def test_schema_2022_07_01_sees_log_records_as_strings():
    obj_event = R.envelope("function", {"level": "INFO", "message": "m"}, 0.0)
    legacy = R.adapt_for_schema(obj_event, "2022-07-01", legacy_record='{"level":"INFO","message":"m"}\n')
    assert legacy["record"] == '{"level":"INFO","message":"m"}\n'
    assert R.adapt_for_schema(obj_event, "2022-12-13") is obj_event
    platform = R.envelope("platform.start", {"requestId": "r"}, 0.0)
    assert R.adapt_for_schema(platform, "2022-07-01") is platform
    fallback = R.adapt_for_schema(obj_event, "2022-07-01")
    assert json.loads(fallback["record"]) == {"level": "INFO", "message": "m"}


@pytest.mark.parametrize("raw,expected", [("warning", "WARN"), ("CRITICAL", "FATAL"), ("info", "INFO"),
                                          (None, None)])
def test_levels_normalise(raw, expected):
    assert R.normalize_level(raw) == expected


def test_category():
    assert R.category("platform.report") == "platform"
    assert R.category("function") == "function"
    assert R.category("extension") == "extension"
