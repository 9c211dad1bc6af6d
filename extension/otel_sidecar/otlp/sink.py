"""OtlpSink: signals -> OTLP spans, metrics and logs, exported only when we say so.

Spans and log records are built as opentelemetry-proto messages and serialized at once (encode.py says
why not through the SDK); they wait as bytes in bounded per-signal buffers. Metrics are aggregated per
flush window (metrics.py; delta temporality by default) and collected at flush time into one buffered
ResourceMetrics per window. Nothing runs on a timer of its own: export happens inside flush(deadline) and
shutdown(deadline) (and on one paced background sender thread), always bounded by the caller's deadline,
and is sent by transport.HttpSender.

Accounting (health()): every item that leaves a buffer other than by a successful export is counted
by signal and reason: buffer_full (drop-oldest), rejected (non-retryable status), partial (the backend
refused part of a 2xx), shutdown (still buffered when the shutdown deadline came).
"""

from __future__ import annotations

import collections
import functools
import logging
import random
import threading
import time
from dataclasses import dataclass
from typing import Any, Deque, Dict, List, Mapping, Optional, Sequence, Tuple
from urllib.parse import urlsplit

# Everything is imported here, when the worker thread builds the sink, so that no first flush pays for
# an import inside its post-runtime window.
from .. import budget as _budget
from .. import local_otlp
from ..budget import Budget
from ..redact import url as redact_url
from . import encode
from .config import OtlpConfig, SignalExport
from .metrics import Aggregator
from .spool import items_in, spool_from
from .traceids import parse_xray, valid_span_id
from .transport import GrpcSender, HttpSender, SendResult, encode_body, send_with_retry

_JITTER = random.Random()   # own generators: never disturb (or race on) the global one
_IDS = random.Random()
log = logging.getLogger("otel_sidecar")

SCOPE = "otel_sidecar"
SECONDS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10)
MIB = 1024 * 1024
MEMORY_BUCKETS = tuple(float(mb * MIB) for mb in (32, 64, 128, 256, 512, 1024, 1536, 2048, 3072, 4096, 6144,
                                                  8192, 10240))
RESPONSE_BUCKETS = (0.0, 100.0, 1e3, 1e4, 1e5, 1e6, 6 * MIB, 20 * MIB)
PERCENT_BUCKETS = (10.0, 25.0, 50.0, 75.0, 90.0, 95.0, 100.0)
SEVERITY = {"TRACE": 1, "DEBUG": 5, "INFO": 9, "WARN": 13, "WARNING": 13, "ERROR": 17, "FATAL": 21,
            "CRITICAL": 21}
MAX_TRACKED_IDS = 512           # request id -> span ids of invocations whose span is not built yet, so that
                                # their logs (which come first) and the span agree
MAX_PENDING_INITS = 16
MAX_CONSTANT_SETS = 16          # (version, memory, invoked ARN) combinations whose span attributes are cached
CPU_SHARE = 0.25                # the background sender works at most this share of wall time...
HIGH_WATER = 0.5                # ...and, outside continuous mode, only once a buffer is this full
FLUSH, BACKGROUND, FINAL, FINAL_FIRST = "flush", "background", "final", "final-first"
FLUSH_BATCH = 128               # items per request inside the post-runtime window
URGENT = 0.9                    # a buffer this full cuts the sender's rest short (a drop is imminent)
BACKOFF_MIN_S, BACKOFF_MAX_S = 0.5, 30.0
SPOOL_REASONS = ("timeout", "failure")   # SHUTDOWN reasons after which the environment (and /tmp) lives on
REFUSED = (404, 405, 501)       # a backend that does not serve a signal at all (Phoenix: 405 for metrics, logs)
REPROBE_S = 600.0               # ...gets that signal again only this often; meanwhile it is dropped, counted
FINAL_ATTEMPTS = 3              # at shutdown a backend that failed before still gets retries (time is there)


@dataclass
class _Ids:
    trace_id: int
    span_id: int
    parent_id: Optional[int]   # the function's X-Ray segment (a remote parent), when the header names one
    sampled: bool
    rank: int = 0          # what the ids came from: 0 nothing, 1 an X-Ray header, 2 a header + Lambda's spanId


def _random_id(bits: int) -> int:
    while True:
        value = _IDS.getrandbits(bits)
        if value:
            return value


class _Buffer:
    """Bounded FIFO of (item, weight); drop-oldest with counted weight. Items are bytes: their sizes count
    against the shared byte budget (budget.py), which may take this buffer's oldest item to make room."""

    def __init__(self, limit: int, on_drop: Any, budget: Optional[Budget] = None) -> None:
        self.limit = limit
        self.items: Deque[Tuple[Any, int]] = collections.deque()
        self.weight = 0
        self.nbytes = 0
        self.on_drop = on_drop
        self.lock = threading.Lock()
        self.budget = budget
        if budget is not None:
            budget.pools.append(self)

    def add(self, item: Any, weight: int = 1) -> None:
        with self.lock:
            self.items.append((item, weight))
            self.weight += weight
            self.nbytes += len(item)
            self._trim()
        if self.budget is not None:
            self.budget.settle()

    def _pop(self, reason: str) -> None:
        item, w = self.items.popleft()
        self.weight -= w
        self.nbytes -= len(item)
        self.on_drop(reason, w)

    def _trim(self) -> None:
        while self.weight > self.limit and self.items:
            self._pop("buffer_full")

    def drop_oldest(self) -> bool:
        """The budget's call: one oldest item out, counted as dropped for memory."""
        with self.lock:
            if not self.items:
                return False
            self._pop("memory")
            return True

    def take(self, max_weight: int, max_bytes: int = 1 << 62) -> List[Tuple[Any, int]]:
        out: List[Tuple[Any, int]] = []
        taken = size = 0
        with self.lock:
            while self.items and (not out or (taken + self.items[0][1] <= max_weight
                                              and size + len(self.items[0][0]) <= max_bytes)):
                item = self.items.popleft()
                self.weight -= item[1]
                self.nbytes -= len(item[0])
                taken += item[1]
                size += len(item[0])
                out.append(item)
        return out

    def put_back(self, batch: List[Tuple[Any, int]]) -> None:
        with self.lock:
            for item in reversed(batch):
                self.items.appendleft(item)
                self.weight += item[1]
                self.nbytes += len(item[0])
            self._trim()
        if self.budget is not None:
            self.budget.settle()

    def clear(self) -> int:
        with self.lock:
            w = self.weight
            self.items.clear()
            self.weight = 0
            self.nbytes = 0
            return w

    def __len__(self) -> int:
        return self.weight


class _Backoff:
    """Failure backoff of one backend (host:port): its signals share it, one stall is enough to know."""

    def __init__(self) -> None:
        self.failures = 0
        self.next_attempt = 0.0
        self.latency: Optional[float] = None     # smoothed duration of a successful request (s)

    def failed(self, now: float, retry_after: Optional[float]) -> None:
        self.failures += 1
        wait = min(BACKOFF_MAX_S, BACKOFF_MIN_S * (2 ** (self.failures - 1))) * _JITTER.uniform(0.8, 1.2)
        if retry_after is not None:
            wait = max(wait, min(retry_after, BACKOFF_MAX_S * 4))
        self.next_attempt = now + wait

    def ok(self, latency: Optional[float] = None) -> None:
        self.failures = 0
        self.next_attempt = 0.0
        if latency is not None:
            self.latency = latency if self.latency is None else 0.7 * self.latency + 0.3 * latency


class _Destination:
    """One signal's exporter: sender and the backoff of its backend."""

    def __init__(self, signal: str, export: SignalExport, backoff: _Backoff) -> None:
        from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
        from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
        from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

        resp = {"traces": trace_service_pb2.ExportTraceServiceResponse,
                "metrics": metrics_service_pb2.ExportMetricsServiceResponse,
                "logs": logs_service_pb2.ExportLogsServiceResponse}[signal]
        self.request_cls = {"traces": trace_service_pb2.ExportTraceServiceRequest,
                            "metrics": metrics_service_pb2.ExportMetricsServiceRequest,
                            "logs": logs_service_pb2.ExportLogsServiceRequest}[signal]
        self.signal = signal
        self.export = export
        self.grpc = export.protocol == "grpc"
        if self.grpc:
            self.sender: Any = GrpcSender(signal, export.endpoint, dict(export.headers), export.compression,
                                          export.timeout_s)
        else:
            try:
                self.sender = HttpSender(export.endpoint, dict(export.headers), export.compression,
                                         export.timeout_s, resp, export.certificate, export.client_certificate,
                                         export.client_key)
            except (OSError, ValueError) as exc:
                log.warning("OTLP configuration: the TLS files for %s (certificate=%r, client certificate=%r) "
                            "cannot be used (%s); using the system's trusted CAs without a client certificate",
                            signal, export.certificate, export.client_certificate, exc)
                self.sender = HttpSender(export.endpoint, dict(export.headers), export.compression,
                                         export.timeout_s, resp)
        self.backoff = backoff
        self.max_items = 1 << 30          # items per request; the sink caps it by its batch size
        self.refused_until = 0.0          # after a permanent refusal (REFUSED): not sent before (monotonic)
        self.refusal_warned = False


class OtlpSink:
    """The Sink of ARCHITECTURE.md for OTLP. accept() never blocks; flush()/shutdown() return by deadline."""

    def __init__(self, cfg: OtlpConfig, settings: Any = None, env: Optional[Mapping[str, str]] = None,
                 logs_enabled: bool = True, flush_mode: str = "adaptive", flush_interval_ms: int = 20000) -> None:
        env = dict(env or {})
        self.cfg = cfg
        self.settings = settings
        self.env = env
        self._counters: Dict[str, int] = collections.defaultdict(int)
        self._counts_lock = threading.Lock()
        self._export_lock = threading.Lock()
        self._closed = False
        self.function_name = (getattr(settings, "function_name", None) if settings is not None else None) \
            or env.get("AWS_LAMBDA_FUNCTION_NAME") or "unknown"
        if self.function_name == "unknown" and env.get("AWS_LAMBDA_FUNCTION_NAME"):
            self.function_name = env["AWS_LAMBDA_FUNCTION_NAME"]
        self.function_version = env.get("AWS_LAMBDA_FUNCTION_VERSION") or \
            (getattr(settings, "function_version", None) if settings is not None else None) or "$LATEST"
        self.region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or \
            (getattr(settings, "region", None) if settings is not None else None)
        mem = env.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE") or \
            (getattr(settings, "memory_mb", None) if settings is not None else None)
        try:
            self.max_memory = int(mem) * 1024 * 1024 if mem else None
        except ValueError:
            self.max_memory = None
        self.instance = env.get("AWS_LAMBDA_LOG_STREAM_NAME")
        resource_attrs = self._resource_attributes()
        self.logs_enabled = logs_enabled and cfg.logs.enabled
        self.temporality = cfg.temporality

        limit, warning = _budget.budget_bytes(env)
        self._body_max, self._attr_limit, warnings = _budget.log_limits(env)
        for text in [warning, *warnings]:
            _budget.warn_once(text)
        self._budget = Budget(limit)   # drop order: function logs first, platform-derived spans/metrics last
        self._buffers: Dict[str, _Buffer] = {
            sig: _Buffer(cfg.max_queue, self._dropper(sig), self._budget) for sig in ("logs", "traces", "metrics")}
        self._batch_bytes = max(64 * 1024, limit // 4)   # one request's share of the budget (encoded twice)
        backoffs: Dict[Tuple[str, int], _Backoff] = {}
        self._dest: Dict[str, _Destination] = {}
        for sig in ("traces", "metrics", "logs"):
            export = cfg.signal(sig)
            parts = urlsplit(export.endpoint)
            key = (parts.hostname or "", parts.port or 0)
            self._dest[sig] = _Destination(sig, export, backoffs.setdefault(key, _Backoff()))
            self._dest[sig].max_items = cfg.batch_size
        self._failure_logged: set = set()
        self._inflight: Dict[str, int] = {sig: 0 for sig in self._dest}
        self._spool = spool_from(cfg.spool_dir, cfg.spool_max_bytes)
        self._spool_loaded = False
        self._shutdown_reason: Optional[str] = None
        self._raw: Dict[str, Deque[Tuple[str, int, bytes]]] = {sig: collections.deque() for sig in self._dest}
        self.local_intake: Any = None      # local_otlp.Intake: the function's own OTLP, set by the worker
        self._span_parent = local_otlp.load_config(env)[0].span_parent

        self._envelopes = {sig: encode.Envelope(sig, resource_attrs, SCOPE, _sidecar_version())
                           for sig in ("traces", "logs", "metrics")}
        self._catalog = _load_catalog()
        self._metrics_lock = threading.Lock()    # accept (worker) and collect (worker or sender) share it
        self._aggregator = Aggregator(cfg.temporality, time.time_ns())
        for m in self._catalog:
            self._aggregator.declare(m.otlp_name, m.kind, m.otlp_unit, m.description, _bounds(m))
        self._rows = {sig: tuple(m for m in self._catalog if m.signal == sig and m.when is None)
                      for sig in ("invocation", "init", "shutdown", "health")}
        self._health_last: Dict[Tuple[str, str], float] = {}
        self._span_ids: collections.OrderedDict[str, _Ids] = collections.OrderedDict()
        self._constants: Dict[Tuple[Any, ...], Tuple[bytes, ...]] = {}
        self._log_attrs: Dict[Tuple[str, str], bytes] = {}
        self._pending_inits: Deque[Any] = collections.deque()
        self._emitted_inits: Deque[Tuple[Any, ...]] = collections.deque(maxlen=64)

        self.flush_mode = flush_mode
        self._wake = threading.Event()      # work for the background sender
        self._urgent = threading.Event()    # a buffer is nearly full (or shutdown): cut the sender's rest short
        self._sender: Optional[threading.Thread] = None
        self._sender_lock = threading.Lock()
        self._deferred = False
        self._continuous = flush_mode == "continuous"
        self._interval = max(0.1, flush_interval_ms / 1000.0)
        if self._continuous:
            self._start_sender()

    # ---- Sink protocol ---------------------------------------------------------------------------------
    def accept(self, outputs: Sequence[Any]) -> None:
        for out in outputs:
            kind = type(out).__name__
            try:
                if kind == "InvocationSignal":
                    self._on_invocation(out)
                elif kind == "InitSignal":
                    self._on_init(out)
                elif kind == "LogSignal":
                    self._on_log(out)
                elif kind == "ShutdownSignal":
                    self._on_shutdown_signal(out)
                elif kind == "HealthSignal":
                    self.report_health(dict(getattr(out, "counters", ()) or ()))
            except Exception as exc:  # noqa: BLE001 - one bad signal must not stop the others
                self._error("accept", exc)
        if self._continuous:
            self._wake.set()
        else:
            fill = self._fill()
            if fill >= HIGH_WATER:
                # busy traffic: do not wait for the next flush window, send from the background (paced)
                self._start_sender()
                self._wake.set()
                if fill >= URGENT:
                    self._urgent.set()

    def flush(self, deadline: float) -> None:
        t0 = time.monotonic()
        self._collect_metrics()
        self._export_all(deadline, FLUSH)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("OTLP flush: %.1f ms of a %.1f ms window; %s", (time.monotonic() - t0) * 1000,
                      (deadline - t0) * 1000, self.health())

    def shutdown(self, deadline: float) -> None:
        if self._closed:
            return
        self._closed = True
        self._wake.set()
        self._urgent.set()
        try:
            for init in list(self._pending_inits):
                self._emit_init_span(init, None, None)
            self._pending_inits.clear()
        except Exception as exc:  # noqa: BLE001
            self._error("shutdown", exc)
        self._collect_metrics()
        # /tmp outlives the sidecar only when the environment is reset (timeout, failure), never at a spindown:
        # spooling then would lose the data without counting it
        spool = self._spool is not None and self._shutdown_reason in SPOOL_REASONS
        # keep part of the budget to spool, count and report what could not be sent
        now = time.monotonic()
        reserve = min(0.15 if spool else 0.05, max(0.0, deadline - now) / 5)
        self._export_all(deadline - reserve, FINAL)
        spooled = {sig: self._spool_out(sig, deadline - 0.01) if spool else 0 for sig in self._buffers}
        lost = {sig: buf.clear() for sig, buf in self._buffers.items()}
        if self.local_intake is not None:
            self.local_intake.drop_all("shutdown")     # the function's requests not sent in time: counted there
        with self._counts_lock:
            # a batch the background sender still has on the wire when we give up: its fate is unknown
            for sig, n in self._inflight.items():
                lost[sig] += n
        for sig, n in lost.items():
            if n:
                self._count(f"dropped_{_unit(sig)}_shutdown", n)
        if any(spooled.values()):
            log.warning("OTLP: at shutdown %s could not be sent; kept in %s for the next start",
                        ", ".join(f"{n} {_unit(s)}" for s, n in spooled.items() if n), self.cfg.spool_dir)
        if any(lost.values()):
            log.warning("OTLP: at shutdown %s could not be sent in time; counted as dropped",
                        ", ".join(f"{n} {_unit(s)}" for s, n in lost.items() if n))
        for dest in self._dest.values():
            dest.sender.close()

    def _spool_out(self, sig: str, deadline: float) -> int:
        """Encode what is still buffered into the spool (as far as time and the byte bound allow)."""
        buf = self._buffers[sig]
        if self._spool is None or not len(buf) or not self._dest[sig].export.enabled:
            return 0
        saved = 0
        while len(buf) and time.monotonic() < deadline:
            batch = buf.take(self.cfg.batch_size, self._batch_bytes)
            weight = sum(w for _, w in batch)
            try:
                body = self._encode(sig, [item for item, _ in batch])
            except Exception as exc:  # noqa: BLE001
                self._error("encode", exc)
                self._count(f"dropped_{_unit(sig)}_unencodable", weight)
                continue
            if not self._spool.save(sig, body, weight):
                buf.put_back(batch)
                break
            saved += weight
        if saved:
            self._count(f"spooled_{_unit(sig)}", saved)
        return saved

    def health(self) -> Dict[str, int]:
        with self._counts_lock:
            out = {f"otlp_{k}": int(v) for k, v in self._counters.items()}
        for sig, buf in self._buffers.items():
            out[f"otlp_buffered_{_unit(sig)}"] = len(buf)
        return out

    def report_health(self, counts: Mapping[str, Any]) -> None:
        """The sidecar's own counters (cumulative) -> the catalog's health metrics (deltas recorded).

        `dropped` is broken down by reason: this sink's own reasons (dropped_spans_buffer_full, ...), the
        detailed keys of the shell when given, and `other` for the rest of the shell's total.
        """
        counts = {k: v for k, v in counts.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        own = {k[len("otlp_"):]: v for k, v in self.health().items() if k.startswith("otlp_dropped_")}
        for m in self._catalog_rows("health"):
            if m.field == "dropped":
                parts = {k: v for k, v in counts.items()
                         if ("dropped_" in k or k.endswith("_dropped")) and "logs_dropped" not in k
                         and not k.startswith(("engine_", "otlp_"))}
                parts.update(own)
                total = counts.get("dropped")
                if total is not None and total > sum(parts.values()):
                    parts["other"] = total - sum(parts.values())
                for reason, value in parts.items():
                    self._record_health(m, float(value), {"reason": reason})
                continue
            if m.field.startswith("local_otlp_"):     # the function's own OTLP, per signal (local_otlp.UNIT)
                for sig, unit in local_otlp.UNIT.items():
                    if f"{m.field}_{unit}" in counts:
                        self._record_health(m, float(counts[f"{m.field}_{unit}"]), {"signal": sig})
                continue
            value = _first_number(counts, (m.field, f"engine_{m.field}", f"worker_{m.field}"))
            if m.field == "export_failures":
                value = max(value or 0.0, float(self._counters.get("export_failures", 0)))
            if value is not None:
                self._record_health(m, value, {})

    # ---- signals -> spans ----------------------------------------------------------------------------
    def _ids_for(self, request_id: Optional[str], trace: Any, invoke_value: Optional[str]) -> _Ids:
        value = getattr(trace, "value", None) if trace is not None else None
        xr = parse_xray(value) or parse_xray(invoke_value)
        span_id = valid_span_id(getattr(trace, "span_id", None) if trace is not None else None)
        rank = 0 if xr is None else 2 if span_id else 1
        cached = self._span_ids.get(request_id) if request_id else None
        # first sight wins (logs and span agree), unless a later signal knows the trace better: joining the
        # function's trace matters more than matching a few early log lines
        if cached is not None and cached.rank >= rank:
            return cached
        if xr is not None:
            # SIDECAR_SPAN_PARENT (local_otlp.invocation_parent): none = a root span in the X-Ray trace, xray = under
            # Lambda's segment
            chosen = local_otlp.invocation_parent(value if parse_xray(value) else invoke_value, self._span_parent)
            parent = int(chosen[1], 16) if chosen is not None and chosen[1] else None
            sid = int(span_id, 16) if span_id and span_id != xr.parent_id else _random_id(64)
            ids = _Ids(int(xr.trace_id, 16), sid, parent, xr.sampled is not False or self.cfg.sampling == "always",
                       rank)
        else:
            ids = _Ids(_random_id(128), _random_id(64), None, True)
        if request_id:
            self._span_ids[request_id] = ids
            while len(self._span_ids) > MAX_TRACKED_IDS:
                self._span_ids.popitem(last=False)
        return ids

    def _on_invocation(self, sig: Any) -> None:
        self._record_catalog("invocation", sig)
        ids = self._ids_for(sig.request_id, getattr(sig, "trace", None), getattr(sig, "invoke_tracing_value", None))
        self._span_ids.pop(sig.request_id, None)    # its logs came before it: nothing will ask again
        init = getattr(sig, "init", None)
        if init is not None:
            self._forget_pending(init)
            self._learn_instance(init)
        if not ids.sampled:
            self._count("spans_unsampled", 1 + len(getattr(sig, "spans", ()) or ()) + (1 if init is not None else 0))
            return
        start, end, reinit = invocation_bounds(sig)
        attrs: Dict[str, Any] = {"faas.invocation_id": sig.request_id, "faas.coldstart": bool(sig.cold_start)}
        if getattr(sig, "start_kind", None) and sig.start_kind != "warm":
            attrs["aws.lambda.start_kind"] = sig.start_kind
        if not getattr(sig, "complete", True):
            attrs["aws.lambda.report_missing"] = True
        for name, key in (("billed_duration_ms", "aws.lambda.billed_duration_ms"),
                          ("max_memory_used_mb", "aws.lambda.max_memory_used_mb")):
            v = getattr(sig, name, None)
            if v is not None:   # both integers in Lambda's report: int attributes, not one double, one int
                attrs[key] = int(v) if isinstance(v, float) and v.is_integer() else v
        error_type = None
        if sig.error:
            error_type = sig.error_type or ("Runtime.OutOfMemory" if sig.oom else "timeout" if sig.timeout
                                            else sig.status if sig.status != "success" else "FunctionError")
            attrs["error.type"] = error_type
        status_message = error_type
        events = []
        exc = getattr(sig, "exception", None)
        if sig.error and exc is not None:
            events.append(exception_event(exc, sig, end))
            if getattr(sig, "function_error", False):
                error_type = attrs["error.type"] = exc.type
                status_message = f"{exc.type}: {exc.message}"[:256] if exc.message else exc.type
        constant = self._constant_attributes(getattr(sig, "version", None) or self.function_version,
                                             getattr(sig, "memory_size_mb", None), getattr(sig, "invoked_arn", None))
        # the init span: inside the invocation when it ran inside it (a re-init after a reset), else before it, so
        # not its child (a child outside its parent is drawn off-scale): a sibling, linked from the invocation
        init_id = _random_id(64) if init is not None else None
        links = [(ids.trace_id, init_id, {"aws.lambda.link": "init"})] if init_id is not None and not reinit else []
        self._buffers["traces"].add(encode.span(
            ids.trace_id, ids.span_id, ids.parent_id, self.function_name, encode.KIND_SERVER, _ns(start), _ns(end),
            attrs, status_message if error_type else None, remote_parent=ids.parent_id is not None, extra=constant,
            events=events, links=links))
        for ps in getattr(sig, "spans", ()) or ():
            self._phase_span(ps, ids.trace_id, ids.span_id, (start, end))
        if init is not None:
            if reinit:
                self._emit_init_span(init, ids.trace_id, ids.span_id, init_id, (start, end))
            else:
                self._emit_init_span(init, ids.trace_id, ids.parent_id, init_id, remote_parent=ids.parent_id is not None)

    def _constant_attributes(self, version: str, mem_mb: Optional[int], arn: Optional[str]) -> Tuple[bytes, ...]:
        """The invocation span's attributes that only change with the version, memory size or invoked ARN,
        serialized once per combination (they are most of a span's bytes)."""
        key = (version, mem_mb, arn)
        cached = self._constants.get(key)
        if cached is not None:
            return cached
        attrs: Dict[str, Any] = {"faas.trigger": "other", "faas.name": self.function_name, "faas.version": version,
                                 "cloud.provider": "aws", "cloud.platform": "aws_lambda"}
        if self.region:
            attrs["cloud.region"] = self.region
        if self.instance:
            attrs["faas.instance"] = self.instance
        if mem_mb:
            attrs["faas.max_memory"] = int(mem_mb) * 1024 * 1024
        elif self.max_memory:
            attrs["faas.max_memory"] = self.max_memory
        if arn:
            attrs["aws.lambda.invoked_arn"] = arn
            fields = arn.split(":")
            if len(fields) >= 7:
                attrs["cloud.account.id"] = fields[4]
                resource_id = ":".join(fields[:7])
                if version and version != "$LATEST":
                    resource_id += f":{version}"
                attrs["cloud.resource_id"] = resource_id
        if len(self._constants) >= MAX_CONSTANT_SETS:
            self._constants.clear()
        out = self._constants[key] = tuple(encode.span_attribute(k, v) for k, v in attrs.items())
        return out

    def _phase_span(self, ps: Any, trace_id: int, parent_id: int,
                    within: Optional[Tuple[float, float]] = None) -> None:
        start = float(ps.start)
        end = start + max(0.0, float(ps.duration_ms)) / 1000.0
        if within is not None:      # platform span starts have ms precision: keep the child inside its parent
            start, end = _clamp(start, end, within)
        self._buffers["traces"].add(encode.span(
            trace_id, _random_id(64), parent_id, ps.name, encode.KIND_INTERNAL, _ns(start), _ns(end),
            {"aws.lambda.phase.duration_ms": float(ps.duration_ms)}))

    def _on_init(self, init: Any) -> None:
        self._record_catalog("init", init)
        self._learn_instance(init)
        # The span goes out with the first invocation it served (InvocationSignal.init), as its child;
        # an init that never served one is exported as its own trace at shutdown.
        if _init_key(init) in self._emitted_inits:       # its invocation came first and carried it already
            return
        if len(self._pending_inits) >= MAX_PENDING_INITS:
            # never dropped: an init still waiting after this many others goes out as its own trace
            self._emit_init_span(self._pending_inits.popleft(), None, None)
        self._pending_inits.append(init)

    def _forget_pending(self, init: Any) -> None:
        for p in list(self._pending_inits):
            if _init_key(p) == _init_key(init):
                self._pending_inits.remove(p)

    def _emit_init_span(self, init: Any, trace_id: Optional[int], parent_id: Optional[int],
                        span_id: Optional[int] = None, within: Optional[Tuple[float, float]] = None,
                        remote_parent: bool = False) -> None:
        """The init's span, in the trace of the first invocation it served (inside it for a re-init, else its
        sibling, linked from it), else the root of a trace of its own."""
        self._emitted_inits.append(_init_key(init))
        end = float(init.time)
        duration = getattr(init, "duration_ms", None)
        start = init.start if init.start is not None else (end - duration / 1000.0 if duration else end)
        if within is not None:
            start, end = _clamp(start, end, within)
        attrs = {"faas.coldstart": bool(getattr(init, "cold_start", False)),
                 "aws.lambda.init.type": getattr(init, "initialization_type", "") or "",
                 "aws.lambda.init.phase": getattr(init, "phase", "") or "",
                 "aws.lambda.init.kind": getattr(init, "kind", "") or "",
                 "faas.name": self.function_name}
        if getattr(init, "first_request_id", None):
            attrs["faas.invocation_id"] = init.first_request_id
        error = None
        if getattr(init, "status", "success") != "success":
            error = getattr(init, "error_type", None) or init.status
            attrs["error.type"] = error
        if trace_id is None:
            trace_id, parent_id = _random_id(128), None
        span_id = span_id or _random_id(64)
        self._buffers["traces"].add(encode.span(trace_id, span_id, parent_id, f"init {self.function_name}",
                                                encode.KIND_INTERNAL, _ns(start), _ns(max(end, start)), attrs, error,
                                                remote_parent=remote_parent and parent_id is not None))
        for ps in getattr(init, "spans", ()) or ():
            self._phase_span(ps, trace_id, span_id, (start, max(end, start)))

    def _learn_instance(self, init: Any) -> None:
        """faas.instance from platform.initStart's instanceId (extensions get no AWS_LAMBDA_LOG_STREAM_NAME)."""
        instance = getattr(init, "instance_id", None)
        if instance and instance != self.instance:
            self.instance = instance
            self._constants.clear()
            resource_attrs = self._resource_attributes()
            self._envelopes = {sig: encode.Envelope(sig, resource_attrs, SCOPE, _sidecar_version())
                               for sig in ("traces", "logs", "metrics")}

    def _on_shutdown_signal(self, sig: Any) -> None:
        self._record_catalog("shutdown", sig)
        self._shutdown_reason = getattr(sig, "reason", None)

    # ---- logs ----------------------------------------------------------------------------------------
    def _on_log(self, sig: Any) -> None:
        if not self.logs_enabled:
            return
        if self._dest["logs"].refused_until and time.monotonic() < self._dest["logs"].refused_until:
            self._count("dropped_logs_refused", 1)        # the backend refuses logs: not even encoded
            return
        level = (getattr(sig, "level", None) or "").upper() or None
        extra = [self._log_attribute("log.source", getattr(sig, "source", "function") or "function")]
        rid = getattr(sig, "request_id", None)
        trace_id = span_id = None
        sampled = False
        if rid:
            extra.append(self._log_attribute("faas.invocation_id", rid))
            ids = self._ids_for(rid, getattr(sig, "trace", None), getattr(sig, "invoke_tracing_value", None))
            trace_id, span_id, sampled = ids.trace_id, ids.span_id, ids.sampled
        body, cut = _budget.truncate_utf8(sig.text, self._body_max)   # never buffered whole
        if cut:
            extra.append(self._log_attribute(_budget.TRUNCATED_KEY, True))
            self._count("logs_truncated", 1)
        self._buffers["logs"].add(encode.log_record(
            _ns(sig.time), time.time_ns(), body, SEVERITY.get(level or "", 0), level, {},
            trace_id, span_id, sampled, extra=extra))

    def _log_attribute(self, key: str, value: Any) -> bytes:
        """Serialized once per value: an invocation's lines share their request id, every line its source."""
        cache = self._log_attrs
        kv = cache.get((key, value))
        if kv is None:
            if len(cache) >= 64:
                cache.clear()
            kv = cache[(key, value)] = encode.log_attribute(
                key, _budget.truncate_value(value, self._attr_limit) if isinstance(value, str) else value)
        return kv

    # ---- metrics -------------------------------------------------------------------------------------
    def _catalog_rows(self, signal: str) -> Tuple[Any, ...]:
        return self._rows.get(signal, ())

    def _record_catalog(self, signal: str, sig: Any) -> None:
        agg = self._aggregator
        with self._metrics_lock:
            for m in self._rows.get(signal, ()):
                value = getattr(sig, m.otlp_source_field, None)
                attrs: Tuple[Tuple[str, Any], ...] = ()
                if isinstance(value, bool):
                    amount: Optional[float] = 1.0 if value else None
                elif isinstance(value, str):
                    amount = 1.0 if value else None
                    if m.field == "kind":
                        attrs = (("aws.lambda.init.kind", value),)
                    elif m.field == "reason":
                        attrs = (("reason", value),)
                elif isinstance(value, (int, float)):
                    amount = float(value) * m.otlp_scale
                else:
                    amount = None
                if amount is None:
                    continue
                if m.kind == "histogram":
                    agg.record(m.otlp_name, amount, attrs)
                elif m.kind == "gauge":
                    agg.set(m.otlp_name, amount, attrs)
                elif amount > 0:
                    agg.add(m.otlp_name, amount, attrs)

    def _record_health(self, m: Any, value: float, attrs: Dict[str, Any]) -> None:
        scaled = value * m.otlp_scale
        key_attrs = tuple(sorted(attrs.items()))
        with self._metrics_lock:
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

    def _collect_metrics(self) -> None:
        try:
            with self._metrics_lock:
                metrics, points = self._aggregator.collect(time.time_ns())
            if not points:
                return
            window = self._envelopes["metrics"].block(m.SerializeToString() for m in metrics)
        except Exception as exc:  # noqa: BLE001
            self._error("collect", exc)
            return
        if self.cfg.temporality == "cumulative":
            # a cumulative snapshot supersedes the older ones: nothing is lost by replacing them
            self._buffers["metrics"].clear()
        self._buffers["metrics"].add(window, points)

    # ---- export --------------------------------------------------------------------------------------
    # Export modes: FLUSH runs in the post-runtime window (a request that cannot finish inside it is deferred
    # to the background sender instead of being cut off and retried into the same short window forever);
    # BACKGROUND is the paced sender with the exporter's own timeout; FINAL is shutdown (ignores backoff): a
    # first pass gives every signal one attempt with the whole budget, a second pass the retries.
    def _export_all(self, deadline: float, mode: str) -> None:
        # a post-runtime flush never waits for the background sender: it is already sending
        wait = 0.0 if mode == FLUSH else max(0.0, deadline - time.monotonic())
        if not self._export_lock.acquire(timeout=wait):
            self._count("flush_busy", 1)
            if mode == FLUSH:
                self._defer()      # the sender goes round once more for what this flush would have sent
            return
        try:
            self._load_spool()
            order = ("traces", "logs", "metrics")
            # at shutdown, retries on one signal must not eat the others' first chance
            passes = (FINAL_FIRST, FINAL) if mode == FINAL else (mode,)
            for pass_mode in passes:
                for sig in order:
                    if self._export_raw(sig, deadline, pass_mode):
                        self._export_signal(sig, deadline, pass_mode)
                        self._export_local(sig, deadline, pass_mode)
        finally:
            self._export_lock.release()
        if mode == FLUSH and (any(len(b) for b in self._buffers.values()) or any(self._raw.values())
                              or (self.local_intake is not None and self.local_intake.pending())):
            self._defer()          # the window closed with data left: it leaves while the next invoke runs

    def _load_spool(self) -> None:
        if self._spool_loaded or self._spool is None or any(self._raw.values()):
            return
        self._spool_loaded = True
        try:
            loaded, left = self._spool.load(self._budget.reserve, items_in)
            self._spool_loaded = not left       # what the budget had no room for waits on disk
            for path, sig, items, body in loaded:
                self._raw[sig].append((path, items, body))
                self._count(f"unspooled_{_unit(sig)}", items)
        except Exception as exc:  # noqa: BLE001
            self._error("spool", exc)
        for sig, n in self._spool.take_rejected():      # not a request of ours: deleted, counted
            self._count(f"dropped_{_unit(sig) if sig in self._raw else sig}_spool_invalid", n)

    def _raw_pop(self, sig: str) -> None:
        self._budget.release(len(self._raw[sig].popleft()[2]))

    def _may_send(self, dest: _Destination, deadline: float, mode: str) -> bool:
        now = time.monotonic()
        if now >= deadline:
            return False
        if now < dest.refused_until:
            return False
        if mode not in (FINAL, FINAL_FIRST) and now < dest.backoff.next_attempt:
            self._count("export_skipped_backoff", 1)
            return False
        latency = dest.backoff.latency
        if mode == FLUSH and latency is not None and deadline - now < latency * 1.5 + 0.002:
            self._defer()
            return False
        return True

    def _send(self, sig: str, dest: _Destination, post: Any, weight: int, deadline: float, mode: str,
              splittable: bool = False) -> str:
        """One request (with the retries the deadline allows) -> ok | rejected | retry | deferred; all counted."""
        # a backend already known to be failing gets one attempt, not a retry loop that eats the budget
        attempts = (1 if mode == FINAL_FIRST else FINAL_ATTEMPTS if mode == FINAL
                    else 1 if dest.backoff.failures else 6)
        with self._counts_lock:
            self._inflight[sig] = weight
        t0 = time.monotonic()
        try:
            res: SendResult = send_with_retry(post, deadline, max_attempts=attempts)
        finally:
            with self._counts_lock:
                self._inflight[sig] = 0
        self._count("export_requests", res.attempts)
        if res.attempts > 1:
            self._count("export_retries", res.attempts - 1)
        if res.ok:
            if dest.refused_until:
                dest.refused_until = 0.0
                log.info("OTLP: %s accepted again by %s", sig, redact_url(dest.export.endpoint))
            dest.backoff.ok(time.monotonic() - t0 if res.attempts == 1 else None)
            self._count(f"exported_{_unit(sig)}", weight - min(res.rejected, weight))
            if res.rejected:
                self._count(f"dropped_{_unit(sig)}_partial", min(res.rejected, weight))
            return "ok"
        if res.cut and mode == FLUSH:
            # our window closed, not the backend's fault: no backoff; the background sender takes it on
            self._count("export_deferred", 1)
            self._defer()
            return "deferred"
        if res.status == 413 and splittable:
            # too large for this backend: smaller requests from now on, this batch again in halves
            dest.max_items = max(1, dest.max_items // 2)
            self._count("export_splits", 1)
            return "split"
        self._count("export_failures", 1)
        if _refused(res):
            self._refused(sig, dest, res)
            self._count(f"dropped_{_unit(sig)}_refused", weight)
            return "rejected"
        self._first_failure(sig, res)
        if res.retryable:
            dest.backoff.failed(time.monotonic(), res.retry_after)
            return "retry"
        self._count(f"dropped_{_unit(sig)}_rejected", weight)
        return "rejected"

    def _export_raw(self, sig: str, deadline: float, mode: str) -> bool:
        """Send what an earlier instance spooled (oldest first); False when the backend is not taking data."""
        q, dest = self._raw[sig], self._dest[sig]
        while q:
            path, items, body = q[0]
            if not dest.export.enabled:
                self._raw_pop(sig)
                self._spool.remove(path)  # type: ignore[union-attr]
                self._count(f"disabled_{_unit(sig)}", items)
                continue
            if not self._may_send(dest, deadline, mode):
                return False
            try:
                post = self._post(dest, body)
            except Exception as exc:  # noqa: BLE001 - a damaged file is dropped, counted
                self._error("spool", exc)
                self._raw_pop(sig)
                self._spool.remove(path)  # type: ignore[union-attr]
                self._count(f"dropped_{_unit(sig)}_unencodable", items)
                continue
            outcome = self._send(sig, dest, post, items, deadline, mode)
            if outcome in ("ok", "rejected"):
                self._raw_pop(sig)
                self._spool.remove(path)  # type: ignore[union-attr]
            else:
                return False
        return True

    def _export_signal(self, sig: str, deadline: float, mode: str) -> None:
        buf, dest = self._buffers[sig], self._dest[sig]
        if not dest.export.enabled:
            n = buf.clear()
            if n:
                self._count(f"disabled_{_unit(sig)}", n)
            return
        if time.monotonic() < dest.refused_until:      # the backend does not take this signal: drop, counted
            n = buf.clear()
            if n:
                self._count(f"dropped_{_unit(sig)}_refused", n)
            return
        # small steps inside the post-runtime window: encoding is not interruptible, so a step's size is
        # what a flush can overrun its deadline by
        while len(buf) and self._may_send(dest, deadline, mode):
            size = min(dest.max_items, FLUSH_BATCH) if mode == FLUSH else dest.max_items
            batch = buf.take(size, self._batch_bytes)
            weight = sum(w for _, w in batch)
            try:
                post = self._post(dest, self._encode(sig, [item for item, _ in batch]))
            except Exception as exc:  # noqa: BLE001 - unencodable data is dropped, counted
                self._error("encode", exc)
                self._count(f"dropped_{_unit(sig)}_unencodable", weight)
                continue
            held = sum(len(item) for item, _ in batch)
            self._budget.hold(held)        # on the wire it still counts: new data makes room, not more memory
            try:
                outcome = self._send(sig, dest, post, weight, deadline, mode, splittable=len(batch) > 1)
            finally:
                self._budget.release(held)
            if outcome == "split":
                buf.put_back(batch)
            elif outcome in ("retry", "deferred"):
                buf.put_back(batch)
                return

    def _export_local(self, sig: str, deadline: float, mode: str) -> None:
        """The function's own requests (local_otlp.py) as it sent them, by the same transport and rules."""
        intake, dest = self.local_intake, self._dest[sig]
        if intake is None or not intake.pending(sig):
            return
        off = "disabled" if not dest.export.enabled else "refused" if time.monotonic() < dest.refused_until else None
        local_otlp.forward(intake, sig, lambda body, n: off or self._send(sig, dest, self._post(dest, body), n,
                                                                          deadline, mode, splittable=True),
                           lambda: off is not None or self._may_send(dest, deadline, mode), self._batch_bytes)

    def _defer(self) -> None:
        """Hand the rest to the background sender (it runs while invocations run, paced)."""
        self._deferred = True
        self._start_sender()
        self._wake.set()

    def _encode(self, sig: str, items: List[Any]) -> bytes:
        """One serialized Export*ServiceRequest (http/protobuf's body) of buffered items."""
        if sig == "metrics":      # a buffered item is a whole window (its ResourceMetrics)
            return self._envelopes[sig].join(items)
        return self._envelopes[sig].request(items)

    @staticmethod
    def _post(dest: _Destination, body: bytes) -> Any:
        """The deadline-taking send of one serialized request, in the destination's protocol."""
        if dest.grpc:
            return functools.partial(dest.sender.post_once, dest.request_cls.FromString(body))
        if dest.export.protocol != "http/protobuf":
            raw, ctype = encode_body(dest.request_cls.FromString(body), dest.export.protocol)
            return functools.partial(_post_http, dest.sender, dest.sender.compress(raw), ctype)
        return functools.partial(_post_http, dest.sender, dest.sender.compress(body), "application/x-protobuf")

    def _fill(self) -> float:
        return max([len(b) / max(1, b.limit) for b in self._buffers.values()]
                   + ([self.local_intake.fill()] if self.local_intake is not None else []))

    def _start_sender(self) -> None:
        with self._sender_lock:
            if self._sender is None and not self._closed:
                self._sender = threading.Thread(target=self._send_loop, name="otel-sidecar-otlp-sender",
                                                daemon=True)
                self._sender.start()

    def _send_loop(self) -> None:
        """Background sending (continuous mode, or buffers past HIGH_WATER), its CPU paced to CPU_SHARE of
        wall time (a request blocked on the network costs no CPU and earns no rest; backoff paces retries).

        Timers do not fire while the environment is frozen; this thread simply resumes at the next thaw.
        """
        while not self._closed:
            if not self._deferred:
                self._wake.wait(self._interval if self._continuous else None)
            self._wake.clear()
            if self._closed:
                return
            deferred, self._deferred = self._deferred, False
            if not self._continuous and not deferred and self._fill() < HIGH_WATER:
                continue
            t0, cpu0 = time.monotonic(), time.thread_time()
            before = self._exported()
            try:
                self._count("background_sends", 1)
                if self._continuous:
                    self._collect_metrics()
                self._export_all(t0 + min(10.0, max(1.0, self.cfg.traces.timeout_s)), BACKGROUND)
            except Exception as exc:  # noqa: BLE001
                self._error("sender", exc)
            rest = (time.thread_time() - cpu0) * (1.0 / CPU_SHARE - 1.0)
            if rest > 0 and not self._closed and self._fill() < URGENT:
                self._urgent.wait(rest)
            self._urgent.clear()
            self._wake.clear()
            # go again at once only when still past the high-water mark and the last round got data out
            # (a backend that is backing us off is not hammered)
            if self._fill() >= HIGH_WATER and self._exported() > before:
                self._wake.set()

    def _exported(self) -> int:
        with self._counts_lock:
            return sum(v for k, v in self._counters.items() if k.startswith("exported_"))

    # ---- bookkeeping ---------------------------------------------------------------------------------
    def _dropper(self, sig: str) -> Any:
        def on_drop(reason: str, n: int) -> None:
            self._count(f"dropped_{_unit(sig)}_{reason}", n)
        return on_drop

    def _count(self, key: str, n: int) -> None:
        with self._counts_lock:
            self._counters[key] += n

    def _error(self, where: str, exc: BaseException) -> None:
        key = f"errors_{where}"
        with self._counts_lock:
            first = self._counters[key] == 0
            self._counters[key] += 1
        if first:
            log.error("OTLP: error in %s (%s: %s); counted, continuing", where, type(exc).__name__, exc)

    def _first_failure(self, sig: str, res: SendResult) -> None:
        with self._counts_lock:
            first = not self._failure_logged
            self._failure_logged.add(sig)
        if first:  # one line per sidecar; the rest is counted (health) and summed up at shutdown
            log.warning("OTLP: export of %s to %s failed (%s); data is %s, further failures are only counted",
                        sig, redact_url(self._dest[sig].export.endpoint), res.error or f"HTTP {res.status}",
                        "kept for retry" if res.retryable else "dropped")

    def _refused(self, sig: str, dest: _Destination, res: SendResult) -> None:
        """A permanent refusal: one warning per signal, then that signal waits REPROBE_S before it is tried again."""
        first, dest.refusal_warned = not dest.refusal_warned, True
        dest.refused_until = time.monotonic() + REPROBE_S
        if first:
            log.warning("OTLP: %s refuses %s (%s); %s are dropped (counted in SidecarDropped, reason "
                        "dropped_%s_refused) and tried again every %d minutes", redact_url(dest.export.endpoint), sig,
                        res.error or f"HTTP {res.status}", _unit(sig), _unit(sig), int(REPROBE_S // 60))

    def _resource_attributes(self) -> Dict[str, Any]:
        attrs: Dict[str, Any] = {"telemetry.sdk.language": "python", "telemetry.sdk.name": "otel-sidecar",
                                 "telemetry.sdk.version": _sidecar_version(),
                                 "cloud.provider": "aws", "cloud.platform": "aws_lambda",
                                 "faas.name": self.function_name, "faas.version": self.function_version}
        if self.region:
            attrs["cloud.region"] = self.region
        if self.instance:
            attrs["faas.instance"] = self.instance
        if self.max_memory:
            attrs["faas.max_memory"] = self.max_memory
        attrs["aws.log.group.names"] = (f"/aws/lambda/{self.function_name}",)
        for k, v in self.cfg.resource_attributes:
            attrs[k] = v
        attrs["service.name"] = self.cfg.service_name or dict(self.cfg.resource_attributes).get("service.name") \
            or self.function_name
        return attrs


# ---- helpers ----------------------------------------------------------------------------------------------
def _post_http(sender: HttpSender, body: bytes, ctype: str, deadline: float) -> SendResult:
    return sender.post_once(body, ctype, deadline, compressed=True)


def _sidecar_version() -> str:
    try:
        from .. import __version__

        return str(__version__)
    except Exception:  # noqa: BLE001
        return ""


def invocation_bounds(sig: Any) -> Tuple[float, float, bool]:
    """(start, end, reinit) of an invocation span, each bounded by the events that bound it (lambda-apis.md 4.2,
    4.4): the span starts at platform.start, or at platform.initStart when the init ran inside the invoke (a
    re-init after a reset, phase=invoke: report.durationMs includes it), and lasts report.durationMs, but never
    ends after platform.report, which Lambda emits once the invoke is over."""
    init = getattr(sig, "init", None)
    start = sig.start if sig.start is not None else sig.time
    reinit = bool(init is not None and getattr(init, "phase", None) == "invoke" and init.start is not None
                  and sig.start is not None and init.start <= sig.start)
    if reinit:
        start = init.start
    duration = getattr(sig, "duration_ms", None)
    end = start + duration / 1000.0 if duration is not None and sig.start is not None else sig.time
    if getattr(sig, "complete", True) and sig.time is not None:
        end = min(end, sig.time)
    return start, max(end, start), reinit


def exception_event(exc: Any, sig: Any, end: float) -> Tuple[str, int, Dict[str, Any]]:
    """The OpenTelemetry exception event (exception.type, .message, .stacktrace; bounded by events.py), at
    runtimeDone (the runtime's next /next) when known, else at the span's end."""
    t = end
    if sig.start is not None and getattr(sig, "runtime_duration_ms", None) is not None:
        t = min(end, sig.start + sig.runtime_duration_ms / 1000.0)
    attrs: Dict[str, Any] = {"exception.type": exc.type, "exception.message": exc.message}
    if exc.stacktrace:
        attrs["exception.stacktrace"] = exc.stacktrace
    return "exception", _ns(t), attrs


def _clamp(start: float, end: float, within: Tuple[float, float]) -> Tuple[float, float]:
    lo, hi = within
    start = min(max(start, lo), hi)
    return start, min(max(end, start), hi)


def _refused(res: SendResult) -> bool:
    """Not served at all (HTTP 404/405/501, gRPC UNIMPLEMENTED), as opposed to a bad or unlucky request."""
    return res.status in REFUSED or (res.status is None and "UNIMPLEMENTED" in (res.error or ""))


def _init_key(init: Any) -> Tuple[Any, ...]:
    return (getattr(init, "start", None), getattr(init, "time", None), getattr(init, "phase", None))


def _ns(t: float) -> int:
    return int(round(float(t) * 1e9))


def _unit(sig: str) -> str:
    return {"traces": "spans", "metrics": "metric_points", "logs": "logs"}[sig]


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

