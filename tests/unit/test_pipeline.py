"""RecordPipeline: the worker's path (raw body -> parse -> engine) counts each record once, in the engine."""

from __future__ import annotations

import json

from otel_sidecar.config import load_settings
from otel_sidecar.pipeline import RecordPipeline
from otel_sidecar.signals import InvocationSignal

from tests.unit import sequences as s

T0 = 1_767_225_600.0


def test_the_production_path_counts_every_item_once_invalid_fields_too():
    p = RecordPipeline(load_settings({"AWS_LAMBDA_FUNCTION_NAME": "fn"})[0])
    bad = {"time": "2026-01-01T00:00:00.000Z", "type": "platform.runtimeDone",
           "record": {"requestId": "r1", "status": 7, "metrics": {"durationMs": "fast"}}}
    own = {"time": "2026-01-01T00:00:00.000Z", "type": "extension", "record": "[otel-sidecar] INFO hello\n"}
    out = p.batch(json.dumps([s.start(T0, "r1"), bad, own, "not an envelope", s.report(T0 + 0.1, "r1", 5.0)]).encode(),
                  T0 + 1)
    assert [o.request_id for o in out if isinstance(o, InvocationSignal)] == ["r1"]
    h = p.health
    assert (h["records_received"], h["malformed"], h["invalid_fields"], h["own_lines_filtered"]) == (5, 1, 2, 1)
    assert p.take_progress() == (["r1"], ["r1"]) and p.take_progress() == ([], [])
