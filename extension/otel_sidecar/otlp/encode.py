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

from typing import Any, Iterable, List, Mapping, Optional, Sequence, Tuple

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


def varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def framed(field_number: int, payload: bytes) -> bytes:
    """A length-delimited field (wire type 2): tag, length, payload."""
    return varint(field_number << 3 | 2) + varint(len(payload)) + payload


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
        item = self._item
        scoped = self._scope_field + b"".join(framed(item, b) for b in items)
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
    """
    msg = Span(trace_id=trace_id.to_bytes(16, "big"), span_id=span_id.to_bytes(8, "big"), name=name, kind=kind,
               start_time_unix_nano=start_ns, end_time_unix_nano=max(start_ns, end_ns),
               attributes=attributes(attrs),
               flags=FLAG_SAMPLED | FLAG_HAS_IS_REMOTE | (FLAG_IS_REMOTE if remote_parent else 0))
    if parent_id:
        msg.parent_span_id = parent_id.to_bytes(8, "big")
    for ev_name, ev_ns, ev_attrs in events:
        msg.events.add(name=ev_name, time_unix_nano=min(max(ev_ns, start_ns), max(start_ns, end_ns)),
                       attributes=attributes(ev_attrs))
    for l_trace, l_span, l_attrs in links:
        msg.links.add(trace_id=l_trace.to_bytes(16, "big"), span_id=l_span.to_bytes(8, "big"),
                      attributes=attributes(l_attrs), flags=FLAG_SAMPLED | FLAG_HAS_IS_REMOTE)
    if error is not None:
        msg.status.code = STATUS_ERROR
        msg.status.message = error
    return msg.SerializeToString() + b"".join(extra)


def span_attribute(key: str, value: Any) -> bytes:
    """One attribute serialized as a Span field (for `span(extra=...)`)."""
    return framed(_SPAN_ATTRIBUTES, KeyValue(key=key, value=any_value(value)).SerializeToString())


def log_attribute(key: str, value: Any) -> bytes:
    """One attribute serialized as a LogRecord field (for `log_record(extra=...)`)."""
    return framed(_LOG_ATTRIBUTES, KeyValue(key=key, value=any_value(value)).SerializeToString())


def log_record(time_ns: int, observed_ns: int, body: str, severity_number: int, severity_text: Optional[str],
               attrs: Mapping[str, Any], trace_id: Optional[int] = None, span_id: Optional[int] = None,
               sampled: bool = False, extra: Sequence[bytes] = ()) -> bytes:
    """One serialized LogRecord; `extra`: attributes from log_attribute()."""
    msg = LogRecord(time_unix_nano=time_ns, observed_time_unix_nano=observed_ns, severity_number=severity_number,
                    body=AnyValue(string_value=body))
    if attrs:
        msg.attributes.extend(attributes(attrs))
    if severity_text:
        msg.severity_text = severity_text
    if trace_id and span_id:
        msg.trace_id = trace_id.to_bytes(16, "big")
        msg.span_id = span_id.to_bytes(8, "big")
        msg.flags = FLAG_SAMPLED if sampled else 0
    return msg.SerializeToString() + b"".join(extra)



