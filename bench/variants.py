"""The variants compared side by side, and how each becomes a SandboxConfig."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
FUNCTIONS = BENCH / "functions"
LAYER_ZIP = REPO / "dist" / "otel-sidecar-layer.zip"
SIDECAR = "otel-sidecar"
STATIC_LAYERS = BENCH / "layers"
LOCAL_PORT = 14318                    # the local endpoint in variant h (not 4318: another OTLP tool may hold it)


@dataclass(frozen=True)
class Variant:
    """One way of running the same trivial function."""

    key: str                          # a..f
    name: str                         # short label for tables and plots
    description: str
    function: str = "trivial"         # directory under bench/functions
    handler: str = "app.handler"
    sidecar: bool = False
    dep_layer: Optional[str] = None   # bench.deps layer name, or a directory under bench/layers
    receiver: Optional[str] = None    # None | "ok" | "stall" | "refuse"
    env: Dict[str, str] = field(default_factory=dict)


VARIANTS: List[Variant] = [
    Variant("a", "bare", "the function alone, no extension"),
    Variant("b", "sidecar", "the function + otel-sidecar exporting to the embedded OTLP receiver",
            sidecar=True, receiver="ok"),
    Variant("c", "otel-inproc", "opentelemetry-instrumentation-aws-lambda in the handler (force_flush "
            "before returning), OTLP/HTTP to the same receiver", function="otel_inproc",
            dep_layer="otel-inproc", receiver="ok"),
    Variant("d", "powertools-emf", "aws-lambda-powertools Metrics printing EMF from the handler",
            function="powertools", dep_layer="powertools"),
    Variant("e", "sidecar-stalled", "otel-sidecar, the OTLP endpoint accepts and never answers",
            sidecar=True, receiver="stall"),
    Variant("f", "sidecar-refused", "otel-sidecar, the OTLP endpoint refuses connections",
            sidecar=True, receiver="refuse"),
    # the function's own spans: the same in-process instrumentation exporting to the sidecar's local endpoint
    # (h), beside (i) = (c) against a backend answering after 50 ms (a round trip to another region); the
    # sidecar's backend in (h) answers after the same 50 ms
    Variant("h", "otel-local", "the in-process instrumentation of (c) exporting to otel-sidecar's local OTLP "
            "endpoint; the sidecar forwards to a receiver answering after 50 ms", function="otel_inproc",
            dep_layer="otel-inproc", sidecar=True, receiver="slow:50",
            env={"BENCH_OTLP_ENDPOINT": f"http://127.0.0.1:{LOCAL_PORT}",
                 "SIDECAR_LOCAL_OTLP_ENDPOINT": f"127.0.0.1:{LOCAL_PORT}"}),
    Variant("i", "otel-inproc-50ms", "(c) against a receiver answering after 50 ms", function="otel_inproc",
            dep_layer="otel-inproc", receiver="slow:50"),
    Variant("g", "null-extension", "an extension that only registers and answers /next: what the platform "
            "charges for having any extension at all", dep_layer="null-extension"),
]
BY_KEY = {v.key: v for v in VARIANTS}


def sidecar_layer(out_dir: Path) -> Path:
    """The built layer zip when present, else a dev layer running the sidecar from this checkout."""
    if LAYER_ZIP.exists():
        return LAYER_ZIP
    import sys

    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from tests.helpers import dev_layer

    return dev_layer(out_dir / "dev-layer")


def sandbox_config(variant: Variant, *, memory_mb: int, cpu_quota: bool, layers: Dict[str, Path],
                   receiver: Any = None, function: Optional[str] = None, timeout_s: float = 30.0,
                   extra_env: Optional[Dict[str, str]] = None) -> Any:
    """The SandboxConfig of a variant (function may override the variant's function directory)."""
    from lambda_sandbox import SandboxConfig

    layer_list: List[Any] = []
    if variant.sidecar:
        layer_list.append(layers[SIDECAR])
    if variant.dep_layer:
        layer_list.append(layers[variant.dep_layer])
    env = dict(variant.env)
    env.update(extra_env or {})
    return SandboxConfig(code_dir=str(FUNCTIONS / (function or variant.function)), handler=variant.handler,
                         layers=layer_list, memory_mb=memory_mb, timeout_s=timeout_s, env=env,
                         function_name=f"bench-{variant.name}", cpu_quota=cpu_quota, init_timeout_s=120.0,
                         otlp_receiver=receiver)


def select(keys: Sequence[str]) -> List[Variant]:
    return [BY_KEY[k] for k in keys]
