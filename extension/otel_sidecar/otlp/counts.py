"""SinkCounters: the OTLP sink's own counters (health()), shared by its parts under one lock."""

from __future__ import annotations

import collections
import logging
import threading
from typing import Dict

log = logging.getLogger("otel_sidecar")


class SinkCounters:
    """Counts by key (dropped_spans_buffer_full, exported_logs, errors_encode, ...); thread-safe."""

    def __init__(self) -> None:
        self._counts: Dict[str, int] = collections.defaultdict(int)
        self.lock = threading.Lock()

    def count(self, key: str, n: int) -> None:
        with self.lock:
            self._counts[key] += n

    def error(self, where: str, exc: BaseException) -> None:
        """Count an error; the first of each kind gets one log line."""
        key = f"errors_{where}"
        with self.lock:
            first = self._counts[key] == 0
            self._counts[key] += 1
        if first:
            log.error("OTLP: error in %s (%s: %s); counted, continuing", where, type(exc).__name__, exc)

    def snapshot(self) -> Dict[str, int]:
        with self.lock:
            return {k: int(v) for k, v in self._counts.items()}

    def exported(self) -> int:
        """Items exported so far, all signals (the sender's sign of progress)."""
        with self.lock:
            return sum(v for k, v in self._counts.items() if k.startswith("exported_"))


def unit(signal: str) -> str:
    """What a signal's items are called in counter keys."""
    return {"traces": "spans", "metrics": "metric_points", "logs": "logs"}[signal]
