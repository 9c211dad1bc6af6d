"""RuntimeDoneMarks: which requests' platform.runtimeDone has been seen, known before the worker parses them.

The lifecycle's wait for runtimeDone (after each invoke, in `end` flush mode) must not depend on how far
behind the worker is: a burst of function logs can take it a second to work through. So the listener's
queue scans each raw body for the runtimeDone marker as it is queued (`scan`, a cheap bounded byte search),
and the worker adds the ids it parses (`add`). Both write here; the worker's waits read here. Shared state
with one lock (the queue's condition, held by every caller), no callback to anyone. Stdlib only: it is
built on the path to the first /next.
"""

from __future__ import annotations

import collections
import threading

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs ~10 ms to import; annotations are never evaluated at run time
    from typing import Iterable, Iterator

RUNTIME_DONE_MARK = b'"platform.runtimeDone"'
MAX_TRACKED_REQUESTS = 256        # request ids remembered (the lifecycle waits for the latest only)
SCAN_WINDOW = 4096                # bytes after a marker searched for its requestId


class RuntimeDoneMarks:
    """Bounded, insertion-ordered set of request ids whose runtimeDone was seen. Callers hold `cond`."""

    def __init__(self) -> None:
        self._ids: collections.OrderedDict[str, None] = collections.OrderedDict()
        self.total = 0                   # distinct runtimeDone request ids seen (scanned or parsed)
        self.scanned_bodies = 0          # raw bodies in which the scan found one (worker_runtime_done_peeked)
        self.response_out = threading.Event()   # set once a runtime is known done: its caller has the response

    def __contains__(self, request_id: object) -> bool:
        return request_id in self._ids

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._ids))

    def add(self, request_ids: Iterable[str]) -> bool:
        """Note parsed (or scanned) ids; True when any was given."""
        found = False
        for rid in request_ids:
            if rid not in self._ids:
                self.total += 1
            self._ids[rid] = None
            found = True
        while len(self._ids) > MAX_TRACKED_REQUESTS:
            self._ids.popitem(last=False)
        return found

    def scan(self, body: bytes) -> bool:
        """Note the runtimeDone request ids of a raw body (BatchQueue.put, `cond` held); True when any."""
        if self.add(request_ids_in(body)):
            self.scanned_bodies += 1
            self.response_out.set()
            return True
        return False


def request_ids_in(body: bytes) -> list:
    """The requestIds of the platform.runtimeDone records of a raw batch, by byte search (no JSON parse).

    The envelope's record must follow its type (Lambda writes time, type, record); otherwise the next event's
    record would be read: such a record is left to the worker's parse."""
    out = []
    at = body.find(RUNTIME_DONE_MARK)
    while at >= 0:
        window = body[at + len(RUNTIME_DONE_MARK):at + SCAN_WINDOW]
        rec, tim = window.find(b'"record"'), window.find(b'"time"')
        key = window.find(b'"requestId"', rec) if rec >= 0 and (tim < 0 or rec < tim) else -1
        if key >= 0 and (tim < 0 or key < tim):
            start = window.find(b'"', window.find(b":", key) + 1)
            end = window.find(b'"', start + 1)
            if start > 0 and end > start:
                out.append(window[start + 1:end].decode("ascii", "replace"))
        at = body.find(RUNTIME_DONE_MARK, at + 1)
    return out
