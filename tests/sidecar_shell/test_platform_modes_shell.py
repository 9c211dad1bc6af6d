"""The sidecar's shell on Lambda Managed Instances (a fake API that answers as RIE-LMI does): SHUTDOWN-only
registration, schema 2025-01-29, no INVOKE ever, background flushes, every invocation counted once."""

from __future__ import annotations

import json
import time

from tests.sidecar_shell.test_lifecycle_shell import _emf_lines, _iso, _start

LMI = {"AWS_LAMBDA_INITIALIZATION_TYPE": "lambda-managed-instances"}


def _lmi_report(rid: str, t: float) -> dict:
    return {"time": _iso(t), "type": "platform.report",
            "record": {"requestId": rid, "status": "success", "metrics": {"durationMs": 12.0},
                       "spans": [{"name": "responseLatency", "start": _iso(t - 0.012), "durationMs": 10.0}]}}


def _rid(i: int) -> str:
    return f"{i:08d}-1111-4111-8111-111111111111"


def _invocations(docs) -> float:
    return sum(d.get("Invocations", 0) for d in docs)


def test_lmi_registers_shutdown_only_and_subscribes_with_2025_01_29(fake):
    api, proc = fake(env=dict(LMI), lmi=True)
    api.wait_next_calls(1)
    assert api.registrations == [{"name": "otel-sidecar", "body": {"events": ["SHUTDOWN"]}}]
    assert [s["schemaVersion"] for s in api.subscriptions] == ["2025-01-29"]
    assert not any("degraded" in line for line in proc.stderr)


def test_a_refused_invoke_registration_reveals_lmi_and_the_sidecar_keeps_going(fake):
    api, proc = fake(lmi=True)      # the environment does not say LMI: the 403 does
    api.wait_next_calls(1)
    assert [r["body"]["events"] for r in api.registrations] == [["INVOKE", "SHUTDOWN"], ["SHUTDOWN"]]
    # the subscription comes after the registration: already with LMI's schema
    assert [s["schemaVersion"] for s in api.subscriptions] == ["2025-01-29"]
    proc.wait_line(lambda line: "refused the INVOKE registration" in line)
    assert proc.proc.poll() is None


def test_lmi_concurrent_invocations_counted_once_and_flushed_by_the_timer(fake):
    api, proc = fake(env=dict(LMI, SIDECAR_FLUSH="periodic:300"), lmi=True)
    api.wait_next_calls(1)
    t = time.time()
    events = []
    for i in range(8):     # overlapping: all starts, then the reports in another order
        events.append(_start(_rid(i), t + i * 0.001))
    for i in (3, 0, 7, 1, 6, 2, 5, 4):
        events.append(_lmi_report(_rid(i), t + 0.05 + i * 0.001))
    assert api.deliver(events[:10]) == 200
    assert api.deliver(events[10:]) == 200
    # no INVOKE, no SHUTDOWN yet: the background timer prints the EMF of all eight
    proc.wait_line(lambda line: '"Invocations":8' in line, stream="stdout", timeout=10)
    api.shutdown_event(window_s=2.0)
    assert proc.wait_exit(timeout=5) == 0
    docs = _emf_lines(proc.stdout)
    assert _invocations(docs) == 8
    assert sum(d.get("ColdStart", 0) for d in docs) == 0
    assert len(api.next_calls) == 1         # /next was called once and blocked until SHUTDOWN
    assert all(json.dumps(d).count("Duration") >= 1 for d in docs if "Invocations" in d)
