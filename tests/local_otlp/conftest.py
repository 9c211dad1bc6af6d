"""Shared by the local OTLP endpoint's tests: the function's SDK as a layer, free ports, the sandbox factory."""

from __future__ import annotations

import re
import socket
from importlib import metadata
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
INSTRUMENTED = REPO / "examples" / "instrumented"
# what the function imports: the SDK, its OTLP/HTTP exporter and the X-Ray propagator (with their requirements)
FUNCTION_DISTRIBUTIONS = ("opentelemetry-sdk", "opentelemetry-exporter-otlp-proto-http",
                          "opentelemetry-propagator-aws-xray")


def _requirements(names):
    seen, todo, dists = set(), list(names), []
    while todo:
        name = todo.pop()
        key = re.sub(r"[-_.]+", "-", name).lower()
        if key in seen:
            continue
        seen.add(key)
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        dists.append(dist)
        for req in dist.requires or ():
            if "extra ==" not in req:
                todo.append(re.split(r"[ ;<>=!~\[(]", req, maxsplit=1)[0])
    return dists


@pytest.fixture(scope="session")
def sdk_layer(tmp_path_factory) -> Path:
    """A layer whose python/ links the test venv's copies of the function's dependencies (top-level packages and
    their dist-info, for the SDK's entry points); the venv's site-packages is visible inside the sandbox (the
    dev layer names it), so the links resolve there too."""
    layer = tmp_path_factory.mktemp("sdk-layer")
    target = layer / "python"
    target.mkdir()
    for dist in _requirements(FUNCTION_DISTRIBUTIONS):
        base = Path(dist.locate_file(""))
        for f in dist.files or ():
            top = f.parts[0]
            if top.startswith("..") or top == "__pycache__" or top.endswith(".pth"):
                continue
            src, dst = base / top, target / top
            if src.exists() and not dst.exists():
                dst.symlink_to(src)
    assert (target / "opentelemetry").exists() and (target / "google").exists()
    return layer


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
