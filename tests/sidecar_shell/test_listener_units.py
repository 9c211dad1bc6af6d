"""Listener queue bounds, body handling and the small lifecycle helpers."""

from __future__ import annotations

import http.client
import time

import pytest
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


def test_oversized_body_is_counted_not_queued(listener):
    assert _post(listener.port, b"z" * 5000) == 200
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
                    "buffering": {"maxItems": 1000, "maxBytes": 262144, "timeoutMs": 25},
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
