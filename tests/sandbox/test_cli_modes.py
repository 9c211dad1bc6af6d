"""`lambda-sandbox run` with the platform-mode flags: bad values exit 2 naming the flag; LMI, SnapStart and
per-payload tenants end to end through the report."""

from __future__ import annotations

import io
import json
from collections import Counter

import pytest
from lambda_sandbox import cli

from .conftest import FUNCTIONS

RUN = ["run", "--code", str(FUNCTIONS), "--handler", "hello.handler"]


@pytest.mark.parametrize("extra, words", [
    (["--mode", "managed-instances", "--concurrency", "0"], "--concurrency 0 is out of range"),
    (["--mode", "managed-instances", "--concurrency", "65"], "--concurrency 65 is out of range"),
    (["--concurrency", "4"], "--concurrency 4 needs --mode managed-instances"),
    (["--snapstart", "--tenant-id", "blue"], "--tenant-id 'blue' cannot be combined with --snapstart True"),
    (["--snapstart", "--mode", "managed-instances"], "--snapstart True is not available with --mode"),
    (["--tenant-id", "a\tb"], "--tenant-id 'a\\tb' is invalid"),
])
def test_bad_mode_values_exit_2_naming_the_flag(capsys, extra, words):
    assert cli.main(RUN + extra) == 2
    err = capsys.readouterr().err
    assert words in err, err
    assert "tenant_id=" not in err and "concurrency=" not in err


@pytest.mark.parametrize("extra", [["--mode", "lmi"], ["--logs-api", "off"], ["--lmi-error-status", "x"],
                                   ["--concurrency", "many"]])
def test_unknown_choices_are_argparse_errors(capsys, extra):
    with pytest.raises(SystemExit) as done:
        cli.main(RUN + extra)
    assert done.value.code == 2 and extra[0] in capsys.readouterr().err


def run(tmp_path, extra, handler="hello.handler"):
    report_path = tmp_path / "report.json"
    args = cli.build_parser().parse_args(["run", "--code", str(FUNCTIONS), "--handler", handler, "--quiet",
                                          "--report", str(report_path)] + extra)
    out = io.StringIO()
    code = cli.run(args, out=out)
    return code, json.loads(report_path.read_text()), out.getvalue()


def events(report, type_):
    return [t["event"]["record"] for t in report["telemetry"] if t["event"]["type"] == type_]


@pytest.mark.sandbox
def test_managed_instances_run_with_concurrency_8(tmp_path):
    code, report, _ = run(tmp_path, ["--mode", "managed-instances", "--concurrency", "8", "--count", "8",
                                     "--payload", '{"sleep_s": 0.2}'], handler="modes_app.concurrent")
    assert code == 0
    ids = [i["requestId"] for i in report["invocations"]]
    assert len(set(ids)) == 8 and all(i["outcome"] == "success" for i in report["invocations"])
    for type_ in ("platform.start", "platform.report"):
        assert Counter(r["requestId"] for r in events(report, type_)) == {i: 1 for i in ids}
    assert events(report, "platform.runtimeDone") == []
    assert report["function"]["initType"] == "lambda-managed-instances"
    assert report["environment"]["freeze"] == "none"


@pytest.mark.sandbox
def test_snapstart_run(tmp_path):
    code, report, _ = run(tmp_path, ["--snapstart", "--count", "2"], handler="snap_hooks.handler")
    assert code == 0
    assert [r["status"] for r in events(report, "platform.restoreReport")] == ["success"]
    assert report["invocations"][0]["response"]["ran"] == ["before_two", "before_one", "after_restore"]


@pytest.mark.sandbox
def test_payload_file_tenants_get_one_environment_each(tmp_path):
    lines = [{"tenantId": "blue", "payload": {"n": 1}}, {"tenantId": "green", "payload": {"n": 2}},
             {"tenantId": "blue", "payload": {"n": 3}}, {"n": 4}]
    path = tmp_path / "p.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    code, report, text = run(tmp_path, ["--payload-file", str(path), "--tenant-id", "red"],
                             handler="modes_app.tenant")
    assert code == 0
    envs = {e["tenantId"]: e["report"] for e in report["tenantEnvironments"]}
    assert list(envs) == ["blue", "green", "red"]
    for tenant, rep in envs.items():
        assert {i["response"]["tenantId"] for i in rep["invocations"]} == {tenant}
        assert {r["tenantId"] for r in events(rep, "platform.report")} == {tenant}
        assert len(events(rep, "platform.initStart")) == 1
    assert text.count("invoke ") == 4
