"""`lambda-sandbox run` end to end: console lines and the JSON report (docs/sandbox-report.md)."""

from __future__ import annotations

import io
import json

import pytest
from lambda_sandbox import cli

from tests.fixtures.extensions import extension_layer

from .conftest import FUNCTIONS

pytestmark = pytest.mark.sandbox


def test_run_with_payload_file_extension_and_report(tmp_path):
    payloads = tmp_path / "p.jsonl"
    payloads.write_text('{"n": 1}\n{"n": 2}\n\n{"n": 3}\n')
    report_path = tmp_path / "report.json"
    args = cli.build_parser().parse_args([
        "run", "--code", str(FUNCTIONS), "--handler", "hello.handler", "--layer", str(extension_layer(tmp_path)),
        "--payload-file", str(payloads), "--env", "GREETING=hi", "--memory", "256", "--report", str(report_path)])
    out = io.StringIO()
    assert cli.run(args, out=out) == 0
    text = out.getvalue()
    assert text.count("START RequestId:") == 3 and text.count("REPORT RequestId:") == 3
    assert "Memory Size: 256 MB" in text and "[recorder] " not in text   # CloudWatch adds no prefix
    assert any(ln.startswith("{\"recorder\":\"") for ln in text.splitlines())   # its JSON lines, as printed
    report = json.loads(report_path.read_text())
    assert report["schemaVersion"] == 1
    assert [i["response"]["event"] for i in report["invocations"]] == [{"n": 1}, {"n": 2}, {"n": 3}]
    assert all(i["outcome"] == "success" and i["latencyMs"] > 0 for i in report["invocations"])
    assert report["shutdown"]["reason"] == "spindown"
    assert report["shutdown"]["extensions"] == {"recorder": "Exited"}
    assert report["subscribers"] == ["recorder"]
    reports = [t for t in report["telemetry"] if t["event"]["type"] == "platform.report"]
    assert len(reports) == 3 and all("recorder" in t["deliveries"] for t in reports)
    sources = {ln["source"] for ln in report["logs"]}
    assert sources == {"platform", "function", "extension:recorder"}
    assert report["environment"]["freeze"] in ("cgroup", "signal") and report["environment"]["apiErrors"] == []


def test_bad_arguments_name_the_value(capsys):
    assert cli.main(["run", "--code", str(FUNCTIONS), "--handler", "nodot", "--count", "1"]) == 2
    assert "--handler 'nodot'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["run", "--code", str(FUNCTIONS), "--handler", "hello.handler", "--env", "NOEQUALS"])
