"""SIDECAR_* environment variables -> Settings. Pure; never raises.

Every invalid value yields ONE warning naming the variable, the bad value and the value used instead.
"""

from __future__ import annotations

import collections

TYPE_CHECKING = False
if TYPE_CHECKING:  # on the path to the first /next: typing costs ~6 ms of CPU there (annotations are strings)
    from typing import Callable, List, Mapping, Optional, Tuple, TypeVar

    T = TypeVar("T")

DEFAULT_NAMESPACE = "OtelSidecar"
# Lambda list prices (USD, us-east-1): compute per GB-second and per request
PRICE_PER_GB_S = {"x86_64": 0.0000166667, "arm64": 0.0000133334}
PRICE_PER_REQUEST = 0.0000002
TELEMETRY_TYPES = ("platform", "function", "extension")
FLUSH_MODES = ("adaptive", "end", "periodic", "continuous")
LOG_LEVELS = ("DEBUG", "INFO", "WARN", "ERROR", "OFF")
# Optional EMF dimensions: low-cardinality only (never request ids)
EMF_DIMENSIONS = ("FunctionVersion", "Service", "MemorySize", "Architecture", "Region", "InitType")
_NAMESPACE_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 ._#:/-")

DEFAULT_FLUSH_INTERVAL_MS = 20000
DEFAULT_FLUSH_BUDGET_MS = 30
DEFAULT_FLUSH_MARGIN_MS = 100


# (variable, default, meaning): the README's configuration table is written from this list.
VARIABLES: Tuple[Tuple[str, str, str], ...] = (
    ("SIDECAR_LOG_LEVEL", "INFO", "The sidecar's own log level: DEBUG, INFO, WARN, ERROR or OFF."),
    ("SIDECAR_EMF", "on", "Print CloudWatch EMF metric lines on stdout (on/off)."),
    ("SIDECAR_EMF_NAMESPACE", "POWERTOOLS_METRICS_NAMESPACE, else OtelSidecar", "CloudWatch namespace of the metrics."),
    ("SIDECAR_EMF_DIMENSIONS", "(none)", "Extra EMF dimensions besides FunctionName, comma-separated: "
     + ", ".join(EMF_DIMENSIONS) + "."),
    ("SIDECAR_COLDSTART_IDLE_MS", "10000", "An init followed by a longer idle gap before the first invoke is a "
     "proactive init, not a cold start."),
    ("SIDECAR_ARCHITECTURE", "the machine's", "x86_64 or arm64; picks the price per GB-second."),
    ("SIDECAR_PRICE_PER_GB_S", "0.0000166667 (x86_64) / 0.0000133334 (arm64)", "USD per GB-second for EstimatedCost."),
    ("SIDECAR_PRICE_PER_REQUEST", "0.0000002", "USD per request for EstimatedCost."),
    ("SIDECAR_THROTTLE_PATTERNS", "(built-in list)", "Comma-separated regular expressions (case-insensitive) for "
     "downstream throttle log lines; a leading + adds to the built-in list; off disables."),
    ("SIDECAR_TELEMETRY_TYPES", "platform,function", "Telemetry API types to subscribe to (extension is opt-in)."),
    ("SIDECAR_LISTENER_PORT", "0", "Telemetry listener port; 0 picks a free ephemeral port."),
    ("SIDECAR_BUFFER_TIMEOUT_MS", "25", "Telemetry API buffering timeoutMs (25-30000)."),
    ("SIDECAR_BUFFER_MAX_ITEMS", "10000", "Telemetry API buffering maxItems (1000-10000): how many records Lambda "
     "holds for the sidecar; the most tolerates the longest log bursts before platform.logsDropped."),
    ("SIDECAR_BUFFER_MAX_BYTES", "1048576", "Telemetry API buffering maxBytes (262144-1048576), likewise."),
    ("SIDECAR_QUEUE_MAX", "10000", "Bound of the sidecar's internal buffers (items); overflow is dropped and counted."),
    ("SIDECAR_FLUSH", "adaptive", "adaptive, end, periodic[:ms] or continuous[:ms]."),
    ("SIDECAR_FLUSH_BUDGET_MS", "30", "Longest post-runtime flush (bounded by the invoke deadline minus the margin)."),
    ("SIDECAR_FLUSH_MARGIN_MS", "100", "Safety margin kept before an invoke's deadline."),
    ("SIDECAR_MAX_EXPORT_DELAY_MS", "30000", "Freshness budget of the adaptive flush: data may wait for a later "
     "invocation or SHUTDOWN this long at most (1000-3600000)."),
    ("SIDECAR_SHUTDOWN_DRAIN_MS", "300", "How long to wait for late telemetry at SHUTDOWN before the final flush."),
    ("SIDECAR_OTLP_LOGS", "on", "Export function log lines as OTLP logs (when OTLP is configured)."),
    # read by local_otlp.load_config before registering (the endpoint must listen before the runtime's init)
    ("SIDECAR_LOCAL_OTLP", "auto", "The local OTLP/HTTP endpoint for the function's own spans, metrics and logs: "
     "auto (on when the sidecar exports OTLP), on or off."),
    ("SIDECAR_LOCAL_OTLP_ENDPOINT", "127.0.0.1:4318", "Where it listens (a loopback host:port); a port in use is one "
     "warning and the endpoint off."),
    ("SIDECAR_SPAN_PARENT", "none", "Parent of the invocation span: none (a root span in the X-Ray trace, what OTLP "
     "backends list) or xray (under Lambda's X-Ray segment, which only X-Ray has)."),
    ("SIDECAR_PLATFORM_MODE", "auto", "auto, default or managed-instances: auto reads "
     "AWS_LAMBDA_INITIALIZATION_TYPE (and learns Lambda Managed Instances when INVOKE registration is refused)."),
    ("SIDECAR_TELEMETRY_SCHEMA", "auto", "Telemetry API schemaVersion: auto (2025-01-29 on Lambda Managed "
     "Instances, 2022-12-13 elsewhere), 2025-01-29, 2022-12-13 or 2022-07-01."),
    ("SIDECAR_TENANT_DIMENSION", "off", "Add TenantId (tenant isolation) as an EMF dimension set next to "
     "[FunctionName]; off by default: every tenant is a CloudWatch metric of its own."),
    ("SIDECAR_TENANT_DIMENSION_MAX", "20", "With the tenant dimension: distinct tenants per minute with a value "
     "of their own (1-1000); the rest go to TenantId=other, counted."),
    ("SIDECAR_PRICE_REGION_CLASS", "from AWS_REGION", "Price table class for EstimatedCost: standard (US East "
     "list prices, every commercial region) or china (no USD price: no estimate unless prices are set)."),
    ("SIDECAR_INIT_BILLING", "reported", "How EstimatedCost treats the init: reported (billedDurationMs as "
     "Lambda reports it, which includes the on-demand init since 2025-08-01), add (add initDurationMs when the "
     "report left it out) or exclude."),
)


class _SettingsFields:
    """The fields of Settings with their types and defaults (read once to build the namedtuple below)."""

    log_level: str = "INFO"
    # function identity (from the Lambda environment)
    function_name: str = "unknown"
    function_version: str = "$LATEST"
    memory_mb: Optional[int] = None
    region: Optional[str] = None
    initialization_type: str = "on-demand"
    service: str = "unknown"
    architecture: str = "x86_64"
    # EMF
    emf_enabled: bool = True
    emf_namespace: str = DEFAULT_NAMESPACE
    emf_dimensions: Tuple[str, ...] = ()
    # signal derivation
    coldstart_idle_ms: int = 10000                 # coldstart.classify_init's threshold
    price_per_gb_s: float = PRICE_PER_GB_S["x86_64"]
    price_per_request: float = PRICE_PER_REQUEST
    throttle_patterns: Tuple[str, ...] = ()  # empty = the defaults of patterns.py
    throttle_patterns_extend: bool = False   # True: the configured patterns are added to the defaults
    # Telemetry API subscription and listener
    telemetry_types: Tuple[str, ...] = ("platform", "function")
    listener_port: int = 0
    buffer_timeout_ms: int = 25
    buffer_max_items: int = 10000     # Lambda's own default and the most: the longest bursts fit
    buffer_max_bytes: int = 1048576
    queue_max: int = 10000            # SIDECAR_QUEUE_MAX: bounds (items) both the listener's queue of batches
                                      # (lifecycle; listener.DEFAULT_MAX_BATCHES before settings load) and the
                                      # EMF window's signals (emf.EmfSink)
    # flushing
    flush_mode: str = "adaptive"
    flush_interval_ms: int = DEFAULT_FLUSH_INTERVAL_MS
    flush_interval_explicit: bool = False  # SIDECAR_FLUSH carried :ms (continuous otherwise uses 1 s)
    flush_budget_ms: int = DEFAULT_FLUSH_BUDGET_MS
    flush_margin_ms: int = DEFAULT_FLUSH_MARGIN_MS
    max_export_delay_ms: int = 30000
    shutdown_drain_ms: int = 300
    # OTLP
    otlp_logs: bool = True
    # platform modes (modes.py) and cost (pricing.py)
    platform_mode: str = "default"         # default | managed-instances (Lambda Managed Instances)
    managed_instances: bool = False
    telemetry_schema: Optional[str] = None  # None: modes.schema_version's choice
    tenant_dimension: bool = False
    tenant_dimension_max: int = 20
    price_region_class: str = "standard"
    init_billing: str = "reported"


# Immutable settings: a namedtuple rather than a frozen dataclass or typing.NamedTuple, because this module is
# imported on the path to the first /next, and `dataclasses` pulls in `inspect` (~10 ms on a small Lambda),
# `typing` ~6 ms. With postponed annotations the field types above stay strings: nothing to evaluate.
Settings = collections.namedtuple(  # type: ignore[misc]
    "Settings", list(_SettingsFields.__annotations__),
    defaults=[getattr(_SettingsFields, name) for name in _SettingsFields.__annotations__])
Settings.__doc__ = "Immutable settings (fields: see _SettingsFields)."


class _Reader:
    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self.warnings: List[str] = []

    def raw(self, name: str) -> Optional[str]:
        v = self.env.get(name)
        if v is None:
            return None
        v = str(v).strip()
        return v if v else None

    def warn(self, name: str, value: str, used: object, why: str = "") -> None:
        extra = f" ({why})" if why else ""
        self.warnings.append(f"{name}={value!r} is invalid{extra}; using {used!r} instead")

    def conv(self, name: str, default: T, fn: Callable[[str], T], why: str = "") -> T:
        v = self.raw(name)
        if v is None:
            return default
        try:
            return fn(v)
        except (ValueError, TypeError) as e:
            self.warn(name, v, default, why or str(e))
            return default

    def int_range(self, name: str, default: int, lo: int, hi: int) -> int:
        def fn(v: str) -> int:
            n = int(v, 10)
            if not lo <= n <= hi:
                raise ValueError(f"expected an integer from {lo} to {hi}")
            return n
        return self.conv(name, default, fn, f"expected an integer from {lo} to {hi}")

    def float_range(self, name: str, default: float, lo: float, hi: float) -> float:
        def fn(v: str) -> float:
            x = float(v)
            if not (lo <= x <= hi):  # also rejects nan
                raise ValueError
            return x
        return self.conv(name, default, fn, f"expected a number from {lo} to {hi}")

    def flag(self, name: str, default: bool) -> bool:
        def fn(v: str) -> bool:
            low = v.lower()
            if low in ("1", "true", "on", "yes", "enabled"):
                return True
            if low in ("0", "false", "off", "no", "disabled"):
                return False
            raise ValueError
        return self.conv(name, default, fn, "expected on or off")


def _arch(machine: Optional[str]) -> str:
    m = (machine or "").lower()
    return "arm64" if m in ("arm64", "aarch64", "armv8", "armv8l") else "x86_64"


def load_settings(env: Mapping[str, str], machine: Optional[str] = None) -> Tuple[Settings, List[str]]:
    """Settings from an environment mapping (and the CPU architecture, e.g. platform.machine()).

    Long on purpose: one read per variable of VARIABLES, in the table's order, each with its bound and its
    warning; splitting it would only scatter that table."""
    r = _Reader(env)
    d = Settings()

    level = r.conv("SIDECAR_LOG_LEVEL", "INFO", lambda v: _choice(v.upper().replace("WARNING", "WARN"), LOG_LEVELS),
                   f"expected one of {', '.join(LOG_LEVELS)}")

    function_name = r.raw("AWS_LAMBDA_FUNCTION_NAME") or d.function_name
    function_version = r.raw("AWS_LAMBDA_FUNCTION_VERSION") or d.function_version
    memory_mb = r.conv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", None, lambda v: _positive_int(v), "expected an integer")
    region = r.raw("AWS_REGION") or r.raw("AWS_DEFAULT_REGION")
    init_type = r.raw("AWS_LAMBDA_INITIALIZATION_TYPE") or d.initialization_type
    service = r.raw("POWERTOOLS_SERVICE_NAME") or r.raw("OTEL_SERVICE_NAME") or function_name

    emf = r.flag("SIDECAR_EMF", True)
    ns_raw = r.raw("SIDECAR_EMF_NAMESPACE")
    ns_var = "SIDECAR_EMF_NAMESPACE"
    if ns_raw is None:
        ns_raw, ns_var = r.raw("POWERTOOLS_METRICS_NAMESPACE"), "POWERTOOLS_METRICS_NAMESPACE"
    namespace = DEFAULT_NAMESPACE
    if ns_raw is not None:
        if 1 <= len(ns_raw) <= 255 and set(ns_raw) <= _NAMESPACE_CHARS and not ns_raw.upper().startswith("AWS/"):
            namespace = ns_raw
        else:
            r.warn(ns_var, ns_raw, DEFAULT_NAMESPACE,
                   "a namespace is 1-255 of A-Z a-z 0-9 space . _ # : / - and must not start with AWS/")

    dims: Tuple[str, ...] = ()
    dims_raw = r.raw("SIDECAR_EMF_DIMENSIONS")
    if dims_raw is not None:
        items = [x.strip() for x in dims_raw.split(",") if x.strip()]
        lookup = {x.lower(): x for x in EMF_DIMENSIONS}
        good = [lookup[x.lower()] for x in items if x.lower() in lookup and x.lower() != "functionname"]
        bad = [x for x in items if x.lower() not in lookup and x.lower() != "functionname"]
        good = list(dict.fromkeys(good))
        if bad:
            r.warn("SIDECAR_EMF_DIMENSIONS", dims_raw, ",".join(good),
                   f"unknown dimension(s) {', '.join(bad)}; allowed: {', '.join(EMF_DIMENSIONS)}")
        dims = tuple(good)

    idle = r.int_range("SIDECAR_COLDSTART_IDLE_MS", d.coldstart_idle_ms, 0, 3_600_000)

    detected = _arch(machine)
    arch = r.conv("SIDECAR_ARCHITECTURE", detected, lambda v: _choice(_norm_arch(v), tuple(PRICE_PER_GB_S)),
                  "expected x86_64 or arm64")
    price = r.float_range("SIDECAR_PRICE_PER_GB_S", PRICE_PER_GB_S[arch], 0.0, 1.0)
    price_req = r.float_range("SIDECAR_PRICE_PER_REQUEST", PRICE_PER_REQUEST, 0.0, 1.0)

    patterns, extend = _throttle_patterns(r)

    types = d.telemetry_types
    types_raw = r.raw("SIDECAR_TELEMETRY_TYPES")
    if types_raw is not None:
        items = [x.strip().lower() for x in types_raw.split(",") if x.strip()]
        bad = [x for x in items if x not in TELEMETRY_TYPES]
        good = tuple(dict.fromkeys(x for x in items if x in TELEMETRY_TYPES))
        if "platform" not in good:
            good = ("platform",) + good  # every signal comes from platform records
        if bad or not items:
            r.warn("SIDECAR_TELEMETRY_TYPES", types_raw, ",".join(good),
                   f"allowed: {', '.join(TELEMETRY_TYPES)}" + (f"; unknown: {', '.join(bad)}" if bad else ""))
        types = good

    port = r.int_range("SIDECAR_LISTENER_PORT", d.listener_port, 0, 65535)
    buf_timeout = r.int_range("SIDECAR_BUFFER_TIMEOUT_MS", d.buffer_timeout_ms, 25, 30000)
    buf_items = r.int_range("SIDECAR_BUFFER_MAX_ITEMS", d.buffer_max_items, 1000, 10000)
    buf_bytes = r.int_range("SIDECAR_BUFFER_MAX_BYTES", d.buffer_max_bytes, 262144, 1048576)
    queue_max = r.int_range("SIDECAR_QUEUE_MAX", d.queue_max, 10, 1_000_000)

    mode, interval, explicit = d.flush_mode, d.flush_interval_ms, False
    flush_raw = r.raw("SIDECAR_FLUSH")
    if flush_raw is not None:
        parsed = parse_flush(flush_raw)
        if parsed is None:
            r.warn("SIDECAR_FLUSH", flush_raw, d.flush_mode,
                   "expected adaptive, end, periodic[:ms] or continuous[:ms] with ms from 100 to 600000")
        else:
            mode, explicit = parsed[0], parsed[1] is not None
            interval = parsed[1] if parsed[1] is not None else d.flush_interval_ms
    budget = r.int_range("SIDECAR_FLUSH_BUDGET_MS", d.flush_budget_ms, 0, 10000)
    margin = r.int_range("SIDECAR_FLUSH_MARGIN_MS", d.flush_margin_ms, 0, 5000)
    max_delay = r.int_range("SIDECAR_MAX_EXPORT_DELAY_MS", d.max_export_delay_ms, 1000, 3_600_000)
    drain = r.int_range("SIDECAR_SHUTDOWN_DRAIN_MS", d.shutdown_drain_ms, 0, 1500)
    otlp_logs = r.flag("SIDECAR_OTLP_LOGS", True)

    settings = Settings(
        log_level=level, function_name=function_name, function_version=function_version, memory_mb=memory_mb,
        region=region, initialization_type=init_type, service=service, architecture=arch, emf_enabled=emf,
        emf_namespace=namespace, emf_dimensions=dims, coldstart_idle_ms=idle, price_per_gb_s=price,
        price_per_request=price_req, throttle_patterns=patterns, throttle_patterns_extend=extend,
        telemetry_types=types, listener_port=port, buffer_timeout_ms=buf_timeout, buffer_max_items=buf_items,
        buffer_max_bytes=buf_bytes, queue_max=queue_max, flush_mode=mode, flush_interval_ms=interval, flush_interval_explicit=explicit,
        flush_budget_ms=budget, flush_margin_ms=margin, max_export_delay_ms=max_delay, shutdown_drain_ms=drain, otlp_logs=otlp_logs,
    )
    return _platform_settings(r, settings, arch), r.warnings


def _platform_settings(r: _Reader, settings: Settings, arch: str) -> Settings:
    """The platform-mode and cost settings (modes.py, pricing.py, tenancy.py) on top of the others."""
    from . import modes, pricing

    mode, warning = modes.detect(r.env)
    if warning:
        r.warnings.append(warning)
    schema = r.raw("SIDECAR_TELEMETRY_SCHEMA")
    if schema is not None and schema.lower() == "auto":
        schema = None
    if schema is not None and schema not in modes.SCHEMAS:
        r.warn("SIDECAR_TELEMETRY_SCHEMA", schema, "auto", f"expected auto or one of {', '.join(modes.SCHEMAS)}")
        schema = None
    tenant_dim = r.flag("SIDECAR_TENANT_DIMENSION", False)
    tenant_max = r.int_range("SIDECAR_TENANT_DIMENSION_MAX", 20, 1, 1000)
    klass = r.conv("SIDECAR_PRICE_REGION_CLASS", pricing.region_class(settings.region),
                   lambda v: _choice(v.lower(), pricing.REGION_CLASSES),
                   f"expected one of {', '.join(pricing.REGION_CLASSES)}")
    init_billing = r.conv("SIDECAR_INIT_BILLING", "reported", lambda v: _choice(v.lower(), pricing.INIT_BILLING),
                          f"expected one of {', '.join(pricing.INIT_BILLING)}")
    listed = pricing.list_prices(klass, arch)
    price, price_req = settings.price_per_gb_s, settings.price_per_request
    if r.raw("SIDECAR_PRICE_PER_GB_S") is None:
        price = listed[0] if listed is not None else None
    if r.raw("SIDECAR_PRICE_PER_REQUEST") is None:
        price_req = listed[1] if listed is not None else None
    return for_mode(settings._replace(
        telemetry_schema=schema, tenant_dimension=tenant_dim, tenant_dimension_max=tenant_max,
        price_region_class=klass, init_billing=init_billing, price_per_gb_s=price, price_per_request=price_req),
        mode)


def for_mode(settings: Settings, mode: str) -> Settings:
    """Settings for a platform mode (modes.py): on Lambda Managed Instances the flush runs on the background
    timer (adaptive/end become periodic) and the init type is lambda-managed-instances. The lifecycle calls it
    again when the Extensions API reveals LMI at registration."""
    from . import modes

    if mode != modes.MANAGED_INSTANCES:
        return settings._replace(platform_mode=modes.DEFAULT, managed_instances=False)
    return settings._replace(platform_mode=mode, managed_instances=True, initialization_type=modes.LMI_INIT_TYPE,
                             flush_mode=modes.lmi_flush_mode(settings.flush_mode))


def parse_flush(value: str) -> Optional[Tuple[str, Optional[int]]]:
    """`adaptive` | `end` | `periodic[:ms]` | `continuous[:ms]` (also `,` as separator) -> (mode, ms)."""
    v = value.strip().lower().replace(",", ":")
    name, _, ms = v.partition(":")
    name = {"periodically": "periodic", "continuously": "continuous"}.get(name.strip(), name.strip())
    if name not in FLUSH_MODES:
        return None
    if not ms.strip():
        return name, None
    if name in ("adaptive", "end"):
        return None
    try:
        n = int(ms.strip(), 10)
    except ValueError:
        return None
    if not 100 <= n <= 600000:
        return None
    return name, n


def _choice(v: str, allowed: Tuple[str, ...]) -> str:
    if v not in allowed:
        raise ValueError
    return v


def _norm_arch(v: str) -> str:
    low = v.strip().lower()
    return {"aarch64": "arm64", "arm": "arm64", "amd64": "x86_64", "x86-64": "x86_64", "x64": "x86_64"}.get(low, low)


def _positive_int(v: str) -> int:
    n = int(v, 10)
    if n <= 0:
        raise ValueError
    return n


def _throttle_patterns(r: _Reader) -> Tuple[Tuple[str, ...], bool]:
    """SIDECAR_THROTTLE_PATTERNS: comma-separated regular expressions (case-insensitive).

    A leading `+` adds them to the defaults; `off` disables throttle detection; empty keeps the defaults.
    """
    raw = r.raw("SIDECAR_THROTTLE_PATTERNS")
    if raw is None:
        return (), False
    if raw.lower() in ("off", "none", "false", "0"):
        return ("(?!)",), False  # a pattern that never matches
    extend = raw.startswith("+")
    body = raw[1:] if extend else raw
    import re  # only for a pattern list of the user's own

    items = [x.strip() for x in body.split(",") if x.strip()]
    good, bad = [], []
    for x in items:
        try:
            re.compile(x)
            good.append(x)
        except re.error:
            bad.append(x)
    if bad:
        used = ("+" if extend else "") + ",".join(good) if good else "the default patterns"
        r.warn("SIDECAR_THROTTLE_PATTERNS", raw, used, f"not a valid regular expression: {', '.join(bad)}")
    if not good:
        return (), False
    return tuple(good), extend
