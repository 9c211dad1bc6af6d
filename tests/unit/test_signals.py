"""SignalEngine on the reference sequences of lambda-apis.md 5.7 and on the edge cases of issue 3."""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from otel_sidecar import signals as sg
from otel_sidecar.config import load_settings
from otel_sidecar.events import Invoke, Shutdown, parse_batch

from tests.unit import sequences as s
from tests.unit.sequences import R1, R2, R3, T0


def engine(**env: str) -> sg.SignalEngine:
    settings, warnings = load_settings({"AWS_LAMBDA_FUNCTION_NAME": "my-function", **env})
    assert warnings == []
    return sg.SignalEngine(settings)


def of(outputs, cls):
    return [o for o in outputs if isinstance(o, cls)]


def invocation(outputs, rid) -> sg.InvocationSignal:
    found = [o for o in of(outputs, sg.InvocationSignal) if o.request_id == rid]
    assert len(found) == 1, f"{len(found)} InvocationSignals for {rid}"
    return found[0]


def feed(e: sg.SignalEngine, *envelopes, now: float = T0) -> list:
    return e.on_batch(parse_batch(s.body(envelopes)), now)


# ---- 5.7 A: cold start, two warm invokes, spindown -----------------------------------------------------
def test_sequence_a_cold_start_then_warm():
    e = engine()
    out = s.run(e, s.seq_a_cold_then_warm())
    assert sorted(o.request_id for o in of(out, sg.InvocationSignal)) == [R1, R2, R3]
    [init] = sg.inits_in(out)
    assert (init.kind, init.phase, init.status, init.cold_start, init.proactive) == \
        (sg.COLD_START, "init", "success", True, False)
    assert init.duration_ms == 250.0 and init.source == "initReport" and init.first_request_id == R1
    assert init.start == pytest.approx(T0) and init.function_name == "my-function"
    assert init.runtime_version == "python:3.11.v1" and init.instance_max_memory == 134217728
    assert 0 <= init.idle_gap_ms < 10

    r1 = invocation(out, R1)
    assert r1.complete and r1.status == "success" and not r1.error
    assert r1.cold_start and r1.start_kind == sg.COLD_START and r1.init is init
    assert (r1.duration_ms, r1.runtime_duration_ms, r1.init_duration_ms) == (21.0, 20.0, 250.0)
    assert r1.billed_duration_ms == 271 and r1.post_runtime_ms == 0.9  # the extensionOverhead span
    assert r1.response_latency_ms == 16.0 and r1.response_duration_ms == 1.0 and r1.runtime_overhead_ms == 3.0
    assert r1.produced_bytes == 50 and r1.max_memory_used_mb == 60 and r1.memory_utilization == 46.875
    assert r1.estimated_cost_usd == pytest.approx(0.271 * 0.125 * 0.0000166667 + 0.0000002)
    assert r1.log_lines == 1 and r1.throttles == 0 and r1.deadline_ms == int((r1.start + 3.0) * 1000)
    assert r1.invoked_arn == s.ARN and r1.version == "$LATEST"
    assert {sp.name for sp in r1.spans} == {"responseLatency", "responseDuration", "runtimeOverhead",
                                            "extensionOverhead"}

    r2 = invocation(out, R2)
    assert not r2.cold_start and r2.start_kind == "warm" and r2.init is None and r2.init_duration_ms is None
    assert r2.post_runtime_ms == pytest.approx(1.2)  # report - runtimeDone when no span
    r3 = invocation(out, R3)
    assert r3.complete  # its report arrived during the shutdown window

    [shut] = of(out, sg.ShutdownSignal)
    assert shut.reason == "spindown" and shut.request_id is None
    logs = of(out, sg.LogSignal)
    assert [(lg.message, lg.request_id) for lg in logs if lg.source == "function"] == \
        [("static init line", None), ("handling r1", R1), ("handling r2", R2)]
    h = e.health
    assert h["invocations"] == 3 and h["incomplete_invocations"] == 0 and h["inits"] == 1
    assert h["records_received"] == 18 and h["batches"] == 6


def test_the_init_is_emitted_once_inside_the_first_invocation_it_served():
    out = s.run(engine(), s.seq_a_cold_then_warm())
    assert of(out, sg.InitSignal) == []          # not also on its own (issue 11)
    first = of(out, sg.InvocationSignal)[0]
    assert first.init is not None and first.init.first_request_id == first.request_id
    assert [i.init is None for i in of(out, sg.InvocationSignal)] == [False, True, True]


def test_an_init_no_invocation_carries_is_emitted_on_its_own():
    # never used (SHUTDOWN before any invoke): finish() emits it as an InitSignal
    e = engine()
    out = s.run(e, [s.batch(s.init_start(T0), s.init_runtime_done(T0 + 0.2), s.init_report(T0 + 0.2, 200.0))])
    out += e.finish(T0 + 30)
    (init,) = of(out, sg.InitSignal)
    assert init.first_request_id is None and init.kind == sg.PROACTIVE


# ---- 5.7 B: timeout, then a suppressed init inside the next invoke --------------------------------------
def test_sequence_b_timeout_counted_once():
    out = s.run(engine(), s.seq_b_timeout())
    r1 = invocation(out, R1)
    assert r1.complete and r1.status == "timeout" and r1.timeout and r1.error
    assert r1.error_type is None and not r1.function_error and r1.response_latency_ms is None
    [shut] = of(out, sg.ShutdownSignal)
    assert shut.reason == "timeout" and shut.request_id == R1
    assert sum(o.timeout for o in of(out, sg.InvocationSignal)) == 1


def test_sequence_b_suppressed_init_is_a_cold_start_of_phase_invoke():
    out = s.run(engine(), s.seq_b_reinit())
    [init] = sg.inits_in(out)
    assert (init.phase, init.kind, init.cold_start, init.duration_ms) == ("invoke", sg.COLD_START, True, 300.0)
    r2 = invocation(out, R2)
    assert r2.cold_start and r2.init_duration_ms == 300.0  # the report carries none after a suppressed init
    assert r2.post_runtime_ms == pytest.approx(1.0)          # 320 - 19 - 300 (the init ran inside the invoke)


def test_timeout_whose_report_never_comes_is_emitted_incomplete_by_finish():
    e = engine()
    steps = [s.batch(s.init_start(T0), s.init_report(T0 + 0.1, 100.0)), s.invoke(R1, T0 + 0.2),
             s.batch(s.start(T0 + 0.2, R1),
                     s.runtime_done(T0 + 3.2, R1, 3000.0, status="timeout", produced_bytes=0, spans=False)),
             s.shutdown("timeout", T0 + 3.3)]
    out = s.run(e, steps)
    r1 = invocation(out, R1)
    assert not r1.complete and r1.status == "timeout" and r1.timeout and r1.runtime_duration_ms == 3000.0
    assert r1.duration_ms is None and r1.shutdown_reason == "timeout"
    assert e.health["incomplete_invocations"] == 1


def test_shutdown_timeout_alone_marks_the_invocation_in_flight():
    out = s.run(engine(), [s.invoke(R1, T0), s.batch(s.start(T0, R1)), s.shutdown("timeout", T0 + 3)])
    r1 = invocation(out, R1)
    assert r1.timeout and r1.status == "timeout" and not r1.complete
    assert of(out, sg.ShutdownSignal)[0].request_id == R1


def test_second_runtime_done_after_a_timeout_does_not_double_count():
    e = engine()
    out = s.run(e, [s.invoke(R1, T0), s.batch(s.start(T0, R1), s.runtime_done(T0 + 0.05, R1, 50.0)),
                    s.batch(s.runtime_done(T0 + 3.0, R1, 3000.0, status="timeout", produced_bytes=0, spans=False),
                            s.report(T0 + 3.01, R1, 3010.0, status="timeout")),
                    s.shutdown("timeout", T0 + 3.02)])
    r1 = invocation(out, R1)
    assert r1.timeout and r1.status == "timeout" and r1.runtime_duration_ms == 50.0
    assert r1.response_latency_ms == 40.0  # from the first (real) runtimeDone
    assert e.runtime_done_seen(R1) and not e.runtime_done_seen(R2)
    assert e.health["duplicate_runtime_done"] == 1 and e.health["invocations"] == 1


# ---- 5.7 C and D --------------------------------------------------------------------------------------
def test_sequence_c_runtime_crash():
    out = s.run(engine(), s.seq_c_crash())
    r1 = invocation(out, R1)
    assert (r1.status, r1.error_type, r1.error, r1.timeout, r1.oom) == ("error", "Runtime.ExitError", True,
                                                                        False, False)
    assert r1.cold_start and r1.init_duration_ms == 80.0 and r1.billed_duration_ms == 214
    [shut] = of(out, sg.ShutdownSignal)
    assert shut.reason == "failure" and shut.request_id == R1


def test_sequence_d_extension_crash_during_init():
    out = s.run(engine(), s.seq_d_extension_crash_init())
    [init] = sg.inits_in(out)
    assert (init.status, init.error_type, init.failed, init.cold_start) == ("error", "Extension.Crash", True, False)
    assert init.duration_ms == 500.0 and init.first_request_id is None
    assert of(out, sg.InvocationSignal) == []


def test_init_timeout_report_is_a_failed_init():
    e = engine()
    out = feed(e, s.EXAMPLES["initReport_timeout"])
    [init] = sg.inits_in(out)
    assert init.status == "timeout" and init.failed and not init.cold_start and init.duration_ms == 10000.12


# ---- out of order --------------------------------------------------------------------------------------
@pytest.mark.parametrize("order", list(itertools.permutations(range(3))))
def test_any_order_of_start_runtime_done_report_gives_one_signal(order):
    e = engine()
    recs = [s.start(T0, R1), s.runtime_done(T0 + 0.02, R1, 20.0), s.report(T0 + 0.021, R1, 21.0)]
    out = feed(e, *[recs[i] for i in order]) + e.finish(T0 + 10)
    r1 = invocation(out, R1)
    assert r1.complete and r1.duration_ms == 21.0 and r1.status == "success"


def test_report_of_n_arriving_during_n_plus_1_across_batches():
    e = engine()
    out = feed(e, s.init_start(T0), s.init_report(T0 + 0.1, 100.0))
    out += e.on_invoke(Invoke(R1, int((T0 + 3) * 1000), s.ARN), T0 + 0.2)
    out += feed(e, s.start(T0 + 0.2, R1), s.runtime_done(T0 + 0.3, R1, 100.0))
    assert of(out, sg.InvocationSignal) == []  # no report yet
    out += e.on_invoke(Invoke(R2, int((T0 + 10) * 1000), s.ARN), T0 + 5)
    out += feed(e, s.report(T0 + 0.31, R1, 110.0, init_ms=100.0), s.start(T0 + 5, R2), s.flog(T0 + 5.1, "x", R2))
    assert invocation(out, R1).post_runtime_ms == pytest.approx(10.0)
    assert [lg.request_id for lg in of(out, sg.LogSignal)] == [R2]


def test_duplicate_report_is_ignored_and_counted():
    e = engine()
    rep = s.report(T0 + 0.021, R1, 21.0)
    out = feed(e, s.start(T0, R1), rep) + feed(e, rep) + e.finish(T0 + 1)
    assert len(of(out, sg.InvocationSignal)) == 1 and e.health["duplicate_reports"] == 1


def test_pending_invocations_are_bounded():
    e = engine()
    out = []
    for i in range(sg.MAX_PENDING + 5):
        out += e.on_invoke(Invoke(f"r-{i}", 0, None), T0 + i)
    assert len(of(out, sg.InvocationSignal)) == 5 and e.health["pending_evicted"] == 5
    assert all(not o.complete and o.time >= T0 for o in of(out, sg.InvocationSignal))
    out += e.finish(T0 + 10_000)
    assert len(of(out, sg.InvocationSignal)) == sg.MAX_PENDING + 5
    assert len({o.request_id for o in of(out, sg.InvocationSignal)}) == sg.MAX_PENDING + 5


# ---- init kinds --------------------------------------------------------------------------------------
def proactive_steps(gap_s: float, itype: str = "on-demand") -> list:
    # init finishes at T0+0.3; the environment is frozen, so the init records only arrive with the first invoke
    t1 = T0 + 0.3 + gap_s
    return [s.invoke(R1, t1),
            s.batch(s.init_start(T0, itype), s.init_runtime_done(T0 + 0.3, itype), s.init_report(T0 + 0.3, 300.0, itype),
                    s.start(t1, R1), s.runtime_done(t1 + 0.01, R1, 10.0)),
            s.shutdown("spindown", t1 + 100), s.batch(s.report(t1 + 0.011, R1, 11.0, init_ms=300.0))]


def test_proactive_init_is_not_a_cold_start():
    out = s.run(engine(), proactive_steps(60.0))
    [init] = sg.inits_in(out)
    assert (init.kind, init.proactive, init.cold_start) == (sg.PROACTIVE, True, False)
    assert init.idle_gap_ms == pytest.approx(60000.0, abs=2)
    r1 = invocation(out, R1)
    assert not r1.cold_start and r1.start_kind == sg.PROACTIVE and r1.init_duration_ms == 300.0


def test_gap_below_threshold_is_a_cold_start_and_the_threshold_is_configurable():
    [init] = sg.inits_in(s.run(engine(), proactive_steps(9.0)))
    assert init.cold_start and init.kind == sg.COLD_START
    [init] = sg.inits_in(s.run(engine(SIDECAR_COLDSTART_IDLE_MS="120000"), proactive_steps(60.0)))
    assert init.cold_start and not init.proactive


def test_provisioned_concurrency_is_reported_as_such():
    out = s.run(engine(), proactive_steps(0.5, "provisioned-concurrency"))
    [init] = sg.inits_in(out)
    assert (init.kind, init.cold_start, init.initialization_type) == (sg.PROVISIONED, False,
                                                                      "provisioned-concurrency")
    r1 = invocation(out, R1)
    assert not r1.cold_start and r1.start_kind == sg.PROVISIONED


def test_unused_init_is_reported_at_finish_as_proactive():
    out = s.run(engine(), [s.batch(s.init_start(T0), s.init_report(T0 + 0.2, 200.0)),
                           s.shutdown("spindown", T0 + 600)])
    [init] = sg.inits_in(out)
    assert init.kind == sg.PROACTIVE and init.first_request_id is None and init.idle_gap_ms is None


def test_replayed_init_start_is_not_a_second_init():
    out = s.run(engine(), [s.batch(s.init_start(T0)), s.batch(s.init_start(T0), s.init_report(T0 + 0.2, 200.0)),
                           s.invoke(R1, T0 + 0.3), s.batch(s.start(T0 + 0.3, R1), s.report(T0 + 0.4, R1, 100.0))])
    assert len(sg.inits_in(out)) == 1


def test_init_duration_falls_back_to_report_init_duration():
    e = engine()
    out = s.run(e, [s.invoke(R1, T0), s.batch(s.start(T0, R1), s.runtime_done(T0 + 0.01, R1, 10.0),
                                              s.report(T0 + 0.011, R1, 11.0, init_ms=235.086))])
    [init] = sg.inits_in(out)
    assert (init.source, init.duration_ms, init.cold_start, init.first_request_id) == ("report", 235.086, True, R1)
    assert invocation(out, R1).cold_start


def test_no_init_evidence_means_no_init_signal():
    out = s.run(engine(), [s.invoke(R1, T0), s.batch(s.start(T0, R1), s.report(T0 + 0.011, R1, 11.0))])
    assert sg.inits_in(out) == [] and not invocation(out, R1).cold_start


def test_snapstart_restore():
    e = engine()
    t1 = T0 + 1.0
    steps = [
        # the init that ran when the snapshot was taken (before restore): not this environment's startup
        s.batch(s.init_start(T0 - 3600, "snap-start"), s.init_report(T0 - 3599, 900.0, "snap-start")),
        s.batch(s.env("platform.restoreStart", {"functionName": "my-function", "functionVersion": "3"}, T0),
                s.env("platform.restoreRuntimeDone", {"status": "success"}, T0 + 0.015),
                s.env("platform.restoreReport", {"status": "success", "metrics": {"durationMs": 15.19}}, T0 + 0.0152)),
        s.invoke(R1, t1),
        s.batch(s.start(t1, R1), s.runtime_done(t1 + 0.01, R1, 10.0), s.report(t1 + 0.011, R1, 11.0, restore_ms=15.19)),
    ]
    out = s.run(e, steps)
    [init] = sg.inits_in(out)
    assert (init.kind, init.phase, init.initialization_type, init.cold_start) == (sg.SNAP_START, "restore",
                                                                                 "snap-start", False)
    assert init.duration_ms == 15.19 and init.restore_duration_ms == 15.19 and init.source == "restoreReport"
    assert init.function_version == "3"
    r1 = invocation(out, R1)
    assert r1.start_kind == sg.SNAP_START and r1.restore_duration_ms == 15.19 and not r1.cold_start
    assert e.health["snapshot_inits_discarded"] == 1


def test_failed_restore():
    out = feed(engine(), s.EXAMPLES["restoreStart"], s.EXAMPLES["restoreRuntimeDone_error"],
               s.env("platform.restoreReport", {"status": "error", "errorType": "Runtime.ExitError",
                                                "metrics": {"durationMs": 40.0}}, T0))
    [init] = sg.inits_in(out)
    assert init.failed and init.error_type == "Runtime.ExitError" and init.kind == sg.SNAP_START


# ---- OOM, errors, throttles -------------------------------------------------------------------------------
def oom_case(**kw) -> sg.InvocationSignal:
    e = engine()
    logs = kw.pop("logs", [])
    out = s.run(e, [s.invoke(R1, T0), s.batch(s.start(T0, R1), *logs,
                                              s.report(T0 + 0.5, R1, 500.0, **kw))])
    return invocation(out, R1)


def test_oom_from_error_type():
    r = oom_case(status="error", error_type="Runtime.OutOfMemory", max_used_mb=120)
    assert r.oom and r.oom_sources == ("errorType",) and r.error


def test_oom_from_max_memory_reaching_memory_size():
    r = oom_case(max_used_mb=128)
    assert r.oom and r.oom_sources == ("max_memory",) and not r.error  # it still answered successfully
    assert r.memory_utilization == 100.0


@pytest.mark.parametrize("line", [
    "[ERROR] MemoryError\nTraceback (most recent call last):\n  File \"/var/task/app.py\"",
    "<--- Last few GCs --->\nFATAL ERROR: Reached heap limit Allocation failed - JavaScript heap out of memory",
    "Exception in thread \"main\" java.lang.OutOfMemoryError: Java heap space",
    "fatal error: runtime: out of memory",
    "Unhandled exception. System.OutOfMemoryException: Insufficient memory",
    "failed to allocate memory (NoMemoryError)",
])
def test_oom_from_runtime_log_lines(line):
    r = oom_case(logs=[s.env("function", line + "\n", T0 + 0.1)])
    assert r.oom and r.oom_sources == ("log",)


def test_oom_from_all_three_paths_counts_once():
    e = engine()
    out = s.run(e, [s.invoke(R1, T0), s.batch(s.start(T0, R1), s.flog(T0 + 0.1, "MemoryError", R1, "ERROR"),
                                              s.flog(T0 + 0.2, "MemoryError again", R1, "ERROR")),
                    s.batch(s.runtime_done(T0 + 0.4, R1, 400.0, status="error", error_type="Runtime.OutOfMemory",
                                           produced_bytes=0, spans=False),
                            s.report(T0 + 0.5, R1, 500.0, status="error", error_type="Runtime.OutOfMemory",
                                     max_used_mb=128)),
                    s.shutdown("failure", T0 + 0.6)])
    r = invocation(out, R1)
    assert r.oom and set(r.oom_sources) == {"errorType", "max_memory", "log"}
    assert sum(o.oom for o in of(out, sg.InvocationSignal)) == 1


def test_handled_function_error_is_an_error_with_success_status():
    e = engine()
    rd = s.EXAMPLES["runtimeDone_handled_error"]
    rid = rd["record"]["requestId"]
    out = feed(e, rd) + e.finish(T0)
    r = invocation(out, rid)
    assert r.function_error and r.error and r.status == "success" and not r.complete


def test_successful_response_is_not_a_function_error():
    e = engine()
    rd = s.EXAMPLES["runtimeDone"]
    out = feed(e, rd, s.EXAMPLES["report"])
    r = invocation(out, rd["record"]["requestId"])
    assert not r.function_error and not r.error
    assert r.estimated_cost_usd == pytest.approx(0.018 * 0.125 * 0.0000166667 + 0.0000002)


def test_downstream_throttles_counted_per_invocation():
    e = engine()
    lines = [
        s.flog(T0 + 0.01, "botocore.errorfactory.ThrottlingException: Rate exceeded", R1, "ERROR"),
        s.flog(T0 + 0.02, "An error occurred (ProvisionedThroughputExceededException) when calling PutItem", R1),
        s.env("function", "HTTP 429 from https://api.example.com\n", T0 + 0.03),   # raw print: attributed to R1
        s.flog(T0 + 0.04, "processed 429 items", R1),                               # not a throttle
        s.flog(T0 + 0.05, "all good", R1),
    ]
    out = s.run(e, [s.batch(s.flog(T0 - 1, "TooManyRequestsException during init")),
                    s.invoke(R1, T0), s.batch(s.start(T0, R1), *lines, s.report(T0 + 0.1, R1, 100.0)),
                    s.invoke(R2, T0 + 1), s.batch(s.start(T0 + 1, R2), s.report(T0 + 1.1, R2, 100.0))])
    assert invocation(out, R1).throttles == 3 and invocation(out, R1).log_lines == 5
    assert invocation(out, R2).throttles == 0
    assert e.health["unattributed_throttles"] == 1
    assert [lg.throttle for lg in of(out, sg.LogSignal) if lg.request_id == R1] == [True, True, True, False, False]


def test_throttle_patterns_are_configurable():
    def count(**env):
        e = engine(**env)
        out = s.run(e, [s.invoke(R1, T0), s.batch(s.start(T0, R1), s.flog(T0, "QuotaHit: slow down please", R1),
                                                  s.flog(T0, "ThrottlingException", R1),
                                                  s.report(T0 + 0.1, R1, 100.0))])
        return invocation(out, R1).throttles
    assert count() == 1
    assert count(SIDECAR_THROTTLE_PATTERNS="QuotaHit") == 1
    assert count(SIDECAR_THROTTLE_PATTERNS="+QuotaHit") == 2
    assert count(SIDECAR_THROTTLE_PATTERNS="off") == 0


def test_cost_uses_the_architecture_price():
    e = engine(SIDECAR_ARCHITECTURE="arm64")
    out = feed(e, s.EXAMPLES["report"])
    r = invocation(out, s.EXAMPLES["report"]["record"]["requestId"])
    assert r.estimated_cost_usd == pytest.approx(0.018 * 0.125 * 0.0000133334 + 0.0000002)
    e = engine(SIDECAR_PRICE_PER_GB_S="0.0001", SIDECAR_PRICE_PER_REQUEST="0")
    r = invocation(feed(e, s.EXAMPLES["report"]), s.EXAMPLES["report"]["record"]["requestId"])
    assert r.estimated_cost_usd == pytest.approx(0.018 * 0.125 * 0.0001)


# ---- trace context and logs ------------------------------------------------------------------------------
def test_trace_context_reaches_invocation_and_log_signals():
    e = engine()
    t = s.tracing()
    out = e.on_invoke(Invoke(R1, 0, s.ARN, tracing_value="Root=1-6352a70e-1e2c502e358361800241fd45;Parent=aa;"
                                                         "Sampled=1"), T0)
    out += feed(e, s.start(T0, R1, trace=t), s.flog(T0 + 0.01, "traced", R1),
                s.report(T0 + 0.1, R1, 100.0, trace=t))
    r = invocation(out, R1)
    assert r.trace.value == s.TRACE_VALUE and r.trace.span_id == s.SPAN_ID
    assert r.invoke_tracing_value.endswith("Parent=aa;Sampled=1")
    [log] = of(out, sg.LogSignal)
    assert log.trace == r.trace and log.invoke_tracing_value == r.invoke_tracing_value and log.level == "INFO"


def test_json_function_logs_keep_fields_and_level():
    e = engine()
    out = feed(e, s.EXAMPLES["function_json"])
    [log] = of(out, sg.LogSignal)
    assert log.level == "INFO" and log.fields["message"] == "Hello world, I am a function!"


def test_otlp_logs_off_produces_no_log_signals_but_still_counts_throttles():
    e = engine(SIDECAR_OTLP_LOGS="off")
    out = s.run(e, [s.invoke(R1, T0), s.batch(s.start(T0, R1), s.flog(T0, "Rate exceeded", R1),
                                              s.report(T0 + 0.1, R1, 100.0))])
    assert of(out, sg.LogSignal) == [] and invocation(out, R1).throttles == 1


def test_health_counts_batch_problems_and_logs_dropped():
    e = engine()
    e.on_batch(parse_batch(b"garbage"), T0)
    e.on_batch(parse_batch(s.body([s.EXAMPLES["logsDropped"], {"time": "x"},
                                   {"time": "2026-01-01T00:00:00Z", "type": "platform.new", "record": {}}])), T0)
    h = e.health
    assert (h["malformed"], h["unknown_types"], h["batches"]) == (2, 1, 2)
    assert (h["logs_dropped_events"], h["logs_dropped_records"], h["logs_dropped_bytes"]) == (1, 123, 12345)


def test_every_output_is_frozen_and_every_float_is_finite():
    out = s.run(engine(), s.seq_a_cold_then_warm() + s.seq_c_crash(T0 + 1000))
    for o in out:
        with pytest.raises(AttributeError):
            o.time = 0  # frozen dataclasses
        for v in vars(o).values() if hasattr(o, "__dict__") else []:
            if isinstance(v, float):
                assert math.isfinite(v)


def test_shutdown_reason_is_lowercased():
    e = engine()
    [sig] = e.on_shutdown(Shutdown("SPINDOWN", 1), T0)
    assert sig.reason == "spindown"


def test_late_init_report_after_the_fallback_is_not_a_second_init():
    e = engine()
    out = s.run(e, [s.invoke(R1, T0 + 1), s.batch(s.start(T0 + 1, R1), s.report(T0 + 1.1, R1, 100.0, init_ms=200.0)),
                    s.batch(s.init_runtime_done(T0 + 0.2), s.init_report(T0 + 0.2, 200.0))])
    assert len(sg.inits_in(out)) == 1 and e.health["late_init_records"] == 2


def test_reinit_inside_an_invoke_is_a_cold_start_even_with_provisioned_concurrency():
    out = s.run(engine(), [s.batch(s.init_start(T0, "provisioned-concurrency", "invoke"),
                                   s.init_report(T0 + 0.3, 300.0, "provisioned-concurrency", "invoke")),
                           s.invoke(R1, T0 + 0.31), s.batch(s.start(T0 + 0.31, R1), s.report(T0 + 0.4, R1, 390.0))])
    [init] = sg.inits_in(out)
    assert init.kind == sg.COLD_START and init.cold_start and init.initialization_type == "provisioned-concurrency"


# ---- property: whatever the order, duplication or loss, one InvocationSignal per request id ------------------

RIDS = [R1, R2, R3]
_records = st.one_of(
    st.tuples(st.just("start"), st.sampled_from(RIDS)),
    st.tuples(st.just("runtimeDone"), st.sampled_from(RIDS), st.sampled_from(["success", "error", "timeout"])),
    st.tuples(st.just("report"), st.sampled_from(RIDS), st.sampled_from(["success", "error", "timeout", "failure"]),
              st.integers(1, 200)),
    st.tuples(st.just("log"), st.sampled_from(RIDS + [None]), st.sampled_from(["ok", "Rate exceeded", "MemoryError"])),
    st.tuples(st.just("initStart"), st.sampled_from(["on-demand", "provisioned-concurrency"]),
              st.sampled_from(["init", "invoke"])),
    st.tuples(st.just("initReport"), st.sampled_from(["success", "error"])),
    st.tuples(st.just("restore")),
    st.tuples(st.just("invoke"), st.sampled_from(RIDS)),
    st.tuples(st.just("shutdown"), st.sampled_from(["spindown", "timeout", "failure"])),
)


def _step(kind, args, t):
    if kind == "start":
        return s.batch(s.start(t, args[0]))
    if kind == "runtimeDone":
        return s.batch(s.runtime_done(t, args[0], 10.0, status=args[1]))
    if kind == "report":
        return s.batch(s.report(t, args[0], 20.0, status=args[1], max_used_mb=args[2]))
    if kind == "log":
        return s.batch(s.flog(t, args[1], args[0]))
    if kind == "initStart":
        return s.batch(s.init_start(t, args[0], args[1]))
    if kind == "initReport":
        return s.batch(s.init_report(t, 100.0, status=args[0]))
    if kind == "restore":
        return s.batch(s.env("platform.restoreReport", {"status": "success", "metrics": {"durationMs": 5.0}}, t))
    if kind == "invoke":
        return s.invoke(args[0], t)
    return s.shutdown(args[0], t)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(_records, st.floats(0, 100)), max_size=25))
def test_exactly_one_invocation_signal_per_request_id_whatever_arrives(steps):
    e = engine()
    seq = [_step(rec[0], rec[1:], T0 + dt) for rec, dt in steps]
    out = s.run(e, seq)
    seen = {rec[1] for rec, _ in steps if rec[0] in ("start", "runtimeDone", "report", "invoke")}
    rids = [o.request_id for o in of(out, sg.InvocationSignal)]
    assert sorted(rids) == sorted(seen)
    for o in of(out, sg.InvocationSignal):
        assert o.timeout or o.status != "timeout"
        assert o.error or o.status not in ("error", "failure", "timeout")
        assert not (o.cold_start and o.init is None)
    inits = sg.inits_in(out)
    assert sum(i.cold_start for i in inits) <= max(1, sum(1 for rec, _ in steps if rec[0] in ("initStart",
                                                                                            "initReport")))


def test_every_example_record_through_the_engine():
    e = engine()
    out = feed(e, *s.EXAMPLES.values()) + e.finish(T0)
    by_rid = {o.request_id: o for o in of(out, sg.InvocationSignal)}
    traced = by_rid["459921b5-681c-4a96-beb0-81e0aa586026"]
    assert traced.post_runtime_ms == 0.38 and traced.trace.span_id == "24cd7d670fa455f0" and traced.complete
    assert traced.duration_ms == 2599.4 and traced.billed_duration_ms == 2600
    timeout = by_rid["527cb862-4f5e-49a9-9ae4-a7edc90f0fda"]
    assert timeout.timeout and timeout.status == "timeout" and timeout.init_duration_ms == 84.0
    crash = by_rid["5b866fb1-7154-4af6-8078-6ef6ca4c2ddd"]
    assert crash.error and crash.error_type == "Runtime.ExitError" and crash.billed_duration_ms == 214
    handled = by_rid["777ff55f-e84c-41f8-ae9f-53f541f01a60"]
    assert handled.function_error and not handled.complete
    assert len(by_rid) == 5
    assert e.health["logs_dropped_records"] == 123 and e.health["extension_log_lines"] == 2


def test_skimmed_log_lines_count_throttles_and_oom_for_the_current_invocation():
    e = sg.SignalEngine()
    assert e.on_skimmed_logs(["ThrottlingException before any invoke"], T0) == []     # nobody to blame
    assert e.health["unattributed_throttles"] == 1
    _, inv_event, now = s.invoke(R1, T0)
    e.on_invoke(inv_event, now)
    e.on_batch(parse_batch(s.body([s.start(T0, R1)])), T0)
    assert e.on_skimmed_logs(["fine", "Rate exceeded", "MemoryError"], T0 + 0.1) == []
    out = e.on_batch(parse_batch(s.body([s.runtime_done(T0 + 0.4, R1, 10.0), s.report(T0 + 0.5, R1, 20.0)])), T0 + 1)
    (inv,) = [o for o in out if isinstance(o, sg.InvocationSignal)]
    assert (inv.log_lines, inv.throttles, inv.oom, inv.complete) == (3, 1, True, True)
    assert e.health["skimmed_log_lines"] == 4


def test_handled_error_signal_carries_the_exception_the_runtime_printed():
    e = engine()
    steps = [s.invoke(R1, T0), s.batch(s.start(T0, R1),
                                       s.env("function", "[ERROR] ValueError: bad order\rTraceback (most recent call "
                                             "last):\r  File \"/var/task/app.py\", line 3\n", T0 + 0.01),
                                       s.runtime_done(T0 + 0.02, R1, 20.0, produced_bytes=0, spans=False)),
             s.batch(s.report(T0 + 0.021, R1, 21.0))]
    inv = invocation(s.run(e, steps), R1)
    assert inv.function_error and inv.exception is not None
    assert (inv.exception.type, inv.exception.message) == ("ValueError", "bad order")


def test_init_signal_carries_the_instance_id_of_init_start():
    (init,) = sg.inits_in(s.run(engine(), s.seq_a_cold_then_warm()))
    assert init.instance_id == "2026/01/01/[$LATEST]0123456789abcdef"
