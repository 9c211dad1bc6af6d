"""ExportScheduler: WHEN the OTLP sink exports, always within the caller's deadline.

Nothing runs on a timer of its own: export happens inside flush(deadline) (the post-runtime window: a request
that cannot finish inside it is deferred to the background sender instead of being cut off and retried into
the same short window forever), on one paced background sender thread (continuous mode, or once a buffer
is HIGH_WATER full; its CPU held to CPU_SHARE of wall time), and at shutdown: a first pass gives every signal
one attempt with the whole budget (FINAL_FIRST), a second the retries (FINAL); then what is left is spooled
(when the environment outlives us) or counted as dropped.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable, Dict, Mapping, Optional

from .buffer import SignalBuffer
from .counts import SinkCounters, unit
from .export import BACKGROUND, FINAL, FINAL_FIRST, FLUSH, SignalExporter

log = logging.getLogger("otel_sidecar")

CPU_SHARE = 0.25                # the background sender works at most this share of wall time...
HIGH_WATER = 0.5                # ...and, outside continuous mode, only once a buffer is this full
URGENT = 0.9                    # a buffer this full cuts the sender's rest short (a drop is imminent)
EXPORT_ORDER = ("traces", "logs", "metrics")
SPOOL_REASONS = ("timeout", "failure")   # SHUTDOWN reasons after which the environment (and /tmp) lives on


class ExportScheduler:
    """Export passes, the paced sender thread and the final export; one export at a time (its lock)."""

    def __init__(self, buffers: Mapping[str, SignalBuffer], counters: SinkCounters, continuous: bool,
                 interval_s: float, background_timeout_s: float, collect: Callable[[], None]) -> None:
        self.buffers = buffers
        self.counters = counters
        self.exporter: Optional[SignalExporter] = None     # set by the sink (it needs our `defer`)
        self.continuous = continuous
        self.interval_s = max(0.1, interval_s)
        self.background_timeout_s = background_timeout_s
        self.collect = collect              # closes a metrics window into its buffer (MetricRecorder.collect_into)
        self.closed = False
        self._export_lock = threading.Lock()
        self._wake = threading.Event()      # work for the background sender
        self._urgent = threading.Event()    # a buffer is nearly full (or shutdown): cut the sender's rest short
        self._sender: Optional[threading.Thread] = None
        self._sender_lock = threading.Lock()
        self._deferred = False

    def fill(self) -> float:
        intake = self.exporter.local_intake if self.exporter is not None else None
        return max([b.fill() for b in self.buffers.values()] + ([intake.fill()] if intake is not None else []))

    def after_accept(self) -> None:
        """New items are buffered: wake the sender in continuous mode, or when a buffer is past HIGH_WATER."""
        if self.continuous:
            self._wake.set()
            return
        fill = self.fill()
        if fill >= HIGH_WATER:
            # busy traffic: do not wait for the next flush window, send from the background (paced)
            self.start_sender()
            self._wake.set()
            if fill >= URGENT:
                self._urgent.set()

    def export_all(self, deadline: float, mode: str) -> None:
        """Every signal, spooled data first, in EXPORT_ORDER; at shutdown two passes (retries on one signal must
        not eat the others' first chance)."""
        exporter = self.exporter
        # a post-runtime flush never waits for the background sender: it is already sending
        wait = 0.0 if mode == FLUSH else max(0.0, deadline - time.monotonic())
        if not self._export_lock.acquire(timeout=wait):
            self.counters.count("flush_busy", 1)
            if mode == FLUSH:
                self.defer()      # the sender goes round once more for what this flush would have sent
            return
        try:
            exporter.load_spool()
            passes = (FINAL_FIRST, FINAL) if mode == FINAL else (mode,)
            for pass_mode in passes:
                for sig in EXPORT_ORDER:
                    if exporter.export_raw(sig, deadline, pass_mode):
                        exporter.export_buffered(sig, deadline, pass_mode)
                        exporter.export_local(sig, deadline, pass_mode)
        finally:
            self._export_lock.release()
        if mode == FLUSH and exporter.has_unsent():
            self.defer()          # the window closed with data left: it leaves while the next invoke runs

    def defer(self) -> None:
        """Hand the rest to the background sender (it runs while invocations run, paced)."""
        self._deferred = True
        self.start_sender()
        self._wake.set()

    def start_sender(self) -> None:
        with self._sender_lock:
            if self._sender is None and not self.closed:
                self._sender = threading.Thread(target=self._send_loop, name="otel-sidecar-otlp-sender",
                                                daemon=True)
                self._sender.start()

    def _send_loop(self) -> None:
        """Background sending, its CPU paced to CPU_SHARE of wall time (a request blocked on the network
        costs no CPU and earns no rest; backoff paces retries).

        Timers do not fire while the environment is frozen; this thread simply resumes at the next thaw.
        """
        while not self.closed:
            if not self._deferred:
                self._wake.wait(self.interval_s if self.continuous else None)
            self._wake.clear()
            if self.closed:
                return
            deferred, self._deferred = self._deferred, False
            if not self.continuous and not deferred and self.fill() < HIGH_WATER:
                continue
            t0, cpu0 = time.monotonic(), time.thread_time()
            before = self.counters.exported()
            try:
                self.counters.count("background_sends", 1)
                if self.continuous:
                    self.collect()
                self.export_all(t0 + min(10.0, max(1.0, self.background_timeout_s)), BACKGROUND)
            except Exception as exc:  # noqa: BLE001
                self.counters.error("sender", exc)
            rest = (time.thread_time() - cpu0) * (1.0 / CPU_SHARE - 1.0)
            if rest > 0 and not self.closed and self.fill() < URGENT:
                self._urgent.wait(rest)
            self._urgent.clear()
            self._wake.clear()
            # go again at once only when still past the high-water mark and the last round got data out
            # (a backend that is backing us off is not hammered)
            if self.fill() >= HIGH_WATER and self.counters.exported() > before:
                self._wake.set()

    def close(self) -> None:
        """No more background sending (the sender ends at its next wake-up)."""
        self.closed = True
        self._wake.set()
        self._urgent.set()

    def final(self, deadline: float, shutdown_reason: Optional[str], spool_dir: str) -> None:
        """The last export; what it cannot send is spooled (timeout/failure: /tmp lives on) or counted."""
        exporter = self.exporter
        # /tmp outlives the sidecar only when the environment is reset (timeout, failure), never at a spindown:
        # spooling then would lose the data without counting it
        spool = exporter.spool is not None and shutdown_reason in SPOOL_REASONS
        # keep part of the budget to spool, count and report what could not be sent
        reserve = min(0.15 if spool else 0.05, max(0.0, deadline - time.monotonic()) / 5)
        self.export_all(deadline - reserve, FINAL)
        spooled = {sig: exporter.spool_out(sig, deadline - 0.01) if spool else 0 for sig in self.buffers}
        lost: Dict[str, int] = {sig: buf.clear() for sig, buf in self.buffers.items()}
        if exporter.local_intake is not None:
            exporter.local_intake.drop_all("shutdown")     # the function's requests not sent in time: counted there
        with exporter.inflight_lock:
            # a batch the background sender still has on the wire when we give up: its fate is unknown
            for sig, n in exporter.inflight.items():
                lost[sig] += n
        for sig, n in lost.items():
            if n:
                self.counters.count(f"dropped_{unit(sig)}_shutdown", n)
        if any(spooled.values()):
            log.warning("OTLP: at shutdown %s could not be sent; kept in %s for the next start",
                        ", ".join(f"{n} {unit(s)}" for s, n in spooled.items() if n), spool_dir)
        if any(lost.values()):
            log.warning("OTLP: at shutdown %s could not be sent in time; counted as dropped",
                        ", ".join(f"{n} {unit(s)}" for s, n in lost.items() if n))
        for dest in exporter.destinations.values():
            dest.sender.close()
