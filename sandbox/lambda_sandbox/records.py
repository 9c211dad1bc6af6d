"""Builders of the exact Telemetry API record shapes (lambda-apis.md 5.3-5.6). Pure functions.

Every builder returns the `record` dict (not the envelope); `envelope()` wraps it. Times are epoch
seconds (float), durations milliseconds. Optional fields are omitted, never sent as null.
"""

from __future__ import annotations

import datetime as _dt
import json
from typing import Any, Iterable, Mapping, Optional, Sequence, Union

SCHEMA_VERSIONS = ("2022-07-01", "2022-12-13", "2025-01-29")
LMI_SCHEMA = "2025-01-29"  # the only version Lambda Managed Instances accept (platform-2025.md 1.4)
LEGACY_SCHEMA = "2022-07-01"  # log records are always strings in this version (5.6)
TRACE_TYPE = "X-Amzn-Trace-Id"
LOGS_DROPPED_REASON = (
    "Some logs were dropped because the downstream consumer is slower than the logs production rate"
)
MB = 1024 * 1024

SpanLike = Union[Mapping[str, Any], Sequence[Any]]


def iso(t: float) -> str:
    """Epoch seconds -> `2006-01-02T15:04:05.000Z` (UTC, millisecond precision, Z suffix).

    Milliseconds are truncated, as Go's time formatting does (rounded to the microsecond first so
    float noise does not drop a millisecond).
    """
    ms = int(round(t * 1_000_000)) // 1000
    d = _dt.datetime.fromtimestamp(ms // 1000, tz=_dt.timezone.utc)
    return f"{d.strftime('%Y-%m-%dT%H:%M:%S')}.{ms % 1000:03d}Z"


def ms(value: float) -> float:
    """A millisecond duration with at most 3 decimals (microsecond resolution)."""
    return round(float(value), 3)


def envelope(type: str, record: Any, time: float) -> dict:
    """The event envelope of 5.3: {"time", "type", "record"}."""
    return {"time": iso(time), "type": type, "record": record}


def span(name: str, start: float, duration_ms: float) -> dict:
    return {"name": name, "start": iso(start), "durationMs": ms(duration_ms)}


def trace_context(value: str, span_id: Optional[str] = None) -> dict:
    """The `tracing` object of 5.4 (spanId only in Active mode)."""
    out: dict = {}
    if span_id:
        out["spanId"] = span_id
    out["type"] = TRACE_TYPE
    out["value"] = value
    return out


def _tracing(tracing: Any) -> Optional[dict]:
    if tracing is None:
        return None
    if isinstance(tracing, str):
        return trace_context(tracing)
    t = dict(tracing)
    return trace_context(t["value"], t.get("spanId") or t.get("span_id"))


def _spans(spans: Iterable[SpanLike]) -> list:
    out = []
    for s in spans or ():
        if isinstance(s, Mapping):
            start = s["start"]
            if isinstance(start, str):
                out.append({"name": s["name"], "start": start, "durationMs": ms(s["durationMs"])})
            else:
                out.append(span(s["name"], start, s.get("durationMs", s.get("duration_ms", 0.0))))
        else:
            name, start, duration = s
            out.append(span(name, start, duration))
    return out


def _put_optional(rec: dict, *, error_type: Optional[str] = None, spans: Iterable[SpanLike] = (),
                  tracing: Any = None) -> dict:
    if error_type:
        rec["errorType"] = error_type
    sp = _spans(spans)
    if sp:
        rec["spans"] = sp
    tr = _tracing(tracing)
    if tr:
        rec["tracing"] = tr
    return rec


# ---- init -------------------------------------------------------------------------------------


def init_start(*, initialization_type: str, phase: str, runtime_version: Optional[str],
               runtime_version_arn: Optional[str], function_name: str, function_version: str,
               instance_id: Optional[str], instance_max_memory_mb: Optional[int], tracing: Any = None) -> dict:
    """platform.initStart (5.5.1); instanceMaxMemory is in bytes."""
    rec: dict = {"initializationType": initialization_type, "phase": phase}
    if runtime_version:
        rec["runtimeVersion"] = runtime_version
    if runtime_version_arn:
        rec["runtimeVersionArn"] = runtime_version_arn
    rec["functionName"] = function_name
    rec["functionVersion"] = function_version
    if instance_id:
        rec["instanceId"] = instance_id
    if instance_max_memory_mb is not None:
        rec["instanceMaxMemory"] = int(instance_max_memory_mb) * MB
    return _put_optional(rec, tracing=tracing)


def init_runtime_done(*, initialization_type: str, phase: str, status: str, error_type: Optional[str] = None,
                      spans: Iterable[SpanLike] = ()) -> dict:
    """platform.initRuntimeDone (5.5.2)."""
    rec = {"initializationType": initialization_type, "phase": phase, "status": status}
    return _put_optional(rec, error_type=error_type, spans=spans)


def init_report(*, initialization_type: str, phase: str, status: str, duration_ms: float,
                error_type: Optional[str] = None, spans: Iterable[SpanLike] = ()) -> dict:
    """platform.initReport (5.5.3)."""
    rec: dict = {"initializationType": initialization_type, "phase": phase, "status": status}
    if error_type:
        rec["errorType"] = error_type
    rec["metrics"] = {"durationMs": ms(duration_ms)}
    return _put_optional(rec, spans=spans)


def restore_start(*, function_name: str, function_version: str, runtime_version: Optional[str] = None,
                  runtime_version_arn: Optional[str] = None, instance_id: Optional[str] = None,
                  instance_max_memory_mb: Optional[int] = None) -> dict:
    """platform.restoreStart (5.5.4)."""
    rec: dict = {}
    if runtime_version:
        rec["runtimeVersion"] = runtime_version
    if runtime_version_arn:
        rec["runtimeVersionArn"] = runtime_version_arn
    rec["functionName"] = function_name
    rec["functionVersion"] = function_version
    if instance_id:
        rec["instanceId"] = instance_id
    if instance_max_memory_mb is not None:
        rec["instanceMaxMemory"] = int(instance_max_memory_mb) * MB
    return rec


def restore_runtime_done(*, status: str, error_type: Optional[str] = None,
                         spans: Iterable[SpanLike] = ()) -> dict:
    """platform.restoreRuntimeDone (5.5.5)."""
    return _put_optional({"status": status}, error_type=error_type, spans=spans)


def restore_report(*, status: str, duration_ms: Optional[float] = None, error_type: Optional[str] = None,
                   spans: Iterable[SpanLike] = ()) -> dict:
    """platform.restoreReport (5.5.6)."""
    rec: dict = {"status": status}
    if error_type:
        rec["errorType"] = error_type
    if duration_ms is not None:
        rec["metrics"] = {"durationMs": ms(duration_ms)}
    return _put_optional(rec, spans=spans)


# ---- invoke -----------------------------------------------------------------------------------


def start(*, request_id: str, version: Optional[str], tracing: Any = None,
          tenant_id: Optional[str] = None, function_arn: Optional[str] = None) -> dict:
    """platform.start (5.5.7); `functionArn` as 2025 records carry it (LMI, tenant isolation)."""
    rec: dict = {"requestId": request_id}
    if version is not None:
        rec["version"] = version
    if function_arn:
        rec["functionArn"] = function_arn
    _put_optional(rec, tracing=tracing)
    if tenant_id:
        rec["tenantId"] = tenant_id
    return rec


def runtime_done(*, request_id: str, status: str, error_type: Optional[str] = None, duration_ms: float,
                 produced_bytes: Optional[int] = 0, start_time: Optional[float] = None,
                 response_latency_ms: Optional[float] = None, response_duration_ms: Optional[float] = None,
                 runtime_overhead_ms: Optional[float] = None, tracing: Any = None,
                 tenant_id: Optional[str] = None) -> dict:
    """platform.runtimeDone (5.5.8).

    `start_time` is when the invoke was handed to the runtime. responseLatency/responseDuration are
    included only when given (runtime used /response), runtimeOverhead only when given; pass None for
    the /error, timeout and crash paths, where real captures carry no spans.
    """
    rec: dict = {"requestId": request_id, "status": status}
    if error_type:
        rec["errorType"] = error_type
    metrics: dict = {"durationMs": ms(duration_ms)}
    if produced_bytes is not None:
        metrics["producedBytes"] = int(produced_bytes)
    rec["metrics"] = metrics
    spans = []
    if start_time is not None:
        t = start_time
        if response_latency_ms is not None:
            spans.append(span("responseLatency", t, response_latency_ms))
            t += response_latency_ms / 1000.0
            if response_duration_ms is not None:
                spans.append(span("responseDuration", t, response_duration_ms))
                t += response_duration_ms / 1000.0
        if runtime_overhead_ms is not None:
            spans.append(span("runtimeOverhead", t, runtime_overhead_ms))
    if spans:
        rec["spans"] = spans
    _put_optional(rec, tracing=tracing)
    if tenant_id:
        rec["tenantId"] = tenant_id
    return rec


def report(*, request_id: str, status: str, error_type: Optional[str] = None, duration_ms: float,
           billed_duration_ms: int, memory_size_mb: int, max_memory_used_mb: int,
           init_duration_ms: Optional[float] = None, restore_duration_ms: Optional[float] = None,
           spans: Iterable[SpanLike] = (), tracing: Any = None, tenant_id: Optional[str] = None,
           billed_restore_duration_ms: Optional[int] = None) -> dict:
    """platform.report (5.5.9); `spans` normally holds extensionOverhead when extensions are active."""
    rec: dict = {"requestId": request_id, "status": status}
    if error_type:
        rec["errorType"] = error_type
    metrics: dict = {
        "durationMs": ms(duration_ms),
        "billedDurationMs": int(billed_duration_ms),
        "memorySizeMB": int(memory_size_mb),
        "maxMemoryUsedMB": int(max_memory_used_mb),
    }
    if init_duration_ms is not None:
        metrics["initDurationMs"] = ms(init_duration_ms)
    if restore_duration_ms is not None:
        metrics["restoreDurationMs"] = ms(restore_duration_ms)
    if billed_restore_duration_ms is not None:
        metrics["billedRestoreDurationMs"] = int(billed_restore_duration_ms)
    rec["metrics"] = metrics
    _put_optional(rec, spans=spans, tracing=tracing)
    if tenant_id:
        rec["tenantId"] = tenant_id
    return rec


def lmi_report(*, request_id: str, status: str, error_type: Optional[str] = None, duration_ms: float,
               spans: Iterable[SpanLike] = (), tracing: Any = None, tenant_id: Optional[str] = None) -> dict:
    """platform.report of Lambda Managed Instances (platform-2025.md 1.5): `metrics` holds only
    `durationMs`; `spans` are responseLatency/responseDuration (there is no runtimeDone)."""
    rec: dict = {"requestId": request_id, "status": status}
    if error_type:
        rec["errorType"] = error_type
    rec["metrics"] = {"durationMs": ms(duration_ms)}
    _put_optional(rec, spans=spans, tracing=tracing)
    if tenant_id:
        rec["tenantId"] = tenant_id
    return rec


# ---- others -----------------------------------------------------------------------------------


def extension(*, name: str, state: str, events: Sequence[str], error_type: Optional[str] = None) -> dict:
    """platform.extension (5.5.10)."""
    rec: dict = {"name": name, "state": state, "events": list(events or [])}
    if error_type:
        rec["errorType"] = error_type
    return rec


def telemetry_subscription(*, name: str, state: str = "Subscribed", types: Sequence[str]) -> dict:
    """platform.telemetrySubscription (5.5.11)."""
    return {"name": name, "state": state, "types": list(types)}


def logs_dropped(*, reason: str = LOGS_DROPPED_REASON, dropped_records: int, dropped_bytes: int) -> dict:
    """platform.logsDropped (5.5.12)."""
    return {"droppedBytes": int(dropped_bytes), "droppedRecords": int(dropped_records), "reason": reason}


# ---- log records (5.5.13) -----------------------------------------------------------------------

LEVELS = ("TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL")
_LEVEL_ALIASES = {"WARNING": "WARN", "CRITICAL": "FATAL"}


def normalize_level(level: Optional[str]) -> Optional[str]:
    """'warning' -> 'WARN', 'critical' -> 'FATAL'; unknown values are upper-cased and kept."""
    if not level:
        return None
    up = str(level).strip().upper()
    return _LEVEL_ALIASES.get(up, up)


def level_rank(level: Optional[str]) -> int:
    """Position in TRACE < DEBUG < INFO < WARN < ERROR < FATAL; unknown/None rank as INFO."""
    lv = normalize_level(level)
    return LEVELS.index(lv) if lv in LEVELS else LEVELS.index("INFO")


def text_log_record(text: str, *, keep_newline: bool = True) -> str:
    """A Text-format log record: the line as written, trailing newline kept by default (5.5.13)."""
    body = text[:-1] if text.endswith("\n") else text
    return body + "\n" if keep_newline else body


def json_log_record(text: str, *, time: float, level: Optional[str] = None, request_id: Optional[str] = None,
                    wrap_text: bool = True, tenant_id: Optional[str] = None) -> Union[dict, str]:
    """A JSON-format log record: a JSON-object line as itself; other lines wrapped as
    {timestamp, level, requestId?, message} (the LMI observation, 5.5.13/7.9) or kept as a string."""
    stripped = text.rstrip("\n")
    candidate = stripped.strip()
    if candidate.startswith("{"):
        try:
            obj = json.loads(candidate)
        except ValueError:
            obj = None
        if isinstance(obj, dict):
            return obj
    if not wrap_text:
        return stripped
    rec: dict = {"timestamp": iso(time), "level": normalize_level(level) or "INFO"}
    if request_id:
        rec["requestId"] = request_id
        if tenant_id:
            rec["tenantId"] = tenant_id   # JSON logs of a tenant-isolated function (platform-2025.md 2)
    rec["message"] = stripped
    return rec


def record_level(record: Any) -> Optional[str]:
    """The level of a JSON log record (its `level` key), else None."""
    if isinstance(record, dict):
        lv = record.get("level")
        return normalize_level(lv) if isinstance(lv, str) else None
    return None


def adapt_for_schema(event: dict, schema_version: str, legacy_record: Optional[str] = None) -> dict:
    """The envelope as a subscriber with `schema_version` sees it (5.6): with 2022-07-01, log records
    are always strings (the raw line), even in JSON log format. Platform records are not filtered."""
    if schema_version != LEGACY_SCHEMA or event["type"] not in ("function", "extension"):
        return event
    rec = event["record"]
    if isinstance(rec, str):
        return event
    text = legacy_record if legacy_record is not None else json.dumps(rec, separators=(",", ":")) + "\n"
    return {"time": event["time"], "type": event["type"], "record": text}


def category(event_type: str) -> str:
    """Subscription type of an event: 'platform' for platform.*, else the type itself."""
    return "platform" if event_type.startswith("platform.") else event_type
