"""SignalEngine: Telemetry records + Extensions API lifecycle events -> signals. Pure and stateful.

No I/O, no clock: every `now` is passed in, in epoch seconds (time.time()), the clock of the Telemetry
API's event times, so that gaps between platform events and lifecycle events can be compared.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass
from typing import Deque, Dict, List, Optional, Sequence, Tuple, Union

from . import modes, patterns, pricing

# InitSignal.kind values, decided in coldstart.py
from .coldstart import COLD_START, MANAGED_INSTANCES, PROACTIVE, PROVISIONED, SNAP_START, classify_init  # noqa: F401
from .config import Settings
from .events import (
    Event,
    ExceptionInfo,
    ExtensionLog,
    ExtensionState,
    FunctionLog,
    InitReport,
    InitRuntimeDone,
    InitStart,
    Invoke,
    LogsDropped,
    ParsedBatch,
    PlatformSpan,
    Report,
    RestoreReport,
    RestoreRuntimeDone,
    RestoreStart,
    RuntimeDone,
    Shutdown,
    Start,
    TelemetrySubscription,
    TraceContext,
    UnknownEvent,
    exception_of,
    quick_init,
)


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

    @property
    def durable(self) -> bool:
        """A durable function's init (its runtime version names DurableFunction: modes.durable_runtime)."""
        return modes.durable_runtime(self.runtime_version)

    @property
    def restored(self) -> bool:
        """A SnapStart restore (this environment started from a snapshot, not from an init)."""
        return self.phase == "restore"


@quick_init
@dataclass(frozen=True)
class InvocationSignal:
    """Exactly one per request id: at platform.report, or from finish()/eviction with complete=False."""

    request_id: str
    time: float                         # report time (or the best end estimate when incomplete)
    start: Optional[float]              # platform.start time (else the INVOKE's arrival)
    complete: bool                      # False: no platform.report ever came
    status: str                         # success | error | failure | timeout
    error_type: Optional[str]
    error: bool                         # status error/failure/timeout or a handled function error (an OOM that
    #                                     did not fail the invocation, e.g. a caught MemoryError, is not one)
    function_error: bool                # handled error: the runtime posted /error (status success, no response)
    timeout: bool
    oom: bool
    oom_sources: Tuple[str, ...]        # errorType | max_memory | log
    cold_start: bool
    start_kind: str                     # "warm", or the InitSignal.kind of the init this invoke was first for
    init_duration_ms: Optional[float]   # from report.initDurationMs (or the re-init of this invoke)
    restore_duration_ms: Optional[float]
    duration_ms: Optional[float]        # report.durationMs
    billed_duration_ms: Optional[int]
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
    exception: Optional[ExceptionInfo] = None  # the last exception the runtime printed during it (bounded)
    durable: bool = False               # a durable function's invocation (one replay of an execution)
    durable_execution_arn: Optional[str] = None  # from the durable SDK's JSON log records (executionArn)
    billed_restore_duration_ms: Optional[int] = None  # SnapStart: report.billedRestoreDurationMs
    managed_instances: bool = False     # served by a Lambda Managed Instances environment (concurrent invokes)

    @property
    def succeeded(self) -> bool:
        """Answered without any error (faas.invocations counts these)."""
        return not self.error and self.status in ("success", "unknown")


@dataclass(frozen=True)
class ShutdownSignal:
    reason: str                    # spindown | timeout | failure
    time: float
    deadline_ms: Optional[int] = None
    request_id: Optional[str] = None  # the invocation in flight for timeout/failure


@quick_init
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
    tenant_id: Optional[str] = None  # tenant isolation: the record's tenantId, else the environment's tenant


@dataclass(frozen=True)
class HealthSignal:
    """The sidecar's own counters (cumulative since start), built by the shell at flush time (health.py)."""

    time: float
    counters: Tuple[Tuple[str, float], ...]             # health.health_counters: the catalog's health keys
    dropped_reasons: Tuple[Tuple[str, float], ...] = ()  # health.drop_reasons: `dropped` broken down


Output = Union[InvocationSignal, InitSignal, ShutdownSignal, LogSignal, HealthSignal]


def inits_in(outputs: Sequence[Output]) -> List[InitSignal]:
    """Every init among outputs, in order: the ones emitted on their own and the ones carried by the first
    invocation they served (InvocationSignal.init: each init is emitted exactly once, in one of the two)."""
    found: List[InitSignal] = []
    for o in outputs:
        if isinstance(o, InitSignal):
            found.append(o)
        elif isinstance(o, InvocationSignal) and o.init is not None:
            found.append(o.init)
    return found



# ---- the engine ------------------------------------------------------------------------------------------
OWN_LINE_PREFIXES = ("[otel-sidecar]", '{"_aws"')   # our stderr lines and our EMF documents


def is_own_line(ev: ExtensionLog) -> bool:
    """Our own output comes back as `extension` records: never turned into signals (counted)."""
    text = ev.text
    if not isinstance(text, str):
        fields = ev.fields
        text = str(fields.get("message", "")) if isinstance(fields, dict) else ""
    return text.lstrip().startswith(OWN_LINE_PREFIXES)

MAX_PENDING = 1000        # invocations waiting for their report; beyond it the oldest is emitted incomplete
MAX_REMEMBERED = 1024     # request ids remembered as emitted / runtimeDone-seen (exactly-once, bounded)
OOM_ERROR_TYPE = "Runtime.OutOfMemory"
_STATUS_RANK = {"success": 0, "unknown": 0, "error": 1, "failure": 2, "timeout": 3}


class _Bounded:
    """An insertion-ordered set that forgets its oldest members beyond a size."""

    __slots__ = ("_d", "_max")

    def __init__(self, size: int) -> None:
        self._d: Dict[str, None] = {}
        self._max = size

    def add(self, key: str) -> None:
        self._d[key] = None
        if len(self._d) > self._max:
            del self._d[next(iter(self._d))]

    def __contains__(self, key: object) -> bool:
        return key in self._d


class InvocationState:
    """What we know so far about one invocation."""

    __slots__ = ("rid", "invoke", "invoke_time", "start", "runtime_done", "runtime_done_statuses", "runtime_done_error_type", "report",
                 "throttles", "log_lines", "oom_log", "shutdown_reason", "init", "exception", "durable_arn",
                 "env_tenant", "durable")

    def __init__(self, rid: str) -> None:
        self.rid = rid
        self.invoke: Optional[Invoke] = None
        self.invoke_time: Optional[float] = None
        self.start: Optional[Start] = None
        self.runtime_done: Optional[RuntimeDone] = None     # the first runtimeDone
        self.runtime_done_statuses: List[str] = []
        self.runtime_done_error_type: Optional[str] = None
        self.report: Optional[Report] = None
        self.throttles = 0
        self.log_lines = 0
        self.oom_log = False
        self.shutdown_reason: Optional[str] = None
        self.init: Optional[InitSignal] = None
        self.exception: Optional[ExceptionInfo] = None
        self.durable_arn: Optional[str] = None    # a durable execution ARN seen in its JSON log records
        self.env_tenant: Optional[str] = None     # the environment's tenant (one per environment), for fallback
        self.durable = False                      # the environment runs a durable function


class InitState:
    """An init (or SnapStart restore) being assembled from its start / runtimeDone / report records."""

    __slots__ = ("init_type", "phase", "restore", "start", "runtime_done", "report", "first_rid", "first_time",
                 "emitted", "signal")

    def __init__(self, init_type: str, phase: str, restore: bool = False) -> None:
        self.init_type = init_type
        self.phase = phase
        self.restore = restore
        self.start: Optional[Union[InitStart, RestoreStart]] = None
        self.runtime_done: Optional[Union[InitRuntimeDone, RestoreRuntimeDone]] = None
        self.report: Optional[Union[InitReport, RestoreReport]] = None
        self.first_rid: Optional[str] = None
        self.first_time: Optional[float] = None
        self.emitted = False
        self.signal: Optional[InitSignal] = None

    @property
    def evidence(self) -> bool:
        return self.start is not None or self.runtime_done is not None or self.report is not None

    @property
    def end_time(self) -> Optional[float]:
        if self.report is not None:
            return self.report.time
        if self.runtime_done is not None:
            return self.runtime_done.time
        return None


class SignalEngine:
    """Telemetry records + lifecycle events -> signals (see docs/ARCHITECTURE.md). Pure: no I/O, no clock.

    Over 300 lines on purpose: one handler per event class (the `_handlers` table at the end) over the
    shared per-invocation and per-init state; the signals themselves are built by the pure functions
    invocation_signal() and init_signal() below, the cold-start decision by coldstart.classify_init()."""

    def __init__(self, settings: Optional[Settings] = None) -> None:
        self.settings = settings or Settings()
        self._throttle_re = patterns.compile_throttles(self.settings.throttle_patterns,
                                                       self.settings.throttle_patterns_extend)
        self._pending: Dict[str, InvocationState] = {}
        self._emitted = _Bounded(MAX_REMEMBERED)
        self._runtime_done_seen = _Bounded(MAX_REMEMBERED)
        self._init: Optional[InitState] = None
        self._stream_current: Optional[str] = None   # last platform.start in stream order (log attribution)
        self._invoke_current: Optional[str] = None   # last INVOKE from the Extensions API
        self._latest = 0.0                           # the latest time seen (for signals forced out early)
        # since the last take_progress() (bounded: a caller that never takes them loses the oldest)
        self._new_runtime_done: Deque[str] = collections.deque(maxlen=MAX_REMEMBERED)
        self._new_reports: Deque[str] = collections.deque(maxlen=MAX_REMEMBERED)
        self._counters: Dict[str, int] = {k: 0 for k in (
            "records_received", "batches", "malformed", "unknown_types", "unknown_fields", "invalid_fields",
            "logs_dropped_events", "logs_dropped_records", "logs_dropped_bytes", "invocations",
            "incomplete_invocations", "inits", "duplicate_reports", "duplicate_runtime_done", "late_logs",
            "unattributed_throttles", "pending_evicted", "snapshot_inits_discarded", "late_init_records",
            "function_log_lines", "extension_log_lines", "skimmed_log_lines", "own_lines_filtered",
            "unattributed_logs")}
        # platform modes (modes.py): on Lambda Managed Instances invocations overlap, so records are attributed
        # by request id only and no invocation is the init's "first"; SnapStart's snapshot init is not ours
        self._managed = bool(getattr(self.settings, "managed_instances", False))
        self._tenant: Optional[str] = None           # tenant isolation: one tenant per environment (2.)
        self._durable = False                        # a durable function (runtimeVersion names it)

    # ---- public API ---------------------------------------------------------------------------------------
    @property
    def health(self) -> Dict[str, int]:
        return dict(self._counters)

    def runtime_done_seen(self, request_id: str) -> bool:
        return request_id in self._runtime_done_seen

    def on_batch(self, batch: ParsedBatch, now: float) -> List[Output]:
        """A whole parsed batch (what the worker hands over): counts its items once (received, malformed,
        unknown, invalid), then derives signals from its events."""
        c = self._counters
        c["batches"] += 1
        c["records_received"] += batch.items
        c["malformed"] += batch.malformed
        c["unknown_types"] += batch.unknown_types
        c["unknown_fields"] += batch.unknown_fields
        c["invalid_fields"] += batch.invalid_fields
        return self._derive(batch.events, now)

    def on_invoke(self, invoke: Invoke, now: float) -> List[Output]:
        out: List[Output] = []
        inv = self._get(invoke.request_id, out)
        if inv is None:
            return out
        inv.invoke = invoke
        inv.invoke_time = now if inv.invoke_time is None else inv.invoke_time
        self._latest = max(self._latest, now)
        self._invoke_current = invoke.request_id
        self._bind_first(invoke.request_id, now, out)
        return out

    def on_events(self, events: Sequence[Event], now: float) -> List[Output]:
        """Events without their batch (bench/profile_busy.py): each counted as a record received."""
        self._counters["records_received"] += len(events)
        return self._derive(events, now)

    def _derive(self, events: Sequence[Event], now: float) -> List[Output]:
        """Each event to its handler, chosen by its class (_handlers below lists every event class)."""
        out: List[Output] = []
        self._latest = max(self._latest, now)
        handlers = self._handlers
        for ev in events:
            handler = handlers.get(type(ev))
            if handler is not None:
                handler(self, ev, out)
        return out

    def take_progress(self) -> Tuple[List[str], List[str]]:
        """(request ids whose runtimeDone came, whose report came) since the last call: the shell's waits
        (runtimeDone after an invoke, every report at SHUTDOWN) read them."""
        done, reported = list(self._new_runtime_done), list(self._new_reports)
        self._new_runtime_done.clear()
        self._new_reports.clear()
        return done, reported

    def on_shutdown(self, shutdown: Shutdown, now: float) -> List[Output]:
        reason = (shutdown.reason or "spindown").lower()
        rid = None
        if reason != "spindown":
            inv = self._in_flight()
            if inv is not None:
                inv.shutdown_reason = reason
                rid = inv.rid
            else:  # its report already came: name the last invocation anyway
                rid = self._invoke_current or self._stream_current
        return [ShutdownSignal(reason=reason, time=now, deadline_ms=shutdown.deadline_ms, request_id=rid)]

    def finish(self, now: float) -> List[Output]:
        """At shutdown: the init never used, and every invocation whose report never came (complete=False)."""
        out: List[Output] = []
        if self._init is not None and not self._init.emitted:
            self._emit_init(self._init, out)
        for rid in list(self._pending):
            inv = self._pending.pop(rid)
            out.append(self._invocation(inv, now))
        return out

    # ---- invocations --------------------------------------------------------------------------------------
    def _get(self, rid: str, out: List[Output], create: bool = True) -> Optional[InvocationState]:
        inv = self._pending.get(rid)
        if inv is not None or not create:
            return inv
        if rid in self._emitted:
            return None
        inv = self._pending[rid] = InvocationState(rid)
        while len(self._pending) > MAX_PENDING:
            old_rid = next(iter(self._pending))
            old = self._pending.pop(old_rid)
            self._counters["pending_evicted"] += 1
            out.append(self._invocation(old, self._latest))
        return inv

    def _in_flight(self) -> Optional[InvocationState]:
        for rid in (self._invoke_current, self._stream_current):
            if rid is not None and rid in self._pending:
                return self._pending[rid]
        for inv in reversed(list(self._pending.values())):
            if inv.report is None:
                return inv
        return None

    def _on_start(self, ev: Start, out: List[Output]) -> None:
        self._stream_current = ev.request_id
        if ev.tenant_id and self._tenant is None:
            self._tenant = ev.tenant_id[:256]
        inv = self._get(ev.request_id, out)
        if inv is None:
            return
        inv.start = ev
        self._bind_first(ev.request_id, ev.time, out)

    def _on_runtime_done(self, ev: RuntimeDone, out: List[Output]) -> None:
        self._new_runtime_done.append(ev.request_id)
        if ev.request_id in self._runtime_done_seen:
            self._counters["duplicate_runtime_done"] += 1
        self._runtime_done_seen.add(ev.request_id)
        inv = self._get(ev.request_id, out)
        if inv is None:
            return
        if inv.runtime_done is None:
            inv.runtime_done = ev
        inv.runtime_done_statuses.append(ev.status)
        if ev.error_type and inv.runtime_done_error_type is None:
            inv.runtime_done_error_type = ev.error_type

    def _on_report(self, ev: Report, out: List[Output]) -> None:
        self._new_reports.append(ev.request_id)
        if ev.request_id in self._emitted:
            self._counters["duplicate_reports"] += 1
            return
        inv = self._get(ev.request_id, out)
        if inv is None:
            return
        if inv.report is not None:
            self._counters["duplicate_reports"] += 1
            return
        inv.report = ev
        init = self._init
        if init is not None and not init.emitted and init.first_rid == ev.request_id:
            self._emit_init(init, out, served=inv)
        self._pending.pop(ev.request_id, None)
        out.append(self._invocation(inv, ev.time))

    def _invocation(self, inv: InvocationState, now: float) -> InvocationSignal:
        inv.env_tenant = self._tenant
        inv.durable = self._durable
        self._emitted.add(inv.rid)
        self._counters["invocations"] += 1
        if inv.report is None:
            self._counters["incomplete_invocations"] += 1
        return invocation_signal(inv, self.settings, now)

    # ---- inits --------------------------------------------------------------------------------------------
    def _current_init(self, init_type: str, phase: str, restore: bool, time: float,
                      out: List[Output]) -> Optional[InitState]:
        """The init a runtimeDone/report record belongs to (a new one when the current is done).

        None when the record is a late copy for an init already emitted from report.initDurationMs.
        """
        cur = self._init
        if (cur is not None and cur.emitted and cur.report is None and cur.restore == restore
                and cur.first_time is not None and time <= cur.first_time):
            self._counters["late_init_records"] += 1
            return None
        if (cur is None or cur.restore != restore or cur.report is not None
                or (cur.emitted and cur.first_rid is not None)):
            if cur is not None and not cur.emitted and cur.evidence:
                self._emit_init(cur, out)
            cur = self._init = InitState(init_type, phase, restore)
        return cur

    def _on_init_start(self, ev: InitStart, out: List[Output]) -> None:
        if modes.durable_runtime(ev.runtime_version):
            self._durable = True
        if self._snapshot_init(ev.initialization_type, ev.phase):
            return
        cur = self._init
        if cur is not None and isinstance(cur.start, InitStart) and cur.start.time == ev.time \
                and cur.start.phase == ev.phase:
            return  # replayed to a late subscriber
        if cur is not None and not cur.emitted and not cur.restore and cur.start is None and cur.report is None:
            cur.start, cur.init_type, cur.phase = ev, ev.initialization_type, ev.phase  # fill the placeholder
            return
        if cur is not None and not cur.emitted and cur.evidence:
            self._emit_init(cur, out)
        self._init = InitState(ev.initialization_type, ev.phase)
        self._init.start = ev

    def _on_init_runtime_done(self, ev: InitRuntimeDone, out: List[Output]) -> None:
        if self._snapshot_init(ev.initialization_type, ev.phase):
            return
        cur = self._current_init(ev.initialization_type, ev.phase, False, ev.time, out)
        if cur is not None:
            cur.runtime_done = ev

    def _on_init_report(self, ev: InitReport, out: List[Output]) -> None:
        if self._snapshot_init(ev.initialization_type, ev.phase):
            self._counters["snapshot_inits_discarded"] += 1
            return
        cur = self._current_init(ev.initialization_type, ev.phase, False, ev.time, out)
        if cur is None:
            return
        cur.report = ev
        cur.init_type, cur.phase = ev.initialization_type, ev.phase
        self._try_emit_init(cur, out)

    @staticmethod
    def _snapshot_init(initialization_type: str, phase: str) -> bool:
        """A SnapStart init record (initializationType snap-start): the init ran when the version was published
        and its records reach this environment late, after the restore, dated at publish time. It is not
        this environment's start (the restore is): never an InitSignal, never a cold start (platform-2025.md
        4.1, 9.2). Its report is counted in snapshot_inits_discarded."""
        return modes.is_snapstart(initialization_type) and phase != "invoke"

    def _on_restore_start(self, ev: RestoreStart, out: List[Output]) -> None:
        if modes.durable_runtime(ev.runtime_version):
            self._durable = True
        cur = self._init
        if cur is not None and not cur.emitted and cur.first_rid is None and not cur.restore:
            # the init that ran before the snapshot was taken: not this environment's startup
            self._counters["snapshot_inits_discarded"] += 1
            cur.emitted = True
        elif cur is not None and not cur.emitted and cur.evidence:
            self._emit_init(cur, out)
        self._init = InitState("snap-start", "restore", restore=True)
        self._init.start = ev

    def _on_restore_runtime_done(self, ev: RestoreRuntimeDone, out: List[Output]) -> None:
        cur = self._current_init("snap-start", "restore", True, ev.time, out)
        if cur is not None:
            cur.runtime_done = ev

    def _on_restore_report(self, ev: RestoreReport, out: List[Output]) -> None:
        cur = self._current_init("snap-start", "restore", True, ev.time, out)
        if cur is None:
            return
        cur.report = ev
        self._try_emit_init(cur, out)

    def _bind_first(self, rid: str, t: float, out: List[Output]) -> None:
        if self._managed:   # concurrent invocations: none of them waited for the init (platform-2025.md 1.6)
            return
        cur = self._init
        if cur is None:
            cur = self._init = InitState(self.settings.initialization_type or "on-demand", "init")  # placeholder
        if cur.emitted:
            return
        if cur.first_rid is None:
            cur.first_rid, cur.first_time = rid, t
        elif cur.first_rid == rid and cur.first_time is not None:
            cur.first_time = min(cur.first_time, t)
        else:
            return
        self._try_emit_init(cur, out)

    def _try_emit_init(self, cur: InitState, out: List[Output]) -> None:
        if cur.emitted or cur.report is None:
            return
        if cur.report.status != "success" or cur.first_rid is not None or self._managed:
            self._emit_init(cur, out)

    def _emit_init(self, cur: InitState, out: List[Output], served: Optional[InvocationState] = None) -> None:
        """Build and emit the InitSignal (served: the first invocation's state, for report fallbacks)."""
        cur.emitted = True
        sig = init_signal(cur, served, self.settings.coldstart_idle_ms)
        if sig is None:
            return
        cur.signal = sig
        self._counters["inits"] += 1
        if cur.first_rid is not None:
            inv = self._pending.get(cur.first_rid)
            if inv is not None:
                # emitted once: inside the InvocationSignal of the first invocation it served, which every
                # pending invocation becomes (report, finish or eviction); the sinks record it from there
                inv.init = sig
                return
        out.append(sig)   # an init no pending invocation carries (never used, LMI, failed, or served already)

    # ---- logs and the rest --------------------------------------------------------------------------------
    def _attribute(self, rid: Optional[str]) -> Tuple[Optional[str], Optional[InvocationState]]:
        if rid is not None:
            inv = self._pending.get(rid)
            if inv is not None or rid in self._emitted:
                return rid, inv
        if self._managed:   # invocations overlap: "the current one" means nothing (platform-2025.md 1.6)
            return rid, None
        cur = self._stream_current or self._invoke_current
        if cur is None:
            return None, None
        return cur, self._pending.get(cur)

    def _on_function_log(self, ev: FunctionLog, out: List[Output]) -> None:
        self._counters["function_log_lines"] += 1
        rid, inv = self._attribute(ev.request_id)
        throttle = patterns.is_throttle(ev.text, self._throttle_re)
        oom = patterns.oom_runtime(ev.text) is not None
        fields = ev.fields
        if inv is not None:
            inv.log_lines += 1
            inv.throttles += 1 if throttle else 0
            inv.oom_log = inv.oom_log or oom
            if ev.level == "ERROR" or (fields is not None and "errorType" in fields):
                inv.exception = exception_of(ev) or inv.exception
            if fields is not None and inv.durable_arn is None:
                inv.durable_arn = modes.durable_arn_of(fields)
        elif rid is None and self._managed:
            self._counters["unattributed_logs"] += 1
        elif rid is not None:
            self._counters["late_logs"] += 1
            if throttle:
                self._counters["unattributed_throttles"] += 1
        elif throttle:
            self._counters["unattributed_throttles"] += 1
        if self.settings.otlp_logs:
            trace, value = self._trace_for(inv)
            out.append(LogSignal(time=ev.time, text=ev.text, message=ev.message, level=ev.level, request_id=rid,
                                 trace=trace, invoke_tracing_value=value, source="function",
                                 fields=dict(fields) if fields is not None else None,
                                 throttle=throttle, oom=oom,
                                 tenant_id=modes.tenant_of(fields) or self._tenant_for(inv)))

    def on_skimmed_logs(self, lines: Sequence[str], now: float) -> List[Output]:
        """Function log lines taken in bulk while the sidecar is behind (events.parse_batch_skimming_logs):
        counted and searched for throttles and OOM like any line, attributed to the current invocation (their
        own request ids are not parsed), and never turned into LogSignals: that is what the skim saves."""
        self._latest = max(self._latest, now)
        self._counters["records_received"] += len(lines)
        self._counters["function_log_lines"] += len(lines)
        self._counters["skimmed_log_lines"] += len(lines)
        rid, inv = self._attribute(None)
        if inv is None and self._managed:
            self._counters["unattributed_logs"] += len(lines)
        for text in lines:
            throttle = patterns.is_throttle(text, self._throttle_re)
            oom = patterns.oom_runtime(text) is not None
            if inv is not None:
                inv.log_lines += 1
                inv.throttles += 1 if throttle else 0
                inv.oom_log = inv.oom_log or oom
            elif throttle:
                self._counters["unattributed_throttles"] += 1
        return []

    def _on_extension_log(self, ev: ExtensionLog, out: List[Output]) -> None:
        if is_own_line(ev):
            self._counters["own_lines_filtered"] += 1
            return
        self._counters["extension_log_lines"] += 1
        if self.settings.otlp_logs:
            out.append(LogSignal(time=ev.time, text=ev.text, message=ev.message, level=ev.level, request_id=None,
                                 trace=None, invoke_tracing_value=None, source="extension",
                                 fields=dict(ev.fields) if ev.fields is not None else None))

    def _tenant_for(self, inv: Optional[InvocationState]) -> Optional[str]:
        if inv is not None and inv.start is not None and inv.start.tenant_id:
            return inv.start.tenant_id
        return self._tenant

    @staticmethod
    def _trace_for(inv: Optional[InvocationState]) -> Tuple[Optional[TraceContext], Optional[str]]:
        if inv is None:
            return None, None
        trace = inv.start.tracing if inv.start is not None else None
        return trace, inv.invoke.tracing_value if inv.invoke is not None else None

    def _on_logs_dropped(self, ev: LogsDropped, out: List[Output]) -> None:
        self._counters["logs_dropped_events"] += 1
        self._counters["logs_dropped_records"] += ev.dropped_records
        self._counters["logs_dropped_bytes"] += ev.dropped_bytes

    def _ignore(self, ev: Event, out: List[Output]) -> None:
        pass

    _handlers = {
        Start: _on_start, RuntimeDone: _on_runtime_done, Report: _on_report,
        InitStart: _on_init_start, InitRuntimeDone: _on_init_runtime_done, InitReport: _on_init_report,
        RestoreStart: _on_restore_start, RestoreRuntimeDone: _on_restore_runtime_done,
        RestoreReport: _on_restore_report, FunctionLog: _on_function_log, ExtensionLog: _on_extension_log,
        LogsDropped: _on_logs_dropped, ExtensionState: _ignore, TelemetrySubscription: _ignore,
        UnknownEvent: _ignore,
    }


def invocation_signal(inv: InvocationState, s: Settings, now: float) -> InvocationSignal:
    """The InvocationSignal of what is known about an invocation (complete when its report came). Pure.

    Long on purpose: one derivation per InvocationSignal field (status, error, OOM, durations, cost,
    trace, times), each a few lines reading the same three records; split, they would pass a dozen values
    around."""
    report, done = inv.report, inv.runtime_done

    worst_rt = max(inv.runtime_done_statuses, key=lambda x: _STATUS_RANK.get(x, 1), default=None)
    if report is not None:
        status = report.status
    elif inv.shutdown_reason == "timeout":
        status = "timeout"
    elif worst_rt is not None:
        status = worst_rt
    elif inv.shutdown_reason == "failure":
        status = "error"
    else:
        status = "unknown"
    error_type = (report.error_type if report is not None and report.error_type else None) or inv.runtime_done_error_type
    timeout = (status == "timeout" or "timeout" in inv.runtime_done_statuses or inv.shutdown_reason == "timeout")

    spans: Tuple[PlatformSpan, ...] = (done.spans if done is not None else ()) + (report.spans if report is not None else ())

    def span_ms(name: str) -> Optional[float]:
        for sp in spans:
            if sp.name == name:
                return sp.duration_ms
        return None

    response_latency = span_ms("responseLatency")
    function_error = (done is not None and done.status == "success" and done.produced_bytes == 0
                      and response_latency is None and status in ("success", "unknown"))

    mem_size = report.memory_size_mb if report is not None and report.memory_size_mb else s.memory_mb
    max_used = report.max_memory_used_mb if report is not None else None
    oom_sources = []
    if error_type == OOM_ERROR_TYPE or OOM_ERROR_TYPE in (inv.runtime_done_error_type,):
        oom_sources.append("errorType")
    if max_used is not None and mem_size and max_used >= mem_size:
        oom_sources.append("max_memory")
    if inv.oom_log:
        oom_sources.append("log")
    oom = bool(oom_sources)

    init = inv.init
    init_ms = report.init_duration_ms if report is not None else None
    if init_ms is None and init is not None and init.phase == "invoke":
        init_ms = init.duration_ms
    restore_ms = report.restore_duration_ms if report is not None else None
    if restore_ms is None and init is not None and init.restore_duration_ms is not None:
        restore_ms = init.restore_duration_ms

    duration = report.duration_ms if report is not None else None
    runtime_ms = done.duration_ms if done is not None else None
    post = span_ms("extensionOverhead")
    if post is None and duration is not None and runtime_ms is not None:
        reinit = init.duration_ms if init is not None and init.phase == "invoke" and init.duration_ms else 0.0
        post = max(0.0, duration - runtime_ms - reinit)

    billed = report.billed_duration_ms if report is not None else None
    util = (100.0 * max_used / mem_size) if (max_used is not None and mem_size) else None
    billed_restore = report.billed_restore_duration_ms if report is not None else None
    cost = pricing.estimate(billed, mem_size, s.price_per_gb_s, s.price_per_request, duration,
                            report.init_duration_ms if report is not None else None, billed_restore,
                            s.init_billing) if billed is not None else None

    trace = ((inv.start.tracing if inv.start is not None else None)
             or (done.tracing if done is not None else None) or (report.tracing if report is not None else None))
    start_time = inv.start.time if inv.start is not None else inv.invoke_time
    if start_time is None and done is not None and done.duration_ms is not None:
        start_time = done.time - done.duration_ms / 1000.0
    end_time = report.time if report is not None else max(
        [t for t in (done.time if done is not None else None, start_time) if t is not None] or [now])
    invoke = inv.invoke
    return InvocationSignal(
        request_id=inv.rid, time=end_time, start=start_time, complete=report is not None, status=status,
        error_type=error_type,
        error=status in ("error", "failure", "timeout") or timeout or function_error,
        function_error=function_error, timeout=timeout, oom=oom, oom_sources=tuple(oom_sources),
        cold_start=bool(init is not None and init.cold_start),
        start_kind=init.kind if init is not None else "warm",
        init_duration_ms=init_ms, restore_duration_ms=restore_ms, duration_ms=duration,
        billed_duration_ms=billed, runtime_duration_ms=runtime_ms, post_runtime_ms=post,
        response_latency_ms=response_latency, response_duration_ms=span_ms("responseDuration"),
        runtime_overhead_ms=span_ms("runtimeOverhead"),
        produced_bytes=done.produced_bytes if done is not None else None, memory_size_mb=mem_size,
        max_memory_used_mb=max_used, memory_utilization=util, estimated_cost_usd=cost,
        throttles=inv.throttles, log_lines=inv.log_lines, trace=trace,
        invoke_tracing_value=invoke.tracing_value if invoke is not None else None, spans=spans,
        deadline_ms=invoke.deadline_ms if invoke is not None else None,
        invoked_arn=invoke.invoked_arn if invoke is not None else None,
        version=inv.start.version if inv.start is not None else None,
        tenant_id=(inv.start.tenant_id if inv.start is not None else None)
        or (report.tenant_id if report is not None else None) or inv.env_tenant,
        shutdown_reason=inv.shutdown_reason, init=init, exception=inv.exception,
        durable=inv.durable or inv.durable_arn is not None, durable_execution_arn=inv.durable_arn,
        billed_restore_duration_ms=billed_restore, managed_instances=bool(s.managed_instances))


def init_signal(cur: InitState, served: Optional[InvocationState], idle_threshold_ms: float) -> Optional[InitSignal]:
    """The InitSignal of an init (served: the first invocation's state, for report fallbacks); None for a
    placeholder nothing ever confirmed. Pure; the kind is coldstart.classify_init's."""
    served_report = served.report if served is not None else None
    duration = cur.report.duration_ms if cur.report is not None else None
    source = ("restoreReport" if cur.restore else "initReport") if duration is not None else "report"
    if duration is None and served_report is not None:
        duration = served_report.restore_duration_ms if cur.restore else served_report.init_duration_ms
    if not cur.evidence and duration is None:
        return None  # a placeholder nothing ever confirmed
    status = (cur.report.status if cur.report is not None
              else cur.runtime_done.status if cur.runtime_done is not None else "success")
    error_type = ((cur.report.error_type if cur.report is not None else None)
                  or (cur.runtime_done.error_type if cur.runtime_done is not None else None))
    end = cur.end_time
    if end is None:
        start_t = served.start.time if served is not None and served.start is not None else cur.first_time
        end = start_t if start_t is not None else (cur.start.time if cur.start is not None else 0.0)
    start = cur.start.time if cur.start is not None else None
    if start is None and duration is not None:
        start = end - duration / 1000.0
    gap = (cur.first_time - end) * 1000.0 if cur.first_time is not None else None
    ok = status == "success"
    itype = cur.init_type or "on-demand"
    kind, proactive = classify_init(itype, cur.phase, cur.restore, ok, gap, idle_threshold_ms)
    st = cur.start
    sig = InitSignal(
        time=end, start=start, duration_ms=duration, initialization_type="snap-start" if cur.restore else itype,
        phase=cur.phase, status=status, error_type=error_type, kind=kind,
        cold_start=ok and kind == COLD_START, proactive=proactive, first_request_id=cur.first_rid,
        idle_gap_ms=gap, source=source, restore_duration_ms=duration if cur.restore else None,
        runtime_version=getattr(st, "runtime_version", None),
        runtime_version_arn=getattr(st, "runtime_version_arn", None),
        function_name=getattr(st, "function_name", None), function_version=getattr(st, "function_version", None),
        instance_id=getattr(st, "instance_id", None), instance_max_memory=getattr(st, "instance_max_memory", None),
        spans=(cur.runtime_done.spans if cur.runtime_done is not None else ())
        + (cur.report.spans if cur.report is not None else ()))
    return sig
