"""SignalExporter: buffered (and spooled) items of one signal -> requests to its destination, within a deadline.

Everything sent is counted (exported_*, export_requests, export_retries) and everything that leaves a buffer
other than by a successful export is counted by signal and reason: rejected (non-retryable status), partial
(the backend refused part of a 2xx), refused (the backend does not serve the signal), unencodable, disabled,
shutdown (still buffered at the shutdown deadline). Pass modes (the scheduler, schedule.py, picks them):
FLUSH (post-runtime window), BACKGROUND (paced sender thread), FINAL_FIRST / FINAL (shutdown).
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from typing import Any, Callable, Deque, Dict, List, Mapping, Optional, Tuple

from .. import local_otlp
from ..budget import Budget
from ..redact import url as redact_url
from .buffer import SignalBuffer
from .counts import SinkCounters, unit
from .destination import Destination, Post, is_refusal
from .resource import FunctionResource
from .spool import Spool, items_in
from .transport import SendResult, send_with_retry

log = logging.getLogger("otel_sidecar")

FLUSH, BACKGROUND, FINAL, FINAL_FIRST = "flush", "background", "final", "final-first"
FLUSH_BATCH = 128               # items per request inside the post-runtime window
REPROBE_S = 600.0               # a signal its backend refused (destination.REFUSED) is tried again this often
FINAL_ATTEMPTS = 3              # at shutdown a backend that failed before still gets retries (time is there)

RawItem = Tuple[str, int, bytes]    # a spooled request: (file path, items, serialized body)


class SignalExporter:
    """Sends what the buffers and the spool hold; `defer` hands what a FLUSH could not send to the sender."""

    def __init__(self, buffers: Mapping[str, SignalBuffer], destinations: Mapping[str, Destination],
                 resource: FunctionResource, budget: Budget, spool: Optional[Spool], batch_size: int,
                 counters: SinkCounters, defer: Callable[[], None]) -> None:
        self.buffers = buffers
        self.destinations = destinations
        self.resource = resource
        self.budget = budget
        self.spool = spool
        self.batch_size = batch_size
        self.batch_bytes = max(64 * 1024, budget.limit // 4)   # one request's share of the budget (encoded twice)
        self.counters = counters
        self.defer = defer
        self.raw: Dict[str, Deque[RawItem]] = {sig: collections.deque() for sig in destinations}
        self.inflight: Dict[str, int] = {sig: 0 for sig in destinations}   # items on the wire, by signal
        self.inflight_lock = threading.Lock()
        self._spool_loaded = False
        self._failure_logged: set = set()
        self.local_intake: Any = None      # local_otlp.Intake: the function's own OTLP, set by the worker

    # ---- one signal ----------------------------------------------------------------------------------
    def export_raw(self, sig: str, deadline: float, mode: str) -> bool:
        """Send what an earlier instance spooled (oldest first); False when the backend is not taking data."""
        q, dest = self.raw[sig], self.destinations[sig]
        while q:
            path, items, body = q[0]
            if not dest.export.enabled:
                self._raw_done(sig, path)
                self.counters.count(f"disabled_{unit(sig)}", items)
                continue
            if not self.may_send(dest, deadline, mode):
                return False
            try:
                post = dest.post(body)
            except Exception as exc:  # noqa: BLE001 - a damaged file is dropped, counted
                self.counters.error("spool", exc)
                self._raw_done(sig, path)
                self.counters.count(f"dropped_{unit(sig)}_unencodable", items)
                continue
            outcome = self.send(sig, dest, post, items, deadline, mode)
            if outcome in ("ok", "rejected"):
                self._raw_done(sig, path)
            else:
                return False
        return True

    def export_buffered(self, sig: str, deadline: float, mode: str) -> None:
        buf, dest = self.buffers[sig], self.destinations[sig]
        if not dest.export.enabled:
            n = buf.clear()
            if n:
                self.counters.count(f"disabled_{unit(sig)}", n)
            return
        if time.monotonic() < dest.refused_until:      # the backend does not take this signal: drop, counted
            n = buf.clear()
            if n:
                self.counters.count(f"dropped_{unit(sig)}_refused", n)
            return
        # small steps inside the post-runtime window: encoding is not interruptible, so a step's size is
        # what a flush can overrun its deadline by
        while len(buf) and self.may_send(dest, deadline, mode):
            size = min(dest.max_items, FLUSH_BATCH) if mode == FLUSH else dest.max_items
            batch = buf.take(size, self.batch_bytes)
            weight = sum(w for _, w in batch)
            try:
                post = dest.post(self.encode(sig, [item for item, _ in batch]))
            except Exception as exc:  # noqa: BLE001 - unencodable data is dropped, counted
                self.counters.error("encode", exc)
                self.counters.count(f"dropped_{unit(sig)}_unencodable", weight)
                continue
            held = sum(len(item) for item, _ in batch)
            self.budget.hold(held)        # on the wire it still counts: new data makes room, not more memory
            try:
                outcome = self.send(sig, dest, post, weight, deadline, mode, splittable=len(batch) > 1)
            finally:
                self.budget.release(held)
            if outcome == "split":
                buf.put_back(batch)
            elif outcome in ("retry", "deferred"):
                buf.put_back(batch)
                return

    def export_local(self, sig: str, deadline: float, mode: str) -> None:
        """The function's own requests (local_otlp.py) as it sent them, by the same transport and rules."""
        intake, dest = self.local_intake, self.destinations[sig]
        if intake is None or not intake.pending(sig):
            return
        off = "disabled" if not dest.export.enabled else "refused" if time.monotonic() < dest.refused_until else None

        def send(body: bytes, records: int) -> str:
            return off or self.send(sig, dest, dest.post(body), records, deadline, mode, splittable=True)

        local_otlp.forward(intake, sig, send, lambda: off is not None or self.may_send(dest, deadline, mode),
                           self.batch_bytes)

    def encode(self, sig: str, items: List[Any]) -> bytes:
        """One serialized Export*ServiceRequest (http/protobuf's body) of buffered items."""
        envelope = self.resource.envelopes[sig]
        if sig == "metrics":      # a buffered item is a whole window (its ResourceMetrics)
            return envelope.join(items)
        return envelope.request(items)

    def may_send(self, dest: Destination, deadline: float, mode: str) -> bool:
        now = time.monotonic()
        if now >= deadline:
            return False
        if now < dest.refused_until:
            return False
        if mode not in (FINAL, FINAL_FIRST) and now < dest.backoff.next_attempt:
            self.counters.count("export_skipped_backoff", 1)
            return False
        latency = dest.backoff.latency
        if mode == FLUSH and latency is not None and deadline - now < latency * 1.5 + 0.002:
            self.defer()
            return False
        return True

    def send(self, sig: str, dest: Destination, post: Post, weight: int, deadline: float, mode: str,
             splittable: bool = False) -> str:
        """One request (with the retries the deadline allows) -> ok | rejected | retry | deferred | split;
        all counted."""
        # a backend already known to be failing gets one attempt, not a retry loop that eats the budget
        attempts = (1 if mode == FINAL_FIRST else FINAL_ATTEMPTS if mode == FINAL
                    else 1 if dest.backoff.failures else 6)
        with self.inflight_lock:
            self.inflight[sig] = weight
        t0 = time.monotonic()
        try:
            res: SendResult = send_with_retry(post, deadline, max_attempts=attempts)
        finally:
            with self.inflight_lock:
                self.inflight[sig] = 0
        self.counters.count("export_requests", res.attempts)
        if res.attempts > 1:
            self.counters.count("export_retries", res.attempts - 1)
        if res.ok:
            if dest.refused_until:
                dest.refused_until = 0.0
                log.info("OTLP: %s accepted again by %s", sig, redact_url(dest.export.endpoint))
            dest.backoff.ok(time.monotonic() - t0 if res.attempts == 1 else None)
            self.counters.count(f"exported_{unit(sig)}", weight - min(res.rejected, weight))
            if res.rejected:
                self.counters.count(f"dropped_{unit(sig)}_partial", min(res.rejected, weight))
            return "ok"
        return self._failed(sig, dest, res, weight, mode, splittable)

    def _failed(self, sig: str, dest: Destination, res: SendResult, weight: int, mode: str,
                splittable: bool) -> str:
        if res.cut and mode == FLUSH:
            # our window closed, not the backend's fault: no backoff; the background sender takes it on
            self.counters.count("export_deferred", 1)
            self.defer()
            return "deferred"
        if res.status == 413 and splittable:
            # too large for this backend: smaller requests from now on, this batch again in halves
            dest.max_items = max(1, dest.max_items // 2)
            self.counters.count("export_splits", 1)
            return "split"
        self.counters.count("export_failures", 1)
        if is_refusal(res):
            self._refused(sig, dest, res)
            self.counters.count(f"dropped_{unit(sig)}_refused", weight)
            return "rejected"
        self._first_failure(sig, res)
        if res.retryable:
            dest.backoff.failed(time.monotonic(), res.retry_after)
            return "retry"
        self.counters.count(f"dropped_{unit(sig)}_rejected", weight)
        return "rejected"

    def _first_failure(self, sig: str, res: SendResult) -> None:
        with self.counters.lock:
            first = not self._failure_logged
            self._failure_logged.add(sig)
        if first:  # one line per sidecar; the rest is counted (health) and summed up at shutdown
            log.warning("OTLP: export of %s to %s failed (%s); data is %s, further failures are only counted",
                        sig, redact_url(self.destinations[sig].export.endpoint), res.error or f"HTTP {res.status}",
                        "kept for retry" if res.retryable else "dropped")

    def _refused(self, sig: str, dest: Destination, res: SendResult) -> None:
        """A permanent refusal: one warning per signal, then that signal waits REPROBE_S before it is tried again."""
        first, dest.refusal_warned = not dest.refusal_warned, True
        dest.refused_until = time.monotonic() + REPROBE_S
        if first:
            log.warning("OTLP: %s refuses %s (%s); %s are dropped (counted in SidecarDropped, reason "
                        "dropped_%s_refused) and tried again every %d minutes", redact_url(dest.export.endpoint), sig,
                        res.error or f"HTTP {res.status}", unit(sig), unit(sig), int(REPROBE_S // 60))

    def refuses(self, sig: str) -> bool:
        """The backend refused this signal recently (not re-probed yet)."""
        until = self.destinations[sig].refused_until
        return bool(until) and time.monotonic() < until

    # ---- the spool -----------------------------------------------------------------------------------
    def load_spool(self) -> None:
        """What an earlier instance spooled, into `raw` (as far as the byte budget has room)."""
        if self._spool_loaded or self.spool is None or any(self.raw.values()):
            return
        self._spool_loaded = True
        try:
            loaded, left = self.spool.load(self.budget.reserve, items_in)
            self._spool_loaded = not left       # what the budget had no room for waits on disk
            for path, sig, items, body in loaded:
                self.raw[sig].append((path, items, body))
                self.counters.count(f"unspooled_{unit(sig)}", items)
        except Exception as exc:  # noqa: BLE001
            self.counters.error("spool", exc)
        for sig, n in self.spool.take_rejected():      # not a request of ours: deleted, counted
            self.counters.count(f"dropped_{unit(sig) if sig in self.raw else sig}_spool_invalid", n)

    def spool_out(self, sig: str, deadline: float) -> int:
        """Encode what is still buffered into the spool (as far as time and the byte bound allow)."""
        buf = self.buffers[sig]
        if self.spool is None or not len(buf) or not self.destinations[sig].export.enabled:
            return 0
        saved = 0
        while len(buf) and time.monotonic() < deadline:
            batch = buf.take(self.batch_size, self.batch_bytes)
            weight = sum(w for _, w in batch)
            try:
                body = self.encode(sig, [item for item, _ in batch])
            except Exception as exc:  # noqa: BLE001
                self.counters.error("encode", exc)
                self.counters.count(f"dropped_{unit(sig)}_unencodable", weight)
                continue
            if not self.spool.save(sig, body, weight):
                buf.put_back(batch)
                break
            saved += weight
        if saved:
            self.counters.count(f"spooled_{unit(sig)}", saved)
        return saved

    def _raw_done(self, sig: str, path: str) -> None:
        self.budget.release(len(self.raw[sig].popleft()[2]))
        self.spool.remove(path)  # type: ignore[union-attr]

    def has_unsent(self) -> bool:
        return (any(len(b) for b in self.buffers.values()) or any(self.raw.values())
                or (self.local_intake is not None and bool(self.local_intake.pending())))
