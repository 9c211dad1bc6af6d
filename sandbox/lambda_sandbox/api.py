"""One HTTP/1.1 server for the Runtime (2018-06-01), Extensions (2020-01-01), Telemetry (2022-07-01)
and Logs (2020-08-15) APIs, plus SnapStart's restore and credentials endpoints.

The shared state (`Control`) is a plain object guarded by one Condition; the HTTP handlers change it
and the environment (environment.py) waits on it for the lifecycle gates. Status codes, error types and
messages follow lambda-apis.md sections 1-3 and platform-2025.md for the modes:
- `mode="managed-instances"` (Lambda Managed Instances, platform-2025.md 1): many runtime workers park
  in /next at once (`LmiRuntime`), results may interleave across request ids, a late result of a timed
  out invoke gets 410 InvokeTimeout; external extensions may register only for SHUTDOWN; no Logs API,
  no restore or credentials routes (404, as RIE-LMI mounts none).
- `snapstart=True` (platform-2025.md 4): GET /runtime/restore/next parks the runtime after init until
  the environment restores; POST /runtime/restore/error; GET /2021-04-23/credentials.
- `tenant_id` of an Invocation goes to the runtime as Lambda-Runtime-Aws-Tenant-Id (platform-2025.md 2).
"""

from __future__ import annotations

import json
import re
import socket
import sys
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Deque, Dict, List, Optional, Tuple

MAX_AGENTS = 10
MAX_RESPONSE_BYTES = 6 * 1024 * 1024 + 100
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_KEEP_ERROR_TYPE = re.compile(r"^(Runtime|Function)\.[A-Z][a-zA-Z]+$")


def sanitize_error_type(value: Optional[str]) -> str:
    """RAPID's classification of a runtime-supplied error type (3.3)."""
    value = (value or "").strip()
    if _KEEP_ERROR_TYPE.match(value):
        return value
    return "Function.Unknown" if value.startswith("Function.") else "Runtime.Unknown"


@dataclass
class Invocation:
    """One invoke as the Runtime API sees it, with the timestamps the platform records need."""

    request_id: str
    payload: bytes
    deadline_ms: int
    invoked_arn: str
    trace_header: Optional[str] = None
    client_context: Optional[str] = None
    cognito_identity: Optional[str] = None
    content_type: str = "application/json"
    delivered: Optional[Tuple[float, float]] = None        # (monotonic, epoch) when /next returned it
    response_start: Optional[Tuple[float, float]] = None
    response_end: Optional[Tuple[float, float]] = None
    runtime_next: Optional[Tuple[float, float]] = None     # the runtime's /next after its result
    result: Optional[str] = None                           # "response" | "error"
    body: bytes = b""
    error_type: Optional[str] = None
    tenant_id: Optional[str] = None                        # Lambda-Runtime-Aws-Tenant-Id (tenant isolation)


@dataclass
class Extension:
    """An extension registration (external: bound to a file in extensions/; internal: runtime thread)."""

    name: str
    external: bool
    id: Optional[str] = None
    events: List[str] = field(default_factory=list)
    state: str = "Started"
    error_type: Optional[str] = None
    queue: List[dict] = field(default_factory=list)
    next_calls: int = 0
    last_next: Optional[Tuple[float, float]] = None
    waiting: bool = False


@dataclass
class RuntimeSide:
    state: str = "NotStarted"   # Started | Ready | Running | ResponseSent | InitError
    first_next: Optional[Tuple[float, float]] = None
    pending: Optional[Invocation] = None
    current: Optional[Invocation] = None
    init_error_type: Optional[str] = None
    init_error_body: bytes = b""
    # SnapStart (platform-2025.md 4.1): restore/next parks the runtime; the environment releases it
    restore_parked: Optional[Tuple[float, float]] = None   # when the runtime called restore/next
    restore_released: Optional[Tuple[float, float]] = None
    restore_done: Optional[Tuple[float, float]] = None     # the runtime's /next after the restore
    restore_error_type: Optional[str] = None


LMI_TIMED_OUT_KEEP = 10000   # request ids remembered for 410 answers (bounded)


@dataclass
class LmiRuntime:
    """The runtime side of a Lambda Managed Instances environment: many workers, many invokes at once."""

    idle: int = 0                                                  # workers parked in /next
    pending: Deque[Invocation] = field(default_factory=deque)      # dispatched, not yet picked up
    active: Dict[str, Invocation] = field(default_factory=dict)    # handed to a worker, no result yet
    timed_out: Deque[str] = field(default_factory=lambda: deque(maxlen=LMI_TIMED_OUT_KEEP))
    workers_seen: int = 0                                          # /next calls before the first invoke


def _now() -> Tuple[float, float]:
    return time.monotonic(), time.time()


class Control:
    """Lifecycle state shared by the API handlers and the environment. Use `with control.cv:`."""

    def __init__(self, function_name: str, function_version: str, handler: str, account_id: str,
                 hub: Any = None) -> None:
        self.cv = threading.Condition()
        self.function_name = function_name
        self.function_version = function_version
        self.handler = handler
        self.account_id = account_id
        self.hub = hub
        self.closed = False
        self.generation = 0
        self.runtime = RuntimeSide()
        self.extensions: List[Extension] = []
        self.registration_open = True
        self.fatal: Optional[str] = None
        # platform modes (set by modes.configure; defaults = a default Lambda function)
        self.mode = "default"                     # "default" | "managed-instances"
        self.snapstart = False
        self.logs_api = "enabled"                 # "enabled" | "stub" (the RIE's 202 Logs.NotSupported)
        self.lmi = LmiRuntime()
        self.credentials: Optional[Dict[str, str]] = None   # SnapStart's /2021-04-23/credentials body
        self.credentials_token: Optional[str] = None
        self._extension_endpoints = _ExtensionEndpoints(self)
        self._lmi = _LmiEndpoints(self)

    @property
    def managed_instances(self) -> bool:
        return self.mode == "managed-instances"

    # -- called by the environment (hold cv) --------------------------------------------------------
    def reset(self) -> None:
        """Forget registrations, runtime state and the fatal error (a reset, 4.4); wakes old waiters."""
        self.generation += 1
        self.runtime = RuntimeSide()
        self.lmi = LmiRuntime()
        self.extensions = []
        self.registration_open = True
        self.fatal = None
        self.cv.notify_all()

    def add_external(self, name: str) -> Extension:
        ext = Extension(name=name, external=True)
        self.extensions.append(ext)
        return ext

    def set_fatal(self, error_type: str) -> None:
        if self.fatal is None:
            self.fatal = error_type
        self.cv.notify_all()

    def by_id(self, ext_id: str) -> Optional[Extension]:
        return next((e for e in self.extensions if e.id == ext_id), None)

    def registered(self) -> List[Extension]:
        return [e for e in self.extensions if e.id is not None]

    # -- extension endpoints (2.x, 5.x, 6): served by _ExtensionEndpoints over this state ----------
    def register(self, name: str, accept_feature: str, body: bytes) -> Tuple[int, Dict[str, str], Any]:
        return self._extension_endpoints.register(name, accept_feature, body)

    def check_identifier(self, ext_id: Optional[str], unknown_message: Optional[str] = None):
        return self._extension_endpoints.check_identifier(ext_id, unknown_message)

    def extension_next(self, ext_id: Optional[str]):
        return self._extension_endpoints.extension_next(ext_id)

    def extension_error(self, ext_id: Optional[str], error_type: Optional[str], kind: str):
        return self._extension_endpoints.extension_error(ext_id, error_type, kind)

    def telemetry_subscribe(self, ext_id: Optional[str], body: bytes):
        return self._extension_endpoints.telemetry_subscribe(ext_id, body)

    def logs_subscribe(self, ext_id: Optional[str], body: bytes):
        return self._extension_endpoints.logs_subscribe(ext_id, body)

    # -- request handling (each returns (status, headers, body)) ----------------------------------
    def runtime_next(self):
        if self.managed_instances:
            return self._lmi.next()
        with self.cv:
            rt = self.runtime
            now = _now()
            if rt.state == "Started":
                rt.first_next = now
                self.registration_open = False
            elif rt.state == "RestoreReleased":
                rt.restore_done = now          # SnapStart: the runtime ran its after-restore hooks
            elif rt.state == "ResponseSent":
                if rt.current is not None:
                    rt.current.runtime_next = now
            elif rt.state == "Running" and rt.current is not None:
                return 200, _invoke_headers(rt.current), rt.current.payload   # same invoke again (3.1)
            elif rt.state != "Ready":
                return _err(403, "InvalidStateTransition",
                            f"State transition from {rt.state} to Ready failed for runtime. "
                            "Error: State transition is not allowed")
            rt.state = "Ready"
            gen = self.generation
            self.cv.notify_all()
            self.cv.wait_for(lambda: self.closed or self.generation != gen or self.runtime.pending is not None)
            if self.closed or self.generation != gen:
                return _err(500, "InternalServerError", "Internal Server Error")
            inv = rt.pending
            rt.pending = None
            rt.current = inv
            rt.state = "Running"
            inv.delivered = _now()
            self.cv.notify_all()
        return 200, _invoke_headers(inv), inv.payload

    # -- SnapStart (platform-2025.md 4.1, 4.4) -------------------------------------------------------
    def restore_next(self):
        """GET /runtime/restore/next: the runtime finished init and its before-snapshot hooks; it is
        "ready" for the init gates and stays parked until the environment restores (200, empty body)."""
        with self.cv:
            rt = self.runtime
            if not self.snapstart or rt.state != "Started":
                return _err(403, "InvalidStateTransition",
                            f"State transition from {_runtime_state_name(rt.state)} to RestoreReady failed "
                            "for runtime. Error: State transition is not allowed")
            now = _now()
            rt.first_next = rt.restore_parked = now
            rt.state = "RestoreReady"
            self.registration_open = False
            gen = self.generation
            self.cv.notify_all()
            self.cv.wait_for(lambda: self.closed or self.generation != gen or self.runtime.restore_released is not None)
            if self.closed or self.generation != gen:
                return _err(500, "InternalServerError", "Internal Server Error")
            rt.state = "RestoreReleased"
            self.cv.notify_all()
        return 200, {}, b""

    def release_restore(self) -> None:
        """Called by the environment (hold cv) when it restores: the parked restore/next returns."""
        self.runtime.restore_released = _now()
        self.cv.notify_all()

    def restore_error(self, error_type: Optional[str], body: bytes):
        with self.cv:
            rt = self.runtime
            if rt.state != "RestoreReleased":
                return _err(403, "InvalidStateTransition",
                            f"State transition from {_runtime_state_name(rt.state)} to RestoreError failed "
                            "for runtime. Error: State transition is not allowed")
            rt.state = "RestoreError"
            rt.restore_error_type = sanitize_error_type(error_type)
            self.set_fatal(rt.restore_error_type)
        return 202, {}, {"status": "OK"}

    def credentials_for(self, token: Optional[str]):
        """GET /2021-04-23/credentials (SnapStart: credentials are not in the environment variables)."""
        with self.cv:
            if self.credentials is None or not token or token != self.credentials_token:
                return 404, {"Content-Type": "text/plain; charset=utf-8"}, b"cannot get credentials for the provided token"
            return 200, {}, dict(self.credentials)

    def runtime_result(self, request_id: str, kind: str, body: bytes, error_type: Optional[str],
                       started: Tuple[float, float], reply=None):
        """kind "response" or "error" (3.2, 3.3); `reply` replaces the 202 (a rejected response)."""
        if self.managed_instances:
            return self._lmi.result(request_id, kind, body, error_type, started, reply)
        ended = _now()
        with self.cv:
            rt = self.runtime
            inv = rt.current
            if inv is None or inv.request_id != request_id:
                return _err(400, "InvalidRequestID", "Invalid request ID")
            if rt.state != "Running":
                target = "InvocationResponse" if kind == "response" else "InvocationErrorResponse"
                return _err(403, "InvalidStateTransition",
                            f"State transition from {_runtime_state_name(rt.state)} to {target} failed for runtime. "
                            "Error: State transition is not allowed")
            if kind == "response" and len(body) > MAX_RESPONSE_BYTES:
                inv.result, inv.body, inv.error_type = "error", b"", "Function.ResponseSizeTooLarge"
                inv.response_start, inv.response_end = started, ended
                rt.state = "ResponseSent"
                self.cv.notify_all()
                return _err(413, "RequestEntityTooLarge",
                            f"Exceeded maximum allowed payload size ({MAX_RESPONSE_BYTES} bytes).")
            inv.result = kind
            inv.body = body
            inv.error_type = error_type if kind == "error" else None
            inv.response_start, inv.response_end = started, ended
            rt.state = "ResponseSent"
            self.cv.notify_all()
        return reply or (202, {}, {"status": "OK"})

    def runtime_init_error(self, error_type: Optional[str], body: bytes):
        with self.cv:
            rt = self.runtime
            if rt.state != "Started":
                return _err(403, "InvalidStateTransition",
                            f"State transition from {_runtime_state_name(rt.state)} to InitError failed for runtime. "
                            "Error: State transition is not allowed")
            rt.state = "InitError"
            rt.init_error_type = sanitize_error_type(error_type)
            rt.init_error_body = body
            self.set_fatal(rt.init_error_type)
        return 202, {}, {"status": "OK"}


class _ExtensionEndpoints:
    """The Extensions API's registration and event endpoints and the subscription endpoints, over the
    Control's state (hold or take `c.cv`)."""

    def __init__(self, control: Control) -> None:
        self.c = control

    def register(self, name: str, accept_feature: str, body: bytes) -> Tuple[int, Dict[str, str], Any]:
        if not name:
            return _err(403, "Extension.InvalidExtensionName", "Empty extension name")
        try:
            parsed = json.loads(body.decode("utf-8") if body else "")
        except (ValueError, UnicodeDecodeError) as exc:
            return _err(403, "InvalidRequestFormat", str(exc))
        if not isinstance(parsed, dict):
            return _err(403, "InvalidRequestFormat", "request body must be a JSON object")
        if parsed.get("configurationKeys"):
            return _err(403, "InvalidRequestFormat", "configurationKeys are deprecated; use environment variables instead")
        events = parsed.get("events") or []
        if not isinstance(events, list):
            return _err(403, "InvalidRequestFormat", "events must be a list")
        features = {f.strip() for f in (accept_feature or "").split(",") if f.strip()}
        with self.c.cv:
            ext = next((e for e in self.c.extensions if e.external and e.name == name), None)
            if self.c.managed_instances:
                # platform-2025.md 1.3 (RIE-LMI's answers): externals may register for SHUTDOWN only,
                # internal extensions for no event at all
                if ext is None and events:
                    return _err(403, "Extension.InvalidEventType", "No events allowed for internal extensions")
                for ev in events:
                    if ev == "INVOKE":
                        return _err(403, "Extension.InvalidEventType", "INVOKE: ErrorInvalidEventType")
            for ev in events:
                if ev not in ("INVOKE", "SHUTDOWN"):
                    return _err(403, "Extension.InvalidEventType", f"{ev}: ErrorInvalidEventType")
                if ext is None and ev == "SHUTDOWN":
                    return _err(403, "Extension.InvalidEventType",
                                "SHUTDOWN: ShutdownEventNotSupportedForInternalExtension")
            if ext is None:
                if not self.c.registration_open:
                    return _err(403, "Extension.RegistrationClosed", "Extension registration closed already")
                if any(e.name == name for e in self.c.extensions):
                    return _err(403, "Extension.InvalidExtensionState", "Extension with this name already registered")
                if len(self.c.extensions) >= MAX_AGENTS:
                    return _err(403, "Extension.TooManyExtensions", f"Extension limit ({MAX_AGENTS}) reached")
                ext = Extension(name=name, external=False)
                self.c.extensions.append(ext)
            elif ext.state != "Started":
                return _err(403, "Extension.InvalidExtensionState",
                            f"State transition from {ext.state} to Registered failed for extension {name}. "
                            "Error: State transition is not allowed")
            ext.id = str(uuid.uuid4())
            ext.events = [str(e) for e in events]
            ext.state = "Registered"
            self.c.cv.notify_all()
            out: Dict[str, Any] = {}
            if "accountId" in features:
                out["accountId"] = self.c.account_id
            out.update(functionName=self.c.function_name, functionVersion=self.c.function_version,
                       handler=self.c.handler)
            return 200, {"Lambda-Extension-Identifier": ext.id}, out

    def check_identifier(self, ext_id: Optional[str], unknown_message: Optional[str] = None):
        """Middleware of 2.4: returns (extension, None) or (None, error response)."""
        if not ext_id:
            return None, _err(403, "Extension.MissingExtensionIdentifier", "Missing Lambda-Extension-Identifier header")
        if not _UUID.match(ext_id):
            return None, _err(403, "Extension.InvalidExtensionIdentifier", "Invalid Lambda-Extension-Identifier")
        ext = self.c.by_id(ext_id)
        if ext is None:
            return None, _err(403, "Extension.UnknownExtensionIdentifier", unknown_message or f"Unknown extension {ext_id}")
        return ext, None

    def extension_next(self, ext_id: Optional[str]):
        with self.c.cv:
            ext, error = self.check_identifier(ext_id)
            if error:
                return error
            if ext.state not in ("Registered", "Running"):
                return _err(403, "Extension.InvalidExtensionState",
                            f"State transition from {ext.state} to Ready failed for extension {ext_id}. "
                            "Error: State transition is not allowed")
            gen = self.c.generation
            ext.state = "Ready"
            ext.next_calls += 1
            ext.last_next = _now()
            ext.waiting = True
            self.c.cv.notify_all()
            self.c.cv.wait_for(lambda: self.c.closed or self.c.generation != gen or bool(ext.queue))
            ext.waiting = False
            if self.c.closed or self.c.generation != gen or not ext.queue:
                return _err(500, "InternalServerError", "Internal Server Error")
            event = ext.queue.pop(0)
            ext.state = "Running"
            self.c.cv.notify_all()
        headers = {}
        if event.get("eventType") == "INVOKE":
            headers["Lambda-Extension-Event-Identifier"] = str(uuid.uuid4())
        return 200, headers, event

    def extension_error(self, ext_id: Optional[str], error_type: Optional[str], kind: str):
        """kind "init" (-> InitError) or "exit" (-> ExitError), 2.5."""
        with self.c.cv:
            ext, error = self.check_identifier(ext_id, "Unknown Lambda-Extension-Identifier")
            if error:
                return error
            if not error_type:
                return _err(403, "Extension.MissingHeader", "Lambda-Extension-Function-Error-Type not found")
            target = "InitError" if kind == "init" else "ExitError"
            allowed = ("Registered",) if kind == "init" else ("Registered", "Ready", "Running")
            if ext.state == target:
                return 202, {}, {"status": "OK"}
            if ext.state not in allowed:
                return _err(403, "Extension.InvalidExtensionState",
                            f"State transition from {ext.state} to {target} failed for extension {ext_id}. "
                            "Error: State transition is not allowed")
            ext.state = target
            ext.error_type = error_type
            self.c.set_fatal("Extension.InitError" if kind == "init" else "Extension.ExitError")
            return 202, {}, {"status": "OK"}

    def telemetry_subscribe(self, ext_id: Optional[str], body: bytes):
        with self.c.cv:
            ext, error = self.check_identifier(ext_id)
            if error:
                return error
            name = ext.name
        if self.c.hub is None:
            return _err(500, "InternalServerError", "Internal Server Error")
        status, out = self.c.hub.subscribe(name, body)
        return status, {}, out

    def logs_subscribe(self, ext_id: Optional[str], body: bytes):
        """The legacy Logs API (lambda-apis.md 6): served when the hub implements it, else the RIE's answer."""
        with self.c.cv:
            ext, error = self.check_identifier(ext_id)
            if error:
                return error
            name = ext.name
        handler = getattr(self.c.hub, "subscribe_logs", None)
        if handler is None or self.c.logs_api == "stub":
            return _err(202, "Logs.NotSupported", "Logs API is not supported")
        status, out = handler(name, body)
        return status, {}, out


class _LmiEndpoints:
    """Lambda Managed Instances' runtime side (platform-2025.md 1.6, 1.9): concurrent workers in /next,
    results by request id; over the Control's state."""

    def __init__(self, control: Control) -> None:
        self.c = control

    def next(self):
        with self.c.cv:
            rt, lmi = self.c.runtime, self.c.lmi
            if rt.first_next is None:
                rt.first_next = _now()     # init completes once at least one worker is ready (1.8)
                self.c.registration_open = False
            if rt.state in ("Started", "Running", "ResponseSent"):
                rt.state = "Ready"
            lmi.idle += 1
            lmi.workers_seen += 1
            gen = self.c.generation
            self.c.cv.notify_all()
            try:
                self.c.cv.wait_for(lambda: self.c.closed or self.c.generation != gen or bool(self.c.lmi.pending))
            finally:
                if self.c.generation == gen:
                    lmi.idle -= 1
            if self.c.closed or self.c.generation != gen:
                return _err(500, "InternalServerError", "Internal Server Error")
            inv = lmi.pending.popleft()
            inv.delivered = _now()
            lmi.active[inv.request_id] = inv
            self.c.cv.notify_all()
        return 200, _invoke_headers(inv), inv.payload

    def result(self, request_id: str, kind: str, body: bytes, error_type: Optional[str],
                    started: Tuple[float, float], reply=None):
        ended = _now()
        with self.c.cv:
            inv = self.c.lmi.active.get(request_id)
            if inv is None:
                if request_id in self.c.lmi.timed_out:
                    return _err(410, "InvokeTimeout", "Invoke timeout")
                return _err(400, "InvalidRequestID", "Invalid request ID")
            del self.c.lmi.active[request_id]
            if kind == "response" and len(body) > MAX_RESPONSE_BYTES:
                inv.result, inv.body, inv.error_type = "error", b"", "Function.ResponseSizeTooLarge"
                inv.response_start, inv.response_end = started, ended
                self.c.cv.notify_all()
                return _err(413, "RequestEntityTooLarge",
                            f"Exceeded maximum allowed payload size ({MAX_RESPONSE_BYTES} bytes).")
            inv.result, inv.body = kind, body
            inv.error_type = error_type if kind == "error" else None
            inv.response_start, inv.response_end = started, ended
            self.c.cv.notify_all()
        return reply or (202, {}, {"status": "OK"})


def _runtime_state_name(state: str) -> str:
    return {"ResponseSent": "RuntimeResponseSentState"}.get(state, state)


def _invoke_headers(inv: Invocation) -> Dict[str, str]:
    headers = {
        "Lambda-Runtime-Aws-Request-Id": inv.request_id,
        "Lambda-Runtime-Deadline-Ms": str(inv.deadline_ms),
        "Lambda-Runtime-Invoked-Function-Arn": inv.invoked_arn,
        "Content-Type": inv.content_type or "application/json",
    }
    if inv.trace_header:
        headers["Lambda-Runtime-Trace-Id"] = inv.trace_header
    if inv.client_context:
        headers["Lambda-Runtime-Client-Context"] = inv.client_context
    if inv.cognito_identity:
        headers["Lambda-Runtime-Cognito-Identity"] = inv.cognito_identity
    if inv.tenant_id:
        headers["Lambda-Runtime-Aws-Tenant-Id"] = inv.tenant_id
    return headers


def _err(status: int, error_type: str, message: str):
    return status, {}, {"errorMessage": message, "errorType": error_type}


_ROUTES: List[Tuple[str, re.Pattern[str], str]] = [
    ("GET", re.compile(r"^/2018-06-01/runtime/invocation/next$"), "runtime_next"),
    ("POST", re.compile(r"^/2018-06-01/runtime/invocation/(?P<rid>[^/]+)/response$"), "runtime_response"),
    ("POST", re.compile(r"^/2018-06-01/runtime/invocation/(?P<rid>[^/]+)/error$"), "runtime_error"),
    ("POST", re.compile(r"^/2018-06-01/runtime/init/error$"), "runtime_init_error"),
    ("POST", re.compile(r"^/2020-01-01/extension/register$"), "ext_register"),
    ("GET", re.compile(r"^/2020-01-01/extension/event/next$"), "ext_next"),
    ("POST", re.compile(r"^/2020-01-01/extension/init/error$"), "ext_init_error"),
    ("POST", re.compile(r"^/2020-01-01/extension/exit/error$"), "ext_exit_error"),
    ("PUT", re.compile(r"^/2022-07-01/telemetry/?$"), "telemetry"),
    ("PUT", re.compile(r"^/2020-08-15/logs/?$"), "logs"),
    ("GET", re.compile(r"^/2018-06-01/runtime/restore/next$"), "restore_next"),
    ("POST", re.compile(r"^/2018-06-01/runtime/restore/error$"), "restore_error"),
    ("GET", re.compile(r"^/2021-04-23/credentials$"), "credentials"),
]
# routes an environment of a mode does not have (404 as an unknown path)
_SNAPSTART_ROUTES = ("restore_next", "restore_error", "credentials")
_NOT_ON_LMI = ("logs",) + _SNAPSTART_ROUTES


# one handler per route name: (control, request headers, path match, body, started) -> (status, headers, body)
_Route = Callable[[Control, Any, "re.Match[str]", bytes, Tuple[float, float]], Tuple[int, Dict[str, str], Any]]


def _on_runtime_response(control: Control, h: Any, match: re.Match[str], body: bytes,
                         started: Tuple[float, float]) -> Tuple[int, Dict[str, str], Any]:
    mode = h.get("Lambda-Runtime-Function-Response-Mode")
    if mode is not None and mode.lower() != "streaming":
        return control.runtime_result(
            match["rid"], "error", b"", "Runtime.InvalidResponseModeHeader", started,
            reply=_err(400, "InvalidFunctionResponseMode", "Invalid function response mode"))
    return control.runtime_result(match["rid"], "response", body, None, started)


def _on_runtime_error(control: Control, h: Any, match: re.Match[str], body: bytes,
                      started: Tuple[float, float]) -> Tuple[int, Dict[str, str], Any]:
    err_type = h.get("Lambda-Runtime-Function-Error-Type")
    try:
        err_type = json.loads(body).get("errorType") or err_type
    except (ValueError, AttributeError):
        pass
    return control.runtime_result(match["rid"], "error", body, err_type, started)


def _on_extension_error(phase: str) -> _Route:
    def handle(control: Control, h: Any, match: re.Match[str], body: bytes,
               started: Tuple[float, float]) -> Tuple[int, Dict[str, str], Any]:
        return control.extension_error(h.get("Lambda-Extension-Identifier"),
                                       h.get("Lambda-Extension-Function-Error-Type"), phase)
    return handle


_HANDLERS: Dict[str, _Route] = {
    "runtime_next": lambda c, h, m, b, s: c.runtime_next(),
    "runtime_response": _on_runtime_response,
    "runtime_error": _on_runtime_error,
    "runtime_init_error": lambda c, h, m, b, s: c.runtime_init_error(h.get("Lambda-Runtime-Function-Error-Type"), b),
    "ext_register": lambda c, h, m, b, s: c.register(h.get("Lambda-Extension-Name") or "",
                                                     h.get("Lambda-Extension-Accept-Feature") or "", b),
    "ext_next": lambda c, h, m, b, s: c.extension_next(h.get("Lambda-Extension-Identifier")),
    "ext_init_error": _on_extension_error("init"),
    "ext_exit_error": _on_extension_error("exit"),
    "logs": lambda c, h, m, b, s: c.logs_subscribe(h.get("Lambda-Extension-Identifier"), b),
    "restore_next": lambda c, h, m, b, s: c.restore_next(),
    "restore_error": lambda c, h, m, b, s: c.restore_error(h.get("Lambda-Runtime-Function-Error-Type"), b),
    "credentials": lambda c, h, m, b, s: c.credentials_for(h.get("Authorization")),
    "telemetry": lambda c, h, m, b, s: c.telemetry_subscribe(h.get("Lambda-Extension-Identifier"), b),
}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _dispatch(self, method: str) -> None:
        started = _now()
        path = self.path.split("?", 1)[0]
        control = self.server.control
        match = None
        name = None
        path_known = False
        for route_method, pattern, route_name in _ROUTES:
            m = pattern.match(path)
            if m:
                path_known = True
                if route_method == method:
                    match, name = m, route_name
                    break
        body = self._read_body()
        if name is not None and ((control.managed_instances and name in _NOT_ON_LMI)
                                 or (not control.snapstart and name in _SNAPSTART_ROUTES)):
            name, path_known = None, False
        if name is None:
            if path_known:
                self._send(405, {"Content-Type": "text/plain; charset=utf-8"}, b"")
            else:
                self._send(404, {"Content-Type": "text/plain; charset=utf-8"}, b"404 page not found\n")
            return
        try:
            status, headers, out = _HANDLERS[name](control, self.headers, match, body, started)
        except Exception as exc:  # a bug here must not kill the server thread silently
            self.server.errors.append(f"{method} {path}: {exc!r}")
            status, headers, out = _err(500, "InternalServerError", "Internal Server Error")
        headers = dict(headers)
        if isinstance(out, (bytes, bytearray)):
            payload = bytes(out)
        elif isinstance(out, str):   # the Telemetry API's 200 body is the 4 bytes "OK"
            payload = json.dumps(out).encode()
            headers.setdefault("Content-Type", "application/json")
        else:
            payload = (json.dumps(out, separators=(",", ":")) + "\n").encode()
            headers.setdefault("Content-Type", "application/json")
        self._send(status, headers, payload)

    def _send(self, status: int, headers: Dict[str, str], payload: bytes) -> None:
        try:
            self.send_response_only(status)
            self.send_header("Date", self.date_time_string())
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if payload:
                self.wfile.write(payload)
            self.wfile.flush()
        except OSError:
            self.close_connection = True


CLIENT_GONE = (ConnectionResetError, BrokenPipeError, ConnectionAbortedError, TimeoutError)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that resets or closes its connection is normal (an extension killed at shutdown, a
        runtime restarted): no traceback. Anything else is our bug: one line in `apiErrors`."""
        exc = sys.exc_info()[1]
        if isinstance(exc, CLIENT_GONE):
            return
        self.errors.append(f"{type(exc).__name__}: {exc}")

    def __init__(self, address: Tuple[str, int], control: Control,
                 listener: Optional[socket.socket] = None) -> None:
        self.control = control
        self.errors: List[str] = []
        self._conns: List[socket.socket] = []
        self._conns_lock = threading.Lock()
        super().__init__(address, _Handler, bind_and_activate=listener is None)
        if listener is not None:
            # already bound and listening (in the environment's own network namespace: netns.py)
            self.socket.close()
            self.socket = listener
            self.server_address = listener.getsockname()

    def process_request(self, request, client_address) -> None:  # type: ignore[override]
        with self._conns_lock:
            self._conns.append(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request) -> None:  # type: ignore[override]
        with self._conns_lock:
            if request in self._conns:
                self._conns.remove(request)
        super().shutdown_request(request)

    def close_all(self) -> None:
        with self._conns_lock:
            conns, self._conns = list(self._conns), []
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class ApiServer:
    """The environment's API endpoint on 127.0.0.1 (port 0 = ephemeral), or on a listening socket given."""

    def __init__(self, control: Control, port: int = 0, host: str = "127.0.0.1",
                 listener: Optional[socket.socket] = None) -> None:
        self.control = control
        self._server = _Server((host, port), control, listener)
        self._thread: Optional[threading.Thread] = None

    @property
    def address(self) -> str:
        host, port = self._server.server_address[:2]
        return f"{host}:{port}"

    @property
    def errors(self) -> List[str]:
        return self._server.errors

    def start(self) -> ApiServer:
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="lambda-sandbox-api", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        with self.control.cv:
            self.control.closed = True
            self.control.cv.notify_all()
        self._server.shutdown()
        self._server.close_all()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=2)

