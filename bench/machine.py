"""Where and with what the benchmark ran: machine, kernel, Python, dependency versions, git commit."""

from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any, Dict, Optional

PACKAGES = ("otel-sidecar", "awslambdaric", "opentelemetry-api", "opentelemetry-sdk",
            "opentelemetry-exporter-otlp-proto-http", "opentelemetry-proto", "protobuf",
            "opentelemetry-instrumentation-aws-lambda", "aws-lambda-powertools", "matplotlib")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def mem_total_mb() -> Optional[int]:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    except OSError:
        pass
    return None


def versions() -> Dict[str, Optional[str]]:
    out: Dict[str, Optional[str]] = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def git_commit(repo: Path) -> Optional[str]:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=repo, capture_output=True,
                              text=True, timeout=5).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def machine() -> Dict[str, Any]:
    return {"cpu": cpu_model(), "cores": os.cpu_count(), "memTotalMB": mem_total_mb(),
            "kernel": platform.release(), "os": platform.system(), "arch": platform.machine(),
            "python": platform.python_version(),
            "cgroup": "v2" if Path("/sys/fs/cgroup/cgroup.controllers").exists() else "v1",
            "loadavg": list(os.getloadavg()) if hasattr(os, "getloadavg") else None}
