"""Order statistics over samples (pure)."""

from __future__ import annotations

import math
from typing import Dict, List, Optional, Sequence


def percentile(values: Sequence[float], q: float) -> Optional[float]:
    """q-th percentile (0..100) with linear interpolation between order statistics; None when empty."""
    if not values:
        return None
    xs = sorted(values)
    if len(xs) == 1:
        return float(xs[0])
    pos = (len(xs) - 1) * q / 100.0
    lo, hi = math.floor(pos), math.ceil(pos)
    return float(xs[lo] + (xs[hi] - xs[lo]) * (pos - lo))


def median(values: Sequence[float]) -> Optional[float]:
    return percentile(values, 50)


def summarize(values: Sequence[float]) -> Dict[str, Optional[float]]:
    """n, min, mean, p50, p90, p99, max (rounded to µs when the unit is ms)."""
    vals: List[float] = [float(v) for v in values if v is not None]
    if not vals:
        return {"n": 0, "min": None, "mean": None, "p50": None, "p90": None, "p99": None, "max": None}
    out: Dict[str, Optional[float]] = {"n": len(vals), "min": min(vals), "mean": sum(vals) / len(vals),
                                       "p50": percentile(vals, 50), "p90": percentile(vals, 90),
                                       "p99": percentile(vals, 99), "max": max(vals)}
    return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in out.items()}


def ratio(a: Optional[float], b: Optional[float]) -> Optional[float]:
    """a / b rounded, None when either is missing or b is zero."""
    if a is None or b is None or b == 0:
        return None
    return round(a / b, 4)


def delta(a: Optional[float], b: Optional[float]) -> Optional[float]:
    if a is None or b is None:
        return None
    return round(a - b, 3)
