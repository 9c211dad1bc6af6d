"""The environment variables of the runtime and of extensions, built as RAPID builds them (environment.md 3).

Pure: everything comes in as an `EnvInputs` record. Extensions get customer ∪ platform variables minus every
`_`-prefixed name and AWS_XRAY_CONTEXT_MISSING; the runtime additionally gets the runtime-only ones
(`_HANDLER`, `LAMBDA_*`, log group/stream, X-Ray, the telemetry log fd). PATH and LD_LIBRARY_PATH follow the
runtime (provided.al2 has no /var/lang). What a runtime's own bootstrap adds comes on top: for Python the
sandbox adds it here (AWS_EXECUTION_ENV, PYTHONPATH: it starts awslambdaric directly); the Node.js bootstrap
in /var/runtime sets its own (runtimes.node_bootstrap_script); a provided runtime's bootstrap adds nothing.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Dict, Mapping, Optional

from .config import SandboxConfig

XRAY_DAEMON = "169.254.100.1"


@dataclass(frozen=True)
class EnvInputs:
    """What the builders need: the configuration and where things are as the processes see them."""

    cfg: SandboxConfig
    mode: str                       # isolation: "namespace" | "dirs"
    opt: str
    task: str
    runtime_dir: str
    tmp: str
    api_address: str
    instance_id: str
    host_bin_dir: Optional[str]     # dirs mode: the directory of the runtime's host interpreter (first on PATH)
    host_ld_library_path: Optional[str] = None
    extra: Mapping[str, str] = field(default_factory=dict)   # the sandbox's own additions (OTLP endpoint)
    python_version: Optional[str] = None    # Python runtimes: the major.minor that runs (default: this one)
    credentials_token: Optional[str] = None  # SnapStart: the credentials endpoint's token (modes.py)


def platform_env(i: EnvInputs) -> Dict[str, str]:
    """Customer ∪ platform variables: what both the runtime and extensions see."""
    cfg = i.cfg
    spec = cfg.runtime_spec
    if i.mode == "namespace":
        path = list(spec.path)           # environment.md 3.1; /var/lang/bin holds the runtime's interpreter
    else:
        path = ([i.host_bin_dir] if i.host_bin_dir else []) + ["/usr/local/bin", "/usr/bin", "/bin", f"{i.opt}/bin"]
    env = dict(cfg.env)
    env.update(i.extra)
    env.update({
        "PATH": ":".join(path),
        "LANG": "en_US.UTF-8",
        "TZ": ":UTC",
        "AWS_REGION": cfg.region,
        "AWS_DEFAULT_REGION": cfg.region,
        "AWS_LAMBDA_FUNCTION_NAME": cfg.function_name,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(cfg.memory_mb),
        "AWS_LAMBDA_FUNCTION_VERSION": cfg.function_version,
        "AWS_LAMBDA_RUNTIME_API": i.api_address,
        "AWS_LAMBDA_INITIALIZATION_TYPE": cfg.init_type,
    })
    if "LD_LIBRARY_PATH" not in cfg.env:
        if i.mode == "namespace":
            env["LD_LIBRARY_PATH"] = spec.ld_library_path
        elif i.host_ld_library_path:
            env["LD_LIBRARY_PATH"] = i.host_ld_library_path
    if i.mode == "dirs":
        env.setdefault("TMPDIR", i.tmp)
    return env


def extension_env(i: EnvInputs) -> Dict[str, str]:
    """What every external extension gets (RAPID's AgentExecEnv)."""
    return {k: v for k, v in platform_env(i).items() if not k.startswith("_") and k != "AWS_XRAY_CONTEXT_MISSING"}


def runtime_env(i: EnvInputs, log_fd: int) -> Dict[str, str]:
    """What the runtime process gets (RAPID's RuntimeExecEnv), before its own bootstrap adds anything."""
    cfg = i.cfg
    env = platform_env(i)
    env.update({
        "_HANDLER": cfg.handler,
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{cfg.function_name}",
        "AWS_LAMBDA_LOG_STREAM_NAME": i.instance_id,
        "LAMBDA_TASK_ROOT": i.task,
        "LAMBDA_RUNTIME_DIR": i.runtime_dir,
        "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
        "AWS_XRAY_DAEMON_ADDRESS": f"{XRAY_DAEMON}:2000",
        "_AWS_XRAY_DAEMON_ADDRESS": XRAY_DAEMON,
        "_AWS_XRAY_DAEMON_PORT": "2000",
        "_LAMBDA_TELEMETRY_LOG_FD": str(log_fd),
    })
    if cfg.log_format == "JSON":
        env["AWS_LAMBDA_LOG_FORMAT"] = "JSON"
    if cfg.runtime_spec.family == "python":
        env.update(python_bootstrap_env(i))
    return env


def python_bootstrap_env(i: EnvInputs) -> Dict[str, str]:
    """What the Python bootstrap adds: AWS_EXECUTION_ENV, and PYTHONPATH with the task root, the layers'
    python paths and the runtime dir (the site-packages path of the interpreter that actually runs)."""
    py = f"python{i.python_version or f'{sys.version_info.major}.{sys.version_info.minor}'}"
    paths = [p for p in i.cfg.env.get("PYTHONPATH", "").split(":") if p]
    paths += [i.task, f"{i.opt}/python/lib/{py}/site-packages", f"{i.opt}/python", i.runtime_dir]
    return {"AWS_EXECUTION_ENV": i.cfg.runtime_spec.execution_env or "", "PYTHONPATH": ":".join(paths)}
