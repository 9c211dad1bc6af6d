"""The local OTLP/HTTP endpoint's shell: a small HTTP/1.1 server on loopback handing each POST to an Intake.

Started before `register` (so it listens before the runtime's init can run), hence standard library C modules
only (`_socket`, `threading`): socket.py, http.server and typing would cost milliseconds on the path to the first
/next. Bounded like the Telemetry listener (listener.py), against anything the function (or another local
process) sends: a request's line and headers within HEADER_TIMEOUT_S of its first byte, its body within
BODY_TIMEOUT_S, headers at most MAX_HEADER_BYTES, a body over the limit (sized or chunked) refused with 413
before it is read, chunk lines checked, bodies being read sharing PENDING_BUDGET_BYTES (the oldest other one is
shed above it), at most MAX_CONNECTIONS connections (above it the oldest idle one is evicted, else the oldest).
Every refusal is counted. Each answer goes out at once: the function's SDK never waits for a backend.

Written apart from listener.py (which the lifecycle imports and which imports the lifecycle back): this file
depends on nothing of the sidecar but local_otlp.py.
"""

from __future__ import annotations

import _socket
import threading
from time import monotonic as _monotonic

from . import local_otlp as core
from .sockio import chunk_size, refuse

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict, List, Optional

MAX_CONNECTIONS = 32
MAX_HEADER_BYTES = 32 * 1024
MAX_HEADERS = 100
HEADER_TIMEOUT_S = 2.0
BODY_TIMEOUT_S = 5.0
IDLE_TIMEOUT_S = 600.0          # a keep-alive connection silent this long between requests is closed
PENDING_BUDGET_BYTES = core.MAX_BODY + 1024 * 1024
LINGER_S = 0.2                  # a refused request's unread input: discarded this long / this much at most,
LINGER_BYTES = 256 * 1024       # so the peer reads the answer instead of a reset
_CHUNK = 64 * 1024
_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed", 408: "Request Timeout",
            411: "Length Required", 413: "Content Too Large", 415: "Unsupported Media Type",
            431: "Request Header Fields Too Large"}


class _Deadline(Exception):
    pass


class _Refused(Exception):
    """Refuse the request with this answer and close the connection; `kind` is the counter."""

    def __init__(self, status: int, message: str, kind: str) -> None:
        super().__init__(kind)
        self.status, self.message, self.kind = status, message, kind


class _Conn:
    __slots__ = ("sock", "since", "reading", "reserved", "evicted", "buf", "deadline")

    def __init__(self, sock: Any, now: float) -> None:
        self.sock = sock
        self.since = now
        self.reading = False       # inside a request (headers or body)
        self.reserved = 0          # bytes of the pending budget it holds
        self.evicted = False
        self.buf = bytearray()
        self.deadline: Optional[float] = None

    def fill(self) -> bool:
        if self.deadline is None:
            self.sock.settimeout(IDLE_TIMEOUT_S)
        else:
            left = self.deadline - _monotonic()
            if left <= 0:
                raise _Deadline
            self.sock.settimeout(left)
        try:
            data = self.sock.recv(_CHUNK)
        except _socket.timeout:
            raise _Deadline from None
        if not data:
            return False
        self.buf += data
        return True

    def readline(self, limit: int) -> bytes:
        start = 0
        while True:
            at = self.buf.find(b"\n", start)
            if 0 <= at < limit:
                out = bytes(self.buf[:at + 1])
                del self.buf[:at + 1]
                return out
            if len(self.buf) >= limit:
                raise _Refused(431 if limit == MAX_HEADER_BYTES else 400, "header line too long", "bad_request")
            start = len(self.buf)
            if not self.fill():
                return b""

    def read(self, n: int) -> bytes:
        while len(self.buf) < n:
            if not self.fill():
                raise ConnectionResetError("the peer closed mid-body")
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out


class LocalOtlpServer:
    """HTTP/1.1 on (host, port): POST /v1/traces, /v1/metrics, /v1/logs -> Intake.receive -> its answer."""

    def __init__(self, intake: Any, max_body: int = core.MAX_BODY, pending_budget: int = PENDING_BUDGET_BYTES,
                 max_connections: int = MAX_CONNECTIONS) -> None:
        self.intake = intake
        self.max_body = max_body
        self.pending_budget = max(1, pending_budget)
        self.max_connections = max(1, max_connections)
        self._pending = 0
        self._lock = threading.Lock()
        self._live: Dict[int, _Conn] = {}
        self._sock: Any = None
        self.host: Optional[str] = None
        self.port: Optional[int] = None
        self.counters: Dict[str, int] = {}

    def bind(self, host: str, port: int) -> int:
        """Listen and serve; the port. OSError when the address is unusable (e.g. in use)."""
        family = _socket.AF_INET6 if ":" in host else _socket.AF_INET
        sock = _socket.socket(family, _socket.SOCK_STREAM)
        try:
            sock.bind((host, port))       # no SO_REUSEADDR: a port in use must fail, never be shared
            sock.listen(64)
        except OSError:
            sock.close()
            raise
        self._sock = sock
        self.host, self.port = host, sock.getsockname()[1]
        threading.Thread(target=self._accept_loop, args=(sock,), name="otel-sidecar-local-otlp",
                         daemon=True).start()
        return self.port

    def close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            for op in (lambda: sock.shutdown(_socket.SHUT_RDWR), sock.close):
                try:
                    op()
                except OSError:
                    pass
        with self._lock:
            live = list(self._live.values())
        for c in live:
            try:
                c.sock.shutdown(_socket.SHUT_RDWR)
            except OSError:
                pass

    def count(self, key: str, n: int = 1) -> None:
        with self._lock:
            self.counters[key] = self.counters.get(key, 0) + n

    def health(self) -> Dict[str, int]:
        with self._lock:
            out = {f"local_otlp_http_{k}": v for k, v in self.counters.items()}
            out["local_otlp_connections"] = len(self._live)
        out.update(self.intake.health())
        return out

    # -- connections --
    def _accept_loop(self, sock: Any) -> None:
        while True:
            try:
                fd, _ = sock._accept()
                conn = _socket.socket(sock.family, _socket.SOCK_STREAM, 0, fd)
            except OSError:
                if self._sock is None:
                    return
                continue
            c = _Conn(conn, _monotonic())
            with self._lock:
                if len(self._live) >= self.max_connections:
                    victim = min(self._live.values(), key=lambda v: (v.reading, v.since))
                    self._evict(victim, "evicted")
                self._live[id(c)] = c
            try:
                threading.Thread(target=self._serve, args=(c,), name="otel-sidecar-local-otlp-conn",
                                 daemon=True).start()
            except RuntimeError:          # no thread to be had: refuse the connection, never crash
                self.count("thread_errors")
                with self._lock:
                    self._live.pop(id(c), None)
                conn.close()

    def _evict(self, victim: _Conn, kind: str) -> None:
        """Close another thread's connection now (lock held): its slot and budget are free at once."""
        self._live.pop(id(victim), None)
        victim.evicted = True
        self._pending -= victim.reserved
        victim.reserved = 0
        self.counters[kind] = self.counters.get(kind, 0) + 1
        try:
            victim.sock.shutdown(_socket.SHUT_RDWR)
        except OSError:
            pass

    def _serve(self, c: _Conn) -> None:
        try:
            c.sock.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
            c.deadline = c.since + HEADER_TIMEOUT_S       # a new connection must speak at once
            while not c.evicted and self._one_request(c):
                c.deadline = None
        except _Deadline:
            if not c.evicted:
                self.count("deadline_closed")
        except (OSError, ValueError):
            pass
        finally:
            with self._lock:
                if self._live.pop(id(c), None) is not None:
                    self._pending -= c.reserved
                    c.reserved = 0
            try:
                c.sock.close()
            except OSError:
                pass

    def _one_request(self, c: _Conn) -> bool:
        c.reading = False
        if not c.buf and not c.fill():
            return False
        c.reading = True
        if c.deadline is None:
            c.deadline = _monotonic() + HEADER_TIMEOUT_S
        as_json = False
        try:
            line = c.readline(MAX_HEADER_BYTES)
            while line in (b"\r\n", b"\n"):
                line = c.readline(MAX_HEADER_BYTES)
            if not line:
                return False
            method, target, version, headers = _head(line, c)
            as_json = core.media_type(headers.get("content-type", "")) == "json"
            signal = core.PATHS.get(target.split(b"?", 1)[0])
            if signal is None:
                raise _Refused(404, "unknown path; the OTLP paths are /v1/traces, /v1/metrics, /v1/logs", "not_found")
            if method != b"POST":
                raise _Refused(405, "only POST is allowed", "wrong_method")
            c.deadline = _monotonic() + BODY_TIMEOUT_S
            body = self._body(c, headers)
        except _Refused as refused:
            if c.evicted:
                return False
            self.count(refused.kind)
            self.count(f"status_{refused.status}")
            reply = core.status_reply(refused.status, core.RPC_INVALID_ARGUMENT if refused.status == 400
                                      else core.RPC_RESOURCE_EXHAUSTED if refused.status == 413
                                      else core.RPC_UNIMPLEMENTED, refused.message, as_json)
            _refuse(c.sock, _answer(reply, close=True, allow=refused.status == 405))
            return False
        finally:
            with self._lock:
                self._pending -= c.reserved
                c.reserved = 0
        if c.evicted:
            return False
        c.reading = False
        c.since = _monotonic()
        try:
            reply = self.intake.receive(signal, body, headers.get("content-type", ""),
                                        headers.get("content-encoding", ""), headers.get("user-agent", ""))
        except Exception as exc:  # noqa: BLE001 - an intake bug must not stop the endpoint: 400, counted
            self.count("intake_errors")
            reply = core.status_reply(400, core.RPC_INVALID_ARGUMENT, f"could not read the request "
                                      f"({type(exc).__name__})", as_json)
        keep = headers.get("connection", "").lower()
        alive = keep != "close" and (version != b"HTTP/1.0" or keep == "keep-alive")
        c.sock.sendall(_answer(reply, close=not alive))
        self.count("requests")
        return alive

    def _reserve(self, c: _Conn, n: int) -> None:
        with self._lock:
            if c.evicted:
                raise ConnectionResetError("shed")
            while self._pending + n > self.pending_budget:
                others = [v for v in self._live.values() if v.reserved and v is not c]
                if not others:
                    break
                self._evict(min(others, key=lambda v: v.since), "shed")
            self._pending += n
            c.reserved += n

    def _continue(self, c: _Conn, headers: Dict[str, str]) -> None:
        if headers.get("expect", "").lower() == "100-continue":
            c.sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")

    def _body(self, c: _Conn, headers: Dict[str, str]) -> bytes:
        limit = self.max_body
        if "transfer-encoding" in headers:
            if headers["transfer-encoding"].lower() != "chunked" or "content-length" in headers:
                raise _Refused(400, "unsupported Transfer-Encoding", "bad_request")
            self._continue(c, headers)
            parts: List[bytes] = []
            total = 0
            while True:
                size = _chunk_size(c.readline(1024))
                if size == 0:
                    for _ in range(65):
                        trailer = c.readline(1024)
                        if trailer in (b"\r\n", b"\n"):
                            return b"".join(parts)
                        if not trailer:
                            raise ConnectionResetError("the peer closed mid-body")
                    raise _Refused(400, "too many trailer lines", "bad_request")
                total += size
                if total > limit:
                    raise _Refused(413, f"the body exceeds {limit} bytes", "too_large")
                self._reserve(c, size)
                parts.append(c.read(size))
                if c.readline(16) not in (b"\r\n", b"\n"):
                    raise _Refused(400, "malformed chunk", "bad_request")
        raw = headers.get("content-length")
        if raw is None:
            raise _Refused(411, "a body needs Content-Length or chunked Transfer-Encoding", "bad_request")
        raw = raw.strip()
        if not raw.isdigit() or not raw.isascii() or len(raw) > 18:
            raise _Refused(400, "invalid Content-Length", "bad_request")
        length = int(raw)
        if length > limit:
            raise _Refused(413, f"the body exceeds {limit} bytes", "too_large")
        self._continue(c, headers)
        self._reserve(c, length)
        return c.read(length)


def _head(line: bytes, c: _Conn) -> Any:
    parts = line.split()
    if len(parts) != 3 or not parts[2].startswith(b"HTTP/1.") or not line.endswith(b"\n"):
        raise _Refused(400, "malformed request line", "bad_request")
    headers: Dict[str, str] = {}
    size = len(line)
    for _ in range(MAX_HEADERS + 1):
        h = c.readline(MAX_HEADER_BYTES)
        size += len(h)
        if h in (b"\r\n", b"\n"):
            return parts[0], parts[1], parts[2], headers
        if not h or size > MAX_HEADER_BYTES or not h.endswith(b"\n"):
            raise _Refused(400, "malformed headers", "bad_request")
        key, sep, value = h.decode("latin-1").partition(":")
        if not sep or not key.strip():
            raise _Refused(400, "malformed header line", "bad_request")
        k = key.strip().lower()
        if k in headers and k in ("content-length", "transfer-encoding"):
            raise _Refused(400, f"repeated {k}", "bad_request")
        headers[k] = value.strip()
    raise _Refused(400, "too many headers", "bad_request")


def _chunk_size(line: bytes) -> int:
    size = chunk_size(line)
    if size is None:
        raise _Refused(400, "malformed chunk size", "bad_request")
    return size


def _answer(reply: Any, close: bool = False, allow: bool = False) -> bytes:
    head = (f"HTTP/1.1 {reply.status} {_REASONS.get(reply.status, 'Error')}\r\n"
            f"Content-Type: {reply.content_type}\r\nContent-Length: {len(reply.body)}\r\n"
            + ("Allow: POST\r\n" if allow else "") + ("Connection: close\r\n" if close else "") + "\r\n")
    return head.encode("ascii") + reply.body


def _refuse(conn: Any, answer: bytes) -> None:
    refuse(conn, answer, LINGER_S, LINGER_BYTES)


def start(env: Any, log: Any = None) -> Optional[LocalOtlpServer]:
    """Read the configuration, make the intake and listen; None when off or the port is unusable (one line)."""
    cfg, warnings = core.load_config(env)
    for text in warnings:
        if log is not None:
            log.warning("%s", text)
    if not cfg.enabled:
        return None
    server = LocalOtlpServer(core.Intake(env))
    warned: List[bool] = []

    def on_loop() -> None:
        if not warned and log is not None:
            warned.append(True)
            log.warning("local OTLP endpoint: the sidecar's own exporter posts to it (its OTLP endpoint is "
                        "%s:%s): those requests are dropped, counted; give the backend to the sidecar in "
                        "SIDECAR_COLLECTOR_CONFIG or OTEL_EXPORTER_OTLP_* and leave the function's SDK on its "
                        "default endpoint", cfg.host, cfg.port)

    server.intake.on_loop = on_loop
    try:
        server.bind(cfg.host, cfg.port)
    except OSError as exc:
        if log is not None:
            log.warning("local OTLP endpoint %s:%s is not available (%s); the function's own OTLP is not "
                        "received (set SIDECAR_LOCAL_OTLP_ENDPOINT to another port, or SIDECAR_LOCAL_OTLP=off)",
                        cfg.host, cfg.port, exc.strerror or exc)
        return None
    server.span_parent = cfg.span_parent   # type: ignore[attr-defined]
    return server
