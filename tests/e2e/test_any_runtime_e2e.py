"""End to end on runtimes without Python: the built self-contained layer (`./build.sh --arch x86_64`'s zip, with its
bundled CPython) on a Node.js function (the real aws-lambda-ric) and on a provided.al2023 `bootstrap` in bash, with
no host interpreter visible, gives the EMF and OTLP signals the Python end-to-end tests check (tests/e2e/
test_sidecar_e2e.py, tests/otlp/test_e2e.py): cold start, error, timeout with its reset, shutdown.

One environment per runtime runs every case (each sandbox start costs): ok, ok, error, timeout, ok, shutdown."""

from __future__ import annotations

import platform
import shutil
from pathlib import Path

import pytest
from lambda_sandbox import OtlpReceiver, Sandbox, SandboxConfig, node_ric
from lambda_sandbox.isolation import namespace_possible

from tests.helpers import SIDECAR_NAME, emf_values, sidecar_emf, sidecar_log_lines

RUNTIME_FIXTURES = Path(__file__).resolve().parents[1] / "sandbox" / "runtime_fixtures"
FN = "any-runtime-e2e"
ARCH = {"x86_64": "x86_64", "aarch64": "arm64"}.get(platform.machine())

pytestmark = [
    pytest.mark.sandbox, pytest.mark.slow,
    pytest.mark.skipif(namespace_possible() is not None,
                       reason=f"no mount namespace here, so the host's interpreters cannot be hidden: "
                              f"{namespace_possible()}"),
    pytest.mark.skipif(ARCH is None, reason=f"no self-contained layer for {platform.machine()}"),
    # the first run on a fresh machine builds CPython (~10 min) and installs aws-lambda-ric (4-6 min)
    pytest.mark.timeout(3600 + node_ric.INSTALL_TIMEOUT_S),
]


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


def _node_code(root: Path) -> Path:
    code = root / "node-code"
    code.mkdir()
    shutil.copy(RUNTIME_FIXTURES / "index.mjs", code / "index.mjs")
    return code


def _bash_code(root: Path) -> Path:
    code = root / "bash-code"
    code.mkdir()
    for name in ("bootstrap", "http.bash"):
        shutil.copy2(RUNTIME_FIXTURES / name, code / name)
    return code


# runtime -> (handler, code maker, the error event, the event that outlives the timeout, the error's type)
CASES = {
    "nodejs20.x": ("index.handler", _node_code, {"action": "throw"}, {"action": "sleep", "ms": 8000}, "TypeError"),
    "provided.al2023": ("function.handler", _bash_code, {"action": "throw"}, {"action": "sleep"}, "HandlerError"),
}
RUNTIMES = [pytest.param("nodejs20.x", marks=pytest.mark.skipif(not _ric_available(),
                                                                reason="no node, or no npm and no aws-lambda-ric")),
            "provided.al2023"]


def total(docs, metric: str) -> float:
    return sum(emf_values(docs, metric, FunctionName=FN))


def server_spans(rx: OtlpReceiver) -> dict:
    out: dict = {}
    for s in rx.spans():
        if s["kind"] == "SERVER":
            out.setdefault(s["attributes"]["faas.invocation_id"], []).append(s)
    return out


@pytest.fixture
def receiver():
    with OtlpReceiver() as rx:
        yield rx


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_built_layer_on_a_runtime_without_python(bundled_zips, receiver, tmp_path, runtime):
    handler, make_code, error_event, slow_event, error_type = CASES[runtime]
    sb = Sandbox(SandboxConfig(code_dir=make_code(tmp_path), handler=handler, runtime=runtime,
                               layers=[bundled_zips(ARCH)], function_name=FN, timeout_s=2.0,
                               otlp_receiver=receiver))
    try:
        sb.start()
        results = [sb.invoke({}), sb.invoke({}), sb.invoke(error_event), sb.invoke(slow_event), sb.invoke({})]
        assert [r.outcome for r in results] == ["success", "success", "error", "timeout", "success"], \
            sb.extension_lines(SIDECAR_NAME)
        assert results[2].error_type == error_type
        assert sb.resets[0].reason == "timeout" and sb.resets[0].extensions[SIDECAR_NAME] == "Exited"
        shut = sb.shutdown()
        assert shut.extensions[SIDECAR_NAME] == "Exited"     # finished before the shutdown deadline
        report = sb.report()
    finally:
        sb.close()

    # no Python or Node of the host was visible, so the sidecar ran on the layer's own CPython, twice (cold
    # start, then the re-init after the timeout), and said so
    assert report["environment"]["hostInterpreters"] == "hidden"
    lines = sidecar_log_lines(sb)
    said = [ln for ln in lines if "INFO interpreter:" in ln]
    assert len(said) == 2 and all("interpreter: bundled CPython 3.13" in ln for ln in said), said
    assert [ln for ln in lines if "degraded" in ln or "ERROR" in ln] == []

    # EMF: the same totals as on Python
    docs = sidecar_emf(sb)
    assert docs, sb.extension_lines(SIDECAR_NAME)
    assert total(docs, "Invocations") == 5
    # the cold start, and the re-init inside the invoke after the timeout (the caller waited for it: a cold start
    # by extension/otel_sidecar/coldstart.py's rule)
    assert total(docs, "ColdStart") == 2
    assert total(docs, "Timeouts") == 1
    assert total(docs, "FunctionErrors") == 1
    assert total(docs, "Errors") == 2                      # the error and the timeout
    assert total(docs, "ShutdownsTimeout") == 1            # the reset after the timeout
    assert total(docs, "ShutdownsSpindown") == 1
    assert total(docs, "SidecarDropped") == 0

    # OTLP: one SERVER span per invocation at the receiver; cold only where an init ran; errors marked
    rid = [r.request_id for r in results]
    spans = receiver.wait_for(lambda r: len(server_spans(r)) >= len(rid) and server_spans(r), timeout=5)
    assert {k: len(v) for k, v in spans.items()} == {r: 1 for r in rid}
    by = {r: spans[r][0] for r in rid}
    assert [by[r]["attributes"]["faas.coldstart"] for r in rid] == [True, False, False, False, True]
    assert [by[r]["status"]["code"] for r in rid] == ["UNSET", "UNSET", "ERROR", "ERROR", "UNSET"]
    assert by[rid[3]]["attributes"]["error.type"] == "timeout"
    assert {by[r]["attributes"]["faas.name"] for r in rid} == {FN}
