"""Tenant isolation (platform-2025.md 2): one execution environment per tenant.

A tenant-isolated function (TenancyConfig PER_TENANT) carries a tenant id on every invoke; Lambda
never lets one environment serve two tenants. Where the id travels (all done by the sandbox):
- the runtime's /next answer: header `Lambda-Runtime-Aws-Tenant-Id` (awslambdaric turns it into
  `context.tenant_id` and the `tenantId` of its JSON log records) -- api.py;
- `platform.start`, `platform.runtimeDone`, `platform.report`: `record.tenantId` -- environment.py
  passes `invocation.tenant_id`;
- the sandbox's own wrapped JSON log lines of an invoke: `tenantId` -- telemetry.py (`hub.tenant_id`);
- NOT in the extensions' INVOKE event, NOT in `platform.initStart` nor in environment variables.

`pin()` binds an environment to its first tenant; `TenantPool` keeps one Sandbox per tenant.
"""

from __future__ import annotations

import dataclasses
import threading
from typing import Any, Callable, Dict, List, Optional

from .config import ConfigError, SandboxConfig, check_tenant_id

NO_TENANT = None


def pin(sb: Any, tenant_id: Optional[str]) -> Optional[str]:
    """The tenant of this invoke (the given one, else the configured one). The first tenant seen pins the
    environment; another tenant raises ConfigError (Lambda runs one environment per tenant)."""
    tenant = tenant_id if tenant_id is not None else sb.cfg.tenant_id
    current = getattr(sb, "tenant", None)
    if tenant is None:
        if current is not None:
            raise ConfigError(f"tenant_id is missing: this environment is tenant-isolated (tenant {current!r}) "
                              "and every invoke needs a tenant id")
        return None
    check_tenant_id(tenant)
    if current is None:
        sb.tenant = tenant
        sb.hub.tenant_id = tenant
    elif current != tenant:
        raise ConfigError(f"tenant_id={tenant!r}: this environment serves tenant {current!r}; Lambda runs one "
                          "environment per tenant (use lambda_sandbox.tenancy.TenantPool)")
    return tenant


class TenantPool:
    """One Sandbox per tenant, created on the tenant's first invoke (each with its own init).

    `invoke(payload, tenant_id=...)` routes to the tenant's environment; invokes without a tenant go to
    the configured `tenant_id`, or to one environment without tenant isolation when none is configured.
    """

    def __init__(self, config: SandboxConfig, on_log: Optional[Callable[[Any], None]] = None,
                 factory: Optional[Callable[[SandboxConfig, Any], Any]] = None) -> None:
        self.cfg = config
        self.on_log = on_log
        self._factory = factory
        self._lock = threading.Lock()
        self.sandboxes: Dict[Optional[str], Any] = {}
        self.order: List[Optional[str]] = []

    def _make(self, cfg: SandboxConfig) -> Any:
        if self._factory is not None:
            return self._factory(cfg, self.on_log)
        from .environment import Sandbox

        return Sandbox(cfg, on_log=self.on_log)

    def get(self, tenant_id: Optional[str]) -> Any:
        tenant = tenant_id if tenant_id is not None else self.cfg.tenant_id
        if tenant is not None:
            check_tenant_id(tenant)
        with self._lock:
            sb = self.sandboxes.get(tenant)
            if sb is None:
                sb = self._make(dataclasses.replace(self.cfg, tenant_id=tenant)).start()
                self.sandboxes[tenant] = sb
                self.order.append(tenant)
            return sb

    def invoke(self, payload: Any = None, *, tenant_id: Optional[str] = None, **kwargs: Any) -> Any:
        sb = self.get(tenant_id)
        return sb.invoke(payload, tenant_id=sb.cfg.tenant_id, **kwargs)

    def init(self) -> None:
        self.get(None).init()

    @property
    def invocations(self) -> List[Any]:
        return [r for t in self.order for r in self.sandboxes[t].invocations]

    def shutdown(self) -> None:
        for t in list(self.order):
            self.sandboxes[t].shutdown()

    def close(self) -> None:
        for t in list(self.order):
            try:
                self.sandboxes[t].close()
            except Exception:  # noqa: BLE001 - close every environment
                pass

    def report(self) -> dict:
        """The first environment's report; with several tenants, `tenantEnvironments` holds one report per
        tenant (in order of first use), the first one included."""
        if not self.order:
            return {}
        reports = [(t, self.sandboxes[t].report()) for t in self.order]
        first = dict(reports[0][1])
        if len(reports) > 1:
            first["tenantEnvironments"] = [{"tenantId": t, "report": r} for t, r in reports]
        return first

    def __enter__(self) -> TenantPool:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
