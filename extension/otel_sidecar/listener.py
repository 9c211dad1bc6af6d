"""Telemetry API listener: accept each POST, queue its raw body (bounded), answer 200 at once.

Nothing is parsed on the request thread: the worker thread does that. Standard library only, because
the listener starts on the path to the first /next.
"""

from __future__ import annotations

import collections
import socket
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from socketserver import ThreadingMixIn
from typing import Callable, Deque, Dict, List, Optional, Tuple

# Lambda promises bodies of at most 2 * maxBytes + metadata (we subscribe with maxBytes 262144).
DEFAULT_MAX_BODY = 4 * 1024 * 1024
DEFAULT_MAX_BATCHES = 256
DEFAULT_MAX_QUEUED_BYTES = 16 * 1024 * 1024
_CHUNK = 64 * 1024


class BatchQueue:
    """Bounded FIFO of raw telemetry bodies; when full the OLDEST batch is dropped and counted.

    `cond` may be shared with the worker so that one condition wakes it for every kind of work.
    """

    def __init__(self, max_batches: int = DEFAULT_MAX_BATCHES, max_bytes: int = DEFAULT_MAX_QUEUED_BYTES,
                 cond: Optional[threading.Condition] = None) -> None:
        self.max_batches = max(1, int(max_batches))
        self.max_bytes = max(1, int(max_bytes))
        self.cond = cond or threading.Condition()
        self._items: Deque[bytes] = collections.deque()
        self._bytes = 0
        self.dropped_batches = 0
        self.dropped_bytes = 0
        self.enqueued = 0
        self.peek: Optional[Callable[[bytes], None]] = None   # called with each body, `cond` held

    def put(self, body: bytes) -> None:
        with self.cond:
            self._items.append(body)
            self._bytes += len(body)
            self.enqueued += 1
            if self.peek is not None:
                try:
                    self.peek(body)
                except Exception:  # noqa: BLE001 - a hint, never a reason to lose the batch
                    pass
            while len(self._items) > 1 and (len(self._items) > self.max_batches or self._bytes > self.max_bytes):
                old = self._items.popleft()
                self._bytes -= len(old)
                self.dropped_batches += 1
                self.dropped_bytes += len(old)
            self.cond.notify_all()

    def requeue_front(self, items: List[bytes]) -> None:
        """Put back, in order and ahead of newer arrivals, bodies taken but not processed yet."""
        if not items:
            return
        with self.cond:
            self._items.extendleft(reversed(items))
            self._bytes += sum(len(b) for b in items)
            self.cond.notify_all()

    def get_all_nowait(self) -> List[bytes]:
        """Take every queued body (in arrival order). Caller may or may not hold `cond`."""
        with self.cond:
            items = list(self._items)
            self._items.clear()
            self._bytes = 0
            return items

    def __len__(self) -> int:
        return len(self._items)

    def health(self) -> Dict[str, int]:
        return {"listener_dropped_batches": self.dropped_batches, "listener_dropped_bytes": self.dropped_bytes,
                "listener_queue_depth": len(self._items)}


class _Server(ThreadingMixIn, HTTPServer):
    daemon_threads = True
    allow_reuse_address = False  # a port already in use must fail loudly, not be shared
    request_queue_size = 64

    listener: TelemetryListener


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _Server

    def do_POST(self) -> None:  # noqa: N802 - http.server naming
        lst = self.server.listener
        try:
            body, oversized = self._read_body(lst.max_body)
        except (OSError, ValueError):
            lst.count("read_errors")
            self.close_connection = True
            return
        lst.on_body(body, oversized)
        self.send_response_only(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _read_body(self, limit: int) -> Tuple[bytes, int]:
        """Return (body, size when oversized else 0). An oversized body is read and discarded."""
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            return self._read_chunked(limit)
        length = int(self.headers.get("Content-Length") or 0)
        if length <= limit:
            return self.rfile.read(length), 0
        left = length
        while left > 0:
            got = self.rfile.read(min(_CHUNK, left))
            if not got:
                break
            left -= len(got)
        return b"", length

    def _read_chunked(self, limit: int) -> Tuple[bytes, int]:
        parts: List[bytes] = []
        total = 0
        while True:
            size = int(self.rfile.readline(1024).split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass
                break
            data = self.rfile.read(size)
            self.rfile.readline(16)
            total += size
            if total <= limit:
                parts.append(data)
        return (b"".join(parts), 0) if total <= limit else (b"", total)

    def _refuse(self) -> None:
        self.send_response_only(405)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_PUT = do_DELETE = _refuse  # noqa: N815

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - signature of the base class
        pass  # every line we print comes back to us as an `extension` record: stay quiet


class TelemetryListener:
    """HTTP/1.1 server on (host, port) that hands each POST body to a BatchQueue."""

    def __init__(self, queue: BatchQueue, max_body: int = DEFAULT_MAX_BODY) -> None:
        self.queue = queue
        self.max_body = max_body
        self._lock = threading.Lock()
        self.counters: Dict[str, int] = {"listener_requests": 0, "listener_bytes": 0,
                                         "listener_oversized": 0, "listener_oversized_bytes": 0,
                                         "listener_read_errors": 0}
        self._server: Optional[_Server] = None
        self._thread: Optional[threading.Thread] = None
        self.host: Optional[str] = None
        self.port: Optional[int] = None

    def bind(self, host: str, port: int = 0) -> int:
        """Bind and start serving; returns the port. Raises OSError when the address is unusable."""
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        server_cls = type("_BoundServer", (_Server,), {"address_family": family})
        server = server_cls((host, port), _Handler)
        server.listener = self
        self._server = server
        self.host, self.port = host, server.server_address[1]
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.5},
                                        name="otel-sidecar-listener", daemon=True)
        self._thread.start()
        return self.port

    def count(self, name: str, n: int = 1) -> None:
        with self._lock:
            key = "listener_" + name
            self.counters[key] = self.counters.get(key, 0) + n

    def on_body(self, body: bytes, oversized: int) -> None:
        with self._lock:
            self.counters["listener_requests"] += 1
            self.counters["listener_bytes"] += len(body) or oversized
            if oversized:
                self.counters["listener_oversized"] += 1
                self.counters["listener_oversized_bytes"] += oversized
        if not oversized:
            self.queue.put(body)

    def health(self) -> Dict[str, int]:
        with self._lock:
            out = dict(self.counters)
        out.update(self.queue.health())
        return out

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
