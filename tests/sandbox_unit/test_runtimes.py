"""runtimes.py and runtime_setup.py: the supported runtimes, what Lambda gives each, the Node.js bootstrap."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from lambda_sandbox import SandboxConfig, envvars, runtimes
from lambda_sandbox.config import ConfigError
from lambda_sandbox.isolation import Layout
from lambda_sandbox.runtime_setup import provided_bootstrap


def test_every_runtime_of_the_cli_contract_is_supported_with_its_family_and_os():
    table = {name: (runtimes.lookup(name).family, runtimes.lookup(name).os) for name in runtimes.SUPPORTED_RUNTIMES}
    assert table == {
        "python3.9": ("python", "al2"), "python3.10": ("python", "al2"), "python3.11": ("python", "al2"),
        "python3.12": ("python", "al2023"), "python3.13": ("python", "al2023"),
        "nodejs18.x": ("nodejs", "al2"), "nodejs20.x": ("nodejs", "al2023"), "nodejs22.x": ("nodejs", "al2023"),
        "provided.al2023": ("provided", "al2023"), "provided.al2": ("provided", "al2"),
    }


@pytest.mark.parametrize("name", ["java21", "python3.8", "nodejs16.x", "provided", "", "Python3.12"])
def test_an_unsupported_runtime_is_an_error_naming_the_supported_ones(tmp_path, name):
    with pytest.raises(ConfigError) as err:
        SandboxConfig(code_dir=tmp_path, handler="index.handler", runtime=name or "x")
    message = str(err.value)
    assert f"runtime={(name or 'x')!r} is not supported" in message
    assert all(r in message for r in runtimes.SUPPORTED_RUNTIMES)


def test_init_start_runtime_version_and_execution_env_follow_the_runtime(tmp_path):
    node = SandboxConfig(code_dir=tmp_path, handler="index.handler", runtime="nodejs20.x")
    assert node.runtime_version == "nodejs:20.v0"
    assert node.runtime_spec.execution_env == "AWS_Lambda_nodejs20.x"
    provided = SandboxConfig(code_dir=tmp_path, handler="bootstrap", runtime="provided.al2023")
    assert provided.runtime_version == "provided:al2023.v0" and provided.runtime_spec.execution_env is None
    pinned = SandboxConfig(code_dir=tmp_path, handler="app.handler", runtime="python3.12",
                           runtime_version="python:3.12.v29")
    assert pinned.runtime_version == "python:3.12.v29"


def test_the_default_runtime_is_the_sandbox_interpreters_python(tmp_path):
    cfg = SandboxConfig(code_dir=tmp_path, handler="app.handler")
    assert cfg.runtime == runtimes.host_python_runtime()
    assert cfg.runtime_version == f"python:{cfg.runtime[len('python'):]}.v0"


def test_host_interpreters_are_hidden_by_default_only_on_non_python_runtimes(tmp_path):
    def hidden(runtime, flag=None):
        return SandboxConfig(code_dir=tmp_path, handler="a.b", runtime=runtime, host_interpreters=flag) \
            .hide_host_interpreters
    assert [hidden("python3.11"), hidden("nodejs20.x"), hidden("provided.al2")] == [False, True, True]
    assert [hidden("python3.11", False), hidden("nodejs20.x", True)] == [True, False]


def test_handler_of_a_provided_runtime_is_free_form_but_others_need_module_function(tmp_path):
    assert SandboxConfig(code_dir=tmp_path, handler="bootstrap", runtime="provided.al2").handler == "bootstrap"
    with pytest.raises(ConfigError, match="must look like 'module.function'"):
        SandboxConfig(code_dir=tmp_path, handler="index", runtime="nodejs20.x")


def _inputs(tmp_path, runtime):
    cfg = SandboxConfig(code_dir=tmp_path, handler="index.handler", runtime=runtime)
    return envvars.EnvInputs(cfg=cfg, mode="namespace", opt="/opt", task="/var/task", runtime_dir="/var/runtime",
                             tmp="/tmp", api_address="127.0.0.1:9001", instance_id="2026/12/02/[$LATEST]ab",
                             host_bin_dir=None)


def test_path_and_ld_library_path_per_runtime_as_in_lambda(tmp_path):
    al2 = envvars.runtime_env(_inputs(tmp_path, "provided.al2"), 3)
    al2023 = envvars.runtime_env(_inputs(tmp_path, "provided.al2023"), 3)
    node = envvars.runtime_env(_inputs(tmp_path, "nodejs20.x"), 3)
    assert al2["PATH"] == "/usr/local/bin:/usr/bin/:/bin:/opt/bin"
    assert al2["LD_LIBRARY_PATH"] == "/lib64:/usr/lib64:/var/runtime:/var/runtime/lib:/var/task:/var/task/lib:/opt/lib"
    assert al2023["PATH"] == node["PATH"] == "/var/lang/bin:/usr/local/bin:/usr/bin/:/bin:/opt/bin"
    assert node["LD_LIBRARY_PATH"].startswith("/var/lang/lib:/lib64:")
    for env in (al2, al2023, node):      # the bootstrap adds its own; RAPID gives neither
        assert "AWS_EXECUTION_ENV" not in env and "PYTHONPATH" not in env
        assert env["LAMBDA_RUNTIME_DIR"] == "/var/runtime" and env["_HANDLER"] == "index.handler"
    python = envvars.runtime_env(_inputs(tmp_path, "python3.12"), 3)
    assert python["AWS_EXECUTION_ENV"] == "AWS_Lambda_python3.12" and python["PYTHONPATH"].startswith("/var/task:")


@given(st.integers(min_value=128, max_value=10240))
def test_node_heap_flags_split_memory_as_lambdas_bootstrap(memory_mb):
    semi, old = runtimes.node_heap_flags(memory_mb)
    new_space = memory_mb // 10
    assert semi == f"--max-semi-space-size={new_space // 2}"
    assert old == f"--max-old-space-size={memory_mb - new_space}"


def _run_bootstrap(tmp_path, env, node="/bin/echo"):
    spec = runtimes.lookup("nodejs20.x")
    script = tmp_path / "bootstrap"
    script.write_text(runtimes.node_bootstrap_script(spec, node, "/opt", "/var/runtime", "/var/task"))
    script.chmod(0o755)
    return subprocess.run([str(script)], env={"PATH": "/usr/bin:/bin", **env}, capture_output=True, text=True,
                          timeout=10)


def test_node_bootstrap_execs_node_with_lambdas_flags(tmp_path):
    proc = _run_bootstrap(tmp_path, {"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "1024"})
    assert proc.returncode == 0
    assert proc.stdout.split() == ["--expose-gc", "--max-http-header-size", "81920", *runtimes.node_heap_flags(1024),
                                   "/var/runtime/index.mjs"]


def test_node_bootstrap_sets_node_path_and_execution_env_for_node(tmp_path):
    show = tmp_path / "show"
    show.write_text('#!/bin/sh\necho "$NODE_PATH|$AWS_EXECUTION_ENV"\n')
    show.chmod(0o755)
    proc = _run_bootstrap(tmp_path, {}, node=str(show))
    assert proc.stdout.strip() == ("/opt/nodejs/node20/node_modules:/opt/nodejs/node_modules:"
                                   "/var/runtime/node_modules:/var/runtime:/var/task|AWS_Lambda_nodejs20.x")
    kept = _run_bootstrap(tmp_path, {"NODE_PATH": "/mine"}, node=str(show))
    assert kept.stdout.strip() == "/mine|AWS_Lambda_nodejs20.x"


def test_node_bootstrap_runs_the_exec_wrapper_or_fails_with_lambdas_codes(tmp_path):
    missing = _run_bootstrap(tmp_path, {"AWS_LAMBDA_EXEC_WRAPPER": str(tmp_path / "nope")})
    assert (missing.returncode, missing.stdout.strip()) == (127, f"{tmp_path / 'nope'}: does not exist")
    plain = tmp_path / "plain"
    plain.write_text("#!/bin/sh\n")
    not_exec = _run_bootstrap(tmp_path, {"AWS_LAMBDA_EXEC_WRAPPER": str(plain)})
    assert (not_exec.returncode, not_exec.stdout.strip()) == (126, f"{plain}: is not an executable")
    wrapper = tmp_path / "wrapper"
    wrapper.write_text('#!/bin/sh\necho wrapped\nexec "$@"\n')
    wrapper.chmod(0o755)
    wrapped = _run_bootstrap(tmp_path, {"AWS_LAMBDA_EXEC_WRAPPER": str(wrapper)})
    assert wrapped.returncode == 0 and wrapped.stdout.splitlines()[0] == "wrapped"
    assert wrapped.stdout.splitlines()[1].startswith("--expose-gc ")


def _layout(tmp_path):
    task, opt = tmp_path / "task", tmp_path / "opt"
    task.mkdir()
    opt.mkdir()
    return Layout("namespace", tmp_path, "/opt", "/var/task", "/var/runtime", "/tmp", opt, task, tmp_path / "rt",
                  tmp_path / "tmp")


def _executable(path: Path) -> None:
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)


def test_provided_bootstrap_prefers_the_code_then_a_layer(tmp_path):
    lay = _layout(tmp_path)
    assert provided_bootstrap(lay) == (None, "Couldn't find valid bootstrap(s): [/var/task/bootstrap /opt/bootstrap]")
    _executable(lay.opt_host / "bootstrap")
    assert provided_bootstrap(lay) == (["/opt/bootstrap"], None)
    _executable(lay.task_host / "bootstrap")
    assert provided_bootstrap(lay) == (["/var/task/bootstrap"], None)


def test_a_bootstrap_that_is_not_executable_is_reported_as_such(tmp_path):
    lay = _layout(tmp_path)
    (lay.task_host / "bootstrap").write_text("#!/bin/sh\n")
    os.chmod(lay.task_host / "bootstrap", 0o644)
    assert provided_bootstrap(lay) == (None, "fork/exec /var/task/bootstrap: permission denied")


# ---- node_ric: the cached aws-lambda-ric ---------------------------------------------------------------------

def test_without_npm_the_error_says_what_to_install(tmp_path, monkeypatch):
    from lambda_sandbox import node_ric

    monkeypatch.setenv("LAMBDA_SANDBOX_CACHE", str(tmp_path))
    monkeypatch.delenv("LAMBDA_SANDBOX_NODE_RIC", raising=False)
    monkeypatch.setattr(node_ric.shutil, "which", lambda name: None)
    with pytest.raises(node_ric.NodeRuntimeError) as err:
        node_ric.ric_dir("/usr/bin/node", {"version": "v20.1.0", "abi": "115", "arch": "x64"})
    message = str(err.value)
    assert "npm is not available" in message and "apt-get install -y npm" in message
    assert str(tmp_path / "node-ric" / "aws-lambda-ric-3.3.0-abi115-x64") in message
    assert isinstance(err.value, ConfigError)          # the CLI exits 2 on it


def test_a_cached_ric_is_reused_without_npm(tmp_path, monkeypatch):
    from lambda_sandbox import node_ric

    monkeypatch.setenv("LAMBDA_SANDBOX_CACHE", str(tmp_path))
    monkeypatch.delenv("LAMBDA_SANDBOX_NODE_RIC", raising=False)
    cached = tmp_path / "node-ric" / "aws-lambda-ric-3.3.0-abi127-arm64" / "dist"
    cached.mkdir(parents=True)
    (cached / "index.mjs").write_text("")
    (cached / "rapid-client.node").write_text("")
    monkeypatch.setattr(node_ric.shutil, "which", lambda name: None)
    assert node_ric.ric_dir("/x/node", {"version": "v22.0.0", "abi": "127", "arch": "arm64"}) == cached.parent


def test_an_explicit_ric_directory_must_hold_a_built_client(tmp_path, monkeypatch):
    from lambda_sandbox import node_ric

    monkeypatch.setenv("LAMBDA_SANDBOX_NODE_RIC", str(tmp_path))
    with pytest.raises(node_ric.NodeRuntimeError, match="LAMBDA_SANDBOX_NODE_RIC=.* holds no built aws-lambda-ric"):
        node_ric.ric_dir("/x/node", {"version": "v20.0.0", "abi": "115", "arch": "x64"})


def test_a_missing_node_is_a_clear_error(monkeypatch):
    from lambda_sandbox import node_ric

    monkeypatch.setenv("LAMBDA_SANDBOX_NODE", "/nonexistent/node")
    with pytest.raises(node_ric.NodeRuntimeError, match="LAMBDA_SANDBOX_NODE='/nonexistent/node' is not an executable"):
        node_ric.find_node()


def test_a_python_runtime_without_its_interpreter_falls_back_with_a_note(tmp_path, monkeypatch):
    from lambda_sandbox import python_interpreters, runtime_setup

    monkeypatch.setattr(python_interpreters, "find_interpreter", lambda version: None)
    cfg = SandboxConfig(code_dir=tmp_path, handler="app.handler", runtime="python3.9")
    plan = runtime_setup.plan_runtime(cfg, "/usr/bin/python3")
    assert plan.python.own and plan.python.executable == "/usr/bin/python3"
    assert plan.notes[0].startswith("no Python 3.9 on this machine (set LAMBDA_SANDBOX_PYTHON3_9)")
    assert "AWS_EXECUTION_ENV and INIT_START say python3.9" in plan.notes[1]


def test_a_python_interpreter_is_probed_for_its_version(tmp_path, monkeypatch):
    import sys

    from lambda_sandbox import python_interpreters

    version = f"{sys.version_info[0]}.{sys.version_info[1] + 1}"          # not this interpreter's
    monkeypatch.setenv(f"LAMBDA_SANDBOX_PYTHON{version.replace('.', '_')}", sys.executable)
    assert python_interpreters._candidates(version)[0] == sys.executable   # the variable comes first
    monkeypatch.setattr(python_interpreters, "_candidates", lambda v: [sys.executable])
    python_interpreters.find_interpreter.cache_clear()
    try:
        assert python_interpreters.find_interpreter(version) is None        # it answers another version
        other = f"{sys.version_info[0]}.{sys.version_info[1]}"
        python_interpreters.find_interpreter.cache_clear()
        assert python_interpreters.find_interpreter(other).own              # its own version: itself
    finally:
        python_interpreters.find_interpreter.cache_clear()
