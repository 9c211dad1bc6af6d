"""WorkerRequests: the lifecycle's side of the worker (called on the main thread).

The lifecycle hands INVOKE events over, asks the flush policy for a plan, waits (bounded) for a runtimeDone,
for the setup, for a flush or for the shutdown; the worker thread (worker.py) serves those requests. Both
sides share one condition (the listener queue's) and the state below, nothing else.
"""

from __future__ import annotations

import collections
import threading
import time

from .ownlog import log

TYPE_CHECKING = False
if TYPE_CHECKING:  # imported on the main thread before the first /next: keep typing off that path
    from typing import Any, Deque, Dict, Optional, Tuple

    from .listener import BatchQueue
    from .pipeline import RecordPipeline

MAX_PENDING_INVOKES = 64          # INVOKE events not yet seen by the engine (one per invoke in practice)
MAX_TRACKED_REQUESTS = 256        # request ids remembered for the shutdown drain
FALLBACK_FLUSH_BUDGET_S = 0.03    # without a flush policy (flush.py failed): wait for runtimeDone, then this


class WorkerRequests:
    """Requests from the lifecycle and their answers, under `cond`."""

    def __init__(self, queue: BatchQueue, settings: Any) -> None:
        self.queue = queue
        self.cond: threading.Condition = queue.cond        # one condition wakes the worker for every kind of work
        self.runtime_done = queue.runtime_done             # the queue's scan and our parse fill it; waits read it
        self.settings = settings
        self._invokes: Deque[Tuple[Dict[str, Any], float]] = collections.deque()
        self._flush_req: Optional[Tuple[int, float]] = None
        self._flush_done = 0
        self._flush_seq = 0
        self._shutdown_req: Optional[Tuple[Optional[Dict[str, Any]], float, float]] = None
        self._shutdown_done = False
        self._awaiting: Optional[str] = None
        self._ready = False
        self.counters: Dict[str, int] = collections.defaultdict(int)
        self.policy: Any = None
        self._policy_failed = False
        self._requests: Deque[str] = collections.deque(maxlen=MAX_TRACKED_REQUESTS)
        self._setup_go = self.runtime_done.response_out   # the setup may start: a response is out
        self.pipeline: Optional[RecordPipeline] = None     # parse + engine, built by the worker's setup
        self._thread: Optional[threading.Thread] = None    # the worker thread (Worker)



    def _fail(self, where: str, exc: BaseException) -> None:
        """Count an error of `where`; the first of each kind gets one line."""
        first = self.counters[f"errors_{where}"] == 0
        self.counters[f"errors_{where}"] += 1
        if first:  # one line per kind of problem, then only counted
            log.error("error in %s (%s: %s); counted, continuing", where, type(exc).__name__, exc)

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
                if getattr(self.settings, "managed_instances", False):
                    # Lambda Managed Instances: no INVOKE ever starts the periodic timer (flush.next_flush_due
                    # counts from the last flush or invoke): it counts from now
                    self.policy.last_flush = time.monotonic()
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
        from .flush import Plan

        return Plan(True, FALLBACK_FLUSH_BUDGET_S, "end", "no flush policy")

    def tracks_runtime_done(self) -> bool:
        """False once it is known that no engine can report runtimeDone (waiting would only burn the deadline)."""
        with self.cond:
            return not self._ready or self.pipeline is not None

    def wait_runtime_done(self, request_id: str, deadline: float) -> bool:
        """Block until the engine has seen platform.runtimeDone of request_id, or the monotonic deadline."""
        with self.cond:
            self._awaiting = request_id
            self.cond.notify_all()
            try:
                return self._wait_until(lambda: request_id in self.runtime_done, deadline,
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
