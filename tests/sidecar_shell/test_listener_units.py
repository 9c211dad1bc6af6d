"""Listener queue bounds, body handling and the small lifecycle helpers."""

from __future__ import annotations

import http.client
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from otel_sidecar.lifecycle import (
    epoch_to_monotonic,
    extension_name,
    resolve_listener_host,
    subscription_body,
)
from otel_sidecar.listener import BatchQueue, TelemetryListener


def test_queue_drops_oldest_and_counts():
    q = BatchQueue(max_batches=3)
    for i in range(5):
        q.put(b"batch%d" % i)
    assert q.get_all_nowait() == [b"batch2", b"batch3", b"batch4"]
    assert (q.dropped_batches, q.dropped_bytes) == (2, 12)
    assert q.health()["listener_queue_depth"] == 0


def test_queue_byte_bound_keeps_the_newest():
    q = BatchQueue(max_batches=100, max_bytes=10)
    q.put(b"x" * 6)
    q.put(b"y" * 6)
    assert q.get_all_nowait() == [b"y" * 6]
    assert q.dropped_bytes == 6


@pytest.fixture
def listener():
    lst = TelemetryListener(BatchQueue(max_batches=10), max_body=1000)
    lst.bind("127.0.0.1", 0)
    yield lst
    lst.close()


def _post(port: int, body: bytes, chunked: bool = False) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        if chunked:
            conn.request("POST", "/", body=iter([body[:3], body[3:]]), encode_chunked=True,
                         headers={"Transfer-Encoding": "chunked"})
        else:
            conn.request("POST", "/", body=body)
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()


def test_listener_answers_200_and_queues_raw_bodies(listener):
    assert _post(listener.port, b'[{"type":"platform.start"}]') == 200
    assert _post(listener.port, b"not json at all") == 200
    assert _post(listener.port, b"[1,2,3,4,5]", chunked=True) == 200
    assert listener.queue.get_all_nowait() == [b'[{"type":"platform.start"}]', b"not json at all", b"[1,2,3,4,5]"]
    h = listener.health()
    assert (h["listener_requests"], h["listener_oversized"]) == (3, 0)


def test_oversized_body_is_refused_counted_not_queued(listener):
    assert _post(listener.port, b"z" * 5000) == 413
    assert listener.queue.get_all_nowait() == []
    h = listener.health()
    assert (h["listener_oversized"], h["listener_oversized_bytes"]) == (1, 5000)


def test_second_bind_on_a_taken_port_fails(listener):
    other = TelemetryListener(BatchQueue())
    with pytest.raises(OSError):
        other.bind("127.0.0.1", listener.port)


def test_extension_name_from_launcher_or_file_name():
    assert extension_name(["/opt/extensions/otel-sidecar"]) == "otel-sidecar"
    assert extension_name(["/x/otel_sidecar/__main__.py", "--name", "my-ext"]) == "my-ext"
    assert extension_name(["-c", "--name=other"]) == "other"
    assert extension_name(["/x/otel_sidecar/__main__.py"]) == "otel-sidecar"


def test_listener_host_from_hosts_file(tmp_path):
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 localhost\n# 10.0.0.1 sandbox.localdomain\n169.254.100.1\tsandbox.localdomain sandbox\n")
    assert resolve_listener_host(str(hosts)) == "169.254.100.1"
    assert resolve_listener_host(str(tmp_path / "missing")) == "127.0.0.1"


def test_subscription_body_shape():
    body = subscription_body(["platform", "function"], 4321)
    assert body == {"schemaVersion": "2022-12-13", "types": ["platform", "function"],
                    "buffering": {"maxItems": 10000, "maxBytes": 1048576, "timeoutMs": 25},
                    "destination": {"protocol": "HTTP", "URI": "http://sandbox.localdomain:4321/"}}


def test_deadline_conversion_subtracts_the_margin():
    now_m = time.monotonic()
    deadline = epoch_to_monotonic((time.time() + 3.0) * 1000, 0.2)
    assert 2.5 < deadline - now_m <= 2.8 + 0.05
    assert epoch_to_monotonic(None, 0.2, fallback_s=1.0) - now_m == pytest.approx(1.0, abs=0.1)


def test_no_listener_at_all_degrades_with_one_line(monkeypatch, capsys):
    from otel_sidecar import listener as listener_mod
    from otel_sidecar.lifecycle import Sidecar

    def refuse(self, host, port=0):
        raise OSError(99, "Cannot assign requested address")

    monkeypatch.setattr(listener_mod.TelemetryListener, "bind", refuse)
    sc = Sidecar({"AWS_LAMBDA_RUNTIME_API": "127.0.0.1:9"}, ["otel-sidecar"])
    sc.queue = listener_mod.BatchQueue(cond=sc.cond)
    assert sc.start_listener() is None
    assert sc.listener is None and len(sc.degraded) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("[otel-sidecar] ERROR degraded: cannot start the Telemetry API listener")


def _raw(port: int, data: bytes) -> bytes:
    """Send raw bytes, read until the listener closes the connection (bounded by the socket timeout)."""
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        out = b""
        while True:
            got = s.recv(65536)
            if not got:
                return out
            out += got


def test_keep_alive_requests_on_one_connection_are_each_answered_and_queued(listener):
    reqs = b"".join(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(b), b)
                    for b in (b"[1]", b"[22]", b""))
    answers = _raw(listener.port, reqs)
    assert answers.count(b"HTTP/1.1 200 OK\r\n") == 3
    assert listener.queue.get_all_nowait() == [b"[1]", b"[22]", b""]


def test_subscription_body_carries_the_secret_path():
    from otel_sidecar.lifecycle import listener_path

    a, b = listener_path(), listener_path()
    assert a != b and a.startswith("/telemetry/") and len(a) > 40
    uri = subscription_body(["platform"], 4321, path=a)["destination"]["URI"]
    assert uri == f"http://sandbox.localdomain:4321{a}"


@pytest.mark.parametrize("garbage", [b"NONSENSE\r\n\r\n", b"POST / HTTP/1.1\r\nContent-Length: -4\r\n\r\n",
                                     b"POST / HTTP/1.1\r\nContent-Length: ten\r\n\r\n",
                                     b"POST / HTTP/1.1\r\nno colon here\r\n\r\n",
                                     b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"])
def test_a_malformed_request_gets_400_and_is_counted(listener, garbage):
    assert _raw(listener.port, garbage).startswith(b"HTTP/1.1 400 ")
    assert listener.health()["listener_read_errors"] == 1 and listener.queue.get_all_nowait() == []
    assert _post(listener.port, b"[]") == 200          # and the listener keeps serving


def test_http_1_0_and_connection_close_end_the_connection_after_the_answer(listener):
    assert _raw(listener.port, b"POST / HTTP/1.0\r\nContent-Length: 2\r\n\r\n[]") == \
        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
    assert _raw(listener.port, b"POST / HTTP/1.1\r\nConnection: close\r\nContent-Length: 2\r\n\r\n[]"
                                b"POST / HTTP/1.1\r\nContent-Length: 2\r\n\r\n[]").count(b"200 OK") == 1


def test_a_body_cut_short_is_never_queued(listener):
    _raw(listener.port, b"POST / HTTP/1.1\r\nContent-Length: 100\r\n\r\n[1,2")
    assert _post(listener.port, b"[3]") == 200
    assert listener.queue.get_all_nowait() == [b"[3]"]


def test_a_dropped_batch_is_counted_in_records():
    from otel_sidecar.listener import records_in

    batch = (b'[{"time":"t","type":"function","record":"a \\"type\\":\\"x\\" line"},'
             b'{"time":"t","type":"platform.start","record":{"requestId":"r"}}]')
    assert records_in(batch) == 2 and records_in(b"not json") == 1 and records_in(b"") == 0
    q = BatchQueue(max_batches=1)
    q.put(batch)
    q.put(b"[]")
    assert q.health()["listener_dropped_records"] == 2


def test_a_connection_per_batch_reuses_the_connection_thread(listener):
    for i in range(6):                                # http.client closes: one connection per request
        assert _post(listener.port, b"[%d]" % i) == 200
    assert listener.queue.get_all_nowait() == [b"[%d]" % i for i in range(6)]
    assert listener.health()["listener_connection_threads"] <= 2     # not one per connection


plain = st.recursive(st.none() | st.booleans() | st.integers(-2 ** 63, 2 ** 63) | st.text(),
                     lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                     max_leaves=12)


@settings(max_examples=300, deadline=None)
@given(plain)
def test_plain_json_is_json(value):
    import json

    from otel_sidecar.lifecycle import plain_json

    assert json.loads(plain_json(value)) == value


def test_the_subscription_request_is_the_documented_json():
    import json

    from otel_sidecar.lifecycle import plain_json

    body = subscription_body(["platform", "function"], 4321)
    assert json.loads(plain_json(body)) == body


def test_refused_requests_reach_sidecar_dropped():
    from otel_sidecar.health import health_counters

    assert health_counters({"listener_rejected": 3, "listener_oversized": 2})["dropped"] == 5.0


def test_a_request_off_the_path_is_refused_before_its_body():
    lst = TelemetryListener(BatchQueue(max_batches=10), max_body=1000, path="/telemetry/abc")
    lst.bind("127.0.0.1", 0)
    try:
        out = _raw(lst.port, b"POST / HTTP/1.1\r\nContent-Length: 2\r\n\r\n[]")
        assert out.startswith(b"HTTP/1.1 404 ")
        assert _raw(lst.port, b"POST /telemetry/abc HTTP/1.1\r\nContent-Length: 2\r\n\r\n[]").startswith(b"HTTP/1.1 200")
        h = lst.health()
        assert (h["listener_wrong_path"], h["listener_rejected"], h["listener_requests"]) == (1, 1, 1)
        assert lst.queue.get_all_nowait() == [b"[]"]
    finally:
        lst.close()
