"""`lambda-sandbox run` as a new user meets it: exit codes, errors naming the flags typed, full --help."""

from __future__ import annotations

import pytest
from lambda_sandbox import cli

from .conftest import FUNCTIONS

RUN = ["run", "--code", str(FUNCTIONS)]


def test_usage_errors_name_the_flag_typed_and_exit_2(capsys, tmp_path):
    assert cli.main(RUN + ["--handler", "hello.handler", "--memory", "50"]) == 2
    err = capsys.readouterr().err
    assert "--memory 50 is out of range" in err and "memory_mb" not in err
    assert cli.main(["run", "--code", str(tmp_path / "nope"), "--handler", "hello.handler"]) == 2
    err = capsys.readouterr().err
    assert f"--code {tmp_path / 'nope'}: the directory does not exist" in err and "code_dir" not in err
    assert cli.main(RUN + ["--handler", "nodot"]) == 2
    assert "--handler 'nodot' must look like 'module.function'" in capsys.readouterr().err


def test_a_missing_layer_zip_says_so_and_suggests_build_sh(capsys, tmp_path):
    missing = tmp_path / "dist" / "otel-sidecar-layer.zip"
    assert cli.main(RUN + ["--handler", "hello.handler", "--layer", str(missing)]) == 2
    err = capsys.readouterr().err
    assert f"--layer {missing}: the file does not exist" in err and "./build.sh" in err
    bad = tmp_path / "notazip.zip"
    bad.write_text("x")
    assert cli.main(RUN + ["--handler", "hello.handler", "--layer", str(bad)]) == 2
    assert "not a zip file" in capsys.readouterr().err


def test_run_help_explains_every_flag_and_the_exit_codes(capsys):
    with pytest.raises(SystemExit) as done:
        cli.main(["run", "--help"])
    assert done.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    parser = cli.build_parser()
    run = next(a for a in parser._subparsers._group_actions[0].choices.items() if a[0] == "run")[1]
    for action in run._actions:
        assert action.help, f"{action.option_strings} has no help text"
    for flag in ("--init-type", "--tracing", "--log-format", "--function-name", "--isolation", "--freeze"):
        assert flag in text
    assert "exit codes: 0 every invoke succeeded; 1 at least one invoke failed" in text
    assert "2 usage error" in text


class R:
    def __init__(self, outcome: str, status: str = "success") -> None:
        self.outcome, self.status = outcome, status


@pytest.mark.parametrize("outcomes, code", [
    ([("success", "success")] * 3, 0),
    ([], 0),
    ([("success", "success"), ("error", "success")], 1),       # a handled error
    ([("init_error", "error")], 1),                            # e.g. Runtime.HandlerNotFound
    ([("timeout", "timeout")], 1),
    ([("crash", "error")], 1),
    ([("success", "error")], 1),                               # an extension failed after the response
])
def test_exit_code_reflects_the_outcomes(outcomes, code):
    assert cli.exit_code([R(o, s) for o, s in outcomes]) == code


@pytest.mark.sandbox
def test_a_handler_that_does_not_exist_exits_1(capsys):
    assert cli.main(RUN + ["--handler", "hello.nothere", "--count", "2"]) == 1
    out = capsys.readouterr().out
    assert "init_error" in out and "Runtime.HandlerNotFound" in out
    assert "2 of 2 invokes failed: exit code 1" in out
