"""The sidecar in a sandboxed execution environment with a real handler: EMF out, function unaffected."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import jsonschema
import pytest
from lambda_sandbox import OtlpReceiver

from tests.helpers import (
    SIDECAR_NAME,
    emf_dimension_sets,
    emf_metric_defs,
    emf_values,
    sidecar_emf,
    sidecar_log_lines,
    wait_for,
)

pytestmark = pytest.mark.sandbox

FN = "sidecar-e2e"
EMF_SCHEMA = Path(__file__).resolve().parents[1] / "unit" / "emf_schema.json"


def total(docs, metric: str) -> float:
    return sum(emf_values(docs, metric, FunctionName=FN))


def approx_list(values):
    return pytest.approx(sorted(values), abs=0.01)


def assert_not_held(sb, result) -> None:
    """The sidecar's post-runtime wait ended on runtimeDone, not on its deadline bound."""
    assert result.duration_ms < sb.cfg.timeout_s * 1000 - 200, (
        f"invoke phase {result.duration_ms} ms: the sidecar held /next until its deadline bound")


def assert_healthy(sb) -> None:
    bad = [ln for ln in sidecar_log_lines(sb) if "degraded" in ln or "ERROR" in ln]
    assert bad == []


def test_cold_start_then_warm_invokes(sidecar_sandbox):
    sb = sidecar_sandbox()
    results = [sb.invoke({"echo": i}) for i in range(3)]
    assert [r.outcome for r in results] == ["success"] * 3
    assert [r.response["echo"] for r in results] == [0, 1, 2]
    for r in results[1:]:
        assert_not_held(sb, r)
    shut = sb.shutdown()
    assert shut.extensions[SIDECAR_NAME] == "Exited"

    docs = sidecar_emf(sb)
    assert docs, sb.extension_lines(SIDECAR_NAME)
    assert total(docs, "Invocations") == 3
    assert total(docs, "ColdStart") == 1
    assert total(docs, "Errors") == 0
    assert emf_values(docs, "InitDuration", FunctionName=FN) == pytest.approx([sb.inits[0].duration_ms], abs=0.01)
    assert sorted(emf_values(docs, "Duration", FunctionName=FN)) == approx_list(r.duration_ms for r in results)
    assert sorted(emf_values(docs, "BilledDuration", FunctionName=FN)) == sorted(r.billed_duration_ms for r in results)
    assert sorted(emf_values(docs, "MaxMemoryUsed", FunctionName=FN)) == sorted(r.max_memory_used_mb for r in results)
    assert sorted(emf_values(docs, "ProducedBytes", FunctionName=FN)) == sorted(len(r.response_bytes) for r in results)
    units = emf_metric_defs(docs)
    assert (units["Invocations"], units["Duration"], units["MaxMemoryUsed"], units["ProducedBytes"]) == \
        ("Count", "Milliseconds", "Megabytes", "Bytes")
    for dims in emf_dimension_sets(docs, "Duration"):
        assert "FunctionName" in dims and "RequestId" not in dims
    assert_healthy(sb)


def test_proactive_init_is_not_a_cold_start(sidecar_sandbox):
    sb = sidecar_sandbox(env={"SIDECAR_COLDSTART_IDLE_MS": "300"})
    assert sb.init().status == "success"
    ready = time.monotonic()
    wait_for(lambda: time.monotonic() - ready > 0.5, timeout=2)   # an idle gap longer than the threshold
    r = sb.invoke({"echo": "late"})
    assert r.outcome == "success" and r.response["echo"] == "late"
    sb.shutdown()
    docs = sidecar_emf(sb)
    assert total(docs, "Invocations") == 1
    assert total(docs, "ProactiveInit") == 1
    assert total(docs, "ColdStart") == 0


def test_handled_error(sidecar_sandbox):
    sb = sidecar_sandbox()
    r = sb.invoke({"action": "error"})
    assert r.outcome == "error"
    assert r.response["errorType"] == "PaymentDeclined"
    assert_not_held(sb, r)
    ok = sb.invoke({"echo": "after"})
    assert ok.outcome == "success"
    sb.shutdown()
    docs = sidecar_emf(sb)
    assert total(docs, "Invocations") == 2
    assert total(docs, "FunctionErrors") == 1
    assert total(docs, "Errors") == 1


def test_timeout_then_reinit(sidecar_sandbox):
    sb = sidecar_sandbox(timeout_s=1.0)
    r = sb.invoke({"action": "sleep", "sleep_s": 5})
    assert r.outcome == "timeout"
    assert sb.resets[0].reason == "timeout"
    assert sb.resets[0].extensions[SIDECAR_NAME] == "Exited"
    again = sb.invoke({"echo": "again"})            # suppressed init inside this invoke, new sidecar process
    assert again.outcome == "success" and again.response["echo"] == "again"
    sb.shutdown()
    docs = sidecar_emf(sb)
    assert total(docs, "Timeouts") == 1
    assert total(docs, "ShutdownsTimeout") == 1
    assert total(docs, "Invocations") == 2
    assert total(docs, "Errors") == 1


def test_out_of_memory(sidecar_sandbox):
    sb = sidecar_sandbox(memory_mb=128, enforce_memory=True)
    r = sb.invoke({"action": "oom", "mb": 400})
    if not sb.applied.get("memory_limit"):
        pytest.skip("no memory cgroup here: the sandbox cannot enforce memory_mb")
    assert r.outcome == "crash"
    assert r.error_type == "Runtime.OutOfMemory"
    sb.shutdown()
    docs = sidecar_emf(sb)
    assert total(docs, "OutOfMemory") == 1
    assert total(docs, "Invocations") == 1
    assert total(docs, "ShutdownsFailure") == 1


def test_runtime_crash(sidecar_sandbox):
    sb = sidecar_sandbox()
    r = sb.invoke({"action": "crash"})
    assert r.outcome == "crash"
    assert r.error_type == "Runtime.ExitError"
    assert sb.resets[0].extensions[SIDECAR_NAME] == "Exited"
    sb.shutdown()
    docs = sidecar_emf(sb)
    assert total(docs, "Invocations") == 1
    assert total(docs, "Errors") == 1
    assert total(docs, "OutOfMemory") == 0
    assert total(docs, "ShutdownsFailure") == 1


def test_downstream_throttle_lines(sidecar_sandbox):
    sb = sidecar_sandbox()
    r = sb.invoke({"action": "throttle", "n": 3})
    assert r.outcome == "success" and r.response["action"] == "throttle"
    sb.invoke({})
    sb.shutdown()
    docs = sidecar_emf(sb)
    assert total(docs, "DownstreamThrottles") == 3
    assert total(docs, "Invocations") == 2


def test_shutdown_reports_spindown_and_own_health(sidecar_sandbox):
    sb = sidecar_sandbox()
    sb.invoke({})
    shut = sb.shutdown()
    assert shut.extensions[SIDECAR_NAME] == "Exited"
    docs = sidecar_emf(sb)
    assert total(docs, "ShutdownsSpindown") == 1
    assert total(docs, "SidecarRecordsReceived") > 0
    assert total(docs, "SidecarDropped") == 0
    assert total(docs, "SidecarMalformed") == 0
    first_next = emf_values(docs, "SidecarTimeToFirstNext", FunctionName=FN)
    assert len(first_next) == 1 and first_next[0] > 0
    assert emf_metric_defs(docs)["SidecarTimeToFirstNext"] == "Milliseconds"


@pytest.mark.parametrize("status, answer", [
    (404, "404 page not found\n"),
    (202, {"errorMessage": "Telemetry API is not supported", "errorType": "Telemetry.NotSupported"}),
])
def test_telemetry_api_unavailable_function_unaffected(sidecar_sandbox, status, answer):
    sb = sidecar_sandbox()
    sb.hub.subscribe = lambda name, body: (status, answer)   # the API of an old or stubbed emulator
    results = [sb.invoke({"echo": i}) for i in range(3)]
    assert [r.response["echo"] for r in results] == [0, 1, 2]
    for r in results:
        assert_not_held(sb, r)
    shut = sb.shutdown()
    assert shut.extensions[SIDECAR_NAME] == "Exited"
    lines = [ln for ln in sidecar_log_lines(sb) if "degraded" in ln]
    assert len(lines) == 1 and f"HTTP {status}" in lines[0]


def test_listener_port_taken(sidecar_sandbox):
    taken = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    port = taken.getsockname()[1]
    try:
        sb = sidecar_sandbox(env={"SIDECAR_LISTENER_PORT": str(port)})
        results = [sb.invoke({"echo": i}) for i in range(2)]
        assert [r.response["echo"] for r in results] == [0, 1]
        sb.shutdown()
    finally:
        taken.close()
    assert any(str(port) in ln and "ephemeral" in ln for ln in sidecar_log_lines(sb))
    assert total(sidecar_emf(sb), "Invocations") == 2


def test_every_emf_line_is_one_compact_valid_document(sidecar_sandbox):
    sb = sidecar_sandbox()
    for action in ("ok", "error", "throttle"):
        sb.invoke({"action": action})
    sb.shutdown()
    schema = json.loads(EMF_SCHEMA.read_text())
    lines = [ln for ln in sb.extension_lines(SIDECAR_NAME) if '"_aws"' in ln]
    assert lines
    for ln in lines:
        doc = json.loads(ln)
        jsonschema.validate(doc, schema)
        assert ln in (json.dumps(doc, separators=(",", ":")), json.dumps(doc, separators=(",", ":"), ensure_ascii=False))
        for directive in doc["_aws"]["CloudWatchMetrics"]:
            assert len(directive["Metrics"]) <= 100
            for m in directive["Metrics"]:
                values = doc[m["Name"]]
                assert not isinstance(values, list) or len(values) <= 100


def test_otlp_sink_is_loaded_off_the_init_path_and_exports(sidecar_sandbox):
    with OtlpReceiver() as rx:
        sb = sidecar_sandbox(otlp_receiver=rx)
        results = [sb.invoke({"echo": i}) for i in range(2)]
        assert [r.response["echo"] for r in results] == [0, 1]
        shut = sb.shutdown()
        assert shut.extensions[SIDECAR_NAME] == "Exited"
        ids = {r.request_id for r in results}
        spans = rx.wait_for(lambda r: [s for s in r.spans() if s["attributes"].get("faas.invocation_id") in ids])
        assert {s["attributes"]["faas.invocation_id"] for s in spans if s["kind"] == "SERVER"} == ids
    assert_healthy(sb)
    assert total(sidecar_emf(sb), "Invocations") == 2      # EMF keeps working next to OTLP


def test_stalled_otlp_backend_does_not_hold_the_function(sidecar_sandbox):
    with OtlpReceiver(fault="stall") as rx:
        sb = sidecar_sandbox(otlp_receiver=rx)
        results = [sb.invoke({"echo": i}) for i in range(3)]
        assert [r.response["echo"] for r in results] == [0, 1, 2]
        for r in results[1:]:
            assert_not_held(sb, r)
        shut = sb.shutdown()
    assert shut.extensions[SIDECAR_NAME] == "Exited"        # it left before the SHUTDOWN deadline
    assert total(sidecar_emf(sb), "Invocations") == 3


def test_extension_records_on_request_without_feedback_loop(sidecar_sandbox):
    sb = sidecar_sandbox(env={"SIDECAR_TELEMETRY_TYPES": "platform,function,extension"})
    for i in range(3):
        assert sb.invoke({"echo": i}).outcome == "success"
    sb.shutdown()
    subs = [ev.event["record"] for ev in sb.events if ev.event["type"] == "platform.telemetrySubscription"]
    assert subs and "extension" in subs[0]["types"]
    docs = sidecar_emf(sb)
    assert total(docs, "Invocations") == 3
    assert len(docs) <= 10, "the sidecar's own lines fed back into its output"


def test_invalid_settings_are_named_once_and_the_sidecar_keeps_working(sidecar_sandbox):
    sb = sidecar_sandbox(env={"SIDECAR_FLUSH": "sometimes", "SIDECAR_LISTENER_PORT": "http",
                              "SIDECAR_COLDSTART_IDLE_MS": "-5"})
    results = [sb.invoke({"echo": i}) for i in range(2)]
    assert [r.response["echo"] for r in results] == [0, 1]
    sb.shutdown()
    lines = sidecar_log_lines(sb)
    for var, value in (("SIDECAR_FLUSH", "sometimes"), ("SIDECAR_LISTENER_PORT", "http"),
                       ("SIDECAR_COLDSTART_IDLE_MS", "-5")):
        named = [ln for ln in lines if var in ln and value in ln]
        assert len(named) == 1, (var, lines)
    assert total(sidecar_emf(sb), "Invocations") == 2


def test_a_log_flood_is_received_or_counted_never_lost_silently(sidecar_sandbox):
    sb = sidecar_sandbox()
    r = sb.invoke({"action": "spam", "n": 5000})
    assert r.outcome == "success"
    assert_not_held(sb, r)
    sb.invoke({})
    sb.shutdown()
    docs = sidecar_emf(sb)
    assert total(docs, "Invocations") == 2
    seen = total(docs, "SidecarRecordsReceived") + total(docs, "SidecarPlatformLogsDropped") \
        + total(docs, "SidecarDropped")
    assert seen >= 5000


def test_periodic_flush_mode_never_holds_next_and_loses_nothing(sidecar_sandbox):
    sb = sidecar_sandbox(env={"SIDECAR_FLUSH": "periodic"})
    results = [sb.invoke({"echo": i}) for i in range(4)]
    assert [r.response["echo"] for r in results] == [0, 1, 2, 3]
    sb.shutdown()
    docs = sidecar_emf(sb)
    assert total(docs, "Invocations") == 4
    assert sorted(emf_values(docs, "BilledDuration", FunctionName=FN)) == sorted(r.billed_duration_ms for r in results)
    assert_healthy(sb)
