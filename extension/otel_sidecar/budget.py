"""One memory budget in bytes for everything the OTLP sink holds (buffers, retries, spool reads).

The sidecar's RSS is its interpreter and libraries (~25-30 MB) plus what it buffers; the budget bounds the
second part so that the whole stays under 40 MB at 128 MB and under 48 MB at any size. Pools register in
drop order (function log records first, platform-derived spans and metrics last); when the total is over the
limit the first non-empty pool loses its oldest item, counted by the pool as dropped.

Also here: the log record limits (body cap, attribute value length limit as the OpenTelemetry SDKs read it).
"""

from __future__ import annotations

import logging
import threading
from typing import Any, List, Mapping, Optional, Tuple

log = logging.getLogger("otel_sidecar")

MIB = 1024 * 1024
MAX_BUDGET_MB = 6.0             # the ceiling that keeps RSS under 48 MB whatever the memory size
MIN_BUDGET_MB = 1.0
DEFAULT_SHARE = 0.008           # of AWS_LAMBDA_FUNCTION_MEMORY_SIZE: 1 MB at 128 MB, the ceiling from 768 MB
                                # (measured: RSS grows by ~1.5x the budget, over a ~36 MB floor at 128 MB; see
                                # tests/faults/test_memory_budget.py)
DEFAULT_BODY_MAX = 16 * 1024
TRUNCATED_KEY = "otel_sidecar.truncated"


def _number(env: Mapping[str, str], name: str, lo: float, hi: float, default: Optional[float],
            what: str) -> Tuple[Optional[float], Optional[str]]:
    raw = (env.get(name) or "").strip()
    if not raw:
        return default, None
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if value == value and lo <= value <= hi:
        return value, None
    return default, f"{name}={raw[:40]!r} is not a number from {lo:g} to {hi:g}; using {what}"


def budget_bytes(env: Mapping[str, str]) -> Tuple[int, Optional[str]]:
    """(limit in bytes, warning or None) from SIDECAR_MEMORY_BUDGET_MB or the function's memory size."""
    try:
        mem_mb = float(env.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE") or 128)
    except ValueError:
        mem_mb = 128.0
    default = min(MAX_BUDGET_MB, max(MIN_BUDGET_MB, mem_mb * DEFAULT_SHARE))
    value, warning = _number(env, "SIDECAR_MEMORY_BUDGET_MB", MIN_BUDGET_MB, MAX_BUDGET_MB, default,
                             f"{default:.1f} MB (sized to the function's memory)")
    return int((value or default) * MIB), warning


def listener_queue_bytes(env: Mapping[str, str]) -> int:
    """The listener's share of the bound (raw Telemetry API bodies waiting for the worker): a third of the
    budget, at least 2 MB (two of Lambda's largest bodies at our maxBytes)."""
    return max(2 * MIB, budget_bytes(env)[0] // 3)


def log_limits(env: Mapping[str, str]) -> Tuple[int, Optional[int], List[str]]:
    """(body cap in bytes, attribute value length limit in characters or None, warnings)."""
    warnings: List[str] = []
    body, w = _number(env, "SIDECAR_LOG_BODY_MAX_BYTES", 256, 1024 * 1024, DEFAULT_BODY_MAX,
                      f"{DEFAULT_BODY_MAX} bytes")
    if w:
        warnings.append(w)
    attr: Optional[float] = None
    # the SDKs: the log-specific limit wins over the general one; unset means no limit
    for name in ("OTEL_LOGRECORD_ATTRIBUTE_VALUE_LENGTH_LIMIT", "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT"):
        if (env.get(name) or "").strip():
            attr, w = _number(env, name, 0, 1 << 30, None, "no limit")
            if w:
                warnings.append(w)
            if attr is not None:
                break
    return int(body or DEFAULT_BODY_MAX), (int(attr) if attr is not None else None), warnings


def truncate_utf8(text: str, max_bytes: int) -> Tuple[str, bool]:
    """text cut to at most max_bytes of UTF-8 (on a character boundary), and whether it was cut."""
    if len(text) * 4 <= max_bytes:
        return text, False
    raw = text.encode("utf-8", "replace")
    if len(raw) <= max_bytes:
        return text, False
    return raw[:max_bytes].decode("utf-8", "ignore"), True


def truncate_value(value: str, limit: Optional[int]) -> str:
    """An attribute string value cut to `limit` characters (the SDKs' rule), unchanged when no limit."""
    return value if limit is None or len(value) <= limit else value[:limit]


class Budget:
    """The shared byte bound. Pools have `nbytes` and `drop_oldest() -> bool`; `reserved` covers bytes held
    outside any pool (spooled requests read back, waiting to be sent)."""

    def __init__(self, limit: int) -> None:
        self.limit = max(1, int(limit))
        self.pools: List[Any] = []          # drop order: the first is sacrificed first
        self.reserved = 0
        self.lock = threading.Lock()

    def used(self) -> int:
        return self.reserved + sum(p.nbytes for p in self.pools)

    def room(self) -> int:
        return self.limit - self.used()

    def reserve(self, n: int) -> bool:
        with self.lock:
            if self.used() + n > self.limit:
                return False
            self.reserved += n
            return True

    def hold(self, n: int) -> None:
        """Count n bytes held outside the pools (a batch on the wire), room or not; then make room."""
        with self.lock:
            self.reserved += n
        self.settle()

    def release(self, n: int) -> None:
        with self.lock:
            self.reserved = max(0, self.reserved - n)

    def settle(self) -> None:
        """Drop oldest items, lowest priority first, until the total fits."""
        with self.lock:
            while self.used() > self.limit:
                if not any(p.drop_oldest() for p in self.pools if p.nbytes):
                    return


def warn_once(text: Optional[str]) -> None:
    if text:
        log.warning("memory budget: %s", text)

