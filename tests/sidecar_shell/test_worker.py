"""The worker thread: queue -> parse -> engine -> sinks, runtimeDone waits, bounded flushes, shutdown."""

from __future__ import annotations

import json
import threading
import time
from types import SimpleNamespace

import pytest
from otel_sidecar.config import load_settings
from otel_sidecar.health import health_counters
from otel_sidecar.listener import BatchQueue
from otel_sidecar.status import SidecarStatus
from otel_sidecar.worker import Worker

from tests.sidecar_shell.test_lifecycle_shell import _report, _runtime_done, _start


class RecordingSink:
    def __init__(self, block: threading.Event = None, fail: bool = False) -> None:
        self.outputs = []
        self.flushes = 0
        self.shutdowns = 0
        self.block = block
        self.fail = fail

    def accept(self, outputs):
        if self.fail:
            raise RuntimeError("sink is broken")
        self.outputs.extend(outputs)

    def flush(self, deadline):
        self.flushes += 1
        if self.block is not None:
            self.block.wait(10)

    def shutdown(self, deadline):
        self.shutdowns += 1

    def health(self):
        return {"dropped_things": 2, "export_failures": 1}

    def of(self, kind):
        return [o for o in self.outputs if type(o).__name__ == kind]


def make_worker(*sinks, types=("platform", "function")):
    cond = threading.Condition()
    settings, _ = load_settings({"AWS_LAMBDA_FUNCTION_NAME": "fn", "SIDECAR_EMF": "false"})
    status = SidecarStatus(list(types))
    status.time_to_first_next_ms = 42.0
    sidecar = SimpleNamespace(cond=cond, queue=BatchQueue(cond=cond), status=status)
    w = Worker(sidecar.queue, settings, {}, status)
    w.sinks.extend(sinks)
    w.start()
    return w, sidecar


def test_invoke_runtime_done_report_shutdown_reach_the_sink():
    sink = RecordingSink()
    w, sc = make_worker(sink)
    rid = "11111111-2222-3333-4444-555555555555"
    t = time.time()
    w.submit_invoke({"eventType": "INVOKE", "requestId": rid, "deadlineMs": int((t + 30) * 1000)})
    sc.queue.put(json.dumps([_start(rid, t), _runtime_done(rid, t + 0.01)]).encode())
    assert w.wait_runtime_done(rid, time.monotonic() + 5)
    assert w.flush(time.monotonic() + 5)
    assert sink.flushes >= 1
    sc.queue.put(json.dumps([_report(rid, t + 0.02)]).encode())
    assert w.shutdown({"eventType": "SHUTDOWN", "shutdownReason": "spindown", "deadlineMs": 0},
                      time.monotonic() + 2, time.monotonic() + 3)
    invs = sink.of("InvocationSignal")
    assert [(i.request_id, i.complete, i.duration_ms) for i in invs] == [(rid, True, 15.25)]
    assert [s.reason for s in sink.of("ShutdownSignal")] == ["spindown"]
    health = dict(sink.of("HealthSignal")[-1].counters)
    assert health["records_received"] == 3
    assert health["time_to_first_next_ms"] == 42
    assert health["dropped"] == 2 and health["export_failures"] == 1
    assert sink.shutdowns == 1


def test_wait_for_runtime_done_ends_at_the_deadline():
    w, sc = make_worker(RecordingSink())
    start = time.monotonic()
    assert w.wait_runtime_done("never", start + 0.2) is False
    assert time.monotonic() - start < 5
    assert w.health()["worker_runtime_done_wait_timeouts"] == 1


def test_a_stuck_sink_cannot_hold_the_flush_past_its_deadline():
    release = threading.Event()
    w, sc = make_worker(RecordingSink(block=release))
    try:
        start = time.monotonic()
        assert w.flush(start + 0.2) is False
        assert time.monotonic() - start < 5
    finally:
        release.set()


def test_a_failing_sink_is_counted_and_the_others_still_work():
    good, bad = RecordingSink(), RecordingSink(fail=True)
    w, sc = make_worker(bad, good)
    rid = "aaaaaaaa-2222-3333-4444-555555555555"
    t = time.time()
    sc.queue.put(json.dumps([_start(rid, t), _runtime_done(rid, t), _report(rid, t)]).encode())
    w.submit_invoke({"eventType": "INVOKE", "requestId": rid, "deadlineMs": int((t + 30) * 1000)})
    assert w.shutdown(None, time.monotonic() + 1, time.monotonic() + 2)
    assert len(good.of("InvocationSignal")) == 1
    assert w.health()["worker_errors_sink_accept"] >= 1


def test_own_lines_are_filtered_before_the_engine():
    sink = RecordingSink()
    w, sc = make_worker(sink, types=("platform", "function", "extension"))
    t = time.time()
    own = [{"time": _start("x", t)["time"], "type": "extension", "record": "[otel-sidecar] INFO hello\n"},
           {"time": _start("x", t)["time"], "type": "extension", "record": '{"_aws":{"Timestamp":1}}'},
           {"time": _start("x", t)["time"], "type": "extension", "record": "another extension speaks\n"}]
    sc.queue.put(json.dumps(own).encode())
    assert w.shutdown(None, time.monotonic() + 1, time.monotonic() + 2)
    assert w.health()["engine_own_lines_filtered"] == 2


@pytest.mark.parametrize("detail, expected", [
    # records, not batches: a dropped batch of 40 records counts 40
    ({"listener_dropped_batches": 1, "listener_dropped_records": 40, "listener_oversized": 2,
      "otlp_dropped_spans_queue": 3, "worker_dropped_at_shutdown_records": 5, "engine_logs_dropped_records": 7}, 50),
    ({}, 0),
])
def test_health_counters_fold_every_drop(detail, expected):
    assert health_counters(detail)["dropped"] == expected


def test_runtime_done_is_seen_from_the_raw_batch_even_when_the_worker_is_behind():
    w, sc = make_worker(RecordingSink())
    with sc.cond:                       # hold the worker off: it cannot parse anything meanwhile
        rid = "bbbbbbbb-2222-3333-4444-555555555555"
        t = time.time()
        other = _runtime_done("cccccccc-2222-3333-4444-555555555555", t)
        sc.queue.put(json.dumps([_start(rid, t), other, _runtime_done(rid, t)]).encode())
        assert set(sc.queue.runtime_done) == {rid, "cccccccc-2222-3333-4444-555555555555"}
    assert w.wait_runtime_done(rid, time.monotonic() + 5)


def test_record_before_type_is_left_to_the_worker():
    w, sc = make_worker(RecordingSink())
    body = (b'[{"time":"2026-01-01T00:00:00.000Z","record":{"requestId":"a"},"type":"platform.runtimeDone"},'
            b'{"time":"2026-01-01T00:00:00.000Z","record":{"requestId":"wrong"},"type":"platform.report"}]')
    with sc.cond:
        sc.queue.runtime_done.scan(body)
        assert "wrong" not in sc.queue.runtime_done


def _log_batch(n: int, t: float) -> bytes:
    line = {"time": _start("x", t)["time"], "type": "function", "record": "a log line " + "x" * 80}
    return json.dumps([line] * n).encode()


def test_shutdown_with_a_huge_backlog_finishes_by_its_deadline_and_counts_what_it_dropped():
    sink = RecordingSink()
    w, sc = make_worker(sink)
    t = time.time()
    with sc.cond:                       # the backlog piles up while the worker cannot run
        for _ in range(60):
            sc.queue.put(_log_batch(1000, t))
    now = time.monotonic()
    assert w.shutdown(None, now + 0.1, now + 1.5) is True
    h = w.health()
    # every record is either processed, dropped by the worker at the deadline, or shed by the listener's queue
    # once the setup put it under the memory budget's share: nothing goes uncounted
    assert (h["engine_records_received"] + 1000 * h.get("worker_dropped_at_shutdown_batches", 0)
            + h.get("listener_dropped_records", 0)) == 60000
    assert sink.shutdowns == 1 and sink.of("HealthSignal")


def test_a_flush_request_is_served_within_its_budget_despite_a_backlog():
    w, sc = make_worker(RecordingSink())
    assert w.wait_ready(time.monotonic() + 10)
    sc.queue.max_bytes = 1 << 30        # about the flush deadline: a backlog larger than the memory budget allows
    t = time.time()
    with sc.cond:
        for _ in range(200):
            sc.queue.put(_log_batch(1000, t))
    start = time.monotonic()
    assert w.flush(start + 0.3) is True   # the whole backlog would take a second or more, even skimmed
    assert time.monotonic() - start < 0.8 and w.health()["worker_backlog_deferred"] >= 1


def test_a_log_flood_is_skimmed_and_loses_no_invocation():
    """Far behind, the worker only counts and searches log lines (no OTLP log records, counted as shed) and
    still parses every platform record: each invocation of the flood keeps its signal, throttles included."""
    sink = RecordingSink()
    sink.logs_enabled = True                     # an OTLP sink with logs on
    w, sc = make_worker(sink)
    sc.queue.max_batches = 48                    # 40 batches: past half the bound, the first ones are skimmed
    rids = [f"aaaaaaaa-0000-0000-0000-{i:012d}" for i in range(40)]
    t = time.time()
    with sc.cond:                                # hold the worker off while the flood piles up
        for i, rid in enumerate(rids):
            w.submit_invoke({"eventType": "INVOKE", "requestId": rid, "deadlineMs": int((t + 30) * 1000)})
            lines = [{"time": _start(rid, t)["time"], "type": "function", "record": f"line {n}\n"} for n in range(50)]
            lines[7]["record"] = "botocore: ThrottlingException: Rate exceeded\n"
            sc.queue.put(json.dumps([_start(rid, t + i), *lines, _runtime_done(rid, t + i + 0.01),
                                     _report(rid, t + i + 0.02)]).encode())
    assert w.shutdown(None, time.monotonic() + 5, time.monotonic() + 10)
    invs = {i.request_id: i for i in sink.of("InvocationSignal")}
    assert set(invs) == set(rids) and all(i.complete and i.throttles == 1 and i.log_lines == 50 for i in invs.values())
    h = w.health()
    skimmed = h["worker_skimmed_batches"]
    assert 40 - 24 <= skimmed < 40 and h["worker_shed_log_records"] == 50 * skimmed
    assert h["engine_records_received"] == 40 * 53                # every record counted, skimmed or not
    assert health_counters(h)["dropped"] == h["worker_shed_log_records"] + 2     # + RecordingSink's own 2
    # the lines that were not skimmed became OTLP log signals
    assert len(sink.of("LogSignal")) == 50 * (40 - skimmed)


def test_a_shutdown_before_any_invocation_with_little_time_skips_the_otlp_start():
    cond = threading.Condition()
    env = {"AWS_LAMBDA_FUNCTION_NAME": "fn", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"}
    settings, _ = load_settings(env)
    w = Worker(BatchQueue(cond=cond), settings, env, SidecarStatus(["platform"]))
    w.start(defer_setup=True)                     # as the lifecycle starts it: nothing released the setup yet
    now = time.monotonic()
    assert w.shutdown(None, now + 0.1, now + 0.6)
    assert w.health()["worker_otlp_skipped_at_shutdown"] == 1
    assert [type(s).__name__ for s in w.sinks] == ["EmfSink"]


def test_an_otlp_start_skipped_at_shutdown_counts_the_invocations_it_loses_as_dropped():
    cond = threading.Condition()
    env = {"AWS_LAMBDA_FUNCTION_NAME": "fn", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"}
    settings, _ = load_settings(env)
    w = Worker(BatchQueue(cond=cond), settings, env, SidecarStatus(["platform"]))
    w.start(defer_setup=True)                     # the setup was not released: one invocation, then SHUTDOWN
    w.submit_invoke({"eventType": "INVOKE", "requestId": "r1", "deadlineMs": int(time.time() * 1000) + 3000})
    now = time.monotonic()
    assert w.shutdown(None, now + 0.1, now + 0.6)
    h = w.health()
    assert h["worker_otlp_skipped_at_shutdown"] == 1 and h["worker_dropped_otlp_skipped_invocations"] == 1
    assert health_counters(h)["dropped"] == 1
