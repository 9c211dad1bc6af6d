"""OtlpSink: signals -> OTLP spans, metrics and logs, exported only when we say so.

The sink of ARCHITECTURE.md for OTLP, split the way an OpenTelemetry exporter is:
- mapping (signals -> serialized proto): spans.py (invocation / init / phase spans, X-Ray ids), logs.py
  (log records), recorder.py (catalog metrics and health, collected per window), resource.py (resource
  attributes and request envelopes); encode.py serializes;
- buffering: buffer.py (per signal, bounded in items and, through budget.py, in bytes);
- export: export.py (requests, outcomes, spool in and out), schedule.py (flush passes, the paced sender
  thread, the final export), destination.py (sender, backoff, refusals), transport.py (HTTP / gRPC).
accept() never blocks; flush() and shutdown() return by their deadline. Everything dropped is counted
(health(); export.py lists the reasons).
"""

from __future__ import annotations

import logging
import time
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple
from urllib.parse import urlsplit

# Everything is imported here, when the worker thread builds the sink, so that no first flush pays for
# an import inside its post-runtime window.
from .. import budget as _budget
from ..budget import Budget
from ..signals import HealthSignal, InitSignal, InvocationSignal, LogSignal, ShutdownSignal
from .buffer import SignalBuffer
from .config import OtlpConfig
from .counts import SinkCounters, unit
from .destination import Backoff, Destination
from .export import FLUSH, SignalExporter
from .logs import LogMapper
from .recorder import MetricRecorder
from .resource import SIGNALS, FunctionResource
from .schedule import ExportScheduler
from .spans import SpanMapper, TraceIdRegistry
from .spool import spool_from

log = logging.getLogger("otel_sidecar")


class OtlpSink:
    """Wires the parts (module docstring) and routes each signal to its mapper by its class."""

    def __init__(self, cfg: OtlpConfig, settings: Any = None, env: Optional[Mapping[str, str]] = None,
                 logs_enabled: bool = True, flush_mode: str = "adaptive", flush_interval_ms: int = 20000) -> None:
        env = dict(env or {})
        self.cfg = cfg
        self.logs_enabled = logs_enabled and cfg.logs.enabled
        self.temporality = cfg.temporality
        self.flush_mode = flush_mode
        self.counters = SinkCounters()
        self.resource = FunctionResource(cfg, settings, env)
        self._shutdown_reason: Optional[str] = None

        limit, warning = _budget.budget_bytes(env)
        body_max, attr_limit, warnings = _budget.log_limits(env)
        for text in [warning, *warnings]:
            _budget.warn_once(text)
        self.budget = Budget(limit)   # drop order: function logs first, platform-derived spans/metrics last
        self.buffers: Dict[str, SignalBuffer] = {
            sig: SignalBuffer(cfg.max_queue, self._dropper(sig), self.budget) for sig in ("logs", "traces", "metrics")}

        from ..local_otlp import load_config as local_otlp_config  # stdlib only: SIDECAR_SPAN_PARENT

        ids = TraceIdRegistry(always_sample=cfg.sampling == "always",
                              parent_mode=local_otlp_config(env)[0].span_parent)
        self.spans = SpanMapper(self.buffers["traces"], self.resource, ids, self.counters)
        self.logs = LogMapper(self.buffers["logs"], ids, self.counters, body_max, attr_limit)
        self.metrics = MetricRecorder(cfg.temporality, self.resource, self.counters)

        self.scheduler = ExportScheduler(self.buffers, self.counters, flush_mode == "continuous",
                                         flush_interval_ms / 1000.0, cfg.traces.timeout_s, self._collect_metrics)
        self.exporter = SignalExporter(self.buffers, _destinations(cfg), self.resource, self.budget,
                                       spool_from(cfg.spool_dir, cfg.spool_max_bytes), cfg.batch_size,
                                       self.counters, self.scheduler.defer)
        self.scheduler.exporter = self.exporter
        if self.scheduler.continuous:
            self.scheduler.start_sender()

    @property
    def local_intake(self) -> Any:
        """The local OTLP endpoint's queue (local_otlp.Intake) whose requests this sink forwards; set by the worker."""
        return self.exporter.local_intake

    @local_intake.setter
    def local_intake(self, intake: Any) -> None:
        self.exporter.local_intake = intake

    # ---- Sink protocol ---------------------------------------------------------------------------------
    def accept(self, outputs: Sequence[Any]) -> None:
        for out in outputs:
            try:
                self._route(out)
            except Exception as exc:  # noqa: BLE001 - one bad signal must not stop the others
                self.counters.error("accept", exc)
        self.scheduler.after_accept()

    def _route(self, out: Any) -> None:
        if isinstance(out, InvocationSignal):
            if out.init is not None:          # the init it carries (emitted once, inside its first invocation)
                self.metrics.record("init", out.init)
            self.metrics.record("invocation", out)
            self.spans.invocation(out)
        elif isinstance(out, LogSignal):
            if not self.logs_enabled:
                return
            if self.exporter.refuses("logs"):
                self.counters.count("dropped_logs_refused", 1)        # the backend refuses logs: not even encoded
                return
            self.logs.log(out)
        elif isinstance(out, InitSignal):
            self.metrics.record("init", out)
            self.spans.init(out)
        elif isinstance(out, ShutdownSignal):
            self.metrics.record("shutdown", out)
            self._shutdown_reason = out.reason
        elif isinstance(out, HealthSignal):
            self.record_health(dict(out.counters), dict(out.dropped_reasons))

    def flush(self, deadline: float) -> None:
        t0 = time.monotonic()
        self._collect_metrics()
        self.scheduler.export_all(deadline, FLUSH)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("OTLP flush: %.1f ms of a %.1f ms window; %s", (time.monotonic() - t0) * 1000,
                      (deadline - t0) * 1000, self.health())

    def shutdown(self, deadline: float) -> None:
        if self.scheduler.closed:
            return
        self.scheduler.close()
        try:
            self.spans.flush_pending_inits()
        except Exception as exc:  # noqa: BLE001
            self.counters.error("shutdown", exc)
        self._collect_metrics()
        self.scheduler.final(deadline, self._shutdown_reason, self.cfg.spool_dir)

    def health(self) -> Dict[str, int]:
        out = {f"otlp_{k}": v for k, v in self.counters.snapshot().items()}
        for sig, buf in self.buffers.items():
            out[f"otlp_buffered_{unit(sig)}"] = len(buf)
        return out

    def record_health(self, counts: Mapping[str, Any], dropped_reasons: Optional[Mapping[str, float]] = None) -> None:
        """The sidecar's own counters (cumulative) -> the catalog's health metrics (deltas recorded);
        `dropped` by the reasons the shell gives (health.drop_reasons), else all as `other`."""
        if not dropped_reasons:
            total = counts.get("dropped")
            dropped_reasons = {"other": float(total)} if isinstance(total, (int, float)) and total > 0 else {}
        self.metrics.record_health(counts, dropped_reasons)

    # ---- internals -----------------------------------------------------------------------------------
    def _collect_metrics(self) -> None:
        self.metrics.collect_into(self.buffers["metrics"])

    def _dropper(self, sig: str) -> Any:
        counters = self.counters

        def on_drop(reason: str, n: int) -> None:
            counters.count(f"dropped_{unit(sig)}_{reason}", n)
        return on_drop


def _destinations(cfg: OtlpConfig) -> Dict[str, Destination]:
    """One Destination per signal; signals that go to the same backend (host:port) share its backoff."""
    backoffs: Dict[Tuple[str, int], Backoff] = {}
    out: Dict[str, Destination] = {}
    for sig in SIGNALS:
        export = cfg.signal(sig)
        parts = urlsplit(export.endpoint)
        key = (parts.hostname or "", parts.port or 0)
        out[sig] = Destination(sig, export, backoffs.setdefault(key, Backoff()))
        out[sig].max_items = cfg.batch_size
    return out
