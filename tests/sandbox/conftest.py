"""Shared helpers of the sandbox conformance tests."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from lambda_sandbox import Sandbox, SandboxConfig

from tests.fixtures.extensions import extension_layer, parse_lines

FUNCTIONS = Path(__file__).resolve().parents[1] / "fixtures" / "functions"


@pytest.fixture
def make_sandbox(tmp_path):
    """Factory: make_sandbox(handler, recorder=False, **config) -> started Sandbox, closed at teardown."""
    made = []

    def factory(handler: str = "hello.handler", recorder: bool = False, **kwargs) -> Sandbox:
        kwargs.setdefault("code_dir", FUNCTIONS)
        if recorder:
            kwargs["layers"] = [extension_layer(tmp_path / f"layer{len(made)}")] + list(kwargs.get("layers", []))
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


def events_of(sb: Sandbox, type_: str) -> list:
    return [ev for ev in sb.events if ev.event["type"] == type_]


def recorder_items(sb: Sandbox, kind: str, name: str = "recorder") -> list:
    return [i for i in parse_lines(sb.extension_lines(name)) if i["recorder"] == kind]


def recorder_events(sb: Sandbox, event_type: str, name: str = "recorder") -> list:
    return [i["event"] for i in recorder_items(sb, "event", name) if i["event"].get("eventType") == event_type]


def epoch(iso: str) -> float:
    return dt.datetime.strptime(iso, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.timezone.utc).timestamp()
