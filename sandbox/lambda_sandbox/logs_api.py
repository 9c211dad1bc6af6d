"""The legacy Logs API (`PUT /2020-08-15/logs`): how a generated event looks to a Logs API subscriber.

Pure functions over the Telemetry envelopes the TelemetryHub generates (platform-2025.md 7,
lambda-apis.md 6). The Logs API has its own, smaller record set:

  Telemetry event          ->  Logs API events
  platform.start           ->  platform.start {requestId}
  platform.runtimeDone     ->  platform.runtimeDone {requestId, status}   (schema 2021-03-18 only)
  platform.report          ->  [platform.fault "RequestId: ... Process exited before completing request"]
                               platform.end {requestId}, platform.report {requestId, metrics}
  platform.extension       ->  platform.extension (same record)
  platform.logsSubscription -> itself (the Logs API's subscription notice)
  platform.logsDropped     ->  platform.logsDropped with the Logs API's reason
  function / extension     ->  the record as a string (one line), also in JSON log format
  everything else (initStart, initRuntimeDone, initReport, restore*, telemetrySubscription) -> nothing

Choices where the digest marks a point unverified (each a constant or parameter here):
- `platform.end` is placed right before `platform.report` (the END line of CloudWatch precedes REPORT).
- `platform.fault` is emitted for a report whose errorType says the runtime process ended
  (FAULT_ERROR_TYPES), with the documented sentence.
- log records stay strings even when the function logs JSON (LOG_RECORDS_AS_STRINGS).
- the subscription notice's state is "Subscribed" (the Rust fixture's "active" is not used).
"""

from __future__ import annotations

import json
from typing import Any, List, Optional

LOGS_SCHEMA_VERSIONS = ("2020-08-15", "2021-03-18")
DEFAULT_LOGS_SCHEMA = "2020-08-15"
RUNTIME_DONE_SCHEMA = "2021-03-18"      # the version that adds platform.runtimeDone
LOGS_DROPPED_REASON = "Consumer seems to have fallen behind as it has not acknowledged receipt of logs."
FAULT_ERROR_TYPES = ("Runtime.ExitError", "Runtime.OutOfMemory")
LOG_RECORDS_AS_STRINGS = True
SUBSCRIBED_STATE = "Subscribed"
# events only the Telemetry API emits (its subscription notice, init and restore phases)
TELEMETRY_ONLY = ("platform.telemetrySubscription", "platform.initStart", "platform.initRuntimeDone",
                  "platform.initReport", "platform.restoreStart", "platform.restoreRuntimeDone",
                  "platform.restoreReport")
LOGS_ONLY = ("platform.logsSubscription",)


def logs_subscription(*, name: str, types: List[str]) -> dict:
    """platform.logsSubscription {name, state, types}."""
    return {"name": name, "state": SUBSCRIBED_STATE, "types": list(types)}


def _line(record: Any, legacy_record: Optional[str]) -> str:
    if legacy_record is not None:
        return legacy_record
    if isinstance(record, str):
        return record
    return json.dumps(record, separators=(",", ":")) + "\n"


def view(event: dict, schema_version: str, legacy_record: Optional[str] = None) -> List[dict]:
    """The Logs API envelopes (0..n) a subscriber with `schema_version` receives for one generated event."""
    typ, rec, t = event["type"], event["record"], event["time"]

    def env(type_: str, record: Any) -> dict:
        return {"time": t, "type": type_, "record": record}

    if typ in ("function", "extension"):
        if LOG_RECORDS_AS_STRINGS:
            return [env(typ, _line(rec, legacy_record))]
        return [env(typ, rec)]
    if typ in TELEMETRY_ONLY:
        return []
    if typ == "platform.start":
        return [env(typ, {"requestId": rec["requestId"]})]
    if typ == "platform.runtimeDone":
        if schema_version != RUNTIME_DONE_SCHEMA:
            return []
        return [env(typ, {"requestId": rec["requestId"], "status": rec["status"]})]
    if typ == "platform.report":
        out = []
        rid = rec["requestId"]
        if rec.get("status") != "success" and rec.get("errorType") in FAULT_ERROR_TYPES:
            out.append(env("platform.fault", f"RequestId: {rid} Process exited before completing request"))
        out.append(env("platform.end", {"requestId": rid}))
        out.append(env(typ, {"requestId": rid, "metrics": dict(rec.get("metrics") or {})}))
        return out
    if typ == "platform.logsDropped":
        return [env(typ, dict(rec, reason=LOGS_DROPPED_REASON))]
    return [env(typ, rec)]


def telemetry_view(event: dict) -> bool:
    """False for the events a Telemetry API subscriber never sees (the Logs API's own notices)."""
    return event["type"] not in LOGS_ONLY

