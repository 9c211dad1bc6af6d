"""The hooks the environment's collaborators call for the platform modes (platform-2025.md): one place, each a
no-op for a default function. The modes themselves live in managed_instances.py, snapstart.py, tenancy.py and
logs_api.py (with telemetry.py/api.py). A mode's per-environment state is one `ModeState` record.

Hook                        called from                                     what
configure(cfg, control,hub) Sandbox.__init__ (returns the ModeState)        hub/control settings of the mode
runtime_env(i, env)         Members.runtime_env                             LMI concurrency; SnapStart credentials
extension_env(i, env)       Members.extension_env                           SnapStart credentials
phase_after_reset(cfg)      Sandbox.reset                                   LMI, SnapStart: a new environment's init
lmi_invoke(sb, ...)         Sandbox.invoke, first (a result on LMI)         concurrent LMI invokes
invoke_tenant(sb, t)        Sandbox.invoke, under the lock                  pin the environment's tenant
before_invoke(sb, ...)      Sandbox.invoke, before init/thaw                SnapStart publish + restore
runtime_ready(ctx, ...)     init_phase.start_processes, runtime ready       LMI: initRuntimeDone early
init_runtime_done(ctx, ...) init_phase.emit_init_end                        LMI ordering / timeout rule
init_report_error_type(...) init_phase.emit_init_end                        LMI: Sandbox.Timedout
prints_init_report(cfg)     init_phase.emit_init_end                        INIT_REPORT line (SnapStart)
report_extras(ctx)          invoke_cycle.emit_invoke_report                 SnapStart restore metrics
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Dict, Optional

from . import managed_instances, records, snapstart, tenancy

if TYPE_CHECKING:   # pragma: no cover - types only
    from .api import Control
    from .config import SandboxConfig
    from .envvars import EnvInputs
    from .telemetry import TelemetryHub

__all__ = ["ModeState", "configure"]


@dataclass
class ModeState:
    """What the modes remember about one Sandbox (across its environments)."""

    tenant: Optional[str] = None                        # the tenant this Sandbox serves (pinned by its first)
    pending_restore: Optional[Dict[str, Any]] = None    # SnapStart: metrics for the next platform.report
    lmi_runtime_done_sent: bool = False                 # LMI: initRuntimeDone already emitted in this init
    lmi_end_reason: Dict[int, str] = field(default_factory=dict)   # LMI: why a generation ended
    lmi_watched_generation: Optional[int] = None        # LMI: the generation the fatal-error watcher watches


def is_lmi(cfg: SandboxConfig) -> bool:
    return cfg.mode == "managed-instances"


def configure(cfg: SandboxConfig, control: Control, hub: TelemetryHub) -> ModeState:
    state = ModeState()
    control.logs_api = cfg.logs_api
    if cfg.tenant_id is not None:
        state.tenant = cfg.tenant_id
        hub.tenant_id = cfg.tenant_id
    if is_lmi(cfg):
        managed_instances.setup(cfg, control, hub)
    if cfg.snapstart:
        snapstart.setup(cfg, control)
    return state


def runtime_env(i: EnvInputs, env: Dict[str, str]) -> Dict[str, str]:
    if is_lmi(i.cfg):
        managed_instances.adjust_runtime_env(i.cfg, env)
    if i.cfg.snapstart:
        snapstart.adjust_env(env, i.api_address, i.credentials_token, runtime=True)
    return env


def extension_env(i: EnvInputs, env: Dict[str, str]) -> Dict[str, str]:
    if i.cfg.snapstart:
        snapstart.adjust_env(env, i.api_address, i.credentials_token, runtime=False)
    return env


def phase_after_reset(cfg: SandboxConfig) -> str:
    """The phase of the init after a reset: "invoke" (the suppressed init retried inside an invoke), or "init"
    on LMI and SnapStart, where a failed environment is replaced by a new one (restored from a new snapshot)."""
    return "init" if is_lmi(cfg) or cfg.snapstart else "invoke"


def lmi_invoke(sb: Any, body: bytes, **kwargs: Any) -> Optional[Any]:
    """On LMI: the whole invoke (concurrent); None for the other modes."""
    if not is_lmi(sb.cfg):
        return None
    return managed_instances.invoke(sb, body, **kwargs)


def invoke_tenant(sb: Any, tenant_id: Optional[str]) -> Optional[str]:
    return tenancy.pin(sb.mode_state, sb.cfg, sb.hub, tenant_id)


def before_invoke(sb: Any, request_id: str, call: Any) -> Optional[Any]:
    """SnapStart: publish if needed, then restore (None to go on with the invoke, else its failed result)."""
    if sb.cfg.snapstart:
        return snapstart.before_invoke(sb, request_id, call)
    return None


def runtime_ready(ctx: Any, phase: str, err: Optional[str]) -> None:
    if is_lmi(ctx.cfg):
        managed_instances.on_runtime_ready(ctx, phase, err)


def init_runtime_done(ctx: Any, phase: str, status: str, error_type: Optional[str]) -> None:
    """Emit initRuntimeDone at the end of init (default), or not (LMI: already sent, or an init timeout)."""
    if is_lmi(ctx.cfg) and not managed_instances.init_runtime_done_pending(ctx.modes, status):
        return
    ctx.hub.emit("platform.initRuntimeDone", records.init_runtime_done(
        initialization_type=ctx.cfg.init_type, phase=phase, status=status, error_type=error_type))


def init_report_error_type(cfg: SandboxConfig, status: str, error_type: Optional[str]) -> Optional[str]:
    if is_lmi(cfg):
        return managed_instances.init_report_error_type(status, error_type)
    return error_type


def prints_init_report(cfg: SandboxConfig, status: str) -> bool:
    """Whether init ends with an INIT_REPORT line: a failed init, provisioned concurrency and SnapStart."""
    return status != "success" or cfg.init_type in ("provisioned-concurrency", "snap-start")


def report_extras(ctx: Any) -> Dict[str, Any]:
    """Extra platform.report fields for this invoke (SnapStart: restore metrics after a restore)."""
    if ctx.cfg.snapstart:
        return snapstart.pop_report_metrics(ctx.modes)
    return {}


def report_line_suffix(extras: Dict[str, Any]) -> str:
    return snapstart.report_line_suffix(extras)
