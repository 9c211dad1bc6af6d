"""SignalBuffer: one signal's serialized items waiting for export, bounded in items and in bytes."""

from __future__ import annotations

import collections
import threading
from typing import Any, Callable, Deque, List, Optional, Tuple

from ..budget import Budget

Batch = List[Tuple[bytes, int]]     # (serialized item, weight: 1 per span / log record, points per metric window)


class SignalBuffer:
    """Bounded FIFO of (item, weight); drop-oldest with counted weight. Items are bytes: their sizes count
    against the shared byte budget (budget.py), which may take this buffer's oldest item to make room."""

    def __init__(self, limit: int, on_drop: Callable[[str, int], None], budget: Optional[Budget] = None) -> None:
        self.limit = limit
        self.items: Deque[Tuple[Any, int]] = collections.deque()
        self.weight = 0
        self.nbytes = 0
        self.on_drop = on_drop
        self.lock = threading.Lock()
        self.budget = budget
        if budget is not None:
            budget.pools.append(self)

    def add(self, item: Any, weight: int = 1) -> None:
        with self.lock:
            self.items.append((item, weight))
            self.weight += weight
            self.nbytes += len(item)
            self._trim()
        if self.budget is not None:
            self.budget.settle()

    def add_many(self, items: List[Any]) -> None:
        """add() of several items of weight 1 (one invocation's spans): one lock, one settle of the budget."""
        if not items:
            return
        with self.lock:
            self.items.extend((item, 1) for item in items)
            self.weight += len(items)
            self.nbytes += sum(map(len, items))
            self._trim()
        if self.budget is not None:
            self.budget.settle()

    def _pop(self, reason: str) -> None:
        item, w = self.items.popleft()
        self.weight -= w
        self.nbytes -= len(item)
        self.on_drop(reason, w)

    def _trim(self) -> None:
        while self.weight > self.limit and self.items:
            self._pop("buffer_full")

    def drop_oldest(self) -> bool:
        """The budget's call: one oldest item out, counted as dropped for memory."""
        with self.lock:
            if not self.items:
                return False
            self._pop("memory")
            return True

    def take(self, max_weight: int, max_bytes: int = 1 << 62) -> Batch:
        out: Batch = []
        taken = size = 0
        with self.lock:
            while self.items and (not out or (taken + self.items[0][1] <= max_weight
                                              and size + len(self.items[0][0]) <= max_bytes)):
                item = self.items.popleft()
                self.weight -= item[1]
                self.nbytes -= len(item[0])
                taken += item[1]
                size += len(item[0])
                out.append(item)
        return out

    def put_back(self, batch: Batch) -> None:
        with self.lock:
            for item in reversed(batch):
                self.items.appendleft(item)
                self.weight += item[1]
                self.nbytes += len(item[0])
            self._trim()
        if self.budget is not None:
            self.budget.settle()

    def clear(self) -> int:
        with self.lock:
            w = self.weight
            self.items.clear()
            self.weight = 0
            self.nbytes = 0
            return w

    def fill(self) -> float:
        """Share of the item bound in use."""
        return self.weight / max(1, self.limit)

    def __len__(self) -> int:
        return self.weight
