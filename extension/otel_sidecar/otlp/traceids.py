"""X-Ray trace header <-> W3C trace context (conventions.md 3.1-3.2). Pure.

`Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1`
  <=> trace id 5759e988bd862e3fe1be46a994272793, parent span id 53995c3f42cd8ad8, flags 01.
Unknown keys (Self=...) are ignored; Lineage is kept opaque so a re-emitted header carries it on.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

_ROOT = re.compile(r"^1-([0-9a-fA-F]{8})-([0-9a-fA-F]{24})$")
_SPAN = re.compile(r"^[0-9a-fA-F]{16}$")
_TRACE = re.compile(r"^[0-9a-f]{32}$")


@dataclass(frozen=True)
class XRayContext:
    """The parts of an X-Ray header that matter for a W3C trace context."""

    trace_id: str                  # 32 lowercase hex
    parent_id: Optional[str]       # 16 lowercase hex (the X-Ray segment), None when absent/invalid
    sampled: Optional[bool]        # None: "Sampled=?" or absent (the decision is deferred)
    lineage: Optional[str] = None

    @property
    def trace_flags(self) -> int:
        return 1 if self.sampled else 0

    def traceparent(self) -> Optional[str]:
        """W3C `traceparent` (needs a parent id)."""
        if self.parent_id is None:
            return None
        return f"00-{self.trace_id}-{self.parent_id}-{self.trace_flags:02x}"


def parse_xray(header: Optional[str]) -> Optional[XRayContext]:
    """The X-Ray header -> XRayContext; None when there is no valid Root (ids are never invented)."""
    if not header:
        return None
    fields = {}
    for part in header.split(";"):
        key, sep, value = part.partition("=")
        if sep:
            fields.setdefault(key.strip(), value.strip())
    root = _ROOT.match(fields.get("Root", ""))
    if root is None:
        return None
    trace_id = (root.group(1) + root.group(2)).lower()
    if trace_id == "0" * 32:
        return None
    parent = fields.get("Parent", "")
    parent_id = parent.lower() if _SPAN.match(parent) and parent != "0" * 16 else None
    sampled = {"1": True, "0": False}.get(fields.get("Sampled", ""))
    return XRayContext(trace_id, parent_id, sampled, fields.get("Lineage") or None)


def to_xray(trace_id: str, parent_id: Optional[str] = None, sampled: Optional[bool] = None,
            lineage: Optional[str] = None) -> str:
    """W3C ids -> X-Ray header (Lineage kept when given)."""
    tid = trace_id.lower()
    if not _TRACE.match(tid):
        raise ValueError(f"trace id {trace_id!r} is not 32 lowercase hex digits")
    parts = [f"Root=1-{tid[:8]}-{tid[8:]}"]
    if parent_id is not None:
        if not _SPAN.match(parent_id):
            raise ValueError(f"span id {parent_id!r} is not 16 hex digits")
        parts.append(f"Parent={parent_id.lower()}")
    parts.append("Sampled=?" if sampled is None else f"Sampled={1 if sampled else 0}")
    if lineage:
        parts.append(f"Lineage={lineage}")
    return ";".join(parts)


def parse_traceparent(value: Optional[str]) -> Optional[XRayContext]:
    """W3C `traceparent` (version 00) -> the same shape (lineage None)."""
    m = re.match(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$", (value or "").strip())
    if m is None or m.group(1) == "0" * 32 or m.group(2) == "0" * 16:
        return None
    return XRayContext(m.group(1), m.group(2), bool(int(m.group(3), 16) & 1))


def valid_span_id(value: Optional[str]) -> Optional[str]:
    """A 16-hex span id in lowercase, or None."""
    if value and _SPAN.match(value) and value != "0" * 16:
        return value.lower()
    return None
