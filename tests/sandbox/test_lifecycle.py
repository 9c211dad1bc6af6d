"""Conformance of the normal lifecycle with lambda-apis.md 4.1-4.3 and sequence A of 5.7."""

from __future__ import annotations

import time

import pytest

from .conftest import epoch, events_of, recorder_events, recorder_items, records_of, types

pytestmark = pytest.mark.sandbox


def test_cold_start_then_warm_invoke_without_extensions(make_sandbox):
    sb = make_sandbox()
    first = sb.invoke({"x": 1})
    second = sb.invoke({"x": 2})
    assert first.outcome == "success" and first.response["event"] == {"x": 1}
    assert second.response["requestId"] == second.request_id
    assert types(sb) == ["platform.initStart", "platform.initRuntimeDone", "platform.initReport",
                         "platform.start", "platform.runtimeDone", "platform.report",
                         "platform.start", "platform.runtimeDone", "platform.report"]
    reports = records_of(sb, "platform.report")
    assert "initDurationMs" in reports[0]["metrics"] and "initDurationMs" not in reports[1]["metrics"]
    # since Aug 2025 the init of an on-demand function is billed with its first invoke (4.7)
    m = reports[0]["metrics"]
    assert m["billedDurationMs"] >= m["durationMs"] + m["initDurationMs"]
    assert m["memorySizeMB"] == 128 and 1 <= m["maxMemoryUsedMB"] <= 128
    done = records_of(sb, "platform.runtimeDone")[0]
    assert [s["name"] for s in done["spans"]] == ["responseLatency", "responseDuration", "runtimeOverhead"]
    assert done["metrics"]["producedBytes"] == len(first.response_bytes)
    assert "extensionOverhead" not in str(reports[0])
    assert "hello from the handler" in sb.function_lines()
    result = sb.shutdown()
    assert result.reason == "spindown" and result.runtime == "Killed"   # no extension: SIGKILL at once (4.3)


def test_sequence_a_cold_start_two_warm_invokes_and_spindown(make_sandbox):
    sb = make_sandbox(recorder=True)
    r1 = sb.invoke({"n": 1})
    r2 = sb.invoke({"n": 2})
    t_shutdown = time.time()
    shut = sb.shutdown()
    assert (r1.outcome, r2.outcome) == ("success", "success")
    assert types(sb) == [
        "platform.initStart", "platform.telemetrySubscription", "platform.initRuntimeDone",
        "platform.extension", "platform.initReport",
        "platform.start", "platform.runtimeDone", "platform.report",
        "platform.start", "platform.runtimeDone", "platform.report"]
    assert records_of(sb, "platform.extension") == [{"name": "recorder", "state": "Ready",
                                                     "events": ["INVOKE", "SHUTDOWN"]}]
    registered = recorder_items(sb, "registered")[0]
    assert registered["body"] == {"functionName": "my-function", "functionVersion": "$LATEST",
                                  "handler": "hello.handler"}
    invokes = recorder_events(sb, "INVOKE")
    assert [e["requestId"] for e in invokes] == [r1.request_id, r2.request_id]
    assert invokes[0]["invokedFunctionArn"] == "arn:aws:lambda:us-east-1:123456789012:function:my-function"
    assert abs(invokes[0]["deadlineMs"] / 1000 - (r1.started_at + r1.init_duration_ms / 1000 + 3.0)) < 0.5
    # the report of invoke N is generated after the extension's /next and delivered only after the thaw
    reports = events_of(sb, "platform.report")
    assert reports[0].deliveries["recorder"] >= r2.started_at
    assert reports[1].deliveries["recorder"] >= t_shutdown
    assert reports[0].event["record"]["spans"][0]["name"] == "extensionOverhead"
    # the replayed initStart reached the subscriber although it was generated before it subscribed
    init_start = events_of(sb, "platform.initStart")[0]
    assert "recorder" in init_start.deliveries
    shutdown_event = recorder_events(sb, "SHUTDOWN")[0]
    assert shutdown_event["shutdownReason"] == "spindown"
    assert abs(shutdown_event["deadlineMs"] / 1000 - (t_shutdown + 2.0)) < 0.5
    assert recorder_items(sb, "exit")[0]["reports"] == sorted([r1.request_id, r2.request_id])
    assert shut.extensions == {"recorder": "Exited"} and shut.killed == []


def test_runtime_done_reaches_an_extension_that_waits_for_it(make_sandbox):
    sb = make_sandbox(recorder=True, env={"TEST_EXT_WAIT_RUNTIME_DONE": "1"})
    r = sb.invoke({})
    waits = recorder_items(sb, "runtime_done_wait")
    assert waits == [{"recorder": "runtime_done_wait", "request_id": r.request_id, "seen": True}]
    done = events_of(sb, "platform.runtimeDone")[0]
    assert epoch(done.event["time"]) <= done.deliveries["recorder"]


def test_frozen_extension_background_thread_makes_no_progress(make_sandbox):
    sb = make_sandbox(recorder=True, env={"TEST_EXT_BG_THREAD": "1"})
    sb.invoke({})
    idle_until = time.monotonic() + 0.6   # an idle gap between invokes (not a wait for a condition)
    while time.monotonic() < idle_until:
        time.sleep(0.05)
    sb.invoke({})
    ticks = [i["ticks"] for i in recorder_items(sb, "event")]
    # a thread ticking every 10 ms would add ~60 ticks during 0.6 s if the environment were not frozen
    assert ticks[1] - ticks[0] < 20, ticks
    assert sb.report()["environment"]["freeze"] == "cgroup"


def test_signal_freeze_also_stops_background_threads(make_sandbox):
    sb = make_sandbox(recorder=True, env={"TEST_EXT_BG_THREAD": "1"}, freeze="signal")
    sb.invoke({})
    idle_until = time.monotonic() + 0.6
    while time.monotonic() < idle_until:
        time.sleep(0.05)
    sb.invoke({})
    ticks = [i["ticks"] for i in recorder_items(sb, "event")]
    assert ticks[1] - ticks[0] < 20, ticks
    assert sb.report()["environment"]["freeze"] == "signal"


def test_proactive_init_then_invoke(make_sandbox):
    sb = make_sandbox()
    outcome = sb.init()
    r = sb.invoke({})
    assert outcome.status == "success" and outcome.phase == "init"
    assert r.init_duration_ms == outcome.duration_ms
    assert types(sb)[:4] == ["platform.initStart", "platform.initRuntimeDone", "platform.initReport",
                             "platform.start"]


def test_provisioned_concurrency_init_is_reported_but_not_billed_with_the_invoke(make_sandbox):
    sb = make_sandbox(init_type="provisioned-concurrency")
    sb.init()
    r = sb.invoke({})
    init_start = records_of(sb, "platform.initStart")[0]
    assert init_start["initializationType"] == "provisioned-concurrency"
    assert "initDurationMs" not in records_of(sb, "platform.report")[0]["metrics"]
    assert r.billed_duration_ms < 1000
    assert any(line.startswith("INIT_REPORT Init Duration:") for line in sb.platform_lines())


def test_tracing_active_headers_and_tracing_objects(make_sandbox):
    sb = make_sandbox("env_dump.handler", recorder=True, tracing="Active")
    r = sb.invoke({"names": ["_X_AMZN_TRACE_ID"]})
    runtime_header = r.response["env"]["_X_AMZN_TRACE_ID"]
    fields = dict(part.split("=", 1) for part in runtime_header.split(";"))
    assert fields["Sampled"] == "1" and len(fields["Parent"]) == 16
    root = fields["Root"].split("-")
    assert root[0] == "1" and len(root[1]) == 8 and len(root[2]) == 24
    for type_ in ("platform.start", "platform.runtimeDone", "platform.report"):
        tracing = records_of(sb, type_)[0]["tracing"]
        assert tracing["type"] == "X-Amzn-Trace-Id"
        assert tracing["spanId"] == fields["Parent"]          # Lambda's own segment is the runtime's parent
        assert fields["Root"] in tracing["value"]
    assert recorder_events(sb, "INVOKE")[0]["tracing"] == {"type": "X-Amzn-Trace-Id", "value": runtime_header}


def test_function_log_records_by_line_and_by_frame(make_sandbox):
    sb = make_sandbox("logging_lines.handler")
    r = sb.invoke({"lines": 2})
    texts = [ev.event["record"] for ev in sb.events if ev.event["type"] == "function"]
    assert "init line from print\n" in texts and "print line 1\n" in texts
    framed = [t for t in texts if "logging line one" in t]
    assert len(framed) == 1 and "with a second line" in framed[0]     # one logging call = one record
    assert r.request_id in framed[0]


def test_function_output_precedes_runtime_done_in_the_stream(make_sandbox):
    sb = make_sandbox("logging_lines.handler")
    r = sb.invoke({"lines": 500})
    stream = [ev.event for ev in sb.events]
    done_at = next(i for i, ev in enumerate(stream) if ev["type"] == "platform.runtimeDone")
    printed = [i for i, ev in enumerate(stream) if ev["type"] == "function" and "print line" in ev["record"]]
    assert len(printed) == 500 and max(printed) < done_at
    assert "init line from print\n" in [ev["record"] for ev in stream[:done_at]]
    assert r.outcome == "success"
