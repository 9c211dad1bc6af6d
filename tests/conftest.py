"""Fixtures shared by every test folder."""
from __future__ import annotations

import logging

import pytest


def _pristine_sidecar_logger() -> None:
    logger = logging.getLogger("otel_sidecar")
    logger.handlers[:] = []
    logger.propagate = True
    logger.setLevel(logging.NOTSET)


@pytest.fixture(autouse=True)
def _sidecar_logger_reset():
    """Every test starts with the `otel_sidecar` logger as a fresh process has it.

    In-process workers (tests/faults/_shell.py, tests/sidecar_shell) call `setup_logging`, which, as in the
    real process, sets our level and stops propagation to the root logger; left so, later tests' `caplog`
    would see none of the sidecar's warnings.
    """
    _pristine_sidecar_logger()
    yield
    _pristine_sidecar_logger()


@pytest.fixture(scope="session")
def bundled_zips(tmp_path_factory):
    """A function ARCH -> the self-contained layer zip of that architecture (`./build.sh --arch ARCH`'s), each
    built once per session; the bundled CPython comes from the interpreter cache (tests/layer/conftest.py)."""
    from tests.layer.conftest import build_layer, interpreter_prefix

    built = {}
    out_dir = tmp_path_factory.mktemp("bundled")

    def get(arch: str):
        if arch not in built:
            x86 = interpreter_prefix("x86_64")
            prefix = x86 if arch == "x86_64" else interpreter_prefix(arch)
            built[arch] = build_layer(out_dir / f"otel-sidecar-layer-{arch}.zip", "--arch", arch, "--interpreter",
                                      str(prefix), "--build-interpreter", str(x86))
        return built[arch]

    return get
