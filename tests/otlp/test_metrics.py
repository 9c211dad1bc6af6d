"""metrics.py aggregates exactly as the opentelemetry-sdk would (the SDK is a test dependency only)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.sdk.metrics import Counter, Histogram, MeterProvider
from opentelemetry.sdk.metrics.export import AggregationTemporality, InMemoryMetricReader
from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View
from otel_sidecar.otlp import encode
from otel_sidecar.otlp import metrics as m

BOUNDS = (0.005, 0.01, 0.1, 1.0, 10.0)
values = st.floats(min_value=0, max_value=100, allow_nan=False, allow_infinity=False)
ops = st.lists(st.tuples(st.sampled_from(["h", "c"]), values, st.sampled_from([(), (("reason", "timeout"),)])),
               max_size=40)


def _sdk(temporality: str):
    t = AggregationTemporality.CUMULATIVE if temporality == "cumulative" else AggregationTemporality.DELTA
    reader = InMemoryMetricReader(preferred_temporality={Counter: t, Histogram: t})
    provider = MeterProvider(metric_readers=[reader], views=[
        View(instrument_type=Histogram, aggregation=ExplicitBucketHistogramAggregation(BOUNDS))])
    meter = provider.get_meter("t")
    return reader, meter.create_histogram("h", unit="s"), meter.create_counter("c")


def _sdk_points(reader) -> dict:
    out = {}
    data = reader.get_metrics_data()
    for rm in getattr(data, "resource_metrics", ()):
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                for p in metric.data.data_points:
                    key = (metric.name, tuple(sorted((p.attributes or {}).items())))
                    if metric.name == "h":
                        out[key] = (p.count, p.sum, tuple(p.bucket_counts), p.min, p.max)
                    else:
                        out[key] = p.value
    return out


def _our_points(metrics_list) -> dict:
    out = {}
    for metric in metrics_list:
        kind = metric.WhichOneof("data")
        for p in getattr(metric, kind).data_points:
            key = (metric.name, tuple(sorted((kv.key, kv.value.string_value) for kv in p.attributes)))
            if kind == "histogram":
                out[key] = (p.count, p.sum, tuple(p.bucket_counts), p.min, p.max)
            else:
                out[key] = getattr(p, p.WhichOneof("value"))
    return out


@settings(max_examples=60, deadline=None)
@given(windows=st.lists(ops, min_size=1, max_size=4), temporality=st.sampled_from(["delta", "cumulative"]))
def test_windows_of_counts_sums_and_buckets_equal_the_sdk(windows, temporality):
    reader, h, c = _sdk(temporality)
    agg = m.Aggregator(temporality, start_ns=1)
    agg.declare("h", m.HISTOGRAM, "s", bounds=BOUNDS)
    agg.declare("c", m.COUNTER, "1")
    for i, window in enumerate(windows):
        for kind, value, attrs in window:
            if kind == "h":
                h.record(value, dict(attrs) or None)
                agg.record("h", value, attrs)
            else:
                c.add(value, dict(attrs) or None)
                agg.add("c", value, attrs)
        ours, points = agg.collect(10 + i)
        theirs = _sdk_points(reader)
        assert points == len(_our_points(ours))
        assert _our_points(ours).keys() == theirs.keys()
        for key, expected in theirs.items():
            got = _our_points(ours)[key]
            if key[0] == "h":
                assert got[0] == expected[0] and got[2] == expected[2]
                assert got[1] == pytest.approx(expected[1]) and (got[3], got[4]) == (expected[3], expected[4])
            else:
                assert got == pytest.approx(expected)


def test_delta_windows_restart_and_carry_their_time_range():
    agg = m.Aggregator("delta", start_ns=100)
    agg.declare("c", m.COUNTER, "{invocation}", "calls")
    agg.add("c", 1.0)
    first, _ = agg.collect(200)
    assert agg.collect(300) == ([], 0)                    # nothing happened: nothing to send
    agg.add("c", 2.0)
    third, _ = agg.collect(400)
    (p1,), (p3,) = first[0].sum.data_points, third[0].sum.data_points
    assert (p1.start_time_unix_nano, p1.time_unix_nano, p1.as_double) == (100, 200, 1.0)
    assert (p3.start_time_unix_nano, p3.time_unix_nano, p3.as_double) == (300, 400, 2.0)
    assert first[0].sum.is_monotonic and first[0].sum.aggregation_temporality == 1     # DELTA


def test_gauges_report_the_last_value_and_delta_only_when_set():
    for temporality, expected in (("delta", [[5.0], []]), ("cumulative", [[5.0], [5.0]])):
        agg = m.Aggregator(temporality)
        agg.declare("g", m.GAUGE, "s")
        agg.set("g", 3.0)
        agg.set("g", 5.0)
        got = []
        for now in (1, 2):
            metrics_list, _ = agg.collect(now)
            got.append([p.as_double for x in metrics_list for p in x.gauge.data_points])
        assert got == expected, temporality


def test_attribute_sets_are_bounded_and_the_overflow_is_kept():
    agg = m.Aggregator("delta")
    agg.declare("c", m.COUNTER)
    for i in range(m.MAX_SERIES + 10):
        agg.add("c", 1.0, (("k", str(i)),))
    metrics_list, points = agg.collect(1)
    assert points == m.MAX_SERIES + 1 and agg.overflowed == 10
    total = sum(p.as_double for p in metrics_list[0].sum.data_points)
    assert total == m.MAX_SERIES + 10                     # folded, not lost


def test_windows_frame_into_one_valid_request():
    env = encode.Envelope("metrics", {"service.name": "orders"}, "otel_sidecar", "0.1.0")
    agg = m.Aggregator("delta")
    agg.declare("c", m.COUNTER)
    windows = []
    for now in (1, 2):
        agg.add("c", float(now))
        windows.append(env.block(x.SerializeToString() for x in agg.collect(now)[0]))
    req = ExportMetricsServiceRequest.FromString(env.join(windows))
    assert [rm.scope_metrics[0].metrics[0].sum.data_points[0].as_double for rm in req.resource_metrics] == [1.0, 2.0]
    assert req.resource_metrics[0].resource.attributes[0].value.string_value == "orders"
    assert req.resource_metrics[1].scope_metrics[0].scope.version == "0.1.0"
