"""The platform's CloudWatch lines (START, END, REPORT, INIT_START, ...): pure formatting, no state.

Exact layouts as Lambda writes them to the function's log stream (lambda-apis.md 5.8, environment.md 6).
"""

from __future__ import annotations

import signal
from typing import Iterable, Optional

from . import records


def fmt_ms(value: float) -> str:
    return f"{value:.2f}"


def exit_text(returncode: int) -> str:
    """How Lambda describes a process's end: `exited with error: exit status 1`, `... signal: killed`."""
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name[3:].lower()
        except ValueError:
            name = str(-returncode)
        return f"exited with error: signal: {'killed' if name == 'kill' else name}"
    return f"exited with error: exit status {returncode}"


def init_start_line(runtime_version: str, runtime_version_arn: str) -> str:
    return f"INIT_START Runtime Version: {runtime_version}\tRuntime Version ARN: {runtime_version_arn}"


def extension_line(name: str, state: str, events: Iterable[str]) -> str:
    return f"EXTENSION\tName: {name}\tState: {state}\tEvents: [{', '.join(events)}]"


def init_report_line(duration_ms: float, phase: str, status: str, error_type: Optional[str]) -> str:
    line = f"INIT_REPORT Init Duration: {fmt_ms(duration_ms)} ms\tPhase: {phase}\tStatus: {status}"
    if error_type:
        line += f"\tError Type: {error_type}"
    return line


def start_line(request_id: str, version: str) -> str:
    return f"START RequestId: {request_id} Version: {version}"


def timeout_message(end_epoch: float, request_id: str, timeout_s: float) -> str:
    """The `Task timed out` text: a platform line, and the caller's errorMessage."""
    return f"{records.iso(end_epoch)} {request_id} Task timed out after {timeout_s:.2f} seconds"


def error_line(request_id: str, description: str, error_type: str) -> str:
    return f"RequestId: {request_id} Error: {description}\n{error_type}"


def end_line(request_id: str) -> str:
    return f"END RequestId: {request_id}"


def report_line(request_id: str, duration_ms: float, billed_ms: int, memory_mb: int, max_memory_mb: int,
                init_ms: Optional[float], status: str, error_type: Optional[str], extra: str = "") -> str:
    """`extra`: fields after Init Duration (SnapStart's `Restore Duration`, `Billed Restore Duration`)."""
    line = (f"REPORT RequestId: {request_id}\tDuration: {fmt_ms(duration_ms)} ms\tBilled Duration: {billed_ms} ms\t"
            f"Memory Size: {memory_mb} MB\tMax Memory Used: {max_memory_mb} MB")
    if init_ms is not None:
        line += f"\tInit Duration: {fmt_ms(init_ms)} ms"
    line += extra
    if status != "success":
        line += f"\tStatus: {status}"
    if error_type:
        line += f"\tError Type: {error_type}"
    return line


def xray_line(trace_id: Optional[str], segment_id: str) -> str:
    return f"XRAY TraceId: {trace_id}\tSegmentId: {segment_id}\tSampled: true"
