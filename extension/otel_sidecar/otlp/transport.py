"""Deadline-bounded OTLP/HTTP POST with the spec's retry rules (conventions.md 4.1).

Why not the exporter's own client: its timeout is fixed at construction and its retries sleep on their
own schedule, so a flush could not be held to the time left before /next. Here every connect, send and
read gets the remaining budget as its timeout; 429/502/503/504 (and dropped connections) are retried
only while the budget allows, honouring Retry-After; a partial success is reported, never retried.
Bodies arrive already serialized (encode.py builds them from opentelemetry-proto messages; export.py
re-encodes them for http/json and gRPC).

Headers: those of the configuration (checked at load: a bad value never reaches a request), plus those
fetched from Secrets Manager / SSM (aws_secrets.py) once that fetch is over. Before it is over a request
waits for it within its own budget (a budget under WAIT_MIN_S, a post-runtime flush, does not wait: the
data stays buffered); after a failed fetch every request fails at once, unsent and not retryable, so its
data is dropped and counted. No error text here ever includes a header value.
"""

from __future__ import annotations

import base64
import gzip
import http.client
import json
import random
import socket
import ssl
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, Callable, Mapping, Optional, Tuple
from urllib.parse import urlsplit

from .. import redact

_JITTER = random.Random()   # own generator: never disturbs (or races on) the global one
RETRYABLE = frozenset((429, 502, 503, 504))
USER_AGENT = "otel-sidecar-otlp/0.1"
WAIT_MIN_S = 0.25          # a request with less time than this does not wait for the fetched headers
_PROCESS = object()        # "the process's header fetch" (aws_secrets.current()), the default
_ID_KEYS = ("traceId", "spanId", "parentSpanId")


@dataclass(frozen=True)
class SendResult:
    ok: bool
    status: Optional[int] = None            # HTTP status, None when no answer came
    retryable: bool = False
    retry_after: Optional[float] = None     # seconds asked for by the server
    rejected: int = 0                       # partial success: items the server refused
    error: str = ""
    attempts: int = 1
    cut: bool = False                       # timed out because the caller's deadline, not the backend, ran out


def encode_body(message: Any, protocol: str) -> Tuple[bytes, str]:
    """Request bytes and content type for http/protobuf or http/json (hex ids, integer enums)."""
    if protocol == "http/json":
        from google.protobuf import json_format

        data = json_format.MessageToDict(message, use_integers_for_enums=True)
        return json.dumps(_hex_ids(data), separators=(",", ":")).encode(), "application/json"
    return message.SerializeToString(), "application/x-protobuf"


def _hex_ids(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: (base64.b64decode(v).hex() if k in _ID_KEYS and isinstance(v, str) else _hex_ids(v))
                for k, v in node.items()}
    if isinstance(node, list):
        return [_hex_ids(v) for v in node]
    return node


def retry_after_seconds(value: Optional[str], now: Optional[float] = None) -> Optional[float]:
    """Retry-After as delay-seconds or an HTTP-date -> seconds from now (None when absent/invalid)."""
    if not value:
        return None
    value = value.strip()
    try:
        secs = float(value)
        return max(0.0, secs) if secs == secs and secs != float("inf") else None
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class HttpSender:
    """One destination: POSTs an encoded body, bounded by a monotonic deadline."""

    def __init__(self, endpoint: str, headers: Mapping[str, str], compression: str, timeout_s: float,
                 response_cls: Any = None, certificate: Optional[str] = None,
                 client_certificate: Optional[str] = None, client_key: Optional[str] = None,
                 late_headers: Any = _PROCESS) -> None:
        parts = urlsplit(endpoint)
        self.https = parts.scheme == "https"
        self.host = parts.hostname or "localhost"
        self.port = parts.port or (443 if self.https else 80)
        self.path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self.headers = dict(headers)
        self.late = _late_source(late_headers)
        self.compression = compression
        self.timeout_s = timeout_s
        self.response_cls = response_cls
        self._conn: Optional[http.client.HTTPConnection] = None
        self._ssl: Optional[ssl.SSLContext] = None
        if self.https:
            # raises (OSError/ssl.SSLError) on unreadable files: the caller reports it and falls back
            self._ssl = ssl.create_default_context(cafile=certificate)
            if client_certificate:
                self._ssl.load_cert_chain(client_certificate, client_key)

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:  # noqa: BLE001
                pass
            self._conn = None

    def _connection(self, timeout: float) -> http.client.HTTPConnection:
        if self._conn is None:
            if self.https:
                self._conn = http.client.HTTPSConnection(self.host, self.port, timeout=timeout, context=self._ssl)
            else:
                self._conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        return self._conn

    def compress(self, body: bytes) -> bytes:
        """The body as sent (once per request, not per attempt). gzip level 1: on OTLP protobuf it compresses
        within 3 % of level 5 (7.7x against 7.9x, measured) for half the CPU, and CPU is the scarce thing here."""
        return gzip.compress(body, compresslevel=1) if self.compression == "gzip" else body

    def post_once(self, body: bytes, content_type: str, deadline: float, compressed: bool = False) -> SendResult:
        """One attempt, every socket operation bounded by the time left (`compressed`: compress() was applied)."""
        budget, left, extra, early = start_attempt(deadline, self.timeout_s, self.late)
        if early is not None:
            return early
        headers = {"Content-Type": content_type, "User-Agent": USER_AGENT, **_merge(self.headers, extra)}
        if self.compression == "gzip":
            body = body if compressed else self.compress(body)
            headers["Content-Encoding"] = "gzip"
        conn = self._connection(left)
        try:
            conn.timeout = left
            if conn.sock is not None:
                conn.sock.settimeout(left)
            conn.request("POST", self.path, body=body, headers=headers)
            if conn.sock is not None:
                conn.sock.settimeout(max(0.001, min(deadline - time.monotonic(), self.timeout_s)))
            resp = conn.getresponse()
            data = resp.read(4 * 1024 * 1024 + 1)
            status = resp.status
            retry_after = retry_after_seconds(resp.getheader("Retry-After"))
            if resp.getheader("Connection", "").lower() == "close" or len(data) > 4 * 1024 * 1024:
                self.close()
        except (socket.timeout, TimeoutError) as exc:
            self.close()
            return SendResult(False, None, True, error=f"timed out ({exc or 'no answer'})", cut=budget < self.timeout_s)
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            return SendResult(False, None, True, error=f"{type(exc).__name__}: {redact.shorten(str(exc), 120)}")
        except (ValueError, UnicodeError) as exc:
            # http.client refuses a header (its message quotes the value: never printed); load-time checks
            # make this unreachable for configured headers
            self.close()
            return SendResult(False, None, False, error=f"a header cannot be sent ({type(exc).__name__})")
        if 200 <= status < 300:
            return SendResult(True, status, rejected=self._rejected(data, resp.getheader("Content-Type", "")))
        return SendResult(False, status, status in RETRYABLE, retry_after, error=f"HTTP {status}")

    def _rejected(self, data: bytes, ctype: str) -> int:
        if not data or self.response_cls is None:
            return 0
        try:
            msg = self.response_cls()
            if "json" in ctype:
                from google.protobuf import json_format

                json_format.Parse(data.decode("utf-8"), msg, ignore_unknown_fields=True)
            else:
                msg.ParseFromString(data)
            ps = msg.partial_success
            for name in ("rejected_spans", "rejected_data_points", "rejected_log_records"):
                if hasattr(ps, name):
                    return int(getattr(ps, name))
        except Exception:  # noqa: BLE001 - an unreadable success body still means success
            return 0
        return 0


def send_with_retry(post: Callable[[float], SendResult], deadline: float,
                    sleep: Callable[[float], None] = time.sleep, base_backoff: float = 0.05,
                    max_attempts: int = 6) -> SendResult:
    """Retry retryable failures while the deadline allows (Retry-After honoured, else backoff with jitter)."""
    attempt = 0
    while True:
        attempt += 1
        res = post(deadline)
        if res.ok or not res.retryable or res.cut:
            return _with_attempts(res, attempt)
        wait = res.retry_after if res.retry_after is not None else base_backoff * (2 ** (attempt - 1)) * _JITTER.uniform(0.8, 1.2)
        # a retry needs the wait plus a little time for the request itself
        if time.monotonic() + wait + 0.005 >= deadline or attempt >= max_attempts:
            return _with_attempts(res, attempt)
        sleep(wait)


def _with_attempts(res: SendResult, attempts: int) -> SendResult:
    return SendResult(res.ok, res.status, res.retryable, res.retry_after, res.rejected, res.error, attempts, res.cut)


class GrpcSender:
    """OTLP/gRPC (only when grpcio is installed): one unary Export call per batch, deadline = time left."""

    def __init__(self, signal: str, endpoint: str, headers: Mapping[str, str], compression: str,
                 timeout_s: float, late_headers: Any = _PROCESS) -> None:
        import grpc
        from opentelemetry.proto.collector.logs.v1 import logs_service_pb2_grpc
        from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2_grpc
        from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc

        self._grpc = grpc
        parts = urlsplit(endpoint if "://" in endpoint else f"http://{endpoint}")
        target = f"{parts.hostname or 'localhost'}:{parts.port or 4317}"
        self.channel = (grpc.secure_channel(target, grpc.ssl_channel_credentials()) if parts.scheme == "https"
                        else grpc.insecure_channel(target))
        stub = {"traces": trace_service_pb2_grpc.TraceServiceStub,
                "metrics": metrics_service_pb2_grpc.MetricsServiceStub,
                "logs": logs_service_pb2_grpc.LogsServiceStub}[signal]
        self.stub = stub(self.channel)
        self.metadata = tuple((k.lower(), v) for k, v in headers.items())
        self.late = _late_source(late_headers)
        self.compression = grpc.Compression.Gzip if compression == "gzip" else grpc.Compression.NoCompression
        self.timeout_s = timeout_s
        # OTLP/gRPC: these codes are transient and may be retried
        self.retryable = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED,
                          grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.ABORTED, grpc.StatusCode.CANCELLED,
                          grpc.StatusCode.OUT_OF_RANGE, grpc.StatusCode.DATA_LOSS}

    def post_once(self, message: Any, deadline: float) -> SendResult:
        budget, left, extra, early = start_attempt(deadline, self.timeout_s, self.late)
        if early is not None:
            return early
        metadata = self.metadata
        if extra:
            low = {k.lower() for k in extra}
            metadata = tuple((k, v) for k, v in metadata if k not in low) + tuple((k.lower(), v) for k, v in extra.items())
        try:
            resp = self.stub.Export(message, timeout=left, metadata=metadata, compression=self.compression)
        except (ValueError, TypeError) as exc:
            return SendResult(False, None, False, error=f"a header cannot be sent ({type(exc).__name__})")
        except self._grpc.RpcError as exc:
            code = exc.code() if hasattr(exc, "code") else None
            cut = code == self._grpc.StatusCode.DEADLINE_EXCEEDED and budget < self.timeout_s
            return SendResult(False, None, code in self.retryable, error=f"gRPC {getattr(code, 'name', exc)}",
                              cut=cut)
        ps = resp.partial_success
        rejected = 0
        for name in ("rejected_spans", "rejected_data_points", "rejected_log_records"):
            if hasattr(ps, name):
                rejected = int(getattr(ps, name))
        return SendResult(True, 200, rejected=rejected)

    def close(self) -> None:
        try:
            self.channel.close()
        except Exception:  # noqa: BLE001
            pass


def _late_source(late: Any) -> Any:
    if late is _PROCESS:
        from ..aws_secrets import current

        return current()
    return late


def start_attempt(deadline: float, timeout_s: float,
                  late: Any) -> Tuple[float, float, Mapping[str, str], Optional[SendResult]]:
    """(time to the deadline, time for this attempt, headers fetched late, or a SendResult ending it now).

    The wait for late headers (Secrets Manager / SSM) comes out of the attempt's time, so it is measured again."""
    budget = deadline - time.monotonic()
    left = min(budget, timeout_s)
    if left <= 0.001:
        return budget, left, {}, SendResult(False, None, True, error="no time left", cut=True)
    if late is None:
        return budget, left, {}, None
    extra, early = late_headers(late, left, budget < timeout_s)
    if early is not None:
        return budget, left, {}, early
    budget = deadline - time.monotonic()
    left = min(budget, timeout_s)
    if left <= 0.001:
        return budget, left, {}, SendResult(False, None, True, error="no time left", cut=True)
    return budget, left, extra, None


def late_headers(late: Any, left: float, cut: bool) -> Tuple[Mapping[str, str], Optional[SendResult]]:
    """(fetched headers to add, or a result that ends the request unsent): the Secrets Manager / SSM fetch."""
    if late is None:
        return {}, None
    if not late.done():
        if left >= WAIT_MIN_S:
            late.wait(left - 0.05)
        if not late.done():
            return {}, SendResult(False, None, True, error=f"waiting for the OTLP headers from {late.names}",
                                  cut=cut or left < WAIT_MIN_S)
    if late.failed:
        return {}, SendResult(False, None, False, error=f"not sent: {late.reason}")
    return late.headers, None


def _merge(headers: Mapping[str, str], extra: Mapping[str, str]) -> Mapping[str, str]:
    if not extra:
        return headers
    low = {k.lower() for k in extra}
    out = {k: v for k, v in headers.items() if k.lower() not in low}
    out.update(extra)
    return out
