"""`lambda-sandbox demo`: the main job, locally.

Starts one execution environment with examples/orders and the built layer (dist/otel-sidecar-layer.zip),
exports to the embedded OTLP receiver, runs a scripted mix (cold start, warm invokes, a handled error, a
downstream throttle, a timeout and the re-init after it), shuts down, prints a summary and writes
demo-output/report.json and demo-output/report.html.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from collections import Counter, OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, TextIO

REPO = Path(__file__).resolve().parents[2]
DEFAULT_LAYER = REPO / "dist" / "otel-sidecar-layer.zip"
DEFAULT_CODE = REPO / "examples" / "orders"
EXTENSION = "otel-sidecar"


@dataclass(frozen=True)
class Step:
    label: str
    payload: Dict[str, Any]


def script(warm: int, timeout_s: float, managed: bool = False) -> List[Step]:
    """The scripted mix, in order (on Lambda Managed Instances a timeout fails only its invoke: no re-init)."""
    steps = [Step("cold start", {"order": "A-1"})]
    steps += [Step("warm", {"order": f"A-{n + 2}"}) for n in range(max(0, warm))]
    steps += [
        Step("handled error", {"order": "??", "fail": True}),
        Step("downstream throttle", {"order": "A-7", "throttled": True}),
        Step("warm", {"order": "A-8"}),
        Step("timeout", {"order": "A-9", "sleep_s": round(timeout_s + 1.0, 1)}),
        Step("after timeout" if managed else "after timeout (re-init)", {"order": "A-10"}),
        Step("warm", {"order": "A-11"}),
    ]
    return steps


# ---- pure digests of what the run produced ----------------------------------------------------------------
def _epoch(iso: str) -> float:
    return dt.datetime.strptime(iso, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.timezone.utc).timestamp()


def platform_events(envelopes: Iterable[Dict[str, Any]]) -> List[Dict[str, Any]]:
    return [e for e in envelopes if str(e.get("type", "")).startswith("platform.")]


def _post_runtime_ms(report: Dict[str, Any], duration: Optional[float], runtime: Optional[float]) -> Optional[float]:
    """The report's extensionOverhead span; else report minus runtimeDone duration (wrong after a re-init)."""
    for span in report.get("spans") or ():
        if span.get("name") == "extensionOverhead" and span.get("durationMs") is not None:
            return float(span["durationMs"])
    if duration is None or runtime is None:
        return None
    return round(duration - runtime, 3)


def invocation_rows(steps: Sequence[Step], results: Sequence[Any], envelopes: Iterable[Dict[str, Any]]) -> List[Dict]:
    """One row per invoke: what the caller saw plus the platform's report (cold start, init, billing, memory)."""
    reports = {}
    runtime_done = {}
    inits_before: Dict[str, Dict[str, Any]] = {}
    pending_init: Optional[Dict[str, Any]] = None
    for e in platform_events(envelopes):
        rec = e.get("record") or {}
        if e["type"] == "platform.initReport":
            pending_init = {"phase": rec.get("phase"), "type": rec.get("initializationType"),
                            "ms": (rec.get("metrics") or {}).get("durationMs"), "status": rec.get("status")}
        elif e["type"] == "platform.start" and pending_init is not None:
            inits_before[rec.get("requestId")] = pending_init
            pending_init = None
        elif e["type"] == "platform.report":
            reports[rec.get("requestId")] = rec
        elif e["type"] == "platform.runtimeDone":
            runtime_done[rec.get("requestId")] = rec
    rows = []
    for n, (step, r) in enumerate(zip(steps, results), 1):
        rep = reports.get(r.request_id, {})
        m = rep.get("metrics") or {}
        init = inits_before.get(r.request_id)
        rd = (runtime_done.get(r.request_id) or {}).get("metrics") or {}
        duration = m.get("durationMs", r.duration_ms)
        rows.append({
            "n": n, "label": step.label, "requestId": r.request_id, "outcome": r.outcome,
            "status": rep.get("status", r.status), "errorType": rep.get("errorType", r.error_type),
            "coldStart": bool(init), "initPhase": init and init["phase"],
            "initMs": (init or {}).get("ms", m.get("initDurationMs")),
            "durationMs": duration, "runtimeMs": rd.get("durationMs"),
            "postRuntimeMs": _post_runtime_ms(rep, duration, rd.get("durationMs")),
            "billedMs": m.get("billedDurationMs", r.billed_duration_ms), "memorySizeMB": m.get("memorySizeMB"),
            "maxMemoryUsedMB": m.get("maxMemoryUsedMB", r.max_memory_used_mb),
            "latencyMs": round(r.latency_ms, 3), "startedAt": r.started_at,
        })
    return rows


def emf_digest(lines: Iterable[str]) -> Dict[str, Dict[str, Any]]:
    """Metrics found in the EMF documents the sidecar printed: name -> unit, namespace, values, total."""
    out: Dict[str, Dict[str, Any]] = OrderedDict()
    for line in lines:
        line = line.strip()
        if not line.startswith("{") or '"_aws"' not in line:
            continue
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        for directive in (doc.get("_aws") or {}).get("CloudWatchMetrics", []):
            for metric in directive.get("Metrics", []):
                name = metric.get("Name")
                value = doc.get(name)
                values = value if isinstance(value, list) else [value] if value is not None else []
                entry = out.setdefault(name, {"unit": metric.get("Unit", "None"),
                                              "namespace": directive.get("Namespace"), "values": [], "documents": 0})
                entry["values"].extend(v for v in values if isinstance(v, (int, float)))
                entry["documents"] += 1
    for entry in out.values():
        vals = entry["values"]
        entry["count"] = len(vals)
        # a sum means something for counts only; percents, MB and durations are distributions
        entry["kind"] = "count" if entry["unit"] == "Count" else "distribution"
        entry["total"] = round(sum(vals), 9) if vals else 0
        entry["min"] = min(vals) if vals else None
        entry["median"] = _median(vals)
        entry["max"] = max(vals) if vals else None
    return out


def _g(v: Any) -> str:
    """A metric value with 3 significant digits (1.1e-06 stays visible, 217.578 -> 218)."""
    if v is None:
        return "-"
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def emf_line(name: str, e: Dict[str, Any]) -> str:
    """One summary line per EMF metric: the sum for counts, min/median/max otherwise; n = data points."""
    if e.get("kind") == "count":
        stat = f"sum {_g(e['total'])}"
    else:
        stat = f"min {_g(e['min'])}  median {_g(e['median'])}  max {_g(e['max'])}"
    return f"  {name:<28} {e['unit']:<13} n={e['count']:<4} {stat}\n"


def _span_row(s: Dict[str, Any]) -> Dict[str, Any]:
    return {"name": s["name"], "traceId": s["trace_id"], "status": (s.get("status") or {}).get("code"),
            "durationMs": round((s["end_ns"] - s["start_ns"]) / 1e6, 3), "startNs": s["start_ns"],
            "attributes": {k: v for k, v in (s.get("attributes") or {}).items()
                           if k.startswith(("faas.", "error.", "aws.", "cloud."))}}


def otlp_digest(spans: List[Dict], metrics: List[Dict], logs: List[Dict]) -> Dict[str, Any]:
    """What the OTLP backend received: spans by name, invocation spans, metric instruments, log records."""
    invocation_spans = [s for s in spans if s.get("kind") == "SERVER"]
    init_spans = [s for s in spans if "aws.lambda.init.phase" in (s.get("attributes") or {})]
    instruments: Dict[str, Dict[str, Any]] = OrderedDict()
    for p in metrics:
        entry = instruments.setdefault(p["name"], {"unit": p.get("unit"), "type": p.get("type"),
                                                   "temporality": p.get("temporality"), "points": 0, "sum": 0.0})
        entry["points"] += 1
        entry["sum"] += float(p.get("value") if p.get("value") is not None else p.get("sum") or 0)
    return {
        "spans": len(spans),
        "spansByName": dict(Counter(s["name"] for s in spans).most_common()),
        "invocationSpans": [_span_row(s) for s in sorted(invocation_spans, key=lambda s: s["start_ns"])],
        "initSpans": [_span_row(s) for s in sorted(init_spans, key=lambda s: s["start_ns"])],
        "metricPoints": len(metrics),
        "instruments": instruments,
        "logRecords": len(logs),
        "logsWithTrace": sum(1 for rec in logs if rec.get("trace_id")),
        "logSamples": [str(rec.get("body"))[:160] for rec in logs[:5]],
    }


def timeline(envelopes: Iterable[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """Bars for the init/invoke timeline, from the events' own times (seconds from the first event).

    An invoke bar runs from platform.start to platform.report (when every extension was back in /next), its
    solid part to platform.runtimeDone; the platform's reported durations go into the tooltips.
    """
    evs = platform_events(envelopes)
    if not evs:
        return []
    t0 = min(_epoch(e["time"]) for e in evs)
    bars: List[Dict[str, Any]] = []
    starts: Dict[str, float] = {}
    runtime_end: Dict[str, float] = {}
    init_start: Optional[float] = None
    for e in evs:
        rec, t = e.get("record") or {}, _epoch(e["time"]) - t0
        if e["type"] == "platform.initStart":
            init_start = t
        elif e["type"] == "platform.initReport":
            ms = float((rec.get("metrics") or {}).get("durationMs") or 0)
            start = init_start if init_start is not None else t - ms / 1000
            bars.append({"kind": "init", "label": f"init ({rec.get('phase')})", "start": start,
                         "runtimeMs": ms, "totalMs": ms, "reportedMs": ms, "status": rec.get("status")})
            init_start = None
        elif e["type"] == "platform.start":
            starts[rec.get("requestId")] = t
        elif e["type"] == "platform.runtimeDone":
            runtime_end[rec.get("requestId")] = t
        elif e["type"] == "platform.report":
            rid = rec.get("requestId")
            reported = float((rec.get("metrics") or {}).get("durationMs") or 0)
            start = starts.get(rid, t - reported / 1000)
            total = max(0.0, (t - start) * 1000)
            bars.append({"kind": "invoke", "label": str(rid)[:8], "requestId": rid, "start": start,
                         "runtimeMs": min(total, max(0.0, (runtime_end.get(rid, t) - start) * 1000)),
                         "totalMs": total, "reportedMs": reported, "status": rec.get("status")})
    return sorted(bars, key=lambda b: b["start"])


# ---- printing ---------------------------------------------------------------------------------------------
def _f(v: Any, digits: int = 1) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def print_summary(report: Dict[str, Any], out: TextIO) -> None:
    w = out.write
    w("\nInvocations (platform view from platform.report, latency as the caller saw it)\n")
    w(f"{'#':>3} {'step':<24} {'cold':<5} {'init ms':>8} {'dur ms':>8} {'post ms':>8} {'billed':>7} "
      f"{'mem MB':>9} {'latency':>9}  outcome\n")
    for r in report["invocations"]:
        cold = "yes" if r["coldStart"] else "no"
        if r["coldStart"] and r["initPhase"] == "invoke":
            cold = "re"
        mem = f"{_f(r['maxMemoryUsedMB'])}/{_f(r['memorySizeMB'])}"
        err = r["errorType"] and (f"FunctionError ({r['errorType']})" if r["outcome"] == "error" else r["errorType"])
        status = r["outcome"] + (f" {err}" if err else "")
        w(f"{r['n']:>3} {r['label']:<24} {cold:<5} {_f(r['initMs']):>8} {_f(r['durationMs']):>8} "
          f"{_f(r['postRuntimeMs']):>8} {_f(r['billedMs']):>7} {mem:>9} {_f(r['latencyMs']):>9}  {status}\n")
    emf = report["emf"]
    w(f"\nEMF metrics the sidecar wrote to stdout ({sum(e['documents'] for e in emf.values()) and len(emf)} "
      f"metrics, namespace {next(iter(emf.values()))['namespace'] if emf else '-'})\n")
    if emf:
        w("  (n = data points over all EMF documents; counts show their sum, other units min/median/max)\n")
    for name, e in emf.items():
        w(emf_line(name, e))
    if not emf:
        w("  (none: is the layer built and did the sidecar start? see the extension lines in report.json)\n")
    o = report["otlp"]
    w(f"\nOTLP received by the embedded backend at {report['otlpEndpoint']}\n")
    w(f"  spans {o['spans']}: " + ", ".join(f"{k} x{v}" for k, v in o["spansByName"].items()) + "\n")
    by_request = {r.get("requestId"): r for r in report["invocations"]}
    for s in sorted(o["invocationSpans"] + o["initSpans"], key=lambda s: s["startNs"]):
        a = s["attributes"]
        w(f"    {s['name']:<16} trace {s['traceId'][:12]}  coldstart={a.get('faas.coldstart')!s:<5} "
          f"status={s['status']:<18} {_f(s['durationMs'])} ms "
          f"{span_error(a, by_request.get(a.get('faas.invocation_id')))}\n")
    w(f"  metric points {o['metricPoints']} in {len(o['instruments'])} instruments: "
      + ", ".join(sorted(o["instruments"])) + "\n")
    w(f"  log records {o['logRecords']} ({o['logsWithTrace']} carry the invocation's trace id)\n")
    shut = report.get("shutdown") or {}
    w(f"\nShutdown: {shut.get('reason')} in {_f(shut.get('durationMs'))} ms; extensions {shut.get('extensions')}\n")
    w(f"Caller-observed latency of warm invokes: median {_f(report['warmLatencyMedianMs'], 2)} ms\n")


def span_error(attributes: Dict[str, Any], row: Optional[Dict[str, Any]]) -> str:
    """The span's error.type, with the function's own error type when they differ, as the table shows it:
    `FunctionError (ValueError)`."""
    span_type = attributes.get("error.type") or ""
    fn_type = (row or {}).get("errorType")
    if span_type and fn_type and fn_type != span_type:
        return f"{span_type} ({fn_type})"
    return span_type


def _median(values: List[float]) -> Optional[float]:
    vals = sorted(values)
    if not vals:
        return None
    mid = len(vals) // 2
    return vals[mid] if len(vals) % 2 else (vals[mid - 1] + vals[mid]) / 2


# ---- the run ----------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lambda-sandbox demo", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--layer", default=str(DEFAULT_LAYER), help="the layer zip (default dist/otel-sidecar-layer.zip)")
    p.add_argument("--code", default=str(DEFAULT_CODE), help="function code directory (default examples/orders)")
    p.add_argument("--handler", default="app.handler")
    p.add_argument("--warm", type=int, default=6, help="warm invokes after the cold start (default 6)")
    p.add_argument("--memory", type=int, default=256, help="memory size in MB (default 256)")
    p.add_argument("--timeout", type=float, default=1.5, help="function timeout in seconds (default 1.5)")
    p.add_argument("--out", default="demo-output", help="directory for report.json and report.html")
    p.add_argument("--tracing", choices=["Active", "PassThrough"], default=None,
                   help="X-Ray tracing mode: invocation spans then join the X-Ray trace of each invoke")
    p.add_argument("--isolation", choices=["auto", "namespace", "dirs"], default="auto")
    p.add_argument("--freeze", choices=["auto", "cgroup", "signal", "none"], default="auto")
    p.add_argument("--mode", choices=["default", "managed-instances"], default="default",
                   help="execution mode: default (one invoke at a time, frozen between them) or managed-instances "
                        "(Lambda Managed Instances: the mix dispatched --concurrency at a time, never frozen; "
                        "the sidecar registers for SHUTDOWN only and flushes on its timer)")
    p.add_argument("--concurrency", type=int, default=4,
                   help="managed-instances: invokes in flight at once (default 4)")
    p.add_argument("--verbose", action="store_true", help="also print every log line of the environment")
    return p


def _argument_error(args: Any) -> Optional[str]:
    """The one-line complaint about the demo's arguments (missing layer or example, bad concurrency), if any."""
    layer, code = Path(args.layer), Path(args.code)
    if not layer.is_file():
        return (f"lambda-sandbox demo: the layer {layer} does not exist; build it first with ./build.sh "
                "(or run ./dev demo, which does both)")
    if not (code / "app.py").is_file() and args.code == str(DEFAULT_CODE):
        return (f"lambda-sandbox demo: the example function {code} is missing (run from a clone of the repository "
                "or pass --code)")
    if args.mode == "managed-instances" and not 1 <= args.concurrency <= 64:
        return f"lambda-sandbox demo: --concurrency {args.concurrency} is out of range (1-64)"
    return None


def _invoke_all(sb: Any, steps: List[Step], args: Any, managed: bool, out: TextIO) -> List[Any]:
    """Run the script's invokes (one by one, or dispatched concurrently on LMI), one line per invoke."""
    results: List[Any] = []
    if managed:
        from .managed_instances import dispatch

        print(f"  dispatching {len(steps)} invokes, {args.concurrency} at a time (managed instances)",
              file=out, flush=True)
        results = dispatch(sb, [step.payload for step in steps], args.concurrency)
    for n, step in enumerate(steps, 1):
        r = results[n - 1] if managed else sb.invoke(step.payload)
        if not managed:
            results.append(r)
        print(f"  [{n:>2}/{len(steps)}] {step.label:<24} {r.outcome:<8} {r.latency_ms:9.1f} ms"
              + (f"  {r.error_type}" if r.error_type else ""), file=out, flush=True)
    return results


def _write_report(report: Dict[str, Any], out_dir: Path, out: TextIO) -> None:
    from .html_report import render

    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "report.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    (out_dir / "report.html").write_text(render(report))
    print(f"\nWrote {out_dir / 'report.json'} and {out_dir / 'report.html'} (open it in a browser)", file=out)


def main(argv: Optional[Sequence[str]] = None, out: TextIO = sys.stdout) -> int:
    args = build_parser().parse_args(list(argv or []))
    problem = _argument_error(args)
    if problem:
        print(problem, file=sys.stderr)
        return 2
    layer, code = Path(args.layer), Path(args.code)
    from . import OtlpReceiver, Sandbox, SandboxConfig
    from .report import console_line

    managed = args.mode == "managed-instances"
    steps = script(args.warm, args.timeout, managed)
    receiver = OtlpReceiver().start()
    print(f"demo: function {code} ({args.handler}), layer {layer}, {args.memory} MB, timeout {args.timeout} s; "
          f"OTLP receiver at {receiver.endpoint}", file=out, flush=True)

    def show(line: Any) -> None:
        if args.verbose:
            print("    " + console_line(line), file=out, flush=True)

    cfg = SandboxConfig(code_dir=str(code), handler=args.handler, layers=[str(layer)], memory_mb=args.memory,
                        timeout_s=args.timeout, function_name="orders",
                        env={"OTEL_SERVICE_NAME": "orders", "SIDECAR_EMF_NAMESPACE": "OtelSidecarDemo"},
                        isolation=args.isolation, freeze=args.freeze, otlp_receiver=receiver, tracing=args.tracing,
                        **({"mode": args.mode, "concurrency": args.concurrency} if managed else {}))
    try:
        with Sandbox(cfg, on_log=show) as sb:
            results = _invoke_all(sb, steps, args, managed, out)
            print("  shutting down (the sidecar flushes what is left) ...", file=out, flush=True)
            shut = sb.shutdown()
            # The final export is sent before the sidecar exits; wait (bounded) for the receiver to store it.
            receiver.wait_for(lambda rcv: rcv.spans() and rcv.metrics(), timeout=3.0)
            envelopes = [ev.event for ev in sb.events]
            sidecar_lines = sb.extension_lines(EXTENSION)
            sandbox_report = sb.report()
        otlp = otlp_digest(receiver.spans(), receiver.metrics(), receiver.logs())
        endpoint = receiver.endpoint
    finally:
        receiver.stop()
    rows = invocation_rows(steps, results, envelopes)
    report = {
        "function": {"code": str(code), "handler": args.handler, "memoryMB": args.memory, "timeoutS": args.timeout,
                     "layer": str(layer), "mode": args.mode,
                     "concurrency": args.concurrency if managed else 1},
        "invocations": rows,
        "warmLatencyMedianMs": _median([r["latencyMs"] for r in rows if r["label"] == "warm"]),
        "emf": emf_digest(sidecar_lines),
        "otlp": otlp,
        "otlpEndpoint": endpoint,
        "timeline": timeline(envelopes),
        "shutdown": {"reason": getattr(shut, "reason", None), "durationMs": getattr(shut, "duration_ms", None),
                     "extensions": getattr(shut, "extensions", None)},
        "sidecarLog": [ln for ln in sidecar_lines if not ln.lstrip().startswith("{")],
        "environment": sandbox_report.get("environment"),
        "sandboxReport": sandbox_report,
    }
    print_summary(report, out)
    _write_report(report, Path(args.out), out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
