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
- adaptive (default): `end` while traffic is sporadic; `periodic` once the last BUSY_WINDOW invocations came
  with a mean gap below BUSY_MEAN_GAP_S (busy functions then pay no post-runtime time at all); back to
  `end` as soon as a gap that long is seen.
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
BUSY_MEAN_GAP_S = 30.0      # mean gap below which the adaptive mode stops flushing post-runtime
BACKUP_S = 60.0             # end mode: flush during an invocation running longer than this
CONTINUOUS_INTERVAL_S = 1.0


# What to do after handing an INVOKE over: wait for runtimeDone?, then flush for at most budget_s; `mode`
# is the effective mode the plan comes from. A namedtuple, not a dataclass: `dataclasses` imports `inspect`
# (~10 ms of CPU), which would land in the first invocation's handler time.
Plan = collections.namedtuple("Plan", "wait_runtime_done budget_s mode reason", defaults=(True, 0.03, END, ""))


def effective_mode(mode: str, invoke_times: Sequence[float], now: float, window: int = BUSY_WINDOW,
                   busy_gap_s: float = BUSY_MEAN_GAP_S) -> str:
    """The concrete mode for `mode` given the recent invoke start times (oldest first, the current last)."""
    if mode != ADAPTIVE:
        return mode
    times = list(invoke_times)[-(window + 1):]
    if len(times) < window + 1:
        return END
    if now - times[-1] > busy_gap_s:  # idle since the last invoke: sporadic again
        return END
    gaps = [b - a for a, b in zip(times, times[1:])]
    if max(gaps[-1:], default=0.0) > busy_gap_s:
        return END
    return PERIODIC if sum(gaps) / len(gaps) < busy_gap_s else END


def post_runtime_budget(budget_s: float, now: float, deadline: Optional[float], margin_s: float) -> float:
    """The post-runtime flush budget: min(budget, deadline - margin - now), never negative."""
    b = max(0.0, budget_s)
    if deadline is not None:
        b = min(b, deadline - margin_s - now)
    return max(0.0, b)


def plan_after_invoke(mode: str, invoke_times: Sequence[float], now: float, budget_s: float,
                      deadline: Optional[float] = None, margin_s: float = 0.1, pending: int = 0) -> Plan:
    """The plan for the invoke that just started at `now` (its start time is the last of invoke_times)."""
    eff = effective_mode(mode, invoke_times, now)
    if eff == END:
        return Plan(True, post_runtime_budget(budget_s, now, deadline, margin_s), eff,
                    "sporadic traffic: flush after the runtime's response" if mode == ADAPTIVE else "end mode")
    return Plan(False, 0.0, eff, f"{eff}: flushed from the background, /next is never held")


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
                 margin_s: float = 0.1, backup_s: float = BACKUP_S) -> None:
        self.mode = mode
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

    def on_flush(self, now: float) -> None:
        self.last_flush = now

    def plan_after_invoke(self, now: float, deadline: Optional[float] = None, pending: int = 0) -> Plan:
        plan = plan_after_invoke(self.mode, tuple(self._invokes), now, self.budget_s, deadline, self.margin_s,
                                 pending)
        self.current = plan.mode
        return plan

    def next_timer(self, now: float) -> Optional[float]:
        eff = effective_mode(self.mode, tuple(self._invokes), now)
        last_invoke = self._invokes[-1] if self._invokes else None
        return next_flush_due(eff, self.last_flush, last_invoke, self.interval_s, self.backup_s)


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
                       margin_s=float(getattr(settings, "flush_margin_ms", 100)) / 1000.0)
