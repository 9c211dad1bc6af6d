"""The sidecar's own counters folded into the catalog's health keys (what HealthSignal carries).

Every component keeps its own counts (listener_*, worker_*, engine_* for the record counts, and each sink's
own keys); the worker merges them (Worker.health) and this fold turns them into the health metrics, once.
Pure; stdlib only (imported with the worker, before the first /next).
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs ~10 ms to import; annotations are never evaluated at run time
    from typing import Dict, Mapping

SHELL_PREFIXES = ("listener_", "worker_", "engine_")   # the shell's and the core's keys; the rest are the sinks'
OTLP_PREFIX = "otlp_"


def is_drop_key(key: str) -> bool:
    """A counter of items we dropped (`dropped_*`, `*_dropped`), not Lambda's own logs-dropped counts."""
    return ("dropped_" in key or key.endswith("dropped")) and "logs_dropped" not in key


def health_counters(detail: Mapping[str, int]) -> Dict[str, float]:
    """The detailed counters folded into the catalog's health keys (HealthSignal.counters)."""
    sink_dropped = sum(v for k, v in detail.items() if not k.startswith(SHELL_PREFIXES) and is_drop_key(k))
    # records, not batches: a dropped batch of 1,000 log lines is 1,000 items lost (an oversized body is never
    # read, so it counts once)
    dropped = (detail.get("listener_dropped_records", 0) + detail.get("listener_oversized", 0)
               + detail.get("listener_rejected", 0)      # refused requests: wrong path, malformed, too slow
               + detail.get("worker_dropped_invoke_events", 0) + detail.get("worker_dropped_at_shutdown_records", 0)
               + detail.get("worker_shed_log_records", 0) + detail.get("worker_dropped_otlp_skipped_invocations", 0)
               + sink_dropped)
    out = {
        "records_received": detail.get("engine_records_received", 0),
        "malformed": detail.get("engine_malformed", 0),
        "unknown_types": detail.get("engine_unknown_types", 0),
        "unknown_fields": detail.get("engine_unknown_fields", 0),
        "logs_dropped_records": detail.get("engine_logs_dropped_records", 0),
        "dropped": dropped,
        "export_failures": sum(v for k, v in detail.items()
                               if k.endswith("export_failures") and not k.startswith(SHELL_PREFIXES)),
    }
    if "tenant_overflow" in detail:   # the EMF tenant dimension's overflow (tenancy.py), when it is on
        out["tenant_overflow"] = detail["tenant_overflow"]
    if "time_to_first_next_ms" in detail:
        out["time_to_first_next_ms"] = detail["time_to_first_next_ms"]
    for k, v in detail.items():   # the function's own OTLP (local_otlp.py): totals and per-signal counts
        if k.startswith(("local_otlp_received", "local_otlp_forwarded")):
            out[k] = v
    return {k: float(v) for k, v in out.items()}


def drop_reasons(detail: Mapping[str, int], total: float) -> Dict[str, float]:
    """`total` drops broken down by reason for the OTLP `otel_sidecar.dropped{reason}` metric: the OTLP
    sink's own reasons (its `otlp_dropped_*` keys, prefix removed), and `other` for the rest of the total."""
    parts = {k[len(OTLP_PREFIX):]: float(v) for k, v in detail.items()
             if k.startswith(OTLP_PREFIX) and is_drop_key(k)}
    rest = total - sum(parts.values())
    if rest > 0:
        parts["other"] = rest
    return parts
