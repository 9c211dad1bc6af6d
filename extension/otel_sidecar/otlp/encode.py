"""OTLP protobuf built straight from the sidecar's signals, with the opentelemetry-proto classes.

Why not SDK spans and log records fed to the exporter's encoders: the SDK is made to instrument running
code; here every span is complete when it is built. Creating SDK objects only to encode them again cost
more CPU than everything else the sidecar does per invocation, and buffered SDK objects weigh ~20 times
their encoded size. So each span and log record is serialized once, when it is accepted, and buffered as
bytes. A request is then assembled by framing: in protobuf a repeated field is its elements written one
after another, and a message is its fields in any order, so `ScopeSpans{scope, spans...}` is the scope's
bytes followed by each span's bytes, each behind its field tag and length. Nothing is decoded or encoded
twice; tests check the assembled requests against the official classes.
"""

from __future__ import annotations

import struct
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, InstrumentationScope, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
from opentelemetry.proto.metrics.v1.metrics_pb2 import ResourceMetrics, ScopeMetrics
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

KIND_SERVER = Span.SPAN_KIND_SERVER
KIND_INTERNAL = Span.SPAN_KIND_INTERNAL
STATUS_ERROR = Status.STATUS_CODE_ERROR
FLAG_SAMPLED = 0x01                      # W3C trace-flags, the low byte of Span.flags / LogRecord.flags
FLAG_HAS_IS_REMOTE = 0x100               # SpanFlags: whether the parent is remote is known...
FLAG_IS_REMOTE = 0x200                   # ...and it is (the function's X-Ray segment)


_SMALL = tuple(bytes((n,)) for n in range(128))


def varint(n: int) -> bytes:
    if 0 <= n < 128:
        return _SMALL[n]
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def framed(field_number: int, payload: bytes) -> bytes:
    """A length-delimited field (wire type 2): tag, length, payload."""
    n = len(payload)
    return varint(field_number << 3 | 2) + (_SMALL[n] if n < 128 else varint(n)) + payload


def _number(message_cls: Any, name: str) -> int:
    return message_cls.DESCRIPTOR.fields_by_name[name].number


_SPAN_ATTRIBUTES = _number(Span, "attributes")
_LOG_ATTRIBUTES = _number(LogRecord, "attributes")


def any_value(value: Any) -> AnyValue:
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    if isinstance(value, (list, tuple)):
        return AnyValue(array_value=ArrayValue(values=[any_value(v) for v in value]))
    return AnyValue(string_value=str(value))


def attributes(attrs: Mapping[str, Any]) -> List[KeyValue]:
    return [KeyValue(key=k, value=any_value(v)) for k, v in attrs.items() if v is not None]


class Envelope:
    """Resource and scope of every request of one signal, serialized once.

    `block(items)` is one Resource{Spans,Logs,Metrics} holding the serialized items (spans, log records or
    Metric messages); `join(blocks)` makes a request of several (metrics: one block per collection window);
    `request(items)` is both at once."""

    def __init__(self, signal: str, resource_attrs: Mapping[str, Any], scope_name: str,
                 scope_version: str = "") -> None:
        if signal == "traces":
            request_cls, resource_cls, scope_cls, items = ExportTraceServiceRequest, ResourceSpans, ScopeSpans, "spans"
            outer, inner = "resource_spans", "scope_spans"
        elif signal == "logs":
            request_cls, resource_cls, scope_cls, items = ExportLogsServiceRequest, ResourceLogs, ScopeLogs, "log_records"
            outer, inner = "resource_logs", "scope_logs"
        elif signal == "metrics":
            request_cls, resource_cls, scope_cls, items = (ExportMetricsServiceRequest, ResourceMetrics, ScopeMetrics,
                                                           "metrics")
            outer, inner = "resource_metrics", "scope_metrics"
        else:
            raise ValueError(f"no envelope for {signal!r}")
        self._outer = _number(request_cls, outer)
        self._inner = _number(resource_cls, inner)
        self._item = _number(scope_cls, items)
        resource = Resource(attributes=attributes(resource_attrs)).SerializeToString()
        scope = InstrumentationScope(name=scope_name, version=scope_version).SerializeToString()
        self._resource_field = framed(_number(resource_cls, "resource"), resource)
        self._scope_field = framed(_number(scope_cls, "scope"), scope)

    def block(self, items: Iterable[bytes]) -> bytes:
        tag = varint(self._item << 3 | 2)
        small = _SMALL
        scoped = self._scope_field + b"".join([tag + (small[len(b)] if len(b) < 128 else varint(len(b))) + b
                                               for b in items])
        return self._resource_field + framed(self._inner, scoped)

    def join(self, blocks: Iterable[bytes]) -> bytes:
        return b"".join(framed(self._outer, b) for b in blocks)

    def request(self, items: Iterable[bytes]) -> bytes:
        return self.join([self.block(items)])


def span(trace_id: int, span_id: int, parent_id: Optional[int], name: str, kind: int, start_ns: int,
         end_ns: int, attrs: Mapping[str, Any], error: Optional[str] = None, remote_parent: bool = False,
         extra: Sequence[bytes] = (), events: Sequence[Tuple[str, int, Mapping[str, Any]]] = (),
         links: Sequence[Tuple[int, int, Mapping[str, Any]]] = ()) -> bytes:
    """One serialized Span (sampled: the sidecar only builds the spans it exports).

    `extra`: more attributes, already serialized as Span fields by span_attribute() (constant ones, built once).
    `events`: (name, time_ns, attributes), e.g. the OpenTelemetry "exception" event; `links`: (trace id, span id,
    attributes) of related spans (sampled ones: the sidecar only links spans it exports).

    Written straight in the wire format, fields in number order as the official encoder writes them (the same
    bytes: tests/otlp/test_encode.py compares them); building the message objects cost ~3x as much CPU.
    """
    end_ns = max(start_ns, end_ns)
    parts = [b"\x0a\x10", trace_id.to_bytes(16, "big"), b"\x12\x08", span_id.to_bytes(8, "big")]
    if parent_id:
        parts += (b"\x22\x08", parent_id.to_bytes(8, "big"))
    if name:
        field = _NAMES.get(name)
        if field is None:
            if len(_NAMES) >= _MAX_KEYS:
                _NAMES.clear()
            field = _NAMES[name] = _string_field(0x2A, name)
        parts.append(field)
    if kind:
        parts += (b"\x30", varint(kind))
    if start_ns:
        parts += (b"\x39", _fixed64(start_ns))
    if end_ns:
        parts += (b"\x41", _fixed64(end_ns))
    for k, v in attrs.items():
        if v is not None:
            parts.append(_field(0x4A, key_value(k, v)))
    for ev_name, ev_ns, ev_attrs in events:
        t = min(max(ev_ns, start_ns), end_ns)
        ev = [b"\x09" + _fixed64(t)] if t else []
        if ev_name:
            ev.append(_string_field(0x12, ev_name))
        ev += [_field(0x1A, key_value(k, v)) for k, v in ev_attrs.items() if v is not None]
        parts.append(_field(0x5A, b"".join(ev)))
    for l_trace, l_span, l_attrs in links:
        link = [b"\x0a\x10", l_trace.to_bytes(16, "big"), b"\x12\x08", l_span.to_bytes(8, "big")]
        link += [_field(0x22, key_value(k, v)) for k, v in l_attrs.items() if v is not None]
        link.append(_LINK_FLAGS)
        parts.append(_field(0x6A, b"".join(link)))
    if error is not None:
        message = error.encode("utf-8")
        status = (b"\x12" + varint(len(message)) + message if message else b"") + _STATUS_CODE_ERROR
        parts.append(_field(0x7A, status))
    parts.append(_SPAN_FLAGS_REMOTE if remote_parent else _SPAN_FLAGS)
    parts.extend(extra)
    return b"".join(parts)


# ---- the wire format of the few message shapes the mappers build per item (proto3: defaults are omitted,
# a oneof member is written even when it holds its default) ----------------------------------------------
_Q = struct.Struct("<Q").pack
_D = struct.Struct("<d").pack
_I = struct.Struct("<I").pack
_SPAN_FLAGS = b"\x85\x01" + _I(FLAG_SAMPLED | FLAG_HAS_IS_REMOTE)                     # Span.flags (16, fixed32)
_SPAN_FLAGS_REMOTE = b"\x85\x01" + _I(FLAG_SAMPLED | FLAG_HAS_IS_REMOTE | FLAG_IS_REMOTE)
_LINK_FLAGS = b"\x35" + _I(FLAG_SAMPLED | FLAG_HAS_IS_REMOTE)                           # Link.flags (6, fixed32)
_STATUS_CODE_ERROR = b"\x18" + bytes((STATUS_ERROR,))                                  # Status.code (3)
_KEYS: Dict[str, bytes] = {}                # attribute key -> its serialized KeyValue.key field
_NAMES: Dict[str, bytes] = {}               # span name -> its serialized Span.name field (a handful of names)
_MAX_KEYS = 256


def _fixed64(n: int) -> bytes:
    if not 0 <= n < 1 << 64:
        raise ValueError(f"fixed64 out of range: {n}")
    return _Q(n)


def _field(tag: int, payload: bytes) -> bytes:
    """A length-delimited field whose tag fits one byte."""
    n = len(payload)
    return _SMALL[tag] + (_SMALL[n] if n < 128 else varint(n)) + payload if tag < 128 else \
        varint(tag) + varint(n) + payload


def _string_field(tag: int, text: str) -> bytes:
    return _field(tag, text.encode("utf-8"))


def any_value_bytes(value: Any) -> bytes:
    """A serialized AnyValue (what any_value(value).SerializeToString() gives)."""
    if isinstance(value, bool):
        return b"\x10\x01" if value else b"\x10\x00"
    if isinstance(value, int):
        if not -(1 << 63) <= value < 1 << 63:
            raise ValueError(f"int64 out of range: {value}")
        return b"\x18" + varint(value & 0xFFFFFFFFFFFFFFFF)
    if isinstance(value, float):
        return b"\x21" + _D(value)
    if isinstance(value, (list, tuple)):
        return _field(0x2A, b"".join(_field(0x0A, any_value_bytes(v)) for v in value))
    return _string_field(0x0A, str(value))


def key_value(key: str, value: Any) -> bytes:
    """A serialized KeyValue (key, value): the key's bytes are kept (the mappers use a few dozen keys)."""
    k = _KEYS.get(key)
    if k is None:
        if len(_KEYS) >= _MAX_KEYS:
            _KEYS.clear()
        k = _KEYS[key] = _string_field(0x0A, key) if key else b""
    t = type(value)
    if t is float:              # the common types first: no call beyond the packing
        return k + b"\x12\x09\x21" + _D(value)
    if t is bool:
        return k + (b"\x12\x02\x10\x01" if value else b"\x12\x02\x10\x00")
    if t is str:
        raw = value.encode("utf-8")
        n = len(raw)
        if n < 126:             # AnyValue{string_value} and its frame both fit one length byte
            return k + _SMALL[0x12] + _SMALL[n + 2] + b"\x0a" + _SMALL[n] + raw
    return k + _field(0x12, any_value_bytes(value))


def span_attribute(key: str, value: Any) -> bytes:
    """One attribute serialized as a Span field (for `span(extra=...)`)."""
    return framed(_SPAN_ATTRIBUTES, key_value(key, value))


def log_attribute(key: str, value: Any) -> bytes:
    """One attribute serialized as a LogRecord field (for `log_record(extra=...)`)."""
    return framed(_LOG_ATTRIBUTES, key_value(key, value))


def log_record(time_ns: int, observed_ns: int, body: str, severity_number: int, severity_text: Optional[str],
               attrs: Mapping[str, Any], trace_id: Optional[int] = None, span_id: Optional[int] = None,
               sampled: bool = False, extra: Sequence[bytes] = ()) -> bytes:
    """One serialized LogRecord; `extra`: attributes from log_attribute(). Wire format written directly, fields
    in number order (the official encoder's bytes, as span())."""
    parts = [b"\x09" + _fixed64(time_ns)] if time_ns else []
    if severity_number:
        parts.append(b"\x10" + varint(severity_number))
    if severity_text:
        parts.append(_string_field(0x1A, severity_text))
    parts.append(_field(0x2A, _string_field(0x0A, body)))
    for k, v in attrs.items():
        if v is not None:
            parts.append(_field(0x32, key_value(k, v)))
    if trace_id and span_id:
        if sampled:
            parts.append(b"\x45" + _I(FLAG_SAMPLED))
        parts += (b"\x4a\x10", trace_id.to_bytes(16, "big"), b"\x52\x08", span_id.to_bytes(8, "big"))
    if observed_ns:
        parts.append(b"\x59" + _fixed64(observed_ns))
    parts.extend(extra)
    return b"".join(parts)
