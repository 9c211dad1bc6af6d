"""Namespace mode (/opt, /var/task, private /tmp, sandbox.localdomain) and per-run directory mode."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from lambda_sandbox.isolation import namespace_possible

from tests.helpers import wait_for

from .conftest import FUNCTIONS, recorder_items

pytestmark = pytest.mark.sandbox


def _environ(pid: int) -> dict:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode().split("=", 1) for item in raw if b"=" in item)


def _cmdline(pid: int) -> list:
    return [p.decode() for p in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0") if p]


@pytest.mark.skipif(namespace_possible() is not None, reason=f"no mount namespace here: {namespace_possible()}")
def test_namespace_mode_paths_hosts_and_private_tmp(make_sandbox):
    sb = make_sandbox("env_dump.handler", recorder=True, isolation="namespace",
                      env={"CUSTOMER_VAR": "v1", "TEST_EXT_BIND": "sandbox.localdomain"})
    r = sb.invoke({"names": ["LAMBDA_TASK_ROOT", "LAMBDA_RUNTIME_DIR", "_HANDLER", "CUSTOMER_VAR"]})
    out = r.response
    assert out["env"] == {"LAMBDA_TASK_ROOT": "/var/task", "LAMBDA_RUNTIME_DIR": "/var/runtime",
                          "_HANDLER": "env_dump.handler", "CUSTOMER_VAR": "v1"}
    assert out["cwd"] == "/var/task" and out["sandbox_host"] == "127.0.0.1" and out["opt_exists"]
    assert out["sys_path"][:2] == ["/var/task", "/opt/python/lib/python3.11/site-packages"]
    assert "/var/runtime" in out["sys_path"]
    # the function wrote /tmp/probe.txt into the environment's private /tmp, not the machine's
    assert (sb.layout.tmp_host / "probe.txt").read_text() == "x"
    # the extension runs from /opt/extensions and its listener bound to sandbox.localdomain got telemetry
    proc = sb._ext_procs["recorder"]
    assert "/opt/extensions/recorder" in _cmdline(proc.pid)
    assert recorder_items(sb, "subscribe")[0]["status"] == 200
    wait_for(lambda: recorder_items(sb, "batch"))
    env = _environ(proc.pid)
    assert env["AWS_LAMBDA_RUNTIME_API"] == sb.api_address
    assert env["AWS_LAMBDA_INITIALIZATION_TYPE"] == "on-demand" and env["CUSTOMER_VAR"] == "v1"
    assert env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "128" and env["AWS_REGION"] == "us-east-1"
    # runtime-only variables never reach extensions (2.2)
    assert not {"_HANDLER", "LAMBDA_TASK_ROOT", "AWS_EXECUTION_ENV", "_LAMBDA_TELEMETRY_LOG_FD"} & set(env)
    assert not os.path.exists("/opt/extensions/recorder")      # nothing leaked into the machine's /opt
    assert sb.report()["environment"]["isolation"] == "namespace"


def test_dirs_mode_uses_per_run_directories(make_sandbox):
    sb = make_sandbox("env_dump.handler", recorder=True, isolation="dirs")
    r = sb.invoke({"names": ["LAMBDA_TASK_ROOT", "PYTHONPATH", "TMPDIR"], "tmp": None})
    env = r.response["env"]
    assert env["LAMBDA_TASK_ROOT"] == str(FUNCTIONS)
    assert env["PYTHONPATH"].split(":")[0] == str(FUNCTIONS)
    assert env["TMPDIR"] == str(sb.layout.tmp_host)
    assert "/opt/" not in env["PYTHONPATH"] or str(sb.layout.run_dir) in env["PYTHONPATH"]
    # telemetry to http://sandbox.localdomain:<port> still arrives (the hub maps the name to loopback)
    wait_for(lambda: recorder_items(sb, "batch"))
    assert sb.report()["environment"]["isolation"] == "dirs"
    run_dir = sb.layout.run_dir
    sb.shutdown()
    assert not run_dir.exists()


def test_close_leaves_no_process_cgroup_or_run_directory(tmp_path):
    from lambda_sandbox import Sandbox, SandboxConfig

    from tests.fixtures.extensions import extension_layer

    cfg = SandboxConfig(code_dir=FUNCTIONS, handler="hello.handler", layers=[extension_layer(tmp_path)],
                        env={"TEST_EXT_IGNORE_SHUTDOWN": "1"}, cpu_quota=True)
    with Sandbox(cfg) as sb:
        sb.invoke({})
        pids = sb.launcher.all_pids()
        holder = sb.layout.holder.pid if sb.layout.holder else None
        cgroup_dirs = list(sb.cgroups.paths.values())
        run_dir = sb.layout.run_dir
        assert pids and sb.report()["environment"]["cpuQuotaApplied"] in (True, False)
    # leaving the block shut the environment down and removed everything it made
    assert not [p for p in pids if os.path.exists(f"/proc/{p}") and _state(p) != "Z"]
    assert holder is None or not os.path.exists(f"/proc/{holder}") or _state(holder) == "Z"
    assert not any(d.exists() for d in cgroup_dirs) and not run_dir.exists()


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"
