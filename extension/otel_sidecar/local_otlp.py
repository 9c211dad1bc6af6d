"""The function's own telemetry: the pure core of the local OTLP/HTTP intake (local_otlp_server.py is the shell).

The function's OpenTelemetry SDK posts Export{Trace,Metrics,Logs}ServiceRequest bodies (protobuf or OTLP JSON,
maybe gzip) to 127.0.0.1:4318; `Intake.receive` turns one body into an answer at once (never 429/503, which
would make the in-handler SDK retry and wait) and queues the request's Resource{Spans,Metrics,Logs} blocks as
the function sent them, each followed by a Resource holding the Lambda attributes it lacked (serialized
protobuf merges a repeated occurrence of a message field: the block's resource gains those attributes and
keeps its own). The flush policy later takes whole export requests out (`Intake.take`, `forward`) and sends
them with the sidecar's transport, never on the response path.

Start-up discipline: this module is imported before `register` (the port must listen before the runtime's
init can run), so it imports only `collections` and `threading`. Protobuf is loaded by `Intake.warm()` on the
worker thread once the first response is out (the OTLP sink loads it then anyway); a request that arrives
earlier is queued as received (bounded, not parsed: its answer is a plain success) and checked at warm-up,
when a malformed one is dropped and counted. From then on each request is parsed on arrival and a malformed
one gets 400 with a google.rpc.Status body.
"""

from __future__ import annotations

import collections
import threading

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations are never evaluated: typing stays off the path to the first /next
    from typing import Any, Callable, Deque, Dict, List, Mapping, Optional, Tuple

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 4318
MAX_BODY = 4 * 1024 * 1024          # a request on the wire (compressed or not); above it 413, unread
MAX_INFLATED = 8 * 1024 * 1024      # a gzip body inflated: above it 413 (a 4 MB gzip bomb never becomes 4 GB)
DEFAULT_QUEUE_BYTES = 1024 * 1024   # the queue's bound before the worker sizes it from the memory budget
MIN_QUEUE_BYTES = 256 * 1024
PATHS = {b"/v1/traces": "traces", b"/v1/metrics": "metrics", b"/v1/logs": "logs"}
UNIT = {"traces": "spans", "metrics": "data_points", "logs": "log_records"}
SPAN_PARENTS = ("none", "xray")
MODES = ("auto", "on", "off")
# the variables that make the sidecar export OTLP at all (worker.OTLP_ENDPOINT_VARS): `auto` listens only then,
# so an EMF-only sidecar never takes the port another extension (a collector layer) may want
EXPORT_VARS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
               "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
               "OPENTELEMETRY_COLLECTOR_CONFIG_URI", "SIDECAR_COLLECTOR_CONFIG")
OWN_USER_AGENT = "otel-sidecar"      # our own exporter's User-Agent prefix (otlp/transport.py): a loop
RPC_INVALID_ARGUMENT = 3
RPC_RESOURCE_EXHAUSTED = 8
RPC_UNIMPLEMENTED = 12
_REJECTED_FIELD = {"traces": "rejectedSpans", "metrics": "rejectedDataPoints", "logs": "rejectedLogRecords"}
_ID_KEYS = frozenset(("traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id"))


# ---- configuration (pure) ------------------------------------------------------------------------------------

LocalConfig = collections.namedtuple("LocalConfig", "enabled host port span_parent why")


def load_config(env: Mapping[str, str]) -> Tuple[Any, List[str]]:
    """(LocalConfig, warnings) from SIDECAR_LOCAL_OTLP, SIDECAR_LOCAL_OTLP_ENDPOINT, SIDECAR_SPAN_PARENT.

    Each invalid value: one warning naming the variable, the value and what is used instead."""
    warnings: List[str] = []
    mode = (env.get("SIDECAR_LOCAL_OTLP") or "").strip().lower() or "auto"
    mode = {"true": "on", "1": "on", "yes": "on", "false": "off", "0": "off", "no": "off"}.get(mode, mode)
    if mode not in MODES:
        warnings.append(f"SIDECAR_LOCAL_OTLP={_show(env.get('SIDECAR_LOCAL_OTLP'))} is invalid (expected auto, on "
                        f"or off); using 'auto' instead")
        mode = "auto"
    host, port = DEFAULT_HOST, DEFAULT_PORT
    raw = (env.get("SIDECAR_LOCAL_OTLP_ENDPOINT") or "").strip()
    if raw:
        parsed = parse_endpoint(raw)
        if parsed is None:
            warnings.append(f"SIDECAR_LOCAL_OTLP_ENDPOINT={_show(raw)} is invalid (expected a loopback "
                            f"host:port such as 127.0.0.1:4318); using '{DEFAULT_HOST}:{DEFAULT_PORT}' instead")
        else:
            host, port = parsed
    parent = (env.get("SIDECAR_SPAN_PARENT") or "").strip().lower() or "none"
    if parent not in SPAN_PARENTS:
        warnings.append(f"SIDECAR_SPAN_PARENT={_show(env.get('SIDECAR_SPAN_PARENT'))} is invalid (expected none or "
                        f"xray); using 'none' instead")
        parent = "none"
    if mode == "off":
        return LocalConfig(False, host, port, parent, "SIDECAR_LOCAL_OTLP=off"), warnings
    if mode == "auto" and not any((env.get(v) or "").strip() for v in EXPORT_VARS):
        return LocalConfig(False, host, port, parent, "no OTLP export is configured"), warnings
    return LocalConfig(True, host, port, parent, ""), warnings


def parse_endpoint(raw: str) -> Optional[Tuple[str, int]]:
    """`[http://]host:port[/]` with a loopback host -> (address to bind, port); None when invalid."""
    text = raw.strip()
    if text.lower().startswith("http://"):
        text = text[7:]
    text = text.rstrip("/")
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        port_s = rest[1:] if rest.startswith(":") else ""
        if not sep:
            return None
    else:
        host, _, port_s = text.rpartition(":")
    if not port_s.isdigit() or not port_s.isascii() or len(port_s) > 5:
        return None
    port = int(port_s)
    if not 1 <= port <= 65535:
        return None
    low = host.lower()
    if low in ("localhost", ""):
        return DEFAULT_HOST, port
    if low == "::1":
        return "::1", port
    parts = low.split(".")
    if len(parts) == 4 and parts[0] == "127" and all(p.isdigit() and p.isascii() and int(p) < 256 for p in parts):
        return low, port
    return None                        # never a non-loopback address: the endpoint is for this machine only


def _show(value: Any) -> str:
    return repr(str(value)[:60])


# ---- trace parent of the sidecar's invocation span (pure) ---------------------------------------------------

def invocation_parent(header: Optional[str], mode: str = "none") -> Optional[Tuple[str, Optional[str]]]:
    """X-Ray header -> (trace id, parent span id or None) of the sidecar's invocation span; None without a Root.

    `xray`: the parent is the header's Parent (Lambda's own segment, which only X-Ray has: an OTLP backend
    shows the invocation span under a missing parent). `none` (default): no parent, so OTLP backends list the
    invocation as the trace's root span; the trace id stays the X-Ray one, so the function's spans (whose parent
    is the invocation span's id, `tracing.spanId`) and X-Ray's segments share the trace."""
    if not header:
        return None
    fields: Dict[str, str] = {}
    for part in header.split(";"):
        key, sep, value = part.partition("=")
        if sep:
            fields.setdefault(key.strip(), value.strip())
    root = fields.get("Root", "")
    bits = root.split("-")
    if len(bits) != 3 or bits[0] != "1" or len(bits[1]) != 8 or len(bits[2]) != 24 or not _is_hex(bits[1] + bits[2]):
        return None
    trace_id = (bits[1] + bits[2]).lower()
    if trace_id == "0" * 32:
        return None
    parent = fields.get("Parent", "").lower()
    if mode != "xray" or len(parent) != 16 or not _is_hex(parent) or parent == "0" * 16:
        return trace_id, None
    return trace_id, parent


def _is_hex(text: str) -> bool:
    return bool(text) and text.isascii() and not text.strip("0123456789abcdefABCDEF")


# ---- protobuf wire format by hand (replies and the enrichment need no protobuf import) -----------------------

def varint(n: int) -> bytes:
    n &= (1 << 64) - 1
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def field_bytes(number: int, data: bytes) -> bytes:
    """A length-delimited field: tag, length, data."""
    return varint(number << 3 | 2) + varint(len(data)) + data


def field_varint(number: int, n: int) -> bytes:
    return varint(number << 3) + varint(n)


def _read_varint(buf: Any, pos: int) -> Tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise ValueError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def split_field(buf: bytes, number: int = 1) -> List[bytes]:
    """The payloads of every occurrence of length-delimited field `number` at the top level of a message
    (other fields skipped by their wire type); ValueError on bad framing."""
    out: List[bytes] = []
    view = memoryview(buf)
    pos, end = 0, len(buf)
    while pos < end:
        tag, pos = _read_varint(view, pos)
        wire, num = tag & 7, tag >> 3
        if wire == 0:
            _, pos = _read_varint(view, pos)
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        elif wire == 2:
            size, pos = _read_varint(view, pos)
            if pos + size > end:
                raise ValueError("truncated field")
            if num == number:
                out.append(bytes(view[pos:pos + size]))
            pos += size
        else:
            raise ValueError(f"wire type {wire}")
        if pos > end:
            raise ValueError("truncated field")
    return out


def any_value(value: Any) -> bytes:
    """An AnyValue: string (1), bool (2), int (3), double (4), array of strings (5)."""
    if isinstance(value, bool):
        return field_varint(2, int(value))
    if isinstance(value, int):
        return field_varint(3, value)
    if isinstance(value, float):
        import struct

        return varint(4 << 3 | 1) + struct.pack("<d", value)
    if isinstance(value, (tuple, list)):
        return field_bytes(5, b"".join(field_bytes(1, any_value(v)) for v in value))
    return field_bytes(1, str(value).encode("utf-8"))


def key_value(key: str, value: Any) -> bytes:
    return field_bytes(1, key.encode("utf-8")) + field_bytes(2, any_value(value))


def lambda_resource(env: Mapping[str, str]) -> Tuple[Tuple[str, Any], ...]:
    """The Lambda resource attributes (semantic conventions: cloud.*, faas.*) the sidecar knows."""
    name = (env.get("AWS_LAMBDA_FUNCTION_NAME") or "").strip()
    out: List[Tuple[str, Any]] = [("cloud.provider", "aws"), ("cloud.platform", "aws_lambda")]
    region = (env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "").strip()
    if region:
        out.append(("cloud.region", region))
    if name:
        out.append(("faas.name", name))
    version = (env.get("AWS_LAMBDA_FUNCTION_VERSION") or "").strip()
    if version:
        out.append(("faas.version", version))
    instance = (env.get("AWS_LAMBDA_LOG_STREAM_NAME") or "").strip()
    if instance:
        out.append(("faas.instance", instance))
    mem = (env.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE") or "").strip()
    if mem.isdigit() and mem.isascii() and 0 < int(mem) < 1 << 20:
        out.append(("faas.max_memory", int(mem) * 1024 * 1024))
    group = (env.get("AWS_LAMBDA_LOG_GROUP_NAME") or "").strip() or (f"/aws/lambda/{name}" if name else "")
    if group:
        out.append(("aws.log.group.names", (group,)))
    return tuple(out)


# ---- answers (pure) ------------------------------------------------------------------------------------------

Reply = collections.namedtuple("Reply", "status content_type body")


def _json_str(text: str) -> str:
    return '"' + "".join(c if c.isascii() and c.isprintable() and c not in '"\\' else f"\\u{ord(c):04x}"
                         for c in text) + '"'


def success(as_json: bool) -> Any:
    """OTLP's success: an empty Export*ServiceResponse."""
    return Reply(200, "application/json", b"{}") if as_json else Reply(200, "application/x-protobuf", b"")


def partial_success(signal: str, rejected: int, message: str, as_json: bool) -> Any:
    """200 with partial_success {rejected_<items>, error_message}: the SDK does not retry it."""
    if as_json:
        body = ('{"partialSuccess":{"' + _REJECTED_FIELD[signal] + f'":"{int(rejected)}","errorMessage":'
                + _json_str(message) + "}}").encode("ascii")
        return Reply(200, "application/json", body)
    inner = (field_varint(1, rejected) if rejected else b"") + field_bytes(2, message.encode("utf-8"))
    return Reply(200, "application/x-protobuf", field_bytes(1, inner))


def status_reply(http_status: int, code: int, message: str, as_json: bool) -> Any:
    """An error answer with a google.rpc.Status body (code, message), as OTLP/HTTP prescribes."""
    if as_json:
        return Reply(http_status, "application/json",
                     (f'{{"code":{int(code)},"message":' + _json_str(message) + "}").encode("ascii"))
    return Reply(http_status, "application/x-protobuf",
                 field_varint(1, code) + field_bytes(2, message.encode("utf-8")))


# ---- decoding (pure once the protobuf classes are given) -----------------------------------------------------

class BadRequest(ValueError):
    """A body that is not a valid request of its signal (400)."""


class UnsupportedEncoding(ValueError):
    """A Content-Encoding we do not take (415)."""


class TooLarge(ValueError):
    """A body whose inflated size is over the limit (413)."""


def media_type(content_type: str) -> Optional[str]:
    """'protobuf' | 'json' | None (unsupported) from a Content-Type header value."""
    kind = content_type.split(";", 1)[0].strip().lower()
    if kind in ("application/x-protobuf", "application/protobuf"):
        return "protobuf"
    if kind == "application/json":
        return "json"
    return None


def inflate(body: bytes, encoding: str, limit: int = MAX_INFLATED) -> bytes:
    """The body decoded from its Content-Encoding (identity or gzip), at most `limit` bytes inflated.

    TooLarge above the limit (the inflation stops there: a bomb costs `limit` bytes, never more); BadRequest
    for a damaged gzip stream; UnsupportedEncoding for an encoding we do not take."""
    enc = encoding.strip().lower()
    if enc in ("", "identity"):
        return body
    if enc not in ("gzip", "x-gzip"):
        raise UnsupportedEncoding("encoding")
    import zlib

    out: List[bytes] = []
    total = 0
    data = body
    members = 0
    while data:
        members += 1
        if members > 64:
            raise BadRequest("too many gzip members")
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            chunk = d.decompress(data, limit - total + 1)
        except zlib.error as exc:
            raise BadRequest(f"invalid gzip data ({exc})") from None
        total += len(chunk)
        if total > limit or d.unconsumed_tail:
            raise TooLarge(f"the inflated body exceeds {limit} bytes")
        out.append(chunk)
        if not d.eof:
            raise BadRequest("truncated gzip data")
        data = d.unused_data
        while data[:1] == b"\x00":        # padding between members, as gzip tolerates
            data = data[1:]
    return b"".join(out)


class Codec:
    """The protobuf side, loaded once by `Intake.warm()` (off the start-up path and the handler's)."""

    def __init__(self) -> None:
        from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
        from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
        from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

        self.classes = {"traces": trace_service_pb2.ExportTraceServiceRequest,
                        "metrics": metrics_service_pb2.ExportMetricsServiceRequest,
                        "logs": logs_service_pb2.ExportLogsServiceRequest}
        self._json_format: Any = None

    def parse(self, signal: str, data: bytes, kind: str) -> Tuple[bytes, Any]:
        """(protobuf bytes of the request, the message); BadRequest when it is not a valid request."""
        msg = self.classes[signal]()
        if kind == "json":
            if self._json_format is None:
                from google.protobuf import json_format

                self._json_format = json_format
            import json

            try:
                doc = json.loads(data)
                if not isinstance(doc, dict):
                    raise BadRequest("the body is not a JSON object")
                _ids_to_base64(doc, 0)
                self._json_format.ParseDict(doc, msg, ignore_unknown_fields=True)
            except BadRequest:
                raise
            except (ValueError, TypeError, RecursionError) as exc:
                raise BadRequest(f"invalid OTLP JSON: {str(exc)[:200]}") from None
            except Exception as exc:  # noqa: BLE001 - json_format.ParseError and friends
                raise BadRequest(f"invalid OTLP JSON: {str(exc)[:200]}") from None
            return msg.SerializeToString(), msg
        try:
            msg.ParseFromString(data)
        except Exception as exc:  # noqa: BLE001 - google.protobuf.message.DecodeError
            raise BadRequest(f"invalid protobuf: {str(exc)[:200] or type(exc).__name__}") from None
        return data, msg


def _ids_to_base64(node: Any, depth: int) -> None:
    """OTLP JSON writes trace and span ids as hex; protobuf's JSON mapping of bytes is base64: convert in place."""
    if depth > 64:
        raise BadRequest("the JSON document is nested too deeply")
    if isinstance(node, dict):
        for key, value in node.items():
            if key in _ID_KEYS and isinstance(value, str):
                if value and (len(value) not in (16, 32) or not _is_hex(value)):
                    raise BadRequest(f"{key} {value[:40]!r} is not 16 or 32 hex digits")
                if value:
                    import base64

                    node[key] = base64.b64encode(bytes.fromhex(value)).decode("ascii")
            elif isinstance(value, (dict, list)):
                _ids_to_base64(value, depth + 1)
    elif isinstance(node, list):
        for value in node:
            if isinstance(value, (dict, list)):
                _ids_to_base64(value, depth + 1)


def records_of(signal: str, msg: Any) -> int:
    """Spans, metric data points or log records in a parsed request."""
    if signal == "traces":
        return sum(len(ss.spans) for rs in msg.resource_spans for ss in rs.scope_spans)
    if signal == "logs":
        return sum(len(sl.log_records) for rl in msg.resource_logs for sl in rl.scope_logs)
    n = 0
    for rm in msg.resource_metrics:
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                kind = m.WhichOneof("data")
                if kind is not None:
                    n += len(getattr(m, kind).data_points)
    return n


def _resources(signal: str, msg: Any) -> Any:
    return getattr(msg, {"traces": "resource_spans", "metrics": "resource_metrics", "logs": "resource_logs"}[signal])


def enrich_blocks(signal: str, data: bytes, msg: Any, attrs: Tuple[Tuple[str, Any], ...],
                  cache: Optional[Dict[Any, bytes]] = None) -> List[bytes]:
    """The request's Resource* blocks as sent, each followed by a `resource` holding the Lambda attributes its
    resource lacks (merged by any protobuf reader: nothing the function set is overwritten or reordered)."""
    blocks = split_field(data, 1)
    resources = _resources(signal, msg)
    if len(blocks) != len(resources):     # cannot happen for a message that parsed; keep it as sent
        return blocks
    out = []
    for raw, res in zip(blocks, resources):
        have = frozenset(kv.key for kv in res.resource.attributes)
        missing = tuple(k for k, _ in attrs if k not in have)
        if not missing:
            out.append(raw)
            continue
        extra = cache.get(missing) if cache is not None else None
        if extra is None:
            extra = field_bytes(1, b"".join(field_bytes(1, key_value(k, v)) for k, v in attrs if k in missing))
            if cache is not None and len(cache) < 64:
                cache[missing] = extra
        out.append(raw + extra)
    return out


def frame(blocks: List[bytes]) -> bytes:
    """An Export*ServiceRequest of Resource* blocks (field 1, repeated): their framing one after another."""
    return b"".join(field_bytes(1, b) for b in blocks)


# ---- the queue and counters ----------------------------------------------------------------------------------

class _Item:
    __slots__ = ("seq", "blocks", "nbytes", "records", "raw", "kind", "encoding")

    def __init__(self, seq: int, blocks: List[bytes], records: int, raw: bool = False, kind: str = "protobuf",
                 encoding: str = "") -> None:
        self.seq = seq
        self.blocks = blocks            # raw: [the body as received]; else serialized Resource* blocks
        self.nbytes = sum(len(b) for b in blocks)
        self.records = records          # -1: not parsed yet
        self.raw, self.kind, self.encoding = raw, kind, encoding


class Batch:
    """One export request taken from the queue: its body, records, and the items to put back on failure."""

    __slots__ = ("signal", "body", "records", "items")

    def __init__(self, signal: str, body: bytes, records: int, items: List[Any]) -> None:
        self.signal, self.body, self.records, self.items = signal, body, records, items


class Intake:
    """What the local endpoint received, per signal, bounded in bytes (all signals together): when over the
    bound the oldest request is dropped and counted. Thread-safe: `receive` runs on connection threads,
    `take`/`done` on the worker or the OTLP sender.

    health() keys (all cumulative, prefixed local_otlp_): requests_<signal>, received_<unit>, forwarded_<unit>,
    dropped_<unit>_<reason> (reason budget | malformed | shutdown | no_export | rejected | loop),
    requests_shed (requests dropped whole), rejected_<http status>, queued_bytes, plus received / forwarded totals of records."""

    def __init__(self, env: Optional[Mapping[str, str]] = None, max_bytes: int = DEFAULT_QUEUE_BYTES,
                 max_inflated: int = MAX_INFLATED, codec: Any = None) -> None:
        self.attrs = lambda_resource(env or {})
        self.max_bytes = max(1, int(max_bytes))
        self.max_inflated = max_inflated
        self.codec = codec                # None until warm(): requests are queued unparsed
        self.refusal: Optional[str] = None   # set when nothing will forward: requests get a partial success
        self.lock = threading.Lock()
        self._queues: Dict[str, Deque[Any]] = {s: collections.deque() for s in UNIT}
        self._bytes = 0
        self._seq = 0
        self._cache: Dict[Any, bytes] = {}
        self.counters: Dict[str, int] = collections.defaultdict(int)
        self.on_loop: Optional[Callable[[], None]] = None   # called once when our own exporter posts here
        self.on_first_warning: Optional[Callable[[str], None]] = None

    # -- intake (connection threads) --
    def receive(self, signal: str, body: bytes, content_type: str, encoding: str = "",
                user_agent: str = "") -> Any:
        """One request -> the answer to send at once (and its data queued)."""
        kind = media_type(content_type)
        as_json = kind == "json"
        self._count(f"requests_{signal}")
        if kind is None:
            return self._reject(415, RPC_UNIMPLEMENTED, f"unsupported Content-Type {content_type[:60]!r}; "
                                "use application/x-protobuf or application/json", False)
        if user_agent.startswith(OWN_USER_AGENT):
            self._count(f"dropped_{UNIT[signal]}_loop")
            self._count("requests_shed")
            if self.on_loop is not None:
                self.on_loop()
            return success(as_json)
        if self.refusal is not None:
            records = self._records_quick(signal, body, kind, encoding)
            self._count(f"dropped_{UNIT[signal]}_no_export", max(records, 0))
            self._count("requests_shed")
            return partial_success(signal, max(records, 0), self.refusal, as_json)
        codec = self.codec
        if codec is None:
            if encoding.strip().lower() not in ("", "identity", "gzip", "x-gzip"):
                return self._reject(415, RPC_UNIMPLEMENTED, f"unsupported Content-Encoding {encoding[:40]!r}",
                                    as_json)
            if len(body) > self.max_bytes:
                self._count("requests_shed")
                return partial_success(signal, 0, "the request is larger than the sidecar's buffer; dropped",
                                       as_json)
            self._enqueue(signal, _Item(0, [body], -1, True, kind, encoding))
            return success(as_json)
        try:
            blocks, records = self.decode(signal, body, kind, encoding)
        except TooLarge as exc:
            return self._reject(413, RPC_RESOURCE_EXHAUSTED, str(exc), as_json)
        except BadRequest as exc:
            return self._reject(400, RPC_INVALID_ARGUMENT, str(exc), as_json)
        except UnsupportedEncoding:
            return self._reject(415, RPC_UNIMPLEMENTED, f"unsupported Content-Encoding {encoding[:40]!r}", as_json)
        except (ValueError, IndexError) as exc:   # a body protobuf took but whose framing we cannot walk
            return self._reject(400, RPC_INVALID_ARGUMENT, f"malformed request ({type(exc).__name__})", as_json)
        self._count(f"received_{UNIT[signal]}", records)
        self._count("received", records)
        item = _Item(0, blocks, records)
        if item.nbytes > self.max_bytes:
            self._count(f"dropped_{UNIT[signal]}_budget", records)
            self._count("requests_shed")
            return partial_success(signal, records, "the request is larger than the sidecar's memory budget for "
                                   "the function's telemetry; dropped", as_json)
        if records:
            self._enqueue(signal, item)
        return success(as_json)

    def decode(self, signal: str, body: bytes, kind: str, encoding: str) -> Tuple[List[bytes], int]:
        """(enriched Resource* blocks, records) of one body; TooLarge / BadRequest / UnsupportedEncoding."""
        data = inflate(body, encoding, self.max_inflated)
        raw, msg = self.codec.parse(signal, data, kind)
        return enrich_blocks(signal, raw, msg, self.attrs, self._cache), records_of(signal, msg)

    def _records_quick(self, signal: str, body: bytes, kind: str, encoding: str) -> int:
        if self.codec is None:
            return 0
        try:
            return self.decode(signal, body, kind, encoding)[1]
        except (ValueError, IndexError):
            return 0

    def _reject(self, status: int, code: int, message: str, as_json: bool) -> Any:
        self._count(f"rejected_{status}")
        return status_reply(status, code, message, as_json)

    def _enqueue(self, signal: str, item: Any) -> None:
        with self.lock:
            self._seq += 1
            item.seq = self._seq
            self._queues[signal].append(item)
            self._bytes += item.nbytes
            self._trim()

    def _trim(self) -> None:
        """Drop the oldest requests (of any signal) until the queue fits its bound (lock held)."""
        while self._bytes > self.max_bytes:
            heads = [(q[0].seq, s) for s, q in self._queues.items() if q]
            if not heads:
                return
            sig = min(heads)[1]
            old = self._queues[sig].popleft()
            self._bytes -= old.nbytes
            self.counters["requests_shed"] += 1
            self.counters[f"dropped_{UNIT[sig]}_budget"] += max(old.records, 0)

    # -- warm-up (worker thread, after the first response) --
    def warm(self, codec: Any = None) -> None:
        """Load protobuf (or take `codec`), then check, enrich and count what was queued unparsed."""
        codec = codec if codec is not None else Codec()
        self.codec = codec                # requests from now on are parsed on arrival
        with self.lock:
            pending = {s: [it for it in q if it.raw] for s, q in self._queues.items()}
        done: Dict[int, Any] = {}
        for signal, items in pending.items():
            for it in items:
                try:
                    blocks, records = self.decode(signal, it.blocks[0], it.kind, it.encoding)
                except (ValueError, IndexError):
                    done[it.seq] = None
                    self._count(f"dropped_{UNIT[signal]}_malformed")
                    self._count("requests_shed")
                    continue
                self._count(f"received_{UNIT[signal]}", records)
                self._count("received", records)
                done[it.seq] = _Item(it.seq, blocks, records)
        with self.lock:
            for signal, q in self._queues.items():
                kept: Deque[Any] = collections.deque()
                for it in q:
                    if it.raw and it.seq in done:
                        self._bytes -= it.nbytes
                        new = done[it.seq]
                        if new is None or not new.records:
                            continue
                        self._bytes += new.nbytes
                        it = new
                    kept.append(it)
                self._queues[signal] = kept
            self._trim()

    def refuse(self, why: str) -> None:
        """Nothing will forward (no OTLP sink): drop what is queued, answer later requests with a partial success."""
        self.refusal = why
        self.drop_all("no_export")

    # -- forwarding (worker / sender threads) --
    def pending(self, signal: Optional[str] = None) -> int:
        with self.lock:
            if signal is not None:
                return len(self._queues[signal])
            return sum(len(q) for q in self._queues.values())

    def fill(self) -> float:
        return self._bytes / self.max_bytes

    def take(self, signal: str, max_bytes: int) -> Optional[Any]:
        """The oldest parsed requests of a signal, merged into one export request of about max_bytes (at least
        one request); None when there is none. Unparsed requests wait for warm()."""
        with self.lock:
            q = self._queues[signal]
            items: List[Any] = []
            size = 0
            while q and not q[0].raw and (not items or size + q[0].nbytes <= max_bytes):
                it = q.popleft()
                items.append(it)
                size += it.nbytes
            self._bytes -= size
        if not items:
            return None
        blocks = [b for it in items for b in it.blocks]
        return Batch(signal, frame(blocks), sum(it.records for it in items), items)

    def put_back(self, batch: Any) -> None:
        """A batch that was not sent (retry later): ahead of newer requests, then the bound applies."""
        with self.lock:
            q = self._queues[batch.signal]
            q.extendleft(reversed(batch.items))
            self._bytes += sum(it.nbytes for it in batch.items)
            self._trim()

    def done(self, batch: Any, outcome: str) -> None:
        """A batch's fate: 'ok' (forwarded; a backend's partial rejection is the sink's count), else dropped."""
        unit = UNIT[batch.signal]
        if outcome == "ok":
            self._count(f"forwarded_{unit}", batch.records)
            self._count("forwarded", batch.records)
            self._count(f"forwarded_requests_{batch.signal}")
        else:
            self._count(f"dropped_{unit}_{outcome}", batch.records)

    def drop_all(self, reason: str) -> int:
        """Drop everything queued (at the end of the final flush), counted; returns the records dropped."""
        with self.lock:
            lost = 0
            for sig, q in self._queues.items():
                n = sum(max(it.records, 0) for it in q)
                if q:
                    self.counters["requests_shed"] += len(q)
                if n:
                    self.counters[f"dropped_{UNIT[sig]}_{reason}"] += n
                lost += n
                q.clear()
            self._bytes = 0
            return lost

    def _count(self, key: str, n: int = 1) -> None:
        if n:
            with self.lock:
                self.counters[key] += n

    def health(self) -> Dict[str, int]:
        with self.lock:
            out = {f"local_otlp_{k}": int(v) for k, v in self.counters.items()}
            out["local_otlp_queued_bytes"] = self._bytes
        return out


def batch_bytes(batch: Any) -> int:
    return sum(it.nbytes for it in batch.items)


def forward(intake: Any, signal: str, send: Callable[[bytes, int], str], may_send: Callable[[], bool],
            max_bytes: int) -> bool:
    """Send the signal's queued requests through `send(body, records) -> outcome` (the sink's transport and
    retry rules: ok | rejected | retry | deferred | split) while `may_send()`; True when the queue is empty."""
    limit = max(1, max_bytes)
    while True:
        if not intake.pending(signal):
            return True
        if not may_send():
            return False
        batch = intake.take(signal, limit)
        if batch is None:
            return True                   # only unparsed requests are left: they wait for warm()
        outcome = send(batch.body, batch.records)
        if outcome == "split":
            if len(batch.items) > 1:      # too large for the backend: the same requests in smaller requests
                limit = max(1, batch_bytes(batch) // 2)
                intake.put_back(batch)
                continue
            outcome = "rejected"          # one request of the function's that the backend will never take
        if outcome in ("retry", "deferred"):
            intake.put_back(batch)
            return False
        intake.done(batch, outcome)       # ok, or the reason it was dropped (rejected, refused, disabled)
