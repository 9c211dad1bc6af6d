"""Signals -> OTLP spans (serialized at once into the traces buffer), with semantic-convention attributes.

- the invocation span (SERVER) joins the function's X-Ray trace when the platform names one (trace ids:
  TraceIdRegistry, shared with the log records so that logs and span agree);
- its platform phase spans (responseLatency, ...) are its children, kept inside it;
- the init span goes out with the first invocation it served: inside it for a re-init (phase=invoke), else
  as its sibling, linked from it; an init that never served one becomes a trace of its own (at shutdown, or
  when more than MAX_PENDING_INITS wait).
"""

from __future__ import annotations

import collections
import random
from dataclasses import dataclass
from typing import Any, Deque, Dict, List, Optional, Tuple

from ..signals import InitSignal, InvocationSignal
from . import encode
from .buffer import SignalBuffer
from .counts import SinkCounters
from .resource import FunctionResource
from .traceids import parse_xray, valid_span_id

_IDS = random.Random()          # own generator: never disturbs (or races on) the global one
MAX_TRACKED_IDS = 512           # request id -> span ids of invocations whose span is not built yet, so that
                                # their logs (which come first) and the span agree
MAX_PENDING_INITS = 16
MAX_CONSTANT_SETS = 16          # (version, memory, invoked ARN) combinations whose span attributes are cached

Window = Tuple[float, float]


@dataclass
class SpanIds:
    trace_id: int
    span_id: int
    parent_id: Optional[int]   # the function's X-Ray segment (a remote parent), when the header names one
    sampled: bool
    rank: int = 0          # what the ids came from: 0 nothing, 1 an X-Ray header, 2 a header + Lambda's spanId


def random_id(bits: int) -> int:
    while True:
        value = _IDS.getrandbits(bits)
        if value:
            return value


def ns(t: float) -> int:
    return int(round(float(t) * 1e9))


class TraceIdRegistry:
    """The trace and span ids of each invocation, decided at first sight (its logs come before its span)."""

    def __init__(self, always_sample: bool, parent_mode: str = "none") -> None:
        self.always_sample = always_sample
        # SIDECAR_SPAN_PARENT: "none" makes the invocation a root span of the X-Ray trace (OTLP backends list
        # it); "xray" puts it under Lambda's segment, which only X-Ray has (local_otlp.invocation_parent)
        self.parent_mode = parent_mode
        self._by_request: collections.OrderedDict[str, SpanIds] = collections.OrderedDict()

    def ids_for(self, request_id: Optional[str], trace: Any, invoke_value: Optional[str]) -> SpanIds:
        value = getattr(trace, "value", None) if trace is not None else None
        xr = parse_xray(value) or parse_xray(invoke_value)
        span_id = valid_span_id(getattr(trace, "span_id", None) if trace is not None else None)
        rank = 0 if xr is None else 2 if span_id else 1
        cached = self._by_request.get(request_id) if request_id else None
        # first sight wins (logs and span agree), unless a later signal knows the trace better: joining the
        # function's trace matters more than matching a few early log lines
        if cached is not None and cached.rank >= rank:
            return cached
        if xr is not None:
            parent = int(xr.parent_id, 16) if xr.parent_id is not None and self.parent_mode == "xray" else None
            sid = int(span_id, 16) if span_id and span_id != xr.parent_id else random_id(64)
            ids = SpanIds(int(xr.trace_id, 16), sid, parent, xr.sampled is not False or self.always_sample, rank)
        else:
            ids = SpanIds(random_id(128), random_id(64), None, True)
        if request_id:
            self._by_request[request_id] = ids
            while len(self._by_request) > MAX_TRACKED_IDS:
                self._by_request.popitem(last=False)
        return ids

    def forget(self, request_id: str) -> None:
        self._by_request.pop(request_id, None)


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
    return "exception", ns(t), attrs


def clamp(start: float, end: float, within: Window) -> Window:
    lo, hi = within
    start = min(max(start, lo), hi)
    return start, min(max(end, start), hi)


def error_type_of(sig: InvocationSignal) -> Optional[str]:
    """error.type of a failed invocation (None when it did not fail)."""
    if not sig.error:
        return None
    return sig.error_type or ("Runtime.OutOfMemory" if sig.oom else "timeout" if sig.timeout
                              else sig.status if sig.status != "success" else "FunctionError")


def mode_attributes(sig: Any) -> Dict[str, Any]:
    """The invocation span's attributes of the platform modes (modes.py): tenant isolation's tenant id,
    a durable function's marks, Lambda Managed Instances, a SnapStart restore's duration."""
    attrs: Dict[str, Any] = {}
    tenant = getattr(sig, "tenant_id", None)
    if tenant:
        attrs["aws.lambda.tenant_id"] = tenant
    if getattr(sig, "durable", False):
        attrs["aws.lambda.durable_function"] = True
        arn = getattr(sig, "durable_execution_arn", None)
        if arn:
            attrs["aws.lambda.durable.execution_arn"] = arn
            name_id = arn.split("/durable-execution/", 1)[1].split("/")
            if len(name_id) >= 2:
                attrs["aws.lambda.durable.execution_name"] = name_id[0]
                attrs["aws.lambda.durable.execution_id"] = name_id[1]
    if getattr(sig, "managed_instances", False):
        attrs["aws.lambda.managed_instances"] = True
    restore = getattr(sig, "restore_duration_ms", None)
    if restore is not None:
        attrs["aws.lambda.snapstart.restore_duration_ms"] = float(restore)
    return attrs


def _init_key(init: Any) -> Tuple[Any, ...]:
    return (getattr(init, "start", None), getattr(init, "time", None), getattr(init, "phase", None))


class SpanMapper:
    """InvocationSignal / InitSignal -> spans in the traces buffer."""

    def __init__(self, traces: SignalBuffer, resource: FunctionResource, ids: TraceIdRegistry,
                 counters: SinkCounters) -> None:
        self.traces = traces
        self.resource = resource
        self.ids = ids
        self.counters = counters
        self._constants: Dict[Tuple[Any, ...], Tuple[bytes, ...]] = {}
        self._pending_inits: Deque[InitSignal] = collections.deque()
        self._emitted_inits: Deque[Tuple[Any, ...]] = collections.deque(maxlen=64)

    # ---- invocations -------------------------------------------------------------------------------------
    def invocation(self, sig: InvocationSignal) -> None:
        ids = self.ids.ids_for(sig.request_id, sig.trace, sig.invoke_tracing_value)
        self.ids.forget(sig.request_id)    # its logs came before it: nothing will ask again
        init = sig.init
        if init is not None:
            self._forget_pending(init)
            self.learn_instance(init)
        if not ids.sampled:
            self.counters.count("spans_unsampled", 1 + len(sig.spans or ()) + (1 if init is not None else 0))
            return
        start, end, reinit = invocation_bounds(sig)
        attrs, error_type, status_message, events = self._invocation_attributes(sig, end)
        constant = self._constant_attributes(sig.version or self.resource.function_version, sig.memory_size_mb,
                                             sig.invoked_arn)
        # the init span: inside the invocation when it ran inside it (a re-init after a reset), else before it, so
        # not its child (a child outside its parent is drawn off-scale): a sibling, linked from the invocation
        init_id = random_id(64) if init is not None else None
        links = [(ids.trace_id, init_id, {"aws.lambda.link": "init"})] if init_id is not None and not reinit else []
        batch = [encode.span(
            ids.trace_id, ids.span_id, ids.parent_id, self.resource.function_name, encode.KIND_SERVER, ns(start),
            ns(end), attrs, status_message if error_type else None, remote_parent=ids.parent_id is not None,
            extra=constant, events=events, links=links)]
        batch += [self._phase_span_bytes(ps, ids.trace_id, ids.span_id, (start, end)) for ps in sig.spans or ()]
        self.traces.add_many(batch)     # one lock and one budget check for the invocation's spans
        if init is not None:
            if reinit:
                self._init_span(init, ids.trace_id, ids.span_id, init_id, (start, end))
            else:
                self._init_span(init, ids.trace_id, ids.parent_id, init_id, remote_parent=ids.parent_id is not None)

    @staticmethod
    def _invocation_attributes(sig: InvocationSignal, end: float
                               ) -> Tuple[Dict[str, Any], Optional[str], Optional[str], List[Any]]:
        """(attributes, error.type, status message, events) of the invocation span."""
        attrs: Dict[str, Any] = {"faas.invocation_id": sig.request_id, "faas.coldstart": bool(sig.cold_start)}
        if sig.start_kind and sig.start_kind != "warm":
            attrs["aws.lambda.start_kind"] = sig.start_kind
        if not sig.complete:
            attrs["aws.lambda.report_missing"] = True
        for name, key in (("billed_duration_ms", "aws.lambda.billed_duration_ms"),
                          ("max_memory_used_mb", "aws.lambda.max_memory_used_mb")):
            v = getattr(sig, name)
            if v is not None:   # both integers in Lambda's report: int attributes, not one double, one int
                attrs[key] = int(v) if isinstance(v, float) and v.is_integer() else v
        attrs.update(mode_attributes(sig))
        error_type = error_type_of(sig)
        if error_type is not None:
            attrs["error.type"] = error_type
        status_message = error_type
        events = []
        exc = sig.exception
        if sig.error and exc is not None:
            events.append(exception_event(exc, sig, end))
            if sig.function_error:
                error_type = attrs["error.type"] = exc.type
                status_message = f"{exc.type}: {exc.message}"[:256] if exc.message else exc.type
        return attrs, error_type, status_message, events

    def _constant_attributes(self, version: str, mem_mb: Optional[int], arn: Optional[str]) -> Tuple[bytes, ...]:
        """The invocation span's attributes that only change with the version, memory size or invoked ARN,
        serialized once per combination (they are most of a span's bytes)."""
        key = (version, mem_mb, arn)
        cached = self._constants.get(key)
        if cached is not None:
            return cached
        res = self.resource
        attrs: Dict[str, Any] = {"faas.trigger": "other", "faas.name": res.function_name, "faas.version": version,
                                 "cloud.provider": "aws", "cloud.platform": "aws_lambda"}
        if res.region:
            attrs["cloud.region"] = res.region
        if res.instance:
            attrs["faas.instance"] = res.instance
        if mem_mb:
            attrs["faas.max_memory"] = int(mem_mb) * 1024 * 1024
        elif res.max_memory:
            attrs["faas.max_memory"] = res.max_memory
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

    def _phase_span(self, ps: Any, trace_id: int, parent_id: int, within: Optional[Window] = None) -> None:
        self.traces.add(self._phase_span_bytes(ps, trace_id, parent_id, within))

    @staticmethod
    def _phase_span_bytes(ps: Any, trace_id: int, parent_id: int, within: Optional[Window] = None) -> bytes:
        start = float(ps.start)
        end = start + max(0.0, float(ps.duration_ms)) / 1000.0
        if within is not None:      # platform span starts have ms precision: keep the child inside its parent
            start, end = clamp(start, end, within)
        return encode.span(trace_id, random_id(64), parent_id, ps.name, encode.KIND_INTERNAL, ns(start), ns(end),
                           {"aws.lambda.phase.duration_ms": float(ps.duration_ms)})

    # ---- inits -------------------------------------------------------------------------------------------
    def init(self, init: InitSignal) -> None:
        """An init on its own: its span waits for the first invocation it served (InvocationSignal.init)."""
        self.learn_instance(init)
        if _init_key(init) in self._emitted_inits:       # its invocation came first and carried it already
            return
        if len(self._pending_inits) >= MAX_PENDING_INITS:
            # never dropped: an init still waiting after this many others goes out as its own trace
            self._init_span(self._pending_inits.popleft(), None, None)
        self._pending_inits.append(init)

    def flush_pending_inits(self) -> None:
        """At shutdown: every init that never served an invocation, as a trace of its own."""
        for init in list(self._pending_inits):
            self._init_span(init, None, None)
        self._pending_inits.clear()

    def _forget_pending(self, init: InitSignal) -> None:
        for p in list(self._pending_inits):
            if _init_key(p) == _init_key(init):
                self._pending_inits.remove(p)

    def _init_span(self, init: InitSignal, trace_id: Optional[int], parent_id: Optional[int],
                   span_id: Optional[int] = None, within: Optional[Window] = None,
                   remote_parent: bool = False) -> None:
        """The init's span, in the trace of the first invocation it served (inside it for a re-init, else its
        sibling, linked from it), else the root of a trace of its own."""
        self._emitted_inits.append(_init_key(init))
        end = float(init.time)
        duration = init.duration_ms
        start = init.start if init.start is not None else (end - duration / 1000.0 if duration else end)
        if within is not None:
            start, end = clamp(start, end, within)
        name = self.resource.function_name
        attrs = {"faas.coldstart": bool(init.cold_start),
                 "aws.lambda.init.type": init.initialization_type or "",
                 "aws.lambda.init.phase": init.phase or "",
                 "aws.lambda.init.kind": init.kind or "",
                 "faas.name": name}
        if init.first_request_id:
            attrs["faas.invocation_id"] = init.first_request_id
        if init.durable:
            attrs["aws.lambda.durable_function"] = True
        if init.restored and init.restore_duration_ms is not None:
            attrs["aws.lambda.snapstart.restore_duration_ms"] = float(init.restore_duration_ms)
        error = None
        if init.status != "success":
            error = init.error_type or init.status
            attrs["error.type"] = error
        if trace_id is None:
            trace_id, parent_id = random_id(128), None
        span_id = span_id or random_id(64)
        self.traces.add(encode.span(trace_id, span_id, parent_id, f"init {name}", encode.KIND_INTERNAL, ns(start),
                                    ns(max(end, start)), attrs, error,
                                    remote_parent=remote_parent and parent_id is not None))
        for ps in init.spans or ():
            self._phase_span(ps, trace_id, span_id, (start, max(end, start)))

    def learn_instance(self, init: InitSignal) -> None:
        if self.resource.learn_instance(init.instance_id):
            self._constants.clear()
