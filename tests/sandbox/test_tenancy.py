"""Tenant isolation (platform-2025.md 2): the tenant id where Lambda carries it, one environment per tenant."""

from __future__ import annotations

import pytest
from lambda_sandbox import SandboxConfig
from lambda_sandbox.config import ConfigError
from lambda_sandbox.tenancy import TenantPool

from tests.fixtures.extensions import extension_layer, parse_lines
from tests.sandbox.conftest import FUNCTIONS, records_of


@pytest.mark.parametrize("bad", ["", "x" * 257, "tab\there", "new\nline"])
def test_invalid_tenant_ids_are_config_errors(bad):
    with pytest.raises(ConfigError, match="tenant_id="):
        SandboxConfig(code_dir=FUNCTIONS, handler="a.b", tenant_id=bad)


@pytest.mark.sandbox
def test_the_tenant_id_is_carried_where_lambda_carries_it(make_sandbox, tmp_path):
    sb = make_sandbox("modes_app.tenant", layers=[extension_layer(tmp_path)], log_format="JSON")
    r = sb.invoke({}, tenant_id="BlueTenant")
    sb.shutdown()
    assert r.outcome == "success" and r.response["tenantId"] == "BlueTenant"      # context.tenant_id
    for type_ in ("platform.start", "platform.runtimeDone", "platform.report"):
        assert records_of(sb, type_)[0]["tenantId"] == "BlueTenant", type_
    assert "tenantId" not in records_of(sb, "platform.initStart")[0]
    logs = [e.event["record"] for e in sb.events if e.event["type"] == "function"]
    mine = [rec for rec in logs if isinstance(rec, dict) and rec.get("message") == "tenant handler"]
    assert mine and all(rec.get("tenantId") == "BlueTenant" for rec in mine)
    plain = [rec for rec in logs if isinstance(rec, dict) and rec.get("message") == "a plain line"]
    assert plain and all((rec.get("requestId"), rec.get("tenantId")) == (r.request_id, "BlueTenant") for rec in plain)
    invoke = [i["event"] for i in parse_lines(sb.extension_lines("recorder"))
              if i["recorder"] == "event" and i["event"].get("eventType") == "INVOKE"]
    assert len(invoke) == 1 and "tenantId" not in invoke[0]


@pytest.mark.sandbox
def test_an_environment_serves_one_tenant(make_sandbox):
    sb = make_sandbox("modes_app.tenant", tenant_id="blue")
    assert sb.invoke({}).response["tenantId"] == "blue"          # the configured tenant by default
    with pytest.raises(ConfigError, match="serves tenant 'blue'"):
        sb.invoke({}, tenant_id="green")
    sb.shutdown()


@pytest.mark.sandbox
def test_a_pool_makes_one_environment_per_tenant(tmp_path):
    cfg = SandboxConfig(code_dir=FUNCTIONS, handler="modes_app.tenant", log_format="JSON")
    with TenantPool(cfg) as pool:
        results = [pool.invoke({}, tenant_id=t) for t in ("blue", "green", "blue")]
        pool.shutdown()
        assert [r.response["tenantId"] for r in results] == ["blue", "green", "blue"]
        assert list(pool.sandboxes) == ["blue", "green"]
        blue, green = pool.sandboxes["blue"], pool.sandboxes["green"]
        assert len(records_of(blue, "platform.initStart")) == 1 and len(records_of(green, "platform.initStart")) == 1
        assert {r["tenantId"] for r in records_of(blue, "platform.report")} == {"blue"}
        assert {r["tenantId"] for r in records_of(green, "platform.report")} == {"green"}
        report = pool.report()
        assert [e["tenantId"] for e in report["tenantEnvironments"]] == ["blue", "green"]
