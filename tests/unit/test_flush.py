"""Flush policy decisions: end / periodic / continuous / adaptive, budgets bounded by the deadline."""

from __future__ import annotations

import pytest
from otel_sidecar import flush
from otel_sidecar.config import load_settings


def policy(**env):
    return flush.make_policy(load_settings(env)[0])


def test_post_runtime_budget_is_bounded_by_deadline_minus_margin():
    assert flush.post_runtime_budget(0.03, now=10.0, deadline=None, margin_s=0.1) == 0.03
    assert flush.post_runtime_budget(0.03, now=10.0, deadline=10.12, margin_s=0.1) == pytest.approx(0.02)
    assert flush.post_runtime_budget(0.03, now=10.0, deadline=10.05, margin_s=0.1) == 0.0
    assert flush.post_runtime_budget(-1, now=0, deadline=None, margin_s=0) == 0.0


def test_default_is_adaptive_and_starts_with_end_mode_and_30ms():
    p = policy()
    p.on_invoke(0.0)
    plan = p.plan_after_invoke(0.0)
    assert (plan.wait_runtime_done, plan.budget_s, plan.mode) == (True, 0.03, "end")
    assert p.plan_after_invoke(0.0, deadline=0.11).budget_s == pytest.approx(0.01)


def test_adaptive_switches_to_periodic_when_busy_and_back_after_a_long_gap():
    p = policy()
    modes = []
    for i in range(15):
        p.on_invoke(float(i))
        modes.append(p.plan_after_invoke(float(i)).mode)
    assert modes[:flush.BUSY_WINDOW] == ["end"] * flush.BUSY_WINDOW
    assert modes[-1] == "periodic"
    busy = p.plan_after_invoke(14.0)
    assert not busy.wait_runtime_done and busy.budget_s == 0.0
    p.on_invoke(14.0 + flush.BUSY_MEAN_GAP_S + 1)
    assert p.plan_after_invoke(14.0 + flush.BUSY_MEAN_GAP_S + 1).mode == "end"


def test_sporadic_traffic_stays_in_end_mode():
    p = policy()
    for i in range(30):
        p.on_invoke(i * 45.0)
        assert p.plan_after_invoke(i * 45.0).mode == "end"


def test_end_mode_backup_timer_only_for_long_invocations():
    p = policy(SIDECAR_FLUSH="end")
    assert p.next_timer(0.0) is None
    p.on_invoke(100.0)
    assert p.next_timer(100.0) == 100.0 + flush.BACKUP_S
    p.on_flush(130.0)
    assert p.next_timer(130.0) == 130.0 + flush.BACKUP_S


def test_periodic_and_continuous_timers():
    p = policy(SIDECAR_FLUSH="periodic:5000")
    p.on_invoke(10.0)
    plan = p.plan_after_invoke(10.0)
    assert (plan.wait_runtime_done, plan.budget_s, plan.mode) == (False, 0.0, "periodic")
    assert p.next_timer(10.0) == 15.0
    p.on_flush(16.0)
    assert p.next_timer(16.0) == 21.0
    c = policy(SIDECAR_FLUSH="continuous")
    c.on_invoke(1.0)
    assert c.next_timer(1.0) == 1.0 + flush.CONTINUOUS_INTERVAL_S
    assert policy(SIDECAR_FLUSH="continuous:3000").interval_s == 3.0


def test_budget_and_margin_come_from_settings():
    p = policy(SIDECAR_FLUSH="end", SIDECAR_FLUSH_BUDGET_MS="80", SIDECAR_FLUSH_MARGIN_MS="20")
    p.on_invoke(0.0)
    assert p.plan_after_invoke(0.0).budget_s == pytest.approx(0.08)
    assert p.plan_after_invoke(0.0, deadline=0.05).budget_s == pytest.approx(0.03)


def test_make_policy_tolerates_any_settings_object():
    p = flush.make_policy(object())
    assert p.mode == "adaptive" and p.budget_s == 0.03
