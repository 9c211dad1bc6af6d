"""The function this sidecar serves, as OpenTelemetry resource attributes, and the request envelopes built
on them (one per signal, rebuilt when platform.initStart reveals the instance id)."""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional

from . import encode
from .config import OtlpConfig

SCOPE = "otel_sidecar"
SIGNALS = ("traces", "metrics", "logs")


def sidecar_version() -> str:
    try:
        from .. import __version__

        return str(__version__)
    except Exception:  # noqa: BLE001
        return ""


def _from_settings(settings: Any, name: str) -> Any:
    return getattr(settings, name, None) if settings is not None else None


class FunctionResource:
    """faas.* / cloud.* of the function (environment first, then settings) and the envelopes that carry them."""

    def __init__(self, cfg: OtlpConfig, settings: Any, env: Mapping[str, str]) -> None:
        self.cfg = cfg
        self.function_name = _from_settings(settings, "function_name") or env.get("AWS_LAMBDA_FUNCTION_NAME") \
            or "unknown"
        if self.function_name == "unknown" and env.get("AWS_LAMBDA_FUNCTION_NAME"):
            self.function_name = env["AWS_LAMBDA_FUNCTION_NAME"]
        self.function_version = env.get("AWS_LAMBDA_FUNCTION_VERSION") or \
            _from_settings(settings, "function_version") or "$LATEST"
        self.region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or _from_settings(settings, "region")
        mem = env.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE") or _from_settings(settings, "memory_mb")
        try:
            self.max_memory: Optional[int] = int(mem) * 1024 * 1024 if mem else None
        except ValueError:
            self.max_memory = None
        self.instance = env.get("AWS_LAMBDA_LOG_STREAM_NAME")
        self.envelopes: Dict[str, encode.Envelope] = self._envelopes()

    def learn_instance(self, instance: Optional[str]) -> bool:
        """faas.instance from platform.initStart's instanceId (extensions get no AWS_LAMBDA_LOG_STREAM_NAME);
        True when it changed (the envelopes are rebuilt)."""
        if not instance or instance == self.instance:
            return False
        self.instance = instance
        self.envelopes = self._envelopes()
        return True

    def _envelopes(self) -> Dict[str, encode.Envelope]:
        attrs = self.attributes()
        return {sig: encode.Envelope(sig, attrs, SCOPE, sidecar_version()) for sig in ("traces", "logs", "metrics")}

    def attributes(self) -> Dict[str, Any]:
        attrs: Dict[str, Any] = {"telemetry.sdk.language": "python", "telemetry.sdk.name": "otel-sidecar",
                                 "telemetry.sdk.version": sidecar_version(),
                                 "cloud.provider": "aws", "cloud.platform": "aws_lambda",
                                 "faas.name": self.function_name, "faas.version": self.function_version}
        if self.region:
            attrs["cloud.region"] = self.region
        if self.instance:
            attrs["faas.instance"] = self.instance
        if self.max_memory:
            attrs["faas.max_memory"] = self.max_memory
        attrs["aws.log.group.names"] = (f"/aws/lambda/{self.function_name}",)
        for k, v in self.cfg.resource_attributes:
            attrs[k] = v
        attrs["service.name"] = self.cfg.service_name or dict(self.cfg.resource_attributes).get("service.name") \
            or self.function_name
        return attrs
