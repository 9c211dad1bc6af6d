"""The sandbox's JSON report (schema: docs/sandbox-report.md) and CloudWatch-style console lines."""

from __future__ import annotations

from typing import Any, Dict

from .config import LogLine

REPORT_SCHEMA_VERSION = 1


def build_report(sb: Any) -> Dict[str, Any]:
    """The JSON report of one sandbox run (pure over the sandbox's recorded state)."""
    cfg = sb.cfg
    events = sb.events
    logs = sb.log_lines()
    return {
        "schemaVersion": REPORT_SCHEMA_VERSION,
        "function": {
            "name": cfg.function_name, "version": cfg.function_version, "handler": cfg.handler,
            "memorySizeMB": cfg.memory_mb, "timeoutS": cfg.timeout_s, "region": cfg.region,
            "initType": cfg.init_type, "logFormat": cfg.log_format, "tracing": cfg.tracing,
            "layers": [str(x) for x in cfg.layers], "instanceId": sb.instance_id,
            "runtime": cfg.runtime, "runtimeVersion": cfg.runtime_version,
        },
        "environment": {
            "isolation": sb.isolation, "freeze": sb.applied.get("freeze"),
            "memoryCgroup": sb.applied.get("memory_cgroup", False),
            "memoryLimitEnforced": sb.applied.get("memory_limit", False),
            "cpuQuotaApplied": sb.applied.get("cpu_quota", False),
            "cpuQuotaVcpus": sb.applied.get("cpu_quota_vcpus"),
            "hostInterpreters": "hidden" if cfg.hide_host_interpreters and sb.isolation == "namespace" else "visible",
            "network": cfg.network, "forwardedPorts": list(cfg.forward_ports),
            "apiAddress": sb.api_address, "notes": list(sb.notes),
            "apiErrors": list(sb.api_errors),
        },
        "inits": [{"phase": i.phase, "status": i.status, "errorType": i.error_type, "durationMs": i.duration_ms}
                  for i in sb.inits],
        "invocations": [r.to_dict() for r in sb.invocations],
        "resets": [r.to_dict() for r in sb.resets],
        "shutdown": sb.shutdown_result.to_dict() if sb.shutdown_result else None,
        "telemetry": [{"event": ev.event, "deliveries": dict(ev.deliveries)} for ev in events],
        "subscribers": sorted({name for ev in events for name in ev.deliveries}),
        "logs": [log_to_dict(ln) for ln in logs],
    }


def log_to_dict(line: LogLine) -> Dict[str, Any]:
    return {"source": line.source, "time": line.time, "stream": line.stream, "text": line.text,
            "requestId": line.request_id}


def console_line(line: LogLine) -> str:
    """How the CLI prints one captured line: exactly as CloudWatch Logs shows it.

    CloudWatch adds nothing to a line: the platform's lines (START, END, REPORT, ...), the function's
    output and every extension's stdout/stderr land in the function's log stream as written (an EMF
    line stays one valid JSON document). The source of each line is in the report's `logs[].source`.
    Only a framed record (the runtime's telemetry fd) may span lines; it is shown as received.
    """
    return line.text.rstrip("\n")
