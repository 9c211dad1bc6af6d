"""Lambda Managed Instances (LMI, platform-2025.md 1): one environment, many invocations at once.

What this mode does (each point from the digest's section 1.12):
1. AWS_LAMBDA_INITIALIZATION_TYPE=lambda-managed-instances for runtime and extensions;
   AWS_LAMBDA_MAX_CONCURRENCY=N for the runtime only; version "$LATEST.PUBLISHED" (config.py).
2. External extensions may register for SHUTDOWN only (INVOKE: 403 Extension.InvalidEventType,
   "INVOKE: ErrorInvalidEventType"); internal extensions for no event (api.py).
3. Telemetry schema 2025-01-29 required (`lmi_strict_schema`, default on: others get 400
   ValidationError); /2020-08-15/logs, /2021-04-23 and /runtime/restore are 404 (api.py).
4. Never frozen; telemetry delivered continuously. The runtime is awslambdaric's own LMI mode: with
   AWS_LAMBDA_MAX_CONCURRENCY set it forks N worker processes (one process per concurrent request, as
   D-LMI-RT says for Python), each parks in /next; `invoke()` below hands each invoke to a parked worker
   and may run concurrently from many threads (the CLI dispatches `--concurrency` payloads at once).
   When no worker is free, the invoke waits up to DISPATCH_WAIT_S, then fails with Runtime.Unavailable
   (Lambda's router would throttle or pick another environment; the sandbox has one).
5. No platform.runtimeDone; platform.report {requestId, status, errorType?, metrics {durationMs},
   spans [responseLatency, responseDuration], tracing?, tenantId?}; a handled /error has status
   `lmi_error_status` ("error" as RIE-LMI, configurable to the classic "success").
6. JSON log format forced; non-JSON lines wrapped as {timestamp, level, message} (telemetry.py).
7. A per-invoke timeout does not stop the worker; its late /response or /error gets 410 InvokeTimeout.
8. An extension that exits (any time) ends the environment: running invokes fail, the other extensions
   get SHUTDOWN "failure", and the next invoke initialises a new environment (phase "init": a failed LMI
   environment is replaced, never re-initialised inside an invoke).
Init: initRuntimeDone as soon as one worker is ready, then platform.extension x N, then initReport; on an
init timeout no initRuntimeDone and initReport {status "timeout", errorType "Sandbox.Timedout"}. The init
limit is max(130 s, timeout) (config.py). SHUTDOWN: reasons spindown|failure; the runtime gets SIGTERM
and 600 ms before SIGKILL, then telemetry is flushed, then SHUTDOWN goes to the extensions (2 s budget).

Not modelled: a runtime worker crash (the environment keeps serving with the others in Lambda; here the
invoke that worker held times out), the log FD provider socket (workers write to the runtime's
inherited stdout pipe; lines up to PIPE_BUF stay whole), the adaptive concurrency of Lambda.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from . import records, xray
from .api import Invocation, sanitize_error_type

DISPATCH_WAIT_S = 5.0
TIMEOUT_ERROR = "Sandbox.Timedout"
ENDED_ERROR = "Sandbox.Failure"          # invokes aborted by a shutdown (unverified type)


def setup(cfg: Any, control: Any, hub: Any) -> None:
    """Called once when the sandbox is built."""
    control.mode = "managed-instances"
    hub.never_freeze = True
    if cfg.lmi_strict_schema:
        hub.required_schema = records.LMI_SCHEMA


def adjust_runtime_env(cfg: Any, env: Dict[str, str]) -> None:
    env["AWS_LAMBDA_MAX_CONCURRENCY"] = str(cfg.concurrency)


# ---- init ordering (platform-2025.md 1.5) --------------------------------------------------------

def on_runtime_ready(ctx: Any, phase: str, err: Optional[str]) -> None:
    """After the 'runtime ready' gate of init: LMI sends initRuntimeDone now, before the extensions."""
    if err is not None:
        return      # timeout: no initRuntimeDone; error: sent with the others at the end of init
    ctx.hub.emit("platform.initRuntimeDone", records.init_runtime_done(
        initialization_type=ctx.cfg.init_type, phase=phase, status="success"))
    ctx.modes.lmi_runtime_done_sent = True


def init_runtime_done_pending(state: Any, status: str) -> bool:
    """Whether the end of init still has to emit initRuntimeDone (False if already sent, or on timeout)."""
    sent = state.lmi_runtime_done_sent
    state.lmi_runtime_done_sent = False
    return not sent and status != "timeout"


def init_report_error_type(status: str, error_type: Optional[str]) -> Optional[str]:
    return TIMEOUT_ERROR if status == "timeout" else error_type


# ---- invoke ---------------------------------------------------------------------------------------

@dataclass
class _Outcome:
    """How one LMI invoke ended, for platform.report, the REPORT line and the caller."""

    status: str
    error_type: Optional[str]           # in platform.report
    outcome: str                        # InvokeResult.outcome
    caller_error: Optional[str]
    raw: bytes
    duration_ms: float
    spans: List[dict] = field(default_factory=list)
    latency_end: Optional[float] = None


def _result(request_id: str, call: Tuple[float, float], outcome: str, status: str, error_type: Optional[str],
            raw: bytes, duration_ms: Optional[float], trace_header: Optional[str],
            latency_end: Optional[float] = None) -> Any:
    from .config import InvokeResult

    try:
        response = json.loads(raw) if raw else None
    except ValueError:
        response = raw.decode("utf-8", errors="replace")
    end = latency_end if latency_end is not None else time.monotonic()
    return InvokeResult(request_id=request_id, latency_ms=(end - call[0]) * 1000, outcome=outcome,
                        response=response, response_bytes=raw, error_type=error_type, status=status,
                        duration_ms=round(duration_ms, 3) if duration_ms is not None else None,
                        started_at=call[1], trace_header=trace_header)


def _ensure_init(sb: Any, request_id: str, call: Tuple[float, float]) -> Optional[Any]:
    """An initialised environment (a new one after a failure: modes.phase_after_reset), or the failed result."""
    with sb.operation_lock:
        sb.start()
        if sb.closed:
            raise RuntimeError("the sandbox is shut down")
        with sb.control.cv:
            fatal = sb.control.fatal
        if sb.ready and fatal:
            end_environment(sb, sb.control.generation, fatal)
        if not sb.ready:
            outcome = sb.init()         # LMI is never frozen; a failed init resets the environment
            if outcome.status != "success":
                return sb.init_failed(request_id, call, outcome)
        _start_watch(sb)                # also after a proactive init (Sandbox.init())
        return None


def invoke(sb: Any, body: bytes, *, trace_header: Optional[str] = None, client_context: Optional[str] = None,
           cognito_identity: Optional[str] = None, content_type: str = "application/json",
           invoked_arn: Optional[str] = None, tenant_id: Optional[str] = None) -> Any:
    """One invoke of an LMI environment; safe to call from many threads at once."""
    from . import tenancy

    cfg = sb.cfg
    call = (time.monotonic(), time.time())
    request_id = str(uuid.uuid4())
    with sb.operation_lock:
        tenant = tenancy.pin(sb.mode_state, cfg, sb.hub, tenant_id)
    failed = _ensure_init(sb, request_id, call)
    if failed is not None:
        return failed
    trace = xray.trace_for_invoke(cfg.tracing, trace_header)
    inv = Invocation(request_id=request_id, payload=body, deadline_ms=0,
                     invoked_arn=invoked_arn or cfg.function_arn, trace_header=trace.runtime_header,
                     client_context=client_context, cognito_identity=cognito_identity,
                     content_type=content_type, tenant_id=tenant)
    queued = _queue(sb, inv, trace)
    if queued is None:
        raw = json.dumps({"errorType": "Runtime.Unavailable",
                          "errorMessage": "no runtime worker is free to take the invoke"}).encode()
        result = _result(request_id, call, "error", "error", "Runtime.Unavailable", raw, None, trace.runtime_header)
        sb.invocations.append(result)
        return result
    gen, start_m = queued
    err = sb.ctx.wait(lambda: inv.result is not None or sb.ctx.members.stopping or sb.control.generation != gen,
                      start_m + cfg.timeout_s)
    end = _outcome(sb, inv, gen, err, start_m)
    sb.hub.emit("platform.report", records.lmi_report(
        request_id=request_id, status=end.status, error_type=end.error_type, duration_ms=end.duration_ms,
        spans=end.spans, tracing=trace.tracing, tenant_id=tenant))
    line = f"REPORT RequestId: {request_id}\tDuration: {end.duration_ms:.2f} ms"
    if end.status != "success":
        line += f"\tStatus: {end.status}" + (f"\tError Type: {end.error_type}" if end.error_type else "")
    sb.ctx.log.platform(line)
    result = _result(request_id, call, end.outcome, end.status, end.caller_error, end.raw, end.duration_ms,
                     trace.runtime_header, end.latency_end)
    sb.invocations.append(result)
    if inv.result is None and err != "timeout":
        # the environment ends (or already ended, or shuts down): return once that is complete
        end_environment(sb, gen, end.caller_error or ENDED_ERROR)
    return result


def _queue(sb: Any, inv: Invocation, trace: Any) -> Optional[Tuple[int, float]]:
    """Hand the invoke to a parked runtime worker: (generation, start) or None when none frees up in time."""
    cfg, control = sb.cfg, sb.control
    stopping = lambda: sb.ctx.members.stopping  # noqa: E731 - read under control.cv
    with control.cv:
        gen, lmi = control.generation, control.lmi
        limit = time.monotonic() + DISPATCH_WAIT_S
        while lmi.idle - len(lmi.pending) <= 0 and not control.fatal and not stopping() \
                and control.generation == gen and time.monotonic() < limit:
            control.cv.wait(min(0.05, max(0.0, limit - time.monotonic())))
        if lmi.idle - len(lmi.pending) <= 0 or control.generation != gen or stopping():
            return None
        start_m, start_e = time.monotonic(), time.time()
        inv.deadline_ms = int(round((start_e + cfg.timeout_s) * 1000))
        sb.hub.emit("platform.start", records.start(request_id=inv.request_id, version=cfg.function_version,
                                                    tracing=trace.tracing, tenant_id=inv.tenant_id,
                                                    function_arn=cfg.function_arn))
        sb.ctx.log.platform(f"START RequestId: {inv.request_id} Version: {cfg.function_version}")
        lmi.pending.append(inv)
        control.cv.notify_all()
    return gen, start_m


def _outcome(sb: Any, inv: Invocation, gen: int, err: Optional[str], start_m: float) -> _Outcome:
    """The end of one invoke: its result, a timeout (the worker goes on) or the end of the environment."""
    cfg, control = sb.cfg, sb.control
    with control.cv:
        have = inv.result is not None
        if not have:
            if inv in control.lmi.pending:
                control.lmi.pending.remove(inv)
            control.lmi.active.pop(inv.request_id, None)
            if err == "timeout":
                control.lmi.timed_out.append(inv.request_id)
        ended = sb.mode_state.lmi_end_reason.get(gen)      # set before the reset begins
    delivered = inv.delivered
    if not have:
        duration_ms = (time.monotonic() - (delivered[0] if delivered else start_m)) * 1000
        if err == "timeout":
            raw = json.dumps({"errorMessage": f"{records.iso(time.time())} {inv.request_id} Task timed out "
                                              f"after {cfg.timeout_s:.2f} seconds"}).encode()
            return _Outcome("timeout", TIMEOUT_ERROR, "timeout", TIMEOUT_ERROR, raw, duration_ms)
        reason = err or ended or ENDED_ERROR
        raw = json.dumps({"errorType": reason, "errorMessage": f"RequestId: {inv.request_id} Error: the "
                                                               f"environment ended ({reason})"}).encode()
        return _Outcome("error", reason, "crash", reason, raw, duration_ms)
    end = inv.response_end
    duration_ms = (end[0] - (delivered or end)[0]) * 1000
    if inv.result == "response" and inv.error_type is None:
        spans = []
        if delivered and inv.response_start:
            spans = [records.span("responseLatency", delivered[1], (inv.response_start[0] - delivered[0]) * 1000),
                     records.span("responseDuration", inv.response_start[1], (end[0] - inv.response_start[0]) * 1000)]
        return _Outcome("success", None, "success", None, inv.body, duration_ms, spans, end[0])
    error_type = inv.error_type if inv.result == "response" else sanitize_error_type(inv.error_type)
    status = cfg.lmi_error_status if inv.result == "error" else "error"
    return _Outcome(status, None if status == "success" else error_type, "error", inv.error_type, inv.body,
                    duration_ms, [], end[0])


# ---- the environment ends (platform-2025.md 1.9) ----------------------------------------------------

def end_environment(sb: Any, gen: int, reason: str) -> None:
    """An extension (or the runtime) exited: stop this environment once (SHUTDOWN "failure" to the others);
    the next invoke initialises a new one (modes.phase_after_reset)."""
    with sb.operation_lock:
        if sb.control.generation != gen or sb.closed:
            return
        sb.mode_state.lmi_end_reason[gen] = reason
        sb.reset("failure")


def _start_watch(sb: Any) -> None:
    """A watcher that ends the environment as soon as a fatal error (an extension exit) is set."""
    control, state = sb.control, sb.mode_state
    with control.cv:
        gen = control.generation
        if state.lmi_watched_generation == gen:
            return
        state.lmi_watched_generation = gen

    def watch() -> None:
        with control.cv:
            control.cv.wait_for(lambda: control.closed or control.generation != gen or bool(control.fatal)
                                or sb.ctx.members.stopping)
            fatal = control.fatal if control.generation == gen and not sb.ctx.members.stopping else None
        if fatal:
            end_environment(sb, gen, fatal)

    threading.Thread(target=watch, name="lmi-watch", daemon=True).start()


def dispatch(sb: Any, payloads: List[Any], concurrency: int, interval_s: float = 0.0,
             tenants: Optional[List[Optional[str]]] = None) -> List[Any]:
    """Invoke every payload with up to `concurrency` invokes in flight; results in payload order."""
    from concurrent.futures import ThreadPoolExecutor

    def one(i: int) -> Any:
        kw: Dict[str, Any] = {}
        if tenants is not None and tenants[i] is not None:
            kw["tenant_id"] = tenants[i]
        return sb.invoke(payloads[i], **kw)

    with ThreadPoolExecutor(max_workers=max(1, concurrency), thread_name_prefix="lmi-invoke") as pool:
        futures = []
        for i in range(len(payloads)):
            if i and interval_s > 0:
                time.sleep(interval_s)
            futures.append(pool.submit(one, i))
        return [f.result() for f in futures]
