"""Freezing, measuring and killing the environment's processes (processes.py), cgroup v1 and v2."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest
from lambda_sandbox.processes import CGROUP_ROOT, Cgroups, Launcher, unique_cgroup_name

from tests.helpers import wait_for

UNIFIED = CGROUP_ROOT / "unified"
TICKER = "import time, sys\nn = 0\nwhile True:\n    n += 1\n    print(n, flush=True)\n    time.sleep(0.01)\n"


def _ticker(cgroups):
    launcher = Launcher(cgroups)
    lines = []
    proc = launcher.launch("ticker", "extension", [sys.executable, "-c", TICKER], {}, "/",
                           lambda p, stream, text: lines.append(int(text)), lambda p: None)
    return launcher, proc, lines


def _check_freeze(cgroups):
    launcher, proc, lines = _ticker(cgroups)
    try:
        wait_for(lambda: len(lines) >= 3)
        assert proc.pid in cgroups.pids()            # joined before exec, so its children would be too
        assert cgroups.freeze()
        frozen_at = len(lines)
        idle_until = time.monotonic() + 0.3           # an idle gap while frozen, not a wait for a condition
        while time.monotonic() < idle_until:
            time.sleep(0.05)
        assert len(lines) <= frozen_at + 1            # at most a line already in the pipe
        assert cgroups.thaw()
        wait_for(lambda: len(lines) >= frozen_at + 5)
    finally:
        launcher.kill_all()
        cgroups.remove()
    assert not proc.alive()


@pytest.mark.skipif(not (CGROUP_ROOT / "freezer" / "cgroup.procs").exists(), reason="no cgroup v1 freezer")
def test_cgroup_v1_freezer_stops_and_resumes_a_process():
    cg = Cgroups(unique_cgroup_name(), ["freezer"])
    if "freezer" not in cg.paths:
        pytest.skip(cg.errors["freezer"])
    assert cg.version == 1
    _check_freeze(cg)


@pytest.mark.skipif(not (UNIFIED / "cgroup.controllers").exists() and not (CGROUP_ROOT / "cgroup.controllers").exists(),
                    reason="no cgroup v2 hierarchy")
def test_cgroup_v2_freezer_stops_and_resumes_a_process():
    root = UNIFIED if (UNIFIED / "cgroup.controllers").exists() else CGROUP_ROOT
    cg = Cgroups(unique_cgroup_name(), ["freezer", "memory"], unified_root=root)
    if "freezer" not in cg.paths:
        pytest.skip(cg.errors["freezer"])
    assert cg.version == 2
    path = cg.paths["freezer"]
    _check_freeze(cg)
    assert not Path(path).exists()


def test_kill_all_takes_children_without_cgroups():
    launcher = Launcher(None)
    lines = []
    script = "import subprocess, sys; c = subprocess.Popen(['sleep', '60']); print(c.pid, flush=True); c.wait()"
    proc = launcher.launch("parent", "extension", [sys.executable, "-c", script], {"PATH": "/usr/bin:/bin"}, "/",
                           lambda p, stream, text: lines.append(int(text)), lambda p: None)
    child = wait_for(lambda: lines and lines[0])
    assert child in launcher.all_pids()
    launcher.kill_all()
    assert not proc.alive()
    wait_for(lambda: not Path(f"/proc/{child}").exists()
             or Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z")


def test_kill_all_takes_children_orphaned_by_their_parent():
    launcher = Launcher(None)
    lines = []
    script = "import subprocess; c = subprocess.Popen(['sleep', '60']); print(c.pid, flush=True)"
    proc = launcher.launch("parent", "extension", [sys.executable, "-c", script], {"PATH": "/usr/bin:/bin"}, "/",
                           lambda p, stream, text: lines.append(int(text)), lambda p: None)
    child = wait_for(lambda: lines and lines[0])
    wait_for(lambda: not proc.alive())            # the parent is gone, its child lives on (orphaned)
    launcher.kill_all()
    wait_for(lambda: not Path(f"/proc/{child}").exists()
             or Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z")
