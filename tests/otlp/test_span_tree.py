"""The exported span tree, built from Telemetry API sequences (engine + sink + receiver), against invariants
a trace backend relies on: every child inside its parent's time range, every span ending no later than the
event that closes it (platform.report for an invocation, platform.initReport for an init), links that
resolve, and the exception the runtime printed on the invocation span."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from otel_sidecar.events import MAX_EXCEPTION_STACK, parse_time
from otel_sidecar.signals import SignalEngine

from tests.otlp.conftest import soon
from tests.unit import sequences as sq
from tests.unit.sequences import (
    R1,
    R2,
    T0,
    batch,
    env,
    flog,
    init_report,
    init_runtime_done,
    init_start,
    invoke,
    report,
    runtime_done,
    start,
)

NO_STREAM = {"AWS_LAMBDA_LOG_STREAM_NAME": ""}      # extensions do not get it (lambda-apis.md 2.2)


def export(make_sink, receiver, steps, **env_overrides):
    sink = make_sink(**env_overrides)
    sink.accept(sq.run(SignalEngine(), steps))
    sink.shutdown(soon())
    return receiver.spans()


def closing_times(steps):
    """request id -> platform.report time; init span -> its initReport time (in order), in ns."""
    reports, inits = {}, []
    for step in steps:
        if step[0] != "batch":
            continue
        for e in step[1]:
            t = int(round(parse_time(e["time"]) * 1e9))
            if e["type"] == "platform.report":
                reports[e["record"]["requestId"]] = t
            elif e["type"] == "platform.initReport":
                inits.append(t)
    return reports, inits


def assert_tree(spans, steps):
    by_id = {s["span_id"]: s for s in spans}
    for s in spans:
        assert s["start_ns"] <= s["end_ns"], s["name"]
        parent = by_id.get(s["parent_span_id"] or "")
        if parent is not None:
            assert parent["trace_id"] == s["trace_id"]
            assert parent["start_ns"] <= s["start_ns"] and s["end_ns"] <= parent["end_ns"], \
                (s["name"], "outside", parent["name"])
        for link in s.get("links", ()):
            assert link["span_id"] in by_id, "a link to a span never exported"
    reports, inits = closing_times(steps)
    for s in spans:
        rid = s["attributes"].get("faas.invocation_id")
        if s["kind"] == "SERVER" and rid in reports:
            assert s["end_ns"] <= reports[rid], f"{rid} ends {(s['end_ns'] - reports[rid]) / 1e6:.3f} ms after its report"
    init_spans = [s for s in spans if s["name"].startswith("init ")]
    for s in init_spans:
        assert any(s["end_ns"] <= t for t in inits)


def server(spans, rid):
    (s,) = [s for s in spans if s["kind"] == "SERVER" and s["attributes"]["faas.invocation_id"] == rid]
    return s


def test_cold_start_init_is_a_linked_sibling_that_ends_before_its_invocation(make_sink, receiver):
    steps = sq.seq_a_cold_then_warm()
    spans = export(make_sink, receiver, steps)
    assert_tree(spans, steps)
    first = server(spans, R1)
    (init,) = [s for s in spans if s["name"] == "init my-function"]
    # same trace, same parent (none here): the init is not drawn inside an invocation that started after it
    assert init["trace_id"] == first["trace_id"] and init["parent_span_id"] == first["parent_span_id"]
    assert init["end_ns"] <= first["start_ns"]
    assert [ln["span_id"] for ln in first["links"]] == [init["span_id"]]
    assert init["end_ns"] - init["start_ns"] == pytest.approx(250e6, abs=1e6)


def test_traced_cold_start_init_shares_the_invocations_remote_parent(make_sink, receiver):
    tr = sq.tracing()
    steps = [batch(init_start(T0), init_runtime_done(T0 + 0.2), init_report(T0 + 0.2, 200.0)),
             invoke(R1, T0 + 0.21, trace_value=sq.TRACE_VALUE),
             batch(start(T0 + 0.21, R1, tr), runtime_done(T0 + 0.23, R1, 20.0, trace=tr),
                   report(T0 + 0.231, R1, 21.0, init_ms=200.0, trace=tr))]
    spans = export(make_sink, receiver, steps, SIDECAR_SPAN_PARENT="xray")
    assert_tree(spans, steps)
    first = server(spans, R1)
    (init,) = [s for s in spans if s["name"] == "init my-function"]
    assert init["parent_span_id"] == first["parent_span_id"] == "35465b3a9e2f7c6a"


def test_invocation_after_a_timeout_reset_covers_its_reinit_and_ends_at_its_report(make_sink, receiver):
    # the case: report.durationMs (579.94) includes the suppressed re-init (333.955 ms)
    t0 = T0 + 100
    steps = [batch(init_start(t0, phase="invoke"), init_runtime_done(t0 + 0.334, phase="invoke"),
                   init_report(t0 + 0.334, 333.955, phase="invoke")),
             invoke(R2, t0 + 0.335),
             batch(start(t0 + 0.335, R2), runtime_done(t0 + 0.575, R2, 240.0)),
             batch(report(t0 + 0.58, R2, 579.94))]
    spans = export(make_sink, receiver, steps)
    assert_tree(spans, steps)
    inv = server(spans, R2)
    # the caller waited from the re-init's start: the span lasts the REPORT's duration and no longer
    assert inv["start_ns"] == pytest.approx(t0 * 1e9, abs=1e3)
    assert (inv["end_ns"] - inv["start_ns"]) / 1e6 == pytest.approx(579.94, abs=0.01)
    (init,) = [s for s in spans if s["name"] == "init my-function"]
    assert init["parent_span_id"] == inv["span_id"]            # it ran inside the invocation


def test_report_duration_beyond_the_report_time_is_cut_at_the_report(make_sink, receiver):
    steps = [invoke(R1, T0), batch(start(T0, R1), runtime_done(T0 + 0.02, R1, 20.0)),
             batch(report(T0 + 0.021, R1, 400.0))]       # a duration that cannot fit: the report bounds it
    spans = export(make_sink, receiver, steps)
    assert_tree(spans, steps)
    inv = server(spans, R1)
    assert inv["end_ns"] == pytest.approx((T0 + 0.021) * 1e9, abs=1e3)


def test_timeout_sequence_tree(make_sink, receiver):
    steps = sq.seq_b_timeout() + sq.seq_c_crash(T0 + 50)
    assert_tree(export(make_sink, receiver, steps), steps)


PY_TRACE = ('[ERROR] ValueError: order 42 has no items\rTraceback (most recent call last):\r'
            '  File "/var/task/app.py", line 12, in handler\r    raise ValueError("order 42 has no items")')
JSON_ERROR = {"timestamp": "2026-01-01T00:00:00Z", "log_level": "ERROR", "errorMessage": "order 42 has no items",
              "errorType": "ValueError", "requestId": R1,
              "stackTrace": ['  File "/var/task/app.py", line 12, in handler\n',
                             '    raise ValueError("order 42 has no items")\n']}


def handled_error(record):
    return [invoke(R1, T0), batch(start(T0, R1), env("function", record, T0 + 0.01),
                                  runtime_done(T0 + 0.02, R1, 20.0, produced_bytes=0, spans=False)),
            batch(report(T0 + 0.021, R1, 21.0))]


@pytest.mark.parametrize("record", [PY_TRACE + "\n", JSON_ERROR], ids=["text", "json"])
def test_handled_error_carries_the_printed_exception_as_an_event(make_sink, receiver, record):
    steps = handled_error(record)
    spans = export(make_sink, receiver, steps)
    assert_tree(spans, steps)
    inv = server(spans, R1)
    assert inv["status"]["code"] == "ERROR"
    assert inv["attributes"]["error.type"] == "ValueError"
    assert inv["status"]["message"] == "ValueError: order 42 has no items"
    (ev,) = inv["events"]
    assert ev["name"] == "exception" and inv["start_ns"] <= ev["time_ns"] <= inv["end_ns"]
    assert ev["attributes"]["exception.type"] == "ValueError"
    assert ev["attributes"]["exception.message"] == "order 42 has no items"
    assert 'raise ValueError("order 42 has no items")' in ev["attributes"]["exception.stacktrace"]


def test_exception_event_is_bounded(make_sink, receiver):
    huge = "[ERROR] ValueError: " + "m" * 50_000 + "\rTraceback (most recent call last):\r" + "  frame\r" * 5000
    spans = export(make_sink, receiver, handled_error(huge))
    (ev,) = server(spans, R1)["events"]
    assert len(ev["attributes"]["exception.message"]) <= 1024
    assert len(ev["attributes"]["exception.stacktrace"]) <= MAX_EXCEPTION_STACK


def test_a_printed_error_line_is_not_an_exception_and_success_gets_no_event(make_sink, receiver):
    steps = [invoke(R1, T0), batch(start(T0, R1), flog(T0 + 0.01, "[ERROR] boom"),
                                   env("function", PY_TRACE + "\n", T0 + 0.011),      # logged, handled, answered
                                   runtime_done(T0 + 0.02, R1, 20.0)), batch(report(T0 + 0.021, R1, 21.0))]
    inv = server(export(make_sink, receiver, steps), R1)
    assert inv["events"] == [] and inv["status"]["code"] != "ERROR"


def test_faas_instance_comes_from_init_start_instance_id(make_sink, receiver):
    steps = sq.seq_a_cold_then_warm()
    spans = export(make_sink, receiver, steps, **NO_STREAM)
    for s in (server(spans, r) for r in (R1, R2)):
        assert s["attributes"]["faas.instance"] == "2026/01/01/[$LATEST]0123456789abcdef"
        assert s["resource"]["faas.instance"] == "2026/01/01/[$LATEST]0123456789abcdef"


def test_billed_duration_and_max_memory_are_both_ints(make_sink, receiver):
    spans = export(make_sink, receiver, sq.seq_a_cold_then_warm())
    a = server(spans, R2)["attributes"]
    assert (a["aws.lambda.billed_duration_ms"], a["aws.lambda.max_memory_used_mb"]) == (12, 60)
    assert all(type(a[k]) is int for k in ("aws.lambda.billed_duration_ms", "aws.lambda.max_memory_used_mb"))
    assert json.dumps(a)   # plain JSON values


# ---- a backend that serves traces only (Phoenix answers 405 for /v1/metrics and /v1/logs) ----------------------
def test_each_refused_signal_is_named_once_then_not_sent_and_counted(make_sink, receiver, caplog, monkeypatch):
    import logging

    from otel_sidecar.otlp import export as export_mod

    from tests.otlp._signals import invocation, log_line

    receiver.set_path_status("/v1/metrics", 405)
    receiver.set_path_status("/v1/logs", 405)
    sink = make_sink()
    with caplog.at_level(logging.WARNING, logger="otel_sidecar"):
        for i in range(4):
            sink.accept([invocation(f"req-{i}"), log_line(f"line {i}", f"req-{i}")])
            sink.flush(soon())
    warned = [r.getMessage() for r in caplog.records if "refuses" in r.getMessage()]
    assert len(warned) == 2 and any(" metrics " in w for w in warned) and any(" logs " in w for w in warned)
    assert all("HTTP 405" in w for w in warned)
    assert len([s for s in receiver.spans() if s["kind"] == "SERVER"]) == 4      # traces unaffected
    h = sink.health()
    assert h["otlp_dropped_logs_refused"] == 4 and h["otlp_dropped_metric_points_refused"] >= 1

    # one request per refused signal, not one per flush...
    def attempts(path):
        return sum(1 for r in receiver.request_log if r["path"] == path)
    assert attempts("/v1/logs") == 1 and attempts("/v1/metrics") == 1
    # ...until the re-probe time: then it is tried again, and taken when the backend serves it now
    receiver.set_path_status("/v1/logs", None)
    monkeypatch.setattr(export_mod.time, "monotonic",
                        lambda real=export_mod.time.monotonic: real() + export_mod.REPROBE_S)
    sink.accept([log_line("after", "req-9")])
    sink.flush(soon())
    assert attempts("/v1/logs") == 2 and [r["body"] for r in receiver.logs()][-1:] == ["after"]


# ---- property: whatever the durations and times the platform reports, the tree stays well-formed --------------
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(reinit=st.booleans(), init_ms=st.floats(1, 2000), gap_ms=st.floats(0, 50), run_ms=st.floats(0.5, 3000),
       ext_ms=st.floats(0, 500), report_ms=st.floats(0, 6000), overhead=st.one_of(st.none(), st.floats(0, 800)),
       traced=st.booleans())
def test_tree_invariants_hold_for_any_reported_durations(make_sink, receiver, reinit, init_ms, gap_ms, run_ms,
                                                         ext_ms, report_ms, overhead, traced):
    receiver.clear()
    phase = "invoke" if reinit else "init"
    tr = sq.tracing() if traced else None
    t_init_end = T0 + init_ms / 1000
    t1 = t_init_end + gap_ms / 1000
    t_rd = t1 + run_ms / 1000
    t_rep = t_rd + ext_ms / 1000
    steps = [batch(init_start(T0, phase=phase), init_runtime_done(t_init_end, phase=phase),
                   init_report(t_init_end, round(init_ms, 3), phase=phase)),
             invoke(R1, t1, trace_value=sq.TRACE_VALUE if traced else None),
             batch(start(t1, R1, tr), runtime_done(t_rd, R1, round(run_ms, 3), trace=tr)),
             # report.durationMs as reported, even when it cannot fit (the sidecar must not trust it blindly)
             batch(report(t_rep, R1, round(report_ms, 3), ext_overhead_ms=overhead, trace=tr,
                          init_ms=None if reinit else round(init_ms, 3)))]
    spans = export(make_sink, receiver, steps)
    assert_tree(spans, steps)
    assert len([s for s in spans if s["name"] == "init my-function"]) == 1
