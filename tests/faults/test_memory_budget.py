"""A stalled backend and a function printing 200 lines of 256 KB per invoke: the sidecar's memory stays under
its bound (measured from /proc), no invocation fails or becomes Extension.Crash, and what could not be kept is
counted in SidecarDropped."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import pytest

from bench.procstat import find_sidecar
from tests.faults.conftest import assert_no_traceback, sidecar_text, total
from tests.helpers import SIDECAR_NAME

pytestmark = pytest.mark.sandbox

MIB = 1024 * 1024
INVOKES = 4
KB = 256


def sidecar_pid(sb) -> int:
    (proc,) = [p for name, p in sb._ext_procs.items() if "sidecar" in name]
    launcher = proc.pid
    return find_sidecar(launcher) or launcher


def status_kb(pid: int, field: str) -> Optional[int]:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return None


def _flood(sidecar_env, memory_mb: int) -> int:
    """Four invokes of 200 x 256 KB lines against a stalled backend, all checked; the sidecar's peak RSS (kB)."""
    sb, rx = sidecar_env(fault="stall", handler="big_lines.handler", memory_mb=memory_mb, timeout_s=20,
                         env={"SIDECAR_OTLP_SPOOL_DIR": "off"})
    results = [sb.invoke({"echo": 0, "n": 200, "kb": KB})]
    pid = sidecar_pid(sb)
    results += [sb.invoke({"echo": i, "n": 200, "kb": KB}) for i in range(1, INVOKES)]
    peak_kb = status_kb(pid, "VmHWM")
    assert [r.outcome for r in results] == ["success"] * INVOKES, sidecar_text(sb)[-2000:]
    assert all(r.response["echo"] == i for i, r in enumerate(results))
    shut = sb.shutdown()
    assert shut.extensions[SIDECAR_NAME] == "Exited", sidecar_text(sb)[-2000:]
    assert "Extension.Crash" not in sidecar_text(sb)
    assert total(sb, "Invocations") == INVOKES
    # 800 lines of 256 KB cannot all wait for a stalled backend: they were dropped, and said so
    assert total(sb, "SidecarDropped") >= 1
    assert_no_traceback(sb)
    assert peak_kb is not None
    return peak_kb


@pytest.mark.parametrize("memory_mb", [128, 256])
def test_big_log_lines_with_a_stalled_backend_never_fail_an_invoke(sidecar_env, memory_mb):
    _flood(sidecar_env, memory_mb)


@pytest.mark.parametrize("memory_mb,bound_mb", [(128, 40), (256, 48)])
def test_big_log_lines_with_a_stalled_backend_stay_in_the_bound(sidecar_env, memory_mb, bound_mb):
    peak_kb = _flood(sidecar_env, memory_mb)
    assert peak_kb * 1024 < bound_mb * MIB, f"sidecar peak RSS {peak_kb} kB at {memory_mb} MB"
