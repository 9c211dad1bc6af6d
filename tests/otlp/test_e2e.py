"""End to end: the sidecar (dev layer) in the sandbox exporting to the embedded OTLP receiver."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from lambda_sandbox import OtlpReceiver, Sandbox, SandboxConfig
from otel_sidecar.events import parse_time

from tests.helpers import dev_layer, emf_values, sidecar_emf

pytestmark = pytest.mark.sandbox

FUNCTIONS = Path(__file__).resolve().parents[1] / "fixtures" / "functions"
PHASES = {"responseLatency", "responseDuration", "runtimeOverhead", "extensionOverhead"}
SIDECAR = "otel-sidecar"


@pytest.fixture
def receiver():
    with OtlpReceiver() as rx:
        yield rx


@pytest.fixture
def otlp_sandbox(tmp_path, receiver):
    made = []

    def factory(**kwargs) -> Sandbox:
        kwargs.setdefault("code_dir", FUNCTIONS)
        kwargs.setdefault("handler", "sidecar_app.handler")
        kwargs.setdefault("function_name", "otlp-e2e")
        kwargs["layers"] = [dev_layer(tmp_path / f"layer{len(made)}")]
        sb = Sandbox(SandboxConfig(otlp_receiver=receiver, **kwargs)).start()
        made.append(sb)
        return sb

    yield factory
    for sb in made:
        sb.close()


def server_spans(rx: OtlpReceiver) -> dict:
    out: dict = {}
    for s in rx.spans():
        if s["kind"] == "SERVER":
            out.setdefault(s["attributes"]["faas.invocation_id"], []).append(s)
    return out


def metric_sum(rx: OtlpReceiver, name: str) -> float:
    return sum(p.get("value") or 0 for p in rx.metrics() if p["name"] == name)


def xray(value: str) -> dict:
    return dict(part.split("=", 1) for part in value.split(";") if "=" in part)


def test_mix_of_invocations_spans_metrics_and_logs(otlp_sandbox, receiver):
    sb = otlp_sandbox(tracing="Active", timeout_s=1.0, memory_mb=128, enforce_memory=True)
    results = [sb.invoke({}), sb.invoke({}), sb.invoke({"action": "error"}),
               sb.invoke({"action": "sleep", "sleep_s": 5}), sb.invoke({})]
    oom = sb.invoke({"action": "oom", "mb": 400}) if sb.applied.get("memory_limit") else None
    if oom is not None:
        results += [oom, sb.invoke({})]
    assert [r.outcome for r in results[:5]] == ["success", "success", "error", "timeout", "success"]
    sb.shutdown()
    rid = [r.request_id for r in results]
    spans = receiver.wait_for(lambda r: len(server_spans(r)) >= len(rid) and server_spans(r), timeout=5)
    assert {k: len(v) for k, v in spans.items()} == {r: 1 for r in rid}      # exactly one span each
    by = {r: spans[r][0] for r in rid}

    expect_error = {results[2].request_id: None, results[3].request_id: "timeout"}
    if oom is not None:
        expect_error[oom.request_id] = "Runtime.OutOfMemory"
    for r in rid:
        span = by[r]
        assert span["name"] == "otlp-e2e"
        a = span["attributes"]
        assert (a["faas.name"], a["cloud.provider"], a["cloud.platform"], a["cloud.region"]) == \
            ("otlp-e2e", "aws", "aws_lambda", "us-east-1")
        assert a["faas.max_memory"] == 128 * 1024 * 1024 and a["cloud.account.id"] == "123456789012"
        if r in expect_error:
            assert span["status"]["code"] == "ERROR", r
            if expect_error[r]:
                assert a["error.type"] == expect_error[r]
        else:
            assert span["status"]["code"] == "UNSET"
    assert by[rid[0]]["attributes"]["faas.coldstart"] is True
    assert by[rid[1]]["attributes"]["faas.coldstart"] is False

    # phase child spans with real times inside the invocation's trace
    children = [s for s in receiver.spans() if s["parent_span_id"] == by[rid[1]]["span_id"]]
    assert {c["name"] for c in children} == PHASES
    for c in children:
        assert c["trace_id"] == by[rid[1]]["trace_id"] and c["end_ns"] >= c["start_ns"] > 0

    # one init span per init: the cold start's a sibling of the first invocation (same trace and parent, linked
    # from it); the re-init after the timeout inside the invocation it ran in, as its child
    inits = [s for s in receiver.spans() if s["name"] == "init otlp-e2e"]
    n_inits = sum(1 for ev in sb.events if ev.event["type"] == "platform.initStart")
    assert len(inits) == n_inits >= 2
    first = by[rid[0]]
    instance = next(ev.event["record"]["instanceId"] for ev in sb.events if ev.event["type"] == "platform.initStart")
    assert first["attributes"]["faas.instance"] == first["resource"]["faas.instance"] == instance
    assert (inits[0]["trace_id"], inits[0]["parent_span_id"]) == (first["trace_id"], first["parent_span_id"])
    assert [ln["span_id"] for ln in first["links"]] == [inits[0]["span_id"]]
    parents = {s["span_id"]: rq for rq, s in by.items()}
    assert results[4].request_id in {parents.get(i["parent_span_id"]) for i in inits}    # re-init after timeout
    # the tree: children inside their parents, each invocation over by its platform.report
    spans_by_id = {s["span_id"]: s for s in receiver.spans()}
    for s in spans_by_id.values():
        parent = spans_by_id.get(s["parent_span_id"] or "")
        if parent is not None:
            assert parent["start_ns"] <= s["start_ns"] <= s["end_ns"] <= parent["end_ns"], s["name"]
    for ev in sb.events:
        if ev.event["type"] == "platform.report" and ev.event["record"]["requestId"] in by:
            t = parse_time(ev.event["time"])
            assert by[ev.event["record"]["requestId"]]["end_ns"] <= round(t * 1e9)

    # Active tracing: the span joins the X-Ray trace as its root (SIDECAR_SPAN_PARENT=none), id = the function's Parent
    for ev in sb.events:
        if ev.event["type"] == "platform.start" and ev.event["record"].get("tracing"):
            rec = ev.event["record"]
            header = xray(rec["tracing"]["value"])
            span = by[rec["requestId"]]
            assert span["trace_id"] == header["Root"][2:].replace("-", "")
            assert span["parent_span_id"] is None and header["Parent"]
            assert span["span_id"] == rec["tracing"]["spanId"]

    # metrics
    # faas.invocations: the successful ones; faas.errors: the others (semantic conventions)
    assert receiver.wait_for(lambda r: metric_sum(r, "faas.invocations") == len(rid) - len(expect_error), timeout=5)
    assert metric_sum(receiver, "faas.timeouts") == 1
    assert metric_sum(receiver, "faas.errors") == len(expect_error)
    assert metric_sum(receiver, "faas.coldstarts") >= 1
    units = {p["name"]: (p["unit"], p["temporality"]) for p in receiver.metrics()}
    assert units["faas.invoke_duration"] == ("s", "delta") and units["faas.mem_usage"] == ("By", "delta")

    # logs: the error's traceback lines carry the error invocation's trace and span ids
    err = by[results[2].request_id]
    err_logs = [rec for rec in receiver.logs() if "PaymentDeclined" in str(rec["body"])]
    assert err_logs and all((rec["trace_id"], rec["span_id"]) == (err["trace_id"], err["span_id"])
                            for rec in err_logs)


@pytest.mark.slow
def test_soak_1000_invocations_with_shutdown_loses_nothing(otlp_sandbox, receiver):
    sb = otlp_sandbox()
    rids = set()
    t0 = time.monotonic()
    for i in range(1000):
        r = sb.invoke({"echo": i})
        assert r.outcome == "success"
        rids.add(r.request_id)
    sb.shutdown()
    spans = receiver.wait_for(lambda r: len(server_spans(r)) >= 1000 and server_spans(r), timeout=10)
    assert set(spans) == rids and all(len(v) == 1 for v in spans.values())
    assert receiver.wait_for(lambda r: metric_sum(r, "faas.invocations") == 1000, timeout=5)
    drops = [p for p in receiver.metrics() if p["name"] == "otel_sidecar.dropped" and p.get("value")]
    assert drops == [], [(p.get("attributes"), p.get("value")) for p in drops]   # the reason, when it fails
    assert time.monotonic() - t0 < 120


@pytest.mark.parametrize("fault", ["refuse", "stall", "status:500", "status:429:1"])
def test_backend_outage_does_not_touch_the_function(otlp_sandbox, receiver, fault):
    receiver.set_fault(fault)
    sb = otlp_sandbox(timeout_s=3.0)
    results = [sb.invoke({"echo": i}) for i in range(8)]
    assert [r.outcome for r in results] == ["success"] * 8
    assert [r.response["echo"] for r in results] == list(range(8))
    # never held until the function timeout by a stalled export (a sanity bound, not a speed claim)
    assert max(r.latency_ms for r in results[1:]) < 1500
    reports = [ev.event["record"] for ev in sb.events if ev.event["type"] == "platform.report"]
    assert max(rec["metrics"]["durationMs"] for rec in reports[1:]) < 1500
    shut = sb.shutdown()
    assert shut.extensions[SIDECAR] == "Exited"      # finished before the shutdown deadline, not killed
    # what could not be sent is accounted for, with at most one line about the failing backend
    docs = sidecar_emf(sb)
    lines = [getattr(line, "text", str(line)) for line in sb.extension_lines(SIDECAR)]
    assert sum("OTLP: export of" in line for line in lines) <= 1
    unsent_at_shutdown = sum("OTLP: at shutdown" in line and ("counted as dropped" in line or "kept in" in line)
                             for line in lines)
    if fault == "status:500":                        # not retryable: dropped (and counted) at once
        assert sum(emf_values(docs, "SidecarExportFailures")) >= 1
        assert sum(emf_values(docs, "SidecarDropped")) >= 1
    else:                                            # retryable or stalled: kept, and what never got out is counted
        assert unsent_at_shutdown >= 1


def test_a_traces_only_backend_gets_one_warning_per_refused_signal_and_no_more_requests(otlp_sandbox, receiver):
    receiver.set_path_status("/v1/metrics", 405)      # as arize-phoenix answers
    receiver.set_path_status("/v1/logs", 405)
    sb = otlp_sandbox(timeout_s=3.0)
    results = [sb.invoke({"action": "spam", "n": 3}) for i in range(6)]      # log lines at every invoke
    assert [r.outcome for r in results] == ["success"] * 6
    sb.shutdown()
    lines = [getattr(line, "text", str(line)) for line in sb.extension_lines(SIDECAR)]
    refused = [line for line in lines if "refuses" in line]
    assert len(refused) == 2 and sum(" metrics " in x for x in refused) == sum(" logs " in x for x in refused) == 1
    posts = [r["path"] for r in receiver.request_log]
    assert posts.count("/v1/metrics") == 1 and posts.count("/v1/logs") == 1       # not again at every flush
    assert {r.request_id for r in results} <= set(server_spans(receiver))         # traces still go out
    assert sum(emf_values(sidecar_emf(sb), "SidecarDropped")) >= 1                # what was not sent is counted


def test_invalid_configuration_gives_one_clear_message_and_a_working_function(otlp_sandbox, receiver):
    sb = otlp_sandbox(env={"OTEL_EXPORTER_OTLP_COMPRESSION": "brotli", "OTEL_EXPORTER_OTLP_TIMEOUT": "soon"})
    r = sb.invoke({"echo": "x"})
    assert r.outcome == "success" and r.response["echo"] == "x"
    sb.shutdown()
    lines = [getattr(line, "text", str(line)) for line in sb.extension_lines(SIDECAR)]
    assert sum("OTEL_EXPORTER_OTLP_COMPRESSION='brotli'" in line and "'gzip'" in line for line in lines) == 1
    assert sum("OTEL_EXPORTER_OTLP_TIMEOUT='soon'" in line for line in lines) == 1
    assert receiver.wait_for(lambda rx: server_spans(rx).get(r.request_id), timeout=5)


def test_data_unsent_at_a_timeout_reset_leaves_with_the_next_init(otlp_sandbox, receiver):
    receiver.set_fault("refuse")
    sb = otlp_sandbox(timeout_s=1.0)
    first = sb.invoke({})
    timed_out = sb.invoke({"action": "sleep", "sleep_s": 5})
    assert timed_out.outcome == "timeout"            # reset: this sidecar instance is shut down
    receiver.clear_fault()
    after = sb.invoke({})
    sb.shutdown()
    spans = receiver.wait_for(lambda r: len(server_spans(r)) >= 3 and server_spans(r), timeout=5)
    assert set(spans) == {first.request_id, timed_out.request_id, after.request_id}
    assert spans[timed_out.request_id][0]["status"]["code"] == "ERROR"
    lines = [getattr(line, "text", str(line)) for line in sb.extension_lines(SIDECAR)]
    assert any("kept in" in line for line in lines)


def test_stalled_backend_keeps_the_buffers_bounded_and_counts_drops(otlp_sandbox, receiver):
    receiver.set_fault("stall")
    sb = otlp_sandbox(env={"SIDECAR_OTLP_MAX_QUEUE": "40", "SIDECAR_OTLP_SPOOL_DIR": "off"})
    results = [sb.invoke({"echo": i}) for i in range(40)]
    assert all(r.outcome == "success" for r in results)
    shut = sb.shutdown()
    assert shut.extensions[SIDECAR] == "Exited"
    # ~39 reported invocations x 5 spans went into a 40-span buffer: the oldest were dropped and counted
    assert sum(emf_values(sidecar_emf(sb), "SidecarDropped")) >= 100


@pytest.mark.parametrize("sampling, spans_expected", [("parent", False), ("always", True), (None, True)])
def test_passthrough_without_a_sampled_caller(otlp_sandbox, receiver, sampling, spans_expected):
    # PassThrough with no upstream header: Lambda's header says Sampled=0; by default (None) spans still go out
    env = {"SIDECAR_SPAN_PARENT": "xray", **({"SIDECAR_OTLP_SAMPLING": sampling} if sampling else {})}
    sb = otlp_sandbox(tracing="PassThrough", env=env)
    r = sb.invoke({})
    sb.shutdown()
    assert receiver.wait_for(lambda rx: metric_sum(rx, "faas.invocations") == 1, timeout=5)   # metrics regardless
    spans = server_spans(receiver)
    assert (r.request_id in spans) is spans_expected
    if spans_expected:
        header = next(ev.event for ev in sb.events if ev.event["type"] == "platform.start")
        assert "tracing" not in header["record"]      # not sampled: the record carries no tracing object
        assert spans[r.request_id][0]["parent_span_id"] is not None     # still joined to Lambda's trace
