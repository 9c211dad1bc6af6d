"""SidecarStatus: what the lifecycle knows about the sidecar's own state, read by the worker when it reports.

The lifecycle writes it (problems that degraded us, the telemetry types subscribed, the time to the first
/next, the listener once bound); the worker reads it for its waits and health counters. A plain record with
no reference to either: data flows one way, lifecycle -> status -> worker. Stdlib only (start-up path).
"""

from __future__ import annotations

from .ownlog import log

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs ~10 ms to import; annotations are never evaluated at run time
    from typing import Any, List, Optional


class SidecarStatus:
    __slots__ = ("degraded", "subscribed_types", "time_to_first_next_ms", "listener", "local_otlp",
                 "managed_instances", "schema_version")

    def __init__(self, subscribed_types: Optional[List[str]] = None) -> None:
        self.degraded: List[str] = []                  # one entry per problem (SidecarDegraded counts them)
        self.subscribed_types: List[str] = list(subscribed_types or [])   # as the Telemetry API accepted them
        self.time_to_first_next_ms: Optional[float] = None
        self.listener: Any = None                      # listener.TelemetryListener once bound (its health())
        self.local_otlp: Any = None                    # local_otlp_server.LocalOtlpServer: the function's own OTLP
        self.managed_instances = False                 # Lambda Managed Instances (modes.py), as registered
        self.schema_version: Optional[str] = None      # the Telemetry API schemaVersion accepted

    def degrade(self, why: str) -> None:
        """One clear line per problem; the sidecar keeps serving /next."""
        self.degraded.append(why)
        log.error("degraded: %s", why)

    @property
    def platform_subscribed(self) -> bool:
        """Platform records will come (runtimeDone, report): worth waiting for."""
        return "platform" in self.subscribed_types
