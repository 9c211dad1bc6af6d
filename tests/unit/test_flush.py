"""Flush policy decisions: end / periodic / continuous / adaptive (freshness budget), budgets bounded by the deadline."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from otel_sidecar import flush
from otel_sidecar.config import load_settings


def policy(**env):
    return flush.make_policy(load_settings(env)[0])


def test_post_runtime_budget_is_bounded_by_deadline_minus_margin():
    assert flush.post_runtime_budget(0.03, now=10.0, deadline=None, margin_s=0.1) == 0.03
    assert flush.post_runtime_budget(0.03, now=10.0, deadline=10.12, margin_s=0.1) == pytest.approx(0.02)
    assert flush.post_runtime_budget(0.03, now=10.0, deadline=10.05, margin_s=0.1) == 0.0
    assert flush.post_runtime_budget(-1, now=0, deadline=None, margin_s=0) == 0.0


def test_default_is_adaptive_with_a_30s_freshness_budget_and_the_first_invocation_defers():
    p = policy()
    assert p.mode == "adaptive" and p.max_delay_s == 30.0
    p.on_invoke(0.0)
    plan = p.plan_after_invoke(0.0)
    assert (plan.wait_runtime_done, plan.budget_s, plan.mode) == (False, 0.0, "periodic")
    assert "first invocation" in plan.reason
    # the first invocation's data leaves by the periodic interval (20 s), within the budget
    assert p.next_timer(0.0) == 20.0


def test_second_invocation_already_decides_from_its_one_gap():
    fast, slow = policy(), policy()
    for p, gap in ((fast, 0.3), (slow, 20.0)):
        p.on_invoke(0.0)
        p.plan_after_invoke(0.0)
        p.on_invoke(gap)
    fast_plan, slow_plan = fast.plan_after_invoke(0.3), slow.plan_after_invoke(20.0)
    assert (fast_plan.wait_runtime_done, fast_plan.budget_s, fast_plan.mode) == (False, 0.0, "periodic")
    # 2 x 20 s expected gap exceeds the 30 s budget: flush after the runtime's response, 30 ms
    assert (slow_plan.wait_runtime_done, slow_plan.budget_s, slow_plan.mode) == (True, 0.03, "end")
    assert slow.plan_after_invoke(20.0, deadline=20.11).budget_s == pytest.approx(0.01)


def test_budget_below_the_gap_flushes_at_the_end():
    p = policy(SIDECAR_MAX_EXPORT_DELAY_MS="1000")
    modes = []
    for i in range(5):
        p.on_invoke(i * 1.0)
        modes.append(p.plan_after_invoke(i * 1.0).mode)
    assert modes == ["periodic", "end", "end", "end", "end"]


def test_oldest_unsent_data_forces_an_end_flush_before_it_exceeds_the_budget():
    p = policy(SIDECAR_MAX_EXPORT_DELAY_MS="10000")
    modes = []
    t = 0.0
    for _ in range(12):          # 1 s gaps: the next thaw is always expected within 2 s
        p.on_invoke(t)
        modes.append(p.plan_after_invoke(t).mode)
        t += 1.0
    # never flushed (no thaw let the timer fire): from 8 s of unsent data on, the end flush takes over
    assert modes[:8] == ["periodic"] * 8 and modes[9:] == ["end"] * 3
    p.on_flush(t)
    p.on_invoke(t)
    assert p.plan_after_invoke(t).mode == "periodic"


def test_timer_fires_before_the_oldest_unsent_data_reaches_the_budget():
    p = policy(SIDECAR_MAX_EXPORT_DELAY_MS="10000")
    for t in (0.0, 0.2, 0.4):
        p.on_invoke(t)
        p.plan_after_invoke(t)
    assert p.next_timer(0.4) == pytest.approx(9.0)          # 0 + 10 s - 1 s slack (before the 20 s interval)
    p.on_flush(9.0)
    p.on_invoke(9.2)
    assert p.next_timer(9.2) == pytest.approx(9.0 + 9.0)


def test_sporadic_traffic_stays_in_end_mode():
    p = policy()
    modes = []
    for i in range(30):
        p.on_invoke(i * 45.0)
        modes.append(p.plan_after_invoke(i * 45.0).mode)
    assert modes[0] == "periodic" and set(modes[1:]) == {"end"}


@settings(max_examples=300, deadline=None)
@given(gaps=st.lists(st.floats(min_value=0.0, max_value=120.0), min_size=1, max_size=40),
       budget_ms=st.integers(min_value=1000, max_value=120000))
def test_deferred_data_is_never_expected_to_wait_longer_than_the_budget(gaps, budget_ms):
    """Whenever the policy defers (from the second invocation on), the oldest unsent data at the expected
    next thaw is within the budget; and the timer is never later than the budget from the oldest unsent data."""
    p = policy(SIDECAR_MAX_EXPORT_DELAY_MS=str(budget_ms))
    budget = budget_ms / 1000.0
    t, times = 0.0, []
    for i, gap in enumerate([0.0] + gaps):
        t += gap
        times.append(t)
        oldest = p.oldest_unsent
        p.on_invoke(t)
        plan = p.plan_after_invoke(t)
        if i and not plan.wait_runtime_done:
            expected = flush.expected_next_gap(times)
            assert (t + expected) - (t if oldest is None else oldest) <= budget + 1e-9
        due = p.next_timer(t)
        assert due is not None and due <= p.oldest_unsent + budget
        if plan.wait_runtime_done:
            assert plan.budget_s == pytest.approx(0.03)
            p.on_flush(t)


@given(times=st.lists(st.floats(min_value=0, max_value=1e6), max_size=30))
def test_expected_gap_is_none_without_history_and_never_negative(times):
    times = sorted(times)
    gap = flush.expected_next_gap(times)
    assert (gap is None) == (len(times) < 2)
    assert gap is None or gap >= 0.0


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
