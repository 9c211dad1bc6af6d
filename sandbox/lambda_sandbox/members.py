"""The environment's processes: launching the runtime and the external extensions, capturing their output,
and turning an unexpected exit into the fatal error Lambda reports (lambda-apis.md 4.4).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

from . import console, envvars, modes
from .api import Control
from .config import SandboxConfig
from .isolation import Layout
from .logbook import LogBook
from .logs import LogFrame
from .processes import EnvProcess, Launcher
from .resources import MemoryMeter
from .runtime_setup import INVALID_ENTRYPOINT, RuntimePlan, runtime_command
from .telemetry import TelemetryHub

MAX_EXTENSIONS = 10


class Members:
    """The runtime process and the external extensions' processes of one environment."""

    def __init__(self, cfg: SandboxConfig, control: Control, hub: TelemetryHub, layout: Layout,
                 launcher: Launcher, log: LogBook, memory: MemoryMeter,
                 env_inputs: Callable[[], envvars.EnvInputs], host_python: str, memory_watchdog: bool,
                 plan: RuntimePlan) -> None:
        self.cfg = cfg
        self.control = control
        self.hub = hub
        self.layout = layout
        self.launcher = launcher
        self.log = log
        self.memory = memory
        self.env_inputs = env_inputs
        self.host_python = host_python
        self.memory_watchdog = memory_watchdog      # no memory cgroup, yet the limit is to be enforced
        self.plan = plan
        self.entrypoint_error: Optional[str] = None  # why a provided runtime's bootstrap could not start
        self.runtime: Optional[EnvProcess] = None
        self.extensions: Dict[str, EnvProcess] = {}
        self.stopping = False         # exits are expected (shutdown, reset): not failures
        self.closed = False

    # ---- output -----------------------------------------------------------------------------------------
    def _on_runtime_line(self, proc: EnvProcess, stream: str, text: str) -> None:
        self.log.add("function", text, stream)
        self.hub.emit_log("function", text, request_id=self.log.request_id)

    def _on_runtime_frame(self, proc: EnvProcess, frame: LogFrame) -> None:
        text = frame.message[:-1] if frame.message.endswith("\n") else frame.message
        self.log.add("function", text, "telemetry_fd", frame.time)
        self.hub.emit_log("function", text, time=frame.time, request_id=self.log.request_id, level=frame.level)

    def _on_extension_line(self, proc: EnvProcess, stream: str, text: str) -> None:
        self.log.add(f"extension:{proc.name}", text, stream)
        self.hub.emit_log("extension", text, extension_name=proc.name)

    def drain_output(self, procs: Sequence[Optional[EnvProcess]], deadline: float) -> bool:
        """Wait (bounded) until everything these processes wrote so far has been captured and emitted."""
        live = [p for p in procs if p is not None]
        while not all(p.output_drained() for p in live):
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.001)
        return True

    # ---- exits ------------------------------------------------------------------------------------------
    def _on_exit(self, proc: EnvProcess) -> None:
        with self.control.cv:
            if not (self.stopping or proc.killed_by_us):
                fatal = self._fatal_for_exit(proc)
                if fatal is not None:
                    self.control.set_fatal(fatal)
            self.control.cv.notify_all()

    def _fatal_for_exit(self, proc: EnvProcess) -> Optional[str]:
        """The error type of an unexpected exit (called under control.cv)."""
        if proc.kind == "runtime":
            if proc is not self.runtime:
                return None
            return "Runtime.OutOfMemory" if self.memory.new_oom_kill() else "Runtime.ExitError"
        ext = next((e for e in self.control.extensions if e.external and e.name == proc.name), None)
        if ext is not None and ext.state == "Started" and proc.returncode in (126, 127):
            ext.state = "LaunchError"
            ext.error_type = "UnknownError"
            return "Extension.LaunchError"
        if ext is not None and ext.state in ("InitError", "ExitError"):
            return f"Extension.{ext.state}"
        return "Extension.Crash"

    def error_description(self, error_type: Optional[str]) -> str:
        """The `Error:` text of a failed invoke: which process ended and how."""
        if error_type and error_type.startswith("Extension."):
            dead = [p for p in self.extensions.values() if p.returncode is not None and not p.killed_by_us]
            if dead:
                return f"Extension {dead[0].name} {console.exit_text(dead[0].returncode)}"
            return "an extension failed"
        if error_type == INVALID_ENTRYPOINT and self.entrypoint_error:
            return self.entrypoint_error
        rt = self.runtime
        if rt is None or rt.returncode is None:
            return "Runtime exited without providing a reason"
        return f"Runtime {console.exit_text(rt.returncode)}"

    # ---- environment variables -----------------------------------------------------------------------------
    def runtime_env(self, log_fd: int) -> Dict[str, str]:
        """The runtime's variables (envvars.py), with what the platform mode changes (modes.py)."""
        inputs = self.env_inputs()
        return modes.runtime_env(inputs, envvars.runtime_env(inputs, log_fd))

    def extension_env(self) -> Dict[str, str]:
        """Every external extension's variables (envvars.py), with what the platform mode changes."""
        inputs = self.env_inputs()
        return modes.extension_env(inputs, envvars.extension_env(inputs))

    # ---- launching --------------------------------------------------------------------------------------
    def launch_runtime(self) -> Optional[EnvProcess]:
        """Start the runtime process (runtime_setup.runtime_command); None when it has no entry point."""
        with self.control.cv:
            self.control.runtime.state = "Started"
        argv, problem = runtime_command(self.plan, self.layout, self.cfg, self.host_python)
        if argv is None:
            self._invalid_entrypoint(problem or "no entry point")
            return None
        rfd, wfd = os.pipe()
        try:
            env = self.runtime_env(wfd)
            proc = self.launcher.launch("runtime", "runtime", argv, env, self.layout.task,
                                        self._on_runtime_line, self._on_exit, pass_fds=(wfd,),
                                        on_frame_fd=rfd, on_frame=self._on_runtime_frame)
        except BaseException:
            os.close(rfd)
            raise
        finally:
            os.close(wfd)
        self.runtime = proc
        self.memory.watchdog_kill = False
        if self.memory_watchdog:
            self.memory.start_watchdog(proc, lambda: self.closed)
        return proc

    def _invalid_entrypoint(self, message: str) -> None:
        """A provided runtime without a usable bootstrap: Lambda's Runtime.InvalidEntrypoint init error."""
        self.entrypoint_error = message
        with self.control.cv:
            self.control.runtime.init_error_body = json.dumps({"errorType": INVALID_ENTRYPOINT,
                                                               "errorMessage": message}).encode()
            self.control.set_fatal(INVALID_ENTRYPOINT)

    def launch_extensions(self, files: List[Path]) -> None:
        """Start every extension file (all in parallel, in name order); a non-executable one is a LaunchError."""
        env = self.extension_env()
        cwd = self.layout.opt if self.layout.mode == "namespace" else str(self.layout.opt_host)
        for f in files:
            with self.control.cv:
                ext = self.control.add_external(f.name)
            if not os.access(f, os.X_OK):
                with self.control.cv:
                    ext.state = "LaunchError"
                    ext.error_type = "PermissionDenied"
                    self.control.set_fatal("Extension.LaunchError")
                continue
            inner = f"{self.layout.opt}/extensions/{f.name}"
            self.extensions[f.name] = self.launcher.launch(f.name, "extension", [inner], dict(env), cwd,
                                                           self._on_extension_line, self._on_exit)

    def forget(self) -> None:
        """After a reset: the next init starts new processes."""
        self.runtime = None
        self.entrypoint_error = None
        self.extensions = {}
        self.launcher.processes = []
