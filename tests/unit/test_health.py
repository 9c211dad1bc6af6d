"""The fold of every component's counters into the health keys, and the `dropped` breakdown (health.py)."""

from __future__ import annotations

from otel_sidecar.health import drop_reasons, health_counters, is_drop_key


def test_drop_keys_exclude_lambdas_own_logs_dropped_counts():
    assert is_drop_key("otlp_dropped_spans_buffer_full") and is_drop_key("emf_lines_dropped")
    assert not is_drop_key("engine_logs_dropped_records") and not is_drop_key("logs_dropped_bytes")


def test_records_come_from_the_engine_where_they_are_counted():
    h = health_counters({"engine_records_received": 7, "engine_malformed": 2, "engine_logs_dropped_records": 5,
                         "worker_batches": 3})
    assert (h["records_received"], h["malformed"], h["logs_dropped_records"]) == (7.0, 2.0, 5.0)


def test_drop_reasons_split_the_total_into_the_otlp_sinks_reasons_and_other():
    detail = {"otlp_dropped_spans_buffer_full": 4, "otlp_dropped_logs_refused": 1, "otlp_exported_spans": 9,
              "listener_dropped_records": 3, "dropped_emf_signals": 2}
    total = health_counters(detail)["dropped"]
    assert total == 10.0
    assert drop_reasons(detail, total) == {"dropped_spans_buffer_full": 4.0, "dropped_logs_refused": 1.0,
                                           "other": 5.0}
    assert drop_reasons({}, 0.0) == {}
