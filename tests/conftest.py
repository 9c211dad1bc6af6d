"""Fixtures shared by every test folder."""
from __future__ import annotations

import logging

import pytest


@pytest.fixture(autouse=True)
def _sidecar_logger_restored():
    """Give every test the `otel_sidecar` logger as it found it.

    In-process worker tests call `setup_logging`, which (as in the real process) stops propagation to the
    root logger; without this, later tests' `caplog` would see none of the sidecar's warnings.
    """
    logger = logging.getLogger("otel_sidecar")
    saved = (list(logger.handlers), logger.propagate, logger.level)
    yield
    logger.handlers[:] = saved[0]
    logger.propagate, logger.level = saved[1], saved[2]
