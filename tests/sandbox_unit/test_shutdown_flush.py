"""The flush before SHUTDOWN hurries what is pending, then lets the subscription's buffering work again
(issue 15: an extension that logs each batch it receives turned the flush into ~125 one-event POSTs)."""

from __future__ import annotations

import threading
import time

import pytest
from lambda_sandbox.telemetry import TelemetryHub

from tests.helpers import wait_for


@pytest.fixture
def hub():
    h = TelemetryHub()
    yield h
    h.stop()


def test_flush_sends_pending_in_one_batch_and_an_echoing_extension_does_not_loop(hub, listener, make_listener):
    slow = make_listener()   # another subscriber keeps the flush going for ~300 ms
    assert hub.subscribe("ext", listener.body(timeoutMs=1000))[0] == 200
    assert hub.subscribe("slow", slow.body(types=["function"], timeoutMs=1000))[0] == 200
    wait_for(lambda: listener.events("platform.telemetrySubscription"), timeout=3)
    slow.delay_s = 0.3
    for i in range(40):
        hub.emit_log("function", f"line {i}")
    stop = threading.Event()

    def echo() -> None:   # like aws-samples' extensions: one extension line per batch received
        seen = listener.started
        while not stop.is_set():
            if listener.started > seen:
                seen = listener.started
                hub.emit_log("extension", f"received batch {seen}", extension_name="ext")
            time.sleep(0.002)

    t = threading.Thread(target=echo, daemon=True)
    t.start()
    posts_before = listener.started
    t0 = time.monotonic()
    try:
        assert hub.flush(1.0)
        took = time.monotonic() - t0
        time.sleep(0.2)   # an echo storm would show here: well under the 1,000 ms timeoutMs
        posts = listener.started - posts_before
    finally:
        stop.set()
        t.join(1)
    assert [e["record"] for e in listener.events("function")] == [f"line {i}\n" for i in range(40)]
    assert posts == 1, f"{posts} POSTs during and after the flush: the echo was hurried too"
    assert took < 0.9   # the flush did not wait out timeoutMs for the echoed lines
    assert slow.events("function")


def test_events_after_the_flush_started_still_go_out_by_timeout_ms(hub, listener):
    assert hub.subscribe("ext", listener.body(timeoutMs=100))[0] == 200
    assert hub.flush(1.0)
    hub.emit_log("extension", "late line", extension_name="ext")
    wait_for(lambda: listener.events("extension"), timeout=2)
