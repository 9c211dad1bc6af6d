"""Background worker: listener queue -> RecordPipeline (parse, engine) -> sinks; runs the flushes.

The pure core and the sinks are imported here, on the worker thread, so that nothing heavy sits on the
path to the first /next. Every exception is caught and counted: the worker never takes the process down.
The lifecycle thread talks to the worker only through the shared condition variable (the queue's); what
the lifecycle knows about itself (degraded, subscribed types, ...) the worker reads from SidecarStatus.
"""

from __future__ import annotations

import threading
import time

from .health import drop_reasons, health_counters
from .listener import BatchQueue, records_in
from .ownlog import log, setup_logging
from .status import SidecarStatus
from .worker_requests import MAX_TRACKED_REQUESTS, WorkerRequests

TYPE_CHECKING = False
if TYPE_CHECKING:  # imported on the main thread before the first /next: keep typing off that path
    from typing import Any, Dict, List, Mapping, Optional, Set


SETUP_WAIT_S = 30.0               # the setup starts by then even if nothing released it (time stops while frozen)
SKIM_FILL = 0.5                   # backlog (batches or bytes) as a share of the listener queue's bound from
                                  # which log lines are only skimmed: a burst that fits is processed in full
BACKGROUND_FLUSH_S = 2.0          # bound of a timer-driven flush (it overlaps the handler, never holds /next)
WORKER_NICE = 10                  # the worker runs at a lower CPU priority than the function
SHUTDOWN_FLUSH_RESERVE_S = 0.4    # at SHUTDOWN, stop parsing this long before the deadline to flush
FLUSH_SHARE = 0.5                 # share of a flush budget kept for the flush itself when there is a backlog
LOCAL_SINK_RESERVE_S = 0.05      # at SHUTDOWN, time kept after the network sinks for the stdout (EMF) sink
HEALTH_INTERVAL_S = 60.0         # own counters go out at most this often (and always at shutdown)

class Worker(WorkerRequests):
    """The one thread that owns the engine and the sinks (the lifecycle's requests: worker_requests.py).

    Over 300 lines on purpose: its loop, the backlog handling (skim, requeue) and the shutdown drain all
    share the same bounded deadlines and counters; the pure parts are elsewhere (pipeline.py, health.py,
    sinks.py)."""

    def __init__(self, queue: BatchQueue, settings: Any, env: Mapping[str, str],
                 status: Optional[SidecarStatus] = None) -> None:
        super().__init__(queue, settings)
        self.env: Mapping[str, str] = env
        self.status = status if status is not None else SidecarStatus()
        self.sinks: List[Any] = []
        self._reported: Set[str] = set()
        self._health_at = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="otel-sidecar-worker", daemon=True)

    def health(self) -> Dict[str, int]:
        """Merged counters: listener, worker, engine, sinks and the time to the first /next."""
        out: Dict[str, int] = {}
        status = self.status
        if status.listener is not None:
            out.update(status.listener.health())
        else:
            out.update(self.queue.health())
        if status.local_otlp is not None:
            out.update(status.local_otlp.health())
        with self.cond:
            out.update({f"worker_{k}": v for k, v in self.counters.items()})
            out["worker_runtime_done_peeked"] = self.runtime_done.scanned_bodies
        if self.pipeline is not None:
            out.update(_as_counts(self.pipeline.health, "engine_"))
        for sink in self.sinks:
            try:
                out.update(_as_counts(sink.health(), ""))
            except Exception as exc:  # noqa: BLE001
                self._fail("sink_health", exc)
        if status.time_to_first_next_ms is not None:
            out["time_to_first_next_ms"] = int(round(status.time_to_first_next_ms))
        out["degraded"] = len(status.degraded)
        return out

    # ---- worker thread --------------------------------------------------------------------------------

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
            from .pipeline import RecordPipeline

            self.pipeline = RecordPipeline(self.settings)
        except Exception as exc:  # noqa: BLE001
            self.status.degrade(f"the signal engine is unavailable ({type(exc).__name__}: {exc}); "
                                 "telemetry is counted but not turned into metrics")
        with self.cond:
            self._get_policy()
        self._bound_listener()
        with self.cond:
            shutdown = self._shutdown_req
        from .sinks import build_sinks

        self.sinks.extend(build_sinks(self.settings, self.env, self.status, self.counters,
                                      shutdown[2] if shutdown is not None else None))

    def _wire_local_otlp(self) -> None:
        """Hand the local OTLP endpoint's queue to the OTLP sink (bounded by half the memory budget) and load its
        protobuf; without an OTLP sink, its requests are answered with a partial success and counted."""
        server = self.status.local_otlp
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
            if self._far_behind(len(batches) - i - 1, left_bytes):
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
        if self.pipeline is None:
            return
        try:
            outputs = self.pipeline.invoke(event, t)
        except Exception as exc:  # noqa: BLE001
            self._fail("engine_invoke", exc)
            return
        if outputs is None:
            self.counters["invokes_without_request_id"] += 1
            return
        self._emit(outputs)

    def _on_batch(self, body: bytes) -> None:
        """A body parsed in full; its records are counted by the engine (RecordPipeline)."""
        self.counters["batches"] += 1
        if self.pipeline is None:
            return
        try:
            outputs = self.pipeline.batch(body, time.time())
        except Exception as exc:  # noqa: BLE001
            self._fail("engine_events", exc)
            return
        self._emit(outputs)
        self._note_progress()

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
        if self.pipeline is None:
            return
        try:
            outputs, skimmed = self.pipeline.skim(body, time.time())
        except Exception as exc:  # noqa: BLE001
            self._fail("engine_logs", exc)
            return
        if skimmed and any(getattr(s, "logs_enabled", False) for s in self.sinks):
            self.counters["shed_log_records"] += skimmed
        self._emit(outputs)
        self._note_progress()

    def _note_progress(self) -> None:
        """Remember reports and runtimeDones (for any request: the INVOKE may not have reached us yet)."""
        done, reported = self.pipeline.take_progress()
        for rid in reported:
            self._reported.add(rid)
        if len(self._reported) > 4 * MAX_TRACKED_REQUESTS:
            self._reported = set(self._requests)
        with self.cond:
            awaited = self._awaiting
            if awaited and awaited not in self.runtime_done and awaited not in done:
                try:
                    if self.pipeline.runtime_done_seen(awaited):
                        done.append(awaited)
                except Exception as exc:  # noqa: BLE001
                    self._fail("engine_runtime_done", exc)
            if self.runtime_done.add(done):
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
            if self.pipeline is not None:
                if event is not None:
                    try:
                        self._emit(self.pipeline.shutdown(event, now))
                    except Exception as exc:  # noqa: BLE001
                        self._fail("engine_shutdown", exc)
                try:
                    self._emit(self.pipeline.finish(now))
                except Exception as exc:  # noqa: BLE001
                    self._fail("engine_finish", exc)
            if self.counters.get("otlp_skipped_at_shutdown"):
                # no OTLP sink to export them: every invocation's span (and OTLP data) is lost, say how many
                self.counters["dropped_otlp_skipped_invocations"] = self.counters.get("invokes", 0)
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
            subscribed = self.status.platform_subscribed
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

            detail = self.health()
            counts = health_counters(detail)
            reasons = drop_reasons(detail, counts["dropped"])
            signal = HealthSignal(time=time.time(), counters=tuple(sorted(counts.items())),
                                  dropped_reasons=tuple(sorted(reasons.items())))
        except Exception as exc:  # noqa: BLE001
            self._fail("health", exc)
            return
        self._emit([signal], sinks)


def _lower_priority() -> None:
    """Nice this thread (and the exporter threads it starts, which inherit it): when the handler and the
    sidecar compete for a fractional vCPU, the handler wins. Linux-only; best effort."""
    try:
        import os

        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + WORKER_NICE))
    except (AttributeError, OSError):
        pass


def _as_counts(value: Any, prefix: str) -> Dict[str, int]:
    if isinstance(value, dict):
        items = value.items()
    elif hasattr(value, "__dataclass_fields__"):
        items = ((k, getattr(value, k)) for k in value.__dataclass_fields__)
    else:
        items = getattr(value, "__dict__", {}).items()
    return {prefix + str(k): int(v) for k, v in items if isinstance(v, (int, float)) and not isinstance(v, bool)}

