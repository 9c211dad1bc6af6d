"""Telemetry API listener: accept each POST, queue its raw body (bounded), answer 200 at once.

Nothing is parsed on the request thread: the worker thread does that. The HTTP/1.1 server is a few lines
over sockets (one thread per connection, keep-alive, threads kept for the next connection): Lambda posts
one batch per request on a handful of connections and needs nothing more, and http.server's per-request
cost (its header parsing goes through the email package) was a sixth of the sidecar's CPU per invocation.
Standard library only, because the listener starts on the path to the first /next.
"""

from __future__ import annotations

import _socket  # the C module: socket.py's imports cost ~10 ms on the path to the first /next (lifecycle.py)
import collections
import threading

from .lifecycle import SocketReader

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs milliseconds to import on the path to the first /next; annotations are never evaluated
    from typing import Any, Callable, Deque, Dict, List, Optional, Tuple

# Lambda promises bodies of at most 2 * maxBytes + metadata (we subscribe with maxBytes 262144).
DEFAULT_MAX_BODY = 4 * 1024 * 1024
DEFAULT_MAX_BATCHES = 256
DEFAULT_MAX_QUEUED_BYTES = 16 * 1024 * 1024
MAX_CONNECTIONS = 64            # Lambda delivers over a few keep-alive connections; more are turned away
MAX_HEADER_BYTES = 64 * 1024
IDLE_TIMEOUT_S = 600.0          # a connection silent this long (not frozen: time stops then) is closed
THREAD_IDLE_S = 300.0           # a connection thread waits this long for the next connection, then ends
# (starting a thread costs ~0.2 ms: a sender that opens a connection per batch would pay it twice an invoke)
_CHUNK = 64 * 1024
_OK = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
_NOT_ALLOWED = b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\nAllow: POST\r\n\r\n"
_BAD = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


class _BadRequest(Exception):
    pass


def records_in(body: bytes) -> int:
    """The records of a raw batch, counted without parsing it (a dropped batch is counted in records).

    Every record's envelope carries `"type":"<platform.x|function|extension>"` (Lambda writes compact
    JSON); inside a log line's text a quote would be escaped. At least 1 for a non-empty body."""
    n = body.count(b'"type":"') + body.count(b'"type": "')
    return n or (1 if body.strip() else 0)


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
        self.dropped_records = 0
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
                self.dropped_records += records_in(old)
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

    def queued_bytes(self) -> int:
        return self._bytes

    def health(self) -> Dict[str, int]:
        return {"listener_dropped_batches": self.dropped_batches, "listener_dropped_bytes": self.dropped_bytes,
                "listener_dropped_records": self.dropped_records,
                "listener_queue_depth": len(self._items)}


class TelemetryListener:
    """HTTP/1.1 server on (host, port) that hands each POST body to a BatchQueue."""

    def __init__(self, queue: BatchQueue, max_body: int = DEFAULT_MAX_BODY) -> None:
        self.queue = queue
        self.max_body = max_body
        self._lock = threading.Lock()
        self.counters: Dict[str, int] = {"listener_requests": 0, "listener_bytes": 0,
                                         "listener_oversized": 0, "listener_oversized_bytes": 0,
                                         "listener_read_errors": 0}
        self._sock: Any = None
        self._connections = 0
        self._handoff = threading.Condition()
        self._waiting: Deque[Any] = collections.deque()   # accepted sockets, for an idle thread to serve
        self._idle = 0                                               # threads waiting for a connection
        self._thread: Optional[threading.Thread] = None
        self.host: Optional[str] = None
        self.port: Optional[int] = None

    def bind(self, host: str, port: int = 0) -> int:
        """Bind and start serving; returns the port. Raises OSError when the address is unusable."""
        family = _socket.AF_INET6 if ":" in host else _socket.AF_INET
        sock = _socket.socket(family, _socket.SOCK_STREAM)
        try:
            # no SO_REUSEADDR: a port already in use must fail loudly, not be shared
            sock.bind((host, port))
            sock.listen(64)
        except OSError:
            sock.close()
            raise
        self._sock = sock
        self.host, self.port = host, sock.getsockname()[1]
        self._thread = threading.Thread(target=self._accept_loop, args=(sock,), name="otel-sidecar-listener",
                                        daemon=True)
        self._thread.start()
        return self.port

    def _accept_loop(self, sock: Any) -> None:
        while True:
            try:
                fd, _ = sock._accept()
                conn = _socket.socket(sock.family, _socket.SOCK_STREAM, 0, fd)
            except OSError:
                if self._sock is None:
                    return              # closed
                continue
            with self._lock:
                full = self._connections >= MAX_CONNECTIONS
                if not full:
                    self._connections += 1
            if full:
                self.count("refused_connections")
                conn.close()
                continue
            with self._handoff:
                if self._idle > len(self._waiting):
                    self._waiting.append(conn)
                    self._handoff.notify()
                    continue
            self.count("connection_threads")
            threading.Thread(target=self._connection_thread, args=(conn,), name="otel-sidecar-listener-conn",
                             daemon=True).start()

    def _connection_thread(self, conn: Any) -> None:
        """Serve a connection, then wait (bounded) to be handed the next one."""
        while conn is not None:
            self._serve(conn)
            conn = self._next_connection()

    def _next_connection(self) -> Any:
        with self._handoff:
            self._idle += 1
            try:
                waited = self._handoff.wait_for(lambda: self._waiting or self._sock is None, THREAD_IDLE_S)
                return self._waiting.popleft() if waited and self._waiting else None
            finally:
                self._idle -= 1

    def _serve(self, conn: Any) -> None:
        try:
            conn.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
            conn.settimeout(IDLE_TIMEOUT_S)
            rfile = SocketReader(conn)
            while self._one_request(rfile, conn):
                pass
        except (OSError, ValueError):
            pass                        # the peer went away (or timed out): nothing was half-queued
        finally:
            with self._lock:
                self._connections -= 1
            try:
                conn.close()
            except OSError:
                pass

    def _one_request(self, rfile: Any, conn: Any) -> bool:
        """Read one request, queue a POST body, answer; False when the connection is over."""
        line = rfile.readline(MAX_HEADER_BYTES)
        while line in (b"\r\n", b"\n"):          # tolerated between requests (RFC 9112 2.2)
            line = rfile.readline(MAX_HEADER_BYTES)
        if not line:
            return False
        try:
            method, version, headers = _request_head(line, rfile)
            body, oversized = self._read_body(rfile, headers)
        except _BadRequest:
            self.count("read_errors")
            conn.sendall(_BAD)
            return False
        if method == b"POST":
            self.on_body(body, oversized)
            conn.sendall(_OK)
        else:
            conn.sendall(_NOT_ALLOWED)
        keep = headers.get("connection", "").lower()
        return keep != "close" and (version != b"HTTP/1.0" or keep == "keep-alive")

    def _read_body(self, rfile: Any, headers: Dict[str, str]) -> Tuple[bytes, int]:
        """(body, size when oversized else 0). An oversized body is read and discarded."""
        limit = self.max_body
        if "chunked" in headers.get("transfer-encoding", "").lower():
            parts: List[bytes] = []
            total = 0
            while True:
                try:
                    size = int(rfile.readline(1024).split(b";")[0].strip() or b"0", 16)
                except ValueError:
                    raise _BadRequest from None
                if size == 0:
                    while rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                data = _read_exact(rfile, size, keep=total + size <= limit)
                rfile.readline(16)
                total += size
                if total <= limit:
                    parts.append(data)
            return (b"".join(parts), 0) if total <= limit else (b"", total)
        try:
            length = int(headers.get("content-length") or 0)
        except ValueError:
            raise _BadRequest from None
        if length < 0:
            raise _BadRequest
        if length <= limit:
            return _read_exact(rfile, length, keep=True), 0
        _read_exact(rfile, length, keep=False)
        return b"", length

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
        sock, self._sock = self._sock, None
        with self._handoff:
            self._handoff.notify_all()
        if sock is not None:
            for op in (lambda: sock.shutdown(_socket.SHUT_RDWR), sock.close):
                try:
                    op()
                except OSError:
                    pass


def _request_head(line: bytes, rfile: Any) -> Tuple[bytes, bytes, Dict[str, str]]:
    """(method, HTTP version, lower-cased headers) of a request whose first line was just read."""
    parts = line.split()
    if len(parts) != 3 or not parts[2].startswith(b"HTTP/1.") or not line.endswith(b"\n"):
        raise _BadRequest
    headers: Dict[str, str] = {}
    size = len(line)
    while True:
        h = rfile.readline(MAX_HEADER_BYTES)
        size += len(h)
        if h in (b"\r\n", b"\n"):
            return parts[0], parts[2], headers
        if not h or size > MAX_HEADER_BYTES or not h.endswith(b"\n"):
            raise _BadRequest
        key, sep, value = h.decode("latin-1").partition(":")
        if not sep:
            raise _BadRequest
        headers[key.strip().lower()] = value.strip()


def _read_exact(rfile: Any, n: int, keep: bool) -> bytes:
    """n bytes of body (kept or discarded in chunks); a peer that closes early ends the connection."""
    if keep:
        data = rfile.read(n)
        if len(data) < n:
            raise ConnectionResetError("the peer closed the connection mid-body")
        return data
    left = n
    while left > 0:
        got = rfile.read(min(_CHUNK, left))
        if not got:
            raise ConnectionResetError("the peer closed the connection mid-body")
        left -= len(got)
    return b""
