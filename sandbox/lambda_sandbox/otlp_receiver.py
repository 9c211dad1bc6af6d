"""Embedded OTLP/HTTP backend: /v1/traces, /v1/metrics, /v1/logs (protobuf or JSON, gzip), with fault modes.

Decoding uses the official opentelemetry-proto classes (and protobuf's json_format for OTLP/JSON).
What arrives is kept in memory (and optionally appended to a JSON-lines or SQLite file) and exposed as
flat dicts that tests can assert on: spans(), metrics(), logs(). Fault modes can be switched at run time
to play a backend that refuses connections, stalls, answers an error status (with Retry-After), answers
slowly, or reports a partial success.

    with OtlpReceiver() as rx:
        env = {"OTEL_EXPORTER_OTLP_ENDPOINT": rx.endpoint}
        ...
        rx.wait_for(lambda r: len(r.spans()) >= 2, timeout=5)
        rx.set_fault("status", status=429, retry_after=1)
"""

from __future__ import annotations

import argparse
import base64
import json
import re
import socket
import sqlite3
import struct
import sys
import threading
import time
import zlib
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

from google.protobuf import json_format
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

MAX_BODY = 64 * 1024 * 1024          # OTLP spec: servers cap request bodies (before and after decompression)
STALL_BOUND_S = 60.0                 # a stalled request is answered at stop() or after this long at most
FAULT_MODES = ("refuse", "stall", "status", "slow", "partial")

_SIGNALS: Dict[str, Tuple[Any, Any]] = {
    "/v1/traces": (trace_service_pb2.ExportTraceServiceRequest, trace_service_pb2.ExportTraceServiceResponse),
    "/v1/metrics": (metrics_service_pb2.ExportMetricsServiceRequest,
                    metrics_service_pb2.ExportMetricsServiceResponse),
    "/v1/logs": (logs_service_pb2.ExportLogsServiceRequest, logs_service_pb2.ExportLogsServiceResponse),
}
_ID_KEYS = {"traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id"}
_HEX = re.compile(r"^[0-9a-fA-F]*$")
_SPAN_KINDS = {0: "UNSPECIFIED", 1: "INTERNAL", 2: "SERVER", 3: "CLIENT", 4: "PRODUCER", 5: "CONSUMER"}
_STATUS_CODES = {0: "UNSET", 1: "OK", 2: "ERROR"}
_TEMPORALITY = {0: None, 1: "delta", 2: "cumulative"}


@dataclass(frozen=True)
class Fault:
    """How the receiver misbehaves. times: only the next N requests (None = until cleared)."""

    mode: str
    status: int = 503
    retry_after: Optional[Union[int, float, str]] = None
    delay_ms: int = 0
    rejected: int = 1
    times: Optional[int] = None

    @classmethod
    def parse(cls, text: str) -> Fault:
        """CLI form: refuse | stall | slow:<ms> | status:<code>[:<retry-after>] | partial:<n>."""
        parts = text.strip().split(":")
        mode = parts[0]
        if mode not in FAULT_MODES:
            raise ValueError(f"unknown fault mode {text!r}; expected one of {', '.join(FAULT_MODES)}")
        if mode == "slow":
            return cls("slow", delay_ms=int(parts[1]) if len(parts) > 1 else 200)
        if mode == "status":
            return cls("status", status=int(parts[1]) if len(parts) > 1 else 503,
                       retry_after=parts[2] if len(parts) > 2 else None)
        if mode == "partial":
            return cls("partial", rejected=int(parts[1]) if len(parts) > 1 else 1)
        return cls(mode)


@dataclass
class Received:
    """One decoded export request."""

    path: str
    time: float
    content_type: str
    encoding: str
    size: int
    message: Any
    headers: Tuple[Tuple[str, str], ...] = ()     # the request's headers (tests check what a sender sent)


class OtlpReceiver:
    """Threaded OTLP/HTTP server on 127.0.0.1 (ephemeral port unless given)."""

    def __init__(self, store_path: Optional[Union[str, Path]] = None, fault: Optional[Union[Fault, str]] = None,
                 host: str = "127.0.0.1", port: int = 0, max_requests: int = 100_000) -> None:
        self.host = host
        self.max_requests = max_requests      # kept in memory; older ones are forgotten (and counted)
        self.forgotten = 0
        self.port = port
        self.store_path = Path(store_path) if store_path is not None else None
        self._fault: Optional[Fault] = Fault.parse(fault) if isinstance(fault, str) else fault
        self._path_status: Dict[str, int] = {}        # a backend that does not serve a signal (e.g. 405 /v1/metrics)
        self._cond = threading.Condition()
        self._received: List[Received] = []
        self._log: List[Dict[str, Any]] = []          # every request answered: path, status, bytes, fault
        self._server: Optional[ThreadingHTTPServer] = None
        self._thread: Optional[threading.Thread] = None
        self._stopping = threading.Event()
        self._started = False
        self._store_lock = threading.Lock()
        self._db: Optional[sqlite3.Connection] = None

    # ---- lifecycle --------------------------------------------------------------------------------
    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> OtlpReceiver:
        if self._started:
            return self
        self._started = True
        self._stopping.clear()
        if self.store_path is not None and self.store_path.suffix in (".db", ".sqlite", ".sqlite3"):
            self._db = sqlite3.connect(str(self.store_path), check_same_thread=False)
            self._db.execute("CREATE TABLE IF NOT EXISTS requests (time REAL, path TEXT, body TEXT)")
        if not (self._fault is not None and self._fault.mode == "refuse"):
            self._open()
        else:
            self._reserve_port()
        return self

    def stop(self) -> None:
        if not self._started:
            return
        self._started = False
        self._stopping.set()
        self._close()
        with self._cond:
            self._cond.notify_all()
        if self._db is not None:
            with self._store_lock:
                self._db.close()
                self._db = None

    def __enter__(self) -> OtlpReceiver:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def _reserve_port(self) -> None:
        """Refusing from the start: learn an ephemeral port to use once the fault is cleared."""
        if self.port == 0:
            self._open()
            self._close()

    def _open(self) -> None:
        owner = self

        class Handler(_Handler):
            receiver = owner

        server = _QuietServer((self.host, self.port), Handler)
        server.daemon_threads = True
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"otlp-receiver-{self.port}", daemon=True)
        self._thread.start()

    def _close(self) -> None:
        server, thread = self._server, self._thread
        self._server, self._thread = None, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(timeout=5)

    # ---- faults -------------------------------------------------------------------------------------
    @property
    def fault(self) -> Optional[Fault]:
        return self._fault

    def set_fault(self, mode: Optional[Union[str, Fault]] = None, **kwargs: Any) -> None:
        """set_fault("status", status=429, retry_after=1) / set_fault("refuse") / set_fault(None) clears."""
        if isinstance(mode, str) and ":" in mode and not kwargs:
            fault: Optional[Fault] = Fault.parse(mode)
        elif isinstance(mode, str):
            if mode not in FAULT_MODES:
                raise ValueError(f"unknown fault mode {mode!r}; expected one of {', '.join(FAULT_MODES)}")
            fault = Fault(mode, **kwargs)
        else:
            fault = mode
        was_refusing = self._fault is not None and self._fault.mode == "refuse"
        self._fault = fault
        refusing = fault is not None and fault.mode == "refuse"
        if not self._started:
            return
        if refusing and not was_refusing:
            self._close()
        elif was_refusing and not refusing:
            self._open()

    def clear_fault(self) -> None:
        self.set_fault(None)

    def set_path_status(self, path: str, status: Optional[int]) -> None:
        """Answer every request to `path` (e.g. "/v1/metrics") with `status` (e.g. 405, as a traces-only backend
        does) until set to None; the other paths are served normally."""
        if path not in _SIGNALS:
            raise ValueError(f"unknown path {path!r}; expected one of {', '.join(_SIGNALS)}")
        with self._cond:
            if status is None:
                self._path_status.pop(path, None)
            else:
                self._path_status[path] = int(status)

    def _take_fault(self) -> Optional[Fault]:
        with self._cond:
            fault = self._fault
            if fault is None or fault.mode == "refuse":
                return None
            if fault.times is not None:
                left = fault.times - 1
                self._fault = None if left <= 0 else Fault(fault.mode, fault.status, fault.retry_after,
                                                           fault.delay_ms, fault.rejected, left)
            return fault

    # ---- storage --------------------------------------------------------------------------------------
    def _store(self, rec: Received) -> None:
        with self._cond:
            self._received.append(rec)
            if len(self._received) > self.max_requests:
                del self._received[0]
                self.forgotten += 1
            self._cond.notify_all()
        if self.store_path is None:
            return
        body = json.dumps({"time": rec.time, "path": rec.path, "body": message_to_dict(rec.message)})
        with self._store_lock:
            if self._db is not None:
                self._db.execute("INSERT INTO requests VALUES (?, ?, ?)", (rec.time, rec.path, body))
                self._db.commit()
            else:
                with open(self.store_path, "a", encoding="utf-8") as fh:
                    fh.write(body + "\n")

    def _note(self, path: str, status: int, size: int, fault: Optional[str]) -> None:
        with self._cond:
            self._log.append({"path": path, "status": status, "bytes": size, "fault": fault, "time": time.time()})
            if len(self._log) > self.max_requests:
                del self._log[0]
            self._cond.notify_all()

    def clear(self) -> None:
        """Forget everything received so far (the file store is kept)."""
        with self._cond:
            self._received.clear()
            self._log.clear()

    # ---- views ------------------------------------------------------------------------------------------
    @property
    def received(self) -> List[Received]:
        with self._cond:
            return list(self._received)

    @property
    def request_log(self) -> List[Dict[str, Any]]:
        """Every request answered (also faulted ones): path, status, bytes, fault, time."""
        with self._cond:
            return list(self._log)

    @property
    def requests(self) -> Dict[str, Dict[str, int]]:
        """Accepted (stored) requests per path: {"/v1/traces": {"count": n, "bytes": b}, ...}."""
        out: Dict[str, Dict[str, int]] = {p: {"count": 0, "bytes": 0} for p in _SIGNALS}
        for rec in self.received:
            out[rec.path]["count"] += 1
            out[rec.path]["bytes"] += rec.size
        return out

    def spans(self) -> List[Dict[str, Any]]:
        out: List[Dict[str, Any]] = []
        for rec in self.received:
            if rec.path == "/v1/traces":
                out.extend(flatten_spans(rec.message))
        return out

    def metrics(self) -> List[Dict[str, Any]]:
        out: List[Dict[str, Any]] = []
        for rec in self.received:
            if rec.path == "/v1/metrics":
                out.extend(flatten_metrics(rec.message))
        return out

    def logs(self) -> List[Dict[str, Any]]:
        out: List[Dict[str, Any]] = []
        for rec in self.received:
            if rec.path == "/v1/logs":
                out.extend(flatten_logs(rec.message))
        return out

    def wait_for(self, predicate: Callable[[OtlpReceiver], Any], timeout: float = 5.0) -> Any:
        """Re-evaluate predicate(self) on every request until it is truthy or timeout passes; its last value."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate(self)
            if value:
                return value
            left = deadline - time.monotonic()
            if left <= 0:
                return value
            with self._cond:
                self._cond.wait(min(left, 0.1))

    def summary(self) -> Dict[str, Any]:
        """Small JSON-ready digest for reports."""
        return {"endpoint": self.endpoint, "requests": self.requests, "spans": len(self.spans()),
                "metricPoints": len(self.metrics()), "logRecords": len(self.logs()),
                "answered": len(self.request_log), "forgotten": self.forgotten}


class _QuietServer(ThreadingHTTPServer):
    """No traceback when a client resets or closes its connection (an exporter killed at shutdown)."""

    allow_reuse_address = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError, ConnectionAbortedError,
                                           TimeoutError)):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    receiver: OtlpReceiver
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        self._reply(405, b"", "text/plain")

    def do_POST(self) -> None:  # noqa: N802 - stdlib naming
        rx = self.receiver
        path = self.path.split("?", 1)[0]
        if rx._fault is not None and rx._fault.mode == "refuse":
            return self._reset_connection(path)
        raw = self._read_request_body(path)
        if raw is None:
            return None
        if path not in _SIGNALS:
            return self._reply(404, b"unknown path", "text/plain", path, len(raw))
        refused = rx._path_status.get(path)
        if refused is not None:
            return self._reply(refused, b"not served here", "text/plain", path, len(raw), f"path:{refused}")
        fault = rx._take_fault()
        if fault is not None and self._answered_by_fault(fault, path, len(raw)):
            return None
        ctype = (self.headers.get("Content-Type") or "application/x-protobuf").split(";")[0].strip().lower()
        encoding = (self.headers.get("Content-Encoding") or "").strip().lower()
        req_cls, resp_cls = _SIGNALS[path]
        try:
            body = _decompress(raw, encoding)
            message = decode(req_cls, body, ctype)
        except _TooLarge:
            return self._reply(413, b"decompressed body too large", "text/plain", path, len(raw))
        except Exception as exc:  # noqa: BLE001 - any undecodable body is the client's 400
            return self._reply(400, _status_body(400, f"cannot decode: {exc}"), "application/x-protobuf",
                               path, len(raw))
        rx._store(Received(path, time.time(), ctype, encoding, len(raw), message, tuple(self.headers.items())))
        self._reply_success(resp_cls(), ctype, path, len(raw), fault)

    def _reset_connection(self, path: str) -> None:
        """Fault mode "refuse": a kept-alive connection opened before the fault is reset rather than answered."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        self.receiver._note(path, 0, 0, "refuse")

    def _read_request_body(self, path: str) -> Optional[bytes]:
        """The body (chunked or Content-Length), bounded by MAX_BODY; None once a 413 has been sent."""
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            raw = self._read_chunked()
            if raw is None:
                self.close_connection = True
                self._reply(413, b"request body too large", "text/plain", path, MAX_BODY)
            return raw
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self.close_connection = True
            self._reply(413, b"request body too large", "text/plain", path, length)
            return None
        return self.rfile.read(length) if length else b""

    def _answered_by_fault(self, fault: Any, path: str, size: int) -> bool:
        """Apply a stall/slow/status fault; True when the fault has answered the request itself."""
        if fault.mode == "stall":
            self.receiver._stopping.wait(STALL_BOUND_S)
            self.close_connection = True
            self._reply(503, b"stalled", "text/plain", path, size, "stall")
            return True
        if fault.mode == "slow":
            self.receiver._stopping.wait(fault.delay_ms / 1000.0)
        if fault.mode == "status":
            headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
            self._reply(fault.status, _status_body(fault.status), "application/x-protobuf",
                        path, size, f"status:{fault.status}", headers)
            return True
        return False

    def _reply_success(self, resp: Any, ctype: str, path: str, size: int, fault: Any) -> None:
        """The 200 export response, with partial_success filled in under the "partial" fault."""
        fault_name = None
        if fault is not None and fault.mode == "partial":
            fault_name = "partial"
            field = {"/v1/traces": "rejected_spans", "/v1/metrics": "rejected_data_points",
                     "/v1/logs": "rejected_log_records"}[path]
            setattr(resp.partial_success, field, fault.rejected)
            resp.partial_success.error_message = "rejected by fault mode"
        elif fault is not None:
            fault_name = fault.mode
        if ctype == "application/json":
            out = json_format.MessageToJson(resp).encode()
        else:
            out = resp.SerializeToString()
            ctype = "application/x-protobuf"
        self._reply(200, out, ctype, path, size, fault_name)

    def _read_chunked(self) -> Optional[bytes]:
        """A chunked request body (some exporters stream); None when it grows past MAX_BODY."""
        parts, total = [], 0
        while True:
            line = self.rfile.readline(1024)
            size = int(line.split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass                       # trailers
                return b"".join(parts)
            total += size
            if total > MAX_BODY:
                return None
            parts.append(self.rfile.read(size))
            self.rfile.readline(3)             # the CRLF after each chunk

    def _reply(self, status: int, body: bytes, ctype: str, path: Optional[str] = None, size: int = 0,
               fault: Optional[str] = None, headers: Optional[Dict[str, str]] = None) -> None:
        if path is not None:   # before the answer: a client that has its answer finds the request logged
            self.receiver._note(path, status, size, fault)
        try:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body)
        except OSError:
            pass


class _TooLarge(Exception):
    pass


def _decompress(raw: bytes, encoding: str) -> bytes:
    if encoding in ("", "identity", "none"):
        return raw
    if encoding == "gzip":
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    elif encoding == "deflate":
        d = zlib.decompressobj()
    else:
        raise ValueError(f"unsupported Content-Encoding {encoding!r}")
    out = d.decompress(raw, MAX_BODY + 1)
    if len(out) > MAX_BODY:
        raise _TooLarge()
    return out


def _status_body(code: int, message: str = "") -> bytes:
    from google.rpc import status_pb2

    return status_pb2.Status(code=code, message=message or f"HTTP {code}").SerializeToString()


def decode(req_cls: Any, body: bytes, content_type: str) -> Any:
    """Decode an OTLP request body (protobuf, or OTLP/JSON with hex ids)."""
    msg = req_cls()
    if content_type == "application/json":
        data = json.loads(body.decode("utf-8") or "{}")
        json_format.ParseDict(_ids_hex_to_b64(data), msg, ignore_unknown_fields=True)
    else:
        msg.ParseFromString(body)
    return msg


def _ids_hex_to_b64(node: Any) -> Any:
    """OTLP/JSON writes trace and span ids as hex; protobuf's JSON mapping expects base64."""
    if isinstance(node, dict):
        return {k: (base64.b64encode(bytes.fromhex(v)).decode() if k in _ID_KEYS and isinstance(v, str)
                    and _HEX.match(v) and len(v) % 2 == 0 else _ids_hex_to_b64(v)) for k, v in node.items()}
    if isinstance(node, list):
        return [_ids_hex_to_b64(v) for v in node]
    return node


def _ids_b64_to_hex(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: (base64.b64decode(v).hex() if k in _ID_KEYS and isinstance(v, str) else _ids_b64_to_hex(v))
                for k, v in node.items()}
    if isinstance(node, list):
        return [_ids_b64_to_hex(v) for v in node]
    return node


def message_to_dict(msg: Any) -> Dict[str, Any]:
    """OTLP/JSON form of a message (hex ids)."""
    return _ids_b64_to_hex(json_format.MessageToDict(msg))


def encode_json(msg: Any) -> bytes:
    """OTLP/JSON bytes of a request message (hex ids, integer enums)."""
    return json.dumps(_ids_b64_to_hex(json_format.MessageToDict(msg, use_integers_for_enums=True))).encode()


# ---- flattening ---------------------------------------------------------------------------------------
def any_value(v: Any) -> Any:
    kind = v.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [any_value(x) for x in v.array_value.values]
    if kind == "kvlist_value":
        return attrs(v.kvlist_value.values)
    return getattr(v, kind)


def attrs(kvs: Any) -> Dict[str, Any]:
    return {kv.key: any_value(kv.value) for kv in kvs}


def flatten_spans(req: Any) -> List[Dict[str, Any]]:
    out = []
    for rs in req.resource_spans:
        resource = attrs(rs.resource.attributes)
        for ss in rs.scope_spans:
            for s in ss.spans:
                out.append({
                    "trace_id": s.trace_id.hex(), "span_id": s.span_id.hex(),
                    "parent_span_id": s.parent_span_id.hex() or None, "name": s.name,
                    "kind": _SPAN_KINDS.get(s.kind, str(s.kind)), "attributes": attrs(s.attributes),
                    "status": {"code": _STATUS_CODES.get(s.status.code, str(s.status.code)),
                               "message": s.status.message},
                    "start_ns": s.start_time_unix_nano, "end_ns": s.end_time_unix_nano, "flags": s.flags,
                    "links": [{"trace_id": ln.trace_id.hex(), "span_id": ln.span_id.hex(),
                               "attributes": attrs(ln.attributes)} for ln in s.links],
                    "events": [{"name": e.name, "time_ns": e.time_unix_nano, "attributes": attrs(e.attributes)}
                               for e in s.events],
                    "resource": resource, "scope": ss.scope.name,
                })
    return out


def flatten_metrics(req: Any) -> List[Dict[str, Any]]:
    out = []
    for rm in req.resource_metrics:
        resource = attrs(rm.resource.attributes)
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                kind = m.WhichOneof("data")
                data = getattr(m, kind) if kind else None
                base = {"name": m.name, "unit": m.unit, "description": m.description, "type": kind,
                        "resource": resource, "scope": sm.scope.name,
                        "temporality": _TEMPORALITY.get(getattr(data, "aggregation_temporality", 0)),
                        "monotonic": getattr(data, "is_monotonic", None)}
                for p in getattr(data, "data_points", ()):
                    point = dict(base, attributes=attrs(p.attributes), start_ns=p.start_time_unix_nano,
                                 time_ns=p.time_unix_nano)
                    if kind in ("sum", "gauge"):
                        point["value"] = getattr(p, p.WhichOneof("value")) if p.WhichOneof("value") else None
                    else:
                        point.update(count=p.count, sum=p.sum)
                        if kind == "histogram":
                            point.update(bucket_counts=list(p.bucket_counts), explicit_bounds=list(p.explicit_bounds),
                                         min=p.min if p.HasField("min") else None,
                                         max=p.max if p.HasField("max") else None)
                    out.append(point)
    return out


def flatten_logs(req: Any) -> List[Dict[str, Any]]:
    out = []
    for rl in req.resource_logs:
        resource = attrs(rl.resource.attributes)
        for sl in rl.scope_logs:
            for r in sl.log_records:
                out.append({
                    "body": any_value(r.body), "severity_text": r.severity_text,
                    "severity_number": r.severity_number, "trace_id": r.trace_id.hex() or None,
                    "span_id": r.span_id.hex() or None, "flags": r.flags, "attributes": attrs(r.attributes),
                    "time_ns": r.time_unix_nano, "observed_ns": r.observed_time_unix_nano,
                    "resource": resource, "scope": sl.scope.name,
                })
    return out


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m lambda_sandbox.otlp_receiver",
                                 description="Standalone OTLP/HTTP receiver (prints one line per request).")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=4318, help="0 = ephemeral (default 4318)")
    ap.add_argument("--store", default=None, help="append requests to this file (.jsonl, or .db/.sqlite for SQLite)")
    ap.add_argument("--fault", default=None, help="refuse | stall | slow:<ms> | status:<code>[:<retry-after>] | partial:<n>")
    args = ap.parse_args(argv)
    rx = OtlpReceiver(store_path=args.store, fault=args.fault, host=args.host, port=args.port)
    rx.start()
    print(f"OTLP receiver listening at {rx.endpoint}", flush=True)
    seen = 0
    try:
        while True:
            rx.wait_for(lambda r, n=seen: len(r.request_log) > n, timeout=1.0)
            log = rx.request_log
            for entry in log[seen:]:
                print(f"{entry['path']} {entry['status']} {entry['bytes']} bytes"
                      + (f" fault={entry['fault']}" if entry["fault"] else ""), flush=True)
            seen = len(log)
    except KeyboardInterrupt:
        pass
    finally:
        rx.stop()
        print(json.dumps(rx.summary()), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
