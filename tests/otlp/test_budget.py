"""The byte budget over the OTLP buffers and the log record limits (budget.py, sink.py's buffers)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from otel_sidecar import budget
from otel_sidecar.budget import Budget

from tests.otlp._signals import invocation, log_line

MIB = 1024 * 1024


def test_default_budget_is_sized_to_the_function_and_capped():
    assert budget.budget_bytes({"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128"}) == (int(128 * 0.008 * MIB), None)
    assert budget.budget_bytes({"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "10240"})[0] == 6 * MIB
    assert budget.budget_bytes({"SIDECAR_MEMORY_BUDGET_MB": "3"}) == (3 * MIB, None)


def test_a_bad_budget_names_the_variable_the_value_and_the_fallback():
    limit, warning = budget.budget_bytes({"SIDECAR_MEMORY_BUDGET_MB": "500", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128"})
    assert limit == int(128 * 0.008 * MIB)
    assert "SIDECAR_MEMORY_BUDGET_MB='500'" in warning and "1.0 MB" in warning


def test_log_limits_follow_the_sdks_precedence():
    assert budget.log_limits({}) == (16384, None, [])
    assert budget.log_limits({"OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT": "10"})[1] == 10
    assert budget.log_limits({"OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT": "10",
                              "OTEL_LOGRECORD_ATTRIBUTE_VALUE_LENGTH_LIMIT": "4"})[1] == 4
    body, attr, warnings = budget.log_limits({"SIDECAR_LOG_BODY_MAX_BYTES": "x"})
    assert body == 16384 and "SIDECAR_LOG_BODY_MAX_BYTES='x'" in warnings[0]


@given(st.text(), st.integers(min_value=0, max_value=64))
def test_truncation_keeps_valid_utf8_within_the_cap(text, cap):
    out, cut = budget.truncate_utf8(text, cap)
    assert len(out.encode("utf-8", "replace")) <= cap or not cut
    assert cut == (len(text.encode("utf-8", "replace")) > cap)
    assert text.encode("utf-8", "replace").startswith(out.encode("utf-8", "replace"))


class _Pool:
    def __init__(self, sizes):
        self.sizes = list(sizes)
        self.dropped = 0

    @property
    def nbytes(self):
        return sum(self.sizes)

    def drop_oldest(self):
        if not self.sizes:
            return False
        self.sizes.pop(0)
        self.dropped += 1
        return True


def test_the_first_pool_is_sacrificed_before_the_next():
    b = Budget(100)
    logs, spans = _Pool([30, 30, 30]), _Pool([40])
    b.pools += [logs, spans]
    b.settle()
    assert (logs.sizes, spans.sizes) == ([30, 30], [40])
    logs.sizes, spans.sizes = [], [60, 60]
    b.settle()
    assert spans.sizes == [60]
    assert b.reserve(40) and not b.reserve(1)


def test_a_flood_of_big_log_lines_stays_in_the_budget_and_spans_survive(make_sink, receiver):
    receiver.set_fault("stall")
    sink = make_sink(SIDECAR_MEMORY_BUDGET_MB="1", OTEL_METRICS_EXPORTER="none", SIDECAR_OTLP_MAX_QUEUE="100000")
    sink.accept([invocation("r0")])
    for i in range(400):
        sink.accept([log_line("x" * 256 * 1024, request_id=f"r{i}")])
        assert sink.budget.used() <= MIB
    h = sink.health()
    assert h["otlp_logs_truncated"] == 400
    assert h["otlp_buffered_spans"] >= 1                      # the platform-derived span was kept
    assert h["otlp_dropped_logs_memory"] == 400 - h["otlp_buffered_logs"] > 300
    receiver.clear_fault()


def test_a_truncated_body_is_marked(make_sink, receiver):
    sink = make_sink(OTEL_METRICS_EXPORTER="none", SIDECAR_LOG_BODY_MAX_BYTES="1000",
                     OTEL_LOGRECORD_ATTRIBUTE_VALUE_LENGTH_LIMIT="3")
    sink.accept([log_line("é" * 2000, request_id="abcdef"), log_line("short", request_id="abcdef")])
    sink.flush(__import__("time").monotonic() + 2)
    long, short = receiver.logs()
    assert len(long["body"].encode()) == 1000 and long["attributes"]["otel_sidecar.truncated"] is True
    assert short["body"] == "short" and "otel_sidecar.truncated" not in short["attributes"]
    assert short["attributes"]["faas.invocation_id"] == "abc"


def test_bytes_on_the_wire_count_and_make_room():
    b = Budget(100)
    logs = _Pool([30, 30])
    b.pools.append(logs)
    b.hold(50)                      # a batch being sent: the oldest log record goes to make room for it
    assert logs.sizes == [30] and b.used() == 80
    b.release(50)
    assert b.used() == 30
