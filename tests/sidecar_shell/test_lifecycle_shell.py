"""The sidecar's shell (lifecycle, listener, worker) against a fake Extensions/Telemetry API."""

from __future__ import annotations

import json
import signal
import socket
import time
import uuid

import pytest


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int((t % 1) * 1000):03d}Z"


def _start(rid: str, t: float) -> dict:
    return {"time": _iso(t), "type": "platform.start", "record": {"requestId": rid, "version": "$LATEST"}}


def _runtime_done(rid: str, t: float, status: str = "success") -> dict:
    return {"time": _iso(t), "type": "platform.runtimeDone",
            "record": {"requestId": rid, "status": status,
                       "metrics": {"durationMs": 12.5, "producedBytes": 20},
                       "spans": [{"name": "responseLatency", "start": _iso(t - 0.012), "durationMs": 10.0},
                                 {"name": "responseDuration", "start": _iso(t - 0.002), "durationMs": 1.0},
                                 {"name": "runtimeOverhead", "start": _iso(t - 0.001), "durationMs": 1.0}]}}


def _report(rid: str, t: float, status: str = "success") -> dict:
    return {"time": _iso(t), "type": "platform.report",
            "record": {"requestId": rid, "status": status,
                       "metrics": {"durationMs": 15.25, "billedDurationMs": 16, "memorySizeMB": 128,
                                   "maxMemoryUsedMB": 40},
                       "spans": [{"name": "extensionOverhead", "start": _iso(t - 0.003), "durationMs": 2.75}]}}


def _emf_lines(lines):
    out = []
    for line in lines:
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        if isinstance(doc, dict) and "_aws" in doc:
            out.append(doc)
    return out


def test_registers_subscribes_and_reaches_next(fake):
    api, proc = fake()
    api.wait_next_calls(1)
    assert api.registrations == [{"name": "otel-sidecar", "body": {"events": ["INVOKE", "SHUTDOWN"]}}]
    sub = api.subscriptions[0]
    assert sub["types"] == ["platform", "function"]
    assert sub["buffering"] == {"maxItems": 10000, "maxBytes": 1048576, "timeoutMs": 25}
    assert sub["destination"]["protocol"] == "HTTP"
    assert sub["destination"]["URI"].startswith("http://sandbox.localdomain:")
    # the listener answers 200 at once, even to a body that is not telemetry
    assert api.deliver(b"this is not json") == 200
    assert api.deliver([]) == 200
    assert proc.proc.poll() is None


@pytest.mark.parametrize("status, why", [(404, "HTTP 404"), (202, "HTTP 202"), (403, "HTTP 403"),
                                         (500, "HTTP 500")])
def test_telemetry_api_refusal_degrades_and_keeps_serving(fake, status, why):
    api, proc = fake(subscribe_status=status)
    api.wait_next_calls(1)
    line = proc.wait_line(lambda ln: "degraded" in ln and why in ln)
    assert line.startswith("[otel-sidecar]")
    # without telemetry nothing can tell it runtimeDone: it must not wait for it
    for i in range(3):
        api.invoke(f"req-{i}", timeout_s=60)
        api.wait_next_calls(2 + i)
    api.shutdown_event()
    assert proc.wait_exit() == 0
    assert len([ln for ln in proc.stderr if "degraded" in ln]) == 1


def test_next_waits_for_runtime_done_then_returns(fake):
    api, proc = fake(env={"SIDECAR_FLUSH": "end"})   # adaptive goes straight to /next on a first invocation
    api.wait_next_calls(1)
    rid = str(uuid.uuid4())
    api.invoke(rid, timeout_s=60)
    t = time.time()
    assert api.deliver([_start(rid, t)]) == 200
    delivered_at = time.time()
    assert api.deliver([_runtime_done(rid, time.time())]) == 200
    second = api.wait_next_calls(2)
    assert second >= delivered_at, "the sidecar went back to /next before runtimeDone arrived"


def test_wait_for_runtime_done_is_bounded_by_the_deadline(fake):
    api, proc = fake()
    api.wait_next_calls(1)
    event = api.invoke("never-done", timeout_s=1.0)
    second = api.wait_next_calls(2, timeout=5)
    assert second * 1000 < event["deadlineMs"], "the sidecar held /next past the invoke's deadline"
    assert proc.proc.poll() is None


def test_shutdown_emits_emf_and_exits_before_the_deadline(fake):
    api, proc = fake()
    api.wait_next_calls(1)
    rid = str(uuid.uuid4())
    t = time.time()
    api.invoke(rid, timeout_s=60)
    api.deliver([_start(rid, t), _runtime_done(rid, t + 0.015)])
    api.wait_next_calls(2)
    shut = api.shutdown_event(window_s=2.0)
    api.deliver([_report(rid, time.time())])   # the last report arrives during the shutdown window
    assert proc.wait_exit(timeout=5) == 0
    assert proc.exited_at * 1000 < shut["deadlineMs"]
    docs = _emf_lines(proc.stdout)
    assert docs, f"no EMF lines on stdout: {proc.stdout!r} / {proc.stderr!r}"
    names = {m["Name"] for d in docs for directive in d["_aws"]["CloudWatchMetrics"] for m in directive["Metrics"]}
    assert names, "EMF documents without metrics"


def test_listener_port_taken_falls_back_to_an_ephemeral_port(fake):
    taken = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    port = taken.getsockname()[1]
    try:
        api, proc = fake(env={"SIDECAR_LISTENER_PORT": str(port)})
        api.wait_next_calls(1)
        line = proc.wait_line(lambda ln: str(port) in ln and "ephemeral" in ln)
        assert line.startswith("[otel-sidecar]")
        assert api.listener_port() != port
        assert api.deliver([]) == 200
    finally:
        taken.close()


def test_registration_failure_exits_non_zero_with_one_line(fake):
    api, proc = fake(register_status=403)
    assert proc.wait_exit() != 0
    assert any("registration" in ln and "otel-sidecar" in ln for ln in proc.stderr)
    assert api.next_calls == []


def test_sigterm_exits_cleanly(fake):
    api, proc = fake()
    api.wait_next_calls(1)
    proc.proc.send_signal(signal.SIGTERM)
    assert proc.wait_exit(timeout=5) == 0


def test_bad_telemetry_bodies_are_counted_not_fatal(fake):
    api, proc = fake()
    api.wait_next_calls(1)
    for body in (b"{", b"[1, 2, 3]", b'[{"type": "platform.nothing", "time": "x", "record": 5}]', b"\xff\xfe"):
        assert api.deliver(body) == 200
    rid = "after-garbage"
    api.invoke(rid, timeout_s=60)
    api.deliver([_start(rid, time.time()), _runtime_done(rid, time.time())])
    api.wait_next_calls(2)
    api.shutdown_event()
    assert proc.wait_exit() == 0


def test_periodic_flush_returns_to_next_without_waiting(fake):
    api, proc = fake(env={"SIDECAR_FLUSH": "periodic"})
    api.wait_next_calls(1)
    for i in range(3):
        api.invoke(f"periodic-{i}", timeout_s=60)     # no runtimeDone is ever delivered
        api.wait_next_calls(2 + i, timeout=5)
    api.shutdown_event()
    assert proc.wait_exit() == 0


def test_after_a_missed_runtime_done_it_stops_waiting_until_telemetry_flows_again(fake):
    api, proc = fake(env={"SIDECAR_FLUSH": "end"})   # the mode that waits for runtimeDone after every invoke
    api.wait_next_calls(1)
    api.invoke("lost", timeout_s=1.0)                      # its runtimeDone never comes
    api.wait_next_calls(2, timeout=5)
    proc.wait_line(lambda ln: "no platform.runtimeDone for lost" in ln)
    api.invoke("not-held", timeout_s=60)                   # not held to its deadline
    api.wait_next_calls(3, timeout=5)
    api.deliver([_runtime_done("not-held", time.time())])  # telemetry is back
    rid = "held-again"
    api.invoke(rid, timeout_s=60)
    api.deliver([_start(rid, time.time())])
    delivered_at = time.time()
    api.deliver([_runtime_done(rid, time.time())])
    assert api.wait_next_calls(4) >= delivered_at
    assert any("flows again" in ln for ln in proc.stderr)
