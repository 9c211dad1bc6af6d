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
