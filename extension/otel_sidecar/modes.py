"""Which Lambda execution mode the sidecar runs in, and what each mode changes for it. Pure, stdlib only.

Imported before registering (the events to register for depend on it), so no typing, json or re here.
Sources: the Lambda platform digest of 2025-2026 (platform-2025.md sections 1, 4, 9.2), which cites the AWS
Developer Guide and the code of AWS's emulator (RIE-LMI) and of peer extensions.

- Lambda Managed Instances (LMI): one environment serves many invocations at once and is never frozen.
  Detected from AWS_LAMBDA_INITIALIZATION_TYPE=lambda-managed-instances, the only signal peers use
  (AWS_LAMBDA_MAX_CONCURRENCY is set for the runtime only, never for extensions); overridable with
  SIDECAR_PLATFORM_MODE, and learnt late when the Extensions API refuses an INVOKE registration
  (403 Extension.InvalidEventType, as RIE-LMI answers: the production body is unverified). In LMI an
  extension registers for SHUTDOWN only, subscribes with schema 2025-01-29, flushes on a background timer
  and attributes every record by request id.
- SnapStart: AWS_LAMBDA_INITIALIZATION_TYPE=snap-start. The init ran when the version was published; this
  environment starts with platform.restore* records and receives the snapshot's init records late.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Mapping, Optional, Tuple

DEFAULT = "default"
MANAGED_INSTANCES = "managed-instances"
PLATFORM_MODES = ("auto", DEFAULT, MANAGED_INSTANCES)
LMI_INIT_TYPE = "lambda-managed-instances"
SNAPSTART_INIT_TYPE = "snap-start"

# Telemetry API schema versions (platform-2025.md 1.4): LMI requires 2025-01-29, described by AWS as
# backward compatible; on default functions 2022-12-13 stays the default (as Datadog keeps it, to avoid
# regressions), 2025-01-29 is opt-in there (SIDECAR_TELEMETRY_SCHEMA).
SCHEMA_LMI = "2025-01-29"
SCHEMA_DEFAULT = "2022-12-13"
SCHEMAS = ("2025-01-29", "2022-12-13", "2022-07-01")

EVENTS_DEFAULT = ("INVOKE", "SHUTDOWN")
EVENTS_LMI = ("SHUTDOWN",)     # INVOKE registration is refused on LMI (no per-invoke event: invokes overlap)


def detect(env: Mapping[str, str]) -> Tuple[str, Optional[str]]:
    """(mode, warning) from the environment: SIDECAR_PLATFORM_MODE (auto | default | managed-instances)
    first, else AWS_LAMBDA_INITIALIZATION_TYPE. The warning names a bad SIDECAR_PLATFORM_MODE value."""
    raw = (env.get("SIDECAR_PLATFORM_MODE") or "").strip().lower()
    aliases = {"lmi": MANAGED_INSTANCES, "lambda-managed-instances": MANAGED_INSTANCES,
               "managed_instances": MANAGED_INSTANCES, "classic": DEFAULT}
    raw = aliases.get(raw, raw)
    warning = None
    if raw in (DEFAULT, MANAGED_INSTANCES):
        return raw, None
    if raw and raw != "auto":
        warning = (f"SIDECAR_PLATFORM_MODE={env.get('SIDECAR_PLATFORM_MODE')!r} is invalid (expected auto, "
                   f"default or managed-instances); using 'auto' instead")
    init_type = (env.get("AWS_LAMBDA_INITIALIZATION_TYPE") or "").strip().lower()
    return (MANAGED_INSTANCES if init_type == LMI_INIT_TYPE else DEFAULT), warning


def register_events(mode: str) -> Tuple[str, ...]:
    return EVENTS_LMI if mode == MANAGED_INSTANCES else EVENTS_DEFAULT


def refused_invoke(status: int, body: str) -> bool:
    """Did the Extensions API refuse the INVOKE registration as LMI does (403 Extension.InvalidEventType)?
    Any 403 naming the event type or INVOKE counts: the production body is unverified."""
    if status != 403:
        return False
    text = body or ""
    return "InvalidEventType" in text or "INVOKE" in text


def schema_version(mode: str, configured: Optional[str] = None) -> str:
    """The Telemetry API schemaVersion to subscribe with: SIDECAR_TELEMETRY_SCHEMA when set, else 2025-01-29
    on LMI and 2022-12-13 elsewhere."""
    if configured in SCHEMAS:
        return configured
    return SCHEMA_LMI if mode == MANAGED_INSTANCES else SCHEMA_DEFAULT


def fallback_schema(tried: str) -> Optional[str]:
    """The schema to retry with once when the Telemetry API refused `tried` with HTTP 400 (a region without
    2025-01-29, or a strict emulator refusing the old one), else None."""
    return SCHEMA_DEFAULT if tried == SCHEMA_LMI else SCHEMA_LMI


def lmi_flush_mode(mode: str) -> str:
    """On LMI the environment is never frozen and no INVOKE marks an invocation's end: `adaptive` and `end`
    (which flush after an invoke) become `periodic` (flush.py's background timer); periodic and continuous
    keep their interval."""
    return "periodic" if mode in ("adaptive", "end") else mode


def is_snapstart(initialization_type: Optional[str]) -> bool:
    return (initialization_type or "").strip().lower() == SNAPSTART_INIT_TYPE


def durable_runtime(runtime_version: Optional[str]) -> bool:
    """A durable function's runtime version names it (e.g. `python:3.14.DurableFunction.v6`, as peers detect
    it; the exact production format is unverified, so any case of the word counts)."""
    return bool(runtime_version) and "durablefunction" in runtime_version.lower()


def durable_execution_arn(value: object) -> Optional[str]:
    """A durable execution ARN (`arn:aws:lambda:...:function:<name>:<version>/durable-execution/<name>/<id>`)
    found in a JSON log record's field, bounded to 2048 characters; else None."""
    if not isinstance(value, str) or len(value) > 2048:
        return None
    return value if value.startswith("arn:") and "/durable-execution/" in value else None


DURABLE_ARN_FIELDS = ("executionArn", "durableExecutionArn", "DurableExecutionArn")


def durable_arn_of(fields: object) -> Optional[str]:
    """The durable execution ARN of a JSON log record (the durable SDK's records carry `executionArn`)."""
    if not isinstance(fields, dict):
        return None
    for key in DURABLE_ARN_FIELDS:
        arn = durable_execution_arn(fields.get(key))
        if arn is not None:
            return arn
    return None


def tenant_of(fields: object) -> Optional[str]:
    """The tenant of a JSON log record (top-level `tenantId`, JSON log format only), bounded."""
    if not isinstance(fields, dict):
        return None
    value = fields.get("tenantId")
    return value if isinstance(value, str) and value and len(value) <= 256 else None
