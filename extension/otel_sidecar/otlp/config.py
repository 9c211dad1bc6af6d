"""OTEL_* exporter variables + a collector-style YAML -> OtlpConfig. Pure; never raises.

Precedence: environment variables, then the YAML file, then the defaults of the OTLP specification.
Every invalid value gives ONE warning naming the variable (or YAML key), the value and what is used
instead. Secrets never appear in a warning: header values and the user:password of a URL are never
printed (a header is named by its key, a malformed entry by its position), and every printed URL or value
goes through redact.py. A URL's user:password is used as HTTP Basic auth (an Authorization header) and
removed from the endpoint. Header values are checked here (no CR, LF, NUL or other control characters;
Latin-1 for HTTP, ASCII for gRPC) so that a bad one is dropped once, at start, with one warning naming the
variable and the header, rather than failing every export.

YAML subset (collector-style; anything else is reported and ignored):

    receivers:  {telemetryapi: {}}                      # the sidecar's own source; no options
    processors: {batch: {send_batch_size: 512}}
    exporters:
      otlphttp[/name]: {endpoint, traces_endpoint, metrics_endpoint, logs_endpoint,
                        headers: {k: v}, compression: gzip|none, timeout: 5s|500ms, encoding: proto|json}
      otlp[/name]:     {endpoint, headers, compression, timeout}           # gRPC
    service:
      pipelines: {traces|metrics|logs: {receivers: [...], processors: [...], exporters: [one exporter]}}

`${env:VAR}`, `${env:VAR:-default}` and `${VAR}` are substituted from the environment.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple
from urllib.parse import unquote, urlsplit, urlunsplit

from .. import redact

SIGNALS = ("traces", "metrics", "logs")
DEFAULT_HTTP_ENDPOINT = "http://localhost:4318"
DEFAULT_GRPC_ENDPOINT = "http://localhost:4317"
DEFAULT_TIMEOUT_S = 10.0
PROTOCOLS = ("http/protobuf", "http/json", "grpc")
COMPRESSIONS = ("gzip", "none")
TEMPORALITIES = ("delta", "cumulative", "lowmemory")
SAMPLINGS = ("parent", "always")
DEFAULT_MAX_QUEUE = 2048
DEFAULT_BATCH = 512
DEFAULT_SPOOL_MAX_BYTES = 4 * 1024 * 1024
CONFIG_VARS = ("SIDECAR_COLLECTOR_CONFIG", "OPENTELEMETRY_COLLECTOR_CONFIG_URI",
               "OPENTELEMETRY_COLLECTOR_CONFIG_FILE")

_ENV_REF = re.compile(r"\$\{(?:env:)?([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_HEADER_KEY = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")          # HTAB is the one control a value may hold
ENDPOINT_VARS = ("OTEL_EXPORTER_OTLP_ENDPOINT",) + tuple(f"OTEL_EXPORTER_OTLP_{s.upper()}_ENDPOINT"
                                                        for s in SIGNALS)
MAX_YAML_BYTES = 64 * 1024


@dataclass(frozen=True)
class SignalExport:
    """Where and how one signal is exported."""

    enabled: bool
    endpoint: str                                   # full URL (with /v1/<signal> for HTTP)
    protocol: str                                   # http/protobuf | http/json | grpc
    compression: str                                # gzip | none
    timeout_s: float                                # per request; flush deadlines cut it shorter
    headers: Tuple[Tuple[str, str], ...] = field(default=(), repr=False)   # secrets: never in repr/logs
    certificate: Optional[str] = None               # CA bundle (PEM) to trust for https
    client_certificate: Optional[str] = None        # mTLS
    client_key: Optional[str] = None


@dataclass(frozen=True)
class OtlpConfig:
    disabled: bool                                  # OTEL_SDK_DISABLED
    traces: SignalExport
    metrics: SignalExport
    logs: SignalExport
    service_name: Optional[str]                     # None: the function name is used
    resource_attributes: Tuple[Tuple[str, str], ...]
    temporality: str                                # delta | cumulative | lowmemory
    max_queue: int                                  # per-signal bounded buffer (items; metric points)
    batch_size: int                                 # items per export request
    config_file: Optional[str]                      # the YAML read, if any
    spool_dir: Optional[str] = None                 # unsent data kept across resets (None: off)
    sampling: str = "parent"                        # parent: follow the X-Ray Sampled flag | always
    spool_max_bytes: int = 0

    def signal(self, name: str) -> SignalExport:
        return getattr(self, name)


def load_otlp_config(env: Mapping[str, str], read_file: Optional[Callable[[str], Optional[str]]] = None,
                     default_config_path: Optional[str] = None,
                     grpc_available: bool = False) -> Tuple[OtlpConfig, List[str]]:
    """OtlpConfig from the environment and (through read_file) the YAML; returns (config, warnings).

    Long on purpose: one read per OTEL_* / SIDECAR_OTLP_* variable, in precedence order (signal-specific,
    general, YAML, default), so the whole precedence reads top to bottom in one place."""
    w = _Warn()
    # an endpoint variable that is invalid is reported once, under its own name, even where the config
    # file substitutes it (the layer's default config.yaml has endpoint: ${env:OTEL_EXPORTER_OTLP_ENDPOINT})
    w.bad_urls = {v for v in (_raw(env, n) for n in ENDPOINT_VARS) if v is not None and not _valid_url(v)}
    yaml_cfg, config_file = _load_yaml(env, read_file, default_config_path, w)
    base_protocol = _choice(env, "OTEL_EXPORTER_OTLP_PROTOCOL", None, PROTOCOLS, w)
    base_compression = _choice(env, "OTEL_EXPORTER_OTLP_COMPRESSION", None, COMPRESSIONS, w)
    base_timeout = _timeout(env, "OTEL_EXPORTER_OTLP_TIMEOUT", None, w)
    base_headers = _headers(env, "OTEL_EXPORTER_OTLP_HEADERS", w)
    base_endpoint = _url(env, "OTEL_EXPORTER_OTLP_ENDPOINT", w)
    grpc_warned = False
    exports: Dict[str, SignalExport] = {}
    used: Dict[str, Tuple[str, str]] = {}       # signal -> (endpoint, where it came from)
    for sig in SIGNALS:
        up = sig.upper()
        y = yaml_cfg.get(sig, {})
        protocol = (_choice(env, f"OTEL_EXPORTER_OTLP_{up}_PROTOCOL", None, PROTOCOLS, w) or base_protocol
                    or y.get("protocol") or "http/protobuf")
        if protocol == "grpc" and not grpc_available:
            if not grpc_warned:
                w.add("OTLP protocol 'grpc' (OTEL_EXPORTER_OTLP[_<SIGNAL>]_PROTOCOL or an otlp exporter in the "
                      "config file) needs grpcio, which is not installed with the sidecar; using "
                      "'http/protobuf' instead")
                grpc_warned = True
            protocol = "http/protobuf"
        enabled = _enabled(env, sig, w) and y.get("enabled", True)
        sig_var = f"OTEL_EXPORTER_OTLP_{up}_ENDPOINT"
        sig_endpoint = _url(env, sig_var, w)
        if sig_endpoint is not None:
            endpoint = sig_endpoint if urlsplit(sig_endpoint).path else sig_endpoint + "/"
            source = sig_var
        elif base_endpoint is not None:
            endpoint, source = _join(base_endpoint, sig, protocol), "OTEL_EXPORTER_OTLP_ENDPOINT"
        elif y.get("signal_endpoint"):
            endpoint, source = y["signal_endpoint"], f"{y.get('_where', 'the config file')}.{sig}_endpoint"
        elif y.get("endpoint"):
            endpoint, source = _join(y["endpoint"], sig, protocol), f"{y.get('_where', 'the config file')}.endpoint"
        else:
            endpoint = _join(DEFAULT_GRPC_ENDPOINT if protocol == "grpc" else DEFAULT_HTTP_ENDPOINT, sig, protocol)
            source = "the default"
        endpoint, basic = _split_userinfo(endpoint)
        used[sig] = (endpoint, source)
        compression = (_choice(env, f"OTEL_EXPORTER_OTLP_{up}_COMPRESSION", None, COMPRESSIONS, w)
                       or base_compression or y.get("compression") or "gzip")
        timeout = (_timeout(env, f"OTEL_EXPORTER_OTLP_{up}_TIMEOUT", None, w) or base_timeout
                   or y.get("timeout") or DEFAULT_TIMEOUT_S)
        headers = dict(y.get("headers", {}))
        headers.update(base_headers)
        headers.update(_headers(env, f"OTEL_EXPORTER_OTLP_{up}_HEADERS", w))
        if basic is not None:
            if any(k.lower() == "authorization" for k in headers):
                w.add(f"{source}: the user:password in the URL is not used (an Authorization header is set "
                      "too, and is sent instead)")
            else:
                headers["Authorization"] = basic
        if protocol == "grpc":
            headers = _grpc_headers(headers, sig, w)
        tls = {key: _raw(env, f"OTEL_EXPORTER_OTLP_{up}_{var}") or _raw(env, f"OTEL_EXPORTER_OTLP_{var}")
               for key, var in (("certificate", "CERTIFICATE"), ("client_certificate", "CLIENT_CERTIFICATE"),
                                ("client_key", "CLIENT_KEY"))}
        exports[sig] = SignalExport(bool(enabled), endpoint, protocol, compression, float(timeout),
                                    tuple(sorted(headers.items())), **tls)
        w.resolve(f"OTEL_EXPORTER_OTLP_{up}_PROTOCOL", protocol)
        w.resolve(f"OTEL_EXPORTER_OTLP_{up}_COMPRESSION", compression)
        w.resolve(f"OTEL_EXPORTER_OTLP_{up}_TIMEOUT", f"{float(timeout) * 1000:g}ms")
    for sig in SIGNALS:
        w.resolve(f"OTEL_EXPORTER_OTLP_{sig.upper()}_ENDPOINT", _describe({sig: used[sig]}))
    w.resolve("OTEL_EXPORTER_OTLP_ENDPOINT", _describe(used))
    w.resolve("OTEL_EXPORTER_OTLP_PROTOCOL", exports["traces"].protocol)
    w.resolve("OTEL_EXPORTER_OTLP_COMPRESSION", exports["traces"].compression)
    w.resolve("OTEL_EXPORTER_OTLP_TIMEOUT", f"{exports['traces'].timeout_s * 1000:g}ms")
    temporality = _choice(env, "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", None, TEMPORALITIES, w,
                          lower=True)
    # Delta by default: an execution environment lives minutes to hours and each one is its own stream
    # (its own faas.instance); cumulative sums would restart from zero at every cold start and make the
    # backend stitch thousands of short resets. Delta points from many environments simply add up.
    temporality = temporality or "delta"
    w.resolve("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", temporality)
    cfg = OtlpConfig(
        disabled=_flag(env, "OTEL_SDK_DISABLED", False, w),
        traces=exports["traces"], metrics=exports["metrics"], logs=exports["logs"],
        service_name=(env.get("OTEL_SERVICE_NAME") or "").strip() or None,
        resource_attributes=_resource_attributes(env, w),
        temporality=temporality,
        max_queue=_int(env, "SIDECAR_OTLP_MAX_QUEUE", yaml_cfg.get("_max_queue", DEFAULT_MAX_QUEUE), 1, 1_000_000, w),
        batch_size=_int(env, "SIDECAR_OTLP_BATCH_SIZE", yaml_cfg.get("_batch", DEFAULT_BATCH), 1, 100_000, w),
        config_file=config_file,
        spool_dir=_spool_dir(env),
        sampling=_sampling(env, w),
        spool_max_bytes=_int(env, "SIDECAR_OTLP_SPOOL_MAX_BYTES", DEFAULT_SPOOL_MAX_BYTES, 0, 512 * 1024 * 1024, w),
    )
    return cfg, [text for text in w.items if text]


# OTEL_TRACES_SAMPLER values we can follow for spans the sidecar derives (they cost the function nothing)
TRACES_SAMPLERS = {"always_on": "always", "parentbased_always_on": "parent"}


def _sampling(env: Mapping[str, str], w: _Warn) -> str:
    """SIDECAR_OTLP_SAMPLING, else OTEL_TRACES_SAMPLER (always_on | parentbased_always_on), else `always`.

    Why `always` by default: Lambda gives every invoke an X-Ray header, and without Active tracing (most
    functions) or a sampled caller it says Sampled=0; following it ("parent") would export no invocation spans
    at all for those functions. Our spans are built from platform records after the response, so exporting
    them costs the function nothing; they still join the header's trace. `parent` keeps X-Ray's sampling
    decision (metrics and logs still count every invocation)."""
    if _raw(env, "SIDECAR_OTLP_SAMPLING") is not None:
        return _choice(env, "SIDECAR_OTLP_SAMPLING", "always", SAMPLINGS, w) or "always"
    v = _raw(env, "OTEL_TRACES_SAMPLER")
    if v is None:
        return "always"
    if v.lower() in TRACES_SAMPLERS:
        return TRACES_SAMPLERS[v.lower()]
    w.bad("OTEL_TRACES_SAMPLER", v, "always_on",
          f"the sidecar's spans follow one of {', '.join(TRACES_SAMPLERS)} (ratio samplers are not applied)")
    return "always"


def _spool_dir(env: Mapping[str, str]) -> Optional[str]:
    """SIDECAR_OTLP_SPOOL_DIR, `off` to disable; default <TMPDIR or /tmp>/otel-sidecar-spool (kept by resets)."""
    v = _raw(env, "SIDECAR_OTLP_SPOOL_DIR")
    if v is not None and v.lower() in ("off", "none", "false", "0"):
        return None
    return v or ((env.get("TMPDIR") or "/tmp").rstrip("/") + "/otel-sidecar-spool")


class _Warn:
    """The warnings of one load: each a line of at most redact.LINE_LIMIT characters, values bounded."""

    def __init__(self) -> None:
        self.items: List[str] = []
        self.pending: Dict[str, Tuple[str, str, int]] = {}   # name -> (value as printed, why, position)
        self.bad_urls: set = set()                            # endpoint values already reported by variable

    def later(self, name: str, value: str, why: str) -> None:
        """A bad value whose replacement is only known once everything is resolved."""
        self.pending[name] = (redact.value(value), why, len(self.items))
        self.items.append("")

    def resolve(self, name: str, used: Any) -> None:
        if name in self.pending:
            value, why, pos = self.pending.pop(name)
            shown = used if isinstance(used, _Plain) else redact.value(used)
            self.items[pos] = redact.line(f"{name}={value} is invalid ({why}); using {shown} instead")

    def add(self, text: str) -> None:
        text = redact.line(text)
        if text not in self.items:
            self.items.append(text)

    def bad(self, name: str, value: Any, used: Any, why: str) -> None:
        shown = used if isinstance(used, _Plain) else redact.value(used)
        self.add(f"{name}={redact.value(value)} is invalid ({why}); using {shown} instead")


class _Plain(str):
    """A replacement described in words ("'http://localhost:4318' (the default)"), printed as it is."""


def _raw(env: Mapping[str, str], name: str) -> Optional[str]:
    v = env.get(name)
    if v is None:
        return None
    v = str(v).strip()
    return v or None


def _choice(env: Mapping[str, str], name: str, default: Optional[str], allowed: Tuple[str, ...], w: _Warn,
            lower: bool = True) -> Optional[str]:
    v = _raw(env, name)
    if v is None:
        return default
    low = v.lower() if lower else v
    if low in allowed:
        return low
    if default is None:
        w.later(name, v, f"expected one of {', '.join(allowed)}")
    else:
        w.bad(name, v, default, f"expected one of {', '.join(allowed)}")
    return default


def _flag(env: Mapping[str, str], name: str, default: bool, w: _Warn) -> bool:
    v = _raw(env, name)
    if v is None:
        return default
    if v.lower() in ("true", "1", "yes", "on"):
        return True
    if v.lower() in ("false", "0", "no", "off"):
        return False
    w.bad(name, v, default, "expected true or false")
    return default


def _int(env: Mapping[str, str], name: str, default: int, lo: int, hi: int, w: _Warn) -> int:
    v = _raw(env, name)
    if v is None:
        return default
    try:
        n = int(v, 10)
        if lo <= n <= hi:
            return n
    except ValueError:
        pass
    w.bad(name, v, default, f"expected an integer from {lo} to {hi}")
    return default


def _timeout(env: Mapping[str, str], name: str, default: Optional[float], w: _Warn) -> Optional[float]:
    """Timeout in milliseconds, as the OTLP specification says (the Python exporter reads seconds)."""
    v = _raw(env, name)
    if v is None:
        return default
    try:
        ms = float(v)
        if not (0 < ms <= 3_600_000):
            raise ValueError
    except ValueError:
        w.later(name, v, "expected a positive number of milliseconds")
        return default
    if ms < 100:
        # Most likely seconds written for the Python SDK, which reads this variable in seconds.
        w.add(f"{name}={v!r} is read as milliseconds (OTLP specification; the Python SDK reads seconds); "
              f"write {int(ms * 1000)} for {v} s")
    return ms / 1000.0


def _url(env: Mapping[str, str], name: str, w: _Warn) -> Optional[str]:
    """A valid endpoint URL (still with any user:password, split off once the endpoint is chosen)."""
    v = _raw(env, name)
    if v is None:
        return None
    if _valid_url(v):
        return v
    why = (f"no scheme: write {redact.url('http://' + v)!r} or https://..." if "://" not in v
           else "expected an http:// or https:// URL with a host and a valid port")
    w.later(name, redact.url(v), why)
    return None


def _split_userinfo(url: str) -> Tuple[str, Optional[str]]:
    """(the URL without user:password@, the HTTP Basic Authorization value it stood for, or None)."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url, None
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    token = base64.b64encode(f"{unquote(user)}:{unquote(password)}".encode()).decode("ascii")
    return urlunsplit((parts.scheme, hostport, parts.path, parts.query, parts.fragment)), f"Basic {token}"


def _describe(used: Mapping[str, Tuple[str, str]]) -> _Plain:
    """What an invalid endpoint variable was replaced by, in words: "'http://localhost:4318' (the default)"."""
    def base(endpoint: str, sig: str) -> str:
        suffix = f"/v1/{sig}"
        return endpoint[: -len(suffix)] if endpoint.endswith(suffix) else endpoint

    groups: Dict[Tuple[str, str], List[str]] = {}
    for sig, (ep, source) in used.items():
        groups.setdefault((base(ep, sig), source), []).append(sig)
    if len(groups) == 1:
        (ep, source), = groups
        return _Plain(f"{redact.url(ep)!r} ({source})")
    return _Plain(", ".join(f"{redact.url(ep)!r} ({source}) for {' and '.join(sigs)}"
                            for (ep, source), sigs in groups.items()))


def _valid_url(v: str) -> bool:
    try:
        parts = urlsplit(v)
        _ = parts.port
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname) and not _CONTROL.search(v)


def _join(base: str, sig: str, protocol: str) -> str:
    if protocol == "grpc":
        return base
    parts = urlsplit(base)
    return urlunsplit(parts._replace(path=parts.path.rstrip("/") + f"/v1/{sig}"))


def _enabled(env: Mapping[str, str], sig: str, w: _Warn) -> bool:
    name = f"OTEL_{sig.upper()}_EXPORTER"
    v = _raw(env, name)
    if v is None:
        return True
    names = [p.strip().lower() for p in v.split(",") if p.strip()]
    if names == ["none"]:
        return False
    if "otlp" in names:
        return True
    w.bad(name, v, "otlp", "this sidecar exports OTLP only; expected otlp or none")
    return True


def _pairs(raw: str) -> Tuple[List[Tuple[str, str]], List[str]]:
    good, bad = [], []
    for item in raw.split(","):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        key = unquote(key.strip())
        if not sep or not key:
            bad.append(key or item.strip())
            continue
        good.append((key, unquote(value.strip())))
    return good, bad


def header_problem(key: str, value: str, grpc: bool = False) -> Optional[str]:
    """Why this header cannot be sent (None: it can). Never quotes the value."""
    if not _HEADER_KEY.match(key):
        return "its name is not an HTTP token"
    if _CONTROL.search(value):
        return "its value holds a line break or another control character"
    try:
        value.encode("ascii" if grpc else "latin-1")
    except UnicodeEncodeError:
        return "its value is not ASCII (gRPC metadata)" if grpc else \
            "its value has characters outside Latin-1, which HTTP headers cannot carry"
    return None


def _keep_sendable(out: Dict[str, str], dropped: List[str], key: str, value: str, position: int) -> None:
    """Keep the header in `out` if it can be sent, else say in `dropped` why (by key or position only)."""
    why = header_problem(key, value)
    if why:
        dropped.append(f"{_name(key, position)} ({why})")
    else:
        out[key] = value


def parse_headers(raw: str) -> Tuple[Dict[str, str], List[str]]:
    """`key=value,...` (OTEL_EXPORTER_OTLP_HEADERS: percent-decoded, trimmed) -> (headers, what was dropped).

    What was dropped is described by key when the key is a valid header name, else by position ("entry 2"),
    never by text that may be the secret (a missing '=' makes the whole entry the "key").
    """
    out: Dict[str, str] = {}
    dropped: List[str] = []
    position = 0
    for item in raw.split(","):
        if not item.strip():
            continue
        position += 1
        key, sep, value = item.partition("=")
        key = key.strip()
        try:
            key = unquote(key, errors="strict")
            value = unquote(value.strip(), errors="strict").strip()
        except UnicodeDecodeError:
            # without '=' the "key" is the whole entry, value included: name it by position only
            dropped.append(_name(key if sep else "", position) + " (percent-encoding that is not UTF-8)")
            continue
        if not sep or not key:
            dropped.append(f"entry {position} (no '=' between a header name and its value)")
            continue
        _keep_sendable(out, dropped, key, value, position)
    return out, dropped


def check_headers(pairs: Mapping[Any, Any]) -> Tuple[Dict[str, str], List[str]]:
    """A mapping of headers (YAML, a secret's JSON object) -> (the sendable ones, what was dropped, by key)."""
    out: Dict[str, str] = {}
    dropped: List[str] = []
    for position, (key, value) in enumerate(pairs.items(), 1):
        key = str(key).strip()
        if value is None:
            continue
        if isinstance(value, bool):
            value = "true" if value else "false"
        elif isinstance(value, (int, float)):
            value = str(value)
        elif not isinstance(value, str):
            dropped.append(f"{_name(key, position)} (its value is not a string)")
            continue
        value = value.strip()         # a YAML block scalar (|) ends with a newline
        _keep_sendable(out, dropped, key, value, position)
    return out, dropped


def dropped_line(name: str, dropped: List[str]) -> str:
    """One warning for all the headers of one variable (or key) that are not sent."""
    what = "; ".join(dropped)
    return f"{name}: {what}; {'that header is' if len(dropped) == 1 else 'those are'} not sent (values not shown)"


def _name(key: str, position: int) -> str:
    """How a header is named in a warning: by its key when that is a valid name, else by its position."""
    return f"header {key!r}" if _HEADER_KEY.match(key) and len(key) <= 64 else f"entry {position}"


def _headers(env: Mapping[str, str], name: str, w: _Warn) -> Dict[str, str]:
    v = _raw(env, name)
    if v is None:
        return {}
    out, dropped = parse_headers(v)
    if dropped:
        w.add(dropped_line(name, dropped))
    return out


def _grpc_headers(headers: Dict[str, str], sig: str, w: _Warn) -> Dict[str, str]:
    out = {}
    dropped = []
    for key, value in headers.items():
        why = header_problem(key, value, grpc=True)
        if why:
            dropped.append(f"header {key!r} ({why})")
        else:
            out[key] = value
    if dropped:
        w.add(dropped_line(f"OTLP/gRPC {sig}", dropped))
    return out


def _resource_attributes(env: Mapping[str, str], w: _Warn) -> Tuple[Tuple[str, str], ...]:
    v = _raw(env, "OTEL_RESOURCE_ATTRIBUTES")
    if v is None:
        return ()
    good, bad = _pairs(v)
    for item in bad:
        w.bad("OTEL_RESOURCE_ATTRIBUTES", item, "the other attributes", "expected key=value pairs separated by commas")
    return tuple(good)


# ---- collector-style YAML --------------------------------------------------------------------------------
def config_path(env: Mapping[str, str], default_path: Optional[str]) -> Tuple[Optional[str], Optional[str]]:
    """(path, variable that named it); file: URIs are accepted, other URI schemes are not."""
    for var in CONFIG_VARS:
        v = _raw(env, var)
        if v is not None:
            return (v[len("file:"):] if v.startswith("file:") else v), var
    return default_path, None


def _load_yaml(env: Mapping[str, str], read_file: Optional[Callable[[str], Optional[str]]],
               default_path: Optional[str], w: _Warn) -> Tuple[Dict[str, Dict[str, Any]], Optional[str]]:
    path, var = config_path(env, default_path)
    if path is None or read_file is None:
        return {}, None
    if re.match(r"^[a-z][a-z0-9+.-]*:", path) and not path.startswith("/"):
        w.bad(var or "collector config", path, "environment variables only", "only file paths (or file: URIs) are supported")
        return {}, None
    try:
        text = read_file(path)
    except Exception as exc:  # noqa: BLE001 - an unreadable file is a configuration error, not a crash
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        w.bad(var or "collector config", path, _Plain("environment variables only"), f"cannot read it: {why}")
        return {}, None
    if text is None:
        if var is not None:
            w.bad(var, path, _Plain("environment variables only"), "no such file")
        return {}, None
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_YAML_BYTES:
        w.add(f"{redact.value(path)}: the file is {size} bytes, more than the {MAX_YAML_BYTES} allowed; "
              "using environment variables only")
        return {}, None
    doc = _parsed_twin(path, text, read_file) if var is None else None
    if doc is not None:
        return parse_collector_doc(_substitute_doc(doc, env), w, path), path
    out = parse_collector_yaml(substitute_env(text, env), w, path)
    return out, path


def twin_path(path: str) -> str:
    """The JSON twin that the layer build writes next to its default config.yaml (parsed, not substituted)."""
    return (path[:-5] if path.endswith(".yaml") else path) + ".json"


def _parsed_twin(path: str, text: str, read_file: Callable[[str], Optional[str]]) -> Optional[Dict[str, Any]]:
    """The layer's default config as parsed at build time, when its twin was made from exactly this text.

    Loading PyYAML (pure Python in the layer) costs ~80 ms of CPU, ~1 s on a 128 MB function; the default
    pipeline needs none of it. A user's own config file (named by a variable) is always parsed as YAML.
    """
    import hashlib
    import json

    try:
        raw = read_file(twin_path(path))
        twin = json.loads(raw) if raw else None
    except Exception:  # noqa: BLE001 - no usable twin: parse the YAML
        return None
    if not isinstance(twin, dict) or not isinstance(twin.get("config"), dict):
        return None
    if twin.get("sourceSha256") != hashlib.sha256(text.encode("utf-8")).hexdigest():
        return None
    return twin["config"]


def _substitute_doc(node: Any, env: Mapping[str, str]) -> Any:
    """${env:VAR} references in the string leaves of a parsed config (where the default config has them)."""
    if isinstance(node, dict):
        return {k: _substitute_doc(v, env) for k, v in node.items()}
    if isinstance(node, list):
        return [_substitute_doc(v, env) for v in node]
    return substitute_env(node, env) if isinstance(node, str) else node


def substitute_env(text: str, env: Mapping[str, str]) -> str:
    return _ENV_REF.sub(lambda m: env.get(m.group(1)) or (m.group(2) or ""), text)


_EXPORTER_KEYS = {
    "otlphttp": {"endpoint", "traces_endpoint", "metrics_endpoint", "logs_endpoint", "headers", "compression",
                 "timeout", "encoding"},
    "otlp": {"endpoint", "headers", "compression", "timeout", "tls"},
}
_PROCESSOR_KEYS = {"batch": {"send_batch_size", "send_batch_max_size", "timeout"}}
_RECEIVERS = {"telemetryapi"}


def parse_collector_yaml(text: str, w: Any, where: str = "config.yaml") -> Dict[str, Dict[str, Any]]:
    """The per-signal settings the YAML asks for: {signal: {endpoint, protocol, ...}, "_batch": n}."""
    from .yamlsafe import safe_load

    if not isinstance(w, _Warn):
        w = _wrap(w)
    doc, problem = safe_load(text)
    if problem is not None:
        w.add(f"{where}: not used ({problem}); using environment variables only")
        return {}
    return parse_collector_doc(doc or {}, w, where)


def parse_collector_doc(doc: Any, w: Any, where: str = "config.yaml") -> Dict[str, Dict[str, Any]]:
    """parse_collector_yaml after the YAML parser: the document (mappings, lists, scalars) -> settings.

    Long on purpose: it walks the collector document's sections in their order (receivers, exporters,
    processors, service pipelines), warning about each part it cannot use, next to where it is read."""
    if not isinstance(w, _Warn):
        w = _wrap(w)
    if not isinstance(doc, dict):
        w.add(f"{where}: expected a mapping at the top level; using environment variables only")
        return {}
    for key in doc:
        if key not in ("receivers", "processors", "exporters", "service", "extensions", "connectors"):
            w.add(f"{where}: unsupported key {key!r} is ignored")
        elif key in ("extensions", "connectors") and doc[key]:
            w.add(f"{where}: {key!r} are not supported by this sidecar and are ignored")
    receivers = _mapping(doc.get("receivers"), f"{where}: receivers", w)
    for name in receivers:
        if name.split("/")[0] not in _RECEIVERS:
            w.add(f"{where}: receivers.{name} is not supported (only telemetryapi); ignored")
    processors = _mapping(doc.get("processors"), f"{where}: processors", w)
    out: Dict[str, Dict[str, Any]] = {}
    for name, body in processors.items():
        kind = name.split("/")[0]
        if kind not in _PROCESSOR_KEYS:
            w.add(f"{where}: processors.{name} is not supported (only batch); ignored")
            continue
        body = _mapping(body, f"{where}: processors.{name}", w)
        for k in body:
            if k not in _PROCESSOR_KEYS[kind]:
                w.add(f"{where}: processors.{name}.{k} is not supported; ignored")
        size = body.get("send_batch_size")
        if size is not None:
            if isinstance(size, int) and not isinstance(size, bool) and size > 0:
                out["_batch"] = size  # type: ignore[assignment]
            else:
                w.add(f"{where}: processors.{name}.send_batch_size={redact.value(size)} is invalid (expected a positive "
                      f"integer); using {DEFAULT_BATCH} instead")
    exporters = _mapping(doc.get("exporters"), f"{where}: exporters", w)
    parsed_exporters: Dict[str, Dict[str, Any]] = {}
    for name, body in exporters.items():
        kind = name.split("/")[0]
        if kind not in _EXPORTER_KEYS:
            w.add(f"{where}: exporters.{name} is not supported (only otlphttp and otlp); ignored")
            continue
        parsed_exporters[name] = _exporter(kind, name, _mapping(body, f"{where}: exporters.{name}", w), w, where)
    service = _mapping(doc.get("service"), f"{where}: service", w)
    for k in service:
        if k not in ("pipelines", "telemetry", "extensions"):
            w.add(f"{where}: service.{k} is not supported; ignored")
    pipelines = _mapping(service.get("pipelines"), f"{where}: service.pipelines", w)
    have_pipelines = bool(pipelines)
    for pname, body in pipelines.items():
        sig = pname.split("/")[0]
        if sig not in SIGNALS:
            w.add(f"{where}: service.pipelines.{pname} is not supported (traces, metrics, logs); ignored")
            continue
        body = _mapping(body, f"{where}: service.pipelines.{pname}", w)
        names = body.get("exporters") or []
        if not isinstance(names, list):
            names = [names]
        usable = [n for n in names if isinstance(n, str) and n in parsed_exporters]
        for n in names:
            if not isinstance(n, str) or n not in parsed_exporters:
                w.add(f"{where}: service.pipelines.{pname}.exporters names {redact.value(n)}, which is not a supported "
                      "exporter defined under exporters; ignored")
        if len(usable) > 1:
            w.add(f"{where}: service.pipelines.{pname} lists {len(usable)} exporters; this sidecar sends each "
                  f"signal to one destination, using {usable[0]!r}")
        if sig in out:
            continue
        if usable:
            chosen = parsed_exporters[usable[0]]
            entry = {k: v for k, v in chosen.items() if k != "endpoints"}
            entry["_where"] = f"{where}: exporters.{usable[0]}"
            ep = chosen.get("endpoints", {}).get(sig)
            if ep:
                entry["signal_endpoint"] = ep
            out[sig] = entry
        else:
            out[sig] = {"enabled": False}
    if have_pipelines:
        for sig in SIGNALS:
            out.setdefault(sig, {"enabled": False})
    return out


def _wrap(items: Any) -> _Warn:
    ww = _Warn()
    ww.items = items if isinstance(items, list) else []
    return ww


def _mapping(value: Any, where: str, w: _Warn) -> Dict[str, Any]:
    if value is None:
        return {}
    if isinstance(value, dict):
        return {str(k): v for k, v in value.items()}
    w.add(f"{where} must be a mapping, got {type(value).__name__}; ignored")
    return {}


def _exporter(kind: str, name: str, body: Dict[str, Any], w: _Warn, where: str) -> Dict[str, Any]:
    out: Dict[str, Any] = {"protocol": "grpc" if kind == "otlp" else "http/protobuf", "endpoints": {}}
    key = f"{where}: exporters.{name}"
    for k, v in body.items():
        if k not in _EXPORTER_KEYS[kind]:
            w.add(f"{key}.{redact.shorten(k, 60)} is not supported; ignored")
            continue
        if k == "endpoint" or k.endswith("_endpoint"):
            s = v.strip() if isinstance(v, str) else ""
            if v is not None and not isinstance(v, str):
                w.add(f"{key}.{k} is not a string; using the default endpoint")
            elif not s:
                w.add(f"{key}.{k} is empty; using the default endpoint")
            elif not _valid_url(s):
                if s not in w.bad_urls:       # else already reported under the variable substituted here
                    w.add(f"{key}.{k}={redact.url(s)!r} is invalid (expected a URL starting with http:// or "
                          "https://); using the default endpoint")
            elif k == "endpoint":
                out["endpoint"] = s
            else:
                out["endpoints"][k[: -len("_endpoint")]] = s
        elif k == "headers":
            if isinstance(v, dict):
                out["headers"], dropped = check_headers(v)
                if dropped:
                    w.add(dropped_line(f"{key}.headers", dropped))
            else:
                w.add(f"{key}.headers must be a mapping; ignored")
        elif k == "compression":
            s = str(v).strip().lower() if isinstance(v, (str, int, float)) else ""
            if s in COMPRESSIONS:
                out["compression"] = s
            else:
                w.add(f"{key}.compression={redact.value(v)} is invalid (expected gzip or none); using 'gzip' instead")
        elif k == "timeout":
            secs = _duration(v)
            if secs is None:
                w.add(f"{key}.timeout={redact.value(v)} is invalid (expected a duration like 5s or 500ms); "
                      f"using '{DEFAULT_TIMEOUT_S:g}s' instead")
            else:
                out["timeout"] = secs
        elif k == "encoding":
            s = str(v).strip().lower() if isinstance(v, (str, int, float)) else ""
            if s in ("proto", "json"):
                out["protocol"] = "http/json" if s == "json" else "http/protobuf"
            else:
                w.add(f"{key}.encoding={redact.value(v)} is invalid (expected proto or json); using 'proto' instead")
    return out


def _duration(v: Any) -> Optional[float]:
    """Collector durations: 5s, 500ms, 1m, 1.5s; a bare number is seconds."""
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, float)):
        return float(v) if 0 < v < float("inf") else None
    if not isinstance(v, str) or len(v) > 40:
        return None
    m = re.match(r"^\s*([0-9]*\.?[0-9]+)\s*(ms|s|m)?\s*$", str(v))
    if not m:
        return None
    n = float(m.group(1))
    secs = n / 1000.0 if m.group(2) == "ms" else n * 60 if m.group(2) == "m" else n
    return secs if secs > 0 else None


def with_overrides(cfg: OtlpConfig, **changes: Any) -> OtlpConfig:
    return replace(cfg, **changes)
