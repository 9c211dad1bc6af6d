"""A self-contained HTML page for a demo report: inline SVG charts, no scripts, no external resources."""

from __future__ import annotations

import html
import math
from typing import Any, Dict, List, Optional

_COLORS = {"success": "#2e7d32", "error": "#c62828", "failure": "#c62828", "timeout": "#ef6c00",
           "crash": "#6a1b9a", "init_error": "#6a1b9a"}
_INIT = "#1565c0"
_POST = "#90a4ae"


def _e(v: Any) -> str:
    return html.escape("-" if v is None else str(v))


def _num(v: Any, digits: int = 1) -> str:
    return "-" if v is None else (f"{v:.{digits}f}" if isinstance(v, float) else str(v))


def log_ticks(vmax: float) -> List[float]:
    """Ticks 1, 2, 5, 10, 20, 50, ... from 1 ms to the first tick at or above vmax."""
    ticks = [1.0]
    while ticks[-1] < vmax:
        last = ticks[-1]
        ticks.append(last * (2.5 if str(last).startswith("2") else 2))
    return ticks


def legend() -> str:
    """Every colour the charts use, with its meaning."""
    items = [(_COLORS["success"], "success"), (_COLORS["error"], "error (handled or failure)"),
             (_COLORS["timeout"], "timeout"), (_COLORS["crash"], "crash / init error"), (_INIT, "init"),
             (_POST, "post-runtime (extension) time"), ("#000", "caller-observed latency (tick)")]
    return '<p class="note">' + " ".join(
        f'<span style="display:inline-block;width:12px;height:12px;background:{c};vertical-align:middle"></span> '
        f'{_e(t)}&nbsp;&nbsp;' for c, t in items) + "</p>"


def latency_chart(rows: List[Dict[str, Any]], width: int = 860, height: int = 260) -> str:
    """Bars per invocation: platform duration (colour = status) with the caller-observed latency as a tick."""
    if not rows:
        return "<p>No invocations.</p>"
    left, bottom, top = 60, 60, 20
    plot_w, plot_h = width - left - 20, height - bottom - top
    vmax = max(max(r.get("durationMs") or 0, r.get("latencyMs") or 0) for r in rows) or 1.0
    ticks = log_ticks(vmax)
    lo, hi = math.log10(ticks[0]), math.log10(ticks[-1])

    def y_of(v: float) -> float:   # log scale: a 1,501 ms timeout does not flatten 22-58 ms bars
        return top + plot_h - plot_h * (math.log10(max(v, ticks[0])) - lo) / (hi - lo)

    step = plot_w / len(rows)
    bar = max(4.0, step * 0.6)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
             f'aria-label="latency per invocation">']
    for v in ticks:
        y = y_of(v)
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{width - 20}" y2="{y:.1f}" stroke="#eee"/>'
                     f'<text x="{left - 6}" y="{y + 4:.1f}" font-size="11" text-anchor="end">{v:g}</text>')
    parts.append(f'<text x="14" y="{top + plot_h / 2:.0f}" font-size="11" transform="rotate(-90 14 '
                 f'{top + plot_h / 2:.0f})" text-anchor="middle">milliseconds (log scale)</text>')
    for i, r in enumerate(rows):
        x = left + i * step + (step - bar) / 2
        d = float(r.get("durationMs") or 0)
        h = top + plot_h - y_of(d)
        color = _COLORS.get(r.get("outcome") or r.get("status"), "#455a64")
        tip = (f"#{r['n']} {r['label']}: duration {_num(r.get('durationMs'))} ms, caller latency "
               f"{_num(r.get('latencyMs'))} ms, status {r.get('status')}")
        parts.append(f'<rect x="{x:.1f}" y="{top + plot_h - h:.1f}" width="{bar:.1f}" height="{h:.1f}" '
                     f'fill="{color}"><title>{_e(tip)}</title></rect>')
        lat = float(r.get("latencyMs") or 0)
        ly = y_of(lat)
        parts.append(f'<line x1="{x - 2:.1f}" y1="{ly:.1f}" x2="{x + bar + 2:.1f}" y2="{ly:.1f}" stroke="#000" '
                     f'stroke-width="2"><title>{_e(tip)}</title></line>')
        parts.append(f'<text x="{x + bar / 2:.1f}" y="{top + plot_h + 14}" font-size="10" '
                     f'text-anchor="middle">{r["n"]}</text>')
        if r.get("coldStart"):
            parts.append(f'<text x="{x + bar / 2:.1f}" y="{top + plot_h + 28}" font-size="9" fill="{_INIT}" '
                         f'text-anchor="middle">cold</text>')
    parts.append(f'<text x="{left + plot_w / 2:.0f}" y="{height - 8}" font-size="11" text-anchor="middle">'
                 "invocation (bar: platform duration, coloured by status; black tick: caller-observed latency)"
                 "</text></svg>")
    return "".join(parts)


def timeline_chart(bars: List[Dict[str, Any]], width: int = 860) -> str:
    """Init and invoke phases on one time axis: runtime part solid, post-runtime (extension) part grey."""
    if not bars:
        return "<p>No platform events.</p>"
    left, row_h, top = 120, 18, 20
    height = top + row_h * len(bars) + 40
    plot_w = width - left - 20
    end = max(b["start"] + b["totalMs"] / 1000 for b in bars) or 1.0
    scale = plot_w / end
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
             f'aria-label="init and invoke timeline">']
    for i in range(6):
        t = end * i / 5
        x = left + t * scale
        parts.append(f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{height - 30}" stroke="#eee"/>'
                     f'<text x="{x:.1f}" y="{height - 16}" font-size="10" text-anchor="middle">{t:.2f}s</text>')
    for i, b in enumerate(bars):
        y = top + i * row_h
        x = left + b["start"] * scale
        w_run = max(1.0, b["runtimeMs"] / 1000 * scale)
        w_all = max(w_run, b["totalMs"] / 1000 * scale)
        color = _INIT if b["kind"] == "init" else _COLORS.get(b.get("status"), "#455a64")
        tip = (f"{b['label']}: starts at {b['start']:.3f} s, runtime {b['runtimeMs']:.1f} ms, "
               f"until report {b['totalMs']:.1f} ms (platform durationMs {b.get('reportedMs', 0):.1f}), "
               f"status {b.get('status')}")
        parts.append(f'<text x="{left - 6}" y="{y + 12}" font-size="10" text-anchor="end">{_e(b["label"])}</text>')
        parts.append(f'<rect x="{x:.1f}" y="{y + 3}" width="{w_all:.1f}" height="{row_h - 6}" fill="{_POST}">'
                     f'<title>{_e(tip)}</title></rect>')
        parts.append(f'<rect x="{x:.1f}" y="{y + 3}" width="{w_run:.1f}" height="{row_h - 6}" fill="{color}">'
                     f'<title>{_e(tip)}</title></rect>')
    parts.append(f'<text x="{left + plot_w / 2:.0f}" y="{height - 2}" font-size="11" text-anchor="middle">'
                 "seconds since the first platform event (blue: init; grey tail: post-runtime time)</text></svg>")
    return "".join(parts)


def _g(v: Any) -> str:
    return "-" if v is None else (f"{v:.3g}" if isinstance(v, float) else str(v))


def _table(headers: List[str], rows: List[List[Any]]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def timeline_labels(bars: List[Dict[str, Any]], rows: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """Timeline rows labelled as the invocations table shows them: `#n step` (inits stay `init`)."""
    by_request: Dict[Optional[str], Dict[str, Any]] = {r.get("requestId"): r for r in rows}
    out = []
    for b in bars:
        r = by_request.get(b.get("requestId"))
        out.append(dict(b, label=f"#{r['n']} {r['label']}"[:18]) if r is not None and b.get("kind") != "init" else b)
    return out


def render(report: Dict[str, Any]) -> str:
    rows = report.get("invocations", [])
    inv_table = _table(
        ["#", "step", "cold start", "init ms", "duration ms", "post-runtime ms", "billed ms", "memory MB",
         "caller latency ms", "outcome"],
        [[r["n"], r["label"], ("re-init" if r.get("initPhase") == "invoke" else "yes") if r.get("coldStart") else "no",
          _num(r.get("initMs")), _num(r.get("durationMs")), _num(r.get("postRuntimeMs")), _num(r.get("billedMs")),
          f"{_num(r.get('maxMemoryUsedMB'))} / {_num(r.get('memorySizeMB'))}", _num(r.get("latencyMs"), 2),
          r.get("outcome", "") + (f" ({'FunctionError: ' if r.get('outcome') == 'error' else ''}{r['errorType']})"
                                  if r.get("errorType") else "")] for r in rows])
    emf = report.get("emf", {})
    emf_table = _table(["metric", "unit", "data points", "sum (counts only)", "min", "median", "max"],
                       [[k, v["unit"], v["count"], _g(v["total"]) if v.get("kind") == "count" else "",
                         _g(v.get("min")), _g(v.get("median")), _g(v.get("max"))] for k, v in emf.items()])
    o = report.get("otlp", {})
    listed = o.get("invocationSpans", []) + o.get("initSpans", [])
    span_table = _table(["span", "trace", "faas.coldstart", "status", "duration ms", "error.type"],
                        [[s["name"], s["traceId"][:16], s["attributes"].get("faas.coldstart"), s["status"],
                          _num(s["durationMs"]), s["attributes"].get("error.type")]
                         for s in sorted(o.get("invocationSpans", []) + o.get("initSpans", []),
                                         key=lambda s: s.get("startNs", 0))])
    inst_table = _table(["instrument", "unit", "type", "temporality", "points"],
                        [[k, v["unit"], v["type"], v["temporality"], v["points"]]
                         for k, v in sorted(o.get("instruments", {}).items())])
    fn = report.get("function", {})
    shut = report.get("shutdown") or {}
    log_lines = "\n".join(report.get("sidecarLog", []))
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>otel-sidecar demo report</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 900px; color: #222; }}
table {{ border-collapse: collapse; font-size: 13px; margin: 0.5em 0 1.5em; }}
th, td {{ border: 1px solid #ddd; padding: 3px 8px; text-align: right; }}
th {{ background: #f5f5f5; }} td:nth-child(2) {{ text-align: left; }}
pre {{ background: #f7f7f7; padding: 0.7em; font-size: 12px; white-space: pre-wrap; word-break: break-all; }}
.note {{ color: #555; font-size: 13px; }}
</style></head><body>
<h1>otel-sidecar: local demo</h1>
<p class="note">Function <code>{_e(fn.get("code"))}</code> ({_e(fn.get("handler"))}), {_e(fn.get("memoryMB"))} MB,
timeout {_e(fn.get("timeoutS"))} s, layer <code>{_e(fn.get("layer"))}</code>. Median caller-observed latency of warm
invokes: <b>{_num(report.get("warmLatencyMedianMs"), 2)} ms</b>. Shutdown: {_e(shut.get("reason"))} in
{_num(shut.get("durationMs"))} ms, extensions {_e(shut.get("extensions"))}.</p>
<h2>Latency per invocation</h2>
{legend()}
{latency_chart(rows)}
<h2>Init and invoke timeline</h2>
{timeline_chart(timeline_labels(report.get("timeline", []), rows))}
<h2>Invocations</h2>
{inv_table}
<h2>EMF metrics written by the sidecar</h2>
{emf_table}
<h2>OTLP received: {o.get("spans", 0)} spans, {o.get("metricPoints", 0)} metric points,
{o.get("logRecords", 0)} log records ({o.get("logsWithTrace", 0)} with a trace id)</h2>
<p class="note">The {len(listed)} invocation and init spans of the {o.get("spans", 0)} received (all spans by
name: {_e(", ".join(f"{k} x{v}" for k, v in (o.get("spansByName") or dict()).items()))}).</p>
{span_table}
{inst_table}
<h2>Sidecar log (non-EMF lines)</h2>
<pre>{_e(log_lines) if log_lines else "(none)"}</pre>
</body></html>
"""
