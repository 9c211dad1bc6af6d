"""OTLP sink: spans, metrics and logs over OTLP/HTTP. Imported lazily, on the worker thread only.

create_sink(settings, env) -> OtlpSink | None (None when OTEL_SDK_DISABLED=true or every signal is off).
Configuration problems never raise: each is logged once (naming the variable or key, the value and the
fallback) and a safe default is used.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path
from typing import Any, Mapping, Optional

log = logging.getLogger("otel_sidecar")


def default_config_path() -> Optional[str]:
    """collector-config/config.yaml of the layer (or of this checkout), found above the package."""
    here = Path(__file__).resolve()
    for parent in list(here.parents)[1:6]:
        candidate = parent / "collector-config" / "config.yaml"
        if candidate.is_file():
            return str(candidate)
    return None


def _read_file(path: str) -> Optional[str]:
    """The text of a config file: None when absent; never blocks (a FIFO) nor reads past the YAML limit."""
    import os
    import stat

    from .config import MAX_YAML_BYTES

    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(0, "not a regular file")
        data = os.read(fd, MAX_YAML_BYTES + 1)
        while len(data) <= MAX_YAML_BYTES:
            more = os.read(fd, MAX_YAML_BYTES + 1 - len(data))
            if not more:
                break
            data += more
    finally:
        os.close(fd)
    # past the limit: enough text for the size check to refuse it, without reading the rest
    return data.decode("utf-8", errors="strict" if len(data) <= MAX_YAML_BYTES else "replace")


def _grpc_available() -> bool:
    try:
        return importlib.util.find_spec("grpc") is not None
    except (ImportError, ValueError):
        return False


def load(env: Mapping[str, str]) -> Any:
    """(OtlpConfig, warnings) for this environment."""
    from .config import load_otlp_config

    return load_otlp_config(env, read_file=_read_file, default_config_path=default_config_path(),
                            grpc_available=_grpc_available())


def create_sink(settings: Any, env: Mapping[str, str]) -> Any:
    """The OTLP sink for these settings and environment, or None when OTLP export is disabled."""
    cfg, warnings = load(env)
    for text in warnings:
        log.warning("OTLP configuration: %s", text)
    if cfg.disabled:
        log.info("OTLP export is off (OTEL_SDK_DISABLED=true)")
        return None
    logs_on = bool(getattr(settings, "otlp_logs", True)) if settings is not None else True
    if not (cfg.traces.enabled or cfg.metrics.enabled or (cfg.logs.enabled and logs_on)):
        log.info("OTLP export is off (every signal's exporter is none)")
        return None
    # headers kept in Secrets Manager / SSM: fetched on their own thread from here (the worker's one-time
    # setup, after the first response), while the OTLP stack below loads; the senders wait for them
    from ..aws_secrets import start as start_header_fetch

    fetch = start_header_fetch(env)
    from .sink import OtlpSink

    mode = getattr(settings, "flush_mode", "adaptive") if settings is not None else "adaptive"
    interval = getattr(settings, "flush_interval_ms", 20000) if settings is not None else 20000
    sink = OtlpSink(cfg, settings, env, logs_enabled=logs_on, flush_mode=mode, flush_interval_ms=interval)
    from ..redact import url as printable

    signals = [f"{sig} -> {printable(exp.endpoint)} ({exp.protocol})" for sig, exp in
               (("traces", cfg.traces), ("metrics", cfg.metrics), ("logs", cfg.logs))
               if exp.enabled and (sig != "logs" or logs_on)]
    extra = f"; headers from {fetch.names}" if fetch is not None else ""
    log.info("OTLP export on: %s%s; %s", ", ".join(signals), extra, stack_versions())
    return sink


def stack_versions() -> str:
    """Which protobuf runs the sidecar's OTLP (compiled upb or pure Python) and the proto classes' version."""
    try:
        from google.protobuf import __version__ as pb_version
        from google.protobuf.internal import api_implementation
        from opentelemetry.proto.version import __version__ as proto_version

        return f"opentelemetry-proto {proto_version}, protobuf {pb_version} ({api_implementation.Type()})"
    except Exception as exc:  # noqa: BLE001 - a diagnostic, never a failure
        return f"protobuf version unknown ({type(exc).__name__})"
