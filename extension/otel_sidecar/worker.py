"""Background worker: listener queue -> events.parse_batch -> SignalEngine -> sinks; runs the flushes.

The pure core and the sinks are imported here, on the worker thread, so that nothing heavy sits on the
path to the first /next. Every exception is caught and counted: the worker never takes the process down.
The lifecycle thread talks to the worker only through the shared condition variable.
"""

from __future__ import annotations

import collections
import threading
import time

from .lifecycle import log, setup_logging
from .listener import records_in

TYPE_CHECKING = False
if TYPE_CHECKING:  # imported on the main thread before the first /next: keep typing off that path
    from typing import Any, Deque, Dict, List, Mapping, Optional, Set, Tuple

OWN_LINE_PREFIX = "[otel-sidecar]"
RUNTIME_DONE_MARK = b'"platform.runtimeDone"'
SETUP_WAIT_S = 30.0               # the setup starts by then even if nothing released it (time stops while frozen)
SKIM_FILL = 0.5                   # backlog (batches or bytes) as a share of the listener queue's bound from
                                  # which log lines are only skimmed: a burst that fits is processed in full
MAX_PENDING_INVOKES = 64          # INVOKE events not yet seen by the engine (one per invoke in practice)
BACKGROUND_FLUSH_S = 2.0          # bound of a timer-driven flush (it overlaps the handler, never holds /next)
WORKER_NICE = 10                  # the worker runs at a lower CPU priority than the function
SHUTDOWN_FLUSH_RESERVE_S = 0.4    # at SHUTDOWN, stop parsing this long before the deadline to flush
FLUSH_SHARE = 0.5                 # share of a flush budget kept for the flush itself when there is a backlog
OTLP_SETUP_RESERVE_S = 1.0       # at a SHUTDOWN before any invocation: start OTLP only with this much time left
LOCAL_SINK_RESERVE_S = 0.05      # at SHUTDOWN, time kept after the network sinks for the stdout (EMF) sink
HEALTH_INTERVAL_S = 60.0         # own counters go out at most this often (and always at shutdown)
MAX_TRACKED_REQUESTS = 256        # request ids remembered for the shutdown drain
OTLP_ENDPOINT_VARS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                      "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
                      "OPENTELEMETRY_COLLECTOR_CONFIG_URI", "SIDECAR_COLLECTOR_CONFIG")


class Plan:
    """Fallback plan when flush.py is unavailable: wait for runtimeDone, then flush within 30 ms."""

    __slots__ = ("wait_runtime_done", "budget_s")

    def __init__(self, wait_runtime_done: bool = True, budget_s: float = 0.03) -> None:
        self.wait_runtime_done = wait_runtime_done
        self.budget_s = budget_s


def otlp_configured(settings: Any, env: Mapping[str, str]) -> bool:
    flag = getattr(settings, "otlp_enabled", None) if settings is not None else None
    if flag is not None:
        return bool(flag)
    return any((env.get(v) or "").strip() for v in OTLP_ENDPOINT_VARS)


class Worker:
    """The one thread that owns the engine and the sinks."""

    def __init__(self, sidecar: Any) -> None:
        self.sidecar = sidecar
        self.cond: threading.Condition = sidecar.cond
        self.queue = sidecar.queue
        self.settings = sidecar.settings
        self.env: Mapping[str, str] = sidecar.env
        self.own_prefixes = (OWN_LINE_PREFIX, '{"_aws"')
        self._invokes: Deque[Tuple[Dict[str, Any], float]] = collections.deque()
        self._flush_req: Optional[Tuple[int, float]] = None
        self._flush_done = 0
        self._flush_seq = 0
        self._shutdown_req: Optional[Tuple[Optional[Dict[str, Any]], float, float]] = None
        self._shutdown_done = False
        self._awaiting: Optional[str] = None
        self._runtime_done: collections.OrderedDict[str, None] = collections.OrderedDict()
        self.runtime_done_total = 0   # distinct runtimeDone request ids seen (raw peek or parsed)
        self._ready = False
        self.counters: Dict[str, int] = collections.defaultdict(int)
        self.engine: Any = None
        self.sinks: List[Any] = []
        self.events_mod: Any = None
        self.policy: Any = None
        self._policy_failed = False
        self._requests: Deque[str] = collections.deque(maxlen=MAX_TRACKED_REQUESTS)
        self._reported: Set[str] = set()
        self._health_at = time.monotonic()
        if self.queue is not None:
            self.queue.peek = self._peek
        self._setup_go = threading.Event()
        self._thread = threading.Thread(target=self._run, name="otel-sidecar-worker", daemon=True)

    # ---- lifecycle side (called on the main thread) ------------------------------------------------
    def start(self, defer_setup: bool = False) -> None:
        """Start the thread; with defer_setup its one-time setup waits for `release_setup()` (bounded)."""
        if not defer_setup:
            self._setup_go.set()
        self._thread.start()

    def release_setup(self) -> None:
        """The imports and sink set-up may use the CPU now (the first invocation's response is out)."""
        self._setup_go.set()

    @property
    def ready(self) -> bool:
        """The one-time setup is over (the engine and sinks exist, or failed for good)."""
        with self.cond:
            return self._ready

    def wait_ready(self, deadline: float) -> bool:
        """Block until the setup is over or the monotonic deadline; releases the setup first."""
        self._setup_go.set()
        with self.cond:
            return self._wait_until(lambda: self._ready, deadline, "setup_wait_timeouts")

    def _wait_until(self, done: Any, deadline: float, timeout_counter: Optional[str] = None) -> bool:
        """Wait on `cond` (held by the caller) until done() or the monotonic deadline; counts a timeout."""
        while not done():
            left = deadline - time.monotonic()
            if left <= 0:
                if timeout_counter:
                    self.counters[timeout_counter] += 1
                return False
            self.cond.wait(left)
        return True

    def submit_invoke(self, event: Dict[str, Any]) -> None:
        with self.cond:
            if len(self._invokes) >= MAX_PENDING_INVOKES:
                self._invokes.popleft()
                self.counters["dropped_invoke_events"] += 1
            self._invokes.append((event, time.time()))
            policy = self._get_policy()
            if policy is not None:
                try:
                    policy.on_invoke(time.monotonic())
                except Exception as exc:  # noqa: BLE001
                    self._fail("policy", exc)
            rid = event.get("requestId")
            if rid:
                self._requests.append(rid)
            self.cond.notify_all()

    def _get_policy(self) -> Any:
        """flush.py's FlushPolicy, built on first use (a pure, light module). Call with `cond` held."""
        if self.policy is None and not self._policy_failed:
            try:
                from .flush import make_policy

                self.policy = make_policy(self.settings)
            except Exception as exc:  # noqa: BLE001
                self._policy_failed = True
                self._fail("flush_policy", exc)
        return self.policy

    def plan_after_invoke(self, deadline: Optional[float] = None) -> Any:
        """The flush policy's plan for the invoke just handed over (.wait_runtime_done, .budget_s)."""
        with self.cond:
            try:
                policy = self._get_policy()
                if policy is not None:
                    return policy.plan_after_invoke(time.monotonic(), deadline)
            except Exception as exc:  # noqa: BLE001
                self._fail("policy", exc)
        return Plan()

    def tracks_runtime_done(self) -> bool:
        """False once it is known that no engine can report runtimeDone (waiting would only burn the deadline)."""
        with self.cond:
            return not self._ready or (self.engine is not None and self.events_mod is not None)

    def wait_runtime_done(self, request_id: str, deadline: float) -> bool:
        """Block until the engine has seen platform.runtimeDone of request_id, or the monotonic deadline."""
        with self.cond:
            self._awaiting = request_id
            self.cond.notify_all()
            try:
                return self._wait_until(lambda: request_id in self._runtime_done, deadline,
                                        "runtime_done_wait_timeouts")
            finally:
                self._awaiting = None

    def flush(self, deadline: float) -> bool:
        """Have the worker flush every sink by the monotonic deadline; returns False if it did not finish."""
        with self.cond:
            self._flush_seq += 1
            seq = self._flush_seq
            self._flush_req = (seq, deadline)
            self.cond.notify_all()
            return self._wait_until(lambda: self._flush_done >= seq, deadline, "flush_overruns")

    def shutdown(self, event: Optional[Dict[str, Any]], drain_until: float, deadline: float) -> bool:
        """Drain late telemetry until drain_until, then finish and flush everything by deadline."""
        self._setup_go.set()
        with self.cond:
            self._shutdown_req = (event, drain_until, deadline)
            self.cond.notify_all()
            return self._wait_until(lambda: self._shutdown_done, deadline)

    def health(self) -> Dict[str, int]:
        """Merged counters: listener, worker, engine, sinks and the time to the first /next."""
        out: Dict[str, int] = {}
        sc = self.sidecar
        if sc.listener is not None:
            out.update(sc.listener.health())
        else:
            out.update(self.queue.health())
        if getattr(sc, "local_otlp", None) is not None:
            out.update(sc.local_otlp.health())
        with self.cond:
            out.update({f"worker_{k}": v for k, v in self.counters.items()})
        eng = getattr(self.engine, "health", None)
        if eng is not None:
            out.update(_as_counts(eng, "engine_"))
        for sink in self.sinks:
            try:
                out.update(_as_counts(sink.health(), ""))
            except Exception as exc:  # noqa: BLE001
                self._fail("sink_health", exc)
        if sc.time_to_first_next_ms is not None:
            out["time_to_first_next_ms"] = int(round(sc.time_to_first_next_ms))
        out["degraded"] = len(sc.degraded)
        return out

    def _peek(self, body: bytes) -> None:
        """Listener thread, `cond` held: note runtimeDone request ids straight from the raw body.

        The lifecycle's wait for runtimeDone must not depend on how far behind the worker is (a burst of
        function logs can take it a second to work through); this byte scan is cheap and bounded.
        """
        at = body.find(RUNTIME_DONE_MARK)
        found = False
        while at >= 0:
            window = body[at + len(RUNTIME_DONE_MARK):at + 4096]
            rec, tim = window.find(b'"record"'), window.find(b'"time"')
            # the envelope's record must follow its type (Lambda writes time, type, record); otherwise the
            # next event's record would be read: then leave it to the worker
            key = window.find(b'"requestId"', rec) if rec >= 0 and (tim < 0 or rec < tim) else -1
            if key >= 0 and (tim < 0 or key < tim):
                start = window.find(b'"', window.find(b":", key) + 1)
                end = window.find(b'"', start + 1)
                if start > 0 and end > start:
                    rid = window[start + 1:end].decode("ascii", "replace")
                    if rid not in self._runtime_done:
                        self.runtime_done_total += 1
                    self._runtime_done[rid] = None
                    found = True
            at = body.find(RUNTIME_DONE_MARK, at + 1)
        if found:
            while len(self._runtime_done) > MAX_TRACKED_REQUESTS:
                self._runtime_done.popitem(last=False)
            self.counters["runtime_done_peeked"] += 1
            self._setup_go.set()         # a runtime is done: its caller has the response
            self.cond.notify_all()

    # ---- worker thread --------------------------------------------------------------------------------
    def _fail(self, where: str, exc: BaseException) -> None:
        first = self.counters[f"errors_{where}"] == 0
        self.counters[f"errors_{where}"] += 1
        if first:  # one line per kind of problem, then only counted
            log.error("error in %s (%s: %s); counted, continuing", where, type(exc).__name__, exc)

    def _bound_listener(self) -> None:
        """Put the listener's queue of raw bodies under the memory budget's share for it (bodies being read
        have their own bound in listener.py: one body of the largest size accepted).

        Done here, after the first /next, because budget.py's imports are not on the start-up path; until then
        the listener keeps its built-in bounds (listener.py)."""
        try:
            from .budget import listener_queue_bytes

            share = listener_queue_bytes(self.env)
            if self.queue is not None:
                self.queue.max_bytes = share
        except Exception as exc:  # noqa: BLE001
            log.warning("memory budget: the listener keeps its built-in bounds (%s)", type(exc).__name__)

    def _setup(self) -> None:
        """Import the core and build the engine and sinks (off the path to the first /next)."""
        try:
            setup_logging(str(getattr(self.settings, "log_level", "INFO") or "INFO"))
        except Exception as exc:  # noqa: BLE001
            self._fail("logging", exc)
        try:
            from . import events as events_mod
            from .signals import SignalEngine

            self.events_mod = events_mod
            self.engine = SignalEngine(self.settings) if self.settings is not None else SignalEngine(_default_settings())
        except Exception as exc:  # noqa: BLE001
            self.sidecar.degrade(f"the signal engine is unavailable ({type(exc).__name__}: {exc}); "
                                 "telemetry is counted but not turned into metrics")
        with self.cond:
            self._get_policy()
        self._bound_listener()
        if _enabled(self.settings, "emf_enabled", True):
            try:
                from .emf import EmfSink

                self.sinks.append(_make_emf_sink(EmfSink, self.settings, self.env))
            except Exception as exc:  # noqa: BLE001
                self.sidecar.degrade(f"the EMF sink is unavailable ({type(exc).__name__}: {exc})")
        if otlp_configured(self.settings, self.env):
            with self.cond:
                shutdown = self._shutdown_req
            if shutdown is not None and shutdown[2] - time.monotonic() < OTLP_SETUP_RESERVE_S:
                # SHUTDOWN came before any invocation released the setup (an init that served none) and
                # leaves too little time to load the OTLP stack as well: the EMF lines still report the init
                self.counters["otlp_skipped_at_shutdown"] += 1
                log.warning("OTLP export skipped: the environment shuts down before its first invocation "
                            "with too little time left to start it; EMF has the init")
                return
            try:
                from .otlp import create_sink

                sink = create_sink(self.settings, self.env)
                if sink is not None:
                    self.sinks.append(sink)
            except Exception as exc:  # noqa: BLE001
                self.sidecar.degrade(f"OTLP export is off: the OTLP sink could not start "
                                     f"({type(exc).__name__}: {exc})")

    def _wire_local_otlp(self) -> None:
        """Hand the local OTLP endpoint's queue to the OTLP sink (bounded by half the memory budget) and load its
        protobuf; without an OTLP sink, its requests are answered with a partial success and counted."""
        server = getattr(self.sidecar, "local_otlp", None)
        if server is None:
            return
        sink = next((s for s in self.sinks if hasattr(s, "local_intake")), None)
        try:
            if sink is None:
                server.intake.refuse("the sidecar exports no OTLP here; the function's telemetry is dropped")
                return
            from .budget import budget_bytes
            from .local_otlp import MIN_QUEUE_BYTES

            server.intake.max_bytes = max(MIN_QUEUE_BYTES, budget_bytes(self.env)[0] // 2)
            server.intake.warm()
            sink.local_intake = server.intake
        except Exception as exc:  # noqa: BLE001
            self._fail("local_otlp", exc)
            server.intake.refuse(f"the sidecar could not forward ({type(exc).__name__})")

    def _run(self) -> None:
        # The setup (importing the core and the sinks: most of a cold sidecar's CPU) waits until the first
        # invocation's runtime is done (release_setup / a peeked runtimeDone / SHUTDOWN). Under Lambda's CPU
        # quota every CPU-millisecond spent during the init or a handler delays the caller by as much,
        # whatever the priority; after the response it only costs post-runtime time, once.
        _lower_priority()
        self._setup_go.wait(SETUP_WAIT_S)
        try:
            self._setup()
        except Exception as exc:  # noqa: BLE001
            self._fail("setup", exc)
        self._wire_local_otlp()
        with self.cond:
            self._ready = True
            self.cond.notify_all()
        while True:
            try:
                if self._step():
                    return
            except Exception as exc:  # noqa: BLE001 - the worker must survive anything
                self._fail("loop", exc)

    def _step(self) -> bool:
        """One round of work; returns True when the shutdown is complete."""
        with self.cond:
            while not (self._invokes or len(self.queue) or self._flush_req or self._shutdown_req):
                self.cond.wait(self._timer_wait())
                if self._timer_due():
                    break
            invokes = list(self._invokes)
            self._invokes.clear()
            flush_req = self._flush_req
            shutdown_req = self._shutdown_req
        for event, t in invokes:
            self._on_invoke(event, t)
        if shutdown_req is not None:
            self._do_shutdown(*shutdown_req)
            return True
        if flush_req is not None:
            # work through the backlog only while the flush budget leaves room for the flush itself
            self._process(stop_at=flush_req[1] - (flush_req[1] - time.monotonic()) * FLUSH_SHARE)
            self._do_flush(flush_req[1])
            with self.cond:
                self._flush_done = max(self._flush_done, flush_req[0])
                if self._flush_req is flush_req:
                    self._flush_req = None
                self.cond.notify_all()
            return False
        self._process(stop_at=None)
        if self._timer_due():
            # a background flush overlaps an invocation (or idles): bounded, but not by the post-runtime budget
            self._do_flush(time.monotonic() + BACKGROUND_FLUSH_S)
        return False

    def _process(self, stop_at: Optional[float]) -> None:
        """Parse queued batches in order; stop early (putting the rest back) at stop_at, or as soon as a
        flush or shutdown request comes in, so that those are served within their bounds."""
        batches = self.queue.get_all_nowait()
        left_bytes = sum(len(b) for b in batches)
        for i, body in enumerate(batches):
            left_bytes -= len(body)
            if i and ((stop_at is not None and time.monotonic() >= stop_at)
                      or (stop_at is None and (self._flush_req is not None or self._shutdown_req is not None))):
                self.queue.requeue_front(batches[i:])
                self.counters["backlog_deferred"] += 1
                return
            if self._far_behind(len(batches) - i - 1, left_bytes) and self.events_mod is not None \
                    and self.engine is not None:
                self._skim_batch(body)
            else:
                self._on_batch(body)

    # -- timer for periodic / continuous policies (never fires while the environment is frozen) --
    def _timer_wait(self) -> Optional[float]:
        due = self._timer()
        return None if due is None else max(0.0, due - time.monotonic())

    def _timer_due(self) -> bool:
        due = self._timer()
        return due is not None and due <= time.monotonic()

    def _timer(self) -> Optional[float]:
        with self.cond:
            if self.policy is None:
                return None
            try:
                return self.policy.next_timer(time.monotonic())
            except Exception as exc:  # noqa: BLE001
                self._fail("policy", exc)
                return None

    # -- work --
    def _emit(self, outputs: Any, sinks: Optional[List[Any]] = None) -> None:
        if not outputs:
            return
        for sink in self.sinks if sinks is None else sinks:
            try:
                sink.accept(outputs)
            except Exception as exc:  # noqa: BLE001
                self._fail("sink_accept", exc)

    def _on_invoke(self, event: Dict[str, Any], t: float) -> None:
        self.counters["invokes"] += 1
        if self.engine is None or self.events_mod is None:
            return
        try:
            inv = self.events_mod.parse_invoke(event)
            if inv is None:
                self.counters["invokes_without_request_id"] += 1
                return
            self._emit(self.engine.on_invoke(inv, t))
        except Exception as exc:  # noqa: BLE001
            self._fail("engine_invoke", exc)

    def _on_batch(self, body: bytes) -> None:
        self.counters["batches"] += 1
        if self.events_mod is None:
            return
        try:
            parsed = self.events_mod.parse_batch(body)
        except Exception as exc:  # noqa: BLE001
            self._fail("parse", exc)
            self.counters["malformed"] += 1
            return
        self._on_parsed(parsed)

    def _on_parsed(self, parsed: Any) -> None:
        self.counters["records_received"] += parsed.items
        self.counters["malformed"] += parsed.malformed
        self.counters["unknown_types"] += parsed.unknown_types
        self.counters["unknown_fields"] += parsed.unknown_fields
        for ev in parsed.events:
            if type(ev).__name__ == "LogsDropped":
                self.counters["logs_dropped_records"] += int(getattr(ev, "dropped_records", 0) or 0)
        events = [e for e in parsed.events if not self._is_own_line(e)]
        filtered = len(parsed.events) - len(events)
        if filtered:
            self.counters["own_lines_filtered"] += filtered
        if self.engine is None or not events:
            return
        try:
            self._emit(self.engine.on_events(events, time.time()))
        except Exception as exc:  # noqa: BLE001
            self._fail("engine_events", exc)
        self._note_progress(events)

    def _far_behind(self, taken_batches: int, taken_bytes: int) -> bool:
        """Is the backlog (what this round took and has not processed, plus what waits in the queue) half the
        queue's bound? Past that, a flood would soon make the queue drop whole batches, platform records too."""
        q = self.queue
        max_batches, max_bytes = getattr(q, "max_batches", 0), getattr(q, "max_bytes", 0)
        if not max_batches or not max_bytes:
            return False
        return (taken_batches + len(q) >= max_batches * SKIM_FILL
                or taken_bytes + q.queued_bytes() >= max_bytes * SKIM_FILL)

    def _skim_batch(self, body: bytes) -> None:
        """A log flood put us behind: this batch's function log lines are only counted and searched for
        throttles and OOM (no OTLP log records: shed, and counted as dropped when OTLP logs are on); its
        platform records are parsed as usual, so no invocation is lost to the flood."""
        self.counters["batches"] += 1
        self.counters["skimmed_batches"] += 1
        exports_logs = any(getattr(s, "logs_enabled", False) for s in self.sinks)
        for part in self.events_mod.parse_batch_skimming_logs(body):
            if isinstance(part, tuple):
                self.counters["records_received"] += len(part)
                if exports_logs:
                    self.counters["shed_log_records"] += len(part)
                try:
                    self._emit(self.engine.on_skimmed_logs(part, time.time()))
                except Exception as exc:  # noqa: BLE001
                    self._fail("engine_logs", exc)
            else:
                self._on_parsed(part)

    def _is_own_line(self, ev: Any) -> bool:
        """Our own stdout comes back as `extension` records: never feed them to the engine."""
        if type(ev).__name__ != "ExtensionLog":
            return False
        text = getattr(ev, "text", None)
        if not isinstance(text, str):
            fields = getattr(ev, "fields", None)
            text = str(fields.get("message", "")) if isinstance(fields, dict) else ""
        return text.lstrip().startswith(self.own_prefixes)

    def _note_progress(self, events: List[Any]) -> None:
        """Remember reports and runtimeDones (for any request: the INVOKE may not have reached us yet)."""
        done = []
        for ev in events:
            name = type(ev).__name__
            rid = getattr(ev, "request_id", None)
            if name == "Report" and rid:
                self._reported.add(rid)
                if len(self._reported) > 4 * MAX_TRACKED_REQUESTS:
                    self._reported = set(self._requests)
            elif name == "RuntimeDone" and rid:
                done.append(rid)
        with self.cond:
            awaited = self._awaiting
            if awaited and awaited not in self._runtime_done and awaited not in done:
                try:
                    if self.engine.runtime_done_seen(awaited):
                        done.append(awaited)
                except Exception as exc:  # noqa: BLE001
                    self._fail("engine_runtime_done", exc)
            if done:
                for rid in done:
                    if rid not in self._runtime_done:
                        self.runtime_done_total += 1
                    self._runtime_done[rid] = None
                while len(self._runtime_done) > MAX_TRACKED_REQUESTS:
                    self._runtime_done.popitem(last=False)
                self.cond.notify_all()

    def _do_flush(self, deadline: float) -> None:
        if time.monotonic() - self._health_at >= HEALTH_INTERVAL_S:
            self._report_health()
        with self.cond:
            if self.policy is not None:
                try:
                    self.policy.on_flush(time.monotonic())
                except Exception as exc:  # noqa: BLE001
                    self._fail("policy", exc)
        for sink in self.sinks:
            if time.monotonic() >= deadline:
                self.counters["flush_skipped_sinks"] += 1
                continue
            try:
                sink.flush(deadline)
            except Exception as exc:  # noqa: BLE001
                self._fail("sink_flush", exc)

    def _do_shutdown(self, event: Optional[Dict[str, Any]], drain_until: float, deadline: float) -> None:
        try:
            self._drain(drain_until, deadline)
            now = time.time()
            if self.engine is not None and self.events_mod is not None:
                if event is not None:
                    try:
                        shut = self.events_mod.parse_shutdown(event)
                        self._emit(self.engine.on_shutdown(shut, now))
                    except Exception as exc:  # noqa: BLE001
                        self._fail("engine_shutdown", exc)
                try:
                    self._emit(self.engine.finish(now))
                except Exception as exc:  # noqa: BLE001
                    self._fail("engine_finish", exc)
            self._report_health()
            # sinks that export over the network go first; what their final export could not deliver is then
            # in the health counters that the local sinks (EMF on stdout, no network) write last
            local = [s for s in self.sinks if getattr(s, "local", False)]
            remote = [s for s in self.sinks if not getattr(s, "local", False)]
            reserve = min(LOCAL_SINK_RESERVE_S, max(0.0, deadline - time.monotonic()) * 0.2) if local else 0.0
            self._shutdown_sinks(remote, deadline - reserve)
            if remote and local:
                self._report_health(local)
            self._shutdown_sinks(local, deadline)
        finally:
            with self.cond:
                self._shutdown_done = True
                self.cond.notify_all()

    def _shutdown_sinks(self, sinks: List[Any], deadline: float) -> None:
        for sink in sinks:
            try:
                sink.shutdown(deadline)
            except Exception as exc:  # noqa: BLE001
                self._fail("sink_shutdown", exc)

    def _drain(self, until: float, deadline: float) -> None:
        """Process what has arrived (until the final flush's reserve) and wait for late batches until
        `until` or until every invoked request has its report. A backlog left then is counted and dropped:
        the final flush must happen before the deadline."""
        process_until = deadline - min(SHUTDOWN_FLUSH_RESERVE_S, max(0.0, deadline - time.monotonic()) * 0.4)
        while True:
            self._process(stop_at=process_until)
            missing = [r for r in self._requests if r not in self._reported]
            subscribed = "platform" in getattr(self.sidecar, "subscribed_types", ())
            with self.cond:
                now = time.monotonic()
                backlog = len(self.queue)
                if backlog and now < process_until:
                    continue
                if backlog:
                    left = self.queue.get_all_nowait()
                    self.counters["dropped_at_shutdown_batches"] += len(left)
                    self.counters["dropped_at_shutdown_records"] += sum(records_in(b) for b in left)
                if not missing or not subscribed or now >= until:
                    if missing and subscribed:
                        self.counters["shutdown_reports_missing"] += len(missing)
                    return
                self.cond.wait(until - now)

    def _report_health(self, sinks: Optional[List[Any]] = None) -> None:
        """Hand our own counters to the sinks (all, or those given) as a HealthSignal (they emit them as the
        sidecar's metrics)."""
        self._health_at = time.monotonic()
        try:
            from .signals import HealthSignal

            counts = health_counters(self.health())
            signal = HealthSignal(time=time.time(), counters=tuple(sorted(counts.items())))
        except Exception as exc:  # noqa: BLE001
            self._fail("health", exc)
            return
        self._emit([signal], sinks)


def health_counters(detail: Mapping[str, int]) -> Dict[str, float]:
    """The detailed counters folded into the catalog's health keys (HealthSignal.counters)."""
    own = ("listener_", "worker_", "engine_")
    sink_dropped = sum(v for k, v in detail.items()
                       if not k.startswith(own) and ("dropped_" in k or k.endswith("dropped")) and "logs_dropped" not in k)
    # records, not batches: a dropped batch of 1,000 log lines is 1,000 items lost (an oversized body is never
    # read, so it counts once)
    dropped = (detail.get("listener_dropped_records", 0) + detail.get("listener_oversized", 0)
               + detail.get("listener_rejected", 0)      # refused requests: wrong path, malformed, too slow
               + detail.get("worker_dropped_invoke_events", 0) + detail.get("worker_dropped_at_shutdown_records", 0)
               + detail.get("worker_shed_log_records", 0)
               + sink_dropped)
    out = {
        "records_received": detail.get("worker_records_received", 0),
        "malformed": detail.get("worker_malformed", 0),
        "unknown_types": detail.get("worker_unknown_types", 0),
        "unknown_fields": detail.get("worker_unknown_fields", 0),
        "logs_dropped_records": detail.get("worker_logs_dropped_records", 0),
        "dropped": dropped,
        "export_failures": sum(v for k, v in detail.items() if k.endswith("export_failures") and not k.startswith(own)),
    }
    if "time_to_first_next_ms" in detail:
        out["time_to_first_next_ms"] = detail["time_to_first_next_ms"]
    for k, v in detail.items():   # the function's own OTLP (local_otlp.py): totals and per-signal counts
        if k.startswith(("local_otlp_received", "local_otlp_forwarded")):
            out[k] = v
    return {k: float(v) for k, v in out.items()}


def _lower_priority() -> None:
    """Nice this thread (and the exporter threads it starts, which inherit it): when the handler and the
    sidecar compete for a fractional vCPU, the handler wins. Linux-only; best effort."""
    try:
        import os

        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + WORKER_NICE))
    except (AttributeError, OSError):
        pass


def _enabled(settings: Any, name: str, default: bool) -> bool:
    value = getattr(settings, name, None) if settings is not None else None
    return default if value is None else bool(value)


def _default_settings() -> Any:
    from .config import load_settings

    return load_settings({})[0]


def _make_emf_sink(cls: Any, settings: Any, env: Mapping[str, str]) -> Any:
    if settings is None:
        settings = _default_settings()
    return cls(settings)


def _as_counts(value: Any, prefix: str) -> Dict[str, int]:
    if isinstance(value, dict):
        items = value.items()
    elif hasattr(value, "__dataclass_fields__"):
        items = ((k, getattr(value, k)) for k in value.__dataclass_fields__)
    else:
        items = getattr(value, "__dict__", {}).items()
    return {prefix + str(k): int(v) for k, v in items if isinstance(v, (int, float)) and not isinstance(v, bool)}

