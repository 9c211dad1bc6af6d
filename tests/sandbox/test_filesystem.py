"""The environment's own root (issue 16): read-only everywhere but a sized /tmp, the host out of sight.

A handler and an extension run the same probe: writes to /var/task, /opt, /etc, / must fail with EROFS
as in Lambda, /tmp must fill up to ENOSPC at --ephemeral-storage, and a host path given to them (this
checkout) must not exist inside.
"""

from __future__ import annotations

import json
import stat
import textwrap
from pathlib import Path

import pytest
from lambda_sandbox import Sandbox, SandboxConfig
from lambda_sandbox.isolation import namespace_possible

from tests.helpers import wait_for

pytestmark = [pytest.mark.sandbox,
              pytest.mark.skipif(namespace_possible() is not None,
                                 reason=f"no mount namespace here: {namespace_possible()}")]

REPO = Path(__file__).resolve().parents[2]
TMP_MB = 16

PROBE = textwrap.dedent('''
    import errno, os, resource

    def probe(host_path, limit_mb, tag):
        out = {"uid": os.getuid(), "gid": os.getgid(), "euid": os.geteuid(), "home": os.environ.get("HOME"),
               "path": os.environ.get("PATH"), "host_visible": os.path.exists(host_path),
               "work_visible": os.path.exists("/work"),
               "nofile": list(resource.getrlimit(resource.RLIMIT_NOFILE)),
               "nproc": list(resource.getrlimit(resource.RLIMIT_NPROC)),
               "dev": sorted(os.listdir("/dev"))}
        for d in ("/var/task", "/opt", "/etc", "/", "/var/runtime", "/var/lang"):
            target = os.path.join(d, "probe-" + tag)
            try:
                with open(target, "w") as f:
                    f.write("x")
                os.unlink(target)
                out["write:" + d] = "ok"
            except OSError as exc:
                out["write:" + d] = errno.errorcode.get(exc.errno, str(exc.errno))
        path, n = "/tmp/fill-" + tag, 0
        out["fill"] = "no error"
        chunk = b"\\0" * 65536
        try:
            with open(path, "wb") as f:
                while n < (limit_mb + 32) * 16:
                    f.write(chunk)
                    f.flush()
                    n += 1
        except OSError as exc:
            out["fill"] = errno.errorcode.get(exc.errno, str(exc.errno))
        out["filled_kb"] = n * 64
        os.unlink(path)
        st = os.statvfs("/tmp")
        out["tmp_mb"] = st.f_blocks * st.f_frsize // 1048576
        return out
''')

HANDLER = PROBE + textwrap.dedent('''
    def handler(event, context):
        return probe(event["host_path"], event["limit_mb"], "function")
''')

EXTENSION = PROBE + textwrap.dedent('''
    import json, sys, urllib.request
    api = "http://" + os.environ["AWS_LAMBDA_RUNTIME_API"] + "/2020-01-01/extension"
    req = urllib.request.Request(api + "/register", data=b'{"events": ["INVOKE", "SHUTDOWN"]}',
                                 headers={"Lambda-Extension-Name": "probe"}, method="POST")
    with urllib.request.urlopen(req) as resp:
        ext_id = resp.headers["Lambda-Extension-Identifier"]
    env = {k: os.environ.get(k) for k in ("AWS_LAMBDA_LOG_STREAM_NAME", "AWS_EXECUTION_ENV", "LAMBDA_TASK_ROOT")}
    print("PROBE " + json.dumps(dict(probe(os.environ["PROBE_HOST_PATH"], int(os.environ["PROBE_LIMIT_MB"]),
                                           "extension"), env=env)), flush=True)
    while True:
        nxt = urllib.request.Request(api + "/event/next", headers={"Lambda-Extension-Identifier": ext_id})
        with urllib.request.urlopen(nxt) as resp:
            if json.loads(resp.read())["eventType"] == "SHUTDOWN":
                sys.exit(0)
''')


@pytest.fixture
def probe_sandbox(tmp_path):
    code = tmp_path / "code"
    code.mkdir()
    (code / "probe_fn.py").write_text(HANDLER)
    layer = tmp_path / "layer"
    (layer / "extensions").mkdir(parents=True)
    (layer / "probe").mkdir()
    (layer / "probe" / "ext.py").write_text(EXTENSION)
    launcher = layer / "extensions" / "probe"
    launcher.write_text("#!/bin/sh\nexec python3 -I /opt/probe/ext.py\n")
    launcher.chmod(launcher.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    cfg = SandboxConfig(code_dir=code, handler="probe_fn.handler", layers=[layer], isolation="namespace",
                        ephemeral_storage_mb=TMP_MB, timeout_s=30,
                        env={"PROBE_HOST_PATH": str(REPO), "PROBE_LIMIT_MB": str(TMP_MB)})
    with Sandbox(cfg) as sb:
        yield sb


def _check(out: dict) -> None:
    for d in ("/var/task", "/opt", "/etc", "/", "/var/runtime", "/var/lang"):
        assert out["write:" + d] == "EROFS", (d, out)
    assert (out["uid"], out["euid"], out["gid"]) == (993, 993, 990)
    assert out["home"] is None
    assert out["path"] == "/var/lang/bin:/usr/local/bin:/usr/bin/:/bin:/opt/bin"
    assert out["fill"] == "ENOSPC" and TMP_MB * 1024 - 1024 <= out["filled_kb"] <= TMP_MB * 1024
    assert out["tmp_mb"] == TMP_MB
    assert out["host_visible"] is False and out["work_visible"] is False
    assert out["nofile"] == [1024, 1024] and out["nproc"] == [1024, 1024]
    assert "shm" not in out["dev"] and {"null", "urandom", "zero"} <= set(out["dev"])


def test_handler_and_extension_see_lambdas_filesystem_user_and_limits(probe_sandbox):
    sb = probe_sandbox
    r = sb.invoke({"host_path": str(REPO), "limit_mb": TMP_MB})
    assert r.outcome == "success", r
    _check(r.response)
    lines = wait_for(lambda: [ln for ln in sb.extension_lines("probe") if ln.startswith("PROBE ")])
    ext = json.loads(lines[0][len("PROBE "):])
    _check(ext)
    # runtime-only variables never reach extensions (environment.md 3.1)
    assert ext["env"] == {"AWS_LAMBDA_LOG_STREAM_NAME": None, "AWS_EXECUTION_ENV": None, "LAMBDA_TASK_ROOT": None}
    # Lambda's port 9001 by default (loopback: the environment shares the machine's network)
    assert sb.api_address == "127.0.0.1:9001" or any("9001 is in use" in n for n in sb.notes)


def test_api_port_chooses_the_runtime_api_port(make_sandbox):
    sb = make_sandbox("hello.handler", isolation="namespace", api_port=0)
    host, port = sb.api_address.split(":")
    assert host == "127.0.0.1" and port != "9001" and int(port) > 0
    assert sb.invoke({}).outcome == "success"


def test_tmp_is_kept_across_invokes_and_readable_from_the_host(probe_sandbox):
    sb = probe_sandbox
    sb.invoke({"host_path": "/nonexistent", "limit_mb": 1})
    assert sb.layout.tmp_host.is_dir()
    assert not any(p.name.startswith("fill-") for p in sb.layout.tmp_host.iterdir())


def test_dirs_mode_says_the_guarantees_do_not_hold(make_sandbox):
    sb = make_sandbox("hello.handler", isolation="dirs")
    assert any("NOT like Lambda" in n and "uid 993" in n for n in sb.notes)


def test_a_kept_host_path_under_the_hosts_tmp_is_bound_inside_the_private_tmp(tmp_path):
    """A checkout or venv cloned under /tmp (as CI may) stays reachable when declared, read-only."""
    import tempfile

    kept = Path(tempfile.mkdtemp(dir="/tmp", prefix="sbx-kept-"))
    kept.chmod(0o755)                 # readable by the environment's user, as a checkout is
    try:
        (kept / "data.txt").write_text("from the host")
        code = tmp_path / "code"
        code.mkdir()
        (code / "read_kept.py").write_text(textwrap.dedent('''
            import errno
            def handler(event, context):
                text = open(event["path"] + "/data.txt").read()
                try:
                    open(event["path"] + "/new.txt", "w")
                    written = "yes"
                except OSError as exc:
                    written = errno.errorcode[exc.errno]
                return {"text": text, "written": written}
        '''))
        with Sandbox(SandboxConfig(code_dir=code, handler="read_kept.handler", isolation="namespace",
                                   keep_paths=[kept])) as sb:
            r = sb.invoke({"path": str(kept)})
        assert r.outcome == "success", r.response
        assert r.response == {"text": "from the host", "written": "EROFS"}
    finally:
        import shutil
        shutil.rmtree(kept, ignore_errors=True)
