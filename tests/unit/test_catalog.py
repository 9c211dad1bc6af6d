"""The metric catalog: valid units, the FaaS semantic-convention names, fields that exist on the signals."""

from __future__ import annotations

import dataclasses

from otel_sidecar import catalog
from otel_sidecar import signals as sg

SIGNAL_CLASSES = {catalog.INVOCATION: sg.InvocationSignal, catalog.INIT: sg.InitSignal,
                  catalog.SHUTDOWN: sg.ShutdownSignal}


def test_every_emf_unit_is_a_cloudwatch_unit_and_names_are_unique():
    assert all(m.emf_unit in catalog.CLOUDWATCH_UNITS for m in catalog.METRICS)
    assert len({m.emf_name for m in catalog.METRICS}) == len(catalog.METRICS)
    assert len({m.key for m in catalog.METRICS}) == len(catalog.METRICS)
    assert all(1 <= len(m.emf_name) <= 255 and m.emf_name.isascii() for m in catalog.METRICS)


def test_otlp_names_include_the_faas_semantic_conventions_with_their_units():
    by_name = {m.otlp_name: m for m in catalog.otlp_instruments()}
    expected = {"faas.invocations": ("{invocation}", "counter"), "faas.invoke_duration": ("s", "histogram"),
                "faas.init_duration": ("s", "histogram"), "faas.coldstarts": ("{coldstart}", "counter"),
                "faas.errors": ("{error}", "counter"), "faas.timeouts": ("{timeout}", "counter"),
                "faas.mem_usage": ("By", "histogram")}
    for name, (unit, kind) in expected.items():
        assert (by_name[name].otlp_unit, by_name[name].kind) == (unit, kind)
    for extra in ("aws.lambda.billed_duration", "aws.lambda.post_runtime_duration", "aws.lambda.response_latency",
                  "aws.lambda.downstream_throttles", "aws.lambda.out_of_memory", "aws.lambda.estimated_cost",
                  "otel_sidecar.dropped", "otel_sidecar.export_failures"):
        assert extra in by_name


def test_otlp_scale_converts_ms_to_seconds_and_mb_to_bytes():
    assert catalog.BY_KEY["invoke_duration"].otlp_scale == 0.001
    assert catalog.BY_KEY["max_memory_used"].otlp_scale == 1024 * 1024


def test_every_field_exists_on_its_signal():
    for m in catalog.METRICS:
        if m.signal == catalog.HEALTH:
            continue
        cls = SIGNAL_CLASSES[m.signal]
        names = {f.name for f in dataclasses.fields(cls)} | {n for n in dir(cls) if not n.startswith("_")}
        assert m.field in names, (m.key, m.field)
        assert m.otlp_source_field in names, (m.key, m.otlp_source_field)
        if m.when:
            assert m.when in names


def test_health_keys():
    assert set(catalog.HEALTH_KEYS) == {"records_received", "malformed", "unknown_types", "unknown_fields",
                                        "logs_dropped_records", "dropped", "export_failures",
                                        "time_to_first_next_ms", "local_otlp_received", "local_otlp_forwarded",
                                        "tenant_overflow"}


def test_faas_invocations_counts_successful_invocations_as_semconv_defines():
    from tests.unit import sequences as s
    m = catalog.BY_KEY["invocations"]
    out = s.run(sg.SignalEngine(), s.seq_c_crash()) + s.run(sg.SignalEngine(), s.seq_a_cold_then_warm(s.T0 + 99))
    invs = [o for o in out if isinstance(o, sg.InvocationSignal)]
    assert sum(bool(getattr(o, m.otlp_source_field)) for o in invs) == 3
    assert sum(bool(getattr(o, m.field)) for o in invs) == 4
