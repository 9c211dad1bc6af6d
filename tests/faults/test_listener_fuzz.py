"""Fuzz of the Telemetry API listener + worker (unit level, no sandbox): malformed, truncated, oversized,
wrongly typed and random JSON batches. Every request is answered, nothing is lost without being counted,
and the sidecar keeps turning valid telemetry into signals afterwards."""

from __future__ import annotations

import json
import threading
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from otel_sidecar.events import parse_batch

from tests.faults._shell import ShellSidecar, post
from tests.unit.sequences import EXAMPLES

MAX_BODY = 16 * 1024
TYPES = sorted({e["type"] for e in EXAMPLES.values()}) + ["function", "extension", "platform.unknownThing"]

scalars = st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False) | st.text(max_size=20)
json_values = st.recursive(scalars, lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=10), c,
                                                                                          max_size=4), max_leaves=12)


@st.composite
def mistyped_envelope(draw) -> dict:
    """A real example record with some of its fields replaced by values of random types (or removed)."""
    env = json.loads(json.dumps(draw(st.sampled_from(sorted(EXAMPLES.values(), key=json.dumps)))))
    targets = [env] + ([env["record"]] if isinstance(env.get("record"), dict) else [])
    if isinstance(env.get("record"), dict) and isinstance(env["record"].get("metrics"), dict):
        targets.append(env["record"]["metrics"])
    for _ in range(draw(st.integers(1, 3))):
        obj = draw(st.sampled_from(targets))
        if not obj:
            continue
        key = draw(st.sampled_from(sorted(obj)))
        if draw(st.booleans()):
            obj[key] = draw(json_values)
        else:
            del obj[key]
    return env


envelopes = st.one_of(
    st.fixed_dictionaries({"time": st.one_of(st.just("2026-01-01T00:00:00.000Z"), json_values),
                           "type": st.one_of(st.sampled_from(TYPES), st.text(max_size=20)),
                           "record": json_values}),
    mistyped_envelope(),
    st.sampled_from(sorted(EXAMPLES.values(), key=json.dumps)),
)


def _dump(value) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")


def _truncate(pair):
    body, cut = pair
    return body[: cut % (len(body) + 1)]


bodies = st.one_of(
    st.binary(max_size=300),                                            # not JSON at all / bad UTF-8
    json_values.map(_dump),                                             # JSON, but not a batch
    st.lists(envelopes, max_size=8).map(_dump),                         # batches of odd envelopes
    st.tuples(st.lists(envelopes, min_size=1, max_size=6).map(_dump), st.integers(0, 10**6)).map(_truncate),
    st.integers(MAX_BODY + 1, 3 * MAX_BODY).map(lambda n: b"[" + b" " * (n - 2) + b"]"),   # oversized
    st.integers(10, 5000).map(lambda n: b"[" * n + b"]" * n),          # deep nesting
)


@pytest.fixture(scope="module")
def shell():
    sc = ShellSidecar(max_body=MAX_BODY)
    yield sc
    sc.close()


def _valid_invocation_batch(rid: str) -> bytes:
    start, done, rep = (json.loads(json.dumps(EXAMPLES[k])) for k in ("start", "runtimeDone", "report"))
    for env in (start, done, rep):
        env["record"]["requestId"] = rid
    return json.dumps([start, done, rep]).encode()


def _snapshot(sc: ShellSidecar) -> dict:
    c, lh = sc.counters(), sc.listener.health()
    return {"requests": lh["listener_requests"], "oversized": lh["listener_oversized"],
            "dropped": lh["listener_dropped_batches"], "batches": c.get("batches", 0),
            "records": c.get("records_received", 0), "malformed": c.get("malformed", 0)}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow, HealthCheck.data_too_large])
@given(batch=st.lists(bodies, min_size=1, max_size=6))
def test_every_body_is_answered_and_counted(shell, batch):
    before = _snapshot(shell)
    statuses = [post(shell.port, body) for body in batch]
    assert statuses == [200 if len(b) <= MAX_BODY else 413 for b in batch]   # oversized: refused unread
    kept = [b for b in batch if len(b) <= MAX_BODY]
    parsed = [parse_batch(b) for b in kept]
    want = {"requests": before["requests"] + len(batch),
            "oversized": before["oversized"] + len(batch) - len(kept),
            "batches": before["batches"] + len(kept),
            "records": before["records"] + sum(p.items for p in parsed),
            "malformed": before["malformed"] + sum(p.malformed for p in parsed)}
    got = shell.wait(lambda: (lambda s: s if s["batches"] + s["dropped"] - before["dropped"] >= want["batches"]
                              else None)(_snapshot(shell)))
    assert got["dropped"] == before["dropped"]           # one request at a time never overflows the queue
    assert {k: got[k] for k in want} == want
    # and the sidecar still works: a valid invocation is turned into signals
    rid = str(uuid.uuid4())
    assert post(shell.port, _valid_invocation_batch(rid)) == 200
    shell.wait(lambda: shell.worker.pipeline.runtime_done_seen(rid))


def test_other_methods_and_paths_are_answered(shell):
    assert post(shell.port, b"", method="GET") == 405
    assert post(shell.port, b"[]", path="/some/other/path") == 200   # Lambda posts to the URI we gave; any path is fine


def test_concurrent_posters_lose_nothing_uncounted():
    """Eight clients at once, more batches than the queue holds: accepted + dropped == posted, nothing else."""
    sc = ShellSidecar(max_body=MAX_BODY, max_batches=8)
    try:
        rids = [[str(uuid.uuid4()) for _ in range(40)] for _ in range(8)]
        statuses: list = []

        def client(ids):
            statuses.extend(post(sc.port, _valid_invocation_batch(rid)) for rid in ids)

        threads = [threading.Thread(target=client, args=(ids,)) for ids in rids]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert statuses == [200] * 320
        got = sc.wait(lambda: (lambda s: s if s["batches"] + s["dropped"] >= 320 else None)(_snapshot(sc)))
        assert got["requests"] == 320
        assert got["batches"] + got["dropped"] == 320
        assert got["records"] == 3 * got["batches"] and got["malformed"] == 0
        seen = sum(1 for ids in rids for rid in ids if sc.worker.pipeline.runtime_done_seen(rid))
        assert seen == got["batches"]          # every batch that was not counted as dropped was processed
    finally:
        sc.close()
