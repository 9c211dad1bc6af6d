"""Soak: 2,000 invocations of a trivial handler, then shutdown. Every invocation appears exactly once in the
exported OTLP spans and exactly once in the EMF metrics (count and per-invocation durations)."""

from __future__ import annotations

import pytest

from tests.faults.conftest import FN, assert_no_traceback, invocation_spans, sidecar_text
from tests.helpers import SIDECAR_NAME, emf_values, sidecar_emf

pytestmark = [pytest.mark.sandbox, pytest.mark.slow]

N = 2000


@pytest.mark.timeout(240)
def test_soak_every_invocation_exactly_once(sidecar_env):
    sb, rx = sidecar_env(handler="hello.handler")
    ids = []
    durations = []
    for i in range(N):
        r = sb.invoke({"i": i})
        assert r.outcome == "success", r
        ids.append(r.request_id)
        durations.append(r.duration_ms)
    shut = sb.shutdown()
    assert shut.extensions[SIDECAR_NAME] == "Exited", sidecar_text(sb)[-2000:]
    assert_no_traceback(sb)

    exported = rx.wait_for(lambda rx: (lambda e: e if len(e) >= N else None)(invocation_spans(rx)), timeout=5) \
        or invocation_spans(rx)
    assert set(exported) == set(ids)
    assert sorted(set(exported.values())) == [1]

    docs = sidecar_emf(sb)
    assert sum(emf_values(docs, "Invocations", FunctionName=FN)) == N
    got = sorted(emf_values(docs, "Duration", FunctionName=FN))
    assert got == pytest.approx(sorted(durations), abs=0.01)
