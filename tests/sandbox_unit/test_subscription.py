"""Subscription validation and window rules of lambda-apis.md 5.1."""

from __future__ import annotations

import json

import pytest
from lambda_sandbox.telemetry import TelemetryHub, parse_subscription

URI = "http://sandbox.localdomain:8080/lambda_telemetry"


def body(**over) -> bytes:
    doc = {"schemaVersion": "2022-12-13", "types": ["platform", "function", "extension"],
           "buffering": {"maxItems": 1000, "maxBytes": 262144, "timeoutMs": 100},
           "destination": {"protocol": "HTTP", "URI": URI}}
    for k, v in over.items():
        if v is None:
            doc.pop(k, None)
        else:
            doc[k] = v
    return json.dumps(doc).encode()


@pytest.fixture
def hub():
    h = TelemetryHub()
    yield h
    h.stop()


def test_documented_example_is_accepted_with_quoted_ok(hub):
    status, resp = hub.subscribe("ext", body())
    assert status == 200
    assert json.dumps(resp) == '"OK"'  # the 4 bytes "OK" with quotes on the wire
    sub = hub.subscribers["ext"]
    assert (sub.max_items, sub.max_bytes, sub.timeout_ms) == (1000, 262144, 100)
    assert (sub.host, sub.port, sub.path) == ("sandbox.localdomain", 8080, "/lambda_telemetry")


def test_defaults_when_buffering_is_omitted():
    sub = parse_subscription("ext", body(buffering=None))
    assert (sub.max_items, sub.max_bytes, sub.timeout_ms) == (10000, 262144, 1000)


@pytest.mark.parametrize("version", ["2022-07-01", "2022-12-13", "2025-01-29"])
def test_every_documented_schema_version_is_accepted(version):
    assert parse_subscription("ext", body(schemaVersion=version)).schema_version == version


def test_extra_fields_are_tolerated():
    dest = {"protocol": "HTTP", "URI": URI, "method": "POST", "encoding": "JSON"}
    assert parse_subscription("ext", body(destination=dest, extra=1)).port == 8080


@pytest.mark.parametrize("key,value", [
    ("maxItems", 1000), ("maxItems", 10000), ("maxBytes", 262144), ("maxBytes", 1048576),
    ("timeoutMs", 25), ("timeoutMs", 30000),
])
def test_buffering_limits_inclusive(key, value):
    sub = parse_subscription("ext", body(buffering={key: value}))
    assert {"maxItems": sub.max_items, "maxBytes": sub.max_bytes, "timeoutMs": sub.timeout_ms}[key] == value


INVALID = [
    ("schema version", dict(schemaVersion="2021-03-18"), "schemaVersion"),
    ("no schema version", dict(schemaVersion=None), "schemaVersion is required"),
    ("empty types", dict(types=[]), "types should not be empty"),
    ("unknown type", dict(types=["platform", "logs"]), "types contains unknown values ['logs']"),
    ("types not a list", dict(types="platform"), "types should be an array"),
    ("no destination", dict(destination=None), "destination is required"),
    ("no port", dict(destination={"protocol": "HTTP", "URI": "http://sandbox.localdomain/x"}),
     "URI port is not provided"),
    ("https", dict(destination={"protocol": "HTTP", "URI": "https://sandbox.localdomain:1/"}), "scheme"),
    ("foreign host", dict(destination={"protocol": "HTTP", "URI": "http://example.com:80/"}), "host 'example.com'"),
    ("bad protocol", dict(destination={"protocol": "UDP", "URI": URI}), "protocol 'UDP'"),
    ("no URI", dict(destination={"protocol": "HTTP"}), "URI is required"),
    ("maxItems low", dict(buffering={"maxItems": 999}), "maxItems 999"),
    ("maxItems high", dict(buffering={"maxItems": 10001}), "maxItems 10001"),
    ("maxBytes low", dict(buffering={"maxBytes": 262143}), "maxBytes 262143"),
    ("maxBytes high", dict(buffering={"maxBytes": 1048577}), "maxBytes 1048577"),
    ("timeoutMs low", dict(buffering={"timeoutMs": 24}), "timeoutMs 24"),
    ("timeoutMs high", dict(buffering={"timeoutMs": 30001}), "timeoutMs 30001"),
    ("timeoutMs not int", dict(buffering={"timeoutMs": "100"}), "timeoutMs '100'"),
    ("TCP without port", dict(destination={"protocol": "TCP"}), "port is required"),
    ("TCP bad port", dict(destination={"protocol": "TCP", "port": 70000}), "port 70000"),
]


@pytest.mark.parametrize("case,over,fragment", INVALID, ids=[c[0] for c in INVALID])
def test_invalid_requests_get_400_validation_error(hub, case, over, fragment):
    status, resp = hub.subscribe("ext", body(**over))
    assert status == 400
    assert resp["errorType"] == "ValidationError"
    assert fragment in resp["errorMessage"]
    assert list(resp) == ["errorMessage", "errorType"]
    assert "ext" not in hub.subscribers


def test_several_problems_are_reported_together(hub):
    status, resp = hub.subscribe("ext", body(types=[], destination={"protocol": "HTTP",
                                                                   "URI": "http://sandbox.localdomain/x"}))
    assert status == 400
    assert resp["errorMessage"] == "types should not be empty; URI port is not provided"


@pytest.mark.parametrize("raw", [b"", b"not json", b"[1]", b"\xff\xfe"])
def test_malformed_body_is_a_validation_error(hub, raw):
    status, resp = hub.subscribe("ext", raw)
    assert status == 400 and resp["errorType"] == "ValidationError"


def test_tcp_destination_by_port_or_uri():
    assert parse_subscription("e", body(destination={"protocol": "TCP", "port": 4243})).port == 4243
    sub = parse_subscription("e", body(destination={"protocol": "TCP", "URI": "tcp://sandbox:4244"}))
    assert (sub.protocol, sub.port) == ("TCP", 4244)


def test_sandbox_short_name_and_local_hosts_accepted_strict_mode_rejects_localhost():
    for host in ("sandbox", "sandbox.localdomain", "localhost", "127.0.0.1"):
        dest = {"protocol": "HTTP", "URI": f"http://{host}:9000/"}
        assert parse_subscription("e", body(destination=dest)).host == host
    strict = TelemetryHub(strict_hosts=True)
    status, resp = strict.subscribe("e", body(destination={"protocol": "HTTP", "URI": "http://localhost:9/"}))
    assert status == 400 and "use sandbox.localdomain" in resp["errorMessage"]
    strict.stop()


def test_window_closes_after_init_with_403(hub):
    assert hub.subscribe("early", body())[0] == 200
    hub.close_window()
    status, resp = hub.subscribe("late", body())
    assert status == 403
    assert resp == {"errorMessage": "Telemetry API subscription is closed",
                    "errorType": "Telemetry.SubscriptionClosed"}
    # closed beats validation: even a bad body gets 403 after init
    assert hub.subscribe("late", b"garbage")[0] == 403
    assert set(hub.subscribers) == {"early"}


def test_reset_drops_subscriptions_and_reopens_the_window(hub):
    hub.subscribe("ext", body())
    hub.close_window()
    hub.reset()
    assert hub.subscribers == {}
    assert hub.subscribe("ext", body())[0] == 200


def test_subscription_emits_platform_telemetry_subscription(hub):
    hub.subscribe("ext", body(types=["platform", "function"]))
    evs = [e.event for e in hub.events if e.type == "platform.telemetrySubscription"]
    assert len(evs) == 1
    assert evs[0]["record"] == {"name": "ext", "state": "Subscribed", "types": ["platform", "function"]}


def test_repeat_subscription_is_idempotent(hub):
    assert hub.subscribe("ext", body(types=["platform"]))[0] == 200
    assert hub.subscribe("ext", body(types=["platform", "function"]))[0] == 200
    assert list(hub.subscribers) == ["ext"]
    assert hub.subscribers["ext"].types == ("platform", "function")  # latest settings win
    assert sum(e.type == "platform.telemetrySubscription" for e in hub.events) == 1
