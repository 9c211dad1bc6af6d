"""X-Ray trace headers for the sandbox's tracing modes (lambda-apis.md 3.1 and 5.4). Pure functions."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Dict, Optional

from . import records


def new_trace_id(now: Optional[float] = None) -> str:
    """`1-<8 hex epoch seconds>-<24 hex random>`."""
    return f"1-{int(now if now is not None else time.time()):08x}-{os.urandom(12).hex()}"


def new_segment_id() -> str:
    return os.urandom(8).hex()


def parse_header(value: str) -> Dict[str, str]:
    """`Root=...;Parent=...;Sampled=1` -> {"Root": ..., "Parent": ..., "Sampled": ...}."""
    out: Dict[str, str] = {}
    for part in (value or "").split(";"):
        if "=" in part:
            key, val = part.split("=", 1)
            out[key.strip()] = val.strip()
    return out


def format_header(fields: Dict[str, str]) -> str:
    order = ["Root", "Parent", "Sampled"]
    keys = [k for k in order if k in fields] + [k for k in fields if k not in order]
    return ";".join(f"{k}={fields[k]}" for k in keys)


@dataclass(frozen=True)
class InvokeTrace:
    """The trace data of one invoke: the header the runtime gets and the `tracing` record object."""

    runtime_header: Optional[str]     # Lambda-Runtime-Trace-Id
    tracing: Optional[dict]           # the `tracing` object of start/runtimeDone/report, or None
    extension_value: Optional[str]    # `tracing.value` of the INVOKE event for extensions


def trace_for_invoke(mode: Optional[str], upstream: Optional[str] = None, sampled: bool = True,
                     now: Optional[float] = None) -> InvokeTrace:
    """Trace headers for one invoke.

    mode None: no tracing at all (like the RIE). "PassThrough": propagate the upstream header, or make
    a new unsampled root when there is none. "Active": Lambda samples (here: `sampled`) and adds its
    own segment id as Parent for the runtime; the record's `spanId` is that segment id.
    """
    if mode is None:
        if not upstream:
            return InvokeTrace(None, None, None)
        mode = "PassThrough"
    fields = parse_header(upstream) if upstream else {}
    if "Root" not in fields:
        fields = {"Root": new_trace_id(now), "Parent": new_segment_id(),
                  "Sampled": "1" if (mode == "Active" and sampled) else "0"}
    elif "Sampled" not in fields:
        fields["Sampled"] = "1" if (mode == "Active" and sampled) else "0"
    upstream_value = format_header(fields)
    is_sampled = fields.get("Sampled") == "1"
    if mode == "Active":
        segment = new_segment_id()
        runtime_fields = dict(fields)
        runtime_fields["Parent"] = segment
        runtime_header = format_header(runtime_fields)
        tracing = records.trace_context(upstream_value, segment) if is_sampled else None
    else:
        runtime_header = upstream_value
        tracing = records.trace_context(upstream_value) if is_sampled else None
    return InvokeTrace(runtime_header, tracing, runtime_header)
