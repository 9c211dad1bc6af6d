"""The sidecar in the sandbox's platform modes (platform-2025.md): Lambda Managed Instances with 8 concurrent
invocations, SnapStart (publish, restore, invoke) and tenant isolation, through EMF and OTLP."""

from __future__ import annotations

from collections import Counter

import pytest
from lambda_sandbox import OtlpReceiver
from lambda_sandbox.managed_instances import dispatch

from tests.e2e.test_sidecar_e2e import FN, assert_healthy, total
from tests.helpers import SIDECAR_NAME, emf_dimension_sets, emf_values, sidecar_emf, sidecar_log_lines

pytestmark = pytest.mark.sandbox


def servers(spans):
    return [s for s in spans if s["kind"] == "SERVER"]


def test_lmi_concurrency_8_every_invocation_counted_once(sidecar_sandbox):
    with OtlpReceiver() as rx:
        sb = sidecar_sandbox("modes_app.concurrent", mode="managed-instances", concurrency=8,
                             env={"SIDECAR_OTLP_LOGS": "on"}, otlp_receiver=rx)
        results = dispatch(sb, [{"n": i, "sleep_s": 0.2} for i in range(24)], 8)
        assert [r.outcome for r in results] == ["success"] * 24
        ids = {r.request_id for r in results}
        assert len({r.response["pid"] for r in results}) >= 2          # the invokes really overlapped
        shut = sb.shutdown()
        assert shut.extensions[SIDECAR_NAME] == "Exited"
        spans = rx.wait_for(lambda r: len(servers(r.spans())) >= 24 and r.spans())
        logs = rx.logs()
    # OTLP: one SERVER span per invocation, none twice, none a cold start
    assert Counter(s["attributes"]["faas.invocation_id"] for s in servers(spans)) == {i: 1 for i in ids}
    for s in servers(spans):
        assert s["attributes"]["faas.coldstart"] is False
        assert s["attributes"]["aws.lambda.managed_instances"] is True
    trace_of = {s["attributes"]["faas.invocation_id"]: s["trace_id"] for s in servers(spans)}
    started = [lg for lg in logs if "start " in str(lg.get("body"))]
    assert {lg["attributes"]["faas.invocation_id"] for lg in started} == ids      # each handler's own line ...
    assert all(lg["trace_id"] == trace_of[lg["attributes"]["faas.invocation_id"]] for lg in started)  # ... in its trace
    # EMF: every invocation exactly once, no cold start; the init counted once, as a managed-instances init
    docs = sidecar_emf(sb)
    assert total(docs, "Invocations") == 24
    assert sorted(emf_values(docs, "Duration", FunctionName=FN)) == pytest.approx(
        sorted(r.duration_ms for r in results), abs=0.01)
    assert total(docs, "ColdStart") == 0 and total(docs, "ProactiveInit") == 0
    assert total(docs, "Inits") == 1
    assert total(docs, "SidecarDropped") == 0
    lines = sidecar_log_lines(sb)
    assert not any("refused" in ln or "degraded" in ln for ln in lines), lines
    assert_healthy(sb)


def test_snapstart_restore_is_counted_and_the_snapshot_init_is_not_a_cold_start(sidecar_sandbox):
    with OtlpReceiver() as rx:
        sb = sidecar_sandbox("snap_hooks.handler", snapstart=True, otlp_receiver=rx)
        results = [sb.invoke({}) for _ in range(3)]
        assert [r.outcome for r in results] == ["success"] * 3
        shut = sb.shutdown()
        assert shut.extensions[SIDECAR_NAME] == "Exited"
        spans = rx.wait_for(lambda r: len(servers(r.spans())) >= 3 and r.spans())
    restore = [e.event for e in sb.events if e.event["type"] == "platform.restoreReport"][0]
    docs = sidecar_emf(sb)
    assert total(docs, "Invocations") == 3
    assert total(docs, "ColdStart") == 0
    assert total(docs, "Restores") == 1
    assert emf_values(docs, "RestoreDuration", FunctionName=FN) == pytest.approx(
        [restore["record"]["metrics"]["durationMs"]], abs=0.01)
    # InitDuration holds this environment's start only (the restore), never the publish-time init
    assert emf_values(docs, "InitDuration", FunctionName=FN) == pytest.approx(
        [restore["record"]["metrics"]["durationMs"]], abs=0.01)
    assert total(docs, "Inits") == 1
    first = [s for s in servers(spans) if s["attributes"]["faas.invocation_id"] == results[0].request_id][0]
    assert first["attributes"]["aws.lambda.start_kind"] == "snap_start"
    assert "aws.lambda.snapstart.restore_duration_ms" in first["attributes"]
    assert [s["attributes"]["aws.lambda.init.phase"] for s in spans if s["name"].startswith("init ")] == ["restore"]
    assert_healthy(sb)


def test_tenant_id_on_spans_logs_and_the_opt_in_dimension(sidecar_sandbox):
    with OtlpReceiver() as rx:
        sb = sidecar_sandbox("modes_app.tenant", tenant_id="BlueTenant", log_format="JSON",
                             env={"SIDECAR_TENANT_DIMENSION": "on"}, otlp_receiver=rx)
        results = [sb.invoke({}, tenant_id="BlueTenant") for _ in range(2)]
        assert [r.response["tenantId"] for r in results] == ["BlueTenant"] * 2
        sb.shutdown()
        spans = rx.wait_for(lambda r: len(servers(r.spans())) >= 2 and r.spans())
        logs = rx.wait_for(lambda r: len(r.logs()) >= 4 and r.logs())
    assert {s["attributes"]["aws.lambda.tenant_id"] for s in servers(spans)} == {"BlueTenant"}
    function_logs = [lg for lg in logs if lg["attributes"].get("log.source") == "function"]
    assert function_logs and {lg["attributes"].get("aws.lambda.tenant_id") for lg in function_logs} == {"BlueTenant"}
    docs = sidecar_emf(sb)
    assert total(docs, "Invocations") == 2
    assert sum(emf_values(docs, "Invocations", FunctionName=FN, TenantId="BlueTenant")) == 2
    assert ["FunctionName", "TenantId"] in emf_dimension_sets(docs, "Invocations")
    assert ["FunctionName"] in emf_dimension_sets(docs, "Invocations")        # the roll-up stays
    assert_healthy(sb)


def test_no_tenant_dimension_by_default(sidecar_sandbox):
    sb = sidecar_sandbox("modes_app.tenant", tenant_id="GreenTenant")
    sb.invoke({}, tenant_id="GreenTenant")
    sb.shutdown()
    docs = sidecar_emf(sb)
    assert total(docs, "Invocations") == 1
    assert all("TenantId" not in d for d in docs)
