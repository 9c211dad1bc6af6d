"""Telemetry API listener: accept each POST on our path, queue its raw body (bounded), answer 200 at once.

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
from _operator import _compare_digest  # what hmac.compare_digest is, without importing hmac
from time import monotonic as _monotonic

from .runtime_done import RuntimeDoneMarks
from .sockio import SocketReader, chunk_size, refuse

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs milliseconds to import on the path to the first /next; annotations are never evaluated
    from typing import Any, Deque, Dict, List, Optional, Tuple

# Lambda promises bodies of at most 2 * maxBytes + metadata (we subscribe with maxBytes 262144).
DEFAULT_MAX_BODY = 4 * 1024 * 1024
DEFAULT_MAX_BATCHES = 256
DEFAULT_MAX_QUEUED_BYTES = 2 * 1024 * 1024   # = budget.listener_queue_bytes at every memory size: before the
                                # worker's setup (which can wait for a later invocation) the bound must hold too
MAX_CONNECTIONS = 64            # Lambda delivers over a few keep-alive connections; above this the oldest
                                # connection that never delivered on our path is evicted (else the oldest)
MAX_THREADS = MAX_CONNECTIONS + 8   # connection threads at most (evicted ones end within a recv)
MAX_HEADER_BYTES = 64 * 1024
HEADER_TIMEOUT_S = 2.0          # a request's line and headers must arrive within this of its first byte
                                # (a new connection: of its accept); else the connection is closed, counted
BODY_TIMEOUT_S = 5.0            # its body within this of the end of its headers (Lambda sends at once)
PENDING_BUDGET_BYTES = 4 * 1024 * 1024    # bodies being read: one body of the largest size accepted, all connections together; above it the
                                # oldest is shed (its connection closed, counted), so slow senders cannot
                                # make 64 x 4 MB of partial bodies
LINGER_S = 0.5                  # a refused request's connection: what is in flight is discarded this
LINGER_BYTES = 256 * 1024       # long and this much at most, or until the peer closes (so it reads the answer)
IDLE_TIMEOUT_S = 600.0          # a keep-alive connection silent this long between requests is closed
THREAD_IDLE_S = 300.0           # a connection thread waits this long for the next connection, then ends
# (starting a thread costs ~0.2 ms: a sender that opens a connection per batch would pay it twice an invoke)
_CHUNK = 64 * 1024
_OK = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
_NOT_ALLOWED = b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\nAllow: POST\r\n\r\n"
_BAD = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
_NOT_FOUND = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
_NOT_ALLOWED_CLOSE = b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\nAllow: POST\r\nConnection: close\r\n\r\n"
_TOO_LARGE = b"HTTP/1.1 413 Content Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
_BUSY = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


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

    `cond` may be shared with the worker so that one condition wakes it for every kind of work. Each body
    queued is scanned for runtimeDone records into `runtime_done` (runtime_done.py says why), under `cond`.
    """

    def __init__(self, max_batches: int = DEFAULT_MAX_BATCHES, max_bytes: int = DEFAULT_MAX_QUEUED_BYTES,
                 cond: Optional[threading.Condition] = None,
                 runtime_done: Optional[RuntimeDoneMarks] = None) -> None:
        self.max_batches = max(1, int(max_batches))
        self.max_bytes = max(1, int(max_bytes))
        self.cond = cond or threading.Condition()
        self._items: Deque[bytes] = collections.deque()
        self._bytes = 0
        self.dropped_batches = 0
        self.dropped_bytes = 0
        self.dropped_records = 0
        self.enqueued = 0
        self.runtime_done = runtime_done if runtime_done is not None else RuntimeDoneMarks()

    def put(self, body: bytes) -> None:
        with self.cond:
            self._items.append(body)
            self._bytes += len(body)
            self.enqueued += 1
            try:
                if self.runtime_done.scan(body):
                    self.cond.notify_all()
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


class _Conn:
    """One accepted connection's slot: what eviction and the pending-body budget need to know."""

    __slots__ = ("sock", "since", "proven", "partial", "body", "reserved", "evicted")

    def __init__(self, sock: Any, now: float) -> None:
        self.sock = sock
        self.since = now          # when its current wait began (accept, or the end of its last request)
        self.proven = False       # it delivered a request on our path (the platform), so it is evicted last
        self.partial = False      # it holds part of a request (counted when it is closed unfinished)
        self.body = False         # it is reading a body
        self.reserved = 0         # bytes of the pending-body budget it holds
        self.evicted = False


class _DeadlineReader(SocketReader):
    """SocketReader whose every recv ends at `deadline` (time.monotonic); None waits `idle` seconds."""

    __slots__ = ("deadline", "idle")

    def __init__(self, sock: Any, idle: float) -> None:
        super().__init__(sock)
        self.deadline: Optional[float] = None
        self.idle = idle

    def _timeout(self) -> None:
        if self.deadline is None:
            self.sock.settimeout(self.idle)
            return
        left = self.deadline - _monotonic()
        if left <= 0:
            raise _Deadline
        self.sock.settimeout(left)

    def _fill(self) -> bool:
        self._timeout()
        try:
            data = self.sock.recv(_CHUNK)
        except _socket.timeout:
            if self.deadline is None:
                raise
            raise _Deadline from None
        if not data:
            return False
        self.buf += data
        return True

    def read(self, n: int = -1) -> bytes:
        """n bytes (nothing when the peer stops short), received straight into one buffer of n bytes: a body costs its size once
        while it is read (SocketReader's growing buffer and slices cost it three times)."""
        if n < 0 or n <= len(self.buf):
            return super().read(n)
        out = bytearray(n)
        have = len(self.buf)
        out[:have] = self.buf
        self.buf = bytearray()
        view = memoryview(out)
        try:
            while have < n:
                self._timeout()
                try:
                    got = self.sock.recv_into(view[have:], min(_CHUNK, n - have))
                except _socket.timeout:
                    raise _Deadline from None
                if not got:
                    break
                have += got
        finally:
            view.release()
        return bytes(out) if have == n else b""      # cut short: the caller drops the request (no copy)


class _Deadline(Exception):
    """A request's headers or body did not arrive in time."""


class _Refused(Exception):
    """A request refused with this answer (then the connection is closed); `kind` is its counter."""

    def __init__(self, answer: bytes, kind: str) -> None:
        super().__init__(kind)
        self.answer, self.kind = answer, kind


class TelemetryListener:
    """HTTP/1.1 server on (host, port) that hands each POST body to a BatchQueue.

    Bounded against a hostile local process (the function can connect too): `path` (the Sidecar always
    gives one, holding a per-environment random token; None accepts any path, for tests) is the only path
    served, anything else is refused before its body is read; headers must arrive within HEADER_TIMEOUT_S
    and a body within BODY_TIMEOUT_S; a body over `max_body` (sized or chunked) is refused unread; the bodies
    being read share a PENDING_BUDGET_BYTES budget (the oldest is shed above it); when every slot is taken
    the oldest connection that never delivered on our path (else the oldest of all) is evicted, so idle
    connections cannot lock the platform out. Each refusal is counted (listener_rejected, in SidecarDropped).
    """

    def __init__(self, queue: BatchQueue, max_body: int = DEFAULT_MAX_BODY, path: Optional[str] = None,
                 pending_budget: int = PENDING_BUDGET_BYTES) -> None:
        self.queue = queue
        self.max_body = max_body
        self.path = path
        self._path_b = path.encode("latin-1") if path is not None else None
        self.pending_budget = max(1, int(pending_budget))
        self._pending = 0
        self._lock = threading.Lock()
        self.counters: Dict[str, int] = {"listener_requests": 0, "listener_bytes": 0,
                                         "listener_oversized": 0, "listener_oversized_bytes": 0,
                                         "listener_read_errors": 0, "listener_rejected": 0}
        self._sock: Any = None
        self._live: Dict[int, _Conn] = {}
        self._threads = 0
        self._handoff = threading.Condition()
        self._waiting: Deque[Any] = collections.deque()   # accepted connections, for an idle thread to serve
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
            c = _Conn(conn, _monotonic())
            with self._lock:
                victim = None
                if len(self._live) >= MAX_CONNECTIONS:
                    victim = min(self._live.values(), key=lambda v: (v.proven, v.since))
                    self._evict(victim, "evicted")
                self._live[id(c)] = c
            with self._handoff:
                if self._idle > len(self._waiting) or self._threads >= MAX_THREADS:
                    self._waiting.append(c)       # an idle (or soon idle: an evicted one's) thread takes it
                    self._handoff.notify()
                    continue
                self._threads += 1
            self.count("connection_threads")
            threading.Thread(target=self._connection_thread, args=(c,), name="otel-sidecar-listener-conn",
                             daemon=True).start()

    def _evict(self, victim: _Conn, kind: str) -> None:
        """Close a connection from another thread (self._lock held): its slot and budget are free at once."""
        self._live.pop(id(victim), None)
        victim.evicted = True
        self._pending -= victim.reserved
        victim.reserved = 0
        self.counters["listener_" + kind] = self.counters.get("listener_" + kind, 0) + 1
        if victim.partial:
            self.counters["listener_rejected"] += 1
        try:
            victim.sock.shutdown(_socket.SHUT_RDWR)   # its recv returns at once; its own thread closes it
        except OSError:
            pass

    def _connection_thread(self, c: Any) -> None:
        """Serve a connection, then wait (bounded) to be handed the next one."""
        try:
            while c is not None:
                self._serve(c)
                c = self._next_connection()
        finally:
            with self._handoff:
                self._threads -= 1

    def _next_connection(self) -> Any:
        with self._handoff:
            self._idle += 1
            try:
                waited = self._handoff.wait_for(lambda: self._waiting or self._sock is None, THREAD_IDLE_S)
                return self._waiting.popleft() if waited and self._waiting else None
            finally:
                self._idle -= 1

    def _serve(self, c: _Conn) -> None:
        conn = c.sock
        try:
            if c.evicted:
                return
            conn.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
            rfile = _DeadlineReader(conn, IDLE_TIMEOUT_S)
            rfile.deadline = c.since + HEADER_TIMEOUT_S      # a new connection must speak at once
            while self._one_request(rfile, c):
                rfile.deadline = None                         # keep-alive: idle until the next request
        except _Deadline:
            if not c.evicted:
                self.count("deadline_closed")
                if c.partial:
                    self.count("rejected")
        except (OSError, ValueError):
            pass                        # the peer went away (or timed out): nothing was half-queued
        finally:
            with self._lock:
                if self._live.pop(id(c), None) is not None:
                    self._pending -= c.reserved
                    c.reserved = 0
            try:
                conn.close()
            except OSError:
                pass

    def _one_request(self, rfile: Any, c: _Conn) -> bool:
        """Read one request, queue a POST body, answer; False when the connection is over."""
        conn = c.sock
        c.partial = False
        if not rfile.buf and not rfile._fill():     # wait for the request's first byte (idle between requests)
            return False
        c.partial = True
        if rfile.deadline is None:
            rfile.deadline = _monotonic() + HEADER_TIMEOUT_S
        line = rfile.readline(MAX_HEADER_BYTES)
        while line in (b"\r\n", b"\n"):          # tolerated between requests (RFC 9112 2.2)
            line = rfile.readline(MAX_HEADER_BYTES)
        if not line:
            return False
        try:
            method, target, version, headers = _request_head(line, rfile)
            if self._path_b is not None and not _compare_digest(target.split(b"?", 1)[0], self._path_b):
                raise _Refused(_NOT_FOUND, "wrong_path")
            if method != b"POST":
                body = b""
                if headers.get("content-length", "0") not in ("", "0") or "transfer-encoding" in headers:
                    raise _Refused(_NOT_ALLOWED_CLOSE, "wrong_method")
            else:
                rfile.deadline = _monotonic() + BODY_TIMEOUT_S
                body = self._read_body(rfile, headers, c)
        except _BadRequest:
            if c.evicted:
                return False
            self.count("read_errors")
            self.count("rejected")
            c.partial = False
            _refuse(conn, _BAD)
            return False
        except _Refused as refused:
            if c.evicted:
                return False
            self.count(refused.kind)
            self.count("rejected")
            c.partial = False
            _refuse(conn, refused.answer)
            return False
        finally:
            with self._lock:
                c.body = False
                self._pending -= c.reserved
                c.reserved = 0
        c.partial = False
        if c.evicted:
            return False                  # shed while its body was read: counted then
        c.proven = True
        c.since = _monotonic()
        if method == b"POST":
            self.on_body(body, 0)
            conn.sendall(_OK)
        else:
            conn.sendall(_NOT_ALLOWED)
        keep = headers.get("connection", "").lower()
        return keep != "close" and (version != b"HTTP/1.0" or keep == "keep-alive")

    def _reserve(self, c: _Conn, n: int) -> None:
        """Take n bytes of the pending-body budget, shedding the oldest other bodies being read if needed."""
        with self._lock:
            if c.evicted:
                raise ConnectionResetError("shed")
            c.body = True
            while self._pending + n > self.pending_budget:
                others = [v for v in self._live.values() if v.body and v.reserved and v is not c]
                if not others:
                    break
                self._evict(min(others, key=lambda v: v.since), "shed")
            if self._pending + n > self.pending_budget:
                raise _Refused(_BUSY, "shed")
            self._pending += n
            c.reserved += n

    def _read_body(self, rfile: Any, headers: Dict[str, str], c: _Conn) -> bytes:
        """The body; one over the limit is refused (413) without being read, a malformed one (400)."""
        limit = self.max_body
        if "chunked" in headers.get("transfer-encoding", "").lower():
            parts: List[bytes] = []
            total = 0
            while True:
                size = _chunk_size(rfile.readline(1024))
                if size == 0:
                    n = 0
                    while rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        n += 1
                        if n > 64:
                            raise _BadRequest
                    return b"".join(parts)
                if total + size > limit:
                    self._oversized(total + size)
                self._reserve(c, size)
                parts.append(_read_exact(rfile, size))
                if rfile.readline(16) not in (b"\r\n", b"\n"):
                    raise _BadRequest
                total += size
        raw = (headers.get("content-length") or "0").strip()
        if not raw.isdigit() or not raw.isascii() or len(raw) > 18:
            raise _BadRequest
        length = int(raw)
        if length > limit:
            self._oversized(length)
        self._reserve(c, length)
        return _read_exact(rfile, length)

    def _oversized(self, size: int) -> None:
        with self._lock:
            self.counters["listener_requests"] += 1
            self.counters["listener_oversized"] += 1
            self.counters["listener_oversized_bytes"] += size
        raise _Refused(_TOO_LARGE, "refused_oversized")

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
            out["listener_connections"] = len(self._live)
            out["listener_pending_bytes"] = self._pending
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


def _refuse(conn: Any, answer: bytes) -> None:
    refuse(conn, answer, LINGER_S, LINGER_BYTES)


def _chunk_size(line: bytes) -> int:
    size = chunk_size(line)
    if size is None:
        raise _BadRequest
    return size


def _request_head(line: bytes, rfile: Any) -> Tuple[bytes, bytes, bytes, Dict[str, str]]:
    """(method, target, HTTP version, lower-cased headers) of a request whose first line was just read."""
    parts = line.split()
    if len(parts) != 3 or not parts[2].startswith(b"HTTP/1.") or not line.endswith(b"\n"):
        raise _BadRequest
    headers: Dict[str, str] = {}
    size = len(line)
    while True:
        h = rfile.readline(MAX_HEADER_BYTES)
        size += len(h)
        if h in (b"\r\n", b"\n"):
            return parts[0], parts[1], parts[2], headers
        if not h or size > MAX_HEADER_BYTES or not h.endswith(b"\n"):
            raise _BadRequest
        key, sep, value = h.decode("latin-1").partition(":")
        if not sep:
            raise _BadRequest
        headers[key.strip().lower()] = value.strip()


def _read_exact(rfile: Any, n: int) -> bytes:
    """n bytes of body; a peer that closes early ends the connection."""
    data = rfile.read(n)
    if len(data) < n:
        raise ConnectionResetError("the peer closed the connection mid-body")
    return data
