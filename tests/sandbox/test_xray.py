"""X-Ray trace headers per tracing mode (lambda-apis.md 3.1, 5.4). Pure functions."""

from __future__ import annotations

import re

from lambda_sandbox import xray

HEADER = re.compile(r"^Root=1-[0-9a-f]{8}-[0-9a-f]{24};Parent=[0-9a-f]{16};Sampled=[01]$")


def test_no_tracing_and_no_upstream_gives_no_header():
    t = xray.trace_for_invoke(None)
    assert (t.runtime_header, t.tracing, t.extension_value) == (None, None, None)


def test_active_mode_new_root_sampled_with_lambdas_segment_as_parent():
    t = xray.trace_for_invoke("Active", now=0x6352A70E)
    assert HEADER.match(t.runtime_header) and t.runtime_header.endswith("Sampled=1")
    assert t.runtime_header.startswith("Root=1-6352a70e-")
    parent = xray.parse_header(t.runtime_header)["Parent"]
    assert t.tracing["spanId"] == parent and t.tracing["type"] == "X-Amzn-Trace-Id"
    assert xray.parse_header(t.tracing["value"])["Parent"] != parent   # value = the upstream header


def test_active_mode_keeps_an_upstream_root():
    upstream = "Root=1-6352a70e-1e2c502e358361800241fd45;Parent=35465b3a9e2f7c6a;Sampled=1"
    t = xray.trace_for_invoke("Active", upstream)
    assert t.tracing["value"] == upstream
    assert xray.parse_header(t.runtime_header)["Root"] == "1-6352a70e-1e2c502e358361800241fd45"


def test_passthrough_unsampled_has_no_tracing_object_and_no_span_id():
    t = xray.trace_for_invoke("PassThrough")
    assert HEADER.match(t.runtime_header) and t.runtime_header.endswith("Sampled=0")
    assert t.tracing is None and t.extension_value == t.runtime_header
    sampled = "Root=1-6352a70e-1e2c502e358361800241fd45;Parent=35465b3a9e2f7c6a;Sampled=1"
    t = xray.trace_for_invoke("PassThrough", sampled)
    assert t.tracing == {"type": "X-Amzn-Trace-Id", "value": sampled} and t.runtime_header == sampled
