"""Fixtures of the sidecar's end-to-end tests: a Sandbox running a real handler with the dev layer."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from lambda_sandbox import Sandbox, SandboxConfig

from tests.helpers import dev_layer

FUNCTIONS = Path(__file__).resolve().parents[1] / "fixtures" / "functions"


@pytest.fixture
def sidecar_sandbox(tmp_path):
    """Factory: sidecar_sandbox(handler="sidecar_app.handler", **config) -> started Sandbox with the sidecar."""
    made = []

    def factory(handler: str = "sidecar_app.handler", **kwargs) -> Sandbox:
        kwargs.setdefault("code_dir", FUNCTIONS)
        kwargs["layers"] = [dev_layer(tmp_path / f"layer{len(made)}")] + list(kwargs.get("layers", []))
        kwargs.setdefault("function_name", "sidecar-e2e")
        sb = Sandbox(SandboxConfig(handler=handler, **kwargs)).start()
        made.append(sb)
        return sb

    yield factory
    for sb in made:
        sb.close()


def wait_for(pred, timeout: float = 5.0, interval: float = 0.01):
    """Poll pred() until it returns a truthy value or the bound passes (then fail)."""
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)
