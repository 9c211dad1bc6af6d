"""Hostile entries in the spool directory (/tmp is shared with the function): a FIFO named like a spool
file, a symlink to /dev/zero, a 150 MB file, a symlinked directory. The worker is never blocked (every
invoke succeeds, /next is not held), EMF is still emitted, and what was refused is counted."""

from __future__ import annotations

import os

import pytest
from lambda_sandbox.isolation import SBX_GID, SBX_UID

from tests.faults.conftest import assert_deadline_respected, assert_no_traceback, sidecar_text, total
from tests.faults.test_memory_budget import sidecar_pid, status_kb
from tests.helpers import SIDECAR_NAME

pytestmark = pytest.mark.sandbox

N = 3
NAME = "traces-5-00000000000000000001-1.pb"


def _own(path) -> None:
    """What the function plants belongs to the environment's user (sbx_user1051), as in Lambda."""
    os.lchown(path, SBX_UID, SBX_GID)


def _plant(spool, kind: str, elsewhere) -> None:
    if kind == "symlinked_dir":
        elsewhere.mkdir()
        (elsewhere / NAME).write_bytes(b"not a request")
        for p in (elsewhere, elsewhere / NAME):
            _own(p)
        spool.symlink_to(elsewhere)
        _own(spool)
        return
    spool.mkdir(mode=0o700)
    _own(spool)
    path = spool / NAME
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "dev_zero":
        path.symlink_to("/dev/zero")
    elif kind == "big":
        with open(path, "wb") as f:
            f.truncate(150 * 1024 * 1024)
    _own(path)


@pytest.mark.parametrize("kind", ["fifo", "dev_zero", "big", "symlinked_dir"])
def test_hostile_spool_entries_never_block_and_are_counted(sidecar_env, kind):
    sb, rx = sidecar_env()
    spool = sb.layout.tmp_host / "otel-sidecar-spool"
    elsewhere = sb.layout.tmp_host / "elsewhere"
    _plant(spool, kind, elsewhere)
    results = [sb.invoke({"echo": 0})]
    pid = sidecar_pid(sb)
    results += [sb.invoke({"echo": i}) for i in range(1, N)]
    peak_kb = status_kb(pid, "VmHWM")
    assert peak_kb is not None and peak_kb < 48 * 1024, f"sidecar peak RSS {peak_kb} kB"   # nothing read whole
    assert [r.outcome for r in results] == ["success"] * N
    for r in results[1:]:
        assert_deadline_respected(sb, r)
    left = sorted(p.name for p in elsewhere.iterdir()) if kind == "symlinked_dir" else None   # before /tmp goes
    shut = sb.shutdown()
    assert shut.extensions[SIDECAR_NAME] == "Exited", sidecar_text(sb)[-2000:]
    assert total(sb, "Invocations") == N                       # EMF went on
    assert rx.wait_for(lambda r: len([s for s in r.spans() if s["kind"] == "SERVER"]) >= N, timeout=5)
    text = sidecar_text(sb)
    if kind == "symlinked_dir":
        assert text.count("SIDECAR_OTLP_SPOOL_DIR") == 1 and "symbolic link" in text
        assert left == [NAME]     # not followed, not sent
    else:
        assert not os.path.lexists(spool / NAME)               # deleted (the link, never its target)
        assert total(sb, "SidecarDropped") >= 5                # the 5 spans the file claimed, counted
    assert os.path.exists("/dev/zero")
    assert_no_traceback(sb)
