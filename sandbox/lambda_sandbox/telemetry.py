"""TelemetryHub: Telemetry API (and legacy Logs API) subscriptions, event generation, per-subscriber
batching and delivery.

Implements lambda-apis.md 5.1 (subscribe), 5.2 (delivery, batching, init replay, overload,
freeze-aware delivery) and 5.6 (per-subscriber schema adaptation); the Logs API subscribers
(`subscribe_logs`, platform-2025.md 7) share the machinery and see `logs_api.view` of each event. Thread-safe: the API server,
the environment and the log pumps call in from their own threads; each subscriber has one daemon
delivery thread.
"""

from __future__ import annotations

import json
import select
import socket
import threading
import time as _time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Deque, Dict, List, Optional, Sequence, Tuple
from urllib.parse import urlsplit

from . import logs_api, records

TYPES = ("platform", "function", "extension")
DEFAULT_BUFFERING = {"maxItems": 10000, "maxBytes": 262144, "timeoutMs": 1000}
BUFFERING_LIMITS = {"maxItems": (1000, 10000), "maxBytes": (262144, 1048576), "timeoutMs": (25, 30000)}
SANDBOX_HOSTS = ("sandbox.localdomain", "sandbox")
LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")
CLOSED_BODY = {"errorMessage": "Telemetry API subscription is closed", "errorType": "Telemetry.SubscriptionClosed"}
# Logs API answers (platform-2025.md 7; the strings are unverified, chosen to mirror the Telemetry API's)
LOGS_CLOSED_BODY = {"errorMessage": "Logs API subscription is closed", "errorType": "Logs.SubscriptionClosed"}
LOGS_VALIDATION_ERROR = "Logs.ValidationError"
FREEZE_DRAIN_S = 0.2  # how long freeze() waits for in-flight POSTs before holding delivery


def default_resolve_host(host: str) -> str:
    if host in SANDBOX_HOSTS or host in ("localhost", "::1"):
        return "127.0.0.1"
    return socket.gethostbyname(host)


@dataclass
class GeneratedEvent:
    """One generated telemetry event: the envelope and, per subscriber, when it was delivered."""

    event: dict
    deliveries: Dict[str, float] = field(default_factory=dict)
    legacy_record: Optional[str] = None  # the raw line, for 2022-07-01 subscribers of JSON log records
    source: Optional[str] = None  # extension name for `extension` records
    only_for: Optional[str] = None  # per-subscriber events (logsDropped) name their subscriber

    @property
    def type(self) -> str:
        return self.event["type"]

    @property
    def category(self) -> str:
        return records.category(self.event["type"])


@dataclass(frozen=True)
class Subscription:
    """A validated subscribe request."""

    name: str
    schema_version: str
    types: Tuple[str, ...]
    protocol: str  # "HTTP" | "TCP"
    host: str
    port: int
    path: str
    max_items: int
    max_bytes: int
    timeout_ms: int
    api: str = "telemetry"    # "telemetry" (PUT /2022-07-01/telemetry) | "logs" (PUT /2020-08-15/logs)
    method: str = "POST"      # HTTP delivery method; the Logs API lets the subscriber choose PUT


class ValidationError(ValueError):
    pass


def parse_subscription(name: str, body: bytes, *, strict_hosts: bool = False, api: str = "telemetry",
                       required_schema: Optional[str] = None) -> Subscription:
    """Validate a PUT /2022-07-01/telemetry body (5.1), or with api="logs" a PUT /2020-08-15/logs body
    (lambda-apis.md 6: schemaVersion optional, default 2020-08-15; destination.method POST|PUT).
    `required_schema` (Lambda Managed Instances: 2025-01-29) rejects every other version.
    Raises ValidationError naming every problem."""
    try:
        doc = json.loads(body.decode("utf-8") if isinstance(body, (bytes, bytearray)) else body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ValidationError(f"request body is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise ValidationError("request body must be a JSON object")
    problems: List[str] = []
    version = _check_schema_version(doc.get("schemaVersion"), api, required_schema, problems)
    types = _check_types(doc.get("types"), problems)
    protocol, host, port, path, method = _check_destination(doc.get("destination"), api, strict_hosts, problems)
    buf = _check_buffering(doc.get("buffering"), problems)
    if problems:
        raise ValidationError("; ".join(problems))
    return Subscription(name=name, schema_version=version, types=tuple(dict.fromkeys(types)),
                        protocol=protocol, host=host, port=port, path=path,
                        max_items=buf["maxItems"], max_bytes=buf["maxBytes"], timeout_ms=buf["timeoutMs"],
                        api=api, method=method)


def _check_schema_version(version: Any, api: str, required_schema: Optional[str], problems: List[str]) -> Any:
    allowed_versions = logs_api.LOGS_SCHEMA_VERSIONS if api == "logs" else records.SCHEMA_VERSIONS
    if version is None and api == "logs":
        version = logs_api.DEFAULT_LOGS_SCHEMA
    if version is None:
        problems.append("schemaVersion is required")
    elif required_schema is not None and version != required_schema:
        problems.append(f"schema validation error: schemaVersion {version!r} is not accepted here; "
                        f"this environment requires {required_schema!r}")
    elif version not in allowed_versions:
        problems.append(f"schemaVersion {version!r} is not supported; use one of {', '.join(allowed_versions)}")
    return version


def _check_types(types: Any, problems: List[str]) -> List[Any]:
    if types is None:
        problems.append("types is required")
        return []
    if not isinstance(types, list):
        problems.append("types should be an array")
        return []
    if not types:
        problems.append("types should not be empty")
    else:
        bad = [t for t in types if t not in TYPES]
        if bad:
            problems.append(f"types contains unknown values {bad}; allowed: platform, function, extension")
    return types


def _check_destination(dest: Any, api: str, strict_hosts: bool,
                       problems: List[str]) -> Tuple[Any, str, int, str, str]:
    """(protocol, host, port, path, method) of a destination object; defaults where it is unusable."""
    host, port, path, method = "", 0, "/", "POST"
    if dest is None:
        problems.append("destination is required")
        return "HTTP", host, port, path, method
    if not isinstance(dest, dict):
        problems.append("destination should be an object")
        return "HTTP", host, port, path, method
    protocol = dest.get("protocol")
    uri = dest.get("URI")
    if protocol == "HTTP":
        if not isinstance(uri, str) or not uri:
            problems.append("destination URI is required for protocol HTTP")
        else:
            host, port, path, errs = _check_uri(uri, "http", strict_hosts)
            problems.extend(errs)
        if api == "logs":
            method = _check_logs_http_options(dest, problems)
    elif protocol == "TCP":
        p = dest.get("port")
        if p is not None:
            if not isinstance(p, int) or isinstance(p, bool) or not 1 <= p <= 65535:
                problems.append(f"destination port {p!r} must be an integer 1..65535")
            else:
                host, port = "sandbox.localdomain", p
        elif isinstance(uri, str) and uri:
            host, port, path, errs = _check_uri(uri, "tcp", strict_hosts)
            problems.extend(errs)
        else:
            problems.append("destination port is required for protocol TCP")
    else:
        problems.append(f"destination protocol {protocol!r} is not supported; use HTTP or TCP")
    return protocol, host, port, path, method


def _check_logs_http_options(dest: Dict[str, Any], problems: List[str]) -> str:
    """The Logs API's HTTP method (POST|PUT) and encoding (JSON only); POST where the method is refused."""
    method = "POST"
    given_method = dest.get("method", "POST")
    if given_method not in ("POST", "PUT"):
        problems.append(f"destination method {given_method!r} is not supported; use POST or PUT")
    else:
        method = given_method
    encoding = dest.get("encoding", "JSON")
    if encoding != "JSON":
        problems.append(f"destination encoding {encoding!r} is not supported; use JSON")
    return method


def _check_buffering(given: Any, problems: List[str]) -> Dict[str, int]:
    buf = dict(DEFAULT_BUFFERING)
    if given is None:
        return buf
    if not isinstance(given, dict):
        problems.append("buffering should be an object")
        return buf
    for key, (lo, hi) in BUFFERING_LIMITS.items():
        if key not in given:
            continue
        v = given[key]
        if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
            problems.append(f"buffering {key} {v!r} must be an integer between {lo} and {hi}")
        else:
            buf[key] = v
    return buf


def _check_uri(uri: str, scheme: str, strict_hosts: bool) -> Tuple[str, int, str, List[str]]:
    errs: List[str] = []
    try:
        parts = urlsplit(uri)
        port = parts.port
    except ValueError as exc:
        return "", 0, "/", [f"URI {uri!r} is invalid: {exc}"]
    if parts.scheme != scheme:
        errs.append(f"URI scheme {parts.scheme!r} is not supported; use {scheme}")
    host = parts.hostname or ""
    allowed = SANDBOX_HOSTS if strict_hosts else SANDBOX_HOSTS + LOCAL_HOSTS
    if host not in allowed:
        errs.append(f"URI host {host!r} is not allowed; use sandbox.localdomain")
    if port is None:
        errs.append("URI port is not provided")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return host, port or 0, path, errs


def _error(status: int, error_type: str, message: str) -> Tuple[int, dict]:
    return status, {"errorMessage": message, "errorType": error_type}


# ------------------------------------------------------------------------------------------------


class _Item:
    __slots__ = ("ev", "payload", "size", "droppable", "enqueued")

    def __init__(self, ev: GeneratedEvent, payload: bytes, droppable: bool, enqueued: float):
        self.ev = ev
        self.payload = payload
        self.size = len(payload)
        self.droppable = droppable
        self.enqueued = enqueued


class _Subscriber:
    """Per-subscriber state; all fields guarded by the hub's condition."""

    def __init__(self, sub: Subscription, buffer_items: int, buffer_bytes: int):
        self.sub = sub
        self.queue: Deque[_Item] = deque()
        self.queued_bytes = 0
        self.buffer_items = buffer_items
        self.buffer_bytes = buffer_bytes
        self.dropped_records = 0
        self.dropped_bytes = 0
        self.total_dropped_records = 0
        self.inflight = False
        self.stopped = False
        self.thread: Optional[threading.Thread] = None
        self.sock: Optional[socket.socket] = None  # TCP destinations keep one connection
        self.posts = 0
        self.failures = 0


class _Delivery:
    """Per-subscriber bounded queues, batching (maxItems/maxBytes/timeoutMs), one delivery thread per
    subscriber (HTTP POST/PUT or TCP, bounded retries), and the freeze/flush/stop controls over them.
    Every field is guarded by `cond`, which the hub shares."""

    def __init__(self, *, resolve_host: Callable[[str], str], post_timeout_s: float, max_attempts: int,
                 retry_base_s: float, clock: Callable[[], float], record: Callable[[GeneratedEvent], None]):
        self.resolve_host = resolve_host
        # where delivery sockets are made: the machine's network, or the environment's own (netns.py)
        self.new_socket: Callable[[int, int], socket.socket] = socket.socket
        self.post_timeout_s = post_timeout_s
        self.max_attempts = max_attempts
        self.retry_base_s = retry_base_s
        self.clock = clock
        self._record = record   # keeps a generated platform.logsDropped in the hub's event list
        self.cond = threading.Condition(threading.RLock())
        self.subs: Dict[str, _Subscriber] = {}
        self.frozen = False
        self.stopped = False
        self._flushing = 0
        self._flush_cutoff = 0.0   # monotonic time of the newest flush start: only older items are hurried

    def start(self, s: _Subscriber, thread_name: str) -> None:
        s.thread = threading.Thread(target=self._deliver_loop, args=(s,), daemon=True, name=thread_name)
        s.thread.start()

    # ---- queueing ---------------------------------------------------------------------------------

    def enqueue(self, s: _Subscriber, ev: GeneratedEvent, now: float) -> None:
        if s.sub.api == "logs":
            for shown in logs_api.view(ev.event, s.sub.schema_version, ev.legacy_record):
                self._enqueue_payload(s, ev, _dumps(shown), now)
            return
        if not logs_api.telemetry_view(ev.event):
            return
        shown = records.adapt_for_schema(ev.event, s.sub.schema_version, ev.legacy_record)
        self._enqueue_payload(s, ev, _dumps(shown), now)

    def _enqueue_payload(self, s: _Subscriber, ev: GeneratedEvent, payload: bytes, now: float) -> None:
        droppable = ev.category != "platform"
        over = (len(s.queue) + 1 > s.buffer_items) or (s.queued_bytes + len(payload) > s.buffer_bytes)
        if over and (droppable or len(s.queue) + 1 > 2 * s.buffer_items
                     or s.queued_bytes + len(payload) > 2 * s.buffer_bytes):
            # The consumer is behind: drop this record and report it later with platform.logsDropped.
            s.dropped_records += 1
            s.dropped_bytes += len(payload)
            s.total_dropped_records += 1
            return
        if s.dropped_records:
            # room again: the drop report goes out in stream order, before what follows the gap
            self._report_drops(s)
        s.queue.append(_Item(ev, payload, droppable, now))
        s.queued_bytes += len(payload)

    # ---- freeze / flush / stop ------------------------------------------------------------------

    def freeze(self) -> None:
        """Wait (bounded) for in-flight POSTs, then hold all delivery until thaw()."""
        with self.cond:
            self.frozen = True
            deadline = _time.monotonic() + FREEZE_DRAIN_S
            while any(s.inflight for s in self.subs.values()):
                left = deadline - _time.monotonic()
                if left <= 0:
                    break
                self.cond.wait(left)

    def thaw(self) -> None:
        with self.cond:
            self.frozen = False
            self.cond.notify_all()

    def hold_pending(self) -> Dict[str, List[Any]]:
        """Take every undelivered item out of the subscribers' queues (SnapStart: the events buffered at
        snapshot time are delivered after the restore events, platform-2025.md 4.1/4.4)."""
        with self.cond:
            held: Dict[str, List[Any]] = {}
            for key, s in self.subs.items():
                held[key] = list(s.queue)
                s.queue.clear()
                s.queued_bytes = 0
            return held

    def release_held(self, held: Dict[str, List[Any]]) -> None:
        """Queue the held items again, after what was generated meanwhile."""
        with self.cond:
            now = _time.monotonic()
            for key, items in held.items():
                s = self.subs.get(key)
                if s is None or s.stopped:
                    continue
                for it in items:
                    it.enqueued = now
                    s.queue.append(it)
                    s.queued_bytes += it.size
            self.cond.notify_all()

    def flush(self, timeout: float) -> bool:
        """Send what is pending now, without waiting for timeoutMs; True when it is all delivered.

        Only the items queued before the flush starts are hurried (in batches cut by maxItems/maxBytes).
        Events generated during the flush (e.g. a line an extension prints for each batch it receives)
        follow the subscription's buffering as usual, so that the flush does not turn into one POST per
        event (docs/sandbox-report.md, "Telemetry before SHUTDOWN").
        """
        deadline = _time.monotonic() + timeout
        with self.cond:
            self._flushing += 1
            cutoff = self._flush_cutoff = _time.monotonic()
            self.cond.notify_all()
            try:
                while True:
                    busy = [s for s in self.subs.values()
                            if not s.stopped and ((s.queue and s.queue[0].enqueued <= cutoff) or s.inflight
                                                  or s.dropped_records)]
                    if not busy:
                        return True
                    left = deadline - _time.monotonic()
                    if left <= 0:
                        return False
                    self.cond.wait(min(left, 0.05))
            finally:
                self._flushing -= 1

    def stop(self) -> None:
        """Stop every delivery thread (pending events are abandoned)."""
        with self.cond:
            self.stopped = True
            subs = list(self.subs.values())
            for s in subs:
                s.stopped = True
            self.cond.notify_all()
        for s in subs:
            if s.thread is not None and s.thread is not threading.current_thread():
                s.thread.join(timeout=1.0)
            self.close_sock(s)

    def stats(self) -> Dict[str, Dict[str, int]]:
        """Per-subscriber counters: queued, dropped, posts, failures."""
        with self.cond:
            return {n: {"queued": len(s.queue), "dropped_records": s.total_dropped_records,
                        "posts": s.posts, "failures": s.failures} for n, s in self.subs.items()}

    # ---- delivery ---------------------------------------------------------------------------------

    def _next_batch(self, s: _Subscriber) -> Optional[List[_Item]]:
        """Block until a batch is due for `s`; None when the subscriber stops. Caller holds no lock."""
        with self.cond:
            while True:
                if s.stopped or self.stopped:
                    return None
                if not self.frozen:
                    if s.dropped_records and (not s.queue or self._flushing):
                        self._report_drops(s)
                    if s.queue:
                        sub = s.sub
                        full = len(s.queue) >= sub.max_items or s.queued_bytes >= sub.max_bytes
                        due = s.queue[0].enqueued + sub.timeout_ms / 1000.0
                        now = _time.monotonic()
                        hurried = bool(self._flushing) and s.queue[0].enqueued <= self._flush_cutoff
                        if full or hurried or now >= due:
                            batch: List[_Item] = []
                            size = 0
                            while s.queue and len(batch) < sub.max_items:
                                it = s.queue[0]
                                if batch and size + it.size > sub.max_bytes:
                                    break
                                s.queue.popleft()
                                s.queued_bytes -= it.size
                                batch.append(it)
                                size += it.size
                            s.inflight = True
                            return batch
                        self.cond.wait(due - now)
                        continue
                self.cond.wait(1.0)

    def _report_drops(self, s: _Subscriber) -> None:
        """Generate platform.logsDropped for this subscriber; queued only if it asked for `platform`."""
        rec = records.logs_dropped(dropped_records=s.dropped_records, dropped_bytes=s.dropped_bytes)
        s.dropped_records = s.dropped_bytes = 0
        if "platform" not in s.sub.types:
            return
        ev = GeneratedEvent(event=records.envelope("platform.logsDropped", rec, self.clock()), only_for=s.sub.name)
        self._record(ev)
        shown = logs_api.view(ev.event, s.sub.schema_version)[0] if s.sub.api == "logs" else ev.event
        payload = _dumps(shown)
        s.queue.append(_Item(ev, payload, False, _time.monotonic()))
        s.queued_bytes += len(payload)

    def _deliver_loop(self, s: _Subscriber) -> None:
        while True:
            batch = self._next_batch(s)
            if batch is None:
                return
            ok = False
            attempt = 0
            while not ok:
                attempt += 1
                ok = self._send(s, batch)
                with self.cond:
                    s.posts += 1
                    if ok:
                        now = self.clock()
                        for it in batch:
                            it.ev.deliveries[s.sub.name] = now
                        break
                    s.failures += 1
                    if attempt >= self.max_attempts or s.stopped or self.stopped:
                        # Give up on this batch: its records count as dropped (reported by logsDropped).
                        if not (s.stopped or self.stopped):
                            s.dropped_records += len(batch)
                            s.dropped_bytes += sum(it.size for it in batch)
                            s.total_dropped_records += len(batch)
                        break
                    # Exponential backoff, not counting frozen time; freeze() does not wait for it.
                    s.inflight = False
                    self.cond.notify_all()
                    wait = min(self.retry_base_s * (2 ** (attempt - 1)), 1.0)
                    end = _time.monotonic() + wait
                    while not (s.stopped or self.stopped):
                        left = end - _time.monotonic()
                        if self.frozen:
                            self.cond.wait(0.1)
                            end = _time.monotonic() + max(left, 0.0)
                            continue
                        if left <= 0:
                            break
                        self.cond.wait(left)
                    while self.frozen and not (s.stopped or self.stopped):
                        self.cond.wait(0.1)
                    s.inflight = True
            with self.cond:
                s.inflight = False
                self.cond.notify_all()

    def _send(self, s: _Subscriber, batch: Sequence[_Item]) -> bool:
        sub = s.sub
        try:
            addr = self.resolve_host(sub.host)
        except OSError:
            return False
        if sub.protocol == "TCP":
            return self._send_tcp(s, addr, batch)
        body = b"[" + b",".join(it.payload for it in batch) + b"]"
        try:
            status = http_post(addr, sub.port, sub.path, body, host_header=f"{sub.host}:{sub.port}",
                               timeout_s=self.post_timeout_s, paused=lambda: self.frozen, method=sub.method,
                               new_socket=self.new_socket)
        except OSError:
            return False
        return 200 <= status < 300

    def _send_tcp(self, s: _Subscriber, addr: str, batch: Sequence[_Item]) -> bool:
        data = b"".join(it.payload + b"\n" for it in batch)
        try:
            if s.sock is None:
                sock = self.new_socket(socket.AF_INET6 if ":" in addr else socket.AF_INET, socket.SOCK_STREAM)
                try:
                    sock.settimeout(self.post_timeout_s)
                    sock.connect((addr, s.sub.port))
                except OSError:
                    sock.close()
                    raise
                s.sock = sock
            s.sock.sendall(data)
            return True
        except OSError:
            self.close_sock(s)
            return False

    @staticmethod
    def close_sock(s: _Subscriber) -> None:
        if s.sock is not None:
            try:
                s.sock.close()
            except OSError:
                pass
            s.sock = None


class TelemetryHub:
    """Owns subscriptions and event generation (with the init replay buffer); batching and HTTP/TCP
    delivery are its `_Delivery` collaborator's job.

    Keyword options (all optional): `log_format` "Text"|"JSON"; `resolve_host` maps a destination
    host to an address; `keep_newline` keeps the trailing newline of text log records (7.10);
    `json_wrap_text` wraps non-JSON lines in JSON log format (7.9); `application_log_level`
    drops JSON function/extension records below that level; `strict_hosts` accepts only the sandbox
    host names; `buffer_factor` sizes each subscriber's bounded buffer in batches; `post_timeout_s`
    is the thawed time a POST may take; `max_attempts` bounds retries of one batch.
    Platform modes (platform-2025.md): `required_schema` rejects other schema versions (Lambda Managed
    Instances: 2025-01-29); `never_freeze` makes freeze() a no-op (LMI environments are never frozen);
    `exclusive_apis` refuses a Logs API subscription from an extension subscribed to the Telemetry API
    and the reverse (documented; False lets both coexist as two subscriptions); `tenant_id` is added to
    the function's wrapped JSON log records of an invoke (tenant isolation).
    """

    def __init__(self, log_format: str = "Text", resolve_host: Optional[Callable[[str], str]] = None, *,
                 keep_newline: bool = True, json_wrap_text: bool = True,
                 application_log_level: Optional[str] = None,
                 strict_hosts: bool = False, buffer_factor: int = 4, replay_limit: int = 10000,
                 post_timeout_s: float = 5.0, max_attempts: int = 5, retry_base_s: float = 0.05,
                 clock: Callable[[], float] = _time.time, required_schema: Optional[str] = None,
                 never_freeze: bool = False, exclusive_apis: bool = True, tenant_id: Optional[str] = None):
        self.log_format = "JSON" if str(log_format).upper() == "JSON" else "Text"
        self.resolve_host = resolve_host or default_resolve_host
        self.keep_newline = keep_newline
        self.json_wrap_text = json_wrap_text
        self.application_log_level = records.normalize_level(application_log_level)
        self.strict_hosts = strict_hosts
        self.buffer_factor = max(1, int(buffer_factor))
        self.replay_limit = replay_limit
        self.post_timeout_s = post_timeout_s
        self.max_attempts = max(1, int(max_attempts))
        self.retry_base_s = retry_base_s
        self.clock = clock
        self.required_schema = required_schema
        self.never_freeze = never_freeze
        self.exclusive_apis = exclusive_apis
        self.tenant_id = tenant_id
        self._events: List[GeneratedEvent] = []
        self._delivery = _Delivery(resolve_host=self.resolve_host, post_timeout_s=post_timeout_s,
                                   max_attempts=self.max_attempts, retry_base_s=retry_base_s, clock=clock,
                                   record=self._events.append)
        self._cond = self._delivery.cond
        self._subs = self._delivery.subs
        self._replay: List[GeneratedEvent] = []
        self._replay_dropped = 0
        self._replay_dropped_bytes = 0
        self._window_open = True

    def use_network(self, new_socket: Callable[[int, int], socket.socket]) -> None:
        """Deliver through sockets made by `new_socket` (the environment's own network namespace)."""
        self._delivery.new_socket = new_socket

    # ---- subscription -----------------------------------------------------------------------

    def subscribe(self, extension_name: str, body: bytes) -> Tuple[int, Any]:
        """PUT /2022-07-01/telemetry for an already-identified extension.

        Returns (status, body) where body is JSON-serialisable; the API writes json.dumps(body):
        200 "OK" (the 4 bytes `"OK"`), 400 ValidationError, 403 Telemetry.SubscriptionClosed.
        """
        return self._subscribe(extension_name, body, "telemetry")

    def subscribe_logs(self, extension_name: str, body: bytes) -> Tuple[int, Any]:
        """PUT /2020-08-15/logs (the legacy Logs API, logs_api.py): 200 "OK", 400 Logs.ValidationError
        (also for an extension already subscribed to the Telemetry API), 403 Logs.SubscriptionClosed."""
        return self._subscribe(extension_name, body, "logs")

    def _sub_key(self, name: str, api: str) -> str:
        return name if (api == "telemetry" or self.exclusive_apis) else f"{name}/logs"

    def _subscribe(self, extension_name: str, body: bytes, api: str) -> Tuple[int, Any]:
        closed = dict(CLOSED_BODY) if api == "telemetry" else dict(LOGS_CLOSED_BODY)
        invalid = "ValidationError" if api == "telemetry" else LOGS_VALIDATION_ERROR
        with self._cond:
            if not self._window_open or self._delivery.stopped:
                return 403, closed
        try:
            sub = parse_subscription(extension_name, body, strict_hosts=self.strict_hosts, api=api,
                                     required_schema=self.required_schema if api == "telemetry" else None)
        except ValidationError as exc:
            return _error(400, invalid, str(exc))
        key = self._sub_key(extension_name, api)
        with self._cond:
            if not self._window_open or self._delivery.stopped:
                return 403, closed
            existing = self._subs.get(key)
            if existing is not None and existing.sub.api != api:
                other = "Logs API" if existing.sub.api == "logs" else "Telemetry API"
                return _error(400, invalid, f"extension {extension_name!r} is already subscribed to the {other}; "
                                            "the Telemetry API and the Logs API are mutually exclusive")
            if existing is not None:
                # Repeats are idempotent (7.11): one subscription, settings of the latest request.
                existing.sub = sub
                self._cond.notify_all()
                return 200, "OK"
            s = _Subscriber(sub, sub.max_items * self.buffer_factor, sub.max_bytes * self.buffer_factor)
            self._subs[key] = s
            now = _time.monotonic()
            for ev in self._replay:
                if ev.category in sub.types and ev.only_for is None:
                    self._delivery.enqueue(s, ev, now)
            if self._replay_dropped:
                s.dropped_records += self._replay_dropped
                s.dropped_bytes += self._replay_dropped_bytes
                s.total_dropped_records += self._replay_dropped
            self._delivery.start(s, f"{api}-{extension_name}")
            if api == "telemetry":
                self._emit_locked("platform.telemetrySubscription",
                                  records.telemetry_subscription(name=extension_name, state="Subscribed",
                                                                 types=list(sub.types)), None)
            else:
                self._emit_locked("platform.logsSubscription",
                                  logs_api.logs_subscription(name=extension_name, types=list(sub.types)), None)
        return 200, "OK"

    def close_window(self) -> None:
        """End of init (4.1 step 8): later subscribes get 403; the replay buffer is discarded."""
        with self._cond:
            self._window_open = False
            self._replay = []
            self._replay_dropped = self._replay_dropped_bytes = 0

    def reset(self) -> None:
        """After a reset (4.4): drop every subscription and reopen the window for the next init."""
        with self._cond:
            subs = list(self._subs.values())
            self._subs.clear()
            for s in subs:
                s.stopped = True
                _Delivery.close_sock(s)
            self._window_open = True
            self._replay = []
            self._replay_dropped = self._replay_dropped_bytes = 0
            self._cond.notify_all()

    @property
    def subscribers(self) -> Dict[str, Subscription]:
        with self._cond:
            return {n: s.sub for n, s in self._subs.items()}

    @property
    def window_open(self) -> bool:
        return self._window_open

    # ---- generation ---------------------------------------------------------------------------

    @property
    def events(self) -> List[GeneratedEvent]:
        with self._cond:
            return list(self._events)

    def emit(self, type: str, record: Any, time: Optional[float] = None) -> GeneratedEvent:
        """Generate a platform.* event (or any type) and queue it for matching subscribers."""
        with self._cond:
            return self._emit_locked(type, record, time)

    def emit_log(self, source: str, text: str, time: Optional[float] = None, request_id: Optional[str] = None,
                 level: Optional[str] = None, extension_name: Optional[str] = None) -> Optional[GeneratedEvent]:
        """A `function` or `extension` log record from one line/frame (5.5.13), in the hub's log format.

        Returns None when the record is filtered out by the log level settings (JSON format only).
        """
        if source not in ("function", "extension"):
            raise ValueError(f"log source {source!r} must be 'function' or 'extension'")
        t = self.clock() if time is None else time
        if self.log_format == "JSON":
            rec = records.json_log_record(text, time=t, level=level,
                                          request_id=request_id if source == "function" else None,
                                          wrap_text=self.json_wrap_text,
                                          tenant_id=self.tenant_id if source == "function" else None)
            threshold = self.application_log_level
            lv = records.record_level(rec)
            if threshold and lv and records.level_rank(lv) < records.level_rank(threshold):
                return None
            legacy = records.text_log_record(text, keep_newline=self.keep_newline)
        else:
            rec = records.text_log_record(text, keep_newline=self.keep_newline)
            legacy = None
        with self._cond:
            return self._emit_locked(source, rec, t, legacy_record=legacy, source=extension_name)

    def _emit_locked(self, type: str, record: Any, time: Optional[float], *, legacy_record: Optional[str] = None,
                     source: Optional[str] = None) -> GeneratedEvent:
        t = self.clock() if time is None else time
        ev = GeneratedEvent(event=records.envelope(type, record, t), legacy_record=legacy_record, source=source)
        self._events.append(ev)
        if self._window_open:
            if len(self._replay) < self.replay_limit:
                self._replay.append(ev)
            else:
                self._replay_dropped += 1
                self._replay_dropped_bytes += len(_dumps(ev.event))
        now = _time.monotonic()
        cat = ev.category
        for s in self._subs.values():
            if cat in s.sub.types:
                self._delivery.enqueue(s, ev, now)
        self._cond.notify_all()
        return ev

    # ---- freeze / flush / stop (the delivery's controls) ----------------------------------------

    def freeze(self) -> None:
        """Wait (bounded) for in-flight POSTs, then hold all delivery until thaw() (no-op if never_freeze)."""
        if self.never_freeze:
            return
        self._delivery.freeze()

    def thaw(self) -> None:
        self._delivery.thaw()

    @property
    def frozen(self) -> bool:
        return self._delivery.frozen

    def hold_pending(self) -> Dict[str, List[Any]]:
        """Take every undelivered item out of the subscribers' queues (SnapStart, platform-2025.md 4.1/4.4)."""
        return self._delivery.hold_pending()

    def release_held(self, held: Dict[str, List[Any]]) -> None:
        """Queue the held items again, after what was generated meanwhile."""
        self._delivery.release_held(held)

    def flush(self, timeout: float) -> bool:
        """Send what is pending now, without waiting for timeoutMs; True when it is all delivered."""
        return self._delivery.flush(timeout)

    def stop(self) -> None:
        """Stop every delivery thread (pending events are abandoned)."""
        self._delivery.stop()

    def stats(self) -> Dict[str, Dict[str, int]]:
        """Per-subscriber counters: queued, dropped, posts, failures."""
        return self._delivery.stats()


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def http_post(addr: str, port: int, path: str, body: bytes, *, host_header: str, timeout_s: float,
              paused: Callable[[], bool] = lambda: False, method: str = "POST",
              new_socket: Callable[[int, int], socket.socket] = socket.socket) -> int:
    """POST `body` as application/json and return the status code.

    Time spent while `paused()` is true (the environment is frozen, so the listener cannot answer)
    does not count towards `timeout_s`: a frozen listener is not a failed one.
    """
    head = (f"{method} {path} HTTP/1.1\r\nHost: {host_header}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode("latin-1")
    out = memoryview(head + body)
    budget = timeout_s
    sock = new_socket(socket.AF_INET6 if ":" in addr else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.settimeout(min(timeout_s, 2.0))
        sock.connect((addr, port))
        sock.setblocking(False)
        buf = b""
        header_end = -1
        while True:
            want_write = len(out) > 0
            tick = 0.1
            r, w, _ = select.select([sock], [sock] if want_write else [], [], tick)
            if not r and not w:
                if not paused():
                    budget -= tick
                    if budget <= 0:
                        raise TimeoutError("telemetry POST timed out")
                continue
            if w:
                try:
                    n = sock.send(out[:65536])
                    out = out[n:]
                except BlockingIOError:
                    pass
            if r:
                try:
                    chunk = sock.recv(65536)
                except BlockingIOError:
                    continue
                if not chunk:
                    break
                buf += chunk
                if header_end < 0:
                    header_end = buf.find(b"\r\n\r\n")
                if header_end >= 0:
                    clen = _content_length(buf[:header_end])
                    if clen is not None and len(buf) >= header_end + 4 + clen:
                        break
                    if clen is None and b"chunked" in buf[:header_end].lower() and buf.endswith(b"0\r\n\r\n"):
                        break
        line = buf.split(b"\r\n", 1)[0].split()
        if len(line) < 2 or not line[0].startswith(b"HTTP/"):
            raise OSError("malformed HTTP response from telemetry listener")
        return int(line[1])
    finally:
        sock.close()


def _content_length(head: bytes) -> Optional[int]:
    for raw in head.split(b"\r\n")[1:]:
        k, _, v = raw.partition(b":")
        if k.strip().lower() == b"content-length":
            try:
                return int(v.strip())
            except ValueError:
                return None
    return None
