"""Which sinks the worker feeds: EMF (on by default) and OTLP (when an endpoint or collector file is set).

Built by the worker thread's one-time setup (worker.py), off the path to the first /next: the OTLP stack
(protobuf, the opentelemetry-proto messages) is the largest import of the sidecar.
"""

from __future__ import annotations

import time
from typing import Any, Dict, List, Mapping, Optional

from .ownlog import log
from .status import SidecarStatus

OTLP_SETUP_RESERVE_S = 1.0       # at a SHUTDOWN before the setup was over: start OTLP only with this much time left
OTLP_ENDPOINT_VARS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                      "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
                      "OPENTELEMETRY_COLLECTOR_CONFIG_URI", "SIDECAR_COLLECTOR_CONFIG")


def otlp_configured(settings: Any, env: Mapping[str, str]) -> bool:
    flag = getattr(settings, "otlp_enabled", None) if settings is not None else None
    if flag is not None:
        return bool(flag)
    return any((env.get(v) or "").strip() for v in OTLP_ENDPOINT_VARS)


def build_sinks(settings: Any, env: Mapping[str, str], status: SidecarStatus, counters: Dict[str, int],
                shutdown_deadline: Optional[float]) -> List[Any]:
    """The configured sinks; one that cannot start degrades the sidecar (one line), never stops it.

    `shutdown_deadline` (monotonic) when SHUTDOWN came before the setup got this far: with less than
    OTLP_SETUP_RESERVE_S left the OTLP stack is not loaded (counted in worker_otlp_skipped_at_shutdown; the
    worker counts the invocations it had as dropped)."""
    sinks: List[Any] = []
    if _enabled(settings, "emf_enabled", True):
        try:
            from .emf import EmfSink

            sinks.append(EmfSink(settings if settings is not None else _default_settings()))
        except Exception as exc:  # noqa: BLE001
            status.degrade(f"the EMF sink is unavailable ({type(exc).__name__}: {exc})")
    if not otlp_configured(settings, env):
        return sinks
    if shutdown_deadline is not None and shutdown_deadline - time.monotonic() < OTLP_SETUP_RESERVE_S:
        # SHUTDOWN came before the setup was over (an init that served none, or one invocation on a small
        # CPU share) and leaves too little time to load the OTLP stack as well: the EMF lines still report
        counters["otlp_skipped_at_shutdown"] += 1
        log.warning("OTLP export skipped: the environment shuts down before the one-time setup was over, "
                    "with too little time left to start it; EMF has the init and counts what is dropped")
        return sinks
    try:
        from .otlp import create_sink

        sink = create_sink(settings, env)
        if sink is not None:
            sinks.append(sink)
    except Exception as exc:  # noqa: BLE001
        status.degrade(f"OTLP export is off: the OTLP sink could not start ({type(exc).__name__}: {exc})")
    return sinks


def _enabled(settings: Any, name: str, default: bool) -> bool:
    value = getattr(settings, name, None) if settings is not None else None
    return default if value is None else bool(value)


def _default_settings() -> Any:
    from .config import load_settings

    return load_settings({})[0]
