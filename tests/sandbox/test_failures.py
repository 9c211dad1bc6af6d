"""Failures and resets (lambda-apis.md 4.4 and sequences B-D of 5.7), and the shutdown deadline (4.3)."""

from __future__ import annotations

import time

import pytest

from .conftest import recorder_events, recorder_items, records_of, types

pytestmark = pytest.mark.sandbox


def test_handled_error_keeps_status_success(make_sandbox):
    sb = make_sandbox("error.handler", recorder=True)
    r = sb.invoke({"order": 7})
    assert (r.outcome, r.error_type, r.status) == ("error", "OrderNotFound", "success")
    assert r.response["errorMessage"] == "no order 7"
    done = records_of(sb, "platform.runtimeDone")[0]
    assert done["status"] == "success" and done["metrics"]["producedBytes"] == 0 and "spans" not in done
    assert records_of(sb, "platform.report")[0]["status"] == "success"
    assert sb.invoke({}).outcome == "error"             # the environment stays warm: no reset
    assert types(sb).count("platform.initStart") == 1


def test_timeout_resets_and_next_invoke_does_a_suppressed_init(make_sandbox):
    sb = make_sandbox("sleepy.handler", recorder=True, timeout_s=1.0)
    r1 = sb.invoke({"sleep_s": 30})
    r2 = sb.invoke({"sleep_s": 0})
    sb.shutdown()
    assert (r1.outcome, r1.status) == ("timeout", "timeout")
    assert "Task timed out after 1.00 seconds" in r1.response["errorMessage"]
    assert r2.outcome == "success" and r2.response == {"slept": True}
    done = records_of(sb, "platform.runtimeDone")
    assert done[0]["status"] == "timeout" and "errorType" not in done[0]
    reports = records_of(sb, "platform.report")
    assert reports[0]["status"] == "timeout" and reports[0]["metrics"]["durationMs"] >= 1000
    assert "initDurationMs" not in reports[1]["metrics"]            # suppressed init: no separate init
    assert [s["phase"] for s in records_of(sb, "platform.initStart")] == ["init", "invoke"]
    assert [s["phase"] for s in records_of(sb, "platform.initReport")] == ["init", "invoke"]
    assert [e["shutdownReason"] for e in recorder_events(sb, "SHUTDOWN")] == ["timeout", "spindown"]
    # the extension is a new process after the reset: it registers and subscribes again
    ids = [i["id"] for i in recorder_items(sb, "registered")]
    assert len(ids) == 2 and ids[0] != ids[1]
    assert len(records_of(sb, "platform.telemetrySubscription")) == 2
    # the timeout's report reached the old subscriber during the reset's shutdown window
    assert r1.request_id in recorder_items(sb, "exit")[0]["reports"]
    assert any("Task timed out after 1.00 seconds" in line for line in sb.platform_lines())


def test_runtime_crash_is_runtime_exit_error_with_failure_shutdown(make_sandbox):
    sb = make_sandbox("crash.handler", recorder=True)
    r = sb.invoke({"code": 3})
    assert (r.outcome, r.error_type, r.status) == ("crash", "Runtime.ExitError", "error")
    assert "exit status 3" in r.response["errorMessage"]
    for type_ in ("platform.runtimeDone", "platform.report"):
        rec = records_of(sb, type_)[0]
        assert (rec["status"], rec["errorType"]) == ("error", "Runtime.ExitError")
    assert [e["shutdownReason"] for e in recorder_events(sb, "SHUTDOWN")] == ["failure"]
    report_line = [ln for ln in sb.platform_lines() if ln.startswith("REPORT")][0]
    assert report_line.endswith("Status: error\tError Type: Runtime.ExitError")


def test_extension_crash_during_invoke(make_sandbox):
    sb = make_sandbox("sleepy.handler", recorder=True, env={"TEST_EXT_CRASH_AT": "invoke:1"})
    r = sb.invoke({"sleep_s": 0.5})      # the extension dies while the handler still runs
    assert (r.outcome, r.error_type, r.status) == ("crash", "Extension.Crash", "error")
    assert "Extension recorder exited with error: exit status 1" in r.response["errorMessage"]
    for type_ in ("platform.runtimeDone", "platform.report"):
        rec = records_of(sb, type_)[0]
        assert (rec["status"], rec["errorType"]) == ("error", "Extension.Crash")
    sb.invoke({"sleep_s": 0})
    assert [s["phase"] for s in records_of(sb, "platform.initStart")] == ["init", "invoke"]


def test_extension_crash_during_init_fails_init(make_sandbox):
    sb = make_sandbox(recorder=True, env={"TEST_EXT_CRASH_AT": "init"})
    r = sb.invoke({})
    assert (r.outcome, r.error_type) == ("init_error", "Extension.Crash")
    assert types(sb) == ["platform.initStart", "platform.telemetrySubscription", "platform.initRuntimeDone",
                         "platform.extension", "platform.initReport"]
    for type_ in ("platform.initRuntimeDone", "platform.initReport"):
        rec = records_of(sb, type_)[0]
        assert (rec["status"], rec["errorType"], rec["phase"]) == ("error", "Extension.Crash", "init")
    assert sb.function_lines() == []            # the runtime is not started before every extension registered


def test_failed_function_init(make_sandbox):
    sb = make_sandbox("init_fail.handler")
    r1 = sb.invoke({})
    r2 = sb.invoke({})
    assert (r1.outcome, r1.error_type) == ("init_error", "Runtime.Unknown")
    assert r1.response["errorType"] == "RuntimeError"
    assert r1.response["errorMessage"] == "cannot initialise: missing configuration"
    rec = records_of(sb, "platform.initReport")
    assert [(x["phase"], x["status"], x["errorType"]) for x in rec] == [
        ("init", "error", "Runtime.Unknown"), ("invoke", "error", "Runtime.Unknown")]
    assert r2.outcome == "init_error"
    assert any(ln.startswith("INIT_REPORT Init Duration:") and ln.endswith("Error Type: Runtime.Unknown")
               for ln in sb.platform_lines())


def test_init_timeout_then_init_retried_inside_the_invoke(make_sandbox):
    sb = make_sandbox("slow_init.handler", env={"SLOW_INIT_S": "1.0"}, init_timeout_s=0.5, timeout_s=5.0)
    r = sb.invoke({})
    assert r.outcome == "success"
    reports = records_of(sb, "platform.initReport")
    assert [(x["phase"], x["status"]) for x in reports] == [("init", "timeout"), ("invoke", "success")]
    assert "initDurationMs" not in records_of(sb, "platform.report")[0]["metrics"]
    assert r.duration_ms >= 1000            # the suppressed init counts towards the invoke


def test_shutdown_deadline_and_sigkill_of_a_stubborn_extension(make_sandbox):
    sb = make_sandbox(recorder=True, env={"TEST_EXT_IGNORE_SHUTDOWN": "1"})
    sb.invoke({})
    procs = list(sb.launcher.processes)
    result = sb.shutdown()
    finished_ms = time.time() * 1000
    deadline_ms = recorder_events(sb, "SHUTDOWN")[0]["deadlineMs"]
    assert result.extensions == {"recorder": "ShutdownFailed"} and "recorder" in result.killed
    assert finished_ms >= deadline_ms                   # it got its whole window
    assert finished_ms <= deadline_ms + 1500            # and was killed right after it
    assert all(not p.alive() for p in procs)


def test_out_of_memory_with_enforced_limit(make_sandbox):
    sb = make_sandbox("memhog.handler", enforce_memory=True)
    if not sb.applied["memory_limit"]:
        pytest.skip("no writable memory cgroup on this machine")
    r = sb.invoke({"mb": 400})
    assert (r.outcome, r.error_type) == ("crash", "Runtime.OutOfMemory")
    rep = records_of(sb, "platform.report")[0]
    assert rep["errorType"] == "Runtime.OutOfMemory" and rep["metrics"]["maxMemoryUsedMB"] >= 100
    assert sb.invoke({"mb": 10}).outcome == "success"


def test_non_executable_extension_is_a_launch_error(make_sandbox, tmp_path):
    layer = tmp_path / "bad-layer"
    (layer / "extensions").mkdir(parents=True)
    (layer / "extensions" / "not-executable").write_text("#!/bin/sh\nexit 0\n")
    sb = make_sandbox(layers=[layer])
    r = sb.invoke({})
    assert (r.outcome, r.error_type) == ("init_error", "Extension.LaunchError")
    assert records_of(sb, "platform.extension") == [{"name": "not-executable", "state": "LaunchError",
                                                     "events": [], "errorType": "PermissionDenied"}]


def test_extension_overrunning_the_deadline_times_the_invoke_out(make_sandbox):
    sb = make_sandbox(recorder=True, timeout_s=1.0, env={"TEST_EXT_INVOKE_SLEEP_MS": "1500"})
    r = sb.invoke({"n": 1})
    sb.shutdown()
    # the caller got its response at once; the invoke phase still ends in a timeout (4.2 "Deadline")
    assert r.outcome == "success" and r.status == "timeout"
    assert r.latency_ms - r.init_duration_ms < 1000      # the response did not wait for the extension
    assert [x["status"] for x in records_of(sb, "platform.runtimeDone")] == ["success"]
    assert records_of(sb, "platform.report")[0]["status"] == "timeout"
    assert [e["shutdownReason"] for e in recorder_events(sb, "SHUTDOWN")] == ["timeout"]


def test_extension_that_never_registers_times_init_out(make_sandbox):
    sb = make_sandbox(recorder=True, init_timeout_s=0.5, timeout_s=1.0,
                      env={"TEST_EXT_EVENTS": "INVOKE", "TEST_EXT_TYPES": "none", "TEST_EXT_NAME": "wrong-name"})
    r = sb.invoke({})
    # a register under another name is an internal extension; the file's own record never registers (2.1)
    assert [(x["phase"], x["status"]) for x in records_of(sb, "platform.initReport")] == [
        ("init", "timeout"), ("invoke", "timeout")]
    assert r.outcome == "timeout"
    assert sb.function_lines() == []


def test_internal_extension_is_waited_for_and_gets_invokes(make_sandbox):
    sb = make_sandbox("internal_ext.handler")
    sb.invoke({})
    r = sb.invoke({})
    assert records_of(sb, "platform.extension") == [{"name": "internal-probe", "state": "Ready",
                                                     "events": ["INVOKE"]}]
    assert len(r.response["internal_saw"]) >= 1
    assert records_of(sb, "platform.report")[1]["spans"][0]["name"] == "extensionOverhead"
    shut = sb.shutdown()
    assert shut.runtime == "Exited" and shut.duration_ms < 2000   # SIGTERM, 500 ms budget (4.3)


def test_out_of_memory_without_a_memory_cgroup_uses_the_watchdog(make_sandbox, monkeypatch):
    import lambda_sandbox.resources as resources

    class NoMemoryCgroups(resources.Cgroups):
        def __init__(self, name, controllers, **kw):
            super().__init__(name, [c for c in controllers if c != "memory"], **kw)

    monkeypatch.setattr(resources, "Cgroups", NoMemoryCgroups)
    sb = make_sandbox("memhog.handler", enforce_memory=True)
    assert sb.applied["memory_limit"] == "watchdog"
    r = sb.invoke({"mb": 400})
    assert (r.outcome, r.error_type) == ("crash", "Runtime.OutOfMemory")
    assert sb.invoke({"mb": 10}).outcome == "success"
