"""End to end: a function with the real OpenTelemetry SDK exports to the sidecar's local endpoint in the sandbox;
the sidecar forwards to the embedded receiver after the response."""

from __future__ import annotations

import pytest
from lambda_sandbox import OtlpReceiver, Sandbox, SandboxConfig

from tests.helpers import dev_layer, emf_values, sidecar_emf
from tests.local_otlp.conftest import INSTRUMENTED, free_port

pytestmark = pytest.mark.sandbox
SIDECAR = "otel-sidecar"


@pytest.fixture
def receiver():
    with OtlpReceiver() as rx:
        yield rx


@pytest.fixture
def make(tmp_path, receiver, sdk_layer):
    made = []

    def factory(env=None, rx=receiver, **kwargs) -> Sandbox:
        port = free_port()
        full_env = {"APP_OTLP_ENDPOINT": f"http://127.0.0.1:{port}", "SIDECAR_LOCAL_OTLP_ENDPOINT": f"127.0.0.1:{port}"}
        full_env.update(env or {})
        kwargs.setdefault("timeout_s", 10.0)
        sb = Sandbox(SandboxConfig(code_dir=str(INSTRUMENTED), handler="app.handler", function_name="instrumented",
                                   layers=[dev_layer(tmp_path / f"layer{len(made)}"), sdk_layer], env=full_env,
                                   otlp_receiver=rx, **kwargs)).start()
        made.append(sb)
        return sb

    yield factory
    for sb in made:
        sb.close()


def function_spans(rx, name="handle"):
    return [s for s in rx.spans() if s["name"] == name and s["scope"] == "examples.instrumented"]


def invocation_spans(rx):
    return {s["attributes"]["faas.invocation_id"]: s for s in rx.spans()
            if s["kind"] == "SERVER" and "faas.invocation_id" in s["attributes"]}


def test_spans_metrics_and_logs_reach_the_backend_in_the_invocations_trace(make, receiver):
    sb = make(tracing="Active")
    results = [sb.invoke({"route": "/orders"}) for _ in range(3)]
    assert all(r.outcome == "success" for r in results)
    sb.shutdown()
    assert receiver.wait_for(lambda rx: len(function_spans(rx)) == 3 and len(invocation_spans(rx)) == 3, timeout=10)
    invocations = invocation_spans(receiver)
    for r, span in zip(results, sorted(function_spans(receiver), key=lambda s: s["start_ns"])):
        inv = invocations[span["attributes"]["app.request_id"]]
        # one trace: the function continued the X-Ray trace; its span is a child of the invocation span
        assert span["trace_id"] == inv["trace_id"] == r.response["trace_id"]
        assert span["parent_span_id"] == inv["span_id"]
        # the default SIDECAR_SPAN_PARENT=none: the invocation is the root an OTLP backend lists
        assert inv["parent_span_id"] is None
        # the function's resource as it sent it, plus the Lambda attributes it lacked
        res = span["resource"]
        assert res["service.name"] == "instrumented" and res["telemetry.sdk.name"] == "opentelemetry"
        assert (res["cloud.provider"], res["cloud.platform"], res["faas.name"]) == ("aws", "aws_lambda",
                                                                                  "instrumented")
        assert res["faas.max_memory"] == 128 * 1024 * 1024
    points = [p for p in receiver.metrics() if p["name"] == "app.requests"]
    assert points and points[-1]["attributes"] == {"app.route": "/orders"}
    bodies = [lg["body"] for lg in receiver.logs() if lg["scope"] == "examples.instrumented"]
    assert len(bodies) == 3 and all(b.startswith("handled request ") for b in bodies)
    # counted: what the function sent and what went out
    assert sum(emf_values(sidecar_emf(sb), "SidecarFunctionOtlpReceived")) >= 3 + 3 + 1
    assert sum(emf_values(sidecar_emf(sb), "SidecarFunctionOtlpForwarded")) >= 3 + 3 + 1


def test_span_parent_xray_puts_the_invocation_under_lambdas_segment(make, receiver):
    sb = make(tracing="Active", env={"SIDECAR_SPAN_PARENT": "xray"})
    r = sb.invoke({})
    sb.shutdown()
    assert receiver.wait_for(lambda rx: r.request_id in invocation_spans(rx) and function_spans(rx), timeout=10)
    start = next(ev.event["record"] for ev in sb.events if ev.event["type"] == "platform.start")
    parent = dict(p.split("=", 1) for p in start["tracing"]["value"].split(";"))["Parent"]
    assert invocation_spans(receiver)[r.request_id]["parent_span_id"] == parent
    assert function_spans(receiver)[0]["parent_span_id"] == invocation_spans(receiver)[r.request_id]["span_id"]


def test_a_flood_of_spans_is_bounded_and_counted_and_the_function_returns(make, receiver):
    # 8,000 spans per invocation, 16 exports of 512 per force_flush: more than the sidecar's share of a 1 MB budget
    sb = make(env={"SIDECAR_MEMORY_BUDGET_MB": "1"})
    results = [sb.invoke({"spans": 8000, "logs": 0, "metrics": False}) for _ in range(4)]
    assert all(r.outcome == "success" for r in results)
    sb.shutdown()
    assert receiver.wait_for(lambda rx: len(invocation_spans(rx)) == 4, timeout=10)
    sent = 4 * 8001
    forwarded = len(function_spans(receiver, "work")) + len(function_spans(receiver))
    dropped = sum(emf_values(sidecar_emf(sb), "SidecarDropped"))
    assert 0 < forwarded < sent                      # bounded: not everything fits the budget
    assert forwarded + dropped >= sent               # and what did not go out is counted
    # the SDK never saw a failure: each export was answered at once with a success
    assert not [line for line in sb.function_lines() if "Failed to export" in str(getattr(line, "text", line))]


def test_a_stalled_backend_does_not_reach_the_function(make, receiver):
    receiver.set_fault("stall")
    sb = make()
    results = [sb.invoke({"spans": 10}) for _ in range(3)]
    assert all(r.outcome == "success" for r in results)
    # the function's exports were answered by the sidecar: no timeout or retry inside the handler
    assert not [line for line in sb.function_lines() if "Failed to export" in str(getattr(line, "text", line)) or "retry" in str(getattr(line, "text", line))]
    sb.shutdown()
    # the sidecar took them all (3 x 11 spans, 3 log records, 3 metric points) and could forward none
    assert sum(emf_values(sidecar_emf(sb), "SidecarFunctionOtlpReceived")) == 3 * 11 + 3 + 3
    assert sum(emf_values(sidecar_emf(sb), "SidecarFunctionOtlpForwarded")) == 0


def test_the_endpoint_off_by_configuration_refuses_connections(make, receiver):
    sb = make(env={"SIDECAR_LOCAL_OTLP": "off"})
    r = sb.invoke({"logs": 0, "metrics": False})     # one exporter retrying against a closed port, not three
    assert r.outcome == "success"
    sb.shutdown()
    # the exporter could not connect: its failure is the function's log line, nothing reached the backend
    assert receiver.wait_for(lambda rx: invocation_spans(rx), timeout=20)
    assert not function_spans(receiver)
    assert not [line for line in sb.extension_lines(SIDECAR) if "local OTLP" in str(getattr(line, "text", line))]


def test_without_an_otlp_backend_the_endpoint_stays_off(make):
    sb = make(rx=None)
    r = sb.invoke({})
    assert r.outcome == "success"
    sb.shutdown()
    assert sum(emf_values(sidecar_emf(sb), "SidecarFunctionOtlpReceived")) == 0
