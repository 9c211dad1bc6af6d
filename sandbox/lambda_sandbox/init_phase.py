"""The Init phase (lambda-apis.md 4.1): extensions, then the runtime, then every registered extension's first
/next, with the platform events and lines in the order of "Sandbox internals" (ARCHITECTURE.md).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import List, Optional, Tuple

from . import console, modes, records
from .context import EnvContext
from .layers import list_extensions
from .members import MAX_EXTENSIONS


@dataclass
class InitOutcome:
    phase: str
    status: str                 # success | error | timeout
    error_type: Optional[str]
    duration_ms: float
    error_body: bytes = b""       # the runtime's init/error payload, returned to the caller


ExtRecord = Tuple[str, str, List[str], Optional[str]]      # name, state, events, error type


def run_init(ctx: EnvContext, phase: str, deadline: float) -> Tuple[InitOutcome, float]:
    """Initialise the environment once; returns the outcome and the exact duration in ms."""
    t0 = time.monotonic()
    ctx.members.stopping = False
    ctx.hub.thaw()
    emit_init_start(ctx, phase)
    err = start_processes(ctx, phase, deadline)
    # static-init output belongs before initRuntimeDone in the stream (5.7 A)
    ctx.members.drain_output([ctx.members.runtime, *ctx.members.extensions.values()],
                             min(deadline, time.monotonic() + 0.5))
    ext_records, init_error_body = close_registration(ctx)
    ctx.hub.close_window()
    status = "success" if err is None else ("timeout" if err == "timeout" else "error")
    error_type = err if status == "error" else None
    duration_ms = emit_init_end(ctx, phase, status, error_type, ext_records, t0)
    return InitOutcome(phase, status, error_type, round(duration_ms, 3), init_error_body), duration_ms


def emit_init_start(ctx: EnvContext, phase: str) -> None:
    cfg = ctx.cfg
    ctx.hub.emit("platform.initStart", records.init_start(
        initialization_type=cfg.init_type, phase=phase, runtime_version=cfg.runtime_version,
        runtime_version_arn=ctx.runtime_version_arn, function_name=cfg.function_name,
        function_version=cfg.function_version, instance_id=ctx.instance_id,
        instance_max_memory_mb=cfg.memory_mb))
    ctx.log.platform(console.init_start_line(cfg.runtime_version, ctx.runtime_version_arn))


def start_processes(ctx: EnvContext, phase: str, deadline: float) -> Optional[str]:
    """Extension init, runtime init, then every registered extension at /next: None or the error type."""
    control = ctx.control
    files = list_extensions(ctx.layout.opt_host)
    if len(files) > MAX_EXTENSIONS:
        with control.cv:
            control.set_fatal("Extension.TooManyExtensions")
        return "Extension.TooManyExtensions"
    ctx.members.launch_extensions(files)
    err = ctx.wait(lambda: all(e.state != "Started" for e in control.extensions if e.external), deadline)
    if err is None:
        ctx.members.launch_runtime()
        err = ctx.wait(lambda: control.runtime.first_next is not None, deadline)
        modes.runtime_ready(ctx, phase, err)
    if err is None:
        err = ctx.wait(lambda: all(e.next_calls > 0 for e in control.registered()), deadline)
    return err


def close_registration(ctx: EnvContext) -> Tuple[List[ExtRecord], bytes]:
    """Registration ends with init; the extensions' states (external first) and the runtime's init error."""
    with ctx.control.cv:
        ctx.control.registration_open = False
        exts = [e for e in ctx.control.extensions if e.external] + \
               [e for e in ctx.control.extensions if not e.external]
        ext_records = [(e.name, e.state, list(e.events), e.error_type) for e in exts]
        return ext_records, ctx.control.runtime.init_error_body


def emit_init_end(ctx: EnvContext, phase: str, status: str, error_type: Optional[str],
                  ext_records: List[ExtRecord], t0: float) -> float:
    """initRuntimeDone, one platform.extension per extension, initReport (and INIT_REPORT when Lambda prints it)."""
    cfg = ctx.cfg
    modes.init_runtime_done(ctx, phase, status, error_type)     # LMI: maybe sent already, or not at all
    for name, state, events, etype in ext_records:
        ctx.hub.emit("platform.extension", records.extension(name=name, state=state, events=events,
                                                             error_type=etype))
        ctx.log.platform(console.extension_line(name, state, events))
    duration_ms = (time.monotonic() - t0) * 1000
    ctx.hub.emit("platform.initReport", records.init_report(
        initialization_type=cfg.init_type, phase=phase, status=status, duration_ms=duration_ms,
        error_type=modes.init_report_error_type(cfg, status, error_type)))
    if modes.prints_init_report(cfg, status):
        ctx.log.platform(console.init_report_line(duration_ms, phase, status, error_type))
    return duration_ms
