"""Telemetry API conformance (lambda-apis.md 5.1, 5.2, 5.5.13, 5.6, 5.7), observed by the `recorder`
test extension running inside the sandbox."""

from __future__ import annotations

import datetime as dt
import time

import pytest

from tests.fixtures.extensions import (
    batches,
    delivered_events,
    extension_layer,
    parse_lines,
    per_extension_env,
)
from tests.helpers import wait_for

pytestmark = pytest.mark.sandbox


def ts(iso: str) -> float:
    return dt.datetime.strptime(iso, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.timezone.utc).timestamp()


def recorded(sb, name="recorder"):
    return parse_lines(sb.extension_lines(name))


def one(items, kind):
    found = [i for i in items if i["recorder"] == kind]
    assert len(found) == 1, f"expected one {kind!r} line, got {found}"
    return found[0]


def generated(sb, type_):
    return [e for e in sb.events if e.event["type"] == type_]


def idle(seconds: float) -> None:
    """An idle interval between invokes (the environment is frozen meanwhile); not a wait for a condition."""
    time.sleep(seconds)


def test_cold_start_warm_invoke_and_spindown_as_seen_by_a_subscriber(make_sandbox, tmp_path):
    sb = make_sandbox(layers=[extension_layer(tmp_path)], env={"TEST_EXT_WAIT_RUNTIME_DONE": "1"})
    r1 = sb.invoke({"n": 1})
    idle(0.3)  # > timeoutMs (25 ms): an unfrozen environment would deliver report(r1) now
    t_invoke2 = time.time()
    r2 = sb.invoke({"n": 2})
    t_shutdown = time.time()
    result = sb.shutdown()
    assert (r1.outcome, r2.outcome, result.extensions) == ("success", "success", {"recorder": "Exited"})

    items = recorded(sb)
    assert one(items, "subscribe")["status"] == 200 and one(items, "subscribe")["body"] == "OK"
    # init replay: the first batch starts with initStart, generated before the subscription existed
    first = batches(items)[0]["events"]
    assert [e["type"] for e in first[:2]] == ["platform.initStart", "platform.telemetrySubscription"]
    assert first[1]["record"] == {"name": "recorder", "state": "Subscribed",
                                  "types": ["platform", "function", "extension"]}

    # every platform event reaches the subscriber exactly once, in generation order (5.2)
    want = [e.event for e in sb.events if e.event["type"].startswith("platform.")]
    got = [e for e in delivered_events(items) if e["type"].startswith("platform.")]
    assert got == want
    assert [e["type"] for e in got] == [
        "platform.initStart", "platform.telemetrySubscription", "platform.initRuntimeDone", "platform.extension",
        "platform.initReport", "platform.start", "platform.runtimeDone", "platform.report",
        "platform.start", "platform.runtimeDone", "platform.report"]

    # runtimeDone(rN) arrives while the extension still handles rN (it held /next until it saw it)
    waits = [i for i in items if i["recorder"] == "runtime_done_wait"]
    assert [(w["request_id"], w["seen"]) for w in waits] == [(r1.request_id, True), (r2.request_id, True)]

    # report(rN) is generated right before the freeze and delivered only in invoke N+1 or at shutdown
    rep1, rep2 = generated(sb, "platform.report")
    assert rep1.event["record"]["requestId"] == r1.request_id
    assert rep1.deliveries["recorder"] >= t_invoke2
    assert rep2.deliveries["recorder"] >= t_shutdown
    assert one(items, "exit")["reports"] == sorted([r1.request_id, r2.request_id])


def test_subscription_window_is_init_only(make_sandbox, tmp_path):
    layer = extension_layer(tmp_path, {"recorder": "recorder", "late": "recorder"})
    env = per_extension_env("late", subscribe_late="1", types="platform")
    sb = make_sandbox(layers=[layer], env=env)
    assert sb.invoke({}).outcome == "success"
    sb.shutdown()
    late = one(recorded(sb, "late"), "subscribe")
    assert late["late"] is True
    assert late["status"] == 403
    assert late["body"] == {"errorMessage": "Telemetry API subscription is closed",
                            "errorType": "Telemetry.SubscriptionClosed"}
    assert [e.event["record"]["name"] for e in generated(sb, "platform.telemetrySubscription")] == ["recorder"]
    assert batches(recorded(sb, "late")) == []


def test_invalid_subscription_gets_400_from_the_api(make_sandbox, tmp_path):
    sb = make_sandbox(layers=[extension_layer(tmp_path)], env={"TEST_EXT_BUFFERING": '{"maxItems": 5}'})
    assert sb.invoke({}).outcome == "success"
    sb.shutdown()
    sub = one(recorded(sb), "subscribe")
    assert sub["status"] == 400
    assert sub["body"]["errorType"] == "ValidationError"
    assert "maxItems 5" in sub["body"]["errorMessage"]
    assert generated(sb, "platform.telemetrySubscription") == []


def test_types_filter_and_every_subscriber_gets_the_init_replay(make_sandbox, tmp_path):
    layer = extension_layer(tmp_path, {"plat": "recorder", "funcs": "recorder"})
    env = {**per_extension_env("plat", types="platform"), **per_extension_env("funcs", types="function")}
    sb = make_sandbox(handler="logging_lines.handler", layers=[layer], env=env)
    assert sb.invoke({"lines": 2}).outcome == "success"
    sb.shutdown()
    plat = delivered_events(recorded(sb, "plat"))
    funcs = delivered_events(recorded(sb, "funcs"))
    assert plat and {e["type"].split(".")[0] for e in plat} == {"platform"}
    assert plat[0]["type"] == "platform.initStart"
    # both subscriptions are announced to the platform subscriber (replayed or live)
    subs = [e["record"]["name"] for e in plat if e["type"] == "platform.telemetrySubscription"]
    assert sorted(subs) == ["funcs", "plat"]
    assert funcs and {e["type"] for e in funcs} == {"function"}
    texts = [e["record"] for e in funcs]
    # static-init output was generated before "funcs" subscribed and comes by replay
    assert texts[0] == "init line from print\n"
    # stdout lines and framed records travel on different pipes: ordered within each, not across
    assert [t for t in texts if t.startswith("print line")] == ["print line 0\n", "print line 1\n"]
    # a framed logging record stays one record even with an embedded newline
    multi = [t for t in texts if "logging line one" in t]
    assert len(multi) == 1 and "\nwith a second line" in multi[0] and multi[0].startswith("[INFO]\t")


def test_max_items_batches_observed_by_the_listener(make_sandbox, tmp_path):
    # a long timeoutMs so that only maxItems cuts batches; the remainder goes out in the shutdown flush
    env = {"TEST_EXT_TYPES": "function", "TEST_EXT_BUFFERING": '{"maxItems": 1000, "timeoutMs": 30000}'}
    sb = make_sandbox(handler="logging_lines.handler", layers=[extension_layer(tmp_path)], env=env)
    assert sb.invoke({"lines": 2500}).outcome == "success"
    # the log pump may still be reading the runtime's pipe after the invoke; let it catch up
    wait_for(lambda: len(generated(sb, "function")) >= 2500, timeout=10)
    sb.shutdown()
    got = batches(recorded(sb))
    sizes = [b["n"] for b in got]
    assert sizes[:2] == [1000, 1000] and max(sizes) == 1000
    delivered = sum(b["logs"].get("function", 0) + sum(e["type"] == "function" for e in b["events"]) for b in got)
    assert delivered == len(generated(sb, "function"))  # nothing lost, nothing duplicated
    assert max(b["bytes"] for b in got) <= 2 * 262144


def test_slow_listener_gets_logs_dropped(make_sandbox, tmp_path):
    env = {"TEST_EXT_TYPES": "platform,function", "TEST_EXT_SLOW_MS": "200",
           "TEST_EXT_BUFFERING": '{"maxItems": 1000, "timeoutMs": 25}', "TEST_EXT_LOG_DETAIL": "none"}
    sb = make_sandbox(handler="logging_lines.handler", layers=[extension_layer(tmp_path)], env=env, timeout_s=10)
    assert sb.invoke({"lines": 20000}).outcome == "success"
    sb.shutdown()
    got = batches(recorded(sb))
    dropped = [e["record"] for b in got for e in b["events"] if e["type"] == "platform.logsDropped"]
    assert dropped, "the slow listener was never told about dropped records"
    assert all(d["reason"].startswith("Some logs were dropped") and d["droppedBytes"] > 0 for d in dropped)
    received = sum(b["logs"].get("function", 0) for b in got)
    assert received + sum(d["droppedRecords"] for d in dropped) == len(generated(sb, "function"))
    # the platform events themselves are not dropped
    types = [e["type"] for b in got for e in b["events"]]
    assert "platform.runtimeDone" in types and "platform.report" in types
    # drops are reported in stream order: before the report that follows them
    assert max(i for i, t in enumerate(types) if t == "platform.logsDropped") < types.index("platform.report")


@pytest.mark.parametrize("log_format", ["Text", "JSON"])
def test_function_log_records_by_format_and_schema_version(make_sandbox, tmp_path, log_format):
    layer = extension_layer(tmp_path, {"new": "recorder", "old": "recorder"})
    env = {"TEST_EXT_TYPES": "function", **per_extension_env("old", schema="2022-07-01"),
           **per_extension_env("new", schema="2022-12-13")}
    sb = make_sandbox(layers=[layer], env=env, log_format=log_format)
    r = sb.invoke({})
    sb.shutdown()
    new = [e["record"] for e in delivered_events(recorded(sb, "new"))]
    old = [e["record"] for e in delivered_events(recorded(sb, "old"))]
    assert old and all(isinstance(rec, str) for rec in old)  # 2022-07-01: always strings
    assert "hello from the handler\n" in old
    if log_format == "Text":
        assert new == old
        line = [rec for rec in new if "handling" in rec][0]
        assert line.startswith("[INFO]\t") and f"\t{r.request_id}\thandling {r.request_id}" in line
    else:
        assert all(isinstance(rec, dict) for rec in new)
        logged = [rec for rec in new if rec.get("message") == f"handling {r.request_id}"]
        assert len(logged) == 1
        assert logged[0]["level"] == "INFO" and logged[0]["requestId"] == r.request_id
        printed = [rec for rec in new if rec.get("message") == "hello from the handler"]
        assert len(printed) == 1 and printed[0]["requestId"] == r.request_id
        assert ts(printed[0]["timestamp"]) > 0
