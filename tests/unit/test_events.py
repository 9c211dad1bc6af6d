"""parse_batch on every example record of lambda-apis.md 5.5, bad input, and arbitrary bytes."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from otel_sidecar import events as ev

from tests.unit.sequences import EXAMPLES, body


def one(name: str):
    parsed = ev.parse_batch(body([EXAMPLES[name]]))
    assert parsed.malformed == 0 and parsed.unknown_types == 0 and parsed.unknown_fields == 0
    assert parsed.invalid_fields == 0
    assert len(parsed.events) == 1
    return parsed.events[0]


def test_time_parsing_is_epoch_seconds_with_milliseconds():
    assert ev.parse_time("2024-07-01T08:54:54.127Z") == pytest.approx(1719824094.127)
    assert ev.parse_time("2024-07-01T10:54:54.127+02:00") == pytest.approx(1719824094.127)
    assert ev.parse_time("2024-07-01T08:54:54Z") == 1719824094.0
    assert ev.parse_time("2024-07-01T08:54:54.123456789Z") == pytest.approx(1719824094.123456789)
    for bad in ("", "yesterday", "2024-13-01T00:00:00Z", "12:01:23:521Z", None, 5):
        assert ev.parse_time(bad) is None


def test_init_start_full_2025_record():
    e = one("initStart")
    assert isinstance(e, ev.InitStart)
    assert (e.initialization_type, e.phase, e.runtime_version) == ("on-demand", "init", "python:3.12.v29")
    assert e.function_name == "my-function" and e.function_version == "$LATEST"
    assert e.instance_id == "2025/01/07/[$LATEST]002cf7829acf404ea7f6995e1910b96b"
    assert e.instance_max_memory == 134217728
    assert e.time == pytest.approx(ev.parse_time("2025-01-07T19:49:07.089Z"))


def test_init_start_2022_preview_has_only_the_type():
    e = ev.parse_batch(body([{"time": "2022-09-01T00:00:00.000Z", "type": "platform.initStart",
                              "record": {"initializationType": "on-demand"}}])).events[0]
    assert isinstance(e, ev.InitStart) and e.phase == "init" and e.function_name is None


def test_init_runtime_done_and_report():
    ok, err = one("initRuntimeDone"), one("initRuntimeDone_error")
    assert isinstance(ok, ev.InitRuntimeDone) and ok.status == "success" and ok.error_type is None
    assert err.status == "error" and err.error_type == "Extension.Crash"
    rep, to = one("initReport"), one("initReport_timeout")
    assert isinstance(rep, ev.InitReport) and rep.duration_ms == 234.766 and rep.status == "success"
    assert to.status == "timeout" and to.duration_ms == 10000.12


def test_restore_events():
    s = one("restoreStart")
    assert isinstance(s, ev.RestoreStart) and s.function_version == "3" and s.instance_max_memory == 536870912
    assert one("restoreRuntimeDone").status == "success"
    bad = one("restoreRuntimeDone_error")
    assert isinstance(bad, ev.RestoreRuntimeDone) and bad.error_type == "Runtime.ExitError"
    r = one("restoreReport")
    assert isinstance(r, ev.RestoreReport) and r.duration_ms == 15.19
    empty = ev.parse_batch(body([{"time": "2022-10-12T00:00:15.064Z", "type": "platform.restoreStart",
                                  "record": {}}]))
    assert isinstance(empty.events[0], ev.RestoreStart) and empty.malformed == 0


def test_restore_start_instance_max_memory_as_string():
    e = ev.parse_batch(body([{"time": "2022-10-12T00:00:15.064Z", "type": "platform.restoreStart",
                              "record": {"instanceMaxMemory": "536870912"}}])).events[0]
    assert e.instance_max_memory == 536870912


def test_start_with_and_without_tracing():
    s = one("start_traced")
    assert isinstance(s, ev.Start) and s.request_id == "459921b5-681c-4a96-beb0-81e0aa586026"
    assert s.tracing == ev.TraceContext(value="Root=1-6352a70e-1e2c502e358361800241fd45;Parent=35465b3a9e2f7c6a;"
                                              "Sampled=1", span_id="24cd7d670fa455f0")
    plain = one("start")
    assert plain.tracing is None and plain.version == "$LATEST"


def test_runtime_done_spans_and_metrics():
    r = one("runtimeDone")
    assert isinstance(r, ev.RuntimeDone)
    assert (r.status, r.duration_ms, r.produced_bytes) == ("success", 17.12, 50)
    assert [s.name for s in r.spans] == ["responseLatency", "responseDuration", "runtimeOverhead"]
    lat = r.span("responseLatency")
    assert lat.duration_ms == 1.613 and lat.start == pytest.approx(ev.parse_time("2024-07-01T08:54:54.108Z"))
    assert lat.end == pytest.approx(lat.start + 0.001613)
    assert one("runtimeDone_handled_error").produced_bytes == 0
    assert one("runtimeDone_timeout").status == "timeout"
    crash = one("runtimeDone_crash")
    assert crash.status == "error" and crash.error_type == "Runtime.ExitError"


def test_report_variants():
    r = one("report")
    assert isinstance(r, ev.Report)
    assert (r.duration_ms, r.billed_duration_ms, r.memory_size_mb, r.max_memory_used_mb, r.init_duration_ms) == \
        (17.493, 18, 128, 75, 235.086)
    t = one("report_traced")
    assert t.span("extensionOverhead").duration_ms == 0.38 and t.tracing.span_id == "24cd7d670fa455f0"
    assert one("report_timeout").status == "timeout"
    c = one("report_crash")
    assert c.status == "error" and c.error_type == "Runtime.ExitError" and c.billed_duration_ms == 214


def test_extension_subscription_logs_dropped():
    e = one("extension")
    assert isinstance(e, ev.ExtensionState) and e.events == ("INVOKE", "SHUTDOWN") and e.state == "Ready"
    assert one("extension_error").error_type == "Extension.ConfigInvalid"
    s = one("telemetrySubscription")
    assert isinstance(s, ev.TelemetrySubscription) and s.types == ("platform",)
    d = one("logsDropped")
    assert isinstance(d, ev.LogsDropped) and (d.dropped_records, d.dropped_bytes) == (123, 12345)


def test_function_log_text_node_format():
    f = one("function_text")
    assert isinstance(f, ev.FunctionLog)
    assert f.text == "2022-10-12T00:03:50.000Z\t79b4f56e-95b1-4643-9700-2807f4e68189\tINFO\tHello world"
    assert (f.level, f.request_id, f.message) == ("INFO", "79b4f56e-95b1-4643-9700-2807f4e68189", "Hello world")


def test_function_log_json_format():
    f = one("function_json")
    assert isinstance(f, ev.FunctionLog) and f.fields["message"] == "Hello world, I am a function!"
    assert (f.level, f.request_id, f.message) == ("INFO", "79b4f56e-95b1-4643-9700-2807f4e68189",
                                                  "Hello world, I am a function!")
    assert json.loads(f.text) == EXAMPLES["function_json"]["record"]


def test_extension_logs_text_and_json():
    t = one("extension_text")
    assert isinstance(t, ev.ExtensionLog) and t.text == "Starting the Telemetry API Extension" and t.level is None
    j = one("extension_json")
    assert isinstance(j, ev.ExtensionLog) and j.level == "INFO" and j.message == "Hello world, I am an extension!"


@pytest.mark.parametrize("line,level,rid,message", [
    ("[INFO]\t2026-01-01T00:00:00.123Z\t11111111-1111-4111-8111-111111111111\thello", "INFO",
     "11111111-1111-4111-8111-111111111111", "hello"),
    ("[WARNING]\t2026-01-01T00:00:00.123Z\t11111111-1111-4111-8111-111111111111\tcareful", "WARN",
     "11111111-1111-4111-8111-111111111111", "careful"),
    ("[ERROR] MemoryError\nTraceback (most recent call last):", "ERROR", None,
     "MemoryError\nTraceback (most recent call last):"),
    ("[CRITICAL]\t2026-01-01T00:00:00.123Z\tnot-a-request-id\tboom", "FATAL", None, "not-a-request-id\tboom"),
    ("2026-01-01T00:00:00.123Z\t11111111-1111-4111-8111-111111111111\tERROR\tInvoke Error", "ERROR",
     "11111111-1111-4111-8111-111111111111", "Invoke Error"),
    ("2026-01-01T00:00:00.123Z\tundefined\tWARN\tno request", "WARN", None, "no request"),
    ("plain print output", None, None, "plain print output"),
    ('{"level":"DEBUG","message":"structured","function_request_id":"abc"}', "DEBUG", "abc", "structured"),
    ('{"levelname":"error","msg":"py-json"}', "ERROR", None, "py-json"),
    ("{not json}", None, None, "{not json}"),
])
def test_log_line_level_and_request_id(line, level, rid, message):
    got_level, got_rid, got_msg, _ = ev.parse_log_line(line)
    assert (got_level, got_rid, got_msg) == (level, rid, message)


def test_text_record_that_is_a_json_line_keeps_its_fields():
    item = {"time": "2026-01-01T00:00:00.000Z", "type": "function",
            "record": '{"level":"INFO","message":"m","requestId":"r-1","cold_start":true}\n'}
    f = ev.parse_batch(body([item])).events[0]
    assert f.fields == {"level": "INFO", "message": "m", "requestId": "r-1", "cold_start": True}
    assert f.request_id == "r-1" and f.text.endswith("}")


def test_unknown_types_and_fields_are_counted_and_the_rest_kept():
    items = [
        {"time": "2026-01-01T00:00:00.000Z", "type": "platform.somethingNew", "record": {"a": 1}},
        {"time": "2026-01-01T00:00:00.000Z", "type": "platform.start", "extra": 1,
         "record": {"requestId": "r", "version": "1", "newField": True, "tracing": {"value": "Root=x", "z": 1}}},
        {"time": "2026-01-01T00:00:00.000Z", "type": "platform.report",
         "record": {"requestId": "r", "status": "success", "metrics": {"durationMs": 1.0, "cpuMs": 2}}},
    ]
    p = ev.parse_batch(body(items))
    assert p.unknown_types == 1 and p.unknown_fields == 4 and p.malformed == 0
    assert [type(e).__name__ for e in p.events] == ["UnknownEvent", "Start", "Report"]
    assert p.events[0].type == "platform.somethingNew" and p.events[1].tracing.value == "Root=x"


def test_malformed_items_are_counted_and_never_sink_the_batch():
    items = [
        "a string",
        {"type": "platform.start", "record": {"requestId": "r"}},                   # no time
        {"time": "nope", "type": "platform.start", "record": {"requestId": "r"}},   # bad time
        {"time": "2026-01-01T00:00:00.000Z", "record": {}},                          # no type
        {"time": "2026-01-01T00:00:00.000Z", "type": "platform.start", "record": {}},  # no requestId
        {"time": "2026-01-01T00:00:00.000Z", "type": "platform.report", "record": ["x"]},  # record not an object
        {"time": "2026-01-01T00:00:00.000Z", "type": "function", "record": 42},
        {"time": "2026-01-01T00:00:00.000Z", "type": "platform.runtimeDone",
         "record": {"requestId": "ok", "status": 7, "metrics": {"durationMs": "fast", "producedBytes": True},
                    "spans": [{"name": "responseLatency", "start": "bad", "durationMs": 1}, 3],
                    "tracing": "Root=1"}},
    ]
    p = ev.parse_batch(body(items))
    assert p.malformed == 7 and len(p.events) == 1
    rd = p.events[0]
    assert rd.request_id == "ok" and rd.status == "success" and rd.duration_ms is None
    assert rd.produced_bytes is None and rd.spans == () and rd.tracing is None
    assert p.invalid_fields == 6


@pytest.mark.parametrize("raw", [b"", b"not json", b"{}", b'{"time": 1}', b"null", b"\xff\xfe", b"[" * 100000])
def test_bodies_that_are_not_arrays_count_one_malformed(raw):
    p = ev.parse_batch(raw)
    assert p.events == [] and p.malformed == 1


def test_empty_array_is_fine():
    assert ev.parse_batch(b"[]") == ev.ParsedBatch()


def test_invoke_and_shutdown_bodies():
    inv = ev.parse_invoke({"eventType": "INVOKE", "deadlineMs": 1654468766618, "requestId": "r",
                           "invokedFunctionArn": "arn:x", "tracing": {"type": "X-Amzn-Trace-Id", "value": "Root=1"}})
    assert inv == ev.Invoke(request_id="r", deadline_ms=1654468766618, invoked_arn="arn:x", tracing_value="Root=1")
    assert ev.parse_invoke({"eventType": "INVOKE"}) is None
    assert ev.parse_invoke({"requestId": "r"}).tracing_value is None
    assert ev.parse_shutdown({"shutdownReason": "TIMEOUT", "deadlineMs": 5}) == ev.Shutdown("timeout", 5)
    assert ev.parse_shutdown({}).reason == "spindown"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=12), children, max_size=5),
    max_leaves=10,
)
type_names = st.sampled_from(["platform.initStart", "platform.initRuntimeDone", "platform.initReport",
                              "platform.restoreStart", "platform.restoreRuntimeDone", "platform.restoreReport",
                              "platform.start", "platform.runtimeDone", "platform.report", "platform.extension",
                              "platform.telemetrySubscription", "platform.logsDropped", "function", "extension",
                              "platform.future"])
envelopes = st.fixed_dictionaries({
    "time": st.one_of(st.just("2026-01-01T00:00:00.000Z"), st.text(max_size=30), st.integers()),
    "type": st.one_of(type_names, st.integers()),
    "record": st.one_of(json_values, st.dictionaries(
        st.sampled_from(["requestId", "status", "metrics", "spans", "tracing", "errorType", "name", "state",
                         "initializationType", "phase", "droppedRecords", "events", "types"]),
        json_values, max_size=6)),
})


@settings(max_examples=80, deadline=None)
@given(st.lists(st.one_of(envelopes, json_values), max_size=6))
def test_parse_batch_never_raises_on_arbitrary_json(items):
    p = ev.parse_batch(json.dumps(items).encode())
    assert p.malformed + len(p.events) == len(items)
    assert p.unknown_types == sum(1 for e in p.events if isinstance(e, ev.UnknownEvent))
    # each item's unknown and invalid fields are its own: the batch's counts are the sum of its items' counts
    alone = [ev.parse_batch(json.dumps([item]).encode()) for item in items]
    assert p.unknown_fields == sum(q.unknown_fields for q in alone)
    assert p.invalid_fields == sum(q.invalid_fields for q in alone)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_parse_batch_never_raises_on_arbitrary_bytes(raw):
    p = ev.parse_batch(raw)
    try:
        items = json.loads(raw)
    except (ValueError, RecursionError):
        items = None
    if isinstance(items, list):       # every item is either an event or counted as malformed
        assert p.malformed + len(p.events) == len(items)
    else:                             # not a JSON array: the whole body is one malformed item
        assert (p.malformed, p.events) == (1, [])


def test_skimming_keeps_stream_order_and_parses_every_other_record():
    start, report = EXAMPLES["start"], EXAMPLES["report"]
    line = lambda text: {"time": start["time"], "type": "function", "record": text}  # noqa: E731
    body = json.dumps([start, line("a\n"), line("b\n"), report, EXAMPLES["function_json"], line("c\n"), 7]).encode()
    parts = ev.parse_batch_skimming_logs(body)
    assert [type(p).__name__ for p in parts] == ["ParsedBatch", "tuple", "ParsedBatch", "tuple", "ParsedBatch"]
    assert parts[1] == ("a\n", "b\n") and parts[3] == ("c\n",)
    assert isinstance(parts[2].events[0], ev.Report) and isinstance(parts[2].events[1], ev.FunctionLog)  # JSON log: parsed
    assert parts[4].malformed == 1
    assert ev.parse_batch_skimming_logs(b"not json")[0].malformed == 1
    assert ev.parse_batch_skimming_logs(b'{"a": 1}')[0].malformed == 1


# ---- the exception a runtime printed (exception_of) -----------------------------------------------------------
def _flog(record):
    return ev.parse_batch(body([{"time": "2026-01-01T00:00:00.000Z", "type": "function", "record": record}])).events[0]


@pytest.mark.parametrize("record, expected", [
    ('[ERROR] ValueError: bad order\rTraceback (most recent call last):\r  File "/var/task/app.py", line 3, in h\r'
     '    raise ValueError("bad order")\n',
     ("ValueError", "bad order", 'Traceback (most recent call last):\n  File "/var/task/app.py", line 3, in h\n'
                                 '    raise ValueError("bad order")')),
    ("[ERROR] Runtime.HandlerNotFound: Handler 'nothere' missing on module 'app'\n",
     ("Runtime.HandlerNotFound", "Handler 'nothere' missing on module 'app'", None)),
    ("[ERROR] MemoryError\nTraceback (most recent call last):\n  File x\n", ("MemoryError", "", "Traceback (most recent call last):\n  File x")),
    ({"timestamp": "2026-01-01T00:00:00Z", "log_level": "ERROR", "errorType": "KeyError", "errorMessage": "'id'",
      "requestId": "11111111-1111-4111-8111-111111111111", "stackTrace": ["  File a\n", "    x['id']\n"]},
     ("KeyError", "'id'", "  File a\n    x['id']")),
    ('2026-01-01T00:00:00.000Z\t11111111-1111-4111-8111-111111111111\tERROR\tInvoke Error \t{"errorType":"TypeError",'
     '"errorMessage":"x is not a function","stack":["TypeError: x is not a function","    at h (/var/task/i.js:2:3)"]}\n',
     ("TypeError", "x is not a function", "TypeError: x is not a function\n    at h (/var/task/i.js:2:3)")),
])
def test_exception_of_the_runtimes_formats(record, expected):
    exc = ev.exception_of(_flog(record))
    assert (exc.type, exc.message, exc.stacktrace) == expected


@pytest.mark.parametrize("record", [
    "[ERROR] boom\n",                                           # a printed line, not an exception
    "[ERROR]\t2026-01-01T00:00:00.000Z\t11111111-1111-4111-8111-111111111111\tfailed to call\n",  # logging.error
    "ValueError: not from the runtime\n", {"level": "ERROR", "message": "no type"},
])
def test_exception_of_ignores_other_error_lines(record):
    assert ev.exception_of(_flog(record)) is None


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=300).map(lambda t: "[ERROR] " + t), st.text(max_size=300),
                 st.dictionaries(st.sampled_from(["errorType", "errorMessage", "stackTrace", "stack", "level"]),
                                 st.one_of(st.text(), st.integers(), st.lists(st.one_of(st.text(), st.none())),
                                           st.none()))))
def test_exception_of_never_raises_and_is_bounded(record):
    exc = ev.exception_of(ev.FunctionLog(time=0.0, text=record if isinstance(record, str) else "{}",
                                         level="ERROR", fields=None if isinstance(record, str) else record,
                                         message=record if isinstance(record, str) else ""))
    if exc is not None:
        assert exc.type and len(exc.type) <= ev.MAX_EXCEPTION_TYPE
        assert len(exc.message) <= ev.MAX_EXCEPTION_MESSAGE
        assert exc.stacktrace is None or len(exc.stacktrace) <= ev.MAX_EXCEPTION_STACK


def test_report_billed_duration_is_an_int_like_max_memory():
    (rep,) = ev.parse_batch(body([EXAMPLES["report"]])).events
    assert (rep.billed_duration_ms, rep.max_memory_used_mb) == (18, 75)
    assert type(rep.billed_duration_ms) is int and type(rep.max_memory_used_mb) is int


def test_quick_init_builds_the_same_frozen_records_as_the_dataclass():
    import dataclasses

    import pytest
    from otel_sidecar.events import ParsedBatch, Report, quick_init

    @dataclasses.dataclass(frozen=True)
    class Plain:
        a: int
        b: str = "x"
        c: list = dataclasses.field(default_factory=list)

    @quick_init
    @dataclasses.dataclass(frozen=True)
    class Quick:
        a: int
        b: str = "x"
        c: list = dataclasses.field(default_factory=list)

    assert Quick.__init__ is not Plain.__init__
    for args, kwargs in (((1,), {}), ((1, "y"), {}), ((), {"a": 2, "c": [3]})):
        q, p = Quick(*args, **kwargs), Plain(*args, **kwargs)
        assert (q.a, q.b, q.c) == (p.a, p.b, p.c)
    assert Quick(1).c is not Quick(1).c                       # a fresh default per record
    assert Quick(1, "y") == Quick(1, "y") and Quick(1) != Quick(2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        Quick(1).a = 5                                        # still frozen
    with pytest.raises(TypeError):
        Quick()                                               # a required field stays required
    r = Report(time=1.0, request_id="r", duration_ms=2.5)
    assert (r.status, r.spans, r.billed_duration_ms) == ("success", (), None)
    assert dataclasses.replace(r, status="error").status == "error" and hash(r) == hash(Report(1.0, "r", duration_ms=2.5))
    assert ParsedBatch().events == [] and ParsedBatch().events is not ParsedBatch().events
