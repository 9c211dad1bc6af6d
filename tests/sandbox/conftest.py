"""Shared helpers of the sandbox conformance tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from lambda_sandbox import Sandbox, SandboxConfig

FUNCTIONS = Path(__file__).resolve().parents[1] / "fixtures" / "functions"


@pytest.fixture
def make_sandbox():
    """Factory: make_sandbox(handler="hello.handler", **config) -> started Sandbox, closed at teardown."""
    made = []

    def factory(handler: str = "hello.handler", **kwargs) -> Sandbox:
        kwargs.setdefault("code_dir", FUNCTIONS)
        sb = Sandbox(SandboxConfig(handler=handler, **kwargs)).start()
        made.append(sb)
        return sb

    yield factory
    for sb in made:
        sb.close()


def types(sb: Sandbox, prefix: str = "platform.") -> list:
    return [ev.event["type"] for ev in sb.events if ev.event["type"].startswith(prefix)]


def records_of(sb: Sandbox, type_: str) -> list:
    return [ev.event["record"] for ev in sb.events if ev.event["type"] == type_]
