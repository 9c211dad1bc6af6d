"""SnapStart mode (platform-2025.md 4): init at publish, restore events and fields, runtime hooks
(snapshot_restore_py through awslambdaric), late delivery of snapshot-time init events, credentials."""

from __future__ import annotations

import json

import pytest
from lambda_sandbox import SandboxConfig
from lambda_sandbox.config import ConfigError

from tests.fixtures.extensions import delivered_events, extension_layer, parse_lines
from tests.sandbox.conftest import FUNCTIONS, records_of, types

pytestmark = pytest.mark.sandbox


def snap(make_sandbox, tmp_path, env=None, **kw):
    return make_sandbox("snap_hooks.handler", layers=[extension_layer(tmp_path)], snapstart=True,
                        env=env or {}, **kw)


def test_config_implies_snap_start_and_a_published_version():
    cfg = SandboxConfig(code_dir=FUNCTIONS, handler="snap_hooks.handler", snapstart=True)
    assert (cfg.init_type, cfg.function_version, cfg.init_timeout_s, cfg.restore_timeout_s) == (
        "snap-start", "1", 130.0, 10.0)
    with pytest.raises(ConfigError, match="tenant_id='blue' cannot be combined with snapstart"):
        SandboxConfig(code_dir=FUNCTIONS, handler="a.b", snapstart=True, tenant_id="blue")


def test_publish_then_restore_then_invoke(make_sandbox, tmp_path):
    sb = snap(make_sandbox, tmp_path, env={"AWS_ACCESS_KEY_ID": "AKIDSANDBOXTEST"})
    published = sb.init()
    assert published.status == "success"
    # published: the runtime waits in restore/next; nothing of the restore has happened yet
    assert "platform.restoreStart" not in types(sb)
    r1 = sb.invoke({})
    r2 = sb.invoke({})
    sb.shutdown()
    assert (r1.outcome, r2.outcome) == ("success", "success")
    # hooks: before-snapshot in reverse registration order at publish, after-restore once
    assert r1.response["ran"] == ["before_two", "before_one", "after_restore"]
    assert r2.response["ran"] == r1.response["ran"]
    assert r1.response["initType"] == "snap-start"
    # no log group/stream variables; credentials from the endpoint, not from the environment
    assert r1.response["logGroup"] is None and r1.response["accessKeyInEnv"] is False
    assert r1.response["credentialsUri"].endswith("/2021-04-23/credentials") and r1.response["hasToken"]
    assert r1.response["accessKeyId"] == "AKIDSANDBOXTEST"
    assert r1.response["credentialKeys"] == ["AccessKeyId", "Expiration", "SecretAccessKey", "Token"]

    assert types(sb) == [
        "platform.initStart", "platform.telemetrySubscription", "platform.initRuntimeDone",
        "platform.extension", "platform.initReport",
        "platform.restoreStart", "platform.restoreRuntimeDone", "platform.restoreReport",
        "platform.start", "platform.runtimeDone", "platform.report",
        "platform.start", "platform.runtimeDone", "platform.report"]
    assert records_of(sb, "platform.initStart")[0]["initializationType"] == "snap-start"
    restore_start = records_of(sb, "platform.restoreStart")[0]
    assert set(restore_start) == {"runtimeVersion", "runtimeVersionArn", "functionName", "functionVersion",
                                  "instanceId", "instanceMaxMemory"}
    assert (restore_start["functionVersion"], restore_start["instanceMaxMemory"]) == ("1", 128 * 1024 * 1024)
    assert records_of(sb, "platform.restoreRuntimeDone") == [{"status": "success"}]
    rep = records_of(sb, "platform.restoreReport")[0]
    assert rep["status"] == "success" and rep["metrics"]["durationMs"] > 0
    first, second = records_of(sb, "platform.report")
    assert first["metrics"]["restoreDurationMs"] == rep["metrics"]["durationMs"]
    assert first["metrics"]["billedRestoreDurationMs"] >= 1
    assert "initDurationMs" not in first["metrics"]
    assert not {"restoreDurationMs", "billedRestoreDurationMs"} & set(second["metrics"])

    lines = sb.platform_lines()
    assert any(ln.startswith("INIT_REPORT Init Duration:") for ln in lines)
    assert any(ln.startswith("RESTORE_REPORT Restore Duration:") for ln in lines)
    report_line = next(ln for ln in lines if ln.startswith(f"REPORT RequestId: {r1.request_id}"))
    assert "\tRestore Duration: " in report_line and "\tBilled Restore Duration: " in report_line
    assert "Init Duration" not in report_line


def test_extensions_get_no_restore_event_and_the_init_events_after_the_restore(make_sandbox, tmp_path):
    sb = snap(make_sandbox, tmp_path)
    r = sb.invoke({})
    sb.shutdown()
    items = parse_lines(sb.extension_lines("recorder"))
    assert [i["event"]["eventType"] for i in items if i["recorder"] == "event"] == ["INVOKE", "SHUTDOWN"]
    got = [e["type"] for e in delivered_events(items) if e["type"].startswith("platform.")]
    # every generated platform event delivered once; the ones still buffered at the snapshot after restore
    assert sorted(got) == sorted(types(sb))
    assert got.index("platform.initReport") > got.index("platform.restoreReport")
    assert got.index("platform.restoreStart") < got.index("platform.start")
    assert r.outcome == "success"


def test_an_after_restore_hook_failure_fails_the_restore(make_sandbox, tmp_path):
    sb = snap(make_sandbox, tmp_path, env={"SNAP_FAIL": "after_restore"})
    r = sb.invoke({})
    sb.shutdown()
    assert (r.outcome, r.status, r.error_type) == ("init_error", "error", "Runtime.AfterRestoreError")
    assert records_of(sb, "platform.restoreRuntimeDone")[0] == {"status": "error",
                                                                "errorType": "Runtime.AfterRestoreError"}
    assert records_of(sb, "platform.restoreReport")[0]["status"] == "error"
    assert "platform.start" not in types(sb)
    assert [x.reason for x in sb.resets] == ["failure"]


def test_credentials_endpoint_checks_the_token_and_exists_only_with_snapstart():
    from lambda_sandbox.api import ApiServer, Control

    from tests.sandbox.test_api import call

    control = Control("fn", "1", "app.handler", "123456789012")
    server = ApiServer(control).start()
    try:
        assert call(server, "GET", "/2021-04-23/credentials")[0] == 404          # not a SnapStart function
        control.snapstart = True
        control.credentials_token = "tok"
        control.credentials = {"AccessKeyId": "AK", "SecretAccessKey": "SK", "Token": "T",
                               "Expiration": "2030-01-01T00:00:00Z"}
        status, _, data = call(server, "GET", "/2021-04-23/credentials", headers={"Authorization": "tok"})
        assert status == 200 and json.loads(data)["AccessKeyId"] == "AK"
        status, _, data = call(server, "GET", "/2021-04-23/credentials", headers={"Authorization": "wrong"})
        assert (status, data) == (404, b"cannot get credentials for the provided token")
        # restore/next is only valid for a runtime that has not called /next yet
        with control.cv:
            control.runtime.state = "Ready"
        assert call(server, "GET", "/2018-06-01/runtime/restore/next")[0] == 403
    finally:
        server.stop()
