"""Dependencies of the in-process variants, installed once into layer directories under bench/out/deps.

The sandbox's runtime starts Python without site-packages (like Lambda), so a function's libraries must come
from its code or a layer's python/ directory; installing them with `pip --target` keeps the comparison fair
(the function pays for importing them, as it would in Lambda).
"""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Dict, List

# layer name -> distributions (pinned to the versions of this environment when installed here)
LAYERS: Dict[str, List[str]] = {
    "otel-inproc": ["opentelemetry-instrumentation-aws-lambda", "opentelemetry-sdk",
                    "opentelemetry-exporter-otlp-proto-http"],
    "powertools": ["aws-lambda-powertools"],
}


def _pinned(names: List[str]) -> List[str]:
    out = []
    for name in names:
        try:
            out.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            out.append(name)
    return out


def ensure_layer(out_dir: Path, name: str, log=print) -> Path:
    """A layer directory whose python/ holds the packages of LAYERS[name]; installed on first use."""
    layer = out_dir / "deps" / name
    stamp = layer / ".installed"
    reqs = _pinned(LAYERS[name])
    if stamp.exists() and stamp.read_text() == "\n".join(reqs):
        return layer
    log(f"installing {', '.join(reqs)} into {layer}/python (once)")
    target = layer / "python"
    target.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--upgrade",
                    "--target", str(target), *reqs], check=True)
    stamp.write_text("\n".join(reqs))
    return layer
