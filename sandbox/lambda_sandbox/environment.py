"""Sandbox: one execution environment and its lifecycle (lambda-apis.md section 4).

Init gates (4.1), invoke (4.2) with freeze, shutdown (4.3), failures and reset (4.4). The API server
(api.py) changes the shared `Control` state; this module waits on it with bounded deadlines, emits the
platform events through the TelemetryHub in the order of "Sandbox internals" (ARCHITECTURE.md) and
drives the processes (processes.py) inside the chosen isolation (isolation.py).
"""

from __future__ import annotations

import atexit
import datetime as _dt
import hashlib
import json
import math
import os
import signal
import sys
import threading
import time
import uuid
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

from . import modes, records, xray
from .api import ApiServer, Control, Extension, Invocation
from .config import ConfigError, InvokeResult, LogLine, SandboxConfig, ShutdownResult
from .isolation import Layout, host_paths_of_layers, prepare
from .layers import list_extensions
from .processes import Cgroups, EnvProcess, Launcher, peak_rss_bytes, unique_cgroup_name
from .telemetry import TelemetryHub

MIB = 1024 * 1024
_LIVE: weakref.WeakSet[Sandbox] = weakref.WeakSet()


@atexit.register
def _close_live_sandboxes() -> None:
    """Interpreter exit: shut down sandboxes nobody closed, so no process outlives us."""
    for sb in list(_LIVE):
        try:
            sb.close()
        except Exception:  # noqa: BLE001 - best effort at exit
            pass
VCPU_MB = 1769
TERMINAL_EXT_STATES = ("Exited", "ShutdownFailed", "LaunchError")


@dataclass
class InitOutcome:
    phase: str
    status: str                 # success | error | timeout
    error_type: Optional[str]
    duration_ms: float
    error_body: bytes = b""       # the runtime's init/error payload, returned to the caller


def _now():
    return time.monotonic(), time.time()


def _fmt_ms(value: float) -> str:
    return f"{value:.2f}"


def _exit_text(returncode: int) -> str:
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name[3:].lower()
        except ValueError:
            name = str(-returncode)
        return f"exited with error: signal: {'killed' if name == 'kill' else name}"
    return f"exited with error: exit status {returncode}"


class Sandbox:
    """One Lambda execution environment running the real awslambdaric runtime. Use as a context manager."""

    def __init__(self, config: SandboxConfig, on_log: Optional[Callable[[LogLine], None]] = None) -> None:
        if not isinstance(config, SandboxConfig):
            raise ConfigError(f"config must be a SandboxConfig, got {type(config).__name__}")
        self.cfg = config
        self.on_log = on_log
        self.hub = TelemetryHub(log_format=config.log_format)
        self.control = Control(config.function_name, config.function_version, config.handler,
                               config.account_id, hub=self.hub)
        self.api: Optional[ApiServer] = None
        self.layout: Optional[Layout] = None
        self.cgroups: Optional[Cgroups] = None
        self.launcher: Optional[Launcher] = None
        self.logs: List[LogLine] = []
        self.invocations: List[InvokeResult] = []
        self.inits: List[InitOutcome] = []
        self.resets: List[ShutdownResult] = []
        self.shutdown_result: Optional[ShutdownResult] = None
        self.applied: Dict[str, Any] = {}
        self.notes: List[str] = []
        self._op_lock = threading.RLock()
        self._logs_lock = threading.Lock()
        self._started = False
        self._closed = False
        self._ready = False
        self._next_phase = "init"
        self._pending_init_ms: Optional[float] = None
        self._stopping = False
        self._request_id: Optional[str] = None
        self._runtime: Optional[EnvProcess] = None
        self._ext_procs: Dict[str, EnvProcess] = {}
        self._freeze_mode = "none"
        self._frozen_pids: List[int] = []
        self._max_mem_bytes = 0
        self._oom_kills_seen = 0
        self._watchdog_kill = False
        self._env_extra: Dict[str, str] = {}
        self._api_address: Optional[str] = None
        self._api_errors: List[str] = []
        now = _dt.datetime.now(_dt.timezone.utc)
        self.instance_id = f"{now:%Y/%m/%d}/[{config.function_version}]{uuid.uuid4().hex}"
        self.runtime_version_arn = (f"arn:aws:lambda:{config.region}::runtime:{hashlib.sha256(config.runtime_version.encode()).hexdigest()}")
        self.base_python = getattr(sys, "_base_executable", None) or sys.executable
        modes.configure(self)   # platform modes (LMI, SnapStart, tenant, Logs API): modes.py

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
            cfg = self.cfg
            try:
                self.layout = prepare(cfg.code_dir, cfg.layers, cfg.isolation, cfg.run_root,
                                      list(cfg.keep_paths) + host_paths_of_layers(cfg.layers), cfg.keep_run_dir,
                                      cfg.ephemeral_storage_mb)
                self.notes.extend(self.layout.notes)
                self._setup_cgroups()
                ns = self.layout.ns_prefix if self.layout.mode == "namespace" else None
                self.launcher = Launcher(self.cgroups, ns)
                self.api = ApiServer(self.control, self._api_port()).start()
                self._api_address = self.api.address
                self._api_errors = self.api.errors
                receiver = cfg.otlp_receiver
                if receiver is not None and "OTEL_EXPORTER_OTLP_ENDPOINT" not in cfg.env:
                    self._env_extra["OTEL_EXPORTER_OTLP_ENDPOINT"] = str(receiver.endpoint)
            except BaseException:
                self._cleanup()
                raise
            self._started = True
            _LIVE.add(self)
            return self

    def _api_port(self) -> int:
        """--api-port; by default Lambda's 9001 in namespace mode when free on loopback (environment.md 5)."""
        if self.cfg.api_port is not None:
            return int(self.cfg.api_port)
        if self.layout is None or self.layout.mode != "namespace":
            return 0
        import socket

        probe = socket.socket()
        try:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(("127.0.0.1", 9001))
            return 9001
        except OSError:
            self.notes.append("127.0.0.1:9001 is in use (another sandbox?): the Runtime API is on a random "
                              "loopback port instead; pass --api-port to choose one")
            return 0
        finally:
            probe.close()

    def _setup_cgroups(self) -> None:
        cfg = self.cfg
        wanted = ["memory"]
        if cfg.freeze in ("auto", "cgroup"):
            wanted.append("freezer")
        if cfg.cpu_quota:
            wanted.append("cpu")
        cg = Cgroups(unique_cgroup_name(), wanted)
        self.cgroups = cg
        for ctl, why in cg.errors.items():
            self.notes.append(f"cgroup {ctl}: {why}")
        if cfg.freeze == "cgroup" and "freezer" not in cg.paths:
            raise ConfigError(f"freeze='cgroup' is not possible here: {cg.errors.get('freezer')}")
        if cfg.freeze == "none":
            self._freeze_mode = "none"
        elif "freezer" in cg.paths:
            self._freeze_mode = "cgroup"
        else:
            self._freeze_mode = "signal"
        self.applied["freeze"] = self._freeze_mode
        self.applied["memory_cgroup"] = "memory" in cg.paths
        self.applied["memory_limit"] = bool(cfg.enforce_memory and cg.set_memory_limit(cfg.memory_mb * MIB))
        if cfg.enforce_memory and not self.applied["memory_limit"]:
            self.applied["memory_limit"] = "watchdog"
            self.notes.append("no memory cgroup: enforce_memory uses a watchdog that samples the RSS of the "
                              "process tree every 50 ms")
        cpus = cfg.memory_mb / VCPU_MB
        self.applied["cpu_quota"] = bool(cfg.cpu_quota and cg.set_cpu_quota(cpus))
        self.applied["cpu_quota_vcpus"] = round(cpus, 4) if self.applied["cpu_quota"] else None
        if cfg.cpu_quota and not self.applied["cpu_quota"]:
            self.notes.append(f"cpu_quota requested but not applied: {cg.errors.get('cpu', 'cpu cgroup not writable')}")

    # ---- public properties -------------------------------------------------------------------------
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
    def api_errors(self) -> List[str]:
        """Internal errors of the API server (a non-empty list is a sandbox bug)."""
        return list(self._api_errors)

    def extension_lines(self, name: str) -> List[str]:
        with self._logs_lock:
            return [ln.text for ln in self.logs if ln.source == f"extension:{name}"]

    def function_lines(self) -> List[str]:
        with self._logs_lock:
            return [ln.text for ln in self.logs if ln.source == "function"]

    def platform_lines(self) -> List[str]:
        with self._logs_lock:
            return [ln.text for ln in self.logs if ln.source == "platform"]

    def report(self) -> dict:
        from .report import build_report

        return build_report(self)

    # ---- logging -------------------------------------------------------------------------------------
    def _log(self, source: str, text: str, stream: str = "stdout", t: Optional[float] = None) -> None:
        line = LogLine(source=source, time=t if t is not None else time.time(), text=text, stream=stream,
                       request_id=self._request_id)
        with self._logs_lock:
            self.logs.append(line)
        if self.on_log is not None:
            try:
                self.on_log(line)
            except Exception:  # noqa: BLE001 - a printing callback must not break the lifecycle
                pass

    def _platform_line(self, text: str) -> None:
        self._log("platform", text)

    def _on_runtime_line(self, proc: EnvProcess, stream: str, text: str) -> None:
        self._log("function", text, stream)
        self.hub.emit_log("function", text, request_id=self._request_id)

    def _on_runtime_frame(self, proc: EnvProcess, frame) -> None:
        text = frame.message[:-1] if frame.message.endswith("\n") else frame.message
        self._log("function", text, "telemetry_fd", frame.time)
        self.hub.emit_log("function", text, time=frame.time, request_id=self._request_id, level=frame.level)

    def _on_extension_line(self, proc: EnvProcess, stream: str, text: str) -> None:
        self._log(f"extension:{proc.name}", text, stream)
        self.hub.emit_log("extension", text, extension_name=proc.name)

    def _on_exit(self, proc: EnvProcess) -> None:
        with self.control.cv:
            if self._stopping or proc.killed_by_us:
                self.control.cv.notify_all()
                return
            if proc.kind == "runtime":
                if proc is self._runtime:
                    oom = self.cgroups.oom_kills() if self.cgroups else 0
                    if self._watchdog_kill:
                        self.control.set_fatal("Runtime.OutOfMemory")
                    elif oom > self._oom_kills_seen:
                        self._oom_kills_seen = oom
                        self.control.set_fatal("Runtime.OutOfMemory")
                    else:
                        self.control.set_fatal("Runtime.ExitError")
            else:
                ext = next((e for e in self.control.extensions if e.external and e.name == proc.name), None)
                if ext is not None and ext.state == "Started" and proc.returncode in (126, 127):
                    ext.state = "LaunchError"
                    ext.error_type = "UnknownError"
                    self.control.set_fatal("Extension.LaunchError")
                elif ext is not None and ext.state in ("InitError", "ExitError"):
                    self.control.set_fatal(f"Extension.{ext.state}")
                else:
                    self.control.set_fatal("Extension.Crash")
            self.control.cv.notify_all()

    # ---- environment variables (2.2) ---------------------------------------------------------------
    def _platform_env(self) -> Dict[str, str]:
        cfg = self.cfg
        if self.layout.mode == "namespace":
            # Lambda's PATH (environment.md 3.1); /var/lang/bin holds the runtime's interpreter
            path = ["/var/lang/bin", "/usr/local/bin", "/usr/bin/", "/bin", "/opt/bin"]
        else:
            path = [os.path.dirname(self.base_python), "/usr/local/bin", "/usr/bin", "/bin",
                    f"{self.layout.opt}/bin"]
        env = dict(cfg.env)
        env.update(self._env_extra)
        env.update({
            "PATH": ":".join(path),
            "LANG": "en_US.UTF-8",
            "TZ": ":UTC",
            "AWS_REGION": cfg.region,
            "AWS_DEFAULT_REGION": cfg.region,
            "AWS_LAMBDA_FUNCTION_NAME": cfg.function_name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(cfg.memory_mb),
            "AWS_LAMBDA_FUNCTION_VERSION": cfg.function_version,
            "AWS_LAMBDA_RUNTIME_API": self.api.address,
            "AWS_LAMBDA_INITIALIZATION_TYPE": cfg.init_type,
        })
        if self.layout.mode == "namespace":
            if "LD_LIBRARY_PATH" not in cfg.env:
                env["LD_LIBRARY_PATH"] = ("/var/lang/lib:/lib64:/usr/lib64:/var/runtime:/var/runtime/lib:"
                                          "/var/task:/var/task/lib:/opt/lib")
        else:
            ld = os.environ.get("LD_LIBRARY_PATH")
            if ld and "LD_LIBRARY_PATH" not in cfg.env:
                env["LD_LIBRARY_PATH"] = ld
        if self.layout.mode == "dirs":
            env.setdefault("TMPDIR", self.layout.tmp)
        return env

    def _extension_env(self) -> Dict[str, str]:
        env = self._platform_env()
        return modes.extension_env(self, {k: v for k, v in env.items()
                                          if not k.startswith("_") and k != "AWS_XRAY_CONTEXT_MISSING"})

    def _runtime_env(self, log_fd: int) -> Dict[str, str]:
        cfg, lay = self.cfg, self.layout
        env = self._platform_env()
        py = f"python{sys.version_info.major}.{sys.version_info.minor}"
        paths = [p for p in cfg.env.get("PYTHONPATH", "").split(":") if p]
        paths += [lay.task, f"{lay.opt}/python/lib/{py}/site-packages", f"{lay.opt}/python", lay.runtime]
        env.update({
            "_HANDLER": cfg.handler,
            "AWS_EXECUTION_ENV": f"AWS_Lambda_python{sys.version_info.major}.{sys.version_info.minor}",
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{cfg.function_name}",
            "AWS_LAMBDA_LOG_STREAM_NAME": self.instance_id,
            "LAMBDA_TASK_ROOT": lay.task,
            "LAMBDA_RUNTIME_DIR": lay.runtime,
            "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
            "AWS_XRAY_DAEMON_ADDRESS": "169.254.100.1:2000",
            "_AWS_XRAY_DAEMON_ADDRESS": "169.254.100.1",
            "_AWS_XRAY_DAEMON_PORT": "2000",
            "PYTHONPATH": ":".join(paths),
            "_LAMBDA_TELEMETRY_LOG_FD": str(log_fd),
        })
        if cfg.log_format == "JSON":
            env["AWS_LAMBDA_LOG_FORMAT"] = "JSON"
        return modes.runtime_env(self, env)

    # ---- processes -----------------------------------------------------------------------------------
    def _launch_runtime(self) -> EnvProcess:
        with self.control.cv:
            self.control.runtime.state = "Started"
        rfd, wfd = os.pipe()
        try:
            # -S: no site-packages of the machine; -P (3.11+): no cwd entry, so sys.path starts with the task root
            flags = ["-S", "-P"] if sys.version_info >= (3, 11) else ["-S"]
            python = self.base_python
            if self.layout.mode == "namespace":
                # the host interpreter's prefix is bound read-only at /var/lang (and at its own path)
                python = f"/var/lang/bin/python{sys.version_info.major}.{sys.version_info.minor}"
            argv = [python, *flags, "-m", "awslambdaric", self.cfg.handler]
            proc = self.launcher.launch("runtime", "runtime", argv, self._runtime_env(wfd), self.layout.task,
                                        self._on_runtime_line, self._on_exit, pass_fds=(wfd,),
                                        on_frame_fd=rfd, on_frame=self._on_runtime_frame)
        except BaseException:
            os.close(rfd)
            raise
        finally:
            os.close(wfd)
        self._runtime = proc
        self._watchdog_kill = False
        if self.applied.get("memory_limit") == "watchdog":
            threading.Thread(target=self._memory_watchdog, args=(proc,), name="memory-watchdog", daemon=True).start()
        return proc

    def _memory_watchdog(self, runtime: EnvProcess) -> None:
        """Without a memory cgroup: kill the runtime when the environment's RSS exceeds memory_mb."""
        from .processes import rss_bytes

        limit = self.cfg.memory_mb * MIB
        while runtime.alive() and not self._closed:
            if rss_bytes(self.launcher.all_pids()) > limit:
                self._watchdog_kill = True
                runtime.signal_group(signal.SIGKILL)
                return
            runtime.exited.wait(0.05)

    def _launch_extensions(self, files: List[Path]) -> None:
        env = self._extension_env()
        for f in files:
            with self.control.cv:
                ext = self.control.add_external(f.name)
            inner = f"{self.layout.opt}/extensions/{f.name}"
            if not os.access(f, os.X_OK):
                with self.control.cv:
                    ext.state = "LaunchError"
                    ext.error_type = "PermissionDenied"
                    self.control.set_fatal("Extension.LaunchError")
                continue
            self._ext_procs[f.name] = self.launcher.launch(
                f.name, "extension", [inner], dict(env), self.layout.opt if self.layout.mode == "namespace"
                else str(self.layout.opt_host), self._on_extension_line, self._on_exit)

    def _drain_output(self, procs: List[Optional[EnvProcess]], deadline: float) -> bool:
        """Wait (bounded) until everything these processes wrote so far has been captured and emitted."""
        procs = [p for p in procs if p is not None]
        while not all(p.output_drained() for p in procs):
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.001)
        return True

    def _wait(self, pred: Callable[[], bool], deadline: float) -> Optional[str]:
        """Wait until pred() (None), a fatal error (its type) or the monotonic deadline ("timeout")."""
        with self.control.cv:
            while True:
                if pred():
                    return None
                if self.control.fatal:
                    return self.control.fatal
                left = deadline - time.monotonic()
                if left <= 0:
                    return "timeout"
                self.control.cv.wait(min(left, 0.25))

    # ---- freeze ----------------------------------------------------------------------------------------
    def _freeze(self) -> None:
        if self._freeze_mode == "cgroup":
            if not self.cgroups.freeze():
                self.notes.append("cgroup freeze did not complete in time")
        elif self._freeze_mode == "signal":
            self._frozen_pids = sorted(self.launcher.all_pids())
            for pid in self._frozen_pids:
                try:
                    os.kill(pid, signal.SIGSTOP)
                except ProcessLookupError:
                    pass

    def _thaw(self) -> None:
        if self._freeze_mode == "cgroup" and self.cgroups is not None:
            self.cgroups.thaw()
        elif self._freeze_mode == "signal":
            for pid in self._frozen_pids:
                try:
                    os.kill(pid, signal.SIGCONT)
                except ProcessLookupError:
                    pass
            self._frozen_pids = []
        self.hub.thaw()

    def _sample_memory(self) -> None:
        # cgroup v1 max_usage can miss shared pages here; the peak RSS of the tree is the floor
        used = max((self.cgroups.max_usage_bytes() or 0) if self.cgroups else 0,
                   peak_rss_bytes(self.launcher.all_pids()))
        self._max_mem_bytes = max(self._max_mem_bytes, used)

    def _measure_memory_mb(self) -> int:
        self._sample_memory()
        return max(1, math.ceil(self._max_mem_bytes / MIB))

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
                self._freeze()
            else:
                self._reset("timeout" if outcome.status == "timeout" else "failure")
            return outcome

    def _init(self, phase: str, deadline: float) -> InitOutcome:
        cfg = self.cfg
        t0m, _ = _now()
        self._stopping = False
        self.hub.thaw()
        self.hub.emit("platform.initStart", records.init_start(
            initialization_type=cfg.init_type, phase=phase, runtime_version=cfg.runtime_version,
            runtime_version_arn=self.runtime_version_arn, function_name=cfg.function_name,
            function_version=cfg.function_version, instance_id=self.instance_id,
            instance_max_memory_mb=cfg.memory_mb))
        self._platform_line(f"INIT_START Runtime Version: {cfg.runtime_version}\t"
                            f"Runtime Version ARN: {self.runtime_version_arn}")
        files = list_extensions(self.layout.opt_host)
        err: Optional[str] = None
        if len(files) > 10:
            err = "Extension.TooManyExtensions"
            with self.control.cv:
                self.control.set_fatal(err)
        else:
            self._launch_extensions(files)
            err = self._wait(lambda: all(e.state != "Started" for e in self.control.extensions if e.external),
                             deadline)
        if err is None:
            self._launch_runtime()
            err = self._wait(lambda: self.control.runtime.first_next is not None, deadline)
            modes.runtime_ready(self, phase, err)
        if err is None:
            err = self._wait(lambda: all(e.next_calls > 0 for e in self.control.registered()), deadline)
        # static-init output belongs before initRuntimeDone in the stream (5.7 A)
        self._drain_output([self._runtime, *self._ext_procs.values()], min(deadline, time.monotonic() + 0.5))
        with self.control.cv:
            self.control.registration_open = False
            exts = [e for e in self.control.extensions if e.external] + \
                   [e for e in self.control.extensions if not e.external]
            ext_records = [(e.name, e.state, list(e.events), e.error_type) for e in exts]
            init_error_body = self.control.runtime.init_error_body
        self.hub.close_window()
        status = "success" if err is None else ("timeout" if err == "timeout" else "error")
        error_type = err if status == "error" else None
        modes.init_runtime_done(self, phase, status, error_type)
        for name, state, events, etype in ext_records:
            self.hub.emit("platform.extension", records.extension(name=name, state=state, events=events,
                                                                  error_type=etype))
            self._platform_line(f"EXTENSION\tName: {name}\tState: {state}\tEvents: [{', '.join(events)}]")
        duration_ms = (time.monotonic() - t0m) * 1000
        self.hub.emit("platform.initReport", records.init_report(
            initialization_type=cfg.init_type, phase=phase, status=status, duration_ms=duration_ms,
            error_type=modes.init_report_error_type(self, status, error_type)))
        if status != "success" or cfg.init_type in ("provisioned-concurrency", "snap-start"):
            line = f"INIT_REPORT Init Duration: {_fmt_ms(duration_ms)} ms\tPhase: {phase}\tStatus: {status}"
            if error_type:
                line += f"\tError Type: {error_type}"
            self._platform_line(line)
        outcome = InitOutcome(phase, status, error_type, round(duration_ms, 3), init_error_body)
        self.inits.append(outcome)
        if status == "success":
            self._ready = True
            include = phase == "init" and cfg.init_type == "on-demand"
            self._pending_init_ms = duration_ms if include else None
        return outcome

    # ---- invoke (4.2) ---------------------------------------------------------------------------------------
    def invoke(self, payload: Any = None, *, trace_header: Optional[str] = None,
               client_context: Optional[str] = None, cognito_identity: Optional[str] = None,
               content_type: str = "application/json", invoked_arn: Optional[str] = None,
               tenant_id: Optional[str] = None) -> InvokeResult:
        """Invoke the function once; returns when the invoke phase is over (environment frozen again).

        `latency_ms` is what the caller observed: from this call until the runtime's response arrived.
        """
        if isinstance(payload, (bytes, bytearray)):
            body = bytes(payload)
        elif isinstance(payload, str):
            body = payload.encode()
        else:
            body = json.dumps({} if payload is None else payload).encode()
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
            t_call_m, t_call_e = _now()
            request_id = str(uuid.uuid4())
            inv_start_m, inv_start_e = t_call_m, t_call_e
            failed = modes.before_invoke(self, request_id, t_call_m, t_call_e)   # SnapStart publish + restore
            if failed is not None:
                return failed
            if self.cfg.snapstart:
                inv_start_m, inv_start_e = _now()
            if not self._ready and self._next_phase == "init":
                outcome = self._init("init", time.monotonic() + self.cfg.init_timeout_s)
                if outcome.status == "error":
                    self._reset("failure")
                    return self._init_failed(request_id, t_call_m, t_call_e, outcome)
                if outcome.status == "timeout":
                    self._reset("timeout")
                inv_start_m, inv_start_e = _now()
            if not self._ready:
                outcome = self._init("invoke", inv_start_m + self.cfg.timeout_s)
                if outcome.status != "success":
                    self._reset("timeout" if outcome.status == "timeout" else "failure")
                    return self._init_failed(request_id, t_call_m, t_call_e, outcome)
            else:
                self._thaw()
            result = self._run_invoke(request_id, body, inv_start_m, inv_start_e, t_call_m, t_call_e,
                                      trace_header, client_context, cognito_identity, content_type,
                                      invoked_arn or self.cfg.function_arn, tenant)
            self.invocations.append(result)
            return result

    def _init_failed(self, request_id: str, t_call_m: float, t_call_e: float, outcome: InitOutcome) -> InvokeResult:
        error_type = outcome.error_type or "Sandbox.Timedout"
        raw = outcome.error_body
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        if not isinstance(body, dict):
            body = {"errorType": error_type,
                    "errorMessage": f"RequestId: {request_id} Error: init failed with {error_type} "
                                    f"(phase {outcome.phase}, status {outcome.status})"}
            raw = json.dumps(body).encode()
        result = InvokeResult(request_id=request_id, latency_ms=(time.monotonic() - t_call_m) * 1000,
                              outcome="timeout" if outcome.status == "timeout" else "init_error",
                              response=body, response_bytes=raw, error_type=error_type,
                              status=outcome.status, started_at=t_call_e)
        self.invocations.append(result)
        return result

    def _run_invoke(self, request_id: str, body: bytes, inv_start_m: float, inv_start_e: float, t_call_m: float,
                    t_call_e: float, trace_header, client_context, cognito_identity, content_type,
                    arn: str, tenant_id: Optional[str] = None) -> InvokeResult:
        cfg = self.cfg
        trace = xray.trace_for_invoke(cfg.tracing, trace_header)
        deadline_m = inv_start_m + cfg.timeout_s
        deadline_ms = int(round((inv_start_e + cfg.timeout_s) * 1000))
        inv = Invocation(request_id=request_id, payload=body, deadline_ms=deadline_ms, invoked_arn=arn,
                         trace_header=trace.runtime_header, client_context=client_context,
                         cognito_identity=cognito_identity, content_type=content_type, tenant_id=tenant_id)
        self._request_id = request_id
        self.hub.emit("platform.start", records.start(request_id=request_id, version=cfg.function_version,
                                                      tracing=trace.tracing, tenant_id=tenant_id))
        self._platform_line(f"START RequestId: {request_id} Version: {cfg.function_version}")
        event: Dict[str, Any] = {"eventType": "INVOKE", "deadlineMs": deadline_ms, "requestId": request_id,
                                 "invokedFunctionArn": arn}
        if trace.extension_value:
            event["tracing"] = {"type": records.TRACE_TYPE, "value": trace.extension_value}
        with self.control.cv:
            self.control.runtime.pending = inv
            invoke_exts: List[Extension] = [e for e in self.control.registered() if "INVOKE" in e.events]
            marks = {id(e): e.next_calls for e in invoke_exts}
            for e in invoke_exts:
                e.queue.append(dict(event))
            self.control.cv.notify_all()

        err = self._wait(lambda: inv.result is not None, deadline_m)
        have_result = inv.result is not None
        self._sample_memory()
        latency_ms = ((inv.response_end[0] if have_result else time.monotonic()) - t_call_m) * 1000
        runtime_done_emitted = False
        if err is None:
            err = self._wait(lambda: inv.runtime_next is not None, deadline_m)
        if err is None:
            # the function's output written before its /next precedes runtimeDone in the stream
            self._drain_output([self._runtime], min(deadline_m, time.monotonic() + 1.0))
            self._emit_runtime_done(inv, "success", None, inv.runtime_next, trace.tracing)
            runtime_done_emitted = True
            err = self._wait(lambda: all(e.next_calls > marks[id(e)] for e in invoke_exts), deadline_m)
        status, error_type = "success", None
        if err == "timeout":
            status = "timeout"
        elif err is not None:
            status, error_type = "error", err
        end_m, end_e = _now()
        if status == "success":
            last = max([inv.runtime_next] + [e.last_next for e in invoke_exts], key=lambda t: t[0])
            end_m, end_e = last
        elif not runtime_done_emitted:
            self._emit_runtime_done(inv, status, error_type, (end_m, end_e), trace.tracing)
        duration_ms = (end_m - inv_start_m) * 1000
        spans = []
        if status == "success" and invoke_exts:
            spans.append(records.span("extensionOverhead", inv.runtime_next[1],
                                      (end_m - inv.runtime_next[0]) * 1000))
        init_ms = self._pending_init_ms
        self._pending_init_ms = None
        billed = math.ceil(duration_ms + (init_ms if (init_ms is not None and cfg.bill_init) else 0.0))
        mem_mb = self._measure_memory_mb()
        if status == "success":
            self._drain_output(list(self._ext_procs.values()), time.monotonic() + 0.5)
            self.hub.freeze()
        extras = modes.report_extras(self)   # SnapStart: restoreDurationMs, billedRestoreDurationMs
        self.hub.emit("platform.report", records.report(
            request_id=request_id, status=status, error_type=error_type, duration_ms=duration_ms,
            billed_duration_ms=billed, memory_size_mb=cfg.memory_mb, max_memory_used_mb=mem_mb,
            init_duration_ms=init_ms, spans=spans, tracing=trace.tracing, tenant_id=tenant_id, **extras))
        if status == "timeout":
            self._platform_line(f"{records.iso(end_e)} {request_id} Task timed out after {cfg.timeout_s:.2f} seconds")
        elif status == "error":
            self._platform_line(f"RequestId: {request_id} Error: {self._error_description(error_type)}\n{error_type}")
        self._platform_line(f"END RequestId: {request_id}")
        line = (f"REPORT RequestId: {request_id}\tDuration: {_fmt_ms(duration_ms)} ms\tBilled Duration: {billed} ms\t"
                f"Memory Size: {cfg.memory_mb} MB\tMax Memory Used: {mem_mb} MB")
        if init_ms is not None:
            line += f"\tInit Duration: {_fmt_ms(init_ms)} ms"
        line += modes.report_line_suffix(extras)
        if status != "success":
            line += f"\tStatus: {status}"
        if error_type:
            line += f"\tError Type: {error_type}"
        self._platform_line(line)
        if trace.tracing is not None:
            self._platform_line(f"XRAY TraceId: {xray.parse_header(trace.tracing['value']).get('Root')}\t"
                                f"SegmentId: {trace.tracing.get('spanId', '')}\tSampled: true")

        if have_result:
            outcome = "success" if inv.result == "response" else "error"
            raw = inv.body
            caller_error = inv.error_type if inv.result == "error" else None
        elif status == "timeout":
            outcome, caller_error = "timeout", "Sandbox.Timedout"
            raw = json.dumps({"errorMessage": f"{records.iso(end_e)} {request_id} Task timed out after "
                                              f"{cfg.timeout_s:.2f} seconds"}).encode()
        else:
            outcome, caller_error = "crash", error_type
            raw = json.dumps({"errorType": error_type, "errorMessage": f"RequestId: {request_id} Error: "
                                                                        f"{self._error_description(error_type)}"}).encode()
        if status == "success":
            self._freeze()
        else:
            self._reset("timeout" if status == "timeout" else "failure")
        self._request_id = None
        try:
            response = json.loads(raw) if raw else None
        except ValueError:
            response = raw.decode("utf-8", errors="replace")
        return InvokeResult(request_id=request_id, latency_ms=latency_ms, outcome=outcome, response=response,
                            response_bytes=raw, error_type=caller_error, status=status,
                            duration_ms=round(duration_ms, 3), billed_duration_ms=billed, max_memory_used_mb=mem_mb,
                            init_duration_ms=round(init_ms, 3) if init_ms is not None else None,
                            started_at=t_call_e, trace_header=trace.runtime_header)

    def _emit_runtime_done(self, inv: Invocation, status: str, error_type: Optional[str], end, tracing) -> None:
        delivered = inv.delivered or end
        duration_ms = (end[0] - delivered[0]) * 1000
        kwargs: Dict[str, Any] = {}
        if status == "success" and inv.result == "response" and inv.response_start and inv.response_end:
            kwargs = dict(response_latency_ms=(inv.response_start[0] - delivered[0]) * 1000,
                          response_duration_ms=(inv.response_end[0] - inv.response_start[0]) * 1000,
                          runtime_overhead_ms=(end[0] - inv.response_end[0]) * 1000)
        produced = len(inv.body) if inv.result == "response" else 0
        self.hub.emit("platform.runtimeDone", records.runtime_done(
            request_id=inv.request_id, status=status, error_type=error_type, duration_ms=duration_ms,
            produced_bytes=produced, start_time=delivered[1] if kwargs else None, tracing=tracing,
            tenant_id=inv.tenant_id, **kwargs))

    def _error_description(self, error_type: Optional[str]) -> str:
        if error_type and error_type.startswith("Extension."):
            dead = [p for p in self._ext_procs.values() if p.returncode is not None and not p.killed_by_us]
            if dead:
                return f"Extension {dead[0].name} {_exit_text(dead[0].returncode)}"
            return "an extension failed"
        rt = self._runtime
        if rt is None or rt.returncode is None:
            return "Runtime exited without providing a reason"
        return f"Runtime {_exit_text(rt.returncode)}"

    # ---- shutdown and reset (4.3, 4.4) -------------------------------------------------------------------
    def _stop_environment(self, reason: str) -> ShutdownResult:
        cfg = self.cfg
        t0m, t0e = _now()
        self._stopping = True
        self._thaw()
        with self.control.cv:
            regs = self.control.registered()
            externals = [e for e in regs if e.external]
        runtime = self._runtime
        runtime_state = "NotRunning"
        ext_states: Dict[str, str] = {}
        killed: List[str] = []
        if not regs:
            if runtime is not None and runtime.alive():
                runtime.kill_tree()
                runtime.wait(1.0)
                runtime_state = "Killed"
                killed.append("runtime")
        else:
            budget_ms = cfg.shutdown_budget_ms if externals else cfg.internal_shutdown_budget_ms
            deadline_m = t0m + budget_ms / 1000
            deadline_ms = int(round((t0e + budget_ms / 1000) * 1000))
            if runtime is not None and runtime.alive():
                runtime.signal_group(signal.SIGTERM)
                if runtime.wait(min(cfg.runtime_shutdown_ms / 1000, max(0.0, deadline_m - time.monotonic()))):
                    runtime_state = "Exited"
                else:
                    runtime.kill_tree()
                    runtime.wait(1.0)
                    runtime_state = "Killed"
                    killed.append("runtime")
            # the runtime's output streams closed: capture their last lines, then deliver what is pending
            # before SHUTDOWN is released (RIE-LMI flushes here with a 1 s budget)
            budget = min(1.0, max(0.0, (deadline_m - time.monotonic()) / 2))
            flush_until = time.monotonic() + budget
            if runtime is not None:
                runtime.drain(budget / 2)
            self.hub.flush(max(0.0, flush_until - time.monotonic()))
            waiting: List[EnvProcess] = []
            event = {"eventType": "SHUTDOWN", "deadlineMs": deadline_ms, "shutdownReason": reason}
            with self.control.cv:
                for e in externals:
                    proc = self._ext_procs.get(e.name)
                    if "SHUTDOWN" in e.events and e.state not in TERMINAL_EXT_STATES:
                        e.queue.append(dict(event))
                        if proc is not None:
                            waiting.append(proc)
                self.control.cv.notify_all()
            for e in externals:
                proc = self._ext_procs.get(e.name)
                if proc is not None and proc not in waiting and proc.alive():
                    proc.kill_tree()
                    killed.append(e.name)
                    ext_states[e.name] = "ShutdownFailed"
            for proc in waiting:
                proc.wait(max(0.0, deadline_m - time.monotonic()))
            for proc in waiting:
                if proc.alive():
                    proc.kill_tree()
                    proc.wait(1.0)
                    killed.append(proc.name)
                    ext_states[proc.name] = "ShutdownFailed"
                else:
                    ext_states[proc.name] = "Exited" if proc.returncode == 0 else "ShutdownFailed"
        for name, proc in self._ext_procs.items():
            if name not in ext_states:
                if proc.alive():
                    proc.kill_tree()
                    killed.append(name)
                    ext_states[name] = "ShutdownFailed"
                elif not proc.killed_by_us:
                    ext_states[name] = "Exited" if proc.returncode == 0 else "ShutdownFailed"
        self.launcher.kill_all()
        for proc in self.launcher.processes:
            proc.drain(0.5)
        with self.control.cv:
            for e in self.control.extensions:
                if e.name in ext_states:
                    e.state = ext_states[e.name]
        return ShutdownResult(reason=reason, duration_ms=(time.monotonic() - t0m) * 1000, extensions=ext_states,
                              runtime=runtime_state, killed=killed)

    def _reset(self, reason: str) -> ShutdownResult:
        result = self._stop_environment(reason)
        self.resets.append(result)
        with self.control.cv:
            self.control.reset()
        self.hub.reset()
        self._runtime = None
        self._ext_procs = {}
        self.launcher.processes = []
        self._ready = False
        self._next_phase = "invoke"
        self._pending_init_ms = None
        self._max_mem_bytes = 0      # a new runtime process: its peak starts again
        if self.cgroups is not None:
            self.cgroups.reset_max_usage()
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
                result = self._stop_environment(reason)
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
        self._stopping = True
        if self.launcher is not None:
            try:
                self.launcher.kill_all()
            except Exception:  # noqa: BLE001 - cleanup must go on
                pass
        try:
            self.hub.stop()
        except Exception:  # noqa: BLE001
            pass
        if self.api is not None:
            self.api.stop()
            self.api = None
        if self.cgroups is not None:
            self.cgroups.remove()
        if self.layout is not None:
            self.layout.close()
