"""Public data types of the sandbox: its configuration and the results it hands back."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

from . import runtimes

PathLike = Union[str, "os.PathLike[str]"]  # noqa: F821 - only a type alias

INIT_TYPES = ("on-demand", "provisioned-concurrency", "snap-start", "lambda-managed-instances")
ISOLATIONS = ("auto", "namespace", "dirs")
NETWORKS = ("host", "private")
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
    # "host": the machine's network (the Runtime API on 127.0.0.1); "private": the environment's own network
    # namespace with the Runtime API on Lambda's 169.254.100.1:9001 (docs/sandbox-fidelity.md, Network)
    network: str = "host"
    forward_ports: Sequence[int] = ()       # private network: this machine's loopback ports the environment reaches
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
    # ---- platform modes (platform-2025.md; applied by _check_modes, run by lambda_sandbox.modes) ----
    mode: str = "default"                   # "default" | "managed-instances" (Lambda Managed Instances)
    concurrency: int = 1                    # LMI: AWS_LAMBDA_MAX_CONCURRENCY = concurrent invokes, 1..64
    snapstart: bool = False                 # init at "publish", then restore before the first invoke
    tenant_id: Optional[str] = None         # tenant isolation: the one tenant this environment serves
    lmi_strict_schema: bool = True          # LMI: refuse Telemetry schema versions other than 2025-01-29
    lmi_error_status: str = "error"         # LMI report status of a handled /error ("error" as RIE-LMI, or "success")
    logs_api: str = "enabled"               # "enabled" | "stub" (the RIE's 202 Logs.NotSupported)
    restore_timeout_s: float = 10.0         # SnapStart: restore + after-restore hooks limit

    def __post_init__(self) -> None:
        self.runtime = self.runtime or runtimes.default_runtime(_mode_runtimes(self))
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
        for port in self.forward_ports:
            if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
                raise ConfigError(f"forward_ports={list(self.forward_ports)!r} has {port!r}: use ports 1..65535")
        if self.forward_ports and self.network != "private":
            raise ConfigError(f"forward_ports={list(self.forward_ports)!r} needs network='private' (with the "
                              "machine's network every loopback port is reachable already)")
        if self.network == "private" and self.isolation == "dirs":
            raise ConfigError("network='private' needs namespace isolation, not isolation='dirs'")
        for name, allowed in (("init_type", INIT_TYPES), ("isolation", ISOLATIONS), ("network", NETWORKS),
                              ("freeze", FREEZES),
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
        _check_modes(self)

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


MODES = ("default", "managed-instances")
MAX_CONCURRENCY = 64
LMI_INIT_TYPE, SNAPSTART_INIT_TYPE = "lambda-managed-instances", "snap-start"
DEFAULT_INIT_TIMEOUT_S = 10.0   # the on-demand limit (SandboxConfig.init_timeout_s's default)


def _long_init_limit(timeout_s: float) -> float:
    """LMI and SnapStart's init limit: max(130 s, the function timeout), at most 15 min (platform-2025.md 1.8, 4.2)."""
    return min(900.0, max(130.0, timeout_s))


def check_tenant_id(value: Any, name: str = "tenant_id") -> str:
    """A tenant id: 1..256 printable characters (Lambda's exact pattern is unverified: this is permissive)."""
    if not isinstance(value, str) or not 1 <= len(value) <= 256 or not value.isprintable():
        raise ConfigError(f"{name}={value!r} is invalid: use 1..256 printable characters")
    return value


def _modes_of(cfg: SandboxConfig) -> List[str]:
    """The platform modes asked for, by field or by init_type ("managed-instances", "snapstart")."""
    modes = []
    if cfg.mode == "managed-instances" or cfg.init_type == LMI_INIT_TYPE:
        modes.append("managed-instances")
    if cfg.snapstart or cfg.init_type == SNAPSTART_INIT_TYPE:
        modes.append("snapstart")
    return modes


def _mode_runtimes(cfg: SandboxConfig) -> Optional[Sequence[str]]:
    """The runtimes the requested mode allows (for the default runtime), None for a default function."""
    for mode in _modes_of(cfg):
        return runtimes.mode_runtimes(mode)
    return None


def _check_mode_runtime(cfg: SandboxConfig) -> None:
    """A runtime Lambda (or the sandbox) cannot run in the requested mode is a clear error."""
    for mode in _modes_of(cfg):
        problem = runtimes.mode_problem(mode, cfg.runtime)
        if problem is not None:
            flag = "mode='managed-instances'" if mode == "managed-instances" else "snapstart=True"
            raise ConfigError(f"runtime={cfg.runtime!r} cannot be combined with {flag}: {problem}")


def _check_modes(cfg: SandboxConfig) -> None:
    """Validate the platform-mode fields and apply what each mode implies (idempotent)."""
    if cfg.init_type == LMI_INIT_TYPE:
        cfg.mode = "managed-instances"
    if cfg.init_type == SNAPSTART_INIT_TYPE:
        cfg.snapstart = True
    if cfg.mode not in MODES:
        raise ConfigError(f"mode={cfg.mode!r} is not one of {list(MODES)}")
    if isinstance(cfg.concurrency, bool) or not isinstance(cfg.concurrency, int) \
            or not 1 <= cfg.concurrency <= MAX_CONCURRENCY:
        raise ConfigError(f"concurrency={cfg.concurrency!r} is out of range: use 1..{MAX_CONCURRENCY}")
    if cfg.lmi_error_status not in ("error", "success"):
        raise ConfigError(f"lmi_error_status={cfg.lmi_error_status!r} is not one of ['error', 'success']")
    if cfg.logs_api not in ("enabled", "stub"):
        raise ConfigError(f"logs_api={cfg.logs_api!r} is not one of ['enabled', 'stub']")
    if not cfg.restore_timeout_s or float(cfg.restore_timeout_s) <= 0:
        raise ConfigError(f"restore_timeout_s={cfg.restore_timeout_s!r} must be positive")
    if cfg.tenant_id is not None:
        check_tenant_id(cfg.tenant_id)
    lmi = cfg.mode == "managed-instances"
    if cfg.concurrency != 1 and not lmi:
        raise ConfigError(f"concurrency={cfg.concurrency!r} needs mode='managed-instances' "
                          "(a default function runs one invoke at a time)")
    if lmi and cfg.snapstart:
        raise ConfigError("snapstart=True is not available with mode='managed-instances'")
    if cfg.init_type == "provisioned-concurrency" and (lmi or cfg.snapstart or cfg.tenant_id):
        raise ConfigError("init_type='provisioned-concurrency' cannot be combined with mode='managed-instances', "
                          "snapstart or tenant_id")
    if cfg.snapstart and cfg.tenant_id is not None:
        raise ConfigError(f"tenant_id={cfg.tenant_id!r} cannot be combined with snapstart=True (tenant "
                          "isolation does not support SnapStart)")
    _check_mode_runtime(cfg)
    if lmi:
        cfg.init_type = LMI_INIT_TYPE
        cfg.log_format = "JSON"          # forced on LMI (platform-2025.md 1.10)
        cfg.freeze = "none"              # never frozen (1.7)
        if cfg.function_version == "$LATEST":
            cfg.function_version = "$LATEST.PUBLISHED"
        if cfg.runtime_shutdown_ms == 300:
            cfg.runtime_shutdown_ms = 600    # RIE-LMI: SIGKILL the runtime 600 ms after SIGTERM (1.11)
        if cfg.init_timeout_s == DEFAULT_INIT_TIMEOUT_S:   # an explicit value is kept (tests)
            cfg.init_timeout_s = _long_init_limit(cfg.timeout_s)
    if cfg.snapstart:
        cfg.init_type = SNAPSTART_INIT_TYPE
        if cfg.function_version == "$LATEST":
            cfg.function_version = "1"       # SnapStart runs published versions only
        if cfg.init_timeout_s == DEFAULT_INIT_TIMEOUT_S:
            cfg.init_timeout_s = _long_init_limit(cfg.timeout_s)
        cfg.restore_timeout_s = float(cfg.restore_timeout_s)


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
