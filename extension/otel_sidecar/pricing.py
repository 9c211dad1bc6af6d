"""EstimatedCost: Lambda list prices per architecture and region class, and the cost of one invocation. Pure.

What Lambda bills (platform-2025.md section 5):
- Since 2025-08-01 the INIT phase is billed like the invoke for every configuration; the change concerned
  on-demand invocations of ZIP functions on managed runtimes. It shows in the first report after an on-demand
  init: `billedDurationMs` = ceil(durationMs + initDurationMs). The estimate therefore uses the billed
  duration as Lambda reports it (SIDECAR_INIT_BILLING=reported, the default), which includes the init
  wherever Lambda bills it. `add` adds initDurationMs when a report's billed duration leaves it out (reports
  from before the change, or an emulator with init billing off); `exclude` leaves the init out (the
  pre-2025-08 rule, for comparisons).
- A suppressed init (phase invoke) is inside durationMs already; provisioned concurrency inits are priced
  under provisioned concurrency (not in this estimate).
- SnapStart: `billedRestoreDurationMs` (runtime load and after-restore hooks) is billed on top; the snapshot
  cache and restore charges are not in the estimate.
- Lambda Managed Instances: no per-millisecond duration billing (EC2 instance + management fee), and the
  report has no billed duration: no estimate (EstimatedCost absent).

Prices: USD list prices of US East (N. Virginia), the ones AWS's pricing page prints, for the `standard`
class (used for every commercial region; regional differences, e.g. Cape Town or Hong Kong, are not in the
table: set SIDECAR_PRICE_PER_GB_S / SIDECAR_PRICE_PER_REQUEST for them). China regions are priced in CNY,
so no USD estimate is made there unless the prices are set explicitly.
"""

from __future__ import annotations

import math

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Dict, Optional, Tuple

STANDARD = "standard"
CHINA = "china"
REGION_CLASSES = (STANDARD, CHINA)
INIT_BILLING = ("reported", "add", "exclude")

# (region class, architecture) -> (USD per GB-second, USD per request); None: no USD list price
PRICES: Dict[Tuple[str, str], Optional[Tuple[float, float]]] = {
    (STANDARD, "x86_64"): (0.0000166667, 0.0000002),
    (STANDARD, "arm64"): (0.0000133334, 0.0000002),
    (CHINA, "x86_64"): None,
    (CHINA, "arm64"): None,
}


def region_class(region: Optional[str]) -> str:
    """The price class of an AWS region name (cn-* regions are priced in CNY)."""
    return CHINA if (region or "").lower().startswith("cn-") else STANDARD


def list_prices(klass: str, architecture: str) -> Optional[Tuple[float, float]]:
    """(USD per GB-second, USD per request) of a class and architecture; None when there is no USD price."""
    return PRICES.get((klass, architecture))


def billed_ms(billed: Optional[float], duration: Optional[float], init: Optional[float],
              init_billing: str = "reported") -> Optional[float]:
    """The billed milliseconds of an invocation under SIDECAR_INIT_BILLING (see the module docstring).

    The init is judged included when billed >= durationMs + initDurationMs - 1 (Lambda rounds the sum up
    to the millisecond)."""
    if billed is None:
        return None
    if init is None or init <= 0 or init_billing == "reported" or duration is None:
        return float(billed)
    included = billed >= duration + init - 1.0
    if init_billing == "add" and not included:
        return float(billed) + math.ceil(init)
    if init_billing == "exclude" and included:
        return max(float(math.ceil(duration)), float(billed) - init)
    return float(billed)


def estimate(billed: Optional[float], memory_mb: Optional[int], price_per_gb_s: Optional[float],
             price_per_request: Optional[float], duration: Optional[float] = None, init: Optional[float] = None,
             billed_restore: Optional[float] = None, init_billing: str = "reported") -> Optional[float]:
    """USD of one invocation: (billed ms [+ init per init_billing] + billed restore ms) / 1000 x GB x price
    per GB-s + price per request. None without a billed duration, a memory size or a price."""
    ms = billed_ms(billed, duration, init, init_billing)
    if ms is None or not memory_mb or price_per_gb_s is None or price_per_request is None:
        return None
    if billed_restore:
        ms += float(billed_restore)
    return ms / 1000.0 * (memory_mb / 1024.0) * price_per_gb_s + price_per_request
