"""How a cold start is decided: the one place that says which inits count as cold starts. Pure.

An init (or SnapStart restore) is assembled by signals.py from platform.initStart / initRuntimeDone /
initReport (or restore*) and the first invocation it served; this module names its kind.
"""

from __future__ import annotations

from typing import Optional, Tuple

# InitSignal.kind values
COLD_START = "cold_start"        # on-demand init whose first invoke waited for it (or a re-init inside an invoke)
PROACTIVE = "proactive"          # on-demand init followed by an idle gap > threshold (or never used)
PROVISIONED = "provisioned"      # provisioned-concurrency init
SNAP_START = "snap_start"        # SnapStart restore
MANAGED_INSTANCES = "managed_instances"  # lambda-managed-instances init

DEFAULT_IDLE_THRESHOLD_MS = 10_000   # 10 s: config.Settings.coldstart_idle_ms (SIDECAR_COLDSTART_IDLE_MS) by default


def classify_init(initialization_type: str, phase: str, restore: bool, succeeded: bool,
                  idle_gap_ms: Optional[float], idle_threshold_ms: float) -> Tuple[str, bool]:
    """(kind, proactive) of an init.

    - a SnapStart restore is SNAP_START; provisioned concurrency is PROVISIONED; Lambda managed instances
      are MANAGED_INSTANCES: their callers never wait for the init;
    - a re-init inside an invoke (phase=invoke, after a reset) is a COLD_START whatever its type: the caller
      waited for it;
    - an on-demand init is PROACTIVE (Lambda started it ahead of demand) when it succeeded and the gap from
      its end to its first invoke (`idle_gap_ms`) is over `idle_threshold_ms` (Settings.coldstart_idle_ms,
      SIDECAR_COLDSTART_IDLE_MS, default DEFAULT_IDLE_THRESHOLD_MS = 10 s: a caller that waited for the init
      is served within milliseconds of its end), or when it never served an invocation (gap None); otherwise COLD_START.

    `proactive` is the on-demand test above, whatever the kind, except on Lambda managed instances: there
    no invocation is the init's first (invocations overlap, platform-2025.md 1.6), so there is no gap to
    judge and the init is neither a cold start nor proactive. Only a successful COLD_START counts in
    ColdStarts / faas.coldstarts (InitSignal.cold_start).
    """
    itype = initialization_type or "on-demand"
    proactive = (succeeded and phase != "invoke" and itype != "lambda-managed-instances"
                 and (idle_gap_ms is None or idle_gap_ms > idle_threshold_ms))
    if restore or itype == "snap-start":
        kind = SNAP_START
    elif phase == "invoke":
        kind = COLD_START
    elif itype == "provisioned-concurrency":
        kind = PROVISIONED
    elif itype == "lambda-managed-instances":
        kind = MANAGED_INSTANCES
    else:
        kind = PROACTIVE if proactive else COLD_START
    return kind, proactive
