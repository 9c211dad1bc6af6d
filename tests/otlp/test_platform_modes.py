"""Platform modes on the exported OTLP data: the tenant id on spans and log records, durable functions,
Lambda Managed Instances and SnapStart restores (engine + sink + receiver)."""

from __future__ import annotations

from otel_sidecar.config import load_settings
from otel_sidecar.signals import SignalEngine

from tests.otlp.conftest import soon
from tests.unit import test_platform_modes as pm


def export(make_sink, receiver, events, **environ):
    settings, _ = load_settings({"AWS_LAMBDA_FUNCTION_NAME": "my-function", **environ})
    e = SignalEngine(settings)
    sink = make_sink()
    sink.accept(pm.feed(e, events) + e.finish(pm.T0 + 60))
    sink.shutdown(soon())
    return receiver.spans(), receiver.logs(), receiver.metrics()


def servers(spans):
    return {s["attributes"]["faas.invocation_id"]: s for s in spans if s["kind"] == "SERVER"}


def test_tenant_id_on_the_span_and_the_log_records(make_sink, receiver):
    events = pm.tenant_events("BlueTenant")
    spans, logs, _ = export(make_sink, receiver, events)
    (span,) = servers(spans).values()
    assert span["attributes"]["aws.lambda.tenant_id"] == "BlueTenant"
    assert len(logs) == 2
    assert all(lg["attributes"]["aws.lambda.tenant_id"] == "BlueTenant" for lg in logs)


def test_no_tenant_attribute_without_tenant_isolation(make_sink, receiver):
    events = pm.tenant_events("x")
    for ev in events:
        if isinstance(ev["record"], dict):
            ev["record"].pop("tenantId", None)
    spans, logs, _ = export(make_sink, receiver, events)
    assert all("aws.lambda.tenant_id" not in s["attributes"] for s in spans)
    assert all("aws.lambda.tenant_id" not in lg["attributes"] for lg in logs)


def test_lmi_concurrent_invocations_one_span_each_no_coldstart(make_sink, receiver):
    init, stream = pm.lmi_events(8)
    spans, logs, _ = export(make_sink, receiver, init + stream, **pm.LMI_ENV)
    by = servers(spans)
    assert sorted(by) == [pm.rid(i) for i in range(8)]
    assert len([s for s in spans if s["kind"] == "SERVER"]) == 8          # once each
    for span in by.values():
        assert span["attributes"]["faas.coldstart"] is False
        assert span["attributes"]["aws.lambda.managed_instances"] is True
        assert "aws.lambda.start_kind" not in span["attributes"]
    # each log record is in its own invocation's trace
    trace_of = {r: s["trace_id"] for r, s in by.items()}
    for lg in logs:
        r = lg["attributes"].get("faas.invocation_id")
        if r is not None:
            assert lg["trace_id"] == trace_of[r]
    # the init is a trace of its own, of kind managed_instances
    (init_span,) = [s for s in spans if s["name"].startswith("init ")]
    assert init_span["attributes"]["aws.lambda.init.kind"] == "managed_instances"
    assert init_span["trace_id"] not in trace_of.values()


def test_snapstart_restore_span_and_the_invocation_link(make_sink, receiver):
    spans, _, _ = export(make_sink, receiver, pm.snapstart_events(), **pm.SNAP_ENV)
    (inv,) = servers(spans).values()
    assert inv["attributes"]["aws.lambda.start_kind"] == "snap_start"
    assert inv["attributes"]["faas.coldstart"] is False
    assert inv["attributes"]["aws.lambda.snapstart.restore_duration_ms"] == 500.795
    (restore,) = [s for s in spans if s["name"].startswith("init ")]      # the snapshot's init has no span
    assert restore["attributes"]["aws.lambda.init.phase"] == "restore"
    assert restore["attributes"]["aws.lambda.snapstart.restore_duration_ms"] == 312.0
    assert [link["span_id"] for link in inv["links"]] == [restore["span_id"]]


def test_durable_marks_on_the_span(make_sink, receiver):
    arn = "arn:aws:lambda:us-east-1:1:function:orders:$LATEST/durable-execution/order-42/0f1e2d3c"
    events = pm.tenant_events("t")
    events[0]["record"]["runtimeVersion"] = "python:3.14.DurableFunction.v6"
    events[4]["record"]["executionArn"] = arn
    spans, _, _ = export(make_sink, receiver, events)
    (inv,) = servers(spans).values()
    a = inv["attributes"]
    assert a["aws.lambda.durable_function"] is True and a["aws.lambda.durable.execution_arn"] == arn
    assert (a["aws.lambda.durable.execution_name"], a["aws.lambda.durable.execution_id"]) == ("order-42", "0f1e2d3c")
