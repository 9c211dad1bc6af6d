"""SnapStart (platform-2025.md 4): init at "publish" time, snapshot, then restore before the first invoke.

Publish (Sandbox.init(), or the first invoke): `platform.initStart` with initializationType
"snap-start"; extensions start, register, subscribe and park in /next; the runtime (awslambdaric, when
AWS_LAMBDA_INITIALIZATION_TYPE=snap-start) imports the handler, runs the before-snapshot hooks
(snapshot_restore_py.register_before_snapshot) and parks in GET /runtime/restore/next, which counts as
"runtime ready"; initRuntimeDone, extension x N, initReport (and the INIT_REPORT line). The snapshot is
the frozen environment: processes frozen, telemetry delivery held.

Restore (`restore()`, before the first invoke of the environment):
  1. the events still undelivered from publish time are held back;
  2. thaw; `platform.restoreStart` (RESTORE_START line);
  3. restore/next returns 200 (empty); the runtime runs its after-restore hooks and calls /next
     -> `platform.restoreRuntimeDone` {status}; `platform.restoreReport` {status, metrics.durationMs}
     (RESTORE_REPORT line); limit `restore_timeout_s` (10 s) else status "timeout";
     POST /runtime/restore/error (Runtime.AfterRestoreError) -> status "error";
  4. the held publish-time init events are delivered (with their publish-time `time`);
  5. the invoke: platform.start, INVOKE to the extensions (the /next they called before the snapshot
     returns now: there is no RESTORE event), and platform.report with `restoreDurationMs` and
     `billedRestoreDurationMs` instead of `initDurationMs`.

Choices (unverified in the digest): the processes are frozen, not restarted, across the snapshot;
`restoreDurationMs` spans restoreStart to the runtime's /next; `billedRestoreDurationMs` is the runtime's
part (restore/next released to its /next: the after-restore hooks), rounded up to 1 ms; the caller of a
failed restore gets the restore's errorType (timeout: "SnapStartTimeoutException"). Credentials are served
by GET /2021-04-23/credentials (AWS_CONTAINER_CREDENTIALS_FULL_URI + AWS_CONTAINER_AUTHORIZATION_TOKEN)
and AWS_LAMBDA_LOG_GROUP_NAME / AWS_LAMBDA_LOG_STREAM_NAME are not set.
"""

from __future__ import annotations

import json
import math
import time
import uuid
from typing import Any, Dict, Optional

from . import records

CREDENTIAL_KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
RESTORE_TIMEOUT_ERROR = "SnapStartTimeoutException"
CREDENTIALS_LIFETIME_S = 6 * 3600


def setup(sb: Any) -> None:
    """Called once when the sandbox is built: the credentials endpoint's token and body."""
    control = sb.control
    control.snapstart = True
    env = sb.cfg.env
    control.credentials_token = uuid.uuid4().hex
    control.credentials = {
        "AccessKeyId": env.get("AWS_ACCESS_KEY_ID", "ASIASANDBOXEXAMPLEKEY"),
        "SecretAccessKey": env.get("AWS_SECRET_ACCESS_KEY", "sandbox-example-secret-key"),
        "Token": env.get("AWS_SESSION_TOKEN", "sandbox-example-session-token"),
        "Expiration": records.iso(time.time() + CREDENTIALS_LIFETIME_S)[:-5] + "Z",
    }


def adjust_env(sb: Any, env: Dict[str, str], runtime: bool) -> None:
    """SnapStart's environment: credentials through the endpoint; no log group/stream names."""
    for key in CREDENTIAL_KEYS:
        env.pop(key, None)
    env["AWS_CONTAINER_CREDENTIALS_FULL_URI"] = f"http://{sb.api_address}/2021-04-23/credentials"
    env["AWS_CONTAINER_AUTHORIZATION_TOKEN"] = sb.control.credentials_token or ""
    if runtime:
        env.pop("AWS_LAMBDA_LOG_GROUP_NAME", None)
        env.pop("AWS_LAMBDA_LOG_STREAM_NAME", None)


def parked(sb: Any) -> bool:
    """True while the runtime waits in restore/next (published, not yet restored)."""
    with sb.control.cv:
        rt = sb.control.runtime
        return rt.restore_parked is not None and rt.restore_released is None


def before_invoke(sb: Any, request_id: str, t_call_m: float, t_call_e: float) -> Optional[Any]:
    """At the start of an invoke (the sandbox's operation lock held): publish if needed, then restore.
    Returns None to go on with the invoke, or the InvokeResult of a failed publish or restore."""
    if not sb._ready:
        sb._next_phase = "init"          # every environment starts from a (new) snapshot
        outcome = sb.init()
        if outcome.status != "success":
            sb._next_phase = "init"
            return sb._init_failed(request_id, t_call_m, t_call_e, outcome)
    if parked(sb):
        return restore(sb, request_id, t_call_m, t_call_e)
    return None


def restore(sb: Any, request_id: Optional[str] = None, t_call_m: Optional[float] = None,
            t_call_e: Optional[float] = None) -> Optional[Any]:
    """Restore the published environment (steps 1-4 above). None on success, else a failed InvokeResult."""
    cfg, hub, control = sb.cfg, sb.hub, sb.control
    held = hub.hold_pending()
    sb._thaw()
    t0m, t0e = time.monotonic(), time.time()
    hub.emit("platform.restoreStart", records.restore_start(
        function_name=cfg.function_name, function_version=cfg.function_version,
        runtime_version=cfg.runtime_version, runtime_version_arn=sb.runtime_version_arn,
        instance_id=sb.instance_id, instance_max_memory_mb=cfg.memory_mb))
    sb._platform_line(f"RESTORE_START Runtime Version: {cfg.runtime_version}\t"
                      f"Runtime Version ARN: {sb.runtime_version_arn}")
    with control.cv:
        control.release_restore()
        released = control.runtime.restore_released
    err = sb._wait(lambda: control.runtime.restore_done is not None, t0m + cfg.restore_timeout_s)
    end_m = time.monotonic()
    with control.cv:
        done = control.runtime.restore_done
        restore_error = control.runtime.restore_error_type
    if err is None:
        status, error_type = "success", None
    elif err == "timeout":
        status, error_type = "timeout", None
    else:
        status, error_type = "error", restore_error or err or "Runtime.Unknown"
    duration_ms = ((done[0] if done else end_m) - t0m) * 1000
    hub.emit("platform.restoreRuntimeDone", records.restore_runtime_done(status=status, error_type=error_type))
    hub.emit("platform.restoreReport", records.restore_report(status=status, duration_ms=duration_ms,
                                                              error_type=error_type))
    line = f"RESTORE_REPORT Restore Duration: {duration_ms:.2f} ms"
    if status != "success":
        line += f"\tStatus: {status}" + (f"\tError Type: {error_type}" if error_type else "")
    sb._platform_line(line)
    hub.release_held(held)
    if status == "success":
        hooks_ms = ((done[0] - released[0]) * 1000) if (done and released) else duration_ms
        sb.pending_restore = {"restore_duration_ms": duration_ms,
                              "billed_restore_duration_ms": max(1, math.ceil(hooks_ms))}
        return None
    caller_error = error_type or RESTORE_TIMEOUT_ERROR
    sb._reset("timeout" if status == "timeout" else "failure")
    sb._next_phase = "init"
    from .config import InvokeResult

    rid = request_id or str(uuid.uuid4())
    body = {"errorType": caller_error, "errorMessage": f"RequestId: {rid} Error: restore failed with "
                                                       f"{caller_error} (status {status})"}
    result = InvokeResult(request_id=rid, latency_ms=(time.monotonic() - (t_call_m or t0m)) * 1000,
                          outcome="timeout" if status == "timeout" else "init_error", response=body,
                          response_bytes=json.dumps(body).encode(), error_type=caller_error, status=status,
                          started_at=t_call_e or t0e)
    sb.invocations.append(result)
    return result


def pop_report_metrics(sb: Any) -> Dict[str, Any]:
    """The restore metrics for the first platform.report after a restore ({} otherwise)."""
    metrics = getattr(sb, "pending_restore", None) or {}
    sb.pending_restore = None
    return metrics


def report_line_suffix(metrics: Dict[str, Any]) -> str:
    """The REPORT line's restore fields (CloudWatch: `Restore Duration`, `Billed Restore Duration`)."""
    if not metrics:
        return ""
    return (f"\tRestore Duration: {metrics['restore_duration_ms']:.2f} ms"
            f"\tBilled Restore Duration: {metrics['billed_restore_duration_ms']} ms")
