"""SignalEngine: Telemetry records + Extensions API lifecycle events -> signals. Pure and stateful.

No I/O, no clock: every `now` is passed in, in epoch seconds (time.time()), the clock of the Telemetry
API's event times, so that gaps between platform events and lifecycle events can be compared.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple, Union

from .events import PlatformSpan, TraceContext

# InitSignal.kind values
COLD_START = "cold_start"        # on-demand init whose first invoke waited for it (or a re-init inside an invoke)
PROACTIVE = "proactive"          # on-demand init followed by an idle gap > threshold (or never used)
PROVISIONED = "provisioned"      # provisioned-concurrency init
SNAP_START = "snap_start"        # SnapStart restore
MANAGED_INSTANCES = "managed_instances"  # lambda-managed-instances init


@dataclass(frozen=True)
class InitSignal:
    """One per init: cold start, proactive, provisioned, SnapStart restore, or re-init (phase=invoke)."""

    time: float                        # end of init (initReport / restoreReport time, or best estimate)
    start: Optional[float]             # initStart / restoreStart time (None when never seen)
    duration_ms: Optional[float]       # init (or restore) duration
    initialization_type: str           # on-demand | provisioned-concurrency | snap-start | lambda-managed-instances
    phase: str                         # init | invoke (re-init inside an invoke after a reset) | restore
    status: str                        # success | error | failure | timeout
    error_type: Optional[str]
    kind: str                          # COLD_START | PROACTIVE | PROVISIONED | SNAP_START | MANAGED_INSTANCES
    cold_start: bool                   # counted in ColdStarts / faas.coldstarts (once per init)
    proactive: bool
    first_request_id: Optional[str]    # the first invocation this init served (the link for the init span)
    idle_gap_ms: Optional[float]       # end of init -> first invoke (None when never invoked)
    source: str                        # initReport | restoreReport | report (fallback: report.initDurationMs)
    restore_duration_ms: Optional[float] = None
    runtime_version: Optional[str] = None
    runtime_version_arn: Optional[str] = None
    function_name: Optional[str] = None
    function_version: Optional[str] = None
    instance_id: Optional[str] = None
    instance_max_memory: Optional[int] = None  # bytes
    spans: Tuple[PlatformSpan, ...] = ()

    @property
    def failed(self) -> bool:
        return self.status != "success"


@dataclass(frozen=True)
class InvocationSignal:
    """Exactly one per request id: at platform.report, or from finish()/eviction with complete=False."""

    request_id: str
    time: float                         # report time (or the best end estimate when incomplete)
    start: Optional[float]              # platform.start time (else the INVOKE's arrival)
    complete: bool                      # False: no platform.report ever came
    status: str                         # success | error | failure | timeout
    error_type: Optional[str]
    error: bool                         # any failure: status error/failure/timeout, OOM, handled function error
    function_error: bool                # handled error: the runtime posted /error (status success, no response)
    timeout: bool
    oom: bool
    oom_sources: Tuple[str, ...]        # errorType | max_memory | log
    cold_start: bool
    start_kind: str                     # "warm", or the InitSignal.kind of the init this invoke was first for
    init_duration_ms: Optional[float]   # from report.initDurationMs (or the re-init of this invoke)
    restore_duration_ms: Optional[float]
    duration_ms: Optional[float]        # report.durationMs
    billed_duration_ms: Optional[float]
    runtime_duration_ms: Optional[float]  # runtimeDone.durationMs (the first runtimeDone)
    post_runtime_ms: Optional[float]    # extensionOverhead span, else report - runtimeDone
    response_latency_ms: Optional[float]
    response_duration_ms: Optional[float]
    runtime_overhead_ms: Optional[float]
    produced_bytes: Optional[int]
    memory_size_mb: Optional[int]
    max_memory_used_mb: Optional[int]
    memory_utilization: Optional[float]  # percent of memory size (0-100)
    estimated_cost_usd: Optional[float]
    throttles: int                      # downstream throttle log lines during this invocation
    log_lines: int
    trace: Optional[TraceContext]       # platform.start (else runtimeDone/report) tracing
    invoke_tracing_value: Optional[str]  # the INVOKE event's X-Ray header (present even when not sampled)
    spans: Tuple[PlatformSpan, ...]     # runtimeDone spans + report spans, real start times
    deadline_ms: Optional[int] = None
    invoked_arn: Optional[str] = None
    version: Optional[str] = None
    tenant_id: Optional[str] = None
    shutdown_reason: Optional[str] = None  # timeout | failure when a SHUTDOWN ended this invocation
    init: Optional[InitSignal] = None   # the init this invocation was the first for


@dataclass(frozen=True)
class ShutdownSignal:
    reason: str                    # spindown | timeout | failure
    time: float
    deadline_ms: Optional[int] = None
    request_id: Optional[str] = None  # the invocation in flight for timeout/failure


@dataclass(frozen=True)
class LogSignal:
    """A function (or extension) log record for OTLP logs."""

    time: float
    text: str                      # the raw line
    message: str
    level: Optional[str]           # TRACE | DEBUG | INFO | WARN | ERROR | FATAL
    request_id: Optional[str]
    trace: Optional[TraceContext]  # the invocation's platform.start tracing
    invoke_tracing_value: Optional[str]
    source: str = "function"       # function | extension
    fields: Optional[dict] = None
    throttle: bool = False
    oom: bool = False


@dataclass(frozen=True)
class HealthSignal:
    """The sidecar's own counters (cumulative since start), built by the shell at flush time."""

    time: float
    counters: Tuple[Tuple[str, float], ...]


Output = Union[InvocationSignal, InitSignal, ShutdownSignal, LogSignal, HealthSignal]


class SignalEngine:
    """Records + lifecycle events -> signals (placeholder API; the derivation follows in the next commit)."""

    def __init__(self, settings) -> None:
        self.settings = settings
        self.health: dict = {}
        self._done: set = set()

    def on_invoke(self, invoke, now: float) -> list:
        return []

    def on_events(self, events, now: float) -> list:
        return []

    def on_batch(self, batch, now: float) -> list:
        return self.on_events(batch.events, now)

    def on_shutdown(self, shutdown, now: float) -> list:
        return [ShutdownSignal(reason=shutdown.reason, time=now, deadline_ms=shutdown.deadline_ms)]

    def finish(self, now: float) -> list:
        return []

    def runtime_done_seen(self, request_id: str) -> bool:
        return request_id in self._done
