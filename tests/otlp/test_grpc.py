"""OTLP/gRPC export, only where grpcio is installed (it is not part of the layer)."""

from __future__ import annotations

import threading
import time
from concurrent import futures

import pytest

grpc = pytest.importorskip("grpc")

from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc  # noqa: E402
from otel_sidecar.otlp.config import load_otlp_config  # noqa: E402
from otel_sidecar.otlp.sink import OtlpSink  # noqa: E402

from tests.otlp._signals import ENV, invocation  # noqa: E402


class Traces(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self) -> None:
        self.requests: list = []
        self.stall = threading.Event()
        self.release = threading.Event()

    def Export(self, request, context):  # noqa: N802 - generated interface
        if self.stall.is_set():
            self.release.wait(10)
        self.requests.append(request)
        return trace_service_pb2.ExportTraceServiceResponse()


@pytest.fixture
def grpc_backend():
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    svc = Traces()
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(svc, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield svc, f"http://127.0.0.1:{port}"
    svc.release.set()
    server.stop(0)


def make(endpoint: str) -> OtlpSink:
    env = dict(ENV, OTEL_EXPORTER_OTLP_ENDPOINT=endpoint, OTEL_EXPORTER_OTLP_PROTOCOL="grpc",
               OTEL_METRICS_EXPORTER="none", OTEL_LOGS_EXPORTER="none", SIDECAR_OTLP_SPOOL_DIR="off")
    cfg, warnings = load_otlp_config(env, grpc_available=True)
    assert warnings == [] and cfg.traces.protocol == "grpc"
    return OtlpSink(cfg, None, env)


def test_spans_over_grpc(grpc_backend):
    svc, endpoint = grpc_backend
    sink = make(endpoint)
    sink.accept([invocation("r1")])
    sink.flush(time.monotonic() + 2)
    names = [s.name for r in svc.requests for rs in r.resource_spans for ss in rs.scope_spans for s in ss.spans]
    assert sorted(names) == sorted(["my-function", "responseLatency", "responseDuration", "runtimeOverhead",
                                    "extensionOverhead"])
    sink.shutdown(time.monotonic() + 1)


def test_grpc_flush_returns_by_its_deadline_when_the_backend_stalls(grpc_backend):
    svc, endpoint = grpc_backend
    svc.stall.set()
    sink = make(endpoint)
    sink.accept([invocation("r1")])
    deadline = time.monotonic() + 0.2
    sink.flush(deadline)
    assert time.monotonic() <= deadline + 0.15
    assert sink.health()["otlp_buffered_spans"] == 5
    deadline = time.monotonic() + 0.2
    sink.shutdown(deadline)
    assert time.monotonic() <= deadline + 0.15
    assert sink.health()["otlp_dropped_spans_shutdown"] == 5
