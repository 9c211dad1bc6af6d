"""Lambda Managed Instances mode (platform-2025.md 1): concurrency, SHUTDOWN-only registration, schema
2025-01-29, the LMI record set (no runtimeDone, reduced report), JSON logs, timeouts without a reset,
the environment ended by an extension exit."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from lambda_sandbox import SandboxConfig
from lambda_sandbox.api import ApiServer, Control, Invocation
from lambda_sandbox.config import ConfigError
from lambda_sandbox.managed_instances import dispatch

from tests.fixtures.extensions import delivered_events, extension_layer, parse_lines
from tests.sandbox.conftest import FUNCTIONS, records_of, types
from tests.sandbox.test_api import call, error_of, register

LMI = {"mode": "managed-instances"}
RECORDER_LMI = {"TEST_EXT_EVENTS": "SHUTDOWN", "TEST_EXT_SCHEMA": "2025-01-29"}


# ---- configuration -----------------------------------------------------------------------------------

def test_the_mode_implies_json_logs_no_freeze_published_version_and_the_long_init_limit():
    cfg = SandboxConfig(code_dir=FUNCTIONS, handler="hello.handler", concurrency=8, timeout_s=3, **LMI)
    assert (cfg.init_type, cfg.log_format, cfg.freeze, cfg.function_version) == (
        "lambda-managed-instances", "JSON", "none", "$LATEST.PUBLISHED")
    assert cfg.init_timeout_s == 130.0 and cfg.runtime_shutdown_ms == 600
    assert SandboxConfig(code_dir=FUNCTIONS, handler="a.b", timeout_s=600, **LMI).init_timeout_s == 600.0


@pytest.mark.parametrize("kwargs, words", [
    ({"concurrency": 8}, "concurrency=8 needs mode='managed-instances'"),
    ({"concurrency": 0, **LMI}, "concurrency=0 is out of range"),
    ({"concurrency": 65, **LMI}, "concurrency=65 is out of range"),
    ({"mode": "lmi"}, "mode='lmi' is not one of"),
    ({"snapstart": True, **LMI}, "snapstart=True is not available with mode='managed-instances'"),
    ({"lmi_error_status": "failure", **LMI}, "lmi_error_status='failure'"),
])
def test_bad_mode_values_are_config_errors_naming_the_field(kwargs, words):
    with pytest.raises(ConfigError, match=None) as exc:
        SandboxConfig(code_dir=FUNCTIONS, handler="hello.handler", **kwargs)
    assert words in str(exc.value)


# ---- the API in LMI mode (HTTP, no processes) -----------------------------------------------------------

@pytest.fixture
def lmi_api():
    control = Control("fn", "$LATEST.PUBLISHED", "app.handler", "123456789012")
    control.mode = "managed-instances"
    server = ApiServer(control).start()
    yield server
    server.stop()


def test_invoke_registration_is_refused_shutdown_only_is_accepted(lmi_api):
    with lmi_api.control.cv:
        lmi_api.control.add_external("ext")
        lmi_api.control.add_external("other")
    status, _, data = register(lmi_api, "ext", events=("INVOKE", "SHUTDOWN"))
    assert status == 403
    assert json.loads(data) == {"errorMessage": "INVOKE: ErrorInvalidEventType",
                                "errorType": "Extension.InvalidEventType"}
    assert register(lmi_api, "other", events=("SHUTDOWN",))[0] == 200


def test_internal_extensions_may_register_for_no_event(lmi_api):
    status, _, data = register(lmi_api, "internal", events=("SHUTDOWN",))
    assert status == 403 and error_of(data) == ("Extension.InvalidEventType",
                                                "No events allowed for internal extensions")
    assert register(lmi_api, "internal", events=())[0] == 200


@pytest.mark.parametrize("method, path", [("PUT", "/2020-08-15/logs"), ("GET", "/2021-04-23/credentials"),
                                          ("GET", "/2018-06-01/runtime/restore/next")])
def test_routes_lmi_does_not_mount_are_404(lmi_api, method, path):
    status, _, data = call(lmi_api, method, path, body=b"{}")
    assert (status, data) == (404, b"404 page not found\n")


def test_a_late_result_of_a_timed_out_invoke_gets_410_and_an_unknown_id_400(lmi_api):
    control = lmi_api.control
    with control.cv:
        control.lmi.timed_out.append("late-id")
        control.lmi.active["live-id"] = Invocation("live-id", b"{}", 0, "arn")
    status, _, data = call(lmi_api, "POST", "/2018-06-01/runtime/invocation/late-id/response", b"{}")
    assert status == 410 and error_of(data) == ("InvokeTimeout", "Invoke timeout")
    status, _, data = call(lmi_api, "POST", "/2018-06-01/runtime/invocation/nope/response", b"{}")
    assert status == 400 and error_of(data)[0] == "InvalidRequestID"
    assert call(lmi_api, "POST", "/2018-06-01/runtime/invocation/live-id/response", b"{}")[0] == 202


# ---- a real environment ------------------------------------------------------------------------------

def lmi_sandbox(make_sandbox, tmp_path, handler="modes_app.concurrent", extensions=("recorder",), env=None, **kw):
    merged = dict(RECORDER_LMI)
    merged.update(env or {})
    layers = [extension_layer(tmp_path, list(extensions))] if extensions else []
    return make_sandbox(handler, layers=layers, env=merged, **{**LMI, **kw})


def max_in_flight(events) -> int:
    """The largest number of invokes started and not yet reported, following the generated order."""
    live, peak = set(), 0
    for ev in events:
        if ev["type"] == "platform.start":
            live.add(ev["record"]["requestId"])
            peak = max(peak, len(live))
        elif ev["type"] == "platform.report":
            live.discard(ev["record"]["requestId"])
    return peak


@pytest.mark.sandbox
def test_concurrency_8_every_invocation_gets_exactly_one_start_and_report(make_sandbox, tmp_path):
    sb = lmi_sandbox(make_sandbox, tmp_path, concurrency=8)
    results = dispatch(sb, [{"n": i, "sleep_s": 0.3} for i in range(16)], 8)
    shut = sb.shutdown()
    assert [r.outcome for r in results] == ["success"] * 16, [r.error_type for r in results]
    assert sorted(r.response["n"] for r in results) == list(range(16))
    ids = {r.request_id for r in results}
    assert len(ids) == 16
    generated = [e.event for e in sb.events]
    for type_ in ("platform.start", "platform.report"):
        assert Counter(e["record"]["requestId"] for e in generated if e["type"] == type_) == {i: 1 for i in ids}
    assert "platform.runtimeDone" not in types(sb)
    assert 2 <= max_in_flight(generated) <= 8                  # invokes really overlapped, never above N ...
    assert len({r.response["pid"] for r in results}) >= 2      # ... in several runtime worker processes
    assert {r.response["maxConcurrency"] for r in results} == {"8"}
    assert {r.response["initType"] for r in results} == {"lambda-managed-instances"}
    # the subscriber (schema 2025-01-29) got each start and report exactly once
    items = parse_lines(sb.extension_lines("recorder"))
    got = delivered_events(items)
    for type_ in ("platform.start", "platform.report"):
        assert Counter(e["record"]["requestId"] for e in got if e["type"] == type_) == {i: 1 for i in ids}
    # SHUTDOWN is the only event an LMI extension sees
    assert [i["event"]["eventType"] for i in items if i["recorder"] == "event"] == ["SHUTDOWN"]
    assert shut.reason == "spindown" and shut.extensions == {"recorder": "Exited"}
    assert sb.resets == []


@pytest.mark.sandbox
def test_lmi_records_and_json_logs(make_sandbox, tmp_path):
    sb = lmi_sandbox(make_sandbox, tmp_path, concurrency=2)
    ok = sb.invoke({"n": 1, "sleep_s": 0})
    env = sb._extension_env()
    sb.shutdown()
    init_start = records_of(sb, "platform.initStart")[0]
    assert (init_start["initializationType"], init_start["functionVersion"]) == ("lambda-managed-instances",
                                                                                "$LATEST.PUBLISHED")
    assert [t for t in types(sb) if t.startswith("platform.init") or t == "platform.extension"] == [
        "platform.initStart", "platform.initRuntimeDone", "platform.extension", "platform.initReport"]
    assert records_of(sb, "platform.extension") == [{"name": "recorder", "state": "Ready", "events": ["SHUTDOWN"]}]
    start = records_of(sb, "platform.start")[0]
    assert start == {"requestId": ok.request_id, "version": "$LATEST.PUBLISHED",
                     "functionArn": "arn:aws:lambda:us-east-1:123456789012:function:my-function"}
    report = records_of(sb, "platform.report")[0]
    assert set(report) == {"requestId", "status", "metrics", "spans"} and report["status"] == "success"
    assert list(report["metrics"]) == ["durationMs"]
    assert [s["name"] for s in report["spans"]] == ["responseLatency", "responseDuration"]
    logs = [e.event["record"] for e in sb.events if e.event["type"] == "function"]
    assert logs and all(isinstance(rec, dict) for rec in logs)
    assert any(rec.get("requestId") == ok.request_id and rec.get("message") == "start 1" for rec in logs)
    assert env["AWS_LAMBDA_INITIALIZATION_TYPE"] == "lambda-managed-instances"
    assert "AWS_LAMBDA_MAX_CONCURRENCY" not in env


@pytest.mark.sandbox
def test_a_recorder_asking_for_invoke_is_refused_and_init_fails(make_sandbox, tmp_path):
    sb = lmi_sandbox(make_sandbox, tmp_path, handler="hello.handler", env={"TEST_EXT_EVENTS": "INVOKE,SHUTDOWN"})
    result = sb.invoke({})
    sb.shutdown()
    reg = [i for i in parse_lines(sb.extension_lines("recorder")) if i["recorder"] == "registered"][0]
    assert (reg["status"], reg["body"]) == (403, {"errorMessage": "INVOKE: ErrorInvalidEventType",
                                                   "errorType": "Extension.InvalidEventType"})
    assert result.outcome == "init_error" and result.error_type.startswith("Extension.")


@pytest.mark.sandbox
@pytest.mark.parametrize("strict, status", [(True, 400), (False, 200)])
def test_older_schema_versions_are_refused_when_strict(make_sandbox, tmp_path, strict, status):
    sb = lmi_sandbox(make_sandbox, tmp_path, handler="hello.handler", env={"TEST_EXT_SCHEMA": "2022-12-13"},
                     lmi_strict_schema=strict)
    sb.invoke({})
    sb.shutdown()
    sub = [i for i in parse_lines(sb.extension_lines("recorder")) if i["recorder"] == "subscribe"][0]
    assert sub["status"] == status
    if status == 400:
        assert sub["body"]["errorType"] == "ValidationError"
        assert sub["body"]["errorMessage"].startswith("schema validation error:")


@pytest.mark.sandbox
def test_a_timeout_fails_one_invoke_and_keeps_the_environment(make_sandbox, tmp_path):
    sb = lmi_sandbox(make_sandbox, tmp_path, extensions=(), concurrency=2, timeout_s=1)
    slow = sb.invoke({"n": 1, "sleep_s": 2.5})
    fast = sb.invoke({"n": 2, "sleep_s": 0})
    sb.shutdown()
    assert (slow.outcome, slow.status, slow.error_type) == ("timeout", "timeout", "Sandbox.Timedout")
    assert fast.outcome == "success"
    reports = {r["requestId"]: r for r in records_of(sb, "platform.report")}
    assert (reports[slow.request_id]["status"], reports[slow.request_id]["errorType"]) == ("timeout",
                                                                                            "Sandbox.Timedout")
    assert sb.resets == [] and len(records_of(sb, "platform.initStart")) == 1


@pytest.mark.sandbox
@pytest.mark.parametrize("rule, status", [("error", "error"), ("success", "success")])
def test_a_handled_error_has_the_configured_report_status(make_sandbox, tmp_path, rule, status):
    sb = lmi_sandbox(make_sandbox, tmp_path, extensions=(), lmi_error_status=rule)
    result = sb.invoke({"fail": True, "sleep_s": 0})
    sb.shutdown()
    assert result.outcome == "error" and result.status == status
    report = records_of(sb, "platform.report")[0]
    assert report["status"] == status and "spans" not in report
    if status == "error":   # RIE-LMI sanitises the type: "ValueError" is not Runtime.X/Function.X
        assert report["errorType"] == "Runtime.Unknown"
    else:
        assert "errorType" not in report
    assert result.response["errorType"] == "ValueError"      # the caller still gets the function's error


@pytest.mark.sandbox
def test_an_extension_exit_ends_the_environment(make_sandbox, tmp_path):
    env = {"TEST_EXT_ORDER__LOGS_RECORDER": "telemetry", "TEST_EXT_TELEMETRY_SCHEMA": "2025-01-29",
           "TEST_EXT_EVENTS__LOGS_RECORDER": "SHUTDOWN", "TEST_EXT_EXIT_ON_EVENT": "platform.start"}
    sb = lmi_sandbox(make_sandbox, tmp_path, extensions=("recorder", "logs_recorder"), env=env, timeout_s=10)
    crashed = sb.invoke({"n": 1, "sleep_s": 3})
    assert (crashed.outcome, crashed.status, crashed.error_type) == ("crash", "error", "Extension.Crash")
    assert [r.reason for r in sb.resets] == ["failure"]
    shutdown = [i["event"] for i in parse_lines(sb.extension_lines("recorder")) if i["recorder"] == "event"]
    assert [e.get("shutdownReason") for e in shutdown] == ["failure"]
    sb.invoke({"n": 2, "sleep_s": 0})          # a new environment: a new init, never a suppressed one
    sb.shutdown()
    assert [r["phase"] for r in records_of(sb, "platform.initStart")] == ["init", "init"]


@pytest.mark.sandbox
def test_an_init_timeout_sends_no_init_runtime_done(make_sandbox, tmp_path):
    sb = lmi_sandbox(make_sandbox, tmp_path, handler="slow_init.handler", extensions=(),
                     env={"SLOW_INIT_S": "2.0"}, init_timeout_s=0.5)
    result = sb.invoke({})
    sb.shutdown()
    assert (result.outcome, result.error_type) == ("timeout", "Sandbox.Timedout")
    assert "platform.initRuntimeDone" not in types(sb)
    report = records_of(sb, "platform.initReport")[0]
    assert (report["status"], report["errorType"], report["phase"]) == ("timeout", "Sandbox.Timedout", "init")


@pytest.mark.sandbox
def test_more_invokes_than_workers_wait_for_a_free_worker(make_sandbox, tmp_path):
    sb = lmi_sandbox(make_sandbox, tmp_path, extensions=(), concurrency=1)
    results = dispatch(sb, [{"n": i, "sleep_s": 0.2} for i in range(3)], 3)
    sb.shutdown()
    assert [r.outcome for r in results] == ["success"] * 3
    assert max_in_flight([e.event for e in sb.events]) == 1       # one worker: one invoke at a time
    assert len({r.response["pid"] for r in results}) == 1
