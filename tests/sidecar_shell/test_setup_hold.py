"""When an unfinished one-time setup holds /next (lifecycle.on_invoke): never at the first invocation of the
adaptive policy; from the second on only where the SHUTDOWN window's CPU could not finish it (small memory)."""

from __future__ import annotations

import time

import pytest
from otel_sidecar.flush import Plan
from otel_sidecar.lifecycle import Sidecar


class NotReadyWorker:
    """A worker whose setup never finishes; records the holds."""

    ready = False

    def __init__(self) -> None:
        self.holds = 0

    def submit_invoke(self, event) -> None:
        pass

    def plan_after_invoke(self, deadline):
        return Plan(False, 0.0, "periodic", "deferred")

    def release_setup(self) -> None:
        pass

    def wait_ready(self, deadline) -> bool:
        self.holds += 1
        return False


def _holds(memory, invokes: int) -> int:
    env = {"AWS_LAMBDA_RUNTIME_API": "127.0.0.1:9"}
    if memory is not None:
        env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] = memory
    sc = Sidecar(env, ["otel-sidecar"])
    sc.worker = NotReadyWorker()
    for i in range(invokes):
        sc.on_invoke({"eventType": "INVOKE", "requestId": f"r{i}", "deadlineMs": int(time.time() * 1000) + 3000})
    return sc.worker.holds


@pytest.mark.parametrize("memory", ["128", "256", None, "garbage"])
def test_small_or_unknown_memory_holds_for_the_setup_from_the_second_invocation(memory):
    assert _holds(memory, 1) == 0
    assert _holds(memory, 3) == 2


@pytest.mark.parametrize("memory", ["512", "1024", "10240"])
def test_enough_memory_leaves_the_setup_to_the_background_and_shutdown(memory):
    assert _holds(memory, 3) == 0
