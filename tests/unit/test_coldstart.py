"""The cold-start decision (coldstart.classify_init): kinds and the idle threshold's boundary."""

from __future__ import annotations

import pytest
from otel_sidecar.coldstart import (
    COLD_START,
    DEFAULT_IDLE_THRESHOLD_MS,
    MANAGED_INSTANCES,
    PROACTIVE,
    PROVISIONED,
    SNAP_START,
    classify_init,
)
from otel_sidecar.config import load_settings


def test_the_documented_threshold_is_the_settings_default():
    assert load_settings({})[0].coldstart_idle_ms == DEFAULT_IDLE_THRESHOLD_MS


@pytest.mark.parametrize("gap, kind", [
    (0.0, COLD_START), (250.0, COLD_START),
    (10_000.0, COLD_START),          # at the threshold: still a cold start (the gap must exceed it)
    (10_000.1, PROACTIVE), (None, PROACTIVE),      # never invoked: proactive
])
def test_on_demand_init_is_proactive_only_past_the_idle_threshold(gap, kind):
    assert classify_init("on-demand", "init", False, True, gap, 10_000) == (kind, kind == PROACTIVE)


def test_a_failed_on_demand_init_is_a_cold_start_whatever_the_gap():
    assert classify_init("on-demand", "init", False, False, 60_000.0, 10_000) == (COLD_START, False)


@pytest.mark.parametrize("itype, phase, restore, kind", [
    ("provisioned-concurrency", "init", False, PROVISIONED),
    ("lambda-managed-instances", "init", False, MANAGED_INSTANCES),
    ("snap-start", "restore", True, SNAP_START),
    ("on-demand", "restore", True, SNAP_START),
    ("provisioned-concurrency", "invoke", False, COLD_START),   # a re-init inside an invoke: the caller waited
])
def test_kinds_by_initialization_type_and_phase(itype, phase, restore, kind):
    assert classify_init(itype, phase, restore, True, 60_000.0, 10_000)[0] == kind
