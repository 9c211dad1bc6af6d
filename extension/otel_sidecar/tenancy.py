"""The opt-in EMF tenant dimension (SIDECAR_TENANT_DIMENSION): bounded. Pure.

With tenant isolation (platform-2025.md section 2) every environment serves one tenant, but a function can
have very many tenants, and every distinct dimension value is a CloudWatch metric of its own (billed per
metric). So the dimension is off by default, and when on, at most `max_per_minute` distinct tenants get a
value of their own in any one minute; the others share the OTHER bucket, and each signal put there is counted
(`tenant_overflow`, a health counter).
"""

from __future__ import annotations

from typing import Dict, Optional, Set

OTHER = "other"
NONE = "none"                 # a signal without a tenant (an init, a shutdown) while the dimension is on
DEFAULT_MAX_PER_MINUTE = 20
MAX_MINUTES_REMEMBERED = 4    # minutes whose tenant sets are kept (signals of a window span a few minutes)
MAX_TENANT_CHARS = 256


class TenantLimiter:
    """Tenant id -> the EMF dimension value for a minute: itself while the minute has room, else OTHER."""

    def __init__(self, max_per_minute: int = DEFAULT_MAX_PER_MINUTE) -> None:
        self.max_per_minute = max(1, int(max_per_minute))
        self._seen: Dict[int, Set[str]] = {}
        self.overflow = 0

    def value(self, minute: int, tenant: Optional[str]) -> str:
        if not tenant:
            return NONE
        tenant = tenant[:MAX_TENANT_CHARS]
        seen = self._seen.get(minute)
        if seen is None:
            seen = self._seen[minute] = set()
            while len(self._seen) > MAX_MINUTES_REMEMBERED:
                del self._seen[min(self._seen)]
        if tenant in seen:
            return tenant
        if len(seen) < self.max_per_minute:
            seen.add(tenant)
            return tenant
        self.overflow += 1
        return OTHER
