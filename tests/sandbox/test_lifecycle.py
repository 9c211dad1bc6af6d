"""Conformance of the sandbox lifecycle with lambda-apis.md sections 4 and 5.7 (no extensions)."""

from __future__ import annotations

import pytest

from .conftest import records_of, types

pytestmark = pytest.mark.sandbox


def test_cold_start_then_warm_invoke(make_sandbox):
    sb = make_sandbox()
    first = sb.invoke({"x": 1})
    second = sb.invoke({"x": 2})
    assert first.outcome == "success" and first.response["event"] == {"x": 1}
    assert second.response["requestId"] == second.request_id
    assert types(sb) == ["platform.initStart", "platform.initRuntimeDone", "platform.initReport",
                         "platform.start", "platform.runtimeDone", "platform.report",
                         "platform.start", "platform.runtimeDone", "platform.report"]
    reports = records_of(sb, "platform.report")
    assert "initDurationMs" in reports[0]["metrics"] and "initDurationMs" not in reports[1]["metrics"]
    assert reports[0]["metrics"]["billedDurationMs"] >= reports[0]["metrics"]["initDurationMs"]
    done = records_of(sb, "platform.runtimeDone")[0]
    assert [s["name"] for s in done["spans"]] == ["responseLatency", "responseDuration", "runtimeOverhead"]
    assert done["metrics"]["producedBytes"] == len(first.response_bytes)
    assert "hello from the handler" in sb.function_lines()
