"""Configuration of the environment's limits: bad values are refused naming the field and the value."""

from __future__ import annotations

import pytest
from lambda_sandbox import SandboxConfig
from lambda_sandbox.config import ConfigError
from lambda_sandbox.isolation import PASSWD_LINE, RLIMITS, SBX_GID, SBX_UID

from .conftest import FUNCTIONS


@pytest.mark.parametrize("size", [0, -1, 10241, "512"])
def test_ephemeral_storage_out_of_range_is_refused(size):
    with pytest.raises(ConfigError, match=rf"ephemeral_storage_mb={size!r}"):
        SandboxConfig(code_dir=FUNCTIONS, handler="hello.handler", ephemeral_storage_mb=size)


@pytest.mark.parametrize("port", [-1, 65536, "9001"])
def test_api_port_out_of_range_is_refused(port):
    with pytest.raises(ConfigError, match=rf"api_port={port!r}"):
        SandboxConfig(code_dir=FUNCTIONS, handler="hello.handler", api_port=port)


def test_identity_and_limits_are_lambdas():
    assert (SBX_UID, SBX_GID) == (993, 990)
    assert PASSWD_LINE.startswith("sbx_user1051:x:993:990::/home/sbx_user1051:")
    assert "--nofile=1024:1024" in RLIMITS and "--nproc=1024:1024" in RLIMITS
