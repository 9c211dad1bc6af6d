"""Helpers shared by the sidecar's tests: a dev layer that runs the sidecar from this checkout, and EMF parsing."""

from __future__ import annotations

import json
import shlex
import stat
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, TypeVar, Union

REPO = Path(__file__).resolve().parents[1]
EXTENSION_DIR = REPO / "extension"
SIDECAR_NAME = "otel-sidecar"

# `-E` ignores PYTHON* variables (the function's PYTHONPATH never reaches the sidecar), `-s` drops the user
# site and `-S` the machine's site-packages (and its .pth start-up hooks); the paths arrive as an argument
# instead, so the launcher works the same in both isolation modes.
_BOOT = ("import sys; sys.path[:0] = [p for p in sys.argv.pop(1).split(':') if p]; import runpy; "
         "runpy.run_module('otel_sidecar', run_name='__main__', alter_sys=True)")


def _site_packages() -> List[str]:
    """The dev venv's site-packages (where opentelemetry-sdk and friends are installed)."""
    found = [p for p in sys.path if p.endswith("site-packages") and Path(p).is_dir()]
    venv = sorted((REPO / ".venv" / "lib").glob("python3*/site-packages"))
    return list(dict.fromkeys(found + [str(p) for p in venv]))


def dev_layer(tmp_path: Union[str, Path], name: str = SIDECAR_NAME, python: Optional[str] = None,
              name_interpreter: bool = True) -> Path:
    """A layer directory whose extensions/<name> runs the sidecar from this checkout with the dev venv's packages.

    `name_interpreter=False`: the interpreter's prefix is not among the host paths the sandbox binds, like an
    extension that silently relies on a Python the runtime does not have."""
    layer = Path(tmp_path) / "otel-sidecar-dev-layer"
    ext_dir = layer / "extensions"
    ext_dir.mkdir(parents=True, exist_ok=True)
    exe = python or getattr(sys, "_base_executable", None) or sys.executable
    paths = ":".join([str(EXTENSION_DIR)] + _site_packages())
    script = ext_dir / name
    script.write_text(
        "#!/bin/sh\n"
        "# dev launcher (tests/helpers.py): the sidecar from the checkout, isolated from the function\n"
        f"exec {shlex.quote(exe)} -E -s -S -c {shlex.quote(_BOOT)} {shlex.quote(paths)} "
        f"--name \"$(basename \"$0\")\"\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    # the sandbox's own root hides the host: name the checkout's sidecar and the venv it runs from
    # (and the interpreter's own prefix: a runtime of another Python version does not bring this one)
    prefix = [str(Path(exe).resolve().parents[1]) if python else sys.base_prefix] if name_interpreter else []
    (layer / ".lambda-sandbox-host-paths").write_text("\n".join([str(EXTENSION_DIR)] + prefix + _site_packages())
                                                      + "\n")
    return layer


T = TypeVar("T")


def wait_for(pred: Callable[[], T], timeout: float = 5.0, interval: float = 0.01, what: str = "condition") -> T:
    """Poll pred() until it returns a truthy value and return that value; past `timeout` seconds, fail the test
    with an AssertionError naming `what` (the one bounded poll of the test suite)."""
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {timeout} s (last value: {value!r})")
        time.sleep(interval)


# ---- EMF ---------------------------------------------------------------------------------------------------

def _text(line: Any) -> str:
    return str(getattr(line, "text", line))


def emf_documents(lines: Iterable[Any]) -> List[Dict[str, Any]]:
    """Every EMF document among captured lines (strings or objects with .text), in order."""
    out: List[Dict[str, Any]] = []
    for line in lines:
        text = _text(line).strip()
        if not text.startswith("{") or '"_aws"' not in text:
            continue
        try:
            doc = json.loads(text)
        except ValueError:
            continue
        if isinstance(doc, dict) and isinstance(doc.get("_aws"), dict):
            out.append(doc)
    return out


def sidecar_emf(sb: Any, name: str = SIDECAR_NAME) -> List[Dict[str, Any]]:
    """The EMF documents the sidecar printed in a Sandbox."""
    return emf_documents(sb.extension_lines(name))


def emf_metric_defs(docs: Iterable[Dict[str, Any]]) -> Dict[str, str]:
    """{metric name: unit} over every directive of every document."""
    out: Dict[str, str] = {}
    for doc in docs:
        for directive in doc["_aws"].get("CloudWatchMetrics", []):
            for metric in directive.get("Metrics", []):
                out[metric["Name"]] = metric.get("Unit", "None")
    return out


def emf_dimension_sets(docs: Iterable[Dict[str, Any]], metric: str) -> List[List[str]]:
    """The dimension sets declared for a metric."""
    out: List[List[str]] = []
    for doc in docs:
        for directive in doc["_aws"].get("CloudWatchMetrics", []):
            if any(m["Name"] == metric for m in directive.get("Metrics", [])):
                out.extend(list(d) for d in directive.get("Dimensions", []))
    return out


def emf_values(docs: Iterable[Dict[str, Any]], metric: str, **dims: str) -> List[float]:
    """All values of a metric (value arrays flattened), in documents whose dimension values match `dims`."""
    out: List[float] = []
    for doc in docs:
        if any(doc.get(k) != v for k, v in dims.items()):
            continue
        declared = {m["Name"] for d in doc["_aws"].get("CloudWatchMetrics", []) for m in d.get("Metrics", [])}
        if metric not in declared or metric not in doc:
            continue
        value = doc[metric]
        if isinstance(value, list):
            out.extend(float(v) for v in value)
        else:
            out.append(float(value))
    return out


def sidecar_log_lines(sb: Any, name: str = SIDECAR_NAME) -> List[str]:
    """The sidecar's own diagnostic lines (prefixed), not its EMF output."""
    return [t for t in map(_text, sb.extension_lines(name)) if t.startswith("[otel-sidecar]")]
