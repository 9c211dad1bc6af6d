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
from typing import Any, Dict, List, Optional

from . import records, xray
from .api import Invocation, sanitize_error_type

DISPATCH_WAIT_S = 5.0
TIMEOUT_ERROR = "Sandbox.Timedout"
ENDED_ERROR = "Sandbox.Failure"          # invokes aborted by a shutdown (unverified type)


def setup(sb: Any) -> None:
    """Called once when the sandbox is built."""
    cfg = sb.cfg
    sb.control.mode = "managed-instances"
    sb.hub.never_freeze = True
    if cfg.lmi_strict_schema:
        sb.hub.required_schema = records.LMI_SCHEMA
    sb.lmi_end_reason = {}


def adjust_runtime_env(sb: Any, env: Dict[str, str]) -> None:
    env["AWS_LAMBDA_MAX_CONCURRENCY"] = str(sb.cfg.concurrency)


# ---- init ordering (platform-2025.md 1.5) --------------------------------------------------------

def on_runtime_ready(sb: Any, phase: str, err: Optional[str]) -> None:
    """After the 'runtime ready' gate of init: LMI sends initRuntimeDone now, before the extensions."""
    if err is not None:
        return      # timeout: no initRuntimeDone; error: sent with the others at the end of init
    sb.hub.emit("platform.initRuntimeDone", records.init_runtime_done(
        initialization_type=sb.cfg.init_type, phase=phase, status="success"))
    sb.lmi_runtime_done_sent = True


def init_runtime_done_pending(sb: Any, status: str) -> bool:
    """Whether the end of init still has to emit initRuntimeDone (False if already sent, or on timeout)."""
    sent = getattr(sb, "lmi_runtime_done_sent", False)
    sb.lmi_runtime_done_sent = False
    return not sent and status != "timeout"


def init_report_error_type(status: str, error_type: Optional[str]) -> Optional[str]:
    return TIMEOUT_ERROR if status == "timeout" else error_type


# ---- invoke ---------------------------------------------------------------------------------------

def _result(request_id: str, t_call_m: float, t_call_e: float, outcome: str, status: str,
            error_type: Optional[str], raw: bytes, duration_ms: Optional[float], trace_header: Optional[str],
            latency_end: Optional[float] = None) -> Any:
    from .config import InvokeResult

    try:
        response = json.loads(raw) if raw else None
    except ValueError:
        response = raw.decode("utf-8", errors="replace")
    end = latency_end if latency_end is not None else time.monotonic()
    return InvokeResult(request_id=request_id, latency_ms=(end - t_call_m) * 1000, outcome=outcome,
                        response=response, response_bytes=raw, error_type=error_type, status=status,
                        duration_ms=round(duration_ms, 3) if duration_ms is not None else None,
                        started_at=t_call_e, trace_header=trace_header)


def _ensure_init(sb: Any, request_id: str, t_call_m: float, t_call_e: float) -> Optional[Any]:
    with sb._op_lock:
        sb.start()
        if sb._closed:
            raise RuntimeError("the sandbox is shut down")
        with sb.control.cv:
            fatal = sb.control.fatal
        if sb._ready and fatal:
            end_environment(sb, sb.control.generation, fatal)
        if sb._ready:
            _start_watch(sb)        # after a proactive init (Sandbox.init()) the watch starts here
            return None
        sb._next_phase = "init"
        outcome = sb._init("init", time.monotonic() + sb.cfg.init_timeout_s)
        if outcome.status == "success":
            _start_watch(sb)
            return None
        sb._reset("timeout" if outcome.status == "timeout" else "failure")
        sb._next_phase = "init"
        return sb._init_failed(request_id, t_call_m, t_call_e, outcome)


def invoke(sb: Any, body: bytes, *, trace_header: Optional[str] = None, client_context: Optional[str] = None,
           cognito_identity: Optional[str] = None, content_type: str = "application/json",
           invoked_arn: Optional[str] = None, tenant_id: Optional[str] = None) -> Any:
    """One invoke of an LMI environment; safe to call from many threads at once."""
    from . import tenancy

    cfg, control, hub = sb.cfg, sb.control, sb.hub
    t_call_m, t_call_e = time.monotonic(), time.time()
    request_id = str(uuid.uuid4())
    with sb._op_lock:
        tenant = tenancy.pin(sb, tenant_id)
    failed = _ensure_init(sb, request_id, t_call_m, t_call_e)
    if failed is not None:
        return failed
    trace = xray.trace_for_invoke(cfg.tracing, trace_header)
    arn = invoked_arn or cfg.function_arn
    with control.cv:
        gen = control.generation
        lmi = control.lmi
        limit = time.monotonic() + DISPATCH_WAIT_S
        while lmi.idle - len(lmi.pending) <= 0 and not control.fatal and not sb._stopping \
                and control.generation == gen and time.monotonic() < limit:
            control.cv.wait(min(0.05, max(0.0, limit - time.monotonic())))
        if lmi.idle - len(lmi.pending) <= 0 or control.generation != gen or sb._stopping:
            raw = json.dumps({"errorType": "Runtime.Unavailable",
                              "errorMessage": "no runtime worker is free to take the invoke"}).encode()
            result = _result(request_id, t_call_m, t_call_e, "error", "error", "Runtime.Unavailable", raw, None,
                             trace.runtime_header)
            sb.invocations.append(result)
            return result
        start_m, start_e = time.monotonic(), time.time()
        deadline_m = start_m + cfg.timeout_s
        inv = Invocation(request_id=request_id, payload=body, deadline_ms=int(round((start_e + cfg.timeout_s) * 1000)),
                         invoked_arn=arn, trace_header=trace.runtime_header, client_context=client_context,
                         cognito_identity=cognito_identity, content_type=content_type, tenant_id=tenant)
        hub.emit("platform.start", records.start(request_id=request_id, version=cfg.function_version,
                                                 tracing=trace.tracing, tenant_id=tenant,
                                                 function_arn=cfg.function_arn))
        sb._platform_line(f"START RequestId: {request_id} Version: {cfg.function_version}")
        lmi.pending.append(inv)
        control.cv.notify_all()
    err = sb._wait(lambda: inv.result is not None or sb._stopping or control.generation != gen, deadline_m)
    with control.cv:
        have = inv.result is not None
        if not have:
            if inv in control.lmi.pending:
                control.lmi.pending.remove(inv)
            control.lmi.active.pop(request_id, None)
            if err == "timeout":
                control.lmi.timed_out.append(request_id)
        ended = sb.lmi_end_reason.get(gen)      # set before the reset begins
    delivered = inv.delivered
    spans: List[dict] = []
    raw = b""
    if have:
        end = inv.response_end
        duration_ms = (end[0] - (delivered or end)[0]) * 1000
        raw = inv.body
        if inv.result == "response" and inv.error_type is None:
            status, error_type, outcome, caller_error = "success", None, "success", None
            if delivered and inv.response_start:
                spans = [records.span("responseLatency", delivered[1], (inv.response_start[0] - delivered[0]) * 1000),
                         records.span("responseDuration", inv.response_start[1],
                                      (end[0] - inv.response_start[0]) * 1000)]
        else:
            error_type = inv.error_type if inv.result == "response" else sanitize_error_type(inv.error_type)
            status = cfg.lmi_error_status if inv.result == "error" else "error"
            outcome, caller_error = "error", inv.error_type
            if status == "success":
                error_type = None
        latency_end = end[0]
    else:
        latency_end = None
        now_m = time.monotonic()
        duration_ms = (now_m - (delivered[0] if delivered else start_m)) * 1000
        if err == "timeout":
            status, error_type, outcome, caller_error = "timeout", TIMEOUT_ERROR, "timeout", TIMEOUT_ERROR
            raw = json.dumps({"errorMessage": f"{records.iso(time.time())} {request_id} Task timed out after "
                                              f"{cfg.timeout_s:.2f} seconds"}).encode()
        else:
            reason = err or ended or ENDED_ERROR
            status, error_type, outcome, caller_error = "error", reason, "crash", reason
            raw = json.dumps({"errorType": reason, "errorMessage": f"RequestId: {request_id} Error: the "
                                                                   f"environment ended ({reason})"}).encode()
    hub.emit("platform.report", records.lmi_report(request_id=request_id, status=status, error_type=error_type,
                                                   duration_ms=duration_ms, spans=spans, tracing=trace.tracing,
                                                   tenant_id=tenant))
    line = f"REPORT RequestId: {request_id}\tDuration: {duration_ms:.2f} ms"
    if status != "success":
        line += f"\tStatus: {status}" + (f"\tError Type: {error_type}" if error_type else "")
    sb._platform_line(line)
    result = _result(request_id, t_call_m, t_call_e, outcome, status, caller_error, raw, duration_ms,
                     trace.runtime_header, latency_end)
    sb.invocations.append(result)
    if not have and err != "timeout":
        # the environment ends (or already ended, or shuts down): return once that is complete
        end_environment(sb, gen, reason)
    return result


# ---- the environment ends (platform-2025.md 1.9) ----------------------------------------------------

def end_environment(sb: Any, gen: int, reason: str) -> None:
    """An extension (or the runtime) exited: stop this environment once (SHUTDOWN "failure" to the others);
    the next invoke initialises a new one."""
    with sb._op_lock:
        if sb.control.generation != gen or sb._closed:
            return
        sb.lmi_end_reason[gen] = reason
        sb._reset("failure")
        sb._next_phase = "init"


def _start_watch(sb: Any) -> None:
    """A watcher that ends the environment as soon as a fatal error (an extension exit) is set."""
    control = sb.control
    with control.cv:
        gen = control.generation
        if getattr(sb, "lmi_watched_generation", None) == gen:
            return
        sb.lmi_watched_generation = gen

    def watch() -> None:
        with control.cv:
            control.cv.wait_for(lambda: control.closed or control.generation != gen or bool(control.fatal)
                                or sb._stopping)
            fatal = control.fatal if control.generation == gen and not sb._stopping else None
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
