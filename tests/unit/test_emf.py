"""EMF documents and EmfSink: every printed line validates against the EMF schema and respects the limits."""

from __future__ import annotations

import io
import json
import pathlib
import time

import jsonschema
import pytest
from otel_sidecar import catalog, emf
from otel_sidecar import signals as sg
from otel_sidecar.config import load_settings

from tests.unit import sequences as s
from tests.unit.sequences import R1, T0

SCHEMA = json.loads((pathlib.Path(__file__).parent / "emf_schema.json").read_text())
VALIDATOR = jsonschema.Draft7Validator(SCHEMA)
FAR = time.monotonic() + 3600


def settings(**env):
    st, w = load_settings({"AWS_LAMBDA_FUNCTION_NAME": "my-function", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128", **env})
    assert w == []
    return st


def check_line(line: str) -> dict:
    """Everything a CloudWatch EMF consumer requires of one printed line."""
    assert "\n" not in line and line == line.strip()
    doc = json.loads(line)
    VALIDATOR.validate(doc)
    assert len(line.encode()) < 256 * 1024
    for directive in doc["_aws"]["CloudWatchMetrics"]:
        assert len(directive["Metrics"]) <= emf.MAX_METRICS_PER_DIRECTIVE
        for dim_set in directive["Dimensions"]:
            for key in dim_set:
                assert isinstance(doc[key], str) and doc[key].strip() and len(doc[key]) <= 1024
        for m in directive["Metrics"]:
            v = doc[m["Name"]]
            if isinstance(v, list):
                assert 0 < len(v) <= emf.MAX_VALUES_PER_METRIC
                assert all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v)
            else:
                assert isinstance(v, (int, float)) and not isinstance(v, bool)
    return doc


def emit(outputs, st=None, **kw):
    buf = io.StringIO()
    sink = emf.EmfSink(st or settings(), buf, **kw)
    sink.accept(outputs)
    sink.flush(FAR)
    lines = buf.getvalue().splitlines()
    return [check_line(x) for x in lines], sink


def test_sequence_a_gives_one_valid_document_with_the_right_values():
    out = s.run(sg.SignalEngine(settings()), s.seq_a_cold_then_warm())
    docs, sink = emit(out)
    first = docs[0]
    assert first["Invocations"] == 3 and first["Errors"] == 0 and first["Timeouts"] == 0
    assert first["Duration"] == [21, 11.2, 13] and first["RuntimeDuration"] == [20, 10, 12]
    assert first["ColdStart"] == 1 and first["InitDuration"] == [250] and first["PostRuntimeDuration"] == [0.9, 1.2, 1]
    assert first["MaxMemoryUsed"] == [60, 60, 60] and first["BilledDuration"] == [271, 12, 13]
    directive = first["_aws"]["CloudWatchMetrics"][0]
    assert directive["Namespace"] == "OtelSidecar" and directive["Dimensions"] == [["FunctionName"]]
    assert first["FunctionName"] == "my-function" and first["Service"] == "my-function"
    units = {m["Name"]: m["Unit"] for m in directive["Metrics"]}
    assert units["Duration"] == "Milliseconds" and units["Invocations"] == "Count" and units["MaxMemoryUsed"] == \
        "Megabytes" and units["MemoryUtilization"] == "Percent" and units["ProducedBytes"] == "Bytes"
    assert first["_aws"]["Timestamp"] == int(max(o.time for o in out if isinstance(o, sg.InvocationSignal)
                                                 and o.time < T0 + 60) * 1000)
    shutdown_doc = [d for d in docs if "Shutdowns" in d][0]
    assert shutdown_doc["ShutdownsSpindown"] == 1 and "ShutdownsTimeout" not in shutdown_doc
    assert sink.health()["emf_lines"] == len(docs)


def test_no_request_ids_or_trace_ids_anywhere_in_emf():
    out = s.run(sg.SignalEngine(settings()), s.seq_a_cold_then_warm())
    buf = io.StringIO()
    sink = emf.EmfSink(settings(), buf)
    sink.accept(out)
    sink.flush(FAR)
    text = buf.getvalue()
    for rid in (s.R1, s.R2, s.R3):
        assert rid not in text
    assert "Root=" not in text


def test_timeout_crash_oom_and_throttles_are_counted():
    e = sg.SignalEngine(settings())
    out = s.run(e, s.seq_b_timeout()) + s.run(sg.SignalEngine(settings()), s.seq_c_crash(T0 + 10))
    out += s.run(sg.SignalEngine(settings()), [
        s.invoke(R1, T0 + 20), s.batch(s.start(T0 + 20, R1), s.flog(T0 + 20.1, "ThrottlingException", R1),
                                       s.flog(T0 + 20.2, "MemoryError", R1),
                                       s.report(T0 + 20.5, R1, 500.0, status="error",
                                                error_type="Runtime.OutOfMemory", max_used_mb=128))])
    docs, _ = emit(out)
    totals = {}
    for d in docs:
        for k in ("Invocations", "Errors", "Timeouts", "OutOfMemory", "DownstreamThrottles", "ShutdownsTimeout",
                  "ShutdownsFailure", "ColdStart"):
            totals[k] = totals.get(k, 0) + d.get(k, 0)
    assert totals == {"Invocations": 3, "Errors": 3, "Timeouts": 1, "OutOfMemory": 1, "DownstreamThrottles": 1,
                      "ShutdownsTimeout": 1, "ShutdownsFailure": 1, "ColdStart": 2}


def many_invocations(n: int, t0: float = T0, step: float = 0.1) -> list:
    out = []
    for i in range(n):
        e = sg.SignalEngine(settings())
        rid = f"00000000-0000-4000-8000-{i:012d}"
        t = t0 + i * step
        out += s.run(e, [s.invoke(rid, t), s.batch(s.start(t, rid), s.runtime_done(t + 0.01, rid, 10.0 + i),
                                                 s.report(t + 0.011, rid, 11.0 + i))])
    return [o for o in out if isinstance(o, sg.InvocationSignal)]


def test_more_than_100_values_split_into_documents_without_losing_any():
    out = many_invocations(250, step=0.1)  # all within one minute
    docs, _ = emit(out)
    assert len(docs) == 3
    durations = [v for d in docs for v in d.get("Duration", [])]
    assert sorted(durations) == [11 + i for i in range(250)]
    assert sum(d.get("Invocations", 0) for d in docs) == 250
    assert [len(d["Duration"]) for d in docs] == [100, 100, 50]
    for d in docs:  # every metric named by a directive is present in the same document
        names = [m["Name"] for m in d["_aws"]["CloudWatchMetrics"][0]["Metrics"]]
        assert all(n in d for n in names)


def test_values_are_bucketed_by_minute_with_matching_timestamps():
    out = many_invocations(3, t0=T0 + 59.95, step=0.05)  # 59.95, 60.00, 60.05 -> two minutes
    docs, _ = emit(out)
    assert [d["Invocations"] for d in docs] == [1, 2]
    assert docs[0]["_aws"]["Timestamp"] // 60000 == int((T0 + 59.95) // 60)
    assert docs[1]["_aws"]["Timestamp"] // 60000 == int((T0 + 60.0) // 60)


def test_optional_dimensions_and_namespace():
    st = settings(SIDECAR_EMF_DIMENSIONS="FunctionVersion,Service,MemorySize", SIDECAR_EMF_NAMESPACE="Team/App",
                  POWERTOOLS_SERVICE_NAME="checkout", AWS_LAMBDA_FUNCTION_VERSION="12")
    docs, _ = emit(many_invocations(1), st)
    d = docs[0]
    assert d["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["FunctionName", "FunctionVersion", "Service",
                                                                "MemorySize"]]
    assert (d["FunctionVersion"], d["Service"], d["MemorySize"]) == ("12", "checkout", "128")
    assert d["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "Team/App"


def test_non_ascii_dimension_values_are_made_valid():
    st = settings(AWS_LAMBDA_FUNCTION_NAME="fünction", SIDECAR_EMF_DIMENSIONS="Service", POWERTOOLS_SERVICE_NAME=" ")
    docs, _ = emit(many_invocations(1), st)
    assert docs[0]["FunctionName"] == "f?nction" and docs[0]["Service"] == "f?nction"


def test_health_counters_are_printed_as_deltas():
    st = settings()
    buf = io.StringIO()
    sink = emf.EmfSink(st, buf)
    sink.accept([sg.HealthSignal(T0, (("records_received", 10.0), ("time_to_first_next_ms", 42.0),
                                      ("dropped", 0.0)))])
    sink.flush(FAR)
    sink.accept([sg.HealthSignal(T0 + 1, (("records_received", 25.0), ("time_to_first_next_ms", 42.0),
                                          ("dropped", 3.0), ("export_failures", 1.0)))])
    sink.flush(FAR)
    sink.accept([sg.HealthSignal(T0 + 2, (("records_received", 25.0),))])
    sink.flush(FAR)
    docs = [check_line(x) for x in buf.getvalue().splitlines()]
    assert len(docs) == 2
    assert docs[0]["SidecarRecordsReceived"] == 10 and docs[0]["SidecarTimeToFirstNext"] == 42
    assert "SidecarDropped" not in docs[0]
    assert docs[1]["SidecarRecordsReceived"] == 15 and docs[1]["SidecarDropped"] == 3
    assert docs[1]["SidecarExportFailures"] == 1 and "SidecarTimeToFirstNext" not in docs[1]


def test_sink_buffer_is_bounded_and_drops_are_counted():
    out = many_invocations(30)
    docs, sink = emit(out, max_buffer=10)
    assert sum(d["Invocations"] for d in docs) == 10
    assert sink.health()["dropped_emf_signals"] == 20


def test_sink_ignores_log_signals_and_prints_nothing_for_an_empty_window():
    buf = io.StringIO()
    sink = emf.EmfSink(settings(), buf)
    sink.accept([sg.LogSignal(T0, "x", "x", None, None, None, None)])
    sink.flush(FAR)
    assert buf.getvalue() == ""


def test_emf_off_prints_nothing():
    docs, _ = emit(many_invocations(2), settings(SIDECAR_EMF="off"))
    assert docs == []


class _Broken(io.StringIO):
    def write(self, s):
        raise BrokenPipeError("stdout closed")


def test_a_broken_stdout_is_counted_not_raised():
    sink = emf.EmfSink(settings(), _Broken())
    sink.accept(many_invocations(2))
    sink.flush(FAR)
    h = sink.health()
    assert h["emf_write_errors"] == 1 and h["emf_lines"] == 0
    sink.shutdown(FAR)
    assert sink.health()["dropped_emf_lines"] == 1


def test_lines_unwritten_at_the_deadline_are_kept_for_the_next_flush():
    buf = io.StringIO()
    sink = emf.EmfSink(settings(), buf)
    sink.accept(many_invocations(250))
    sink.flush(time.monotonic() - 1)  # already late: one chunk goes out, the rest waits
    first = buf.getvalue().splitlines()
    assert len(first) >= 1
    sink.flush(FAR)
    docs = [check_line(x) for x in buf.getvalue().splitlines()]
    assert sum(d.get("Invocations", 0) for d in docs) == 250


def test_documents_respect_the_100_metrics_limit_when_many_metrics(monkeypatch):
    extra = tuple(catalog.Metric(f"x{i}", f"Extra{i}", "Count", f"x.{i}", "1", catalog.COUNTER, catalog.INVOCATION,
                                 "request_id", "test", "test") for i in range(120))
    monkeypatch.setattr(catalog, "METRICS", catalog.METRICS + extra)
    docs, _ = emit(many_invocations(1))
    assert len(docs) == 2
    assert sum(len(d["_aws"]["CloudWatchMetrics"][0]["Metrics"]) for d in docs) > 100


def test_serialize_is_compact_and_rejects_nan():
    assert emf.serialize({"a": [1, 2]}) == '{"a":[1,2]}'
    with pytest.raises(ValueError):
        emf.serialize({"a": float("nan")})


def test_every_optional_dimension_has_a_valid_value():
    st = settings(SIDECAR_EMF_DIMENSIONS="FunctionVersion,Service,MemorySize,Architecture,Region,InitType")
    dims = emf.dimensions(st)
    assert list(dims) == ["FunctionName", "FunctionVersion", "Service", "MemorySize", "Architecture", "Region",
                          "InitType"]
    assert dims["Region"] == "unknown" and dims["InitType"] == "on-demand" and dims["Architecture"] in ("x86_64",
                                                                                                         "arm64")
    docs, _ = emit(many_invocations(1), st)
    assert docs[0]["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [list(dims)]
