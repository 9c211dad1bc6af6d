"""TelemetryHub delivery: batching, replay, type filtering, schema adaptation, logsDropped, freeze."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lambda_sandbox import records as R
from lambda_sandbox import telemetry
from lambda_sandbox.telemetry import TelemetryHub, http_post

from tests.helpers import wait_for
from tests.sandbox_unit._support import Listener


@pytest.fixture
def hubs():
    made = []

    def make(**kw) -> TelemetryHub:
        h = TelemetryHub(**kw)
        made.append(h)
        return h

    yield make
    for h in made:
        h.stop()


def init_start(hub: TelemetryHub):
    return hub.emit("platform.initStart", R.init_start(
        initialization_type="on-demand", phase="init", runtime_version="python:3.11.v1", runtime_version_arn=None,
        function_name="f", function_version="$LATEST", instance_id="i", instance_max_memory_mb=128))


def test_batch_is_a_json_array_posted_to_the_uri_path(hubs, listener):
    hub = hubs()
    assert hub.subscribe("ext", listener.body(path="/lambda_telemetry", timeoutMs=25))[0] == 200
    ev = hub.emit("platform.start", R.start(request_id="r1", version="$LATEST"))
    wait_for(lambda: listener.events("platform.start"))
    assert listener.events("platform.start") == [ev.event]
    # the hub records the delivery once the listener's 200 is back, a moment after the listener has the body
    delivered_at = wait_for(lambda: ev.deliveries.get("ext"), what="the delivery recorded")
    assert delivered_at <= time.time()


def test_init_events_are_replayed_to_a_new_subscriber_in_generation_order(hubs, listener):
    hub = hubs()
    first = init_start(hub)
    hub.emit_log("extension", "starting\n")
    hub.subscribe("ext", listener.body(timeoutMs=25))
    wait_for(lambda: len(listener.events()) >= 3)
    types = [e["type"] for e in listener.events()]
    assert types == ["platform.initStart", "extension", "platform.telemetrySubscription"]
    assert listener.events()[0] == first.event


def test_replay_respects_types_and_ends_with_the_window(hubs, make_listener):
    hub = hubs()
    plat, logs = make_listener(), make_listener()
    init_start(hub)
    hub.emit_log("function", "static init line")
    hub.subscribe("plat", plat.body(types=["platform"], timeoutMs=25))
    hub.subscribe("logs", logs.body(types=["function"], timeoutMs=25))
    assert hub.flush(5)
    assert [e["type"] for e in plat.events()] == ["platform.initStart", "platform.telemetrySubscription",
                                                  "platform.telemetrySubscription"]
    assert [e["record"] for e in logs.events()] == ["static init line\n"]
    hub.close_window()
    hub.reset()  # a later init: replay restarts from scratch
    late = make_listener()
    hub.subscribe("late", late.body(types=["platform", "function"], timeoutMs=25))
    assert hub.flush(5)
    assert [e["type"] for e in late.events()] == ["platform.telemetrySubscription"]


def test_each_subscriber_gets_only_its_categories(hubs, make_listener):
    hub = hubs()
    a, b = make_listener(), make_listener()
    hub.subscribe("a", a.body(types=["platform"], timeoutMs=25))
    hub.subscribe("b", b.body(types=["function", "extension"], timeoutMs=25))
    hub.close_window()
    hub.emit("platform.start", R.start(request_id="r", version="$LATEST"))
    hub.emit_log("function", "f line")
    hub.emit_log("extension", "e line", extension_name="b")
    assert hub.flush(5)
    assert {e["type"] for e in a.events()} == {"platform.telemetrySubscription", "platform.start"}
    assert [(e["type"], e["record"]) for e in b.events()] == [("function", "f line\n"), ("extension", "e line\n")]


def test_max_items_splits_batches(hubs, listener):
    hub = hubs()
    hub.subscribe("ext", listener.body(types=["function"], maxItems=1000, timeoutMs=30000))
    hub.close_window()
    for i in range(2500):
        hub.emit_log("function", f"line {i}")
    wait_for(lambda: len(listener.batches) == 2)
    assert [len(b) for b in listener.batches] == [1000, 1000]
    assert hub.stats()["ext"]["queued"] == 500  # waits for timeoutMs (30 s) or a flush
    assert hub.flush(5)
    assert [len(b) for b in listener.batches] == [1000, 1000, 500]
    assert [e["record"] for e in listener.events()] == [f"line {i}\n" for i in range(2500)]


def test_max_bytes_bounds_each_batch(hubs, listener):
    hub = hubs()
    hub.subscribe("ext", listener.body(types=["function"], maxBytes=262144, timeoutMs=30000))
    hub.close_window()
    line = "x" * 1000
    for _ in range(800):  # ~830 KB in total
        hub.emit_log("function", line)
    assert hub.flush(10)
    item = len(json.dumps(listener.events()[0], separators=(",", ":")))
    assert sum(len(b) for b in listener.batches) == 800
    assert len(listener.batches) >= 4
    for size, batch in zip(listener.raw_sizes[:-1], listener.batches[:-1]):
        assert 262144 - item <= size - len(batch) - 1 <= 262144  # payload bytes, without brackets/commas
    assert max(listener.raw_sizes) <= 2 * 262144  # receivers must accept up to 2*maxBytes


def test_timeout_ms_holds_a_partial_batch_at_least_that_long(hubs, listener):
    hub = hubs()
    hub.subscribe("ext", listener.body(types=["platform"], timeoutMs=300))
    wait_for(lambda: listener.events())  # the telemetrySubscription batch
    hub.close_window()
    t0 = time.time()
    ev = hub.emit("platform.start", R.start(request_id="r", version="$LATEST"))
    wait_for(lambda: "ext" in ev.deliveries)
    assert ev.deliveries["ext"] - t0 >= 0.3


def test_schema_versions_see_json_log_records_differently(hubs, make_listener):
    hub = hubs(log_format="JSON")
    old, new = make_listener(), make_listener()
    hub.subscribe("old", old.body(types=["function"], schema="2022-07-01", timeoutMs=25))
    hub.subscribe("new", new.body(types=["function"], schema="2022-12-13", timeoutMs=25))
    hub.close_window()
    line = '{"timestamp":"2026-01-01T00:00:00Z","level":"INFO","requestId":"r1","message":"hi"}'
    hub.emit_log("function", line, request_id="r1")
    hub.emit_log("function", "plain print", request_id="r1", time=R_T)
    assert hub.flush(5)
    assert [e["record"] for e in old.events()] == [line + "\n", "plain print\n"]
    assert [e["record"] for e in new.events()] == [
        json.loads(line),
        {"timestamp": R.iso(R_T), "level": "INFO", "requestId": "r1", "message": "plain print"}]


R_T = 1_780_000_000.25


def test_text_format_records_are_strings_for_every_schema(hubs, listener):
    hub = hubs(log_format="Text")
    hub.subscribe("ext", listener.body(types=["function", "extension"], schema="2022-12-13", timeoutMs=25))
    hub.close_window()
    hub.emit_log("function", '{"level":"INFO","message":"json-looking"}')
    hub.emit_log("extension", "ext says hi\n")
    assert hub.flush(5)
    assert [e["record"] for e in listener.events()] == ['{"level":"INFO","message":"json-looking"}\n',
                                                       "ext says hi\n"]


def test_application_log_level_filters_json_records(hubs, listener):
    hub = hubs(log_format="JSON", application_log_level="WARN")
    hub.subscribe("ext", listener.body(types=["function"], timeoutMs=25))
    hub.close_window()
    assert hub.emit_log("function", '{"level":"INFO","message":"chatty"}') is None
    assert hub.emit_log("function", '{"level":"ERROR","message":"bad"}') is not None
    assert hub.emit_log("function", "no level", level="DEBUG") is None
    assert hub.flush(5)
    assert [e["record"]["message"] for e in listener.events()] == ["bad"]


def test_slow_listener_overflow_is_reported_by_logs_dropped(hubs, listener):
    hub = hubs(buffer_factor=1)
    listener.delay_s = 0.3
    hub.subscribe("ext", listener.body(types=["platform", "function"], maxItems=1000, timeoutMs=25))
    hub.close_window()
    total = 6000
    for i in range(total):
        hub.emit_log("function", f"line {i}")
    assert hub.flush(15)
    delivered = len(listener.events("function"))
    dropped = listener.events("platform.logsDropped")
    assert dropped, "a slow listener must be told that records were dropped"
    assert delivered + sum(d["record"]["droppedRecords"] for d in dropped) == total
    assert all(d["record"]["reason"] == R.LOGS_DROPPED_REASON for d in dropped)
    assert all(d["record"]["droppedBytes"] > 0 for d in dropped)
    # logsDropped is part of the generated stream, marked as delivered to that subscriber only
    gen = [e for e in hub.events if e.type == "platform.logsDropped"]
    assert [e.only_for for e in gen] == ["ext"] * len(gen) and all("ext" in e.deliveries for e in gen)


def test_failing_listener_is_retried_then_batches_are_dropped_and_counted(hubs, listener):
    hub = hubs(max_attempts=2, retry_base_s=0.02)
    listener.status = 500
    hub.subscribe("ext", listener.body(types=["platform", "function"], timeoutMs=25))
    hub.close_window()
    for i in range(10):
        hub.emit_log("function", f"lost {i}")
    wait_for(lambda: hub.stats()["ext"]["failures"] >= 2 and hub.stats()["ext"]["queued"] == 0)
    listener.status = 200
    hub.emit_log("function", "after recovery")
    assert hub.flush(5)
    dropped = sum(d["record"]["droppedRecords"] for d in listener.events("platform.logsDropped"))
    delivered = [e for e in listener.events() if e["type"] != "platform.logsDropped"]
    assert {"type": "function", "record": "after recovery\n"}.items() <= delivered[-1].items()
    assert dropped >= 10  # the ten lines sent while the listener answered 500
    assert len(delivered) + dropped == 12  # telemetrySubscription + 11 lines: each delivered or counted
    assert hub.stats()["ext"]["failures"] >= 2


def test_refused_connection_is_retried_until_the_listener_is_up(hubs, listener):
    hub = hubs(max_attempts=50, retry_base_s=0.01)
    body = listener.body(types=["platform"], timeoutMs=25)
    port = listener.port
    listener.close()  # nothing listens on that port now
    hub.subscribe("ext", body)
    wait_for(lambda: hub.stats()["ext"]["failures"] >= 2)
    revived = Listener(port=port)
    try:
        wait_for(lambda: revived.events("platform.telemetrySubscription"))
    finally:
        revived.close()


def test_freeze_holds_delivery_until_thaw(hubs, listener):
    hub = hubs()
    hub.subscribe("ext", listener.body(types=["platform"], timeoutMs=25))
    wait_for(lambda: listener.events())
    hub.close_window()
    hub.freeze()
    report = hub.emit("platform.report", R.report(request_id="r1", status="success", duration_ms=1.0,
                                                  billed_duration_ms=1, memory_size_mb=128, max_memory_used_mb=40))
    with pytest.raises(AssertionError, match="not met within"):     # nothing is delivered while frozen
        wait_for(lambda: listener.events("platform.report"), timeout=0.3)
    assert "ext" not in report.deliveries
    t_thaw = time.time()
    hub.thaw()
    wait_for(lambda: listener.events("platform.report"))
    assert report.deliveries["ext"] >= t_thaw


def test_freeze_waits_for_an_in_flight_post(hubs, listener):
    hub = hubs()
    listener.delay_s = 0.1
    hub.subscribe("ext", listener.body(types=["platform"], timeoutMs=25))
    wait_for(lambda: listener.started >= 1)
    hub.freeze()
    ev = [e for e in hub.events if e.type == "platform.telemetrySubscription"][0]
    assert "ext" in ev.deliveries  # the POST finished before freeze() returned
    hub.thaw()


def test_flush_returns_false_when_frozen_with_pending_events(hubs, listener):
    hub = hubs()
    hub.subscribe("ext", listener.body(types=["platform"], timeoutMs=25))
    assert hub.flush(5)
    hub.freeze()
    hub.emit("platform.start", R.start(request_id="r", version="$LATEST"))
    assert hub.flush(0.2) is False
    hub.thaw()
    assert hub.flush(5) is True


class _SlowServer:
    def __init__(self, delay: float):
        class H(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                self.rfile.read(int(self.headers["Content-Length"]))
                time.sleep(delay)
                self.send_response(204)
                self.end_headers()

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        self.port = self.server.server_address[1]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_http_post_does_not_count_frozen_time_as_timeout():
    srv = _SlowServer(0.35)
    try:
        assert http_post("127.0.0.1", srv.port, "/", b"[]", host_header="sandbox", timeout_s=0.2,
                         paused=lambda: True) == 204
        with pytest.raises(OSError):
            http_post("127.0.0.1", srv.port, "/", b"[]", host_header="sandbox", timeout_s=0.2)
    finally:
        srv.close()


def test_generated_events_keep_generation_order_and_deliveries(hubs, make_listener):
    hub = hubs()
    a, b = make_listener(), make_listener()
    hub.subscribe("a", a.body(types=["platform"], timeoutMs=25))
    hub.subscribe("b", b.body(types=["function"], timeoutMs=25))
    hub.close_window()
    s = hub.emit("platform.start", R.start(request_id="r", version="$LATEST"))
    f = hub.emit_log("function", "hello", request_id="r")
    assert hub.flush(5)
    evs = hub.events
    assert evs.index(s) < evs.index(f)
    assert set(s.deliveries) == {"a"} and set(f.deliveries) == {"b"}


def test_tcp_destination_gets_newline_delimited_json(hubs):
    import socket

    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    srv.settimeout(5)
    port = srv.getsockname()[1]
    hub = hubs()
    body = json.dumps({"schemaVersion": "2025-01-29", "types": ["platform"],
                       "destination": {"protocol": "TCP", "port": port}}).encode()
    assert hub.subscribe("ext", body)[0] == 200
    hub.close_window()
    hub.emit("platform.start", R.start(request_id="r", version="$LATEST"))
    conn, _ = srv.accept()
    conn.settimeout(5)
    data = b""
    try:
        while data.count(b"\n") < 2:
            chunk = conn.recv(65536)
            if not chunk:
                break
            data += chunk
    finally:
        conn.close()
        srv.close()
    lines = [json.loads(x) for x in data.splitlines()]
    assert [e["type"] for e in lines] == ["platform.telemetrySubscription", "platform.start"]


@settings(max_examples=25, deadline=None)
@given(sizes=st.lists(st.integers(min_value=0, max_value=120_000), min_size=1, max_size=60),
       max_items=st.integers(min_value=1000, max_value=1005), max_bytes=st.sampled_from([262144, 300000]))
def test_batching_invariants(sizes, max_items, max_bytes):
    """Whatever the record sizes: each record delivered once, in order; batches within the limits."""
    posted: list = []

    def fake_post(addr, port, path, body, **kw):
        posted.append(json.loads(body))
        return 200

    hub = TelemetryHub(buffer_factor=100)  # room for everything: this test is about batching, not drops
    with mock.patch.object(telemetry, "http_post", fake_post):
        try:
            body = json.dumps({"schemaVersion": "2022-12-13", "types": ["function"],
                               "buffering": {"maxItems": max_items, "maxBytes": max_bytes, "timeoutMs": 30000},
                               "destination": {"protocol": "HTTP", "URI": "http://sandbox:9/"}}).encode()
            assert hub.subscribe("ext", body)[0] == 200
            hub.close_window()
            for i, n in enumerate(sizes):
                hub.emit_log("function", f"{i}:" + "x" * n)
            assert hub.flush(10)
        finally:
            hub.stop()
    records = [e["record"] for b in posted for e in b]
    assert [r.split(":", 1)[0] for r in records] == [str(i) for i in range(len(sizes))]
    for b in posted:
        assert 1 <= len(b) <= max_items
        payload = sum(len(json.dumps(e, separators=(",", ":"))) for e in b)
        assert len(b) == 1 or payload <= max_bytes

