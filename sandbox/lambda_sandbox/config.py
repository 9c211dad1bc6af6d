"""Public data types of the sandbox: its configuration and the results it hands back."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

from . import runtimes

PathLike = Union[str, "os.PathLike[str]"]  # noqa: F821 - only a type alias

INIT_TYPES = ("on-demand", "provisioned-concurrency")
ISOLATIONS = ("auto", "namespace", "dirs")
FREEZES = ("auto", "cgroup", "signal", "none")
TRACINGS = (None, "Active", "PassThrough")
LOG_FORMATS = ("Text", "JSON")
_FUNCTION_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class ConfigError(ValueError):
    """A SandboxConfig value is invalid; the message names the field and the value."""


@dataclass
class SandboxConfig:
    """Everything that describes one execution environment (see docs/ARCHITECTURE.md)."""

    code_dir: Any
    handler: str
    layers: Sequence[Any] = ()
    memory_mb: int = 128
    timeout_s: float = 3.0
    env: Mapping[str, str] = field(default_factory=dict)
    function_name: str = "my-function"
    function_version: str = "$LATEST"
    region: str = "us-east-1"
    account_id: str = "123456789012"
    tracing: Optional[str] = None
    init_type: str = "on-demand"
    log_format: str = "Text"
    isolation: str = "auto"
    freeze: str = "auto"
    cpu_quota: bool = False
    enforce_memory: bool = False
    init_timeout_s: float = 10.0
    api_port: Optional[int] = None          # None: 9001 in namespace mode when free, else ephemeral
    ephemeral_storage_mb: int = 512         # size of the private /tmp (namespace mode), 512..10240
    otlp_receiver: Any = None
    # Knobs for the points lambda-apis.md marks as uncertain (section 7).
    shutdown_budget_ms: int = 2000          # with external extensions (4.3)
    internal_shutdown_budget_ms: int = 500  # with internal extensions only (4.3)
    runtime_shutdown_ms: int = 300          # the runtime's share of the window (DOC value; RAPID would give 600)
    bill_init: bool = True                  # since Aug 2025 the init of on-demand functions is billed (4.7)
    runtime_version: Optional[str] = None   # INIT_START's Runtime Version; None: the runtime's family:version.v0
    keep_paths: Sequence[Any] = ()          # host paths bound read-only at their own path (namespace mode)
    run_root: Optional[Any] = None          # parent of per-run directories (default ~/.cache/lambda-sandbox/runs)
    keep_run_dir: bool = False
    # the Lambda runtime (runtimes.py); None: the Python runtime of the sandbox's own interpreter
    runtime: Optional[str] = None
    # whether the host's Python/Node executables are visible (namespace mode); None: only for Python runtimes
    host_interpreters: Optional[bool] = None

    def __post_init__(self) -> None:
        self.runtime = self.runtime or runtimes.default_runtime()
        if runtimes.lookup(self.runtime) is None:
            raise ConfigError(f"runtime={self.runtime!r} is not supported: use one of "
                              f"{', '.join(runtimes.SUPPORTED_RUNTIMES)}")
        self.runtime_version = self.runtime_version or self.runtime_spec.default_runtime_version
        if self.host_interpreters is not None and not isinstance(self.host_interpreters, bool):
            raise ConfigError(f"host_interpreters={self.host_interpreters!r} must be True, False or None (auto)")
        self.layers = list(self.layers or ())
        self.env = dict(self.env or {})
        if self.memory_mb is None or int(self.memory_mb) < 128 or int(self.memory_mb) > 10240:
            raise ConfigError(f"memory_mb={self.memory_mb!r} is out of range: use 128..10240")
        self.memory_mb = int(self.memory_mb)
        if not self.timeout_s or float(self.timeout_s) <= 0 or float(self.timeout_s) > 900:
            raise ConfigError(f"timeout_s={self.timeout_s!r} is out of range: use a value in (0, 900]")
        self.timeout_s = float(self.timeout_s)
        if float(self.init_timeout_s) <= 0:
            raise ConfigError(f"init_timeout_s={self.init_timeout_s!r} must be positive")
        self.init_timeout_s = float(self.init_timeout_s)
        if not isinstance(self.ephemeral_storage_mb, int) or not 1 <= self.ephemeral_storage_mb <= 10240:
            raise ConfigError(f"ephemeral_storage_mb={self.ephemeral_storage_mb!r} is out of range: use 1..10240 "
                              "(Lambda: 512..10240)")
        if self.api_port is not None and (not isinstance(self.api_port, int) or not 0 <= self.api_port <= 65535):
            raise ConfigError(f"api_port={self.api_port!r} is out of range: use 0..65535 (0 = any free port)")
        for name, allowed in (("init_type", INIT_TYPES), ("isolation", ISOLATIONS), ("freeze", FREEZES),
                              ("tracing", TRACINGS), ("log_format", LOG_FORMATS)):
            value = getattr(self, name)
            if value not in allowed:
                raise ConfigError(f"{name}={value!r} is not one of {list(allowed)}")
        if not self.handler or ("." not in self.handler and self.runtime_spec.family != "provided"):
            raise ConfigError(f"handler={self.handler!r} must look like 'module.function'")
        if not _FUNCTION_NAME.match(self.function_name or ""):
            raise ConfigError(f"function_name={self.function_name!r} must match [A-Za-z0-9_-]{{1,64}}")
        for key, value in self.env.items():
            if not isinstance(key, str) or not isinstance(value, str):
                raise ConfigError(f"env[{key!r}]={value!r}: keys and values must be strings")

    @property
    def runtime_spec(self) -> runtimes.RuntimeSpec:
        spec = runtimes.lookup(self.runtime or runtimes.default_runtime())
        assert spec is not None   # checked in __post_init__
        return spec

    @property
    def hide_host_interpreters(self) -> bool:
        """The host's Python/Node executables are hidden (namespace mode): by default on non-Python runtimes."""
        if self.host_interpreters is None:
            return self.runtime_spec.hides_host_interpreters_by_default
        return not self.host_interpreters

    @property
    def function_arn(self) -> str:
        return f"arn:aws:lambda:{self.region}:{self.account_id}:function:{self.function_name}"


@dataclass
class LogLine:
    """One captured line: source is "function", "extension:<name>" or "platform"."""

    source: str
    time: float
    text: str
    stream: str = "stdout"
    request_id: Optional[str] = None


@dataclass
class InvokeResult:
    """What the invoking client observed, plus the platform's view of the invoke."""

    request_id: str
    latency_ms: float                 # caller-observed: invoke() call until the response (or error) is known
    outcome: str                      # success | error | timeout | crash | init_error
    response: Any = None              # parsed JSON when possible, else the raw text
    response_bytes: bytes = b""
    error_type: Optional[str] = None
    status: str = "success"           # platform status of the invoke (runtimeDone/report)
    duration_ms: Optional[float] = None
    billed_duration_ms: Optional[int] = None
    max_memory_used_mb: Optional[int] = None
    init_duration_ms: Optional[float] = None
    started_at: float = 0.0           # epoch seconds at the caller
    trace_header: Optional[str] = None

    def to_dict(self) -> Dict[str, Any]:
        return {
            "requestId": self.request_id, "latencyMs": round(self.latency_ms, 3), "outcome": self.outcome,
            "response": self.response, "errorType": self.error_type, "status": self.status,
            "durationMs": self.duration_ms, "billedDurationMs": self.billed_duration_ms,
            "maxMemoryUsedMB": self.max_memory_used_mb, "initDurationMs": self.init_duration_ms,
            "startedAt": self.started_at, "traceHeader": self.trace_header,
        }


@dataclass
class ShutdownResult:
    """Outcome of a shutdown (spindown) or of a reset's shutdown part."""

    reason: str
    duration_ms: float
    extensions: Dict[str, str] = field(default_factory=dict)   # name -> Exited | ShutdownFailed | ...
    runtime: str = "Exited"                                     # Exited | Killed | NotRunning
    killed: List[str] = field(default_factory=list)

    def to_dict(self) -> Dict[str, Any]:
        return {"reason": self.reason, "durationMs": round(self.duration_ms, 3),
                "extensions": dict(self.extensions), "runtime": self.runtime, "killed": list(self.killed)}
