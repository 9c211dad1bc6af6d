"""Conformance of the non-Python runtimes: a Node.js handler on the real aws-lambda-ric, and a provided.al2023 /
provided.al2 `bootstrap` in bash against the Runtime API; extensions registering with both; the host's
interpreters hidden (--no-host-interpreters); an unsupported runtime refused by the CLI."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from lambda_sandbox import Sandbox, SandboxConfig, cli, node_ric, python_interpreters, runtimes
from lambda_sandbox.isolation import namespace_possible

from tests.helpers import dev_layer, sidecar_emf

FIXTURES = Path(__file__).resolve().parent / "runtime_fixtures"
NAMESPACE = pytest.mark.skipif(namespace_possible() is not None,
                               reason=f"no mount namespace here: {namespace_possible()}")


def _ric_available() -> bool:
    if shutil.which("node") is None:
        return False
    if shutil.which("npm") is not None:
        return True
    try:
        node_ric.ric_dir(node_ric.find_node())
        return True
    except node_ric.NodeRuntimeError:
        return False


_NODE_MARKS = (pytest.mark.skipif(not _ric_available(), reason="no node, or no npm and no installed aws-lambda-ric"),
               # the first Node.js test of a fresh machine installs aws-lambda-ric (a 4-6 min native build)
               pytest.mark.timeout(node_ric.INSTALL_TIMEOUT_S + 120))


def NODE(test):  # noqa: N802 - used like the other marks
    for mark in _NODE_MARKS:
        test = mark(test)
    return test


@pytest.fixture
def sandboxes():
    made = []

    def factory(**kwargs) -> Sandbox:
        sb = Sandbox(SandboxConfig(**kwargs)).start()
        made.append(sb)
        return sb

    yield factory
    for sb in made:
        sb.close()


@pytest.fixture
def node_code(tmp_path) -> Path:
    code = tmp_path / "node-code"
    code.mkdir()
    shutil.copy(FIXTURES / "index.mjs", code / "index.mjs")
    return code


@pytest.fixture
def bash_code(tmp_path) -> Path:
    code = tmp_path / "bash-code"
    code.mkdir()
    for name in ("bootstrap", "http.bash"):
        shutil.copy2(FIXTURES / name, code / name)
    return code


def bash_extension_layer(tmp_path: Path, name: str = "bashext") -> Path:
    """A layer with an extension in bash (no interpreter): /opt/extensions/<name> and its /opt/<name>-lib."""
    layer = tmp_path / f"{name}-layer"
    (layer / "extensions").mkdir(parents=True)
    (layer / f"{name}-lib").mkdir()
    shutil.copy2(FIXTURES / "extension.bash", layer / "extensions" / name)
    shutil.copy2(FIXTURES / "http.bash", layer / f"{name}-lib" / "http.bash")
    return layer


def init_start_line(sb: Sandbox) -> str:
    return next(ln for ln in sb.platform_lines() if ln.startswith("INIT_START"))


# ---- Node.js -------------------------------------------------------------------------------------------------

@NODE
def test_node_handler_succeeds_with_its_context_and_lambdas_init_start(sandboxes, node_code):
    sb = sandboxes(code_dir=node_code, handler="index.handler", runtime="nodejs20.x", timeout_s=3)
    r = sb.invoke({})
    assert (r.outcome, r.status) == ("success", "success")
    assert r.response["ok"] is True and r.response["requestId"] == r.request_id
    assert 0 < r.response["remainingMs"] <= 3000
    assert init_start_line(sb).startswith("INIT_START Runtime Version: nodejs:20.v0\tRuntime Version ARN: arn:aws:")
    # console.log goes through the RIC's telemetry-fd logger: Lambda's Text line with the request id
    assert any(ln.endswith(f"\t{r.request_id}\tINFO\thello from node {r.request_id}") for ln in sb.function_lines())
    init_start = next(ev.event["record"] for ev in sb.events if ev.event["type"] == "platform.initStart")
    assert init_start["runtimeVersion"] == "nodejs:20.v0"


@NODE
def test_node_thrown_error_has_the_runtime_error_shape_and_keeps_the_environment(sandboxes, node_code):
    sb = sandboxes(code_dir=node_code, handler="index.handler", runtime="nodejs20.x")
    r = sb.invoke({"action": "throw"})
    assert (r.outcome, r.error_type) == ("error", "TypeError")
    assert r.response["errorType"] == "TypeError" and r.response["errorMessage"] == "boom from node"
    assert r.response["trace"][0] == "TypeError: boom from node"
    assert sb.invoke({}).outcome == "success" and len(sb.inits) == 1        # no reset after a handled error


@NODE
def test_node_timeout_resets_and_the_next_invoke_inits_again(sandboxes, node_code):
    sb = sandboxes(code_dir=node_code, handler="index.handler", runtime="nodejs20.x", timeout_s=1)
    r = sb.invoke({"action": "sleep", "ms": 5000})
    assert (r.outcome, r.status, r.error_type) == ("timeout", "timeout", "Sandbox.Timedout")
    assert r.response["errorMessage"].endswith(f"{r.request_id} Task timed out after 1.00 seconds")
    assert len(sb.resets) == 1 and sb.resets[0].reason == "timeout"
    again = sb.invoke({})
    assert again.outcome == "success" and [i.phase for i in sb.inits] == ["init", "invoke"]


@NODE
def test_node_runtime_gets_lambdas_environment_and_bootstrap_flags(sandboxes, node_code):
    sb = sandboxes(code_dir=node_code, handler="index.handler", runtime="nodejs20.x", memory_mb=1024)
    seen = sb.invoke({"action": "env"}).response
    env = seen["env"]
    assert env["AWS_EXECUTION_ENV"] == "AWS_Lambda_nodejs20.x"
    assert env["_HANDLER"] == "index.handler"
    assert env["NODE_PATH"].split(":")[-3:] == [f"{sb.layout.runtime}/node_modules", sb.layout.runtime,
                                                sb.layout.task]
    assert "_LAMBDA_TELEMETRY_LOG_FD" not in env          # the RIC deletes it, as in Lambda
    assert "HOME" not in env
    assert seen["execArgv"] == ["--expose-gc", "--max-http-header-size", "81920", *runtimes.node_heap_flags(1024)]
    if sb.isolation == "namespace":
        assert env["PATH"] == "/var/lang/bin:/usr/local/bin:/usr/bin/:/bin:/opt/bin"
        assert env["LAMBDA_RUNTIME_DIR"] == "/var/runtime" and env["LAMBDA_TASK_ROOT"] == "/var/task"
        assert (seen["execPath"], seen["cwd"], seen["uid"]) == ("/var/lang/bin/node", "/var/task", 993)


@NODE
@NAMESPACE
def test_node_runtime_sees_no_host_interpreter_by_default(sandboxes, node_code):
    sb = sandboxes(code_dir=node_code, handler="index.handler", runtime="nodejs20.x")
    seen = sb.invoke({"action": "env"}).response
    assert seen["pythonSpawn"] == "ENOENT"                 # `python3` is not on PATH at all
    assert (seen["hostPython"], seen["hostNode"]) == (False, False)
    assert any(n.startswith("host interpreters hidden") for n in sb.notes)


@NODE
@NAMESPACE
def test_bash_extension_registers_on_node_and_sees_only_the_runtimes_node(sandboxes, node_code, tmp_path):
    sb = sandboxes(code_dir=node_code, handler="index.handler", runtime="nodejs20.x",
                   layers=[bash_extension_layer(tmp_path)])
    r = sb.invoke({})
    assert r.outcome == "success"
    lines = sb.extension_lines("bashext")
    assert lines[0] == "EXT bashext sees python=none node=/var/lang/bin/node"
    assert "EXT bashext registered status=200" in lines
    assert f"EXT bashext INVOKE {r.request_id}" in lines
    assert sb.shutdown().extensions == {"bashext": "Exited"}
    assert sb.extension_lines("bashext")[-1] == "EXT bashext SHUTDOWN"


@NODE
@NAMESPACE
def test_an_extension_on_the_hosts_python_fails_on_node_as_in_lambda_unless_kept(sandboxes, node_code, tmp_path):
    layer = dev_layer(tmp_path, name_interpreter=False)   # the sidecar launched with the host's python
    hidden = sandboxes(code_dir=node_code, handler="index.handler", runtime="nodejs20.x", layers=[layer])
    r = hidden.invoke({})
    assert (r.outcome, r.error_type) == ("init_error", "Extension.LaunchError")
    assert hidden.extension_lines("otel-sidecar")[-1].endswith("not found")
    assert hidden.report()["environment"]["hostInterpreters"] == "hidden"
    kept = sandboxes(code_dir=node_code, handler="index.handler", runtime="nodejs20.x", layers=[layer],
                     host_interpreters=True)
    assert kept.invoke({}).outcome == "success"
    kept.shutdown()
    assert [doc["Invocations"] for doc in sidecar_emf(kept)] == [1]
    assert kept.report()["function"]["runtime"] == "nodejs20.x"


# ---- provided.al2023 / provided.al2 --------------------------------------------------------------------------

@pytest.mark.parametrize("runtime", ["provided.al2023", "provided.al2"])
def test_provided_bootstrap_serves_success_error_and_timeout(sandboxes, bash_code, runtime):
    sb = sandboxes(code_dir=bash_code, handler="function.handler", runtime=runtime, timeout_s=1)
    ok = sb.invoke({})
    assert ok.outcome == "success" and ok.response == {"ok": True, "requestId": ok.request_id,
                                                       "handler": "function.handler"}
    assert init_start_line(sb).startswith(f"INIT_START Runtime Version: provided:{runtime.split('.')[1]}.v0\t")
    assert sb.function_lines()[:2] == ["bootstrap init: handler function.handler", f"hello from bash {ok.request_id}"]
    failed = sb.invoke({"action": "throw"})
    assert (failed.outcome, failed.error_type) == ("error", "HandlerError")
    assert failed.response == {"errorType": "HandlerError", "errorMessage": "boom from bash"}
    slow = sb.invoke({"action": "sleep"})
    assert (slow.outcome, slow.status) == ("timeout", "timeout")
    assert sb.invoke({}).outcome == "success" and [i.phase for i in sb.inits] == ["init", "invoke"]


@pytest.mark.parametrize("runtime,path", [
    ("provided.al2023", "/var/lang/bin:/usr/local/bin:/usr/bin/:/bin:/opt/bin"),
    ("provided.al2", "/usr/local/bin:/usr/bin/:/bin:/opt/bin")])
def test_provided_runtime_environment_has_no_execution_env(sandboxes, bash_code, runtime, path):
    sb = sandboxes(code_dir=bash_code, handler="function.handler", runtime=runtime)
    seen = sb.invoke({"action": "env"}).response
    assert seen["execution_env"] == "unset"
    if sb.isolation == "namespace":
        assert (seen["path"], seen["runtime_dir"], seen["task_root"], seen["cwd"], seen["uid"]) == \
            (path, "/var/runtime", "/var/task", "/var/task", "993")
        assert seen["ld"].startswith("/var/lang/lib:" if runtime == "provided.al2023" else "/lib64:")
        assert (seen["python"], seen["node"]) == ("none", "none")


def test_a_layers_bootstrap_runs_when_the_code_has_none(sandboxes, bash_code, tmp_path):
    layer = tmp_path / "runtime-layer"
    layer.mkdir()
    for name in ("bootstrap", "http.bash"):
        shutil.move(str(bash_code / name), layer / name)
    sb = sandboxes(code_dir=bash_code, handler="x", runtime="provided.al2023", layers=[layer])
    assert sb.invoke({}).outcome == "success"


def test_no_bootstrap_is_runtime_invalid_entrypoint(sandboxes, tmp_path):
    code = tmp_path / "empty"
    code.mkdir()
    sb = sandboxes(code_dir=code, handler="x", runtime="provided.al2023")
    r = sb.invoke({})
    assert (r.outcome, r.error_type) == ("init_error", "Runtime.InvalidEntrypoint")
    assert r.response["errorMessage"] == (f"Couldn't find valid bootstrap(s): [{sb.layout.task}/bootstrap "
                                          f"{sb.layout.opt}/bootstrap]")
    assert any(ln.startswith("INIT_REPORT") and "Error Type: Runtime.InvalidEntrypoint" in ln
               for ln in sb.platform_lines())


@NAMESPACE
def test_bash_extension_registers_on_provided_and_gets_shutdown(sandboxes, bash_code, tmp_path):
    sb = sandboxes(code_dir=bash_code, handler="function.handler", runtime="provided.al2023",
                   layers=[bash_extension_layer(tmp_path)])
    r = sb.invoke({})
    assert r.outcome == "success"
    assert sb.extension_lines("bashext")[0] == "EXT bashext sees python=none node=none"
    assert f"EXT bashext INVOKE {r.request_id}" in sb.extension_lines("bashext")
    assert sb.shutdown().extensions == {"bashext": "Exited"}


@NAMESPACE
def test_host_interpreters_can_be_kept_on_provided(sandboxes, bash_code):
    sb = sandboxes(code_dir=bash_code, handler="function.handler", runtime="provided.al2023",
                   host_interpreters=True)
    assert sb.invoke({"action": "env"}).response["python"] != "none"


# ---- Python runtimes ----------------------------------------------------------------------------------------

PYTHON_PROBE = ("import os, sys\n"
                "def handler(event, context):\n"
                "    return {'version': '%d.%d' % sys.version_info[:2], 'exe': sys.executable,\n"
                "            'env': os.environ['AWS_EXECUTION_ENV'], 'path': os.environ['PYTHONPATH']}\n")


@pytest.mark.timeout(python_interpreters.INSTALL_TIMEOUT_S * 2 + 120)     # a first pip install of awslambdaric
@pytest.mark.parametrize("runtime", runtimes.PYTHON_RUNTIMES)
def test_each_python_runtime_runs_on_that_python_when_the_machine_has_it(sandboxes, tmp_path, runtime):
    code = tmp_path / "py-code"
    code.mkdir()
    (code / "probe.py").write_text(PYTHON_PROBE)
    version = runtime[len("python"):]
    sb = sandboxes(code_dir=code, handler="probe.handler", runtime=runtime)
    seen = sb.invoke({}).response
    assert seen["env"] == f"AWS_Lambda_{runtime}"
    assert init_start_line(sb).startswith(f"INIT_START Runtime Version: python:{version}.v0\t")
    if sb.runtime_plan.python.version == version:
        assert seen["version"] == version
        assert f"/python/lib/python{version}/site-packages" in seen["path"]
        if sb.isolation == "namespace":
            assert seen["exe"] == f"/var/lang/bin/python{version}"
    else:          # no such interpreter here: the sandbox's own runs it, and says so
        assert any(f"say {runtime}; the interpreter and its site-packages are Python" in n for n in sb.notes)


# ---- Python with --no-host-interpreters ------------------------------------------------------------------------

@NAMESPACE
def test_python_runtime_without_host_interpreters_keeps_only_its_own(sandboxes, tmp_path):
    code = tmp_path / "py-code"
    code.mkdir()
    (code / "probe.py").write_text(
        "import os, shutil, sys\n"
        "def handler(event, context):\n"
        "    return {'which': shutil.which('python3'), 'usr_bin': os.path.exists('/usr/bin/python3'),\n"
        "            'exe': sys.executable}\n")
    sb = sandboxes(code_dir=code, handler="probe.handler", host_interpreters=False)
    seen = sb.invoke({}).response
    assert seen["which"] == "/var/lang/bin/python3" and seen["exe"].startswith("/var/lang/bin/python3")
    assert seen["usr_bin"] is False


# ---- the CLI contract --------------------------------------------------------------------------------------------

def test_cli_refuses_an_unsupported_runtime_naming_the_supported_ones(tmp_path, capsys):
    code = cli.main(["run", "--runtime", "java21", "--code", str(tmp_path), "--handler", "index.handler"])
    err = capsys.readouterr().err
    assert code == 2
    assert "--runtime 'java21' is not supported" in err and "nodejs20.x" in err and "provided.al2023" in err


def test_cli_runs_a_provided_bootstrap(tmp_path, bash_code, capsys):
    code = cli.main(["run", "--runtime", "provided.al2023", "--code", str(bash_code), "--handler", "function.handler",
                     "--count", "2"])
    out = capsys.readouterr().out
    assert code == 0
    assert out.count("hello from bash") == 2 and "INIT_START Runtime Version: provided:al2023.v0" in out


@NAMESPACE
def test_cli_no_host_interpreters_on_a_python_function(tmp_path, capsys):
    code = tmp_path / "py-code"
    code.mkdir()
    (code / "probe.py").write_text("import shutil\ndef handler(event, context):\n"
                                   "    print('which', shutil.which('node'), shutil.which('python3'))\n    return 1\n")
    report = tmp_path / "report.json"
    rc = cli.main(["run", "--code", str(code), "--handler", "probe.handler", "--no-host-interpreters",
                   "--report", str(report)])
    out = capsys.readouterr().out
    assert rc == 0
    assert "which None /var/lang/bin/python3" in out
    import json

    assert json.loads(report.read_text())["environment"]["hostInterpreters"] == "hidden"
