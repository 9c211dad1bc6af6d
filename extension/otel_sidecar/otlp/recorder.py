"""The catalog's metrics for OTLP: signals and the sidecar's own counters -> Aggregator (metrics.py), and one
serialized ResourceMetrics per collection window into the metrics buffer."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

from ..local_otlp import UNIT as LOCAL_UNITS  # stdlib only
from .buffer import SignalBuffer
from .counts import SinkCounters
from .metrics import Aggregator
from .resource import FunctionResource

log = logging.getLogger("otel_sidecar")

SECONDS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10)
MIB = 1024 * 1024
MEMORY_BUCKETS = tuple(float(mb * MIB) for mb in (32, 64, 128, 256, 512, 1024, 1536, 2048, 3072, 4096, 6144,
                                                  8192, 10240))
RESPONSE_BUCKETS = (0.0, 100.0, 1e3, 1e4, 1e5, 1e6, 6 * MIB, 20 * MIB)
PERCENT_BUCKETS = (10.0, 25.0, 50.0, 75.0, 90.0, 95.0, 100.0)


class MetricRecorder:
    """Records catalog rows (catalog.py) from signals; health counters arrive cumulative and are recorded as
    deltas. `accept` (worker thread) and `collect_into` (worker or the sender thread) share one lock."""

    def __init__(self, temporality: str, resource: FunctionResource, counters: SinkCounters) -> None:
        self.temporality = temporality
        self.resource = resource
        self.counters = counters
        self._lock = threading.Lock()
        self._aggregator = Aggregator(temporality, time.time_ns())
        catalog = _load_catalog()
        for m in catalog:
            self._aggregator.declare(m.otlp_name, m.kind, m.otlp_unit, m.description, _bounds(m))
        self._rows = {sig: tuple(m for m in catalog if m.signal == sig and m.when is None)
                      for sig in ("invocation", "init", "shutdown", "health")}
        self._health_last: Dict[Tuple[str, Tuple[Tuple[str, Any], ...]], float] = {}
        self._plans: Dict[str, Tuple[Tuple[str, Optional[str], float, Any], ...]] = {}

    def record(self, row_signal: str, sig: Any) -> None:
        """The catalog rows of `row_signal` (invocation | init | shutdown) from a signal's fields."""
        plan = self._plans.get(row_signal)
        if plan is None:
            plan = self._plans[row_signal] = self._plan(row_signal)
        with self._lock:
            for source, attr_key, scale, op in plan:
                value = getattr(sig, source, None)
                t = type(value)
                if t is float or t is int:      # the common case (the catalog's durations and sizes)
                    amount = float(value) * scale
                    attrs: Tuple[Tuple[str, Any], ...] = ()
                elif value is None:
                    continue
                elif isinstance(value, bool):
                    if not value:
                        continue
                    amount, attrs = 1.0, ()
                elif isinstance(value, str):
                    if not value:
                        continue
                    amount = 1.0
                    attrs = ((attr_key, value),) if attr_key is not None else ()
                elif isinstance(value, (int, float)):
                    amount, attrs = float(value) * scale, ()
                else:
                    continue
                op(amount, attrs)

    def _plan(self, row_signal: str) -> Tuple[Tuple[str, Optional[str], float, Any], ...]:
        """Each row once: (source field, attribute key of a string value, scale, the aggregator's update)."""
        agg = self._aggregator
        plan = []
        for m in self._rows.get(row_signal, ()):
            attr_key = "aws.lambda.init.kind" if m.field == "kind" else "reason" if m.field == "reason" else None
            plan.append((m.otlp_source_field, attr_key, m.otlp_scale, _updater(agg, m.kind, m.otlp_name)))
        return tuple(plan)

    def record_health(self, counts: Mapping[str, Any], dropped_reasons: Mapping[str, float]) -> None:
        """The sidecar's own counters (cumulative, health.health_counters) -> the catalog's health metrics;
        `dropped` by reason as the shell broke it down (health.drop_reasons)."""
        counts = {k: v for k, v in counts.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        for m in self._rows.get("health", ()):
            if m.field == "dropped":
                for reason, value in dropped_reasons.items():
                    self._record_health_value(m, float(value), {"reason": reason})
                continue
            if m.field.startswith("local_otlp_"):     # the function's own OTLP, per signal (local_otlp.UNIT)
                for sig, sig_unit in LOCAL_UNITS.items():
                    if f"{m.field}_{sig_unit}" in counts:
                        self._record_health_value(m, float(counts[f"{m.field}_{sig_unit}"]), {"signal": sig})
                continue
            value = _first_number(counts, (m.field, f"engine_{m.field}", f"worker_{m.field}"))
            if value is not None:
                self._record_health_value(m, value, {})

    def _record_health_value(self, m: Any, value: float, attrs: Dict[str, Any]) -> None:
        scaled = value * m.otlp_scale
        key_attrs = tuple(sorted(attrs.items()))
        with self._lock:
            if m.kind == "gauge":
                self._aggregator.set(m.otlp_name, scaled, key_attrs)
                return
            key = (m.otlp_name, key_attrs)
            delta = scaled - self._health_last.get(key, 0.0)
            self._health_last[key] = scaled
            if m.kind == "histogram":
                self._aggregator.record(m.otlp_name, scaled, key_attrs)
            elif delta > 0:
                self._aggregator.add(m.otlp_name, delta, key_attrs)

    def collect_into(self, buffer: SignalBuffer) -> None:
        """Close the window: its points as one serialized ResourceMetrics into `buffer` (weight: points)."""
        try:
            with self._lock:
                metrics, points = self._aggregator.collect(time.time_ns())
            if not points:
                return
            window = self.resource.envelopes["metrics"].block(m.SerializeToString() for m in metrics)
        except Exception as exc:  # noqa: BLE001
            self.counters.error("collect", exc)
            return
        if self.temporality == "cumulative":
            # a cumulative snapshot supersedes the older ones: nothing is lost by replacing them
            buffer.clear()
        buffer.add(window, points)


def _updater(agg: Aggregator, kind: str, name: str) -> Any:
    """The aggregator's update of one instrument: record (histogram), set (gauge), add when positive (counter)."""
    if kind == "histogram":
        return agg.recorder(name)
    if kind == "gauge":
        return lambda amount, attrs: agg.set(name, amount, attrs)

    add = agg.adder(name)

    def add_positive(amount: float, attrs: Tuple[Tuple[str, Any], ...]) -> None:
        if amount > 0:
            add(amount, attrs)
    return add_positive


def _bounds(m: Any) -> Optional[Tuple[float, ...]]:
    """Bucket bounds that fit the values (the generic 0..10000 would put every byte count in overflow)."""
    if m.kind != "histogram":
        return None
    if m.otlp_name == "faas.mem_usage":
        return MEMORY_BUCKETS
    if m.otlp_name == "aws.lambda.produced_bytes":
        return RESPONSE_BUCKETS
    if m.otlp_unit == "s":
        return SECONDS_BUCKETS
    if m.otlp_unit == "%":
        return PERCENT_BUCKETS
    return None


def _first_number(d: Mapping[str, Any], keys: Sequence[str]) -> Optional[float]:
    for k in keys:
        v = d.get(k)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return float(v)
    return None


def _load_catalog() -> Tuple[Any, ...]:
    try:
        from ..catalog import METRICS

        return METRICS
    except Exception as exc:  # noqa: BLE001 - no catalog: spans and logs still work
        log.error("OTLP: the metric catalog is unavailable (%s); OTLP metrics are off", exc)
        return ()
