"""The hooks environment.py calls for the platform modes (platform-2025.md): one place, each a no-op for a
default function. The modes themselves live in managed_instances.py, snapstart.py, tenancy.py and
logs_api.py (with telemetry.py/api.py).

Hook                      where in Sandbox                              what
configure(sb)             end of __init__                               hub/control settings of the mode
runtime_env(sb, env)      end of _runtime_env                           LMI concurrency; SnapStart credentials
extension_env(sb, env)    end of _extension_env                         SnapStart credentials
lmi_invoke(sb, ...)       start of invoke (returns a result on LMI)     concurrent LMI invokes
before_invoke(sb, ...)    invoke, under the lock, before init/thaw      SnapStart publish + restore
runtime_ready(sb, ...)    _init, after the runtime-ready gate           LMI: initRuntimeDone early
init_runtime_done(sb,...) _init, instead of emitting initRuntimeDone     LMI ordering / timeout rule
invoke_tenant(sb, t)      invoke, before anything else                  pin the environment's tenant
report_extras(sb)         _run_invoke, before platform.report           SnapStart restore metrics
"""

from __future__ import annotations

from typing import Any, Dict, Optional

from . import managed_instances, records, snapstart, tenancy


def is_lmi(sb: Any) -> bool:
    return sb.cfg.mode == "managed-instances"


def configure(sb: Any) -> None:
    cfg = sb.cfg
    sb.control.logs_api = cfg.logs_api
    sb.tenant = None
    sb.pending_restore = None
    if cfg.tenant_id is not None:
        sb.tenant = cfg.tenant_id
        sb.hub.tenant_id = cfg.tenant_id
    if is_lmi(sb):
        managed_instances.setup(sb)
    if cfg.snapstart:
        snapstart.setup(sb)


def runtime_env(sb: Any, env: Dict[str, str]) -> Dict[str, str]:
    if is_lmi(sb):
        managed_instances.adjust_runtime_env(sb, env)
    if sb.cfg.snapstart:
        snapstart.adjust_env(sb, env, runtime=True)
    return env


def extension_env(sb: Any, env: Dict[str, str]) -> Dict[str, str]:
    if sb.cfg.snapstart:
        snapstart.adjust_env(sb, env, runtime=False)
    return env


def lmi_invoke(sb: Any, body: bytes, **kwargs: Any) -> Optional[Any]:
    """On LMI: the whole invoke (concurrent); None for the other modes."""
    if not is_lmi(sb):
        return None
    return managed_instances.invoke(sb, body, **kwargs)


def invoke_tenant(sb: Any, tenant_id: Optional[str]) -> Optional[str]:
    return tenancy.pin(sb, tenant_id)


def before_invoke(sb: Any, request_id: str, t_call_m: float, t_call_e: float) -> Optional[Any]:
    if sb.cfg.snapstart:
        return snapstart.before_invoke(sb, request_id, t_call_m, t_call_e)
    return None


def runtime_ready(sb: Any, phase: str, err: Optional[str]) -> None:
    if is_lmi(sb):
        managed_instances.on_runtime_ready(sb, phase, err)


def init_runtime_done(sb: Any, phase: str, status: str, error_type: Optional[str]) -> None:
    """Emit initRuntimeDone at the end of init (default), or not (LMI: already sent, or an init timeout)."""
    if is_lmi(sb) and not managed_instances.init_runtime_done_pending(sb, status):
        return
    sb.hub.emit("platform.initRuntimeDone", records.init_runtime_done(
        initialization_type=sb.cfg.init_type, phase=phase, status=status, error_type=error_type))


def init_report_error_type(sb: Any, status: str, error_type: Optional[str]) -> Optional[str]:
    if is_lmi(sb):
        return managed_instances.init_report_error_type(status, error_type)
    return error_type


def report_extras(sb: Any) -> Dict[str, Any]:
    """Extra platform.report fields for this invoke (SnapStart: restore metrics after a restore)."""
    if sb.cfg.snapstart:
        return snapstart.pop_report_metrics(sb)
    return {}


def report_line_suffix(extras: Dict[str, Any]) -> str:
    return snapstart.report_line_suffix(extras)
