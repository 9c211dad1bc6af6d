"""`lambda-sandbox demo` with the built layer: the scripted mix, the summary, report.json and report.html."""

from __future__ import annotations

import io
import json
import re

import pytest
from lambda_sandbox import demo

pytestmark = [pytest.mark.slow, pytest.mark.sandbox]


def test_demo_runs_the_mix_and_writes_both_reports(layer_zip, tmp_path):
    out = io.StringIO()
    code = demo.main(["--layer", str(layer_zip), "--warm", "1", "--out", str(tmp_path / "demo")], out=out)
    text = out.getvalue()
    assert code == 0, text
    report = json.loads((tmp_path / "demo" / "report.json").read_text())
    rows = report["invocations"]
    labels = [r["label"] for r in rows]
    assert labels == ["cold start", "warm", "handled error", "downstream throttle", "warm", "timeout",
                      "after timeout (re-init)", "warm"]
    by = {r["label"]: r for r in rows}
    assert rows[0]["coldStart"] and rows[0]["initPhase"] == "init" and rows[0]["initMs"] > 0
    assert by["after timeout (re-init)"]["coldStart"] and by["after timeout (re-init)"]["initPhase"] == "invoke"
    assert by["handled error"]["outcome"] == "error" and by["handled error"]["errorType"] == "ValueError"
    assert by["timeout"]["outcome"] == "timeout" and by["timeout"]["status"] == "timeout"
    assert all(r["billedMs"] >= r["durationMs"] for r in rows if r["outcome"] != "timeout")
    # the sidecar saw it all: EMF counts, and the OTLP backend got one invocation span per invoke
    emf = report["emf"]
    assert emf["Invocations"]["total"] == len(rows)
    assert emf["DownstreamThrottles"]["total"] == 1 and emf["Timeouts"]["total"] == 1
    assert emf["ColdStart"]["total"] == 2
    assert len(report["otlp"]["invocationSpans"]) == len(rows) and len(report["otlp"]["initSpans"]) == 2
    assert report["otlp"]["logRecords"] > 0 and report["shutdown"]["extensions"] == {"otel-sidecar": "Exited"}
    # the printed summary has one line per invoke, then the EMF and OTLP sections
    assert len(re.findall(r"^\s+\d+ (cold start|warm|handled error|downstream throttle|timeout|after timeout)",
                          text, re.M)) == len(rows)
    assert "EMF metrics the sidecar wrote" in text and "OTLP received by the embedded backend" in text
    # the HTML page is self-contained: inline SVG, no scripts, nothing fetched from elsewhere
    page = (tmp_path / "demo" / "report.html").read_text()
    assert page.count("<svg") == 2 and "<script" not in page
    assert not re.search(r"""(src|href)=["']?https?:""", page)


def test_demo_without_a_built_layer_says_how_to_build_it(tmp_path, capsys):
    assert demo.main(["--layer", str(tmp_path / "missing.zip")]) == 2
    assert "./build.sh" in capsys.readouterr().err
