"""One Invoke phase (lambda-apis.md 4.2): deliver the event, await the runtime and the extensions, emit
runtimeDone and report with the platform's lines, and shape what the caller gets back.

The steps, in order: `deliver_invoke` → `await_invoke_end` → `emit_invoke_report` → `caller_response`.
Freezing or resetting the environment afterwards is the caller's (environment.Sandbox) decision.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

from . import console, modes, records, xray
from .api import Extension, Invocation
from .config import InvokeResult
from .context import EnvContext, Stamp, now
from .init_phase import InitOutcome

RUNTIME_OUTPUT_DRAIN_S = 1.0       # the function's last lines before runtimeDone
EXTENSION_OUTPUT_DRAIN_S = 0.5     # the extensions' last lines before the freeze


@dataclass
class InvokeRequest:
    request_id: str
    body: bytes
    start: Stamp                    # the invoke phase begins (after an init on the caller's path)
    call: Stamp                     # the caller called invoke()
    invoked_arn: str
    trace_header: Optional[str] = None
    client_context: Optional[str] = None
    cognito_identity: Optional[str] = None
    content_type: str = "application/json"
    tenant_id: Optional[str] = None         # tenant isolation (platform-2025.md 2)


@dataclass
class Delivered:
    """An invoke handed to the runtime and to the extensions subscribed to INVOKE."""

    inv: Invocation
    trace: xray.InvokeTrace
    extensions: List[Extension]
    marks: Dict[int, int]           # id(extension) -> its /next count when the event was queued
    deadline: float                 # monotonic


@dataclass
class InvokeEnd:
    status: str                     # success | error | timeout
    error_type: Optional[str]
    end: Stamp
    latency_ms: float               # caller-observed: until the response (or the end)
    have_result: bool


def run_invoke(ctx: EnvContext, req: InvokeRequest, init_ms: Optional[float]) -> InvokeResult:
    """The whole invoke phase; `init_ms` is the on-demand init billed with (and reported on) this invoke."""
    cfg = ctx.cfg
    ctx.log.request_id = req.request_id
    d = deliver_invoke(ctx, req)
    end = await_invoke_end(ctx, req, d)
    duration_ms = (end.end[0] - req.start[0]) * 1000
    billed = math.ceil(duration_ms + (init_ms if (init_ms is not None and cfg.bill_init) else 0.0))
    mem_mb = ctx.memory.measure_mb()
    if end.status == "success":
        ctx.members.drain_output(list(ctx.members.extensions.values()),
                                 time.monotonic() + EXTENSION_OUTPUT_DRAIN_S)
        ctx.hub.freeze()
    emit_invoke_report(ctx, req, d, end, duration_ms, billed, mem_mb, init_ms)
    outcome, raw, caller_error = caller_response(ctx, req, d.inv, end)
    try:
        response = json.loads(raw) if raw else None
    except ValueError:
        response = raw.decode("utf-8", errors="replace")
    return InvokeResult(request_id=req.request_id, latency_ms=end.latency_ms, outcome=outcome, response=response,
                        response_bytes=raw, error_type=caller_error, status=end.status,
                        duration_ms=round(duration_ms, 3), billed_duration_ms=billed, max_memory_used_mb=mem_mb,
                        init_duration_ms=round(init_ms, 3) if init_ms is not None else None,
                        started_at=req.call[1], trace_header=d.trace.runtime_header)


def deliver_invoke(ctx: EnvContext, req: InvokeRequest) -> Delivered:
    """platform.start and START, then the invoke to the runtime's /next and the INVOKE event to extensions."""
    cfg = ctx.cfg
    trace = xray.trace_for_invoke(cfg.tracing, req.trace_header)
    deadline_ms = int(round((req.start[1] + cfg.timeout_s) * 1000))
    inv = Invocation(request_id=req.request_id, payload=req.body, deadline_ms=deadline_ms,
                     invoked_arn=req.invoked_arn, trace_header=trace.runtime_header,
                     client_context=req.client_context, cognito_identity=req.cognito_identity,
                     content_type=req.content_type, tenant_id=req.tenant_id)
    ctx.hub.emit("platform.start", records.start(request_id=req.request_id, version=cfg.function_version,
                                                 tracing=trace.tracing, tenant_id=req.tenant_id))
    ctx.log.platform(console.start_line(req.request_id, cfg.function_version))
    event: Dict[str, Any] = {"eventType": "INVOKE", "deadlineMs": deadline_ms, "requestId": req.request_id,
                             "invokedFunctionArn": req.invoked_arn}
    if trace.extension_value:
        event["tracing"] = {"type": records.TRACE_TYPE, "value": trace.extension_value}
    with ctx.control.cv:
        ctx.control.runtime.pending = inv
        subscribed = [e for e in ctx.control.registered() if "INVOKE" in e.events]
        marks = {id(e): e.next_calls for e in subscribed}
        for e in subscribed:
            e.queue.append(dict(event))
        ctx.control.cv.notify_all()
    return Delivered(inv, trace, subscribed, marks, req.start[0] + cfg.timeout_s)


def await_invoke_end(ctx: EnvContext, req: InvokeRequest, d: Delivered) -> InvokeEnd:
    """The runtime's result, its next /next (then runtimeDone), then every INVOKE extension's next /next."""
    inv = d.inv
    err = ctx.wait(lambda: inv.result is not None, d.deadline)
    have_result = inv.result is not None
    ctx.memory.sample()
    latency_ms = ((inv.response_end[0] if have_result else time.monotonic()) - req.call[0]) * 1000
    runtime_done_emitted = False
    if err is None:
        err = ctx.wait(lambda: inv.runtime_next is not None, d.deadline)
    if err is None:
        # the function's output written before its /next precedes runtimeDone in the stream
        ctx.members.drain_output([ctx.members.runtime], min(d.deadline, time.monotonic() + RUNTIME_OUTPUT_DRAIN_S))
        emit_runtime_done(ctx, inv, "success", None, inv.runtime_next, d.trace.tracing)
        runtime_done_emitted = True
        err = ctx.wait(lambda: all(e.next_calls > d.marks[id(e)] for e in d.extensions), d.deadline)
    status, error_type = "success", None
    if err == "timeout":
        status = "timeout"
    elif err is not None:
        status, error_type = "error", err
    end = now()
    if status == "success":
        end = max([inv.runtime_next] + [e.last_next for e in d.extensions], key=lambda t: t[0])
    elif not runtime_done_emitted:
        emit_runtime_done(ctx, inv, status, error_type, end, d.trace.tracing)
    return InvokeEnd(status, error_type, end, latency_ms, have_result)


def emit_runtime_done(ctx: EnvContext, inv: Invocation, status: str, error_type: Optional[str], end: Stamp,
                      tracing: Any) -> None:
    delivered = inv.delivered or end
    duration_ms = (end[0] - delivered[0]) * 1000
    kwargs: Dict[str, Any] = {}
    if status == "success" and inv.result == "response" and inv.response_start and inv.response_end:
        kwargs = dict(response_latency_ms=(inv.response_start[0] - delivered[0]) * 1000,
                      response_duration_ms=(inv.response_end[0] - inv.response_start[0]) * 1000,
                      runtime_overhead_ms=(end[0] - inv.response_end[0]) * 1000)
    produced = len(inv.body) if inv.result == "response" else 0
    ctx.hub.emit("platform.runtimeDone", records.runtime_done(
        request_id=inv.request_id, status=status, error_type=error_type, duration_ms=duration_ms,
        produced_bytes=produced, start_time=delivered[1] if kwargs else None, tracing=tracing,
        tenant_id=inv.tenant_id, **kwargs))


def emit_invoke_report(ctx: EnvContext, req: InvokeRequest, d: Delivered, end: InvokeEnd, duration_ms: float,
                       billed: int, mem_mb: int, init_ms: Optional[float]) -> None:
    """platform.report, then the platform's lines: timeout/error, END, REPORT and XRAY."""
    cfg, rid, tracing = ctx.cfg, req.request_id, d.trace.tracing
    spans = []
    if end.status == "success" and d.extensions:
        spans.append(records.span("extensionOverhead", d.inv.runtime_next[1],
                                  (end.end[0] - d.inv.runtime_next[0]) * 1000))
    extras = modes.report_extras(ctx)   # SnapStart: restoreDurationMs, billedRestoreDurationMs
    ctx.hub.emit("platform.report", records.report(
        request_id=rid, status=end.status, error_type=end.error_type, duration_ms=duration_ms,
        billed_duration_ms=billed, memory_size_mb=cfg.memory_mb, max_memory_used_mb=mem_mb,
        init_duration_ms=init_ms, spans=spans, tracing=tracing, tenant_id=req.tenant_id, **extras))
    if end.status == "timeout":
        ctx.log.platform(console.timeout_message(end.end[1], rid, cfg.timeout_s))
    elif end.status == "error":
        ctx.log.platform(console.error_line(rid, ctx.members.error_description(end.error_type), end.error_type))
    ctx.log.platform(console.end_line(rid))
    ctx.log.platform(console.report_line(rid, duration_ms, billed, cfg.memory_mb, mem_mb, init_ms, end.status,
                                         end.error_type, modes.report_line_suffix(extras)))
    if tracing is not None:
        ctx.log.platform(console.xray_line(xray.parse_header(tracing["value"]).get("Root"),
                                           tracing.get("spanId", "")))


def caller_response(ctx: EnvContext, req: InvokeRequest, inv: Invocation,
                    end: InvokeEnd) -> Tuple[str, bytes, Optional[str]]:
    """(outcome, raw body, error type) as the invoking client sees them."""
    if end.have_result:
        return ("success" if inv.result == "response" else "error", inv.body,
                inv.error_type if inv.result == "error" else None)
    if end.status == "timeout":
        message = console.timeout_message(end.end[1], req.request_id, ctx.cfg.timeout_s)
        return "timeout", json.dumps({"errorMessage": message}).encode(), "Sandbox.Timedout"
    description = ctx.members.error_description(end.error_type)
    return "crash", json.dumps({"errorType": end.error_type,
                                "errorMessage": f"RequestId: {req.request_id} Error: {description}"}).encode(), \
        end.error_type


def init_failed_result(request_id: str, call: Stamp, outcome: InitOutcome) -> InvokeResult:
    """What the caller gets when the init on its path failed: the runtime's init error, else a generic one."""
    error_type = outcome.error_type or "Sandbox.Timedout"
    raw = outcome.error_body
    try:
        body = json.loads(raw) if raw else None
    except ValueError:
        body = None
    if not isinstance(body, dict):
        body = {"errorType": error_type,
                "errorMessage": f"RequestId: {request_id} Error: init failed with {error_type} "
                                f"(phase {outcome.phase}, status {outcome.status})"}
        raw = json.dumps(body).encode()
    return InvokeResult(request_id=request_id, latency_ms=(time.monotonic() - call[0]) * 1000,
                        outcome="timeout" if outcome.status == "timeout" else "init_error",
                        response=body, response_bytes=raw, error_type=error_type,
                        status=outcome.status, started_at=call[1])
