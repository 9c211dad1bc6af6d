"""The Shutdown phase (lambda-apis.md 4.3), also the first half of a reset (4.4): SIGTERM to the runtime,
deliver pending telemetry, SHUTDOWN to the extensions within the budget, then SIGKILL for what is left.
"""

from __future__ import annotations

import signal
import time
from typing import Dict, List, Optional

from .api import Extension
from .config import ShutdownResult
from .context import EnvContext, now
from .processes import EnvProcess

TERMINAL_EXT_STATES = ("Exited", "ShutdownFailed", "LaunchError")


def stop_environment(ctx: EnvContext, reason: str) -> ShutdownResult:
    t0m, t0e = now()
    ctx.members.stopping = True
    ctx.thaw()
    with ctx.control.cv:
        regs = ctx.control.registered()
        externals = [e for e in regs if e.external]
    runtime = ctx.members.runtime
    ext_states: Dict[str, str] = {}
    killed: List[str] = []
    if not regs:
        runtime_state = _kill_runtime(runtime, killed) if runtime is not None and runtime.alive() else "NotRunning"
    else:
        budget_ms = ctx.cfg.shutdown_budget_ms if externals else ctx.cfg.internal_shutdown_budget_ms
        deadline_m = t0m + budget_ms / 1000
        runtime_state = _terminate_runtime(ctx, runtime, deadline_m, killed)
        _flush_telemetry(ctx, runtime, deadline_m)
        deadline_ms = int(round((t0e + budget_ms / 1000) * 1000))
        waiting = _send_shutdown(ctx, externals, reason, deadline_ms, ext_states, killed)
        _await_extensions(waiting, deadline_m, ext_states, killed)
    _settle_remaining(ctx, ext_states, killed)
    with ctx.control.cv:
        for e in ctx.control.extensions:
            if e.name in ext_states:
                e.state = ext_states[e.name]
    return ShutdownResult(reason=reason, duration_ms=(time.monotonic() - t0m) * 1000, extensions=ext_states,
                          runtime=runtime_state, killed=killed)


def _kill_runtime(runtime: EnvProcess, killed: List[str]) -> str:
    runtime.kill_tree()
    runtime.wait(1.0)
    killed.append("runtime")
    return "Killed"


def _terminate_runtime(ctx: EnvContext, runtime: Optional[EnvProcess], deadline_m: float,
                       killed: List[str]) -> str:
    """SIGTERM, then SIGKILL after the runtime's share of the window (runtime_shutdown_ms)."""
    if runtime is None or not runtime.alive():
        return "NotRunning"
    runtime.signal_group(signal.SIGTERM)
    if runtime.wait(min(ctx.cfg.runtime_shutdown_ms / 1000, max(0.0, deadline_m - time.monotonic()))):
        return "Exited"
    return _kill_runtime(runtime, killed)


def _flush_telemetry(ctx: EnvContext, runtime: Optional[EnvProcess], deadline_m: float) -> None:
    """The runtime's output streams closed: capture their last lines, then deliver what is pending before
    SHUTDOWN is released (RIE-LMI flushes here with a 1 s budget)."""
    budget = min(1.0, max(0.0, (deadline_m - time.monotonic()) / 2))
    flush_until = time.monotonic() + budget
    if runtime is not None:
        runtime.drain(budget / 2)
    ctx.hub.flush(max(0.0, flush_until - time.monotonic()))


def _send_shutdown(ctx: EnvContext, externals: List[Extension], reason: str, deadline_ms: int,
                   ext_states: Dict[str, str], killed: List[str]) -> List[EnvProcess]:
    """SHUTDOWN to every external extension subscribed to it; the others are killed. Returns those to await."""
    procs = ctx.members.extensions
    waiting: List[EnvProcess] = []
    event = {"eventType": "SHUTDOWN", "deadlineMs": deadline_ms, "shutdownReason": reason}
    with ctx.control.cv:
        for e in externals:
            proc = procs.get(e.name)
            if "SHUTDOWN" in e.events and e.state not in TERMINAL_EXT_STATES:
                e.queue.append(dict(event))
                if proc is not None:
                    waiting.append(proc)
        ctx.control.cv.notify_all()
    for e in externals:
        proc = procs.get(e.name)
        if proc is not None and proc not in waiting and proc.alive():
            proc.kill_tree()
            killed.append(e.name)
            ext_states[e.name] = "ShutdownFailed"
    return waiting


def _await_extensions(waiting: List[EnvProcess], deadline_m: float, ext_states: Dict[str, str],
                      killed: List[str]) -> None:
    for proc in waiting:
        proc.wait(max(0.0, deadline_m - time.monotonic()))
    for proc in waiting:
        if proc.alive():
            proc.kill_tree()
            proc.wait(1.0)
            killed.append(proc.name)
            ext_states[proc.name] = "ShutdownFailed"
        else:
            ext_states[proc.name] = "Exited" if proc.returncode == 0 else "ShutdownFailed"


def _settle_remaining(ctx: EnvContext, ext_states: Dict[str, str], killed: List[str]) -> None:
    """Every extension process not accounted for yet, then SIGKILL to the whole environment."""
    for name, proc in ctx.members.extensions.items():
        if name not in ext_states:
            if proc.alive():
                proc.kill_tree()
                killed.append(name)
                ext_states[name] = "ShutdownFailed"
            elif not proc.killed_by_us:
                ext_states[name] = "Exited" if proc.returncode == 0 else "ShutdownFailed"
    ctx.launcher.kill_all()
    for proc in ctx.launcher.processes:
        proc.drain(0.5)
