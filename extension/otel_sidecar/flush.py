"""Flush policy: WHEN to flush and how much post-runtime time a flush may take. Pure decisions.

Times are whatever single clock the caller uses (the shell uses time.monotonic()); nothing here reads a
clock, sleeps or does I/O.

Modes (SIDECAR_FLUSH):
- end: after each invoke, wait (bounded) for platform.runtimeDone, then flush within a small budget before
  calling /next. Fresh data for sporadic traffic, at the price of a few ms of post-runtime time.
  A backup timer flushes during invocations that run longer than BACKUP_S.
- periodic[:ms]: never hold /next; flush from the background when `interval` has passed, i.e. while an
  invocation runs (timers do not fire while the environment is frozen, so an overdue flush happens at
  the next thaw, overlapping the handler instead of delaying it).
- continuous[:ms]: like periodic with a short interval (default 1 s): ship during every busy invocation.
- adaptive (default): a freshness budget (SIDECAR_MAX_EXPORT_DELAY_MS, max_delay_s). After each invocation,
  from the second on: if the next thaw is expected (GAP_FACTOR x the longest of the last BUSY_WINDOW gaps)
  before the oldest unsent data is max_delay_s old, /next is not held (`periodic`: the data leaves in the
  background during a later invocation, or at SHUTDOWN); otherwise `end`. The background timer fires when
  the oldest unsent data would reach the budget minus FRESHNESS_SLACK_S, so at the latest at the next thaw.
  The first invocation has no history: it defers too (its one-time setup then runs in the background
  instead of in its post-runtime time).
"""

from __future__ import annotations

import collections

TYPE_CHECKING = False
if TYPE_CHECKING:  # the lifecycle builds the policy at the first INVOKE, on its own thread: no typing there
    from typing import Deque, Optional, Sequence

END = "end"
PERIODIC = "periodic"
CONTINUOUS = "continuous"
ADAPTIVE = "adaptive"

BUSY_WINDOW = 10            # invocations looked at by the adaptive mode
BACKUP_S = 60.0             # end mode: flush during an invocation running longer than this
CONTINUOUS_INTERVAL_S = 1.0
DEFAULT_MAX_EXPORT_DELAY_S = 30.0
GAP_FACTOR = 2.0            # the next thaw is expected within this many times the longest recent gap
FRESHNESS_SLACK_S = 1.0     # the background flush is due this long before the budget runs out


# What to do after handing an INVOKE over: wait for runtimeDone?, then flush for at most budget_s; `mode`
# is the effective mode the plan comes from. A namedtuple, not a dataclass: `dataclasses` imports `inspect`
# (~10 ms of CPU), which would land in the first invocation's handler time.
Plan = collections.namedtuple("Plan", "wait_runtime_done budget_s mode reason", defaults=(True, 0.03, END, ""))


def expected_next_gap(invoke_times: Sequence[float], window: int = BUSY_WINDOW) -> Optional[float]:
    """A pessimistic estimate of the time to the next invoke: GAP_FACTOR x the longest of the last `window`
    gaps between invoke start times (oldest first); None with fewer than two invokes."""
    times = list(invoke_times)[-(window + 1):]
    if len(times) < 2:
        return None
    return max(0.0, max(b - a for a, b in zip(times, times[1:]))) * GAP_FACTOR


def can_defer(invoke_times: Sequence[float], now: float, max_delay_s: float,
              oldest_unsent: Optional[float] = None) -> bool:
    """May the data of the invoke started at `now` (and anything unsent since `oldest_unsent`) wait for the
    next thaw? Only if the next invoke is expected before the oldest unsent data is max_delay_s old."""
    gap = expected_next_gap(invoke_times)
    if gap is None:
        return False
    oldest = now if oldest_unsent is None else min(oldest_unsent, now)
    return (now + gap) - oldest <= max_delay_s


def effective_mode(mode: str, invoke_times: Sequence[float], now: float,
                   max_delay_s: float = DEFAULT_MAX_EXPORT_DELAY_S, oldest_unsent: Optional[float] = None) -> str:
    """The concrete mode for `mode` given the recent invoke start times (oldest first, the current last)."""
    if mode != ADAPTIVE:
        return mode
    if len(invoke_times) < 2:
        return PERIODIC          # the first invocation: no history, and nothing loaded to flush with yet
    return PERIODIC if can_defer(invoke_times, now, max_delay_s, oldest_unsent) else END


def post_runtime_budget(budget_s: float, now: float, deadline: Optional[float], margin_s: float) -> float:
    """The post-runtime flush budget: min(budget, deadline - margin - now), never negative."""
    b = max(0.0, budget_s)
    if deadline is not None:
        b = min(b, deadline - margin_s - now)
    return max(0.0, b)


def plan_after_invoke(mode: str, invoke_times: Sequence[float], now: float, budget_s: float,
                      deadline: Optional[float] = None, margin_s: float = 0.1,
                      max_delay_s: float = DEFAULT_MAX_EXPORT_DELAY_S, oldest_unsent: Optional[float] = None) -> Plan:
    """The plan for the invoke that just started at `now` (its start time is the last of invoke_times)."""
    eff = effective_mode(mode, invoke_times, now, max_delay_s, oldest_unsent)
    if eff == END:
        return Plan(True, post_runtime_budget(budget_s, now, deadline, margin_s), eff,
                    "next invoke not expected within the freshness budget: flush after the runtime's response"
                    if mode == ADAPTIVE else "end mode")
    if mode == ADAPTIVE:
        why = ("first invocation: /next at once, setup and data wait for a later invocation or SHUTDOWN"
               if len(invoke_times) < 2 else "next invoke expected within the freshness budget: /next at once")
        return Plan(False, 0.0, eff, why)
    return Plan(False, 0.0, eff, f"{eff}: flushed from the background, /next is never held")


def freshness_due(oldest_unsent: Optional[float], max_delay_s: float) -> Optional[float]:
    """When unsent data (the oldest from oldest_unsent) must leave to stay within the budget (None: none)."""
    if oldest_unsent is None:
        return None
    return oldest_unsent + max_delay_s - min(FRESHNESS_SLACK_S, max_delay_s / 4.0)


def next_flush_due(mode: str, last_flush: Optional[float], last_invoke: Optional[float], interval_s: float,
                   backup_s: float = BACKUP_S) -> Optional[float]:
    """When the background timer should flush next (None: no timer)."""
    if mode == END:
        if last_invoke is None:
            return None
        base = last_invoke if last_flush is None else max(last_flush, last_invoke)
        return base + backup_s
    if last_flush is None:
        return None if last_invoke is None else last_invoke + interval_s
    return last_flush + interval_s


class FlushPolicy:
    """Stateful wrapper over the pure decisions: remembers invoke times and the last flush (times passed in)."""

    def __init__(self, mode: str = ADAPTIVE, interval_s: float = 20.0, budget_s: float = 0.03,
                 margin_s: float = 0.1, backup_s: float = BACKUP_S,
                 max_delay_s: float = DEFAULT_MAX_EXPORT_DELAY_S) -> None:
        self.mode = mode
        self.max_delay_s = max_delay_s
        self.oldest_unsent: Optional[float] = None   # start of the oldest invoke whose data may be unsent
        self.interval_s = interval_s
        self.budget_s = budget_s
        self.margin_s = margin_s
        self.backup_s = backup_s
        self._invokes: Deque[float] = collections.deque(maxlen=BUSY_WINDOW + 1)
        self.last_flush: Optional[float] = None
        self.current = END if mode == ADAPTIVE else mode

    def on_invoke(self, now: float) -> None:
        if not self._invokes or now >= self._invokes[-1]:
            self._invokes.append(now)
        if self.oldest_unsent is None:
            self.oldest_unsent = now

    def on_flush(self, now: float) -> None:
        """A flush started at `now`: what had arrived is out; the last invoke's late telemetry (its report
        comes after /next) may still be on its way, so unsent data counts from `now` (conservative)."""
        self.last_flush = now
        if self.oldest_unsent is not None:
            self.oldest_unsent = now

    def plan_after_invoke(self, now: float, deadline: Optional[float] = None) -> Plan:
        plan = plan_after_invoke(self.mode, tuple(self._invokes), now, self.budget_s, deadline, self.margin_s,
                                 self.max_delay_s, self.oldest_unsent)
        self.current = plan.mode
        return plan

    def next_timer(self, now: float) -> Optional[float]:
        last_invoke = self._invokes[-1] if self._invokes else None
        due = next_flush_due(self.current, self.last_flush, last_invoke, self.interval_s, self.backup_s)
        if self.mode == ADAPTIVE:
            fresh = freshness_due(self.oldest_unsent, self.max_delay_s)
            if fresh is not None:
                due = fresh if due is None else min(due, fresh)
        return due


def make_policy(settings: object) -> FlushPolicy:
    """The policy configured by Settings (flush_mode, flush_interval_ms, flush_budget_ms, flush_margin_ms)."""
    mode = str(getattr(settings, "flush_mode", ADAPTIVE) or ADAPTIVE)
    if mode not in (ADAPTIVE, END, PERIODIC, CONTINUOUS):
        mode = ADAPTIVE
    interval_s = float(getattr(settings, "flush_interval_ms", 20000)) / 1000.0
    if mode == CONTINUOUS and not getattr(settings, "flush_interval_explicit", False):
        interval_s = CONTINUOUS_INTERVAL_S
    return FlushPolicy(mode=mode, interval_s=max(0.1, interval_s),
                       budget_s=float(getattr(settings, "flush_budget_ms", 30)) / 1000.0,
                       margin_s=float(getattr(settings, "flush_margin_ms", 100)) / 1000.0,
                       max_delay_s=float(getattr(settings, "max_export_delay_ms", 30000)) / 1000.0)
