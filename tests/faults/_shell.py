"""The sidecar's shell without a sandbox: its real TelemetryListener and Worker wired as lifecycle.Sidecar
wires them, so that the listener can be fuzzed over HTTP at unit level."""

from __future__ import annotations

import http.client
import threading
import time
from typing import Any, Callable, Dict, List, Mapping, Optional

from otel_sidecar.config import load_settings
from otel_sidecar.listener import BatchQueue, TelemetryListener
from otel_sidecar.status import SidecarStatus
from otel_sidecar.worker import Worker


class ShellSidecar:
    """What lifecycle.Sidecar hands the Worker, plus the listener bound on 127.0.0.1:<ephemeral>."""

    def __init__(self, env: Optional[Mapping[str, str]] = None, max_body: int = 64 * 1024,
                 max_batches: int = 256) -> None:
        self.env: Dict[str, str] = {"AWS_LAMBDA_FUNCTION_NAME": "faults", "SIDECAR_LOG_LEVEL": "ERROR",
                                    **dict(env or {})}
        self.settings, _ = load_settings(self.env)
        self.cond = threading.Condition()
        self.queue = BatchQueue(max_batches=max_batches, cond=self.cond)
        self.listener = TelemetryListener(self.queue, max_body=max_body)
        self.status = SidecarStatus()
        self.status.listener = self.listener
        self.degraded: List[str] = self.status.degraded
        self.port = self.listener.bind("127.0.0.1", 0)
        self.worker = Worker(self.queue, self.settings, self.env, self.status)
        self.worker.start()
        self.wait(lambda: self.worker._ready)   # its one-time setup (logging included) is over before any test

    def close(self) -> None:
        now = time.monotonic()
        self.worker.shutdown(None, now, now + 2.0)
        self.listener.close()

    def counters(self) -> Dict[str, int]:
        """The worker's counters, with the record counts (batches, records_received, malformed, ...) of the
        engine, where they are kept."""
        with self.cond:
            out = dict(self.worker.counters)
        if self.worker.pipeline is not None:
            out.update(self.worker.pipeline.health)
        return out

    def wait(self, pred: Callable[[], Any], timeout: float = 5.0) -> Any:
        """Poll pred() until truthy or the bound passes (then fail with the last counters)."""
        deadline = time.monotonic() + timeout
        while True:
            value = pred()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"condition not met within {timeout} s; counters {self.counters()}, "
                                     f"listener {self.listener.health()}")
            time.sleep(0.005)


def post(port: int, body: bytes, path: str = "/", method: str = "POST") -> int:
    """One request on its own connection (a retry could post twice and break exact counts); the status."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request(method, path, body=body, headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()
