"""Console lines are what CloudWatch Logs would show (issue 15: no added prefix, EMF stays valid JSON)."""

from __future__ import annotations

import json

from lambda_sandbox.config import LogLine
from lambda_sandbox.report import console_line

EMF = '{"_aws":{"Timestamp":1,"CloudWatchMetrics":[{"Namespace":"n","Dimensions":[[]],"Metrics":[]}]},"x":1}'


def test_extension_lines_are_shown_as_the_extension_wrote_them():
    line = LogLine("extension:otel-sidecar", 0.0, "[otel-sidecar] INFO OTLP export on: http://x")
    assert console_line(line) == "[otel-sidecar] INFO OTLP export on: http://x"   # one prefix: its own


def test_an_emf_line_from_an_extension_prints_as_valid_json():
    shown = console_line(LogLine("extension:otel-sidecar", 0.0, EMF + "\n"))
    assert shown == EMF and json.loads(shown)["x"] == 1


def test_platform_and_function_lines_are_unchanged():
    assert console_line(LogLine("platform", 0.0, "START RequestId: r Version: $LATEST")) == \
        "START RequestId: r Version: $LATEST"
    assert console_line(LogLine("function", 0.0, "hello\n")) == "hello"
