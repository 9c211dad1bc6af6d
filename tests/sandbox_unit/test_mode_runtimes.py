"""Runtimes x platform modes (platform-2025.md 1.4, 4): what Lambda offers each mode, and the default runtime."""

from __future__ import annotations

import sys

import pytest
from lambda_sandbox import SandboxConfig, runtimes
from lambda_sandbox.cli import flag_message
from lambda_sandbox.config import ConfigError

SNAPSTART_OK = {"python3.12", "python3.13"}
LMI_OK = {"python3.13", "provided.al2023"}          # nodejs22.x: Lambda offers it, the sandbox's RIC cannot


def _cfg(tmp_path, **kw) -> SandboxConfig:
    return SandboxConfig(code_dir=tmp_path, handler="app.handler", **kw)


@pytest.mark.parametrize("runtime", runtimes.SUPPORTED_RUNTIMES)
@pytest.mark.parametrize("mode", [{"snapstart": True}, {"init_type": "snap-start"},
                                  {"mode": "managed-instances"}, {"init_type": "lambda-managed-instances"}])
def test_a_runtime_lambda_does_not_offer_in_a_mode_is_an_error_naming_both(tmp_path, runtime, mode):
    snap = "snapstart" in mode or mode.get("init_type") == "snap-start"
    ok = runtime in (SNAPSTART_OK if snap else LMI_OK)
    if ok:
        cfg = _cfg(tmp_path, runtime=runtime, **mode)
        assert (cfg.runtime, cfg.init_type) == (runtime, "snap-start" if snap else "lambda-managed-instances")
        return
    with pytest.raises(ConfigError) as err:
        _cfg(tmp_path, runtime=runtime, **mode)
    text = str(err.value)
    assert f"runtime={runtime!r}" in text
    assert ("snapstart=True" if snap else "mode='managed-instances'") in text
    assert flag_message(text).startswith(f"--runtime {runtime!r} cannot be combined with ")


def test_nodejs22_on_managed_instances_says_why_the_sandbox_cannot(tmp_path):
    with pytest.raises(ConfigError, match="aws-lambda-ric 3.3.0 has no Managed Instances mode"):
        _cfg(tmp_path, runtime="nodejs22.x", mode="managed-instances")


@pytest.mark.parametrize("runtime", runtimes.SUPPORTED_RUNTIMES)
def test_tenant_isolation_takes_every_runtime(tmp_path, runtime):
    assert _cfg(tmp_path, runtime=runtime, tenant_id="blue").tenant_id == "blue"


def test_without_runtime_a_mode_runs_the_nearest_python_runtime_it_offers(tmp_path):
    minor = sys.version_info.minor
    assert _cfg(tmp_path, snapstart=True).runtime == f"python3.{max(12, min(minor, 13))}"
    assert _cfg(tmp_path, mode="managed-instances").runtime == "python3.13"
    assert _cfg(tmp_path).runtime == runtimes.default_runtime()
    assert runtimes.default_runtime(runtimes.SNAPSTART_RUNTIMES) in SNAPSTART_OK
