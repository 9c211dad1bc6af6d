"""X-Ray header <-> W3C ids (conventions.md 3.1-3.2)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from otel_sidecar.otlp.traceids import parse_traceparent, parse_xray, to_xray

hex_digits = "0123456789abcdef"
trace_ids = st.text(hex_digits, min_size=32, max_size=32).filter(lambda s: s != "0" * 32)
span_ids = st.text(hex_digits, min_size=16, max_size=16).filter(lambda s: s != "0" * 16)
lineages = st.none() | st.from_regex(r"\A[0-9a-f]{8}:[0-9]{1,2}(\|[0-9a-f]{8}:[0-9])*\Z")


def test_documented_example():
    xr = parse_xray("Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1")
    assert xr.trace_id == "5759e988bd862e3fe1be46a994272793"
    assert xr.parent_id == "53995c3f42cd8ad8" and xr.sampled is True
    assert xr.traceparent() == "00-5759e988bd862e3fe1be46a994272793-53995c3f42cd8ad8-01"


def test_unknown_keys_ignored_lineage_kept_and_deferred_sampling():
    xr = parse_xray("Root=1-5759e988-bd862e3fe1be46a994272793;Self=2;Sampled=?;Lineage=a87bd80c:1|68fd508a:5;Foo=bar")
    assert xr.parent_id is None and xr.sampled is None and xr.lineage == "a87bd80c:1|68fd508a:5"
    assert to_xray(xr.trace_id, None, None, xr.lineage).endswith("Sampled=?;Lineage=a87bd80c:1|68fd508a:5")


def test_invalid_headers_give_no_ids():
    for bad in (None, "", "Root=2-5759e988-bd862e3fe1be46a994272793", "Root=1-5759e988-bd86",
                "Parent=53995c3f42cd8ad8;Sampled=1", "Root=1-00000000-000000000000000000000000"):
        assert parse_xray(bad) is None
    assert parse_xray("Root=1-5759e988-bd862e3fe1be46a994272793;Parent=xyz").parent_id is None


@given(trace_ids, span_ids, st.booleans(), lineages)
def test_round_trip_xray_w3c(trace_id, span_id, sampled, lineage):
    header = to_xray(trace_id, span_id, sampled, lineage)
    xr = parse_xray(header)
    assert (xr.trace_id, xr.parent_id, xr.sampled, xr.lineage) == (trace_id, span_id, sampled, lineage)
    back = parse_traceparent(xr.traceparent())
    assert (back.trace_id, back.parent_id, back.sampled) == (trace_id, span_id, sampled)
    assert to_xray(back.trace_id, back.parent_id, back.sampled, lineage) == header


@given(trace_ids, span_ids)
def test_uppercase_hex_is_normalised(trace_id, span_id):
    header = f"Root=1-{trace_id[:8].upper()}-{trace_id[8:].upper()};Parent={span_id.upper()};Sampled=0"
    xr = parse_xray(header)
    assert (xr.trace_id, xr.parent_id, xr.trace_flags) == (trace_id, span_id, 0)
