"""Where one signal goes: its sender (transport.py), the backoff of its backend, and its refusal state."""

from __future__ import annotations

import functools
import logging
import random
from typing import Any, Callable, Optional

from .config import SignalExport
from .transport import GrpcSender, HttpSender, SendResult, encode_body

_JITTER = random.Random()   # own generator: never disturbs (or races on) the global one
log = logging.getLogger("otel_sidecar")

BACKOFF_MIN_S, BACKOFF_MAX_S = 0.5, 30.0
REFUSED = (404, 405, 501)       # a backend that does not serve a signal at all (Phoenix: 405 for metrics, logs)

Post = Callable[[float], SendResult]     # one attempt of one serialized request, given its deadline


class Backoff:
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


class Destination:
    """One signal's exporter: sender and the backoff of its backend."""

    def __init__(self, signal: str, export: SignalExport, backoff: Backoff) -> None:
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

    def post(self, body: bytes) -> Post:
        """The deadline-taking send of one serialized request (an Export*ServiceRequest), in this
        destination's protocol (re-encoded for gRPC and http/json)."""
        if self.grpc:
            return functools.partial(self.sender.post_once, self.request_cls.FromString(body))
        if self.export.protocol != "http/protobuf":
            raw, ctype = encode_body(self.request_cls.FromString(body), self.export.protocol)
            return functools.partial(_post_http, self.sender, self.sender.compress(raw), ctype)
        return functools.partial(_post_http, self.sender, self.sender.compress(body), "application/x-protobuf")


def _post_http(sender: HttpSender, body: bytes, ctype: str, deadline: float) -> SendResult:
    return sender.post_once(body, ctype, deadline, compressed=True)


def is_refusal(res: SendResult) -> bool:
    """Not served at all (HTTP 404/405/501, gRPC UNIMPLEMENTED), as opposed to a bad or unlucky request."""
    return res.status in REFUSED or (res.status is None and "UNIMPLEMENTED" in (res.error or ""))
