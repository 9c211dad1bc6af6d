from __future__ import annotations

import time

import pytest
from lambda_sandbox.otlp_receiver import OtlpReceiver
from otel_sidecar.otlp.config import load_otlp_config
from otel_sidecar.otlp.sink import OtlpSink

from tests.otlp._signals import ENV


@pytest.fixture
def receiver():
    with OtlpReceiver() as rx:
        yield rx


@pytest.fixture
def make_sink(receiver):
    """make_sink(**env overrides) -> OtlpSink exporting to the receiver; shut down at teardown."""
    made = []

    def factory(flush_mode: str = "adaptive", logs: bool = True, **env_overrides: str) -> OtlpSink:
        env = dict(ENV, OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint, SIDECAR_OTLP_SPOOL_DIR="off")
        env.update(env_overrides)
        cfg, warnings = load_otlp_config(env)
        sink = OtlpSink(cfg, None, env, logs_enabled=logs, flush_mode=flush_mode, flush_interval_ms=200)
        made.append(sink)
        return sink

    yield factory
    for sink in made:
        sink.shutdown(time.monotonic() + 1.0)


def soon(seconds: float = 2.0) -> float:
    return time.monotonic() + seconds
