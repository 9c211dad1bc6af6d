"""lambda_sandbox: a local emulator of one AWS Lambda execution environment (see docs/ARCHITECTURE.md)."""

from __future__ import annotations

from typing import Any

from .config import ConfigError, InvokeResult, LogLine, SandboxConfig, ShutdownResult
from .environment import Sandbox

__all__ = ["Sandbox", "SandboxConfig", "InvokeResult", "ShutdownResult", "LogLine", "ConfigError", "OtlpReceiver"]


def __getattr__(name: str) -> Any:
    # The OTLP receiver is imported lazily: it pulls in opentelemetry-proto, which plain runs don't need.
    if name == "OtlpReceiver":
        from .otlp_receiver import OtlpReceiver

        return OtlpReceiver
    raise AttributeError(f"module 'lambda_sandbox' has no attribute {name!r}")
