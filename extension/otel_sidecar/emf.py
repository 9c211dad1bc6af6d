"""Signals -> CloudWatch Embedded Metric Format documents (pure), and EmfSink, which prints them.

Why not aws-lambda-powertools' EMF serializer: it lives in the function's world, not the sidecar's.
The layer does not vendor powertools (its package is ~74 MB, mostly botocore) and importing it costs
hundreds of milliseconds we must not add to the sidecar's init; its `Metrics` object is also built for one
document per handler call (module-global state, one dimension set, values flushed at 100) whereas we
aggregate many invocations per flush window, bucket by minute and split at the 100-values limit ourselves.
The format is small and fully specified (conventions.md 1), and the tests validate every line we print
against the published EMF JSON schema, so a dedicated serializer here is the lighter, safer choice.

MinuteBuckets: within a flush window, signals are grouped by minute (so CloudWatch sees each value at the
right time); counters become one summed number per metric, distributions become arrays holding every
per-invocation value (full precision; each array element is one sample), split into several documents when
a metric has more than 100 values. (The `{Values, Counts}` distribution object some AWS exporters print would
be shorter for repeated values, but it is not in the published specification, which says a metric target is a
number or an array of numbers - conventions.md 1.6 - so we keep to arrays.) Dimensions: one set, [FunctionName] + the optional SIDECAR_EMF_DIMENSIONS;
request ids are never dimensions.
"""

from __future__ import annotations

import collections
import json
import math
import sys
import threading
import time
from typing import IO, Any, Deque, Dict, Iterable, List, Optional, Sequence, Tuple

from . import catalog
from .config import Settings
from .signals import HealthSignal, InitSignal, InvocationSignal, ShutdownSignal
from .tenancy import NONE as _NO_TENANT
from .tenancy import TenantLimiter

TENANT_DIMENSION = "TenantId"   # SIDECAR_TENANT_DIMENSION: a second dimension set [FunctionName, ..., TenantId]

MAX_METRICS_PER_DIRECTIVE = 100
MAX_VALUES_PER_METRIC = 100
_SIGNAL_OF = {InvocationSignal: catalog.INVOCATION, InitSignal: catalog.INIT, ShutdownSignal: catalog.SHUTDOWN}
_EMF_TYPES = (InvocationSignal, InitSignal, ShutdownSignal, HealthSignal)


def dimensions(settings: Settings) -> Dict[str, str]:
    """The dimension members (name -> value), FunctionName first."""
    values = {
        "FunctionName": settings.function_name,
        "FunctionVersion": settings.function_version,
        "Service": settings.service,
        "MemorySize": str(settings.memory_mb) if settings.memory_mb else "unknown",
        "Architecture": settings.architecture,
        "Region": settings.region or "unknown",
        "InitType": settings.initialization_type,
    }
    out = {"FunctionName": _dim_value(settings.function_name)}
    for name in settings.emf_dimensions:
        if name in values and name not in out:
            out[name] = _dim_value(values[name])
    return out


def _dim_value(v: Any) -> str:
    """Dimension values: printable ASCII, non-blank, at most 1024 characters."""
    s = "".join(c if 32 <= ord(c) < 127 else "?" for c in str(v))[:1024]
    return s if s.strip() else "unknown"


def _number(v: Any) -> Optional[float]:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    f = float(v)
    return f if math.isfinite(f) else None


_ROWS: Dict[str, Tuple[catalog.Metric, ...]] = {}
_ROWS_OF: List[Any] = [None]


def _rows(signal: str) -> Tuple[catalog.Metric, ...]:
    """catalog.for_signal, computed once per catalog (every accepted signal asks)."""
    if _ROWS_OF[0] is not catalog.METRICS:
        _ROWS.clear()
        _ROWS_OF[0] = catalog.METRICS
    rows = _ROWS.get(signal)
    if rows is None:
        rows = _ROWS[signal] = catalog.for_signal(signal)
    return rows


_PLANS: Dict[str, Tuple[Tuple[bool, str, str, Optional[str], Optional[str], bool], ...]] = {}
_PLANS_OF: List[Any] = [None]


def _plan(signal: str) -> Tuple[Tuple[bool, str, str, Optional[str], Optional[str], bool], ...]:
    """Each row of a signal once: (counter?, EMF name, field, when, equals, dense: printed even at zero)."""
    if _PLANS_OF[0] is not catalog.METRICS:
        _PLANS.clear()
        _PLANS_OF[0] = catalog.METRICS
    plan = _PLANS.get(signal)
    if plan is None:
        plan = _PLANS[signal] = tuple((m.kind == catalog.COUNTER, m.emf_name, m.field, m.when, m.equals,
                                       not m.sparse) for m in _rows(signal))
    return plan


class _Bucket:
    __slots__ = ("time", "counters", "values", "gauges", "tenant")

    def __init__(self, tenant: Optional[str] = None) -> None:
        self.tenant = tenant          # the TenantId dimension value (SIDECAR_TENANT_DIMENSION), else None
        self.time = 0.0
        self.counters: Dict[str, float] = {}
        self.values: Dict[str, List[float]] = {}
        self.gauges: Dict[str, float] = {}


def _counter_value(sig: Any, m: catalog.Metric) -> Optional[float]:
    if m.when is not None:
        return 1.0 if getattr(sig, m.when, None) == m.equals else 0.0
    v = getattr(sig, m.field, None)
    if v is None:
        return None
    if isinstance(v, bool):
        return 1.0 if v else 0.0
    if isinstance(v, str):
        return 1.0 if v else 0.0
    return _number(v)


class MinuteBuckets:
    """Signals folded into per-minute buckets as they come (pure). Health counters are cumulative: their
    deltas since the baseline count. A bucket that reaches the 100-values limit is set aside as full (its
    documents can be written at once) and the minute starts a new one: counts and arrays of the two add up."""

    def __init__(self, health_prev: Optional[Dict[str, float]] = None,
                 tenants: Optional[TenantLimiter] = None) -> None:
        self.buckets: Dict[Any, _Bucket] = {}   # minute, or (minute, tenant) with the tenant dimension
        self.full: List[_Bucket] = []
        self.prev: Dict[str, float] = dict(health_prev or {})
        self.tenants = tenants                  # the bounded tenant dimension (tenancy.py), when on

    def add(self, sig: Any) -> None:
        # Long on purpose: the per-invocation hot path (bench: its CPU share); the value checks of each catalog
        # row are inlined rather than called per row, which measured ~15 % cheaper (commit message of 6181e03)
        if not isinstance(sig, _EMF_TYPES):
            return
        if type(sig) is InvocationSignal and sig.init is not None:
            self.add(sig.init)      # the init it carries (signals.py emits an init once: here, not on its own)
        t = _number(getattr(sig, "time", None))
        if t is None:
            return
        minute = key = int(t // 60)
        tenant = None
        if self.tenants is not None and not isinstance(sig, HealthSignal):
            tenant = self.tenants.value(minute, getattr(sig, "tenant_id", None))
            if tenant == _NO_TENANT:
                tenant = None
            else:
                key = (minute, tenant)
        b = self.buckets.get(key)
        if b is None:
            b = self.buckets[key] = _Bucket(tenant)
        b.time = max(b.time, t)
        if isinstance(sig, HealthSignal):
            self._health(b, dict(sig.counters))
            return
        kind = _SIGNAL_OF[type(sig)]
        full = False
        counters, values_of = b.counters, b.values
        always = kind == catalog.INVOCATION    # invocation counters are always printed (zeros make error rates)
        for counter, name, fld, when, equals, dense in _plan(kind):
            if counter:
                if when is not None:
                    v: Optional[float] = 1.0 if getattr(sig, when, None) == equals else 0.0
                else:
                    raw = getattr(sig, fld, None)
                    t = type(raw)
                    if raw is None:
                        continue
                    if t is bool or t is str:
                        v = 1.0 if raw else 0.0
                    elif t is float:
                        v = raw if raw - raw == 0.0 else None      # finite
                    elif t is int:
                        v = float(raw)
                    elif isinstance(raw, (bool, str)):
                        v = 1.0 if raw else 0.0
                    else:
                        v = _number(raw)
                    if v is None:
                        continue
                # others (and sparse invocation counters) only when non-zero
                if v or (always and dense):
                    counters[name] = counters.get(name, 0.0) + v
            else:
                raw = getattr(sig, fld, None)
                t = type(raw)
                if t is float:
                    if raw - raw != 0.0:      # inf / nan
                        continue
                    v = raw
                elif raw is None:
                    continue
                else:
                    v = _number(raw)
                    if v is None:
                        continue
                values = values_of.get(name)
                if values is None:
                    values = values_of[name] = []
                values.append(v)
                full = full or len(values) >= MAX_VALUES_PER_METRIC
        if full:   # after the whole signal: one invocation's values stay in one document
            self.full.append(self.buckets.pop(key))

    def _health(self, b: _Bucket, counters: Dict[str, Any]) -> None:
        prev = self.prev
        for m in _rows(catalog.HEALTH):
            v = _number(counters.get(m.field))
            if v is None:
                continue
            if m.kind == catalog.GAUGE:
                if prev.get(m.field) != v:
                    b.gauges[m.emf_name] = v
            else:
                delta = v - prev.get(m.field, 0.0)
                if delta > 0:
                    b.counters[m.emf_name] = b.counters.get(m.emf_name, 0.0) + delta
                elif delta < 0:  # a counter that restarted: count from its new value
                    b.counters[m.emf_name] = b.counters.get(m.emf_name, 0.0) + v
            prev[m.field] = v

    def take_full(self) -> List[_Bucket]:
        out, self.full = self.full, []
        return out

    def take(self) -> List[_Bucket]:
        """Every bucket (full ones first, then by minute); the aggregation starts empty (baseline kept)."""
        out = self.take_full() + [self.buckets[k] for k in sorted(self.buckets, key=_minute_of)]
        self.buckets = {}
        return [b for b in out if b.counters or b.values or b.gauges]


def _minute_of(key: Any) -> Tuple[int, str]:
    return (key, "") if isinstance(key, int) else key


def aggregate(outputs: Iterable[Any], health_prev: Optional[Dict[str, float]] = None,
              tenants: Optional[TenantLimiter] = None) -> Tuple[List[_Bucket], Dict[str, float]]:
    """Signals -> buckets and the new health baseline."""
    agg = MinuteBuckets(health_prev, tenants)
    for sig in outputs:
        agg.add(sig)
    return agg.take(), agg.prev


def _compact(v: float) -> Any:
    """Whole numbers as ints (shorter lines), others rounded to microsecond-ish precision."""
    if v == int(v) and abs(v) < 2 ** 53:
        return int(v)
    return round(v, 6) if abs(v) >= 1e-3 else float(f"{v:.6g}")


def documents(outputs: Iterable[Any], settings: Settings, health_prev: Optional[Dict[str, float]] = None
              ) -> Tuple[List[dict], Dict[str, float]]:
    """Signals -> EMF documents (dicts), and the new health baseline. Pure."""
    buckets, prev = aggregate(outputs, health_prev, tenant_limiter(settings))
    return bucket_documents(buckets, settings), prev


def tenant_limiter(settings: Settings) -> Optional[TenantLimiter]:
    """The bounded TenantId dimension when SIDECAR_TENANT_DIMENSION is on, else None."""
    if not getattr(settings, "tenant_dimension", False):
        return None
    return TenantLimiter(getattr(settings, "tenant_dimension_max", 20))


def bucket_documents(buckets: Sequence[_Bucket], settings: Settings) -> List[dict]:
    """Buckets -> EMF documents (dicts): one per bucket, split at the per-metric and per-directive limits."""
    dims = dimensions(settings)
    units = {m.emf_name: m.emf_unit for m in catalog.METRICS}
    order = {m.emf_name: i for i, m in enumerate(catalog.METRICS)}
    docs: List[dict] = []
    for b in buckets:
        scalars: Dict[str, Any] = {k: _compact(v) for k, v in b.counters.items()}
        scalars.update({k: _compact(v) for k, v in b.gauges.items()})
        arrays = {k: [_compact(x) for x in v] for k, v in b.values.items()}
        pages = max([math.ceil(len(v) / MAX_VALUES_PER_METRIC) for v in arrays.values()] + [1])
        ts = int(b.time * 1000)
        for page in range(pages):
            members: Dict[str, Any] = dict(scalars) if page == 0 else {}
            for name, vals in arrays.items():
                chunk = vals[page * MAX_VALUES_PER_METRIC:(page + 1) * MAX_VALUES_PER_METRIC]
                if chunk:
                    members[name] = chunk
            names = sorted(members, key=lambda n: order.get(n, 1_000_000))
            for start in range(0, len(names), MAX_METRICS_PER_DIRECTIVE):
                part = names[start:start + MAX_METRICS_PER_DIRECTIVE]
                if not part:
                    continue
                dim_sets = [list(dims)]
                if b.tenant is not None:   # the FunctionName roll-up stays whole; the tenant's set is added
                    dim_sets.append(list(dims) + [TENANT_DIMENSION])
                doc: Dict[str, Any] = {
                    "_aws": {
                        "Timestamp": ts,
                        "CloudWatchMetrics": [{
                            "Namespace": settings.emf_namespace,
                            "Dimensions": dim_sets,
                            "Metrics": [{"Name": n, "Unit": units.get(n, "None")} for n in part],
                        }],
                    },
                }
                doc.update(dims)
                if b.tenant is not None:
                    doc[TENANT_DIMENSION] = _dim_value(b.tenant)
                if "Service" not in dims:
                    doc["Service"] = settings.service
                for n in part:
                    doc[n] = members[n]
                docs.append(doc)
    return docs


def serialize(doc: dict) -> str:
    """One compact JSON line (no newline)."""
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def lines(outputs: Iterable[Any], settings: Settings, health_prev: Optional[Dict[str, float]] = None
          ) -> Tuple[List[str], Dict[str, float]]:
    docs, prev = documents(outputs, settings, health_prev)
    return [serialize(d) for d in docs], prev


class EmfSink:
    """The Sink of ARCHITECTURE.md for EMF: folds signals into the window's aggregation as they come (bounded:
    beyond max_buffer signals per window the newest are dropped and counted) and prints its documents on
    flush(). A busy window keeps ~100 bytes of text per invocation, not the signals. accept() never does I/O."""

    local = True   # writes to stdout, no network: shut down last, after what the network sinks dropped is known

    def __init__(self, settings: Optional[Settings] = None, stream: Optional[IO[str]] = None,
                 max_buffer: Optional[int] = None) -> None:
        self.settings = settings or Settings()
        self._stream = stream
        self._max = max(1, int(max_buffer if max_buffer is not None else self.settings.queue_max))
        self._tenants = tenant_limiter(self.settings)
        self._agg = MinuteBuckets(tenants=self._tenants)
        self._pending = 0
        self._lock = threading.Lock()
        self._unwritten: Deque[str] = collections.deque(maxlen=1000)
        self._closed = False
        self.counters = {"dropped_emf_signals": 0, "dropped_emf_lines": 0, "emf_lines": 0, "emf_write_errors": 0,
                         "emf_deadline_misses": 0}

    @property
    def stream(self) -> IO[str]:
        return self._stream if self._stream is not None else sys.stdout

    def accept(self, outputs: Sequence[Any]) -> None:
        if not self.settings.emf_enabled:
            return
        with self._lock:
            for o in outputs:
                if isinstance(o, _EMF_TYPES):
                    if self._pending >= self._max:
                        self.counters["dropped_emf_signals"] += 1
                        continue
                    self._pending += 1
                    self._agg.add(o)
            full = self._agg.take_full()
        if full:   # whole documents already: keep them as text, not as buckets
            self._keep(self._serialize(full))

    def _serialize(self, buckets: List[Any]) -> List[str]:
        try:
            return [serialize(d) for d in bucket_documents(buckets, self.settings)]
        except Exception:  # noqa: BLE001 - a serializer bug must cost this window, never the sidecar
            self.counters["emf_write_errors"] += 1
            return []

    def flush(self, deadline: float) -> None:
        with self._lock:
            buckets = self._agg.take()
            self._pending = 0
        out = self._serialize(buckets)
        with self._lock:
            backlog = list(self._unwritten) + out
            self._unwritten.clear()
        self._write(backlog, deadline)

    def _write(self, batch: List[str], deadline: float) -> None:
        written = 0
        try:
            stream = self.stream
            # one write per ~64 KB: lines stay whole, the deadline is checked between chunks
            chunk: List[str] = []
            size = 0
            for i, line in enumerate(batch):
                chunk.append(line)
                size += len(line) + 1
                if size >= 65536 or i == len(batch) - 1:
                    if time.monotonic() > deadline and written:
                        raise TimeoutError
                    stream.write("\n".join(chunk) + "\n")
                    written += len(chunk)
                    chunk, size = [], 0
            stream.flush()
        except TimeoutError:
            self.counters["emf_deadline_misses"] += 1
            self._keep(batch[written:])
        except Exception:  # noqa: BLE001 - a closed or broken stdout must not take the sidecar down
            self.counters["emf_write_errors"] += 1
            self._keep(batch[written:])
        self.counters["emf_lines"] += written

    def _keep(self, rest: List[str]) -> None:
        with self._lock:
            for line in rest:
                if len(self._unwritten) == self._unwritten.maxlen:
                    self.counters["dropped_emf_lines"] += 1
                self._unwritten.append(line)

    def shutdown(self, deadline: float) -> None:
        self.flush(deadline)
        with self._lock:
            self.counters["dropped_emf_lines"] += len(self._unwritten)
            self._unwritten.clear()
            self._closed = True

    def health(self) -> Dict[str, int]:
        with self._lock:
            out = dict(self.counters, emf_buffered=self._pending)
            if self._tenants is not None:
                out["tenant_overflow"] = self._tenants.overflow
            return out
