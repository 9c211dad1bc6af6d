"""The demo's HTML report reads in ten seconds (issue 15): log-scale latency, nice ticks, request ids the
table shows, every colour in the legend, span counts that match, the whole sidecar log."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
from lambda_sandbox import html_report

ROWS = [{"n": n, "label": "warm", "requestId": f"req-{n}", "durationMs": d, "latencyMs": d + 1.0,
         "status": "success", "outcome": "success", "coldStart": False, "errorType": None}
        for n, d in enumerate([22.0, 30.0, 58.0], 1)]
ROWS.append({"n": 4, "label": "timeout", "requestId": "req-4", "durationMs": 1501.0, "latencyMs": 1502.0,
             "status": "timeout", "outcome": "timeout", "coldStart": False, "errorType": "Sandbox.Timedout"})
REPORT = {
    "invocations": ROWS, "function": {}, "shutdown": {},
    "timeline": [{"kind": "invoke", "label": "req-1"[:8], "requestId": r["requestId"], "start": i * 0.5,
                  "runtimeMs": r["durationMs"], "totalMs": r["durationMs"] + 2, "reportedMs": r["durationMs"],
                  "status": r["status"]} for i, r in enumerate(ROWS)],
    "emf": {"Invocations": {"unit": "Count", "count": 4, "kind": "count", "total": 4, "min": 1, "median": 1, "max": 1},
            "EstimatedCost": {"unit": "None", "count": 4, "kind": "distribution", "total": 4.4e-06,
                              "min": 1.1e-06, "median": 1.1e-06, "max": 1.1e-06}},
    "otlp": {"spans": 60, "spansByName": {"invocation": 4, "child": 56}, "metricPoints": 0, "logRecords": 0,
             "logsWithTrace": 0, "instruments": {},
             "invocationSpans": [{"name": "invocation", "traceId": "t" * 32, "status": "OK", "startNs": i,
                                  "durationMs": 1.0, "attributes": {}} for i in range(4)], "initSpans": []},
    "sidecarLog": [f"line {i}" for i in range(100)],
}


def test_a_timeout_does_not_flatten_the_warm_bars():
    svg = html_report.latency_chart(ROWS)
    heights = [float(h) for h in re.findall(r'<rect [^>]*height="([0-9.]+)"', svg)]
    assert min(heights[:3]) > 0.3 * heights[3]   # linear scale would give 22/1501 = 1.5 %
    ticks = re.findall(r'text-anchor="end">([0-9.]+)</text>', svg)
    assert ticks[:4] == ["1", "2", "5", "10"] and ticks[-1] == "2000"
    assert "log scale" in svg


def test_rows_are_matched_by_what_the_table_shows_and_counts_match():
    page = html_report.render(REPORT)
    assert ">#1 warm<" in page and ">#4 timeout<" in page
    assert "The 4 invocation and init spans of the 60 received" in page
    assert "line 0\nline 1" in page and "line 99" in page           # the whole sidecar log
    assert "1.1e-06" in page and "total" not in page.split("EMF metrics")[1].split("<h2>")[0]
    for colour in set(html_report._COLORS.values()) | {html_report._INIT, html_report._POST}:
        assert page.split("<svg")[0].count(colour) >= 1, f"{colour} is not in the legend"


CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)


@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium is not installed (apt-get install -y chromium)")
def test_the_page_renders_in_headless_chromium(tmp_path):
    page = tmp_path / "report.html"
    page.write_text(html_report.render(REPORT))
    shot = tmp_path / "shot.png"
    subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", f"--screenshot={shot}",
                    "--window-size=1000,2400", page.as_uri()], check=True, timeout=60,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000   # a real page, not a blank one
