"""Fixtures of the fault suite: a Sandbox with the sidecar (dev layer) exporting to an OtlpReceiver."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Dict, List

import pytest
from lambda_sandbox import OtlpReceiver, Sandbox, SandboxConfig

from tests.helpers import SIDECAR_NAME, dev_layer, emf_values, sidecar_emf

FUNCTIONS = Path(__file__).resolve().parents[1] / "fixtures" / "functions"
FN = "sidecar-faults"
TRACEBACK = re.compile(r"Traceback \(most recent call last\)|^\s+File \".*\", line \d+", re.M)


@pytest.fixture
def sidecar_env(tmp_path):
    """Factory: sidecar_env(fault=None, **config) -> (started Sandbox, started OtlpReceiver); both closed at teardown."""
    made: List[Any] = []

    def factory(fault: Any = None, handler: str = "sidecar_app.handler", **kwargs: Any):
        rx = OtlpReceiver(fault=fault).start()
        made.append(rx)
        kwargs.setdefault("code_dir", FUNCTIONS)
        kwargs["layers"] = [dev_layer(tmp_path / f"layer{len(made)}")]
        kwargs.setdefault("function_name", FN)
        env = {"OTEL_EXPORTER_OTLP_ENDPOINT": rx.endpoint, **kwargs.pop("env", {})}
        sb = Sandbox(SandboxConfig(handler=handler, env=env, **kwargs)).start()
        made.append(sb)
        return sb, rx

    yield factory
    for obj in reversed(made):
        obj.close() if isinstance(obj, Sandbox) else obj.stop()


def total(sb: Sandbox, metric: str) -> float:
    return sum(emf_values(sidecar_emf(sb), metric, FunctionName=FN))


def sidecar_text(sb: Sandbox) -> str:
    return "\n".join(str(getattr(ln, "text", ln)) for ln in sb.extension_lines(SIDECAR_NAME))


def assert_no_traceback(sb: Sandbox) -> None:
    text = sidecar_text(sb)
    assert not TRACEBACK.search(text), text[-3000:]


def invocation_spans(rx: OtlpReceiver) -> Dict[str, int]:
    """request id -> how many SERVER invocation spans carry it."""
    out: Dict[str, int] = {}
    for s in rx.spans():
        rid = s["attributes"].get("faas.invocation_id")
        if s["kind"] == "SERVER" and rid:
            out[rid] = out.get(rid, 0) + 1
    return out


def assert_deadline_respected(sb: Sandbox, result: Any) -> None:
    """The sidecar did not hold the invoke until its deadline bound (the function's answer came first anyway)."""
    assert result.duration_ms < sb.cfg.timeout_s * 1000 - 200, (
        f"invoke phase {result.duration_ms} ms with timeout {sb.cfg.timeout_s} s: /next was held to the bound")
