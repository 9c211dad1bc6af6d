"""Sandbox: one execution environment and its lifecycle (lambda-apis.md section 4).

This module is the public facade and the lifecycle's state machine (started → ready ⇄ frozen → reset /
shut down). The work is done by collaborators, one job each:

| module          | job                                                                  |
|-----------------|----------------------------------------------------------------------|
| isolation.py    | the environment's files: its own root in a mount namespace, or dirs  |
| resources.py    | cgroups (memory limit, cpu quota), memory accounting and watchdog    |
| freezer.py      | freezing and thawing the processes between invokes                   |
| envvars.py      | the runtime's and the extensions' environment variables (pure)       |
| runtimes.py     | the supported runtimes and what Lambda gives each (pure)             |
| runtime_setup.py| the runtime process per family: interpreter, /var/runtime, argv      |
| node_ric.py     | aws-lambda-ric from npm, installed once into the sandbox's cache     |
| members.py      | launching the runtime and extensions, their output, their exits      |
| init_phase.py   | the Init phase (4.1)                                                 |
| invoke_cycle.py | one Invoke phase (4.2) and the caller's response                     |
| shutdown.py     | the Shutdown phase (4.3), also the first half of a reset (4.4)       |
| console.py      | the platform's CloudWatch lines (pure)                               |
| logbook.py      | every captured line, thread-safe                                     |
| modes.py        | the platform modes' hooks (managed instances, SnapStart, tenancy)    |

The API server (api.py) changes the shared `Control` state; the phases wait on it with bounded deadlines and
emit the platform events through the TelemetryHub in the order of "Sandbox internals" (ARCHITECTURE.md).
"""

from __future__ import annotations

import atexit
import datetime as _dt
import hashlib
import json
import os
import socket
import sys
import threading
import time
import uuid
import weakref
from typing import Any, Callable, Dict, List, Optional

from . import envvars, modes
from .api import ApiServer, Control
from .config import ConfigError, InvokeResult, LogLine, SandboxConfig, ShutdownResult
from .context import EnvContext, now
from .freezer import Freezer
from .init_phase import InitOutcome, run_init
from .invoke_cycle import InvokeRequest, init_failed_result, run_invoke
from .isolation import Layout, host_paths_of_layers, prepare
from .logbook import LogBook
from .members import Members
from .netns import PrivateNetwork
from .processes import Cgroups, EnvProcess, Launcher
from .resources import MemoryMeter, setup_cgroups
from .runtime_setup import RuntimePlan, plan_runtime, write_runtime_dir
from .shutdown import stop_environment
from .telemetry import TelemetryHub

__all__ = ["Sandbox", "InitOutcome"]

_LIVE: weakref.WeakSet[Sandbox] = weakref.WeakSet()


@atexit.register
def _close_live_sandboxes() -> None:
    """Interpreter exit: shut down sandboxes nobody closed, so no process outlives us."""
    for sb in list(_LIVE):
        try:
            sb.close()
        except Exception:  # noqa: BLE001 - best effort at exit
            pass


class Sandbox:
    """One Lambda execution environment running the runtime's real interface client (awslambdaric,
    aws-lambda-ric) or a provided runtime's bootstrap. Use as a context manager."""

    def __init__(self, config: SandboxConfig, on_log: Optional[Callable[[LogLine], None]] = None) -> None:
        if not isinstance(config, SandboxConfig):
            raise ConfigError(f"config must be a SandboxConfig, got {type(config).__name__}")
        self.cfg = config
        self.hub = TelemetryHub(log_format=config.log_format)
        self.control = Control(config.function_name, config.function_version, config.handler,
                               config.account_id, hub=self.hub)
        self.logbook = LogBook(on_log)
        self.logs: List[LogLine] = self.logbook.lines
        self.api: Optional[ApiServer] = None
        self.network: Optional[PrivateNetwork] = None   # network="private" only
        self.layout: Optional[Layout] = None
        self.cgroups: Optional[Cgroups] = None
        self.launcher: Optional[Launcher] = None
        self.ctx: Optional[EnvContext] = None
        self.runtime_plan: Optional[RuntimePlan] = None
        self.invocations: List[InvokeResult] = []
        self.inits: List[InitOutcome] = []
        self.resets: List[ShutdownResult] = []
        self.shutdown_result: Optional[ShutdownResult] = None
        self.applied: Dict[str, Any] = {}
        self.notes: List[str] = []
        self._op_lock = threading.RLock()
        self._started = False
        self._closed = False
        self._ready = False
        self._next_phase = "init"
        self._pending_init_ms: Optional[float] = None
        self._env_extra: Dict[str, str] = {}
        self._api_address: Optional[str] = None
        self._api_errors: List[str] = []
        started = _dt.datetime.now(_dt.timezone.utc)
        self.instance_id = f"{started:%Y/%m/%d}/[{config.function_version}]{uuid.uuid4().hex}"
        self.runtime_version_arn = (f"arn:aws:lambda:{config.region}::runtime:"
                                    f"{hashlib.sha256(config.runtime_version.encode()).hexdigest()}")
        self.base_python = getattr(sys, "_base_executable", None) or sys.executable
        # platform modes (LMI, SnapStart, tenant, Logs API): modes.py
        self.mode_state = modes.configure(config, self.control, self.hub)

    # ---- context management ----------------------------------------------------------------------
    def __enter__(self) -> Sandbox:
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def start(self) -> Sandbox:
        """Prepare directories, isolation, cgroups and the API server (no process runs yet)."""
        with self._op_lock:
            if self._started:
                return self
            try:
                self._prepare()
            except BaseException:
                self._cleanup()
                raise
            self._started = True
            _LIVE.add(self)
            return self

    def _prepare(self) -> None:
        cfg = self.cfg
        plan = self.runtime_plan = plan_runtime(cfg, self.base_python)
        self.layout = prepare(cfg.code_dir, cfg.layers, cfg.isolation, cfg.run_root,
                              list(cfg.keep_paths) + host_paths_of_layers(cfg.layers), cfg.keep_run_dir,
                              cfg.ephemeral_storage_mb, runtime_files=plan.runtime_files, lang=plan.lang,
                              network=cfg.network)
        write_runtime_dir(plan, self.layout, cfg)
        self.notes.extend(self.layout.notes + plan.notes)
        setup = setup_cgroups(cfg)
        self.cgroups = setup.cgroups
        self.applied.update(setup.applied)
        self.notes.extend(setup.notes)
        self.launcher = Launcher(self.cgroups, self.layout.ns_prefix if self.layout.mode == "namespace" else None)
        receiver = cfg.otlp_receiver
        if self.layout.network == "private":
            assert self.layout.holder is not None
            forwards = list(cfg.forward_ports) + ([_port_of(receiver.endpoint)] if receiver is not None else [])
            self.network = PrivateNetwork(self.layout.holder.pid, [p for p in forwards if p])
            self.hub.use_network(self.network.nets.socket)
            port = 9001 if cfg.api_port is None else cfg.api_port
            self.api = ApiServer(self.control, listener=self.network.api_listener(port)).start()
            if self.network.forwards:
                self.notes.append("network 'private': this machine's 127.0.0.1 port(s) "
                                  + ", ".join(str(f.port) for f in self.network.forwards)
                                  + " reachable from the environment's 127.0.0.1 (forwarded)")
        else:
            self.api = ApiServer(self.control, _api_port(cfg.api_port, self.layout.mode, self.notes)).start()
        self._api_address = self.api.address
        self._api_errors = self.api.errors
        if receiver is not None and "OTEL_EXPORTER_OTLP_ENDPOINT" not in cfg.env:
            self._env_extra["OTEL_EXPORTER_OTLP_ENDPOINT"] = str(receiver.endpoint)
        memory = MemoryMeter(self.cgroups, self.launcher, cfg.memory_mb)
        members = Members(cfg, self.control, self.hub, self.layout, self.launcher, self.logbook, memory,
                          self._env_inputs, self.base_python, self.applied.get("memory_limit") == "watchdog", plan)
        self.ctx = EnvContext(cfg, self.control, self.hub, self.layout, self.launcher, self.cgroups, self.logbook,
                              members, Freezer(setup.freeze_mode, self.cgroups, self.launcher, self.notes), memory,
                              self.instance_id, self.runtime_version_arn, self.notes, self.mode_state)

    def _env_inputs(self) -> envvars.EnvInputs:
        lay, plan = self.layout, self.runtime_plan
        return envvars.EnvInputs(cfg=self.cfg, mode=lay.mode, opt=lay.opt, task=lay.task, runtime_dir=lay.runtime,
                                 tmp=lay.tmp, api_address=self._api_address or "", instance_id=self.instance_id,
                                 host_bin_dir=plan.host_bin_dir if plan else None,
                                 host_ld_library_path=os.environ.get("LD_LIBRARY_PATH"), extra=dict(self._env_extra),
                                 python_version=plan.python.version if plan and plan.python else None,
                                 credentials_token=self.control.credentials_token)

    # ---- public properties -------------------------------------------------------------------------
    @property
    def on_log(self) -> Optional[Callable[[LogLine], None]]:
        return self.logbook.on_log

    @on_log.setter
    def on_log(self, callback: Optional[Callable[[LogLine], None]]) -> None:
        self.logbook.on_log = callback

    @property
    def events(self):
        return self.hub.events

    @property
    def isolation(self) -> Optional[str]:
        return self.layout.mode if self.layout else None

    @property
    def api_address(self) -> Optional[str]:
        return self._api_address

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def ready(self) -> bool:
        """An initialised environment exists (frozen between invokes, or serving on LMI)."""
        return self._ready

    @property
    def operation_lock(self) -> threading.RLock:
        """Held by every lifecycle operation (init, invoke, reset, shutdown); the modes take it too."""
        return self._op_lock

    @property
    def api_errors(self) -> List[str]:
        """Internal errors of the API server (a non-empty list is a sandbox bug)."""
        return list(self._api_errors)

    @property
    def extension_processes(self) -> Dict[str, EnvProcess]:
        """The external extensions' processes of the current environment, by name."""
        return self.ctx.members.extensions if self.ctx else {}

    _ext_procs = extension_processes    # the name older tests use

    def log_lines(self) -> List[LogLine]:
        """A snapshot of every captured line (platform, function, extensions) in capture order."""
        return self.logbook.snapshot()

    def extension_lines(self, name: str) -> List[str]:
        return self.logbook.texts(f"extension:{name}")

    def function_lines(self) -> List[str]:
        return self.logbook.texts("function")

    def platform_lines(self) -> List[str]:
        return self.logbook.texts("platform")

    def report(self) -> dict:
        from .report import build_report

        return build_report(self)

    # ---- init (4.1) --------------------------------------------------------------------------------------
    def init(self) -> InitOutcome:
        """Initialise now (proactive or provisioned init) instead of on the first invoke."""
        with self._op_lock:
            self.start()
            if self._ready:
                return self.inits[-1]
            outcome = self._init(self._next_phase, time.monotonic() + self.cfg.init_timeout_s)
            if outcome.status == "success":
                self.hub.freeze()
                self.ctx.freeze()
            else:
                self.reset("timeout" if outcome.status == "timeout" else "failure")
            return outcome

    def _init(self, phase: str, deadline: float) -> InitOutcome:
        outcome, duration_ms = run_init(self.ctx, phase, deadline)
        self.inits.append(outcome)
        if outcome.status == "success":
            self._ready = True
            billed_with_invoke = phase == "init" and self.cfg.init_type == "on-demand"
            self._pending_init_ms = duration_ms if billed_with_invoke else None
        return outcome

    # ---- invoke (4.2) ---------------------------------------------------------------------------------------
    def invoke(self, payload: Any = None, *, trace_header: Optional[str] = None,
               client_context: Optional[str] = None, cognito_identity: Optional[str] = None,
               content_type: str = "application/json", invoked_arn: Optional[str] = None,
               tenant_id: Optional[str] = None) -> InvokeResult:
        """Invoke the function once; returns when the invoke phase is over (environment frozen again).

        `latency_ms` is what the caller observed: from this call until the runtime's response arrived.
        `tenant_id`: the invoke's tenant (tenant isolation; tenancy.TenantPool routes several tenants).
        """
        body = _payload_bytes(payload)
        lmi = modes.lmi_invoke(self, body, trace_header=trace_header, client_context=client_context,
                               cognito_identity=cognito_identity, content_type=content_type,
                               invoked_arn=invoked_arn, tenant_id=tenant_id)
        if lmi is not None:
            return lmi
        with self._op_lock:
            self.start()
            if self._closed:
                raise RuntimeError("the sandbox is shut down")
            tenant = modes.invoke_tenant(self, tenant_id)
            call = now()
            request_id = str(uuid.uuid4())
            failed = modes.before_invoke(self, request_id, call)    # SnapStart publish + restore
            if failed is not None:
                return failed
            # after a restore, the invoke phase starts once the environment is restored
            start, failed = self._init_on_invoke_path(request_id, call, now() if self.cfg.snapstart else call)
            if failed is not None:
                return failed
            req = InvokeRequest(request_id=request_id, body=body, start=start, call=call,
                                invoked_arn=invoked_arn or self.cfg.function_arn, trace_header=trace_header,
                                client_context=client_context, cognito_identity=cognito_identity,
                                content_type=content_type, tenant_id=tenant)
            result = self._invoke_once(req)
            self.invocations.append(result)
            return result

    def _init_on_invoke_path(self, request_id: str, call, start) -> tuple:
        """Init before this invoke when none is ready; returns (invoke phase start, failed result or None).

        A first init that times out is retried inside the invoke (phase "invoke", bounded by the timeout).
        """
        if not self._ready and self._next_phase == "init":
            outcome = self._init("init", time.monotonic() + self.cfg.init_timeout_s)
            if outcome.status == "error":
                self.reset("failure")
                return start, self.init_failed(request_id, call, outcome)
            if outcome.status == "timeout":
                self.reset("timeout")
            start = now()
        if not self._ready:
            outcome = self._init("invoke", start[0] + self.cfg.timeout_s)
            if outcome.status != "success":
                self.reset("timeout" if outcome.status == "timeout" else "failure")
                return start, self.init_failed(request_id, call, outcome)
        else:
            self.ctx.thaw()
        return start, None

    def _invoke_once(self, req: InvokeRequest) -> InvokeResult:
        """One invoke phase, then freeze (success) or reset (timeout, failure)."""
        init_ms, self._pending_init_ms = self._pending_init_ms, None
        result = run_invoke(self.ctx, req, init_ms)
        if result.status == "success":
            self.ctx.freeze()
        else:
            self.reset("timeout" if result.status == "timeout" else "failure")
        self.logbook.request_id = None
        return result

    def init_failed(self, request_id: str, call, outcome: InitOutcome) -> InvokeResult:
        result = init_failed_result(request_id, call, outcome)
        self.invocations.append(result)
        return result

    # ---- shutdown and reset (4.3, 4.4) -------------------------------------------------------------------
    def reset(self, reason: str) -> ShutdownResult:
        """End this environment (4.4): the next init is phase "invoke", or "init" for the modes that replace a
        failed environment by a new one (modes.phase_after_reset)."""
        result = stop_environment(self.ctx, reason)
        self.resets.append(result)
        with self.control.cv:
            self.control.reset()
        self.hub.reset()
        self.ctx.members.forget()
        self._ready = False
        self._next_phase = modes.phase_after_reset(self.cfg)
        self._pending_init_ms = None
        self.ctx.memory.reset()
        return result

    def shutdown(self, reason: str = "spindown") -> ShutdownResult:
        """Spin the environment down (4.3) and release every resource. Idempotent."""
        with self._op_lock:
            if self.shutdown_result is not None:
                return self.shutdown_result
            if not self._started:
                self.shutdown_result = ShutdownResult(reason=reason, duration_ms=0.0, runtime="NotRunning")
                self._closed = True
                return self.shutdown_result
            try:
                result = stop_environment(self.ctx, reason)
            finally:
                self._closed = True
                self._cleanup()
            self.shutdown_result = result
            return result

    def close(self) -> None:
        try:
            self.shutdown()
        finally:
            self._cleanup()

    def _cleanup(self) -> None:
        _release(self)


def _release(sb: Sandbox) -> None:
    """Kill every process; release the API server, cgroups and files (idempotent; each part best effort)."""
    if sb.ctx is not None:
        sb.ctx.members.stopping = True
        sb.ctx.members.closed = True
    if sb.launcher is not None:
        try:
            sb.launcher.kill_all()
        except Exception:  # noqa: BLE001 - cleanup must go on
            pass
    try:
        sb.hub.stop()
    except Exception:  # noqa: BLE001
        pass
    if sb.api is not None:
        sb.api.stop()
        sb.api = None
    if sb.network is not None:
        sb.network.close()
        sb.network = None
    if sb.cgroups is not None:
        sb.cgroups.remove()
    if sb.layout is not None:
        sb.layout.close()


def _port_of(endpoint: Any) -> Optional[int]:
    from urllib.parse import urlsplit

    try:
        return urlsplit(str(endpoint)).port
    except ValueError:
        return None


def _api_port(requested: Optional[int], mode: str, notes: List[str]) -> int:
    """--api-port; by default Lambda's 9001 in namespace mode when free on loopback (environment.md 5)."""
    if requested is not None:
        return int(requested)
    if mode != "namespace":
        return 0
    probe = socket.socket()
    try:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", 9001))
        return 9001
    except OSError:
        notes.append("127.0.0.1:9001 is in use (another sandbox?): the Runtime API is on a random loopback port "
                     "instead; pass --api-port to choose one")
        return 0
    finally:
        probe.close()


def _payload_bytes(payload: Any) -> bytes:
    """The invoke's body: bytes and text as given, anything else as JSON (None as `{}`)."""
    if isinstance(payload, (bytes, bytearray)):
        return bytes(payload)
    if isinstance(payload, str):
        return payload.encode()
    return json.dumps({} if payload is None else payload).encode()
