"""The built layer in the sandbox, next to a function with its own opentelemetry-sdk and its own PYTHONPATH.

Both work, and neither imports the other's packages: the function sees only its own OpenTelemetry and
never the sidecar's; the sidecar (launched with -I -S and its own sys.path) never imports anything from the
function's PYTHONPATH, whose poisoned yaml/requests/sitecustomize would announce themselves.
"""

from __future__ import annotations

import json
from pathlib import Path

import otel_sidecar
import pytest
from lambda_sandbox import OtlpReceiver, Sandbox, SandboxConfig

from .conftest import FUNCTION_OTEL_VERSION

pytestmark = [pytest.mark.slow, pytest.mark.sandbox]

FUNCTIONS = Path(__file__).resolve().parent / "functions"
# Static, bound read-only at its own path in namespace mode (keep_paths): fnlib plus poisoned yaml, requests
# and sitecustomize that write "POISON" to stderr if anything imports them.
CUSTOMER_PATH = Path(__file__).resolve().parent / "customer_path"


def _emf_docs(lines):
    docs = []
    for line in lines:
        line = line.strip()
        if line.startswith("{") and '"_aws"' in line:
            docs.append(json.loads(line))
    return docs


@pytest.mark.parametrize("isolation", ["auto", "dirs"])
def test_function_and_sidecar_each_use_their_own_packages(layer_zip, function_otel_deps, isolation):
    customer = CUSTOMER_PATH
    # The customer's own directory comes AFTER their dependency layer, so the function's opentelemetry is the
    # one from its layer; the poisoned opentelemetry here is never reached by the function either.
    env = {"PYTHONPATH": f"{function_otel_deps / 'python'}:{customer}"}
    with OtlpReceiver() as receiver:
        cfg = SandboxConfig(code_dir=str(FUNCTIONS), handler="otel_app.handler", function_name="iso",
                            layers=[str(layer_zip), str(function_otel_deps)], memory_mb=512, timeout_s=10.0,
                            env=env, otlp_receiver=receiver, isolation=isolation,
                            keep_paths=[function_otel_deps, customer])  # host paths named by PYTHONPATH
        with Sandbox(cfg) as sb:
            first = sb.invoke({})
            second = sb.invoke({})
            shutdown = sb.shutdown()
            sidecar_lines = sb.extension_lines("otel-sidecar")
            all_lines = [ln.text for ln in sb.logs]
        spans = receiver.wait_for(lambda r: r.spans(), timeout=5.0)

    # the function: its own OpenTelemetry, its own PYTHONPATH module, no trace of the sidecar
    assert first.outcome == "success" and second.outcome == "success", (first.response, second.response)
    fn = second.response
    assert fn["otel_version"] == FUNCTION_OTEL_VERSION
    assert fn["otel_sdk_file"].startswith(str(function_otel_deps))
    assert fn["fnlib"] == "fnlib from the customer PYTHONPATH"
    assert fn["sidecar_importable"] is False
    assert not [p for p in fn["sys_path"] if "otel-sidecar" in p]

    assert fn["proto_version"] == FUNCTION_OTEL_VERSION and fn["protobuf_file"].startswith(str(function_otel_deps))

    # the sidecar: registered, wrote EMF for both invocations, exported with the layer's own OTLP stack, exited
    assert shutdown.extensions == {"otel-sidecar": "Exited"}
    docs = _emf_docs(sidecar_lines)
    assert sum(sum(v) if isinstance(v, list) else v for d in docs if "Invocations" in d
               for v in [d["Invocations"]]) == 2
    assert spans, "the sidecar exported no spans"
    assert {(s["resource"].get("telemetry.sdk.name"), s["resource"].get("telemetry.sdk.version")) for s in spans} \
        == {("otel-sidecar", otel_sidecar.__version__)}
    (stack,) = [ln for ln in sidecar_lines if "OTLP export on:" in ln]
    assert "opentelemetry-proto 1.41.1, protobuf 6.33.6" in stack and fn["protobuf_version"] not in stack

    # nobody imported the poisoned copies from the customer's PYTHONPATH
    assert not [ln for ln in all_lines if "POISON" in ln]


def test_function_keeps_working_when_the_sidecar_has_no_python(layer_zip):
    """SIDECAR_FORCE_NO_PYTHON takes the no-interpreter path: the bash stand-in registers, the function answers."""
    customer = CUSTOMER_PATH
    cfg = SandboxConfig(code_dir=str(FUNCTIONS), handler="otel_app.handler", function_name="nopy",
                        layers=[str(layer_zip)], memory_mb=128, timeout_s=5.0,
                        env={"SIDECAR_FORCE_NO_PYTHON": "1", "PYTHONPATH": str(customer)}, keep_paths=[customer])
    with Sandbox(cfg) as sb:
        # the function has no opentelemetry of its own here: it fails with ImportError, a handled error;
        # what matters is that init passed (the stand-in registered) and every invoke got an answer
        results = [sb.invoke({}) for _ in range(3)]
        shutdown = sb.shutdown()
        lines = sb.extension_lines("otel-sidecar")
    assert [r.outcome for r in results] == ["error"] * 3
    assert all(r.latency_ms < 5000 for r in results)
    assert shutdown.extensions == {"otel-sidecar": "Exited"}
    assert any("no usable Python" in ln for ln in lines)
    assert any("registered as otel-sidecar for SHUTDOWN only" in ln for ln in lines)
