"""Fixtures of the sidecar's end-to-end tests: a Sandbox running a real handler with the dev layer."""

from __future__ import annotations

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
