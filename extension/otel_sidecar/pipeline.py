"""RecordPipeline: the pure path of the worker thread, raw body -> typed events -> signals.

    raw Telemetry API body --events.parse_batch--> ParsedBatch of typed events (events.py)
        --SignalEngine.on_batch--> per-invocation state, and signals when a record completes one (signals.py)

The worker (the shell) calls it with bodies and lifecycle events and hands what comes back to the sinks; it
never looks inside an event. Every record count (received, malformed, unknown, invalid, logs dropped by
Lambda, our own lines) is kept once, in the engine's counters (`health`), the same path the unit tests drive.
Imported by the worker thread after the first /next (events and signals load json, re and dataclasses).
"""

from __future__ import annotations

from typing import Dict, List, Mapping, Optional, Tuple

from .config import Settings, load_settings
from .events import ParsedBatch, parse_batch, parse_batch_skimming_logs, parse_invoke, parse_shutdown
from .signals import Output, SignalEngine


class RecordPipeline:
    """Parse + engine, one instance per sidecar (the engine holds the per-invocation state)."""

    def __init__(self, settings: Optional[Settings] = None) -> None:
        self.engine = SignalEngine(settings if settings is not None else load_settings({})[0])

    @property
    def health(self) -> Dict[str, int]:
        return self.engine.health

    def invoke(self, event: Mapping[str, object], now: float) -> Optional[List[Output]]:
        """An Extensions API INVOKE; None when it names no request id."""
        inv = parse_invoke(event)
        if inv is None:
            return None
        return self.engine.on_invoke(inv, now)

    def batch(self, body: bytes, now: float) -> List[Output]:
        """A whole Telemetry API body, parsed in full."""
        return self.engine.on_batch(parse_batch(body), now)

    def skim(self, body: bytes, now: float) -> Tuple[List[Output], int]:
        """A body taken while the worker is behind: its text function log lines are only counted and searched
        (no LogSignal); its other records are parsed in full. Returns (signals, log lines skimmed)."""
        out: List[Output] = []
        skimmed = 0
        for part in parse_batch_skimming_logs(body):
            if isinstance(part, ParsedBatch):
                out += self.engine.on_batch(part, now)
            else:
                skimmed += len(part)
                out += self.engine.on_skimmed_logs(part, now)
        return out, skimmed

    def shutdown(self, event: Mapping[str, object], now: float) -> List[Output]:
        """The Extensions API SHUTDOWN event's signal."""
        return self.engine.on_shutdown(parse_shutdown(event), now)

    def finish(self, now: float) -> List[Output]:
        """At the end: everything still pending (an unused init, invocations without a report)."""
        return self.engine.finish(now)

    def take_progress(self) -> Tuple[List[str], List[str]]:
        """(request ids with a new runtimeDone, with a new report) since the last call."""
        return self.engine.take_progress()

    def runtime_done_seen(self, request_id: str) -> bool:
        return self.engine.runtime_done_seen(request_id)
