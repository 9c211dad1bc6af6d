"""Extensions API client and the /next loop: register, listen, subscribe, then serve INVOKE and SHUTDOWN.

The path to `register` is on every cold start's critical path (Lambda starts the runtime only once every
extension has registered), so this module imports only what it must: the C socket module (socket.py's
enum and selectors imports cost ~10 ms of CPU, over 100 ms on a 128 MB function) and threading.
http.client (with email and ssl) and logging together cost ~50-60 ms of imports on a small Lambda, which is
why the client below speaks HTTP/1.1 itself and the main thread logs through `ownlog.log`.
The listener is imported after registering; the pure core, the sinks and `logging` are
imported by the worker thread after the first /next.
Fail open: after a successful registration nothing here ends the process except SHUTDOWN (or SIGTERM).
"""

from __future__ import annotations

import _socket  # the C module behind socket.py (see above); its socket objects have all we use
import os
import sys
import threading
import time

from . import modes
from .ownlog import log
from .runtime_done import RuntimeDoneMarks
from .sockio import SocketReader
from .status import SidecarStatus

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs ~10 ms to import; annotations are never evaluated at run time
    from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

DEFAULT_NAME = "otel-sidecar"
SCHEMA_VERSION = "2022-12-13"
BUFFERING = {"maxItems": 10000, "maxBytes": 1048576, "timeoutMs": 25}
LISTENER_HOSTNAME = "sandbox.localdomain"
CONTROL_TIMEOUT_S = 5.0           # register / subscribe answer at once; never wait forever for them
DEADLINE_MARGIN_S = 0.2           # every wait during an invoke ends this long before deadlineMs
SHUTDOWN_MARGIN_S = 0.15          # exit this long before the SHUTDOWN deadlineMs
SHUTDOWN_DRAIN_S = 0.3            # wait at most this long for late telemetry (the last report) at SHUTDOWN
SIGTERM_BUDGET_S = 0.3
SETUP_HOLD_MAX_S = 5.0            # the first invoke's /next waits at most this long for the one-time setup
SETUP_AT_SHUTDOWN_MIN_MB = 512    # below this memory (CPU share: memory / 1,769 MB) the SHUTDOWN window (~2 s)
                                  # gives less CPU than the one-time setup needs (~0.3 s): it must not wait for it
NEXT_RETRY_MAX_S = 1.0
SWITCH_INTERVAL_S = 0.001


class ApiError(Exception):
    """A non-2xx answer from the Extensions or Telemetry API."""

    def __init__(self, path: str, status: int, body: bytes) -> None:
        text = body.decode("utf-8", "replace").strip()
        super().__init__(f"{path} answered HTTP {status}: {text[:300]}")
        self.status = status
        self.body = text


class _Connection:
    """One keep-alive HTTP/1.1 connection (just what the Lambda APIs need: Content-Length or chunked bodies).

    Request line, headers and body go out in one write with TCP_NODELAY: split writes can meet the peer's
    delayed ACK and stall ~40 ms per call.
    """

    def __init__(self, host: str, port: int, timeout: Optional[float]) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        self.sock: Any = None
        self.rfile: Optional[SocketReader] = None

    def close(self) -> None:
        for obj in (self.rfile, self.sock):
            try:
                if obj is not None:
                    obj.close()
            except OSError:
                pass
        self.sock = self.rfile = None

    def request(self, method: str, path: str, body: Optional[bytes],
                headers: Mapping[str, str]) -> Tuple[int, Dict[str, str], bytes]:
        if self.sock is None:
            self.sock = _connect(self.host, self.port, self.timeout)
            self.sock.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
            self.rfile = SocketReader(self.sock)
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        if body is not None or method in ("POST", "PUT"):
            lines.append(f"Content-Length: {len(body or b'')}")
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b""))
        status_line = self.rfile.readline(65537)
        if not status_line:
            raise ConnectionResetError("the API closed the connection")
        parts = status_line.split(None, 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/"):
            raise ConnectionError(f"not an HTTP response: {status_line[:80]!r}")
        status = int(parts[1])
        resp_headers: Dict[str, str] = {}
        while True:
            line = self.rfile.readline(65537)
            if line in (b"\r\n", b"\n", b""):
                break
            key, _, value = line.decode("latin-1").partition(":")
            resp_headers[key.strip().lower()] = value.strip()
        if "chunked" in resp_headers.get("transfer-encoding", "").lower():
            data = self._read_chunked()
        elif "content-length" in resp_headers:
            data = self._read_exact(int(resp_headers["content-length"]))
        elif status in (204, 304) or 100 <= status < 200:
            data = b""
        else:
            data = self.rfile.read()
            resp_headers["connection"] = "close"
        if resp_headers.get("connection", "").lower() == "close":
            self.close()
        return status, resp_headers, data

    def _read_exact(self, n: int) -> bytes:
        data = self.rfile.read(n)
        if len(data) < n:
            raise ConnectionResetError("the API closed the connection mid-body")
        return data

    def _read_chunked(self) -> bytes:
        parts: List[bytes] = []
        while True:
            size = int(self.rfile.readline(1024).split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(parts)
            parts.append(self._read_exact(size))
            self.rfile.readline(16)


class ExtensionsClient:
    """Extensions + Telemetry API client over two keep-alive connections (stdlib only)."""

    def __init__(self, address: str) -> None:
        host, _, port = address.rpartition(":")
        self.host = host or "127.0.0.1"
        self.port = int(port)
        self.extension_id = ""
        self._next_conn: Optional[_Connection] = None   # /next blocks: no timeout
        self._ctl_conn: Optional[_Connection] = None    # register, subscribe

    def _call(self, which: str, method: str, path: str, body: Optional[bytes], headers: Dict[str, str],
              timeout: Optional[float]) -> Tuple[int, Dict[str, str], bytes]:
        attempt = 0
        while True:
            conn = getattr(self, which)
            if conn is None:
                conn = _Connection(self.host, self.port, timeout=timeout)
                setattr(self, which, conn)
            try:
                return conn.request(method, path, body, headers)
            except (BrokenPipeError, ConnectionResetError):
                # a keep-alive connection the server closed while idle: reconnect once
                conn.close()
                setattr(self, which, None)
                attempt += 1
                if attempt > 1:
                    raise
            except BaseException:
                conn.close()
                setattr(self, which, None)
                raise

    def _ids(self) -> Dict[str, str]:
        return {"Lambda-Extension-Identifier": self.extension_id}

    def register(self, name: str, events: Sequence[str]) -> bytes:
        """POST register; the answer's body (function name, version, handler, account id) as Lambda sent it:
        parsing it would import json, and its `re`, on the path to the first /next, for nothing used there."""
        path = "/2020-01-01/extension/register"
        status, headers, data = self._call(
            "_ctl_conn", "POST", path, _events_body(events),
            {"Lambda-Extension-Name": name, "Lambda-Extension-Accept-Feature": "accountId",
             "Content-Type": "application/json"}, CONTROL_TIMEOUT_S)
        if status != 200:
            raise ApiError(path, status, data)
        self.extension_id = headers.get("lambda-extension-identifier", "")
        if not self.extension_id:
            raise ApiError(path, status, b"no Lambda-Extension-Identifier header in the answer")
        return data

    def subscribe(self, body: Mapping[str, Any]) -> Tuple[int, str]:
        """PUT /2022-07-01/telemetry; returns (status, body text) whatever the status."""
        headers = dict(self._ids(), **{"Content-Type": "application/json"})
        status, _, data = self._call("_ctl_conn", "PUT", "/2022-07-01/telemetry", plain_json(body).encode(),
                                     headers, CONTROL_TIMEOUT_S)
        return status, data.decode("utf-8", "replace").strip()

    def next_event(self) -> Dict[str, Any]:
        path = "/2020-01-01/extension/event/next"
        status, _, data = self._call("_next_conn", "GET", path, None, self._ids(), None)
        if status != 200:
            raise ApiError(path, status, data)
        import json

        event = json.loads(data.decode("utf-8"))
        if not isinstance(event, dict):
            raise ApiError(path, status, b"event is not a JSON object: " + data[:200])
        return event


# ---- small helpers ---------------------------------------------------------------------------------

def _connect(host: str, port: int, timeout: Optional[float]) -> Any:
    """A TCP connection; an IP literal (Lambda's AWS_LAMBDA_RUNTIME_API is 127.0.0.1:9001) skips the name
    lookup, whose IDNA codec import alone costs ~5 ms at every cold start."""
    addresses = []
    for family in (_socket.AF_INET, _socket.AF_INET6):
        try:
            _socket.inet_pton(family, host)
        except OSError:
            continue
        addresses = [(family, (host, port))]
        break
    if not addresses:
        addresses = [(info[0], info[4]) for info in _socket.getaddrinfo(host, port, 0, _socket.SOCK_STREAM)]
    error: Optional[BaseException] = None
    for family, address in addresses:
        sock = _socket.socket(family, _socket.SOCK_STREAM)
        try:
            sock.settimeout(timeout)
            sock.connect(address)
            return sock
        except OSError as exc:
            sock.close()
            error = exc
        except BaseException:
            sock.close()
            raise
    raise error or OSError(f"no address for {host}")


def plain_json(value: Any) -> str:
    """JSON of plain data (dicts, lists, strings, numbers, booleans, None) without the json module: on the
    path to the first /next, json would bring `re` along (a few ms of CPU, tens on a small function)."""
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        out = ['"']
        for ch in value:
            if ch in '"\\':
                out.append("\\" + ch)
            elif ord(ch) < 0x20 or ord(ch) > 0x7E:
                units = (ord(ch),) if ord(ch) < 0x10000 else _surrogates(ord(ch))
                out.append("".join(f"\\u{u:04x}" for u in units))
            else:
                out.append(ch)
        return "".join(out) + '"'
    if isinstance(value, dict):
        return "{" + ",".join(f"{plain_json(str(k))}:{plain_json(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(plain_json(v) for v in value) + "]"
    raise TypeError(f"not plain JSON data: {type(value).__name__}")


def _surrogates(code: int) -> Tuple[int, int]:
    code -= 0x10000
    return 0xD800 + (code >> 10), 0xDC00 + (code & 0x3FF)


def _events_body(events: Sequence[str]) -> bytes:
    """{"events": [...]} without importing json (event names are plain upper-case words)."""
    return ('{"events":[' + ",".join(f'"{e}"' for e in events if e.isalnum()) + "]}").encode()


def extension_name(argv: Sequence[str]) -> str:
    """`--name NAME` from the launcher, else the executable's base name (it must equal the file name)."""
    args = list(argv[1:])
    for i, arg in enumerate(args):
        if arg == "--name" and i + 1 < len(args) and args[i + 1]:
            return args[i + 1]
        if arg.startswith("--name=") and len(arg) > 7:
            return arg[7:]
    base = os.path.basename(argv[0]) if argv else ""
    if not base or base.endswith(".py") or base in ("-c", "-m", "python", "python3"):
        return DEFAULT_NAME
    return base


def resolve_listener_host(hosts_file: str = "/etc/hosts", lookup_bound_s: float = 0.1) -> str:
    """Address that sandbox.localdomain maps to: /etc/hosts first (no DNS on the path to the first /next),
    then a name lookup bounded by lookup_bound_s, else 127.0.0.1."""
    try:
        with open(hosts_file, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                fields = line.split("#", 1)[0].split()
                if len(fields) >= 2 and LISTENER_HOSTNAME in fields[1:]:
                    return fields[0]
    except OSError:
        pass
    found: List[str] = []

    def lookup() -> None:
        try:
            found.append(_socket.gethostbyname(LISTENER_HOSTNAME))
        except OSError:
            pass

    t = threading.Thread(target=lookup, name="otel-sidecar-resolve", daemon=True)
    t.start()
    t.join(lookup_bound_s)
    return found[0] if found else "127.0.0.1"


def _setting(settings: Any, name: str, default: Any) -> Any:
    value = getattr(settings, name, None) if settings is not None else None
    return default if value is None else value


def _port_from_env(env: Mapping[str, str]) -> int:
    raw = (env.get("SIDECAR_LISTENER_PORT") or "").strip()
    if not raw:
        return 0
    try:
        port = int(raw)
        if 0 <= port <= 65535:
            return port
    except ValueError:
        pass
    log.warning("SIDECAR_LISTENER_PORT=%r is not a port number (0-65535); using an ephemeral port", raw)
    return 0


def subscription_body(types: Sequence[str], port: int, buffering: Optional[Mapping[str, int]] = None,
                      path: str = "/", schema: str = SCHEMA_VERSION) -> Dict[str, Any]:
    return {"schemaVersion": schema, "types": list(types), "buffering": dict(buffering or BUFFERING),
            "destination": {"protocol": "HTTP", "URI": f"http://{LISTENER_HOSTNAME}:{port}{path}"}}


def listener_path() -> str:
    """A per-environment secret path for the Telemetry API's deliveries: another local process (the function)
    that finds the listener's port cannot guess it, so it cannot post telemetry we would count. Never printed."""
    return "/telemetry/" + os.urandom(18).hex()


def epoch_to_monotonic(epoch_ms: Optional[float], margin_s: float, fallback_s: float = 3.0) -> float:
    """A monotonic-clock deadline `margin_s` before the epoch-ms deadline (fallback when absent)."""
    now_m, now_e = time.monotonic(), time.time()
    if not epoch_ms:
        return now_m + fallback_s
    return now_m + (float(epoch_ms) / 1000.0 - now_e) - margin_s


# ---- the extension ---------------------------------------------------------------------------------

class Sidecar:
    """Owns the client, the listener and the worker; runs the /next loop."""

    def __init__(self, env: Mapping[str, str], argv: Sequence[str], started_m: Optional[float] = None,
                 started_e: Optional[float] = None) -> None:
        self.env = dict(env)
        self.argv = list(argv)
        self.started_m = started_m if started_m is not None else time.monotonic()
        self.started_e = started_e if started_e is not None else time.time()
        self.name = extension_name(self.argv)
        self.client = ExtensionsClient(self.env.get("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9001"))
        self.settings: Any = None
        self.status = SidecarStatus()          # written here, read by the worker (degraded, subscribed types, ...)
        self.cond = threading.Condition()
        self.runtime_done = RuntimeDoneMarks()  # filled by the queue's scan and the worker, read by our waits
        self.queue: Any = None                 # listener.BatchQueue, made after registering
        self.listener: Any = None
        self.worker: Any = None
        self._exiting = threading.Lock()
        self._warned_unknown = False
        self._invokes = 0                        # INVOKE events handed to the worker
        self._setup_can_wait = _memory_mb(self.env) >= SETUP_AT_SHUTDOWN_MIN_MB   # ... for SHUTDOWN
        self._stalled_at: Optional[int] = None   # runtime_done_total when a wait for runtimeDone timed out
        self._plans_seen: set = set()              # flush plans (mode, reason) already logged: each once, since
                                                   # traffic at the budget's edge could flip them every invoke
        self.mode, mode_warning = modes.detect(self.env)   # modes.py: default | managed-instances (LMI)
        if mode_warning:
            log.warning("%s", mode_warning)

    # -- status (SidecarStatus holds it; these read it) --
    def degrade(self, why: str) -> None:
        """One clear line per problem; the sidecar keeps serving /next."""
        self.status.degrade(why)

    @property
    def degraded(self) -> List[str]:
        return self.status.degraded

    @property
    def subscribed_types(self) -> List[str]:
        return self.status.subscribed_types

    @property
    def time_to_first_next_ms(self) -> Optional[float]:
        return self.status.time_to_first_next_ms

    # -- init --
    def load_settings(self) -> None:
        try:
            from .config import load_settings

            self.settings, warnings = load_settings(self.env)
            for w in warnings:
                if not w.startswith("SIDECAR_PLATFORM_MODE="):   # printed once already (modes.detect)
                    log.warning("%s", w)
            if self.mode != getattr(self.settings, "platform_mode", self.mode):
                from .config import for_mode

                self.settings = for_mode(self.settings, self.mode)    # learnt at registration
        except Exception as exc:  # noqa: BLE001 - bad settings must not stop the function
            self.degrade(f"could not load settings ({type(exc).__name__}: {exc}); using defaults")
            self.settings = None

    def telemetry_types(self) -> List[str]:
        types = _setting(self.settings, "telemetry_types", None)
        if not types:
            types = ("platform", "function")
        return [t for t in types if t in ("platform", "function", "extension")] or ["platform"]

    def buffering(self) -> Dict[str, int]:
        return {"maxItems": int(_setting(self.settings, "buffer_max_items", BUFFERING["maxItems"])),
                "maxBytes": int(_setting(self.settings, "buffer_max_bytes", BUFFERING["maxBytes"])),
                "timeoutMs": int(_setting(self.settings, "buffer_timeout_ms", BUFFERING["timeoutMs"]))}

    def margin_s(self) -> float:
        return max(DEADLINE_MARGIN_S, float(_setting(self.settings, "flush_margin_ms", 0)) / 1000.0)

    def apply_log_level(self) -> None:
        level = str(_setting(self.settings, "log_level", "INFO")).upper()
        log.set_level(level)

    def start_listener(self) -> Optional[int]:
        from .listener import TelemetryListener

        host = _setting(self.settings, "listener_host", None) or resolve_listener_host()
        port = _setting(self.settings, "listener_port", None)
        if port is None:
            port = _port_from_env(self.env)
        listener = TelemetryListener(self.queue, path=listener_path())
        try:
            bound = listener.bind(host, int(port))
        except OSError as exc:
            if not port:
                self.degrade(f"cannot start the Telemetry API listener on {host}: {exc}; no platform telemetry")
                return None
            log.warning("listener port %s on %s is not available (%s); using an ephemeral port instead",
                        port, host, exc)
            try:
                bound = listener.bind(host, 0)
            except OSError as exc2:
                self.degrade(f"cannot start the Telemetry API listener on {host}: {exc2}; no platform telemetry")
                return None
        self.listener = self.status.listener = listener
        return bound

    def subscribe(self, port: int) -> None:
        types = self.telemetry_types()
        path = getattr(self.listener, "path", None) or "/"
        schema = modes.schema_version(self.mode, _setting(self.settings, "telemetry_schema", None))
        try:
            status, text = self.client.subscribe(subscription_body(types, port, self.buffering(), path, schema))
            if status == 400 and "schema" in text.lower():
                # a region without 2025-01-29, or an LMI refusing an older version: once with the other one
                retry = modes.fallback_schema(schema)
                log.warning("the Telemetry API refused schemaVersion %s (HTTP 400); retrying with %s", schema, retry)
                schema = retry
                status, text = self.client.subscribe(subscription_body(types, port, self.buffering(), path, schema))
        except Exception as exc:  # noqa: BLE001
            msg = str(exc).replace(path, "/telemetry/<token>") if path != "/" else str(exc)
            self.degrade(f"Telemetry API subscription failed ({type(exc).__name__}: {msg}); no platform telemetry")
            return
        if status == 200:
            self.status.subscribed_types = list(types)
            self.status.schema_version = schema
            return
        if status == 202:
            why = "the Telemetry API is not supported here (HTTP 202, a local emulator stub)"
        elif status == 404:
            why = "the Telemetry API does not exist here (HTTP 404)"
        elif status == 403:
            why = "the Telemetry API refused the subscription (HTTP 403)"
        else:
            why = f"the Telemetry API answered HTTP {status}"
        if path != "/":
            text = text.replace(path, "/telemetry/<token>")    # an answer may echo the URI: the token is secret
        self.degrade(f"{why}: {text[:200]}; no platform telemetry, the function is unaffected")

    def start_worker(self) -> None:
        try:
            from .worker import Worker

            self.worker = Worker(self.queue, self.settings, self.env, self.status)
            self.worker.start(defer_setup=True)
        except Exception as exc:  # noqa: BLE001
            self.degrade(f"the worker could not start ({type(exc).__name__}: {exc}); no metrics")
            self.worker = None

    def install_signal_handlers(self) -> None:
        import _signal  # signal.py would import enum (~3 ms) for its Signals class; the handler is the same

        try:
            _signal.signal(_signal.SIGTERM, self._on_sigterm)
        except (ValueError, OSError):  # not the main thread (tests)
            pass

    # -- run --
    def register(self) -> None:
        """Register for the mode's events (modes.py); an INVOKE registration refused as Lambda Managed
        Instances refuse it (403 Extension.InvalidEventType) reveals LMI: once more for SHUTDOWN only."""
        try:
            self.register_answer = self.client.register(self.name, list(modes.register_events(self.mode)))
        except ApiError as exc:
            if self.mode == modes.MANAGED_INSTANCES or not modes.refused_invoke(exc.status, exc.body):
                raise
            log.warning("the Extensions API refused the INVOKE registration (%s); Lambda Managed Instances: "
                        "registering for SHUTDOWN only", exc)
            self.mode = modes.MANAGED_INSTANCES
            self.register_answer = self.client.register(self.name, list(modes.register_events(self.mode)))
        self.status.managed_instances = self.mode == modes.MANAGED_INSTANCES

    def run(self) -> int:
        try:  # before registering: the function's SDK may export from its init, which starts once we register
            from .local_otlp_server import start as start_local_otlp

            self.status.local_otlp = start_local_otlp(self.env, log)
        except Exception as exc:  # noqa: BLE001 - the feature off, never the sidecar
            log.warning("local OTLP endpoint off (%s: %s)", type(exc).__name__, exc)
        try:
            self.register()
        except Exception as exc:  # noqa: BLE001 - before any invoke exiting is allowed (init fails clearly)
            log.error("registration as %r failed: %s; exiting", self.name, exc)
            return 1
        # the listener's threads must get the GIL quickly even while the worker parses a burst of logs
        sys.setswitchinterval(SWITCH_INTERVAL_S)
        self.install_signal_handlers()
        self.load_settings()
        self.apply_log_level()
        from .listener import DEFAULT_MAX_BATCHES, BatchQueue

        self.queue = BatchQueue(max_batches=int(_setting(self.settings, "queue_max", DEFAULT_MAX_BATCHES)),
                                cond=self.cond, runtime_done=self.runtime_done)
        port = self.start_listener()
        if port is not None:
            self.subscribe(port)
        self.start_worker()
        if self.mode == modes.MANAGED_INSTANCES and self.worker is not None:
            # no INVOKE will ever come, and the environment is never frozen: the worker sets up now and
            # flushes on its background timer; /next blocks until SHUTDOWN (platform-2025.md 1.3, 1.7)
            self.worker.release_setup()
        return self.loop()

    def loop(self) -> int:
        failures = 0
        while True:
            if self.status.time_to_first_next_ms is None:   # init is over for us once the first /next goes out
                self.status.time_to_first_next_ms = (time.monotonic() - self.started_m) * 1000.0
            try:
                event = self.client.next_event()
                failures = 0
            except Exception as exc:  # noqa: BLE001 - keep asking; never exit during an invoke
                failures += 1
                if failures == 1:
                    log.error("/next failed (%s: %s); retrying", type(exc).__name__, exc)
                time.sleep(min(NEXT_RETRY_MAX_S, 0.01 * 2 ** min(failures, 7)))  # backoff, not a wait for a condition
                continue
            kind = event.get("eventType")
            try:
                if kind == "INVOKE":
                    self.on_invoke(event)
                elif kind == "SHUTDOWN":
                    self.on_shutdown(event)
                    return 0
                elif not self._warned_unknown:
                    self._warned_unknown = True
                    log.warning("ignoring events of unknown type (first: %r)", kind)
            except Exception as exc:  # noqa: BLE001 - fail open
                log.error("error while handling %s (%s: %s); continuing", kind, type(exc).__name__, exc)

    def on_invoke(self, event: Dict[str, Any]) -> None:
        worker = self.worker
        if worker is None:
            return
        deadline = epoch_to_monotonic(event.get("deadlineMs"), self.margin_s())
        first = not worker.ready
        self._invokes += 1
        worker.submit_invoke(event)
        plan = worker.plan_after_invoke(deadline)
        mode, reason = plan.mode, plan.reason
        if (mode, reason) not in self._plans_seen and len(self._plans_seen) < 8:
            self._plans_seen.add((mode, reason))
            log.info("flush plan: %s (%s)", mode, reason)
        if not self.status.platform_subscribed:
            worker.release_setup()       # no runtimeDone will ever say the response is out
        if self._stalled_at is not None and self.runtime_done.total > self._stalled_at:
            self._stalled_at = None
            log.info("platform telemetry flows again; waiting for runtimeDone after each invoke again")
        if (plan.wait_runtime_done and self._stalled_at is None and self.status.platform_subscribed
                and worker.tracks_runtime_done()):
            rid = event.get("requestId", "")
            if not worker.wait_runtime_done(rid, deadline):
                # holding every invoke to its deadline would multiply its duration and cost: stop waiting
                # until a runtimeDone shows up again
                self._stalled_at = self.runtime_done.total
                log.warning("no platform.runtimeDone for %s before its deadline; not waiting for it after the "
                            "next invokes until platform telemetry flows again", rid)
        if first and (plan.wait_runtime_done or (self._invokes > 1 and not self._setup_can_wait)):
            # The one-time setup is not over and either the data must leave now (an explicit `end` mode or
            # sporadic traffic) or, on a small CPU share, an earlier invocation's data already waits on it:
            # finish it in this invocation's post-runtime time (bounded by the deadline and SETUP_HOLD_MAX_S).
            # A frozen environment gives the setup no CPU between invocations, and at 128 MB (0.07 vCPU:
            # ~4 s of setup against a ~2 s SHUTDOWN window) leaving it to SHUTDOWN would lose everything;
            # only the first invocation, which has no history yet, leaves it to the background.
            worker.wait_ready(min(time.monotonic() + SETUP_HOLD_MAX_S, deadline))
        if plan.budget_s > 0:
            worker.flush(min(time.monotonic() + plan.budget_s, deadline))

    def on_shutdown(self, event: Dict[str, Any]) -> None:
        deadline = epoch_to_monotonic(event.get("deadlineMs"), SHUTDOWN_MARGIN_S, fallback_s=1.5)
        self._final(deadline, event)

    def _final(self, deadline: float, event: Optional[Dict[str, Any]]) -> None:
        if not self._exiting.acquire(blocking=False):
            return
        try:
            if self.worker is not None:
                drain_s = float(_setting(self.settings, "shutdown_drain_ms", SHUTDOWN_DRAIN_S * 1000)) / 1000.0
                drain_until = min(deadline, time.monotonic() + drain_s)
                if not self.worker.shutdown(event, drain_until, deadline) and not self.worker.ready:
                    # no sink exists to count it in: the one place it can be said is this line
                    log.error("the final flush did not finish before the SHUTDOWN deadline: the one-time setup "
                              "was not over; the telemetry of %d invocation(s) is dropped", self._invokes)
        except Exception as exc:  # noqa: BLE001
            log.error("error during the final flush (%s: %s)", type(exc).__name__, exc)
        finally:
            _flush_std()
            os._exit(0)  # exporter threads must not hold the process past the deadline

    def _on_sigterm(self, signum: int, frame: Any) -> None:
        log.warning("SIGTERM received; final flush and exit")
        self._final(time.monotonic() + SIGTERM_BUDGET_S, None)


def _memory_mb(env: Mapping[str, str]) -> int:
    """AWS_LAMBDA_FUNCTION_MEMORY_SIZE; 0 (the small, careful case) when unset or not a number."""
    try:
        return int(str(env.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "0")).strip())
    except ValueError:
        return 0


def _flush_std() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001
            pass


def main(argv: Optional[Sequence[str]] = None, env: Optional[Mapping[str, str]] = None,
         started_m: Optional[float] = None, started_e: Optional[float] = None) -> int:
    try:
        sidecar = Sidecar(os.environ if env is None else env, sys.argv if argv is None else argv,
                          started_m, started_e)
    except Exception as exc:  # noqa: BLE001 - e.g. a malformed AWS_LAMBDA_RUNTIME_API: not registered yet
        log.error("cannot start (%s: %s); exiting", type(exc).__name__, exc)
        return 1
    return sidecar.run()
