from __future__ import annotations

import pytest

from tests.sidecar_shell.fake_api import FakeApi, SidecarProcess


@pytest.fixture
def fake():
    """Factory: fake(subscribe_status=200, env=None) -> (FakeApi, SidecarProcess); both closed at teardown."""
    made = []

    def factory(subscribe_status: int = 200, register_status: int = 200, env=None, lmi: bool = False):
        api = FakeApi(subscribe_status=subscribe_status, register_status=register_status, lmi=lmi)
        proc = SidecarProcess(api, env=env)
        made.append((api, proc))
        return api, proc

    yield factory
    for api, proc in made:
        proc.kill()
        print("sidecar stderr:", *proc.stderr, sep="\n  ")   # shown by pytest when the test failed
        print("next calls:", api.next_calls, "subscriptions:", api.subscriptions)
        api.close()
