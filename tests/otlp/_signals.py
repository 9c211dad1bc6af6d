"""Hand-built sidecar signals for the OTLP tests (the engine is not involved)."""

from __future__ import annotations

import time
from typing import Any, Optional

from otel_sidecar.events import PlatformSpan, TraceContext
from otel_sidecar.signals import InitSignal, InvocationSignal, LogSignal, ShutdownSignal

ARN = "arn:aws:lambda:us-east-1:123456789012:function:my-function"
ENV = {"AWS_LAMBDA_FUNCTION_NAME": "my-function", "AWS_LAMBDA_FUNCTION_VERSION": "7",
       "AWS_REGION": "us-east-1", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
       "AWS_LAMBDA_LOG_STREAM_NAME": "2026/11/22/[7]abcdef"}


def init(start: Optional[float] = None, kind: str = "cold_start", status: str = "success",
         first: Optional[str] = "req-1", phase: str = "init") -> InitSignal:
    start = time.time() - 2.0 if start is None else start
    return InitSignal(time=start + 0.25, start=start, duration_ms=250.0, initialization_type="on-demand",
                      phase=phase, status=status, error_type=None if status == "success" else "Runtime.ExitError",
                      kind=kind, cold_start=kind == "cold_start", proactive=kind == "proactive",
                      first_request_id=first, idle_gap_ms=1.0, source="initReport")


def invocation(request_id: str = "req-1", start: Optional[float] = None, status: str = "success",
               error_type: Optional[str] = None, timeout: bool = False, oom: bool = False,
               cold_start: bool = False, trace: Optional[TraceContext] = None,
               invoke_tracing_value: Optional[str] = None, init_signal: Optional[InitSignal] = None,
               complete: bool = True, **extra: Any) -> InvocationSignal:
    start = time.time() - 1.0 if start is None else start
    spans = (PlatformSpan("responseLatency", start + 0.001, 40.0), PlatformSpan("responseDuration", start + 0.041, 2.0),
             PlatformSpan("runtimeOverhead", start + 0.043, 1.5), PlatformSpan("extensionOverhead", start + 0.0445, 3.0))
    error = status != "success" or oom or timeout or extra.get("function_error", False)
    fields = dict(
        request_id=request_id, time=start + 0.06, start=start, complete=complete, status=status,
        error_type=error_type, error=error, function_error=extra.pop("function_error", False), timeout=timeout,
        oom=oom, oom_sources=("errorType",) if oom else (), cold_start=cold_start,
        start_kind="cold_start" if cold_start else "warm", init_duration_ms=250.0 if cold_start else None,
        restore_duration_ms=None, duration_ms=47.5, billed_duration_ms=48.0, runtime_duration_ms=44.5,
        post_runtime_ms=3.0, response_latency_ms=40.0, response_duration_ms=2.0, runtime_overhead_ms=1.5,
        produced_bytes=17, memory_size_mb=256, max_memory_used_mb=64, memory_utilization=25.0,
        estimated_cost_usd=2e-7, throttles=0, log_lines=1, trace=trace, invoke_tracing_value=invoke_tracing_value,
        spans=spans, invoked_arn=ARN, version="7", init=init_signal)
    fields.update(extra)
    return InvocationSignal(**fields)


def log_line(text: str, request_id: Optional[str] = "req-1", level: Optional[str] = None,
             trace: Optional[TraceContext] = None, invoke_tracing_value: Optional[str] = None) -> LogSignal:
    return LogSignal(time=time.time(), text=text, message=text, level=level, request_id=request_id, trace=trace,
                     invoke_tracing_value=invoke_tracing_value)


def shutdown(reason: str = "spindown") -> ShutdownSignal:
    return ShutdownSignal(reason=reason, time=time.time())
