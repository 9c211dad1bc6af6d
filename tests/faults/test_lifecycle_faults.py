"""Lifecycle faults in ONE environment with the sidecar exporting OTLP: handled error, timeout (reset and a
new sidecar process), runtime crash, OOM, a rapid burst, a long idle freeze, and a SHUTDOWN while an export is
in flight. No exception escapes the sidecar, every invocation is counted exactly once in EMF across the
sidecar processes, and every invocation span is exported at most once, the missing ones counted."""

from __future__ import annotations

import time

import pytest

from tests.faults.conftest import (
    assert_deadline_respected,
    assert_no_traceback,
    invocation_spans,
    sidecar_text,
    total,
)
from tests.faults.test_backend_faults import counted_drops
from tests.helpers import SIDECAR_NAME

pytestmark = pytest.mark.sandbox

BURST = 40
IDLE_S = 1.5   # the scenario itself (an environment left frozen), not a wait for something


def test_mixed_faults_in_one_environment(sidecar_env):
    sb, rx = sidecar_env(timeout_s=1.0, memory_mb=128, enforce_memory=True)
    results = []

    def call(payload, expect):
        r = sb.invoke(payload)
        assert r.outcome == expect, (payload, r)
        results.append(r)
        return r

    call({"echo": "cold"}, "success")
    call({"action": "error"}, "error")
    call({"action": "sleep", "sleep_s": 5}, "timeout")
    call({"echo": "after-timeout"}, "success")
    call({"action": "crash"}, "crash")
    call({"echo": "after-crash"}, "success")
    oom = sb.invoke({"action": "oom", "mb": 400})
    results.append(oom)
    oom_enforced = bool(sb.applied.get("memory_limit"))
    if oom_enforced:
        assert (oom.outcome, oom.error_type) == ("crash", "Runtime.OutOfMemory")
    burst = [call({"echo": i}, "success") for i in range(BURST)]
    assert [r.response["echo"] for r in burst] == list(range(BURST))
    for r in burst:
        assert_deadline_respected(sb, r)
    time.sleep(IDLE_S)
    call({"echo": "after-idle"}, "success")
    rx.set_fault("slow", delay_ms=1500)       # the next exports hang in flight...
    for i in range(3):
        call({"echo": f"last-{i}"}, "success")
    shut = sb.shutdown()                      # ...when SHUTDOWN arrives
    assert shut.extensions[SIDECAR_NAME] == "Exited", sidecar_text(sb)[-2000:]
    assert shut.duration_ms < sb.cfg.shutdown_budget_ms
    assert all(state == "Exited" for reset in sb.resets for state in reset.extensions.values()), sb.resets
    assert len(sb.resets) >= 2                # timeout and crash (and OOM) each replaced the sidecar process

    assert_no_traceback(sb)
    assert total(sb, "Invocations") == len(results)     # exactly once, across every sidecar process
    assert total(sb, "Timeouts") == 1
    assert total(sb, "FunctionErrors") == 1
    assert total(sb, "OutOfMemory") == (1 if oom_enforced else 0)

    exported = invocation_spans(rx)
    assert all(n == 1 for n in exported.values()), exported
    missing = {r.request_id for r in results} - set(exported)
    assert not missing or counted_drops(sb) >= len(missing), missing
