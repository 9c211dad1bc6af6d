"""The legacy Logs API (PUT /2020-08-15/logs; platform-2025.md 7, lambda-apis.md 6): subscription rules,
its own record set, delivery to the extension's listener, and mutual exclusion with the Telemetry API.
The end-to-end tests use the `logs_recorder` test extension."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lambda_sandbox import logs_api, records
from lambda_sandbox.telemetry import TelemetryHub

from tests.fixtures.extensions import extension_layer, parse_lines

RID = "6f7f0961-f834-4211-8a7a-f6fe80b88d56"


def env(type_, record, t="2026-01-01T00:00:00.000Z"):
    return {"time": t, "type": type_, "record": record}


# ---- the record mapping (pure) ------------------------------------------------------------------

def test_platform_records_take_the_logs_api_shapes():
    start = records.start(request_id=RID, version="$LATEST", tracing="Root=1-5f-abc;Sampled=1")
    assert logs_api.view(env("platform.start", start), "2020-08-15") == [env("platform.start", {"requestId": RID})]
    report = records.report(request_id=RID, status="success", duration_ms=1.234, billed_duration_ms=2,
                            memory_size_mb=128, max_memory_used_mb=40, init_duration_ms=80.5,
                            spans=[("extensionOverhead", 0.0, 1.0)])
    assert logs_api.view(env("platform.report", report), "2020-08-15") == [
        env("platform.end", {"requestId": RID}),
        env("platform.report", {"requestId": RID, "metrics": {"durationMs": 1.234, "billedDurationMs": 2,
                                                              "memorySizeMB": 128, "maxMemoryUsedMB": 40,
                                                              "initDurationMs": 80.5}})]


def test_runtime_done_only_with_schema_2021_03_18():
    done = records.runtime_done(request_id=RID, status="timeout", duration_ms=3000.0)
    assert logs_api.view(env("platform.runtimeDone", done), "2020-08-15") == []
    assert logs_api.view(env("platform.runtimeDone", done), "2021-03-18") == [
        env("platform.runtimeDone", {"requestId": RID, "status": "timeout"})]


def test_a_crash_gives_a_fault_string_before_end_and_report():
    report = records.report(request_id=RID, status="error", error_type="Runtime.ExitError", duration_ms=5.0,
                            billed_duration_ms=5, memory_size_mb=128, max_memory_used_mb=40)
    got = logs_api.view(env("platform.report", report), "2021-03-18")
    assert [e["type"] for e in got] == ["platform.fault", "platform.end", "platform.report"]
    assert got[0]["record"] == f"RequestId: {RID} Process exited before completing request"


@pytest.mark.parametrize("type_", ["platform.initStart", "platform.initRuntimeDone", "platform.initReport",
                                   "platform.telemetrySubscription", "platform.restoreStart",
                                   "platform.restoreRuntimeDone", "platform.restoreReport"])
def test_telemetry_only_events_are_not_in_the_logs_api(type_):
    assert logs_api.view(env(type_, {"x": 1}), "2021-03-18") == []


def test_log_records_are_strings_even_in_json_log_format():
    obj = {"timestamp": "2026-01-01T00:00:00Z", "level": "INFO", "requestId": RID, "message": "hi"}
    got = logs_api.view(env("function", obj), "2021-03-18", legacy_record='{"message": "hi"}\n')
    assert got == [env("function", '{"message": "hi"}\n')]
    assert logs_api.view(env("extension", obj), "2021-03-18")[0]["record"] == json.dumps(obj, separators=(",", ":")) + "\n"


def test_logs_dropped_uses_the_logs_api_reason():
    got = logs_api.view(env("platform.logsDropped", records.logs_dropped(dropped_records=3, dropped_bytes=30)),
                        "2020-08-15")
    assert got[0]["record"] == {"droppedBytes": 30, "droppedRecords": 3, "reason": logs_api.LOGS_DROPPED_REASON}


# ---- subscription rules (hub, no sockets) -----------------------------------------------------------

def logs_body(**over):
    doc = {"schemaVersion": "2021-03-18", "types": ["platform", "function"],
           "buffering": {"maxItems": 1000, "maxBytes": 262144, "timeoutMs": 100},
           "destination": {"protocol": "HTTP", "URI": "http://sandbox.localdomain:8080/lambda_logs",
                           "method": "POST", "encoding": "JSON"}}
    doc.update(over)
    return json.dumps(doc).encode()


def tele_body():
    return json.dumps({"schemaVersion": "2022-12-13", "types": ["platform"],
                       "destination": {"protocol": "HTTP", "URI": "http://sandbox.localdomain:8081/t"}}).encode()


@pytest.fixture
def hub():
    h = TelemetryHub(resolve_host=lambda host: "127.0.0.1")
    yield h
    h.stop()


def test_subscribe_answers_ok_and_announces_a_logs_subscription(hub):
    assert hub.subscribe_logs("ext", logs_body()) == (200, "OK")
    sub = hub.subscribers["ext"]
    assert (sub.api, sub.schema_version, sub.method, sub.types) == ("logs", "2021-03-18", "POST",
                                                                    ("platform", "function"))
    notices = [e.event["record"] for e in hub.events if e.type == "platform.logsSubscription"]
    assert notices == [{"name": "ext", "state": "Subscribed", "types": ["platform", "function"]}]
    assert not any(e.type == "platform.telemetrySubscription" for e in hub.events)


def test_schema_version_defaults_to_2020_08_15(hub):
    doc = json.loads(logs_body())
    del doc["schemaVersion"]
    assert hub.subscribe_logs("ext", json.dumps(doc).encode())[0] == 200
    assert hub.subscribers["ext"].schema_version == "2020-08-15"


@pytest.mark.parametrize("over, words", [
    ({"schemaVersion": "2022-12-13"}, "schemaVersion '2022-12-13' is not supported"),
    ({"destination": {"protocol": "HTTP", "URI": "http://sandbox.localdomain:8080/", "method": "GET"}},
     "method 'GET'"),
    ({"destination": {"protocol": "HTTP", "URI": "http://sandbox.localdomain:8080/", "encoding": "XML"}},
     "encoding 'XML'"),
    ({"buffering": {"timeoutMs": 10}}, "timeoutMs 10"),
    ({"types": []}, "types should not be empty"),
])
def test_invalid_requests_get_400_logs_validation_error(hub, over, words):
    status, body = hub.subscribe_logs("ext", logs_body(**over))
    assert status == 400 and body["errorType"] == "Logs.ValidationError" and words in body["errorMessage"]


def test_the_window_closes_with_init(hub):
    hub.close_window()
    assert hub.subscribe_logs("ext", logs_body()) == (403, {"errorMessage": "Logs API subscription is closed",
                                                             "errorType": "Logs.SubscriptionClosed"})


def test_a_repeat_is_idempotent(hub):
    assert hub.subscribe_logs("ext", logs_body())[0] == 200
    assert hub.subscribe_logs("ext", logs_body(types=["platform"]))[0] == 200
    assert list(hub.subscribers) == ["ext"] and hub.subscribers["ext"].types == ("platform",)
    assert sum(e.type == "platform.logsSubscription" for e in hub.events) == 1


def test_logs_and_telemetry_subscriptions_are_mutually_exclusive(hub):
    assert hub.subscribe_logs("a", logs_body())[0] == 200
    status, body = hub.subscribe("a", tele_body())
    assert status == 400 and body["errorType"] == "ValidationError" and "Logs API" in body["errorMessage"]
    assert hub.subscribe("b", tele_body())[0] == 200
    status, body = hub.subscribe_logs("b", logs_body())
    assert status == 400 and body["errorType"] == "Logs.ValidationError" and "Telemetry API" in body["errorMessage"]
    assert {n: s.api for n, s in hub.subscribers.items()} == {"a": "logs", "b": "telemetry"}


def test_coexistence_when_exclusivity_is_off():
    hub = TelemetryHub(resolve_host=lambda host: "127.0.0.1", exclusive_apis=False)
    try:
        assert hub.subscribe_logs("a", logs_body())[0] == 200
        assert hub.subscribe("a", tele_body())[0] == 200
        assert sorted(s.api for s in hub.subscribers.values()) == ["logs", "telemetry"]
    finally:
        hub.stop()


# ---- end to end -----------------------------------------------------------------------------------

def items(sb, name="logs_recorder"):
    return parse_lines(sb.extension_lines(name))


def delivered(sb, name="logs_recorder"):
    return [ev for i in items(sb, name) if i["recorder"] == "batch" for ev in i["events"]]


@pytest.mark.sandbox
def test_a_logs_api_subscriber_gets_the_logs_api_record_set(make_sandbox, tmp_path):
    sb = make_sandbox(layers=[extension_layer(tmp_path, ["logs_recorder"])], env={"TEST_EXT_METHOD": "PUT"},
                      log_format="JSON")
    r1, r2 = sb.invoke({"n": 1}), sb.invoke({"n": 2})
    assert sb.shutdown().extensions == {"logs_recorder": "Exited"}
    assert (r1.outcome, r2.outcome) == ("success", "success")
    subs = [i for i in items(sb) if i["recorder"] == "subscribe"]
    assert [(s["api"], s["status"], s["body"]) for s in subs] == [("logs", 200, "OK")]
    assert {i["method"] for i in items(sb) if i["recorder"] == "batch"} == {"PUT"}
    got = delivered(sb)
    platform = [e for e in got if e["type"].startswith("platform.")]
    assert [e["type"] for e in platform] == [
        "platform.logsSubscription", "platform.extension",
        "platform.start", "platform.runtimeDone", "platform.end", "platform.report",
        "platform.start", "platform.runtimeDone", "platform.end", "platform.report"]
    by_type = {}
    for e in platform:
        by_type.setdefault(e["type"], []).append(e["record"])
    assert by_type["platform.start"] == [{"requestId": r1.request_id}, {"requestId": r2.request_id}]
    assert by_type["platform.end"] == [{"requestId": r1.request_id}, {"requestId": r2.request_id}]
    assert by_type["platform.runtimeDone"] == [{"requestId": r1.request_id, "status": "success"},
                                               {"requestId": r2.request_id, "status": "success"}]
    first, second = by_type["platform.report"]
    assert set(first) == {"requestId", "metrics"} and first["requestId"] == r1.request_id
    assert first["metrics"]["billedDurationMs"] == r1.billed_duration_ms
    assert "initDurationMs" in first["metrics"] and "initDurationMs" not in second["metrics"]
    assert by_type["platform.extension"] == [{"name": "logs_recorder", "state": "Ready",
                                              "events": ["INVOKE", "SHUTDOWN"]}]
    functions = [e["record"] for e in got if e["type"] == "function"]
    assert functions and all(isinstance(rec, str) for rec in functions)
    assert "hello from the handler\n" in functions
    assert any(f"handling {r1.request_id}" in rec for rec in functions)
    # the Telemetry API's own events never reach a Logs API subscriber
    assert not {e["type"] for e in got} & set(logs_api.TELEMETRY_ONLY)


@pytest.mark.sandbox
@pytest.mark.parametrize("order, second_error", [("logs,telemetry", "ValidationError"),
                                                 ("telemetry,logs", "Logs.ValidationError")])
def test_the_second_api_is_refused_in_a_real_environment(make_sandbox, tmp_path, order, second_error):
    sb = make_sandbox(layers=[extension_layer(tmp_path, ["logs_recorder"])], env={"TEST_EXT_ORDER": order})
    assert sb.invoke({}).outcome == "success"
    sb.shutdown()
    subs = [i for i in items(sb) if i["recorder"] == "subscribe"]
    assert [(s["api"], s["status"]) for s in subs] == [(order.split(",")[0], 200), (order.split(",")[1], 400)]
    assert subs[1]["body"]["errorType"] == second_error


@pytest.mark.sandbox
def test_stub_mode_answers_as_the_rie_does(make_sandbox, tmp_path):
    sb = make_sandbox(layers=[extension_layer(tmp_path, ["logs_recorder"])], logs_api="stub")
    sb.invoke({})
    sb.shutdown()
    sub = next(i for i in items(sb) if i["recorder"] == "subscribe")
    assert (sub["status"], sub["body"]) == (202, {"errorMessage": "Logs API is not supported",
                                                  "errorType": "Logs.NotSupported"})


# ---- outside input -------------------------------------------------------------------------------------

_json = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                     lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=10), kids, max_size=4),
                     max_leaves=12)
_fields = st.fixed_dictionaries({}, optional={
    "schemaVersion": st.sampled_from(["2020-08-15", "2021-03-18", "2022-12-13", ""]) | _json,
    "types": st.lists(st.sampled_from(["platform", "function", "extension", "x"]), max_size=4) | _json,
    "buffering": st.fixed_dictionaries({}, optional={"maxItems": st.integers(), "maxBytes": st.integers(),
                                                     "timeoutMs": st.integers()}) | _json,
    "destination": st.fixed_dictionaries({"protocol": st.sampled_from(["HTTP", "TCP", "UDP"])}, optional={
        "URI": st.sampled_from(["http://sandbox.localdomain:9/x", "http://evil:9/", "ftp://sandbox:1/"]) | _json,
        "method": st.sampled_from(["POST", "PUT", "GET"]) | _json, "port": st.integers() | _json,
        "encoding": st.sampled_from(["JSON", "XML"]) | _json}) | _json,
})


@settings(max_examples=200, deadline=None)
@given(doc=_fields | _json, raw=st.binary(max_size=64))
def test_any_body_gets_200_or_a_400_that_names_the_problem(doc, raw):
    hub = TelemetryHub(resolve_host=lambda host: "127.0.0.1")
    try:
        for body in (json.dumps(doc).encode(), raw):
            status, out = hub.subscribe_logs("ext", body)
            if status == 200:
                assert out == "OK" and hub.subscribers["ext"].api == "logs"
            else:
                assert status == 400 and out["errorType"] == "Logs.ValidationError" and out["errorMessage"]
    finally:
        hub.stop()
