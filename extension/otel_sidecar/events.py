"""Telemetry API JSON -> typed, frozen records (lambda-apis.md 5.3-5.5). Pure, standard library only.

`parse_batch` never raises: an item it cannot use is counted as malformed and the rest of the batch is
kept; unknown event types become `UnknownEvent`; unknown keys are ignored and counted; optional fields
of the wrong type are treated as absent and counted in `invalid_fields`.
All times are epoch seconds (float), all durations milliseconds.
"""

from __future__ import annotations

import calendar
import dataclasses
import json
import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Tuple, Type, TypeVar, Union

TRACE_TYPE = "X-Amzn-Trace-Id"


_C = TypeVar("_C")


def quick_init(cls: Type[_C]) -> Type[_C]:
    """A frozen dataclass whose __init__ fills the instance's dict directly: the same fields, defaults, equality,
    hash and immutability afterwards, in half the time of the generated one (one object.__setattr__ call per
    field; a busy sidecar builds a dozen records per invocation). Classes with __post_init__, fields outside
    __init__ or keyword-only fields keep the generated __init__."""
    fields = dataclasses.fields(cls)
    if hasattr(cls, "__post_init__") or any(not f.init or getattr(f, "kw_only", False) for f in fields):
        return cls
    env: Dict[str, Any] = {"_MISSING": dataclasses.MISSING}
    params, body = [], []
    for f in fields:
        if f.default is not dataclasses.MISSING:
            env[f"_default_{f.name}"] = f.default
            params.append(f"{f.name}=_default_{f.name}")
        elif f.default_factory is not dataclasses.MISSING:
            env[f"_factory_{f.name}"] = f.default_factory
            params.append(f"{f.name}=_MISSING")
            body.append(f"    if {f.name} is _MISSING:\n        {f.name} = _factory_{f.name}()\n")
        else:
            params.append(f.name)
        body.append(f"    d[{f.name!r}] = {f.name}\n")
    src = f"def __init__(self, {', '.join(params)}):\n    d = self.__dict__\n" + "".join(body)
    exec(src, env)  # noqa: S102 - source built above from the class's own field names
    init = env["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    cls.__init__ = init  # type: ignore[misc]
    return cls



# ---- shared types (5.4) ---------------------------------------------------------------------------------
@quick_init
@dataclass(frozen=True)
class PlatformSpan:
    name: str
    start: float
    duration_ms: float

    @property
    def end(self) -> float:
        return self.start + self.duration_ms / 1000.0


@quick_init
@dataclass(frozen=True)
class TraceContext:
    value: str
    span_id: Optional[str] = None
    type: str = TRACE_TYPE


# ---- platform events (5.5) --------------------------------------------------------------------------------
@dataclass(frozen=True)
class InitStart:
    time: float
    initialization_type: str
    phase: str = "init"
    runtime_version: Optional[str] = None
    runtime_version_arn: Optional[str] = None
    function_name: Optional[str] = None
    function_version: Optional[str] = None
    instance_id: Optional[str] = None
    instance_max_memory: Optional[int] = None  # bytes
    tracing: Optional[TraceContext] = None


@dataclass(frozen=True)
class InitRuntimeDone:
    time: float
    initialization_type: str
    phase: str = "init"
    status: str = "success"
    error_type: Optional[str] = None
    spans: Tuple[PlatformSpan, ...] = ()


@dataclass(frozen=True)
class InitReport:
    time: float
    initialization_type: str
    phase: str = "init"
    status: str = "success"
    error_type: Optional[str] = None
    duration_ms: Optional[float] = None
    spans: Tuple[PlatformSpan, ...] = ()


@dataclass(frozen=True)
class RestoreStart:
    time: float
    runtime_version: Optional[str] = None
    runtime_version_arn: Optional[str] = None
    function_name: Optional[str] = None
    function_version: Optional[str] = None
    instance_id: Optional[str] = None
    instance_max_memory: Optional[int] = None


@dataclass(frozen=True)
class RestoreRuntimeDone:
    time: float
    status: str = "success"
    error_type: Optional[str] = None
    spans: Tuple[PlatformSpan, ...] = ()


@dataclass(frozen=True)
class RestoreReport:
    time: float
    status: str = "success"
    error_type: Optional[str] = None
    duration_ms: Optional[float] = None
    spans: Tuple[PlatformSpan, ...] = ()


@quick_init
@dataclass(frozen=True)
class Start:
    time: float
    request_id: str
    version: Optional[str] = None
    tracing: Optional[TraceContext] = None
    tenant_id: Optional[str] = None


@quick_init
@dataclass(frozen=True)
class RuntimeDone:
    time: float
    request_id: str
    status: str = "success"
    error_type: Optional[str] = None
    duration_ms: Optional[float] = None
    produced_bytes: Optional[int] = None
    spans: Tuple[PlatformSpan, ...] = ()
    tracing: Optional[TraceContext] = None
    tenant_id: Optional[str] = None

    def span(self, name: str) -> Optional[PlatformSpan]:
        return _find_span(self.spans, name)


@quick_init
@dataclass(frozen=True)
class Report:
    time: float
    request_id: str
    status: str = "success"
    error_type: Optional[str] = None
    duration_ms: Optional[float] = None
    billed_duration_ms: Optional[int] = None      # an integer in Lambda's report (ceil of the duration)
    memory_size_mb: Optional[int] = None
    max_memory_used_mb: Optional[int] = None
    init_duration_ms: Optional[float] = None
    restore_duration_ms: Optional[float] = None
    spans: Tuple[PlatformSpan, ...] = ()
    tracing: Optional[TraceContext] = None
    tenant_id: Optional[str] = None
    billed_restore_duration_ms: Optional[int] = None   # SnapStart: billed on top of billedDurationMs

    def span(self, name: str) -> Optional[PlatformSpan]:
        return _find_span(self.spans, name)


@dataclass(frozen=True)
class ExtensionState:
    time: float
    name: str
    state: str
    events: Tuple[str, ...] = ()
    error_type: Optional[str] = None


@dataclass(frozen=True)
class TelemetrySubscription:
    time: float
    name: str
    state: str
    types: Tuple[str, ...] = ()


@dataclass(frozen=True)
class LogsDropped:
    time: float
    reason: str = ""
    dropped_records: int = 0
    dropped_bytes: int = 0


@quick_init
@dataclass(frozen=True)
class FunctionLog:
    """One `function` record. `text` is the raw line (trailing newline removed; a JSON record compacted),
    `message` the message part, `fields` the JSON object when the record is (or the line holds) one."""

    time: float
    text: str
    level: Optional[str] = None  # TRACE | DEBUG | INFO | WARN | ERROR | FATAL
    request_id: Optional[str] = None
    fields: Optional[Mapping[str, Any]] = None
    message: str = ""


@quick_init
@dataclass(frozen=True)
class ExtensionLog:
    time: float
    text: str
    level: Optional[str] = None
    request_id: Optional[str] = None
    fields: Optional[Mapping[str, Any]] = None
    message: str = ""


@dataclass(frozen=True)
class UnknownEvent:
    time: float
    type: str
    record: Any = None


Event = Union[InitStart, InitRuntimeDone, InitReport, RestoreStart, RestoreRuntimeDone, RestoreReport, Start,
              RuntimeDone, Report, ExtensionState, TelemetrySubscription, LogsDropped, FunctionLog, ExtensionLog,
              UnknownEvent]


# ---- lifecycle inputs (Extensions API, 2.4) --------------------------------------------------------------
@quick_init
@dataclass(frozen=True)
class Invoke:
    request_id: str
    deadline_ms: int  # epoch milliseconds
    invoked_arn: Optional[str] = None
    tracing_value: Optional[str] = None


@dataclass(frozen=True)
class Shutdown:
    reason: str  # spindown | timeout | failure (lowercased)
    deadline_ms: int


def parse_invoke(body: Mapping[str, Any]) -> Optional[Invoke]:
    """An INVOKE /next body -> Invoke, or None when it lacks a request id."""
    rid = body.get("requestId") if isinstance(body, Mapping) else None
    if not isinstance(rid, str) or not rid:
        return None
    deadline = body.get("deadlineMs")
    tracing = body.get("tracing")
    value = tracing.get("value") if isinstance(tracing, Mapping) else None
    arn = body.get("invokedFunctionArn")
    return Invoke(request_id=rid, deadline_ms=int(deadline) if _is_num(deadline) else 0,
                  invoked_arn=arn if isinstance(arn, str) else None,
                  tracing_value=value if isinstance(value, str) and value else None)


def parse_shutdown(body: Mapping[str, Any]) -> Shutdown:
    """A SHUTDOWN /next body -> Shutdown (reason lowercased, as the DOC prints it in uppercase)."""
    body = body if isinstance(body, Mapping) else {}
    reason = body.get("shutdownReason")
    deadline = body.get("deadlineMs")
    return Shutdown(reason=reason.lower() if isinstance(reason, str) and reason else "spindown",
                    deadline_ms=int(deadline) if _is_num(deadline) else 0)


# ---- parsing --------------------------------------------------------------------------------------------
@quick_init
@dataclass(frozen=True)
class ParsedBatch:
    events: List[Event] = field(default_factory=list)
    malformed: int = 0        # items (or the whole body) that could not be used
    unknown_types: int = 0
    unknown_fields: int = 0   # keys we do not know, in envelopes, records and metrics
    invalid_fields: int = 0   # known optional keys with a value of the wrong type (treated as absent)

    @property
    def items(self) -> int:
        """Items the body held (when it was a JSON array): events + malformed."""
        return len(self.events) + self.malformed


class _Bad(Exception):
    """An item that cannot be used (internal)."""


_TIME_RE = re.compile(r"^(\d{4})-(\d\d)-(\d\d)[Tt ](\d\d):(\d\d):(\d\d)(?:[.,](\d+))?\s*([Zz]|[+-]\d\d:?\d\d)?$")
_UUID_RE = re.compile(r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b")
_LEVELS = {"TRACE": "TRACE", "DEBUG": "DEBUG", "INFO": "INFO", "WARN": "WARN", "WARNING": "WARN",
           "ERROR": "ERROR", "FATAL": "FATAL", "CRITICAL": "FATAL"}
# Python runtime / logging format: "[LEVEL]\t<time>\t<requestId>\t<message>" (the time and id are optional)
_PY_LINE = re.compile(r"^\[(TRACE|DEBUG|INFO|WARN|WARNING|ERROR|FATAL|CRITICAL)\]\s*(.*)$", re.S)
# Node / Java / .NET format: "<time>\t<requestId>\t<LEVEL>\t<message>"
_TAB_LINE = re.compile(r"^(\S+)\t([0-9a-fA-F-]{36}|undefined)\t(TRACE|DEBUG|INFO|WARN|WARNING|ERROR|FATAL)\t(.*)$",
                       re.S)
_MAX_JSON_LINE = 65536

_ENVELOPE_KEYS = frozenset(("time", "type", "record"))
_KNOWN = {
    "platform.initStart": frozenset(("initializationType", "phase", "runtimeVersion", "runtimeVersionArn",
                                     "functionName", "functionVersion", "instanceId", "instanceMaxMemory",
                                     "tracing")),
    "platform.initRuntimeDone": frozenset(("initializationType", "phase", "status", "errorType", "spans",
                                           "tracing")),
    "platform.initReport": frozenset(("initializationType", "phase", "status", "errorType", "metrics", "spans",
                                      "tracing")),
    "platform.restoreStart": frozenset(("runtimeVersion", "runtimeVersionArn", "functionName", "functionVersion",
                                        "instanceId", "instanceMaxMemory")),
    "platform.restoreRuntimeDone": frozenset(("status", "errorType", "spans")),
    "platform.restoreReport": frozenset(("status", "errorType", "metrics", "spans")),
    "platform.start": frozenset(("requestId", "version", "tracing", "tenantId", "functionArn")),
    "platform.runtimeDone": frozenset(("requestId", "status", "errorType", "metrics", "spans", "tracing",
                                       "tenantId")),
    "platform.report": frozenset(("requestId", "status", "errorType", "metrics", "spans", "tracing", "tenantId")),
    "platform.extension": frozenset(("name", "state", "events", "errorType")),
    "platform.telemetrySubscription": frozenset(("name", "state", "types")),
    "platform.logsDropped": frozenset(("droppedBytes", "droppedRecords", "reason")),
}
_METRIC_KEYS = {
    "platform.initReport": frozenset(("durationMs",)),
    "platform.restoreReport": frozenset(("durationMs",)),
    "platform.runtimeDone": frozenset(("durationMs", "producedBytes")),
    "platform.report": frozenset(("durationMs", "billedDurationMs", "memorySizeMB", "maxMemoryUsedMB",
                                  "initDurationMs", "restoreDurationMs", "billedRestoreDurationMs")),
}
_SPAN_KEYS = frozenset(("name", "start", "durationMs"))
_NONE: frozenset = frozenset()
_TRACE_KEYS = frozenset(("spanId", "type", "value"))


_SECONDS: Dict[str, float] = {}  # "YYYY-MM-DDTHH:MM:SS" -> epoch seconds, for the Lambda format's fast path
_TIMES: Dict[str, Optional[float]] = {}  # whole timestamp -> its value: a batch's records and spans share them
_MAX_TIMES = 1024


def parse_time(value: Any) -> Optional[float]:
    """ISO-8601 (`2022-10-12T00:00:15.064Z`, any fraction, optional offset) -> epoch seconds, else None."""
    if type(value) is str:
        t = _TIMES.get(value, _MISSING)
        if t is not _MISSING:
            return t  # type: ignore[return-value]
        t = _parse_time_uncached(value)
        if len(_TIMES) >= _MAX_TIMES:
            _TIMES.clear()
        _TIMES[value] = t
        return t
    if not isinstance(value, str):
        return None
    return _parse_time_uncached(value)


_MISSING = object()


def _parse_time_uncached(value: str) -> Optional[float]:
    # fast path: Lambda's own layout (5.3); records of one batch share their second
    if len(value) == 24 and value[19] == "." and value[23] == "Z":
        base = _SECONDS.get(value[:19])
        frac = value[20:23]
        if base is not None and frac.isdigit():
            return base + int(frac) / 1000.0
        t = _parse_time_slow(value)
        if t is not None and frac.isdigit():
            if len(_SECONDS) >= 512:
                _SECONDS.clear()
            _SECONDS[value[:19]] = t - int(frac) / 1000.0
        return t
    return _parse_time_slow(value)


def _parse_time_slow(value: str) -> Optional[float]:
    m = _TIME_RE.match(value.strip())
    if not m:
        return None
    y, mo, d, h, mi, s, frac, tz = m.groups()
    try:
        t = float(calendar.timegm((int(y), int(mo), int(d), int(h), int(mi), int(s), 0, 0, 0)))
    except (ValueError, OverflowError):
        return None
    if not (1 <= int(mo) <= 12 and 1 <= int(d) <= 31 and int(h) < 24 and int(mi) < 60 and int(s) <= 60):
        return None
    if frac:
        t += int(frac[:9]) / 10 ** len(frac[:9])
    if tz and tz not in ("Z", "z"):
        sign = 1 if tz[0] == "+" else -1
        digits = tz[1:].replace(":", "")
        t -= sign * (int(digits[:2]) * 3600 + int(digits[2:]) * 60)
    return t


_INF = float("inf")


def _is_num(v: Any) -> bool:
    t = type(v)
    if t is int:
        return True
    if t is float:
        return v == v and v != _INF and v != -_INF
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v == v and v not in (_INF, -_INF)


def _find_span(spans: Tuple[PlatformSpan, ...], name: str) -> Optional[PlatformSpan]:
    for s in spans:
        if s.name == name:
            return s
    return None


class _FieldReader:
    """Per-item field access that counts unknown keys and wrong-typed optional values."""

    __slots__ = ("unknown", "invalid")

    def __init__(self) -> None:
        self.unknown = 0
        self.invalid = 0

    def opt_str(self, rec: Mapping[str, Any], key: str) -> Optional[str]:
        v = rec.get(key)
        if v is None:
            return None
        if isinstance(v, str):
            return v
        self.invalid += 1
        return None

    def req_str(self, rec: Mapping[str, Any], key: str) -> str:
        v = rec.get(key)
        if isinstance(v, str) and v:
            return v
        raise _Bad(key)

    def str_or(self, rec: Mapping[str, Any], key: str, default: str) -> str:
        v = self.opt_str(rec, key)
        return v if v else default

    def opt_num(self, rec: Mapping[str, Any], key: str) -> Optional[float]:
        v = rec.get(key)
        if v is None:
            return None
        if _is_num(v):
            return float(v)
        self.invalid += 1
        return None

    def opt_int(self, rec: Mapping[str, Any], key: str) -> Optional[int]:
        v = self.opt_num(rec, key)
        return int(v) if v is not None else None

    def metrics(self, rec: Mapping[str, Any], etype: str) -> Mapping[str, Any]:
        m = rec.get("metrics")
        if m is None:
            return {}
        if not isinstance(m, dict):
            self.invalid += 1
            return {}
        self.unknown += len(m.keys() - _METRIC_KEYS.get(etype, _NONE))
        return m

    def spans(self, rec: Mapping[str, Any]) -> Tuple[PlatformSpan, ...]:
        raw = rec.get("spans")
        if raw is None:
            return ()
        if not isinstance(raw, list):
            self.invalid += 1
            return ()
        out = []
        for s in raw:
            if not isinstance(s, dict):
                self.invalid += 1
                continue
            self.unknown += len(s.keys() - _SPAN_KEYS)
            name, start, dur = s.get("name"), parse_time(s.get("start")), s.get("durationMs")
            if not isinstance(name, str) or start is None or not _is_num(dur):
                self.invalid += 1
                continue
            out.append(PlatformSpan(name=name, start=start, duration_ms=float(dur)))
        return tuple(out)

    def tracing(self, rec: Mapping[str, Any]) -> Optional[TraceContext]:
        t = rec.get("tracing")
        if t is None:
            return None
        if not isinstance(t, dict) or not isinstance(t.get("value"), str) or not t.get("value"):
            self.invalid += 1
            return None
        self.unknown += len(t.keys() - _TRACE_KEYS)
        span_id = t.get("spanId")
        ttype = t.get("type")
        return TraceContext(value=t["value"], span_id=span_id if isinstance(span_id, str) and span_id else None,
                            type=ttype if isinstance(ttype, str) and ttype else TRACE_TYPE)

    def str_tuple(self, rec: Mapping[str, Any], key: str) -> Tuple[str, ...]:
        v = rec.get(key)
        if v is None:
            return ()
        if not isinstance(v, list):
            self.invalid += 1
            return ()
        out = tuple(x for x in v if isinstance(x, str))
        self.invalid += len(v) - len(out)
        return out


def _platform(etype: str, t: float, rec: Any, c: _FieldReader) -> Event:
    # Long on purpose: one branch per platform record type, each building its typed event field by field
    # (lambda-apis.md 4), so that a record's whole mapping reads in one place.
    if not isinstance(rec, dict):
        raise _Bad("record")
    c.unknown += len(rec.keys() - _KNOWN[etype])
    if etype == "platform.start":
        return Start(time=t, request_id=c.req_str(rec, "requestId"), version=c.opt_str(rec, "version"),
                     tracing=c.tracing(rec), tenant_id=c.opt_str(rec, "tenantId"))
    if etype == "platform.runtimeDone":
        m = c.metrics(rec, etype)
        return RuntimeDone(time=t, request_id=c.req_str(rec, "requestId"), status=c.str_or(rec, "status", "success"),
                           error_type=c.opt_str(rec, "errorType"), duration_ms=c.opt_num(m, "durationMs"),
                           produced_bytes=c.opt_int(m, "producedBytes"), spans=c.spans(rec),
                           tracing=c.tracing(rec), tenant_id=c.opt_str(rec, "tenantId"))
    if etype == "platform.report":
        m = c.metrics(rec, etype)
        return Report(time=t, request_id=c.req_str(rec, "requestId"), status=c.str_or(rec, "status", "success"),
                      error_type=c.opt_str(rec, "errorType"), duration_ms=c.opt_num(m, "durationMs"),
                      billed_duration_ms=c.opt_int(m, "billedDurationMs"),
                      memory_size_mb=c.opt_int(m, "memorySizeMB"), max_memory_used_mb=c.opt_int(m, "maxMemoryUsedMB"),
                      init_duration_ms=c.opt_num(m, "initDurationMs"),
                      restore_duration_ms=c.opt_num(m, "restoreDurationMs"), spans=c.spans(rec),
                      tracing=c.tracing(rec), tenant_id=c.opt_str(rec, "tenantId"),
                      billed_restore_duration_ms=c.opt_int(m, "billedRestoreDurationMs"))
    if etype == "platform.initStart":
        return InitStart(time=t, initialization_type=c.str_or(rec, "initializationType", "on-demand"),
                         phase=c.str_or(rec, "phase", "init"), runtime_version=c.opt_str(rec, "runtimeVersion"),
                         runtime_version_arn=c.opt_str(rec, "runtimeVersionArn"),
                         function_name=c.opt_str(rec, "functionName"),
                         function_version=c.opt_str(rec, "functionVersion"), instance_id=c.opt_str(rec, "instanceId"),
                         instance_max_memory=c.opt_int(rec, "instanceMaxMemory"), tracing=c.tracing(rec))
    if etype == "platform.initRuntimeDone":
        return InitRuntimeDone(time=t, initialization_type=c.str_or(rec, "initializationType", "on-demand"),
                               phase=c.str_or(rec, "phase", "init"), status=c.str_or(rec, "status", "success"),
                               error_type=c.opt_str(rec, "errorType"), spans=c.spans(rec))
    if etype == "platform.initReport":
        m = c.metrics(rec, etype)
        return InitReport(time=t, initialization_type=c.str_or(rec, "initializationType", "on-demand"),
                          phase=c.str_or(rec, "phase", "init"), status=c.str_or(rec, "status", "success"),
                          error_type=c.opt_str(rec, "errorType"), duration_ms=c.opt_num(m, "durationMs"),
                          spans=c.spans(rec))
    if etype == "platform.restoreStart":
        mem = rec.get("instanceMaxMemory")
        if isinstance(mem, str) and mem.isdigit():  # the DOC types it as String here (lambda-apis 5.5.4)
            mem_v: Optional[int] = int(mem)
        else:
            mem_v = c.opt_int(rec, "instanceMaxMemory")
        return RestoreStart(time=t, runtime_version=c.opt_str(rec, "runtimeVersion"),
                            runtime_version_arn=c.opt_str(rec, "runtimeVersionArn"),
                            function_name=c.opt_str(rec, "functionName"),
                            function_version=c.opt_str(rec, "functionVersion"),
                            instance_id=c.opt_str(rec, "instanceId"), instance_max_memory=mem_v)
    if etype == "platform.restoreRuntimeDone":
        return RestoreRuntimeDone(time=t, status=c.str_or(rec, "status", "success"),
                                  error_type=c.opt_str(rec, "errorType"), spans=c.spans(rec))
    if etype == "platform.restoreReport":
        m = c.metrics(rec, etype)
        return RestoreReport(time=t, status=c.str_or(rec, "status", "success"), error_type=c.opt_str(rec, "errorType"),
                             duration_ms=c.opt_num(m, "durationMs"), spans=c.spans(rec))
    if etype == "platform.extension":
        return ExtensionState(time=t, name=c.req_str(rec, "name"), state=c.str_or(rec, "state", ""),
                              events=c.str_tuple(rec, "events"), error_type=c.opt_str(rec, "errorType"))
    if etype == "platform.telemetrySubscription":
        return TelemetrySubscription(time=t, name=c.req_str(rec, "name"), state=c.str_or(rec, "state", ""),
                                     types=c.str_tuple(rec, "types"))
    # platform.logsDropped
    return LogsDropped(time=t, reason=c.str_or(rec, "reason", ""),
                       dropped_records=c.opt_int(rec, "droppedRecords") or 0,
                       dropped_bytes=c.opt_int(rec, "droppedBytes") or 0)


def _level(v: Any) -> Optional[str]:
    return _LEVELS.get(v.strip().upper()) if isinstance(v, str) else None


def _fields_request_id(obj: Mapping[str, Any]) -> Optional[str]:
    for key in ("requestId", "request_id", "function_request_id", "aws_request_id", "AWSRequestId"):
        v = obj.get(key)
        if isinstance(v, str) and v:
            return v
    return None


def _from_object(obj: Mapping[str, Any], text: str) -> Tuple[Optional[str], Optional[str], str]:
    level = None
    for key in ("level", "levelname", "severity", "log_level"):
        level = _level(obj.get(key))
        if level:
            break
    msg = obj.get("message")
    if not isinstance(msg, str):
        msg = obj.get("msg") if isinstance(obj.get("msg"), str) else text
    return level, _fields_request_id(obj), msg


def parse_log_line(text: str) -> Tuple[Optional[str], Optional[str], str, Optional[Dict[str, Any]]]:
    """A text log line -> (level, request_id, message, fields-if-the-line-is-a-JSON-object)."""
    stripped = text.strip()
    if stripped.startswith("{") and stripped.endswith("}") and len(stripped) <= _MAX_JSON_LINE:
        try:
            obj = json.loads(stripped)
        except ValueError:
            obj = None
        if isinstance(obj, dict):
            level, rid, msg = _from_object(obj, stripped)
            return level, rid, msg, obj
    m = _PY_LINE.match(text)
    if m:
        level = _LEVELS[m.group(1)]
        rest = m.group(2)
        parts = rest.split("\t", 2)
        if len(parts) == 3 and parse_time(parts[0]) is not None and _UUID_RE.fullmatch(parts[1]):
            return level, parts[1], parts[2], None
        if len(parts) >= 2 and parse_time(parts[0]) is not None:
            rid = parts[1] if _UUID_RE.fullmatch(parts[1]) else None
            return level, rid, parts[-1] if rid else "\t".join(parts[1:]), None
        return level, None, rest, None
    m = _TAB_LINE.match(text)
    if m:
        rid = m.group(2) if m.group(2) != "undefined" else None
        return _LEVELS[m.group(3)], rid, m.group(4), None
    return None, None, text, None


def _log(etype: str, t: float, rec: Any) -> Event:
    cls = FunctionLog if etype == "function" else ExtensionLog
    if isinstance(rec, str):
        text = rec[:-1] if rec.endswith("\n") else rec
        if text.endswith("\r"):
            text = text[:-1]
        level, rid, msg, fields = parse_log_line(text)
        return cls(time=t, text=text, level=level, request_id=rid, fields=fields, message=msg)
    if isinstance(rec, dict):
        text = json.dumps(rec, separators=(",", ":"), ensure_ascii=False, default=str)
        level, rid, msg = _from_object(rec, text)
        return cls(time=t, text=text, level=level, request_id=rid, fields=rec, message=msg)
    raise _Bad("record")


def parse_event(item: Any, ctx: Optional[_FieldReader] = None) -> Event:
    """One envelope dict -> Event; raises ValueError when it cannot be used."""
    c = ctx or _FieldReader()
    try:
        return _parse_item(item, c)
    except _Bad as e:
        raise ValueError(f"unusable telemetry item: {e}") from None


def _parse_item(item: Any, c: _FieldReader) -> Event:
    if not isinstance(item, dict):
        raise _Bad("item")
    etype = item.get("type")
    t = parse_time(item.get("time"))
    if not isinstance(etype, str) or not etype or t is None:
        raise _Bad("type/time")
    c.unknown += len(item.keys() - _ENVELOPE_KEYS)
    rec = item.get("record")
    if etype in _KNOWN:
        return _platform(etype, t, rec, c)
    if etype in ("function", "extension"):
        return _log(etype, t, rec)
    return UnknownEvent(time=t, type=etype, record=rec)


def parse_items(items: Any) -> ParsedBatch:
    """A decoded JSON value (normally a list of envelopes) -> ParsedBatch."""
    if not isinstance(items, list):
        return ParsedBatch(malformed=1)
    events: List[Event] = []
    malformed = unknown_types = unknown_fields = invalid = 0
    for item in items:
        c = _FieldReader()
        try:
            ev = _parse_item(item, c)
        except _Bad:
            malformed += 1
            continue
        except Exception:  # noqa: BLE001 - a parser bug must cost one item, never the batch
            malformed += 1
            continue
        if isinstance(ev, UnknownEvent):
            unknown_types += 1
        events.append(ev)
        unknown_fields += c.unknown
        invalid += c.invalid
    return ParsedBatch(events=events, malformed=malformed, unknown_types=unknown_types,
                       unknown_fields=unknown_fields, invalid_fields=invalid)


def parse_batch(body: Union[bytes, bytearray, str]) -> ParsedBatch:
    """A Telemetry API POST body (a JSON array of envelopes) -> ParsedBatch. Never raises."""
    try:
        items = json.loads(body)
    except (ValueError, TypeError, RecursionError):
        return ParsedBatch(malformed=1)
    try:
        return parse_items(items)
    except RecursionError:
        return ParsedBatch(malformed=1)


def parse_batch_skimming_logs(body: Union[bytes, bytearray, str]) -> List[Union[ParsedBatch, Tuple[str, ...]]]:
    """parse_batch for a sidecar that is behind: runs of text-format `function` records come back as tuples of
    their lines, not as FunctionLog events (the costly part of a log flood), in stream order between the
    ParsedBatches of the other records, so that platform records are never lost to a log flood. Never raises."""
    try:
        items = json.loads(body)
    except (ValueError, TypeError, RecursionError):
        return [ParsedBatch(malformed=1)]
    if not isinstance(items, list):
        return [ParsedBatch(malformed=1)]
    out: List[Union[ParsedBatch, Tuple[str, ...]]] = []
    run: List[str] = []
    others: List[Any] = []
    for item in items:
        record = item.get("record") if isinstance(item, dict) else None
        if isinstance(record, str) and item.get("type") == "function":
            if others:
                out.append(parse_items(others))
                others = []
            run.append(record)
        else:
            if run:
                out.append(tuple(run))
                run = []
            others.append(item)
    if others:
        out.append(parse_items(others))
    if run:
        out.append(tuple(run))
    return out


# ---- the exception a runtime printed (for the invocation span's exception event) ----------------------------
MAX_EXCEPTION_TYPE = 256
MAX_EXCEPTION_MESSAGE = 1024
MAX_EXCEPTION_STACK = 4096
_MAX_EXCEPTION_SCAN = 65536          # only this much of a line is searched (bounded work per line)
# awslambdaric: "[ERROR] <Type>: <message>" then "Traceback (most recent call last):" and the frames, one record
# (lines joined by \n on the telemetry FD, by \r on plain stdout); a bare "[ERROR] MemoryError" before a traceback
_PY_ERROR = re.compile(r"\[ERROR\] ([A-Za-z_][\w.]*)(?::[ \t]?([^\r\n]*))?(?:[\r\n]+(.*))?\Z", re.S)


@dataclass(frozen=True)
class ExceptionInfo:
    type: str
    message: str
    stacktrace: Optional[str] = None


def _clip(s: str, n: int) -> str:
    return s if len(s) <= n else s[:n - 3] + "..."


def _exception(etype: Any, message: Any, stack: Any) -> Optional[ExceptionInfo]:
    if not isinstance(etype, str) or not etype.strip():
        return None
    if isinstance(stack, list):
        stack = "".join(x if x.endswith("\n") else x + "\n" for x in stack if isinstance(x, str)).rstrip("\n")
    stack = stack.replace("\r", "\n") if isinstance(stack, str) and stack.strip() else None
    return ExceptionInfo(_clip(etype.strip(), MAX_EXCEPTION_TYPE),
                         _clip(message if isinstance(message, str) else "", MAX_EXCEPTION_MESSAGE),
                         _clip(stack, MAX_EXCEPTION_STACK) if stack else None)


def exception_of(log: FunctionLog) -> Optional[ExceptionInfo]:
    """The exception a function log record reports, if it reports one: the JSON log format's (or a JSON
    line's) errorType / errorMessage / stackTrace (Node: stack), or awslambdaric's text "[ERROR] Type: message"
    with its traceback. Bounded: type 256, message 1 KiB, stack trace 4 KiB (clipped with "...")."""
    f = log.fields
    if f is not None:
        return _exception(f.get("errorType"), f.get("errorMessage"), f.get("stackTrace") or f.get("stack"))
    text = log.text[:_MAX_EXCEPTION_SCAN]
    if not text.startswith("[ERROR] "):
        if log.level == "ERROR" and "{" in log.message and len(log.message) <= _MAX_EXCEPTION_SCAN:
            # Node: "<time>\t<requestId>\tERROR\tInvoke Error \t{"errorType":...,"stack":[...]}"
            try:
                obj = json.loads(log.message[log.message.index("{"):])
            except (ValueError, RecursionError):
                return None
            if isinstance(obj, dict):
                return _exception(obj.get("errorType"), obj.get("errorMessage"), obj.get("stack"))
        return None
    m = _PY_ERROR.match(text)
    if m is None:
        return None
    etype, message, rest = m.group(1), m.group(2), m.group(3)
    if message is None and not (rest or "").startswith("Traceback"):
        return None      # "[ERROR] something" printed by the function, not an exception
    return _exception(etype, message or "", rest)
